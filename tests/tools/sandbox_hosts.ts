/**
 * The `cronjob` sandbox's network allow-list, derived from the AWS SDK's own
 * data instead of `*.amazonaws.com` on any port (which admits
 * `ec2-1-2-3-4.compute-1.amazonaws.com`, i.e. any IPv4 address).
 *
 *   deno task sandbox-hosts           # rewrites permissions.cronjob.net in deno.json
 *   deno task sandbox-hosts --check   # exit 1 when deno.json differs (what the unit test asserts)
 *
 * For every region of every partition the SDK lists (partitionsInfo in
 * @aws-sdk/core, the table behind the rulesets' `aws.partition`) and every
 * combination of FIPS, dual-stack and (STS only) the legacy global endpoint,
 * the ECR client's and the STS client's own endpoint resolvers are asked for
 * the URL; their hosts on their ports (443) are the list. The STS client is
 * the one the credential chain uses for web identity (IRSA):
 * @aws-sdk/nested-clients/sts, at the version deno.lock resolves. ECR Public
 * is asked for us-east-1 only, the one region KubeECR calls it in (its
 * GetAuthorizationToken exists only there).
 *
 * The same table, cut to what the annotation grammar needs (a region's
 * partition, its domains, FIPS and dual-stack), is written to
 * lib/core/partitions.ts and, as a CEL literal, into the admission policy
 * (manifests/components/admission/policy.yaml and the Helm chart's copy), so
 * the parser and the policy judge registry hosts by the SDK's data.
 *
 * Fixed entries: the API server as the pod reaches it, and the instance
 * metadata (IMDS, IPv4 and IPv6) and EKS Pod Identity agent addresses on
 * port 80, where the SDK's credential providers expect them.
 */

import type { SdkPartition } from "../../lib/core/partitions.ts";

const REPO = new URL("../../", import.meta.url);

export const FIXED_HOSTS = [
  "kubernetes.default.svc:443",
  "169.254.169.254:80",
  "[fd00:ec2::254]:80",
  "169.254.170.23:80",
  "[fd00:ec2::23]:80",
];

interface Partition {
  id: string;
  regionRegex: string;
  regions: Record<string, unknown>;
  outputs: {
    dnsSuffix: string;
    dualStackDnsSuffix: string;
    supportsFIPS: boolean;
    supportsDualStack: boolean;
  };
}

type Resolve = (params: Record<string, unknown>) => { url: URL };

/** The version of an npm package that deno.lock resolves, e.g. "3.981.2". */
async function lockedVersion(name: string): Promise<string> {
  const lock = JSON.parse(await Deno.readTextFile(new URL("deno.lock", REPO)));
  const versions = Object.keys(lock.npm ?? {})
    .filter((key) => key.startsWith(`${name}@`))
    .map((key) => key.slice(name.length + 1).split("_")[0]);
  if (new Set(versions).size !== 1) {
    throw new Error(`deno.lock resolves ${name} to ${versions.length} versions: ${versions}`);
  }
  return versions[0];
}

/**
 * The SDK's partition table. It is not exported, so it is read from the
 * package source in Deno's npm cache (`deno info --json` names the cache).
 */
export async function sdkPartitions(): Promise<Partition[]> {
  const version = await lockedVersion("@aws-sdk/core");
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const npmCache = JSON.parse(new TextDecoder().decode(info.stdout)).npmCache as string;
  const file =
    `${npmCache}/registry.npmjs.org/@aws-sdk/core/${version}/dist-cjs/submodules/client/index.js`;
  const source = await Deno.readTextFile(file);
  const start = source.indexOf("const partitionsInfo = {");
  const end = source.indexOf("\n};\n", start);
  if (start < 0 || end < 0) throw new Error(`no partitionsInfo table in ${file}`);
  const table = JSON.parse(source.slice(source.indexOf("{", start), end + 2));
  return table.partitions;
}

