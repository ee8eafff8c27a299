/**
 * Pods on the test environment's node, for the tests that pull: create one,
 * wait for what the kubelet made of it (Running, or an image-pull failure
 * with the registry's answer), read its container log.
 */

import { kubectl } from "../testenv/connect.ts";
import type { TestEnvInfo } from "../testenv/env.ts";
import type { NodeInfo } from "../testenv/node.ts";

/** The node, or a failure that says how to get one (the suite always starts it). */
export function nodeOf(env: TestEnvInfo): NodeInfo {
  if (!env.node) {
    throw new Error(
      "this test needs the test environment's node: run it under `deno task test`, " +
        "or alone as root (it then starts an environment with --node)",
    );
  }
  return env.node;
}

export interface PodSpec {
  name: string;
  image: string;
  pullSecrets?: string[];
  /** Always where a test proves expiry: the kubelet lets a cached image through otherwise. */
  pullPolicy?: "Always" | "IfNotPresent";
}

export async function createPod(env: TestEnvInfo, namespace: string, spec: PodSpec) {
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: spec.name, namespace },
    spec: {
      imagePullSecrets: (spec.pullSecrets ?? []).map((name) => ({ name })),
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      containers: [{
        name: "app",
        image: spec.image,
        imagePullPolicy: spec.pullPolicy ?? "Always",
      }],
    },
  };
  await defaultServiceAccount(env, namespace);
  await kubectl(env, ["create", "-f", "-"], JSON.stringify(pod));
}

/**
 * Waits for the namespace's `default` ServiceAccount, which the
 * controller-manager creates moments after the namespace: until then the
 * API server refuses pods there.
 */
export async function defaultServiceAccount(env: TestEnvInfo, namespace: string) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const found = await kubectl(env, ["-n", namespace, "get", "serviceaccounts", "-o", "name"]);
    if (found.split("\n").includes("serviceaccount/default")) return;
    if (Date.now() > deadline) {
      throw new Error(`no default ServiceAccount in ${namespace} after 30s`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export type PodOutcome =
  | { state: "Running" }
  | { state: "PullFailed"; reason: string; message: string };

/**
 * Waits until the pod's container runs or its image pull has failed; the
 * failure carries the kubelet's message (which quotes the registry, e.g.
 * "401 Unauthorized").
 */
export async function podOutcome(
  env: TestEnvInfo,
  namespace: string,
  name: string,
  timeoutMs = 60_000,
): Promise<PodOutcome> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const pod = JSON.parse(await kubectl(env, ["-n", namespace, "get", "pod", name, "-o", "json"]));
    const status = pod.status?.containerStatuses?.[0];
    if (status?.state?.running) return { state: "Running" };
    const waiting = status?.state?.waiting;
    if (waiting && ["ErrImagePull", "ImagePullBackOff"].includes(waiting.reason)) {
      // ImagePullBackOff's own message is only "Back-off pulling image"; the
      // pull's error is in the Failed event.
      const events = JSON.parse(
        await kubectl(env, [
          "-n",
          namespace,
          "get",
          "events",
          "-o",
          "json",
          "--field-selector",
          `involvedObject.name=${name},reason=Failed`,
        ]),
      );
      const messages = events.items.map((e: { message: string }) => e.message).join("\n");
      return {
        state: "PullFailed",
        reason: waiting.reason,
        message: `${waiting.message}\n${messages}`,
      };
    }
    last = JSON.stringify(pod.status);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `pod ${namespace}/${name}: neither running nor failed to pull; last status ${last}`,
  );
}

/** The pod's first container log, read where the kubelet writes it (see NodeInfo.podLogsDir). */
export async function podLog(env: TestEnvInfo, namespace: string, name: string): Promise<string> {
  const node = nodeOf(env);
  for await (const e of Deno.readDir(node.podLogsDir)) {
    if (e.name.startsWith(`${namespace}_${name}_`)) {
      const dir = `${node.podLogsDir}/${e.name}/app`;
      for await (const f of Deno.readDir(dir)) return await Deno.readTextFile(`${dir}/${f.name}`);
    }
  }
  return "";
}
