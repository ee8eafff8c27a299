// Writes ECR credentials into a Secret's `.dockerconfigjson` by editing the
// JSON text in place: only the value of `auths["<host>"]` for each ECR host
// changes (or is inserted); every other byte — other registries, key order,
// whitespace, escapes, number spelling such as 12345678901234567890 — stays.
//
// Why an own scanner and not npm:jsonc-parser (modify + applyEdits): that
// parser accepts comments and trailing commas, so strict validation would
// have to be written anyway; the duplicate-key rules below need the member
// lists with their offsets, which the scanner produces as a by-product; and
// the edits we make are two shapes (replace one value, append members), a
// splice each. One strict RFC 8259 scanner of ~100 lines, no dependency.
//
// Pure: bytes in, bytes out (and the exact text of each entry written, which
// due.ts fingerprints). Error messages describe the *shape* and the
// position of a bad value, never its content: it may hold other passwords.

import { DockerConfigError } from "./errors.ts";

export interface EcrCredential {
  /** Registry host, e.g. "123456789012.dkr.ecr.us-west-2.amazonaws.com". */
  host: string;
  /** The ECR password (the part after "AWS:" in the decoded token). */
  password: string;
}

const FIX = 'must be a JSON object like {"auths":{}}; fix or empty the .dockerconfigjson key';
// Deep enough for any docker config; shallow enough that a hostile document
// cannot exhaust the stack.
const MAX_DEPTH = 512;

/**
 * The text of `.dockerconfigjson`. Strict UTF-8: a byte sequence that is not
 * UTF-8 (e.g. a lone 0xE9 in another registry's password) is refused rather
 * than "repaired" to U+FFFD, which would change that password. A BOM is kept
 * as a character (and then refused by the scanner, as the kubelet refuses it).
 */
export function decodeDockerConfig(bytes: Uint8Array | undefined): string | undefined {
  if (bytes === undefined) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new DockerConfigError(
      ".dockerconfigjson is not UTF-8 text (JSON must be UTF-8); it was left as it is: " +
        "re-create it, e.g. with 'kubectl create secret docker-registry'",
    );
  }
}

/**
 * The exact text of `auths["<host>"]` for each of `hosts` present in the
 * document (absent hosts are not in the map). Throws DockerConfigError for
 * what `setEcrEntries` would refuse, so a Secret that cannot be written is
 * reported before any token is fetched.
 */
export function readEcrEntries(
  bytes: Uint8Array | undefined,
  hosts: string[],
): Map<string, string> {
  const text = decodeDockerConfig(bytes);
  const out = new Map<string, string>();
  if (text === undefined || text.trim() === "") return out;
  const { auths } = locate(text, hosts);
  if (auths?.kind !== "object") return out;
  for (const host of hosts) {
    const m = auths.members.find((m) => m.key === host);
    if (m) out.set(host, text.slice(m.value.start, m.value.end));
  }
  return out;
}

/**
 * Sets `auths[host] = {"username":"AWS","password":…,"auth":base64("AWS:"+password)}`
 * for each credential. An existing object entry keeps its other members
 * (e.g. "email") and its layout; only the values of username/password/auth
 * are replaced (every spelling Go's case-insensitive decoder would read as
 * one of them). Missing or empty input yields `{"auths":{...}}`: a freshly
 * created Secret may have no data yet. Returns the new bytes and the exact
 * text written for each host (what the status fingerprints).
 */
