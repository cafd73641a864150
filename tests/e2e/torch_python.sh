# torch_python.sh, sourced by the trained model's tests: py, a python3 that has torch, numpy and
# regex (the PATH's or Debian's), or the test is skipped (77). scripts/setup.sh installs them with
# RSRC_SETUP_TESTS=1.
py=
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import numpy, regex, torch' 2>/dev/null; then py=$p; break; fi
done
[ -n "$py" ] || { echo "skipped: no python3 with torch, numpy and regex (python3-torch, python3-numpy, python3-regex)"; exit 77; }
