#!/bin/sh
# refused.sh SECONDS MB COMMAND...: succeeds when COMMAND fails by itself (a non-zero exit, not a
# signal) within SECONDS and with a peak resident size under MB; its output passes through. Where
# COMMAND hangs, grows or succeeds, says which and fails.
secs=$1 mb=$2
shift 2
measured=$(mktemp)
timeout "$secs" /usr/bin/time -f '%e %M' -o "$measured" "$@"
rc=$?
set -- $(tail -n 1 "$measured") # wall seconds, peak KB
rm -f "$measured"
if [ "$rc" -eq 124 ]; then
  echo "refused.sh: still running after $secs s" >&2
elif [ "$rc" -eq 0 ]; then
  echo "refused.sh: it succeeded" >&2
elif [ "$rc" -gt 128 ]; then
  echo "refused.sh: it ended with signal $((rc - 128))" >&2
elif [ "${2:-0}" -gt $((mb * 1024)) ]; then
  echo "refused.sh: its peak resident size was $2 KB, over $mb MB" >&2
else
  exit 0
fi
exit 1
