// Stage 1, discover: the annotated Secrets in scope, read page by page.
// Only kubernetes.io/dockerconfigjson Secrets are read whole; for the other
// types only metadata is listed, to warn about annotated ones.

import { describeError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { KubeApiError, type ListScope, type SecretStore, type StoredSecret } from "./store.ts";

export interface DiscoverOptions {
  annotation: string;
  namespaces: string[];
  excludeNamespaces: string[];
  selector?: string;
}

export interface Discovery {
  /** Annotated dockerconfigjson Secrets. */
  candidates: StoredSecret[];
  /** Annotated Secrets of any other type. */
  wrongType: Omit<StoredSecret, "dockerConfig">[];
  /** Namespaces that could not be listed (403): a failure, the rest goes on. */
  failedScopes: KubeApiError[];
}

/**
 * Throws KubeApiError when the cluster cannot be used at all (no answer, 401,
 * or a cluster-wide list refused): the run could not start.
 */
export async function discover(
  store: SecretStore,
  opts: DiscoverOptions,
  log: Logger,
): Promise<Discovery> {
  const excluded = new Set(opts.excludeNamespaces);
  const annotated = <T extends StoredSecret | Omit<StoredSecret, "dockerConfig">>(s: T) =>
    opts.annotation in s.annotations && !excluded.has(s.namespace);
  // One scope per namespace given, so a namespaced Role is enough; else one
  // cluster-wide scope.
  const scopes: ListScope[] = opts.namespaces.length
    ? opts.namespaces.map((namespace) => ({ namespace, labelSelector: opts.selector }))
    : [{ labelSelector: opts.selector }];

  const found: Discovery = { candidates: [], wrongType: [], failedScopes: [] };
  for (const scope of scopes) {
    try {
      for await (const page of store.listDockerConfigSecrets(scope)) {
        found.candidates.push(...page.filter(annotated));
      }
    } catch (err) {
      if (!(err instanceof KubeApiError) || err.isAccessProblem || !scope.namespace) throw err;
      log.error("cannot list secrets", { namespace: scope.namespace, error: err.message });
      found.failedScopes.push(err);
      continue;
    }
    try {
      for await (const page of store.listOtherSecretMetadata(scope)) {
        found.wrongType.push(...page.filter(annotated));
      }
    } catch (err) {
      // Only a warning check: its failure must not hide the real work.
      log.warn("cannot check for annotated secrets of the wrong type", {
        namespace: scope.namespace ?? "*",
        error: describeError(err),
      });
    }
  }
  return found;
}
