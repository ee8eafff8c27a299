/**
 * What of tests/smoke/smoke.sh can run without kind and Docker, run against a
 * real API server: its kustomization renders without warnings (CronJob
 * suspended, image tag `smoke`), `--install` applies it, moto's TLS Secret and
 * the CA ConfigMap for real, and the Job `--job` prints passes a server-side
 * dry run with the hostAliases, CA mount and DENO_CERT the smoke run relies
 * on. The smoke CA really signed moto's certificate for the names the sandbox
 * allows. (The image, kind, moto's pod and the Jobs' pods first run on a
 * hosted runner: ci.yml, release.yml.)
 */

import assert from "node:assert/strict";
import { kubectl, startTestEnv, type TestEnv } from "../testenv/env.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const SMOKE = `${REPO}tests/smoke/smoke.sh`;
const AWS_NAMES = [
  "api.ecr.us-west-2.amazonaws.com",
  "sts.us-west-2.amazonaws.com",
  "sts.amazonaws.com",
];

async function smoke(env: TestEnv, args: string[]) {
  const out = await new Deno.Command("bash", {
    args: [SMOKE, ...args],
    env: {
      KUBECONFIG: env.kubeconfig,
      PATH: `${env.kubectl.slice(0, env.kubectl.lastIndexOf("/"))}:${Deno.env.get("PATH")}`,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.equal(out.code, 0, `smoke.sh ${args.join(" ")}:\n${decode(out.stderr)}`);
  return decode(out.stdout);
}

async function openssl(args: string[]): Promise<string> {
  const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
    .output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.equal(out.code, 0, decode(out.stderr));
  return decode(out.stdout);
}

Deno.test("smoke: the cluster-side parts of tests/smoke/smoke.sh are accepted by the API server", async (t) => {
  const env = await startTestEnv({ log: () => {} });
  try {
    const work = await Deno.makeTempDir({ dir: env.dir, prefix: "smoke-" });

    await t.step("kubectl kustomize tests/smoke renders without warnings", async () => {
      const out = await new Deno.Command(env.kubectl, {
        args: ["kustomize", `${REPO}tests/smoke`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0);
      assert.equal(new TextDecoder().decode(out.stderr), "");
      const yaml = new TextDecoder().decode(out.stdout);
      assert.match(yaml, /^ {2}suspend: true$/m);
      assert.match(yaml, /image: ghcr\.io\/deft\/kubeecr:smoke$/m);
    });

    await t.step("--install applies the installation, moto and the test PKI", async () => {
      await smoke(env, ["--install", work]);
      const cronjob = JSON.parse(
        await kubectl(env, ["-n", "kubeecr", "get", "cronjob", "kubeecr", "-o", "json"]),
      );
      assert.equal(cronjob.spec.suspend, true);
      for (
        const [ns, kind, name] of [
          ["kubeecr-smoke-aws", "deployment", "moto"],
          ["kubeecr-smoke-aws", "service", "moto"],
          ["kubeecr-smoke-aws", "secret", "moto-tls"],
          ["kubeecr", "configmap", "kubeecr-smoke-ca"],
          ["kubeecr", "secret", "kubeecr-aws-secrets"],
        ]
      ) await kubectl(env, ["-n", ns, "get", kind, name, "-o", "name"]);
      // Applying again (what a re-run against a kept cluster does) changes nothing.
      const again = await kubectl(env, ["apply", "--dry-run=server", "-k", `${REPO}tests/smoke`]);
      assert.ok(!again.includes("created"), again);
    });

    await t.step(
      "moto's certificate is the smoke CA's, for the names the sandbox allows",
      async () => {
        await openssl(["verify", "-CAfile", `${work}/ca.crt`, `${work}/tls.crt`]);
        const text = await openssl([
          "x509",
          "-in",
          `${work}/tls.crt`,
          "-noout",
          "-ext",
          "subjectAltName",
        ]);
        const net: string[] = JSON.parse(await Deno.readTextFile(`${REPO}deno.json`)).permissions
          .cronjob.net;
        for (const name of AWS_NAMES) {
          assert.ok(text.includes(`DNS:${name}`), name);
          assert.ok(net.includes(`${name}:443`), `${name}:443 is in the cronjob sandbox`);
        }
      },
    );

    await t.step(
      "the smoke Job passes a server-side dry run with what the run relies on",
      async () => {
        const manifest = await smoke(env, ["--job", "smoke-refresh"]);
        const job = JSON.parse(
          await kubectl(env, ["create", "--dry-run=server", "-o", "json", "-f", "-"], manifest),
        );
        const ip = (await kubectl(env, [
          "-n",
          "kubeecr-smoke-aws",
          "get",
          "service",
          "moto",
          "-o",
          "jsonpath={.spec.clusterIP}",
        ])).trim();
        const pod = job.spec.template.spec;
        const container = pod.containers[0];
        assert.equal(job.metadata.namespace, "kubeecr");
        assert.equal(job.spec.backoffLimit, 0);
        assert.deepEqual(pod.hostAliases, [{ ip, hostnames: AWS_NAMES }]);
        assert.equal(container.image, "ghcr.io/deft/kubeecr:smoke");
        assert.equal(container.imagePullPolicy, "IfNotPresent");
        assert.equal(container.securityContext.readOnlyRootFilesystem, true);
        assert.equal(pod.securityContext.runAsUser, 65532);
        const denoCert = container.env.find((e: { name: string }) => e.name === "DENO_CERT");
        assert.equal(denoCert?.value, "/etc/kubeecr-smoke/ca.crt");
        const mount = container.volumeMounts.find((m: { name: string }) => m.name === "smoke-ca");
        assert.equal(mount?.mountPath, "/etc/kubeecr-smoke");
        const volume = pod.volumes.find((v: { name: string }) => v.name === "smoke-ca");
        assert.equal(volume?.configMap?.name, "kubeecr-smoke-ca");
        // The owner reference the real `create job --from` sets.
        assert.equal(job.metadata.ownerReferences?.[0]?.kind, "CronJob");
      },
    );
  } finally {
    await env.stop();
  }
});
