/*
 * session.c — the session API in front of every device: the arguments and tokens checked here,
 * the work done by the model's device through its table (rt_device, internal.h). Nothing here
 * knows which device runs a session: attention's state (the CPU's KV index, its statistics) is
 * the device's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

rsr_session_params rsr_session_default_params(void) {
    return (rsr_session_params){.max_positions = 0, .attention = RSR_ATTENTION_AUTO, .kv_type = RSR_KV_DEFAULT};
}

/* ---- sessions: the arguments checked here, the work done by the model's device ---- */

rsr_status rsr_session_create(rsr_model *m, const rsr_session_params *params, rsr_session **out) {
    if (!out) return RSR_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!m || !m->a) return RSR_ERR_INVALID_ARGUMENT; /* a handle whose open failed */
    if (m->status != RSR_OK) return m->status;
    const rsr_artifact *a = m->a;
    rsr_session_params p = params ? *params : rsr_session_default_params();
    if (p.max_positions < 0 || p.max_positions > a->max_positions)
        return rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "max_positions %d is out of range [0, %d]",
                            p.max_positions, a->max_positions);
    if (p.batch < 0 || p.batch > RSR_BATCH_MAX)
        return rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "batch %d is out of range [0, %d]", p.batch,
                            RSR_BATCH_MAX);
    if (p.attention < RSR_ATTENTION_DENSE || p.attention > RSR_ATTENTION_AUTO)
        return rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "attention %d is not dense (0), louver (1) or auto (2)",
                            p.attention);
    if (p.checkpoints < 0 || p.checkpoints > RSR_CHECKPOINTS_MAX)
        return rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "checkpoints %d is out of range [0, %d]", p.checkpoints,
                            RSR_CHECKPOINTS_MAX);
    if (p.kv_type < RSR_KV_F32 || p.kv_type > RSR_KV_Q8)
        return rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "kv_type %d is not f32 (0), bf16 (1), f16 (2) or q8 (3)",
                            p.kv_type);
    if (p.mtp && (p.mtp != 1 || !a->mtp_layers || !m->run_on->draft_mtp))
        return rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "mtp %d: %s", p.mtp,
                            p.mtp != 1       ? "0 or 1"
                            : !a->mtp_layers ? "this model has no multi-token-prediction layer (a Qwen3.5 GGUF "
                                               "with blk.N.nextn.* tensors compiles with one)"
                                             : "the MTP layer drafts on the CPU only");
    rsr_session *s = calloc(1, sizeof *s);
    if (!s) return rt_set_error(m->err, RSR_ERR_OUT_OF_MEMORY, "out of memory creating a session");
    s->model = m;
    s->mtp = p.mtp == 1;
    s->louver_from = INT32_MAX;
    s->max_positions = p.max_positions ? p.max_positions : a->max_positions;
    s->batch = p.batch ? p.batch : RSR_BATCH_MAX;
    s->tokens = malloc(sizeof *s->tokens * (size_t)s->max_positions);
    if (!s->tokens) {
        free(s);
        return rt_set_error(m->err, RSR_ERR_OUT_OF_MEMORY, "out of memory creating a session");
    }
    rsr_status st = m->run_on->session_init(s, &p);
    if (st != RSR_OK) {
        rsr_session_free(s);
        return st;
    }
    *out = s;
    return RSR_OK;
}

void rsr_session_free(rsr_session *s) {
    if (!s) return;
    s->model->run_on->session_free(s);
    free(s->tokens);
    free(s);
}

const char *rsr_session_errmsg(const rsr_session *s) { return s ? s->err : "no session (a NULL handle)"; }

rsr_status rsr_session_reset(rsr_session *s) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    s->pos = 0, s->louver_from = INT32_MAX, s->kv_written = 0, s->mtp_h_n = 0;
    if (s->model->run_on->session_reset) s->model->run_on->session_reset(s);
    return RSR_OK;
}

int32_t rsr_session_position(const rsr_session *s) { return s ? s->pos : -1; }

void rt_note_tokens(rsr_session *s, const int32_t *tokens, int32_t n) {
    if (tokens && n > 0 && n <= s->max_positions - s->pos)
        memcpy(s->tokens + s->pos, tokens, sizeof *tokens * (size_t)n);
}

