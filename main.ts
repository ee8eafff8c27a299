// kubeecr: refreshes AWS ECR credentials in annotated docker-registry
// Secrets, in place, once, then exits.
//
// main.ts only wires: flags → config → clients → pipeline → exit code.
// Exit codes: 0 all due Secrets refreshed (or none due), 1 something failed,
// 2 the run could not start.

import denoJson from "./deno.json" with { type: "json" };
import { type Config, ENV_VARS, parseConfig } from "./lib/config.ts";
import { credentialHints, EcrTokenSource } from "./lib/ecr.ts";
import { ServerClock } from "./lib/clock.ts";
import { ConfigError, describeError, KubeEcrError } from "./lib/errors.ts";
import { Logger } from "./lib/log.ts";
import { CannotStartError, runOnce } from "./lib/pipeline.ts";
import { EXIT_CANNOT_START, EXIT_FAILED, exitCode } from "./lib/report.ts";

/**
 * The variables the program reads, each only if the sandbox grants it: the
 * cronjob permission set does not grant KUBECONFIG, and a variable the
 * sandbox hides is simply unset here rather than a crash.
 */
function readEnv(names = ENV_VARS): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const variable of names) {
    if (Deno.permissions.querySync({ name: "env", variable }).state === "granted") {
      env[variable] = Deno.env.get(variable);
    }
  }
  return env;
}

/**
 * A writer that outlives its reader: `kubeecr | head -1` closes stdout after
 * one line, and the run must still record every event and exit as it would
 * have. Once the pipe is gone, lines are dropped.
 */
function lineWriter(stream: { writeSync(p: Uint8Array): number }): (line: string) => void {
  const encoder = new TextEncoder();
  let open = true;
  return (line) => {
    if (!open) return;
    try {
      const bytes = encoder.encode(line + "\n");
      for (let at = 0; at < bytes.length;) at += stream.writeSync(bytes.subarray(at));
    } catch {
      open = false;
    }
  };
}

const stdoutLine = lineWriter(Deno.stdout);
const stderrLine = lineWriter(Deno.stderr);

async function main(): Promise<number> {
  let config: Config;
  try {
    const parsed = parseConfig(Deno.args, readEnv(), denoJson.version);
    if (parsed.kind !== "run") {
      stdoutLine(parsed.text);
      return 0;
    }
    config = parsed.config;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    stderrLine(`kubeecr: ${err.message}\nRun 'kubeecr --help' for the accepted flags.`);
    return err.exitCode;
  }

  const log = new Logger({ format: config.logFormat, level: config.logLevel, write: stdoutLine });
  const budget = AbortSignal.timeout(config.timeoutMs);
  let started = false;
  try {
    // Loaded only now, so --help, --version and flag errors answer at once.
    const { KubeApi, KubeSecretStore } = await import("./lib/kube.ts");
    const { loadClusterAccess } = await import("./lib/kubeconfig.ts");
    const clock = new ServerClock(
      Date.now,
      (skew) =>
        log.warn("this machine's clock differs from the API server's; judging by the server's", {
          ...skew,
          fix: "synchronise the node's clock (NTP)",
        }),
    );
    const api = new KubeApi(await loadClusterAccess(config.kube), {
      onDate: (date) => clock.observe(date),
      requestTimeoutMs: config.requestTimeoutMs,
      budget,
      concurrency: config.concurrency,
      pageSize: config.pageSize,
      onRetry: (what, attempt, delayMs, why) =>
        log.warn("retrying", { request: what, attempt, "wait-ms": delayMs, why }),
    });
    started = true;
    const summary = await runOnce(config, {
      store: new KubeSecretStore(api),
      tokens: new EcrTokenSource({
        requestTimeoutMs: config.requestTimeoutMs,
        budget,
        // For messages that say what to do (lib/ reads no environment).
        credentials: credentialHints((name) => readEnv([name])[name]),
        allowedHosts: denoJson.permissions.cronjob.net,
      }),
      log,
      now: () => clock.now(),
      onEcrDate: (region, date) =>
        clock.observeEcr(
          region,
          date,
          (skew) =>
            log.warn("ECR's clock differs from the API server's", {
              ...skew,
              fix: "check what answers for ECR (AWS_ENDPOINT_URL_ECR, a proxy)",
            }),
        ),
      budget,
    });
    return exitCode(summary);
  } catch (err) {
    // One exit path for what the pipeline could not turn into outcomes: the
    // run could not start (exit 2), or an unexpected failure after it did
    // (exit 1, the pipeline has reported what it finished).
    const cannotStart = !started || err instanceof CannotStartError;
    const what = err instanceof CannotStartError && err.flag
      ? `${err.flag} was rejected`
      : err instanceof CannotStartError
      ? "cannot use the Kubernetes API"
      : cannotStart
      ? "cannot start"
      : "run failed";
    log.error(what, {
      // A flag refused by the server: its message says it all, no cause chain.
      error: err instanceof CannotStartError && err.flag ? err.message : describeError(err),
      ...(err instanceof KubeEcrError ? {} : { kind: "unexpected" }),
    });
    return cannotStart ? EXIT_CANNOT_START : EXIT_FAILED;
  }
}

Deno.exit(await main());
