/**
 * The Helm chart (charts/kubeecr) against the kustomize installs and the program:
 *
 * - `helm lint --strict` is clean, with the defaults and with each ci/ values file;
 * - the same settings render the same objects: `helm template` with ci/manifests-values.yaml is
 *   `kubectl kustomize manifests/`, with ci/installation-values.yaml it is `kubectl kustomize
 *   examples/installation`, with ci/provision-values.yaml `kubectl kustomize examples/provision`.
 *   Compared as parsed objects, sorted by identity. Helm's own labels are checked (exact values)
 *   and then removed at the three places the chart puts them; the one object only kustomize
 *   renders (the user's AWS Secret from aws.env) is named, and so is the role map's ConfigMap,
 *   which the user's own generator makes without the install's labels (the roles install, composed
 *   as manifests/components/roles tells users). A one-sided change to either copy
 *   makes the comparison fail, checked here on scratch copies;
 * - every flag of the program (lib/config.ts FLAG_NAMES) is a value, and what values.schema.json
 *   accepts is what the program accepts: each value rendered by Helm and parsed by the program's
 *   own parseConfig;
 * - the rendered hardened chart, created on the real API server of a test environment of its own,
 *   works: its admission policy refuses, its Job (created from its CronJob as `kubectl create job
 *   --from` does) runs the program with the ServiceAccount's token and the Job's own env, and the
 *   Secret is refreshed. Then README's `helm install --create-namespace` of a second release, and
 *   `helm uninstall`. No node runs the Job's pod here (the test environment has no kubelet).
 */

import assert from "node:assert/strict";
import { load as loadYaml } from "js-yaml";
import { type Config, FLAG_NAMES, parseConfig } from "../../lib/config.ts";
import { ConfigError } from "../../lib/core/errors.ts";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { testEnv, writeKubeconfig } from "../testenv/connect.ts";
import { startTestEnv } from "../testenv/env.ts";
import { run } from "../testenv/util.ts";
import { createSecret, dockerConfigOf, hostOf, readSecret, runKubeecr, summaryOf } from "./cli.ts";
import { CHART, chartMeta, helm, type Obj, objectsOf, template, templateArgs } from "./helm.ts";
import { copyInstallation } from "./install.ts";

// ---------------------------------------------------------------------------
// Rendering and comparing

/** `kubectl kustomize <dir>` with the environment's kubectl. */
async function kustomize(dir: string): Promise<Obj[]> {
  return objectsOf(await run((await testEnv()).kubectl, ["kustomize", dir]));
}

/** A scratch directory inside the environment's (removed with it). */
async function scratch(prefix: string): Promise<string> {
  return await Deno.makeTempDir({ dir: (await testEnv()).dir, prefix });
}

/**
 * The kustomize installs, each with the chart's values file for the same settings and the
 * objects kustomize renders that the chart leaves to the user.
 */
const INSTALLS = {
  "manifests": {
    values: "ci/manifests-values.yaml",
    userSupplied: [] as string[],
  },
  "examples/installation": {
    values: "ci/installation-values.yaml",
    // From aws.env by the example's secretGenerator; with Helm the user creates it (README,
    // Install) and awsSecret.name reads it.
    userSupplied: ["v1 Secret kubeecr/kubeecr-aws-secrets"],
  },
  "examples/provision": {
    values: "ci/provision-values.yaml",
    // examples/installation's, which it builds on.
    userSupplied: ["v1 Secret kubeecr/kubeecr-aws-secrets"],
  },
  // manifests/ with the roles component, composed as its kustomization.yaml tells users, with
  // the component's roles.example.yaml as the map (the chart's default roles.map).
  "roles": {
    values: "ci/roles-values.yaml",
    userSupplied: [] as string[],
    // The user's own generator makes the map's ConfigMap, outside manifests/'s labels.
    unlabelled: ["v1 ConfigMap kubeecr/kubeecr-roles"],
  },
};

/** Installs the test composes in the scratch tree (a user's kustomization around a component). */
const COMPOSED: Partial<Record<keyof typeof INSTALLS, { kustomization: string; copy: string }>> = {
  roles: {
    kustomization: "resources: [../manifests]\ncomponents: [../manifests/components/roles]\n" +
      "configMapGenerator: [{name: kubeecr-roles, namespace: kubeecr, files: [roles.yaml], " +
      "options: {disableNameSuffixHash: true}}]\n",
    copy: "manifests/components/roles/roles.example.yaml",
  },
};

/** The labels of the kustomize installs (manifests/base/kustomization.yaml). */
const KUSTOMIZE_LABELS = {
  "app.kubernetes.io/name": "kubeecr",
  "app.kubernetes.io/component": "credential-refresher",
};

