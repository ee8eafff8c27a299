// The Event adapter: one core/v1 Event per Secret, reason and message,
// created (POST) or counted again (GET, PATCH) as client-go's
// EventCorrelator does. Its name and message are pure (lib/core/events.ts).

import { formatTime, parseTime } from "../core/time.ts";
import type { LatestEvent } from "../core/overview.ts";
import { type ListKind, readList } from "./lists.ts";
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

/** An Event as `kubeecr status` reads it. */
interface EventJson {
  type?: string;
  reason?: string;
  message?: string;
  involvedObject?: { kind?: string; uid?: string };
  lastTimestamp?: string | null;
  eventTime?: string | null;
  firstTimestamp?: string | null;
  metadata?: { creationTimestamp?: string };
}

const EVENT_LIST: ListKind = { kind: "EventList", apiVersion: "v1" };

/**
 * The latest Event KubeECR recorded on each Secret (by uid), in one
 * namespace or all: one paginated list of the Events whose source is
 * kubeecr and whose object is a Secret (both field selectors the API server
 * supports on core/v1 Events), so the requests grow with KubeECR's Events
 * (at most one per Secret, reason and message; the API server drops them
 * after its --event-ttl, 1h by default), never one request per Secret.
 */
export async function latestEvents(
  api: KubeApi,
  namespace: string | undefined,
): Promise<Map<string, LatestEvent>> {
  const latest = new Map<string, LatestEvent>();
  const target = { namespace };
  let cont: string | undefined;
  do {
    const answer = await api.call("list events in", target, {
      method: "GET",
      path: namespace
        ? `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`
        : "/api/v1/events",
      query: {
        fieldSelector: `source=${COMPONENT},involvedObject.kind=Secret`,
        limit: api.pageSize,
        continue: cont,
      },
    }, (res) => readList<EventJson>(res, () => true, EVENT_LIST, "list events in", target));
    if (!answer.ok) {
      throw refused("list events in", target, answer.status, answer.body, "'list' on events");
    }
    for (const e of answer.value.items) {
      const uid = e.involvedObject?.uid;
      const at = parseTime(
        e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp ?? "",
      );
      if (typeof uid !== "string" || !at || (e.type !== "Normal" && e.type !== "Warning")) continue;
      const seen = latest.get(uid);
      if (seen && seen.at >= at) continue;
      latest.set(uid, {
        type: e.type,
        reason: String(e.reason ?? ""),
        message: String(e.message ?? ""),
        at,
      });
    }
    cont = answer.value.continue;
  } while (cont);
  return latest;
}
