// What `kubeecr status` says about one Secret, decided from what the run
// itself decides from (assess(): fresh, due and why, invalid) and the latest
// Event KubeECR recorded on it (a Warning = its latest run failed). Pure:
// the list and the events come in, rows go out; sorting and the "in 5h12m"
// wording are here too, so every branch is a table row in a unit test.

import { assess, type AssessOptions, vouchedRecords } from "./assess.ts";
import { parseStatus, statusKey } from "./due.ts";
import type { EventType } from "./events.ts";
import type { SecretRef } from "./errors.ts";
import { REFRESHED_AT, RENEW_REQUESTED } from "./status.ts";
import type { StoredSecret } from "./store.ts";
import { parseTime } from "./time.ts";

export type SecretState = "fresh" | "due" | "failed" | "skipped";

/** The latest KubeECR Event on one Secret. */
export interface LatestEvent {
  type: EventType;
  reason: string;
  message: string;
  at: Date;
}

export interface StatusRow extends SecretRef {
  /** The annotation's items as written ("123456789012/us-west-2"). */
  registries: string[];
  state: SecretState;
  /**
   * fresh: null; due: assess()'s reason (expiring, entry-changed,
   * renew-requested, ...); failed: the Event reason (RefreshFailed,
   * InvalidAnnotation, ...); skipped: not-selected or other-type.
   */
  reason: string | null;
  /** The registry host the due reason is about, when it names one. */
  host?: string;
  /** What went wrong or why it is skipped, for failed and skipped. */
  message?: string;
  /**
   * The earliest expiry of the tokens this installation wrote into the
   * Secret, when the data still holds each of them; undefined when it holds
   * none (never refreshed, re-applied placeholder, hand edit).
   */
  expiresAt?: Date;
  /** No live token: expiresAt is past, or there is none. */
  expired: boolean;
  /** kubeecr.deft.com/refreshed-at, as the last write left it. */
  lastRefresh?: Date;
  /** When `kubeecr renew` marked it, if the mark is still there. */
  renewRequestedAt?: Date;
}

/** The row of an annotated dockerconfigjson Secret the run serves. */
export function statusRow(
  secret: StoredSecret,
  latest: LatestEvent | undefined,
  opts: AssessOptions,
): StatusRow {
  const a = assess(secret, opts);
  const expiresAt = a.kind === "invalid"
    ? undefined
    : liveUntil(secret, opts.annotation, a.registries.map((r) => r.host));
  const base = {
    namespace: secret.namespace,
    name: secret.name,
    registries: itemsOf(secret.annotations[opts.annotation]),
    ...(expiresAt ? { expiresAt } : {}),
    expired: expiresAt === undefined || expiresAt.getTime() <= opts.now.getTime(),
    ...optionalTime("lastRefresh", secret.annotations[REFRESHED_AT]),
    ...optionalTime("renewRequestedAt", secret.annotations[RENEW_REQUESTED]),
  };
  if (a.kind === "invalid") {
    return { ...base, state: "failed", reason: a.reason, message: a.message };
  }
  // The latest run's word on this Secret: a Warning means it failed, and
  // nothing since says otherwise (a later refresh would be a later Normal event).
  if (latest?.type === "Warning") {
    return { ...base, state: "failed", reason: latest.reason, message: latest.message };
  }
  if (a.kind === "fresh") return { ...base, state: "fresh", reason: null };
  return { ...base, state: "due", reason: a.reason, ...(a.host ? { host: a.host } : {}) };
}

/** A Secret the run leaves alone (another type, a namespace not selected), or one it cannot read. */
export function otherRow(
  ref: SecretRef,
  annotation: string | undefined,
  state: "skipped" | "failed",
  reason: string,
  message: string,
): StatusRow {
  return {
    namespace: ref.namespace,
    name: ref.name,
    registries: itemsOf(annotation),
    state,
    reason,
    message,
    expired: state === "failed",
  };
}

/** Whether `kubeecr status` exits 1: a token expired (or none), or a latest run failed. */
export function needsAttention(row: StatusRow): boolean {
  return row.state === "failed" || (row.state !== "skipped" && row.expired);
}

const RANK: Record<SecretState, number> = { failed: 0, due: 1, fresh: 2, skipped: 3 };

/**
 * What needs attention first: failed, then due (expired before expiring),
 * then fresh, then skipped; within each, the earliest expiry (none = first),
 * then namespace/name.
 */
export function byAttention(a: StatusRow, b: StatusRow): number {
  return RANK[a.state] - RANK[b.state] ||
    Number(b.expired) - Number(a.expired) ||
    (a.expiresAt?.getTime() ?? -Infinity) - (b.expiresAt?.getTime() ?? -Infinity) ||
    compare(a.namespace, b.namespace) || compare(a.name, b.name);
}

const compare = (a: string, b: string) => a < b ? -1 : a > b ? 1 : 0;

/** "in 5h12m", "3m ago", "in 45s": how far `at` is from `now`, to the minute above a minute. */
export function relativeTime(at: Date, now: Date): string {
  const ms = at.getTime() - now.getTime();
  const s = Math.round(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  // Days and hours past a day; hours and minutes below; seconds below a minute.
  const text = s < 60 ? `${s}s` : d > 0 ? `${d}d${h}h` : h > 0 ? `${h}h${m}m` : `${m}m`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

/** The annotation's items as the user wrote them, whatever their validity. */
function itemsOf(value: string | undefined): string[] {
  return (value ?? "").split(",").map((i) => i.trim()).filter((i) => i !== "");
}

/** The earliest expiry over the annotated hosts, when the data vouches for every one. */
function liveUntil(secret: StoredSecret, annotation: string, hosts: string[]): Date | undefined {
  const status = parseStatus(secret.annotations[statusKey(annotation)] ?? "");
  if (!status) return undefined;
  const vouched = vouchedRecords(secret.dockerConfig, status);
  let earliest: Date | undefined;
  for (const host of hosts) {
    const at = vouched.has(host) ? parseTime(vouched.get(host)!.expiresAt) : undefined;
    if (!at) return undefined;
    if (!earliest || at < earliest) earliest = at;
  }
  return earliest;
}

function optionalTime<K extends string>(key: K, raw: string | undefined) {
  const at = raw === undefined ? undefined : parseTime(raw);
  return (at ? { [key]: at } : {}) as { [P in K]?: Date };
}
