#!/usr/bin/env python3
"""deploy/haproxy.cfg and deploy/nginx.conf as the suite runs them: two rsr-serve replicas on
loopback behind each proxy (the files as they are, with the ports changed), REQUESTS streamed
completions from CLIENTS clients, and after a quarter of them one replica sent SIGTERM (it
drains: its running streams finish, new requests get 503, then it exits). Every request must
succeed through the proxy: 200, a stream that ends with [DONE], text in it; the replica sent SIGTERM must have served
requests and held some when it got it, the other must have served some too, and the 400
completion ids must all differ (random ids: two replicas never give the same one). Then the other
replica stops cleanly. A proxy that is not installed is skipped (both missing: exit 77, ctest's
skip), except where the suite installed them (RSRC_SETUP_TESTS=1: then it fails).
Usage: proxies.py BUILD_DIR MODEL.so [haproxy|nginx ...]"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REQUESTS, CLIENTS = 400, 16
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replica(serve, model, port, log):
    p = subprocess.Popen([serve, model, "--port", str(port), "--parallel", "4", "--ctx", "512", "--model-id", "kjv",
                          "--drain", "20"], stderr=open(log, "w"), start_new_session=True)
    for _ in range(300):
        if "listening on" in open(log).read():
            return p
        if p.poll() is not None:
            break
        time.sleep(0.1)
    sys.exit("proxies: a replica did not start: " + open(log).read())


def metric(port, name):
    """A replica's vllm: gauge or counter (the sum of its samples named so)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(m) for m in re.findall(r"^" + re.escape(name) + r"(?:\{[^}]*\})? (\S+)$", text, re.M))


def stream(url, i, ids):
    """None when the request succeeded through the proxy, else what went wrong; its id into ids."""
    body = {"prompt": f"{i % 30 + 1}:1 In the beginning", "max_tokens": 12, "temperature": 0, "stream": True}
    req = urllib.request.Request(url + "/v1/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            data = r.read().decode()
    except Exception as e:  # an HTTP error, a reset, a timeout: lost
        return f"{type(e).__name__}: {e}"
    events = [e[6:] for e in data.split("\n\n") if e.startswith("data: ")]
    if not events or events[-1] != "[DONE]":
        return "the stream did not end with [DONE]: " + data[-200:]
    if any('"error"' in e for e in events):
        return "an error event: " + data[-200:]
    chunks = [json.loads(e) for e in events[:-1] if e.startswith("{")]
    ids.update(c["id"] for c in chunks)
    text = "".join(c["choices"][0].get("text", "") for c in chunks)
    return None if text else "no text"


def start_proxy(kind, port, a, b, d):
    src = open(os.path.join(ROOT, "deploy", "haproxy.cfg" if kind == "haproxy" else "nginx.conf")).read()
    conf = src.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace("127.0.0.1:8081", f"127.0.0.1:{a}")
    conf = conf.replace("127.0.0.1:8082", f"127.0.0.1:{b}")
    assert conf.count(str(a)) == 1 and conf.count(str(b)) == 1, "the file names its two replicas"
    path = os.path.join(d, kind + ".conf")
    if kind == "nginx":  # its own files under d (as root: workers that can read them)
        conf = (("user root;\n" if os.getuid() == 0 else "") + f"pid {d}/nginx.pid;\nerror_log {d}/nginx.err;\n" +
                conf.replace("http {", f"http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n"
                             f"    proxy_temp_path {d}/proxy;\n", 1))
        open(path, "w").write(conf)
        cmd = [shutil.which("nginx") or "/usr/sbin/nginx", "-c", path, "-p", d, "-g", "daemon off;"]
    else:
        open(path, "w").write(conf)
        cmd = [shutil.which("haproxy"), "-f", path, "-db"]
    p = subprocess.Popen(cmd, stderr=open(os.path.join(d, kind + ".log"), "w"), start_new_session=True)
    STARTED.append(p)
    for _ in range(100):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return p
        except Exception:
            time.sleep(0.1)
    p.kill()
    sys.exit(f"proxies: {kind} did not start: " + open(os.path.join(d, kind + ".log")).read())


STARTED = []  # every process group started: killed at the end whatever happens (none outlives the test)


def run(kind, serve, model, d):
    a_port, b_port, port = free_port(), free_port(), free_port()
    a = replica(serve, model, a_port, os.path.join(d, kind + "-a.err"))
    STARTED.append(a)
    b = replica(serve, model, b_port, os.path.join(d, kind + "-b.err"))
    STARTED.append(b)
    proxy = start_proxy(kind, port, a_port, b_port, d)
    STARTED.append(proxy)
    url, lock, done, lost, ids, at_term = f"http://127.0.0.1:{port}", threading.Lock(), [0], [], set(), []
    quarter = threading.Event()

    def terminator():  # a quarter of the way, once replica a holds a request: it drains and exits
        quarter.wait()
        at_term[:] = [0, 0]
        try:
            held, until = 0, time.time() + 10
            while held == 0 and time.time() < until:
                time.sleep(0.01)
                held = metric(a_port, "vllm:num_requests_running") + metric(a_port, "vllm:num_requests_waiting")
            at_term[:] = [metric(a_port, "vllm:e2e_request_latency_seconds_count"), held]
        finally:
            a.send_signal(signal.SIGTERM)

    def client(k):
        for i in range(k, REQUESTS, CLIENTS):
            why = stream(url, i, ids)
            with lock:
                done[0] += 1
                if why:
                    lost.append(f"request {i}: {why}")
                if done[0] == REQUESTS // 4:  # three quarters left: on a loaded machine the rest can
                    quarter.set()  # finish within the terminator's wait from half

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)] + [threading.Thread(target=terminator)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a_status = a.wait(timeout=60)
    b_served = metric(b_port, "vllm:e2e_request_latency_seconds_count")
    b.send_signal(signal.SIGTERM)
    b_status = b.wait(timeout=60)
    proxy.terminate()
    proxy.wait(timeout=30)
    print(f"{kind}: {REQUESTS - len(lost)} of {REQUESTS} streamed requests succeeded, one replica sent SIGTERM "
          f"a quarter of the way (exit statuses {a_status}, {b_status})")
    print(f"{kind}: the drained replica had served {at_term[0]:.0f} and held {at_term[1]:.0f} when it got SIGTERM, "
          f"the other served {b_served:.0f}; {len(ids)} distinct completion ids")
    for why in lost[:10]:
        print("  " + why)
    spread = at_term[0] > 0 and at_term[1] > 0 and b_served > 0
    if not spread:
        print(f"  {kind}: the load did not reach both replicas, or the drained one was idle when it got SIGTERM")
    if len(ids) != REQUESTS:
        print(f"  {kind}: {REQUESTS - len(ids)} completion ids repeated")
    return not lost and a_status == 0 and b_status == 0 and spread and len(ids) == REQUESTS


def main():
    build, model = sys.argv[1], sys.argv[2]
    wanted = sys.argv[3:] or ["haproxy", "nginx"]
    kinds = [k for k in wanted if shutil.which(k) or (k == "nginx" and os.path.exists("/usr/sbin/nginx"))]
    if os.environ.get("RSRC_SETUP_TESTS") == "1" and kinds != wanted:
        sys.exit(f"proxies: {sorted(set(wanted) - set(kinds))} not installed, though scripts/setup.sh installs them")
    if not kinds:
        print("proxies: skipped: neither haproxy nor nginx is installed")
        sys.exit(77)
    d = tempfile.mkdtemp()
    try:
        ok = all([run(k, os.path.join(build, "rsr-serve"), model, d) for k in kinds])
    finally:
        for p in STARTED:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(d, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
