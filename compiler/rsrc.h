/*
 * rsrc.h — the one internal header of the compiler, sectioned by the file that owns each part.
 *
 * Pipeline (see compile() in main.c):
 *
 *   checkpoint ──load──▶ model ──analyse──▶ rsr_plan ──lower──▶ kernel ──emit──▶ C ──link──▶ model.so
 *   safetensors.c        checkpoint.c       rsr.c               kernel.c        emit_c.c    link.c
 *                                                                                       └─embed──▶ NAME.o
 *   model ──emit_header.c──▶ NAME.h (sizes as macros, entry points)                     embed.c
 *
 * Matrices are processed one at a time (load, analyse, emit, free), so the compiler's memory
 * does not grow with the model: the checkpoint is memory-mapped and the constant data is
 * streamed into the artifact's blob file as it is produced.
 */
#ifndef RSRC_H
#define RSRC_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdnoreturn.h>

#include "rsr_artifact.h"

struct blob_writer;
struct artifact_desc;

#define RSRC_VERSION "0.1.0"

/* ---- diag.c: errors that name the file, tensor and value; temporary files removed on exit ---- */
noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void note(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3))); /* -v */
/* fn runs before every message (progress.c erases its status line with it); NULL: nothing */
void diag_before_message(void (*fn)(void));
extern int verbosity;
void register_temp(const char *path); /* removed by fatal() and at exit unless released */
/* Arenas: what a loader holds while it may still fail. A loader opens one, allocates its
 * temporaries from it and gives it what else it must release (arena_own: a cJSON tree, the result
 * being built); one arena_close releases all of it, newest first. fatal() closes every open arena,
 * innermost first, so no loader registers a cleanup of its own. A result handed to the caller is
 * taken back with arena_disown before the close. Arenas nest and close in reverse order. With
 * fatal_jump set, fatal() longjmps there instead of exiting (fuzzers); fatal_quiet silences it. */
typedef struct arena arena;
arena *arena_open(void);
void *arena_alloc(arena *a, size_t n);
char *arena_printf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_own(arena *a, void (*release)(void *), void *p); /* NULL p: nothing */
void *arena_disown(arena *a, void *p);                      /* returns p, no longer released */
void arena_close(arena *a);
extern jmp_buf *fatal_jump;
extern bool fatal_quiet;
void release_temp(const char *path);
/* An output is written under a new temporary name next to it (mode 0600, registered as a
 * temporary; *fd open on it, or closed when fd is NULL) and renamed into place when finished, with
 * `mode` less the umask: a failure or a signal never leaves half of it under the final name. */
char *output_temp(const char *final, int *fd);
void output_commit(char *tmp, const char *final, mode_t mode); /* frees tmp */
uint64_t parse_size(const char *what, const char *s);          /* 512M, 4G, ... */
void limit_memory(uint64_t bytes);                             /* --max-memory */
void unlimit_memory(void);                                     /* in a child, before exec */
const char *format_size(uint64_t bytes, char buf[32]);
#include "alloc.h"         /* common/: xmalloc, xcalloc, xrealloc, xstrdup, xasprintf (failure: diag.c) */
#include "edit_distance.h" /* tools/: the did-you-mean of an unknown option or target */
double now_seconds(void);

/* ---- safetensors.c: memory-mapped checkpoint, single file, shard index or directory ---- */
enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_U8, ST_I8 };
typedef struct st_tensor {
    char *name;
    enum st_dtype dtype;
    int ndim;
    int64_t shape[4];
    const uint8_t *data;
    uint64_t nbytes;
    const char *file; /* the shard it lives in, for messages */
} st_tensor;
typedef struct st_archive {
    char *dir;  /* where config.json is */
    char *path; /* what the user named */
    int nfiles;
    struct st_mapped {
        char *path;
        uint8_t *map;
        size_t size;
    } * files;
    int ntensors;
    st_tensor *tensors; /* sorted by name */
} st_archive;
st_archive *st_open(const char *path);
const st_tensor *st_find(const st_archive *a, const char *name);
void st_close(st_archive *a);
const char *st_dtype_name(enum st_dtype t);
float st_get_f32(const st_tensor *t, int64_t i); /* element i widened to float */
void st_release(const st_tensor *t);             /* its pages leave the resident set */
void st_release_bytes(const uint8_t *data, uint64_t n);
void st_sort_and_check(st_archive *a, const char *path); /* sorted by name for st_find; names unique */
char *st_dir_of(const char *path);                       /* the directory of a file */
/* A directory's one .gguf file when it holds no safetensors checkpoint (NULL otherwise). */
char *st_lone_gguf(const char *path);

