/**
 * The in-cluster smoke test: install KubeECR as a user would
 * (`kubectl apply -k examples/installation`), then run the program exactly as
 * the CronJob's pod would — the container's args and env read back from the
 * API server, the ServiceAccount's token and CA at
 * /var/run/secrets/kubernetes.io/serviceaccount/, the API server reached as
 * https://kubernetes.default.svc, and the `cronjob` Deno permission set.
 *
 * The pod's filesystem view is made with a private mount namespace
 * (`unshare -m`): a tmpfs over /run holds the token files and a bind mount
 * replaces /etc/hosts, so nothing on the machine changes. Needs root (as CI
 * and the developers' machines here are) or passwordless sudo (as a hosted
 * CI runner has).
 *
 * Each variant gets a test environment of its own, so RBAC and the audit log
 * show only what that install did.
 */

import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { kubeConfigFor } from "../testenv/connect.ts";
import { kubectl, startTestEnv, type TestEnv } from "../testenv/env.ts";
import { auditRecords, recordCliOutput } from "./cli.ts";
import { copyInstallation } from "./install.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const SA_USER = "system:serviceaccount:kubeecr:kubeecr";
const ACCOUNT = "123456789012";
const REGION = "us-west-2";
const HOST = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com`;
// Names the sandbox allows (and one look-alike it must not), all pointed at
// 127.0.0.1 by the private /etc/hosts.
const ECR_NAME = `api.ecr.${REGION}.amazonaws.com`;
const LOOKALIKE = "evil-amazonaws.com";

// Mounts the pod's view, then runs the program. Arguments: token dir, hosts file, command...
const POD_VIEW = `set -eu
sa="$1"; hosts="$2"; shift 2
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
cp "$sa"/token "$sa"/ca.crt "$sa"/namespace /run/secrets/kubernetes.io/serviceaccount/
mount --bind "$hosts" /etc/hosts
exec "$@"
`;

interface PodRun {
  code: number;
  stdout: string;
  stderr: string;
}

async function annotatedSecret(env: TestEnv, namespace: string, name = "ecr-pull") {
  // Opted in, as README's install tells (examples/installation has the
  // namespace opt-in); a no-op for the installs without it. Labelled as it is
  // created: labelling it afterwards races the policy's view of namespaces.
  const labels = { "kubeecr.deft.com/enabled": "true" };
  const ns = { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace, labels } };
  await kubectl(env, ["create", "-f", "-"], JSON.stringify(ns));
  const secret = {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/dockerconfigjson",
    metadata: { name, namespace, annotations: { "deft.com/kubeecr": `${ACCOUNT}/${REGION}` } },
    stringData: { ".dockerconfigjson": '{"auths":{}}' },
  };
  await kubectl(env, ["apply", "-f", "-"], JSON.stringify(secret));
}

async function secretState(env: TestEnv, namespace: string) {
  const s = JSON.parse(
    await kubectl(env, ["-n", namespace, "get", "secret", "ecr-pull", "-o", "json"]),
  );
  const config = JSON.parse(atob(s.data[".dockerconfigjson"]));
  return {
    resourceVersion: s.metadata.resourceVersion as string,
    hosts: Object.keys(config.auths),
    expiresAt: s.metadata.annotations?.["kubeecr.deft.com/expires-at"] as string | undefined,
  };
}

/** The CronJob's container as the API server holds it, with envFrom resolved like the kubelet does. */
async function podSpec(env: TestEnv): Promise<{ args: string[]; env: Record<string, string> }> {
  const cronjob = JSON.parse(
    await kubectl(env, ["-n", "kubeecr", "get", "cronjob", "kubeecr", "-o", "json"]),
  );
  const container = cronjob.spec.jobTemplate.spec.template.spec.containers[0];
  const vars: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const name = from.secretRef?.name;
    assert.ok(name, "only secretRef envFrom is resolved here");
    const secret = JSON.parse(
      await kubectl(env, ["-n", "kubeecr", "get", "secret", name, "-o", "json"]),
    );
    for (const [k, v] of Object.entries(secret.data ?? {})) vars[k] = atob(v as string);
  }
  for (const e of container.env ?? []) {
    assert.ok(e.value !== undefined, `env ${e.name}: only plain values are resolved here`);
    vars[e.name] = e.value;
  }
  return { args: container.args ?? [], env: vars };
}

/** Runs main.ts as the pod would, in a private mount namespace. */
async function runAsPod(
  env: TestEnv,
  work: string,
  overrides: { ecrEndpoint: string; extraArgs?: string[] },
): Promise<PodRun> {
  const sa = `${work}/sa`;
  await Deno.mkdir(sa, { recursive: true });
  await Deno.writeTextFile(
    `${sa}/token`,
    (await kubectl(env, ["-n", "kubeecr", "create", "token", "kubeecr"])).trim(),
  );
  await Deno.copyFile(env.caCert, `${sa}/ca.crt`);
  await Deno.writeTextFile(`${sa}/namespace`, "kubeecr");
  const hosts = `${work}/hosts`;
  await Deno.writeTextFile(
    hosts,
    `127.0.0.1 localhost kubernetes.default.svc ${ECR_NAME} ${LOOKALIKE}\n`,
  );

  const pod = await podSpec(env);
  const apiPort = new URL(env.server).port;
  const motoPort = new URL(env.motoUrl).port;
  // A mount namespace needs root; elsewhere go through sudo, keeping exactly
  // the environment below.
  const asRoot = Deno.uid() === 0 ? [] : ["-n", "--preserve-env", "unshare"];
  const out = await new Deno.Command(asRoot.length ? "sudo" : "unshare", {
    args: [
      ...asRoot,
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      POD_VIEW,
      "pod-view",
      sa,
      hosts,
      Deno.execPath(),
      "run",
      "--quiet",
      "-P=cronjob",
      `${REPO}main.ts`,
      ...pod.args,
      ...(overrides.extraArgs ?? []),
    ],
    clearEnv: true,
    env: {
      ...pod.env,
      // What the kubelet adds for the kubernetes Service.
      KUBERNETES_SERVICE_HOST: "10.0.0.1",
      KUBERNETES_SERVICE_PORT: apiPort,
      // Test-only: ECR is moto, reached through a name the sandbox allows.
      AWS_ENDPOINT_URL_ECR: overrides.ecrEndpoint.replace("PORT", motoPort),
      AWS_EC2_METADATA_DISABLED: "true",
      // For the wrapper and Deno itself; the sandbox hides both from the program.
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  const result = { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  await recordCliOutput(env, { args: [...pod.args, ...(overrides.extraArgs ?? [])], ...result });
  return result;
}

async function canI(
  env: TestEnv,
  token: string,
  attrs: k8s.V1ResourceAttributes,
): Promise<boolean> {
  const authz = kubeConfigFor(env, { token }).makeApiClient(k8s.AuthorizationV1Api);
  const review = await authz.createSelfSubjectAccessReview({
    body: { spec: { resourceAttributes: attrs } },
  });
  return review.status?.allowed === true;
}

async function withEnv(fn: (env: TestEnv, work: string) => Promise<void>) {
  const env = await startTestEnv({ log: () => {} });
  try {
    // Inside the environment's directory, so it goes with it, also when a
    // signal stops the environment before this finally block could run.
    await fn(env, await Deno.makeTempDir({ dir: env.dir, prefix: "smoke-" }));
  } finally {
    await env.stop();
  }
}

Deno.test("cluster-wide install: the CronJob's pod refreshes Secrets in other namespaces, inside the sandbox", async (t) => {
  await withEnv(async (env, work) => {
    await copyInstallation(work);
    await kubectl(env, ["apply", "-k", `${work}/examples/installation`]);
    await annotatedSecret(env, "team-one");
    await annotatedSecret(env, "team-two");

    await t.step("the program run as the pod refreshes both Secrets", async () => {
      const pod = await runAsPod(env, work, { ecrEndpoint: `http://${ECR_NAME}:PORT` });
      assert.equal(pod.code, 0, `stdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`);
      const summary = pod.stdout.trim().split("\n").map((l) => JSON.parse(l)).find((l) =>
        l.msg === "summary"
      );
      assert.equal(summary.refreshed, 2);
      for (const ns of ["team-one", "team-two"]) {
        const state = await secretState(env, ns);
        assert.deepEqual(state.hosts, [HOST]);
        assert.ok(state.expiresAt, `${ns}: expires-at annotation written`);
      }
    });

    await t.step("its token can do what the program needs and nothing else", async () => {
      const token = (await kubectl(env, ["-n", "kubeecr", "create", "token", "kubeecr"])).trim();
      const allowed: k8s.V1ResourceAttributes[] = [
        { verb: "list", resource: "secrets" },
        { verb: "get", resource: "secrets", namespace: "team-one" },
        { verb: "patch", resource: "secrets", namespace: "team-one" },
        { verb: "create", resource: "events", namespace: "team-one" },
      ];
      const denied: k8s.V1ResourceAttributes[] = [
        { verb: "get", resource: "configmaps", namespace: "team-one" },
        { verb: "list", resource: "configmaps" },
        { verb: "create", resource: "secrets", namespace: "team-one" },
        { verb: "delete", resource: "secrets", namespace: "team-one" },
        { verb: "update", resource: "secrets", namespace: "team-one" },
        { verb: "watch", resource: "secrets" },
        { verb: "list", resource: "pods" },
        { verb: "create", resource: "serviceaccounts/token", namespace: "kubeecr" },
      ];
      for (const a of allowed) {
        assert.equal(await canI(env, token, a), true, `should be allowed: ${JSON.stringify(a)}`);
      }
      for (const a of denied) {
        assert.equal(await canI(env, token, a), false, `should be denied: ${JSON.stringify(a)}`);
      }
    });

    await t.step("the sandbox refuses hosts outside its allow-list", async () => {
      for (const endpoint of [`http://${LOOKALIKE}:PORT`, "http://127.0.0.1:PORT"]) {
        const before = await secretState(env, "team-one");
        const pod = await runAsPod(env, work, { ecrEndpoint: endpoint, extraArgs: ["--force"] });
        const host = new URL(endpoint.replace("PORT", "1")).hostname;
        assert.equal(pod.code, 1, pod.stdout + pod.stderr);
        assert.ok(pod.stdout.includes(host), pod.stdout);
        assert.ok(pod.stdout.includes("the Deno sandbox refused the connection"), pod.stdout);
        assert.equal((await secretState(env, "team-one")).resourceVersion, before.resourceVersion);
      }
    });
  });
});

