#!/usr/bin/python3
"""embed_fair.py DIR (serve.sh's, holding url): the embeddings' thread, which also scores prompts
(echo with logprobs), shared fairly.

  many   a completions request scoring 64 prompts of 400 tokens, and while it runs a one-word
         /v1/embeddings request: whether the embedding came back in less than a quarter of the
         scoring's time ("embedding first True")
  long   the same with one prompt of 4000 tokens: the scoring takes turns by chunks of positions,
         not by whole prompts, so the embedding still comes back first
  two    two scorings sent at once, each with prompts of 300 tokens: their log-probabilities are
         those each gets alone ("same True"), though their turns interleave in the scorer"""
import json
import sys
import threading
import time
import urllib.request

url = open(sys.argv[1] + "/url").read().strip()


def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def scored(prompts):
    r = post("/v1/completions", {"prompt": prompts, "max_tokens": 0, "echo": True, "logprobs": 2})
    return [c["logprobs"]["token_logprobs"] for c in r["choices"]]


def beside(prompts, delay):
    """Whether a one-word embedding sent `delay` s into the scoring of prompts took less than a
    quarter of the scoring's time (waiting for the whole scoring, or for the prompt being scored,
    takes most of it)."""
    done = {}

    def score():
        t0 = time.time()
        n = len(scored(prompts))
        done["score"] = (time.time() - t0, n)

    t = threading.Thread(target=score)
    t.start()
    time.sleep(delay)
    t0 = time.time()
    e = post("/v1/embeddings", {"input": "hi"})
    took = time.time() - t0
    t.join()
    print("%.3f s beside a scoring of %.3f s" % (took, done["score"][0]), file=sys.stderr)
    print("embedding first", took * 4 < done["score"][0], "choices", done["score"][1],
          "dimensions", len(e["data"][0]["embedding"]) > 0)


mode = sys.argv[2]
if mode == "many":
    beside([[1 + (i * 7 + k) % 1000 for k in range(400)] for i in range(64)], 0.3)
elif mode == "long":
    beside([[1 + (k * 13) % 1000 for k in range(4000)]], 0.1)
elif mode == "two":
    a = [[1 + (i * 5 + k * 3) % 1000 for k in range(300)] for i in range(3)]
    b = [[1 + (i * 11 + k * 7) % 1000 for k in range(300)] for i in range(2)]
    alone = (scored(a), scored(b))
    got = {}
    ts = [threading.Thread(target=lambda k=k, p=p: got.__setitem__(k, scored(p))) for k, p in (("a", a), ("b", b))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("same", (got["a"], got["b"]) == alone, "choices", len(got["a"]), len(got["b"]))
