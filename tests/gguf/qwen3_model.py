#!/usr/bin/env python3
# An independent writer and exact float reference for small Qwen3 GGUF models: the check of rsrc's
# Qwen3 support against something that shares no code with tools/mkmodel/mkgguf.c. Standard library only.
#
# write: a GGUF v3 file (little-endian, alignment 32) of llama.cpp's "qwen3" architecture: vocab
# 384, hidden 256, 4 query heads and 2 KV heads of head_dim 96 (not hidden/heads), FFN 512, 2
# layers. The seven matrices of each layer in llama.cpp's Q2_0 (blocks of 64: f16 d, 16 bytes of
# 2-bit codes, element j at bits 2*(j%4) of byte j/4, value (code-1)*d) or Q1_0 (blocks of 128: f16
# d, 16 bytes, bit j%8 of byte j/8 set: +d, clear: -d), random codes (ternary, or ternary with ~2%
# of +2 for q2_0-plus2, or +-1) and a scale per block of U(0.5, 1.5)/sqrt(cols); token_embd and
# output (absent with --tied) F16 of N(0, 0.125), the norms F32 of 1 + N(0, 0.1); a byte-level
# "gpt2" tokenizer (pre "qwen2") of 256 byte tokens, 125 merges learnt from a fixed text and 3
# ChatML specials. Deterministic for a seed.
# reference: reads such a file (sizes from its metadata) with its own reader and runs the Qwen3
# forward pass in float64 with nothing quantised but the weights (llama.cpp's graph: pre-norm,
# per-head RMSNorm of q and k before NEOX RoPE, GQA, SwiGLU), giving the logits after each prefix
# of a list of token ids and each position's final-normed hidden state (what embeddings pool;
# write --pooling sets qwen3.pooling_type).
# write-st: the same shapes as a Hugging Face checkpoint directory (config.json, model.safetensors):
# Qwen3ForCausalLM with dense f16 or bf16 matrices ternary per group of --group columns (every
# weight -d, 0 or +d for its group's d, as Ternary-Bonsai's "unpacked" checkpoints), or with --float
# plain N(0, 1/sqrt(cols)) matrices (a float model, to be refused); --gguf also writes the same
# model as a Q2_0 GGUF (groups of 64 or 128: blocks of 64 with the group's d). Every value is
# representable in both f16 and bf16 (8 significant bits), so the two files hold the same numbers.
# write-embed: a BitNet embedding model (Qwen3Model: names without "model.", no head, bf16 latent
# matrices ternarised by absmean per tensor, BitLinear's RMSNorm with weights before each of the
# seven projections, sentence-transformers' 1_Pooling/config.json), and with --gguf the same model
# as a "qwen3" GGUF: I2_S matrices (the absmean codes and scale) and blk.N.*_norm_in norms.
# reference: reads a GGUF file or such a directory; for the embedding model it applies the
# per-projection norms, the absmean ternarisation and the int8 activations per token (absmax,
# rintf, docs/numerics.md) as BitNet does, in float64 otherwise.
# Usage: qwen3_model.py write OUT.gguf --weights {q2_0,q1_0,q2_0-plus2} [--seed N] [--tied] [--pooling N]
#        qwen3_model.py write-st OUT_DIR [--group {32,64,128}] [--dtype {f16,bf16}] [--seed N] [--tied]
#                       [--float] [--gguf OUT.gguf]
#        qwen3_model.py write-embed OUT_DIR [--seed N] [--pooling {1,2,3}] [--gguf OUT.gguf]
#        qwen3_model.py reference MODEL.gguf|MODEL_DIR ID,ID,... [--json OUT]
import argparse
import json
import math
import operator
import os
import random
import struct
import sys

try:  # the float64 matrix products (matvec) through numpy where it is installed
    import numpy as _np
except ImportError:
    _np = None

VOCAB, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FF, LAYERS = 384, 256, 4, 2, 96, 512, 2
CTX, THETA, EPS = 512, 1000000.0, 1e-6
EMBED_STD = 0.125                   # token_embd and output; logits of std ~2 after output_norm
SCALE_LO, SCALE_HI = 0.5, 1.5       # block scale d = U(lo, hi) / sqrt(cols)
F32, F16, Q1_0, Q2_0, I2_S = 0, 1, 41, 42, 36
BLOCK = {F32: (1, 4), F16: (1, 2), Q1_0: (128, 18), Q2_0: (64, 18), I2_S: (4, 1)}  # elements, bytes
FTYPE = {Q1_0: 40, Q2_0: 41}        # llama_ftype MOSTLY_Q1_0, MOSTLY_Q2_0
ALIGN = 32
U32, I32, F32V, BOOL, STR, ARR = 4, 5, 6, 7, 8, 9   # GGUF value types
SCALAR = {0: '<B', 1: '<b', 2: '<H', 3: '<h', 4: '<I', 5: '<i', 6: '<f', 7: '<?',
          10: '<Q', 11: '<q', 12: '<d'}
SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
CHAT_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
                 "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
CORPUS = ("the quick brown fox jumps over the lazy dog and then the dog runs after the fox into "
          "the forest where the trees stand tall and the birds sing their morning songs while "
          "the river flows past the old stone bridge that the farmers built many years ago when "
          "the village was young and the people worked together in the fields from dawn until "
          "the evening light faded behind the distant mountains covered with snow; children "
          "played near the water, throwing pebbles and laughing, as their mothers watched from "
          "the shade of the willow trees. 0123456789 + - * / = ( ) [ ] { } < > # @ ! ? % & ~")


# ---- tokenizer ----

def byte_chars():
    """GPT-2's byte-to-unicode map: printable bytes stand for themselves, the rest 256 + n."""
    keep = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    out, n = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + n))
            n += 1
    return out


def learn_merges(n_new):
    """BPE merges learnt from CORPUS (words with their leading space) until n_new new tokens."""
    chars = byte_chars()
    words = [[chars[b] for b in ((' ' if i else '') + w).encode()]
             for i, w in enumerate(CORPUS.split())]
    tokens, merges, new = set(chars), [], []
    while len(new) < n_new:
        counts = {}
        for w in words:
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            sys.exit('qwen3_model.py: corpus too small for %d merges' % n_new)
        best = max(sorted(counts), key=counts.get)     # ties: the lexically first pair
        merges.append(best[0] + ' ' + best[1])
        if best[0] + best[1] not in tokens:
            tokens.add(best[0] + best[1])
            new.append(best[0] + best[1])
        words = [merge_word(w, best) for w in words]
    return new, merges


def merge_word(w, pair):
    out, i = [], 0
    while i < len(w):
        if i + 1 < len(w) and (w[i], w[i + 1]) == pair:
            out.append(w[i] + w[i + 1])
            i += 2
        else:
            out.append(w[i])
            i += 1
    return out


def tokenizer_kv():
    new, merges = learn_merges(VOCAB - 256 - len(SPECIALS))
    tokens = byte_chars() + new + SPECIALS
    types = [1] * (len(tokens) - len(SPECIALS)) + [3] * len(SPECIALS)
    return [('tokenizer.ggml.model', STR, 'gpt2'), ('tokenizer.ggml.pre', STR, 'qwen2'),
            ('tokenizer.ggml.tokens', (ARR, STR), tokens),
            ('tokenizer.ggml.token_type', (ARR, I32), types),
            ('tokenizer.ggml.merges', (ARR, STR), merges),
            ('tokenizer.ggml.bos_token_id', U32, tokens.index('<|endoftext|>')),
            ('tokenizer.ggml.eos_token_id', U32, tokens.index('<|im_end|>')),
            ('tokenizer.ggml.padding_token_id', U32, tokens.index('<|endoftext|>')),
            ('tokenizer.ggml.add_bos_token', BOOL, False),
            ('tokenizer.chat_template', STR, CHAT_TEMPLATE)]


# ---- random tensors ----

def q2_block(rng, cols, plus2):
    d = rng.uniform(SCALE_LO, SCALE_HI) / math.sqrt(cols)
    codes = [3 if plus2 and rng.random() < 0.02 else rng.randrange(3) for _ in range(64)]
    qs = bytes(codes[i] | codes[i + 1] << 2 | codes[i + 2] << 4 | codes[i + 3] << 6
               for i in range(0, 64, 4))
    return struct.pack('<e', d) + qs


def q1_block(rng, cols):
    d = rng.uniform(SCALE_LO, SCALE_HI) / math.sqrt(cols)
    return struct.pack('<e', d) + bytes(rng.getrandbits(8) for _ in range(16))


