// The subcommands, `kubeecr status` and `kubeecr renew`: which of the run's
// flags (FLAGS, the one table of shared flags) each accepts, and the flags of
// their own, declared like FLAGS entries. A bare `kubeecr` is the run. Pure.

import { type AnyFlag, def, type FieldsOf, FLAGS, Invalid, parseObjectRef } from "./flags.ts";

/** The run's flags a subcommand accepts: cluster access, scope, the request budget. */
const ACCESS = [
  FLAGS.kubeconfig,
  FLAGS.context,
  FLAGS.proxy,
  FLAGS.requestTimeout,
  FLAGS.timeout,
  FLAGS.pageSize,
  FLAGS.logLevel,
  FLAGS.help,
];

export const STATUS_FLAGS = {
  output: def({
    field: "output",
    name: "output",
    short: "o",
    kind: "string",
    arg: "<format>",
    default: "table",
    help: "table for people, json (an array, one object per Secret) for scripts.",
    accepts: "table or json",
    parse: (raw) => {
      if (raw !== "table" && raw !== "json") throw new Invalid("is not recognised");
      return raw as "table" | "json";
    },
  }),
};

export const RENEW_FLAGS = {
  all: def({
    field: "all",
    name: "all",
    kind: "action",
    help: "Mark every annotated Secret in every namespace.",
    parse: () => true,
  }),
  now: def({
    field: "now",
    name: "now",
    kind: "action",
    help: "Also start the refresh at once: create a Job from KubeECR's CronJob (as " +
      "'kubectl create job --from=cronjob/...' does), which runs with KubeECR's own identity.",
    parse: () => true,
  }),
  cronjob: def({
    field: "cronjob",
    name: "cronjob",
    kind: "string",
    arg: "<namespace>/<name>",
    // The name the manifests and the chart (release "kubeecr") give it.
    default: "kubeecr/kubeecr",
    help: "KubeECR's CronJob, which --now makes its Job from.",
    accepts: "<namespace>/<name> of a CronJob",
    parse: parseObjectRef,
  }),
};

export interface Command {
  name: "status" | "renew";
  /** The usage line's arguments. */
  usage: string;
  summary: string;
  /** Entries of FLAGS it accepts (the one table of the shared flags), then its own. */
  shared: readonly AnyFlag[];
  own: readonly AnyFlag[];
  /** What its positional arguments are, if it takes any. */
  positionals?: string;
  /** The exit codes, as --help lists them. */
  exits: string[];
}

export const COMMANDS: Record<Command["name"], Command> = {
  status: {
    name: "status",
    usage: "kubeecr status [flags]",
    summary: "List every annotated Secret in scope, what needs attention first: its registries, " +
      "its state (fresh; due, and why; failed, with the latest Warning's message; skipped), " +
      "when its token expires and when it was last refreshed. Reads only (one list of Secrets, " +
      "one of KubeECR's Events); writes nothing and calls no AWS API.",
    shared: [
      FLAGS.annotation,
      FLAGS.namespace,
      FLAGS.excludeNamespace,
      FLAGS.selector,
      FLAGS.namespaceSelector,
      FLAGS.refreshWindow,
      ...ACCESS,
    ],
    own: Object.values(STATUS_FLAGS),
    exits: [
      "0  no token has expired and no Secret's latest run failed",
      "1  a Secret's token has expired (or it holds none), or its latest run failed",
      "2  bad flags, or the cluster cannot be used",
    ],
  },
  renew: {
    name: "renew",
    usage:
      "kubeecr renew (<namespace>/<name>... | -n <ns> | -l <selector> | --all) [--now] [flags]",
    summary: "Mark the Secrets (annotation kubeecr.deft.com/renew-requested-at) so that the " +
      "next run refreshes them whatever their expiry; that run removes the mark. With --now, " +
      "also start that run. Needs no AWS credentials: the run uses KubeECR's.",
    shared: [FLAGS.annotation, FLAGS.namespace, FLAGS.selector, ...ACCESS],
    own: Object.values(RENEW_FLAGS),
    positionals: "<namespace>/<name>",
    exits: [
      "0  every Secret named or selected was marked (and with --now, the Job was created)",
      "1  a Secret could not be marked (not found, not annotated, refused), none matched, " +
      "or the Job could not be created",
      "2  bad flags, or the cluster cannot be used",
    ],
  },
};

export type StatusFields = FieldsOf<typeof STATUS_FLAGS>;
export type RenewFields = FieldsOf<typeof RENEW_FLAGS> & {
  /** The Secrets named as arguments. */
  secrets: { namespace: string; name: string }[];
};
