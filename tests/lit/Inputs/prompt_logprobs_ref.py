#!/usr/bin/env python3
"""prompt_logprobs_ref.py RSR_RUN MODEL.so REPLY.json IDS.json: checks a /v1/completions reply to token-id
prompts with echo and logprobs against `rsr-run --tokens PREFIX --logits` (the last position's exact
logits, one evaluation per prefix: another path through the runtime than the server's one pass over
the prompt). IDS.json holds the prompts, a list of lists of ids. For each choice (in index order),
each prompt token after the first must have the log-probability log-softmax gives it under the logits
of the prefix before it, to 1e-5 relative, and its top alternative the largest; the first has none
(null). A generated token after the prompt (max_tokens 1, greedy) must be the most likely one, with
its log-probability. Prints "ok N" with N the log-probabilities checked."""
import json
import math
import struct
import subprocess
import sys
import tempfile

rsr_run, model, reply, prompts = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))


def log_softmax(prefix, out):
    subprocess.run([rsr_run, model, "--tokens", ",".join(map(str, prefix)), "-n", "1", "--logits", out], check=True,
                   capture_output=True)
    data = open(out, "rb").read()
    logits = struct.unpack("<%df" % (len(data) // 4), data)
    top = max(logits)
    lse = math.log(sum(math.exp(v - top) for v in logits)) + top
    return [v - lse for v in logits]


def close(got, want, what):
    assert abs(got - want) <= 1e-5 * abs(want) + 1e-6, "%s: %r, the reference %r" % (what, got, want)


choices = sorted(reply["choices"], key=lambda c: c["index"])
assert [c["index"] for c in choices] == list(range(len(prompts))), choices
checked = 0
with tempfile.NamedTemporaryFile(suffix=".f32") as f:
    for c, ids in zip(choices, prompts):
        lp = c["logprobs"]
        n = len(ids)
        assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None, lp
        assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"])
        assert len(lp["tokens"]) - n == reply["usage"]["completion_tokens"] // len(prompts), (lp, reply["usage"])
        for i in range(1, len(lp["tokens"])):
            ref = log_softmax(ids[:i] if i < n else ids, f.name)
            where = "choice %d token %d" % (c["index"], i)
            if i < n:
                close(lp["token_logprobs"][i], ref[ids[i]], where)
            else:  # the greedy token: the most likely
                close(lp["token_logprobs"][i], max(ref), where)
            top = list(lp["top_logprobs"][i].values())
            assert len(top) == 1, top
            close(top[0], max(ref), where + " top")
            checked += 1
print("ok", checked)
