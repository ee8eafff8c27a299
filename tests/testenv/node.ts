/**
 * The test environment's node (`--node`): containerd and a kubelet
 * registered as a Ready node, kube-controller-manager and kube-scheduler,
 * and registries that behave like ECR (registry.ts), so that a pod really
 * pulls with the Secret KubeECR wrote.
 *
 * Root is required. containerd and the kubelet run in a private mount
 * namespace (a `sleep` started by `unshare -m --propagation slave` holds it;
 * both are started in it with nsenter) in which
 *   - /etc/hosts maps every registry and AWS name the tests use to this
 *     environment's own loopback addresses, and /etc/resolv.conf points at
 *     loopback: no lookup or connection leaves the machine (these are bind
 *     mounted before containerd starts, which reads them once);
 *   - /run and /var/log are tmpfs (containerd hard-codes /run/containerd,
 *     the kubelet writes /var/log/containers);
 *   - /var/lib/kubelet is a directory of the environment (the kubelet puts
 *     device-plugins/kubelet.sock there whatever --root-dir says).
 * Everything that listens on 443 has a loopback address of this
 * environment's own (127.<a>.<b>.<n>), so several environments run at once.
 * Pods live under a cgroup root of this environment's own.
 *
 * Teardown (also from the orphan reaper, from node.json alone) kills what
 * runs in those cgroups and in that mount namespace, removes the cgroups, and
 * restores the sysctls the kubelet changes at start.
 */

import type { NodeBinaries } from "./assets.ts";
import { archive, image, layerOf, push } from "./oci.ts";
import { clientCert, type KeyPair, type Pki, servingCert } from "./pki.ts";
import { exitedText, type Managed, spawn, stopProcess } from "./process.ts";
import {
  OTHER_HOST,
  type OtherRegistry,
  prepareRegistry,
  type RegistryInfo,
  TEST_REPOSITORY,
  TEST_TAG,
  watchExpiry,
} from "./registry.ts";
import { elapsed, exists, freePort, isAlive, run, waitUntil, withLock } from "./util.ts";

export const ACCOUNT = "123456789012";
/** The ECR regions the node's registries serve: the image's region first. */
export const REGIONS = ["us-west-2", "eu-central-1"];
export const PAUSE_IMAGE = "kubeecr.test/pause:1";
/** The node's ECR Public registry (the last of `registries`). */
export const ECR_PUBLIC_HOST = "public.ecr.aws";

export const ecrHost = (account: string, region: string) =>
  `${account}.dkr.ecr.${region}.amazonaws.com`;
/** The first region's registry also answers as its FIPS and dual-stack hosts (issue 17). */
export const aliasHosts = (account: string, region: string) => [
  `${account}.dkr.ecr-fips.${region}.amazonaws.com`,
  `${account}.dkr-ecr.${region}.on.aws`,
];

/** What a test needs to know about the node; part of testenv.json. */
export interface NodeInfo {
  name: string;
  /** The test image in the first region's ECR registry (KUBEECR_TESTENV_IMAGE). */
  image: string;
  account: string;
  regions: string[];
  /** The ECR registries, one per region, then ECR Public's (public.ecr.aws). */
  registries: RegistryInfo[];
  other: OtherRegistry;
  /** Helper that hashes a password for a registry's htpasswd (registry.acceptToken). */
  bcrypt: string;
  /** Host name → loopback address, as in the node's /etc/hosts: a pod's hostAliases. */
  hosts: Record<string, string>;
  /** The ECR API (and STS) under its AWS names on 443: `https://api.ecr.<region>.amazonaws.com`. */
  ecrApiAddress: string;
  /** TLS key pair for the AWS API names (served by the environment's ECR proxy). */
  awsServing: KeyPair;
  /** Where the kubelet writes container logs (kubectl logs cannot reach a loopback node). */
  podLogsDir: string;
  containerdSocket: string;
  ctr: string;
  /** For the leftover checks: the pods' cgroup root, the mount namespace, the sysctl claim's pid. */
  cgroupRoot: string;
  mountNamespace: string;
  sysctlUser: number;
}