/* ---- checkpoint.c: config.json + format detection → one internal ternary matrix type ---- */
enum weight_format {
    WF_PACKED, /* uint8 [out/4, in] + weight_scale */
    WF_LATENT, /* bf16/f16 [out, in], absmean ternarised here */
    WF_GROUPED /* f16/bf16/f32 [out, in], every group of group_cols columns of a row -s, 0 or +s (its scale s) */
};
typedef struct model {
    st_archive *ar;
    const char *architecture; /* as written in config.json */
    const char *format_name;  /* "bitnet-packed", ... for messages and stats */
    enum weight_format wformat;
    bool scale_inverted; /* weight_scale stores 1/beta */
    bool bitlinear_norm; /* Falcon-E */
    bool sub_norms;
    const char *attn_sub_norm, *ffn_sub_norm; /* tensor name suffixes, when sub_norms */
    /* BitLinear's own RMSNorm with weights before each projection (the BitNet embedding models):
     * model.layers.N.<proj_names[p]>.norm.weight [its input width] for q, k, v, gate and up, applied
     * after the layer's norm; o's and down's are read as the sub-norms (attn_sub_norm
     * "self_attn.o_proj.norm", ffn_sub_norm "mlp.down_proj.norm", with sub_norms set). */
    bool proj_norms;
    bool tied;
    int activation;    /* enum rsr_activation */
    bool qk_norm;      /* RMSNorm of each head of q and k before RoPE (Qwen3: self_attn.q_norm, k_norm) */
    int32_t act_block; /* rsr_artifact.act_block: 0 per-token activations, else blocks of this many columns */
    /* Gemma3: RMSNorm of the attention's and the FFN's output before the residual add
     * (model.layers.N.self_attn.post_norm, mlp.post_norm), the embedding's and attention's scales
     * (rsr_artifact's; 0: none, 1/sqrt(head_dim)), and sliding windows: layer_window[l] positions
     * (0: global) with RoPE base rope_theta_swa on the windowed layers (layer_window NULL: none) */
    bool post_norms;
    float embed_scale, attn_scale;
    int32_t *layer_window;
    double rope_theta_swa;
    /* A mixture of experts in place of every layer's FFN (maple; rsr_artifact_layer's fields):
     * num_experts > 0 experts, experts_used of them per token, expert_ff[l] rows of layer l's
     * gate and up (intermediate is the widest), swiglu_clamp[l] (0: none); the router
     * model.layers.N.mlp.gate.weight [num_experts][hidden] and the experts'
     * model.layers.N.mlp.experts.E.{gate,up,down}_proj.weight. nope_global: the layers without a
     * window take no RoPE. */
    int32_t num_experts, experts_used;
    int32_t *expert_ff;
    float *swiglu_clamp;
    bool nope_global;
    /* Qwen3.5 (qwen35, docs/qwen35.md): layer_kind[l] (rsr_layer_kind; NULL: every layer attention),
     * the gated DeltaNet's K heads, V heads, head width and convolution length, q's rows [q | gate] per
     * head on the attention layers (attn_gate) and RoPE on the first rope_dims of a head (0: all) */
    int32_t *layer_kind;
    int32_t dn_k_heads, dn_v_heads, dn_head, dn_conv;
    bool attn_gate;
    int32_t rope_dims;
    int32_t mtp_layers; /* qwen35: multi-token-prediction layers after the model's (not read, skipped) */
    int32_t pooling;    /* rsr_pooling of embeddings: a GGUF's ARCH.pooling_type; 0 (absent): the last token's */
    int32_t group_cols; /* WF_GROUPED: the columns of a group (128, 64 or 32), one for the whole model */
    int32_t hidden, intermediate, num_layers, num_heads, num_kv_heads, head_dim;
    int32_t vocab, max_positions, bos, eos;
    float rms_eps, bitlinear_eps;
    double rope_theta;
    char *tokenizer;        /* a GGUF's tokenizer as tokenizer.json text or a tokenizer.model, or NULL (then */
    size_t tokenizer_len;   /* the files beside the weights) */
    char *chat_template;    /* a GGUF's tokenizer.chat_template (NUL-terminated), or NULL */
    struct gguf_lazy *lazy; /* a GGUF's ternary matrices, converted one at a time (gguf_model_prepare) */
} model;

typedef struct ternary_matrix {
    char *name;
    int32_t rows, cols;
    int8_t *w; /* [src_rows][cols], values -1, 0, 1 (and +2 with group scales) */
    float beta;
    bool binary; /* no zeros: every weight is ±1 */
    /* Scales per group of columns (Q1_0, Q2_0), or activations scaled per block: the matrix the
     * kernels see is the expanded one of rsr_artifact_matrix (rows = units · planes · src_rows, row
     * (u·planes + p)·src_rows + r holding row r's weights of plane p in unit u's columns, zero
     * elsewhere); ternary_weight reads it. unit_cols 0: not expanded, rows == src_rows. */
    int32_t src_rows, unit_cols, planes, scale_cols;
    float *scales; /* [src_rows][cols / scale_cols], or NULL (beta) */
} ternary_matrix;

/* Weight (r, c) of the matrix the kernels see. */
static inline int ternary_weight(const ternary_matrix *t, int32_t r, int32_t c) {
    if (!t->unit_cols) return t->w[(size_t)r * (size_t)t->cols + (size_t)c];
    int32_t R = t->src_rows, u = r / (R * t->planes), p = r / R % t->planes;
    if (c / t->unit_cols != u) return 0;
    int w = t->w[(size_t)(r % R) * (size_t)t->cols + (size_t)c];
    return p == 0 ? (w > 1 ? 1 : w) : w == 2;
}
/* The columns [*c0, *c1) where rows [r0, r0 + k) of the matrix the kernels see may be nonzero. */
static inline void ternary_block_cols(const ternary_matrix *t, int32_t r0, int k, int32_t *c0, int32_t *c1) {
    *c0 = 0, *c1 = t->cols;
    if (!t->unit_cols) return;
    int32_t span = t->src_rows * t->planes, last = r0 + k - 1 < t->rows ? r0 + k - 1 : t->rows - 1;
    *c0 = r0 / span * t->unit_cols, *c1 = (last / span + 1) * t->unit_cols;
}
/* Expands t for units of unit_cols columns (checkpoint.c): per-block activations (act_block) or
 * its own group scales; nothing when both are absent. */
void ternary_matrix_expand(ternary_matrix *t, int32_t act_block);

/* The seven linear layers of a block, in the order they are compiled. */
enum { PROJ_Q, PROJ_K, PROJ_V, PROJ_O, PROJ_GATE, PROJ_UP, PROJ_DOWN, NUM_PROJ };
extern const char *const proj_names[NUM_PROJ];
/* The ternary matrices of one layer: the seven, or with experts q, k, v, o then each expert's
 * gate, up and down (4 + 3 · num_experts). */
int model_layer_matrices(const model *m);
/* Matrix j of layer l in that order: its tensor name (the caller frees it), shape and which
 * projection it is (PROJ_GATE ... for an expert's). */
char *model_layer_matrix(const model *m, int l, int j, int32_t *rows, int32_t *cols, int *proj);
/* Whether layer l is a gated DeltaNet (qwen35): its slots q, k, o are [q|k|v], z and the output
 * projection, and slot v has no matrix (model_layer_matrix returns NULL for it). */
static inline bool model_deltanet(const model *m, int l) { return m->layer_kind && m->layer_kind[l] == 1; }
/* The ternary matrices of the whole model (model_layer_matrices per layer, less the absent slots). */
int32_t model_total_matrices(const model *m);

/* ---- gguf.c: llama.cpp's GGUF container, checked against the file; gguf_model.c: a GGUF model
 * as the rest of rsrc reads one (tensors under Hugging Face names, packed ternary matrices) ---- */
