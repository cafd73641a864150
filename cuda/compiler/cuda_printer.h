/*
 * cuda_printer.h — the compiler's CUDA part: two printers of the table (printer.h) for CUDA
 * targets, which gpu.c defines, and what they are made of. Nothing in compiler/ includes it: the
 * pipeline reaches these through the table. bench_gpu uses the parts directly.
 *
 *   printer_cuda   (backend nvrtc, the default): CUDA C (emit_cuda.c), then PTX through NVRTC
 *   printer_nvptx  (backend llvm): the matrices through emit_llvm.c's NVPTX target
 *
 * A CUDA target's own forms are lowered by kir_lower_gpu (lower_gpu.c; the table's target_forms
 * names it), building the IR with compiler/'s lower.h, the IR's API.
 */
#ifndef RSRC_CUDA_PRINTER_H
#define RSRC_CUDA_PRINTER_H

#include "print/printer.h"

/* ---- lower_gpu.c: the GPU forms as kernel IR, for the route kn was lowered for ---- */
void kir_lower_gpu(kir_module *m, const rsrc_kernel *kn);

/* ---- emit_cuda.c: the CUDA C printer (the runtime's kernels, a device function per matrix, an
 * entry per group of matrices that read the same input) ---- */
typedef struct gpu_member { /* a matrix in a group entry */
    const char *symbol;
    int32_t rows, cols, block_rows, num_blocks, cta_warps, split;
    int32_t block_bytes; /* the data of each row block, where all have one size (prefetched); 0: not */
    uint64_t data;       /* blob offset of its constant data */
} gpu_member;
void emit_cuda_prologue(FILE *out, const char *source, const rsrc_target *t);
void emit_cuda_kernel(FILE *out, const kir_module *m);
gpu_member gpu_member_of(const kir_module *m);
int32_t gpu_member_ctas(const gpu_member *m);
void emit_cuda_group(FILE *out, const char *symbol, const gpu_member *m, int count);

/* ---- nvrtc.c: CUDA C → PTX through NVRTC, loaded with dlopen (RSRC_NVRTC overrides the path) ---- */
char *nvrtc_compile(const rsrc_target *t, const char *source, const char *name, size_t *size);

/* ---- gpu.c: the two printers (printer_cuda, printer_nvptx: begin, kernel, group, finish,
 * output, descriptor, end), declared by the table alone (printers.c); the PTX goes into the blob ---- */

#endif
