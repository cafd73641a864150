#!/usr/bin/env python3
"""Prefix reuse, measured as a chat app meets it: a scripted chat of TURNS turns whose history
grows to about HISTORY tokens, then the last turn's time to first token with the cache (the
server's default) and with "cache_prompt": false, alternating, ROUNDS times each; prints the
medians and their ratio, and checks that both give the same text. Stdlib only; the server must
run with one slot per chat (rsr-serve --parallel 1 is enough).
Usage: prefix_ttft.py URL [--turns 10] [--history 2000] [--rounds 5] [--max-tokens 16]"""
import argparse
import http.client
import json
import statistics
import time
import urllib.parse


def post(url, path, body):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    conn.request('POST', path, json.dumps(body), {'Content-Type': 'application/json'})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f'{path}: HTTP {r.status}: {data[:300]!r}')
    return json.loads(data)


def ttft(url, messages, max_tokens, cache):
    """Seconds to the first streamed token, and the whole reply's text."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = {'messages': messages, 'max_tokens': max_tokens, 'temperature': 0, 'stream': True, 'cache_prompt': cache}
    t0 = time.monotonic()
    conn.request('POST', '/v1/chat/completions', json.dumps(body), {'Content-Type': 'application/json'})
    r = conn.getresponse()
    first, text, buf = None, [], b''
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b'\n\n' in buf:
            event, buf = buf.split(b'\n\n', 1)
            if not event.startswith(b'data: {'):
                continue
            delta = json.loads(event[6:])['choices'][0]['delta'].get('content')
            if delta:
                first = first or time.monotonic() - t0
                text.append(delta)
    return first if first is not None else time.monotonic() - t0, ''.join(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('url')
    ap.add_argument('--turns', type=int, default=10)
    ap.add_argument('--history', type=int, default=2000, help='tokens of history before the last turn')
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--max-tokens', type=int, default=16)
    a = ap.parse_args()
    words = 'the river ran past the old mill where a cat slept in the sun and dreamed of fish'.split()
    per_turn = a.history // (2 * (a.turns - 1))  # tokens each user message and reply add, roughly
    per_word = len(post(a.url, '/tokenize', {'content': ' ' + ' '.join(words)})['tokens']) / len(words)
    messages = []
    for t in range(a.turns - 1):  # the history: user messages of about per_turn tokens, and replies
        text = ' '.join(words[(t + i) % len(words)] for i in range(int(per_turn / per_word)))
        messages.append({'role': 'user', 'content': f'Turn {t + 1}: {text}'})
        reply = post(a.url, '/v1/chat/completions', {'messages': messages, 'max_tokens': per_turn, 'temperature': 0})['choices'][0]['message']['content']
        messages.append({'role': 'assistant', 'content': reply})
    messages.append({'role': 'user', 'content': f'Turn {a.turns}: and what happened next?'})
    n = len(post(a.url, '/tokenize', {'content': post(a.url, '/apply-template', {'messages': messages})['prompt'],
                                      'parse_special': True})['tokens'])
    ttft(a.url, messages, a.max_tokens, True)  # warm: the cache now holds this chat
    cached, fresh, texts = [], [], set()
    for _ in range(a.rounds):  # alternating
        s, t1 = ttft(a.url, messages, a.max_tokens, True)
        cached.append(s)
        s, t2 = ttft(a.url, messages, a.max_tokens, False)
        fresh.append(s)
        texts |= {t1, t2}
    mc, mf = statistics.median(cached), statistics.median(fresh)
    print(f'turn {a.turns} of a chat, prompt {n} tokens: first token {mc * 1e3:.1f} ms with the cache, '
          f'{mf * 1e3:.1f} ms with cache_prompt false (medians of {a.rounds}, alternating): {mf / mc:.1f}x sooner; '
          f'{"the same text" if len(texts) == 1 else "TEXTS DIFFER"}')
    if len(texts) != 1:
        raise SystemExit(1)


if __name__ == '__main__':
    main()
