// kubeecr: refreshes AWS ECR credentials in annotated docker-registry
// Secrets, in place, once, then exits.
//
// main.ts only wires: flags → config → clients → pipeline → exit code.
// Exit codes: 0 all due Secrets refreshed (or none due), 1 something failed,
// 2 the run could not start.

import denoJson from "./deno.json" with { type: "json" };
import { type Config, ENV_VARS, parseConfig, type ParsedArgs, proxyHost } from "./lib/config.ts";
import { type CaBundle, credentialHints, EcrTokenSource } from "./lib/aws/ecr.ts";
import { ServerClock } from "./lib/core/clock.ts";
import { ConfigError, describeError, KubeEcrError } from "./lib/core/errors.ts";
import { Logger } from "./lib/log.ts";
import { parseRoleMap, type RoleMap } from "./lib/core/roles.ts";
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
 *
 * With `batch`, lines are gathered and written together (every BATCH_MS, or
 * at BATCH_BYTES): one write per line cost 83 ms of a full refresh of 8,000
 * Secrets. flush() writes what is pending; main calls it before every exit,
 * and the unload and error handlers below do on any other way out.
 */
function lineWriter(
  stream: { writeSync(p: Uint8Array): number },
  batch = false,
): { line: (line: string) => void; flush: () => void } {
  const encoder = new TextEncoder();
  let open = true;
  let pending: string[] = [];
  let pendingBytes = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const text = pending.join("");
    pending = [];
    pendingBytes = 0;
    if (!open) return;
    try {
      const bytes = encoder.encode(text);
      for (let at = 0; at < bytes.length;) at += stream.writeSync(bytes.subarray(at));
    } catch {
      open = false;
    }
  };
  const line = (line: string) => {
    if (!open) return;
    pending.push(line + "\n");
    pendingBytes += line.length + 1;
    if (!batch || pendingBytes >= BATCH_BYTES) flush();
    else timer ??= setTimeout(flush, BATCH_MS);
  };
  return { line, flush };
}

/** How long a log line may wait for others, and how much is written at once at most. */
const BATCH_MS = 20;
const BATCH_BYTES = 64 * 1024;

/**
 * AWS_CA_BUNDLE, read once before the run: the AWS SDK for JavaScript does
 * not read it. The sandbox decides what may be read: under -P=cronjob only
 * the token directories and /etc/ssl/certs, so an installation mounts its
 * bundle there (README, "Custom CA certificates").
 */
async function readCaBundle(): Promise<CaBundle | undefined> {
  const path = readEnv(["AWS_CA_BUNDLE"]).AWS_CA_BUNDLE;
  if (!path) return undefined;
  try {
    const pem = await Deno.readTextFile(path);
    if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
      throw new CaBundleError(`AWS_CA_BUNDLE=${path} holds no PEM certificate`);
    }
    return { path, pem };
  } catch (err) {
    if (err instanceof CaBundleError) throw err;
    // -P=cronjob reports a path outside its read list as missing (ignore: true).
    const why = err instanceof Deno.errors.NotFound
      ? "no such file, or outside what this sandbox may read"
      : err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied
      ? "not readable (permission denied)"
      : describeError(err);
    throw new CaBundleError(
      `cannot read AWS_CA_BUNDLE=${path}: ${why}; mount the bundle under /etc/ssl/certs/ ` +
        "(the one directory besides the token directories the CronJob's sandbox may read), " +
        "or give it as NODE_EXTRA_CA_CERTS, which the runtime reads",
    );
  }
}

class CaBundleError extends KubeEcrError {}

/** Where the CronJob mounts the role map; the one directory of it the sandbox may read. */
const ROLES_DIR = "/etc/kubeecr/";

/** The role map (--roles), read and validated before anything else: a bad map is exit 2. */
async function readRoleMap(path: string): Promise<RoleMap> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    // -P=cronjob reports a path outside its read list as missing (ignore: true).
    const why = err instanceof Deno.errors.NotFound
      ? `no such file, or outside what this sandbox may read (in the CronJob: ${ROLES_DIR})`
      : err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied
      ? "not readable (permission denied)"
      : describeError(err);
    throw new ConfigError(
      "--roles",
      `cannot read the role map --roles ${path}: ${why}; mount it from the kubeecr-roles ` +
        `ConfigMap under ${ROLES_DIR} (the roles component does) or fix the path`,
    );
  }
  return parseRoleMap(text, path);
}

/** The variables Deno's HTTP client takes a proxy from (read when a client is made). */
const PROXY_VARIABLES = [
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "ALL_PROXY",
  "all_proxy",
  "NO_PROXY",
  "no_proxy",
];

/**
 * In a pod, the proxy variables are not the installation's choice (a
 * namespace default, an injected sidecar's environment): they would send the
 * API traffic to any address, outside the allow-list. They are dropped
 * before any client exists; an installation that needs a proxy names it with
 * --proxy, and the sandbox must allow that host (README, Proxies).
 */
