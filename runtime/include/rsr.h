/*
 * rsr.h — the C API of a model compiled by rsrc.
 *
 * A compiled model (model.so, or an object linked into an application) contains the
 * generated kernels, the model's constant data and this runtime. Using it takes four calls:
 *
 *     rsr_model *m;
 *     if (rsr_model_open(&m, NULL) != RSR_OK) { puts(rsr_model_errmsg(m)); ... }
 *     rsr_session *s;
 *     rsr_session_create(m, NULL, &s);            // KV cache for up to max_positions tokens
 *     int32_t prompt[] = {128000, 791, 1217};
 *     rsr_session_eval(s, prompt, 3, logits);      // logits of the last token (vocab floats)
 *     int32_t next = rsr_sample_greedy(logits, vocab);
 *     ...
 *     rsr_session_free(s); rsr_model_close(m);
 *
 * Conventions: every function returns an rsr_status; on failure the handle carries a message
 * (rsr_model_errmsg / rsr_session_errmsg). The runtime never exits the process and never
 * prints. The caller owns every input and output buffer. Handles may be used from one thread
 * at a time; distinct sessions of one model are independent.
 */
#ifndef RSR_H
#define RSR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rsr_status {
    RSR_OK = 0,
    RSR_ERR_INVALID_ARGUMENT = 1, /* a NULL handle, a size out of range, ... */
    RSR_ERR_OUT_OF_MEMORY = 2,
    RSR_ERR_ABI = 3,              /* the artifact was built for another runtime ABI */
    RSR_ERR_CONTEXT_FULL = 4,     /* the session has no room for more positions */
    RSR_ERR_BAD_TOKEN = 5,        /* a token id outside [0, vocab) */
    RSR_ERR_INTERNAL = 6,
} rsr_status;

const char *rsr_status_to_string(rsr_status status);

typedef struct rsr_model rsr_model;
typedef struct rsr_session rsr_session;

/* What a compiled model is. Strings point into the artifact and live as long as it does. */
typedef struct rsr_model_info {
    const char *architecture;  /* "BitNetForCausalLM", "LlamaForCausalLM", ... */
    const char *target;        /* the target the kernels were compiled for */
    const char *compiler;      /* "rsrc <version>" */
    int32_t hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    int32_t vocab_size, max_positions;
    int32_t bos_token_id, eos_token_id; /* -1 when the checkpoint names none */
    int32_t num_matrices;      /* ternary matrices compiled into the artifact */
} rsr_model_info;

typedef struct rsr_model_params {
    int32_t num_threads;       /* 0: OpenMP's default */
} rsr_model_params;
rsr_model_params rsr_model_default_params(void);

/* Opens the model compiled into the artifact this runtime is linked into. *out is set even on
 * failure (unless out is NULL) so that rsr_model_errmsg can say why; close it either way. */
rsr_status rsr_model_open(rsr_model **out, const rsr_model_params *params);
void rsr_model_close(rsr_model *model);
const char *rsr_model_errmsg(const rsr_model *model);
rsr_status rsr_model_get_info(const rsr_model *model, rsr_model_info *info);

/* Attention over the KV cache. Dense is exact softmax attention over every cached key. Louver
 * (docs/louver.md) indexes the keys and computes exact softmax attention over a subset C that
 * provably contains every key whose score q·k (fp32, before the 1/sqrt(head_dim) scaling) is at
 * least a threshold τ chosen per step and per query head by a policy:
 *   RSR_LOUVER_RELATIVE  τ = L − sqrt(head_dim)·ln(1/eps), L the best score found so far (a
 *                        lower bound of the maximum): every key whose softmax weight could be
 *                        ≥ eps × the largest weight is kept. Certified; the default.
 *   RSR_LOUVER_ABSOLUTE  τ = louver_tau.
 *   RSR_LOUVER_BUDGET    τ from a sample of the keys so that about louver_budget of them pass;
 *                        the fraction is an estimate without guarantee (recall w.r.t. the τ
 *                        used still holds).
 * Every step records the certified bound on the softmax mass outside C (rsr_attention_stats). */
typedef enum rsr_attention_kind { RSR_ATTENTION_DENSE = 0, RSR_ATTENTION_LOUVER = 1 } rsr_attention_kind;
typedef enum rsr_louver_policy_kind {
    RSR_LOUVER_RELATIVE = 0,
    RSR_LOUVER_ABSOLUTE = 1,
    RSR_LOUVER_BUDGET = 2,
} rsr_louver_policy_kind;

