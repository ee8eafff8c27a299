/**
 * Issue 14: a run is green only when the Secret really holds a live token.
 * Against the real API server and moto (through the ECR proxy):
 *
 * - a MutatingAdmissionPolicy that keeps the old `.dockerconfigjson` on
 *   UPDATE: the run reads back what was stored and fails that Secret;
 * - a TLS proxy that rewrites list answers (an HTML login page, `{}`, `null`,
 *   an empty body; a list that lost its field selector, an item listed twice,
 *   an item with non-string data);
 * - ECR answering dead and short-lived tokens;
 * - the program's clock 13 h ahead (libfaketime);
 * - a ValidatingAdmissionPolicy refusing the write (403 that RBAC allows);
 * - an ISO-partition region.
 */

import assert from "node:assert/strict";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { freshNamespace, kubectl, testEnv } from "../testenv/connect.ts";
import { fault, on, proxyKubeconfig, startKubeFaultProxy } from "../testenv/fault_proxy.ts";
import {
  adminCore,
  auditRecords,
  type CliResult,
  createSecret,
  dockerConfigOf,
  eventsFor,
  EXPIRES_AT,
  hostOf,
  linesAbout,
  readSecret,
  runKubeecr,
  STATUS,
  summaryOf,
} from "./cli.ts";

const env = await testEnv();
const WEST = "123456789012/us-west-2";
const JSON_LOG = ["--log-format=json"];

function describe(run: CliResult): string {
  return `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

const OUTCOMES = new Set(["refreshed", "would refresh", "fresh", "skipped", "failed"]);

/** The one outcome line about a Secret. */
function outcomeOf(run: CliResult, ns: string, name: string): Record<string, unknown> {
  const lines = linesAbout(run, ns, name).filter((l) => OUTCOMES.has(String(l.msg)));
  assert.equal(lines.length, 1, `one outcome line about ${ns}/${name}: ${describe(run)}`);
  return lines[0];
}

/** Successful Secret patches in `ns` per the API server's audit log. */
async function patchesIn(ns: string, name?: string): Promise<number> {
  return (await auditRecords(env)).filter((r) =>
    r.verb === "patch" && r.objectRef?.resource === "secrets" && r.objectRef.namespace === ns &&
    (!name || r.objectRef.name === name) && r.responseStatus?.code === 200 &&
    !r.requestURI.includes("dryRun")
  ).length;
}

async function apply(yaml: string) {
  await kubectl(env, ["apply", "-f", "-"], yaml);
}

async function remove(kind: string, name: string) {
  await kubectl(env, ["delete", kind, name, "--ignore-not-found"]);
}

/** Polls `probe` until it holds: a new admission policy takes a moment to reach admission. */
async function until(what: string, probe: () => Promise<boolean>) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not within 30s`);
}

/** A dry-run update of the probe Secret (kubectl, server-side): a refusal, or the data it would store. */
async function dryRunUpdate(ns: string, name: string) {
  try {
    const out = await kubectl(env, [
      "-n",
      ns,
      "patch",
      "secret",
      name,
      "--dry-run=server",
      "--type=merge",
      "-p",
      JSON.stringify({ data: { ".dockerconfigjson": btoa('{"auths":{"probe":{}}}') } }),
      "-o",
      "json",
    ]);
    return { refused: false, data: JSON.parse(out).data?.[".dockerconfigjson"] as string };
  } catch {
    return { refused: true, data: undefined };
  }
}

/** The namespace's Secrets as the API server sends them (kubectl's JSON), unfiltered. */
async function rawSecrets(ns: string): Promise<{ metadata: { name: string } }[]> {
  return JSON.parse(await kubectl(env, ["-n", ns, "get", "secrets", "-o", "json"])).items;
}

// ---------------------------------------------------------------------------
// Item 1: read back what was written.

/** An admission policy's spec lines that make it judge every update of a Secret in `ns`. */
function updatesOfSecretsIn(ns: string): string {
  return `  failurePolicy: Fail
  matchConstraints:
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ${ns}}}
    resourceRules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["UPDATE"]
        resources: ["secrets"]`;
}

