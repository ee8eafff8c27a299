/**
 * The fault proxy does what tests/integration/faults_test.ts relies on,
 * checked with plain fetch against the real API server and moto: it forwards
 * (admin certificate upstream, a bearer token passed through untouched), each
 * fault does what it says for as many requests as it says, and the counts
 * are right. These pass on any version of KubeECR: they test the tool.
 */

import assert from "node:assert/strict";
import { testEnv } from "../testenv/connect.ts";
import {
  fault,
  on,
  startAwsFaultProxy,
  startFaultProxy,
  startKubeFaultProxy,
} from "../testenv/fault_proxy.ts";

const env = await testEnv();
const CA = Deno.readTextFileSync(env.caCert);
const NAMESPACE = "/api/v1/namespaces/default";
const SECRETS = "/api/v1/namespaces/default/secrets";

function clientFor(opts: { http2?: boolean } = {}) {
  return Deno.createHttpClient({ caCerts: [CA], http2: opts.http2 ?? true });
}

async function get(url: string, init: RequestInit & { client: Deno.HttpClient }) {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, body: await res.json().catch(() => null) };
}

Deno.test("fault proxy: forwards as admin, passes a bearer token through, counts requests", async () => {
  await using proxy = startKubeFaultProxy(env);
  using client = clientFor();
  const ns = await get(`${proxy.url}${NAMESPACE}`, { client });
  assert.equal(ns.status, 200);
  assert.equal(ns.body.metadata.name, "default");
  // Not the admin certificate: the API server judges the token itself.
  const bearer = await get(`${proxy.url}${NAMESPACE}`, {
    client,
    headers: { authorization: "Bearer not-a-valid-token" },
  });
  assert.equal(bearer.status, 401);
  assert.equal(proxy.count("GET", /\/namespaces\/default$/), 2);
  assert.deepEqual(proxy.requests.map((r) => r.status), [200, 401]);
  assert.ok(proxy.connections.total >= 1);
});

Deno.test("fault proxy: status faults answer a Kubernetes Status, N times, after M, then pass", async () => {
  await using proxy = startKubeFaultProxy(env);
  using client = clientFor();
  const throttle = proxy.add({ match: on.secretList, times: 1, fault: fault.status(429, 2) });
  const first = await get(`${proxy.url}${SECRETS}`, { client });
  assert.equal(first.status, 429);
  assert.equal(first.headers.get("retry-after"), "2");
  assert.equal(first.body.reason, "TooManyRequests");
  assert.equal(first.body.details.retryAfterSeconds, 2);
  assert.equal((await get(`${proxy.url}${SECRETS}`, { client })).status, 200);
  assert.deepEqual([throttle.seen, throttle.hits], [2, 1]);

  proxy.add({ match: (r) => on.secretList(r) && on.continued(r), fault: fault.status(410) });
  assert.equal((await get(`${proxy.url}${SECRETS}?limit=1`, { client })).status, 200);
  const expired = await get(`${proxy.url}${SECRETS}?limit=1&continue=abc`, { client });
  assert.equal(expired.status, 410);
  assert.equal(expired.body.reason, "Expired");

  proxy.add({ match: (r) => r.method === "GET", after: 1, times: 2, fault: fault.status(503) });
  const statuses = [];
  for (let i = 0; i < 4; i++) {
    statuses.push((await get(`${proxy.url}${NAMESPACE}`, { client })).status);
  }
  assert.deepEqual(statuses, [200, 503, 503, 200]);
});

Deno.test("fault proxy: delay, hang, reset, and drop until reset()", async () => {
  await using proxy = startKubeFaultProxy(env);
  const url = `${proxy.url}${NAMESPACE}`;
  {
    using client = clientFor();
    const delay = proxy.add({ times: 1, fault: fault.delay(400) });
    const started = Date.now();
    assert.equal((await get(url, { client })).status, 200);
    assert.ok(Date.now() - started >= 400);
    delay.remove();

    const hang = proxy.add({ times: 1, fault: fault.hang() });
    await assert.rejects(fetch(url, { client, signal: AbortSignal.timeout(500) }), {
      name: "TimeoutError",
    });
    assert.equal(hang.hits, 1);
  }
  {
    using client = clientFor();
    proxy.add({ times: 1, fault: fault.reset() });
    const started = Date.now();
    await assert.rejects(fetch(url, { client, signal: AbortSignal.timeout(5000) }), (err) => {
      assert.notEqual((err as Error).name, "TimeoutError", "closed at once, not timed out");
      return true;
    });
    assert.ok(Date.now() - started < 2000);
  }
  {
    using client = clientFor();
    assert.equal((await get(url, { client })).status, 200);
    proxy.add({ times: 1, fault: fault.drop() });
    await assert.rejects(fetch(url, { client, signal: AbortSignal.timeout(500) }));
    // Every request now goes unanswered, even one that did not match, on a new connection too.
    using another = clientFor();
    await assert.rejects(fetch(url, { client: another, signal: AbortSignal.timeout(500) }));
  }
  proxy.reset();
  using client = clientFor();
  assert.equal((await get(url, { client })).status, 200);
});

Deno.test("fault proxy: counts current, peak and total connections", async () => {
  await using proxy = startKubeFaultProxy(env, { alpn: ["http/1.1"] });
  proxy.add({ fault: fault.delay(300) });
  {
    using client = clientFor({ http2: false });
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => get(`${proxy.url}${NAMESPACE}`, { client })),
    );
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 200]);
    // HTTP/1.1: five requests at once need five connections.
    assert.equal(proxy.connections.peak, 5);
  }
  // The client's pool is closed; the proxy sees its connections end.
  const deadline = Date.now() + 5000;
  while (proxy.connections.current > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(proxy.connections, { current: 0, peak: 5, total: 5 });
});

Deno.test("fault proxy: in front of an AWS endpoint, faults answer in the AWS JSON error format", async () => {
  await using proxy = startAwsFaultProxy(env.motoUrl);
  proxy.add({ match: on.region("eu-central-1"), times: 1, fault: fault.status(503) });
  const signedFor = (region: string) => ({
    authorization: `AWS4-HMAC-SHA256 Credential=AKID/20261129/${region}/ecr/aws4_request, ...`,
  });
  const failed = await fetch(`${proxy.url}/`, {
    method: "POST",
    headers: signedFor("eu-central-1"),
  });
  assert.equal(failed.status, 503);
  assert.equal(failed.headers.get("content-type"), "application/x-amz-json-1.1");
  assert.equal((await failed.json()).__type, "ServiceUnavailableException");
  const passed = await fetch(`${proxy.url}/moto-api/data.json`, {
    headers: signedFor("us-west-2"),
  });
  assert.equal(passed.status, 200);
  await passed.body?.cancel();
});

Deno.test("fault proxy: close() ends pending requests and open connections", async () => {
  const proxy = startFaultProxy({ upstream: env.motoUrl, flavor: "aws" });
  proxy.add({ fault: fault.hang() });
  const pending = fetch(`${proxy.url}/moto-api/data.json`).then((r) => r.status, () => "failed");
  while (proxy.requests.length === 0) await new Promise((r) => setTimeout(r, 20));
  const started = Date.now();
  await proxy.close();
  assert.ok(Date.now() - started < 2000, "close does not wait for the hung request");
  assert.ok(["failed", 503].includes(await pending));
  assert.equal(proxy.connections.current, 0);
});
