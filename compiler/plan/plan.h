/*
 * plan.h — the decisions for each matrix: the RSR analysis, the target, the cost model's plan
 * and --tune's measurement.
 */
#ifndef RSRC_PLAN_H
#define RSRC_PLAN_H

#include "frontend/model.h"

/* ---- rsr.c: Redundant Segment Reduction analysis ---- */
/* Ternary block code: (pos_bits << k) | neg_bits, bit r = row r of the block.
 * Binary block code: bit r set when W = +1 (all columns are kept). */
typedef struct rsrc_plan {
    int32_t rows, cols, k, num_blocks;
    bool binary;
    uint32_t *block_seg; /* [num_blocks + 1] first segment of each block */
    uint32_t *block_col; /* [num_blocks + 1] first perm entry of each block */
    uint16_t *seg_code;  /* [segments] */
    uint16_t *seg_len;   /* [segments] columns in the segment */
    uint16_t *perm;      /* [columns kept] column indices, segment after segment */
    uint64_t num_segments, num_cols_kept;
} rsrc_plan;
#define RSR_MAX_K 8
/* The digit of row r (0..k-1) in a segment's pattern code: ternary codes are pos_bits << k |
 * neg_bits (+1, -1 or 0); binary codes have bit r set for +1, clear for -1. Every printer decodes
 * codes this way (the loop forms print the same expression into the kernels they write). */
static inline int rsrc_code_digit(const rsrc_plan *p, uint32_t code, int r) {
    if (p->binary) return (code >> r) & 1 ? 1 : -1;
    return (int)((code >> (p->k + r)) & 1) - (int)((code >> r) & 1);
}
void rsrc_analyse(const ternary_matrix *t, int k, rsrc_plan *out);
/* Averages per block over a sample of up to 32 blocks of k rows. */
typedef struct rsrc_sample_stats {
    int32_t blocks;                /* blocks of the whole matrix */
    double kept, segments, digits; /* per block: columns kept, non-empty segments, nonzero digits */
} rsrc_sample_stats;
void rsrc_sample_blocks(const ternary_matrix *t, int k, rsrc_sample_stats *out);
/* The k of least predicted cost (units: see rsr.c), and that cost per output row in *cost_per_row. */
int rsrc_choose_k(const ternary_matrix *t, int max_k, double *cost_per_row, char *why, size_t whylen);
uint64_t rsrc_index_bytes(const rsrc_plan *p);
void rsrc_plan_free(rsrc_plan *p);
void rsrc_plan_print(const rsrc_plan *p, const char *name, FILE *out);
void rsrc_reference_matvec(const rsrc_plan *p, const int8_t *x, int32_t *y); /* interprets the plan */

/* ---- target.c: a target is data (a YAML spec in specs/, or the detected host) ---- */
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
extern const char *const dot_isa_names[];
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
typedef struct rsrc_target {
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
    enum dot_isa isa;       /* i2's dot products: its features' widest (target_isa_of), set once by target_load */
    /* the target's backend: the printer of its kernels (printer.h), as its spec's backend: says */
    const struct kernel_printer *backend;
    char *cflags;                         /* for the C printer's compiler */
    char *arch, *ptx_isa, *mem_bandwidth; /* CUDA targets */
    uint64_t smem_per_block;
    int sms;
    int sm;                  /* CUDA: the compute capability as a number (sm_90: 90) */
    double bytes_per_ns;     /* CUDA: mem_bandwidth in bytes per ns (= GB/s) */
    struct rsrc_target *gpu; /* a CPU target's CUDA companion (--target avx512,sm_90), or NULL */
} rsrc_target;
/* name: one spec, or a CPU and a CUDA spec separated by a comma. The result is always a CPU
 * target (generic when only a CUDA spec is named); the CUDA spec hangs off it as ->gpu. */
rsrc_target *target_load(const char *name, const char *cpu, const char *features);
void target_free(rsrc_target *t);
void target_list(FILE *out);
void target_print(const rsrc_target *t, FILE *out);
/* The features of t this machine's CPU lacks ("a, b"), or NULL when it can run t's code. */
char *target_host_lacks(const rsrc_target *t);
/* The instruction set t's code is for, from its triple: "x86_64" (also a spec without one),
 * "aarch64", "nvptx64"; and whether this machine runs it natively. */
const char *target_arch(const rsrc_target *t);
/* The dot ISA t's kind, architecture and features give: what target_load stores in t->isa, the
 * one place features become an instruction set. */
