#!/bin/sh
# serve_curl.sh DIR PATH [curl options...]: curl -s on the server serve.sh started in DIR.
dir=$1 path=$2
shift 2
exec curl -s "$@" "$(cat "$dir/url")$path"
