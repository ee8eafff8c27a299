#!/usr/bin/env bash
# The image smoke test, used by CI (ci.yml, the image CI just built) and by
# the release (release.yml, the image pushed by digest, on amd64 and arm64).
#
#   tests/smoke/smoke.sh IMAGE        e.g. kubeecr:ci or ghcr.io/deft/kubeecr@sha256:...
#   tests/smoke/smoke.sh --testenv    against the test environment KUBECONFIG names
#
# IMAGE must be in the local Docker engine. The script creates a kind cluster
# (KIND_CLUSTER, default kubeecr-smoke; deleted at the end unless
# SMOKE_KEEP_CLUSTER=1), waits for CoreDNS, loads the image, installs
# tests/smoke (manifests/ with the CronJob suspended, plus moto) and then:
#   1. a Job from the CronJob must refresh an annotated Secret: its
#      .dockerconfigjson entry, its status annotations, its Refreshed event;
#   2. a Job must fail cleanly (exit code 1, InvalidAnnotation event, no
#      retry) on a Secret with a bad annotation;
#   3. last, the refreshed Secret's ECR entry is read back once more: no
#      green run without it.
# moto stands in for ECR at https://api.ecr.us-west-2.amazonaws.com, the host
# the sandbox allows, through the Job's hostAliases and a test CA that the
# Deno runtime trusts through DENO_CERT (read by the runtime, not the program).
#
# --testenv runs the same steps on the test environment's node (`deno task
# testenv --node`; `deno task test` runs it, tests/integration/smoke_testenv_test.ts):
# the image is built from the working tree (tests/testenv/kubeecr_image.ts:
# deno run instead of deno compile, otherwise as the Dockerfile) and imported
# into the node's containerd; tests/smoke/testenv is installed (no moto: the
# environment's ECR endpoint answers as https://api.ecr.us-west-2.amazonaws.com
# on a loopback address of its own); the Jobs run with hostNetwork and
# hostAliases for kubernetes.default.svc and the AWS names; and after the
# refresh a pod pulls the test image from the ECR stand-in with the Secret.
# It needs deno besides the tools below.
#
# Two parts run on their own, against whatever cluster KUBECONFIG names (the
# integration tests run them against the test environment's API server):
#   tests/smoke/smoke.sh --install DIR   PKI in DIR, apply tests/smoke, moto's TLS Secret, CA ConfigMap
#   tests/smoke/smoke.sh --job NAME      print the smoke Job made from the CronJob (JSON)
#
# Needs bash, kubectl, jq, openssl; for a full run also docker and kind.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd -- "$here/../.." && pwd)"

readonly ACCOUNT=123456789012
readonly REGION=us-west-2
readonly REGISTRY="${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com"
# The names the Job resolves to moto: the ECR API of the Secret's region and
# the STS names the SDK would use there.
readonly AWS_NAMES=("api.ecr.${REGION}.amazonaws.com" "sts.${REGION}.amazonaws.com" "sts.amazonaws.com")
readonly SMOKE_TAG=ghcr.io/deft/kubeecr:smoke
readonly MOTO_NS=kubeecr-smoke-aws
readonly CA_CONFIGMAP=kubeecr-smoke-ca
readonly CA_DIR=/etc/kubeecr-smoke
readonly JOB_TIMEOUT=180
# kind (the default) or testenv (--testenv).
mode=kind
testenv_json=""

log() { printf '::: %s\n' "$*" >&2; }
fail() {
  printf '::error::%s\n' "$*" >&2
  exit 1
}

# A CA and a serving certificate for AWS_NAMES, in $1.
make_pki() {
  local dir="$1" san
  san="$(printf 'DNS:%s,' "${AWS_NAMES[@]}")"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=kubeecr-smoke-ca -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=${AWS_NAMES[0]}" -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
    "${san%,}" >"$dir/tls.ext"
  openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 1 -extfile "$dir/tls.ext" -out "$dir/tls.crt" 2>/dev/null
}

