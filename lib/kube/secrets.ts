// The Secret adapter: SecretStore on the Kubernetes REST API (list, get,
// patch), and the read-back of what the server stored. Requests go through
// KubeApi (transport.ts); Events are written by events.ts.

import type { SecretRef } from "../core/errors.ts";
import { STATUS_PREFIX } from "../core/status.ts";
import {
  type CreateResult,
  KubeApiError,
  type ListScope,
  type NewSecret,
  type PatchResult,
  type RejectedItem,
  type SecretStore,
  type SecretUpdate,
  type StoredData,
  type StoredSecret,
  UnexpectedAnswerError,
} from "../core/store.ts";
import { COMPONENT, drain, hostOf, type KubeApi, refused, type Status } from "./transport.ts";
import { METADATA_LIST, readList, SECRET_LIST } from "./lists.ts";
import { recordEvent } from "./events.ts";
import type { SecretEvent } from "../core/events.ts";

export const DOCKER_CONFIG_TYPE = "kubernetes.io/dockerconfigjson";
export const DOCKER_CONFIG_KEY = ".dockerconfigjson";
// Ask for PartialObjectMetadataList: the server sends metadata only, so no
// Secret's data (Helm releases, certificates) crosses the wire.
const METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/**
 * An admission policy or webhook refused the write (RBAC allows it): the
 * server's message says which and why; granting anything would not help.
 */
function admissionRefused(ref: SecretRef, status: number, body: Status): KubeApiError {
  return new KubeApiError(
    "patch",
    status,
    ref,
    `patch ${KubeApiError.describeTarget(ref)}: HTTP ${status}: an admission policy or webhook ` +
      `refused the write${body.message ? ` (the API server said: ${body.message})` : ""}; ` +
      "KubeECR's identity may patch this Secret, so change or exempt it in that policy " +
      "(kubectl get validatingadmissionpolicies,validatingwebhookconfigurations)",
    { serverMessage: body.message },
  );
}

/**
 * The Secret a write answered with, or UnexpectedAnswerError saying what came
 * instead (`consequence` ends that message).
 */
async function answeredSecret(
  res: Response,
  ref: SecretRef,
  operation: "patch" | "create",
  consequence: string,
): Promise<SecretJson> {
  let secret: unknown;
  try {
    secret = JSON.parse(await res.text());
  } catch {
    secret = undefined;
  }
  const why = secret === undefined ? "it is not JSON" : unusable(secret, "") ??
    ((secret as SecretJson).metadata?.name !== ref.name ? "it names another object" : undefined);
  if (why) {
    throw new UnexpectedAnswerError(
      operation,
      res.status,
      ref,
      `${operation} ${KubeApiError.describeTarget(ref)}: ${hostOf(res.url)} answered HTTP ` +
        `${res.status} with something that is not the Secret ${
          operation === "patch" ? "written" : "created"
        } (${why})${consequence}`,
    );
  }
  return secret as SecretJson;
}

/** What a patch's answer says was stored. */
async function storedOf(res: Response, ref: SecretRef): Promise<StoredData> {
  const secret = await answeredSecret(res, ref, "patch", ", so what was stored cannot be checked");
  const stored = toStored(secret, "");
  return {
    dockerConfig: stored.dockerConfig,
    annotations: stored.annotations,
    resourceVersion: stored.resourceVersion,
  };
}

/** The Secret in a create's answer, every annotation kept. */
async function createdOf(res: Response, ref: SecretRef): Promise<StoredSecret> {
  return toStoredAll(await answeredSecret(res, ref, "create", ""));
}

