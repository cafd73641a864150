#!/usr/bin/env python3
"""rsr-serve --kv-events as llm-d's kvevents subscriber reads them: a ZeroMQ SUB socket
(python3-zmq) decoding each message's three frames (topic kv@POD@MODEL, an 8-byte big-endian
sequence, a msgpack payload [timestamp, [events]]: python3-msgpack) as vLLM's adapter does.

On one rsr-serve (2 slots, two API keys): a chat turn's BlockStored events hold token ids that
concatenate to its prompt's and reply's full blocks in order, each block's parent the previous
block's hash (the first none); the next turn, which shares that prefix, announces only its new
blocks, the first of them chained to the last block kept; the same prompt under another API key
is stored under other hashes; a cache taken by another conversation announces the BlockRemoved
of every block it held. Sequence numbers run on by one. Exits 77 without zmq or msgpack.
Usage: kv_events.py BUILD_DIR MODEL.so"""
import json
import os
import socket
import sys
import threading
import time
import urllib.request

from served import served

try:
    import msgpack
    import zmq
except ImportError:
    print("kv_events: skipped: no zmq or msgpack (Debian's python3-zmq, python3-msgpack)")
    sys.exit(77)

BLOCK = 16
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


class Subscriber:
    def __init__(self, endpoint):
        self.sock = zmq.Context().socket(zmq.SUB)
        self.sock.connect(endpoint)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"kv@")
        self.messages, self.lock = [], threading.Lock()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            topic, seq, payload = self.sock.recv_multipart()
            ts, events = msgpack.unpackb(payload, raw=False)[:2]
            with self.lock:
                self.messages.append((topic.decode(), int.from_bytes(seq, "big"), ts, events))

    def take(self, done, quiet=0.5, deadline=20):
        """The messages that came since the last take, once done(messages) holds and none came for
        `quiet` seconds (a loaded machine's publisher may lag), or at the deadline."""
        start, last, seen = time.monotonic(), time.monotonic(), -1
        while time.monotonic() - start < deadline:
            with self.lock:
                n, now = len(self.messages), list(self.messages)
            if n != seen:
                seen, last = n, time.monotonic()
            elif time.monotonic() - last > quiet and done(now):
                break
            time.sleep(0.05)
        with self.lock:
            out, self.messages = self.messages, []
        return out


def chat(url, messages, key):
    body = {"messages": messages, "max_tokens": 6, "temperature": 0, "return_token_ids": True}
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json", "Authorization": "Bearer " + key})
    r = json.load(urllib.request.urlopen(req))
    return r["choices"][0]["message"]["content"], r["prompt_token_ids"], r["choices"][0]["token_ids"]


def stored_of(messages):
    return [e for _, _, _, events in messages for e in events if e[0] == "BlockStored"]


def chained(stored, first_parent):
    """Every block's parent is the block before it; the first's is first_parent."""
    parent = first_parent
    for e in stored:
        if e[2] != parent:
            return False
        parent = e[1][-1]
    return True


def main():
    build, model = sys.argv[1], sys.argv[2]
    with socket.socket() as s, socket.socket() as r:
        s.bind(("127.0.0.1", 0)), r.bind(("127.0.0.1", 0))
        zport, rport = s.getsockname()[1], r.getsockname()[1]
    env = dict(os.environ, POD_NAME="pod-a")
    with served(build, model, "--parallel", "2", "--ctx", "512", "--model-id", "kjv", "--api-key", "k1", "--api-key",
                "k2", "--kv-events", f"tcp://*:{zport}", "--kv-events-replay", f"tcp://127.0.0.1:{rport}",
                env=env) as url:
        sub = Subscriber(f"tcp://127.0.0.1:{zport}")
        time.sleep(0.5)  # a SUB socket gets what is published after it joined
        got = run(url, sub)
        replayed(f"tcp://127.0.0.1:{rport}", got)
    sys.exit(1 if failures else 0)


