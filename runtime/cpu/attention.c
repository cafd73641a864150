/*
 * attention.c — attention over a session's KV cache, dense or Louver, split over threads.
 *
 * The cache is head-major (kv_row() in internal.h): each KV head's keys and values are contiguous,
 * so dense attention streams them.
 * Dense, one token: per KV head, the keys are cut into chunks of ATTN_CHUNK; one work item is one
 * chunk of one KV head with all its query heads (GQA: each key and value row is read once for the
 * group), giving partial softmax states that are merged in chunk order. The chunking depends
 * only on the position, so the result does not depend on the number of threads.
 * Dense, several tokens (a prefill step): one parallel region for all of them; one work item is
 * one token and KV head, which computes the same chunk states (dense_chunk) and folds them in the
 * same order, so each token gets the bits of its one-token call.
 * Louver: one index per layer and KV head; one work item per KV head with all its query heads
 * (one pass over the index's codes bounds the keys for the whole group).
 * Auto (the default): Louver's relative policy at ε = 2^-24 where it pays, dense elsewhere. A
 * prefill step attends densely (exact, and the index would not pay for rows that each see a
 * different set of keys); a decode step of a layer first estimates from a sample of exact scores
 * (auto_dense) whether the index would skip enough keys, and when it would not, attends densely
 * and asks again only AUTO_RECHECK positions later. The index is brought up to date only when it
 * is used, so a context where it never pays costs only the samples.
 * Sliding windows (Gemma3's local layers, rsr_artifact_layer.sliding_window = W): a query at
 * position p attends to positions p − W + 1 .. p, densely, with the chunks of the full range
 * (those wholly before the window skipped); Louver and auto attend densely on such layers. Such a
 * layer's cache is a ring of its last positions (rt_kv_layer in internal.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "attn_kernels.h"
#include "cpu_device.h"
#include "louver_rows.h"

_Static_assert((int)RSR_KV_F32 == ATTN_F32 && (int)RSR_KV_BF16 == ATTN_BF16 && (int)RSR_KV_F16 == ATTN_F16 &&
                   (int)RSR_KV_Q8 == ATTN_Q8,
               "rsr_kv_type names attn_kernels.h's element types");

#define ATTN_CHUNK 256
#define AUTO_EPS 0x1p-24f  /* auto's ε: docs/louver.md ("The default") says why this value */
#define AUTO_MIN_KEYS 1024 /* below this many keys a decode step attends densely */
#define AUTO_SAMPLE 64     /* exact scores per query head behind a layer's decision */
#define AUTO_RECHECK 64    /* positions a layer stays dense once the sample says so */
#define AUTO_FRACTION 0.2  /* Louver's own dense fallback: a fifth of the keys as candidates */

struct rt_attention {
    int32_t nthreads, max_chunks;
    float *part_o;  /* [heads][max_chunks][d] dense partial states */
    float *part_ml; /* [heads][max_chunks][2] */
    float *scratch; /* [nthreads][group * ATTN_CHUNK] */
    float *row_o;   /* [nthreads][2][group][d] running and chunk states of the rows path */
    /* Louver */
    int louver;
    int autopilot;                /* RSR_ATTENTION_AUTO: the decisions above */
    int32_t *dense_until;         /* [layers] auto: a decode step before this position attends densely */
    rsr_louver_policy *policy;    /* [heads], all the same: the group call takes one per query */
    rsr_louver_index **index;     /* [layers][kv_heads] */
    rsr_louver_scratch **lsc;     /* [nthreads] */
    rsr_louver_stats *head_stats; /* [heads] */
    rsr_status *head_status;      /* [heads] */
    /* statistics of the last token, per layer */
    rsr_attention_stats *stats; /* [layers] */
    /* the queries attention used, per layer (rsr_session_last_query) */
    float *last_q;       /* [layers][heads][d] */
    int32_t *last_q_pos; /* [layers] the position they were for; -1: none */
    int32_t stats_pos;   /* position whose stats are recorded; -1: none */
};