/* GGUF metadata value types, and the ggml tensor types rsrc reads */
enum gguf_value_type {
    GGUF_U8,
    GGUF_I8,
    GGUF_U16,
    GGUF_I16,
    GGUF_U32,
    GGUF_I32,
    GGUF_F32,
    GGUF_BOOL,
    GGUF_STR,
    GGUF_ARR,
    GGUF_U64,
    GGUF_I64,
    GGUF_F64,
    GGUF_NUM_VALUE_TYPES
};
enum ggml_type {
    GGML_F32 = 0,
    GGML_F16 = 1,
    GGML_Q8_0 = 8,
    GGML_Q6_K = 14,
    GGML_BF16 = 30,
    GGML_TQ1_0 = 34,
    GGML_TQ2_0 = 35,
    GGML_I2_S = 36,
    GGML_Q1_0 = 41,
    GGML_Q2_0 = 42
};
typedef struct gguf_value {
    uint32_t type, atype; /* the GGUF value type; an array's element type */
    uint64_t n, first;    /* an array's count and the byte its elements start at */
    const char *str;      /* a string's bytes (not terminated) */
    uint64_t len;         /* and length */
    uint64_t u;           /* a number, in each form */
    int64_t i;
    double f;
} gguf_value;
typedef struct gguf_tensor {
    char *name;
    uint32_t ndim, type; /* dimensions, innermost first; the ggml type */
    uint64_t ne[4], offset, nbytes;
    const uint8_t *data;
} gguf_tensor;
typedef struct gguf_file {
    char *path;
    uint8_t *map;
    size_t size;
    uint32_t version;
    uint64_t alignment, nkv, ntensors, data_offset;
    struct gguf_kv {
        char *key;
        gguf_value v;
    } * kv;
    gguf_tensor *tensors;
} gguf_file;
gguf_file *gguf_open(const char *path);
void gguf_close(gguf_file *g);
const gguf_value *gguf_get(const gguf_file *g, const char *key);
const gguf_tensor *gguf_find(const gguf_file *g, const char *name);
/* The elements of an array value, read in place (gguf_open checked them): strings one after the
 * other (*at starts at v->first and moves past each), i32 and f32 elements by index. */
const char *gguf_next_str(const gguf_file *g, uint64_t *at, uint64_t *len);
int32_t gguf_array_i32(const gguf_file *g, const gguf_value *v, uint64_t i);
float gguf_array_f32(const gguf_file *g, const gguf_value *v, uint64_t i);
const char *gguf_type_name(uint32_t type);
void gguf_print(const gguf_file *g, FILE *out);          /* --print=gguf: metadata and tensor table */
bool gguf_is(const char *path);                          /* a file that starts with the GGUF magic */
void gguf_model_load(struct model *m, const char *path); /* fills m and m->ar */
/* A GGUF's ternary matrix NAME (and NAME_scale, NAME_group_scale) converted into the archive's
 * tensors, which until then have no data; NULL when NAME is not one of those, else a handle for
 * gguf_model_release, which frees them again. */
void *gguf_model_prepare(const struct model *m, const char *name);
void gguf_model_release(void *converted);
void gguf_lazy_free(struct gguf_lazy *lazy);

model *model_load(const char *path);
void model_free(model *m);
char *model_tensor_name(const model *m, int layer, int proj);
/* rows and cols of projection `proj` (PROJ_Q ...) of every layer */
void model_matrix_dims(const model *m, int proj, int32_t *rows, int32_t *cols);
void model_load_matrix(const model *m, const char *name, int32_t rows, int32_t cols, ternary_matrix *out);
void ternary_matrix_free(ternary_matrix *t);
const st_tensor *model_require(const model *m, const char *name, int ndim, int64_t d0, int64_t d1);
void model_print(const model *m, FILE *out);
/* Refuses, before any work, a compile whose largest matrix would not fit in max_bytes. */
void model_check_memory(const model *m, int rsr_k, uint64_t max_bytes);

/* ---- rsr.c: Redundant Segment Reduction analysis ---- */
/* Ternary block code: (pos_bits << k) | neg_bits, bit r = row r of the block.
 * Binary block code: bit r set when W = +1 (all columns are kept). */
typedef struct rsr_plan {
    int32_t rows, cols, k, num_blocks;
    bool binary;
    uint32_t *block_seg; /* [num_blocks + 1] first segment of each block */
    uint32_t *block_col; /* [num_blocks + 1] first perm entry of each block */
    uint16_t *seg_code;  /* [segments] */
    uint16_t *seg_len;   /* [segments] columns in the segment */
    uint16_t *perm;      /* [columns kept] column indices, segment after segment */
    uint64_t num_segments, num_cols_kept;
} rsr_plan;
#define RSR_MAX_K 8
/* The digit of row r (0..k-1) in a segment's pattern code: ternary codes are pos_bits << k |
 * neg_bits (+1, -1 or 0); binary codes have bit r set for +1, clear for -1. Every printer decodes
 * codes this way (the loop forms print the same expression into the kernels they write). */
static inline int rsr_code_digit(const rsr_plan *p, uint32_t code, int r) {
    if (p->binary) return (code >> r) & 1 ? 1 : -1;
    return (int)((code >> (p->k + r)) & 1) - (int)((code >> r) & 1);
}
void rsr_analyse(const ternary_matrix *t, int k, rsr_plan *out);
/* Averages per block over a sample of up to 32 blocks of k rows. */
typedef struct rsr_sample_stats {
    int32_t blocks;                /* blocks of the whole matrix */
    double kept, segments, digits; /* per block: columns kept, non-empty segments, nonzero digits */
} rsr_sample_stats;
void rsr_sample_blocks(const ternary_matrix *t, int k, rsr_sample_stats *out);
/* Predicted cost units of one row for block size k (units: see rsr.c). */
double rsr_units_per_row(const ternary_matrix *t, int k);
/* The k of least predicted cost (units: see rsr.c), and that cost per output row in *cost_per_row. */
int rsr_choose_k(const ternary_matrix *t, int max_k, double *cost_per_row, char *why, size_t whylen);
uint64_t rsr_index_bytes(const rsr_plan *p);
void rsr_plan_free(rsr_plan *p);
void rsr_plan_print(const rsr_plan *p, const char *name, FILE *out);
void rsr_reference_matvec(const rsr_plan *p, const int8_t *x, int32_t *y); /* interprets the plan */

/* ---- target.c: a target is data (a YAML spec in specs/, or the detected host) ---- */
enum target_kind { TK_CPU, TK_CUDA };
/* What the command line asks of the code beside the target, passed to whoever uses it (the
 * planner, the printers, the link step); a target holds only what its spec says. */
