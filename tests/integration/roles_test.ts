/**
 * Issue 17, the role map (--roles), against the real API server and moto
 * through the ECR proxy, which also fronts STS: it counts AssumeRole per role
 * and GetAuthorizationToken per (role, region), the role being the one whose
 * assumed credentials signed the call. moto's token names the account of the
 * identity that fetched it (`<account>-auth-token`), so each Secret shows
 * whose token it got: the base principal is moto's 123456789012.
 *
 * Two tenants: team-a (a name and a glob) and team-b (a label selector). The
 * account SHARED is in both entries with different roles; RESERVED only in
 * team-a's; OTHER in none (served by the base principal).
 */

import assert from "node:assert/strict";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { kubectl, testEnv } from "../testenv/connect.ts";
import {
  type CliResult,
  createSecret,
  dockerConfigOf,
  eventsFor,
  linesAbout,
  readSecret,
  runKubeecr,
  STATUS,
  summaryOf,
} from "./cli.ts";

const env = await testEnv();
const JSON_LOG = ["--log-format=json"];

const BASE_ACCOUNT = "123456789012";
const RESERVED = "210987654321";
const SHARED = "333333333333";
const OTHER = "555555555555";
const ROLE_A = `arn:aws:iam::${RESERVED}:role/ecr-pull-team-a`;
const ROLE_B = "arn:aws:iam::444444444444:role/ecr-pull-team-b";
const ROLE_B2 = "arn:aws:iam::666666666666:role/ecr-pull-team-b-v2";

const host = (account: string, region: string) => `${account}.dkr.ecr.${region}.amazonaws.com`;

