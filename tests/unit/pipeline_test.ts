/**
 * The pipeline (lib/pipeline.ts) with small in-memory doubles for its two
 * edges: the shared SecretStore of doubles.ts and a TokenSource here. The
 * store behaves like the API server (resourceVersion bumps, 409 on a stale
 * write, 404 when gone), and hooks let a test play "someone else" at an exact
 * point of the run — which is how the races that cannot be timed against a
 * real API server are made deterministic here. Assertions are on the store's resulting state, the
 * events and the summary, never only on what the pipeline handed the double.
 */

import assert from "node:assert/strict";
import {
  keyString,
  type RegistryToken,
  TokenError,
  type TokenKey,
  type TokenSource,
} from "../../lib/core/tokens.ts";
import { Logger } from "../../lib/log.ts";
import { runOnce, type RunOptions } from "../../lib/pipeline.ts";
import { exitCode } from "../../lib/report.ts";
import type { StoredSecret } from "../../lib/core/store.ts";
import { bytes, key, MemoryStore, text } from "./doubles.ts";
import { parseRoleMap, type RoleMap } from "../../lib/core/roles.ts";
import { statusKey } from "../../lib/core/due.ts";
import { CannotStartError } from "../../lib/pipeline.ts";
import { KubeApiError } from "../../lib/core/store.ts";

const ANNOTATION = "deft.com/kubeecr";
const EXPIRES_AT = "kubeecr.deft.com/expires-at";
const STATUS = statusKey(ANNOTATION);
const NOW = new Date("2026-11-27T12:00:00Z");
const HOUR = 3600_000;
const host = (item: string) => {
  const [account, region] = item.split("/");
  return `${account}.dkr.ecr.${region}.amazonaws.com`;
};

class FakeEcr implements TokenSource {
  readonly calls = new Map<string, number>();
  readonly failing = new Set<string>();
  /** Regions that never answer: their call ends only when `budget` aborts, as the real one does. */
  readonly silent = new Set<string>();
  budget?: AbortSignal;

  /** Every key fetched, as keyString (the role included). */
  readonly keys: string[] = [];

  fetch(tokenKey: TokenKey): Promise<RegistryToken> {
    const { region } = tokenKey;
    this.keys.push(keyString(tokenKey));
    this.calls.set(region, (this.calls.get(region) ?? 0) + 1);
    if (this.silent.has(region)) {
      return new Promise((_, reject) =>
        this.budget!.addEventListener(
          "abort",
          () =>
            reject(
              new TokenError(
                region,
                "Timeout",
                false,
                `ECR in ${region}: the run's --timeout ran out`,
              ),
            ),
        )
      );
    }
    if (this.failing.has(region)) {
      return Promise.reject(
        new TokenError(region, "AccessDeniedException", false, `denied in ${region}`),
      );
    }
    return Promise.resolve({
      password: `password-for-${region}`,
      expiresAt: new Date(NOW.getTime() + 12 * HOUR),
    });
  }

  total(): number {
    return [...this.calls.values()].reduce((a, b) => a + b, 0);
  }
}

const OPTIONS: RunOptions = {
  annotation: ANNOTATION,
  namespaces: [],
  excludeNamespaces: [],
  refreshWindowMs: 6 * HOUR,
  force: false,
  dryRun: false,
  events: "all",
  concurrency: 4,
  timeoutMs: 60_000,
  checkSecretTypes: true,
};

async function run(
  store: MemoryStore,
  ecr: FakeEcr,
  opts: Partial<RunOptions> = {},
  budget = new AbortController().signal,
  onLine: (line: string) => void = () => {},
  roles?: RoleMap,
) {
  const lines: string[] = [];
  const log = new Logger({
    format: "json",
    level: "debug",
    write: (l) => {
      lines.push(l);
      onLine(l);
    },
  });
  ecr.budget = budget;
  const summary = await runOnce({ ...OPTIONS, ...opts }, {
    store,
    tokens: ecr,
    log,
    now: () => NOW,
    budget,
    ...(roles ? { roles } : {}),
  });
  return { summary, code: exitCode(summary), lines };
}

