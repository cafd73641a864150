#!/usr/bin/env python3
# rsrc's embedding of a prompt (rsr-run --embed-raw, and --embed: unit length) beside upstream
# llama.cpp's (llama_embed.mjs) and the float64 reference's (qwen3_model.py reference: each
# position's final-normed hidden state, pooled here as POOLING says: 1 mean, 2 first, 3 last).
# Passes when rsrc's raw vector is within cosine distance 1e-3 of both and its length within 1% of
# theirs, and --embed is the same direction at unit length. LLAMA.json "-": the float reference
# alone (models upstream llama.cpp does not run: the BitNet embedding models' per-projection norms).
# Usage: compare_embed.py RAW.json UNIT.json LLAMA.json|- FLOAT.json POOLING NAME
import json
import math
import sys

raw, unit = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
llama = json.load(open(sys.argv[3]))['embedding'] if sys.argv[3] != '-' else None
hidden, pooling, name = json.load(open(sys.argv[4]))['hidden'], int(sys.argv[5]), sys.argv[6]
ref = [sum(c) / len(hidden) for c in zip(*hidden)] if pooling == 1 else hidden[0] if pooling == 2 else hidden[-1]


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))


bad = []
for who, v in (('llama.cpp', llama), ('the float reference', ref)):
    if v is None:
        continue
    c, r = cos(raw, v), norm(raw) / norm(v)
    print('%s: rsrc and %s: cosine %.6f, length ratio %.4f' % (name, who, c, r))
    if len(v) != len(raw) or c < 0.999 or abs(r - 1) > 0.01:
        bad.append(who)
print('%s: --embed has length %.7f, cosine %.7f with --embed-raw' % (name, norm(unit), cos(unit, raw)))
if abs(norm(unit) - 1) > 1e-5 or cos(unit, raw) < 1 - 1e-6:
    bad.append('--embed against --embed-raw')
if bad:
    sys.exit('%s: rsrc\'s embedding differs from %s' % (name, ', '.join(bad)))
