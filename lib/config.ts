// Flags + environment → one typed Config. Pure: argv and env are passed in;
// nothing here reads Deno.args or Deno.env. Every flag is declared once in
// FLAGS (name, env var, default, help, parser); parsing, --help and ENV_VARS
// are all generated from that table so the docs cannot drift from behaviour.

import { parseArgs } from "node:util";
import { ConfigError } from "./core/errors.ts";
import { STATUS_PREFIX } from "./core/status.ts";
import { DEFAULT_BACKOFF, RETRYABLE_STATUSES } from "./core/retry.ts";
import { TOKEN_LIFETIME, TOKEN_LIFETIME_MS } from "./core/tokens.ts";
import type { KubeAccess } from "./kube/kubeconfig.ts";
import { LOG_LEVELS } from "./log.ts";

export type ParsedArgs =
  | { kind: "run"; config: Config }
  | { kind: "help"; text: string }
  | { kind: "version"; text: string };

/** Secrets per list request unless --page-size says otherwise (kubectl's --chunk-size default). */
export const DEFAULT_PAGE_SIZE = 500;

export const IN_CLUSTER_HOST = "kubernetes.default.svc";
export const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

// ---------------------------------------------------------------------------
// The flag table

/** A value parser signals a bad value by throwing Invalid with the reason. */
class Invalid extends Error {}

interface FlagSpec<T> {
  name: string;
  /** The Config field the value goes to; none for --kubeconfig/--context (see resolveKube) and actions. */
  field?: string;
  short?: string;
  /** string: last one wins; list: repeatable and comma-separated; action: no env. */
  kind: "string" | "list" | "boolean" | "action";
  /** Placeholder in --help, e.g. "<duration>". */
  arg?: string;
  /** Raw default, parsed like any other value. */
  default?: string;
  /** What --help says when there is no raw default, e.g. "all namespaces". */
  defaultText?: string;
  help: string;
  /** The accepted form, quoted in --help and in every error about this flag. */
  accepts?: string;
  parse: (raw: string) => T;
  /** Never quote the value in an error: it may carry a credential (a proxy URL's user:password). */
  quiet?: boolean;
}

// Identity helper that keeps each entry's literal type (its field, kind,
// default and value type): Config is derived from them below.
const def = <const S extends FlagSpec<unknown>>(s: S): S => s;

const BOOL_FORM = "true, false, 1 or 0";

