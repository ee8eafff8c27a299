// SecretStore on the Kubernetes REST API, over Deno's native fetch.
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

import type { ClusterAccess, ExecConfig } from "./kubeconfig.ts";
import { KubeConfigError } from "./kubeconfig.ts";
import { BudgetError, describeError, type SecretRef } from "../core/errors.ts";
import { ListReader, type ListShape } from "./listscan.ts";
import {
  type Backoff,
  DEFAULT_BACKOFF,
  parseRetryAfter,
  retryableStatus,
  retryDelay,
} from "../core/retry.ts";
import { STATUS_PREFIX } from "../core/due.ts";
import {
  KubeApiError,
  type ListScope,
  type PatchResult,
  type RejectedItem,
  type SecretEvent,
  type SecretStore,
  type SecretUpdate,
  type StoredData,
  type StoredSecret,
  UnexpectedAnswerError,
} from "../core/store.ts";

export const DOCKER_CONFIG_TYPE = "kubernetes.io/dockerconfigjson";
export const DOCKER_CONFIG_KEY = ".dockerconfigjson";
const COMPONENT = "kubeecr";
// One page is at most 500 Secrets (issue 10); only the annotated ones are kept.
export const PAGE_SIZE = 500;
// Ask for PartialObjectMetadataList: the server sends metadata only, so no
// Secret's data (Helm releases, certificates) crosses the wire.
const METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const EVENT_OPERATION = "create event for";

export interface TransportOptions {
  /** Deadline of one request, body included. */
  requestTimeoutMs: number;
  /** Aborts when the run's budget is spent. */
  budget: AbortSignal;
  /** Parallel Secret writes; the pool keeps one more connection for listing. */
  concurrency: number;
  backoff?: Backoff;
  /** Told about each retry, for a debug line. */
  onRetry?: (what: string, attempt: number, delayMs: number, why: string) => void;
  /** Secrets per list request; PAGE_SIZE when not given. */
  pageSize?: number;
  /** Told about a credential the transport obtained (an exec plugin's token), for redaction. */
  onSecret?: (secret: string) => void;
  /** Told about something the operator should know that is not a failure. */
  onWarning?: (message: string) => void;
  /** Told the Date header of every answer: the run judges time by the API server's clock. */
  onDate?: (date: string | null) => void;
}

interface Request {
  method: "GET" | "POST" | "PATCH";
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  contentType?: string;
  accept?: string;
}

/** The Status object of a refused request: what the server said and why. */
interface Status {
  message?: string;
  reason?: string;
  details?: { causes?: { reason?: string }[] };
}

type Answer<T> = { ok: true; status: number; value: T } | {
  ok: false;
  status: number;
  body: Status;
};

/** The HTTP layer: auth headers, deadline, budget, retries. */
export class KubeApi {
  readonly #access: ClusterAccess;
  readonly #client: Deno.HttpClient;
  readonly #opts: TransportOptions;
  #execToken?: { token: string; expires: number };
  #execRun?: Promise<string>;

