/**
 * Issue 3's contract, proven against the real environment: KubeECR runs as a
 * subprocess with the `local` permission set, against a real API server, with
 * ECR answered by moto through an EcrProxy that counts the calls. Each test
 * works in namespaces of its own and passes them with --namespace, so tests
 * never see each other's Secrets.
 */

import assert from "node:assert/strict";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { freshNamespace, kubectl, testEnv } from "../testenv/connect.ts";
import {
  adminCore,
  auditRecords,
  createSecret,
  dockerConfigOf,
  eventsFor,
  EXPIRES_AT,
  hostOf,
  linesAbout,
  readSecret,
  REFRESHED_AT,
  RFC3339_UTC,
  runKubeecr,
  STATUS,
  summaryOf,
} from "./cli.ts";

const env = await testEnv();
const JSON_LOG = ["--log-format=json"];

Deno.test("an annotated Secret gets the ECR entry added and keeps everything else it had", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "keep");
  const owner = await adminCore(env).createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: "owner" } },
  });
  const others = {
    "ghcr.io": { username: "bot", password: "ghcr-pass", auth: btoa("bot:ghcr-pass") },
    "registry.example.com": { auth: btoa("me:example-pass"), email: "me@example.com" },
  };
  const before = await createSecret(env, ns, {
    name: "pull",
    registries: "123456789012/us-west-2",
    dockerConfig: JSON.stringify({ auths: others, HttpHeaders: { "X-Team": "web" } }),
    labels: { app: "web" },
    annotations: { "example.com/note": "keep me" },
    ownerReferences: [{
      apiVersion: "v1",
      kind: "ConfigMap",
      name: "owner",
      uid: owner.metadata!.uid!,
    }],
  });

  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  // A clean run says nothing alarming (no warning about its own checks).
  assert.deepEqual(run.lines.filter((l) => l.level !== "info"), []);

  const after = await readSecret(env, ns, "pull");
  const config = dockerConfigOf(after);
  const host = hostOf("123456789012/us-west-2");
  const password = ecr.passwords.get("us-west-2");
  assert.ok(password, "ECR handed out a token");
  assert.deepEqual(config.auths[host], {
    username: "AWS",
    password,
    auth: btoa(`AWS:${password}`),
  });
  assert.deepEqual(config.auths["ghcr.io"], others["ghcr.io"]);
  assert.deepEqual(config.auths["registry.example.com"], others["registry.example.com"]);
  assert.deepEqual(config.HttpHeaders, { "X-Team": "web" });
  assert.equal(after.metadata!.uid, before.metadata!.uid, "patched in place, not recreated");
  assert.equal(after.type, before.type);
  assert.deepEqual(after.metadata!.labels, before.metadata!.labels);
  assert.deepEqual(after.metadata!.ownerReferences, before.metadata!.ownerReferences);
  const { [REFRESHED_AT]: refreshedAt, [EXPIRES_AT]: expiresAt, [STATUS]: status, ...rest } = after
    .metadata!.annotations!;
  assert.deepEqual(rest, before.metadata!.annotations);
  // This installation's status: per host, the expiry and a 32-hex fingerprint, never the value.
  assert.deepEqual(Object.keys(JSON.parse(status)), [host]);
  assert.equal(JSON.parse(status)[host].expiresAt, expiresAt);
  assert.match(JSON.parse(status)[host].sha256, /^[0-9a-f]{32}$/);
  assert.ok(!status.includes(password), "the status never holds the password");
  assert.match(refreshedAt, RFC3339_UTC);
  assert.match(expiresAt, RFC3339_UTC);
  // ECR (the proxy makes moto realistic here) issues 12h tokens.
  const lifetimeH = (Date.parse(expiresAt) - Date.parse(refreshedAt)) / 3600_000;
  assert.ok(Math.abs(lifetimeH - 12) < 0.1, `expires-at is 12h after refreshed-at: ${lifetimeH}h`);

  const events = await eventsFor(env, after);
  const refreshed = events.filter((e) => e.reason === "Refreshed");
  assert.equal(refreshed.length, 1, JSON.stringify(events));
  assert.equal(refreshed[0].type, "Normal");
  assert.equal(refreshed[0].source?.component, "kubeecr");
  assert.match(refreshed[0].message ?? "", new RegExp(host.replaceAll(".", "\\.")));
  // What a user sees (`kubectl describe secret` lists no events: its
  // SecretDescriber never fetches them, so `kubectl events` is the command).
  const shown = await kubectl(env, ["events", "--for", "secret/pull", "-n", ns]);
  assert.match(shown, /Normal\s+Refreshed\s+Secret\/pull/);
});

