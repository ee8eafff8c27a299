// Stage 1, discover: the annotated dockerconfigjson Secrets in scope, page by
// page, as they arrive. One paginated list per scope (cluster-wide, or one per
// --namespace); with --namespace-selector, one namespace list first.

import { BudgetError, KubeEcrError, messageOf } from "./core/errors.ts";
import type { Logger } from "./log.ts";
import {
  KubeApiError,
  type ListScope,
  type RejectedItem,
  type SecretStore,
  type StoredSecret,
} from "./core/store.ts";

export interface DiscoverOptions {
  annotation: string;
  namespaces: string[];
  excludeNamespaces: string[];
  selector?: string;
  namespaceSelector?: string;
  /** Told the namespaces --namespace-selector selected, once listed (--provision needs them). */
  onSelected?: (namespaces: Set<string>) => void;
}

export type Found =
  | { kind: "secret"; secret: StoredSecret }
  /** Annotated, in a namespace that --namespace-selector does not select: left alone. */
  | { kind: "not-selected"; secret: StoredSecret }
  /** A namespace that could not be listed (403): a failure, the rest goes on. */
  | { kind: "scope-failed"; error: KubeApiError }
  /** A list item that is not a usable dockerconfigjson Secret: that item's problem only. */
  | { kind: "rejected"; item: RejectedItem };

/**
 * The cluster could not be used at all (no answer, 401, a cluster-wide list
 * refused, a selector the server rejects) before any Secret was seen: the run
 * could not start.
 */
export class DiscoveryError extends KubeEcrError {
  /** The flag at fault, when the server refused a value the user gave. */
  readonly flag?: string;
  constructor(readonly error: KubeApiError, blame?: { flag: string; message: string }) {
    super(blame?.message ?? error.message, { cause: error });
    this.flag = blame?.flag;
  }
}

export async function* discover(
  store: SecretStore,
  opts: DiscoverOptions,
  log: Logger,
): AsyncGenerator<Found[]> {
  const excluded = new Set(opts.excludeNamespaces);
  let selected: Set<string> | undefined;
  if (opts.namespaceSelector !== undefined) {
    try {
      selected = await store.listNamespaces(opts.namespaceSelector);
    } catch (err) {
      if (err instanceof KubeApiError) throw new DiscoveryError(err);
      throw err;
    }
    log.debug("namespaces selected", { count: selected.size });
    opts.onSelected?.(selected);
  }
  let first = true;
  for (const scope of scopesOf(opts)) {
    let found = 0;
    try {
      for await (const page of pagesOnce(store, scope, opts.annotation, log)) {
        first = false;
        found += page.secrets.length + page.rejected.length;
        yield [
          ...page.secrets.filter((s) => !excluded.has(s.namespace)).map((secret): Found =>
            selected && !selected.has(secret.namespace)
              ? { kind: "not-selected", secret }
              : { kind: "secret", secret }
          ),
          // Not in a selected namespace: KubeECR neither writes nor records anything there.
          ...page.rejected.filter((s) =>
            !excluded.has(s.namespace) && (!selected || selected.has(s.namespace))
          ).map((item): Found => ({ kind: "rejected", item })),
        ];
      }
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      // Nothing seen yet and the cluster refuses us as a whole: cannot start.
      if (first && err.status === 400 && opts.selector !== undefined) {
        throw new DiscoveryError(err, {
          flag: "--selector",
          message: `--selector ${JSON.stringify(opts.selector)} was rejected by the API server: ` +
            `${err.serverMessage ?? err.message}; see ` +
            "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        });
      }
      if (first && (err.isAccessProblem || !scope.namespace || err.status === 400)) {
        throw new DiscoveryError(err);
      }
      log.error("cannot list secrets", { namespace: scope.namespace ?? "*", error: err.message });
      yield [{ kind: "scope-failed", error: err }];
      continue;
    }
    first = false;
    if (scope.namespace && found === 0) await warnIfMissing(store, scope.namespace, log);
  }
}

/**
 * The scope's pages, each Secret once (also when one page holds it twice). A
 * continue token can expire (HTTP 410) during a long listing; the listing
 * then starts over once, skipping the Secrets already handed out.
 */
async function* pagesOnce(
  store: SecretStore,
  scope: ListScope,
  annotation: string,
  log: Logger,
): AsyncGenerator<{ secrets: StoredSecret[]; rejected: RejectedItem[] }> {
  const seen = new Set<string>();
  // The uid names a Secret; a rejected item may lack one, so its name stands in.
  const once = (s: { uid: string; namespace: string; name: string }) => {
    const id = s.uid || `${s.namespace}/${s.name}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  };
  for (let restarted = false;; restarted = true) {
    let cont: string | undefined;
    try {
      for await (const page of store.listAnnotatedDockerConfigSecrets(scope, annotation)) {
        cont = page.continue;
        yield { secrets: page.secrets.filter(once), rejected: (page.rejected ?? []).filter(once) };
      }
      return;
    } catch (err) {
      const expired = err instanceof KubeApiError && err.status === 410 && cont !== undefined;
      if (!expired || restarted || err instanceof BudgetError) throw err;
      log.warn("the list's continue token expired; listing again from the start", {
        namespace: scope.namespace ?? "*",
        "already-seen": seen.size,
      });
    }
  }
}

/** An empty --namespace is worth a warning when it does not exist (a typo). */
async function warnIfMissing(store: SecretStore, namespace: string, log: Logger) {
  try {
    if (await store.namespaceExists(namespace) === false) {
      log.warn("namespace does not exist", {
        namespace,
        fix: "check the name given to --namespace (KUBEECR_NAMESPACE)",
      });
    }
  } catch {
    // Only a hint: a failure to tell says nothing about the Secrets.
  }
}

/**
 * The --check-secret-types diagnostic: annotated Secrets of any other type.
 * It lists the metadata of every other Secret in scope (Helm releases
 * included), which is why it is off by default; the admission policy refuses
 * such Secrets up front.
 */
export async function* wrongTypeSecrets(
  store: SecretStore,
  opts: DiscoverOptions,
  log: Logger,
): AsyncGenerator<Omit<StoredSecret, "dockerConfig">[]> {
  const excluded = new Set(opts.excludeNamespaces);
  for (const scope of scopesOf(opts)) {
    try {
      for await (const page of store.listAnnotatedOtherSecrets(scope, opts.annotation)) {
        yield page.filter((s) => !excluded.has(s.namespace));
      }
    } catch (err) {
      if (err instanceof BudgetError) throw err;
      log.warn("cannot check for annotated secrets of the wrong type", {
        namespace: scope.namespace ?? "*",
        error: messageOf(err),
      });
    }
  }
}

/** One scope per namespace given, so a namespaced Role is enough; else one cluster-wide. */
function scopesOf(opts: DiscoverOptions): ListScope[] {
  return opts.namespaces.length
    ? opts.namespaces.map((namespace) => ({ namespace, labelSelector: opts.selector }))
    : [{ labelSelector: opts.selector }];
}
