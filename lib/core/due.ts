// Decides whether a Secret needs a new ECR token, from the data itself and
// this installation's own status annotation. Pure, so every branch is a table
// row in tests/unit/due_test.ts.

import { createHash } from "node:crypto";
import { STATUS_PREFIX } from "./status.ts";
import { parseTime } from "./time.ts";
import { TOKEN_LIFETIME_MS } from "./tokens.ts";

/** Clock skew tolerated between ECR and this machine. */
export const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * This installation's status annotation, derived from its `--annotation`
 * key so that two installations never read each other's state:
 * "deft.com/kubeecr" → "kubeecr.deft.com/status.deft.com_kubeecr",
 * "ecr" (no prefix) → "kubeecr.deft.com/status._ecr".
 * A DNS prefix holds no "_", so the first "_" marks where "/" was and an
 * unprefixed key (leading "_") cannot collide with a prefixed one. A name
 * longer than the 63 characters Kubernetes allows becomes
 * "status.h-<16 hex of SHA-256 of the key>" (no "_", so no collision either).
 */
export function statusKey(annotation: string): string {
  const slash = annotation.indexOf("/");
  const readable = slash < 0 ? `_${annotation}` : annotation.replace("/", "_");
  const name = `status.${readable}`;
  if (name.length <= 63) return `${STATUS_PREFIX}${name}`;
  return `${STATUS_PREFIX}status.h-${fingerprint(annotation).slice(0, 16)}`;
}

/**
 * A hash of an entry's exact text, never the text: 32 hex digits of its
 * SHA-256. node:crypto's createHash is synchronous, so assess() stays pure
 * and synchronous (crypto.subtle.digest would make it async).
 */
export function fingerprint(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

/** What one installation recorded about one registry host it wrote. */
export interface HostStatus {
  /** RFC 3339 UTC; already capped at write time. */
  expiresAt: string;
  /** fingerprint() of the exact entry text written. */
  sha256: string;
  /** The IAM role (--roles) whose token it is; absent: the base principal's. Not secret. */
  role?: string;
}

/**
 * Compact JSON, hosts sorted: {"<host>":{"expiresAt":"…","sha256":"…"},…};
 * a host written with a role also has "role":"<arn>" (none otherwise, so an
 * installation without a role map writes what it always wrote).
 */
export function formatStatus(hosts: Map<string, HostStatus>): string {
  const sorted = [...hosts].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
  const record = (s: HostStatus) => ({
    expiresAt: s.expiresAt,
    sha256: s.sha256,
    ...(s.role ? { role: s.role } : {}),
  });
  return JSON.stringify(
    Object.fromEntries(sorted.map(([h, s]) => [h, record(s)])),
  );
}

/** undefined when the value is not what formatStatus writes (hand-edited, truncated). */
export function parseStatus(value: string): Map<string, HostStatus> | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
  const out = new Map<string, HostStatus>();
  for (const [host, s] of Object.entries(doc)) {
    const { expiresAt, sha256, role } = (s ?? {}) as Record<string, unknown>;
    if (typeof expiresAt !== "string" || typeof sha256 !== "string") return undefined;
    if (role !== undefined && typeof role !== "string") return undefined;
    out.set(host, { expiresAt, sha256, ...(role ? { role } : {}) });
  }
  return out;
}

/**
 * An expiry ECR answered, capped at now + 12h + skew: an answer in year 5138
 * would otherwise make the Secret "fresh" forever.
 */
export function capExpiry(expiresAt: Date, now: Date): { expiresAt: Date; capped: boolean } {
  const cap = now.getTime() + TOKEN_LIFETIME_MS + CLOCK_SKEW_MS;
  return expiresAt.getTime() > cap
    ? { expiresAt: new Date(cap), capped: true }
    : { expiresAt, capped: false };
}

export type DueReason =
  | "forced"
  | "renew-requested"
  | "never-refreshed"
  | "invalid-status"
  | "new-registry"
  | "missing-entry"
  | "entry-changed"
  | "role-changed"
  | "invalid-expires-at"
  | "implausible-expires-at"
  | "expiring";

export type Decision =
  | { due: true; reason: DueReason; host?: string }
  | { due: false; reason: "fresh"; expiresAt: Date };

export interface DecideInput {
  /** Registry hosts the annotation asks for. */
  hosts: string[];
  /** fingerprint() of each host's entry as it is in `.dockerconfigjson` now; absent = no entry. */
  entries: Map<string, string>;
  /**
   * The role (--roles) each host is to be served by; a host not in it: the base principal.
   * "unknown": the caller has no role map (`kubeecr status`), so who wrote a host is not judged.
   */
  roles?: ReadonlyMap<string, string> | "unknown";
  /** This installation's status annotation value (statusKey), if any. */
  status: string | undefined;
  /** The RENEW_REQUESTED annotation: present (any value) = `kubeecr renew` asked for a refresh. */
  renewRequested?: string;
  now: Date;
  refreshWindowMs: number;
  force: boolean;
}

/**
 * Fresh only when, for every annotated host, the entry in the data is the
 * one this installation wrote (its fingerprint matches the status), written
 * with the role the map now chooses for it, and the expiry recorded for it is
 * later than now + window. Anything doubtful is
 * due: refreshing early costs one API call, refreshing late breaks image pulls.
 * The summary annotations (expires-at, refreshed-at) are never read: another
 * installation or a GitOps re-apply can leave them saying "fresh".
 */
export function decide(input: DecideInput): Decision {
  if (input.force) return { due: true, reason: "forced" };
  if (input.renewRequested !== undefined) return { due: true, reason: "renew-requested" };
  if (input.status === undefined) return { due: true, reason: "never-refreshed" };
  const status = parseStatus(input.status);
  if (status === undefined) return { due: true, reason: "invalid-status" };
  let earliest: Date | undefined;
  for (const host of input.hosts) {
    const recorded = status.get(host);
    if (!recorded) return { due: true, reason: "new-registry", host };
    const current = input.entries.get(host);
    if (current === undefined) return { due: true, reason: "missing-entry", host };
    if (current !== recorded.sha256) return { due: true, reason: "entry-changed", host };
    // The admin moved the host to another role (or to or from the base
    // principal): the token there is another identity's, whatever its expiry.
    if (input.roles !== "unknown" && recorded.role !== input.roles?.get(host)) {
      return { due: true, reason: "role-changed", host };
    }
    const expiresAt = parseTime(recorded.expiresAt);
    if (!expiresAt) return { due: true, reason: "invalid-expires-at", host };
    if (capExpiry(expiresAt, input.now).capped) {
      // Only a forged status or a clock that jumped back gets here.
      return { due: true, reason: "implausible-expires-at", host };
    }
    if (expiresAt.getTime() <= input.now.getTime() + input.refreshWindowMs) {
      return { due: true, reason: "expiring", host };
    }
    if (!earliest || expiresAt < earliest) earliest = expiresAt;
  }
  // An annotation with no hosts cannot be parsed, so `earliest` is set here.
  return { due: false, reason: "fresh", expiresAt: earliest! };
}
