/**
 * setEcrEntries edits `.dockerconfigjson` as text: each case gives the exact
 * bytes expected, so any byte changed outside the ECR entries fails it. The
 * refusals (not UTF-8, duplicate keys the kubelet would read differently,
 * not JSON) throw DockerConfigError without echoing the content, so the
 * caller leaves the Secret byte-identical.
 */

import assert from "node:assert/strict";
import { decodeDockerConfig, readEcrEntries, setEcrEntries } from "../../lib/core/dockerconfig.ts";
import { DockerConfigError } from "../../lib/core/errors.ts";

const H = "123456789012.dkr.ecr.us-west-2.amazonaws.com";
const H2 = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
// Planted in inputs to prove error messages never echo the content.
const LEAK = "SeCrEt-do-not-leak-42";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const auth = (password: string) => enc(`AWS:${password}`).toBase64();
/** The entry KubeECR writes for a new host. */
const E = (password: string) =>
  `{"username":"AWS","password":${JSON.stringify(password)},"auth":"${auth(password)}"}`;
const P = [{ host: H, password: "p" }];

Deno.test("setEcrEntries changes only the ECR entries, byte for byte", async (t) => {
  const cases: [string, string | undefined, { host: string; password: string }[], string][] = [
    [
      "pretty-printed: the new entry copies the layout of the first one",
      '{\n  "auths": {\n    "ghcr.io": {\n      "auth": "eDp5"\n    }\n  },\n  "credsStore": "desktop"\n}',
      P,
      `{\n  "auths": {\n    "ghcr.io": {\n      "auth": "eDp5"\n    },\n    "${H}": ${
        E("p")
      }\n  },\n  "credsStore": "desktop"\n}`,
    ],
    [
      "CRLF, tabs and space around the document",
      ' \r\n{\t"auths" :\t{ "q.io" : {} } }\r\n',
      P,
      ` \r\n{\t"auths" :\t{ "q.io" : {}, "${H}" : ${E("p")} } }\r\n`,
    ],
    [
      "big numbers and number spelling",
      '{"auths":{},"n":12345678901234567890,"f":1.0E+2,"z":-0,"d":0.10}',
      P,
      `{"auths":{"${H}":${E("p")}},"n":12345678901234567890,"f":1.0E+2,"z":-0,"d":0.10}`,
    ],
    [
      "escapes stay escaped",
      '{"auths":{"r\\u00e9g.io":{"auth":"eDp5"}},"HttpHeaders":{"X":"a\\/b\\u2028\\ud83d\\ude00"}}',
      P,
      `{"auths":{"r\\u00e9g.io":{"auth":"eDp5"},"${H}":${
        E("p")
      }},"HttpHeaders":{"X":"a\\/b\\u2028\\ud83d\\ude00"}}`,
    ],
    [
      "unicode hosts and values",
      '{"auths":{"régistry.例え.jp":{"auth":"eDp5","email":"ü@example.com"}}}',
      P,
      `{"auths":{"régistry.例え.jp":{"auth":"eDp5","email":"ü@example.com"},"${H}":${E("p")}}}`,
    ],
    [
      "extra keys in the ECR entry are kept; only username/password/auth change",
      `{"auths":{"${H}":{"email":"a@b.c", "username":"old","auth":"b2xk","identitytoken":"t"}}}`,
      P,
      `{"auths":{"${H}":{"email":"a@b.c", "username":"AWS","auth":"${
        auth("p")
      }","identitytoken":"t", "password":"p"}}}`,
    ],
    [
      "members appended to an entry use the separator its members use",
      `{"auths": {"${H}": {"username": "AWS", "password": "placeholder"}}}`,
      P,
      `{"auths": {"${H}": {"username": "AWS", "password": "p", "auth": "${auth("p")}"}}}`,
    ],
    [
      "every spelling Go reads as password is replaced (it matches keys case-insensitively)",
      `{"auths":{"${H}":{"Password":"old","PASSWORD":"old2"}}}`,
      P,
      `{"auths":{"${H}":{"Password":"p","PASSWORD":"p","username":"AWS","auth":"${auth("p")}"}}}`,
    ],
    [
      "credHelpers and credsStore, no auths: auths is appended",
      `{"credHelpers":{"${H}":"ecr-login"},"credsStore":"desktop"}`,
      P,
      `{"credHelpers":{"${H}":"ecr-login"},"credsStore":"desktop","auths":{"${H}":${E("p")}}}`,
    ],
    ['{"auths": null} is empty', '{"auths": null,"x":1}', P, `{"auths": {"${H}":${E("p")}},"x":1}`],
    ["empty object", "{}", P, `{"auths":{"${H}":${E("p")}}}`],
    ["no data yet", undefined, P, `{"auths":{"${H}":${E("p")}}}`],
    ["empty data", "", P, `{"auths":{"${H}":${E("p")}}}`],
    ["whitespace-only data", " \n", P, `{"auths":{"${H}":${E("p")}}}`],
    [
      "a scalar under our own host is replaced",
      `{"auths":{"${H}":"garbage","q.io":{}}}`,
      P,
      `{"auths":{"${H}":${E("p")},"q.io":{}}}`,
    ],
    [
      "a duplicate foreign host is not ours to judge: kept",
      '{"auths":{"q.io":{},"q.io":{"auth":"eDp5"}}}',
      P,
      `{"auths":{"q.io":{},"q.io":{"auth":"eDp5"},"${H}":${E("p")}}}`,
    ],
    [
      "one host replaced (last member) and one inserted after it",
      `{"auths":{"${H}":{"auth":"b2xk"}}}`,
      [{ host: H, password: "p" }, { host: H2, password: "q" }],
      `{"auths":{"${H}":{"auth":"${auth("p")}","username":"AWS","password":"p"},"${H2}":${
        E("q")
      }}}`,
    ],
    [
      "a password with quotes and non-ASCII is escaped as JSON",
      "{}",
      [{ host: H, password: 'pä"\\ss' }],
      `{"auths":{"${H}":${E('pä"\\ss')}}}`,
    ],
  ];
  for (const [name, input, creds, want] of cases) {
    await t.step(name, () => {
      const { bytes, entries } = setEcrEntries(input === undefined ? undefined : enc(input), creds);
      assert.equal(dec(bytes), want);
      // What the status fingerprints is exactly what a later read finds.
      const hosts = creds.map((c) => c.host);
      assert.deepEqual(readEcrEntries(bytes, hosts), entries);
      assert.deepEqual([...entries.keys()].sort(), [...hosts].sort());
      // And the result is a document every JSON reader accepts.
      JSON.parse(dec(bytes));
    });
  }
});

