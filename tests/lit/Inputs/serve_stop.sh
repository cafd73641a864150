#!/bin/sh
# serve_stop.sh DIR [SIGNAL]: signals the server serve.sh started in DIR (TERM by default), waits
# up to 30 s for it to exit and prints its exit status.
dir=$1
kill -"${2:-TERM}" "$(cat "$dir/pid")"
i=0
while [ ! -f "$dir/status" ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
cat "$dir/status" 2>/dev/null || echo "still running"
