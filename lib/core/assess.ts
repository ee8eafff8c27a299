// What to do with one discovered Secret, decided before any token is
// fetched: it is invalid (and why), fresh, or due. Pure (hashing included:
// node:crypto's createHash is synchronous, so no Promise leaks in here).

import { parseAnnotation, type Registry } from "./annotation.ts";
import { readEcrEntries } from "./dockerconfig.ts";
import { decide, type DueReason, fingerprint, type HostStatus, statusKey } from "./due.ts";
import { RENEW_REQUESTED } from "./status.ts";
import { AnnotationError, DockerConfigError } from "./errors.ts";
import type { StoredSecret } from "./store.ts";
import type { EventReason } from "./events.ts";
import type { RoleChoice } from "./roles.ts";

export type Assessment =
  | {
    kind: "invalid";
    reason: Extract<
      EventReason,
      "InvalidAnnotation" | "InvalidDockerConfig" | "NotAllowedByRoleMap"
    >;
    message: string;
  }
  /** `roles`: the role the map chose per host; a host not in it is the base principal's. */
  | { kind: "fresh"; registries: Registry[]; roles: Map<string, string>; expiresAt: Date }
  | {
    kind: "due";
    registries: Registry[];
    roles: Map<string, string>;
    why: string;
    reason: DueReason;
    host?: string;
  };

export interface AssessOptions {
  annotation: string;
  now: Date;
  refreshWindowMs: number;
  force: boolean;
  /** The role map's choice for a registry in the Secret's namespace; none: no role map. */
  roleOf?: (registry: Registry, namespace: string) => RoleChoice;
  /** `kubeecr status`: no role map at hand, so a host's recorded role is not judged. */
  roleMapUnknown?: boolean;
}

export function assess(secret: StoredSecret, opts: AssessOptions): Assessment {
  let registries: Registry[];
  let entries: Map<string, string>;
  try {
    registries = parseAnnotation(opts.annotation, secret.annotations[opts.annotation] ?? "");
    // Also refuses, before any token is fetched, what could not be written.
    entries = readEcrEntries(secret.dockerConfig, registries.map((r) => r.host));
  } catch (err) {
    if (err instanceof AnnotationError) {
      return { kind: "invalid", reason: "InvalidAnnotation", message: err.message };
    }
    if (err instanceof DockerConfigError) {
      return { kind: "invalid", reason: "InvalidDockerConfig", message: err.message };
    }
    throw err;
  }
  // A refused registry refuses the Secret (all its registries or none, as
  // joinCredentials): its data stays as it is, whatever it holds.
  const roles = new Map<string, string>();
  for (const registry of registries) {
    const choice = opts.roleOf?.(registry, secret.namespace) ?? { kind: "base" };
    if (choice.kind === "refused") {
      return { kind: "invalid", reason: "NotAllowedByRoleMap", message: choice.message };
    }
    if (choice.kind === "role") roles.set(registry.host, choice.entry.role);
  }
  const decision = decide({
    hosts: registries.map((r) => r.host),
    roles: opts.roleMapUnknown ? "unknown" : roles,
    entries: new Map([...entries].map(([host, text]) => [host, fingerprint(text)])),
    status: secret.annotations[statusKey(opts.annotation)],
    renewRequested: secret.annotations[RENEW_REQUESTED],
    now: opts.now,
    refreshWindowMs: opts.refreshWindowMs,
    force: opts.force,
  });
  return decision.due
    ? {
      kind: "due",
      registries,
      roles,
      why: describeDue(decision.reason, decision.host),
      reason: decision.reason,
      ...(decision.host ? { host: decision.host } : {}),
    }
    : { kind: "fresh", registries, roles, expiresAt: decision.expiresAt };
}

/** "entry-changed 123456789012.dkr.ecr.us-west-2.amazonaws.com", for the debug log. */
function describeDue(reason: DueReason, host: string | undefined): string {
  return host ? `${reason} ${host}` : reason;
}

/**
 * The records of this installation's status that the data still vouches
 * for: the host's entry is the one the record fingerprints.
 */
export function vouchedRecords(
  dockerConfig: Uint8Array | undefined,
  status: Map<string, HostStatus>,
): Map<string, HostStatus> {
  const entries = entriesOrNone(dockerConfig, [...status.keys()]);
  return new Map(
    [...status].filter(([host, recorded]) => {
      const text = entries.get(host);
      return text !== undefined && fingerprint(text) === recorded.sha256;
    }),
  );
}

/** The hosts' entries, or none when the data cannot be read: then it vouches for nothing. */
export function entriesOrNone(
  dockerConfig: Uint8Array | undefined,
  hosts: string[],
): Map<string, string> {
  try {
    return readEcrEntries(dockerConfig, hosts);
  } catch (err) {
    if (err instanceof DockerConfigError) return new Map();
    throw err;
  }
}