static int32_t threads_of(const rsr_session *s) {
    return s->model->num_threads > 0 ? s->model->num_threads : omp_get_max_threads();
}
/* The threads a region runs with now (threads.c), within the scratch made for threads_of's. */
static int32_t team_now(const rsr_session *s) {
    int32_t n = rt_team_of(s->model);
    return n < s->attn->nthreads ? n : s->attn->nthreads;
}

rsr_status rt_attention_init(rsr_session *s, const rsr_session_params *p) {
    const rsr_artifact *a = s->model->a;
    char *err = s->model->err;
    /* auto is dense on a CPU without Louver's VNNI kernels (rt_louver_fast) */
    const int autopilot = p->attention == RSR_ATTENTION_AUTO && rt_louver_fast();
    const int louver = p->attention == RSR_ATTENTION_LOUVER || autopilot;
    rsr_louver_policy pol = {.kind = autopilot ? RSR_LOUVER_RELATIVE : p->louver_policy,
                             .eps = autopilot       ? AUTO_EPS
                                    : p->louver_eps ? p->louver_eps
                                                    : 1e-4f,
                             .tau = p->louver_tau,
                             .budget = p->louver_budget};
    rsr_louver_config cfg = {.head_dim = a->head_dim, .subspaces = p->louver_subspaces, .block_keys = p->louver_block};
    if (louver) {
        if (pol.kind < RSR_LOUVER_RELATIVE || pol.kind > RSR_LOUVER_BUDGET)
            return rt_set_error(err, RSR_ERR_INVALID_ARGUMENT,
                                "louver_policy %d is not relative (0), absolute (1) or budget (2)", pol.kind);
        if (pol.kind == RSR_LOUVER_RELATIVE && !(pol.eps > 0 && pol.eps < 1))
            return rt_set_error(err, RSR_ERR_INVALID_ARGUMENT, "louver_eps %g is not in (0, 1)", (double)pol.eps);
        if (pol.kind == RSR_LOUVER_ABSOLUTE && isnan(pol.tau))
            return rt_set_error(err, RSR_ERR_INVALID_ARGUMENT, "louver_tau is NaN");
        if (pol.kind == RSR_LOUVER_BUDGET && !(pol.budget > 0 && pol.budget <= 1))
            return rt_set_error(err, RSR_ERR_INVALID_ARGUMENT, "louver_budget %g is not in (0, 1]", (double)pol.budget);
        if (rsr_louver_resolve_config(&cfg, &cfg) != RSR_OK)
            return rt_set_error(err, RSR_ERR_INVALID_ARGUMENT,
                                "louver_block %d (a multiple of 16 in [16, 256]) or louver_subspaces %d "
                                "(1..min(head_dim %d, 32)) is out of range",
                                p->louver_block, p->louver_subspaces, a->head_dim);
    }
    struct rt_attention *t = calloc(1, sizeof *t);
    if (!t) return rt_set_error(err, RSR_ERR_OUT_OF_MEMORY, "out of memory creating a session");
    s->attn = t;
    size_t d = (size_t)a->head_dim, heads = (size_t)a->num_heads, group = (size_t)(a->num_heads / a->num_kv_heads);
    t->nthreads = threads_of(s);
    t->max_chunks = (s->max_positions + ATTN_CHUNK - 1) / ATTN_CHUNK;
    t->stats_pos = -1;
    t->part_o = malloc(sizeof(float) * heads * (size_t)t->max_chunks * d);
    t->part_ml = malloc(sizeof(float) * heads * (size_t)t->max_chunks * 2);
    t->scratch = malloc(sizeof(float) * (size_t)t->nthreads * group * ATTN_CHUNK);
    t->row_o = malloc(sizeof(float) * (size_t)t->nthreads * 2 * group * d);
    t->stats = calloc((size_t)rt_layers(a), sizeof *t->stats);
    t->head_stats = calloc(heads, sizeof *t->head_stats);
    t->head_status = calloc(heads, sizeof *t->head_status);
    t->last_q = malloc(sizeof(float) * (size_t)rt_layers(a) * heads * d);
    t->last_q_pos = malloc(sizeof(int32_t) * (size_t)rt_layers(a));
    for (int32_t l = 0; t->last_q_pos && l < rt_layers(a); l++) t->last_q_pos[l] = -1;
    int ok = t->part_o && t->part_ml && t->scratch && t->row_o && t->stats && t->head_stats && t->head_status &&
             t->last_q && t->last_q_pos;
    if (ok && louver) {
        t->louver = 1;
        t->autopilot = autopilot;
        t->dense_until = calloc((size_t)rt_layers(a), sizeof *t->dense_until);
        ok = t->dense_until != NULL;
        t->policy = malloc(sizeof(rsr_louver_policy) * heads);
        for (size_t h = 0; t->policy && h < heads; h++) t->policy[h] = pol;
        size_t n = (size_t)rt_layers(a) * (size_t)a->num_kv_heads;
        t->index = calloc(n, sizeof *t->index);
        t->lsc = calloc((size_t)t->nthreads, sizeof *t->lsc);
        ok = ok && t->index && t->lsc && t->policy;
        for (size_t i = 0; ok && i < n; i++) ok = rsr_louver_create(&cfg, &t->index[i]) == RSR_OK;
        for (int32_t i = 0; ok && i < t->nthreads; i++) ok = rsr_louver_scratch_create(&t->lsc[i]) == RSR_OK;
    }
    if (!ok) return rt_set_error(err, RSR_ERR_OUT_OF_MEMORY, "out of memory creating the attention state of a session");
    return RSR_OK;
}