# Everything the Jobs need, applied to the cluster KUBECONFIG names.
install() {
  local dir="$1"
  if [[ "$mode" == testenv ]]; then
    install_testenv
    return
  fi
  make_pki "$dir"
  kubectl create namespace "$MOTO_NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$MOTO_NS" create secret tls moto-tls --cert="$dir/tls.crt" --key="$dir/tls.key" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -k "$here" >/dev/null
  kubectl -n kubeecr create configmap "$CA_CONFIGMAP" --from-file=ca.crt="$dir/ca.crt" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  # Static keys: moto accepts any. (IRSA is exercised by tests/integration/incluster_test.ts.)
  kubectl -n kubeecr create secret generic kubeecr-aws-secrets \
    --from-literal=AWS_ACCESS_KEY_ID=AKIASMOKETEST0000000 --from-literal=AWS_SECRET_ACCESS_KEY=smoke \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

# The testenv variant: the environment's CA (it signed the API server's and
# the ECR stand-in's certificates) and the same static keys.
install_testenv() {
  kubectl apply -k "$here/testenv" >/dev/null
  # hostNetwork (the only way to the environment's loopback addresses) is
  # what the "restricted" standard the namespace enforces forbids. Enforce
  # nothing and warn with "restricted" instead: create_job checks that
  # hostNetwork is the Job's only violation.
  kubectl label namespace kubeecr --overwrite pod-security.kubernetes.io/enforce=privileged \
    pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/warn-version=latest >/dev/null
  kubectl -n kubeecr create configmap "$CA_CONFIGMAP" --from-file=ca.crt="$(jq -r .caCert "$testenv_json")" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n kubeecr create secret generic kubeecr-aws-secrets \
    --from-literal=AWS_ACCESS_KEY_ID=AKIASMOKETEST0000000 --from-literal=AWS_SECRET_ACCESS_KEY=smoke \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

# The Job the CronJob would start, pointed at moto: AWS_NAMES resolve to
# moto's Service, the runtime trusts the smoke CA, and one failed pod fails
# the Job (no retries to wait for).
#
# On the test environment's node the pod uses the host network, where the
# environment's loopback addresses are: the AWS names go to its ECR endpoint
# and kubernetes.default.svc to its API server. It looks at namespace smoke
# only: the environment is shared with the other tests, whose Secrets
# (bad annotations among them, on purpose) are not the smoke test's.
job_manifest() {
  local name="$1" ip aliases
  if [[ "$mode" == testenv ]]; then
    ip="$(jq -r .node.ecrApiAddress "$testenv_json")"
    aliases="$(jq -c --arg ip "$ip" --argjson names "$(printf '%s\n' "${AWS_NAMES[@]}" | jq -R . | jq -s .)" \
      '[{ip: $ip, hostnames: $names}, {ip: .node.hosts["kubernetes.default.svc"], hostnames: ["kubernetes.default.svc"]}]' \
      "$testenv_json")"
  else
    ip="$(kubectl -n "$MOTO_NS" get service moto -o jsonpath='{.spec.clusterIP}')"
    [[ -n "$ip" ]] || fail "service ${MOTO_NS}/moto has no cluster IP"
    aliases="$(jq -nc --arg ip "$ip" --argjson names "$(printf '%s\n' "${AWS_NAMES[@]}" | jq -R . | jq -s .)" \
      '[{ip: $ip, hostnames: $names}]')"
  fi
  kubectl -n kubeecr create job "$name" --from=cronjob/kubeecr --dry-run=client -o json |
    jq --argjson aliases "$aliases" --arg dir "$CA_DIR" --arg cm "$CA_CONFIGMAP" \
      --argjson hostnet "$([[ "$mode" == testenv ]] && echo true || echo false)" '
      .spec.backoffLimit = 0
      | .spec.template.spec.hostAliases = $aliases
      | if $hostnet then
          .spec.template.spec.hostNetwork = true
          | .spec.template.spec.containers[0].env += [{name: "KUBEECR_NAMESPACE", value: "smoke"}]
        else . end
      | .spec.template.spec.volumes += [{name: "smoke-ca", configMap: {name: $cm}}]
      | .spec.template.spec.containers[0].volumeMounts += [{name: "smoke-ca", mountPath: $dir, readOnly: true}]
      | .spec.template.spec.containers[0].env += [{name: "DENO_CERT", value: ($dir + "/ca.crt")}]'
}

# Waits for Job $1 to complete (status 0) or fail (status 1), whichever
# comes first: a failed Job ends the wait at once.
wait_job() {
  local name="$1" deadline=$((SECONDS + JOB_TIMEOUT)) state
  while ((SECONDS < deadline)); do
    state="$(kubectl -n kubeecr get job "$name" \
      -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')"
    case " $state " in
      *" Complete "*) return 0 ;;
      *" Failed "*) return 1 ;;
    esac
    sleep 2
  done
  fail "job ${name}: neither complete nor failed after ${JOB_TIMEOUT}s"
}

