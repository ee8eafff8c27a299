// Stage 2, token: one GetAuthorizationToken per region, started when the
// region's first due Secret needs it and shared by every later one. A slow
// or failing region delays and fails only its own Secrets. Every credential
// is registered with the logger before anything else can see it.

import { type RegistryToken, TokenError, type TokenSource } from "./core/tokens.ts";
import { describeError } from "./core/errors.ts";
import type { Logger } from "./log.ts";

export class RegionTokens {
  readonly #source: TokenSource;
  readonly #log: Logger;
  readonly #pending = new Map<string, Promise<RegistryToken | TokenError>>();
  readonly failures: TokenError[] = [];

  readonly #onAnswer?: (region: string, token: RegistryToken) => void;

  /** `onAnswer` sees each token as it arrives (its Date, for the clock check). */
  constructor(
    source: TokenSource,
    log: Logger,
    onAnswer?: (region: string, token: RegistryToken) => void,
  ) {
    this.#source = source;
    this.#log = log;
    this.#onAnswer = onAnswer;
  }

  /** GetAuthorizationToken calls made: one per region asked for. */
  get calls(): number {
    return this.#pending.size;
  }

  /** The token of each region, in order, or the first region's failure. */
  async forRegions(regions: string[]): Promise<RegistryToken[] | TokenError> {
    const results = await Promise.all(regions.map((r) => this.#forRegion(r)));
    return results.find((r) => r instanceof TokenError) ?? (results as RegistryToken[]);
  }

  #forRegion(region: string): Promise<RegistryToken | TokenError> {
    let pending = this.#pending.get(region);
    if (!pending) {
      pending = this.#fetch(region);
      this.#pending.set(region, pending);
    }
    return pending;
  }

  async #fetch(region: string): Promise<RegistryToken | TokenError> {
    try {
      const token = await this.#source.fetch(region);
      this.#log.redact(token.password);
      this.#log.redact(new TextEncoder().encode(`AWS:${token.password}`).toBase64());
      this.#log.debug("got ECR token", { region, "expires-at": token.expiresAt.toISOString() });
      this.#onAnswer?.(region, token);
      return token;
    } catch (err) {
      const failure = err instanceof TokenError
        ? err
        : new TokenError(region, "UnknownError", false, describeError(err), { cause: err });
      this.#log.error("cannot get ECR token", {
        region,
        code: failure.code,
        error: failure.message,
      });
      this.failures.push(failure);
      return failure;
    }
  }
}
