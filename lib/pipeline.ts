// One run: discover → token → patch → report, as a pipeline rather than four
// barriers. Pages are assessed as they arrive; each due Secret waits only for
// its own regions' tokens; each outcome is logged (and its event recorded) as
// soon as it is known. Everything it touches comes in through Deps, so tests
// can give it the real servers or small doubles.

import type { Config } from "./config.ts";
import { discover, DiscoveryError, type Found, wrongTypeSecrets } from "./discover.ts";
import { assess } from "./core/assess.ts";
import type { Registry } from "./core/annotation.ts";
import { joinCredentials, TokenError, tokenKeyOf, type TokenSource } from "./core/tokens.ts";
import {
  BudgetError,
  describeError,
  KubeEcrError,
  refString,
  type SecretRef,
} from "./core/errors.ts";
import type { Logger } from "./log.ts";
import { type Outcome, writeSecret } from "./patch.ts";
import { logSummary, reportOutcome, type Summary, Tally } from "./report.ts";
import type { SecretStore, StoredSecret } from "./core/store.ts";
import { RegionTokens } from "./token.ts";

export interface Deps {
  store: SecretStore;
  tokens: TokenSource;
  log: Logger;
  now: () => Date;
  /** Aborts when the run's budget (--timeout) is spent. */
  budget: AbortSignal;
  /**
   * Aborts on SIGTERM/SIGINT: no new work starts (no list page, no write);
   * writes already sent finish and are reported.
   */
  stop?: AbortSignal;
  /** Told each ECR answer's Date (lib/core/clock.ts compares it with the run's clock). */
  onEcrDate?: (region: string, date: Date) => void;
}

export type RunOptions = Pick<
  Config,
  | "annotation"
  | "namespaces"
  | "excludeNamespaces"
  | "selector"
  | "namespaceSelector"
  | "refreshWindowMs"
  | "force"
  | "dryRun"
  | "concurrency"
  | "timeoutMs"
  | "checkSecretTypes"
  | "events"
>;

/** Writes attempted per Secret when it keeps changing under us (409). */
const MAX_WRITE_ATTEMPTS = 3;

/** Due Secrets queued at most before discovery waits for the writers. */
const QUEUE_LIMIT = 500;

const WRONG_TYPE_MESSAGE = (annotation: string) =>
  `this Secret has the annotation ${annotation} but is not of type kubernetes.io/dockerconfigjson, ` +
  "so no registry credentials can be written into it; recreate it with " +
  "'kubectl create secret docker-registry' (or type: kubernetes.io/dockerconfigjson), or remove the annotation";

/** Just the reference: outcomes must not hold on to a Secret's data. */
const refOf = (s: SecretRef): SecretRef => ({ namespace: s.namespace, name: s.name });

/** The run could not start: nothing was looked at (exit code 2). */
export class CannotStartError extends KubeEcrError {
  constructor(message: string, options?: ErrorOptions & { flag?: string }) {
    super(message, options);
    this.flag = options?.flag;
  }
  /** The flag whose value the cluster refused, e.g. "--selector". */
  readonly flag: string | undefined;
}

/**
 * Runs the pipeline once. Throws CannotStartError when the cluster cannot be
 * used at all; every other failure is an outcome in the summary.
 */
