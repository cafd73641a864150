#!/usr/bin/env python3
"""heavy_bodies.py MODEL.so [--serve PATH] [--rounds N] [--probes N] [--kinds a,b,...]

Another client's latency while one client sends the costliest bodies rsr-serve accepts at its
defaults (no flags but --chat-template-file, so that tools render). For each kind of heavy body,
rounds alternate an idle window and a loaded one (the heavy client sending its body back to back);
each window times --probes short requests of the other client. Prints, per kind, the median probe
latency idle and loaded, their ratio (the bar: within 2x), how many heavy requests ran and what
they got. Medians over all rounds; the machine's noise weighs on both sides alike.

Kinds (each a variant of a body that once stalled every client):
  kwargs      chat_template_kwargs of 17 objects of 4000 keys (68,000 keys, ~1 MB)
  tool-args   an assistant turn whose call's arguments are an object of 55,000 keys
  tools       900 tools whose descriptions render to a prompt far past the context (refused for
              its length after it is encoded: 300,000 tokens and more)
  grammar     a completions list of 64 prompts (what the default --parallel and --queue take)
              sharing one JSON schema
  list        the same list without the schema: model work that continuous batching shares with
              the probe (64 requests' worth; no bar), the measure the grammar's cost is read against
  echo        completions with echo and logprobs over 60 prompts of 480 token ids (scored on the
              embeddings' thread)
  echo-embed  the same, with a one-word /v1/embeddings request as the probe: it waits for the
              turn being computed (SCORE_CHUNK positions of a prompt; no bar)
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def heavy_body(kind):
    """(path, body) of one heavy request of the given kind."""
    user = [{"role": "user", "content": "hello"}]
    if kind == "kwargs":
        kw = {"o%d" % j: {"k%d" % i: i for i in range(4000)} for j in range(17)}
        return "/v1/chat/completions", {"messages": user, "max_tokens": 1, "chat_template_kwargs": kw}
    if kind == "tool-args":
        args = json.dumps({"a%d" % i: i for i in range(55000)})
        call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": args}}
        msgs = user + [{"role": "assistant", "content": "", "tool_calls": [call]},
                       {"role": "tool", "tool_call_id": "c1", "content": "ok"}]
        tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        return "/v1/chat/completions", {"messages": msgs, "tools": [tool], "max_tokens": 1}
    if kind == "tools":
        desc = "lorem ipsum dolor sit amet " * 35
        tools = [{"type": "function", "function": {"name": "f%d" % i, "description": desc,
                                                    "parameters": {"type": "object"}}} for i in range(900)]
        return "/v1/chat/completions", {"messages": user, "tools": tools, "max_tokens": 1}
    if kind in ("grammar", "list"):
        schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                  "required": ["a", "b"]}
        body = {"prompt": ["p%d" % i for i in range(64)], "max_tokens": 1}
        if kind == "grammar":
            body["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
        return "/v1/completions", body
    if kind in ("echo", "echo-embed"):
        return "/v1/completions", {"prompt": [[(i * 7 + j) % 200 + 10 for i in range(480)] for j in range(60)],
                                   "max_tokens": 0, "echo": True, "logprobs": 1}
    raise SystemExit("heavy_bodies.py: unknown kind '%s' (kwargs, tool-args, tools, grammar, list, echo, echo-embed)" % kind)


class Server:
    def __init__(self, serve, model, template):
        self.dir = tempfile.mkdtemp(prefix="heavy-bodies-")
        self.err = open(os.path.join(self.dir, "serve.err"), "w+")
        self.proc = subprocess.Popen([serve, model, "--port", "0", "--chat-template-file", template],
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        for _ in range(600):
            self.err.seek(0)
            text = self.err.read()
            if "listening on" in text:
                hostport = text.split("listening on http://", 1)[1].split("/", 1)[0]
                self.host, port = hostport.rsplit(":", 1)
                self.port = int(port)
                return
            if self.proc.poll() is not None:
                raise SystemExit("heavy_bodies.py: rsr-serve did not start:\n" + text)
            time.sleep(0.1)
        raise SystemExit("heavy_bodies.py: rsr-serve did not start in 60 s")

    def post(self, path, body, conn=None):
        c = conn or http.client.HTTPConnection(self.host, self.port, timeout=600)
        c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        if not conn:
            c.close()
        return r.status, data

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def measure(sv, kind, rounds, probes):
    path, body = heavy_body(kind)
    heavy = json.dumps(body, separators=(",", ":")).encode()
    if kind == "echo-embed":
        ppath, probe = "/v1/embeddings", json.dumps({"input": "hello"})
    else:
        ppath, probe = "/v1/chat/completions", json.dumps(
            {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8, "temperature": 0})
    def window(until=None):
        """probes timed one after the other, on a connection kept open for the window: at least
        `probes`, and while until() is false"""
        conn = http.client.HTTPConnection(sv.host, sv.port, timeout=600)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        took = []
        while len(took) < probes or (until and not until()):
            t0 = time.perf_counter()
            status, data = sv.post(ppath, probe, conn)
            took.append(time.perf_counter() - t0)
            if status != 200:
                raise SystemExit("heavy_bodies.py: the probe got %d: %s" % (status, data[:300]))
        conn.close()
        return took

    window()  # warm
    idle, loaded, statuses, heavy_s = [], [], {}, []
    for _ in range(rounds):
        idle += window()
        stop = threading.Event()
        started = threading.Event()

        def hammer():
            while not stop.is_set():
                started.set()
                t0 = time.perf_counter()
                try:
                    status, data = sv.post(path, heavy)
                except OSError as e:  # refused before the body was sent whole
                    status, data = 0, json.dumps({"error": {"message": str(e)}}).encode()
                heavy_s.append(time.perf_counter() - t0)
                key = "%d" % status
                if status != 200:
                    try:
                        key += " " + json.loads(data)["error"]["message"][:60]
                    except (ValueError, KeyError):
                        pass
                statuses[key] = statuses.get(key, 0) + 1

        th = threading.Thread(target=hammer)
        th.start()
        started.wait()
        time.sleep(0.05)
        first, t0 = len(heavy_s), time.time()
        # beside two whole heavy requests, or 15 s of one
        loaded += window(lambda: len(heavy_s) >= first + 2 or time.time() - t0 > 15)
        stop.set()
        th.join()
    return idle, loaded, statuses, heavy_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", help="a compiled model (MODEL.so) with a tokenizer")
    ap.add_argument("--serve", default=os.path.join(ROOT, "build", "rsr-serve"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--probes", type=int, default=9)
    ap.add_argument("--kinds", default="kwargs,tool-args,tools,grammar,list,echo,echo-embed")
    ap.add_argument("--template", default=os.path.join(ROOT, "tests", "lit", "Inputs", "tools_hermes.jinja"))
    a = ap.parse_args()
    kinds = a.kinds.split(",")
    for k in kinds:
        heavy_body(k)  # an unknown kind is refused before the server starts
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print("# %s, %d CPUs; rsr-serve at its defaults, %d rounds x %d probes" % (cpu, os.cpu_count(), a.rounds,
                                                                             a.probes))
    print("%-10s %10s %10s %7s %7s %9s  %s" % ("kind", "idle ms", "loaded ms", "ratio", "heavy", "heavy ms",
                                               "heavy replies"))
    sv = Server(a.serve, a.model, a.template)
    try:
        for k in kinds:
            idle, loaded, statuses, heavy_s = measure(sv, k, a.rounds, a.probes)
            mi, ml = median(idle), median(loaded)
            print("%-10s %10.1f %10.1f %6.2fx %7d %9.0f  %s" % (
                k, mi * 1e3, ml * 1e3, ml / mi, len(heavy_s), median(heavy_s) * 1e3 if heavy_s else 0,
                ", ".join("%s x%d" % (s, n) for s, n in sorted(statuses.items()))), flush=True)
    finally:
        sv.stop()


if __name__ == "__main__":
    main()
