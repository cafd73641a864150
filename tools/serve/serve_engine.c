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
 *
 * Structured output (response_format's JSON schema, the grammar field's GBNF) draws from the step's
 * logits once every token whose bytes cannot continue the reply is masked. A mask walks the
 * vocabulary in byte order (sorted once at start): a token starts from the state of the bytes it
 * shares with the one before it, and a refused byte refuses at once every later token that shares
 * it. The states the reply meets are kept with their transitions for the whole request (the memo),
 * so a byte is fed to the recognizer once per distinct state; most of a mask is table lookups.
 * A mask may still take long (an ambiguous grammar keeps thousands of readings, each state new), so
 * it never holds the others: its walk is resumable, and a slot whose mask is unfinished is left out
 * of the steps while the engine gives the masks a share of each step's time (MASK_SHARE; what a
 * mask took past it is paid back from later turns), or slices of MASK_ALONE_S back to back when no
 * slot steps, stopping early for a new request. The mask's work is bounded: MASK_STEP_S a token and
 * --mask-budget a request, past which the request ends with a 400 naming its field. The draw is
 * the one it would be without slicing: the same logits, masked alike, and the slot's own random
 * state.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "draft_model.h"
#include "ngram_draft.h"
#include "spec_gate.h"
#include "serve.h"
#include "serve_gbnf.h"

