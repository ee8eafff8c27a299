// The role map (--roles): which IAM role serves which accounts' registries in
// which namespaces. It is the cluster admin's file, never a tenant's: a
// Secret's annotation names registries only, so the only way a namespace gets
// a role's token is that the admin listed the namespace for that role.
// Pure: parseRoleMap() validates the text, resolveRole() decides per
// registry; reading the file and listing namespaces happen at the edges.

import { load as loadYaml, YAMLException } from "js-yaml";
import { ConfigError } from "./errors.ts";

export interface RoleEntry {
  /** Position in roles[], for messages: "roles[1]". */
  index: number;
  /** IAM role ARN, e.g. "arn:aws:iam::210987654321:role/ecr-pull-team-a". */
  role: string;
  externalId?: string;
  /** 12-digit account ids whose registries this role serves. */
  accounts: string[];
  /** Namespace names and globs ("team-a", "team-a-*"). */
  namespaces: string[];
  /** A label selector on namespaces ("tenant=a"), evaluated by the API server. */
  namespaceSelector?: string;
}

export interface RoleMap {
  /** Where it was read from, for messages (--roles). */
  path: string;
  roles: RoleEntry[];
  /** What serves accounts the map does not name: the base principal, or nothing. */
  otherAccounts: "base" | "deny";
}

/** How one registry of a Secret in one namespace is served. */
export type RoleChoice =
  | { kind: "base" }
  | { kind: "role"; entry: RoleEntry }
  | { kind: "refused"; message: string };

