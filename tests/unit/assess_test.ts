/**
 * assess(): what to do with one discovered Secret, before any token is
 * fetched. One valid fixture — a Secret as KubeECR leaves it after a write,
 * so fresh — plus one mutation per case. The .dockerconfigjson shapes the API
 * server refuses to store (not JSON, a JSON array) can only be reached here,
 * so they are covered here.
 */

import assert from "node:assert/strict";
import { assess, type Assessment, type AssessOptions } from "../../lib/core/assess.ts";
import { parseAnnotation } from "../../lib/core/annotation.ts";
import { statusKey } from "../../lib/core/due.ts";
import type { StoredSecret } from "../../lib/core/store.ts";
import { writeSecret } from "../../lib/patch.ts";
import { MemoryStore } from "./doubles.ts";

const ANNOTATION = "deft.com/kubeecr";
const STATUS = statusKey(ANNOTATION);
const EXPIRES_AT = "kubeecr.deft.com/expires-at";
const HOST = "123456789012.dkr.ecr.us-west-2.amazonaws.com";
const OTHER = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
const ITEM: Record<string, string> = {
  [HOST]: "123456789012/us-west-2",
  [OTHER]: "123456789012/eu-west-1",
};
const OPTS: AssessOptions = {
  annotation: ANNOTATION,
  now: new Date("2026-11-27T12:00:00Z"),
  refreshWindowMs: 6 * 3600_000,
  force: false,
};
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/**
 * A Secret as KubeECR's writer leaves it (written at OPTS.now): `base` with
 * one entry per credential and this installation's status for each, so the
 * fixture is what a run really produces, not a copy of how it is built.
 */
async function written(
  base: string,
  creds: { host: string; password: string; expiresAt: string }[],
): Promise<StoredSecret> {
  const items = creds.map((c) => ITEM[c.host]).join(",");
  const store = new MemoryStore();
  const ref = store.add({
    namespace: "ns",
    name: "pull",
    uid: "uid-1",
    annotations: { [ANNOTATION]: items },
    dockerConfig: enc(base),
  });
  await writeSecret(
    store,
    ref,
    parseAnnotation(ANNOTATION, items),
    creds.map((c) => ({ ...c, expiresAt: new Date(c.expiresAt) })),
    { ...OPTS, dryRun: false, maxAttempts: 1 },
  );
  assert.equal(store.patches.length, 1, "written");
  return (await store.get(ref))!;
}

/** Written with HOST's token, fresh until 22:00 (the window is 6h, now is 12:00). */
const fixture = () =>
  written('{"auths":{"ghcr.io":{"auth":"Ym90OnB3"}}}', [
    { host: HOST, password: "pw", expiresAt: "2026-11-27T22:00:00Z" },
  ]);

/** The fixture's .dockerconfigjson with `fn` applied to its text. */
const editData = (s: StoredSecret, fn: (text: string) => string) =>
  s.dockerConfig = enc(fn(dec(s.dockerConfig!)));

type Expect = Assessment["kind"] | `invalid:${string}`;

