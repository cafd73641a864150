# npm_fetch.sh — sourced by the tests that run reference packages from the npm registry:
# npm_fetch DIR NPM_ARGS... PACKAGES installs PACKAGES into DIR (once per package list; never
# into the source tree) or exits 77 (ctest: skipped) when node, npm or the registry is missing.
# The caller names itself in $who for the messages.
npm_fetch() {
  local dir=$1
  shift
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "$who: node and npm are not installed: skipped" >&2
    exit 77
  fi
  mkdir -p "$dir"
  if [ "$(cat "$dir/installed" 2>/dev/null)" != "$*" ]; then
    [ -f "$dir/package.json" ] || echo '{"private": true, "type": "module"}' >"$dir/package.json"
    if ! npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error --fetch-timeout=30000 \
         --fetch-retries=1 "$@" >&2; then
      echo "$who: the npm registry is unreachable: skipped" >&2
      exit 77
    fi
    echo "$*" >"$dir/installed"
  fi
}
