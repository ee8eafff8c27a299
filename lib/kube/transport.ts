// The HTTP layer to the Kubernetes REST API, over Deno's native fetch.
//
// Why not client-node's request path: in the full-refresh profile it spent
// 2.4 s of 4.0 s CPU in web streams, undici and its ObjectSerializer, built a
// typed model of every Secret it listed, and its HTTP/2 (nghttp2 under Deno's
// node layer) aborted the process on a GOAWAY. Deno.createHttpClient is one
// native pool (hyper, rustls) for every kubeconfig shape, with the CA and
// client certificate given directly, and JSON is parsed only where it is
// needed (lib/kube/listscan.ts drops unannotated Secrets unread).
//
// Every request has a deadline (--request-timeout) and runs under the run's
// budget (--timeout); network failures, timeouts, 429 and 5xx are retried
// with backoff (lib/core/retry.ts). Every failure becomes a KubeApiError.
// What is sent (Secrets, Events) is in secrets.ts and events.ts.

import type { Config } from "../config.ts";
import type { ClusterAccess } from "./kubeconfig.ts";
import { KubeConfigError } from "./kubeconfig.ts";
import { ExecCredentials } from "./exec.ts";
import { BudgetError, describeError, type SecretRef } from "../core/errors.ts";
import {
  type Backoff,
  DEFAULT_BACKOFF,
  parseRetryAfter,
  retryableStatus,
  retryDelay,
} from "../core/retry.ts";
import { KubeApiError } from "../core/store.ts";
import { Deadline } from "./deadline.ts";

/** Our name towards the API server: User-Agent, field manager, event source. */
export const COMPONENT = "kubeecr";
/**
 * The flags the transport reads: --request-timeout (deadline of one request,
 * body included), --concurrency (parallel writes; the pool keeps one more
 * connection for listing), --page-size (Secrets per list request).
 */
export type TransportConfig = Pick<Config, "requestTimeoutMs" | "concurrency" | "pageSize">;

export interface TransportOptions extends TransportConfig {
  /** Aborts when the run's budget is spent. */
  budget: AbortSignal;
  backoff?: Backoff;
  /** Told about each retry, for the "retrying" warning line. */
  onRetry?: (what: string, attempt: number, delayMs: number, why: string) => void;
  /** Told about a credential the transport obtained (an exec plugin's token), for redaction. */
  onSecret?: (secret: string) => void;
  /** Told about something the operator should know that is not a failure. */
  onWarning?: (message: string) => void;
  /** Told the Date header of every answer: the run judges time by the API server's clock. */
  onDate?: (date: string | null) => void;
}

export interface Request {
  method: "GET" | "POST" | "PATCH";
  path: string;
  /** Encoded once per object (KubeApi's cache): never changed after it is passed. */
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  contentType?: string;
  accept?: string;
}

/** The Status object of a refused request: what the server said and why. */
export interface Status {
  message?: string;
  reason?: string;
  details?: { causes?: { reason?: string }[] };
}

export type Answer<T> = { ok: true; status: number; value: T } | {
  ok: false;
  status: number;
  body: Status;
};

export class KubeApi {
  readonly #access: ClusterAccess;
  readonly #client: Deno.HttpClient;
  readonly #opts: TransportOptions;
  readonly #exec?: ExecCredentials;
  /**
   * Encoded query strings by query object: the callers' constant queries (a
   * patch's fieldManager) are encoded once, not once per request.
   */
  readonly #queries = new WeakMap<object, string>();
  /** The Authorization value when it never changes (none, token, basic); null: ask each time. */
  readonly #fixedAuth: string | undefined | null;