function dropProxyVariables(log: Logger): void {
  const dropped = PROXY_VARIABLES.filter((variable) =>
    Deno.permissions.querySync({ name: "env", variable }).state === "granted" &&
    Deno.env.get(variable) !== undefined
  );
  for (const variable of dropped) Deno.env.delete(variable);
  if (dropped.length > 0) {
    log.info("ignoring proxy variables", {
      variables: dropped,
      why: "in a pod only --proxy (KUBEECR_PROXY) names a proxy",
    });
  }
}

/** The sandbox must allow the proxy's host:port; say how when it does not. */
function checkProxyAllowed(proxy: string): void {
  const host = proxyHost(proxy);
  if (Deno.permissions.querySync({ name: "net", host }).state === "granted") return;
  throw new ConfigError(
    "--proxy",
    `--proxy ${proxy}: the sandbox does not allow connections to ${host}; add that one host ` +
      "to permissions.cronjob.net in deno.json and rebuild (the Dockerfile does it with " +
      `--build-arg PROXY_HOST=${host}); with deno run, --allow-net replaces the set's list, ` +
      "so it must repeat the list and add the host (README, Proxies)",
  );
}

/** Seconds the writes in flight get after SIGTERM/SIGINT: well inside a pod's 30 s grace. */
const GRACE_MS = 5_000;

/**
 * SIGTERM (pod eviction, node drain) and SIGINT (Ctrl-C): stop starting
 * work, give the writes in flight GRACE_MS to finish and be reported, then
 * end what is left (hardStop). The pipeline then logs every outcome and the
 * summary (interrupted=true) and the run exits 1, as any run that did not
 * finish its work. A second signal exits at once with 128+signal (130, 143):
 * the run was not allowed to finish cleanly.
 */
function handleSignals(log: Logger) {
  const stop = new AbortController();
  const hardStop = new AbortController();
  for (const [signal, number] of [["SIGTERM", 15], ["SIGINT", 2]] as const) {
    Deno.addSignalListener(signal, () => {
      if (stop.signal.aborted) {
        log.error("interrupted again: exiting now", { signal });
        stdout.flush();
        Deno.exit(128 + number);
      }
      log.warn("interrupted: no new work starts; writes in flight finish", {
        signal,
        "grace-ms": GRACE_MS,
      });
      stop.abort(signal);
      Deno.unrefTimer(setTimeout(() => hardStop.abort(signal), GRACE_MS));
    });
  }
  return { stop: stop.signal, hardStop: hardStop.signal };
}

/** The Kubernetes API as the flags say, on the API server's clock. */
async function connect(config: Config, log: Logger, budget: AbortSignal) {
  // Loaded only now, so --help, --version and flag errors answer at once.
  const { KubeApi } = await import("./lib/kube/transport.ts");
  const { loadClusterAccess } = await import("./lib/kube/kubeconfig.ts");
  const clock = new ServerClock(
    Date.now,
    (skew) =>
      log.warn("this machine's clock differs from the API server's; judging by the server's", {
        ...skew,
        fix: "synchronise the node's clock (NTP)",
      }),
  );
  const access = await loadClusterAccess(config.kube);
  // --proxy, the installation's choice, wins over a kubeconfig's proxy-url.
  if (config.proxy) access.proxyUrl = config.proxy;
  const api = new KubeApi(access, {
    ...config,
    onDate: (date) => clock.observe(date),
    budget,
    onRetry: (what, attempt, delayMs, why) =>
      log.warn("retrying", { request: what, attempt, "wait-ms": delayMs, why }),
    onSecret: (secret) => log.redact(secret),
    onWarning: (message) => log.warn(message),
  });
  return { api, clock };
}

/**
 * `kubeecr status` and `kubeecr renew`: the cluster as for a run, no AWS.
 * status prints its table (or JSON) on stdout and logs on stderr; renew logs
 * what it marked on stdout. Exit 2 when the cluster cannot be used at all.
 */