enum prefill_form { PREFILL_AUTO, PREFILL_TILES, PREFILL_LANES }; /* --prefill: auto, i2, rsr */
typedef struct compile_options {
    enum prefill_form prefill;
    int opt_level; /* -O0..-O3: LLVM's pipeline and code generation, the C compiler's -O; -1: the
                      defaults (LLVM O3 and aggressive code generation, C -O2) */
} compile_options;
#define COMPILE_DEFAULTS ((compile_options){PREFILL_AUTO, -1})
typedef struct target {
    char *name, *description;
    char *path; /* the spec it came from, for messages */
    enum target_kind kind;
    char *triple, *cpu;
    char *cpu_model; /* host: the CPU it was detected on (/proc/cpuinfo's model name) */
    char **features, **disabled;
    int nfeatures, ndisabled;
    char **strategies; /* what the planner may choose from (empty: all) */
    int nstrategies;
    int vector_bits, threads; /* threads 0: auto */
    uint64_t l1d, l2, l3, line;
    uint32_t unroll_budget; /* icache_budget: bytes of straight-line code one matrix may spend */
    /* the target's backend: the printer of its kernels (printer.h), as its spec's backend: says */
    const struct kernel_printer *backend;
    char *cflags;                         /* for the C printer's compiler */
    char *arch, *ptx_isa, *mem_bandwidth; /* CUDA targets */
    uint64_t smem_per_block;
    int sms;
    int sm;              /* CUDA: the compute capability as a number (sm_90: 90) */
    double bytes_per_ns; /* CUDA: mem_bandwidth in bytes per ns (= GB/s) */
    struct target *gpu;  /* a CPU target's CUDA companion (--target avx512,sm_90), or NULL */
} target;
/* name: one spec, or a CPU and a CUDA spec separated by a comma. The result is always a CPU
 * target (generic when only a CUDA spec is named); the CUDA spec hangs off it as ->gpu. */
target *target_load(const char *name, const char *cpu, const char *features);
void target_free(target *t);
void target_list(FILE *out);
void target_print(const target *t, FILE *out);
/* The features of t this machine's CPU lacks ("a, b"), or NULL when it can run t's code. */
char *target_host_lacks(const target *t);
/* The instruction set t's code is for, from its triple: "x86_64" (also a spec without one),
 * "aarch64", "nvptx64"; and whether this machine runs it natively. */
const char *target_arch(const target *t);
bool target_is_foreign(const target *t);
char *host_cpu_model(void); /* /proc/cpuinfo's model name, or "unknown" */

/* ---- plan.c: the strategy of each matrix, chosen by a cost model for the target ---- */
enum strategy {
    STRAT_AUTO,
    STRAT_RSR_UNROLLED, /* RSR, the index as instructions (immediate offsets) */
    STRAT_RSR_LOOP,     /* RSR, a loop specialised to the matrix over constant index data */
    STRAT_I2,           /* packed 2-bit codes, int8 dot products (VNNI / maddubs / scalar) */
    STRAT_LUT,          /* 1.67-bit triplet codes, table lookups (vpermt2b) of x's partial sums */
    NUM_STRATEGIES
};
static inline bool strategy_is_rsr(enum strategy s) { return s == STRAT_RSR_UNROLLED || s == STRAT_RSR_LOOP; }
extern const char *const strategy_names[NUM_STRATEGIES];
enum strategy strategy_parse(const char *name); /* -1 when unknown */
typedef struct matrix_plan {
    enum strategy strategy;
    int k;                       /* RSR rows per block */
    double cost[NUM_STRATEGIES]; /* predicted ns per call, single thread; 0: not a candidate */
    int lanes_min;               /* i2: batched steps of at least this many tokens as RSR lanes; 0: tiles only */
    char why[448];               /* for --explain and -vv */
} matrix_plan;
void plan_matrix(const ternary_matrix *t, const target *tg, enum strategy forced, int forced_k, matrix_plan *out);
bool plan_allowed(const target *tg, enum strategy s);   /* by the spec's 'strategies' */
bool plan_candidate(const target *tg, enum strategy s); /* allowed, and the target has the form's ISA */
/* i2's batched kernel as RSR with tokens in lanes (kernel.c) against the tiles, by the cost
 * model fitted to the target's instruction set: the predicted time of a full step's tiles over the
 * lanes'. plan_lanes_from: the tokens
 * from which a pass of lanes (which costs the same for 1 or 64 tokens) beats the tiles (which
 * cost in proportion), given that ratio predicted or measured. plan_prefill decides it for an i2
 * matrix (the target's --prefill, --tune's measurement, or the model) and says why in mp->why. */
double plan_lanes_gain(const ternary_matrix *t, const target *tg);
int plan_lanes_from(double gain);
bool kernel_lanes_possible(const ternary_matrix *t, const target *tg); /* kernel.c: the form exists here */
bool plan_may_use_lanes(const target *tg, enum prefill_form prefill);
void plan_prefill(const ternary_matrix *t, const target *tg, enum prefill_form prefill, int measured_lanes_min,
                  matrix_plan *mp);
/* The cost model's single-thread ns for one call of s at block size k (CPU targets); prefill:
 * per token of a step of RSR_BATCH_MAX tokens (the batched kernel where s has one). */
double plan_predict(const ternary_matrix *t, const target *tg, enum strategy s, int k, bool prefill);

/* ---- tune.c: --tune, the strategy of each matrix chosen by measuring its candidates here ---- */
typedef struct tune_state tune_state;
typedef struct tune_class tune_class;
/* Refuses (fatal) a target this machine cannot run: a CUDA part, another architecture, or
 * CPU features this machine lacks (named). */
void tune_check_target(const target *t, const char *name);
char *tune_default_cache(void); /* $XDG_CACHE_HOME/rsrc/tune.txt or ~/.cache/rsrc/tune.txt */
/* cache_path NULL: the default; the temporary kernels go to workdir. */
tune_state *tune_begin(const target *t, compile_options opts, const char *cache_path, bool use_llvm,
                       const char *workdir, enum strategy forced, int forced_k);
/* Chooses tm's strategy and k by measurement (or the cache) and says why in mp->why; mp holds the
 * cost model's plan on entry. Returns the class's measurements, NULL when nothing was measured. */
const tune_class *tune_matrix(tune_state *ts, const ternary_matrix *tm, matrix_plan *mp);
void tune_explain(FILE *out, const tune_class *tc, const ternary_matrix *tm, const target *t);
/* Where --tune chose i2: the batched kernel's lanes from this many tokens (measured faster), -1
 * (the tiles measured faster) or 0 (not measured: no lanes candidate). */