void rt_attention_free(rsr_session *s) {
    struct rt_attention *t = s->attn;
    if (!t) return;
    const rsr_artifact *a = s->model->a;
    if (t->index)
        for (int32_t i = 0; i < rt_layers(a) * a->num_kv_heads; i++) rsr_louver_free(t->index[i]);
    if (t->lsc)
        for (int32_t i = 0; i < t->nthreads; i++) rsr_louver_scratch_free(t->lsc[i]);
    free(t->index), free(t->lsc), free(t->part_o), free(t->part_ml), free(t->scratch), free(t->row_o), free(t->stats);
    free(t->head_stats), free(t->head_status), free(t->policy), free(t->last_q), free(t->last_q_pos);
    free(t->dense_until);
    free(t);
    s->attn = NULL;
}

void rt_attention_reset(rsr_session *s) {
    struct rt_attention *t = s->attn;
    const rsr_artifact *a = s->model->a;
    if (t->index)
        for (int32_t i = 0; i < rt_layers(a) * a->num_kv_heads; i++) rsr_louver_clear(t->index[i]);
    t->stats_pos = -1;
    for (int32_t l = 0; l < rt_layers(a); l++) t->last_q_pos[l] = -1;
    if (t->dense_until) memset(t->dense_until, 0, sizeof(int32_t) * (size_t)rt_layers(a));
}

/* After rsr_session_truncate: the indexes as the new position implies, and auto's decisions and
 * the statistics as a session that evaluated only those positions has them (auto decides from
 * the keys, so it decides again as that session would). */
void rt_attention_truncate(rsr_session *s) {
    rt_attention_rollback(s);
    struct rt_attention *t = s->attn;
    const rsr_artifact *a = s->model->a;
    t->stats_pos = -1;
    for (int32_t l = 0; l < rt_layers(a); l++) t->last_q_pos[l] = -1;
    if (t->dense_until) memset(t->dense_until, 0, sizeof(int32_t) * (size_t)rt_layers(a));
}

int32_t rt_attention_kind(const rsr_session *s, int32_t **dense_until) {
    const struct rt_attention *t = s->attn;
    *dense_until = t->autopilot ? t->dense_until : NULL;
    return t->autopilot ? 2 : t->louver ? 1 : 0;
}