const FLAGS = {
  annotation: def({
    field: "annotation",
    name: "annotation",
    kind: "string",
    arg: "<key>",
    default: "deft.com/kubeecr",
    help: "Annotation that marks a Secret for refresh; its value lists <account>/<region> items.",
    accepts: "a qualified annotation key <dns-prefix>/<name>, e.g. deft.com/kubeecr",
    parse: parseAnnotationKey,
  }),
  namespace: def({
    field: "namespaces",
    name: "namespace",
    kind: "list",
    arg: "<ns>[,<ns>...]",
    defaultText: "all namespaces",
    help: "Only look in these namespaces. Repeatable and/or comma-separated.",
    accepts: "namespace names (DNS-1123 labels), comma-separated",
    parse: parseNamespace,
  }),
  excludeNamespace: def({
    field: "excludeNamespaces",
    name: "exclude-namespace",
    kind: "list",
    arg: "<ns>[,<ns>...]",
    defaultText: "none",
    help: "Look in all namespaces except these. Cannot be combined with --namespace.",
    accepts: "namespace names (DNS-1123 labels), comma-separated",
    parse: parseNamespace,
  }),
  selector: def({
    field: "selector",
    name: "selector",
    kind: "string",
    arg: "<selector>",
    defaultText: "none",
    help: "Only Secrets that also match this label selector (e.g. team=web,env!=dev).",
    accepts: "a non-empty Kubernetes label selector",
    parse: nonEmpty,
  }),
  namespaceSelector: def({
    field: "namespaceSelector",
    name: "namespace-selector",
    kind: "string",
    arg: "<selector>",
    defaultText: "none (every namespace in scope)",
    help: "Only serve namespaces whose labels match (e.g. kubeecr.deft.com/enabled=true); " +
      "annotated Secrets elsewhere are left alone and logged as skipped. Needs 'list' on " +
      "namespaces.",
    accepts: "a non-empty Kubernetes label selector",
    parse: nonEmpty,
  }),
  refreshWindow: def({
    field: "refreshWindowMs",
    name: "refresh-window",
    kind: "string",
    arg: "<duration>",
    default: "6h",
    help:
      `Refresh a Secret whose token expires within this window. ECR tokens live ${TOKEN_LIFETIME}.`,
    accepts: `a duration below ${TOKEN_LIFETIME} like 90m, 6h, 1h30m, 45s or 0s`,
    parse: parseRefreshWindow,
  }),
  force: def({
    field: "force",
    name: "force",
    kind: "boolean",
    default: "false",
    help: "Refresh every annotated Secret, even those still fresh.",
    accepts: BOOL_FORM,
    parse: parseBool,
  }),
  dryRun: def({
    field: "dryRun",
    name: "dry-run",
    kind: "boolean",
    default: "false",
    help: "Do everything but persist: patches are sent with dryRun=All, no events are written.",
    accepts: BOOL_FORM,
    parse: parseBool,
  }),
  concurrency: def({
    field: "concurrency",
    name: "concurrency",
    kind: "string",
    arg: "<n>",
    default: "4",
    help: "How many Secrets to patch in parallel.",
    accepts: "an integer from 1 to 32",
    parse: (raw) => parseInteger(raw, 1, 32),
  }),
  pageSize: def({
    field: "pageSize",
    name: "page-size",
    kind: "string",
    arg: "<n>",
    default: String(DEFAULT_PAGE_SIZE),
    help: "Secrets per list request, as kubectl's --chunk-size; memory holds one page's " +
      "annotated Secrets at most.",
    accepts: "an integer from 1 to 5000",
    parse: (raw) => parseInteger(raw, 1, 5000),
  }),
  requestTimeout: def({
    field: "requestTimeoutMs",
    name: "request-timeout",
    kind: "string",
    arg: "<duration>",
    default: "15s",
    help: "Deadline of each Kubernetes request and each ECR call, retries apart.",
    accepts: "a duration from 1s to 5m like 15s or 1m",
    parse: (raw) => parseBoundedDuration(raw, 1000, 300_000),
  }),
  timeout: def({
    field: "timeoutMs",
    name: "timeout",
    kind: "string",
    arg: "<duration>",
    default: "4m",
    help: "Budget of the whole run: when it is spent no new work starts, unfinished Secrets " +
      "are reported as failed and the run exits 1. Keep it below the CronJob's " +
      "activeDeadlineSeconds.",
    accepts: "a duration from 5s to 24h like 4m or 90s",
    parse: (raw) => parseBoundedDuration(raw, 5000, 24 * 3600_000),
  }),
  checkSecretTypes: def({
    field: "checkSecretTypes",
    name: "check-secret-types",
    kind: "boolean",
    default: "false",
    help: "Diagnostic: also list the metadata of every other Secret to warn about annotated " +
      "Secrets of the wrong type (the admission policy refuses those up front).",
    accepts: BOOL_FORM,
    parse: parseBool,
  }),
  logFormat: def({
    field: "logFormat",
    name: "log-format",
    kind: "string",
    arg: "<format>",
    default: "text",
    help: "Log line format.",
    accepts: "text or json",
    parse: (raw) => oneOf(raw, ["text", "json"] as const),
  }),
  logLevel: def({
    field: "logLevel",
    name: "log-level",
    kind: "string",
    arg: "<level>",
    default: "info",
    help: "Lowest level that is logged.",
    accepts: LOG_LEVELS.join(", "),
    parse: (raw) => oneOf(raw, LOG_LEVELS),
  }),
  proxy: def({
    field: "proxy",
    name: "proxy",
    kind: "string",
    arg: "<url>",
    defaultText: "none: in a pod HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY are ignored; " +
      "with a kubeconfig they and its proxy-url apply",
    help: "HTTP proxy for the Kubernetes API (CONNECT); wins over the kubeconfig's proxy-url. " +
      "The sandbox must allow its host:port as well (README, Proxies).",
    accepts: "an http:// or https:// URL with a host and port, like http://proxy.corp:3128",
    parse: parseProxyUrl,
    quiet: true,
  }),
  kubeconfig: def({
    name: "kubeconfig",
    kind: "string",
    arg: "<path>",
    defaultText: "$KUBECONFIG, else in-cluster, else $HOME/.kube/config",
    help: "Kubeconfig file to use.",
    accepts: "a file path",
    parse: nonEmpty,
  }),
  context: def({
    name: "context",
    kind: "string",
    arg: "<name>",
    defaultText: "the kubeconfig's current-context",
    help: "Kubeconfig context to use (not valid in-cluster).",
    accepts: "a context name from the kubeconfig",
    parse: nonEmpty,
  }),
  version: def({
    name: "version",
    kind: "action",
    help: "Print the version and exit.",
    parse: () => true,
  }),
  help: def({
    name: "help",
    short: "h",
    kind: "action",
    help: "Print this help and exit.",
    parse: () => true,
  }),
};

