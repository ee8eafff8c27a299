/**
 * Runs KubeECR the way a user does — `deno run -P=local main.ts ...` — as a
 * subprocess with a clean environment, against the test environment.
 *
 * Every byte it prints is also appended to `${env.dir}/cli-output.log`, so
 * tests/final/leak_test.ts can scan the output of the whole suite for
 * credentials after the fact.
 */

import * as k8s from "@kubernetes/client-node";
import { kubeConfigFor, kubectl, writeKubeconfig } from "../testenv/connect.ts";
import type { TestEnvInfo } from "../testenv/env.ts";
import { type EcrProxy, startEcrProxy } from "../testenv/ecr_proxy.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const MAIN = `${REPO}main.ts`;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout lines that are JSON objects (all of them with --log-format=json). */
  lines: Record<string, unknown>[];
  /** Date.now() when each of `lines` arrived on stdout (same index). */
  arrivals: number[];
  /** Date.now() just before the process was spawned. */
  startedAt: number;
  /** Wall-clock seconds from spawn to exit. */
  seconds: number;
  /** True when the process outlived `killAfterMs` and was killed. */
  killed: boolean;
  /** Date.now() when `signal` was sent, if it was. */
  signalledAt?: number;
}

export interface CliOptions {
  /** Extra or overriding variables; `undefined` removes one. */
  env?: Record<string, string | undefined>;
  /** Overrides of env.awsEnv (e.g. AWS_ENDPOINT_URL_ECR of an EcrProxy); `undefined` removes one. */
  aws?: Record<string, string | undefined>;
  /** Deno flags added to `-P=local`, e.g. `--allow-run=<plugin>`, as README tells users. */
  denoFlags?: string[];
  /** SIGKILL the process if it is still running after this long (a hang fails, not stalls, a test). */
  killAfterMs?: number;
  /**
   * Close the read end of stdout after this many lines, as `| head -N` does:
   * every later write of the program meets a closed pipe (EPIPE).
   */
  closeStdoutAfterLines?: number;
  /** Send `signal` to the process once `when()` holds (polled every 20 ms). */
  signal?: { name: Deno.Signal; when: () => boolean };
}

/**
 * A string put into kubeconfigs that tests break on purpose: the leak scan
 * (tests/final/leak_test.ts) fails if any output of the suite shows it.
 */
export const KUBECONFIG_CANARY = "sha256~kubeconfig-canary-9f8e7d6c5b4a";

/**
 * Where the CLI's output is collected: beside the suite's shared environment
 * (KUBEECR_TESTENV) when there is one, so runs against private environments
 * (in-cluster and manifest tests) are scanned too; else beside `env`.
 */
export function cliOutputLog(env: TestEnvInfo): string {
  const shared = Deno.env.get("KUBEECR_TESTENV");
  const dir = shared ? shared.slice(0, shared.lastIndexOf("/")) : env.dir;
  return `${dir}/cli-output.log`;
}

/** Appends one run's output to the collected log (see tests/final/leak_test.ts). */
export async function recordCliOutput(
  env: TestEnvInfo,
  run: { args: string[]; code: number; stdout: string; stderr: string },
): Promise<void> {
  await Deno.writeTextFile(
    cliOutputLog(env),
    `### kubeecr ${run.args.join(" ")} → exit ${run.code}\n${run.stdout}${run.stderr}`,
    { append: true },
  );
}

/**
 * The ECR endpoint a run gets unless the test names its own: an ECR proxy in
 * front of the environment's moto, one per test process. moto alone answers
 * tokens that expired in 2015, which KubeECR rightly refuses to write; the
 * proxy gives them ECR's real 12-hour lifetime (tests/testenv/ecr_proxy.ts).
 */
let defaultEcr: { motoUrl: string; proxy: EcrProxy } | undefined;

function realisticEcr(env: TestEnvInfo): Record<string, string> {
  if (defaultEcr?.motoUrl !== env.motoUrl) {
    defaultEcr = { motoUrl: env.motoUrl, proxy: startEcrProxy(env.motoUrl) };
  }
  return defaultEcr.proxy.awsEnv;
}

