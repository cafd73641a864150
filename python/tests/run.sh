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
cd "$build"
RSR_BUILD=$build exec "$env/bin/python" -B -m pytest -q -p no:cacheprovider "$here" # -B: no __pycache__ in the source tree