type AnyFlag = FlagSpec<unknown>;
const TABLE: AnyFlag[] = Object.values(FLAGS);

type Spec = (typeof FLAGS)[keyof typeof FLAGS];
/** The parsed value of one entry: a list flag gives an array of its items. */
type ValueOf<S> = S extends { kind: "list"; parse: (raw: string) => infer T } ? T[]
  : S extends { parse: (raw: string) => infer T } ? T
  : never;
/** An entry that always yields a value: it has a default, or is a list (empty when unset). */
type Always<S> = S extends { default: string } | { kind: "list" } ? true : false;
type Flatten<T> = { [K in keyof T]: T[K] };
/** One field per entry that names one: required when it always has a value, else optional. */
type FlagFields = Flatten<
  & {
    [
      S in Spec as S extends { field: infer F extends string } ? Always<S> extends true ? F : never
        : never
    ]: ValueOf<S>;
  }
  & {
    [
      S in Spec as S extends { field: infer F extends string } ? Always<S> extends true ? never : F
        : never
    ]?: ValueOf<S>;
  }
>;

/** What a run is told: the flag table's fields, and where the cluster is. */
export type Config = Flatten<FlagFields & { kube: KubeAccess }>;

/** KUBEECR_<FLAG_UPPER_SNAKE>; --help and --version have none. */
export function envName(spec: { name: string; kind: string }): string | undefined {
  return spec.kind === "action"
    ? undefined
    : `KUBEECR_${spec.name.toUpperCase().replaceAll("-", "_")}`;
}

