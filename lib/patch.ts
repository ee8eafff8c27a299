// Stage 3, patch: writes the credentials into one Secret in place. The write
// is conditional on the resourceVersion read, so a concurrent edit is never
// overwritten: on 409 the Secret is read again, merged again and retried.

import type { Registry } from "./annotation.ts";
import { DockerConfigError, KubeEcrError, type SecretRef } from "./errors.ts";
import { type EcrCredential, mergeDockerConfig } from "./dockerconfig.ts";
import { EXPIRES_AT, formatTime, REFRESHED_AT } from "./due.ts";
import type { EventReason, SecretStore, StoredSecret } from "./store.ts";

export type Outcome =
  | { kind: "refreshed"; secret: SecretRef; hosts: string[]; expiresAt: Date }
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

export async function writeSecret(
  store: SecretStore,
  secret: StoredSecret,
  registries: Registry[],
  creds: EcrCredential[],
  expiresAt: Date,
  opts: WriteOptions,
): Promise<Outcome> {
  const ref = { namespace: secret.namespace, name: secret.name };
  const hosts = registries.map((r) => r.host);
  const annotationRead = secret.annotations[opts.annotation];
  let current = secret;
  try {
    for (let attempt = 1; attempt <= opts.maxAttempts; attempt++) {
      const result = await store.patch(ref, {
        resourceVersion: current.resourceVersion,
        dockerConfig: new TextEncoder().encode(
          mergeDockerConfig(
            current.dockerConfig && new TextDecoder().decode(current.dockerConfig),
            creds,
          ),
        ),
        annotations: { [REFRESHED_AT]: formatTime(opts.now), [EXPIRES_AT]: formatTime(expiresAt) },
      }, { dryRun: opts.dryRun });
      if (result === "patched") return { kind: "refreshed", secret: ref, hosts, expiresAt };
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
