#!/bin/sh
# check_format.sh [--fix] — every C source and header of the tree against .clang-format
# (clang-format 14). cuda/device/ and compiler/print/templates/ are printed verbatim into what rsrc
# writes, so they are left as written (a reformat would change artifacts). Exit status 1 names the files that drift;
# --fix rewrites them in place.
set -eu
cd "$(dirname "$0")/.."
cf=$(command -v clang-format-14 || command -v clang-format || true)
[ -n "$cf" ] || { echo "check_format.sh: clang-format-14 is not installed (scripts/setup.sh installs it)" >&2; exit 77; }
files=$(find bench common compiler cuda examples fuzz python runtime tests tools -name '*.c' -o -name '*.h' |
    grep -v '^cuda/device/\|^compiler/print/templates/' | sort)
bad=0
for f in $files; do
    if [ "${1:-}" = --fix ]; then
        "$cf" -i "$f"
    elif ! "$cf" --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "$f: not formatted as .clang-format says (scripts/check_format.sh --fix)"
        bad=1
    fi
done
exit $bad
