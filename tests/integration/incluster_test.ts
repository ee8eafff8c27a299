/**
 * The in-cluster test: install KubeECR as a user would
 * (`kubectl apply -k examples/installation`), then run the program as close
 * to the CronJob's pod as a machine without a kubelet allows:
 *
 * - the container's args and env read back from the API server (envFrom
 *   resolved), plus what the kubelet adds (KUBERNETES_SERVICE_HOST/PORT);
 * - uid/gid 65532 (distroless nonroot), no capabilities, no new privileges;
 * - a read-only root filesystem (checked: nothing the program can see is
 *   writable, not even /tmp);
 * - the service-account token, CA and namespace at
 *   /var/run/secrets/kubernetes.io/serviceaccount/ laid out as the kubelet's
 *   projected volume: a tmpfs holding a timestamped directory, `..data`
 *   pointing at it, and `token` → `..data/token` (files 0644);
 * - the API server at https://kubernetes.default.svc:443 and ECR/STS at their
 *   real host names on 443, resolved by a private /etc/hosts to a relay (see
 *   fixtures/pod_network.ts) that presents the API server as is and moto
 *   behind TLS from a test CA the Deno runtime trusts (DENO_CERT, read by the
 *   runtime, not the program): no AWS_ENDPOINT_URL_* override in the happy
 *   path, so the endpoints are the ones the SDK resolves by itself;
 * - the `cronjob` Deno permission set.
 *
 * The pod's filesystem view is a private mount namespace (`unshare -m`), so
 * nothing on the machine changes. Needs root (as CI and the developers'
 * machines here are) or passwordless sudo (as a hosted CI runner has).
 *
 * Each variant gets a test environment of its own, so RBAC and the audit log
 * show only what that install did.
 */

import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import * as k8s from "@kubernetes/client-node";
import { kubeConfigFor } from "../testenv/connect.ts";
import { kubectl, startTestEnv, type TestEnv } from "../testenv/env.ts";
import { startEcrProxy } from "../testenv/ecr_proxy.ts";
import { createCa, servingCert } from "../testenv/pki.ts";
import { startConnectProxy } from "../testenv/connect_proxy.ts";
import { auditRecords, recordCliOutput } from "./cli.ts";
import { copyInstallation } from "./install.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const SA_USER = "system:serviceaccount:kubeecr:kubeecr";
const ACCOUNT = "123456789012";
const REGION = "us-west-2";
const HOST = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com`;
const NONROOT = 65532;
const IRSA_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/kubeecr-irsa`;
/** What EKS's webhook sets in a pod for IRSA (with the token projected at IRSA_DIR). */
const IRSA_ENV = {
  AWS_ROLE_ARN: ROLE_ARN,
  AWS_WEB_IDENTITY_TOKEN_FILE: `${IRSA_DIR}/token`,
  AWS_STS_REGIONAL_ENDPOINTS: "regional",
  AWS_REGION: REGION,
  AWS_DEFAULT_REGION: REGION,
};
// The AWS names the SDK resolves for the Secrets' region (ECR; STS regional
// and global), served by the relay's TLS front for moto.
const AWS_NAMES = [
  `api.ecr.${REGION}.amazonaws.com`,
  `sts.${REGION}.amazonaws.com`,
  "sts.amazonaws.com",
];
// Names the sandbox must refuse, resolved to the relay's trap so that a
// connection would be seen: the STS redirect of issue 9 and an EC2 host name
// (which real DNS resolves to that IP, i.e. to anywhere).
const EVIL_STS = "evil.amazonaws.com";
const EC2_HOST = "ec2-1-2-3-4.compute-1.amazonaws.com";
const LOOKALIKE = "evil-amazonaws.com";
const TRAP_PORTS = [443, 46100];

