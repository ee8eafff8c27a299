// `kubeecr renew --now`: a Job from KubeECR's CronJob, made as
// `kubectl create job --from=cronjob/<name>` makes it (kubectl's
// pkg/cmd/create/create_job.go): the CronJob's job template, its labels and
// annotations, `cronjob.kubernetes.io/instantiate: manual`, and the CronJob as
// its controlling owner, so the run uses KubeECR's ServiceAccount, image and
// AWS credentials, and the CronJob's history limits and
// `kubectl get jobs` treat it like one of its own.

import type { SecretRef } from "../core/errors.ts";
import { KubeApiError } from "../core/store.ts";
import { type KubeApi, refused } from "./transport.ts";

/** The annotation kubectl puts on a Job it made from a CronJob by hand. */
export const INSTANTIATE = "cronjob.kubernetes.io/instantiate";

export interface CronJobJson {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string };
  spec?: {
    jobTemplate?: {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec?: Record<string, unknown>;
    };
  };
}

/** The Job kubectl would make from `cronjob`; the API server picks its name's suffix. */
export function jobFromCronJob(cronjob: CronJobJson) {
  const m = cronjob.metadata ?? {};
  const template = cronjob.spec?.jobTemplate ?? {};
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      // kubectl asks the user for a name; renew lets the server make one unique.
      generateName: `${(m.name ?? "kubeecr").slice(0, 50)}-renew-`,
      namespace: m.namespace,
      labels: template.metadata?.labels,
      annotations: { [INSTANTIATE]: "manual", ...template.metadata?.annotations },
      ownerReferences: [{
        apiVersion: "batch/v1",
        kind: "CronJob",
        name: m.name,
        uid: m.uid,
        controller: true,
      }],
    },
    spec: template.spec,
  };
}

/** Creates the Job; returns its name. Throws KubeApiError (404: no such CronJob). */
export async function createJobFromCronJob(api: KubeApi, ref: SecretRef): Promise<string> {
  const ns = encodeURIComponent(ref.namespace);
  const path = `/apis/batch/v1/namespaces/${ns}/cronjobs/${encodeURIComponent(ref.name)}`;
  const target = { namespace: ref.namespace };
  const got = await api.call(
    "get cronjob",
    target,
    { method: "GET", path },
    (res) => res.json() as Promise<CronJobJson>,
  );
  if (!got.ok) {
    if (got.status === 404) {
      throw new KubeApiError(
        "get cronjob",
        404,
        target,
        `there is no CronJob ${ref.namespace}/${ref.name}: name KubeECR's with ` +
          "--cronjob <namespace>/<name> (kubectl get cronjobs -A -l app.kubernetes.io/name=kubeecr)",
      );
    }
    throw refused("get cronjob", target, got.status, got.body, `'get' on cronjobs`);
  }
  const created = await api.call("create job in", target, {
    method: "POST",
    path: `/apis/batch/v1/namespaces/${ns}/jobs`,
    body: jobFromCronJob(got.value),
  }, (res) => res.json() as Promise<{ metadata?: { name?: string } }>);
  if (!created.ok) {
    throw refused("create job in", target, created.status, created.body, `'create' on jobs`);
  }
  return created.value.metadata?.name ?? "";
}
