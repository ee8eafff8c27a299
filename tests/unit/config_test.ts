import assert from "node:assert/strict";
import {
  type Config,
  ENV_VARS,
  FLAG_NAMES,
  helpText,
  parseConfig,
  type ParsedArgs,
} from "../../lib/config.ts";
import { ConfigError } from "../../lib/core/errors.ts";

type Env = Record<string, string | undefined>;

const HOME_ENV: Env = { HOME: "/home/op" };

const DEFAULTS: Config = {
  annotation: "deft.com/kubeecr",
  namespaces: [],
  excludeNamespaces: [],
  refreshWindowMs: 6 * 3600_000,
  force: false,
  dryRun: false,
  events: "all",
  concurrency: 4,
  pageSize: 500,
  requestTimeoutMs: 15_000,
  timeoutMs: 240_000,
  checkSecretTypes: false,
  logFormat: "text",
  logLevel: "info",
  kube: { mode: "kubeconfig", paths: ["/home/op/.kube/config"] },
};

function run(args: string[], env: Env = HOME_ENV): Config {
  const r: ParsedArgs = parseConfig(args, env, "1.2.3");
  assert.equal(r.kind, "run");
  return (r as { config: Config }).config;
}

function configError(args: string[], env: Env = HOME_ENV): ConfigError {
  try {
    parseConfig(args, env, "1.2.3");
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(args)} ${JSON.stringify(env)}`);
}

Deno.test("defaults", () => {
  assert.deepEqual(run([]), DEFAULTS);
});

// One row per flag: [flag, value, env value, expected change to DEFAULTS, the
// other flags it needs]. A boolean's argv form is the bare flag; its env form is "true".
const PER_FLAG: [string, string | undefined, string, Partial<Config>, string[]?][] = [
  ["annotation", "example.com/ecr", "example.com/ecr", { annotation: "example.com/ecr" }],
  ["namespace", "a,b", "a,b", { namespaces: ["a", "b"] }],
  ["exclude-namespace", "kube-system", "kube-system", { excludeNamespaces: ["kube-system"] }],
  ["selector", "team=web,env!=dev", "team=web,env!=dev", { selector: "team=web,env!=dev" }],
  ["namespace-selector", "kubeecr.deft.com/enabled=true", "kubeecr.deft.com/enabled=true", {
    namespaceSelector: "kubeecr.deft.com/enabled=true",
  }],
  ["provision", "ecr-pull=123456789012/us-west-2", "ecr-pull=123456789012/us-west-2", {
    provision: { secretName: "ecr-pull", value: "123456789012/us-west-2" },
    namespaceSelector: "team=web",
  }, ["--namespace-selector", "team=web"]],
  ["roles", "/etc/kubeecr/roles.yaml", "/etc/kubeecr/roles.yaml", {
    roles: "/etc/kubeecr/roles.yaml",
  }],
  ["refresh-window", "1h30m", "1h30m", { refreshWindowMs: 90 * 60_000 }],
  ["page-size", "50", "50", { pageSize: 50 }],
  ["request-timeout", "2s", "2s", { requestTimeoutMs: 2000 }],
  ["timeout", "90s", "90s", { timeoutMs: 90_000 }],
  ["check-secret-types", undefined, "true", { checkSecretTypes: true }],
  ["force", undefined, "true", { force: true }],
  ["dry-run", undefined, "1", { dryRun: true }],
  ["events", "warnings", "warnings", { events: "warnings" }],
  ["concurrency", "32", "32", { concurrency: 32 }],
  ["log-format", "json", "json", { logFormat: "json" }],
  ["log-level", "debug", "debug", { logLevel: "debug" }],
  ["proxy", "http://proxy.corp:3128", "http://proxy.corp:3128", {
    proxy: "http://proxy.corp:3128",
  }],
  ["kubeconfig", "/k/config", "/k/config", {
    kube: { mode: "kubeconfig", paths: ["/k/config"] },
  }],
  ["context", "prod", "prod", {
    kube: { mode: "kubeconfig", paths: ["/home/op/.kube/config"], context: "prod" },
  }],
];

Deno.test("every flag via argv and via its env var", async (t) => {
  for (const [flag, value, envValue, change, needs = []] of PER_FLAG) {
    const want = { ...DEFAULTS, ...change };
    const env = `KUBEECR_${flag.toUpperCase().replaceAll("-", "_")}`;
    await t.step(`--${flag}`, () => {
      assert.deepEqual(
        run([...needs, ...(value === undefined ? [`--${flag}`] : [`--${flag}`, value])]),
        want,
      );
      if (value !== undefined) assert.deepEqual(run([...needs, `--${flag}=${value}`]), want);
    });
    await t.step(env, () => assert.deepEqual(run(needs, { ...HOME_ENV, [env]: envValue }), want));
  }
  // The table above must cover the flag table: a new flag needs a row here.
  const covered = new Set(PER_FLAG.map(([f]) => `--${f}`));
  const missing = FLAG_NAMES.filter((f) => f.env !== undefined && !covered.has(f.flag));
  assert.deepEqual(missing, []);
});

Deno.test("--proxy: a URL with scheme, host and port, never echoing a credential", async (t) => {
  const cases: [string, RegExp][] = [
    ["proxy.corp:3128", /has the scheme proxy\.corp/],
    ["socks5://proxy.corp:1080", /has the scheme socks5/],
    ["http://proxy.corp", /names no port/],
    ["http://user:hunter2-secret@proxy.corp:3128", /carries credentials/],
    ["not a url", /is not a URL/],
  ];
  for (const [raw, why] of cases) {
    await t.step(raw, () => {
      const err = configError(["--proxy", raw]);
      assert.equal(err.flag, "--proxy");
      assert.match(err.message, why);
      assert.ok(!err.message.includes("hunter2"), err.message);
    });
  }
});

Deno.test("precedence: flag > env > default", async (t) => {
  const cases: [string, string[], Env, Partial<Config>][] = [
    ["env over default", [], { KUBEECR_CONCURRENCY: "8" }, { concurrency: 8 }],
    ["flag over env", ["--concurrency", "2"], { KUBEECR_CONCURRENCY: "8" }, { concurrency: 2 }],
    ["last flag wins", ["--concurrency", "2", "--concurrency", "3"], {}, { concurrency: 3 }],
    ["empty env counts as unset", [], { KUBEECR_CONCURRENCY: "" }, {}],
    ["--force=false beats env true", ["--force=false"], { KUBEECR_FORCE: "true" }, {}],
    ["env false", [], { KUBEECR_DRY_RUN: "false" }, {}],
    ["env 0", [], { KUBEECR_FORCE: "0" }, {}],
    [
      "flag namespaces replace env namespaces",
      ["--namespace", "c"],
      { KUBEECR_NAMESPACE: "a,b" },
      { namespaces: ["c"] },
    ],
    [
      "bad env is not consulted when the flag is given",
      ["--log-level", "warn"],
      { KUBEECR_LOG_LEVEL: "loud" },
      { logLevel: "warn" },
    ],
  ];
  for (const [name, args, env, change] of cases) {
    await t.step(
      name,
      () => assert.deepEqual(run(args, { ...HOME_ENV, ...env }), { ...DEFAULTS, ...change }),
    );
  }
});

Deno.test("namespaces: repeatable, comma lists, trimmed, de-duplicated", () => {
  const c = run(["--namespace", "a,b", "--namespace", "c", "--namespace=b, d"]);
  assert.deepEqual(c.namespaces, ["a", "b", "c", "d"]);
});

Deno.test("durations", async (t) => {
  const cases: [string, number][] = [
    ["0s", 0],
    ["0", 0],
    ["45s", 45_000],
    ["90m", 90 * 60_000],
    ["6h", 6 * 3600_000],
    ["1h30m", 90 * 60_000],
    ["1.5h", 90 * 60_000],
    ["500ms", 500],
    ["11h59m59s", 12 * 3600_000 - 1000],
  ];
  for (const [raw, ms] of cases) {
    await t.step(raw, () => assert.equal(run(["--refresh-window", raw]).refreshWindowMs, ms));
  }
});

Deno.test("bad values are ConfigErrors naming the flag or variable and the accepted form", async (t) => {
  // [case, args, env, ConfigError.flag, fragments the message must contain]
  const cases: [string, string[], Env, string, string[]][] = [
    ["unknown flag", ["--bogus"], {}, "--bogus", ["unknown flag --bogus", "--help"]],
    ["unknown short flag", ["-x"], {}, "-x", ["unknown flag -x"]],
    ["positional argument", ["run"], {}, "run", ['unexpected argument "run"']],
    ["missing value at the end", ["--concurrency"], {}, "--concurrency", [
      "--concurrency needs a value",
      "integer from 1 to 32",
    ]],
    ["flag where a value belongs", ["--namespace", "--force"], {}, "--namespace", [
      "--namespace needs a value",
    ]],
    ["value given to --help", ["--help=yes"], {}, "--help", ["takes no value"]],
    ["annotation without prefix", ["--annotation", "kubeecr"], {}, "--annotation", [
      '--annotation="kubeecr": has no <prefix>/ part',
      "e.g. deft.com/kubeecr",
    ]],
    ["annotation bad prefix", ["--annotation", "Deft.com/x"], {}, "--annotation", [
      'prefix "Deft.com"',
    ]],
    ["annotation bad name", ["--annotation", "deft.com/-x"], {}, "--annotation", [
      'name "-x"',
    ]],
    ["annotation empty", ["--annotation="], {}, "--annotation", ["has no <prefix>/ part"]],
    [
      "annotation in the status prefix",
      ["--annotation", "kubeecr.deft.com/expires-at"],
      {},
      "--annotation",
      [
        "reserved",
      ],
    ],
    ["bad namespace", ["--namespace", "Team_A"], {}, "--namespace", [
      '"Team_A" is not a valid namespace name',
      "DNS-1123",
    ]],
    ["empty namespace item", ["--namespace", "a,,b"], {}, "--namespace", ["empty namespace"]],
    [
      "bad excluded namespace from env",
      [],
      { KUBEECR_EXCLUDE_NAMESPACE: "a b" },
      "--exclude-namespace",
      [
        'KUBEECR_EXCLUDE_NAMESPACE="a b" (sets --exclude-namespace)',
      ],
    ],
    ["empty selector", ["--selector", " "], {}, "--selector", ["must not be empty"]],
    ["duration garbage", ["--refresh-window", "6 hours"], {}, "--refresh-window", [
      "is not a duration",
      "like 90m, 6h, 1h30m",
    ]],
    ["duration without unit", ["--refresh-window", "6"], {}, "--refresh-window", [
      "is not a duration",
    ]],
    ["negative duration", ["--refresh-window=-1h"], {}, "--refresh-window", ["is not a duration"]],
    ["window of 12h", ["--refresh-window", "12h"], {}, "--refresh-window", [
      "must be less than 12h",
      "every run",
    ]],
    ["window above 12h from env", [], { KUBEECR_REFRESH_WINDOW: "13h" }, "--refresh-window", [
      'KUBEECR_REFRESH_WINDOW="13h"',
      "must be less than 12h",
    ]],
    ["boolean env garbage", [], { KUBEECR_FORCE: "yes" }, "--force", [
      'KUBEECR_FORCE="yes"',
      "true, false, 1 or 0",
    ]],
    ["boolean flag garbage", ["--dry-run=maybe"], {}, "--dry-run", ['--dry-run="maybe"']],
    ["concurrency 0", ["--concurrency", "0"], {}, "--concurrency", ["out of range", "1 to 32"]],
    ["concurrency 33", ["--concurrency", "33"], {}, "--concurrency", ["out of range"]],
    ["concurrency not integer", ["--concurrency", "2.5"], {}, "--concurrency", ["not an integer"]],
    ["log format", ["--log-format", "yaml"], {}, "--log-format", ["text or json"]],
    ["log level from env", [], { KUBEECR_LOG_LEVEL: "trace" }, "--log-level", [
      'KUBEECR_LOG_LEVEL="trace"',
      "debug, info, warn, error",
    ]],
    ["empty kubeconfig flag", ["--kubeconfig="], {}, "--kubeconfig", ["must not be empty"]],
    [
      "namespace and exclude together",
      ["--namespace", "a", "--exclude-namespace", "b"],
      {},
      "--exclude-namespace",
      [
        "cannot be combined",
      ],
    ],
    [
      "exclusion across env and flag",
      ["--exclude-namespace", "b"],
      { KUBEECR_NAMESPACE: "a" },
      "--exclude-namespace",
      [
        "KUBEECR_NAMESPACE",
        "cannot be combined",
      ],
    ],
    [
      "--provision without the namespace opt-in",
      ["--provision", "ecr-pull=123456789012/us-west-2"],
      {},
      "--provision",
      [
        '--provision="ecr-pull=123456789012/us-west-2" needs --namespace-selector',
        "every namespace",
      ],
    ],
    [
      "--provision from env without the opt-in",
      [],
      { KUBEECR_PROVISION: "ecr-pull=123456789012/us-west-2" },
      "--provision",
      ["KUBEECR_PROVISION=", "(sets --provision) needs --namespace-selector"],
    ],
    ...([
      ["ecr-pull", 'has no "="'],
      ["=123456789012/us-west-2", "names no Secret"],
      [
        "Ecr_Pull=123456789012/us-west-2",
        'Secret name "Ecr_Pull" is not a lowercase DNS subdomain',
      ],
      [`${"a".repeat(254)}=123456789012/us-west-2`, "at most 253 characters"],
      ["ecr-pull= ", "has no annotation value"],
      [
        "ecr-pull=123456789/us-west-2",
        'the Secrets it creates would carry annotation deft.com/kubeecr="123456789/us-west-2"',
      ],
      ["ecr-pull=123456789012/US-WEST-2", "is not an AWS region name"],
    ] as const).map(([raw, fragment]): [string, string[], Env, string, string[]] => [
      `--provision ${raw.slice(0, 40)}`,
      ["--namespace-selector", "a=b", "--provision", raw],
      {},
      "--provision",
      [fragment, "e.g. "],
    ]),
    [
      "--provision with --selector",
      [
        "--namespace-selector",
        "a=b",
        "--selector",
        "x=y",
        "--provision",
        "p=123456789012/us-west-2",
      ],
      {},
      "--provision",
      ["cannot be combined", "never find them"],
    ],
    ["no HOME and nothing else", [], { HOME: undefined }, "--kubeconfig", ["pass --kubeconfig"]],
    [
      "context in-cluster",
      ["--context", "x"],
      { KUBERNETES_SERVICE_HOST: "10.0.0.1" },
      "--context",
      [
        "cannot be used in-cluster",
      ],
    ],
    [
      "bad service port",
      [],
      { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "https" },
      "KUBERNETES_SERVICE_PORT",
      [
        "TCP port",
      ],
    ],
  ];
  for (const [name, args, env, flag, fragments] of cases) {
    await t.step(name, () => {
      const err = configError(args, { ...HOME_ENV, ...env });
      assert.equal(err.flag, flag);
      assert.equal(err.exitCode, 2);
      for (const f of fragments) assert.ok(err.message.includes(f), `${f} not in: ${err.message}`);
    });
  }
});

Deno.test("Kubernetes access resolution", async (t) => {
  const SA = "/var/run/secrets/kubernetes.io/serviceaccount";
  const inCluster = (port: string): Config["kube"] => ({
    mode: "in-cluster",
    server: `https://kubernetes.default.svc:${port}`,
    tokenPath: `${SA}/token`,
    caPath: `${SA}/ca.crt`,
  });
  const POD: Env = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "6443" };
  const cases: [string, string[], Env, Config["kube"]][] = [
    ["HOME default", [], HOME_ENV, { mode: "kubeconfig", paths: ["/home/op/.kube/config"] }],
    ["HOME with trailing slash", [], { HOME: "/root/" }, {
      mode: "kubeconfig",
      paths: ["/root/.kube/config"],
    }],
    ["KUBECONFIG list keeps every path", [], { ...HOME_ENV, KUBECONFIG: "/a:/b::/c" }, {
      mode: "kubeconfig",
      paths: ["/a", "/b", "/c"],
    }],
    ["--kubeconfig beats KUBECONFIG", ["--kubeconfig", "/x"], { KUBECONFIG: "/a:/b" }, {
      mode: "kubeconfig",
      paths: ["/x"],
    }],
    ["KUBEECR_KUBECONFIG beats KUBECONFIG", [], { KUBEECR_KUBECONFIG: "/x", KUBECONFIG: "/a" }, {
      mode: "kubeconfig",
      paths: ["/x"],
    }],
    ["in-cluster", [], { ...HOME_ENV, ...POD }, inCluster("6443")],
    ["in-cluster default port", [], { KUBERNETES_SERVICE_HOST: "10.96.0.1" }, inCluster("443")],
    ["KUBECONFIG beats in-cluster", [], { ...POD, KUBECONFIG: "/a" }, {
      mode: "kubeconfig",
      paths: ["/a"],
    }],
    ["--kubeconfig with --context in a pod", ["--kubeconfig", "/x", "--context", "c"], POD, {
      mode: "kubeconfig",
      paths: ["/x"],
      context: "c",
    }],
    ["context from env", [], { ...HOME_ENV, KUBEECR_CONTEXT: "c" }, {
      mode: "kubeconfig",
      paths: ["/home/op/.kube/config"],
      context: "c",
    }],
  ];
  for (const [name, args, env, want] of cases) {
    await t.step(name, () => assert.deepEqual(run(args, env).kube, want));
  }
});

