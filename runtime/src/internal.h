/* internal.h — the runtime's private structures and functions. Internal functions are named rt_*:
 * the rsr_* names are the public API (rsr.h), the only ones an embedded object exports (embed.c). */
#ifndef RSR_RUNTIME_INTERNAL_H
#define RSR_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include "rsr.h"
#include "rsr_artifact.h"
#include "rsr_blocks.h"
#include "rsr_numerics.h"

#define RSR_ERRMSG_SIZE 1024

/* The default model, defined by the generated code of model.so and of objects compiled without
 * --name; weak, so that a program holding only named models links without it. */
extern const rsr_artifact *const RSR_ARTIFACT_SYMBOL __attribute__((weak));

typedef struct rt_device rt_device;

struct rsr_model {
    const rsr_artifact *a;
    const uint8_t *blob; /* the constants the CPU reads: a->blob, or its copy */
    const uint8_t *rows; /* the embedding's and the f16/bf16 head's rows (rt_rows): a->blob, the file's pages,
                          * which a token reads a row or a few of; the copy only when locked */
    uint8_t *copy;       /* load.c: the copy in anonymous memory (huge pages), else NULL */
    /* per matrix, a base-3 one's codes in the 2-bit layout its compiled kernels read, converted at
     * open where this CPU has no kernel of the runtime's for its layout (rt_cpu_codes); else NULL */
    uint8_t **codes;
    /* the int8 head (rsr_artifact.head_q8's rule): its rows, or NULL (none); made at the first
     * certified pick (rt_head_q8_ready), under q8_lock, and then q8_state is 1 */
    const uint8_t *q8;
    const float *q8_scale, *q8_err;
    /* or, for a head in group-scaled blocks on a CPU with the kernel (lm_head.c, "the codes
     * head"), its 2-bit codes: rows of hc_stride bytes (hc_groups groups of 64 bytes of codes, then
     * the blocks' scales as f32), each row's largest |scale| in hc_maxd; else NULL */
    const uint8_t *hc;
    const float *hc_maxd;
    size_t hc_stride;
    int32_t hc_groups;
    uint8_t *q8_made; /* the copy made at open (anonymous memory), else NULL */
    size_t q8_made_size;
    int q8_state;
    pthread_mutex_t q8_lock;
    int rows_fd;          /* load.c: the artifact's file, open for the rows the copy left out (rt_row), or -1 */
    int64_t rows_file_at; /* the file offset of the constants' first byte */
    uint64_t rows_from[2], rows_to[2]; /* the parts of the constants left out of the copy */
    int32_t num_rows_spans;
    size_t copy_size;
    char constants[448];     /* rsr_model_info.constants */
    char path[256];          /* the file the artifact was loaded from, for messages ("" unknown) */
    const rt_device *run_on; /* what its sessions run on: an entry of rt_devices */
    void *dev;               /* the device's own part of the model (its model_open makes it), or NULL */
    char device[200];        /* rsr_model_info.device */
    int32_t num_threads;
    int32_t team;           /* threads a parallel region runs with now (atomic; rt_team_of): num_threads,
                              * or fewer while threads.c finds that faster on the cores free */
    struct rt_adapt *adapt; /* threads.c: the adaptive count of a default open, else NULL */
    int32_t max_rows;       /* the largest kernel output, rt_kernel_rows (scratch sizes) */
    int32_t max_block_sums; /* the most int32 sums of one block of a matrix whose sums go by blocks, rt_block_sums */
    bool grouped;           /* a matrix has scales per group of columns (rsr_artifact_matrix.unit_cols) */
    double rope_theta2;     /* the one layer RoPE base other than rsr_artifact.rope_theta (Gemma3's local
                                 layers), or 0: every layer rotates with rope_theta */
    int32_t max_experts, max_experts_used; /* the most of any layer's mixture of experts; 0: none */
    /* gated DeltaNet layers (Qwen3.5, rsr_artifact_layer.kind; 0: none): the widest [q|k|v], value
     * width and V heads of any, and the floats of a session's recurrent state over all of them */
    int32_t dn_conv_dim, dn_value_dim, dn_v_heads;
    size_t dn_state_floats;
    FILE *route_trace;        /* RSR_TRACE_ROUTING=FILE: each token's chosen experts per layer (docs/moe.md), or NULL */
    rsr_tokenizer *tokenizer; /* parsed from the artifact's tokenizer.json on first use */
    rsr_status status;        /* of the open: a model that failed to open refuses every use */
    char err[RSR_ERRMSG_SIZE];
};

