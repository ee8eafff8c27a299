/** The environment's server processes: spawned with one log file each, stopped politely. */

export interface Managed {
  name: string;
  child: Deno.ChildProcess;
  log: string;
  exited?: Deno.CommandStatus;
}

export function spawn(
  name: string,
  cmd: string,
  args: string[],
  dir: string,
  env?: Record<string, string>,
): Managed {
  const log = `${dir}/${name}.log`;
  const file = Deno.openSync(log, { write: true, create: true, truncate: true });
  const child = new Deno.Command(cmd, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const m: Managed = { name, child, log };
  // Both streams go to one log file per server, read back when it fails to start.
  const sink = (s: ReadableStream<Uint8Array>) =>
    s.pipeTo(
      new WritableStream({
        write: (chunk) => {
          file.writeSync(chunk);
        },
      }),
    ).catch(() => {});
  Promise.all([sink(child.stdout), sink(child.stderr)]).finally(() => file.close());
  child.status.then((s) => m.exited = s);
  return m;
}

export async function tailOf(path: string, lines = 15): Promise<string> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

export function exitedText(m: Managed): string | undefined {
  return m.exited ? `${m.name} exited with code ${m.exited.code}; see ${m.log}` : undefined;
}

export async function stopProcess(m: Managed) {
  if (m.exited) return;
  try {
    m.child.kill("SIGTERM");
  } catch { /* already gone */ }
  const timeout = new Promise<"timeout">((r) => {
    const t = setTimeout(() => r("timeout"), 5000);
    m.child.status.finally(() => clearTimeout(t));
  });
  if ((await Promise.race([m.child.status, timeout])) === "timeout") {
    try {
      m.child.kill("SIGKILL");
    } catch { /* already gone */ }
    await m.child.status;
  }
}