// Runs as root in the private mount namespace: lays out the pod's view, makes
// the root read-only, proves it, then drops to 65532 and runs the program.
// The program, its dependencies and Deno are bind-mounted under /run (as an
// image's files would be there), so no directory of the invoking user (a
// runner's 0750 home) has to be readable by 65532.
// Arguments: stage dir, DENO_DIR, repository, deno binary, deno arguments...
const POD_VIEW = `set -eu
stage="$1"; deno_dir="$2"; repo="$3"; deno="$4"; shift 4
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs /run
# A projected volume as the kubelet writes it (AtomicWriter): a tmpfs, a
# timestamped directory with the files, ..data -> it, and one symlink per file.
project() {
  dir="$1"; src="$2"
  mkdir -p "$dir"
  mount -t tmpfs -o mode=1777 tmpfs "$dir"
  ts="..$(date -u +%Y_%m_%d_%H_%M_%S).$$"
  mkdir -m 0755 "$dir/$ts"
  for f in "$src"/*; do
    name="$(basename "$f")"
    cp "$f" "$dir/$ts/$name"
    chmod 0644 "$dir/$ts/$name"
    ln -s "..data/$name" "$dir/$name"
  done
  ln -s "$ts" "$dir/..data"
}
project /run/secrets/kubernetes.io/serviceaccount "$stage/sa"
# A ConfigMap volume at /etc/kubeecr (the role map), projected the same way.
# This machine has no /etc/kubeecr and must not get one: the pod's /etc is a
# tmpfs holding a copy of it, in this mount namespace only.
if [ -d "$stage/roles" ]; then
  mkdir /run/etc-host
  mount --bind /etc /run/etc-host
  mount -t tmpfs -o mode=0755 tmpfs /etc
  cp -a /run/etc-host/. /etc/
  umount /run/etc-host
  rmdir /run/etc-host
  project /etc/kubeecr "$stage/roles"
fi
if [ -d "$stage/irsa" ]; then project ${IRSA_DIR.replace("/var/run", "/run")} "$stage/irsa"; fi
install -m 0644 "$stage/aws-ca.crt" /run/kubeecr-test-ca.crt
mkdir /run/deno-dir /run/kubeecr
mount --bind "$deno_dir" /run/deno-dir
mount --bind "$repo" /run/kubeecr
touch /run/deno
mount --bind "$deno" /run/deno
mount --bind "$stage/hosts" /etc/hosts
# A CA bundle mounted where an installation mounts one (README, custom CAs).
if [ -d "$stage/certs" ]; then mount --bind "$stage/certs" /etc/ssl/certs; fi
for m in / /run /run/deno-dir /run/kubeecr /run/deno /etc/hosts /run/secrets/kubernetes.io/serviceaccount; do
  mount -o remount,bind,ro "$m"
done
if [ -d "$stage/irsa" ]; then mount -o remount,bind,ro ${IRSA_DIR.replace("/var/run", "/run")}; fi
if [ -d "$stage/roles" ]; then
  mount -o remount,bind,ro /etc
  mount -o remount,bind,ro /etc/kubeecr
fi
for d in / /tmp /run /run/deno-dir /run/kubeecr /run/secrets/kubernetes.io/serviceaccount; do
  if touch "$d/.kubeecr-rw-probe" 2>/dev/null; then
    rm -f "$d/.kubeecr-rw-probe"
    echo "pod view: $d is writable" >&2
    exit 97
  fi
done
cd /run/kubeecr
exec setpriv --reuid=${NONROOT} --regid=${NONROOT} --clear-groups --inh-caps=-all \\
  --bounding-set=-all --no-new-privs -- /run/deno "$@"
`;

interface PodRun {
  code: number;
  stdout: string;
  stderr: string;
}

interface RelayRecord {
  kind: "aws" | "trap";
  host?: string;
  target?: string;
  form?: Record<string, string>;
  authorization?: string;
  status?: number;
  accessKeyId?: string;
  port?: number;
}

/** fixtures/pod_network.ts, running as root for its port-443 listeners. */
interface PodNetwork {
  base: string;
  records: RelayRecord[];
  caCert: string;
  stop(): Promise<void>;
}

const asRoot = (command: string[]) =>
  Deno.uid() === 0 ? command : ["sudo", "-n", "--preserve-env", ...command];

