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
export class ListFormatError extends Error {}

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

  /** At the end of a chunk: keep what is captured so far; go on at 0 in the next. */
  carry(chunk: Uint8Array): void {
    if (!this.active) return;
    this.#parts.push(chunk.subarray(this.#start));
    this.#start = 0;
  }

  /** Ends the capture with the byte at `at` and returns the value's JSON, parsed. */
  finish(chunk: Uint8Array, at: number): unknown {
    this.#parts.push(chunk.subarray(this.#start, at + 1));
    this.active = false;
    const parts = this.#parts;
    this.#parts = [];
    const bytes = parts.length === 1 ? parts[0] : concat(parts);
    return JSON.parse(DECODER.decode(bytes));
  }

  drop(): void {
    this.#parts = [];
    this.active = false;
  }
}

const DECODER = new TextDecoder();

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

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
  readonly #key = new Capture();
  readonly #meta = new Capture();
  readonly #itemBytes = new Capture();

  /** `keep` sees each item's `metadata` (or undefined) and says whether to keep the item. */
  constructor(keep: (metadata: unknown) => boolean) {
    this.#keep = keep;
  }

  /** Feeds the next chunk; returns the kept items that it completed, parsed. */
  push(chunk: Uint8Array): T[] {
    const kept: T[] = [];
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
        i = quote + 1;
        continue;
      }
      const c = chunk[i];
      if (c === QUOTE) {
        this.#inString = true;
        if (this.#expectKey[this.#depth] && this.#tracksKeys()) this.#key.begin(i);
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
    this.#meta.carry(chunk);
    this.#itemBytes.carry(chunk);
    return kept;
  }

  /** After the last chunk: the list's continue token, if any. */
  end(): { continue?: string } {
    if (this.#depth !== 0 || this.#inString) {
      throw new ListFormatError("the list response ended in the middle of its JSON");
    }
    return this.#continue ? { continue: this.#continue } : {};
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
    if (!isObject) return;
    if (parent === LIST && this.#listKey === "metadata") {
      this.#meta.begin(at);
    } else if (parent === ITEMS && this.#listKey === "items" && !this.#isObject[ITEMS]) {
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
