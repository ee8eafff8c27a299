/**
 * KubeECR's image, built from the working tree without Docker, for the test
 * environment's node: the same as the shipped Dockerfile's in everything but
 * `deno compile` (which needs a download this machine cannot make). Instead
 * of one compiled binary it holds
 *   - this machine's Deno binary and the shared libraries it links against
 *     (the glibc and libgcc that distroless/cc provides), CA certificates;
 *   - deno.json, deno.lock, main.ts and lib/ at /app, and a Deno cache at
 *     /deno-dir filled by `deno install --frozen` (the Dockerfile's own step);
 * and starts `deno run -P=cronjob --cached-only` with the Dockerfile's flags,
 * as uid 65532, from a read-only root filesystem; there is no shell.
 *
 *   deno run -A tests/testenv/kubeecr_image.ts <testenv dir> [ref]
 *
 * imports it into the environment's containerd (`ctr images import`, as `kind
 * load` does) as `ref` (default ghcr.io/deft/kubeecr:smoke) and prints the ref.
 */

import { archive, image, layerOf } from "./oci.ts";
import type { TestEnvInfo } from "./env.ts";
import { cacheDir, exists, run, sha256Hex } from "./util.ts";

const REPO = new URL("../../", import.meta.url).pathname;
export const SMOKE_REF = "ghcr.io/deft/kubeecr:smoke";

/**
 * The compile task's flags that deno run takes too (permissions, V8 flags,
 * code cache), read from deno.json so they are written in one place; the
 * Dockerfile's are pinned to the same task by dockerfile_test.
 */
const RUN_FLAGS: string[] = (JSON.parse(await Deno.readTextFile(`${REPO}deno.json`)).tasks
  .compile as string).split(/\s+/).filter((f) =>
    f.startsWith("-P=") || f.startsWith("--v8-flags=") || f === "--no-code-cache"
  );

/** Shared libraries `binary` needs, from ldd: absolute paths. */
async function librariesOf(binary: string): Promise<string[]> {
  const out = await run("ldd", [binary]);
  return [...out.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]);
}

async function copyInto(root: string, path: string, as = path) {
  const target = `${root}${as}`;
  await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
  await Deno.copyFile(await Deno.realPath(path), target);
  const mode = (await Deno.stat(path)).mode ?? 0o644;
  await Deno.chmod(target, mode & 0o777);
}

/**
 * What the image is made of, hashed: the Deno binary (path, size, mtime) and
 * every file the Dockerfile copies. The same inputs give the same archive, so
 * a warm run imports the cached one instead of building it again.
 */
async function inputsHash(ref: string): Promise<string> {
  const deno = await Deno.realPath(Deno.execPath());
  const info = await Deno.stat(deno);
  const parts = [ref, deno, String(info.size), String(info.mtime?.getTime()), RUN_FLAGS.join(" ")];
  const files = ["deno.json", "deno.lock", "main.ts"];
  // Every file under lib/, its folders included: the image copies them all.
  const walk = async (dir: string): Promise<void> => {
    for await (const e of Deno.readDir(`${REPO}${dir}`)) {
      if (e.isFile) files.push(`${dir}/${e.name}`);
      else if (e.isDirectory) await walk(`${dir}/${e.name}`);
    }
  };
  await walk("lib");
  for (const f of files.sort()) parts.push(f, await Deno.readTextFile(`${REPO}${f}`));
  return (await sha256Hex(parts.join("\0"))).slice(0, 16);
}

/**
 * The image's OCI archive for the working tree: from the cache
 * (~/.cache/kubeecr/kubeecr-image-<hash>.tar) when its inputs are unchanged,
 * else built (in `scratch`) and cached.
 */
