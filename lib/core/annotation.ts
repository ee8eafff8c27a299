// Parses the `deft.com/kubeecr` annotation value into ECR registries.
// Pure: a bad value becomes an AnnotationError for that Secret only; the
// caller turns it into a Warning event and leaves the Secret untouched.
//
// Three item forms:
//   123456789012/us-west-2                              account/region (default host)
//   123456789012.dkr.ecr-fips.us-east-1.amazonaws.com   a complete private-registry host
//   public.ecr.aws                                      ECR Public
// A host is judged by the AWS SDK's partition data (./partitions.ts, generated).

import { AnnotationError } from "./errors.ts";
import { SDK_PARTITIONS, type SdkPartition } from "./partitions.ts";

export interface Registry {
  /** Whose token: a private registry's (ECR, per region) or ECR Public's. */
  source: "ecr" | "ecr-public";
  /** 12-digit AWS account id, e.g. "123456789012"; "" for ECR Public, whose token is no account's. */
  account: string;
  /** AWS region name, e.g. "us-west-2"; ECR Public's is us-east-1, the one region it serves tokens in. */
  region: string;
  /** Registry host, e.g. "123456789012.dkr.ecr.us-west-2.amazonaws.com", the `auths` key. */
  host: string;
}

/** ECR Public's registry host, and the one region its GetAuthorizationToken exists in. */
export const ECR_PUBLIC_HOST = "public.ecr.aws";
export const ECR_PUBLIC_REGION = "us-east-1";

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
 * The partition whose regionRegex matches `region`, in the SDK's order (as
 * the SDK's own lookup does for a region it does not list by name), or
 * undefined. `table` is the generated one; tests pass others.
 */
export function findPartition(
  region: string,
  table: readonly SdkPartition[] = SDK_PARTITIONS,
): SdkPartition | undefined {
  return table.find((p) => new RegExp(p.regionRegex).test(region));
}

// An account/region item's region that matches no partition (it passed
// REGION_RE, e.g. "xx-west-1") is the aws partition's, as the SDK decides.
const partitionRow = (region: string) =>
  findPartition(region) ?? SDK_PARTITIONS.find((p) => p.id === "aws")!;

/** The AWS partition a region belongs to, e.g. "aws", "aws-cn", "aws-us-gov". */
export function partitionOf(region: string): string {
  return partitionRow(region).id;
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
  if (runTogether.length > 1 && runTogether.every((p) => /[/.]/.test(p))) {
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
  if (item === ECR_PUBLIC_HOST) {
    return { source: "ecr-public", account: "", region: ECR_PUBLIC_REGION, host: ECR_PUBLIC_HOST };
  }
  // No "/" but a ".": a registry host (an account/region item never has a dot).
  if (!item.includes("/") && item.includes(".")) {
    const problem = hostProblem(item);
    if (problem !== undefined) fail(problem);
    const [account, form, ...rest] = item.split(".");
    const region = form === "dkr" ? rest[1] : rest[0];
    return { source: "ecr", account, region, host: item };
  }
  const parts = item.split("/");
  if (parts.length > 1 && parts[0].includes(".")) {
    // "public.ecr.aws/my-alias", "123456789012.dkr.ecr.….amazonaws.com/app": an image
    // reference, not a registry; the token serves every repository of the host.
    fail(`a registry takes no path: write the host alone, ${quote(parts[0])}`);
  }
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
  return { source: "ecr", account, region, host: hostFor(account, region) };
}

// The forms, for the message when a host is none of them.
const HOST_FORMS = "a private registry's host is <account>.dkr.ecr.<region>.amazonaws.com, " +
  "FIPS <account>.dkr.ecr-fips.<region>.amazonaws.com, dual-stack " +
  "<account>.dkr-ecr.<region>.on.aws (FIPS dkr-ecr-fips); ECR Public's is public.ecr.aws";

/**
 * What is wrong with a registry host item, or undefined when it is exactly
 * the host of its form in its region's partition:
 *
 *   <account>.dkr.ecr.<region>.<dnsSuffix>            standard
 *   <account>.dkr.ecr-fips.<region>.<dnsSuffix>       FIPS (if the partition supports FIPS)
 *   <account>.dkr-ecr.<region>.<dualStackDomain>      dual-stack (if it supports dual-stack)
 *   <account>.dkr-ecr-fips.<region>.<dualStackDomain> both
 *
 * The admission policy's `hostProblems` variable says the same in CEL, in
 * the same words (the shared table, tests/annotation_cases.ts, holds them equal).
 */
export function hostProblem(
  host: string,
  table: readonly SdkPartition[] = SDK_PARTITIONS,
): string | undefined {
  const labels = host.split(".");
  const dkr = labels.length >= 5 && labels[1] === "dkr" &&
    (labels[2] === "ecr" || labels[2] === "ecr-fips");
  const dual = labels.length >= 4 && (labels[1] === "dkr-ecr" || labels[1] === "dkr-ecr-fips");
  if (!dkr && !dual) return `is not an ECR registry host: ${HOST_FORMS}`;
  const account = labels[0];
  if (!/^[0-9]+$/.test(account)) return `account ${quote(account)} must contain only digits`;
  if (!ACCOUNT_RE.test(account)) return `account ${quote(account)} must be exactly 12 digits`;
  const region = dkr ? labels[3] : labels[2];
  const fips = (dkr ? labels[2] : labels[1]).endsWith("-fips");
  const p = findPartition(region, table);
  if (!p) {
    return `region ${quote(region)} is not in any partition the AWS SDK knows ` +
      `(${table.map((q) => q.id).join(", ")}): check the region's spelling`;
  }
  const standard = `${account}.dkr.ecr.${region}.${p.dnsSuffix}`;
  if (fips && !p.supportsFIPS) {
    return `partition ${p.id} has no FIPS endpoints (the AWS SDK's data): write ${standard}`;
  }
  if (dual && !p.supportsDualStack) {
    return `partition ${p.id} has no dual-stack endpoints (the AWS SDK's data): write ${standard}`;
  }
  const want = dkr
    ? `${account}.dkr.${labels[2]}.${region}.${p.dnsSuffix}`
    : `${account}.${labels[1]}.${region}.${p.dualStackDomain}`;
  if (host === want) return undefined;
  const kind = fips && dual ? "FIPS dual-stack " : fips ? "FIPS " : dual ? "dual-stack " : "";
  return `region ${region} is in partition ${p.id}, whose ${kind}registry hosts end in ` +
    `.${dkr ? p.dnsSuffix : p.dualStackDomain}: write ${want}`;
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
  return `${account}.dkr.ecr.${region}.${partitionRow(region).dnsSuffix}`;
}