/* Start from rsr_session_default_params(): fields added later default to zero, which always
 * means the earlier behaviour. */
typedef struct rsr_session_params {
    int32_t max_positions;     /* KV cache length; 0: the model's max_positions */
    int32_t attention;         /* rsr_attention_kind; 0: dense */
    int32_t louver_policy;     /* rsr_louver_policy_kind; 0: relative */
    float louver_eps;          /* RELATIVE: in (0, 1); 0: 1e-4 */
    float louver_tau;          /* ABSOLUTE: the threshold on q·k */
    float louver_budget;       /* BUDGET: in (0, 1] */
    int32_t louver_block;      /* recent keys attended densely, then indexed as one block: a
                                  multiple of 16 in [16, 256]; 0: 256 */
    int32_t louver_subspaces;  /* subspaces of the head dimension; 0: head_dim / 16 */
} rsr_session_params;
rsr_session_params rsr_session_default_params(void);

rsr_status rsr_session_create(rsr_model *model, const rsr_session_params *params, rsr_session **out);
void rsr_session_free(rsr_session *session);
const char *rsr_session_errmsg(const rsr_session *session);
/* Forgets every evaluated token: the next eval starts at position 0. */
rsr_status rsr_session_reset(rsr_session *session);
int32_t rsr_session_position(const rsr_session *session);
/* Appends n tokens at the current position and writes the logits of the last one
 * (vocab_size floats) to logits, which may be NULL when only the cache is wanted. */
rsr_status rsr_session_eval(rsr_session *session, const int32_t *tokens, int32_t n, float *logits);

/* What attention did in one layer for the last evaluated token, summed over the query heads.
 * Dense attention scans and keeps every key and drops nothing. */
typedef struct rsr_attention_stats {
    int64_t keys;              /* keys the heads could attend: heads × (position + 1) */
    int64_t bounded;           /* keys whose Louver upper bound was evaluated (not in a skipped block) */
    int64_t scanned;           /* keys whose exact score was computed and that were attended */
    int64_t kept;              /* scanned keys with q·k ≥ τ: every key above τ is among them */
    int32_t heads;
    int32_t dense_fallbacks;   /* heads that scanned everything (bound arithmetic could overflow) */
    float tau_min, tau_max;    /* τ (on q·k) over the heads; −inf for dense attention */
    double dropped_bound;      /* the largest certified bound on the dropped softmax mass of a head */
} rsr_attention_stats;
/* Fails with RSR_ERR_INVALID_ARGUMENT for a layer out of range or before any evaluation. */
rsr_status rsr_session_attention_stats(const rsr_session *session, int32_t layer, rsr_attention_stats *stats);

/* Sampling. temperature <= 0 means greedy; top_k <= 0 and top_p >= 1 disable those filters.
 * The state of the random generator lives in *rng (seed it with any value). */
typedef struct rsr_sampler_params {
    float temperature;
    int32_t top_k;
    float top_p;
} rsr_sampler_params;
rsr_sampler_params rsr_sampler_default_params(void); /* greedy */
int32_t rsr_sample_greedy(const float *logits, int32_t vocab_size);
/* scratch: vocab_size floats and vocab_size int32 the caller provides (no allocation here). */
int32_t rsr_sample(const float *logits, int32_t vocab_size, const rsr_sampler_params *params,
                   uint64_t *rng, float *scratch_probs, int32_t *scratch_ids);

/* Access to the compiled ternary matrices, for tests and tools: exact integer products. */
typedef struct rsr_matrix_info {
    const char *name;          /* the checkpoint tensor name */
    int32_t rows, cols;
    const char *strategy;      /* "rsr-unrolled", "rsr-loop", ... */
    int32_t rsr_k;
    float scale;               /* beta: y = sum * beta / x_scale */
} rsr_matrix_info;
rsr_status rsr_model_matrix_info(const rsr_model *model, int32_t index, rsr_matrix_info *info);
/* y[rows] = W_t · x[cols] exactly, x int8 and W ternary (or binary). */
rsr_status rsr_model_matvec_int(const rsr_model *model, int32_t index, const int8_t *x, int32_t *y);

#ifdef __cplusplus
}
#endif
#endif
