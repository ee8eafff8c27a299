/**
 * Issue 3's bad input, against the real environment: each case says what is
 * wrong and what a valid value looks like, leaves the Secret as it was,
 * does not stop the other Secrets of the run, and ends with the right exit
 * code and Warning event.
 *
 * The two races (a Secret deleted between list and write, a concurrent write
 * between read and write) cannot be timed deterministically against a real
 * API server from outside the process; tests/unit/pipeline_test.ts drives
 * them through a store double instead.
 */

import assert from "node:assert/strict";
import type * as k8s from "@kubernetes/client-node";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { freshNamespace, kubectl, testEnv, writeKubeconfig } from "../testenv/connect.ts";
import { freePort } from "../testenv/util.ts";
import {
  type CliResult,
  createSecret,
  dockerConfigOf,
  eventsFor,
  hostOf,
  linesAbout,
  readSecret,
  runKubeecr,
  summaryOf,
} from "./cli.ts";

const env = await testEnv();
const JSON_LOG = ["--log-format=json"];
const VALID = "123456789012/us-west-2";

/** Every message about a bad annotation shows the valid form. */
const VALID_FORM = ["<12-digit account>/<region>", "e.g. 123456789012/us-west-2"];

/** Asserts the Secret was not written: same resourceVersion, same bytes. */
async function assertUntouched(before: k8s.V1Secret) {
  const after = await readSecret(env, before.metadata!.namespace!, before.metadata!.name!);
  assert.equal(after.metadata!.resourceVersion, before.metadata!.resourceVersion);
  assert.deepEqual(after.data, before.data);
  assert.deepEqual(after.metadata!.annotations, before.metadata!.annotations);
}

/** Asserts the one "failed" log line and the one Warning event of a Secret, and their words. */
async function assertFailure(
  run: CliResult,
  secret: k8s.V1Secret,
  reason: string,
  words: string[],
) {
  const { namespace, name } = secret.metadata!;
  const lines = linesAbout(run, namespace!, name!);
  assert.equal(lines.length, 1, JSON.stringify(lines));
  assert.equal(lines[0].msg, "failed");
  assert.equal(lines[0].reason, reason);
  const warnings = (await eventsFor(env, secret)).filter((e) => e.type === "Warning");
  assert.equal(warnings.length, 1, JSON.stringify(warnings));
  assert.equal(warnings[0].reason, reason);
  for (const word of words) {
    assert.ok(String(lines[0].error).includes(word), `log line lacks ${word}: ${lines[0].error}`);
    assert.ok(warnings[0].message!.includes(word), `event lacks ${word}: ${warnings[0].message}`);
  }
}

/** The valid neighbour of a bad Secret was refreshed in the same run. */
async function assertRefreshed(namespace: string, name: string, item = VALID) {
  const auths = dockerConfigOf(await readSecret(env, namespace, name)).auths;
  assert.ok(auths[hostOf(item)]?.password, `${namespace}/${name} was refreshed`);
}

Deno.test("malformed annotation values fail only their own Secret with InvalidAnnotation and exit 1", async (t) => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "bad-annotation");
  const cases: { name: string; value: string; words: string[] }[] = [
    { name: "empty", value: "", words: ["empty"] },
    {
      name: "eleven-digits",
      value: "12345678901/us-west-2",
      words: ['"12345678901"', "12 digits"],
    },
    { name: "non-digits", value: "12345678901x/us-west-2", words: ["only digits"] },
    { name: "missing-region", value: "123456789012", words: ["region is missing"] },
    { name: "unknown-region", value: "123456789012/uswest2", words: ['"uswest2"', "region name"] },
    { name: "trailing-slash", value: "123456789012/us-west-2/", words: ["trailing slash"] },
    {
      name: "one-bad-item",
      value: "123456789012/us-west-2, 1234/eu-west-1",
      words: ['"1234/eu-west-1"', "12 digits"],
    },
  ];
  const bad = await Promise.all(
    cases.map((c) => createSecret(env, ns, { name: c.name, registries: c.value })),
  );
  await createSecret(env, ns, { name: "valid", registries: VALID });

  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });

  assert.equal(run.code, 1, run.stdout + run.stderr);
  await assertRefreshed(ns, "valid");
  assert.equal(summaryOf(run).failed, cases.length);
  for (const [i, c] of cases.entries()) {
    await t.step(`${c.name}: ${JSON.stringify(c.value)}`, async () => {
      await assertUntouched(bad[i]);
      await assertFailure(run, bad[i], "InvalidAnnotation", [
        "deft.com/kubeecr",
        ...c.words,
        ...VALID_FORM,
      ]);
    });
  }
});