# The exit code of Job $1's pod (backoffLimit 0: one pod); empty while none.
exit_code() {
  kubectl -n kubeecr get pods -l "job-name=$1" \
    -o jsonpath='{.items[*].status.containerStatuses[*].state.terminated.exitCode}'
}

# Job $1's log (stdout, the program's JSON lines). On the test environment's
# node `kubectl logs` cannot reach the kubelet (a node on loopback has no
# address): the kubelet's own log file, its stdout lines less the CRI prefix
# (time, stream, tag). Its stderr has `deno run`'s notice that permissions in
# deno.json are experimental, which the compiled binary does not print.
job_log() {
  if [[ "$mode" == testenv ]]; then
    local pod
    pod="$(kubectl -n kubeecr get pods -l "job-name=$1" -o jsonpath='{.items[0].metadata.name}')"
    cat "$(jq -r .node.podLogsDir "$testenv_json")/kubeecr_${pod}_"*/kubeecr/*.log |
      sed -nE 's/^[^ ]+ stdout [^ ]+ //p'
  else
    kubectl -n kubeecr logs "job/$1"
  fi
}

# Creates the Job job_manifest prints. On the test environment, the API
# server's Pod Security warning must name hostNetwork and nothing else: the
# pod is otherwise as restricted as the installed CronJob's.
create_job() {
  local name="$1" warnings
  warnings="$(job_manifest "$name" | kubectl create -f - 2>&1 >/dev/null)" || fail "cannot create job ${name}: ${warnings}"
  if [[ "$mode" == testenv ]] &&
    [[ "$warnings" != 'Warning: would violate PodSecurity "restricted:latest": host namespaces (hostNetwork=true)' ]]; then
    fail "job ${name}: want hostNetwork as the only Pod Security violation, got: ${warnings}"
  fi
}

has_event() {
  local ns="$1" name="$2" type="$3" reason="$4"
  kubectl -n "$ns" get events -o name \
    --field-selector "involvedObject.name=${name},type=${type},reason=${reason}" | grep -q .
}

# The registry entry of smoke/ecr-pull: username AWS and a password ECR
# issued for the account (moto's `<account>-auth-token`; the test
# environment's endpoint adds `-<random>` per call). Only the comparison's
# result is printed, never the value.
check_ecr_entry() {
  kubectl -n smoke get secret ecr-pull -o jsonpath='{.data.\.dockerconfigjson}' | base64 -d |
    jq -e --arg h "$REGISTRY" --arg p "${ACCOUNT}-auth-token" \
      '.auths[$h] | (.username == "AWS") and (.password | startswith($p)) and (.auth == ("AWS:" + .password | @base64))' \
      >/dev/null || fail "smoke/ecr-pull has no token for ${REGISTRY}"
}

# testenv: a pod pulls the test image from the ECR stand-in with the Secret
# the Job wrote (the registry accepts only the newest live password).
check_pull() {
  local image deadline=$((SECONDS + 90)) state
  image="$(jq -r .node.image "$testenv_json")"
  kubectl -n smoke delete pod smoke-pull --ignore-not-found --wait=true >/dev/null
  kubectl -n smoke run smoke-pull --image="$image" --image-pull-policy=Always --restart=Never \
    --overrides='{"apiVersion":"v1","spec":{"imagePullSecrets":[{"name":"ecr-pull"}]}}' >/dev/null
  while ((SECONDS < deadline)); do
    state="$(kubectl -n smoke get pod smoke-pull \
      -o jsonpath='{.status.containerStatuses[0].state.running.startedAt}{.status.containerStatuses[0].state.waiting.reason}')"
    case "$state" in
      ErrImagePull | ImagePullBackOff)
        kubectl -n smoke get events --field-selector involvedObject.name=smoke-pull,reason=Failed \
          -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' >&2
        fail "smoke-pull could not pull ${image} with smoke/ecr-pull"
        ;;
      [0-9]*) return 0 ;;
    esac
    sleep 1
  done
  fail "smoke-pull: not running after 90s"
}

diagnostics() {
  if [[ "$mode" == testenv ]]; then
    # kubectl logs cannot reach a node on loopback: the kubelet's log files.
    local logs
    logs="$(jq -r .node.podLogsDir "$testenv_json")"
    kubectl get cronjobs,jobs,pods -A -o wide || true
    kubectl -n kubeecr describe pods || true
    tail -n 50 "$logs"/kubeecr_*/*/* 2>/dev/null || true
    kubectl get events -A --sort-by=.lastTimestamp || true
    return
  fi
  kubectl get cronjobs,jobs,pods -A -o wide || true
  kubectl -n kubeecr describe pods || true
  kubectl -n kubeecr logs -l app.kubernetes.io/name=kubeecr --tail=200 --prefix || true
  kubectl -n "$MOTO_NS" logs deployment/moto --tail=50 || true
  kubectl get events -A --sort-by=.lastTimestamp || true
}

smoke() {
  local image="$1"
  local cluster="${KIND_CLUSTER:-kubeecr-smoke}" work created=0
  work="$(mktemp -d)"
  export KUBECONFIG="$work/kubeconfig"
  # shellcheck disable=SC2064 # expand now: the trap must see this run's values.
  trap "status=\$?; ((status == 0)) || diagnostics; rm -rf -- '$work'" EXIT
  if ! kind get clusters 2>/dev/null | grep -qx -- "$cluster"; then
    log "kind cluster ${cluster}"
    kind create cluster --name "$cluster" --kubeconfig "$KUBECONFIG" --wait 180s
    created=1
  else
    kind export kubeconfig --name "$cluster" --kubeconfig "$KUBECONFIG"
  fi
  if ((created)) && [[ "${SMOKE_KEEP_CLUSTER:-0}" != 1 ]]; then
    # shellcheck disable=SC2064
    trap "status=\$?; ((status == 0)) || diagnostics; kind delete cluster --name '$cluster' || true; rm -rf -- '$work'" EXIT
  fi

  log "CoreDNS ready (the pod reaches https://kubernetes.default.svc by name)"
  kubectl -n kube-system rollout status deployment/coredns --timeout=180s

  log "image ${image} loaded as ${SMOKE_TAG}"
  docker tag "$image" "$SMOKE_TAG"
  kind load docker-image "$SMOKE_TAG" --name "$cluster"

  log "install (CronJob suspended) and moto"
  install "$work"
  [[ "$(kubectl -n kubeecr get cronjob kubeecr -o jsonpath='{.spec.suspend}')" == true ]] ||
    fail "the CronJob is not suspended"
  kubectl -n "$MOTO_NS" rollout status deployment/moto --timeout=180s
  steps "$image"
}

# The test environment's node: KUBECONFIG names its kubeconfig, testenv.json
# lies beside it.
smoke_testenv() {
  [[ -n "${KUBECONFIG:-}" ]] || fail "--testenv: KUBECONFIG must name the test environment's kubeconfig (source its env.sh)"
  mode=testenv
  testenv_json="$(dirname -- "$KUBECONFIG")/testenv.json"
  [[ -f "$testenv_json" ]] || fail "--testenv: no ${testenv_json}; is KUBECONFIG the test environment's?"
  jq -e .node "$testenv_json" >/dev/null || fail "--testenv: the test environment has no node (deno task testenv --node)"
  trap 'status=$?; ((status == 0)) || diagnostics' EXIT

  log "image from the working tree imported into the node's containerd as ${SMOKE_TAG}"
  deno run -A "$repo/tests/testenv/kubeecr_image.ts" "$(dirname -- "$KUBECONFIG")" "$SMOKE_TAG" >/dev/null

  log "install (CronJob suspended)"
  install ""
  [[ "$(kubectl -n kubeecr get cronjob kubeecr -o jsonpath='{.spec.suspend}')" == true ]] ||
    fail "the CronJob is not suspended"
  steps "the working tree"
}

# The checks, the same on kind and on the test environment.
steps() {
  local image="$1"

  # A kept cluster (SMOKE_KEEP_CLUSTER=1, KIND_CLUSTER of an earlier run)
  # starts from the same state as a new one.
  kubectl -n kubeecr delete job smoke-refresh smoke-invalid --ignore-not-found --cascade=foreground --wait=true
  kubectl delete namespace smoke --ignore-not-found --wait=true

  log "a Job refreshes an annotated Secret"
  kubectl create namespace smoke
  kubectl -n smoke create secret generic ecr-pull --type=kubernetes.io/dockerconfigjson \
    --from-literal=.dockerconfigjson='{"auths":{}}'
  kubectl -n smoke annotate secret ecr-pull "deft.com/kubeecr=${ACCOUNT}/${REGION}"
  create_job smoke-refresh
  wait_job smoke-refresh || fail "job smoke-refresh failed (exit code $(exit_code smoke-refresh))"
  job_log smoke-refresh | jq -e . >/dev/null ||
    fail "smoke-refresh logged a line that is not JSON"
  check_ecr_entry
  if [[ "$mode" == testenv ]]; then
    log "a pod pulls from the ECR stand-in with the refreshed Secret"
    check_pull
  fi
  kubectl -n smoke get secret ecr-pull -o json | jq -e '.metadata.annotations
      | (."kubeecr.deft.com/refreshed-at" | length > 0) and (."kubeecr.deft.com/expires-at" | length > 0)' \
    >/dev/null || fail "smoke/ecr-pull lacks the status annotations"
  has_event smoke ecr-pull Normal Refreshed || fail "no Refreshed event on smoke/ecr-pull"

  log "a Job fails cleanly on a bad annotation"
  kubectl -n smoke create secret generic bad-annotation --type=kubernetes.io/dockerconfigjson \
    --from-literal=.dockerconfigjson='{"auths":{}}'
  kubectl -n smoke annotate secret bad-annotation deft.com/kubeecr=not-an-account
  create_job smoke-invalid
  if wait_job smoke-invalid; then fail "job smoke-invalid succeeded; want a failure"; fi
  [[ "$(exit_code smoke-invalid)" == 1 ]] || fail "smoke-invalid: exit code $(exit_code smoke-invalid), want 1"
  has_event smoke bad-annotation Warning InvalidAnnotation || fail "no InvalidAnnotation event"
  [[ "$(kubectl -n kubeecr get pods -l job-name=smoke-invalid -o name | wc -l)" == 1 ]] ||
    fail "smoke-invalid was retried"

  log "the refreshed Secret still holds its ECR entry"
  check_ecr_entry
  log "smoke test passed for ${image}"
}

case "${1:-}" in
  --install)
    [[ $# == 2 ]] || fail "usage: $0 --install DIR"
    install "$2"
    ;;
  --job)
    [[ $# == 2 ]] || fail "usage: $0 --job NAME"
    job_manifest "$2"
    ;;
  --testenv)
    [[ $# == 1 ]] || fail "usage: $0 --testenv"
    cd "$repo"
    smoke_testenv
    ;;
  -* | "")
    echo "usage: $0 IMAGE | --testenv | --install DIR | --job NAME" >&2
    exit 2
    ;;
  *)
    [[ $# == 1 ]] || fail "usage: $0 IMAGE"
    cd "$repo"
    smoke "$1"
    ;;
esac
