/**
 * writeSecret(): what one write sends, and what it makes of the answer.
 * The shared in-memory store (doubles.ts) records each request; one valid
 * write plus one mutation per case.
 */

import assert from "node:assert/strict";
import { parseAnnotation } from "../../lib/core/annotation.ts";
import { fingerprint, parseStatus, statusKey } from "../../lib/core/due.ts";
import { type HostCredential, type Outcome, writeSecret } from "../../lib/patch.ts";
import { RENEW_REQUESTED } from "../../lib/core/status.ts";
import { MemoryStore } from "./doubles.ts";

const ANNOTATION = "a.io/ecr";
const NOW = new Date("2026-11-27T12:00:00Z");
const HOUR = 3600_000;
const ITEMS = "111111111111/us-west-2,222222222222/eu-west-1";
const [H1, H2] = parseAnnotation(ANNOTATION, ITEMS).map((r) => r.host);
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

const secret = (config = '{"auths":{"ghcr.io":{}}}') => ({
  namespace: "ns",
  name: "pull",
  annotations: { [ANNOTATION]: ITEMS },
  dockerConfig: enc(config),
});

const creds = (): HostCredential[] => [
  { host: H1, password: "p1", expiresAt: new Date(NOW.getTime() + 12 * HOUR) },
  { host: H2, password: "p2", expiresAt: new Date(NOW.getTime() + 11 * HOUR) },
];

/** A store holding the one Secret "ns/pull" with this data. */
function storeWith(config?: string): MemoryStore {
  const store = new MemoryStore();
  store.add(secret(config));
  return store;
}

/** writeSecret() into the Secret as `store` holds it now. */
async function write(store: MemoryStore, c = creds()): Promise<Outcome> {
  return await writeSecret(
    store,
    (await store.get({ namespace: "ns", name: "pull" }))!,
    parseAnnotation(ANNOTATION, ITEMS),
    c,
    { annotation: ANNOTATION, dryRun: false, now: NOW, maxAttempts: 3, refreshWindowMs: 6 * HOUR },
  );
}

Deno.test("a write carries the data, this installation's status and the summary", async () => {
  const store = storeWith();
  const read = (await store.get({ namespace: "ns", name: "pull" }))!;
  const outcome = await write(store);
  assert.deepEqual(outcome, {
    kind: "refreshed",
    secret: { namespace: "ns", name: "pull" },
    hosts: [H1, H2],
    expiresAt: new Date("2026-11-27T23:00:00Z"),
  });
  const [{ update: p }] = store.patches;
  assert.equal(p.resourceVersion, read.resourceVersion);
  const auths = JSON.parse(dec(p.dockerConfig)).auths;
  assert.deepEqual(Object.keys(auths), ["ghcr.io", H1, H2]);
  assert.deepEqual(Object.keys(p.annotations).sort(), [
    "kubeecr.deft.com/expires-at",
    "kubeecr.deft.com/refreshed-at",
    statusKey(ANNOTATION),
  ]);
  assert.equal(p.annotations["kubeecr.deft.com/refreshed-at"], "2026-11-27T12:00:00Z");
  assert.equal(p.annotations["kubeecr.deft.com/expires-at"], "2026-11-27T23:00:00Z");
  const status = parseStatus(p.annotations[statusKey(ANNOTATION)]!)!;
  assert.deepEqual(status.get(H1), {
    expiresAt: "2026-11-28T00:00:00Z",
    sha256: fingerprint(JSON.stringify(auths[H1])),
  });
  assert.equal(status.get(H2)!.expiresAt, "2026-11-27T23:00:00Z");
  assert.ok(!p.annotations[statusKey(ANNOTATION)]!.includes("p1"), "a hash, never the value");
});

Deno.test("an ECR expiry in year 5138 is capped at now + 12h + 5min, and the outcome says so", async () => {
  const store = storeWith();
  const c = creds();
  c[0].expiresAt = new Date("5138-11-16T09:46:40Z");
  c[1].expiresAt = new Date("5138-11-16T09:46:40Z");
  const outcome = await write(store, c);
  assert.equal(outcome.kind, "refreshed");
  assert.deepEqual(outcome.kind === "refreshed" && outcome.capped, [H1, H2]);
  assert.deepEqual(
    outcome.kind === "refreshed" && outcome.expiresAt,
    new Date("2026-11-28T00:05:00Z"),
  );
  const p = store.patches[0].update;
  assert.equal(p.annotations["kubeecr.deft.com/expires-at"], "2026-11-28T00:05:00Z");
  assert.equal(
    parseStatus(p.annotations[statusKey(ANNOTATION)]!)!.get(H1)!.expiresAt,
    "2026-11-28T00:05:00Z",
  );
});

Deno.test("after a 409 the status fingerprints the entry written into the new version", async () => {
  const store = storeWith();
  // Someone else writes first: the first write carries a stale resourceVersion.
  let theirs = "";
  store.hooks.beforePatch = (ref, attempt) => {
    if (attempt !== 1) return;
    store.edit(
      ref,
      (x) => x.dockerConfig = enc(`{"auths":{"${H1}":{"email":"x@y.z","auth":"b2xk"}}}`),
    );
    theirs = store.secrets.get("ns/pull")!.resourceVersion;
  };
  const outcome = await write(store);
  assert.equal(outcome.kind, "refreshed");
  assert.equal(store.patches.length, 2);
  const second = store.patches[1].update;
  assert.equal(second.resourceVersion, theirs);
  const text = dec(second.dockerConfig);
  assert.ok(text.includes('"email":"x@y.z"'), text);
  const h1Entry = JSON.stringify(JSON.parse(text).auths[H1]);
  // The entry keeps the order email, auth, username, password: the fingerprint is of those bytes.
  assert.equal(
    h1Entry,
    `{"email":"x@y.z","auth":"${enc("AWS:p1").toBase64()}","username":"AWS","password":"p1"}`,
  );
  assert.equal(
    parseStatus(second.annotations[statusKey(ANNOTATION)]!)!.get(H1)!.sha256,
    fingerprint(h1Entry),
  );
});

