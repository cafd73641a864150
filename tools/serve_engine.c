/*
 * serve_engine.c — one thread advances every admitted request through one batch per step
 * (rsr_batch_eval): continuous batching.
 *
 * Requests wait in a bounded queue; a free slot (a session of its own) takes the next one between
 * steps. Each step gives every busy slot's sequence either its prompt's next chunk (at most
 * `chunk` tokens, so that a long prompt does not stall the others' decode) or its last token, and
 * gets back a drawn token (greedy at temperature 0) from the batch's one pass over the LM head.
 * A request ends at an end token, a stop string, max_tokens or the slot's context; a cancelled
 * one (the client went away) leaves its slot at the next step. The connections wait on one
 * condition the engine broadcasts after every step; everything a connection reads of a job is
 * under the engine's lock. The sessions give each request exactly the tokens it would get alone
 * (rsr_batch_eval's guarantee), and each request draws from a random state of its own (its seed).
 *
 * Prefix reuse: the KV caches (sessions) are apart from the slots. There is one per slot and
 * `spare` more (rsr-serve's --cache-mem); a cache keeps its contents after its request ends, with
 * the tokens it holds (hist). A request that a free slot takes gets the idle cache that shares the
 * longest prefix with its prompt (else the one least recently used), cuts it back to that prefix
 * (rsr_session_truncate) and evaluates only the rest: the next turn of a chat evaluates its new
 * message, not the whole conversation, though other conversations came between, as long as
 * there are caches enough. The results are the same bits as without it: the kept positions are
 * ones rsr_session_reusable vouches for, at least two prompt tokens are always evaluated (a prompt
 * step, as a fresh evaluation of the prompt would make), and no prompt step is one token long.
 * A cache is reused only by the tenant whose prompt filled it (the same API key and cache_salt):
 * otherwise how many tokens another's request found cached, or how soon its first token came,
 * would tell one client the prompts of another, a token at a time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"
#include "serve_gbnf.h"

typedef struct kv_cache {
    rsr_session *s;
    int32_t *hist; /* the tokens in the session's cache, in order (room for the context) */
    int32_t n_hist;
    long used;                /* the admission that last took it: the least recently used idle cache goes first */
    unsigned char tenant[32]; /* the serve_job.tenant of what it holds: reused by that tenant only */
    bool busy;                /* a slot's job is using it */
} kv_cache;

typedef struct slot {
    kv_cache *c;  /* the cache of its job, or of its last one */
    serve_job *j; /* NULL: free */
    int32_t fed;  /* prompt tokens given */
    int32_t next; /* the token drawn at the last step */
    int32_t last; /* the token to give the next step */
    int32_t pos;  /* the session's position after the last step (read under the lock, for /metrics) */
    uint64_t rng;
    recent_tokens recent;  /* the repetition penalty's tokens (room for the whole context) */
    rsr_sampler_params sp; /* the job's sampler with them, for this step */
    /* a job that needs the exact logits (serve_needs_logits): made at its admission, kept after */
    float *logits, *probs;
    int32_t *ids;
    serve_logprob pending; /* the token the last step drew from them, for the job's logprobs */
    json_state js;         /* response_format's JSON: the reply so far */
    gbnf_state *gs, *gtmp; /* the grammar field's: the reply so far, and a scratch copy (made with the
                            * job's grammar; freed by the next job's start or the engine's end) */
    const char *stuck;     /* why no token may come next (no token continues the reply in its grammar,
                            * or the mask ran past its time), or NULL */
} slot;

struct serve_engine {
    rsr_model *m;
    rsr_tokenizer *tok;
    serve_engine_params ep;
    rsr_batch *b;
    slot *slots;
    kv_cache *caches; /* ep.slots + ep.spare */
    int32_t n_caches;
    rsr_seq *seqs;
    int32_t *owner;
    serve_job **queue; /* a ring of ep.queue */
    int32_t q_head, q_len;
    int32_t stop_ids[3];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a step ended, or a job came or went */
    bool stopping, draining;
    serve_metrics metrics;
    long admissions;
    int32_t vocab;
    const char **piece; /* structured output: each token's bytes (NULL: a special token), made once */
    size_t *piece_len;
    double recent_t0;
    long recent_tokens;
};

