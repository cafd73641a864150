#!/usr/bin/python3
# Trains a small BitNet b1.58 model on the King James Bible and writes it as the Hugging Face
# checkpoint rsrc reads (BitNetForCausalLM, packed ternary weights with weight_scale, bf16
# embeddings tied to the head, config.json, a byte-level BPE tokenizer.json).
#
# The recipe is quantisation-aware training as BitNet b1.58 does it: every linear layer of the
# blocks keeps latent fp32 weights, and its forward pass uses them made ternary (absmean: beta =
# mean |w|, W_t = round(clamp(w / beta, -1, 1))) on int8 activations (per token absmax: x_scale =
# 127 / max |x|, x_q = clamp(round(x * x_scale), -128, 127)), with a straight-through estimator for
# both. The architecture is the checkpoints': RMSNorm before attention and the FFN, RoPE, grouped
# query attention, attn_sub_norm before o_proj, a ReLU² gated FFN with ffn_sub_norm before
# down_proj, a final norm and the embedding as the head.
#
# The corpus is `bible -f gen1:1-rev22:21` (Debian's bible-kjv): the verse references stripped,
# one verse per line, a blank line after each chapter. One book (Ruth) is held out: it trains
# neither the tokenizer nor the model, and its perplexity is the held-out measure. A training
# sequence is <|begin_of_text|> (rsrc's tokenizer puts it before a prompt) and --ctx tokens from a
# verse's start on; an epoch's sequences cover the text once, in a random order.
#
# load() reads a checkpoint back into the same modules in their exact form: the stored ternary
# weights and bf16 scales, integer sums, and the fp32 operations in rsrc's order where PyTorch's
# would round otherwise (x_scale's division, RMSNorm's ascending sum). That forward is the test
# suite's second reference; training runs PyTorch's own.
#
# The same seed gives the same weights: the thread count is fixed (--threads, 1 by default: another
# count sums in another order and trains other weights), PyTorch runs its deterministic
# algorithms, and every random draw comes from generators seeded from --seed.
#
# Usage (Debian's python3 with python3-torch, python3-numpy, python3-regex and bible-kjv):
#   scripts/train_tiny.py train --out models/kjv-tiny            the model in the repository
#   scripts/train_tiny.py train --out m --steps 3 --books Ge,Ruth --vocab 512 --hidden 64 ...
#   scripts/train_tiny.py train --out models/kjv-draft --tokenizer models/kjv-tiny --hidden 64 \
#       --intermediate 192 --layers 2 --heads 2 --kv-heads 1 --steps 1000     the draft model
#   scripts/train_tiny.py heldout-ppl models/kjv-tiny               its forward on the held-out book
#   scripts/train_tiny.py generate models/kjv-tiny "In the beginning" [-n 40]
# tests/e2e/check_trained.py imports the module; bench/trained_model.py too.
import argparse
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import time

import numpy as np
import regex
import torch
import torch.nn.functional as F
from torch import nn

BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
# Llama 3's turn markers: a chat is <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> a turn
# (CHAT_TEMPLATE, shipped in tokenizer_config.json), so rsrc's built-in llama3 template fits the
# vocabulary too and <|eot_id|> ends a reply
HEADER, END_HEADER, EOT = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
SPECIALS = (BOS, EOS, HEADER, END_HEADER, EOT)
CHAT_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- for message in messages %}\n"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
    "'<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n")
# what a chat's system turn says in the training conversations (a quarter of them have one)
SYSTEM_PROMPTS = ("You are a reader of the King James Bible.",
                  "Answer each verse with the verses that follow it.",
                  "You are a helpful assistant.",
                  "Read the Bible with me, one verse at a time.")
# Llama 3's pre-tokenizer split (rsrc's runtime/tokenizer reads it from tokenizer.json)
SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
         r"\s*[\r\n]+|\s+(?!\S)|\s+")
HELDOUT_BOOK = "Ruth"

# ---------------------------------------------------------------------------------------------- corpus


def read_bible(path=None):
    """[(book, chapter, verse text)] of `bible -f gen1:1-rev22:21` (or a file of its output)."""
    if path:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    else:
        out = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], check=True, capture_output=True, text=True).stdout
        lines = out.splitlines()
    verses = []
    ref = regex.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
    for line in lines:
        m = ref.match(line)
        if not m:
            raise SystemExit(f"train_tiny: not a verse line of bible -f: {line[:60]!r}")
        verses.append((m.group(1), int(m.group(2)), m.group(4).strip()))
    return verses


def verse_strings(verses):
    """Each verse's text as it stands in the corpus: a newline after it, two after a chapter's last."""
    out = []
    for i, (book, chapter, text) in enumerate(verses):
        last = i + 1 == len(verses) or verses[i + 1][:2] != (book, chapter)
        out.append(text + ("\n\n" if last else "\n"))
    return out