async function resolvers(): Promise<{ ecr: Resolve; ecrPublic: Resolve; sts: Resolve }> {
  // All three imports are npm specifiers the lockfile already pins
  // (client-ecr and client-ecr-public by deno.json, nested-clients as their
  // dependency).
  const { ECRClient } = await import("@aws-sdk/client-ecr");
  const { ECRPUBLICClient } = await import("@aws-sdk/client-ecr-public");
  const nested = await lockedVersion("@aws-sdk/nested-clients");
  const { STSClient } = await import(`npm:@aws-sdk/nested-clients@${nested}/sts`);
  const credentials = { accessKeyId: "unused", secretAccessKey: "unused" };
  const ecr = new ECRClient({ region: "us-east-1", credentials });
  const sts = new STSClient({ region: "us-east-1", credentials });
  const ecrPublic = new ECRPUBLICClient({ region: "us-east-1", credentials });
  return {
    ecr: (params) => ecr.config.endpointProvider(params as never),
    ecrPublic: (params) => ecrPublic.config.endpointProvider(params as never),
    sts: (params) => sts.config.endpointProvider(params as never),
  };
}

function hostPort(url: URL): string {
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return `${url.hostname}:${port}`;
}

/** Every ECR API and STS host:port the SDK resolves for the regions it knows. */
export async function awsHosts(partitions: Partition[]): Promise<string[]> {
  const { ecr, ecrPublic, sts } = await resolvers();
  const hosts = new Set<string>();
  const add = (resolve: Resolve, params: Record<string, unknown>) => {
    try {
      hosts.add(hostPort(resolve(params).url));
    } catch {
      // The partition does not offer this combination (e.g. dual-stack in
      // an ISO partition): the SDK refuses it, so no host is needed.
    }
  };
  for (const partition of partitions) {
    for (const region of Object.keys(partition.regions)) {
      for (const UseFIPS of [false, true]) {
        for (const UseDualStack of [false, true]) {
          add(ecr, { Region: region, UseFIPS, UseDualStack });
          for (const UseGlobalEndpoint of [false, true]) {
            add(sts, { Region: region, UseFIPS, UseDualStack, UseGlobalEndpoint });
          }
        }
      }
    }
  }
  for (const UseFIPS of [false, true]) {
    for (const UseDualStack of [false, true]) {
      add(ecrPublic, { Region: ECR_PUBLIC_REGION, UseFIPS, UseDualStack });
    }
  }
  return [...hosts].sort();
}

/** The one region of ECR Public's GetAuthorizationToken (lib/core/tokens.ts says the same). */
const ECR_PUBLIC_REGION = "us-east-1";

/**
 * The dual-stack registry hosts' domain: ECR's dual-stack registries are
 * <account>.dkr-ecr.<region>.on.aws (aws, aws-us-gov) and
 * ….on.amazonwebservices.com.cn (aws-cn) where the dual-stack API hosts are
 * ecr.<region>.api.aws and ….api.amazonwebservices.com.cn: the same domain
 * with "on." for "api.". The SDK has no registry hosts, so this rule is the
 * one step not read from its data; a partition whose dual-stack domain does
 * not start with "api." stops the generator rather than be guessed at.
 */
function dualStackDomain(p: Partition): string {
  const suffix = p.outputs.dualStackDnsSuffix;
  if (!suffix.startsWith("api.")) {
    throw new Error(`${p.id}: dualStackDnsSuffix ${suffix} does not start with "api."`);
  }
  return `on.${suffix.slice("api.".length)}`;
}

/**
 * What the annotation grammar needs of each partition, in the SDK's order
 * (the order its region lookup tries them in). The `-global` names are
 * endpoint aliases, not regions with registries: the grammar finds a region's
 * partition by regionRegex alone, which the unit test checks matches every
 * other region the SDK lists.
 */
export function grammarPartitions(partitions: Partition[]): SdkPartition[] {
  return partitions.map((p) => ({
    id: p.id,
    regionRegex: p.regionRegex,
    dnsSuffix: p.outputs.dnsSuffix,
    dualStackDomain: dualStackDomain(p),
    supportsFIPS: p.outputs.supportsFIPS,
    supportsDualStack: p.outputs.supportsDualStack,
  }));
}