  constructor(access: ClusterAccess, opts: TransportOptions) {
    this.#access = access;
    this.#opts = opts;
    this.#client = Deno.createHttpClient({
      caCerts: access.caCerts,
      ...(access.clientCert ?? {}),
      ...(access.proxyUrl ? { proxy: { url: access.proxyUrl } } : {}),
      // Never more in flight than the workers plus the lister, so never more
      // connections either; idle ones are kept for reuse.
      poolMaxIdlePerHost: opts.concurrency + 1,
    });
  }

  get pageSize(): number {
    return this.#opts.pageSize ?? PAGE_SIZE;
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
      const deadline = AbortSignal.timeout(this.#opts.requestTimeoutMs);
      const signal = AbortSignal.any([this.#opts.budget, deadline]);
      const tried = await this.#attempt(operation, target, req, read, deadline, signal);
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
    deadline: AbortSignal,
    signal: AbortSignal,
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
        signal,
      });
    } catch (err) {
      this.#checkBudget(operation, where);
      if (err instanceof KubeConfigError || err instanceof KubeApiError) throw err;
      // A certificate problem is the same on every attempt: said at once.
      const tls = deadline.aborted ? undefined : certificateProblem(err, this.#access);
      if (tls) {
        throw new KubeApiError(operation, undefined, target, `${operation} ${where}: ${tls}`);
      }
      return {
        failure: {
          why: deadline.aborted
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
            why: deadline.aborted
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
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(req.query ?? {})) {
      if (v !== undefined && v !== "") query.set(k, String(v));
    }
    const q = query.toString();
    return `${this.#access.server}${req.path}${q ? `?${q}` : ""}`;
  }

  async #headers(req: Request): Promise<Headers> {
    const h = new Headers({
      Accept: req.accept ?? "application/json",
      "User-Agent": "kubeecr",
    });
    if (req.body !== undefined) h.set("Content-Type", req.contentType ?? "application/json");
    const auth = await this.#authorization();
    if (auth) h.set("Authorization", auth);
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
        return `Bearer ${await this.#execCredential(auth.user, auth.exec)}`;
    }
  }

  /**
   * Runs the kubeconfig's exec plugin once, and again only when its token
   * expires. Concurrent requests share one run (a page of writes would
   * otherwise start one plugin each).
   */
  #execCredential(user: string, exec: ExecConfig): Promise<string> {
    const cached = this.#execToken;
    if (cached && cached.expires > Date.now()) return Promise.resolve(cached.token);
    this.#execRun ??= this.#runExecPlugin(user, exec).finally(() => this.#execRun = undefined);
    return this.#execRun;
  }

  async #runExecPlugin(user: string, exec: ExecConfig): Promise<string> {
    const granted = (await Deno.permissions.query({ name: "run", command: exec.command })).state;
    if (granted !== "granted") {
      throw new KubeConfigError(
        `${this.#access.origin}: user ${user} gets its token from the exec plugin ` +
          `"${exec.command}", and this sandbox runs no programs; allow that one program: ` +
          `deno run -P=local --allow-run=${exec.command} main.ts [flags]`,
      );
    }
    const plugin = `the exec plugin "${exec.command}" of user ${user}`;
    const deadline = AbortSignal.timeout(EXEC_TIMEOUT_MS);
    let out: PluginOutput;
    try {
      out = await runPlugin(exec, AbortSignal.any([this.#opts.budget, deadline]));
    } catch (err) {
      throw new KubeConfigError(`${this.#access.origin}: cannot run ${plugin}`, { cause: err });
    }
    if (out.ended === "aborted") {
      this.#checkBudget("run", plugin);
      throw new KubeConfigError(
        `${this.#access.origin}: ${plugin} gave no answer within ${
          EXEC_TIMEOUT_MS / 1000
        }s and was killed; run it by hand to see what it waits for (a login prompt?)`,
      );
    }
    if (out.ended === "overflow") {
      throw new KubeConfigError(
        `${this.#access.origin}: ${plugin} printed more than ${
          MAX_PLUGIN_STDOUT / 1024
        } KiB and was killed; an ExecCredential is a few KiB`,
      );
    }
    const status = parseExecCredential(out.stdout);
    if (!out.success || !status?.token) {
      // Its stderr says what went wrong (expired SSO session, unknown
      // profile), but it may also echo a credential: only its first line is
      // shown, with anything credential-like removed. Stdout would hold the
      // credential, so it is never shown.
      const stderr = stderrHint(out.stderr);
      throw new KubeConfigError(
        `${this.#access.origin}: ${plugin} ` +
          `${out.success ? "returned no token" : `failed (exit ${out.code})`}` +
          (stderr ? `: ${stderr}` : ""),
      );
    }
    this.#opts.onSecret?.(status.token);
    const expiry = execExpiry(status.expirationTimestamp, Date.now());
    if (expiry.warning) {
      this.#opts.onWarning?.(`${plugin}: ${expiry.warning}`);
    }
    this.#execToken = { token: status.token, expires: expiry.reuseUntil };
    return status.token;
  }
}

/** An exec plugin's run; a hung one is killed at this deadline (or the run's budget). */
export const EXEC_TIMEOUT_MS = 30_000;
/** An ExecCredential is a few KiB; more is not one (and must not fill memory). */
export const MAX_PLUGIN_STDOUT = 1024 * 1024;
const MAX_PLUGIN_STDERR = 4096;
/** A token about to expire is still used this long before its expiry. */
const EXEC_EXPIRY_MARGIN_MS = 30_000;

/**
 * How long a plugin's token is reused. An expiry that cannot be used
 * (unparseable, past, or under 30 s away) would make every request run the
 * plugin again (61 runs for 30 Secrets): the token is then used for the rest
 * of this run, with a warning, and the API server says if it is refused.
 */
export function execExpiry(
  expirationTimestamp: string | undefined,
  now: number,
): { reuseUntil: number; warning?: string } {
  if (expirationTimestamp === undefined) return { reuseUntil: Infinity };
  const at = Date.parse(expirationTimestamp);
  const forRun = (why: string) => ({
    reuseUntil: Infinity,
    warning: `its expirationTimestamp ${JSON.stringify(expirationTimestamp)} ${why}; ` +
      "the token is used for the rest of this run",
  });
  if (Number.isNaN(at)) return forRun("is not an RFC 3339 time");
  if (at <= now) return forRun("is already past");
  if (at - now < EXEC_EXPIRY_MARGIN_MS) return forRun("is less than 30s away");
  return { reuseUntil: at - EXEC_EXPIRY_MARGIN_MS };
}

/**
 * The first line of a plugin's stderr without anything credential-like:
 * long opaque strings (tokens, keys) and the values of `token=`,
 * `password: ` and the like, to the end of the line. E.g. "error: session
 * token=abc expired" → "error: session token [REDACTED]".
 */
export function stderrHint(stderr: string): string {
  const first = stderr.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "";
  return first
    // Everything after a word that announces a credential: "token=abc",
    // "Bearer abc", "password: abc" alike.
    .replace(
      /\b(tokens?|secrets?|password|passwd|key|credentials?|authorization|bearer)\b.*$/i,
      "$1 [REDACTED]",
    )
    // Opaque strings (tokens, keys), not paths: "/" is left out so a
    // plugin's "no such file /home/me/.aws/config" stays readable.
    .replace(/[A-Za-z0-9+=_.~-]{24,}/g, "[REDACTED]")
    .slice(0, 200);
}

interface PluginOutput {
  /** How it ended: exited, killed at the deadline, or killed for printing too much. */
  ended: "exited" | "aborted" | "overflow";
  success: boolean;
  code: number;
  stdout: Uint8Array;
  stderr: string;
}

/**
 * Runs the plugin in a session (and so a process group) of its own
 * (`detached`, which calls setsid(2); no setsid binary needed), so a Ctrl-C
 * meant for KubeECR reaches it only through KubeECR's own stop. At the
 * deadline the plugin is killed (SIGKILL: a plugin may ignore SIGTERM) and
 * the run stops waiting at once: the pipes are cancelled, so a child left
 * holding stdout cannot keep the run alive. Its children are not killed:
 * Deno signals only its own child (Deno.kill(-pgid) reaches the leader alone,
 * checked with Deno 2.9.6), so an orphan lives until it ends by itself.
 * Stdout is read up to MAX_PLUGIN_STDOUT.
 */
async function runPlugin(exec: ExecConfig, signal: AbortSignal): Promise<PluginOutput> {
  const child = new Deno.Command(exec.command, {
    args: exec.args,
    env: {
      ...Object.fromEntries(exec.env.map((e) => [e.name, e.value])),
      KUBERNETES_EXEC_INFO: JSON.stringify({
        apiVersion: exec.apiVersion,
        kind: "ExecCredential",
        spec: { interactive: false },
      }),
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  let ended: PluginOutput["ended"] = "exited";
  const kill = (why: PluginOutput["ended"]) => {
    if (ended === "exited") ended = why;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  };
  const onAbort = () => kill("aborted");
  signal.addEventListener("abort", onAbort, { once: true });
  const stopped = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
  const stdout = readCapped(child.stdout, MAX_PLUGIN_STDOUT, () => kill("overflow"));
  const stderr = readCapped(child.stderr, MAX_PLUGIN_STDERR);
  try {
    const status = await Promise.race([child.status, stopped.then(() => undefined)]);
    // Exited: what it printed is in the pipe already; a child it left behind
    // may hold the pipe open, so wait briefly, not for EOF.
    const settle = new Promise<void>((r) => setTimeout(r, status ? 1000 : 0));
    const [out, err] = await Promise.all([stdout.until(settle), stderr.until(settle)]);
    if (!status) kill("aborted");
    return {
      ended,
      success: status?.success === true && ended === "exited",
      code: status?.code ?? -1,
      stdout: out,
      stderr: new TextDecoder().decode(err),
    };
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (ended !== "exited") await child.status.catch(() => {});
  }
}

/** Reads a stream into memory up to `cap` bytes; `until` stops reading and cancels it. */
function readCapped(stream: ReadableStream<Uint8Array>, cap: number, onOverflow?: () => void) {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const room = cap - size;
        chunks.push(value.subarray(0, Math.max(room, 0)));
        size += value.length;
        if (size > cap) {
          onOverflow?.();
          return;
        }
      }
    } catch { /* cancelled */ }
  })();
  return {
    async until(stop: Promise<void>): Promise<Uint8Array> {
      await Promise.race([done, stop]);
      await reader.cancel().catch(() => {});
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        all.set(c, at);
        at += c.length;
      }
      return all;
    },
  };
}

