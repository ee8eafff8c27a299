// One run: discover → token → patch → report. Everything it touches comes in
// through Deps, so tests can give it the real servers or small doubles.

import type { Config } from "./config.ts";
import { discover } from "./discover.ts";
import { assess } from "./assess.ts";
import type { Registry } from "./annotation.ts";
import type { TokenSource } from "./ecr.ts";
import type { Logger } from "./log.ts";
import { type Outcome, writeSecret } from "./patch.ts";
import { logSummary, reportOutcome, summarize, type Summary } from "./report.ts";
import type { SecretStore, StoredSecret } from "./store.ts";
import { fetchTokens } from "./token.ts";

export interface Deps {
  store: SecretStore;
  tokens: TokenSource;
  log: Logger;
  now: () => Date;
}

export type RunOptions = Pick<
  Config,
  | "annotation"
  | "namespaces"
  | "excludeNamespaces"
  | "selector"
  | "refreshWindowMs"
  | "force"
  | "dryRun"
  | "concurrency"
>;

/** Writes attempted per Secret when it keeps changing under us (409). */
const MAX_WRITE_ATTEMPTS = 3;

interface Due {
  secret: StoredSecret;
  registries: Registry[];
}

const WRONG_TYPE_MESSAGE = (annotation: string) =>
  `this Secret has the annotation ${annotation} but is not of type kubernetes.io/dockerconfigjson, ` +
  "so no registry credentials can be written into it; recreate it with " +
  "'kubectl create secret docker-registry' (or type: kubernetes.io/dockerconfigjson), or remove the annotation";

/** Runs the pipeline once. Throws KubeApiError when the cluster cannot be used at all. */
export async function runOnce(opts: RunOptions, deps: Deps): Promise<Summary> {
  const { store, log } = deps;
  const now = deps.now();
  const found = await discover(store, opts, log);

  const outcomes: { outcome: Outcome; uid: string }[] = [];
  const record = (outcome: Outcome, uid: string) => outcomes.push({ outcome, uid });

  for (const s of found.wrongType) {
    record({
      kind: "failed",
      secret: s,
      reason: "InvalidSecretType",
      message: WRONG_TYPE_MESSAGE(opts.annotation),
    }, s.uid);
  }

  const due: Due[] = [];
  for (const secret of found.candidates) {
    const a = assess(secret, {
      annotation: opts.annotation,
      now,
      refreshWindowMs: opts.refreshWindowMs,
      force: opts.force,
    });
    if (a.kind === "invalid") {
      record({ kind: "failed", secret, reason: a.reason, message: a.message }, secret.uid);
    } else if (a.kind === "fresh") {
      record({
        kind: "fresh",
        secret,
        hosts: a.registries.map((r) => r.host),
        expiresAt: a.expiresAt,
      }, secret.uid);
    } else {
      log.debug("due", { secret: `${secret.namespace}/${secret.name}`, why: a.why });
      due.push({ secret, registries: a.registries });
    }
  }

  // Stage 2: one call per region that has something due.
  const { tokens, failures, calls } = await fetchTokens(
    due.flatMap((d) => d.registries.map((r) => r.region)),
    deps.tokens,
    log,
  );

  // Stage 3: bounded parallel writes.
  await forEachLimited(due, opts.concurrency, async ({ secret, registries }) => {
    // Every registry of the Secret or none: a half-written Secret would carry
    // an expires-at that is true for only some of its registries.
    const failure = registries.map((r) => failures.get(r.region)).find(Boolean);
    if (failure) {
      record(
        { kind: "failed", secret, reason: "RefreshFailed", message: failure.message },
        secret.uid,
      );
      return;
    }
    const creds = registries.map((r) => ({ host: r.host, ...tokens.get(r.region)! }));
    const outcome = await writeSecret(store, secret, registries, creds, {
      annotation: opts.annotation,
      dryRun: opts.dryRun,
      now,
      maxAttempts: MAX_WRITE_ATTEMPTS,
    });
    record(outcome, secret.uid);
  });

  // Stage 4: report, in a stable order so runs can be compared line by line.
  outcomes.sort((a, b) =>
    a.outcome.secret.namespace.localeCompare(b.outcome.secret.namespace) ||
    a.outcome.secret.name.localeCompare(b.outcome.secret.name)
  );
  await forEachLimited(
    outcomes,
    opts.concurrency,
    ({ outcome, uid }) => reportOutcome(outcome, uid, store, log, opts.dryRun),
  );
  const tokenFailures = [...failures.values()];
  const summary = summarize(outcomes.map((o) => o.outcome), {
    failedNamespaces: found.failedScopes.length,
    ecrCalls: calls,
    noCredentials: tokenFailures.length > 0 && tokenFailures.every((t) => t.noCredentials),
  });
  logSummary(summary, log, opts.dryRun);
  return summary;
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function forEachLimited<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
