// The role map's roles (--roles), assumed with STS AssumeRole from the base
// credentials of the SDK's default chain (static keys, IRSA, Pod Identity,
// instance profile): once per role per run, whatever the number of regions
// and Secrets it serves. A role that cannot be assumed fails the tokens of
// that role only.

import { TokenError } from "../core/tokens.ts";
import { messageOf } from "../core/errors.ts";
import { errorCode } from "./ecr.ts";
import { DEFAULT_BACKOFF } from "../core/retry.ts";

/** Temporary credentials as the ECR client takes them. */
export interface RoleCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export interface RoleOptions {
  /** The role map's externalId for a role, and its entry for messages ("roles[1]"). */
  describe: (role: string) => { externalId?: string; entry: string };
  /** AWS_CA_BUNDLE's certificates (main.ts reads them), trusted for STS as for ECR. */
  caPem?: string;
  requestTimeoutMs: number;
  budget: AbortSignal;
  /** Told when a role's session had to be shorter than ECR's 12-hour token. */
  onShortSession?: (role: string, entry: string) => void;
}

/**
 * Sessions as long as ECR's token: a token fetched with temporary
 * credentials cannot outlive them. A role whose maximum session duration is
 * shorter (or a chained role, e.g. from IRSA: at most 1 h) refuses that with
 * ValidationError; the run then asks for STS's default (1 h) once.
 */
const SESSION_SECONDS = 12 * 3600;
const SESSION_NAME = "kubeecr";

export class AssumedRoles {
  readonly #opts: RoleOptions;
  readonly #sessions = new Map<string, Promise<RoleCredentials>>();

  constructor(opts: RoleOptions) {
    this.#opts = opts;
  }

  #baseCredentials?: Promise<unknown>;

  /**
   * The default chain, once for all roles: its provider caches what it
   * resolved, so IRSA's web-identity exchange happens once per run, not once
   * per role.
   */
  #base(region: string, requestHandler: unknown): Promise<never> {
    this.#baseCredentials ??= import("@aws-sdk/credential-provider-node").then((m) =>
      m.defaultProvider({ parentClientConfig: { region, requestHandler: requestHandler as never } })
    );
    return this.#baseCredentials as Promise<never>;
  }

  /** AssumeRole calls made (one per role asked for). */
  get calls(): number {
    return this.#sessions.size;
  }

  /** The role's credentials, assumed in `region` on first use; throws TokenError. */
  credentials(role: string, region: string): Promise<RoleCredentials> {
    let session = this.#sessions.get(role);
    if (!session) {
      session = this.#assume(role, region);
      this.#sessions.set(role, session);
    }
    return session;
  }

  async #assume(role: string, region: string): Promise<RoleCredentials> {
    const { externalId, entry } = this.#opts.describe(role);
    // The STS client the SDK's own chain uses for web identity and profiles'
    // role_arn (deno.json names why this package); base credentials from the
    // default chain, as ECR's client would use them.
    const { STSClient, AssumeRoleCommand } = await import("@aws-sdk/nested-clients/sts");
    const requestHandler = this.#opts.caPem
      ? { httpsAgent: new (await import("node:https")).Agent({ ca: this.#opts.caPem }) }
      : undefined;
    const client = new STSClient({
      region,
      maxAttempts: DEFAULT_BACKOFF.attempts,
      requestHandler,
      credentials: await this.#base(region, requestHandler),
    });
    let signal: AbortSignal | undefined;
    const deadline = () =>
      signal = AbortSignal.any([
        this.#opts.budget,
        AbortSignal.timeout(this.#opts.requestTimeoutMs),
      ]);
    const ask = (DurationSeconds?: number) =>
      client.send(
        new AssumeRoleCommand({
          RoleArn: role,
          RoleSessionName: SESSION_NAME,
          ...(externalId ? { ExternalId: externalId } : {}),
          ...(DurationSeconds ? { DurationSeconds } : {}),
        }),
        { abortSignal: deadline() },
      );
    const what = `cannot assume role ${role} (the role map's ${entry}) for ECR in ${region}`;
    try {
      let out;
      try {
        out = await ask(SESSION_SECONDS);
      } catch (err) {
        if ((err as { name?: string })?.name !== "ValidationError") throw err;
        this.#opts.onShortSession?.(role, entry);
        out = await ask();
      }
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey) {
        throw new TokenError(
          region,
          "MalformedResponse",
          false,
          `${what}: STS answered no credentials`,
        );
      }
      return {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
        ...(c.Expiration ? { expiration: c.Expiration } : {}),
      };
    } catch (err) {
      if (err instanceof TokenError) throw err;
      if (signal?.aborted) {
        const why = this.#opts.budget.aborted
          ? "the run's --timeout ran out"
          : `no answer within --request-timeout ${this.#opts.requestTimeoutMs / 1000}s`;
        throw new TokenError(region, "Timeout", false, `${what}: ${why}`, { cause: err });
      }
      const code = errorCode(err);
      if (code === "CredentialsProviderError") {
        throw new TokenError(
          region,
          code,
          true,
          `${what}: no AWS base credentials found to assume it with; provide them as for a run ` +
            "without a role map (the kubeecr-aws-secrets Secret, IRSA, EKS Pod Identity)",
          { cause: err },
        );
      }
      const advice = code === "AccessDenied" || code === "AccessDeniedException"
        ? "; the role's trust policy must allow KubeECR's base principal sts:AssumeRole" +
          (externalId
            ? ` with sts:ExternalId "${externalId}" (as the entry's externalId says)`
            : " (and require no sts:ExternalId, or give the entry its externalId)")
        : "";
      throw new TokenError(
        region,
        code,
        false,
        `${what}: ${code}: ${messageOf(err)}${advice}; only the Secrets this role serves failed`,
        { cause: err },
      );
    } finally {
      client.destroy();
    }
  }
}