int tune_lanes_min(const tune_class *tc);
/* --tune's decision for one matrix, before compile_matrix: the planner's plan in *mp, then the
 * measurement; fills rq's decided, measured and measured_lanes_min. tune.c is a driver above
 * matrix.c (it compiles candidates through it); matrix.c calls nothing of tune.c. */
struct matrix_request;
void tune_decide(tune_state *ts, const ternary_matrix *tm, const target *t, struct matrix_request *rq, matrix_plan *mp);
void tune_end(tune_state *ts); /* writes the cache, if something was measured */

/* ---- kernel.c: a matrix's kernel, described once, printed by each printer ---- */
struct kir_module; /* its kernel IR (kir.h), which the printers print */
enum kernel_form {
    KF_UNROLLED, /* RSR: the index exists only as instructions (immediate offsets) */
    KF_LOOP,     /* RSR: a loop specialised to the matrix over constant index data */
    KF_I2,       /* packed 2-bit weight codes, dot products of R rows against x per group */
    KF_WARP,     /* RSR on a GPU: a warp per block, segmented sums across its lanes */
    KF_LUT,      /* triplet codes (4-bit pattern + sign), sums looked up in tables built from x */
};
/* How an i2 kernel multiplies: the widest integer dot product the target has. */
/* i2's dot products, in order of preference on a CPU (a GPU: dp4a). AVX2 and AVX-VNNI work on
 * 256-bit vectors, the AVX-512 ones on 512; the AArch64 ones on NEON's 128 (NEON: smull + sadalp,
 * 16 products in four instructions; SDOT: Armv8.2-A's dot product, 16 in one; I8MM: Armv8.6-A's
 * matrix multiply, 32 in one). */
enum dot_isa {
    DOT_SCALAR,
    DOT_AVX2,
    DOT_AVXVNNI,
    DOT_AVX512BW,
    DOT_AVX512VNNI,
    DOT_DP4A,
    DOT_NEON,
    DOT_SDOT,
    DOT_I8MM /* SDOT, and the prompt's tiles by smmla: 2 rows × 2 tokens × 8 columns per instruction */
};
#define DOT_ISA_COUNT (DOT_I8MM + 1)
static inline bool dot_isa_arm(int isa) { return isa == DOT_NEON || isa == DOT_SDOT || isa == DOT_I8MM; }
static inline bool dot_isa_x86(int isa) { return isa >= DOT_AVX2 && isa <= DOT_AVX512VNNI; }
int dot_isa_vector_bytes(enum dot_isa isa);
extern const char *const dot_isa_names[];
enum dot_isa target_dot_isa(const target *t); /* target.c, as are the other target_* queries */
bool dot_isa_field_scaled(enum dot_isa isa);  /* i2 fields masked in place, one accumulator each */
bool dot_isa_pair_sums(enum dot_isa isa);     /* i2 rows summed as 16-bit pair sums between widenings */
int dot_pair_sums_groups(void);               /* groups summed in 16 bits before a widening */
#define RSR_BATCH_TILE_MAX 8
#define RSR_LANES 64           /* batched RSR: tokens per pass, one byte each in 64 bytes */
#define RSR_LANE_CODES 81      /* batched RSR: the 3^4 patterns of a block of 4 ternary rows */
#define RSR_LANE_ZERO 40       /* the all-zero pattern: its columns are dropped */
#define RSR_LANE_SEG_STRIDE 96 /* u16 entries of a block's header: seg_end[81], pad, i32 row_sum[4] */
#define RSR_LANE_ROW_SUM 88    /* u16 index of row_sum in the header (byte 176) */
#define RSR_LANE_RUN 256       /* batched RSR: columns summed in 16-bit lanes before they are widened */
#define RSR_LANES_EVERY_STEP 2 /* a lanes_min that takes every batched step (they have 2 tokens or more) */
typedef struct kernel {
    char *symbol;         /* C / LLVM / CUDA function name */
    char *batch_symbol;   /* the batched (prefill) kernel, rsr_kernel_batch_fn; NULL: none */
    const char *strategy; /* shown in stats and the manifest */
    enum kernel_form form;
    int32_t rows, cols;
    int32_t block_rows, num_blocks; /* the unit of work a thread takes */
    const rsr_plan *plan;           /* RSR forms */
    const ternary_matrix *tm;       /* i2: the weights it packs */
    enum dot_isa isa;               /* i2 */
    int32_t vec_bytes;              /* i2: bytes of one vector register (16, 32, 64) */
    int32_t groups;                 /* i2: column groups of 4 * vec_bytes columns; lut: of LUT_GROUP_COLS */
    int32_t unit_cols;              /* i2: sums per unit of this many columns (scales per group), 0: per row */
    int32_t batch_tile;             /* i2 batched: tokens sharing each decoded field (≤ RSR_BATCH_TILE_MAX) */
    int lanes_min; /* i2 batched: steps of at least this many tokens as RSR lanes (kernel.c), the rest as tiles of
                      tokens; 0: tiles only */
    uint64_t off_lane_seg, off_lane_perm; /* lanes: seg_end and perm, relative to data_offset */
    int32_t lane_cols;                    /* lanes: perm entries per block (cols rounded up to RSR_LANES) */
    uint64_t data_offset;                 /* blob offset of the constant data (loop and i2 forms) */
    uint64_t off_block_seg, off_block_col, off_seg, off_perm; /* loop form, relative to data_offset */
    uint64_t off_entry; /* warp form: u32 col | code << 16 per kept column (block_col at 0) */
    int32_t cta_warps;  /* GPU forms: warps per thread block */
    int32_t gpu_split;  /* GPU forms: warps sharing one block of rows (1 for LLVM NVPTX entries) */
    bool gpu_entry;     /* GPU forms: an entry of its own (LLVM NVPTX), else a group entry's device function */
    const struct kernel_printer *printer; /* the printer it is lowered for, whose lower takes its own forms */
    bool lut_vector;                      /* lut: vpermt2b + vpdpbusd (target_lut_vector), else scalar */
    int32_t lut_window; /* lut of a matrix expanded per unit: the groups each block keeps (its window), 0: all */
} kernel;
bool target_has_feature(const target *t, const char *feature);
uint64_t kernel_unrolled_code_estimate(const rsr_plan *p);
/* The printers of kernels are values in a table (printer.h). */
typedef struct kernel_printer kernel_printer;
/* The dot ISA of i2 summed per unit of columns for this matrix on t through pr, or -1 (kernel.c). */
int kernel_units_isa(const target *t, const kernel_printer *pr, const ternary_matrix *tm);
/* Lowers a matrix with its plan, for the printer that will print it: p is the RSR analysis (NULL
 * for i2 and lut). */
