#!/usr/bin/python3
# The trained model (models/kjv-tiny) compiled by rsrc against the float forward of the code that
# trained it (scripts/train_tiny.py: the same quantisers, evaluated as docs/numerics.md writes
# them, on the checkpoint's stored numbers), through the Python package:
#   - rsrc's tokenizer gives the ids the training tokenizer gives, on the held-out book;
#   - on 8 held-out prompts, the logits after every prefix: at each position within the e2e
#     tolerance (|a - b| <= 1e-3 + 1e-3 |b|) or, where an int8 rounding went the other way (the
#     noise floor of docs/numerics.md, "A second reference"), within 2.5e-2 of the position's
#     largest |logit|; the same argmax wherever the reference's two best are further apart than
#     the difference; for the safetensors checkpoint and its I2_S and TQ2_0 GGUF exports, which
#     give the same bits;
#   - its chat template: the rendering tokenizes as the training code's chats, the greedy reply
#     is the reference's, and at 60% of the held-out chats' turn ends at least rsrc's argmax is
#     <|eot_id|> (the model ends its turns);
#   - the held-out book's perplexity from rsrc's logits (windows of the model's context, each
#     <|begin_of_text|> first) is the reference's within 5e-4, and below 40.
# Usage: check_trained.py MODEL_DIR SAFETENSORS.so I2S.so TQ2.so   (PYTHONPATH: python/ and scripts/)
import math
import sys

import numpy as np
import torch

import rsr
import train_tiny as tt

ATOL = RTOL = 1e-3  # tests/e2e's tolerance
FLOOR = 2.5e-2  # an int8 step's reach, relative to the position's largest |logit|


def rsrc_logits(session, ids):
    """the logits after every prefix of ids, one token per step from position 0 (fp32 cache)"""
    session.reset()
    return np.stack([np.asarray(session.eval([t]), dtype=np.float32) for t in ids])


def compare(name, got, want):
    """got, want [positions, vocab]: each position within the tolerance or the noise floor, the
    same argmax but at ties; (positions past the tolerance, the largest difference relative to its
    position's largest |logit|)"""
    err = np.abs(got.astype(np.float64) - want)
    scale = np.abs(want).max(axis=1)
    rel = err.max(axis=1) / scale
    within = (err <= ATOL + RTOL * np.abs(want)).all(axis=1)
    for p in np.nonzero(~within & (rel > FLOOR))[0]:
        raise SystemExit(f"FAIL {name}: position {p}: a difference of {rel[p]:.2e} of the largest logit")
    a, b = got.argmax(axis=1), want.argmax(axis=1)
    for p in np.nonzero(a != b)[0]:
        top = np.sort(want[p])[-2:]
        if top[1] - top[0] > err[p].max():  # not a tie within the difference
            raise SystemExit(f"FAIL {name}: position {p}: rsrc's argmax {a[p]}, the reference's {b[p]}")
    return int((~within).sum()), float(rel.max())