/** An annotated pull secret in namespace "ns". */
function pull(store: MemoryStore, name: string, items: string, extra: Partial<StoredSecret> = {}) {
  return store.add({ namespace: "ns", name, annotations: { [ANNOTATION]: items }, ...extra });
}

Deno.test("one token call per region serves every Secret and account of that region", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  const secrets = [
    pull(store, "a", "111111111111/us-west-2"),
    pull(store, "b", "222222222222/us-west-2"),
    pull(store, "c", "333333333333/eu-west-1"),
    pull(store, "d", "111111111111/us-west-2, 333333333333/eu-west-1"),
  ];

  const { summary, code } = await run(store, ecr);

  assert.deepEqual(Object.fromEntries(ecr.calls), { "us-west-2": 1, "eu-west-1": 1 });
  assert.equal(summary.refreshed, 4);
  assert.equal(code, 0);
  assert.equal(
    store.auths(secrets[1])[host("222222222222/us-west-2")].password,
    "password-for-us-west-2",
  );
  assert.deepEqual(
    Object.keys(store.auths(secrets[3])).sort(),
    [
      host("111111111111/us-west-2"),
      host("333333333333/eu-west-1"),
    ].sort(),
  );
});

Deno.test("no token call and no write when nothing is due", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  const item = "111111111111/us-west-2";
  // Fresh means written by this installation: a first run writes it.
  pull(store, "fresh", item);
  await run(store, ecr);
  assert.equal(ecr.total(), 1);
  const fresh = store.secrets.get("ns/fresh")!;
  assert.equal(fresh.annotations[EXPIRES_AT], "2026-11-28T00:00:00Z");
  store.events.length = 0;

  const { summary, code } = await run(store, ecr);

  assert.equal(ecr.total(), 1);
  assert.equal(summary.fresh, 1);
  assert.equal(code, 0);
  assert.equal(store.secrets.get(key(fresh))!.resourceVersion, fresh.resourceVersion);
  assert.deepEqual(store.events, []);
});

Deno.test("a 409 re-reads the Secret and merges into the concurrent version, keeping its change", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  const s = pull(store, "raced", "111111111111/us-west-2");
  store.hooks.beforePatch = (ref, attempt) => {
    if (attempt === 1) {
      store.edit(ref, (x) => {
        x.dockerConfig = bytes(
          JSON.stringify({ auths: { "ghcr.io": { auth: "added-meanwhile" } } }),
        );
      });
    }
  };

  const { summary } = await run(store, ecr);

  assert.equal(summary.refreshed, 1);
  const auths = store.auths(s);
  assert.deepEqual(auths["ghcr.io"], { auth: "added-meanwhile" });
  assert.equal(auths[host("111111111111/us-west-2")].password, "password-for-us-west-2");
  assert.deepEqual(store.eventsOf(s), [{ type: "Normal", reason: "Refreshed" }]);
});

Deno.test("a Secret that changes under every one of 3 writes fails with RefreshFailed and is not overwritten", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  const s = pull(store, "busy", "111111111111/us-west-2");
  let theirs = "";
  store.hooks.beforePatch = (ref, attempt) => {
    theirs = JSON.stringify({ auths: { "ghcr.io": { auth: `theirs-${attempt}` } } });
    store.edit(ref, (x) => x.dockerConfig = bytes(theirs));
  };

  const { summary, code } = await run(store, ecr);

  assert.equal(summary.failed, 1);
  assert.equal(code, 1);
  assert.equal(text(store.secrets.get(key(s))!.dockerConfig), theirs, "their last write stands");
  assert.equal(store.patches.length, 3, "three writes, then it gives up");
  assert.deepEqual(store.eventsOf(s), [{ type: "Warning", reason: "RefreshFailed" }]);
  assert.match(store.events[0].message, /409/);
});