void kernel_lower(kernel *kn, const ternary_matrix *tm, const rsr_plan *p, const target *t, const kernel_printer *pr,
                  enum strategy s, int index, int lanes_min);
uint64_t kernel_data_size(const kernel *kn);
/* The lanes form's description, which every printer prints (kernel.c, "RSR lanes"): */
uint64_t lanes_scratch_bytes(const kernel *kn); /* the transposed x: 64 bytes per column, cols rounded up to 64 */
#define RSR_LANES_X_BUDGET (512u << 10)         /* the transposed x of one group of passes (half of L2) */
int lanes_group(const kernel *kn);              /* passes of 64 tokens that share each block's index */
bool lanes_pairs(const kernel *kn);             /* a block against two passes at once */
bool lanes_staged(const target *t);             /* the block's sums through L1 (narrow registers) */
int lanes_token_of_row(int i);                  /* the token that row i of a transpose tile holds */
int lanes_digit(int code, int r);               /* row r's weight (-1, 0, 1) in pattern code */
void lanes_zip_mask(int half, int idx[64]);     /* a transpose round's byte shuffle of rows k, k + 32: half 0
                                                   gives row 2k, half 1 row 2k + 1 */
void lanes_pair_mask(int half, int idx[16]);    /* rows r, r + 1 of tokens 8·half.. interleaved */
void lanes_quad_mask(int k, int idx[16]);       /* two pairs' tokens 4k..4k+3, four rows each */
void kernel_write_data(kernel *kn, struct blob_writer *b);
void kernel_free(kernel *kn);
/* lut layout (kernel.c): per block of LUT_ROWS rows and group of 4 column triplets, 64 bytes of
 * pattern nibbles and two u64 masks of the patterns' fifth bits. A matrix expanded per unit of
 * columns keeps per block only the lut_window groups from the one its columns start in (a block's
 * rows are zero outside their units): a 64-byte header whose first u32 is that first group, then
 * the window's groups. */
#define LUT_ROWS 32
#define LUT_GROUP_COLS 12
#define LUT_GROUP_BYTES 80
#define LUT_PATTERNS 27 /* a triplet's table: entries 0..26, zero up to LUT_ENTRIES */
#define LUT_ENTRIES 32
#define LUT_NB 4 /* blocks sharing each load of a group's tables (they outgrow L1) */
/* Pattern n of a triplet (w0, w1, w2) is 9(w0 + 1) + 3(w1 + 1) + (w2 + 1); lut_digit(n, j) = w_j. */
static inline int lut_digit(int n, int j) { return (j == 0 ? n / 9 : j == 1 ? n / 3 % 3 : n % 3) - 1; }
/* How the vector form builds a group's tables (kernel.c), for every printer: half h (triplets
 * 2h, 2h + 1) holds the 14 sums of patterns 13..26 in 16-lane halves; lane l adds or subtracts
 * x's column lut_spread(h, j, l) of the group where lut_digit_masks(j) set bit l; the planes are
 * byte lut_plane_source(hi, o) of (those sums, their negations); index byte i carries 32·(i % 4). */
int lut_spread(int h, int j, int l);
void lut_digit_masks(int j, uint32_t *pos, uint32_t *neg);
int lut_plane_source(int hi, int o);
static inline int lut_quarter(int i) { return 32 * (i % 4); }
/* i2 layout: block b, group g, row r, byte j holds the codes (w + 1) of columns g*4V + i*V + j at bits 2i. */
static inline int32_t i2_row_bytes(const kernel *kn) { return kn->groups * kn->vec_bytes; }
/* lut: the bytes of one block, and the groups it sums */
#define LUT_WINDOW_HEADER 64
static inline int32_t lut_block_groups(const kernel *kn) { return kn->lut_window ? kn->lut_window : kn->groups; }
static inline int32_t lut_block_bytes(const kernel *kn) {
    return (kn->lut_window ? LUT_WINDOW_HEADER : 0) + lut_block_groups(kn) * LUT_GROUP_BYTES;
}
/* lut: the AVX-512 form (VBMI's two-table byte permute, VNNI's dot products), else scalar code
 * over the same layout */
bool target_lut_vector(const target *t);

/* ---- matrix.c: the life of one matrix: decide (plan or measure, analyse) → lower → print ---- */
/* Whether printer p has the kernel strategy s lowers to on t (its forms). */
bool printer_prints(const kernel_printer *p, enum strategy s, const target *t);
typedef struct kernel_cache kernel_cache;
typedef struct kernel_sink { /* where a matrix's kernel is printed */
    const kernel_printer *printer;
    kernel_cache *cache;       /* i2 kernels printed once per distinct code (matrix.c), or NULL */
    FILE *c;                   /* the C printer: the kernels; the LLVM printer: their declarations */
    struct c_parts *parts;     /* the C printer: where unrolled kernels go, or NULL (all in c) */
    struct llvm_emitter *llvm; /* the LLVM printer's module */
    void *state;               /* a printer with a half of its own: what its begin returned */
} kernel_sink;
typedef struct matrix_request {
    enum strategy strategy;            /* forced (--strategy, or a --tune candidate); STRAT_AUTO: the planner's */
    int k;                             /* forced block size (--rsr-k, a candidate's); 0: the planner's */
    enum strategy user_strategy;       /* --strategy as given: an unrolled form it asked for is kept over budget */
    int index;                         /* names the kernel: rsr_kernel_INDEX */
    enum prefill_form prefill;         /* --prefill */
    int lanes_min;                     /* i2: forces the batched kernel's RSR lanes from this many tokens (-1:
                                          tiles only); 0: plan_prefill decides */
    const matrix_plan *decided;        /* the strategy and k decided already (tune_decide); NULL: plan_matrix's */
    const struct tune_class *measured; /* --tune's measurements behind `decided` (for --explain), or NULL */
    int measured_lanes_min;            /* i2: --tune's measured lanes threshold for plan_prefill (tune_lanes_min) */
    bool verify, print_plan;           /* --verify, --print=plan */
    bool print_kernel;                 /* --print=kernel: the kernel IR of each matrix */
} matrix_request;
typedef struct compiled_matrix {
    matrix_plan mp;             /* the final strategy, k and why */
    const tune_class *measured; /* --tune's measurements, or NULL */
    rsr_plan plan;              /* the RSR analysis (RSR forms) */
    kernel kn;                  /* the lowered kernel, its data written and its code printed */
    uint64_t index_bytes;       /* the index (or constant data) the kernel reads */
    bool lowered;
} compiled_matrix;
void compile_matrix(const ternary_matrix *tm, const target *t, const matrix_request *rq, struct blob_writer *blob,
                    const kernel_sink *out, compiled_matrix *cm);
