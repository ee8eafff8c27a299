// Stage 3, patch: writes the credentials into one Secret in place. The write
// is conditional on the resourceVersion read, so a concurrent edit is never
// overwritten: on 409 the Secret is read again, merged again and retried.

import type { Registry } from "./annotation.ts";
import { DockerConfigError, KubeEcrError, type SecretRef } from "./errors.ts";
import { type EcrCredential, setEcrEntries } from "./dockerconfig.ts";
import {
  capExpiry,
  EXPIRES_AT,
  fingerprint,
  formatStatus,
  formatTime,
  type HostStatus,
  REFRESHED_AT,
  statusKey,
} from "./due.ts";
import type { EventReason, SecretStore, StoredSecret } from "./store.ts";

export type Outcome =
  | {
    kind: "refreshed";
    secret: SecretRef;
    hosts: string[];
    expiresAt: Date;
    /** Hosts whose ECR expiry was later than now + 12h + skew and was capped. */
    capped?: string[];
  }
  | { kind: "fresh"; secret: SecretRef; hosts: string[]; expiresAt: Date }
  | { kind: "skipped"; secret: SecretRef; why: string }
  | {
    kind: "failed";
    secret: SecretRef;
    reason: Exclude<EventReason, "Refreshed">;
    message: string;
  };

export interface WriteOptions {
  annotation: string;
  dryRun: boolean;
  now: Date;
  /** Writes attempted before a Secret that keeps changing is given up on. */
  maxAttempts: number;
}

/** A registry's credential and the expiry ECR answered for its token. */
export interface HostCredential extends EcrCredential {
  expiresAt: Date;
}

/**
 * Writes every credential into the Secret, with this installation's status
 * annotation (per host: capped expiry + fingerprint of the entry written) and
 * the human summary (refreshed-at, expires-at = the earliest capped expiry).
 */
export async function writeSecret(
  store: SecretStore,
  secret: StoredSecret,
  registries: Registry[],
  creds: HostCredential[],
  opts: WriteOptions,
): Promise<Outcome> {
  const ref = { namespace: secret.namespace, name: secret.name };
  const hosts = registries.map((r) => r.host);
  const annotationRead = secret.annotations[opts.annotation];
  const expiries = new Map(creds.map((c) => [c.host, capExpiry(c.expiresAt, opts.now)]));
  const capped = creds.filter((c) => expiries.get(c.host)!.capped).map((c) => c.host);
  const expiresAt = new Date(Math.min(...[...expiries.values()].map((e) => e.expiresAt.getTime())));
  let current = secret;
  try {
    for (let attempt = 1; attempt <= opts.maxAttempts; attempt++) {
      const { bytes, entries } = setEcrEntries(current.dockerConfig, creds);
      const status = new Map<string, HostStatus>(
        [...entries].map(([host, text]) => [host, {
          expiresAt: formatTime(expiries.get(host)!.expiresAt),
          sha256: fingerprint(text),
        }]),
      );
      const result = await store.patch(ref, {
        resourceVersion: current.resourceVersion,
        dockerConfig: bytes,
        annotations: {
          [REFRESHED_AT]: formatTime(opts.now),
          [EXPIRES_AT]: formatTime(expiresAt),
          [statusKey(opts.annotation)]: formatStatus(status),
        },
      }, { dryRun: opts.dryRun });
      if (result === "patched") {
        return {
          kind: "refreshed",
          secret: ref,
          hosts,
          expiresAt,
          ...(capped.length > 0 ? { capped } : {}),
        };
      }
      if (result === "gone") return { kind: "skipped", secret: ref, why: "deleted during the run" };

      // 409: someone wrote the Secret since it was read. Merge into their version.
      const fresh = await store.get(ref);
      if (!fresh) return { kind: "skipped", secret: ref, why: "deleted during the run" };
      if (fresh.annotations[opts.annotation] !== annotationRead) {
        // The tokens fetched match the old value; the next run serves the new one.
        return { kind: "skipped", secret: ref, why: "annotation changed during the run" };
      }
      current = fresh;
    }
  } catch (err) {
    if (err instanceof DockerConfigError) {
      return { kind: "failed", secret: ref, reason: "InvalidDockerConfig", message: err.message };
    }
    if (err instanceof KubeEcrError) {
      return { kind: "failed", secret: ref, reason: "RefreshFailed", message: err.message };
    }
    throw err;
  }
  return {
    kind: "failed",
    secret: ref,
    reason: "RefreshFailed",
    message:
      `the Secret changed during each of ${opts.maxAttempts} write attempts (HTTP 409 Conflict); ` +
      "nothing was overwritten and the next run will try again",
  };
}
