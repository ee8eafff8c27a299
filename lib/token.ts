// Stage 2, token: one GetAuthorizationToken per region that has a due
// Secret, none for the others. Every credential is registered with the
// logger before anything else can see it.

import { type RegistryToken, TokenError, type TokenSource } from "./ecr.ts";
import { describeError } from "./errors.ts";
import type { Logger } from "./log.ts";

export interface RegionTokens {
  tokens: Map<string, RegistryToken>;
  failures: Map<string, TokenError>;
  /** GetAuthorizationToken calls made: one per region asked for. */
  calls: number;
}

export async function fetchTokens(
  regions: string[],
  source: TokenSource,
  log: Logger,
): Promise<RegionTokens> {
  const unique = [...new Set(regions)].sort();
  const result: RegionTokens = { tokens: new Map(), failures: new Map(), calls: unique.length };
  await Promise.all(unique.map(async (region) => {
    try {
      const token = await source.fetch(region);
      log.redact(token.password);
      log.redact(btoa(`AWS:${token.password}`));
      log.debug("got ECR token", { region, "expires-at": token.expiresAt.toISOString() });
      result.tokens.set(region, token);
    } catch (err) {
      const failure = err instanceof TokenError
        ? err
        : new TokenError(region, "UnknownError", false, describeError(err), { cause: err });
      log.error("cannot get ECR token", { region, code: failure.code, error: failure.message });
      result.failures.set(region, failure);
    }
  }));
  return result;
}
