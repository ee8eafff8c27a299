// The Event adapter: one core/v1 Event per Secret, reason and message,
// created (POST) or counted again (GET, PATCH) as client-go's
// EventCorrelator does. Its name and message are pure (lib/core/events.ts).

import { formatTime } from "../core/time.ts";
import type { SecretRef } from "../core/errors.ts";
import { eventMessage, eventName, type SecretEvent } from "../core/events.ts";
import { COMPONENT, drain, type KubeApi, refused } from "./transport.ts";

const EVENT_OPERATION = "create event for";
/** What a 403 on events asks the operator to grant. */
const EVENT_GRANT = "'create', 'get' and 'patch' on events";

export async function recordEvent(
  api: KubeApi,
  secret: SecretRef & { uid: string },
  event: SecretEvent,
  at: Date,
): Promise<void> {
  // The same Secret, reason and message always map to the same Event name,
  // so a Warning repeated every run is one object with a count (as
  // client-go's EventCorrelator does within a process), not one per run.
  const message = eventMessage(event.message);
  const name = eventName(secret, event.type, event.reason, message);
  const now = formatTime(at);
  const ns = encodeURIComponent(secret.namespace);
  const created = await api.call(EVENT_OPERATION, secret, {
    method: "POST",
    path: `/api/v1/namespaces/${ns}/events`,
    body: {
      metadata: { name, namespace: secret.namespace },
      involvedObject: {
        apiVersion: "v1",
        kind: "Secret",
        namespace: secret.namespace,
        name: secret.name,
        uid: secret.uid,
      },
      type: event.type,
      reason: event.reason,
      message,
      source: { component: COMPONENT },
      reportingComponent: COMPONENT,
      reportingInstance: COMPONENT,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    },
  }, drain);
  if (created.ok) return;
  if (created.status !== 409) {
    throw refused(EVENT_OPERATION, secret, created.status, created.body, EVENT_GRANT);
  }
  // It exists: count this occurrence on it.
  const path = `/api/v1/namespaces/${ns}/events/${encodeURIComponent(name)}`;
  const current = await api.call(
    EVENT_OPERATION,
    secret,
    { method: "GET", path },
    (res) => res.json() as Promise<{ count?: number; metadata?: { resourceVersion?: string } }>,
  );
  if (!current.ok) {
    throw refused(EVENT_OPERATION, secret, current.status, current.body, EVENT_GRANT);
  }
  const patched = await api.call(EVENT_OPERATION, secret, {
    method: "PATCH",
    path,
    contentType: "application/merge-patch+json",
    body: {
      metadata: { resourceVersion: current.value.metadata?.resourceVersion },
      count: (current.value.count ?? 1) + 1,
      lastTimestamp: now,
    },
  }, drain);
  // 409: another run counted it meanwhile; one occurrence less is fine.
  if (!patched.ok && patched.status !== 409) {
    throw refused(EVENT_OPERATION, secret, patched.status, patched.body, EVENT_GRANT);
  }
}
