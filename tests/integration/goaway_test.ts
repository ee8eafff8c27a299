/**
 * Regression test for a process abort: under Deno 2.9, client-node's HTTP/2
 * (nghttp2 in Deno's node layer) crashed the whole process when the API
 * server sent GOAWAY, as it does on shutdown. KubeECR now speaks through
 * Deno's native fetch; this proves a run survives the server going away under
 * open, pooled connections.
 */

import assert from "node:assert/strict";

Deno.test("the Kubernetes client survives the API server shutting down under it", async () => {
  const fixture = new URL("./fixtures/goaway.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", fixture] }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `exit ${out.code}, signal ${out.signal}: ${stderr.slice(-500)}`);
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "survived");
});
