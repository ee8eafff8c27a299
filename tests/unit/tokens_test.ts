import assert from "node:assert/strict";
import { hostFor, type Registry } from "../../lib/core/annotation.ts";
import {
  type HostCredential,
  joinCredentials,
  keyString,
  type RegistryToken,
  TokenError,
  tokenKeyOf,
} from "../../lib/core/tokens.ts";
import { sdkPartitions } from "../tools/sandbox_hosts.ts";

const reg = (account: string, region: string): Registry => ({
  source: "ecr",
  account,
  region,
  host: hostFor(account, region),
});
const token = (password: string): RegistryToken => ({
  password,
  expiresAt: new Date("2026-11-28T00:00:00Z"),
});
const denied = (region: string) => new TokenError(region, "AccessDeniedException", false, region);

const A_WEST = reg("111111111111", "us-west-2");
const B_WEST = reg("222222222222", "us-west-2");
const A_EU = reg("111111111111", "eu-central-1");
const A_CN = reg("111111111111", "cn-north-1");

const WEST = "ecr/aws/us-west-2";
const EU = "ecr/aws/eu-central-1";
const CN = "ecr/aws-cn/cn-north-1";

const EU_DENIED = denied("eu-central-1");
const WEST_DENIED = denied("us-west-2");

const CASES: {
  name: string;
  registries: Registry[];
  tokens: [string, RegistryToken | TokenError][];
  want: HostCredential[] | TokenError;
}[] = [
  {
    name: "one registry, its token",
    registries: [A_WEST],
    tokens: [[WEST, token("w")]],
    want: [{ host: A_WEST.host, ...token("w") }],
  },
  {
    name: "two accounts of one region share its token",
    registries: [A_WEST, B_WEST],
    tokens: [[WEST, token("w")]],
    want: [{ host: A_WEST.host, ...token("w") }, { host: B_WEST.host, ...token("w") }],
  },
  {
    name: "each registry gets its own region's token, in the annotation's order",
    registries: [A_EU, A_WEST, A_CN],
    tokens: [[WEST, token("w")], [CN, token("c")], [EU, token("e")]],
    want: [
      { host: A_EU.host, ...token("e") },
      { host: A_WEST.host, ...token("w") },
      { host: A_CN.host, ...token("c") },
    ],
  },
  {
    name: "one failed region fails the whole Secret: all registries or none",
    registries: [A_WEST, A_EU],
    tokens: [[WEST, token("w")], [EU, EU_DENIED]],
    want: EU_DENIED,
  },
  {
    name: "several failures: the first registry's in the annotation's order",
    registries: [A_EU, A_WEST],
    tokens: [[WEST, WEST_DENIED], [EU, EU_DENIED]],
    want: EU_DENIED,
  },
  { name: "no registries, no credentials", registries: [], tokens: [], want: [] },
];

for (const c of CASES) {
  Deno.test(`joinCredentials: ${c.name}`, () => {
    const got = joinCredentials(c.registries, new Map(c.tokens));
    if (c.want instanceof TokenError) assert.equal(got, c.want);
    else assert.deepEqual(got, c.want);
  });
}

Deno.test("joinCredentials: a registry the role map serves takes its role's token and names the role", () => {
  const ROLE = "arn:aws:iam::111111111111:role/pull";
  const byRole = `${WEST}/${ROLE}`;
  const tokens = new Map([[WEST, token("base")], [byRole, token("role")]]);
  assert.deepEqual(joinCredentials([A_WEST, B_WEST], tokens, new Map([[A_WEST.host, ROLE]])), [
    { host: A_WEST.host, role: ROLE, ...token("role") },
    { host: B_WEST.host, ...token("base") },
  ]);
  assert.deepEqual(tokenKeyOf(A_WEST, ROLE), { ...tokenKeyOf(A_WEST), role: ROLE });
  assert.equal(keyString(tokenKeyOf(A_WEST, ROLE)), byRole);
});

Deno.test("joinCredentials: a registry whose token was never fetched is a programming error", () => {
  assert.throws(
    () => joinCredentials([A_EU], new Map([[WEST, token("w")]])),
    /ecr\/aws\/eu-central-1/,
  );
});

Deno.test("tokenKeyOf: ECR, keyed by partition and region; keyString names the role when there is one", () => {
  assert.deepEqual(tokenKeyOf(A_WEST), { source: "ecr", partition: "aws", region: "us-west-2" });
  assert.equal(keyString(tokenKeyOf(A_CN)), CN);
  assert.equal(
    keyString({ ...tokenKeyOf(A_WEST), role: "arn:aws:iam::111111111111:role/pull" }),
    "ecr/aws/us-west-2/arn:aws:iam::111111111111:role/pull",
  );
});

Deno.test("tokenKeyOf: every region the AWS SDK knows is in the SDK's partition", async () => {
  let regions = 0;
  for (const p of await sdkPartitions()) {
    for (const region of Object.keys(p.regions).filter((r) => !r.endsWith("-global"))) {
      regions++;
      assert.equal(tokenKeyOf({ region }).partition, p.id, region);
    }
  }
  assert.ok(regions > 30, `only ${regions} regions in the SDK's table`);
});

Deno.test("tokenKeyOf: public.ecr.aws is ECR Public's one key in us-east-1; a FIPS or dual-stack host shares its region's ECR key", () => {
  const pub = {
    source: "ecr-public" as const,
    account: "",
    region: "us-east-1",
    host: "public.ecr.aws",
  };
  assert.equal(keyString(tokenKeyOf(pub)), "ecr-public/aws/us-east-1");
  assert.notEqual(
    keyString(tokenKeyOf(pub)),
    keyString(tokenKeyOf(reg("111111111111", "us-east-1"))),
  );
  const fips = {
    ...reg("111111111111", "us-west-2"),
    host: "111111111111.dkr-ecr-fips.us-west-2.on.aws",
  };
  assert.equal(keyString(tokenKeyOf(fips)), WEST);
});
