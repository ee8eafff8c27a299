/**
 * Namespaces that get pull credentials by a label (manifests/components/provision,
 * --provision), judged by what the real API server stores and admits:
 *
 * - examples/provision, rendered and applied to a test environment of its own
 *   (its policy judges every Pod of the cluster, and its run creates Secrets in
 *   every labelled namespace), then the program run as its CronJob runs it: with
 *   the CronJob's env and the ServiceAccount's token. A labelled namespace gets
 *   its Secret, filled in the same run; an unlabelled one gets none; a Secret of
 *   that name that exists is never replaced (uid, resourceVersion and data
 *   unchanged; one it does not fill costs a create answered 409 each run, one
 *   it made none); the audit log shows only granted verbs, create among them. Pods created in a labelled namespace get
 *   imagePullSecrets [{name: ecr-pull}], a pod with its own keeps its list (ours
 *   after it), one that lists ecr-pull is left as it is, and an unlabelled
 *   namespace's pods get nothing. The same run with RBAC that lacks the
 *   component's create fails those namespaces (exit 1), naming the component;
 * - --provision without the namespace opt-in does not start (exit 2);
 * - on the node: in a labelled namespace, a Deployment that names no pull
 *   Secret fails to pull (401) before; after one run with the policy installed,
 *   a Deployment that names none reaches Running, and the pod made between the
 *   policy and the run (its ecr-pull not there yet) starts on its next pull.
 */

import assert from "node:assert/strict";
import { freshNamespace, kubectl, testEnv, writeKubeconfig } from "../testenv/connect.ts";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { startTestEnv, type TestEnvInfo } from "../testenv/env.ts";
import { acceptTokensOf } from "../testenv/registry.ts";
import { run } from "../testenv/util.ts";
import {
  adminCore,
  auditRecords,
  createSecret,
  dockerConfigOf,
  hostOf,
  readSecret,
  runKubeecr,
  summaryOf,
} from "./cli.ts";
import { objectsOf } from "./helm.ts";
import { copyInstallation } from "./install.ts";
import { defaultServiceAccount, nodeOf, type PodOutcome, podOutcome } from "./pods.ts";

const VALUE = "123456789012/us-west-2";
const OPT_IN = "kubeecr.deft.com/enabled";
const SA_USER = "system:serviceaccount:kubeecr:kubeecr";
/** How long a new policy may take to reach admission. */
const SETTLE_MS = 30_000;

/** examples/provision as `kubectl kustomize` renders it, from a scratch copy of the tree. */
async function renderExample(env: TestEnvInfo) {
  const work = await Deno.makeTempDir({ dir: env.dir, prefix: "provision-" });
  await copyInstallation(work);
  return objectsOf(await run(env.kubectl, ["kustomize", `${work}/examples/provision`]));
}

interface PodJson {
  metadata: { name: string };
  spec: { imagePullSecrets?: { name?: string }[] };
}

/** A Pod as the API server admits it (its policies applied): dry-run unless `keep`. */
async function admitPod(
  as: (args: string[], stdin?: string) => Promise<string>,
  namespace: string,
  name: string,
  pullSecrets: string[] | undefined,
  keep = false,
): Promise<string[] | undefined> {
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace },
    spec: {
      ...(pullSecrets ? { imagePullSecrets: pullSecrets.map((n) => ({ name: n })) } : {}),
      automountServiceAccountToken: false,
      containers: [{ name: "app", image: "registry.example/app:1" }],
    },
  };
  const out = await as([
    "create",
    ...(keep ? [] : ["--dry-run=server"]),
    "-o",
    "json",
    "-f",
    "-",
  ], JSON.stringify(pod));
  return (JSON.parse(out) as PodJson).spec.imagePullSecrets?.map((s) => s.name ?? "");
}

