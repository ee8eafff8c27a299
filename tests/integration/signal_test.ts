/**
 * SIGTERM and SIGINT during a slow run (issue 14, item 6): the fault proxy
 * holds every Secret write for a while, a real signal arrives while writes
 * are in flight. No new write may start after it; every write the API server
 * took must have its log line; the summary says interrupted=true; the run
 * ends well inside a pod's 30 s grace, exit 1.
 */

import assert from "node:assert/strict";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { freshNamespace, testEnv } from "../testenv/connect.ts";
import { fault, on, proxyKubeconfig, startKubeFaultProxy } from "../testenv/fault_proxy.ts";
import { createSecret, linesAbout, readSecret, runKubeecr, STATUS, summaryOf } from "./cli.ts";

const env = await testEnv();
const SECRETS = 8;
const HOLD_MS = 2_000;

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal} during slow writes: writes in flight finish and are logged, nothing new starts, summary interrupted=true`, async () => {
    const ns = await freshNamespace(env, `signal-${signal.toLowerCase()}`);
    for (let i = 0; i < SECRETS; i++) {
      await createSecret(env, ns, { name: `pull-${i}`, registries: "123456789012/us-west-2" });
    }
    await using ecr = startEcrProxy(env.motoUrl);
    await using api = startKubeFaultProxy(env);
    api.add({ match: on.secretPatch, fault: fault.delay(HOLD_MS) });
    const patches = () => api.count("PATCH", /\/secrets\//);

    const run = await runKubeecr(
      env,
      ["--log-format=json", "--namespace", ns, "--concurrency", "2"],
      {
        env: { KUBECONFIG: await proxyKubeconfig(env, api) },
        aws: ecr.awsEnv,
        signal: { name: signal, when: () => patches() >= 2 },
        killAfterMs: 60_000,
      },
    );

    assert.ok(run.signalledAt, "the signal was sent");
    assert.equal(run.killed, false, run.stdout);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    const after = (Date.now() - run.signalledAt!) / 1000;
    assert.ok(after < 10, `ended ${after}s after the signal`);
    const summary = summaryOf(run);
    assert.equal(summary.interrupted, true, JSON.stringify(summary));
    // Nothing started after the signal: only the writes already sent.
    assert.equal(patches(), 2, "no write started after the signal");
    // Every Secret the server holds a token for has its "refreshed" line,
    // and every other one a line saying it was not written.
    let written = 0;
    for (let i = 0; i < SECRETS; i++) {
      const secret = await readSecret(env, ns, `pull-${i}`);
      const lines = linesAbout(run, ns, `pull-${i}`).map((l) => String(l.msg));
      if (secret.metadata?.annotations?.[STATUS]) {
        written++;
        assert.deepEqual(lines, ["refreshed"], `pull-${i} was written`);
      } else {
        assert.deepEqual(lines, ["failed"], `pull-${i} was not written`);
      }
    }
    assert.equal(written, 2, run.stdout);
    assert.equal(summary.refreshed, 2);
    assert.equal(summary.failed, SECRETS - 2);
  });
}