/** kustomize output of one install, from a scratch copy of the tree (`root`, made if absent). */
async function renderKustomize(target: keyof typeof INSTALLS, root?: string): Promise<Obj[]> {
  if (!root) {
    root = await scratch("kustomize-");
    await copyInstallation(root);
  }
  const composed = COMPOSED[target];
  if (composed) {
    await Deno.mkdir(`${root}/${target}`, { recursive: true });
    await Deno.writeTextFile(`${root}/${target}/kustomization.yaml`, composed.kustomization);
    await Deno.copyFile(`${root}/${composed.copy}`, `${root}/${target}/roles.yaml`);
  }
  return await kustomize(`${root}/${target}`);
}

function idOf(o: Obj): string {
  return `${o.apiVersion} ${o.kind} ${o.metadata.namespace ?? ""}${
    o.metadata.namespace ? "/" : ""
  }${o.metadata.name}`;
}

/** Where the chart puts its labels: every object's, and the CronJob's Job and Pod templates. */
function labelledParts(o: Obj): { where: string; metadata: { labels?: Record<string, string> } }[] {
  const parts = [{ where: "metadata", metadata: o.metadata }];
  if (o.kind === "CronJob") {
    parts.push(
      { where: "spec.jobTemplate.metadata", metadata: o.spec?.jobTemplate?.metadata ?? {} },
      {
        where: "spec.jobTemplate.spec.template.metadata",
        metadata: o.spec?.jobTemplate?.spec?.template?.metadata ?? {},
      },
    );
  }
  return parts;
}

/** The labels Helm's conventions add, with the values this release must give them. */
async function helmLabels(release: string, chart = CHART): Promise<Record<string, string>> {
  const meta = await chartMeta(chart);
  return {
    "app.kubernetes.io/instance": release,
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/version": meta.appVersion,
    "helm.sh/chart": `kubeecr-${meta.version}`,
  };
}

/**
 * The container env sorted by name: the API keys it by name (a strategic merge patch merges it
 * by name), no variable refers to another with $(VAR), and kustomize's order is the order its
 * patches ran in, not a setting.
 */
function sortEnv(o: Obj): void {
  for (const c of o.spec?.jobTemplate?.spec?.template?.spec?.containers ?? []) {
    c.env?.sort((a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name));
  }
}

/** JSON with object keys sorted, so that two parsed objects compare by content. */
function canonical(v: unknown): string {
  return JSON.stringify(
    v,
    (_k, x) =>
      x && typeof x === "object" && !Array.isArray(x)
        ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b)))
        : x,
  );
}

/** The first path at which two values differ, with both sides. */
function firstDifference(a: unknown, b: unknown, path = ""): string | undefined {
  if (canonical(a) === canonical(b)) return undefined;
  if (a && b && typeof a === "object" && typeof b === "object") {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const d = firstDifference(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        Array.isArray(a) ? `${path}[${k}]` : `${path}.${k}`,
      );
      if (d) return d;
    }
  }
  return `${path || "."}: helm ${JSON.stringify(a)} / kustomize ${JSON.stringify(b)}`;
}

/**
 * What differs between the chart's rendering and kustomize's, one line each; [] when they are
 * the same objects. Inputs are not modified.
 */
function differences(
  fromHelm: Obj[],
  fromKustomize: Obj[],
  labels: Record<string, string>,
  { userSupplied, unlabelled = [] }: { userSupplied: string[]; unlabelled?: string[] },
): string[] {
  const found: string[] = [];
  const chart = new Map<string, Obj>();
  for (const original of fromHelm) {
    const o: Obj = structuredClone(original);
    for (const { where, metadata } of labelledParts(o)) {
      for (const [key, value] of Object.entries(labels)) {
        const actual = metadata.labels?.[key];
        if (actual !== value) {
          found.push(`${idOf(o)} ${where}.labels["${key}"]: ${actual}, want ${value}`);
        }
        delete metadata.labels?.[key];
      }
    }
    sortEnv(o);
    chart.set(idOf(o), o);
  }
  const installed = new Map<string, Obj>();
  for (const original of fromKustomize) {
    const o: Obj = structuredClone(original);
    sortEnv(o);
    installed.set(idOf(o), o);
  }
  for (const id of userSupplied) {
    if (!installed.delete(id)) found.push(`${id}: expected from kustomize (the user's), missing`);
  }
  for (const id of unlabelled) {
    const fromChart = chart.get(id)?.metadata;
    const fromKust = installed.get(id)?.metadata;
    if (!fromChart || !fromKust) continue; // reported below as only on one side
    if (fromKust.labels !== undefined) {
      found.push(
        `${id}: kustomize labels it now (${canonical(fromKust.labels)}): drop it from unlabelled`,
      );
    }
    for (const [key, value] of Object.entries(KUSTOMIZE_LABELS)) {
      if (fromChart.labels?.[key] !== value) {
        found.push(`${id} metadata.labels["${key}"]: ${fromChart.labels?.[key]}, want ${value}`);
      }
      delete fromChart.labels?.[key];
    }
    if (fromChart.labels && Object.keys(fromChart.labels).length === 0) delete fromChart.labels;
  }
  for (const [id, o] of chart) {
    const other = installed.get(id);
    if (!other) {
      found.push(`${id}: only helm renders it`);
      continue;
    }
    const d = firstDifference(o, other);
    if (d) found.push(`${id} ${d}`);
  }
  for (const id of installed.keys()) {
    if (!chart.has(id)) found.push(`${id}: only kustomize renders it`);
  }
  return found;
}