/** What teardown needs, kept in node.json so that the orphan reaper can do it too. */
interface NodeState {
  cgroupRoot: string;
  /** The mount namespace's inode (`mnt:[4026532…]`), to find every process left in it. */
  mountNamespace?: string;
  sysctlUser: number;
}

/** Whether this process may run a node: root, and containerd, runc, unshare, nsenter present. */
export async function nodePrerequisites(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "the node needs root (containerd, the kubelet, mounts and cgroups)";
  for (const cmd of ["containerd", "ctr", "runc", "unshare", "nsenter"]) {
    const found = await run("sh", ["-c", `command -v ${cmd}`]).catch(() => "");
    if (!found.trim()) {
      return `the node needs ${cmd}: apt-get install containerd runc containernetworking-plugins`;
    }
  }
  if (!(await exists(CNI_BIN))) {
    return `the node needs the CNI loopback plugin in ${CNI_BIN}: apt-get install containernetworking-plugins`;
  }
  return undefined;
}

const CNI_BIN = "/usr/lib/cni";

// --- loopback addresses ----------------------------------------------------

/**
 * `count` addresses 127.<a>.<b>.1… whose port 443 is free, picked at random
 * so that two environments starting at once almost never try the same block
 * (and a taken port is detected before use).
 */
function loopbackBlock(count: number): string[] {
  for (let attempt = 0; attempt < 50; attempt++) {
    const [a, b] = crypto.getRandomValues(new Uint8Array(2));
    const block = Array.from({ length: count }, (_, i) => `127.${a % 200 + 20}.${b}.${i + 1}`);
    const listeners: Deno.Listener[] = [];
    try {
      for (const hostname of block) listeners.push(Deno.listen({ hostname, port: 443 }));
      return block;
    } catch {
      continue;
    } finally {
      for (const l of listeners) l.close();
    }
  }
  throw new Error("no free block of loopback addresses with port 443 free");
}

// --- sysctls ---------------------------------------------------------------

/** The kubelet sets these at start (its "kernel tunables"); they are put back when the last node stops. */
const SYSCTLS = [
  "vm.overcommit_memory",
  "vm.panic_on_oom",
  "kernel.panic",
  "kernel.panic_on_oops",
  "kernel.keys.root_maxkeys",
  "kernel.keys.root_maxbytes",
];
const sysctlFile = (name: string) => `/proc/sys/${name.replaceAll(".", "/")}`;
const tmpDir = () => Deno.env.get("TMPDIR") ?? "/tmp";
/**
 * Machine-wide: the values before the first node started, and which
 * environments (owner pids) run a node now. Nodes of concurrent environments
 * share one record, so the values the kubelet set are never taken for the
 * originals, and only the last one to stop restores them.
 */
const SYSCTL_RECORD = () => `${tmpDir()}/kubeecr-node-sysctls.json`;

interface SysctlRecord {
  original: Record<string, string>;
  users: number[];
}

async function readRecord(): Promise<SysctlRecord | undefined> {
  return await Deno.readTextFile(SYSCTL_RECORD()).then(JSON.parse, () => undefined);
}

async function registerSysctlUser(user: number, log: (l: string) => void) {
  await withLock(`${SYSCTL_RECORD()}.lock`, "recording sysctls", log, async () => {
    const record = await readRecord() ?? {
      original: Object.fromEntries(
        await Promise.all(
          SYSCTLS.map(async (n) => [n, (await Deno.readTextFile(sysctlFile(n))).trim()]),
        ),
      ),
      users: [],
    };
    record.users = [...record.users.filter(isAlive), user];
    await Deno.writeTextFile(SYSCTL_RECORD(), JSON.stringify(record));
  });
}

