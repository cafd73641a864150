/* fuzz_tokenizer.c — tokenizer.json as the runtime parses it from an artifact, then encoding and
 * decoding with it. Input: a 2-byte little-endian length L, L bytes of tokenizer.json, and the
 * rest as text to encode (its first byte also picks the flags). A tokenizer that loads must
 * encode text or say why not, decode what it encoded, and decode arbitrary ids without reading
 * out of bounds; a file it refuses must come with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rsr.h"
#include "tokenizer_use.h"

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
    use_tokenizer(tok, text, text_len);
    return 0;
}
