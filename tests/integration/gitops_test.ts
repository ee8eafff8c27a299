/**
 * Issue 8 against the real API server: what GitOps tools and people do to a
 * pull Secret between two runs, and what the next run must make of it.
 *
 * - A manifest re-applied with server-side apply by another field manager
 *   (Argo CD and Flux both apply this way): without --force-conflicts the
 *   server refuses it (kubeecr owns .data..dockerconfigjson); with it, or
 *   with stringData, the ECR entry goes back to the manifest's placeholder
 *   while kubeecr's annotations (expires-at!) stay: the next run must see the
 *   entry is not the one it wrote, refresh it, and keep every other byte.
 * - An entry replaced by hand: refreshed on the next run, not reported fresh.
 * - Two installations with different --annotation keys on one Secret: each
 *   keeps its own status and refreshes its own registry on its own schedule
 *   (the EcrProxy gives one region 1h tokens, so no test waits for hours).
 */

import assert from "node:assert/strict";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { freshNamespace, kubectl, testEnv } from "../testenv/connect.ts";
import {
  ANNOTATION,
  auditRecords,
  b64,
  EXPIRES_AT,
  hostOf,
  linesAbout,
  readSecret,
  runKubeecr,
  STATUS,
  summaryOf,
} from "./cli.ts";

const env = await testEnv();
const JSON_LOG = ["--log-format=json"];
const ITEM = "123456789012/us-west-2";
const HOST = hostOf(ITEM);

/** The Secret's .dockerconfigjson exactly as stored. */
async function rawConfig(ns: string, name: string): Promise<string> {
  const s = await readSecret(env, ns, name);
  return new TextDecoder().decode(Uint8Array.fromBase64(s.data![".dockerconfigjson"]));
}

/** The entry KubeECR writes for `password`. */
function entry(password: string): string {
  const auth = new TextEncoder().encode(`AWS:${password}`).toBase64();
  return `{"username":"AWS","password":${JSON.stringify(password)},"auth":"${auth}"}`;
}

/** What a GitOps repository holds: a pretty-printed config with a placeholder for the ECR entry. */
const PLACEHOLDER = `{
  "auths": {
    "ghcr.io": {"auth": "${btoa("bot:ghcr-pass")}"},
    "${HOST}": {"auth": "${btoa("AWS:placeholder")}"}
  },
  "n": 12345678901234567890
}`;
/** PLACEHOLDER after a refresh: only the ECR entry's auth changed, username and password added. */
const refreshed = (password: string) =>
  PLACEHOLDER.replace(
    `{"auth": "${btoa("AWS:placeholder")}"}`,
    `{"auth": "${btoa(`AWS:${password}`)}", "username": "AWS", "password": "${password}"}`,
  );

function manifest(ns: string, data: "data" | "stringData", config = PLACEHOLDER): string {
  const value = data === "data" ? b64(config) : JSON.stringify(config);
  return `apiVersion: v1
kind: Secret
metadata:
  name: pull
  namespace: ${ns}
  annotations:
    ${ANNOTATION}: ${ITEM}
    example.com/owner: platform-team
type: kubernetes.io/dockerconfigjson
${data}:
  .dockerconfigjson: ${value}
`;
}

const apply = (yaml: string, ...flags: string[]) =>
  kubectl(env, ["apply", "--server-side", "--field-manager=gitops", ...flags, "-f", "-"], yaml);

async function patchesOf(ns: string): Promise<number> {
  return (await auditRecords(env)).filter((r) =>
    r.verb === "patch" && r.objectRef?.namespace === ns && r.objectRef?.name === "pull" &&
    r.user.username !== "kubernetes-admin" && r.responseStatus?.code === 200
  ).length;
}

