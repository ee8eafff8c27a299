/**
 * The user's installation steps, done in a scratch directory so the tree
 * stays untouched: shared by the tests that render or apply
 * examples/installation.
 */

import { run } from "../testenv/util.ts";

const REPO = new URL("../../", import.meta.url).pathname;

/**
 * Copies manifests/, examples/installation/ and examples/provision/ (which
 * builds on it) into `into`, keeping their relative layout, and creates aws.env from aws.env.example with test keys
 * (moto accepts any), as the example's instructions tell a user to.
 */
export async function copyInstallation(into: string) {
  await run("cp", ["-r", `${REPO}manifests`, `${into}/manifests`]);
  await Deno.mkdir(`${into}/examples`, { recursive: true });
  await run("cp", ["-r", `${REPO}examples/installation`, `${into}/examples/installation`]);
  await run("cp", ["-r", `${REPO}examples/provision`, `${into}/examples/provision`]);
  const example = await Deno.readTextFile(`${into}/examples/installation/aws.env.example`);
  const keys = example
    .replace(/^AWS_ACCESS_KEY_ID=.*$/m, "AWS_ACCESS_KEY_ID=AKIASMOKETESTEXAMPLE")
    .replace(/^AWS_SECRET_ACCESS_KEY=.*$/m, "AWS_SECRET_ACCESS_KEY=smoke-test-secret-access-key");
  await Deno.writeTextFile(`${into}/examples/installation/aws.env`, keys);
}
