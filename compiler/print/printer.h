/*
 * printer.h — the printers of kernels as values, in one table (printers.c) that the pipeline
 * iterates: a target's backend (its spec's `backend:`, or --backend) names one of them.
 *
 *   c           emit_c.c     C for a CPU target
 *   llvm        emit_llvm.c  LLVM IR, assembly or objects for a CPU target
 *   cuda        cuda/        CUDA C, then PTX through NVRTC, for a CUDA target (the default)
 *   llvm-nvptx  cuda/        PTX through emit_llvm.c's NVPTX target, for a CUDA target
 *
 * A printer receives each matrix's kernel IR (kir.h), lowered once by matrix.c, and prints it.
 * A printer whose target has forms of its own lowers them (lower: the GPU's, in
 * cuda/compiler/lower_gpu.c), and a printer whose target is a half of the pipeline of its own (a
 * CUDA target beside the CPU's) keeps its state between begin and end: the driver (main.c) calls
 * begin, then compile_matrix for each matrix into a sink of the printer, group where the matrices
 * that read one input end, finish, descriptor and end. The CPU printers' half is the driver's
 * (the C file, the LLVM module): they have a kernel hook only. Nothing of compiler/ names a
 * function of cuda/: the table is the seam.
 */
#ifndef RSRC_PRINTER_H
#define RSRC_PRINTER_H

#include "ir/kir.h"
#include "rsrc.h"

/* What a printer's own half of the pipeline begins from (a CUDA target's). */
typedef struct printer_begin {
    const rsrc_target *t;
    const char *source;  /* names the model in the output's first comment */
    const char *workdir; /* where its files go */
    bool explain;        /* --explain: say how the kernels are built */
    int opt_level;       /* compile_options.opt_level */
} printer_begin;

struct kernel_printer {
    const char *name;      /* printer_named's word */
    const char *title;     /* in messages: "LLVM NVPTX" */
    const char *backend;   /* the word of a spec's backend: and of --backend that selects it */
    enum target_kind kind; /* the targets it prints for; the table's first of a kind is its default */
    bool gpu_entries;      /* GPU: a kernel is an entry of its own, not a group entry's device function */
    /* the forms of its target lower.c leaves to it, lowered into m; NULL: none */
    void (*lower)(kir_module *m, const rsrc_kernel *kn);
    /* one matrix's kernel IR, printed into the sink */
    void (*kernel)(const kernel_sink *out, const kir_module *m);
    /* its own half of the pipeline, or NULL (the CPU printers): begin returns the sink's state */
    void *(*begin)(const printer_begin *b);
    void (*group)(void *state); /* the matrices since the last group read one input */
    /* what: 0 nothing more (its source only), 1 its assembly as a file, 2 into the blob */
    void (*finish)(void *state, blob_writer *blob, int what);
    const char *(*output)(const void *state, bool assembly); /* the file of finish's 0 or 1 */
    /* its descriptor in the artifact's C, before the artifact; returns the descriptor's name */
    const char *(*descriptor)(const void *state, FILE *out);
    void (*end)(void *state);
};

/* The table, NULL-terminated; printers.c fills it. */
extern const kernel_printer *const kernel_printers[];
/* The printer of kind whose backend word is `backend`; the kind's default where there is none
 * (backend NULL, or a word of the other kind's, as --backend=c is for a CUDA target). */
const kernel_printer *printer_for(enum target_kind kind, const char *backend);
const kernel_printer *printer_backend(enum target_kind kind, const char *backend); /* NULL: none of kind */
const kernel_printer *printer_named(const char *name);                             /* NULL when there is none */
/* The printers compiler/ defines; the rest are reached through the table. */
extern const kernel_printer printer_c, printer_llvm;

#endif
