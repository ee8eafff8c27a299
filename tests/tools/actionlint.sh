#!/usr/bin/env bash
# Lint the GitHub Actions workflows with actionlint, built once from the Go
# module proxy at the version pinned in tests/tools/actionlint/go.mod.
#
#   bash tests/tools/actionlint.sh            # lints .github/workflows/*.y*ml
#   bash tests/tools/actionlint.sh FILE...    # lints the given files
#
# The binary is cached outside the repo, keyed by version, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kubeecr/bin/actionlint-<version>
# (CI caches ~/.cache/kubeecr). Exit status is actionlint's: non-zero on any
# finding. shellcheck and pyflakes are used by actionlint when on PATH and
# silently skipped otherwise; neither is required.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd -- "$here/../.." && pwd)"
mod="$here/actionlint"

# shellcheck source=tests/tools/go_tool.sh
. "$here/go_tool.sh"
version="$(go_tool_version actionlint.sh "$mod" github.com/rhysd/actionlint)"
bin="$go_tool_bindir/actionlint-$version"
go_tool_build actionlint.sh "$mod" github.com/rhysd/actionlint/cmd/actionlint "$bin"

cd -- "$repo"
if (($# == 0)); then
  shopt -s nullglob
  set -- .github/workflows/*.yml .github/workflows/*.yaml
  if (($# == 0)); then
    echo "actionlint.sh: no workflow files under $repo/.github/workflows" >&2
    exit 2
  fi
fi
exec "$bin" "$@"
