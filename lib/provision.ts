// --provision: the pull Secret an administrator asked for, created empty in
// every served namespace that lacks it, so that the same run fills it. Only
// ever a create: a Secret of that name that exists, whoever made it and
// whatever it holds, is left exactly as it is (409 AlreadyExists).

import type { Provision } from "./config.ts";
import { BudgetError, describeError, refString } from "./core/errors.ts";
import { KubeApiError, type NewSecret, type SecretStore, type StoredSecret } from "./core/store.ts";
import type { Logger } from "./log.ts";

/** What `kubectl get secrets -A -l app.kubernetes.io/managed-by=kubeecr` finds. */
export const PROVISIONED_LABELS = { "app.kubernetes.io/managed-by": "kubeecr" };

/** The docker config a provisioned Secret starts with (examples/usage/secret.yaml's). */
const EMPTY_CONFIG = '{"auths":{}}';

/**
 * The namespaces that need the Secret: served (selected by
 * --namespace-selector, within --namespace, outside --exclude-namespace), not
 * already holding it, and listed without failure (a namespace whose list was
 * refused is not known to lack it). Sorted, so runs and logs are repeatable.
 */
export function namespacesToProvision(scope: {
  selected: Set<string>;
  namespaces: string[];
  excludeNamespaces: string[];
  present: Set<string>;
  failed: Set<string>;
}): string[] {
  const only = scope.namespaces.length > 0 ? new Set(scope.namespaces) : undefined;
  const excluded = new Set(scope.excludeNamespaces);
  return [...scope.selected].filter((ns) =>
    (!only || only.has(ns)) && !excluded.has(ns) && !scope.present.has(ns) &&
    !scope.failed.has(ns)
  ).sort();
}

/** The Secret --provision creates in `namespace`. */
export function pullSecret(namespace: string, provision: Provision, annotation: string): NewSecret {
  return {
    namespace,
    name: provision.secretName,
    annotations: { [annotation]: provision.value },
    labels: { ...PROVISIONED_LABELS },
    dockerConfig: new TextEncoder().encode(EMPTY_CONFIG),
  };
}

export interface ProvisionResult {
  /** Created and stored: to be filled by this run. */
  created: StoredSecret[];
  /** Namespaces where the create failed (RBAC, admission, a terminating namespace). */
  failed: number;
  /** The budget ran out or the run was stopped before every namespace was done. */
  stopped: boolean;
}

/**
 * Creates the Secret in each namespace, one after the other (only namespaces
 * that lack it cost a request, so a steady run makes none). A failure is that
 * namespace's: logged, counted, and the others go on.
 */
export async function provisionSecrets(
  store: SecretStore,
  namespaces: string[],
  opts: { provision: Provision; annotation: string; dryRun: boolean },
  log: Logger,
  stopping: () => boolean,
): Promise<ProvisionResult> {
  const result: ProvisionResult = { created: [], failed: 0, stopped: false };
  for (const namespace of namespaces) {
    if (stopping()) {
      result.stopped = true;
      break;
    }
    const secret = pullSecret(namespace, opts.provision, opts.annotation);
    const name = refString(secret);
    try {
      const answer = await store.create(secret, { dryRun: opts.dryRun });
      if (answer.kind === "created") {
        log.info("provisioned", { secret: name, [opts.annotation]: opts.provision.value });
        result.created.push(answer.secret);
      } else if (answer.kind === "would-create") {
        log.info("would provision", { secret: name, [opts.annotation]: opts.provision.value });
      } else {
        // Not in the list of annotated dockerconfigjson Secrets, yet there: someone
        // else's Secret (unannotated, or of another type). Pods in the namespace get
        // it as their pull Secret from the provision policy, but KubeECR never fills it.
        log.warn("not provisioned: a Secret of this name exists", {
          secret: name,
          why: `it is not a kubernetes.io/dockerconfigjson Secret annotated ${opts.annotation}, ` +
            "so KubeECR leaves it alone and does not fill it",
          fix: `annotate it (kubectl annotate secret -n ${namespace} ${secret.name} ` +
            `${opts.annotation}=${opts.provision.value}) if it is of that type, or remove it ` +
            "and let the next run create it",
        });
      }
    } catch (err) {
      if (err instanceof BudgetError) {
        result.stopped = true;
        break;
      }
      if (!(err instanceof KubeApiError)) throw err;
      result.failed++;
      log.error("cannot provision", { secret: name, error: describeError(err) });
    }
  }
  return result;
}