function describe(run: CliResult): string {
  return `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

/** The account the password of `host`'s entry names (moto's `<account>-auth-token-…`). */
async function writerOf(ns: string, name: string, registry: string): Promise<string | undefined> {
  const entry = dockerConfigOf(await readSecret(env, ns, name)).auths?.[registry];
  return entry ? /^(\d{12})-auth-token/.exec(entry.password)?.[1] : undefined;
}

async function namespace(name: string, labels: Record<string, string> = {}) {
  await kubectl(env, ["create", "namespace", name]);
  const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  if (pairs.length) await kubectl(env, ["label", "namespace", name, ...pairs]);
}

async function roleMap(text: string): Promise<string> {
  const path = await Deno.makeTempFile({ dir: env.dir, prefix: "roles-", suffix: ".yaml" });
  await Deno.writeTextFile(path, text);
  return path;
}

function mapFor(id: string, teamBRole = ROLE_B): string {
  return `roles:
  - role: ${ROLE_A}
    externalId: team-a
    accounts: ["${RESERVED}", "${SHARED}"]
    namespaces: ["team-a-${id}", "team-a-${id}-*"]
  - role: ${teamBRole}
    accounts: ["${SHARED}"]
    namespaceSelector: "tenant=b-${id}"
otherAccounts: base
`;
}

Deno.test("role map: each tenant gets its role's token, one AssumeRole per role, one ECR call per (role, region)", async () => {
  await using proxy = startEcrProxy(env.motoUrl);
  const id = crypto.randomUUID().slice(0, 6);
  const a = `team-a-${id}`;
  const aDev = `team-a-${id}-dev`;
  const b = `team-b-${id}`;
  await namespace(a);
  await namespace(aDev);
  await namespace(b, { tenant: `b-${id}` });
  const WEST = "us-west-2";
  const EU = "eu-west-1";
  await createSecret(env, a, { name: "pull", registries: `${RESERVED}/${WEST},${SHARED}/${WEST}` });
  await createSecret(env, aDev, { name: "pull", registries: `${RESERVED}/${EU}` });
  await createSecret(env, b, { name: "pull", registries: `${SHARED}/${WEST},${OTHER}/${WEST}` });
  // team-b asks for team-a's reserved account: refused, data left as it was.
  const untouched = '{"auths":{"ghcr.io":{"auth":"Ym90OnBhc3M="}}}';
  const stolen = await createSecret(env, b, {
    name: "steal",
    registries: `${RESERVED}/${WEST}`,
    dockerConfig: untouched,
  });
  const path = await roleMap(mapFor(id));
  const args = ["--roles", path, "--namespace", [a, aDev, b].join(","), ...JSON_LOG];

  const run = await runKubeecr(env, args, { aws: proxy.stsEnv });
  assert.equal(run.code, 1, describe(run));
  assert.equal(summaryOf(run).refreshed, 3, describe(run));
  assert.equal(summaryOf(run).failed, 1, describe(run));

  // Whose token each host got.
  assert.equal(await writerOf(a, "pull", host(RESERVED, WEST)), RESERVED);
  assert.equal(await writerOf(a, "pull", host(SHARED, WEST)), RESERVED, "team-a's role for SHARED");
  assert.equal(await writerOf(aDev, "pull", host(RESERVED, EU)), RESERVED, "the glob");
  assert.equal(await writerOf(b, "pull", host(SHARED, WEST)), "444444444444", "the selector");
  assert.equal(await writerOf(b, "pull", host(OTHER, WEST)), BASE_ACCOUNT, "not in the map: base");

  // Counted at the endpoints.
  assert.deepEqual(Object.fromEntries(proxy.assumeRoleCalls), { [ROLE_A]: 1, [ROLE_B]: 1 });
  assert.deepEqual(Object.fromEntries(proxy.roleTokenCalls), {
    [`${ROLE_A}|${WEST}`]: 1,
    [`${ROLE_A}|${EU}`]: 1,
    [`${ROLE_B}|${WEST}`]: 1,
    [`base|${WEST}`]: 1,
  });

  // The status records which role wrote each host; the log line and the event name it.
  const status = JSON.parse((await readSecret(env, b, "pull")).metadata!.annotations![STATUS]);
  assert.equal(status[host(SHARED, WEST)].role, ROLE_B);
  assert.equal(status[host(OTHER, WEST)].role, undefined);
  const refreshed = linesAbout(run, b, "pull").find((l) => l.msg === "refreshed")!;
  assert.deepEqual(refreshed.roles, [`${host(SHARED, WEST)}=${ROLE_B}`], describe(run));
  const bEvents = await eventsFor(env, await readSecret(env, b, "pull"));
  assert.ok(bEvents.some((e) => e.reason === "Refreshed" && e.message!.includes(ROLE_B)));

  // The refused Secret: untouched, a Warning naming namespace, account and the fix.
  const after = await readSecret(env, b, "steal");
  assert.equal(after.data![".dockerconfigjson"], stolen.data![".dockerconfigjson"]);
  assert.equal(after.metadata!.resourceVersion, stolen.metadata!.resourceVersion);
  const failed = linesAbout(run, b, "steal").find((l) => l.msg === "failed")!;
  assert.equal(failed.reason, "NotAllowedByRoleMap", describe(run));
  const warnings = (await eventsFor(env, after)).filter((e) => e.type === "Warning");
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].reason, "NotAllowedByRoleMap");
  for (const part of [b, RESERVED, "roles[0]", "cluster admin adds it"]) {
    assert.ok(warnings[0].message!.includes(part), `${part} in: ${warnings[0].message}`);
  }

  // Second run: everything written is fresh, nothing is assumed or fetched.
  const again = await runKubeecr(env, args, { aws: proxy.stsEnv });
  assert.equal(summaryOf(again).fresh, 3, describe(again));
  assert.equal(summaryOf(again).failed, 1, describe(again));
  assert.equal(proxy.tokenCalls(), 4);
  assert.deepEqual(Object.fromEntries(proxy.assumeRoleCalls), { [ROLE_A]: 1, [ROLE_B]: 1 });

  // The admin gives team-b another role: exactly its Secret is due, written by the new role.
  await Deno.writeTextFile(path, mapFor(id, ROLE_B2));
  const moved = await runKubeecr(env, [...args, "--log-level=debug"], { aws: proxy.stsEnv });
  assert.equal(summaryOf(moved).refreshed, 1, describe(moved));
  assert.ok(
    linesAbout(moved, b, "pull").some((l) =>
      l.msg === "due" && String(l.why).startsWith("role-changed")
    ),
    describe(moved),
  );
  assert.equal(await writerOf(b, "pull", host(SHARED, WEST)), "666666666666");
  assert.equal(await writerOf(b, "pull", host(OTHER, WEST)), BASE_ACCOUNT);
  assert.equal(proxy.assumeRoleCalls.get(ROLE_B2), 1);
  assert.equal(proxy.assumeRoleCalls.get(ROLE_A), 1, "team-a's Secrets were fresh: no AssumeRole");
});

/** team-a's namespace with a Secret for RESERVED, team-b's (by label) with one for SHARED. */
async function twoTenants() {
  const id = crypto.randomUUID().slice(0, 6);
  const a = `team-a-${id}`;
  const b = `team-b-${id}`;
  await namespace(a);
  await namespace(b, { tenant: `b-${id}` });
  await createSecret(env, a, { name: "pull", registries: `${RESERVED}/us-west-2` });
  const before = await createSecret(env, b, { name: "pull", registries: `${SHARED}/us-west-2` });
  return { id, a, b, before };
}

Deno.test("role map: a role STS refuses fails only its Secrets (exit 1), naming the role and the entry", async () => {
  await using proxy = startEcrProxy(env.motoUrl);
  const { id, a, b, before } = await twoTenants();
  proxy.failRole(ROLE_B);
  const path = await roleMap(mapFor(id));
  const run = await runKubeecr(env, ["--roles", path, "--namespace", `${a},${b}`, ...JSON_LOG], {
    aws: proxy.stsEnv,
  });
  assert.equal(run.code, 1, describe(run));
  assert.equal(summaryOf(run).refreshed, 1, describe(run));
  assert.equal(await writerOf(a, "pull", host(RESERVED, "us-west-2")), RESERVED);
  const failed = linesAbout(run, b, "pull").find((l) => l.msg === "failed")!;
  assert.equal(failed.reason, "RefreshFailed");
  for (const part of [ROLE_B, "roles[1]", "AccessDenied", "trust policy"]) {
    assert.ok(String(failed.error).includes(part), `${part} in: ${failed.error}`);
  }
  const after = await readSecret(env, b, "pull");
  assert.equal(after.metadata!.resourceVersion, before.metadata!.resourceVersion);
  assert.equal(proxy.assumeRoleCalls.get(ROLE_B), 1);
});

Deno.test("role map: a silent STS costs only that role's Secrets, within --request-timeout", async () => {
  await using proxy = startEcrProxy(env.motoUrl);
  const { id, a, b } = await twoTenants();
  proxy.hangRole(ROLE_B);
  const path = await roleMap(mapFor(id));
  const run = await runKubeecr(
    env,
    ["--roles", path, "--namespace", `${a},${b}`, "--request-timeout=1s", ...JSON_LOG],
    { aws: proxy.stsEnv, killAfterMs: 60_000 },
  );
  assert.equal(run.code, 1, describe(run));
  assert.equal(await writerOf(a, "pull", host(RESERVED, "us-west-2")), RESERVED);
  const failed = linesAbout(run, b, "pull").find((l) => l.msg === "failed")!;
  assert.ok(
    String(failed.error).includes(`cannot assume role ${ROLE_B}`) &&
      String(failed.error).includes("no answer within --request-timeout 1s"),
    describe(run),
  );
  assert.ok(run.seconds < 30, `${run.seconds}s`);
});

Deno.test("role map: a role that allows no 12-hour session is assumed for STS's default hour, with a warning", async () => {
  await using proxy = startEcrProxy(env.motoUrl);
  const id = crypto.randomUUID().slice(0, 6);
  const a = `team-a-${id}`;
  await namespace(a);
  await createSecret(env, a, { name: "pull", registries: `${RESERVED}/us-west-2` });
  proxy.maxSession(ROLE_A, 3600);
  const run = await runKubeecr(
    env,
    ["--roles", await roleMap(mapFor(id)), "--namespace", a, ...JSON_LOG],
    { aws: proxy.stsEnv },
  );
  assert.equal(run.code, 0, describe(run));
  const warning = run.lines.find((l) => l.msg?.toString().startsWith("role allows no 12-hour"));
  assert.deepEqual([warning?.role, warning?.entry], [ROLE_A, "roles[0]"], describe(run));
  // Asked for 12 h (refused), then for STS's default: two calls, the second one answered.
  assert.equal(proxy.assumeRoleCalls.get(ROLE_A), 2);
  assert.equal(await writerOf(a, "pull", host(RESERVED, "us-west-2")), RESERVED);
});

Deno.test("role map: otherAccounts deny refuses accounts the map does not name", async () => {
  await using proxy = startEcrProxy(env.motoUrl);
  const id = crypto.randomUUID().slice(0, 6);
  const a = `team-a-${id}`;
  await namespace(a);
  await createSecret(env, a, { name: "pull", registries: `${OTHER}/us-west-2` });
  const path = await roleMap(mapFor(id).replace("otherAccounts: base", "otherAccounts: deny"));
  const run = await runKubeecr(env, ["--roles", path, "--namespace", a, ...JSON_LOG], {
    aws: proxy.stsEnv,
  });
  assert.equal(run.code, 1, describe(run));
  const failed = linesAbout(run, a, "pull").find((l) => l.msg === "failed")!;
  assert.equal(failed.reason, "NotAllowedByRoleMap");
  assert.ok(String(failed.error).includes("otherAccounts: deny"), describe(run));
  assert.equal(proxy.tokenCalls(), 0);
});

Deno.test("role map: a bad map stops the run before anything is looked at (exit 2)", async () => {
  await using proxy = startEcrProxy(env.motoUrl);
  const id = crypto.randomUUID().slice(0, 6);
  const a = `team-a-${id}`;
  await namespace(a);
  const before = await createSecret(env, a, { name: "pull", registries: `${RESERVED}/us-west-2` });
  const cases: [string, string][] = [
    [mapFor(id).replace(`"${RESERVED}", `, "210987654321, "), "accounts[0] is a number"],
    [mapFor(id).replace("namespaceSelector", "namspaceSelector"), 'unknown key "namspaceSelector"'],
    [mapFor(id).replace(`tenant=b-${id}`, "tenant in (("), "namespaceSelector"],
    ["roles: [\n", "not valid YAML at line"],
  ];
  for (const [text, says] of cases) {
    const path = await roleMap(text);
    const run = await runKubeecr(env, ["--roles", path, "--namespace", a, ...JSON_LOG], {
      aws: proxy.stsEnv,
    });
    assert.equal(run.code, 2, describe(run));
    const error = String(run.lines.find((l) => l.level === "error")?.error);
    assert.ok(error.includes(says), `${says} in: ${describe(run)}`);
    assert.ok(error.includes(path), describe(run));
  }
  const missing = await runKubeecr(env, ["--roles", `${env.dir}/no-such-roles.yaml`], {
    aws: proxy.stsEnv,
  });
  assert.equal(missing.code, 2, describe(missing));
  assert.ok(missing.stdout.includes("cannot read the role map"), describe(missing));
  assert.equal(
    (await readSecret(env, a, "pull")).metadata!.resourceVersion,
    before.metadata!.resourceVersion,
  );
  assert.equal(proxy.tokenCalls(), 0);
  assert.equal(proxy.assumeRoleCalls.size, 0);
});
