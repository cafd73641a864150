/* fuzz_sentencepiece.c — a SentencePiece tokenizer.model (the ModelProto, protobuf wire format)
 * as the runtime reads it from an artifact, then encoding and decoding with it. Input: a 2-byte
 * little-endian length L, L bytes of the model, and the rest as text to encode (its first byte
 * also picks the flags). The model's first byte is set to 0x0a, a piece, which is how the
 * runtime tells a ModelProto from tokenizer.json, so that every input reaches the protobuf
 * reader. A model that loads must encode text or say why not and decode what it encoded; one
 * it refuses must come with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rsr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    size_t model_len = (size_t)data[0] | (size_t)data[1] << 8;
    if (model_len > size - 2) model_len = size - 2;
    if (model_len == 0) return 0;
    char *model = malloc(model_len);
    if (!model) return 0;
    memcpy(model, data + 2, model_len);
    model[0] = 0x0A;
    const char *text = (const char *)data + 2 + model_len;
    size_t text_len = size - 2 - model_len;
    rsr_tokenizer *tok = NULL;
    rsr_status st = rsr_tokenizer_create(model, model_len, &tok);
    free(model); /* the tokenizer keeps copies of what it needs */
    if (st != RSR_OK) {
        if (!rsr_tokenizer_errmsg(tok) || !*rsr_tokenizer_errmsg(tok)) __builtin_trap();
        rsr_tokenizer_free(tok);
        return 0;
    }
    uint32_t flags = text_len ? (uint8_t)text[0] & 3u : 0;
    int32_t ids[512], n = 0;
    st = rsr_tokenizer_encode(tok, text, (ptrdiff_t)text_len, flags, ids, 512, &n);
    if (st != RSR_OK && st != RSR_ERR_BUFFER_TOO_SMALL && !*rsr_tokenizer_errmsg(tok)) __builtin_trap();
    char out[4096];
    size_t len = 0;
    if (st == RSR_OK) {
        st = rsr_tokenizer_decode(tok, ids, n, 0, out, sizeof out, &len);
        if (st != RSR_OK && st != RSR_ERR_BUFFER_TOO_SMALL) __builtin_trap();
    }
    rsr_tokenizer_info info;
    if (rsr_tokenizer_get_info(tok, &info) != RSR_OK) __builtin_trap();
    for (int32_t id = -2; id < info.vocab_size + 2 && id < 64; id++) { /* pieces in and out of range */
        size_t plen;
        const char *p = rsr_tokenizer_token_piece(tok, id, &plen);
        if ((p != NULL) != (id >= 0 && id < info.vocab_size)) __builtin_trap();
    }
    rsr_tokenizer_free(tok);
    return 0;
}
