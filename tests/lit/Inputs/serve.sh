#!/bin/sh
# serve.sh DIR MODEL.so [rsr-serve options...]: starts rsr-serve on a free loopback port (--port 0)
# in the background, waits until it listens, and leaves DIR/url (http://127.0.0.1:PORT), DIR/pid
# and DIR/serve.err. The server stops itself after 300 s (timeout) should a test not stop it.
# Stop it with: kill $(cat DIR/pid); the tests then wait for its exit status.
set -eu
dir=$1 model=$2
shift 2
mkdir -p "$dir"
rm -f "$dir/url" "$dir/pid" "$dir/serve.err" "$dir/status"
# a session of its own (setsid): the test runner ends the process group of each command it ran
setsid sh -c 'dir=$1; shift; timeout 300 "$RSR_SERVE" "$@" 2>"$dir/serve.err"; echo $? >"$dir/status"' \
    serve "$dir" "$model" --port 0 "$@" </dev/null >/dev/null 2>&1 &
i=0
while ! grep -q "listening on" "$dir/serve.err" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 300 ] || [ -f "$dir/status" ]; then
        echo "serve.sh: rsr-serve did not start:" >&2
        cat "$dir/serve.err" >&2
        exit 1
    fi
    sleep 0.1
done
sed -n 's|.*listening on \(http://[][0-9a-f.:]*\)/.*|\1|p' "$dir/serve.err" >"$dir/url"
sed -n 's|.*pid \([0-9]*\)).*|\1|p' "$dir/serve.err" >"$dir/pid"
