/**
 * Waits for process <pid> to exit, then removes what test environments whose
 * owner is gone left behind (env.ts reapOrphans), the node's containers,
 * cgroups, mount namespace and sysctl claim included.
 *
 *   deno run -A tests/testenv/reap.ts <pid>
 *
 * A test file that started an environment with a node of its own (see
 * connect.ts) starts this on its way out: its unload handler cannot await the
 * node's cleanup, and what it cannot do synchronously is done from here.
 */

import { reapOrphans } from "./env.ts";
import { isAlive } from "./util.ts";

const pid = Number(Deno.args[0]);
if (!Number.isInteger(pid) || pid <= 0) {
  console.error("usage: reap.ts <pid>");
  Deno.exit(2);
}
const deadline = Date.now() + 60_000;
while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
await reapOrphans(Deno.env.get("TMPDIR") ?? "/tmp", () => {});