/** Secret JSON as the API server sends it; only what toStored reads. */
interface SecretJson {
  metadata?: {
    namespace?: string;
    name?: string;
    uid?: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
  type?: string;
  data?: Record<string, string>;
}

function toStored(s: SecretJson, annotation: string): StoredSecret {
  const m = s.metadata ?? {};
  const raw = s.data?.[DOCKER_CONFIG_KEY];
  return {
    namespace: m.namespace ?? "",
    name: m.name ?? "",
    uid: m.uid ?? "",
    resourceVersion: m.resourceVersion ?? "",
    type: s.type ?? "",
    annotations: ownAnnotations(m.annotations ?? {}, annotation),
    dockerConfig: raw === undefined ? undefined : Uint8Array.fromBase64(raw),
  };
}

/**
 * Why a Secret as the server sent it cannot be used, or undefined when it
 * can: the API server only ever sends string names, string annotations and
 * base64 string data, but a proxy in between (or a server of another kind)
 * may not, and one such item must not end the run with a TypeError.
 * Describes shapes only, never a value.
 */
function unusable(s: unknown, annotation: string): string | undefined {
  if (typeof s !== "object" || s === null || Array.isArray(s)) return "it is not a JSON object";
  const { metadata: m, data } = s as SecretJson;
  if (typeof m !== "object" || m === null) return "it has no metadata";
  for (const field of ["namespace", "name", "uid", "resourceVersion"] as const) {
    if (typeof m[field] !== "string" || m[field] === "") {
      return `its metadata.${field} is not a string`;
    }
  }
  for (const [k, v] of Object.entries(m.annotations ?? {})) {
    if ((k === annotation || k.startsWith(STATUS_PREFIX)) && typeof v !== "string") {
      return `its annotation ${k} is not a string`;
    }
  }
  if (data === undefined || data === null) return undefined;
  if (typeof data !== "object" || Array.isArray(data)) return "its data is not an object";
  for (const [k, v] of Object.entries(data)) {
    if (typeof v !== "string") return `its data key ${JSON.stringify(k)} is not a string`;
  }
  const raw = data[DOCKER_CONFIG_KEY];
  if (raw !== undefined && !BASE64.test(raw)) {
    return `its data key ${DOCKER_CONFIG_KEY} is not base64`;
  }
  return undefined;
}

/** What Uint8Array.fromBase64 accepts without throwing (padding optional, no whitespace). */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** An item of a list of dockerconfigjson Secrets: usable, or rejected with the reason. */
function listedSecret(
  s: SecretJson,
  annotation: string,
): { secret: StoredSecret } | { rejected: RejectedItem } {
  const m = (typeof s === "object" && s !== null ? s.metadata : undefined) ?? {};
  const ref = {
    namespace: typeof m.namespace === "string" ? m.namespace : "",
    name: typeof m.name === "string" ? m.name : "",
    uid: typeof m.uid === "string" ? m.uid : "",
  };
  const why = unusable(s, annotation);
  if (why) {
    return {
      rejected: {
        ...ref,
        otherType: false,
        why: `the API server's answer for this Secret cannot be used: ${why}; it was left alone`,
      },
    };
  }
  if (s.type !== DOCKER_CONFIG_TYPE) {
    // A list asked for type=kubernetes.io/dockerconfigjson only: whatever
    // came back of another type lost that field selector on the way.
    return {
      rejected: {
        ...ref,
        otherType: true,
        why: `it is of type ${JSON.stringify(s.type ?? "")}, not ${DOCKER_CONFIG_TYPE}, ` +
          "although the list asked only for that type (a proxy may have dropped the " +
          "fieldSelector); nothing was written into it",
      },
    };
  }
  return { secret: toStored(s, annotation) };
}

/**
 * Only the marker and kubeecr's status annotations are kept: kubectl's
 * last-applied-configuration alone can be a whole copy of the Secret.
 */
function ownAnnotations(all: Record<string, string>, annotation: string) {
  const own: Record<string, string> = {};
  for (const [k, v] of Object.entries(all)) {
    if (k === annotation || k.startsWith(STATUS_PREFIX)) own[k] = v;
  }
  return own;
}

const annotatedWith = (annotation: string) => (metadata: unknown) => {
  const annotations = (metadata as SecretJson["metadata"])?.annotations;
  return typeof annotations === "object" && annotations !== null && annotation in annotations;
};

/** Constant, so the transport encodes each once (KubeApi's query cache). */
const PATCH_QUERY = { fieldManager: COMPONENT };
const DRY_RUN_PATCH_QUERY = { fieldManager: COMPONENT, dryRun: "All" };

function secretPath(ref: SecretRef): string {
  return `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets/${
    encodeURIComponent(ref.name)
  }`;
}

export class KubeSecretStore implements SecretStore {
  readonly #api: KubeApi;
  readonly #now: () => Date;