Deno.test("assess", async (t) => {
  const cases: [string, (s: StoredSecret) => unknown, Expect, RegExp?][] = [
    ["fixture is fresh", () => {}, "fresh"],
    ["--force", () => {}, "due"],
    ["no status for this installation (never refreshed) is due", (s) => {
      delete s.annotations[STATUS];
    }, "due"],
    ["no .dockerconfigjson key is due", (s) => delete s.dockerConfig, "due"],
    [
      "entry re-applied by GitOps (expires-at still says fresh) is due",
      (s) => s.dockerConfig = enc(`{"auths":{"${HOST}":{"auth":"${btoa("AWS:placeholder")}"}}}`),
      "due",
    ],
    [
      "entry replaced by hand with another token is due",
      (s) => editData(s, (t) => t.replaceAll('"pw"', '"other"')),
      "due",
    ],
    ["entry removed is due", (s) => s.dockerConfig = enc('{"auths":{}}'), "due"],
    [
      "a change elsewhere in the data keeps it fresh",
      (s) => editData(s, (t) => t.replace('"ghcr.io"', '"quay.io"')),
      "fresh",
    ],
    [
      "a status written by another installation (other key) is not read",
      (s) => {
        s.annotations[statusKey("b.io/ecr")] = s.annotations[STATUS];
        delete s.annotations[STATUS];
      },
      "due",
    ],
    [
      "another installation's fresh summary does not make ours fresh",
      async (s) => {
        const stale = await written('{"auths":{}}', [
          { host: HOST, password: "pw", expiresAt: "2026-11-27T13:00:00Z" },
        ]);
        s.dockerConfig = stale.dockerConfig;
        s.annotations[STATUS] = stale.annotations[STATUS];
        s.annotations[EXPIRES_AT] = "2026-11-28T00:00:00Z";
      },
      "due",
    ],
    [
      "a registry added to the annotation is due",
      (s) => s.annotations[ANNOTATION] = "123456789012/us-west-2,123456789012/eu-west-1",
      "due",
    ],
    [
      "a registry removed from the annotation: the rest stays fresh",
      async (s) => {
        // Written for both, OTHER's token close to expiry; then OTHER is removed.
        const both = await written(dec(s.dockerConfig!), [
          { host: HOST, password: "pw", expiresAt: "2026-11-27T22:00:00Z" },
          { host: OTHER, password: "x", expiresAt: "2026-11-27T13:00:00Z" },
        ]);
        s.dockerConfig = both.dockerConfig;
        s.annotations[STATUS] = both.annotations[STATUS];
        assert.ok(JSON.parse(s.annotations[STATUS])[OTHER], "the status has OTHER's entry");
      },
      "fresh",
    ],
    [
      ".dockerconfigjson not JSON",
      (s) => s.dockerConfig = enc('{"auths": secretpassword'),
      "invalid:InvalidDockerConfig",
      /not valid JSON/,
    ],
    [
      ".dockerconfigjson a JSON array",
      (s) => s.dockerConfig = enc("[]"),
      "invalid:InvalidDockerConfig",
      /a JSON array/,
    ],
    [
      ".dockerconfigjson not UTF-8",
      (s) => s.dockerConfig = new Uint8Array([0x7b, 0xe9, 0x7d]),
      "invalid:InvalidDockerConfig",
      /not UTF-8/,
    ],
    [
      "duplicate top-level auths",
      (s) => s.dockerConfig = enc('{"auths":{},"auths":{"secretpassword":{}}}'),
      "invalid:InvalidDockerConfig",
      /2 top-level "auths"/,
    ],
    [
      "auths a string",
      (s) => s.dockerConfig = enc('{"auths":"x"}'),
      "invalid:InvalidDockerConfig",
      /auths of type string/,
    ],
    [
      "bad annotation wins over a good config",
      (s) => s.annotations[ANNOTATION] = "123/us-west-2",
      "invalid:InvalidAnnotation",
      /12 digits/,
    ],
  ];
  for (const [name, mutate, expected, message] of cases) {
    await t.step(name, async () => {
      const secret = await fixture();
      await mutate(secret);
      const a = assess(secret, { ...OPTS, force: name === "--force" });
      assert.equal(a.kind === "invalid" ? `invalid:${a.reason}` : a.kind, expected);
      if (a.kind === "invalid") {
        assert.match(a.message, message!);
        // The message describes the shape, never the content (it may hold passwords).
        assert.equal(a.message.includes("secretpassword"), false);
      }
    });
  }
});

Deno.test("assess with a role map: the role is part of freshness, a refusal is the Secret's", async () => {
  const ROLE = "arn:aws:iam::123456789012:role/ecr-pull";
  const role = (r: string): AssessOptions["roleOf"] => () => ({
    kind: "role",
    entry: { index: 0, role: r, accounts: ["123456789012"], namespaces: ["ns"] },
  });
  const base = await fixture();
  assert.equal(assess(base, { ...OPTS, roleOf: () => ({ kind: "base" }) }).kind, "fresh");
  const moved = assess(base, { ...OPTS, roleOf: role(ROLE) });
  assert.deepEqual(moved.kind === "due" && [moved.why, [...moved.roles]], [
    `role-changed ${HOST}`,
    [[HOST, ROLE]],
  ]);
  const refused = assess(base, { ...OPTS, roleOf: () => ({ kind: "refused", message: "no" }) });
  assert.deepEqual(refused, { kind: "invalid", reason: "NotAllowedByRoleMap", message: "no" });

  // Written by the role: fresh while the map still chooses it, due when it chooses another.
  const store = new MemoryStore();
  const ref = store.add({
    namespace: "ns",
    name: "pull",
    annotations: { [ANNOTATION]: ITEM[HOST] },
  });
  await writeSecret(store, ref, parseAnnotation(ANNOTATION, ITEM[HOST]), [
    { host: HOST, password: "pw", expiresAt: new Date("2026-11-27T22:00:00Z"), role: ROLE },
  ], { ...OPTS, dryRun: false, maxAttempts: 1 });
  const byRole = (await store.get(ref))!;
  assert.equal(JSON.parse(byRole.annotations[STATUS])[HOST].role, ROLE);
  assert.equal(assess(byRole, { ...OPTS, roleOf: role(ROLE) }).kind, "fresh");
  assert.equal(assess(byRole, { ...OPTS, roleOf: role(`${ROLE}-v2`) }).kind, "due");
  assert.equal(assess(byRole, OPTS).kind, "due", "no map any more: back to the base principal");
});