static void job_free(serve_job *j) {
    serve_params_free(&j->p);
    free(j->ids);
    free(j->text);
    free(j->lp);
    free(j);
}

/* One reference given up, under the lock; the last frees the job. */
static void unref(serve_job *j) {
    if (--j->refs == 0) job_free(j);
}

/* The job ends (under the lock): counted, and the engine's reference given up. */
static void end_job(serve_engine *e, serve_job *j, serve_finish why) {
    j->finish = why;
    j->ready = j->n_text;
    serve_metrics *mt = &e->metrics;
    if (why == SERVE_CANCELLED)
        mt->requests_cancelled++;
    else if (why == SERVE_FAILED)
        mt->requests_failed++;
    else
        mt->requests_ok++;
    unref(j);
}

/* The job leaves its slot (under the lock); its cache keeps what it holds. */
static void finish(serve_engine *e, slot *sl, serve_finish why) {
    serve_job *j = sl->j;
    sl->j = NULL;
    sl->c->busy = false; /* sl->c stays: a step in flight may still be filling it */
    end_job(e, j, why);
}

/* Appends the token's bytes (special tokens left out) and moves j->ready; true when a stop string
 * now appears (the text is cut before it). */
static bool add_token(serve_engine *e, serve_job *j, int32_t t) {
    size_t len = 0;
    const char *piece = api.tokenizer_token_piece(e->tok, t, &len);
    if (piece && len && !api.tokenizer_is_special(e->tok, t)) {
        char *grown = realloc(j->text, j->n_text + len + 1);
        if (!grown) return false;
        j->text = grown;
        memcpy(j->text + j->n_text, piece, len);
        j->n_text += len;
        j->text[j->n_text] = 0;
    }
    size_t hold = 0;
    for (int32_t k = 0; k < j->p.n_stop; k++) {
        const char *stop = j->p.stop[k];
        size_t sl = strlen(stop);
        const char *at = j->text ? memmem(j->text, j->n_text, stop, sl) : NULL;
        if (at) {
            j->n_text = (size_t)(at - j->text), j->text[j->n_text] = 0;
            return true;
        }
        for (size_t l = sl - 1; l > hold; l--) /* the longest tail that may still become the stop string */
            if (l <= j->n_text && !memcmp(j->text + j->n_text - l, stop, l)) {
                hold = l;
                break;
            }
    }
    size_t safe = j->n_text - hold;
    j->ready = serve_utf8_complete(j->text, safe);
    return false;
}

/* The prompt's leading tokens cache c can keep for job j: the prefix they share, within what the
 * session vouches for, leaving at least two tokens to evaluate. */
static int32_t reusable_prefix(const kv_cache *c, const serve_job *j) {
    if (memcmp(c->tenant, j->tenant, sizeof c->tenant)) return 0;
    int32_t n = c->n_hist < j->n_ids - 2 ? c->n_hist : j->n_ids - 2, reusable = api.session_reusable(c->s);
    if (n > reusable) n = reusable;
    int32_t k = 0;
    while (k < n && c->hist[k] == j->ids[k]) k++;
    return k;
}

/* The idle cache for job j (there is one whenever a slot is free: a cache per slot, and only busy
 * slots hold one). Among those the prompt continues for at least half of what they hold (an
 * empty cache too), the longest reusable prefix, then the least recently used; if none, the
 * least recently used: a new conversation does not overwrite another's long history to reuse the
 * few tokens of a chat template's header they share. */
