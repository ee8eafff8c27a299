// The kubeconfig's exec plugin (client.authentication.k8s.io ExecCredential):
// run once, again only when its token expires, bounded in time and output.

import type { ExecConfig } from "./kubeconfig.ts";
import { KubeConfigError } from "./kubeconfig.ts";
import { concatBytes } from "../core/bytes.ts";
import { BudgetError } from "../core/errors.ts";

/** What the plugin's run needs from the transport's options. */
export interface ExecOptions {
  /** Aborts when the run's budget is spent. */
  budget: AbortSignal;
  /** Told about the token the plugin printed, for redaction. */
  onSecret?: (secret: string) => void;
  /** Told about something the operator should know that is not a failure. */
  onWarning?: (message: string) => void;
}

/** One kubeconfig user's exec plugin and the token it last gave. */
export class ExecCredentials {
  readonly #origin: string;
  readonly #user: string;
  readonly #exec: ExecConfig;
  readonly #opts: ExecOptions;
  #token?: { token: string; expires: number };
  #run?: Promise<string>;

  constructor(origin: string, user: string, exec: ExecConfig, opts: ExecOptions) {
    this.#origin = origin;
    this.#user = user;
    this.#exec = exec;
    this.#opts = opts;
  }

  /**
   * Runs the kubeconfig's exec plugin once, and again only when its token
   * expires. Concurrent requests share one run (a page of writes would
   * otherwise start one plugin each).
   */
  token(): Promise<string> {
    const cached = this.#token;
    if (cached && cached.expires > Date.now()) return Promise.resolve(cached.token);
    this.#run ??= this.#runPlugin().finally(() => this.#run = undefined);
    return this.#run;
  }

