#!/usr/bin/env python3
"""fill_vocab.py DIR: gives every id that rsr-mkmodel's tokenizer.json in DIR leaves without a token
(a vocabulary larger than its merges need) a piece of its own, shaped as a real 128K vocabulary's
are: words with and without a leading space, capitalised, their stems, code and punctuation,
numbers, runs of white space, accented, Cyrillic and CJK text. Deterministic. The pieces are never
produced by encoding (no merge makes them) but are tokens the model can draw, so that a grammar's
mask over the vocabulary costs what it costs with a real one."""
import json
import os
import random
import sys


def byte_alphabet():
    """byte -> the character a byte-level BPE vocabulary writes it as (tools/mkmodel/mktokenizer.c)."""
    printable = [b for b in range(256) if 33 <= b <= 126 or 0xA1 <= b <= 0xAC or b >= 0xAE]
    table, n = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


def pieces(rng):
    onsets = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
              "br", "ch", "cl", "cr", "dr", "fl", "gr", "pl", "pr", "sh", "st", "str", "th", "tr", "qu"]
    nuclei = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "io", "ou", "y"]
    codas = ["", "", "n", "r", "s", "t", "l", "m", "nd", "ng", "nt", "rs", "st", "ck", "tion", "ment", "ing", "ed"]

    def word():
        return "".join(rng.choice(onsets) + rng.choice(nuclei) + rng.choice(codas) for _ in range(rng.randint(1, 4)))

    yield from (" " * k for k in range(1, 81))
    yield from ("\n" + " " * k for k in range(0, 33))
    yield from ("\t" * k for k in range(1, 9))
    yield from (str(k) for k in range(1000))
    punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    for a in punct:
        for b in punct + " \n":
            yield a + b
    accents = "àáâäçèéêëìíîïñòóôöùúûüß"
    while True:
        r = rng.random()
        w = word()
        if r < 0.40:
            yield " " + w
        elif r < 0.55:
            yield w
        elif r < 0.65:
            yield " " + w.capitalize()
        elif r < 0.70:
            yield w[: rng.randint(1, max(1, len(w) - 1))]  # a stem
        elif r < 0.78:
            yield rng.choice(["_", ".", "(", "::", "->", "=", " (", " =", "\"", "/"]) + w + rng.choice(["", "(", "_", ")", ":"])
        elif r < 0.84:
            i = rng.randrange(len(w))
            yield " " + w[:i] + rng.choice(accents) + w[i + 1:]
        elif r < 0.90:
            yield " " + "".join(chr(0x430 + rng.randrange(32)) for _ in range(rng.randint(2, 8)))
        elif r < 0.96:
            yield "".join(chr(0x4E00 + rng.randrange(0x5000)) for _ in range(rng.randint(1, 3)))
        else:
            yield w.upper()


def main():
    d = sys.argv[1]
    vocab_size = json.load(open(os.path.join(d, "config.json")))["vocab_size"]
    path = os.path.join(d, "tokenizer.json")
    tj = json.load(open(path))
    vocab = tj["model"]["vocab"]
    taken = set(vocab.values()) | {t["id"] for t in tj.get("added_tokens", [])}
    free = [i for i in range(vocab_size) if i not in taken]
    alphabet = byte_alphabet()
    gen = pieces(random.Random(1))
    for i in free:
        while True:
            s = "".join(alphabet[b] for b in next(gen).encode())
            if s not in vocab:
                break
        vocab[s] = i
    json.dump(tj, open(path, "w"), ensure_ascii=False)
    print("%d pieces added, %d in all" % (len(free), len(vocab)))


main()
