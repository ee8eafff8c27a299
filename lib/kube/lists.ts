// Reading a list answer (SecretList, PartialObjectMetadataList): streamed
// through ListReader, and refused with UnexpectedAnswerError when what came
// back is not the list asked for (a proxy, a login page, a wrong server).

import { concatBytes } from "../core/bytes.ts";
import { ListReader, type ListShape } from "./listscan.ts";
import { hostOf } from "./transport.ts";
import { KubeApiError, UnexpectedAnswerError } from "../core/store.ts";

/** Bytes read from a list response at a time, into one reused buffer. */
const READ_BUFFER = 64 * 1024;

/**
 * Reads a list response with ListReader, keeping the items `keep` accepts.
 * One buffer is reused for every read (a BYOB reader): a page of large
 * Secrets would otherwise leave megabytes of chunks for the GC to find, and
 * the process's peak memory would follow the size of Secrets it skips.
 */
export async function readList<T>(
  res: Response,
  keep: (metadata: unknown) => boolean,
  expected: ListKind,
  operation: string,
  target: { namespace?: string },
) {
  const type = res.headers.get("content-type") ?? "";
  const json = /^application\/json\b/i.test(type);
  const list = new ListReader<T>(keep);
  const items: T[] = [];
  // The first bytes, shown only when the body is not JSON (an HTML page).
  let head: Uint8Array = new Uint8Array(0);
  let size = 0;
  if (res.body) {
    const reader = res.body.getReader({ mode: "byob" });
    let buffer = new ArrayBuffer(READ_BUFFER);
    for (;;) {
      const { value, done } = await reader.read(new Uint8Array(buffer));
      if (done || !value) break;
      size += value.length;
      if (head.length < HEAD_BYTES) {
        head = concatBytes([head, value.subarray(0, HEAD_BYTES - head.length)]);
      }
      if (json) items.push(...list.push(value));
      if (!json || list.notAnObject) {
        // Not a list: nothing more is worth reading.
        await reader.cancel();
        break;
      }
      buffer = value.buffer as ArrayBuffer;
    }
  }
  const problem = size === 0
    ? "the body is empty"
    : !json
    ? "it is not JSON"
    : list.notAnObject && list.shape.first === "{"
    ? "more follows its JSON object"
    : notAList(list.shape, expected);
  if (problem) {
    // What came back, beside what is wrong with it (an empty body needs saying once).
    const what = size === 0
      ? ""
      : json
      ? `, ${describeShape(list.shape)}`
      : `, a body starting ${quoteHead(head)}`;
    throw new UnexpectedAnswerError(
      operation,
      res.status,
      target,
      `${operation} ${KubeApiError.describeTarget(target)}: ${
        hostOf(res.url)
      } answered HTTP ${res.status} with something that is not a ${expected.apiVersion} ` +
        `${expected.kind} (${problem}; content-type ${
          JSON.stringify(type || "none")
        }${what}): a proxy, a login page or a wrong server URL answered instead of the ` +
        "Kubernetes API server; check the kubeconfig's server (in a pod, " +
        "KUBERNETES_SERVICE_HOST) and any proxy in between",
    );
  }
  return { items, ...list.end() };
}

/** What a list answer must be. */
export interface ListKind {
  kind: string;
  apiVersion: string;
  /** A metadata-only list sends "items": null when it has none. */
  nullItems?: boolean;
}

export const SECRET_LIST: ListKind = { kind: "SecretList", apiVersion: "v1" };
export const METADATA_LIST: ListKind = {
  kind: "PartialObjectMetadataList",
  apiVersion: "meta.k8s.io/v1",
  nullItems: true,
};

/** Bytes of a non-JSON body shown in the message: enough to recognise an HTML page. */
const HEAD_BYTES = 64;

function notAList(shape: ListShape, expected: ListKind): string | undefined {
  if (shape.first === undefined) return "the body is empty";
  if (shape.first !== "{") return "it is not a JSON object";
  if (shape.kind !== expected.kind) return `its kind is not ${expected.kind}`;
  if (shape.apiVersion !== expected.apiVersion) {
    return `its apiVersion is not ${expected.apiVersion}`;
  }
  if (shape.items !== "array" && !(expected.nullItems && shape.items === "null")) {
    return "its items is not an array";
  }
  if (!shape.metadata) return "it has no metadata";
  return undefined;
}

/** The top level of a JSON answer, in words: its type names, never an item's content. */
function describeShape(shape: ListShape): string {
  if (shape.first === undefined) return "an empty body";
  if (shape.first !== "{") {
    const what = { "[": "a JSON array", "n": "JSON null", '"': "a JSON string" }[shape.first] ??
      "a JSON scalar or something that is not JSON";
    return what;
  }
  const parts = [
    `kind ${shape.kind === undefined ? "missing" : JSON.stringify(shape.kind.slice(0, 60))}`,
    `apiVersion ${
      shape.apiVersion === undefined ? "missing" : JSON.stringify(shape.apiVersion.slice(0, 60))
    }`,
    `items ${shape.items ?? "missing"}`,
    `metadata ${shape.metadata ? "present" : "missing"}`,
  ];
  return `a JSON object with ${parts.join(", ")}`;
}

/** The first bytes of a body as JSON-escaped text (control characters visible). */
function quoteHead(head: Uint8Array): string {
  const text = new TextDecoder().decode(head);
  return `${JSON.stringify(text)}${head.length >= HEAD_BYTES ? "…" : ""}`;
}