for (const [target, { values, ...accounted }] of Object.entries(INSTALLS)) {
  Deno.test(`helm template with ${values} renders the objects of kubectl kustomize ${target}`, async () => {
    const [fromHelm, fromKustomize] = await Promise.all([
      template({ values: [values] }),
      renderKustomize(target as keyof typeof INSTALLS),
    ]);
    assert.ok(fromHelm.length >= 5, `helm renders the install: ${fromHelm.map(idOf)}`);
    const found = differences(fromHelm, fromKustomize, await helmLabels("kubeecr"), accounted);
    assert.deepEqual(found, []);
  });
}

// The comparison fails when only one side changes: a scratch copy of each side, edited once.
Deno.test("the comparison fails when a manifest changes on the kustomize side only", async () => {
  const root = await scratch("kustomize-edited-");
  await copyInstallation(root);
  const file = `${root}/manifests/base/cronjob.yaml`;
  const text = await Deno.readTextFile(file);
  assert.ok(text.includes("memory: 320Mi"));
  await Deno.writeTextFile(file, text.replace("memory: 320Mi", "memory: 384Mi"));
  for (const [target, { values, ...accounted }] of Object.entries(INSTALLS)) {
    const found = differences(
      await template({ values: [values] }),
      await renderKustomize(target as keyof typeof INSTALLS, root),
      await helmLabels("kubeecr"),
      accounted,
    );
    assert.deepEqual(found, [
      "batch/v1 CronJob kubeecr/kubeecr .spec.jobTemplate.spec.template.spec.containers[0]" +
      '.resources.limits.memory: helm "320Mi" / kustomize "384Mi"',
    ], target);
  }
});

Deno.test("the comparison fails when the provision component changes on the kustomize side only", async () => {
  const root = await scratch("kustomize-provision-");
  await copyInstallation(root);
  const file = `${root}/manifests/components/provision/policy.yaml`;
  const text = await Deno.readTextFile(file);
  assert.ok(text.includes("reinvocationPolicy: IfNeeded"));
  await Deno.writeTextFile(file, text.replace("IfNeeded", "Never"));
  const found = differences(
    await template({ values: [INSTALLS["examples/provision"].values] }),
    await renderKustomize("examples/provision", root),
    await helmLabels("kubeecr"),
    INSTALLS["examples/provision"],
  );
  assert.deepEqual(found, [
    "admissionregistration.k8s.io/v1 MutatingAdmissionPolicy kubeecr-pull-secret " +
    '.spec.reinvocationPolicy: helm "IfNeeded" / kustomize "Never"',
  ]);
});

Deno.test("the comparison fails when the chart changes only", async () => {
  const chart = `${await scratch("chart-edited-")}/kubeecr`;
  await run("cp", ["-r", CHART, chart]);
  const file = `${chart}/templates/clusterrole.yaml`;
  const text = await Deno.readTextFile(file);
  const verbs = `verbs: ["get", "list", "patch"]`;
  assert.ok(text.includes(verbs));
  await Deno.writeTextFile(file, text.replace(verbs, `verbs: ["get", "list", "patch", "update"]`));
  for (const [target, { values, ...accounted }] of Object.entries(INSTALLS)) {
    const found = differences(
      await template({ chart, values: [values] }),
      await renderKustomize(target as keyof typeof INSTALLS),
      await helmLabels("kubeecr", chart),
      accounted,
    );
    assert.equal(found.length, 1, found.join("\n"));
    assert.match(
      found[0],
      /^rbac\.authorization\.k8s\.io\/v1 ClusterRole kubeecr \.rules\[0\]\.verbs/,
    );
  }
});

Deno.test("the comparison fails when a Helm label is missing or wrong", async () => {
  const fromHelm = await template({ values: ["ci/manifests-values.yaml"] });
  const fromKustomize = await renderKustomize("manifests");
  const labels = await helmLabels("kubeecr");
  const [cronjob] = fromHelm.filter((o) => o.kind === "CronJob");
  delete cronjob.spec.jobTemplate.spec.template.metadata.labels["helm.sh/chart"];
  assert.deepEqual(differences(fromHelm, fromKustomize, labels, INSTALLS.manifests), [
    `batch/v1 CronJob kubeecr/kubeecr spec.jobTemplate.spec.template.metadata.labels["helm.sh/chart"]: undefined, want ${
      labels["helm.sh/chart"]
    }`,
  ]);
});

// ---------------------------------------------------------------------------
// helm lint

Deno.test("helm lint --strict is clean with the defaults and with each ci/ values file", async () => {
  for (
    const values of [
      [],
      ["ci/manifests-values.yaml"],
      ["ci/installation-values.yaml"],
      ["ci/provision-values.yaml"],
      ["ci/roles-values.yaml"],
    ]
  ) {
    const result = await helm([
      "lint",
      "--strict",
      CHART,
      ...values.flatMap((v) => ["--values", `${CHART}/${v}`]),
    ]);
    assert.equal(result.code, 0, `${values}: ${result.stdout}${result.stderr}`);
    assert.doesNotMatch(result.stdout, /\[(WARNING|ERROR)\]/, `${values}: ${result.stdout}`);
  }
});

