// The role map's pure parts: parseRoleMap (one valid map, one mutation per
// case) and resolveRole (which entry serves an account in a namespace).

import assert from "node:assert/strict";
import { parseRoleMap, resolveRole, type RoleMap, selectorsOf } from "../../lib/core/roles.ts";
import { ConfigError } from "../../lib/core/errors.ts";

const PATH = "/etc/kubeecr/roles.yaml";
const A = "arn:aws:iam::210987654321:role/ecr-pull-team-a";
const B = "arn:aws:iam::444444444444:role/path/ecr-pull-team-b";
const VALID = `roles:
  - role: ${A}
    externalId: team-a
    accounts: ["210987654321", "333333333333"]
    namespaces: ["team-a", "team-a-*"]
  - role: ${B}
    accounts: ["333333333333"]
    namespaceSelector: "tenant=b"
otherAccounts: base
`;

Deno.test("parseRoleMap: the valid map", () => {
  assert.deepEqual(parseRoleMap(VALID, PATH), {
    path: PATH,
    otherAccounts: "base",
    roles: [
      {
        index: 0,
        role: A,
        externalId: "team-a",
        accounts: ["210987654321", "333333333333"],
        namespaces: ["team-a", "team-a-*"],
      },
      {
        index: 1,
        role: B,
        accounts: ["333333333333"],
        namespaces: [],
        namespaceSelector: "tenant=b",
      },
    ],
  });
  assert.equal(parseRoleMap("roles: []", PATH).otherAccounts, "base", "base unless it says deny");
  assert.deepEqual(selectorsOf(parseRoleMap(VALID, PATH)), ["tenant=b"]);
});

Deno.test("parseRoleMap: each mistake is a ConfigError naming the file, the entry and the fix", async (t) => {
  const cases: [string, string, string][] = [
    ["YAML syntax", "roles: [\n", "not valid YAML at line"],
    ["a list at the top", "- role: x", "must be a mapping with a roles list"],
    ["no roles", "otherAccounts: deny", "roles must be a list"],
    ["unknown top key", VALID + "other: 1\n", 'the top level has the unknown key "other"'],
    [
      "otherAccounts typo",
      VALID.replace("otherAccounts: base", "otherAccounts: none"),
      "write base or deny",
    ],
    ["entry not a mapping", "roles: [x]", "roles[0] must be a mapping"],
    ["role missing", VALID.replace(`role: ${A}`, "rol: x"), 'roles[0] has the unknown key "rol"'],
    [
      "role not an ARN",
      VALID.replace(A, "ecr-pull-team-a"),
      'roles[0]: role "ecr-pull-team-a" is not an IAM role ARN',
    ],
    [
      "a user ARN",
      VALID.replace(A, "arn:aws:iam::210987654321:user/bob"),
      "is not an IAM role ARN",
    ],
    [
      "externalId too short",
      VALID.replace("externalId: team-a", "externalId: x"),
      `roles[0] (${A}): externalId must be`,
    ],
    [
      "externalId a number",
      VALID.replace("externalId: team-a", "externalId: 1234"),
      "externalId must be",
    ],
    [
      "an account as a number",
      VALID.replace('"333333333333"]\n    namespaceS', "333333333333]\n    namespaceS"),
      `roles[1] (${B}): accounts[0] is a number; quote it: "333333333333"`,
    ],
    [
      "an account that lost its leading zero",
      VALID.replace('["210987654321"', "[012345678901"),
      'quote it: "012345678901"',
    ],
    [
      "an account of 11 digits",
      VALID.replace('"210987654321"', '"21098765432"'),
      'accounts[0] "21098765432" is not a 12-digit account id',
    ],
    [
      "no accounts",
      VALID.replace('accounts: ["333333333333"]', "accounts: []"),
      "accounts must list",
    ],
    [
      "a namespace with a capital",
      VALID.replace('"team-a-*"', '"Team-A"'),
      'namespaces[1] "Team-A" is not a namespace name or glob',
    ],
    [
      "namespaces not a list",
      VALID.replace('["team-a", "team-a-*"]', "team-a"),
      "namespaces must be a list",
    ],
    [
      "empty selector",
      VALID.replace('"tenant=b"', '""'),
      "namespaceSelector must be a label selector string",
    ],
    [
      "matches no namespace",
      VALID.replace('    namespaceSelector: "tenant=b"\n', ""),
      `roles[1] (${B}): matches no namespace`,
    ],
    [
      "an entry an earlier one always wins for",
      VALID.replace(
        "otherAccounts: base",
        `  - role: ${B}\n    accounts: ["210987654321"]\n    namespaces: ["team-a"]\n` +
          "otherAccounts: base",
      ),
      `roles[2] (${B}) is never used: the first matching entry wins, and roles[0] (${A}) comes first`,
    ],
    [
      "one role, two external IDs",
      VALID.replace(B, A),
      "also in roles[0] (" + A + ") with another externalId",
    ],
  ];
  for (const [name, text, says] of cases) {
    await t.step(name, () => {
      let err: unknown;
      try {
        parseRoleMap(text, PATH);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof ConfigError, `a ConfigError, got ${err}`);
      assert.equal(err.flag, "--roles");
      assert.ok(err.message.startsWith(`role map ${PATH}: `), err.message);
      assert.ok(err.message.includes(says), `${says} in: ${err.message}`);
    });
  }
});

