import assert from "node:assert/strict";
import { type LogFields, Logger, type LogLevel, REDACTED } from "../../lib/log.ts";

const NOW = new Date("2026-11-27T21:00:00.123Z");

function capture(format: "text" | "json", level: LogLevel = "debug") {
  const lines: string[] = [];
  const logger = new Logger({ format, level, write: (l) => lines.push(l), now: () => NOW });
  return { logger, lines };
}

Deno.test("text format is logfmt with quoting where needed", async (t) => {
  const cases: [string, string, LogFields | undefined, string][] = [
    [
      "the documented shape",
      "refreshed",
      {
        secret: "ns/name",
        registries: ["a.example", "b.example"],
        "expires-at": "2026-11-28T09:00:00Z",
      },
      "2026-11-27T21:00:00Z INFO refreshed secret=ns/name registries=a.example,b.example " +
      "expires-at=2026-11-28T09:00:00Z",
    ],
    ["no fields", "starting", undefined, "2026-11-27T21:00:00Z INFO starting"],
    [
      "numbers and booleans",
      "done",
      { n: 3, ok: true },
      "2026-11-27T21:00:00Z INFO done n=3 ok=true",
    ],
    [
      "undefined fields are omitted",
      "x",
      { a: undefined, b: "1" },
      "2026-11-27T21:00:00Z INFO x b=1",
    ],
    ["space is quoted", "x", { reason: "not due" }, '2026-11-27T21:00:00Z INFO x reason="not due"'],
    ["quote is escaped", "x", { v: 'say "hi"' }, '2026-11-27T21:00:00Z INFO x v="say \\"hi\\""'],
    ["equals sign is quoted", "x", { sel: "a=b" }, '2026-11-27T21:00:00Z INFO x sel="a=b"'],
    ["empty value is quoted", "x", { v: "" }, '2026-11-27T21:00:00Z INFO x v=""'],
    ["newline is escaped", "x", { v: "a\nb" }, '2026-11-27T21:00:00Z INFO x v="a\\nb"'],
    [
      "a newline in the message cannot forge a second record",
      "bad\n2026-11-27T21:00:00Z INFO forged",
      undefined,
      "2026-11-27T21:00:00Z INFO bad\\n2026-11-27T21:00:00Z INFO forged",
    ],
  ];
  for (const [name, msg, fields, want] of cases) {
    await t.step(name, () => {
      const { logger, lines } = capture("text");
      logger.info(msg, fields);
      assert.deepEqual(lines, [want]);
    });
  }
});

Deno.test("json format is one object per line", () => {
  const { logger, lines } = capture("json");
  logger.warn("skipped", {
    secret: "ns/name",
    registries: ["a", "b"],
    n: 1,
    dry: false,
    gone: undefined,
    msg: "clash",
  });
  assert.equal(lines.length, 1);
  assert.ok(!lines[0].includes("\n"));
  const obj = JSON.parse(lines[0]);
  assert.deepEqual(Object.keys(obj).slice(0, 3), ["time", "level", "msg"]);
  assert.deepEqual(obj, {
    time: "2026-11-27T21:00:00Z",
    level: "warn",
    msg: "skipped",
    secret: "ns/name",
    registries: ["a", "b"],
    n: 1,
    dry: false,
    _msg: "clash", // a field cannot overwrite the message
  });
});

Deno.test("level filtering", async (t) => {
  const levels: LogLevel[] = ["debug", "info", "warn", "error"];
  for (const min of levels) {
    await t.step(`level ${min}`, () => {
      const { logger, lines } = capture("text", min);
      for (const l of levels) logger[l](l);
      const want = levels.slice(levels.indexOf(min)).map((l) =>
        `2026-11-27T21:00:00Z ${l.toUpperCase()} ${l}`
      );
      assert.deepEqual(lines, want);
    });
  }
});

Deno.test("redaction", async (t) => {
  const SECRET = 'tok"en\\with\nescapes-0123456789';
  const PLAIN = "AKIAEXAMPLEPASSWORD";
  for (const format of ["text", "json"] as const) {
    await t.step(format, () => {
      const { logger, lines } = capture(format);
      logger.redact(SECRET);
      logger.redact(PLAIN);
      logger.redact("short"); // below 8 characters: ignored, not over-redacted
      logger.info(`leaked ${PLAIN} and ${SECRET}`, {
        secret: SECRET,
        list: ["x", PLAIN],
        word: "short",
      });
      assert.equal(lines.length, 1);
      const line = lines[0];
      // Neither the raw value nor any escaped form of it survives.
      for (const v of [SECRET, JSON.stringify(SECRET).slice(1, -1), PLAIN, "escapes-0123"]) {
        assert.ok(!line.includes(v), `${format}: ${line}`);
      }
      assert.ok(line.includes(REDACTED), line);
      assert.ok(line.includes("short"), "short values are not redacted");
      if (format === "json") {
        const obj = JSON.parse(line);
        assert.equal(obj.secret, REDACTED);
        assert.deepEqual(obj.list, ["x", REDACTED]);
      }
    });
  }
  await t.step("a value already carrying the JSON-escaped secret (a quoted body)", () => {
    for (const format of ["text", "json"] as const) {
      const { logger, lines } = capture(format);
      logger.redact(SECRET);
      const body = JSON.stringify({ token: SECRET }); // escaped once, then again on output
      logger.error(`request failed: ${body}`, { body });
      assert.ok(!lines[0].includes("escapes-0123"), `${format}: ${lines[0]}`);
      assert.ok(lines[0].includes(REDACTED), lines[0]);
    }
  });
  await t.step("a secret containing another is replaced whole", () => {
    const { logger, lines } = capture("text");
    logger.redact("abcdefgh");
    logger.redact("abcdefgh-longer-secret");
    logger.info("x", { v: "abcdefgh-longer-secret" });
    assert.deepEqual(lines, [`2026-11-27T21:00:00Z INFO x v=${REDACTED}`]);
  });
});
