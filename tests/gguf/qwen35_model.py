#!/usr/bin/env python3
# An independent float64 reference for qwen35 GGUF files (Qwen3.5's hybrid stack: gated DeltaNet
# layers with full-attention layers between them), the check of rsrc's qwen35 support: standard
# library only, nothing shared with rsrc's C code (the GGUF reader and the dequantisers are
# tests/gguf/qwen3_model.py's and gemma3_model.py's). Written from the description of the graph
# (docs/qwen35.md), token by token, nothing quantised but the weights as stored.
#
# Per layer h += mixer(RMSNorm(h, attn_norm)), then h += FFN(RMSNorm(h, post_attention_norm)) with
# the FFN down(silu(gate . x) * (up . x)); the output norm and output.weight (or the embedding).
# A layer is full attention when ARCH.attention.recurrent_layers says it is not recurrent, or
# without that key when (l + 1) % ARCH.full_attention_interval == 0 (4 when absent).
#   full attention: attn_q gives per head [q (d) | gate (d)]; RMSNorm of each q and k head
#     (attn_q_norm, attn_k_norm); the multi-section rotation (IMROPE) of the first
#     rope.dimension_count dims with every section at the token's position (text: t, h, w = pos,
#     the fourth 0), pairs i and i + n/2; softmax(q.k / sqrt(d)) over the cache (GQA: query head h
#     reads KV head h // (heads / kv_heads)); each head's output times sigmoid(gate); attn_output.
#   gated DeltaNet: qkv = attn_qkv . x, z = attn_gate . x, beta = sigmoid(ssm_beta . x),
#     g = ssm_a * softplus(ssm_alpha . x + ssm_dt.bias) per V head; the depthwise causal
#     convolution of qkv over the last ssm.conv_kernel tokens (zeros before the first; the
#     kernel's last tap the current token) then SiLU; q, k, v split [Hk heads | Hk heads | Hv heads]
#     of ssm.state_size; q and k divided by sqrt(sum x^2 + eps), q times 1/sqrt(d); V head h reads
#     K head h % Hk; the state M [d_k][d_v] per V head: M = e^g M; delta = beta (v - M^T k);
#     M += k delta^T; o = M^T q; RMSNorm(o, ssm_norm) * silu(z) per head; ssm_out.
# qwen35moe (the same layers, each FFN a mixture of experts, llama.cpp's build_moe_ffn with a shared
# expert): p = softmax(ffn_gate_inp . x) (x not rounded); the ARCH.expert_used_count largest p
# (ties: the lower index) weighted by p / max(sum of theirs, 2^-14), each expert e
# down_e(silu(gate_e . x) * (up_e . x)) (ffn_{gate,up,down}_exps, expert e's rows after expert
# e-1's); plus the shared expert (ffn_{gate,up,down}_shexp, the same SwiGLU) times
# sigmoid(ffn_gate_inp_shexp . x).
# --act-q8: each ternary matrix's input rounded as rsrc rounds it (Q8_0's form, per block of 32: amax,
# the scale amax / 127 rounded to f16, q = rint(x * 127 / amax); for TQ1_0 and TQ2_0 files Q8_K's,
# per block of 256 with the scale 1 / (127 / amax) in f32), so that only the order of the float
# operations separates the two (a check of the graph, free of int8 noise).
# --ablate kmap|conv|gate|qg|shexp|renorm: V head h reading K head h // (Hv / Hk), no convolution
# history, no attention output gate, q's rows read as [gate | q] per head, the shared expert not
# scaled by its gate, or the chosen experts' weights not renormalised: what a runtime that got one of
# them wrong would compute (the test checks that rsrc's logits disagree with these).
# --routes FILE: each token's chosen experts per layer, "POS LAYER E1 E2 ... GAP" (GAP: the k-th
# largest p less the next); --follow ROUTES MARGIN: where rsrc's choice (RSR_TRACE_ROUTING's file)
# differs and GAP < MARGIN (a near tie that rounding tips), take rsrc's (maple_model.py's rule).
# Usage: qwen35_model.py reference MODEL.gguf ID,ID,... [--json OUT] [--ablate ...]
#        qwen35_model.py compare REF.json K RSR.f32 TOL: rsrc's logits after the first K ids against
#        the reference's: argmax equal and max |difference| <= TOL x max |reference logit|.
import json
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_model as q3  # noqa: E402  (its GGUF reader)
import gemma3_model as g3  # noqa: E402  (BF16 and the other types, as lists)
import maple_model  # noqa: E402  (the choice of experts)


