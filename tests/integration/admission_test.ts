/**
 * The admission components against the real API server: the manifests are
 * rendered by the environment's kubectl (`kubectl kustomize`), applied, and
 * Secrets are created through the API as a user's `kubectl apply` would.
 *
 * - examples/installation (admission + namespace opt-in) refuses the original
 *   description's 9-digit account and an annotated Opaque Secret;
 * - manifests/components/admission refuses every invalid value of the shared
 *   table (tests/annotation_cases.ts, which also drives the parser's unit
 *   test) with its reason, admits every valid one, refuses a wrong type and a
 *   later edit to a bad value, and leaves unannotated Secrets alone;
 * - with the namespace opt-in, an annotated Secret in an unlabelled namespace
 *   is refused, and admitted once the namespace is labelled;
 * - a second installation (own namespace, namePrefix and annotation key)
 *   guards its key with its own policy, beside the first.
 *
 * A private environment: the policy applies to every Secret of the cluster,
 * and other test files create annotated Opaque Secrets on purpose.
 */

import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { INVALID, VALID } from "../annotation_cases.ts";
import { startTestEnv, type TestEnvInfo } from "../testenv/env.ts";
import { run } from "../testenv/util.ts";
import { adminCore, ANNOTATION, b64 } from "./cli.ts";
import { copyInstallation } from "./install.ts";

const VALID_VALUE = "123456789012/us-west-2";
const SECOND_KEY = "ecr.example.com/pull";
const OPT_IN = "kubeecr.deft.com/enabled";
/** How long a policy, parameter or label change may take to reach admission. */
const SETTLE_MS = 30_000;

type Outcome = { admitted: true } | { admitted: false; code: number; message: string };

interface Attempt {
  namespace: string;
  name: string;
  annotations?: Record<string, string>;
  type?: string;
  dryRun?: boolean;
}

/** Creates a Secret as admin; a refusal is returned, not thrown. */
async function create(env: TestEnvInfo, a: Attempt): Promise<Outcome> {
  const type = a.type ?? "kubernetes.io/dockerconfigjson";
  // The data key each type requires, so that only the policy can refuse it.
  const key = {
    "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
    "kubernetes.io/dockercfg": ".dockercfg",
  }[type] ??
    "config";
  try {
    await adminCore(env).createNamespacedSecret({
      namespace: a.namespace,
      dryRun: a.dryRun ? "All" : undefined,
      body: {
        metadata: { name: a.name, annotations: a.annotations },
        type,
        data: { [key]: b64('{"auths":{}}') },
      },
    });
    return { admitted: true };
  } catch (err) {
    if (!(err instanceof k8s.ApiException)) throw err;
    const body = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
    return { admitted: false, code: err.code, message: String(body?.message ?? err.body) };
  }
}

const annotated = (value: string, key = ANNOTATION) => ({ [key]: value });

function assertRefused(outcome: Outcome, code: number, fragment: string): string {
  assert.equal(outcome.admitted, false, `admitted, expected a refusal containing ${fragment}`);
  if (outcome.admitted) throw new Error("unreachable");
  assert.equal(outcome.code, code, outcome.message);
  assert.ok(outcome.message.includes(fragment), `${outcome.message}\nlacks: ${fragment}`);
  assert.ok(!outcome.message.includes("\n"), `one line: ${outcome.message}`);
  return outcome.message;
}

/**
 * Polls a dry-run create (admission runs for dry runs too) until `done` holds
 * for its outcome: a new policy, parameter or namespace label takes a moment
 * to reach admission. Bounded; the last outcome is in the error.
 */
async function settle(env: TestEnvInfo, a: Attempt, done: (o: Outcome) => boolean, what: string) {
  const deadline = Date.now() + SETTLE_MS;
  let last: Outcome;
  do {
    last = await create(env, { ...a, dryRun: true });
    if (done(last)) return;
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() < deadline);
  throw new Error(`${what}: not within ${SETTLE_MS / 1000}s; last: ${JSON.stringify(last)}`);
}

/** `kubectl kustomize <dir>` and `kubectl apply` of the result, with the environment's kubectl. */
async function install(env: TestEnvInfo, dir: string): Promise<string> {
  const yaml = await run(env.kubectl, ["kustomize", dir]);
  await run(env.kubectl, ["--kubeconfig", env.kubeconfig, "apply", "-f", "-"], { stdin: yaml });
  return yaml;
}