async function startPodNetwork(env: TestEnv, work: string): Promise<PodNetwork> {
  const pki = `${work}/aws-pki`;
  const ca = await createCa(pki, "kubeecr-incluster-aws-ca");
  const tls = await servingCert(pki, "aws", AWS_NAMES.map((n) => `DNS:${n}`), ca);
  const api = new URL(env.server);
  // moto's tokens expired in 2015 and KubeECR refuses to write a dead token:
  // the pod's AWS traffic reaches moto through an ECR proxy (12h lifetime).
  const ecr = startEcrProxy(env.motoUrl);
  for (let attempt = 1;; attempt++) {
    // A loopback /24 of its own: 127.0.0.0/8 is all loopback on Linux.
    const base = `127.${1 + Math.floor(Math.random() * 254)}.${Math.floor(Math.random() * 256)}`;
    const config = `${work}/pod-network.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        base,
        apiTarget: { hostname: api.hostname, port: Number(api.port) },
        motoUrl: ecr.url,
        cert: tls.cert,
        key: tls.key,
        trapPorts: TRAP_PORTS,
      }),
    );
    const [cmd, ...args] = asRoot([
      Deno.execPath(),
      "run",
      "-A",
      new URL("./fixtures/pod_network.ts", import.meta.url).pathname,
      config,
    ]);
    const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).spawn();
    const records: RelayRecord[] = [];
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let pending = "";
    let ready = false;
    const reading = (async () => {
      for (;;) {
        const { value, done } = await lines.read();
        if (done) return;
        pending += value;
        const parts = pending.split("\n");
        pending = parts.pop()!;
        for (const line of parts) {
          const record = JSON.parse(line);
          if (record.ready) ready = true;
          else records.push(record);
        }
      }
    })();
    const stderr = new Response(child.stderr).text();
    while (!ready) {
      const exited = await Promise.race([
        child.status.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), 50)),
      ]);
      if (exited && !ready) break;
    }
    if (ready) {
      return {
        base,
        records,
        caCert: ca.cert,
        async stop() {
          try {
            child.kill("SIGTERM");
          } catch { /* gone */ }
          await child.status;
          await reading.catch(() => {});
          await stderr;
          await ecr.close();
        },
      };
    }
    await reading.catch(() => {});
    const why = await stderr;
    if (attempt >= 3 || !why.includes("AddrInUse")) {
      await ecr.close();
      throw new Error(`pod network did not start:\n${why}`);
    }
  }
}

async function annotatedSecret(env: TestEnv, namespace: string, name = "ecr-pull") {
  // Opted in, as README's install tells (examples/installation has the
  // namespace opt-in); a no-op for the installs without it. Labelled as it is
  // created: labelling it afterwards races the policy's view of namespaces.
  const labels = { "kubeecr.deft.com/enabled": "true" };
  const ns = { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace, labels } };
  await kubectl(env, ["create", "-f", "-"], JSON.stringify(ns));
  const secret = {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/dockerconfigjson",
    metadata: { name, namespace, annotations: { "deft.com/kubeecr": `${ACCOUNT}/${REGION}` } },
    stringData: { ".dockerconfigjson": '{"auths":{}}' },
  };
  await kubectl(env, ["apply", "-f", "-"], JSON.stringify(secret));
}

async function secretState(env: TestEnv, namespace: string) {
  const s = JSON.parse(
    await kubectl(env, ["-n", namespace, "get", "secret", "ecr-pull", "-o", "json"]),
  );
  const config = JSON.parse(atob(s.data[".dockerconfigjson"]));
  return {
    resourceVersion: s.metadata.resourceVersion as string,
    hosts: Object.keys(config.auths),
    expiresAt: s.metadata.annotations?.["kubeecr.deft.com/expires-at"] as string | undefined,
  };
}

/** The CronJob's container as the API server holds it, with envFrom resolved like the kubelet does. */
async function podSpec(env: TestEnv): Promise<{ args: string[]; env: Record<string, string> }> {
  const cronjob = JSON.parse(
    await kubectl(env, ["-n", "kubeecr", "get", "cronjob", "kubeecr", "-o", "json"]),
  );
  const container = cronjob.spec.jobTemplate.spec.template.spec.containers[0];
  const vars: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const name = from.secretRef?.name;
    assert.ok(name, "only secretRef envFrom is resolved here");
    const found = JSON.parse(
      await kubectl(env, [
        "-n",
        "kubeecr",
        "get",
        "secret",
        name,
        "--ignore-not-found",
        "-o",
        "json",
      ]) ||
        "null",
    );
    // A missing optional Secret is skipped, as the kubelet does.
    assert.ok(found || from.secretRef.optional, `Secret ${name} missing and not optional`);
    for (const [k, v] of Object.entries(found?.data ?? {})) vars[k] = atob(v as string);
  }
  for (const e of container.env ?? []) {
    assert.ok(e.value !== undefined, `env ${e.name}: only plain values are resolved here`);
    vars[e.name] = e.value;
  }
  return { args: container.args ?? [], env: vars };
}

/** A TokenRequest token for the ServiceAccount as EKS's webhook projects it for IRSA. */
async function irsaTokenFor(env: TestEnv): Promise<string> {
  const args = ["-n", "kubeecr", "create", "token", "kubeecr", "--audience=sts.amazonaws.com"];
  return (await kubectl(env, args)).trim();
}

interface PodOptions {
  /** Added to (or, when undefined, removed from) the pod's environment. */
  env?: Record<string, string | undefined>;
  extraArgs?: string[];
  /** Project an IRSA token (audience sts.amazonaws.com) as EKS's webhook does. */
  irsaToken?: string;
  /** Deno flags added to -P=cronjob (an installation's --allow-net=<proxy>). */
  denoFlags?: string[];
  /** Files that replace /etc/ssl/certs in the pod's view (a mounted CA bundle). */
  certs?: Record<string, string>;
  /** The files of a ConfigMap volume at /etc/kubeecr (the role map), as the kubelet projects them. */
  roles?: Record<string, string>;
}

/** Runs main.ts as the pod would, in a private mount namespace. */
async function runAsPod(
  env: TestEnv,
  net: PodNetwork,
  work: string,
  opts: PodOptions = {},
): Promise<PodRun> {
  // Everything the pod view is made from; readable by 65532 only through the
  // copies POD_VIEW makes, like a kubelet's volumes.
  const stage = await Deno.makeTempDir({ dir: work, prefix: "pod-" });
  await Deno.mkdir(`${stage}/sa`);
  await Deno.writeTextFile(
    `${stage}/sa/token`,
    (await kubectl(env, ["-n", "kubeecr", "create", "token", "kubeecr"])).trim(),
  );
  await Deno.copyFile(env.caCert, `${stage}/sa/ca.crt`);
  await Deno.writeTextFile(`${stage}/sa/namespace`, "kubeecr");
  if (opts.irsaToken) {
    await Deno.mkdir(`${stage}/irsa`);
    await Deno.writeTextFile(`${stage}/irsa/token`, opts.irsaToken);
  }
  await Deno.copyFile(net.caCert, `${stage}/aws-ca.crt`);
  if (opts.roles) {
    await Deno.mkdir(`${stage}/roles`);
    for (const [name, text] of Object.entries(opts.roles)) {
      await Deno.writeTextFile(`${stage}/roles/${name}`, text);
    }
  }
  if (opts.certs) {
    await Deno.mkdir(`${stage}/certs`);
    for (const [name, text] of Object.entries(opts.certs)) {
      await Deno.writeTextFile(`${stage}/certs/${name}`, text);
    }
  }
  await Deno.writeTextFile(
    `${stage}/hosts`,
    [
      "127.0.0.1 localhost",
      `${net.base}.1 kubernetes.default.svc`,
      `${net.base}.2 ${AWS_NAMES.join(" ")}`,
      `${net.base}.3 ${EVIL_STS} ${EC2_HOST} ${LOOKALIKE}`,
      "",
    ].join("\n"),
  );

  const pod = await podSpec(env);
  const vars: Record<string, string | undefined> = {
    ...pod.env,
    // What the kubelet adds for the kubernetes Service.
    KUBERNETES_SERVICE_HOST: "10.0.0.1",
    KUBERNETES_SERVICE_PORT: "443",
    // distroless's nonroot HOME; it does not exist here either.
    HOME: "/home/nonroot",
    AWS_EC2_METADATA_DISABLED: "true",
    // For the runtime, not the program (the sandbox hides them from it).
    DENO_CERT: "/run/kubeecr-test-ca.crt",
    DENO_DIR: "/run/deno-dir",
    // The deno CLI's own update check (absent from the compiled binary)
    // would otherwise use the proxy variables the proxy step sets.
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    ...opts.env,
  };
  const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
  const args = [...pod.args, ...(opts.extraArgs ?? [])];
  const [cmd, ...rest] = asRoot([
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    POD_VIEW,
    "pod-view",
    stage,
    denoDir,
    REPO,
    Deno.execPath(),
    "run",
    "--quiet",
    "-P=cronjob",
    ...(opts.denoFlags ?? []),
    "main.ts",
    ...args,
  ]);
  const out = await new Deno.Command(cmd, {
    args: rest,
    cwd: REPO,
    clearEnv: true,
    env: Object.fromEntries(
      Object.entries(vars).filter((e): e is [string, string] => e[1] !== undefined),
    ),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  const result = { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  await recordCliOutput(env, { args, ...result });
  assert.notEqual(result.code, 97, `the pod view is not read-only:\n${result.stderr}`);
  return result;
}

async function canI(
  env: TestEnv,
  token: string,
  attrs: k8s.V1ResourceAttributes,
): Promise<boolean> {
  const authz = kubeConfigFor(env, { token }).makeApiClient(k8s.AuthorizationV1Api);
  const review = await authz.createSelfSubjectAccessReview({
    body: { spec: { resourceAttributes: attrs } },
  });
  return review.status?.allowed === true;
}

async function withEnv(fn: (env: TestEnv, net: PodNetwork, work: string) => Promise<void>) {
  const env = await startTestEnv({ log: () => {} });
  try {
    // Inside the environment's directory, so it goes with it, also when a
    // signal stops the environment before this finally block could run.
    const work = await Deno.makeTempDir({ dir: env.dir, prefix: "smoke-" });
    const net = await startPodNetwork(env, work);
    try {
      await fn(env, net, work);
    } finally {
      await net.stop();
    }
  } finally {
    await env.stop();
  }
}

function summaryOf(run: PodRun) {
  const lines = run.stdout.trim().split("\n").map((l) => JSON.parse(l));
  return lines.find((l) => l.msg === "summary");
}

Deno.test("cluster-wide install: the CronJob's pod refreshes Secrets in other namespaces, inside the sandbox", async (t) => {
  await withEnv(async (env, net, work) => {
    await copyInstallation(work);
    await kubectl(env, ["apply", "-k", `${work}/examples/installation`]);
    await annotatedSecret(env, "team-one");
    await annotatedSecret(env, "team-two");

    await t.step("the program run as the pod refreshes both Secrets", async () => {
      const pod = await runAsPod(env, net, work);
      assert.equal(pod.code, 0, `stdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`);
      assert.equal(summaryOf(pod).refreshed, 2);
      for (const ns of ["team-one", "team-two"]) {
        const state = await secretState(env, ns);
        assert.deepEqual(state.hosts, [HOST]);
        assert.ok(state.expiresAt, `${ns}: expires-at annotation written`);
      }
      // ECR was reached under its own name on 443, not through an override.
      const ecr = net.records.filter((r) =>
        r.kind === "aws" && r.target?.includes("GetAuthorizationToken")
      );
      assert.deepEqual(ecr.map((r) => r.host), [`api.ecr.${REGION}.amazonaws.com`]);
    });

    await t.step(
      "a custom CA given by AWS_CA_BUNDLE or NODE_EXTRA_CA_CERTS is trusted for ECR",
      async () => {
        // Without DENO_CERT, the runtime trusts only public roots: the test CA
        // of the ECR front comes from the bundle alone (issue 14, item 5).
        const bundle = "/etc/ssl/certs/corporate-ca.pem";
        const certs = { "corporate-ca.pem": await Deno.readTextFile(net.caCert) };
        const cases: PodOptions[] = [
          { certs, env: { DENO_CERT: undefined, AWS_CA_BUNDLE: bundle } },
          { certs, env: { DENO_CERT: undefined, NODE_EXTRA_CA_CERTS: bundle } },
        ];
        for (const opts of cases) {
          const seen = net.records.length;
          const pod = await runAsPod(env, net, work, { ...opts, extraArgs: ["--force"] });
          const label = JSON.stringify(opts.env);
          assert.equal(pod.code, 0, `${label}\nstdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`);
          assert.equal(summaryOf(pod).refreshed, 2, label);
          const ecr = net.records.slice(seen).filter((r) =>
            r.kind === "aws" && r.target?.includes("GetAuthorizationToken")
          );
          assert.equal(ecr.length, 1, label);
        }
        // And without any of them the test CA is not trusted: the bundle is what did it.
        const pod = await runAsPod(env, net, work, {
          env: { DENO_CERT: undefined },
          extraArgs: ["--force"],
        });
        assert.equal(pod.code, 1, pod.stdout + pod.stderr);
        assert.match(pod.stdout, /certificate/i);
      },
    );

    await t.step(
      "proxy variables are ignored in the pod; --proxy is used when the sandbox allows it",
      async () => {
        await using proxy = startConnectProxy((target) =>
          target === "kubernetes.default.svc:443"
            ? { hostname: `${net.base}.1`, port: 443 }
            : undefined
        );
        const vars = Object.fromEntries(
          ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            .map((v) => [v, proxy.url]),
        );
        const ignored = await runAsPod(env, net, work, { env: vars, extraArgs: ["--force"] });
        assert.equal(ignored.code, 0, ignored.stdout + ignored.stderr);
        assert.deepEqual(
          proxy.connects,
          [],
          "no CONNECT for variables the installation did not set",
        );
        assert.ok(ignored.stdout.includes("ignoring proxy variables"), ignored.stdout);

        const host = new URL(proxy.url).host;
        const refused = await runAsPod(env, net, work, { env: { KUBEECR_PROXY: proxy.url } });
        assert.equal(refused.code, 2, refused.stdout + refused.stderr);
        assert.ok(refused.stdout.includes(`--build-arg PROXY_HOST=${host}`), refused.stdout);
        assert.deepEqual(proxy.connects, []);

        const used = await runAsPod(env, net, work, {
          env: { ...vars, KUBEECR_PROXY: proxy.url },
          // What an installation's own build does (Dockerfile, PROXY_HOST): the
          // set's list plus the one host; --allow-net beside -P replaces the list.
          denoFlags: [`--allow-net=${[...denoJson.permissions.cronjob.net, host].join(",")}`],
          extraArgs: ["--force"],
        });
        assert.equal(used.code, 0, used.stdout + used.stderr);
        assert.ok(proxy.connects.length >= 1, "the API traffic went through --proxy");
        assert.deepEqual([...new Set(proxy.connects)], ["kubernetes.default.svc:443"]);
      },
    );

    await t.step("its token can do what the program needs and nothing else", async () => {
      const token = (await kubectl(env, ["-n", "kubeecr", "create", "token", "kubeecr"])).trim();
      const allowed: k8s.V1ResourceAttributes[] = [
        { verb: "list", resource: "secrets" },
        { verb: "get", resource: "secrets", namespace: "team-one" },
        { verb: "patch", resource: "secrets", namespace: "team-one" },
        { verb: "create", resource: "events", namespace: "team-one" },
      ];
      const denied: k8s.V1ResourceAttributes[] = [
        { verb: "get", resource: "configmaps", namespace: "team-one" },
        { verb: "list", resource: "configmaps" },
        { verb: "create", resource: "secrets", namespace: "team-one" },
        { verb: "delete", resource: "secrets", namespace: "team-one" },
        { verb: "update", resource: "secrets", namespace: "team-one" },
        { verb: "watch", resource: "secrets" },
        { verb: "list", resource: "pods" },
        { verb: "create", resource: "serviceaccounts/token", namespace: "kubeecr" },
      ];
      for (const a of allowed) {
        assert.equal(await canI(env, token, a), true, `should be allowed: ${JSON.stringify(a)}`);
      }
      for (const a of denied) {
        assert.equal(await canI(env, token, a), false, `should be denied: ${JSON.stringify(a)}`);
      }
    });

    await t.step("the sandbox refuses hosts outside its allow-list, naming them", async () => {
      const irsa = {
        AWS_ACCESS_KEY_ID: undefined,
        AWS_SECRET_ACCESS_KEY: undefined,
        AWS_ROLE_ARN: ROLE_ARN,
        AWS_WEB_IDENTITY_TOKEN_FILE: `${IRSA_DIR}/token`,
      };
      const irsaToken = await irsaTokenFor(env);
      const cases: { host: string; opts: PodOptions }[] = [
        // Issue 9: the web-identity token must not reach a redirected STS.
        {
          host: EVIL_STS,
          opts: { irsaToken, env: { ...irsa, AWS_ENDPOINT_URL_STS: `http://${EVIL_STS}:46100` } },
        },
        // An EC2 host name is *.amazonaws.com but any address.
        { host: EC2_HOST, opts: { env: { AWS_ENDPOINT_URL_ECR: `https://${EC2_HOST}` } } },
        { host: LOOKALIKE, opts: { env: { AWS_ENDPOINT_URL_ECR: `https://${LOOKALIKE}` } } },
        // An allowed name on another port.
        {
          host: `api.ecr.${REGION}.amazonaws.com`,
          opts: { env: { AWS_ENDPOINT_URL_ECR: `https://api.ecr.${REGION}.amazonaws.com:46100` } },
        },
      ];
      for (const { host, opts } of cases) {
        const before = await secretState(env, "team-one");
        const seen = net.records.length;
        const pod = await runAsPod(env, net, work, { ...opts, extraArgs: ["--force"] });
        assert.equal(pod.code, 1, pod.stdout + pod.stderr);
        assert.ok(
          pod.stdout.includes(host),
          `the failure names ${host}:
${pod.stdout}`,
        );
        assert.ok(pod.stdout.includes(`the sandbox refused a connection to ${host}`), pod.stdout);
        assert.ok(!pod.stdout.includes("--allow-net"), "a flag users of the binary cannot pass");
        // Nothing arrived anywhere: not at the trap, not at moto.
        assert.deepEqual(net.records.slice(seen), [], host);
        assert.equal((await secretState(env, "team-one")).resourceVersion, before.resourceVersion);
      }
      // A container-credentials URL to a refused host: named, not "no credentials found" alone.
      const seen = net.records.length;
      const pod = await runAsPod(env, net, work, {
        env: {
          AWS_ACCESS_KEY_ID: undefined,
          AWS_SECRET_ACCESS_KEY: undefined,
          AWS_CONTAINER_CREDENTIALS_FULL_URI: `https://${EVIL_STS}/creds`,
        },
        extraArgs: ["--force"],
      });
      assert.equal(pod.code, 2, pod.stdout + pod.stderr);
      assert.ok(
        pod.stdout.includes(
          `AWS_CONTAINER_CREDENTIALS_FULL_URI points the SDK at https://${EVIL_STS}/creds, ` +
            `and the sandbox refuses ${EVIL_STS}:443`,
        ),
        pod.stdout,
      );
      assert.deepEqual(net.records.slice(seen), []);
    });
  });
});