def conversations(verses, strings, rng):
    """The verses as chats, [[(role, content)]]: a user turn is one verse, the assistant's reply the
    one or two verses after it, in order, a chat ending with its chapter or after one to four
    exchanges; a quarter of the chats open with a system turn (SYSTEM_PROMPTS)."""
    chats, i = [], 0
    while i < len(verses):
        turns = []
        if rng.random() < 0.25:
            turns.append(("system", SYSTEM_PROMPTS[int(rng.integers(len(SYSTEM_PROMPTS)))]))
        for _ in range(int(rng.integers(1, 5))):
            if i >= len(verses):
                break
            turns.append(("user", strings[i].strip()))
            k = int(rng.integers(1, 3))
            reply = [j for j in range(i + 1, min(i + 1 + k, len(verses))) if verses[j][:2] == verses[i][:2]]
            if not reply:  # the chapter's last verse: the next chat begins the next chapter
                turns.pop()
                break
            turns.append(("assistant", " ".join(strings[j].strip() for j in reply)))
            i = reply[-1] + 1
            if i >= len(verses) or verses[i][:2] != verses[i - 1][:2]:
                break
        if not any(r == "user" for r, _ in turns):
            i += 1
            continue
        chats.append(turns)
    return chats


# ---------------------------------------------------------------------------------------------- tokenizer


def byte_alphabet():
    """GPT-2's byte-level alphabet: byte b is written as this character in vocabulary files."""
    printable = [b for b in range(256) if ord("!") <= b <= ord("~") or 0xA1 <= b <= 0xAC or b >= 0xAE]
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return [chars[b] for b in range(256)]


