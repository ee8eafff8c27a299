// kubeecr: refreshes AWS ECR credentials in annotated docker-registry
// Secrets, in place, once, then exits.
//
// main.ts only wires: flags → config → clients → pipeline → exit code.
// Exit codes: 0 all due Secrets refreshed (or none due), 1 something failed,
// 2 the run could not start.

import denoJson from "./deno.json" with { type: "json" };
import { type Config, ENV_VARS, parseConfig } from "./lib/config.ts";
import { credentialHints, EcrTokenSource } from "./lib/ecr.ts";
import { ConfigError, describeError } from "./lib/errors.ts";
import { Logger } from "./lib/log.ts";
import { runOnce } from "./lib/pipeline.ts";
import { EXIT_CANNOT_START, exitCode } from "./lib/report.ts";
import { KubeApiError } from "./lib/store.ts";

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

function stdoutLine(line: string) {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

async function main(): Promise<number> {
  let config: Config;
  try {
    const parsed = parseConfig(Deno.args, readEnv(), denoJson.version);
    if (parsed.kind !== "run") {
      console.log(parsed.text);
      return 0;
    }
    config = parsed.config;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`kubeecr: ${err.message}\nRun 'kubeecr --help' for the accepted flags.`);
    return err.exitCode;
  }

  const log = new Logger({ format: config.logFormat, level: config.logLevel, write: stdoutLine });
  try {
    // Loaded only now, so --help, --version and flag errors answer at once
    // instead of after importing client-node (most of the start-up cost).
    const { KubeSecretStore, loadKubeConfig } = await import("./lib/kube.ts");
    const store = new KubeSecretStore(loadKubeConfig(config.kube));
    const summary = await runOnce(config, {
      store,
      tokens: new EcrTokenSource({
        credentials: credentialHints((name) => readEnv([name])[name]),
        allowedHosts: denoJson.permissions.cronjob.net,
      }),
      log,
      now: () => new Date(),
    });
    return exitCode(summary);
  } catch (err) {
    // Only "cannot use the cluster at all" lands here; per-Secret problems
    // are outcomes, reported by the pipeline.
    const what = err instanceof KubeApiError ? "cannot use the Kubernetes API" : "cannot start";
    log.error(what, { error: describeError(err) });
    return EXIT_CANNOT_START;
  }
}

Deno.exit(await main());
