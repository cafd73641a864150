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
              'max_position_embeddings': 64, 'rms_norm_eps': 1e-5, 'rope_theta': 500000.0,
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
    if b == 'shape-mismatch':
        config['intermediate_size'] = 12
    if b == 'heads-not-divide':
        config['num_key_value_heads'] = 3
    if b == 'vocab-too-large':
        config['vocab_size'] = 32
    if b == 'unknown-arch':
        config['architectures'] = ['MysteryForCausalLM']
    if b == 'unknown-quant':
        config['quantization_config']['quant_method'] = 'gptq'
    if b == 'bad-act':
        config['hidden_act'] = 'gelu'

    header, offset, blobs = {}, 0, []
    for name, dtype, shape, data in tensors:
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header['__metadata__'] = {'format': 'pt'}
    if b == 'overlap':
        header[L + 'mlp.up_proj.weight']['data_offsets'] = list(header[L + 'mlp.gate_proj.weight']['data_offsets'])
    if b == 'offset-out-of-range':
        header['model.norm.weight']['data_offsets'] = [offset, offset + 16]
    if b == 'size-mismatch':
        header['model.norm.weight']['shape'] = [HIDDEN + 1]
    text = json.dumps(header).encode()
    if b == 'bad-json':
        text = text[:-1] + b','
    text += b' ' * ((8 - len(text) % 8) % 8)
    hlen = len(text)
    if b == 'header-past-eof':
        hlen = 1 << 40
    body = struct.pack('<Q', hlen) + text + b''.join(blobs)
    if b == 'truncated':
        body = body[:5]
    if b == 'truncated-data':
        body = body[:-10]
    with open(os.path.join(a.out, 'model.safetensors'), 'wb') as f:
        f.write(body)
    cfg = json.dumps(config, indent=2)
    if b == 'bad-config-json':
        cfg = cfg.replace('"hidden_size": 8', '"hidden_size": 8,,')
    with open(os.path.join(a.out, 'config.json'), 'w') as f:
        f.write(cfg)

main()