enum dot_isa target_isa_of(const rsrc_target *t);
bool target_has_feature(const rsrc_target *t, const char *feature);
bool target_is_foreign(const rsrc_target *t);
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
void plan_matrix(const ternary_matrix *t, const rsrc_target *tg, enum strategy forced, int forced_k, matrix_plan *out);
bool plan_allowed(const rsrc_target *tg, enum strategy s);   /* by the spec's 'strategies' */
bool plan_candidate(const rsrc_target *tg, enum strategy s); /* allowed, and the target has the form's ISA */
/* i2's batched kernel as RSR with tokens in lanes (kernel.c) against the tiles, by the cost
 * model fitted to the target's instruction set: the predicted time of a full step's tiles over the
 * lanes'. plan_lanes_from: the tokens
 * from which a pass of lanes (which costs the same for 1 or 64 tokens) beats the tiles (which
 * cost in proportion), given that ratio predicted or measured. plan_prefill decides it for an i2
 * matrix (the target's --prefill, a measurement here, or the model) and says why in mp->why: the
 * lanes cost 0.5 bytes a weight more than the tiles' 0.25, so they are kept only where a full step
 * is at least PLAN_LANES_GAIN times as fast, predicted or measured. */
#define PLAN_LANES_GAIN 1.15
/* The same rule between the forms of a matrix with scales per group (plan_matrix): lut per unit
 * holds 3 bits a weight (two planes of triplet codes) against i2 per unit's 2, so it is taken only
 * where predicted PLAN_BYTES_GAIN times as fast (on the 27B Qwen3.5 shape with no +2 weights it
 * was predicted 1.02x and measured 1.05x, for 1.31x the memory). */
#define PLAN_BYTES_GAIN PLAN_LANES_GAIN
double plan_lanes_gain(const ternary_matrix *t, const rsrc_target *tg);
bool kernel_lanes_possible(const ternary_matrix *t, const rsrc_target *tg); /* kernel.c: the form exists here */
bool plan_may_use_lanes(const rsrc_target *tg, enum prefill_form prefill);
void plan_prefill(const ternary_matrix *t, const rsrc_target *tg, enum prefill_form prefill, double measured_gain,
                  matrix_plan *mp);
/* The cost model's single-thread ns for one call of s at block size k (CPU targets); prefill:
 * per token of a step of RSR_BATCH_MAX tokens (the batched kernel where s has one). */
double plan_predict(const ternary_matrix *t, const rsrc_target *tg, enum strategy s, int k, bool prefill);

/* ---- tune.c: --tune, the strategy of each matrix chosen by measuring its candidates here ---- */
typedef struct tune_state tune_state;
typedef struct tune_class tune_class;
/* Refuses (fatal) a target this machine cannot run: a CUDA part, another architecture, or
 * CPU features this machine lacks (named). */
void tune_check_target(const rsrc_target *t, const char *name);
/* cache_path NULL: the default; the temporary kernels go to workdir. */
tune_state *tune_begin(const rsrc_target *t, compile_options opts, const char *cache_path,
                       const struct kernel_printer *pr, const char *workdir, enum strategy forced, int forced_k);
void tune_explain(FILE *out, const tune_class *tc, const ternary_matrix *tm, const rsrc_target *t);
/* --tune's decision for one matrix, before compile_matrix: the planner's plan in *mp, then the
 * measurement; fills rq's decided, measured and measured_lanes_gain. tune.c is a driver above
 * matrix.c (it compiles candidates through it); matrix.c calls nothing of tune.c. */
struct matrix_request;
void tune_decide(tune_state *ts, const ternary_matrix *tm, const rsrc_target *t, struct matrix_request *rq,
                 matrix_plan *mp);
/* The default compile for the CPU at hand (--target host, no --tune): the cost model's plan, and
 * where it predicts that the RSR lanes earn their bytes, the lanes and the tiles measured here
 * (their class cached as --tune's are) so that the lanes stay only where they are measured
 * faster by PLAN_LANES_GAIN. ts from tune_begin_check. */
tune_state *tune_begin_check(const rsrc_target *t, compile_options opts, const struct kernel_printer *pr,
                             const char *workdir);
void tune_check_lanes(tune_state *ts, const ternary_matrix *tm, const rsrc_target *t, struct matrix_request *rq,
                      matrix_plan *mp);
void tune_end(tune_state *ts); /* writes the cache, if something was measured */

#endif
