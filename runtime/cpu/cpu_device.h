/*
 * cpu_device.h — the CPU device's own declarations (runtime/cpu): the forward pass over runs of
 * sessions, the LM heads, attention and the KV cache's layout, the quantiser's families. The rest
 * of the runtime (runtime/src) reaches none of it but through the device table (rt_device_cpu,
 * forward.c); the CPU's files and the unit tests that drive its parts include this.
 */
#ifndef RSR_CPU_DEVICE_H
#define RSR_CPU_DEVICE_H

#include "attn_kernels.h"
#include "internal.h"

/* One step's rows, in runs: run j is n tokens of session s at its position, rows row0 .. row0+n-1
 * of the work buffers. */
typedef struct rt_run {
    rsr_session *s;
    int32_t row0, n;
} rt_run;
/* The tokens of every run (rows in all, at most w->rows) through the model. On success each
 * session advances by its run's n and, with head, run j's last token's final-normed hidden state
 * (the LM head's input) is row j of w->xn. On failure no session moves and every Louver index is
 * rolled back to what its session's position implies. */
rsr_status rt_forward(const rsr_model *m, rt_work *w, const int32_t *tokens, const rt_run *runs, int32_t nruns,
                      int32_t rows, bool head);

/* forward.c's parts that mtp.c runs again: layer l over the rows of runs (their sessions' caches
 * at each one's position), the product of matrix index with n float rows x (quantised as every
 * matrix's input) into y, the embedding row of a token as the first layer reads it, an RMSNorm. */
rsr_status rt_layer_step(const rsr_model *m, rt_work *w, int32_t l, const rt_run *runs, int32_t nruns, int32_t rows);
void rt_matrix_rows(const rsr_model *m, rt_work *w, int32_t index, const float *x, size_t x_stride, int32_t n, float *y,
                    size_t y_stride);
void rt_embed_row(const rsr_model *m, int32_t token, float *h);
void rt_rmsnorm(float *y, const float *x, const float *w, int32_t n, float eps);
/* mtp.c, Qwen3.5's multi-token prediction (rsr_artifact.mtp_layers): after the model's layers of a
 * step (rt_forward), the MTP layer over the rows of the sessions that keep it (rsr_session.mtp), w->h
 * as it was after (where it fails, the step stands and those sessions forget the hidden states they
 * kept: their next guesses start from zeros); and rsr_session_draft_mtp's drafts. */
void rt_mtp_follow(const rsr_model *m, rt_work *w, const int32_t *tokens, const rt_run *runs, int32_t nruns,
                   int32_t rows);
rsr_status rt_mtp_draft(rsr_session *s, int32_t token, int32_t max, float p_min, int32_t *draft, int32_t *n);

/* lm_head.c: logits of the final normed hidden state x, and the certified greedy token. */
void rt_lm_head_logits(rsr_session *s, const float *x, float *logits);
rsr_status rt_lm_head_argmax(rsr_session *s, const float *x, int32_t *token);
/* logits from the int8 copy of the head, each within *bound of the exact one (exact logits and
 * *bound = 0 where there is no copy or nothing it could bound) */
rsr_status rt_lm_head_logits_q8(rsr_session *s, const float *x, float *logits, double *bound);

/* a token drawn by the sampler from the exact logits of the rows that could matter (rsr.h) */
rsr_status rt_lm_head_sample(rsr_session *s, const float *x, const rsr_sampler_params *sp, uint64_t *rng,
                             int32_t *token, double *tail);
/* Several sessions' heads in one pass over the head's rows (rsr_batch_eval): call j asks for
 * req's output of the final-normed state x of session s (LOGITS, GREEDY or SAMPLE), with the bits
 * the one-session functions above give. At most RSR_BATCH_MAX calls. */
typedef struct rt_head_call {
    rsr_session *s;
    const float *x;
    const rt_head_request *req;
} rt_head_call;
rsr_status rt_lm_head_many(const rt_head_call *calls, int32_t k);
/* The certified greedy token of each of n vectors (x[i·stride]) of one session, from one int8 pass. */
rsr_status rt_lm_head_argmax_rows(rsr_session *s, const float *x, size_t stride, int32_t n, int32_t *tokens);
/* the three above's buffers, made before a call advances the session, so that running out of
 * memory for them leaves the session where it was */
rsr_status rt_lm_head_reserve(rsr_session *s);
/* forgets what the sampling head learnt of the session's logits (rsr_session_reset) */
void rt_lm_head_forget(rsr_session *s);
void rt_lm_head_free(rsr_session *s);

/* attention.c: attention of layer `layer` for the query q ([heads][head_dim]) of the token at
 * position pos (its key and value already in the cache, at most pos + 1 keys attended), into
 * out ([heads][head_dim]). */
