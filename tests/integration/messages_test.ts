/**
 * Messages that say what is wrong and what to do, for what goes wrong on the
 * Kubernetes side (issue 8, item 7): a kubeconfig that cannot be parsed or
 * names no context, an exec-plugin user, a --namespace that does not exist,
 * a --selector the server rejects, a namespace being deleted. Each runs the
 * CLI as a user does against the real API server.
 */

import assert from "node:assert/strict";
import { freshNamespace, kubectl, testEnv, writeKubeconfig } from "../testenv/connect.ts";
import {
  createSecret,
  execPluginKubeconfig,
  KUBECONFIG_CANARY,
  pluginUserToken,
  runKubeecr,
} from "./cli.ts";

const env = await testEnv();
const JSON_LOG = ["--log-format=json"];

const errorOf = (run: { lines: Record<string, unknown>[] }) =>
  run.lines.find((l) => l.level === "error");

Deno.test("a kubeconfig with a YAML error is reported by path, line and column, never its content", async () => {
  const good = await Deno.readTextFile(await writeKubeconfig(env, env.admin));
  // A token on line 3 and a syntax error two lines below it: js-yaml's own
  // message would quote both, with the client-key-data around them.
  const lines = good.split("\n");
  const users = lines.indexOf("users:");
  lines.splice(users + 3, 0, `    token: ${KUBECONFIG_CANARY}`, "    bad: [unclosed");
  const path = `${env.dir}/broken-kubeconfig.yaml`;
  await Deno.writeTextFile(path, lines.join("\n"));

  const run = await runKubeecr(env, JSON_LOG, { env: { KUBECONFIG: path } });

  assert.equal(run.code, 2, run.stdout + run.stderr);
  const error = String(errorOf(run)?.error);
  assert.match(
    error,
    new RegExp(`^kubeconfig ${path} is not valid YAML at line \\d+, column \\d+: `),
  );
  assert.ok(!run.stdout.includes(KUBECONFIG_CANARY), run.stdout);
  assert.ok(!run.stdout.includes("client-key-data"), run.stdout);
});

Deno.test("a kubeconfig without current-context says so and names --context", async () => {
  const path = await writeKubeconfig(env, env.admin);
  const text = await Deno.readTextFile(path);
  await Deno.writeTextFile(path, text.replace(/^current-context: .*$/m, ""));

  const run = await runKubeecr(env, JSON_LOG, { env: { KUBECONFIG: path } });

  assert.equal(run.code, 2, run.stdout + run.stderr);
  assert.match(
    String(errorOf(run)?.error),
    /has no current-context; pick one of its contexts \(kubeecr-testenv\) with --context <name>/,
  );
});

Deno.test("an exec-plugin user: the message gives the exact command, and that command works", async () => {
  const ns = await freshNamespace(env, "exec");
  await createSecret(env, ns, { name: "pull", registries: "123456789012/us-west-2" });
  // The plugin hands out a real token of a ServiceAccount allowed to do the job.
  const token = await pluginUserToken(env, ns);
  const plugin = `${env.dir}/${ns}-get-token`;
  await Deno.writeTextFile(
    plugin,
    `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",` +
      `"status":{"token":"${token}"}}'\n`,
    { mode: 0o755 },
  );
  const path = await execPluginKubeconfig(env, plugin);

  const refused = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], {
    env: { KUBECONFIG: path },
  });
  assert.equal(refused.code, 2, refused.stdout + refused.stderr);
  const command = `deno run -P=local --allow-run=${plugin} main.ts`;
  assert.ok(String(errorOf(refused)?.error).includes(command), refused.stdout);

  const allowed = await runKubeecr(env, ["--namespace", ns, "--dry-run", ...JSON_LOG], {
    env: { KUBECONFIG: path },
    denoFlags: [`--allow-run=${plugin}`],
  });
  assert.equal(allowed.code, 0, allowed.stdout + allowed.stderr);
  assert.ok(allowed.lines.some((l) => l.msg === "would refresh"), allowed.stdout);
  assert.ok(!allowed.stdout.includes(token));
});

Deno.test("--namespace naming a namespace that does not exist is a warning naming it", async () => {
  const ns = await freshNamespace(env, "exists");
  const missing = `${ns}-typo`;

  const run = await runKubeecr(env, ["--namespace", `${ns},${missing}`, ...JSON_LOG]);

  assert.equal(run.code, 0, run.stdout + run.stderr);
  const warnings = run.lines.filter((l) => l.level === "warn");
  assert.deepEqual(warnings.map((w) => [w.msg, w.namespace]), [
    ["namespace does not exist", missing],
  ]);
});

Deno.test("an invalid --selector exits 2 naming --selector", async () => {
  const run = await runKubeecr(env, ["--selector", "team in (web", ...JSON_LOG]);

  assert.equal(run.code, 2, run.stdout + run.stderr);
  const error = errorOf(run);
  assert.match(
    String(error?.error),
    /^--selector "team in \(web" was rejected by the API server: /,
  );
  assert.doesNotMatch(String(error?.msg), /cannot use the Kubernetes API/);
});

Deno.test("a Secret in a namespace being deleted: the message says the namespace is being deleted", async () => {
  const ns = await freshNamespace(env, "terminating");
  await createSecret(env, ns, { name: "typo", registries: "12345/us-west-2" });
  // The controller-manager's namespace controller would delete the Secret and
  // then the namespace: a finalizer of the test's own keeps both while the run
  // looks (the namespace stays Terminating until it is removed).
  const hold = ["-n", ns, "patch", "secret", "typo", "--type=merge", "-p"];
  await kubectl(env, [...hold, '{"metadata":{"finalizers":["kubeecr.test/hold"]}}']);
  await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);

  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG]);
  await kubectl(env, [...hold, '{"metadata":{"finalizers":null}}']);

  assert.equal(run.code, 1, run.stdout + run.stderr);
  const warn = run.lines.find((l) => l.msg === "cannot record event");
  assert.match(String(warn?.error), new RegExp(`namespace ${ns} is being deleted`));
  assert.doesNotMatch(String(warn?.error), /grant the kubeecr identity/);
});

Deno.test("insecure-skip-tls-verify: the message gives the flag that works, and it works", async () => {
  const path = await writeKubeconfig(env, env.admin);
  const text = await Deno.readTextFile(path);
  await Deno.writeTextFile(
    path,
    text.replace(/certificate-authority-data: .*/, "insecure-skip-tls-verify: true"),
  );
  const args = ["--request-timeout", "2s", "--dry-run", "--namespace", "default", ...JSON_LOG];

  const refused = await runKubeecr(env, args, { env: { KUBECONFIG: path } });
  assert.equal(refused.code, 2, refused.stdout + refused.stderr);
  const host = new URL(env.server).hostname;
  assert.ok(
    String(errorOf(refused)?.error).includes(`--unsafely-ignore-certificate-errors=${host}`),
    refused.stdout,
  );

  const allowed = await runKubeecr(env, args, {
    env: { KUBECONFIG: path },
    denoFlags: [`--unsafely-ignore-certificate-errors=${host}`],
  });
  assert.equal(allowed.code, 0, allowed.stdout + allowed.stderr);
});
