#!/usr/bin/env python3
"""perplexity_ref.py RSR_RUN MODEL.so TEXT CTX CHUNKS: the perplexity llama-perplexity's method gives,
computed here from `rsr-run --tokens PREFIX --logits` (the last position's exact logits, one
evaluation per scored position: another path through the runtime than --perplexity's one pass over
each chunk) and from `rsr-run --tokenize`. Prints "PPL = X" with X to 6 decimals."""
import math
import struct
import subprocess
import sys
import tempfile

rsr_run, model, text, ctx, chunks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ids = [int(t) for t in subprocess.run([rsr_run, model, "-f", text, "--tokenize"], check=True, capture_output=True,
                                      text=True).stdout.strip().split(",")]
bos = ids[0]  # the tokenizer adds BOS first; each chunk begins with it in place of its first token
total, count = 0.0, 0
with tempfile.NamedTemporaryFile(suffix=".f32") as out:
    for c in range(min(chunks, len(ids) // ctx)):
        chunk = ids[c * ctx:(c + 1) * ctx]
        chunk[0] = bos
        for j in range(ctx // 2, ctx - 1):
            prefix = ",".join(str(t) for t in chunk[:j + 1])
            subprocess.run([rsr_run, model, "--tokens", prefix, "-n", "1", "--logits", out.name], check=True,
                           capture_output=True)
            data = open(out.name, "rb").read()
            logits = struct.unpack("<%df" % (len(data) // 4), data)
            top = max(logits)
            lse = math.log(sum(math.exp(v - top) for v in logits)) + top
            total += lse - logits[chunk[j + 1]]
            count += 1
print("PPL = %.6f" % math.exp(total / count))
