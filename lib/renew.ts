// `kubeecr renew`: marks Secrets with RENEW_REQUESTED, which the next run
// treats as due (lib/core/due.ts) and removes with its write; with --now it
// also starts that run as a Job of KubeECR's CronJob (lib/kube/jobs.ts), so
// the refresh uses KubeECR's identity and the user needs no AWS credentials.

import type { RenewConfig } from "./config.ts";
import { describeError, KubeEcrError, refString, type SecretRef } from "./core/errors.ts";
import { RENEW_REQUESTED } from "./core/status.ts";
import { KubeApiError, type SecretStore, type StoredSecret } from "./core/store.ts";
import { DiscoveryError } from "./discover.ts";
import { formatTime } from "./core/time.ts";
import { DOCKER_CONFIG_TYPE } from "./kube/secrets.ts";
import type { Logger } from "./log.ts";
import { EXIT_FAILED, EXIT_OK } from "./report.ts";

export interface RenewDeps {
  store: SecretStore;
  /** Creates a Job from the CronJob; returns the Job's name. */
  createJob: (cronjob: SecretRef) => Promise<string>;
  log: Logger;
  now: () => Date;
}

export type RenewOptions = Pick<
  RenewConfig,
  "annotation" | "namespaces" | "selector" | "all" | "now" | "cronjob" | "secrets"
>;

/** Marks tried on a Secret that keeps changing under us (409). */
const MARK_ATTEMPTS = 3;

/** Marks each Secret named or selected, then (--now) creates the Job; returns the exit code. */
export async function renew(opts: RenewOptions, deps: RenewDeps): Promise<number> {
  const { log } = deps;
  const at = formatTime(deps.now());
  let marked = 0;
  let failed = 0;
  const mark = async (secret: StoredSecret) => {
    const why = await markOne(deps.store, secret, at);
    if (why) {
      failed++;
      log.error("cannot mark", { secret: refString(secret), error: why });
    } else {
      marked++;
      log.info("marked for renewal", { secret: refString(secret), [RENEW_REQUESTED]: at });
    }
  };
  if (opts.secrets.length > 0) {
    for (const ref of opts.secrets) {
      const secret = await deps.store.get(ref);
      const why = !secret
        ? "no such Secret"
        : secret.type !== DOCKER_CONFIG_TYPE
        ? `it is of type ${secret.type}, not ${DOCKER_CONFIG_TYPE}: KubeECR does not serve it`
        : secret.annotations[opts.annotation] === undefined
        ? `it has no ${opts.annotation} annotation: KubeECR does not serve it (add the ` +
          "annotation, or name the installation's key with --annotation)"
        : undefined;
      if (why || !secret) {
        failed++;
        log.error("cannot mark", { secret: refString(ref), error: why });
      } else {
        await mark(secret);
      }
    }
  } else {
    const namespaces = opts.namespaces.length > 0 ? opts.namespaces : [undefined];
    for (const namespace of namespaces) {
      const scope = { namespace, labelSelector: opts.selector };
      for await (
        const page of deps.store.listAnnotatedDockerConfigSecrets(scope, opts.annotation)
      ) {
        for (const secret of page.secrets) await mark(secret);
      }
    }
    if (marked + failed === 0) {
      log.error("nothing to mark", {
        error: `no Secret of type ${DOCKER_CONFIG_TYPE} with the ${opts.annotation} annotation ` +
          `matched (${describeScope(opts)})`,
      });
      return EXIT_FAILED;
    }
  }
  if (opts.now && marked > 0) {
    try {
      const job = await deps.createJob(opts.cronjob);
      log.info("started a run", {
        job: `${opts.cronjob.namespace}/${job}`,
        from: `cronjob/${opts.cronjob.name}`,
        follow: `kubectl -n ${opts.cronjob.namespace} logs -f job/${job}`,
      });
    } catch (err) {
      if (!(err instanceof KubeEcrError)) throw err;
      log.error("cannot start a run", {
        error: userMessage(err, "renew"),
        note: "the Secrets stay marked: the CronJob's next run refreshes them",
      });
      return EXIT_FAILED;
    }
  } else if (marked > 0) {
    log.info("the next run refreshes them", {
      "to-run-now": `kubeecr renew ... --now, or kubectl -n ${opts.cronjob.namespace} create job ` +
        `--from=cronjob/${opts.cronjob.name} <name>`,
    });
  }
  return failed > 0 ? EXIT_FAILED : EXIT_OK;
}

/** undefined when marked; else why not. Touches only RENEW_REQUESTED, conditional on the version read. */
async function markOne(
  store: SecretStore,
  read: StoredSecret,
  at: string,
): Promise<string | undefined> {
  let current: StoredSecret | undefined = read;
  for (let attempt = 1; attempt <= MARK_ATTEMPTS && current; attempt++) {
    try {
      const result = await store.patch(current, {
        resourceVersion: current.resourceVersion,
        annotations: { [RENEW_REQUESTED]: at },
      }, { dryRun: false });
      if (result.kind === "patched") {
        return result.stored.annotations[RENEW_REQUESTED] === at
          ? undefined
          : `the API server stored another ${RENEW_REQUESTED} (an admission policy or webhook?)`;
      }
      if (result.kind === "gone") return "deleted meanwhile";
    } catch (err) {
      if (err instanceof KubeEcrError) return userMessage(err, "renew");
      throw err;
    }
    current = await store.get(current);
  }
  return current
    ? `it changed during each of ${MARK_ATTEMPTS} attempts (HTTP 409)`
    : "deleted meanwhile";
}

function describeScope(opts: RenewOptions): string {
  const where = opts.namespaces.length > 0
    ? `in namespace ${opts.namespaces.join(", ")}`
    : "in any namespace";
  return opts.selector ? `${where}, with labels ${opts.selector}` : where;
}

/**
 * An error's message as the user who ran status or renew should read it: a
 * 403 names what this user lacks (the run's own hint speaks of KubeECR's
 * identity, which is not the one asking here).
 */
export function userMessage(err: unknown, command: "status" | "renew"): string {
  const api = err instanceof DiscoveryError ? err.error : err;
  if (!(api instanceof KubeApiError) || api.status !== 403) return describeError(err);
  return `${api.operation} ${KubeApiError.describeTarget(api.target)}: HTTP 403${
    api.serverMessage ? `: ${api.serverMessage}` : ""
  }; kubeecr ${command} runs as you: see README, "Who may run status and renew" ` +
    "(examples/operators)";
}
