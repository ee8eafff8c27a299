/** `deno task testenv --token-lifetime D`: the durations it takes, and what it refuses. */

import assert from "node:assert/strict";
import { parseDuration } from "../testenv/main.ts";

const CASES: [string, number | undefined][] = [
  ["40s", 40],
  ["5m", 300],
  ["12h", 43200],
  ["90", 90],
  [" 40s ", 40],
  ["0s", undefined],
  ["", undefined],
  ["40x", undefined],
  ["-5s", undefined],
  ["1.5h", undefined],
  ["1h30m", undefined],
];

for (const [text, want] of CASES) {
  Deno.test(`parseDuration(${JSON.stringify(text)}) = ${want}`, () => {
    assert.equal(parseDuration(text), want);
  });
}
