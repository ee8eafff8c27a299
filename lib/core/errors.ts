// Error types shared by every stage. Callers branch on the class (and on the
// fields it carries), never on message text, so messages are free to be
// written for humans. Every error of ours extends KubeEcrError; those of the
// ports (KubeApiError, TokenError) are defined beside them, in store.ts and
// tokens.ts.

/** Base class: lets main.ts tell "our" failures from programming errors. */
export class KubeEcrError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    // Subclasses inherit this, so `err.name` is always the concrete class name
    // (e.g. "ConfigError") in stack traces and `describeError` output.
    this.name = new.target.name;
  }
}

/** A flag or environment variable has a bad value; the run cannot start. */
export class ConfigError extends KubeEcrError {
  /** Exit code 2: "the run could not start" (design.md, Exit codes). */
  readonly exitCode = 2;
  constructor(
    /** The flag concerned, e.g. "--refresh-window". */
    readonly flag: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A Secret's annotation value is malformed; a problem of that Secret only. */
export class AnnotationError extends KubeEcrError {
  constructor(
    /** The annotation key, e.g. "deft.com/kubeecr". */
    readonly key: string,
    /** The annotation value as found on the Secret (never a credential). */
    readonly value: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * The existing `.dockerconfigjson` cannot be merged into. The message never
 * carries the content itself: it may hold other registries' passwords.
 */
export class DockerConfigError extends KubeEcrError {}

/**
 * The run's budget (--timeout) is spent: no new request starts. Raised
 * instead of the abort of whatever request was in flight, so every Secret
 * left says why it was not finished.
 */
export class BudgetError extends KubeEcrError {}

/** Identifies a Secret in logs, events and errors. */
export interface SecretRef {
  namespace: string;
  name: string;
}

/** "namespace/name", the form kubectl users recognise. */
export function refString(r: SecretRef): string {
  return `${r.namespace}/${r.name}`;
}

/**
 * One line for logs and stderr: the message followed by each `cause`,
 * e.g. "refresh failed: GetAuthorizationToken us-west-2: connection refused".
 * Never throws, whatever it is given (a thrown string, null, a cyclic cause).
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  let cur: unknown = err;
  // The depth cap and `seen` guard against cause cycles (a.cause = a).
  while (cur !== undefined && !seen.has(cur) && parts.length < 16) {
    seen.add(cur);
    const msg = messageOf(cur);
    // Skip empty messages and a cause that merely repeats its parent.
    if (msg !== "" && msg !== parts[parts.length - 1]) parts.push(msg);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.length > 0 ? parts.join(": ") : "unknown error";
}

/**
 * The message of one thrown value, without its causes (describeError joins
 * those). Never throws, never serialises an arbitrary object.
 */
export function messageOf(v: unknown): string {
  try {
    if (v instanceof Error) return v.message || v.name;
    if (typeof v === "string") return v;
    if (v === null) return "null";
    if (typeof v === "object") {
      const m = (v as { message?: unknown }).message;
      if (typeof m === "string") return m;
      // Not JSON.stringify: an arbitrary thrown object (a raw HTTP response,
      // a request) may carry credentials, and logs must never show one.
      return "non-Error value of type object";
    }
    return String(v);
  } catch {
    // A throwing `message` getter, a Symbol.toPrimitive that throws, ...
    return "unprintable error value";
  }
}