int32_t rsr_session_tokens(const rsr_session *s, int32_t *out, int32_t cap) {
    if (!s) return -1;
    if (out && cap > 0) memcpy(out, s->tokens, sizeof *out * (size_t)(cap < s->pos ? cap : s->pos));
    return s->pos;
}

/* The smallest position above 0 that truncation can reach (the device's rule: a sliding window's). */
static int32_t truncate_floor(const rsr_session *s, int32_t *layer, int32_t *kept) {
    const rt_device *d = s->model->run_on;
    return d->truncate_floor ? d->truncate_floor(s, layer, kept) : 1;
}

/* A hybrid's nearest checkpoint at or below pos (0: none). */
static int32_t ckpt_below(const rsr_session *s, int32_t pos) {
    int32_t best = 0;
    for (int32_t i = 0; i < s->dn_ckpt_cap; i++)
        if (s->dn_ckpt_pos[i] > best && s->dn_ckpt_pos[i] <= pos) best = s->dn_ckpt_pos[i];
    return best;
}

int32_t rsr_session_reachable(const rsr_session *s, int32_t pos) {
    if (!s || pos <= 0) return 0;
    if (pos >= s->pos) return s->pos;
    if (s->model->dn_state_floats && s->dn_draft_n > 0 && pos >= s->dn_draft_from &&
        pos <= s->dn_draft_from + s->dn_draft_n)
        return pos; /* within a draft's kept tokens: replayed */
    if (s->model->dn_state_floats) return ckpt_below(s, pos);
    return pos >= truncate_floor(s, &(int32_t){-1}, &(int32_t){0}) ? pos : 0;
}

/* Why rsr_session_truncate cannot reach pos (rsr_session_reachable says it cannot): the recurrent
 * state goes back only to its copy, a sliding window only to its earliest position. */
static rsr_status refuse_truncate(rsr_session *s, int32_t pos) {
    if (s->model->dn_state_floats) {
        char kept[160] = "", draft[80] = "";
        size_t n = 0;
        for (int32_t i = 0; i < s->dn_ckpt_cap && n + 16 < sizeof kept; i++)
            if (s->dn_ckpt_pos[i] > 0)
                n += (size_t)snprintf(kept + n, sizeof kept - n, "%s%d", n ? ", " : "", s->dn_ckpt_pos[i]);
        if (s->dn_draft_n > 0)
            snprintf(draft, sizeof draft, "%d..%d (the last draft's kept tokens), ", s->dn_draft_from,
                     s->dn_draft_from + s->dn_draft_n);
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT,
                            "cannot truncate to position %d: this model's gated DeltaNet layers keep a recurrent "
                            "state, which goes back only to %s%s%s%s the position (%d) or to 0 (reset)",
                            pos, draft, n ? "its checkpoints (" : "", kept, n ? "), to" : "to", s->pos);
    }
    int32_t layer = -1, kept = 0, floor = truncate_floor(s, &layer, &kept);
    return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT,
                        "cannot truncate to position %d: layer %d keeps the last %d positions of a sliding window "
                        "of %d, so position %d is the earliest to go back to (or 0: reset)",
                        pos, layer, kept, s->model->a->layer[layer].sliding_window, floor);
}

rsr_status rsr_session_truncate(rsr_session *s, int32_t pos) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    if (pos < 0 || pos > s->pos)
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "cannot truncate to position %d: the session holds %d",
                            pos, s->pos);
    if (pos == 0) return rsr_session_reset(s);
    if (pos == s->pos && s->model->dn_state_floats) return RSR_OK; /* nothing to replay */
    if (rsr_session_reachable(s, pos) != pos) return refuse_truncate(s, pos);
    s->pos = pos;
    if (s->louver_from >= pos) s->louver_from = INT32_MAX;
    if (s->model->run_on->session_truncate) s->model->run_on->session_truncate(s);
    return RSR_OK;
}

int32_t rsr_session_reusable(const rsr_session *s) {
    if (!s) return 0;
    return s->louver_from < s->pos ? s->louver_from : s->pos;
}