Deno.test("the chart's version is deno.json's, as the release checks for each tag", async () => {
  const deno = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  const meta = await chartMeta();
  assert.equal(meta.version, deno.version);
  // The image: the comparison above holds it equal to manifests/base/cronjob.yaml's.
  assert.equal(meta.appVersion, `v${deno.version}`);
});

// ---------------------------------------------------------------------------
// Every flag a value, and the schema as strict as the program

/** Flags that have no value in the chart, and why. */
const NOT_IN_CHART: Record<string, string> = {
  "--kubeconfig": "local runs only: in a pod the program uses its ServiceAccount, and the " +
    "image's sandbox (-P=cronjob) cannot read a kubeconfig file",
  "--context": "local runs only: a kubeconfig context, refused in-cluster",
  "--roles": "the chart mounts the map itself (roles.enabled, roles.map) and sets the path: a " +
    "path alone would name a file the pod does not have",
};

const camel = (flag: string) =>
  flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

interface Case {
  key: string;
  value: unknown;
  /** true: both accept; false: both refuse; "range": the schema accepts, the program refuses. */
  accepted: boolean | "range";
  /** For accepted cases: the Config field the program parses it into, and the value. */
  field?: keyof Config;
  parsed?: unknown;
  /** Other values the case needs, set alike for Helm and, as variables, for the program. */
  with?: Record<string, string>;
}

/** Each value non-default, so that a value that does not reach the program fails its case. */
const CASES: Case[] = [
  {
    key: "annotation",
    value: "ecr.example.com/pull",
    accepted: true,
    field: "annotation",
    parsed: "ecr.example.com/pull",
  },
  { key: "annotation", value: "pull", accepted: false },
  { key: "annotation", value: "Example.com/pull", accepted: false },
  { key: "annotation", value: "example.com/-pull", accepted: false },
  { key: "annotation", value: "kubeecr.deft.com/pull", accepted: false },
  {
    key: "namespace",
    value: ["team-a", "team-b"],
    accepted: true,
    field: "namespaces",
    parsed: ["team-a", "team-b"],
  },
  { key: "namespace", value: ["Team-A"], accepted: false },
  { key: "namespace", value: ["team-"], accepted: false },
  {
    key: "excludeNamespace",
    value: ["kube-system"],
    accepted: true,
    field: "excludeNamespaces",
    parsed: ["kube-system"],
  },
  { key: "excludeNamespace", value: ["a".repeat(64)], accepted: false },
  {
    key: "selector",
    value: "team=web,env!=dev",
    accepted: true,
    field: "selector",
    parsed: "team=web,env!=dev",
  },
  { key: "selector", value: "  ", accepted: false },
  {
    key: "namespaceSelector",
    value: "env=prod",
    accepted: true,
    field: "namespaceSelector",
    parsed: "env=prod",
  },
  {
    key: "provision",
    value: "ecr-pull=123456789012/us-west-2, 210987654321/eu-central-1",
    accepted: true,
    field: "provision",
    parsed: { secretName: "ecr-pull", value: "123456789012/us-west-2, 210987654321/eu-central-1" },
    with: { namespaceSelector: "env=prod" },
  },
  {
    key: "provision",
    // Every item form the annotation takes: ECR Public and complete (FIPS, dual-stack) hosts.
    value: "ecr-pull=public.ecr.aws, 123456789012.dkr.ecr-fips.us-east-1.amazonaws.com, " +
      "123456789012.dkr-ecr.us-west-2.on.aws",
    accepted: true,
    field: "provision",
    parsed: {
      secretName: "ecr-pull",
      value: "public.ecr.aws, 123456789012.dkr.ecr-fips.us-east-1.amazonaws.com, " +
        "123456789012.dkr-ecr.us-west-2.on.aws",
    },
    with: { namespaceSelector: "env=prod" },
  },
  ...["ecr-pull", "Ecr=123456789012/us-west-2", "ecr-pull=123456789/us-west-2", "p=us-west-2"].map(
    (value): Case => ({
      key: "provision",
      value,
      accepted: false,
      with: { namespaceSelector: "env=prod" },
    }),
  ),
  {
    key: "refreshWindow",
    value: "1h30m",
    accepted: true,
    field: "refreshWindowMs",
    parsed: 5_400_000,
  },
  { key: "refreshWindow", value: "0", accepted: true, field: "refreshWindowMs", parsed: 0 },
  {
    key: "refreshWindow",
    value: "1.5h",
    accepted: true,
    field: "refreshWindowMs",
    parsed: 5_400_000,
  },
  { key: "refreshWindow", value: "6 h", accepted: false },
  { key: "refreshWindow", value: "-1h", accepted: false },
  { key: "refreshWindow", value: "12h", accepted: "range" },
  { key: "force", value: true, accepted: true, field: "force", parsed: true },
  { key: "force", value: "yes", accepted: false },
  { key: "dryRun", value: true, accepted: true, field: "dryRun", parsed: true },
  { key: "events", value: "warnings", accepted: true, field: "events", parsed: "warnings" },
  { key: "events", value: "none", accepted: false },
  { key: "concurrency", value: 8, accepted: true, field: "concurrency", parsed: 8 },
  { key: "concurrency", value: 0, accepted: false },
  { key: "concurrency", value: 33, accepted: false },
  { key: "pageSize", value: 5000, accepted: true, field: "pageSize", parsed: 5000 },
  { key: "pageSize", value: 5001, accepted: false },
  {
    key: "requestTimeout",
    value: "30s",
    accepted: true,
    field: "requestTimeoutMs",
    parsed: 30_000,
  },
  { key: "requestTimeout", value: "10m", accepted: "range" },
  { key: "timeout", value: "2m", accepted: true, field: "timeoutMs", parsed: 120_000 },
  { key: "timeout", value: "90", accepted: false },
  { key: "timeout", value: "1s", accepted: "range" },
  { key: "checkSecretTypes", value: true, accepted: true, field: "checkSecretTypes", parsed: true },
  { key: "logFormat", value: "text", accepted: true, field: "logFormat", parsed: "text" },
  { key: "logFormat", value: "xml", accepted: false },
  { key: "logLevel", value: "debug", accepted: true, field: "logLevel", parsed: "debug" },
  { key: "logLevel", value: "trace", accepted: false },
  {
    key: "proxy",
    value: "http://proxy.corp:3128",
    accepted: true,
    field: "proxy",
    parsed: "http://proxy.corp:3128",
  },
  { key: "proxy", value: "http://proxy.corp", accepted: false },
  { key: "proxy", value: "http://user:pw@proxy.corp:3128", accepted: false },
];

