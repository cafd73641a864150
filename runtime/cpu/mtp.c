/*
 * mtp.c — Qwen3.5's multi-token prediction on the CPU (rsr_artifact.mtp_layers; docs/qwen35.md,
 * "Multi-token prediction"): the MTP layer that follows a session's steps (rsr_session_params.mtp)
 * and the drafts it makes (rsr_session_draft_mtp).
 *
 * The MTP layer is one more full-attention layer (layer[num_layers], its own KV cache) whose input at
 * position p is eh_proj · [RMSNorm(e_p, enorm); RMSNorm(h_{p−1}, hnorm)]: e_p the embedding of the
 * token at p (as the first layer reads it, the fold's rotation undone), h_{p−1} the model's
 * final-normed hidden state at p − 1 (zeros before position 0, as llama.cpp's first pending row).
 * After the model's layers of every step (rt_forward), rt_mtp_follow runs it over the step's rows
 * of the sessions that keep it, so that its cache holds at each position what the true hidden
 * states give; the session keeps the last rows' h (rsr_session.mtp_h, a ring of mtp_h_cap
 * positions) for the step after and for drafting. rt_mtp_draft then guesses token by token from
 * the session's position p: the token t_p given, its first guess from (h_{p−1}, t_p) at p, each
 * next one from the MTP layer's own output normed by mtp_head_norm and the guess before, at p + 1,
 * p + 2, ...; the head (and its fold) is the model's, the certified greedy pick. What drafting wrote
 * in the MTP layer's cache past the position is written over when the text gets there (the next
 * step's rt_mtp_follow), so nothing is undone: a truncation keeps the positions below it, which are
 * the text's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_device.h"
#include "fold.h"
#include "rsr_numerics.h"

static const float *mtp_f32(const rsr_model *m, uint64_t off) { return (const float *)(m->blob + off); }

/* The h the MTP layer pairs with the token at pos (the model's at pos − 1), or NULL: none kept
 * (position 0, or truncated back past the rows kept). */
static const float *mtp_prev(const rsr_session *s, int32_t pos) {
    const int32_t q = pos - 1;
    if (q < 0 || q < s->mtp_h_from || q >= s->mtp_h_from + s->mtp_h_n) return NULL;
    return s->mtp_h + (size_t)(q % s->mtp_h_cap) * (size_t)s->model->a->hidden;
}

/* The rows h of positions [p, p + n) kept (the last mtp_h_cap of them), after the positions below
 * p that are kept already (a step that follows them, or a truncation back into them). */
static void mtp_keep(rsr_session *s, const float *h, int32_t p, int32_t n) {
    const size_t H = (size_t)s->model->a->hidden;
    if (s->mtp_h_n > 0 && p >= s->mtp_h_from && p <= s->mtp_h_from + s->mtp_h_n)
        s->mtp_h_n = p - s->mtp_h_from;
    else
        s->mtp_h_from = p, s->mtp_h_n = 0;
    const int32_t first = n > s->mtp_h_cap ? n - s->mtp_h_cap : 0;
    for (int32_t t = first; t < n; t++)
        memcpy(s->mtp_h + (size_t)((p + t) % s->mtp_h_cap) * H, h + (size_t)t * H, sizeof(float) * H);
    s->mtp_h_n += n;
    if (s->mtp_h_n > s->mtp_h_cap) s->mtp_h_from += s->mtp_h_n - s->mtp_h_cap, s->mtp_h_n = s->mtp_h_cap;
}

/* Row x of the MTP layer's input before eh_proj: [RMSNorm(e, enorm); RMSNorm(h, hnorm)] (2·hidden),
 * h NULL: zeros. */
static void mtp_input(const rsr_model *m, int32_t token, const float *h, float *x) {
    const rsr_artifact *a = m->a;
    const int32_t H = a->hidden;
    rt_embed_row(m, token, x + H);
    rt_rmsnorm(x, x + H, mtp_f32(m, a->mtp_enorm), H, a->rms_eps);
    if (h)
        rt_rmsnorm(x + H, h, mtp_f32(m, a->mtp_hnorm), H, a->rms_eps);
    else
        memset(x + H, 0, sizeof(float) * (size_t)H);
}

/* Row t's rotary angles for position pos (both bases where the model has two). */
static void mtp_angles(const rsr_model *m, rt_work *w, int32_t t, int32_t pos) {
    const rsr_artifact *a = m->a;
    const int32_t d = a->head_dim, rd = a->rope_dims ? a->rope_dims : d;
    rsr_rope_angles(w->rope + (size_t)t * (size_t)d, rd, pos, a->rope_theta);
    if (w->rope2) rsr_rope_angles(w->rope2 + (size_t)t * (size_t)d, rd, pos, m->rope_theta2);
}

