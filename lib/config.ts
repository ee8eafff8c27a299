// Flags + environment → one typed Config. Pure: argv and env are passed in;
// nothing here reads Deno.args or Deno.env. Every flag is declared once in
// FLAGS (name, env var, default, help, parser); parsing, --help and ENV_VARS
// are all generated from that table so the docs cannot drift from behaviour.
//
// The pieces are in lib/config/: flags.ts (the table, Config, value parsers),
// args.ts (argv and env), cluster.ts (cluster access), help.ts (--help).

import { parseAnnotation } from "./core/annotation.ts";
import { AnnotationError, ConfigError } from "./core/errors.ts";
import { type Env, Resolver, scanArgs } from "./config/args.ts";
import { KUBE_ENV, resolveKube } from "./config/cluster.ts";
import { type Command, COMMANDS, type RenewFields, type StatusFields } from "./config/commands.ts";
import {
  type AnyFlag,
  type Config,
  envName,
  type FlagFields,
  FLAGS,
  Invalid,
  parseObjectRef,
  TABLE,
} from "./config/flags.ts";
import { commandHelp, helpText } from "./config/help.ts";

export {
  type Config,
  DEFAULT_PAGE_SIZE,
  envName,
  parseDuration,
  type Provision,
  proxyHost,
} from "./config/flags.ts";
export { IN_CLUSTER_HOST, SA_DIR } from "./config/cluster.ts";
export { commandHelp, helpText } from "./config/help.ts";
export { COMMANDS } from "./config/commands.ts";

export type StatusConfig = Config & StatusFields;
export type RenewConfig = Config & RenewFields;

export type ParsedArgs =
  | { kind: "run"; config: Config }
  | { kind: "status"; config: StatusConfig }
  | { kind: "renew"; config: RenewConfig }
  | { kind: "help"; text: string }
  | { kind: "version"; text: string };

const SUBCOMMAND_FLAGS: AnyFlag[] = Object.values(COMMANDS).flatMap((c) => [...c.own]);

/** Every environment variable parseConfig reads (for the Deno permission set). */
export const ENV_VARS: string[] = [
  ...new Set([...TABLE, ...SUBCOMMAND_FLAGS].map(envName).filter((e): e is string => !!e)),
  ...KUBE_ENV,
];

/** Flag names and env vars of the run, for tests that check --help (and the chart) cover the table. */
export const FLAG_NAMES: { flag: string; env?: string }[] = TABLE.map((f) => ({
  flag: `--${f.name}`,
  env: envName(f),
}));

/**
 * `kubeecr [flags]` is the run; `kubeecr status ...` and `kubeecr renew ...`
 * are the subcommands (named first, as kubectl's are). A subcommand accepts
 * only the run's flags its COMMANDS entry lists; the others keep their
 * defaults (their variables are not read), so a KUBEECR_FORCE meant for the
 * run never changes what status reports.
 */
export function parseConfig(args: string[], env: Env, version: string): ParsedArgs {
  const command = args[0] !== undefined && Object.hasOwn(COMMANDS, args[0])
    ? COMMANDS[args[0] as keyof typeof COMMANDS]
    : undefined;
  if (command) return parseCommand(command, args.slice(1), env);
  const seen = scanArgs(args);
  if (seen.has("help")) return { kind: "help", text: helpText() };
  if (seen.has("version")) return { kind: "version", text: `kubeecr ${version}` };
  const r = new Resolver(seen, env);
  return { kind: "run", config: runConfig(r, resolveFields(TABLE, r), env) };
}

/** The table's fields: each from argv, env or its default. */
function resolveFields(table: readonly AnyFlag[], r: Resolver): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const spec of table) {
    if (spec.field === undefined) continue;
    const value = spec.kind === "list" ? r.list(spec) : r.one(spec);
    // Omitted rather than `undefined`, so configs compare and print cleanly.
    if (value !== undefined) fields[spec.field] = value;
  }
  return fields;
}

