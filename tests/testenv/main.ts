/**
 * `deno task testenv`: starts the test environment in the foreground for
 * people and scripts. When it is ready it prints exactly one line to stdout,
 *
 *   ready: source /tmp/kubeecr-testenv-XXXX/env.sh
 *
 * and keeps running until SIGINT or SIGTERM, then stops every server and
 * removes its directory. Progress goes to stderr.
 *
 *   --node                 add a one-node cluster (containerd, kubelet,
 *                          controller-manager, scheduler) and registries that
 *                          behave like ECR; root only. env.sh then also
 *                          exports KUBEECR_TESTENV_NODE and KUBEECR_TESTENV_IMAGE.
 *   --token-lifetime D     lifetime of the tokens the environment's ECR
 *                          endpoint issues: 40s, 5m, 12h (default 12h)
 *   --prepare              only build or find the binaries and the moto venv,
 *                          then exit (with --node: the node's binaries too).
 *                          CI runs it as a step of its own, so its duration
 *                          shows separately.
 */

import { parseArgs } from "node:util";
import { AssetError, resolveBinaries, resolveNodeBinaries } from "./assets.ts";
import { startTestEnv } from "./env.ts";
import { ensureMoto } from "./moto.ts";

/** "40s", "5m", "12h", "90" (seconds) → seconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)([smh]?)$/.exec(text.trim());
  if (!m) return undefined;
  const seconds = Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600 }[m[2]]!;
  return seconds > 0 ? seconds : undefined;
}

if (import.meta.main) {
  try {
    const { values } = parseArgs({
      args: Deno.args,
      options: {
        prepare: { type: "boolean" },
        node: { type: "boolean" },
        "token-lifetime": { type: "string" },
      },
    });
    const log = (line: string) => console.error(line);
    if (values.prepare) {
      const [bins, moto, node] = await Promise.all([
        resolveBinaries(Deno.env.toObject(), log),
        ensureMoto(log),
        values.node ? resolveNodeBinaries(log) : undefined,
      ]);
      console.log(JSON.stringify({ ...bins, moto, ...node }));
      Deno.exit(0);
    }
    let tokenLifetimeSeconds: number | undefined;
    if (values["token-lifetime"] !== undefined) {
      tokenLifetimeSeconds = parseDuration(values["token-lifetime"]);
      if (tokenLifetimeSeconds === undefined) {
        throw new AssetError(
          `--token-lifetime ${values["token-lifetime"]}: want a duration such as 40s, 5m or 12h`,
        );
      }
    }
    const env = await startTestEnv({ node: values.node, tokenLifetimeSeconds });
    console.log(`ready: source ${env.envFile}`);
    // Wait for a signal; startTestEnv's own handlers stop everything and exit.
    await new Promise(() => {});
  } catch (err) {
    // A misconfigured asset path or a bad flag is a one-line answer, not a stack trace.
    const oneLine = err instanceof AssetError || (err instanceof TypeError &&
      (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS"));
    console.error(oneLine ? `testenv: ${(err as Error).message}` : err);
    Deno.exit(2);
  }
}
