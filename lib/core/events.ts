// Events as data: their name and message, pure (the adapter is lib/kube/events.ts).

import { createHash } from "node:crypto";
import type { SecretRef } from "./errors.ts";
import type { EventReason, EventType } from "./store.ts";

/** The API server's cap on an Event's message. */
const MAX_MESSAGE = 1024;

/** The message as the API server will keep it. */
export function eventMessage(message: string): string {
  return message.slice(0, MAX_MESSAGE);
}

/**
 * The same Secret, type, reason and message always map to the same Event
 * name (the Secret's name and the first 16 hex digits of a SHA-256), so a
 * Warning repeated every run is one object with a count, not one per run.
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
