/**
 * Finds the control-plane binaries the test environment runs: etcd,
 * kube-apiserver and kubectl.
 *
 * Each binary is looked up, in order, in
 *   1. TEST_ASSET_ETCD / TEST_ASSET_KUBE_APISERVER / TEST_ASSET_KUBECTL,
 *   2. $KUBEBUILDER_ASSETS/{etcd,kube-apiserver,kubectl} (the envtest convention),
 *   3. the cache directory, keyed by version and by the wrapper module's hash,
 * and otherwise built once with Go from the Go module proxy through the
 * wrapper modules under gobuild/ (nothing downloaded is committed).
 */

import { cacheDir, elapsed, exists, Progress, sha256Hex, withLock } from "./util.ts";

const GOBUILD = new URL("./gobuild/", import.meta.url).pathname;

export interface Binaries {
  etcd: string;
  kubeApiserver: string;
  kubectl: string;
}

/** A configured asset path that does not point at a file: one line, no stack. */
export class AssetError extends Error {
  override name = "AssetError";
}

interface Lookup {
  binary: keyof Binaries;
  file: string;
  variable: string;
}

const LOOKUPS: Lookup[] = [
  { binary: "etcd", file: "etcd", variable: "TEST_ASSET_ETCD" },
  { binary: "kubeApiserver", file: "kube-apiserver", variable: "TEST_ASSET_KUBE_APISERVER" },
  { binary: "kubectl", file: "kubectl", variable: "TEST_ASSET_KUBECTL" },
];

/** One Go wrapper module and what it builds. */
interface GoBuild {
  /** Names the cache folder: <name>-<version>-<hash>. */
  name: string;
  dir: string;
  /** The module whose `require` line pins the release, e.g. k8s.io/kubernetes. */
  pinned: string;
  packages: string[];
  outputs: string[];
  ldflags: (version: string) => string;
}

const KUBE_BUILD: GoBuild = {
  name: "kubernetes",
  dir: `${GOBUILD}kube`,
  pinned: "k8s.io/kubernetes",
  packages: ["k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl"],
  outputs: ["kube-apiserver", "kubectl"],
  // Without these the binaries report v0.0.0-master and kubectl warns about skew.
  ldflags: (v) => {
    const [major, minor] = v.slice(1).split(".");
    const pkg = "k8s.io/component-base/version";
    return [
      "-s -w",
      `-X ${pkg}.gitVersion=${v}`,
      `-X ${pkg}.gitMajor=${major}`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
    ].join(" ");
  },
};

/**
 * The node's binaries, from a wrapper module of their own (gobuild/node): the
 * same release and replaces as gobuild/kube, but a separate go.mod/go.sum, so
 * adding them did not change the cache key of kube-apiserver and kubectl.
 */
const NODE_BUILD: GoBuild = {
  name: "kubernetes-node",
  dir: `${GOBUILD}node`,
  pinned: "k8s.io/kubernetes",
  packages: [
    "k8s.io/kubernetes/cmd/kubelet",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
    "k8s.io/kubernetes/cmd/kube-scheduler",
  ],
  outputs: ["kubelet", "kube-controller-manager", "kube-scheduler"],
  ldflags: KUBE_BUILD.ldflags,
};

/** CNCF distribution, the registry the node pulls from, and a bcrypt helper for its htpasswd. */
const REGISTRY_BUILD: GoBuild = {
  name: "registry",
  dir: `${GOBUILD}registry`,
  pinned: "github.com/distribution/distribution/v3",
  packages: ["github.com/distribution/distribution/v3/cmd/registry", "./bcrypt"],
  outputs: ["registry", "bcrypt"],
  ldflags: () => "-s -w",
};

/** The static program in the node's pause image and in the test image. */
const HELLO_BUILD: GoBuild = {
  name: "hello",
  dir: `${GOBUILD}hello`,
  pinned: "",
  packages: ["."],
  outputs: ["hello"],
  ldflags: () => "-s -w",
};

const ETCD_BUILD: GoBuild = {
  name: "etcd",
  dir: `${GOBUILD}etcd`,
  pinned: "go.etcd.io/etcd/server/v3",
  packages: ["."],
  outputs: ["etcd"],
  ldflags: () => "-s -w",
};