Deno.test("resolveRole: first entry naming the account and allowing the namespace", async (t) => {
  const map: RoleMap = parseRoleMap(VALID, PATH);
  const selected = new Map([["tenant=b", new Set(["team-b", "team-b-dev"])]]);
  const cases: [string, string, string, string][] = [
    ["a name", "210987654321", "team-a", `role ${A}`],
    ["a glob", "210987654321", "team-a-dev", `role ${A}`],
    ["a glob needs its dash", "210987654321", "team-ab", "refused"],
    ["the same account in two entries: team-a's", "333333333333", "team-a", `role ${A}`],
    [
      "the same account in two entries: team-b's by its label",
      "333333333333",
      "team-b-dev",
      `role ${B}`,
    ],
    ["an account reserved to team-a, asked for in team-b", "210987654321", "team-b", "refused"],
    ["a shared account in a namespace neither allows", "333333333333", "other", "refused"],
    ["an account the map does not name", "555555555555", "team-b", "base"],
  ];
  for (const [name, account, namespace, want] of cases) {
    await t.step(name, () => {
      const got = resolveRole(map, account, namespace, selected);
      assert.equal(got.kind === "role" ? `role ${got.entry.role}` : got.kind, want);
    });
  }
  await t.step("the refusal names the namespace, the account, the entries and the fix", () => {
    const got = resolveRole(map, "210987654321", "team-b", selected);
    assert.equal(got.kind, "refused");
    const m = (got as { message: string }).message;
    for (
      const part of [
        PATH,
        "account 210987654321",
        "namespace team-b",
        `roles[0] (${A}) allows team-a, team-a-*`,
        "a cluster admin adds it",
      ]
    ) {
      assert.ok(m.includes(part), `${part} in: ${m}`);
    }
  });
  await t.step("otherAccounts: deny refuses what the map does not name", () => {
    const deny = { ...map, otherAccounts: "deny" as const };
    const got = resolveRole(deny, "555555555555", "team-a", selected);
    assert.equal(got.kind, "refused");
    assert.ok((got as { message: string }).message.includes("otherAccounts: deny"));
    assert.equal(resolveRole(deny, "210987654321", "team-a", selected).kind, "role");
  });
  await t.step("a glob matches whole names, '?' one character", () => {
    const glob = parseRoleMap(
      `roles: [{role: "${A}", accounts: ["210987654321"], namespaces: ["t?-*-prod"]}]`,
      PATH,
    );
    const kind = (ns: string) => resolveRole(glob, "210987654321", ns, new Map()).kind;
    assert.equal(kind("t1-web-prod"), "role");
    assert.equal(kind("t12-web-prod"), "refused");
    assert.equal(kind("t1-web-prod-x"), "refused");
  });
});
