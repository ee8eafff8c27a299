import assert from "node:assert/strict";
import { eventMessage, eventName, secretEvent } from "../../lib/core/events.ts";

Deno.test("eventName: the Secret's name and 16 hex digits of SHA-256 over uid, type, reason, message", () => {
  // 48a9fa6a9e7bae40 is what the adapter computed with crypto.subtle before
  // the name moved to the core: Events recorded by earlier runs keep counting.
  assert.equal(
    eventName({ namespace: "ns", name: "pull", uid: "uid-1" }, "Warning", "RefreshFailed", "boom"),
    "pull.48a9fa6a9e7bae40",
  );
  const long = "x".repeat(253);
  assert.equal(
    eventName({ namespace: "ns", name: long, uid: "u" }, "Normal", "Refreshed", "m").length,
    236 + 1 + 16,
  );
});

Deno.test("eventMessage: capped at the API server's 1024 characters", () => {
  assert.equal(eventMessage("a".repeat(2000)).length, 1024);
  assert.equal(eventMessage("short"), "short");
});

const EXPIRES = new Date("2026-11-28T00:00:00Z");
const CASES: [string, ReturnType<typeof secretEvent>, ReturnType<typeof secretEvent>][] = [
  [
    "Refreshed is Normal and names the hosts and expiry",
    secretEvent("Refreshed", { hosts: ["a", "b"], expiresAt: EXPIRES }),
    {
      type: "Normal",
      reason: "Refreshed",
      message: "Refreshed ECR credentials for a, b; they expire at 2026-11-28T00:00:00Z",
    },
  ],
  [
    "Refreshed says which expiries were capped",
    secretEvent("Refreshed", { hosts: ["a"], expiresAt: EXPIRES, capped: ["a"] }),
    {
      type: "Normal",
      reason: "Refreshed",
      message: "Refreshed ECR credentials for a; they expire at 2026-11-28T00:00:00Z " +
        "(capped to 12h: ECR answered a later expiry for a)",
    },
  ],
  [
    "a failure is a Warning carrying the outcome's message",
    secretEvent("RefreshFailed", { message: "no token" }),
    { type: "Warning", reason: "RefreshFailed", message: "no token" },
  ],
  [
    "InvalidAnnotation is a Warning",
    secretEvent("InvalidAnnotation", { message: "bad" }),
    { type: "Warning", reason: "InvalidAnnotation", message: "bad" },
  ],
];

for (const [name, got, want] of CASES) {
  Deno.test(`secretEvent: ${name}`, () => assert.deepEqual(got, want));
}
