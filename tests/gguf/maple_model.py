#!/usr/bin/env python3
# An independent float64 reference for maple GGUF files (llama.cpp's "maple" architecture, a
# mixture of experts), the check of rsrc's maple support: standard library only, nothing shared
# with rsrc's C code (the GGUF reader and the dequantisers are tests/gguf/qwen3_model.py's and
# gemma3_model.py's).
#
# reference: reads the file (sizes from its metadata) and runs llama.cpp's maple graph in float64
# with nothing quantised but the weights (TQ2_0, Q2_0 or Q1_0, as stored): per
# layer RMSNorm, q, k, v, RMSNorm of each head of q and k, NEOX RoPE on the windowed layers only
# (base ARCH.rope.freq_base_swa, ARCH.rope.freq_base when absent; the other layers rotate nothing),
# the scores scaled by 1/sqrt(key_length), GQA attention over the cache, restricted on the windowed
# layers (ARCH.attention.sliding_window_pattern) to the last W = ARCH.attention.sliding_window
# positions, o, the residual add; then RMSNorm (ffn_norm) and the mixture of experts: router
# logits ffn_gate_inp . x, softmax, the ARCH.expert_used_count largest probabilities (ties: the
# lower index) with weights p / sum of the chosen p, each chosen expert e's down_e(silu(g) * u)
# with g = gate_e . x, u = up_e . x (ARCH.swiglu_clamp_exp c > 0: silu(min(g, c)) *
# clamp(u, -c, c)), weighted and summed, the residual add; the output norm and output.weight.
# The stacked tensors blk.N.ffn_{gate,up,down}_exps [cols, rows, experts] are read as ggml lays
# them out: expert e's rows follow expert e-1's.
# --ablate renorm|rope|clamp: without the renormalisation of the chosen weights, with RoPE (base
# rope.freq_base) on the global layers as well, or without the clamp: what a runtime that missed
# one of them would compute (the test checks that rsrc's logits disagree with these).
# --follow FILE MARGIN: where the reference's own choice differs from FILE's (rsrc's routing,
# RSR_TRACE_ROUTING) in a near tie, its k-th and (k+1)-th probabilities within MARGIN, take FILE's:
# such a tie is tipped either way by rounding, and a flipped expert changes the token's output
# entirely, so the logits are compared along the same choice (the count goes to stderr). Choices
# that differ beyond MARGIN are kept (compare_routes.py fails on them).
# --routes FILE: a line "POS LAYER E1 E2 ... GAP" per token and layer, the chosen experts in
# descending order of probability and GAP the k-th largest probability less the (k+1)-th (0 when
# every expert is used): how near the choice came to another.
# Usage: maple_model.py reference MODEL.gguf ID,ID,... [--json OUT] [--routes FILE] [--ablate ...]
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_model as q3  # noqa: E402  (its GGUF reader)
import gemma3_model as g3  # noqa: E402  (TQ2_0 and BF16, dot, matvec, softmax)

ATTN = ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'attn_q_norm', 'attn_k_norm', 'ffn_norm',
        'ffn_gate_inp']
EXPS = ['ffn_gate_exps', 'ffn_up_exps', 'ffn_down_exps']


def silu(x):
    return x / (1.0 + math.exp(-x)) if x > -700 else 0.0


class Router:
    """The choice of experts that maple_model.py and qwen35_model.py share: the n_used largest p
    (ties: the lower index), recorded in self.routes with the gap to the next; where rsrc's choice
    (self.follow, from RSR_TRACE_ROUTING) differs in a near tie (gap < self.margin), rsrc's."""

    def route(self, p, pos, l):
        order = sorted(range(len(p)), key=lambda e: (-p[e], e))
        chosen = order[:self.n_used]
        gap = p[chosen[-1]] - p[order[self.n_used]] if self.n_used < len(p) else 0.0
        self.routes.append((pos, l, chosen, gap))
        other = self.follow.get((pos, l))
        if other and sorted(other) != sorted(chosen) and gap < self.margin:
            chosen, self.followed = other, self.followed + 1
        return chosen


def routes_args(r):
    """The reference parser's --routes and --follow."""
    r.add_argument('--routes', help='each token\'s chosen experts per layer, and the gap to the next')
    r.add_argument('--follow', nargs=2, metavar=('ROUTES', 'MARGIN'), help='take these choices in near ties')


def read_follow(args):
    """--follow ROUTES MARGIN as ({(pos, layer): experts}, margin); ({}, 0) without it."""
    follow, margin = {}, 0.0
    if args.follow:
        margin = float(args.follow[1])
        with open(args.follow[0]) as f:
            for line in f:
                v = [int(x) for x in line.split()]
                follow[(v[0], v[1])] = v[2:]
    return follow, margin


def report_routes(args, m, who):
    """After a run: how many near ties took rsrc's choice (--follow), and the routes (--routes)."""
    if args.follow:
        print('%s: took rsrc\'s choice in %d near ties (within %g)' % (who, m.followed, m.margin), file=sys.stderr)
    if args.routes:
        with open(args.routes, 'w') as f:
            for pos, l, chosen, gap in m.routes:
                f.write('%d %d %s %.9g\n' % (pos, l, ' '.join(map(str, chosen)), gap))


