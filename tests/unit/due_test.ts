import assert from "node:assert/strict";
import {
  capExpiry,
  decide,
  type DecideInput,
  type Decision,
  fingerprint,
  formatStatus,
  type HostStatus,
  parseStatus,
  statusKey,
} from "../../lib/core/due.ts";
import { EXPIRES_AT, REFRESHED_AT, STATUS_PREFIX } from "../../lib/core/status.ts";
import { formatTime, parseTime } from "../../lib/core/time.ts";

const HOUR = 3600_000;
const NOW = new Date("2026-11-27T12:00:00Z");
const H1 = "123456789012.dkr.ecr.us-west-2.amazonaws.com";
const H2 = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

const ROLE_A = "arn:aws:iam::210987654321:role/ecr-pull-team-a";
const ROLE_B = "arn:aws:iam::444444444444:role/ecr-pull-team-b";
const status = (hosts: Record<string, HostStatus>) => formatStatus(new Map(Object.entries(hosts)));
const S1 = { expiresAt: "2026-11-27T22:00:00Z", sha256: "fp1" };
const S2 = { expiresAt: "2026-11-27T23:00:00Z", sha256: "fp2" };
/** The fixture's status with H1's expiry replaced. */
const h1Expiring = (expiresAt: string) => status({ [H1]: { ...S1, expiresAt }, [H2]: S2 });

// The fixture is fresh: both entries are the ones recorded, H1's token (the
// earliest) is valid 10h more, window 6h.
const fresh = (): DecideInput => ({
  hosts: [H1, H2],
  entries: new Map([[H1, "fp1"], [H2, "fp2"]]),
  status: status({ [H1]: S1, [H2]: S2 }),
  now: NOW,
  refreshWindowMs: 6 * HOUR,
  force: false,
});