Deno.test("a Secret deleted before the write is skipped, not failed", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  const s = pull(store, "gone", "111111111111/us-west-2");
  const other = pull(store, "stays", "111111111111/us-west-2");
  store.hooks.beforePatch = (ref) => ref.name === "gone" && store.delete(ref);

  const { summary, code } = await run(store, ecr);

  assert.equal(summary.skipped, 1);
  assert.equal(summary.refreshed, 1);
  assert.equal(code, 0);
  assert.equal(store.secrets.has(key(s)), false, "not recreated");
  assert.deepEqual(store.eventsOf(s), []);
  assert.ok(store.auths(other)[host("111111111111/us-west-2")]);
});

Deno.test("a Secret deleted between a conflict and the re-read is skipped, not recreated", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  const s = pull(store, "gone-later", "111111111111/us-west-2");
  store.hooks.beforePatch = (ref) => store.edit(ref, (x) => x.annotations.touched = "yes");
  store.hooks.beforeGet = (ref) => store.delete(ref);

  const { summary, code } = await run(store, ecr);

  assert.equal(summary.skipped, 1);
  assert.equal(code, 0);
  assert.equal(store.secrets.has(key(s)), false);
  assert.deepEqual(store.events, []);
});

Deno.test("a Secret whose annotation changed during the run is skipped and keeps the new value", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  const s = pull(store, "re-annotated", "111111111111/us-west-2");
  store.hooks.beforePatch = (ref, attempt) =>
    attempt === 1 && store.edit(ref, (x) => x.annotations[ANNOTATION] = "444444444444/ap-south-1");

  const { summary, code } = await run(store, ecr);

  assert.equal(summary.skipped, 1);
  assert.equal(code, 0);
  const now = store.secrets.get(key(s))!;
  assert.equal(now.annotations[ANNOTATION], "444444444444/ap-south-1");
  assert.deepEqual(store.auths(s), {}, "tokens for the old value were not written");
  assert.equal(now.annotations[EXPIRES_AT], undefined);
});

Deno.test("a token failure fails only the Secrets that need that region", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  ecr.failing.add("eu-west-1");
  const eu = pull(store, "eu", "111111111111/eu-west-1");
  const both = pull(store, "both", "111111111111/us-west-2, 111111111111/eu-west-1");
  const us = pull(store, "us", "111111111111/us-west-2");

  const { summary, code } = await run(store, ecr);

  assert.equal(code, 1);
  assert.equal(summary.failed, 2);
  assert.equal(summary.refreshed, 1);
  for (const failed of [eu, both]) {
    assert.equal(store.secrets.get(key(failed))!.resourceVersion, failed.resourceVersion);
    assert.deepEqual(store.eventsOf(failed), [{ type: "Warning", reason: "RefreshFailed" }]);
  }
  assert.match(
    store.events.find((e) => e.secret.name === "eu")!.message,
    /AccessDeniedException|denied/,
  );
  assert.ok(store.auths(us)[host("111111111111/us-west-2")]);
});

Deno.test("a .dockerconfigjson the server would refuse (not JSON, an array) fails InvalidDockerConfig and keeps its bytes", async (t) => {
  for (const raw of ['{"auths": {"ghcr.io": secretpassword', '[{"auths":{}}]']) {
    await t.step(raw, async () => {
      const store = new MemoryStore();
      const ecr = new FakeEcr();
      const bad = pull(store, "bad", "111111111111/us-west-2", { dockerConfig: bytes(raw) });
      const good = pull(store, "good", "111111111111/us-west-2");

      const { code, lines } = await run(store, ecr);

      assert.equal(code, 1);
      assert.equal(text(store.secrets.get(key(bad))!.dockerConfig), raw);
      assert.equal(store.secrets.get(key(bad))!.resourceVersion, bad.resourceVersion);
      assert.deepEqual(store.eventsOf(bad), [{ type: "Warning", reason: "InvalidDockerConfig" }]);
      assert.ok(store.auths(good)[host("111111111111/us-west-2")]);
      assert.equal(lines.join("\n").includes("secretpassword"), false, "content is not quoted");
    });
  }
});