void rt_mtp_follow(const rsr_model *m, rt_work *w, const int32_t *tokens, const rt_run *runs, int32_t nruns,
                   int32_t rows) {
    const rsr_artifact *a = m->a;
    const int32_t H = a->hidden;
    const size_t W = (size_t)w->widest, HS = (size_t)H;
    rt_run sub[RSR_BATCH_MAX];
    int32_t ns = 0, c = 0;
    for (int32_t j = 0; j < nruns; j++) {
        rsr_session *s = runs[j].s;
        if (!s->mtp) continue;
        const int32_t r0 = runs[j].row0, n = runs[j].n;
        for (int32_t t = 0; t < n; t++) /* the model's final-normed rows (the head's input before its fold) */
            rt_rmsnorm(w->mtp_hn + (size_t)(r0 + t) * HS, w->h + (size_t)(r0 + t) * HS, mtp_f32(m, a->final_norm), H,
                       a->rms_eps);
        for (int32_t t = 0; t < n; t++) { /* the MTP rows, packed: this run's from row c */
            const float *prev = t ? w->mtp_hn + (size_t)(r0 + t - 1) * HS : mtp_prev(s, s->pos);
            mtp_input(m, tokens[r0 + t], prev, w->xn + (size_t)(c + t) * W);
            mtp_angles(m, w, c + t, s->pos + t);
        }
        sub[ns++] = (rt_run){s, c, n};
        c += n;
    }
    if (!ns) return;
    memcpy(w->mtp_save, w->h, sizeof(float) * (size_t)rows * HS); /* the model's residual stream, for its head */
    rt_matrix_rows(m, w, a->mtp_eh_proj, w->xn, W, c, w->h, HS);
    const rsr_status st = rt_layer_step(m, w, a->num_layers, sub, ns, c);
    for (int32_t j = 0; j < nruns; j++) {
        rsr_session *s = runs[j].s;
        if (s->mtp && st == RSR_OK) mtp_keep(s, w->mtp_hn + (size_t)runs[j].row0 * HS, s->pos, runs[j].n);
        if (s->mtp && st != RSR_OK) s->mtp_h_n = 0;
    }
    memcpy(w->h, w->mtp_save, sizeof(float) * (size_t)rows * HS);
}

/* The token the head picks after x (the MTP's normed output, rotated as the head's input): 1 with
 * *token, 0 when p_min > 0 and its probability is below p_min (or the logits are not finite). */
static int mtp_pick(rsr_session *s, const float *x, float p_min, float *logits, int32_t *token, rsr_status *st) {
    if (!(p_min > 0)) return (*st = rt_lm_head_argmax(s, x, token)) == RSR_OK;
    const int32_t V = s->model->a->vocab;
    rt_lm_head_logits(s, x, logits);
    const int32_t best = rsr_sample_greedy(logits, V); /* the runtime's one argmax rule */
    double z = 0;
    for (int32_t v = 0; v < V; v++) z += exp((double)logits[v] - (double)logits[best]);
    *token = best;
    return 1 / z >= p_min; /* NaN: no guess */
}

rsr_status rt_mtp_draft(rsr_session *s, int32_t token, int32_t max, float p_min, int32_t *draft, int32_t *n) {
    rsr_model *m = s->model;
    const rsr_artifact *a = m->a;
    const int32_t H = a->hidden, pos0 = s->pos;
    rt_work *w = &s->work;
    rsr_status st = rt_lm_head_reserve(s);
    float *logits = p_min > 0 ? malloc(sizeof(float) * (size_t)a->vocab) : NULL;
    if (st != RSR_OK || (p_min > 0 && !logits)) {
        free(logits);
        return rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for the MTP layer's draft");
    }
    float *h = w->mtp_save, *x = w->mtp_hn; /* one row each: the MTP's h, the head's input */
    const float *prev = mtp_prev(s, pos0);
    if (prev)
        memcpy(h, prev, sizeof(float) * (size_t)H);
    else
        memset(h, 0, sizeof(float) * (size_t)H);
    const int32_t louver_from = s->louver_from;
    for (int32_t k = 0, tok = token; k < max; k++) {
        mtp_input(m, tok, h, w->xn);
        mtp_angles(m, w, 0, pos0 + k);
        rt_matrix_rows(m, w, a->mtp_eh_proj, w->xn, (size_t)w->widest, 1, w->h, (size_t)H);
        s->pos = pos0 + k; /* the MTP layer's cache row at pos0 + k, attending to the rows below it */
        st = rt_layer_step(m, w, a->num_layers, &(rt_run){s, 0, 1}, 1, 1);
        s->pos = pos0;
        if (st != RSR_OK) break;
        rt_rmsnorm(h, w->h, mtp_f32(m, a->mtp_head_norm), H, a->rms_eps);
        memcpy(x, h, sizeof(float) * (size_t)H);
        rt_fold_head(a, m->blob, x);
        if (!mtp_pick(s, x, p_min, logits, &tok, &st)) break;
        draft[(*n)++] = tok;
    }
    s->louver_from = louver_from; /* the MTP layer's attention past the position: no trace in the indexes */
    rt_attention_rollback(s);
    free(logits);
    return st;
}
