import assert from "node:assert/strict";
import {
  KubeConfigError,
  parseKubeconfigText,
  type ResolvedKubeconfig,
  resolveKubeconfig,
} from "../../lib/kube/kubeconfig.ts";

// One valid kubeconfig; each case below changes one thing about it.
const VALID = `
apiVersion: v1
kind: Config
current-context: dev
clusters:
  - name: dev-cluster
    cluster:
      server: https://10.0.0.1:6443/
      certificate-authority: ca.crt
users:
  - name: dev-user
    user:
      client-certificate-data: Q0VSVA==
      client-key-data: S0VZ
contexts:
  - name: dev
    context: { cluster: dev-cluster, user: dev-user }
  - name: other
    context: { cluster: dev-cluster, user: token-user }
`;
const TOKEN_USER = `
users:
  - name: token-user
    user: { token: abc }
`;

const resolve = (files: [string, string][], context?: string): ResolvedKubeconfig =>
  resolveKubeconfig(files.map(([path, text]) => parseKubeconfigText(path, text)), context);

Deno.test("kubeconfig: the valid fixture resolves, paths relative to its file", () => {
  assert.deepEqual(resolve([["/home/op/.kube/config", VALID]]), {
    server: "https://10.0.0.1:6443",
    insecureSkipTlsVerify: false,
    auth: { kind: "none" },
    origin: "context dev of /home/op/.kube/config",
    ca: { file: "/home/op/.kube/ca.crt" },
    cert: { data: "Q0VSVA==" },
    key: { data: "S0VZ" },
  });
});

Deno.test("kubeconfig: several files merge as kubectl does (first definition wins)", () => {
  const second = `current-context: other\n${TOKEN_USER}` +
    "\nclusters:\n  - name: dev-cluster\n    cluster: { server: https://evil:1 }\n";
  const r = resolve([["/a", VALID], ["/b", second]], "other");
  assert.equal(r.server, "https://10.0.0.1:6443", "the first file's cluster wins");
  assert.deepEqual(r.auth, { kind: "token", token: "abc" }, "a user only the second file has");
  assert.equal(resolve([["/b", second], ["/a", VALID]]).origin, "context other of /b:/a");
});

Deno.test("kubeconfig: users' ways to authenticate", async (t) => {
  const cases: [string, string, ResolvedKubeconfig["auth"]][] = [
    ["token", "{ token: t0k }", { kind: "token", token: "t0k" }],
    ["tokenFile, relative", "{ tokenFile: tok }", { kind: "tokenFile", path: "/k/tok" }],
    ["basic", "{ username: u, password: p }", { kind: "basic", username: "u", password: "p" }],
    [
      "exec",
      "{ exec: { command: aws, args: [eks, get-token], env: [{ name: AWS_PROFILE, value: p }] } }",
      {
        kind: "exec",
        user: "dev-user",
        exec: {
          command: "aws",
          args: ["eks", "get-token"],
          env: [{ name: "AWS_PROFILE", value: "p" }],
          apiVersion: "client.authentication.k8s.io/v1",
        },
      },
    ],
  ];
  for (const [name, user, want] of cases) {
    await t.step(name, () => {
      const text = VALID.replace(
        "user:\n      client-certificate-data: Q0VSVA==\n      client-key-data: S0VZ",
        `user: ${user}`,
      );
      assert.deepEqual(resolve([["/k/config", text]]).auth, want);
    });
  }
});

Deno.test("kubeconfig: what cannot be used is refused with what to do", async (t) => {
  const cases: [string, string, string | undefined, RegExp][] = [
    [
      "no current-context",
      VALID.replace("current-context: dev\n", ""),
      undefined,
      /has no current-context; pick one of its contexts \(dev, other\) with --context <name>/,
    ],
    [
      "unknown --context",
      VALID,
      "prod",
      /context "prod" is not in \/k \(contexts there: dev, other\)/,
    ],
    [
      "missing cluster",
      VALID.replace("name: dev-cluster", "name: x"),
      undefined,
      /names cluster "dev-cluster", which is not defined/,
    ],
    [
      "missing user",
      VALID.replace("name: dev-user", "name: x"),
      undefined,
      /names user "dev-user", which is not defined/,
    ],
    [
      "no server",
      VALID.replace("server: https://10.0.0.1:6443/", "server: 10.0.0.1"),
      undefined,
      /has no server URL/,
    ],
    [
      "certificate without key",
      VALID.replace("      client-key-data: S0VZ\n", ""),
      undefined,
      /client certificate but no client key/,
    ],
    [
      "legacy auth-provider",
      VALID.replace(
        "client-certificate-data: Q0VSVA==\n      client-key-data: S0VZ",
        "auth-provider: { name: gcp }",
      ),
      undefined,
      /auth-provider "gcp".*gke-gcloud-auth-plugin/,
    ],
    ["not a mapping", "- a\n- b\n", undefined, /is not a YAML mapping/],
  ];
  for (const [name, text, context, message] of cases) {
    await t.step(name, () => {
      assert.throws(() => resolve([["/k", text]], context), (err) => {
        assert.ok(err instanceof KubeConfigError);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

Deno.test("kubeconfig: a YAML error gives the position, never the lines around it", () => {
  const secret = "token: sha256~SUPERSECRET";
  const text = `users:\n  - name: u\n    user:\n      ${secret}\n    bad: [unclosed\n`;
  assert.throws(() => parseKubeconfigText("/k/config", text), (err) => {
    assert.ok(err instanceof KubeConfigError);
    assert.match(
      err.message,
      /^kubeconfig \/k\/config is not valid YAML at line \d+, column \d+: /,
    );
    assert.ok(!err.message.includes("SUPERSECRET"), err.message);
    assert.ok(!err.message.includes("unclosed"), err.message);
    return true;
  });
});
