/**
 * `deno task testenv` is an interface other tooling relies on: one
 * `ready: source <path>` line on stdout; a file that gives a working kubectl
 * and the AWS_* variables; SIGTERM stops every server and removes the
 * directory.
 */

import assert from "node:assert/strict";
import { firstLine, processesUsing, readyLine, spawnTestenv } from "./processes.ts";
import { isAlive, run } from "../testenv/util.ts";

Deno.test("deno task testenv prints one ready line whose file gives kubectl and AWS settings, and SIGTERM cleans up", async () => {
  const child = spawnTestenv([]);
  try {
    const { envFile, dir } = await readyLine(child.stdout);

    const out = await run("bash", [
      "-c",
      `source '${envFile}' && kubectl get namespaces -o name && command -v kubectl && ` +
      'echo "ecr=$AWS_ENDPOINT_URL_ECR sts=$AWS_ENDPOINT_URL_STS region=$AWS_REGION key=${AWS_ACCESS_KEY_ID:+set}"',
    ]);
    assert.match(out, /^namespace\/default$/m);
    assert.match(out, /\/kubectl$/m);
    assert.ok(!out.includes("/usr/bin/kubectl"), "the environment's kubectl comes first on PATH");
    assert.match(
      out,
      /^ecr=http:\/\/127\.0\.0\.1:\d+ sts=http:\/\/127\.0\.0\.1:\d+ region=\S+ key=set$/m,
    );

    child.kill("SIGTERM");
    await child.status;
    const gone = await Deno.stat(dir).then(() => false, () => true);
    assert.ok(gone, `${dir} was removed`);
    assert.deepEqual(await processesUsing(dir), [], "no server of the environment is left");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.stdout.cancel().catch(() => {});
  }
});

/** Whether SIGTERM waits to be delivered to `pid` (it is stopped), from /proc/<pid>/status. */
async function sigtermPending(pid: number): Promise<boolean> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  const SIGTERM = 1n << 14n;
  return [...status.matchAll(/^(?:ShdPnd|SigPnd):\s*([0-9a-f]+)$/gm)]
    .some((m) => (BigInt(`0x${m[1]}`) & SIGTERM) !== 0n);
}

Deno.test("Ctrl-C (SIGINT to the whole process group, and again from deno task) removes the directory even when the API server is slow to stop", async () => {
  // A process group of its own, as a terminal gives a foreground job.
  const child = spawnTestenv([], { ownGroup: true });
  const group = child.pid;
  let dir: string | undefined;
  let apiserver: number | undefined;
  try {
    const match = /^ready: source (\/\S+)\/env\.sh$/.exec(await firstLine(child.stdout));
    assert.ok(match, "the environment started");
    dir = match[1];
    const [owner, ...servers] = (await Deno.readTextFile(`${dir}/owner.pid`)).split("\n")
      .map(Number);
    for (const pid of servers) {
      const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
      if (cmdline.includes("kube-apiserver")) apiserver = pid;
    }
    assert.ok(apiserver, "the API server is one of the environment's processes");
    // The API server takes its time: stopped, it answers no signal until the
    // environment's stop() gives up waiting and SIGKILLs it (after 5 s).
    Deno.kill(apiserver, "SIGSTOP");

    Deno.kill(-group, "SIGINT");
    // deno task forwards its own copy of the signal to the task's process.
    // Sent here explicitly once stop() is under way (it has sent the API
    // server SIGTERM, pending while it is stopped), so the test does not
    // depend on when the copy arrives.
    const stopping = Date.now() + 10_000;
    while (!(await sigtermPending(apiserver)) && Date.now() < stopping) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (isAlive(owner)) Deno.kill(owner, "SIGINT");

    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (!(await Deno.stat(dir).then(() => true, () => false))) break;
      // Another run's reaper removes an environment whose owner died: the
      // directory must be gone before its owner exits, not after.
      assert.ok(
        isAlive(owner) || !(await Deno.stat(dir).then(() => true, () => false)),
        `the environment's process ${owner} exited and left ${dir} behind`,
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(!(await Deno.stat(dir).then(() => true, () => false)), `${dir} was removed`);
    assert.deepEqual(await processesUsing(dir), [], "no server of the environment is left");
  } finally {
    await child.stdout.cancel().catch(() => {});
    try {
      Deno.kill(-group, "SIGKILL");
    } catch { /* already gone */ }
    if (apiserver && isAlive(apiserver)) {
      try {
        Deno.kill(apiserver, "SIGKILL");
      } catch { /* already gone */ }
    }
    await child.status;
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