function runConfig(r: Resolver, fields: Record<string, unknown>, env: Env): Config {
  const flags = fields as FlagFields;
  // Rules across flags, after each value is known to be valid on its own.
  if (flags.namespaces.length > 0 && flags.excludeNamespaces.length > 0) {
    throw new ConfigError(
      "--exclude-namespace",
      `${r.where(FLAGS.excludeNamespace)} and ${r.where(FLAGS.namespace)} cannot be combined; ` +
        "use --namespace to list the namespaces to include, or --exclude-namespace to list " +
        "the ones to skip",
    );
  }
  if (flags.provision) checkProvision(flags, r);
  return { ...flags, kube: resolveKube(r.one(FLAGS.kubeconfig), r.one(FLAGS.context), r, env) };
}

function parseCommand(command: Command, args: string[], env: Env): ParsedArgs {
  const refs: string[] = [];
  const table = [...command.shared, ...command.own];
  const seen = scanArgs(
    args,
    table,
    command.positionals ? (value) => refs.push(value) : undefined,
    command.name,
  );
  if (seen.has("help")) return { kind: "help", text: commandHelp(command) };
  const r = new Resolver(seen, env);
  // The run's flags this command does not take: their defaults, whatever the environment says.
  const accepted = new Set(table);
  const defaults = new Resolver(new Map(), {});
  const fields = {
    ...resolveFields(TABLE.filter((f) => !accepted.has(f)), defaults),
    ...resolveFields(table, r),
  };
  const config = runConfig(r, fields, env);
  if (command.name === "status") {
    return { kind: "status", config: config as StatusConfig };
  }
  const secrets = refs.map((raw) => {
    try {
      return parseObjectRef(raw);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      throw new ConfigError(
        raw,
        `kubeecr renew ${JSON.stringify(raw)}: ${err.message}; expected <namespace>/<name> ` +
          "of a Secret, e.g. team-a/ecr-pull",
      );
    }
  });
  const renew = { ...config, secrets } as RenewConfig;
  const byScope = renew.namespaces.length > 0 || renew.selector !== undefined;
  if (secrets.length === 0 && !byScope && !renew.all) {
    throw new ConfigError(
      "renew",
      "kubeecr renew: say which Secrets to mark: <namespace>/<name>..., -n <namespace>, " +
        "-l <selector>, or --all",
    );
  }
  if (renew.all && (secrets.length > 0 || byScope)) {
    throw new ConfigError(
      "--all",
      "kubeecr renew: --all marks every annotated Secret; it cannot be combined with names, " +
        "-n or -l",
    );
  }
  if (secrets.length > 0 && byScope) {
    throw new ConfigError(
      "--namespace",
      "kubeecr renew: name the Secrets as <namespace>/<name>, or select them with -n and -l, " +
        "not both",
    );
  }
  return { kind: "renew", config: renew };
}

/**
 * --provision creates Secrets, so it needs to know where: only in the namespaces
 * an administrator opted in (--namespace-selector), never in every namespace of
 * the cluster. Its value must be one the run would accept on a Secret.
 */
function checkProvision(flags: FlagFields, r: Resolver): void {
  const provision = flags.provision!;
  const where = r.where(FLAGS.provision, `${provision.secretName}=${provision.value}`);
  if (flags.namespaceSelector === undefined) {
    throw new ConfigError(
      "--provision",
      `${where} needs --namespace-selector (KUBEECR_NAMESPACE_SELECTOR): it creates a Secret ` +
        "in every namespace it serves, and without the namespace opt-in that would be every " +
        "namespace of the cluster; add --namespace-selector kubeecr.deft.com/enabled=true " +
        "(manifests/components/namespace-opt-in sets it) and label the namespaces that get one",
    );
  }
  if (flags.selector !== undefined) {
    throw new ConfigError(
      "--provision",
      `${where} and ${r.where(FLAGS.selector)} cannot be combined: the Secrets --provision ` +
        "creates carry no labels of yours, so --selector would never find them again to " +
        "refresh them; drop --selector",
    );
  }
  try {
    parseAnnotation(flags.annotation, provision.value);
  } catch (err) {
    if (!(err instanceof AnnotationError)) throw err;
    throw new ConfigError(
      "--provision",
      `${where}: the Secrets it creates would carry ${err.message}`,
      { cause: err },
    );
  }
}
