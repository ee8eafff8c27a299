// Stage 3, patch: writes the credentials into one Secret in place. The write
// is conditional on the resourceVersion read, so a concurrent edit is never
// overwritten: on 409 the Secret is read again, merged again and retried.

import type { Registry } from "./core/annotation.ts";
import { entriesOrNone, vouchedRecords } from "./core/assess.ts";
import { DockerConfigError, KubeEcrError, type SecretRef } from "./core/errors.ts";
import { type EcrCredential, setEcrEntries } from "./core/dockerconfig.ts";
import {
  capExpiry,
  fingerprint,
  formatStatus,
  type HostStatus,
  parseStatus,
  statusKey,
} from "./core/due.ts";
import { EXPIRES_AT, REFRESHED_AT, RENEW_REQUESTED } from "./core/status.ts";
import { formatDuration, formatTime, parseTime } from "./core/time.ts";
import type { SecretStore, StoredData, StoredSecret } from "./core/store.ts";
import type { EventReason } from "./core/events.ts";

export type Outcome =
  | {
    kind: "refreshed";
    secret: SecretRef;
    hosts: string[];
    expiresAt: Date;
    /** Hosts whose ECR expiry was later than now + 12h + skew and was capped. */
    capped?: string[];
    /** The role (--roles) that fetched each host's token, when not the base principal. */
    roles?: Record<string, string>;
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
  /** --refresh-window: a token expiring sooner than now + this is short-lived. */
  refreshWindowMs: number;
}

/** A token that expires sooner than this after now is never written. */
export const MIN_TOKEN_LIFE_MS = 60_000;

