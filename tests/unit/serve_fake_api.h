/*
 * serve_fake_api.h — a stand-in for a model's API under rsr-serve's engine (serve_engine.c), for
 * the scheduler's stress test and fuzzer: sessions that only count positions, a batch step that
 * draws token ids from each sequence's random state (now and then the end token), or gives
 * logits that the position decides (for the engine's own draw: structured output), may sleep a
 * few microseconds, and fails when told to. No model, so thousands of requests run in seconds.
 */
#ifndef SERVE_FAKE_API_H
#define SERVE_FAKE_API_H

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

#define FAKE_VOCAB 64
#define FAKE_EOS 1   /* the model's end token */
#define FAKE_CTX 512 /* the model's positions */

typedef struct fake_session {
    int32_t pos;
} fake_session;

static struct {
    atomic_int fail_next;    /* the next batch step fails */
    atomic_int step_us;      /* the longest sleep of a step, microseconds */
    atomic_int eos_every;    /* about one drawn token in this many is the end token (0: none) */
    atomic_int hold;         /* steps wait while set (a test orders its arrivals against them) */
    atomic_int sessions;     /* alive: created minus freed */
    atomic_long steps, seqs; /* stepped */
} fake;

static uint64_t fake_next(uint64_t *s) {
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return *s >> 33;
}

static void fake_info(const rsr_model *m, rsr_model_info *i) {
    (void)m;
    memset(i, 0, sizeof *i);
    i->vocab_size = FAKE_VOCAB, i->max_positions = FAKE_CTX, i->eos_token_id = FAKE_EOS, i->bos_token_id = 0;
}
static rsr_status fake_get_info(const rsr_model *m, rsr_model_info *i) { return fake_info(m, i), RSR_OK; }
static rsr_status fake_tok_info(const rsr_tokenizer *t, rsr_tokenizer_info *i) {
    (void)t;
    memset(i, 0, sizeof *i);
    i->vocab_size = FAKE_VOCAB, i->bos_token_id = 0, i->eos_token_id = FAKE_EOS, i->eot_token_id = -1;
    return RSR_OK;
}
static const char *fake_piece(const rsr_tokenizer *t, int32_t id, size_t *len) {
    (void)t;
    static const char pieces[FAKE_VOCAB][4] = {"<s>", "</s>", " a", " b", "c", "d\n", "é", "\xe2\x82", "\xac"};
    const char *p = id < 9 ? pieces[id] : "x";
    *len = strlen(p);
    return p;
}
static int fake_is_special(const rsr_tokenizer *t, int32_t id) { return (void)t, id < 2; }
static rsr_status fake_batch_create(rsr_model *m, int32_t rows, rsr_batch **out) {
    (void)m, (void)rows;
    *out = (rsr_batch *)malloc(1);
    return *out ? RSR_OK : RSR_ERR_OUT_OF_MEMORY;
}
static void fake_batch_free(rsr_batch *b) { free(b); }
static const char *fake_batch_errmsg(const rsr_batch *b) { return (void)b, "the fake step failed"; }
static rsr_status fake_session_create(rsr_model *m, const rsr_session_params *p, rsr_session **out) {
    (void)m, (void)p;
    *out = (rsr_session *)calloc(1, sizeof(fake_session));
    if (*out) fake.sessions++;
    return *out ? RSR_OK : RSR_ERR_OUT_OF_MEMORY;
}
static void fake_session_free(rsr_session *s) {
    if (s) fake.sessions--;
    free(s);
}
static rsr_status fake_session_reset(rsr_session *s) { return ((fake_session *)s)->pos = 0, RSR_OK; }
static int32_t fake_session_position(const rsr_session *s) { return ((const fake_session *)s)->pos; }
static rsr_status fake_session_truncate(rsr_session *s, int32_t pos) {
    fake_session *f = (fake_session *)s;
    if (pos < 0 || pos > f->pos) return RSR_ERR_INVALID_ARGUMENT;
    return f->pos = pos, RSR_OK;
}
static int32_t fake_session_reusable(const rsr_session *s) { return ((const fake_session *)s)->pos; }
static const char *fake_model_errmsg(const rsr_model *m) { return (void)m, "fake"; }

