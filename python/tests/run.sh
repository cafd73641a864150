#!/bin/sh
# Installs the package offline into a fresh virtual environment (pip, no index, no build
# isolation: nothing but the standard library and the venv's setuptools) and runs its pytest tests
# there against BUILD_DIR's tools. Exits 77 (ctest: skipped) without Debian's python3-venv or
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
rm -rf "$env" "$build/python-src"
$py -m venv --system-site-packages "$env" # pytest from Debian; the package itself installed below
cp -r "$here/.." "$build/python-src" # pip builds in place: keep the source tree clean
"$env/bin/pip" install --quiet --no-index --no-build-isolation "$build/python-src"
cd "$build"
RSR_BUILD=$build exec "$env/bin/python" -B -m pytest -q -p no:cacheprovider "$here" # -B: no __pycache__ in the source tree