  /** `now` stamps the events (the run's clock, lib/core/clock.ts). */
  constructor(api: KubeApi, now: () => Date) {
    this.#api = api;
    this.#now = now;
  }

  async *listAnnotatedDockerConfigSecrets(scope: ListScope, annotation: string, from?: string) {
    const target = { namespace: scope.namespace };
    let cont = from;
    do {
      const page = await this.#list(
        scope,
        `type=${DOCKER_CONFIG_TYPE}`,
        cont,
        (res) => readList<SecretJson>(res, annotatedWith(annotation), SECRET_LIST, "list", target),
      );
      cont = page.continue;
      const secrets: StoredSecret[] = [];
      const rejected: RejectedItem[] = [];
      for (const item of page.items) {
        const listed = listedSecret(item, annotation);
        if ("secret" in listed) secrets.push(listed.secret);
        else rejected.push(listed.rejected);
      }
      yield { secrets, rejected, continue: cont };
    } while (cont);
  }

  async *listAnnotatedOtherSecrets(scope: ListScope, annotation: string) {
    const target = { namespace: scope.namespace };
    let cont: string | undefined;
    do {
      const page = await this.#list(
        scope,
        `type!=${DOCKER_CONFIG_TYPE}`,
        cont,
        (res) =>
          readList<SecretJson>(res, annotatedWith(annotation), METADATA_LIST, "list", target),
        METADATA_ONLY,
      );
      cont = page.continue;
      // Metadata only: an item whose names are not strings cannot be reported on.
      yield page.items.filter((s) => unusable({ ...s, data: undefined }, annotation) === undefined)
        .map((s) => {
          const { dockerConfig: _, ...meta } = toStored({ ...s, data: undefined }, annotation);
          return meta;
        });
    } while (cont);
  }

  async #list<T>(
    scope: ListScope,
    fieldSelector: string,
    cont: string | undefined,
    read: (res: Response) => Promise<T>,
    accept?: string,
  ): Promise<T> {
    const target = { namespace: scope.namespace };
    const answer = await this.#api.call("list", target, {
      method: "GET",
      path: scope.namespace
        ? `/api/v1/namespaces/${encodeURIComponent(scope.namespace)}/secrets`
        : "/api/v1/secrets",
      query: {
        fieldSelector,
        labelSelector: scope.labelSelector,
        limit: this.#api.pageSize,
        continue: cont,
      },
      accept,
    }, read);
    if (!answer.ok) throw refused("list", target, answer.status, answer.body);
    return answer.value;
  }

  async listNamespaces(labelSelector: string): Promise<Set<string>> {
    const names = new Set<string>();
    let cont: string | undefined;
    do {
      const answer = await this.#api.call("list namespaces", {}, {
        method: "GET",
        path: "/api/v1/namespaces",
        query: { labelSelector, limit: this.#api.pageSize, continue: cont },
        accept: METADATA_ONLY,
      }, (res) =>
        readList<{ metadata?: { name?: unknown } }>(
          res,
          () => true,
          METADATA_LIST,
          "list namespaces",
          {},
        ));
      if (!answer.ok) throw refused("list namespaces", {}, answer.status, answer.body);
      for (const item of answer.value.items) {
        if (typeof item?.metadata?.name === "string") names.add(item.metadata.name);
      }
      cont = answer.value.continue;
    } while (cont);
    return names;
  }

  async namespaceExists(name: string): Promise<boolean | undefined> {
    const answer = await this.#api.call("get namespace", { namespace: name }, {
      method: "GET",
      path: `/api/v1/namespaces/${encodeURIComponent(name)}`,
      accept: METADATA_ONLY.replace("List", ""),
    }, drain);
    if (answer.ok) return true;
    return answer.status === 404 ? false : undefined;
  }

  async get(ref: SecretRef): Promise<StoredSecret | undefined> {
    // Every annotation is kept (toStoredAll): get() is only used after a 409,
    // where the caller compares the marker it already knows.
    const answer = await this.#api.call("get", ref, { method: "GET", path: secretPath(ref) }, (
      res,
    ) => res.json() as Promise<SecretJson>);
    if (answer.ok) return toStoredAll(answer.value);
    if (answer.status === 404) return undefined;
    throw refused("get", ref, answer.status, answer.body);
  }

  async patch(ref: SecretRef, update: SecretUpdate, opts: { dryRun: boolean }) {
    // A JSON merge patch touches only the keys it names: the one data key and
    // kubeecr's own annotations. Carrying resourceVersion makes it conditional:
    // the server answers 409 if the Secret changed since it was read, which
    // also makes a retry after a lost answer safe.
    const answer = await this.#api.call("patch", ref, {
      method: "PATCH",
      path: secretPath(ref),
      query: opts.dryRun ? DRY_RUN_PATCH_QUERY : PATCH_QUERY,
      contentType: "application/merge-patch+json",
      body: {
        metadata: { resourceVersion: update.resourceVersion, annotations: update.annotations },
        ...(update.dockerConfig
          ? { data: { [DOCKER_CONFIG_KEY]: update.dockerConfig.toBase64() } }
          : {}),
      },
      // The answer is the Secret as stored (with dryRun=All: as it would be):
      // the caller compares it with what was sent.
    }, (res) => storedOf(res, ref));
    if (answer.ok) return { kind: "patched", stored: answer.value } satisfies PatchResult;
    if (answer.status === 409) return { kind: "conflict" } satisfies PatchResult;
    if (answer.status === 404) return { kind: "gone" } satisfies PatchResult;
    if (answer.status === 403 && await this.#mayPatch(ref)) {
      // RBAC allows the write, so what refused it is admission: a policy or a webhook.
      throw admissionRefused(ref, answer.status, answer.body);
    }
    throw refused("patch", ref, answer.status, answer.body);
  }

  async create(secret: NewSecret, opts: { dryRun: boolean }): Promise<CreateResult> {
    const ref = { namespace: secret.namespace, name: secret.name };
    // POST, never PUT: a create cannot replace a Secret that exists, whoever
    // made it; the server answers 409 AlreadyExists and nothing changes.
    const answer = await this.#api.call("create", ref, {
      method: "POST",
      path: `/api/v1/namespaces/${encodeURIComponent(secret.namespace)}/secrets`,
      query: { fieldManager: COMPONENT, dryRun: opts.dryRun ? "All" : undefined },
      body: {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: secret.name, annotations: secret.annotations, labels: secret.labels },
        type: DOCKER_CONFIG_TYPE,
        data: { [DOCKER_CONFIG_KEY]: secret.dockerConfig.toBase64() },
      },
      // A dry run's answer has no resourceVersion: there is nothing to fill.
    }, (res) => opts.dryRun ? drain(res).then(() => undefined) : createdOf(res, ref));
    if (answer.ok) {
      return answer.value
        ? { kind: "created", secret: answer.value }
        : { kind: "would-create" } satisfies CreateResult;
    }
    if (answer.status === 409) return { kind: "exists" } satisfies CreateResult;
    throw refused(
      "create",
      ref,
      answer.status,
      answer.body,
      "'create' on secrets (manifests/components/provision adds it)",
    );
  }

  /**
   * Whether RBAC lets this identity patch the Secret (a SelfSubjectAccessReview,
   * which every authenticated identity may create); undefined when that
   * cannot be told. Asked only after a 403, to say which of the two refused.
   */
  async #mayPatch(ref: SecretRef): Promise<boolean | undefined> {
    try {
      const answer = await this.#api.call("review access to", ref, {
        method: "POST",
        path: "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SelfSubjectAccessReview",
          spec: {
            resourceAttributes: {
              namespace: ref.namespace,
              verb: "patch",
              resource: "secrets",
              name: ref.name,
            },
          },
        },
      }, (res) => res.json() as Promise<{ status?: { allowed?: unknown } }>);
      return answer.ok ? answer.value.status?.allowed === true : undefined;
    } catch {
      return undefined;
    }
  }

  recordEvent(secret: SecretRef & { uid: string }, event: SecretEvent): Promise<void> {
    return recordEvent(this.#api, secret, event, this.#now());
  }
}

/** A Secret read by get(): every annotation kept (the caller knows the marker's key). */
function toStoredAll(s: SecretJson): StoredSecret {
  const stored = toStored(s, "");
  stored.annotations = s.metadata?.annotations ?? {};
  return stored;
}