Deno.test("no more patches are in flight at once than --concurrency allows", async (t) => {
  for (const concurrency of [1, 3]) {
    await t.step(`concurrency ${concurrency}`, async () => {
      const store = new MemoryStore();
      const ecr = new FakeEcr();
      for (let i = 0; i < 10; i++) pull(store, `s${i}`, "111111111111/us-west-2");

      const { summary } = await run(store, ecr, { concurrency });

      assert.equal(summary.refreshed, 10);
      // Exactly the limit: it is never exceeded, and it is used.
      assert.equal(store.maxInFlight, concurrency);
    });
  }
});

Deno.test("a dry run writes nothing and records no events", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  const s = pull(store, "dry", "111111111111/us-west-2");

  const { summary, code, lines } = await run(store, ecr, { dryRun: true });

  assert.equal(code, 0);
  assert.equal(summary.refreshed, 1);
  assert.equal(store.secrets.get(key(s))!.resourceVersion, s.resourceVersion);
  assert.deepEqual(store.events, []);
  assert.ok(lines.some((l) => JSON.parse(l).msg === "would refresh"));
});

Deno.test("--events warnings: no Refreshed event, the line and the write as before; a Warning still recorded", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  const ok = pull(store, "ok", "111111111111/us-west-2");
  const bad = pull(store, "bad", "not-an-account/us-west-2");

  const { summary, lines } = await run(store, ecr, { events: "warnings" });

  assert.equal(summary.refreshed, 1);
  assert.equal(summary.failed, 1);
  assert.deepEqual(store.eventsOf(ok), []);
  assert.deepEqual(store.eventsOf(bad), [{ type: "Warning", reason: "InvalidAnnotation" }]);
  assert.ok(store.auths(ok)["111111111111.dkr.ecr.us-west-2.amazonaws.com"]?.password);
  const refreshed = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "refreshed");
  assert.deepEqual(refreshed.map((l) => l.secret), ["ns/ok"]);
});

Deno.test("no log line shows a token password or its auth form", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  ecr.failing.add("eu-west-1");
  pull(store, "a", "111111111111/us-west-2");
  pull(store, "b", "111111111111/eu-west-1");

  const { lines } = await run(store, ecr);

  const text = lines.join("\n");
  assert.ok(text.includes("refreshed"));
  const password = "password-for-us-west-2";
  for (const secret of [password, btoa(`AWS:${password}`)]) {
    assert.equal(text.includes(secret), false, secret);
  }
});

Deno.test("--namespace lists only the given namespaces and --exclude-namespace skips the listed ones", async (t) => {
  const cases: { name: string; opts: Partial<RunOptions>; refreshed: string[] }[] = [
    { name: "all namespaces", opts: {}, refreshed: ["a/s", "b/s", "c/s"] },
    { name: "--namespace a,c", opts: { namespaces: ["a", "c"] }, refreshed: ["a/s", "c/s"] },
    {
      name: "--exclude-namespace b",
      opts: { excludeNamespaces: ["b"] },
      refreshed: ["a/s", "c/s"],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const store = new MemoryStore();
      for (const namespace of ["a", "b", "c"]) {
        store.add({
          namespace,
          name: "s",
          annotations: { [ANNOTATION]: "111111111111/us-west-2" },
        });
      }
      const { summary, code } = await run(store, new FakeEcr(), c.opts);
      const refreshed = [...store.secrets.values()]
        .filter((s) => EXPIRES_AT in s.annotations)
        .map((s) => `${s.namespace}/${s.name}`)
        .sort();
      assert.deepEqual(refreshed, c.refreshed);
      assert.equal(
        summary.discovered,
        c.refreshed.length,
        "out-of-scope Secrets are not even reported",
      );
      assert.equal(code, 0);
    });
  }
});

