// One clock for the run's freshness decisions (due or fresh, dead tokens,
// capping): the API server's. A node whose clock is hours off would
// otherwise find every Secret due on every run (ahead), or keep tokens it
// believes fresh after they lapsed (behind). Every answer of the API server
// carries a Date header; the first one that disagrees with the local clock
// by more than CLOCK_CHECK_MS sets the offset used from then on, and is
// reported once with both times. Pure apart from the local clock it is given.

import { formatTime } from "./time.ts";

/** Skew tolerated before the server's time is used instead (Date has 1 s resolution). */
export const CLOCK_CHECK_MS = 2 * 60_000;

/** ECR's clock against the run's (the API server's): told once per run, decisions unchanged. */
export interface EcrSkewReport {
  region: string;
  "run-time": string;
  "ecr-time": string;
  "skew-seconds": number;
}

export interface SkewReport {
  "local-time": string;
  "api-server-time": string;
  "skew-seconds": number;
}

export class ServerClock {
  readonly #local: () => number;
  readonly #onSkew: (report: SkewReport) => void;
  #offsetMs = 0;
  #checked = false;

  /** `local` is this machine's clock (ms since the epoch); `onSkew` is told once. */
  constructor(local: () => number, onSkew: (report: SkewReport) => void) {
    this.#local = local;
    this.#onSkew = onSkew;
  }

  /** A Date header of an API server answer (RFC 7231 IMF-fixdate); unusable ones are ignored. */
  observe(date: string | null): void {
    if (this.#checked || !date) return;
    const server = Date.parse(date);
    if (Number.isNaN(server)) return;
    this.#checked = true;
    const local = this.#local();
    // The header is truncated to the second: the server's clock is up to 1 s later.
    const skew = server + 500 - local;
    if (Math.abs(skew) <= CLOCK_CHECK_MS) return;
    this.#offsetMs = skew;
    this.#onSkew({
      "local-time": formatTime(new Date(local)),
      "api-server-time": formatTime(new Date(server)),
      "skew-seconds": Math.round((server - local) / 1000),
    });
  }

  #ecrChecked = false;

  /**
   * The Date of an ECR answer, read just now. ECR's expiresAt is on its
   * clock; if that disagrees with the API server's, `onSkew` is told once (the
   * API server's clock still rules: the Secrets' status is judged on it).
   */
  observeEcr(region: string, date: Date, onSkew: (report: EcrSkewReport) => void): void {
    if (this.#ecrChecked) return;
    this.#ecrChecked = true;
    const run = this.now().getTime();
    if (Math.abs(date.getTime() + 500 - run) <= CLOCK_CHECK_MS) return;
    onSkew({
      region,
      "run-time": formatTime(new Date(run)),
      "ecr-time": formatTime(date),
      "skew-seconds": Math.round((date.getTime() - run) / 1000),
    });
  }

  /** The time freshness is judged by: local, corrected by the API server's when they disagree. */
  now(): Date {
    return new Date(this.#local() + this.#offsetMs);
  }
}
