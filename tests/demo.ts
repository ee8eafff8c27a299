/**
 * `deno task demo`: KubeECR doing its job on a machine with no cluster and no
 * AWS account. It starts the test environment (a real kube-apiserver and etcd,
 * moto as ECR), installs examples/usage, runs the program once, shows the
 * Secret before and after (registry hosts and status annotations, never the
 * token), then runs it again to show that a fresh Secret is left alone.
 *
 * moto's tokens carry a fixed 2015 expiry; the demo reaches moto through the
 * tests' ECR proxy, which gives them the 12-hour expiry real ECR answers.
 *
 * Run as root, the environment has its node (tests/testenv/node.ts): the
 * example Deployment's pod really pulls its image from a registry that
 * behaves like ECR, so the demo shows it in ErrImagePull/ImagePullBackOff
 * (401 Unauthorized) before the run and Running after it. Without root the
 * demo shows the Secret only, and says so.
 */

import { startEcrProxy } from "./testenv/ecr_proxy.ts";
import { kubectl, startTestEnv, type TestEnv } from "./testenv/env.ts";
import { acceptTokensOf } from "./testenv/registry.ts";

const REPO = new URL("../", import.meta.url).pathname;
const NAMESPACE = "kubeecr-example";
const SECRET = "ecr-pull";

function heading(text: string) {
  console.log(`\n== ${text}`);
}

async function showSecret(env: TestEnv) {
  const s = JSON.parse(
    await kubectl(env, ["-n", NAMESPACE, "get", "secret", SECRET, "-o", "json"]),
  );
  const config = JSON.parse(atob(s.data[".dockerconfigjson"]));
  const hosts = Object.keys(config.auths ?? {});
  console.log(`  secret ${NAMESPACE}/${SECRET}  resourceVersion ${s.metadata.resourceVersion}`);
  console.log(`  .dockerconfigjson auths: ${hosts.length ? hosts.join(", ") : "(none)"}`);
  for (const [key, value] of Object.entries(s.metadata.annotations ?? {})) {
    if (!key.startsWith("kubectl.kubernetes.io/")) console.log(`  ${key}: ${value}`);
  }
}

const APP = "app.kubernetes.io/name=example-app";

/** The example pod's state as `kubectl get pods` shows it, once it is `want` (a RegExp on STATUS). */
async function waitForPod(env: TestEnv, want: RegExp, timeoutMs = 90_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let table = "";
  while (Date.now() < deadline) {
    table = await kubectl(env, ["-n", NAMESPACE, "get", "pods", "-l", APP]);
    const rows = table.trim().split("\n").slice(1);
    // Only the newest pod counts: after a rollout the old one may still be terminating.
    if (rows.length === 1 && want.test(rows[0].split(/\s+/)[2] ?? "")) return table;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the example pod did not reach ${want} in ${timeoutMs / 1000}s:\n${table}`);
}

/** Why the pull failed, in the kubelet's words (the registry's 401), from the pod's events. */
async function pullFailure(env: TestEnv): Promise<string> {
  const events = JSON.parse(
    await kubectl(env, [
      "-n",
      NAMESPACE,
      "get",
      "events",
      "-o",
      "json",
      "--field-selector",
      "reason=Failed",
    ]),
  );
  const message: string = events.items.map((e: { message: string }) => e.message)
    .find((m: string) => /401 Unauthorized/.test(m)) ?? "";
  // The one line that matters: "...: 401 Unauthorized".
  return message.replace(/^.*?(failed to resolve reference)/, "$1");
}

async function runKubeecr(env: TestEnv, awsEnv: Record<string, string>): Promise<number> {
  const command = ["run", "--quiet", "-P=local", `${REPO}main.ts`];
  console.log(`  $ deno ${command.join(" ")}`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: command,
    env: { KUBECONFIG: env.kubeconfig, ...awsEnv, AWS_EC2_METADATA_DISABLED: "true" },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  console.log(`  exit code ${code}`);
  return code;
}

const env = await startTestEnv({ node: Deno.uid() === 0 });
await using proxy = startEcrProxy(env.motoUrl, {
  onToken: env.node && acceptTokensOf(env.node),
});
let failed = false;
try {
  heading(`Kubernetes ${env.kubernetesVersion} at ${env.server}; ECR is moto behind ${proxy.url}`);

  heading("Install the usage example: kubectl apply -k examples/usage");
  console.log(
    (await kubectl(env, ["apply", "-k", `${REPO}examples/usage`])).trimEnd().replace(/^/gm, "  "),
  );

  heading("The Secret before: an empty docker config and the annotation");
  await showSecret(env);

  if (env.node) {
    heading(
      `The example pod on node ${env.node.name} cannot pull its image: the Secret has no token`,
    );
    console.log(
      (await waitForPod(env, /^(ErrImagePull|ImagePullBackOff)$/)).trimEnd().replace(/^/gm, "  "),
    );
    console.log(`  kubelet: ${await pullFailure(env)}`);
  } else {
    heading("(not root: no node, so no pod pulls; run as root to see the pull)");
  }

  heading("Run KubeECR once");
  const first = await runKubeecr(env, { ...env.awsEnv, ...proxy.awsEnv });

  heading("The Secret after: the ECR registry added, status annotations written");
  await showSecret(env);

  if (env.node) {
    heading(
      "The example pod pulls with the refreshed Secret: kubectl rollout restart deployment/example-app",
    );
    // A new pod at once: the failed one would retry only after its back-off.
    await kubectl(env, ["-n", NAMESPACE, "rollout", "restart", "deployment/example-app"]);
    console.log((await waitForPod(env, /^Running$/)).trimEnd().replace(/^/gm, "  "));
  }

  heading(`What the Secret's events say: kubectl events -n ${NAMESPACE} --for secret/${SECRET}`);
  console.log(
    (await kubectl(env, ["events", "-n", NAMESPACE, "--for", `secret/${SECRET}`])).trimEnd()
      .replace(/^/gm, "  "),
  );

  heading("Run again: the token is fresh, so nothing is written and ECR is not called");
  const second = await runKubeecr(env, { ...env.awsEnv, ...proxy.awsEnv });
  failed = first !== 0 || second !== 0;
  console.log(
    `  GetAuthorizationToken calls seen by the ECR endpoint in all: ${proxy.tokenCalls()}`,
  );
} finally {
  await env.stop();
}
Deno.exit(failed ? 1 : 0);
