/**
 * moto in server mode, the AWS endpoint (ECR and STS) of the integration
 * tests. It runs from a virtualenv created once in the cache directory,
 * keyed by a hash of the pinned requirements.
 */

import { cacheDir, exists, Progress, run, sha256Hex, withLock } from "./util.ts";

const REQUIREMENTS = new URL("./moto-requirements.txt", import.meta.url).pathname;
const COMPLETE = ".kubeecr-complete";

/** Returns the path of `moto_server`, creating the venv on first use. */
export async function ensureMoto(log: (line: string) => void): Promise<string> {
  const requirements = await Deno.readTextFile(REQUIREMENTS);
  const python = Deno.env.get("KUBEECR_PYTHON") ?? "python3";
  let pythonVersion: string;
  try {
    pythonVersion = (await run(python, ["--version"])).trim();
  } catch (err) {
    throw new Error(`cannot run ${python} to create the moto venv: ${(err as Error).message}`);
  }
  const hash = (await sha256Hex(`${pythonVersion}\n${requirements}`)).slice(0, 10);
  const venv = `${cacheDir()}/moto-venv-${hash}`;
  const server = `${venv}/bin/moto_server`;
  if (await exists(`${venv}/${COMPLETE}`)) return server;

  // One venv build at a time: a second environment starting meanwhile waits,
  // then finds the marker.
  await Deno.mkdir(cacheDir(), { recursive: true });
  await withLock(`${venv}.lock`, "creating the moto venv", log, async () => {
    if (await exists(`${venv}/${COMPLETE}`)) return;
    // A venv is not relocatable, so it is built in place; the marker file is
    // written last and an unfinished venv is thrown away and rebuilt.
    await Deno.remove(venv, { recursive: true }).catch(() => {});
    const progress = new Progress(`creating the moto venv (${pythonVersion}, first run only)`, log);
    try {
      await run(python, ["-m", "venv", venv]);
      await run(`${venv}/bin/pip`, [
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "-r",
        REQUIREMENTS,
      ]);
      await Deno.writeTextFile(`${venv}/${COMPLETE}`, requirements);
    } finally {
      progress.stop();
    }
    log(`moto venv ready in ${progress.elapsedText()} → ${venv}`);
  });
  return server;
}
