/**
 * README is the user's door: its Configuration section must be exactly what
 * `deno task start --help` prints, so neither can drift from the other.
 */

import assert from "node:assert/strict";

const REPO = new URL("../../", import.meta.url).pathname;

Deno.test("README's configuration section is the output of `deno task start --help`", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "start", "--help"],
    cwd: REPO,
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const help = new TextDecoder().decode(out.stdout).trimEnd();

  const readme = await Deno.readTextFile(`${REPO}README.md`);
  const section = /<!-- help:start -->\s*```text\n([\s\S]*?)\n```\s*<!-- help:end -->/.exec(readme);
  assert.ok(
    section,
    "README has a ```text block between <!-- help:start --> and <!-- help:end -->",
  );
  assert.equal(section[1], help);
});