/** Reads the pinned version from a wrapper module's go.mod (the one source of truth). */
async function pinnedVersion(build: GoBuild): Promise<string> {
  if (!build.pinned) return "v0"; // no dependency to pin: the hash of go.mod names it
  const gomod = await Deno.readTextFile(`${build.dir}/go.mod`);
  const match = gomod.match(new RegExp(`^\\s*(?:require\\s+)?${build.pinned}\\s+(v\\S+)`, "m"));
  if (!match) throw new Error(`${build.dir}/go.mod has no 'require ${build.pinned} <version>'`);
  return match[1];
}

function configuredPath(env: Record<string, string | undefined>, l: Lookup): string | undefined {
  const direct = env[l.variable];
  if (direct) return direct;
  const assets = env.KUBEBUILDER_ASSETS;
  return assets ? `${assets.replace(/\/$/, "")}/${l.file}` : undefined;
}

async function checkConfigured(
  env: Record<string, string | undefined>,
  l: Lookup,
): Promise<string | undefined> {
  const path = configuredPath(env, l);
  if (!path) return undefined;
  const variable = env[l.variable] ? l.variable : "KUBEBUILDER_ASSETS";
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new AssetError(`${variable}=${env[variable]}: ${l.file} not found at ${path}`);
  }
  if (!info.isFile || ((info.mode ?? 0o111) & 0o111) === 0) {
    throw new AssetError(`${variable}=${env[variable]}: ${path} is not an executable file`);
  }
  return path;
}

/**
 * Cache folder for one build: the version plus a hash of go.mod and go.sum, so
 * changing the wrapper module (a new replace, a bumped dependency) rebuilds.
 */
async function cacheFolder(build: GoBuild, version: string): Promise<string> {
  // The node-only modules also hash their own sources (main.go and the
  // like); gobuild/kube and gobuild/etcd keep their key of go.mod + go.sum.
  const own = build === NODE_BUILD || build === REGISTRY_BUILD || build === HELLO_BUILD
    ? await goSources(build.dir)
    : [];
  const sums = await Promise.all(
    ["go.mod", "go.sum", ...own].map((f) => Deno.readTextFile(`${build.dir}/${f}`).catch(() => "")),
  );
  const hash = (await sha256Hex(sums.join("\0"))).slice(0, 10);
  return `${cacheDir()}/bin/${build.name}-${version}-${hash}`;
}

/** The .go files of a wrapper module (relative paths, sorted), for its cache key. */
async function goSources(dir: string, sub = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir(`${dir}/${sub}`)) {
    const rel = sub ? `${sub}/${e.name}` : e.name;
    if (e.isDirectory) found.push(...await goSources(dir, rel));
    else if (e.name.endsWith(".go")) found.push(rel);
  }
  return found.sort();
}

async function buildOnce(build: GoBuild, log: (line: string) => void): Promise<string> {
  const version = await pinnedVersion(build);
  const folder = await cacheFolder(build, version);
  if (await allPresent(folder, build.outputs)) return folder;

  const label = `${build.outputs.join(", ")} ${version}`;
  await Deno.mkdir(`${cacheDir()}/bin`, { recursive: true });
  // One build at a time per cache entry: a second environment starting
  // meanwhile waits for this one and then uses its result.
  return await withLock(`${folder}.lock`, `building ${label}`, log, async () => {
    if (await allPresent(folder, build.outputs)) return folder;
    await removeLeftovers(folder);
    // Build into a private folder and rename it into place, so an interrupted
    // build never leaves a half-written cache entry behind.
    const staging = `${folder}.partial-${Deno.pid}`;
    await Deno.mkdir(staging, { recursive: true });
    const progress = new Progress(`building ${label} with Go (first run only)`, log);
    try {
      await goBuild(build, version, staging, progress);
      await Deno.rename(staging, folder);
    } finally {
      progress.stop();
      await Deno.remove(staging, { recursive: true }).catch(() => {});
    }
    log(`built ${label} in ${progress.elapsedText()} → ${folder}`);
    return folder;
  });
}

/**
 * Removes what interrupted builds of `folder` left: their private folders
 * (`<folder>.partial-<pid>`; a killed build cannot remove its own) and a
 * folder that lacks some of its binaries. Called under the build lock, so no
 * build of this entry is running.
 */
