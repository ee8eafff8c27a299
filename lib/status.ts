// `kubeecr status`: one list of the annotated Secrets (discover, as the run
// lists them) and one of KubeECR's Events, each Secret judged by the run's
// own decisions (lib/core/overview.ts), printed as a table or JSON. Reads
// only: no write, no Event, no AWS call.

import type { StatusConfig } from "./config.ts";
import { discover, type DiscoverOptions } from "./discover.ts";
import { refString } from "./core/errors.ts";
import {
  byAttention,
  type LatestEvent,
  needsAttention,
  otherRow,
  relativeTime,
  type StatusRow,
  statusRow,
} from "./core/overview.ts";
import { KubeApiError, type SecretStore } from "./core/store.ts";
import { formatTime } from "./core/time.ts";
import type { Logger } from "./log.ts";
import { EXIT_FAILED, EXIT_OK } from "./report.ts";

export interface StatusDeps {
  store: SecretStore;
  /** The latest KubeECR Event per Secret uid, in one namespace (undefined = all). */
  latestEvents: (namespace: string | undefined) => Promise<Map<string, LatestEvent>>;
  log: Logger;
  now: () => Date;
}

/** What discover() is told, and the window the due decision uses. */
export type StatusOptions = DiscoverOptions & Pick<StatusConfig, "refreshWindowMs">;

/** Every annotated Secret in scope, what needs attention first; `incomplete` when a namespace could not be listed. */
export async function statusRows(
  opts: StatusOptions,
  deps: StatusDeps,
): Promise<{ rows: StatusRow[]; incomplete: boolean }> {
  const rows: StatusRow[] = [];
  let incomplete = false;
  let events: Map<string, LatestEvent> | undefined;
  const now = deps.now();
  for await (const page of discover(deps.store, opts, deps.log)) {
    // After the first page: discover's first contact says whether the cluster can be used at all.
    if (!events) {
      try {
        events = await eventsIn(opts.namespaces, deps);
      } catch (err) {
        if (!(err instanceof KubeApiError)) throw err;
        // Without them a failed run looks like a due Secret: say so, and exit 1.
        incomplete = true;
        events = new Map();
        deps.log.error("cannot read KubeECR's events", {
          error: err.message,
          consequence: "the state of Secrets whose latest run failed is not shown",
        });
      }
    }
    for (const found of page) {
      if (found.kind === "scope-failed") {
        incomplete = true;
        deps.log.error("cannot list", { error: found.error.message });
      } else if (found.kind === "rejected") {
        const { item } = found;
        rows.push(
          item.otherType
            ? otherRow(item, undefined, "skipped", "other-type", item.why)
            : otherRow(item, undefined, "failed", "unreadable", item.why),
        );
      } else if (found.kind === "not-selected") {
        rows.push(otherRow(
          found.secret,
          found.secret.annotations[opts.annotation],
          "skipped",
          "not-selected",
          `its namespace is not selected by --namespace-selector ${opts.namespaceSelector}`,
        ));
      } else {
        rows.push(statusRow(found.secret, events.get(found.secret.uid), {
          annotation: opts.annotation,
          now,
          refreshWindowMs: opts.refreshWindowMs,
          force: false,
          // The role map is the CronJob's (mounted in its pod), not the user's: status
          // reports expiry and entries, and leaves a changed role to the run to find.
          roleMapUnknown: true,
        }));
      }
    }
  }
  return { rows: rows.sort(byAttention), incomplete };
}

async function eventsIn(namespaces: string[], deps: StatusDeps) {
  if (namespaces.length === 0) return await deps.latestEvents(undefined);
  const all = new Map<string, LatestEvent>();
  for (const ns of namespaces) for (const [uid, e] of await deps.latestEvents(ns)) all.set(uid, e);
  return all;
}

/** 0, or 1 when a token has expired (or there is none), a latest run failed, or a namespace could not be listed. */
export function statusExitCode(result: { rows: StatusRow[]; incomplete: boolean }): number {
  return result.incomplete || result.rows.some(needsAttention) ? EXIT_FAILED : EXIT_OK;
}

/** `-o json`: one object per Secret; times in RFC 3339 UTC, null when there is none. */
export function statusJson(rows: StatusRow[]): string {
  return JSON.stringify(
    rows.map((r) => ({
      namespace: r.namespace,
      name: r.name,
      registries: r.registries,
      state: r.state,
      reason: r.reason,
      ...(r.host ? { host: r.host } : {}),
      ...(r.message ? { message: r.message } : {}),
      expiresAt: r.expiresAt ? formatTime(r.expiresAt) : null,
      expired: r.expired,
      lastRefresh: r.lastRefresh ? formatTime(r.lastRefresh) : null,
      ...(r.renewRequestedAt ? { renewRequestedAt: formatTime(r.renewRequestedAt) } : {}),
    })),
    null,
    2,
  );
}

/** The table: one line per Secret, columns padded, the message last (it can be long). */
export function statusTable(rows: StatusRow[], now: Date): string {
  if (rows.length === 0) return "No annotated Secret in scope.";
  const when = (at: Date | undefined, none: string) =>
    at ? `${formatTime(at)} (${relativeTime(at, now)})` : none;
  const lines = [
    ["SECRET", "REGISTRIES", "STATE", "REASON", "EXPIRES", "LAST REFRESH", "MESSAGE"],
    ...rows.map((r) => [
      refString(r),
      r.registries.join(",") || "-",
      r.state === "due" && r.expired ? "due (expired)" : r.state,
      [r.reason ?? "-", r.host].filter(Boolean).join(" "),
      when(r.expiresAt, r.state === "skipped" ? "-" : "no token"),
      when(r.lastRefresh, "never"),
      r.message ??
        (r.renewRequestedAt
          ? `renew requested ${relativeTime(r.renewRequestedAt, now).replace(/^in /, "")}`
          : ""),
    ]),
  ];
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  return lines.map((l) =>
    l.map((c, i) => i === l.length - 1 ? c : c.padEnd(widths[i])).join("  ").trimEnd()
  )
    .join("\n");
}
