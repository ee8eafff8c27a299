// Merges ECR credentials into a Secret's `.dockerconfigjson` without losing
// anything the user put there (other registries, credsStore, HttpHeaders...).
// Pure: text in, text out. Error messages describe the *shape* of a bad value,
// never its content, because that content may hold other passwords.

import { DockerConfigError } from "./errors.ts";

export interface EcrCredential {
  /** Registry host, e.g. "123456789012.dkr.ecr.us-west-2.amazonaws.com". */
  host: string;
  /** The ECR password (the part after "AWS:" in the decoded token). */
  password: string;
}

type JsonObject = Record<string, unknown>;

const FIX = 'must be a JSON object like {"auths":{}}; fix or empty the .dockerconfigjson key';

/**
 * Hosts in `auths` that hold a usable credential; used to decide whether a
 * refresh is due. An entry that is not an object or has neither `auth` nor
 * `password` (e.g. someone blanked it by hand) does not count, so the next
 * run repairs it instead of skipping the Secret as fresh.
 */
export function readAuthHosts(raw: string | undefined): Set<string> {
  const { auths } = parse(raw);
  const usable = (e: unknown) =>
    isObject(e) && [e.auth, e.password].some((v) => typeof v === "string" && v !== "");
  return new Set(Object.keys(auths).filter((h) => usable(auths[h])));
}

/**
 * Sets `auths[host]` for each credential, keeping the existing entry's other
 * keys (e.g. "email") and every other key of the document, in order.
 * Missing or empty input yields `{"auths":{...}}`: a freshly created Secret
 * may have no data yet.
 */
export function mergeDockerConfig(raw: string | undefined, creds: EcrCredential[]): string {
  const { doc, auths } = parse(raw);
  for (const { host, password } of creds) {
    const prev = auths[host];
    // Keep a previous entry's extra keys only if it was an object; a scalar
    // under our own host is ours to replace.
    const base = isObject(prev) ? prev : {};
    auths[host] = {
      ...base,
      username: "AWS",
      password,
      auth: base64(`AWS:${password}`),
    };
  }
  // Reassigning an existing key keeps its position, so key order is preserved.
  doc.auths = auths;
  return JSON.stringify(doc);
}

function parse(raw: string | undefined): { doc: JsonObject; auths: JsonObject } {
  if (raw === undefined || raw.trim() === "") return { doc: {}, auths: {} };
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (err) {
    // V8's SyntaxError messages can quote a snippet of the input
    // (`Unexpected token 'p', ..."{"auths": passwordXY"... is not valid JSON`),
    // which could be a secret: keep only the position, if any.
    throw new DockerConfigError(
      `.dockerconfigjson is not valid JSON: syntax error${position(err)}; ${FIX}`,
    );
  }
  if (!isObject(doc)) {
    throw new DockerConfigError(`.dockerconfigjson is ${kindOf(doc)}; ${FIX}`);
  }
  if (!Object.hasOwn(doc, "auths")) return { doc, auths: {} };
  if (!isObject(doc.auths)) {
    throw new DockerConfigError(
      `.dockerconfigjson has auths of type ${typeOf(doc.auths)}; ${FIX}`,
    );
  }
  return { doc, auths: doc.auths };
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** "null", "array", "string", "number", "boolean", "object". */
function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/** "a JSON array", "JSON null", "a JSON string" ... for the top level. */
function kindOf(v: unknown): string {
  const t = typeOf(v);
  return t === "null" ? "JSON null" : `a JSON ${t}`;
}

/** " (at position 12)" extracted from a JSON.parse error, else "". */
function position(err: unknown): string {
  const m = err instanceof Error ? /position (\d+)/.exec(err.message) : null;
  return m ? ` (at position ${m[1]})` : "";
}

/** Base64 of the UTF-8 bytes, as Docker expects in `auth`. */
function base64(s: string): string {
  const bytes = new TextEncoder().encode(s);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}