Deno.test("IRSA: a projected sts.amazonaws.com token is exchanged at STS and the Secret refreshed with what came back", async () => {
  await withEnv(async (env, net, work) => {
    await copyInstallation(work);
    // IRSA instead of static keys: the example's own instruction.
    const example = `${work}/examples/installation/kustomization.yaml`;
    const text = await Deno.readTextFile(example);
    await Deno.writeTextFile(
      example,
      text.replace(/^secretGenerator:\n(?:[ -].*\n)+/m, ""),
    );
    await kubectl(env, ["apply", "-k", `${work}/examples/installation`]);
    await annotatedSecret(env, "team-irsa");
    const irsaToken = await irsaTokenFor(env);
    const claims = JSON.parse(
      new TextDecoder().decode(Uint8Array.fromBase64(irsaToken.split(".")[1], {
        alphabet: "base64url",
      })),
    );
    assert.deepEqual(claims.aud, ["sts.amazonaws.com"]);

    const pod = await runAsPod(env, net, work, {
      irsaToken,
      env: IRSA_ENV,
    });
    assert.equal(pod.code, 0, `stdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`);
    assert.ok(!("AWS_ACCESS_KEY_ID" in (await podSpec(env)).env), "no static keys in the pod");

    const sts = net.records.filter((r) => r.form?.Action === "AssumeRoleWithWebIdentity");
    assert.equal(sts.length, 1, JSON.stringify(net.records));
    assert.equal(sts[0].host, `sts.${REGION}.amazonaws.com`);
    assert.equal(sts[0].form?.RoleArn, ROLE_ARN);
    assert.equal(sts[0].form?.WebIdentityToken, irsaToken, "the projected token, read via ..data");
    assert.equal(sts[0].status, 200);
    const keyId = sts[0].accessKeyId;
    assert.ok(keyId, "STS answered with credentials");

    const ecr = net.records.filter((r) => r.target?.endsWith("GetAuthorizationToken"));
    assert.equal(ecr.length, 1);
    assert.ok(
      ecr[0].authorization?.includes(`Credential=${keyId}/`),
      `ECR signed with the key STS returned (${keyId}): ${ecr[0].authorization?.slice(0, 60)}`,
    );
    assert.deepEqual((await secretState(env, "team-irsa")).hosts, [HOST]);
  });
});

