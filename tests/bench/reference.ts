/**
 * The reference client of `deno task bench`: the work of one KubeECR run, done
 * as plainly as Deno allows, so the bench can say what that work costs by
 * itself and how much KubeECR adds on top.
 *
 * The same requests as KubeECR, in the same order:
 *   - a paginated list of `type=kubernetes.io/dockerconfigjson` Secrets
 *     across all namespaces, limit=500 (the field selector; annotations
 *     cannot be selected server-side);
 *   - ECR GetAuthorizationToken once per region that has a due Secret, when
 *     the first such Secret needs it (SigV4-signed, as real ECR requires);
 *   - per due Secret a JSON merge patch carrying the resourceVersion read
 *     (409 → read again, up to 3 attempts) and then one Event;
 *   - at most `--concurrency` Secrets in flight, while the next page is read;
 *   - HTTP/2 if the server offers it (Deno's default: one connection), or
 *     HTTP/1.1 with `--http1` (one connection per request in flight).
 * Pages are processed as they arrive and dropped; only what a write needs
 * survives a page.
 *
 * Run as its own process (`deno run`, same binary as KubeECR) so the bench
 * measures its start-up, CPU and peak RSS the same way. Prints one JSON line:
 * what it did, counted by itself. Not a product: no kubeconfig parsing, no
 * in-place JSON edits, no retries beyond 409.
 *
 *   deno run --allow-net --allow-read --allow-env tests/bench/reference.ts \
 *     --server https://127.0.0.1:6443 --ca ca.pem --cert admin.pem --key admin-key.pem \
 *     [--concurrency 4] [--force] [--no-events] [--http1]
 *   AWS_ENDPOINT_URL_ECR, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY from the environment.
 */

import { parseArgs } from "node:util";
import { NativeKube } from "./kube.ts";

const ANNOTATION = "deft.com/kubeecr";
const REFRESHED_AT = "kubeecr.deft.com/refreshed-at";
const EXPIRES_AT = "kubeecr.deft.com/expires-at";
const DOCKER_CONFIG_KEY = ".dockerconfigjson";
const LIST_PATH = "/api/v1/secrets?fieldSelector=" +
  encodeURIComponent("type=kubernetes.io/dockerconfigjson") + "&limit=500";
const REFRESH_WINDOW_MS = 6 * 3600_000;
const ITEM = /^(\d{12})\/([a-z]{2}(?:-[a-z]+)+-\d)$/;

interface Registry {
  host: string;
  region: string;
}

interface Token {
  password: string;
  expiresAt: Date;
}

/** What survives a page: only what the write needs. */
interface Job {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  registries: Registry[];
  config: string;
}

interface SecretJson {
  metadata: {
    namespace: string;
    name: string;
    uid: string;
    resourceVersion: string;
    annotations?: Record<string, string>;
  };
  data?: Record<string, string>;
}

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    server: { type: "string" },
    ca: { type: "string" },
    cert: { type: "string" },
    key: { type: "string" },
    concurrency: { type: "string", default: "4" },
    force: { type: "boolean", default: false },
    "no-events": { type: "boolean", default: false },
    http1: { type: "boolean", default: false },
  },
});
const concurrency = Number(flags.concurrency);
const kube = await NativeKube.connect({
  server: flags.server!,
  caCert: flags.ca!,
  cert: flags.cert!,
  key: flags.key!,
}, { http1: flags.http1 });
const counts = {
  lists: 0,
  annotated: 0,
  invalid: 0,
  fresh: 0,
  patched: 0,
  conflicts: 0,
  events: 0,
  failed: 0,
  ecrCalls: 0,
  listBytes: 0,
};
const now = new Date();

// --- the annotation and the docker config --------------------------------

function registriesOf(value: string): Registry[] | undefined {
  const out: Registry[] = [];
  for (const item of value.split(",")) {
    const m = ITEM.exec(item.trim());
    if (!m) return undefined;
    const suffix = m[2].startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
    out.push({ host: `${m[1]}.dkr.ecr.${m[2]}.${suffix}`, region: m[2] });
  }
  return out;
}