def matrix(rng, weights, rows, cols):
    """W[rows][cols] as (ggml type, bytes): rows * cols/qk blocks, row after row."""
    if weights == 'q1_0':
        return Q1_0, b''.join(q1_block(rng, cols) for _ in range(rows * cols // 128))
    plus2 = weights == 'q2_0-plus2'
    return Q2_0, b''.join(q2_block(rng, cols, plus2) for _ in range(rows * cols // 64))


def f16s(rng, n, std):
    return F16, struct.pack('<%de' % n, *(rng.gauss(0, std) for _ in range(n)))


def norm(rng, n):
    return F32, struct.pack('<%df' % n, *(1 + 0.1 * rng.gauss(0, 1) for _ in range(n)))


def tensors(rng, weights, tied):
    """(name, ne innermost first, type, data) of every tensor."""
    out = [('token_embd.weight', [HIDDEN, VOCAB]) + f16s(rng, VOCAB * HIDDEN, EMBED_STD)]
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    shapes = [('attn_q', q, HIDDEN), ('attn_k', kv, HIDDEN), ('attn_v', kv, HIDDEN),
              ('attn_output', HIDDEN, q), ('ffn_gate', FF, HIDDEN), ('ffn_up', FF, HIDDEN),
              ('ffn_down', HIDDEN, FF)]
    for l in range(LAYERS):
        pre = 'blk.%d.' % l
        out.append((pre + 'attn_norm.weight', [HIDDEN]) + norm(rng, HIDDEN))
        out.append((pre + 'attn_q_norm.weight', [HEAD_DIM]) + norm(rng, HEAD_DIM))
        out.append((pre + 'attn_k_norm.weight', [HEAD_DIM]) + norm(rng, HEAD_DIM))
        out.append((pre + 'ffn_norm.weight', [HIDDEN]) + norm(rng, HIDDEN))
        for name, rows, cols in shapes:
            out.append((pre + name + '.weight', [cols, rows]) + matrix(rng, weights, rows, cols))
    out.append(('output_norm.weight', [HIDDEN]) + norm(rng, HIDDEN))
    if not tied:
        out.append(('output.weight', [HIDDEN, VOCAB]) + f16s(rng, VOCAB * HIDDEN, EMBED_STD))
    return out


# ---- GGUF writer ----

def gstr(s):
    b = s.encode()
    return struct.pack('<Q', len(b)) + b


def gval(t, v):
    if t == STR:
        return gstr(v)
    if isinstance(t, tuple):
        return struct.pack('<IQ', t[1], len(v)) + b''.join(gval(t[1], x) for x in v)
    return struct.pack(SCALAR[t], v)


def metadata(weights, seed, pooling, ftype=None):
    a = 'qwen3.'
    pool = [(a + 'pooling_type', U32, pooling)] if pooling is not None else []
    return pool + [('general.architecture', STR, 'qwen3'),
            ('general.name', STR, 'rsrc qwen3 test %s seed %d' % (weights, seed)),
            ('general.alignment', U32, ALIGN),
            ('general.file_type', U32, ftype or FTYPE[Q1_0 if weights == 'q1_0' else Q2_0]),
            ('general.quantization_version', U32, 2),
            (a + 'context_length', U32, CTX), (a + 'embedding_length', U32, HIDDEN),
            (a + 'block_count', U32, LAYERS), (a + 'feed_forward_length', U32, FF),
            (a + 'attention.head_count', U32, HEADS),
            (a + 'attention.head_count_kv', U32, KV_HEADS),
            (a + 'attention.key_length', U32, HEAD_DIM),
            (a + 'attention.value_length', U32, HEAD_DIM),
            (a + 'rope.freq_base', F32V, THETA),
            (a + 'attention.layer_norm_rms_epsilon', F32V, EPS)] + tokenizer_kv()


def pad(n):
    return -n % ALIGN


def write(path, weights, seed, tied, pooling=None):
    rng = random.Random(seed)
    write_gguf(path, metadata(weights, seed, pooling), tensors(rng, weights, tied))


def write_gguf(path, kvs, ts):
    head = b'GGUF' + struct.pack('<IQQ', 3, len(ts), len(kvs))
    head += b''.join(gstr(k) + struct.pack('<I', t[0] if isinstance(t, tuple) else t) + gval(t, v)
                     for k, t, v in kvs)
    data, infos = b'', b''
    for name, ne, typ, raw in ts:
        infos += gstr(name) + struct.pack('<I%dQ' % len(ne), len(ne), *ne)
        infos += struct.pack('<IQ', typ, len(data))
        data += raw + bytes(pad(len(raw)))
    head += infos
    with open(path, 'wb') as f:
        f.write(head + bytes(pad(len(head))) + data)


# ---- Hugging Face checkpoints: dense group-ternary Qwen3ForCausalLM, the BitNet embedding model ----

HF_LAYER = [('attn_norm', 'input_layernorm'), ('ffn_norm', 'post_attention_layernorm'),
            ('attn_q_norm', 'self_attn.q_norm'), ('attn_k_norm', 'self_attn.k_norm'),
            ('attn_q', 'self_attn.q_proj'), ('attn_k', 'self_attn.k_proj'),
            ('attn_v', 'self_attn.v_proj'), ('attn_output', 'self_attn.o_proj'),
            ('ffn_gate', 'mlp.gate_proj'), ('ffn_up', 'mlp.up_proj'), ('ffn_down', 'mlp.down_proj')]
PROJS = ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down']


def both(x):
    """x rounded to 8 significant bits: the same number in f16 and in bf16 (0 below f16's normals)."""
    if abs(x) < 2.0 ** -14:
        return 0.0
    m, e = math.frexp(x)
    return math.ldexp(round(m * 256) / 256, e)


def shapes():
    """(GGUF name, rows, cols) of a layer's seven matrices."""
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    return [('attn_q', q, HIDDEN), ('attn_k', kv, HIDDEN), ('attn_v', kv, HIDDEN),
            ('attn_output', HIDDEN, q), ('ffn_gate', FF, HIDDEN), ('ffn_up', FF, HIDDEN),
            ('ffn_down', HIDDEN, FF)]


def grouped_matrix(rng, rows, cols, group, dense_float):
    """A row-major list: codes in {-1, 0, 1} times a scale per group of `group` columns (both()),
    or plain floats."""
    if dense_float:
        return [both(rng.gauss(0, 1 / math.sqrt(cols))) for _ in range(rows * cols)]
    out = []
    for _ in range(rows * cols // group):
        d = both(rng.uniform(SCALE_LO, SCALE_HI) / math.sqrt(cols))
        out += [(rng.randrange(3) - 1) * d for _ in range(group)]
    return out


def dense_model(rng, group, tied, dense_float, proj_norms=False):
    """{GGUF name: (shape, row-major values)}: the model write-st and write-embed write."""
    vals = lambda n, f: [both(f()) for _ in range(n)]
    normv = lambda n: vals(n, lambda: 1 + 0.1 * rng.gauss(0, 1))
    out = {'token_embd.weight': ([VOCAB, HIDDEN], vals(VOCAB * HIDDEN, lambda: rng.gauss(0, EMBED_STD)))}
    for l in range(LAYERS):
        pre = 'blk.%d.' % l
        for n, size in (('attn_norm', HIDDEN), ('attn_q_norm', HEAD_DIM), ('attn_k_norm', HEAD_DIM),
                        ('ffn_norm', HIDDEN)):
            out[pre + n + '.weight'] = ([size], normv(size))
        for n, rows, cols in shapes():
            if proj_norms:
                out[pre + n + '.weight'] = ([rows, cols], vals(rows * cols, lambda: rng.gauss(0, 1 / math.sqrt(cols))))
                out[pre + n + '_norm_in.weight'] = ([cols], normv(cols))
            else:
                out[pre + n + '.weight'] = ([rows, cols], grouped_matrix(rng, rows, cols, group, dense_float))
    out['output_norm.weight'] = ([HIDDEN], normv(HIDDEN))
    if not tied:
        out['output.weight'] = ([VOCAB, HIDDEN], vals(VOCAB * HIDDEN, lambda: rng.gauss(0, EMBED_STD)))
    return out


def hf_names(prefix):
    """GGUF name -> Hugging Face name (prefix: 'model.' or '' for the embedding model)."""
    out = {'token_embd.weight': prefix + 'embed_tokens.weight', 'output_norm.weight': prefix + 'norm.weight',
           'output.weight': 'lm_head.weight'}
    for l in range(LAYERS):
        for g, h in HF_LAYER:
            out['blk.%d.%s.weight' % (l, g)] = '%slayers.%d.%s.weight' % (prefix, l, h)
            if g in PROJS:
                out['blk.%d.%s_norm_in.weight' % (l, g)] = '%slayers.%d.%s.norm.weight' % (prefix, l, h)
    return out


def to_bytes(vals, dtype):
    if dtype == 'F32':
        return struct.pack('<%df' % len(vals), *vals)
    if dtype == 'F16':
        return struct.pack('<%de' % len(vals), *vals)
    raw = struct.pack('<%df' % len(vals), *vals)  # bf16: the high half of each f32 (exact: both())
    return b''.join(raw[i + 2:i + 4] for i in range(0, len(raw), 4))


def write_safetensors(path, tensors_):
    """tensors_: [(name, dtype, shape, values)]."""
    header, blobs, at = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, dtype, shape, vals in tensors_:
        raw = to_bytes(vals, dtype)
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))


def hf_config(arch, tied):
    return {'architectures': [arch], 'model_type': 'qwen3', 'hidden_size': HIDDEN, 'intermediate_size': FF,
            'num_hidden_layers': LAYERS, 'num_attention_heads': HEADS, 'num_key_value_heads': KV_HEADS,
            'head_dim': HEAD_DIM, 'rms_norm_eps': EPS, 'rope_theta': THETA, 'max_position_embeddings': CTX,
            'vocab_size': VOCAB, 'tie_word_embeddings': tied, 'hidden_act': 'silu', 'rope_scaling': None,
            'use_sliding_window': False, 'sliding_window': None, 'attention_bias': False,
            'bos_token_id': VOCAB - 3, 'eos_token_id': VOCAB - 1, 'torch_dtype': 'bfloat16'}


def write_dir(out, arch, tied, model, dtype, prefix):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'config.json'), 'w') as f:
        json.dump(hf_config(arch, tied), f, indent=1)
    names = hf_names(prefix)
    write_safetensors(os.path.join(out, 'model.safetensors'),
                      [(names[g], dtype, shape, v) for g, (shape, v) in sorted(model.items())])


def q2_blocks(vals, cols):
    """Q2_0 blocks of 64 of a group-ternary row-major matrix: each block's d is its common |w|."""
    out = b''
    for o in range(0, len(vals), 64):
        blk = vals[o:o + 64]
        d = max(abs(v) for v in blk)
        codes = [0 if v == 0 else 1 if v > 0 else -1 for v in blk]
        if any(c * d != v for c, v in zip(codes, blk)):
            sys.exit('qwen3_model.py: a block of 64 is not ternary: --gguf takes --group 64 or 128')
        codes = [c + 1 for c in codes]
        out += struct.pack('<e', d) + bytes(codes[i] | codes[i + 1] << 2 | codes[i + 2] << 4 | codes[i + 3] << 6
                                            for i in range(0, 64, 4))
    return out


def gguf_tensors(model, matrix):
    """[(name, ne, type, data)]: matrices through matrix(name, shape, values), the rest F16 (the
    embedding and head) or F32 (norms)."""
    out = []
    for name, (shape, vals) in sorted(model.items()):
        ne = shape[::-1]
        if len(shape) == 1:
            out.append((name, ne, F32, struct.pack('<%df' % len(vals), *vals)))
        elif name.split('.')[-2] in PROJS:
            out.append((name, ne) + matrix(name, shape, vals))
        else:
            out.append((name, ne, F16, struct.pack('<%de' % len(vals), *vals)))
    return out


def write_st(out, group, dtype, seed, tied, dense_float, gguf):
    model = dense_model(random.Random(seed), group, tied, dense_float)
    write_dir(out, 'Qwen3ForCausalLM', tied, model, dtype.upper(), 'model.')
    if gguf:
        ts = gguf_tensors(model, lambda n, shape, v: (Q2_0, q2_blocks(v, shape[1])))
        write_gguf(gguf, metadata('q2_0', seed, None), ts)


def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def absmean(vals):
    """rsrc's (and BitNet's) ternarisation of latent weights, in f32 as docs/numerics.md has it:
    beta = (float)(sum |w| in double / n), at least 1e-5; codes rintf(clamp(w / beta))."""
    total = 0.0
    for v in vals:
        total += abs(v)
    beta = max(f32(total / len(vals)), f32(1e-5))
    return beta, [int(round(min(max(f32(v / beta), -1.0), 1.0))) for v in vals]


def i2s_bytes(vals):
    """bitnet.cpp's I2_S: code j of a group of 128 at bits 6 - 2(j/32) of byte j%32, then the f32
    scale, padded to 32 bytes."""
    beta, codes = absmean(vals)
    out = bytearray(len(codes) // 4)
    for e, c in enumerate(codes):
        out[e // 128 * 32 + e % 32] |= (c + 1) << (6 - 2 * (e % 128 // 32))
    return bytes(out) + struct.pack('<f', beta) + bytes(28)


POOLING_KEYS = {1: 'pooling_mode_mean_tokens', 2: 'pooling_mode_cls_token', 3: 'pooling_mode_lasttoken'}


def write_embed(out, seed, pooling, gguf):
    model = dense_model(random.Random(seed), 0, True, False, proj_norms=True)
    write_dir(out, 'Qwen3Model', True, model, 'BF16', '')
    os.makedirs(os.path.join(out, '1_Pooling'), exist_ok=True)
    with open(os.path.join(out, '1_Pooling', 'config.json'), 'w') as f:
        json.dump(dict({k: k == POOLING_KEYS[pooling] for k in POOLING_KEYS.values()},
                       word_embedding_dimension=HIDDEN, pooling_mode_max_tokens=False), f, indent=1)
    if gguf:
        ts = gguf_tensors(model, lambda n, shape, v: (I2_S, i2s_bytes(v)))
        write_gguf(gguf, metadata('i2_s', seed, pooling, ftype=40), ts)


def read_safetensors(path):
    with open(path, 'rb') as f:
        buf = f.read()
    n = struct.unpack_from('<Q', buf)[0]
    header, base, out = json.loads(buf[8:8 + n]), 8 + n, {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        raw = buf[base + e['data_offsets'][0]:base + e['data_offsets'][1]]
        if e['dtype'] == 'BF16':
            raw = b''.join(b'\0\0' + raw[i:i + 2] for i in range(0, len(raw), 2))
        vals = list(struct.unpack('<%d%s' % (math.prod(e['shape']), 'e' if e['dtype'] == 'F16' else 'f'), raw))
        out[name] = (e['shape'], vals)
    return out


def read_dir(path):
    """(metadata as read_gguf gives it, {GGUF name: (ne, values)}, latent) of a checkpoint directory."""
    cfg = json.load(open(os.path.join(path, 'config.json')))
    latent = cfg['architectures'][0] == 'Qwen3Model'
    meta = {'general.architecture': 'qwen3', 'qwen3.embedding_length': cfg['hidden_size'],
            'qwen3.attention.head_count': cfg['num_attention_heads'],
            'qwen3.attention.head_count_kv': cfg['num_key_value_heads'],
            'qwen3.attention.key_length': cfg['head_dim'], 'qwen3.rope.freq_base': cfg['rope_theta'],
            'qwen3.attention.layer_norm_rms_epsilon': cfg['rms_norm_eps'],
            'qwen3.block_count': cfg['num_hidden_layers']}
    st = read_safetensors(os.path.join(path, 'model.safetensors'))
    names = {h: g for g, h in hf_names('' if latent else 'model.').items()}
    ts = {}
    for name, (shape, vals) in st.items():
        g = names[name]
        if latent and g.split('.')[-2] in PROJS:
            beta, codes = absmean(vals)
            vals = [c * beta for c in codes]
        ts[g] = (shape[::-1], vals)
    return meta, ts, latent


# ---- GGUF reader ----

class Reader:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take('<Q')
        self.pos += n
        return self.buf[self.pos - n:self.pos].decode('utf-8', 'replace')

    def value(self, t):
        if t == STR:
            return self.string()
        if t == ARR:
            et, n = self.take('<I'), self.take('<Q')
            return [self.value(et) for _ in range(n)]
        return self.take(SCALAR[t])


def read_gguf(path):
    """(metadata dict, {name: (ne, type, raw bytes)})."""
    with open(path, 'rb') as f:
        buf = f.read()
    r = Reader(buf)
    if r.take('<4s') != b'GGUF' or r.take('<I') != 3:
        sys.exit('qwen3_model.py: %s: not a GGUF v3 file' % path)
    nt, nkv = r.take('<Q'), r.take('<Q')
    meta = {}
    for _ in range(nkv):
        k = r.string()
        meta[k] = r.value(r.take('<I'))
    infos = []
    for _ in range(nt):
        name, nd = r.string(), r.take('<I')
        ne = [r.take('<Q') for _ in range(nd)]
        infos.append((name, ne, r.take('<I'), r.take('<Q')))
    align = meta.get('general.alignment', ALIGN)
    base = r.pos + (-r.pos % align)
    out = {}
    for name, ne, typ, off in infos:
        n = math.prod(ne)
        qk, size = BLOCK[typ]
        extra = 32 if typ == I2_S else 0  # the f32 scale after the codes, padded
        out[name] = (ne, typ, buf[base + off:base + off + n // qk * size + extra])
    return meta, out


Q1_SIGNS = [tuple(1.0 if b >> k & 1 else -1.0 for k in range(8)) for b in range(256)]
Q2_CODES = [tuple(float((b >> 2 * k & 3) - 1) for k in range(4)) for b in range(256)]


def dequant(typ, raw, n):
    if typ == F32:
        return list(struct.unpack('<%df' % n, raw))
    if typ == F16:
        return list(struct.unpack('<%de' % n, raw))
    if typ == I2_S:
        d = struct.unpack_from('<f', raw, n // 4)[0]
        return [float((raw[e // 128 * 32 + e % 32] >> (6 - 2 * (e % 128 // 32)) & 3) - 1) * d for e in range(n)]
    table = Q1_SIGNS if typ == Q1_0 else Q2_CODES
    out = []
    for o in range(0, len(raw), 18):
        d = struct.unpack_from('<e', raw, o)[0]
        out += [c * d for byte in raw[o + 2:o + 18] for c in table[byte]]
    return out


def load(tensors_, name):
    """A 1-d tensor as a list, a 2-d one as a list of rows (ne1 rows of ne0)."""
    if len(tensors_[name]) == 2:  # a checkpoint directory's: (ne, values)
        ne, v = tensors_[name]
    else:
        ne, typ, raw = tensors_[name]
        v = dequant(typ, raw, math.prod(ne))
    if len(ne) == 1:
        return v
    return [v[i:i + ne[0]] for i in range(0, len(v), ne[0])]


# ---- float64 forward pass ----

class Model:
    def __init__(self, path):
        meta, ts, _ = read_dir(path) if os.path.isdir(path) else read_gguf(path) + (False,)
        a = meta['general.architecture'] + '.'
        self.hidden = meta[a + 'embedding_length']
        self.heads = meta[a + 'attention.head_count']
        self.kv_heads = meta.get(a + 'attention.head_count_kv', self.heads)
        self.head_dim = meta.get(a + 'attention.key_length', self.hidden // self.heads)
        self.theta = meta.get(a + 'rope.freq_base', 10000.0)
        self.eps = meta[a + 'attention.layer_norm_rms_epsilon']
        self.embd = load(ts, 'token_embd.weight')
        self.output = load(ts, 'output.weight') if 'output.weight' in ts else self.embd
        self.output_norm = load(ts, 'output_norm.weight')
        names = ['attn_norm', 'attn_q_norm', 'attn_k_norm', 'ffn_norm', 'attn_q', 'attn_k',
                 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down']
        # BitNet's BitLinear: its own RMSNorm with weights, then int8 activations per token
        self.bitnet = 'blk.0.attn_q_norm_in.weight' in ts
        if self.bitnet:
            names += [p + '_norm_in' for p in PROJS]
        self.layers = [{n: load(ts, 'blk.%d.%s.weight' % (l, n)) for n in names}
                       for l in range(meta[a + 'block_count'])]
        d = self.head_dim
        self.inv_freq = [self.theta ** (-2.0 * i / d) for i in range(d // 2)]

    def rmsnorm(self, x, w):
        s = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + self.eps)
        return [v * s * g for v, g in zip(x, w)]

    def rope(self, x, pos):
        """NEOX rotation: element i pairs with i + d/2."""
        h = len(x) // 2
        out = [0.0] * len(x)
        for i, f in enumerate(self.inv_freq):
            c, s = math.cos(pos * f), math.sin(pos * f)
            out[i] = x[i] * c - x[i + h] * s
            out[i + h] = x[i] * s + x[i + h] * c
        return out

    def heads_of(self, v, n):
        d = self.head_dim
        return [v[i * d:(i + 1) * d] for i in range(n)]

    def attention(self, L, x, pos, cache):
        """Wo . attn(q, k, v) for one new token; cache: [(k heads, v heads)] of earlier ones."""
        q = [self.rope(self.rmsnorm(h, L['attn_q_norm']), pos)
             for h in self.heads_of(self.proj(L, 'attn_q', x), self.heads)]
        k = [self.rope(self.rmsnorm(h, L['attn_k_norm']), pos)
             for h in self.heads_of(self.proj(L, 'attn_k', x), self.kv_heads)]
        cache.append((k, self.heads_of(self.proj(L, 'attn_v', x), self.kv_heads)))
        scale, group, out = 1.0 / math.sqrt(self.head_dim), self.heads // self.kv_heads, []
        for h in range(self.heads):
            g = h // group
            p = softmax([dot(q[h], kt[g]) * scale for kt, _ in cache])
            acc = [0.0] * self.head_dim
            for w, (_, vt) in zip(p, cache):
                acc = [a + w * b for a, b in zip(acc, vt[g])]
            out += acc
        return self.proj(L, 'attn_output', out)

    def ffn(self, L, x):
        g, u = self.proj(L, 'ffn_gate', x), self.proj(L, 'ffn_up', x)
        return self.proj(L, 'ffn_down', [a / (1.0 + math.exp(-a)) * b for a, b in zip(g, u)])

    def proj(self, L, name, x):
        """W . x; in a BitNet model W . q / s with q = clamp(round(x' * s), -128, 127),
        s = 127 / max(max |x'|, 1e-5), x' = rmsnorm(x, the projection's own norm)."""
        if not self.bitnet:
            return matvec(L[name], x)
        x = self.rmsnorm(x, L[name + '_norm_in'])
        s = 127.0 / max(max(abs(v) for v in x), 1e-5)
        q = [min(max(round(v * s), -128), 127) for v in x]
        return [v / s for v in matvec(L[name], q)]

    def step(self, tok, pos, caches):
        """The final-normed hidden state and the logits after token tok at position pos; caches:
        one KV list per layer."""
        h = list(self.embd[tok])
        for L, cache in zip(self.layers, caches):
            h = add(h, self.attention(L, self.rmsnorm(h, L['attn_norm']), pos, cache))
            h = add(h, self.ffn(L, self.rmsnorm(h, L['ffn_norm'])))
        hn = self.rmsnorm(h, self.output_norm)
        return hn, matvec(self.output, hn)

    def run(self, ids):
        caches = [[] for _ in self.layers]
        return [self.step(t, p, caches) for p, t in enumerate(ids)]


def dot(a, b):
    return sum(map(operator.mul, a, b))


_arrays = {}  # matvec's matrices as numpy arrays, by id (with the list, so the id stays its)


def matvec(w, x):
    """w·x in float64: through numpy where it is installed (the same sums up to the last bits: its
    order of additions differs), else a Python loop. A matrix is converted once (kept by identity)."""
    if _np is None:
        return [dot(row, x) for row in w]
    hit = _arrays.get(id(w))
    if hit is None or hit[0] is not w:
        hit = _arrays[id(w)] = (w, _np.array(w, dtype=_np.float64))
    return (hit[1] @ _np.array(x, dtype=_np.float64)).tolist()



def add(a, b):
    return [x + y for x, y in zip(a, b)]


def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    s = sum(e)
    return [x / s for x in e]


# ---- command line ----

def reference_parser(family):
    """The parser of a *_model.py: its subcommands, and `reference MODEL IDS [--json FILE]` (the
    float64 logits after each prefix of the ids) added to them; returns (parser, subparsers,
    reference's parser) for each file's own options."""
    ap = argparse.ArgumentParser(description=f'float64 logits of a {family} GGUF file after each prefix')
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('reference', help='float64 logits after each prefix of the ids')
    r.add_argument('model')
    r.add_argument('ids')
    r.add_argument('--json', help='output file (default stdout)')
    return ap, sub, r


def emit_json(path, value):
    """value as JSON into the file path, or to stdout when path is None."""
    text = json.dumps(value)
    if path:
        with open(path, 'w') as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def main():
    ap = argparse.ArgumentParser(description='Qwen3 GGUF test models and their float reference')
    sub = ap.add_subparsers(dest='cmd', required=True)
    w = sub.add_parser('write', help='write a random model')
    w.add_argument('out')
    w.add_argument('--weights', choices=['q2_0', 'q1_0', 'q2_0-plus2'], required=True)
    w.add_argument('--seed', type=int, default=1)
    w.add_argument('--tied', action='store_true', help='no output.weight: tied to token_embd')
    w.add_argument('--pooling', type=int, choices=[0, 1, 2, 3], help='qwen3.pooling_type (embeddings)')
    w = sub.add_parser('write-st', help='a Qwen3ForCausalLM checkpoint directory, ternary per group')
    w.add_argument('out')
    w.add_argument('--group', type=int, choices=[32, 64, 128], default=128)
    w.add_argument('--dtype', choices=['f16', 'bf16'], default='bf16')
    w.add_argument('--seed', type=int, default=1)
    w.add_argument('--tied', action='store_true', help='no lm_head.weight: tied to the embedding')
    w.add_argument('--float', action='store_true', help='plain float matrices (not ternary)')
    w.add_argument('--gguf', help='also write the same model as a Q2_0 GGUF file')
    w = sub.add_parser('write-embed', help='a BitNet embedding model (Qwen3Model) checkpoint directory')
    w.add_argument('out')
    w.add_argument('--seed', type=int, default=1)
    w.add_argument('--pooling', type=int, choices=[1, 2, 3], default=3, help='1 mean, 2 first, 3 last token')
    w.add_argument('--gguf', help='also write the same model as an I2_S GGUF file')
    r = sub.add_parser('reference', help='float64 logits after each prefix of the ids')
    r.add_argument('model')
    r.add_argument('ids')
    r.add_argument('--json', help='output file (default stdout)')
    args = ap.parse_args()
    if args.cmd == 'write':
        write(args.out, args.weights, args.seed, args.tied, args.pooling)
        return
    if args.cmd == 'write-st':
        write_st(args.out, args.group, args.dtype, args.seed, args.tied, args.float, args.gguf)
        return
    if args.cmd == 'write-embed':
        write_embed(args.out, args.seed, args.pooling, args.gguf)
        return
    out = Model(args.model).run([int(t) for t in args.ids.split(',')])
    emit_json(args.json, {'logits': [l for _, l in out], 'hidden': [h for h, _ in out]})


if __name__ == '__main__':
    main()