const PARTITIONS_TS = new URL("lib/core/partitions.ts", REPO);
/** The admission policy and its Helm copy, which carry the table as a CEL literal. */
const POLICIES = [
  new URL("manifests/components/admission/policy.yaml", REPO),
  new URL("charts/kubeecr/templates/admission-policy.yaml", REPO),
];

/** lib/core/partitions.ts as the generator writes it (deno fmt's layout). */
export async function partitionsModule(table: SdkPartition[]): Promise<string> {
  const text = [
    "// Generated by `deno task sandbox-hosts` (tests/tools/sandbox_hosts.ts) from the AWS SDK's",
    "// partition table (@aws-sdk/core's partitionsInfo, at the version deno.lock resolves): do not",
    "// edit. tests/unit/sandbox_hosts_test.ts fails when it is stale. The admission policy carries",
    "// the same rows as a CEL literal (its `partitions` variable).",
    "",
    "export interface SdkPartition {",
    '  /** e.g. "aws", "aws-cn", "aws-us-gov". */',
    "  id: string;",
    "  /** Its regions: the SDK's regex (RE2- and JavaScript-compatible). */",
    "  regionRegex: string;",
    '  /** The registry and API hosts\' domain, e.g. "amazonaws.com.cn". */',
    "  dnsSuffix: string;",
    '  /** The dual-stack registry hosts\' domain, e.g. "on.aws" (see the generator). */',
    "  dualStackDomain: string;",
    "  supportsFIPS: boolean;",
    "  supportsDualStack: boolean;",
    "}",
    "",
    `export const SDK_PARTITIONS: readonly SdkPartition[] = ${JSON.stringify(table, null, 2)};`,
    "",
  ].join("\n");
  const fmt = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=ts", "--line-width=100", "-"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = fmt.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await fmt.output();
  if (!out.success) throw new Error("deno fmt refused the generated partitions.ts");
  return new TextDecoder().decode(out.stdout);
}

/**
 * The policy's `partitions` variable: the table as one CEL list literal (JSON
 * is valid CEL here). A CEL map's values share one type, so the booleans are
 * written as the strings "true" and "false".
 */
export function celPartitions(table: SdkPartition[]): string {
  return JSON.stringify(
    table.map((p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, String(v)]))),
  );
}

/** `text` with the line after `- name: partitions` / `expression: >-` set to `literal`. */
export function withCelPartitions(text: string, literal: string): string {
  const re = /(- name: partitions\n(\s*)expression: >-\n\s*)[^\n]*/;
  if (!re.test(text)) throw new Error("no `partitions` variable in the policy");
  return text.replace(re, (_, head) => head + literal);
}

/** The complete `permissions.cronjob.net` list, in deno.json's order. */
export async function sandboxNet(): Promise<string[]> {
  return [...FIXED_HOSTS, ...await awsHosts(await sdkPartitions())];
}

/** Every generated file: its path, its text now, and its text as the SDK's data makes it. */
export async function generatedFiles(): Promise<{ path: URL; text: string; updated: string }[]> {
  const partitions = await sdkPartitions();
  const table = grammarPartitions(partitions);
  const path = new URL("deno.json", REPO);
  const text = await Deno.readTextFile(path);
  const config = JSON.parse(text);
  config.permissions.cronjob.net = await sandboxNet();
  const files = [{ path, text, updated: JSON.stringify(config, null, 2) + "\n" }];
  const module = await Deno.readTextFile(PARTITIONS_TS).catch(() => "");
  files.push({ path: PARTITIONS_TS, text: module, updated: await partitionsModule(table) });
  for (const policy of POLICIES) {
    const text = await Deno.readTextFile(policy);
    files.push({ path: policy, text, updated: withCelPartitions(text, celPartitions(table)) });
  }
  return files;
}

if (import.meta.main) {
  let stale = false;
  for (const { path, text, updated } of await generatedFiles()) {
    if (updated === text) continue;
    const name = path.pathname.slice(REPO.pathname.length);
    if (Deno.args.includes("--check")) {
      console.error(`${name} is stale; run \`deno task sandbox-hosts\``);
      stale = true;
    } else {
      await Deno.writeTextFile(path, updated);
      console.error(`${name} rewritten from the AWS SDK's data`);
    }
  }
  if (stale) Deno.exit(1);
}
