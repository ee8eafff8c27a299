import assert from "node:assert/strict";
import { formatDuration } from "../../lib/core/time.ts";

Deno.test("formatDuration writes a duration as --refresh-window reads it, largest whole unit", () => {
  const cases: [number, string][] = [
    [12 * 3600_000, "12h"],
    [6 * 3600_000, "6h"],
    [90 * 60_000, "90m"],
    [30 * 60_000, "30m"],
    [45_000, "45s"],
    [1_500, "2s"],
  ];
  for (const [ms, text] of cases) assert.equal(formatDuration(ms), text, `${ms} ms`);
});