Deno.test("a silent region delays only its own Secrets: the others are written and logged first", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  ecr.silent.add("eu-west-1");
  const stuck = pull(store, "stuck", "333333333333/eu-west-1");
  const good = pull(store, "good", "111111111111/us-west-2");
  const budget = new AbortController();
  // The budget runs out only once the healthy region's Secret has been
  // reported: if it waited for the silent region, this run would never end.
  const { summary, code, lines } = await run(store, ecr, {}, budget.signal, (line) => {
    if (line.includes('"msg":"refreshed"')) budget.abort();
  });

  assert.equal(
    store.auths(good)[host("111111111111/us-west-2")].password,
    "password-for-us-west-2",
  );
  assert.equal(store.secrets.get(key(stuck))!.resourceVersion, stuck.resourceVersion);
  assert.equal(summary.refreshed, 1);
  assert.equal(summary.failed, 1);
  assert.equal(code, 1);
  const failed = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "failed");
  assert.equal(failed.secret, "ns/stuck");
  assert.match(failed.error, /--timeout/);
  // Out of time, no event is attempted: the budget is spent.
  assert.deepEqual(store.eventsOf(stuck), []);
  assert.deepEqual(store.eventsOf(good), [{ type: "Normal", reason: "Refreshed" }]);
});

Deno.test("an unexpected exception while writing one Secret is that Secret's failure; the rest go on", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  const broken = pull(store, "broken", "111111111111/us-west-2");
  const fine = pull(store, "fine", "111111111111/us-west-2");
  store.hooks.beforePatch = (ref) => {
    if (ref.name === "broken") throw new TypeError("boom", { cause: new Error("deep cause") });
  };

  const { summary, code, lines } = await run(store, ecr);

  assert.equal(summary.refreshed, 1);
  assert.equal(summary.failed, 1);
  assert.equal(code, 1);
  assert.ok(store.auths(fine)[host("111111111111/us-west-2")]);
  assert.equal(store.secrets.get(key(broken))!.resourceVersion, broken.resourceVersion);
  const failed = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "failed");
  assert.match(failed.error, /unexpected failure: boom: deep cause/);
  assert.deepEqual(store.eventsOf(broken), [{ type: "Warning", reason: "RefreshFailed" }]);
});

Deno.test("discovery waits for the writers: at most 500 due Secrets queued beyond those being written", async () => {
  // 600 due Secrets in pages of 50; no write can finish until released.
  // Discovery queues due Secrets while the writers are busy, and stops
  // listing once 500 (pipeline.ts's QUEUE_LIMIT) are waiting: here at the
  // 503rd (3 being written), on the 11th page. Without the limit it would
  // list all 12 pages, holding every Secret in memory.
  const store = new MemoryStore();
  store.pageSize = 50;
  for (let i = 0; i < 600; i++) {
    pull(store, `s${String(i).padStart(4, "0")}`, "111111111111/us-west-2");
  }
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  store.hooks.beforePatch = () => released;
  const running = run(store, new FakeEcr(), { concurrency: 3 });

  // Let the run go as far as it can (nothing here waits on a timer but the store).
  for (let still = 0, seen = -1; still < 20; still = store.pagesListed === seen ? still + 1 : 0) {
    seen = store.pagesListed;
    await new Promise((r) => setTimeout(r, 0));
  }
  assert.equal(store.pagesListed, 11, "pages listed while no write could finish");
  assert.equal(store.patches.length, 3, "writes started: --concurrency");

  release();
  const { summary } = await running;
  assert.equal(store.pagesListed, 12);
  assert.equal(summary.refreshed, 600);
});

