/**
 * Hostile kubeconfig exec plugins (issue 14, item 7), each a shell script in
 * a temporary directory, run as README tells (`-P=local
 * --allow-run=<plugin>`): one that hangs, ignores SIGTERM and leaves a child
 * holding stdout; one that prints 300 MB; one whose stderr carries a
 * credential; ones whose expirationTimestamp is unusable. None may keep the
 * run alive past --timeout, fill memory, leak, or be run once per request.
 */

import assert from "node:assert/strict";
import { freshNamespace, testEnv } from "../testenv/connect.ts";
import {
  createSecret,
  execPluginKubeconfig,
  pluginUserToken,
  runKubeecr,
  summaryOf,
} from "./cli.ts";

const env = await testEnv();
const JSON_LOG = ["--log-format=json"];

/** A kubeconfig whose user runs `script` (a shell script written to a temp dir). */
async function pluginKubeconfig(script: string) {
  const dir = await Deno.makeTempDir({ dir: env.dir, prefix: "plugin-" });
  const plugin = `${dir}/get-token`;
  await Deno.writeTextFile(plugin, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  const path = await execPluginKubeconfig(env, plugin);
  return { plugin, dir, kubeconfig: path };
}

const errorOf = (run: { lines: Record<string, unknown>[] }) =>
  String(run.lines.find((l) => l.level === "error")?.error);

Deno.test("an exec plugin that hangs, ignores SIGTERM and leaves a child on stdout ends with --timeout", async () => {
  const ns = await freshNamespace(env, "plugin-hang");
  await createSecret(env, ns, { name: "pull", registries: "123456789012/us-west-2" });
  const p = await pluginKubeconfig(`trap '' TERM INT\n(/bin/sleep 60) &\n/bin/sleep 60`);
  const run = await runKubeecr(env, ["--namespace", ns, "--timeout", "5s", ...JSON_LOG], {
    env: { KUBECONFIG: p.kubeconfig },
    denoFlags: [`--allow-run=${p.plugin}`],
    killAfterMs: 40_000,
  });
  assert.equal(run.killed, false, "the run ended by itself");
  assert.ok(run.seconds < 9, `ended after ${run.seconds}s with --timeout 5s`);
  assert.equal(run.code, 2, run.stdout + run.stderr);
  assert.match(errorOf(run), /--timeout/);
});

Deno.test("an exec plugin printing 300 MB is stopped at 1 MiB, not buffered", async () => {
  const ns = await freshNamespace(env, "plugin-flood");
  const p = await pluginKubeconfig("/usr/bin/head -c 300000000 /dev/zero | /usr/bin/tr '\\0' 'x'");
  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], {
    env: { KUBECONFIG: p.kubeconfig },
    denoFlags: [`--allow-run=${p.plugin}`],
    killAfterMs: 60_000,
  });
  assert.equal(run.code, 2, run.stdout + run.stderr);
  assert.match(errorOf(run), /printed more than 1024 KiB and was killed/);
  assert.ok(run.seconds < 10, `took ${run.seconds}s`);
});

Deno.test("an exec plugin's stderr is shown as its first line, without what looks like a credential", async () => {
  const ns = await freshNamespace(env, "plugin-stderr");
  const secret = "sk-live-0123456789abcdefghijklmnopqrstuv";
  const p = await pluginKubeconfig(
    `echo "error: session token=${secret} expired" >&2\n` +
      `echo "refresh with password hunter2-hunter2" >&2\nexit 3`,
  );
  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], {
    env: { KUBECONFIG: p.kubeconfig },
    denoFlags: [`--allow-run=${p.plugin}`],
  });
  assert.equal(run.code, 2, run.stdout + run.stderr);
  const error = errorOf(run);
  assert.match(error, /failed \(exit 3\): error: session token \[REDACTED\]$/);
  assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret), run.stdout);
  assert.ok(!run.stdout.includes("hunter2"), "only the first line");
});

Deno.test("an unusable expirationTimestamp: the plugin runs once for the whole run, with a warning", async (t) => {
  const ns = await freshNamespace(env, "plugin-expiry");
  for (let i = 0; i < 12; i++) {
    await createSecret(env, ns, { name: `pull-${i}`, registries: "123456789012/us-west-2" });
  }
  const token = await pluginUserToken(env, ns);
  const soon = () => new Date(Date.now() + 10_000).toISOString();
  const cases: [string, () => string][] = [
    ["unparseable", () => "tomorrow"],
    ["past", () => "2020-01-01T00:00:00Z"],
    ["under 30 s away", soon],
  ];
  for (const [name, expiry] of cases) {
    await t.step(name, async () => {
      const p = await pluginKubeconfig(
        `echo run >> "\${0%/*}/runs"\n` +
          `echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",` +
          `"status":{"token":"${token}","expirationTimestamp":"${expiry()}"}}'`,
      );
      const run = await runKubeecr(env, ["--namespace", ns, "--dry-run", ...JSON_LOG], {
        env: { KUBECONFIG: p.kubeconfig },
        denoFlags: [`--allow-run=${p.plugin}`],
      });
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.equal(summaryOf(run).discovered, 12);
      const runs = (await Deno.readTextFile(`${p.dir}/runs`)).trim().split("\n").length;
      assert.equal(runs, 1, `the plugin ran ${runs} times`);
      const warning = run.lines.find((l) => l.level === "warn");
      assert.match(String(warning?.msg), /expirationTimestamp .* the token is used for the rest/);
      assert.ok(!run.stdout.includes(token));
    });
  }
});