function parseExecCredential(
  stdout: Uint8Array,
): { token?: string; expirationTimestamp?: string } | undefined {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(stdout));
    const status = parsed?.status;
    return typeof status?.token === "string" ? status : undefined;
  } catch {
    return undefined;
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

/** Turns a refused request into a KubeApiError whose message says what to do. */
function refused(
  operation: string,
  target: SecretRef | { namespace?: string },
  status: number,
  body: Status,
): KubeApiError {
  const where = KubeApiError.describeTarget(target);
  const terminating = body.details?.causes?.some((c) => c.reason === "NamespaceTerminating");
  const namespace = "namespace" in target ? target.namespace : undefined;
  const hint = terminating
    ? `; namespace ${namespace} is being deleted, so nothing can be created in it`
    : status === 403
    ? `; grant the kubeecr identity ${
      operation === EVENT_OPERATION
        ? "'create', 'get' and 'patch' on events"
        : `'${operation}' on secrets`
    } there (see manifests/), or limit the run with --namespace`
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

/**
 * An admission policy or webhook refused the write (RBAC allows it): the
 * server's message says which and why; granting anything would not help.
 */
function admissionRefused(ref: SecretRef, status: number, body: Status): KubeApiError {
  return new KubeApiError(
    "patch",
    status,
    ref,
    `patch ${KubeApiError.describeTarget(ref)}: HTTP ${status}: an admission policy or webhook ` +
      `refused the write${body.message ? ` (the API server said: ${body.message})` : ""}; ` +
      "KubeECR's identity may patch this Secret, so change or exempt it in that policy " +
      "(kubectl get validatingadmissionpolicies,validatingwebhookconfigurations)",
    { serverMessage: body.message },
  );
}

/** The Secret in a write's answer, or UnexpectedAnswerError when the answer is not one. */
async function storedOf(res: Response, ref: SecretRef): Promise<StoredData> {
  const text = await res.text();
  let secret: unknown;
  try {
    secret = JSON.parse(text);
  } catch {
    secret = undefined;
  }
  const why = unusable(secret, "") ??
    ((secret as SecretJson).metadata?.name !== ref.name ? "it names another object" : undefined);
  if (why) {
    throw new UnexpectedAnswerError(
      "patch",
      res.status,
      ref,
      `patch ${KubeApiError.describeTarget(ref)}: ${hostOf(res.url)} answered HTTP ${res.status} ` +
        `with something that is not the Secret written (${
          secret === undefined ? "it is not JSON" : why
        }), so what was stored cannot be checked`,
    );
  }
  const stored = toStored(secret as SecretJson, "");
  return {
    dockerConfig: stored.dockerConfig,
    annotations: stored.annotations,
    resourceVersion: stored.resourceVersion,
  };
}

/** Secret JSON as the API server sends it; only what toStored reads. */
interface SecretJson {
  metadata?: {
    namespace?: string;
    name?: string;
    uid?: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
  type?: string;
  data?: Record<string, string>;
}

function toStored(s: SecretJson, annotation: string): StoredSecret {
  const m = s.metadata ?? {};
  const raw = s.data?.[DOCKER_CONFIG_KEY];
  return {
    namespace: m.namespace ?? "",
    name: m.name ?? "",
    uid: m.uid ?? "",
    resourceVersion: m.resourceVersion ?? "",
    type: s.type ?? "",
    annotations: ownAnnotations(m.annotations ?? {}, annotation),
    dockerConfig: raw === undefined ? undefined : Uint8Array.fromBase64(raw),
  };
}

/**
 * Why a Secret as the server sent it cannot be used, or undefined when it
 * can: the API server only ever sends string names, string annotations and
 * base64 string data, but a proxy in between (or a server of another kind)
 * may not, and one such item must not end the run with a TypeError.
 * Describes shapes only, never a value.
 */
function unusable(s: unknown, annotation: string): string | undefined {
  if (typeof s !== "object" || s === null || Array.isArray(s)) return "it is not a JSON object";
  const { metadata: m, data } = s as SecretJson;
  if (typeof m !== "object" || m === null) return "it has no metadata";
  for (const field of ["namespace", "name", "uid", "resourceVersion"] as const) {
    if (typeof m[field] !== "string" || m[field] === "") {
      return `its metadata.${field} is not a string`;
    }
  }
  for (const [k, v] of Object.entries(m.annotations ?? {})) {
    if ((k === annotation || k.startsWith(STATUS_PREFIX)) && typeof v !== "string") {
      return `its annotation ${k} is not a string`;
    }
  }
  if (data === undefined || data === null) return undefined;
  if (typeof data !== "object" || Array.isArray(data)) return "its data is not an object";
  for (const [k, v] of Object.entries(data)) {
    if (typeof v !== "string") return `its data key ${JSON.stringify(k)} is not a string`;
  }
  const raw = data[DOCKER_CONFIG_KEY];
  if (raw !== undefined && !BASE64.test(raw)) {
    return `its data key ${DOCKER_CONFIG_KEY} is not base64`;
  }
  return undefined;
}

/** What Uint8Array.fromBase64 accepts without throwing (padding optional, no whitespace). */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** An item of a list of dockerconfigjson Secrets: usable, or rejected with the reason. */
function listedSecret(
  s: SecretJson,
  annotation: string,
): { secret: StoredSecret } | { rejected: RejectedItem } {
  const m = (typeof s === "object" && s !== null ? s.metadata : undefined) ?? {};
  const ref = {
    namespace: typeof m.namespace === "string" ? m.namespace : "",
    name: typeof m.name === "string" ? m.name : "",
    uid: typeof m.uid === "string" ? m.uid : "",
  };
  const why = unusable(s, annotation);
  if (why) {
    return {
      rejected: {
        ...ref,
        otherType: false,
        why: `the API server's answer for this Secret cannot be used: ${why}; it was left alone`,
      },
    };
  }
  if (s.type !== DOCKER_CONFIG_TYPE) {
    // A list asked for type=kubernetes.io/dockerconfigjson only: whatever
    // came back of another type lost that field selector on the way.
    return {
      rejected: {
        ...ref,
        otherType: true,
        why: `it is of type ${JSON.stringify(s.type ?? "")}, not ${DOCKER_CONFIG_TYPE}, ` +
          "although the list asked only for that type (a proxy may have dropped the " +
          "fieldSelector); nothing was written into it",
      },
    };
  }
  return { secret: toStored(s, annotation) };
}

/**
 * Only the marker and kubeecr's status annotations are kept: kubectl's
 * last-applied-configuration alone can be a whole copy of the Secret.
 */
function ownAnnotations(all: Record<string, string>, annotation: string) {
  const own: Record<string, string> = {};
  for (const [k, v] of Object.entries(all)) {
    if (k === annotation || k.startsWith(STATUS_PREFIX)) own[k] = v;
  }
  return own;
}

const annotatedWith = (annotation: string) => (metadata: unknown) => {
  const annotations = (metadata as SecretJson["metadata"])?.annotations;
  return typeof annotations === "object" && annotations !== null && annotation in annotations;
};

/** Bytes read from a list response at a time, into one reused buffer. */
const READ_BUFFER = 64 * 1024;

/**
 * Reads a list response with ListReader, keeping the items `keep` accepts.
 * One buffer is reused for every read (a BYOB reader): a page of large
 * Secrets would otherwise leave megabytes of chunks for the GC to find, and
 * the process's peak memory would follow the size of Secrets it skips.
 */
async function readList<T>(
  res: Response,
  keep: (metadata: unknown) => boolean,
  expected: ListKind,
  operation: string,
  target: { namespace?: string },
) {
  const type = res.headers.get("content-type") ?? "";
  const json = /^application\/json\b/i.test(type);
  const list = new ListReader<T>(keep);
  const items: T[] = [];
  // The first bytes, shown only when the body is not JSON (an HTML page).
  let head: Uint8Array = new Uint8Array(0);
  let size = 0;
  if (res.body) {
    const reader = res.body.getReader({ mode: "byob" });
    let buffer = new ArrayBuffer(READ_BUFFER);
    for (;;) {
      const { value, done } = await reader.read(new Uint8Array(buffer));
      if (done || !value) break;
      size += value.length;
      if (head.length < HEAD_BYTES) {
        head = concatBytes(head, value.subarray(0, HEAD_BYTES - head.length));
      }
      if (json) items.push(...list.push(value));
      if (!json || list.notAnObject) {
        // Not a list: nothing more is worth reading.
        await reader.cancel();
        break;
      }
      buffer = value.buffer as ArrayBuffer;
    }
  }
  const problem = size === 0
    ? "the body is empty"
    : !json
    ? "it is not JSON"
    : list.notAnObject && list.shape.first === "{"
    ? "more follows its JSON object"
    : notAList(list.shape, expected);
  if (problem) {
    // What came back, beside what is wrong with it (an empty body needs saying once).
    const what = size === 0
      ? ""
      : json
      ? `, ${describeShape(list.shape)}`
      : `, a body starting ${quoteHead(head)}`;
    throw new UnexpectedAnswerError(
      operation,
      res.status,
      target,
      `${operation} ${KubeApiError.describeTarget(target)}: ${
        hostOf(res.url)
      } answered HTTP ${res.status} with something that is not a ${expected.apiVersion} ` +
        `${expected.kind} (${problem}; content-type ${
          JSON.stringify(type || "none")
        }${what}): a proxy, a login page or a wrong server URL answered instead of the ` +
        "Kubernetes API server; check the kubeconfig's server (in a pod, " +
        "KUBERNETES_SERVICE_HOST) and any proxy in between",
    );
  }
  return { items, ...list.end() };
}

/** What a list answer must be. */
interface ListKind {
  kind: string;
  apiVersion: string;
  /** A metadata-only list sends "items": null when it has none. */
  nullItems?: boolean;
}

const SECRET_LIST: ListKind = { kind: "SecretList", apiVersion: "v1" };
const METADATA_LIST: ListKind = {
  kind: "PartialObjectMetadataList",
  apiVersion: "meta.k8s.io/v1",
  nullItems: true,
};

/** Bytes of a non-JSON body shown in the message: enough to recognise an HTML page. */
const HEAD_BYTES = 64;

function notAList(shape: ListShape, expected: ListKind): string | undefined {
  if (shape.first === undefined) return "the body is empty";
  if (shape.first !== "{") return "it is not a JSON object";
  if (shape.kind !== expected.kind) return `its kind is not ${expected.kind}`;
  if (shape.apiVersion !== expected.apiVersion) {
    return `its apiVersion is not ${expected.apiVersion}`;
  }
  if (shape.items !== "array" && !(expected.nullItems && shape.items === "null")) {
    return "its items is not an array";
  }
  if (!shape.metadata) return "it has no metadata";
  return undefined;
}

/** The top level of a JSON answer, in words: its type names, never an item's content. */
function describeShape(shape: ListShape): string {
  if (shape.first === undefined) return "an empty body";
  if (shape.first !== "{") {
    const what = { "[": "a JSON array", "n": "JSON null", '"': "a JSON string" }[shape.first] ??
      "a JSON scalar or something that is not JSON";
    return what;
  }
  const parts = [
    `kind ${shape.kind === undefined ? "missing" : JSON.stringify(shape.kind.slice(0, 60))}`,
    `apiVersion ${
      shape.apiVersion === undefined ? "missing" : JSON.stringify(shape.apiVersion.slice(0, 60))
    }`,
    `items ${shape.items ?? "missing"}`,
    `metadata ${shape.metadata ? "present" : "missing"}`,
  ];
  return `a JSON object with ${parts.join(", ")}`;
}

/** The first bytes of a body as JSON-escaped text (control characters visible). */
function quoteHead(head: Uint8Array): string {
  const text = new TextDecoder().decode(head);
  return `${JSON.stringify(text)}${head.length >= HEAD_BYTES ? "…" : ""}`;
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** "127.0.0.1:6443" of the URL that answered. */
function hostOf(url: string): string {
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
async function drain(res: Response): Promise<void> {
  await res.arrayBuffer();
}

/** First 16 hex digits of SHA-256: an event name stable across runs. */
async function shortHash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return new Uint8Array(digest).slice(0, 8).toHex();
}

function secretPath(ref: SecretRef): string {
  return `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets/${
    encodeURIComponent(ref.name)
  }`;
}

export class KubeSecretStore implements SecretStore {
  readonly #api: KubeApi;

  constructor(api: KubeApi) {
    this.#api = api;
  }

  async *listAnnotatedDockerConfigSecrets(scope: ListScope, annotation: string, from?: string) {
    const target = { namespace: scope.namespace };
    let cont = from;
    do {
      const page = await this.#list(
        scope,
        `type=${DOCKER_CONFIG_TYPE}`,
        cont,
        (res) => readList<SecretJson>(res, annotatedWith(annotation), SECRET_LIST, "list", target),
      );
      cont = page.continue;
      const secrets: StoredSecret[] = [];
      const rejected: RejectedItem[] = [];
      for (const item of page.items) {
        const listed = listedSecret(item, annotation);
        if ("secret" in listed) secrets.push(listed.secret);
        else rejected.push(listed.rejected);
      }
      yield { secrets, rejected, continue: cont };
    } while (cont);
  }

  async *listAnnotatedOtherSecrets(scope: ListScope, annotation: string) {
    const target = { namespace: scope.namespace };
    let cont: string | undefined;
    do {
      const page = await this.#list(
        scope,
        `type!=${DOCKER_CONFIG_TYPE}`,
        cont,
        (res) =>
          readList<SecretJson>(res, annotatedWith(annotation), METADATA_LIST, "list", target),
        METADATA_ONLY,
      );
      cont = page.continue;
      // Metadata only: an item whose names are not strings cannot be reported on.
      yield page.items.filter((s) => unusable({ ...s, data: undefined }, annotation) === undefined)
        .map((s) => {
          const { dockerConfig: _, ...meta } = toStored({ ...s, data: undefined }, annotation);
          return meta;
        });
    } while (cont);
  }

  async #list<T>(
    scope: ListScope,
    fieldSelector: string,
    cont: string | undefined,
    read: (res: Response) => Promise<T>,
    accept?: string,
  ): Promise<T> {
    const target = { namespace: scope.namespace };
    const answer = await this.#api.call("list", target, {
      method: "GET",
      path: scope.namespace
        ? `/api/v1/namespaces/${encodeURIComponent(scope.namespace)}/secrets`
        : "/api/v1/secrets",
      query: {
        fieldSelector,
        labelSelector: scope.labelSelector,
        limit: this.#api.pageSize,
        continue: cont,
      },
      accept,
    }, read);
    if (!answer.ok) throw refused("list", target, answer.status, answer.body);
    return answer.value;
  }

  async listNamespaces(labelSelector: string): Promise<Set<string>> {
    const names = new Set<string>();
    let cont: string | undefined;
    do {
      const answer = await this.#api.call("list namespaces", {}, {
        method: "GET",
        path: "/api/v1/namespaces",
        query: { labelSelector, limit: this.#api.pageSize, continue: cont },
        accept: METADATA_ONLY,
      }, (res) =>
        readList<{ metadata?: { name?: unknown } }>(
          res,
          () => true,
          METADATA_LIST,
          "list namespaces",
          {},
        ));
      if (!answer.ok) throw refused("list namespaces", {}, answer.status, answer.body);
      for (const item of answer.value.items) {
        if (typeof item?.metadata?.name === "string") names.add(item.metadata.name);
      }
      cont = answer.value.continue;
    } while (cont);
    return names;
  }

  async namespaceExists(name: string): Promise<boolean | undefined> {
    const answer = await this.#api.call("get namespace", { namespace: name }, {
      method: "GET",
      path: `/api/v1/namespaces/${encodeURIComponent(name)}`,
      accept: METADATA_ONLY.replace("List", ""),
    }, drain);
    if (answer.ok) return true;
    return answer.status === 404 ? false : undefined;
  }

  async get(ref: SecretRef): Promise<StoredSecret | undefined> {
    // Every annotation is kept (toStoredAll): get() is only used after a 409,
    // where the caller compares the marker it already knows.
    const answer = await this.#api.call("get", ref, { method: "GET", path: secretPath(ref) }, (
      res,
    ) => res.json() as Promise<SecretJson>);
    if (answer.ok) return toStoredAll(answer.value);
    if (answer.status === 404) return undefined;
    throw refused("get", ref, answer.status, answer.body);
  }

  async patch(ref: SecretRef, update: SecretUpdate, opts: { dryRun: boolean }) {
    // A JSON merge patch touches only the keys it names: the one data key and
    // kubeecr's own annotations. Carrying resourceVersion makes it conditional:
    // the server answers 409 if the Secret changed since it was read, which
    // also makes a retry after a lost answer safe.
    const answer = await this.#api.call("patch", ref, {
      method: "PATCH",
      path: secretPath(ref),
      query: { fieldManager: COMPONENT, dryRun: opts.dryRun ? "All" : undefined },
      contentType: "application/merge-patch+json",
      body: {
        metadata: { resourceVersion: update.resourceVersion, annotations: update.annotations },
        ...(update.dockerConfig
          ? { data: { [DOCKER_CONFIG_KEY]: update.dockerConfig.toBase64() } }
          : {}),
      },
      // The answer is the Secret as stored (with dryRun=All: as it would be):
      // the caller compares it with what was sent.
    }, (res) => storedOf(res, ref));
    if (answer.ok) return { kind: "patched", stored: answer.value } satisfies PatchResult;
    if (answer.status === 409) return { kind: "conflict" } satisfies PatchResult;
    if (answer.status === 404) return { kind: "gone" } satisfies PatchResult;
    if (answer.status === 403 && await this.#mayPatch(ref)) {
      // RBAC allows the write, so what refused it is admission: a policy or a webhook.
      throw admissionRefused(ref, answer.status, answer.body);
    }
    throw refused("patch", ref, answer.status, answer.body);
  }

  /**
   * Whether RBAC lets this identity patch the Secret (a SelfSubjectAccessReview,
   * which every authenticated identity may create); undefined when that
   * cannot be told. Asked only after a 403, to say which of the two refused.
   */
  async #mayPatch(ref: SecretRef): Promise<boolean | undefined> {
    try {
      const answer = await this.#api.call("review access to", ref, {
        method: "POST",
        path: "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SelfSubjectAccessReview",
          spec: {
            resourceAttributes: {
              namespace: ref.namespace,
              verb: "patch",
              resource: "secrets",
              name: ref.name,
            },
          },
        },
      }, (res) => res.json() as Promise<{ status?: { allowed?: unknown } }>);
      return answer.ok ? answer.value.status?.allowed === true : undefined;
    } catch {
      return undefined;
    }
  }

  async recordEvent(secret: SecretRef & { uid: string }, event: SecretEvent): Promise<void> {
    // The same Secret, reason and message always map to the same Event name,
    // so a Warning repeated every run is one object with a count (as
    // client-go's EventCorrelator does within a process), not one per run.
    const message = event.message.slice(0, 1024); // the API server's cap
    const name = `${secret.name.slice(0, 236)}.${await shortHash(
      [secret.uid, event.type, event.reason, message].join("\0"),
    )}`;
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    const ns = encodeURIComponent(secret.namespace);
    const created = await this.#api.call(EVENT_OPERATION, secret, {
      method: "POST",
      path: `/api/v1/namespaces/${ns}/events`,
      body: {
        metadata: { name, namespace: secret.namespace },
        involvedObject: {
          apiVersion: "v1",
          kind: "Secret",
          namespace: secret.namespace,
          name: secret.name,
          uid: secret.uid,
        },
        type: event.type,
        reason: event.reason,
        message,
        source: { component: COMPONENT },
        reportingComponent: COMPONENT,
        reportingInstance: COMPONENT,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    }, drain);
    if (created.ok) return;
    if (created.status !== 409) {
      throw refused(EVENT_OPERATION, secret, created.status, created.body);
    }
    // It exists: count this occurrence on it.
    const path = `/api/v1/namespaces/${ns}/events/${encodeURIComponent(name)}`;
    const current = await this.#api.call(
      EVENT_OPERATION,
      secret,
      { method: "GET", path },
      (res) => res.json() as Promise<{ count?: number; metadata?: { resourceVersion?: string } }>,
    );
    if (!current.ok) throw refused(EVENT_OPERATION, secret, current.status, current.body);
    const patched = await this.#api.call(EVENT_OPERATION, secret, {
      method: "PATCH",
      path,
      contentType: "application/merge-patch+json",
      body: {
        metadata: { resourceVersion: current.value.metadata?.resourceVersion },
        count: (current.value.count ?? 1) + 1,
        lastTimestamp: now,
      },
    }, drain);
    // 409: another run counted it meanwhile; one occurrence less is fine.
    if (!patched.ok && patched.status !== 409) {
      throw refused(EVENT_OPERATION, secret, patched.status, patched.body);
    }
  }
}

/** A Secret read by get(): every annotation kept (the caller knows the marker's key). */
function toStoredAll(s: SecretJson): StoredSecret {
  const stored = toStored(s, "");
  stored.annotations = s.metadata?.annotations ?? {};
  return stored;
}