Deno.test("a stop signal: the write in flight lands and is logged, no new write starts, interrupted in the summary", async () => {
  const store = new MemoryStore();
  const ecr = new FakeEcr();
  const secrets = ["a", "b", "c"].map((n) => pull(store, n, "111111111111/us-west-2"));
  const stop = new AbortController();
  const patched: string[] = [];
  store.hooks.beforePatch = (ref) => {
    patched.push(ref.name);
    stop.abort("SIGTERM"); // arrives while this write is in flight
  };
  const lines: string[] = [];
  const log = new Logger({ format: "json", level: "info", write: (l) => lines.push(l) });
  const summary = await runOnce({ ...OPTIONS, concurrency: 1 }, {
    store,
    tokens: ecr,
    log,
    now: () => NOW,
    budget: new AbortController().signal,
    stop: stop.signal,
  });
  assert.deepEqual(patched, ["a"], "no write after the signal");
  assert.ok(store.auths(secrets[0])[host("111111111111/us-west-2")], "the write in flight landed");
  assert.deepEqual(store.auths(secrets[1]), {});
  const about = (name: string) =>
    lines.map((l) => JSON.parse(l)).filter((l) => l.secret === `ns/${name}`).map((l) => l.msg);
  assert.deepEqual(about("a"), ["refreshed"]);
  assert.deepEqual(about("b"), ["failed"]);
  assert.deepEqual(about("c"), ["failed"]);
  assert.equal(summary.interrupted, true);
  assert.equal(exitCode(summary), 1);
  assert.deepEqual(store.events, [], "no event is written once stopping");
  assert.match(lines.at(-1)!, /"interrupted":true/);
});

Deno.test("a page listing a Secret twice writes it once; a rejected item is that item's outcome only", async () => {
  const store = new MemoryStore();
  const s = pull(store, "twice", "111111111111/us-west-2");
  const base = store.listAnnotatedDockerConfigSecrets.bind(store);
  store.listAnnotatedDockerConfigSecrets = async function* (scope, annotation) {
    for await (const page of base(scope, annotation)) {
      yield {
        secrets: [...page.secrets, structuredClone(page.secrets[0])],
        rejected: [
          { namespace: s.namespace, name: "opaque", uid: "u1", why: "other type", otherType: true },
          {
            namespace: s.namespace,
            name: "broken",
            uid: "u2",
            why: "not base64",
            otherType: false,
          },
        ],
      };
    }
  };
  let patches = 0;
  store.hooks.beforePatch = () => patches++;
  const { summary, code, lines } = await run(store, new FakeEcr());
  assert.equal(patches, 1, "written once");
  assert.equal(summary.refreshed, 1);
  assert.equal(summary.skipped, 1);
  assert.equal(summary.failed, 1);
  assert.equal(code, 1);
  const about = (name: string) =>
    lines.map((l) => JSON.parse(l)).filter((l) => l.secret === `${s.namespace}/${name}`);
  assert.deepEqual(about("opaque").map((l) => [l.msg, l.reason]), [["skipped", "other type"]]);
  assert.deepEqual(about("broken").map((l) => [l.msg, l.error]), [["failed", "not base64"]]);
  assert.deepEqual(store.eventsOf({ namespace: s.namespace, name: "opaque" }), []);
});

