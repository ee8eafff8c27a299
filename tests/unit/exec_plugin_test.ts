// The exec plugin's pure parts: how long its token is reused, and what of
// its stderr may be shown.

import assert from "node:assert/strict";
import { execExpiry, stderrHint } from "../../lib/kube/exec.ts";

const NOW = Date.parse("2026-12-01T12:00:00Z");

Deno.test("execExpiry: a usable expiry is reused until 30 s before it; anything else for the run", () => {
  const cases: [string, string | undefined, number, boolean][] = [
    ["absent", undefined, Infinity, false],
    ["an hour away", "2026-12-01T13:00:00Z", Date.parse("2026-12-01T12:59:30Z"), false],
    ["unparseable", "tomorrow", Infinity, true],
    ["past", "2020-01-01T00:00:00Z", Infinity, true],
    ["10 s away", "2026-12-01T12:00:10Z", Infinity, true],
  ];
  for (const [name, at, until, warns] of cases) {
    const got = execExpiry(at, NOW);
    assert.equal(got.reuseUntil, until, name);
    assert.equal(got.warning !== undefined, warns, name);
  }
});

Deno.test("stderrHint: first line only, credential-like values removed", () => {
  const cases: [string, string][] = [
    ["error: session expired\nsecond line", "error: session expired"],
    ["\n  error: token=abc123 expired", "error: token [REDACTED]"],
    ['password: "p a s s" wrong', "password [REDACTED]"],
    ["Authorization Bearer eyJhbGciOi", "Authorization [REDACTED]"],
    ["error: Bearer eyJhbGciOi", "error: Bearer [REDACTED]"],
    [`failed with ${"A".repeat(40)}`, "failed with [REDACTED]"],
    ["", ""],
  ];
  for (const [input, want] of cases) assert.equal(stderrHint(input), want, input);
});
