/**
 * Issue 15: the only outcome users care about — the pod starts. These tests
 * judge KubeECR by a real pull: the test environment's kubelet and
 * containerd pull from a registry that behaves like ECR (registry.ts: it
 * accepts exactly the newest unexpired password the ECR endpoint issued for
 * its region), with the Secret KubeECR wrote, parsed and matched to the image
 * by the kubelet's own code, not ours.
 *
 * Each test fails if KubeECR wrote a wrong host (the kubelet sends no
 * credentials), a wrong password or an expired token (the registry answers
 * 401), or dropped another registry's entry (that pod gets 401).
 *
 * Pods use imagePullPolicy Always: with IfNotPresent the kubelet's
 * KubeletEnsureSecretPulledImages lets a cached image through when the pod's
 * Secret has the uid of one that pulled it before, so a pod could start with
 * a dead token and prove nothing.
 */

import assert from "node:assert/strict";
import { freshNamespace, kubectl, testEnv } from "../testenv/connect.ts";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { aliasHosts, ECR_PUBLIC_HOST, ecrHost } from "../testenv/node.ts";
import { ECR_PUBLIC } from "../testenv/ecr_proxy.ts";
import { acceptTokensOf } from "../testenv/registry.ts";
import { MIN_TOKEN_LIFE_MS } from "../../lib/patch.ts";
import { b64, createSecret, runKubeecr } from "./cli.ts";
import { createPod, nodeOf, type PodOutcome, podOutcome } from "./pods.ts";

const env = await testEnv({ node: true });
const REPO = new URL("../../", import.meta.url).pathname;

/** A KubeECR run against `ns` only, through `proxy`; it must succeed. */
async function refresh(
  ns: string,
  proxy: { awsEnv: Record<string, string> },
  extra: string[] = [],
) {
  const run = await runKubeecr(env, ["--namespace", ns, ...extra], { aws: proxy.awsEnv });
  assert.equal(run.code, 0, run.stdout + run.stderr);
}

/** An ECR proxy whose tokens the node's registries accept. */
function ecrProxy() {
  return startEcrProxy(env.motoUrl, { onToken: acceptTokensOf(nodeOf(env)) });
}

function assertRunning(outcome: PodOutcome, what: string) {
  assert.deepEqual(outcome, { state: "Running" }, what);
}

function assert401(outcome: PodOutcome, what: string) {
  assert.equal(outcome.state, "PullFailed", `${what}: ${JSON.stringify(outcome)}`);
  if (outcome.state === "PullFailed") assert.match(outcome.message, /401 Unauthorized/, what);
}

let counter = 0;
/** A new pod of `image` with `secrets`: its outcome. Each call makes a pod of its own. */
async function pull(ns: string, image: string, secrets = ["ecr-pull"]): Promise<PodOutcome> {
  const name = `pull-${++counter}`;
  await createPod(env, ns, { name, image, pullSecrets: secrets, pullPolicy: "Always" });
  return await podOutcome(env, ns, name);
}

async function cleanup(ns: string) {
  await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
}