/* After a failed step: every index back to what the session's position implies. A step grows an
 * index as it attends (the buffer keeps 1..B keys), so after positions [0, pos) an index holds
 * B·⌈(pos − B)/B⌉ keys; blocks a failed step appended hold keys of positions the session does
 * not have, which a later step would write again. */
void rt_attention_rollback(rsr_session *s) {
    struct rt_attention *t = s->attn;
    const rsr_artifact *a = s->model->a;
    if (!t->index) return;
    for (int32_t i = 0; i < rt_layers(a) * a->num_kv_heads; i++) {
        const int32_t B = rsr_louver_get_config(t->index[i])->block_keys;
        rsr_louver_truncate(t->index[i], s->pos > B ? (s->pos - 1) / B * B : 0);
    }
}

/* The first key a query at position n − 1 attends to in layer `layer`: 0, or the start of the
 * layer's sliding window of the last W positions (rsr_artifact_layer.sliding_window). */
static int32_t window_start(const rsr_session *s, int32_t layer, int32_t n) {
    const int32_t W = s->model->a->layer[layer].sliding_window;
    return W > 0 && n > W ? n - W : 0;
}

/* The partial softmax states st[0..gn) of the queries q[0..gn) over chunk c of keys [j0, n) of KV
 * head kvh of layer `layer`: the chunk's keys from j0 on. Every dense path computes its chunks
 * here; a chunk is the same ATTN_CHUNK positions for any j0, so a window only drops keys, and its
 * rows are contiguous in a windowed layer's ring too (kv_rows_at). */
static void dense_chunk(attn_state *st, const float *q, int32_t gn, const rsr_session *s, int32_t layer, int32_t kvh,
                        int32_t c, int32_t j0, int32_t n, float *scratch) {
    int32_t j1 = (c + 1) * ATTN_CHUNK < n ? (c + 1) * ATTN_CHUNK : n, first = c * ATTN_CHUNK > j0 ? c * ATTN_CHUNK : j0;
    for (int32_t g = 0; g < gn; g++) attn_state_clear(&st[g], s->model->a->head_dim);
    attn_dense_range_kv(st, q, gn, kv_rows_at(s, s->k_cache, layer, kvh, first),
                        kv_rows_at(s, s->v_cache, layer, kvh, first), s->model->a->head_dim, 0, j1 - first, scratch,
                        NULL, NULL);
}

/* n: the keys each query head attended to */
static void dense_stats(rsr_session *s, int32_t layer, int32_t n) {
    const int32_t heads = s->model->a->num_heads;
    s->attn->stats[layer] = (rsr_attention_stats){.keys = (int64_t)heads * n,
                                                  .bounded = 0,
                                                  .scanned = (int64_t)heads * n,
                                                  .kept = (int64_t)heads * n,
                                                  .heads = heads,
                                                  .tau_min = -INFINITY,
                                                  .tau_max = -INFINITY,
                                                  .dropped_bound = 0};
}

