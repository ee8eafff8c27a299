// What to do with one discovered Secret, decided before any token is
// fetched: it is invalid (and why), fresh, or due. Pure.

import { parseAnnotation, type Registry } from "./annotation.ts";
import { readAuthHosts } from "./dockerconfig.ts";
import { decide, EXPIRES_AT } from "./due.ts";
import { AnnotationError, DockerConfigError } from "./errors.ts";
import type { EventReason, StoredSecret } from "./store.ts";

export type Assessment =
  | {
    kind: "invalid";
    reason: Extract<EventReason, "InvalidAnnotation" | "InvalidDockerConfig">;
    message: string;
  }
  | { kind: "fresh"; registries: Registry[]; expiresAt: Date }
  | { kind: "due"; registries: Registry[]; why: string };

export interface AssessOptions {
  annotation: string;
  now: Date;
  refreshWindowMs: number;
  force: boolean;
}

export function assess(secret: StoredSecret, opts: AssessOptions): Assessment {
  let registries: Registry[];
  let presentHosts: Set<string>;
  try {
    registries = parseAnnotation(opts.annotation, secret.annotations[opts.annotation] ?? "");
    presentHosts = readAuthHosts(
      secret.dockerConfig && new TextDecoder().decode(secret.dockerConfig),
    );
  } catch (err) {
    if (err instanceof AnnotationError) {
      return { kind: "invalid", reason: "InvalidAnnotation", message: err.message };
    }
    if (err instanceof DockerConfigError) {
      return { kind: "invalid", reason: "InvalidDockerConfig", message: err.message };
    }
    throw err;
  }
  const decision = decide({
    hosts: registries.map((r) => r.host),
    presentHosts,
    expiresAt: secret.annotations[EXPIRES_AT],
    now: opts.now,
    refreshWindowMs: opts.refreshWindowMs,
    force: opts.force,
  });
  return decision.due
    ? { kind: "due", registries, why: decision.reason }
    : { kind: "fresh", registries, expiresAt: decision.expiresAt };
}
