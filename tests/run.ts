/**
 * `deno task test`: starts one test environment (etcd, kube-apiserver, moto),
 * runs every test under tests/ against it, stops it, and ends with the plain
 * summary line `N passed, N failed[, N skipped]` taken from the test
 * runner's own counts. Extra arguments go to `deno test`, e.g.
 *
 *   deno task test --filter annotation
 *
 * Integration tests find the environment through KUBEECR_TESTENV (the path of
 * its testenv.json); run alone with `deno test -A <file>` they start their own.
 */

import { AssetError } from "./testenv/assets.ts";
import { startTestEnv } from "./testenv/env.ts";

let env;
try {
  env = await startTestEnv();
} catch (err) {
  console.error(err instanceof AssetError ? `test: ${err.message}` : err);
  Deno.exit(2);
}

const child = new Deno.Command(Deno.execPath(), {
  args: ["test", "--allow-all", "--no-prompt", ...Deno.args, "tests/"],
  env: { KUBEECR_TESTENV: `${env.dir}/testenv.json`, NO_COLOR: "1" },
  stdout: "piped",
  stderr: "inherit",
}).spawn();
// The environment's own handlers stop the servers; the test process goes too.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  Deno.addSignalListener(signal, () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  });
}

// Echo the runner's output and keep its summary line:
//   "ok | 41 passed (12 steps) | 0 failed | 1 ignored (38s)"
let summary: string | undefined;
let pending = "";
const encoder = new TextEncoder();
for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
  await Deno.stdout.write(encoder.encode(chunk));
  pending += chunk;
  const lines = pending.split("\n");
  pending = lines.pop()!;
  summary = lines.findLast((l) => /^(ok|FAILED) \| \d+ passed/.test(l)) ?? summary;
}
const status = await child.status;
await env.stop();

const count = (word: string) => Number(summary?.match(new RegExp(`(\\d+) ${word}`))?.[1] ?? 0);
if (!summary) {
  console.log("0 passed, 1 failed (deno test printed no summary: it did not run to the end)");
  Deno.exit(status.code || 1);
}
const skipped = count("ignored");
console.log(
  `${count("passed")} passed, ${count("failed")} failed${skipped ? `, ${skipped} skipped` : ""}`,
);
Deno.exit(status.code);