export async function kubeecrImageArchive(scratch: string, ref = SMOKE_REF): Promise<string> {
  const cached = `${cacheDir()}/kubeecr-image-${await inputsHash(ref)}.tar`;
  if (await exists(cached)) return cached;
  const built = await buildKubeecrImage(scratch, ref);
  // Older archives (another lib/, another deno) go after an hour: not at once,
  // since another checkout's run may be importing its own right now.
  for await (const e of Deno.readDir(cacheDir())) {
    if (!/^kubeecr-image-[0-9a-f]{16}\.tar$/.test(e.name)) continue;
    const path = `${cacheDir()}/${e.name}`;
    const age = Date.now() - ((await Deno.stat(path)).mtime?.getTime() ?? Date.now());
    if (age > 3600_000) await Deno.remove(path).catch(() => {});
  }
  // Renamed into place whole: a concurrent reader never sees half an archive.
  await Deno.copyFile(built, `${cached}.partial-${Deno.pid}`);
  await Deno.rename(`${cached}.partial-${Deno.pid}`, cached);
  return cached;
}

/** Builds the image into `scratch` and returns the path of its OCI archive. */
export async function buildKubeecrImage(scratch: string, ref = SMOKE_REF): Promise<string> {
  const root = `${scratch}/kubeecr-root`;
  await Deno.remove(root, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${root}/app`, { recursive: true });
  const deno = await Deno.realPath(Deno.execPath());
  await copyInto(root, deno, "/deno");
  for (const lib of await librariesOf(deno)) await copyInto(root, lib);
  await copyInto(root, "/etc/ssl/certs/ca-certificates.crt");
  // What the Dockerfile copies, from the working tree.
  for (const f of ["deno.json", "deno.lock", "main.ts"]) {
    await copyInto(root, `${REPO}${f}`, `/app/${f}`);
  }
  await run("cp", ["-r", `${REPO}lib`, `${root}/app/lib`]);
  // The Dockerfile's dependency step, into a Deno cache of the image's own.
  // That cache is kept in ~/.cache/kubeecr between builds (a warm install
  // downloads nothing) and copied into the image whole.
  const denoDir = `${cacheDir()}/kubeecr-image-deno-dir`;
  await run(Deno.execPath(), ["install", "--frozen", "--entrypoint", "main.ts"], {
    cwd: `${root}/app`,
    env: { DENO_DIR: denoDir, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  await run("cp", ["-r", denoDir, `${root}/deno-dir`]);
  // Mount points the runtime fills (a read-only root cannot get them later).
  for (const d of ["proc", "sys", "dev", "etc"]) {
    await Deno.mkdir(`${root}/${d}`, { recursive: true });
  }
  await Deno.mkdir(`${root}/tmp`, { mode: 0o1777 });
  await Deno.chmod(`${root}/tmp`, 0o1777);

  const layer = await layerOf(root, scratch);
  const img = await image([layer], {
    entrypoint: ["/deno", "run", ...RUN_FLAGS, "--cached-only", "/app/main.ts"],
    env: [
      "DENO_DIR=/deno-dir",
      "DENO_NO_UPDATE_CHECK=1",
    ],
    user: "65532:65532",
    workingDir: "/app",
  });
  const path = `${scratch}/kubeecr-image.tar`;
  await archive(img, ref, path, scratch);
  await Deno.remove(root, { recursive: true });
  return path;
}

if (import.meta.main) {
  const [dir, ref = SMOKE_REF] = Deno.args;
  if (!dir) {
    console.error("usage: kubeecr_image.ts <testenv dir> [ref]");
    Deno.exit(2);
  }
  const info = JSON.parse(await Deno.readTextFile(`${dir}/testenv.json`)) as TestEnvInfo;
  if (!info.node) {
    console.error(`${dir} has no node: start it with deno task testenv --node`);
    Deno.exit(2);
  }
  const scratch = await Deno.makeTempDir({ dir, prefix: "image-" });
  try {
    const path = await kubeecrImageArchive(scratch, ref);
    await run("ctr", [
      "--address",
      info.node.containerdSocket,
      "--namespace",
      "k8s.io",
      "images",
      "import",
      path,
    ]);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
  console.log(ref);
}