/* What every evaluation checks first: tokens to evaluate, room in the context, ids in the
 * vocabulary; then the device evaluates them. */
static rsr_status eval(rsr_session *s, const int32_t *tokens, int32_t n, const rt_head_request *head) {
    const rsr_artifact *a = s->model->a;
    if (!tokens || n <= 0) return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no tokens to evaluate");
    if (n > s->max_positions - s->pos)
        return rt_set_error(s->err, RSR_ERR_CONTEXT_FULL, "%d tokens at position %d exceed the context of %d", n,
                            s->pos, s->max_positions);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= a->vocab)
            return rt_set_error(s->err, RSR_ERR_BAD_TOKEN, "token %d (at index %d) is outside [0, %d)", tokens[i], i,
                                a->vocab);
    const double t0 = s->model->run_on->own_threads ? 0 : rt_adapt_begin(s->model, n);
    rt_note_tokens(s, tokens, n);
    rsr_status st = s->model->run_on->eval(s, tokens, n, head);
    if (t0 > 0 && st == RSR_OK) rt_adapt_end(s->model, t0);
    return st;
}

rsr_status rsr_session_embed(rsr_session *s, const int32_t *tokens, int32_t n, int normalize, float *out) {
    if (!s || !out) return RSR_ERR_INVALID_ARGUMENT;
    if (s->model->run_on->last_only)
        return rt_set_error(s->err, RSR_ERR_NOT_FOUND, "embeddings are computed on the CPU: this session runs on %s",
                            s->model->run_on->name);
    rsr_session_reset(s);
    return eval(s, tokens, n, &(rt_head_request){.kind = RT_HEAD_EMBED, .embed = out, .normalize = normalize});
}

rsr_status rsr_session_eval(rsr_session *s, const int32_t *tokens, int32_t n, float *logits) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    return eval(s, tokens, n, &(rt_head_request){.kind = logits ? RT_HEAD_LOGITS : RT_HEAD_NONE, .logits = logits});
}

rsr_status rsr_session_eval_all(rsr_session *s, const int32_t *tokens, int32_t n, float *logits) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    if (!logits) return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no place for the logits (NULL)");
    if (s->model->run_on->last_only)
        return rt_set_error(s->err, RSR_ERR_NOT_FOUND,
                            "every token's logits are computed on the CPU: this session runs on %s",
                            s->model->run_on->name);
    return eval(s, tokens, n, &(rt_head_request){.kind = RT_HEAD_ALL, .logits = logits});
}

/* The draft's n tokens evaluated: a gated DeltaNet's record (dn_draft_*) complete, which the cut
 * after the tokens taken replays (rsr_session_reachable, the device's session_truncate). */
static void draft_recorded(rsr_session *s, int32_t n) {
    if (s->dn_draft_rec) s->dn_draft_rec = false, s->dn_draft_n = n;
}

