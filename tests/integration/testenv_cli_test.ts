/**
 * `deno task testenv` is an interface other tooling relies on: one
 * `ready: source <path>` line on stdout; a file that gives a working kubectl
 * and the AWS_* variables; SIGTERM stops every server and removes the
 * directory.
 */

import assert from "node:assert/strict";
import { run } from "../testenv/util.ts";

const REPO = new URL("../../", import.meta.url).pathname;

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    if (text.includes("\n")) break;
  }
  return text.split("\n")[0];
}

/** Pids of processes whose command line or environment names `dir`. */
async function processesUsing(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const read = (f: string) => Deno.readTextFile(`/proc/${entry.name}/${f}`).catch(() => "");
    if ((await read("cmdline")).includes(dir) || (await read("environ")).includes(dir)) {
      pids.push(Number(entry.name));
    }
  }
  return pids;
}

Deno.test("deno task testenv prints one ready line whose file gives kubectl and AWS settings, and SIGTERM cleans up", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "testenv"],
    cwd: REPO,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const line = await firstLine(child.stdout);
    const match = /^ready: source (\/\S+\/env\.sh)$/.exec(line);
    assert.ok(match, `unexpected first line: ${JSON.stringify(line)}`);
    const envFile = match[1];
    const dir = envFile.slice(0, envFile.lastIndexOf("/"));

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