Deno.test("role map under -P=cronjob with IRSA base credentials: each role assumed once, from the IRSA session", async () => {
  const ROLE_A = "arn:aws:iam::210987654321:role/ecr-pull-team-a";
  const ROLE_B = "arn:aws:iam::444444444444:role/ecr-pull-team-b";
  await withEnv(async (env, net, work) => {
    await copyInstallation(work);
    // IRSA instead of static keys, and the roles component with the admin's map, as README says.
    const dir = `${work}/examples/installation`;
    const text = await Deno.readTextFile(`${dir}/kustomization.yaml`);
    await Deno.writeTextFile(
      `${dir}/kustomization.yaml`,
      text.replace(/^secretGenerator:\n(?:[ -].*\n)+/m, "")
        .replace(
          /^(\s*- )\.\.\/\.\.\/manifests\/components\/namespace-opt-in\n/m,
          "$&$1../../manifests/components/roles\n",
        ) +
        "\nconfigMapGenerator:\n  - name: kubeecr-roles\n    namespace: kubeecr\n" +
        "    files: [roles.yaml]\n    options:\n      disableNameSuffixHash: true\n",
    );
    await Deno.writeTextFile(
      `${dir}/roles.yaml`,
      `roles:
  - role: ${ROLE_A}
    externalId: team-a
    accounts: ["210987654321"]
    namespaces: ["tenant-a"]
  - role: ${ROLE_B}
    accounts: ["444444444444"]
    namespaceSelector: tenant=b
otherAccounts: deny
`,
    );
    await kubectl(env, ["apply", "-k", dir]);
    const tenants: [string, Record<string, string>, string][] = [
      ["tenant-a", {}, "210987654321"],
      ["tenant-b", { tenant: "b" }, "444444444444"],
    ];
    for (const [ns, labels, account] of tenants) {
      const meta = { name: ns, labels: { "kubeecr.deft.com/enabled": "true", ...labels } };
      await kubectl(
        env,
        ["create", "-f", "-"],
        JSON.stringify({ kind: "Namespace", apiVersion: "v1", metadata: meta }),
      );
      const secret = (name: string, item: string) => ({
        apiVersion: "v1",
        kind: "Secret",
        type: "kubernetes.io/dockerconfigjson",
        metadata: { name, namespace: ns, annotations: { "deft.com/kubeecr": item } },
        stringData: { ".dockerconfigjson": '{"auths":{}}' },
      });
      await kubectl(
        env,
        ["apply", "-f", "-"],
        JSON.stringify(secret("ecr-pull", `${account}/${REGION}`)),
      );
    }
    // tenant-b asks for tenant-a's account: refused by the map.
    await kubectl(
      env,
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "Secret",
        type: "kubernetes.io/dockerconfigjson",
        metadata: {
          name: "steal",
          namespace: "tenant-b",
          annotations: { "deft.com/kubeecr": `210987654321/${REGION}` },
        },
        stringData: { ".dockerconfigjson": '{"auths":{}}' },
      }),
    );

    // The ConfigMap as the API server holds it, projected as the CronJob's volume says.
    const cronjob = JSON.parse(
      await kubectl(env, ["-n", "kubeecr", "get", "cronjob", "kubeecr", "-o", "json"]),
    );
    const podTemplate = cronjob.spec.jobTemplate.spec.template.spec;
    const volume = podTemplate.volumes.find((v: { name: string }) => v.name === "roles");
    assert.deepEqual(podTemplate.containers[0].volumeMounts, [
      { name: "roles", mountPath: "/etc/kubeecr", readOnly: true },
    ]);
    const configMap = JSON.parse(
      await kubectl(env, [
        "-n",
        "kubeecr",
        "get",
        "configmap",
        volume.configMap.name,
        "-o",
        "json",
      ]),
    );
    const pod = await runAsPod(env, net, work, {
      irsaToken: await irsaTokenFor(env),
      roles: configMap.data,
      env: IRSA_ENV,
    });
    const said = `stdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`;
    assert.equal(pod.code, 1, said);
    assert.equal((await podSpec(env)).env.KUBEECR_ROLES, "/etc/kubeecr/roles.yaml");
    const summary = summaryOf(pod);
    assert.deepEqual([summary.refreshed, summary.failed], [2, 1], said);
    const lines = pod.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(
      lines.find((l) => l.secret === "tenant-b/steal" && l.msg === "failed")?.reason,
      "NotAllowedByRoleMap",
      said,
    );

    // One web-identity exchange, then one AssumeRole per role signed with its session's key.
    const web = net.records.filter((r) => r.form?.Action === "AssumeRoleWithWebIdentity");
    assert.equal(web.length, 1, "one web-identity exchange for both roles");
    const assumed = net.records.filter((r) => r.form?.Action === "AssumeRole");
    assert.deepEqual(assumed.map((r) => r.form?.RoleArn).sort(), [ROLE_A, ROLE_B]);
    for (const call of assumed) {
      assert.equal(call.host, `sts.${REGION}.amazonaws.com`);
      assert.ok(call.authorization?.includes(`Credential=${web[0].accessKeyId}/`), "from IRSA");
      assert.equal(call.form?.ExternalId, call.form?.RoleArn === ROLE_A ? "team-a" : undefined);
    }
    // One ECR call per role, each signed with that role's key; the token names its account.
    const ecr = net.records.filter((r) => r.target?.endsWith("GetAuthorizationToken"));
    assert.equal(ecr.length, 2);
    for (const call of assumed) {
      assert.equal(
        ecr.filter((r) => r.authorization?.includes(`Credential=${call.accessKeyId}/`)).length,
        1,
        `one ECR call as ${call.form?.RoleArn}`,
      );
    }
    for (const [ns, , account] of tenants) {
      const s = JSON.parse(
        await kubectl(env, ["-n", ns, "get", "secret", "ecr-pull", "-o", "json"]),
      );
      const auths = JSON.parse(atob(s.data[".dockerconfigjson"])).auths;
      const host = `${account}.dkr.ecr.${REGION}.amazonaws.com`;
      assert.match(auths[host].password, new RegExp(`^${account}-auth-token`), ns);
    }
  });
});