Deno.test("role map: one namespace list per distinct selector, one token per (role, region), refusals untouched", async () => {
  const A = "arn:aws:iam::111111111111:role/a";
  const B = "arn:aws:iam::222222222222:role/b";
  const map = parseRoleMap(
    `roles:
  - {role: "${A}", accounts: ["111111111111"], namespaceSelector: "tenant=a"}
  - {role: "${B}", accounts: ["222222222222"], namespaceSelector: "tenant=a"}
  - {role: "${B}", accounts: ["111111111111"], namespaceSelector: "tenant=b", namespaces: [ops]}
`,
    "roles.yaml",
  );
  const store = new MemoryStore();
  store.selections.set("tenant=a", new Set(["ta"]));
  store.selections.set("tenant=b", new Set(["tb"]));
  for (let i = 0; i < 10; i++) {
    store.add({
      namespace: "ta",
      name: `s${i}`,
      annotations: { [ANNOTATION]: "111111111111/us-west-2, 222222222222/us-west-2" },
    });
  }
  const ops = store.add({
    namespace: "ops",
    name: "pull",
    annotations: { [ANNOTATION]: "111111111111/eu-west-1, 333333333333/eu-west-1" },
  });
  const refused = store.add({
    namespace: "other",
    name: "pull",
    annotations: { [ANNOTATION]: "111111111111/us-west-2" },
  });
  const ecr = new FakeEcr();
  const { summary, code } = await run(store, ecr, {}, undefined, undefined, map);

  assert.deepEqual(store.namespaceLists, ["tenant=a", "tenant=b"]);
  assert.deepEqual(ecr.keys.sort(), [
    "ecr/aws/eu-west-1",
    `ecr/aws/eu-west-1/${B}`,
    `ecr/aws/us-west-2/${A}`,
    `ecr/aws/us-west-2/${B}`,
  ]);
  assert.deepEqual([summary.refreshed, summary.failed, code], [11, 1, 1]);
  const status = JSON.parse(store.secrets.get(key(ops))!.annotations[STATUS]);
  assert.equal(status[host("111111111111/eu-west-1")].role, B);
  assert.equal(status[host("333333333333/eu-west-1")].role, undefined, "not in the map: base");
  assert.deepEqual(store.secrets.get(key(refused))!.dockerConfig, refused.dockerConfig);
  assert.deepEqual(
    store.events.filter((e) => e.secret.name === "pull" && e.secret.namespace === "other")
      .map((e) => e.reason),
    ["NotAllowedByRoleMap"],
  );

  // No selector in the map: no namespace is listed.
  const plain = new MemoryStore();
  pull(plain, "a", "111111111111/us-west-2");
  await run(plain, new FakeEcr(), {}, undefined, undefined, {
    ...map,
    roles: [{ ...map.roles[0], namespaceSelector: undefined, namespaces: ["ns"] }],
  });
  assert.deepEqual(plain.namespaceLists, []);
});

Deno.test("role map: a full host item is its account's; public.ecr.aws is the base principal's, even under deny", async () => {
  const A = "arn:aws:iam::111111111111:role/a";
  const map = parseRoleMap(
    `roles:\n  - {role: "${A}", accounts: ["111111111111"], namespaces: [ns]}\n` +
      "otherAccounts: deny\n",
    "roles.yaml",
  );
  const store = new MemoryStore();
  const fips = "111111111111.dkr.ecr-fips.us-east-1.amazonaws.com";
  const secret = pull(store, "mixed", `${fips}, public.ecr.aws`);
  const denied = pull(store, "other", "333333333333/us-east-1");
  const ecr = new FakeEcr();
  const { summary } = await run(store, ecr, {}, undefined, undefined, map);

  assert.deepEqual(ecr.keys.sort(), [`ecr-public/aws/us-east-1`, `ecr/aws/us-east-1/${A}`]);
  assert.deepEqual([summary.refreshed, summary.failed], [1, 1]);
  const status = JSON.parse(store.secrets.get(key(secret))!.annotations[STATUS]);
  assert.equal(status[fips].role, A);
  assert.equal(status["public.ecr.aws"].role, undefined);
  assert.deepEqual(store.secrets.get(key(denied))!.dockerConfig, denied.dockerConfig);
});

Deno.test("role map: a namespaceSelector the API server refuses stops the run before any Secret (exit 2)", async () => {
  const store = new MemoryStore();
  pull(store, "a", "111111111111/us-west-2");
  store.listNamespaces = () =>
    Promise.reject(
      new KubeApiError("list namespaces", 400, {}, "bad", { serverMessage: "unable to parse" }),
    );
  const map = parseRoleMap(
    'roles: [{role: "arn:aws:iam::111111111111:role/a", accounts: ["111111111111"], ' +
      'namespaceSelector: "tenant in (("}]',
    "roles.yaml",
  );
  const ecr = new FakeEcr();
  await assert.rejects(
    () => run(store, ecr, {}, undefined, undefined, map),
    (err: unknown) =>
      err instanceof CannotStartError && err.flag === "--roles" &&
      err.message.includes("unable to parse") && err.message.includes("roles[0]"),
  );
  assert.equal(ecr.total(), 0);
  assert.equal(store.patches.length, 0);
});