Deno.test("a GitOps re-apply of the Secret's manifest is refreshed by the next run, every other byte kept", async (t) => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "gitops");
  const args = ["--namespace", ns, ...JSON_LOG];
  const kubeecr = () => runKubeecr(env, args, { aws: ecr.awsEnv });
  await apply(manifest(ns, "data"));

  const first = await kubeecr();
  assert.equal(first.code, 0, first.stdout + first.stderr);
  const password = ecr.passwords.get("us-west-2")!;
  assert.equal(await rawConfig(ns, "pull"), refreshed(password));
  const afterFirst = await readSecret(env, ns, "pull");

  await t.step(
    "without --force-conflicts the apply is refused: kubeecr owns the data",
    async () => {
      await assert.rejects(
        apply(manifest(ns, "data")),
        // The words README's GitOps section quotes.
        /Apply failed with 1 conflict: conflict with "kubeecr" using v1: \.data\.\.dockerconfigjson/,
      );
      const after = await readSecret(env, ns, "pull");
      assert.equal(after.metadata!.resourceVersion, afterFirst.metadata!.resourceVersion);
      const run = await kubeecr();
      assert.equal(linesAbout(run, ns, "pull")[0]?.msg, "fresh", run.stdout);
    },
  );

  for (
    const [name, yaml] of [
      ["with --force-conflicts", manifest(ns, "data")],
      ["with stringData and --force-conflicts", manifest(ns, "stringData")],
    ] as const
  ) {
    await t.step(name, async () => {
      const beforeApply = await readSecret(env, ns, "pull");
      await apply(yaml, "--force-conflicts");
      const applied = await readSecret(env, ns, "pull");
      assert.equal(await rawConfig(ns, "pull"), PLACEHOLDER, "the apply restored the placeholder");
      // What fooled the old freshness check: the apply left kubeecr's annotations alone.
      assert.equal(
        applied.metadata!.annotations![EXPIRES_AT],
        beforeApply.metadata!.annotations![EXPIRES_AT],
      );
      assert.ok(applied.metadata!.annotations![STATUS]);

      const patchesBefore = await patchesOf(ns);
      const run = await kubeecr();
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.equal(linesAbout(run, ns, "pull")[0]?.msg, "refreshed", run.stdout);
      assert.equal(await rawConfig(ns, "pull"), refreshed(password), "every other byte kept");
      assert.equal(await patchesOf(ns), patchesBefore + 1);
      const after = await readSecret(env, ns, "pull");
      assert.equal(after.metadata!.uid, afterFirst.metadata!.uid);
      assert.equal(after.metadata!.annotations!["example.com/owner"], "platform-team");

      const again = await kubeecr();
      assert.equal(linesAbout(again, ns, "pull")[0]?.msg, "fresh", "and fresh once it is ours");
    });
  }
});

Deno.test("an entry replaced by hand is refreshed by the next run, not reported fresh", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  const ns = await freshNamespace(env, "hand-edit");
  const args = ["--namespace", ns, ...JSON_LOG];
  await apply(manifest(ns, "data", '{"auths":{}}'));
  const first = await runKubeecr(env, args, { aws: ecr.awsEnv });
  assert.equal(first.code, 0, first.stdout + first.stderr);
  const password = ecr.passwords.get("us-west-2")!;
  assert.equal(await rawConfig(ns, "pull"), `{"auths":{"${HOST}":${entry(password)}}}`);

  // Someone pastes a token of their own (same shape, other password).
  const theirs = `{"auths":{"${HOST}":${entry("pasted-by-hand")}}}`;
  await kubectl(env, [
    "-n",
    ns,
    "patch",
    "secret",
    "pull",
    "--type=merge",
    `-p=${JSON.stringify({ data: { ".dockerconfigjson": b64(theirs) } })}`,
  ]);

  const run = await runKubeecr(env, [...args, "--log-level=debug"], { aws: ecr.awsEnv });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const lines = linesAbout(run, ns, "pull");
  assert.deepEqual(lines.map((l) => l.msg), ["due", "refreshed"], run.stdout);
  assert.equal(lines[0].why, `entry-changed ${HOST}`);
  assert.equal(await rawConfig(ns, "pull"), `{"auths":{"${HOST}":${entry(password)}}}`);
  assert.equal(summaryOf(run).refreshed, 1);
});