  constructor(access: ClusterAccess, opts: TransportOptions) {
    this.#access = access;
    this.#opts = opts;
    const auth = access.auth;
    this.#fixedAuth = auth.kind === "none"
      ? undefined
      : auth.kind === "token"
      ? `Bearer ${auth.token}`
      : auth.kind === "basic"
      ? `Basic ${new TextEncoder().encode(`${auth.username}:${auth.password}`).toBase64()}`
      : null;
    this.#client = Deno.createHttpClient({
      caCerts: access.caCerts,
      ...(access.clientCert ?? {}),
      ...(access.proxyUrl ? { proxy: { url: access.proxyUrl } } : {}),
      // Never more in flight than the workers plus the lister, so never more
      // connections either; idle ones are kept for reuse.
      poolMaxIdlePerHost: opts.concurrency + 1,
    });
    if (access.auth.kind === "exec") {
      this.#exec = new ExecCredentials(access.origin, access.auth.user, access.auth.exec, opts);
    }
  }

  get pageSize(): number {
    return this.#opts.pageSize;
  }

  /**
   * Sends `req`, retrying what is safe to retry, and reads a 2xx answer with
   * `read` (under the same deadline). Other statuses come back as Status.
   */
  async call<T>(
    operation: string,
    target: SecretRef | { namespace?: string },
    req: Request,
    read: (res: Response) => Promise<T>,
  ): Promise<Answer<T>> {
    const backoff = this.#opts.backoff ?? DEFAULT_BACKOFF;
    const where = KubeApiError.describeTarget(target);
    for (let attempt = 1;; attempt++) {
      this.#checkBudget(operation, where);
      // The deadline covers the answer's body too: released once read() is done.
      const deadline = new Deadline(this.#opts.budget, this.#opts.requestTimeoutMs);
      let tried;
      try {
        tried = await this.#attempt(operation, target, req, read, deadline);
      } finally {
        deadline.release();
      }
      if ("answer" in tried) return tried.answer;
      const failure = tried.failure;
      const delay = retryDelay(attempt, backoff, failure.retryAfterMs, Math.random());
      if (delay === undefined) {
        throw new KubeApiError(
          operation,
          failure.status,
          target,
          `${operation} ${where}: ${failure.why} (after ${attempt} attempts)`,
        );
      }
      this.#opts.onRetry?.(`${operation} ${where}`, attempt, delay, failure.why);
      await sleep(delay, this.#opts.budget);
    }
  }

  /** One attempt: the answer, or why it failed (for the retry decision). */
  async #attempt<T>(
    operation: string,
    target: SecretRef | { namespace?: string },
    req: Request,
    read: (res: Response) => Promise<T>,
    deadline: Deadline,
  ): Promise<
    { answer: Answer<T> } | { failure: { why: string; status?: number; retryAfterMs?: number } }
  > {
    const where = KubeApiError.describeTarget(target);
    let res: Response;
    try {
      res = await fetch(this.#url(req), {
        method: req.method,
        headers: await this.#headers(req),
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        client: this.#client,
        signal: deadline.signal,
      });
    } catch (err) {
      this.#checkBudget(operation, where);
      if (err instanceof KubeConfigError || err instanceof KubeApiError) throw err;
      // A certificate problem is the same on every attempt: said at once.
      const tls = deadline.expired ? undefined : certificateProblem(err, this.#access);
      if (tls) {
        throw new KubeApiError(operation, undefined, target, `${operation} ${where}: ${tls}`);
      }
      return {
        failure: {
          why: deadline.expired
            ? `no answer within --request-timeout ${this.#opts.requestTimeoutMs / 1000}s`
            : networkProblem(err, this.#access),
        },
      };
    }
    this.#opts.onDate?.(res.headers.get("date"));
    if (res.ok) {
      try {
        return { answer: { ok: true, status: res.status, value: await read(res) } };
      } catch (err) {
        this.#checkBudget(operation, where);
        if (err instanceof KubeConfigError || err instanceof KubeApiError) throw err;
        // The server answered; its answer broke off (a proxy cut it, a
        // corrupt gzip stream): not "no answer", and worth another try.
        return {
          failure: {
            why: deadline.expired
              ? `the answer (HTTP ${res.status}) did not finish within --request-timeout ${
                this.#opts.requestTimeoutMs / 1000
              }s`
              : `the answer of the API server at ${this.#access.server} (HTTP ${res.status}) ` +
                `broke off or could not be decoded: ${bodyProblem(err)}`,
          },
        };
      }
    }
    const body = await readStatus(res);
    if (!retryableStatus(res.status)) return { answer: { ok: false, status: res.status, body } };
    return {
      failure: {
        why: `HTTP ${res.status}${body.message ? `: ${body.message}` : ""}` +
          (res.status === 429 ? " (the API server is throttling this client)" : ""),
        status: res.status,
        retryAfterMs: parseRetryAfter(res.headers.get("retry-after"), new Date()),
      },
    };
  }

  #checkBudget(operation: string, where: string): void {
    if (this.#opts.budget.aborted) {
      throw new BudgetError(`${operation} ${where}: the run's --timeout ran out`);
    }
  }

  #url(req: Request): string {
    if (!req.query) return `${this.#access.server}${req.path}`;
    let q = this.#queries.get(req.query);
    if (q === undefined) {
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries(req.query)) {
        if (v !== undefined && v !== "") query.set(k, String(v));
      }
      q = query.toString();
      this.#queries.set(req.query, q);
    }
    return `${this.#access.server}${req.path}${q ? `?${q}` : ""}`;
  }

  /**
   * A plain record: fetch builds its header list from it once, where a
   * Headers object of ours was built, validated and then copied again.
   */
  async #headers(req: Request): Promise<Record<string, string>> {
    const h: Record<string, string> = {
      Accept: req.accept ?? "application/json",
      "User-Agent": COMPONENT,
    };
    if (req.body !== undefined) h["Content-Type"] = req.contentType ?? "application/json";
    const auth = this.#fixedAuth === null ? await this.#authorization() : this.#fixedAuth;
    if (auth) h.Authorization = auth;
    return h;
  }

  async #authorization(): Promise<string | undefined> {
    const auth = this.#access.auth;
    switch (auth.kind) {
      case "none":
        return undefined;
      case "token":
        return `Bearer ${auth.token}`;
      case "tokenFile": {
        let token: string;
        try {
          token = (await Deno.readTextFile(auth.path)).trim();
        } catch (err) {
          throw new KubeConfigError(`cannot read the token file ${auth.path}`, { cause: err });
        }
        return `Bearer ${token}`;
      }
      case "basic":
        return `Basic ${new TextEncoder().encode(`${auth.username}:${auth.password}`).toBase64()}`;
      case "exec":
        return `Bearer ${await this.#exec!.token()}`;
    }
  }
}

