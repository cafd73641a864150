"""penalty_ref.py MODEL.so PROMPT N PRESENCE FREQUENCY LAST_N: the greedy tokens of the prompt with
OpenAI's presence and frequency penalties, computed apart from rsr-serve: the exact logits from the
Python package (rsr.Session.eval), each distinct token of the last LAST_N (prompt and output)
lowered by presence + count * frequency in fp32 as the server rounds, the largest logit (the lowest
id among equals). Prints one JSON list of the tokens' pieces (UTF-8, invalid bytes replaced), as a
/v1/completions reply lists them under logprobs.tokens."""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
import rsr  # noqa: E402


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


path, prompt, n, presence, frequency, last_n = sys.argv[1], sys.argv[2], int(sys.argv[3]), *map(float, sys.argv[4:6]), int(sys.argv[6])
presence, frequency = f32(presence), f32(frequency)
with rsr.Model(path, threads=1) as m:
    ids = m.tokenize(prompt)
    stops = m._stop_ids()
    out = []
    with m.session(max_positions=len(ids) + n + 1) as s:
        logits = s.eval(ids)
        for _ in range(n):
            lg = [f32(v) for v in logits]
            window = (ids + out)[-last_n:] if last_n > 0 else []
            counts = {}
            for t in window:
                counts[t] = counts.get(t, 0) + 1
            for t, c in counts.items():
                lg[t] = f32(lg[t] - f32(presence + f32(c * frequency)))
            best = max(range(len(lg)), key=lambda i: (lg[i], -i))
            if best in stops:
                break
            out.append(best)
            logits = s.eval([best])
    print(json.dumps([m._piece(t).decode("utf-8", errors="replace") for t in out]))
