/**
 * Helm for the chart tests: the binary tests/tools/helm.sh builds (once, cached by version), run
 * with its own empty config, cache and data directories so that a user's repositories, plugins or
 * registry logins never change what a test sees.
 */

import { load as loadYaml, loadAll } from "js-yaml";
import { run } from "../testenv/util.ts";

const REPO = new URL("../../", import.meta.url).pathname;
export const CHART = `${REPO}charts/kubeecr`;

let bin: Promise<string> | undefined;

/** The path of the helm binary; the first call builds it if needed (minutes). */
export function helmBin(): Promise<string> {
  bin ??= run("bash", [`${REPO}tests/tools/helm.sh`, "--path"]).then((out) => out.trim());
  return bin;
}

let home: Promise<string> | undefined;

function helmHome(): Promise<string> {
  home ??= Deno.makeTempDir({ prefix: "kubeecr-helm-" }).then((dir) => {
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* already gone */ }
    });
    return dir;
  });
  return home;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with `args`; a non-zero exit is returned, not thrown. */
export async function helm(args: string[]): Promise<HelmResult> {
  const dir = await helmHome();
  const out = await new Deno.Command(await helmBin(), {
    args,
    clearEnv: true,
    env: {
      HOME: dir,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HELM_CACHE_HOME: `${dir}/cache`,
      HELM_CONFIG_HOME: `${dir}/config`,
      HELM_DATA_HOME: `${dir}/data`,
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

export interface Obj {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  // deno-lint-ignore no-explicit-any
  [field: string]: any;
}

/** The objects of a multi-document YAML stream (empty documents dropped). */
export function objectsOf(yaml: string): Obj[] {
  return (loadAll(yaml) as (Obj | null)[]).filter((o): o is Obj => o !== null);
}

/**
 * `helm template <release> <chart> --namespace <ns>` with values files and --set-json pairs;
 * throws with helm's stderr on failure.
 */
export async function template(
  opts: {
    chart?: string;
    release?: string;
    namespace?: string;
    values?: string[];
    setJson?: Record<string, unknown>;
  } = {},
): Promise<Obj[]> {
  const result = await helm(templateArgs(opts));
  if (result.code !== 0) throw new Error(`helm template exited ${result.code}: ${result.stderr}`);
  return objectsOf(result.stdout);
}

export function templateArgs(opts: {
  chart?: string;
  release?: string;
  namespace?: string;
  values?: string[];
  setJson?: Record<string, unknown>;
}): string[] {
  const chart = opts.chart ?? CHART;
  return [
    "template",
    opts.release ?? "kubeecr",
    chart,
    "--namespace",
    opts.namespace ?? "kubeecr",
    ...(opts.values ?? []).flatMap((f) => ["--values", f.startsWith("/") ? f : `${chart}/${f}`]),
    ...Object.entries(opts.setJson ?? {}).flatMap(([k, v]) => [
      "--set-json",
      `${k}=${JSON.stringify(v)}`,
    ]),
  ];
}

/** Chart.yaml of a chart directory. */
export async function chartMeta(chart = CHART): Promise<{ version: string; appVersion: string }> {
  return loadYaml(await Deno.readTextFile(`${chart}/Chart.yaml`)) as {
    version: string;
    appVersion: string;
  };
}