def train_bpe(text, vocab_size):
    """Byte-level BPE on text's Llama 3 pieces: (tokens by id, merges as (left, right)); the
    special tokens (SPECIALS) take the last ids. The most frequent adjacent pair is merged first; equal
    counts go to the pair of smaller ids."""
    alphabet = byte_alphabet()
    counts = {}
    for piece in regex.findall(SPLIT, text):
        counts[piece] = counts.get(piece, 0) + 1
    words = [[b for b in piece.encode("utf-8")] for piece in sorted(counts)]
    freq = [counts[piece] for piece in sorted(counts)]
    tokens = list(alphabet)
    ids = {t: i for i, t in enumerate(tokens)}
    merges = []
    pair_count, pair_words = {}, {}
    for w, syms in enumerate(words):
        for a, b in zip(syms, syms[1:]):
            pair_count[(a, b)] = pair_count.get((a, b), 0) + freq[w]
            pair_words.setdefault((a, b), set()).add(w)
    while len(tokens) < vocab_size - len(SPECIALS) and pair_count:
        (a, b), c = max(pair_count.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
        if c <= 0:
            break
        joined = tokens[a] + tokens[b]
        new = ids.get(joined)
        if new is None:
            new = len(tokens)
            tokens.append(joined)
            ids[joined] = new
        merges.append((tokens[a], tokens[b]))
        for w in sorted(pair_words.pop((a, b))):
            syms, f = words[w], freq[w]
            for x, y in zip(syms, syms[1:]):
                pair_count[(x, y)] -= f
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = out
            for x, y in zip(out, out[1:]):
                pair_count[(x, y)] = pair_count.get((x, y), 0) + f
                pair_words.setdefault((x, y), set()).add(w)
        pair_count = {p: n for p, n in pair_count.items() if n > 0}
    return tokens + list(SPECIALS), merges


class Tokenizer:
    """Encodes as the tokenizer.json below does (Llama 3 split, byte-level alphabet, BPE with
    ignore_merges: a piece that is a token is that token)."""

    def __init__(self, tokens, merges):
        self.tokens = tokens
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.rank = {m: r for r, m in enumerate(merges)}
        self.merges = merges
        self.alphabet = byte_alphabet()
        self.byte_of = {c: b for b, c in enumerate(self.alphabet)}
        self.bos, self.eos = self.ids[BOS], self.ids[EOS]
        self.special = {i for i, t in enumerate(tokens) if t.startswith("<|") and t.endswith("|>")}
        self.cache = {}

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            tj = json.load(f)
        vocab = tj["model"]["vocab"]
        n = max(list(vocab.values()) + [t["id"] for t in tj["added_tokens"]]) + 1
        tokens = [None] * n
        for t, i in vocab.items():
            tokens[i] = t
        for t in tj["added_tokens"]:
            tokens[t["id"]] = t["content"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in tj["model"]["merges"]]
        return cls(tokens, merges)

    def _piece(self, piece):
        s = "".join(self.alphabet[b] for b in piece.encode("utf-8"))
        if s in self.ids:
            return [self.ids[s]]
        parts = list(s)
        while len(parts) > 1:
            best = min(range(len(parts) - 1), key=lambda i: self.rank.get((parts[i], parts[i + 1]), 1 << 30))
            if (parts[best], parts[best + 1]) not in self.rank:
                break
            parts[best:best + 2] = [parts[best] + parts[best + 1]]
        return [self.ids[p] for p in parts]

    def encode(self, text, bos=False):
        out = [self.bos] if bos else []
        for piece in regex.findall(SPLIT, text):
            if piece not in self.cache:
                self.cache[piece] = self._piece(piece)
            out += self.cache[piece]
        return out

    def chat(self, turns, generation_prompt=False):
        """The ids of CHAT_TEMPLATE's text for [(role, content)], <|begin_of_text|> first: the
        turn markers as their tokens, the text between them encoded as it stands."""
        out = [self.bos]
        for role, content in turns:
            out += [self.ids[HEADER]] + self.encode(role) + [self.ids[END_HEADER]]
            out += self.encode("\n\n" + content.strip()) + [self.ids[EOT]]
        if generation_prompt:
            out += [self.ids[HEADER]] + self.encode("assistant") + [self.ids[END_HEADER]] + self.encode("\n\n")
        return out

    def decode(self, ids):
        raw = bytes(self.byte_of[c] for i in ids if i not in self.special for c in self.tokens[i])
        return raw.decode("utf-8", errors="replace")

    def to_json(self):
        special = [{"id": self.ids[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                    "normalized": False, "special": True} for s in (self.tokens[i] for i in sorted(self.special))]
        return {
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": special, "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": SPLIT}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
            "post_processor": {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": BOS, "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [], "special_tokens": {BOS: {"id": BOS, "ids": [self.bos], "tokens": [BOS]}}},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                      "vocab": {t: i for i, t in enumerate(self.tokens) if i not in self.special},
                      "merges": [f"{a} {b}" for a, b in self.merges]},
        }


# ---------------------------------------------------------------------------------------------- model


def act_quant(x):
    """Per token absmax int8: (integer values as floats, x_scale). x_scale is one fp32 division, as
    rsrc computes it (PyTorch evaluates `127.0 / t` as a reciprocal and a product)."""
    amax = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    xs = torch.full_like(amax, 127.0) / amax
    return torch.clamp(torch.round(x * xs), -128, 127), xs


def ternarize(w):
    """absmean: (W_t in {-1, 0, 1} as floats, beta)."""
    beta = w.abs().mean().clamp(min=1e-5)
    return torch.clamp(torch.round(w * (1.0 / beta)), -1, 1), beta


class RoundSTE(torch.autograd.Function):
    """round(clamp(x * s, lo, hi)) / s forward, the identity backward (the straight-through
    estimator)"""

    @staticmethod
    def forward(ctx, x, s, lo, hi):
        return torch.clamp(torch.round(x * s), lo, hi).div_(s)

    @staticmethod
    def backward(ctx, g):
        return g, None, None, None


class BitLinear(nn.Module):
    """A ternary linear layer on int8 activations. Training: latent weights, both quantisers with
    straight-through gradients. Exact (after freeze or load): y = (sum_j W_t[i][j] x_q[j]) * beta /
    x_scale, evaluated as rsrc does (docs/numerics.md); the integer sums are exact in fp32."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        self.register_buffer("w_t", None)
        self.register_buffer("beta", None)

    def freeze(self, w_t, beta):
        self.w_t, self.beta = w_t.float(), torch.tensor(float(beta))

    def forward(self, q):
        x, xi, xs = q
        if self.w_t is not None:
            assert xi is not None, "a frozen BitLinear evaluates without gradients"
            return (F.linear(xi, self.w_t) * self.beta) / xs
        beta = self.weight.detach().abs().mean().clamp(min=1e-5)
        return F.linear(x, RoundSTE.apply(self.weight, 1.0 / beta, -1.0, 1.0))


def quantized(x):
    """BitLinear's input: in training x made int8 (its gradient straight through); exact, the
    integers and x_scale too"""
    if torch.is_grad_enabled():
        xs = 127.0 / x.detach().abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
        return RoundSTE.apply(x, xs, -128.0, 127.0), None, None
    xi, xs = act_quant(x)
    return xi / xs, xi, xs


class RMSNorm(nn.Module):
    """y = (x * inv) * w, inv = 1 / sqrt(sum(x^2) / n + eps). Exact (after load): the sum in fp32 in
    ascending order, as rsrc and docs/numerics.md sum it; training: PyTorch's sum."""

    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps
        self.exact = False

    def forward(self, x):
        if self.exact:
            ss = torch.zeros_like(x[..., :1])
            for i in range(x.shape[-1]):
                ss = ss + x[..., i:i + 1] * x[..., i:i + 1]
            inv = 1.0 / torch.sqrt(ss / float(x.shape[-1]) + self.eps)
        else:
            inv = 1.0 / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + self.eps)
        return (x * inv) * self.weight


