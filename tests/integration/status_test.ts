/**
 * `kubeecr status` and `kubeecr renew` against the real API server: the
 * states a run leaves (fresh, due and why, failed with the latest Warning,
 * skipped), their order, the JSON, the exit codes; that status writes
 * nothing and calls no AWS API (the audit log and the ECR stand-in's call
 * count say so, not our output); that renew marks exactly what it names and
 * the next run refreshes exactly that and removes the mark; the Job --now makes.
 */

import assert from "node:assert/strict";
import { freshNamespace, kubectl, testEnv, writeKubeconfig } from "../testenv/connect.ts";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { auditRecords, createSecret, readSecret, runKubeecr, STATUS } from "./cli.ts";

const env = await testEnv();
const RENEW = "kubeecr.deft.com/renew-requested-at";
const REPO = new URL("../../", import.meta.url).pathname;

/** The audit records of requests KubeECR made (its User-Agent) from record `from` on. */
async function kubeecrRequests(from: number) {
  const records = await auditRecords(env);
  return {
    next: records.length,
    requests: records.slice(from).filter((r) =>
      (r as unknown as { userAgent?: string }).userAgent === "kubeecr"
    ),
  };
}

interface Row {
  namespace: string;
  name: string;
  registries: string[];
  state: string;
  reason: string | null;
  message?: string;
  expiresAt: string | null;
  expired: boolean;
  lastRefresh: string | null;
}

Deno.test("status: every state, what needs attention first, JSON and table, exit 1 on a failure; it writes nothing and calls no AWS", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "status");
  try {
    // Tokens of 3h for eu-central-1: written with a 2h window, "expiring" for status's 6h.
    ecr.tokenLifetime("eu-central-1", 3 * 3600);
    ecr.fail(
      "eu-west-1",
      "AccessDeniedException",
      "not authorized to perform ecr:GetAuthorizationToken",
    );
    await createSecret(env, ns, { name: "fresh", registries: "123456789012/us-west-2" });
    await createSecret(env, ns, { name: "expiring", registries: "123456789012/eu-central-1" });
    await createSecret(env, ns, { name: "denied", registries: "123456789012/eu-west-1" });
    await createSecret(env, ns, { name: "bad", registries: "not-an-account" });
    const run = await runKubeecr(env, ["--namespace", ns, "--refresh-window", "2h"], {
      aws: ecr.awsEnv,
    });
    assert.equal(run.code, 1, run.stdout + run.stderr);
    // After the run: never refreshed, no token at all.
    await createSecret(env, ns, { name: "never", registries: "123456789012/us-west-2" });
    const calls = ecr.tokenCalls();

    const before = (await auditRecords(env)).length;
    const json = await runKubeecr(env, ["status", "-n", ns, "-o", "json"], { aws: ecr.awsEnv });
    assert.equal(json.code, 1, json.stdout + json.stderr);
    const rows = JSON.parse(json.stdout) as Row[];
    assert.deepEqual(
      rows.map((r) => [r.name, r.state, r.reason, r.expired]),
      [
        ["bad", "failed", "InvalidAnnotation", true],
        ["denied", "failed", "RefreshFailed", true],
        ["never", "due", "never-refreshed", true],
        ["expiring", "due", "expiring", false],
        ["fresh", "fresh", null, false],
      ],
    );
    const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
    assert.match(byName.denied.message!, /not authorized to perform ecr:GetAuthorizationToken/);
    assert.match(byName.bad.message!, /not-an-account/);
    assert.deepEqual(byName.fresh.registries, ["123456789012/us-west-2"]);
    const fresh = await readSecret(env, ns, "fresh");
    assert.equal(
      byName.fresh.expiresAt,
      fresh.metadata!.annotations!["kubeecr.deft.com/expires-at"],
    );
    assert.equal(
      byName.fresh.lastRefresh,
      fresh.metadata!.annotations!["kubeecr.deft.com/refreshed-at"],
    );
    assert.equal(byName.never.expiresAt, null);
    assert.equal(byName.never.lastRefresh, null);
    for (const r of rows) {
      for (const key of ["namespace", "name", "registries", "state", "reason", "expiresAt"]) {
        assert.ok(key in r, `${r.name} has ${key}`);
      }
    }

    const { next, requests } = await kubeecrRequests(before);
    assert.ok(requests.length > 0, "the audit log shows status's requests");
    assert.deepEqual([...new Set(requests.map((r) => r.verb))].sort(), ["list"]);
    assert.deepEqual(
      [...new Set(requests.map((r) => r.objectRef?.resource))].sort(),
      ["events", "secrets"],
    );
    assert.equal(ecr.tokenCalls(), calls, "no AWS call");

    const table = await runKubeecr(env, ["status", "--namespace", ns], { aws: ecr.awsEnv });
    assert.equal(table.code, 1);
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(
      lines[0],
      /^SECRET\s+REGISTRIES\s+STATE\s+REASON\s+EXPIRES\s+LAST REFRESH\s+MESSAGE$/,
    );
    assert.match(
      lines[1],
      new RegExp(`^${ns}/bad\\s+not-an-account\\s+failed\\s+InvalidAnnotation`),
    );
    assert.match(
      lines[4],
      /expiring .*\S+Z \(in 2h5\dm\)/,
      "expiry as a time and 'in …'",
    );
    assert.match(lines[5], /fresh\s+-\s+\S+Z \(in 1[12]h\d+m\)/);
    assert.equal((await kubeecrRequests(next)).requests.filter((r) => r.verb !== "list").length, 0);

    // Only the fresh ones in scope: exit 0.
    await kubectl(env, ["-n", ns, "label", "secret", "fresh", "expiring", "ok=1"]);
    const ok = await runKubeecr(env, ["status", "-n", ns, "-l", "ok=1", "-o", "json"]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.deepEqual((JSON.parse(ok.stdout) as Row[]).map((r) => r.name), ["expiring", "fresh"]);
  } finally {
    await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
  }
});

