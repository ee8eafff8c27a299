// TokenSource on AWS ECR. One GetAuthorizationToken per region: the token
// serves every account the principal may pull from in that region. ECR
// Public's GetAuthorizationToken (us-east-1 only) is the same call on another
// client, answering one authorizationData instead of a list: the source
// "ecr-public" of a TokenKey.

import { type RegistryToken, TokenError, type TokenKey, type TokenSource } from "../core/tokens.ts";
import { messageOf } from "../core/errors.ts";
import { DEFAULT_BACKOFF } from "../core/retry.ts";
import type { AssumedRoles } from "./sts.ts";

/** Splits a decoded "AWS:<password>" token; exported for its unit test. */
export function passwordOf(authorizationToken: string): string | undefined {
  let decoded: string;
  try {
    const bytes = Uint8Array.fromBase64(authorizationToken);
    decoded = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  return colon > 0 && decoded.length > colon + 1 ? decoded.slice(colon + 1) : undefined;
}

/** What the credential chain was given, for a message that says what is missing. */
export interface CredentialHints {
  /** AWS_PROFILE, if set. */
  profile?: string;
  /** Whether AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are set (never their values). */
  accessKeyId: boolean;
  secretAccessKey: boolean;
  /** AWS_CONTAINER_CREDENTIALS_FULL_URI / _RELATIVE_URI, and whether the sandbox may reach it. */
  container?: { variable: string; url: string; host: string; allowed: boolean };
}

/** Where the SDK sends AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS's agent). */
const ECS_CREDENTIALS_ENDPOINT = "http://169.254.170.2";

/**
 * The hints from an environment lookup (main.ts passes one that respects the
 * sandbox) and the sandbox's answer for a host:port.
 */
export function credentialHints(
  get: (name: string) => string | undefined,
  netAllowed: (host: string) => boolean = () => true,
): CredentialHints {
  const set = (name: string) => (get(name) ?? "") !== "";
  const profile = get("AWS_PROFILE");
  return {
    ...(profile ? { profile } : {}),
    accessKeyId: set("AWS_ACCESS_KEY_ID"),
    secretAccessKey: set("AWS_SECRET_ACCESS_KEY"),
    ...containerHint(get, netAllowed),
  };
}

function containerHint(
  get: (name: string) => string | undefined,
  netAllowed: (host: string) => boolean,
): Pick<CredentialHints, "container"> {
  const full = get("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  const relative = get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  // The SDK prefers RELATIVE_URI when both are set.
  const [variable, url] = relative
    ? ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", `${ECS_CREDENTIALS_ENDPOINT}${relative}`]
    : full
    ? ["AWS_CONTAINER_CREDENTIALS_FULL_URI", full]
    : [undefined, undefined];
  if (!variable || !url) return {};
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { container: { variable, url: "(not a URL)", host: "", allowed: false } };
  }
  const port = parsed.port || (parsed.protocol === "https:" ? "443" : "80");
  const host = `${parsed.hostname}:${port}`;
  return {
    container: { variable, url: parsed.origin + parsed.pathname, host, allowed: netAllowed(host) },
  };
}

/** What a failure message may use to say what to do. */
export interface EcrHints {
  /** Read from the environment by main.ts (lib/ reads no environment). */
  credentials?: CredentialHints;
  /** The sandbox's net allow-list (deno.json permissions.cronjob.net), for the refusal message. */
  allowedHosts?: string[];
}

/**
 * A CA bundle the operator named (AWS_CA_BUNDLE), already read by main.ts.
 * As with the AWS CLI, it replaces the default roots for AWS calls: a
 * TLS-inspecting proxy re-signs every AWS host with its own CA.
 */
export interface CaBundle {
  /** Where it was read from, for messages. */
  path: string;
  pem: string;
}

export interface EcrOptions extends EcrHints {
  /** Trusted for ECR and STS instead of the default roots (AWS_CA_BUNDLE). */
  caBundle?: CaBundle;
  /** Deadline of one GetAuthorizationToken call, the SDK's own retries included. */
  requestTimeoutMs: number;
  /** Aborts when the run's budget is spent. */
  budget: AbortSignal;
  /** The role map's roles, for keys that name one (--roles). */
  roles?: AssumedRoles;
}

export class EcrTokenSource implements TokenSource {
  readonly #opts: EcrOptions;

  constructor(opts: EcrOptions) {
    this.#opts = opts;
  }

  async fetch({ source, region, role }: TokenKey): Promise<RegistryToken> {
    const api = source === "ecr-public" ? "ECR Public" : "ECR";
    // The SDK's default chain supplies credentials (env keys, web identity,
    // pod identity, instance profile, profiles) and honours
    // AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL_ECR_PUBLIC / AWS_ENDPOINT_URL.
    // The SDK for JavaScript does not read AWS_CA_BUNDLE itself; its
    // credential chain's STS client inherits this handler (parentClientConfig).
    const requestHandler = this.#opts.caBundle
      ? { httpsAgent: new (await import("node:https")).Agent({ ca: this.#opts.caBundle.pem }) }
      : undefined;
    // The SDK retries ECR's throttling and 5xx itself; as many attempts as a
    // Kubernetes request gets, which is what --help promises for both.
    // A key with a role: that role's session (assumed once per run, shared by its regions).
    if (role && !this.#opts.roles) throw new Error(`no role map to assume ${role} with`);
    const credentials = role ? await this.#opts.roles!.credentials(role, region) : undefined;
    const { client, command } = await tokenClient(source, {
      region,
      maxAttempts: DEFAULT_BACKOFF.attempts,
      requestHandler,
      ...(credentials ? { credentials } : {}),
    });
    // ECR's Date header: expiresAt is on ECR's clock (see lib/core/clock.ts).
    let date: string | undefined;
    client.middlewareStack.add((next) => async (args) => {
      const result = await next(args);
      const headers = (result.response as { headers?: Record<string, string> })?.headers;
      date = headers?.date;
      return result;
    }, { step: "deserialize", name: "kubeecrResponseDate" });
    const deadline = AbortSignal.timeout(this.#opts.requestTimeoutMs);
    const abortSignal = AbortSignal.any([this.#opts.budget, deadline]);
    try {
      const out = await client.send(command, { abortSignal });
      // ECR answers a list (one element), ECR Public one object.
      const data = Array.isArray(out.authorizationData)
        ? out.authorizationData[0]
        : out.authorizationData;
      const password = data?.authorizationToken ? passwordOf(data.authorizationToken) : undefined;
      if (!password || !data?.expiresAt) {
        throw new TokenError(
          region,
          "MalformedResponse",
          false,
          `${api} in ${region} answered without a usable token`,
        );
      }
      const answeredAt = date === undefined ? undefined : new Date(date);
      return {
        password,
        expiresAt: data.expiresAt,
        ...(answeredAt && !Number.isNaN(answeredAt.getTime()) ? { answeredAt } : {}),
      };
    } catch (err) {
      if (err instanceof TokenError) throw err;
      if (abortSignal.aborted) {
        const why = this.#opts.budget.aborted
          ? "the run's --timeout ran out"
          : `no answer within --request-timeout ${this.#opts.requestTimeoutMs / 1000}s`;
        throw new TokenError(
          region,
          "Timeout",
          false,
          `${api} GetAuthorizationToken in ${region}: ${why}`,
        );
      }
      const failure = tokenError(region, err, this.#opts, api);
      // With a role, say whose call it was: the role's permissions are the ones to check.
      throw role
        ? new TokenError(
          region,
          failure.code,
          failure.noCredentials,
          `${failure.message} (as role ${role})`,
          { cause: err },
        )
        : failure;
    } finally {
      client.destroy();
    }
  }
}

interface AuthorizationData {
  authorizationToken?: string;
  expiresAt?: Date;
}

/** What fetch needs of either client (ECRClient, ECRPUBLICClient: the same smithy client). */
interface TokenClient {
  send(
    command: unknown,
    options: { abortSignal: AbortSignal },
  ): Promise<{ authorizationData?: AuthorizationData | AuthorizationData[] }>;
  middlewareStack: import("@aws-sdk/client-ecr").ECRClient["middlewareStack"];
  destroy(): void;
}

/**
 * The client and command of a source, loaded on first use: most runs (every
 * 10 minutes) find every Secret fresh and never need the SDK (deno task
 * bench: such a run peaked at 152 MiB, 156-158 MiB before this import was
 * deferred), and ECR Public's client is loaded only by a run that needs it.
 */
async function tokenClient(
  source: TokenKey["source"],
  config: { region: string; maxAttempts: number; requestHandler?: unknown; credentials?: unknown },
): Promise<{ client: TokenClient; command: unknown }> {
  if (source === "ecr-public") {
    const { ECRPUBLICClient, GetAuthorizationTokenCommand } = await import(
      "@aws-sdk/client-ecr-public"
    );
    return {
      client: new ECRPUBLICClient(config as never) as unknown as TokenClient,
      command: new GetAuthorizationTokenCommand({}),
    };
  }
  const { ECRClient, GetAuthorizationTokenCommand } = await import("@aws-sdk/client-ecr");
  return {
    client: new ECRClient(config as never) as unknown as TokenClient,
    command: new GetAuthorizationTokenCommand({}),
  };
}

/**
 * One message per kind of failure, written for the operator: what happened,
 * then what to do. SDK internals ("Deserialization error", "$response") and
 * Deno's own hints ("--allow-net", which users of the compiled binary cannot
 * pass) never reach the log.
 */
export function tokenError(
  region: string,
  err: unknown,
  options: EcrHints = {},
  api: "ECR" | "ECR Public" = "ECR",
): TokenError {
  const prefix = `${api} GetAuthorizationToken in ${region} failed`;
  const code = errorCode(err);
  const make = (message: string, noCredentials = false) =>
    new TokenError(region, code, noCredentials, message, { cause: err });

  const status = httpStatusOf(err);
  if (err instanceof SyntaxError && status !== undefined) {
    // The body was not JSON: an HTML 502 from a proxy, a text 503 from a load balancer.
    return make(
      `ECR answered HTTP ${status} with a non-JSON body (in ${region}): something between ` +
        "KubeECR and ECR (a proxy, a load balancer, a wrong AWS_ENDPOINT_URL_ECR) answered " +
        "instead of ECR; the next run will try again",
    );
  }
  if (status !== undefined && (isUnparsedAnswer(err) || code === "Unknown")) {
    // The SDK could not read the answer ("Deserialization error … $response",
    // or an error body it names "Unknown"): ECR's or STS's (the credential
    // exchange runs inside this call), but not in AWS's format.
    return make(
      `AWS answered HTTP ${status} with a body that is not an AWS answer (in ${region}, ECR or ` +
        "the STS credential exchange): something between KubeECR and AWS (a proxy, a load " +
        "balancer, a wrong AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL_STS) answered instead, or " +
        "cut the answer short; the next run will try again",
    );
  }
  if (code === "CredentialsProviderError") {
    return make(
      `${prefix}: no AWS credentials found; ${credentialsAdvice(options.credentials)}`,
      true,
    );
  }
  const tls = TLS_FAILURES[code];
  if (tls) return make(`${prefix}: ${tls} (${code})`);
  const refusal = sandboxRefusal(err);
  const host = refusedHost(err) ?? (refusal?.kind === "net" ? refusal.what : undefined);
  if (refusal && refusal.kind !== "net") {
    // Not a network host: a runtime layer asked for something the permission
    // set does not grant (Node's TLS layer asks for sys "ca" when it loads the
    // default roots). Say what was refused; blaming the endpoint would send
    // the operator after the wrong fix.
    return make(
      `${prefix}: the sandbox refused ${refusal.kind} access to "${refusal.what}", which the ` +
        "ECR call needed: this build's permission set does not grant it; this is a defect " +
        "of the build, report it (the permission sets are in deno.json)",
    );
  }
  if (err instanceof Deno.errors.NotCapable || code === "EPERM") {
    // Deno refuses an address outside the allow-list with NotCapable; a host
    // name is refused at lookup, which its node layer reports as EPERM.
    const variable = api === "ECR Public" ? "AWS_ENDPOINT_URL_ECR_PUBLIC" : "AWS_ENDPOINT_URL_ECR";
    return make(`${prefix}: ${sandboxAdvice(host, region, options.allowedHosts, variable)}`);
  }
  if (api === "ECR Public" && code === "AccessDeniedException") {
    // ECR Public's token needs two actions; the second (ECR Public asks STS
    // for a bearer token with the caller's identity) is rarely granted.
    return make(
      `${prefix}: ${code}: ${messageOf(err)}; the principal needs ` +
        "ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken (README, ECR Public)",
    );
  }
  return make(`${prefix}: ${code}: ${messageOf(err)}`);
}

const UNTRUSTED = "the ECR endpoint's certificate is not signed by a trusted CA: if a " +
  "TLS-inspecting proxy or a private endpoint signs it with a CA of its own, give that CA as " +
  "AWS_CA_BUNDLE or NODE_EXTRA_CA_CERTS (README, Custom CA certificates)";

/**
 * Node's TLS verification codes: a certificate problem is the same on every
 * attempt, so it is said as what it is and what fixes it.
 */
const TLS_FAILURES: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: UNTRUSTED,
  UNABLE_TO_GET_ISSUER_CERT: UNTRUSTED,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: UNTRUSTED,
  SELF_SIGNED_CERT_IN_CHAIN: UNTRUSTED,
  DEPTH_ZERO_SELF_SIGNED_CERT: UNTRUSTED,
  CERT_UNTRUSTED: UNTRUSTED,
  CERT_HAS_EXPIRED: "the ECR endpoint's certificate has expired, or this machine's clock is " +
    "ahead: check the clock and the certificate of AWS_ENDPOINT_URL_ECR's host",
  CERT_NOT_YET_VALID: "the ECR endpoint's certificate is not valid yet, or this machine's " +
    "clock is behind: check the clock and the certificate of AWS_ENDPOINT_URL_ECR's host",
  ERR_TLS_CERT_ALTNAME_INVALID: "the ECR endpoint's certificate does not name the host " +
    "connected to: check AWS_ENDPOINT_URL_ECR (or the proxy that answers for it)",
};

/** What to set, given what the credential chain was given. */
export function credentialsAdvice(hints: CredentialHints | undefined): string {
  const c = hints?.container;
  if (c && !c.allowed) {
    return `${c.variable} points the SDK at ${c.url}, and the sandbox refuses ${
      c.host || "that URL"
    }: it is not among the hosts this build may reach (EKS Pod Identity's 169.254.170.23:80 ` +
      "and [fd00:ec2::23]:80 are); unset it, or use EKS Pod Identity, IRSA or the " +
      "kubeecr-aws-secrets Secret";
  }
  if (c) {
    return `${c.variable} points the SDK at ${c.url}, which gave no credentials: check that ` +
      "the agent there answers (EKS Pod Identity, ECS) and that the token file it needs is " +
      "mounted, or unset it";
  }
  if (hints?.profile !== undefined) {
    return `AWS_PROFILE names the profile ${JSON.stringify(hints.profile)}, which gave no ` +
      "credentials: it is not in ~/.aws/config or ~/.aws/credentials (or the files " +
      "AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE name), or has no usable credentials; " +
      "fix the profile name or unset AWS_PROFILE";
  }
  if (hints?.accessKeyId && !hints.secretAccessKey) {
    return "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both " +
      "(the kubeecr-aws-secrets Secret must hold both keys)";
  }
  if (hints?.secretAccessKey && !hints.accessKeyId) {
    return "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both " +
      "(the kubeecr-aws-secrets Secret must hold both keys)";
  }
  return "provide credentials: the kubeecr-aws-secrets Secret (AWS_ACCESS_KEY_ID, " +
    "AWS_SECRET_ACCESS_KEY), IRSA, EKS Pod Identity, an instance profile or AWS_PROFILE";
}

/**
 * "the sandbox refused 127.0.0.1:8080; allowed: …". The allow-list is cut to
 * the entries that matter for this region (and the non-AWS ones), so the line
 * stays short when it names every regional endpoint.
 */
export function sandboxAdvice(
  host: string | undefined,
  region: string,
  allowed?: string[],
  /** The variable that points this API elsewhere (ECR Public's is AWS_ENDPOINT_URL_ECR_PUBLIC). */
  variable = "AWS_ENDPOINT_URL_ECR",
): string {
  const what = host ? `a connection to ${host}` : "the connection to the ECR endpoint";
  let list = "";
  if (allowed && allowed.length > 0) {
    // Hide the ECR/STS endpoints of other regions; keep this region's, the
    // API server, the metadata addresses and any wildcard.
    const relevant = allowed.filter((h) => h.includes(`.${region}.`) || !AWS_ENDPOINT.test(h));
    const shown = relevant.slice(0, 12);
    const more = allowed.length - shown.length;
    list = `; allowed hosts: ${shown.join(", ")}${more > 0 ? ` (and ${more} more)` : ""}`;
  }
  return `the sandbox refused ${what}: it is not among the hosts this build may reach${list}; ` +
    `point ${variable} / AWS_ENDPOINT_URL at an allowed host or unset them`;
}

/** An ECR, ECR Public or STS endpoint, e.g. api.ecr-fips.eu-west-1.amazonaws.com:443, sts.us-east-1…. */
const AWS_ENDPOINT = /^(api\.ecr|ecr|sts)\b/;

/**
 * What Deno's sandbox refused: `Requires <kind> access to "<what>"`. Deno's
 * NotCapable carries no field saying which permission it was, so its own
 * fixed wording is the only source; an unrecognised one is treated as a
 * network refusal, as before.
 */
export function sandboxRefusal(err: unknown): { kind: string; what: string } | undefined {
  if (!(err instanceof Deno.errors.NotCapable)) return undefined;
  const m = /Requires (\w+) access to "([^"]*)"/.exec(err.message);
  return m ? { kind: m[1], what: m[2] } : { kind: "net", what: "" };
}

/** The host a lookup was refused for (node's dns errors carry `hostname`). */
function refusedHost(err: unknown): string | undefined {
  const hostname = (err as { hostname?: unknown })?.hostname;
  return typeof hostname === "string" && hostname !== "" ? hostname : undefined;
}

/**
 * The SDK's deserialization failures keep the raw response in a hidden
 * `$response`; its service errors (AccessDeniedException, …) carry one too,
 * but also `$fault`, which a failure to read the answer does not.
 */
function isUnparsedAnswer(err: unknown): boolean {
  return typeof err === "object" && err !== null && "$response" in err && !("$fault" in err);
}

/** The HTTP status the SDK saw ($metadata on service errors, $response on deserialization errors). */
function httpStatusOf(err: unknown): number | undefined {
  const e = err as {
    $metadata?: { httpStatusCode?: unknown };
    $response?: { statusCode?: unknown };
  };
  const status = e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/**
 * AWS's error name ("AccessDeniedException"), or the system error code of a
 * network failure ("ECONNREFUSED", "EPERM"), which says more than "Error".
 */
export function errorCode(err: unknown): string {
  if (!(err instanceof Error)) return "UnknownError";
  const code = (err as { code?: unknown }).code;
  return err.name === "Error" && typeof code === "string" ? code : err.name;
}
