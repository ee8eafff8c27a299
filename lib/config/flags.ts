// The flag table: every flag once (name, Config field, env var, default,
// help, parser), the Config type derived from it, and the value parsers.
// Pure. Parsing (args.ts, ../config.ts), --help (help.ts) and ENV_VARS are
// generated from it, so the docs cannot drift from behaviour.

import { STATUS_PREFIX } from "../core/status.ts";
import { TOKEN_LIFETIME, TOKEN_LIFETIME_MS } from "../core/tokens.ts";
import type { KubeAccess } from "../kube/kubeconfig.ts";
import { LOG_LEVELS } from "../log.ts";

/** Secrets per list request unless --page-size says otherwise (kubectl's --chunk-size default). */
export const DEFAULT_PAGE_SIZE = 500;

/** A value parser signals a bad value by throwing Invalid with the reason. */
export class Invalid extends Error {}

export interface FlagSpec<T> {
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
export const def = <const S extends FlagSpec<unknown>>(s: S): S => s;

const BOOL_FORM = "true, false, 1 or 0";

export const FLAGS = {
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
    short: "n",
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
    short: "l",
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
  provision: def({
    field: "provision",
    name: "provision",
    kind: "string",
    arg: "<secret-name>=<annotation value>",
    defaultText: "none",
    help: "In every namespace --namespace-selector serves that has no Secret of this name, " +
      "create it (type kubernetes.io/dockerconfigjson, empty, annotated with the value) and " +
      "fill it in the same run; a Secret that exists is never touched. Needs " +
      "--namespace-selector and 'create' on secrets.",
    accepts: "<secret-name>=<account>/<region>[,<account>/<region>...], " +
      "e.g. ecr-pull=123456789012/us-west-2",
    parse: parseProvision,
  }),
  roles: def({
    field: "roles",
    name: "roles",
    kind: "string",
    arg: "<path>",
    defaultText: "none: every registry gets the base AWS principal's token",
    help: "The cluster admin's role map (YAML): which IAM role serves which accounts in which " +
      "namespaces; an account it names is served only there (README, Role map). In the " +
      "CronJob it is mounted under /etc/kubeecr/.",
    accepts: "a file path",
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
  events: def({
    field: "events",
    name: "events",
    kind: "string",
    arg: "<which>",
    default: "all",
    help: "Which Events to record: all, or warnings (no Normal Refreshed Event; the log line " +
      "and the status annotations still say it). warnings halves the writes of a large cluster.",
    accepts: "all or warnings",
    parse: (raw) => oneOf(raw, ["all", "warnings"] as const),
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

export type AnyFlag = FlagSpec<unknown>;
export const TABLE: AnyFlag[] = Object.values(FLAGS);

/** The parsed value of one entry: a list flag gives an array of its items. */
type ValueOf<S> = S extends { kind: "list"; parse: (raw: string) => infer T } ? T[]
  : S extends { parse: (raw: string) => infer T } ? T
  : never;
/** An entry that always yields a value: it has a default, or is a list (empty when unset). */
type Always<S> = S extends { default: string } | { kind: "list" } ? true : false;
type Flatten<T> = { [K in keyof T]: T[K] };
/**
 * One field per entry of a flag table that names one: required when it
 * always has a value, else optional (the subcommands' tables use it too).
 */
export type FieldsOf<Table> = Flatten<
  & {
    [
      S in Table[keyof Table] as S extends { field: infer F extends string }
        ? Always<S> extends true ? F : never
        : never
    ]: ValueOf<S>;
  }
  & {
    [
      S in Table[keyof Table] as S extends { field: infer F extends string }
        ? Always<S> extends true ? never : F
        : never
    ]?: ValueOf<S>;
  }
>;
export type FlagFields = FieldsOf<typeof FLAGS>;

/** What a run is told: the flag table's fields, and where the cluster is. */
export type Config = Flatten<FlagFields & { kube: KubeAccess }>;

/** KUBEECR_<FLAG_UPPER_SNAKE>; --help and --version have none. */
export function envName(spec: { name: string; kind: string }): string | undefined {
  return spec.kind === "action"
    ? undefined
    : `KUBEECR_${spec.name.toUpperCase().replaceAll("-", "_")}`;
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

/** "<namespace>/<name>" of an object, checked as the API server would. */
export function parseObjectRef(raw: string): { namespace: string; name: string } {
  const [namespace, name, ...rest] = raw.split("/");
  if (name === undefined || rest.length > 0) throw new Invalid("is not <namespace>/<name>");
  parseNamespace(namespace);
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    throw new Invalid(`${JSON.stringify(name)} is not a valid object name`);
  }
  return { namespace, name };
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

/** What --provision asks for: the Secret's name and its annotation value (checked in ../config.ts). */
export interface Provision {
  secretName: string;
  value: string;
}

/**
 * "ecr-pull=123456789012/us-west-2": split at the first "=" (a value has none).
 * The value's grammar is checked in ../config.ts, where --annotation is known
 * and the message can name the annotation the Secret would carry.
 */
function parseProvision(raw: string): Provision {
  const eq = raw.indexOf("=");
  if (eq < 0) throw new Invalid('has no "=" between the Secret\'s name and the annotation value');
  const secretName = raw.slice(0, eq);
  const value = raw.slice(eq + 1);
  if (secretName === "") throw new Invalid('names no Secret before the "="');
  if (secretName.length > 253 || !DNS_SUBDOMAIN.test(secretName)) {
    throw new Invalid(
      `Secret name ${JSON.stringify(secretName)} is not a lowercase DNS subdomain ` +
        "(a-z, 0-9, '-' and '.', at most 253 characters, starting and ending alphanumeric)",
    );
  }
  if (value.trim() === "") throw new Invalid('has no annotation value after the "="');
  return { secretName, value };
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
