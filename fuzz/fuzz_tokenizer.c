/* fuzz_tokenizer.c — tokenizer.json as the runtime parses it from an artifact, then encoding and
 * decoding with it. Input: a 2-byte little-endian length L, L bytes of tokenizer.json, and the
 * rest as text to encode (its first byte also picks the flags). A tokenizer that loads must
 * encode text or say why not, decode what it encoded, and decode arbitrary ids without reading
 * out of bounds; a file it refuses must come with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rsr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t json_len = (size_t)data[0] | (size_t)data[1] << 8;
    if (json_len > size - 2) json_len = size - 2;
    const char *json = (const char *)data + 2, *text = json + json_len;
    size_t text_len = size - 2 - json_len;
    rsr_tokenizer *tok = NULL;
    if (rsr_tokenizer_create(json, json_len, &tok) != RSR_OK) {
        if (!rsr_tokenizer_errmsg(tok) || !*rsr_tokenizer_errmsg(tok)) __builtin_trap();
        rsr_tokenizer_free(tok);
        return 0;
    }
    uint32_t flags = text_len ? (uint8_t)text[0] & 3u : 0;
    int32_t ids[512], n = 0;
    rsr_status st = rsr_tokenizer_encode(tok, text, (ptrdiff_t)text_len, flags, ids, 512, &n);
    /* a tokenizer that cannot represent some text (no byte fallback, no unk token) refuses it
     * with a message; anything else must encode */
    if (st != RSR_OK && st != RSR_ERR_BUFFER_TOO_SMALL && !*rsr_tokenizer_errmsg(tok)) __builtin_trap();
    char out[4096];
    size_t len = 0;
    if (st == RSR_OK) {
        st = rsr_tokenizer_decode(tok, ids, n, 0, out, sizeof out, &len);
        if (st != RSR_OK && st != RSR_ERR_BUFFER_TOO_SMALL) __builtin_trap();
    }
    /* arbitrary ids, some out of range: refused or decoded, never read past the vocabulary */
    for (size_t i = 0; i < 64 && i < text_len; i++) ids[i] = (int32_t)((uint8_t)text[i] * 977u) - 3000;
    (void)rsr_tokenizer_decode(tok, ids, (int32_t)(text_len < 64 ? text_len : 64), RSR_DECODE_SKIP_SPECIAL, out,
                               sizeof out, &len);
    for (size_t i = 0; i < 16 && i < text_len; i++) {
        size_t plen;
        (void)rsr_tokenizer_token_piece(tok, ids[i], &plen);
    }
    rsr_tokenizer_free(tok);
    return 0;
}
