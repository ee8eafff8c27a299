/**
 * assess(): what to do with one discovered Secret, before any token is
 * fetched. One valid fixture — a Secret as KubeECR leaves it after a write,
 * so fresh — plus one mutation per case. The .dockerconfigjson shapes the API
 * server refuses to store (not JSON, a JSON array) can only be reached here,
 * so they are covered here.
 */

import assert from "node:assert/strict";
import { assess, type Assessment, type AssessOptions } from "../../lib/core/assess.ts";
import { setEcrEntries } from "../../lib/core/dockerconfig.ts";
import { fingerprint, formatStatus, statusKey } from "../../lib/core/due.ts";
import type { StoredSecret } from "../../lib/core/store.ts";

const ANNOTATION = "deft.com/kubeecr";
const STATUS = statusKey(ANNOTATION);
const EXPIRES_AT = "kubeecr.deft.com/expires-at";
const HOST = "123456789012.dkr.ecr.us-west-2.amazonaws.com";
const OTHER = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
const OPTS: AssessOptions = {
  annotation: ANNOTATION,
  now: new Date("2026-11-27T12:00:00Z"),
  refreshWindowMs: 6 * 3600_000,
  force: false,
};
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** What writeSecret leaves: the entry and this installation's status for it. */
function written(base: string, password: string, expiresAt = "2026-11-27T22:00:00Z") {
  const { bytes, entries } = setEcrEntries(enc(base), [{ host: HOST, password }]);
  const status = formatStatus(
    new Map([[HOST, { expiresAt, sha256: fingerprint(entries.get(HOST)!) }]]),
  );
  return { bytes, status };
}

const fixture = (): StoredSecret => {
  const { bytes, status } = written('{"auths":{"ghcr.io":{"auth":"Ym90OnB3"}}}', "pw");
  return {
    namespace: "ns",
    name: "pull",
    uid: "uid-1",
    resourceVersion: "1",
    type: "kubernetes.io/dockerconfigjson",
    annotations: {
      [ANNOTATION]: "123456789012/us-west-2",
      [STATUS]: status,
      [EXPIRES_AT]: "2026-11-27T22:00:00Z",
    },
    dockerConfig: bytes,
  };
};

/** The fixture's .dockerconfigjson with `fn` applied to its text. */
const editData = (s: StoredSecret, fn: (text: string) => string) =>
  s.dockerConfig = enc(fn(dec(s.dockerConfig!)));

type Expect = Assessment["kind"] | `invalid:${string}`;

Deno.test("assess", async (t) => {
  const cases: [string, (s: StoredSecret) => void, Expect, RegExp?][] = [
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
      (s) => {
        const stale = written('{"auths":{}}', "pw", "2026-11-27T13:00:00Z");
        s.dockerConfig = stale.bytes;
        s.annotations[STATUS] = stale.status;
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
      (s) => {
        const { bytes, entries } = setEcrEntries(s.dockerConfig, [{ host: OTHER, password: "x" }]);
        s.dockerConfig = bytes;
        const mine = JSON.parse(s.annotations[STATUS]);
        mine[OTHER] = {
          expiresAt: "2026-11-27T13:00:00Z",
          sha256: fingerprint(entries.get(OTHER)!),
        };
        s.annotations[STATUS] = JSON.stringify(mine);
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
    await t.step(name, () => {
      const secret = fixture();
      mutate(secret);
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