/* The two halves of compile_matrix, for a caller that looks at the decision first (--tune drops
 * a candidate the planner would not keep). */
void matrix_decide(const ternary_matrix *tm, const target *t, const matrix_request *rq, const kernel_printer *pr,
                   compiled_matrix *cm);
void matrix_emit(const ternary_matrix *tm, const target *t, int index, struct blob_writer *blob, const kernel_sink *out,
                 compiled_matrix *cm);
void compiled_matrix_free(compiled_matrix *cm);
/* The i2 kernels already printed, by their code: a matrix whose kernel is the same code (the same
 * form, shape and instructions; its weights are data, not code) calls the first one's. */
kernel_cache *kernel_cache_open(void);
void kernel_cache_close(kernel_cache *kc); /* says how many kernels were shared (-v) */

/* ---- blob.c: the artifact's constant data, streamed to a file ---- */
struct blob_writer {
    FILE *f;
    char *path;
    uint64_t size;
    uint64_t checksum; /* rsr_checksum_add of the whole words written so far */
    uint8_t tail[8];   /* the bytes of the word not yet whole: size % 8 of them */
};
typedef struct blob_writer blob_writer;
/* The checksum of everything written (the last word zero-padded), as rsr_artifact.blob_checksum. */
uint64_t blob_checksum(const blob_writer *b);
void blob_open(blob_writer *b, const char *path);
uint64_t blob_align(blob_writer *b, unsigned alignment);
uint64_t blob_write(blob_writer *b, const void *data, size_t n);
void blob_check_finite(const st_tensor *t);                     /* fatal, naming the first NaN or inf element */
uint64_t blob_write_f32_of(blob_writer *b, const st_tensor *t); /* any float dtype → f32 */
void blob_write_tensor(blob_writer *b, const st_tensor *t);     /* as stored, streamed */
void blob_close(blob_writer *b);
/* An embedding or LM head as stored (f32, f16 or bf16), refused unless finite; its dtype in *dtype. */
uint64_t blob_copy_tensor(blob_writer *b, const st_tensor *t, int32_t *dtype);
/* Layer `layer`'s norm model.layers.L.WHAT.weight as f32, its size checked (layer < 0: WHAT is
 * the tensor's whole name). */
uint64_t blob_norm(blob_writer *b, const model *m, int layer, const char *what, int64_t size);
/* The int8 copy of the LM head for certified greedy decoding (layout: rsr_artifact.h). */
void blob_write_head_q8(blob_writer *b, const st_tensor *head, struct artifact_desc *d);

/* ---- tokenizer_blob.c: tokenizer.json (or else tokenizer.model) next to the weights, checked and
 * copied into the blob; *what says which, for the manifest. RSR_NO_TENSOR when there is none. ---- */
/* The tokenizer, checked with the runtime's; *tok keeps it (free it) for blob_chat_template, NULL
 * when there is none. */
uint64_t blob_tokenizer(blob_writer *b, const model *m, uint64_t *size, char **what, rsr_tokenizer **tok);
/* The model's own chat template (a GGUF's tokenizer.chat_template, or chat_template.jinja or
 * tokenizer_config.json's chat_template beside the weights), checked with the runtime's Jinja
 * subset on tok (NULL: no tokenizer, so no template); RSR_NO_TENSOR, with a warning naming what it
 * cannot read, when there is none it can use. */
uint64_t blob_chat_template(blob_writer *b, const model *m, rsr_tokenizer *tok, uint64_t *size);

/* ---- emit_c.c: the C printer ---- */
void emit_c_prologue(FILE *out, const char *source, const target *t, enum prefill_form prefill);
void emit_c_dot_helpers(FILE *out, enum dot_isa isa);  /* what i2 kernels call, once per file */
void emit_c_lut_helpers(FILE *out, bool vector);       /* what lut kernels call, once per file */
void emit_c_lanes_helpers(FILE *out, const target *t); /* what batched RSR lanes kernels call */
void emit_c_kernel(FILE *out, const struct kir_module *m);
/* the kernel is defined elsewhere: an LLVM object, or a C file of its own (built_by says which) */
void emit_c_kernel_decl(FILE *out, const struct kir_module *m, const char *built_by);
/* Into a shared object by the C printer, each unrolled kernel (most of the C's size) is written to
 * a file of its own, and the files are compiled in parallel (link_compile_parts) before the link. */
typedef struct c_parts {
    const char *dir, *source; /* where the files go; the model, for their prologue */
    const target *t;
    enum prefill_form prefill;
    char **paths; /* the files written */
    int n;
} c_parts;
void emit_c_kernel_part(c_parts *parts, const struct kir_module *m);
/* Compiles c_parts[i] into objs[i] (n files), as many at once as this process has processors. */
void link_compile_parts(char *const *c_parts, char **objs, int n, const target *t, int opt_level);
void emit_c_string(FILE *out, const char *s); /* a C string literal, escaped */
void emit_c_offset(FILE *out, uint64_t off);  /* a blob offset, or RSR_NO_TENSOR */
/* What the artifact descriptor records of each compiled matrix (kernels are freed as we go). */
typedef struct matrix_record {
    char *name, *symbol, *batch_symbol; /* batch_symbol may be NULL */
    const char *strategy;
    int32_t rows, cols, block_rows, blocks;
    float beta;
    uint64_t data;
    uint64_t index_bytes;
    int32_t unit_cols, planes, scale_cols; /* rsr_artifact_matrix's */
    uint64_t group_scale;
} matrix_record;
void emit_c_matrix_entry(FILE *out, const matrix_record *r);
typedef struct artifact_desc {
    const model *m;
    const target *t;
    int32_t num_matrices;
    const matrix_record *mats;
    const rsr_artifact_layer *layers;
    uint64_t embed, lm_head, final_norm, blob_size;
    uint64_t blob_checksum; /* blob_checksum() of the whole blob */
    int32_t embed_dtype, lm_head_dtype;
    uint64_t tokenizer_json, tokenizer_json_size;
    char *tokenizer;                            /* "tokenizer.model (BPE with byte fallback, 32000 tokens)", or NULL */
    uint64_t chat_template, chat_template_size; /* the model's own Jinja chat template, or RSR_NO_TENSOR */
    uint64_t head_q8, head_q8_scale, head_q8_err; /* the int8 greedy head, or RSR_NO_TENSOR */
    int32_t head_q8_stride;
    const char *gpu;      /* the rsr_artifact_gpu descriptor's name (gpu.c), or NULL */
    const char *manifest; /* manifest.c */
    const char *name;     /* --name: NAME_model_open and NAME_artifact are defined */
    bool default_model;   /* rsr_model_open opens it (model.so, or an object without --name) */
} artifact_desc;
void emit_c_artifact(FILE *out, const artifact_desc *d);

