/* tokenizer_use.h — what the tokenizer fuzzers ask of a tokenizer that loaded: encode text or
 * say why not (a vocabulary with no byte fallback and no unk token cannot represent everything),
 * decode what it encoded, decode arbitrary ids (some out of range) without reading past the
 * vocabulary, and give a piece exactly for the ids in range. Frees the tokenizer. */
#ifndef RSR_FUZZ_TOKENIZER_USE_H
#define RSR_FUZZ_TOKENIZER_USE_H

#include <stddef.h>
#include <stdint.h>

#include "rsr.h"

static void use_tokenizer(rsr_tokenizer *tok, const char *text, size_t text_len) {
    uint32_t flags = text_len ? (uint8_t)text[0] & 3u : 0;
    int32_t ids[512], n = 0;
    rsr_status st = rsr_tokenizer_encode(tok, text, (ptrdiff_t)text_len, flags, ids, 512, &n);
    if (st != RSR_OK && st != RSR_ERR_BUFFER_TOO_SMALL && !*rsr_tokenizer_errmsg(tok)) __builtin_trap();
    char out[4096];
    size_t len = 0;
    if (st == RSR_OK) {
        st = rsr_tokenizer_decode(tok, ids, n, 0, out, sizeof out, &len);
        if (st != RSR_OK && st != RSR_ERR_BUFFER_TOO_SMALL) __builtin_trap();
    }
    for (size_t i = 0; i < 64 && i < text_len; i++) ids[i] = (int32_t)((uint8_t)text[i] * 977u) - 3000;
    (void)rsr_tokenizer_decode(tok, ids, (int32_t)(text_len < 64 ? text_len : 64), RSR_DECODE_SKIP_SPECIAL, out,
                               sizeof out, &len);
    rsr_tokenizer_info info;
    if (rsr_tokenizer_get_info(tok, &info) != RSR_OK) __builtin_trap();
    for (int32_t id = -2; id < info.vocab_size + 2 && id < 64; id++) {
        size_t plen;
        const char *p = rsr_tokenizer_token_piece(tok, id, &plen);
        if ((p != NULL) != (id >= 0 && id < info.vocab_size)) __builtin_trap();
    }
    rsr_tokenizer_free(tok);
}

#endif