static kv_cache *pick_cache(serve_engine *e, const serve_job *j, int32_t *keep) {
    kv_cache *best = NULL, *lru = NULL;
    int32_t best_n = -1, lru_n = 0;
    for (int32_t k = 0; k < e->n_caches; k++) {
        kv_cache *c = &e->caches[k];
        if (c->busy) continue;
        int32_t n = j->p.cache_prompt ? reusable_prefix(c, j) : 0;
        if (!lru || c->used < lru->used) lru = c, lru_n = n;
        if (2 * n >= c->n_hist && (n > best_n || (n == best_n && c->used < best->used))) best = c, best_n = n;
    }
    if (!best) best = lru, best_n = lru_n;
    *keep = best_n;
    return best;
}

static slot *free_slot(serve_engine *e) {
    for (int32_t k = 0; k < e->ep.slots; k++)
        if (!e->slots[k].j) return &e->slots[k];
    return NULL;
}

/* Job j starts in slot sl with cache c, keeping the first `keep` prompt tokens of the cache. */
static void start_job(serve_engine *e, slot *sl, kv_cache *c, serve_job *j, int32_t keep) {
    sl->j = j, sl->c = c, c->busy = true, c->used = ++e->admissions;
    memcpy(c->tenant, j->tenant, sizeof c->tenant);
    if (serve_needs_logits(&j->p) && !sl->logits) {
        sl->logits = malloc(sizeof(float) * (size_t)e->vocab), sl->probs = malloc(sizeof(float) * (size_t)e->vocab);
        sl->ids = malloc(sizeof(int32_t) * (size_t)e->vocab);
        if (!sl->logits || !sl->probs || !sl->ids) {
            free(sl->logits), free(sl->probs), free(sl->ids);
            sl->logits = sl->probs = NULL, sl->ids = NULL;
            snprintf(j->err, sizeof j->err, "out of memory for the logits of penalties or logprobs");
            finish(e, sl, SERVE_FAILED);
            return;
        }
    }
    if (keep > 0 && api.session_truncate(c->s, keep) != RSR_OK) keep = 0;
    if (keep == 0) api.session_reset(c->s);
    sl->fed = keep, c->n_hist = keep, sl->pos = keep;
    j->n_cached = keep, e->metrics.prompt_tokens_cached += keep;
    uint64_t seed = j->p.has_seed ? j->p.seed : (uint64_t)j->created * 2654435761u + (uint64_t)e->metrics.steps;
    sl->rng = seed * 0x9e3779b97f4a7c15u + 1;
    sl->recent.n = 0, sl->recent.last_n = j->p.repeat_last_n < e->ep.ctx ? j->p.repeat_last_n : e->ep.ctx;
    recent_push(&sl->recent, j->ids, keep); /* the penalty sees the kept tokens as if evaluated */
    if (j->p.shape) json_state_init(&sl->js, j->p.shape);
    gbnf_state_free(sl->gs), gbnf_state_free(sl->gtmp);
    sl->gs = sl->gtmp = NULL;
    if (j->p.grammar && (!(sl->gs = gbnf_state_new(j->p.grammar)) || !(sl->gtmp = gbnf_state_new(j->p.grammar)))) {
        snprintf(j->err, sizeof j->err, "out of memory for the grammar's state");
        finish(e, sl, SERVE_FAILED);
        return;
    }
    sl->stuck = NULL;
}

/* Slots whose client went away are freed, then free slots take queued jobs (under the lock), in
 * this order: a turn whose every busy slot was cancelled must still admit the queue (the engine
 * once went to sleep there with requests waiting, until some other event woke it). A job that
 * asks for no tokens ends at once, without a slot. */
static void admit(serve_engine *e) {
    for (int32_t k = 0; k < e->ep.slots; k++)
        if (e->slots[k].j && e->slots[k].j->cancelled) finish(e, &e->slots[k], SERVE_CANCELLED);
    while (e->q_len > 0) {
        serve_job *j = e->queue[e->q_head];
        if (j->cancelled || j->p.max_tokens == 0) { /* gone before it started, or nothing to do */
            e->q_head = (e->q_head + 1) % (e->ep.slots + e->ep.queue), e->q_len--;
            end_job(e, j, j->cancelled ? SERVE_CANCELLED : SERVE_LENGTH);
            continue;
        }
        int32_t keep;
        slot *sl = free_slot(e);
        if (!sl) break;
        kv_cache *c = pick_cache(e, j, &keep);
        e->q_head = (e->q_head + 1) % (e->ep.slots + e->ep.queue), e->q_len--;
        start_job(e, sl, c, j, keep);
    }
}

