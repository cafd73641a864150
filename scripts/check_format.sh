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
if [ "${1:-}" = --fix ]; then
    # shellcheck disable=SC2086
    "$cf" -i $files
    exit 0
fi
# one clang-format for every file (a process a file took 30 s of the suite); it names each file
# that drifts in its warnings ("FILE:LINE:COL: error: code should be clang-formatted")
rc=0
# shellcheck disable=SC2086
out=$("$cf" --dry-run --Werror $files 2>&1 >/dev/null) || rc=$?
drift=$(printf '%s\n' "$out" | sed -n 's/^\(.*\):[0-9]*:[0-9]*: error: code should be clang-formatted.*/\1/p' | sort -u)
for f in $drift; do echo "$f: not formatted as .clang-format says (scripts/check_format.sh --fix)"; done
if [ $rc != 0 ] && [ -z "$drift" ]; then # it failed otherwise: say how
    printf '%s\n' "$out" >&2
    exit 1
fi
[ -z "$drift" ]
