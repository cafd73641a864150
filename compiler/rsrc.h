/*
 * rsrc.h — the one internal header of the compiler, sectioned by the file that owns each part.
 *
 * Pipeline (see compile() in main.c):
 *
 *   checkpoint ──load──▶ model ──analyse──▶ rsr_plan ──lower──▶ kernel ──emit──▶ C ──link──▶ model.so
 *   safetensors.c        model.c            rsr.c               kernel.c        emit_c.c    link.c
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
#include <stdio.h>
#include <stdnoreturn.h>

#include "rsr_artifact.h"

struct blob_writer;

#define RSRC_VERSION "0.1.0"

/* ---- diag.c: errors that name the file, tensor and value; temporary files removed on exit ---- */
noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void note(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3))); /* -v */
extern int verbosity;
void register_temp(const char *path);   /* removed by fatal() and at exit unless released */
/* The cleanup stack: what a loader owns while it may fail. fatal() runs the entries, newest
 * first, before it exits; on_fatal_pop(token) drops the entry returned by push (and any newer)
 * without running it. With fatal_jump set, fatal() longjmps there instead of exiting (fuzzers),
 * and fatal_quiet silences its message. */
int on_fatal_push(void (*fn)(void *), void *arg);
void on_fatal_update(int token, void *arg); /* the argument moved (realloc) */
void on_fatal_pop(int token);
extern jmp_buf *fatal_jump;
extern bool fatal_quiet;
void release_temp(const char *path);
uint64_t parse_size(const char *what, const char *s);   /* 512M, 4G, ... */
void limit_memory(uint64_t bytes);                      /* --max-memory */
void unlimit_memory(void);                              /* in a child, before exec */
const char *format_size(uint64_t bytes, char buf[32]);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
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
    const char *file;       /* the shard it lives in, for messages */
} st_tensor;
typedef struct st_archive {
    char *dir;              /* where config.json is */
    char *path;             /* what the user named */
    int nfiles;
    struct st_mapped { char *path; uint8_t *map; size_t size; } *files;
    int ntensors;
    st_tensor *tensors;     /* sorted by name */
} st_archive;
st_archive *st_open(const char *path);
const st_tensor *st_find(const st_archive *a, const char *name);
void st_close(st_archive *a);
const char *st_dtype_name(enum st_dtype t);
float st_get_f32(const st_tensor *t, int64_t i); /* element i widened to float */
void st_release(const st_tensor *t);             /* its pages leave the resident set */
void st_release_bytes(const uint8_t *data, uint64_t n);

/* ---- model.c: config.json + format detection → one internal ternary matrix type ---- */
enum weight_format {
    WF_PACKED,              /* uint8 [out/4, in] + weight_scale */
    WF_LATENT,              /* bf16/f16 [out, in], absmean ternarised here */
};
typedef struct model {
    st_archive *ar;
    const char *architecture;   /* as written in config.json */
    const char *format_name;    /* "bitnet-packed", ... for messages and stats */
    enum weight_format wformat;
    bool scale_inverted;        /* weight_scale stores 1/beta */
    bool bitlinear_norm;        /* Falcon-E */
    bool sub_norms;
    const char *attn_sub_norm, *ffn_sub_norm; /* tensor name suffixes, when sub_norms */
    bool tied;
    int activation;             /* enum rsr_activation */
    int32_t hidden, intermediate, num_layers, num_heads, num_kv_heads, head_dim;
    int32_t vocab, max_positions, bos, eos;
    float rms_eps, bitlinear_eps;
    double rope_theta;
} model;

typedef struct ternary_matrix {
    char *name;
    int32_t rows, cols;
    int8_t *w;                  /* [rows][cols], values -1, 0, 1 */
    float beta;
    bool binary;                /* no zeros: every weight is ±1 */
} ternary_matrix;

/* The seven linear layers of a block, in the order they are compiled. */
enum { PROJ_Q, PROJ_K, PROJ_V, PROJ_O, PROJ_GATE, PROJ_UP, PROJ_DOWN, NUM_PROJ };
extern const char *const proj_names[NUM_PROJ];

