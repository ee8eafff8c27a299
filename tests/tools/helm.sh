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

# shellcheck source=tests/tools/go_tool.sh
. "$here/go_tool.sh"
version="$(go_tool_version helm.sh "$mod" helm.sh/helm/v4)"
bin="$go_tool_bindir/helm-$version"
# The -X sets what `helm version` reports, as Helm's own Makefile does
# (without it the binary says "v4.3").
go_tool_build helm.sh "$mod" helm.sh/helm/v4/cmd/helm "$bin" \
  "-s -w -X helm.sh/helm/v4/internal/version.version=$version"

if (($# == 1)) && [[ "$1" == "--path" ]]; then
  echo "$bin"
  exit 0
fi
if (($# > 0)); then exec "$bin" "$@"; fi

cd -- "$repo"
exec "$bin" lint --strict charts/kubeecr
