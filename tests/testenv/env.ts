/**
 * The integration-test environment: a real etcd + kube-apiserver (RBAC,
 * service-account token signing, client-certificate admin) and moto as the
 * AWS endpoint, all on free 127.0.0.1 ports, in one temporary directory.
 *
 * `stop()` ends every process and removes the directory. It is also called on
 * SIGINT/SIGTERM/SIGHUP, and environments whose owner died without stopping
 * them (SIGKILL) are reaped by the next start.
 */

import { AssetError, type Binaries, resolveBinaries, resolveNodeBinaries } from "./assets.ts";
import { type EcrProxy, startEcrProxy } from "./ecr_proxy.ts";
import { ensureMoto } from "./moto.ts";
import { cleanupNode, type Node, type NodeInfo, nodePrerequisites, startNode } from "./node.ts";
import { createPki, type Pki } from "./pki.ts";
import { acceptToken } from "./registry.ts";
import { exitedText, type Managed, spawn, stopProcess, tailOf } from "./process.ts";
import { elapsed, freePort, isAlive, run, waitUntil } from "./util.ts";

/** Everything a test needs to reach the environment; also written as testenv.json. */
export interface TestEnvInfo {
  dir: string;
  server: string;
  kubernetesVersion: string;
  kubeconfig: string;
  kubectl: string;
  caCert: string;
  /** The API server's serving certificate (names 127.0.0.1): a test's TLS proxy presents it too. */
  serving: { cert: string; key: string };
  admin: { cert: string; key: string };
  nobody: { cert: string; key: string };
  auditLog: string;
  motoUrl: string;
  /** AWS_* variables that point the AWS SDK at moto with test credentials. */
  awsEnv: Record<string, string>;
  /** Shell file exporting KUBECONFIG, PATH and the AWS_* variables. */
  envFile: string;
  startupSeconds: number;
  /**
   * With `node: true`: the node, its registries and the environment's own ECR
   * endpoint (awsEnv points at it), which issues distinct passwords with real
   * lifetimes that the registries accept.
   */
  node?: NodeInfo;
  /** The environment's ECR proxy in front of moto, when it has one (node or tokenLifetime). */
  ecrProxyUrl?: string;
}

export interface TestEnv extends TestEnvInfo {
  stop(): Promise<void>;
}

/** Runs the environment's kubectl as admin; stdin is optional (for `apply -f -`). */
export async function kubectl(env: TestEnvInfo, args: string[], stdin?: string): Promise<string> {
  return await run(env.kubectl, ["--kubeconfig", env.kubeconfig, ...args], { stdin });
}

const PREFIX = "kubeecr-testenv-";
const OWNER_FILE = "owner.pid";

/**
 * Removes environments left behind by a run that was killed outright: their
 * owner pid is gone, so their servers (recorded in owner.pid) are ended and
 * their directory removed. A server is only killed if its command line still
 * names that directory, so a recycled pid is never hit.
 */
export async function reapOrphans(tmp: string, log: (line: string) => void) {
  for await (const entry of Deno.readDir(tmp)) {
    if (!entry.isDirectory || !entry.name.startsWith(PREFIX)) continue;
    const dir = `${tmp}/${entry.name}`;
    const pids = (await Deno.readTextFile(`${dir}/${OWNER_FILE}`).catch(() => ""))
      .split(/\s+/).filter(Boolean).map(Number);
    if (pids.length === 0 || isAlive(pids[0])) continue;
    for (const pid of pids.slice(1)) {
      const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
      const environ = await Deno.readTextFile(`/proc/${pid}/environ`).catch(() => "");
      if (cmdline.includes(dir) || environ.includes(`KUBEECR_TESTENV_DIR=${dir}\0`)) {
        Deno.kill(pid, "SIGKILL");
      }
    }
    await cleanupNode(dir, log).catch((err) => log(`node leftovers of ${dir}: ${err}`));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    log(`removed the leftovers of an earlier run: ${dir}`);
  }
}

/** Who a kubeconfig authenticates as: a client certificate or a bearer token. */
export type KubeconfigUser = { cert: string; key: string } | { token: string };

