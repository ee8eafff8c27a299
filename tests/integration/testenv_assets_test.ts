/**
 * A misconfigured asset path fails in one line that names the variable and
 * the missing file, before anything is built or started.
 */

import assert from "node:assert/strict";

const main = new URL("../testenv/main.ts", import.meta.url).pathname;

async function testenvWith(env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

const cases = [
  {
    variable: "KUBEBUILDER_ASSETS",
    value: "/nonexistent/kubebuilder/bin",
    names: "etcd not found at /nonexistent/kubebuilder/bin/etcd",
  },
  {
    variable: "TEST_ASSET_KUBE_APISERVER",
    value: "/nonexistent/kube-apiserver",
    names: "kube-apiserver not found at /nonexistent/kube-apiserver",
  },
  {
    variable: "TEST_ASSET_KUBECTL",
    value: "/etc",
    names: "/etc is not an executable file",
  },
];

for (const c of cases) {
  Deno.test(`a bad ${c.variable} gives a one-line error naming it`, async () => {
    const { code, stdout, stderr } = await testenvWith({ [c.variable]: c.value });
    assert.equal(code, 2);
    assert.equal(stdout, "");
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 1, stderr);
    assert.ok(lines[0].startsWith(`testenv: ${c.variable}=${c.value}: `), lines[0]);
    assert.ok(lines[0].includes(c.names), lines[0]);
  });
}

// ---------------------------------------------------------------------------
// The build cache under concurrency and interruption, with stand-ins for `go`
// and `python3` (the real builds take minutes): each stand-in appends a line
// to a log per build and writes what the real one would.

const FAKE_GO = `#!/bin/bash
# go build ... -o <dir>/ <packages>: writes every binary the test environment looks for.
echo "go $PWD" >> "$FAKE_LOG"
out=""
while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done
sleep "\${FAKE_SLEEP:-1}"
for f in etcd kube-apiserver kubectl; do printf '#!/bin/sh\\n' > "$out/$f"; chmod +x "$out/$f"; done
`;

const FAKE_PYTHON = `#!/bin/bash
case "$1" in
  --version) echo "Python 3.99.0 (stand-in)" ;;
  -m) mkdir -p "$3/bin"
      printf '#!/bin/bash\\necho pip >> "$FAKE_LOG"\\nsleep "\${FAKE_SLEEP:-1}"\\n' > "$3/bin/pip"
      printf '#!/bin/sh\\n' > "$3/bin/moto_server"
      chmod +x "$3/bin/pip" "$3/bin/moto_server" ;;
esac
`;

interface Sandbox {
  cache: string;
  log: string;
  env: Record<string, string>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function sandbox(): Promise<Sandbox> {
  const root = await Deno.makeTempDir({ prefix: "kubeecr-assets-test-" });
  await Deno.mkdir(`${root}/tools`);
  await Deno.writeTextFile(`${root}/tools/go`, FAKE_GO, { mode: 0o755 });
  await Deno.writeTextFile(`${root}/tools/python3`, FAKE_PYTHON, { mode: 0o755 });
  const log = `${root}/builds.log`;
  await Deno.writeTextFile(log, "");
  return {
    cache: `${root}/cache`,
    log,
    env: {
      KUBEECR_CACHE_DIR: `${root}/cache`,
      KUBEECR_PYTHON: `${root}/tools/python3`,
      PATH: `${root}/tools:${Deno.env.get("PATH")}`,
      FAKE_LOG: log,
      KUBEBUILDER_ASSETS: "",
      TEST_ASSET_ETCD: "",
      TEST_ASSET_KUBE_APISERVER: "",
      TEST_ASSET_KUBECTL: "",
    },
    [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }),
  };
}

/** `testenv --prepare` in a process group of its own (setsid execs deno: same pid). */
function prepare(box: Sandbox, extra: Record<string, string> = {}) {
  return new Deno.Command("setsid", {
    args: [Deno.execPath(), "run", "-A", main, "--prepare"],
    env: { ...box.env, ...extra },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function builds(box: Sandbox): Promise<string[]> {
  return (await Deno.readTextFile(box.log)).split("\n").filter(Boolean);
}

/** Everything in the cache's bin folder that is not a finished build or a lock file. */
async function halfBuilt(box: Sandbox): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir(`${box.cache}/bin`)) {
    if (e.name.endsWith(".lock")) continue;
    const complete = ["etcd", "kube-apiserver", "kubectl"].some((f) => {
      try {
        return Deno.statSync(`${box.cache}/bin/${e.name}/${f}`).isFile;
      } catch {
        return false;
      }
    });
    if (!complete || e.name.includes(".partial")) found.push(e.name);
  }
  return found;
}

Deno.test("two environments preparing at once build each binary and the moto venv once", async () => {
  await using box = await sandbox();
  const [a, b] = [prepare(box), prepare(box)];
  const [outA, outB] = await Promise.all([a.output(), b.output()]);
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.equal(outA.code, 0, text(outA.stderr));
  assert.equal(outB.code, 0, text(outB.stderr));
  assert.deepEqual(JSON.parse(text(outA.stdout)), JSON.parse(text(outB.stdout)));
  const log = await builds(box);
  assert.equal(log.filter((l) => l.startsWith("go ")).length, 2, `one kube, one etcd: ${log}`);
  assert.equal(log.filter((l) => l === "pip").length, 1, `one venv: ${log}`);
  assert.match(text(outA.stderr) + text(outB.stderr), /waiting for another run \(pid \d+\)/);
  assert.deepEqual(await halfBuilt(box), []);
});

Deno.test("a build killed half-way leaves no cache entry, and the next start builds cleanly", async () => {
  await using box = await sandbox();
  const first = prepare(box, { FAKE_SLEEP: "60" });
  const deadline = Date.now() + 30_000;
  while ((await builds(box)).filter((l) => l.startsWith("go ")).length < 2) {
    assert.ok(Date.now() < deadline, "both builds started");
    await new Promise((r) => setTimeout(r, 100));
  }
  // SIGKILL to the group: deno, the stand-in go and its sleep; no cleanup code runs.
  Deno.kill(-first.pid, "SIGKILL");
  await first.output();
  const leftovers = await halfBuilt(box);
  assert.ok(leftovers.every((name) => name.includes(".partial-")), `${leftovers}`);

  const second = await prepare(box, { FAKE_SLEEP: "0" }).output();
  assert.equal(second.code, 0, new TextDecoder().decode(second.stderr));
  const paths = JSON.parse(new TextDecoder().decode(second.stdout));
  for (const key of ["etcd", "kubeApiserver", "kubectl"]) {
    assert.ok((await Deno.stat(paths[key])).isFile, `${key} at ${paths[key]}`);
  }
  assert.deepEqual(await halfBuilt(box), [], "the killed build's private folders are gone");
});
