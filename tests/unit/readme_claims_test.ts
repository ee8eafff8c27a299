/**
 * README's claims about the CronJob, held to manifests/base/cronjob.yaml
 * (issue 8 found "keeps finished Jobs for a day" where the history limit
 * deleted a successful Job an hour later). Plain line matching: the
 * manifest is ours and each field appears once.
 */

import assert from "node:assert/strict";

const REPO = new URL("../../", import.meta.url);
const readme = await Deno.readTextFile(new URL("README.md", REPO));
const cronjob = await Deno.readTextFile(new URL("manifests/base/cronjob.yaml", REPO));

function field(name: string): number {
  const m = new RegExp(`^\\s+${name}: (\\d+)$`, "m").exec(cronjob);
  assert.ok(m, `${name} in cronjob.yaml`);
  return Number(m[1]);
}

Deno.test("README's CronJob bullets match the manifest", () => {
  assert.match(readme, new RegExp(`retries ${field("backoffLimit")} times`));
  assert.match(readme, new RegExp(`killed after ${field("activeDeadlineSeconds") / 60} minutes`));
  assert.equal(field("successfulJobsHistoryLimit"), 1);
  assert.match(readme, /keeps the last successful Job until the next one\s+succeeds/);
  assert.match(readme, new RegExp(`the last ${field("failedJobsHistoryLimit")} failed\\s+Jobs`));
  assert.equal(field("ttlSecondsAfterFinished"), 86400);
  assert.match(readme, /for up to a\s+day/);
});