static void attention_dense(rsr_session *s, int32_t layer, int32_t pos, const float *q, float *out) {
    const rsr_artifact *a = s->model->a;
    struct rt_attention *t = s->attn;
    const int32_t d = a->head_dim, kv_heads = a->num_kv_heads, group = a->num_heads / kv_heads;
    const int32_t n = pos + 1, chunks = (n + ATTN_CHUNK - 1) / ATTN_CHUNK, mc = t->max_chunks;
    const int32_t j0 = window_start(s, layer, n), c0 = j0 / ATTN_CHUNK, nc = chunks - c0; /* chunks c0.. */
#pragma omp parallel num_threads(team_now(s))
    {
        float *scratch = t->scratch + (size_t)omp_get_thread_num() * (size_t)group * ATTN_CHUNK;
#pragma omp for schedule(dynamic, 1)
        for (int32_t item = 0; item < kv_heads * nc; item++) {
            int32_t kvh = item / nc, c = c0 + item % nc;
            for (int32_t g0 = 0; g0 < group; g0 += ATTN_GROUP_MAX) { /* more query heads per KV head: in slices */
                attn_state st[ATTN_GROUP_MAX];
                int32_t gn = group - g0 < ATTN_GROUP_MAX ? group - g0 : ATTN_GROUP_MAX, h0 = kvh * group + g0;
                for (int32_t g = 0; g < gn; g++)
                    st[g].o = t->part_o + ((size_t)(h0 + g) * (size_t)mc + (size_t)c) * (size_t)d;
                dense_chunk(st, q + (size_t)h0 * (size_t)d, gn, s, layer, kvh, c, j0, n, scratch);
                for (int32_t g = 0; g < gn; g++) {
                    float *ml = t->part_ml + ((size_t)(h0 + g) * (size_t)mc + (size_t)c) * 2;
                    ml[0] = st[g].m, ml[1] = st[g].l;
                }
            }
        }
#pragma omp for schedule(static)
        for (int32_t h = 0; h < a->num_heads; h++) {
            attn_merge_chunks(t->part_o + ((size_t)h * (size_t)mc + (size_t)c0) * (size_t)d,
                              t->part_ml + ((size_t)h * (size_t)mc + (size_t)c0) * 2, nc, d,
                              out + (size_t)h * (size_t)d);
        }
    }
    dense_stats(s, layer, n - j0);
}

/* Dense attention of the tokens at positions pos0..pos0+n-1 in one parallel region. A work item
 * (token, KV head) computes the chunks of attention_dense one after the other and folds each
 * into a running state as attn_merge_chunks does, in chunk order: the same bits, without a
 * region (and its barriers) per token. */
static void attention_dense_rows(rsr_session *s, int32_t layer, int32_t pos0, int32_t n, const float *q, float *out) {
    const rsr_artifact *a = s->model->a;
    struct rt_attention *t = s->attn;
    const int32_t d = a->head_dim, kv_heads = a->num_kv_heads, group = a->num_heads / kv_heads;
    const size_t q_out = (size_t)a->num_heads * (size_t)d;
#pragma omp parallel num_threads(team_now(s))
    {
        const int tid = omp_get_thread_num();
        float *scratch = t->scratch + (size_t)tid * (size_t)group * ATTN_CHUNK;
        float *run_o = t->row_o + (size_t)tid * 2 * (size_t)group * (size_t)d,
              *chunk_o = run_o + (size_t)group * (size_t)d;
#pragma omp for schedule(dynamic, 1)
        for (int32_t item = 0; item < n * kv_heads; item++) { /* KV head by KV head: its rows stay in cache */
            int32_t kvh = item / n, tok = item % n, keys = pos0 + tok + 1;
            int32_t chunks = (keys + ATTN_CHUNK - 1) / ATTN_CHUNK, j0 = window_start(s, layer, keys);
            for (int32_t g0 = 0; g0 < group; g0 += ATTN_GROUP_MAX) {
                attn_state run[ATTN_GROUP_MAX], part[ATTN_GROUP_MAX];
                int32_t gn = group - g0 < ATTN_GROUP_MAX ? group - g0 : ATTN_GROUP_MAX, h0 = kvh * group + g0;
                const float *qh = q + (size_t)tok * q_out + (size_t)h0 * (size_t)d;
                for (int32_t g = 0; g < gn; g++) {
                    run[g].o = run_o + (size_t)g * (size_t)d;
                    part[g].o = chunk_o + (size_t)g * (size_t)d;
                }
                dense_chunk(run, qh, gn, s, layer, kvh, j0 / ATTN_CHUNK, j0, keys, scratch);
                for (int32_t c = j0 / ATTN_CHUNK + 1; c < chunks; c++) {
                    dense_chunk(part, qh, gn, s, layer, kvh, c, j0, keys, scratch);
                    for (int32_t g = 0; g < gn; g++) attn_state_merge(&run[g], &part[g], d);
                }
                for (int32_t g = 0; g < gn; g++)
                    attn_state_finish(&run[g], out + (size_t)tok * q_out + (size_t)(h0 + g) * (size_t)d, d);
            }
        }
    }
    dense_stats(s, layer, pos0 + n - window_start(s, layer, pos0 + n));
}