/* ---- manifest.c: what was compiled and how, kept in the artifact (rsr_model_manifest) ---- */
/* flags: the options that shape the code, as given; backend: "c" or "llvm". */
char *manifest_text(const artifact_desc *d, const char *source, const char *backend, const char *flags);

/* ---- emit_header.c: NAME.h, the sizes as macros and the entry points of a compiled model ---- */
/* name NULL: the default model (rsr_model_open), macros prefixed MODEL_. */
void emit_header(FILE *out, const model *m, const target *t, const char *name, const char *source);
bool valid_model_name(const char *name, char *why, size_t whylen);

/* ---- emit_llvm.c: the LLVM printer (LLVM C API), optimised and emitted in-process ---- */
typedef struct llvm_emitter llvm_emitter;
enum llvm_output { LLVM_OUT_IR, LLVM_OUT_ASM, LLVM_OUT_OBJ };
llvm_emitter *emit_llvm_begin(const target *t, const char *module_name, int opt_level);
void emit_llvm_kernel(llvm_emitter *e, const struct kir_module *m);
void emit_llvm_finish(llvm_emitter *e, enum llvm_output what, const char *path); /* runs default<O3> */
void emit_llvm_end(llvm_emitter *e);
/* A model with many matrices is emitted in parts, each an object of its own, so that LLVM never
 * holds them all: flush optimises and emits the kernels so far into path (LLVM_OUT_OBJ) and
 * starts an empty module; pending counts the instructions not yet emitted. */
void emit_llvm_flush(llvm_emitter *e, const char *path);
uint64_t emit_llvm_pending(const llvm_emitter *e);
/* NVPTX: the newest GPU and PTX version LLVM 14 knows; newer specs get sm_86 PTX (JIT-compiled by
 * the driver). Raise both when the minimum LLVM is raised. */
#define LLVM_NVPTX_MAX_SM 86
#define LLVM_NVPTX_PTX_FEATURE "+ptx75"
int llvm_nvptx_sm(const target *t);

/* ---- resources.c: the specs, runtime headers and runtime archive rsrc ships with: from the
 * environment, beside an installed rsrc, or in the build tree ---- */
enum resource { RES_SPECS, RES_RUNTIME_INCLUDE, RES_RUNTIME_LIB };
const char *resource_path(enum resource r);
const char *resource_env(enum resource r); /* the variable that overrides it */
char *installed_path(char *relative);      /* PREFIX/relative if it exists (relative freed), else NULL */

/* ---- link.c: C + blob + runtime → shared object ---- */
/* objs: the kernels as objects (LLVM backend: one per part, NULL-terminated), or NULL when they
 * are in the C file. */
void link_shared_object(const char *c_path, const char *const *objs, const char *blob_path, const target *t,
                        int opt_level, const char *out_path, const char *workdir);
/* The C compiler and runtime archive that link an artifact for t (a cross compiler and the runtime
 * scripts/cross.sh built, for another architecture); link_check refuses, naming what is missing. */
const char *link_cc(const target *t);
const char *link_runtime(const target *t);
void link_use_runtime(const char *path); /* --runtime: this archive whatever the target */
void link_check(const target *t);
const char *env_or(const char *name, const char *fallback);
int run_command(char **argv); /* waits; its diagnostics go straight to stderr */
/* .incbin of the blob (its first head bytes, 0: all), as hidden rsr_blob in .lrodata.rsr_blob;
 * with digest_note, the note that stamp_digest fills (a shared object's, not an object's) */
void write_blob_asm(const char *asm_path, const char *blob_path, uint64_t head, bool digest_note);
/* splice.c: the rest of the blob (after its first head bytes, which the link placed) copied into
 * the linked shared object `linked`, written to out_path; NULL, or why its layout does not allow
 * it (out_path then untouched). */
const char *splice_blob(const char *linked, const char *blob_path, uint64_t head, const char *out_path);
/* splice.c: the linked shared object at path checked as the loader's checks will (rsr_elf.h) and
 * the digest of the whole file written into its note */
void stamp_digest(const char *path);

/* ---- embed.c: C + blob + runtime → one relocatable object to link into an application ---- */
/* Exports only the model's entry points and the runtime's rsr_* API (weak: two models linked
 * together share one runtime); kernels, blob and runtime internals are local to the object. */
void link_relocatable_object(const char *c_path, const char *const *objs, const char *blob_path, const target *t,
                             const char *out_path, const char *workdir);

/* ---- progress.c: the status line of a long compile, and per-stage timings for -v ---- */
enum stage { STAGE_LOAD, STAGE_ANALYSE, STAGE_TUNE, STAGE_EMIT, STAGE_LLVM, STAGE_LINK, NUM_STAGES };
/* The time since the last call goes to the stage entered then; from now on it goes to s. */
void stage_enter(enum stage s);
void stage_hold(bool on);        /* while on, stage_enter does nothing: nested work counts as the current stage */
void stage_report(double total); /* -v */
/* hub.c: hf:ORG/NAME[@REVISION] downloaded into the Hugging Face cache; what to compile there
 * (the snapshot's directory, or its GGUF file: only, or the repository's one) */
char *hub_fetch(const char *spec, const char *only);

enum progress_mode { PROGRESS_OFF, PROGRESS_TERMINAL, PROGRESS_LINES };
void progress_open(enum progress_mode mode); /* the clock starts */
void progress_phase(const char *what);       /* before the matrices: a named line, no ETA */
void progress_begin(enum progress_mode mode, int layers, uint64_t total_work);
void progress_update(int layer, uint64_t done, const char *what);
/* The predicted seconds of the stages after the per-matrix work, counted into the ETA. */
void progress_expect_after(double seconds);
/* A stage after the per-matrix work: its line ticks while it runs; expect_s is its part of the
 * prediction. */
void progress_stage(const char *what, double expect_s);
void progress_end(void);

#endif
