#!/usr/bin/env python3
"""The cost of speculative decoding's verification step beside plain steps: after a short prompt,
rsr_session_eval_draft of 1, 2, 4 and 8 rows (the token and 0, 1, 3, 7 drafted ones, all the same
token) and eval_greedy of as many tokens (the matrices for every row, the head for the last only),
each cut back after it, alternating, medians of ROUNDS. docs/performance.md, "Speculative decoding".
Usage: bench/verify_rows.py MODEL.so [--threads T] [--rounds N] [--prompt A,B,C] [--token ID]"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import rsr  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--prompt", default="128000,791,6864,315")
    ap.add_argument("--token", type=int, default=13879)
    a = ap.parse_args()
    prompt = [int(t) for t in a.prompt.split(",")]
    m = rsr.Model(a.model, threads=a.threads)
    s = m.session(max_positions=1024)
    s.eval(prompt)
    times = {}
    for _ in range(a.rounds):
        for rows in (1, 2, 4, 8):
            for kind in ("eval_draft", "eval_greedy"):
                s.truncate(len(prompt))
                t = time.perf_counter()
                if kind == "eval_draft":
                    s.eval_draft(a.token, [a.token] * (rows - 1))
                else:
                    s.eval_greedy([a.token] * rows)
                times.setdefault((kind, rows), []).append(time.perf_counter() - t)
    print(f"# {a.model}, {a.threads} thread(s), medians of {a.rounds}, ms")
    print("| rows | " + " | ".join(str(r) for r in (1, 2, 4, 8)) + " |")
    print("|---|" + "---:|" * 4)
    for kind in ("eval_draft", "eval_greedy"):
        cells = [sorted(times[(kind, r)])[len(times[(kind, r)]) // 2] * 1e3 for r in (1, 2, 4, 8)]
        print(f"| {kind} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
