// Reads a Kubernetes list response chunk by chunk and keeps only the items
// whose metadata passes a test, so a page's unannotated Secrets are never
// buffered or parsed. A page of 500 Secrets can hold hundreds of MiB of other
// people's data (a 500 KiB pull secret each, say); JSON.parse of the whole
// page would hold it twice. Pure: bytes in, parsed items out.
//
// It relies on nothing but JSON grammar. The API server writes each item's
// `metadata` before its `data`, so an unwanted item is dropped as soon as its
// metadata has been read; an item whose metadata comes last is buffered whole
// and decided at its end, which is merely slower.

import { concatBytes } from "../core/bytes.ts";
import { KubeEcrError } from "../core/errors.ts";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

// Depths (number of open containers) at which the parts of a list sit:
// `{ "metadata": {..}, "items": [ { "metadata": {..}, "data": ... } ] }`.
const LIST = 1;
const ITEMS = 2;
const ITEM = 3;
const ITEM_FIELD = 4;

/** The list response ended before its JSON did, or is not a Kubernetes list. */
export class ListFormatError extends KubeEcrError {}

/**
 * What the response's top level looked like, so the caller can tell a list
 * from `{}`, `null` or an HTML page: never any item's content.
 */
export interface ListShape {
  /** The first byte that is not whitespace: "{" for a list; undefined for an empty body. */
  first?: string;
  /** Top-level "kind" and "apiVersion", when they are strings. */
  kind?: string;
  apiVersion?: string;
  /** What top-level "items" was: a list has an array (a metadata-only list with none, null). */
  items?: "array" | "object" | "null" | "other";
  /** Top-level "metadata" was an object. */
  metadata: boolean;
  /** Items seen in "items" (kept or not). */
  count: number;
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** The raw bytes of one JSON value, collected across chunk boundaries. */
class Capture {
  #parts: Uint8Array[] = [];
  #start = 0;
  active = false;

  begin(at: number): void {
    this.#parts = [];
    this.#start = at;
    this.active = true;
  }

  /**
   * At the end of a chunk: copy what is captured so far (the reader reuses
   * the chunk's buffer for the next read); go on at 0 in the next chunk.
   */
  carry(chunk: Uint8Array): void {
    if (!this.active) return;
    this.#parts.push(chunk.slice(this.#start));
    this.#start = 0;
  }

  /** Ends the capture with the byte at `at` and returns the value's JSON, parsed. */
  finish(chunk: Uint8Array, at: number): unknown {
    this.#parts.push(chunk.subarray(this.#start, at + 1));
    this.active = false;
    const parts = this.#parts;
    this.#parts = [];
    const bytes = parts.length === 1 ? parts[0] : concatBytes(parts);
    return JSON.parse(DECODER.decode(bytes));
  }

  drop(): void {
    this.#parts = [];
    this.active = false;
  }
}

const DECODER = new TextDecoder();

type ItemState = "none" | "undecided" | "keep" | "skip";

export class ListReader<T> {
  readonly #keep: (metadata: unknown) => boolean;
  #depth = 0;
  /** Per depth: the container is an object and the next string is a key. */
  #isObject: boolean[] = [];
  #expectKey: boolean[] = [];
  #inString = false;
  /** The previous chunk ended inside a string right after a backslash. */
  #escapeNext = false;
  #listKey: string | undefined;
  #itemKey: string | undefined;
  #item: ItemState = "none";
  #continue: string | undefined;
  readonly #shape: ListShape = { metadata: false, count: 0 };
  /** The body does not start with "{" (or goes on after it): the rest is not read. */
  #notAnObject = false;
  readonly #value = new Capture();
  readonly #key = new Capture();
  readonly #meta = new Capture();
  readonly #itemBytes = new Capture();

  /** `keep` sees each item's `metadata` (or undefined) and says whether to keep the item. */
  constructor(keep: (metadata: unknown) => boolean) {
    this.#keep = keep;
  }