rsr_status rt_attention_init(rsr_session *s, const rsr_session_params *p);
void rt_attention_free(rsr_session *s);
void rt_attention_reset(rsr_session *s);
void rt_attention_rollback(rsr_session *s); /* after a failed step: the indexes as s->pos implies */
void rt_attention_truncate(rsr_session *s); /* after rsr_session_truncate */
/* How the session attends (0 dense, 1 Louver, 2 auto) and, for auto, its decisions ([layers]: a
 * decode step before this position attends densely), which a saved state keeps. */
int32_t rt_attention_kind(const rsr_session *s, int32_t **dense_until);
/* Attention of the n tokens at positions pos0..pos0+n-1 whose keys and values are in the cache:
 * queries q[t] at q + t·q_out, outputs at out + t·q_out ([heads][head_dim] each). */
rsr_status rt_attention_rows(rsr_session *s, int32_t layer, int32_t pos0, int32_t n, const float *q, float *out);

/* The KV budget of a layer kind (docs/moe.md, "Sliding windows"). A global layer keeps a row per
 * position (ring 0, rows max_positions). A layer with a sliding window of W keeps only the last
 * ring = W − 1 + batch positions (a step of up to s->batch tokens reads back W − 1 positions before
 * its own): position p in slot p mod ring, and slots 0 .. W − 2 mirrored after the ring, so that
 * any W consecutive positions are W consecutive rows and attention streams a window as it streams
 * a global layer's cache. Where that would take as many rows as max_positions, the layer keeps
 * every position. Each KV head's rows are contiguous. */
typedef struct rt_kv_layer {
    size_t first; /* rows of the layers before this one */
    int32_t rows; /* per KV head */
    int32_t ring; /* 0: row = position; else rows − ring = W − 1 slots mirrored */
} rt_kv_layer;
/* Byte offset of the row of KV head kvh at position pos of layer `layer` in k_cache / v_cache (the
 * first of the two where the window mirrors it: kv_store writes both). */
static inline size_t kv_row(const rsr_session *s, int32_t layer, int32_t kvh, int32_t pos) {
    const rt_kv_layer *L = &s->kv_layer[layer];
    const int32_t slot = L->ring ? pos % L->ring : pos;
    return (L->first + (size_t)kvh * (size_t)L->rows + (size_t)slot) * s->kv_bytes;
}
/* The rows of one KV head of one layer of cache (k_cache or v_cache) whose row 0 is position pos:
 * row i is position pos + i, on a global layer for every later position, on a windowed layer for
 * the W positions of a window starting at pos. */
static inline attn_rows kv_rows_at(const rsr_session *s, const uint8_t *cache, int32_t layer, int32_t kvh,
                                   int32_t pos) {
    return (attn_rows){.base = cache + kv_row(s, layer, kvh, pos), .bytes = s->kv_bytes, .type = s->kv_type};
}
/* A global layer's rows from position 0 (Louver's index and auto's samples: never a windowed layer). */
static inline attn_rows kv_rows(const rsr_session *s, const uint8_t *cache, int32_t layer, int32_t kvh) {
    return kv_rows_at(s, cache, layer, kvh, 0);
}
/* The oldest position of layer `layer` still in the cache of a session at s->pos. */
static inline int32_t kv_oldest(const rsr_session *s, int32_t layer) {
    const rt_kv_layer *L = &s->kv_layer[layer];
    return L->ring && s->kv_written > L->ring ? s->kv_written - L->ring : 0;
}
/* The smallest position above 0 that rsr_session_truncate can go back to (forward.c): a windowed
 * layer needs the W − 1 positions before it; *layer the layer that sets it, *kept the positions its
 * ring keeps (both untouched where no layer does: rt_device_cpu's truncate_floor). */
int32_t rt_kv_truncate_floor(const rsr_session *s, int32_t *layer, int32_t *kept);

/* Per-token absmax quantisation to int8 (returns x's scale) by one family of kernels, whatever the
 * CPU: 0 portable, 1 AVX2, 2 AVX-512 (the caller checks the CPU has it). For the tests: every
 * family gives the portable one's bytes and scale. */
float rt_quantize_family(int family, int8_t *q, const float *x, int32_t n);

/* The session API's reads of attention (session.c has checked the session, the layer (an
 * attention layer) and the head; rt_device_cpu's attention_stats, kv_read and last_query). */
rsr_status rt_attention_stats(const rsr_session *s, int32_t layer, rsr_attention_stats *out);
rsr_status rt_kv_read(const rsr_session *s, int32_t layer, int32_t kv_head, int32_t first, int32_t count, float *keys,
                      float *values);
rsr_status rt_last_query(const rsr_session *s, int32_t layer, float *q);
/* batch.c: rsr_batch's CPU part (rt_device_cpu's batch_init, batch_eval, batch_free). */
rsr_status rt_cpu_batch_init(rsr_batch *b, int32_t rows);
rsr_status rt_cpu_batch_eval(rsr_batch *b, const rsr_seq *seqs, int32_t n_seqs);
void rt_cpu_batch_free(rsr_batch *b);

#endif
