#!/usr/bin/env python3
"""Writes a small SentencePiece tokenizer.model (a ModelProto in protobuf wire format, written
by hand here: field numbers and types as sentencepiece_model.proto declares them), optionally
broken in one precise way so that the reader's diagnostics can be pinned.

The vocabulary has 16 pieces, as many as the rows of mktiny.py's embedding: <unk>, <s>, </s>,
then BPE pieces over the letters a, b, c and the space mark U+2581, scored in merge order.
Usage: mkspm.py OUT [--break KIND]
"""
import argparse, struct

SPACE = '\u2581'
PIECES = [('<unk>', 0.0, 2), ('<s>', 0.0, 3), ('</s>', 0.0, 3)] + [
    (p, -float(i), 1) for i, p in enumerate([SPACE + 'a', 'ab', SPACE + 'ab', 'bc', SPACE + 'b', 'ca',
                                             SPACE + 'c', 'abc', SPACE, 'a', 'b', 'c', 'cc'])]

def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7f
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)

def tag(field, wire):
    return varint(field << 3 | wire)

def string(field, data):
    data = data.encode() if isinstance(data, str) else data
    return tag(field, 2) + varint(len(data)) + data

def integer(field, v):
    return tag(field, 0) + varint(v)

def piece(text, score, kind):
    return string(1, text) + tag(2, 5) + struct.pack('<f', score) + integer(3, kind)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--break', dest='brk', default='none',
                    choices=['none', 'byte-fallback', 'truncated', 'wire-type', 'score-wire', 'absurd-length', 'long-varint', 'unigram', 'no-model-type',
                             'charsmap', 'byte-piece', 'unk-id', 'duplicate', 'empty-piece', 'unknown-field'])
    a = ap.parse_args()
    pieces = list(PIECES)
    if a.brk == 'duplicate':
        pieces[5] = ('ab', -2.0, 1)
    if a.brk == 'byte-piece':
        pieces[15] = ('<0x4G>', 0.0, 6)
    if a.brk == 'empty-piece':
        pieces[6] = ('', -3.0, 1)
    if a.brk == 'byte-fallback':  # not broken: the 256 byte pieces too (more rows than mktiny's model has)
        pieces += [('<0x%02X>' % i, 0.0, 6) for i in range(256)]
    body = b''.join(string(1, piece(*p)) for p in pieces)
    trainer = integer(3, 1 if a.brk == 'unigram' else 2) if a.brk != 'no-model-type' else b''
    trainer += integer(4, len(pieces)) + integer(35, 1 if a.brk == 'byte-fallback' else 0)
    trainer += integer(40, 5 if a.brk == 'unk-id' else 0) + integer(41, 1) + integer(42, 2) + integer(43, -1)
    body += string(2, trainer)
    normalizer = string(1, 'identity') + string(2, b'\x00\x01\x02' if a.brk == 'charsmap' else b'')
    normalizer += integer(3, 1) + integer(4, 0) + integer(5, 1)
    body += string(3, normalizer)
    if a.brk == 'truncated':
        body = body[:len(body) - 7]
    elif a.brk == 'wire-type':  # a start-group tag after the first piece: no ModelProto field is a group
        first = len(string(1, piece(*pieces[0])))
        body = body[:first] + tag(2, 3) + body[first:]
    elif a.brk == 'score-wire':  # the first piece's score as a varint
        body = string(1, string(1, '<unk>') + integer(2, 0) + integer(3, 2)) + body[len(string(1, piece(*pieces[0]))):]
    elif a.brk == 'absurd-length':
        body = tag(1, 2) + varint(1 << 40) + body
    elif a.brk == 'long-varint':
        body = tag(1, 2) + b'\xff' * 11 + body
    elif a.brk == 'unknown-field':
        body += integer(9, 7)
    with open(a.out, 'wb') as f:
        f.write(body)

if __name__ == '__main__':
    main()
