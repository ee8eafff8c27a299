/**
 * Proves the test environment is real: a real API server with RBAC and
 * service-account tokens, reachable by kubectl and by client-node under Deno,
 * and moto answering the AWS SDK.
 */

import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { freshNamespace, kubeConfigFor, kubectl, testEnv } from "../testenv/connect.ts";

const env = await testEnv();

Deno.test("kubectl reports the server version the environment was built from", async () => {
  const out = JSON.parse(await kubectl(env, ["version", "-o", "json"]));
  assert.equal(out.serverVersion.gitVersion, env.kubernetesVersion);
  assert.match(env.kubernetesVersion, /^v1\.(3[4-9]|[4-9]\d)\.\d+$/);
});

Deno.test("a Secret written with kubectl as admin reads back through client-node with the client certificate", async () => {
  const ns = await freshNamespace(env, "env-secret");
  await kubectl(env, ["-n", ns, "create", "secret", "generic", "probe", "--from-literal=k=v1"]);
  const core = kubeConfigFor(env, "admin").makeApiClient(k8s.CoreV1Api);
  const secret = await core.readNamespacedSecret({ namespace: ns, name: "probe" });
  assert.equal(atob(secret.data?.k ?? ""), "v1");
});

Deno.test("an identity without RBAC grants is refused with 403", async () => {
  const core = kubeConfigFor(env, "nobody").makeApiClient(k8s.CoreV1Api);
  await assert.rejects(
    core.listNamespacedSecret({ namespace: "default" }),
    (err: unknown) => err instanceof k8s.ApiException && err.code === 403,
  );
});

Deno.test("a ServiceAccount token from TokenRequest authenticates as that ServiceAccount", async () => {
  const ns = await freshNamespace(env, "env-token");
  await kubectl(env, ["-n", ns, "create", "serviceaccount", "robot"]);
  const token = (await kubectl(env, ["-n", ns, "create", "token", "robot"])).trim();
  const authn = kubeConfigFor(env, { token }).makeApiClient(k8s.AuthenticationV1Api);
  const review = await authn.createSelfSubjectReview({ body: {} });
  assert.equal(review.status?.userInfo?.username, `system:serviceaccount:${ns}:robot`);
  // Authenticated is not authorized: the fresh ServiceAccount has no grants.
  const core = kubeConfigFor(env, { token }).makeApiClient(k8s.CoreV1Api);
  await assert.rejects(
    core.listNamespacedSecret({ namespace: ns }),
    (err: unknown) => err instanceof k8s.ApiException && err.code === 403,
  );
});

Deno.test("moto answers GetAuthorizationToken to client-ecr pointed at it by AWS_ENDPOINT_URL_ECR alone", async () => {
  const probe = new URL("./fixtures/ecr_probe.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=cronjob", "--allow-net=127.0.0.1", probe],
    env: { ...env.awsEnv, AWS_ENDPOINT_URL_STS: "", AWS_ENDPOINT_URL: "" },
    clearEnv: true,
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const answer = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(answer.username, "AWS");
  assert.ok(answer.passwordLength > 0);
  assert.match(answer.proxyEndpoint, /^https:\/\/\d{12}\.dkr\.ecr\.us-east-1\.amazonaws\.com$/);
});