static rsr_status fake_batch_eval(rsr_batch *b, const rsr_seq *seqs, int32_t n) {
    (void)b;
    while (fake.hold) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    int us = fake.step_us;
    if (us > 0) {
        struct timespec ts = {0, 1000L * (rand() % us)};
        nanosleep(&ts, NULL);
    }
    fake.steps++;
    fake.seqs += n;
    if (atomic_exchange(&fake.fail_next, 0)) return RSR_ERR_INTERNAL;
    for (int32_t i = 0; i < n; i++) {
        fake_session *s = (fake_session *)seqs[i].session;
        if (seqs[i].n < 1 || s->pos + seqs[i].n > FAKE_CTX) abort(); /* the engine overran a context */
        s->pos += seqs[i].n;
        if (seqs[i].output == RSR_OUTPUT_SAMPLE) {
            uint32_t r = (uint32_t)fake_next(seqs[i].rng);
            int every = fake.eos_every;
            *seqs[i].token = every && r % (uint32_t)every == 0 ? FAKE_EOS : 2 + (int32_t)(r % (FAKE_VOCAB - 2));
        }
        uint64_t at = (uint64_t)s->pos;
        for (int32_t t = 0; seqs[i].output == RSR_OUTPUT_LOGITS && t < FAKE_VOCAB; t++)
            seqs[i].logits[t] = (float)(fake_next(&at) % 64);
    }
    return RSR_OK;
}

/* The most likely token, and a draw among the tokens whose logits are finite (the mask's). */
static int32_t fake_greedy(const float *lg, int32_t n) {
    int32_t best = 0;
    for (int32_t t = 1; t < n; t++)
        if (lg[t] > lg[best]) best = t;
    return best;
}
static int32_t fake_sample(const float *lg, int32_t n, const rsr_sampler_params *sp, uint64_t *rng, float *probs,
                           int32_t *ids) {
    (void)sp, (void)probs, (void)ids;
    int32_t finite = 0;
    for (int32_t t = 0; t < n; t++) finite += lg[t] > -1e30f;
    if (!finite) return -1;
    int32_t k = (int32_t)(fake_next(rng) % (uint64_t)finite);
    for (int32_t t = 0; t < n; t++)
        if (lg[t] > -1e30f && k-- == 0) return t;
    return -1;
}

static void fake_api_install(rsr_api *a) {
    memset(a, 0, sizeof *a);
    a->model_get_info = fake_get_info;
    a->tokenizer_get_info = fake_tok_info;
    a->tokenizer_token_piece = fake_piece;
    a->tokenizer_is_special = fake_is_special;
    a->batch_create = fake_batch_create;
    a->batch_free = fake_batch_free;
    a->batch_errmsg = fake_batch_errmsg;
    a->batch_eval = fake_batch_eval;
    a->session_create = fake_session_create;
    a->session_free = fake_session_free;
    a->session_reset = fake_session_reset;
    a->session_position = fake_session_position;
    a->session_truncate = fake_session_truncate;
    a->session_reusable = fake_session_reusable;
    a->model_errmsg = fake_model_errmsg;
    a->sample_greedy = fake_greedy;
    a->sample = fake_sample;
}

/* A request of n_ids prompt tokens asking for max_tokens (-1: until the end token or the
 * context), with an optional stop string; NULL when memory runs out. */
static serve_job *fake_job(int32_t n_ids, int32_t max_tokens, const char *stop) {
    serve_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->ids = malloc(sizeof *j->ids * (size_t)(n_ids > 0 ? n_ids : 1));
    for (int32_t i = 0; i < n_ids; i++) j->ids[i] = 2 + i % (FAKE_VOCAB - 2);
    j->n_ids = n_ids;
    j->p.max_tokens = max_tokens;
    j->p.sampler.temperature = 1.0f, j->p.sampler.top_p = 1.0f, j->p.sampler.repeat_penalty = 1.0f;
    j->p.repeat_last_n = 64;
    if (stop) j->p.stop[j->p.n_stop++] = strdup(stop);
    return j;
}

/* The structured clients' grammar over the fake vocabulary (" a", "c", and "x" for most ids), and
 * whether s[0, n) is one of its sentences (whole) or the start of one, read apart from the
 * recognizer. */
static const char fake_grammar[] = "root ::= (\"x\" | \" a\")+ \"c\"";
static bool fake_sentence(const char *s, size_t n, bool whole) {
    size_t i = 0;
    int items = 0;
    while (i < n && (s[i] == 'x' || (s[i] == ' ' && (i + 1 == n ? !whole : s[i + 1] == 'a'))))
        i += s[i] == 'x' ? 1 : 2, items++;
    if (i >= n) return !whole;
    return s[i] == 'c' && i + 1 == n && items > 0;
}

#endif