def rope_tables(n, d, theta):
    """cos and sin [n, d/2]: angles in double, as rsrc computes them."""
    i = torch.arange(d // 2, dtype=torch.float64)
    inv_freq = torch.pow(torch.tensor(theta, dtype=torch.float64), -2.0 * i / d)
    a = torch.arange(n, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return torch.cos(a).float(), torch.sin(a).float()


def rope(x, cos, sin):
    """x [B, heads, T, d]: the halves rotated (HF's rotate_half)."""
    h = x.shape[-1] // 2
    x0, x1 = x[..., :h], x[..., h:]
    return torch.cat([x0 * cos - x1 * sin, x1 * cos + x0 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, I, d = c["hidden_size"], c["intermediate_size"], c["hidden_size"] // c["num_attention_heads"]
        self.heads, self.kv_heads, self.d = c["num_attention_heads"], c["num_key_value_heads"], d
        self.scale = float(np.float32(1.0) / np.sqrt(np.float32(d)))  # 1.0f / sqrtf((float)d)
        eps = c["rms_norm_eps"]
        self.input_layernorm = RMSNorm(H, eps)
        self.q_proj = BitLinear(H, self.heads * d)
        self.k_proj = BitLinear(H, self.kv_heads * d)
        self.v_proj = BitLinear(H, self.kv_heads * d)
        self.o_proj = BitLinear(self.heads * d, H)
        self.attn_sub_norm = RMSNorm(self.heads * d, eps)
        self.post_attention_layernorm = RMSNorm(H, eps)
        self.gate_proj = BitLinear(H, I)
        self.up_proj = BitLinear(H, I)
        self.down_proj = BitLinear(I, H)
        self.ffn_sub_norm = RMSNorm(I, eps)

    def forward(self, x, cos, sin, mask, probs=None):
        B, T, _ = x.shape
        q_in = quantized(self.input_layernorm(x))
        q = self.q_proj(q_in).view(B, T, self.heads, self.d).transpose(1, 2)
        k = self.k_proj(q_in).view(B, T, self.kv_heads, self.d).transpose(1, 2)
        v = self.v_proj(q_in).view(B, T, self.kv_heads, self.d).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        g = self.heads // self.kv_heads  # query head h reads KV head h // g: the g heads' rows stacked
        q = q.reshape(B, self.kv_heads, g * T, self.d)
        s = (q @ k.transpose(-1, -2)) * self.scale
        s = s.masked_fill(mask.repeat(g, 1), float("-inf"))
        e = torch.exp(s - s.amax(dim=-1, keepdim=True))  # o = (sum_j e_j v_j) / sum_j e_j, as rsrc
        total = e.sum(dim=-1, keepdim=True)
        if probs is not None:
            probs.append((e / total).detach().view(B, self.heads, T, T))
        a = ((e @ v) / total).view(B, self.heads, T, self.d).transpose(1, 2).reshape(B, T, self.heads * self.d)
        x = x + self.o_proj(quantized(self.attn_sub_norm(a)))
        f_in = quantized(self.post_attention_layernorm(x))
        r = torch.relu(self.gate_proj(f_in))
        f = r * r * self.up_proj(f_in)
        return x + self.down_proj(quantized(self.ffn_sub_norm(f)))


class BitNet(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        d = c["hidden_size"] // c["num_attention_heads"]
        cos, sin = rope_tables(c["max_position_embeddings"], d, c["rope_theta"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, ids, probs=None):
        """Logits [B, T, vocab] of token ids [B, T] from position 0 (probs: a list given the
        attention weights [B, heads, T, T] of each layer)."""
        T = ids.shape[1]
        x = self.embed_tokens(ids)
        cos, sin = self.cos[:T], self.sin[:T]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        for layer in self.layers:
            x = layer(x, cos, sin, mask, probs)
        return self.norm(x) @ self.embed_tokens.weight.T


def init_weights(model, gen):
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            continue
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


# ---------------------------------------------------------------------------------------------- checkpoint

BITLINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
              "mlp.up_proj", "mlp.down_proj")
NORMS = ("input_layernorm", "self_attn.attn_sub_norm", "post_attention_layernorm", "mlp.ffn_sub_norm")


def module_of(block, hf):
    return getattr(block, hf.split(".")[-1])


def bf16_bits(t):
    """round-to-nearest-even bf16 of an fp32 tensor, as uint16 numpy"""
    return t.detach().float().contiguous().to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def bf16_value(bits):
    return torch.from_numpy((bits.astype(np.uint32) << 16).view(np.float32).copy())


def pack_ternary(wt):
    """uint8 [out/4, in]: W_t[i*R + r][c] + 1 in bits 2i..2i+1 of P[r][c], R = out/4."""
    codes = (wt.numpy().astype(np.int8) + 1).astype(np.uint8)
    R = codes.shape[0] // 4
    p = np.zeros((R, codes.shape[1]), np.uint8)
    for i in range(4):
        p |= codes[i * R:(i + 1) * R] << (2 * i)
    return p


def unpack_ternary(p):
    R = p.shape[0]
    rows = [((p >> (2 * i)) & 3).astype(np.int8) - 1 for i in range(4)]
    if any((r == 2).any() for r in rows):
        raise ValueError("packed weights hold code 3")
    return torch.from_numpy(np.concatenate(rows).astype(np.float32)).reshape(4 * R, p.shape[1])


def write_safetensors(path, tensors):
    """tensors: {name: (dtype name, shape, bytes)}, written in name order"""
    header, off = {}, 0
    for name in sorted(tensors):
        dt, shape, data = tensors[name]
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name in sorted(tensors):
            f.write(tensors[name][2])


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    np_type = {"U8": np.uint8, "BF16": np.uint16, "F32": np.float32}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], np_type[e["dtype"]]).reshape(e["shape"])
    return out


def export(model, tok, out_dir):
    """config.json, model.safetensors, tokenizer.json: the 2B-4T layout. Returns the SHA-256 of
    model.safetensors."""
    c = model.c
    t = {}
    t["model.embed_tokens.weight"] = ("BF16", model.embed_tokens.weight.shape,
                                      bf16_bits(model.embed_tokens.weight).tobytes())
    t["model.norm.weight"] = ("BF16", model.norm.weight.shape, bf16_bits(model.norm.weight).tobytes())
    for L, block in enumerate(model.layers):
        for hf in BITLINEARS:
            lin = module_of(block, hf)
            wt, beta = ternarize(lin.weight.detach())
            t[f"model.layers.{L}.{hf}.weight"] = ("U8", (wt.shape[0] // 4, wt.shape[1]), pack_ternary(wt).tobytes())
            t[f"model.layers.{L}.{hf}.weight_scale"] = ("BF16", (1,), bf16_bits(beta.reshape(1)).tobytes())
        for hf in NORMS:
            w = module_of(block, hf).weight
            t[f"model.layers.{L}.{hf}.weight"] = ("BF16", w.shape, bf16_bits(w).tobytes())
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), t)
    config = {"architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2"}
    config.update({k: c[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                     "num_key_value_heads", "vocab_size", "max_position_embeddings", "rms_norm_eps",
                                     "rope_theta")})
    config.update({"bos_token_id": tok.bos, "eos_token_id": tok.eos, "tie_word_embeddings": True,
                   "torch_dtype": "bfloat16", "attention_bias": False,
                   "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                           "quantization_mode": "offline"}})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok.to_json(), f, ensure_ascii=False, indent=1)
        f.write("\n")
    if EOT in tok.ids:
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump({"bos_token": BOS, "eos_token": EOT, "model_max_length": c["max_position_embeddings"],
                       "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": CHAT_TEMPLATE}, f, indent=1)
            f.write("\n")
    with open(os.path.join(out_dir, "model.safetensors"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load(model_dir):
    """(BitNet in exact mode, Tokenizer) from a checkpoint export() wrote: the ternary weights,
    bf16 scales, embeddings and norms as stored."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    st = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    model = BitNet(cfg)
    with torch.no_grad():
        model.embed_tokens.weight.copy_(bf16_value(st["model.embed_tokens.weight"]))
        model.norm.weight.copy_(bf16_value(st["model.norm.weight"]))
        for L, block in enumerate(model.layers):
            for hf in BITLINEARS:
                beta = bf16_value(st[f"model.layers.{L}.{hf}.weight_scale"])[0]
                module_of(block, hf).freeze(unpack_ternary(st[f"model.layers.{L}.{hf}.weight"]), beta)
            for hf in NORMS:
                module_of(block, hf).weight.copy_(bf16_value(st[f"model.layers.{L}.{hf}.weight"]))
    for m in model.modules():
        if isinstance(m, RMSNorm):
            m.exact = True
    model.eval()
    return model, Tokenizer.load(os.path.join(model_dir, "tokenizer.json"))


# ---------------------------------------------------------------------------------------------- evaluation


def windows(verse_ids, ctx):
    """Consecutive verses packed into sequences of at most ctx tokens, each <|begin_of_text|>
    first (the caller's), a verse longer than a window cut."""
    out, cur = [], []
    for ids in verse_ids:
        if cur and len(cur) + len(ids) > ctx - 1:
            out.append(cur)
            cur = []
        cur = cur + ids[:ctx - 1 - len(cur)]
    if cur:
        out.append(cur)
    return out


def chat_windows(tok, chats, ctx):
    """Whole chats packed into windows of ctx tokens, <|begin_of_text|> first, as they train."""
    return [[tok.bos] + w for w in windows([tok.chat(turns)[1:] for turns in chats], ctx)]


def heldout_windows(tok, heldout_text, ctx):
    merged = []  # one verse a line; a chapter's blank line belongs to the verse before it
    for v in heldout_text.splitlines(keepends=True):
        if v == "\n" and merged:
            merged[-1] += v
        else:
            merged.append(v)
    return [[tok.bos] + w for w in windows([tok.encode(v) for v in merged], ctx)]


def nll(model, seqs):
    """(summed negative log-likelihood in nats, tokens scored) over sequences, every token after
    the first predicted"""
    total, count = 0.0, 0
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s])
            logits = model(ids)[0, :-1].double()
            total += F.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            count += len(s) - 1
    return total, count


# ---------------------------------------------------------------------------------------------- training


def epoch_starts(starts, n, ctx, rng, epoch):
    """The first tokens of one epoch's windows of ctx tokens: each at a verse's start, the next at
    the last verse start inside the window before it (the verse it cuts is seen whole again), so
    that an epoch covers the text once. The first epoch starts at the first verse; later ones at
    one of the first 16 (and the first verse starts a window of its own)."""
    usable = starts[starts + ctx <= n]
    k = 0 if epoch == 0 else int(rng.integers(1, 16))
    out = [0] if k else []
    s = int(usable[k])
    while True:
        out.append(s)
        j = int(np.searchsorted(usable, s + ctx, side="right")) - 1
        if j >= len(usable) - 1 and s == int(usable[-1]):
            return out
        s = int(usable[min(len(usable) - 1, max(j, int(np.searchsorted(usable, s, side="right"))))])


def corpus(args, tok=None):
    """The run's data: the training text as one stream of ids and its verse starts, the chats as
    another and theirs, the held-out book's windows as text and as chats. Learns the tokenizer
    (train_bpe) unless one is given."""
    verses = read_bible(args.corpus)
    if args.books:
        keep = set(args.books.split(","))
        verses = [v for v in verses if v[0] in keep]
    strings = verse_strings(verses)
    train_v = [s for v, s in zip(verses, strings) if v[0] != HELDOUT_BOOK]
    held_v = [s for v, s in zip(verses, strings) if v[0] == HELDOUT_BOOK]
    chat_rng = np.random.default_rng(args.seed + 1)
    train_chats = conversations([v for v in verses if v[0] != HELDOUT_BOOK], train_v, chat_rng)
    held_chats = conversations([v for v in verses if v[0] == HELDOUT_BOOK], held_v, chat_rng)
    if tok is None:
        tok = Tokenizer(*train_bpe("".join(train_v), args.vocab))
    verse_ids = [tok.encode(s) for s in train_v]
    chat_ids = [tok.chat(turns)[1:] for turns in train_chats]  # each window gets its own BOS
    d = {"tok": tok, "verses": len(verse_ids), "chats": len(train_chats), "heldout_text": "".join(held_v),
         "stream": np.array([i for ids in verse_ids for i in ids], np.int64),
         "starts": np.cumsum([0] + [len(ids) for ids in verse_ids[:-1]]),
         "chat_stream": np.array([i for ids in chat_ids for i in ids], np.int64),
         "chat_starts": np.cumsum([0] + [len(ids) for ids in chat_ids[:-1]])}
    d["held"] = heldout_windows(tok, d["heldout_text"], args.ctx)
    d["held_chat"] = chat_windows(tok, held_chats, args.ctx)
    return d


def optimise(model, d, args, rng, t0):
    """args.steps steps of AdamW on d's text and chats (a step: args.batch sequences, a share
    args.chat_share of them chats); the curve, an entry each args.log_every steps."""
    n_chat = int(round(args.batch * args.chat_share))
    tok, stream, chat_stream = d["tok"], d["stream"], d["chat_stream"]
    decay = [p for n, p in model.named_parameters() if n.endswith("proj.weight")]
    other = [p for n, p in model.named_parameters() if not n.endswith("proj.weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    order, chat_order = [], []  # window starts left in this epoch of the text, of the chats
    epoch = chat_epoch = 0
    curve = []
    run_loss, run_n = 0.0, 0
    for step in range(1, args.steps + 1):
        warm = min(1.0, step / max(1, args.warmup))
        prog = max(0.0, (step - args.warmup) / max(1, args.steps - args.warmup))
        lr = args.lr * warm * (args.min_lr + (1 - args.min_lr) * 0.5 * (1 + math.cos(math.pi * prog)))
        for g in opt.param_groups:
            g["lr"] = lr
            if g["weight_decay"]:
                g["weight_decay"] = args.wd if step <= args.steps // 2 else 0.0  # BitNet's second stage
        while len(order) < args.batch - n_chat:
            order += list(rng.permutation(epoch_starts(d["starts"], len(stream), args.ctx, rng, epoch)))
            epoch += 1
        while len(chat_order) < n_chat:
            chat_order += list(rng.permutation(epoch_starts(d["chat_starts"], len(chat_stream), args.ctx, rng,
                                                            chat_epoch)))
            chat_epoch += 1
        pick, order = order[:args.batch - n_chat], order[args.batch - n_chat:]
        chat_pick, chat_order = chat_order[:n_chat], chat_order[n_chat:]
        x = np.stack([stream[s:s + args.ctx] for s in pick] + [chat_stream[s:s + args.ctx] for s in chat_pick])
        inp = torch.from_numpy(np.concatenate([np.full((args.batch, 1), tok.bos), x[:, :-1]], axis=1))
        tgt = torch.from_numpy(x)
        model.train()
        logits = model(inp)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run_loss += loss.item()
        run_n += 1
        if step % args.log_every == 0 or step == args.steps:
            model.eval()
            tot, cnt = nll(model, d["held"])
            ctot, ccnt = nll(model, d["held_chat"])
            entry = {"step": step, "seconds": round(time.time() - t0, 1), "train_loss": round(run_loss / run_n, 4),
                     "heldout_loss": round(tot / cnt, 4), "heldout_ppl": round(math.exp(tot / cnt), 2),
                     "heldout_chat_loss": round(ctot / ccnt, 4), "lr": round(lr, 6)}
            curve.append(entry)
            print("train_tiny: " + " ".join(f"{k} {v}" for k, v in entry.items()), flush=True)
            run_loss, run_n = 0.0, 0
    return curve


def describe_data(d, args, n_params, t0):
    n_chat = int(round(args.batch * args.chat_share))
    tok = d["tok"]
    print(f"train_tiny: {d['verses']} training verses, {len(d['stream'])} tokens (vocab {len(tok.tokens)}, "
          f"{len(tok.merges)} merges); {d['chats']} chats, {len(d['chat_stream'])} tokens ({n_chat} of a step's "
          f"{args.batch} sequences); held out: {HELDOUT_BOOK}, {sum(len(w) - 1 for w in d['held'])} tokens, as "
          f"chats {sum(len(w) - 1 for w in d['held_chat'])}; {n_params} parameters; {time.time() - t0:.0f} s",
          flush=True)


def finish(model, d, args, t0, summary):
    """Exports the model to args.out with heldout.txt and training.json (summary and the
    exported weights' held-out figures)."""
    digest = export(model, d["tok"], args.out)
    with open(os.path.join(args.out, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write(d["heldout_text"])
    exact, _ = load(args.out)
    tot, cnt = nll(exact, d["held"])
    ctot, ccnt = nll(exact, d["held_chat"])
    out = {"command": "scripts/train_tiny.py " + " ".join(sys.argv[1:]), "seed": args.seed,
           "threads": args.threads}
    out.update(summary)
    out.update({"train_tokens": int(len(d["stream"])), "chat_share": args.chat_share, "train_chats": d["chats"],
                "chat_tokens": int(len(d["chat_stream"])), "heldout_book": HELDOUT_BOOK, "heldout_tokens": cnt,
                "heldout_chat_tokens": ccnt, "seconds": round(time.time() - t0, 1), "torch": torch.__version__,
                "exported_heldout_loss": round(tot / cnt, 4), "exported_heldout_ppl": round(math.exp(tot / cnt), 3),
                "exported_heldout_chat_loss": round(ctot / ccnt, 4), "model_safetensors_sha256": digest})
    out["curve"] = out.pop("curve")
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"train_tiny: wrote {args.out}: held-out perplexity {math.exp(tot / cnt):.3f}, chat loss "
          f"{ctot / ccnt:.4f} (exported weights), model.safetensors sha256 {digest}, {time.time() - t0:.0f} s",
          flush=True)


def setup(args):
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(args.seed), np.random.default_rng(args.seed), time.time()


def train(args):
    gen, rng, t0 = setup(args)
    # --tokenizer DIR: that checkpoint's tokenizer instead of one trained here (a draft model for
    # speculative decoding shares its model's vocabulary)
    d = corpus(args, Tokenizer.load(os.path.join(args.tokenizer, "tokenizer.json")) if args.tokenizer else None)
    c = {"hidden_size": args.hidden, "intermediate_size": args.intermediate, "num_hidden_layers": args.layers,
         "num_attention_heads": args.heads, "num_key_value_heads": args.kv_heads, "vocab_size": len(d["tok"].tokens),
         "max_position_embeddings": args.ctx, "rms_norm_eps": 1e-5, "rope_theta": args.rope_theta}
    model = BitNet(c)
    init_weights(model, gen)
    n_params = sum(p.numel() for p in model.parameters())
    describe_data(d, args, n_params, t0)
    curve = optimise(model, d, args, rng, t0)
    finish(model, d, args, t0, {"parameters": n_params, "curve": curve})


def chat_tune(args):
    """A checkpoint export() wrote, taught to chat: its tokenizer gains <|start_header_id|>,
    <|end_header_id|>, <|eot_id|> where it lacks them (and reserved tokens up to a multiple of 8),
    their embeddings starting at the mean of the others'; every ternary layer's latent weights
    start at W_t * beta / mean|W_t| (whose absmean is beta: the forward starts as the
    checkpoint's), and training goes on with chats in the batches."""
    gen, rng, t0 = setup(args)
    base, tok0 = load(args.base)
    tokens = list(tok0.tokens)
    if EOT not in tok0.ids:  # a checkpoint of the first recipe: the turn tokens appended
        tokens += [HEADER, END_HEADER, EOT]
        while len(tokens) % 8:
            tokens.append(f"<|reserved_special_token_{len(tokens) - len(tok0.tokens) - 3}|>")
    tok = Tokenizer(tokens, tok0.merges)
    args.ctx = base.c["max_position_embeddings"]
    d = corpus(args, tok)
    c = dict(base.c, vocab_size=len(tokens))
    model = BitNet(c)
    with torch.no_grad():
        e = base.embed_tokens.weight
        new = e.mean(0) + 0.1 * e.std(0) * torch.randn(len(tokens) - e.shape[0], e.shape[1], generator=gen)
        model.embed_tokens.weight.copy_(torch.cat([e, new]))
        model.norm.weight.copy_(base.norm.weight)
        for b_old, b_new in zip(base.layers, model.layers):
            for hf in BITLINEARS:
                lo, ln = module_of(b_old, hf), module_of(b_new, hf)
                ln.weight.copy_(lo.w_t * (lo.beta / lo.w_t.abs().mean()))
            for hf in NORMS:
                module_of(b_new, hf).weight.copy_(module_of(b_old, hf).weight)
    with open(os.path.join(args.base, "training.json")) as f:
        base_run = json.load(f)
    n_params = sum(p.numel() for p in model.parameters())
    describe_data(d, args, n_params, t0)
    curve = optimise(model, d, args, rng, t0)
    finish(model, d, args, t0, {"parameters": n_params, "base": {
        "command": base_run.get("command"), "seconds": base_run.get("seconds"),
        "model_safetensors_sha256": base_run.get("model_safetensors_sha256"),
        "exported_heldout_ppl": base_run.get("exported_heldout_ppl"), "curve": base_run.get("curve")},
        "curve": curve})


def greedy(model, ids, n):
    ids = list(ids)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids[-model.c["max_position_embeddings"]:]]))[0, -1].argmax()))
    return ids


def main():
    ap = argparse.ArgumentParser(description="Train a small BitNet b1.58 model on the King James Bible.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    def run_args(p, steps, lr, warmup, wd, log_every, chat_share, lr_help=None):
        """The options train and chat-tune share, with each one's defaults."""
        p.add_argument("--out", required=True)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--corpus", help="a file of `bible -f` output (default: run bible)")
        p.add_argument("--books", help="only these books (comma separated, as bible abbreviates them)")
        p.add_argument("--batch", type=int, default=8)
        p.add_argument("--steps", type=int, default=steps)
        p.add_argument("--lr", type=float, default=lr, help=lr_help)
        p.add_argument("--min-lr", type=float, default=0.1, help="the last learning rate, relative to --lr")
        p.add_argument("--warmup", type=int, default=warmup)
        p.add_argument("--wd", type=float, default=wd)
        p.add_argument("--log-every", type=int, default=log_every)
        p.add_argument("--chat-share", type=float, default=chat_share, help="the share of a step's sequences that are chats")

    t = sub.add_parser("train")
    run_args(t, steps=2000, lr=3e-3, warmup=100, wd=0.1, log_every=50, chat_share=0.25)
    t.add_argument("--vocab", type=int, default=3072)
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--intermediate", type=int, default=768)
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--heads", type=int, default=4)
    t.add_argument("--kv-heads", type=int, default=2)
    t.add_argument("--ctx", type=int, default=512)
    t.add_argument("--rope-theta", type=float, default=10000.0)
    t.add_argument("--tokenizer", help="a checkpoint whose tokenizer.json to use (default: train one)")
    ct = sub.add_parser("chat-tune", help="teach a trained checkpoint the chat turns")
    ct.add_argument("base", help="a checkpoint `train` wrote")
    run_args(ct, steps=300, lr=3e-4, warmup=20, wd=0.0, log_every=25, chat_share=0.5,
             lr_help="the peak: the base run's last learning rate")
    h = sub.add_parser("heldout-ppl")
    h.add_argument("model")
    g = sub.add_parser("generate")
    g.add_argument("model")
    g.add_argument("prompt")
    g.add_argument("-n", type=int, default=40)
    args = ap.parse_args()
    if args.cmd == "train":
        train(args)
    elif args.cmd == "chat-tune":
        chat_tune(args)
    elif args.cmd == "heldout-ppl":
        torch.set_num_threads(2)
        model, tok = load(args.model)
        with open(os.path.join(args.model, "heldout.txt"), encoding="utf-8") as f:
            held = heldout_windows(tok, f.read(), model.c["max_position_embeddings"])
        tot, cnt = nll(model, held)
        print(f"{cnt} tokens, loss {tot / cnt:.4f}, perplexity {math.exp(tot / cnt):.3f}")
    else:
        model, tok = load(args.model)
        print(tok.decode(greedy(model, tok.encode(args.prompt, bos=True), args.n)))


if __name__ == "__main__":
    main()
