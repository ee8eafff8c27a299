// The `cronjob` sandbox names exact hosts and ports, and covers every region
// the AWS SDK knows: a new SDK with a new region fails here until
// `deno task sandbox-hosts` has rewritten deno.json.

import assert from "node:assert/strict";
import { FIXED_HOSTS, generatedFiles, sandboxNet, sdkPartitions } from "../tools/sandbox_hosts.ts";

const config = JSON.parse(
  await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
);
const net: string[] = config.permissions.cronjob.net;

Deno.test("cronjob net: every entry is an exact host with a port, no wildcard", () => {
  for (const entry of net) {
    assert.match(entry, /^(\[[0-9a-f:]+\]|[a-z0-9.-]+):(80|443)$/, entry);
    assert.ok(!entry.includes("*"), entry);
  }
  // The AWS names are on 443 only; port 80 is for the link-local credential
  // endpoints, which are addresses, not names.
  const onPort80 = net.filter((e) => e.endsWith(":80"));
  assert.deepEqual(onPort80, FIXED_HOSTS.filter((e) => e.endsWith(":80")));
});

Deno.test("cronjob net: every region of every SDK partition has its ECR API and STS hosts", async () => {
  const partitions = await sdkPartitions();
  const ids = partitions.map((p) => p.id);
  for (const id of ["aws", "aws-cn", "aws-us-gov"]) assert.ok(ids.includes(id), id);
  const listed = new Set(net);
  for (const partition of partitions) {
    for (const region of Object.keys(partition.regions)) {
      for (const service of ["api.ecr", "sts"]) {
        assert.ok(
          net.some((e) => e.startsWith(`${service}.${region}.`)),
          `${service} of ${region} (${partition.id}) is not in deno.json: run deno task sandbox-hosts`,
        );
      }
    }
  }
  const expected = await sandboxNet();
  assert.deepEqual(
    expected.filter((e) => !listed.has(e)),
    [],
    "hosts the SDK resolves but deno.json lacks: run deno task sandbox-hosts",
  );
  assert.deepEqual(net, expected, "deno.json differs from `deno task sandbox-hosts`");
});

Deno.test("cronjob net: the hosts the SDK uses by default are in, look-alikes are not", () => {
  for (
    const host of [
      "api.ecr.us-west-2.amazonaws.com:443",
      "api.ecr.cn-north-1.amazonaws.com.cn:443",
      "api.ecr.us-gov-west-1.amazonaws.com:443",
      "api.ecr-fips.us-east-1.amazonaws.com:443",
      "ecr.eu-central-1.api.aws:443",
      "sts.amazonaws.com:443",
      "sts.us-west-2.amazonaws.com:443",
      "sts.cn-northwest-1.amazonaws.com.cn:443",
      "sts-fips.us-east-2.amazonaws.com:443",
      "sts.us-gov-east-1.amazonaws.com:443",
    ]
  ) assert.ok(net.includes(host), host);
  for (
    const host of [
      "ec2-1-2-3-4.compute-1.amazonaws.com:443",
      "evil.amazonaws.com:443",
      "api.ecr.us-west-2.amazonaws.com:80",
      "sts.amazonaws.com:46100",
    ]
  ) assert.ok(!net.includes(host), host);
});

Deno.test("cronjob net: ECR Public's API hosts in us-east-1, its one region, and no other region's", () => {
  const publicHosts = net.filter((e) => e.includes("ecr-public"));
  assert.deepEqual(publicHosts, [
    "api.ecr-public-fips.us-east-1.amazonaws.com:443",
    "api.ecr-public-fips.us-east-1.api.aws:443",
    "api.ecr-public.us-east-1.amazonaws.com:443",
    "ecr-public.us-east-1.api.aws:443",
  ]);
});

Deno.test("the partition table of the grammar and the admission policy's copy are the SDK's", async () => {
  for (const { path, text, updated } of await generatedFiles()) {
    assert.equal(text, updated, `${path.pathname} is stale: run deno task sandbox-hosts`);
  }
});
