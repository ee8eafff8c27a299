// --help, rendered from the flag table and the facts it restates (the
// retry policy, the token lifetime); README's block is compared with it.

import { DEFAULT_BACKOFF, RETRYABLE_STATUSES } from "../core/retry.ts";
import { IN_CLUSTER_HOST } from "./cluster.ts";
import { type Command, COMMANDS } from "./commands.ts";
import { type AnyFlag, envName, TABLE } from "./flags.ts";

/** One entry per flag: its form, help, accepted values, variable and default. */
function flagRows(table: readonly AnyFlag[]): string[] {
  return table.map((f) => {
    const e = envName(f);
    const dflt = f.default ?? f.defaultText;
    const lines = [
      `  --${f.name}${f.arg ? ` ${f.arg}` : ""}${f.short ? `, -${f.short}` : ""}`,
      `      ${f.help}`,
    ];
    if (f.accepts) lines.push(`      Accepts ${f.accepts}.`);
    if (e) lines.push(`      Env ${e}${dflt === undefined ? "" : `, default ${dflt}`}.`);
    return lines.join("\n");
  });
}

/** A subcommand: what it does, the run's flags it takes, its own flags, its exit codes. */
function commandSection(c: Command): string {
  return `${c.usage}
  ${c.summary}
  Takes the run's ${c.shared.map((f) => `--${f.name}`).join(", ")}, and:
${flagRows(c.own).join("\n")}
  Exit codes:
${c.exits.map((e) => `    ${e}`).join("\n")}`;
}

/** `kubeecr <command> --help`. */
export function commandHelp(c: Command): string {
  return `Usage: ${commandSection(c)}

The run's flags keep their meaning here (kubeecr --help); the ones not listed do not apply.
`;
}

export function helpText(): string {
  const rows = flagRows(TABLE);
  return `kubeecr: refresh Amazon ECR pull credentials in annotated Kubernetes Secrets, in place.

Usage: kubeecr [flags]            refresh what is due, once (the CronJob's run)
       kubeecr status [flags]     list the annotated Secrets and their state
       kubeecr renew ... [--now]  mark Secrets for the next run, or start it now

Each run finds Secrets of type kubernetes.io/dockerconfigjson carrying the annotation
(key set by --annotation, default deft.com/kubeecr)

  deft.com/kubeecr: <account>/<region>[,<account>/<region>...]
  e.g.  deft.com/kubeecr: 123456789012/us-west-2, 210987654321/eu-central-1

(<account>: exactly 12 digits; <region>: an AWS region name; an item may also be a
complete registry host, e.g. 123456789012.dkr.ecr-fips.us-east-1.amazonaws.com or
123456789012.dkr-ecr.us-west-2.on.aws, or public.ecr.aws for ECR Public), fetches
one ECR token per region (and one ECR Public token) and writes it into each Secret's
.dockerconfigjson, keeping every other registry in it. Secrets whose token is not
about to expire are skipped.

Flags (every flag except --help, --version and renew's --all and --now can also be set
by its environment variable; a flag given on the command line wins over the variable):

${rows.join("\n")}

Kubernetes access: --kubeconfig, else $KUBECONFIG (a colon-separated list), else the
pod's service account when KUBERNETES_SERVICE_HOST is set (https://${IN_CLUSTER_HOST}),
else $HOME/.kube/config.

AWS credentials: the AWS SDK default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
web identity / IRSA, EKS Pod Identity, instance profile, shared config and profiles).

Deadlines and retries: each Kubernetes request and ECR call has --request-timeout;
connection failures, timeouts, HTTP 429 (Retry-After honoured) and ${
    RETRYABLE_STATUSES.filter((s) => s !== 429).join("/")
  }
are retried up to ${DEFAULT_BACKOFF.attempts} attempts in all, with capped backoff; a certificate problem (unknown CA,
not valid yet, expired, wrong name) is reported at once, as retrying cannot change it. When --timeout is spent,
unfinished Secrets are reported as failed and the run exits 1.

Exit codes:
  0  every Secret that was due was refreshed, or none was due
  1  at least one Secret, region or namespace failed, or --timeout ran out
     (everything else was still processed and reported), or SIGTERM/SIGINT
     stopped the run: no new work started, writes in flight got 5s to finish,
     each was reported, and the summary says interrupted=true
  2  the run could not start: bad flags or environment, no cluster access
     (first contact failed, --selector rejected), no AWS credentials at all,
     an unreadable AWS_CA_BUNDLE, a --proxy the sandbox does not allow, a --roles
     map that is unreadable or malformed (or whose namespaceSelector is refused)
  130/143  a second SIGINT/SIGTERM: exited at once, without a summary

Commands:

${Object.values(COMMANDS).map(commandSection).join("\n\n")}

Proxies: in a pod (in-cluster) HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY are
ignored; only --proxy names one, and the sandbox must allow its host:port. With a
kubeconfig, its proxy-url and the variables apply; --proxy wins over both.
`;
}
