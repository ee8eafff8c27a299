/**
 * The one in-memory SecretStore the unit tests use. It behaves like the API
 * server where the code under test depends on it: each write bumps the
 * resourceVersion, a write carrying a stale one is refused (409, "conflict"),
 * a deleted Secret answers "gone", and a write answers what was stored —
 * which an admission webhook (`hooks.admit`) may have changed. Lists come in
 * pages of `pageSize`. Hooks let a test play "someone else" at an exact point
 * of the run, which is how races that cannot be timed against a real server
 * are made deterministic. Tests assert on the resulting state (`secrets`,
 * `events`); `patches` records the requests for tests of what a write sends.
 */

import type { SecretRef } from "../../lib/core/errors.ts";
import { KubeApiError } from "../../lib/core/store.ts";
import type {
  CreateResult,
  ListScope,
  NewSecret,
  PatchResult,
  SecretEvent,
  SecretStore,
  SecretUpdate,
  StoredSecret,
} from "../../lib/core/store.ts";

export const DOCKER = "kubernetes.io/dockerconfigjson";

export interface RecordedEvent extends SecretEvent {
  secret: SecretRef & { uid: string };
}

/** Run before the store answers, as "someone else" acting at that moment. */
export interface Hooks {
  /** Before each write is looked at (awaited); `attempt` counts this Secret's writes from 1. */
  beforePatch?: (ref: SecretRef, attempt: number) => unknown;
  beforeGet?: (ref: SecretRef) => void;
  /** A mutating admission webhook: may change what is about to be stored. */
  admit?: (stored: StoredSecret) => void;
}

export const key = (r: SecretRef) => `${r.namespace}/${r.name}`;
export const bytes = (s: string) => new TextEncoder().encode(s);
export const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

export class MemoryStore implements SecretStore {
  readonly secrets = new Map<string, StoredSecret>();
  readonly events: RecordedEvent[] = [];
  /** Every write request in order, dry runs included. */
  readonly patches: { ref: SecretRef; update: SecretUpdate; dryRun: boolean }[] = [];
  hooks: Hooks = {};
  /** Secrets per list page. */
  pageSize = 500;
  /** What listNamespaces answers (the namespaces a selector matches); default: those with Secrets. */
  selected?: Set<string>;
  /** Every create request in order, dry runs included. */
  readonly creates: { secret: NewSecret; dryRun: boolean }[] = [];
  /** Namespaces where a create is refused (a KubeApiError 403, as RBAC without 'create'). */
  readonly refuseCreate = new Set<string>();
  /** List pages handed out so far (of dockerconfigjson Secrets). */
  pagesListed = 0;
  inFlight = 0;
  maxInFlight = 0;
  #rv = 100;
  #attempts = new Map<string, number>();