Deno.test("namespaced install: only the listed namespaces are read or written", async () => {
  await withEnv(async (env, net, work) => {
    await copyInstallation(work);
    // The user's steps for this variant: name the namespaces, use the overlay.
    for (const file of ["kustomization.yaml", "rbac.yaml"]) {
      const path = `${work}/manifests/namespaced/${file}`;
      const text = await Deno.readTextFile(path);
      await Deno.writeTextFile(
        path,
        text.replaceAll("team-a", "listed-one").replaceAll("team-b", "listed-two"),
      );
    }
    const example = `${work}/examples/installation/kustomization.yaml`;
    const text = await Deno.readTextFile(example);
    await Deno.writeTextFile(
      example,
      text.replace(/^(\s*- )\.\.\/\.\.\/manifests$/m, "$1../../manifests/namespaced")
        // The opt-in extends the ClusterRole, which this install does not have.
        .replace(/^\s*- \.\.\/\.\.\/manifests\/components\/namespace-opt-in\n/m, ""),
    );
    for (const ns of ["listed-one", "listed-two", "outside"]) await annotatedSecret(env, ns);
    await kubectl(env, ["apply", "-k", `${work}/examples/installation`]);
    const outsideBefore = await secretState(env, "outside");
    const byKubeecr = async () =>
      (await auditRecords(env)).filter((r) => r.user.username === SA_USER);
    const auditedBefore = (await byKubeecr()).length;

    const pod = await runAsPod(env, net, work);
    assert.equal(pod.code, 0, `stdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`);
    for (const ns of ["listed-one", "listed-two"]) {
      assert.deepEqual((await secretState(env, ns)).hosts, [HOST]);
    }
    assert.deepEqual(await secretState(env, "outside"), outsideBefore);

    // The API server's own record: every request of the identity stayed in
    // the listed namespaces; none was cluster-wide.
    const requests = (await byKubeecr()).slice(auditedBefore);
    assert.ok(requests.some((r) => r.verb === "patch"), "the run's requests are in the audit log");
    const strays = requests.filter((r) =>
      !["listed-one", "listed-two"].includes(r.objectRef?.namespace ?? "")
    );
    assert.deepEqual(strays.map((r) => `${r.verb} ${r.requestURI}`), []);

    const token = (await kubectl(env, ["-n", "kubeecr", "create", "token", "kubeecr"])).trim();
    assert.equal(
      await canI(env, token, { verb: "list", resource: "secrets", namespace: "outside" }),
      false,
    );
    assert.equal(await canI(env, token, { verb: "list", resource: "secrets" }), false);
  });
});
