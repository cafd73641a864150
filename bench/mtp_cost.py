#!/usr/bin/env python3
"""What Qwen3.5's MTP layer costs a session (docs/performance.md, "Speculative decoding"): decode
steps of a plain session and of one whose MTP layer follows it (rsr_session_params.mtp), and the
MTP layer's guesses (rsr_session_draft_mtp) of 1 and of 4 tokens, in milliseconds, alternating the
two sessions step by step; medians. The acceptance a trained MTP layer needs to pay follows from
these (the guesses' and the verification's cost against the tokens they save).
Usage: PYTHONPATH=python python3 bench/mtp_cost.py MODEL.so [STEPS] [THREADS]"""
import statistics
import sys
import time

import rsr


def main():
    path = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    with rsr.Model(path, threads=threads) as m:
        if not m.info["mtp_layers"]:
            sys.exit("bench/mtp_cost.py: %s has no MTP layer" % path)
        prompt = [5, 17, 30, 44, 9, 2, 11, 3]
        plain, follow = m.session(max_positions=steps + 64), m.session(max_positions=steps + 64, mtp=True)
        t = {"plain": [], "follow": [], "guess1": [], "guess4": []}
        a, b = plain.eval_greedy(prompt), follow.eval_greedy(prompt)
        for _ in range(steps):
            t0 = time.perf_counter()
            a = plain.eval_greedy([a])
            t1 = time.perf_counter()
            b = follow.eval_greedy([b])
            t2 = time.perf_counter()
            follow.draft_mtp(b, 1)
            t3 = time.perf_counter()
            follow.draft_mtp(b, 4)
            t4 = time.perf_counter()
            for k, v in (("plain", t1 - t0), ("follow", t2 - t1), ("guess1", t3 - t2), ("guess4", t4 - t3)):
                t[k].append(1e3 * v)
        med = {k: statistics.median(v) for k, v in t.items()}
        print("# %s, %d threads, %d steps, medians in ms" % (path, m.info["num_threads"], steps))
        print("| decode step | with the MTP layer following | its cost | a guess (1) | a guess (4, per token) |")
        print("|---:|---:|---:|---:|---:|")
        print("| %.1f | %.1f | %.1f (%.1f%%) | %.1f (%.1f%%) | %.1f (%.1f%%) |" % (
            med["plain"], med["follow"], med["follow"] - med["plain"], 100 * (med["follow"] / med["plain"] - 1),
            med["guess1"], 100 * med["guess1"] / med["plain"], med["guess4"] / 4, 25 * med["guess4"] / med["plain"]))


if __name__ == "__main__":
    main()
