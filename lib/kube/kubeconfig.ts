// Where the Kubernetes API is and how to authenticate to it, from a
// kubeconfig (kubectl's merge rules) or the pod's service account.
//
// Why not client-node's KubeConfig: importing client-node costs 0.4-1.2 s and
// ~80 MiB before the first request (design.md), for a few fields of YAML.
// The shapes it handles are the ones a pull-secret refresher meets: CA file
// or data, client certificate, token or token file, exec plugins (EKS, GKE,
// AKS all ship one), a proxy. Legacy auth-provider entries get a message
// pointing at the exec plugin that replaced them.

import { load as loadYaml, YAMLException } from "js-yaml";
import { KubeEcrError } from "../core/errors.ts";

/**
 * Where to find the cluster, as the flags chose it (lib/config/cluster.ts resolves
 * it): a kubeconfig, or the pod's service account.
 */
export type KubeAccess =
  | { mode: "kubeconfig"; paths: string[]; context?: string }
  | { mode: "in-cluster"; server: string; tokenPath: string; caPath: string };

export type Auth =
  | { kind: "none" }
  | { kind: "token"; token: string }
  /** Re-read for every request: the kubelet rotates projected tokens. */
  | { kind: "tokenFile"; path: string }
  | { kind: "basic"; username: string; password: string }
  | { kind: "exec"; user: string; exec: ExecConfig };

export interface ExecConfig {
  command: string;
  args: string[];
  env: { name: string; value: string }[];
  apiVersion: string;
}

/** Everything the transport needs; file references already read. */
export interface ClusterAccess {
  /** e.g. "https://127.0.0.1:6443", without a trailing slash. */
  server: string;
  /** PEM roots to trust in addition to the system's; empty = system roots only. */
  caCerts: string[];
  clientCert?: { cert: string; key: string };
  insecureSkipTlsVerify: boolean;
  proxyUrl?: string;
  auth: Auth;
  /** Names the source in messages: "context kind-dev of /home/me/.kube/config". */
  origin: string;
}

/** The kubeconfig cannot be read or does not name a usable context: the run cannot start. */
export class KubeConfigError extends KubeEcrError {}

type Named = { name?: unknown; [k: string]: unknown };
interface Kubeconfig {
  path: string;
  doc: {
    "current-context"?: unknown;
    clusters?: unknown;
    users?: unknown;
    contexts?: unknown;
  };
}

/**
 * A YAML syntax error, reported by position only: js-yaml's own message
 * quotes the lines around the error, and a kubeconfig's lines are tokens,
 * passwords and private keys.
 */
export function parseKubeconfigText(path: string, text: string): Kubeconfig {
  let doc: unknown;
  try {
    doc = loadYaml(text);
  } catch (err) {
    if (err instanceof YAMLException) {
      const at = err.mark ? ` at line ${err.mark.line + 1}, column ${err.mark.column + 1}` : "";
      throw new KubeConfigError(
        `kubeconfig ${path} is not valid YAML${at}: ${err.reason}; fix the file or pass ` +
          "another with --kubeconfig",
      );
    }
    throw err;
  }
  if (doc === null || doc === undefined) return { path, doc: {} };
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new KubeConfigError(`kubeconfig ${path} is not a YAML mapping; is it a kubeconfig?`);
  }
  return { path, doc: doc as Kubeconfig["doc"] };
}

/** A cluster, user or context entry as found, with the file it came from (for relative paths). */
interface Entry {
  path: string;
  value: Record<string, unknown>;
}

