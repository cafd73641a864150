#!/bin/sh
# The installed runtime archive defines no global symbol without the project's prefix (rsr_), so
# that a program linking it, or an object made by rsrc --emit=obj, meets none of its internal
# names; and it holds none of the unit tests' hooks (RT_TEST_HOOK, runtime/src/internal.h).
# Usage: check_symbols.sh NM LIBRARY      (NM: the toolchain's nm, a cross build's own)
set -eu
nm=$1 lib=$2
all=$("$nm" -g --defined-only "$lib")
defined=$(printf '%s\n' "$all" | awk 'NF == 3 { print $3 }')
[ -n "$defined" ] || { echo "$lib: no global symbol defined" >&2; exit 1; }
bad=$(printf '%s\n' "$defined" | grep -v '^rsr_' || true)
if [ -n "$bad" ]; then
  echo "$lib: global symbols without the prefix rsr_:" >&2
  printf '  %s\n' $bad >&2
  exit 1
fi
hooks=$("$nm" "$lib" | awk '$NF ~ /^head_.*_for_tests$/ { print $NF }')
if [ -n "$hooks" ]; then
  echo "$lib: test hooks in the product: $hooks" >&2
  exit 1
fi
echo "$lib: $(printf '%s\n' "$defined" | wc -l) global symbols, all rsr_*"
