/*
 * printer.h — the printers of kernels as values, in one table (printers.c) that the pipeline
 * iterates: a target's backend (its spec's `backend:`, or --backend) names one of them.
 *
 *   c           emit_c.c     C for a CPU target
 *   llvm        emit_llvm.c  LLVM IR, assembly or objects for a CPU target
 *   cuda        cuda/        CUDA C, then PTX through NVRTC, for a CUDA target (the default)
 *   llvm-nvptx  cuda/        PTX through emit_llvm.c's NVPTX target, for a CUDA target
 *
 * A printer receives each matrix's kernel IR (kir.h), lowered once by matrix.c (the forms a
 * target kind has of its own, the GPU's, through target_forms), and prints it. Every printer keeps
 * its state between begin and end (struct kernel_printer: one lifecycle): the driver (main.c), or
 * kernel_set (artifact/kernel_set.h) for a loadable set of kernels, calls begin, then
 * compile_matrix for each matrix into a sink of the printer, finish, and takes the output. Nothing
 * outside printers.c names a printer: the rest asks the table; nothing of compiler/ names a
 * function of cuda/: the table is the seam.
 */
#ifndef RSRC_PRINTER_H
#define RSRC_PRINTER_H

#include "ir/kir.h"
#include "rsrc.h"

/* What a printer begins from. */
typedef struct printer_begin {
    const rsrc_target *t;
    const char *source;  /* names the model in the output's first comment */
    const char *module;  /* names the LLVM module (it lands in the object: the model's name, not a path) */
    const char *workdir; /* where its files go */
    bool explain;        /* --explain: say how the kernels are built */
    int opt_level;       /* compile_options.opt_level */
    bool linked;         /* CPU: the kernels end in objects for a link (LLVM may emit them in parts as it
                            goes), else in a text or assembly file */
    bool split_c;        /* C: unrolled kernels into files of their own, compiled in parallel (a shared object) */
    /* CPU: the C file the driver writes (its prologue, emit_c_prologue, already there): the C
     * printer's kernels, or the LLVM printer's declarations of them, go into it */
    FILE *c;
    struct c_file *c_file;
    const char *c_path;
} printer_begin;

/* What a printer's finish makes of the kernels. */
enum printer_output {
    PRINT_SOURCE,   /* its text: C (the driver's file), LLVM IR, CUDA C */
    PRINT_ASSEMBLY, /* x86/AArch64 assembly, PTX */
    PRINT_OBJECT,   /* objects for the link (CPU: objects(); a CUDA target: its module into the blob) */
};

/* One lifecycle for every printer: begin, then kernel for each matrix into a sink whose state is
 * begin's (with part after each, group where the matrices that read one input end), finish,
 * output or objects, descriptor, end. Hooks a printer has no use for are NULL. */
struct kernel_printer {
    const char *name;      /* printer_named's word */
    const char *title;     /* in messages: "LLVM NVPTX" */
    const char *backend;   /* the word of a spec's backend: and of --backend that selects it */
    enum target_kind kind; /* the targets it prints for; the table's first of a kind is its default */
    bool gpu_entries;      /* GPU: a kernel is an entry of its own, not a group entry's device function */
    void *(*begin)(const printer_begin *b);
    /* one matrix's kernel IR, printed into the sink (out->state: begin's) */
    void (*kernel)(const kernel_sink *out, const kir_module *m);
    void (*part)(void *state);  /* after each matrix: work done so far may be emitted (LLVM, into an object) */
    void (*group)(void *state); /* the matrices since the last group read one input */
    uint64_t (*pending)(const void *state); /* what finish still has to optimise (LLVM: instructions) */
    /* what it makes of the kernels; a CUDA target's module goes into blob */
    void (*finish)(void *state, blob_writer *blob, enum printer_output what);
    const char *(*output)(const void *state, bool assembly); /* the file of finish's source or assembly */
    char *const *(*objects)(const void *state);              /* CPU: finish's objects, NULL-terminated */
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
/* The forms a target kind lowers itself, by kind (TK_CUDA: the GPU's, cuda/compiler/lower_gpu.c),
 * or NULL where lower.c has them all; printers.c fills it. */
extern void (*const target_forms[])(kir_module *m, const rsrc_kernel *kn);

#endif
