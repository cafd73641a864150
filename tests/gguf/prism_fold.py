#!/usr/bin/env python3
# PrismML's Bonsai 2 files, written and read independently of rsrc's C code: the check of its PQ2_0,
# PTQ1_0 and prism.hadamard support. Standard library only; the GGUF reader and the qwen35 float64
# reference are tests/gguf/qwen3_model.py's and qwen35_model.py's.
#
# The contract (PrismML-Eng/llama.cpp's prism branch, restated in ggml-org/llama.cpp #29058):
#   PQ2_0 (type 142): blocks of 128, {f16 d; u8 qs[32]}, code of element j (qs[j/4] >> 2(j%4)) & 3,
#     value (code - 1) d. PrismML's legacy files store the same blocks under id 42 (--legacy42).
#   PTQ1_0 (type 143): blocks of 128, {u8 qs[24]; u8 qh[2]; f16 d}: element 16n + m is base-3 digit n
#     (most significant first) of qs[m], 80 + 8n + m digit n of qs[16 + m], 120 + 2n + h digit n of
#     qh[h] (whose four-digit value is multiplied by 3 first); a byte holds ceil(v * 256 / 243) of its
#     value v; digit n of byte b is ((b * 3^n mod 256) * 3) >> 8; value digit - 1.
#   prism.hadamard.*: a listed weight W reads its input x of width n as W . H_B (s * P x): P (ssm_out
#     with gdn_v_grouped only) out[d + r*hd + t*hd*rep] = in[d + t*hd + r*hd*nk], s the signs of width
#     n, H_B the normalised Sylvester Walsh-Hadamard matrix per block of B. token_embd stores rows z
#     of the rotated basis: the model's row is s * (H_B z).
#
# write SRC.gguf OUT.gguf: SRC's model (a qwen35 file of rsr-mkmodel's: its metadata kept byte for
#   byte, its norms and float tensors as they are) with every matrix of a kind the fold may list
#   replaced by new random ternary codes (PQ2_0: ~2% of +2) and random scales per block of 128, all
#   of them, the head and the embedding folded with --block B and random explicit signs per input
#   width (--identity: sign_mode identity). --bad KEY=JSON: one fold key replaced (or added) for the
#   refusal tests; --drop KEY removes one.
#   --bench: random bytes for the codes and one scale a tensor (seconds for a 27B cut; for timing).
#   --embed-type pq2_0|ptq1_0|q2_0|q1_0: the embedding (and an untied head) in that type, new random
#   codes and scales per block, as Bonsai 2's files store them.
# reference MODEL.gguf IDS --json OUT: the logits after each prefix of IDS of the model with the fold
#   undone in float64 (the primal weights W . H_B S P, the embedding's rows s * H_B z), nothing
#   quantised but the weights; --ablate signs|perm|embed|head: a fold undone without its signs, its
#   permutation, the embedding's inverse or the head's rotation (what a runtime that forgot one
#   would compute: the test checks that rsrc disagrees with these).
import argparse
import json
import math
import mmap
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_model as q3  # noqa: E402  (GGUF reader and writer helpers)
import gemma3_model as g3  # noqa: E402
import qwen35_model as q35  # noqa: E402

PQ2_0, PTQ1_0, Q2_0, F32 = 142, 143, 42, 0
q3.BLOCK[PQ2_0] = (128, 34)
q3.BLOCK[PTQ1_0] = (128, 28)
KINDS = ['attn_q', 'attn_k', 'attn_v', 'attn_qkv', 'attn_gate', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down',
         'ffn_gate_exps', 'ffn_up_exps', 'ffn_down_exps', 'ffn_gate_shexp', 'ffn_up_shexp', 'ffn_down_shexp',
         'ssm_out']
POW3 = [1, 3, 9, 27, 81]


# ---- the two block formats ----

