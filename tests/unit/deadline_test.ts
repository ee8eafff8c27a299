import assert from "node:assert/strict";
import { Deadline } from "../../lib/kube/deadline.ts";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("Deadline: aborts when its time has passed, and says it expired", async () => {
  const budget = new AbortController();
  const d = new Deadline(budget.signal, 5);
  assert.equal(d.signal.aborted, false);
  await tick(50);
  assert.equal(d.signal.aborted, true);
  assert.equal(d.expired, true);
  assert.equal((d.signal.reason as DOMException).name, "TimeoutError");
  d.release();
});

Deno.test("Deadline: aborts with the budget, which is not an expiry", () => {
  const budget = new AbortController();
  const d = new Deadline(budget.signal, 60_000);
  budget.abort("spent");
  assert.equal(d.signal.aborted, true);
  assert.equal(d.signal.reason, "spent");
  assert.equal(d.expired, false);
  d.release();
});

Deno.test("Deadline: a budget already spent aborts it at once", () => {
  const budget = new AbortController();
  budget.abort("spent");
  const d = new Deadline(budget.signal, 60_000);
  assert.equal(d.signal.aborted, true);
  assert.equal(d.expired, false);
  d.release();
});

Deno.test("Deadline: once released, neither its timer nor the budget reaches it", async () => {
  // What makes it cost nothing after the request: the budget no longer holds
  // it (AbortSignal.any's dependents were held until the budget aborted) and
  // no timer is left to fire.
  const budget = new AbortController();
  const d = new Deadline(budget.signal, 5);
  d.release();
  await tick(50);
  budget.abort("spent");
  assert.equal(d.signal.aborted, false);
  assert.equal(d.expired, false);
});
