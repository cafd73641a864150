# python.sh, sourced by the float references' tests: py, a python3 that has numpy (the PATH's, else
# Debian's: scripts/setup.sh installs python3-numpy with RSRC_SETUP_TESTS=1), through which the
# references' float64 matrix products run 10x faster (qwen3_model.matvec); without one, the PATH's
# python3 and the references' own loops.
py=python3
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import numpy' 2>/dev/null; then py=$p; break; fi
done