/* The step's sequences (under the lock): each busy slot's prompt chunk or last token. */
static int32_t build_step(serve_engine *e) {
    int32_t nq = 0;
    for (int32_t k = 0; k < e->ep.slots; k++) {
        slot *sl = &e->slots[k];
        if (!sl->j) continue;
        serve_job *j = sl->j;
        rsr_seq *q = &e->seqs[nq];
        *q = (rsr_seq){
            .session = sl->c->s, .output = RSR_OUTPUT_SAMPLE, .token = &sl->next, .sampler = &sl->sp, .rng = &sl->rng};
        if (sl->fed < j->n_ids) {
            int32_t left = j->n_ids - sl->fed, n = left < e->ep.chunk ? left : e->ep.chunk;
            if (left - n == 1 && n > 2) n--; /* no one-token prompt step (a decode step's attention) */
            q->tokens = j->ids + sl->fed, q->n = n;
            if (sl->fed + n < j->n_ids) q->output = RSR_OUTPUT_NONE;
            sl->fed += n;
            e->metrics.prompt_tokens += n;
        } else {
            q->tokens = &sl->last, q->n = 1;
        }
        recent_push(&sl->recent, q->tokens, q->n);
        kv_cache *c = sl->c;
        if (c->n_hist + q->n <= e->ep.ctx) /* else the step fails on the context: nothing is kept */
            memcpy(c->hist + c->n_hist, q->tokens, sizeof(int32_t) * (size_t)q->n), c->n_hist += q->n;
        else
            c->n_hist = 0;
        sl->sp = recent_sampler(&sl->recent, j->p.sampler);
        if (q->output == RSR_OUTPUT_SAMPLE && serve_needs_logits(&j->p))
            q->output = RSR_OUTPUT_LOGITS, q->logits = sl->logits; /* drawn from them after the step */
        e->owner[nq++] = k;
    }
    return nq;
}

static bool is_stop(const serve_engine *e, int32_t t) {
    return t == e->stop_ids[0] || t == e->stop_ids[1] || t == e->stop_ids[2];
}

/* What the step drew (under the lock). */
static void take_tokens(serve_engine *e, int32_t nq) {
    for (int32_t i = 0; i < nq; i++) {
        slot *sl = &e->slots[e->owner[i]];
        serve_job *j = sl->j;
        sl->pos = api.session_position(sl->c->s);
        if (!j || e->seqs[i].output == RSR_OUTPUT_NONE) continue;
        if (sl->stuck) {
            snprintf(j->err, sizeof j->err, "%s", sl->stuck);
            finish(e, sl, SERVE_FAILED);
            continue;
        }
        int32_t tok = sl->next;
        if (is_stop(e, tok)) {
            finish(e, sl, SERVE_STOP);
            continue;
        }
        j->n_gen++, e->metrics.completion_tokens++, e->recent_tokens++;
        sl->last = tok;
        if (j->p.logprobs) {
            serve_logprob *grown = realloc(j->lp, sizeof *grown * (size_t)(j->n_lp + 1));
            if (grown) j->lp = grown, j->lp[j->n_lp++] = sl->pending;
        }
        if (add_token(e, j, tok))
            finish(e, sl, SERVE_STOP);
        else if ((j->p.max_tokens >= 0 && j->n_gen >= j->p.max_tokens) || api.session_position(sl->c->s) >= e->ep.ctx)
            finish(e, sl, SERVE_LENGTH);
    }
}

