/**
 * The one table of annotation values that both checks of the grammar must
 * agree on:
 *
 * - tests/unit/annotation_test.ts runs each through lib/core/annotation.ts
 *   parseAnnotation (what the program does at run time);
 * - tests/integration/admission_test.ts applies each as a Secret through the
 *   real API server with manifests/components/admission installed (what the
 *   ValidatingAdmissionPolicy does at `kubectl apply` time).
 *
 * A value added here is checked by both; a change to the grammar on one side
 * only fails one of them. The grammar: comma-separated items, whitespace
 * around items allowed (exactly what JavaScript's String.prototype.trim
 * removes); an item is `<account>/<region>` (`<account>` 12 ASCII digits,
 * `<region>` matching ^([a-z]{2}(-gov)?|us-iso[bf]?|eu-isoe|eusc-de)-[a-z]+-\d{1,2}$),
 * `public.ecr.aws`, or a complete private-registry host (standard, FIPS,
 * dual-stack) exactly as the AWS SDK's partition data makes it for its region
 * (lib/core/partitions.ts).
 */

export interface ValidCase {
  name: string;
  value: string;
}

export interface InvalidCase {
  name: string;
  value: string;
  /**
   * What is wrong, worded as the admission policy words it (and, today, the
   * parser too), e.g. `account "123456789" must be exactly 12 digits`. The
   * integration test requires the policy's message to contain it verbatim.
   */
  reason: string;
  /**
   * The part of the value the message must point at (an item, an account, a
   * region; short, since long items may be shown cut) or, for an empty value
   * or item, the word "empty". The unit test requires only this of the
   * parser's message, outside its echo of the whole value: its wording is
   * tuned separately and may drift from `reason`.
   */
  culprit: string;
}

