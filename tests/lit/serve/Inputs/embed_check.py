#!/usr/bin/env python3
"""embed_check.py COMMAND ...: checks of rsr-serve's /v1/embeddings replies (lit serve/embeddings).
A vector is named FILE (the reply's data[0]) or FILE:I (its data[I]); vectors are compared as
float32, bit for bit.

    shape FILE N H           the reply is OpenAI's: a list of N embeddings of H floats, in order
    unit FILE                every vector has unit length (within 1e-5)
    same A B                 vector A is vector B
    differ A B               vector A is not vector B
    base64 FILE FLOATS       FILE's base64 vectors are FLOATS's float vectors
    run VECTOR OUT           the vector is the JSON array rsr-run --embed printed into OUT
    request FILE [FILE...]   the token ids of /tokenize replies as an embeddings request: one list
                             of ids, or with several files a list of lists
"""
import base64
import json
import math
import struct
import sys


def reply(path):
    with open(path) as f:
        return json.load(f)


def f32(values):
    return [struct.unpack("<f", struct.pack("<f", v))[0] for v in values]


def vector(name):
    path, _, index = name.partition(":")
    item = reply(path)["data"][int(index or 0)]
    assert isinstance(item["embedding"], list), (name, "not a float vector")
    return f32(item["embedding"])


def main(cmd, *args):
    if cmd == "shape":
        r, n, h = reply(args[0]), int(args[1]), int(args[2])
        assert r["object"] == "list" and isinstance(r["model"], str), r.keys()
        assert len(r["data"]) == n, len(r["data"])
        for i, d in enumerate(r["data"]):
            assert d["object"] == "embedding" and d["index"] == i, d.keys()
            assert len(d["embedding"]) == h and all(isinstance(x, float) for x in d["embedding"]), i
        u = r["usage"]
        assert u["prompt_tokens"] == u["total_tokens"] >= n, u
        print("shape", n, h, "tokens", u["prompt_tokens"])
    elif cmd == "unit":
        for i, d in enumerate(reply(args[0])["data"]):
            norm = math.sqrt(math.fsum(x * x for x in d["embedding"]))
            assert abs(norm - 1) < 1e-5, (i, norm)
        print("unit")
    elif cmd in ("same", "differ"):
        a, b = vector(args[0]), vector(args[1])
        assert (a == b) == (cmd == "same"), (args, [i for i, (x, y) in enumerate(zip(a, b)) if x != y][:8])
        print(cmd)
    elif cmd == "base64":
        packed, floats = reply(args[0])["data"], reply(args[1])["data"]
        assert len(packed) == len(floats)
        for p, f in zip(packed, floats):
            raw = base64.b64decode(p["embedding"], validate=True)
            got = list(struct.unpack("<%df" % (len(raw) // 4), raw))
            assert len(raw) == 4 * len(f["embedding"]) and got == f32(f["embedding"]), p["index"]
        print("base64")
    elif cmd == "run":
        with open(args[1]) as f:
            want = f32(json.load(f))
        assert vector(args[0]) == want
        print("rsr-run")
    elif cmd == "request":
        ids = [reply(p)["tokens"] for p in args]
        print(json.dumps({"input": ids[0] if len(ids) == 1 else ids}))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(*sys.argv[1:])