/** kubectl's rule for several files: the first file to define a name wins. */
function entries(configs: Kubeconfig[], section: "clusters" | "users" | "contexts") {
  const field = section.slice(0, -1); // "cluster", "user", "context"
  const out = new Map<string, Entry>();
  for (const { path, doc } of configs) {
    const list = doc[section];
    if (!Array.isArray(list)) continue;
    for (const item of list as Named[]) {
      const value = item?.[field];
      if (typeof item?.name !== "string" || out.has(item.name)) continue;
      out.set(item.name, { path, value: isRecord(value) ? value : {} });
    }
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** What resolveKubeconfig leaves to I/O: files to read. */
export interface ResolvedKubeconfig extends Omit<ClusterAccess, "caCerts" | "clientCert"> {
  ca?: Source;
  cert?: Source;
  key?: Source;
}

/** PEM given inline (base64 in the kubeconfig) or as a file path. */
export type Source = { data: string } | { file: string };

/**
 * Picks the context and resolves its cluster and user. Pure: the files are
 * already parsed; file references are returned as absolute paths.
 */
export function resolveKubeconfig(configs: Kubeconfig[], context?: string): ResolvedKubeconfig {
  const paths = configs.map((c) => c.path).join(":");
  const contexts = entries(configs, "contexts");
  const known = [...contexts.keys()].join(", ") || "none";
  const current = context ??
    configs.map((c) => c.doc["current-context"]).find((v) => typeof v === "string" && v !== "");
  if (typeof current !== "string") {
    throw new KubeConfigError(
      `kubeconfig ${paths} has no current-context; pick one of its contexts (${known}) with ` +
        "--context <name>",
    );
  }
  const ctx = contexts.get(current);
  if (!ctx) {
    throw new KubeConfigError(
      `context "${current}" is not in ${paths} (contexts there: ${known}); pick one with --context`,
    );
  }
  const origin = `context ${current} of ${paths}`;
  const clusterName = ctx.value.cluster;
  const cluster = typeof clusterName === "string"
    ? entries(configs, "clusters").get(clusterName)
    : undefined;
  if (!cluster) {
    throw new KubeConfigError(
      `${origin} names cluster ${JSON.stringify(clusterName ?? null)}, which is not defined there`,
    );
  }
  const server = cluster.value.server;
  if (typeof server !== "string" || !/^https?:\/\//.test(server)) {
    throw new KubeConfigError(
      `${origin}: cluster ${clusterName} has no server URL (like https://host:6443)`,
    );
  }
  const userName = ctx.value.user;
  const user = typeof userName === "string" ? entries(configs, "users").get(userName) : undefined;
  if (userName !== undefined && userName !== "" && !user) {
    throw new KubeConfigError(
      `${origin} names user ${JSON.stringify(userName)}, which is not defined there`,
    );
  }
  const c = cluster.value;
  const u = user?.value ?? {};
  const resolved: ResolvedKubeconfig = {
    server: server.replace(/\/+$/, ""),
    insecureSkipTlsVerify: c["insecure-skip-tls-verify"] === true,
    auth: authOf(u, String(userName ?? ""), user?.path ?? "", origin),
    origin,
  };
  const proxy = c["proxy-url"];
  if (typeof proxy === "string" && proxy !== "") resolved.proxyUrl = proxy;
  const ca = source(c, "certificate-authority", cluster.path);
  const cert = source(u, "client-certificate", user?.path ?? "");
  const key = source(u, "client-key", user?.path ?? "");
  if (ca) resolved.ca = ca;
  if (cert && key) Object.assign(resolved, { cert, key });
  else if (cert || key) {
    throw new KubeConfigError(
      `${origin}: user ${userName} has a client ${cert ? "certificate" : "key"} but no ` +
        `client ${cert ? "key" : "certificate"}; both are needed`,
    );
  }
  return resolved;
}

/** `<field>-data` (base64 PEM) wins over `<field>` (a path, relative to its kubeconfig). */
function source(entry: Record<string, unknown>, field: string, from: string): Source | undefined {
  const data = entry[`${field}-data`];
  if (typeof data === "string" && data !== "") return { data };
  const file = entry[field];
  if (typeof file === "string" && file !== "") return { file: absolute(file, from) };
  return undefined;
}

function absolute(file: string, kubeconfigPath: string): string {
  if (file.startsWith("/")) return file;
  const dir = kubeconfigPath.slice(0, kubeconfigPath.lastIndexOf("/") + 1) || "./";
  return dir + file;
}

function authOf(u: Record<string, unknown>, user: string, from: string, origin: string): Auth {
  if (typeof u.token === "string" && u.token !== "") return { kind: "token", token: u.token };
  if (typeof u.tokenFile === "string" && u.tokenFile !== "") {
    return { kind: "tokenFile", path: absolute(u.tokenFile, from) };
  }
  if (isRecord(u.exec)) {
    const e = u.exec;
    if (typeof e.command !== "string" || e.command === "") {
      throw new KubeConfigError(`${origin}: user ${user} has an exec section without a command`);
    }
    const env = Array.isArray(e.env)
      ? (e.env as Named[]).filter((v) => typeof v?.name === "string")
        .map((v) => ({ name: v.name as string, value: String(v.value ?? "") }))
      : [];
    return {
      kind: "exec",
      user,
      exec: {
        command: e.command,
        args: Array.isArray(e.args) ? e.args.map(String) : [],
        env,
        apiVersion: typeof e.apiVersion === "string"
          ? e.apiVersion
          : "client.authentication.k8s.io/v1",
      },
    };
  }
  if (isRecord(u["auth-provider"])) {
    const name = String(u["auth-provider"].name ?? "unknown");
    throw new KubeConfigError(
      `${origin}: user ${user} uses the auth-provider "${name}", which Kubernetes removed in ` +
        "1.26 and KubeECR does not support; switch the kubeconfig to the exec plugin that " +
        "replaced it (gke-gcloud-auth-plugin, kubelogin, aws eks get-token)",
    );
  }
  if (typeof u.username === "string" && typeof u.password === "string") {
    return { kind: "basic", username: u.username, password: u.password };
  }
  return { kind: "none" };
}

/** Reads the kubeconfig files (or the service account) into a ClusterAccess. */
export async function loadClusterAccess(access: KubeAccess): Promise<ClusterAccess> {
  if (access.mode === "in-cluster") {
    return {
      server: access.server,
      caCerts: [await readFile(access.caPath, "the service account's CA certificate")],
      insecureSkipTlsVerify: false,
      auth: { kind: "tokenFile", path: access.tokenPath },
      origin: "the pod's service account",
    };
  }
  const configs: Kubeconfig[] = [];
  for (const path of access.paths) {
    const text = await readFile(
      path,
      "kubeconfig",
      " (pass --kubeconfig or set KUBECONFIG to a readable file)",
    );
    configs.push(parseKubeconfigText(path, text));
  }
  const { ca, cert, key, ...rest } = resolveKubeconfig(configs, access.context);
  const pem = (s: Source, what: string) =>
    "data" in s ? decodePem(s.data, what, rest.origin) : readFile(s.file, what);
  return {
    ...rest,
    caCerts: ca ? [await pem(ca, "certificate-authority")] : [],
    ...(cert && key
      ? {
        clientCert: {
          cert: await pem(cert, "client-certificate"),
          key: await pem(key, "client-key"),
        },
      }
      : {}),
  };
}

function decodePem(b64: string, what: string, origin: string): string {
  try {
    return new TextDecoder().decode(Uint8Array.fromBase64(b64.trim()));
  } catch {
    throw new KubeConfigError(`${origin}: ${what}-data is not base64`);
  }
}

async function readFile(path: string, what: string, fix = ""): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied
      ? "not readable (permission denied)"
      : err instanceof Error
      ? err.message
      : String(err);
    throw new KubeConfigError(`cannot read ${what} ${path}: ${why}${fix}`);
  }
}
