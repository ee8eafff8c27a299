// The token port: what the pipeline needs from a registry token source
// (lib/aws/ecr.ts implements it on ECR), and its error, owned by the core
// beside SecretStore and KubeApiError (store.ts).

import { ECR_PUBLIC_REGION, partitionOf, type Registry } from "./annotation.ts";
import { KubeEcrError } from "./errors.ts";
import { formatDuration } from "./time.ts";

/** ECR's documented token lifetime: 12 hours. */
export const TOKEN_LIFETIME_MS = 12 * 3600_000;
/** The same, as --help and messages write it: "12h". */
export const TOKEN_LIFETIME = formatDuration(TOKEN_LIFETIME_MS);

/**
 * Which token serves a registry. ECR's token serves every account the
 * principal may pull from in one region of one partition; a role (an
 * admin-chosen IAM role to assume, --roles) makes it a different token.
 * ECR Public's token (ecr-public:GetAuthorizationToken, us-east-1 only)
 * serves public.ecr.aws: its own source, one key.
 */
export interface TokenKey {
  source: "ecr" | "ecr-public";
  partition: string;
  region: string;
  role?: string;
}

/**
 * The token key of a registry: a private registry's is ECR's in its region
 * (its FIPS and dual-stack hosts included: one token serves them all), and
 * the role the role map (core/roles.ts) chose for it, if any; public.ecr.aws's
 * is ECR Public's, in us-east-1.
 */
export function tokenKeyOf(
  registry: Pick<Registry, "region"> & Partial<Pick<Registry, "source">>,
  role?: string,
): TokenKey {
  const withRole = role ? { role } : {};
  if (registry.source === "ecr-public") {
    return { source: "ecr-public", partition: "aws", region: ECR_PUBLIC_REGION, ...withRole };
  }
  return {
    source: "ecr",
    partition: partitionOf(registry.region),
    region: registry.region,
    ...withRole,
  };
}

/** A key as one string, for maps: "ecr/aws/us-west-2", "ecr/aws/us-west-2/<role>". */
export function keyString(key: TokenKey): string {
  return [key.source, key.partition, key.region, ...(key.role ? [key.role] : [])].join("/");
}

export interface RegistryToken {
  /** The registry password (the part after "AWS:" in the decoded token). */
  password: string;
  expiresAt: Date;
  /** The Date header of ECR's answer, when it had one: ECR's clock, to compare. */
  answeredAt?: Date;
}

export interface TokenSource {
  /** The token for `key`; throws TokenError. */
  fetch(key: TokenKey): Promise<RegistryToken>;
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

/** A registry host, the token to write for it, and the role that fetched it (if not the base principal). */
export type HostCredential = { host: string; role?: string } & RegistryToken;

/**
 * Every registry of a Secret with its token, or the failure of the first
 * registry (in the annotation's order) whose token could not be had: a
 * Secret gets all its registries or none, since a half-written Secret would
 * carry an expires-at true for only some of them. `tokens` is by keyString;
 * `roles` is the role chosen per host (absent: the base principal).
 */
export function joinCredentials(
  registries: Registry[],
  tokens: ReadonlyMap<string, RegistryToken | TokenError>,
  roles: ReadonlyMap<string, string> = new Map(),
): HostCredential[] | TokenError {
  const creds: HostCredential[] = [];
  for (const registry of registries) {
    const role = roles.get(registry.host);
    const key = keyString(tokenKeyOf(registry, role));
    const token = tokens.get(key);
    if (token === undefined) throw new Error(`no token was fetched for ${key}`);
    if (token instanceof TokenError) return token;
    creds.push({ host: registry.host, ...(role ? { role } : {}), ...token });
  }
  return creds;
}