Deno.test("decide", async (t) => {
  const cases: [string, Partial<DecideInput>, Decision][] = [
    ["fixture is fresh until the earliest expiry", {}, {
      due: false,
      reason: "fresh",
      expiresAt: new Date("2026-11-27T22:00:00Z"),
    }],
    ["force", { force: true }, { due: true, reason: "forced" }],
    ["kubeecr renew marked it", { renewRequested: "2026-11-27T11:00:00Z" }, {
      due: true,
      reason: "renew-requested",
    }],
    ["a renew mark with any value", { renewRequested: "" }, {
      due: true,
      reason: "renew-requested",
    }],
    ["no status of this installation", { status: undefined }, {
      due: true,
      reason: "never-refreshed",
    }],
    ["status not JSON", { status: "fresh" }, { due: true, reason: "invalid-status" }],
    ["status a JSON array", { status: "[]" }, { due: true, reason: "invalid-status" }],
    ["status entry without sha256", { status: `{"${H1}":{"expiresAt":"x"}}` }, {
      due: true,
      reason: "invalid-status",
    }],
    [
      "a registry added to the annotation since the last write",
      { hosts: [H1, H2, "999999999999.dkr.ecr.us-west-2.amazonaws.com"] },
      { due: true, reason: "new-registry", host: "999999999999.dkr.ecr.us-west-2.amazonaws.com" },
    ],
    ["entry removed from the data", { entries: new Map([[H1, "fp1"]]) }, {
      due: true,
      reason: "missing-entry",
      host: H2,
    }],
    [
      "entry replaced (GitOps re-apply, hand edit, another writer)",
      { entries: new Map([[H1, "fp1"], [H2, "other"]]) },
      { due: true, reason: "entry-changed", host: H2 },
    ],
    ["garbage expiry", { status: h1Expiring("tomorrow") }, {
      due: true,
      reason: "invalid-expires-at",
      host: H1,
    }],
    ["impossible date", { status: h1Expiring("2026-02-30T00:00:00Z") }, {
      due: true,
      reason: "invalid-expires-at",
      host: H1,
    }],
    ["date only", { status: h1Expiring("2026-11-28") }, {
      due: true,
      reason: "invalid-expires-at",
      host: H1,
    }],
    [
      "an expiry beyond now + 12h + skew cannot come from a write (forged, clock jumped back)",
      { status: h1Expiring("5138-11-16T09:46:40Z") },
      { due: true, reason: "implausible-expires-at", host: H1 },
    ],
    [
      "now + 12h + 5min is still plausible",
      { refreshWindowMs: 0, status: h1Expiring("2026-11-28T00:05:00Z") },
      { due: false, reason: "fresh", expiresAt: new Date("2026-11-27T23:00:00Z") },
    ],
    ["expires inside the window", { status: h1Expiring("2026-11-27T17:59:59Z") }, {
      due: true,
      reason: "expiring",
      host: H1,
    }],
    ["expires exactly at now + window", { status: h1Expiring("2026-11-27T18:00:00Z") }, {
      due: true,
      reason: "expiring",
      host: H1,
    }],
    [
      "one millisecond after now + window",
      { status: h1Expiring("2026-11-27T18:00:00.001Z") },
      { due: false, reason: "fresh", expiresAt: new Date("2026-11-27T18:00:00.001Z") },
    ],
    ["already expired", { status: h1Expiring("2026-11-27T11:00:00Z") }, {
      due: true,
      reason: "expiring",
      host: H1,
    }],
    [
      "offset time zone is honoured",
      { status: h1Expiring("2026-11-27T20:00:00-02:00") }, // = 22:00Z
      { due: false, reason: "fresh", expiresAt: new Date("2026-11-27T22:00:00Z") },
    ],
    [
      "offset pushing it inside the window",
      { status: h1Expiring("2026-11-27T20:00:00+04:00") }, // = 16:00Z
      { due: true, reason: "expiring", host: H1 },
    ],
    [
      "hosts in the status the annotation no longer asks for do not matter",
      { hosts: [H2] },
      { due: false, reason: "fresh", expiresAt: new Date("2026-11-27T23:00:00Z") },
    ],
    // The role map (--roles): the role that wrote a host is part of freshness.
    [
      "the map now serves a host through a role; the base principal wrote it",
      { roles: new Map([[H2, ROLE_A]]) },
      { due: true, reason: "role-changed", host: H2 },
    ],
    [
      "the map moved a host to another role",
      {
        status: status({ [H1]: S1, [H2]: { ...S2, role: ROLE_A } }),
        roles: new Map([[H2, ROLE_B]]),
      },
      { due: true, reason: "role-changed", host: H2 },
    ],
    [
      "the map no longer names the host's account: back to the base principal",
      { status: status({ [H1]: S1, [H2]: { ...S2, role: ROLE_A } }) },
      { due: true, reason: "role-changed", host: H2 },
    ],
    [
      "written by the role the map still chooses: fresh",
      {
        status: status({ [H1]: S1, [H2]: { ...S2, role: ROLE_A } }),
        roles: new Map([[H2, ROLE_A]]),
      },
      { due: false, reason: "fresh", expiresAt: new Date("2026-11-27T22:00:00Z") },
    ],
    [
      "kubeecr status has no role map: a host a role wrote is judged by its expiry alone",
      { status: status({ [H1]: S1, [H2]: { ...S2, role: ROLE_A } }), roles: "unknown" },
      { due: false, reason: "fresh", expiresAt: new Date("2026-11-27T22:00:00Z") },
    ],
    [
      "a role that is not a string",
      { status: `{"${H1}":{"expiresAt":"x","sha256":"y","role":7}}` },
      {
        due: true,
        reason: "invalid-status",
      },
    ],
    ["force beats a missing status", { force: true, status: undefined }, {
      due: true,
      reason: "forced",
    }],
  ];
  for (const [name, mutation, want] of cases) {
    await t.step(name, () => assert.deepEqual(decide({ ...fresh(), ...mutation }), want));
  }
});

Deno.test("statusKey: one valid, distinct annotation key per installation", async (t) => {
  const qualifiedName =
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
  const cases: [string, string][] = [
    ["deft.com/kubeecr", "kubeecr.deft.com/status.deft.com_kubeecr"],
    ["a.io/ecr", "kubeecr.deft.com/status.a.io_ecr"],
    ["b.io/ecr", "kubeecr.deft.com/status.b.io_ecr"],
    ["ecr", "kubeecr.deft.com/status._ecr"],
    ["a.io_ecr", "kubeecr.deft.com/status._a.io_ecr"], // unprefixed: cannot meet "a.io/ecr"
    [`${"x".repeat(40)}.example.com/${"y".repeat(20)}`, "kubeecr.deft.com/status.h-"],
  ];
  for (const [annotation, want] of cases) {
    await t.step(annotation, () => {
      const key = statusKey(annotation);
      assert.ok(key.startsWith(want), key);
      assert.ok(key.split("/")[1].length <= 63, key);
      assert.match(key, qualifiedName);
    });
  }
  const all = [...cases.map(([a]) => a), `${"x".repeat(40)}.example.com/${"z".repeat(20)}`];
  assert.equal(new Set(all.map(statusKey)).size, all.length, "no two installations share one");
});