Deno.test("status: a namespace --namespace-selector does not select is skipped, not a failure", async () => {
  const ns = await freshNamespace(env, "status-skip");
  try {
    await createSecret(env, ns, { name: "elsewhere", registries: "123456789012/us-west-2" });
    const out = await runKubeecr(env, [
      "status",
      "-n",
      ns,
      "--namespace-selector",
      "kubeecr.deft.com/enabled=true",
      "-o",
      "json",
    ]);
    assert.equal(out.code, 0, out.stdout + out.stderr);
    const [row] = JSON.parse(out.stdout) as Row[];
    assert.deepEqual([row.name, row.state, row.reason], ["elsewhere", "skipped", "not-selected"]);
  } finally {
    await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
  }
});

Deno.test("renew marks what it names; the next run refreshes exactly that and removes the mark", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "renew");
  try {
    for (const name of ["a", "b", "c"]) {
      await createSecret(env, ns, {
        name,
        registries: "123456789012/us-west-2",
        labels: name === "c" ? { team: "x" } : {},
      });
    }
    await createSecret(env, ns, { name: "plain" });
    const first = await runKubeecr(env, ["--namespace", ns], { aws: ecr.awsEnv });
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const statusOf = async (name: string) =>
      (await readSecret(env, ns, name)).metadata!.annotations![STATUS];
    const before = { a: await statusOf("a"), b: await statusOf("b"), c: await statusOf("c") };

    const one = await runKubeecr(env, ["renew", `${ns}/a`]);
    assert.equal(one.code, 0, one.stdout + one.stderr);
    assert.match(one.stdout, new RegExp(`marked for renewal.*${ns}/a`));
    const marked = (await readSecret(env, ns, "a")).metadata!.annotations![RENEW];
    assert.ok(marked && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(marked), String(marked));
    assert.equal((await readSecret(env, ns, "b")).metadata!.annotations![RENEW], undefined);

    const status = await runKubeecr(env, ["status", "-n", ns, "-o", "json"]);
    const rows = JSON.parse(status.stdout) as Row[];
    assert.deepEqual(
      rows.map((r) => [r.name, r.state, r.reason]),
      [["a", "due", "renew-requested"], ["b", "fresh", null], ["c", "fresh", null]],
    );
    assert.equal(status.code, 0, "a mark is not a failure: the token still lives");

    const calls = ecr.tokenCalls();
    const from = (await auditRecords(env)).length;
    const next = await runKubeecr(env, ["--namespace", ns], { aws: ecr.awsEnv });
    assert.equal(next.code, 0, next.stdout + next.stderr);
    assert.equal(ecr.tokenCalls(), calls + 1);
    const patched = (await kubeecrRequests(from)).requests.filter((r) => r.verb === "patch")
      .map((r) => r.objectRef?.name);
    assert.deepEqual(patched, ["a"], "only the marked Secret was written");
    const a = (await readSecret(env, ns, "a")).metadata!.annotations!;
    assert.equal(a[RENEW], undefined, "the refreshing write removed the mark");
    assert.notEqual(a[STATUS], before.a);
    assert.equal(await statusOf("b"), before.b);

    // -n and -l: only the labelled one; the unannotated Secret is never marked.
    const byLabel = await runKubeecr(env, ["renew", "-n", ns, "-l", "team=x"]);
    assert.equal(byLabel.code, 0, byLabel.stdout + byLabel.stderr);
    assert.ok((await readSecret(env, ns, "c")).metadata!.annotations![RENEW]);
    assert.equal((await readSecret(env, ns, "b")).metadata!.annotations![RENEW], undefined);
    const all = await runKubeecr(env, ["renew", "-n", ns]);
    assert.equal(all.code, 0);
    assert.equal((await readSecret(env, ns, "plain")).metadata!.annotations?.[RENEW], undefined);
    assert.equal(await statusOf("c"), before.c, "renew itself writes no token");
  } finally {
    await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
  }
});