function keepOldDataPolicy(ns: string): string {
  return `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: keep-old-data-${ns}}
spec:
  reinvocationPolicy: Never
${updatesOfSecretsIn(ns)}
  mutations:
    - patchType: JSONPatch
      jsonPatch:
        expression: >-
          [JSONPatch{op: "replace", path: "/data/.dockerconfigjson",
          value: oldObject.data[".dockerconfigjson"]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: keep-old-data-${ns}}
spec:
  policyName: keep-old-data-${ns}
`;
}

Deno.test("a MutatingAdmissionPolicy keeps the old .dockerconfigjson: the Secret fails (Warning, no Normal event), its status claims no entry, exit 1; --dry-run sees it too", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "readback");
  await createSecret(env, ns, { name: "probe", dockerConfig: '{"auths":{}}' });
  await createSecret(env, ns, { name: "pull", registries: WEST, dockerConfig: '{"auths":{}}' });
  await apply(keepOldDataPolicy(ns));
  try {
    await until("the mutating policy keeps old data", async () => {
      const r = await dryRunUpdate(ns, "probe");
      return r.data === btoa('{"auths":{}}');
    });

    const dry = await runKubeecr(env, ["--namespace", ns, "--dry-run", ...JSON_LOG], {
      aws: ecr.awsEnv,
    });
    assert.equal(dry.code, 1, describe(dry));
    const dryLine = outcomeOf(dry, ns, "pull");
    assert.equal(dryLine.msg, "failed", describe(dry));
    assert.match(String(dryLine.error), /would store different data than KubeECR wrote/);

    const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });
    assert.equal(run.code, 1, describe(run));
    const line = outcomeOf(run, ns, "pull");
    assert.equal(line.msg, "failed", describe(run));
    assert.equal(line.reason, "RefreshFailed");
    assert.match(
      String(line.error),
      /the API server stored different data than KubeECR wrote \(another entry for|no entry for/,
    );
    assert.match(String(line.error), /admission webhook or policy may be rewriting this Secret/);

    const stored = await readSecret(env, ns, "pull");
    assert.deepEqual(dockerConfigOf(stored), { auths: {} }, "the policy kept the old data");
    const annotations = stored.metadata!.annotations ?? {};
    const status = annotations[STATUS] ? JSON.parse(annotations[STATUS]) : {};
    assert.equal(status[hostOf(WEST)], undefined, `status claims no entry: ${annotations[STATUS]}`);
    assert.equal(annotations[EXPIRES_AT], undefined, "no expiry claimed");
    const events = await eventsFor(env, stored);
    assert.deepEqual(events.filter((e) => e.type === "Normal"), [], "no Normal event");
    assert.ok(
      events.some((e) => e.type === "Warning" && e.reason === "RefreshFailed"),
      JSON.stringify(events.map((e) => [e.type, e.reason])),
    );
    assert.equal(summaryOf(run).refreshed, 0);
  } finally {
    await remove("mutatingadmissionpolicybinding", `keep-old-data-${ns}`);
    await remove("mutatingadmissionpolicy", `keep-old-data-${ns}`);
  }
});

// ---------------------------------------------------------------------------
// Item 9: a write refused by admission is not a missing grant.

Deno.test("a ValidatingAdmissionPolicy refuses the write (403 RBAC allows): the message says admission refused it and quotes the server, not 'grant'", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "vap-403");
  await createSecret(env, ns, { name: "probe", dockerConfig: '{"auths":{}}' });
  await createSecret(env, ns, { name: "pull", registries: WEST });
  const name = `frozen-${ns}`;
  await apply(`
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: ${name}}
spec:
${updatesOfSecretsIn(ns)}
  validations:
    - expression: "false"
      # Forbidden: HTTP 403, as a refusal by RBAC would be (the default, Invalid, is 422).
      reason: Forbidden
      message: Secrets in this namespace are frozen by the platform team
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: ${name}}
spec:
  policyName: ${name}
  validationActions: [Deny]
`);
  try {
    await until(
      "the validating policy refuses",
      async () => (await dryRunUpdate(ns, "probe")).refused,
    );
    const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });
    assert.equal(run.code, 1, describe(run));
    const line = outcomeOf(run, ns, "pull");
    assert.equal(line.msg, "failed");
    const error = String(line.error);
    assert.match(error, /HTTP 403/);
    assert.match(error, /an admission policy or webhook refused the write/);
    assert.match(error, /Secrets in this namespace are frozen by the platform team/);
    assert.doesNotMatch(error, /grant the kubeecr identity/);
  } finally {
    await remove("validatingadmissionpolicybinding", name);
    await remove("validatingadmissionpolicy", name);
  }
});