/** A kubeconfig for `server`, trusting the CA in file `caFile`, with everything inlined. */
export function kubeconfigYaml(server: string, caFile: string, user: KubeconfigUser): string {
  const b64 = (path: string) => btoa(Deno.readTextFileSync(path));
  const credentials = "token" in user
    ? `    token: ${user.token}`
    : `    client-certificate-data: ${b64(user.cert)}\n    client-key-data: ${b64(user.key)}`;
  return `apiVersion: v1
kind: Config
clusters:
- name: kubeecr-testenv
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(caFile)}
users:
- name: user
  user:
${credentials}
contexts:
- name: kubeecr-testenv
  context:
    cluster: kubeecr-testenv
    user: user
current-context: kubeecr-testenv
`;
}

/**
 * Audit every request at Metadata level: tests read it to prove which
 * namespaces and verbs an identity used, as seen by the API server itself.
 */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`;

function shellQuote(v: string): string {
  return `'${v.replaceAll("'", `'\\''`)}'`;
}

export interface StartOptions {
  log?: (line: string) => void;
  /** Environment used to look up TEST_ASSET_* and KUBEBUILDER_ASSETS. */
  env?: Record<string, string | undefined>;
  /** Add a one-node cluster: containerd, kubelet, controller-manager, scheduler, registries (root). */
  node?: boolean;
  /**
   * Lifetime of the tokens the environment's ECR endpoint issues, in seconds
   * (default 12 h, as ECR). Setting it gives the environment an ECR proxy even
   * without the node.
   */
  tokenLifetimeSeconds?: number;
}

async function startServers(
  dir: string,
  bins: Binaries,
  motoServer: string,
  pki: Pki,
  track: (m: Managed) => void,
) {
  const etcdPort = freePort();
  const peerPort = freePort();
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const etcd = spawn("etcd", bins.etcd, [
    `--name=testenv`,
    `--data-dir=${dir}/etcd`,
    `--listen-client-urls=${etcdUrl}`,
    `--advertise-client-urls=${etcdUrl}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=testenv=http://127.0.0.1:${peerPort}`,
    "--unsafe-no-fsync",
    "--log-level=warn",
  ], dir);
  track(etcd);

  const motoPort = freePort();
  const motoUrl = `http://127.0.0.1:${motoPort}`;
  // moto's command line does not name the directory; its environment does,
  // which is what the orphan reaper matches on.
  const moto = spawn("moto", motoServer, ["-H", "127.0.0.1", "-p", String(motoPort)], dir, {
    KUBEECR_TESTENV_DIR: dir,
  });
  track(moto);

  await waitUntil("etcd", async () => (await fetch(`${etcdUrl}/health`)).ok, {
    timeoutMs: 30_000,
    failed: () => exitedText(etcd),
  });

  const port = freePort();
  const server = `https://127.0.0.1:${port}`;
  await Deno.writeTextFile(`${dir}/audit-policy.yaml`, AUDIT_POLICY);
  const apiserver = spawn("kube-apiserver", bins.kubeApiserver, [
    `--etcd-servers=${etcdUrl}`,
    `--cert-dir=${dir}/apiserver`,
    `--tls-cert-file=${pki.serving.cert}`,
    `--tls-private-key-file=${pki.serving.key}`,
    `--client-ca-file=${pki.caCert}`,
    `--secure-port=${port}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    // The default reconciler refuses a loopback advertise address; the tests
    // never need the kubernetes Service endpoints it would maintain.
    "--endpoint-reconciler-type=none",
    "--service-cluster-ip-range=10.0.0.0/24",
    "--authorization-mode=RBAC",
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    `--service-account-key-file=${pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
    `--audit-policy-file=${dir}/audit-policy.yaml`,
    `--audit-log-path=${dir}/audit.log`,
    "--audit-log-mode=blocking",
    "--enable-priority-and-fairness=false",
    "--profiling=false",
    "--v=1",
  ], dir);
  track(apiserver);

  const client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(pki.caCert)],
    cert: await Deno.readTextFile(pki.admin.cert),
    key: await Deno.readTextFile(pki.admin.key),
  });
  try {
    await waitUntil(
      "kube-apiserver",
      async () => {
        const res = await fetch(`${server}/readyz`, { client });
        await res.body?.cancel();
        return res.ok;
      },
      {
        timeoutMs: 60_000,
        failed: () => exitedText(apiserver),
      },
    );
  } finally {
    client.close();
  }
  await waitUntil("moto", async () => {
    const res = await fetch(`${motoUrl}/moto-api/data.json`);
    await res.body?.cancel();
    return res.ok;
  }, { timeoutMs: 30_000, failed: () => exitedText(moto) });
  return { server, motoUrl };
}

