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

# shellcheck source=tests/tools/go_tool.sh
. "$here/go_tool.sh"
version="$(go_tool_version promtool.sh "$mod" github.com/prometheus/prometheus)"
crrules_hash="$(cat "$mod/go.mod" "$mod/go.sum" "$mod/crrules/main.go" | sha256sum | cut -c1-10)"
promtool="$go_tool_bindir/promtool-$version"
crrules="$go_tool_bindir/crrules-$crrules_hash"
go_tool_build promtool.sh "$mod" github.com/prometheus/prometheus/cmd/promtool "$promtool"
go_tool_build promtool.sh "$mod" ./crrules "$crrules"

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