// ---------------------------------------------------------------------------
// Item 2: validate every list answer.

const LOGIN_PAGE = "<!DOCTYPE html><html><head><title>Sign in - Corp SSO</title></head>" +
  "<body><form action=/login></form></body></html>";

const NOT_A_LIST: { name: string; body: string; contentType: string; shows: RegExp }[] = [
  {
    name: "an HTML login page",
    body: LOGIN_PAGE,
    contentType: "text/html; charset=utf-8",
    shows:
      /content-type "text\/html; charset=utf-8", a body starting "<!DOCTYPE html><html><head><title>Sign in/,
  },
  {
    name: "{}",
    body: "{}",
    contentType: "application/json",
    shows: /a JSON object with kind missing, apiVersion missing, items missing, metadata missing/,
  },
  { name: "null", body: "null", contentType: "application/json", shows: /JSON null/ },
  {
    name: "an empty body",
    body: "",
    contentType: "application/json",
    shows: /\(the body is empty; content-type "application\/json"\)/,
  },
];

Deno.test("a list answer that is not a v1 SecretList fails the run at once, naming the host and what came back: exit 2, cluster-wide and namespaced", async (t) => {
  await using proxy = startKubeFaultProxy(env);
  const kubeconfig = await proxyKubeconfig(env, proxy);
  const host = new URL(proxy.url).host;
  const ns = await freshNamespace(env, "not-a-list");
  await createSecret(env, ns, { name: "pull", registries: WEST });
  for (const c of NOT_A_LIST) {
    for (const scope of [[], ["--namespace", ns]]) {
      await t.step(`${c.name}, ${scope.length ? "namespaced" : "cluster-wide"}`, async () => {
        proxy.reset();
        proxy.add({
          match: on.secretList,
          fault: fault.rewrite(() => c.body, c.contentType),
        });
        const run = await runKubeecr(env, [...scope, ...JSON_LOG], {
          env: { KUBECONFIG: kubeconfig },
        });
        assert.equal(run.code, 2, describe(run));
        const error = run.lines.find((l) => l.level === "error");
        assert.ok(error, describe(run));
        const text = String(error.error);
        assert.match(text, new RegExp(`${host.replace(".", "\\.")} answered HTTP 200`), text);
        assert.match(text, /is not a v1 SecretList/, text);
        assert.match(text, c.shows, text);
        assert.ok(!run.lines.some((l) => l.msg === "summary" && l["exit-code"] === 0));
      });
    }
  }
  assert.equal(await patchesIn(ns), 0, "nothing written");
});

Deno.test("a list that lost its field selector: Opaque and dockercfg items are skipped with a reason and never written, a duplicate is handled once, exit 0", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  await using proxy = startKubeFaultProxy(env);
  const ns = await freshNamespace(env, "lost-selector");
  await createSecret(env, ns, { name: "pull", registries: WEST });
  const opaque = await createSecret(env, ns, { name: "opaque", registries: WEST, type: "Opaque" });
  const dockercfg = await adminCore(env).createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name: "dockercfg", annotations: { "deft.com/kubeecr": WEST } },
      type: "kubernetes.io/dockercfg",
      data: { ".dockercfg": btoa("{}") },
    },
  });
  // Every Secret of the namespace as the server stores them: what a list
  // without its field selector would have answered (the pull secret twice).
  const items = await rawSecrets(ns);
  const pull = items.find((s) => s.metadata.name === "pull");
  proxy.add({
    match: on.secretList,
    fault: fault.rewrite((body) => {
      const list = JSON.parse(body);
      list.items = [...items, pull];
      return JSON.stringify(list);
    }),
  });
  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], {
    aws: ecr.awsEnv,
    env: { KUBECONFIG: await proxyKubeconfig(env, proxy) },
  });
  assert.equal(run.code, 0, describe(run));
  assert.equal(outcomeOf(run, ns, "pull").msg, "refreshed");
  for (const name of ["opaque", "dockercfg"]) {
    const line = outcomeOf(run, ns, name);
    assert.equal(line.msg, "skipped", describe(run));
    assert.match(
      String(line.reason),
      /is of type "(Opaque|kubernetes\.io\/dockercfg)", not kubernetes\.io\/dockerconfigjson/,
    );
  }
  assert.equal(await patchesIn(ns, "pull"), 1, "the duplicate is written once");
  assert.equal(await patchesIn(ns, "opaque"), 0);
  assert.equal(await patchesIn(ns, "dockercfg"), 0);
  assert.deepEqual((await readSecret(env, ns, "opaque")).data, opaque.data);
  assert.deepEqual((await readSecret(env, ns, "dockercfg")).data, dockercfg.data);
});

