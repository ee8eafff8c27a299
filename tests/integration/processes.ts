/** What the testenv CLI tests read about processes: a child's first line, who names a directory. */

export async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    if (text.includes("\n")) break;
  }
  return text.split("\n")[0];
}

/** Pids of processes whose command line or environment names `dir`. */
export async function processesUsing(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const read = (f: string) => Deno.readTextFile(`/proc/${entry.name}/${f}`).catch(() => "");
    if ((await read("cmdline")).includes(dir) || (await read("environ")).includes(dir)) {
      pids.push(Number(entry.name));
    }
  }
  return pids;
}

/** The environment `deno task testenv` announced on its first line: its env.sh and directory. */
export async function readyLine(
  stdout: ReadableStream<Uint8Array>,
): Promise<{ envFile: string; dir: string }> {
  const line = await firstLine(stdout);
  const match = /^ready: source (\/\S+\/env\.sh)$/.exec(line);
  if (!match) throw new Error(`unexpected first line: ${JSON.stringify(line)}`);
  return { envFile: match[1], dir: match[1].slice(0, match[1].lastIndexOf("/")) };
}

const REPO = new URL("../../", import.meta.url).pathname;

/**
 * `deno task --quiet testenv <args>` with stdout piped. `ownGroup`: in a
 * process group of its own, as a terminal gives a foreground job (setsid is
 * not a group leader here, so it calls setsid() and execs deno, same pid), so
 * that Ctrl-C can be sent to the whole group.
 */
export function spawnTestenv(args: string[], opts: { ownGroup?: boolean } = {}): Deno.ChildProcess {
  const command = [Deno.execPath(), "task", "--quiet", "testenv", ...args];
  return new Deno.Command(opts.ownGroup ? "setsid" : command[0], {
    args: opts.ownGroup ? command : command.slice(1),
    cwd: REPO,
    stdout: "piped",
    stderr: "null",
  }).spawn();
}