/** Non-flag variables consulted to find the cluster. */
const KUBE_ENV = ["KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "HOME"];

/** Every environment variable parseConfig reads (for the Deno permission set). */
export const ENV_VARS: string[] = [
  ...TABLE.map(envName).filter((e): e is string => e !== undefined),
  ...KUBE_ENV,
];

/** Flag names and env vars, for tests that check --help covers the table. */
export const FLAG_NAMES: { flag: string; env?: string }[] = TABLE.map((f) => ({
  flag: `--${f.name}`,
  env: envName(f),
}));

// ---------------------------------------------------------------------------
// Parsing

type Env = Record<string, string | undefined>;

export function parseConfig(args: string[], env: Env, version: string): ParsedArgs {
  const seen = scanArgs(args);
  if (seen.has("help")) return { kind: "help", text: helpText() };
  if (seen.has("version")) return { kind: "version", text: `kubeecr ${version}` };

  const r = new Resolver(seen, env);
  const fields: Record<string, unknown> = {};
  for (const spec of TABLE) {
    if (spec.field === undefined) continue;
    const value = spec.kind === "list" ? r.list(spec) : r.one(spec);
    // Omitted rather than `undefined`, so configs compare and print cleanly.
    if (value !== undefined) fields[spec.field] = value;
  }
  const flags = fields as FlagFields;
  // Rules across flags, after each value is known to be valid on its own.
  if (flags.namespaces.length > 0 && flags.excludeNamespaces.length > 0) {
    throw new ConfigError(
      "--exclude-namespace",
      `${r.where(FLAGS.excludeNamespace)} and ${r.where(FLAGS.namespace)} cannot be combined; ` +
        "use --namespace to list the namespaces to include, or --exclude-namespace to list " +
        "the ones to skip",
    );
  }
  return {
    kind: "run",
    config: { ...flags, kube: resolveKube(r.one(FLAGS.kubeconfig), r.one(FLAGS.context), r, env) },
  };
}

/** One occurrence of a flag on the command line; value undefined = bare flag. */
type Occurrence = { value: string | undefined };

/**
 * Tokenises argv with node:util parseArgs in non-strict mode and applies our
 * own strictness, so each error names the flag and its accepted form instead
 * of Node's generic wording.
 */
function scanArgs(args: string[]): Map<string, Occurrence[]> {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const f of TABLE) {
    const type = f.kind === "boolean" || f.kind === "action" ? "boolean" : "string";
    // parseArgs rejects `short: undefined`, so only set it when there is one.
    options[f.name] = f.short ? { type, short: f.short } : { type };
  }
  const { tokens } = parseArgs({
    args,
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const byName = new Map(TABLE.map((f) => [f.name, f]));
  const seen = new Map<string, Occurrence[]>();
  for (const t of tokens) {
    if (t.kind === "option-terminator") continue;
    if (t.kind === "positional") {
      throw new ConfigError(
        t.value,
        `unexpected argument ${JSON.stringify(t.value)}: kubeecr takes only flags; see --help`,
      );
    }
    const spec = byName.get(t.name);
    if (!spec) {
      throw new ConfigError(t.rawName, `unknown flag ${t.rawName}; see --help for the flags`);
    }
    const flag = `--${spec.name}`;
    const form = spec.accepts ? `; expected ${spec.accepts}` : "";
    if (spec.kind === "action" && t.value !== undefined) {
      throw new ConfigError(flag, `${flag} takes no value`);
    }
    if (spec.kind === "string" || spec.kind === "list") {
      // parseArgs (non-strict) takes the next argument as the value even when
      // it is another flag: `--namespace --force` would set namespace "--force".
      if (t.value === undefined || (!t.inlineValue && t.value.startsWith("-"))) {
        throw new ConfigError(flag, `${flag} needs a value${form}`);
      }
    }
    seen.set(spec.name, [...(seen.get(spec.name) ?? []), { value: t.value }]);
  }
  return seen;
}

/** Applies flag > env > default to one table entry, with sourced errors. */
class Resolver {
  constructor(readonly seen: Map<string, Occurrence[]>, readonly env: Env) {}

  /** "--flag" or "KUBEECR_FLAG (sets --flag)": where the value in effect came from. */
  where(spec: AnyFlag, raw?: string): string {
    const e = envName(spec);
    const value = raw === undefined || spec.quiet ? "" : `=${JSON.stringify(raw)}`;
    if (this.seen.has(spec.name) || !e || !this.envValue(e)) return `--${spec.name}${value}`;
    return `${e}${value} (sets --${spec.name})`;
  }

  /** Empty variables count as unset, as a manifest often carries `value: ""`. */
  envValue(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v === "" ? undefined : v;
  }

  one<T>(spec: FlagSpec<T>): T | undefined {
    const occ = this.seen.get(spec.name);
    let raw: string | undefined;
    if (occ) {
      // A bare boolean flag means true; --force=false lets argv override env.
      // For strings the last occurrence wins, as with most CLIs.
      raw = occ[occ.length - 1].value ?? "true";
    } else {
      raw = this.envValue(envName(spec)!) ?? spec.default;
    }
    return raw === undefined ? undefined : this.parse(spec, raw);
  }

  list<T>(spec: FlagSpec<T>): T[] {
    const occ = this.seen.get(spec.name);
    const raws = occ
      ? occ.flatMap((o) => o.value!.split(","))
      : this.envValue(envName(spec)!)?.split(",") ?? [];
    // Trim around items like the annotation does; duplicates are harmless.
    return [...new Set(raws.map((v) => this.parse(spec, v.trim())))];
  }

  parse<T>(spec: FlagSpec<T>, raw: string): T {
    try {
      return spec.parse(raw);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      throw new ConfigError(
        `--${spec.name}`,
        `${this.where(spec, raw)}: ${err.message}; expected ${spec.accepts}`,
      );
    }
  }
}

/**
 * Where the Kubernetes API is, in the order client-go uses: an explicit
 * kubeconfig, then $KUBECONFIG, then the pod's service account, then
 * ~/.kube/config.
 */
function resolveKube(
  kubeconfig: string | undefined,
  context: string | undefined,
  r: Resolver,
  env: Env,
): KubeAccess {
  const withContext = (paths: string[]): KubeAccess =>
    context === undefined ? { mode: "kubeconfig", paths } : { mode: "kubeconfig", paths, context };
  if (kubeconfig !== undefined) return withContext([kubeconfig]);
  // kubectl semantics: a colon-separated list, merged; empty entries ignored.
  const list = r.envValue("KUBECONFIG")?.split(":").filter((p) => p !== "") ?? [];
  if (list.length > 0) return withContext(list);
  if (r.envValue("KUBERNETES_SERVICE_HOST") !== undefined) {
    if (context !== undefined) {
      throw new ConfigError(
        "--context",
        `${r.where(FLAGS.context)} cannot be used in-cluster (KUBERNETES_SERVICE_HOST is set ` +
          "and no kubeconfig was given); pass --kubeconfig as well, or drop --context",
      );
    }
    const port = r.envValue("KUBERNETES_SERVICE_PORT") ?? "443";
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      throw new ConfigError(
        "KUBERNETES_SERVICE_PORT",
        `KUBERNETES_SERVICE_PORT=${JSON.stringify(port)}: expected a TCP port from 1 to 65535`,
      );
    }
    // The service name, not KUBERNETES_SERVICE_HOST's IP: the Deno net
    // allow-list names it and the API server's serving certificate carries it.
    return {
      mode: "in-cluster",
      server: `https://${IN_CLUSTER_HOST}:${port}`,
      tokenPath: `${SA_DIR}/token`,
      caPath: `${SA_DIR}/ca.crt`,
    };
  }
  const home = env.HOME;
  if (home === undefined || home === "") {
    throw new ConfigError(
      "--kubeconfig",
      "no kubeconfig found: --kubeconfig, KUBEECR_KUBECONFIG and KUBECONFIG are unset, " +
        "KUBERNETES_SERVICE_HOST is unset (not in a pod) and HOME is unset; " +
        "pass --kubeconfig <path>",
    );
  }
  return withContext([`${home.replace(/\/+$/, "")}/.kube/config`]);
}

// ---------------------------------------------------------------------------
// Value parsers (throw Invalid with the reason; the Resolver adds the rest)

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function nonEmpty(raw: string): string {
  if (raw.trim() === "") throw new Invalid("must not be empty");
  return raw;
}

function parseNamespace(raw: string): string {
  if (raw === "") throw new Invalid("contains an empty namespace name (stray comma?)");
  if (raw.length > 63 || !DNS_LABEL.test(raw)) {
    throw new Invalid(`${JSON.stringify(raw)} is not a valid namespace name`);
  }
  return raw;
}

// Kubernetes rules for annotation keys (apimachinery IsQualifiedName), with
// the prefix made mandatory: an unprefixed key is easy to collide with.
function parseAnnotationKey(raw: string): string {
  const slash = raw.indexOf("/");
  if (slash < 0) throw new Invalid("has no <prefix>/ part");
  const prefix = raw.slice(0, slash);
  const name = raw.slice(slash + 1);
  if (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) {
    throw new Invalid(`prefix ${JSON.stringify(prefix)} is not a lowercase DNS subdomain`);
  }
  if (name.length > 63 || !QUALIFIED_NAME.test(name)) {
    throw new Invalid(
      `name ${JSON.stringify(name)} must be 1-63 characters of [A-Za-z0-9-_.], ` +
        "starting and ending alphanumeric",
    );
  }
  // kubeecr writes its status annotations there; reading one of them as the
  // marker would make every run rewrite it.
  if (raw.startsWith(STATUS_PREFIX)) {
    throw new Invalid(`${STATUS_PREFIX} is reserved for kubeecr's status annotations`);
  }
  return raw;
}

const UNIT_MS: Record<string, number> = { h: 3600_000, m: 60_000, s: 1000, ms: 1 };

/** Go time.ParseDuration subset: h, m, s, ms; decimals allowed; "0" alone. */
export function parseDuration(raw: string): number | undefined {
  if (raw === "0") return 0;
  if (!/^(\d+(\.\d+)?(ms|h|m|s))+$/.test(raw)) return undefined;
  let total = 0;
  for (const m of raw.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    total += Number(m[1]) * UNIT_MS[m[2]];
  }
  return Math.round(total);
}

function parseRefreshWindow(raw: string): number {
  const ms = parseDuration(raw);
  if (ms === undefined) throw new Invalid("is not a duration");
  if (ms >= TOKEN_LIFETIME_MS) {
    throw new Invalid(
      `must be less than ${TOKEN_LIFETIME}: ECR tokens are valid for ${TOKEN_LIFETIME}, so a ` +
        `window of ${TOKEN_LIFETIME} or more would refresh every Secret on every run`,
    );
  }
  return ms;
}

function parseBoundedDuration(raw: string, minMs: number, maxMs: number): number {
  const ms = parseDuration(raw);
  if (ms === undefined) throw new Invalid("is not a duration");
  if (ms < minMs || ms > maxMs) throw new Invalid("is out of range");
  return ms;
}

/** A proxy URL with an explicit port: the sandbox allows host:port, never a guessed default. */
function parseProxyUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Invalid("is not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Invalid(`has the scheme ${url.protocol.slice(0, -1)}`);
  }
  if (url.port === "") throw new Invalid("names no port");
  if (url.username || url.password) throw new Invalid("carries credentials");
  return `${url.protocol}//${url.host}`;
}

