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
#include "tokenizer_use.h"

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
    use_tokenizer(tok, text, text_len);
    return 0;
}