async function namespace(env: TestEnvInfo, name: string, labels: Record<string, string> = {}) {
  await adminCore(env).createNamespace({ body: { metadata: { name, labels } } });
  return name;
}

Deno.test("admission policies on the real API server", async (t) => {
  const env = await startTestEnv({ log: () => {} });
  try {
    // The user's tree in a scratch copy: manifests/, examples/installation
    // (with aws.env made from its example), and an install with only the
    // admission component, as a user without the opt-in writes it.
    const work = await Deno.makeTempDir({ dir: env.dir, prefix: "admission-" });
    await copyInstallation(work);
    const kustomization = async (dir: string, key: string, lines: string[]) => {
      await Deno.mkdir(`${work}/${dir}`);
      const param = await Deno.readTextFile(`${work}/examples/installation/annotation-key.yaml`);
      await Deno.writeTextFile(
        `${work}/${dir}/annotation-key.yaml`,
        param.replace("key: deft.com/kubeecr", `key: ${key}`),
      );
      await Deno.writeTextFile(
        `${work}/${dir}/kustomization.yaml`,
        [
          "apiVersion: kustomize.config.k8s.io/v1beta1",
          "kind: Kustomization",
          ...lines,
          "resources: [../manifests, annotation-key.yaml]",
          "components: [../manifests/components/admission]",
          "",
        ].join("\n"),
      );
    };
    await t.step(
      "examples/installation refuses a 9-digit account and an annotated Opaque Secret",
      async () => {
        await install(env, `${work}/examples/installation`);
        const ns = await namespace(env, "seed", { [OPT_IN]: "true" });
        // The original description's own example value.
        const seed = { namespace: ns, name: "seed", annotations: annotated("123456789/us-west-2") };
        // Bounded wait: a new policy takes a moment to be enforced. Until then
        // (and on a tree without the component) the Secret is admitted.
        await settle(env, seed, (o) => !o.admitted, "the policy refuses the seed value").catch(
          () => {},
        );
        assertRefused(
          await create(env, seed),
          422,
          'account "123456789" must be exactly 12 digits',
        );
        assertRefused(
          await create(env, {
            namespace: ns,
            name: "opaque",
            type: "Opaque",
            annotations: annotated(VALID_VALUE),
          }),
          422,
          "but has type Opaque",
        );
      },
    );

    await kustomization("admission-only", ANNOTATION, []);
    // A second installation beside the first: its own namespace, names and key.
    await kustomization("second", SECOND_KEY, ["namespace: kubeecr-b", "namePrefix: b-"]);

    // From here on the admission component alone (re-applying the policy
    // without the opt-in rule, as a user who drops the component would).
    await run(env.kubectl, [
      "--kubeconfig",
      env.kubeconfig,
      "delete",
      "validatingadmissionpolicy,validatingadmissionpolicybinding",
      "kubeecr-annotation",
    ]);
    await install(env, `${work}/admission-only`);
    const ns = await namespace(env, "table"); // not labelled: no opt-in here
    // Until the re-created policy replaces the deleted one in the API
    // server's cache, the opt-in rule still answers (403 for this unlabelled
    // namespace): wait for the new policy's own answers, a 422 for a
    // malformed value and an admitted valid one.
    await settle(
      env,
      { namespace: ns, name: "probe", annotations: annotated("123456789/us-west-2") },
      (o) => !o.admitted && o.code === 422,
      "the admission component alone refuses a malformed value",
    );
    await settle(
      env,
      { namespace: ns, name: "probe", annotations: annotated(VALID_VALUE) },
      (o) => o.admitted,
      "the admission component alone admits a valid value in an unlabelled namespace",
    );

    await t.step(
      "every invalid value of the shared table is refused with its reason",
      async (t) => {
        for (const [i, c] of INVALID.entries()) {
          await t.step(c.name, async () => {
            const outcome = await create(env, {
              namespace: ns,
              name: `invalid-${i}`,
              annotations: annotated(c.value),
            });
            const message = assertRefused(outcome, 422, c.reason);
            // What to write instead.
            assert.ok(message.includes("e.g. 123456789012/us-west-2"), message);
          });
        }
      },
    );

    await t.step("every valid value of the shared table is admitted", async (t) => {
      for (const [i, c] of VALID.entries()) {
        await t.step(c.name, async () => {
          const outcome = await create(env, {
            namespace: ns,
            name: `valid-${i}`,
            annotations: annotated(c.value),
          });
          assert.deepEqual(outcome, { admitted: true });
        });
      }
    });

    await t.step("a wrong type is refused, saying which type to use", async () => {
      for (const type of ["Opaque", "kubernetes.io/dockercfg"]) {
        const message = assertRefused(
          await create(env, {
            namespace: ns,
            name: `wrong-type-${type.length}`,
            type,
            annotations: annotated(VALID_VALUE),
          }),
          422,
          `but has type ${type}`,
        );
        assert.ok(message.includes("type: kubernetes.io/dockerconfigjson"), message);
      }
    });

    await t.step("Secrets without the annotation are not judged", async () => {
      const opaque = { namespace: ns, name: "plain", type: "Opaque" };
      assert.deepEqual(await create(env, opaque), { admitted: true });
      const other = annotated("123456789/us-west-2", "example.com/other");
      assert.deepEqual(
        await create(env, { namespace: ns, name: "other-key", annotations: other }),
        {
          admitted: true,
        },
      );
    });

    await t.step("an edit that makes a value malformed is refused", async () => {
      assert.deepEqual(
        await create(env, { namespace: ns, name: "edited", annotations: annotated(VALID_VALUE) }),
        { admitted: true },
      );
      const edit = run(env.kubectl, [
        "--kubeconfig",
        env.kubeconfig,
        "-n",
        ns,
        "annotate",
        "--overwrite",
        "secret/edited",
        `${ANNOTATION}=${VALID_VALUE},us-east-1`,
      ]);
      await assert.rejects(edit, /item "us-east-1": missing "\/" between account and region/);
    });

    await t.step("a second installation guards its own key with its own policy", async () => {
      await install(env, `${work}/second`);
      const bad = {
        namespace: ns,
        name: "second-key",
        annotations: annotated("12345/us-west-2", SECOND_KEY),
      };
      await settle(env, bad, (o) => !o.admitted, `the second policy guards ${SECOND_KEY}`);
      const message = assertRefused(
        await create(env, bad),
        422,
        `annotation ${SECOND_KEY}="12345/us-west-2": `,
      );
      assert.ok(message.includes("ValidatingAdmissionPolicy 'b-kubeecr-annotation'"), message);
      // The first installation's key is still guarded by the first policy.
      const first = await create(env, {
        namespace: ns,
        name: "first-key",
        annotations: annotated("12345/us-west-2"),
      });
      assert.ok(
        assertRefused(first, 422, "12 digits").includes(
          "ValidatingAdmissionPolicy 'kubeecr-annotation'",
        ),
      );
    });

    await t.step(
      "namespace opt-in: refused in an unlabelled namespace, admitted once labelled",
      async () => {
        await install(env, `${work}/examples/installation`); // adds the opt-in rule
        const team = await namespace(env, "team-unlabelled");
        const secret = { namespace: team, name: "pull", annotations: annotated(VALID_VALUE) };
        await settle(env, secret, (o) => !o.admitted && o.code === 403, "the opt-in rule");
        assertRefused(
          await create(env, secret),
          403,
          `namespace ${team} has not opted in to KubeECR`,
        );
        assertRefused(
          await create(env, secret),
          403,
          `kubectl label namespace ${team} ${OPT_IN}=true`,
        );

        await run(env.kubectl, [
          "--kubeconfig",
          env.kubeconfig,
          "label",
          "namespace",
          team,
          `${OPT_IN}=true`,
        ]);
        await settle(env, secret, (o) => o.admitted, "the label reaches admission");
        assert.deepEqual(await create(env, secret), { admitted: true });
        // The value is still judged in an opted-in namespace.
        assertRefused(
          await create(env, { ...secret, name: "bad", annotations: annotated("123456789012") }),
          422,
          'item "123456789012": region is missing',
        );
      },
    );
  } finally {
    await env.stop();
  }
});
