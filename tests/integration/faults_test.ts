/**
 * Issue 7's "Done when", proven through the fault proxy against the real API
 * server and moto: each test puts one fault between KubeECR and a dependency
 * and checks what an operator would see — the exit code, the run's duration
 * against its budget, one log line per Secret, the writes in the API server's
 * audit log, the events.
 *
 * Every run gets short deadlines (--request-timeout 2s --timeout 20s) and is
 * killed if it outlives its budget by far, so a hang fails the test instead of
 * stalling the suite.
 */

import assert from "node:assert/strict";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { freshNamespace, kubectl, testEnv } from "../testenv/connect.ts";
import {
  fault,
  type FaultProxy,
  on,
  proxyKubeconfig,
  startAwsFaultProxy,
  startKubeFaultProxy,
} from "../testenv/fault_proxy.ts";
import {
  auditRecords,
  b64,
  type CliOptions,
  type CliResult,
  createSecret,
  dockerConfigOf,
  eventsFor,
  hostOf,
  linesAbout,
  readSecret,
  runKubeecr,
} from "./cli.ts";

const env = await testEnv();

const REQUEST_TIMEOUT_S = 2;
const BUDGET_S = 20;
/** "Exits within a few seconds" of the budget, start-up on a busy machine included. */
const BUDGET_SLACK_S = 5;
/** The silent-region test's per-call deadline: long enough to tell "waited" from "did not wait". */
const SILENT_REGION_TIMEOUT_S = 4;
const WEST = "123456789012/us-west-2";
const CENTRAL = "123456789012/eu-central-1";

/** Runs KubeECR with the short deadlines and JSON logs; kills it 10 s after its budget. */
async function kubeecr(
  args: string[],
  opts: CliOptions = {},
  requestTimeoutS = REQUEST_TIMEOUT_S,
): Promise<CliResult> {
  const deadlines = ["--request-timeout", `${requestTimeoutS}s`, "--timeout", `${BUDGET_S}s`];
  return await runKubeecr(env, [...deadlines, "--log-format=json", ...args], {
    killAfterMs: (BUDGET_S + BUDGET_SLACK_S + 5) * 1000,
    ...opts,
  });
}

/** The run ended by itself within its budget (plus a few seconds to exit). */
function assertEndedInBudget(run: CliResult) {
  assert.ok(
    !run.killed,
    `still running after ${run.seconds.toFixed(1)}s (budget ${BUDGET_S}s), killed; ` +
      `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`,
  );
  assert.ok(
    run.seconds <= BUDGET_S + BUDGET_SLACK_S,
    `ran ${run.seconds.toFixed(1)}s, budget ${BUDGET_S}s`,
  );
}

