/**
 * `deno task bench`: wall time and peak RSS of KubeECR runs against the test
 * environment, for sizing the CronJob's resources. Figures only, no
 * assertions.
 *
 * The program runs as users run it (`deno run -P=local main.ts`), each run
 * under a small python3 wrapper that reports the child's wall time and peak
 * RSS (getrusage RUSAGE_CHILDREN). ECR is moto behind the ECR proxy, so
 * tokens carry a realistic 12 h expiry and the second run finds every Secret
 * fresh.
 *
 *   1. start-up: `main.ts --version`
 *   2. first run over N annotated Secrets, all due (repeated with --force)
 *   3. second run, all fresh
 *   4. the second run again after adding large Opaque Secrets (Helm-release
 *      sized) to the same namespaces: only their metadata is listed, so
 *      memory should stay where it was in 3.
 */

import { startEcrProxy } from "./testenv/ecr_proxy.ts";
import { startTestEnv } from "./testenv/env.ts";
import { run } from "./testenv/util.ts";

const REPO = new URL("../", import.meta.url).pathname;
const MAIN = `${REPO}main.ts`;
const NAMESPACES = ["bench-a", "bench-b", "bench-c"];
const SECRETS = 300;
const REGIONS = ["us-west-2", "eu-central-1", "ap-southeast-2"];
const LARGE_SECRETS = 40;
const LARGE_BYTES = 900 * 1024;
const REPEAT = 3;

/** Runs argv[1:], then prints {code, seconds, maxrssKiB, output} as JSON. */
const MEASURE = `
import json, resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
seconds = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
if sys.platform == "darwin":
    rss //= 1024  # bytes there, KiB on Linux
print(json.dumps({"code": r.returncode, "seconds": seconds, "maxrssKiB": rss,
                  "output": r.stdout.decode(errors="replace")}))
`;

interface Measured {
  code: number;
  seconds: number;
  maxrssKiB: number;
  output: string;
}

const log = (line: string) => console.error(line);
const env = await startTestEnv({ log });
const ecr = startEcrProxy(env.motoUrl);

const cliEnv: Record<string, string> = {
  KUBECONFIG: env.kubeconfig,
  HOME: Deno.env.get("HOME") ?? "/tmp",
  NO_COLOR: "1",
  ...env.awsEnv,
  ...ecr.awsEnv,
  AWS_EC2_METADATA_DISABLED: "true",
};
const denoDir = Deno.env.get("DENO_DIR");
if (denoDir) cliEnv.DENO_DIR = denoDir;

async function measure(args: string[]): Promise<Measured> {
  const out = await run("python3", [
    "-c",
    MEASURE,
    Deno.execPath(),
    "run",
    "-P=local",
    MAIN,
    ...args,
  ], { env: cliEnv, cwd: REPO });
  return JSON.parse(out);
}

/** A run of the program; its summary line and the ECR calls it made. */
async function kubeecr(args: string[]) {
  const callsBefore = ecr.tokenCalls();
  const m = await measure(["--log-format=json", ...args]);
  const summary = m.output.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    .find((l) => l.msg === "summary");
  if (!summary) throw new Error(`no summary (exit ${m.code}):\n${m.output.slice(-2000)}`);
  return { ...m, summary, ecrCalls: ecr.tokenCalls() - callsBefore };
}

async function kubectlApply(items: unknown[]) {
  const list = JSON.stringify({ apiVersion: "v1", kind: "List", items });
  // Server-side apply: one request per object and no last-applied annotation,
  // which could not hold a 900 KiB Secret's data anyway.
  await run(
    env.kubectl,
    ["--kubeconfig", env.kubeconfig, "apply", "--server-side", "-f", "-"],
    { stdin: list },
  );
}

function base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

// ---------------------------------------------------------------------------

interface Row {
  what: string;
  runs: Measured[];
  note: string;
}
const rows: Row[] = [];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mib = (kib: number) => (kib / 1024).toFixed(0);

