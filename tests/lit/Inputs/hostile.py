#!/usr/bin/env python3
"""hostile.py DIR COMMAND [ARGS]: what an attacker or a careless client does to the rsr-serve that
Inputs/serve.sh started in DIR, each printing what it saw for FileCheck.

  slow N SECONDS        N connections from 127.0.0.1 trickle a request's headers a byte a second
                        while /health is asked from 127.0.0.2 (another client) at once and from
                        127.0.0.1 until it answers: the statuses and how long each took
  raw BYTES             BYTES (a Python literal) sent as they are; the status line of the reply
  bigbody               headers announcing a body of 10^10 bytes: the status and the time to it
  drain                 a stream running when the server gets SIGTERM: how it ended, and what a request
                        made during the drain got
  streams N             N streams opened and dropped after their first event
  signal NAME N         N streams running (or queued) when the server gets signal NAME: how many
                        ended with [DONE] (after their final chunk or an error event), and how many
                        were cut without one
  clients N SECONDS     N clients, each with one connection at a time (closed after every reply),
                        asking for completions back to back: replies with a status, and without
  beside BODY N ROUNDS  a request (BODY: a JSON file for /v1/completions, one whose grammar is slow
                        to mask) runs while another client makes N short completions one after the
                        other, with N on the idle server before and after it: the ratio of their
                        medians, whether the request ran through all of them, and how it ended; up to
                        ROUNDS rounds until one is within 2x (other processes' load is noise)
"""
import ast
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

server_dir = sys.argv[1]
url = open(os.path.join(server_dir, "url")).read().strip()
hostport = url.split("//", 1)[1]
host, port = hostport.rsplit(":", 1)
port = int(port)


def connect(source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect((host, port))
    return s


def ask(path, source="127.0.0.1", timeout=10.0):
    """GET path from the given source address: (status or 'refused'/'closed'/'timeout', seconds)."""
    t0 = time.time()
    try:
        s = connect(source)
    except OSError:
        return "refused", time.time() - t0
    s.settimeout(timeout)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path.encode())
        data = s.recv(4096)
        return (data.split(b" ")[1].decode() if data else "closed"), time.time() - t0
    except socket.timeout:
        return "timeout", time.time() - t0
    except OSError:
        return "closed", time.time() - t0
    finally:
        s.close()


def slow(n, seconds):
    conns, stop = [], threading.Event()
    for _ in range(n):
        try:
            s = connect()
            s.sendall(b"G")
            conns.append(s)
        except OSError:
            pass

    def trickle():
        while not stop.is_set():
            for s in conns:
                try:
                    s.send(b"E")
                except OSError:
                    pass
            time.sleep(1)

    threading.Thread(target=trickle, daemon=True).start()
    time.sleep(0.5)
    status, took = ask("/health", source="127.0.0.2")
    print("other client: %s within 2 s: %s" % (status, took < 2))
    t0 = time.time()
    while time.time() - t0 < seconds + 10:
        status, took = ask("/health", timeout=2)
        if status == "200":
            break
        time.sleep(0.25)
    print("same client: %s within %g s: %s" % (status, seconds + 3, time.time() - t0 < seconds + 3))
    stop.set()
    closed = told = 0
    for s in conns:  # each was told 408 (or refused at once over the per-client limit), then closed
        s.settimeout(0.2)
        got = b""
        try:
            while True:
                b = s.recv(4096)
                if not b:
                    closed += 1
                    break
                got += b
        except socket.timeout:
            pass
        except OSError:
            closed += 1
        told += got.startswith(b"HTTP/1.1 408")
    print("slow connections closed by the server: %s" % (closed == len(conns)))
    print("told 408: %s" % (told > 0))
    stop.set()


def raw(data):
    s = connect()
    s.settimeout(5)
    s.sendall(data)
    try:
        reply = s.recv(4096)
    except socket.timeout:
        reply = b"<nothing in 5 s>"
    print(reply.split(b"\r\n")[0].decode(errors="replace") if reply else "<closed>")


def bigbody():
    s = connect()
    s.settimeout(5)
    t0 = time.time()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000000\r\n\r\n{\"prompt\":")
    reply = s.recv(4096)
    print("%s within 1 s: %s" % (reply.split(b"\r\n")[0].decode(), time.time() - t0 < 1))


def stream(body, out):
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=60) as r:
        for line in r:
            out.append(line.decode().strip())


def drain():
    pid = int(open(os.path.join(server_dir, "pid")).read())
    events = []
    th = threading.Thread(target=stream, args=({"prompt": "hi", "max_tokens": 2000, "stream": True}, events))
    th.start()
    while len(events) < 4:
        time.sleep(0.01)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.2)
    try:
        urllib.request.urlopen(urllib.request.Request(url + "/v1/completions", data=b'{"prompt": "x"}'), timeout=10)
        print("during the drain: answered")
    except urllib.error.HTTPError as e:
        print("during the drain: %d %s" % (e.code, json.load(e)["error"]["message"]))
    except OSError as e:
        print("during the drain: %s" % e)
    th.join()
    data = [e[6:] for e in events if e.startswith("data: ")]
    print("stream ended with [DONE]: %s" % (data[-1] == "[DONE]"))
    last = json.loads(data[-2])
    print("finish_reason %s, %d tokens" % (last["choices"][0]["finish_reason"], last["usage"]["completion_tokens"]))