async function removeLeftovers(folder: string) {
  const parent = folder.slice(0, folder.lastIndexOf("/"));
  const base = folder.slice(parent.length + 1);
  for await (const entry of Deno.readDir(parent)) {
    if (entry.name.startsWith(`${base}.partial-`)) {
      await Deno.remove(`${parent}/${entry.name}`, { recursive: true });
    }
  }
  await Deno.remove(folder, { recursive: true }).catch(() => {});
}

async function goBuild(build: GoBuild, version: string, out: string, progress: Progress) {
  const command = new Deno.Command("go", {
    args: [
      "build",
      "-v",
      "-trimpath",
      "-ldflags",
      build.ldflags(version),
      "-o",
      `${out}/`,
      ...build.packages,
    ],
    cwd: build.dir,
    // -buildvcs=false: the wrapper modules live inside this git checkout, and VCS
    // stamping would fail where git or the .git directory is not available.
    env: { GOWORK: "off", CGO_ENABLED: "0", GOFLAGS: "-mod=readonly -buildvcs=false" },
    stdout: "piped",
    stderr: "piped",
  });
  let child: Deno.ChildProcess;
  try {
    child = command.spawn();
  } catch (err) {
    throw new AssetError(
      `cannot run 'go' to build ${build.outputs.join(", ")}: ${(err as Error).message}; ` +
        "install Go 1.26+ or set KUBEBUILDER_ASSETS",
    );
  }
  // `go build -v` prints one line per package it compiles: a cheap progress count.
  const tail: string[] = [];
  const count = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      for (const line of chunk.split("\n")) {
        if (!line) continue;
        progress.tick();
        tail.push(line);
        if (tail.length > 40) tail.shift();
      }
    }
  };
  const [status] = await Promise.all([child.status, count(child.stdout), count(child.stderr)]);
  if (!status.success) {
    throw new Error(`go build in ${build.dir} failed (exit ${status.code}):\n${tail.join("\n")}`);
  }
}

async function allPresent(folder: string, files: string[]): Promise<boolean> {
  const found = await Promise.all(files.map((f) => exists(`${folder}/${f}`)));
  return found.every(Boolean);
}

/**
 * Resolves all three binaries. Configured paths are checked first, so a wrong
 * KUBEBUILDER_ASSETS fails in a second instead of after a long build.
 */
export async function resolveBinaries(
  env: Record<string, string | undefined>,
  log: (line: string) => void,
): Promise<Binaries> {
  const configured: Partial<Binaries> = {};
  for (const l of LOOKUPS) configured[l.binary] = await checkConfigured(env, l);

  const started = Date.now();
  const needKube = !configured.kubeApiserver || !configured.kubectl;
  const [kubeDir, etcdDir] = await Promise.all([
    needKube ? buildOnce(KUBE_BUILD, log) : undefined,
    configured.etcd ? undefined : buildOnce(ETCD_BUILD, log),
  ]);
  const binaries: Binaries = {
    etcd: configured.etcd ?? `${etcdDir}/etcd`,
    kubeApiserver: configured.kubeApiserver ?? `${kubeDir}/kube-apiserver`,
    kubectl: configured.kubectl ?? `${kubeDir}/kubectl`,
  };
  if (Date.now() - started > 2000) log(`binaries ready after ${elapsed(started)}`);
  return binaries;
}

/** What the node adds to the environment, built on first use of `--node` only. */
export interface NodeBinaries {
  kubelet: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  registry: string;
  /** Reads a password on stdin, prints its bcrypt hash (for the registry's htpasswd). */
  bcrypt: string;
  hello: string;
}

export async function resolveNodeBinaries(log: (line: string) => void): Promise<NodeBinaries> {
  const started = Date.now();
  // One after the other: they share the Go build cache, and building them at
  // once on a 2-core machine is no faster and starves everything else.
  const helloDir = await buildOnce(HELLO_BUILD, log);
  const registryDir = await buildOnce(REGISTRY_BUILD, log);
  const nodeDir = await buildOnce(NODE_BUILD, log);
  if (Date.now() - started > 2000) log(`node binaries ready after ${elapsed(started)}`);
  return {
    kubelet: `${nodeDir}/kubelet`,
    kubeControllerManager: `${nodeDir}/kube-controller-manager`,
    kubeScheduler: `${nodeDir}/kube-scheduler`,
    registry: `${registryDir}/registry`,
    bcrypt: `${registryDir}/bcrypt`,
    hello: `${helloDir}/hello`,
  };
}