async function operate(
  parsed: Extract<ParsedArgs, { kind: "status" | "renew" }>,
): Promise<number> {
  const { config } = parsed;
  const log = new Logger({
    format: "text",
    level: config.logLevel,
    write: parsed.kind === "status" ? stderrLine : stdoutLine,
  });
  if (config.kube.mode === "in-cluster") dropProxyVariables(log);
  const budget = AbortSignal.timeout(config.timeoutMs);
  let connected = false;
  try {
    const { KubeSecretStore } = await import("./lib/kube/secrets.ts");
    const { api, clock } = await connect(config, log, budget);
    connected = true;
    const store = new KubeSecretStore(api, () => clock.now());
    const now = () => clock.now();
    if (parsed.kind === "status") {
      const { latestEvents } = await import("./lib/kube/events.ts");
      const { statusExitCode, statusJson, statusRows, statusTable } = await import(
        "./lib/status.ts"
      );
      const result = await statusRows(parsed.config, {
        store,
        latestEvents: (ns) => latestEvents(api, ns),
        log,
        now,
      });
      stdoutLine(
        parsed.config.output === "json"
          ? statusJson(result.rows)
          : statusTable(result.rows, clock.now()),
      );
      return statusExitCode(result);
    }
    const { createJobFromCronJob } = await import("./lib/kube/jobs.ts");
    const { renew } = await import("./lib/renew.ts");
    return await renew(parsed.config, {
      store,
      createJob: (cronjob) => createJobFromCronJob(api, cronjob),
      log,
      now,
    });
  } catch (err) {
    const { DiscoveryError } = await import("./lib/discover.ts");
    const { KubeApiError } = await import("./lib/core/store.ts");
    const api = err instanceof DiscoveryError ? err.error : err;
    // No cluster access (no kubeconfig, no answer, 401, the first list refused): exit 2.
    const cannotStart = !connected || err instanceof DiscoveryError ||
      (api instanceof KubeApiError && api.isAccessProblem);
    const { userMessage } = await import("./lib/renew.ts");
    log.error(cannotStart ? "cannot use the Kubernetes API" : `kubeecr ${parsed.kind} failed`, {
      error: userMessage(err, parsed.kind),
      ...(err instanceof KubeEcrError ? {} : { kind: "unexpected" }),
    });
    return cannotStart ? EXIT_CANNOT_START : EXIT_FAILED;
  }
}

const stdout = lineWriter(Deno.stdout, true);
const stdoutLine = stdout.line;
const stderrLine = lineWriter(Deno.stderr).line;
// Whatever ends the process, the lines gathered so far are written first.
globalThis.addEventListener("unload", stdout.flush);
globalThis.addEventListener("error", stdout.flush);
globalThis.addEventListener("unhandledrejection", stdout.flush);

async function main(): Promise<number> {
  let config: Config;
  try {
    const parsed = parseConfig(Deno.args, readEnv(), denoJson.version);
    if (parsed.kind === "status" || parsed.kind === "renew") return await operate(parsed);
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
  if (config.kube.mode === "in-cluster") dropProxyVariables(log);
  let roles: RoleMap | undefined;
  try {
    if (config.proxy) checkProxyAllowed(config.proxy);
    if (config.roles) roles = await readRoleMap(config.roles);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log.error("cannot start", { error: err.message });
    return err.exitCode;
  }
  if (roles) {
    log.info("role map", {
      path: config.roles,
      roles: roles.roles.length,
      "other-accounts": roles.otherAccounts,
    });
  }
  const signals = handleSignals(log);
  // The budget also ends when the grace after a signal is spent: the requests
  // still in flight then end, and their Secrets are reported as not done.
  const budget = AbortSignal.any([AbortSignal.timeout(config.timeoutMs), signals.hardStop]);
  let started = false;
  try {
    const { KubeSecretStore } = await import("./lib/kube/secrets.ts");
    const { api, clock } = await connect(config, log, budget);
    const caBundle = await readCaBundle();
    // Loaded only with a role map.
    const assumed = roles &&
      new (await import("./lib/aws/sts.ts")).AssumedRoles({
        describe: (role) => {
          const entry = roles.roles.find((e) => e.role === role)!;
          return {
            entry: `roles[${entry.index}]`,
            ...(entry.externalId ? { externalId: entry.externalId } : {}),
          };
        },
        ...(caBundle ? { caPem: caBundle.pem } : {}),
        requestTimeoutMs: config.requestTimeoutMs,
        budget,
        onShortSession: (role, entry) =>
          log.warn("role allows no 12-hour session; assuming it for STS's default (1h)", {
            role,
            entry,
            fix: "raise the role's maximum session duration to 12h (a role assumed from IRSA " +
              "credentials is chained and limited to 1h): tokens from shorter sessions expire sooner",
          }),
      });
    started = true;
    const summary = await runOnce(config, {
      store: new KubeSecretStore(api, () => clock.now()),
      tokens: new EcrTokenSource({
        requestTimeoutMs: config.requestTimeoutMs,
        budget,
        // For messages that say what to do (lib/ reads no environment).
        credentials: credentialHints(
          (name) => readEnv([name])[name],
          (host) => Deno.permissions.querySync({ name: "net", host }).state === "granted",
        ),
        allowedHosts: denoJson.permissions.cronjob.net,
        ...(caBundle ? { caBundle } : {}),
        ...(assumed ? { roles: assumed } : {}),
      }),
      ...(roles ? { roles } : {}),
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
      stop: signals.stop,
    });
    return exitCode(summary);
  } catch (err) {
    // One exit path for what the pipeline could not turn into outcomes: the
    // run could not start (exit 2), or an unexpected failure after it did
    // (exit 1, the pipeline has reported what it finished).
    // Interrupted before the first page: nothing was looked at, and saying
    // "cannot use the Kubernetes API" would blame the cluster.
    if (signals.stop.aborted) {
      log.error("summary", {
        interrupted: true,
        error: `interrupted by ${signals.stop.reason} before the run got going; nothing was ` +
          "written, the next run does it all",
        "exit-code": EXIT_FAILED,
      });
      return EXIT_FAILED;
    }
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

const code = await main();
stdout.flush();
Deno.exit(code);
