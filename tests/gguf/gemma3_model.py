#!/usr/bin/env python3
# An independent float64 reference for Gemma3 GGUF files (llama.cpp's "gemma3" architecture), the
# check of rsrc's Gemma3 support: standard library only, nothing shared with rsrc's C code (the
# GGUF reader is tests/gguf/qwen3_model.py's, taught TQ2_0 and BF16 here).
#
# reference: reads the file (sizes from its metadata) and runs llama.cpp's Gemma3 graph in float64
# with nothing quantised but the weights (I2_S, TQ2_0, Q2_0 or Q1_0 as stored; the norms, as the
# converter stores them, already hold Gemma's 1 + w): the embedding row times sqrt(hidden); per
# layer RMSNorm, q, k, v, RMSNorm of each head of q and k, NEOX RoPE, the scores scaled by
# 1/sqrt(key_length) (1/sqrt(hidden/heads) for 62 layers, as llama.cpp), GQA attention over the
# cache, restricted on the local layers to the last W = ARCH.attention.sliding_window positions,
# o, RMSNorm of its output (post_attention_norm), the residual add; RMSNorm, GELU (tanh form)
# of gate times up, down, RMSNorm of its output (post_ffw_norm), the residual add; the output norm
# and the head (output.weight or the embeddings). Local layers: all but every 6th (layer l with
# l % 6 < 5; ARCH.attention.sliding_window_pattern when the file has it), with RoPE base
# ARCH.rope.freq_base_swa (10000 when absent) where the global ones take ARCH.rope.freq_base. A file
# with BitNet's per-projection norms (blk.N.*_norm_in) gets them with int8 activations per token
# (absmax, round half to even) as BitNet runs its BitLinear layers.
# --ablate window|rope: the same model without the windows (every layer global) or with one RoPE
# base for all layers: what a runtime ignoring them would compute (the test checks that rsrc's
# logits disagree with these).
# Usage: gemma3_model.py reference MODEL.gguf ID,ID,... [--json OUT] [--ablate window|rope]
import math
import operator
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_model as q3  # noqa: E402  (its GGUF reader)

TQ2_0, BF16 = 35, 30
q3.BLOCK[TQ2_0] = (256, 66)  # 64 bytes of 2-bit codes, then an f16 scale
q3.BLOCK[BF16] = (1, 2)
PROJS = ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down']


