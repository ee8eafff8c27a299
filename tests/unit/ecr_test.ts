/**
 * ECR failures as an operator reads them. The pure message builders are
 * table-tested; the adapter is then run for real (tests/unit/fixtures/
 * ecr_fetch.ts in a process of its own, with a clean environment and the
 * exact permission set) against a Deno.serve fake on port 0 set as
 * AWS_ENDPOINT_URL_ECR, for what moto cannot be made to answer: an HTML 502,
 * a text 503.
 */

import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import {
  credentialHints,
  credentialsAdvice,
  passwordOf,
  sandboxAdvice,
  tokenError,
} from "../../lib/aws/ecr.ts";
import { TokenError } from "../../lib/core/tokens.ts";

const FETCH = new URL("./fixtures/ecr_fetch.ts", import.meta.url).pathname;
const REPO = new URL("../../", import.meta.url).pathname;
/** What no message may show: SDK internals and Deno's flag hint. */
const INTERNALS = /\$response|Deserialization error|--allow-net|Unexpected token/;

interface Fetched {
  ok?: boolean;
  code?: string;
  noCredentials?: boolean;
  message?: string;
}

async function fetchToken(
  env: Record<string, string>,
  permissions = "-P=local",
  args: string[] = [],
): Promise<Fetched> {
  const noFiles = await Deno.makeTempFile();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", permissions, FETCH, ...args],
      cwd: REPO,
      clearEnv: true,
      env: {
        HOME: Deno.env.get("HOME") ?? "/nonexistent",
        ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
        NO_COLOR: "1",
        AWS_EC2_METADATA_DISABLED: "true",
        AWS_CONFIG_FILE: noFiles,
        AWS_SHARED_CREDENTIALS_FILE: noFiles,
        AWS_REGION: "us-west-2",
        ...env,
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, stdout + new TextDecoder().decode(out.stderr));
    return JSON.parse(stdout);
  } finally {
    await Deno.remove(noFiles);
  }
}

const KEYS = { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "not-a-real-secret" };

Deno.test("ECR answering a non-JSON body: the status and what it means, no SDK internals", async (t) => {
  const cases: [string, number, string, string][] = [
    [
      "an HTML 502 from a proxy",
      502,
      "text/html",
      "<html><body><h1>502 Bad Gateway</h1></body></html>",
    ],
    ["a text 503 from a load balancer", 503, "text/plain", "Service Unavailable"],
  ];
  for (const [name, status, type, body] of cases) {
    await t.step(name, async () => {
      await using server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        async (req) => {
          await req.body?.cancel();
          return new Response(body, { status, headers: { "content-type": type } });
        },
      );
      const got = await fetchToken({
        ...KEYS,
        AWS_ENDPOINT_URL_ECR: `http://127.0.0.1:${server.addr.port}`,
      });
      assert.match(got.message!, new RegExp(`^ECR answered HTTP ${status} with a non-JSON body`));
      assert.match(got.message!, /a proxy, a load balancer, a wrong AWS_ENDPOINT_URL_ECR/);
      assert.doesNotMatch(got.message!, INTERNALS);
      assert.equal(got.noCredentials, false);
    });
  }
});