/* Indexes the keys of layer `layer` until at most B of the first n are left in the buffer (1..B
 * keys, the newest included): one block per KV head at a time, the heads in parallel. */
static rsr_status grow_index(rsr_session *s, int32_t layer, int32_t n) {
    struct rt_attention *t = s->attn;
    const int32_t kv_heads = s->model->a->num_kv_heads;
    rsr_louver_index **ix = t->index + (size_t)layer * (size_t)kv_heads;
    const int32_t B = rsr_louver_get_config(ix[0])->block_keys;
    while (n - rsr_louver_size(ix[0]) > B) {
        int status = RSR_OK;
#pragma omp parallel for schedule(static) num_threads(team_now(s)) reduction(max : status)
        for (int32_t kvh = 0; kvh < kv_heads; kvh++) {
            int32_t at = rsr_louver_size(ix[kvh]);
            int st = louver_append_rows(ix[kvh], attn_rows_from(kv_rows(s, s->k_cache, layer, kvh), at));
            if (st > status) status = st;
        }
        if (status != RSR_OK)
            return rt_set_error(s->err, (rsr_status)status, "layer %d: cannot grow the Louver index to %d keys: %s",
                                layer, rsr_louver_size(ix[0]) + B, rsr_status_to_string((rsr_status)status));
    }
    return RSR_OK;
}

/* Auto's decision for a decode step of layer `layer` at position pos (queries q): 1 to attend
 * densely. Per query head, the exact scores of AUTO_SAMPLE keys (evenly spread, the newest
 * included) give L, a lower bound of its largest score, and τ = L − √d·ln(1/ε) below Louver's
 * (whose L is at least as high); when a fifth or more of every head's sample reaches τ, Louver
 * would send the layer to its dense fallback after paying for its pass, so the layer is dense now
 * and for the next AUTO_RECHECK positions. Exactness does not depend on it: either path is exact
 * to the certified bound (dense: exactly). */
static int auto_dense(rsr_session *s, int32_t layer, int32_t pos, const float *q) {
    struct rt_attention *t = s->attn;
    const rsr_artifact *a = s->model->a;
    const int32_t n = pos + 1, d = a->head_dim, group = a->num_heads / a->num_kv_heads;
    if (n < AUTO_MIN_KEYS || pos < t->dense_until[layer]) return 1;
    const double gap = sqrt((double)d) * log(1.0 / (double)AUTO_EPS);
    for (int32_t h = 0; h < a->num_heads; h++) {
        const attn_rows k = kv_rows(s, s->k_cache, layer, h / group);
        const float *qh = q + (size_t)h * (size_t)d;
        float sc[AUTO_SAMPLE], L = -INFINITY;
        for (int32_t i = 0; i < AUTO_SAMPLE; i++) {
            int64_t j = i < AUTO_SAMPLE / 4 ? n - 1 - i : (int64_t)(i - AUTO_SAMPLE / 4) * n / (AUTO_SAMPLE * 3 / 4);
            sc[i] = attn_dot_kv(qh, k, j, d);
            if (sc[i] > L) L = sc[i];
        }
        int32_t above = 0;
        for (int32_t i = 0; i < AUTO_SAMPLE; i++) above += sc[i] >= L - gap;
        if (!(above >= AUTO_FRACTION * AUTO_SAMPLE)) return 0; /* this head's index would pay (or NaN) */
    }
    t->dense_until[layer] = pos + AUTO_RECHECK;
    return 1;
}