const utf8 = new TextDecoder();
const decode = (b64: string | undefined) =>
  b64 === undefined ? "" : utf8.decode(Uint8Array.fromBase64(b64));
const encode = (text: string) => new TextEncoder().encode(text).toBase64();

// deno-lint-ignore no-explicit-any
function authsOf(config: string): Record<string, any> {
  return config.trim() ? JSON.parse(config).auths ?? {} : {};
}

function isFresh(s: SecretJson, registries: Registry[], config: string): boolean {
  const expires = Date.parse(s.metadata.annotations?.[EXPIRES_AT] ?? "");
  if (!(expires > now.getTime() + REFRESH_WINDOW_MS)) return false;
  const auths = authsOf(config);
  return registries.every((r) => auths[r.host]?.auth || auths[r.host]?.password);
}

function merged(config: string, creds: { host: string; password: string }[]): string {
  const doc = config.trim() ? JSON.parse(config) : {};
  doc.auths ??= {};
  for (const { host, password } of creds) {
    doc.auths[host] = {
      ...doc.auths[host],
      username: "AWS",
      password,
      auth: btoa(`AWS:${password}`),
    };
  }
  return JSON.stringify(doc);
}

// --- ECR: GetAuthorizationToken, SigV4-signed ----------------------------

const TARGET = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
const JSON_11 = "application/x-amz-json-1.1";
const bytes = (s: string) => new TextEncoder().encode(s);
const hex = (b: ArrayBuffer) =>
  Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");

async function hmac(key: BufferSource, data: string): Promise<ArrayBuffer> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return await crypto.subtle.sign("HMAC", k, bytes(data));
}

async function fetchToken(region: string): Promise<Token> {
  counts.ecrCalls++;
  const endpoint = new URL(
    Deno.env.get("AWS_ENDPOINT_URL_ECR") ?? `https://api.ecr.${region}.amazonaws.com`,
  );
  const accessKey = Deno.env.get("AWS_ACCESS_KEY_ID") ?? "";
  const secretKey = Deno.env.get("AWS_SECRET_ACCESS_KEY") ?? "";
  const body = "{}";
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, "");
  const day = amzDate.slice(0, 8);
  const scope = `${day}/${region}/ecr/aws4_request`;
  const signed = "content-type;host;x-amz-date;x-amz-target";
  const canonical = [
    "POST",
    "/",
    "",
    `content-type:${JSON_11}`,
    `host:${endpoint.host}`,
    `x-amz-date:${amzDate}`,
    `x-amz-target:${TARGET}`,
    "",
    signed,
    hex(await crypto.subtle.digest("SHA-256", bytes(body))),
  ].join("\n");
  const toSign = [
    "AWS4-HMAC-SHA256",
    amzDate,
    scope,
    hex(await crypto.subtle.digest("SHA-256", bytes(canonical))),
  ].join("\n");
  let key: BufferSource = bytes(`AWS4${secretKey}`);
  for (const part of [day, region, "ecr", "aws4_request"]) key = await hmac(key, part);
  const signature = hex(await hmac(key, toSign));
  const res = await fetch(new URL("/", endpoint), {
    method: "POST",
    headers: {
      "content-type": JSON_11,
      "x-amz-date": amzDate,
      "x-amz-target": TARGET,
      authorization:
        `AWS4-HMAC-SHA256 Credential=${accessKey}/${scope}, SignedHeaders=${signed}, Signature=${signature}`,
    },
    body,
  });
  const answer = await res.json();
  const data = answer.authorizationData?.[0];
  if (!res.ok || !data?.authorizationToken) {
    throw new Error(`ECR ${region}: HTTP ${res.status} ${answer.__type ?? ""}`);
  }
  const decoded = atob(data.authorizationToken);
  return {
    password: decoded.slice(decoded.indexOf(":") + 1),
    expiresAt: new Date(data.expiresAt * 1000),
  };
}