/* rsr_session_eval_draft's step; a gated DeltaNet's state recorded (dn_draft_*) for the cut */
static rsr_status draft_record(rsr_session *s, const int32_t *tokens, int32_t n, const rsr_sampler_params *sp,
                               uint64_t *rng, int32_t *out, int32_t *n_out) {
    const int32_t V = s->model->a->vocab, pos = s->pos;
    if (s->model->dn_state_floats) s->dn_draft_rec = true, s->dn_draft_from = pos, s->dn_draft_n = 0;
    if (!sp || rt_sampler_plain_greedy(sp)) { /* the certified greedy token after every position, one head pass */
        int32_t *picks = malloc(sizeof *picks * (size_t)n);
        rsr_status st = picks ? eval(s, tokens, n, &(rt_head_request){.kind = RT_HEAD_GREEDY_ALL, .token = picks})
                              : rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for %d tokens", n);
        if (st == RSR_OK) draft_recorded(s, n);
        int32_t a = 0; /* the draft's tokens taken */
        while (st == RSR_OK && a < n - 1 && picks[a] >= 0 && picks[a] == tokens[a + 1]) a++;
        if (st == RSR_OK && picks[a] < 0) /* a position decoding reaches has no token (later ones do not matter) */
            st = rt_set_error(s->err, RSR_ERR_INTERNAL,
                              "the model's hidden state or logits after position %d are not finite: its weights or "
                              "activations overflowed, so no token can be chosen",
                              pos + a);
        if (st == RSR_OK) {
            memcpy(out, picks, sizeof *out * (size_t)(a + 1)), *n_out = a + 1;
            st = rsr_session_truncate(s, pos + 1 + a);
        }
        free(picks);
        return st;
    }
    float *logits = malloc(sizeof *logits * (size_t)n * (size_t)V), *probs = malloc(sizeof *probs * (size_t)V);
    int32_t *ids = malloc(sizeof *ids * (size_t)V);
    rsr_status st = logits && probs && ids ? rsr_session_eval_all(s, tokens, n, logits)
                                           : rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY,
                                                          "out of memory for the logits of %d positions", n);
    if (st == RSR_OK) {
        draft_recorded(s, n);
        int32_t a = 0; /* the draft's tokens taken */
        for (bool taken = true; taken; a += taken) {
            const float *row = logits + (size_t)a * (size_t)V;
            if (a == n - 1) { /* every one taken: the model's token after them */
                out[a] = rt_sample(row, V, V, sp, rng, probs, ids, NULL);
                break;
            }
            out[a] = rt_sample_verify(row, V, sp, rng, probs, ids, tokens[a + 1], &taken);
        }
        *n_out = a + 1;
        st = rsr_session_truncate(s, pos + 1 + a); /* tokens[0] and the taken ones */
    }
    free(logits), free(probs), free(ids);
    return st;
}

/* Speculative decoding's step (rsr.h): every position's exact logits, the draft's tokens taken by
 * rt_sample_verify's rule (greedy: equal to the greedy token) up to the first refused, the cache
 * cut after them. */
rsr_status rsr_session_eval_draft(rsr_session *s, const int32_t *tokens, int32_t n, const rsr_sampler_params *sp,
                                  uint64_t *rng, int32_t *out, int32_t *n_out) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    if (!tokens || n < 1 || !out || !n_out)
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no tokens, or no place for the tokens taken (NULL)");
    if (sp && rt_sampler_penalises(sp))
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT,
                            "a repetition penalty in a draft's verification: its recent tokens would change within "
                            "the draft");
    uint64_t fixed = 0; /* greedy draws nothing */
    if (!rng && sp && sp->temperature > 0)
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no random state for a sampled verification (NULL)");
    if (!rng) rng = &fixed;
    if (s->model->run_on->last_only)
        return rt_set_error(s->err, RSR_ERR_NOT_FOUND,
                            "a draft is verified on the CPU (every position's outputs): this session runs on %s",
                            s->model->run_on->name);
    rsr_status st = draft_record(s, tokens, n, sp, rng, out, n_out);
    s->dn_draft_rec = false;
    return st;
}

rsr_status rsr_session_draft_mtp(rsr_session *s, int32_t token, int32_t max, float p_min, int32_t *draft,
                                 int32_t *n_draft) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    if (!draft || !n_draft) return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no place for the draft (NULL)");
    *n_draft = 0;
    if (!s->mtp)
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT,
                            "this session was made without rsr_session_params.mtp: its MTP layer has no cache");
    if (token < 0 || token >= s->model->a->vocab)
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "token %d is outside the vocabulary [0, %d)", token,
                            s->model->a->vocab);
    if (max < 0 || !(p_min >= 0 && p_min <= 1))
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "max %d, p_min %g: max >= 0, p_min in [0, 1]", max,
                            (double)p_min);
    if (max > s->max_positions - s->pos) max = s->max_positions - s->pos; /* the positions the MTP cache has */
    if (max == 0) return RSR_OK;
    return s->model->run_on->draft_mtp(s, token, max, p_min, draft, n_draft);
}

rsr_status rsr_session_eval_int8(rsr_session *s, const int32_t *tokens, int32_t n, float *logits, double *bound) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    if (!logits) return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no place for the logits (NULL)");
    return eval(s, tokens, n, &(rt_head_request){.kind = RT_HEAD_INT8, .logits = logits, .bound = bound});
}

