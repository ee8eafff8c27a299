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
import { type Config, envName, type FlagFields, FLAGS, TABLE } from "./config/flags.ts";
import { helpText } from "./config/help.ts";

export {
  type Config,
  DEFAULT_PAGE_SIZE,
  envName,
  parseDuration,
  type Provision,
  proxyHost,
} from "./config/flags.ts";
export { IN_CLUSTER_HOST, SA_DIR } from "./config/cluster.ts";
export { helpText } from "./config/help.ts";

export type ParsedArgs =
  | { kind: "run"; config: Config }
  | { kind: "help"; text: string }
  | { kind: "version"; text: string };

/** Every environment variable parseConfig reads (for the Deno permission set). */
export const ENV_VARS: string[] = [
  ...TABLE.map(envName).filter((e): e is string => e !== undefined),
  ...KUBE_ENV,
];

/** Flag names and env vars, for tests that check --help covers the table. */
export const FLAG_NAMES: { flag: string; env?: string }[] = TABLE.map((f) => ({
  flag: `--${f.name}`,
  env: envName(f),
}));

export function parseConfig(args: string[], env: Env, version: string): ParsedArgs {
  const seen = scanArgs(args);
  if (seen.has("help")) return { kind: "help", text: helpText() };
  if (seen.has("version")) return { kind: "version", text: `kubeecr ${version}` };

  const r = new Resolver(seen, env);
  const fields: Record<string, unknown> = {};
  for (const spec of TABLE) {
    if (spec.field === undefined) continue;
    const value = spec.kind === "list" ? r.list(spec) : r.one(spec);
    // Omitted rather than `undefined`, so configs compare and print cleanly.
    if (value !== undefined) fields[spec.field] = value;
  }
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
  return {
    kind: "run",
    config: { ...flags, kube: resolveKube(r.one(FLAGS.kubeconfig), r.one(FLAGS.context), r, env) },
  };
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