const tokens = new Map<string, Promise<Token>>();
function tokenFor(region: string): Promise<Token> {
  let t = tokens.get(region);
  if (!t) tokens.set(region, t = fetchToken(region));
  return t;
}

// --- patch + event --------------------------------------------------------

const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

async function refresh(job: Job): Promise<void> {
  const got = await Promise.all(job.registries.map((r) => tokenFor(r.region)));
  const creds = job.registries.map((r, i) => ({ host: r.host, password: got[i].password }));
  const expiresAt = new Date(Math.min(...got.map((t) => t.expiresAt.getTime())));
  const path = `/api/v1/namespaces/${job.namespace}/secrets/${job.name}`;
  let { resourceVersion, config } = job;
  for (let attempt = 1;; attempt++) {
    const patch = {
      metadata: {
        resourceVersion,
        annotations: { [REFRESHED_AT]: rfc3339(now), [EXPIRES_AT]: rfc3339(expiresAt) },
      },
      data: { [DOCKER_CONFIG_KEY]: encode(merged(config, creds)) },
    };
    const { status } = await kube.json("PATCH", `${path}?fieldManager=kubeecr`, patch, {
      contentType: "application/merge-patch+json",
      accept: [409],
    });
    if (status !== 409) break;
    counts.conflicts++;
    if (attempt === 3) throw new Error(`${path}: 409 three times`);
    const { body } = await kube.json<SecretJson>("GET", path);
    resourceVersion = body.metadata.resourceVersion;
    config = decode(body.data?.[DOCKER_CONFIG_KEY]);
  }
  counts.patched++;
  if (flags["no-events"]) return;
  const ts = now.toISOString();
  await kube.json("POST", `/api/v1/namespaces/${job.namespace}/events`, {
    metadata: { generateName: `${job.name}.`, namespace: job.namespace },
    involvedObject: {
      apiVersion: "v1",
      kind: "Secret",
      namespace: job.namespace,
      name: job.name,
      uid: job.uid,
    },
    type: "Normal",
    reason: "Refreshed",
    message: `Refreshed ECR credentials for ${creds.map((c) => c.host).join(", ")}; ` +
      `they expire at ${rfc3339(expiresAt)}`,
    source: { component: "kubeecr" },
    reportingComponent: "kubeecr",
    reportingInstance: "kubeecr",
    firstTimestamp: ts,
    lastTimestamp: ts,
    count: 1,
  });
  counts.events++;
}

// --- the run --------------------------------------------------------------

const inflight = new Set<Promise<void>>();
let cont = "";
do {
  const before = kube.bytesRead;
  const { body: page } = await kube.json<{ items: SecretJson[]; metadata: { continue?: string } }>(
    "GET",
    cont ? `${LIST_PATH}&continue=${encodeURIComponent(cont)}` : LIST_PATH,
  );
  counts.lists++;
  counts.listBytes += kube.bytesRead - before;
  for (const s of page.items ?? []) {
    const value = s.metadata.annotations?.[ANNOTATION];
    if (value === undefined) continue;
    counts.annotated++;
    const registries = registriesOf(value);
    if (!registries) {
      counts.invalid++;
      continue;
    }
    const config = decode(s.data?.[DOCKER_CONFIG_KEY]);
    if (!flags.force && isFresh(s, registries, config)) {
      counts.fresh++;
      continue;
    }
    const { namespace, name, uid, resourceVersion } = s.metadata;
    while (inflight.size >= concurrency) await Promise.race(inflight);
    const p: Promise<void> = refresh({ namespace, name, uid, resourceVersion, registries, config })
      .catch((err) => {
        counts.failed++;
        console.error(`failed ${namespace}/${name}: ${err.message}`);
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  }
  cont = page.metadata?.continue ?? "";
} while (cont);
await Promise.all(inflight);
kube.close();
console.log(JSON.stringify(counts));
Deno.exit(counts.failed ? 1 : 0);