export function setEcrEntries(
  bytes: Uint8Array | undefined,
  creds: EcrCredential[],
): { bytes: Uint8Array; entries: Map<string, string> } {
  const text = decodeDockerConfig(bytes);
  const entries = new Map<string, string>();
  const fresh = (c: EcrCredential) => {
    const entry = `{"username":"AWS","password":${JSON.stringify(c.password)},"auth":"${
      authOf(c.password)
    }"}`;
    entries.set(c.host, entry);
    return entry;
  };
  const objectOf = (cs: EcrCredential[]) =>
    `{${cs.map((c) => `${JSON.stringify(c.host)}:${fresh(c)}`).join(",")}}`;

  if (text === undefined || text.trim() === "") {
    const out = `{"auths":${objectOf(creds)}}`;
    return { bytes: new TextEncoder().encode(out), entries };
  }
  const { root, auths } = locate(text, creds.map((c) => c.host));
  const edits: Edit[] = [];
  if (auths === undefined) {
    edits.push(insertMembers(text, root, [`"auths"`], [objectOf(creds)]));
  } else if (auths.kind === "null") {
    edits.push({ start: auths.start, end: auths.end, text: objectOf(creds) });
  } else if (auths.kind === "object") {
    const missing: EcrCredential[] = [];
    for (const c of creds) {
      const m = auths.members.find((m) => m.key === c.host);
      if (!m) missing.push(c);
      else if (m.value.kind !== "object") {
        // A scalar under our own host is ours to replace.
        edits.push({ start: m.value.start, end: m.value.end, text: fresh(c) });
      } else {
        const entry = editEntry(text, m.value, c.password);
        entries.set(c.host, entry);
        edits.push({ start: m.value.start, end: m.value.end, text: entry });
      }
    }
    if (missing.length > 0) {
      edits.push(
        insertMembers(text, auths, missing.map((c) => JSON.stringify(c.host)), missing.map(fresh)),
      );
    }
  }
  return { bytes: new TextEncoder().encode(applyEdits(text, edits)), entries };
}

/** Base64 of "AWS:<password>" in UTF-8, as Docker expects in `auth`. */
export function authOf(password: string): string {
  return new TextEncoder().encode(`AWS:${password}`).toBase64();
}

// --- editing ---------------------------------------------------------------

interface Edit {
  start: number;
  end: number;
  text: string;
}

function applyEdits(text: string, edits: Edit[]): string {
  // From the end backwards, so earlier offsets stay valid. Edits never overlap:
  // replacements cover distinct values, insertions sit after the last member.
  let out = text;
  for (const e of [...edits].sort((a, b) => b.start - a.start)) {
    out = out.slice(0, e.start) + e.text + out.slice(e.end);
  }
  return out;
}

/**
 * Appends members after the object's last one, copying its layout: the text
 * between its first two members as the separator (", " or ",\n    "), the
 * whitespace around its first key and colon, so a pretty-printed document
 * stays pretty: `,\n    "host": {...}`.
 */
function insertMembers(text: string, obj: ObjectNode, keys: string[], values: string[]): Edit {
  const [first, second] = obj.members;
  const last = obj.members.at(-1);
  const lead = first ? text.slice(obj.start + 1, first.keyStart) : "";
  const colon = first ? text.slice(first.keyEnd, first.value.start) : ":";
  // With one member to copy from: `{"auth": "…"}` (space after the colon) gets ", ".
  const sep = second
    ? text.slice(first.value.end, second.keyStart)
    : lead === "" && colon.endsWith(" ")
    ? ", "
    : `,${lead}`;
  const members = keys.map((k, i) => `${k}${colon}${values[i]}`);
  if (!last) {
    return { start: obj.start + 1, end: obj.start + 1, text: members.join(",") };
  }
  return { start: last.value.end, end: last.value.end, text: sep + members.join(sep) };
}

/** The entry object with username/password/auth set; its other bytes kept. */
function editEntry(text: string, entry: ObjectNode, password: string): string {
  const want: Record<string, string> = {
    username: '"AWS"',
    password: JSON.stringify(password),
    auth: `"${authOf(password)}"`,
  };
  const edits: Edit[] = [];
  const seen = new Set<string>();
  for (const m of entry.members) {
    const name = goFold(m.key);
    if (Object.hasOwn(want, name)) {
      seen.add(name);
      edits.push({ start: m.value.start, end: m.value.end, text: want[name] });
    }
  }
  const missing = Object.keys(want).filter((k) => !seen.has(k));
  if (missing.length > 0) {
    edits.push(
      insertMembers(text, entry, missing.map((k) => `"${k}"`), missing.map((k) => want[k])),
    );
  }
  const shifted = edits.map((e) => ({
    ...e,
    start: e.start - entry.start,
    end: e.end - entry.start,
  }));
  return applyEdits(text.slice(entry.start, entry.end), shifted);
}

