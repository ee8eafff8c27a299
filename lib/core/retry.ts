// What is retried and how long to wait: pure, so every rule is a table row in
// tests/unit/retry_test.ts. Modelled on client-go's util/retry and
// wait.Backoff: capped exponential backoff with jitter, a bounded number of
// attempts, and a server's Retry-After taken at its word (within the budget).

export interface Backoff {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Delay before the second attempt, in ms; doubled for each further one. */
  baseMs: number;
  /** No single wait is longer than this. */
  capMs: number;
}

/** 4 attempts: waits of about 0.25 s, 0.5 s, 1 s (each between half and all of it). */
export const DEFAULT_BACKOFF: Backoff = { attempts: 4, baseMs: 250, capMs: 5_000 };

/** Longest Retry-After honoured; a server asking for more is asked again sooner. */
export const MAX_RETRY_AFTER_MS = 30_000;

/** HTTP statuses worth another attempt: throttled, or the server (or a proxy) failed. */
export const RETRYABLE_STATUSES: readonly number[] = [429, 500, 502, 503, 504];

export function retryableStatus(status: number): boolean {
  return RETRYABLE_STATUSES.includes(status);
}

/**
 * Retry-After as milliseconds: delay-seconds or an HTTP date; undefined when
 * absent or unreadable (then the backoff applies).
 */
export function parseRetryAfter(value: string | null, now: Date): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Math.min(Number(v) * 1000, MAX_RETRY_AFTER_MS);
  // IMF-fixdate, e.g. "Sun, 29 Nov 2026 12:00:05 GMT"; Date.parse alone
  // would also take "-1" or "1.5" for dates.
  if (!/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(at - now.getTime(), 0), MAX_RETRY_AFTER_MS);
}

/**
 * How long to wait after failed attempt `attempt` (1-based), or undefined when
 * no attempt is left. `random` is in [0, 1): full jitter over the upper half,
 * so clients that failed together do not retry together.
 */
export function retryDelay(
  attempt: number,
  backoff: Backoff,
  retryAfterMs: number | undefined,
  random: number,
): number | undefined {
  if (attempt >= backoff.attempts) return undefined;
  if (retryAfterMs !== undefined) return retryAfterMs;
  const ceiling = Math.min(backoff.baseMs * 2 ** (attempt - 1), backoff.capMs);
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}
