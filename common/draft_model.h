/*
 * draft_model.h — speculative decoding's draft-model proposer (`-md/--model-draft FILE`, `--spec-type
 * draft`), shared by rsr-run and rsr-serve: a second compiled model with the same vocabulary, loaded
 * beside the model (its own runtime, rsr_dl.h), that guesses the text's continuation greedily.
 * draft_model_open checks the vocabulary (its size, then every token's piece where both carry a
 * tokenizer); each sequence that speculates has a draft_seq, whose session holds a prefix of the
 * text then its own guesses: draft_propose goes back to where those part from the text (or starts
 * over where a sliding window cannot go back), reads the rest of the text and guesses up to max
 * tokens, stopping at the first whose probability by the draft's softmax is below p_min (p_min > 0:
 * the draft's logits are evaluated; else its certified greedy token). Errors go to err (return -1 /
 * non-NULL), never to an exit: the caller decides.
 */
#ifndef RSR_DRAFT_MODEL_H
#define RSR_DRAFT_MODEL_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsr_dl.h"

typedef struct draft_model {
    rsr_api api;
    rsr_model *m;
    int32_t vocab, max_positions;
    bool recurrent; /* gated DeltaNet layers: its cache cannot go back to where its guesses part from the text */
} draft_model;

typedef struct draft_seq {
    rsr_session *s;
    int32_t *held; /* the tokens its cache holds (a prefix of the text, then its own guesses) */
    int32_t n_held, ctx;
    float *logits; /* [vocab]: the guesses' probabilities (p_min > 0) */
} draft_seq;

/* A token's piece for a message: at most 24 bytes, control bytes as '?'. */
static inline void draft_piece_text(char out[32], const char *p, size_t n) {
    size_t i = 0;
    for (; p && i < n && i < 24; i++) out[i] = (unsigned char)p[i] < 0x20 ? '?' : p[i];
    out[i] = 0;
}

/* The draft model at path beside model m (whose API is api), with threads threads: NULL, or why not
 * (a load failure, another vocabulary named by the first token that differs). A draft with a
 * recurrent state opens (d->recurrent), but cannot propose: the caller says so. */
static inline const char *draft_model_open(draft_model *d, const char *path, int32_t threads, const rsr_api *api,
                                           rsr_model *m, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    char why[1024];
    if (rsr_api_load(&d->api, path, why, sizeof why) != 0) return snprintf(err, errlen, "%s", why), err;
    const rsr_model_params mp = {.num_threads = threads};
    if (d->api.model_open(&d->m, &mp) != RSR_OK)
        return snprintf(err, errlen, "%s: %s", path, d->api.model_errmsg(d->m)), err;
    rsr_model_info di, mi;
    d->api.model_get_info(d->m, &di), api->model_get_info(m, &mi);
    d->vocab = di.vocab_size, d->max_positions = di.max_positions;
    if (di.vocab_size != mi.vocab_size)
        return snprintf(err, errlen,
                        "%s: a vocabulary of %d tokens where the model has %d: a draft model shares its model's "
                        "vocabulary",
                        path, di.vocab_size, mi.vocab_size),
               err;
    rsr_tokenizer *tm, *td;
    if (api->model_tokenizer(m, &tm) == RSR_OK && d->api.model_tokenizer(d->m, &td) == RSR_OK)
        for (int32_t id = 0; id < mi.vocab_size; id++) {
            size_t lm = 0, ld = 0;
            const char *pm = api->tokenizer_token_piece(tm, id, &lm), *pd = d->api.tokenizer_token_piece(td, id, &ld);
            if (lm == ld && (!lm || !memcmp(pm, pd, lm))) continue;
            char a[32], b[32];
            draft_piece_text(a, pd, ld), draft_piece_text(b, pm, lm);
            return snprintf(err, errlen,
                            "%s: token %d is \"%s\" there and \"%s\" in the model: a draft model shares its model's "
                            "vocabulary",
                            path, id, a, b),
                   err;
        }
    d->recurrent = di.state_bytes > 0;
    return NULL;
}

