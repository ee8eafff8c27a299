/**
 * Certificates and keys for the test control plane, made with the openssl
 * command (Deno's WebCrypto cannot write X.509). Everything lives in the
 * environment's own temporary directory and is valid for two days.
 */

import { run } from "./util.ts";

export interface KeyPair {
  cert: string;
  key: string;
}

export interface Pki {
  caCert: string;
  caKey: string;
  serving: KeyPair;
  /** Client certificate in group system:masters: the tests' admin identity. */
  admin: KeyPair;
  /** Client certificate with no RBAC grants at all, to prove 403s are real. */
  nobody: KeyPair;
  /** Key pair with which kube-apiserver signs and verifies service-account tokens. */
  serviceAccountKey: string;
  serviceAccountPub: string;
}

/** The names the serving certificate carries; kubernetes.default.svc is the in-pod name. */
export const SERVING_NAMES = [
  "DNS:localhost",
  "DNS:kubernetes",
  "DNS:kubernetes.default",
  "DNS:kubernetes.default.svc",
  "DNS:kubernetes.default.svc.cluster.local",
  "IP:127.0.0.1",
];

const DAYS = "2";

async function ecKey(path: string) {
  await run("openssl", [
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    path,
  ]);
}

/** A random positive 120-bit serial number, in the hex form openssl accepts. */
function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(15));
  return `0x${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

async function signed(
  dir: string,
  name: string,
  subject: string,
  extensions: string,
  ca: { cert: string; key: string },
): Promise<KeyPair> {
  const key = `${dir}/${name}.key`;
  const csr = `${dir}/${name}.csr`;
  const cert = `${dir}/${name}.crt`;
  const ext = `${dir}/${name}.ext`;
  await ecKey(key);
  await run("openssl", ["req", "-new", "-key", key, "-subj", subject, "-out", csr]);
  await Deno.writeTextFile(ext, extensions);
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.cert,
    "-CAkey",
    ca.key,
    // A random serial per certificate, not -CAcreateserial: the leaf
    // certificates are signed in parallel, and parallel openssl runs sharing
    // one ca.srl file read it half-written ("Unable to load number from
    // ca.srl"), which failed a start of the environment.
    "-set_serial",
    randomSerial(),
    "-days",
    DAYS,
    "-extfile",
    ext,
    "-out",
    cert,
  ]);
  return { cert, key };
}

/** A CA certificate and key in `dir` (ca.crt, ca.key). */
export async function createCa(dir: string, commonName: string): Promise<KeyPair> {
  await Deno.mkdir(dir, { recursive: true });
  const key = `${dir}/ca.key`;
  const cert = `${dir}/ca.crt`;
  await ecKey(key);
  await run("openssl", [
    "req",
    "-x509",
    "-new",
    "-key",
    key,
    "-subj",
    `/CN=${commonName}`,
    "-days",
    DAYS,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    cert,
  ]);
  return { cert, key };
}

const LEAF = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n";

/** A TLS server certificate for `names` (["DNS:…", "IP:…"]) signed by `ca`. */
export function servingCert(
  dir: string,
  name: string,
  names: string[],
  ca: KeyPair,
): Promise<KeyPair> {
  return signed(
    dir,
    name,
    `/CN=${name}`,
    `${LEAF}extendedKeyUsage=serverAuth\nsubjectAltName=${names.join(",")}\n`,
    ca,
  );
}

export async function createPki(dir: string): Promise<Pki> {
  const ca = await createCa(dir, "kubeecr-testenv-ca");
  const { cert: caCert, key: caKey } = ca;
  const [serving, admin, nobody] = await Promise.all([
    signed(
      dir,
      "serving",
      "/CN=kube-apiserver",
      `${LEAF}extendedKeyUsage=serverAuth\nsubjectAltName=${SERVING_NAMES.join(",")}\n`,
      ca,
    ),
    signed(
      dir,
      "admin",
      "/O=system:masters/CN=kubeecr-test-admin",
      `${LEAF}extendedKeyUsage=clientAuth\n`,
      ca,
    ),
    signed(
      dir,
      "nobody",
      "/O=kubeecr-test/CN=kubeecr-test-nobody",
      `${LEAF}extendedKeyUsage=clientAuth\n`,
      ca,
    ),
  ]);
  const serviceAccountKey = `${dir}/sa.key`;
  const serviceAccountPub = `${dir}/sa.pub`;
  await ecKey(serviceAccountKey);
  await run("openssl", ["pkey", "-in", serviceAccountKey, "-pubout", "-out", serviceAccountPub]);
  return { caCert, caKey, serving, admin, nobody, serviceAccountKey, serviceAccountPub };
}

/** A TLS client certificate with `subject` (e.g. /O=system:nodes/CN=system:node:x) signed by `ca`. */
export function clientCert(
  dir: string,
  name: string,
  subject: string,
  ca: KeyPair,
): Promise<KeyPair> {
  return signed(dir, name, subject, `${LEAF}extendedKeyUsage=clientAuth\n`, ca);
}
