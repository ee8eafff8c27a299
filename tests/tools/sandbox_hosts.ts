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
 * @aws-sdk/nested-clients/sts, at the version deno.lock resolves.
 *
 * Fixed entries: the API server as the pod reaches it, and the instance
 * metadata (IMDS, IPv4 and IPv6) and EKS Pod Identity agent addresses on
 * port 80, where the SDK's credential providers expect them.
 */

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

async function resolvers(): Promise<{ ecr: Resolve; sts: Resolve }> {
  // Both imports are npm specifiers the lockfile already pins (client-ecr by
  // deno.json, nested-clients as client-ecr's dependency).
  const { ECRClient } = await import("@aws-sdk/client-ecr");
  const nested = await lockedVersion("@aws-sdk/nested-clients");
  const { STSClient } = await import(`npm:@aws-sdk/nested-clients@${nested}/sts`);
  const credentials = { accessKeyId: "unused", secretAccessKey: "unused" };
  const ecr = new ECRClient({ region: "us-east-1", credentials });
  const sts = new STSClient({ region: "us-east-1", credentials });
  return {
    ecr: (params) => ecr.config.endpointProvider(params as never),
    sts: (params) => sts.config.endpointProvider(params as never),
  };
}

function hostPort(url: URL): string {
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return `${url.hostname}:${port}`;
}

/** Every ECR API and STS host:port the SDK resolves for the regions it knows. */
export async function awsHosts(partitions: Partition[]): Promise<string[]> {
  const { ecr, sts } = await resolvers();
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
  return [...hosts].sort();
}

/** The complete `permissions.cronjob.net` list, in deno.json's order. */
export async function sandboxNet(): Promise<string[]> {
  return [...FIXED_HOSTS, ...await awsHosts(await sdkPartitions())];
}

if (import.meta.main) {
  const path = new URL("deno.json", REPO);
  const text = await Deno.readTextFile(path);
  const config = JSON.parse(text);
  config.permissions.cronjob.net = await sandboxNet();
  const updated = JSON.stringify(config, null, 2) + "\n";
  if (Deno.args.includes("--check")) {
    if (updated !== text) {
      console.error("deno.json: permissions.cronjob.net is stale; run `deno task sandbox-hosts`");
      Deno.exit(1);
    }
  } else if (updated !== text) {
    await Deno.writeTextFile(path, updated);
    console.error(
      `deno.json: permissions.cronjob.net now has ${config.permissions.cronjob.net.length} entries`,
    );
  }
}
