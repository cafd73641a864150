#!/usr/bin/env python3
"""Writes a minimal BitNet b1.58 checkpoint (packed uint8 + weight_scale, safetensors +
config.json) whose weights the lit tests can state exactly, optionally broken in one
precise way so that the compiler's diagnostics can be pinned.

Shape: hidden 8, heads 2, kv heads 1 (head_dim 4), intermediate 8, 1 layer, vocab 16.
So k_proj and v_proj are 4x8 matrices; --kproj sets k_proj's rows as strings over "+-0".
Every other ternary matrix follows a fixed formula (see pattern()).
"""
import argparse, json, math, os, struct

HIDDEN, HEADS, KV, INTER, VOCAB = 8, 2, 1, 8, 16
HEAD_DIM = HIDDEN // HEADS

def bf16(x):
    b = struct.unpack('<I', struct.pack('<f', x))[0]
    if math.isnan(x):
        return 0x7fc0
    return ((b + 0x7fff + ((b >> 16) & 1)) >> 16) & 0xffff

def pattern(rows, cols, salt):
    return [[((r * 7 + c * c * 5 + r * c + salt) % 3) - 1 for c in range(cols)] for r in range(rows)]

def pack(w):
    rows, cols = len(w), len(w[0])
    R = rows // 4
    out = bytearray(R * cols)
    for r in range(R):
        for c in range(cols):
            b = 0
            for i in range(4):
                b |= (w[i * R + r][c] + 1) << (2 * i)
            out[r * cols + c] = b
    return bytes(out)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--kproj', help='4 rows of 8 chars over "+-0", comma-separated')
    ap.add_argument('--break', dest='brk', default='none')
    ap.add_argument('--shards', action='store_true', help='two safetensors files and an index')
    ap.add_argument('--max-pos', type=int, default=64, help='max_position_embeddings')
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    tensors = []  # (name, dtype, shape, bytes)
    def add(name, dtype, shape, data):
        tensors.append([name, dtype, list(shape), data])
    def add_bf16(name, shape, values):
        add(name, 'BF16', shape, b''.join(struct.pack('<H', bf16(v)) for v in values))

    add_bf16('model.embed_tokens.weight', [VOCAB, HIDDEN],
             [math.sin(i * 0.7 + 0.3) for i in range(VOCAB * HIDDEN)])
    add_bf16('model.norm.weight', [HIDDEN], [1.0] * HIDDEN)
    L = 'model.layers.0.'
    add_bf16(L + 'input_layernorm.weight', [HIDDEN], [1.0] * HIDDEN)
    add_bf16(L + 'post_attention_layernorm.weight', [HIDDEN], [1.0] * HIDDEN)
    add_bf16(L + 'self_attn.attn_sub_norm.weight', [HIDDEN], [1.0] * HIDDEN)
    add_bf16(L + 'mlp.ffn_sub_norm.weight', [INTER], [1.0] * INTER)
    shapes = {'self_attn.q_proj': (HIDDEN, HIDDEN), 'self_attn.k_proj': (KV * HEAD_DIM, HIDDEN),
              'self_attn.v_proj': (KV * HEAD_DIM, HIDDEN), 'self_attn.o_proj': (HIDDEN, HIDDEN),
              'mlp.gate_proj': (INTER, HIDDEN), 'mlp.up_proj': (INTER, HIDDEN), 'mlp.down_proj': (HIDDEN, INTER)}
    for salt, (proj, (rows, cols)) in enumerate(shapes.items()):
        w = pattern(rows, cols, salt)
        if proj == 'self_attn.k_proj' and a.kproj:
            w = [[{'+': 1, '-': -1, '0': 0}[ch] for ch in row] for row in a.kproj.split(',')]
        data = bytearray(pack(w))
        if a.brk == 'code3' and proj == 'mlp.up_proj':
            data[5] |= 0xc0  # row 3*R + 0 of column 5 gets code 3
        add(L + proj + '.weight', 'U8', [rows // 4, cols], bytes(data))
        scale = float('nan') if a.brk == 'nan-scale' and proj == 'mlp.gate_proj' else 0.5 + 0.125 * salt
        if a.brk == 'zero-scale' and proj == 'mlp.gate_proj':
            scale = 0.0
        add_bf16(L + proj + '.weight_scale', [1], [scale])

    config = {'architectures': ['BitNetForCausalLM'], 'model_type': 'bitnet', 'hidden_act': 'relu2',
              'hidden_size': HIDDEN, 'intermediate_size': INTER, 'num_hidden_layers': 1,
              'num_attention_heads': HEADS, 'num_key_value_heads': KV, 'vocab_size': VOCAB,
              'max_position_embeddings': a.max_pos, 'rms_norm_eps': 1e-5, 'rope_theta': 500000.0,
              'bos_token_id': 1, 'eos_token_id': 2, 'tie_word_embeddings': True,
              'quantization_config': {'quant_method': 'bitnet', 'linear_class': 'autobitlinear',
                                      'quantization_mode': 'offline'}}

    b = a.brk
    if b == 'missing-tensor':
        tensors = [t for t in tensors if t[0] != L + 'mlp.down_proj.weight']
    if b == 'wrong-dtype':
        for t in tensors:
            if t[0] == L + 'self_attn.q_proj.weight': t[1] = 'I8'
    if b == 'unsupported-dtype':
        for t in tensors:
            if t[0] == 'model.norm.weight': t[1] = 'F64'; t[3] = t[3] * 4
    # config.json breaks: a value that is wrong in itself or disagrees with the tensors
    # (a key path, and the value to put there; DELETE removes the key)
    DELETE = object()
    config_breaks = {
        'shape-mismatch': (('intermediate_size',), 12),
        'heads-not-divide': (('num_key_value_heads',), 3),
        'vocab-too-large': (('vocab_size',), 32),
        'unknown-arch': (('architectures',), ['MysteryForCausalLM']),
        'unknown-quant': (('quantization_config', 'quant_method'), 'gptq'),
        'bad-act': (('hidden_act',), 'gelu'),
        'missing-hidden': (('hidden_size',), DELETE),
        'hidden-not-integer': (('hidden_size',), '8'),
        'huge-vocab': (('vocab_size',), 1e300),
        'zero-layers': (('num_hidden_layers',), 0),
        'odd-head-dim': (('head_dim',), 3),
        'hidden-not-divisible': (('num_attention_heads',), 3),
        'too-wide': (('head_dim',), 40000),
        'bos-out-of-range': (('bos_token_id',), VOCAB),
        'rope-scaling': (('rope_scaling',), {'type': 'linear', 'factor': 2.0}),
        'negative-eps': (('rms_norm_eps',), -1),
        'untied-no-lm-head': (('tie_word_embeddings',), False),
        'no-quant-config': (('quantization_config',), DELETE),
        'linear-class': (('quantization_config', 'linear_class'), 'qlinear'),
    }
    if b in config_breaks:
        path, value = config_breaks[b]
        where = config
        for key in path[:-1]:
            where = where[key]
        if value is DELETE:
            del where[path[-1]]
        else:
            where[path[-1]] = value
    # tensor breaks
    def retype(name, dtype=None, shape=None, data=None):
        for t in tensors:
            if t[0] == name:
                t[1] = dtype or t[1]; t[2] = shape or t[2]; t[3] = t[3] if data is None else data
    if b == 'extra-tensor':
        add_bf16('model.layers.1.input_layernorm.weight', [HIDDEN], [1.0] * HIDDEN)
    if b == 'missing-scale':
        tensors = [t for t in tensors if t[0] != L + 'mlp.gate_proj.weight_scale']
    if b == 'inf-scale':
        retype(L + 'mlp.gate_proj.weight_scale', data=struct.pack('<H', 0x7f80))
    if b == 'negative-scale':
        retype(L + 'mlp.gate_proj.weight_scale', data=struct.pack('<H', bf16(-0.5)))
    if b == 'two-scales':
        retype(L + 'mlp.gate_proj.weight_scale', shape=[2], data=struct.pack('<HH', bf16(0.5), bf16(0.5)))
    if b == 'scale-wrong-dtype':
        retype(L + 'mlp.gate_proj.weight_scale', dtype='U8', shape=[2])
    if b == 'norm-wrong-dtype':
        retype(L + 'input_layernorm.weight', dtype='U8', shape=[2 * HIDDEN])
    if b == 'packed-shape':
        retype(L + 'self_attn.q_proj.weight', shape=[HIDDEN, HIDDEN // 4])
    if b == 'embed-rank':
        retype('model.embed_tokens.weight', shape=[VOCAB * HIDDEN])
    # non-finite values in the tensors that are not ternary: the embedding (the tied LM head), a
    # layer's norm and the final norm (bf16 NaN 0x7fc0, inf 0x7f80)
    def poison(name, index, bits):
        for t in tensors:
            if t[0] == name:
                data = bytearray(t[3])
                data[2 * index:2 * index + 2] = struct.pack('<H', bits)
                t[3] = bytes(data)
    if b == 'embed-nan':
        poison('model.embed_tokens.weight', 3 * HIDDEN + 1, 0x7fc0)
    if b == 'norm-inf':
        poison(L + 'post_attention_layernorm.weight', 4, 0xff80)
    if b == 'final-norm-nan':
        poison('model.norm.weight', 0, 0x7fc0)
    if b == 'latent-inf':
        config['quantization_config']['quantization_mode'] = 'online'
        tensors = [t for t in tensors if not t[0].endswith('_scale')]
        for t in tensors:
            if t[1] == 'U8':
                rows, cols = t[2][0] * 4, t[2][1]
                values = [0.25 * ((r + c) % 3 - 1) for r in range(rows) for c in range(cols)]
                if t[0] == L + 'mlp.up_proj.weight':
                    values[2 * cols + 5] = float('inf')
                t[1], t[2], t[3] = 'BF16', [rows, cols], b''.join(struct.pack('<H', bf16(v)) for v in values)

    if a.shards:
        # Two files and an index: embedding and norms in the first, the layer in the second.
        first = [t for t in tensors if not t[0].startswith(L)]
        second = [t for t in tensors if t[0].startswith(L)]
        files = {'model-00001-of-00002.safetensors': first, 'model-00002-of-00002.safetensors': second}
        weight_map = {t[0]: f for f, ts in files.items() for t in ts}
        if b == 'shard-missing-file':
            files.pop('model-00002-of-00002.safetensors')
        if b == 'shard-wrong-file':
            weight_map['model.norm.weight'] = 'model-00002-of-00002.safetensors'
        if b == 'shard-escape':
            weight_map['model.norm.weight'] = '../model-00001-of-00002.safetensors'
        if b == 'shard-unmapped':
            del weight_map['model.norm.weight']
        if b == 'shard-duplicate':
            second.append(first[1])
        index = {'metadata': {'total_size': 0}, 'weight_map': weight_map}
        if b == 'index-no-weight-map':
            index = {'metadata': {}, 'weightmap': weight_map}
        for f, ts in files.items():
            write_safetensors(os.path.join(a.out, f), ts, 'none', L)
        with open(os.path.join(a.out, 'model.safetensors.index.json'), 'w') as f:
            json.dump(index, f, indent=2)
    else:
        write_safetensors(os.path.join(a.out, 'model.safetensors'), tensors, b, L)
    cfg = json.dumps(config, indent=2)
    if b == 'bad-config-json':
        cfg = cfg.replace('"hidden_size": 8', '"hidden_size": 8,,')
    if b == 'config-duplicate-key':
        cfg = cfg.replace('"hidden_size": 8', '"hidden_size": 8, "hidden_size": 16')
    if b == 'config-not-object':
        cfg = '[' + cfg + ']'
    cfg = cfg.encode()
    if b == 'config-not-utf8':
        cfg = cfg.replace(b'"bitnet"', b'"bit\xc0\xafnet"', 1)
    with open(os.path.join(a.out, 'config.json'), 'wb') as f:
        f.write(cfg)

def write_safetensors(path, tensors, b, L):
    header, offset, blobs = {}, 0, []
    for name, dtype, shape, data in tensors:
        if b == 'misaligned' and name == 'model.norm.weight':
            blobs.append(b'\0')
            offset += 1
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header['__metadata__'] = {'format': 'pt'}
    norm = header.get('model.norm.weight')
    if b == 'overlap':
        header[L + 'mlp.up_proj.weight']['data_offsets'] = list(header[L + 'mlp.gate_proj.weight']['data_offsets'])
    if b == 'overlap-past-empty':
        # a zero-size tensor between two that overlap must not hide the overlap
        begin = header[L + 'mlp.gate_proj.weight']['data_offsets'][0]
        header['model.empty'] = {'dtype': 'U8', 'shape': [0], 'data_offsets': [begin + 1, begin + 1]}
        header[L + 'mlp.up_proj.weight']['data_offsets'] = [begin + 2, begin + 18]
    if b == 'offset-out-of-range':
        norm['data_offsets'] = [offset, offset + 16]
    if b == 'offsets-reversed':
        norm['data_offsets'] = norm['data_offsets'][::-1]
    if b == 'size-mismatch':
        norm['shape'] = [HIDDEN + 1]
    if b == 'shape-fraction':
        norm['shape'] = [7.5]
    if b == 'five-dims':
        norm['shape'] = [1, 1, 1, 1, HIDDEN]
    if b == 'shape-overflow':
        # 2^52 * 2^52 * 2^24 = 2^128 elements: zero modulo a 128-bit product
        norm['shape'] = [1 << 52, 1 << 52, 1 << 24]
        norm['data_offsets'] = [norm['data_offsets'][0]] * 2
    if b == 'unknown-field':
        norm['crc32'] = 0
    if b == 'entry-not-object':
        header['model.norm.weight'] = 5
    text = json.dumps(header).encode()
    if b == 'bad-json':
        text = text[:-1] + b','
    if b == 'header-not-object':
        text = b'[' + text + b']'
    if b == 'header-not-utf8':
        text = text.replace(b'"pt"', b'"p\xfft"')
    if b == 'header-duplicate-key':
        text = text.replace(b'"__metadata__"', b'"model.norm.weight": {}, "__metadata__"')
    text += b' ' * ((8 - len(text) % 8) % 8)
    hlen = len(text)
    if b == 'header-past-eof':
        hlen = 1 << 40
    body = struct.pack('<Q', hlen) + text + b''.join(blobs)
    if b == 'truncated':
        body = body[:5]
    if b == 'empty-file':
        body = b''
    if b == 'truncated-data':
        body = body[:-10]
    absurd = (100 << 20) + 8
    if b == 'header-absurd':
        body = struct.pack('<Q', absurd) + body[8:]
    with open(path, 'wb') as f:
        f.write(body)
        if b == 'header-absurd':
            f.truncate(8 + absurd + 64)  # sparse: the header length fits in the file but not the limit

main()