Deno.test("Secrets of two accounts in one region and one in another cost exactly one ECR call per region", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const [a1, a2, b] = await Promise.all(
    ["region-a1", "region-a2", "region-b"].map((p) => freshNamespace(env, p)),
  );
  const targets = [
    { ns: a1, item: "111111111111/us-west-2" },
    { ns: a2, item: "222222222222/us-west-2" },
    { ns: b, item: "333333333333/eu-central-1" },
  ];
  for (const t of targets) await createSecret(env, t.ns, { name: "pull", registries: t.item });

  const run = await runKubeecr(env, ["--namespace", `${a1},${a2},${b}`, ...JSON_LOG], {
    aws: ecr.awsEnv,
  });

  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.equal(ecr.tokenCalls("us-west-2"), 1);
  assert.equal(ecr.tokenCalls("eu-central-1"), 1);
  assert.equal(ecr.tokenCalls(), 2);
  for (const t of targets) {
    const config = dockerConfigOf(await readSecret(env, t.ns, "pull"));
    assert.deepEqual(Object.keys(config.auths), [hostOf(t.item)], t.ns);
  }
  assert.equal(summaryOf(run).refreshed, 3);
});

Deno.test("a second run within the refresh window writes nothing and calls ECR not at all, --force refreshes again", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "window");
  await createSecret(env, ns, { name: "pull", registries: "123456789012/us-west-2" });
  const args = ["--namespace", ns, ...JSON_LOG];
  const first = await runKubeecr(env, args, { aws: ecr.awsEnv });
  assert.equal(first.code, 0, first.stdout + first.stderr);
  const afterFirst = await readSecret(env, ns, "pull");
  assert.equal(ecr.tokenCalls(), 1);
  // Writes as the API server saw them. Not resourceVersion alone: a forced
  // write within the same second as the first one carries identical data and
  // timestamps, and the server does not bump the version of a no-op patch.
  const patches = async () =>
    (await auditRecords(env)).filter((r) =>
      r.verb === "patch" && r.objectRef?.namespace === ns && r.objectRef?.name === "pull" &&
      r.responseStatus?.code === 200
    ).length;
  assert.equal(await patches(), 1);

  const second = await runKubeecr(env, args, { aws: ecr.awsEnv });
  assert.equal(second.code, 0, second.stdout + second.stderr);
  assert.equal(ecr.tokenCalls(), 1, "no ECR call when nothing is due");
  const afterSecond = await readSecret(env, ns, "pull");
  assert.equal(afterSecond.metadata!.resourceVersion, afterFirst.metadata!.resourceVersion);
  assert.equal(await patches(), 1, "the second run sent no write");
  assert.equal(linesAbout(second, ns, "pull")[0]?.msg, "fresh");
  assert.equal(summaryOf(second).fresh, 1);

  const forced = await runKubeecr(env, [...args, "--force"], { aws: ecr.awsEnv });
  assert.equal(forced.code, 0, forced.stdout + forced.stderr);
  assert.equal(ecr.tokenCalls(), 2);
  assert.equal(await patches(), 2, "--force wrote the Secret again");
  assert.equal(summaryOf(forced).refreshed, 1);
});

Deno.test("a Secret annotated with registries in two regions gets both hosts", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "two-regions");
  const items = ["123456789012/us-west-2", "210987654321/eu-west-1"];
  await createSecret(env, ns, { name: "pull", registries: items.join(", ") });

  const run = await runKubeecr(env, ["--namespace", ns], { aws: ecr.awsEnv });

  assert.equal(run.code, 0, run.stdout + run.stderr);
  const auths = dockerConfigOf(await readSecret(env, ns, "pull")).auths;
  assert.deepEqual(Object.keys(auths).sort(), items.map(hostOf).sort());
  assert.equal(auths[hostOf(items[0])].password, ecr.passwords.get("us-west-2"));
  assert.equal(auths[hostOf(items[1])].password, ecr.passwords.get("eu-west-1"));
  assert.equal(ecr.tokenCalls("us-west-2"), 1);
  assert.equal(ecr.tokenCalls("eu-west-1"), 1);
});

Deno.test("--dry-run changes nothing and records no event, but sends the patch with dryRun=All", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "dry-run");
  const before = await createSecret(env, ns, {
    name: "pull",
    registries: "123456789012/us-west-2",
  });

  const run = await runKubeecr(env, ["--namespace", ns, "--dry-run", ...JSON_LOG], {
    aws: ecr.awsEnv,
  });

  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.equal(linesAbout(run, ns, "pull")[0]?.msg, "would refresh");
  const after = await readSecret(env, ns, "pull");
  assert.equal(after.metadata!.resourceVersion, before.metadata!.resourceVersion);
  assert.deepEqual(after.data, before.data);
  assert.deepEqual(await eventsFor(env, after), []);
  // The API server saw (and accepted) the write, as a dry run: validation
  // and RBAC were exercised.
  const patches = (await auditRecords(env)).filter((r) =>
    r.verb === "patch" && r.objectRef?.namespace === ns && r.objectRef?.name === "pull"
  );
  assert.equal(patches.length, 1, JSON.stringify(patches));
  assert.match(patches[0].requestURI, /[?&]dryRun=All(&|$)/);
  assert.equal(patches[0].responseStatus?.code, 200);
});