/** The kubeecr container of the rendered CronJob. */
function containerOf(objects: Obj[]) {
  const cronjobs = objects.filter((o) => o.kind === "CronJob");
  assert.equal(cronjobs.length, 1, "one CronJob");
  return cronjobs[0].spec.jobTemplate.spec.template.spec.containers[0];
}

/** The program's Config from a container's args and env, as in a pod without a kubeconfig. */
function programConfig(container: { args?: string[]; env?: { name: string; value: string }[] }) {
  const vars = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
  const parsed = parseConfig(container.args ?? [], { ...vars, HOME: "/nonexistent" }, "test");
  assert.equal(parsed.kind, "run");
  return parsed.kind === "run" ? parsed.config : undefined!;
}

Deno.test("every flag of the program is a chart value, in values.yaml and values.schema.json", async () => {
  const values = loadYaml(await Deno.readTextFile(`${CHART}/values.yaml`)) as {
    config: Record<string, unknown>;
  };
  const schema = JSON.parse(await Deno.readTextFile(`${CHART}/values.schema.json`));
  const schemaKeys = Object.keys(schema.properties.config.properties).sort();
  const offered = FLAG_NAMES
    .filter((f) => f.env !== undefined && !(f.flag in NOT_IN_CHART))
    .map((f) => camel(f.flag))
    .sort();
  assert.deepEqual(Object.keys(values.config).sort(), offered, "values.yaml config: one per flag");
  assert.deepEqual(schemaKeys, offered, "values.schema.json config: one per flag");
  for (const flag of Object.keys(NOT_IN_CHART)) {
    assert.ok(FLAG_NAMES.some((f) => f.flag === flag), `${flag} is still a flag`);
  }
  const tested = new Set(CASES.filter((c) => c.accepted === true).map((c) => c.key));
  assert.deepEqual(offered.filter((k) => !tested.has(k)), [], "each value has an accepted case");
  assert.equal(schema.additionalProperties, false);
  assert.equal(schema.properties.config.additionalProperties, false);
});

Deno.test("the defaults leave the program's defaults, but JSON logs", async () => {
  const container = containerOf(await template());
  assert.deepEqual(container.args, ["--log-format=json"]);
  assert.equal(container.env, undefined);
  const defaults = parseConfig([], { HOME: "/nonexistent" }, "test");
  assert.equal(defaults.kind, "run");
  const config = programConfig(container);
  if (defaults.kind === "run") assert.deepEqual(config, { ...defaults.config, logFormat: "json" });
});

