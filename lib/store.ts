// The narrow interfaces the pipeline needs from Kubernetes. lib/kube.ts
// implements them with client-node; unit tests pass small in-memory doubles.

import { KubeEcrError, refString, type SecretRef } from "./errors.ts";

/** The part of a Secret the pipeline reads. */
export interface StoredSecret extends SecretRef {
  uid: string;
  resourceVersion: string;
  type: string;
  annotations: Record<string, string>;
  /**
   * `.dockerconfigjson`, base64-decoded only: the raw bytes (lib/dockerconfig.ts
   * decodes them as strict UTF-8). undefined when the key is absent.
   */
  dockerConfig?: Uint8Array;
}

/** What a write changes: the docker config and kubeecr's own annotations, nothing else. */
export interface SecretUpdate {
  /** The resourceVersion read; the server refuses the write (409) if it moved on. */
  resourceVersion: string;
  dockerConfig: Uint8Array;
  /** kubeecr's own annotations; null removes one (JSON merge patch). */
  annotations: Record<string, string | null>;
}

export type PatchResult = "patched" | "conflict" | "gone";

export interface ListScope {
  /** undefined = all namespaces. */
  namespace?: string;
  labelSelector?: string;
}

export type EventType = "Normal" | "Warning";

/** Reasons of the events KubeECR records, as `kubectl describe secret` shows them. */
export type EventReason =
  | "Refreshed"
  | "InvalidAnnotation"
  | "InvalidDockerConfig"
  | "InvalidSecretType"
  | "RefreshFailed";

export interface SecretStore {
  /** Secrets of type kubernetes.io/dockerconfigjson, page by page. */
  listDockerConfigSecrets(scope: ListScope): AsyncIterable<StoredSecret[]>;
  /**
   * Metadata (annotations, no data) of every Secret of any other type, page
   * by page: how annotated Secrets of the wrong type are found without
   * downloading the large Secrets (Helm releases) of the cluster.
   */
  listOtherSecretMetadata(scope: ListScope): AsyncIterable<Omit<StoredSecret, "dockerConfig">[]>;
  /** The Secret as it is now; undefined when it no longer exists. */
  get(ref: SecretRef): Promise<StoredSecret | undefined>;
  patch(ref: SecretRef, update: SecretUpdate, opts: { dryRun: boolean }): Promise<PatchResult>;
  recordEvent(
    secret: SecretRef & { uid: string },
    event: { type: EventType; reason: EventReason; message: string },
  ): Promise<void>;
}

/**
 * A Kubernetes API call failed. `status` is the HTTP status (undefined when no
 * answer came: connection refused, TLS, DNS); callers branch on it.
 */
export class KubeApiError extends KubeEcrError {
  constructor(
    readonly operation: string,
    readonly status: number | undefined,
    readonly target: SecretRef | { namespace?: string },
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  /** No answer, or an answer saying the identity is not accepted at all. */
  get isAccessProblem(): boolean {
    return this.status === undefined || this.status === 401;
  }

  static describeTarget(target: SecretRef | { namespace?: string }): string {
    if ("name" in target) return `Secret ${refString(target)}`;
    return target.namespace ? `namespace ${target.namespace}` : "all namespaces";
  }
}
