/**
 * `deno task test`: starts one test environment (etcd, kube-apiserver, moto,
 * and the node: containerd, kubelet, controller-manager, scheduler and the
 * registries that behave like ECR; see tests/testenv/node.ts),
 * runs every test under tests/ against it, stops it, and ends with the plain
 * summary line `N passed, N failed[, N skipped]` taken from the test
 * runner's own counts. Extra arguments go to `deno test`, e.g.
 *
 *   deno task test --filter annotation
 *
 * Two passes: tests/unit and tests/integration first, then tests/final, which
 * checks what the first pass left behind (every byte the CLI printed).
 *
 * Integration tests find the environment through KUBEECR_TESTENV (the path of
 * its testenv.json); run alone with `deno test -A <file>` they start their own.
 */

import { AssetError } from "./testenv/assets.ts";
import { startTestEnv, type TestEnv } from "./testenv/env.ts";
import { leftoversOf } from "./testenv/node.ts";

interface Counts {
  passed: number;
  failed: number;
  ignored: number;
  summarized: boolean;
  code: number;
}

let env: TestEnv;
try {
  // The node needs root; the pull and smoke tests need the node.
  env = await startTestEnv({ node: true });
} catch (err) {
  console.error(err instanceof AssetError ? `test: ${err.message}` : err);
  Deno.exit(2);
}

let current: Deno.ChildProcess | undefined;
// The environment's own handlers stop the servers here. The test process gets
// the same signal, so that environments it started itself (the in-cluster
// tests start private ones) are stopped by their own handlers too.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  Deno.addSignalListener(signal, () => {
    try {
      current?.kill(signal);
    } catch { /* already gone */ }
  });
}

/** Runs one `deno test` pass, echoing its output and keeping its summary line. */
async function pass(paths: string[]): Promise<Counts> {
  current = new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", "--no-prompt", ...Deno.args, ...paths],
    env: { KUBEECR_TESTENV: `${env.dir}/testenv.json`, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // e.g. "ok | 41 passed (12 steps) | 0 failed | 1 ignored (38s)"
  let summary: string | undefined;
  let pending = "";
  const encoder = new TextEncoder();
  for await (const chunk of current.stdout.pipeThrough(new TextDecoderStream())) {
    await Deno.stdout.write(encoder.encode(chunk));
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    summary = lines.findLast((l) => /^(ok|FAILED) \| \d+ passed/.test(l)) ?? summary;
  }
  const { code } = await current.status;
  const count = (word: string) => Number(summary?.match(new RegExp(`(\\d+) ${word}`))?.[1] ?? 0);
  return {
    passed: count("passed"),
    failed: count("failed"),
    ignored: count("ignored"),
    summarized: summary !== undefined,
    code,
  };
}

const passes: Counts[] = [];
try {
  passes.push(await pass(["tests/unit/", "tests/integration/"]));
  passes.push(await pass(["tests/final/"]));
} finally {
  await env.stop();
}
// The node's teardown, checked once it is done: nothing of it may be left
// (tests/integration/node_teardown_test.ts checks another environment's).
let leftovers: string[] = [];
if (env.node) {
  leftovers = await leftoversOf(env.dir, env.node);
  for (const l of leftovers) console.log(`the test environment's node left behind ${l}`);
}

const total = (k: "passed" | "failed" | "ignored") => passes.reduce((n, p) => n + p[k], 0);
const unfinished = passes.filter((p) => !p.summarized).length;
const failed = total("failed") + unfinished + (leftovers.length ? 1 : 0);
const skipped = total("ignored");
if (unfinished) {
  console.log(`${unfinished} test pass(es) printed no summary: they did not run to the end`);
}
console.log(`${total("passed")} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
Deno.exit(failed > 0 ? 1 : Math.max(...passes.map((p) => p.code)));