export const VALID: ValidCase[] = [
  { name: "one item (the fixture)", value: "123456789012/us-west-2" },
  {
    name: "several items, spaces and a tab around them",
    value: "  123456789012/us-west-2 ,\t210987654321/eu-central-1 ",
  },
  // `deft.com/kubeecr: |` in YAML ends the value with a newline.
  { name: "trailing newline (a YAML block scalar)", value: "123456789012/us-west-2\n" },
  {
    name: "one item per line",
    value: "123456789012/us-west-2,\n210987654321/eu-central-1,\r\n123456789012/us-east-1\n",
  },
  { name: "a registry listed twice", value: "123456789012/us-west-2,123456789012/us-west-2" },
  { name: "China", value: "123456789012/cn-north-1" },
  { name: "GovCloud", value: "123456789012/us-gov-west-1" },
  // The isolated (ISO) and sovereign (EUSC) partitions the sandbox allows.
  { name: "ISO (us-iso)", value: "123456789012/us-iso-east-1" },
  { name: "ISO-B (us-isob)", value: "123456789012/us-isob-east-1" },
  { name: "ISO-F (us-isof)", value: "123456789012/us-isof-south-1" },
  { name: "ISO-E (eu-isoe)", value: "123456789012/eu-isoe-west-1" },
  { name: "EUSC (eusc-de)", value: "123456789012/eusc-de-east-1" },
  { name: "ap-southeast-3", value: "123456789012/ap-southeast-3" },
  { name: "il-central-1", value: "123456789012/il-central-1" },
  { name: "two-digit region number", value: "123456789012/ap-southeast-10" },
  // Both sides trim what String.prototype.trim trims, not only ASCII spaces.
  { name: "no-break space around an item", value: "\u00a0123456789012/us-west-2\u00a0" },
  { name: "byte order mark before the value", value: "\ufeff123456789012/us-west-2" },
  // ECR Public and complete registry hosts (issue 17).
  { name: "ECR Public", value: "public.ecr.aws" },
  { name: "ECR Public beside a private registry", value: "public.ecr.aws, 123456789012/us-west-2" },
  { name: "standard host", value: "123456789012.dkr.ecr.us-west-2.amazonaws.com" },
  { name: "FIPS host", value: "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com" },
  { name: "dual-stack host", value: "123456789012.dkr-ecr.us-west-2.on.aws" },
  { name: "FIPS dual-stack host", value: "123456789012.dkr-ecr-fips.us-gov-west-1.on.aws" },
  { name: "China host", value: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn" },
  {
    name: "China dual-stack host",
    value: "123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn",
  },
  { name: "ISO-B FIPS host", value: "123456789012.dkr.ecr-fips.us-isob-east-1.sc2s.sgov.gov" },
  {
    name: "a host beside its account/region item",
    value: "123456789012/us-west-2,123456789012.dkr-ecr.us-west-2.on.aws",
  },
];

const item = (i: string) => `item "${i}": `;

export const INVALID: InvalidCase[] = [
  { name: "empty", value: "", reason: "value is empty", culprit: "empty" },
  { name: "whitespace only", value: "  \t ", reason: "value is empty", culprit: "empty" },
  {
    name: "9-digit account (the original description's example)",
    value: "123456789/us-west-2",
    reason: `${item("123456789/us-west-2")}account "123456789" must be exactly 12 digits`,
    culprit: "123456789",
  },
  {
    name: "13-digit account",
    value: "1234567890123/us-west-2",
    reason: 'account "1234567890123" must be exactly 12 digits',
    culprit: "1234567890123",
  },
  {
    name: "account with a letter",
    value: "12345678901a/us-west-2",
    reason: 'account "12345678901a" must contain only digits',
    culprit: "12345678901a",
  },
  {
    name: "account with non-ASCII digits",
    value: "١٢٣٤٥٦٧٨٩٠١٢/us-west-2",
    reason: 'account "١٢٣٤٥٦٧٨٩٠١٢" must contain only digits',
    culprit: "١٢٣٤٥٦٧٨٩٠١٢",
  },
  {
    name: "account missing",
    value: "/us-west-2",
    reason: `${item("/us-west-2")}account is missing`,
    culprit: "/us-west-2",
  },
  {
    name: "region missing",
    value: "123456789012",
    reason: `${item("123456789012")}region is missing`,
    culprit: "123456789012",
  },
  {
    name: "region empty after the slash",
    value: "123456789012/",
    reason: `${item("123456789012/")}region is missing`,
    culprit: "123456789012/",
  },
  {
    name: "region only",
    value: "us-west-2",
    reason: 'missing "/" between account and region',
    culprit: "us-west-2",
  },
  {
    name: "slash missing",
    value: "123456789012us-west-2",
    reason: 'missing "/" between account and region',
    culprit: "123456789012us-west-2",
  },
  {
    name: "region without its number",
    value: "123456789012/us-west",
    reason: 'region "us-west" is not an AWS region name',
    culprit: "us-west",
  },
  {
    name: "region in upper case",
    value: "123456789012/US-WEST-2",
    reason: 'region "US-WEST-2" is not an AWS region name',
    culprit: "US-WEST-2",
  },
  {
    name: "region without dashes",
    value: "123456789012/uswest2",
    reason: 'region "uswest2" is not an AWS region name',
    culprit: "uswest2",
  },
  {
    name: "double dash in the region",
    value: "123456789012/us--west-2",
    reason: 'region "us--west-2" is not an AWS region name',
    culprit: "us--west-2",
  },
  {
    name: "three-digit region number",
    value: "123456789012/us-west-123",
    reason: 'region "us-west-123" is not an AWS region name',
    culprit: "us-west-123",
  },
  {
    // Only the isolated partitions the AWS SDK knows: us-iso, us-isob, us-isof, eu-isoe.
    name: "an ISO partition that does not exist",
    value: "123456789012/us-isox-east-1",
    reason: 'region "us-isox-east-1" is not an AWS region name',
    culprit: "us-isox-east-1",
  },
  {
    name: "availability zone instead of region",
    value: "123456789012/us-west-2a",
    reason: 'region "us-west-2a" is not an AWS region name',
    culprit: "us-west-2a",
  },
  {
    name: "space inside an item",
    value: "123456789012 /us-west-2",
    reason: 'account "123456789012 " must contain only digits',
    culprit: "123456789012 ",
  },
  {
    name: "trailing slash",
    value: "123456789012/us-west-2/",
    reason: 'has 2 "/" but must have exactly one',
    culprit: "123456789012/us-west-2/",
  },
  {
    name: "semicolon instead of comma",
    value: "123456789012/us-west-2;210987654321/eu-west-1",
    reason: 'has 2 "/" but must have exactly one',
    culprit: "123456789012/us-west-2;",
  },
  {
    name: "empty item in the middle",
    value: "123456789012/us-west-2,,210987654321/eu-west-1",
    reason: "item 2 of 3 is empty",
    culprit: "empty",
  },
  {
    name: "trailing comma",
    value: "123456789012/us-west-2,",
    reason: "item 2 of 2 is empty",
    culprit: "empty",
  },
  {
    name: "one bad item among good ones is named",
    value: "123456789012/us-west-2, 21098765432/eu-west-1",
    reason: `${item("21098765432/eu-west-1")}account "21098765432" must be exactly 12 digits`,
    culprit: "21098765432/eu-west-1",
  },
  // Registry hosts: judged by the AWS SDK's partition data.
  {
    name: "host with the wrong partition's domain (China region, .amazonaws.com)",
    value: "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
    reason: "region cn-north-1 is in partition aws-cn, whose registry hosts end in " +
      ".amazonaws.com.cn: write 123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
    culprit: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
  },
  {
    name: "dual-stack host with the standard domain",
    value: "123456789012.dkr-ecr.us-west-2.amazonaws.com",
    reason: "region us-west-2 is in partition aws, whose dual-stack registry hosts end in " +
      ".on.aws: write 123456789012.dkr-ecr.us-west-2.on.aws",
    culprit: "123456789012.dkr-ecr.us-west-2.on.aws",
  },
  {
    name: "standard host with the dual-stack domain",
    value: "123456789012.dkr.ecr.us-west-2.on.aws",
    reason: "whose registry hosts end in .amazonaws.com: write " +
      "123456789012.dkr.ecr.us-west-2.amazonaws.com",
    culprit: "123456789012.dkr.ecr.us-west-2.amazonaws.com",
  },
  {
    name: "FIPS host in the China partition with the wrong domain",
    value: "123456789012.dkr.ecr-fips.cn-north-1.amazonaws.com",
    reason: "whose FIPS registry hosts end in .amazonaws.com.cn",
    culprit: "123456789012.dkr.ecr-fips.cn-north-1.amazonaws.com.cn",
  },
  {
    name: "host with a region no partition has",
    value: "123456789012.dkr.ecr.xx-west-1.amazonaws.com",
    reason: 'region "xx-west-1" is not in any partition the AWS SDK knows',
    culprit: "xx-west-1",
  },
  {
    name: "host with an upper-case region",
    value: "123456789012.dkr.ecr.US-WEST-2.amazonaws.com",
    reason: 'region "US-WEST-2" is not in any partition the AWS SDK knows',
    culprit: "US-WEST-2",
  },
  {
    name: "host with an 11-digit account",
    value: "12345678901.dkr.ecr.us-west-2.amazonaws.com",
    reason: 'account "12345678901" must be exactly 12 digits',
    culprit: "12345678901",
  },
  {
    name: "a registry that is not ECR",
    value: "registry.example.com",
    reason: "is not an ECR registry host: a private registry's host is " +
      "<account>.dkr.ecr.<region>.amazonaws.com",
    culprit: "is not an ECR registry host",
  },
  {
    name: "host missing its domain",
    value: "123456789012.dkr.ecr.us-west-2",
    reason: "is not an ECR registry host",
    culprit: "is not an ECR registry host",
  },
  {
    name: "ECR Public with a repository path",
    value: "public.ecr.aws/my-alias",
    reason: 'a registry takes no path: write the host alone, "public.ecr.aws"',
    culprit: '"public.ecr.aws"',
  },
  {
    name: "private host with a repository path",
    value: "123456789012.dkr.ecr.us-west-2.amazonaws.com/app",
    reason: "a registry takes no path: write the host alone",
    culprit: "a registry takes no path",
  },
  // U+0085 (NEL) is Unicode white space, but String.prototype.trim keeps it:
  // the policy must not be more lenient than the parser.
  {
    name: "next-line character after an item",
    value: "123456789012/us-west-2\u0085",
    reason: "is not an AWS region name",
    culprit: "us-west-2\u0085",
  },
];