Deno.test("--events warnings: a refreshed Secret gets no Normal event but its line and status; a failure still its Warning", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  ecr.fail("eu-central-1");
  const ns = await freshNamespace(env, "events-warnings");
  await createSecret(env, ns, { name: "pull", registries: "123456789012/us-west-2" });
  await createSecret(env, ns, { name: "denied", registries: "123456789012/eu-central-1" });

  const run = await runKubeecr(env, ["--namespace", ns, "--events=warnings", ...JSON_LOG], {
    aws: ecr.awsEnv,
  });

  assert.equal(run.code, 1, run.stdout + run.stderr);
  const pull = await readSecret(env, ns, "pull");
  assert.equal(linesAbout(run, ns, "pull")[0]?.msg, "refreshed");
  assert.match(pull.metadata?.annotations?.[REFRESHED_AT] ?? "", RFC3339_UTC);
  assert.ok(dockerConfigOf(pull).auths[hostOf("123456789012/us-west-2")]?.password);
  assert.deepEqual(await eventsFor(env, pull), []);
  const denied = await readSecret(env, ns, "denied");
  assert.equal(linesAbout(run, ns, "denied")[0]?.msg, "failed");
  const warnings = (await eventsFor(env, denied)).map((e) => `${e.type} ${e.reason}`);
  assert.deepEqual(warnings, ["Warning RefreshFailed"]);
});

Deno.test("--selector narrows the list on the server and leaves unlabelled Secrets alone", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "selector");
  await createSecret(env, ns, {
    name: "web",
    registries: "123456789012/us-west-2",
    labels: { team: "web" },
  });
  const other = await createSecret(env, ns, {
    name: "other",
    registries: "123456789012/us-west-2",
  });

  const run = await runKubeecr(env, ["--namespace", ns, "--selector", "team=web", ...JSON_LOG], {
    aws: ecr.awsEnv,
  });

  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.ok(
    dockerConfigOf(await readSecret(env, ns, "web")).auths[hostOf("123456789012/us-west-2")],
  );
  const otherAfter = await readSecret(env, ns, "other");
  assert.equal(otherAfter.metadata!.resourceVersion, other.metadata!.resourceVersion);
  assert.deepEqual(linesAbout(run, ns, "other"), []);
  // Server-side: every list of this namespace carried the selector.
  const lists = (await auditRecords(env)).filter((r) =>
    r.verb === "list" && r.objectRef?.resource === "secrets" && r.objectRef?.namespace === ns
  );
  assert.ok(lists.length > 0);
  for (const l of lists) assert.match(l.requestURI, /[?&]labelSelector=team%3Dweb(&|$)/);
});

Deno.test("--log-format=json prints one JSON object per line and a summary line with the counts", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "json");
  await createSecret(env, ns, { name: "good", registries: "123456789012/us-west-2" });
  await createSecret(env, ns, { name: "bad", registries: "not-an-account/us-west-2" });

  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });

  assert.equal(run.code, 1, run.stdout + run.stderr);
  const lines = run.stdout.trimEnd().split("\n");
  assert.ok(lines.length >= 3);
  for (const line of lines) {
    const obj = JSON.parse(line);
    assert.equal(typeof obj, "object", line);
    assert.match(obj.time, RFC3339_UTC);
    assert.ok(["debug", "info", "warn", "error"].includes(obj.level), line);
    assert.equal(typeof obj.msg, "string");
  }
  assert.deepEqual(run.lines.length, lines.length);
  const summary = summaryOf(run);
  assert.equal(lines.at(-1), JSON.stringify(summary), "the summary comes last");
  assert.equal(summary.discovered, 2);
  assert.equal(summary.refreshed, 1);
  assert.equal(summary.failed, 1);
  assert.equal(summary["ecr-calls"], 1);
  assert.equal(summary["exit-code"], 1);
});

Deno.test("--context picks a kubeconfig context other than the current one", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "context");
  await createSecret(env, ns, { name: "pull", registries: "123456789012/us-west-2" });
  // A copy of the admin kubeconfig whose current context points at nothing.
  const kubeconfig = await Deno.makeTempFile({ dir: env.dir, suffix: ".yaml" });
  await Deno.copyFile(env.kubeconfig, kubeconfig);
  const config = (...args: string[]) =>
    kubectl(env, ["--kubeconfig", kubeconfig, "config", ...args]);
  await config("set-cluster", "nowhere", "--server=https://127.0.0.1:1");
  await config("set-context", "nowhere", "--cluster=nowhere", "--user=user");
  await config("use-context", "nowhere");
  const options = { aws: ecr.awsEnv, env: { KUBECONFIG: kubeconfig } };

  const current = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], options);
  assert.equal(current.code, 2, "the current context reaches no API server");

  const chosen = await runKubeecr(env, [
    "--namespace",
    ns,
    "--context",
    "kubeecr-testenv",
    ...JSON_LOG,
  ], options);
  assert.equal(chosen.code, 0, chosen.stdout + chosen.stderr);
  assert.equal(summaryOf(chosen).refreshed, 1);
  assert.ok(
    hostOf("123456789012/us-west-2") in dockerConfigOf(await readSecret(env, ns, "pull")).auths,
  );
});
