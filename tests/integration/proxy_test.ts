/**
 * Proxies under -P=local (issue 14, item 8): the kubeconfig's proxy-url is
 * honoured (kubectl does the same), and --proxy wins over it. The pod's side
 * (-P=cronjob ignores the proxy variables) is in incluster_test.ts.
 */

import assert from "node:assert/strict";
import { freshNamespace, testEnv, writeKubeconfig } from "../testenv/connect.ts";
import { startConnectProxy } from "../testenv/connect_proxy.ts";
import { createSecret, runKubeecr } from "./cli.ts";

const env = await testEnv();

Deno.test("-P=local: the kubeconfig's proxy-url carries the API traffic; --proxy wins over it", async () => {
  const api = new URL(env.server);
  const route = (target: string) =>
    target === api.host ? { hostname: api.hostname, port: Number(api.port) } : undefined;
  await using fromKubeconfig = startConnectProxy(route);
  await using fromFlag = startConnectProxy(route);
  const ns = await freshNamespace(env, "proxy-url");
  await createSecret(env, ns, { name: "pull", registries: "123456789012/us-west-2" });
  const path = await writeKubeconfig(env, env.admin);
  const text = await Deno.readTextFile(path);
  await Deno.writeTextFile(
    path,
    text.replace(/^( +)server: (.*)$/m, `$1server: $2\n$1proxy-url: ${fromKubeconfig.url}`),
  );
  const args = ["--log-format=json", "--namespace", ns, "--dry-run"];

  const viaKubeconfig = await runKubeecr(env, args, { env: { KUBECONFIG: path } });
  assert.equal(viaKubeconfig.code, 0, viaKubeconfig.stdout + viaKubeconfig.stderr);
  assert.deepEqual([...new Set(fromKubeconfig.connects)], [api.host]);

  const before = fromKubeconfig.connects.length;
  const viaFlag = await runKubeecr(env, [...args, "--proxy", fromFlag.url], {
    env: { KUBECONFIG: path },
  });
  assert.equal(viaFlag.code, 0, viaFlag.stdout + viaFlag.stderr);
  assert.deepEqual([...new Set(fromFlag.connects)], [api.host]);
  assert.equal(fromKubeconfig.connects.length, before, "--proxy wins over proxy-url");
});
