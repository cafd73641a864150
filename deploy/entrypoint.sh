#!/bin/sh
# The container's entry point (deploy/Dockerfile): rsr-serve with the arguments given; with
# MODEL_SOURCE set and the first argument a model.so that does not exist, rsrc compiles
# MODEL_SOURCE to it first (for this host's CPU, RSRC_TARGET to choose another).
set -eu
if [ -n "${MODEL_SOURCE:-}" ] && [ "$#" -gt 0 ] && [ ! -e "$1" ]; then
  echo "rsr-entrypoint: compiling $MODEL_SOURCE to $1" >&2
  rsrc "$MODEL_SOURCE" --target "${RSRC_TARGET:-host}" -o "$1"
fi
exec rsr-serve "$@"