def silu(x):
    return x / (1.0 + math.exp(-x)) if x > -700 else 0.0


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def softplus(x):
    return x if x > 20 else math.log1p(math.exp(x))


dot, matvec, add, softmax = q3.dot, q3.matvec, q3.add, q3.softmax  # float64 lists, as qwen3_model's


def f32(v):
    return struct.unpack('<f', struct.pack('<f', v))[0]


def q8_blocks(x, block=32):
    """x as llama.cpp rounds a product's input: Q8_0 (blocks of 32, the scale amax / 127 in f16) for
    Q1_0 and Q2_0 matrices, Q8_K (block=256, the scale 1 / (127 / amax) in f32) for TQ1_0 and TQ2_0."""
    out = []
    for b in range(0, len(x), block):
        v = x[b:b + block]
        amax = max(abs(t) for t in v)
        inv = f32(127.0 / amax) if amax else 0.0
        if block == 256:
            d = f32(1.0 / inv) if amax else 0.0
        else:
            d = struct.unpack('<e', struct.pack('<e', amax / 127.0))[0]
        out += [max(-127, min(127, round(t * inv))) * d for t in v]
    return out


ATTN = ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'attn_q_norm', 'attn_k_norm']
DELTA = ['attn_qkv', 'attn_gate', 'ssm_beta', 'ssm_alpha', 'ssm_conv1d', 'ssm_norm', 'ssm_out']
BOTH = ['attn_norm', 'post_attention_norm']
DENSE = ['ffn_gate', 'ffn_up', 'ffn_down']
SHARED = ['ffn_gate_shexp', 'ffn_up_shexp', 'ffn_down_shexp', 'ffn_gate_inp', 'ffn_gate_inp_shexp']
EXPS = ['ffn_gate_exps', 'ffn_up_exps', 'ffn_down_exps']