function describe(run: CliResult): string {
  return `exit ${run.code} after ${
    run.seconds.toFixed(1)
  }s\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

/** Messages of the lines that give a Secret's outcome (other lines may name it, e.g. a missed event). */
const OUTCOMES = new Set(["refreshed", "fresh", "skipped", "failed"]);

/** The one outcome line about a Secret (one per Secret is the contract). */
function onlyLine(run: CliResult, ns: string, name: string): Record<string, unknown> {
  const lines = linesAbout(run, ns, name).filter((l) => OUTCOMES.has(String(l.msg)));
  assert.equal(lines.length, 1, `one outcome line about ${ns}/${name}: ${describe(run)}`);
  return lines[0];
}

/** Names of the Secrets of `ns` the API server accepted a write for, as its audit log says. */
async function writtenIn(ns: string): Promise<string[]> {
  return (await auditRecords(env)).filter((r) =>
    r.verb === "patch" && r.objectRef?.resource === "secrets" && r.objectRef.namespace === ns &&
    r.responseStatus?.code === 200
  ).map((r) => r.objectRef!.name!);
}

async function createDue(ns: string, names: string[], registries = WEST) {
  for (const name of names) await createSecret(env, ns, { name, registries });
}

const DOCKER_CONFIG_SELECTOR = "type=kubernetes.io/dockerconfigjson";

/** A list of the dockerconfigjson Secrets: the discovery list (not a scan of other types). */
function dockerConfigList(r: Request): boolean {
  return on.secretList(r) &&
    new URL(r.url).searchParams.get("fieldSelector") === DOCKER_CONFIG_SELECTOR;
}

/** The discovery lists the proxy saw (from the `from`-th request on), oldest first. */
function secretLists(proxy: FaultProxy, from = 0) {
  return proxy.requests.slice(from).filter((r) =>
    r.method === "GET" && /\/secrets$/.test(r.path) &&
    new URLSearchParams(r.search).get("fieldSelector") === DOCKER_CONFIG_SELECTOR
  );
}

async function kubeconfigThrough(proxy: FaultProxy): Promise<CliOptions["env"]> {
  return { KUBECONFIG: await proxyKubeconfig(env, proxy) };
}

Deno.test("one region's ECR endpoint silent: the other region is refreshed within the per-call deadline; the stuck one fails naming the timeout and region; exit 1 within the budget", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  await using aws = startAwsFaultProxy(ecr.url);
  const silent = aws.add({ match: on.region("eu-central-1"), fault: fault.hang() });
  const ns = await freshNamespace(env, "ecr-silent");
  const healthy = ["west-1", "west-2", "west-3"];
  const stuck = ["central-1", "central-2"];
  await createDue(ns, healthy, WEST);
  await createDue(ns, stuck, CENTRAL);

  // The stuck Secrets sort first, so they are taken up first; with 4 at a
  // time two are left for us-west-2 even if waiting for a token held a slot.
  const run = await kubeecr(["--namespace", ns, "--concurrency", "4"], {
    aws: { AWS_ENDPOINT_URL_ECR: aws.url },
  }, SILENT_REGION_TIMEOUT_S);

  assertEndedInBudget(run);
  assert.equal(run.code, 1, describe(run));
  assert.ok(silent.hits >= 1, "the eu-central-1 call reached the silent endpoint");
  const stuckSince = aws.requests.find((r) => r.fault === "hang")!.at;
  for (const name of healthy) {
    const line = onlyLine(run, ns, name);
    assert.equal(line.msg, "refreshed", JSON.stringify(line));
    // Not waiting for the stuck call at all: logged before half its deadline
    // has passed. (A run that awaits every region first logs it just after
    // the whole deadline; measured against a barrier variant of the pipeline.)
    const at = run.arrivals[run.lines.indexOf(line)];
    assert.ok(
      at - stuckSince < SILENT_REGION_TIMEOUT_S * 1000 / 2,
      `${name} was logged ${at - stuckSince} ms after the stuck eu-central-1 call began ` +
        `(--request-timeout ${SILENT_REGION_TIMEOUT_S}s): it waited for the stuck region`,
    );
    const config = dockerConfigOf(await readSecret(env, ns, name));
    assert.ok(config.auths[hostOf(WEST)], `${name} carries the us-west-2 credentials`);
  }
  for (const name of stuck) {
    const line = onlyLine(run, ns, name);
    assert.equal(line.msg, "failed", JSON.stringify(line));
    const text = JSON.stringify(line);
    assert.match(text, /eu-central-1/, "the failure names the region");
    assert.match(text, /tim(e|ed) ?out|deadline/i, "the failure names the timeout");
    const events = await eventsFor(env, await readSecret(env, ns, name));
    const warning = events.find((e) => e.type === "Warning");
    assert.ok(warning, `a Warning event on ${name}`);
    assert.match(warning.message ?? "", /eu-central-1/);
    assert.match(warning.message ?? "", /tim(e|ed) ?out|deadline/i);
  }
  assert.deepEqual((await writtenIn(ns)).sort(), healthy);
});

Deno.test("the API server goes silent after N writes: the run ends within its budget, every Secret written is logged as refreshed, exit 1; the next run finishes the rest", async () => {
  const N = 4;
  const names = Array.from({ length: 10 }, (_, i) => `pull-${String(i).padStart(2, "0")}`);
  const ns = await freshNamespace(env, "api-silent");
  await createDue(ns, names);
  // Realistic expiries, so the Secrets written by the first run are fresh for the second.
  await using ecr = startEcrProxy(env.motoUrl);
  let written: string[];
  {
    await using api = startKubeFaultProxy(env);
    const silence = api.add({ match: on.secretPatch, after: N, fault: fault.drop() });
    const run = await kubeecr(["--namespace", ns, "--concurrency", "1"], {
      env: await kubeconfigThrough(api),
      aws: ecr.awsEnv,
    });

    assertEndedInBudget(run);
    assert.equal(run.code, 1, describe(run));
    assert.equal(silence.hits, 1, "the proxy went silent at write N+1");
    written = await writtenIn(ns);
    assert.equal(written.length, N, `the API server accepted ${N} writes: ${written}`);
    for (const name of names) {
      const line = onlyLine(run, ns, name);
      assert.equal(
        line.msg,
        written.includes(name) ? "refreshed" : "failed",
        `${name}: ${JSON.stringify(line)}`,
      );
    }
  }

  const next = await kubeecr(["--namespace", ns], { aws: ecr.awsEnv });
  assertEndedInBudget(next);
  assert.equal(next.code, 0, describe(next));
  for (const name of names) {
    const line = onlyLine(next, ns, name);
    assert.equal(line.msg, written.includes(name) ? "fresh" : "refreshed", JSON.stringify(line));
  }
  assert.equal((await writtenIn(ns)).length, names.length, "each Secret written exactly once");
});

Deno.test("a list answered 429 with Retry-After: 2 is retried after 2 s and the run succeeds", async () => {
  const ns = await freshNamespace(env, "throttled");
  await createDue(ns, ["pull"]);
  await using api = startKubeFaultProxy(env);
  const throttled = api.add({ match: dockerConfigList, times: 1, fault: fault.status(429, 2) });

  const run = await kubeecr(["--namespace", ns], { env: await kubeconfigThrough(api) });

  assertEndedInBudget(run);
  assert.equal(run.code, 0, describe(run));
  assert.equal(throttled.hits, 1);
  const lists = secretLists(api);
  assert.ok(lists.length >= 2, `the list was asked again: ${JSON.stringify(lists)}`);
  assert.equal(lists[0].status, 429);
  const waited = lists[1].at - lists[0].at;
  assert.ok(waited >= 1950, `waited ${waited} ms before asking again; Retry-After said 2 s`);
  assert.equal(onlyLine(run, ns, "pull").msg, "refreshed");
});

Deno.test("two 500s on a write (and a 503 on its event) then success: refreshed, the event recorded, exit 0", async () => {
  const ns = await freshNamespace(env, "flaky");
  await createDue(ns, ["pull"]);
  await using api = startKubeFaultProxy(env);
  const failing = api.add({ match: on.secretPatch, times: 2, fault: fault.status(500) });
  const eventFailing = api.add({ match: on.eventWrite, times: 1, fault: fault.status(503) });

  const run = await kubeecr(["--namespace", ns], { env: await kubeconfigThrough(api) });

  assertEndedInBudget(run);
  assert.equal(run.code, 0, describe(run));
  assert.equal(failing.hits, 2);
  assert.equal(eventFailing.hits, 1);
  assert.equal(onlyLine(run, ns, "pull").msg, "refreshed");
  assert.deepEqual(await writtenIn(ns), ["pull"]);
  const events = await eventsFor(env, await readSecret(env, ns, "pull"));
  assert.deepEqual(events.map((e) => e.reason), ["Refreshed"]);
});

Deno.test("a connection closed under a write is retried: refreshed, exit 0", async () => {
  const ns = await freshNamespace(env, "reset");
  await createDue(ns, ["pull"]);
  await using api = startKubeFaultProxy(env);
  const reset = api.add({ match: on.secretPatch, times: 1, fault: fault.reset() });

  const run = await kubeecr(["--namespace", ns], { env: await kubeconfigThrough(api) });

  assertEndedInBudget(run);
  assert.equal(run.code, 0, describe(run));
  assert.equal(reset.hits, 1);
  assert.equal(onlyLine(run, ns, "pull").msg, "refreshed");
  assert.deepEqual(await writtenIn(ns), ["pull"]);
});

Deno.test("a list slower than --request-timeout is abandoned at the deadline and asked again", async () => {
  const ns = await freshNamespace(env, "slow");
  await createDue(ns, ["pull"]);
  await using api = startKubeFaultProxy(env);
  const slowMs = (REQUEST_TIMEOUT_S + 3) * 1000;
  api.add({ match: dockerConfigList, times: 1, fault: fault.delay(slowMs) });

  const run = await kubeecr(["--namespace", ns], { env: await kubeconfigThrough(api) });

  assertEndedInBudget(run);
  assert.equal(run.code, 0, describe(run));
  const lists = secretLists(api);
  assert.ok(lists.length >= 2, `the slow list was given up and retried: ${JSON.stringify(lists)}`);
  const gaveUpAfter = lists[1].at - lists[0].at;
  assert.ok(
    gaveUpAfter >= REQUEST_TIMEOUT_S * 1000 - 100 && gaveUpAfter < slowMs,
    `asked again ${gaveUpAfter} ms after the slow list; the deadline is ${REQUEST_TIMEOUT_S}s`,
  );
  assert.equal(onlyLine(run, ns, "pull").msg, "refreshed");
});

/** Creates `count` small unannotated dockerconfigjson Secrets quickly: one client, 16 at a time. */
async function createFiller(ns: string, count: number) {
  const read = (p: string) => Deno.readTextFileSync(p);
  using client = Deno.createHttpClient({
    caCerts: [read(env.caCert)],
    cert: read(env.admin.cert),
    key: read(env.admin.key),
  });
  const names = Array.from({ length: count }, (_, i) => `filler-${String(i).padStart(4, "0")}`);
  const create = async (name: string) => {
    const res = await fetch(`${env.server}/api/v1/namespaces/${ns}/secrets`, {
      method: "POST",
      client,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        metadata: { name },
        type: "kubernetes.io/dockerconfigjson",
        data: { ".dockerconfigjson": b64('{"auths":{}}') },
      }),
    });
    await res.body?.cancel();
    if (res.status !== 201) throw new Error(`creating ${ns}/${name}: HTTP ${res.status}`);
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < names.length) await create(names[next++]);
    }),
  );
}

Deno.test("a 410 on the second page of a list restarts the listing and yields every Secret exactly once, exit 0", async () => {
  const ns = await freshNamespace(env, "expired");
  // More Secrets than one page holds whatever the page size (at most 500):
  // the annotated ones sort first and last, so they sit on different pages.
  try {
    await createFiller(ns, 510);
    const annotated = ["aaa-first", "zzz-last"];
    await createDue(ns, annotated);
    await using api = startKubeFaultProxy(env);
    const expired = api.add({
      match: (r) => dockerConfigList(r) && on.continued(r),
      times: 1,
      fault: fault.status(410),
    });

    const run = await kubeecr(["--namespace", ns], { env: await kubeconfigThrough(api) });

    assertEndedInBudget(run);
    assert.equal(run.code, 0, describe(run));
    assert.equal(expired.hits, 1, "a second page was asked for, and answered 410");
    const expiredAt = api.requests.findIndex((r) => r.status === 410);
    const restarted = secretLists(api, expiredAt + 1).some((r) => !r.search.includes("continue="));
    assert.ok(restarted, "the listing started again from the first page");
    for (const name of annotated) {
      assert.equal(onlyLine(run, ns, name).msg, "refreshed");
      const events = await eventsFor(env, await readSecret(env, ns, name));
      assert.deepEqual(events.map((e) => e.reason), ["Refreshed"], `${name}: one event`);
    }
    assert.deepEqual((await writtenIn(ns)).sort(), annotated, "each Secret written exactly once");
    const others = run.lines.filter((l) =>
      typeof l.secret === "string" && l.secret.includes("filler")
    );
    assert.deepEqual(others, [], "unannotated Secrets are not reported");
  } finally {
    // 500 Secrets would weigh on any later cluster-wide run of the suite.
    await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
  }
});

Deno.test("stdout closed after the first line (| head -1): the exit code is the unpiped one and every event is recorded", async () => {
  const ns = await freshNamespace(env, "head");
  const names = ["pull-1", "pull-2", "pull-3"];
  await createDue(ns, names);

  const run = await kubeecr(["--namespace", ns], { closeStdoutAfterLines: 1 });

  assertEndedInBudget(run);
  // Unpiped, three due Secrets and a healthy cluster end in 0.
  assert.equal(run.code, 0, describe(run));
  assert.doesNotMatch(run.stderr, /BrokenPipe|Uncaught/, "a closed stdout is not a crash");
  assert.deepEqual((await writtenIn(ns)).sort(), names);
  for (const name of names) {
    const events = await eventsFor(env, await readSecret(env, ns, name));
    assert.deepEqual(events.map((e) => e.reason), ["Refreshed"], `${name}: its event`);
  }
});

for (
  const { alpn, label } of [
    { alpn: undefined, label: "offering h2 and HTTP/1.1 like kube-apiserver" },
    { alpn: ["http/1.1"], label: "speaking HTTP/1.1 only" },
  ]
) {
  Deno.test(`connections to the API server never exceed --concurrency + 1 (proxy ${label})`, async () => {
    const concurrency = 4;
    const ns = await freshNamespace(env, "conns");
    const names = Array.from({ length: 24 }, (_, i) => `pull-${String(i).padStart(2, "0")}`);
    await createDue(ns, names);
    await using api = startKubeFaultProxy(env, { alpn });

    const run = await kubeecr(["--namespace", ns, "--concurrency", String(concurrency)], {
      env: await kubeconfigThrough(api),
    });

    assertEndedInBudget(run);
    assert.equal(run.code, 0, describe(run));
    assert.equal((await writtenIn(ns)).length, names.length);
    const { peak, total } = api.connections;
    assert.ok(peak >= 1, "the run went through the proxy");
    assert.ok(
      peak <= concurrency + 1,
      `peak ${peak} connections (${total} in all) for --concurrency ${concurrency}`,
    );
  });
}
