// Parses the `deft.com/kubeecr` annotation value into ECR registries.
// Pure: a bad value becomes an AnnotationError for that Secret only; the
// caller turns it into a Warning event and leaves the Secret untouched.

import { AnnotationError } from "./errors.ts";

export interface Registry {
  /** 12-digit AWS account id, e.g. "123456789012". */
  account: string;
  /** AWS region name, e.g. "us-west-2". */
  region: string;
  /** Registry host, e.g. "123456789012.dkr.ecr.us-west-2.amazonaws.com". */
  host: string;
}

// Appended to every message so a user can fix the value without the docs.
const EXPECTED =
  "expected <12-digit account>/<region>[,<account>/<region>...], e.g. 123456789012/us-west-2";

// Values longer than this are not echoed whole; PREFIX characters are.
const LONG = 100;
const PREFIX = 40;

const ACCOUNT_RE = /^[0-9]{12}$/;
// Region prefix (two letters, optionally "-gov"; or the prefix of an isolated
// or sovereign partition), a direction word, a number:
// us-west-2, us-gov-west-1, cn-north-1, il-central-1, us-isob-east-1,
// eu-isoe-west-1, eusc-de-east-1. The admission policy holds the same
// expression (manifests/components/admission/policy.yaml).
const REGION_RE = /^([a-z]{2}(-gov)?|us-iso[bf]?|eu-isoe|eusc-de)-[a-z]+-\d{1,2}$/;

/**
 * The AWS partition of a region and the registry host's domain in it: the
 * partition ids and dnsSuffixes of the AWS SDK's partition table
 * (tests/unit/annotation_test.ts and tokens_test.ts check every region the
 * SDK knows against it). The first match wins; the rest is the aws partition.
 */
const PARTITIONS: [RegExp, partition: string, domain: string][] = [
  [/^cn-/, "aws-cn", "amazonaws.com.cn"],
  [/^us-gov-/, "aws-us-gov", "amazonaws.com"],
  [/^us-iso-/, "aws-iso", "c2s.ic.gov"],
  [/^us-isob-/, "aws-iso-b", "sc2s.sgov.gov"],
  [/^us-isof-/, "aws-iso-f", "csp.hci.ic.gov"],
  [/^eu-isoe-/, "aws-iso-e", "cloud.adc-e.uk"],
  [/^eusc-/, "aws-eusc", "amazonaws.eu"],
];
const AWS: [RegExp, string, string] = [/^/, "aws", "amazonaws.com"];

const partitionRow = (region: string) => PARTITIONS.find(([prefix]) => prefix.test(region)) ?? AWS;

/** The AWS partition a region belongs to, e.g. "aws", "aws-cn", "aws-us-gov". */
export function partitionOf(region: string): string {
  return partitionRow(region)[1];
}

/**
 * "123456789012/us-west-2, 210987654321/eu-central-1" → two registries.
 * Duplicates are dropped (first occurrence wins) so a Secret listing one
 * registry twice is not an error and gets one `auths` entry.
 */
export function parseAnnotation(key: string, value: string): Registry[] {
  const fail = (what: string): never => {
    // A long value is not echoed in full: the reason and the fix come first,
    // then a short prefix, so the log line and the event stay readable (and
    // a few hundred bytes long whatever the value).
    const message = value.length <= LONG
      ? `annotation ${key}=${JSON.stringify(value)}: ${what}; ${EXPECTED}`
      : `annotation ${key}: ${what}; ${EXPECTED}; the value has ${value.length} characters ` +
        `and starts with ${quote(value)}`;
    throw new AnnotationError(key, value, message);
  };

  if (value.trim() === "") fail("value is empty");

  const items = value.split(",");
  const out: Registry[] = [];
  const seen = new Set<string>();
  items.forEach((raw, i) => {
    const item = raw.trim();
    if (item === "") {
      // "a,,b" or "a," — almost always a typo, so say where it is.
      fail(`item ${i + 1} of ${items.length} is empty (stray comma?)`);
    }
    const reg = parseItem(item, (what) => fail(`item ${quote(item)}: ${what}`));
    if (!seen.has(reg.host)) {
      seen.add(reg.host);
      out.push(reg);
    }
  });
  return out;
}

function parseItem(item: string, fail: (what: string) => never): Registry {
  // "123456789012/us-west-2 210987654321/eu-west-1": several items run together.
  const runTogether = item.split(/[\s;]+/);
  if (runTogether.length > 1 && runTogether.every((p) => p.includes("/"))) {
    const by = [
      /;/.test(item) && "semicolons",
      /[\n\r]/.test(item) && "line breaks",
      /[^\S\n\r]/.test(item) && "spaces",
    ].filter(Boolean).join(" and ");
    fail(
      `holds ${runTogether.length} items separated by ${by}; separate items with commas, ` +
        `e.g. ${runTogether.slice(0, 2).map((p) => quote(p).slice(1, -1)).join(",")}`,
    );
  }
  const parts = item.split("/");
  if (parts.length === 1) {
    // A bare account is the most likely mistake: say the region is missing.
    if (ACCOUNT_RE.test(item)) fail("region is missing");
    fail('missing "/" between account and region');
  }
  if (parts.length > 2) {
    fail(`has ${parts.length - 1} "/" but must have exactly one (trailing slash?)`);
  }
  // No trimming inside an item: "123456789012 / us-west-2" is reported, not
  // guessed at (whitespace is allowed around items only).
  const [account, region] = parts;
  if (account === "") fail("account is missing");
  if (/^\p{Nd}+$/u.test(account) && !/^[0-9]+$/.test(account)) {
    // "１２３…" (full-width) or "١٢٣…" (Arabic-Indic) look right and are digits to Unicode.
    fail(`account ${quote(account)} must be written with the ASCII digits 0-9`);
  }
  if (!/^[0-9]+$/.test(account)) {
    fail(`account ${quote(account)} must contain only digits`);
  }
  if (!ACCOUNT_RE.test(account)) {
    fail(`account ${quote(account)} must be exactly 12 digits`);
  }
  if (region === "") fail("region is missing");
  if (!REGION_RE.test(region)) {
    const q = quote(region);
    fail(`region ${q} is not an AWS region name (lowercase, like us-west-2 or us-gov-west-1)`);
  }
  return { account, region, host: hostFor(account, region) };
}

/**
 * A part of the value, quoted as JSON; cut to PREFIX characters of quoted
 * text (escapes count: 70 000 NUL bytes must not become 420 000 characters).
 */
function quote(s: string): string {
  let out = "";
  for (const ch of s) {
    const q = JSON.stringify(ch).slice(1, -1);
    if (out.length + q.length > PREFIX) return `"${out}"…`;
    out += q;
  }
  return `"${out}"`;
}

/** ECR registry host, e.g. 123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov. */
export function hostFor(account: string, region: string): string {
  return `${account}.dkr.ecr.${region}.${partitionRow(region)[2]}`;
}
