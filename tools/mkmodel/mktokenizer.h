/* mktokenizer.h — the synthetic tokenizer.json of rsr-mkmodel's test models. */
#ifndef RSR_MKTOKENIZER_H
#define RSR_MKTOKENIZER_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* A byte-level BPE tokenizer with ids in [0, vocab) and its special tokens at bos and eos, which
 * adds bos before every text (and eos after it, with add_eos: an embedding model's); NULL with the
 * reason in why when the vocabulary is too small for one. */
cJSON *synthetic_tokenizer(long vocab, long bos, long eos, int add_eos, char *why, size_t whylen);

#endif