/**
 * How Go's encoding/json (the kubelet's decoder) matches a key to a struct
 * field: case-insensitively, with "ſ" (U+017F) folding to "s" and the Kelvin
 * sign to "k". `"Auths"` fills the same field as `"auths"`.
 */
function goFold(key: string): string {
  return key.replaceAll("\u017f", "s").replaceAll("\u212a", "k").toLowerCase();
}

// --- what the document means -----------------------------------------------

/**
 * The top-level object and its `auths` value (undefined when absent). Refuses
 * the documents where the kubelet and KubeECR would read different things:
 * two top-level keys the kubelet reads as `auths` (it merges both maps, an
 * edit of one would drop the other's registries), and an ECR host appearing
 * twice under `auths` (the kubelet takes the last one).
 */
function locate(text: string, hosts: string[]): { root: ObjectNode; auths?: Node } {
  const root = new Scanner(text).document();
  if (root.kind !== "object") {
    throw new DockerConfigError(`.dockerconfigjson is ${kindOf(root)}; ${FIX}`);
  }
  const authsMembers = root.members.filter((m) => goFold(m.key) === "auths");
  if (authsMembers.length > 1) {
    throw new DockerConfigError(
      `.dockerconfigjson has ${authsMembers.length} top-level "auths" keys (the kubelet merges ` +
        "them, an edit would not): merge them into one auths object; it was left as it is",
    );
  }
  const member = authsMembers[0];
  if (member === undefined) return { root };
  if (member.key !== "auths") {
    throw new DockerConfigError(
      `.dockerconfigjson spells its "auths" key as ${JSON.stringify(member.key.slice(0, 16))} ` +
        '(the kubelet reads it as auths): rename it to "auths"; it was left as it is',
    );
  }
  const auths = member.value;
  if (auths.kind !== "object" && auths.kind !== "null") {
    throw new DockerConfigError(`.dockerconfigjson has auths of type ${auths.kind}; ${FIX}`);
  }
  if (auths.kind === "object") {
    for (const host of hosts) {
      const n = auths.members.filter((m) => m.key === host).length;
      if (n > 1) {
        throw new DockerConfigError(
          `.dockerconfigjson has ${n} entries for ${host} under auths (the kubelet uses the ` +
            "last one): delete all but one; it was left as it is",
        );
      }
    }
  }
  return { root, auths };
}

/** "a JSON array", "JSON null", "a JSON string" ... for the top level. */
function kindOf(n: Node): string {
  return n.kind === "null" ? "JSON null" : `a JSON ${n.kind}`;
}

// --- strict JSON scanner (RFC 8259) ----------------------------------------

interface Member {
  /** The key, unescaped ("\u0061uths" is "auths", as for every JSON reader). */
  key: string;
  keyStart: number;
  keyEnd: number;
  value: Node;
}
interface ObjectNode {
  kind: "object";
  start: number;
  end: number;
  members: Member[];
}
type Node = ObjectNode | {
  kind: "array" | "string" | "number" | "boolean" | "null";
  start: number;
  end: number;
};

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
/**
 * Characters a JSON string holds as they are: not the quote, the backslash or
 * a control character (U+0000-U+001F, which JSON allows only escaped: the
 * range is the point, hence the lint exception).
 */