/* vLLM's buckets for the same histograms (its metrics' definitions), in seconds */
static const double ttft_le[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
                                 1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
static const double itl_le[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
static const double e2e_le[] = {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
                                30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
const serve_bounds serve_ttft_bounds = {ttft_le, sizeof ttft_le / sizeof *ttft_le},
                   serve_itl_bounds = {itl_le, sizeof itl_le / sizeof *itl_le},
                   serve_e2e_bounds = {e2e_le, sizeof e2e_le / sizeof *e2e_le};

typedef struct kv_cache {
    rsr_session *s;
    int32_t *hist; /* the tokens in the session's cache, in order (room for the context) */
    int32_t n_hist;
    long used;                /* the admission that last took it: the least recently used idle cache goes first */
    unsigned char tenant[32]; /* the serve_job.tenant of what it holds: reused by that tenant only */
    bool busy;                /* a slot's job is using it */
    bool io;                  /* claimed by the slot API or --cache-dir (serve_cache_claim): no job takes it */
    bool dirty;               /* a job ended in it since it was last claimed to be written (--cache-dir) */
    int32_t index;            /* its place in the engine's caches */
} kv_cache;

/* A mask's walk over the vocabulary in byte order, resumable between turns: the next token (at) and
 * the next of its bytes (k, -1 between tokens), with the states along the token's bytes (path:
 * memo ids by depth), so that the tokens after it start from the bytes they share with it. */
typedef struct mask_walk {
    int32_t at, k;
    int32_t good;        /* bytes of the last token walked the reply took (path[0..good] hold) */
    bool broke;          /* the byte after those was refused: every token that shares it is refused too */
    int32_t allowed;     /* tokens allowed so far */
    bool over;           /* a token was refused by the recognizer's limits, not by the grammar */
    double spent;        /* this step's mask work, seconds */
    int32_t fed, stride; /* bytes fed since the clock was last read, and how many between reads */
    double last;         /* when it was */
} mask_walk;

/* The states a request's reply has met in its masks, and their transitions: the reply's grammar is
 * a function of its state, and states recur (the reply in a string, or the n-th letter of a word,
 * reads the same whatever came before), so each byte is fed to the recognizer once per distinct
 * state and the rest of a mask is table lookups. Kept for the whole request (freed when it ends);
 * cleared, but for the states on the walk's path, when it holds MEMO_STATES or MEMO_BYTES. */
#define MEMO_STATES 2048
#define MEMO_BYTES (8u << 20)
enum { MEMO_UNKNOWN = -1, MEMO_REFUSED = -2, MEMO_OVER = -3 /* refused by the recognizer's limits */ };
typedef struct mask_memo {
    int32_t hi, cap;         /* ids [0, hi) given out, room for cap */
    int32_t *spare, n_spare; /* ids below hi that a clear gave back */
    bool *live;              /* [cap]: the id holds a state */
    int32_t *next;           /* [cap][256]: the state after each byte, or MEMO_* */
    uint64_t *hash;          /* [cap] */
    json_state *js;          /* [cap]: a schema's states */
    gbnf_state **gs;         /* [cap]: a grammar's (gbnf_state_dup copies) */
    int32_t *table;          /* [2 * cap]: id + 1 by hash, open addressing (0: empty) */
    size_t bytes;            /* held by the grammar's copies */
} mask_memo;

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
    size_t lazy_seen;      /* tool_choice auto: the reply's bytes searched for the trigger so far */
    gbnf_state *gs, *gtmp; /* the grammar field's: the reply so far, and the state the mask feeds (made
                            * with the job's grammar; freed by the next job's start or the engine's end) */
    json_state jw;         /* the state the mask feeds, for a schema (gtmp for a grammar) */
    mask_memo memo;
    int32_t *path; /* [max_len + 1]: the walk's states by depth */
    mask_walk mw;
    int32_t *ahead;            /* speculative decoding: tokens chosen ahead, all in the cache but the last */
    int32_t ahead_at, ahead_n; /* the next of them, and how many */
    int32_t k_next;            /* the most the slot's next draft may hold */
    spec_gate gate;            /* whether an n-gram draft pays for this request (spec_gate.h) */
    draft_seq dq;              /* -md: the draft model's session for this slot's text */
    bool masking;              /* the last step's logits wait for their mask: the slot is left out of the steps */
    bool ready;                /* a token is drawn, for take */
    double mask_s;             /* the job's mask work so far, seconds */
    const char *stuck;         /* why no token may come next (none continues the reply, the mask is past its
                              * budget, memory ran out), or NULL: its text, in stuck_msg */
    const char *stuck_param;   /* the request's field at fault, or NULL: the server's own failure */
    char stuck_msg[240];
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
    uint64_t turns; /* a clock of submissions and starts: serve_job.request and .turn */
    int32_t stop_ids[3];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a step ended, or a job came or went */
    bool stopping, draining;
    serve_metrics metrics;
    long admissions;
    int32_t vocab;
    const char **piece; /* structured output: each token's bytes (NULL: a special token), made at start */
    size_t *piece_len;
    int32_t *order, *lcp, n_order; /* the tokens with bytes, not special nor an end token, in byte order,
                                    * and how many leading bytes each shares with the one before it */
    char *bytes;                   /* order[i]'s bytes at bytes[off[i], off[i + 1]): in the walk's order */
    size_t *off;
    int32_t *outside, n_outside; /* the others: allowed only as an end token once the reply is whole */
    int32_t max_len;             /* the longest token's bytes */
    int32_t mask_next;           /* the slot whose mask goes first in the next turn */
    double mask_owed;            /* seconds the masks took past their share, paid back by later turns */
    double mask_work;            /* seconds of walks since the metrics took them (the engine's thread) */
    double mask_budget;          /* seconds of mask work one request may spend in all */
    bool in_flight;              /* the engine's thread is in a step or mask, outside the lock */
    atomic_bool arrived;         /* a job was submitted since the last admission: a mask stops for it */
    bool halted;                 /* drained: no more turns */
    int32_t pinned;              /* admission: queued jobs that pin a slot (id_slot) */
    double recent_busy;          /* the steps' time since recent_tokens was last cleared */
    long recent_tokens;
    bool spec_ok;    /* --spec-type given */
    bool dense;      /* a Qwen3.5 hybrid: its sessions attend densely, no Louver limit on a draft's keys */
    int32_t n_ahead; /* slots this turn served a token chosen ahead */
    /* -md: the draft model, and what a turn's draft reads outside the lock (spec_draft copies the
     * slot's text into dhist; draft_fill proposes up to dmax tokens from it) */
    draft_model dm;
    bool has_draft;
    int32_t *dhist, dn, dmax, dmin;
    float dpmin;
};

/* The router's view of cache c (--kv-events): cut back to keep tokens, or grown to its history. */
static void events_keep(serve_engine *e, const kv_cache *c, int32_t keep) {
    if (e->ep.events) e->ep.events->keep(e->ep.events->ctx, c->index, keep);
}
static void events_grow(serve_engine *e, const kv_cache *c) {
    if (e->ep.events) e->ep.events->grow(e->ep.events->ctx, c->index, c->tenant, c->hist, c->n_hist);
}
/* Everything told again (under the lock): AllBlocksCleared, then each cache grown from nothing. */
static void events_resync(serve_engine *e) {
    e->ep.events->clear(e->ep.events->ctx);
    for (int32_t k = 0; k < e->n_caches; k++) events_grow(e, &e->caches[k]);
    e->ep.events->flush(e->ep.events->ctx); /* lost again: the next turn's flush says so */
}
static void events_flush(serve_engine *e) {
    if (e->ep.events && e->ep.events->flush(e->ep.events->ctx)) events_resync(e);
}

void serve_events_resync(serve_engine *e) {
    pthread_mutex_lock(&e->lock);
    if (e->ep.events) events_resync(e);
    pthread_mutex_unlock(&e->lock);
}

static void job_free(serve_job *j) {
    serve_params_free(&j->p);
    free(j->ids);
    free(j->text);
    free(j->lp);
    free(j->out_ids);
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
        mt->requests_ok++, serve_observe(&mt->e2e, &serve_e2e_bounds, serve_now() - j->t_arrive);
    unref(j);
}

static void memo_free(mask_memo *m);

/* The job leaves its slot (under the lock, never while the engine's thread is in flight: it owns the
 * slot's mask); its cache keeps what it holds. */
static void finish(serve_engine *e, slot *sl, serve_finish why) {
    serve_job *j = sl->j;
    sl->ahead_at = sl->ahead_n = 0; /* tokens chosen ahead stay in the cache (and its hist): evaluated in their
                                       * place, a next turn that writes them reuses them */
    sl->j = NULL, sl->masking = sl->ready = false;
    memo_free(&sl->memo);
    sl->c->busy = false, sl->c->dirty = true; /* sl->c stays: a step in flight may still be filling it */
    end_job(e, j, why);
}

/* Appends the token's bytes (special tokens left out) and moves j->ready; true when a stop string
 * now appears (the text is cut before it). */
static bool add_token(serve_engine *e, serve_job *j, int32_t t) {
    size_t len = 0;
    const char *piece = e->tok ? api.tokenizer_token_piece(e->tok, t, &len) : NULL;
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
        size_t tail = j->text ? serve_partial_tail(j->text, j->n_text, stop) : 0; /* may still become it */
        if (tail > hold) hold = tail;
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
    return api.session_reachable(c->s, k); /* a recurrent state: where the last prompt ended, or 0 */
}

/* A cache being saved or restored that would give a job this many prompt tokens more than any other
 * makes it wait for it (the save or restore ends in milliseconds to a second; its prompt would take
 * longer); fewer, and the job takes another cache now. */
#define CLAIM_WORTH 32

/* The idle cache for job j (there is one whenever a slot is free: a cache per slot, and only busy
 * slots hold one). Among those the prompt continues for at least half of what they hold (an
 * empty cache too), the longest reusable prefix, then the least recently used; if none, the
 * least recently used: a new conversation does not overwrite another's long history to reuse the
 * few tokens of a chat template's header they share. */
static kv_cache *pick_cache(serve_engine *e, const serve_job *j, int32_t *keep) {
    kv_cache *best = NULL, *lru = NULL;
    int32_t best_n = -1, lru_n = 0, claimed_n = 0;
    for (int32_t k = 0; k < e->n_caches; k++) {
        kv_cache *c = &e->caches[k];
        if (c->busy) continue;
        if (c->io) { /* being saved or restored: its tokens say what it would give (its session is not read) */
            int32_t n = 0, most = c->n_hist < j->n_ids - 2 ? c->n_hist : j->n_ids - 2;
            if (j->p.cache_prompt && !memcmp(c->tenant, j->tenant, sizeof c->tenant))
                while (n < most && c->hist[n] == j->ids[n]) n++;
            if (2 * n >= c->n_hist && n > claimed_n) claimed_n = n;
            continue;
        }
        int32_t n = j->p.cache_prompt ? reusable_prefix(c, j) : 0;
        if (!lru || c->used < lru->used) lru = c, lru_n = n;
        if (2 * n >= c->n_hist && (n > best_n || (n == best_n && c->used < best->used))) best = c, best_n = n;
    }
    if (!best) best = lru, best_n = lru_n;
    if (claimed_n >= (best ? best_n : 0) + CLAIM_WORTH) return NULL; /* the job waits for that cache */
    *keep = best_n;
    return best; /* NULL: every idle cache is claimed (serve_cache_claim) */
}

/* Whether a queued job pins slot k (id_slot): a job that pins none leaves it to that one. */
static bool pinned_by_queue(const serve_engine *e, int32_t k) {
    const int32_t ring = e->ep.slots + e->ep.queue;
    for (int32_t i = 0; i < e->q_len; i++)
        if (e->queue[(e->q_head + i) % ring]->p.pin_slot == k + 1) return true;
    return false;
}

/* A free slot for job j: the one it pins (id_slot), else the first free one no queued job pins;
 * NULL: none (j NULL: any free slot). */
static slot *free_slot(serve_engine *e, const serve_job *j) {
    if (j && j->p.pin_slot > 0) return e->slots[j->p.pin_slot - 1].j ? NULL : &e->slots[j->p.pin_slot - 1];
    for (int32_t k = 0; k < e->ep.slots; k++)
        if (!e->slots[k].j && (!j || !e->pinned || !pinned_by_queue(e, k))) return &e->slots[k];
    return NULL;
}

static void memo_free(mask_memo *m) {
    for (int32_t id = 0; m->gs && id < m->hi; id++) gbnf_state_free(m->gs[id]);
    free(m->spare), free(m->live), free(m->next), free(m->hash), free(m->js), free(m->gs), free(m->table);
    memset(m, 0, sizeof *m);
}

static void memo_index(mask_memo *m) { /* the hash table over the live states */
    uint32_t mask = (uint32_t)(2 * m->cap - 1);
    memset(m->table, 0, sizeof *m->table * 2 * (size_t)m->cap);
    for (int32_t id = 0; id < m->hi; id++) {
        if (!m->live[id]) continue;
        uint32_t h = (uint32_t)m->hash[id] & mask;
        while (m->table[h]) h = (h + 1) & mask;
        m->table[h] = id + 1;
    }
}

/* The memo emptied but for the states path[0..keep), whose ids stay. */
static void memo_clear(mask_memo *m, int32_t keep, const int32_t *path) {
    int32_t hi = 0;
    for (int32_t d = 0; d < keep; d++) hi = path[d] + 1 > hi ? path[d] + 1 : hi;
    m->bytes = 0, m->n_spare = 0;
    for (int32_t id = 0; id < m->hi; id++) {
        bool kept = false;
        for (int32_t d = 0; d < keep && !kept; d++) kept = path[d] == id;
        if (kept && m->gs) m->bytes += gbnf_state_bytes(m->gs[id]);
        if (!kept && m->gs) gbnf_state_free(m->gs[id]), m->gs[id] = NULL;
        m->live[id] = kept;
        if (!kept && id < hi) m->spare[m->n_spare++] = id;
    }
    for (size_t i = 0; i < (size_t)m->hi * 256; i++) m->next[i] = MEMO_UNKNOWN;
    m->hi = hi;
    memo_index(m);
}

/* Room for twice the states, at most MEMO_STATES; false when there is none, or no memory. */
static bool memo_grow(mask_memo *m, bool grammar) {
    int32_t cap = m->cap ? 2 * m->cap : 64;
    if (cap > MEMO_STATES) return false;
    void *p;
#define GROW(field, n)                                                                                                 \
    if (!(p = realloc(m->field, sizeof *m->field * (size_t)(n)))) return false;                                        \
    m->field = p
    GROW(next, cap * 256);
    GROW(hash, cap);
    GROW(live, cap);
    GROW(spare, cap);
    if (grammar) {
        GROW(gs, cap);
    } else {
        GROW(js, cap);
    }
    int32_t *table = calloc(2 * (size_t)cap, sizeof *table);
    if (!table) return false;
#undef GROW
    for (size_t i = (size_t)m->cap * 256; i < (size_t)cap * 256; i++) m->next[i] = MEMO_UNKNOWN;
    for (int32_t id = m->cap; id < cap; id++) m->live[id] = false;
    if (grammar)
        for (int32_t id = m->cap; id < cap; id++) m->gs[id] = NULL;
    free(m->table), m->table = table, m->cap = cap;
    memo_index(m);
    return true;
}

static uint64_t json_hash(const json_state *st) {
    const unsigned char *b = (const unsigned char *)st->f;
    uint64_t h = 1469598103934665603u ^ (uint64_t)st->depth;
    for (size_t i = 0; i < sizeof *st->f * (size_t)st->depth; i++) h = (h ^ b[i]) * 1099511628211u;
    return h ^ h >> 29;
}

/* The id of the state the mask feeds (jw, or gtmp for a grammar), added if new: -1 when the memo is
 * full, -2 when out of memory. */
static int32_t memo_id(slot *sl) {
    mask_memo *m = &sl->memo;
    bool grammar = sl->j->p.grammar != NULL;
    uint64_t h = grammar ? gbnf_state_hash(sl->gtmp) : json_hash(&sl->jw);
    uint32_t mask = (uint32_t)(2 * m->cap - 1), at = (uint32_t)h & mask;
    for (; m->cap && m->table[at]; at = (at + 1) & mask) {
        int32_t id = m->table[at] - 1;
        if (m->hash[id] != h) continue;
        if (grammar ? gbnf_state_same(m->gs[id], sl->gtmp)
                    : m->js[id].depth == sl->jw.depth &&
                          !memcmp(m->js[id].f, sl->jw.f, sizeof *sl->jw.f * (size_t)sl->jw.depth))
            return id;
    }
    if (m->bytes > MEMO_BYTES || (m->hi - m->n_spare == m->cap && !memo_grow(m, grammar)))
        return m->cap == MEMO_STATES || m->bytes > MEMO_BYTES ? -1 : -2;
    int32_t id = m->n_spare ? m->spare[--m->n_spare] : m->hi++;
    if (grammar) {
        if (!(m->gs[id] = gbnf_state_dup(sl->gtmp))) return m->spare[m->n_spare++] = id, -2;
        m->bytes += gbnf_state_bytes(m->gs[id]);
    } else {
        json_state_copy(&m->js[id], &sl->jw);
    }
    m->hash[id] = h, m->live[id] = true;
    mask = (uint32_t)(2 * m->cap - 1);
    for (at = (uint32_t)h & mask; m->table[at]; at = (at + 1) & mask) continue;
    m->table[at] = id + 1;
    return id;
}

/* Job j starts in slot sl with cache c, keeping the first `keep` prompt tokens of the cache. */
static void start_job(serve_engine *e, slot *sl, kv_cache *c, serve_job *j, int32_t keep) {
    for (int32_t k = 0; k < e->ep.slots; k++) /* a slot's cache is its last job's while no other slot takes it */
        if (e->slots[k].c == c) e->slots[k].c = NULL;
    sl->j = j, sl->c = c, c->busy = true, c->used = ++e->admissions;
    j->t_start = serve_now();
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
    events_keep(e, c, keep);
    memcpy(c->tenant, j->tenant, sizeof c->tenant); /* what it holds now is this tenant's prompt (or nothing) */
    sl->fed = keep, c->n_hist = keep, sl->pos = keep;
    j->n_cached = keep, e->metrics.prompt_tokens_cached += keep;
    e->metrics.prefix_queries += j->n_ids, e->metrics.prefix_hits += keep;
    uint64_t seed = j->p.has_seed ? j->p.seed : (uint64_t)j->created * 2654435761u + (uint64_t)e->metrics.steps;
    sl->rng = seed * 0x9e3779b97f4a7c15u + 1;
    sl->recent.n = 0, sl->recent.last_n = j->p.repeat_last_n < e->ep.ctx ? j->p.repeat_last_n : e->ep.ctx;
    recent_push(&sl->recent, j->ids, keep); /* the penalty sees the kept tokens as if evaluated */
    if (j->p.shape) json_state_init(&sl->js, j->p.shape);
    gbnf_state_free(sl->gs), gbnf_state_free(sl->gtmp);
    sl->gs = sl->gtmp = NULL;
    memo_free(&sl->memo);
    bool room = true;
    if ((j->p.shape || j->p.grammar) && !sl->path)
        room = (sl->path = malloc(sizeof *sl->path * (size_t)(e->max_len + 1)));
    if (j->p.grammar && room)
        room = (sl->gs = gbnf_state_new(j->p.grammar)) && (sl->gtmp = gbnf_state_new(j->p.grammar));
    if (!room) {
        snprintf(j->err, sizeof j->err, "out of memory for the %s's state", j->p.grammar ? "grammar" : "schema");
        finish(e, sl, SERVE_FAILED);
        return;
    }
    sl->stuck = sl->stuck_param = NULL, sl->mask_s = 0, sl->lazy_seen = 0;
    sl->k_next = 4, sl->ahead_at = sl->ahead_n = 0;
    /* greedy n-gram drafts only (spec_gate.h: a request's seed gives the same text every time) */
    spec_gate_init(&sl->gate, !e->has_draft && !e->ep.mtp && j->p.sampler.temperature <= 0);
}

/* The queued job to start next (its place in the queue): the first of the submission with the
 * fewest jobs in slots, then the one whose turn is oldest (its last job started longest ago, or it
 * came first). Single requests go first come, first served; a list of many prompts takes turns
 * with the requests that arrive behind it, round robin, instead of holding every slot until its
 * last prompt has started (a 64-prompt list once made another client's chat 9x slower), and is
 * never starved by them. A submission's queued jobs sit together, in order. */
static int32_t next_queued(const serve_engine *e) {
    int32_t ring = e->ep.slots + e->ep.queue, best = -1, best_busy = INT32_MAX;
    uint64_t best_turn = UINT64_MAX;
    for (int32_t i = 0, queued; i < e->q_len; i += queued) {
        const serve_job *j = e->queue[(e->q_head + i) % ring];
        for (queued = 1; i + queued < e->q_len && e->queue[(e->q_head + i + queued) % ring]->request == j->request;)
            queued++;
        int32_t busy = 0;
        for (int32_t k = 0; k < e->ep.slots; k++) busy += e->slots[k].j && e->slots[k].j->request == j->request;
        if (j->waits || !free_slot((serve_engine *)e, j)) continue; /* its slot is taken, or its cache claimed */
        if (busy < best_busy || (busy == best_busy && j->turn < best_turn))
            best = i, best_busy = busy, best_turn = j->turn;
    }
    return best;
}

/* Takes the job at place i out of the queue (the ones behind it move up). */
static serve_job *queue_take(serve_engine *e, int32_t i) {
    int32_t ring = e->ep.slots + e->ep.queue;
    serve_job *j = e->queue[(e->q_head + i) % ring];
    for (; i > 0; i--) e->queue[(e->q_head + i) % ring] = e->queue[(e->q_head + i - 1) % ring];
    e->q_head = (e->q_head + 1) % ring, e->q_len--;
    return j;
}

/* Slots whose client went away are freed, then free slots take queued jobs (under the lock), in
 * this order: a turn whose every busy slot was cancelled must still admit the queue (the engine
 * once went to sleep there with requests waiting, until some other event woke it). A job that
 * asks for no tokens ends at once, without a slot. */
static void admit(serve_engine *e) {
    atomic_store_explicit(&e->arrived, false, memory_order_relaxed);
    for (int32_t k = 0; k < e->ep.slots; k++)
        if (e->slots[k].j && e->slots[k].j->cancelled) finish(e, &e->slots[k], SERVE_CANCELLED);
    int32_t ring = e->ep.slots + e->ep.queue;
    for (int32_t i = 0; i < e->q_len;) { /* gone before they started, or nothing to do */
        serve_job *j = e->queue[(e->q_head + i) % ring];
        if (j->cancelled || j->p.max_tokens == 0)
            end_job(e, queue_take(e, i), j->cancelled ? SERVE_CANCELLED : SERVE_LENGTH);
        else
            i++;
    }
    e->pinned = 0;
    for (int32_t i = 0; i < e->q_len; i++) e->pinned += e->queue[(e->q_head + i) % ring]->p.pin_slot > 0;
    while (e->q_len > 0) {
        if (!free_slot(e, NULL)) break; /* before the queue's scan: most steps have no slot free */
        int32_t keep, i = next_queued(e);
        if (i < 0) break; /* the jobs waiting pin slots that are taken, or wait for a claimed cache */
        serve_job *q = e->queue[(e->q_head + i) % ring];
        slot *sl = free_slot(e, q);
        kv_cache *c = pick_cache(e, q, &keep);
        if (!c) { /* its cache is being saved or restored: it goes when that ends, the others go on */
            q->waits = true;
            continue;
        }
        e->pinned -= q->p.pin_slot > 0;
        serve_job *j = queue_take(e, i);
        e->turns++; /* the submission's jobs still queued (now from place i on) wait for their next turn */
        for (int32_t k = i; k < e->q_len && e->queue[(e->q_head + k) % ring]->request == j->request; k++)
            e->queue[(e->q_head + k) % ring]->turn = e->turns;
        start_job(e, sl, c, j, keep);
    }
    for (int32_t i = 0; i < e->q_len; i++) e->queue[(e->q_head + i) % ring]->waits = false;
}

/* The step's sequences (under the lock): each busy slot's prompt chunk or last token (a slot whose
 * mask is unfinished waits). */
static int32_t build_step(serve_engine *e) {
    int32_t nq = 0;
    for (int32_t k = 0; k < e->ep.slots; k++) {
        slot *sl = &e->slots[k];
        if (!sl->j || sl->masking) continue;
        serve_job *j = sl->j;
        if (sl->ahead_at < sl->ahead_n) { /* its last token is in the cache already (spec_step) */
            sl->next = sl->ahead[sl->ahead_at++], sl->ready = true, e->n_ahead++;
            continue;
        }
        rsr_seq *q = &e->seqs[nq];
        *q = (rsr_seq){
            .session = sl->c->s, .output = RSR_OUTPUT_SAMPLE, .token = &sl->next, .sampler = &sl->sp, .rng = &sl->rng};
        if (sl->fed < j->n_ids) {
            int32_t left = j->n_ids - sl->fed, n = left < e->ep.chunk ? left : e->ep.chunk;
            if (left - n == 1 && n > 2) n--; /* no one-token prompt step (a decode step's attention) */
            /* a hybrid keeps a checkpoint 8 tokens before the end of a step of more than 8 (rsr.h,
             * rsr_session_truncate): the prompt's last step is made long enough to keep one, near its end */
            if (e->dense && left > n && left - n <= 8 && left - 9 >= 2) n = left - 9;
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
            c->n_hist = 0, events_keep(e, c, 0);
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

/* tool_choice auto: once the reply shows where a call begins, the rest of it is under the calls'
 * grammar, fed the reply from there (a call already off the grammar leaves the reply free). */
static void lazy_grammar(serve_engine *e, slot *sl) {
    serve_params *p = &sl->j->p;
    const char *text = sl->j->text ? sl->j->text : "";
    size_t n = sl->j->n_text, at = 0, t = strlen(p->trigger);
    if (p->trigger_at_start) {
        while (at < n && (text[at] == ' ' || text[at] == '\n' || text[at] == '\t' || text[at] == '\r')) at++;
        if (at == n) return;
        if (n - at < t ? memcmp(text + at, p->trigger, n - at) != 0 : memcmp(text + at, p->trigger, t) != 0) {
            gbnf_free(p->lazy), p->lazy = NULL; /* the reply began otherwise: text */
            return;
        }
        if (n - at < t) return;
    } else {
        size_t from = sl->lazy_seen >= t ? sl->lazy_seen - (t - 1) : 0; /* a trigger across the last token */
        if (from > n) from = n;
        const char *hit = memmem(text + from, n - from, p->trigger, t);
        sl->lazy_seen = n;
        if (!hit) return;
        at = (size_t)(hit - text);
    }
    p->grammar = p->lazy, p->lazy = NULL;
    bool ok = (sl->path || (sl->path = malloc(sizeof *sl->path * (size_t)(e->max_len + 1)))) &&
              (sl->gs = gbnf_state_new(p->grammar)) && (sl->gtmp = gbnf_state_new(p->grammar)) &&
              gbnf_state_feed(sl->gs, text + at, n - at);
    if (!ok) { /* out of memory, or the call is already off the grammar: the reply stays free */
        gbnf_state_free(sl->gs), gbnf_state_free(sl->gtmp);
        sl->gs = sl->gtmp = NULL;
        gbnf_free(p->grammar), p->grammar = NULL;
    }
}

/* The token the slot drew (under the lock). */
static void take(serve_engine *e, slot *sl) {
    serve_job *j = sl->j;
    sl->ready = false;
    if (sl->stuck) {
        snprintf(j->err, sizeof j->err, "%s", sl->stuck);
        j->err_param = sl->stuck_param;
        finish(e, sl, SERVE_FAILED);
        return;
    }
    int32_t tok = sl->next;
    if (is_stop(e, tok)) {
        finish(e, sl, SERVE_STOP);
        return;
    }
    if (j->n_gen == j->out_cap) {
        int32_t cap = j->out_cap ? 2 * j->out_cap : 16, *grown = realloc(j->out_ids, sizeof *grown * (size_t)cap);
        if (!grown) {
            snprintf(j->err, sizeof j->err, "out of memory for the reply's tokens");
            finish(e, sl, SERVE_FAILED);
            return;
        }
        j->out_ids = grown, j->out_cap = cap;
    }
    j->out_ids[j->n_gen++] = tok, e->metrics.completion_tokens++, e->recent_tokens++;
    const double now = serve_now();
    if (j->n_gen == 1)
        j->t_first = now, serve_observe(&e->metrics.ttft, &serve_ttft_bounds, now - j->t_arrive);
    else
        serve_observe(&e->metrics.itl, &serve_itl_bounds, now - j->t_last);
    j->t_last = now;
    sl->last = tok;
    if (j->p.logprobs) {
        serve_logprob *grown = realloc(j->lp, sizeof *grown * (size_t)(j->n_lp + 1));
        if (grown) j->lp = grown, j->lp[j->n_lp++] = sl->pending;
    }
    bool stop = add_token(e, j, tok);
    if (j->p.lazy && !stop) lazy_grammar(e, sl);
    if (stop)
        finish(e, sl, SERVE_STOP);
    else if ((j->p.max_tokens >= 0 && j->n_gen >= j->p.max_tokens) || api.session_position(sl->c->s) >= e->ep.ctx)
        finish(e, sl, SERVE_LENGTH);
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

double serve_log_softmax(const float *lg, int32_t vocab, int32_t n_top, serve_logprob *lp) {
    float m = lg[api.sample_greedy(lg, vocab)];
    double sum = 0;
    for (int32_t i = 0; i < vocab; i++) sum += exp((double)lg[i] - m);
    double lse = m + log(sum);
    top_tokens(lg, vocab, n_top, lp);
    for (int32_t k = 0; k < lp->n_top; k++) lp->top_logprob[k] = (float)(lg[lp->top[k]] - lse);
    return lse;
}

/* The tokens' bytes, and the mask's order of them (byte order, and the bytes each shares with the
 * one before it), made once at start; false when out of memory. */
typedef struct piece_ref {
    const char *p;
    size_t len;
    int32_t id;
} piece_ref;
static int by_bytes(const void *a, const void *b) {
    const piece_ref *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}
static bool token_order(serve_engine *e) {
    int32_t v = e->vocab;
    e->piece = malloc(sizeof *e->piece * (size_t)v), e->piece_len = malloc(sizeof *e->piece_len * (size_t)v);
    e->order = malloc(sizeof *e->order * (size_t)v), e->lcp = malloc(sizeof *e->lcp * (size_t)v);
    e->outside = malloc(sizeof *e->outside * (size_t)v);
    piece_ref *r = malloc(sizeof *r * (size_t)v);
    if (!e->piece || !e->piece_len || !e->order || !e->lcp || !e->outside || !r) return free(r), false;
    int32_t n = 0;
    for (int32_t t = 0; t < v; t++) {
        e->piece_len[t] = 0;
        e->piece[t] = !e->tok || api.tokenizer_is_special(e->tok, t)
                          ? NULL
                          : api.tokenizer_token_piece(e->tok, t, &e->piece_len[t]);
        if (e->piece[t] && e->piece_len[t] && !is_stop(e, t) && e->piece_len[t] < INT32_MAX / 2)
            r[n++] = (piece_ref){e->piece[t], e->piece_len[t], t};
        else
            e->outside[e->n_outside++] = t;
    }
    qsort(r, (size_t)n, sizeof *r, by_bytes);
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) total += r[i].len;
    e->bytes = malloc(total ? total : 1), e->off = malloc(sizeof *e->off * ((size_t)n + 1));
    if (!e->bytes || !e->off) return free(r), false;
    e->off[0] = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t l = 0;
        while (i && l < r[i].len && l < r[i - 1].len && r[i].p[l] == r[i - 1].p[l]) l++;
        e->order[i] = r[i].id, e->lcp[i] = (int32_t)l;
        memcpy(e->bytes + e->off[i], r[i].p, r[i].len), e->off[i + 1] = e->off[i] + r[i].len;
        if ((int32_t)r[i].len > e->max_len) e->max_len = (int32_t)r[i].len;
    }
    e->n_order = n;
    free(r);
    return true;
}

/* The reply's grammar (response_format's JSON, or the grammar field's GBNF): is it whole? Then it
 * goes on with these bytes. */
static bool reply_whole(const slot *sl) {
    return sl->j->p.shape ? json_state_done(&sl->js, sl->j->p.shape) : gbnf_state_done(sl->gs);
}
static void reply_advance(slot *sl, const char *bytes, size_t n) {
    if (sl->j->p.shape)
        json_state_feed(&sl->js, sl->j->p.shape, bytes, n);
    else
        gbnf_state_feed(sl->gs, bytes, n);
}

/* The state after state `cur` and byte c (MEMO_REFUSED, MEMO_OVER), fed to the recognizer and kept
 * in the memo; when the memo is full it is cleared but for the walk's path[0..k]. MEMO_FULL when the
 * path alone fills it, MEMO_NOMEM when out of memory. */
enum { MEMO_FULL = -4, MEMO_NOMEM = -5 };
static int32_t memo_step(slot *sl, int32_t cur, unsigned char c, int32_t k) {
    mask_memo *m = &sl->memo;
    char byte = (char)c;
    int32_t id;
    if (sl->j->p.shape) {
        json_state_copy(&sl->jw, &m->js[cur]);
        if (!json_state_feed(&sl->jw, sl->j->p.shape, &byte, 1)) return m->next[(size_t)cur * 256 + c] = MEMO_REFUSED;
    } else {
        if (!gbnf_state_copy(sl->gtmp, m->gs[cur])) return MEMO_NOMEM;
        if (!gbnf_state_feed(sl->gtmp, &byte, 1))
            return m->next[(size_t)cur * 256 + c] = gbnf_state_over(sl->gtmp) ? MEMO_OVER : MEMO_REFUSED;
    }
    if ((id = memo_id(sl)) == -1) {
        memo_clear(m, k + 1, sl->path);
        id = memo_id(sl);
    }
    if (id < 0) return id == -1 ? MEMO_FULL : MEMO_NOMEM;
    return m->next[(size_t)cur * 256 + c] = id;
}

static const char *field_of(const slot *sl) { return sl->j->p.shape ? "response_format" : "grammar"; }

static void stuck(slot *sl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stuck(slot *sl, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sl->stuck_msg, sizeof sl->stuck_msg, fmt, ap);
    va_end(ap);
    sl->stuck = sl->stuck_msg;
}

/* A mask begins (structured output): every token outside the order weighs nothing, but the end
 * tokens once the reply is whole; the walk over the order starts at its first token, from the
 * reply's state. */
static void mask_begin(serve_engine *e, slot *sl, float *lg) {
    bool done = reply_whole(sl);
    sl->mw = (mask_walk){.k = -1, .stride = 1};
    if (sl->j->p.shape)
        json_state_copy(&sl->jw, &sl->js);
    else if (!gbnf_state_copy(sl->gtmp, sl->gs))
        stuck(sl, "out of memory for the mask");
    int32_t id = sl->stuck ? -2 : memo_id(sl);
    if (id == -1) memo_clear(&sl->memo, 0, NULL), id = memo_id(sl);
    if (id < 0 && !sl->stuck) stuck(sl, "out of memory for the mask");
    sl->path[0] = id;
    for (int32_t i = 0; i < e->n_outside; i++) {
        int32_t t = e->outside[i];
        if (done && is_stop(e, t))
            sl->mw.allowed++;
        else
            lg[t] = -INFINITY;
    }
    sl->masking = true;
}

/* Whether the walk must stop: the clock is past `until`, or a job waits for admission. The clock
 * is read every `stride` bytes fed, a stride kept to about 10 to 40 microseconds of feeding, since a
 * byte costs from nanoseconds (a schema) to milliseconds (an ambiguous grammar). */
static bool clock_up(serve_engine *e, mask_walk *w, double until) {
    double now = serve_now(), gap = now - w->last;
    w->last = now, w->fed = 0;
    if (gap < 1e-5 && w->stride < 4096) w->stride *= 2;
    if (gap > 4e-5 && w->stride > 1) w->stride /= 2;
    return now >= until || atomic_load_explicit(&e->arrived, memory_order_relaxed);
}

/* The walk from where it stopped until it is done (true) or clock_up (false): a token whose bytes
 * cannot continue the reply weighs nothing, as does every token after it in the order that shares
 * the byte refused; the others start from the state of the bytes they share with the token
 * before them. */
static bool mask_walk_on(serve_engine *e, slot *sl, float *lg, double until) {
    mask_walk *w = &sl->mw;
    const int32_t *next = sl->memo.next;
    w->last = serve_now(), w->fed = 0;
    while (!sl->stuck) {
        if (w->k < 0) { /* the next token */
            if (w->at == e->n_order) return true;
            int32_t l = e->lcp[w->at]; /* <= good unless the byte after good was refused */
            if (w->broke && l > w->good) {
                lg[e->order[w->at++]] = -INFINITY;
                continue;
            }
            w->k = l;
        }
        if (w->k == (int32_t)(e->off[w->at + 1] - e->off[w->at])) { /* every byte taken */
            w->good = w->k, w->broke = false, w->allowed++;
            w->at++, w->k = -1;
            continue;
        }
        if (++w->fed >= w->stride && clock_up(e, w, until)) return false;
        unsigned char c = (unsigned char)e->bytes[e->off[w->at] + (size_t)w->k];
        int32_t cur = sl->path[w->k], to = next[(size_t)cur * 256 + c];
        if (to == MEMO_UNKNOWN) to = memo_step(sl, cur, c, w->k), next = sl->memo.next;
        if (to == MEMO_NOMEM) stuck(sl, "out of memory for the mask");
        if (to == MEMO_FULL) /* the grammar's doing: a 400 */
            stuck(sl, "'%s': the reply's readings outgrow the mask's memory", sl->stuck_param = field_of(sl));
        if (to >= 0) {
            sl->path[++w->k] = to;
            continue;
        }
        w->over |= to == MEMO_OVER;
        lg[e->order[w->at]] = -INFINITY;
        w->good = w->k, w->broke = true;
        w->at++, w->k = -1;
    }
    return true;
}

/* Up to `slice` seconds more of the slot's mask, within its budgets; true when it is finished
 * (done, or stuck: over a budget, or no token allowed). */
#define MASK_STEP_S 2.0 /* the most one token's mask may take: an ambiguous grammar costs more a token */
static bool mask_run(serve_engine *e, slot *sl, double slice) {
    const char *field = field_of(sl);
    double t0 = serve_now(), left_step = MASK_STEP_S - sl->mw.spent, left_job = e->mask_budget - sl->mask_s;
    double room = slice < left_step ? slice : left_step;
    if (left_job < room) room = left_job;
    bool done = mask_walk_on(e, sl, sl->logits, t0 + room);
    double took = serve_now() - t0;
    sl->mw.spent += took, sl->mask_s += took, e->mask_work += took;
    if (sl->stuck) return true; /* named by the walk, or out of memory (the server's failure) */
    sl->stuck_param = field;
    if (!done && sl->mw.spent >= MASK_STEP_S)
        stuck(sl, "'%s': masking one token took over %g s of work (a token's most): make it less ambiguous", field,
              MASK_STEP_S);
    else if (!done && sl->mask_s >= e->mask_budget)
        stuck(sl,
              "'%s': masking the reply took over %g s of work in all (rsr-serve --mask-budget): make it less "
              "ambiguous, or ask for fewer tokens",
              field, e->mask_budget);
    else if (done && !sl->mw.allowed && sl->mw.over)
        stuck(sl,
              "'%s': too ambiguous: the reply so far goes on only past the recognizer's limits (%d readings at "
              "once, %d rules deep, 65536 steps a character)",
              field, GBNF_MAX_STACKS, GBNF_MAX_DEPTH);
    else if (done && !sl->mw.allowed)
        stuck(sl, "'%s': no token of the vocabulary continues the reply", field);
    if (!sl->stuck) sl->stuck_param = NULL;
    return done || sl->stuck;
}

/* The token of a job that asked for the exact logits (outside the lock: the slot's buffers are the
 * engine's), in two parts around the mask of structured output, which may take several turns:
 * the penalties applied, the mask begun; then the draw rsr_sample makes from the logits (the
 * runtime's own draw without presence or frequency penalties, bit for bit: rsr_session_eval_sample's
 * guarantee), and its log-probability and the alternatives' under the penalised distribution. */
static void draw_begin(serve_engine *e, slot *sl) {
    const serve_params *p = &sl->j->p;
    memset(sl->ids, 0, sizeof(int32_t) * (size_t)e->vocab);
    penalise(sl->logits, e->vocab, &sl->sp, p, sl->ids);
    sl->sp.repeat_penalty = 1.0f; /* applied */
    if (p->shape || p->grammar) mask_begin(e, sl, sl->logits);
}
static void draw_end(serve_engine *e, slot *sl) {
    const serve_params *p = &sl->j->p;
    float *lg = sl->logits;
    sl->masking = false, sl->ready = true;
    if (sl->stuck) return;
    serve_logprob *lp = &sl->pending;
    double lse = p->logprobs ? serve_log_softmax(lg, e->vocab, p->top_logprobs, lp) : 0;
    sl->next = api.sample(lg, e->vocab, &sl->sp, &sl->rng, sl->probs, sl->ids);
    if ((p->shape || p->grammar) && sl->next >= 0 && !is_stop(e, sl->next)) /* the reply goes on by its bytes */
        reply_advance(sl, e->piece[sl->next], e->piece_len[sl->next]);
    lp->token = sl->next;
    lp->logprob = p->logprobs && sl->next >= 0 ? (float)(lg[sl->next] - lse) : 0;
}

/* The turn's time for masks (outside the lock): `slice` seconds in all, the slots waiting for one
 * served in turn from where the last turn stopped, so that one costly mask neither holds the
 * others' steps past a share of the turn nor starves another slot's mask. Returns the time taken,
 * which may pass the slice by what one recognizer feed or state copy takes. */
static double masks(serve_engine *e, double slice) {
    double t0 = serve_now(), until = t0 + slice;
    int32_t n = e->ep.slots;
    for (int32_t i = 0; i < n; i++) {
        int32_t k = (e->mask_next + i) % n;
        slot *sl = &e->slots[k];
        if (!sl->j || !sl->masking) continue;
        double left = until - serve_now();
        if (left <= 0 || !mask_run(e, sl, left)) {
            e->mask_next = (k + 1) % n; /* it stopped at the clock: the next slot first next time */
            break;
        }
        draw_end(e, sl);
    }
    return serve_now() - t0;
}

/* ---- speculative decoding (--spec-type ngram-simple, draft, draft-mtp) ----
 * A slot that decodes alone in a turn (the one sequence of the step) verifies an n-gram draft of
 * its text in one evaluation (rsr_session_eval_draft: greedy, the tokens decoding without it
 * gives; sampled, speculative sampling's rule), and the tokens taken beyond the first are given
 * in the next turns without a step (ahead). Where several slots share a step nothing changes, so a
 * speculating slot never slows the others. A request's penalties, logprobs or structured output
 * need the step's own logits: it decodes without speculation. A greedy request's n-gram draft
 * goes through the slot's gate (spec_gate.h): held back while its tokens are taken less often
 * than a drafted row costs relative to a step. */
#define SERVE_DRAFT_MAX 256
#define SPEC_AUTO_KEYS 1024 /* as rsr-run: auto's decode steps attend with Louver from 1024 keys, a draft's densely */

/* The draft for the slot's step q (under the lock), into draft: its length, 0 for none. */
static int32_t spec_draft(serve_engine *e, slot *sl, const rsr_seq *q, int32_t *draft) {
    const serve_job *j = sl->j;
    const float rp = j->p.sampler.repeat_penalty; /* its recent tokens would change within the draft */
    if (!e->spec_ok || !sl->ahead || q->n != 1 || q->output != RSR_OUTPUT_SAMPLE || sl->fed < j->n_ids ||
        (rp > 0 && rp != 1.0f))
        return 0;
    const kv_cache *c = sl->c;
    int32_t room = e->ep.ctx - c->n_hist - 1; /* hist holds q's token already */
    if (e->ep.session.attention == RSR_ATTENTION_AUTO && !e->dense && SPEC_AUTO_KEYS - 1 - c->n_hist < room)
        room = SPEC_AUTO_KEYS - 1 - c->n_hist;
    if (e->ep.session.batch > 0 && e->ep.session.batch - 1 < room) room = e->ep.session.batch - 1;
    /* the request's speculative.n_max and n_min, else the server's; ahead[] holds --draft-max + 1 */
    const int32_t dmax = j->p.spec_n_max >= 0 && j->p.spec_n_max < e->ep.draft_max ? j->p.spec_n_max : e->ep.draft_max;
    const int32_t dmin = j->p.spec_n_min >= 0 ? j->p.spec_n_min : e->ep.draft_min;
    int32_t max = dmax < sl->k_next ? dmax : sl->k_next;
    if (max < dmin) max = dmin;
    if (max > dmax) max = dmax; /* a minimum above the maximum drafts none */
    if (max > room) max = room;
    if (max <= 0) return 0;
    draft[0] = q->tokens[0];
    if (e->ep.mtp) { /* the MTP layer guesses outside the lock (draft_fill), from the slot's session */
        e->dmax = max, e->dmin = dmin;
        e->dpmin = isnan(j->p.spec_p_min) ? e->ep.draft_p_min : j->p.spec_p_min;
        return -1;
    }
    if (e->has_draft) { /* the draft model guesses outside the lock (draft_fill), from a copy of the text */
        memcpy(e->dhist, c->hist, sizeof *e->dhist * (size_t)c->n_hist);
        e->dn = c->n_hist, e->dmax = max, e->dmin = dmin;
        e->dpmin = isnan(j->p.spec_p_min) ? e->ep.draft_p_min : j->p.spec_p_min;
        return -1;
    }
    int32_t k = ngram_draft(c->hist, c->n_hist, draft + 1, max);
    return k < 1 || k < dmin || !spec_gate_open(&sl->gate, draft[1]) ? 0 : k;
}

/* spec_draft's -1 (outside the lock): the draft model's guesses after the slot's text (or the MTP
 * layer's after its session's, which holds the text but draft[0]) into draft + 1;
 * their number, 0 for none (too few, or the draft failed: the step goes on without one). */
static int32_t draft_fill(serve_engine *e, slot *sl, const rsr_seq *q, int32_t *draft) {
    char why[512];
    int32_t k;
    if (e->ep.mtp && api.session_draft_mtp(q->session, draft[0], e->dmax, e->dpmin, draft + 1, &k) != RSR_OK) {
        snprintf(why, sizeof why, "%s", api.session_errmsg(q->session));
        k = -1;
    } else if (!e->ep.mtp)
        k = draft_propose(&e->dm, &sl->dq, e->dhist, e->dn, e->dpmin, draft + 1, e->dmax, why, sizeof why);
    if (k < 0)
        fprintf(stderr, "rsr-serve: the %s: %s; this step decodes without a draft\n",
                e->ep.mtp ? "MTP layer" : "draft model", why);
    return k < 1 || k < e->dmin ? 0 : k;
}

/* The slot's draft verified (outside the lock, as a step): the tokens chosen into sl->ahead. */
static rsr_status spec_step(slot *sl, const rsr_seq *q, const int32_t *draft, int32_t k) {
    int32_t n;
    rsr_status st = api.session_eval_draft(q->session, draft, k + 1, q->sampler, q->rng, sl->ahead, &n);
    sl->ahead_at = 0, sl->ahead_n = st == RSR_OK ? n : 0;
    return st;
}

/* After spec_step (under the lock): the first token chosen goes to sl->next, the drafted ones taken
 * after it wait ahead; the cache holds what was taken; the job's and the server's counts. */
static void spec_taken(serve_engine *e, slot *sl, int32_t k, double seconds) {
    const int32_t a = sl->ahead_n - 1; /* the drafted tokens taken, all in the cache */
    spec_gate_verified(&sl->gate, seconds, k, a);
    kv_cache *c = sl->c;
    if (c->n_hist + a <= e->ep.ctx)
        memcpy(c->hist + c->n_hist, sl->ahead, sizeof *sl->ahead * (size_t)a), c->n_hist += a;
    recent_push(&sl->recent, sl->ahead, a);
    sl->next = sl->ahead[0], sl->ready = true;
    sl->ahead_at = 1; /* ahead[1..a] are given in the next turns; ahead[a] is not in the cache yet */
    sl->ahead_n = a + 1;
    sl->k_next = a == k ? 2 * k : a + 1;
    sl->j->draft_n += k, sl->j->draft_n_accepted += a;
    e->metrics.draft_tokens += k, e->metrics.draft_accepted += a;
}

/* One turn of the engine (under the lock, which it lets go during the step): admission, one step
 * of every busy slot but those waiting for their mask, then time for the masks: a share of the
 * step's (MASK_SHARE) less what earlier turns' masks took past theirs (mask_owed: a feed cannot be
 * cut short), or MASK_ALONE_S when no slot was stepped. Returns the slots served; 0 when there is
 * nothing to do, which admission guarantees means no request is waiting either. */
#define MASK_SHARE 0.2      /* of a step's time, for the masks after it: the others' steps slow by 1.2x */
#define MASK_SLICE_MIN 2e-5 /* seconds: a step faster than 5 times this still leaves the masks this much */
#define MASK_ALONE_S 2.5e-4 /* seconds of mask between two looks at the queue when no slot steps */
static int32_t turn(serve_engine *e) {
    if (e->halted) return 0;
    admit(e);
    e->n_ahead = 0;
    int32_t nq = build_step(e), nm = 0, draft[SERVE_DRAFT_MAX + 1];
    for (int32_t k = 0; k < e->ep.slots; k++) nm += e->slots[k].j && e->slots[k].masking;
    if (!nq && !nm && !e->n_ahead) return 0;
    int32_t nd = nq == 1 && !e->n_ahead && !nm ? spec_draft(e, &e->slots[e->owner[0]], &e->seqs[0], draft) : 0;
    e->in_flight = true;
    pthread_mutex_unlock(&e->lock);
    double t0 = serve_now();
    if (nd < 0) nd = draft_fill(e, &e->slots[e->owner[0]], &e->seqs[0], draft);
    rsr_status st = nd   ? spec_step(&e->slots[e->owner[0]], &e->seqs[0], draft, nd)
                    : nq ? api.batch_eval(e->b, e->seqs, nq)
                         : RSR_OK;
    double t1 = serve_now();
    for (int32_t i = 0; st == RSR_OK && !nd && i < nq; i++) {
        slot *sl = &e->slots[e->owner[i]];
        if (e->seqs[i].output == RSR_OUTPUT_SAMPLE) sl->ready = true;
        if (e->seqs[i].output != RSR_OUTPUT_LOGITS) continue;
        draw_begin(e, sl);
        if (!sl->masking) draw_end(e, sl);
    }
    double share = nq ? MASK_SHARE * (t1 - t0) : MASK_ALONE_S;
    if (share < MASK_SLICE_MIN) share = MASK_SLICE_MIN;
    if (!nq) e->mask_owed = 0; /* no one waits on the masks */
    double took = share > e->mask_owed ? masks(e, share - e->mask_owed) : 0;
    e->mask_owed = e->mask_owed + took > share ? e->mask_owed + took - share : 0;
    double t2 = serve_now();
    pthread_mutex_lock(&e->lock);
    e->in_flight = false;
    if (nd && st == RSR_OK) spec_taken(e, &e->slots[e->owner[0]], nd, t1 - t0);
    if (!nd && nq == 1 && st == RSR_OK && e->spec_ok && e->seqs[0].n == 1 && e->seqs[0].output == RSR_OUTPUT_SAMPLE)
        spec_gate_plain(&e->slots[e->owner[0]].gate, t1 - t0, e->slots[e->owner[0]].next); /* a plain step alone */
    e->metrics.steps += nq > 0, e->metrics.busy_s += t2 - t0, e->metrics.mask_s += e->mask_work;
    e->mask_work = 0;
    for (int32_t i = 0; i < nq; i++) { /* the cache holds what the session holds (a failed step: less) */
        slot *sl = &e->slots[e->owner[i]];
        int32_t pos = api.session_position(sl->c->s);
        sl->pos = pos;
        if (sl->c->n_hist > pos) sl->c->n_hist = pos > 0 ? pos : 0, events_keep(e, sl->c, sl->c->n_hist);
        events_grow(e, sl->c);
    }
    if (nq) events_flush(e);
    if (st != RSR_OK) { /* every request of the step fails, with the runtime's message */
        for (int32_t i = 0; i < nq; i++) {
            slot *sl = &e->slots[e->owner[i]];
            if (!sl->j) continue;
            snprintf(sl->j->err, sizeof sl->j->err, "%s", nd ? api.session_errmsg(sl->c->s) : api.batch_errmsg(e->b));
            finish(e, sl, SERVE_FAILED);
        }
    }
    bool moved = nq > 0 || e->n_ahead > 0;
    for (int32_t k = 0; k < e->ep.slots; k++)
        if (e->slots[k].j && e->slots[k].ready) take(e, &e->slots[k]), moved = true;
    /* generation speed: tokens over the steps' time (not the wall clock's, which counts idle time
     * between requests), over windows of 2 s of steps; kept while idle */
    e->recent_busy += t2 - t0;
    if (e->recent_tokens > 0) e->metrics.recent_tok_s = (double)e->recent_tokens / e->recent_busy;
    if (e->recent_busy >= 2.0) e->recent_busy = 0, e->recent_tokens = 0;
    if (moved) pthread_cond_broadcast(&e->changed);
    return nq + nm + e->n_ahead;
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
    for (int32_t k = 0; e->slots && k < e->ep.slots; k++) {
        slot *sl = &e->slots[k];
        free(sl->recent.ids), free(sl->logits), free(sl->probs), free(sl->ids), free(sl->path), free(sl->ahead);
        gbnf_state_free(sl->gs), gbnf_state_free(sl->gtmp);
        memo_free(&sl->memo);
        if (e->has_draft) draft_seq_free(&e->dm, &sl->dq);
    }
    if (e->dm.m) e->dm.api.model_close(e->dm.m);
    if (e->dm.api.handle) dlclose(e->dm.api.handle);
    free(e->dhist);
    api.batch_free(e->b);
    free(e->piece), free(e->piece_len), free(e->order), free(e->lcp), free(e->outside), free(e->bytes), free(e->off);
    free(e->slots), free(e->caches), free(e->seqs), free(e->owner), free(e->queue), free(e);
}

/* -md: the draft model beside the model, its vocabulary checked, a session of it for every slot */
static bool draft_start(serve_engine *e, const serve_engine_params *ep, char *err, size_t errlen) {
    char why[1024];
    if (draft_model_open(&e->dm, ep->draft_path, ep->draft_threads, &api, e->m, why, sizeof why)) {
        snprintf(err, errlen, "-md %s", why);
        return false;
    }
    if (e->dm.recurrent) {
        snprintf(err, errlen,
                 "-md %s: its gated DeltaNet layers cannot go back to where its guesses part from the text",
                 ep->draft_path);
        return false;
    }
    if (!(e->dhist = malloc(sizeof(int32_t) * (size_t)(ep->ctx + 1)))) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    e->has_draft = true;
    rsr_session_params dp = ep->session;
    for (int32_t k = 0; k < ep->slots; k++)
        if (!draft_seq_init(&e->dm, &e->slots[k].dq, &dp, ep->ctx, why, sizeof why)) {
            snprintf(err, errlen, "-md %s: %s", ep->draft_path, why);
            return false;
        }
    return true;
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
    rsr_tokenizer_info ti = {.eos_token_id = -1, .eot_token_id = -1};
    if (tok) api.tokenizer_get_info(tok, &ti);
    e->stop_ids[0] = info.eos_token_id, e->stop_ids[1] = ti.eos_token_id, e->stop_ids[2] = ti.eot_token_id;
    e->vocab = info.vocab_size;
    e->mask_budget = ep->mask_budget > 0 ? ep->mask_budget : 10.0;
    if (!e->slots || !e->caches || !e->seqs || !e->owner || !e->queue || !token_order(e)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (api.batch_create(m, 0, &e->b) != RSR_OK) {
        snprintf(err, errlen, "%s", api.batch_errmsg(e->b));
        goto fail;
    }
    rsr_session_params sp = ep->session;
    /* a prompt's chunk is one run of a step (rsr_batch_eval cuts a sequence's tokens at its session's
     * batch; a windowed layer keeps W - 1 + batch positions); the batch holds the activations */
    sp.max_positions = ep->ctx, sp.batch = ep->chunk;
    for (int32_t k = 0; k < e->n_caches; k++) {
        if (api.session_create(m, &sp, &e->caches[k].s) != RSR_OK) {
            snprintf(err, errlen, "KV cache %d of %d: %s", k + 1, e->n_caches, api.model_errmsg(m));
            goto fail;
        }
        e->caches[k].index = k;
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
    /* speculation (a gated DeltaNet's state too: the runtime replays a draft's taken tokens) */
    if (!e->ep.draft_max) e->ep.draft_max = 16;
    if (e->ep.draft_max > SERVE_DRAFT_MAX) e->ep.draft_max = SERVE_DRAFT_MAX;
    e->spec_ok = ep->spec, e->dense = info.state_bytes > 0;
    for (int32_t k = 0; e->spec_ok && k < ep->slots; k++)
        if (!(e->slots[k].ahead = malloc(sizeof(int32_t) * (size_t)(e->ep.draft_max + 1)))) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    if (e->spec_ok && ep->draft_path && !draft_start(e, ep, err, errlen)) goto fail;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->changed, NULL);
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
    e->halted = true; /* no more turns, and the one in flight ends before its jobs do: it reads them */
    while (e->in_flight) serve_wait(e, 0.1);
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

bool serve_submit(serve_engine *e, serve_job *j) { return serve_submit_all(e, &j, 1); }

bool serve_submit_all(serve_engine *e, serve_job **js, int32_t n) {
    pthread_mutex_lock(&e->lock);
    int32_t busy = 0, ring = e->ep.slots + e->ep.queue;
    for (int32_t k = 0; k < e->ep.slots; k++) busy += e->slots[k].j != NULL;
    bool ok = !e->draining && busy + e->q_len + n <= ring; /* free slots, or room in the queue */
    if (ok) {
        e->turns++; /* the submission's number, and its first turn */
        for (int32_t i = 0; i < n; i++) {
            js[i]->refs = 2;
            js[i]->request = js[i]->turn = e->turns;
            js[i]->t_arrive = serve_now();
            e->queue[(e->q_head + e->q_len) % ring] = js[i];
            e->q_len++;
        }
        atomic_store_explicit(&e->arrived, true, memory_order_relaxed);
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
int32_t serve_room(const serve_engine *e) { return e->ep.slots + e->ep.queue; }

/* ---- the caches claimed by the slot API and --cache-dir (serve_slots.c) ---- */

/* The cache slot id holds (its last job's, while no other slot took it; else one no slot holds,
 * from its own place on), or cache index when id < 0. */
static kv_cache *cache_of(serve_engine *e, int32_t id, int32_t index) {
    if (id < 0) return &e->caches[index];
    if (e->slots[id].c) return e->slots[id].c;
    for (int32_t k = 0; k < e->n_caches; k++) {
        kv_cache *c = &e->caches[(id + k) % e->n_caches];
        bool held = false;
        for (int32_t m = 0; m < e->ep.slots; m++) held |= e->slots[m].c == c;
        if (!held) return c;
    }
    return &e->caches[id]; /* not reached: a slot without a cache leaves one that no slot holds */
}

serve_cache *serve_cache_claim(serve_engine *e, int32_t id, int32_t index, double wait_s, char *err, size_t errlen) {
    if (id >= e->ep.slots || index >= e->n_caches) {
        snprintf(err, errlen, id >= 0 ? "no slot %d: the server has %d (0 to %d)" : "no cache %d", id >= 0 ? id : index,
                 e->ep.slots, e->ep.slots - 1);
        return NULL;
    }
    const double until = serve_now() + wait_s;
    pthread_mutex_lock(&e->lock);
    kv_cache *c = cache_of(e, id, index);
    while ((c->busy || c->io) && !e->draining && serve_now() < until) {
        serve_wait(e, 0.1);
        c = cache_of(e, id, index);
    }
    bool ok = !c->busy && !c->io && !e->draining;
    if (ok)
        c->io = true;
    else
        snprintf(err, errlen,
                 e->draining ? "the server is shutting down"
                 : c->busy   ? "slot %d is processing a request: try again when it ends"
                             : "slot %d is being saved or restored: try again in a moment",
                 id >= 0 ? id : index);
    pthread_mutex_unlock(&e->lock);
    return ok ? c : NULL;
}

serve_cache *serve_cache_claim_dirty(serve_engine *e, double wait_s) {
    const double until = serve_now() + wait_s;
    kv_cache *found = NULL;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        for (int32_t k = 0; k < e->n_caches && !found; k++)
            if (e->caches[k].dirty && !e->caches[k].busy && !e->caches[k].io) found = &e->caches[k];
        if (found || e->stopping || serve_now() >= until) break;
        serve_wait(e, until - serve_now());
    }
    if (found) found->io = true, found->dirty = false;
    pthread_mutex_unlock(&e->lock);
    return found;
}

rsr_session *serve_cache_session(serve_cache *c) { return c->s; }
int32_t serve_cache_index(const serve_cache *c) { return c->index; }
void serve_cache_tenant(const serve_cache *c, unsigned char out[32]) { memcpy(out, c->tenant, 32); }

void serve_cache_release(serve_engine *e, serve_cache *c, serve_cache_change how, const unsigned char tenant[32]) {
    pthread_mutex_lock(&e->lock);
    if (how == SERVE_CACHE_RESTORED) { /* what the session now holds, the tenant whose it is, most recent */
        events_keep(e, c, 0);
        c->n_hist = api.session_tokens(c->s, c->hist, e->ep.ctx);
        memcpy(c->tenant, tenant, sizeof c->tenant);
        c->used = ++e->admissions;
        events_grow(e, c);
    } else if (how == SERVE_CACHE_ERASED) {
        api.session_reset(c->s);
        c->n_hist = 0;
        events_keep(e, c, 0);
    }
    events_flush(e);
    if (how == SERVE_CACHE_RESTORED || how == SERVE_CACHE_ERASED) c->dirty = true; /* --cache-dir: its new contents */
    for (int32_t k = 0; k < e->ep.slots; k++) /* a slot whose cache this is: what /metrics reads of it */
        if (!e->slots[k].j && e->slots[k].c == c) e->slots[k].pos = c->n_hist;
    c->io = false;
    pthread_cond_broadcast(&e->changed);
    pthread_mutex_unlock(&e->lock);
}

int32_t serve_cache_count(const serve_engine *e) { return e->n_caches; }

void serve_slot_list(serve_engine *e, serve_slot_info *out) {
    pthread_mutex_lock(&e->lock);
    for (int32_t k = 0; k < e->ep.slots; k++) {
        const kv_cache *c = cache_of(e, k, 0);
        out[k] = (serve_slot_info){.processing = e->slots[k].j != NULL, .n_tokens = c->n_hist, .cache = c->index};
        memcpy(out[k].tenant, c->tenant, sizeof c->tenant);
    }
    pthread_mutex_unlock(&e->lock);
}

int32_t serve_slots_count(const serve_engine *e) { return e->ep.slots; }