def check_chat(m, ref, tok, held_text):
    """The chat template the model ships: rsrc's rendering of a conversation tokenizes to the ids
    the training code gave its chats, and the greedy reply is the reference's token for token
    (but at a tie within the difference); on the held-out book's chats (as the training code makes
    them), rsrc's argmax is <|eot_id|> where most turns end: the model ends its turns."""
    turns = [("system", tt.SYSTEM_PROMPTS[0]),
             ("user", "And Naomi said unto her two daughters in law, Go, return each to her mother's house:"),
             ("assistant", "the LORD deal kindly with you, as ye have dealt with the dead, and with me."),
             ("user", "The LORD grant you that ye may find rest, each of you in the house of her husband.")]
    text = m.apply_chat_template([{"role": r, "content": c} for r, c in turns])
    ids = m.tokenize(text, add_special=False)
    want = tok.chat(turns, generation_prompt=True)
    if ids != want:
        raise SystemExit(f"FAIL: the chat's ids differ from the training code's:\n{ids}\n{want}")
    eot = tok.ids[tt.EOT]
    s = m.session(kv="f32")
    logits = np.asarray(s.eval(ids), dtype=np.float32)
    reply, seq = [], list(ids)
    with torch.no_grad():
        for _ in range(40):
            a = int(logits.argmax())
            want_logits = ref(torch.tensor([seq]))[0, -1].double().numpy()
            b = int(want_logits.argmax())
            if a != b:
                top = np.sort(want_logits)[-2:]
                if top[1] - top[0] > np.abs(logits - want_logits).max():
                    raise SystemExit(f"FAIL: chat reply token {len(reply)}: rsrc's {a}, the reference's {b}")
                break  # a tie: the two may go on differently
            reply.append(a)
            if a == eot:
                break
            seq.append(a)
            logits = np.asarray(s.eval([a]), dtype=np.float32)
    print(f"chat: the rendering's {len(ids)} ids are the training code's; the greedy reply's first {len(reply)} "
          f"tokens are the reference's: {tok.decode(reply)!r}")
    book, chapter = [], 1  # heldout.txt: one verse a line, a blank line after each chapter
    for line in held_text.splitlines():
        if line.strip():
            book.append(("Ruth", chapter, line.strip()))
        else:
            chapter += 1
    chats = tt.conversations(book, [v[2] for v in book], np.random.default_rng(2))
    ends = hits = 0
    for c in chats:
        cids = tok.chat(c)[:ref.c["max_position_embeddings"]]
        s = m.session(kv="f32")
        lg = [int(np.asarray(s.eval([t])).argmax()) for t in cids[:-1]]
        for i in range(1, len(cids)):
            if cids[i] == eot:
                ends += 1
                hits += lg[i - 1] == eot
    print(f"chat: at {hits} of the {ends} turn ends of {len(chats)} held-out chats rsrc's argmax is <|eot_id|>")
    if hits < 0.6 * ends:
        raise SystemExit("FAIL: the model does not end its turns (fewer than 60% of them)")


def main():
    model_dir, sos = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(2)
    ref, tok = tt.load(model_dir)
    ctx = ref.c["max_position_embeddings"]
    with open(f"{model_dir}/heldout.txt", encoding="utf-8") as f:
        held_text = f.read()
    models = [rsr.Model(so) for so in sos]

    ids = models[0].tokenize(held_text)
    if ids != tok.encode(held_text, bos=True):
        raise SystemExit("FAIL: rsrc's tokenizer and the training tokenizer disagree on the held-out book")

    windows = tt.heldout_windows(tok, held_text, ctx)
    flat = [t for w in windows for t in w[1:]]
    prompts = [[tok.bos] + flat[k * 400:k * 400 + min(24 + 12 * k, ctx - 1)] for k in range(8)]  # 25 to 109 ids
    with torch.no_grad():
        want = [ref(torch.tensor([p]))[0].double().numpy() for p in prompts]
    first = None
    for so, m in zip(sos, models):
        s = m.session(kv="f32")
        got = [rsrc_logits(s, p) for p in prompts]
        res = [compare(f"{so} prompt {k}", g, w) for k, (g, w) in enumerate(zip(got, want))]
        print(f"{so}: 8 held-out prompts, {sum(map(len, prompts))} positions: {sum(r[0] for r in res)} past the "
              f"e2e tolerance, the largest difference {max(r[1] for r in res):.2e} of the position's largest logit")
        if first is None:
            first = got
        elif any(not np.array_equal(a, b) for a, b in zip(first, got)):
            raise SystemExit(f"FAIL: {so} gives other logits than {sos[0]}")

    check_chat(models[0], ref, tok, held_text)

    s = models[0].session(kv="f32")
    nll_rsrc = 0.0
    for w in windows:
        lg = rsrc_logits(s, w[:-1]).astype(np.float64)
        lse = np.log(np.exp(lg - lg.max(axis=1, keepdims=True)).sum(axis=1)) + lg.max(axis=1)
        nll_rsrc += float((lse - lg[np.arange(len(w) - 1), w[1:]]).sum())
    total, n = tt.nll(ref, windows)
    ppl_rsrc, ppl_ref = math.exp(nll_rsrc / n), math.exp(total / n)
    print(f"held-out perplexity over {n} tokens: rsrc {ppl_rsrc:.4f}, reference {ppl_ref:.4f}")
    if abs(ppl_rsrc / ppl_ref - 1) > 5e-4:
        raise SystemExit("FAIL: the perplexities differ by more than 5e-4")
    if ppl_rsrc > 40:
        raise SystemExit("FAIL: a held-out perplexity above 40 is not the trained model's")


if __name__ == "__main__":
    main()