/* The activations of one step: `rows` tokens, row t of each buffer belonging to token t. A session
 * owns one for its own steps; a batch (rsr_batch_eval) owns one for the rows of all its sessions. */
typedef struct rt_work {
    int32_t rows;              /* tokens of one step: the rows of the buffers below */
    int32_t widest, xq_stride; /* max(hidden, q_out, intermediate); that padded to RSR_X_PAD */
    float *h;                  /* [rows][hidden] residual stream */
    float *xn;                 /* [rows][widest] normed activation */
    float *tmp;                /* [rows][widest] BitLinear-internal norm (Falcon-E) */
    float *q, *k, *v, *att;    /* [rows][q_out], [rows][kv_out], [rows][kv_out], [rows][q_out] */
    float *gate, *up;          /* [rows][intermediate] */
    int8_t *xq;                /* [rows][xq_stride] quantised activation */
    float *xs;                 /* [rows] its scales (per-token activations) */
    float *xd;                 /* [rows][xd_stride] its blocks' scales (rsr_artifact.act_block), else NULL */
    int32_t xd_stride;
    float *mtp_save, *mtp_hn; /* a model with an MTP layer: [rows][hidden] each (mtp.c), else NULL */
    float *rope;              /* [rows][head_dim] cos, sin of each token's rotary angles */
    float *rope2;             /* the same with rsr_model.rope_theta2, or NULL when the model has no second base */
    /* A mixture of experts' step (rsr_model.max_experts > 0; else NULL): every row's quantised FFN
     * input kept while each expert's tokens are gathered into xq ([rows][xq_stride], [rows],
     * [rows][xd_stride]), each row's router probabilities ([rows][max_experts]), chosen experts
     * and their weights ([rows][max_experts_used]), one expert's rows and their weights ([2][rows]),
     * the sum of the experts' outputs ([rows][hidden]) and the shared expert's weights ([rows]) */
    int8_t *moe_xq;
    float *moe_xs, *moe_xd, *moe_p, *moe_w, *moe_out, *moe_shared;
    int32_t *moe_pick, *moe_rows;
    /* Qwen3.5 (else NULL): a DeltaNet layer's [q|k|v] and z ([rows][rsr_model.dn_conv_dim],
     * [rows][dn_value_dim]), beta and g ([rows][dn_v_heads] each); a gated attention layer's q
     * with its gates ([rows][2·q_out]) and the gates ([rows][q_out]) */
    float *dn_qkv, *dn_z, *dn_beta, *dn_g, *qg, *gate_q;
    int32_t *acc;       /* [acc_rows][acc_stride] integer products */
    int32_t acc_stride; /* room for the rows of q, k and v together */
    int32_t acc_rows;   /* tokens acc holds: rows, or fewer where a grouped model's sums are many */
    /* each thread's sums of a few blocks and tokens of a matrix whose sums go by blocks
     * (rows_grouped): sums_each int32 from sums + thread · sums_each */
    int32_t *sums;
    size_t sums_each;
} rt_work;
rsr_status rt_work_init(rt_work *w, const rsr_model *m, int32_t rows);    /* RSR_ERR_OUT_OF_MEMORY */
rsr_status rt_work_reserve(rt_work *w, const rsr_model *m, int32_t rows); /* grows to rows; RSR_ERR_OUT_OF_MEMORY */
void rt_work_free(rt_work *w);

