/**
 * assess(): what to do with one discovered Secret, before any token is
 * fetched. One valid, due fixture plus one mutation per case. The
 * .dockerconfigjson shapes the API server refuses to store (not JSON, a JSON
 * array) can only be reached here, so they are covered here.
 */

import assert from "node:assert/strict";
import { assess, type Assessment, type AssessOptions } from "../../lib/assess.ts";
import type { StoredSecret } from "../../lib/store.ts";

const ANNOTATION = "deft.com/kubeecr";
const EXPIRES_AT = "kubeecr.deft.com/expires-at";
const HOST = "123456789012.dkr.ecr.us-west-2.amazonaws.com";
const OPTS: AssessOptions = {
  annotation: ANNOTATION,
  now: new Date("2026-11-27T12:00:00Z"),
  refreshWindowMs: 6 * 3600_000,
  force: false,
};

const fixture = (): StoredSecret => ({
  namespace: "ns",
  name: "pull",
  uid: "uid-1",
  resourceVersion: "1",
  type: "kubernetes.io/dockerconfigjson",
  annotations: { [ANNOTATION]: "123456789012/us-west-2" },
  dockerConfig: new TextEncoder().encode(
    JSON.stringify({ auths: { "ghcr.io": { auth: "Ym90OnB3" } } }),
  ),
});

type Expect = Assessment["kind"] | `invalid:${string}`;

Deno.test("assess", async (t) => {
  const cases: [string, (s: StoredSecret) => void, Expect, RegExp?][] = [
    ["fixture is due (never refreshed)", () => {}, "due"],
    ["no .dockerconfigjson key yet is due", (s) => delete s.dockerConfig, "due"],
    ["fresh token and host present", (s) => {
      s.annotations[EXPIRES_AT] = "2026-11-27T22:00:00Z";
      s.dockerConfig = new TextEncoder().encode(
        JSON.stringify({ auths: { [HOST]: { auth: "QVdTOnB3" } } }),
      );
    }, "fresh"],
    ["fresh token but host missing is due", (s) => {
      s.annotations[EXPIRES_AT] = "2026-11-27T22:00:00Z";
    }, "due"],
    [
      ".dockerconfigjson not JSON",
      (s) => s.dockerConfig = new TextEncoder().encode('{"auths": secretpassword'),
      "invalid:InvalidDockerConfig",
      /not valid JSON/,
    ],
    [
      ".dockerconfigjson a JSON array",
      (s) => s.dockerConfig = new TextEncoder().encode("[]"),
      "invalid:InvalidDockerConfig",
      /a JSON array/,
    ],
    [
      "auths a string",
      (s) => s.dockerConfig = new TextEncoder().encode('{"auths":"x"}'),
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
      const a = assess(secret, OPTS);
      assert.equal(a.kind === "invalid" ? `invalid:${a.reason}` : a.kind, expected);
      if (a.kind === "invalid") {
        assert.match(a.message, message!);
        // The message describes the shape, never the content (it may hold passwords).
        assert.equal(a.message.includes("secretpassword"), false);
      }
    });
  }
});