for (const c of CASES) {
  const what = c.accepted === true
    ? "both accept"
    : c.accepted === false
    ? "both refuse"
    : "the schema accepts (a range only the program checks), the program refuses";
  Deno.test(`config.${c.key}=${JSON.stringify(c.value)}: ${what}`, async () => {
    const others = Object.entries(c.with ?? {});
    const result = await helm(templateArgs({
      setJson: {
        [`config.${c.key}`]: c.value,
        ...Object.fromEntries(others.map(([k, v]) => [`config.${k}`, v])),
      },
    }));
    if (c.accepted === false) {
      assert.notEqual(result.code, 0, "the schema refuses it");
      assert.match(result.stderr, /values don't meet the specifications of the schema/);
      assert.ok(result.stderr.includes(`/config/${c.key}`), result.stderr);
      // The program refuses the same text in its variable.
      const raw = Array.isArray(c.value) ? c.value.join(",") : String(c.value);
      const flag = FLAG_NAMES.find((f) => camel(f.flag) === c.key)!;
      const needed = Object.fromEntries(
        others.map(([k, v]) => [FLAG_NAMES.find((f) => camel(f.flag) === k)!.env!, v]),
      );
      assert.throws(
        () => parseConfig([], { ...needed, [flag.env!]: raw, HOME: "/nonexistent" }, "test"),
        ConfigError,
      );
      return;
    }
    assert.equal(result.code, 0, result.stderr);
    const container = containerOf(objectsOf(result.stdout));
    if (c.accepted === "range") {
      assert.throws(() => programConfig(container), ConfigError);
      return;
    }
    assert.deepEqual(programConfig(container)[c.field!], c.parsed);
  });
}

Deno.test("the schema refuses unknown values and malformed image, schedule and resources", async () => {
  const refused: Record<string, unknown>[] = [
    { "config.bogus": "http://proxy:3128" },
    { "unknown": true },
    { "image.digest": "sha256:1234" },
    { "image.tag": "v1 beta" },
    { "image.pullPolicy": "Sometimes" },
    { "schedule": "every ten minutes" },
    { "schedule": "* * * *" },
    { "resources.limits.memory": "lots" },
    { "serviceAccount.annotations": { "eks.amazonaws.com/role-arn": 1 } },
    { "awsSecret.name": "AWS Keys" },
    { "admission.validationActions": ["Refuse"] },
    { "provision.secretName": "Ecr_Pull" },
    { "provision.registries": "123456789/us-west-2" },
  ];
  for (const setJson of refused) {
    const result = await helm(templateArgs({ setJson }));
    assert.notEqual(result.code, 0, `accepted ${JSON.stringify(setJson)}`);
    assert.match(result.stderr, /schema/, JSON.stringify(setJson));
  }
});

Deno.test("image.digest wins over the tag; the tag defaults to the chart's appVersion", async () => {
  const digest = `sha256:${"ab".repeat(32)}`;
  const meta = await chartMeta();
  assert.equal(containerOf(await template()).image, `ghcr.io/deft/kubeecr:${meta.appVersion}`);
  assert.equal(
    containerOf(await template({ setJson: { "image.tag": "v9.9.9" } })).image,
    "ghcr.io/deft/kubeecr:v9.9.9",
  );
  assert.equal(
    containerOf(await template({ setJson: { "image.tag": "v9.9.9", "image.digest": digest } }))
      .image,
    `ghcr.io/deft/kubeecr@${digest}`,
  );
});

Deno.test("serviceAccount.annotations, awsSecret.name and schedule reach their objects", async () => {
  const role = "arn:aws:iam::123456789012:role/kubeecr";
  const objects = await template({
    setJson: {
      "serviceAccount.annotations": { "eks.amazonaws.com/role-arn": role },
      "awsSecret.name": "",
      "schedule": "@hourly",
    },
  });
  const [sa] = objects.filter((o) => o.kind === "ServiceAccount");
  assert.deepEqual(sa.metadata.annotations, { "eks.amazonaws.com/role-arn": role });
  assert.equal(containerOf(objects).envFrom, undefined, "no AWS Secret: no envFrom");
  assert.equal(objects.find((o) => o.kind === "CronJob")?.spec.schedule, "@hourly");
});

Deno.test("admission guards config.annotation's key, the key the program serves", async () => {
  const key = "ecr.example.com/pull";
  const objects = await template({
    setJson: { "admission.enabled": true, "config.annotation": key },
  });
  const [policy] = objects.filter((o) => o.kind === "ValidatingAdmissionPolicy");
  assert.equal(
    policy.spec.matchConditions[0].expression,
    `has(object.metadata.annotations) && '${key}' in object.metadata.annotations`,
  );
  assert.equal(policy.spec.variables[0].expression, `'${key}'`);
  assert.equal(programConfig(containerOf(objects)).annotation, key);
  // Without config.annotation the policy guards, and the CronJob passes, the program's default.
  const defaults = parseConfig([], { HOME: "/nonexistent" }, "test");
  const plain = await template({ setJson: { "admission.enabled": true } });
  assert.equal(defaults.kind === "run" && defaults.config.annotation, "deft.com/kubeecr");
  assert.deepEqual(containerOf(plain).env, [
    { name: "KUBEECR_ANNOTATION", value: "deft.com/kubeecr" },
  ]);
});

const VALID = "123456789012/us-west-2";

Deno.test("provision: the Secret's name reaches the policy and, with the registries, the program", async () => {
  const registries = "123456789012/us-west-2, 210987654321/eu-central-1";
  const objects = await template({
    values: ["ci/provision-values.yaml"],
    setJson: { "provision.secretName": "team-pull", "provision.registries": registries },
  });
  const [policy] = objects.filter((o) => o.kind === "MutatingAdmissionPolicy");
  assert.match(policy.spec.matchConditions[0].expression, / s\.name == 'team-pull'\)$/);
  assert.equal(policy.spec.variables[0].expression, "'team-pull'");
  const [binding] = objects.filter((o) => o.kind === "MutatingAdmissionPolicyBinding");
  assert.equal(binding.spec.policyName, policy.metadata.name);
  const config = programConfig(containerOf(objects));
  assert.deepEqual(config.provision, { secretName: "team-pull", value: registries });
  assert.equal(config.namespaceSelector, "kubeecr.deft.com/enabled=true");
  const [role] = objects.filter((o) => o.kind === "ClusterRole");
  assert.deepEqual(role.rules.at(-1), {
    apiGroups: [""],
    resources: ["secrets"],
    verbs: ["create"],
  });
  // Off by default: no policy, no create, no --provision.
  const plain = await template({ values: ["ci/installation-values.yaml"] });
  assert.equal(plain.some((o) => o.kind.startsWith("MutatingAdmissionPolicy")), false);
  assert.equal(programConfig(containerOf(plain)).provision, undefined);
});

