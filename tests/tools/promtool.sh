#!/usr/bin/env bash
# Check the alerting rules of examples/monitoring with promtool, built once
# from the Go module proxy at the version pinned in tests/tools/promtool/go.mod.
#
#   bash tests/tools/promtool.sh                 # check and unit-test examples/monitoring
#   bash tests/tools/promtool.sh ARGS...         # run promtool itself, e.g. --version
#
# promtool reads plain rule files, not PrometheusRule objects: crrules (in
# the same Go module) extracts spec.groups from the PrometheusRule first.
# Then `promtool check rules` checks syntax, PromQL and duplicates, and
# `promtool test rules` runs the unit tests in examples/monitoring/tests.yaml
# (synthetic series: each alert fires when it should and stays quiet when it
# should not).
#
# Binaries are cached outside the repo, keyed by version (crrules also by a
# hash of its source), in ${XDG_CACHE_HOME:-$HOME/.cache}/kubeecr/bin
# (CI caches ~/.cache/kubeecr). The first build takes a few minutes.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd -- "$here/../.." && pwd)"
mod="$here/promtool"

# The go.mod require line is the single source of the version.
version="$(awk '$1 == "github.com/prometheus/prometheus" { print $2 }' "$mod/go.mod" | head -1)"
if [[ -z "$version" ]]; then
  echo "promtool.sh: no 'github.com/prometheus/prometheus <version>' line in $mod/go.mod" >&2
  exit 2
fi
crrules_hash="$(cat "$mod/go.mod" "$mod/go.sum" "$mod/crrules/main.go" | sha256sum | cut -c1-10)"

bindir="${XDG_CACHE_HOME:-$HOME/.cache}/kubeecr/bin"
promtool="$bindir/promtool-$version"
crrules="$bindir/crrules-$crrules_hash"

# build <package> <binary>: to a temporary name, then renamed, so an
# interrupted build never leaves a half-written binary that a later run would
# trust. GOWORK=off: a go.work elsewhere must not change this module's
# dependency graph. -mod=readonly: go.sum is committed and complete, so a
# build never edits the tree. -buildvcs=false: this module sits inside the
# project's checkout, whose state has nothing to do with promtool.
build() {
  local pkg="$1" bin="$2" tmp
  command -v go >/dev/null || { echo "promtool.sh: go is not on PATH" >&2; exit 2; }
  mkdir -p "$bindir"
  echo "promtool.sh: building $pkg into $bin" >&2
  tmp="$(mktemp "$bindir/.$(basename "$bin").XXXXXX")"
  trap 'rm -f -- "$tmp"' EXIT
  (cd -- "$mod" && GOWORK=off CGO_ENABLED=0 \
    go build -mod=readonly -buildvcs=false -trimpath -o "$tmp" "$pkg")
  chmod 0755 "$tmp"
  mv -f -- "$tmp" "$bin"
  trap - EXIT
}
[[ -x "$promtool" ]] || build github.com/prometheus/prometheus/cmd/promtool "$promtool"
[[ -x "$crrules" ]] || build ./crrules "$crrules"

if (($# > 0)); then exec "$promtool" "$@"; fi

cd -- "$repo/examples/monitoring"
work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT
# tests.yaml names its rule file as rules.yaml, relative to itself: run the
# tests from a copy beside the extracted rules.
"$crrules" prometheusrule.yaml >"$work/rules.yaml"
cp tests.yaml "$work/tests.yaml"
"$promtool" check rules "$work/rules.yaml"
"$promtool" test rules "$work/tests.yaml"
