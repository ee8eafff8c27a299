// SecretStore on the real Kubernetes API, through @kubernetes/client-node.
// The only module that knows client-node's types; everything it returns is
// a plain StoredSecret and every failure a KubeApiError.

import * as k8s from "@kubernetes/client-node";
import type * as https from "node:https";
import { Agent } from "undici";
import type { KubeAccess } from "./config.ts";
import { KubeEcrError, type SecretRef } from "./errors.ts";
import {
  type EventReason,
  type EventType,
  KubeApiError,
  type ListScope,
  type PatchResult,
  type SecretStore,
  type SecretUpdate,
  type StoredSecret,
} from "./store.ts";

export const DOCKER_CONFIG_TYPE = "kubernetes.io/dockerconfigjson";
export const DOCKER_CONFIG_KEY = ".dockerconfigjson";
const COMPONENT = "kubeecr";
// Large enough that a cluster with a few hundred pull secrets is one request,
// small enough to bound memory per page.
const PAGE_SIZE = 250;
// Names the failed call in errors ("create event for Secret ns/name: HTTP 403").
const EVENT_OPERATION = "create event for";
// Ask for PartialObjectMetadataList: the server sends metadata only, so no
// Secret's data (Helm releases, certificates) crosses the wire.
const METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/**
 * client-node speaking HTTP/1.1 over one connection pool.
 *
 * Why HTTP/1.1: undici, client-node's HTTP client, negotiates HTTP/2 by
 * default, and under Deno 2.9 a GOAWAY from the API server (sent when it shuts
 * down, and at random with --goaway-chance) aborts the whole process in
 * nghttp2 ("find_stream_on_goaway_func: Assertion ... failed"). Why one pool:
 * client-node makes a new undici Agent, so a new TLS handshake, per request.
 * That Agent is still built (inside super's method, which also sets the auth
 * headers) but replaced before it ever connects. Proxied clusters keep
 * client-node's own dispatcher.
 */
export class Http1KubeConfig extends k8s.KubeConfig {
  #agent?: Promise<Agent | undefined>;

  override async applySecurityAuthentication(context: k8s.RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    this.#agent ??= this.#http1Agent();
    const agent = await this.#agent;
    if (agent) context.setDispatcher(agent);
  }

  async #http1Agent(): Promise<Agent | undefined> {
    const tls: https.RequestOptions = {};
    await this.applyToHTTPSOptions(tls);
    const options = this.createDispatcherOptions(
      this.getCurrentCluster(),
      tls as https.AgentOptions,
    );
    return options.type === "agent"
      ? new Agent({ connect: options.connect, allowH2: false })
      : undefined;
  }
}

/** The kubeconfig cannot be read or does not name a usable context: the run cannot start. */
export class KubeConfigError extends KubeEcrError {}

function loadFile(kc: k8s.KubeConfig, path: string) {
  try {
    kc.loadFromFile(path);
  } catch (err) {
    // The cause (file not found, YAML error) is appended by describeError.
    throw new KubeConfigError(
      `cannot load kubeconfig ${path} (pass --kubeconfig or set KUBECONFIG to a readable file)`,
      { cause: err },
    );
  }
}

/** Builds the client configuration from the resolved access mode. */
export function loadKubeConfig(access: KubeAccess): k8s.KubeConfig {
  const kc = new Http1KubeConfig();
  if (access.mode === "in-cluster") {
    // Not loadFromCluster(): it addresses the server by KUBERNETES_SERVICE_HOST
    // (an IP), which the sandbox's net allow-list cannot name.
    kc.loadFromOptions({
      clusters: [{
        name: "in-cluster",
        server: access.server,
        caFile: access.caPath,
        skipTLSVerify: false,
      }],
      users: [{
        name: "in-cluster",
        // Re-read on every request: the kubelet rotates projected tokens.
        authProvider: { name: "tokenFile", config: { tokenFile: access.tokenPath } },
      }],
      contexts: [{ name: "in-cluster", cluster: "in-cluster", user: "in-cluster" }],
      currentContext: "in-cluster",
    });
    return kc;
  }
  const [first, ...rest] = access.paths;
  loadFile(kc, first);
  // KUBECONFIG may name several files; later ones add what earlier ones lack.
  for (const path of rest) {
    const more = new Http1KubeConfig();
    loadFile(more, path);
    kc.mergeConfig(more, true);
  }
  const context = access.context ?? kc.getCurrentContext();
  if (!kc.getContextObject(context)) {
    const known = kc.getContexts().map((c) => c.name).join(", ") || "none";
    throw new KubeConfigError(
      `context "${context}" is not in ${access.paths.join(":")} (contexts there: ${known}); ` +
        "pick one with --context",
    );
  }
  kc.setCurrentContext(context);
  return kc;
}

function toStored(s: k8s.V1Secret, fallbackNamespace?: string): StoredSecret {
  const raw = s.data?.[DOCKER_CONFIG_KEY];
  return {
    namespace: s.metadata?.namespace ?? fallbackNamespace ?? "",
    name: s.metadata?.name ?? "",
    uid: s.metadata?.uid ?? "",
    resourceVersion: s.metadata?.resourceVersion ?? "",
    type: s.type ?? "",
    annotations: s.metadata?.annotations ?? {},
    dockerConfig: raw === undefined ? undefined : Uint8Array.fromBase64(raw),
  };
}