def streams(n):
    socks = []
    for _ in range(n):
        s = connect()
        body = b'{"prompt": "hi", "stream": true}'
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        socks.append(s)
    time.sleep(0.3)
    for s in socks:
        s.close()
    print("dropped %d streams" % n)


def post_closing(body, timeout):
    """POST body to /v1/completions on a connection of its own, asking it closed after the reply, and
    read until the server closes it: the bytes received (b"" when the connection failed)."""
    data = b""
    try:
        s = connect()
        s.settimeout(timeout)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
    except OSError:
        pass
    return data


def read_stream(out, i):
    out[i] = post_closing(b'{"prompt": "hi", "max_tokens": 3000, "stream": true}', 60)


def stop_signal(name, n):
    pid = int(open(os.path.join(server_dir, "pid")).read())
    out = [None] * n
    threads = [threading.Thread(target=read_stream, args=(out, i)) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    os.kill(pid, getattr(signal, name))
    for t in threads:
        t.join()
    done = cut = errors = 0
    for data in out:
        events = [l[6:] for l in data.decode(errors="replace").split("\n") if l.startswith("data: ")]
        if events and events[-1] == "[DONE]":
            done += 1
            errors += any('"error"' in e for e in events)
        else:
            cut += 1
    print("%s: %d of %d streams ended with [DONE] (%d after an error event), %d cut" % (name, done, n, errors, cut))


def clients(n, seconds):
    counts = {"status": 0, "none": 0}
    lock = threading.Lock()
    body = b'{"prompt": "hi", "max_tokens": 2}'

    def one():
        end = time.time() + seconds
        while time.time() < end:
            data = post_closing(body, 30)
            status = data.split(b" ")[1].decode() if data.startswith(b"HTTP/1.1 ") else None
            with lock:
                counts["status" if status else "none"] += 1
                if status:
                    counts[status] = counts.get(status, 0) + 1
            if status == "503":
                time.sleep(0.05)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("%d clients: %d requests without a status" % (n, counts["none"]))
    print("%d clients: 200 %d, 503 %d" % (n, counts.get("200", 0), counts.get("503", 0)))


def post(body, conn=None, timeout=120):
    """POST /v1/completions (on conn, kept open, or a connection of its own): (status, parsed reply,
    the time it ended)."""
    c = conn or http.client.HTTPConnection(host.strip("[]"), port, timeout=timeout)
    c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if not conn:
        c.close()
    return r.status, json.loads(data), time.time()


def beside(body_file, n, rounds):
    conn = http.client.HTTPConnection(host.strip("[]"), port, timeout=120)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    short = json.dumps({"prompt": "hi", "max_tokens": 16, "temperature": 0})

    def times():
        took = []
        for _ in range(n):
            t0 = time.time()
            status, reply, t1 = post(short, conn)
            assert status == 200 and reply["usage"]["completion_tokens"] == 16, reply
            took.append(t1 - t0)
        return took, t1

    def median(v):
        return sorted(v)[len(v) // 2]

    times()  # warm
    before, _ = times()
    for r in range(rounds):
        ended = {}

        def slow():
            ended["status"], ended["reply"], ended["t"] = post(open(body_file).read())

        th = threading.Thread(target=slow)
        th.start()
        t0 = time.time()
        while time.time() - t0 < 10 and "t" not in ended:  # until its slot is taken
            with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
                if b"rsr_active_sequences 1" in resp.read():
                    break
            time.sleep(0.01)
        time.sleep(0.2)
        loaded, last = times()
        th.join()
        after, _ = times()  # idle on both sides: drift in the machine's load weighs on both
        ratio = median(loaded) / median(before + after)
        print("round %d: median %.1f ms idle, %.1f ms beside it (longest %.1f ms): %.2fx" %
              (r + 1, median(before + after) * 1e3, median(loaded) * 1e3, max(loaded) * 1e3, ratio), file=sys.stderr)
        if ratio <= 2 and ended["t"] > last:
            break
        before = after
    print("within 2x: %s" % (ratio <= 2))
    print("it ran through them: %s" % (ended["t"] > last))
    e = ended["reply"].get("error", {})
    print("it ended %d %s: %s" % (ended["status"], e.get("param"), e.get("message")))


cmd, args = sys.argv[2], sys.argv[3:]
if cmd == "slow":
    slow(int(args[0]), float(args[1]))
elif cmd == "raw":
    raw(ast.literal_eval(args[0]))
elif cmd == "bigbody":
    bigbody()
elif cmd == "drain":
    drain()
elif cmd == "streams":
    streams(int(args[0]))
elif cmd == "signal":
    stop_signal(args[0], int(args[1]))
elif cmd == "clients":
    clients(int(args[0]), float(args[1]))
elif cmd == "beside":
    beside(args[0], int(args[1]), int(args[2]))
