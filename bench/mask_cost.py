#!/usr/bin/env python3
"""What structured output's mask costs a token: the same completion (prompt, seed, temperature,
max_tokens) with a JSON schema, with a GBNF grammar and with neither, ROUNDS times each, in turn;
prints the median engine time a token of each (rsr_busy_seconds_total: the steps and the masks,
not HTTP), the mask's part (constrained less plain; and as the server counts it, where its
/metrics has rsr_mask_seconds_total), and a digest of each reply's text so that two servers'
replies can be compared (the mask must not change a token). Stdlib only; run the server with one
slot (rsr-serve --parallel 1) and nothing else asking.
Usage: mask_cost.py URL [--rounds 5] [--max-tokens 48]"""
import argparse
import hashlib
import http.client
import json
import statistics
import time
import urllib.parse

SCHEMA = {"type": "object", "required": ["name", "age", "tags"],
          "properties": {"name": {"type": "string", "maxLength": 40}, "age": {"type": "integer"},
                         "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 6}}}
GRAMMAR = 'root ::= sentence (" " sentence){0,5}\nsentence ::= word (" " word){1,8} "."\nword ::= [a-z]{1,12}'


def seconds(url):
    """rsr_busy_seconds_total and rsr_mask_seconds_total (None where the server has none)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request('GET', '/metrics')
    got = {}
    for line in conn.getresponse().read().decode().splitlines():
        for name in ('rsr_busy_seconds_total', 'rsr_mask_seconds_total'):
            if line.startswith(name + ' '):
                got[name] = float(line.split()[1])
    if 'rsr_busy_seconds_total' not in got:
        raise SystemExit('no rsr_busy_seconds_total in /metrics')
    return got['rsr_busy_seconds_total'], got.get('rsr_mask_seconds_total')


def post(url, body):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    t0 = time.monotonic()
    conn.request('POST', '/v1/completions', json.dumps(body), {'Content-Type': 'application/json'})
    r = conn.getresponse()
    data = json.loads(r.read())
    took = time.monotonic() - t0
    if r.status != 200:
        raise SystemExit(f'HTTP {r.status}: {data}')
    return took, data['usage']['completion_tokens'], data['choices'][0]['text']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('url')
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--max-tokens', type=int, default=48)
    a = ap.parse_args()
    base = {'prompt': 'Describe a person.', 'max_tokens': a.max_tokens, 'temperature': 0.8, 'seed': 7}
    kinds = {'plain': {}, 'json_schema': {'response_format': {'type': 'json_schema',
                                                              'json_schema': {'schema': SCHEMA}}},
             'grammar': {'grammar': GRAMMAR}}
    per_token, masked, digest = {k: [] for k in kinds}, {k: [] for k in kinds}, {}
    post(a.url, base)  # warm
    for _ in range(a.rounds):
        for k, extra in kinds.items():
            b0, m0 = seconds(a.url)
            _, n, text = post(a.url, {**base, **extra})
            b1, m1 = seconds(a.url)
            per_token[k].append((b1 - b0) / max(n, 1) * 1e3)
            if m0 is not None:
                masked[k].append((m1 - m0) / max(n, 1) * 1e3)
            digest[k] = '%d tokens, text %s' % (n, hashlib.sha256(text.encode()).hexdigest()[:16])
    plain = statistics.median(per_token['plain'])
    for k in kinds:
        m = statistics.median(per_token[k])
        counted = ', counted %.2f ms' % statistics.median(masked[k]) if masked[k] else ''
        print('%-12s %7.2f ms a token (mask %+.2f ms%s)  %s' % (k, m, m - plain, counted, digest[k]))


main()
