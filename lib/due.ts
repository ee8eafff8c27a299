// Decides whether a Secret needs a new ECR token. Pure, so every branch is
// a table row in tests/unit/due_test.ts.

/** Prefix of the annotations kubeecr owns on a Secret (and only those). */
export const STATUS_PREFIX = "kubeecr.deft.com/";
/** When kubeecr last wrote the Secret (RFC 3339, UTC). */
export const REFRESHED_AT = `${STATUS_PREFIX}refreshed-at`;
/** When the token in the Secret expires (RFC 3339, UTC). */
export const EXPIRES_AT = `${STATUS_PREFIX}expires-at`;

export type Decision =
  | {
    due: true;
    reason: "forced" | "never-refreshed" | "missing-registry" | "expiring" | "invalid-expires-at";
  }
  | { due: false; reason: "fresh"; expiresAt: Date };

export interface DecideInput {
  /** Registry hosts the annotation asks for. */
  hosts: string[];
  /** Hosts already holding a credential in `.dockerconfigjson` (readAuthHosts). */
  presentHosts: Set<string>;
  /** Value of the EXPIRES_AT annotation, if any. */
  expiresAt: string | undefined;
  now: Date;
  refreshWindowMs: number;
  force: boolean;
}

/**
 * Fresh only when the recorded expiry is strictly later than now + window
 * AND every annotated host is already in `auths` (a registry added to the
 * annotation must not wait up to 12h). Anything doubtful is due: refreshing
 * early costs one API call, refreshing late breaks image pulls.
 */
export function decide(input: DecideInput): Decision {
  if (input.force) return { due: true, reason: "forced" };
  if (input.expiresAt === undefined) return { due: true, reason: "never-refreshed" };
  const expiresAt = parseTime(input.expiresAt);
  if (expiresAt === undefined) return { due: true, reason: "invalid-expires-at" };
  if (input.hosts.some((h) => !input.presentHosts.has(h))) {
    return { due: true, reason: "missing-registry" };
  }
  if (expiresAt.getTime() <= input.now.getTime() + input.refreshWindowMs) {
    return { due: true, reason: "expiring" };
  }
  return { due: false, reason: "fresh", expiresAt };
}

/** RFC 3339 in UTC without milliseconds, e.g. "2026-11-27T21:00:00Z". */
export function formatTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

// RFC 3339 date-time: full date, "T", full time, optional fraction, Z or offset.
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Strict RFC 3339 parser. Date.parse alone is too lenient: it accepts
 * "2026-11-27" or "Nov 27 2026" and rolls "2026-02-30" over to March 2.
 */
export function parseTime(s: string): Date | undefined {
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, sec] = m.map(Number);
  // Reject impossible fields instead of letting Date roll them over. A leap
  // second (":60") is rejected too: Date cannot represent it, and "due" is the
  // safe answer for a value we cannot read.
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > days || h > 23 || mi > 59 || sec > 59) return undefined;
  const t = Date.parse(s.toUpperCase());
  return Number.isNaN(t) ? undefined : new Date(t);
}