/* Louver attention of rows positions pos0 .. pos0 + rows − 1 (queries q, rows apart by q_out).
 * The index grows by a block whenever the buffer would exceed B keys, so rows are taken in runs
 * over which it does not change; the (row, KV head) items of a run go to the threads together,
 * each row getting exactly what it would get alone. The statistics are the last row's. */
static rsr_status attention_louver(rsr_session *s, int32_t layer, int32_t pos0, int32_t rows, const float *q,
                                   float *out) {
    const rsr_artifact *a = s->model->a;
    struct rt_attention *t = s->attn;
    const int32_t d = a->head_dim, kv_heads = a->num_kv_heads, group = a->num_heads / kv_heads;
    const size_t q_out = (size_t)a->num_heads * (size_t)d;
    rsr_louver_index **ix = t->index + (size_t)layer * (size_t)kv_heads;
    const int32_t B = rsr_louver_get_config(ix[0])->block_keys;
    for (int32_t h = 0; h < a->num_heads; h++) t->head_status[h] = RSR_OK;
    for (int32_t i = 0; i < rows;) {
        rsr_status status = grow_index(s, layer, pos0 + i + 1);
        if (status != RSR_OK) return status;
        /* the rows r with pos0 + r + 1 − size ≤ B */
        const int32_t end = rsr_louver_size(ix[0]) + B - pos0, i1 = end < rows ? end : rows, nr = i1 - i;
#pragma omp parallel for schedule(dynamic, 1) num_threads(team_now(s))
        for (int32_t item = 0; item < kv_heads * nr; item++) {
            const int32_t kvh = item / nr, r = i + item % nr, h0 = kvh * group;
            const float *qr = q + (size_t)r * q_out;
            float *outr = out + (size_t)r * q_out;
            rsr_louver_stats other[RSR_LOUVER_GROUP_MAX];
            for (int32_t g0 = 0; g0 < group; g0 += RSR_LOUVER_GROUP_MAX) {
                int32_t gn = group - g0 < RSR_LOUVER_GROUP_MAX ? group - g0 : RSR_LOUVER_GROUP_MAX, h = h0 + g0;
                rsr_status hs = louver_attend_rows(
                    ix[kvh], qr + (size_t)h * (size_t)d, gn, kv_rows(s, s->k_cache, layer, kvh),
                    kv_rows(s, s->v_cache, layer, kvh), pos0 + r + 1, &t->policy[h], t->lsc[omp_get_thread_num()],
                    outr + (size_t)h * (size_t)d, r == rows - 1 ? &t->head_stats[h] : other);
                if (hs != RSR_OK) {
#pragma omp critical
                    for (int32_t g = 0; g < gn; g++) t->head_status[h + g] = hs;
                    break;
                }
            }
        }
        i = i1;
    }
    const int32_t n = pos0 + rows;
    rsr_attention_stats *st = &t->stats[layer];
    *st = (rsr_attention_stats){.heads = a->num_heads, .tau_min = INFINITY, .tau_max = -INFINITY};
    for (int32_t h = 0; h < a->num_heads; h++) {
        if (t->head_status[h] != RSR_OK)
            return rt_set_error(s->err, t->head_status[h],
                                "layer %d head %d: Louver attention at positions %d..%d failed: %s", layer, h, pos0,
                                n - 1, rsr_status_to_string(t->head_status[h]));
        const rsr_louver_stats *hs = &t->head_stats[h];
        st->keys += hs->keys, st->bounded += hs->bounded, st->scanned += hs->scanned, st->kept += hs->kept;
        st->dense_fallbacks += hs->dense != 0;
        st->dense_overflow += hs->dense == RSR_LOUVER_DENSE_OVERFLOW;
        st->tau_min = fminf(st->tau_min, hs->tau), st->tau_max = fmaxf(st->tau_max, hs->tau);
        st->dropped_bound = fmax(st->dropped_bound, hs->dropped_bound);
    }
    return RSR_OK;
}

