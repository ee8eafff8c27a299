/**
 * Issue 17, items 2 and 3, against the real API server: `public.ecr.aws` (ECR
 * Public, which the ECR proxy answers since moto has none) and complete
 * registry hosts (FIPS, dual-stack) are written under exactly those hosts,
 * with the calls counted where they arrive: one ECR Public call per run that
 * needs it, one ECR call per region whatever host form names it. The parser
 * and the admission policy agree on these items through the shared table
 * (tests/annotation_cases.ts, admission_test.ts); the sandbox's hosts are
 * tests/unit/sandbox_hosts_test.ts's.
 */

import assert from "node:assert/strict";
import { ECR_PUBLIC, publicSignatureProblem, startEcrProxy } from "../testenv/ecr_proxy.ts";
import { freshNamespace, testEnv } from "../testenv/connect.ts";
import {
  createSecret,
  dockerConfigOf,
  eventsFor,
  EXPIRES_AT,
  hostOf,
  linesAbout,
  readSecret,
  REFRESHED_AT,
  runKubeecr,
  STATUS,
  summaryOf,
} from "./cli.ts";

const env = await testEnv();
const JSON_LOG = ["--log-format=json"];

const PUBLIC = "public.ecr.aws";
const FIPS = "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com";
const DUAL = "123456789012.dkr-ecr.us-west-2.on.aws";

Deno.test("public.ecr.aws, a FIPS and a dual-stack host: each Secret gets exactly those hosts, one call per token", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "hosts");
  await createSecret(env, ns, { name: "public", registries: PUBLIC });
  await createSecret(env, ns, { name: "fips-dual", registries: `${FIPS}, ${DUAL}` });
  await createSecret(env, ns, { name: "mixed", registries: `${PUBLIC},123456789012/us-west-2` });

  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.equal(summaryOf(run).refreshed, 3);
  // ECR Public once for two Secrets; ECR once per region, whichever host names it.
  assert.equal(ecr.tokenCalls(ECR_PUBLIC), 1);
  assert.equal(ecr.tokenCalls("us-east-1"), 1);
  assert.equal(ecr.tokenCalls("us-west-2"), 1);
  assert.equal(ecr.tokenCalls(), 3);

  const entry = (password: string) => ({
    username: "AWS",
    password,
    auth: btoa(`AWS:${password}`),
  });
  const publicPassword = ecr.passwords.get(ECR_PUBLIC)!;
  const west = ecr.passwords.get("us-west-2")!;
  assert.ok(publicPassword.startsWith("ecr-public-auth-token-"), "ECR Public's token");
  const want: Record<string, Record<string, unknown>> = {
    public: { [PUBLIC]: entry(publicPassword) },
    "fips-dual": { [FIPS]: entry(ecr.passwords.get("us-east-1")!), [DUAL]: entry(west) },
    mixed: { [PUBLIC]: entry(publicPassword), [hostOf("123456789012/us-west-2")]: entry(west) },
  };
  for (const [name, auths] of Object.entries(want)) {
    const secret = await readSecret(env, ns, name);
    assert.deepEqual(dockerConfigOf(secret).auths, auths, name);
    // The status names the same hosts, with ECR Public's 12 hours like the others'.
    const annotations = secret.metadata!.annotations!;
    assert.deepEqual(
      Object.keys(JSON.parse(annotations[STATUS])).sort(),
      Object.keys(auths).sort(),
    );
    const hours = (Date.parse(annotations[EXPIRES_AT]) - Date.parse(annotations[REFRESHED_AT])) /
      3600_000;
    assert.ok(Math.abs(hours - 12) < 0.1, `${name}: ${hours}h`);
    const [event] = (await eventsFor(env, secret)).filter((e) => e.reason === "Refreshed");
    for (const host of Object.keys(auths)) {
      assert.ok(event.message?.includes(host), String(event.message));
    }
  }

  // Fresh now: a second run calls neither ECR nor ECR Public.
  const again = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.equal(ecr.tokenCalls(), 3, "nothing was due");
  assert.equal(summaryOf(again).refreshed, 0);
});

Deno.test("ECR Public refused: its Secret fails and is untouched, the message names both IAM actions, the others refresh", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  ecr.fail(
    ECR_PUBLIC,
    "AccessDeniedException",
    "User is not authorized to perform: sts:GetServiceBearerToken",
  );
  const ns = await freshNamespace(env, "public-denied");
  const before = await createSecret(env, ns, { name: "public", registries: PUBLIC });
  await createSecret(env, ns, { name: "private", registries: DUAL });

  const run = await runKubeecr(env, ["--namespace", ns, ...JSON_LOG], { aws: ecr.awsEnv });
  assert.equal(run.code, 1, run.stdout + run.stderr);
  assert.equal(ecr.tokenCalls(ECR_PUBLIC), 1);
  const after = await readSecret(env, ns, "public");
  assert.deepEqual(after.data, before.data, "untouched");
  const [failed] = (await eventsFor(env, after)).filter((e) => e.reason === "RefreshFailed");
  assert.match(failed.message ?? "", /ECR Public GetAuthorizationToken in us-east-1 failed/);
  assert.match(
    failed.message ?? "",
    /ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken/,
  );
  assert.equal(linesAbout(run, ns, "private").at(-1)?.msg, "refreshed");
  assert.deepEqual(Object.keys(dockerConfigOf(await readSecret(env, ns, "private")).auths), [DUAL]);
});

Deno.test("the ECR proxy answers ECR Public only when signed for ecr-public in us-east-1", () => {
  const auth = (scope: string, signed = "host;x-amz-date;x-amz-target") =>
    `AWS4-HMAC-SHA256 Credential=testing/20261201/${scope}/aws4_request, ` +
    `SignedHeaders=${signed}, Signature=${"ab".repeat(32)}`;
  assert.equal(publicSignatureProblem(auth("us-east-1/ecr-public")), undefined);
  assert.match(publicSignatureProblem(auth("us-west-2/ecr-public")) ?? "", /region: us-west-2/);
  assert.match(publicSignatureProblem(auth("us-east-1/ecr")) ?? "", /'ecr-public', not 'ecr'/);
  assert.match(
    publicSignatureProblem(auth("us-east-1/ecr-public", "host;x-amz-date")) ?? "",
    /x-amz-target/,
  );
  assert.match(publicSignatureProblem(null) ?? "", /not a SigV4/);
});