Deno.test("--help and --version", async (t) => {
  await t.step("-h and --help return the help text", () => {
    for (const a of ["-h", "--help"]) {
      assert.deepEqual(parseConfig([a], {}, "1.2.3"), { kind: "help", text: helpText() });
    }
  });
  await t.step("help wins over bad values elsewhere", () => {
    const r = parseConfig(["--concurrency", "99", "--help"], { KUBEECR_FORCE: "x" }, "1");
    assert.equal(r.kind, "help");
  });
  await t.step("--version", () => {
    assert.deepEqual(parseConfig(["--version"], {}, "1.2.3"), {
      kind: "version",
      text: "kubeecr 1.2.3",
    });
  });
});

Deno.test("help documents every flag, its env var and default, exit codes, annotation", () => {
  const help = helpText();
  assert.ok(FLAG_NAMES.length >= 14);
  for (const { flag, env } of FLAG_NAMES) {
    assert.ok(new RegExp(`^  ${flag}\\b`, "m").test(help), `${flag} not documented`);
    if (env) assert.ok(help.includes(`Env ${env}`), `${env} not documented`);
  }
  for (
    const s of [
      "default deft.com/kubeecr",
      "default 6h",
      "default 4",
      "default text",
      "default info",
      "default all namespaces",
      "--help, -h",
      "<account>/<region>[,<account>/<region>...]",
      "123456789012/us-west-2",
      "KUBECONFIG",
      "KUBERNETES_SERVICE_HOST",
    ]
  ) {
    assert.ok(help.includes(s), `${s} not in help`);
  }
  for (const code of ["0", "1", "2"]) {
    assert.ok(new RegExp(`^  ${code}  \\S`, "m").test(help), `exit code ${code} not documented`);
  }
});