rsr_status rt_attention_rows(rsr_session *s, int32_t layer, int32_t pos0, int32_t n, const float *q, float *out) {
    rsr_status st = RSR_OK;
    struct rt_attention *t = s->attn;
    const rsr_artifact *a = s->model->a;
    const size_t q_out = (size_t)a->num_heads * (size_t)a->head_dim;
    /* a windowed layer attends densely: Louver's index holds every key, and its bounds know no window */
    const int windowed = a->layer[layer].sliding_window > 0;
    if (t->louver && !windowed && !(t->autopilot && (n > 1 || auto_dense(s, layer, pos0, q)))) {
        st = attention_louver(s, layer, pos0, n, q, out);
        if (t->autopilot && pos0 < s->louver_from) /* a prompt step there would have been dense */
            s->louver_from = pos0;
    } else {
        if (n == 1)
            attention_dense(s, layer, pos0, q, out);
        else
            attention_dense_rows(s, layer, pos0, n, q, out);
        if ((t->autopilot && n == 1 && pos0 + 1 >= AUTO_MIN_KEYS) || (t->louver && windowed)) /* dense: the layer */
            t->stats[layer].dense_fallbacks = a->num_heads;
    }
    memcpy(t->last_q + (size_t)layer * q_out, q + (size_t)(n - 1) * q_out, sizeof(float) * q_out);
    t->last_q_pos[layer] = pos0 + n - 1;
    t->stats_pos = pos0 + n - 1;
    return st;
}

/* ---- what the session API reads of attention (session.c checks the arguments first) ---- */

rsr_status rt_attention_stats(const rsr_session *s, int32_t layer, rsr_attention_stats *out) {
    if (s->attn->stats_pos < 0)
        return rt_set_error(((rsr_session *)s)->err, RSR_ERR_INVALID_ARGUMENT, "no token has been evaluated yet");
    *out = s->attn->stats[layer];
    return RSR_OK;
}

rsr_status rt_kv_read(const rsr_session *s, int32_t layer, int32_t kv_head, int32_t first, int32_t count, float *keys,
                      float *values) {
    const int32_t oldest = kv_oldest(s, layer);
    if (first < oldest || count < 0 || (int64_t)first + count > s->pos)
        return rt_set_error(((rsr_session *)s)->err, RSR_ERR_INVALID_ARGUMENT,
                            "positions [%d, %lld) are not all in the cache: layer %d holds positions [%d, %d)%s", first,
                            (long long)first + count, layer, oldest, s->pos,
                            oldest ? " (a windowed layer keeps its last positions only)" : "");
    if (!keys && !values)
        return rt_set_error(((rsr_session *)s)->err, RSR_ERR_INVALID_ARGUMENT,
                            "nowhere to read into: keys and values are both NULL");
    const int32_t d = s->model->a->head_dim;
    for (int32_t j = 0; j < count; j++) {
        if (keys) attn_widen_row(kv_rows_at(s, s->k_cache, layer, kv_head, first + j), 0, d, keys + (size_t)j * d);
        if (values) attn_widen_row(kv_rows_at(s, s->v_cache, layer, kv_head, first + j), 0, d, values + (size_t)j * d);
    }
    return RSR_OK;
}

rsr_status rt_last_query(const rsr_session *s, int32_t layer, float *q) {
    const rsr_artifact *a = s->model->a;
    if (s->pos == 0 || s->attn->last_q_pos[layer] != s->pos - 1)
        return rt_set_error(((rsr_session *)s)->err, RSR_ERR_INVALID_ARGUMENT,
                            "no query at layer %d for the last position: no token has been evaluated since the "
                            "session was created or reset, or the last evaluation failed",
                            layer);
    const size_t q_out = (size_t)a->num_heads * (size_t)a->head_dim;
    memcpy(q, s->attn->last_q + (size_t)layer * q_out, sizeof(float) * q_out);
    return RSR_OK;
}
