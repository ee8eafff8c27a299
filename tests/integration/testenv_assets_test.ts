/**
 * A misconfigured asset path fails in one line that names the variable and
 * the missing file, before anything is built or started.
 */

import assert from "node:assert/strict";

const main = new URL("../testenv/main.ts", import.meta.url).pathname;

async function testenvWith(env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

const cases = [
  {
    variable: "KUBEBUILDER_ASSETS",
    value: "/nonexistent/kubebuilder/bin",
    names: "etcd not found at /nonexistent/kubebuilder/bin/etcd",
  },
  {
    variable: "TEST_ASSET_KUBE_APISERVER",
    value: "/nonexistent/kube-apiserver",
    names: "kube-apiserver not found at /nonexistent/kube-apiserver",
  },
  {
    variable: "TEST_ASSET_KUBECTL",
    value: "/etc",
    names: "/etc is not an executable file",
  },
];

for (const c of cases) {
  Deno.test(`a bad ${c.variable} gives a one-line error naming it`, async () => {
    const { code, stdout, stderr } = await testenvWith({ [c.variable]: c.value });
    assert.equal(code, 2);
    assert.equal(stdout, "");
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 1, stderr);
    assert.ok(lines[0].startsWith(`testenv: ${c.variable}=${c.value}: `), lines[0]);
    assert.ok(lines[0].includes(c.names), lines[0]);
  });
}