export async function runOnce(opts: RunOptions, deps: Deps): Promise<Summary> {
  const { store, log } = deps;
  // The run's one "now", taken when the first page has arrived: by then the
  // API server has answered, so deps.now can be on its clock (lib/core/clock.ts).
  let runNow: Date | undefined;
  const now = () => runNow ??= deps.now();
  const tally = new Tally();
  const tokens = new RegionTokens(deps.tokens, log, (region, token) => {
    if (token.answeredAt) deps.onEcrDate?.(region, token.answeredAt);
  });
  const stopping = () => deps.stop?.aborted === true;
  const outOfTime = () =>
    stopping()
      ? "the run was interrupted (SIGTERM/SIGINT) before this Secret was written; the next run " +
        "will refresh it"
      : `the run's --timeout of ${opts.timeoutMs / 1000}s ran out before this Secret was done; ` +
        "the next run will finish it (raise --timeout if this repeats)";

  const report = async (outcome: Outcome, uid: string) => {
    tally.add(outcome);
    // No event once the budget is spent or the run is stopping: an event is
    // new work. The line still says what happened ("refreshed", not "would").
    await reportOutcome(
      outcome,
      uid,
      store,
      log,
      opts.dryRun,
      !(opts.dryRun || deps.budget.aborted || stopping()),
      opts.events,
    );
  };

  const refresh = async (secret: StoredSecret, registries: Registry[]): Promise<Outcome> => {
    const ref = refOf(secret);
    const got = await tokens.forKeys(registries.map(tokenKeyOf));
    if (deps.budget.aborted || stopping()) {
      return { kind: "failed", secret: ref, reason: "RefreshFailed", message: outOfTime() };
    }
    // Every registry of the Secret or none (joinCredentials). Each credential
    // carries its token's expiry: writeSecret caps it and records it per
    // host in this installation's status.
    const creds = joinCredentials(registries, got);
    if (creds instanceof TokenError) {
      return { kind: "failed", secret: ref, reason: "RefreshFailed", message: creds.message };
    }
    return await writeSecret(store, secret, registries, creds, {
      annotation: opts.annotation,
      dryRun: opts.dryRun,
      now: now(),
      maxAttempts: MAX_WRITE_ATTEMPTS,
      refreshWindowMs: opts.refreshWindowMs,
    });
  };

  // A task never throws: whatever goes wrong is that Secret's outcome.
  const settle = async (secret: StoredSecret, work: () => Promise<Outcome>) => {
    const ref = refOf(secret);
    let outcome: Outcome;
    try {
      outcome = await work();
    } catch (err) {
      // The Secret's "failed" line carries the cause chain: one line per Secret.
      const message = err instanceof BudgetError
        ? outOfTime()
        : `unexpected failure: ${describeError(err)}`;
      outcome = { kind: "failed", secret: ref, reason: "RefreshFailed", message };
    }
    await report(outcome, secret.uid);
  };

  const writers = new Workers(opts.concurrency, QUEUE_LIMIT);
  const handle = async (found: Found) => {
    if (found.kind === "scope-failed") {
      tally.failedNamespaces++;
      return;
    }
    if (found.kind === "rejected") {
      const { item } = found;
      // Another type: not KubeECR's to write (no event). The right type but
      // unreadable: that Secret failed, the others go on.
      await writers.push(() =>
        report(
          item.otherType
            ? { kind: "skipped", secret: refOf(item), why: item.why }
            : { kind: "failed", secret: refOf(item), reason: "RefreshFailed", message: item.why },
          item.uid,
        )
      );
      return;
    }
    const { secret } = found;
    const name = refString(secret);
    if (found.kind === "not-selected") {
      // No event: the namespace has not opted in, so KubeECR writes nothing there.
      await report({
        kind: "skipped",
        secret: refOf(secret),
        why: `its namespace is not selected by --namespace-selector ${opts.namespaceSelector}`,
      }, secret.uid);
      return;
    }
    const a = assess(secret, {
      annotation: opts.annotation,
      now: now(),
      refreshWindowMs: opts.refreshWindowMs,
      force: opts.force,
    });
    if (a.kind === "fresh") {
      await report({
        kind: "fresh",
        secret: refOf(secret),
        hosts: a.registries.map((r) => r.host),
        expiresAt: a.expiresAt,
      }, secret.uid);
    } else if (a.kind === "invalid") {
      const outcome: Outcome = {
        kind: "failed",
        secret: refOf(secret),
        reason: a.reason,
        message: a.message,
      };
      // Its event is a request: a writer records it, so discovery never waits on it.
      await writers.push(() => settle(secret, () => Promise.resolve(outcome)));
    } else {
      log.debug("due", { secret: name, why: a.why });
      await writers.push(() => settle(secret, () => refresh(secret, a.registries)));
    }
  };

  // Discovery ends in one of three ways: every page read; stopped by the
  // budget or a failure after the cluster answered (exit 1, what was found is
  // still finished); or stopped before the cluster answered at all (exit 2).
  let pages = 0;
  let stopped: unknown;
  try {
    for await (const page of discover(store, opts, log)) {
      pages++;
      for (const found of page) await handle(found);
      if (deps.budget.aborted || stopping()) throw new BudgetError("discovery");
    }
    if (opts.checkSecretTypes) {
      for await (const page of wrongTypeSecrets(store, opts, log)) {
        for (const secret of page) {
          const outcome: Outcome = {
            kind: "failed",
            secret: refOf(secret),
            reason: "InvalidSecretType",
            message: WRONG_TYPE_MESSAGE(opts.annotation),
          };
          await writers.push(() => report(outcome, secret.uid));
        }
      }
    }
  } catch (err) {
    // Not one page came back: nothing was attempted, whatever the reason.
    if (pages === 0) {
      throw new CannotStartError(
        err instanceof BudgetError
          ? `the Kubernetes API did not answer within the run's --timeout of ${
            opts.timeoutMs / 1000
          }s`
          : err instanceof Error
          ? err.message
          : String(err),
        {
          cause: err instanceof DiscoveryError ? err.error : err,
          flag: err instanceof DiscoveryError ? err.flag : undefined,
        },
      );
    }
    stopped = err;
    log.error("discovery stopped", {
      error: err instanceof BudgetError && stopping()
        ? "the run was interrupted (SIGTERM/SIGINT); Secrets not listed by then were not " +
          "looked at, the next run will"
        : err instanceof BudgetError
        ? `the run's --timeout of ${opts.timeoutMs / 1000}s ran out; Secrets not listed by then ` +
          "were not looked at, the next run will"
        : describeError(err),
    });
  }
  await writers.drain();
  const summary = tally.summary({
    ecrCalls: tokens.calls,
    incomplete: stopped !== undefined,
    interrupted: stopping(),
    noCredentials: tokens.failures.length > 0 && tokens.failures.every((t) => t.noCredentials),
  });
  logSummary(summary, log, opts.dryRun);
  return summary;
}

/**
 * At most `limit` tasks at once, and at most `queueLimit` waiting: push()
 * waits for room, so discovery never runs far ahead of the writers and memory
 * stays bounded whatever the number of Secrets.
 */
class Workers {
  readonly #limit: number;
  readonly #queueLimit: number;
  readonly #queue: (() => Promise<void>)[] = [];
  #running = 0;
  #room?: () => void;
  #idle?: () => void;

  constructor(limit: number, queueLimit: number) {
    this.#limit = limit;
    this.#queueLimit = queueLimit;
  }

  async push(task: () => Promise<void>): Promise<void> {
    this.#queue.push(task);
    this.#pump();
    if (this.#queue.length >= this.#queueLimit) {
      await new Promise<void>((resolve) => this.#room = resolve);
    }
  }

  drain(): Promise<void> {
    if (this.#running === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#idle = resolve);
  }

  #pump(): void {
    while (this.#running < this.#limit && this.#queue.length > 0) {
      const task = this.#queue.shift()!;
      this.#running++;
      task().finally(() => {
        this.#running--;
        if (this.#queue.length < this.#queueLimit) {
          this.#room?.();
          this.#room = undefined;
        }
        this.#pump();
        if (this.#running === 0 && this.#queue.length === 0) {
          this.#idle?.();
          this.#idle = undefined;
        }
      });
    }
  }
}
