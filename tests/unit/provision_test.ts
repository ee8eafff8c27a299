/**
 * --provision in the pipeline, with the shared in-memory SecretStore: the
 * Secret is created only in served namespaces that lack it, filled in the same
 * run, and a Secret of that name that exists (of any type, annotated or not)
 * is never replaced. The API server's part (409 AlreadyExists, RBAC, the
 * policy) is proven in tests/integration/provision_test.ts.
 */

import assert from "node:assert/strict";
import type { RegistryToken, TokenSource } from "../../lib/core/tokens.ts";
import { Logger } from "../../lib/log.ts";
import { runOnce, type RunOptions } from "../../lib/pipeline.ts";
import { namespacesToProvision, PROVISIONED_LABELS } from "../../lib/provision.ts";
import { exitCode } from "../../lib/report.ts";
import { bytes, MemoryStore, text } from "./doubles.ts";

const ANNOTATION = "deft.com/kubeecr";
const NOW = new Date("2026-11-27T12:00:00Z");
const HOUR = 3600_000;
const VALUE = "123456789012/us-west-2";
const HOST = "123456789012.dkr.ecr.us-west-2.amazonaws.com";

const tokens: TokenSource = {
  fetch: (): Promise<RegistryToken> =>
    Promise.resolve({ password: "pw", expiresAt: new Date(NOW.getTime() + 12 * HOUR) }),
};

const OPTIONS: RunOptions = {
  annotation: ANNOTATION,
  namespaces: [],
  excludeNamespaces: [],
  namespaceSelector: "kubeecr.deft.com/enabled=true",
  refreshWindowMs: 6 * HOUR,
  force: false,
  dryRun: false,
  concurrency: 4,
  timeoutMs: 60_000,
  checkSecretTypes: false,
  provision: { secretName: "ecr-pull", value: VALUE },
  events: "all",
};

async function run(store: MemoryStore, opts: Partial<RunOptions> = {}) {
  const lines: Record<string, unknown>[] = [];
  const log = new Logger({
    format: "json",
    level: "debug",
    write: (l) => lines.push(JSON.parse(l)),
  });
  const summary = await runOnce({ ...OPTIONS, ...opts }, {
    store,
    tokens,
    log,
    now: () => NOW,
    budget: new AbortController().signal,
  });
  return { summary, code: exitCode(summary), lines };
}

function storeWith(selected: string[]): MemoryStore {
  const store = new MemoryStore();
  store.selected = new Set(selected);
  return store;
}

Deno.test("a served namespace without the Secret gets it, filled in the same run", async () => {
  const store = storeWith(["team-a"]);
  const { summary, code, lines } = await run(store);
  assert.equal(code, 0);
  assert.equal(summary.refreshed, 1);
  const secret = store.secrets.get("team-a/ecr-pull")!;
  assert.equal(secret.type, "kubernetes.io/dockerconfigjson");
  assert.equal(secret.annotations[ANNOTATION], VALUE);
  assert.equal(store.auths(secret)[HOST].password, "pw");
  assert.deepEqual(store.creates.map((c) => c.secret.labels), [PROVISIONED_LABELS]);
  assert.equal(text(store.creates[0].secret.dockerConfig), '{"auths":{}}');
  assert.deepEqual(lines.filter((l) => l.msg === "provisioned").map((l) => l.secret), [
    "team-a/ecr-pull",
  ]);
});