Deno.test("renew: what cannot be marked exits 1 and says why; a request that names nothing exits 2", async () => {
  const ns = await freshNamespace(env, "renew-bad");
  try {
    await createSecret(env, ns, { name: "plain" });
    const missing = await runKubeecr(env, ["renew", `${ns}/missing`, `${ns}/plain`]);
    assert.equal(missing.code, 1, missing.stdout + missing.stderr);
    assert.match(missing.stdout, new RegExp(`${ns}/missing.*no such Secret`));
    assert.match(missing.stdout, new RegExp(`${ns}/plain.*has no deft.com/kubeecr annotation`));
    const none = await runKubeecr(env, ["renew", "-n", ns]);
    assert.equal(none.code, 1);
    assert.match(none.stdout, /nothing to mark/);
    // No cluster: exit 2, for status (its log on stderr) and for renew (on stdout).
    const lost = await runKubeecr(env, ["status", "--kubeconfig", `${env.dir}/no-such-kubeconfig`]);
    assert.equal(lost.code, 2, lost.stdout + lost.stderr);
    assert.match(lost.stderr, /cannot use the Kubernetes API.*no-such-kubeconfig/);
    assert.equal(lost.stdout, "", "no table when nothing could be listed");
    const closed = await runKubeecr(env, ["renew", "--all", "--request-timeout", "1s"], {
      env: { KUBECONFIG: await writeKubeconfig(env, { token: "x" }, "https://127.0.0.1:1") },
    });
    assert.equal(closed.code, 2, closed.stdout + closed.stderr);
    assert.match(closed.stdout, /cannot use the Kubernetes API/);
    for (
      const [args, text] of [
        [["renew"], /say which Secrets to mark/],
        [["renew", "--all", "-n", ns], /--all .* cannot be combined/],
        [["renew", `${ns}/a`, "-n", ns], /not both/],
        [["renew", "just-a-name"], /is not <namespace>\/<name>/],
        [["status", "--force"], /--force does not apply to kubeecr status/],
        [["status", "-o", "yaml"], /--output="yaml": is not recognised; expected table or json/],
      ] as const
    ) {
      const out = await runKubeecr(env, [...args]);
      assert.equal(out.code, 2, `${args.join(" ")}: ${out.stdout}${out.stderr}`);
      assert.match(out.stderr, text);
    }
  } finally {
    await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
  }
});

Deno.test("renew --now: a Job made from the CronJob as `kubectl create job --from` makes it", async () => {
  const ns = await freshNamespace(env, "renew-now");
  try {
    await createSecret(env, ns, { name: "a", registries: "123456789012/us-west-2" });
    const cronjob = {
      apiVersion: "batch/v1",
      kind: "CronJob",
      metadata: { name: "kubeecr", namespace: ns },
      spec: {
        schedule: "7 * * * *",
        suspend: true,
        jobTemplate: {
          metadata: { labels: { "app.kubernetes.io/name": "kubeecr" }, annotations: { x: "y" } },
          spec: {
            backoffLimit: 0,
            template: {
              spec: {
                restartPolicy: "Never",
                serviceAccountName: "kubeecr",
                containers: [{ name: "kubeecr", image: "ghcr.io/deft/kubeecr:test" }],
              },
            },
          },
        },
      },
    };
    await kubectl(env, ["create", "-f", "-"], JSON.stringify(cronjob));
    const kubectlJob = JSON.parse(
      await kubectl(env, [
        "-n",
        ns,
        "create",
        "job",
        "by-kubectl",
        "--from=cronjob/kubeecr",
        "--dry-run=server",
        "-o",
        "json",
      ]),
    );
    const out = await runKubeecr(env, ["renew", `${ns}/a`, "--now", "--cronjob", `${ns}/kubeecr`]);
    assert.equal(out.code, 0, out.stdout + out.stderr);
    const jobs = JSON.parse(await kubectl(env, ["-n", ns, "get", "jobs", "-o", "json"])).items;
    assert.equal(jobs.length, 1);
    const [job] = jobs;
    assert.match(out.stdout, new RegExp(`started a run.*${ns}/${job.metadata.name}`));
    assert.match(job.metadata.name, /^kubeecr-renew-/);
    assert.deepEqual(job.metadata.annotations, kubectlJob.metadata.annotations);
    assert.deepEqual(job.metadata.labels, kubectlJob.metadata.labels);
    assert.deepEqual(
      job.metadata.ownerReferences.map((o: Record<string, unknown>) => ({ ...o, name: o.name })),
      kubectlJob.metadata.ownerReferences,
    );
    assert.deepEqual(
      job.spec.template.spec.containers,
      kubectlJob.spec.template.spec.containers,
    );
    assert.equal(job.spec.template.spec.serviceAccountName, "kubeecr");

    const noCron = await runKubeecr(env, ["renew", `${ns}/a`, "--now", "--cronjob", `${ns}/nope`]);
    assert.equal(noCron.code, 1);
    assert.match(noCron.stdout, new RegExp(`no CronJob ${ns}/nope`));
    assert.match(noCron.stdout, /stay marked/);
  } finally {
    await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
  }
});

