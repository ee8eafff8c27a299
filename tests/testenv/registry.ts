/**
 * Registries that behave like ECR for the node's pulls: CNCF distribution
 * behind TLS (a serving certificate from the environment's CA) with htpasswd
 * basic auth, one process per registry host, each on its own loopback
 * address on port 443 so that the host name alone (no port) reaches it, as
 * `<account>.dkr.ecr.<region>.amazonaws.com` does.
 *
 * An ECR registry accepts user `AWS` with the newest password the
 * environment's ECR endpoint issued for its region, until that password's
 * expiry, and nothing else: issuing writes `token.json` (a bcrypt hash and
 * the expiry, never the password) and the htpasswd file, and the
 * environment's watcher takes the entry out of htpasswd once it has expired.
 * distribution re-reads htpasswd whenever its modification time changes.
 *
 * One htpasswd line per user is all distribution keeps, so a password that
 * is still alive but no longer the newest of its region is refused (real ECR
 * would accept it). The tests issue one token per run, so this never decides
 * a test: a run's Secret holds its region's newest password.
 *
 * A second kind, the "other" registry (registry.kubeecr.test), has a fixed
 * user and password: it is the entry of some other registry that a pull
 * Secret carries besides ECR and that KubeECR must keep.
 */

import { servingCert } from "./pki.ts";
import { run } from "./util.ts";

/** The user that pushes the test image; pods never use it. */
const PUSH_USER = "kubeecr-push";
export const OTHER_HOST = "registry.kubeecr.test";
export const TEST_REPOSITORY = "kubeecr-test/hello";
export const TEST_TAG = "1";

export interface RegistryInfo {
  host: string;
  /** Loopback address it listens on, port 443. */
  address: string;
  /** The ECR region whose tokens it accepts ("ecr-public" for ECR Public's); absent for the other registry. */
  region?: string;
  dir: string;
  /** `<host>/kubeecr-test/hello:1` */
  image: string;
  /**
   * Other names of the same registry (its FIPS and dual-stack hosts): in its
   * certificate, the node's /etc/hosts and containerd's certs.d, so a pod can
   * pull `<alias>/kubeecr-test/hello:1` with the `auths` entry of that name.
   */
  aliases?: string[];
}

export interface OtherRegistry extends RegistryInfo {
  username: string;
  password: string;
}

/** What token.json holds: the issued password's bcrypt hash and expiry, never the password. */
interface TokenState {
  hash: string;
  expiresAt: number;
}

const htpasswdPath = (r: RegistryInfo) => `${r.dir}/htpasswd`;
const tokenPath = (r: RegistryInfo) => `${r.dir}/token.json`;

async function writeAtomically(path: string, text: string) {
  const tmp = `${path}.${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, text, { mode: 0o600 });
  await Deno.rename(tmp, path);
}

export async function bcryptHash(bcrypt: string, password: string): Promise<string> {
  return (await run(bcrypt, [], { stdin: `${password}\n` })).trim();
}

/**
 * The htpasswd text a registry should have now: the push user, and `AWS`
 * while the newest issued token lives.
 */
async function wantedHtpasswd(r: RegistryInfo, pushHash: string, now: number): Promise<string> {
  const lines = [`${PUSH_USER}:${pushHash}`];
  const state = await Deno.readTextFile(tokenPath(r)).then(JSON.parse, () => undefined) as
    | TokenState
    | undefined;
  if (state && now < state.expiresAt * 1000) lines.push(`AWS:${state.hash}`);
  return `${lines.join("\n")}\n`;
}

async function syncHtpasswd(r: RegistryInfo, now = Date.now()) {
  const pushHash = await Deno.readTextFile(`${r.dir}/push.hash`);
  const want = await wantedHtpasswd(r, pushHash.trim(), now);
  const have = await Deno.readTextFile(htpasswdPath(r)).catch(() => "");
  if (have !== want) await writeAtomically(htpasswdPath(r), want);
}

/**
 * Makes the ECR registry of `region` accept `password` until `expiresAt`
 * (seconds since the epoch), and refuse the one before. Called by the ECR
 * proxy for every token it hands out; a region without a registry is ignored.
 */
export async function acceptToken(
  registries: RegistryInfo[],
  bcrypt: string,
  region: string,
  password: string,
  expiresAt: number,
) {
  const r = registries.find((x) => x.region === region);
  if (!r) return;
  const state: TokenState = { hash: await bcryptHash(bcrypt, password), expiresAt };
  await writeAtomically(tokenPath(r), JSON.stringify(state));
  await syncHtpasswd(r);
}

/** Registry config: TLS on <address>:443, htpasswd auth, filesystem storage, quiet logs. */
function config(r: RegistryInfo, cert: { cert: string; key: string }): string {
  return `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${r.dir}/storage
  delete:
    enabled: false
http:
  addr: ${r.address}:443
  # Signs upload state; one per registry process is all it needs.
  secret: ${crypto.randomUUID()}
  tls:
    certificate: ${cert.cert}
    key: ${cert.key}
  # No debug server and no other listeners: nothing but 443.
auth:
  htpasswd:
    realm: ${r.host}
    path: ${htpasswdPath(r)}
`;
}

export interface RegistryProcess {
  info: RegistryInfo;
  configFile: string;
  /** Authorization header of the push user. */
  pushAuthorization: string;
}

/**
 * Writes a registry's directory (certificate, config, htpasswd with the push
 * user and, for the other registry, its fixed user). The caller starts
 * `registry serve <configFile>`.
 */
export async function prepareRegistry(
  info: RegistryInfo,
  bcrypt: string,
  ca: { cert: string; key: string },
  fixedUser?: { username: string; password: string },
): Promise<RegistryProcess> {
  await Deno.mkdir(`${info.dir}/storage`, { recursive: true });
  const cert = await servingCert(info.dir, "serving", [
    `DNS:${info.host}`,
    ...(info.aliases ?? []).map((a) => `DNS:${a}`),
    `IP:${info.address}`,
  ], ca);
  const pushPassword = crypto.randomUUID();
  await Deno.writeTextFile(`${info.dir}/push.hash`, await bcryptHash(bcrypt, pushPassword));
  if (fixedUser) {
    // The other registry's user never changes: write its line once, for good.
    const push = (await Deno.readTextFile(`${info.dir}/push.hash`)).trim();
    const fixed = await bcryptHash(bcrypt, fixedUser.password);
    await writeAtomically(
      htpasswdPath(info),
      `${PUSH_USER}:${push}\n${fixedUser.username}:${fixed}\n`,
    );
  } else {
    await syncHtpasswd(info);
  }
  const configFile = `${info.dir}/config.yml`;
  await Deno.writeTextFile(configFile, config(info, cert));
  return {
    info,
    configFile,
    pushAuthorization: `Basic ${btoa(`${PUSH_USER}:${pushPassword}`)}`,
  };
}

/**
 * Every 250 ms, takes expired tokens out of the ECR registries' htpasswd.
 * Returns a function that stops it.
 */
export function watchExpiry(registries: RegistryInfo[]): () => void {
  const ecr = registries.filter((r) => r.region);
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      for (const r of ecr) await syncHtpasswd(r).catch(() => {});
    } finally {
      busy = false;
    }
  }, 250);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}

/** An EcrProxy `onToken` that makes the node's registries accept what it hands out. */
export function acceptTokensOf(node: { registries: RegistryInfo[]; bcrypt: string }) {
  return (region: string, password: string, expiresAt: number) =>
    acceptToken(node.registries, node.bcrypt, region, password, expiresAt);
}
