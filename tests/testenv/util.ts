/** Small helpers shared by the test-environment modules. */

/**
 * Where built binaries and the moto venv are kept between runs: outside the
 * repository, so a fresh clone on the same machine finds them at once.
 */
export function cacheDir(): string {
  const explicit = Deno.env.get("KUBEECR_CACHE_DIR");
  if (explicit) return explicit;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const home = Deno.env.get("HOME") ?? "/tmp";
  return `${xdg || `${home}/.cache`}/kubeecr`;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function elapsed(startedMs: number): string {
  const seconds = (Date.now() - startedMs) / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, "0")}s`;
}

/** A heartbeat for long steps: elapsed time and a counter, every 15 seconds. */
export class Progress {
  #started = Date.now();
  #ticks = 0;
  #timer: ReturnType<typeof setInterval>;

  constructor(private label: string, log: (line: string) => void) {
    log(`${label}...`);
    this.#timer = setInterval(() => {
      const count = this.#ticks ? `, ${this.#ticks} packages compiled` : "";
      log(`  ${this.label}: ${this.elapsedText()} elapsed${count}`);
    }, 15_000);
  }

  tick() {
    this.#ticks++;
  }

  elapsedText(): string {
    return elapsed(this.#started);
  }

  stop() {
    clearInterval(this.#timer);
  }
}

/**
 * Runs `fn` while holding an exclusive lock on the file `path`, so that two
 * test environments starting at once build a cache entry once: the second
 * waits, then finds the first one's result.
 *
 * An flock(2) lock, not a create-exclusive file with a pid in it: the kernel
 * releases it when its holder dies, even by SIGKILL, so there is no stale lock
 * to detect, no race between two waiters removing each other's fresh lock and
 * no recycled pid to be fooled by. The file itself stays (a few bytes);
 * removing it would let a newcomer lock a new file while a waiter locks the
 * old one. The holder's pid is written into it only for the waiting message.
 */
export async function withLock<T>(
  path: string,
  what: string,
  log: (line: string) => void,
  fn: () => Promise<T>,
): Promise<T> {
  using file = await Deno.open(path, { read: true, write: true, create: true });
  if (!(await file.tryLock(true))) {
    const holder = (await Deno.readTextFile(path).catch(() => "")).trim() || "unknown";
    const waiting = new Progress(`waiting for another run (pid ${holder}) to finish ${what}`, log);
    try {
      await file.lock(true);
    } finally {
      waiting.stop();
    }
  }
  try {
    await file.truncate(0);
    await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
    return await fn();
  } finally {
    await file.unlock();
  }
}

/** Whether a process with this pid exists (Linux: /proc). */
export function isAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** A free TCP port on 127.0.0.1, picked by the kernel. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Polls `probe` until it returns true. `failed` is checked too, so a server
 * that exits during start-up is reported at once instead of after the timeout.
 */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  opts: { timeoutMs: number; failed?: () => string | undefined },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  while (Date.now() < deadline) {
    const failure = opts.failed?.();
    if (failure) throw new Error(`${what} failed to start: ${failure}`);
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} was not ready after ${opts.timeoutMs / 1000}s`);
}

/** Runs a command to completion and returns its stdout; throws with its stderr. */
export async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; stdin?: string } = {},
): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    env: opts.env,
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(opts.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${out.code}: ${decode(out.stderr).trim()}`);
  }
  return decode(out.stdout);
}
