/*
 * matrix.h — the life of one matrix (matrix.c): decide, lower, print through a sink's printer
 * (printer.h).
 */
#ifndef RSRC_MATRIX_H
#define RSRC_MATRIX_H

#include "ir/kernel.h"

/* ---- matrix.c: the life of one matrix: decide (plan or measure, analyse) → lower → print ---- */
typedef struct kernel_cache kernel_cache;
typedef struct kernel_sink { /* where a matrix's kernel is printed */
    const kernel_printer *printer;
    void *state;         /* what the printer's begin returned */
    kernel_cache *cache; /* i2 kernels printed once per distinct code (matrix.c), or NULL */
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
    double measured_lanes_gain;        /* i2: a full step's tiles over its lanes as measured here (tune_lanes_gain),
                                          0: not measured */
    bool verify, print_plan;           /* --verify, --print=plan */
    bool print_kernel;                 /* --print=kernel: the kernel IR of each matrix */
} matrix_request;
typedef struct compiled_matrix {
    matrix_plan mp;             /* the final strategy, k and why */
    const tune_class *measured; /* --tune's measurements, or NULL */
    rsrc_plan plan;             /* the RSR analysis (RSR forms) */
    rsrc_kernel kn;             /* the lowered kernel, its data written and its code printed */
    uint64_t index_bytes;       /* the index (or constant data) the kernel reads */
    bool lowered;
} compiled_matrix;
void compile_matrix(const ternary_matrix *tm, const rsrc_target *t, const matrix_request *rq, struct blob_writer *blob,
                    const kernel_sink *out, compiled_matrix *cm);
/* The two halves of compile_matrix, for a caller that looks at the decision first (--tune drops
 * a candidate the planner would not keep). */
void matrix_decide(const ternary_matrix *tm, const rsrc_target *t, const matrix_request *rq, compiled_matrix *cm);
void matrix_emit(const ternary_matrix *tm, const rsrc_target *t, int index, struct blob_writer *blob,
                 const kernel_sink *out, compiled_matrix *cm);
void compiled_matrix_free(compiled_matrix *cm);
/* The i2 kernels already printed, by their code: a matrix whose kernel is the same code (the same
 * form, shape and instructions; its weights are data, not code) calls the first one's. */
kernel_cache *kernel_cache_open(void);
void kernel_cache_close(kernel_cache *kc); /* says how many kernels were shared (-v) */

#endif
