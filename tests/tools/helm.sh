#!/usr/bin/env bash
# Lint and render the Helm chart with Helm, built once from the Go module
# proxy at the version pinned in tests/tools/helm/go.mod.
#
#   bash tests/tools/helm.sh                 # helm lint --strict charts/kubeecr
#   bash tests/tools/helm.sh --path          # build if needed, print the binary's path
#   bash tests/tools/helm.sh ARGS...         # run helm itself, e.g. template charts/kubeecr
#
# The binary is cached outside the repo, keyed by version, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kubeecr/bin/helm-<version>
# (CI caches ~/.cache/kubeecr). The first build takes a few minutes.
# tests/integration/helm_test.ts finds Helm through --path.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd -- "$here/../.." && pwd)"
mod="$here/helm"

# The go.mod require line is the single source of the version.
version="$(awk '$1 == "require" && $2 == "helm.sh/helm/v4" { print $3 }' "$mod/go.mod")"
if [[ -z "$version" ]]; then
  echo "helm.sh: no 'require helm.sh/helm/v4 <version>' line in $mod/go.mod" >&2
  exit 2
fi

bindir="${XDG_CACHE_HOME:-$HOME/.cache}/kubeecr/bin"
bin="$bindir/helm-$version"

if [[ ! -x "$bin" ]]; then
  command -v go >/dev/null || { echo "helm.sh: go is not on PATH" >&2; exit 2; }
  mkdir -p "$bindir"
  echo "helm.sh: building helm $version into $bin" >&2
  # Build to a temporary name and rename, so an interrupted build never leaves
  # a half-written binary that a later run would trust. GOWORK=off: a go.work
  # elsewhere in the tree must not change this module's dependency graph.
  # -mod=readonly: go.sum is committed and must already be complete, so a
  # build never edits the tree. -buildvcs=false: this module sits inside the
  # project's git checkout, whose state has nothing to do with Helm. The -X
  # sets what `helm version` reports, as Helm's own Makefile does (without it
  # the binary says "v4.3").
  tmp="$(mktemp "$bindir/.helm-$version.XXXXXX")"
  trap 'rm -f -- "$tmp"' EXIT
  (cd -- "$mod" && GOWORK=off CGO_ENABLED=0 \
    go build -mod=readonly -buildvcs=false -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version" \
    -o "$tmp" helm.sh/helm/v4/cmd/helm)
  chmod 0755 "$tmp"
  mv -f -- "$tmp" "$bin"
  trap - EXIT
fi

if (($# == 1)) && [[ "$1" == "--path" ]]; then
  echo "$bin"
  exit 0
fi
if (($# > 0)); then exec "$bin" "$@"; fi

cd -- "$repo"
exec "$bin" lint --strict charts/kubeecr
