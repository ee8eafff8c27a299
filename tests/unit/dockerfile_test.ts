// The Dockerfile cannot run `deno task compile` (a --target after the task
// name goes to the program, not to compile), so it spells the command out:
// this keeps it the task's command, plus --target, and nothing else.

import assert from "node:assert/strict";

const repo = new URL("../../", import.meta.url);
const task: string = JSON.parse(await Deno.readTextFile(new URL("deno.json", repo))).tasks.compile;
const dockerfile = await Deno.readTextFile(new URL("Dockerfile", repo));

/** Words of a command with `--target <value>` taken out. */
function withoutTarget(command: string): { words: string[]; target?: string } {
  const words = command.trim().split(/\s+/);
  const at = words.indexOf("--target");
  if (at < 0) return { words };
  return { words: words.toSpliced(at, 2), target: words[at + 1] };
}

Deno.test("Dockerfile: deno compile is the compile task plus --target", () => {
  const lines = dockerfile.split("\n").filter((l) =>
    /\bdeno compile\b/.test(l) && !/^\s*#/.test(l)
  );
  assert.equal(lines.length, 1, `one deno compile in the Dockerfile: ${lines}`);
  const command = lines[0].replace(/^.*?(deno compile)/, "$1");
  const docker = withoutTarget(command);
  assert.deepEqual(docker.words, task.split(/\s+/));
  assert.equal(docker.target, '"$target"');
  assert.equal(withoutTarget(task).target, undefined, "the task itself builds for the host");
});

Deno.test("Dockerfile: the build stage runs on the build platform, the final stage as 65532", () => {
  assert.match(dockerfile, /^FROM --platform=\$BUILDPLATFORM denoland\/deno:\S+ AS build$/m);
  assert.match(dockerfile, /^ARG TARGETARCH$/m);
  for (const target of ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]) {
    assert.ok(dockerfile.includes(target), target);
  }
  assert.match(dockerfile, /^USER 65532:65532$/m);
});

Deno.test("Dockerfile: PROXY_HOST adds exactly one host to the cronjob set before compiling", () => {
  assert.match(dockerfile, /^ARG PROXY_HOST=""$/m);
  assert.match(dockerfile, /j\.permissions\.cronjob\.net\.push\(Deno\.env\.get\("PROXY_HOST"\)\)/);
  assert.ok(
    dockerfile.indexOf("ARG PROXY_HOST") < dockerfile.indexOf("deno compile -P=cronjob"),
    "before the compile step",
  );
});

Deno.test("release workflow: its deno compile has the compile task's V8 and code-cache flags", async () => {
  // The released binaries take the `local` permission set (they run outside
  // a cluster too) and --frozen, but must be tuned as the image's binary is.
  const workflow = await Deno.readTextFile(new URL(".github/workflows/release.yml", repo));
  const compiles = workflow.split("\n").filter((l) => /^\s*deno compile\b/.test(l));
  assert.equal(compiles.length, 1, `one deno compile in release.yml: ${compiles}`);
  const runtimeFlags = (words: string[]) =>
    words.filter((w) => w.startsWith("--v8-flags=") || w === "--no-code-cache");
  assert.deepEqual(
    runtimeFlags(compiles[0].trim().split(/\s+/)),
    runtimeFlags(task.split(/\s+/)),
  );
});
