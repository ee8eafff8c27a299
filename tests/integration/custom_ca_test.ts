/**
 * Custom CA bundles for the AWS side (issue 14, item 5): an https ECR
 * endpoint whose certificate comes from a CA of the test's own, as behind a
 * TLS-inspecting corporate proxy. AWS_CA_BUNDLE, NODE_EXTRA_CA_CERTS and
 * DENO_CERT must each make it trusted under -P=local (the in-cluster test
 * proves the same under -P=cronjob), and without any of them the failure
 * must say it is a certificate problem, not a sandbox refusal.
 */

import assert from "node:assert/strict";
import { freshNamespace, testEnv } from "../testenv/connect.ts";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { startFaultProxy } from "../testenv/fault_proxy.ts";
import { createCa, servingCert } from "../testenv/pki.ts";
import { createSecret, dockerConfigOf, hostOf, readSecret, runKubeecr, summaryOf } from "./cli.ts";

const env = await testEnv();
const ITEM = "123456789012/us-west-2";

Deno.test("an https ECR endpoint signed by a custom CA: trusted through AWS_CA_BUNDLE, NODE_EXTRA_CA_CERTS or DENO_CERT", async (t) => {
  const pki = await Deno.makeTempDir({ dir: env.dir, prefix: "custom-ca-" });
  const ca = await createCa(pki, "kubeecr-corporate-ca");
  const serving = await servingCert(pki, "ecr", ["DNS:localhost", "IP:127.0.0.1"], ca);
  await using ecr = startEcrProxy(env.motoUrl);
  await using front = startFaultProxy({ upstream: ecr.url, flavor: "aws", tls: serving });
  const endpoint = front.url.replace("127.0.0.1", "localhost");
  const ns = await freshNamespace(env, "custom-ca");
  await createSecret(env, ns, { name: "pull", registries: ITEM });

  const cases: [string, Record<string, string | undefined>][] = [
    ["AWS_CA_BUNDLE", { AWS_CA_BUNDLE: ca.cert }],
    ["NODE_EXTRA_CA_CERTS", { NODE_EXTRA_CA_CERTS: ca.cert }],
    ["DENO_CERT", { DENO_CERT: ca.cert }],
  ];
  for (const [name, vars] of cases) {
    await t.step(name, async () => {
      const calls = ecr.tokenCalls();
      const run = await runKubeecr(env, ["--log-format=json", "--namespace", ns, "--force"], {
        aws: { AWS_ENDPOINT_URL_ECR: endpoint },
        env: vars,
      });
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.equal(summaryOf(run).refreshed, 1);
      assert.equal(ecr.tokenCalls(), calls + 1, "ECR answered through the TLS front");
      const config = dockerConfigOf(await readSecret(env, ns, "pull"));
      assert.deepEqual(Object.keys(config.auths), [hostOf(ITEM)]);
    });
  }

  await t.step("no bundle: a certificate problem, said as such, not retried", async () => {
    const run = await runKubeecr(env, ["--log-format=json", "--namespace", ns, "--force"], {
      aws: { AWS_ENDPOINT_URL_ECR: endpoint },
    });
    assert.equal(run.code, 1, run.stdout + run.stderr);
    const failed = run.lines.find((l) => l.msg === "failed");
    const error = String(failed?.error);
    assert.doesNotMatch(error, /sandbox/, error);
    assert.match(error, /certificate/i, error);
    assert.match(error, /AWS_CA_BUNDLE/, "says which variable fixes it");
  });

  await t.step(
    "an unreadable AWS_CA_BUNDLE stops the run before any Secret, naming it",
    async () => {
      const missing = `${pki}/no-such-bundle.pem`;
      const run = await runKubeecr(env, ["--log-format=json", "--namespace", ns, "--force"], {
        aws: { AWS_ENDPOINT_URL_ECR: endpoint },
        env: { AWS_CA_BUNDLE: missing },
      });
      assert.equal(run.code, 2, run.stdout + run.stderr);
      const error = String(run.lines.find((l) => l.level === "error")?.error);
      assert.match(error, new RegExp(`cannot read AWS_CA_BUNDLE=${missing}: no such file`));
    },
  );
});
