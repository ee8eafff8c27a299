/**
 * Regression test for a process abort: under Deno 2.9, client-node's default
 * HTTP/2 crashes the whole process when the API server sends GOAWAY (it does
 * on shutdown and, with --goaway-chance, at random). lib/kube.ts pins
 * HTTP/1.1; this proves a run survives the server going away.
 */

import assert from "node:assert/strict";

Deno.test("the Kubernetes client survives the API server shutting down under it", async () => {
  const fixture = new URL("./fixtures/goaway.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", fixture] }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `exit ${out.code}, signal ${out.signal}: ${stderr.slice(-500)}`);
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "survived");
});
