// Stage 2, token: one fetch per token key (for ECR: one GetAuthorizationToken
// per region), started when the key's first due Secret needs it and shared by
// every later one. A slow or failing region delays and fails only its own
// Secrets. Every credential is registered with the logger before anything
// else can see it.

import {
  keyString,
  type RegistryToken,
  TokenError,
  type TokenKey,
  type TokenSource,
} from "./core/tokens.ts";
import { describeError } from "./core/errors.ts";
import { authOf } from "./core/dockerconfig.ts";
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

  /** Token fetches made (GetAuthorizationToken calls): one per key asked for. */
  get calls(): number {
    return this.#pending.size;
  }

  /** The token (or failure) of each key, by keyString. */
  async forKeys(keys: TokenKey[]): Promise<Map<string, RegistryToken | TokenError>> {
    const named = keys.map((key) => [keyString(key), key] as const);
    const results = await Promise.all(named.map(([name, key]) => this.#forKey(name, key)));
    return new Map(named.map(([name], i) => [name, results[i]]));
  }

  #forKey(name: string, key: TokenKey): Promise<RegistryToken | TokenError> {
    let pending = this.#pending.get(name);
    if (!pending) {
      pending = this.#fetch(key);
      this.#pending.set(name, pending);
    }
    return pending;
  }

  async #fetch(key: TokenKey): Promise<RegistryToken | TokenError> {
    const region = key.region;
    try {
      const token = await this.#source.fetch(key);
      this.#log.redact(token.password);
      // The auth value exactly as the writer encodes it, so redaction cannot drift.
      this.#log.redact(authOf(token.password));
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
