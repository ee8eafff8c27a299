// argv and the environment → one raw value per flag, with errors that name
// the flag, where its value came from, and the accepted form.

import { parseArgs } from "node:util";
import { ConfigError } from "../core/errors.ts";
import { type AnyFlag, envName, type FlagSpec, Invalid, TABLE } from "./flags.ts";

export type Env = Record<string, string | undefined>;

/** One occurrence of a flag on the command line; value undefined = bare flag. */
export type Occurrence = { value: string | undefined };

/**
 * Tokenises argv with node:util parseArgs in non-strict mode and applies our
 * own strictness, so each error names the flag and its accepted form instead
 * of Node's generic wording.
 */
export function scanArgs(
  args: string[],
  table: readonly AnyFlag[] = TABLE,
  /** Takes the positional arguments a subcommand accepts; without it, one is an error. */
  positional?: (value: string) => void,
  /** The subcommand `table` is of, for the message about a flag of the run's only. */
  command?: string,
): Map<string, Occurrence[]> {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const f of table) {
    const type = f.kind === "boolean" || f.kind === "action" ? "boolean" : "string";
    // parseArgs rejects `short: undefined`, so only set it when there is one.
    options[f.name] = f.short ? { type, short: f.short } : { type };
  }
  const { tokens } = parseArgs({
    args,
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const byName = new Map(table.map((f) => [f.name, f]));
  const seen = new Map<string, Occurrence[]>();
  for (const t of tokens) {
    if (t.kind === "option-terminator") continue;
    if (t.kind === "positional") {
      if (positional) {
        positional(t.value);
        continue;
      }
      throw new ConfigError(
        t.value,
        `unexpected argument ${JSON.stringify(t.value)}: kubeecr takes flags, after one of ` +
          "the commands status or renew or none (the run); see --help",
      );
    }
    const spec = byName.get(t.name);
    if (!spec) {
      if (command && TABLE.some((f) => f.name === t.name)) {
        throw new ConfigError(
          t.rawName,
          `${t.rawName} does not apply to kubeecr ${command}; see kubeecr ${command} --help`,
        );
      }
      throw new ConfigError(t.rawName, `unknown flag ${t.rawName}; see --help for the flags`);
    }
    const flag = `--${spec.name}`;
    const form = spec.accepts ? `; expected ${spec.accepts}` : "";
    if (spec.kind === "action" && t.value !== undefined) {
      throw new ConfigError(flag, `${flag} takes no value`);
    }
    if (spec.kind === "string" || spec.kind === "list") {
      // parseArgs (non-strict) takes the next argument as the value even when
      // it is another flag: `--namespace --force` would set namespace "--force".
      if (t.value === undefined || (!t.inlineValue && t.value.startsWith("-"))) {
        throw new ConfigError(flag, `${flag} needs a value${form}`);
      }
    }
    seen.set(spec.name, [...(seen.get(spec.name) ?? []), { value: t.value }]);
  }
  return seen;
}

/** Applies flag > env > default to one table entry, with sourced errors. */
export class Resolver {
  constructor(readonly seen: Map<string, Occurrence[]>, readonly env: Env) {}

  /** "--flag" or "KUBEECR_FLAG (sets --flag)": where the value in effect came from. */
  where(spec: AnyFlag, raw?: string): string {
    const e = envName(spec);
    const value = raw === undefined || spec.quiet ? "" : `=${JSON.stringify(raw)}`;
    if (this.seen.has(spec.name) || !e || !this.envValue(e)) return `--${spec.name}${value}`;
    return `${e}${value} (sets --${spec.name})`;
  }

  /** Empty variables count as unset, as a manifest often carries `value: ""`. */
  envValue(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v === "" ? undefined : v;
  }

  one<T>(spec: FlagSpec<T>): T | undefined {
    const occ = this.seen.get(spec.name);
    let raw: string | undefined;
    if (occ) {
      // A bare boolean flag means true; --force=false lets argv override env.
      // For strings the last occurrence wins, as with most CLIs.
      raw = occ[occ.length - 1].value ?? "true";
    } else {
      raw = this.envValue(envName(spec)!) ?? spec.default;
    }
    return raw === undefined ? undefined : this.parse(spec, raw);
  }

  list<T>(spec: FlagSpec<T>): T[] {
    const occ = this.seen.get(spec.name);
    const raws = occ
      ? occ.flatMap((o) => o.value!.split(","))
      : this.envValue(envName(spec)!)?.split(",") ?? [];
    // Trim around items like the annotation does; duplicates are harmless.
    return [...new Set(raws.map((v) => this.parse(spec, v.trim())))];
  }

  parse<T>(spec: FlagSpec<T>, raw: string): T {
    try {
      return spec.parse(raw);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      throw new ConfigError(
        `--${spec.name}`,
        `${this.where(spec, raw)}: ${err.message}; expected ${spec.accepts}`,
      );
    }
  }
}
