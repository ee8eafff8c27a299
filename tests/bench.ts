/**
 * `deno task bench`: what a KubeECR run costs, measured side by side with a
 * plain Go client (tests/bench/reference-go, net/http over HTTP/2, built here
 * with the machine's Go) that makes exactly the same requests, against one
 * real API server (issue 19's yardstick).
 *
 *   deno task bench                 full sizes (2,000 Secrets, 20,000 for the scale
 *                                   scenarios and as others), 30-40 min on a busy machine
 *   deno task bench --quick         small sizes, 2 rounds: about 70 s, for iterating
 *   deno task bench --rounds 7 --secrets 500 --only cold,full-c4
 *   deno task bench --compare DIR   another checkout of KubeECR in the same rounds
 *                                   (repeatable: one side per checkout, e.g. one per change)
 *
 * Every program runs as users run it, one process each: KubeECR as `deno
 * task start` runs it (`deno run` with the task's flags), the Go client as
 * its binary, the Deno reference (tests/bench/reference.ts) as `deno run` of
 * its file, each under `/usr/bin/time`, which reports the child's wall time,
 * CPU (user + sys) and peak RSS (getrusage of the child). Requests are
 * counted from the API server's audit log, ECR calls at the ECR proxy in
 * front of moto (which also makes tokens expire 12 h ahead, so a second run
 * finds every Secret fresh). Rounds are interleaved (ABBA...) and medians
 * reported with their spread: the machine this was written on is shared.
 *
 * Why two references: the Go client is the target (issue 19: KubeECR at or
 * below its wall time, CPU within 1.3x); the Deno reference does the same
 * work with nothing but Deno's fetch, so the gap between the two is what
 * Deno itself (start-up, its HTTP/2 and TLS, V8) costs, and the gap between
 * it and KubeECR is what KubeECR's own code adds. It runs where that split
 * is asked about (cold start, full refresh at N).
 *
 * Scenarios, in the order they run (the Secrets are created once, with the
 * bench's native client, and reused):
 *   cold            one due Secret in an otherwise empty cluster
 *   full-c4/c16     N due Secrets in N namespaces, --force, concurrency 4 / 16,
 *                   an Event per Secret (and KubeECR --events=warnings, the
 *                   references without Events)
 *   noop            the same N, all fresh
 *   noop-big, full-c4-big
 *                   beside them 100 unannotated dockerconfigjson Secrets of
 *                   500 KiB (issue 7: memory must not follow them)
 *   noop-others     all fresh, beside 20,000 small Opaque Secrets and 100 of
 *                   256 KiB (Helm-release sized)
 *   full-scale, noop-scale
 *                   --scale annotated Secrets in all (20,000: the N above plus
 *                   more in the same namespaces, beside the others), full
 *                   refresh with and without Events, then the no-op
 *
 * The Markdown printed on stdout is what README's Benchmarks section shows,
 * ending with issue 19's targets, met or not. Progress goes to stderr.
 * Figures only: the bench fails only when a run did not do the work it was
 * supposed to (then the figures would be meaningless).
 */

import { parseArgs } from "node:util";
import { forEachLimited, NativeKube } from "./bench/kube.ts";
import { startEcrProxy } from "./testenv/ecr_proxy.ts";
import { startTestEnv } from "./testenv/env.ts";

const REPO = new URL("../", import.meta.url).pathname;
const REFERENCE = `${REPO}tests/bench/reference.ts`;
const REFERENCE_GO = `${REPO}tests/bench/reference-go`;
const TIME = "/usr/bin/time";
const REGIONS = ["us-west-2", "eu-central-1", "ap-southeast-2"];
const ACCOUNT = "123456789012";
const PAGE = 500;

