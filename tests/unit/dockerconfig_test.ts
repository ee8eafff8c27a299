import assert from "node:assert/strict";
import { mergeDockerConfig, readAuthHosts } from "../../lib/dockerconfig.ts";
import { DockerConfigError } from "../../lib/errors.ts";

const HOST = "123456789012.dkr.ecr.us-west-2.amazonaws.com";
const HOST2 = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
const PASSWORD = "ecr-password-0123456789";
// Planted in inputs to prove error messages never echo the content.
const LEAK = "SeCrEt-do-not-leak-42";

const b64 = (s: string) => btoa(s);

// The fixture: a user's pull secret with two foreign registries and
// top-level keys kubeecr knows nothing about.
const fixture = () => ({
  auths: {
    "ghcr.io": { username: "bot", password: LEAK, auth: b64(`bot:${LEAK}`) },
    "registry.example.com:5000": { auth: b64("u:p"), identitytoken: "tok" },
  },
  credsStore: "desktop",
  HttpHeaders: { "User-Agent": "kubeecr-test" },
});

const ecrEntry = (password: string) => ({
  username: "AWS",
  password,
  auth: b64(`AWS:${password}`),
});

Deno.test("mergeDockerConfig", async (t) => {
  const cases: [string, string | undefined, { host: string; password: string }[], unknown][] = [
    [
      "adds ECR entries, keeps foreign registries and top-level keys",
      JSON.stringify(fixture()),
      [{ host: HOST, password: PASSWORD }, { host: HOST2, password: "other-password" }],
      {
        ...fixture(),
        auths: {
          ...fixture().auths,
          [HOST]: ecrEntry(PASSWORD),
          [HOST2]: ecrEntry("other-password"),
        },
      },
    ],
    [
      "replaces credentials of an existing entry but keeps its extra keys",
      JSON.stringify({
        auths: { [HOST]: { username: "x", password: "old", auth: "old", email: "a@b.c" } },
      }),
      [{ host: HOST, password: PASSWORD }],
      { auths: { [HOST]: { ...ecrEntry(PASSWORD), email: "a@b.c" } } },
    ],
    [
      "replaces a non-object entry for our own host",
      JSON.stringify({ auths: { [HOST]: "garbage" } }),
      [{ host: HOST, password: PASSWORD }],
      { auths: { [HOST]: ecrEntry(PASSWORD) } },
    ],
    ["undefined input", undefined, [{ host: HOST, password: PASSWORD }], {
      auths: { [HOST]: ecrEntry(PASSWORD) },
    }],
    ["empty input", "", [{ host: HOST, password: PASSWORD }], {
      auths: { [HOST]: ecrEntry(PASSWORD) },
    }],
    ["object without auths", JSON.stringify({ credsStore: "x" }), [{ host: HOST, password: "p" }], {
      credsStore: "x",
      auths: { [HOST]: ecrEntry("p") },
    }],
  ];
  for (const [name, raw, creds, want] of cases) {
    await t.step(name, () => {
      const out = mergeDockerConfig(raw, creds);
      assert.deepEqual(JSON.parse(out), want);
      assert.ok(!out.includes("\n"), "compact JSON");
    });
  }
});

Deno.test("mergeDockerConfig preserves key order", () => {
  const raw = JSON.stringify({ credsStore: "x", auths: { "z.io": {}, "a.io": {} }, zzz: 1 });
  const out = JSON.parse(mergeDockerConfig(raw, [{ host: HOST, password: PASSWORD }]));
  assert.deepEqual(Object.keys(out), ["credsStore", "auths", "zzz"]);
  assert.deepEqual(Object.keys(out.auths), ["z.io", "a.io", HOST]);
});

Deno.test("auth decodes to AWS:<password>", () => {
  // A password with non-ASCII characters proves the UTF-8 handling.
  for (const password of [PASSWORD, "pässwörd-ünicode"]) {
    const out = JSON.parse(mergeDockerConfig(undefined, [{ host: HOST, password }]));
    const bytes = Uint8Array.from(atob(out.auths[HOST].auth), (c) => c.charCodeAt(0));
    assert.equal(new TextDecoder().decode(bytes), `AWS:${password}`);
  }
});

Deno.test("bad .dockerconfigjson is refused without echoing its content", async (t) => {
  const cases: [string, string, string][] = [
    ["not JSON", `{"auths": ${LEAK}}`, "is not valid JSON"],
    ["truncated JSON", `{"auths":{"ghcr.io":{"password":"${LEAK}"`, "is not valid JSON"],
    ["JSON array", `["${LEAK}"]`, "is a JSON array"],
    ["JSON string", JSON.stringify(LEAK), "is a JSON string"],
    ["JSON number", "42", "is a JSON number"],
    ["JSON null", "null", "is JSON null"],
    ["auths is a string", JSON.stringify({ auths: LEAK }), "has auths of type string"],
    ["auths is an array", JSON.stringify({ auths: [LEAK] }), "has auths of type array"],
    ["auths is null", JSON.stringify({ auths: null, x: LEAK }), "has auths of type null"],
  ];
  for (const [name, raw, fragment] of cases) {
    await t.step(name, () => {
      for (const fn of [() => mergeDockerConfig(raw, []), () => readAuthHosts(raw)]) {
        assert.throws(fn, (err: unknown) => {
          assert.ok(err instanceof DockerConfigError, String(err));
          assert.ok(err.message.includes(fragment), err.message);
          assert.ok(err.message.includes('like {"auths":{}}'), err.message);
          assert.ok(!err.message.includes(LEAK.slice(0, 8)), err.message);
          return true;
        });
      }
    });
  }
});

Deno.test("readAuthHosts", async (t) => {
  const cases: [string, string | undefined, string[]][] = [
    ["fixture", JSON.stringify(fixture()), ["ghcr.io", "registry.example.com:5000"]],
    ["undefined", undefined, []],
    ["empty string", "", []],
    ["no auths", "{}", []],
    [
      "entries without a credential do not count",
      JSON.stringify({
        auths: { a: {}, b: "x", c: { auth: "" }, d: { password: "p" }, e: { auth: "YTpi" } },
      }),
      ["d", "e"],
    ],
  ];
  for (const [name, raw, want] of cases) {
    await t.step(name, () => assert.deepEqual([...readAuthHosts(raw)], want));
  }
});
