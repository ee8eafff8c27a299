// Time as KubeECR writes and reads it: RFC 3339, UTC; durations as a user writes them.

/** RFC 3339 in UTC without milliseconds, e.g. "2026-11-27T21:00:00Z". */
export function formatTime(d: Date): string {
  // A run formats the same few seconds over and over: the run's now and each
  // token's expiry for every Secret (annotations, log line, event message),
  // the current second for every log line. Each second is formatted once.
  const second = Math.floor(d.getTime() / 1000);
  let text = FORMATTED.get(second);
  if (text === undefined) {
    text = d.toISOString().replace(/\.\d{3}Z$/, "Z");
    if (FORMATTED.size >= 256) FORMATTED.clear();
    FORMATTED.set(second, text);
  }
  return text;
}

/** Seconds since the epoch → formatTime's text; bounded, cleared when full. */
const FORMATTED = new Map<number, string>();

// RFC 3339 date-time: Temporal is lenient about the separator and the
// offset's form; this keeps the accepted text to what RFC 3339 allows.
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Strict RFC 3339 parser (Temporal.Instant.from rejects impossible dates
 * such as 2026-02-30 instead of rolling them over as Date.parse does).
 */
export function parseTime(s: string): Date | undefined {
  if (!RFC3339.test(s)) return undefined;
  try {
    return new Date(Temporal.Instant.from(s.toUpperCase()).epochMilliseconds);
  } catch {
    return undefined;
  }
}

/** 12h, 90m, 45s: a duration as a user writes it (and --refresh-window reads it). */
export function formatDuration(ms: number): string {
  if (ms % 3600_000 === 0) return `${ms / 3600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}
