/**
 * KubeECR as a pod of its own CronJob, on the test environment's node:
 * `tests/smoke/smoke.sh --testenv` builds the image from the working tree
 * (tests/testenv/kubeecr_image.ts), imports it into the node's containerd,
 * installs the manifests with it, and checks that a Job from the CronJob
 * refreshes a Secret through https://kubernetes.default.svc and the ECR
 * stand-in under its AWS name on 443, that a pod then pulls with that
 * Secret, and that a bad annotation fails its Job with exit code 1.
 *
 * What only a hosted runner proves (ci.yml, release.yml): the compiled
 * binary, the Dockerfile's distroless image, kind, arm64.
 */

import assert from "node:assert/strict";
import { testEnv } from "../testenv/connect.ts";
import { recordCliOutput } from "./cli.ts";
import { nodeOf } from "./pods.ts";

const REPO = new URL("../../", import.meta.url).pathname;

Deno.test("smoke.sh --testenv: the CronJob's Job refreshes a Secret, a pod pulls with it, a bad annotation fails its Job", async () => {
  const env = await testEnv({ node: true });
  nodeOf(env);
  const kubectlDir = env.kubectl.slice(0, env.kubectl.lastIndexOf("/"));
  const denoDir = Deno.execPath().slice(0, Deno.execPath().lastIndexOf("/"));
  const out = await new Deno.Command("bash", {
    args: [`${REPO}tests/smoke/smoke.sh`, "--testenv"],
    cwd: REPO,
    env: {
      KUBECONFIG: env.kubeconfig,
      PATH: `${kubectlDir}:${denoDir}:${Deno.env.get("PATH")}`,
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  await recordCliOutput(env, { args: ["(smoke.sh --testenv)"], code: out.code, stdout, stderr });
  assert.equal(out.code, 0, stdout + stderr);
  for (
    const step of [
      "a Job refreshes an annotated Secret",
      "a pod pulls from the ECR stand-in with the refreshed Secret",
      "a Job fails cleanly on a bad annotation",
      "smoke test passed for the working tree",
    ]
  ) {
    assert.match(stderr, new RegExp(`^::: ${step}$`, "m"));
  }
});