/* The penalties on the logits, as llama.cpp orders them: each distinct recent token's logit is
 * first divided by the repetition penalty where positive (multiplied where negative: the runtime's
 * rule, rt_penalise), then lowered by presence + count × frequency. counts: vocab zeros, left so. */
static void penalise(float *lg, int32_t vocab, const rsr_sampler_params *sp, const serve_params *p, int32_t *counts) {
    float rp = sp->repeat_penalty;
    bool repeat = rp > 0 && rp != 1.0f;
    for (int32_t k = 0; k < sp->n_recent; k++)
        if (sp->recent[k] >= 0 && sp->recent[k] < vocab) counts[sp->recent[k]]++;
    for (int32_t k = 0; k < sp->n_recent; k++) {
        int32_t t = sp->recent[k];
        if (t < 0 || t >= vocab || !counts[t]) continue;
        if (repeat) lg[t] = lg[t] > 0 ? lg[t] / rp : lg[t] * rp;
        lg[t] -= p->presence_penalty + (float)counts[t] * p->frequency_penalty;
        counts[t] = 0;
    }
}

/* The top n logits' tokens into lp, most likely first (ties: the lower id); masked ones (-inf)
 * are no alternatives. */
static void top_tokens(const float *lg, int32_t vocab, int32_t n, serve_logprob *lp) {
    lp->n_top = 0;
    for (int32_t i = 0; i < vocab && n > 0; i++) {
        if (!(lg[i] > -INFINITY)) continue;
        int32_t k = lp->n_top;
        if (k == n && !(lg[i] > lg[lp->top[k - 1]])) continue;
        if (k < n)
            lp->n_top++;
        else
            k--;
        while (k > 0 && lg[i] > lg[lp->top[k - 1]]) lp->top[k] = lp->top[k - 1], k--;
        lp->top[k] = i;
    }
}

/* The tokens' bytes, looked up once for every later step (the engine's thread only); false when
 * out of memory. */
static bool token_pieces(serve_engine *e) {
    if (e->piece) return true;
    const char **piece = malloc(sizeof *piece * (size_t)e->vocab);
    size_t *len = malloc(sizeof *len * (size_t)e->vocab);
    if (!piece || !len) return free(piece), free(len), false;
    for (int32_t t = 0; t < e->vocab; t++) {
        len[t] = 0;
        piece[t] = api.tokenizer_is_special(e->tok, t) ? NULL : api.tokenizer_token_piece(e->tok, t, &len[t]);
    }
    e->piece = piece, e->piece_len = len;
    return true;
}

/* The reply's grammar (response_format's JSON, or the grammar field's GBNF): may the reply so far
 * go on with these bytes (tmp: scratch for JSON's state)? Is it whole? Then it goes on with them. */
static bool reply_may(slot *sl, json_state *tmp, const char *bytes, size_t n) {
    const json_shape *sh = sl->j->p.shape;
    if (sh) return json_state_copy(tmp, &sl->js), json_state_feed(tmp, sh, bytes, n);
    return gbnf_state_copy(sl->gtmp, sl->gs) && gbnf_state_feed(sl->gtmp, bytes, n);
}
static bool reply_whole(const slot *sl) {
    return sl->j->p.shape ? json_state_done(&sl->js, sl->j->p.shape) : gbnf_state_done(sl->gs);
}
static void reply_advance(slot *sl, const char *bytes, size_t n) {
    if (sl->j->p.shape)
        json_state_feed(&sl->js, sl->j->p.shape, bytes, n);
    else
        gbnf_state_feed(sl->gs, bytes, n);
}

/* Structured output: every token whose bytes cannot continue the reply in its grammar weighs
 * nothing; the end token only once the reply is whole. A byte table of the state's first step
 * turns most tokens away without a copy of the state. Returns the tokens allowed. */