struct rsr_session {
    rsr_model *model;
    int32_t max_positions, pos;
    int32_t louver_from; /* the first position auto attended with Louver (rsr_session_reusable); INT32_MAX: none */
    int32_t *tokens;     /* [max_positions]: the token at each position below pos (rsr_session_tokens) */
    int32_t batch;       /* tokens of one prefill step (s->work.rows on the CPU) */
    uint8_t *k_cache, *v_cache;         /* per layer, [kv_heads][its rows] rows of kv_type: kv_row() */
    struct rt_kv_layer *kv_layer;       /* [layers] where each layer's rows are (CPU sessions; NULL on a GPU) */
    int32_t kv_written;                 /* positions written since the last reset, a failed step's included */
    int32_t kv_type;                    /* rsr_kv_type = attn_kernels.h's ATTN_* */
    size_t kv_bytes;                    /* bytes of one row (head_dim elements) */
    rt_work work;                       /* the CPU device's activations of this session's own steps */
    struct rt_attention *attn;          /* attention.c: dense partial states or the Louver indexes */
    struct rt_head_scratch *head;       /* lm_head.c: the certified greedy head's buffers, made on first use */
    struct rt_head_scratch **head_rows; /* lm_head.c: more rows' (a draft's verification), made on first use */
    int32_t n_head_rows;
    rsr_head_stats head_stats; /* lm_head.c: what the certified heads computed (rsr_session_head_stats) */
    void *dev;                 /* the device's own part of the session (its session_init), or NULL */
    /* forward.c: each gated DeltaNet layer's recurrent state in layer order (Qwen3.5; NULL: none),
     * rsr_model.dn_state_floats: the last dn_conv − 1 tokens' [q|k|v] before the convolution, oldest
     * first, then per V head the state [dn_head (key)][dn_head (value)] */
    float *dn_state;
    /* forward.c: checkpoints, copies of dn_state DN_SNAP_BACK (8) tokens before the end of each step
     * longer than that (a prompt's chunks, the prompt of each turn), which rsr_session_truncate can
     * go back to: dn_ckpt_cap of them at most (rsr_session_params.checkpoints), each made when it is
     * first needed; dn_ckpt_pos[i] its position (-1: none). When every one is taken, a new one
     * replaces the one nearest the one below it (ckpt_choose), so that they stay spread over the
     * context. dn_ckpt_w: the one the step in flight writes (-1: none). */
    float **dn_ckpt;
    int32_t *dn_ckpt_pos, dn_ckpt_cap, dn_ckpt_w;
    /* forward.c: a draft's verification (rsr_session_eval_draft, dn_draft_rec set by it) records
     * the recurrent state at its first position dn_draft_from (dn_draft_snap) and each of its tokens'
     * inputs to the recurrence (dn_draft_in: per DeltaNet layer and token, [q|k|v] before the
     * convolution, beta and g; room for dn_draft_cap tokens): truncation to any position in
     * [dn_draft_from, dn_draft_from + dn_draft_n] replays the kept tokens from the copy, and the
     * record then covers those alone (the cut after a draft keeps its taken tokens; positions
     * after them may be written anew); truncation before the draft, or a reset, ends it. */
    float *dn_draft_snap, *dn_draft_in;
    int32_t dn_draft_from, dn_draft_n, dn_draft_cap;
    bool dn_draft_rec;
    /* mtp.c, Qwen3.5's multi-token prediction (rsr_session_params.mtp): the MTP layer follows each
     * step; mtp_h holds the model's final-normed hidden states of the latest positions evaluated,
     * [mtp_h_from, mtp_h_from + mtp_h_n), which the next step and rsr_session_draft_mtp pair with the
     * token after them (mtp_h_n 0: none kept) */
    bool mtp;
    float *mtp_h;
    int32_t mtp_h_from, mtp_h_n, mtp_h_cap; /* mtp_h: a ring of mtp_h_cap rows, position p at p % mtp_h_cap */
    char err[RSR_ERRMSG_SIZE];
};
/* The layers a session's cache and attention keep: the model's and its MTP layer (rsr_artifact.mtp_layers). */
static inline int32_t rt_layers(const rsr_artifact *a) { return a->num_layers + a->mtp_layers; }

/* ---- devices: what a model's sessions run on, chosen when the model is opened (model.c) ----
 * The session API (session.c) checks its arguments and the tokens, then calls through
 * m->run_on, an entry of rt_devices: the host's CPU (runtime/cpu) or a device another module
 * fills (cuda/runtime: the GPU). Nothing in runtime/src names a device; what it needs to know of
 * one is a field of its rt_device. */
