// The narrow interfaces the pipeline needs from Kubernetes. lib/kube/secrets.ts
// implements them over HTTP; unit tests pass small in-memory doubles.

import { KubeEcrError, refString, type SecretRef } from "./errors.ts";
import type { SecretEvent } from "./events.ts";

// The event types are part of this port (recordEvent takes them); they are
// defined with their table in events.ts.
export type { EventReason, EventType, SecretEvent } from "./events.ts";

/** The part of a Secret the pipeline reads. */
export interface StoredSecret extends SecretRef {
  uid: string;
  resourceVersion: string;
  type: string;
  /**
   * From a list: only the marker annotation and kubeecr's own (kubectl's
   * last-applied copy is dropped); from get(): every annotation.
   */
  annotations: Record<string, string>;
  /** `.dockerconfigjson` as stored: base64-decoded bytes; undefined when the key is absent. */
  dockerConfig?: Uint8Array;
}

/** What a write changes: the docker config and kubeecr's own annotations, nothing else. */
export interface SecretUpdate {
  /** The resourceVersion read; the server refuses the write (409) if it moved on. */
  resourceVersion: string;
  /** Absent: the data is not part of the write (only annotations change). */
  dockerConfig?: Uint8Array;
  /** null removes the annotation (JSON merge patch). */
  annotations: Record<string, string | null>;
}

/**
 * What the API server stored, as the write's answer shows it (for a dry run:
 * what it would have stored). An admission webhook or policy can make this
 * differ from what was sent.
 */
export interface StoredData {
  /** `.dockerconfigjson`, base64-decoded; undefined when the key is absent. */
  dockerConfig?: Uint8Array;
  /** kubeecr's own annotations (and the marker), as stored. */
  annotations: Record<string, string>;
  resourceVersion: string;
}

export type PatchResult =
  | { kind: "patched"; stored: StoredData }
  | { kind: "conflict" }
  | { kind: "gone" };

/** A Secret KubeECR creates (--provision): of type kubernetes.io/dockerconfigjson. */
export interface NewSecret extends SecretRef {
  annotations: Record<string, string>;
  labels: Record<string, string>;
  dockerConfig: Uint8Array;
}

export type CreateResult =
  /** As stored, with every annotation. */
  | { kind: "created"; secret: StoredSecret }
  /** A dry run the server accepted (dryRun=All: admission and RBAC ran, nothing stored). */
  | { kind: "would-create" }
  /** A Secret of that name was there already (409 AlreadyExists): not touched. */
  | { kind: "exists" };

/** A list item that is not a Secret KubeECR may write, and why (a log line, not the run's end). */
export interface RejectedItem extends SecretRef {
  uid: string;
  why: string;
  /**
   * True for a Secret of another type (the field selector was lost on the
   * way): not KubeECR's, so skipped. False for an item of the right type that
   * cannot be read (data that is not base64 strings): a failure of that Secret.
   */
  otherType: boolean;
}

export interface ListScope {
  /** undefined = all namespaces. */
  namespace?: string;
  labelSelector?: string;
}

export interface SecretStore {
  /**
   * Secrets of type kubernetes.io/dockerconfigjson that carry `annotation`,
   * page by page; the others are dropped unread. A page after the first may
   * throw KubeApiError 410 when the continue token expired.
   */
  listAnnotatedDockerConfigSecrets(
    scope: ListScope,
    annotation: string,
    from?: string,
  ): AsyncIterable<{ secrets: StoredSecret[]; rejected?: RejectedItem[]; continue?: string }>;
  /**
   * Metadata (annotations, no data) of annotated Secrets of any other type:
   * the --check-secret-types diagnostic. Lists every other Secret's metadata.
   */
  listAnnotatedOtherSecrets(
    scope: ListScope,
    annotation: string,
  ): AsyncIterable<Omit<StoredSecret, "dockerConfig">[]>;
  /** Names of the namespaces whose labels match. */
  listNamespaces(labelSelector: string): Promise<Set<string>>;
  /** false when the namespace does not exist; undefined when that cannot be told (403). */
  namespaceExists(name: string): Promise<boolean | undefined>;
  /** The Secret as it is now; undefined when it no longer exists. */
  get(ref: SecretRef): Promise<StoredSecret | undefined>;
  patch(ref: SecretRef, update: SecretUpdate, opts: { dryRun: boolean }): Promise<PatchResult>;
  /**
   * Creates the Secret (--provision), never replacing one: a Secret of that
   * name that exists, whatever it holds, answers "exists" and is left as it is.
   */
  create(secret: NewSecret, opts: { dryRun: boolean }): Promise<CreateResult>;
  /**
   * Records the event, or counts it again on the existing one when the same
   * Secret got the same reason and message before (client-go's aggregation).
   */
  recordEvent(secret: SecretRef & { uid: string }, event: SecretEvent): Promise<void>;
}

/**
 * A Kubernetes API call failed. `status` is the HTTP status (undefined when no
 * answer came: connection refused, TLS, DNS, timeout); callers branch on it.
 */
export class KubeApiError extends KubeEcrError {
  constructor(
    readonly operation: string,
    readonly status: number | undefined,
    readonly target: SecretRef | { namespace?: string },
    message: string,
    options?: ErrorOptions & {
      /** The Status message, as the server wrote it. */
      serverMessage?: string;
    },
  ) {
    super(message, options);
    this.serverMessage = options?.serverMessage;
  }
  readonly serverMessage: string | undefined;

  /** No answer, or an answer saying the identity is not accepted at all. */
  get isAccessProblem(): boolean {
    return this.status === undefined || this.status === 401 ||
      this instanceof UnexpectedAnswerError;
  }

  static describeTarget(target: SecretRef | { namespace?: string }): string {
    if ("name" in target) return `Secret ${refString(target)}`;
    return target.namespace ? `namespace ${target.namespace}` : "all namespaces";
  }
}

/**
 * A 2xx answer that is not what was asked for: an HTML login page from an
 * auth proxy, `{}`, `null`, an empty body, a list of something else. Whoever
 * answered is not the API server (or not one to trust), so it is treated as
 * an access problem: on first contact the run cannot start.
 */
export class UnexpectedAnswerError extends KubeApiError {}
