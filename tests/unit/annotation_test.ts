import assert from "node:assert/strict";
import {
  findPartition,
  hostFor,
  hostProblem,
  parseAnnotation,
  type Registry,
} from "../../lib/core/annotation.ts";
import { AnnotationError } from "../../lib/core/errors.ts";
import type { SdkPartition } from "../../lib/core/partitions.ts";
import { tokenKeyOf } from "../../lib/core/tokens.ts";
import { INVALID, VALID } from "../annotation_cases.ts";
import { sdkPartitions } from "../tools/sandbox_hosts.ts";

const KEY = "deft.com/kubeecr";
const EXAMPLE = "expected <12-digit account>/<region>[,<account>/<region>...], " +
  "e.g. 123456789012/us-west-2";

const reg = (account: string, region: string, suffix = "amazonaws.com"): Registry => ({
  source: "ecr",
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
      // Loosely on the wording (tuned in lib/core/annotation.ts): its explanation,
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
    [
      "ISO-B region uses sc2s.sgov.gov",
      "123456789012/us-isob-east-1",
      [reg("123456789012", "us-isob-east-1", "sc2s.sgov.gov")],
    ],
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
    [
      "items separated by spaces",
      "123456789012/us-west-2 210987654321/eu-west-1",
      "holds 2 items separated by spaces; separate items with commas, " +
      "e.g. 123456789012/us-west-2,210987654321/eu-west-1",
    ],
    [
      "items separated by a line break (a YAML block scalar)",
      "123456789012/us-west-2\n210987654321/eu-west-1\n",
      "separated by line breaks; separate items with commas",
    ],
    [
      "items separated by semicolons",
      "123456789012/us-west-2;210987654321/eu-west-1; 111111111111/us-east-1",
      "holds 3 items separated by semicolons and spaces; separate items with commas",
    ],
    [
      "full-width digits in the account",
      "１２３４５６７８９０１２/us-west-2",
      'account "１２３４５６７８９０１２" must be written with the ASCII digits 0-9',
    ],
    [
      "Arabic-Indic digits in the account",
      "١٢٣٤٥٦٧٨٩٠١٢/us-west-2",
      "must be written with the ASCII digits 0-9",
    ],
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

Deno.test("a very long value: reason and fix first, only a short prefix echoed", async (t) => {
  const cases: [string, string, string][] = [
    [
      "many items, one bad",
      `${"123456789012/us-west-2,".repeat(200)}1234/us-west-2`,
      'item "1234/us-west-2"',
    ],
    ["one huge item", `123456789012/${"a".repeat(5000)}`, "is not an AWS region name"],
    ["binary junk", "\u0000".repeat(70_000), 'missing "/" between'],
  ];
  for (const [name, value, fragment] of cases) {
    await t.step(name, () => {
      const caught = thrown(() => parseAnnotation(KEY, value));
      assert.ok(caught instanceof AnnotationError, String(caught));
      assert.ok(caught.message.startsWith(`annotation ${KEY}: `), caught.message);
      assert.ok(caught.message.includes(fragment), caught.message);
      const fixAt = caught.message.indexOf(EXAMPLE);
      const echoAt = caught.message.indexOf("the value has");
      assert.ok(fixAt > 0 && echoAt > fixAt, "the fix comes before the echo");
      assert.ok(caught.message.includes(`the value has ${value.length} characters`));
      assert.ok(caught.message.length < 400, `${caught.message.length} characters`);
      assert.equal(caught.value, value, "the error still carries the whole value");
    });
  }
});

// The sandbox allows every region of every partition the AWS SDK knows
// (tests/tools/sandbox_hosts.ts); each must be accepted, and its registry
// host must end in that partition's dnsSuffix.
Deno.test("every region the AWS SDK knows parses, its registry host under its partition's dnsSuffix", async () => {
  const partitions = await sdkPartitions();
  let regions = 0;
  for (const p of partitions) {
    const { dnsSuffix } = (p as unknown as { outputs: { dnsSuffix: string } }).outputs;
    // "aws-global", "aws-iso-b-global": endpoint aliases, not regions with registries.
    for (const region of Object.keys(p.regions).filter((r) => !r.endsWith("-global"))) {
      regions++;
      assert.deepEqual(
        parseAnnotation(KEY, `123456789012/${region}`),
        [reg("123456789012", region, dnsSuffix)],
        `${p.id} ${region}`,
      );
      assert.equal(hostFor("123456789012", region), `123456789012.dkr.ecr.${region}.${dnsSuffix}`);
    }
  }
  assert.ok(regions > 30, `only ${regions} regions in the SDK's table`);
});

// Issue 17: ECR Public and complete registry hosts.
Deno.test("public.ecr.aws and complete hosts become registries under exactly that host", async (t) => {
  const host = (h: string, account: string, region: string): Registry => ({
    source: "ecr",
    account,
    region,
    host: h,
  });
  const PUBLIC: Registry = {
    source: "ecr-public",
    account: "",
    region: "us-east-1",
    host: "public.ecr.aws",
  };
  const cases: [string, string, Registry[]][] = [
    ["ECR Public", "public.ecr.aws", [PUBLIC]],
    [
      "FIPS",
      "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
      [host("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", "123456789012", "us-east-1")],
    ],
    [
      "dual-stack",
      "123456789012.dkr-ecr.us-west-2.on.aws",
      [host("123456789012.dkr-ecr.us-west-2.on.aws", "123456789012", "us-west-2")],
    ],
    [
      "FIPS dual-stack in GovCloud",
      "123456789012.dkr-ecr-fips.us-gov-west-1.on.aws",
      [host("123456789012.dkr-ecr-fips.us-gov-west-1.on.aws", "123456789012", "us-gov-west-1")],
    ],
    [
      "the default host written out equals its account/region item: one entry",
      "123456789012/us-west-2, 123456789012.dkr.ecr.us-west-2.amazonaws.com",
      [reg("123456789012", "us-west-2")],
    ],
    [
      "ECR Public listed twice: one entry",
      "public.ecr.aws,123456789012/us-west-2,public.ecr.aws",
      [PUBLIC, reg("123456789012", "us-west-2")],
    ],
  ];
  for (const [name, value, want] of cases) {
    await t.step(name, () => assert.deepEqual(parseAnnotation(KEY, value), want));
  }
});

Deno.test("every region the AWS SDK knows: its four host forms parse, a wrong domain says which is right", async () => {
  const partitions = await sdkPartitions();
  let checked = 0;
  for (const p of partitions) {
    const { dnsSuffix, dualStackDnsSuffix } = p.outputs;
    const dual = dualStackDnsSuffix.replace(/^api\./, "on.");
    for (const region of Object.keys(p.regions).filter((r) => !r.endsWith("-global"))) {
      // The grammar finds a region's partition by regionRegex alone: it must
      // agree with the SDK's list.
      assert.equal(findPartition(region)?.id, p.id, region);
      for (
        const h of [
          `123456789012.dkr.ecr.${region}.${dnsSuffix}`,
          `123456789012.dkr.ecr-fips.${region}.${dnsSuffix}`,
          `123456789012.dkr-ecr.${region}.${dual}`,
          `123456789012.dkr-ecr-fips.${region}.${dual}`,
        ]
      ) {
        checked++;
        const [got] = parseAnnotation(KEY, h);
        assert.deepEqual(got, { source: "ecr", account: "123456789012", region, host: h });
        assert.equal(tokenKeyOf(got).partition, p.id, h);
      }
      const wrong = `123456789012.dkr.ecr.${region}.example.com`;
      assert.match(
        hostProblem(wrong) ?? "",
        new RegExp(`write 123456789012\\.dkr\\.ecr\\.${region}\\.`),
      );
    }
  }
  assert.ok(checked > 120, `${checked} hosts`);
});

Deno.test("hostProblem: a partition without FIPS or dual-stack refuses those hosts and names the standard one", () => {
  const table: SdkPartition[] = [{
    id: "aws-test",
    regionRegex: "^zz\\-\\w+\\-\\d+$",
    dnsSuffix: "example.test",
    dualStackDomain: "on.example.test",
    supportsFIPS: false,
    supportsDualStack: false,
  }];
  assert.equal(hostProblem("123456789012.dkr.ecr.zz-east-1.example.test", table), undefined);
  assert.equal(
    hostProblem("123456789012.dkr.ecr-fips.zz-east-1.example.test", table),
    "partition aws-test has no FIPS endpoints (the AWS SDK's data): write " +
      "123456789012.dkr.ecr.zz-east-1.example.test",
  );
  assert.equal(
    hostProblem("123456789012.dkr-ecr.zz-east-1.on.example.test", table),
    "partition aws-test has no dual-stack endpoints (the AWS SDK's data): write " +
      "123456789012.dkr.ecr.zz-east-1.example.test",
  );
  assert.equal(
    hostProblem("123456789012.dkr.ecr.us-west-2.amazonaws.com", table),
    'region "us-west-2" is not in any partition the AWS SDK knows (aws-test): check the ' +
      "region's spelling",
  );
});
