/**
 * The manifests as users get them: `kubectl kustomize` of manifests/,
 * manifests/namespaced/, examples/usage/, examples/installation/ and the
 * components as users include them renders without a single warning; the
 * rendered RBAC grants exactly what the program needs (secrets get, list,
 * patch; events create, get, patch; list on namespaces with the namespace opt-in), only
 * to the kubeecr ServiceAccount; the CronJob carries its hardening; each
 * component adds exactly what it says and plain manifests/ none of it.
 *
 * "What the program needs" is also checked against reality: the rendered
 * cluster-wide install is applied to a test environment of its own, the
 * program runs with its ServiceAccount's token, and the API server's audit
 * log shows every (resource, verb) it used.
 *
 * The rendered YAML is turned into JSON by the environment's kubectl
 * (`create --dry-run=client -o json`), so no YAML library is needed. Unlike
 * `apply --dry-run=client` it neither reads live objects nor adds the
 * last-applied annotation, so the JSON is the manifests' own.
 */

import assert from "node:assert/strict";
import { kubectl, testEnv, writeKubeconfig } from "../testenv/connect.ts";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { startTestEnv } from "../testenv/env.ts";
import { run } from "../testenv/util.ts";
import {
  type AuditRecord,
  auditRecords,
  createSecret,
  dockerConfigOf,
  readSecret,
  runKubeecr,
} from "./cli.ts";
import { copyInstallation } from "./install.ts";

const REPO = new URL("../../", import.meta.url).pathname;

/** The role map's ConfigMap as the roles component tells users to generate it (from roles.yaml). */
const ROLES_CONFIGMAP = "configMapGenerator: [{name: kubeecr-roles, namespace: kubeecr, " +
  "files: [roles.yaml], options: {disableNameSuffixHash: true}}]";

/**
 * Kustomizations a user writes around the components (components do not
 * render on their own): rendered from a scratch directory beside copies of
 * manifests/ and of examples/installation's annotation-key.yaml.
 */
const COMPOSED: Record<string, string[]> = {
  "manifests + admission": [
    "resources: [../manifests, annotation-key.yaml]",
    "components: [../manifests/components/admission]",
  ],
  "manifests + admission + namespace-opt-in": [
    "resources: [../manifests, annotation-key.yaml]",
    "components: [../manifests/components/admission, ../manifests/components/namespace-opt-in]",
  ],
  "manifests/namespaced + admission": [
    "resources: [../manifests/namespaced, annotation-key.yaml]",
    "components: [../manifests/components/admission]",
  ],
  "manifests + admission + namespace-opt-in + provision": [
    "resources: [../manifests, annotation-key.yaml, provision.yaml]",
    "components: [../manifests/components/admission, ../manifests/components/namespace-opt-in, " +
    "../manifests/components/provision]",
  ],
  "manifests + roles": [
    "resources: [../manifests]",
    "components: [../manifests/components/roles]",
    ROLES_CONFIGMAP,
  ],
  "manifests/namespaced + roles": [
    "resources: [../manifests/namespaced]",
    "components: [../manifests/components/roles]",
    ROLES_CONFIGMAP,
  ],
};
/** Combinations that must not render: they would install half of the opt-in. */
const MISUSED: Record<string, { lines: string[]; error: string }> = {
  "manifests/namespaced + admission + namespace-opt-in (no ClusterRole)": {
    lines: [
      "resources: [../manifests/namespaced, annotation-key.yaml]",
      "components: [../manifests/components/admission, ../manifests/components/namespace-opt-in]",
    ],
    error: "nothing selected by ClusterRole",
  },
  "manifests + namespace-opt-in (no admission component)": {
    lines: ["resources: [../manifests]", "components: [../manifests/components/namespace-opt-in]"],
    error: "nothing selected by ValidatingAdmissionPolicy",
  },
  "manifests + roles (no kubeecr-roles ConfigMap)": {
    lines: ["resources: [../manifests]", "components: [../manifests/components/roles]"],
    error: "nothing selected by ConfigMap.[noVer].[noGrp]/kubeecr-roles.kubeecr",
  },
  "manifests + admission (no annotation-key.yaml)": {
    lines: ["resources: [../manifests]", "components: [../manifests/components/admission]"],
    error: "nothing selected by ConfigMap.[noVer].[noGrp]/kubeecr-annotation-key",
  },
  "manifests + admission + provision (no namespace opt-in)": {
    lines: [
      "resources: [../manifests, annotation-key.yaml, provision.yaml]",
      "components: [../manifests/components/admission, ../manifests/components/provision]",
    ],
    error: "env.[name=KUBEECR_NAMESPACE_SELECTOR].value` is missing for replacement source",
  },
  "manifests + admission + namespace-opt-in + provision (no provision.yaml)": {
    lines: [
      "resources: [../manifests, annotation-key.yaml]",
      "components: [../manifests/components/admission, ../manifests/components/namespace-opt-in, " +
      "../manifests/components/provision]",
    ],
    error: "nothing selected by ConfigMap.[noVer].[noGrp]/kubeecr-provision",
  },
};
const INSTALLS = [
  "manifests",
  "manifests/namespaced",
  "examples/installation",
  "examples/provision",
  ...Object.keys(COMPOSED),
];
const TARGETS = [...INSTALLS, "examples/usage"];
/** The installs that list namespaces: the namespace opt-in component, or the role map's selectors. */
const OPT_IN = [
  "examples/installation",
  "manifests + admission + namespace-opt-in",
  "manifests + roles",
];
/** The installs with the provision component (and so the opt-in). */
const PROVISION = ["examples/provision", "manifests + admission + namespace-opt-in + provision"];