  /**
   * Feeds the next chunk; returns the kept items that it completed, parsed.
   * The chunk is not kept: its buffer may be reused once this returns.
   */
  push(chunk: Uint8Array): T[] {
    const kept: T[] = [];
    if (this.#notAnObject) return kept;
    const n = chunk.length;
    let nextBackslash = -2; // -2: not searched yet in this chunk
    let i = 0;
    while (i < n) {
      if (this.#inString) {
        if (this.#escapeNext) {
          this.#escapeNext = false;
          i++;
          continue;
        }
        // Native searches instead of a byte loop: a Secret's data is one long
        // base64 string, skipped here at memchr speed.
        if (nextBackslash !== -1 && nextBackslash < i) nextBackslash = chunk.indexOf(BACKSLASH, i);
        const quote = chunk.indexOf(QUOTE, i);
        const end = quote === -1 ? n : quote;
        if (nextBackslash !== -1 && nextBackslash < end) {
          if (nextBackslash + 1 >= n) this.#escapeNext = true;
          i = nextBackslash + 2;
          continue;
        }
        if (quote === -1) break;
        this.#inString = false;
        if (this.#key.active) this.#setKey(this.#key.finish(chunk, quote) as string);
        else if (this.#value.active) this.#setValue(this.#value.finish(chunk, quote) as string);
        i = quote + 1;
        continue;
      }
      const c = chunk[i];
      if (this.#depth === 0 && !WHITESPACE.has(c)) {
        // Only one JSON object may stand at the top; anything else (an HTML
        // page, null, a second value) is not a list, and is not read on.
        if (this.#shape.first !== undefined || c !== OPEN_OBJECT) {
          this.#shape.first ??= String.fromCharCode(c);
          this.#notAnObject = true;
          return kept;
        }
        this.#shape.first = "{";
      }
      if (this.#depth === LIST && this.#listKey === "items" && !this.#expectKey[LIST]) {
        // The first byte of "items"' value, when it is not an array or object.
        if (c === 0x6e) this.#shape.items ??= "null";
        else if (c !== OPEN_ARRAY && c !== OPEN_OBJECT && !WHITESPACE.has(c) && c !== COMMA) {
          this.#shape.items ??= "other";
        }
      }
      if (c === QUOTE) {
        this.#inString = true;
        if (this.#expectKey[this.#depth] && this.#tracksKeys()) this.#key.begin(i);
        else if (this.#depth === LIST && this.#isTopString()) this.#value.begin(i);
      } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        this.#open(c === OPEN_OBJECT, i);
      } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
        const item = this.#close(chunk, i);
        if (item !== undefined) kept.push(item as T);
      } else if (c === COLON) {
        this.#expectKey[this.#depth] = false;
      } else if (c === COMMA) {
        this.#expectKey[this.#depth] = this.#isObject[this.#depth];
      }
      i++;
    }
    this.#key.carry(chunk);
    this.#value.carry(chunk);
    this.#meta.carry(chunk);
    this.#itemBytes.carry(chunk);
    return kept;
  }

  /**
   * After the last chunk: the list's continue token, if any. A body that is
   * not a JSON object is not read to its end, so it is not "truncated" either.
   */
  end(): { continue?: string } {
    if (!this.#notAnObject && (this.#depth !== 0 || this.#inString)) {
      throw new ListFormatError("the list response ended in the middle of its JSON");
    }
    return this.#continue ? { continue: this.#continue } : {};
  }

  /** What the top level looked like so far (see ListShape). */
  get shape(): ListShape {
    return { ...this.#shape };
  }

  /** True once the body is known not to be a JSON object: nothing more is read. */
  get notAnObject(): boolean {
    return this.#notAnObject;
  }

  /** "kind" and "apiVersion" at the top: the only string values read there. */
  #isTopString(): boolean {
    return !this.#expectKey[LIST] && (this.#listKey === "kind" || this.#listKey === "apiVersion");
  }

  #setValue(value: string): void {
    if (this.#listKey === "kind") this.#shape.kind = value;
    else if (this.#listKey === "apiVersion") this.#shape.apiVersion = value;
  }

  #tracksKeys(): boolean {
    return this.#depth === LIST || (this.#depth === ITEM && this.#item !== "none");
  }

  #setKey(key: string): void {
    if (this.#depth === LIST) this.#listKey = key;
    else this.#itemKey = key;
  }

  #open(isObject: boolean, at: number): void {
    const parent = this.#depth;
    this.#depth++;
    this.#isObject[this.#depth] = isObject;
    this.#expectKey[this.#depth] = isObject;
    if (parent === LIST && this.#listKey === "items") {
      this.#shape.items = isObject ? "object" : "array";
    }
    if (parent === LIST && this.#listKey === "metadata") this.#shape.metadata = isObject;
    if (!isObject) return;
    if (parent === LIST && this.#listKey === "metadata") {
      this.#meta.begin(at);
    } else if (parent === ITEMS && this.#listKey === "items" && !this.#isObject[ITEMS]) {
      this.#shape.count++;
      this.#item = "undecided";
      this.#itemKey = undefined;
      this.#itemBytes.begin(at);
    } else if (parent === ITEM && this.#item === "undecided" && this.#itemKey === "metadata") {
      this.#meta.begin(at);
    }
  }

  /** Closes a container; returns a kept item when it was one. */
  #close(chunk: Uint8Array, at: number): unknown {
    const depth = this.#depth--;
    if (depth === 0) throw new ListFormatError("the list response has an unbalanced bracket");
    if (depth === ITEMS && this.#meta.active && this.#item === "none") {
      const meta = this.#meta.finish(chunk, at) as { continue?: unknown } | null;
      const token = meta?.continue;
      this.#continue = typeof token === "string" && token !== "" ? token : undefined;
    } else if (depth === ITEM_FIELD && this.#meta.active) {
      const keep = this.#keep(this.#meta.finish(chunk, at));
      this.#item = keep ? "keep" : "skip";
      if (!keep) this.#itemBytes.drop();
    } else if (depth === ITEM && this.#item !== "none") {
      const state = this.#item;
      this.#item = "none";
      if (state === "skip") return undefined;
      const item = this.#itemBytes.finish(chunk, at) as { metadata?: unknown };
      if (state === "keep" || this.#keep(item?.metadata)) return item;
    }
    return undefined;
  }
}