// deno-lint-ignore no-control-regex
const PLAIN = /[^"\\\u0000-\u001f]*/y;

class Scanner {
  #pos = 0;
  constructor(readonly text: string) {}

  document(): Node {
    this.#ws();
    const v = this.#value(0);
    this.#ws();
    if (this.#pos !== this.text.length) this.#fail("unexpected data after the JSON value");
    return v;
  }

  #value(depth: number): Node {
    if (depth > MAX_DEPTH) this.#fail(`nested deeper than ${MAX_DEPTH} levels`);
    const start = this.#pos;
    const c = this.text[start];
    if (c === "{") return this.#object(depth);
    if (c === "[") {
      this.#pos++;
      this.#ws();
      if (this.text[this.#pos] !== "]") {
        for (;;) {
          this.#value(depth + 1);
          this.#ws();
          if (this.text[this.#pos] === "]") break;
          this.#expect(",");
          this.#ws();
        }
      }
      this.#pos++;
      return { kind: "array", start, end: this.#pos };
    }
    if (c === '"') {
      this.#string();
      return { kind: "string", start, end: this.#pos };
    }
    for (const [word, kind] of [["true", "boolean"], ["false", "boolean"], ["null", "null"]]) {
      if (this.text.startsWith(word, start)) {
        this.#pos += word.length;
        return { kind: kind as "boolean" | "null", start, end: this.#pos };
      }
    }
    NUMBER.lastIndex = start;
    if (NUMBER.test(this.text)) {
      this.#pos = NUMBER.lastIndex;
      return { kind: "number", start, end: this.#pos };
    }
    return this.#fail(c === undefined ? "unexpected end of the document" : "expected a value");
  }

  #object(depth: number): ObjectNode {
    const start = this.#pos++;
    const members: Member[] = [];
    this.#ws();
    if (this.text[this.#pos] !== "}") {
      for (;;) {
        const keyStart = this.#pos;
        if (this.text[keyStart] !== '"') this.#fail("expected a string key");
        this.#string();
        const keyEnd = this.#pos;
        this.#ws();
        this.#expect(":");
        this.#ws();
        const value = this.#value(depth + 1);
        const raw = this.text.slice(keyStart + 1, keyEnd - 1);
        members.push({
          // Unescaped only when it has escapes: most keys are plain host names.
          key: raw.includes("\\") ? JSON.parse(this.text.slice(keyStart, keyEnd)) : raw,
          keyStart,
          keyEnd,
          value,
        });
        this.#ws();
        if (this.text[this.#pos] === "}") break;
        this.#expect(",");
        this.#ws();
      }
    }
    this.#pos++;
    return { kind: "object", start, end: this.#pos, members };
  }

  #string(): void {
    const t = this.text;
    let i = this.#pos + 1;
    for (;;) {
      // Skip the run of plain characters in one native step: a token's
      // password and auth are thousands of them, scanned on every read and
      // every write of the Secret.
      PLAIN.lastIndex = i;
      PLAIN.test(t);
      i = PLAIN.lastIndex;
      const c = t.charCodeAt(i);
      if (Number.isNaN(c)) {
        this.#pos = i;
        this.#fail("unterminated string");
      }
      if (c === 0x22) break;
      if (c < 0x20) {
        this.#pos = i;
        this.#fail("control character inside a string (escape it)");
      }
      // The only character PLAIN stops at that is left: a backslash.
      const e = t[i + 1];
      if (e === "u" && /^[0-9a-fA-F]{4}$/.test(t.slice(i + 2, i + 6))) i += 6;
      else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
      else {
        this.#pos = i;
        this.#fail("invalid escape in a string");
      }
    }
    this.#pos = i + 1;
  }

  #ws(): void {
    const t = this.text;
    while (" \t\n\r".includes(t[this.#pos] ?? "x")) this.#pos++;
  }

  #expect(c: string): void {
    if (this.text[this.#pos] !== c) {
      this.#fail(
        this.#pos >= this.text.length ? "unexpected end of the document" : `expected "${c}"`,
      );
    }
    this.#pos++;
  }

  /** Line and column only: the text around the error may be a password. */
  #fail(what: string): never {
    const before = this.text.slice(0, this.#pos);
    const line = before.split("\n").length;
    const column = this.#pos - before.lastIndexOf("\n");
    throw new DockerConfigError(
      `.dockerconfigjson is not valid JSON: ${what} at line ${line}, column ${column}; ${FIX}`,
    );
  }
}
