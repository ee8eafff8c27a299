/**
 * Runs after the main suite, against the same environment: scans every byte
 * the CLI printed during the suite (tests/integration/cli.ts appends it all
 * to `${env.dir}/cli-output.log`) for ECR credentials. Logs must never show a
 * token, a password or an `auth` value — not in any run, at any log level,
 * not in an error message.
 */

import assert from "node:assert/strict";
import { ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import { testEnv } from "../testenv/connect.ts";
import { cliOutputLog, KUBECONFIG_CANARY } from "../integration/cli.ts";

const env = await testEnv();

/** Regions the suite uses; moto's token is per account, asking several costs nothing. */
const REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"];

/** The authorizationTokens moto hands out, asked for the same way KubeECR asks. */
async function motoTokens(): Promise<string[]> {
  const tokens = new Set<string>();
  for (const region of REGIONS) {
    const client = new ECRClient({
      region,
      endpoint: env.motoUrl,
      credentials: {
        accessKeyId: env.awsEnv.AWS_ACCESS_KEY_ID,
        secretAccessKey: env.awsEnv.AWS_SECRET_ACCESS_KEY,
      },
    });
    try {
      const out = await client.send(new GetAuthorizationTokenCommand({}));
      for (const d of out.authorizationData ?? []) tokens.add(d.authorizationToken!);
    } finally {
      client.destroy();
    }
  }
  return [...tokens];
}

Deno.test("no CLI output of the whole suite contains an ECR password, its auth form or the token", async () => {
  const output = await Deno.readTextFile(cliOutputLog(env)).catch(() => "");
  assert.ok(
    output.includes('"msg":"refreshed"') || / INFO refreshed /.test(output),
    `${cliOutputLog(env)} holds no refreshed Secret: run this after the integration tests`,
  );

  const tokens = await motoTokens();
  assert.ok(tokens.length > 0);
  for (const token of tokens) {
    // authorizationToken = base64("AWS:" + password); `auth` in the Secret is the same.
    const password = atob(token).replace(/^AWS:/, "");
    assert.ok(password.length >= 8, "a password worth looking for");
    for (const [what, value] of [["password", password], ["token / auth", token]]) {
      assert.equal(output.includes(value), false, `the CLI output shows an ECR ${what}`);
    }
  }
  // Whatever the account: moto's password form, and any base64 of "AWS:...".
  assert.doesNotMatch(output, /\d{12}-auth-token/);
  assert.doesNotMatch(output, /QVdTO[A-Za-z0-9+/]{8,}/);
});

Deno.test("no CLI output of the whole suite shows what a kubeconfig holds", async () => {
  const output = await Deno.readTextFile(cliOutputLog(env)).catch(() => "");
  assert.ok(
    output.includes("is not valid YAML at line"),
    "the suite ran KubeECR on a broken kubeconfig (tests/integration/messages_test.ts)",
  );
  // The canary token of the broken kubeconfigs, and the admin client key
  // they carry as client-key-data.
  assert.equal(
    output.includes(KUBECONFIG_CANARY),
    false,
    "the CLI output shows a kubeconfig token",
  );
  const keyData = btoa(await Deno.readTextFile(env.admin.key));
  const keyBody = (await Deno.readTextFile(env.admin.key)).split("\n")[1];
  for (
    const [what, value] of [["client-key-data", keyData.slice(0, 40)], ["client key", keyBody]]
  ) {
    assert.equal(output.includes(value), false, `the CLI output shows the kubeconfig's ${what}`);
  }
});