Deno.test("auth decodes to AWS:<password> in UTF-8", () => {
  for (const password of ["ecr-password-0123456789", "pässwörd-ünicode"]) {
    const { bytes } = setEcrEntries(undefined, [{ host: H, password }]);
    const entry = JSON.parse(dec(bytes)).auths[H];
    assert.equal(dec(Uint8Array.fromBase64(entry.auth)), `AWS:${password}`);
    assert.equal(entry.password, password);
    assert.equal(entry.username, "AWS");
  }
});

Deno.test("readEcrEntries returns the exact text of each present ECR entry", () => {
  const raw = `{"auths":{"ghcr.io":{}, "${H}" : { "auth" : "eDp5" } }}`;
  assert.deepEqual(readEcrEntries(enc(raw), [H, H2]), new Map([[H, '{ "auth" : "eDp5" }']]));
  assert.deepEqual(readEcrEntries(undefined, [H]), new Map());
  assert.deepEqual(readEcrEntries(enc('{"auths":null}'), [H]), new Map());
});

Deno.test("what cannot be edited safely is refused without echoing the content", async (t) => {
  const withByte = (before: string, byte: number, after: string) =>
    new Uint8Array([...enc(before), byte, ...enc(after)]);
  const cases: [string, Uint8Array | string, RegExp][] = [
    [
      "a byte that is not UTF-8 in another registry's password",
      withByte(`{"auths":{"q.io":{"password":"${LEAK}`, 0xe9, '"}}}'),
      /not UTF-8 text/,
    ],
    ["a UTF-8 BOM (the kubelet refuses it too)", "\ufeff{}", /not valid JSON.*line 1, column 1/],
    [
      "two top-level auths (the kubelet merges them)",
      `{"auths":{"ghcr.io":{"password":"${LEAK}"}},"auths":{"quay.io":{}}}`,
      /2 top-level "auths" keys.*merge them into one/,
    ],
    [
      "auths spelled in another case (Go reads it as auths)",
      `{"Auths":{"ghcr.io":{"password":"${LEAK}"}}}`,
      /spells its "auths" key as "Auths".*rename it/,
    ],
    [
      "auths spelled with a long s (Go folds it to auths)",
      '{"auth\u017f":{}}',
      /spells its "auths" key/,
    ],
    [
      "auths written with an escape, twice",
      '{"auths":{},"\\u0061uths":{}}',
      /2 top-level "auths" keys/,
    ],
    [
      "the ECR host twice under auths (the kubelet uses the last one)",
      `{"auths":{"${H}":{"password":"${LEAK}"},"${H}":{}}}`,
      /2 entries for 123456789012\.dkr\.ecr\.us-west-2\.amazonaws\.com.*delete all but one/,
    ],
    ["not JSON", `{"auths": ${LEAK}}`, /not valid JSON: expected a value at line 1, column 11/],
    ["truncated", `{"auths":{"q.io":{"password":"${LEAK}`, /unterminated string/],
    ["trailing comma", `{"auths":{},"x":"${LEAK}",}`, /expected a string key/],
    ["a comment", `{"auths":{} /* ${LEAK} */}`, /expected "}"|expected ","/],
    ["single quotes", `{'auths':'${LEAK}'}`, /expected a string key/],
    ["a leading zero", '{"n":01}', /expected ","/],
    ["NaN", '{"n":NaN}', /expected a value/],
    ["a raw newline inside a string", `{"x":"${LEAK}\n"}`, /control character.*line 1/],
    ["an invalid escape", `{"x":"\\x41${LEAK}"}`, /invalid escape/],
    ["data after the document", `{}{"x":"${LEAK}"}`, /unexpected data after/],
    ["error position on a later line", '{\n  "auths": {\n    "q.io": x\n}}', /line 3, column 13/],
    ["nested too deep", "[".repeat(600) + "]".repeat(600), /nested deeper than 512/],
    ["a JSON array", `["${LEAK}"]`, /is a JSON array; must be a JSON object like \{"auths":\{\}\}/],
    ["a JSON string", JSON.stringify(LEAK), /is a JSON string/],
    ["a JSON number", "42", /is a JSON number/],
    ["JSON null", "null", /is JSON null/],
    ["auths a string", JSON.stringify({ auths: LEAK }), /has auths of type string/],
    ["auths an array", JSON.stringify({ auths: [LEAK] }), /has auths of type array/],
    ["auths a number", '{"auths":1}', /has auths of type number/],
  ];
  for (const [name, raw, message] of cases) {
    await t.step(name, () => {
      const bytes = typeof raw === "string" ? enc(raw) : raw;
      for (const fn of [() => setEcrEntries(bytes, P), () => readEcrEntries(bytes, [H])]) {
        assert.throws(fn, (err: unknown) => {
          assert.ok(err instanceof DockerConfigError, String(err));
          assert.match(err.message, message);
          assert.ok(!err.message.includes(LEAK.slice(0, 8)), err.message);
          return true;
        });
      }
    });
  }
});

Deno.test("decodeDockerConfig keeps a valid document's bytes exactly", () => {
  const bytes = enc('{"auths":{"é":{}}} ');
  assert.deepEqual(enc(decodeDockerConfig(bytes)!), bytes);
  assert.equal(decodeDockerConfig(undefined), undefined);
});
