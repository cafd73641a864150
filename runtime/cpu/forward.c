/*
 * forward.c — the CPU device (rt_device_cpu): its sessions, the KV cache and a step's forward
 * pass (the session API in front of every device is session.c). The arithmetic follows docs/numerics.md to
 * the letter (fp32; what "exact" is relative to is said there), so that an independent
 * reference agrees with it closely.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <omp.h>

#include "attn_kernels.h"
#include "family.h"
#include "fold.h"
#include "cpu_device.h"
#include "rsr_numerics.h"

/*
 * The KV cache (per layer [kv_heads][rows][head_dim], rt_kv_layer and kv_row in internal.h) in
 * transparent huge pages where the kernel gives them on request, with the first RSR_CACHE_TOUCHED
 * rows of every head touched here, so that the token path takes no page faults: first touches in
 * the middle of a prefill cost 0.05–0.5 s of a 512-token prefill of the 2B-4T shape (measured on
 * the Zen 5 VM of docs/history/performance-log.md; up to 16% of it, varying with how readily the kernel finds
 * free 2 MB pages), and 0.01–0.15 s here. Rows past that are touched when first written, so a
 * long max_positions commits memory only as used.
 */
#define RSR_CACHE_TOUCHED 4096

/* Each layer's rows: every position on a global layer, a ring on a windowed one (rt_kv_layer);
 * returns the rows of all layers and KV heads together. */
static size_t plan_cache(rsr_session *s) {
    const rsr_artifact *a = s->model->a;
    size_t total = 0;
    for (int32_t l = 0; l < rt_layers(a); l++) { /* the MTP layer's too, touched only when it follows (mtp) */
        rt_kv_layer *L = &s->kv_layer[l];
        const int32_t W = a->layer[l].sliding_window, ring = W > 0 ? W - 1 + s->batch : 0;
        *L = (rt_kv_layer){.first = total, .rows = s->max_positions};
        if (ring && (int64_t)ring + W - 1 < s->max_positions) L->ring = ring, L->rows = ring + W - 1;
        if (a->layer[l].kind == RSR_LAYER_DELTANET) L->rows = 0; /* a recurrent state instead (dn_state) */
        if (l >= a->num_layers && !s->mtp) L->rows = 0;          /* an MTP layer no step runs */
        total += (size_t)a->num_kv_heads * (size_t)L->rows;
    }
    return total;
}