Deno.test("two installations with different annotation keys refresh their own registries on their own schedule", async () => {
  await using ecr = startEcrProxy(env.motoUrl);
  // A's token (us-west-2) lives 1h, B's (eu-west-1) 12h. A runs with a 30m
  // window (a token inside the window is a failure: issue 14), then with a 2h one.
  ecr.tokenLifetime("us-west-2", 3600);
  const ns = await freshNamespace(env, "two-installations");
  const [A, B] = ["a.io/ecr", "b.io/ecr"];
  const [hostA, hostB] = [hostOf("111111111111/us-west-2"), hostOf("222222222222/eu-west-1")];
  await kubectl(env, [
    "-n",
    ns,
    "create",
    "secret",
    "docker-registry",
    "pull",
    "--docker-server=ghcr.io",
    "--docker-username=bot",
    "--docker-password=ghcr-pass",
  ]);
  await kubectl(env, [
    "-n",
    ns,
    "annotate",
    "secret",
    "pull",
    `${A}=111111111111/us-west-2`,
    `${B}=222222222222/eu-west-1`,
  ]);
  const run = (annotation: string, window = "6h") =>
    runKubeecr(env, [
      "--namespace",
      ns,
      "--annotation",
      annotation,
      "--refresh-window",
      window,
      ...JSON_LOG,
    ], { aws: ecr.awsEnv });
  const entryOf = async (host: string) => JSON.parse(await rawConfig(ns, "pull")).auths[host];
  const annotations = async () => (await readSecret(env, ns, "pull")).metadata!.annotations!;

  const a1 = await run(A, "30m");
  assert.equal(a1.code, 0, a1.stdout + a1.stderr);
  assert.equal(linesAbout(a1, ns, "pull")[0]?.msg, "refreshed");
  const b1 = await run(B);
  assert.equal(linesAbout(b1, ns, "pull")[0]?.msg, "refreshed");
  const afterB = await annotations();
  // Each installation has its own status, naming only its own registry.
  assert.deepEqual(Object.keys(JSON.parse(afterB["kubeecr.deft.com/status.a.io_ecr"])), [hostA]);
  assert.deepEqual(Object.keys(JSON.parse(afterB["kubeecr.deft.com/status.b.io_ecr"])), [hostB]);
  // The shared summary now says B's 12h: the old check read it and skipped A.
  const summaryExpiry = Date.parse(afterB[EXPIRES_AT]);
  assert.ok(summaryExpiry - Date.now() > 11 * 3600_000, afterB[EXPIRES_AT]);
  assert.equal(afterB[STATUS], undefined, "the default installation wrote nothing");
  const bEntry = await entryOf(hostB);

  // A's token expires within its (now 2h) window: A refreshes, and only its own registry.
  ecr.tokenLifetime("us-west-2", 12 * 3600);
  const a2 = await run(A, "2h");
  assert.equal(linesAbout(a2, ns, "pull")[0]?.msg, "refreshed", a2.stdout);
  assert.deepEqual(linesAbout(a2, ns, "pull")[0]?.registries, [hostA]);
  assert.deepEqual(await entryOf(hostB), bEntry, "B's entry untouched by A");
  assert.equal(
    (await annotations())["kubeecr.deft.com/status.b.io_ecr"],
    afterB["kubeecr.deft.com/status.b.io_ecr"],
  );
  assert.deepEqual((await entryOf("ghcr.io")).username, "bot");

  // B's token is still good for 12h: B stays fresh whatever A did.
  const b2 = await run(B);
  assert.equal(linesAbout(b2, ns, "pull")[0]?.msg, "fresh", b2.stdout);
  assert.equal(ecr.tokenCalls("eu-west-1"), 1);
  assert.equal(ecr.tokenCalls("us-west-2"), 2);
  assert.equal(summaryOf(b2)["ecr-calls"], 0);
});