Deno.test("ENV_VARS lists every variable parseConfig reads", () => {
  // Written out, not rebuilt from the flag table: the names are a contract
  // (the CronJob's env, README, the permission set), so a renamed or missing
  // variable must show up here. A new flag adds its variable to this list.
  const want = [
    "KUBEECR_ANNOTATION",
    "KUBEECR_NAMESPACE",
    "KUBEECR_EXCLUDE_NAMESPACE",
    "KUBEECR_SELECTOR",
    "KUBEECR_NAMESPACE_SELECTOR",
    "KUBEECR_PROVISION",
    "KUBEECR_ROLES",
    "KUBEECR_REFRESH_WINDOW",
    "KUBEECR_FORCE",
    "KUBEECR_DRY_RUN",
    "KUBEECR_EVENTS",
    "KUBEECR_CONCURRENCY",
    "KUBEECR_PAGE_SIZE",
    "KUBEECR_REQUEST_TIMEOUT",
    "KUBEECR_TIMEOUT",
    "KUBEECR_CHECK_SECRET_TYPES",
    "KUBEECR_LOG_FORMAT",
    "KUBEECR_LOG_LEVEL",
    "KUBEECR_PROXY",
    "KUBEECR_KUBECONFIG",
    "KUBEECR_CONTEXT",
    // kubeecr status, kubeecr renew
    "KUBEECR_OUTPUT",
    "KUBEECR_CRONJOB",
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "HOME",
  ];
  assert.deepEqual([...ENV_VARS].sort(), want.sort());
  // parseConfig must read nothing else: a proxy env records every lookup.
  const read = new Set<string>();
  const env = new Proxy({ HOME: "/h", KUBERNETES_SERVICE_HOST: "1" } as Env, {
    get(target, key) {
      if (typeof key === "string") read.add(key);
      return target[key as string];
    },
  });
  parseConfig(["--force"], env, "1");
  for (const k of read) assert.ok(ENV_VARS.includes(k), `${k} read but not in ENV_VARS`);
});

