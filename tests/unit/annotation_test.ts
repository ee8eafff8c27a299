import assert from "node:assert/strict";
import { parseAnnotation, type Registry } from "../../lib/annotation.ts";
import { AnnotationError } from "../../lib/errors.ts";
import { INVALID, VALID } from "../annotation_cases.ts";

const KEY = "deft.com/kubeecr";
const EXAMPLE = "expected <12-digit account>/<region>[,<account>/<region>...], " +
  "e.g. 123456789012/us-west-2";

const reg = (account: string, region: string, suffix = "amazonaws.com"): Registry => ({
  account,
  region,
  host: `${account}.dkr.ecr.${region}.${suffix}`,
});

// Accept or reject: the shared table (tests/annotation_cases.ts), which also
// drives the admission policy's integration test, so the two cannot disagree.
Deno.test("parseAnnotation accepts every valid value of the shared table", async (t) => {
  for (const { name, value } of VALID) {
    await t.step(name, () => {
      const registries = parseAnnotation(KEY, value);
      assert.ok(registries.length > 0, JSON.stringify(value));
    });
  }
});

Deno.test("parseAnnotation rejects every invalid value of the shared table, naming the culprit", async (t) => {
  for (const { name, value, culprit } of INVALID) {
    await t.step(name, () => {
      const caught = thrown(() => parseAnnotation(KEY, value));
      assert.ok(caught instanceof AnnotationError, String(caught));
      assert.equal(caught.key, KEY);
      assert.equal(caught.value, value);
      // Loosely on the wording (tuned in lib/annotation.ts): its explanation,
      // not merely its echo of the value, points at the culprit.
      const explanation = caught.message.replace(JSON.stringify(value), "");
      assert.ok(explanation.includes(culprit), caught.message);
    });
  }
});

// What the parser makes of a valid value: hosts, order, duplicates.
Deno.test("parseAnnotation turns items into registries", async (t) => {
  const cases: [string, string, Registry[]][] = [
    ["single item (the fixture)", "123456789012/us-west-2", [reg("123456789012", "us-west-2")]],
    [
      "several items with spaces around them",
      "  123456789012/us-west-2 ,\t210987654321/eu-central-1 ",
      [reg("123456789012", "us-west-2"), reg("210987654321", "eu-central-1")],
    ],
    [
      "duplicates dropped, first order kept",
      "210987654321/eu-central-1,123456789012/us-west-2, 210987654321/eu-central-1",
      [reg("210987654321", "eu-central-1"), reg("123456789012", "us-west-2")],
    ],
    [
      "same account in two regions",
      "123456789012/us-west-2,123456789012/us-east-1",
      [reg("123456789012", "us-west-2"), reg("123456789012", "us-east-1")],
    ],
    [
      "China region uses amazonaws.com.cn",
      "123456789012/cn-north-1",
      [reg("123456789012", "cn-north-1", "amazonaws.com.cn")],
    ],
    ["GovCloud region", "123456789012/us-gov-west-1", [reg("123456789012", "us-gov-west-1")]],
  ];
  for (const [name, value, want] of cases) {
    await t.step(name, () => assert.deepEqual(parseAnnotation(KEY, value), want));
  }
});

Deno.test("parseAnnotation's message says where, what, and what a valid value looks like", async (t) => {
  // [case, value, fragment that only this kind of mistake produces]
  const cases: [string, string, string][] = [
    ["empty", "", "value is empty"],
    [
      "account too short",
      "12345/us-west-2",
      'item "12345/us-west-2": account "12345" must be exactly 12 digits',
    ],
    ["region missing", "123456789012", 'item "123456789012": region is missing'],
    ["empty middle item", "123456789012/us-west-2,,210987654321/eu-west-1", "item 2 of 3 is empty"],
  ];
  for (const [name, value, fragment] of cases) {
    await t.step(name, () => {
      const caught = thrown(() => parseAnnotation(KEY, value));
      assert.ok(caught instanceof AnnotationError, String(caught));
      assert.ok(
        caught.message.startsWith(`annotation ${KEY}=${JSON.stringify(value)}: `),
        caught.message,
      );
      assert.ok(caught.message.includes(fragment), caught.message);
      assert.ok(caught.message.endsWith(`; ${EXAMPLE}`), caught.message);
    });
  }
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

Deno.test("the documented example message is produced verbatim", () => {
  assert.throws(
    () => parseAnnotation(KEY, "12345/us-west-2"),
    {
      message: `annotation ${KEY}="12345/us-west-2": item "12345/us-west-2": ` +
        `account "12345" must be exactly 12 digits; ${EXAMPLE}`,
    },
  );
});
