/* recent_tokens.h — a sequence's last tokens, which the sampler's repetition penalty looks at
 * (rsr_sampler_params.recent): the last last_n tokens evaluated, oldest first. Shared by rsr-run
 * and rsr-serve. */
#ifndef RSR_RECENT_TOKENS_H
#define RSR_RECENT_TOKENS_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rsr.h"

typedef struct recent_tokens {
    int32_t *ids, n, last_n;
} recent_tokens;

/* false when out of memory */
static inline bool recent_init(recent_tokens *r, int32_t last_n) {
    r->last_n = last_n > 0 ? last_n : 0, r->n = 0;
    r->ids = malloc(sizeof(int32_t) * (size_t)(r->last_n > 0 ? r->last_n : 1));
    return r->ids != NULL;
}

static inline void recent_push(recent_tokens *r, const int32_t *tokens, int32_t n) {
    if (r->last_n <= 0 || n <= 0) return;
    if (n >= r->last_n) {
        memcpy(r->ids, tokens + (n - r->last_n), sizeof(int32_t) * (size_t)r->last_n);
        r->n = r->last_n;
        return;
    }
    int32_t drop = r->n + n > r->last_n ? r->n + n - r->last_n : 0;
    memmove(r->ids, r->ids + drop, sizeof(int32_t) * (size_t)(r->n - drop));
    memcpy(r->ids + r->n - drop, tokens, sizeof(int32_t) * (size_t)n);
    r->n += n - drop;
}

/* sp with the repetition penalty looking at r's tokens */
static inline rsr_sampler_params recent_sampler(const recent_tokens *r, rsr_sampler_params sp) {
    sp.recent = r->ids, sp.n_recent = r->n;
    return sp;
}

#endif
