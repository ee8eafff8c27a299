// Reproduction of issue 8 against main's API (removed once fixed).
import assert from "node:assert/strict";
import { mergeDockerConfig } from "../../lib/dockerconfig.ts";
import { assess } from "../../lib/assess.ts";
const HOST = "123456789012.dkr.ecr.us-west-2.amazonaws.com";
const opts = { annotation: "a.io/ecr", now: new Date("2026-11-27T12:00:00Z"), refreshWindowMs: 6 * 3600_000, force: false };
Deno.test("big number kept", () => {
  const raw = '{"auths":{},"n":12345678901234567890}';
  assert.ok(mergeDockerConfig(raw, [{ host: HOST, password: "p" }]).includes("12345678901234567890"));
});
Deno.test("formatting kept", () => {
  const raw = '{\n  "auths": {\n    "ghcr.io": {"auth": "eDp5"}\n  },\n  "x": "\\u00e9"\n}';
  const out = mergeDockerConfig(raw, [{ host: HOST, password: "p" }]);
  assert.ok(out.startsWith('{\n  "auths": {\n    "ghcr.io": {"auth": "eDp5"}'), out);
});
Deno.test("non-UTF-8 byte kept (kube.ts decodes non-fatally)", () => {
  const bytes = new Uint8Array([...new TextEncoder().encode('{"auths":{"q.io":{"password":"'), 0xe9, ...new TextEncoder().encode('"}}}')]);
  const text = new TextDecoder().decode(bytes);
  const out = new TextEncoder().encode(mergeDockerConfig(text, [{ host: HOST, password: "p" }]));
  assert.ok(out.includes(0xe9), "0xE9 lost");
});
Deno.test("duplicate auths: ghcr.io survives", () => {
  const raw = '{"auths":{"ghcr.io":{"auth":"eDp5"}},"auths":{"quay.io":{"auth":"eDp5"}}}';
  assert.ok(mergeDockerConfig(raw, [{ host: HOST, password: "p" }]).includes("ghcr.io"));
});
Deno.test("auths null is empty", () => {
  mergeDockerConfig('{"auths":null}', [{ host: HOST, password: "p" }]);
});
Deno.test("replaced entry (GitOps re-apply) is due", () => {
  const a = assess({
    namespace: "n", name: "s", uid: "u", resourceVersion: "1", type: "kubernetes.io/dockerconfigjson",
    annotations: { "a.io/ecr": "123456789012/us-west-2", "kubeecr.deft.com/expires-at": "2026-11-27T23:00:00Z" },
    dockerConfig: JSON.stringify({ auths: { [HOST]: { auth: btoa("AWS:placeholder") } } }),
  }, opts);
  assert.equal(a.kind, "due");
});
Deno.test("another installation's expires-at is not ours", () => {
  // B (b.io/ecr, eu-west-1) wrote expires-at last; A's us-west-2 entry expires in 1h.
  const a = assess({
    namespace: "n", name: "s", uid: "u", resourceVersion: "1", type: "kubernetes.io/dockerconfigjson",
    annotations: { "a.io/ecr": "123456789012/us-west-2", "b.io/ecr": "123456789012/eu-west-1", "kubeecr.deft.com/expires-at": "2026-11-27T23:59:00Z" },
    dockerConfig: JSON.stringify({ auths: { [HOST]: { auth: btoa("AWS:a") }, "123456789012.dkr.ecr.eu-west-1.amazonaws.com": { auth: btoa("AWS:b") } } }),
  }, opts);
  assert.equal(a.kind, "due");
});
