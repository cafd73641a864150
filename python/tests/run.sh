#!/bin/sh
# Installs the package offline into a fresh virtual environment as the docs say (pip install
# ./python with no index: the package builds with its own backend, python/_build/backend.py, and
# needs nothing from outside), checks that the install left nothing in the source tree, and runs
# its pytest tests there against BUILD_DIR's tools. Exits 77 (ctest: skipped) without Debian's python3-venv or
# python3-pytest. Usage: run.sh BUILD_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
py=/usr/bin/python3
if ! $py -c "import venv, ensurepip, pytest" 2>/dev/null; then
    echo "run.sh: Debian's python3-venv and python3-pytest are needed: skipped" >&2
    exit 77
fi
env=$build/python-venv
rm -rf "$env"
$py -m venv --system-site-packages "$env" # pytest from Debian; the package itself installed below
src=$(cd "$here/.." && pwd)
before=$(cd "$src" && find . | sort)
"$env/bin/pip" install --quiet --no-index "$src"
after=$(cd "$src" && find . | sort)
if [ "$before" != "$after" ]; then
    echo "run.sh: pip install left files in $src:" >&2
    printf '%s\n' "$before" >"$build/python-before.txt"
    printf '%s\n' "$after" | diff "$build/python-before.txt" - >&2 || true
    exit 1
fi
# README's line, as printed there, in a directory where ./python is this package: a venv of its
# own (no system site packages), pip with its defaults (the index is never asked for: the package
# needs nothing), then `import rsr` runs the trained model's artifact
line=$(grep -o 'python3 -m venv .venv && .venv/bin/pip install ./python' "$src/../README.md" || true)
[ -n "$line" ] || { echo "run.sh: README.md no longer gives the venv line" >&2; exit 1; }
readme=$build/python-readme
rm -rf "$readme" && mkdir -p "$readme" && ln -s "$src" "$readme/python"
(cd "$readme" && PATH=/usr/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1 sh -c "$line" >pip.log 2>&1) ||
    { cat "$readme/pip.log" >&2; echo "run.sh: README's line failed: $line" >&2; exit 1; }
"$build/rsrc" "$src/../models/kjv-tiny" -o "$readme/kjv.so" 2>/dev/null
out=$(cd "$readme" && .venv/bin/python -B -c 'import rsr; print(rsr.Model("kjv.so").complete("In the beginning", max_tokens=8))')
[ -n "$out" ] || { echo "run.sh: the README venv's rsr wrote nothing for the trained model" >&2; exit 1; }
echo "README's venv line installed rsr; the trained model continues 'In the beginning' with:$out"
rm -rf "$readme"

cd "$build"
RSR_BUILD=$build exec "$env/bin/python" -B -m pytest -q -p no:cacheprovider "$here" # -B: no __pycache__ in the source tree
