#!/usr/bin/env python3
"""json_get.py PATH [PATH...]: prints the values at PATH (dot-separated keys and indices, e.g.
choices.0.text) of the JSON document on stdin, one per line, strings as they are (no newline
after the last), so that a test can compare a server's text with a program's output. With --line
first, the output ends with one newline unless it already ends with one: what rsr-run prints
after a continuation."""
import json
import sys

doc = json.load(sys.stdin)
args = sys.argv[1:]
line = bool(args) and args[0] == '--line'
if line:
    args = args[1:]
out = []
for path in args:
    v = doc
    for key in path.split('.'):
        v = v[int(key)] if isinstance(v, list) else v[key]
    out.append(v if isinstance(v, str) else json.dumps(v))
text = '\n'.join(out)
sys.stdout.write(text + '\n' if line and not text.endswith('\n') else text)