Deno.test("an annotated Secret of the wrong type or with an unusable .dockerconfigjson is left byte-identical", async (t) => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "bad-secret");
  const fix = ['must be a JSON object like {"auths":{}}'];
  const cases: { name: string; reason: string; words: string[]; spec: object }[] = [
    {
      name: "opaque",
      reason: "InvalidSecretType",
      words: ["kubernetes.io/dockerconfigjson", "kubectl create secret docker-registry"],
      spec: { type: "Opaque", dockerConfig: '{"auths":{}}' },
    },
    {
      name: "auths-string",
      reason: "InvalidDockerConfig",
      words: ["auths of type string", ...fix],
      spec: { dockerConfig: '{"auths":"ghcr.io"}' },
    },
    {
      name: "json-null",
      reason: "InvalidDockerConfig",
      words: ["JSON null", ...fix],
      spec: { dockerConfig: "null" },
    },
  ];
  const bad = await Promise.all(
    cases.map((c) => createSecret(env, ns, { name: c.name, registries: VALID, ...c.spec })),
  );
  await createSecret(env, ns, { name: "valid", registries: VALID });

  // The wrong-type scan lists every other Secret's metadata: a diagnostic flag.
  const run = await runKubeecr(env, ["--namespace", ns, "--check-secret-types", ...JSON_LOG], {
    aws: ecr.awsEnv,
  });

  assert.equal(run.code, 1, run.stdout + run.stderr);
  await assertRefreshed(ns, "valid");
  for (const [i, c] of cases.entries()) {
    await t.step(c.name, async () => {
      await assertUntouched(bad[i]);
      await assertFailure(run, bad[i], c.reason, c.words);
    });
  }
});

Deno.test("the API server itself refuses a .dockerconfigjson that is not JSON or a JSON array (unit tests cover them)", async () => {
  const ns = await freshNamespace(env, "server-validates");
  for (const raw of ["{not json", '[{"auths":{}}]']) {
    await assert.rejects(
      createSecret(env, ns, { name: "x", registries: VALID, dockerConfig: raw }),
      (err: { code?: number }) => err.code === 422,
      raw,
    );
  }
});

Deno.test("a namespace the identity may not read is reported by name, the allowed one is refreshed, exit 1", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const [allowed, forbidden] = await Promise.all([
    freshNamespace(env, "rbac-allowed"),
    freshNamespace(env, "rbac-forbidden"),
  ]);
  await kubectl(env, ["-n", allowed, "create", "serviceaccount", "kubeecr"]);
  await kubectl(env, [
    "-n",
    allowed,
    "create",
    "role",
    "kubeecr",
    "--verb=list,get,patch",
    "--resource=secrets",
  ]);
  await kubectl(env, [
    "-n",
    allowed,
    "patch",
    "role",
    "kubeecr",
    "--type=json",
    '-p=[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["events"],"verbs":["create"]}}]',
  ]);
  await kubectl(env, [
    "-n",
    allowed,
    "create",
    "rolebinding",
    "kubeecr",
    "--role=kubeecr",
    `--serviceaccount=${allowed}:kubeecr`,
  ]);
  const token = (await kubectl(env, ["-n", allowed, "create", "token", "kubeecr"])).trim();
  const kubeconfig = await writeKubeconfig(env, { token });
  await createSecret(env, allowed, { name: "pull", registries: VALID });
  const unreachable = await createSecret(env, forbidden, { name: "pull", registries: VALID });

  const run = await runKubeecr(
    env,
    ["--namespace", `${allowed},${forbidden}`, ...JSON_LOG],
    { aws: ecr.awsEnv, env: { KUBECONFIG: kubeconfig } },
  );

  assert.equal(run.code, 1, run.stdout + run.stderr);
  await assertRefreshed(allowed, "pull");
  await assertUntouched(unreachable);
  const about = run.lines.filter((l) => l.namespace === forbidden);
  assert.equal(about.length, 1, run.stdout);
  assert.equal(about[0].level, "error");
  const error = String(about[0].error);
  for (const word of [forbidden, "403", "forbidden", "--namespace"]) {
    assert.ok(error.includes(word), `message lacks ${word}: ${error}`);
  }
  assert.equal(summaryOf(run)["failed-namespaces"], 1);
  assert.equal(summaryOf(run).refreshed, 1);
});

