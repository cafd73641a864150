#!/usr/bin/env python3
"""Gives a GGUF file mkspm.py's SentencePiece vocabulary as llama.cpp's converters write one
(tokenizer.ggml.model "llama": tokens, scores, token types, unknown/BOS/EOS ids, whether to add
BOS and the dummy prefix). Usage: gguf_add_spm.py IN.gguf OUT.gguf"""
import os, struct, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_break, mkspm

version, kvs, tensors, data = gguf_break.read(sys.argv[1])
s = gguf_break.s
def arr(t, items): return struct.pack('<IQ', t, len(items)) + b''.join(items)
kvs += [[b'tokenizer.ggml.model', 8, s(b'llama')],
        [b'tokenizer.ggml.tokens', 9, arr(8, [s(p.encode()) for p, _, _ in mkspm.PIECES])],
        [b'tokenizer.ggml.scores', 9, arr(6, [struct.pack('<f', sc) for _, sc, _ in mkspm.PIECES])],
        [b'tokenizer.ggml.token_type', 9, arr(5, [struct.pack('<i', t) for _, _, t in mkspm.PIECES])],
        [b'tokenizer.ggml.unknown_token_id', 4, struct.pack('<I', 0)],
        [b'tokenizer.ggml.add_bos_token', 7, b'\x01'],
        [b'tokenizer.ggml.add_space_prefix', 7, b'\x01']]
gguf_break.write(sys.argv[2], version, kvs, tensors, data)