Deno.test("combinations that would install half a feature fail to render, saying what to change", async () => {
  const cases: [Record<string, unknown>, string][] = [
    [
      { "namespaceOptIn.enabled": true },
      "namespaceOptIn.enabled=true needs admission.enabled=true",
    ],
    [
      {
        "admission.enabled": true,
        "namespaceOptIn.enabled": true,
        "config.namespaceSelector": "a=b",
      },
      "config.namespaceSelector and namespaceOptIn.enabled both set --namespace-selector",
    ],
    [
      { "config.namespace": ["a"], "config.excludeNamespace": ["b"] },
      "config.namespace and config.excludeNamespace cannot be combined",
    ],
    [
      { "admission.enabled": true, "admission.validationActions": ["Deny", "Warn"] },
      "cannot hold both Deny and Warn",
    ],
    [
      { "admission.enabled": true, "provision.enabled": true, "provision.registries": VALID },
      "provision.enabled=true needs namespaceOptIn.enabled=true",
    ],
    [
      { "admission.enabled": true, "namespaceOptIn.enabled": true, "provision.enabled": true },
      "provision.enabled=true needs provision.registries",
    ],
    [
      {
        "admission.enabled": true,
        "namespaceOptIn.enabled": true,
        "provision.enabled": true,
        "provision.registries": VALID,
        "config.provision": `x=${VALID}`,
      },
      "config.provision and provision.enabled both set --provision",
    ],
  ];
  for (const [setJson, message] of cases) {
    const result = await helm(templateArgs({ setJson }));
    assert.notEqual(result.code, 0, JSON.stringify(setJson));
    assert.ok(result.stderr.includes(message), result.stderr);
  }
});

Deno.test("a second release gets cluster-scoped objects of its own", async () => {
  const objects = await template({
    release: "ecr",
    namespace: "ecr-b",
    values: ["ci/installation-values.yaml"],
  });
  const names = objects.map((o) => `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name}`);
  assert.deepEqual(names.sort(), [
    "ClusterRole /ecr-kubeecr",
    "ClusterRoleBinding /ecr-kubeecr",
    "CronJob ecr-b/ecr-kubeecr",
    "Namespace /ecr-b",
    "ServiceAccount ecr-b/ecr-kubeecr",
    "ValidatingAdmissionPolicy /ecr-kubeecr-annotation",
    "ValidatingAdmissionPolicyBinding /ecr-kubeecr-annotation",
  ]);
  const [binding] = objects.filter((o) => o.kind === "ClusterRoleBinding");
  assert.deepEqual(binding.subjects, [
    { kind: "ServiceAccount", name: "ecr-kubeecr", namespace: "ecr-b" },
  ]);
  const [vapb] = objects.filter((o) => o.kind === "ValidatingAdmissionPolicyBinding");
  assert.equal(vapb.spec.policyName, "ecr-kubeecr-annotation");
});

// ---------------------------------------------------------------------------
// Installed on the real API server, and run

