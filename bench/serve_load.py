#!/usr/bin/env python3
"""A bounded load on rsr-serve: CLIENTS concurrent clients, each sending REQUESTS streaming
completions one after another (stdlib only; loopback). Prints requests/s, aggregate generated
tokens/s, and the p50/p99 of the time to first token and of the time between tokens. It prints,
never asserts, times.
Usage: serve_load.py URL [--clients 32] [--requests 8] [--max-tokens 64] [--prompt TEXT]"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse


def one(url, body, out):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    t0 = time.monotonic()
    conn.request('POST', '/v1/completions', json.dumps(body), {'Content-Type': 'application/json'})
    r = conn.getresponse()
    if r.status != 200:
        out.append(('error', r.status))
        r.read()
        return
    stamps, buf = [], b''
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b'\n\n' in buf:
            event, buf = buf.split(b'\n\n', 1)
            if event.startswith(b'data: {'):
                data = json.loads(event[6:])
                if data['choices'][0].get('text'):
                    stamps.append(time.monotonic())
    conn.close()
    out.append(('ok', t0, stamps, time.monotonic()))


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))] if v else float('nan')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('url')
    ap.add_argument('--clients', type=int, default=32)
    ap.add_argument('--requests', type=int, default=8)
    ap.add_argument('--max-tokens', type=int, default=64)
    ap.add_argument('--prompt', default='Once upon a time')
    a = ap.parse_args()
    results, lock = [], threading.Lock()

    def client(c):
        for i in range(a.requests):
            out = []
            one(a.url, {'prompt': a.prompt, 'max_tokens': a.max_tokens, 'temperature': 0.8, 'seed': c * 1000 + i,
                        'stream': True}, out)
            with lock:
                results.extend(out)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    ok = [r for r in results if r[0] == 'ok']
    ttft = [r[2][0] - r[1] for r in ok if r[2]]
    gaps = [b - a_ for r in ok for a_, b in zip(r[2], r[2][1:])]
    tokens = sum(len(r[2]) for r in ok)
    print(f'{a.clients} clients x {a.requests} requests, max_tokens {a.max_tokens}: {len(ok)} completed, '
          f'{len(results) - len(ok)} errors in {wall:.1f} s')
    print(f'requests/s {len(ok) / wall:.2f}; generated tokens/s {tokens / wall:.1f} (text events; a token '
          f'held back for a stop string or a split character arrives with the next)')
    print(f'time to first token p50 {pct(ttft, 50) * 1e3:.0f} ms, p99 {pct(ttft, 99) * 1e3:.0f} ms; '
          f'between tokens p50 {pct(gaps, 50) * 1e3:.1f} ms, p99 {pct(gaps, 99) * 1e3:.1f} ms')


if __name__ == '__main__':
    main()