typedef enum rt_head_kind {
    RT_HEAD_NONE,       /* the tokens go into the cache; nothing comes back */
    RT_HEAD_LOGITS,     /* the exact logits of the last token */
    RT_HEAD_ALL,        /* the exact logits of every token (rsr_session_eval_all) */
    RT_HEAD_GREEDY_ALL, /* the certified greedy token after every token, into token[0..n) (a draft's verification) */
    RT_HEAD_INT8,       /* the int8 head's logits and their certified bound */
    RT_HEAD_GREEDY,     /* the greedy token of the exact logits */
    RT_HEAD_SAMPLE,     /* a token drawn by the sampler's rules */
    RT_HEAD_EMBED,      /* the tokens' pooled final-normed hidden states (rsr_session_embed) */
} rt_head_kind;
typedef struct rt_head_request {
    rt_head_kind kind;
    float *logits;                     /* LOGITS, INT8: vocab floats */
    double *bound;                     /* INT8 (may be NULL) */
    int32_t *token;                    /* GREEDY, SAMPLE (may alias the tokens: written last) */
    const rsr_sampler_params *sampler; /* SAMPLE: not plain greedy (rt_sampler_plain_greedy) */
    uint64_t *rng;                     /* SAMPLE */
    double *tail;                      /* SAMPLE (may be NULL) */
    float *embed;                      /* EMBED: hidden floats */
    int normalize;                     /* EMBED: to unit length */
} rt_head_request;
typedef struct rt_state_part {
    void *p;
    size_t bytes;
    const char *what; /* "layer 3's keys": a message naming a part that differs */
    int32_t layer;
} rt_state_part;
struct rt_device {
    const char *name;  /* "cpu", "gpu": how messages name it */
    const char *title; /* a device other than the host: how a sentence names it ("the GPU is unavailable") */
    int32_t device;    /* a device other than the host: the rsr_model_params.device that asks for it */
    bool host_memory;  /* the KV cache and the queries live in host memory (rsr_session_kv_read) */
    bool own_threads;  /* runs on processors of its own: the host's adaptive thread count (threads.c) stays out */
    bool last_only;    /* computes the last token's output only: no embedding (pooled over every token), no
                        * logits of every token (RT_HEAD_EMBED, RT_HEAD_ALL) */
    /* a device other than the host: the artifact carries code for it, so that RSR_DEVICE_AUTO opens
     * the model there */
    bool (*has_code)(const rsr_artifact *a);
    /* The planes in which its kernel of matrix index writes the sums per unit (a matrix with scales
     * per group: rsr_model_matmul_int adds them); NULL: the artifact's rsr_artifact_matrix.planes. */
    int32_t (*planes)(const rsr_model *m, int32_t index);
    /* The device's part of a new session (max_positions and batch set), or a status with the
     * message in the model's err; the caller frees the session on failure. */
    rsr_status (*session_init)(rsr_session *s, const rsr_session_params *p);
    void (*session_free)(rsr_session *s);     /* its part only; NULL-safe for a part never made */
    void (*session_reset)(rsr_session *s);    /* back to position 0 (s->pos already 0); NULL: nothing to do */
    void (*session_truncate)(rsr_session *s); /* back to s->pos (already set); NULL: nothing to do */
    /* n checked tokens at s->pos (n <= room left); s->pos advances by those evaluated, and a
     * failed step leaves the session as it was before that step */
    rsr_status (*eval)(rsr_session *s, const int32_t *tokens, int32_t n, const rt_head_request *head);
    /* y[t] = W_index · x[t] for ntok tokens of cols int8 each (rsr_model_matmul_int) */
    rsr_status (*matmul_int)(const rsr_model *m, int32_t index, const int8_t *x, int32_t ntok, int32_t *y);
    /* The device's part of an opened model (m->a set; it names m->device), or a status with the
     * reason in why (RSR_ERRMSG_SIZE bytes); NULL: nothing to open. model_close releases it, also
     * after a failed open; NULL-safe. */
    rsr_status (*model_open)(rsr_model *m, char *why);
    void (*model_close)(rsr_model *m);
    /* The host: refuses an artifact whose code needs what this processor lacks, saying why in err
     * (RSR_ERRMSG_SIZE bytes); a model opens on the host first, whatever runs it after. */
    rsr_status (*check)(const rsr_artifact *a, char *err);
    void (*describe)(char *out, size_t size); /* the host: what rsr_model_info.device says of it */
    /* The smallest position above 0 that rsr_session_truncate can go back to, and in *layer the
     * layer that sets it with the positions it keeps (a sliding window's last); NULL: any (1). */
    int32_t (*truncate_floor)(const rsr_session *s, int32_t *layer, int32_t *kept);
    /* What rsr_session_attention_stats, rsr_session_kv_read and rsr_session_last_query read, after
     * session.c checked the session, the layer (an attention layer) and the head; NULL: the device
     * keeps none (attention_stats), or keeps them where the host cannot read (host_memory false). */
    rsr_status (*attention_stats)(const rsr_session *s, int32_t layer, rsr_attention_stats *out);
    rsr_status (*kv_read)(const rsr_session *s, int32_t layer, int32_t kv_head, int32_t first, int32_t count,
                          float *keys, float *values);
    rsr_status (*last_query)(const rsr_session *s, int32_t layer, float *q);
    /* rsr_batch_*: the device's part of a batch of rows (b->dev; b->model set, b->cap not yet; a
     * failure says why in b->err), a step of the checked call's sequences, and the part freed
     * (NULL-safe for a part never made); batch_eval NULL: the device takes no batches. */
    /* A session's state as a file (session_file.c): the memory it holds beyond its tokens and the
     * recurrent state, for a session at position pos, as parts in a fixed order (up to cap into
     * out; returns how many there are), and in *attention how it attends (0 dense, 1 Louver, 2
     * auto: its decisions are a part); kv_written: the positions written since the last reset (a
     * sliding window's ring holds the last of them). NULL: the device's sessions cannot be saved. */
    int32_t (*state_parts)(rsr_session *s, int32_t pos, int32_t kv_written, rt_state_part *out, int32_t cap,
                           int32_t *attention);
    void (*state_loaded)(rsr_session *s); /* after the parts were read: what follows from them; NULL: nothing */
    /* rsr_session_draft_mtp after session.c checked it (s->mtp set, room for one position, token in the
     * vocabulary, max >= 1); NULL: the device drafts nothing (session_create refuses rsr_session_params.mtp) */
    rsr_status (*draft_mtp)(rsr_session *s, int32_t token, int32_t max, float p_min, int32_t *draft, int32_t *n);
    rsr_status (*batch_init)(rsr_batch *b, int32_t rows);
    rsr_status (*batch_eval)(rsr_batch *b, const rsr_seq *seqs, int32_t n_seqs);
    void (*batch_free)(rsr_batch *b);
};
/* A batch (rsr_batch_create): its model, its rows, the device's part. */
struct rsr_batch {
    rsr_model *model;
    int32_t cap; /* the most rows of a step: rsr_batch_create's rows (0: the create failed) */
    void *dev;   /* the device's part (its batch_init) */
    char err[RSR_ERRMSG_SIZE];
};
/* The devices this runtime was built with, NULL-terminated (generated by CMake from
 * RSR_RUNTIME_DEVICES: each module that fills an entry names it there). The first is the host,
 * where every model can run and the one a model runs on when no other takes it. */