/** Turns client-node's failures into KubeApiError; the response body is not kept (it may echo data). */
function apiError(
  operation: string,
  target: SecretRef | { namespace?: string },
  err: unknown,
): KubeApiError {
  const where = KubeApiError.describeTarget(target);
  if (err instanceof k8s.ApiException) {
    const reason = statusMessage(err.body);
    return new KubeApiError(
      operation,
      err.code,
      target,
      `${operation} ${where}: HTTP ${err.code}${reason ? `: ${reason}` : ""}${
        hint(err.code, operation)
      }`,
    );
  }
  return new KubeApiError(
    operation,
    undefined,
    target,
    `${operation} ${where}: no answer from the API server`,
    {
      cause: err,
    },
  );
}

/** The `message` of a Kubernetes Status body: it names the object and what was refused. */
function statusMessage(body: unknown): string | undefined {
  try {
    const parsed = typeof body === "string" ? JSON.parse(body) : body;
    const message = (parsed as { message?: unknown })?.message;
    return typeof message === "string" ? message : undefined;
  } catch {
    return undefined;
  }
}

function hint(status: number, operation: string): string {
  if (status === 403) {
    const permission = operation === EVENT_OPERATION
      ? "'create' on events"
      : `'${operation}' on secrets`;
    return `; grant the kubeecr identity ${permission} there (see manifests/), or limit the run with --namespace`;
  }
  if (status === 401) {
    return "; the credentials in the kubeconfig or the service-account token were not accepted";
  }
  return "";
}

export class KubeSecretStore implements SecretStore {
  readonly #core: k8s.CoreV1Api;

  constructor(kc: k8s.KubeConfig) {
    this.#core = kc.makeApiClient(k8s.CoreV1Api);
  }

  async *listDockerConfigSecrets(scope: ListScope): AsyncIterable<StoredSecret[]> {
    for await (const page of this.#pages(scope, `type=${DOCKER_CONFIG_TYPE}`)) {
      yield page.map((s) => toStored(s, scope.namespace));
    }
  }

  async *listOtherSecretMetadata(
    scope: ListScope,
  ): AsyncIterable<Omit<StoredSecret, "dockerConfig">[]> {
    const options = k8s.setHeaderOptions("Accept", METADATA_ONLY);
    for await (const page of this.#pages(scope, `type!=${DOCKER_CONFIG_TYPE}`, options)) {
      yield page.map((s) => {
        const { dockerConfig: _, ...meta } = toStored(s, scope.namespace);
        return meta;
      });
    }
  }

  async *#pages(
    scope: ListScope,
    fieldSelector: string,
    options?: k8s.ConfigurationOptions,
  ): AsyncIterable<k8s.V1Secret[]> {
    let cont: string | undefined;
    do {
      const request = {
        fieldSelector,
        labelSelector: scope.labelSelector,
        limit: PAGE_SIZE,
        _continue: cont,
      };
      let list: k8s.V1SecretList;
      try {
        list = scope.namespace
          ? await this.#core.listNamespacedSecret(
            { ...request, namespace: scope.namespace },
            options,
          )
          : await this.#core.listSecretForAllNamespaces(request, options);
      } catch (err) {
        throw apiError("list", { namespace: scope.namespace }, err);
      }
      // An empty PartialObjectMetadataList comes back as `"items": null`.
      yield list.items ?? [];
      cont = list.metadata?._continue || undefined;
    } while (cont);
  }

  async get(ref: SecretRef): Promise<StoredSecret | undefined> {
    try {
      return toStored(await this.#core.readNamespacedSecret(ref));
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return undefined;
      throw apiError("get", ref, err);
    }
  }

  async patch(
    ref: SecretRef,
    update: SecretUpdate,
    opts: { dryRun: boolean },
  ): Promise<PatchResult> {
    // A JSON merge patch touches only the keys it names: the one data key and
    // kubeecr's own annotations. Carrying resourceVersion makes it conditional:
    // the server answers 409 if the Secret changed since it was read.
    const body = {
      metadata: { resourceVersion: update.resourceVersion, annotations: update.annotations },
      data: { [DOCKER_CONFIG_KEY]: update.dockerConfig.toBase64() },
    };
    try {
      await this.#core.patchNamespacedSecret(
        { ...ref, body, fieldManager: COMPONENT, dryRun: opts.dryRun ? "All" : undefined },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
      return "patched";
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 409) return "conflict";
      if (err instanceof k8s.ApiException && err.code === 404) return "gone";
      throw apiError("patch", ref, err);
    }
  }

  async recordEvent(
    secret: SecretRef & { uid: string },
    event: { type: EventType; reason: EventReason; message: string },
  ): Promise<void> {
    const now = new Date();
    try {
      await this.#core.createNamespacedEvent({
        namespace: secret.namespace,
        body: {
          metadata: { generateName: `${secret.name}.`, namespace: secret.namespace },
          involvedObject: {
            apiVersion: "v1",
            kind: "Secret",
            namespace: secret.namespace,
            name: secret.name,
            uid: secret.uid,
          },
          type: event.type,
          reason: event.reason,
          // The API server caps event messages at 1 KiB.
          message: event.message.slice(0, 1024),
          source: { component: COMPONENT },
          reportingComponent: COMPONENT,
          reportingInstance: COMPONENT,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (err) {
      throw apiError(EVENT_OPERATION, secret, err);
    }
  }
}