Deno.test("data that cannot be edited fails InvalidDockerConfig and sends nothing", async () => {
  const store = storeWith('{"auths":{},"auths":{}}');
  const outcome = await write(store);
  assert.equal(outcome.kind, "failed");
  assert.equal(outcome.kind === "failed" && outcome.reason, "InvalidDockerConfig");
  assert.equal(store.patches.length, 0);
});

Deno.test("a token that expires within a minute (or has expired) is not written: nothing sent, RefreshFailed names the expiry", async () => {
  for (const inMs of [30_000, -HOUR]) {
    const store = storeWith();
    const c = creds();
    c[1].expiresAt = new Date(NOW.getTime() + inMs);
    const outcome = await write(store, c);
    assert.equal(outcome.kind, "failed");
    assert.equal(outcome.kind === "failed" && outcome.reason, "RefreshFailed");
    const message = outcome.kind === "failed" ? outcome.message : "";
    assert.ok(
      message.includes(`expires at ${c[1].expiresAt.toISOString().slice(0, 19)}Z`),
      message,
    );
    assert.equal(store.patches.length, 0);
  }
});

Deno.test("a token inside the refresh window is written where there was no entry, and the outcome fails", async () => {
  const store = storeWith();
  const c = creds();
  c[0].expiresAt = new Date(NOW.getTime() + 3 * HOUR);
  const outcome = await write(store, c);
  assert.equal(outcome.kind, "failed");
  assert.match(outcome.kind === "failed" ? outcome.message : "", /inside the refresh window of 6h/);
  assert.equal(store.patches.length, 1);
});

Deno.test("a token inside the refresh window that does not outlive the recorded entry: nothing sent", async () => {
  // First write: 3h for H1 (recorded in the status), then a 2h token.
  const store = storeWith();
  const c = creds();
  c[0].expiresAt = new Date(NOW.getTime() + 3 * HOUR);
  await write(store, c);
  assert.equal(store.patches.length, 1);
  const shorter = creds();
  shorter[0].expiresAt = new Date(NOW.getTime() + 2 * HOUR);
  const outcome = await write(store, shorter);
  assert.equal(outcome.kind, "failed");
  assert.match(
    outcome.kind === "failed" ? outcome.message : "",
    /no later than the entry it would replace \(2026-11-27T15:00:00Z\)/,
  );
  assert.equal(store.patches.length, 1, "nothing more sent");
});

Deno.test("the server stored the old data: the write fails, and the status is corrected to claim no entry it lacks", async () => {
  const store = storeWith();
  const old = store.secrets.get("ns/pull")!.dockerConfig;
  // A mutating webhook that puts the old data back.
  store.hooks.admit = (stored) => stored.dockerConfig = old;
  let afterWrite = "";
  store.hooks.beforePatch = (ref, attempt) =>
    attempt === 2 &&
    (afterWrite = store.secrets.get(`${ref.namespace}/${ref.name}`)!.resourceVersion);
  const outcome = await write(store);
  assert.equal(outcome.kind, "failed");
  const message = outcome.kind === "failed" ? outcome.message : "";
  assert.match(message, /^the API server stored different data than KubeECR wrote \(no entry for /);
  assert.equal(store.patches.length, 2, "the write, then the status correction");
  const correction = store.patches[1].update;
  assert.equal(correction.dockerConfig, undefined, "the correction sends no data");
  assert.equal(correction.resourceVersion, afterWrite);
  assert.deepEqual(correction.annotations, {
    [statusKey(ANNOTATION)]: null,
    "kubeecr.deft.com/expires-at": null,
  });
  const now = store.secrets.get("ns/pull")!;
  assert.equal(now.annotations[statusKey(ANNOTATION)], undefined, "no status claims the entry");
  assert.equal(dec(now.dockerConfig), dec(old));
});

Deno.test("a write that refreshes a Secret `kubeecr renew` marked removes the mark with the data", async () => {
  const store = new MemoryStore();
  store.add({
    ...secret(),
    annotations: { [ANNOTATION]: ITEMS, [RENEW_REQUESTED]: "2026-11-27T11:00:00Z" },
  });
  const outcome = await write(store);
  assert.equal(outcome.kind, "refreshed");
  assert.equal(store.patches.length, 1, "one write: the data and the mark's removal together");
  assert.equal(store.patches[0].update.annotations[RENEW_REQUESTED], null);
  const after = (await store.get({ namespace: "ns", name: "pull" }))!;
  assert.equal(after.annotations[RENEW_REQUESTED], undefined);
});

Deno.test("a write whose stored answer still carries the renew mark is a failure", async () => {
  const store = new MemoryStore();
  // An admission policy that puts the mark back.
  store.hooks.admit = (s) => s.annotations[RENEW_REQUESTED] = "2026-11-27T11:00:00Z";
  store.add({
    ...secret(),
    annotations: { [ANNOTATION]: ITEMS, [RENEW_REQUESTED]: "2026-11-27T11:00:00Z" },
  });
  const outcome = await write(store);
  assert.equal(outcome.kind, "failed");
  assert.match((outcome as { message: string }).message, /still a .*renew-requested-at annotation/);
});

Deno.test("a write of an unmarked Secret sends no renew annotation", async () => {
  const store = storeWith();
  await write(store);
  assert.ok(!(RENEW_REQUESTED in store.patches[0].update.annotations));
});