const FLAG = "--roles";
const TOP_KEYS = ["roles", "otherAccounts"];
const ENTRY_KEYS = ["role", "externalId", "accounts", "namespaces", "namespaceSelector"];
// IAM's role ARN: partition, 12-digit account, optional path, name of
// [\w+=,.@-] (IAM's own character set for role names and paths).
const ROLE_ARN =
  /^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-[bef]|aws-eusc):iam::[0-9]{12}:role\/([\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/;
// STS AssumeRole's ExternalId: 2-1224 characters of [\w+=,.@:/-].
const EXTERNAL_ID = /^[\w+=,.@:/-]{2,1224}$/;
const ACCOUNT = /^[0-9]{12}$/;
// A namespace name (DNS-1123 label) in which "*" and "?" may stand for characters.
const NAMESPACE_GLOB = /^[a-z0-9*?]([-a-z0-9*?]*[a-z0-9*?])?$/;

const EXAMPLE = "e.g.\n  roles:\n    - role: arn:aws:iam::210987654321:role/ecr-pull-team-a\n" +
  '      accounts: ["210987654321"]\n      namespaces: ["team-a", "team-a-*"]\n' +
  "  otherAccounts: base";

/**
 * The role map in `text` (YAML or JSON), or a ConfigError (exit 2) naming the
 * file, the entry (roles[i]) and the field, and saying what to write instead.
 */
export function parseRoleMap(text: string, path: string): RoleMap {
  const fail = (what: string): never => {
    throw new ConfigError(FLAG, `role map ${path}: ${what}`);
  };
  let doc: unknown;
  try {
    doc = loadYaml(text);
  } catch (err) {
    if (!(err instanceof YAMLException)) throw err;
    // By position, as for a kubeconfig (lib/kube/kubeconfig.ts): short and
    // without quoting the file's lines back.
    const at = err.mark ? ` at line ${err.mark.line + 1}, column ${err.mark.column + 1}` : "";
    fail(`not valid YAML${at}: ${err.reason}`);
  }
  if (!isObject(doc)) fail(`must be a mapping with a roles list; ${EXAMPLE}`);
  const top = doc as Record<string, unknown>;
  unknownKeys(top, TOP_KEYS, "the top level", fail);
  const otherAccounts = top.otherAccounts ?? "base";
  if (otherAccounts !== "base" && otherAccounts !== "deny") {
    fail(`otherAccounts is ${JSON.stringify(otherAccounts)}; write base or deny`);
  }
  if (!Array.isArray(top.roles)) fail(`roles must be a list of entries; ${EXAMPLE}`);
  const roles = (top.roles as unknown[]).map((raw, index) => parseEntry(raw, index, fail));
  // One role, one external ID: the token key names the role only.
  const externalIds = new Map<string, RoleEntry>();
  for (const entry of roles) {
    const earlier = externalIds.get(entry.role);
    if (earlier && earlier.externalId !== entry.externalId) {
      fail(
        `${name(entry)}: the role is also in ${name(earlier)} with another externalId; one ` +
          "role is assumed once per run, so give both entries the same externalId",
      );
    }
    externalIds.set(entry.role, earlier ?? entry);
  }
  for (const entry of roles) {
    const shadow = shadowedBy(entry, roles.slice(0, entry.index));
    if (shadow) {
      fail(
        `${name(entry)} is never used: the first matching entry wins, and ${name(shadow)} ` +
          "comes first for every account and namespace it lists; remove it, or move it above",
      );
    }
  }
  return { path, roles, otherAccounts: otherAccounts as "base" | "deny" };
}

/**
 * The earlier entry that wins for every (account, namespace) `entry` lists,
 * if one does. Only what can be told from the text: a literal name or glob
 * repeated (or "*"); an entry with a selector may always select more.
 */
function shadowedBy(entry: RoleEntry, earlier: RoleEntry[]): RoleEntry | undefined {
  if (entry.namespaceSelector !== undefined) return undefined;
  const covering = (account: string, ns: string) =>
    earlier.find((e) =>
      e.accounts.includes(account) && (e.namespaces.includes(ns) || e.namespaces.includes("*"))
    );
  const winners = entry.accounts.flatMap((a) => entry.namespaces.map((ns) => covering(a, ns)));
  return winners.every((w) => w !== undefined) ? winners[0] : undefined;
}

function parseEntry(raw: unknown, index: number, fail: (what: string) => never): RoleEntry {
  const at = `roles[${index}]`;
  if (!isObject(raw)) fail(`${at} must be a mapping with role, accounts and namespaces`);
  const e = raw as Record<string, unknown>;
  unknownKeys(e, ENTRY_KEYS, at, fail);
  if (typeof e.role !== "string" || e.role === "") {
    fail(`${at}: role is missing; write the IAM role's ARN, e.g. arn:aws:iam::210987654321:role/x`);
  }
  const role = e.role as string;
  const here = `${at} (${role})`;
  if (!ROLE_ARN.test(role)) {
    fail(
      `${at}: role ${JSON.stringify(role)} is not an IAM role ARN; write ` +
        "arn:<partition>:iam::<12-digit account>:role/<name>, e.g. arn:aws:iam::210987654321:role/x",
    );
  }
  let externalId: string | undefined;
  if (e.externalId !== undefined) {
    if (typeof e.externalId !== "string" || !EXTERNAL_ID.test(e.externalId)) {
      fail(
        `${here}: externalId must be 2-1224 characters of letters, digits and +=,.@:/-_ ` +
          "(quote it if YAML reads it as a number)",
      );
    }
    externalId = e.externalId as string;
  }
  if (!Array.isArray(e.accounts) || e.accounts.length === 0) {
    fail(`${here}: accounts must list the 12-digit accounts whose registries it serves`);
  }
  const accounts = (e.accounts as unknown[]).map((a, i) => {
    if (typeof a === "number") {
      // YAML reads 012345678901 unquoted as a number and loses the leading zero.
      fail(`${here}: accounts[${i}] is a number; quote it: "${String(a).padStart(12, "0")}"`);
    }
    if (typeof a !== "string" || !ACCOUNT.test(a)) {
      fail(`${here}: accounts[${i}] ${JSON.stringify(a)} is not a 12-digit account id`);
    }
    return a as string;
  });
  const namespaces = e.namespaces === undefined ? [] : e.namespaces;
  if (!Array.isArray(namespaces)) {
    fail(`${here}: namespaces must be a list of namespace names or globs, e.g. ["team-a-*"]`);
  }
  (namespaces as unknown[]).forEach((n, i) => {
    if (typeof n !== "string" || n.length > 63 || !NAMESPACE_GLOB.test(n)) {
      fail(
        `${here}: namespaces[${i}] ${JSON.stringify(n)} is not a namespace name or glob ` +
          '(lowercase letters, digits and "-", with "*" for any characters, "?" for one)',
      );
    }
  });
  let namespaceSelector: string | undefined;
  if (e.namespaceSelector !== undefined) {
    if (typeof e.namespaceSelector !== "string" || e.namespaceSelector.trim() === "") {
      fail(`${here}: namespaceSelector must be a label selector string, e.g. "tenant=a"`);
    }
    namespaceSelector = e.namespaceSelector as string;
  }
  if ((namespaces as string[]).length === 0 && namespaceSelector === undefined) {
    fail(
      `${here}: matches no namespace; list the namespaces allowed to use this role ` +
        "(namespaces: [...]) and/or give a namespaceSelector",
    );
  }
  return {
    index,
    role,
    ...(externalId !== undefined ? { externalId } : {}),
    accounts,
    namespaces: namespaces as string[],
    ...(namespaceSelector !== undefined ? { namespaceSelector } : {}),
  };
}

function unknownKeys(
  obj: Record<string, unknown>,
  known: string[],
  where: string,
  fail: (what: string) => never,
): void {
  const unknown = Object.keys(obj).filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    fail(
      `${where} has the unknown key ${JSON.stringify(unknown[0])} (a typo?); the keys are ` +
        known.join(", "),
    );
  }
}

function isObject(v: unknown): boolean {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** "roles[1] (arn:aws:iam::210987654321:role/ecr-pull-team-a)", as messages name an entry. */
export function name(entry: RoleEntry): string {
  return `roles[${entry.index}] (${entry.role})`;
}

/** The distinct label selectors the map uses: one namespace list each, once per run. */
export function selectorsOf(map: RoleMap): string[] {
  return [...new Set(map.roles.flatMap((e) => e.namespaceSelector ?? []))];
}

/** "team-a-*" → /^team-a-.*$/: "*" any characters, "?" one. */
function globRegExp(glob: string): RegExp {
  const body = [...glob].map((ch) => ch === "*" ? ".*" : ch === "?" ? "." : ch).join("");
  return new RegExp(`^${body}$`);
}

/**
 * The namespaces an entry allows: its names and globs, or the namespaces its
 * selector selected (by name, as the API server answered for that selector).
 */
export function allows(
  entry: RoleEntry,
  namespace: string,
  selected: ReadonlyMap<string, ReadonlySet<string>>,
): boolean {
  if (entry.namespaces.some((glob) => globRegExp(glob).test(namespace))) return true;
  return entry.namespaceSelector !== undefined &&
    selected.get(entry.namespaceSelector)?.has(namespace) === true;
}

/**
 * How `account`'s registry is served in `namespace`: the first entry that
 * names the account and allows the namespace; an account the map names but
 * no entry allows here is refused (the admin reserved it to other
 * namespaces); an account the map does not name is served by the base
 * principal unless otherAccounts is deny.
 */
export function resolveRole(
  map: RoleMap,
  account: string,
  namespace: string,
  selected: ReadonlyMap<string, ReadonlySet<string>>,
): RoleChoice {
  const naming = map.roles.filter((e) => e.accounts.includes(account));
  const entry = naming.find((e) => allows(e, namespace, selected));
  if (entry) return { kind: "role", entry };
  if (naming.length > 0) {
    const where = naming.map((e) =>
      `${name(e)} allows ${
        [
          ...e.namespaces,
          ...(e.namespaceSelector ? [`namespaces labelled ${e.namespaceSelector}`] : []),
        ].join(", ")
      }`
    ).join("; ");
    return {
      kind: "refused",
      message: `the role map (${FLAG} ${map.path}) serves account ${account} only through ` +
        `its entries, and none allows namespace ${namespace} (${where}); nothing was written. ` +
        `If this namespace should pull from ${account}, a cluster admin adds it to the ` +
        "namespaces (or namespaceSelector) of the entry that should serve it",
    };
  }
  if (map.otherAccounts === "deny") {
    return {
      kind: "refused",
      message: `the role map (${FLAG} ${map.path}) names no role for account ${account} and ` +
        `serves no other accounts (otherAccounts: deny); nothing was written for namespace ` +
        `${namespace}. A cluster admin adds an entry for ${account} that allows this ` +
        "namespace, or sets otherAccounts: base",
    };
  }
  return { kind: "base" };
}
