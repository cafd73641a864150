#!/usr/bin/env python3
"""A saved slot against reading the prompt again (docs/sessions.md): on one rsr-serve (one slot,
--slot-save-path), a PROMPT-token prompt's slot saved once; then, ROUNDS times and alternating
which goes first, the time to the first token of the prompt plus a few new tokens read afresh
("cache_prompt": false), and of POST /slots/0?action=restore followed by the same request (the
restore's time included); prints the medians, their ratio and whether the tokens agree.
Stdlib only. Usage: slot_restore.py RSR-SERVE MODEL.so [--prompt 2000] [--rounds 5] [--threads N]"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request


def start(serve, model, d, threads):
    err = open(os.path.join(d, 'serve.err'), 'w+')
    args = [serve, model, '--port', '0', '--parallel', '1', '--slot-save-path', os.path.join(d, 'slots')]
    p = subprocess.Popen(args + (['-t', str(threads)] if threads else []), stderr=err, stdout=subprocess.DEVNULL)
    while True:
        err.seek(0)
        text = err.read()
        if 'listening on' in text:
            return p, text.split('listening on ')[1].split('/ ')[0]
        if p.poll() is not None:
            raise SystemExit('rsr-serve did not start: ' + text)
        time.sleep(0.2)


def post(url, path, body):
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())


def first_token(url, ids, cache):
    t0 = time.monotonic()
    r = post(url, '/v1/completions', {'prompt': ids, 'max_tokens': 1, 'temperature': 0, 'cache_prompt': cache,
                                       'return_token_ids': True})
    return time.monotonic() - t0, r['choices'][0]['token_ids'], r['usage']['prompt_tokens_details']['cached_tokens']


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('serve')
    ap.add_argument('model')
    ap.add_argument('--prompt', type=int, default=2000)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--threads', type=int, default=0)
    a = ap.parse_args()
    d = tempfile.mkdtemp()
    p, url = start(a.serve, a.model, d, a.threads)
    try:
        vocab = 1000  # ids below any vocabulary's size
        ids = [(37 * i + 11) % vocab + 10 for i in range(a.prompt)]
        more = ids + [(53 * i + 7) % vocab + 10 for i in range(8)]
        first_token(url, ids, False)  # the slot holds the prompt
        saved = post(url, '/slots/0?action=save', {'filename': 'prompt'})
        fresh, restored, cached, tokens = [], [], [], set()
        for r in range(a.rounds):
            for variant in ((0, 1) if r % 2 == 0 else (1, 0)):
                post(url, '/slots/0?action=erase', {})
                if variant == 0:
                    s, t, _ = first_token(url, more, False)
                    fresh.append(s)
                else:
                    t0 = time.monotonic()
                    post(url, '/slots/0?action=restore', {'filename': 'prompt'})
                    s, t, c = first_token(url, more, True)
                    restored.append(time.monotonic() - t0)
                    cached.append(c)
                tokens.add(tuple(t))
        mf, mr = statistics.median(fresh), statistics.median(restored)
        info = open('/proc/cpuinfo').read().split('\n')
        field = lambda k: next(line.split(':')[1].strip() for line in info if line.startswith(k))
        cpu = f"{field('model name')}, cpu family {field('cpu family')}, {os.cpu_count()} CPUs"
        print(f'# {cpu}; {os.path.basename(a.model)}; slot file {saved["n_written"] / 1048576:.1f} MiB '
              f'({saved["n_saved"]} tokens), saved in {saved["timings"]["save_ms"]:.0f} ms')
        print(f'prompt of {len(more)} tokens, first token: read again {mf * 1e3:.0f} ms, restored and then read '
              f'{mr * 1e3:.0f} ms (cached {min(cached)}..{max(cached)}; medians of {a.rounds}, alternating): '
              f'{mr / mf:.3f} of the time; {"the same token" if len(tokens) == 1 else "TOKENS DIFFER"}')
        if len(tokens) != 1:
            raise SystemExit(1)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()
        shutil.rmtree(d)


if __name__ == '__main__':
    main()