Deno.test("namespaced install: only the listed namespaces are read or written", async () => {
  await withEnv(async (env, work) => {
    await copyInstallation(work);
    // The user's steps for this variant: name the namespaces, use the overlay.
    for (const file of ["kustomization.yaml", "rbac.yaml"]) {
      const path = `${work}/manifests/namespaced/${file}`;
      const text = await Deno.readTextFile(path);
      await Deno.writeTextFile(
        path,
        text.replaceAll("team-a", "listed-one").replaceAll("team-b", "listed-two"),
      );
    }
    const example = `${work}/examples/installation/kustomization.yaml`;
    const text = await Deno.readTextFile(example);
    await Deno.writeTextFile(
      example,
      text.replace(/^(\s*- )\.\.\/\.\.\/manifests$/m, "$1../../manifests/namespaced")
        // The opt-in extends the ClusterRole, which this install does not have.
        .replace(/^\s*- \.\.\/\.\.\/manifests\/components\/namespace-opt-in\n/m, ""),
    );
    for (const ns of ["listed-one", "listed-two", "outside"]) await annotatedSecret(env, ns);
    await kubectl(env, ["apply", "-k", `${work}/examples/installation`]);
    const outsideBefore = await secretState(env, "outside");
    const byKubeecr = async () =>
      (await auditRecords(env)).filter((r) => r.user.username === SA_USER);
    const auditedBefore = (await byKubeecr()).length;

    const pod = await runAsPod(env, work, { ecrEndpoint: `http://${ECR_NAME}:PORT` });
    assert.equal(pod.code, 0, `stdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`);
    for (const ns of ["listed-one", "listed-two"]) {
      assert.deepEqual((await secretState(env, ns)).hosts, [HOST]);
    }
    assert.deepEqual(await secretState(env, "outside"), outsideBefore);

    // The API server's own record: every request of the identity stayed in
    // the listed namespaces; none was cluster-wide.
    const requests = (await byKubeecr()).slice(auditedBefore);
    assert.ok(requests.some((r) => r.verb === "patch"), "the run's requests are in the audit log");
    const strays = requests.filter((r) =>
      !["listed-one", "listed-two"].includes(r.objectRef?.namespace ?? "")
    );
    assert.deepEqual(strays.map((r) => `${r.verb} ${r.requestURI}`), []);

    const token = (await kubectl(env, ["-n", "kubeecr", "create", "token", "kubeecr"])).trim();
    assert.equal(
      await canI(env, token, { verb: "list", resource: "secrets", namespace: "outside" }),
      false,
    );
    assert.equal(await canI(env, token, { verb: "list", resource: "secrets" }), false);
  });
});
