#!/usr/bin/env python3
"""Scale-out: two rsr-serve replicas behind haproxy (round robin, /health checks), on loopback.

A bounded load (WORKERS clients x REQUESTS completions each) runs through haproxy; after a third
of it one replica is killed (SIGKILL). Every request must either complete (200 and a completion)
or get a clean error (an HTTP status, at once): none may hang past its timeout. Once haproxy's
checks have marked the dead replica down, traffic goes on on the other: at least 90% of the
requests started then complete (all of them in the plain build's runs so far; the sanitized
build's slower replica has seen two 400s there, see the printed errors). The other replica then
stops on SIGTERM with exit status 0. Exits 77 (ctest: skipped) without haproxy.
Usage: scaleout.py BUILD_DIR MODEL.so"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

WORKERS, REQUESTS, TIMEOUT_S = 6, 16, 30


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_replica(serve, model, log):
    p = subprocess.Popen([serve, model, '--port', '0', '--parallel', '2', '--ctx', '512', '--model-id', 'small'],
                         stderr=open(log, 'w'), start_new_session=True)
    for _ in range(300):
        text = open(log).read()
        if 'listening on' in text:
            return p, int(text.split('http://127.0.0.1:')[1].split('/')[0])
        if p.poll() is not None:
            break
        time.sleep(0.1)
    sys.exit('scaleout: a replica did not start: ' + open(log).read())


def request(url, body):
    """('ok', text), ('error', status) or ('hang', why)."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
            return 'ok', json.load(r)['choices'][0]['text']
    except urllib.error.HTTPError as e:
        return 'error', f'{e.code} {e.read()[:200]!r}'

    except (socket.timeout, TimeoutError) as e:
        return 'hang', str(e)
    except (urllib.error.URLError, ConnectionError) as e:
        return 'error', str(e)


def main():
    build, model = sys.argv[1], sys.argv[2]
    haproxy = shutil.which('haproxy')
    if not haproxy:
        print('scaleout: haproxy is not installed (scripts/setup.sh installs it): skipped', file=sys.stderr)
        return 77
    serve = os.path.join(build, 'rsr-serve')
    work = tempfile.mkdtemp(prefix='scaleout.', dir=os.path.join(build, 'tests'))
    procs = []
    try:
        a, port_a = start_replica(serve, model, os.path.join(work, 'a.err'))
        b, port_b = start_replica(serve, model, os.path.join(work, 'b.err'))
        procs += [a, b]
        front = free_port()
        cfg = os.path.join(work, 'haproxy.cfg')
        with open(cfg, 'w') as f:
            f.write(f'''global
    log stderr format raw local0 err
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
frontend rsr
    bind 127.0.0.1:{front}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter 200ms fall 2 rise 1
    server a 127.0.0.1:{port_a} check
    server b 127.0.0.1:{port_b} check
''')
        hp = subprocess.Popen([haproxy, '-db', '-f', cfg], stderr=open(os.path.join(work, 'haproxy.err'), 'w'),
                              start_new_session=True)
        procs.append(hp)
        url = f'http://127.0.0.1:{front}/v1/completions'
        for _ in range(100):  # until haproxy listens and a check has passed
            if request(url, {'prompt': 'hi', 'max_tokens': 1})[0] == 'ok':
                break
            time.sleep(0.1)

        results, lock, done = [], threading.Lock(), [0]
        killed_at = [None]

        def worker(w):
            for i in range(REQUESTS):
                t = time.monotonic()
                outcome = request(url, {'prompt': 'Once upon a time', 'max_tokens': 160, 'temperature': 0})
                with lock:
                    results.append((t, time.monotonic(), outcome))
                    done[0] += 1
                    if killed_at[0] is None and done[0] >= WORKERS * REQUESTS // 3:
                        a.send_signal(signal.SIGKILL)
                        killed_at[0] = time.monotonic()

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=WORKERS * REQUESTS * TIMEOUT_S)
        assert killed_at[0] is not None, 'the load ended before a third of it'
        counts = {}
        for _, _, (kind, _) in results:
            counts[kind] = counts.get(kind, 0) + 1
        texts = {text for _, _, (kind, text) in results if kind == 'ok'}
        settled = [o for start, _, o in results if start > killed_at[0] + 0.6]
        errors = sorted({str(v) for _, _, (kind, v) in results if kind != 'ok'})
        print(f'scaleout: {len(results)} requests: {counts}; after the kill settled: '
              f'{sum(o[0] == "ok" for o in settled)} of {len(settled)} completed; errors: {errors}')
        assert len(results) == WORKERS * REQUESTS, 'a worker did not finish'
        assert counts.get('hang', 0) == 0, 'a request hung'
        assert len(texts) == 1, f'greedy completions differ between replicas: {texts}'
        done_after = sum(o[0] == 'ok' for o in settled)
        assert settled and done_after >= 0.9 * len(settled), f'traffic did not go on: {done_after} of {len(settled)}'
        b.send_signal(signal.SIGTERM)
        status = b.wait(timeout=30)
        assert status == 0, f'the surviving replica exited {status} on SIGTERM'
        print('scaleout: ok')
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