Deno.test("examples/operators: its roles are what status, renew and renew --now need, and renew without them says so", async () => {
  const ns = await freshNamespace(env, "operators");
  const home = await freshNamespace(env, "operators-kubeecr");
  try {
    await createSecret(env, ns, { name: "a", registries: "123456789012/us-west-2" });
    await kubectl(env, [
      "-n",
      home,
      "create",
      "cronjob",
      "kubeecr",
      "--image=ghcr.io/deft/kubeecr:test",
      "--schedule=7 * * * *",
    ]);
    await kubectl(env, [
      "-n",
      home,
      "patch",
      "cronjob",
      "kubeecr",
      "-p",
      '{"spec":{"suspend":true}}',
    ]);
    // The example as a user applies it, its Role moved to this test's KubeECR namespace.
    const rendered = await kubectl(env, ["kustomize", `${REPO}examples/operators`]);
    await kubectl(
      env,
      ["apply", "-f", "-"],
      rendered.replace(/namespace: kubeecr$/m, `namespace: ${home}`),
    );
    const user = async (name: string, bind: (sa: string) => string[][]) => {
      await kubectl(env, ["-n", ns, "create", "serviceaccount", name]);
      for (const args of bind(`${ns}:${name}`)) await kubectl(env, args);
      const token = (await kubectl(env, ["-n", ns, "create", "token", name])).trim();
      return await writeKubeconfig(env, { token });
    };
    const operator = await user("operator", (sa) => [
      [
        "-n",
        ns,
        "create",
        "rolebinding",
        "op-status",
        "--clusterrole=kubeecr-status",
        `--serviceaccount=${sa}`,
      ],
      [
        "-n",
        ns,
        "create",
        "rolebinding",
        "op-renew",
        "--clusterrole=kubeecr-renew",
        `--serviceaccount=${sa}`,
      ],
      [
        "-n",
        home,
        "create",
        "rolebinding",
        "op-now",
        "--role=kubeecr-renew-now",
        `--serviceaccount=${sa}`,
      ],
    ]);
    const viewer = await user("viewer", (sa) => [
      [
        "-n",
        ns,
        "create",
        "rolebinding",
        "viewer-status",
        "--clusterrole=kubeecr-status",
        `--serviceaccount=${sa}`,
      ],
    ]);
    const as = (kubeconfig: string) => ({ env: { KUBECONFIG: kubeconfig } });

    const status = await runKubeecr(env, ["status", "-n", ns, "-o", "json"], as(viewer));
    assert.equal(status.code, 1, status.stdout + status.stderr);
    assert.equal((JSON.parse(status.stdout) as Row[])[0].reason, "never-refreshed");
    const refused = await runKubeecr(env, ["renew", `${ns}/a`], as(viewer));
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stdout, /HTTP 403/);
    assert.match(refused.stdout, /runs as you: see README, \\"Who may run status and renew\\"/);
    assert.doesNotMatch(refused.stdout, /kubeecr identity/, "the run's hint is not for this user");

    const renew = await runKubeecr(
      env,
      ["renew", "-n", ns, "--now", "--cronjob", `${home}/kubeecr`],
      as(operator),
    );
    assert.equal(renew.code, 0, renew.stdout + renew.stderr);
    assert.ok((await readSecret(env, ns, "a")).metadata!.annotations![RENEW]);
    const jobs = JSON.parse(await kubectl(env, ["-n", home, "get", "jobs", "-o", "json"])).items;
    assert.equal(jobs.length, 1);
  } finally {
    await kubectl(env, ["delete", "namespace", ns, home, "--wait=false"]);
    await kubectl(env, [
      "delete",
      "clusterrole",
      "kubeecr-status",
      "kubeecr-renew",
      "--ignore-not-found",
    ]);
  }
});
