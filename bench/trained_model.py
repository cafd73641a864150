#!/usr/bin/python3
"""The trained model's statistics beside a random model of its shape (docs/performance.md, "A
trained model beside random weights"):

    bench/trained_model.py [BUILD_DIR] [--rounds N] [--model DIR]    (Debian's python3 with python3-torch)

Both models are compiled for this machine: models/kjv-tiny and `rsr-mkmodel --format
bitnet-packed` with its sizes and seed 1. The prompt is the start of the held-out book (Ruth).
1. The LM head: of the rows of every token picked, the share whose exact logit the certified
   heads computed (rsr-run --stats), greedy and sampled, 128 tokens after a 64-token prompt;
   beside it, the share of rows the sampler's own cut keeps (weight at least 2^-24/V of the most
   likely, rsr_sample), from the exact logits of the greedy run (the Python package).
2. Decode speed, one thread (two threads wait at every OpenMP barrier for a model this small):
   rsr-run --bench -t 1, greedy, full logits and sampled (T 0.8); medians of N rounds.
3. Attention at the longest context (512): per layer and head, how many of the keys, largest
   weights first, hold 50, 90 and 99% of the softmax mass, at query positions 384..511 of
   <|begin_of_text|> and 511 tokens of the held-out book, consecutive windows; from the training code's forward (scripts/train_tiny.py),
   whose logits are rsrc's within the tolerance tests/e2e/check_trained.py checks.
4. Louver there: a 448-token prompt and 63 tokens decoded to position 511 (rsr-run --stats),
   with --attention auto (the default), and the relative policy forced at auto's 2^-24 and at
   1e-4: keys scanned and the decode rate (-t 1, median of N rounds).
"""
import json
import os
import re
import statistics
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import train_tiny as tt  # noqa: E402


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw)


def head_share(build, so, ids, temp):
    p = run(f"{build}/rsr-run", so, "--tokens", ",".join(map(str, ids)), "-n", 128, "--temp", temp, "--seed", 1,
            "--ignore-eos", "--stats", "-t", 1)
    m = re.search(r"stats head: (\d+) tokens picked, (\d+) through the int8 copy; exact rows (\d+) of (\d+)", p.stderr)
    picks, passes, rows, of = map(int, m.groups())
    return f"{100 * rows / of:.2f}% ({rows / picks:.1f} rows a token; int8 pass {passes}/{picks})"


def cut_share(so, ids, temps):
    """{T: median share of the rows rsr_sample's cut keeps (weight >= 2^-24/V of the best)} over the
    greedy decode of 128 tokens after ids, from the exact logits; and the median logit spread"""
    import math
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import rsr
    m = rsr.Model(so, threads=1)
    s = m.session(kv="f32")
    rows, lg = [], s.eval(ids)
    for _ in range(128):
        rows.append(np.asarray(lg, dtype=np.float64))
        lg = s.eval([int(np.argmax(lg))])
    L = np.stack(rows)
    top = L.max(axis=1, keepdims=True)
    keep = {t: float(np.median((L >= top - t * math.log(2 ** 24 * m.vocab_size)).mean(axis=1))) for t in temps}
    return keep, float(np.median(L.max(axis=1) - L.min(axis=1)))


def bench(build, so, ids, rounds):
    p = run(f"{build}/rsr-run", so, "--bench", "--json", "--repeat", rounds, "-t", 1, "--tokens",
            ",".join(map(str, ids)), "-n", 128)
    j = json.loads(p.stdout)
    return {k: j[f"decode_{k}_tok_s"]["median"] for k in ("greedy", "full_logits", "sampled")}


def louver(build, so, ids, args, rounds):
    rates, summary = [], None
    for _ in range(rounds):
        p = run(f"{build}/rsr-run", so, "--tokens", ",".join(map(str, ids)), "-n", 64, "--ignore-eos", "--stats",
                "-t", 1, *args)
        summary = re.search(r"stats overall: (.*)", p.stderr).group(1)
        rates.append(float(re.search(r"generated \d+ tokens in [0-9.]+ s \(([0-9.]+) tok/s\)", p.stderr).group(1)))
    return summary, statistics.median(rates)


