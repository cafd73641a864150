#!/usr/bin/env python3
"""json_get.py PATH [PATH...]: prints the values at PATH (dot-separated keys and indices, e.g.
choices.0.text) of the JSON document on stdin, one per line, strings as they are (no newline
after the last), so that a test can compare a server's text with a program's output."""
import json
import sys

doc = json.load(sys.stdin)
out = []
for path in sys.argv[1:]:
    v = doc
    for key in path.split('.'):
        v = v[int(key)] if isinstance(v, list) else v[key]
    out.append(v if isinstance(v, str) else json.dumps(v))
sys.stdout.write('\n'.join(out))
