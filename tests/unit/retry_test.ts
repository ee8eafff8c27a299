import assert from "node:assert/strict";
import {
  type Backoff,
  DEFAULT_BACKOFF,
  MAX_RETRY_AFTER_MS,
  parseRetryAfter,
  retryableStatus,
  retryDelay,
} from "../../lib/core/retry.ts";

Deno.test("retryableStatus: throttling and server failures only", () => {
  const retried = [429, 500, 502, 503, 504];
  for (let status = 200; status < 600; status++) {
    assert.equal(retryableStatus(status), retried.includes(status), String(status));
  }
});

Deno.test("parseRetryAfter: seconds, HTTP dates, caps and garbage", async (t) => {
  const now = new Date("2026-11-29T12:00:00Z");
  const cases: [string | null, number | undefined][] = [
    [null, undefined],
    ["", undefined],
    ["2", 2000],
    [" 0 ", 0],
    ["120", MAX_RETRY_AFTER_MS],
    ["Sun, 29 Nov 2026 12:00:05 GMT", 5000],
    ["Sun, 29 Nov 2026 11:00:00 GMT", 0], // in the past: now
    ["soon", undefined],
    ["-1", undefined],
    ["1.5", undefined],
  ];
  for (const [value, want] of cases) {
    await t.step(JSON.stringify(value), () => assert.equal(parseRetryAfter(value, now), want));
  }
});

Deno.test("retryDelay: capped exponential backoff with jitter, bounded attempts", async (t) => {
  const b: Backoff = { attempts: 5, baseMs: 100, capMs: 300 };
  const cases: [string, number, number | undefined, number, number | undefined][] = [
    ["first retry, no jitter", 1, undefined, 0, 50],
    ["first retry, full jitter", 1, undefined, 0.999999, 100],
    ["doubles", 2, undefined, 0, 100],
    ["capped", 4, undefined, 0, 150],
    ["capped, full jitter", 4, undefined, 0.999999, 300],
    ["Retry-After wins over the backoff", 1, 2000, 0.5, 2000],
    ["no attempt left", 5, undefined, 0, undefined],
    ["no attempt left even with Retry-After", 5, 1000, 0, undefined],
  ];
  for (const [name, attempt, retryAfter, random, want] of cases) {
    await t.step(name, () => assert.equal(retryDelay(attempt, b, retryAfter, random), want));
  }
  // The default allows 3 retries whose worst case stays short of the default 15s deadline.
  const worst = [1, 2, 3].map((a) => retryDelay(a, DEFAULT_BACKOFF, undefined, 0.999999)!);
  assert.equal(retryDelay(4, DEFAULT_BACKOFF, undefined, 0), undefined);
  assert.ok(worst.reduce((x, y) => x + y) < 2000, String(worst));
});
