/**
 * OCI images assembled without Docker: a directory becomes one uncompressed
 * tar layer, plus an image config and a manifest. Used for the node's pause
 * image, the test image pods pull from the ECR stand-in, and KubeECR's own
 * image (tests/testenv/kubeecr_image.ts).
 *
 * Two ways out: `archive()` writes an OCI image layout as one tar, which
 * `ctr images import` reads (as `kind load` does), and `push()` uploads the
 * blobs and the manifest through the registry API.
 */

import { run } from "./util.ts";

export const MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar";

export interface Blob {
  digest: string;
  size: number;
  bytes: Uint8Array<ArrayBuffer>;
}

export interface OciImage {
  manifest: Blob;
  config: Blob;
  layers: Blob[];
}

export interface ImageConfig {
  entrypoint: string[];
  env?: string[];
  user?: string;
  workingDir?: string;
}

async function blob(bytes: Uint8Array<ArrayBuffer>): Promise<Blob> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  return { digest: `sha256:${hex}`, size: bytes.length, bytes };
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)) as Uint8Array<ArrayBuffer>;

/**
 * A layer holding everything under `root`, owned by root with mtime 0, in
 * name order: the same tree gives the same digest on every run.
 */
export async function layerOf(root: string, scratch: string): Promise<Blob> {
  const file = `${scratch}/layer-${crypto.randomUUID()}.tar`;
  await run("tar", [
    "--create",
    `--file=${file}`,
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mtime=@0",
    "--sort=name",
    "--format=posix",
    "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
    `--directory=${root}`,
    ".",
  ]);
  try {
    return await blob(await Deno.readFile(file));
  } finally {
    await Deno.remove(file);
  }
}

export async function image(layers: Blob[], config: ImageConfig): Promise<OciImage> {
  const configBlob = await blob(json({
    architecture: goArch(),
    os: "linux",
    config: {
      Entrypoint: config.entrypoint,
      Env: config.env ?? ["PATH=/"],
      User: config.user,
      WorkingDir: config.workingDir,
    },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
  }));
  const manifest = await blob(json({
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    config: { mediaType: CONFIG_TYPE, digest: configBlob.digest, size: configBlob.size },
    layers: layers.map((l) => ({ mediaType: LAYER_TYPE, digest: l.digest, size: l.size })),
  }));
  return { manifest, config: configBlob, layers };
}

/** The OCI name of this machine's architecture, as the image config and the platform carry it. */
export function goArch(): string {
  return Deno.build.arch === "aarch64" ? "arm64" : "amd64";
}

/**
 * Writes `img` as an OCI image layout tar at `path`, named `ref` (e.g.
 * docker.io/library/x:1) through the annotation containerd's importer reads.
 */
export async function archive(img: OciImage, ref: string, path: string, scratch: string) {
  const dir = `${scratch}/layout-${crypto.randomUUID()}`;
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  try {
    for (const b of [img.manifest, img.config, ...img.layers]) {
      await Deno.writeFile(`${dir}/blobs/sha256/${b.digest.slice(7)}`, b.bytes);
    }
    await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    await Deno.writeTextFile(
      `${dir}/index.json`,
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{
          mediaType: MANIFEST_TYPE,
          digest: img.manifest.digest,
          size: img.manifest.size,
          platform: { architecture: goArch(), os: "linux" },
          annotations: {
            "io.containerd.image.name": ref,
            "org.opencontainers.image.ref.name": ref.slice(ref.lastIndexOf(":") + 1),
          },
        }],
      }),
    );
    await run("tar", ["--create", `--file=${path}`, `--directory=${dir}`, "."]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Thrown when the registry refuses an upload. */
export class PushError extends Error {
  override name = "PushError";
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/**
 * Pushes `img` as `<repository>:<tag>` to the registry at `base` (e.g.
 * https://127.0.0.9) through the registry API: one monolithic upload per
 * blob, then the manifest.
 */
export async function push(
  img: OciImage,
  base: string,
  repository: string,
  tag: string,
  opts: { client: Deno.HttpClient; authorization: string },
) {
  const headers = { authorization: opts.authorization };
  const send = async (url: string, init: RequestInit, want: number) => {
    const res = await fetch(url, {
      ...init,
      headers: { ...headers, ...init.headers },
      client: opts.client,
    });
    const text = await res.text();
    if (res.status !== want) {
      throw new PushError(
        `${init.method} ${url}: HTTP ${res.status} ${text.slice(0, 200)}`,
        res.status,
      );
    }
    return res;
  };
  for (const b of [img.config, ...img.layers]) {
    const started = await send(`${base}/v2/${repository}/blobs/uploads/`, { method: "POST" }, 202);
    const location = new URL(started.headers.get("location")!, base);
    location.searchParams.set("digest", b.digest);
    await send(location.href, {
      method: "PUT",
      body: b.bytes,
      headers: { "content-type": "application/octet-stream" },
    }, 201);
  }
  await send(`${base}/v2/${repository}/manifests/${tag}`, {
    method: "PUT",
    body: img.manifest.bytes,
    headers: { "content-type": MANIFEST_TYPE },
  }, 201);
}
