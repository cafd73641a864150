/* encode_all.h — a text's token ids in a buffer as large as they need: the tokenizer says how many
 * when the first guess (a byte's length and 16) is too small, which text with invalid UTF-8 can
 * make (each bad byte is read as U+FFFD, three bytes of its own). For rsr-run and rsr-serve, which
 * reach the runtime through rsr_dl.h's table. Returns the ids (the caller frees them) with *n, or
 * NULL with the status in *st (RSR_ERR_OUT_OF_MEMORY, or the tokenizer's error). */
#ifndef RSR_ENCODE_ALL_H
#define RSR_ENCODE_ALL_H
#include <stdlib.h>
#include <string.h>

#include "rsr_dl.h"

static inline int32_t *encode_all(const rsr_api *api, rsr_tokenizer *tok, const char *text, ptrdiff_t len,
                                  uint32_t flags, int32_t *n, rsr_status *st) {
    size_t bytes = len < 0 ? strlen(text) : (size_t)len;
    int32_t cap = bytes < (size_t)INT32_MAX - 16 ? (int32_t)bytes + 16 : INT32_MAX;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    *n = 0;
    *st = ids ? api->tokenizer_encode(tok, text, len, flags, ids, cap, n) : RSR_ERR_OUT_OF_MEMORY;
    if (*st == RSR_ERR_BUFFER_TOO_SMALL && *n > cap) {
        int32_t *grown = realloc(ids, sizeof *ids * (size_t)*n);
        *st = grown ? api->tokenizer_encode(tok, text, len, flags, ids = grown, *n, n) : RSR_ERR_OUT_OF_MEMORY;
    }
    if (*st != RSR_OK) {
        free(ids);
        return NULL;
    }
    return ids;
}
#endif