Deno.test("an item with a non-string data value fails alone; the other Secret is refreshed; exit 1", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  await using proxy = startKubeFaultProxy(env);
  const ns = await freshNamespace(env, "bad-item");
  await createSecret(env, ns, { name: "a-bad", registries: WEST });
  await createSecret(env, ns, { name: "b-good", registries: WEST });
  proxy.add({
    match: on.secretList,
    fault: fault.rewrite((body) => {
      const list = JSON.parse(body);
      for (const item of list.items) {
        if (item.metadata.name === "a-bad") item.data[".dockerconfigjson"] = 12345;
      }
      return JSON.stringify(list);
    }),
  });
  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], {
    aws: ecr.awsEnv,
    env: { KUBECONFIG: await proxyKubeconfig(env, proxy) },
  });
  assert.equal(run.code, 1, describe(run));
  const bad = outcomeOf(run, ns, "a-bad");
  assert.equal(bad.msg, "failed");
  assert.match(String(bad.error), /its data key "\.dockerconfigjson" is not a string/);
  assert.equal(outcomeOf(run, ns, "b-good").msg, "refreshed", describe(run));
  assert.equal(await patchesIn(ns, "a-bad"), 0);
  assert.equal(summaryOf(run).failed, 1);
});

// ---------------------------------------------------------------------------
// Item 3: refuse dead tokens, flag short-lived ones.

Deno.test("ECR answers a token that expires in 30s: nothing is written, the Secret keeps its entry, RefreshFailed names the expiry, exit 1", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "dead-token");
  await createSecret(env, ns, { name: "pull", registries: WEST });
  const first = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });
  assert.equal(first.code, 0, describe(first));
  const before = await readSecret(env, ns, "pull");

  ecr.tokenLifetime("us-west-2", 30);
  const run = await runKubeecr(env, ["--namespace", ns, "--force", ...JSON_LOG], {
    aws: ecr.awsEnv,
  });
  assert.equal(run.code, 1, describe(run));
  const line = outcomeOf(run, ns, "pull");
  assert.equal(line.msg, "failed");
  assert.equal(line.reason, "RefreshFailed");
  assert.match(
    String(line.error),
    /ECR in us-west-2 answered a token that expires at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, less than a minute away/,
  );
  assert.match(String(line.error), /it was not written and the Secret keeps its entry/);
  const after = await readSecret(env, ns, "pull");
  assert.equal(after.metadata!.resourceVersion, before.metadata!.resourceVersion, "not written");
  assert.ok(
    (await eventsFor(env, after)).some((e) => e.type === "Warning" && e.reason === "RefreshFailed"),
  );
});