/** Drops `user` (and dead users); the last one out writes the original values back. */
async function releaseSysctls(user: number, log: (l: string) => void) {
  await withLock(`${SYSCTL_RECORD()}.lock`, "restoring sysctls", log, async () => {
    const record = await readRecord();
    if (!record) return;
    record.users = record.users.filter((u) => u !== user && isAlive(u));
    if (record.users.length > 0) {
      await Deno.writeTextFile(SYSCTL_RECORD(), JSON.stringify(record));
      return;
    }
    for (const [name, value] of Object.entries(record.original)) {
      const now = (await Deno.readTextFile(sysctlFile(name)).catch(() => value)).trim();
      if (now !== value) await Deno.writeTextFile(sysctlFile(name), `${value}\n`);
    }
    // What was restored, for leftoversOf() to compare with afterwards.
    await Deno.writeTextFile(
      `${tmpDir()}/kubeecr-node-sysctls.last.json`,
      JSON.stringify(record.original),
    );
    await Deno.remove(SYSCTL_RECORD());
  });
}

// --- cgroups ---------------------------------------------------------------

/** Mount points of every cgroup hierarchy (v1 controllers, named ones and the unified one). */
async function cgroupMounts(): Promise<string[]> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  return info.split("\n").flatMap((line) => {
    const [left, right] = line.split(" - ");
    if (!right || !/^cgroup2? /.test(right)) return [];
    return [left.split(" ")[4]];
  });
}

async function createCgroupRoot(root: string) {
  for (const mount of await cgroupMounts()) {
    const dir = `${mount}${root}`;
    await Deno.mkdir(dir, { recursive: true });
    // A new v1 cpuset starts with no CPUs and no memory nodes: give it its parent's.
    for (const f of ["cpuset.cpus", "cpuset.mems"]) {
      if (await exists(`${mount}/${f}`)) {
        await Deno.writeTextFile(`${dir}/${f}`, await Deno.readTextFile(`${mount}/${f}`));
      }
    }
  }
}

async function cgroupTree(dir: string): Promise<string[]> {
  const found = [dir];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) found.push(...await cgroupTree(`${dir}/${e.name}`));
  }
  return found;
}

/** Pids in the cgroup root of a node, in any hierarchy. */
export async function cgroupPids(root: string): Promise<number[]> {
  const pids = new Set<number>();
  for (const mount of await cgroupMounts()) {
    const tree = await cgroupTree(`${mount}${root}`).catch(() => []);
    for (const dir of tree) {
      const procs = await Deno.readTextFile(`${dir}/cgroup.procs`).catch(() => "");
      for (const p of procs.split("\n").filter(Boolean)) pids.add(Number(p));
    }
  }
  return [...pids];
}

/** Cgroup directories left of a node's root, in any hierarchy. */
export async function cgroupsLeft(root: string): Promise<string[]> {
  const left: string[] = [];
  for (const mount of await cgroupMounts()) {
    if (await exists(`${mount}${root}`)) left.push(`${mount}${root}`);
  }
  return left;
}

/** Kills every process in the node's cgroups and removes them, deepest first. */
async function removeCgroups(root: string) {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const pids = await cgroupPids(root);
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    let left = 0;
    for (const mount of await cgroupMounts()) {
      const tree = await cgroupTree(`${mount}${root}`).catch(() => []);
      for (const dir of tree.reverse()) {
        await Deno.remove(dir).catch(() => left++);
      }
    }
    if (left === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`cgroups of ${root} could not be removed: ${await cgroupsLeft(root)}`);
}

// --- the mount namespace ---------------------------------------------------

/** Pids whose mount namespace is `ns` (e.g. containerd-shim, which outlives containerd). */
export async function processesIn(ns: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const link = await Deno.readLink(`/proc/${e.name}/ns/mnt`).catch(() => "");
    if (link === ns) pids.push(Number(e.name));
  }
  return pids;
}

/**
 * Ends what a node left: its containers (by cgroup), everything in its mount
 * namespace (containerd-shim daemonizes and would outlive containerd), its
 * cgroups, and its claim on the sysctls. Works from node.json alone.
 */
