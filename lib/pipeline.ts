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
import { namespacesToProvision, provisionSecrets } from "./provision.ts";
import {
  name as entryName,
  resolveRole,
  type RoleChoice,
  type RoleMap,
  selectorsOf,
} from "./core/roles.ts";
import { KubeApiError } from "./core/store.ts";

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
  /** The admin's role map (--roles), already validated; none: every registry is the base principal's. */
  roles?: RoleMap;
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
  | "provision"
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

  // The namespaces each of the role map's selectors selects, listed once per run.
  const bySelector = deps.roles ? await selectedNamespaces(deps.roles, store, log) : new Map();
  // public.ecr.aws is no account's registry and its token pulls only what is
  // public anyway: the map, which guards accounts, does not govern it.
  const roleOf = deps.roles &&
    ((registry: Registry, namespace: string): RoleChoice =>
      registry.source === "ecr-public"
        ? { kind: "base" }
        : resolveRole(deps.roles!, registry.account, namespace, bySelector));

  const refresh = async (
    secret: StoredSecret,
    registries: Registry[],
    roles: Map<string, string>,
  ): Promise<Outcome> => {
    const ref = refOf(secret);
    const got = await tokens.forKeys(registries.map((r) => tokenKeyOf(r, roles.get(r.host))));
    if (deps.budget.aborted || stopping()) {
      return { kind: "failed", secret: ref, reason: "RefreshFailed", message: outOfTime() };
    }
    // Every registry of the Secret or none (joinCredentials). Each credential
    // carries its token's expiry: writeSecret caps it and records it per
    // host in this installation's status.
    const creds = joinCredentials(registries, got, roles);
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
  // For --provision: the namespaces served, and where its Secret was listed or
  // could not be looked for.
  let selected: Set<string> | undefined;
  const holding = new Set<string>();
  const unlisted = new Set<string>();
  const handle = async (found: Found) => {
    if (found.kind === "scope-failed") {
      tally.failedNamespaces++;
      if (found.error.target.namespace) unlisted.add(found.error.target.namespace);
      return;
    }
    const listed = found.kind === "rejected" ? found.item : found.secret;
    if (listed.name === opts.provision?.secretName) holding.add(listed.namespace);
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
      ...(roleOf ? { roleOf } : {}),
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
      await writers.push(() => settle(secret, () => refresh(secret, a.registries, a.roles)));
    }
  };

  // Discovery ends in one of three ways: every page read; stopped by the
  // budget or a failure after the cluster answered (exit 1, what was found is
  // still finished); or stopped before the cluster answered at all (exit 2).
  let pages = 0;
  let stopped: unknown;
  try {
    const discovering = { ...opts, onSelected: (names: Set<string>) => selected = names };
    for await (const page of discover(store, discovering, log)) {
      pages++;
      for (const found of page) await handle(found);
      if (deps.budget.aborted || stopping()) throw new BudgetError("discovery");
    }
    if (opts.provision && selected) {
      // After the list, so only namespaces that lack the Secret cost a request;
      // each one created is then filled like any Secret found.
      const made = await provisionSecrets(
        store,
        namespacesToProvision({
          selected,
          namespaces: opts.namespaces,
          excludeNamespaces: opts.excludeNamespaces,
          present: holding,
          failed: unlisted,
        }),
        { provision: opts.provision, annotation: opts.annotation, dryRun: opts.dryRun },
        log,
        () => deps.budget.aborted || stopping(),
      );
      tally.failedNamespaces += made.failed;
      for (const secret of made.created) await handle({ kind: "secret", secret });
      if (made.stopped) throw new BudgetError("provisioning");
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
 * The namespaces each namespaceSelector of the role map selects: one list
 * per distinct selector, once per run, before any Secret is looked at. The
 * API server evaluates the selector, so it means exactly what kubectl -l
 * means. A selector it refuses, or a list it does not allow (RBAC: list
 * namespaces), stops the run before it starts: without it no Secret's role
 * can be decided.
 */
async function selectedNamespaces(
  map: RoleMap,
  store: SecretStore,
  log: Logger,
): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (const selector of selectorsOf(map)) {
    const users = map.roles.filter((e) => e.namespaceSelector === selector).map(entryName);
    try {
      out.set(selector, await store.listNamespaces(selector));
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      const why = err.status === 400
        ? `the API server refused the selector: ${err.serverMessage ?? err.message}; fix it ` +
          "in the role map"
        : err.status === 403
        ? `${err.message}; the role map's namespaceSelector needs 'list' on namespaces ` +
          "(the roles component's ClusterRole grants it)"
        : err.message;
      throw new CannotStartError(
        `role map ${map.path}: cannot list the namespaces that namespaceSelector ` +
          `${JSON.stringify(selector)} of ${users.join(", ")} selects: ${why}`,
        { cause: err, flag: "--roles" },
      );
    }
    if (out.get(selector)!.size === 0) {
      log.warn("role map entry selects no namespace", {
        entries: users,
        namespaceSelector: selector,
        fix: "label the namespaces that should use the role, or fix the selector",
      });
    }
  }
  return out;
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
