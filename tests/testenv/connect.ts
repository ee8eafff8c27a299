/**
 * How integration tests reach the test environment.
 *
 * Under `deno task test` the runner has started one and names its
 * testenv.json in KUBEECR_TESTENV. A test file run on its own
 * (`deno test -A tests/integration/x_test.ts`) starts a private one instead,
 * stopped when the test process unloads.
 */

import * as k8s from "@kubernetes/client-node";
import type * as https from "node:https";
import { Agent } from "undici";
import {
  type KubeconfigUser,
  kubeconfigYaml,
  kubectl,
  startTestEnv,
  type TestEnvInfo,
} from "./env.ts";

export { kubectl };

let shared: Promise<TestEnvInfo> | undefined;

/**
 * The shared environment. `{node: true}`: a test that needs the node (pods
 * that pull); run alone, such a file starts an environment with one.
 */
export function testEnv(opts: { node?: boolean } = {}): Promise<TestEnvInfo> {
  shared ??= (async () => {
    const file = Deno.env.get("KUBEECR_TESTENV");
    if (file) return JSON.parse(await Deno.readTextFile(file)) as TestEnvInfo;
    const env = await startTestEnv({ node: opts.node });
    // unload handlers cannot await: kill the servers synchronously instead.
    globalThis.addEventListener("unload", () => {
      const pids = Deno.readTextFileSync(`${env.dir}/owner.pid`).split("\n").slice(1);
      for (const pid of pids) {
        try {
          Deno.kill(Number(pid), "SIGKILL");
        } catch { /* already gone */ }
      }
      if (env.node) {
        // The node's pods, cgroups and sysctls need more than a kill: a
        // process of its own cleans up (from node.json) once this one is gone.
        new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", new URL("./reap.ts", import.meta.url).pathname, String(Deno.pid)],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn().unref();
        return;
      }
      Deno.removeSync(env.dir, { recursive: true });
    });
    return env;
  })();
  return shared;
}

/**
 * client-node speaking HTTP/1.1 over one connection pool, for the tests' own
 * admin calls (the product speaks to the API server over Deno's fetch).
 *
 * Why HTTP/1.1: undici, client-node's HTTP client, negotiates HTTP/2, and
 * under Deno 2.9 a GOAWAY from the API server (sent when it shuts down) aborts
 * the whole process in nghttp2. Why one pool: client-node makes a new undici
 * Agent, so a new TLS handshake, per request.
 */
export class Http1KubeConfig extends k8s.KubeConfig {
  #agent?: Promise<Agent | undefined>;

  override async applySecurityAuthentication(context: k8s.RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    this.#agent ??= this.#http1Agent();
    const agent = await this.#agent;
    if (agent) context.setDispatcher(agent);
  }

  async #http1Agent(): Promise<Agent | undefined> {
    const tls: https.RequestOptions = {};
    await this.applyToHTTPSOptions(tls);
    const options = this.createDispatcherOptions(
      this.getCurrentCluster(),
      tls as https.AgentOptions,
    );
    return options.type === "agent"
      ? new Agent({ connect: options.connect, allowH2: false })
      : undefined;
  }
}

/** Identity used by a client: the admin certificate, the no-grant one, or a bearer token. */
export type Identity = "admin" | "nobody" | { token: string };

export function kubeConfigFor(env: TestEnvInfo, who: Identity): k8s.KubeConfig {
  const user = who === "admin"
    ? { name: "admin", certFile: env.admin.cert, keyFile: env.admin.key }
    : who === "nobody"
    ? { name: "nobody", certFile: env.nobody.cert, keyFile: env.nobody.key }
    : { name: "token", token: who.token };
  // Plain client-node aborts the test process when the API server shuts down
  // (see Http1KubeConfig).
  const kc = new Http1KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "testenv", server: env.server, caFile: env.caCert, skipTLSVerify: false }],
    users: [user],
    contexts: [{ name: "testenv", cluster: "testenv", user: user.name }],
    currentContext: "testenv",
  });
  return kc;
}

/** A namespace of its own for each test, so tests never see each other's objects. */
export async function freshNamespace(env: TestEnvInfo, prefix: string): Promise<string> {
  const name = `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
  await kubectl(env, ["create", "namespace", name]);
  return name;
}

/**
 * Writes a kubeconfig file into the environment's directory (removed with
 * it) for `user`, by default against the environment's API server.
 */
export async function writeKubeconfig(
  env: TestEnvInfo,
  user: KubeconfigUser,
  server = env.server,
): Promise<string> {
  const path = await Deno.makeTempFile({ dir: env.dir, prefix: "kubeconfig-", suffix: ".yaml" });
  await Deno.writeTextFile(path, kubeconfigYaml(server, env.caCert, user), { mode: 0o600 });
  return path;
}