def pq2_block(d, codes):
    qs = bytearray(32)
    for j, c in enumerate(codes):
        qs[j // 4] |= c << (2 * (j % 4))
    return struct.pack('<e', d) + bytes(qs)


def pack_trits(trits):
    """One byte of up to five base-3 digits, the first most significant (four: times 3 first)."""
    v = 0
    for t in trits:
        v = v * 3 + t
    if len(trits) == 4:
        v *= 3
    return -(-v * 256 // 243)


def trit(b, n):
    return ((b * POW3[n]) % 256 * 3) >> 8


def ptq1_block(d, codes):
    qs = [pack_trits([codes[16 * n + m] for n in range(5)]) for m in range(16)]
    qs += [pack_trits([codes[80 + 8 * n + m] for n in range(5)]) for m in range(8)]
    qh = [pack_trits([codes[120 + 2 * n + h] for n in range(4)]) for h in range(2)]
    raw = bytes(qs + qh) + struct.pack('<e', d)
    assert ptq1_codes(raw) == list(codes), 'PTQ1_0 packing does not decode back'
    return raw


def trit_at(e):
    """The byte of a block and the digit of it that hold element e."""
    if e < 80:
        return e % 16, e // 16
    if e < 120:
        return 16 + (e - 80) % 8, (e - 80) // 8
    return 24 + (e - 120) % 2, (e - 120) // 2


TRIT_AT = [trit_at(e) for e in range(128)]
TRITS = [[trit(b, n) for n in range(5)] for b in range(256)]  # each byte's digits, by trit


def ptq1_codes(raw):
    return [TRITS[raw[b]][n] for b, n in TRIT_AT]


def dequant(typ, raw, n):
    size = q3.BLOCK[typ][1]
    out = []
    for o in range(0, n // 128 * size, size):
        blk = raw[o:o + size]
        if typ == PQ2_0:
            d = struct.unpack_from('<e', blk, 0)[0]
            out += [((blk[2 + j // 4] >> (2 * (j % 4)) & 3) - 1) * d for j in range(128)]
        else:
            d = struct.unpack_from('<e', blk, 26)[0]
            out += [(c - 1) * d for c in ptq1_codes(blk)]
    return out


_g3_load = g3.load


def load(ts, name):
    ne, typ, raw = ts[name]
    if typ not in (PQ2_0, PTQ1_0):
        return _g3_load(ts, name)
    v = dequant(typ, raw, math.prod(ne))
    return v if len(ne) == 1 else [v[i:i + ne[0]] for i in range(0, len(v), ne[0])]


g3.load = load  # the qwen35 reference reads the two types through this


# ---- GGUF with the metadata kept as raw bytes ----

def read_raw(path):
    """(header kvs as [(key, raw bytes)], their values {key: value}, tensor infos [(name, ne, type,
    offset)], the file mapped, where its data begins): nothing read until used, so a 27B file fits."""
    with open(path, 'rb') as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    r = q3.Reader(buf)
    assert r.take('<4s') == b'GGUF' and r.take('<I') == 3
    nt, nkv = r.take('<Q'), r.take('<Q')
    kvs, meta = [], {}
    for _ in range(nkv):
        start = r.pos
        k = r.string()
        meta[k] = r.value(r.take('<I'))
        kvs.append((k, buf[start:r.pos]))
    infos = []
    for _ in range(nt):
        name, nd = r.string(), r.take('<I')
        ne = [r.take('<Q') for _ in range(nd)]
        infos.append((name, ne, r.take('<I'), r.take('<Q')))
    base = r.pos + (-r.pos % meta.get('general.alignment', q3.ALIGN))
    return kvs, meta, infos, buf, base


def kv_bytes(key, t, v):
    return q3.gstr(key) + struct.pack('<I', t[0] if isinstance(t, tuple) else t) + q3.gval(t, v)


def json_kv(key, value):
    """A fold key from JSON for --bad: strings, bools, u32, lists of i32 or of strings."""
    if isinstance(value, bool):
        return kv_bytes(key, q3.BOOL, value)
    if isinstance(value, int):
        return kv_bytes(key, q3.U32, value)
    if isinstance(value, str):
        return kv_bytes(key, q3.STR, value)
    if all(isinstance(x, str) for x in value):
        return kv_bytes(key, (q3.ARR, q3.STR), value)
    return kv_bytes(key, (q3.ARR, q3.I32), value)


def kind_of(name):
    parts = name.split('.')
    return parts[2] if len(parts) == 4 and parts[0] == 'blk' and parts[3] == 'weight' else None


def ternary_bytes(args, rng, typ, ne):
    """A listed matrix's new codes and scales (--bench: random bytes, one scale a tensor)."""
    n, cols = math.prod(ne), ne[0]
    if args.bench:  # random bytes: valid codes of either type, fast
        size = q3.BLOCK[typ][1]
        block = bytearray(random_bytes(rng, n // 128 * size))
        d = struct.pack('<e', 1.0 / math.sqrt(cols))
        at = 26 if typ == PTQ1_0 else 0
        block[at::size], block[at + 1::size] = d[:1] * (n // 128), d[1:] * (n // 128)
        return bytes(block)
    blocks, choice = [], rng.choice
    for _ in range(n // 128):
        d = rng.uniform(0.5, 1.5) / math.sqrt(cols)
        codes = [choice((0, 1, 2)) for _ in range(128)]
        if typ == PQ2_0:
            codes = [3 if rng.random() < 0.02 else c for c in codes]
        blocks.append((pq2_block if typ == PQ2_0 else ptq1_block)(d, codes))
    return b''.join(blocks)


def random_bytes(rng, n):
    """rng.randbytes(n) in pieces (one call takes at most 2^31 bits)."""
    return b''.join(rng.randbytes(min(1 << 26, n - at)) for at in range(0, n, 1 << 26))


EMBED_TYPES = {'pq2_0': PQ2_0, 'ptq1_0': PTQ1_0, 'q2_0': Q2_0, 'q1_0': q3.Q1_0}


def table_bytes(args, rng, typ, ne):
    """--embed-type: the embedding's (and an untied head's) new random codes and scales in that type
    (--bench: random bytes, one scale)."""
    n, cols = math.prod(ne), ne[0]
    qk, size = q3.BLOCK[typ]
    if args.bench:
        block = bytearray(random_bytes(rng, n // qk * size))
        d, at = struct.pack('<e', 1.0 / math.sqrt(cols)), 26 if typ == PTQ1_0 else 0
        block[at::size], block[at + 1::size] = d[:1] * (n // qk), d[1:] * (n // qk)
        return bytes(block)
    if typ == Q2_0:
        return b''.join(q3.q2_block(rng, cols, False) for _ in range(n // 64))
    if typ == q3.Q1_0:
        return b''.join(q3.q1_block(rng, cols) for _ in range(n // 128))
    block = pq2_block if typ == PQ2_0 else ptq1_block
    return b''.join(block(rng.uniform(0.5, 1.5) / math.sqrt(cols), [rng.choice((0, 1, 2)) for _ in range(128)])
                    for _ in range(n // 128))


def write(args):
    """SRC's tensors with the listed kinds' codes new, written a tensor at a time (the header first:
    every size is known before any code is drawn)."""
    rng, codes_rng = random.Random(args.seed), random.Random(args.seed * 7919 + 1)
    kvs, meta, infos, buf, base = read_raw(args.src)
    typ = PQ2_0 if args.type == 'pq2_0' else PTQ1_0
    plan, folded, widths = [], [], {meta[meta['general.architecture'] + '.embedding_length']}
    arch = meta['general.architecture'] + '.'
    first_mtp = meta[arch + 'block_count'] - meta.get(arch + 'nextn_predict_layers', 0)
    for name, ne, t, off in infos:
        n = math.prod(ne)
        mtp = name.startswith('blk.') and int(name.split('.')[1]) >= first_mtp  # an MTP layer's: not folded
        if kind_of(name) in KINDS or (mtp and name.endswith('.nextn.eh_proj.weight')):
            plan.append((name, ne, Q2_0 if args.legacy42 else typ, n // 128 * q3.BLOCK[typ][1], None))
            if mtp:  # as Bonsai 2's (grafted from an unfolded file): new codes, not in weight_names
                continue
            if args.bench or not args.only or kind_of(name) in args.only.split(','):
                folded.append(name)
                widths.add(ne[0])
            continue
        if args.embed_type and name in ('token_embd.weight', 'output.weight'):  # as Bonsai 2's files have them
            et = EMBED_TYPES[args.embed_type]
            qk, size = q3.BLOCK[et]
            plan.append((name, ne, et, n // qk * size, None))
            continue
        if t not in (0, 1, 30):  # ternary tensors the fold does not list (none in rsr-mkmodel's qwen35)
            sys.exit('prism_fold.py: %s: %s is of type %d' % (args.src, name, t))
        qk, size = q3.BLOCK[t]
        plan.append((name, ne, t, n // qk * size, base + off))
    if any(name == 'output.weight' for name, *_ in infos) and (not args.only or 'output' in args.only.split(',')):
        folded.append('output.weight')
    embed = [] if args.only and 'embed' not in args.only.split(',') else ['token_embd.weight']
    B = args.block
    widths = sorted(widths)
    assert all(w % B == 0 for w in widths), 'the block must divide every width'
    signs = [rng.choice((1, -1)) for _ in range(sum(widths))]
    h = 'prism.hadamard.'
    fold = [(h + 'version', q3.U32, 1), (h + 'block_size', q3.U32, B),
            (h + 'transform', q3.STR, 'normalized-sylvester-walsh-hadamard'),
            (h + 'axis', q3.STR, 'input-last-dimension'),
            (h + 'sign_mode', q3.STR, 'identity' if args.identity else 'explicit'),
            (h + 'weight_names', (q3.ARR, q3.STR), folded),
            (h + 'inverse_weight_names', (q3.ARR, q3.STR), embed),
            (h + 'gdn_v_grouped', q3.BOOL, True)]
    if not args.identity:
        fold[5:5] = [(h + 'sign_widths', (q3.ARR, q3.I32), widths), (h + 'sign_values', (q3.ARR, q3.I32), signs)]
    raw_kvs = [b for k, b in kvs if k != 'general.file_type']
    raw_kvs.append(kv_bytes('general.file_type', q3.U32, 141 if typ == PQ2_0 else 143))
    bad = dict(b.split('=', 1) for b in args.bad)
    for k, t, v in [] if args.no_fold else fold:
        key = k[len(h):]
        if key in args.drop:
            continue
        raw_kvs.append(json_kv(k, json.loads(bad.pop(key))) if key in bad else kv_bytes(k, t, v))
    for key, value in bad.items():  # keys the contract has not
        raw_kvs.append(json_kv(h + key, json.loads(value)))
    head, at = b'GGUF' + struct.pack('<IQQ', 3, len(plan), len(raw_kvs)) + b''.join(raw_kvs), 0
    for name, ne, t, size, _ in plan:
        head += q3.gstr(name) + struct.pack('<I%dQ' % len(ne), len(ne), *ne) + struct.pack('<IQ', t, at)
        at += size + q3.pad(size)
    tmp = args.out + '.part'
    with open(tmp, 'wb') as f:
        f.write(head + bytes(q3.pad(len(head))))
        for name, ne, t, size, src in plan:
            if src is not None:
                raw = buf[src:src + size]
            elif name in ('token_embd.weight', 'output.weight'):
                raw = table_bytes(args, codes_rng, t, ne)
            else:
                raw = ternary_bytes(args, codes_rng, typ, ne)
            assert len(raw) == size, name
            f.write(raw)
            f.write(bytes(q3.pad(size)))
    os.replace(tmp, args.out)


# ---- the fold undone, in float64 ----

def fwht_rows(rows, B, signs=None):
    """H_B u per block of B, normalised, then times signs, of each row u: through numpy where it is
    installed (the same butterflies in the same order on every row at once: the same bits), else
    a loop."""
    np = q3._np
    if np is None:
        return [fwht_loop(u, B, signs) for u in rows]
    a = np.array(rows, dtype=np.float64)
    n = a.shape[1]
    h = 1
    while h < B:
        a = a.reshape(len(rows), n // (2 * h), 2, h)
        p, q = a[:, :, 0, :], a[:, :, 1, :]
        a = np.stack((p + q, p - q), axis=2)
        h *= 2
    a = a.reshape(len(rows), n) * (1.0 / math.sqrt(B))
    return (a if signs is None else a * np.array(signs, dtype=np.float64)).tolist()


def fwht_loop(v, B, signs):
    v = list(v)
    s = 1.0 / math.sqrt(B)
    for b0 in range(0, len(v), B):
        h = 1
        while h < B:
            for i in range(b0, b0 + B, 2 * h):
                for j in range(i, i + h):
                    p, q = v[j], v[j + h]
                    v[j], v[j + h] = p + q, p - q
            h *= 2
    v = [x * s for x in v]
    return v if signs is None else [a * b for a, b in zip(v, signs)]


def fwht(v, B):
    return fwht_rows([v], B)[0]


class Fold:
    def __init__(self, meta, ablate):
        h = 'prism.hadamard.'
        self.B = meta[h + 'block_size']
        self.ablate = ablate
        self.names = set(meta[h + 'weight_names'])
        self.grouped = meta[h + 'gdn_v_grouped']
        self.signs = {}
        if meta[h + 'sign_mode'] == 'explicit' and ablate != 'signs':
            at = 0
            for w in meta[h + 'sign_widths']:
                self.signs[w] = meta[h + 'sign_values'][at:at + w]
                at += w
        a = meta['general.architecture'] + '.'
        self.nk, self.nv = meta[a + 'ssm.group_count'], meta[a + 'ssm.time_step_rank']

    def src_of(self, n):
        """ssm_out's permutation: the input index each output index o reads."""
        hd = n // self.nv
        rep = self.nv // self.nk
        src = [0] * n
        for t in range(self.nk):
            for r in range(rep):
                for d in range(hd):
                    src[d + r * hd + t * hd * rep] = d + t * hd + r * hd * self.nk
        return src

    def primal(self, rows, permute):
        """W . H S P of stored rows W: row u becomes (s * (H u)) read back through P."""
        n = len(rows[0])
        s = self.signs.get(n, [1] * n)
        src = self.src_of(n) if permute and self.ablate != 'perm' else None
        out = fwht_rows(rows, self.B, s)
        if src:
            at = [0] * n  # the output index each input index is read from: w[src[o]] = v[o]
            for o in range(n):
                at[src[o]] = o
            out = [[v[o] for o in at] for v in out]
        return out

    def embedding(self, rows):
        n = len(rows[0])
        s = self.signs.get(n, [1] * n)
        return fwht_rows(rows, self.B, s)


class Folded(q35.Qwen35):
    """The qwen35 reference on the primal weights; with --act-q8 each folded matrix's input rounded as
    rsrc rounds it, in the rotated basis (Q8_0 of H S P x, turned back: P^T S H of it), which is what
    W_latent . Q8(H S P x) equals: the unrotated weights, the int8 inputs where they are made."""
    fold = None

    def rounded(self, x, permute):
        n = len(x)
        s = self.fold.signs.get(n, [1] * n)
        src = self.fold.src_of(n) if permute else list(range(n))
        u = fwht([s[o] * x[src[o]] for o in range(n)], self.fold.B)
        v = fwht(q35.q8_blocks(u, 32), self.fold.B)
        out = [0.0] * n
        for o in range(n):
            out[src[o]] = s[o] * v[o]
        return out

    def proj(self, L, name, x):
        if L[name + '.q8'] and L.get(name + '.folded'):
            return q35.matvec(L[name], self.rounded(x, name == 'ssm_out' and self.fold.grouped))
        return super().proj(L, name, x)

    def glu(self, x, gate, up, down, q8):  # a mixture's experts (every one folded, as write folds them)
        if not (q8 and self.fold):
            return super().glu(x, gate, up, down, q8)
        x = self.rounded(x, False)
        y = [q35.silu(a) * b for a, b in zip(q35.matvec(gate, x), q35.matvec(up, x))]
        return q35.matvec(down, self.rounded(y, False))

    def ffn(self, L, x, l=0, pos=0):  # a dense FFN's inputs, each rounded where it is made
        if self.moe or not L['ffn_gate.q8']:
            return super().ffn(L, x, l, pos)

        def rounded(name, v):
            return self.rounded(v, False) if L.get(name + '.folded') else q35.q8_blocks(v, 32)
        x = rounded('ffn_gate', x)  # gate and up read one input: both folded or neither
        y = [q35.silu(a) * b for a, b in zip(q35.matvec(L['ffn_gate'], x), q35.matvec(L['ffn_up'], x))]
        return q35.matvec(L['ffn_down'], rounded('ffn_down', y))


def unfolded(args):
    """The model of args.model with its fold undone (Folded), as reference and drafts read it."""
    meta, _ = q3.read_gguf(args.model)
    m = Folded(args.model)
    if args.act_q8:  # the matrices' inputs rounded as rsrc rounds them (Q8_0; with a fold: Folded's)
        m.block = 32
        for L in m.layers + ([m.mtp] if m.mtp else []):
            for kind in KINDS + ['nextn.eh_proj']:
                L[kind + '.q8'] = kind in L
    if 'prism.hadamard.version' not in meta:
        return m
    fold = m.fold = Fold(meta, args.ablate)
    for l, L in enumerate(m.layers):
        for kind in KINDS:
            if kind in L and 'blk.%d.%s.weight' % (l, kind) in fold.names:
                L[kind + '.folded'] = True
                w = L[kind]
                if kind.endswith('_exps'):
                    L[kind] = [fold.primal(e, False) for e in w]
                else:
                    L[kind] = fold.primal(w, kind == 'ssm_out' and fold.grouped)
    tied = m.output is m.embd
    if 'output.weight' in fold.names and args.ablate != 'head':
        m.output = fold.primal(m.output, False)
    if 'token_embd.weight' in meta['prism.hadamard.inverse_weight_names'] and args.ablate != 'embed':
        if args.ablate == 'mtp-embed':  # the MTP layer reading the stored rows, the model the true ones
            m.mtp_embd = m.embd
        m.embd = fold.embedding(m.embd)
        if tied and args.ablate != 'head':  # the head is the embedding: its rows as the model's
            m.output = m.embd
    return m


def reference(args):
    m = unfolded(args)
    q3.emit_json(args.json, {'logits': m.run([int(t) for t in args.ids.split(',')])})


def drafts(args):
    """qwen35_model.py drafts on the model with its fold undone: the MTP layer's guesses (its matrices
    never folded, as Bonsai 2's) from the embedding's true rows and the head's."""
    m = unfolded(args)
    events = [(int(f[0]), int(f[1]), [int(t) for t in f[2:]]) for f in (ln.split() for ln in open(args.trace)) if f]
    wrong = m.check_drafts([int(t) for t in args.ids.split(',')], events, args.tol) > 0
    sys.exit(0 if wrong == args.expect_wrong and len(events) >= args.min_events else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest='cmd', required=True)
    w = sub.add_parser('write')
    w.add_argument('src')
    w.add_argument('out')
    w.add_argument('--type', choices=['pq2_0', 'ptq1_0'], required=True)
    w.add_argument('--seed', type=int, default=1)
    w.add_argument('--block', type=int, default=128)
    w.add_argument('--identity', action='store_true')
    w.add_argument('--legacy42', action='store_true', help="PQ2_0's blocks under Q2_0's id 42")
    w.add_argument('--bad', action='append', default=[], help='KEY=JSON: a fold key replaced or added')
    w.add_argument('--drop', action='append', default=[], help='KEY: a fold key left out')
    w.add_argument('--no-fold', action='store_true', help='no prism.hadamard keys (the codes alone)')
    w.add_argument('--only', help='KIND,...: fold only these kinds (and output, embed)')
    w.add_argument('--embed-type', choices=sorted(EMBED_TYPES),
                   help='the embedding and an untied head in this type, new random codes (as Bonsai 2 ships them)')
    w.add_argument('--bench', action='store_true',
                   help='codes from random bytes (PQ2_0: a quarter +2) and one scale a tensor: fast, for timing')
    r = sub.add_parser('reference')
    r.add_argument('model')
    r.add_argument('ids')
    r.add_argument('--json')
    r.add_argument('--ablate', choices=['signs', 'perm', 'embed', 'head'])
    r.add_argument('--act-q8', action='store_true')
    d = sub.add_parser('drafts', help="rsrc's MTP drafts (RSR_TRACE_DRAFTS) against the unfolded model's")
    d.add_argument('model')
    d.add_argument('ids')
    d.add_argument('trace')
    d.add_argument('tol', type=float)
    d.add_argument('--act-q8', action='store_true')
    d.add_argument('--ablate', choices=['embed', 'head', 'mtp-embed'])
    d.add_argument('--expect-wrong', action='store_true')
    d.add_argument('--min-events', type=int, default=1)
    args = ap.parse_args()
    {'write': write, 'reference': reference, 'drafts': drafts}[args.cmd](args)


if __name__ == '__main__':
    main()