Deno.test("status value round-trips, compact, sorted by host, never a credential", () => {
  const value = status({ [H2]: S2, [H1]: S1 });
  assert.equal(
    value,
    `{"${H2}":{"expiresAt":"2026-11-27T23:00:00Z","sha256":"fp2"},"${H1}":{"expiresAt":"2026-11-27T22:00:00Z","sha256":"fp1"}}`,
  );
  assert.deepEqual(parseStatus(value), new Map([[H2, S2], [H1, S1]]));
  assert.equal(parseStatus("null"), undefined);
  // A host written with a role records it; one without stays as it always was.
  const withRole = status({ [H1]: { ...S1, role: ROLE_A }, [H2]: S2 });
  assert.equal(
    withRole,
    `{"${H2}":{"expiresAt":"2026-11-27T23:00:00Z","sha256":"fp2"},"${H1}":{"expiresAt":"2026-11-27T22:00:00Z","sha256":"fp1","role":"${ROLE_A}"}}`,
  );
  assert.deepEqual(
    parseStatus(withRole),
    new Map<string, HostStatus>([[H2, S2], [H1, { ...S1, role: ROLE_A }]]),
  );
});

Deno.test("capExpiry caps an ECR expiry beyond now + 12h + 5min and says so", () => {
  const cap = new Date("2026-11-28T00:05:00Z");
  assert.deepEqual(capExpiry(new Date("5138-11-16T09:46:40Z"), NOW), {
    expiresAt: cap,
    capped: true,
  });
  assert.deepEqual(capExpiry(cap, NOW), { expiresAt: cap, capped: false });
  const real = new Date("2026-11-28T00:00:00Z");
  assert.deepEqual(capExpiry(real, NOW), { expiresAt: real, capped: false });
});

Deno.test("formatTime is RFC 3339 UTC without milliseconds", () => {
  assert.equal(formatTime(new Date("2026-11-27T21:00:00.999Z")), "2026-11-27T21:00:00Z");
  assert.equal(formatTime(new Date("2026-11-27T23:00:00+02:00")), "2026-11-27T21:00:00Z");
  // Formatted once per second and remembered: another millisecond, the same text; the next second, its own.
  assert.equal(formatTime(new Date("2026-11-27T21:00:00.001Z")), "2026-11-27T21:00:00Z");
  assert.equal(formatTime(new Date("2026-11-27T21:00:01.000Z")), "2026-11-27T21:00:01Z");
  assert.equal(formatTime(new Date("1969-12-31T23:59:59.500Z")), "1969-12-31T23:59:59Z");
});

Deno.test("parseTime round-trips formatTime", () => {
  const d = new Date("2026-11-27T21:00:00Z");
  assert.deepEqual(parseTime(formatTime(d)), d);
  assert.deepEqual(parseTime("2026-11-27t21:00:00.5z"), new Date("2026-11-27T21:00:00.500Z"));
  assert.equal(parseTime("2026-11-27T24:00:00Z"), undefined);
  assert.equal(parseTime("2026-11-27T21:00:00"), undefined, "no zone is ambiguous");
  assert.equal(parseTime("2026-11-27 21:00:00Z"), undefined, "RFC 3339 wants the T");
});

Deno.test("status annotation keys", () => {
  assert.equal(STATUS_PREFIX, "kubeecr.deft.com/");
  assert.equal(REFRESHED_AT, "kubeecr.deft.com/refreshed-at");
  assert.equal(EXPIRES_AT, "kubeecr.deft.com/expires-at");
});

Deno.test("fingerprint is 32 hex digits of SHA-256 and tells entries apart", () => {
  // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
  assert.equal(fingerprint("abc"), "ba7816bf8f01cfea414140de5dae2223");
  assert.notEqual(fingerprint('{"password":"p"}'), fingerprint('{"password":"q"}'));
});
