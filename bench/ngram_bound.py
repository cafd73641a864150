#!/usr/bin/env python3
"""ngram_bound.py TOKENS_FILE PROMPT_IDS [--draft-max N] [--row R]: what `--spec-type ngram-simple`
can gain on a text, from the text alone.

TOKENS_FILE holds a greedy continuation as rsr-run prints it (ids separated by spaces), PROMPT_IDS
the prompt it followed (comma-separated). The proposer of common/ngram_draft.h is replayed on it:
at each step the tokens that followed the latest earlier occurrence of the last 4 (else 3) tokens,
at most N (default 16), verified against the text: the longest prefix that agrees is taken, and the
step gives one token more. Printed: the steps, the drafted and taken tokens, tokens a step, and two
speed-ups for a drafted row costing R of a decode step (default 0.31, measured on the 2B-4T shape:
docs/performance.md): the proposer's every draft verified, and an oracle that drafts only the tokens
that will be taken (no proposer that drafts what this one finds does better).
"""
import argparse


def draft(h, n_known, cap):
    """ngram_draft.h on h[:n_known]: at most cap tokens."""
    for n in (4, 3):
        if n_known <= n:
            continue
        last = h[n_known - n:n_known]
        for at in range(n_known - n - 1, -1, -1):
            if h[at:at + n] == last:
                out = []
                j = at + n
                while len(out) < cap:
                    out.append(h[j] if j < n_known else out[j - n_known])
                    j += 1
                return out
    return []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('tokens')
    ap.add_argument('prompt')
    ap.add_argument('--draft-max', type=int, default=16)
    ap.add_argument('--row', type=float, default=0.31)
    a = ap.parse_args()
    with open(a.tokens) as f:
        text = [int(t) for t in f.read().split()]
    prompt = [int(t) for t in a.prompt.split(',')]
    h = prompt + text
    pos = len(prompt) + 1  # the prompt's step gave the first token
    steps = drafted = taken = 0
    while pos < len(h):
        d = draft(h, pos, min(a.draft_max, len(h) - pos))
        k = 0
        while k < len(d) and d[k] == h[pos + k]:
            k += 1
        steps, drafted, taken, pos = steps + 1, drafted + len(d), taken + k, pos + k + 1
    made = len(text) - 1
    print('%d tokens in %d steps (%.2f a step); %d drafted, %d taken (%.0f%%)' %
          (made, steps, made / steps, drafted, taken, 100.0 * taken / max(drafted, 1)))
    print('speed-up at a drafted row of %.2f step: every draft verified %.2fx, oracle drafts %.2fx' %
          (a.row, made / (steps + a.row * drafted), made / (steps + a.row * taken)))


if __name__ == '__main__':
    main()
