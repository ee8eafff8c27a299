/**
 * A fault proxy for the integration tests: KubeECR talks to it instead of the
 * API server (HTTPS) or the ECR endpoint (plain HTTP), and it forwards to the
 * real server unless a rule says otherwise. Rules can delay a request, never
 * answer it, make the whole proxy go silent (drop every byte), close the
 * client's connection without an answer, or answer a status of their own
 * (429 with Retry-After, 500, 503, 410 to a continue request), or rewrite the
 * upstream's body (a login page, `{}`, a list that lost its field selector),
 * for the first N matching requests, after N have passed, or always.
 *
 * It also counts what a test cannot see from outside the process: TCP
 * connections (current, peak, total) and requests per method and path, each
 * with its arrival time and the fault applied.
 *
 * Shape: a TCP (or TLS) listener accepts the client's connections, counts
 * them, and copies their bytes to an internal Deno.serve on another loopback
 * port, one internal connection per client connection. Deno.serve parses
 * HTTP/1.1 and HTTP/2 (ALPN offers both, like the real API server), the
 * handler applies the rules and forwards with fetch. The byte copy is what
 * lets the proxy count connections, drop traffic and close a client's
 * connection: Deno.serve exposes none of that.
 *
 * Authentication to the API server: a TLS-terminating proxy cannot forward a
 * client certificate (the client's key signs only the handshake with the
 * proxy), so the proxy presents the test admin certificate upstream. A request
 * that carries an Authorization header (a service-account token) is forwarded
 * over a connection *without* the admin certificate, with the header
 * unchanged, so a test can still run as a restricted identity and RBAC is
 * exercised for real.
 *
 * "reset" closes the client's connection with no answer. Deno cannot set
 * SO_LINGER, so the kernel sends FIN rather than RST; the client sees the same
 * thing as after a reset mid-request (the connection closed before a
 * response), which is the failure a retry policy must handle.
 *
 * Everything listens on 127.0.0.1; `await using` (or close()) ends every
 * connection and pending request.
 */

import { type KubeconfigUser, kubeconfigYaml, type TestEnvInfo } from "./env.ts";
import { regionOf } from "./ecr_proxy.ts";

export type Fault =
  /** Wait `ms`, then forward. */
  | { kind: "delay"; ms: number }
  /** Accept the request and never answer it (until the proxy closes). */
  | { kind: "hang" }
  /** From this request on, the proxy drops everything: no byte in either direction. */
  | { kind: "drop" }
  /** Close the client's connection without an answer. */
  | { kind: "reset" }
  /** Answer this status (with a body in the upstream's error format) instead of forwarding. */
  | { kind: "status"; status: number; retryAfterSeconds?: number }
  /**
   * Forward, then answer `rewrite(upstream body)` instead of the upstream's
   * body, with this content type (default: the upstream's) and the upstream's
   * status: an auth proxy's login page, `{}`, a list that lost its field selector.
   */
  | { kind: "rewrite"; rewrite: (body: string) => string; contentType?: string };

export const fault = {
  delay: (ms: number): Fault => ({ kind: "delay", ms }),
  hang: (): Fault => ({ kind: "hang" }),
  drop: (): Fault => ({ kind: "drop" }),
  reset: (): Fault => ({ kind: "reset" }),
  status: (status: number, retryAfterSeconds?: number): Fault => ({
    kind: "status",
    status,
    retryAfterSeconds,
  }),
  rewrite: (rewrite: (body: string) => string, contentType?: string): Fault => ({
    kind: "rewrite",
    rewrite,
    contentType,
  }),
};

/** Request predicates for rules. */
export const on = {
  /** A list of Secrets, in one namespace or across all. */
  secretList: (r: Request) => r.method === "GET" && /\/secrets$/.test(new URL(r.url).pathname),
  /** A request that carries a `continue` token (the second and later pages of a list). */
  continued: (r: Request) => new URL(r.url).searchParams.has("continue"),
  /** A write of a Secret. */
  secretPatch: (r: Request) =>
    r.method === "PATCH" && /\/secrets\/[^/]+$/.test(new URL(r.url).pathname),
  /** A write of an Event (create, or update of an aggregated one). */
  eventWrite: (r: Request) =>
    r.method !== "GET" && /\/events(\/[^/]+)?$/.test(new URL(r.url).pathname),
  /** An ECR call for `region` (from the SigV4 credential scope). */
  region: (region: string) => (r: Request) => regionOf(r.headers.get("authorization")) === region,
};

