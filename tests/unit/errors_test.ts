import assert from "node:assert/strict";
import {
  AnnotationError,
  ConfigError,
  describeError,
  DockerConfigError,
  KubeEcrError,
  refString,
} from "../../lib/core/errors.ts";
import { KubeApiError, UnexpectedAnswerError } from "../../lib/core/store.ts";

Deno.test("error classes carry their name, fields and cause", () => {
  const cause = new Error("root");
  const cfg = new ConfigError("--concurrency", "bad", { cause });
  assert.ok(cfg instanceof KubeEcrError && cfg instanceof Error);
  assert.equal(cfg.name, "ConfigError");
  assert.equal(cfg.flag, "--concurrency");
  assert.equal(cfg.exitCode, 2);
  assert.equal(cfg.cause, cause);

  const ann = new AnnotationError("deft.com/kubeecr", "1/x", "bad annotation");
  assert.ok(ann instanceof KubeEcrError);
  assert.equal(ann.name, "AnnotationError");
  assert.equal(ann.key, "deft.com/kubeecr");
  assert.equal(ann.value, "1/x");
  assert.equal(ann.message, "bad annotation");

  const dc = new DockerConfigError("bad json");
  assert.ok(dc instanceof KubeEcrError);
  assert.equal(dc.name, "DockerConfigError");
  assert.equal(new KubeEcrError("x").name, "KubeEcrError");
  // Subclasses declared elsewhere (the ports and adapters) get their own name too.
  const api = new KubeApiError("get", 403, { namespace: "ns" }, "forbidden");
  assert.ok(api instanceof KubeEcrError);
  assert.equal(api.name, "KubeApiError");
  const unexpected = new UnexpectedAnswerError("list", 200, {}, "not a list");
  assert.ok(unexpected instanceof KubeApiError);
  assert.equal(unexpected.name, "UnexpectedAnswerError");
});

Deno.test("refString", () => {
  assert.equal(refString({ namespace: "team-a", name: "ecr-pull" }), "team-a/ecr-pull");
});

Deno.test("describeError", async (t) => {
  const cyclic = new Error("loop");
  (cyclic as { cause?: unknown }).cause = cyclic;
  const throwing = {
    get message(): string {
      throw new Error("boom");
    },
  };
  const cases: [string, unknown, string][] = [
    ["single error", new Error("a"), "a"],
    [
      "cause chain",
      new Error("a", { cause: new Error("b", { cause: new Error("c") }) }),
      "a: b: c",
    ],
    ["non-Error cause", new Error("a", { cause: "b" }), "a: b"],
    ["repeated message is not doubled", new Error("a", { cause: new Error("a") }), "a"],
    ["empty message falls back to name", new TypeError(""), "TypeError"],
    ["thrown string", "just a string", "just a string"],
    ["thrown number", 42, "42"],
    ["null", null, "null"],
    ["undefined", undefined, "unknown error"],
    ["object with message", { message: "from object" }, "from object"],
    // An arbitrary object may be a raw response holding credentials: not dumped.
    ["plain object", { password: "hunter2hunter2" }, "non-Error value of type object"],
    ["cyclic cause terminates", cyclic, "loop"],
    ["throwing getter", throwing, "unprintable error value"],
  ];
  for (const [name, input, want] of cases) {
    await t.step(name, () => assert.equal(describeError(input), want));
  }
});