#define MASK_BUDGET_S 2.0 /* a step's mask may take this long: an ambiguous grammar costs more a token */
static int32_t mask_reply(serve_engine *e, slot *sl, float *lg) {
    if (!token_pieces(e)) return sl->stuck = "out of memory for the tokens' bytes", 0;
    double until = serve_now() + MASK_BUDGET_S;
    bool done = reply_whole(sl), first[256];
    json_state tmp;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        first[b] = reply_may(sl, &tmp, &c, 1);
    }
    int32_t allowed = 0;
    for (int32_t t = 0; t < e->vocab; t++) {
        if ((t & 4095) == 4095 && serve_now() > until)
            return sl->stuck = "the reply's grammar took over 2 s to mask one step: make it less ambiguous", 0;
        bool ok;
        if (is_stop(e, t)) {
            ok = done;
        } else {
            const char *piece = e->piece[t];
            size_t len = e->piece_len[t];
            ok = piece && len && first[(unsigned char)piece[0]];
            if (ok && len > 1) ok = reply_may(sl, &tmp, piece, len);
        }
        if (!ok) lg[t] = -INFINITY;
        allowed += ok;
    }
    if (!allowed)
        sl->stuck = "no token of the vocabulary continues the reply in its grammar (response_format or grammar)";
    return allowed;
}

/* The token of a job that asked for the exact logits (outside the lock: the slot's buffers are the
 * engine's): the penalties applied, the draw rsr_sample makes from them (the runtime's own draw
 * without presence or frequency penalties, bit for bit: rsr_session_eval_sample's guarantee),
 * and its log-probability and the alternatives' under the penalised distribution. */
static void draw(serve_engine *e, slot *sl) {
    const serve_params *p = &sl->j->p;
    float *lg = sl->logits;
    rsr_sampler_params sp = sl->sp;
    memset(sl->ids, 0, sizeof(int32_t) * (size_t)e->vocab);
    penalise(lg, e->vocab, &sp, p, sl->ids);
    sp.repeat_penalty = 1.0f; /* applied */
    if ((p->shape || p->grammar) && !mask_reply(e, sl, lg)) return;
    serve_logprob *lp = &sl->pending;
    double lse = 0;
    if (p->logprobs) {
        float m = lg[api.sample_greedy(lg, e->vocab)];
        double sum = 0;
        for (int32_t i = 0; i < e->vocab; i++) sum += exp((double)lg[i] - m);
        lse = m + log(sum);
        top_tokens(lg, e->vocab, p->top_logprobs, lp);
        for (int32_t k = 0; k < lp->n_top; k++) lp->top_logprob[k] = (float)(lg[lp->top[k]] - lse);
    }
    sl->next = api.sample(lg, e->vocab, &sp, &sl->rng, sl->probs, sl->ids);
    if ((p->shape || p->grammar) && sl->next >= 0 && !is_stop(e, sl->next)) /* the reply goes on by its bytes */
        reply_advance(sl, e->piece[sl->next], e->piece_len[sl->next]);
    lp->token = sl->next;
    lp->logprob = p->logprobs && sl->next >= 0 ? (float)(lg[sl->next] - lse) : 0;
}

/* One turn of the engine (under the lock, which it lets go during the step): admission, then one
 * step of every busy slot. Returns the sequences stepped; 0 when there is nothing to do, which
 * admission guarantees means no request is waiting either. */
static int32_t turn(serve_engine *e) {
    admit(e);
    int32_t nq = build_step(e);
    if (!nq) return 0;
    pthread_mutex_unlock(&e->lock);
    double t0 = serve_now();
    rsr_status st = api.batch_eval(e->b, e->seqs, nq);
    for (int32_t i = 0; st == RSR_OK && i < nq; i++)
        if (e->seqs[i].output == RSR_OUTPUT_LOGITS) draw(e, &e->slots[e->owner[i]]);
    double t1 = serve_now();
    pthread_mutex_lock(&e->lock);
    e->metrics.steps++, e->metrics.busy_s += t1 - t0;
    for (int32_t i = 0; i < nq; i++) { /* the cache holds what the session holds (a failed step: less) */
        kv_cache *c = e->slots[e->owner[i]].c;
        int32_t pos = api.session_position(c->s);
        if (c->n_hist > pos) c->n_hist = pos > 0 ? pos : 0;
    }
    if (st != RSR_OK) { /* every request of the step fails, with the runtime's message */
        for (int32_t i = 0; i < nq; i++) {
            slot *sl = &e->slots[e->owner[i]];
            if (!sl->j) continue;
            snprintf(sl->j->err, sizeof sl->j->err, "%s", api.batch_errmsg(e->b));
            finish(e, sl, SERVE_FAILED);
        }
    } else {
        take_tokens(e, nq);
    }
    if (t1 - e->recent_t0 >= 2.0) {
        e->metrics.recent_tok_s = (double)e->recent_tokens / (t1 - e->recent_t0);
        e->recent_t0 = t1, e->recent_tokens = 0;
    }
    pthread_cond_broadcast(&e->changed);
    return nq;
}