// --- flags -----------------------------------------------------------------

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    lean: { type: "boolean", default: false },
    rounds: { type: "string" },
    secrets: { type: "string" },
    others: { type: "string" },
    large: { type: "string" },
    scale: { type: "string" },
    "big-dockerconfig": { type: "string" },
    only: { type: "string" },
    kubeecr: { type: "string" },
    compare: { type: "string", multiple: true },
    "v8-flags": { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (flags.help) {
  console.log(`deno task bench [--quick] [--rounds N] [--secrets N] [--others N] [--large N]
                [--big-dockerconfig N] [--scale N] [--only id,id,...] [--kubeecr DIR]
                [--compare DIR]... [--v8-flags FLAGS]

  --quick              200 Secrets, 2,000 others, 10 large, 10 big, scale 0, 2 rounds,
                       connections counted for KubeECR only (about 70 s on a quiet
                       2-core machine)
  --lean               only the KubeECR sides (this checkout and --compare's), no reference
                       and no connection count: before/after a change, when time is short
  --rounds N           measured rounds of a full refresh (default 3; 2 with --quick); a
                       no-op gets 5/3 as many, cold start 10/3 (issue 19: 3, 5, 10)
  --secrets N          annotated Secrets, one per namespace (default 2000)
  --scale N            annotated Secrets in all for full-scale and noop-scale (default
                       20000; 0 skips them)
  --others N           small Opaque Secrets for noop-others (default 20000)
  --large N            256 KiB Opaque Secrets for noop-others (default 100)
  --big-dockerconfig N unannotated 500 KiB dockerconfigjson Secrets (default 100)
  --only ids           run only these scenarios: cold, full-c4, full-c16, noop, noop-big,
                       full-c4-big, noop-others, full-scale, noop-scale
  --kubeecr DIR        the KubeECR checkout to run (default: this one), e.g. a
                       \`git archive <commit> | tar -x -C /tmp/before\`
  --compare DIR        also run the KubeECR in DIR in every round, interleaved: before and
                       after a change under the same load; repeatable
  --v8-flags FLAGS     run both programs with deno run --v8-flags=FLAGS, e.g.
                       --max-semi-space-size=2 to see what the young generation costs`);
  Deno.exit(0);
}
const size = (v: string | undefined, full: number, quick: number) => {
  const n = v === undefined ? (flags.quick ? quick : full) : Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`not a count: ${v}`);
  return n;
};
const ROUNDS = Math.max(1, size(flags.rounds, 3, 2));
const NOOP_ROUNDS = Math.ceil(ROUNDS * 5 / 3);
const COLD_ROUNDS = Math.ceil(ROUNDS * 10 / 3);
const SECRETS = Math.max(1, size(flags.secrets, 2000, 200));
const OTHERS = size(flags.others, 20_000, 2000);
const LARGE = size(flags.large, 100, 10);
const BIG = size(flags["big-dockerconfig"], 100, 10);
const SCALE = size(flags.scale, 20_000, 0);
const ONLY = flags.only ? new Set(flags.only.split(",")) : undefined;
/** The checkout whose main.ts is measured; it runs with its own deno.json (-P=local). */
const KUBEECR_DIR = flags.kubeecr ? await Deno.realPath(flags.kubeecr) : REPO.replace(/\/$/, "");
/** `deno run` flags of both programs: the same V8 for both sides. */
const RUN_FLAGS = flags["v8-flags"] ? [`--v8-flags=${flags["v8-flags"]}`] : [];
/** Other checkouts run beside it in every round (--compare, repeatable). */
const COMPARE_DIRS = await Promise.all((flags.compare ?? []).map((d) => Deno.realPath(d)));

/** Which KubeECR was measured: its commit, "+changes" when the checkout has uncommitted ones. */
async function describeCheckout(dir: string): Promise<string> {
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", { args: ["-C", dir, ...args], stderr: "null" })
      .output();
    return new TextDecoder().decode(out.stdout).trim();
  };
  const commit = await git("rev-parse", "--short", "HEAD").catch(() => "");
  if (!commit) return dir;
  const dirty = (await git("status", "--porcelain", "--", "main.ts", "lib", "deno.json")) !== "";
  return `${commit}${dirty ? "+changes" : ""}`;
}
const measured = await describeCheckout(KUBEECR_DIR);
const compared = await Promise.all(COMPARE_DIRS.map(describeCheckout));
const wanted = (id: string) => !ONLY || ONLY.has(id);

// --- measuring one run -----------------------------------------------------

/** One measured process. */
interface Sample {
  wall: number;
  cpu: number;
  rssMiB: number;
  /** Requests in the audit log, by `${verb} ${resource}`. */
  requests: Map<string, number>;
  ecrCalls: number;
  /** What the run says it wrote (summary line / reference counts). */
  written: number;
  /** Reference only: bytes of list responses. */
  listBytes?: number;
}

const total = (s: Sample) => [...s.requests.values()].reduce((a, b) => a + b, 0);
const count = (s: Sample, pred: (key: string) => boolean) =>
  [...s.requests].filter(([k]) => pred(k)).reduce((a, [, n]) => a + n, 0);
const lists = (s: Sample) => count(s, (k) => k.startsWith("list "));
const patches = (s: Sample) => count(s, (k) => k === "patch secrets");

const log = (line: string) => console.error(line);
const warnings: string[] = [];
const warn = (line: string) => {
  warnings.push(line);
  log(`WARNING: ${line}`);
};

const env = await startTestEnv({ log });
const ecr = startEcrProxy(env.motoUrl);
const kube = await NativeKube.connect({
  server: env.server,
  caCert: env.caCert,
  cert: env.admin.cert,
  key: env.admin.key,
});

const childEnv: Record<string, string> = {
  KUBECONFIG: env.kubeconfig,
  HOME: Deno.env.get("HOME") ?? "/tmp",
  NO_COLOR: "1",
  ...env.awsEnv,
  ...ecr.awsEnv,
  AWS_EC2_METADATA_DISABLED: "true",
};
const denoDir = Deno.env.get("DENO_DIR");
if (denoDir) childEnv.DENO_DIR = denoDir;

