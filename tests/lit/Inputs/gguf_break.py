#!/usr/bin/env python3
"""Writes a broken copy of a GGUF file, for the refusal tests: gguf_break.py IN OUT BREAK.
It reads the file's metadata and tensor table, changes one thing, and writes it back (the
data section as it was, unless the break is in the data). read() and write() serve
gguf_add_spm.py too."""
import struct, sys

b, pos = b'', 0
def take(fmt):
    global pos
    v = struct.unpack_from('<' + fmt, b, pos)
    pos += struct.calcsize('<' + fmt)
    return v[0]
def take_str():
    n = take('Q'); global pos
    s = b[pos:pos + n]; pos += n
    return s
SIZES = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}
def take_value(t):
    global pos
    start = pos
    if t == 8: take_str()
    elif t == 9:
        at, n = take('I'), take('Q')
        for _ in range(n): take_value(at)
    else: take(SIZES[t])
    return b[start:pos]

def read(path):
    """(version, kvs [[key, type, raw value bytes]], tensors [[name, dims, type, offset]], data)"""
    global b, pos
    b, pos = open(path, 'rb').read(), 0
    assert b[:4] == b'GGUF'
    pos = 4
    version, nt, nkv = take('I'), take('Q'), take('Q')
    kvs = []
    for _ in range(nkv):
        k = take_str(); t = take('I'); kvs.append([k, t, take_value(t)])
    tensors = []
    for _ in range(nt):
        name = take_str(); nd = take('I'); dims = [take('Q') for _ in range(nd)]
        tensors.append([name, dims, take('I'), take('Q')])
    data_at = (pos + 31) // 32 * 32
    return version, kvs, tensors, bytearray(b[data_at:])

def s(x): return struct.pack('<Q', len(x)) + x

def header(version, kvs, tensors, count=None):
    out = bytearray(b'GGUF' + struct.pack('<IQQ', version, len(tensors) if count is None else count, len(kvs)))
    for k, t, v in kvs: out += s(k) + struct.pack('<I', t) + v
    for name, dims, t, off in tensors:
        out += s(name) + struct.pack('<I', len(dims)) + b''.join(struct.pack('<Q', d) for d in dims) + struct.pack('<IQ', t, off)
    return out

def write(path, version, kvs, tensors, data, count=None, cut=None):
    out = header(version, kvs, tensors, count)
    table_end = len(out)
    out += bytes((32 - len(out) % 32) % 32) + data
    if cut: out = out[:table_end - cut]
    open(path, 'wb').write(out)