Deno.test("examples/provision on the real API server: Secrets in labelled namespaces only, never replaced; pods get the pull Secret", async () => {
  const own = await startTestEnv({ log: () => {} });
  const ecr = startEcrProxy(own.motoUrl);
  try {
    const as = (args: string[], stdin?: string) =>
      run(own.kubectl, ["--kubeconfig", own.kubeconfig, ...args], { stdin });
    const items = await renderExample(own);
    await as(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
    const [cronjob] = items.filter((o) => o.kind === "CronJob");
    const container = cronjob.spec.jobTemplate.spec.template.spec.containers[0];
    const jobEnv: Record<string, string> = Object.fromEntries(
      (container.env as { name: string; value: string }[]).map((e) => [e.name, e.value]),
    );
    assert.equal(jobEnv.KUBEECR_PROVISION, `ecr-pull=${VALUE}`);

    for (const ns of ["labelled", "taken", "unlabelled"]) {
      await as(["create", "namespace", ns]);
      // No controller-manager here: the ServiceAccount admission needs this one for pods.
      await as(["-n", ns, "create", "serviceaccount", "default"]);
    }
    await as(["label", "namespace", "labelled", "taken", `${OPT_IN}=true`]);
    // Someone's own ecr-pull, not annotated: KubeECR must leave it exactly as it is.
    const mine = JSON.stringify({ auths: { "registry.example": { auth: "bWU6c2VjcmV0" } } });
    const before = await createSecret(own, "taken", { name: "ecr-pull", dockerConfig: mine });

    const token = (await as(["-n", "kubeecr", "create", "token", "kubeecr"])).trim();
    const KUBECONFIG = await writeKubeconfig(own, { token });
    const cli = () =>
      runKubeecr(own, container.args, { aws: ecr.awsEnv, env: { KUBECONFIG, ...jobEnv } });
    const first = await cli();
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.equal(summaryOf(first).refreshed, 1, first.stdout);

    // The labelled namespace: its Secret, created and filled in this one run.
    const made = await readSecret(own, "labelled", "ecr-pull");
    assert.equal(made.type, "kubernetes.io/dockerconfigjson");
    assert.equal(made.metadata?.annotations?.["deft.com/kubeecr"], VALUE);
    assert.equal(made.metadata?.labels?.["app.kubernetes.io/managed-by"], "kubeecr");
    assert.ok(dockerConfigOf(made).auths[hostOf(VALUE)]?.auth, "filled in the same run");
    // The unlabelled one: nothing.
    const listed = await adminCore(own).listNamespacedSecret({ namespace: "unlabelled" });
    assert.deepEqual(listed.items.map((s) => s.metadata?.name), []);
    // The one that existed: not replaced, not written.
    const after = await readSecret(own, "taken", "ecr-pull");
    assert.equal(after.metadata?.uid, before.metadata?.uid);
    assert.equal(after.metadata?.resourceVersion, before.metadata?.resourceVersion);
    assert.deepEqual(after.data, before.data);
    const warned = first.lines.filter((l) => l.secret === "taken/ecr-pull");
    assert.deepEqual(warned.map((l) => l.msg), ["not provisioned: a Secret of this name exists"]);

    // The next run finds its Secret in the list: fresh, and no create for it. The namespace
    // whose ecr-pull is someone else's costs a create answered 409 on each run (and a warning).
    const creates = async () =>
      (await auditRecords(own)).filter((r) =>
        r.user.username === SA_USER && r.verb === "create" && r.objectRef?.resource === "secrets"
      ).map((r) => `${r.objectRef?.namespace} ${r.responseStatus?.code}`);
    assert.deepEqual((await creates()).sort(), ["labelled 201", "taken 409"]);
    const second = await cli();
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.equal(summaryOf(second).fresh, 1, second.stdout);
    assert.deepEqual((await creates()).sort(), ["labelled 201", "taken 409", "taken 409"]);
    assert.deepEqual(
      await readSecret(own, "taken", "ecr-pull").then((s) => s.metadata?.resourceVersion),
      before.metadata?.resourceVersion,
    );

    // Only granted verbs, and none refused (the 409 on the existing Secret is an answer, not a refusal).
    const [role] = items.filter((o) => o.kind === "ClusterRole");
    const granted = new Set<string>();
    for (const rule of role.rules as { resources: string[]; verbs: string[] }[]) {
      for (const r of rule.resources) for (const v of rule.verbs) granted.add(`${r}:${v}`);
    }
    const requests = (await auditRecords(own)).filter((r) => r.user.username === SA_USER);
    const refused = requests.filter((r) => [401, 403].includes(r.responseStatus?.code ?? 0));
    assert.deepEqual(refused.map((r) => `${r.verb} ${r.requestURI}`), [], "nothing refused");
    const used = new Set(requests.map((r) => `${r.objectRef?.resource ?? r.requestURI}:${r.verb}`));
    assert.deepEqual([...used].filter((u) => !granted.has(u)), [], `used: ${[...used]}`);
    assert.ok(used.has("secrets:create"));

    // Pods: the policy takes a moment to be enforced; until then, try again (bounded).
    const deadline = Date.now() + SETTLE_MS;
    let plain: string[] | undefined;
    while (Date.now() < deadline) {
      plain = await admitPod(as, "labelled", "probe", undefined);
      if (plain) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual(plain, ["ecr-pull"], "a pod that names no pull Secret gets ecr-pull");
    assert.deepEqual(await admitPod(as, "labelled", "stored", undefined, true), ["ecr-pull"]);
    assert.deepEqual(
      await admitPod(as, "labelled", "own", ["team-b", "team-a"], true),
      ["team-b", "team-a", "ecr-pull"],
      "a pod with its own pull Secrets keeps its list, in its order",
    );
    assert.deepEqual(
      await admitPod(as, "labelled", "listed", ["team-a", "ecr-pull", "team-b"], true),
      ["team-a", "ecr-pull", "team-b"],
      "a pod that lists ecr-pull is left as it is",
    );
    assert.equal(await admitPod(as, "unlabelled", "plain", undefined, true), undefined);
    assert.deepEqual(await admitPod(as, "unlabelled", "own", ["team-a"], true), ["team-a"]);

    // --provision set, but RBAC without the component's create: that namespace fails (exit 1),
    // saying what grants it; the others are still served.
    const limited = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "kubeecr-no-create" },
      rules: (role.rules as { verbs: string[] }[]).filter((r) =>
        !r.verbs.includes("create") ||
        r.verbs.length > 1
      ),
    };
    await as(["create", "-f", "-"], JSON.stringify(limited));
    await as(["-n", "kubeecr", "create", "serviceaccount", "no-create"]);
    await as([
      "create",
      "clusterrolebinding",
      "kubeecr-no-create",
      "--clusterrole=kubeecr-no-create",
      "--serviceaccount=kubeecr:no-create",
    ]);
    await as(["create", "namespace", "later"]);
    await as(["label", "namespace", "later", `${OPT_IN}=true`]);
    const limitedToken = (await as(["-n", "kubeecr", "create", "token", "no-create"])).trim();
    const refusedRun = await runKubeecr(own, container.args, {
      aws: ecr.awsEnv,
      env: { KUBECONFIG: await writeKubeconfig(own, { token: limitedToken }), ...jobEnv },
    });
    assert.equal(refusedRun.code, 1, refusedRun.stdout + refusedRun.stderr);
    // RBAC answers before the API server looks for the Secret: "taken" is refused too.
    const cannot = refusedRun.lines.filter((l) => l.msg === "cannot provision");
    assert.deepEqual(cannot.map((l) => l.secret), ["later/ecr-pull", "taken/ecr-pull"]);
    assert.match(String(cannot[0].error), /HTTP 403.*manifests\/components\/provision adds it/);
    assert.equal(summaryOf(refusedRun)["failed-namespaces"], 2);
    assert.equal(summaryOf(refusedRun).fresh, 1, "labelled/ecr-pull is still served");
  } finally {
    await ecr.close();
    await own.stop();
  }
});