export interface Rule {
  /** The requests this rule is about; every request when absent. */
  match?: (r: Request) => boolean;
  /** Matching requests forwarded untouched before the fault starts (default 0). */
  after?: number;
  /** Matching requests the fault is applied to; then they pass again (default: no limit). */
  times?: number;
  fault: Fault;
}

export interface RuleHandle {
  /** Requests that matched the rule. */
  readonly seen: number;
  /** Requests the fault was applied to. */
  readonly hits: number;
  remove(): void;
}

export interface RequestRecord {
  /** Date.now() when the request arrived (comparable with the test's own clock). */
  at: number;
  method: string;
  path: string;
  search: string;
  /** The fault applied, or undefined when forwarded untouched. */
  fault?: Fault["kind"];
  /** The status sent to the client; undefined when none was (hang, drop, reset, still pending). */
  status?: number;
}

export interface FaultProxy extends AsyncDisposable {
  /** Where clients connect: https://127.0.0.1:<port> or http://127.0.0.1:<port>. */
  url: string;
  /** Adds a rule; rules are tried in the order added, the first one that fires decides. */
  add(rule: Rule): RuleHandle;
  /** Removes every rule and ends drop mode (connections open during it are closed). */
  reset(): void;
  readonly connections: { current: number; peak: number; total: number };
  /** Every request seen, oldest first (the last MAX_RECORDS). */
  readonly requests: readonly RequestRecord[];
  /** Requests seen with this method (any when absent) whose path matches. */
  count(method?: string, path?: RegExp): number;
  close(): Promise<void>;
}

/** What the proxy answers for a fault status: the upstream's own error format. */
type Flavor = "kubernetes" | "aws";

export interface FaultProxyOptions {
  upstream: string;
  flavor: Flavor;
  /** Terminate TLS with this certificate (PEM file paths); plain HTTP when absent. */
  tls?: { cert: string; key: string };
  /** Trust this CA and present this client certificate upstream (PEM file paths). */
  upstreamTls?: { caCert: string; cert?: string; key?: string };
  /** ALPN protocols offered to clients (TLS only); default h2 and http/1.1, like kube-apiserver. */
  alpn?: string[];
}

const MAX_RECORDS = 20_000;
const HOP_BY_HOP = ["host", "connection", "keep-alive", "transfer-encoding", "content-length"];

/** Kubernetes' own reasons and messages, so a client parses the Status as it would the real one. */
const KUBE_STATUS: Record<number, { reason: string; message: string }> = {
  410: {
    reason: "Expired",
    message: "The provided continue parameter is too old to display a consistent list result. " +
      "You can start a new list without the continue parameter.",
  },
  429: { reason: "TooManyRequests", message: "Too many requests, please try again later." },
  500: { reason: "InternalError", message: "Internal error occurred: injected by the fault proxy" },
  503: {
    reason: "ServiceUnavailable",
    message: "The server is currently unable to handle the request",
  },
};

const AWS_ERROR: Record<number, string> = {
  429: "ThrottlingException",
  500: "ServerException",
  503: "ServiceUnavailableException",
};

function faultResponse(flavor: Flavor, f: Extract<Fault, { kind: "status" }>): Response {
  const headers: Record<string, string> = {};
  if (f.retryAfterSeconds !== undefined) headers["retry-after"] = String(f.retryAfterSeconds);
  if (flavor === "aws") {
    headers["content-type"] = "application/x-amz-json-1.1";
    const type = AWS_ERROR[f.status] ?? "ServerException";
    return Response.json({ __type: type, message: "injected by the fault proxy" }, {
      status: f.status,
      headers,
    });
  }
  const known = KUBE_STATUS[f.status] ??
    { reason: "Unknown", message: "injected by the fault proxy" };
  return Response.json({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: known.message,
    reason: known.reason,
    details: f.retryAfterSeconds === undefined
      ? undefined
      : { retryAfterSeconds: f.retryAfterSeconds },
    code: f.status,
  }, { status: f.status, headers });
}

interface Link {
  client: Deno.Conn;
  inner?: Deno.Conn;
  closed: boolean;
  /** Resolves when closeLink() ran. */
  done: Promise<void>;
  resolve: () => void;
}

function newLink(client: Deno.Conn): Link {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { client, closed: false, done: promise, resolve };
}