export async function runKubeecr(
  env: TestEnvInfo,
  args: string[],
  opts: CliOptions = {},
): Promise<CliResult> {
  const vars: Record<string, string | undefined> = {
    KUBECONFIG: env.kubeconfig,
    HOME: Deno.env.get("HOME"),
    DENO_DIR: Deno.env.get("DENO_DIR"),
    NO_COLOR: "1",
    ...env.awsEnv,
    ...realisticEcr(env),
    AWS_EC2_METADATA_DISABLED: "true",
    ...opts.aws,
    ...opts.env,
  };
  const defined = Object.fromEntries(
    Object.entries(vars).filter((e): e is [string, string] => e[1] !== undefined),
  );
  const startedAt = Date.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=local", ...opts.denoFlags ?? [], MAIN, ...args],
    cwd: REPO,
    clearEnv: true,
    env: defined,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const timer = opts.killAfterMs === undefined ? undefined : setTimeout(() => {
    killed = true;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, opts.killAfterMs);
  let signalledAt: number | undefined;
  const poller = opts.signal && setInterval(() => {
    if (signalledAt !== undefined || !opts.signal!.when()) return;
    signalledAt = Date.now();
    try {
      child.kill(opts.signal!.name);
    } catch { /* already gone */ }
  }, 20);
  const [out, stderr, status] = await Promise.all([
    readLines(child.stdout, opts.closeStdoutAfterLines),
    new Response(child.stderr).text(),
    child.status,
  ]).finally(() => {
    clearTimeout(timer);
    clearInterval(poller);
  });
  const seconds = (Date.now() - startedAt) / 1000;
  const stdout = out.map((l) => l.text).join("");
  await recordCliOutput(env, { args, code: status.code, stdout, stderr });
  const json = out.filter((l) => l.text.startsWith("{"));
  return {
    code: status.code,
    stdout,
    stderr,
    lines: json.map((l) => JSON.parse(l.text)),
    arrivals: json.map((l) => l.at),
    startedAt,
    seconds,
    killed,
    signalledAt,
  };
}

/** stdout as lines (with their newline) and their arrival times; stops reading after `max`. */
async function readLines(
  stream: ReadableStream<Uint8Array>,
  max = Infinity,
): Promise<{ text: string; at: number }[]> {
  const lines: { text: string; at: number }[] = [];
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  while (lines.length < max) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0 && lines.length < max) {
      lines.push({ text: pending.slice(0, nl + 1), at: Date.now() });
      pending = pending.slice(nl + 1);
    }
  }
  if (lines.length >= max) {
    // Closes the pipe, as `head` does when it exits.
    await reader.cancel();
  } else if (pending) {
    lines.push({ text: pending, at: Date.now() });
  }
  return lines;
}

// ---------------------------------------------------------------------------
// Fixtures the CLI tests share: Secrets, events and audit records, read and
// written as admin through client-node.

export const ANNOTATION = "deft.com/kubeecr";
export const REFRESHED_AT = "kubeecr.deft.com/refreshed-at";
export const EXPIRES_AT = "kubeecr.deft.com/expires-at";
/** The status annotation of the default installation (--annotation deft.com/kubeecr). */
export const STATUS = "kubeecr.deft.com/status.deft.com_kubeecr";
export const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

export function adminCore(env: TestEnvInfo): k8s.CoreV1Api {
  return kubeConfigFor(env, "admin").makeApiClient(k8s.CoreV1Api);
}

/** Base64 of the UTF-8 bytes, as Secret data carries them. */
export function b64(text: string): string {
  return new TextEncoder().encode(text).toBase64();
}

export interface SecretSpec {
  name: string;
  /** Value of deft.com/kubeecr; omitted = not annotated. */
  registries?: string;
  /** Raw `.dockerconfigjson` text; default `{"auths":{}}`. */
  dockerConfig?: string;
  /** Raw `.dockerconfigjson` bytes (e.g. not UTF-8); wins over dockerConfig. */
  dockerConfigBytes?: Uint8Array;
  type?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: k8s.V1OwnerReference[];
}

