// Events as data: which reasons KubeECR records, of which type, with which
// message, and the Event's name. Pure; the adapter is lib/kube/events.ts and
// the producer is report.ts. A new reason is one row of EVENTS (and its
// Troubleshooting entry in README.md).

import { createHash } from "node:crypto";
import type { SecretRef } from "./errors.ts";
import { formatTime } from "./time.ts";
import { TOKEN_LIFETIME } from "./tokens.ts";

export type EventType = "Normal" | "Warning";

/** What the Refreshed message says. */
export interface RefreshedFacts {
  hosts: string[];
  expiresAt: Date;
  /** Hosts whose expiry ECR gave beyond the token lifetime, capped to it. */
  capped?: string[];
  /** The IAM role (--roles) that fetched each host's token, when not the base principal. */
  roles?: Record<string, string>;
}

/** "host (as role arn:…)" when a role fetched the host's token. */
const asRole = (host: string, roles: Record<string, string> | undefined) =>
  roles?.[host] ? `${host} (as role ${roles[host]})` : host;

/** A Warning says what went wrong, as the outcome's message already does. */
const warning = { type: "Warning", message: (f: { message: string }) => f.message } as const;

/** Reason → type and message, as `kubectl events --for secret/<name>` shows them. */
const EVENTS = {
  Refreshed: {
    type: "Normal",
    message: (f: RefreshedFacts) =>
      `Refreshed ECR credentials for ${f.hosts.map((h) => asRole(h, f.roles)).join(", ")}; ` +
      `they expire at ${formatTime(f.expiresAt)}${
        f.capped
          ? ` (capped to ${TOKEN_LIFETIME}: ECR answered a later expiry for ${f.capped.join(", ")})`
          : ""
      }`,
  },
  InvalidAnnotation: warning,
  InvalidDockerConfig: warning,
  InvalidSecretType: warning,
  NotAllowedByRoleMap: warning,
  RefreshFailed: warning,
} as const satisfies Record<string, { type: EventType; message: (facts: never) => string }>;

export type EventReason = keyof typeof EVENTS;

/** What the message of `reason` is built from. */
export type FactsOf<R extends EventReason> = Parameters<(typeof EVENTS)[R]["message"]>[0];

export interface SecretEvent {
  type: EventType;
  reason: EventReason;
  message: string;
}

/** The event of `reason`, its type and message from the table. */
export function secretEvent<R extends EventReason>(reason: R, facts: FactsOf<R>): SecretEvent {
  const row = EVENTS[reason];
  return { type: row.type, reason, message: row.message(facts as never) };
}

/** The API server's cap on an Event's message. */
const MAX_MESSAGE = 1024;

/** The message as the API server will keep it. */
export function eventMessage(message: string): string {
  return message.slice(0, MAX_MESSAGE);
}

/**
 * The same Secret, type, reason and message always map to the same Event
 * name (the Secret's name and the first 16 hex digits of a SHA-256), so a
 * Warning repeated every run is one object with a count (as client-go's
 * EventCorrelator does within a process), not one per run.
 */
export function eventName(
  secret: SecretRef & { uid: string },
  type: EventType,
  reason: EventReason,
  message: string,
): string {
  const hash = createHash("sha256").update([secret.uid, type, reason, message].join("\0"))
    .digest("hex").slice(0, 16);
  return `${secret.name.slice(0, 236)}.${hash}`;
}
