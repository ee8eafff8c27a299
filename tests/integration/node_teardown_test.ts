/**
 * `deno task testenv --node` beside the suite's own environment (so it also
 * proves that two nodes run at once: own loopback addresses, own cgroup
 * root, own mount namespace): the ready line's env.sh names the node and the
 * test image, a pod runs, and Ctrl-C (SIGINT) leaves nothing behind — no
 * process, no mount, no cgroup, no claim on the sysctls the kubelet changed.
 */

import assert from "node:assert/strict";
import { processesUsing, readyLine, spawnTestenv } from "./processes.ts";
import { cgroupsLeft, leftoversOf, processesIn } from "../testenv/node.ts";
import { run } from "../testenv/util.ts";
import type { TestEnvInfo } from "../testenv/env.ts";
import { createPod, podOutcome } from "./pods.ts";
import { kubectl } from "../testenv/connect.ts";

Deno.test("deno task testenv --node: env.sh names the node and image, a pod runs, Ctrl-C leaves nothing behind", async () => {
  // A process group of its own, as a terminal gives a foreground job: Ctrl-C reaches all of it.
  const child = spawnTestenv(["--node"], { ownGroup: true });
  try {
    const { envFile, dir } = await readyLine(child.stdout);
    const info = JSON.parse(await Deno.readTextFile(`${dir}/testenv.json`)) as TestEnvInfo;
    const node = info.node!;

    const out = await run("bash", [
      "-c",
      `source '${envFile}' && echo "node=$KUBEECR_TESTENV_NODE image=$KUBEECR_TESTENV_IMAGE" && ` +
      'kubectl get node "$KUBEECR_TESTENV_NODE" -o jsonpath=\'{.status.conditions[?(@.type=="Ready")].status}\'',
    ]);
    assert.equal(out, `node=${node.name} image=${node.image}\nTrue`);
    assert.equal(node.image, "123456789012.dkr.ecr.us-west-2.amazonaws.com/kubeecr-test/hello:1");

    // A running container (and its shim), so that teardown has something to end.
    await kubectl(info, ["create", "namespace", "teardown"]);
    await kubectl(info, [
      "-n",
      "teardown",
      "create",
      "secret",
      "docker-registry",
      "other",
      `--docker-server=${node.other.host}`,
      `--docker-username=${node.other.username}`,
      `--docker-password=${node.other.password}`,
    ]);
    await createPod(info, "teardown", {
      name: "p",
      image: node.other.image,
      pullSecrets: ["other"],
    });
    assert.deepEqual(await podOutcome(info, "teardown", "p"), { state: "Running" });

    assert.ok((await processesIn(node.mountNamespace)).length > 0, "the namespace is in use");
    assert.ok((await cgroupsLeft(node.cgroupRoot)).length > 0, "the cgroup root exists");

    // Ctrl-C: SIGINT to the whole process group.
    Deno.kill(-child.pid, "SIGINT");
    const status = await child.status;
    assert.equal(status.code, 130);

    assert.ok(await Deno.stat(dir).then(() => false, () => true), `${dir} was removed`);
    assert.deepEqual(await processesUsing(dir), [], "no process names the directory");
    // No process in its mount namespace, no cgroup, no mount, its sysctl claim
    // released (and with no other node running, the values restored; under
    // `deno task test` the suite's node still holds them and tests/run.ts
    // checks them once it has stopped).
    assert.deepEqual(await leftoversOf(dir, node), []);
  } finally {
    await child.stdout.cancel().catch(() => {});
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch { /* already exited */ }
    await child.status;
  }
});
