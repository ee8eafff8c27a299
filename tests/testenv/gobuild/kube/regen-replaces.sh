#!/usr/bin/env bash
# Regenerates the replace block of go.mod for another Kubernetes release:
#   tests/testenv/gobuild/kube/regen-replaces.sh v1.37.2
# k8s.io/kubernetes requires each staging module at v0.0.0; a dependent module
# must replace every one of them with its published v0.<minor>.<patch>.
set -euo pipefail
version="${1:?usage: $0 v1.<minor>.<patch>}"
cd "$(dirname "$0")"
export GOWORK=off
modfile="$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
staging="v0.${version#v1.}"
go mod edit -require="k8s.io/kubernetes@${version}"
grep -E '^\s+k8s.io/[a-z0-9-]+ v0\.0\.0$' "$modfile" | awk '{print $1}' | while read -r mod; do
  go mod edit -replace="${mod}=${mod}@${staging}"
done
go mod tidy
