// The token port: what the pipeline needs from a registry token source
// (lib/aws/ecr.ts implements it on ECR), and its error, owned by the core
// beside SecretStore and KubeApiError (store.ts).

import { KubeEcrError } from "./errors.ts";

export interface RegistryToken {
  /** The registry password (the part after "AWS:" in the decoded token). */
  password: string;
  expiresAt: Date;
  /** The Date header of ECR's answer, when it had one: ECR's clock, to compare. */
  answeredAt?: Date;
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