Deno.test("examples/usage: the Deployment's pod fails with 401 before KubeECR runs and runs after one run", async () => {
  const node = nodeOf(env);
  await using proxy = ecrProxy();
  const ns = `pull-example-${crypto.randomUUID().slice(0, 8)}`;
  // The example as users apply it, in a namespace of this test's own.
  const rendered = await kubectl(env, ["kustomize", `${REPO}examples/usage`]);
  await kubectl(env, ["apply", "-f", "-"], rendered.replaceAll("kubeecr-example", ns));
  try {
    const pods = async () =>
      JSON.parse(
        await kubectl(env, [
          "-n",
          ns,
          "get",
          "pods",
          "-l",
          "app.kubernetes.io/name=example-app",
          "-o",
          "json",
        ]),
      ).items as { metadata: { name: string } }[];
    let first: { metadata: { name: string } }[] = [];
    for (let i = 0; i < 120 && first.length === 0; i++) {
      first = await pods();
      if (first.length === 0) await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(first.length, 1, "the Deployment made its pod");
    assert401(await podOutcome(env, ns, first[0].metadata.name), "before the run");

    await refresh(ns, proxy);
    // A new pod, as a rollout would make: the failed one waits in back-off.
    await kubectl(env, ["-n", ns, "delete", "pod", first[0].metadata.name, "--wait=false"]);
    let next: string | undefined;
    for (let i = 0; i < 120 && !next; i++) {
      next = (await pods()).map((p) => p.metadata.name).find((n) => n !== first[0].metadata.name);
      if (!next) await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(next, "the Deployment replaced its pod");
    assertRunning(await podOutcome(env, ns, next), "after one run");
    assert.ok(node.registries.some((r) => r.host === ecrHost("123456789012", "us-west-2")));
  } finally {
    await cleanup(ns);
  }
});

Deno.test("an expired token: a new pod fails with 401, the next run refreshes it, a new pod runs", async () => {
  const node = nodeOf(env);
  await using proxy = ecrProxy();
  // The shortest lifetime KubeECR still writes (it refuses a token that dies within
  // MIN_TOKEN_LIFE_MS), plus a margin for the run itself: about a minute of waiting.
  const LIFETIME = MIN_TOKEN_LIFE_MS / 1000 + 5;
  proxy.tokenLifetime("us-west-2", LIFETIME);
  const ns = await freshNamespace(env, "pull-expiry");
  try {
    await createSecret(env, ns, { name: "ecr-pull", registries: "123456789012/us-west-2" });
    // A window shorter than the lifetime, so that the short token is accepted as live.
    await refresh(ns, proxy, ["--refresh-window", "3s"]);
    const issued = Date.now();
    assertRunning(await pull(ns, node.image), "with the fresh token");

    // Past the token's expiry (and the registry's 250 ms expiry watch).
    await new Promise((r) =>
      setTimeout(r, Math.max(0, issued + LIFETIME * 1000 + 1500 - Date.now()))
    );
    assert401(await pull(ns, node.image), "with the expired token");

    await refresh(ns, proxy, ["--refresh-window", "3s"]);
    assertRunning(await pull(ns, node.image), "after the next run");
    assert.equal(proxy.tokenCalls("us-west-2"), 2);
  } finally {
    await cleanup(ns);
  }
});

Deno.test("the Secret keeps another registry's entry: a pod pulling from that registry still runs", async () => {
  const node = nodeOf(env);
  await using proxy = ecrProxy();
  const ns = await freshNamespace(env, "pull-other");
  const { host, username, password } = node.other;
  const config = JSON.stringify({
    auths: { [host]: { username, password, auth: b64(`${username}:${password}`) } },
  });
  try {
    await createSecret(env, ns, {
      name: "ecr-pull",
      registries: "123456789012/us-west-2",
      dockerConfig: config,
    });
    // The entry works before KubeECR touches the Secret: the pod below proves the entry, not luck.
    assertRunning(await pull(ns, node.other.image), "the other registry, before the run");

    await refresh(ns, proxy);
    assertRunning(await pull(ns, node.image), "ECR, after the run");
    assertRunning(await pull(ns, node.other.image), "the other registry, after the run");
    // And without the Secret the other registry refuses: its pull above used the entry.
    assert401(await pull(ns, node.other.image, []), "the other registry, no Secret");
  } finally {
    await cleanup(ns);
  }
});

Deno.test("FIPS and dual-stack hosts: a pod pulling through each name runs with the entry written under it", async () => {
  const node = nodeOf(env);
  await using proxy = ecrProxy();
  const ns = await freshNamespace(env, "pull-hosts");
  const west = node.registries[0];
  const [fips, dual] = aliasHosts("123456789012", "us-west-2");
  assert.deepEqual(west.aliases, [fips, dual], "the node's us-west-2 registry answers both names");
  const image = (host: string) => `${host}/kubeecr-test/hello:1`;
  try {
    await createSecret(env, ns, { name: "ecr-pull", registries: `${fips}, ${dual}` });
    assert401(await pull(ns, image(dual)), "dual-stack, before the run");

    await refresh(ns, proxy);
    assert.equal(proxy.tokenCalls("us-west-2"), 1, "one token serves both names");
    assertRunning(await pull(ns, image(fips)), "through the FIPS host");
    assertRunning(await pull(ns, image(dual)), "through the dual-stack host");
    // The default host has no entry: the kubelet sends nothing for it, so the
    // pulls above used the entries of exactly those names.
    assert401(
      await pull(ns, west.image),
      "through the default host, which the Secret does not name",
    );
  } finally {
    await cleanup(ns);
  }
});

Deno.test("public.ecr.aws: a pod pulls from ECR Public with the token KubeECR wrote, and not without it", async () => {
  const node = nodeOf(env);
  await using proxy = ecrProxy();
  const ns = await freshNamespace(env, "pull-public");
  const registry = node.registries.find((r) => r.host === ECR_PUBLIC_HOST);
  assert.ok(registry, "the node has an ECR Public registry");
  try {
    await createSecret(env, ns, { name: "ecr-pull", registries: `${ECR_PUBLIC_HOST}` });
    assert401(await pull(ns, registry.image), "before the run");

    await refresh(ns, proxy);
    assert.equal(proxy.tokenCalls(ECR_PUBLIC), 1);
    assert.equal(proxy.tokenCalls(), 1, "no ECR call");
    assertRunning(await pull(ns, registry.image), "after the run");
    assert401(await pull(ns, registry.image, []), "without the Secret");
  } finally {
    await cleanup(ns);
  }
});

Deno.test("two ECR regions in one Secret: a pod per region runs", async () => {
  const node = nodeOf(env);
  await using proxy = ecrProxy();
  const ns = await freshNamespace(env, "pull-regions");
  const [west, central] = node.registries;
  assert.deepEqual([west.region, central.region], ["us-west-2", "eu-central-1"]);
  try {
    await createSecret(env, ns, {
      name: "ecr-pull",
      registries: "123456789012/us-west-2, 123456789012/eu-central-1",
    });
    assert401(await pull(ns, central.image), "eu-central-1 before the run");

    await refresh(ns, proxy);
    assert.equal(proxy.tokenCalls("us-west-2"), 1);
    assert.equal(proxy.tokenCalls("eu-central-1"), 1);
    assertRunning(await pull(ns, west.image), "us-west-2");
    assertRunning(await pull(ns, central.image), "eu-central-1");
  } finally {
    await cleanup(ns);
  }
});

Deno.test("a GitOps re-apply puts the placeholder back: the pod fails, the next run repairs it", async () => {
  const node = nodeOf(env);
  await using proxy = ecrProxy();
  const ns = await freshNamespace(env, "pull-gitops");
  // The Secret as a GitOps repository holds it (examples/usage/secret.yaml), applied by a tool.
  const manifest = (await Deno.readTextFile(`${REPO}examples/usage/secret.yaml`))
    .replace("name: ecr-pull", `name: ecr-pull\n  namespace: ${ns}`);
  const apply = () =>
    kubectl(env, [
      "apply",
      "--server-side",
      "--force-conflicts",
      "--field-manager=argocd",
      "-f",
      "-",
    ], manifest);
  try {
    await apply();
    await refresh(ns, proxy);
    assertRunning(await pull(ns, node.image), "after the first run");

    await apply();
    assert401(await pull(ns, node.image), "after the re-apply");

    await refresh(ns, proxy);
    assertRunning(await pull(ns, node.image), "after the next run");
  } finally {
    await cleanup(ns);
  }
});

Deno.test("role map: each tenant's pod pulls with its role's token, a refused tenant's pod does not", async () => {
  const node = nodeOf(env);
  await using proxy = ecrProxy();
  const [west, central] = node.registries;
  const id = crypto.randomUUID().slice(0, 6);
  const [a, b, c] = ["a", "b", "c"].map((t) => `tenant-${t}-${id}`);
  const ROLE_A = "arn:aws:iam::210987654321:role/ecr-pull-team-a";
  const ROLE_B = "arn:aws:iam::444444444444:role/ecr-pull-team-b";
  // The node's registries are account 123456789012's: team-a pulls from its us-west-2 registry
  // as ROLE_A, team-b (by label) from eu-central-1 as ROLE_B, tenant-c is in no entry.
  const map = await Deno.makeTempFile({ dir: env.dir, prefix: "roles-", suffix: ".yaml" });
  await Deno.writeTextFile(
    map,
    `roles:
  - role: ${ROLE_A}
    accounts: ["123456789012"]
    namespaces: ["${a}"]
  - role: ${ROLE_B}
    accounts: ["123456789012"]
    namespaceSelector: tenant=b-${id}
`,
  );
  for (const ns of [a, b, c]) await kubectl(env, ["create", "namespace", ns]);
  await kubectl(env, ["label", "namespace", b, `tenant=b-${id}`]);
  try {
    await createSecret(env, a, { name: "ecr-pull", registries: "123456789012/us-west-2" });
    await createSecret(env, b, { name: "ecr-pull", registries: "123456789012/eu-central-1" });
    await createSecret(env, c, { name: "ecr-pull", registries: "123456789012/us-west-2" });
    const run = await runKubeecr(env, ["--roles", map, "--namespace", `${a},${b},${c}`], {
      aws: proxy.stsEnv,
    });
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout, new RegExp(`failed secret=${c}/ecr-pull reason=NotAllowedByRoleMap`));
    assert.deepEqual(Object.fromEntries(proxy.roleTokenCalls), {
      [`${ROLE_A}|us-west-2`]: 1,
      [`${ROLE_B}|eu-central-1`]: 1,
    });
    assertRunning(await pull(a, west.image), "team-a as its role");
    assertRunning(await pull(b, central.image), "team-b as its role");
    assert401(await pull(c, west.image), "tenant-c, refused by the map");
  } finally {
    for (const ns of [a, b, c]) await cleanup(ns);
  }
});