model *model_load(const char *path);
void model_free(model *m);
char *model_tensor_name(const model *m, int layer, int proj);
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
    uint32_t *block_seg;    /* [num_blocks + 1] first segment of each block */
    uint32_t *block_col;    /* [num_blocks + 1] first perm entry of each block */
    uint16_t *seg_code;     /* [segments] */
    uint16_t *seg_len;      /* [segments] columns in the segment */
    uint16_t *perm;         /* [columns kept] column indices, segment after segment */
    uint64_t num_segments, num_cols_kept;
} rsr_plan;
#define RSR_MAX_K 8
void rsr_analyse(const ternary_matrix *t, int k, rsr_plan *out);
int rsr_choose_k(const ternary_matrix *t, int max_k, char *why, size_t whylen);
uint64_t rsr_index_bytes(const rsr_plan *p);
void rsr_plan_free(rsr_plan *p);
void rsr_plan_print(const rsr_plan *p, const char *name, FILE *out);
void rsr_reference_matvec(const rsr_plan *p, const int8_t *x, int32_t *y); /* interprets the plan */

/* ---- target.c: a target is data (a YAML spec in specs/, or the detected host) ---- */
enum target_kind { TK_CPU, TK_CUDA };
typedef struct target {
    char *name, *description;
    char *path;                 /* the spec it came from, for messages */
    enum target_kind kind;
    char *triple, *cpu;
    char **features, **disabled;
    int nfeatures, ndisabled;
    char **strategies;          /* what the planner may choose from (empty: all) */
    int nstrategies;
    int vector_bits, threads;   /* threads 0: auto */
    uint64_t l1d, l2, l3, line;
    uint32_t unroll_budget;     /* icache_budget: bytes of straight-line code one matrix may spend */
    char *cflags;               /* for the C backend */
    char *arch, *ptx_isa, *mem_bandwidth; /* CUDA targets */
    uint64_t smem_per_block;
    int sms;
} target;
target *target_load(const char *name, const char *cpu, const char *features);
void target_free(target *t);
void target_list(FILE *out);
void target_print(const target *t, FILE *out);

/* ---- kernel.c: a matrix's kernel, described once, printed by each backend ---- */
enum kernel_form {
    KF_UNROLLED,    /* the index exists only as instructions (immediate offsets) */
    KF_LOOP,        /* a loop specialised to the matrix over constant index data */
};
typedef struct kernel {
    char *symbol;               /* C / LLVM / CUDA function name */
    const char *strategy;       /* shown in stats and the manifest */
    enum kernel_form form;
    const rsr_plan *plan;
    uint64_t data_offset;       /* blob offset of the index data (loop form) */
    uint64_t off_block_seg, off_block_col, off_seg, off_perm; /* relative to data_offset */
} kernel;
enum kernel_choice { KC_AUTO, KC_UNROLLED, KC_LOOP };
uint64_t kernel_unrolled_code_estimate(const rsr_plan *p);
void kernel_lower(kernel *kn, const rsr_plan *p, const target *t, enum kernel_choice choice, int index);
uint64_t kernel_data_size(const kernel *kn);
void kernel_write_data(kernel *kn, struct blob_writer *b);
void kernel_free(kernel *kn);

/* ---- blob.c: the artifact's constant data, streamed to a file ---- */
struct blob_writer {
    FILE *f;
    char *path;
    uint64_t size;
};
typedef struct blob_writer blob_writer;
void blob_open(blob_writer *b, const char *path);
uint64_t blob_align(blob_writer *b, unsigned alignment);
uint64_t blob_write(blob_writer *b, const void *data, size_t n);
uint64_t blob_write_f32_of(blob_writer *b, const st_tensor *t); /* any float dtype → f32 */
void blob_write_tensor(blob_writer *b, const st_tensor *t);     /* as stored, streamed */
void blob_close(blob_writer *b);

/* ---- emit_c.c: the C printer ---- */
void emit_c_prologue(FILE *out, const char *source, const target *t);
void emit_c_kernel(FILE *out, const kernel *kn);
/* What the artifact descriptor records of each compiled matrix (kernels are freed as we go). */
typedef struct matrix_record {
    char *name, *symbol;
    const char *strategy;
    int32_t rows, cols, k, blocks;
    float beta;
    uint64_t data;
    uint64_t index_bytes;
} matrix_record;
typedef struct artifact_desc {
    const model *m;
    const target *t;
    int32_t num_matrices;
    const matrix_record *mats;
    const rsr_artifact_layer *layers;
    uint64_t embed, lm_head, final_norm, blob_size;
    int32_t embed_dtype, lm_head_dtype;
} artifact_desc;
void emit_c_artifact(FILE *out, const artifact_desc *d);

/* ---- link.c: C + blob + runtime → shared object ---- */
void link_shared_object(const char *c_path, const char *blob_path, const target *t, const char *out_path,
                        const char *workdir);
const char *runtime_dir(void);

#endif