static inline void draft_seq_free(draft_model *d, draft_seq *q) {
    if (q->s) d->api.session_free(q->s);
    free(q->held), free(q->logits);
    memset(q, 0, sizeof *q);
}

/* A sequence's draft session of at most ctx positions (the model's session parameters p): false,
 * with why in err, when it cannot be made. */
static inline bool draft_seq_init(draft_model *d, draft_seq *q, const rsr_session_params *p, int32_t ctx, char *err,
                                  size_t errlen) {
    memset(q, 0, sizeof *q);
    rsr_session_params dp = *p;
    q->ctx = dp.max_positions = ctx < d->max_positions ? ctx : d->max_positions;
    if (d->api.session_create(d->m, &dp, &q->s) != RSR_OK) {
        snprintf(err, errlen, "%s", d->api.model_errmsg(d->m));
        return false;
    }
    q->held = malloc(sizeof *q->held * (size_t)(q->ctx + 1));
    q->logits = malloc(sizeof *q->logits * (size_t)d->vocab);
    if (!q->held || !q->logits) {
        snprintf(err, errlen, "out of memory");
        draft_seq_free(d, q);
        return false;
    }
    return true;
}

/* The draft's guess after evaluating tokens [n]: its greedy token; 0 when p_min asks for a
 * probability (its softmax) the guess has not, -1 on an error. */
static inline int draft_guess(draft_model *d, draft_seq *q, const int32_t *tokens, int32_t n, float p_min,
                              int32_t *guess) {
    if (!(p_min > 0)) return d->api.session_eval_greedy(q->s, tokens, n, guess) == RSR_OK ? 1 : -1;
    if (d->api.session_eval(q->s, tokens, n, q->logits) != RSR_OK) return -1;
    const int32_t best = d->api.sample_greedy(q->logits, d->vocab); /* the runtime's one argmax rule */
    double z = 0;
    for (int32_t v = 0; v < d->vocab; v++) z += exp((double)q->logits[v] - (double)q->logits[best]);
    *guess = best;
    return 1 / z >= p_min; /* NaN logits: z NaN, no guess */
}

/* Up to max guesses after the text hist [n_hist] (its last token not yet evaluated by the model)
 * into draft: their number (0: none, the draft's context full or its first guess unsure), -1 with
 * the draft session's message in err. */
static inline int32_t draft_propose(draft_model *d, draft_seq *q, const int32_t *hist, int32_t n_hist, float p_min,
                                    int32_t *draft, int32_t max, char *err, size_t errlen) {
    int32_t same = 0;
    while (same < q->n_held && same < n_hist && q->held[same] == hist[same]) same++;
    if (same == n_hist) same--; /* the text's last token is read again: its logits choose the first guess */
    if (max > q->ctx - n_hist) max = q->ctx - n_hist;
    if (max <= 0 || same < 0) return 0;
    if (same < q->n_held && d->api.session_reachable(q->s, same) != same) { /* windows gone past: start over */
        d->api.session_reset(q->s);
        same = 0;
    } else if (same < q->n_held && d->api.session_truncate(q->s, same) != RSR_OK) {
        snprintf(err, errlen, "%s", d->api.session_errmsg(q->s));
        q->n_held = 0, d->api.session_reset(q->s); /* start over next time */
        return -1;
    }
    memcpy(q->held + same, hist + same, sizeof *q->held * (size_t)(n_hist - same));
    q->n_held = n_hist;
    int got = draft_guess(d, q, hist + same, n_hist - same, p_min, &draft[0]);
    for (int32_t k = 1; got > 0; k++) {
        if (k == max) return max;
        got = draft_guess(d, q, &draft[k - 1], 1, p_min, &draft[k]);
        if (got >= 0) q->held[q->n_held++] = draft[k - 1];
        if (got == 0) return k;
    }
    if (got < 0) {
        q->n_held = 0, d->api.session_reset(q->s); /* what it holds is unknown: start over next time */
        return snprintf(err, errlen, "%s", d->api.session_errmsg(q->s)), -1;
    }
    return 0; /* the first guess unsure */
}

#endif