Deno.test("subcommands: the first argument names one; a bare kubeecr is the run", async (t) => {
  await t.step("status takes the scope flags, -o and the shorts -n/-l", () => {
    const r = parseConfig(["status", "-n", "a", "-l", "team=x", "-o", "json"], HOME_ENV, "1");
    assert.equal(r.kind, "status");
    if (r.kind !== "status") return;
    assert.deepEqual(r.config, {
      ...DEFAULTS,
      namespaces: ["a"],
      selector: "team=x",
      output: "json",
    });
  });
  await t.step("status ignores the variables of run-only flags", () => {
    const r = parseConfig(["status"], { ...HOME_ENV, KUBEECR_FORCE: "true" }, "1");
    assert.equal(r.kind === "status" && r.config.force, false);
    assert.equal(r.kind === "status" && r.config.output, "table");
  });
  await t.step("renew: names, scope, --now and --cronjob", () => {
    const r = parseConfig(["renew", "a/x", "b/y", "--now"], HOME_ENV, "1");
    assert.equal(r.kind, "renew");
    if (r.kind !== "renew") return;
    assert.deepEqual(r.config.secrets, [
      { namespace: "a", name: "x" },
      { namespace: "b", name: "y" },
    ]);
    assert.equal(r.config.now, true);
    assert.deepEqual(r.config.cronjob, { namespace: "kubeecr", name: "kubeecr" });
    const all = parseConfig(["renew", "--all", "--cronjob", "ops/ecr"], HOME_ENV, "1");
    assert.equal(all.kind === "renew" && all.config.all, true);
    assert.deepEqual(all.kind === "renew" && all.config.cronjob, { namespace: "ops", name: "ecr" });
  });
  await t.step("the run still refuses a positional argument, and -n works there too", () => {
    assert.deepEqual(run(["-n", "a"]).namespaces, ["a"]);
    assert.match(configError(["status2"]).message, /unexpected argument "status2"/);
  });
  await t.step("each subcommand's --help is its own", () => {
    for (const name of ["status", "renew"] as const) {
      const r = parseConfig([name, "--help"], {}, "1");
      assert.equal(r.kind, "help");
      if (r.kind !== "help") continue;
      assert.match(r.text, new RegExp(`^Usage: kubeecr ${name}`));
      assert.ok(helpText().includes(r.text.split("\n\nThe run's flags")[0].slice(7)));
    }
  });
  const bad: [string[], string, RegExp][] = [
    [["renew"], "renew", /say which Secrets/],
    [["renew", "--all", "a/b"], "--all", /cannot be combined/],
    [["renew", "a/b", "-l", "x=y"], "--namespace", /not both/],
    [["renew", "a/b/c"], "a/b/c", /is not <namespace>\/<name>/],
    [["renew", "A/b"], "A/b", /"A" is not a valid namespace name/],
    [
      ["renew", "--all", "--cronjob", "x"],
      "--cronjob",
      /expected <namespace>\/<name> of a CronJob/,
    ],
    [["renew", "--all", "--now=yes"], "--now", /takes no value/],
    [["status", "--dry-run"], "--dry-run", /does not apply to kubeecr status/],
    [["status", "extra"], "extra", /unexpected argument "extra"/],
    [["status", "-o", "yaml"], "--output", /expected table or json/],
  ];
  for (const [args, flag, message] of bad) {
    await t.step(`refused: ${args.join(" ")}`, () => {
      const err = configError(args);
      assert.equal(err.flag, flag);
      assert.match(err.message, message);
      assert.equal(err.exitCode, 2);
    });
  }
});