static uint8_t *alloc_cache(const rsr_session *s, size_t rows) {
    const size_t huge = (size_t)2 << 20, row = s->kv_bytes;
    size_t bytes = (row * rows + huge - 1) / huge * huge;
    void *p = NULL;
    if (!rows) /* no attention layer (a Qwen3.5 cut of DeltaNet layers only): a cache of nothing */
        return posix_memalign(&p, 64, 64) == 0 ? p : NULL;
    if (posix_memalign(&p, huge, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice: without it, 4 KB pages */
#endif
    const rsr_artifact *a = s->model->a;
    for (int32_t l = 0; l < rt_layers(a); l++) {
        const rt_kv_layer *L = &s->kv_layer[l];
        size_t touched = row * (size_t)(L->rows < RSR_CACHE_TOUCHED ? L->rows : RSR_CACHE_TOUCHED);
        for (int32_t h = 0; h < a->num_kv_heads; h++)
            memset((char *)p + (L->first + (size_t)h * (size_t)L->rows) * row, 0, touched);
    }
    return p;
}

int32_t rt_kv_truncate_floor(const rsr_session *s, int32_t *layer, int32_t *kept) {
    int32_t floor = 1;
    for (int32_t l = 0; s->kv_layer && l < s->model->a->num_layers; l++) {
        const int32_t oldest = kv_oldest(s, l), need = oldest ? oldest + s->kv_layer[l].rows - s->kv_layer[l].ring : 1;
        if (need > floor) floor = need, *layer = l, *kept = s->kv_layer[l].ring;
    }
    return floor;
}

#define RT_GROUPED_ACC_BYTES ((size_t)16 << 20) /* a grouped model's integer sums held at once (rt_work_init) */
/* A thread's sums of one call of a matrix whose sums go by blocks (rows_grouped): in L2 beside the
 * call's weights and x on every CPU it runs on (Zen 3: 512 KB), until they are converted. */
#define RT_SUMS_BYTES ((size_t)256 << 10)
/* Tokens of one such call: a tile of the batched kernels (8 in the zmm rows form; fewer run a token
 * at a time, the weights' codes decoded for each), and no more: each call computes its tokens' Σx
 * per unit again, so that more tokens a call, fewer blocks (SB) share it. On the 27B shape's
 * gate and up, 16 tokens a call left one block a call and half of the kernels' time in Σx; 8 and
 * 3 blocks took 39% less (1 thread, AVX-512 VNNI). */
#define RT_SUMS_TOKENS 8
/* Parts of a by-rows product each thread takes on average, taken as threads come free (schedule
 * dynamic): with one part each, a thread whose core is slowed leaves the others waiting at the
 * product's end (a tenth of a 2-thread decode of the 27B cut was libgomp's wait). */
#define RT_ROW_PARTS 4

static int32_t max3(int32_t a, int32_t b, int32_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

/* ---- the activations of a step ---- */

/* rt_work's buffers of a mixture of experts, for B rows (after xq_stride and xd_stride are set). */
static rsr_status moe_work_init(rt_work *w, const rsr_model *m, size_t B) {
    const size_t K = (size_t)m->max_experts_used, E = (size_t)m->max_experts, H = (size_t)m->a->hidden;
    w->moe_xq = malloc(B * (size_t)w->xq_stride);
    w->moe_xs = malloc(sizeof(float) * B);
    w->moe_xd = malloc(sizeof(float) * B * (size_t)(w->xd_stride ? w->xd_stride : 1));
    w->moe_p = malloc(sizeof(float) * B * E);
    w->moe_w = malloc(sizeof(float) * B * K);
    w->moe_pick = malloc(sizeof(int32_t) * B * K);
    w->moe_rows = malloc(sizeof(int32_t) * B * 2);
    w->moe_out = malloc(sizeof(float) * B * H);
    w->moe_shared = malloc(sizeof(float) * B);
    return w->moe_xq && w->moe_xs && w->moe_xd && w->moe_p && w->moe_w && w->moe_pick && w->moe_rows && w->moe_out &&
                   w->moe_shared
               ? RSR_OK
               : RSR_ERR_OUT_OF_MEMORY;
}

/* rt_work's buffers of Qwen3.5's layers for B rows: those of its DeltaNet layers, of its gated
 * attention; none in another model. */
static bool any_attn_gate(const rsr_artifact *a) {
    for (int32_t l = 0; l < rt_layers(a); l++) /* the MTP layer's too: it may be the only attention layer */
        if (a->layer[l].attn_gate) return true;
    return false;
}
static rsr_status qwen35_work_init(rt_work *w, const rsr_model *m, size_t B) {
    const size_t q_out = (size_t)m->a->num_heads * (size_t)m->a->head_dim;
    if (m->dn_conv_dim) {
        w->dn_qkv = malloc(sizeof(float) * B * (size_t)m->dn_conv_dim);
        w->dn_z = malloc(sizeof(float) * B * (size_t)m->dn_value_dim);
        w->dn_beta = malloc(sizeof(float) * B * (size_t)m->dn_v_heads);
        w->dn_g = malloc(sizeof(float) * B * (size_t)m->dn_v_heads);
        if (!w->dn_qkv || !w->dn_z || !w->dn_beta || !w->dn_g) return RSR_ERR_OUT_OF_MEMORY;
    }
    if (any_attn_gate(m->a)) {
        w->qg = malloc(sizeof(float) * B * 2 * q_out);
        w->gate_q = malloc(sizeof(float) * B * q_out);
        if (!w->qg || !w->gate_q) return RSR_ERR_OUT_OF_MEMORY;
    }
    return RSR_OK;
}

rsr_status rt_work_init(rt_work *w, const rsr_model *m, int32_t rows) {
    const rsr_artifact *a = m->a;
    size_t q_out = (size_t)a->num_heads * (size_t)a->head_dim, kv_out = (size_t)a->num_kv_heads * (size_t)a->head_dim;
    size_t widest = (size_t)max3(a->hidden, (int32_t)q_out, a->intermediate), B = (size_t)rows;
    if ((size_t)m->dn_value_dim > widest) widest = (size_t)m->dn_value_dim; /* a DeltaNet's output projection */
    if (a->mtp_layers && 2 * (size_t)a->hidden > widest) widest = 2 * (size_t)a->hidden; /* eh_proj's input */
    const size_t att = q_out > (size_t)m->dn_value_dim ? q_out : (size_t)m->dn_value_dim;
    /* a row of xq: the codes, padded, then each unit's Σx when activations go by blocks (rsr_x_row) */
    *w = (rt_work){.rows = rows, .widest = (int32_t)widest, .xq_stride = rsr_x_row((int32_t)widest, a->act_block)};
    w->h = malloc(sizeof(float) * B * (size_t)a->hidden);
    w->xn = malloc(sizeof(float) * B * widest);
    w->tmp = malloc(sizeof(float) * B * widest);
    w->q = malloc(sizeof(float) * B * q_out);
    w->k = malloc(sizeof(float) * B * kv_out);
    w->v = malloc(sizeof(float) * B * kv_out);
    w->att = malloc(sizeof(float) * B * att);
    w->gate = malloc(sizeof(float) * B * (size_t)a->intermediate);
    w->up = malloc(sizeof(float) * B * (size_t)a->intermediate);
    w->xq = calloc(B, (size_t)w->xq_stride);
    w->xs = malloc(sizeof(float) * B);
    if (a->act_block > 0) {
        w->xd_stride = (int32_t)((widest + (size_t)a->act_block - 1) / (size_t)a->act_block);
        w->xd = malloc(sizeof(float) * B * (size_t)w->xd_stride);
    }
    if (a->mtp_layers) {
        w->mtp_save = malloc(sizeof(float) * B * (size_t)a->hidden);
        w->mtp_hn = malloc(sizeof(float) * B * (size_t)a->hidden);
        if (!w->mtp_save || !w->mtp_hn) {
            rt_work_free(w);
            return RSR_ERR_OUT_OF_MEMORY;
        }
    }
    w->rope = malloc(sizeof(float) * B * (size_t)a->head_dim);
    if (m->rope_theta2 != 0) w->rope2 = malloc(sizeof(float) * B * (size_t)a->head_dim);
    if (qwen35_work_init(w, m, B) != RSR_OK || (m->max_experts && moe_work_init(w, m, B) != RSR_OK)) {
        rt_work_free(w);
        return RSR_ERR_OUT_OF_MEMORY;
    }
    w->acc_stride = 3 * m->max_rows; /* q, k and v (or gate and up) side by side */
    /* a grouped model's sums are units · planes per row (40 MB a token for an 8B model's down):
     * its steps go through them RT_GROUPED_ACC_BYTES at a time (bitlinear_grouped) */
    size_t per_token = sizeof(int32_t) * (size_t)w->acc_stride, cap = RT_GROUPED_ACC_BYTES / per_token;
    w->acc_rows = m->grouped && cap < B ? (int32_t)(cap ? cap : 1) : rows;
    w->acc = malloc(per_token * (size_t)w->acc_rows);
    if (m->max_block_sums) { /* a thread's sums of a call by blocks (rows_grouped): RT_SUMS_TOKENS of one block at least */
        w->sums_each = RT_SUMS_BYTES / sizeof(int32_t);
        if (w->sums_each < RT_SUMS_TOKENS * (size_t)m->max_block_sums)
            w->sums_each = RT_SUMS_TOKENS * (size_t)m->max_block_sums;
        w->sums = malloc(sizeof(int32_t) * w->sums_each * (size_t)(m->num_threads > 0 ? m->num_threads : 1));
        if (!w->sums) {
            rt_work_free(w);
            return RSR_ERR_OUT_OF_MEMORY;
        }
    }
    if (!w->h || !w->xn || !w->tmp || !w->q || !w->k || !w->v || !w->att || !w->gate || !w->up || !w->xq || !w->xs ||
        (a->act_block > 0 && !w->xd) || !w->rope || (m->rope_theta2 != 0 && !w->rope2) || !w->acc) {
        rt_work_free(w);
        return RSR_ERR_OUT_OF_MEMORY;
    }
    return RSR_OK;
}

/* Widens *w to at least rows rows (its contents are not kept); on failure *w has one row again. */
rsr_status rt_work_reserve(rt_work *w, const rsr_model *m, int32_t rows) {
    if (rows <= w->rows) return RSR_OK;
    rt_work_free(w);
    if (rt_work_init(w, m, rows) == RSR_OK) return RSR_OK;
    rt_work_init(w, m, 1);
    return RSR_ERR_OUT_OF_MEMORY;
}

void rt_work_free(rt_work *w) {
    free(w->h), free(w->xn), free(w->tmp), free(w->q), free(w->k), free(w->v), free(w->att), free(w->gate);
    free(w->up), free(w->xq), free(w->xs), free(w->xd), free(w->rope), free(w->rope2), free(w->acc);
    free(w->sums);
    free(w->moe_xq), free(w->moe_xs), free(w->moe_xd), free(w->moe_p), free(w->moe_w), free(w->moe_pick),
        free(w->moe_rows);
    free(w->moe_out), free(w->moe_shared);
    free(w->dn_qkv), free(w->dn_z), free(w->dn_beta), free(w->dn_g), free(w->qg), free(w->gate_q);
    free(w->mtp_save), free(w->mtp_hn);
    *w = (rt_work){0};
}

/* ---- the CPU device's sessions ---- */

static rsr_status cpu_session_init(rsr_session *s, const rsr_session_params *p) {
    rsr_model *m = s->model;
    const rsr_artifact *a = m->a;
    rsr_session_params dense = *p;
    attn_family_choose();     /* the attention kernels' family, once, before any step */
    if (m->dn_state_floats) { /* Qwen3.5: a recurrent state; dense attention on its attention layers */
        if (p->attention == RSR_ATTENTION_LOUVER)
            return rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT,
                                "attention louver: this model has gated DeltaNet layers, whose recurrent state cannot "
                                "go back or be indexed; its attention layers attend densely (auto and dense do so)");
        dense.attention = RSR_ATTENTION_DENSE, p = &dense;
        s->dn_state = calloc(m->dn_state_floats, sizeof(float));
        s->dn_ckpt_cap = p->checkpoints > 0 ? p->checkpoints : 1, s->dn_ckpt_w = -1;
        s->dn_ckpt = calloc((size_t)s->dn_ckpt_cap, sizeof *s->dn_ckpt);
        s->dn_ckpt_pos = malloc(sizeof *s->dn_ckpt_pos * (size_t)s->dn_ckpt_cap);
        if (!s->dn_state || !s->dn_ckpt || !s->dn_ckpt_pos)
            return rt_set_error(m->err, RSR_ERR_OUT_OF_MEMORY, "out of memory creating a session");
        for (int32_t i = 0; i < s->dn_ckpt_cap; i++) s->dn_ckpt_pos[i] = -1;
    }
    s->kv_type = p->kv_type;
    s->kv_bytes = attn_row_bytes(p->kv_type, a->head_dim);
    s->kv_layer = malloc(sizeof(rt_kv_layer) * (size_t)rt_layers(a));
    if (!s->kv_layer) return rt_set_error(m->err, RSR_ERR_OUT_OF_MEMORY, "out of memory creating a session");
    const size_t rows = plan_cache(s), cache = rows * s->kv_bytes;
    s->k_cache = alloc_cache(s, rows);
    s->v_cache = alloc_cache(s, rows);
    s->mtp_h_cap =
        RSR_BATCH_MAX + 1; /* a verification's rows (a draft of at most 256 and its token), whatever the batch */
    if (s->mtp && !(s->mtp_h = malloc(sizeof(float) * (size_t)s->mtp_h_cap * (size_t)a->hidden)))
        return rt_set_error(m->err, RSR_ERR_OUT_OF_MEMORY, "out of memory creating a session");
    /* the activations of one row; eval_steps widens them to the steps a call takes */
    if (!s->k_cache || !s->v_cache || rt_work_init(&s->work, m, 1) != RSR_OK)
        return rt_set_error(m->err, RSR_ERR_OUT_OF_MEMORY,
                            "out of memory creating a session of %d positions (a KV cache of %zu MiB)",
                            s->max_positions, (2 * cache) >> 20);
    return rt_attention_init(s, p);
}

static void cpu_session_free(rsr_session *s) {
    free(s->mtp_h);
    free(s->k_cache), free(s->v_cache), free(s->kv_layer), free(s->dn_state), free(s->dn_draft_snap),
        free(s->dn_draft_in);
    for (int32_t i = 0; s->dn_ckpt && i < s->dn_ckpt_cap; i++) free(s->dn_ckpt[i]);
    free(s->dn_ckpt), free(s->dn_ckpt_pos);
    rt_work_free(&s->work);
    rt_lm_head_free(s);
    rt_attention_free(s);
}

/* What a step's rows leave for the caller: after the step of tokens [i, i + c) of n, their
 * residual stream in s->work.h (rsr_session_embed pools it); a status other than RSR_OK ends the
 * evaluation with it. */
typedef rsr_status (*step_fn)(rsr_session *s, int32_t i, int32_t c, int32_t n, const rt_head_request *h);

/* Steps of at most s->batch tokens, each handed to after (when given); with head, the last leaves
 * the input of the LM head in row 0 of s->work.xn. The activations grow to the widest step asked
 * for (a session that only decodes keeps one row: 220 KB on the 2B-4T shape, against 56 MB for
 * RSR_BATCH_MAX rows). */
static rsr_status eval_steps(rsr_session *s, const int32_t *tokens, int32_t n, bool head, step_fn after,
                             const rt_head_request *h) {
    int32_t rows = n < s->batch ? n : s->batch;
    if (rt_work_reserve(&s->work, s->model, rows) != RSR_OK)
        return rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for the activations of %d tokens", rows);
    for (int32_t i = 0; i < n; i += s->batch) {
        int32_t c = n - i < s->batch ? n - i : s->batch;
        rsr_status st = rt_forward(s->model, &s->work, tokens + i, &(rt_run){s, 0, c}, 1, c, head && i + c == n);
        if (st == RSR_OK && after) st = after(s, i, c, n, h);
        if (st != RSR_OK) return st;
    }
    return RSR_OK;
}

static rsr_status embed_pool(rsr_session *s, int32_t i, int32_t c, int32_t n, const rt_head_request *h);
static rsr_status every_logits(rsr_session *s, int32_t i, int32_t c, int32_t n, const rt_head_request *h);
static rsr_status every_greedy(rsr_session *s, int32_t i, int32_t c, int32_t n, const rt_head_request *h);
static void embed_finish(const rsr_artifact *a, int32_t n, const rt_head_request *h);

static rsr_status dn_record_reserve(rsr_session *s, int32_t n);

static rsr_status cpu_eval(rsr_session *s, const int32_t *tokens, int32_t n, const rt_head_request *h) {
    rsr_status st;
    if (s->dn_draft_rec && (st = dn_record_reserve(s, n)) != RSR_OK) return st;
    if (h->kind == RT_HEAD_EMBED) {
        memset(h->embed, 0, sizeof(float) * (size_t)s->model->a->hidden);
        if ((st = eval_steps(s, tokens, n, false, embed_pool, h)) == RSR_OK) embed_finish(s->model->a, n, h);
        return st;
    }
    if (h->kind == RT_HEAD_ALL) return eval_steps(s, tokens, n, false, every_logits, h);
    if (h->kind == RT_HEAD_GREEDY_ALL) {
        if ((st = rt_lm_head_reserve(s)) != RSR_OK) return st;
        return eval_steps(s, tokens, n, false, every_greedy, h);
    }
    if (h->kind == RT_HEAD_NONE || h->kind == RT_HEAD_LOGITS) {
        st = eval_steps(s, tokens, n, h->kind == RT_HEAD_LOGITS, NULL, NULL);
        if (st == RSR_OK && h->kind == RT_HEAD_LOGITS) rt_lm_head_logits(s, s->work.xn, h->logits);
        return st;
    }
    if ((st = rt_lm_head_reserve(s)) != RSR_OK || (st = eval_steps(s, tokens, n, true, NULL, NULL)) != RSR_OK)
        return st;
    const float *x = s->work.xn;
    if (h->kind == RT_HEAD_INT8) return rt_lm_head_logits_q8(s, x, h->logits, h->bound);
    if (h->kind == RT_HEAD_GREEDY) return rt_lm_head_argmax(s, x, h->token);
    return rt_lm_head_sample(s, x, h->sampler, h->rng, h->token, h->tail);
}

/* Back to position 0: the attention's state, and a recurrent state back to zeros. */
static void cpu_session_reset(rsr_session *s) {
    rt_lm_head_forget(s);
    if (s->dn_state) memset(s->dn_state, 0, sizeof(float) * s->model->dn_state_floats);
    for (int32_t i = 0; i < s->dn_ckpt_cap; i++) s->dn_ckpt_pos[i] = -1;
    s->dn_draft_n = 0;
    rt_attention_reset(s);
}

static void dn_replay(rsr_session *s, int32_t keep);

/* Back to s->pos (rsr_session_truncate checked it): a recurrent state by replaying a draft's kept
 * tokens (the record then covers those alone: what follows them may be written anew), or from a
 * checkpoint (the record gone when the position is before the draft). */
static void cpu_session_truncate(rsr_session *s) {
    if (s->dn_state && s->dn_draft_n > 0 && s->pos >= s->dn_draft_from && s->pos <= s->dn_draft_from + s->dn_draft_n) {
        dn_replay(s, s->pos - s->dn_draft_from);
        s->dn_draft_n = s->pos - s->dn_draft_from;
    } else if (s->dn_state) {
        for (int32_t i = 0; i < s->dn_ckpt_cap; i++)
            if (s->dn_ckpt_pos[i] == s->pos) {
                memcpy(s->dn_state, s->dn_ckpt[i], sizeof(float) * s->model->dn_state_floats);
                break;
            }
        if (s->pos < s->dn_draft_from) s->dn_draft_n = 0;
    }
    for (int32_t i = 0; i < s->dn_ckpt_cap; i++)
        if (s->dn_ckpt_pos[i] > s->pos) s->dn_ckpt_pos[i] = -1; /* positions past it may be written anew */
    rt_attention_truncate(s);
}

/* The session's memory a saved state holds (rt_device.state_parts): per layer and KV head its keys
 * then its values of the positions it holds below pos: every one on a global layer, on a windowed
 * one those its ring still holds (from kv_oldest: one run of slots, or two where it wraps; the
 * mirrored slots follow from them, cpu_state_loaded); then auto attention's choices. */
static int32_t cpu_state_parts(rsr_session *s, int32_t pos, int32_t kv_written, rt_state_part *out, int32_t cap,
                               int32_t *attention) {
    const rsr_artifact *a = s->model->a;
    int32_t n = 0, *dense_until;
    for (int32_t l = 0; l < a->num_layers; l++) {
        const rt_kv_layer *L = &s->kv_layer[l];
        if (!L->rows) continue;
        const int32_t lo = L->ring && kv_written > L->ring ? kv_written - L->ring : 0,
                      first = L->ring ? lo % L->ring : 0;
        const int32_t held = pos > lo ? pos - lo : 0, run1 = L->ring && first + held > L->ring ? L->ring - first : held;
        for (int32_t h = 0; h < a->num_kv_heads; h++)
            for (int32_t v = 0; v < 2; v++) {
                uint8_t *rows = (v ? s->v_cache : s->k_cache) + kv_row(s, l, h, 0);
                const char *what = L->ring ? "window of keys and values" : "keys and values";
                if (n < cap)
                    out[n] = (rt_state_part){rows + (size_t)first * s->kv_bytes, (size_t)run1 * s->kv_bytes, what, l};
                n++;
                if (run1 == held) continue;
                if (n < cap) out[n] = (rt_state_part){rows, (size_t)(held - run1) * s->kv_bytes, what, l};
                n++;
            }
    }
    *attention = rt_attention_kind(s, &dense_until);
    if (dense_until && n++ < cap)
        out[n - 1] =
            (rt_state_part){dense_until, sizeof(int32_t) * (size_t)a->num_layers, "auto attention's choices", -1};
    return n;
}

/* After a saved state was read into the session's parts: each windowed layer's mirrored slots. */
static void cpu_state_loaded(rsr_session *s) {
    const rsr_artifact *a = s->model->a;
    for (int32_t l = 0; l < a->num_layers; l++) {
        const rt_kv_layer *L = &s->kv_layer[l];
        if (!L->ring) continue;
        const size_t mirrored = (size_t)(L->rows - L->ring) * s->kv_bytes, ring = (size_t)L->ring * s->kv_bytes;
        for (int32_t h = 0; h < a->num_kv_heads; h++) {
            const size_t at = kv_row(s, l, h, 0);
            memcpy(s->k_cache + at + ring, s->k_cache + at, mirrored);
            memcpy(s->v_cache + at + ring, s->v_cache + at, mirrored);
        }
    }
}

/* The target whose code runs on every CPU of this architecture (specs/generic.yaml, specs/aarch64.yaml) */
#if defined(__aarch64__)
#define BASELINE_TARGET "aarch64 (any AArch64 CPU)"
#else
#define BASELINE_TARGET "generic (any x86-64)"
#endif

static rsr_status cpu_check(const rsr_artifact *a, char *err) {
    char missing[160];
    if (!a->cpu_features || !rt_cpu_missing(a->cpu_features, missing, sizeof missing)) return RSR_OK;
    return rt_set_error(err, RSR_ERR_ABI,
                        "the model's code was compiled for target %s and needs CPU features this "
                        "CPU lacks: %s; compile it again with --target host (this machine) or "
                        "--target " BASELINE_TARGET,
                        a->target, missing);
}

/* What rsr_model_info.device says of the host: the runtime's kernels, and whether RSR_CPU capped
 * them. */
static void cpu_describe(char *out, size_t size) {
    const rt_isa isa = rt_cpu_isa();
    snprintf(out, size, "cpu (%s runtime kernels%s)", rt_isa_name(isa),
             isa < rt_cpu_isa_uncapped() ? ", capped by RSR_CPU" : "");
}

static bool units_kernel(const rsr_model *m, const rsr_artifact_matrix *mx);

/* A base-3 matrix's codes in the 2-bit layout (rsr_b3_to_i2), in memory of its own, or NULL */
static uint8_t *codes_2bit(const rsr_model *m, const rsr_artifact_matrix *mx) {
    const int32_t L = rsr_units_rows(mx->units_layout), units = mx->cols / mx->unit_cols, blocks = mx->rows / L;
    const size_t in = (size_t)rsr_b3_block_bytes(L, units), out = (size_t)L / 4 * (size_t)mx->cols;
    uint8_t *c = calloc(blocks > 0 ? (size_t)blocks : 1, out);
    if (!c) return NULL;
#pragma omp parallel for schedule(static) num_threads(rt_team_of(m))
    for (int32_t b = 0; b < blocks; b++)
        rsr_b3_to_i2(m->blob + mx->data + (size_t)b * in, L, units, c + (size_t)b * out);
    return c;
}

/* rsr_model_info.device, "cpu (F runtime kernels...)", says how many matrices the family's own
 * group-scaled kernel runs (units_kernel), when any */
static void describe_fused(rsr_model *m, int32_t fused) {
    const size_t len = strlen(m->device);
    if (fused > 0 && len > 0 && m->device[len - 1] == ')')
        snprintf(m->device + len - 1, sizeof m->device - (len - 1), ", %d group-scaled matrices fused)", fused);
}

rsr_status rt_cpu_codes(rsr_model *m) {
    if (m->run_on != &rt_device_cpu) return RSR_OK;
    int32_t fused = 0;
    for (int32_t i = 0; i < m->a->num_matrices; i++) {
        const rsr_artifact_matrix *mx = &m->a->matrix[i];
        const bool own = units_kernel(m, mx);
        fused += own;
        if (!rsr_units_base3(mx->units_layout) || own) continue;
        if ((!m->codes && !(m->codes = calloc((size_t)m->a->num_matrices, sizeof *m->codes))) ||
            !(m->codes[i] = codes_2bit(m, mx)))
            return rt_set_error(m->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for the 2-bit codes of matrix %s",
                                mx->name);
    }
    describe_fused(m, fused);
    return RSR_OK;
}

static rsr_status cpu_matmul_int(const rsr_model *m, int32_t index, const int8_t *x, int32_t ntok, int32_t *y) {
    const rsr_artifact_matrix *mx = &m->a->matrix[index];
    size_t cols = (size_t)mx->cols, rows = (size_t)rt_kernel_rows(mx);
    /* a base-3 matrix whose codes the CPU's family reads as they are: its compiled kernel on a copy */
    const bool convert = rsr_units_base3(mx->units_layout) && !(m->codes && m->codes[index]);
    uint8_t *own = convert ? codes_2bit(m, mx) : NULL;
    if (convert && !own) return RSR_ERR_OUT_OF_MEMORY;
    const uint8_t *data = own ? own : rt_codes(m, mx);
    size_t padded = (size_t)rsr_x_row(mx->cols, mx->unit_cols); /* the codes, padded, and units' Σx */
    int32_t step = ntok < RSR_BATCH_MAX ? ntok : RSR_BATCH_MAX;
    int8_t *xp = calloc((size_t)step, padded); /* the kernel contract: zero up to a multiple of RSR_X_PAD */
    if (!xp) return free(own), RSR_ERR_OUT_OF_MEMORY;
    for (int32_t t0 = 0; t0 < ntok; t0 += step) {
        int32_t n = ntok - t0 < step ? ntok - t0 : step;
        for (int32_t t = 0; t < n; t++) {
            memcpy(xp + (size_t)t * padded, x + (size_t)(t0 + t) * cols, cols);
            rsr_x_put_sums(xp + (size_t)t * padded, mx->cols, mx->unit_cols);
        }
        int32_t *yt = y + (size_t)t0 * rows;
        if (n > 1 && mx->kernel_batch) {
            mx->kernel_batch(data, xp, (int32_t)padded, yt, (int32_t)rows, n, 0, mx->num_blocks);
            continue;
        }
        for (int32_t t = 0; t < n; t++)
            mx->kernel(data, xp + (size_t)t * padded, yt + (size_t)t * rows, 0, mx->num_blocks);
    }
    free(xp);
    free(own);
    return RSR_OK;
}

const rt_device rt_device_cpu = {
    .name = "cpu",
    .host_memory = true,
    .session_init = cpu_session_init,
    .session_reset = cpu_session_reset,
    .session_truncate = cpu_session_truncate,
    .session_free = cpu_session_free,
    .eval = cpu_eval,
    .matmul_int = cpu_matmul_int,
    .check = cpu_check,
    .describe = cpu_describe,
    .truncate_floor = rt_kv_truncate_floor,
    .state_parts = cpu_state_parts,
    .state_loaded = cpu_state_loaded,
    .attention_stats = rt_attention_stats,
    .kv_read = rt_kv_read,
    .last_query = rt_last_query,
    .draft_mtp = rt_mtp_draft,
    .batch_init = rt_cpu_batch_init,
    .batch_eval = rt_cpu_batch_eval,
    .batch_free = rt_cpu_batch_free,
};

/* ---- the operations of a step: n tokens (1 <= n <= s->batch) through every layer ----
 * Row t of each activation buffer belongs to token t. Everything but the ternary products is
 * done token by token in the order of a single token's step, so a step of n tokens computes
 * bit for bit what n steps of one token compute; the products of a block of rows are done for
 * all n tokens while its weights are in cache (rsr_kernel_batch_fn). */

static const float *blob_f32(const rsr_model *m, uint64_t off) { return (const float *)(m->blob + off); }

/* y = x · inv, times w when given; inv from the row's sum of squares ss (docs/numerics.md). */
RT_INLINE_BODY void rms_scale_body(float *restrict y, const float *restrict x, const float *restrict w, int32_t n,
                                   float ss, float eps) {
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    if (w)
        for (int32_t i = 0; i < n; i++) y[i] = (x[i] * inv) * w[i];
    else
        for (int32_t i = 0; i < n; i++) y[i] = x[i] * inv;
}
RT_ISA_CLONES(rms_scale,
              (float *restrict y, const float *restrict x, const float *restrict w, int32_t n, float ss, float eps),
              (y, x, w, n, ss, eps))

static void rmsnorm(float *y, const float *x, const float *w, int32_t n, float eps) {
    float ss = 0;
    for (int32_t i = 0; i < n; i++) ss += x[i] * x[i];
    rms_scale(y, x, w, n, ss, eps);
}

/* The sums of squares of RMS_ROWS rows together, each in ascending order as rmsnorm sums it:
 * one row's additions form a chain that waits on the adder's latency; the rows' chains are
 * independent and overlap (about 5% of a prefill step before). Same bits as row by row. */
#define RMS_ROWS 8 /* sumsq_rows names them */
static void sumsq_rows(float *ss, const float *x, size_t stride, int32_t n) {
    const float *x0 = x, *x1 = x0 + stride, *x2 = x1 + stride, *x3 = x2 + stride, *x4 = x3 + stride, *x5 = x4 + stride,
                *x6 = x5 + stride, *x7 = x6 + stride;
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    for (int32_t i = 0; i < n; i++) {
        a0 += x0[i] * x0[i], a1 += x1[i] * x1[i], a2 += x2[i] * x2[i], a3 += x3[i] * x3[i];
        a4 += x4[i] * x4[i], a5 += x5[i] * x5[i], a6 += x6[i] * x6[i], a7 += x7[i] * x7[i];
    }
    ss[0] = a0, ss[1] = a1, ss[2] = a2, ss[3] = a3, ss[4] = a4, ss[5] = a5, ss[6] = a6, ss[7] = a7;
}

/* Per-token absmax quantisation to int8; returns x_scale. */
static float quantize_scalar(int8_t *q, const float *x, int32_t n) {
    float amax = 0;
    for (int32_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float scale = 127.0f / fmaxf(amax, 1e-5f);
    for (int32_t i = 0; i < n; i++) q[i] = (int8_t)fminf(fmaxf(rintf(x[i] * scale), -128.0f), 127.0f);
    return scale;
}

float rt_quantize_family(int family, int8_t *q, const float *x, int32_t n) {
#if defined(__x86_64__)
    if (family == 2) return rt_quantize_avx512(q, x, n);
    if (family == 1) return rt_quantize_avx2(q, x, n);
#else
    (void)family; /* off x86 every family is the portable one */
#endif
    return quantize_scalar(q, x, n);
}

/* The quantised activation's columns past n up to rt_pad_cols(n): kernels read whole groups. */
static void zero_pad(int8_t *q, int32_t n) { memset(q + n, 0, (size_t)(rt_pad_cols(n) - n)); }

/* One block of quantize_blocks: q = rint(x · (127 / amax)) within ±127 (0 when amax is 0); returns
 * amax. The AVX2 form (family_avx2.c) where blocks are whole vectors: the same bits. */
static float quantize_block(int8_t *q, const float *x, int32_t B) {
#if defined(__x86_64__)
    const rt_isa isa = rt_cpu_isa();
    if (B % 32 == 0 && (isa == RT_ISA_AVX2 || rt_isa_avx512(isa))) return rt_quantize_block_avx2(q, x, B);
#endif
    float amax = 0;
    for (int32_t i = 0; i < B; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float id = amax != 0 ? 127.0f / amax : 0.0f;
    for (int32_t i = 0; i < B; i++) q[i] = (int8_t)fminf(fmaxf(rintf(x[i] * id), -127.0f), 127.0f);
    return amax;
}

/* Per block of B values (rsr_artifact.act_block; docs/numerics.md, "Group scales"): as llama.cpp's
 * CPU code makes Q8_0 and Q8_K (rsr_act_quant), amax of the block, q = rint(x · (127 / amax)) (0
 * when amax is 0), and the block's scale amax / 127 rounded to f16 (Q8_0), or 1 / (127 / amax) in
 * f32 (Q8_K: its −127 / max with the sign of the largest value gives the same q and scale, both
 * negated). n a multiple of B. Each block's Σq follows the padding (rsr_x_put_sums: the kernels
 * with units read it there), and its scale (xd's) after those (rsr_x_scales_at, for fused_rows). */
static void quantize_blocks(int8_t *q, float *xd, const float *x, int32_t n, int32_t B, int32_t how) {
    for (int32_t b0 = 0; b0 < n; b0 += B) {
        const float amax = quantize_block(q + b0, x + b0, B), id = amax != 0 ? 127.0f / amax : 0.0f;
        xd[b0 / B] =
            how == RSR_ACT_Q8_K ? (amax != 0 ? 1.0f / id : 0.0f) : rsr_f16_to_f32(rsr_f32_to_f16(amax / 127.0f));
    }
    zero_pad(q, n);
    rsr_x_put_sums(q, n, B);
    memcpy(q + rsr_x_scales_at(n, B), xd, sizeof(float) * (size_t)(n / B));
}

static float quantize(int8_t *q, const float *x, int32_t n) {
    const rt_isa isa = rt_cpu_isa();
    float scale = rt_quantize_family(rt_isa_avx512(isa) ? 2 : isa == RT_ISA_AVX2 ? 1 : 0, q, x, n);
    zero_pad(q, n);
    return scale;
}

/* Threads for work on the n tokens of a step, row by row: one for a single token (decode pays
 * no fork for it), the session's team for a prefill step. */
static int team_for(const rsr_model *m, int32_t n) {
    if (n == 1) return 1;
    int team = rt_team_of(m);
    return team < n ? team : n;
}

/* One BitLinear output of a fused call: y[t] (=, or += when accumulate) = W·xq[t] · beta / xs[t]
 * for the n tokens, rows of y `stride` apart. */
typedef struct bl_out {
    int32_t index;
    float *y;
    size_t stride;
    int accumulate;
} bl_out;

/* y[i] (=, or +=) acc[i] · beta / x_scale for rows [r0, r1). Cloned per ISA for wide divisions;
 * every clone rounds each operation as the scalar loop does, so results do not depend on the CPU. */
RT_INLINE_BODY void dequantize_body(float *restrict y, const int32_t *restrict acc, float beta, float x_scale,
                                    int32_t r0, int32_t r1, int accumulate) {
    if (accumulate)
        for (int32_t i = r0; i < r1; i++) y[i] += ((float)acc[i] * beta) / x_scale;
    else
        for (int32_t i = r0; i < r1; i++) y[i] = ((float)acc[i] * beta) / x_scale;
}
RT_ISA_CLONES(dequantize,
              (float *restrict y, const int32_t *restrict acc, float beta, float x_scale, int32_t r0, int32_t r1,
               int accumulate),
              (y, acc, beta, x_scale, r0, r1, accumulate))

/* Chunk c of `chunks` of the blocks of one matrix, [*b0, *b1): its kernel for the n tokens from
 * token t0. acc holds this matrix's sums of token t0 in its first row. */
static void kernel_part(const rsr_model *m, const rt_work *w, const rsr_artifact_matrix *mx, int32_t *acc, int32_t t0,
                        int32_t n, int32_t c, int32_t chunks, int32_t *b0, int32_t *b1) {
    const uint8_t *data = rt_codes(m, mx);
    int32_t nb = mx->num_blocks, xs_stride = w->xq_stride, acc_stride = w->acc_stride;
    const int8_t *xq = w->xq + (size_t)t0 * (size_t)xs_stride;
    *b0 = (int32_t)((int64_t)nb * c / chunks), *b1 = (int32_t)((int64_t)nb * (c + 1) / chunks);
    acc += rt_sums_from(mx, *b0); /* by blocks: a call's sums begin at its first block's */
    if (n > 1 && mx->kernel_batch) {
        mx->kernel_batch(data, xq, xs_stride, acc, acc_stride, n, *b0, *b1);
    } else {
        for (int32_t t = 0; t < n; t++)
            mx->kernel(data, xq + (size_t)t * (size_t)xs_stride, acc + (size_t)t * (size_t)acc_stride, *b0, *b1);
    }
}

/* The thread's blocks [b0, b1) of one matrix: the kernel, then its own rows to fp32 while they
 * are in its cache (no second pass, no barrier). acc holds this matrix's rows. */
static void bitlinear_part(const rsr_model *m, const rt_work *w, const bl_out *o, int32_t *acc, int32_t n, int32_t c,
                           int32_t chunks, int32_t *r0, int32_t *r1) {
    const rsr_artifact_matrix *mx = &m->a->matrix[o->index];
    int32_t acc_stride = w->acc_stride, b0, b1;
    kernel_part(m, w, mx, acc, 0, n, c, chunks, &b0, &b1);
    *r0 = b0 * mx->rsr_k, *r1 = b1 * mx->rsr_k < mx->rows ? b1 * mx->rsr_k : mx->rows;
    for (int32_t t = 0; t < n; t++)
        dequantize(o->y + (size_t)t * o->stride, acc + (size_t)t * (size_t)acc_stride, mx->scale, w->xs[t], *r0, *r1,
                   o->accumulate);
}

/* The BitLinear layers that read the same input (q, k, v; gate, up) in one parallel region: each
 * thread takes one contiguous range of blocks of every matrix (blocks cost the same for i2, nearly
 * for RSR, and a shared work counter costs more than the imbalance it removes: bench_gemv,
 * docs/history/performance-log.md). With glu, outs are gate and up of one shape, and each thread applies the
 * activation to its own rows: gate = act(gate) · up. */
/* g = act(g) · u for rows [r0, r1). relu² is written with a comparison (NaN → 0, as fmaxf(g, 0)
 * gives) so that the clones vectorise it; SiLU calls expf, GELU tanhf. */
RT_INLINE_BODY void activate_body(const rsr_artifact *a, float *restrict g, const float *restrict u, int32_t r0,
                                  int32_t r1) {
    if (a->activation == RSR_ACT_RELU2) {
        for (int32_t i = r0; i < r1; i++) {
            float r = g[i] > 0.0f ? g[i] : 0.0f;
            g[i] = r * r * u[i];
        }
        return;
    }
    if (a->activation == RSR_ACT_GELU) { /* the tanh form, as ggml writes it (docs/numerics.md) */
        for (int32_t i = r0; i < r1; i++) {
            const float x = g[i];
            g[i] = (0.5f * x * (1.0f + tanhf(0.79788456080286535587989211986876f * x * (1.0f + 0.044715f * x * x)))) *
                   u[i];
        }
        return;
    }
    for (int32_t i = r0; i < r1; i++) g[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}
RT_ISA_CLONES(activate, (const rsr_artifact *a, float *restrict g, const float *restrict u, int32_t r0, int32_t r1),
              (a, g, u, r0, r1))

/* Rows [r0, r1) of a matrix with scales per group of columns, each token (docs/numerics.md, "Group
 * scales"): y[r] (=, or +=) Σ_u ((float)(Σ_p S[u][p][r]) · scale[u][r]) · xd[u] (S[u][p][r] at
 * acc[(u·P + p)·S + r], scale[u][r] at gs[(u / per)·R + r]) over the units in
 * ascending order; with per-token activations (xd NULL), Σ_u (float)(Σ_p S) · scale[u][r], then
 * / x_scale. Unit by unit over a chunk of rows, so that the sums and scales are read in order and
 * the loops vectorise across rows (clones per ISA: this conversion did 11 scalar instructions per
 * row and unit, more than the kernels); each row's operations are those of a loop over its units,
 * in the same order, whatever the vector width (no contraction: -ffp-contract=off). */
#define GROUP_ROWS 256
#define GROUP_AHEAD 4 /* groups whose scales are fetched ahead: they come from memory, 1 KB apart */
/* f16 scale i of a group's run of them, widened exactly by integer operations that vectorise on
 * every ISA (rsrc writes f16 scales only when each is zero or a normal f16 value) */
RT_INLINE_BODY float scale_f16(const uint16_t *restrict g, int32_t i) {
    uint32_t h = g[i], sign = (h & 0x8000u) << 16, mag = h & 0x7fffu;
    uint32_t bits = sign | (mag ? (mag << 13) + 0x38000000u : 0u);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* sum[i] += one unit's sums of rows i times their scales sc[i] (times d with per-block
 * activations), the sums of rows b·B .. b·B + B − 1 at s0 + b·block (plane 1 at s1 likewise);
 * inlined with scaled and B constant, so that each loop vectorises on its own */
RT_INLINE_BODY void group_unit(float *restrict sum, const int32_t *restrict s0, const int32_t *restrict s1,
                               const float *restrict sc, bool scaled, float d, int32_t n, int32_t B, size_t block) {
    for (int32_t b = 0; b < n; b += B, s0 += block, s1 = s1 ? s1 + block : NULL) {
        float *restrict o = sum + b;
        const float *restrict c = sc + b;
        if (scaled && s1)
            for (int32_t i = 0; i < B; i++) o[i] += ((float)(s0[i] + s1[i]) * c[i]) * d;
        else if (scaled)
            for (int32_t i = 0; i < B; i++) o[i] += ((float)s0[i] * c[i]) * d;
        else if (s1)
            for (int32_t i = 0; i < B; i++) o[i] += (float)(s0[i] + s1[i]) * c[i];
        else
            for (int32_t i = 0; i < B; i++) o[i] += (float)s0[i] * c[i];
    }
}

/* A run of tokens' sums to convert: token j's at acc + j·acc_stride, its output row at y + j·y_stride,
 * its block scales at xd + j·xd_stride (xd NULL: per-token activations, scale xs[j]). */
typedef struct group_tokens {
    float *y;
    const int32_t *acc;
    const float *xd, *xs;
    size_t y_stride, acc_stride, xd_stride;
    int32_t n;
} group_tokens;

#define GROUP_TOKENS 8 /* tokens converted together: each unit's scales widened once for them */

/* A token's n converted rows from sum into y (=, or += with accumulate), / xs with per-token
 * activations (xd NULL); each case a loop of its own, so that each vectorises */
RT_INLINE_BODY void group_store(float *restrict y, const float *restrict sum, bool xd, float xs, int32_t n,
                                int accumulate) {
    if (xd && accumulate)
        for (int32_t i = 0; i < n; i++) y[i] = y[i] + sum[i];
    else if (xd)
        for (int32_t i = 0; i < n; i++) y[i] = sum[i];
    else if (accumulate)
        for (int32_t i = 0; i < n; i++) y[i] = y[i] + sum[i] / xs;
    else
        for (int32_t i = 0; i < n; i++) y[i] = sum[i] / xs;
}

/* Rows [c0, c0 + n) of the tokens tk, their sums of unit u at acc + u·ustride (plane 1 pstride
 * further), those of rows B further block further (n a multiple of B), each token's at
 * tk->acc_stride apart. Inlined with B a constant where it is a block's rows (4, 8, 16), so that
 * its loops are whole vectors, and the blocks of a chunk independent of one another. */
RT_INLINE_BODY void group_chunk(const group_tokens *tk, const char *gs, bool f16, size_t R, int32_t U, int32_t P,
                                int32_t per, const int32_t *acc, size_t ustride, size_t pstride, int32_t B,
                                size_t block, int32_t c0, int32_t n, bool ahead, int accumulate) {
    float sum[GROUP_TOKENS][GROUP_ROWS], wide[GROUP_ROWS];
    const size_t bytes = f16 ? 2 : 4;
    for (int32_t j0 = 0; j0 < tk->n; j0 += GROUP_TOKENS) {
        const int32_t nt = tk->n - j0 < GROUP_TOKENS ? tk->n - j0 : GROUP_TOKENS;
        for (int32_t j = 0; j < nt; j++)
            for (int32_t i = 0; i < n; i++) sum[j][i] = 0;
        for (int32_t u = 0; u < U; u++) {
            const char *g = gs + ((size_t)(u / per) * R + (size_t)c0) * bytes;
            if (ahead && u % per == 0 && u / per + GROUP_AHEAD < U / per)
                for (int32_t i = 0; i < n; i += 64 / (int32_t)bytes)
                    __builtin_prefetch(g + (GROUP_AHEAD * R + (size_t)i) * bytes);
            const float *sc = (const float *)g;
            if (f16) { /* widened once for the tokens */
                for (int32_t i = 0; i < n; i++) wide[i] = scale_f16((const uint16_t *)g, i);
                sc = wide;
            }
            for (int32_t j = 0; j < nt; j++) {
                const size_t jt = (size_t)(j0 + j);
                const int32_t *restrict s0 = acc + jt * tk->acc_stride + (size_t)u * ustride;
                const int32_t *restrict s1 = P == 2 ? s0 + pstride : NULL;
                if (tk->xd)
                    group_unit(sum[j], s0, s1, sc, true, tk->xd[jt * tk->xd_stride + (size_t)u], n, B, block);
                else
                    group_unit(sum[j], s0, s1, sc, false, 1.0f, n, B, block);
            }
        }
        for (int32_t j = 0; j < nt; j++) {
            const size_t jt = (size_t)(j0 + j);
            group_store(tk->y + jt * tk->y_stride + c0, sum[j], tk->xd, tk->xd ? 1.0f : tk->xs[jt], n, accumulate);
        }
    }
}

/* 16 scales at g (f16 or f32) as f32 in c, as scale_f16 widens them, in whole 64-byte vectors:
 * left to itself the compiler widens them in two halves, and the load of c that follows then waits
 * for both stores (a store-forwarding stall, a quarter of a prefill's conversion time). */
typedef uint16_t rt_u16x16 __attribute__((vector_size(32)));
typedef uint32_t rt_u32x16 __attribute__((vector_size(64)));
RT_INLINE_BODY void scales16(float *restrict c, const char *g, bool f16) {
    if (!f16) {
        memcpy(c, g, 64);
        return;
    }
    rt_u16x16 h16;
    memcpy(&h16, g, 32);
    const rt_u32x16 h = __builtin_convertvector(h16, rt_u32x16), bits = RT_F16_BITS(h);
    memcpy(c, &bits, 64);
}

/* The block layout's conversion (B a block's rows, 4, 8 or 16, a constant once inlined): block by
 * block, GROUP_TOKENS tokens at a time, every unit's sums of the block's B rows added into a tile
 * of the tokens' B sums that stays in registers (nt a constant too where the tile is whole), the
 * sums read in the order the kernels wrote them and each unit's scales widened once for the
 * tokens. The same operations per row as group_chunk, in the same order (units ascending), so the
 * same bits. Tokens [j0, j0 + nt) of the block of rows [r, r + B), its sums at acc. */
RT_INLINE_BODY void group_tile(const group_tokens *tk, const char *gs, bool f16, size_t R, int32_t U, int32_t P,
                               int32_t per, const int32_t *acc, int32_t B, int32_t r, int32_t j0, int32_t nt,
                               int accumulate) {
    const size_t bytes = f16 ? 2 : 4;
    float sum[GROUP_TOKENS][16];
#pragma GCC unroll 8
    for (int32_t j = 0; j < nt; j++)
        for (int32_t i = 0; i < B; i++) sum[j][i] = 0;
    for (int32_t u = 0; u < U; u++) {
        const char *g = gs + ((size_t)(u / per) * R + (size_t)r) * bytes;
        float c[16];
        if (B == 16)
            scales16(c, g, f16);
        else
            for (int32_t i = 0; i < B; i++) c[i] = f16 ? scale_f16((const uint16_t *)g, i) : ((const float *)g)[i];
        const int32_t *s0 = acc + (size_t)j0 * tk->acc_stride + (size_t)u * (size_t)P * (size_t)B;
#pragma GCC unroll 8
        for (int32_t j = 0; j < nt; j++) {
            const int32_t *restrict a0 = s0 + (size_t)j * tk->acc_stride, *restrict a1 = a0 + B;
            float *restrict o = sum[j];
            if (tk->xd) {
                const float d = tk->xd[(size_t)(j0 + j) * tk->xd_stride + (size_t)u];
                if (P == 2)
                    for (int32_t i = 0; i < B; i++) o[i] += ((float)(a0[i] + a1[i]) * c[i]) * d;
                else
                    for (int32_t i = 0; i < B; i++) o[i] += ((float)a0[i] * c[i]) * d;
            } else if (P == 2)
                for (int32_t i = 0; i < B; i++) o[i] += (float)(a0[i] + a1[i]) * c[i];
            else
                for (int32_t i = 0; i < B; i++) o[i] += (float)a0[i] * c[i];
        }
    }
    for (int32_t j = 0; j < nt; j++) {
        const size_t jt = (size_t)(j0 + j);
        group_store(tk->y + jt * tk->y_stride + r, sum[j], tk->xd, tk->xd ? 1.0f : tk->xs[jt], B, accumulate);
    }
}

/* group_tile with f16 and nt constants, each case its own loops */
RT_INLINE_BODY void group_tile_of(const group_tokens *tk, const char *gs, bool f16, size_t R, int32_t U, int32_t P,
                                  int32_t per, const int32_t *acc, int32_t B, int32_t r, int32_t j0, int32_t nt,
                                  int accumulate) {
    if (f16)
        group_tile(tk, gs, true, R, U, P, per, acc, B, r, j0, nt, accumulate);
    else
        group_tile(tk, gs, false, R, U, P, per, acc, B, r, j0, nt, accumulate);
}

/* Rows [c0, c0 + n) (n a multiple of B) by blocks, the sums of c0's block at acc: tiles of
 * GROUP_TOKENS tokens, then one of half as many, then the rest (a tile in memory); a decode's
 * fewer tokens by group_chunk, every block's rows at once. B a constant once inlined, for both. */
RT_INLINE_BODY void group_blocks(const group_tokens *tk, const char *gs, bool f16, size_t R, int32_t U, int32_t P,
                                 int32_t per, const int32_t *acc, int32_t B, int32_t c0, int32_t n, int accumulate) {
    const size_t bytes = f16 ? 2 : 4, block = (size_t)U * (size_t)P * (size_t)B;
    if (tk->n < GROUP_TOKENS / 2) {
        group_chunk(tk, gs, f16, R, U, P, per, acc, (size_t)P * (size_t)B, (size_t)B, B, block, c0, n, true,
                    accumulate);
        return;
    }
    for (int32_t b = 0; b < n; b += B, acc += block) {
        if (b % (64 / (int32_t)bytes) == 0) /* a new line of every unit's scales: those GROUP_AHEAD on */
            for (int32_t i = 0; i < U / per; i++)
                __builtin_prefetch(gs + ((size_t)i * R + (size_t)(c0 + b)) * bytes + GROUP_AHEAD * 64);
        int32_t j0 = 0;
        for (; j0 + GROUP_TOKENS <= tk->n; j0 += GROUP_TOKENS)
            group_tile_of(tk, gs, f16, R, U, P, per, acc, B, c0 + b, j0, GROUP_TOKENS, accumulate);
        if (j0 + GROUP_TOKENS / 2 <= tk->n) {
            group_tile_of(tk, gs, f16, R, U, P, per, acc, B, c0 + b, j0, GROUP_TOKENS / 2, accumulate);
            j0 += GROUP_TOKENS / 2;
        }
        if (j0 < tk->n) group_tile(tk, gs, f16, R, U, P, per, acc, B, c0 + b, j0, tk->n - j0, accumulate);
    }
}

/* B > 0: the sums go by blocks of B rows (rsr_artifact_matrix.sums_block), those of r0's block
 * first (r0 a block's first row); else unit u's S apart from row 0's. GROUP_ROWS rows a chunk. */
RT_INLINE_BODY void group_dequantize_isa_body(const group_tokens *tk, const void *gs, bool f16, size_t R, size_t S,
                                              int32_t B, int32_t U, int32_t P, int32_t per, int32_t r0, int32_t r1,
                                              int accumulate) {
    const size_t block = (size_t)U * (size_t)P * (size_t)B; /* a block's sums */
    for (int32_t c0 = r0; c0 < r1; c0 += GROUP_ROWS) {
        const int32_t n = r1 - c0 < GROUP_ROWS ? r1 - c0 : GROUP_ROWS;
        if (!B) {
            group_chunk(tk, gs, f16, R, U, P, per, tk->acc + c0, (size_t)P * S, S, n, 0, c0, n, true, accumulate);
            continue;
        }
        const int32_t *acc = tk->acc + (size_t)((c0 - r0) / B) * block;
        const int32_t whole = n / B * B, rest = n - whole; /* a last block may end past the rows */
        const size_t us = (size_t)P * (size_t)B;
        if (whole && B == 16)
            group_blocks(tk, gs, f16, R, U, P, per, acc, 16, c0, whole, accumulate);
        else if (whole && B == 8)
            group_blocks(tk, gs, f16, R, U, P, per, acc, 8, c0, whole, accumulate);
        else if (whole && B == 4)
            group_blocks(tk, gs, f16, R, U, P, per, acc, 4, c0, whole, accumulate);
        else if (whole)
            group_chunk(tk, gs, f16, R, U, P, per, acc, us, (size_t)B, B, block, c0, whole, true, accumulate);
        if (rest)
            group_chunk(tk, gs, f16, R, U, P, per, acc + (size_t)(whole / B) * block, us, (size_t)B, rest, block,
                        c0 + whole, rest, false, accumulate);
    }
}
RT_ISA_CLONES(group_dequantize_isa,
              (const group_tokens *tk, const void *gs, bool f16, size_t R, size_t S, int32_t B, int32_t U, int32_t P,
               int32_t per, int32_t r0, int32_t r1, int accumulate),
              (tk, gs, f16, R, S, B, U, P, per, r0, r1, accumulate))

/* Rows [r0, r1) of the tokens tk of a matrix with group scales, from their sums: those of row 0
 * at tk->acc, or by blocks (rsr_artifact_matrix.sums_block) those of r0's block (r0 a block's first row). */
static void group_dequantize(const rsr_model *m, const rsr_artifact_matrix *mx, const group_tokens *tk, int32_t r0,
                             int32_t r1, int accumulate) {
    group_dequantize_isa(tk, m->blob + mx->group_scale, mx->group_scale_dtype == RSR_DTYPE_F16, (size_t)mx->rows,
                         (size_t)mx->unit_stride, mx->sums_block, mx->cols / mx->unit_cols, mx->planes,
                         mx->scale_cols / mx->unit_cols, r0, r1, accumulate);
}

/* The tokens [t0, t0 + n) of output o, their sums from acc (at acc_stride), as group_tokens. */
static group_tokens tokens_of(const rt_work *w, const bl_out *o, const int32_t *acc, int32_t t0, int32_t n) {
    return (group_tokens){.y = o->y + (size_t)t0 * o->stride,
                          .acc = acc,
                          .xd = w->xd ? w->xd + (size_t)t0 * (size_t)w->xd_stride : NULL,
                          .xs = w->xs + t0,
                          .y_stride = o->stride,
                          .acc_stride = (size_t)w->acc_stride,
                          .xd_stride = (size_t)w->xd_stride,
                          .n = n};
}

/* bitlinear's form when a matrix has scales per group of columns (and for every matrix of such a
 * model, whose acc may hold fewer tokens than a step: w->acc_rows at a time): the kernels over
 * every thread's blocks, then (their sums of one row being spread over the blocks of every unit)
 * the rows split among the threads anew for the conversion to fp32 and the activation. */
static bool fused_units(const rsr_model *m, const rt_work *w, const rsr_artifact_matrix *mx, int32_t n);
static void fused_rows(const rsr_model *m, const rt_work *w, const rsr_artifact_matrix *mx, const bl_out *o, int32_t t0,
                       int32_t n, int32_t s0, int32_t s1);

/* A matrix the runtime's kernel for its layout runs (fused_units) takes chunk c's whole blocks here
 * beside the others' conversion: its kernel writes the rows in fp32, no sums between. */
static void grouped_rows(const rsr_model *m, rt_work *w, const bl_out *outs, int count, int32_t t0, int32_t n, int glu,
                         int32_t c, int32_t chunks) {
    const rsr_artifact *a = m->a;
    int64_t offset = 0;
    int32_t r0 = 0, r1 = 0;
    for (int j = 0; j < count; j++) {
        const rsr_artifact_matrix *mx = &a->matrix[outs[j].index];
        r0 = (int32_t)((int64_t)mx->rows * c / chunks), r1 = (int32_t)((int64_t)mx->rows * (c + 1) / chunks);
        int64_t from = 0;
        int32_t b0 = 0, b1 = 0;
        if (mx->sums_block) { /* whole blocks, and their sums */
            b0 = (int32_t)((int64_t)mx->num_blocks * c / chunks),
            b1 = (int32_t)((int64_t)mx->num_blocks * (c + 1) / chunks);
            r0 = b0 * mx->rsr_k, r1 = b1 * mx->rsr_k < mx->rows ? b1 * mx->rsr_k : mx->rows,
            from = rt_sums_from(mx, b0);
        }
        if (mx->sums_block && fused_units(m, w, mx, n)) {
            if (b0 < b1) fused_rows(m, w, mx, &outs[j], t0, n, b0, b1);
        } else if (mx->unit_cols) {
            const group_tokens tk = tokens_of(w, &outs[j], w->acc + offset + from, t0, n);
            group_dequantize(m, mx, &tk, r0, r1, outs[j].accumulate);
        } else
            for (int32_t t = t0; t < t0 + n; t++)
                dequantize(outs[j].y + (size_t)t * outs[j].stride,
                           w->acc + (size_t)(t - t0) * (size_t)w->acc_stride + offset, mx->scale, w->xs[t], r0, r1,
                           outs[j].accumulate);
        offset += rt_kernel_rows(mx);
    }
    if (glu) /* gate and up have the same rows: r0, r1 are both's */
        for (int32_t t = t0; t < t0 + n; t++)
            activate(a, outs[0].y + (size_t)t * outs[0].stride, outs[1].y + (size_t)t * outs[1].stride, r0, r1);
}

/* Whether the runtime's own kernel for a matrix's layout runs it (family.h, rt_units_call): the
 * conversion to fp32 fused, every step (a decode's token too: 1.2x the compiled kernel and
 * group_dequantize), where the family has one (rt_units_native) and activations go by blocks. A
 * base-3 matrix without it runs its compiled kernel on codes converted at open (rt_cpu_codes). */
static bool units_kernel(const rsr_model *m, const rsr_artifact_matrix *mx) {
#if RT_UNITS_KERNELS
    return rt_units_native(mx->units_layout) && mx->planes == 1 && mx->data != RSR_NO_TENSOR &&
           mx->scale_cols % mx->unit_cols == 0 && m->a->act_block == mx->unit_cols;
#else
    (void)m, (void)mx;
    return false;
#endif
}
static bool fused_units(const rsr_model *m, const rt_work *w, const rsr_artifact_matrix *mx, int32_t n) {
    return n >= 1 && w->xd && units_kernel(m, mx);
}

/* Tokens a step from which a base-3 matrix runs on its codes converted to the 2-bit layout a few
 * blocks at a time (rt_b3_to_i2_rows8_avx2 or rt_b3_to_i2_rows16_vnni, into the thread's
 * sums, which the runtime's kernel does not use) instead of decoding each base-3 word for every
 * tile of a few tokens (2 on AVX2, 4 on AVX-512): the stored codes stay base-3 (fewer bytes a
 * decode), a prompt gets the 2-bit kernel's tiles: on a Zen 3, a 512-token prompt of the 27B cut
 * 1.5x faster with every matrix in base-3 codes; on a Zen 5 (AVX-512), 8 tokens already cost
 * less converted (docs/performance.md). A decode's token, and steps of a few, decode the words. */
#define RT_B3_CONVERT_TOKENS 8

/* The blocks [s0, s1) of mx for the step's n tokens from t0 into o, by the runtime's kernel (fused_units) */
static void fused_rows(const rsr_model *m, const rt_work *w, const rsr_artifact_matrix *mx, const bl_out *o, int32_t t0,
                       int32_t n, int32_t s0, int32_t s1) {
#if RT_UNITS_KERNELS
    rt_units_call c = {.data = m->blob + mx->data,
                       .gs = m->blob + mx->group_scale,
                       .f16 = mx->group_scale_dtype == RSR_DTYPE_F16,
                       .rows = mx->rows,
                       .units = mx->cols / mx->unit_cols,
                       .groups = mx->unit_cols / 16,
                       .per = mx->scale_cols / mx->unit_cols,
                       .x = w->xq + (size_t)t0 * (size_t)w->xq_stride,
                       .x_stride = w->xq_stride,
                       .sums_at = rsr_x_sums_at(mx->cols),
                       .scales_at = rsr_x_scales_at(mx->cols, mx->unit_cols),
                       .y = o->y + (size_t)t0 * o->stride,
                       .y_stride = o->stride,
                       .ntok = n,
                       .b0 = s0,
                       .b1 = s1,
                       .accumulate = o->accumulate,
                       .base3 = rsr_units_base3(mx->units_layout)};
#ifdef RT_UNITS_NEON
    rt_units_rows4_sdot(&c); /* the one layout of the NEON family's (rt_units_native) */
    (void)w;
#else
    const int32_t L = rsr_units_rows(mx->units_layout);
    const size_t b3_block = (size_t)rsr_b3_block_bytes(L, c.units), i2_block = (size_t)L / 4 * (size_t)mx->cols;
    void (*kernel)(const rt_units_call *) = L == 16 ? rt_units_rows16_vnni : rt_units_rows8_avx2;
    void (*convert)(const uint8_t *, int32_t, uint8_t *) = L == 16 ? rt_b3_to_i2_rows16_vnni : rt_b3_to_i2_rows8_avx2;
    /* the thread's sums hold RT_SUMS_TOKENS blocks' int32 sums at least (rt_work_init): 4 blocks of 2-bit codes */
    if (!c.base3 || n < RT_B3_CONVERT_TOKENS || !w->sums) {
        kernel(&c);
        return;
    }
    /* a few blocks at a time as 2-bit codes in the thread's sums (the family's converter), each call
       from its own block 0: the scales and rows moved by as many blocks */
    uint8_t *i2 = (uint8_t *)(w->sums + (size_t)omp_get_thread_num() * w->sums_each);
    const int32_t each = (int32_t)(w->sums_each * sizeof(int32_t) / i2_block);
    const size_t gs_block = (size_t)L * (c.f16 ? 2 : 4);
    const rt_units_call whole = c;
    for (int32_t b = s0; b < s1; b += each) {
        const int32_t e = s1 - b < each ? s1 - b : each;
        for (int32_t i = 0; i < e; i++)
            convert(whole.data + (size_t)(b + i) * b3_block, c.units, i2 + (size_t)i * i2_block);
        c.data = i2, c.base3 = 0, c.b0 = 0, c.b1 = e;
        c.gs = (const char *)whole.gs + (size_t)b * gs_block, c.y = whole.y + (size_t)b * L;
        kernel(&c);
    }
#endif
#else
    (void)m, (void)w, (void)mx, (void)o, (void)t0, (void)n, (void)s0, (void)s1;
#endif
}

/* bitlinear_grouped where every matrix's sums go by blocks (rsr_artifact_matrix.sums_block): each
 * thread takes its own range of every matrix's blocks, SB blocks at a time, and for each of them
 * the step's tokens K at a time: the kernel into the thread's w->sums, at once converted to fp32
 * (group_dequantize) while they are in L1 or L2, then, once gate and up have those rows for every
 * token, the activation (glu). The SB blocks' weights stay in cache for all the tokens, so each
 * is read from memory once a step; a call's sums (K · SB blocks) fit the thread's sums
 * (RT_SUMS_BYTES). The same operations per row as any other split. */
static void rows_grouped(const rsr_model *m, rt_work *w, const bl_out *outs, int count, int32_t n, int glu, int32_t c,
                         int32_t chunks) {
    const rsr_artifact *a = m->a;
    int32_t lo[3], hi[3], longest = 0;
    size_t most = 1; /* the most sums of one block of any of the matrices */
    for (int j = 0; j < count; j++) {
        const rsr_artifact_matrix *mx = &a->matrix[outs[j].index];
        lo[j] = (int32_t)((int64_t)mx->num_blocks * c / chunks),
        hi[j] = (int32_t)((int64_t)mx->num_blocks * (c + 1) / chunks);
        longest = hi[j] - lo[j] > longest ? hi[j] - lo[j] : longest;
        most = (size_t)rt_block_sums(mx) > most ? (size_t)rt_block_sums(mx) : most;
    }
    size_t K = w->sums_each / most, most_k = n < RT_SUMS_TOKENS ? (size_t)n : RT_SUMS_TOKENS;
    K = K < 1 ? 1 : K > most_k ? most_k : K;
    const int32_t SB = (int32_t)(w->sums_each / (K * most)) > 0 ? (int32_t)(w->sums_each / (K * most)) : 1;
    int32_t *sums = w->sums + (size_t)omp_get_thread_num() * w->sums_each;
    for (int32_t s = 0; s < longest; s += SB) {
        int32_t r0 = 0, r1 = 0;
        for (int j = 0; j < count; j++) {
            const rsr_artifact_matrix *mx = &a->matrix[outs[j].index];
            const uint8_t *data = rt_codes(m, mx);
            const int32_t s0 = lo[j] + s, s1 = s0 + SB < hi[j] ? s0 + SB : hi[j];
            if (s0 >= s1) continue;
            r0 = s0 * mx->rsr_k, r1 = s1 * mx->rsr_k < mx->rows ? s1 * mx->rsr_k : mx->rows;
            if (fused_units(m, w, mx, n)) { /* every token at once, the sums never in memory */
                fused_rows(m, w, mx, &outs[j], 0, n, s0, s1);
                continue;
            }
            const int32_t stride = (int32_t)((s1 - s0) * rt_block_sums(mx)); /* a token's sums */
            for (int32_t t0 = 0; t0 < n; t0 += (int32_t)K) {
                const int32_t k = n - t0 < (int32_t)K ? n - t0 : (int32_t)K;
                const int8_t *xq = w->xq + (size_t)t0 * (size_t)w->xq_stride;
                if (k > 1 && mx->kernel_batch) mx->kernel_batch(data, xq, w->xq_stride, sums, stride, k, s0, s1);
                for (int32_t t = 0; (k == 1 || !mx->kernel_batch) && t < k; t++)
                    mx->kernel(data, xq + (size_t)t * (size_t)w->xq_stride, sums + (size_t)t * (size_t)stride, s0, s1);
                group_tokens tk = tokens_of(w, &outs[j], sums, t0, k);
                tk.acc_stride = (size_t)stride;
                group_dequantize(m, mx, &tk, r0, r1, outs[j].accumulate);
            }
        }
        for (int32_t t = 0; glu && r0 < r1 && t < n; t++) /* gate and up: the same rows */
            activate(a, outs[0].y + (size_t)t * outs[0].stride, outs[1].y + (size_t)t * outs[1].stride, r0, r1);
    }
}

/* The activation of gate's and up's outputs (glu), rows split among the threads, after both are whole. */
static void activate_all(const rsr_model *m, const bl_out *outs, int32_t n) {
    const rsr_artifact *a = m->a;
    const int32_t rows = a->matrix[outs[0].index].rows, team = rt_team_of(m), chunks = rows < team ? rows : team;
#pragma omp parallel for schedule(static, 1) num_threads(team)
    for (int32_t c = 0; c < chunks; c++) {
        const int32_t r0 = (int32_t)((int64_t)rows * c / chunks), r1 = (int32_t)((int64_t)rows * (c + 1) / chunks);
        for (int32_t t = 0; t < n; t++)
            activate(a, outs[0].y + (size_t)t * outs[0].stride, outs[1].y + (size_t)t * outs[1].stride, r0, r1);
    }
}

static void bitlinear_grouped(const rsr_model *m, rt_work *w, const bl_out *outs, int count, int32_t n, int glu) {
    const rsr_artifact *a = m->a;
    if (glu) { /* rows_grouped activates the rows of a sub-block as soon as both matrices wrote them: only
                  where gate's and up's blocks are the same rows (an RSR k may differ between them) */
        const rsr_artifact_matrix *g = &a->matrix[outs[0].index], *u = &a->matrix[outs[1].index];
        if (g->rsr_k != u->rsr_k || g->num_blocks != u->num_blocks) {
            bitlinear_grouped(m, w, outs, count, n, 0);
            activate_all(m, outs, n);
            return;
        }
    }
    bool by_rows = true; /* every matrix's sums by blocks (rows_grouped) */
    for (int j = 0; j < count; j++) by_rows &= a->matrix[outs[j].index].sums_block > 0;
    int32_t nb = 0, rows = 0;
    for (int j = 0; j < count; j++) {
        const rsr_artifact_matrix *mx = &a->matrix[outs[j].index];
        nb = mx->num_blocks > nb ? mx->num_blocks : nb, rows = mx->rows > rows ? mx->rows : rows;
    }
    const int32_t team = rt_team_of(m);
    const int32_t chunks = nb < team ? nb : team, row_chunks = rows < team ? rows : team;
    if (by_rows) { /* RT_ROW_PARTS parts a thread, taken as threads come free: a core slowed by another
                      process's work (or a busier sibling) holds the others back by a part at most */
        const int32_t parts = team == 1 ? 1 : nb < team * RT_ROW_PARTS ? nb : team * RT_ROW_PARTS;
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
        for (int32_t c = 0; c < parts; c++) rows_grouped(m, w, outs, count, n, glu, c, parts);
        return;
    }
    for (int32_t t0 = 0; t0 < n; t0 += w->acc_rows) {
        const int32_t k = n - t0 < w->acc_rows ? n - t0 : w->acc_rows;
#pragma omp parallel num_threads(team)
        {
#pragma omp for schedule(static, 1)
            for (int32_t c = 0; c < chunks; c++) {
                int64_t offset = 0;
                for (int j = 0; j < count; j++) {
                    const rsr_artifact_matrix *mx = &a->matrix[outs[j].index];
                    int32_t b0, b1;
                    if (!fused_units(m, w, mx, k)) /* else its own kernel in grouped_rows */
                        kernel_part(m, w, mx, w->acc + offset, t0, k, c, chunks, &b0, &b1);
                    offset += rt_kernel_rows(mx);
                }
            }
#pragma omp for schedule(static, 1)
            for (int32_t c = 0; c < row_chunks; c++) grouped_rows(m, w, outs, count, t0, k, glu, c, row_chunks);
        }
    }
}

static void bitlinear(const rsr_model *m, rt_work *w, const bl_out *outs, int count, int32_t n, int glu) {
    const rsr_artifact *a = m->a;
    if (m->grouped) {
        bitlinear_grouped(m, w, outs, count, n, glu);
        return;
    }
    if (glu) { /* in the region only where gate and up split into the same rows per thread */
        const rsr_artifact_matrix *g = &a->matrix[outs[0].index], *u = &a->matrix[outs[1].index];
        if (g->rows != u->rows || g->rsr_k != u->rsr_k || g->num_blocks != u->num_blocks) {
            bitlinear(m, w, outs, count, n, 0);
            for (int32_t t = 0; t < n; t++)
                activate(a, outs[0].y + (size_t)t * outs[0].stride, outs[1].y + (size_t)t * outs[1].stride, 0, g->rows);
            return;
        }
    }
    int32_t nb = a->matrix[outs[0].index].num_blocks;
    for (int j = 1; j < count; j++)
        if (a->matrix[outs[j].index].num_blocks > nb) nb = a->matrix[outs[j].index].num_blocks;
    int32_t team = rt_team_of(m), chunks = nb < team ? nb : team;
#pragma omp parallel for schedule(static, 1) num_threads(team)
    for (int32_t c = 0; c < chunks; c++) {
        int32_t r0 = 0, r1 = 0, offset = 0;
        for (int j = 0; j < count; j++) {
            bitlinear_part(m, w, &outs[j], w->acc + offset, n, c, chunks, &r0, &r1);
            offset += a->matrix[outs[j].index].rows;
        }
        if (glu)
            for (int32_t t = 0; t < n; t++)
                activate(a, outs[0].y + (size_t)t * outs[0].stride, outs[1].y + (size_t)t * outs[1].stride, r0, r1);
    }
}

static void bitlinear1(const rsr_model *m, rt_work *w, int32_t index, int32_t n, float *y, size_t stride,
                       int accumulate) {
    bl_out o = {index, y, stride, accumulate};
    bitlinear(m, w, &o, 1, n, 0);
}

/* RMSNorm of each of the heads of x in place, weights w [d] (Qwen3's q and k norms): rmsnorm's
 * arithmetic, head by head. */
static void head_norms(float *x, int32_t heads, int32_t d, const float *w, float eps) {
    for (int32_t h = 0; h < heads; h++) {
        float *v = x + (size_t)h * (size_t)d, ss = 0;
        for (int32_t i = 0; i < d; i++) ss += v[i] * v[i];
        float inv = 1.0f / sqrtf(ss / (float)d + eps);
        for (int32_t i = 0; i < d; i++) v[i] = (v[i] * inv) * w[i];
    }
}

/* The NeoX rotation of the first rd of each head's d values (rd = d: all), pairs i and i + rd/2, the
 * angles' cos and sin in cs (rsr_rope_angles of rd). */
static void rope(float *x, int32_t heads, int32_t d, int32_t rd, const float *cs) {
    int32_t half = rd / 2;
    for (int32_t i = 0; i < half; i++) {
        float c = cs[i], sn = cs[half + i];
        for (int32_t h = 0; h < heads; h++) {
            float *v = x + (size_t)h * (size_t)d;
            float x0 = v[i], x1 = v[i + half];
            v[i] = x0 * c - x1 * sn;
            v[i + half] = x1 * c + x0 * sn;
        }
    }
}

/* The int8 inputs of the BitLinear layers that read rows x[t·x_stride ..+cols) (w->xq rows, w->xs
 * scales), RMSNorm'd first when norm is given (into w->xn) and normalised again inside the
 * BitLinear: with the weights `inner` (a projection's own norm, rsr_artifact_layer.in_norm), or
 * without weights when the model says so (Falcon-E). One parallel region over groups of RMS_ROWS
 * rows, their sums of squares together (sumsq_rows), each row quantised while it is in cache.
 * `reader`: a matrix that reads the input (all that do have its fold, rsr_artifact_matrix.in_signs),
 * whose rotation comes last, before the quantiser. */
static void norm_inputs(const rsr_model *m, rt_work *w, const float *x, size_t x_stride, const float *norm,
                        const float *inner, int32_t cols, int32_t n, int32_t reader) {
    const rsr_artifact *a = m->a;
    const int32_t groups = (n + RMS_ROWS - 1) / RMS_ROWS;
    const size_t W = (size_t)w->widest;
    const bool fold = rt_folded(a, &a->matrix[reader]); /* PrismML's Hadamard fold: rotated, then quantised */
#pragma omp parallel for schedule(static) num_threads(team_for(m, groups))
    for (int32_t g = 0; g < groups; g++) {
        int32_t t0 = g * RMS_ROWS, k = n - t0 < RMS_ROWS ? n - t0 : RMS_ROWS;
        const float *rows = x;
        size_t stride = x_stride;
        if (norm) {
            float ss[RMS_ROWS];
            if (k == RMS_ROWS) sumsq_rows(ss, x + (size_t)t0 * x_stride, x_stride, cols);
            for (int32_t t = t0; t < t0 + k; t++) {
                const float *xt = x + (size_t)t * x_stride;
                if (k == RMS_ROWS)
                    rms_scale(w->xn + (size_t)t * W, xt, norm, cols, ss[t - t0], a->rms_eps);
                else
                    rmsnorm(w->xn + (size_t)t * W, xt, norm, cols, a->rms_eps);
            }
            rows = w->xn, stride = W;
        }
        for (int32_t t = t0; t < t0 + k; t++) {
            const float *xt = rows + (size_t)t * stride;
            if (inner || a->bitlinear_norm) {
                float *tmp = w->tmp + (size_t)t * W;
                rmsnorm(tmp, xt, inner, cols, inner ? a->rms_eps : a->bitlinear_eps);
                xt = tmp;
            }
            if (fold) { /* the rotated copy (the float input stays as it is for the rest of the layer) */
                float *tmp = w->tmp + (size_t)t * W;
                rt_fold_input(a, m->blob, &a->matrix[reader], tmp, xt);
                xt = tmp;
            }
            if (a->act_block)
                quantize_blocks(w->xq + (size_t)t * (size_t)w->xq_stride, w->xd + (size_t)t * (size_t)w->xd_stride, xt,
                                cols, a->act_block, a->act_quant);
            else
                w->xs[t] = quantize(w->xq + (size_t)t * (size_t)w->xq_stride, xt, cols);
        }
    }
}

/* The projections that read the hidden state h through the layer's norm: one input for all of
 * them, or each through its own norm as well (in_norm[j] set: the BitNet embedding models), the
 * gated activation then applied after both products (glu). */
static void projections(const rsr_model *m, rt_work *w, const float *norm, const uint64_t *in_norm, const bl_out *outs,
                        int count, int32_t rows, int glu) {
    const rsr_artifact *a = m->a;
    if (in_norm[0] == RSR_NO_TENSOR) {
        norm_inputs(m, w, w->h, (size_t)a->hidden, norm, NULL, a->hidden, rows, outs[0].index);
        bitlinear(m, w, outs, count, rows, glu);
        return;
    }
    for (int j = 0; j < count; j++) { /* the layer's norm once, into w->xn; then read from there */
        const float *x = j ? w->xn : w->h;
        norm_inputs(m, w, x, j ? (size_t)w->widest : (size_t)a->hidden, j ? NULL : norm, blob_f32(m, in_norm[j]),
                    a->hidden, rows, outs[j].index);
        bitlinear(m, w, &outs[j], 1, rows, 0);
    }
    if (glu) {
        const int32_t cols = a->matrix[outs[0].index].rows;
#pragma omp parallel for schedule(static) num_threads(team_for(m, rows))
        for (int32_t t = 0; t < rows; t++)
            activate(a, outs[0].y + (size_t)t * outs[0].stride, outs[1].y + (size_t)t * outs[1].stride, 0, cols);
    }
}

/* The run holding row r (runs are in row order). */
static const rt_run *run_of(const rt_run *runs, int32_t nruns, int32_t r) {
    int32_t j = 0;
    while (j + 1 < nruns && runs[j + 1].row0 <= r) j++;
    return &runs[j];
}

/* h += rmsnorm(y, post) for the rows' outputs y in w->tmp (Gemma3's norm of the attention's and the
 * FFN's output before the residual add), normed into w->xn. */
static void post_norm_add(const rsr_model *m, rt_work *w, const float *post, int32_t rows) {
    const rsr_artifact *a = m->a;
    const size_t W = (size_t)w->widest, H = (size_t)a->hidden;
#pragma omp parallel for schedule(static) num_threads(team_for(m, rows))
    for (int32_t t = 0; t < rows; t++) {
        float *y = w->xn + (size_t)t * W, *h = w->h + (size_t)t * H;
        rmsnorm(y, w->tmp + (size_t)t * W, post, a->hidden, a->rms_eps);
        for (size_t i = 0; i < H; i++) h[i] += y[i];
    }
}

/* A matrix whose output goes to the residual stream (o, down): added to h, or through the post norm. */
static void residual_out(const rsr_model *m, rt_work *w, int32_t index, uint64_t post, int32_t rows) {
    if (post == RSR_NO_TENSOR) {
        bitlinear1(m, w, index, rows, w->h, (size_t)m->a->hidden, 1);
        return;
    }
    bitlinear1(m, w, index, rows, w->tmp, (size_t)w->widest, 0);
    post_norm_add(m, w, blob_f32(m, post), rows);
}

/* ---- a mixture of experts (rsr_artifact_layer.num_experts > 0; docs/moe.md) ---- */

/* logits[e] = router[e] · x over H columns in fp32: column i into partial sum i % 16, the 16 then
 * added pairwise (j + 8, j + 4, ...), so that each clone's vectors round alike. */
RT_INLINE_BODY void router_logits_body(const float *restrict router, const float *restrict x, int32_t H, int32_t E,
                                       float *restrict logits) {
    for (int32_t e = 0; e < E; e++) {
        const float *restrict r = router + (size_t)e * (size_t)H;
        float acc[16] = {0};
        int32_t i = 0;
        for (; i + 16 <= H; i += 16)
            for (int j = 0; j < 16; j++) acc[j] += r[i + j] * x[i + j];
        for (int j = 0; i + j < H; j++) acc[j] += r[i + j] * x[i + j];
        for (int w = 8; w > 0; w /= 2)
            for (int j = 0; j < w; j++) acc[j] += acc[j + w];
        logits[e] = acc[0];
    }
}
RT_ISA_CLONES(router_logits,
              (const float *restrict router, const float *restrict x, int32_t H, int32_t E, float *restrict logits),
              (router, x, H, E, logits))

/* Row x's routing: logits = router · x (router_logits), p = softmax(logits) (exp(l - max), times
 * 1 / Σ), the k largest p in descending order (ties: the lower index first; pick), and their
 * weights p / max(Σ of the k, 2^-14) as llama.cpp renormalises (wt). p: [E] scratch. */
static void route_row(const float *router, const float *x, int32_t H, int32_t E, int32_t k, float *p, int32_t *pick,
                      float *wt) {
    float mx = -INFINITY, sum = 0, chosen = 0;
    router_logits(router, x, H, E, p);
    for (int32_t e = 0; e < E; e++) mx = fmaxf(mx, p[e]);
    for (int32_t e = 0; e < E; e++) p[e] = expf(p[e] - mx), sum += p[e];
    for (int32_t e = 0; e < E; e++) p[e] *= 1.0f / sum;
    for (int32_t j = 0; j < k; j++) {
        int32_t best = -1;
        for (int32_t e = 0; e < E; e++) {
            bool taken = false;
            for (int32_t i = 0; i < j; i++) taken |= pick[i] == e;
            if (!taken && (best < 0 || p[e] > p[best])) best = e;
        }
        pick[j] = best, chosen += p[best];
    }
    chosen = fmaxf(chosen, 6.103515625e-5f);
    for (int32_t j = 0; j < k; j++) wt[j] = p[pick[j]] / chosen;
}

/* RSR_TRACE_ROUTING: a line "POS LAYER E1 E2 ..." per row, the chosen experts in their order. */
static void trace_routes(const rsr_model *m, const rt_work *w, int32_t l, int32_t k, const rt_run *runs, int32_t nruns,
                         int32_t rows) {
    for (int32_t t = 0; t < rows; t++) {
        const rt_run *r = run_of(runs, nruns, t);
        fprintf(m->route_trace, "%d %d", r->s->pos + t - r->row0, l);
        for (int32_t j = 0; j < k; j++) fprintf(m->route_trace, " %d", w->moe_pick[(size_t)t * (size_t)k + (size_t)j]);
        fputc('\n', m->route_trace);
    }
    fflush(m->route_trace);
}

/* g = silu(g) · u over n values; with clamp c > 0, silu(min(g, c)) · clamp(u, -c, c) (ggml's
 * swiglu_clamp). */
static void swiglu_clamped(float *g, const float *u, int32_t n, float c) {
    for (int32_t i = 0; i < n; i++) {
        float x = c > 0 ? fminf(g[i], c) : g[i], y = c > 0 ? fminf(fmaxf(u[i], -c), c) : u[i];
        g[i] = (x / (1.0f + expf(-x))) * y;
    }
}

/* One expert of an FFN of experts: its matrices gate, up and down (the indices the descriptor
 * gives, each checked by check_artifact), its rows F, its SwiGLU clamp (0: none); the weight of the
 * row of slot s (row s / K) is wt[s]. */
typedef struct expert_call {
    int32_t gate, up, down, F;
    float clamp;
    size_t K;
    const float *wt;
} expert_call;

/* The n rows of w->moe_rows (slots: row t's j-th as t·K + j) through expert x: their kept inputs
 * gathered into rows 0..n-1 of xq, gate and up in one call, the clamped SiLU-GLU, down into
 * w->tmp; then each row's output times its weight added to its row of w->moe_out. */
static void run_expert(const rsr_model *m, rt_work *w, const expert_call *x, int32_t n) {
    const rsr_artifact *a = m->a;
    const size_t I = (size_t)a->intermediate, W = (size_t)w->widest, H = (size_t)a->hidden, K = x->K;
    const size_t xq = (size_t)w->xq_stride, xd = (size_t)w->xd_stride;
    for (int32_t i = 0; i < n; i++) {
        const size_t t = (size_t)w->moe_rows[i] / K;
        memcpy(w->xq + (size_t)i * xq, w->moe_xq + t * xq, xq);
        w->xs[i] = w->moe_xs[t];
        if (w->xd) memcpy(w->xd + (size_t)i * xd, w->moe_xd + t * xd, sizeof(float) * xd);
    }
    const int32_t F = x->F;
    bl_out gu[2] = {{x->gate, w->gate, I, 0}, {x->up, w->up, I, 0}};
    bitlinear(m, w, gu, 2, n, 0);
#pragma omp parallel for schedule(static) num_threads(team_for(m, n))
    for (int32_t i = 0; i < n; i++) swiglu_clamped(w->gate + (size_t)i * I, w->up + (size_t)i * I, F, x->clamp);
    norm_inputs(m, w, w->gate, I, NULL, NULL, F, n, x->down);
    bitlinear1(m, w, x->down, n, w->tmp, W, 0);
#pragma omp parallel for schedule(static) num_threads(team_for(m, n))
    for (int32_t i = 0; i < n; i++) { /* each row once per expert: no two threads share one */
        const size_t slot = (size_t)w->moe_rows[i], t = slot / K;
        const float wt = x->wt[slot], *y = w->tmp + (size_t)i * W;
        float *out = w->moe_out + t * H;
        for (size_t c = 0; c < H; c++) out[c] += y[c] * wt;
    }
}

/* The weight of a shared expert's output for the FFN input x: sigmoid(shared_gate · x) (the dot
 * product as the router's, router_logits), 1 without shared_gate; 0 without a shared expert. */
static float shared_weight(const rsr_model *m, const rsr_artifact_layer *L, const float *x) {
    if (L->shared_ff <= 0) return 0;
    if (L->shared_gate == RSR_NO_TENSOR) return 1;
    float s;
    router_logits(blob_f32(m, L->shared_gate), x, m->a->hidden, 1, &s);
    return 1.0f / (1.0f + expf(-s));
}

/* Layer l's FFN as a mixture of experts for every row: the normed input quantised once and kept,
 * each row routed, then expert by expert (ascending) the rows that chose it in one batched call of
 * its kernels, their weighted outputs summed per row in that order, then a shared expert's for all
 * rows, and added to h. A row's sums are the same whichever rows share its step. */
static void moe_ffn(const rsr_model *m, rt_work *w, int32_t l, const rt_run *runs, int32_t nruns, int32_t rows) {
    const rsr_artifact *a = m->a;
    const rsr_artifact_layer *L = &a->layer[l];
    const size_t H = (size_t)a->hidden, W = (size_t)w->widest, K = (size_t)L->experts_used, E = (size_t)L->num_experts;
    norm_inputs(m, w, w->h, H, blob_f32(m, L->ffn_norm), NULL, a->hidden, rows,
                L->shared_ff > 0 ? L->gate : L->expert_first); /* every expert's gate and up have its fold */
    memcpy(w->moe_xq, w->xq, (size_t)rows * (size_t)w->xq_stride);
    memcpy(w->moe_xs, w->xs, sizeof(float) * (size_t)rows);
    if (w->xd) memcpy(w->moe_xd, w->xd, sizeof(float) * (size_t)rows * (size_t)w->xd_stride);
#pragma omp parallel for schedule(static) num_threads(team_for(m, rows))
    for (int32_t t = 0; t < rows; t++) {
        route_row(blob_f32(m, L->router), w->xn + (size_t)t * W, a->hidden, L->num_experts, L->experts_used,
                  w->moe_p + (size_t)t * E, w->moe_pick + (size_t)t * K, w->moe_w + (size_t)t * K);
        memset(w->moe_out + (size_t)t * H, 0, sizeof(float) * H);
        w->moe_shared[t] = shared_weight(m, L, w->xn + (size_t)t * W);
    }
    if (m->route_trace) trace_routes(m, w, l, L->experts_used, runs, nruns, rows);
    for (int32_t e = 0; e < L->num_experts; e++) {
        int32_t n = 0;
        for (size_t s = 0; s < (size_t)rows * K; s++)
            if (w->moe_pick[s] == e) w->moe_rows[n++] = (int32_t)s;
        const int32_t g = L->expert_first + 3 * e;
        const expert_call x = {g, g + 1, g + 2, L->expert_ff, L->swiglu_clamp, K, w->moe_w};
        if (n) run_expert(m, w, &x, n);
    }
    if (L->shared_ff > 0) { /* every row, after the routed experts */
        for (int32_t t = 0; t < rows; t++) w->moe_rows[t] = t;
        const expert_call x = {L->gate, L->up, L->down, L->shared_ff, 0, 1, w->moe_shared};
        run_expert(m, w, &x, rows);
    }
#pragma omp parallel for schedule(static) num_threads(team_for(m, rows))
    for (int32_t t = 0; t < rows; t++) {
        float *h = w->h + (size_t)t * H;
        const float *y = w->moe_out + (size_t)t * H;
        for (size_t c = 0; c < H; c++) h[c] += y[c];
    }
}

/* Writes KV head kvh's key and value of the token at position pos (kt, vt: the token's rows of all
 * KV heads) into its session's cache, narrowed to the cache's type; twice where a windowed layer
 * mirrors the slot (rt_kv_layer). */
static void kv_store(rsr_session *s, int32_t l, int32_t kvh, int32_t pos, const float *kt, const float *vt) {
    const int32_t d = s->model->a->head_dim;
    const size_t off = (size_t)kvh * (size_t)d, at = kv_row(s, l, kvh, pos);
    attn_narrow_row(s->kv_type, kt + off, d, s->k_cache + at);
    attn_narrow_row(s->kv_type, vt + off, d, s->v_cache + at);
    const rt_kv_layer *L = &s->kv_layer[l];
    if (L->ring && pos % L->ring < L->rows - L->ring) {
        const size_t mirror = at + (size_t)L->ring * s->kv_bytes;
        memcpy(s->k_cache + mirror, s->k_cache + at, s->kv_bytes);
        memcpy(s->v_cache + mirror, s->v_cache + at, s->kv_bytes);
    }
}

static void ffn_step(const rsr_model *m, rt_work *w, int32_t l, const rt_run *runs, int32_t nruns, int32_t rows);

/* ---- Qwen3.5's gated DeltaNet (rsr_artifact_layer.kind RSR_LAYER_DELTANET; docs/qwen35.md) ---- */

/* A step of more than DN_SNAP_BACK tokens (a prompt) keeps the recurrent state DN_SNAP_BACK tokens
 * before its end (a checkpoint: rsr_session.dn_ckpt), which rsr_session_truncate can go back to: the next turn of
 * a chat shares the prompt but for its last few tokens (a template closes a turn otherwise than it
 * opened the reply: Qwen3.5's drops the empty <think></think> of an earlier turn). */
#define DN_SNAP_BACK 8

/* The offset of layer l's recurrent state in a session's: the layers' states one after the other. */
static size_t dn_state_at(const rsr_artifact *a, int32_t l) {
    size_t at = 0;
    for (int32_t j = 0; j < l; j++) {
        const rsr_artifact_layer *L = &a->layer[j];
        if (L->kind != RSR_LAYER_DELTANET) continue;
        const size_t D = (size_t)L->dn_head, conv = 2 * (size_t)L->dn_k_heads * D + (size_t)L->dn_v_heads * D;
        at += (size_t)(L->dn_conv - 1) * conv + (size_t)L->dn_v_heads * D * D;
    }
    return at;
}

/* Whether a step of run r keeps a checkpoint (DN_SNAP_BACK before its end). */
static bool dn_ckpt_step(const rt_run *r) { return r->s->dn_ckpt && !r->s->dn_draft_rec && r->n > DN_SNAP_BACK; }
/* The checkpoint of run r's step at token t, or NULL: token t is not where it is kept. */
static float *dn_snap_at(const rt_run *r, int32_t t) {
    const rsr_session *s = r->s;
    return s->dn_ckpt_w >= 0 && dn_ckpt_step(r) && t == r->row0 + r->n - 1 - DN_SNAP_BACK ? s->dn_ckpt[s->dn_ckpt_w]
                                                                                          : NULL;
}

/* The checkpoint a step of s writes: a free one (made now), else of those taken the one nearest the
 * one below it (position 0 below the lowest), so that the kept positions stay spread over the
 * context; -1 where no memory is left for a new one (the step keeps none). */
static int32_t ckpt_choose(rsr_session *s) {
    int32_t pick = -1, gap = INT32_MAX;
    for (int32_t i = 0; i < s->dn_ckpt_cap; i++) {
        if (s->dn_ckpt_pos[i] >= 0) continue;
        if (!s->dn_ckpt[i]) s->dn_ckpt[i] = malloc(sizeof(float) * s->model->dn_state_floats);
        if (s->dn_ckpt[i]) return i;
    }
    for (int32_t i = 0; i < s->dn_ckpt_cap; i++) {
        int32_t below = 0;
        if (s->dn_ckpt_pos[i] < 0) continue;
        for (int32_t j = 0; j < s->dn_ckpt_cap; j++)
            if (s->dn_ckpt_pos[j] < s->dn_ckpt_pos[i] && s->dn_ckpt_pos[j] > below) below = s->dn_ckpt_pos[j];
        if (s->dn_ckpt_pos[i] - below < gap) gap = s->dn_ckpt_pos[i] - below, pick = i;
    }
    return pick;
}

/* ggml's softplus: x above 20, else log(1 + e^x) */
static float softplus(float x) { return x > 20.0f ? x : logf(1.0f + expf(x)); }
static float silu(float x) { return x / (1.0f + expf(-x)); }

/* V head h's step of the delta rule on its state T [D (key dimension j)][D (value dimension i)]:
 * T = e^g T; delta = beta (v − Tᵀ k); T += k deltaᵀ; o = Tᵀ q. Every sum runs over j in ascending
 * order, each a vector across i (rows of T contiguous), so the clones round alike. sk: [D] scratch. */
RT_INLINE_BODY void delta_rule_body(float *restrict T, const float *restrict q, const float *restrict k,
                                    const float *restrict v, float decay, float b, float *restrict o,
                                    float *restrict sk, int32_t D) {
    for (int32_t i = 0; i < D; i++) sk[i] = 0, o[i] = 0;
    for (int32_t j = 0; j < D; j++) {
        float *restrict Tj = T + (size_t)j * (size_t)D;
        const float kj = k[j];
        for (int32_t i = 0; i < D; i++) Tj[i] *= decay, sk[i] += Tj[i] * kj;
    }
    for (int32_t i = 0; i < D; i++) sk[i] = b * (v[i] - sk[i]); /* delta */
    for (int32_t j = 0; j < D; j++) {
        float *restrict Tj = T + (size_t)j * (size_t)D;
        const float kj = k[j], qj = q[j];
        for (int32_t i = 0; i < D; i++) Tj[i] += kj * sk[i], o[i] += Tj[i] * qj;
    }
}
RT_ISA_CLONES(delta_rule,
              (float *restrict T, const float *restrict q, const float *restrict k, const float *restrict v,
               float decay, float b, float *restrict o, float *restrict sk, int32_t D),
              (T, q, k, v, decay, b, o, sk, D))

/* One token of layer L into the recurrence's inputs, with session state st's convolution history:
 * x its [q|k|v] before the convolution, overwritten by the convolution's SiLU, q and k of each head
 * to unit length and q times 1/sqrt(D); the history moves on by the token. */
static void deltanet_mix(const rsr_model *m, const rsr_artifact_layer *L, float *st, float *x) {
    const int32_t Hk = L->dn_k_heads, Hv = L->dn_v_heads, D = L->dn_head, K = L->dn_conv;
    const size_t conv = 2 * (size_t)Hk * (size_t)D + (size_t)Hv * (size_t)D;
    const float *cw = (const float *)(m->blob + L->dn_conv_w);
    float *hist = st;
    for (size_t c = 0; c < conv; c++) { /* the causal convolution, oldest token first, then SiLU */
        const float *wc = cw + c * (size_t)K;
        float y = 0;
        for (int32_t k = 0; k < K - 1; k++) y += wc[k] * hist[(size_t)k * conv + c];
        y += wc[K - 1] * x[c];
        for (int32_t k = 0; k + 1 < K - 1; k++) hist[(size_t)k * conv + c] = hist[(size_t)(k + 1) * conv + c];
        if (K > 1) hist[(size_t)(K - 2) * conv + c] = x[c];
        x[c] = silu(y);
    }
    const float qs = 1.0f / sqrtf((float)D);
    for (int32_t h = 0; h < 2 * Hk; h++) { /* q and k of each head to unit length; q times 1/sqrt(D) */
        float *u = x + (size_t)h * (size_t)D, ss = 0;
        for (int32_t i = 0; i < D; i++) ss += u[i] * u[i];
        const float inv = 1.0f / sqrtf(ss + m->a->rms_eps) * (h < Hk ? qs : 1.0f);
        for (int32_t i = 0; i < D; i++) u[i] *= inv;
    }
}

/* V head h of one token through its state in session state st (after deltanet_mix: x the token's
 * [q|k|v], z its gate, beta and g per V head): o's head h, the gated, normed output. */
static void deltanet_head(const rsr_model *m, const rsr_artifact_layer *L, float *st, const float *x, const float *z,
                          const float *beta, const float *g, float *o, int32_t h) {
    const int32_t Hk = L->dn_k_heads, Hv = L->dn_v_heads, D = L->dn_head, K = L->dn_conv;
    const size_t conv = 2 * (size_t)Hk * (size_t)D + (size_t)Hv * (size_t)D;
    const float *nw = (const float *)(m->blob + L->dn_norm);
    float *S = st + (size_t)(K - 1) * conv + (size_t)h * (size_t)D * (size_t)D;
    const float *qh = x + (size_t)(h % Hk) * (size_t)D, *kh = x + (size_t)(Hk + h % Hk) * (size_t)D;
    const float *vh = x + 2 * (size_t)Hk * (size_t)D + (size_t)h * (size_t)D;
    float *oh = o + (size_t)h * (size_t)D, sk[1024]; /* D <= 1024 (model.c) */
    delta_rule(S, qh, kh, vh, expf(g[h]), beta[h], oh, sk, D);
    float ss = 0; /* RMSNorm of the head's output times SiLU of its gate */
    for (int32_t i = 0; i < D; i++) ss += oh[i] * oh[i];
    const float inv = 1.0f / sqrtf(ss / (float)D + m->a->rms_eps);
    for (int32_t i = 0; i < D; i++) oh[i] = (oh[i] * inv) * nw[i] * silu(z[(size_t)h * (size_t)D + (size_t)i]);
}

/* ---- a draft's record, and its replay (rsr_session.dn_draft_*) ---- */

/* A DeltaNet layer's floats of the state, and of one token's record ([q|k|v] before the
 * convolution, beta and g) */
static size_t dn_layer_floats(const rsr_model *m) {
    const rsr_artifact *a = m->a;
    for (int32_t l = 0; l < a->num_layers; l++)
        if (a->layer[l].kind == RSR_LAYER_DELTANET) return dn_state_at(a, l + 1) - dn_state_at(a, l);
    return 0;
}
static size_t dn_token_floats(const rsr_model *m) { return (size_t)m->dn_conv_dim + 2 * (size_t)m->dn_v_heads; }

/* Room in the record for a verification of n tokens */
static rsr_status dn_record_reserve(rsr_session *s, int32_t n) {
    const rsr_model *m = s->model;
    if (!s->dn_draft_snap && !(s->dn_draft_snap = malloc(sizeof(float) * m->dn_state_floats)))
        return rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for a copy of the recurrent state");
    if (n <= s->dn_draft_cap) return RSR_OK;
    const size_t layers = m->dn_state_floats / dn_layer_floats(m); /* then n rows of [q|k|v]: dn_replay's */
    float *in = realloc(s->dn_draft_in, sizeof(float) * (size_t)n * (layers * dn_token_floats(m) + m->dn_conv_dim));
    if (!in) return rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory recording a draft of %d tokens", n);
    s->dn_draft_in = in, s->dn_draft_cap = n;
    return RSR_OK;
}

/* Layer l's part of the record for run r's tokens (before the step's recurrence changes anything):
 * its state at the draft's first position, and each token's inputs. */
static void dn_record(const rsr_model *m, const rt_work *w, int32_t l, const rt_run *r) {
    rsr_session *s = r->s;
    const size_t at = dn_state_at(m->a, l), LF = dn_layer_floats(m), TF = dn_token_floats(m);
    const size_t CS = (size_t)m->dn_conv_dim, HS = (size_t)m->dn_v_heads;
    if (s->pos == s->dn_draft_from) memcpy(s->dn_draft_snap + at, s->dn_state + at, sizeof(float) * LF);
    float *rec = s->dn_draft_in + at / LF * (size_t)s->dn_draft_cap * TF;
    for (int32_t t = 0; t < r->n; t++) {
        float *o = rec + (size_t)(s->pos - s->dn_draft_from + t) * TF;
        const size_t row = (size_t)(r->row0 + t);
        memcpy(o, w->dn_qkv + row * CS, sizeof(float) * CS);
        memcpy(o + CS, w->dn_beta + row * HS, sizeof(float) * HS);
        memcpy(o + CS + HS, w->dn_g + row * HS, sizeof(float) * HS);
    }
}

/* The recurrent state after the draft's first keep tokens: the copy, then those tokens' recurrence
 * again from the record (the operations of deltanet_recur on the same values: the same bits). */
static void dn_replay(rsr_session *s, int32_t keep) {
    const rsr_model *m = s->model;
    const rsr_artifact *a = m->a;
    const size_t LF = dn_layer_floats(m), TF = dn_token_floats(m), CS = (size_t)m->dn_conv_dim;
    for (int32_t l = 0; l < a->num_layers; l++) {
        const rsr_artifact_layer *L = &a->layer[l];
        if (L->kind != RSR_LAYER_DELTANET) continue;
        const size_t at = dn_state_at(a, l), hist = (size_t)(L->dn_conv - 1) * CS, D2 = (size_t)L->dn_head * L->dn_head;
        float *st = s->dn_state + at, *x = s->dn_draft_in + m->dn_state_floats / LF * (size_t)s->dn_draft_cap * TF;
        const float *rec = s->dn_draft_in + at / LF * (size_t)s->dn_draft_cap * TF;
        memcpy(st, s->dn_draft_snap + at, sizeof(float) * LF);
        for (int32_t t = 0; t < keep; t++) {
            memcpy(x + (size_t)t * CS, rec + (size_t)t * TF, sizeof(float) * CS);
            deltanet_mix(m, L, st, x + (size_t)t * CS);
        }
        const int32_t Hk = L->dn_k_heads, D = L->dn_head;
#pragma omp parallel for schedule(dynamic, 1) num_threads(rt_team_of(m))
        for (int32_t h = 0; h < L->dn_v_heads; h++) {
            float o[1024], sk[1024]; /* D <= 1024 (model.c) */
            for (int32_t t = 0; t < keep; t++) {
                const float *xt = x + (size_t)t * CS, *r = rec + (size_t)t * TF + CS;
                delta_rule(st + hist + (size_t)h * D2, xt + (size_t)(h % Hk) * (size_t)D,
                           xt + (size_t)(Hk + h % Hk) * (size_t)D,
                           xt + 2 * (size_t)Hk * (size_t)D + (size_t)h * (size_t)D, expf(r[L->dn_v_heads + h]), r[h], o,
                           sk, D);
            }
        }
    }
}

/* Layer l's recurrence for the rows of every run: the convolution and the norms token by token in
 * each run, then each (run, V head) pair's tokens in order through the head's state, the pairs
 * spread over the team (48 heads of a 27B layer keep both cores busy; a decode step that ran them
 * on one thread left the other waiting for a tenth of the token: docs/performance.md). Every head
 * runs the same operations on the same values whichever thread runs it: a prompt at once or token
 * by token gives the same bits. */
static void deltanet_recur(const rsr_model *m, rt_work *w, int32_t l, const rt_run *runs, int32_t nruns) {
    const rsr_artifact_layer *L = &m->a->layer[l];
    const size_t CS = (size_t)m->dn_conv_dim, VS = (size_t)m->dn_value_dim, HS = (size_t)m->dn_v_heads;
    const int32_t Hv = L->dn_v_heads, pairs = nruns * Hv;
    const size_t at = dn_state_at(m->a, l), hist = (size_t)(L->dn_conv - 1) * CS, D2 = (size_t)L->dn_head * L->dn_head;
#pragma omp parallel for schedule(dynamic, 1) num_threads(team_for(m, nruns))
    for (int32_t j = 0; j < nruns; j++) { /* sessions apart, each run's tokens in order */
        float *st = runs[j].s->dn_state + at;
        if (runs[j].s->dn_draft_rec) dn_record(m, w, l, &runs[j]);
        for (int32_t t = runs[j].row0; t < runs[j].row0 + runs[j].n; t++) {
            deltanet_mix(m, L, st, w->dn_qkv + (size_t)t * CS);
            float *snap = dn_snap_at(&runs[j], t);
            if (snap) memcpy(snap + at, st, sizeof(float) * hist);
        }
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(team_for(m, pairs))
    for (int32_t p = 0; p < pairs; p++) {
        const int32_t j = p / Hv, h = p % Hv;
        float *st = runs[j].s->dn_state + at;
        const size_t S = hist + (size_t)h * D2; /* head h's state within the layer's */
        for (int32_t t = runs[j].row0; t < runs[j].row0 + runs[j].n; t++) {
            deltanet_head(m, L, st, w->dn_qkv + (size_t)t * CS, w->dn_z + (size_t)t * VS, w->dn_beta + (size_t)t * HS,
                          w->dn_g + (size_t)t * HS, w->att + (size_t)t * VS, h);
            float *snap = dn_snap_at(&runs[j], t);
            if (snap) memcpy(snap + at + S, st + S, sizeof(float) * D2);
        }
    }
}

/* Layer l, a gated DeltaNet, for every row: [q|k|v] and z over all rows at once, beta and g in fp32
 * from the normed input, then the recurrence (deltanet_recur), the output projection added to h, and
 * the FFN. */
static rsr_status deltanet_step(const rsr_model *m, rt_work *w, int32_t l, const rt_run *runs, int32_t nruns,
                                int32_t rows) {
    const rsr_artifact *a = m->a;
    const rsr_artifact_layer *L = &a->layer[l];
    const size_t CS = (size_t)m->dn_conv_dim, VS = (size_t)m->dn_value_dim, HS = (size_t)m->dn_v_heads;
    const size_t W = (size_t)w->widest, H = (size_t)a->hidden;
    const int32_t Hv = L->dn_v_heads, vd = Hv * L->dn_head;
    bl_out in[2] = {{L->q, w->dn_qkv, CS, 0}, {L->k, w->dn_z, VS, 0}};
    projections(m, w, blob_f32(m, L->attn_norm), L->in_norm + RSR_IN_Q, in, 2, rows, 0);
    const float *wb = blob_f32(m, L->dn_beta), *wa = blob_f32(m, L->dn_alpha), *dt = blob_f32(m, L->dn_dt_bias),
                *A = blob_f32(m, L->dn_a);
    /* each (row, head) pair on its own: a decode's one row spreads its heads over the team */
    const int32_t row_heads = rows * Hv;
#pragma omp parallel for schedule(static) num_threads(team_for(m, row_heads))
    for (int32_t p = 0; p < row_heads; p++) { /* w->xn: the normed input (projections) */
        const int32_t t = p / Hv, h = p % Hv;
        const float *x = w->xn + (size_t)t * W;
        float sb = 0, sa = 0;
        for (size_t i = 0; i < H; i++) sb += wb[(size_t)h * H + i] * x[i], sa += wa[(size_t)h * H + i] * x[i];
        w->dn_beta[(size_t)t * HS + (size_t)h] = 1.0f / (1.0f + expf(-sb));
        w->dn_g[(size_t)t * HS + (size_t)h] = A[h] * softplus(sa + dt[h]);
    }
    deltanet_recur(m, w, l, runs, nruns);
    norm_inputs(m, w, w->att, VS, NULL, NULL, vd, rows, L->o);
    residual_out(m, w, L->o, L->attn_post_norm, rows);
    ffn_step(m, w, l, runs, nruns, rows);
    return RSR_OK;
}

/* Layer l for every row: the products over all rows at once, RoPE and the KV cache row by row
 * into the row's own session, attention run by run over that session's cache (token t of a run
 * sees its session's positions up to pos + t). */
static rsr_status layer_step(const rsr_model *m, rt_work *w, int32_t l, const rt_run *runs, int32_t nruns,
                             int32_t rows) {
    const rsr_artifact *a = m->a;
    const rsr_artifact_layer *L = &a->layer[l];
    if (L->kind == RSR_LAYER_DELTANET) return deltanet_step(m, w, l, runs, nruns, rows);
    int32_t d = a->head_dim, rd = a->rope_dims ? a->rope_dims : d;
    size_t q_out = (size_t)a->num_heads * (size_t)d, kv_out = (size_t)a->num_kv_heads * (size_t)d;
    bl_out qkv[3] = {{L->q, L->attn_gate ? w->qg : w->q, L->attn_gate ? 2 * q_out : q_out, 0},
                     {L->k, w->k, kv_out, 0},
                     {L->v, w->v, kv_out, 0}};
    projections(m, w, blob_f32(m, L->attn_norm), L->in_norm + RSR_IN_Q, qkv, 3, rows, 0);
    /* the RoPE table of the layer's base; a scale of the scores other than the kernels' 1/sqrtf(d) on q */
    const float *cs = L->rope_theta != 0 && L->rope_theta != a->rope_theta ? w->rope2 : w->rope;
    const float qscale =
        a->attn_scale != 0 && a->attn_scale != 1.0f / sqrtf((float)d) ? a->attn_scale * sqrtf((float)d) : 1.0f;
#pragma omp parallel for schedule(static) num_threads(team_for(m, rows))
    for (int32_t t = 0; t < rows; t++) { /* RoPE and the cache rows of token t: its own rows only */
        const rt_run *r = run_of(runs, nruns, t);
        float *qt = w->q + (size_t)t * q_out, *kt = w->k + (size_t)t * kv_out;
        if (L->attn_gate) /* q's rows per head [q | gate] (Qwen3.5) */
            for (int32_t h = 0; h < a->num_heads; h++) {
                const float *src = w->qg + (size_t)t * 2 * q_out + (size_t)h * 2 * (size_t)d;
                memcpy(qt + (size_t)h * (size_t)d, src, sizeof(float) * (size_t)d);
                memcpy(w->gate_q + (size_t)t * q_out + (size_t)h * (size_t)d, src + d, sizeof(float) * (size_t)d);
            }
        if (L->q_norm != RSR_NO_TENSOR) head_norms(qt, a->num_heads, d, blob_f32(m, L->q_norm), a->rms_eps);
        if (L->k_norm != RSR_NO_TENSOR) head_norms(kt, a->num_kv_heads, d, blob_f32(m, L->k_norm), a->rms_eps);
        if (!L->no_rope) { /* maple's global layers: no positions at all */
            rope(qt, a->num_heads, d, rd, cs + (size_t)t * (size_t)d);
            rope(kt, a->num_kv_heads, d, rd, cs + (size_t)t * (size_t)d);
        }
        if (qscale != 1.0f)
            for (size_t i = 0; i < q_out; i++) qt[i] *= qscale;
        for (int32_t kvh = 0; kvh < a->num_kv_heads; kvh++)
            kv_store(r->s, l, kvh, r->s->pos + t - r->row0, kt, w->v + (size_t)t * kv_out);
    }
    for (int32_t j = 0; j < nruns; j++) {
        size_t at = (size_t)runs[j].row0 * q_out;
        rsr_status st = rt_attention_rows(runs[j].s, l, runs[j].s->pos, runs[j].n, w->q + at, w->att + at);
        if (st != RSR_OK) return st;
    }
    if (L->attn_gate) /* the attention's output times sigmoid(gate) (Qwen3.5) */
        for (size_t i = 0; i < (size_t)rows * q_out; i++) w->att[i] *= 1.0f / (1.0f + expf(-w->gate_q[i]));
    norm_inputs(m, w, w->att, q_out, L->attn_sub_norm != RSR_NO_TENSOR ? blob_f32(m, L->attn_sub_norm) : NULL, NULL,
                (int32_t)q_out, rows, L->o);
    residual_out(m, w, L->o, L->attn_post_norm, rows);
    ffn_step(m, w, l, runs, nruns, rows);
    return RSR_OK;
}

/* Layer l's FFN for every row: a mixture of experts, or act(gate) · up through down, added to h. */
static void ffn_step(const rsr_model *m, rt_work *w, int32_t l, const rt_run *runs, int32_t nruns, int32_t rows) {
    const rsr_artifact *a = m->a;
    const rsr_artifact_layer *L = &a->layer[l];
    const int32_t I = a->intermediate;
    if (L->num_experts) {
        moe_ffn(m, w, l, runs, nruns, rows);
        return;
    }
    bl_out glu[2] = {{L->gate, w->gate, (size_t)I, 0}, {L->up, w->up, (size_t)I, 0}};
    projections(m, w, blob_f32(m, L->ffn_norm), L->in_norm + RSR_IN_GATE, glu, 2, rows, 1); /* act(gate) · up */
    norm_inputs(m, w, w->gate, (size_t)I, L->ffn_sub_norm != RSR_NO_TENSOR ? blob_f32(m, L->ffn_sub_norm) : NULL, NULL,
                I, rows, L->down);
    residual_out(m, w, L->down, L->ffn_post_norm, rows);
}

/* The head's input x from a row h of the residual stream: the final norm, then (PrismML's fold) the
 * rotation the head's weights were stored for. */
static void head_input(const rsr_model *m, float *x, const float *h) {
    rmsnorm(x, h, blob_f32(m, m->a->final_norm), m->a->hidden, m->a->rms_eps);
    rt_fold_head(m->a, m->blob, x);
}

void rt_embed_row(const rsr_model *m, int32_t token, float *h) {
    const rsr_artifact *a = m->a;
    const int32_t H = a->hidden;
    const size_t bytes = rsr_dtype_bytes(a->embed_dtype, (size_t)H);
    _Alignas(64) uint8_t buf[RT_ROW_MAX];
    const uint8_t *erow = rt_row(m, a->embed + (size_t)token * bytes, bytes, buf, sizeof buf);
    rt_row_floats(erow, a->embed_dtype, H, h);
    rt_fold_embed(a, m->blob, h); /* a row stored rotated (PrismML's fold) */
    if (a->embed_scale != 0)      /* Gemma3: times sqrtf(hidden), in fp32 as llama.cpp */
        for (int32_t i = 0; i < H; i++) h[i] *= a->embed_scale;
}

rsr_status rt_layer_step(const rsr_model *m, rt_work *w, int32_t l, const rt_run *runs, int32_t nruns, int32_t rows) {
    return layer_step(m, w, l, runs, nruns, rows);
}

void rt_matrix_rows(const rsr_model *m, rt_work *w, int32_t index, const float *x, size_t x_stride, int32_t n, float *y,
                    size_t y_stride) {
    norm_inputs(m, w, x, x_stride, NULL, NULL, m->a->matrix[index].cols, n, index);
    bitlinear1(m, w, index, n, y, y_stride, 0);
}

void rt_rmsnorm(float *y, const float *x, const float *w, int32_t n, float eps) { rmsnorm(y, x, w, n, eps); }

rsr_status rt_forward(const rsr_model *m, rt_work *w, const int32_t *tokens, const rt_run *runs, int32_t nruns,
                      int32_t rows, bool head) {
    const rsr_artifact *a = m->a;
    int32_t H = a->hidden, d = a->head_dim, rd = a->rope_dims ? a->rope_dims : d;
    for (int32_t t = 0; t < rows; t++) {
        const rt_run *r = run_of(runs, nruns, t);
        rt_embed_row(m, tokens[t], w->h + (size_t)t * (size_t)H);
        const int32_t pos = r->s->pos + t - r->row0; /* the tables of every layer */
        rsr_rope_angles(w->rope + (size_t)t * (size_t)d, rd, pos, a->rope_theta);
        if (w->rope2) rsr_rope_angles(w->rope2 + (size_t)t * (size_t)d, rd, pos, m->rope_theta2);
    }
    for (int32_t j = 0; j < nruns; j++) { /* a failed step's rows count too: they overwrote older ones */
        if (runs[j].s->pos + runs[j].n > runs[j].s->kv_written) runs[j].s->kv_written = runs[j].s->pos + runs[j].n;
        rsr_session *s = runs[j].s;
        s->dn_ckpt_w = dn_ckpt_step(&runs[j]) ? ckpt_choose(s) : -1;
        if (s->dn_ckpt_w >= 0) s->dn_ckpt_pos[s->dn_ckpt_w] = -1; /* overwritten below */
    }
    for (int32_t l = 0; l < a->num_layers; l++) {
        rsr_status st = layer_step(m, w, l, runs, nruns, rows);
        if (st == RSR_OK && l == a->num_layers - 1 && a->mtp_layers) /* the MTP layer follows: never fails the step */
            rt_mtp_follow(m, w, tokens, runs, nruns, rows);
        if (st != RSR_OK) {
            for (int32_t j = 0; j < nruns; j++) rt_attention_rollback(runs[j].s); /* no trace in the indexes */
            return st;
        }
    }
    for (int32_t j = 0; j < nruns; j++) {
        rsr_session *s = runs[j].s;
        s->pos += runs[j].n;
        if (s->dn_ckpt_w >= 0)
            s->dn_ckpt_pos[s->dn_ckpt_w] = s->pos - DN_SNAP_BACK, s->dn_ckpt_w = -1; /* deltanet_recur */
        const float *last = w->h + (size_t)(runs[j].row0 + runs[j].n - 1) * (size_t)H;
        if (head) head_input(m, w->xn + (size_t)j * (size_t)w->widest, last);
    }
    return RSR_OK;
}

/* rsr_session_eval_all on the CPU, after each of eval_steps' steps: each row's final-normed hidden
 * state, normed as rt_forward norms the last one for the head (into the rows of s->work.xn), through the exact head in one pass over its rows for the step's c rows (rt_lm_head_many:
 * each row's logits the bits of a call of its own; a draft's verification reads the head once,
 * not once a row). */
/* The head's input of each of a step's c rows, row t at s->work.xn + t·widest. */
static void head_inputs(rsr_session *s, int32_t c) {
    const int32_t H = s->model->a->hidden;
    for (int32_t t = 0; t < c; t++)
        head_input(s->model, s->work.xn + (size_t)t * (size_t)s->work.widest, s->work.h + (size_t)t * (size_t)H);
}

static rsr_status every_logits(rsr_session *s, int32_t i, int32_t c, int32_t n, const rt_head_request *h) {
    (void)n;
    const rsr_artifact *a = s->model->a;
    rt_head_request req[RSR_BATCH_MAX];
    rt_head_call calls[RSR_BATCH_MAX];
    head_inputs(s, c);
    for (int32_t t = 0; t < c; t++) {
        const float *x = s->work.xn + (size_t)t * (size_t)s->work.widest;
        req[t] = (rt_head_request){.kind = RT_HEAD_LOGITS, .logits = h->logits + (size_t)(i + t) * (size_t)a->vocab};
        calls[t] = (rt_head_call){s, x, &req[t]};
    }
    return rt_lm_head_many(calls, c);
}

/* A draft's greedy verification (RT_HEAD_GREEDY_ALL), after each step: every row's certified greedy
 * token from one int8 pass over the head (rt_lm_head_argmax_rows), each the token rsr_session_eval
 * would pick after that prefix. */
static rsr_status every_greedy(rsr_session *s, int32_t i, int32_t c, int32_t n, const rt_head_request *h) {
    (void)n;
    head_inputs(s, c);
    return rt_lm_head_argmax_rows(s, s->work.xn, (size_t)s->work.widest, c, h->token + i);
}

/* rsr_session_embed on the CPU, after each of eval_steps' steps: each row's final-normed hidden
 * state (rmsnorm with the final norm, as the head's input) pooled as the model says, the mean
 * summed in fp32 in token order (divided by n in embed_finish), or the first or last row's. */
static rsr_status embed_pool(rsr_session *s, int32_t i, int32_t c, int32_t n, const rt_head_request *h) {
    const rsr_model *m = s->model;
    const rsr_artifact *a = m->a;
    const int32_t H = a->hidden;
    float *out = h->embed, *row = s->work.tmp;
    for (int32_t t = 0; t < c; t++) {
        int32_t at = i + t;
        if ((a->pooling == RSR_POOLING_LAST && at != n - 1) || (a->pooling == RSR_POOLING_CLS && at != 0)) continue;
        rmsnorm(row, s->work.h + (size_t)t * (size_t)H, blob_f32(m, a->final_norm), H, a->rms_eps);
        for (int32_t j = 0; j < H; j++) out[j] = a->pooling == RSR_POOLING_MEAN ? out[j] + row[j] : row[j];
    }
    return RSR_OK;
}

/* The mean's division, then, with normalize, the division by the Euclidean length (summed in
 * double, rounded to float once). */
static void embed_finish(const rsr_artifact *a, int32_t n, const rt_head_request *h) {
    float *out = h->embed;
    if (a->pooling == RSR_POOLING_MEAN)
        for (int32_t j = 0; j < a->hidden; j++) out[j] /= (float)n;
    if (!h->normalize) return;
    double ss = 0;
    for (int32_t j = 0; j < a->hidden; j++) ss += (double)out[j] * (double)out[j];
    float len = (float)sqrt(ss);
    if (len > 0)
        for (int32_t j = 0; j < a->hidden; j++) out[j] /= len;
}
