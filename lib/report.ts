// Stage 4, report: one log line and one event per Secret, a summary line,
// and the exit code.

import { describeError, refString } from "./core/errors.ts";
import { formatTime } from "./core/time.ts";
import type { Logger } from "./log.ts";
import type { Outcome } from "./patch.ts";
import type { SecretStore } from "./core/store.ts";
import { secretEvent } from "./core/events.ts";

export interface Summary {
  discovered: number;
  refreshed: number;
  fresh: number;
  skipped: number;
  failed: number;
  /** Namespaces that could not be listed. */
  failedNamespaces: number;
  ecrCalls: number;
  /** Discovery did not get through every page (budget spent, list failed midway). */
  incomplete: boolean;
  /** SIGTERM/SIGINT stopped the run before it was done. */
  interrupted: boolean;
  /** True when the only failures are "no AWS credentials at all" (exit 2). */
  noCredentials: boolean;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_CANNOT_START = 2;

export function exitCode(s: Summary): number {
  if (s.noCredentials && s.refreshed === 0) return EXIT_CANNOT_START;
  return s.failed > 0 || s.failedNamespaces > 0 || s.incomplete || s.interrupted
    ? EXIT_FAILED
    : EXIT_OK;
}

/** Counts outcomes as they are reported. */
export class Tally {
  readonly #counts: Record<Outcome["kind"], number> = {
    refreshed: 0,
    fresh: 0,
    skipped: 0,
    failed: 0,
  };
  failedNamespaces = 0;

  add(o: Outcome): void {
    this.#counts[o.kind]++;
  }

  /** Secrets with an outcome so far. */
  get looked(): number {
    return Object.values(this.#counts).reduce((a, b) => a + b, 0);
  }

  summary(
    extra: { ecrCalls: number; incomplete: boolean; interrupted: boolean; noCredentials: boolean },
  ): Summary {
    return {
      discovered: this.looked,
      ...this.#counts,
      failedNamespaces: this.failedNamespaces,
      ...extra,
    };
  }
}

/** Logs the outcome's line and records its event (none for fresh, skipped or dry-run). */
export async function reportOutcome(
  o: Outcome,
  uid: string,
  store: SecretStore,
  log: Logger,
  dryRun: boolean,
  /** Record the event; false once the budget is spent or the run is stopping. */
  withEvent = !dryRun,
  /** --events: "warnings" records no Normal Refreshed Event (the line above says it). */
  events: "all" | "warnings" = "all",
): Promise<void> {
  const secret = refString(o.secret);
  switch (o.kind) {
    case "refreshed":
      log.info(dryRun ? "would refresh" : "refreshed", {
        secret,
        registries: o.hosts,
        "expires-at": formatTime(o.expiresAt),
        ...(o.capped ? { "expiry-capped": o.capped } : {}),
        ...(o.roles ? { roles: Object.entries(o.roles).map(([h, r]) => `${h}=${r}`) } : {}),
      });
      break;
    case "fresh":
      log.info("fresh", { secret, registries: o.hosts, "expires-at": formatTime(o.expiresAt) });
      return;
    case "skipped":
      log.info("skipped", { secret, reason: o.why });
      return;
    case "failed":
      log.error("failed", { secret, reason: o.reason, error: o.message });
      break;
  }
  if (dryRun || !withEvent) return;
  if (o.kind === "refreshed" && events === "warnings") return;
  const event = o.kind === "refreshed" ? secretEvent("Refreshed", o) : secretEvent(o.reason, o);
  try {
    await store.recordEvent({ ...o.secret, uid }, event);
  } catch (err) {
    // The Secret's outcome stands; a missing event must not turn it into a failure.
    log.warn("cannot record event", { secret, reason: event.reason, error: describeError(err) });
  }
}

export function logSummary(s: Summary, log: Logger, dryRun: boolean): void {
  const fields = {
    discovered: s.discovered,
    refreshed: s.refreshed,
    fresh: s.fresh,
    skipped: s.skipped,
    failed: s.failed,
    "failed-namespaces": s.failedNamespaces,
    "ecr-calls": s.ecrCalls,
    ...(s.incomplete ? { incomplete: true } : {}),
    ...(s.interrupted ? { interrupted: true } : {}),
    "dry-run": dryRun,
    "exit-code": exitCode(s),
  };
  if (exitCode(s) === EXIT_OK) log.info("summary", fields);
  else log.error("summary", fields);
}