def tq2_values(raw, n):
    """TQ2_0: byte j*32 + m of a block holds, at bits 2l, the code (value + 1) of element
    j*128 + l*32 + m; the block's f16 d at byte 64."""
    out = []
    for o in range(0, n // 256 * 66, 66):
        d = struct.unpack_from('<e', raw, o + 64)[0]
        blk = [0.0] * 256
        for j in range(2):
            for l in range(4):
                for m in range(32):
                    blk[j * 128 + l * 32 + m] = float((raw[o + j * 32 + m] >> (2 * l) & 3) - 1) * d
        out += blk
    return out


def load(ts, name):
    ne, typ, raw = ts[name]
    n = math.prod(ne)
    if typ == BF16:  # the high half of an f32
        v = [struct.unpack('<f', struct.pack('<I', h << 16))[0] for h in struct.unpack('<%dH' % n, raw)]
    else:
        v = tq2_values(raw, n) if typ == TQ2_0 else q3.dequant(typ, raw, n)
    return v if len(ne) == 1 else [v[i:i + ne[0]] for i in range(0, n, ne[0])]


def dot(a, b):
    return sum(map(operator.mul, a, b))


matvec = q3.matvec  # float64, through numpy where it is installed


def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    s = sum(e)
    return [x / s for x in e]


def gelu(x):
    return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


class Gemma3:
    def __init__(self, path, ablate=None):
        meta, ts = q3.read_gguf(path)
        if meta['general.architecture'] != 'gemma3':
            sys.exit('gemma3_model.py: %s is not a gemma3 file' % path)
        a = 'gemma3.'
        self.hidden = meta[a + 'embedding_length']
        self.heads = meta[a + 'attention.head_count']
        self.kv_heads = meta.get(a + 'attention.head_count_kv', self.heads)
        self.head_dim = meta.get(a + 'attention.key_length', self.hidden // self.heads)
        self.eps = meta[a + 'attention.layer_norm_rms_epsilon']
        n_layers = meta[a + 'block_count']
        scale_dim = self.hidden // self.heads if n_layers == 62 else self.head_dim
        self.q_scale = 1.0 / math.sqrt(scale_dim)
        window = meta.get(a + 'attention.sliding_window', 0)
        pattern = meta.get(a + 'attention.sliding_window_pattern', 6)
        local = [bool(pattern[l]) if isinstance(pattern, list) else pattern == 0 or l % pattern < pattern - 1
                 for l in range(n_layers)]
        theta, theta_swa = meta.get(a + 'rope.freq_base', 10000.0), meta.get(a + 'rope.freq_base_swa', 10000.0)
        self.window = [window if loc and window and ablate != 'window' else 0 for loc in local]
        self.theta = [theta_swa if loc and window and ablate != 'rope' else theta for loc in local]
        self.embd = load(ts, 'token_embd.weight')
        self.output = load(ts, 'output.weight') if 'output.weight' in ts else self.embd
        self.output_norm = load(ts, 'output_norm.weight')
        names = ['attn_norm', 'attn_q_norm', 'attn_k_norm', 'post_attention_norm', 'ffn_norm', 'post_ffw_norm']
        names += PROJS
        self.bitnet = 'blk.0.attn_q_norm_in.weight' in ts
        if self.bitnet:
            names += [p + '_norm_in' for p in PROJS]
        self.layers = [{n: load(ts, 'blk.%d.%s.weight' % (l, n)) for n in names} for l in range(n_layers)]

    def rmsnorm(self, x, w):
        s = 1.0 / math.sqrt(math.fsum(v * v for v in x) / len(x) + self.eps)
        return [v * s * g for v, g in zip(x, w)]

    def rope(self, x, pos, theta):
        """NEOX rotation: element i pairs with i + d/2, angle pos * theta^(-2i/d)."""
        h, d = len(x) // 2, len(x)
        out = [0.0] * d
        for i in range(h):
            t = pos * theta ** (-2.0 * i / d)
            c, s = math.cos(t), math.sin(t)
            out[i] = x[i] * c - x[i + h] * s
            out[i + h] = x[i] * s + x[i + h] * c
        return out

    def proj(self, L, name, x):
        """W . x; with BitNet's norms W . q / s, q = round(x' * s) clamped to [-128, 127],
        s = 127 / max(max |x'|, 1e-5), x' = rmsnorm(x, the projection's own norm)."""
        if not self.bitnet:
            return matvec(L[name], x)
        x = self.rmsnorm(x, L[name + '_norm_in'])
        s = 127.0 / max(max(abs(v) for v in x), 1e-5)
        return [v / s for v in matvec(L[name], [min(max(round(v * s), -128), 127) for v in x])]

    def attention(self, l, x, pos, cache):
        """The attention block's output for one new token; cache: [(k heads, v heads)] of layer l."""
        L, d = self.layers[l], self.head_dim

        def heads(v, n):
            return [v[i * d:(i + 1) * d] for i in range(n)]

        q = [[v * self.q_scale for v in self.rope(self.rmsnorm(h, L['attn_q_norm']), pos, self.theta[l])]
             for h in heads(self.proj(L, 'attn_q', x), self.heads)]
        k = [self.rope(self.rmsnorm(h, L['attn_k_norm']), pos, self.theta[l])
             for h in heads(self.proj(L, 'attn_k', x), self.kv_heads)]
        cache.append((k, heads(self.proj(L, 'attn_v', x), self.kv_heads)))
        first = max(0, len(cache) - self.window[l]) if self.window[l] else 0
        seen, group, out = cache[first:], self.heads // self.kv_heads, []
        for h in range(self.heads):
            g = h // group
            p = softmax([dot(q[h], kt[g]) for kt, _ in seen])
            out += [math.fsum(w * vt[g][i] for w, (_, vt) in zip(p, seen)) for i in range(d)]
        return self.proj(L, 'attn_output', out)

    def ffn(self, L, x):
        g, u = self.proj(L, 'ffn_gate', x), self.proj(L, 'ffn_up', x)
        return self.proj(L, 'ffn_down', [gelu(a) * b for a, b in zip(g, u)])

    def step(self, tok, pos, caches):
        """The logits after token tok at position pos; caches: one KV list per layer."""
        s = math.sqrt(self.hidden)
        h = [v * s for v in self.embd[tok]]
        for l, (L, cache) in enumerate(zip(self.layers, caches)):
            a = self.attention(l, self.rmsnorm(h, L['attn_norm']), pos, cache)
            h = [x + y for x, y in zip(h, self.rmsnorm(a, L['post_attention_norm']))]
            f = self.ffn(L, self.rmsnorm(h, L['ffn_norm']))
            h = [x + y for x, y in zip(h, self.rmsnorm(f, L['post_ffw_norm']))]
        return matvec(self.output, self.rmsnorm(h, self.output_norm))

    def run(self, ids):
        caches = [[] for _ in self.layers]
        return [self.step(t, p, caches) for p, t in enumerate(ids)]


def main():
    ap, _, r = q3.reference_parser('Gemma3')
    r.add_argument('--ablate', choices=['window', 'rope'], help='ignore the sliding windows, or the local RoPE base')
    args = ap.parse_args()
    q3.emit_json(args.json, {'logits': Gemma3(args.model, args.ablate).run([int(t) for t in args.ids.split(',')])})


if __name__ == '__main__':
    main()
