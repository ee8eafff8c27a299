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

# The go.mod require line is the single source of the version.
version="$(awk '$1 == "require" && $2 == "github.com/rhysd/actionlint" { print $3 }' "$mod/go.mod")"
if [[ -z "$version" ]]; then
  echo "actionlint.sh: no 'require github.com/rhysd/actionlint <version>' line in $mod/go.mod" >&2
  exit 2
fi

bindir="${XDG_CACHE_HOME:-$HOME/.cache}/kubeecr/bin"
bin="$bindir/actionlint-$version"

if [[ ! -x "$bin" ]]; then
  command -v go >/dev/null || { echo "actionlint.sh: go is not on PATH" >&2; exit 2; }
  mkdir -p "$bindir"
  echo "actionlint.sh: building actionlint $version into $bin" >&2
  # Build to a temporary name and rename, so an interrupted build never leaves
  # a half-written binary that a later run would trust. GOWORK=off: a go.work
  # elsewhere in the tree must not change this module's dependency graph.
  # -mod=readonly: go.sum is committed and must already be complete, so a
  # build never edits the tree. -buildvcs=false: this module sits inside the
  # project's git checkout, whose state has nothing to do with actionlint.
  tmp="$(mktemp "$bindir/.actionlint-$version.XXXXXX")"
  trap 'rm -f -- "$tmp"' EXIT
  (cd -- "$mod" && GOWORK=off CGO_ENABLED=0 \
    go build -mod=readonly -buildvcs=false -trimpath -o "$tmp" \
    github.com/rhysd/actionlint/cmd/actionlint)
  chmod 0755 "$tmp"
  mv -f -- "$tmp" "$bin"
  trap - EXIT
fi

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