  add(s: Partial<StoredSecret> & SecretRef): StoredSecret {
    const secret: StoredSecret = {
      uid: `uid-${s.namespace}-${s.name}`,
      type: DOCKER,
      annotations: {},
      dockerConfig: bytes('{"auths":{}}'),
      ...s,
      resourceVersion: String(++this.#rv),
    };
    this.secrets.set(key(secret), secret);
    return structuredClone(secret);
  }

  /** A write by someone else: the resourceVersion moves on. */
  edit(ref: SecretRef, change: (s: StoredSecret) => void) {
    const s = structuredClone(this.secrets.get(key(ref))!);
    change(s);
    s.resourceVersion = String(++this.#rv);
    this.secrets.set(key(ref), s);
  }

  delete(ref: SecretRef) {
    this.secrets.delete(key(ref));
  }

  /** The Secret's docker config as stored now, parsed. */
  auths(ref: SecretRef): Record<string, { password?: string; auth?: string }> {
    return JSON.parse(text(this.secrets.get(key(ref))!.dockerConfig)).auths;
  }

  eventsOf(ref: SecretRef): Pick<SecretEvent, "type" | "reason">[] {
    return this.events.filter((e) => key(e.secret) === key(ref))
      .map(({ type, reason }) => ({ type, reason }));
  }

  async *listAnnotatedDockerConfigSecrets(scope: ListScope, annotation: string, from?: string) {
    const all = this.#list(scope).filter((s) => s.type === DOCKER && annotation in s.annotations);
    let at = Number(from ?? 0);
    do {
      const next = at + this.pageSize;
      this.pagesListed++;
      yield {
        secrets: all.slice(at, next).map((s) => structuredClone(s)),
        ...(next < all.length ? { continue: String(next) } : {}),
      };
      at = next;
    } while (at < all.length);
  }

  async *listAnnotatedOtherSecrets(scope: ListScope, annotation: string) {
    yield this.#list(scope).filter((s) => s.type !== DOCKER && annotation in s.annotations)
      .map(({ dockerConfig: _, ...m }) => structuredClone(m));
  }

  /** What listNamespaces answers per selector; a selector not in it gets `selected`. */
  readonly selections = new Map<string, Set<string>>();
  /** The selectors listNamespaces was asked for, in order. */
  readonly namespaceLists: string[] = [];

  listNamespaces(labelSelector: string): Promise<Set<string>> {
    this.namespaceLists.push(labelSelector);
    const chosen = this.selections.get(labelSelector) ?? this.selected ??
      [...this.secrets.values()].map((s) => s.namespace);
    return Promise.resolve(new Set(chosen));
  }

  create(secret: NewSecret, opts: { dryRun: boolean }): Promise<CreateResult> {
    this.creates.push({ secret: structuredClone(secret), dryRun: opts.dryRun });
    if (this.refuseCreate.has(secret.namespace)) {
      return Promise.reject(
        new KubeApiError("create", 403, secret, `create ${key(secret)}: HTTP 403: forbidden`),
      );
    }
    // Whatever is there, of any type and annotated or not, is never replaced.
    if (this.secrets.has(key(secret))) return Promise.resolve({ kind: "exists" });
    if (opts.dryRun) return Promise.resolve({ kind: "would-create" });
    const { labels: _, ...stored } = secret;
    return Promise.resolve({ kind: "created", secret: this.add({ ...stored, type: DOCKER }) });
  }

  namespaceExists(name: string): Promise<boolean> {
    return Promise.resolve([...this.secrets.values()].some((s) => s.namespace === name));
  }

  #list(scope: ListScope): StoredSecret[] {
    return [...this.secrets.values()].filter((s) =>
      !scope.namespace || s.namespace === scope.namespace
    ).sort((a, b) => key(a).localeCompare(key(b)));
  }

  get(ref: SecretRef): Promise<StoredSecret | undefined> {
    this.hooks.beforeGet?.(ref);
    const s = this.secrets.get(key(ref));
    return Promise.resolve(s && structuredClone(s));
  }

  async patch(ref: SecretRef, update: SecretUpdate, opts: { dryRun: boolean }) {
    this.patches.push({ ref, update: structuredClone(update), dryRun: opts.dryRun });
    const attempt = (this.#attempts.get(key(ref)) ?? 0) + 1;
    this.#attempts.set(key(ref), attempt);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      // Let the other workers run: a real patch is a network round trip.
      await new Promise((r) => setTimeout(r, 0));
      await this.hooks.beforePatch?.(ref, attempt);
      const s = this.secrets.get(key(ref));
      if (!s) return { kind: "gone" } satisfies PatchResult;
      if (s.resourceVersion !== update.resourceVersion) {
        return { kind: "conflict" } satisfies PatchResult;
      }
      // JSON merge patch: null removes the key. A dry run answers what it would store.
      const after = structuredClone(s);
      if (update.dockerConfig) after.dockerConfig = update.dockerConfig;
      for (const [k, v] of Object.entries(update.annotations)) {
        if (v === null) delete after.annotations[k];
        else after.annotations[k] = v;
      }
      this.hooks.admit?.(after);
      if (!opts.dryRun) this.edit(ref, (x) => Object.assign(x, after));
      const stored = opts.dryRun ? after : this.secrets.get(key(ref))!;
      return {
        kind: "patched",
        stored: {
          dockerConfig: stored.dockerConfig,
          annotations: { ...stored.annotations },
          resourceVersion: stored.resourceVersion,
        },
      } satisfies PatchResult;
    } finally {
      this.inFlight--;
    }
  }

  recordEvent(secret: SecretRef & { uid: string }, event: SecretEvent): Promise<void> {
    this.events.push({ secret, ...event });
    return Promise.resolve();
  }
}