static void *engine_main(void *arg) {
    serve_engine *e = arg;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        if (turn(e)) continue;
        if (e->stopping) break;
        pthread_cond_broadcast(&e->changed);
        pthread_cond_wait(&e->changed, &e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

int32_t serve_engine_turn(serve_engine *e) {
    pthread_mutex_lock(&e->lock);
    int32_t n = turn(e);
    pthread_mutex_unlock(&e->lock);
    return n;
}

/* Everything serve_engine_start allocates (some of it may be missing). */
static void free_parts(serve_engine *e) {
    for (int32_t k = 0; e->caches && k < e->n_caches; k++) api.session_free(e->caches[k].s), free(e->caches[k].hist);
    for (int32_t k = 0; e->slots && k < e->ep.slots; k++)
        free(e->slots[k].recent.ids), free(e->slots[k].logits), free(e->slots[k].probs), free(e->slots[k].ids),
            gbnf_state_free(e->slots[k].gs), gbnf_state_free(e->slots[k].gtmp);
    api.batch_free(e->b);
    free(e->piece), free(e->piece_len);
    free(e->slots), free(e->caches), free(e->seqs), free(e->owner), free(e->queue), free(e);
}

serve_engine *serve_engine_start(rsr_model *m, rsr_tokenizer *tok, const serve_engine_params *ep, char *err,
                                 size_t errlen) {
    serve_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->m = m, e->tok = tok, e->ep = *ep;
    e->slots = calloc((size_t)ep->slots, sizeof *e->slots);
    e->n_caches = ep->slots + ep->spare;
    e->caches = calloc((size_t)e->n_caches, sizeof *e->caches);
    e->seqs = calloc((size_t)ep->slots, sizeof *e->seqs);
    e->owner = calloc((size_t)ep->slots, sizeof *e->owner);
    e->queue = calloc((size_t)(ep->slots + ep->queue), sizeof *e->queue); /* every job not in a slot */
    rsr_model_info info;
    api.model_get_info(m, &info);
    rsr_tokenizer_info ti;
    api.tokenizer_get_info(tok, &ti);
    e->stop_ids[0] = info.eos_token_id, e->stop_ids[1] = ti.eos_token_id, e->stop_ids[2] = ti.eot_token_id;
    e->vocab = info.vocab_size;
    if (!e->slots || !e->caches || !e->seqs || !e->owner || !e->queue) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (api.batch_create(m, 0, &e->b) != RSR_OK) {
        snprintf(err, errlen, "%s", api.batch_errmsg(e->b));
        goto fail;
    }
    rsr_session_params sp = ep->session;
    sp.max_positions = ep->ctx, sp.batch = 1; /* the batch holds the steps' activations */
    for (int32_t k = 0; k < e->n_caches; k++) {
        if (api.session_create(m, &sp, &e->caches[k].s) != RSR_OK) {
            snprintf(err, errlen, "KV cache %d of %d: %s", k + 1, e->n_caches, api.model_errmsg(m));
            goto fail;
        }
        if (!(e->caches[k].hist = malloc(sizeof(int32_t) * (size_t)ep->ctx))) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    for (int32_t k = 0; k < ep->slots; k++)
        if (!recent_init(&e->slots[k].recent, ep->ctx)) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->changed, NULL);
    e->recent_t0 = serve_now();
    if (!ep->manual && pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        snprintf(err, errlen, "cannot start the engine's thread");
        goto fail;
    }
    return e;
fail:
    free_parts(e);
    return NULL;
}

void serve_engine_drain(serve_engine *e, double drain_s) {
    double until = serve_now() + drain_s;
    pthread_mutex_lock(&e->lock);
    e->draining = true;
    for (;;) { /* running requests finish while the deadline allows */
        bool busy = e->q_len > 0;
        for (int32_t k = 0; k < e->ep.slots; k++) busy |= e->slots[k].j != NULL;
        if (!busy || serve_now() >= until) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&e->changed, &e->lock, &ts);
    }
    for (; e->q_len > 0; e->q_len--, e->q_head = (e->q_head + 1) % (e->ep.slots + e->ep.queue))
        end_job(e, e->queue[e->q_head], SERVE_CANCELLED);
    for (int32_t k = 0; k < e->ep.slots; k++)
        if (e->slots[k].j) finish(e, &e->slots[k], SERVE_CANCELLED);
    pthread_cond_broadcast(&e->changed);
    pthread_mutex_unlock(&e->lock);
}

void serve_engine_free(serve_engine *e) {
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->changed);
    pthread_mutex_unlock(&e->lock);
    if (!e->ep.manual) pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->changed);
    free_parts(e);
}