  async #runPlugin(): Promise<string> {
    const user = this.#user;
    const exec = this.#exec;
    const granted = (await Deno.permissions.query({ name: "run", command: exec.command })).state;
    if (granted !== "granted") {
      throw new KubeConfigError(
        `${this.#origin}: user ${user} gets its token from the exec plugin ` +
          `"${exec.command}", and this sandbox runs no programs; allow that one program: ` +
          `deno run -P=local --allow-run=${exec.command} main.ts [flags]`,
      );
    }
    const plugin = `the exec plugin "${exec.command}" of user ${user}`;
    const deadline = AbortSignal.timeout(EXEC_TIMEOUT_MS);
    let out: PluginOutput;
    try {
      out = await runPlugin(exec, AbortSignal.any([this.#opts.budget, deadline]));
    } catch (err) {
      throw new KubeConfigError(`${this.#origin}: cannot run ${plugin}`, { cause: err });
    }
    if (out.ended === "aborted") {
      if (this.#opts.budget.aborted) {
        throw new BudgetError(`run ${plugin}: the run's --timeout ran out`);
      }
      throw new KubeConfigError(
        `${this.#origin}: ${plugin} gave no answer within ${
          EXEC_TIMEOUT_MS / 1000
        }s and was killed; run it by hand to see what it waits for (a login prompt?)`,
      );
    }
    if (out.ended === "overflow") {
      throw new KubeConfigError(
        `${this.#origin}: ${plugin} printed more than ${
          MAX_PLUGIN_STDOUT / 1024
        } KiB and was killed; an ExecCredential is a few KiB`,
      );
    }
    const status = parseExecCredential(out.stdout);
    if (!out.success || !status?.token) {
      // Its stderr says what went wrong (expired SSO session, unknown
      // profile), but it may also echo a credential: only its first line is
      // shown, with anything credential-like removed. Stdout would hold the
      // credential, so it is never shown.
      const stderr = stderrHint(out.stderr);
      throw new KubeConfigError(
        `${this.#origin}: ${plugin} ` +
          `${out.success ? "returned no token" : `failed (exit ${out.code})`}` +
          (stderr ? `: ${stderr}` : ""),
      );
    }
    this.#opts.onSecret?.(status.token);
    const expiry = execExpiry(status.expirationTimestamp, Date.now());
    if (expiry.warning) {
      this.#opts.onWarning?.(`${plugin}: ${expiry.warning}`);
    }
    this.#token = { token: status.token, expires: expiry.reuseUntil };
    return status.token;
  }
}

/** An exec plugin's run; a hung one is killed at this deadline (or the run's budget). */
export const EXEC_TIMEOUT_MS = 30_000;
/** An ExecCredential is a few KiB; more is not one (and must not fill memory). */
export const MAX_PLUGIN_STDOUT = 1024 * 1024;
const MAX_PLUGIN_STDERR = 4096;
/** A token about to expire is still used this long before its expiry. */
const EXEC_EXPIRY_MARGIN_MS = 30_000;

/**
 * How long a plugin's token is reused. An expiry that cannot be used
 * (unparseable, past, or under 30 s away) would make every request run the
 * plugin again (61 runs for 30 Secrets): the token is then used for the rest
 * of this run, with a warning, and the API server says if it is refused.
 */
export function execExpiry(
  expirationTimestamp: string | undefined,
  now: number,
): { reuseUntil: number; warning?: string } {
  if (expirationTimestamp === undefined) return { reuseUntil: Infinity };
  const at = Date.parse(expirationTimestamp);
  const forRun = (why: string) => ({
    reuseUntil: Infinity,
    warning: `its expirationTimestamp ${JSON.stringify(expirationTimestamp)} ${why}; ` +
      "the token is used for the rest of this run",
  });
  if (Number.isNaN(at)) return forRun("is not an RFC 3339 time");
  if (at <= now) return forRun("is already past");
  if (at - now < EXEC_EXPIRY_MARGIN_MS) return forRun("is less than 30s away");
  return { reuseUntil: at - EXEC_EXPIRY_MARGIN_MS };
}

/**
 * The first line of a plugin's stderr without anything credential-like:
 * long opaque strings (tokens, keys) and the values of `token=`,
 * `password: ` and the like, to the end of the line. E.g. "error: session
 * token=abc expired" → "error: session token [REDACTED]".
 */
export function stderrHint(stderr: string): string {
  const first = stderr.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "";
  return first
    // Everything after a word that announces a credential: "token=abc",
    // "Bearer abc", "password: abc" alike.
    .replace(
      /\b(tokens?|secrets?|password|passwd|key|credentials?|authorization|bearer)\b.*$/i,
      "$1 [REDACTED]",
    )
    // Opaque strings (tokens, keys), not paths: "/" is left out so a
    // plugin's "no such file /home/me/.aws/config" stays readable.
    .replace(/[A-Za-z0-9+=_.~-]{24,}/g, "[REDACTED]")
    .slice(0, 200);
}

interface PluginOutput {
  /** How it ended: exited, killed at the deadline, or killed for printing too much. */
  ended: "exited" | "aborted" | "overflow";
  success: boolean;
  code: number;
  stdout: Uint8Array;
  stderr: string;
}

/**
 * Runs the plugin in a session (and so a process group) of its own
 * (`detached`, which calls setsid(2); no setsid binary needed), so a Ctrl-C
 * meant for KubeECR reaches it only through KubeECR's own stop. At the
 * deadline the plugin is killed (SIGKILL: a plugin may ignore SIGTERM) and
 * the run stops waiting at once: the pipes are cancelled, so a child left
 * holding stdout cannot keep the run alive. Its children are not killed:
 * Deno signals only its own child (Deno.kill(-pgid) reaches the leader alone,
 * checked with Deno 2.9.6), so an orphan lives until it ends by itself.
 * Stdout is read up to MAX_PLUGIN_STDOUT.
 */
async function runPlugin(exec: ExecConfig, signal: AbortSignal): Promise<PluginOutput> {
  const child = new Deno.Command(exec.command, {
    args: exec.args,
    env: {
      ...Object.fromEntries(exec.env.map((e) => [e.name, e.value])),
      KUBERNETES_EXEC_INFO: JSON.stringify({
        apiVersion: exec.apiVersion,
        kind: "ExecCredential",
        spec: { interactive: false },
      }),
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  let ended: PluginOutput["ended"] = "exited";
  const kill = (why: PluginOutput["ended"]) => {
    if (ended === "exited") ended = why;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  };
  const onAbort = () => kill("aborted");
  signal.addEventListener("abort", onAbort, { once: true });
  const stopped = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
  const stdout = readCapped(child.stdout, MAX_PLUGIN_STDOUT, () => kill("overflow"));
  const stderr = readCapped(child.stderr, MAX_PLUGIN_STDERR);
  try {
    const status = await Promise.race([child.status, stopped.then(() => undefined)]);
    // Exited: what it printed is in the pipe already; a child it left behind
    // may hold the pipe open, so wait briefly, not for EOF.
    const settle = new Promise<void>((r) => setTimeout(r, status ? 1000 : 0));
    const [out, err] = await Promise.all([stdout.until(settle), stderr.until(settle)]);
    if (!status) kill("aborted");
    return {
      ended,
      success: status?.success === true && ended === "exited",
      code: status?.code ?? -1,
      stdout: out,
      stderr: new TextDecoder().decode(err),
    };
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (ended !== "exited") await child.status.catch(() => {});
  }
}

/** Reads a stream into memory up to `cap` bytes; `until` stops reading and cancels it. */
function readCapped(stream: ReadableStream<Uint8Array>, cap: number, onOverflow?: () => void) {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const room = cap - size;
        chunks.push(value.subarray(0, Math.max(room, 0)));
        size += value.length;
        if (size > cap) {
          onOverflow?.();
          return;
        }
      }
    } catch { /* cancelled */ }
  })();
  return {
    async until(stop: Promise<void>): Promise<Uint8Array> {
      await Promise.race([done, stop]);
      await reader.cancel().catch(() => {});
      return concatBytes(chunks);
    },
  };
}

function parseExecCredential(
  stdout: Uint8Array,
): { token?: string; expirationTimestamp?: string } | undefined {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(stdout));
    const status = parsed?.status;
    return typeof status?.token === "string" ? status : undefined;
  } catch {
    return undefined;
  }
}
