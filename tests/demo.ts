/**
 * `deno task demo`: KubeECR doing its job on a machine with no cluster and no
 * AWS account. It starts the test environment (a real kube-apiserver and etcd,
 * moto as ECR), installs examples/usage, runs the program once, shows the
 * Secret before and after (registry hosts and status annotations, never the
 * token), then runs it again to show that a fresh Secret is left alone.
 *
 * moto's tokens carry a fixed 2015 expiry; the demo reaches moto through the
 * tests' ECR proxy, which gives them the 12-hour expiry real ECR answers.
 */

import { startEcrProxy } from "./testenv/ecr_proxy.ts";
import { kubectl, startTestEnv, type TestEnv } from "./testenv/env.ts";

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

const env = await startTestEnv();
await using proxy = startEcrProxy(env.motoUrl);
let failed = false;
try {
  heading(`Kubernetes ${env.kubernetesVersion} at ${env.server}; ECR is moto behind ${proxy.url}`);

  heading("Install the usage example: kubectl apply -k examples/usage");
  console.log(
    (await kubectl(env, ["apply", "-k", `${REPO}examples/usage`])).trimEnd().replace(/^/gm, "  "),
  );

  heading("The Secret before: an empty docker config and the annotation");
  await showSecret(env);

  heading("Run KubeECR once");
  const first = await runKubeecr(env, { ...env.awsEnv, ...proxy.awsEnv });

  heading("The Secret after: the ECR registry added, status annotations written");
  await showSecret(env);

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