extern const rt_device *const rt_devices[];
extern const rt_device rt_device_cpu; /* runtime/cpu/forward.c: the host */

/* session.c: tokens that an evaluation of s appends, noted at s->pos before the device runs (an
 * output may alias them: rsr_session_tokens); nothing where they would not fit (the step refuses). */
void rt_note_tokens(rsr_session *s, const int32_t *tokens, int32_t n);
/* Writes the message into err (RSR_ERRMSG_SIZE bytes) and returns st. */
rsr_status rt_set_error(char *err, rsr_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The sums a matrix's kernel writes per token: one per row, or per unit, plane and row
 * (rsr_artifact_matrix.unit_cols). */
/* The int32 sums of a kernel of x whose sums per unit come in `planes` planes `stride` apart: its
 * rows, or with scales per group units · planes · stride. */
static inline int64_t rt_sums_rows(const rsr_artifact_matrix *x, int32_t planes, int32_t stride) {
    return x->unit_cols > 0 ? (int64_t)(x->cols / x->unit_cols) * planes * stride : x->rows;
}
static inline int64_t rt_kernel_rows(const rsr_artifact_matrix *x) {
    if (x->unit_cols > 0 && x->sums_block > 0) /* by blocks: every block's units */
        return (int64_t)x->num_blocks * (x->cols / x->unit_cols) * x->planes * x->sums_block;
    return rt_sums_rows(x, x->planes, x->unit_stride);
}
/* The int32 sums of one block of a matrix whose sums go by blocks (rsr_artifact_matrix.sums_block). */
static inline int64_t rt_block_sums(const rsr_artifact_matrix *x) {
    return (int64_t)(x->cols / x->unit_cols) * x->planes * x->sums_block;
}
/* Where block b's sums begin among those of a call from block 0: b·rt_block_sums by blocks, else 0
 * (every call writes at the rows' own places). */
static inline int64_t rt_sums_from(const rsr_artifact_matrix *x, int32_t b) {
    return x->unit_cols > 0 && x->sums_block > 0 ? (int64_t)b * rt_block_sums(x) : 0;
}
/* n rounded up to RSR_X_PAD: the padded length of a quantised activation (the kernel contract). */
static inline int32_t rt_pad_cols(int32_t n) { return (n + RSR_X_PAD - 1) / RSR_X_PAD * RSR_X_PAD; }
/* load.c: the threads of a default open (the affinity mask's CPUs); the constants put where params
 * say (m->blob). */
int32_t rt_default_threads(void);
/* threads.c: the adaptive thread count (a default open) and the count regions run with now */
typedef struct rt_adapt rt_adapt;
void rt_adapt_init(rsr_model *m, bool fixed);
void rt_adapt_free(rsr_model *m);
double rt_adapt_begin(const rsr_model *m, int32_t n); /* a decode step's start time, or 0: not timed */
void rt_adapt_end(rsr_model *m, double t0);
int32_t rt_team_of(const rsr_model *m);
rsr_status rt_load_constants(rsr_model *m, const rsr_model_params *params);
/* forward.c: the base-3 matrices' codes in the 2-bit layout (m->codes) where this CPU has no kernel
 * of the runtime's for their layout (rt_units_native), so that their compiled kernels run */
rsr_status rt_cpu_codes(rsr_model *m);
/* The codes a matrix's compiled kernel reads: the conversion's (m->codes), else its data in the
 * constants; NULL for a kernel without data */
static inline const uint8_t *rt_codes(const rsr_model *m, const rsr_artifact_matrix *mx) {
    if (mx->data == RSR_NO_TENSOR) return NULL;
    const uint8_t *c = m->codes ? m->codes[mx - m->a->matrix] : NULL;
    return c ? c : m->blob + mx->data;
}
/* The bytes [off, off + n) of the constants, where rows of the embedding or of the head lie: read
 * from the artifact's file into buf (cap bytes) where the copy left them out, so that a token's
 * few rows never join the process's resident set; where the CPU reads the rest otherwise (the
 * copy, or the mapping, also where n > cap or the file cannot be read). */
#define RT_ROW_MAX 65536
#define RT_FEW_ROWS 4096 /* a certified pick reads at most this many exact rows from the file; the rest mapped */
const uint8_t *rt_row(const rsr_model *m, uint64_t off, size_t n, uint8_t *buf, size_t cap);
/* lm_head.c: whether the model has its int8 head (rsr_model.q8) or its codes head (rsr_model.hc),
 * made here the first time a certified pick asks for it: from the artifact's constants (an older
 * rsrc stored it), or from the head's rows (read from the file, quantised or, for a head in
 * group-scaled blocks on x86, laid out as codes by the model's threads). Without memory for it, or
 * with rows that cannot be read, there is none: every pick then reads the whole head (the same
 * tokens, slower). */
bool rt_head_q8_ready(const rsr_model *m);
void rt_rows_close(rsr_model *m);
/* The unit tests' hooks, defined RT_TEST_HOOK int NAME: hidden variables, 0 unless a unit test
 * sets them, so that the tests run the compilation that ships (the product makes them local: no
 * program that links it can reach them, tests/install/check_symbols.sh). head_bound_weakened_for_tests:
 * nonzero halves every head bound and drops its fp32 term, which tests/unit/test_head.c must
 * notice; head_sample_policy_for_tests (lm_head.c); louver_bound_weakened_for_tests: Louver's bound
 * halved and its slack dropped, which tests/unit/test_louver.c --weakened must notice (louver.c);
 * spec_accept_weakened_for_tests: every drafted token accepted, which tests/unit/test_spec.c
 * --weakened must notice (sample.c). */
#define RT_TEST_HOOK __attribute__((visibility("hidden")))
extern RT_TEST_HOOK int head_bound_weakened_for_tests, head_sample_policy_for_tests, louver_bound_weakened_for_tests,
    spec_accept_weakened_for_tests;

/* Element i of a row of a 16- or 32-bit float tensor, widened exactly (rt_row_floats: any dtype's row). */
static inline float load_elem(const uint8_t *row, int32_t dtype, int32_t i) {
    switch (dtype) {
    case RSR_DTYPE_BF16: {
        uint16_t h;
        memcpy(&h, row + 2 * (size_t)i, 2);
        return rsr_bf16_to_f32(h);
    }
    case RSR_DTYPE_F16: {
        uint16_t h;
        memcpy(&h, row + 2 * (size_t)i, 2);
        return rsr_f16_to_f32(h);
    }
    default: {
        float f;
        memcpy(&f, row + 4 * (size_t)i, 4);
        return f;
    }
    }
}

/* The one rule every argmax of logits follows (rsr_sample_greedy, the certified head and its
 * fallbacks): a larger logit wins, NaN never wins over a number, and of equal logits the first. */
static inline bool rt_logit_better(float l, float best) { return l > best || (best != best && l == l); }
/* The sampler's repetition penalty (rsr.h): whether it applies, and what it does to one logit.
 * The map is non-decreasing, so it carries a bound [lo, hi] on a logit to one on its image. */
static inline bool rt_sampler_penalises(const rsr_sampler_params *p) {
    return p && p->recent && p->n_recent > 0 && p->repeat_penalty > 0 && p->repeat_penalty != 1.0f;
}
static inline float rt_penalise(float logit, float penalty) { return logit > 0 ? logit / penalty : logit * penalty; }
/* rsr_sample over n rows of a vocabulary of `vocab` (n <= vocab; a caller's rows in index order,
 * ids then index them): the cut leaves out rows whose weight is below 2^-24 / vocab (sample.c).
 * info (may be NULL): the rows kept, and the summed weight of those cut (a bound on their
 * probability). */
typedef struct rt_sample_info {
    int32_t kept;
    double cut;
} rt_sample_info;
int32_t rt_sample(const float *logits, int32_t n, int32_t vocab, const rsr_sampler_params *params, uint64_t *rng,
                  float *probs, int32_t *ids, rt_sample_info *info);
/* Speculative sampling's rule for a token d proposed with certainty (sample.c): the token
 * returned is drawn from the sampler's distribution exactly; *accepted when it is d by the rule's
 * acceptance (at temperature 0: when d is the greedy token). */
int32_t rt_sample_verify(const float *logits, int32_t vocab, const rsr_sampler_params *params, uint64_t *rng,
                         float *probs, int32_t *ids, int32_t d, bool *accepted);
/* Greedy as rsr_session_eval_greedy: temperature <= 0 (or no parameters) and no penalty. */
static inline bool rt_sampler_plain_greedy(const rsr_sampler_params *p) {
    return !p || (!(p->temperature > 0) && !rt_sampler_penalises(p));
}

/* A row of n elements of an embedding or head (any enum rsr_dtype) as floats, widened exactly. */
static inline void rt_row_floats(const uint8_t *row, int32_t dtype, int32_t n, float *out) {
    if (rsr_block_weights(dtype)) {
        rsr_blocks_floats(dtype, row, (size_t)n, out);
        return;
    }
    for (int32_t i = 0; i < n; i++) out[i] = load_elem(row, dtype, i);
}

#endif
