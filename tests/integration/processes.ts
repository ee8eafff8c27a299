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
