import assert from "node:assert/strict";
import { ListFormatError, ListReader } from "../../lib/kube/listscan.ts";

const KEY = "deft.com/kubeecr";
const annotated = (m: unknown) =>
  typeof m === "object" && m !== null &&
  KEY in ((m as { annotations?: object }).annotations ?? {});

// One valid list; each case below changes one thing about it.
const items = [
  {
    metadata: { name: "a", annotations: { [KEY]: "123456789012/us-west-2" } },
    data: { ".dockerconfigjson": "eyJhdXRocyI6e319" },
    type: "kubernetes.io/dockerconfigjson",
  },
  {
    metadata: { name: "b", annotations: { other: "x" }, labels: { l: "[{}]" } },
    data: { ".dockerconfigjson": "A".repeat(300) },
    type: "kubernetes.io/dockerconfigjson",
  },
  {
    // Escapes, brackets and quotes inside strings must not confuse the scanner.
    metadata: { name: 'c"\\', annotations: { [KEY]: '\\"},]{["', x: "\u00e9\u{1F600}" } },
    data: { k: '"\\\\"' },
    type: "kubernetes.io/dockerconfigjson",
  },
];
const list = { kind: "SecretList", metadata: { resourceVersion: "7", continue: "tok" }, items };

/** Feeds `text` in chunks of `size` bytes; returns the kept names and the end result. */
function read(text: string, size: number) {
  const bytes = new TextEncoder().encode(text);
  const reader = new ListReader<{ metadata: { name: string } }>(annotated);
  const kept: unknown[] = [];
  for (let at = 0; at < bytes.length; at += size) {
    kept.push(...reader.push(bytes.subarray(at, at + size)));
  }
  return { kept, end: reader.end() };
}

Deno.test("ListReader keeps exactly the annotated items, whatever the chunking", () => {
  const text = JSON.stringify(list, null, 1);
  const want = items.filter((i) => annotated(i.metadata));
  // Every chunk size from 1 byte up: every boundary falls inside every token once.
  for (let size = 1; size <= text.length; size += size < 64 ? 1 : 97) {
    const { kept, end } = read(text, size);
    assert.deepEqual(kept, want, `chunk size ${size}`);
    assert.deepEqual(end, { continue: "tok" }, `chunk size ${size}`);
  }
});

Deno.test("ListReader: table of list shapes", async (t) => {
  const cases: { name: string; doc: unknown; names: string[]; cont?: string }[] = [
    { name: "no continue token", doc: { ...list, metadata: {} }, names: ["a", 'c"\\'] },
    {
      name: "empty continue token",
      doc: { ...list, metadata: { continue: "" } },
      names: ["a", 'c"\\'],
    },
    {
      name: "items null (empty metadata-only list)",
      doc: { ...list, items: null },
      names: [],
      cont: "tok",
    },
    { name: "no items", doc: { metadata: { continue: "tok" }, items: [] }, names: [], cont: "tok" },
    {
      name: "metadata after data: buffered and decided at the item's end",
      doc: { ...list, items: items.map(({ data, type, metadata }) => ({ data, type, metadata })) },
      names: ["a", 'c"\\'],
      cont: "tok",
    },
    {
      name: "items before the list metadata",
      doc: { items, metadata: { continue: "tok" } },
      names: ["a", 'c"\\'],
      cont: "tok",
    },
    {
      name: "an item without metadata is offered as undefined and dropped",
      doc: { ...list, items: [{ data: {} }] },
      names: [],
      cont: "tok",
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      for (const size of [1, 7, 1 << 20]) {
        const { kept, end } = read(JSON.stringify(c.doc), size);
        assert.deepEqual(
          kept.map((k) => (k as { metadata: { name: string } }).metadata.name),
          c.names,
        );
        assert.deepEqual(end, c.cont ? { continue: c.cont } : {});
      }
    });
  }
});

Deno.test("ListReader refuses a truncated response", () => {
  const text = JSON.stringify(list);
  for (const cut of [1, text.length / 2, text.length - 1]) {
    assert.throws(() => read(text.slice(0, cut), 5), ListFormatError);
  }
});

Deno.test("ListReader never parses an item it drops", () => {
  // A raw tab inside a string is invalid JSON: JSON.parse of the whole page
  // would throw on it. The scanner skips the unannotated item unparsed.
  const text = JSON.stringify(list).replace("A".repeat(300), "A\tA");
  assert.throws(() => JSON.parse(text));
  const { kept } = read(text, 16);
  assert.equal(kept.length, 2);
});

Deno.test("ListReader reports the top level's shape: a list, or what came instead", async (t) => {
  const cases: { name: string; text: string; shape: Record<string, unknown> }[] = [
    {
      name: "a SecretList",
      text: JSON.stringify({ ...list, apiVersion: "v1" }),
      shape: {
        first: "{",
        kind: "SecretList",
        apiVersion: "v1",
        items: "array",
        metadata: true,
        count: 3,
      },
    },
    { name: "{}", text: " {} ", shape: { first: "{", metadata: false, count: 0 } },
    { name: "null", text: "null", shape: { first: "n", metadata: false, count: 0 } },
    { name: "empty", text: "", shape: { metadata: false, count: 0 } },
    {
      name: "an HTML page (not read on)",
      text: '<!DOCTYPE html><script>var x = {"items": [1]}}}</script>',
      shape: { first: "<", metadata: false, count: 0 },
    },
    {
      name: "items null, kind of another list",
      text: '{"kind":"PodList","apiVersion":"v1","metadata":{},"items":null}',
      shape: {
        first: "{",
        kind: "PodList",
        apiVersion: "v1",
        items: "null",
        metadata: true,
        count: 0,
      },
    },
    {
      name: "items an object",
      text: '{"kind":"SecretList","items":{"a":1}}',
      shape: { first: "{", kind: "SecretList", items: "object", metadata: false, count: 0 },
    },
    {
      name: "a second value after the object",
      text: '{"kind":"SecretList"} {"kind":"x"}',
      shape: { first: "{", kind: "SecretList", metadata: false, count: 0 },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      for (const size of [1, 7, 1 << 20]) {
        const bytes = new TextEncoder().encode(c.text);
        const reader = new ListReader(annotated);
        for (let at = 0; at < bytes.length; at += size) reader.push(bytes.subarray(at, at + size));
        reader.end();
        assert.deepEqual(reader.shape, c.shape, `chunk size ${size}`);
      }
    });
  }
});
