import assert from "node:assert/strict";
import {
  decide,
  type DecideInput,
  type Decision,
  EXPIRES_AT,
  formatTime,
  parseTime,
  REFRESHED_AT,
  STATUS_PREFIX,
} from "../../lib/due.ts";

const HOUR = 3600_000;
const NOW = new Date("2026-11-27T12:00:00Z");
const H1 = "123456789012.dkr.ecr.us-west-2.amazonaws.com";
const H2 = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

// The fixture is fresh: token valid 10h more, window 6h, every host present.
const fresh = (): DecideInput => ({
  hosts: [H1, H2],
  presentHosts: new Set([H1, H2, "ghcr.io"]),
  expiresAt: "2026-11-27T22:00:00Z",
  now: NOW,
  refreshWindowMs: 6 * HOUR,
  force: false,
});

Deno.test("decide", async (t) => {
  const cases: [string, Partial<DecideInput>, Decision][] = [
    ["fixture is fresh", {}, {
      due: false,
      reason: "fresh",
      expiresAt: new Date("2026-11-27T22:00:00Z"),
    }],
    ["force", { force: true }, { due: true, reason: "forced" }],
    ["no expires-at annotation", { expiresAt: undefined }, {
      due: true,
      reason: "never-refreshed",
    }],
    ["garbage expires-at", { expiresAt: "tomorrow" }, { due: true, reason: "invalid-expires-at" }],
    ["empty expires-at", { expiresAt: "" }, { due: true, reason: "invalid-expires-at" }],
    ["date only", { expiresAt: "2026-11-28" }, { due: true, reason: "invalid-expires-at" }],
    [
      "impossible date",
      { expiresAt: "2026-02-30T00:00:00Z" },
      { due: true, reason: "invalid-expires-at" },
    ],
    [
      "annotated host missing from auths",
      { presentHosts: new Set([H1]) },
      { due: true, reason: "missing-registry" },
    ],
    [
      "expires inside the window",
      { expiresAt: "2026-11-27T17:59:59Z" },
      { due: true, reason: "expiring" },
    ],
    [
      "expires exactly at now + window",
      { expiresAt: "2026-11-27T18:00:00Z" },
      { due: true, reason: "expiring" },
    ],
    [
      "one millisecond after now + window",
      { expiresAt: "2026-11-27T18:00:00.001Z" },
      { due: false, reason: "fresh", expiresAt: new Date("2026-11-27T18:00:00.001Z") },
    ],
    ["already expired", { expiresAt: "2026-11-27T11:00:00Z" }, { due: true, reason: "expiring" }],
    [
      "zero window, still valid",
      { refreshWindowMs: 0, expiresAt: "2026-11-27T12:00:01Z" },
      { due: false, reason: "fresh", expiresAt: new Date("2026-11-27T12:00:01Z") },
    ],
    [
      "offset time zone is honoured",
      { expiresAt: "2026-11-27T20:00:00-02:00" }, // = 22:00Z
      { due: false, reason: "fresh", expiresAt: new Date("2026-11-27T22:00:00Z") },
    ],
    [
      "offset pushing it inside the window",
      { expiresAt: "2026-11-27T20:00:00+04:00" }, // = 16:00Z
      { due: true, reason: "expiring" },
    ],
    [
      "force beats a missing annotation",
      { force: true, expiresAt: undefined },
      { due: true, reason: "forced" },
    ],
  ];
  for (const [name, mutation, want] of cases) {
    await t.step(name, () => assert.deepEqual(decide({ ...fresh(), ...mutation }), want));
  }
});

Deno.test("formatTime is RFC 3339 UTC without milliseconds", () => {
  assert.equal(formatTime(new Date("2026-11-27T21:00:00.999Z")), "2026-11-27T21:00:00Z");
  assert.equal(formatTime(new Date("2026-11-27T23:00:00+02:00")), "2026-11-27T21:00:00Z");
});

Deno.test("parseTime round-trips formatTime", () => {
  const d = new Date("2026-11-27T21:00:00Z");
  assert.deepEqual(parseTime(formatTime(d)), d);
  assert.deepEqual(parseTime("2026-11-27t21:00:00.5z"), new Date("2026-11-27T21:00:00.500Z"));
  assert.equal(parseTime("2026-11-27T24:00:00Z"), undefined);
  assert.equal(parseTime("2026-11-27T21:00:00"), undefined, "no zone is ambiguous");
});

Deno.test("status annotation keys", () => {
  assert.equal(STATUS_PREFIX, "kubeecr.deft.com/");
  assert.equal(REFRESHED_AT, "kubeecr.deft.com/refreshed-at");
  assert.equal(EXPIRES_AT, "kubeecr.deft.com/expires-at");
});
