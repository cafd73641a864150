#!/bin/sh
# with_hub.sh STATE COMMAND...: COMMAND with HF_ENDPOINT set to the fake_hub.py server started in STATE.
state=$1
shift
HF_ENDPOINT=$(cat "$state/url") exec "$@"
