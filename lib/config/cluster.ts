// Cluster access from the flags and the environment, in client-go's order.

import { ConfigError } from "../core/errors.ts";
import type { KubeAccess } from "../kube/kubeconfig.ts";
import type { Env, Resolver } from "./args.ts";
import { FLAGS } from "./flags.ts";

export const IN_CLUSTER_HOST = "kubernetes.default.svc";
export const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Non-flag variables consulted to find the cluster. */
export const KUBE_ENV = [
  "KUBECONFIG",
  "KUBERNETES_SERVICE_HOST",
  "KUBERNETES_SERVICE_PORT",
  "HOME",
];

/**
 * Where the Kubernetes API is, in the order client-go uses: an explicit
 * kubeconfig, then $KUBECONFIG, then the pod's service account, then
 * ~/.kube/config.
 */
export function resolveKube(
  kubeconfig: string | undefined,
  context: string | undefined,
  r: Resolver,
  env: Env,
): KubeAccess {
  const withContext = (paths: string[]): KubeAccess =>
    context === undefined ? { mode: "kubeconfig", paths } : { mode: "kubeconfig", paths, context };
  if (kubeconfig !== undefined) return withContext([kubeconfig]);
  // kubectl semantics: a colon-separated list, merged; empty entries ignored.
  const list = r.envValue("KUBECONFIG")?.split(":").filter((p) => p !== "") ?? [];
  if (list.length > 0) return withContext(list);
  if (r.envValue("KUBERNETES_SERVICE_HOST") !== undefined) {
    if (context !== undefined) {
      throw new ConfigError(
        "--context",
        `${r.where(FLAGS.context)} cannot be used in-cluster (KUBERNETES_SERVICE_HOST is set ` +
          "and no kubeconfig was given); pass --kubeconfig as well, or drop --context",
      );
    }
    const port = r.envValue("KUBERNETES_SERVICE_PORT") ?? "443";
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      throw new ConfigError(
        "KUBERNETES_SERVICE_PORT",
        `KUBERNETES_SERVICE_PORT=${JSON.stringify(port)}: expected a TCP port from 1 to 65535`,
      );
    }
    // The service name, not KUBERNETES_SERVICE_HOST's IP: the Deno net
    // allow-list names it and the API server's serving certificate carries it.
    return {
      mode: "in-cluster",
      server: `https://${IN_CLUSTER_HOST}:${port}`,
      tokenPath: `${SA_DIR}/token`,
      caPath: `${SA_DIR}/ca.crt`,
    };
  }
  const home = env.HOME;
  if (home === undefined || home === "") {
    throw new ConfigError(
      "--kubeconfig",
      "no kubeconfig found: --kubeconfig, KUBEECR_KUBECONFIG and KUBECONFIG are unset, " +
        "KUBERNETES_SERVICE_HOST is unset (not in a pod) and HOME is unset; " +
        "pass --kubeconfig <path>",
    );
  }
  return withContext([`${home.replace(/\/+$/, "")}/.kube/config`]);
}