/** "proxy.corp:3128": what the sandbox's net list must name for `proxy`. */
export function proxyHost(proxy: string): string {
  return new URL(proxy).host;
}

function parseBool(raw: string): boolean {
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw new Invalid("is not a boolean");
}

function parseInteger(raw: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(raw)) throw new Invalid("is not an integer");
  const n = Number(raw);
  if (n < min || n > max) throw new Invalid("is out of range");
  return n;
}

function oneOf<const T extends string>(raw: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(raw)) throw new Invalid("is not recognised");
  return raw as T;
}

// ---------------------------------------------------------------------------
// Help

export function helpText(): string {
  const rows = TABLE.map((f) => {
    const e = envName(f);
    const dflt = f.default ?? f.defaultText;
    const lines = [
      `  --${f.name}${f.arg ? ` ${f.arg}` : ""}${f.short ? `, -${f.short}` : ""}`,
      `      ${f.help}`,
    ];
    if (f.accepts) lines.push(`      Accepts ${f.accepts}.`);
    if (e) lines.push(`      Env ${e}${dflt === undefined ? "" : `, default ${dflt}`}.`);
    return lines.join("\n");
  });
  return `kubeecr: refresh Amazon ECR pull credentials in annotated Kubernetes Secrets, in place.

Usage: kubeecr [flags]

Each run finds Secrets of type kubernetes.io/dockerconfigjson carrying the annotation
(key set by --annotation, default deft.com/kubeecr)

  deft.com/kubeecr: <account>/<region>[,<account>/<region>...]
  e.g.  deft.com/kubeecr: 123456789012/us-west-2, 210987654321/eu-central-1

(<account>: exactly 12 digits; <region>: an AWS region name), fetches one ECR token
per region and writes it into each Secret's .dockerconfigjson, keeping every other
registry in it. Secrets whose token is not about to expire are skipped.

Flags (every flag except --help and --version can also be set by its environment
variable; a flag given on the command line wins over the variable):

${rows.join("\n")}

Kubernetes access: --kubeconfig, else $KUBECONFIG (a colon-separated list), else the
pod's service account when KUBERNETES_SERVICE_HOST is set (https://${IN_CLUSTER_HOST}),
else $HOME/.kube/config.

AWS credentials: the AWS SDK default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
web identity / IRSA, EKS Pod Identity, instance profile, shared config and profiles).

Deadlines and retries: each Kubernetes request and ECR call has --request-timeout;
connection failures, timeouts, HTTP 429 (Retry-After honoured) and ${
    RETRYABLE_STATUSES.filter((s) => s !== 429).join("/")
  }
are retried up to ${DEFAULT_BACKOFF.attempts} attempts in all, with capped backoff; a certificate problem (unknown CA,
not valid yet, expired, wrong name) is reported at once, as retrying cannot change it. When --timeout is spent,
unfinished Secrets are reported as failed and the run exits 1.

Exit codes:
  0  every Secret that was due was refreshed, or none was due
  1  at least one Secret, region or namespace failed, or --timeout ran out
     (everything else was still processed and reported), or SIGTERM/SIGINT
     stopped the run: no new work started, writes in flight got 5s to finish,
     each was reported, and the summary says interrupted=true
  2  the run could not start: bad flags or environment, no cluster access
     (first contact failed, --selector rejected), no AWS credentials at all,
     an unreadable AWS_CA_BUNDLE, a --proxy the sandbox does not allow
  130/143  a second SIGINT/SIGTERM: exited at once, without a summary

Proxies: in a pod (in-cluster) HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY are
ignored; only --proxy names one, and the sandbox must allow its host:port. With a
kubeconfig, its proxy-url and the variables apply; --proxy wins over both.
`;
}