Deno.test("no AWS credentials at all: exit 2, the message says how to provide them, the Secret is untouched", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "no-creds");
  const before = await createSecret(env, ns, { name: "pull", registries: VALID });
  const empty = await Deno.makeTempFile({ dir: env.dir, prefix: "aws-empty-" });

  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], {
    aws: {
      ...ecr.awsEnv,
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_CONFIG_FILE: empty,
      AWS_SHARED_CREDENTIALS_FILE: empty,
    },
  });

  assert.equal(run.code, 2, run.stdout + run.stderr);
  await assertUntouched(before);
  const errors = run.lines.filter((l) => l.level === "error").map((l) => String(l.error ?? ""));
  const said = errors.join("\n");
  for (const word of ["credentials", "AWS_ACCESS_KEY_ID", "kubeecr-aws-secrets", "IRSA"]) {
    assert.ok(said.includes(word), `no error line mentions ${word}:\n${run.stdout}`);
  }
  assert.equal(ecr.tokenCalls(), 0, "the SDK found nothing to sign with, so nothing was sent");
});

Deno.test("an ECR error fails that region's Secret with RefreshFailed naming the AWS error, other regions still refresh", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  ecr.fail(
    "eu-west-1",
    "AccessDeniedException",
    "not authorized to perform ecr:GetAuthorizationToken",
  );
  const ns = await freshNamespace(env, "ecr-error");
  const denied = await createSecret(env, ns, {
    name: "denied",
    registries: "123456789012/eu-west-1",
  });
  await createSecret(env, ns, { name: "allowed", registries: VALID });

  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });

  assert.equal(run.code, 1, run.stdout + run.stderr);
  await assertUntouched(denied);
  await assertFailure(run, denied, "RefreshFailed", ["AccessDeniedException", "eu-west-1"]);
  await assertRefreshed(ns, "allowed");
});

Deno.test("a bad flag stops the run before it starts with exit 2 and a message naming the flag", async (t) => {
  const cases: { args: string[]; words: string[] }[] = [
    { args: ["--bogus"], words: ["unknown flag", "--bogus", "--help"] },
    {
      args: ["--refresh-window", "banana"],
      words: ["--refresh-window", '"banana"', "like 90m, 6h"],
    },
    { args: ["--refresh-window=13h"], words: ["--refresh-window", "less than 12h"] },
  ];
  for (const c of cases) {
    await t.step(c.args.join(" "), async () => {
      const run = await runKubeecr(env, c.args);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      for (const word of c.words) assert.ok(run.stderr.includes(word), `${word}: ${run.stderr}`);
      assert.equal(run.stdout, "");
    });
  }
});

Deno.test("a kubeconfig pointing at a closed port exits 2 saying the Kubernetes API did not answer", async () => {
  const kubeconfig = await writeKubeconfig(env, env.admin, `https://127.0.0.1:${freePort()}`);

  const run = await runKubeecr(env, [...JSON_LOG], { env: { KUBECONFIG: kubeconfig } });

  assert.equal(run.code, 2, run.stdout + run.stderr);
  const error = run.lines.find((l) => l.level === "error");
  assert.ok(error, run.stdout);
  assert.match(String(error.msg), /Kubernetes API/);
  assert.match(String(error.error), /no answer/);
});

Deno.test("a kubeconfig that cannot be used exits 2 naming the file or the context", async (t) => {
  const cases = [
    {
      name: "missing file",
      args: ["--kubeconfig", `${env.dir}/no-such-kubeconfig`],
      says: [`cannot read kubeconfig ${env.dir}/no-such-kubeconfig`, "no such file"],
    },
    {
      name: "unknown context",
      args: ["--kubeconfig", env.kubeconfig, "--context", "staging"],
      says: ['context "staging" is not in', "contexts there: kubeecr-testenv", "--context"],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const run = await runKubeecr(env, [...c.args, ...JSON_LOG]);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      const error = String(run.lines.find((l) => l.level === "error")?.error);
      for (const phrase of c.says) {
        assert.ok(error.toLowerCase().includes(phrase.toLowerCase()), error);
      }
    });
  }
});

Deno.test("a Warning repeated run after run is one Event with a count, not one object per run", async () => {
  const ns = await freshNamespace(env, "repeat");
  const bad = await createSecret(env, ns, { name: "typo", registries: "12345/us-west-2" });

  for (let i = 0; i < 3; i++) {
    const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
  }

  const events = await eventsFor(env, bad);
  assert.deepEqual(
    events.map((e) => [e.type, e.reason, e.count]),
    [["Warning", "InvalidAnnotation", 3]],
  );
  const [event] = events;
  assert.ok(
    new Date(event.lastTimestamp!).getTime() >= new Date(event.firstTimestamp!).getTime(),
  );
});
