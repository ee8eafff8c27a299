/**
 * Messages that name the real cause on the Kubernetes side (issue 14, item
 * 9): a certificate that is not valid yet, expired, for another name or from
 * an unknown CA is said as such and not retried; a body that breaks off or a
 * corrupt gzip stream is not "no answer from the API server"; a 429 says the
 * server throttles. The certificate cases put a TLS front (the fault proxy)
 * with a certificate made for the case before the real API server.
 */

import assert from "node:assert/strict";
import { testEnv } from "../testenv/connect.ts";
import { kubeconfigYaml } from "../testenv/env.ts";
import {
  fault,
  proxyKubeconfig,
  startFaultProxy,
  startKubeFaultProxy,
} from "../testenv/fault_proxy.ts";
import { createCa } from "../testenv/pki.ts";
import { runKubeecr } from "./cli.ts";

const env = await testEnv();
const JSON_LOG = ["--log-format=json"];
const DAY = 86400;

const errorOf = (run: { lines: Record<string, unknown>[] }) =>
  String(run.lines.find((l) => l.level === "error")?.error);

/** A leaf for `names` signed by the CA in `dir`, valid from now+`fromS` to now+`toS` (Python cryptography). */
async function leaf(dir: string, name: string, sans: string[], fromS: number, toS: number) {
  const script = `
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
d, name, frm, to = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ca_key = serialization.load_pem_private_key(open(d + "/ca.key", "rb").read(), None)
ca = x509.load_pem_x509_certificate(open(d + "/ca.crt", "rb").read())
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)
alt = [x509.IPAddress(ipaddress.ip_address(s[3:])) if s.startswith("IP:") else x509.DNSName(s[4:]) for s in sys.argv[5:]]
cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
  .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
  .not_valid_before(now + datetime.timedelta(seconds=frm)).not_valid_after(now + datetime.timedelta(seconds=to))
  .add_extension(x509.SubjectAlternativeName(alt), critical=False)
  .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
  .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
  .sign(ca_key, hashes.SHA256()))
open(f"{d}/{name}.crt", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(f"{d}/{name}.key", "wb").write(key.private_bytes(serialization.Encoding.PEM,
  serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
`;
  const out = await new Deno.Command("python3", {
    args: ["-c", script, dir, name, String(fromS), String(toS), ...sans],
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return { cert: `${dir}/${name}.crt`, key: `${dir}/${name}.key` };
}

Deno.test("API server certificate problems: said as what to fix, at once, not retried", async (t) => {
  const dir = await Deno.makeTempDir({ dir: env.dir, prefix: "cert-cases-" });
  const ca = await createCa(dir, "kubeecr-cert-cases-ca");
  const here = ["IP:127.0.0.1"];
  const cases: [string, () => Promise<{ cert: string; key: string }>, string, RegExp][] = [
    ["not valid yet", () => leaf(dir, "future", here, DAY, 2 * DAY), ca.cert, /is not valid yet/],
    ["expired", () => leaf(dir, "expired", here, -2 * DAY, -DAY), ca.cert, /has expired/],
    [
      "for another name",
      () => leaf(dir, "other", ["DNS:other.invalid"], -DAY, DAY),
      ca.cert,
      /does not name the host of the server URL/,
    ],
    [
      "from an unknown CA",
      () => leaf(dir, "unknown", here, -DAY, DAY),
      env.caCert,
      /is not signed by the CA this run trusts/,
    ],
  ];
  for (const [name, make, trusted, message] of cases) {
    await t.step(name, async () => {
      await using front = startFaultProxy({
        upstream: env.server,
        flavor: "kubernetes",
        tls: await make(),
        upstreamTls: { caCert: env.caCert, ...env.admin },
      });
      const kubeconfig = `${dir}/${name.replaceAll(" ", "-")}.yaml`;
      await Deno.writeTextFile(kubeconfig, kubeconfigYaml(front.url, trusted, env.admin));
      const run = await runKubeecr(env, JSON_LOG, { env: { KUBECONFIG: kubeconfig } });
      assert.equal(run.code, 2, run.stdout + run.stderr);
      const error = errorOf(run);
      assert.match(error, message);
      assert.doesNotMatch(error, /no answer from the API server/);
      assert.ok(!run.lines.some((l) => l.msg === "retrying"), "not retried: " + run.stdout);
      assert.equal(front.connections.total, 1, "one connection: no retry");
    });
  }
});

/** A TLS server (the API server's own certificate) answering every request with `answer`. */
function brokenServer(answer: Uint8Array) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(env.serving.cert),
    key: Deno.readTextFileSync(env.serving.key),
    alpnProtocols: ["http/1.1"],
  });
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        try {
          await conn.read(new Uint8Array(16384));
          await conn.write(answer);
        } catch { /* gone */ }
        conn.close();
      })();
    }
  })().catch(() => {});
  return {
    url: `https://127.0.0.1:${listener.addr.port}`,
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving;
    },
  };
}

Deno.test("an answer that breaks off or is corrupt gzip is not 'no answer from the API server'", async (t) => {
  const head = (extra: string) =>
    `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n${extra}Connection: close\r\n\r\n`;
  const cases: [string, Uint8Array][] = [
    [
      "truncated body",
      new TextEncoder().encode(head("Content-Length: 5000\r\n") + '{"kind":"SecretList","items":['),
    ],
    [
      "bad gzip",
      new Uint8Array([
        ...new TextEncoder().encode(head("Content-Encoding: gzip\r\nContent-Length: 24\r\n")),
        ...new Uint8Array(24).fill(0x41),
      ]),
    ],
  ];
  for (const [name, answer] of cases) {
    await t.step(name, async () => {
      await using server = brokenServer(answer);
      const kubeconfig = `${env.dir}/broken-${name.replaceAll(" ", "-")}.yaml`;
      await Deno.writeTextFile(kubeconfig, kubeconfigYaml(server.url, env.caCert, env.admin));
      const run = await runKubeecr(env, JSON_LOG, { env: { KUBECONFIG: kubeconfig } });
      assert.equal(run.code, 2, run.stdout + run.stderr);
      const error = errorOf(run);
      assert.doesNotMatch(error, /no answer from the API server/, error);
      assert.match(error, /\(HTTP 200\) broke off or could not be decoded/, error);
    });
  }
});

Deno.test("a 429 says the API server throttles, not that it did not answer", async () => {
  await using api = startKubeFaultProxy(env);
  api.add({ fault: fault.status(429, 0) });
  const run = await runKubeecr(env, JSON_LOG, {
    env: { KUBECONFIG: await proxyKubeconfig(env, api) },
  });
  assert.equal(run.code, 2, run.stdout + run.stderr);
  const error = errorOf(run);
  assert.doesNotMatch(error, /no answer from the API server/, error);
  assert.match(error, /HTTP 429: .*throttling this client.*\(after 4 attempts\)/, error);
});
