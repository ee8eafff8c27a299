// Structured logger: logfmt-style text for humans, one JSON object per line
// for log pipelines. Writes through an injected `write`, so lib/ does no I/O
// and tests capture lines directly.

import { formatTime } from "./core/time.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

export type LogValue = string | number | boolean | string[] | undefined;
export type LogFields = Record<string, LogValue>;

export interface LoggerOptions {
  format: "text" | "json";
  level: LogLevel;
  write: (line: string) => void;
  now?: () => Date;
}

export const REDACTED = "[REDACTED]";

// Shorter values are not registered: redacting "AWS" or "true" everywhere
// would mangle ordinary log lines and no real credential is that short.
const MIN_REDACT_LENGTH = 8;

// Keys the JSON format owns; a field with one of these names is prefixed
// with "_" rather than silently overwriting the level or message.
const RESERVED = new Set(["time", "level", "msg"]);

export class Logger {
  readonly #format: "text" | "json";
  readonly #min: number;
  readonly #write: (line: string) => void;
  readonly #now: () => Date;
  // Every form in which a registered secret may appear in an emitted line.
  #secrets: string[] = [];

  constructor(opts: LoggerOptions) {
    this.#format = opts.format;
    this.#min = LOG_LEVELS.indexOf(opts.level);
    this.#write = opts.write;
    this.#now = opts.now ?? (() => new Date());
  }

  /**
   * Registers a credential so that no later line can show it, whichever code
   * path logs it by mistake (an error message quoting a response body, say).
   * Defence in depth: callers still must not log credentials.
   */
  redact(secret: string): void {
    if (secret.length < MIN_REDACT_LENGTH) return;
    // Quoting (logfmt and JSON alike use JSON string escapes) turns `"` into
    // `\"` and a newline into `\n`; the escaped form must be caught as well.
    const escaped = JSON.stringify(secret).slice(1, -1);
    for (const s of new Set([secret, escaped])) {
      if (!this.#secrets.includes(s)) this.#secrets.push(s);
    }
    // Longest first, so a secret that contains another is replaced whole.
    this.#secrets.sort((a, b) => b.length - a.length);
  }

  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.#min;
  }

  debug(msg: string, fields?: LogFields): void {
    this.#log("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.#log("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.#log("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.#log("error", msg, fields);
  }

  #log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    // Scrub the raw values first, whatever encoding comes next (logfmt
    // quoting, JSON escaping, control-character escaping in the message)...
    const clean: LogFields = {};
    for (const [k, v] of Object.entries(fields)) {
      clean[k] = typeof v === "string"
        ? this.#scrub(v)
        : Array.isArray(v)
        ? v.map((x) => this.#scrub(x))
        : v;
    }
    const time = formatTime(this.#now());
    const line = this.#format === "json"
      ? jsonLine(time, level, this.#scrub(msg), clean)
      : textLine(time, level, this.#scrub(msg), clean);
    // ...then the whole line, for values that already held a secret in escaped
    // form (say, a JSON response body quoted in an error message).
    this.#write(this.#scrub(line));
  }

  #scrub(s: string): string {
    for (const secret of this.#secrets) s = s.replaceAll(secret, REDACTED);
    return s;
  }
}

function jsonLine(time: string, level: LogLevel, msg: string, fields: LogFields): string {
  const obj: Record<string, unknown> = { time, level, msg };
  for (const [k, v] of Object.entries(fields)) {
    obj[RESERVED.has(k) ? `_${k}` : k] = v;
  }
  // JSON.stringify drops undefined values, as the text format does.
  return JSON.stringify(obj);
}

// `2026-11-27T21:00:00Z INFO refreshed secret=ns/name registries=a,b`
function textLine(time: string, level: LogLevel, msg: string, fields: LogFields): string {
  const parts = [time, level.toUpperCase(), escapeControls(msg)];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    parts.push(`${k}=${logfmtValue(Array.isArray(v) ? v.join(",") : String(v))}`);
  }
  return parts.join(" ");
}

/** Quotes a value when logfmt would otherwise split or misread it. */
function logfmtValue(v: string): string {
  // JSON string escaping is a superset of what logfmt readers expect inside
  // quotes (\" \\ \n), and keeps control characters off the terminal.
  return v === "" || /[\s"=\\\p{Cc}]/u.test(v) ? JSON.stringify(v) : v;
}

/** One log record per line: a newline in a message must not forge another. */
function escapeControls(s: string): string {
  return s.replace(/\p{Cc}/gu, (c) => JSON.stringify(c).slice(1, -1));
}