class Qwen35(maple_model.Router):
    mtp_embd = None  # the MTP layer's embedding rows where they are not the model's (an ablation's)

    def __init__(self, path, ablate=None, act_q8=False, follow=None, margin=0.0):
        meta, ts = q3.read_gguf(path)
        self.act_q8 = act_q8
        self.ternary = {name for name, (_, typ, _) in ts.items() if typ in (34, 35, 36, 41, 42)}
        # TQ1_0 and TQ2_0 (ggml types 34, 35) take activations per block of 256 (Q8_K), the others per 32
        self.block = 256 if all(ts[n][1] in (34, 35) for n in self.ternary) else 32
        arch = meta['general.architecture']
        if arch not in ('qwen35', 'qwen35moe'):
            sys.exit('qwen35_model.py: %s is not a qwen35 or qwen35moe file' % path)
        a = arch + '.'
        self.moe = arch == 'qwen35moe'
        if self.moe:
            self.n_expert, self.n_used = meta[a + 'expert_count'], meta[a + 'expert_used_count']
        self.routes, self.follow, self.margin, self.followed = [], follow or {}, margin, 0
        self.ablate = ablate
        self.heads = meta[a + 'attention.head_count']
        self.kv_heads = meta.get(a + 'attention.head_count_kv', self.heads)
        self.d = meta[a + 'attention.key_length']
        self.eps = meta[a + 'attention.layer_norm_rms_epsilon']
        self.theta = meta.get(a + 'rope.freq_base', 10000.0)
        self.n_rot = meta.get(a + 'rope.dimension_count', self.d)
        self.sections = meta.get(a + 'rope.dimension_sections', [self.n_rot // 2, 0, 0, 0])
        self.hk, self.hv = meta[a + 'ssm.group_count'], meta[a + 'ssm.time_step_rank']
        self.dk, self.taps = meta[a + 'ssm.state_size'], meta[a + 'ssm.conv_kernel']
        self.nextn = meta.get(a + 'nextn_predict_layers', 0)  # MTP layers after the model's: blk.N..
        n = meta[a + 'block_count'] - self.nextn
        if a + 'attention.recurrent_layers' in meta:
            self.recurrent = [bool(x) for x in meta[a + 'attention.recurrent_layers']]
        else:
            every = meta.get(a + 'full_attention_interval', 4)
            self.recurrent = [(l + 1) % every != 0 for l in range(n)]
        self.embd = g3.load(ts, 'token_embd.weight')
        self.output = g3.load(ts, 'output.weight') if 'output.weight' in ts else self.embd
        self.output_norm = g3.load(ts, 'output_norm.weight')
        self.layers = []
        for l in range(n):
            L = self.layer_tensors(ts, l, DELTA if self.recurrent[l] else ATTN, act_q8)
            if self.recurrent[l]:
                L['ssm_dt'] = g3.load(ts, 'blk.%d.ssm_dt.bias' % l)
                L['ssm_a'] = g3.load(ts, 'blk.%d.ssm_a' % l)
            self.layers.append(L)
        self.mtp = self.mtp_layer(ts, n, act_q8) if self.nextn else None

    def layer_tensors(self, ts, l, mixer, act_q8):
        """Layer l's tensors: the norms, its FFN's (dense, or a mixture's), the mixer's names; each
        ternary one's input rounded as rsrc rounds it with act_q8."""
        L = {}
        for name in BOTH + (SHARED if self.moe else DENSE) + mixer:
            L[name] = g3.load(ts, 'blk.%d.%s.weight' % (l, name))
            L[name + '.q8'] = act_q8 and 'blk.%d.%s.weight' % (l, name) in self.ternary
        for name in EXPS if self.moe else []:  # [rows of every expert]: expert e's after expert e-1's
            rows = g3.load(ts, 'blk.%d.%s.weight' % (l, name))
            R = len(rows) // self.n_expert
            L[name] = [rows[e * R:(e + 1) * R] for e in range(self.n_expert)]
            L[name + '.q8'] = act_q8 and 'blk.%d.%s.weight' % (l, name) in self.ternary
        return L

    def mtp_layer(self, ts, n, act_q8):
        """The multi-token-prediction layer blk.n: a full-attention layer with the model's kind of FFN,
        eh_proj ([embedding | hidden state] -> hidden) and its norms; its head norm the model's when absent."""
        L = self.layer_tensors(ts, n, ATTN + ['nextn.eh_proj', 'nextn.enorm', 'nextn.hnorm'], act_q8)
        L['layer'] = n
        shn = 'blk.%d.nextn.shared_head_norm.weight' % n
        L['head_norm'] = g3.load(ts, shn) if shn in ts else self.output_norm
        return L

    def proj(self, L, name, x):
        if L[name + '.q8']:
            x = q8_blocks(x, self.block)
        return matvec(L[name], x)

    def rmsnorm(self, x, w):
        s = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + self.eps)
        return [v * s * g for v, g in zip(x, w)]

    def rope(self, x, pos):
        """ggml's IMROPE of the first n_rot dims: pair i (of n_rot / 2) turns by p * theta^(-2i/n_rot)
        with p the position of its section (sector i % 3 within 3 x sections[0, 1, 2]: t, h, w;
        else e); text has t = h = w = pos and e = 0."""
        n, s = self.n_rot, self.sections
        half, width = n // 2, sum(s)
        out = list(x)
        for i in range(half):
            sector = i % width
            if sector % 3 == 1 and sector < 3 * s[1]:
                p = pos
            elif sector % 3 == 2 and sector < 3 * s[2]:
                p = pos
            elif sector % 3 == 0 and sector < 3 * s[0]:
                p = pos
            else:
                p = 0
            ang = p * self.theta ** (-2.0 * i / n)
            c, sn = math.cos(ang), math.sin(ang)
            out[i] = x[i] * c - x[i + half] * sn
            out[i + half] = x[i] * sn + x[i + half] * c
        return out

    def attention(self, L, x, pos, cache):
        d = self.d
        qg = self.proj(L, 'attn_q', x)
        if self.ablate == 'qg':  # [gate | q] per head instead of [q | gate]
            qg = [t for h in range(self.heads) for t in qg[2 * h * d + d:2 * h * d + 2 * d] + qg[2 * h * d:2 * h * d + d]]
        q = [self.rope(self.rmsnorm(qg[2 * h * d:2 * h * d + d], L['attn_q_norm']), pos) for h in range(self.heads)]
        gate = [qg[2 * h * d + d:2 * h * d + 2 * d] for h in range(self.heads)]
        kx, vx = self.proj(L, 'attn_k', x), self.proj(L, 'attn_v', x)
        k = [self.rope(self.rmsnorm(kx[h * d:h * d + d], L['attn_k_norm']), pos) for h in range(self.kv_heads)]
        v = [vx[h * d:h * d + d] for h in range(self.kv_heads)]
        cache.append((k, v))
        group, out = self.heads // self.kv_heads, []
        for h in range(self.heads):
            g = h // group
            p = softmax([dot(q[h], kt[g]) / math.sqrt(d) for kt, _ in cache])
            acc = [0.0] * d
            for w, (_, vt) in zip(p, cache):
                acc = [s + w * b for s, b in zip(acc, vt[g])]
            if self.ablate != 'gate':
                acc = [s * sigmoid(t) for s, t in zip(acc, gate[h])]
            out += acc
        return self.proj(L, 'attn_output', out)

    def deltanet(self, L, x, st):
        d, hk, hv = self.dk, self.hk, self.hv
        qkv = self.proj(L, 'attn_qkv', x)
        z = self.proj(L, 'attn_gate', x)
        beta = [sigmoid(b) for b in matvec(L['ssm_beta'], x)]
        g = [ai * softplus(al + dt) for ai, al, dt in zip(L['ssm_a'], matvec(L['ssm_alpha'], x), L['ssm_dt'])]
        if self.ablate != 'conv':
            st['hist'].append(qkv)
        hist = st['hist'][-self.taps:] if self.ablate != 'conv' else [qkv]
        window = [[0.0] * len(qkv)] * (self.taps - len(hist)) + hist  # oldest first, the current token last
        conv = [silu(sum(L['ssm_conv1d'][c][t] * window[t][c] for t in range(self.taps))) for c in range(len(qkv))]
        heads = [conv[i * d:(i + 1) * d] for i in range(2 * hk)]
        for i in range(2 * hk):
            inv = 1.0 / math.sqrt(sum(u * u for u in heads[i]) + self.eps)
            heads[i] = [u * inv * (1.0 / math.sqrt(d) if i < hk else 1.0) for u in heads[i]]
        out = []
        for h in range(hv):
            kh = h // (hv // hk) if self.ablate == 'kmap' else h % hk
            q, k, v = heads[kh], heads[hk + kh], conv[2 * hk * d + h * d:2 * hk * d + (h + 1) * d]
            M = st['M'][h]  # M[j][i]: key dimension j, value dimension i
            e = math.exp(g[h])
            M = [[m * e for m in row] for row in M]
            kv = [sum(M[j][i] * k[j] for j in range(d)) for i in range(d)]
            delta = [beta[h] * (v[i] - kv[i]) for i in range(d)]
            M = [[M[j][i] + k[j] * delta[i] for i in range(d)] for j in range(d)]
            st['M'][h] = M
            o = [sum(M[j][i] * q[j] for j in range(d)) for i in range(d)]
            o = self.rmsnorm(o, L['ssm_norm'])
            out += [a * silu(b) for a, b in zip(o, z[h * d:(h + 1) * d])]
        return self.proj(L, 'ssm_out', out)

    def glu(self, x, gate, up, down, q8):
        if q8:
            x = q8_blocks(x, self.block)
        y = [silu(a) * b for a, b in zip(matvec(gate, x), matvec(up, x))]
        return matvec(down, q8_blocks(y, self.block) if q8 else y)

    def ffn(self, L, x, l=0, pos=0):
        if not self.moe:
            return self.glu(x, L['ffn_gate'], L['ffn_up'], L['ffn_down'], L['ffn_gate.q8'])
        p = softmax(matvec(L['ffn_gate_inp'], x))
        chosen = self.route(p, pos, l)
        total = max(sum(p[e] for e in chosen), 6.103515625e-5) if self.ablate != 'renorm' else 1.0
        out = [0.0] * len(x)
        for e in sorted(chosen):
            y = self.glu(x, L['ffn_gate_exps'][e], L['ffn_up_exps'][e], L['ffn_down_exps'][e], L['ffn_gate_exps.q8'])
            out = [o + p[e] / total * v for o, v in zip(out, y)]
        y = self.glu(x, L['ffn_gate_shexp'], L['ffn_up_shexp'], L['ffn_down_shexp'], L['ffn_gate_shexp.q8'])
        w = sigmoid(dot(L['ffn_gate_inp_shexp'], x)) if self.ablate != 'shexp' else 1.0
        return [o + w * v for o, v in zip(out, y)]

    def run(self, ids, hidden=None):
        """The logits after each prefix of ids; the final-normed hidden states into hidden (a list)."""
        states = [{'hist': [], 'M': [[[0.0] * self.dk for _ in range(self.dk)] for _ in range(self.hv)]}
                  if r else [] for r in self.recurrent]
        logits = []
        for pos, tok in enumerate(ids):
            h = list(self.embd[tok])
            for l, (L, r, st) in enumerate(zip(self.layers, self.recurrent, states)):
                x = self.rmsnorm(h, L['attn_norm'])
                h = add(h, self.deltanet(L, x, st) if r else self.attention(L, x, pos, st))
                h = add(h, self.ffn(L, self.rmsnorm(h, L['post_attention_norm']), l, pos))
            hn = self.rmsnorm(h, self.output_norm)
            if hidden is not None:
                hidden.append(hn)
            logits.append(matvec(self.output, hn))
        return logits

    def mtp_step(self, tok, h, pos, cache):
        """The MTP layer at pos from token tok and the hidden state h before it (None: zeros), its cache
        grown by the position: (its logits of the token after, its own normed output)."""
        M = self.mtp
        emb = self.mtp_embd if self.mtp_embd is not None else self.embd
        e = self.rmsnorm(list(emb[tok]), M['nextn.enorm'])
        hn = self.rmsnorm(h, M['nextn.hnorm']) if h is not None else [0.0] * len(e)
        x = self.proj(M, 'nextn.eh_proj', hn + e if self.ablate == 'mtp-order' else e + hn)
        x = add(x, self.attention(M, self.rmsnorm(x, M['attn_norm']), pos, cache))
        x = add(x, self.ffn(M, self.rmsnorm(x, M['post_attention_norm']), M['layer'], pos))
        out = self.rmsnorm(x, self.output_norm if self.ablate == 'mtp-head-norm' else M['head_norm'])
        return matvec(self.output, out), out

    def check_drafts(self, ids, events, tol):
        """Each draft event (pos, token, drafts) of rsrc's (RSR_TRACE_DRAFTS) against the MTP layer's
        greedy chain from the text ids: its cache of the positions before pos from the true hidden
        states, then (h at pos - 1, token) at pos, (its own output, draft i) at pos + i. A guess that
        differs passes only where the reference's top two are within tol of its largest |logit| (a
        near tie); the chain goes on with rsrc's token. Returns the mismatches, and prints a line."""
        hidden = []
        self.run(ids, hidden)
        cache, bad, checked, ties = [], 0, 0, 0
        for pos, tok, drafts in events:
            if ids[pos] != tok:
                sys.exit('qwen35_model.py: draft event at %d names token %d where the text has %d' % (pos, tok, ids[pos]))
            shift = 0 if self.ablate == 'mtp-shift' else 1  # the hidden state of the position before
            while len(cache) < pos:  # the true entries of the positions before pos
                p = len(cache)
                self.mtp_step(ids[p], hidden[p - shift] if p - shift >= 0 else None, p, cache)
            chain, h = list(cache), hidden[pos - shift] if pos - shift >= 0 else None
            for i, d in enumerate(drafts):
                logits, h = self.mtp_step(tok if i == 0 else drafts[i - 1], h, pos + i, chain)
                top = sorted(range(len(logits)), key=lambda v: -logits[v])
                big = max(abs(v) for v in logits)
                checked += 1
                if d != top[0]:
                    if logits[top[0]] - logits[d] <= tol * big:
                        ties += 1
                    else:
                        bad += 1
                        print('draft at %d+%d: rsrc %d, reference %d (%.4g against %.4g)' %
                              (pos, i, d, top[0], logits[d], logits[top[0]]))
        print('qwen35 mtp: %d events, %d drafted tokens checked, %d near ties, %d wrong' %
              (len(events), checked, ties, bad))
        return bad


def compare(ref_path, k, f32_path, tol):
    ref = json.load(open(ref_path))['logits'][k - 1]
    raw = open(f32_path, 'rb').read()
    got = struct.unpack('<%df' % (len(raw) // 4), raw)
    big = max(abs(x) for x in ref)
    err = max(abs(a - b) for a, b in zip(got, ref))
    top, rtop = max(range(len(got)), key=got.__getitem__), max(range(len(ref)), key=ref.__getitem__)
    print('qwen35: after %d tokens: max |rsrc - reference| %.3e of the largest |logit| %.3e (%.2e); argmax %d, '
          'reference %d' % (k, err, big, err / big, top, rtop))
    return err <= tol * big and top == rtop


def main():
    ap, sub, r = q3.reference_parser('qwen35')
    r.add_argument('--ablate', choices=['kmap', 'conv', 'gate', 'qg', 'shexp', 'renorm'])
    r.add_argument('--act-q8', action='store_true', help="round the ternary matrices' inputs as rsrc does")
    maple_model.routes_args(r)  # qwen35moe's
    c = sub.add_parser('compare', help="rsrc's logits after K ids against the reference's")
    c.add_argument('ref')
    c.add_argument('k', type=int)
    c.add_argument('logits')
    c.add_argument('tol', type=float)
    c.add_argument('--expect-differ', action='store_true', help='pass when they disagree (an ablation)')
    d = sub.add_parser('drafts', help="rsrc's MTP drafts (RSR_TRACE_DRAFTS: POS TOKEN D1 D2 ...) against the "
                       "reference's greedy MTP chain")
    d.add_argument('model')
    d.add_argument('ids', help='the whole text: the prompt and what was generated')
    d.add_argument('trace')
    d.add_argument('tol', type=float)
    d.add_argument('--act-q8', action='store_true', help="round the ternary matrices' inputs as rsrc does")
    d.add_argument('--min-events', type=int, default=1)
    d.add_argument('--ablate', choices=['mtp-order', 'mtp-shift', 'mtp-head-norm'],
                   help='[h | e] into eh_proj, the hidden state of the same position, the final norm for the head')
    d.add_argument('--expect-wrong', action='store_true', help='pass when some drafted token disagrees (an ablation)')
    args = ap.parse_args()
    if args.cmd == 'drafts':
        m = Qwen35(args.model, args.ablate, act_q8=args.act_q8)
        if not m.mtp:
            sys.exit('qwen35_model.py: %s has no MTP layer' % args.model)
        events = [(int(f[0]), int(f[1]), [int(t) for t in f[2:]]) for f in
                  (line.split() for line in open(args.trace)) if f]
        if len(events) < args.min_events:
            sys.exit('qwen35_model.py: %d draft events, fewer than %d' % (len(events), args.min_events))
        wrong = m.check_drafts([int(t) for t in args.ids.split(',')], events, args.tol) > 0
        sys.exit(0 if wrong == args.expect_wrong else 1)
    if args.cmd == 'compare':
        ok = compare(args.ref, args.k, args.logits, args.tol)
        sys.exit(0 if ok != args.expect_differ else 1)
    follow, margin = maple_model.read_follow(args)
    m = Qwen35(args.model, args.ablate, args.act_q8, follow, margin)
    q3.emit_json(args.json, {'logits': m.run([int(t) for t in args.ids.split(',')])})
    maple_model.report_routes(args, m, 'qwen35_model.py')


if __name__ == '__main__':
    main()