class Maple(Router):
    def __init__(self, path, ablate=None, follow=None, margin=0.0):
        meta, ts = q3.read_gguf(path)
        if meta['general.architecture'] != 'maple':
            sys.exit('maple_model.py: %s is not a maple file' % path)
        a = 'maple.'
        self.ablate = ablate
        self.hidden = meta[a + 'embedding_length']
        self.heads = meta[a + 'attention.head_count']
        self.kv_heads = meta.get(a + 'attention.head_count_kv', self.heads)
        self.head_dim = meta.get(a + 'attention.key_length', self.hidden // self.heads)
        self.eps = meta[a + 'attention.layer_norm_rms_epsilon']
        n_layers = meta[a + 'block_count']
        self.n_expert, self.n_used = meta[a + 'expert_count'], meta[a + 'expert_used_count']
        clamp = meta.get(a + 'swiglu_clamp_exp', 0.0)
        clamp = clamp if isinstance(clamp, list) else [clamp] * n_layers
        self.clamp = [c if c > 1e-6 and ablate != 'clamp' else 0.0 for c in clamp]
        window = meta[a + 'attention.sliding_window']
        swa = [bool(v) for v in meta[a + 'attention.sliding_window_pattern']]
        theta = meta.get(a + 'rope.freq_base', 10000.0)
        theta_swa = meta.get(a + 'rope.freq_base_swa', theta)
        self.window = [window if s else 0 for s in swa]
        self.theta = [theta_swa if s else theta if ablate == 'rope' else None for s in swa]
        self.embd = g3.load(ts, 'token_embd.weight')
        self.output = g3.load(ts, 'output.weight')
        self.output_norm = g3.load(ts, 'output_norm.weight')
        self.layers = []
        for l in range(n_layers):
            L = {n: g3.load(ts, 'blk.%d.%s.weight' % (l, n)) for n in ATTN}
            for n in EXPS:  # [rows of every expert]: expert e is rows e*R .. (e+1)*R - 1
                rows = g3.load(ts, 'blk.%d.%s.weight' % (l, n))
                R = len(rows) // self.n_expert
                L[n] = [rows[e * R:(e + 1) * R] for e in range(self.n_expert)]
            self.layers.append(L)
        self.routes, self.follow, self.margin, self.followed = [], follow or {}, margin, 0

    def rmsnorm(self, x, w):
        s = 1.0 / math.sqrt(math.fsum(v * v for v in x) / len(x) + self.eps)
        return [v * s * g for v, g in zip(x, w)]

    def attention(self, l, x, pos, cache):
        """The attention block's output for one new token; cache: [(k heads, v heads)] of layer l."""
        L, d, theta = self.layers[l], self.head_dim, self.theta[l]

        def heads(v, n):
            return [v[i * d:(i + 1) * d] for i in range(n)]

        def rot(v):
            return v if theta is None else g3.Gemma3.rope(None, v, pos, theta)

        scale = 1.0 / math.sqrt(d)
        q = [[v * scale for v in rot(self.rmsnorm(h, L['attn_q_norm']))]
             for h in heads(g3.matvec(L['attn_q'], x), self.heads)]
        k = [rot(self.rmsnorm(h, L['attn_k_norm'])) for h in heads(g3.matvec(L['attn_k'], x), self.kv_heads)]
        cache.append((k, heads(g3.matvec(L['attn_v'], x), self.kv_heads)))
        first = max(0, len(cache) - self.window[l]) if self.window[l] else 0
        seen, group, out = cache[first:], self.heads // self.kv_heads, []
        for h in range(self.heads):
            g = h // group
            p = g3.softmax([g3.dot(q[h], kt[g]) for kt, _ in seen])
            out += [math.fsum(w * vt[g][i] for w, (_, vt) in zip(p, seen)) for i in range(d)]
        return g3.matvec(L['attn_output'], out)

    def experts(self, l, x, pos):
        L, c = self.layers[l], self.clamp[l]
        p = g3.softmax(g3.matvec(L['ffn_gate_inp'], x))
        chosen = self.route(p, pos, l)
        total = sum(p[e] for e in chosen) if self.ablate != 'renorm' else 1.0
        out = [0.0] * self.hidden
        for e in chosen:
            g, u = g3.matvec(L['ffn_gate_exps'][e], x), g3.matvec(L['ffn_up_exps'][e], x)
            if c > 0:
                g, u = [min(v, c) for v in g], [min(max(v, -c), c) for v in u]
            y = g3.matvec(L['ffn_down_exps'][e], [silu(a) * b for a, b in zip(g, u)])
            w = p[e] / max(total, 6.103515625e-5)
            out = [o + w * v for o, v in zip(out, y)]
        return out

    def step(self, tok, pos, caches):
        """The logits after token tok at position pos; caches: one KV list per layer."""
        h = list(self.embd[tok])
        for l, (L, cache) in enumerate(zip(self.layers, caches)):
            a = self.attention(l, self.rmsnorm(h, L['attn_norm']), pos, cache)
            h = [x + y for x, y in zip(h, a)]
            f = self.experts(l, self.rmsnorm(h, L['ffn_norm']), pos)
            h = [x + y for x, y in zip(h, f)]
        return g3.matvec(self.output, self.rmsnorm(h, self.output_norm))

    def run(self, ids):
        caches = [[] for _ in self.layers]
        return [self.step(t, p, caches) for p, t in enumerate(ids)]


def main():
    ap, _, r = q3.reference_parser('maple')
    routes_args(r)
    r.add_argument('--ablate', choices=['renorm', 'rope', 'clamp'],
                   help='no renormalised weights, RoPE on the global layers, or no SwiGLU clamp')
    args = ap.parse_args()
    follow, margin = read_follow(args)
    m = Maple(args.model, args.ablate, follow, margin)
    q3.emit_json(args.json, {'logits': m.run([int(t) for t in args.ids.split(',')])})
    report_routes(args, m, 'maple_model.py')


if __name__ == '__main__':
    main()