Deno.test("--provision without the namespace opt-in does not start: exit 2, saying why", async () => {
  const env = await testEnv();
  const result = await runKubeecr(env, ["--provision", `ecr-pull=${VALUE}`]);
  assert.equal(result.code, 2, result.stdout + result.stderr);
  assert.match(
    result.stderr,
    /--provision="ecr-pull=123456789012\/us-west-2" needs --namespace-selector/,
  );
  assert.equal(result.stdout, "", "nothing looked at");
});

Deno.test("on the node: in a labelled namespace a Deployment that names no pull Secret fails before, and runs after one run", async () => {
  const env = await testEnv({ node: true });
  const node = nodeOf(env);
  await using proxy = startEcrProxy(env.motoUrl, { onToken: acceptTokensOf(node) });
  // The shared environment: a label of this test's own scopes both the run and the policy, so
  // other tests' opted-in namespaces get neither a Secret nor a mutation.
  const id = crypto.randomUUID().slice(0, 8);
  const mark = `provision-test-${id}`;
  const ns = await freshNamespace(env, "provision-node");
  const names = { policy: `kubeecr-pull-secret-${id}` };
  try {
    await kubectl(env, ["label", "namespace", ns, `${OPT_IN}=true`, `${mark}=true`]);
    await defaultServiceAccount(env, ns);
    const deployment = (name: string) =>
      JSON.stringify({
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name, namespace: ns },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: {
              terminationGracePeriodSeconds: 0,
              automountServiceAccountToken: false,
              containers: [{ name: "app", image: node.image, imagePullPolicy: "Always" }],
            },
          },
        },
      });
    const podOf = async (app: string): Promise<PodJson> => {
      for (let i = 0; i < 120; i++) {
        const { items } = JSON.parse(
          await kubectl(env, ["-n", ns, "get", "pods", "-l", `app=${app}`, "-o", "json"]),
        );
        if (items.length > 0) return items[0];
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error(`no pod of Deployment ${app} after 30s`);
    };

    // Today: the pod names no pull Secret, so the kubelet sends no credentials and ECR refuses.
    await kubectl(env, ["create", "-f", "-"], deployment("before"));
    const refused: PodOutcome = await podOutcome(env, ns, (await podOf("before")).metadata.name);
    assert.equal(refused.state, "PullFailed", JSON.stringify(refused));
    if (refused.state === "PullFailed") assert.match(refused.message, /401 Unauthorized/);

    // The component's policy as rendered, bound to this test's namespace only.
    const items = await renderExample(env);
    const [policy] = items.filter((o) => o.kind === "MutatingAdmissionPolicy");
    const [binding] = items.filter((o) => o.kind === "MutatingAdmissionPolicyBinding");
    policy.metadata.name = names.policy;
    binding.metadata.name = names.policy;
    binding.spec.policyName = names.policy;
    binding.spec.matchResources = { namespaceSelector: { matchLabels: { [mark]: "true" } } };
    await kubectl(
      env,
      ["create", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [policy, binding],
      }),
    );

    // Created once the policy is enforced but before the run: it names ecr-pull, which does
    // not exist yet, so its pull fails; the kubelet reads the Secret again when it retries.
    const deadline = Date.now() + SETTLE_MS;
    for (;;) {
      const probe = JSON.parse(
        await kubectl(env, [
          "-n",
          ns,
          "run",
          "probe",
          "--image",
          node.image,
          "--dry-run=server",
          "-o",
          "json",
        ]),
      ) as PodJson;
      if (probe.spec.imagePullSecrets?.some((s) => s.name === "ecr-pull")) break;
      if (Date.now() > deadline) throw new Error("the policy was not enforced within 30s");
      await new Promise((r) => setTimeout(r, 200));
    }
    await kubectl(env, ["create", "-f", "-"], deployment("early"));
    const early = await podOf("early");
    assert.deepEqual(early.spec.imagePullSecrets, [{ name: "ecr-pull" }]);
    assert.equal((await podOutcome(env, ns, early.metadata.name)).state, "PullFailed");

    const result = await runKubeecr(env, [
      "--namespace-selector",
      `${mark}=true`,
      "--provision",
      `ecr-pull=${VALUE}`,
    ], { aws: proxy.awsEnv });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, new RegExp(`provisioned.*${ns}/ecr-pull`));

    await kubectl(env, ["create", "-f", "-"], deployment("app"));
    const pod = await podOf("app");
    assert.deepEqual(pod.spec.imagePullSecrets, [{ name: "ecr-pull" }]);
    assert.deepEqual(await podOutcome(env, ns, pod.metadata.name), { state: "Running" });
    // The early pod, as it is: its next pull attempt (the kubelet's back-off) finds the Secret.
    const until = Date.now() + 90_000;
    for (;;) {
      const status = JSON.parse(
        await kubectl(env, ["-n", ns, "get", "pod", early.metadata.name, "-o", "json"]),
      ).status;
      if (status?.containerStatuses?.[0]?.state?.running) break;
      if (Date.now() > until) {
        throw new Error(`the early pod did not start: ${JSON.stringify(status)}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
    await kubectl(env, [
      "delete",
      "mutatingadmissionpolicybinding,mutatingadmissionpolicy",
      names.policy,
      "--ignore-not-found",
    ]);
  }
});
