#!/usr/bin/env python3
# rsrc's embedding of a prompt (rsr-run --embed-raw, and --embed: unit length) beside the float64
# reference's alone (qwen3_model.py reference: each position's final-normed hidden state, pooled
# here as POOLING says: 1 mean, 2 first, 3 last), for models upstream llama.cpp does not run (the
# BitNet embedding models' per-projection norms). Passes when the raw vector is within cosine
# distance 1e-3 of the reference's and its length within 1%, and --embed is the same direction at
# unit length.
# Usage: compare_embed_float.py RAW.json UNIT.json FLOAT.json POOLING NAME
import json
import math
import sys

raw, unit = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
hidden, pooling, name = json.load(open(sys.argv[3]))['hidden'], int(sys.argv[4]), sys.argv[5]
ref = [sum(c) / len(hidden) for c in zip(*hidden)] if pooling == 1 else hidden[0] if pooling == 2 else hidden[-1]


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))


bad = []
c, r = cos(raw, ref), norm(raw) / norm(ref)
print('%s: rsrc and the float reference: cosine %.6f, length ratio %.4f' % (name, c, r))
if len(ref) != len(raw) or c < 0.999 or abs(r - 1) > 0.01:
    bad.append('the float reference')
print('%s: --embed has length %.7f, cosine %.7f with --embed-raw' % (name, norm(unit), cos(unit, raw)))
if abs(norm(unit) - 1) > 1e-5 or cos(unit, raw) < 1 - 1e-6:
    bad.append('--embed against --embed-raw')
if bad:
    sys.exit('%s: rsrc\'s embedding differs from %s' % (name, ', '.join(bad)))
