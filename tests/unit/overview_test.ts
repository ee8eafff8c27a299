/**
 * What `kubeecr status` says about one Secret (lib/core/overview.ts): one
 * Secret as KubeECR's writer leaves it (fresh) plus one mutation per case;
 * the order of the rows; the "in 5h12m" wording.
 */

import assert from "node:assert/strict";
import { parseAnnotation } from "../../lib/core/annotation.ts";
import type { AssessOptions } from "../../lib/core/assess.ts";
import {
  byAttention,
  type LatestEvent,
  needsAttention,
  otherRow,
  relativeTime,
  type StatusRow,
  statusRow,
} from "../../lib/core/overview.ts";
import { RENEW_REQUESTED } from "../../lib/core/status.ts";
import type { StoredSecret } from "../../lib/core/store.ts";
import { writeSecret } from "../../lib/patch.ts";
import { MemoryStore } from "./doubles.ts";

const ANNOTATION = "deft.com/kubeecr";
const ITEMS = "123456789012/us-west-2, 123456789012/eu-west-1";
const WRITTEN = new Date("2026-11-27T12:00:00Z");
const OPTS: AssessOptions = {
  annotation: ANNOTATION,
  now: new Date("2026-11-27T13:00:00Z"),
  refreshWindowMs: 6 * 3600_000,
  force: false,
};
const enc = (s: string) => new TextEncoder().encode(s);

/** Written at WRITTEN with tokens until 22:00 and 23:00. */
async function written(): Promise<StoredSecret> {
  const store = new MemoryStore();
  const ref = store.add({
    namespace: "ns",
    name: "pull",
    uid: "uid-1",
    annotations: { [ANNOTATION]: ITEMS },
    dockerConfig: enc('{"auths":{}}'),
  });
  const [west, eu] = parseAnnotation(ANNOTATION, ITEMS);
  await writeSecret(store, ref, [west, eu], [
    { host: west.host, password: "p1", expiresAt: new Date("2026-11-27T22:00:00Z") },
    { host: eu.host, password: "p2", expiresAt: new Date("2026-11-27T23:00:00Z") },
  ], { ...OPTS, now: WRITTEN, dryRun: false, maxAttempts: 1 });
  return (await store.get(ref))!;
}

const warning: LatestEvent = {
  type: "Warning",
  reason: "RefreshFailed",
  message: "ECR said no",
  at: new Date("2026-11-27T12:30:00Z"),
};

Deno.test("statusRow: one written Secret, one mutation per case", async (t) => {
  const cases: [
    string,
    (s: StoredSecret) => void,
    LatestEvent | undefined,
    Partial<AssessOptions>,
    Partial<StatusRow>,
  ][] = [
    ["as written: fresh until the earliest token", () => {}, undefined, {}, {
      state: "fresh",
      reason: null,
      expiresAt: new Date("2026-11-27T22:00:00Z"),
      expired: false,
      lastRefresh: WRITTEN,
    }],
    ["latest event a Refreshed: still fresh", () => {}, { ...warning, type: "Normal" }, {}, {
      state: "fresh",
    }],
    ["latest event a Warning: failed, with its message", () => {}, warning, {}, {
      state: "failed",
      reason: "RefreshFailed",
      message: "ECR said no",
      expired: false,
    }],
    ["inside the window: due, expiring, not expired", () => {}, undefined, {
      now: new Date("2026-11-27T17:00:00Z"),
    }, { state: "due", reason: "expiring", expired: false }],
    ["past the earliest expiry: due and expired", () => {}, undefined, {
      now: new Date("2026-11-27T22:30:00Z"),
    }, { state: "due", reason: "expiring", expired: true }],
    [
      "a renew mark: due, renew-requested, the token still lives",
      (s) => {
        s.annotations[RENEW_REQUESTED] = "2026-11-27T12:45:00Z";
      },
      undefined,
      {},
      {
        state: "due",
        reason: "renew-requested",
        expired: false,
        renewRequestedAt: new Date("2026-11-27T12:45:00Z"),
      },
    ],
    [
      "the data re-applied (placeholder): due, and no token",
      (s) => {
        s.dockerConfig = enc('{"auths":{}}');
      },
      undefined,
      {},
      { state: "due", reason: "missing-entry", expired: true },
    ],
    [
      "an invalid annotation: failed, whatever the events say",
      (s) => {
        s.annotations[ANNOTATION] = "12345/us-west-2";
      },
      { ...warning, type: "Normal" },
      {},
      {
        state: "failed",
        reason: "InvalidAnnotation",
        expired: true,
        registries: ["12345/us-west-2"],
      },
    ],
  ];
  for (const [name, mutate, latest, opts, want] of cases) {
    await t.step(name, async () => {
      const secret = await written();
      mutate(secret);
      const row = statusRow(secret, latest, { ...OPTS, ...opts });
      const picked = Object.fromEntries(
        Object.keys(want).map((k) => [k, row[k as keyof StatusRow]]),
      );
      assert.deepEqual(picked, want);
      assert.deepEqual(
        row.registries,
        want.registries ?? ["123456789012/us-west-2", "123456789012/eu-west-1"],
      );
    });
  }
});

Deno.test("byAttention: failed, due (expired first), fresh, skipped; earliest expiry, then name", () => {
  const at = (h: number) => new Date(Date.UTC(2026, 10, 27, h));
  const row = (name: string, state: StatusRow["state"], expired: boolean, expiresAt?: Date) =>
    ({
      namespace: "ns",
      name,
      registries: [],
      state,
      reason: null,
      expired,
      expiresAt,
    }) as StatusRow;
  const rows = [
    row("fresh-late", "fresh", false, at(23)),
    row("skipped", "skipped", false),
    row("fresh-early", "fresh", false, at(20)),
    row("due", "due", false, at(15)),
    row("due-expired", "due", true),
    row("failed-b", "failed", true),
    row("failed-a", "failed", true),
  ];
  assert.deepEqual(rows.sort(byAttention).map((r) => r.name), [
    "failed-a",
    "failed-b",
    "due-expired",
    "due",
    "fresh-early",
    "fresh-late",
    "skipped",
  ]);
  assert.deepEqual(rows.map(needsAttention), [true, true, true, false, false, false, false]);
  assert.equal(
    needsAttention(otherRow({ namespace: "n", name: "x" }, undefined, "skipped", "other-type", "")),
    false,
  );
});

Deno.test("relativeTime", () => {
  const now = new Date("2026-11-27T12:00:00Z");
  const cases: [number, string][] = [
    [5 * 3600_000 + 12 * 60_000, "in 5h12m"],
    [45_000, "in 45s"],
    [0, "in 0s"],
    [-3 * 60_000, "3m ago"],
    [-(26 * 3600_000 + 5 * 60_000), "1d2h ago"],
    [3600_000, "in 1h0m"],
  ];
  for (const [ms, want] of cases) {
    assert.equal(relativeTime(new Date(now.getTime() + ms), now), want, String(ms));
  }
});