if __name__ == '__main__':
    src, dst, brk = sys.argv[1], sys.argv[2], sys.argv[3]
    version, kvs, tensors, data = read(src)
    nt = len(tensors)
    def kv_index(key): return [i for i, kv in enumerate(kvs) if kv[0] == key][0]
    def tensor(name): return [t for t in tensors if t[0] == name][0]
    if brk == 'version': version = 4
    elif brk == 'counts': nt = 1 << 60
    elif brk == 'alignment': kvs[kv_index(b'general.alignment')][2] = struct.pack('<I', 48)
    elif brk == 'nested-array': kvs.append([b'x.nested', 9, struct.pack('<IQ', 9, 1) + struct.pack('<IQ', 4, 0)])
    elif brk == 'dup-key': kvs.append(list(kvs[0]))
    elif brk == 'dup-tensor': tensors[2][0] = tensors[1][0]
    elif brk == 'misaligned': tensor(b'blk.0.attn_q.weight')[3] += 1
    elif brk == 'past-end': tensor(b'blk.0.attn_q.weight')[3] = 1 << 40
    elif brk == 'bad-type': tensor(b'blk.0.attn_k.weight')[2] = 99
    elif brk == 'iq2-type': tensor(b'blk.0.attn_k.weight')[2] = 16
    elif brk == 'arch': kvs[kv_index(b'general.architecture')][2] = s(b'mamba')
    elif brk == 'missing-key': del kvs[kv_index(b'bitnet-b1.58.embedding_length')]
    elif brk == 'unknown-tensor': tensor(b'blk.0.attn_norm.weight')[0] = b'blk.0.rope_freqs.weight'
    elif brk == 'float-matrix': tensor(b'blk.0.attn_v.weight')[2] = 1  # F16 needs more bytes than TQ2_0's
    elif brk == 'scale-mismatch':  # TQ2_0: block 3 of attn_q gets another scale
        t = tensor(b'blk.0.attn_q.weight'); at = t[3] + 3 * 66 + 64
        data[at:at + 2] = struct.pack('<e', struct.unpack('<e', bytes(data[at:at + 2]))[0] * 2)
    elif brk == 'code3':  # I2_S: a byte of codes all 3
        t = tensor(b'blk.1.ffn_up.weight'); data[t[3] + 5] = 0xff
    elif brk == 'scale-tensor':  # not broken: attn_q's TQ2_0 scales halved, a scalar F32 ".scale" of 2
        t = tensor(b'blk.0.attn_q.weight')
        for blk in range(t[1][0] * t[1][1] // 256):
            at = t[3] + blk * 66 + 64
            data[at:at + 2] = struct.pack('<e', struct.unpack('<e', bytes(data[at:at + 2]))[0] / 2)
        data += bytes((32 - len(data) % 32) % 32)
        tensors.append([b'blk.0.attn_q.scale', [], 0, len(data)])
        data += struct.pack('<f', 2.0)
    elif brk == 'q2-nan-scale':  # Q2_0: block 2 of attn_q's scale a NaN
        t = tensor(b'blk.0.attn_q.weight'); at = t[3] + 2 * 18
        data[at:at + 2] = struct.pack('<H', 0x7e00)
    elif brk == 'pooling-rank':  # a reranker's pooling
        kvs.append([b'qwen3.pooling_type', 4, struct.pack('<I', 4)])
    elif brk == 'q2-scale-tensor':  # not broken: attn_q's Q2_0 scales halved, a scalar F32 ".scale" of 2
        t = tensor(b'blk.0.attn_q.weight')
        for blk in range(t[1][0] * t[1][1] // 64):
            at = t[3] + blk * 18
            data[at:at + 2] = struct.pack('<e', struct.unpack('<e', bytes(data[at:at + 2]))[0] / 2)
        data += bytes((32 - len(data) % 32) % 32)
        tensors.append([b'blk.0.attn_q.scale', [], 0, len(data)])
        data += struct.pack('<f', 2.0)
    elif brk == 'dup-token':  # the vocabulary's token 200 spelled as token 100
        at = kv_index(b'tokenizer.ggml.tokens'); raw = kvs[at][2]
        n, q, toks = struct.unpack_from('<Q', raw, 4)[0], 12, []
        for _ in range(n):
            m = struct.unpack_from('<Q', raw, q)[0]; toks.append(raw[q + 8:q + 8 + m]); q += 8 + m
        toks[200] = toks[100]
        kvs[at][2] = raw[:12] + b''.join(s(x) for x in toks)
    elif brk == 'pre-falcon3':  # not broken: Falcon 3's name for Llama 3's split
        kvs[kv_index(b'tokenizer.ggml.pre')][2] = s(b'falcon3')
    elif brk == 'gemma3-softcap':  # Gemma2's final logit soft-capping, which rsrc has not
        kvs.append([b'gemma3.final_logit_softcapping', 6, struct.pack('<f', 30.0)])
    elif brk == 'gemma3-rope-scaling':  # the larger Gemma3's linear RoPE scaling of the global layers
        kvs.append([b'gemma3.rope.scaling.factor', 6, struct.pack('<f', 8.0)])
    elif brk == 'gemma3-pattern':  # not broken: every other layer local, another local RoPE base
        kvs.append([b'gemma3.attention.sliding_window_pattern', 4, struct.pack('<I', 2)])
        kvs.append([b'gemma3.rope.freq_base_swa', 6, struct.pack('<f', 5000.0)])
    elif brk == 'maple-shared':  # shared experts, which maple has not
        kvs.append([b'maple.expert_shared_count', 4, struct.pack('<I', 1)])
    elif brk == 'maple-no-pattern':  # maple needs the list of its windowed layers
        del kvs[kv_index(b'maple.attention.sliding_window_pattern')]
    elif brk == 'maple-experts':  # blk.0.ffn_up_exps with one expert fewer than maple.expert_count
        t = tensor(b'blk.0.ffn_up_exps.weight')
        t[1][2] -= 1
    elif brk == 'maple-exps-scale':  # a per-tensor scale of a stacked expert tensor
        data += bytes((32 - len(data) % 32) % 32)
        tensors.append([b'blk.0.ffn_up_exps.scale', [1], 0, len(data)])
        data += struct.pack('<f', 2.0)
    elif brk == 'maple-router-zero':  # not broken: every router weight 0, so every expert ties everywhere
        for name, dims, typ, off in tensors:
            if name.endswith(b'.ffn_gate_inp.weight'):
                data[off:off + 4 * dims[0] * dims[1]] = bytes(4 * dims[0] * dims[1])
    elif brk == 'maple-clamp-array':  # not broken: swiglu_clamp_exp per layer (0: none, then 3, 4, 5)
        kvs.append([b'maple.swiglu_clamp_exp', 9, struct.pack('<IQ', 6, 4) + struct.pack('<4f', 0, 3, 4, 5)])
    elif brk == 'qwen35-no-conv':  # a DeltaNet layer without its convolution
        tensors.remove(tensor(b'blk.1.ssm_conv1d.weight'))
    elif brk == 'qwen35-conv-shape':  # the convolution of half the channels
        tensor(b'blk.1.ssm_conv1d.weight')[1][1] //= 2
    elif brk == 'qwen35-attn-in-deltanet':  # a DeltaNet layer's output projection named as attention's
        tensor(b'blk.0.ssm_out.weight')[0] = b'blk.0.attn_output.weight'
    elif brk == 'qwen35-mtp':  # not broken: a multi-token-prediction layer after the 4 (its tensors alias others')
        kvs[kv_index(b'qwen35.block_count')][2] = struct.pack('<I', 5)
        kvs.append([b'qwen35.nextn_predict_layers', 4, struct.pack('<I', 1)])
        for old, new in [(b'blk.3.attn_norm.weight', b'blk.4.attn_norm.weight'),
                         (b'blk.3.attn_q.weight', b'blk.4.attn_q.weight'),
                         (b'output_norm.weight', b'blk.4.nextn.enorm.weight')]:
            t = tensor(old)
            tensors.append([new, list(t[1]), t[2], t[3]])
    elif brk == 'qwen35-q2-beta':  # not broken: layer 0's beta rows [64, 4] as Q2_0 (4 blocks, some +2)
        t = tensor(b'blk.0.ssm_beta.weight')
        t[2] = 42
        for blk in range(4):
            data[t[3] + 18 * blk:t[3] + 18 * blk + 18] = struct.pack('<e', 0.05 + 0.01 * blk) + \
                bytes((37 * i + 11 * blk) & 0xff for i in range(16))
    elif brk == 'qwen35-sections':  # RoPE pair 1 of 2 in the fourth (text: unrotated) section
        kvs[kv_index(b'qwen35.rope.dimension_sections')][2] = struct.pack('<IQ4i', 5, 4, 1, 0, 0, 1)
    elif brk == 'qwen35moe-fuse':  # not broken: each layer's gate and up experts as one ffn_gate_up_exps (Q2_0)
        for name in [t[0] for t in tensors if t[0].endswith(b'.ffn_gate_exps.weight')]:
            g, u = tensor(name), tensor(name.replace(b'gate_exps', b'up_exps'))
            per = g[1][0] * g[1][1] // 64 * 18  # one expert's bytes (Q2_0: 18 bytes a block of 64)
            data += bytes((32 - len(data) % 32) % 32)
            at = len(data)
            for e in range(g[1][2]):
                data += data[g[3] + e * per:g[3] + (e + 1) * per] + data[u[3] + e * per:u[3] + (e + 1) * per]
            tensors.remove(g), tensors.remove(u)
            tensors.append([name.replace(b'gate_exps', b'gate_up_exps'), [g[1][0], 2 * g[1][1], g[1][2]], g[2], at])
    elif brk == 'qwen35moe-no-shexp-gate':  # layer 2 without its shared expert's gate
        tensors.remove(tensor(b'blk.2.ffn_gate_inp_shexp.weight'))
    elif brk == 'qwen35moe-dense':  # layer 1 with a dense FFN's name for its shared expert's gate
        tensor(b'blk.1.ffn_gate_shexp.weight')[0] = b'blk.1.ffn_gate.weight'
    elif brk == 'qwen35-mtp-copy':  # not broken: an MTP layer (Q2_0) that guesses the model's last token again:
        # its attention's and FFN's outputs zero, eh_proj [0 | I] (the hidden state's half), hnorm 1 and its
        # head norm the model's, so its output is the model's final-normed hidden state before the token
        L = [t for t in tensors if t[0].endswith(b'.nextn.eh_proj.weight')][0][0].split(b'.')[1]
        for kind in (b'attn_output', b'ffn_down'):
            t = tensor(b'blk.' + L + b'.' + kind + b'.weight')
            for blk in range(t[1][0] * t[1][1] // 64):
                data[t[3] + 18 * blk:t[3] + 18 * blk + 2] = struct.pack('<e', 0.0)
        t = tensor(b'blk.' + L + b'.nextn.eh_proj.weight')
        cols, rows = t[1]
        for r in range(rows):
            for blk in range(cols // 64):
                at = t[3] + (r * (cols // 64) + blk) * 18
                codes = [2 if blk * 64 + j == cols // 2 + r else 1 for j in range(64)]  # value code - 1
                data[at:at + 18] = struct.pack('<e', 1.0) + bytes(
                    sum(codes[4 * i + k] << (2 * k) for k in range(4)) for i in range(16))
        h = tensor(b'blk.' + L + b'.nextn.hnorm.weight')
        data[h[3]:h[3] + 4 * h[1][0]] = struct.pack('<%df' % h[1][0], *([1.0] * h[1][0]))
        o, sh = tensor(b'output_norm.weight'), tensor(b'blk.' + L + b'.nextn.shared_head_norm.weight')
        data[sh[3]:sh[3] + 4 * sh[1][0]] = data[o[3]:o[3] + 4 * o[1][0]]
    elif brk == 'qwen35-mtp-embed':  # an MTP layer with an embedding of its own (rsrc shares the model's)
        t = [t for t in tensors if t[0].endswith(b'.nextn.enorm.weight')][0]
        tensors.append([t[0].replace(b'enorm', b'embed_tokens'), list(t[1]), t[2], t[3]])
    elif brk == 'qwen35-mtp-f16':  # eh_proj in F16, not a type of rsrc's matrices
        t = [t for t in tensors if t[0].endswith(b'.nextn.eh_proj.weight')][0]
        data += bytes((32 - len(data) % 32) % 32)
        t[2], t[3] = 1, len(data)
        data += struct.pack('<e', 0.01) * (t[1][0] * t[1][1])
    elif brk == 'prism-pq2':  # PrismML's PQ2_0 (type 142) for a matrix
        tensor(b'blk.0.attn_k.weight')[2] = 142
    elif brk == 'prism-ptq1':  # PrismML's PTQ1_0 (type 143)
        tensor(b'blk.0.attn_k.weight')[2] = 143
    elif brk == 'prism-hadamard':  # Bonsai-2's rotation of the inputs, its other keys missing
        kvs.append([b'prism.hadamard.block_size', 4, struct.pack('<I', 128)])
    elif brk != 'truncated': sys.exit('unknown break ' + brk)
    write(dst, version, kvs, tensors, data, count=nt if brk == 'counts' else None, cut=40 if brk == 'truncated' else None)