Deno.test("a Secret of that name that exists is never replaced, whatever it is", async () => {
  const store = storeWith(["annotated", "opaque", "unannotated"]);
  // Annotated: found by the list, refreshed as any Secret; no create is even sent.
  store.add({ namespace: "annotated", name: "ecr-pull", annotations: { [ANNOTATION]: VALUE } });
  // Not KubeECR's: the create meets it (409) and leaves it.
  const opaque = store.add({
    namespace: "opaque",
    name: "ecr-pull",
    type: "Opaque",
    dockerConfig: bytes("mine"),
  });
  const unannotated = store.add({ namespace: "unannotated", name: "ecr-pull" });
  const { code, lines } = await run(store);
  assert.equal(code, 0);
  assert.deepEqual(store.creates.map((c) => c.secret.namespace), ["opaque", "unannotated"]);
  assert.deepEqual(store.secrets.get("opaque/ecr-pull"), opaque);
  assert.deepEqual(store.secrets.get("unannotated/ecr-pull"), unannotated);
  assert.deepEqual(store.patches.map((p) => p.ref.namespace), ["annotated"]);
  const warned = lines.filter((l) => l.msg === "not provisioned: a Secret of this name exists");
  assert.deepEqual(warned.map((l) => l.secret), ["opaque/ecr-pull", "unannotated/ecr-pull"]);
});

Deno.test("only served namespaces: selected, within --namespace, outside --exclude-namespace", async () => {
  const store = storeWith(["a", "b", "c"]);
  store.add({ namespace: "unlabelled", name: "other" });
  await run(store, { excludeNamespaces: ["b"] });
  assert.deepEqual(store.creates.map((c) => c.secret.namespace), ["a", "c"]);
  assert.equal(store.secrets.has("unlabelled/ecr-pull"), false);

  const only = storeWith(["a", "b", "c"]);
  await run(only, { namespaces: ["b", "not-selected"] });
  assert.deepEqual(only.creates.map((c) => c.secret.namespace), ["b"]);
});

Deno.test("a steady run sends no create at all", async () => {
  const store = storeWith(["a", "b"]);
  await run(store);
  assert.equal(store.creates.length, 2);
  const again = await run(store);
  assert.equal(store.creates.length, 2, "the second run finds both Secrets in its list");
  assert.equal(again.summary.fresh, 2);
});

Deno.test("--dry-run: the create is sent with dryRun, nothing is stored or patched", async () => {
  const store = storeWith(["a"]);
  const { code, lines } = await run(store, { dryRun: true });
  assert.equal(code, 0);
  assert.deepEqual(store.creates.map((c) => c.dryRun), [true]);
  assert.equal(store.secrets.size, 0);
  assert.deepEqual(store.patches, []);
  assert.ok(lines.some((l) => l.msg === "would provision" && l.secret === "a/ecr-pull"));
});

Deno.test("a refused create fails that namespace only: the others are provisioned, exit 1", async () => {
  const store = storeWith(["a", "b"]);
  store.refuseCreate.add("a");
  const { summary, code, lines } = await run(store);
  assert.equal(code, 1);
  assert.equal(summary.failedNamespaces, 1);
  assert.equal(summary.refreshed, 1);
  assert.ok(store.secrets.has("b/ecr-pull"));
  const failed = lines.filter((l) => l.msg === "cannot provision");
  assert.deepEqual(failed.map((l) => l.secret), ["a/ecr-pull"]);
});

Deno.test("namespacesToProvision: served, lacking it, listed without failure; sorted", () => {
  const base = {
    selected: new Set(["c", "a", "b", "d"]),
    namespaces: [] as string[],
    excludeNamespaces: [] as string[],
    present: new Set<string>(),
    failed: new Set<string>(),
  };
  const cases: [string, Partial<typeof base>, string[]][] = [
    ["every selected namespace", {}, ["a", "b", "c", "d"]],
    ["not where it is", { present: new Set(["b"]) }, ["a", "c", "d"]],
    ["not where the list failed", { failed: new Set(["c"]) }, ["a", "b", "d"]],
    ["within --namespace", { namespaces: ["d", "x"] }, ["d"]],
    ["outside --exclude-namespace", { excludeNamespaces: ["a"] }, ["b", "c", "d"]],
    ["none selected", { selected: new Set() }, []],
  ];
  for (const [what, change, want] of cases) {
    assert.deepEqual(namespacesToProvision({ ...base, ...change }), want, what);
  }
});
