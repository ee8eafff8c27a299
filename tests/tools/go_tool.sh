# shellcheck shell=bash
# Sourced by actionlint.sh, helm.sh and promtool.sh: how a test tool pinned by
# a wrapper Go module under tests/tools/ is found and built, in one place.
# Binaries live outside the repo, keyed by version, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kubeecr/bin
# (CI caches ~/.cache/kubeecr).

# shellcheck disable=SC2034 # read by the scripts that source this file
go_tool_bindir="${XDG_CACHE_HOME:-$HOME/.cache}/kubeecr/bin"

# go_tool_version SCRIPT MOD MODULE: the version MOD/go.mod requires MODULE at,
# from a `require MODULE v…` line or a line of a require block; the go.mod is
# the single source of the version.
go_tool_version() {
  local script="$1" mod="$2" module="$3" version
  version="$(awk -v m="$module" '$1 == "require" && $2 == m { print $3 } $1 == m { print $2 }' \
    "$mod/go.mod" | head -1)"
  if [[ -z "$version" ]]; then
    echo "$script: no 'require $module <version>' line in $mod/go.mod" >&2
    exit 2
  fi
  echo "$version"
}

# go_tool_build SCRIPT MOD PACKAGE BIN [LDFLAGS]: builds PACKAGE of the module
# in MOD into BIN unless BIN is there. To a temporary name, then renamed, so an
# interrupted build never leaves a half-written binary that a later run would
# trust. GOWORK=off: a go.work elsewhere must not change the module's
# dependency graph. -mod=readonly: go.sum is committed and complete, so a build
# never edits the tree. -buildvcs=false: the module sits inside the project's
# git checkout, whose state has nothing to do with the tool.
go_tool_build() {
  local script="$1" mod="$2" pkg="$3" bin="$4" ldflags="${5:-}" tmp
  [[ -x "$bin" ]] && return 0
  command -v go >/dev/null || { echo "$script: go is not on PATH" >&2; exit 2; }
  mkdir -p "$(dirname -- "$bin")"
  echo "$script: building $pkg into $bin" >&2
  tmp="$(mktemp "$(dirname -- "$bin")/.$(basename -- "$bin").XXXXXX")"
  # shellcheck disable=SC2064 # expand $tmp now: it is local to this call
  trap "rm -f -- '$tmp'" EXIT
  (cd -- "$mod" && GOWORK=off CGO_ENABLED=0 \
    go build -mod=readonly -buildvcs=false -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg")
  chmod 0755 "$tmp"
  mv -f -- "$tmp" "$bin"
  trap - EXIT
}
