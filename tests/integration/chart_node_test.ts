/**
 * The Helm chart on the test environment's node (issue 18, item 1): the
 * output of `helm template` installed as it renders, a Job made from its
 * CronJob by `kubeecr renew --now` (as `kubectl create job --from` would),
 * run by the environment's controller-manager and kubelet with KubeECR's
 * image from the working tree; the Job refreshes the Secret and removes the
 * renew mark, and a pod then pulls from the ECR stand-in with it.
 *
 * What the rendered CronJob gets on top, and only to reach this machine's
 * loopback servers (as tests/smoke/smoke.sh --testenv does): hostNetwork,
 * hostAliases for kubernetes.default.svc and the AWS names, and the
 * environment's CA for the runtime (DENO_CERT). Everything else is the chart's.
 */

import assert from "node:assert/strict";
import { freshNamespace, kubectl, testEnv } from "../testenv/connect.ts";
import { SMOKE_REF } from "../testenv/kubeecr_image.ts";
import { run } from "../testenv/util.ts";
import { createSecret, readSecret, recordCliOutput, runKubeecr, STATUS } from "./cli.ts";
import { type Obj, template } from "./helm.ts";
import { createPod, nodeOf, podOutcome } from "./pods.ts";

const env = await testEnv({ node: true });
const REPO = new URL("../../", import.meta.url).pathname;
const RELEASE = "kubeecr-chart";
const AWS_NAMES = [
  "api.ecr.us-west-2.amazonaws.com",
  "sts.us-west-2.amazonaws.com",
  "sts.amazonaws.com",
];
const CA_DIR = "/etc/kubeecr-testenv-ca";

/** The rendered CronJob, pointed at this machine's loopback servers. */
function onThisNode(objects: Obj[]): Obj[] {
  const node = nodeOf(env);
  return objects.map((o) => {
    if (o.kind !== "CronJob") return o;
    const pod = o.spec.jobTemplate.spec.template.spec;
    pod.hostNetwork = true;
    pod.hostAliases = [
      { ip: node.ecrApiAddress, hostnames: AWS_NAMES },
      { ip: node.hosts["kubernetes.default.svc"], hostnames: ["kubernetes.default.svc"] },
    ];
    pod.volumes = [...pod.volumes ?? [], { name: "ca", configMap: { name: "testenv-ca" } }];
    const [container] = pod.containers;
    container.volumeMounts = [
      ...container.volumeMounts ?? [],
      { name: "ca", mountPath: CA_DIR, readOnly: true },
    ];
    container.env = [...container.env ?? [], { name: "DENO_CERT", value: `${CA_DIR}/ca.crt` }];
    return o;
  });
}

async function waitForJob(ns: string, name: string): Promise<"Complete" | "Failed"> {
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    const job = JSON.parse(await kubectl(env, ["-n", ns, "get", "job", name, "-o", "json"]));
    for (const c of job.status?.conditions ?? []) {
      if (c.status === "True" && (c.type === "Complete" || c.type === "Failed")) return c.type;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`job ${ns}/${name}: neither complete nor failed after 180s`);
}

/** The Job's log (stdout lines), from the kubelet's files: kubectl logs cannot reach a loopback node. */
async function jobLog(ns: string, job: string): Promise<string> {
  const node = nodeOf(env);
  const pods = JSON.parse(
    await kubectl(env, ["-n", ns, "get", "pods", "-l", `job-name=${job}`, "-o", "json"]),
  ).items as { metadata: { name: string } }[];
  let text = "";
  for await (const e of Deno.readDir(node.podLogsDir)) {
    if (!pods.some((p) => e.name.startsWith(`${ns}_${p.metadata.name}_`))) continue;
    for await (const f of Deno.readDir(`${node.podLogsDir}/${e.name}/kubeecr`)) {
      text += await Deno.readTextFile(`${node.podLogsDir}/${e.name}/kubeecr/${f.name}`);
    }
  }
  return text;
}