def concentration(model_dir, windows):
    """{(layer, head): [k50, k90, k99] medians over the last quarter of the windows' query positions}"""
    model, _ = tt.load(model_dir)
    out = {}
    for w in windows:
        probs = []
        with torch.no_grad():
            model(torch.tensor([w]), probs)
        for layer, p in enumerate(probs):
            p = p[0, :, len(w) * 3 // 4:, :].double().numpy()  # [heads, queries, keys]
            s = np.cumsum(-np.sort(-p, axis=-1), axis=-1)
            for h in range(p.shape[0]):
                ks = [(s[h] < f).sum(axis=-1) + 1 for f in (0.5, 0.9, 0.99)]
                out.setdefault((layer, h), [[], [], []])
                for i in range(3):
                    out[(layer, h)][i] += list(ks[i])
    return {k: [statistics.median(v) for v in vs] for k, vs in out.items()}


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "build")
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
    torch.set_num_threads(2)
    work = os.path.join(build, "bench-trained")
    os.makedirs(work, exist_ok=True)
    trained = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else os.path.join(ROOT, "models",
                                                                                                  "kjv-tiny")
    cfg = json.load(open(os.path.join(trained, "config.json")))
    rand = os.path.join(work, "random")
    run(f"{build}/rsr-mkmodel", "--format", "bitnet-packed", "--out", rand, "--hidden", cfg["hidden_size"],
        "--intermediate", cfg["intermediate_size"], "--layers", cfg["num_hidden_layers"], "--heads",
        cfg["num_attention_heads"], "--kv-heads", cfg["num_key_value_heads"], "--vocab", cfg["vocab_size"],
        "--max-pos", cfg["max_position_embeddings"], "--seed", 1)
    sos = {}
    for name, d in (("trained", trained), ("random", rand)):
        sos[name] = os.path.join(work, name + ".so")
        run(f"{build}/rsrc", d, "-o", sos[name])
    _, tok = tt.load(trained)
    held = open(os.path.join(trained, "heldout.txt"), encoding="utf-8").read()
    windows = tt.heldout_windows(tok, held, cfg["max_position_embeddings"])
    info = dict(line.split(":", 1) for line in open("/proc/cpuinfo").read().split("\n\n")[0].splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    print(f"CPU: {info.get('model name')} (family {info.get('cpu family')}, model {info.get('model')}; "
          f"{'AVX-512' if 'avx512f' in info.get('flags', '') else 'no AVX-512'}), {os.cpu_count()} CPUs; "
          f"prompt: the held-out book's first tokens")

    print("\n1. exact rows of the LM head (128 tokens after 64); the rows the sampler's cut keeps")
    temps = (0.3, 0.5, 0.8, 1.0)
    for name, so in sos.items():
        keep, spread = cut_share(so, windows[0][:64], temps)
        print(f"  {name:8s} greedy: {head_share(build, so, windows[0][:64], 0)}; logits span {spread:.1f} (median)")
        for temp in temps:
            print(f"  {name:8s} T={temp}: {head_share(build, so, windows[0][:64], temp)}; "
                  f"the cut keeps {100 * keep[temp]:.1f}% (median)")
    print(f"\n2. decode tok/s, -t 1, median of {rounds} (128 tokens after 64)")
    for name, so in sos.items():
        print(f"  {name:8s} {bench(build, so, windows[0][:64], rounds)}")
    ctx = cfg["max_position_embeddings"]
    flat = [t for w in windows for t in w[1:]]  # the held-out book's tokens
    full = [[tok.bos] + flat[i:i + ctx - 1] for i in range(0, len(flat) - ctx + 2, ctx - 1)]
    print(f"\n3. keys holding 50/90/99% of the mass, query positions {ctx * 3 // 4}..{ctx - 1} of {len(full)} "
          f"windows of {ctx} tokens (medians)")
    for name, d in (("trained", trained), ("random", rand)):
        c = concentration(d, full)
        for (layer, h), k in sorted(c.items()):
            print(f"  {name:8s} layer {layer} head {h}: {k[0]:g} / {k[1]:g} / {k[2]:g}")
    print(f"\n4. Louver at 448 + 64 positions (-t 1, median of {rounds})")
    for name, so in sos.items():
        for label, args in (("auto", []), ("dense", ["--attention", "dense"]),
                            ("louver 2^-24", ["--attention", "louver", "--louver-eps", "5.9604644775390625e-08"]),
                            ("louver 1e-4", ["--attention", "louver", "--louver-eps", "1e-4"])):
            summary, rate = louver(build, so, windows[0][:448], args, rounds)
            print(f"  {name:8s} {label:13s} {rate:8.1f} tok/s  {summary}")


if __name__ == "__main__":
    main()