/**
 * freePort() picks a port and closes it before the server binds it; an
 * outgoing connection of any process may be given that ephemeral port in
 * between. A start whose server found its port taken is retried with new ports.
 */
async function withPortRetry<T>(
  log: (line: string) => void,
  start: () => Promise<T>,
  current: () => Managed[],
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await start();
    } catch (err) {
      const logs = await Promise.all(current().map((p) => tailOf(p.log, 50)));
      if (attempt === 3 || !logs.some((l) => /address already in use/i.test(l))) throw err;
      log(`a port was taken before its server could bind it; starting again with new ports`);
    }
  }
}

export async function startTestEnv(opts: StartOptions = {}): Promise<TestEnv> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const started = Date.now();
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  await reapOrphans(tmp, log);

  if (opts.node) {
    const missing = await nodePrerequisites();
    if (missing) throw new AssetError(`--node: ${missing}`);
  }
  // Binaries and the venv come first: they may take minutes on a cold cache,
  // and nothing is started (so nothing can leak) until they are there.
  const [bins, motoServer, nodeBins] = await Promise.all([
    resolveBinaries(opts.env ?? Deno.env.toObject(), log),
    ensureMoto(log),
    opts.node ? resolveNodeBinaries(log) : undefined,
  ]);
  const kubernetesVersion = (await run(bins.kubeApiserver, ["--version"])).trim().split(" ").pop()!;

  const readyFrom = Date.now();
  const dir = await Deno.makeTempDir({ prefix: PREFIX });
  const processes: Managed[] = [];
  const writeOwner = () =>
    Deno.writeTextFileSync(
      `${dir}/${OWNER_FILE}`,
      [Deno.pid, ...processes.map((p) => p.child.pid)].join("\n"),
    );
  writeOwner();

  let stopped: Promise<void> | undefined;
  let node: Node | undefined;
  let proxy: EcrProxy | undefined;
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  let interrupted = false;
  const onSignal = () => {
    // Ctrl-C often arrives twice: the terminal sends SIGINT to the whole
    // process group and `deno task` forwards its own copy to this process.
    // The listener stays registered until stop() is done, so a repeated
    // signal is absorbed here; without a listener Deno's default action would
    // end the process half-way, leaving the directory and a slow API server.
    if (interrupted) return;
    interrupted = true;
    log("interrupted: stopping the test environment");
    stop().finally(() => Deno.exit(130));
  };
  const stop = () => {
    stopped ??= (async () => {
      // The node first: its pods and the kubelet are ended while the API server is still up.
      await node?.stop();
      await proxy?.close().catch(() => {});
      // etcd goes last: the API server drains its requests against it on the way down.
      const etcd = processes.filter((p) => p.name === "etcd");
      await Promise.all(processes.filter((p) => p.name !== "etcd").map(stopProcess));
      await Promise.all(etcd.map(stopProcess));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      for (const s of signals) Deno.removeSignalListener(s, onSignal);
    })();
    return stopped;
  };
  for (const s of signals) Deno.addSignalListener(s, onSignal);

  try {
    const pki = await createPki(`${dir}/pki`);
    const { server, motoUrl } = await withPortRetry(log, async () => {
      // A failed attempt's servers go before the next one starts.
      await Promise.all(processes.splice(0).map(stopProcess));
      await Deno.remove(`${dir}/etcd`, { recursive: true }).catch(() => {});
      // owner.pid is rewritten after every spawn, so a reaper always knows every server.
      return await startServers(dir, bins, motoServer, pki, (m) => {
        processes.push(m);
        writeOwner();
      });
    }, () => processes);

    const kubeconfig = `${dir}/kubeconfig`;
    await Deno.writeTextFile(
      kubeconfig,
      kubeconfigYaml(server, pki.caCert, pki.admin),
      { mode: 0o600 },
    );
    if (nodeBins) {
      node = await startNode({
        dir,
        pki,
        bins: { ...nodeBins, kubectl: bins.kubectl },
        apiPort: Number(new URL(server).port),
        kubeconfig: async (name, user) => {
          const path = `${dir}/kubeconfig-${name}`;
          await Deno.writeTextFile(path, kubeconfigYaml(server, pki.caCert, user), { mode: 0o600 });
          return path;
        },
        adminKubeconfig: kubeconfig,
        track: (m) => {
          processes.push(m);
          writeOwner();
        },
        log,
      });
    }
    if (node || opts.tokenLifetimeSeconds !== undefined) {
      const n = node?.info;
      proxy = startEcrProxy(motoUrl, {
        tokenLifetimeSeconds: opts.tokenLifetimeSeconds,
        // Pods reach it as https://api.ecr.<region>.amazonaws.com (the smoke test's Jobs).
        tls: n && {
          hostname: n.ecrApiAddress,
          port: 443,
          cert: n.awsServing.cert,
          key: n.awsServing.key,
        },
        onToken: n &&
          ((region, password, expiresAt) =>
            acceptToken(n.registries, n.bcrypt, region, password, expiresAt)),
      });
    }
    const awsEnv = {
      AWS_ENDPOINT_URL_ECR: proxy?.url ?? motoUrl,
      // moto has no ECR Public (it answers 404); without a proxy it must still
      // not go to AWS.
      AWS_ENDPOINT_URL_ECR_PUBLIC: proxy?.url ?? motoUrl,
      AWS_ENDPOINT_URL_STS: motoUrl,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
    };
    const kubectlDir = bins.kubectl.slice(0, bins.kubectl.lastIndexOf("/"));
    const envFile = `${dir}/env.sh`;
    const exports = [
      `export KUBECONFIG=${shellQuote(kubeconfig)}`,
      `export PATH=${shellQuote(kubectlDir)}:"$PATH"`,
      ...Object.entries(awsEnv).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
      ...(node
        ? [
          `export KUBEECR_TESTENV_NODE=${shellQuote(node.info.name)}`,
          `export KUBEECR_TESTENV_IMAGE=${shellQuote(node.info.image)}`,
        ]
        : []),
    ];
    await Deno.writeTextFile(
      envFile,
      `# kubeecr test environment (${dir})\n${exports.join("\n")}\n`,
    );

    const info: TestEnvInfo = {
      dir,
      server,
      kubernetesVersion,
      kubeconfig,
      kubectl: bins.kubectl,
      caCert: pki.caCert,
      serving: pki.serving,
      admin: pki.admin,
      nobody: pki.nobody,
      auditLog: `${dir}/audit.log`,
      motoUrl,
      awsEnv,
      envFile,
      startupSeconds: (Date.now() - readyFrom) / 1000,
      node: node?.info,
      ecrProxyUrl: proxy?.url,
    };
    await Deno.writeTextFile(`${dir}/testenv.json`, JSON.stringify(info, null, 2));
    log(
      `test environment ready in ${elapsed(readyFrom)} (${elapsed(started)} in all): ` +
        `Kubernetes ${kubernetesVersion} at ${server}, moto at ${motoUrl}` +
        (node ? `, node ${node.info.name}` : ""),
    );
    return { ...info, stop };
  } catch (err) {
    for (const p of processes) {
      if (p.exited) log(`--- ${p.name} log (tail) ---\n${await tailOf(p.log)}`);
    }
    await stop();
    throw err;
  }
}