Deno.test("a token inside the refresh window is written only if it outlives the entry it replaces, and fails either way", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "short-token");
  await createSecret(env, ns, { name: "pull", registries: WEST });

  // No entry yet: a 3h token outlives nothing, so it is written, and fails (window 6h).
  ecr.tokenLifetime("us-west-2", 3 * 3600);
  const first = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });
  assert.equal(first.code, 1, describe(first));
  const line = outcomeOf(first, ns, "pull");
  assert.equal(line.msg, "failed");
  assert.match(String(line.error), /inside the refresh window of 6h/);
  assert.match(String(line.error), /it was written, since it outlives the entry it replaced/);
  const written = await readSecret(env, ns, "pull");
  assert.ok(dockerConfigOf(written).auths[hostOf(WEST)]?.password, "written");
  const events = await eventsFor(env, written);
  assert.deepEqual(events.filter((e) => e.type === "Normal"), [], "no Normal event");

  // A 2h token does not outlive the 3h entry: nothing is written.
  ecr.tokenLifetime("us-west-2", 2 * 3600);
  const second = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });
  assert.equal(second.code, 1, describe(second));
  const refused = outcomeOf(second, ns, "pull");
  assert.equal(refused.msg, "failed");
  assert.match(String(refused.error), /no later than the entry it would replace/);
  assert.equal(
    (await readSecret(env, ns, "pull")).metadata!.resourceVersion,
    written.metadata!.resourceVersion,
  );
});

// ---------------------------------------------------------------------------
// Item 4: one clock, checked.

/** libfaketime (Debian package faketime), or undefined when it is not installed. */
function libfaketime(): string | undefined {
  for (const dir of ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"]) {
    const path = `${dir}/faketime/libfaketime.so.1`;
    try {
      Deno.statSync(path);
      return path;
    } catch { /* not here */ }
  }
  return undefined;
}

Deno.test("the program's clock 13h ahead (libfaketime): one warning with both times, freshness judged on the API server's time, no rewrite storm", async () => {
  const lib = libfaketime();
  assert.ok(lib, "libfaketime is required (apt-get install faketime; .ci/run installs it)");
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "skewed-clock");
  await createSecret(env, ns, { name: "fresh-one", registries: WEST });
  const first = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });
  assert.equal(first.code, 0, describe(first));
  await createSecret(env, ns, { name: "new-one", registries: WEST });

  const skewed = {
    LD_PRELOAD: lib,
    FAKETIME: "+13h",
    // Timers and deadlines keep real time; only the wall clock is off.
    FAKETIME_DONT_FAKE_MONOTONIC: "1",
  };
  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], {
    aws: ecr.awsEnv,
    env: skewed,
  });
  assert.equal(run.code, 0, describe(run));
  const warnings = run.lines.filter((l) =>
    /clock differs from the API server's/.test(String(l.msg))
  );
  assert.equal(warnings.length, 1, describe(run));
  assert.ok(Math.abs(Number(warnings[0]["skew-seconds"]) + 13 * 3600) < 60, describe(run));
  assert.ok(
    Math.abs(Date.parse(String(warnings[0]["api-server-time"])) - Date.now()) < 120_000,
    "the server's time is the real one",
  );
  assert.ok(
    !run.lines.some((l) => /ECR's clock/.test(String(l.msg))),
    "ECR agrees with the server",
  );
  assert.equal(outcomeOf(run, ns, "fresh-one").msg, "fresh", describe(run));
  const refreshed = outcomeOf(run, ns, "new-one");
  assert.equal(refreshed.msg, "refreshed");
  // Its expiry is ECR's real one (12h from now), not a time in the program's past.
  assert.ok(Date.parse(String(refreshed["expires-at"])) > Date.now() + 11 * 3600_000);

  // And again: nothing is due, nothing is written.
  const again = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], {
    aws: ecr.awsEnv,
    env: skewed,
  });
  assert.equal(again.code, 0, describe(again));
  assert.equal(summaryOf(again).refreshed, 0, describe(again));
  assert.equal(summaryOf(again).fresh, 2);
  assert.equal(await patchesIn(ns), 2, "one write per Secret in all");
});

// ---------------------------------------------------------------------------
// Item 9: ISO and EUSC regions are regions.

Deno.test("an ISO-B region is refreshed, its entry under the partition's domain sc2s.sgov.gov", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "iso-region");
  await createSecret(env, ns, { name: "pull", registries: "123456789012/us-isob-east-1" });
  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });
  assert.equal(run.code, 0, describe(run));
  assert.equal(outcomeOf(run, ns, "pull").msg, "refreshed");
  const auths = dockerConfigOf(await readSecret(env, ns, "pull")).auths;
  assert.deepEqual(Object.keys(auths), ["123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov"]);
  assert.equal(ecr.tokenCalls("us-isob-east-1"), 1);
});