Deno.test("the hardened chart, created on the API server, refuses at admission and refreshes from its Job", async () => {
  // An environment of its own: the policy judges every Secret of the cluster.
  const own = await startTestEnv({ log: () => {} });
  const ecr = startEcrProxy(own.motoUrl);
  try {
    const as = (args: string[], stdin?: string) =>
      run(own.kubectl, ["--kubeconfig", own.kubeconfig, ...args], { stdin });
    const rendered = await helm(templateArgs({ values: ["ci/installation-values.yaml"] }));
    assert.equal(rendered.code, 0, rendered.stderr);
    // Created, not dry-run: every object is stored by the real API server.
    const created = await as(["create", "-f", "-", "-o", "name"], rendered.stdout);
    assert.deepEqual(created.trim().split("\n").sort(), [
      "clusterrole.rbac.authorization.k8s.io/kubeecr",
      "clusterrolebinding.rbac.authorization.k8s.io/kubeecr",
      "cronjob.batch/kubeecr",
      "namespace/kubeecr",
      "serviceaccount/kubeecr",
      "validatingadmissionpolicy.admissionregistration.k8s.io/kubeecr-annotation",
      "validatingadmissionpolicybinding.admissionregistration.k8s.io/kubeecr-annotation",
    ]);
    // The user's part of the install (README, Install): the AWS keys Secret.
    await as([
      "-n",
      "kubeecr",
      "create",
      "secret",
      "generic",
      "kubeecr-aws-secrets",
      "--from-literal=AWS_ACCESS_KEY_ID=AKIAHELMTESTEXAMPLE",
      "--from-literal=AWS_SECRET_ACCESS_KEY=helm-test-secret-access-key",
    ]);

    await as(["create", "namespace", "opted-in"]);
    await as(["label", "namespace", "opted-in", "kubeecr.deft.com/enabled=true"]);
    await as(["create", "namespace", "not-opted-in"]);
    const valid = "123456789012/us-west-2";
    await createSecret(own, "opted-in", { name: "pull", registries: valid });
    // The policy takes a moment to be enforced: until it refuses, try again (bounded).
    let refusal = "";
    const deadline = Date.now() + 30_000;
    while (!refusal && Date.now() < deadline) {
      try {
        await createSecret(own, "not-opted-in", { name: `pull-${Date.now()}`, registries: valid });
        await new Promise((r) => setTimeout(r, 200));
      } catch (err) {
        refusal = String((err as { body?: unknown }).body ?? err);
      }
    }
    assert.match(refusal, /namespace not-opted-in has not opted in to KubeECR/);

    // A Job from the CronJob, as `kubectl create job --from` does; then the program runs with
    // that Job's pod settings (args, env) and the ServiceAccount's own token.
    await as(["-n", "kubeecr", "create", "job", "--from=cronjob/kubeecr", "kubeecr-now"]);
    const job = JSON.parse(await as(["-n", "kubeecr", "get", "job", "kubeecr-now", "-o", "json"]));
    const pod = job.spec.template.spec;
    assert.equal(pod.serviceAccountName, "kubeecr");
    const [container] = pod.containers;
    const jobEnv = Object.fromEntries(
      (container.env as { name: string; value: string }[]).map((e) => [e.name, e.value]),
    );
    assert.deepEqual(jobEnv, {
      KUBEECR_ANNOTATION: "deft.com/kubeecr",
      KUBEECR_NAMESPACE_SELECTOR: "kubeecr.deft.com/enabled=true",
      KUBEECR_REFRESH_WINDOW: "8h",
    });
    const token = (await as(["-n", "kubeecr", "create", "token", "kubeecr"])).trim();
    const KUBECONFIG = await writeKubeconfig(own, { token });
    const result = await runKubeecr(own, container.args, {
      aws: ecr.awsEnv,
      env: { KUBECONFIG, ...jobEnv },
    });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(summaryOf(result).refreshed, 1, result.stdout);
    const secret = await readSecret(own, "opted-in", "pull");
    assert.ok(dockerConfigOf(secret).auths[hostOf(valid)]?.auth, "the registry entry is written");

    // README's way: `helm install --create-namespace` (the plain install, as a second release
    // beside the first), then `helm uninstall` removes what it created, cluster-scoped included.
    const kube = ["--kubeconfig", own.kubeconfig];
    const install = await helm([
      "install",
      "second",
      CHART,
      "--namespace",
      "second",
      "--create-namespace",
      ...kube,
    ]);
    assert.equal(install.code, 0, install.stdout + install.stderr);
    const clusterScoped = async () =>
      (await as([
        "get",
        "clusterrole,clusterrolebinding",
        "-l",
        "app.kubernetes.io/instance=second",
        "-o",
        "name",
      ])).trim();
    assert.deepEqual((await clusterScoped()).split("\n").sort(), [
      "clusterrole.rbac.authorization.k8s.io/second-kubeecr",
      "clusterrolebinding.rbac.authorization.k8s.io/second-kubeecr",
    ]);
    const inNamespace = await as([
      "-n",
      "second",
      "get",
      "cronjob,serviceaccount",
      "-l",
      "app.kubernetes.io/instance=second",
      "-o",
      "name",
    ]);
    assert.deepEqual(inNamespace.trim().split("\n").sort(), [
      "cronjob.batch/second-kubeecr",
      "serviceaccount/second-kubeecr",
    ]);
    const uninstall = await helm(["uninstall", "second", "--namespace", "second", ...kube]);
    assert.equal(uninstall.code, 0, uninstall.stdout + uninstall.stderr);
    assert.equal(await clusterScoped(), "", "uninstall removes the cluster-scoped objects");
    // The first release is untouched by the second's uninstall.
    await as(["get", "clusterrole", "kubeecr"]);
  } finally {
    await ecr.close();
    await own.stop();
  }
});