function closeLink(link: Link) {
  if (link.closed) return;
  link.closed = true;
  link.resolve();
  for (const c of [link.client, link.inner]) {
    try {
      c?.close();
    } catch { /* already closed */ }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array) {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}

export function startFaultProxy(opts: FaultProxyOptions): FaultProxy {
  const closing = new AbortController();
  const closed = new Promise<void>((r) => closing.signal.addEventListener("abort", () => r()));
  const rules: { rule: Rule; seen: number; hits: number }[] = [];
  const records: RequestRecord[] = [];
  const connections = { current: 0, peak: 0, total: 0 };
  const links = new Set<Link>();
  /** Internal connection's local port → its link: how the handler finds the client's connection. */
  const byInnerPort = new Map<number, Link>();
  const tasks = new Set<Promise<unknown>>();
  let dropping = false;

  const track = (p: Promise<unknown>) => {
    const t = p.catch(() => {}).finally(() => tasks.delete(t));
    tasks.add(t);
  };

  const read = (path?: string) => path ? Deno.readTextFileSync(path) : undefined;
  const upstreamClients = opts.upstreamTls
    ? {
      withCert: Deno.createHttpClient({
        caCerts: [read(opts.upstreamTls.caCert)!],
        cert: read(opts.upstreamTls.cert),
        key: read(opts.upstreamTls.key),
      }),
      bearer: Deno.createHttpClient({ caCerts: [read(opts.upstreamTls.caCert)!] }),
    }
    : undefined;

  async function forward(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const headers = new Headers(req.headers);
    for (const h of HOP_BY_HOP) headers.delete(h);
    // Bodies are passed through as they are; a compressed one would be
    // decompressed by fetch and then carry a wrong content-encoding.
    headers.set("accept-encoding", "identity");
    const client = upstreamClients &&
      (headers.has("authorization") ? upstreamClients.bearer : upstreamClients.withCert);
    try {
      return await fetch(`${opts.upstream}${url.pathname}${url.search}`, {
        method: req.method,
        headers,
        body: req.body ? await req.arrayBuffer() : undefined,
        redirect: "manual",
        client,
        signal: closing.signal,
      });
    } catch (err) {
      return new Response(`fault proxy: upstream failed: ${(err as Error).message}`, {
        status: 502,
      });
    }
  }

  function decide(req: Request): Fault | undefined {
    for (const r of rules) {
      if (r.rule.match && !r.rule.match(req)) continue;
      r.seen++;
      if (r.seen <= (r.rule.after ?? 0)) continue;
      if (r.rule.times !== undefined && r.hits >= r.rule.times) continue;
      r.hits++;
      return r.rule.fault;
    }
    return undefined;
  }

  const handler = async (req: Request, info: Deno.ServeHandlerInfo): Promise<Response> => {
    const url = new URL(req.url);
    const f = decide(req);
    const record: RequestRecord = {
      at: Date.now(),
      method: req.method,
      path: url.pathname,
      search: url.search,
      fault: f?.kind,
    };
    records.push(record);
    if (records.length > MAX_RECORDS) records.shift();
    const never = async () => {
      await closed;
      return new Response(null, { status: 503 });
    };
    if (dropping) return await never();
    let response: Response;
    switch (f?.kind) {
      case "hang":
        return await never();
      case "drop":
        dropping = true;
        return await never();
      case "reset": {
        const link = byInnerPort.get((info.remoteAddr as Deno.NetAddr).port);
        if (link) closeLink(link);
        return await never();
      }
      case "status":
        await req.body?.cancel();
        response = faultResponse(opts.flavor, f);
        break;
      case "delay":
        await new Promise((r) => {
          const t = setTimeout(r, f.ms);
          closing.signal.addEventListener("abort", () => {
            clearTimeout(t);
            r(undefined);
          });
        });
        response = await forward(req);
        break;
      case "rewrite": {
        const upstream = await forward(req);
        const headers = new Headers(upstream.headers);
        for (const h of HOP_BY_HOP) headers.delete(h);
        if (f.contentType !== undefined) headers.set("content-type", f.contentType);
        response = new Response(f.rewrite(await upstream.text()), {
          status: upstream.status,
          headers,
        });
        break;
      }
      default:
        response = await forward(req);
    }
    record.status = response.status;
    return response;
  };

  const inner = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: closing.signal, onListen: () => {} },
    handler,
  );

  const listener: Deno.Listener = opts.tls
    ? Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: read(opts.tls.cert)!,
      key: read(opts.tls.key)!,
      alpnProtocols: opts.alpn ?? ["h2", "http/1.1"],
    })
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });

  /** Copies bytes one way; in drop mode they are read and discarded, like packets lost. */
  async function copy(from: Deno.Conn, to: Deno.Conn) {
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await from.read(buf);
      if (n === null) return;
      if (!dropping) await writeAll(to, buf.subarray(0, n));
    }
  }

  async function serveConnection(client: Deno.Conn) {
    const link = newLink(client);
    links.add(link);
    connections.current++;
    connections.total++;
    connections.peak = Math.max(connections.peak, connections.current);
    try {
      // A connection that arrives while dropping is accepted and never read:
      // not even its TLS handshake completes.
      if (dropping) return await link.done;
      link.inner = await Deno.connect({ hostname: "127.0.0.1", port: inner.addr.port });
      const port = (link.inner.localAddr as Deno.NetAddr).port;
      byInnerPort.set(port, link);
      try {
        // Either side ending ends both: the connection is one thing to the client.
        await Promise.race([copy(client, link.inner), copy(link.inner, client)]);
      } finally {
        byInnerPort.delete(port);
      }
    } catch {
      // Closed under a read or write (reset, close, client gone): the connection is over.
    } finally {
      closeLink(link);
      links.delete(link);
      connections.current--;
    }
  }

  track((async () => {
    try {
      for await (const conn of listener) track(serveConnection(conn));
    } catch {
      // The listener was closed.
    }
  })());

  const addr = listener.addr as Deno.NetAddr;
  const url = `${opts.tls ? "https" : "http"}://127.0.0.1:${addr.port}`;
  let closing_: Promise<void> | undefined;
  const close = () => {
    closing_ ??= (async () => {
      closing.abort();
      try {
        listener.close();
      } catch { /* already closed */ }
      for (const link of links) closeLink(link);
      await inner.finished;
      await Promise.all([...tasks]);
      upstreamClients?.withCert.close();
      upstreamClients?.bearer.close();
    })();
    return closing_;
  };

  return {
    url,
    add(rule) {
      const entry = { rule, seen: 0, hits: 0 };
      rules.push(entry);
      return {
        get seen() {
          return entry.seen;
        },
        get hits() {
          return entry.hits;
        },
        remove: () => {
          const i = rules.indexOf(entry);
          if (i >= 0) rules.splice(i, 1);
        },
      };
    },
    reset() {
      rules.length = 0;
      if (dropping) {
        for (const link of links) closeLink(link);
        dropping = false;
      }
    },
    get connections() {
      return { ...connections };
    },
    get requests() {
      return records;
    },
    count: (method, path) =>
      records.filter((r) => (!method || r.method === method) && (!path || path.test(r.path)))
        .length,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * A fault proxy in front of the environment's API server, presenting the
 * environment's serving certificate (it names 127.0.0.1), so a kubeconfig
 * trusting the test CA reaches it unchanged.
 */
export function startKubeFaultProxy(
  env: TestEnvInfo,
  opts: Pick<FaultProxyOptions, "alpn"> = {},
): FaultProxy {
  return startFaultProxy({
    upstream: env.server,
    flavor: "kubernetes",
    tls: env.serving,
    upstreamTls: { caCert: env.caCert, ...env.admin },
    alpn: opts.alpn,
  });
}

/** A fault proxy in front of an AWS endpoint (moto, or an EcrProxy's url). */
export function startAwsFaultProxy(upstream: string): FaultProxy {
  return startFaultProxy({ upstream, flavor: "aws" });
}

/**
 * Writes a kubeconfig that points at `proxy` (removed with the environment's
 * directory). The default user is the admin certificate, which the proxy does
 * not ask for (it authenticates upstream itself); pass `{ token }` to run as
 * that token's identity through the proxy.
 */
export async function proxyKubeconfig(
  env: TestEnvInfo,
  proxy: FaultProxy,
  user: KubeconfigUser = env.admin,
): Promise<string> {
  const path = await Deno.makeTempFile({
    dir: env.dir,
    prefix: "kubeconfig-proxy-",
    suffix: ".yaml",
  });
  await Deno.writeTextFile(path, kubeconfigYaml(proxy.url, env.caCert, user), { mode: 0o600 });
  return path;
}
