/*
 * kernel_set.h — a few matrices' kernels into a loadable shared object: the one builder that
 * --tune (its candidates), the unit tests of the printers and kernels and the CPU benchmarks
 * use, through the same printers (printer.h) and link (link_shared_object) as a model.
 *
 * A set is a C file (emit_c_prologue), a blob and a CPU printer's state: what compile()'s model
 * is made of too (main.c begins one and adds its artifact's descriptor). Each kernel added prints
 * into it and becomes an entry of its table, an rsr_artifact_matrix (emit_c_kernel_entry) in the
 * order added and then a zeroed one; kernel_set_link links the set with the runtime and
 * kernel_set_load loads it. The object exports the table as KERNEL_SET_TABLE and the blob's
 * address as KERNEL_SET_BLOB (tests/unit/printers_runner.c reads them under qemu).
 */
#ifndef RSRC_KERNEL_SET_H
#define RSRC_KERNEL_SET_H

#include "matrix.h"
#include "print/printer.h"
#include "rsr_artifact.h"

#define KERNEL_SET_TABLE "rsrc_kernel_set"
#define KERNEL_SET_BLOB "rsrc_kernel_set_blob"

typedef struct kernel_set {
    const rsrc_target *t;
    FILE *c; /* the set's C: a caller may add to it before kernel_set_link */
    blob_writer blob;
    kernel_sink sink;
    int n;         /* kernels added: the next one's index (rsr_kernel_N) */
    int opt_level; /* compile_options.opt_level */
    char *dir, *c_path, *blob_path, *so_path;
    c_file file;   /* what the C holds beyond its prologue */
    char *entries; /* the table's entries so far */
    size_t entries_size;
    FILE *table;
    void *handle; /* kernel_set_load's */
} kernel_set;

/* How a set begins: its target and CPU printer, and where and for what its files are. */
typedef struct kernel_set_params {
    const rsrc_target *t;
    const kernel_printer *printer;
    const char *dir;    /* a directory of its own is made in it, named for name */
    const char *name;   /* its directory's name; the C's source and the LLVM module's name unless given */
    const char *source; /* the C file's first comment names it (NULL: name) */
    const char *module; /* the LLVM module's name (NULL: name; it lands in the object) */
    int opt_level;      /* compile_options.opt_level */
    bool text;          /* the kernels end in a text or assembly file, not objects for a link */
    bool split_c;       /* the C printer's unrolled kernels in files of their own (a shared object) */
    bool explain;       /* --explain */
} kernel_set_params;
void kernel_set_begin(kernel_set *ks, const kernel_set_params *p);
/* A set of t's kernels printed by pr (a CPU printer) for a loadable object, its files in a new
 * directory in dir named for `name`. */
void kernel_set_open(kernel_set *ks, const rsrc_target *t, const kernel_printer *pr, const char *dir, const char *name,
                     int opt_level);
/* The C file and the blob closed (the C's size, for the link's estimate, in *c_bytes when given). */
void kernel_set_close_files(kernel_set *ks, uint64_t *c_bytes);
/* A matrix through compile_matrix into the set (rq's index is the set's next); cm the caller frees. */
void kernel_set_compile(kernel_set *ks, const ternary_matrix *tm, const matrix_request *rq, compiled_matrix *cm);
/* A matrix matrix_decide has decided, lowered and printed into the set (matrix_emit). */
void kernel_set_emit(kernel_set *ks, const ternary_matrix *tm, compiled_matrix *cm);
/* A kernel the caller lowered (kernel_lower, index ks->n): its data into the blob, printed. */
void kernel_set_kernel(kernel_set *ks, const char *name, rsrc_kernel *kn);
/* The printer finished, the table written, the C and the blob closed and linked into so_path
 * (NULL: the set's own directory's kernels.so). Returns the object's path. */
const char *kernel_set_link(kernel_set *ks, const char *so_path);
/* kernel_set_link, then the object loaded: its table and blob. rsrc_fatal on failure. */
void kernel_set_load(kernel_set *ks, const rsr_artifact_matrix **table, const uint8_t **blob);
/* Unloads it and removes its files (kept with RSRC_KEEP_KERNEL_SETS set). */
void kernel_set_close(kernel_set *ks);

#endif