Deno.test("missing or half-given AWS credentials: the message says which", async (t) => {
  const cases: [string, Record<string, string>, RegExp][] = [
    [
      "AWS_PROFILE naming an unknown profile",
      { AWS_PROFILE: "no-such-profile" },
      /AWS_PROFILE names the profile "no-such-profile", which gave no credentials/,
    ],
    [
      "an access key without a secret key",
      { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE" },
      /AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both/,
    ],
    [
      "a secret key without an access key",
      { AWS_SECRET_ACCESS_KEY: "not-a-real-secret" },
      /AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not/,
    ],
    ["nothing at all", {}, /provide credentials: the kubeecr-aws-secrets Secret/],
  ];
  for (const [name, env, message] of cases) {
    await t.step(name, async () => {
      const got = await fetchToken({ ...env, AWS_ENDPOINT_URL_ECR: "http://127.0.0.1:9" });
      assert.equal(got.code, "CredentialsProviderError");
      assert.equal(got.noCredentials, true, "exit code 2: the run could not start");
      assert.match(got.message!, message);
      assert.ok(!got.message!.includes("not-a-real-secret"), "never a credential");
    });
  }
});

Deno.test("the sandbox refusing the ECR endpoint: the host and the allowed list, never --allow-net", async (t) => {
  const cases: [string, string, string][] = [
    ["an address", "http://127.0.0.1:9", "127.0.0.1:9"],
    ["a host name", "https://ecr.evil.example:8443", "ecr.evil.example"],
  ];
  for (const [name, endpoint, host] of cases) {
    await t.step(name, async () => {
      const got = await fetchToken({ ...KEYS, AWS_ENDPOINT_URL_ECR: endpoint }, "-P=cronjob");
      assert.match(
        got.message!,
        new RegExp(`the sandbox refused a connection to ${host.replaceAll(".", "\\.")}`),
      );
      assert.match(got.message!, /allowed hosts: .*kubernetes\.default\.svc/);
      assert.match(
        got.message!,
        /point AWS_ENDPOINT_URL_ECR \/ AWS_ENDPOINT_URL at an allowed host/,
      );
      assert.doesNotMatch(got.message!, INTERNALS);
    });
  }
});

Deno.test("the sandbox refusing ECR Public's endpoint: its variable, and its us-east-1 hosts among the allowed", async () => {
  const got = await fetchToken(
    { ...KEYS, AWS_ENDPOINT_URL_ECR_PUBLIC: "http://127.0.0.1:9" },
    "-P=cronjob",
    ["us-east-1", "ecr-public"],
  );
  assert.match(got.message!, /^ECR Public GetAuthorizationToken in us-east-1 failed: /);
  assert.match(got.message!, /the sandbox refused a connection to 127\.0\.0\.1:9/);
  assert.match(got.message!, /allowed hosts: .*api\.ecr-public\.us-east-1\.amazonaws\.com:443/);
  assert.match(got.message!, /point AWS_ENDPOINT_URL_ECR_PUBLIC \/ AWS_ENDPOINT_URL at an allowed/);
  assert.doesNotMatch(got.message!, INTERNALS);
});

Deno.test("sandboxAdvice keeps the allowed list short: this region's hosts and the non-AWS ones", () => {
  const regions = Array.from({ length: 40 }, (_, i) => `xx-test-${i}`);
  const allowed = [
    "kubernetes.default.svc",
    ...regions.flatMap((r) => [`api.ecr.${r}.amazonaws.com`, `sts.${r}.amazonaws.com`]),
    "169.254.169.254",
  ];
  const msg = sandboxAdvice("evil.example", "xx-test-7", allowed);
  assert.match(
    msg,
    /allowed hosts: kubernetes\.default\.svc, api\.ecr\.xx-test-7\.amazonaws\.com, sts\.xx-test-7\.amazonaws\.com, 169\.254\.169\.254 \(and 78 more\)/,
  );
  assert.ok(msg.length < 400, msg);
  assert.match(sandboxAdvice(undefined, "us-west-2"), /refused the connection to the ECR endpoint/);
  // The list main.ts passes is the one deno.json grants.
  assert.ok(denoJson.permissions.cronjob.net.some((h) => h.startsWith("kubernetes.default.svc")));
});

Deno.test("credentialsAdvice prefers the most specific hint", () => {
  assert.match(
    credentialsAdvice({ profile: "p", accessKeyId: true, secretAccessKey: false }),
    /AWS_PROFILE names the profile "p"/,
  );
  assert.match(credentialsAdvice(undefined), /provide credentials/);
  assert.match(
    credentialsAdvice({ accessKeyId: true, secretAccessKey: true }),
    /provide credentials/,
  );
});

Deno.test("tokenError keeps AWS's own error name and message for service errors", () => {
  const err = Object.assign(new Error("User is not authorized"), {
    name: "AccessDeniedException",
    $metadata: { httpStatusCode: 400 },
  });
  const te = tokenError("eu-west-1", err);
  assert.ok(te instanceof TokenError);
  assert.equal(te.code, "AccessDeniedException");
  assert.equal(te.cause, err);
  assert.equal(
    te.message,
    "ECR GetAuthorizationToken in eu-west-1 failed: AccessDeniedException: User is not authorized",
  );
});

Deno.test("passwordOf splits a decoded AWS:<password> token", async (t) => {
  const b64 = (s: string) => new TextEncoder().encode(s).toBase64();
  const cases: [string, string, string | undefined][] = [
    ["ECR's form", b64("AWS:eyJwYXlsb2FkIjoi"), "eyJwYXlsb2FkIjoi"],
    ["a colon inside the password", b64("AWS:a:b"), "a:b"],
    ["no colon", b64("AWSpassword"), undefined],
    ["empty password", b64("AWS:"), undefined],
    ["empty user", b64(":password"), undefined],
    ["not base64", "%%%", undefined],
    ["not UTF-8", new Uint8Array([0x41, 0x3a, 0xe9]).toBase64(), undefined],
  ];
  for (const [name, token, want] of cases) {
    await t.step(name, () => assert.equal(passwordOf(token), want));
  }
});

Deno.test("credentialsAdvice names a container-credentials URL, and says when the sandbox refuses its host", () => {
  const refused = credentialHints(
    (n) => n === "AWS_CONTAINER_CREDENTIALS_FULL_URI" ? "https://creds.evil.example/v1" : undefined,
    () => false,
  );
  assert.match(
    credentialsAdvice(refused),
    /AWS_CONTAINER_CREDENTIALS_FULL_URI points the SDK at https:\/\/creds\.evil\.example\/v1, and the sandbox refuses creds\.evil\.example:443/,
  );
  const relative = credentialHints(
    (n) => n === "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" ? "/v2/creds?id=1" : undefined,
    (host) => host === "169.254.170.2:80",
  );
  assert.match(
    credentialsAdvice(relative),
    /AWS_CONTAINER_CREDENTIALS_RELATIVE_URI points the SDK at http:\/\/169\.254\.170\.2\/v2\/creds, which gave no credentials/,
  );
});

Deno.test("tokenError: a sandbox refusal that is not a network host is said as what it is", () => {
  const err = new Deno.errors.NotCapable(
    'Requires sys access to "ca", run again with the --allow-sys flag',
  );
  const got = tokenError("us-west-2", err);
  assert.match(got.message, /the sandbox refused sys access to "ca"/);
  assert.doesNotMatch(got.message, /AWS_ENDPOINT_URL_ECR|--allow-sys/);
});

Deno.test("tokenError: Node's certificate codes say what to fix", () => {
  const cases: [string, RegExp][] = [
    ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", /not signed by a trusted CA.*AWS_CA_BUNDLE/],
    ["CERT_NOT_YET_VALID", /not valid yet/],
    ["CERT_HAS_EXPIRED", /has expired/],
    ["ERR_TLS_CERT_ALTNAME_INVALID", /does not name the host/],
  ];
  for (const [code, message] of cases) {
    const err = Object.assign(new Error("tls"), { code });
    assert.match(tokenError("us-west-2", err).message, message, code);
  }
});

Deno.test("tokenError: an answer the SDK could not read is not shown as SDK internals", () => {
  const err = Object.assign(
    new Error(
      "@aws-sdk XML parse error\n  Deserialization error: to see the raw response, inspect the hidden field {error}.$response on this object.",
    ),
    { $metadata: {} },
  );
  Object.defineProperty(err, "$response", { value: { statusCode: 200 }, enumerable: false });
  const got = tokenError("us-west-2", err);
  assert.match(got.message, /AWS answered HTTP 200 with a body that is not an AWS answer/);
  assert.doesNotMatch(got.message, INTERNALS);
  // A service error carries $response too, and $fault: it keeps AWS's own name.
  const denied = Object.assign(new Error("not authorized"), {
    name: "AccessDeniedException",
    $fault: "client",
    $metadata: { httpStatusCode: 400 },
  });
  Object.defineProperty(denied, "$response", { value: { statusCode: 400 }, enumerable: false });
  assert.match(tokenError("us-west-2", denied).message, /AccessDeniedException: not authorized/);
});