async function readStatus(res: Response): Promise<Status> {
  try {
    const body = await res.json();
    return typeof body === "object" && body !== null ? body : {};
  } catch {
    return {};
  }
}

/**
 * A TLS verification failure of the API server's certificate, as what to fix.
 * Deno's fetch error carries rustls's reason only in its text ("invalid peer
 * certificate: NotValidYet"), so that fixed vocabulary is matched here, in
 * one place; anything else is left to networkProblem and retried.
 */
export function certificateProblem(err: unknown, access: ClusterAccess): string | undefined {
  const detail = /invalid peer certificate: (.*)$/.exec(describeError(err))?.[1];
  if (detail === undefined) return undefined;
  const cert = `the API server's certificate at ${access.server}`;
  const fix = CERTIFICATE_FIXES.find(([pattern]) => pattern.test(detail))?.[1];
  if (fix === undefined) return `${cert} was refused (${detail})`;
  const text = `${cert} ${fix} (${detail})`;
  if (access.insecureSkipTlsVerify && fix === UNKNOWN_ISSUER) {
    return `${text}; the kubeconfig sets insecure-skip-tls-verify, which Deno's HTTP client ` +
      "cannot honour per cluster: add the cluster's certificate-authority-data, or run " +
      `deno run --unsafely-ignore-certificate-errors=${new URL(access.server).hostname} ...`;
  }
  return text;
}

const UNKNOWN_ISSUER = "is not signed by the CA this run trusts: check the kubeconfig's " +
  "certificate-authority(-data) (in a pod: the service account's ca.crt), or whether a proxy " +
  "answers in the API server's place";

/** rustls's reasons, in its older (enum) and newer (sentence) wording. */
const CERTIFICATE_FIXES: [RegExp, string][] = [
  [/UnknownIssuer|unknown issuer|BadSignature|bad signature/i, UNKNOWN_ISSUER],
  [
    /NotValidYet|not valid yet/i,
    "is not valid yet: this machine's clock is behind, or the certificate was issued with a " +
    "future start date; check the clock (timedatectl) and the certificate",
  ],
  [
    /Expired|expired/,
    "has expired, or this machine's clock is ahead: renew the API server's certificate or fix " +
    "the clock",
  ],
  [
    /NotValidForName|not valid for name/i,
    "does not name the host of the server URL: use a server URL the certificate names (its " +
    "SANs), e.g. the one kubectl config view shows for this cluster",
  ],
];

/** Why a body could not be read, without the request URL Deno's message repeats. */
function bodyProblem(err: unknown): string {
  return describeError(err).replace(
    /error (sending request|reading a body) (for|from) [^:]*: ?/g,
    "",
  );
}

/** What a failed fetch says, with the fix for the one case a kubeconfig can cause. */
function networkProblem(err: unknown, access: ClusterAccess): string {
  // "fetch failed: error sending request for url (https://…): client error
  // (Connect): tcp connect error: Connection refused" → without the URL.
  const text = `no answer from the API server at ${access.server}: ${
    describeError(err).replace(/error sending request for url \([^)]*\): ?/g, "")
  }`;
  if (access.insecureSkipTlsVerify && /certificate|UnknownIssuer/i.test(text)) {
    return `${text}; the kubeconfig sets insecure-skip-tls-verify, which Deno's HTTP client ` +
      "cannot honour per cluster: add the cluster's certificate-authority-data, or run " +
      `deno run --unsafely-ignore-certificate-errors=${new URL(access.server).hostname} ...`;
  }
  return text;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Turns a refused request into a KubeApiError whose message says what to do;
 * `grant` is what a 403 asks the operator to grant.
 */
export function refused(
  operation: string,
  target: SecretRef | { namespace?: string },
  status: number,
  body: Status,
  grant = `'${operation}' on secrets`,
): KubeApiError {
  const where = KubeApiError.describeTarget(target);
  const terminating = body.details?.causes?.some((c) => c.reason === "NamespaceTerminating");
  const namespace = "namespace" in target ? target.namespace : undefined;
  const hint = terminating
    ? `; namespace ${namespace} is being deleted, so nothing can be created in it`
    : status === 403
    ? `; grant the kubeecr identity ${grant} there (see manifests/), or limit the run with --namespace`
    : status === 401
    ? "; the credentials in the kubeconfig or the service-account token were not accepted"
    : "";
  return new KubeApiError(
    operation,
    status,
    target,
    `${operation} ${where}: HTTP ${status}${body.message ? `: ${body.message}` : ""}${hint}`,
    { serverMessage: body.message },
  );
}

/** "127.0.0.1:6443" of the URL that answered. */
export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "the server";
  }
}

/**
 * Reads an answer we do not need, so its connection can serve the next
 * request. In one piece: a streamed read leaves a 64 KiB buffer per answer
 * for the GC (2,000 patches left ~40 MiB of them pending in a run).
 */
export async function drain(res: Response): Promise<void> {
  await res.arrayBuffer();
}