def run(url, sub):
    first = [{"role": "user", "content": "Say the verse: In the beginning God created the heaven and the earth."}]
    reply, prompt, gen = chat(url, first, "k1")
    m1 = sub.take(lambda m: sum(len(e[3]) for e in stored_of(m)) >= len(prompt) // BLOCK * BLOCK)
    s1 = stored_of(m1)
    check(m1 and all(t == "kv@pod-a@kjv" for t, _, _, _ in m1), f"topic kv@pod-a@kjv ({m1[0][0] if m1 else None})")
    tokens = [t for e in s1 for t in e[3]]
    whole = (prompt + gen)[:len(tokens)]
    check(len(tokens) >= len(prompt) // BLOCK * BLOCK and len(tokens) % BLOCK == 0 and tokens == whole,
          f"turn 1: {len(tokens)} tokens stored in blocks of {BLOCK}: the prompt's ({len(prompt)}) and reply's, in order")
    check(all(e[4] == BLOCK and e[6] == "CPU" and len(e) == 8 for e in s1), "BlockStored: 8 fields, block size, medium")
    check(chained(s1, None), "turn 1: each block's parent the one before, the first's none")
    hashes1 = [h for e in s1 for h in e[1]]
    second = first + [{"role": "assistant", "content": reply}, {"role": "user", "content": "And the next verse?"}]
    _, prompt2, gen2 = chat(url, second, "k1")
    m2 = sub.take(lambda m: bool(stored_of(m)))
    s2 = stored_of(m2)
    hashes2 = [h for e in s2 for h in e[1]]
    removed2 = [h for _, _, _, events in m2 for e in events if e[0] == "BlockRemoved" for h in e[1]]
    kept = [h for h in hashes1 if h not in removed2]
    check(s2 and not set(hashes2) & set(kept) and chained(s2, kept[-1] if kept else None),
          f"turn 2: only its {len(hashes2)} new blocks stored, chained to the {len(kept)} kept")
    tokens2 = [t for e in s2 for t in e[3]]
    check(tokens2 == (prompt2 + gen2)[len(kept) * BLOCK:len(kept) * BLOCK + len(tokens2)],
          "turn 2: its new blocks' tokens follow the kept ones")
    _, prompt3, _ = chat(url, first, "k2")
    s3 = stored_of(sub.take(lambda m: bool(stored_of(m))))
    hashes3 = [h for e in s3 for h in e[1]]
    check(prompt3 == prompt and s3 and not set(hashes3) & set(hashes1 + hashes2),
          "another API key, the same prompt: other hashes")
    chat(url, [{"role": "user", "content": "Who was the father of Methuselah?"}], "k2")  # takes k1's cache (LRU)
    m4 = sub.take(lambda m: any(e[0] == "BlockRemoved" for _, _, _, events in m for e in events))
    removed4 = {h for _, _, _, events in m4 for e in events if e[0] == "BlockRemoved" for h in e[1]}
    check(removed4 == set(kept + hashes2), f"evicted: BlockRemoved of the {len(removed4)} blocks k1's cache held")
    got = m1 + m2 + m4
    seqs = [s for _, s, _, _ in got]
    check(seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "sequence numbers increase")
    metrics = urllib.request.urlopen(urllib.request.Request(url + "/metrics")).read().decode()
    check("rsr_kv_events_dropped_total 0" in metrics, "no message dropped")
    return got


def replayed(endpoint, got):
    """vLLM's replay: the start sequence asked on the replay socket, every kept message from there on
    as [sequence, payload], then an empty payload: here from 0, the AllBlocksCleared of the start
    that the subscriber joined too late for, then what it got."""
    sock = zmq.Context().socket(zmq.DEALER)
    sock.connect(endpoint)
    sock.send((0).to_bytes(8, "big"))
    out = []
    while sock.poll(5000):
        seq, payload = sock.recv_multipart()
        if not payload:
            break
        out.append((int.from_bytes(seq, "big"), msgpack.unpackb(payload, raw=False)[1]))
    first_ok = bool(out) and out[0][0] == 0 and out[0][1] == [["AllBlocksCleared"]]
    same = dict(out)
    check(first_ok and all(same.get(s) == e for _, s, _, e in got),
          f"replay from 0: {len(out)} messages, the start's AllBlocksCleared first, then what the subscriber got")


if __name__ == "__main__":
    main()