/** Who the bench and both clients are to the API server (audit records are filtered by it). */
const { body: review } = await kube.json<{ status: { userInfo: { username: string } } }>(
  "POST",
  "/apis/authentication.k8s.io/v1/selfsubjectreviews",
  { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
);
const ADMIN = review.status.userInfo.username;
const counter = connectionCounter();
log("building the Go reference client");
let goVersion = "";
const goReference = await buildGoReference();

/** Where the audit log stood: its file (by inode) and size. */
interface AuditMark {
  ino: number;
  size: number;
}

async function auditMark(): Promise<AuditMark> {
  const st = await Deno.stat(env.auditLog);
  return { ino: st.ino ?? 0, size: st.size };
}

/**
 * Audit records appended since `from` by ADMIN, counted by verb and resource.
 * The API server rotates its audit log at 100 MB (a full bench writes more):
 * then the rest of the rotated file is read first, then the new one.
 */
async function auditSince(from: AuditMark): Promise<Map<string, number>> {
  // The record of a request is written as its response completes: wait until
  // the log stops growing before reading it.
  let size = (await Deno.stat(env.auditLog)).size;
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const now = (await Deno.stat(env.auditLog)).size;
    if (now === size) break;
    size = now;
  }
  const parts: [string, number][] = [];
  if ((await auditMark()).ino !== from.ino) {
    for await (const e of Deno.readDir(env.dir)) {
      const path = `${env.dir}/${e.name}`;
      if (e.name.startsWith("audit-") && (await Deno.stat(path)).ino === from.ino) {
        parts.push([path, from.size]);
      }
    }
    parts.push([env.auditLog, 0]);
  } else {
    parts.push([env.auditLog, from.size]);
  }
  const counts = new Map<string, number>();
  for (const [path, offset] of parts) {
    const file = await Deno.open(path);
    await file.seek(offset, Deno.SeekMode.Start);
    const text = await new Response(file.readable).text();
    for (const line of text.split("\n")) {
      if (!line) continue;
      const r = JSON.parse(line);
      if (r.user?.username !== ADMIN) continue;
      const key = `${r.verb} ${r.objectRef?.resource ?? r.requestURI}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

/** Runs argv under /usr/bin/time; the child's figures, stdout and exit code. */
async function measure(argv: string[], vars: Record<string, string> = {}, cwd = KUBEECR_DIR) {
  const timeFile = `${env.dir}/bench-time.txt`;
  const auditFrom = await auditMark();
  const ecrFrom = ecr.tokenCalls();
  const started = performance.now();
  const out = await new Deno.Command(TIME, {
    args: ["-f", "%U %S %M", "-o", timeFile, ...argv],
    cwd,
    clearEnv: true,
    env: { ...childEnv, ...vars },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wall = (performance.now() - started) / 1000;
  // "Command exited with non-zero status 1" comes first when it failed.
  const [user, sys, maxrssKiB] = (await Deno.readTextFile(timeFile)).trim().split("\n").at(-1)!
    .split(" ").map(Number);
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    code: out.code,
    stdout: decode(out.stdout),
    stderr: decode(out.stderr),
    wall,
    cpu: user + sys,
    rssMiB: maxrssKiB / 1024,
    requests: await auditSince(auditFrom),
    ecrCalls: ecr.tokenCalls() - ecrFrom,
  };
}

/** A run that must write `written` Secrets; `server` reaches the API server another way. */
/** The test environment's kubeconfig, pointed at `server` instead. */
async function kubeconfigFor(server: string): Promise<string> {
  const path = `${env.dir}/kubeconfig-${new URL(server).port}`;
  const text = await Deno.readTextFile(env.kubeconfig);
  await Deno.writeTextFile(path, text.replace(`server: ${env.server}`, `server: ${server}`), {
    mode: 0o600,
  });
  return path;
}

/**
 * A TCP pass-through in front of the API server that counts the connections
 * a client opens (issue 7: at most concurrency + 1). TLS goes through it
 * untouched; the serving certificate names 127.0.0.1, whatever the port.
 * Runs through it are extra, not timed: piping every byte through this
 * process would slow the client down.
 */
function connectionCounter() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const upstream = new URL(env.server);
  const stats = { opened: 0, open: 0, peak: 0 };
  (async () => {
    for await (const conn of listener) {
      stats.opened++;
      stats.peak = Math.max(stats.peak, ++stats.open);
      (async () => {
        try {
          const up = await Deno.connect({
            hostname: upstream.hostname,
            port: Number(upstream.port),
          });
          await Promise.allSettled([
            conn.readable.pipeTo(up.writable),
            up.readable.pipeTo(conn.writable),
          ]);
        } catch {
          /* the client went away */
        } finally {
          stats.open--;
        }
      })();
    }
  })().catch(() => {});
  return {
    server: `https://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    /** Counts from zero; returns what the previous period saw. */
    reset() {
      const seen = { opened: stats.opened, peak: stats.peak };
      stats.opened = 0;
      stats.peak = stats.open;
      return seen;
    },
    close: () => listener.close(),
  };
}

type Runner = (written: number, server?: string) => Promise<Sample>;

/** KubeECR as users run it; `written` is how many Secrets it must refresh. */
const kubeecr = (args: string[], dir = KUBEECR_DIR): Runner => async (written, server) => {
  const m = await measure(
    [
      Deno.execPath(),
      "run",
      ...await startFlags(dir),
      ...RUN_FLAGS,
      `${dir}/main.ts`,
      "--log-format=json",
      ...args,
    ],
    server ? { KUBECONFIG: await kubeconfigFor(server) } : {},
    dir,
  );
  const summaryLine = m.stdout.split("\n").find((l) => l.includes('"msg":"summary"'));
  const summary = summaryLine ? JSON.parse(summaryLine) : undefined;
  const what = `kubeecr${dir === KUBEECR_DIR ? "" : ` (${dir})`} ${args.join(" ")}`;
  if (!summary) {
    warn(`${what}: no summary line (exit ${m.code}):\n${(m.stdout + m.stderr).slice(-1500)}`);
  } else if (m.code !== 0 || summary.refreshed !== written) {
    warn(`${what}: exit ${m.code}, refreshed ${summary.refreshed}, expected ${written}`);
  }
  return { ...m, written: summary?.refreshed ?? -1 };
};

/**
 * A reference client with the same flags: the Go binary, or the Deno file
 * (`deno run`, the same V8 flags as KubeECR).
 */
const reference = (kind: "go" | "deno", args: string[]): Runner =>
async (
  written,
  server = env.server,
) => {
  const connect = [
    `--server=${server}`,
    `--ca=${env.caCert}`,
    `--cert=${env.admin.cert}`,
    `--key=${env.admin.key}`,
  ];
  const m = await measure(
    kind === "go" ? [goReference, ...connect, ...args] : [
      Deno.execPath(),
      "run",
      ...RUN_FLAGS,
      "--allow-net=127.0.0.1",
      `--allow-read=${env.dir}`,
      "--allow-env",
      REFERENCE,
      ...connect,
      ...args,
    ],
  );
  const what = `${kind} reference ${args.join(" ")}`;
  let counts: { patched: number; listBytes: number; proto?: string } | undefined;
  try {
    counts = JSON.parse(m.stdout.trim().split("\n").at(-1)!);
  } catch {
    warn(`${what}: no result (exit ${m.code}):\n${(m.stdout + m.stderr).slice(-1500)}`);
  }
  if (counts && (m.code !== 0 || counts.patched !== written)) {
    warn(`${what}: exit ${m.code}, patched ${counts.patched}, expected ${written}`);
  }
  if (counts?.proto && counts.proto !== "HTTP/2.0" && !args.includes("--http1")) {
    warn(`${what}: spoke ${counts.proto} to the API server, not HTTP/2 as KubeECR does`);
  }
  return { ...m, written: counts?.patched ?? -1, listBytes: counts?.listBytes };
};

/**
 * The Go reference, built with this machine's Go (standard library only,
 * so no module is fetched) into the environment's directory.
 */
async function buildGoReference(): Promise<string> {
  const out = `${env.dir}/reference-go`;
  const build = await new Deno.Command("go", {
    args: ["build", "-trimpath", "-o", out, "."],
    cwd: REFERENCE_GO,
    env: { GOWORK: "off", CGO_ENABLED: "0" },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!build.success) throw new Error(`go build in ${REFERENCE_GO} failed`);
  const version = await new Deno.Command("go", { args: ["version"], stdout: "piped" }).output();
  goVersion = new TextDecoder().decode(version.stdout).trim().replace(/^go version /, "");
  return out;
}

// --- scenarios ---------------------------------------------------------------

interface Side {
  label: string;
  /** Which program: variants of either are printed in that program's column. */
  program: "kubeecr" | "reference";
  run: Runner;
  samples: Sample[];
  /** Connections opened / at most open at once, in the untimed counting run. */
  connections?: { opened: number; peak: number };
}

interface Scenario {
  id: string;
  title: string;
  /** KubeECR first, then the reference, then variants of either. */
  sides: Side[];
  /** Secrets each run must write. */
  written: number;
  /** Also count each side's connections in one extra, untimed run. */
  connections?: boolean;
  /** Cheap scenarios get more rounds: their medians suffer most from a busy machine. */
  rounds?: number;
}

const scenarios: Scenario[] = [];

/** With --lean, only the KubeECR sides without extra flags: this checkout and --compare's. */
function lean(sides: Side[]): Side[] {
  return flags.lean
    ? sides.filter((x) => x.program === "kubeecr" && !x.label.includes("--"))
    : sides;
}

function side(label: string, run: Runner): Side {
  return { label, program: label.startsWith(KE) ? "kubeecr" : "reference", run, samples: [] };
}

/** The KubeECRs of --compare with the same flags, one more side each. */
function compareSide(args: string[]): Side[] {
  return COMPARE_DIRS.map((dir, i) => side(`${KE} ${compared[i]}`, kubeecr(args, dir)));
}

/** Measured rounds, interleaved: A B C, then C B A, ... so drift hits every side alike. */
async function measureScenario(s: Scenario, opts: { warmUp?: boolean } = {}) {
  if (opts.warmUp) {
    log(`${s.id}: warm-up round (Deno's caches), not measured`);
    for (const x of s.sides) await x.run(s.written);
  }
  if (!wanted(s.id)) return;
  s.sides = lean(s.sides);
  if (flags.lean) s.connections = false;
  scenarios.push(s);
  const rounds = s.rounds ?? ROUNDS;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [...s.sides].reverse() : s.sides;
    for (const x of order) {
      const sample = await x.run(s.written);
      x.samples.push(sample);
      const p = patches(sample);
      if (p !== s.written && s.written >= 0) {
        warn(`${s.id} ${x.label}: the audit log shows ${p} Secret patches, expected ${s.written}`);
      }
      log(
        `${s.id} round ${round + 1}/${rounds} ${x.label}: ${sample.wall.toFixed(2)} s wall, ` +
          `${sample.cpu.toFixed(2)} s CPU, ${sample.rssMiB.toFixed(0)} MiB, ` +
          `${total(sample)} requests (${lists(sample)} lists), ${sample.ecrCalls} ECR calls`,
      );
    }
  }
  if (s.connections) {
    // Through the counting pass-through a run takes 2-3 times as long; --quick
    // counts only KubeECR's, which is what the targets judge.
    const counted = flags.quick ? s.sides.filter((x) => x.program === "kubeecr") : s.sides;
    for (const x of counted) {
      counter.reset();
      await x.run(s.written, counter.server);
      x.connections = counter.reset();
      log(
        `${s.id} ${x.label}: ${x.connections.opened} connections opened, ` +
          `at most ${x.connections.peak} open at once`,
      );
    }
  }
}

/**
 * The `deno run` flags of a checkout's `deno task start` (permission set, V8
 * flags), so the bench measures KubeECR as users run it, whatever the
 * checkout: "deno run --quiet -P=local --v8-flags=… main.ts" → its flags.
 */
async function startFlags(dir: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${dir}/deno.json`));
  const words: string[] = config.tasks.start.split(/\s+/);
  const flags = words.slice(words.indexOf("run") + 1, words.indexOf("main.ts"));
  if (!flags.some((f) => f.startsWith("-P"))) throw new Error(`${dir}: no -P in tasks.start`);
  return flags;
}

/** An unmeasured KubeECR run, so every Secret is fresh by KubeECR's own rules. */
async function settleAll() {
  log("settling: one KubeECR run so that every Secret is fresh by its own rules");
  const m = await measure([
    Deno.execPath(),
    "run",
    ...await startFlags(KUBEECR_DIR),
    `${KUBEECR_DIR}/main.ts`,
    "--log-format=json",
  ]);
  if (m.code !== 0) warn(`settling run exited ${m.code}:\n${m.stdout.slice(-1000)}`);
}

// --- fixtures ----------------------------------------------------------------

const b64 = (text: string) => new TextEncoder().encode(text).toBase64();
const nsName = (i: number) => `bench-${String(i).padStart(5, "0")}`;

function randomBase64(bytes: number): string {
  const raw = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 65536) crypto.getRandomValues(raw.subarray(i, i + 65536));
  return raw.toBase64();
}

async function createAll(label: string, objects: Iterable<[string, unknown]>, n: number) {
  const started = performance.now();
  log(`creating ${n.toLocaleString("en-US")} ${label}...`);
  await forEachLimited(objects, 16, async ([path, body]) => {
    await kube.json("POST", path, body);
  });
  log(`  done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

function* range<T>(n: number, f: (i: number) => T): Iterable<T> {
  for (let i = 0; i < n; i++) yield f(i);
}

const secretPath = (ns: string) => `/api/v1/namespaces/${ns}/secrets`;
const pullSecret = (ns: string, name: string, region: string) => ({
  metadata: { name, namespace: ns, annotations: { "deft.com/kubeecr": `${ACCOUNT}/${region}` } },
  type: "kubernetes.io/dockerconfigjson",
  data: { ".dockerconfigjson": b64('{"auths":{}}') },
});

// --- the run -----------------------------------------------------------------

const loadBefore = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
const startedAt = new Date();
const KE = "KubeECR";
const GO = "Go client";
const DENO = "Deno fetch client";
const WARNINGS = "--events=warnings";
const go = (args: string[]) => reference("go", args);
const denoRef = (args: string[]) => reference("deno", args);

/** A full refresh at concurrency c: KubeECR with and without Events, the references likewise. */
function fullSides(c: number, opts: { deno?: boolean; http1?: boolean } = {}): Side[] {
  const args = ["--force", `--concurrency=${c}`];
  return [
    side(KE, kubeecr(args)),
    side(GO, go(args)),
    side(`${KE} ${WARNINGS}`, kubeecr([...args, WARNINGS])),
    side(`${GO} without Events`, go([...args, "--no-events"])),
    ...(opts.deno ? [side(DENO, denoRef(args))] : []),
    ...(opts.http1 ? [side(`${GO} over HTTP/1.1`, go([...args, "--http1"]))] : []),
    ...compareSide(args),
  ];
}

const noop = (id: string, title: string): Scenario => ({
  id,
  title,
  written: 0,
  rounds: NOOP_ROUNDS,
  sides: [side(KE, kubeecr([])), side(GO, go([])), ...compareSide([])],
});

try {
  // 1. Cold start: the cluster holds one annotated Secret. Its warm-up round
  // fills Deno's caches (transpiled modules, V8 code cache) for every scenario.
  await kube.json("POST", "/api/v1/namespaces", { metadata: { name: "bench-cold" } });
  await kube.json(
    "POST",
    secretPath("bench-cold"),
    pullSecret("bench-cold", "ecr-pull", REGIONS[0]),
  );
  await measureScenario({
    id: "cold",
    title: "cold start, 1 due Secret",
    written: 1,
    rounds: COLD_ROUNDS,
    sides: [
      side(KE, kubeecr(["--force"])),
      side(GO, go(["--force"])),
      side(DENO, denoRef(["--force"])),
      ...compareSide(["--force"]),
    ],
  }, { warmUp: true });
  await kube.json("DELETE", `${secretPath("bench-cold")}/ecr-pull`);

  // 2. The N annotated Secrets, one per namespace, over three regions.
  await createAll(
    "namespaces",
    range(SECRETS, (i) => ["/api/v1/namespaces", { metadata: { name: nsName(i) } }]),
    SECRETS,
  );
  await createAll(
    "annotated dockerconfigjson Secrets",
    range(SECRETS, (i) => [
      secretPath(nsName(i)),
      pullSecret(nsName(i), "ecr-pull", REGIONS[i % REGIONS.length]),
    ]),
    SECRETS,
  );
  const n = SECRETS.toLocaleString("en-US");
  for (const c of [4, 16]) {
    await measureScenario({
      id: `full-c${c}`,
      title:
        `full refresh, ${n} Secrets in ${n} namespaces, concurrency ${c}, one Event per Secret`,
      written: SECRETS,
      connections: true,
      sides: c === 4 ? fullSides(c, { deno: true, http1: true }) : [
        side(KE, kubeecr(["--force", `--concurrency=${c}`])),
        side(GO, go(["--force", `--concurrency=${c}`])),
        ...compareSide(["--force", `--concurrency=${c}`]),
      ],
    });
  }

  // 3. No-op: everything fresh.
  if (wanted("noop")) {
    await settleAll();
    await measureScenario(noop("noop", `no-op, ${n} fresh Secrets`));
  }

  // 4. Issue 7: unannotated dockerconfigjson Secrets of 500 KiB beside them.
  if (BIG > 0 && (wanted("noop-big") || wanted("full-c4-big"))) {
    const bigConfig = b64(
      JSON.stringify({ auths: { "registry.example.com": { auth: randomBase64(375 * 1024) } } }),
    );
    await createAll(
      "unannotated dockerconfigjson Secrets of 500 KiB",
      range(BIG, (i) => [secretPath(nsName(i % SECRETS)), {
        metadata: { name: "big-pull" },
        type: "kubernetes.io/dockerconfigjson",
        data: { ".dockerconfigjson": bigConfig },
      }]),
      BIG,
    );
    const beside = `, beside ${BIG} unannotated dockerconfigjson Secrets of 500 KiB`;
    if (wanted("noop-big")) {
      await settleAll();
      await measureScenario(noop("noop-big", `no-op, ${n} fresh Secrets${beside}`));
    }
    await measureScenario({
      id: "full-c4-big",
      title: `full refresh, concurrency 4, with Events${beside}`,
      written: SECRETS,
      sides: [
        side(KE, kubeecr(["--force", "--concurrency=4"])),
        side(GO, go(["--force", "--concurrency=4"])),
        ...compareSide(["--force", "--concurrency=4"]),
      ],
    });
    await forEachLimited(range(BIG, (i) => nsName(i % SECRETS)), 16, async (ns) => {
      await kube.json("DELETE", `${secretPath(ns)}/big-pull`, undefined, { accept: [404] });
    });
  }

  // 5. Many other Secrets: small Opaque ones and Helm-release sized ones.
  if (wanted("noop-others")) {
    await createAll(
      "small Opaque Secrets",
      range(OTHERS, (i) => [secretPath(nsName(i % SECRETS)), {
        metadata: { name: `opaque-${i}` },
        type: "Opaque",
        data: { "config.yaml": b64(`key: value-${i}\nother: ${"x".repeat(64)}\n`) },
      }]),
      OTHERS,
    );
    const release = randomBase64(256 * 1024);
    await createAll(
      "Opaque Secrets of 256 KiB",
      range(LARGE, (i) => [secretPath(nsName(i % SECRETS)), {
        metadata: {
          name: `sh.helm.release.v1.app-${i}.v1`,
          labels: { owner: "helm", name: `app-${i}`, status: "deployed", version: "1" },
        },
        type: "helm.sh/release.v1",
        data: { release },
      }]),
      LARGE,
    );
    await settleAll();
    await measureScenario(noop(
      "noop-others",
      `no-op, ${n} fresh Secrets, beside ${OTHERS.toLocaleString("en-US")} small Opaque ` +
        `Secrets and ${LARGE} of 256 KiB`,
    ));
  }

  // 6. Issue 19: SCALE annotated Secrets in all, in the same namespaces.
  if (SCALE > SECRETS && (wanted("full-scale") || wanted("noop-scale"))) {
    const more = SCALE - SECRETS;
    await createAll(
      "more annotated dockerconfigjson Secrets",
      range(more, (i) => {
        const at = SECRETS + i;
        const ns = nsName(at % SECRETS);
        return [secretPath(ns), pullSecret(ns, `ecr-pull-${at}`, REGIONS[at % REGIONS.length])];
      }),
      more,
    );
    const m = SCALE.toLocaleString("en-US");
    const beside = wanted("noop-others") ? ", beside the others above" : "";
    await measureScenario({
      id: "full-scale",
      title: `full refresh, ${m} Secrets in ${n} namespaces, concurrency 4${beside}`,
      written: SCALE,
      sides: fullSides(4),
    });
    if (wanted("noop-scale")) {
      await settleAll();
      await measureScenario(noop("noop-scale", `no-op, ${m} fresh Secrets${beside}`));
    }
  }
} finally {
  counter.close();
  kube.close();
  await ecr.close();
  await env.stop();
}

// --- the report ----------------------------------------------------------------

const loadAfter = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
const med = (x: Side, f: (s: Sample) => number) => median(x.samples.map(f));
const secs = (v: number) => v < 10 ? v.toFixed(2) : v.toFixed(1);
const int = (v: number) => Math.round(v).toLocaleString("en-US");
const ratio = (a: number, b: number) => b > 0 ? `${(a / b).toFixed(2)}×` : "–";

const plural = (v: number, word: string) => `${int(v)} ${word}${v === 1 ? "" : "s"}`;

function cell(x: Side): string {
  const l = med(x, lists);
  return `${secs(med(x, (s) => s.wall))} s wall, ${secs(med(x, (s) => s.cpu))} s CPU, ` +
    `${int(med(x, (s) => s.rssMiB))} MiB, ${plural(med(x, total), "request")} ` +
    `(${plural(l, "list")})`;
}

function ratios(a: Side, b: Side): string {
  return `${ratio(med(a, (s) => s.wall), med(b, (s) => s.wall))} wall, ` +
    `${ratio(med(a, (s) => s.cpu), med(b, (s) => s.cpu))} CPU, ` +
    `${ratio(med(a, (s) => s.rssMiB), med(b, (s) => s.rssMiB))} RSS`;
}

const out: string[] = [];
const print = (line = "") => out.push(line);
const date = startedAt.toISOString().slice(0, 10);
print(
  `KubeECR ${measured}${
    compared.length ? ` (and ${compared.join(", ")}, interleaved)` : ""
  } and a plain Go client (tests/bench/reference-go, ${goVersion}, net/http), ${date}: ` +
    (RUN_FLAGS.length ? `deno run ${RUN_FLAGS.join(" ")}, ` : "") +
    `Deno ${Deno.version.deno}, ` +
    `Kubernetes ${env.kubernetesVersion}, ${Deno.build.os}/${Deno.build.arch}, ` +
    `${navigator.hardwareConcurrency} CPUs (load average ${loadBefore} before, ${loadAfter} after: ` +
    `a machine shared with other work, so absolute figures are noisy; compare within a row); ` +
    `medians of ${ROUNDS} interleaved rounds (${NOOP_ROUNDS} for a no-op, ${COLD_ROUNDS} for ` +
    `cold start); ratio = KubeECR ÷ Go client. Both speak HTTP/2 to the API server (one ` +
    `connection) unless the row says otherwise; the ${DENO} is tests/bench/reference.ts.`,
);
print();
print("| scenario | KubeECR | Go client | ratio |");
print("| --- | --- | --- | --- |");
for (const s of scenarios) {
  if (flags.lean) {
    // Only KubeECRs: each checkout's ratio is to this one's.
    const [k, ...others] = s.sides;
    print(`| ${s.title} | ${cell(k)} | | |`);
    for (const x of others) print(`| same, ${x.label} | ${cell(x)} | | ${ratios(x, k)} of ${KE} |`);
    continue;
  }
  const [k, r, ...variants] = s.sides;
  print(`| ${s.title} | ${cell(k)} | ${cell(r)} | ${ratios(k, r)} |`);
  for (const v of variants) {
    // A reference variant: KubeECR ÷ it. Another KubeECR: it ÷ the reference.
    print(
      v.program === "reference"
        ? `| same, ${v.label} | | ${cell(v)} | ${ratios(k, v)} |`
        : `| same, ${v.label} | ${cell(v)} | | ${ratios(v, r)} |`,
    );
  }
}

print();
print("Spread (min–max over the rounds) and what each side did:");
print();
print("| scenario | side | wall s | CPU s | peak RSS MiB | requests | ECR calls | connections |");
print("| --- | --- | --- | --- | --- | --- | --- | --- |");
const span = (x: Side, f: (s: Sample) => number, fmt: (v: number) => string) => {
  const v = x.samples.map(f);
  const [lo, hi] = [Math.min(...v), Math.max(...v)];
  // ± half the range, relative to the smallest: "–" where that is zero.
  const spread = lo > 0 ? `±${((hi / lo - 1) * 50).toFixed(0)}%` : "–";
  return `${fmt(median(v))} (${fmt(lo)}–${fmt(hi)}, ${spread})`;
};
for (const s of scenarios) {
  for (const x of s.sides) {
    const last = x.samples.at(-1)!;
    const byKind = [...last.requests].sort().map(([k, v]) => `${k} ${v}`).join(", ");
    const bytes = last.listBytes === undefined
      ? ""
      : `; ${(last.listBytes / 1e6).toFixed(1)} MB of lists read`;
    print(
      `| ${s.id} | ${x.label} | ${span(x, (m) => m.wall, secs)} | ${
        span(x, (m) => m.cpu, secs)
      } | ` +
        `${span(x, (m) => m.rssMiB, int)} | ${byKind}${bytes} | ${last.ecrCalls} | ${
          x.connections ? `${x.connections.opened} opened, ≤ ${x.connections.peak} at once` : ""
        } |`,
    );
  }
}

// Issue 7: memory with and without the big unannotated Secrets, side by side.
const byId = new Map(scenarios.map((s) => [s.id, s]));
const pairs = [["noop", "noop-big"], ["full-c4", "full-c4-big"]]
  .filter(([a, b]) => byId.has(a) && byId.has(b));
if (pairs.length) {
  print();
  print(`Peak RSS without and with ${BIG} unannotated dockerconfigjson Secrets of 500 KiB:`);
  print();
  print("| run | side | without | with | difference |");
  print("| --- | --- | --- | --- | --- |");
  for (const [a, b] of pairs) {
    for (let i = 0; i < byId.get(b)!.sides.length; i++) {
      const label = byId.get(b)!.sides[i].label;
      const without = byId.get(a)!.sides.find((x) => x.label === label);
      if (!without) continue;
      const x = med(without, (s) => s.rssMiB);
      const y = med(byId.get(b)!.sides[i], (s) => s.rssMiB);
      print(
        `| ${a} | ${label} | ${int(x)} MiB | ${int(y)} MiB | ` +
          `${y >= x ? "+" : ""}${int(y - x)} MiB |`,
      );
    }
  }
}

// The targets of issues 19, 10 and 7, checked against this run's figures.
const targets: [string, boolean][] = [];
const sideOf = (id: string, label: string) => byId.get(id)?.sides.find((x) => x.label === label);
const wallOf = (x: Side) => med(x, (s) => s.wall);
const cpuOf = (x: Side) => med(x, (s) => s.cpu);
const rssOf = (x: Side) => med(x, (s) => s.rssMiB);
const by = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const mib = (v: number) => `${v.toFixed(0)} MiB`;
for (const id of ["full-c4", "full-scale"]) {
  const [k, g, w] = [sideOf(id, KE), sideOf(id, GO), sideOf(id, `${KE} ${WARNINGS}`)];
  if (!k || !g) continue;
  targets.push([
    `${id}: wall ≤ 1.0× the Go client's, saw ${by(wallOf(k), wallOf(g))}`,
    wallOf(k) <= wallOf(g),
  ]);
  targets.push([
    `${id}: CPU ≤ 1.3× the Go client's, saw ${by(cpuOf(k), cpuOf(g))}`,
    cpuOf(k) <= 1.3 * cpuOf(g),
  ]);
  if (w) {
    targets.push([
      `${id}: with ${WARNINGS}, wall ≤ 0.6× the full refresh with Events, saw ${
        by(wallOf(w), wallOf(k))
      }`,
      wallOf(w) <= 0.6 * wallOf(k),
    ]);
  }
}
const full = sideOf("full-c4", KE);
const quiet = sideOf("noop", KE);
if (full && quiet) {
  targets.push([
    `full-c4: peak RSS ≤ no-op's + 20 MiB, saw ${mib(rssOf(full))} vs ${mib(rssOf(quiet))} (+${
      mib(rssOf(full) - rssOf(quiet))
    })`,
    rssOf(full) <= rssOf(quiet) + 20,
  ]);
}
const fullScale = sideOf("full-scale", KE);
if (fullScale) {
  targets.push([
    `full-scale (${SCALE.toLocaleString("en-US")}): peak RSS ≤ 120 MiB, saw ${
      mib(rssOf(fullScale))
    }`,
    rssOf(fullScale) <= 120,
  ]);
}
const [noopScale, noopScaleGo] = [sideOf("noop-scale", KE), sideOf("noop-scale", GO)];
if (noopScale && noopScaleGo) {
  targets.push([
    `noop-scale: wall ≤ 1.3× the Go client's, saw ${by(wallOf(noopScale), wallOf(noopScaleGo))}`,
    wallOf(noopScale) <= 1.3 * wallOf(noopScaleGo),
  ]);
}
const cold = sideOf("cold", KE);
if (cold) {
  targets.push([
    `cold: wall ≤ 0.12 s (deno run), saw ${wallOf(cold).toFixed(2)} s`,
    wallOf(cold) <= 0.12,
  ]);
}
// Issue 10's that issue 19 did not replace: connections, lists, the no-op beside others.
for (const id of ["full-c4", "full-c16"]) {
  const k = sideOf(id, KE);
  const c = Number(id.slice("full-c".length));
  if (k?.connections) {
    targets.push([
      `${id}: connections ≤ ${c + 1}, saw ${k.connections.opened}`,
      k.connections.opened <= c + 1,
    ]);
  }
}
const others = sideOf("noop-others", KE);
if (others) {
  // ⌈N/500⌉, plus the empty last page the server answers when N is a multiple
  // of 500 and other Secrets sort after the last match: the Go client's count.
  const goOthers = sideOf("noop-others", GO);
  const want = Math.max(Math.ceil(SECRETS / PAGE), goOthers ? med(goOthers, lists) : 0);
  targets.push([`noop-others: wall ≤ 1.0 s (issue 10)`, wallOf(others) <= 1.0]);
  targets.push([
    `noop-others: ${want} list requests (⌈${SECRETS}/${PAGE}⌉, or the Go client's), saw ${
      med(others, lists)
    }`,
    med(others, lists) <= want,
  ]);
}
for (const [a, b] of pairs) {
  const [x, y] = [rssOf(byId.get(a)!.sides[0]), rssOf(byId.get(b)!.sides[0])];
  targets.push([`${b}: peak RSS ≤ ${a}'s + 30 MiB (issue 7)`, y <= x + 30]);
}
if (targets.length) {
  print();
  print("Targets (issue 19; issues 10 and 7 where 19 did not replace them), KubeECR's medians:");
  print();
  for (const [what, ok] of targets) print(`- ${ok ? "met" : "NOT met"}: ${what}`);
}
if (warnings.length) {
  print();
  print(`${warnings.length} warning(s): some runs did not do the expected work (see stderr).`);
}
console.log(out.join("\n"));
Deno.exit(warnings.length ? 1 : 0);
