/**
 * `deno task testenv`: starts the test environment in the foreground for
 * people and scripts. When it is ready it prints exactly one line to stdout,
 *
 *   ready: source /tmp/kubeecr-testenv-XXXX/env.sh
 *
 * and keeps running until SIGINT or SIGTERM, then stops every server and
 * removes its directory. Progress goes to stderr.
 *
 * `--prepare` only builds or finds the binaries and the moto venv, then exits
 * (CI runs it as a step of its own, so its duration shows separately).
 */

import { AssetError, resolveBinaries } from "./assets.ts";
import { startTestEnv } from "./env.ts";
import { ensureMoto } from "./moto.ts";

try {
  if (Deno.args.includes("--prepare")) {
    const log = (line: string) => console.error(line);
    const [bins, moto] = await Promise.all([
      resolveBinaries(Deno.env.toObject(), log),
      ensureMoto(log),
    ]);
    console.log(JSON.stringify({ ...bins, moto }));
    Deno.exit(0);
  }
  const env = await startTestEnv();
  console.log(`ready: source ${env.envFile}`);
  // Wait for a signal; startTestEnv's own handlers stop everything and exit.
  await new Promise(() => {});
} catch (err) {
  // A misconfigured asset path is a one-line answer, not a stack trace.
  console.error(err instanceof AssetError ? `testenv: ${err.message}` : err);
  Deno.exit(2);
}