export async function createSecret(
  env: TestEnvInfo,
  namespace: string,
  spec: SecretSpec,
): Promise<k8s.V1Secret> {
  const type = spec.type ?? "kubernetes.io/dockerconfigjson";
  const annotations = { ...spec.annotations };
  if (spec.registries !== undefined) annotations[ANNOTATION] = spec.registries;
  const key = type === "kubernetes.io/dockerconfigjson" ? ".dockerconfigjson" : "config";
  return await adminCore(env).createNamespacedSecret({
    namespace,
    body: {
      metadata: {
        name: spec.name,
        labels: spec.labels,
        annotations,
        ownerReferences: spec.ownerReferences,
      },
      type,
      data: {
        [key]: spec.dockerConfigBytes?.toBase64() ?? b64(spec.dockerConfig ?? '{"auths":{}}'),
      },
    },
  });
}

export async function readSecret(
  env: TestEnvInfo,
  namespace: string,
  name: string,
): Promise<k8s.V1Secret> {
  return await adminCore(env).readNamespacedSecret({ namespace, name });
}

/** The Secret's `.dockerconfigjson`, decoded and parsed. */
// deno-lint-ignore no-explicit-any
export function dockerConfigOf(secret: k8s.V1Secret): any {
  const raw = secret.data?.[".dockerconfigjson"] ?? "";
  return JSON.parse(new TextDecoder().decode(Uint8Array.fromBase64(raw)));
}

/** Events whose involvedObject is this very Secret (name and uid). */
export async function eventsFor(
  env: TestEnvInfo,
  secret: k8s.V1Secret,
): Promise<k8s.CoreV1Event[]> {
  const { namespace, name, uid } = secret.metadata!;
  const list = await adminCore(env).listNamespacedEvent({
    namespace: namespace!,
    fieldSelector: `involvedObject.name=${name},involvedObject.uid=${uid}`,
  });
  return list.items;
}

/** The API server's audit records (Metadata level, one JSON object per line). */
export interface AuditRecord {
  verb: string;
  requestURI: string;
  user: { username: string };
  objectRef?: { resource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
}

export async function auditRecords(env: TestEnvInfo): Promise<AuditRecord[]> {
  const text = await Deno.readTextFile(env.auditLog);
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** "<account>.dkr.ecr.<region>.amazonaws.com" */
export function hostOf(item: string): string {
  const [account, region] = item.split("/");
  return `${account}.dkr.ecr.${region}.amazonaws.com`;
}

/** The log lines of a run about one Secret (JSON log format). */
export function linesAbout(run: CliResult, namespace: string, name: string) {
  return run.lines.filter((l) => l.secret === `${namespace}/${name}`);
}

/** The summary line of a JSON-format run. */
export function summaryOf(run: CliResult): Record<string, unknown> {
  const s = run.lines.find((l) => l.msg === "summary");
  if (!s) throw new Error(`no summary line in:\n${run.stdout}\n${run.stderr}`);
  return s;
}

/** A kubeconfig for the test environment whose user gets its token from the exec plugin `plugin`. */
export async function execPluginKubeconfig(env: TestEnvInfo, plugin: string): Promise<string> {
  const path = await writeKubeconfig(env, env.admin);
  const text = await Deno.readTextFile(path);
  await Deno.writeTextFile(
    path,
    text.replace(
      /^ {4}client-certificate-data: .*\n {4}client-key-data: .*$/m,
      `    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ${plugin}\n` +
        "      interactiveMode: Never",
    ),
  );
  return path;
}

/** A token of a new ServiceAccount in `ns` bound to cluster-admin: what an exec plugin hands out. */
export async function pluginUserToken(env: TestEnvInfo, ns: string): Promise<string> {
  await kubectl(env, ["-n", ns, "create", "serviceaccount", "plugin-user"]);
  await kubectl(env, [
    "create",
    "clusterrolebinding",
    `${ns}-plugin`,
    "--clusterrole=cluster-admin",
    `--serviceaccount=${ns}:plugin-user`,
  ]);
  return (await kubectl(env, ["-n", ns, "create", "token", "plugin-user"])).trim();
}
