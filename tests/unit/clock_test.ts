import assert from "node:assert/strict";
import {
  CLOCK_CHECK_MS,
  type EcrSkewReport,
  ServerClock,
  type SkewReport,
} from "../../lib/core/clock.ts";

const LOCAL = Date.parse("2026-11-27T12:00:00Z");

function clock(local = LOCAL) {
  const reports: SkewReport[] = [];
  return { clock: new ServerClock(() => local, (r) => reports.push(r)), reports };
}

Deno.test("within the tolerance the local clock is used and nothing is reported", () => {
  const { clock: c, reports } = clock();
  c.observe(new Date(LOCAL + CLOCK_CHECK_MS - 2000).toUTCString());
  assert.equal(c.now().getTime(), LOCAL);
  assert.deepEqual(reports, []);
});

Deno.test("a node 13h ahead judges by the API server's time, reported once with both times", () => {
  const { clock: c, reports } = clock(LOCAL + 13 * 3600_000);
  c.observe(new Date(LOCAL).toUTCString());
  c.observe(new Date(LOCAL + 60_000).toUTCString());
  assert.ok(Math.abs(c.now().getTime() - LOCAL) <= 1000, c.now().toISOString());
  assert.deepEqual(reports, [{
    "local-time": "2026-11-28T01:00:00Z",
    "api-server-time": "2026-11-27T12:00:00Z",
    "skew-seconds": -46800,
  }]);
});

Deno.test("a node behind is corrected too", () => {
  const { clock: c, reports } = clock(LOCAL - 3600_000);
  c.observe(new Date(LOCAL).toUTCString());
  assert.ok(Math.abs(c.now().getTime() - LOCAL) <= 1000);
  assert.equal(reports.length, 1);
});

Deno.test("a missing or unparseable Date is ignored, and the next usable one counts", () => {
  const { clock: c, reports } = clock(LOCAL + 3600_000);
  c.observe(null);
  c.observe("yesterday-ish");
  assert.equal(c.now().getTime(), LOCAL + 3600_000);
  c.observe(new Date(LOCAL).toUTCString());
  assert.equal(reports.length, 1);
});

Deno.test("ECR's Date is compared with the run's clock (the API server's): told once when it is off", () => {
  const { clock: c } = clock(LOCAL + 13 * 3600_000);
  c.observe(new Date(LOCAL).toUTCString());
  const told: EcrSkewReport[] = [];
  // ECR agrees with the API server, not with the skewed node: nothing to say.
  c.observeEcr("us-west-2", new Date(LOCAL), (r) => told.push(r));
  assert.equal(told.length, 0);

  const { clock: d } = clock();
  d.observe(new Date(LOCAL).toUTCString());
  d.observeEcr("eu-west-1", new Date(LOCAL - 3600_000), (r) => told.push(r));
  d.observeEcr("eu-west-1", new Date(LOCAL - 7200_000), (r) => told.push(r));
  assert.deepEqual(told, [{
    region: "eu-west-1",
    "run-time": "2026-11-27T12:00:00Z",
    "ecr-time": "2026-11-27T11:00:00Z",
    "skew-seconds": -3600,
  }]);
});