/** The grants the program needs, as "resource.group:verb" (core group: no suffix). */
const NEEDED = [
  "events:create",
  "events:get",
  "events:patch",
  "secrets:get",
  "secrets:list",
  "secrets:patch",
];
/** What --namespace-selector adds: one namespace list, nothing else on namespaces. */
const NEEDED_OPT_IN = [...NEEDED, "namespaces:list"].sort();
/** What --provision adds: create on secrets, nothing else. */
const NEEDED_PROVISION = [...NEEDED_OPT_IN, "secrets:create"].sort();
const SERVICE_ACCOUNT = { kind: "ServiceAccount", name: "kubeecr", namespace: "kubeecr" };
const SA_USER = "system:serviceaccount:kubeecr:kubeecr";

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // deno-lint-ignore no-explicit-any
  [field: string]: any;
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

interface Rendered {
  code: number;
  stderr: string;
  items: Obj[];
}

const env = await testEnv();
const renders = new Map<string, Promise<Rendered>>();

/** `kubectl kustomize <target>`; examples/installation from a scratch copy with aws.env made. */
function rendered(target: string): Promise<Rendered> {
  let result = renders.get(target);
  if (!result) {
    result = render(target);
    renders.set(target, result);
  }
  return result;
}

async function render(target: string): Promise<Rendered> {
  // In the environment's directory: removed with it even if this test is interrupted.
  const work = await Deno.makeTempDir({ dir: env.dir, prefix: "render-" });
  try {
    let dir = `${REPO}${target}`;
    if (target === "examples/installation" || target === "examples/provision") {
      await copyInstallation(work);
      dir = `${work}/${target}`;
    } else if (target in COMPOSED || target in MISUSED) {
      await copyInstallation(work);
      dir = `${work}/composed`;
      await Deno.mkdir(dir);
      await Deno.copyFile(
        `${work}/examples/installation/annotation-key.yaml`,
        `${dir}/annotation-key.yaml`,
      );
      await Deno.copyFile(
        `${work}/manifests/components/provision/provision.example.yaml`,
        `${dir}/provision.yaml`,
      );
      await Deno.copyFile(
        `${work}/manifests/components/roles/roles.example.yaml`,
        `${dir}/roles.yaml`,
      );
      const lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization"];
      await Deno.writeTextFile(
        `${dir}/kustomization.yaml`,
        [...lines, ...(COMPOSED[target] ?? MISUSED[target].lines), ""].join("\n"),
      );
    }
    const out = await new Deno.Command(env.kubectl, {
      args: ["kustomize", dir],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    const stderr = decode(out.stderr);
    if (out.code !== 0) return { code: out.code, stderr, items: [] };
    const json = await kubectl(
      env,
      ["create", "--dry-run=client", "-o", "json", "-f", "-"],
      decode(out.stdout),
    );
    return { code: out.code, stderr, items: parseObjects(json) };
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/**
 * `create -o json` prints one indented JSON document per object, back to back
 * (not a List). A top-level "}" directly followed by a newline and "{" only
 * occurs between two documents: strings cannot hold a raw newline, and inside
 * a document a "}" is followed by ",", "}" or "]".
 */
function parseObjects(json: string): Obj[] {
  return JSON.parse(`[${json.trim().replaceAll("}\n{", "},\n{")}]`);
}

function ofKind(items: Obj[], ...kinds: string[]): Obj[] {
  return items.filter((o) => kinds.includes(o.kind));
}

/** One Role's or ClusterRole's rules as sorted "resource.group:verb" strings. */
function grantsOf(role: Obj): string[] {
  const where = `${role.kind} ${role.metadata.namespace ?? ""}/${role.metadata.name}`;
  assert.equal(role.aggregationRule, undefined, `${where}: no aggregationRule`);
  const grants = new Set<string>();
  for (const rule of (role.rules ?? []) as PolicyRule[]) {
    assert.equal(rule.resourceNames, undefined, `${where}: no resourceNames`);
    assert.equal(rule.nonResourceURLs, undefined, `${where}: no nonResourceURLs`);
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        for (const verb of rule.verbs ?? []) {
          grants.add(`${resource}${group ? `.${group}` : ""}:${verb}`);
        }
      }
    }
  }
  return [...grants].sort();
}

for (const target of TARGETS) {
  Deno.test(`kubectl kustomize ${target} renders with exit 0 and no warnings`, async () => {
    const { code, stderr, items } = await rendered(target);
    assert.equal(code, 0, stderr);
    assert.equal(stderr, "", `warnings while rendering ${target}`);
    assert.ok(items.length > 0, `${target} renders objects`);
  });
}

for (const [target, { error }] of Object.entries(MISUSED)) {
  Deno.test(`kubectl kustomize ${target} fails, naming what is missing`, async () => {
    const { code, stderr } = await rendered(target);
    assert.notEqual(code, 0);
    assert.ok(stderr.includes(error), stderr);
  });
}

for (const target of INSTALLS) {
  const needed = PROVISION.includes(target)
    ? NEEDED_PROVISION
    : OPT_IN.includes(target)
    ? NEEDED_OPT_IN
    : NEEDED;
  Deno.test(`${target}: RBAC grants exactly ${needed.join(", ")}, to the kubeecr ServiceAccount only`, async () => {
    const { items } = await rendered(target);
    const roles = ofKind(items, "ClusterRole", "Role");
    assert.ok(roles.length > 0, "the install has RBAC");
    const union = new Set<string>();
    for (const role of roles) {
      // Each role on its own, so a namespaced install cannot miss a verb in one namespace.
      assert.deepEqual(grantsOf(role), needed, `${role.kind} ${role.metadata.namespace}`);
      grantsOf(role).forEach((g) => union.add(g));
    }
    assert.deepEqual([...union].sort(), needed);

    const bindings = ofKind(items, "ClusterRoleBinding", "RoleBinding");
    assert.equal(bindings.length, roles.length, "one binding per role");
    for (const binding of bindings) {
      assert.deepEqual(binding.subjects, [SERVICE_ACCOUNT]);
      const ref = binding.roleRef;
      const bound = roles.find((r) =>
        r.kind === ref.kind && r.metadata.name === ref.name &&
        r.metadata.namespace === binding.metadata.namespace
      );
      assert.ok(bound, `${binding.kind} ${binding.metadata.name} binds a rendered role`);
    }
    const sa = ofKind(items, "ServiceAccount");
    assert.deepEqual(sa.map((s) => [s.metadata.namespace, s.metadata.name]), [[
      "kubeecr",
      "kubeecr",
    ]]);
  });

  Deno.test(`${target}: the CronJob runs one hardened, bounded pod at a time`, async () => {
    const { items } = await rendered(target);
    const [cronjob, ...more] = ofKind(items, "CronJob");
    assert.equal(more.length, 0, "one CronJob");
    const spec = cronjob.spec;
    assert.equal(spec.concurrencyPolicy, "Forbid");
    assert.ok(spec.startingDeadlineSeconds > 0, "startingDeadlineSeconds");
    assert.ok(spec.successfulJobsHistoryLimit >= 0, "successfulJobsHistoryLimit");
    assert.ok(spec.failedJobsHistoryLimit >= 0, "failedJobsHistoryLimit");
    const job = spec.jobTemplate.spec;
    // README: "retries 0 times (the next run is the retry)".
    assert.equal(job.backoffLimit, 0, "backoffLimit");
    assert.ok(job.ttlSecondsAfterFinished > 0, "ttlSecondsAfterFinished");

    const pod = job.template.spec;
    assert.equal(pod.serviceAccountName, "kubeecr");
    assert.equal(pod.securityContext?.runAsNonRoot, true);
    assert.equal(pod.securityContext?.seccompProfile?.type, "RuntimeDefault");
    assert.equal(pod.containers.length, 1);
    const container = pod.containers[0];
    assert.deepEqual(container.envFrom, [
      { secretRef: { name: "kubeecr-aws-secrets", optional: true } },
    ]);
    const sc = container.securityContext;
    assert.equal(sc?.runAsNonRoot, true);
    assert.equal(sc?.readOnlyRootFilesystem, true);
    assert.equal(sc?.allowPrivilegeEscalation, false);
    assert.deepEqual(sc?.capabilities, { drop: ["ALL"] });
    assert.equal(sc?.seccompProfile?.type, "RuntimeDefault");
    assert.ok(container.resources?.requests?.cpu, "cpu request");
    assert.ok(container.resources?.requests?.memory, "memory request");
    assert.ok(container.resources?.limits?.memory, "memory limit");
  });
}

Deno.test("examples/installation: the keys Secret has the exact name the CronJob reads", async () => {
  const { items } = await rendered("examples/installation");
  const secret = ofKind(items, "Secret").find((s) => s.metadata.name === "kubeecr-aws-secrets");
  assert.equal(secret?.metadata.namespace, "kubeecr");
  assert.deepEqual(Object.keys(secret?.data ?? {}).sort(), [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
  ]);
});

/** The kubeecr container's env as name → value (or "valueFrom"). */
function envOf(items: Obj[]): Record<string, string> {
  const [cronjob] = ofKind(items, "CronJob");
  const container = cronjob.spec.jobTemplate.spec.template.spec.containers[0];
  return Object.fromEntries(
    (container.env ?? []).map((e: { name: string; value?: string }) => [
      e.name,
      e.value ?? "valueFrom",
    ]),
  );
}

/** Every object but the CronJob, the ClusterRole and the policy, which the components change. */
function untouched(items: Obj[]): Obj[] {
  return items.filter((o) =>
    !["CronJob", "ClusterRole", "ValidatingAdmissionPolicy"].includes(o.kind)
  );
}

Deno.test("plain manifests/ keeps today's behaviour: no policy, no namespace selector, no key override", async () => {
  const { items } = await rendered("manifests");
  assert.deepEqual(
    ofKind(items, "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"),
    [],
  );
  assert.deepEqual(envOf(items), {});
});

Deno.test("the admission component adds its policy and binding, the key from the parameter, and no RBAC", async () => {
  const plain = (await rendered("manifests")).items;
  const { items } = await rendered("manifests + admission");
  assert.deepEqual(ofKind(items, "ClusterRole", "Role"), ofKind(plain, "ClusterRole", "Role"));
  assert.deepEqual(
    untouched(items).filter((o) => !o.kind.startsWith("ValidatingAdmission")),
    untouched(plain),
  );
  const [policy] = ofKind(items, "ValidatingAdmissionPolicy");
  const [binding] = ofKind(items, "ValidatingAdmissionPolicyBinding");
  assert.equal(policy.apiVersion, "admissionregistration.k8s.io/v1");
  assert.equal(binding.spec.policyName, policy.metadata.name);
  assert.deepEqual(binding.spec.validationActions, ["Deny"]);
  assert.equal(binding.spec.paramRef, undefined);
  // The key parameter reaches the policy and the program, and is not applied itself.
  assert.ok(
    policy.spec.matchConditions[0].expression.includes(
      `'deft.com/kubeecr' in object.metadata.annotations`,
    ),
  );
  assert.deepEqual(envOf(items), { KUBEECR_ANNOTATION: "deft.com/kubeecr" });
  assert.equal(items.some((o) => o.metadata.name === "kubeecr-annotation-key"), false);
});

Deno.test("the namespace-opt-in component adds exactly list on namespaces, the selector and the policy rule", async () => {
  const before = (await rendered("manifests + admission")).items;
  const { items } = await rendered("manifests + admission + namespace-opt-in");
  const [role] = ofKind(items, "ClusterRole");
  const [roleBefore] = ofKind(before, "ClusterRole");
  const added = grantsOf(role).filter((g) => !grantsOf(roleBefore).includes(g));
  assert.deepEqual(added, ["namespaces:list"]);
  assert.deepEqual(grantsOf(roleBefore).filter((g) => !grantsOf(role).includes(g)), []);
  assert.deepEqual(envOf(items), {
    KUBEECR_ANNOTATION: "deft.com/kubeecr",
    KUBEECR_NAMESPACE_SELECTOR: "kubeecr.deft.com/enabled=true",
  });
  const rules = ofKind(items, "ValidatingAdmissionPolicy")[0].spec.validations;
  const rulesBefore = ofKind(before, "ValidatingAdmissionPolicy")[0].spec.validations;
  assert.deepEqual(rules.slice(0, -1), rulesBefore);
  assert.match(
    rules.at(-1).expression,
    /namespaceObject\.metadata\.labels\['kubeecr\.deft\.com\/enabled'\] == 'true'/,
  );
  assert.deepEqual(untouched(items), untouched(before));
});

Deno.test("the provision component adds exactly create on secrets, --provision and the mutating policy", async () => {
  const before = (await rendered("manifests + admission + namespace-opt-in")).items;
  const { items } = await rendered("manifests + admission + namespace-opt-in + provision");
  const [role] = ofKind(items, "ClusterRole");
  const [roleBefore] = ofKind(before, "ClusterRole");
  assert.deepEqual(grantsOf(role).filter((g) => !grantsOf(roleBefore).includes(g)), [
    "secrets:create",
  ]);
  assert.deepEqual(grantsOf(roleBefore).filter((g) => !grantsOf(role).includes(g)), []);
  assert.deepEqual(envOf(items), {
    ...envOf(before),
    KUBEECR_PROVISION: "ecr-pull=123456789012/us-west-2",
  });
  const [policy] = ofKind(items, "MutatingAdmissionPolicy");
  const [binding] = ofKind(items, "MutatingAdmissionPolicyBinding");
  assert.equal(policy.apiVersion, "admissionregistration.k8s.io/v1");
  assert.equal(binding.spec.policyName, policy.metadata.name);
  assert.deepEqual(policy.spec.matchConstraints.namespaceSelector, {
    matchLabels: { "kubeecr.deft.com/enabled": "true" },
  });
  assert.equal(policy.spec.variables[0].expression, "'ecr-pull'");
  // The installation's labels, on the objects the component adds (kustomize's do not reach them).
  for (const o of [policy, binding]) {
    assert.equal(o.metadata.labels?.["app.kubernetes.io/name"], "kubeecr", o.kind);
  }
  assert.equal(items.some((o) => o.metadata.name === "kubeecr-provision"), false);
  assert.deepEqual(
    untouched(items).filter((o) => !o.kind.startsWith("MutatingAdmission")),
    untouched(before),
  );
  // examples/provision is that install on top of examples/installation.
  const example = (await rendered("examples/provision")).items;
  for (const kind of ["ClusterRole", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"]) {
    assert.deepEqual(ofKind(example, kind), ofKind(items, kind), kind);
  }
});

Deno.test("the roles component adds the map's mount and variable, and list on namespaces only where a ClusterRole is", async () => {
  const plain = (await rendered("manifests")).items;
  const { items } = await rendered("manifests + roles");
  const added = grantsOf(ofKind(items, "ClusterRole")[0]).filter((g) =>
    !grantsOf(ofKind(plain, "ClusterRole")[0]).includes(g)
  );
  assert.deepEqual(added, ["namespaces:list"]);
  assert.deepEqual(envOf(items), { KUBEECR_ROLES: "/etc/kubeecr/roles.yaml" });
  const pod = ofKind(items, "CronJob")[0].spec.jobTemplate.spec.template.spec;
  assert.deepEqual(pod.volumes, [{ name: "roles", configMap: { name: "kubeecr-roles" } }]);
  assert.deepEqual(pod.containers[0].volumeMounts, [
    { name: "roles", mountPath: "/etc/kubeecr", readOnly: true },
  ]);
  // The mount is the directory the cronjob sandbox may read.
  const denoJson = JSON.parse(await Deno.readTextFile(`${REPO}deno.json`));
  assert.ok(denoJson.permissions.cronjob.read.allow.includes("/etc/kubeecr"));
  const [map] = ofKind(items, "ConfigMap").filter((o) => o.metadata.name === "kubeecr-roles");
  assert.equal(map.metadata.namespace, "kubeecr");
  assert.deepEqual(
    untouched(items).filter((o) => o.kind !== "ConfigMap"),
    untouched(plain),
  );
  // Namespaced: the same mount, no ClusterRole to extend, the Roles unchanged.
  const namespaced = (await rendered("manifests/namespaced")).items;
  const withRoles = (await rendered("manifests/namespaced + roles")).items;
  assert.deepEqual(
    ofKind(withRoles, "Role", "ClusterRole"),
    ofKind(namespaced, "Role", "ClusterRole"),
  );
  assert.equal(envOf(withRoles).KUBEECR_ROLES, "/etc/kubeecr/roles.yaml");
});

Deno.test("examples/installation is the hardened install: both components", async () => {
  const installation = (await rendered("examples/installation")).items;
  const composed = (await rendered("manifests + admission + namespace-opt-in")).items;
  for (
    const kind of ["ClusterRole", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
  ) {
    assert.deepEqual(ofKind(installation, kind), ofKind(composed, kind), kind);
  }
  assert.equal(envOf(installation).KUBEECR_NAMESPACE_SELECTOR, "kubeecr.deft.com/enabled=true");
  const usage = (await rendered("examples/usage")).items;
  assert.equal(ofKind(usage, "Namespace")[0].metadata.labels?.["kubeecr.deft.com/enabled"], "true");
});

/** An audit record with the fields that name a resource fully. */
type Audited = AuditRecord & { objectRef?: { apiGroup?: string; subresource?: string } };

Deno.test("the program, run with the rendered ClusterRole, uses only granted verbs, and each write verb it is granted", async () => {
  // An environment of its own: the audit log then holds this install's requests only,
  // and a cluster-wide run cannot touch other tests' Secrets.
  const own = await startTestEnv({ log: () => {} });
  const ecr = startEcrProxy(own.motoUrl);
  try {
    const { items } = await rendered("manifests");
    const as = (args: string[], stdin?: string) =>
      run(own.kubectl, ["--kubeconfig", own.kubeconfig, ...args], { stdin });
    await as(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
    const granted = grantsOf(ofKind(items, "ClusterRole")[0]);

    // Every path that writes or reports: two due Secrets, a wrong type, a bad
    // annotation, a docker config that is not JSON.
    for (const ns of ["team-one", "team-two"]) await as(["create", "namespace", ns]);
    const valid = "123456789012/us-west-2";
    await createSecret(own, "team-one", { name: "pull", registries: valid });
    await createSecret(own, "team-two", {
      name: "pull",
      registries: `${valid},210987654321/eu-central-1`,
    });
    await createSecret(own, "team-two", { name: "opaque", registries: valid, type: "Opaque" });
    await createSecret(own, "team-one", { name: "bad-annotation", registries: "us-west-2" });
    await createSecret(own, "team-one", {
      name: "bad-config",
      registries: valid,
      dockerConfig: `{"auths":"x"}`,
    });

    const token = (await as(["-n", "kubeecr", "create", "token", "kubeecr"])).trim();
    const KUBECONFIG = await writeKubeconfig(own, { token });
    const cli = (args: string[]) =>
      runKubeecr(own, ["--log-format=json", ...args], { aws: ecr.awsEnv, env: { KUBECONFIG } });
    const first = await cli([]);
    assert.equal(first.code, 1, first.stdout + first.stderr); // the three bad Secrets
    assert.equal(first.lines.find((l) => l.msg === "summary")?.refreshed, 2, first.stdout);
    const second = await cli([]); // all fresh: reads and reports only
    assert.equal(second.code, 1, second.stdout + second.stderr);

    const requests = (await auditRecords(own) as Audited[]).filter((r) =>
      r.user.username === SA_USER
    );
    const described = requests.map((r) => {
      const ref = r.objectRef ?? {};
      const resource = `${ref.resource ?? r.requestURI}${
        ref.subresource ? `/${ref.subresource}` : ""
      }`;
      return `${resource}${ref.apiGroup ? `.${ref.apiGroup}` : ""}:${r.verb}`;
    });
    const used = [...new Set(described)].sort();
    // 409 AlreadyExists on an event is how a repeated Warning is found (then counted).
    const refused = requests.filter((r) => [401, 403].includes(r.responseStatus?.code ?? 0));
    assert.deepEqual(refused.map((r) => `${r.verb} ${r.requestURI}`), [], "nothing refused");
    assert.deepEqual(used.filter((u) => !granted.includes(u)), [], `used: ${used}`);
    // get is only needed to re-read a Secret after a 409, which cannot be forced from outside.
    // The second run repeats the first one's Warning: counted on the same Event.
    for (
      const needed of [
        "secrets:list",
        "secrets:patch",
        "events:create",
        "events:get",
        "events:patch",
      ]
    ) {
      assert.ok(used.includes(needed), `${needed} used; used: ${used}`);
    }
  } finally {
    await ecr.close();
    await own.stop();
  }
});

Deno.test("examples/installation: the program, configured as its CronJob, lists namespaces once, uses only granted verbs, and leaves an unlabelled namespace alone", async () => {
  const own = await startTestEnv({ log: () => {} });
  const ecr = startEcrProxy(own.motoUrl);
  try {
    const as = (args: string[], stdin?: string) =>
      run(own.kubectl, ["--kubeconfig", own.kubeconfig, ...args], { stdin });
    // Secrets created before the install (and so before its policy): one in a
    // namespace that opts in, one in a namespace that does not.
    await as(["create", "namespace", "opted-in"]);
    await as(["label", "namespace", "opted-in", "kubeecr.deft.com/enabled=true"]);
    await as(["create", "namespace", "not-opted-in"]);
    const valid = "123456789012/us-west-2";
    await createSecret(own, "opted-in", { name: "pull", registries: valid });
    await createSecret(own, "not-opted-in", { name: "pull", registries: valid });

    const { items } = await rendered("examples/installation");
    await as(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
    const granted = grantsOf(ofKind(items, "ClusterRole")[0]);

    const token = (await as(["-n", "kubeecr", "create", "token", "kubeecr"])).trim();
    const KUBECONFIG = await writeKubeconfig(own, { token });
    // The CronJob's own settings (selector, annotation key, refresh window).
    const result = await runKubeecr(own, ["--log-format=json"], {
      aws: ecr.awsEnv,
      env: { KUBECONFIG, ...envOf(items) },
    });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(result.lines.find((l) => l.msg === "summary")?.refreshed, 1, result.stdout);
    const skipped = result.lines.filter((l) => l.secret === "not-opted-in/pull");
    assert.deepEqual(skipped.map((l) => l.msg), ["skipped"], result.stdout);
    const untouchedSecret = await readSecret(own, "not-opted-in", "pull");
    assert.deepEqual(dockerConfigOf(untouchedSecret), { auths: {} });

    const requests = (await auditRecords(own) as Audited[]).filter((r) =>
      r.user.username === SA_USER
    );
    const refused = requests.filter((r) => [401, 403].includes(r.responseStatus?.code ?? 0));
    assert.deepEqual(refused.map((r) => `${r.verb} ${r.requestURI}`), [], "nothing refused");
    const used = [
      ...new Set(requests.map((r) => `${r.objectRef?.resource ?? r.requestURI}:${r.verb}`)),
    ];
    assert.deepEqual(used.filter((u) => !granted.includes(u)), [], `used: ${used}`);
    const lists = requests.filter((r) => r.verb === "list");
    const namespaceLists = lists.filter((r) => r.objectRef?.resource === "namespaces");
    assert.equal(namespaceLists.length, 1, "one namespace list");
    // Secrets are listed cluster-wide, never per namespace.
    const secretLists = lists.filter((r) => r.objectRef?.resource === "secrets");
    assert.ok(secretLists.length > 0, "secrets listed");
    assert.deepEqual(
      secretLists.filter((r) => r.objectRef?.namespace),
      [],
      "no per-namespace list",
    );
  } finally {
    await ecr.close();
    await own.stop();
  }
});
