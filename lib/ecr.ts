// TokenSource on AWS ECR. One GetAuthorizationToken per region: the token
// serves every account the principal may pull from in that region.

import { KubeEcrError } from "./errors.ts";

export interface RegistryToken {
  /** The registry password (the part after "AWS:" in the decoded token). */
  password: string;
  expiresAt: Date;
}

export interface TokenSource {
  /** Throws TokenError. */
  fetch(region: string): Promise<RegistryToken>;
}

/**
 * ECR refused or could not be reached. `code` is AWS's error name, e.g.
 * "AccessDeniedException"; the message never holds a credential.
 */
export class TokenError extends KubeEcrError {
  constructor(
    readonly region: string,
    readonly code: string,
    /** True when no credentials could be found at all (exit code 2). */
    readonly noCredentials: boolean,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Splits a decoded "AWS:<password>" token; exported for its unit test. */
export function passwordOf(authorizationToken: string): string | undefined {
  let decoded: string;
  try {
    decoded = atob(authorizationToken);
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  return colon > 0 && decoded.length > colon + 1 ? decoded.slice(colon + 1) : undefined;
}

export interface EcrOptions {
  /** Deadline of one GetAuthorizationToken call, the SDK's own retries included. */
  requestTimeoutMs: number;
  /** Aborts when the run's budget is spent. */
  budget: AbortSignal;
}

export class EcrTokenSource implements TokenSource {
  readonly #opts: EcrOptions;

  constructor(opts: EcrOptions) {
    this.#opts = opts;
  }

  async fetch(region: string): Promise<RegistryToken> {
    // The SDK's default chain supplies credentials (env keys, web identity,
    // pod identity, instance profile, profiles) and honours
    // AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL.
    // Loaded on first use: most hourly runs find every Secret fresh and never
    // need the SDK (deno task bench: such a run peaked at 152 MiB, 156-158
    // MiB before this import was deferred).
    const { ECRClient, GetAuthorizationTokenCommand } = await import("@aws-sdk/client-ecr");
    const client = new ECRClient({ region, maxAttempts: 3 });
    const deadline = AbortSignal.timeout(this.#opts.requestTimeoutMs);
    const abortSignal = AbortSignal.any([this.#opts.budget, deadline]);
    try {
      const out = await client.send(new GetAuthorizationTokenCommand({}), { abortSignal });
      const data = out.authorizationData?.[0];
      const password = data?.authorizationToken ? passwordOf(data.authorizationToken) : undefined;
      if (!password || !data?.expiresAt) {
        throw new TokenError(
          region,
          "MalformedResponse",
          false,
          `ECR in ${region} answered without a usable token`,
        );
      }
      return { password, expiresAt: data.expiresAt };
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
          `ECR GetAuthorizationToken in ${region}: ${why}`,
        );
      }
      const code = errorCode(err);
      throw new TokenError(
        region,
        code,
        code === "CredentialsProviderError",
        `ECR GetAuthorizationToken in ${region} failed: ${code}: ${messageOf(err)}${
          adviceFor(code)
        }`,
        { cause: err },
      );
    } finally {
      client.destroy();
    }
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * AWS's error name ("AccessDeniedException"), or the system error code of a
 * network failure ("ECONNREFUSED", "EPERM"), which says more than "Error".
 */
function errorCode(err: unknown): string {
  if (!(err instanceof Error)) return "UnknownError";
  const code = (err as { code?: unknown }).code;
  return err.name === "Error" && typeof code === "string" ? code : err.name;
}

function adviceFor(code: string): string {
  switch (code) {
    case "CredentialsProviderError":
      return "; provide credentials: the kubeecr-aws-secrets Secret (AWS_ACCESS_KEY_ID, " +
        "AWS_SECRET_ACCESS_KEY), IRSA, EKS Pod Identity, an instance profile or AWS_PROFILE";
    case "NotCapable":
    case "EPERM":
      // Deno refuses an address outside --allow-net with NotCapable; a host
      // name is refused at lookup, which its node layer reports as EPERM.
      return "; the Deno sandbox refused the connection: the ECR endpoint must be an allowed host " +
        "(*.amazonaws.com, *.amazonaws.com.cn)";
    default:
      return "";
  }
}