/** A registry's credential and the expiry ECR answered for its token. */
export interface HostCredential extends EcrCredential {
  expiresAt: Date;
  /** The role (--roles) whose token it is; recorded in the status, so a new role makes it due. */
  role?: string;
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
  const key = statusKey(opts.annotation);
  const roles = new Map(creds.flatMap((c) => c.role ? [[c.host, c.role] as const] : []));
  let current = secret;
  try {
    for (let attempt = 1; attempt <= opts.maxAttempts; attempt++) {
      // Decided again on each version read: what a short-lived token replaces may have changed.
      const life = checkLifetimes(current, registries, creds, key, opts);
      if (life.refuse) {
        return { kind: "failed", secret: ref, reason: "RefreshFailed", message: life.refuse };
      }
      const { bytes, entries } = setEcrEntries(current.dockerConfig, creds);
      const status = new Map<string, HostStatus>(
        [...entries].map(([host, text]) => [host, {
          expiresAt: formatTime(expiries.get(host)!.expiresAt),
          sha256: fingerprint(text),
          ...(roles.has(host) ? { role: roles.get(host) } : {}),
        }]),
      );
      const annotations: Record<string, string | null> = {
        [REFRESHED_AT]: formatTime(opts.now),
        [EXPIRES_AT]: formatTime(expiresAt),
        [key]: formatStatus(status),
        // `kubeecr renew` asked for this write: it is done (removed with the data, in one patch).
        ...(current.annotations[RENEW_REQUESTED] !== undefined ? { [RENEW_REQUESTED]: null } : {}),
      };
      const result = await store.patch(ref, {
        resourceVersion: current.resourceVersion,
        dockerConfig: bytes,
        annotations,
      }, { dryRun: opts.dryRun });
      if (result.kind === "patched") {
        const differs = storedDifference(result.stored, entries, annotations);
        if (differs) {
          const note = opts.dryRun ? "" : await correctStatus(store, ref, result.stored, key);
          return {
            kind: "failed",
            secret: ref,
            reason: "RefreshFailed",
            message:
              `the API server ${
                opts.dryRun ? "would store" : "stored"
              } different data than KubeECR wrote (${differs}): an admission webhook or policy ` +
              "may be rewriting this Secret (kubectl get mutatingadmissionpolicies," +
              `mutatingwebhookconfigurations); the pull secret does not hold the new token${note}`,
          };
        }
        if (life.shortLived) {
          return { kind: "failed", secret: ref, reason: "RefreshFailed", message: life.shortLived };
        }
        return {
          kind: "refreshed",
          secret: ref,
          hosts,
          expiresAt,
          ...(capped.length > 0 ? { capped } : {}),
          ...(roles.size > 0 ? { roles: Object.fromEntries(roles) } : {}),
        };
      }
      if (result.kind === "gone") {
        return { kind: "skipped", secret: ref, why: "deleted during the run" };
      }

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

/**
 * Dead and short-lived tokens. A token that has expired, or expires within
 * MIN_TOKEN_LIFE_MS, is never written: the Secret keeps its entry. One that
 * expires inside the refresh window is written only where it outlives the
 * entry it replaces (as this installation's status records it; an entry
 * without a record, or none at all, is outlived by any live token). Either
 * way the Secret's outcome is a failure, or every run would quietly rewrite it.
 */
export function checkLifetimes(
  current: StoredSecret,
  registries: Registry[],
  creds: HostCredential[],
  statusAnnotation: string,
  opts: Pick<WriteOptions, "now" | "refreshWindowMs">,
): { refuse?: string; shortLived?: string } {
  const now = opts.now.getTime();
  const region = (host: string) => registries.find((r) => r.host === host)?.region ?? host;
  const said = (c: HostCredential) =>
    `ECR in ${region(c.host)} answered a token that expires at ${formatTime(c.expiresAt)}`;
  const clock = `(this run's time is ${formatTime(opts.now)})`;
  const dead = creds.find((c) => c.expiresAt.getTime() <= now + MIN_TOKEN_LIFE_MS);
  if (dead) {
    return {
      refuse:
        `${said(dead)}, ${
          dead.expiresAt.getTime() <= now ? "already past" : "less than a minute away"
        } ${clock}: it was not written and the Secret keeps its entry; check the clocks and ` +
        "what answers for ECR (AWS_ENDPOINT_URL_ECR, a proxy)",
    };
  }
  const short = creds.filter((c) => c.expiresAt.getTime() <= now + opts.refreshWindowMs);
  if (short.length === 0) return {};
  const replaced = replacedExpiries(current, statusAnnotation);
  const notLonger = short.find((c) => {
    const old = replaced.get(c.host);
    return old !== undefined && c.expiresAt.getTime() <= old.getTime();
  });
  const window = `the refresh window of ${formatDuration(opts.refreshWindowMs)}`;
  if (notLonger) {
    return {
      refuse: `${said(notLonger)}, inside ${window} and no later than the entry it would ` +
        `replace (${formatTime(replaced.get(notLonger.host)!)}) ${clock}: nothing was written; ` +
        "check what answers for ECR (AWS_ENDPOINT_URL_ECR, a proxy) and the clocks",
    };
  }
  return {
    shortLived: `${said(short[0])}, inside ${window} ${clock}: it was written, since it outlives ` +
      "the entry it replaced, but pulls will fail after it expires unless ECR answers " +
      "longer-lived tokens; check what answers for ECR (AWS_ENDPOINT_URL_ECR, a proxy) and the clocks",
  };
}

/** The recorded expiry of each host's current entry, where this installation's status vouches for it. */
function replacedExpiries(current: StoredSecret, statusAnnotation: string): Map<string, Date> {
  const out = new Map<string, Date>();
  const status = parseStatus(current.annotations[statusAnnotation] ?? "");
  if (!status) return out;
  for (const [host, recorded] of vouchedRecords(current.dockerConfig, status)) {
    const at = parseTime(recorded.expiresAt);
    if (at) out.set(host, at);
  }
  return out;
}

/**
 * How what the server stored differs from what was sent, in words (hosts and
 * annotation names only), or undefined when it holds exactly that.
 */
export function storedDifference(
  stored: StoredData,
  written: Map<string, string>,
  /** What was sent; null = removed. */
  annotations: Record<string, string | null>,
): string | undefined {
  const problems: string[] = [];
  const entries = entriesOrNone(stored.dockerConfig, [...written.keys()]);
  for (const [host, text] of written) {
    const got = entries.get(host);
    if (got === undefined) problems.push(`no entry for ${host}`);
    else if (got !== text) problems.push(`another entry for ${host}`);
  }
  for (const [name, value] of Object.entries(annotations)) {
    if (stored.annotations[name] !== (value ?? undefined)) {
      problems.push(value === null ? `still a ${name} annotation` : `another ${name} annotation`);
    }
  }
  return problems.length > 0 ? problems.join(", ") : undefined;
}

/**
 * After a write the server stored differently: the status annotation must
 * not claim an entry the data does not hold. Keeps each host whose stored
 * entry is the one its record fingerprints, drops the others (and the
 * expires-at summary with them). Returns a note for the message when that
 * could not be done; "" when nothing needed correcting or it was corrected.
 */
async function correctStatus(
  store: SecretStore,
  ref: SecretRef,
  stored: StoredData,
  statusAnnotation: string,
): Promise<string> {
  const value = stored.annotations[statusAnnotation];
  if (value === undefined) return "";
  const parsed = parseStatus(value);
  const status = parsed ?? new Map<string, HostStatus>();
  const kept = vouchedRecords(stored.dockerConfig, status);
  if (parsed !== undefined && kept.size === status.size) return "";
  const earliest = [...kept.values()].map((s) => s.expiresAt).sort()[0];
  try {
    const result = await store.patch(ref, {
      resourceVersion: stored.resourceVersion,
      annotations: {
        [statusAnnotation]: kept.size > 0 ? formatStatus(kept) : null,
        [EXPIRES_AT]: earliest ?? null,
      },
    }, { dryRun: false });
    if (result.kind === "patched") {
      return result.stored.annotations[statusAnnotation] ===
          (kept.size > 0 ? formatStatus(kept) : undefined)
        ? ""
        : `; its ${statusAnnotation} annotation could not be corrected either`;
    }
    return result.kind === "gone"
      ? ""
      : `; its ${statusAnnotation} annotation was left as stored (the Secret changed meanwhile)`;
  } catch (err) {
    if (err instanceof KubeEcrError) {
      return `; its ${statusAnnotation} annotation could not be corrected: ${err.message}`;
    }
    throw err;
  }
}