export async function cleanupNode(dir: string, log: (l: string) => void) {
  const state = await Deno.readTextFile(`${dir}/node/node.json`).then(
    JSON.parse,
    () => undefined,
  ) as
    | NodeState
    | undefined;
  if (!state) return;
  if (state.mountNamespace) {
    for (const pid of await processesIn(state.mountNamespace)) {
      if (pid === Deno.pid) continue;
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
  await removeCgroups(state.cgroupRoot);
  await releaseSysctls(state.sysctlUser, log);
}

/**
 * What a stopped environment's node left behind, one line per kind: a
 * process in its mount namespace, a cgroup, its claim on the sysctls (and,
 * with no node left anywhere, a sysctl not restored), a mount of its
 * directory. Empty when the teardown was complete.
 */
export async function leftoversOf(dir: string, node: NodeInfo): Promise<string[]> {
  const found: string[] = [];
  const pids = await processesIn(node.mountNamespace);
  if (pids.length) found.push(`processes in its mount namespace: ${pids.join(" ")}`);
  const cgroups = await cgroupsLeft(node.cgroupRoot);
  if (cgroups.length) found.push(`cgroups: ${cgroups.join(" ")}`);
  const record = await readRecord();
  if (record?.users.includes(node.sysctlUser)) found.push("its claim on the sysctls");
  if (!record) {
    // No node runs anywhere: every value must be what it was before the first one.
    const before = await Deno.readTextFile(`${tmpDir()}/kubeecr-node-sysctls.last.json`)
      .then(JSON.parse, () => ({})) as Record<string, string>;
    for (const [name, value] of Object.entries(before)) {
      const now = (await Deno.readTextFile(sysctlFile(name))).trim();
      if (now !== value) found.push(`sysctl ${name}=${now}, was ${value}`);
    }
  }
  // The kubelet's iptables chains (makeIPTablesUtilChains is off; this checks that it stays so).
  for (const table of ["filter", "nat", "mangle"]) {
    const rules = await run("iptables", ["-t", table, "-S"]).catch(() => "");
    const kube = rules.split("\n").filter((l) => /\bKUBE-/.test(l));
    if (kube.length) found.push(`iptables ${table}: ${kube.join("; ")}`);
  }
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
    .filter((l) => l.includes(dir));
  if (mounts.length) found.push(`mounts: ${mounts.join("; ")}`);
  return found;
}

// --- configuration files ---------------------------------------------------

function containerdConfig(dir: string): string {
  return `version = 2
root = "${dir}/containerd/root"
state = "/run/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri.v1alpha2", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${dir}/containerd.sock"

[ttrpc]
  address = "${dir}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # No CAP_SYS_RESOURCE here: never lower an oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${dir}/cni-bin"
    conf_dir = "${dir}/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${dir}/certs.d"
`;
}

/**
 * containerd 1.6's hosts.toml: a top-level `server` alone fails to decode
 * ("invalid host tree") and containerd then silently uses the real host, so
 * the host table is spelt out, with the CA that signed the registry.
 */
function hostsToml(host: string, caCert: string): string {
  return `server = "https://${host}"

[host."https://${host}"]
  capabilities = ["pull", "resolve"]
  ca = "${caCert}"
`;
}

/**
 * Pod networking: a pod gets its own network namespace with loopback only
 * (pods that need the machine's addresses use hostNetwork). containerd 1.6
 * insists on an address of "eth0" in the CNI result, so a second plugin of
 * ours reports the pod's 127.0.0.1 under that name; it creates nothing, so
 * nothing of the host's network (bridges, routes, forwarding) is touched.
 */
const CNI_CONFLIST = JSON.stringify({
  cniVersion: "1.0.0",
  name: "kubeecr-loopback",
  plugins: [{ type: "loopback" }, { type: "kubeecr-loopback-ip" }],
});

const CNI_REPORT_PLUGIN = `#!/bin/sh
# CNI plugin: reports the pod's loopback address as eth0's (see node.ts).
case "$CNI_COMMAND" in
ADD)
  cat >/dev/null
  printf '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"%s"}],"ips":[{"address":"127.0.0.1/8","interface":0}]}' "$CNI_NETNS"
  ;;
VERSION) printf '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
*) cat >/dev/null ;;
esac
`;

function kubeletConfig(o: {
  dir: string;
  cgroupRoot: string;
  port: number;
  healthzPort: number;
  caCert: string;
}): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 (hybrid), which kubelet 1.37 refuses by default.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: ${o.cgroupRoot}
failSwapOn: false
address: 127.0.0.1
port: ${o.port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${o.healthzPort}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: ${o.caCert}
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://${o.dir}/containerd.sock
imageServiceEndpoint: unix://${o.dir}/containerd.sock
podLogsDir: ${o.dir}/logs
resolvConf: ${o.dir}/resolv.conf
serializeImagePulls: false
# No KUBE-FIREWALL, KUBE-KUBELET-CANARY or KUBE-IPTABLES-HINT chains in the
# machine's iptables: they would outlive the node (nothing here needs them).
makeIPTablesUtilChains: false
registerNode: true
# A shared test machine's disk and memory are not this node's to guard.
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
fileCheckFrequency: 10s
volumeStatsAggPeriod: 0s
shutdownGracePeriod: 0s
localStorageCapacityIsolation: false
`;
}

/** The mount namespace's set-up: runs as the holder, then sleeps until killed. */
function holderScript(dir: string): string {
  return `set -eu
mount --make-rslave /
mount --bind '${dir}/hosts' /etc/hosts
mount --bind '${dir}/resolv.conf' /etc/resolv.conf
mount -t tmpfs -o mode=755 kubeecr-run /run
mount -t tmpfs -o mode=755 kubeecr-log /var/log
mount --bind '${dir}/var-lib-kubelet' /var/lib/kubelet
echo ready
exec sleep 2147483647
`;
}

// --- start -----------------------------------------------------------------

export interface NodeOptions {
  dir: string;
  pki: Pki;
  bins: NodeBinaries & { kubectl: string };
  /** The API server's port on 127.0.0.1. */
  apiPort: number;
  /** Writes a kubeconfig for `user` against the API server; returns its path. */
  kubeconfig: (name: string, user: KeyPair) => Promise<string>;
  adminKubeconfig: string;
  track: (m: Managed) => void;
  log: (line: string) => void;
}

export interface Node {
  info: NodeInfo;
  registries: RegistryInfo[];
  stop(): Promise<void>;
}

/** A TCP relay: pods reach the API server as kubernetes.default.svc:443 (its certificate names it). */
function relay(hostname: string, port: number, target: number): Deno.Listener {
  const listener = Deno.listen({ hostname, port });
  (async () => {
    for await (const conn of listener) {
      Deno.connect({ hostname: "127.0.0.1", port: target }).then(async (up) => {
        await Promise.all([
          conn.readable.pipeTo(up.writable).catch(() => {}),
          up.readable.pipeTo(conn.writable).catch(() => {}),
        ]);
      }, () => conn.close());
    }
  })().catch(() => {});
  return listener;
}

export async function startNode(o: NodeOptions): Promise<Node> {
  const { pki, log } = o;
  const started = Date.now();
  const dir = `${o.dir}/node`;
  await Deno.mkdir(`${dir}/var-lib-kubelet`, { recursive: true });
  await Deno.mkdir(`${dir}/logs`, { recursive: true });
  await Deno.mkdir(`${dir}/cni`, { recursive: true });
  await Deno.mkdir("/var/lib/kubelet", { recursive: true });
  const id = o.dir.slice(o.dir.lastIndexOf("-") + 1).toLowerCase().replace(/[^a-z0-9]/g, "");
  const name = `kubeecr-node-${id}`;
  const state: NodeState = { cgroupRoot: `/kubeecr-${id}`, sysctlUser: Deno.pid };
  const saveState = () => Deno.writeTextFile(`${dir}/node.json`, JSON.stringify(state));
  await saveState();

  // Addresses: one per ECR region, the other registry, the AWS API, the API server.
  const addrs = loopbackBlock(REGIONS.length + 4);
  const ecrApiAddress = addrs[REGIONS.length + 1];
  const apiAddress = addrs[REGIONS.length + 2];
  const registries: RegistryInfo[] = REGIONS.map((region, i) => ({
    host: ecrHost(ACCOUNT, region),
    address: addrs[i],
    region,
    dir: `${dir}/registry-${region}`,
    image: `${ecrHost(ACCOUNT, region)}/${TEST_REPOSITORY}:${TEST_TAG}`,
    ...(i === 0 ? { aliases: aliasHosts(ACCOUNT, region) } : {}),
  }));
  // ECR Public: accepts the newest token the ECR proxy handed out for it
  // (kept under "ecr-public", ecr_proxy.ts's ECR_PUBLIC, where ECR's are under their region).
  registries.push({
    host: ECR_PUBLIC_HOST,
    address: addrs[REGIONS.length + 3],
    region: "ecr-public",
    dir: `${dir}/registry-public`,
    image: `${ECR_PUBLIC_HOST}/${TEST_REPOSITORY}:${TEST_TAG}`,
  });
  const other: OtherRegistry = {
    host: OTHER_HOST,
    address: addrs[REGIONS.length],
    dir: `${dir}/registry-other`,
    image: `${OTHER_HOST}/${TEST_REPOSITORY}:${TEST_TAG}`,
    username: "other-user",
    password: `other-${crypto.randomUUID()}`,
  };
  const hosts: Record<string, string> = {};
  for (const r of [...registries, other]) {
    for (const h of [r.host, ...r.aliases ?? []]) hosts[h] = r.address;
  }
  const awsNames = REGIONS.flatMap((r) => [`api.ecr.${r}.amazonaws.com`, `sts.${r}.amazonaws.com`]);
  for (const n of [...awsNames, "sts.amazonaws.com"]) hosts[n] = ecrApiAddress;
  for (const n of ["kubernetes.default.svc", "kubernetes.default", "kubernetes"]) {
    hosts[n] = apiAddress;
  }
  await Deno.writeTextFile(
    `${dir}/hosts`,
    `127.0.0.1 localhost ${name}\n::1 localhost\n` +
      Object.entries(hosts).map(([h, a]) => `${a} ${h}`).join("\n") + "\n",
  );
  // Nothing answers DNS there: a name missing from hosts fails here, it never leaves.
  await Deno.writeTextFile(
    `${dir}/resolv.conf`,
    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
  );

  const stops: (() => Promise<void> | void)[] = [];
  const processes: Managed[] = [];
  const track = (m: Managed) => {
    processes.push(m);
    o.track(m);
  };
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      const byName = (n: string) => processes.filter((p) => p.name === n);
      await Promise.all(byName("kubelet").map(stopProcess));
      await cleanupNode(o.dir, log).catch((err) => log(`node cleanup: ${err}`));
      await Promise.all(processes.map(stopProcess));
      for (const s of stops.reverse()) await s();
    })();

  try {
    await registerSysctlUser(Deno.pid, log);
    await createCgroupRoot(state.cgroupRoot);

    // Identities: each component its own certificate, RBAC as in a cluster.
    const certs = `${dir}/pki`;
    await Deno.mkdir(certs, { recursive: true });
    const ca = { cert: pki.caCert, key: pki.caKey };
    const [kubeletUser, kcmUser, schedulerUser, awsServing] = await Promise.all([
      clientCert(certs, "kubelet", `/O=system:nodes/CN=system:node:${name}`, ca),
      clientCert(certs, "kcm", "/CN=system:kube-controller-manager", ca),
      clientCert(certs, "scheduler", "/CN=system:kube-scheduler", ca),
      servingCert(certs, "aws", [...awsNames, "sts.amazonaws.com"].map((n) => `DNS:${n}`), ca),
    ]);
    // RBAC's system:node role has no binding by default (the Node authorizer
    // is not enabled here): bind it to the nodes group.
    await run(o.bins.kubectl, [
      "--kubeconfig",
      o.adminKubeconfig,
      "create",
      "clusterrolebinding",
      "kubeecr-testenv-nodes",
      "--clusterrole=system:node",
      "--group=system:nodes",
    ]);

    // Images: the pause image for the node, the test image for the registries.
    const root = `${dir}/image-root`;
    await Deno.mkdir(root, { recursive: true });
    await Deno.copyFile(o.bins.hello, `${root}/hello`);
    await Deno.chmod(`${root}/hello`, 0o755);
    const layer = await layerOf(root, dir);
    const img = await image([layer], { entrypoint: ["/hello"], user: "65532:65532" });
    await archive(img, PAUSE_IMAGE, `${dir}/pause.tar`, dir);

    // Registries, started now; the image is pushed once they answer.
    const prepared = await Promise.all([
      ...registries.map((r) => prepareRegistry(r, o.bins.bcrypt, ca)),
      prepareRegistry(other, o.bins.bcrypt, ca, other),
    ]);
    for (const p of prepared) {
      const m = spawn(
        `registry-${p.info.region ?? "other"}`,
        o.bins.registry,
        ["serve", p.configFile],
        o.dir,
        {
          KUBEECR_TESTENV_DIR: o.dir,
          // distribution 3 exports traces to localhost:4318 unless told not to.
          OTEL_SDK_DISABLED: "true",
          OTEL_TRACES_EXPORTER: "none",
        },
      );
      track(m);
    }
    stops.push(watchExpiry(registries));

    // The API server under its in-cluster name, for pods on the host network.
    const apiRelay = relay(apiAddress, 443, o.apiPort);
    stops.push(() => apiRelay.close());

    // containerd's registry configuration: the test CA for every registry host.
    for (const r of [...registries, other]) {
      for (const h of [r.host, ...r.aliases ?? []]) {
        await Deno.mkdir(`${dir}/certs.d/${h}`, { recursive: true });
        await Deno.writeTextFile(`${dir}/certs.d/${h}/hosts.toml`, hostsToml(h, pki.caCert));
      }
    }
    await Deno.writeTextFile(`${dir}/cni/10-loopback.conflist`, CNI_CONFLIST);
    await Deno.mkdir(`${dir}/cni-bin`);
    await Deno.symlink(`${CNI_BIN}/loopback`, `${dir}/cni-bin/loopback`);
    await Deno.writeTextFile(`${dir}/cni-bin/kubeecr-loopback-ip`, CNI_REPORT_PLUGIN, {
      mode: 0o755,
    });
    await Deno.writeTextFile(`${dir}/containerd.toml`, containerdConfig(dir));

    // The mount namespace, then containerd in it.
    await Deno.writeTextFile(`${dir}/holder.sh`, holderScript(dir));
    const holder = spawn(
      "node-namespace",
      "unshare",
      [
        "--mount",
        "--propagation",
        "slave",
        "sh",
        `${dir}/holder.sh`,
      ],
      o.dir,
      { KUBEECR_TESTENV_DIR: o.dir },
    );
    track(holder);
    await waitUntil(
      "the node's mount namespace",
      async () => (await Deno.readTextFile(holder.log)).includes("ready"),
      {
        timeoutMs: 10_000,
        failed: () => exitedText(holder),
      },
    );
    const nsPid = holder.child.pid;
    state.mountNamespace = await Deno.readLink(`/proc/${nsPid}/ns/mnt`);
    await saveState();
    const inNamespace = ["--mount=/proc/" + nsPid + "/ns/mnt", "--"];
    const containerd = spawn(
      "containerd",
      "nsenter",
      [
        ...inNamespace,
        "containerd",
        "--config",
        `${dir}/containerd.toml`,
        "--log-level",
        "warn",
      ],
      o.dir,
      { KUBEECR_TESTENV_DIR: o.dir, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    );
    track(containerd);

    // The control-plane controllers need nothing of the node: start them meanwhile.
    const kcmConfig = await o.kubeconfig("kube-controller-manager", kcmUser);
    const schedulerConfig = await o.kubeconfig("kube-scheduler", schedulerUser);
    track(spawn("kube-controller-manager", o.bins.kubeControllerManager, [
      `--kubeconfig=${kcmConfig}`,
      `--authentication-kubeconfig=${kcmConfig}`,
      `--authorization-kubeconfig=${kcmConfig}`,
      "--use-service-account-credentials=true",
      `--service-account-private-key-file=${pki.serviceAccountKey}`,
      `--root-ca-file=${pki.caCert}`,
      "--cluster-name=kubeecr-testenv",
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${freePort()}`,
      "--node-monitor-grace-period=60s",
      "--v=0",
    ], o.dir));
    track(spawn("kube-scheduler", o.bins.kubeScheduler, [
      `--kubeconfig=${schedulerConfig}`,
      `--authentication-kubeconfig=${schedulerConfig}`,
      `--authorization-kubeconfig=${schedulerConfig}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${freePort()}`,
      "--v=0",
    ], o.dir));

    const socket = `${dir}/containerd.sock`;
    const ctr = (args: string[]) =>
      run("ctr", ["--address", socket, "--namespace", "k8s.io", ...args]);
    await waitUntil("containerd", async () => {
      await ctr(["version"]);
      return true;
    }, { timeoutMs: 30_000, failed: () => exitedText(containerd) });
    await ctr(["images", "import", `${dir}/pause.tar`]);

    // Push the test image to every registry (as the push user).
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(pki.caCert)] });
    try {
      for (const p of prepared) {
        const base = `https://${p.info.address}`;
        await waitUntil(`registry ${p.info.host}`, async () => {
          const res = await fetch(`${base}/v2/`, { client });
          await res.body?.cancel();
          return res.status === 401;
        }, {
          timeoutMs: 30_000,
          failed: () => processes.map(exitedText).find(Boolean),
        });
        // Also as examples/usage's image, so that the example Deployment runs unchanged.
        for (const [repository, tag] of [[TEST_REPOSITORY, TEST_TAG], ["example/app", "1.0"]]) {
          await push(img, base, repository, tag, { client, authorization: p.pushAuthorization });
        }
      }
    } finally {
      client.close();
    }

    // The kubelet, in the namespace too.
    const kubeletConfigFile = `${dir}/kubelet.yaml`;
    await Deno.writeTextFile(
      kubeletConfigFile,
      kubeletConfig({
        dir,
        cgroupRoot: state.cgroupRoot,
        port: freePort(),
        healthzPort: freePort(),
        caCert: pki.caCert,
      }),
    );
    const kubeletKubeconfig = await o.kubeconfig("kubelet", kubeletUser);
    const kubelet = spawn(
      "kubelet",
      "nsenter",
      [
        ...inNamespace,
        o.bins.kubelet,
        `--config=${kubeletConfigFile}`,
        `--kubeconfig=${kubeletKubeconfig}`,
        `--root-dir=/var/lib/kubelet`,
        `--hostname-override=${name}`,
        "--node-ip=127.0.0.1",
        "--v=1",
      ],
      o.dir,
      { KUBEECR_TESTENV_DIR: o.dir, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    );
    track(kubelet);

    const kubectl = (args: string[]) =>
      run(o.bins.kubectl, ["--kubeconfig", o.adminKubeconfig, ...args]);
    await waitUntil(`node ${name} Ready`, async () => {
      const ready = await kubectl([
        "get",
        "node",
        name,
        "-o",
        `jsonpath={.status.conditions[?(@.type=="Ready")].status}`,
      ]);
      return ready === "True";
    }, { timeoutMs: 90_000, failed: () => processes.map(exitedText).find(Boolean) });
    // Pods need their namespace's default ServiceAccount (the controller-manager makes it).
    await waitUntil("the default ServiceAccount", async () => {
      await kubectl(["-n", "default", "get", "serviceaccount", "default"]);
      return true;
    }, { timeoutMs: 60_000, failed: () => processes.map(exitedText).find(Boolean) });
    log(`node ${name} Ready in ${elapsed(started)}`);

    return {
      registries,
      info: {
        name,
        image: registries[0].image,
        account: ACCOUNT,
        regions: REGIONS,
        registries,
        other,
        bcrypt: o.bins.bcrypt,
        hosts,
        ecrApiAddress,
        awsServing,
        podLogsDir: `${dir}/logs`,
        containerdSocket: socket,
        ctr: "ctr",
        cgroupRoot: state.cgroupRoot,
        mountNamespace: state.mountNamespace,
        sysctlUser: state.sysctlUser,
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
