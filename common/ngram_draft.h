/*
 * ngram_draft.h — speculative decoding's n-gram proposer (`--spec-type ngram-simple`), shared by
 * rsr-run and rsr-serve: the tokens that followed the latest earlier occurrence of the text's
 * last n tokens (n from NGRAM_DRAFT_MAX down to 3), at most max of them. A continuation that
 * reaches the end of the text goes on with itself (a repeating stretch repeats on). Returns their
 * number (0: the last 3 tokens occur nowhere before).
 */
#ifndef RSR_NGRAM_DRAFT_H
#define RSR_NGRAM_DRAFT_H

#include <stdint.h>
#include <string.h>

#define NGRAM_DRAFT_MAX 4

static inline int32_t ngram_draft(const int32_t *h, int32_t len, int32_t *draft, int32_t max) {
    for (int32_t n = NGRAM_DRAFT_MAX; n >= 3; n--) {
        if (len <= n) continue;
        for (int32_t at = len - n - 1; at >= 0; at--) { /* h[at, at + n) against the last n */
            if (memcmp(h + at, h + len - n, sizeof *h * (size_t)n) != 0) continue;
            int32_t k = 0;
            for (int32_t j = at + n; k < max; j++) draft[k++] = j < len ? h[j] : draft[j - len];
            return k;
        }
    }
    return 0;
}

#endif