Deno.test("the chart as helm template renders it: renew --now runs its CronJob's Job on the node, which refreshes the Secret a pod then pulls with", async () => {
  const node = nodeOf(env);
  const tenant = await freshNamespace(env, "chart-tenant");
  const objects = onThisNode(
    await template({
      release: RELEASE,
      namespace: RELEASE,
      setJson: {
        "image.tag": SMOKE_REF.split(":").pop(),
        // No scheduled run during the test: only the Job renew makes.
        schedule: "0 0 1 1 *",
        "config.namespace": [tenant],
      },
    }),
  );
  assert.ok(objects.some((o) => o.kind === "CronJob"));
  await run(Deno.execPath(), [
    "run",
    "-A",
    `${REPO}tests/testenv/kubeecr_image.ts`,
    env.dir,
    SMOKE_REF,
  ]);
  await kubectl(env, ["create", "namespace", RELEASE]);
  try {
    await kubectl(env, [
      "-n",
      RELEASE,
      "create",
      "configmap",
      "testenv-ca",
      `--from-file=ca.crt=${env.caCert}`,
    ]);
    // Static keys (the chart's awsSecret default); the environment's ECR endpoint accepts any.
    await kubectl(env, [
      "-n",
      RELEASE,
      "create",
      "secret",
      "generic",
      "kubeecr-aws-secrets",
      "--from-literal=AWS_ACCESS_KEY_ID=AKIACHARTTEST0000000",
      "--from-literal=AWS_SECRET_ACCESS_KEY=chart",
    ]);
    await kubectl(
      env,
      ["apply", "-f", "-"],
      JSON.stringify({ kind: "List", apiVersion: "v1", items: objects }),
    );
    await createSecret(env, tenant, { name: "ecr-pull", registries: `${node.account}/us-west-2` });

    const renew = await runKubeecr(env, [
      "renew",
      `${tenant}/ecr-pull`,
      "--now",
      "--cronjob",
      `${RELEASE}/${RELEASE}`,
    ]);
    assert.equal(renew.code, 0, renew.stdout + renew.stderr);
    const job = /job=\S+?\/(\S+)/.exec(renew.stdout)?.[1];
    assert.ok(job, renew.stdout);
    const outcome = await waitForJob(RELEASE, job);
    const log = await jobLog(RELEASE, job);
    await recordCliOutput(env, {
      args: ["(chart Job)"],
      code: outcome === "Complete" ? 0 : 1,
      stdout: log,
      stderr: "",
    });
    assert.equal(outcome, "Complete", log);

    const secret = await readSecret(env, tenant, "ecr-pull");
    const annotations = secret.metadata!.annotations!;
    assert.ok(annotations[STATUS], "the Job's run wrote its status");
    assert.equal(
      annotations["kubeecr.deft.com/renew-requested-at"],
      undefined,
      "and removed the mark",
    );
    assert.match(
      log,
      new RegExp(`"refreshed".*${tenant}/ecr-pull|${tenant}/ecr-pull.*"refreshed"`),
    );

    await createPod(env, tenant, { name: "pull", image: node.image, pullSecrets: ["ecr-pull"] });
    assert.deepEqual(await podOutcome(env, tenant, "pull"), { state: "Running" });
  } finally {
    // The pod and the Job's pods gone before the namespaces: nothing of this test runs on at teardown.
    await kubectl(env, [
      "-n",
      tenant,
      "delete",
      "pod",
      "pull",
      "--ignore-not-found",
      "--grace-period=0",
      "--wait=true",
    ]);
    await kubectl(env, [
      "-n",
      RELEASE,
      "delete",
      "jobs",
      "--all",
      "--cascade=foreground",
      "--wait=true",
    ]);
    await kubectl(env, ["delete", "namespace", tenant, "--wait=false"]);
    await kubectl(
      env,
      ["delete", "-f", "-", "--ignore-not-found", "--wait=false"],
      JSON.stringify({
        kind: "List",
        apiVersion: "v1",
        items: objects.filter((o) => !o.metadata.namespace),
      }),
    );
    await kubectl(env, ["delete", "namespace", RELEASE, "--wait=false"]);
  }
});
