/*
 * model.h — the inputs: a checkpoint (safetensors, or GGUF) read as one model with its ternary
 * matrices.
 */
#ifndef RSRC_MODEL_H
#define RSRC_MODEL_H

#include "support/diag.h"

/* ---- safetensors.c: memory-mapped checkpoint, single file, shard index or directory ---- */
/* ST_Q1_0 to ST_PTQ1_0: a GGUF file's embedding or head kept in its group-scaled blocks (rsr_blocks.h;
 * nbytes is the blocks'), which the artifact keeps as they are; st_block_dtype gives the enum
 * rsr_dtype of one, -1 of the others */
enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_U8, ST_I8, ST_Q1_0, ST_Q2_0, ST_PQ2_0, ST_PTQ1_0 };
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
int32_t st_block_dtype(enum st_dtype t);
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
typedef struct rsrc_model {
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
    int32_t act_quant; /* rsr_artifact.act_quant (rsr_act_quant): how those blocks are rounded */
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
     * window take no RoPE. shared_ff > 0 (qwen35moe): a shared expert of that many rows on every
     * token, model.layers.N.mlp.shared_expert.{gate,up,down}_proj.weight, its output times
     * sigmoid(model.layers.N.mlp.shared_expert_gate.weight · x). */
    int32_t num_experts, experts_used, shared_ff;
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
    /* qwen35: mtp_layers multi-token-prediction layers after the model's in the file; mtp 1 when the one
     * MTP layer is read (gguf_model.c's configure): it is then layer num_layers - 1, an attention layer
     * whose own tensors are model.layers.L.mtp.{eh_proj,enorm,hnorm,shared_head_norm}.weight, and the
     * model proper is the layers before it (model_layers_proper) */
    int32_t mtp_layers, mtp;
    /* PrismML's Hadamard fold (fold.c): fold_block B > 0 when some matrices' inputs are rotated,
     * x <- H_B (s ⊙ x) with s the signs of the input's width (fold_signs NULL: all +1), before
     * their product; folded: those matrices' archive names (sorted by fold_finish); fold_lm_head: the
     * head's input too; fold_embed: the embedding's rows stored rotated (h = s ⊙ H_B z); fold_v_grouped:
     * ssm_out's input put in grouped V-head order first. fold_names: the GGUF's list, sorted. */
    int32_t fold_block, fold_nwidths, fold_nnames, nfolded;
    int32_t *fold_widths;
    int8_t *fold_signs; /* concatenated in fold_widths' order */
    char **fold_names, **folded;
    bool fold_lm_head, fold_embed, fold_v_grouped;
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
} rsrc_model;

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
    /* Kept as base-3 codes where the target's runtime has a kernel for them (a PTQ1_0 file's
     * matrices, --ptq1-codes=base3: rsr_artifact.h's RSR_UNITS_B3_ROWS16 and RSR_UNITS_B3_ROWS8) */
    bool base3;
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
/* The ternary matrices of one layer: the seven, or with experts q, k, v, o, a shared expert's gate,
 * up and down, then each expert's (4 + 3 · (num_experts + 1 with a shared expert)). */
int model_layer_matrices(const rsrc_model *m);
/* Matrix j of layer l in that order: its tensor name (the caller frees it), shape and which
 * projection it is (PROJ_GATE ... for an expert's). */
char *model_layer_matrix(const rsrc_model *m, int l, int j, int32_t *rows, int32_t *cols, int *proj);
/* Whether layer l is a gated DeltaNet (qwen35): its slots q, k, o are [q|k|v], z and the output
 * projection, and slot v has no matrix (model_layer_matrix returns NULL for it). */
static inline bool model_deltanet(const rsrc_model *m, int l) { return m->layer_kind && m->layer_kind[l] == 1; }
/* The ternary matrices of the whole model (model_layer_matrices per layer, less the absent slots;
 * and the MTP layer's eh_proj, the last one). */
int32_t model_total_matrices(const rsrc_model *m);
/* The model's layers without its MTP layer (rsr_artifact.num_layers). */
static inline int32_t model_layers_proper(const rsrc_model *m) { return m->num_layers - m->mtp; }
/* The MTP layer's own tensor model.layers.L.mtp.WHAT.weight (the caller frees it). */
char *model_mtp_name(const rsrc_model *m, const char *what);

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
    GGML_Q2_0 = 42,
    GGML_PQ2_0 = 142, /* PrismML's (Bonsai 2): Q2_0's codes in blocks of 128, its legacy files as id 42 */
    GGML_PTQ1_0 = 143 /* PrismML's: base-3 ternary in blocks of 128, the scale last */
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
void gguf_print(const gguf_file *g, FILE *out);               /* --print=gguf: metadata and tensor table */
bool gguf_is(const char *path);                               /* a file that starts with the GGUF magic */
void gguf_model_load(struct rsrc_model *m, const char *path); /* fills m and m->ar */
/* A GGUF's ternary matrix NAME (and NAME_scale, NAME_group_scale) converted into the archive's
 * tensors, which until then have no data; NULL when NAME is not one of those, else a handle for
 * gguf_model_release, which frees them again. */
void *gguf_model_prepare(const struct rsrc_model *m, const char *name);
void gguf_model_release(void *converted);
bool gguf_model_base3(const struct rsrc_model *m, const char *name); /* NAME is stored as base-3 (PTQ1_0) */
void gguf_lazy_free(struct gguf_lazy *lazy);

/* fold.c: prism.hadamard.* read and checked into m (nothing without those keys); the signs of an
 * input width (NULL: all +1, or none of that width); whether the GGUF lists a tensor; the folded
 * matrices by archive name (model_fold_add while loading, then fold_finish). */
void fold_read(struct rsrc_model *m, const gguf_file *g);
const int8_t *model_fold_signs(const struct rsrc_model *m, int32_t width);
bool model_fold_lists(const struct rsrc_model *m, const char *gguf_name);
void model_fold_add(struct rsrc_model *m, const char *name);
void fold_finish(struct rsrc_model *m);
bool model_folded(const struct rsrc_model *m, const char *name);
void fold_free(struct rsrc_model *m);

rsrc_model *model_load(const char *path);
void model_free(rsrc_model *m);
char *model_tensor_name(const rsrc_model *m, int layer, int proj);
void model_load_matrix(const rsrc_model *m, const char *name, int32_t rows, int32_t cols, ternary_matrix *out);
void ternary_matrix_free(ternary_matrix *t);
const st_tensor *model_require(const rsrc_model *m, const char *name, int ndim, int64_t d0, int64_t d1);
const st_tensor *model_shared_gate(const rsrc_model *m, const char *name);
void model_print(const rsrc_model *m, FILE *out);
/* Refuses, before any work, a compile whose largest matrix would not fit in max_bytes. */
void model_check_memory(const rsrc_model *m, int rsr_k, uint64_t max_bytes);

#endif