bool serve_draining(serve_engine *e) {
    pthread_mutex_lock(&e->lock);
    bool d = e->draining;
    pthread_mutex_unlock(&e->lock);
    return d;
}

bool serve_submit(serve_engine *e, serve_job *j) {
    pthread_mutex_lock(&e->lock);
    int32_t busy = 0, ring = e->ep.slots + e->ep.queue;
    for (int32_t k = 0; k < e->ep.slots; k++) busy += e->slots[k].j != NULL;
    bool ok = !e->draining && busy + e->q_len < ring; /* a free slot, or room in the queue */
    if (ok) {
        j->refs = 2;
        e->queue[(e->q_head + e->q_len) % ring] = j;
        e->q_len++;
        pthread_cond_broadcast(&e->changed);
    } else {
        e->metrics.requests_rejected_full++;
    }
    pthread_mutex_unlock(&e->lock);
    return ok;
}

void serve_lock(serve_engine *e) { pthread_mutex_lock(&e->lock); }
void serve_unlock(serve_engine *e) { pthread_mutex_unlock(&e->lock); }

void serve_wait(serve_engine *e, double timeout_s) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + timeout_s;
    ts.tv_sec = (time_t)t, ts.tv_nsec = (long)((t - floor(t)) * 1e9);
    pthread_cond_timedwait(&e->changed, &e->lock, &ts);
}

void serve_release(serve_engine *e, serve_job *j) {
    pthread_mutex_lock(&e->lock);
    if (j->finish == SERVE_RUNNING) j->cancelled = true;
    unref(j);
    pthread_cond_broadcast(&e->changed);
    pthread_mutex_unlock(&e->lock);
}

void serve_get_metrics(serve_engine *e, serve_metrics *out, int32_t *active, int32_t *queued) {
    pthread_mutex_lock(&e->lock);
    *out = e->metrics;
    *queued = e->q_len, *active = 0;
    double held = 0;
    for (int32_t k = 0; k < e->ep.slots; k++)
        if (e->slots[k].j) ++*active, held += e->slots[k].pos;
    out->kv_usage = held / ((double)e->ep.slots * (double)e->ep.ctx);
    pthread_mutex_unlock(&e->lock);
}

void serve_count_invalid(serve_engine *e) {
    pthread_mutex_lock(&e->lock);
    e->metrics.requests_invalid++;
    pthread_mutex_unlock(&e->lock);
}

int32_t serve_ctx(const serve_engine *e) { return e->ep.ctx; }