function spread(xs: number[], fmt: (x: number) => string): string {
  if (xs.length === 1) return fmt(xs[0]);
  return `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
}

function printTable() {
  const header = ["measurement", "n", "wall s: median (min–max)", "peak RSS MiB", "notes"];
  const body = rows.map((r) => [
    r.what,
    String(r.runs.length),
    spread(r.runs.map((m) => m.seconds), (x) => x.toFixed(2)),
    spread(r.runs.map((m) => m.maxrssKiB), mib),
    r.note,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  console.log(line(header));
  console.log(line(widths.map((w) => "-".repeat(w))));
  for (const b of body) console.log(line(b));
}

function describe(r: Awaited<ReturnType<typeof kubeecr>>): string {
  const s = r.summary;
  return `exit ${r.code}, ${s.refreshed} refreshed, ${s.fresh} fresh, ${s.failed} failed, ` +
    `${r.ecrCalls} ECR calls`;
}

try {
  // Warm-up, not measured: Deno's module cache and the first kubectl call.
  await measure(["--version"]);

  const startup: Measured[] = [];
  for (let i = 0; i < REPEAT; i++) startup.push(await measure(["--version"]));
  rows.push({ what: "1 start-up: --version", runs: startup, note: `exit ${startup[0].code}` });

  log(`creating ${SECRETS} annotated Secrets in ${NAMESPACES.join(", ")}...`);
  await kubectlApply(
    NAMESPACES.map((name) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name } })),
  );
  await kubectlApply(Array.from({ length: SECRETS }, (_, i) => ({
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/dockerconfigjson",
    metadata: {
      name: `pull-${String(i).padStart(3, "0")}`,
      namespace: NAMESPACES[i % NAMESPACES.length],
      annotations: { "deft.com/kubeecr": `123456789012/${REGIONS[i % REGIONS.length]}` },
    },
    data: { ".dockerconfigjson": btoa('{"auths":{}}') },
  })));

  const first = await kubeecr([]);
  rows.push({ what: `2 first run: ${SECRETS} due`, runs: [first], note: describe(first) });
  const forced = [];
  for (let i = 0; i < REPEAT; i++) forced.push(await kubeecr(["--force"]));
  rows.push({ what: `2 same, --force`, runs: forced, note: describe(forced.at(-1)!) });

  const fresh = [];
  for (let i = 0; i < REPEAT; i++) fresh.push(await kubeecr([]));
  rows.push({ what: "3 second run: all fresh", runs: fresh, note: describe(fresh.at(-1)!) });

  log(`adding ${LARGE_SECRETS} Opaque Secrets of ${LARGE_BYTES / 1024} KiB...`);
  const payload = base64(randomBytes(LARGE_BYTES));
  for (let batch = 0; batch < LARGE_SECRETS; batch += 10) {
    await kubectlApply(Array.from({ length: 10 }, (_, j) => ({
      apiVersion: "v1",
      kind: "Secret",
      type: "Opaque",
      metadata: {
        name: `sh.helm.release.v1.app-${batch + j}.v1`,
        namespace: NAMESPACES[(batch + j) % NAMESPACES.length],
        labels: { owner: "helm", name: `app-${batch + j}`, status: "deployed", version: "1" },
      },
      data: { release: payload },
    })));
  }
  const withLarge = [];
  for (let i = 0; i < REPEAT; i++) withLarge.push(await kubeecr([]));
  rows.push({
    what: `4 second run + ${LARGE_SECRETS} × ${LARGE_BYTES / 1024} KiB`,
    runs: withLarge,
    note: describe(withLarge.at(-1)!),
  });

  console.log(
    `\nKubeECR bench — Deno ${Deno.version.deno}, Kubernetes ${env.kubernetesVersion}, ` +
      `${Deno.build.os}/${Deno.build.arch}, ${new Date().toISOString().slice(0, 10)}; ` +
      `${SECRETS} Secrets in ${NAMESPACES.length} namespaces, ${REGIONS.length} regions\n`,
  );
  printTable();
  const everything = await run(env.kubectl, [
    "--kubeconfig",
    env.kubeconfig,
    "get",
    "--raw",
    "/api/v1/secrets",
  ]);
  console.log(
    `\n(For scale: listing every Secret of the cluster, GET /api/v1/secrets, ` +
      `returns ${(everything.length / 1024 / 1024).toFixed(1)} MiB of JSON.)`,
  );
} finally {
  await ecr.close();
  await env.stop();
}
