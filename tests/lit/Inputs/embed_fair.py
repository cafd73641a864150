#!/usr/bin/python3
"""embed_fair.py DIR (serve.sh's, holding url): a completions request scoring many long prompts (echo with logprobs: the
embeddings' thread computes it), then, while it runs, a one-word /v1/embeddings request. Prints
whether the embedding came back before the scoring did ("embedding first True"), which sharing the
thread by inputs gives; first come first served kept it waiting for the whole scoring."""
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


done = {}


def score():
    prompts = [[1 + (i * 7 + k) % 1000 for k in range(400)] for i in range(64)]
    r = post("/v1/completions", {"prompt": prompts, "max_tokens": 0, "echo": True, "logprobs": 1})
    done["score"] = (time.time(), len(r["choices"]))


t = threading.Thread(target=score)
t.start()
time.sleep(0.5)
e = post("/v1/embeddings", {"input": "hi"})
done["embed"] = time.time()
t.join()
print("embedding first", done["embed"] < done["score"][0], "choices", done["score"][1],
      "dimensions", len(e["data"][0]["embedding"]) > 0)