rsr_status rsr_session_eval_greedy(rsr_session *s, const int32_t *tokens, int32_t n, int32_t *token) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    if (!token) return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no place for the greedy token (NULL)");
    return eval(s, tokens, n, &(rt_head_request){.kind = RT_HEAD_GREEDY, .token = token});
}

rsr_status rsr_session_eval_sample(rsr_session *s, const int32_t *tokens, int32_t n, const rsr_sampler_params *sp,
                                   uint64_t *rng, int32_t *token, double *tail) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    if (!token || !rng)
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no place for the token or the random state (NULL)");
    if (tail) *tail = 0;
    if (rt_sampler_plain_greedy(sp)) return rsr_session_eval_greedy(s, tokens, n, token);
    return eval(s, tokens, n,
                &(rt_head_request){.kind = RT_HEAD_SAMPLE, .token = token, .sampler = sp, .rng = rng, .tail = tail});
}

/* ---- what a session's attention holds (the device reads it: rt_device's attention_stats,
 * kv_read, last_query) ---- */

rsr_status rsr_session_attention_stats(const rsr_session *s, int32_t layer, rsr_attention_stats *out) {
    if (!s || !out) return RSR_ERR_INVALID_ARGUMENT;
    const rsr_artifact *a = s->model->a;
    rsr_session *w = (rsr_session *)s; /* the message buffer is the only thing written */
    if (layer < 0 || layer >= a->num_layers)
        return rt_set_error(w->err, RSR_ERR_INVALID_ARGUMENT, "layer %d is out of range [0, %d)", layer, a->num_layers);
    if (!s->model->run_on->attention_stats || !s->attn)
        return rt_set_error(w->err, RSR_ERR_INVALID_ARGUMENT,
                            "attention statistics are kept by sessions on the CPU: open the model with device cpu");
    return s->model->run_on->attention_stats(s, layer, out);
}

/* The checks of a read of an attention layer's keys, values or queries, in the order the API states
 * them (elsewhere: the refusal where the device keeps them out of the host's reach); RSR_OK when the
 * device may read. */
static rsr_status readable_layer(const rsr_session *s, int32_t layer, const char *elsewhere) {
    const rsr_artifact *a = s->model->a;
    char *err = ((rsr_session *)s)->err; /* the message buffer is the only thing written */
    if (!s->model->run_on->host_memory) return rt_set_error(err, RSR_ERR_INVALID_ARGUMENT, "%s", elsewhere);
    if (layer < 0 || layer >= a->num_layers)
        return rt_set_error(err, RSR_ERR_INVALID_ARGUMENT, "layer %d is out of range [0, %d)", layer, a->num_layers);
    if (a->layer[layer].kind == RSR_LAYER_DELTANET)
        return rt_set_error(
            err, RSR_ERR_INVALID_ARGUMENT,
            "layer %d is a gated DeltaNet layer: it keeps a recurrent state, no keys, values or queries", layer);
    return RSR_OK;
}

rsr_status rsr_session_kv_read(const rsr_session *s, int32_t layer, int32_t kv_head, int32_t first, int32_t count,
                               float *keys, float *values) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    const rsr_artifact *a = s->model->a;
    rsr_status st = readable_layer(
        s, layer, "the KV cache of a GPU session is in device memory: read it from a session on the CPU");
    if (st != RSR_OK) return st;
    if (kv_head < 0 || kv_head >= a->num_kv_heads)
        return rt_set_error(((rsr_session *)s)->err, RSR_ERR_INVALID_ARGUMENT, "kv_head %d is out of range [0, %d)",
                            kv_head, a->num_kv_heads);
    return s->model->run_on->kv_read(s, layer, kv_head, first, count, keys, values);
}

rsr_status rsr_session_last_query(const rsr_session *s, int32_t layer, float *q) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    rsr_status st = readable_layer(
        s, layer, "the queries of a GPU session are in device memory: read them from a session on the CPU");
    if (st != RSR_OK) return st;
    if (!q) return rt_set_error(((rsr_session *)s)->err, RSR_ERR_INVALID_ARGUMENT, "nowhere to read into: q is NULL");
    return s->model->run_on->last_query(s, layer, q);
}
