/**
 * `deno task demo` is README's first command: it must keep working, show the
 * refresh and the fresh second run, and never print a token.
 */

import assert from "node:assert/strict";
import { testEnv } from "../testenv/connect.ts";
import { recordCliOutput } from "./cli.ts";

const REPO = new URL("../../", import.meta.url).pathname;

Deno.test("deno task demo refreshes the example Secret, the pod goes from ErrImagePull to Running, then the Secret is fresh, and no token shows", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "demo"],
    cwd: REPO,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  // The demo's output goes into the suite's leak scan like every CLI run.
  await recordCliOutput(await testEnv(), {
    args: ["(deno task demo)"],
    code: out.code,
    stdout,
    stderr,
  });

  assert.equal(out.code, 0, stdout + stderr);
  assert.match(stdout, /^\s*\.dockerconfigjson auths: \(none\)$/m, "before: no registry");
  assert.match(stdout, / INFO refreshed secret=kubeecr-example\/ecr-pull /);
  assert.match(
    stdout,
    /^\s*\.dockerconfigjson auths: 123456789012\.dkr\.ecr\.us-west-2\.amazonaws\.com$/m,
  );
  assert.match(stdout, /kubeecr\.deft\.com\/expires-at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
  assert.match(stdout, /Normal\s+Refreshed\s+Secret\/ecr-pull/);
  assert.match(stdout, / INFO fresh secret=kubeecr-example\/ecr-pull /);
  assert.match(stdout, /calls seen by the ECR endpoint in all: 1$/m);
  // With the node (the suite runs as root): the pod cannot pull before the run, and runs after it.
  const before = stdout.indexOf("cannot pull its image");
  const after = stdout.indexOf("pulls with the refreshed Secret");
  assert.ok(before > 0 && after > before, "the demo shows the pod before and after the run");
  assert.match(
    stdout.slice(before, after),
    /example-app-\S+\s+0\/1\s+(ErrImagePull|ImagePullBackOff)\s/,
  );
  assert.match(stdout.slice(before, after), /kubelet: .*401 Unauthorized/);
  assert.match(stdout.slice(after), /example-app-\S+\s+1\/1\s+Running\s/);
});
