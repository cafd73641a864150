/*
 * gpu.c — the CUDA half of the pipeline, for a target such as sm_90 or avx512,sm_90: the two
 * printers of CUDA targets (printer.h's table). The driver sends each matrix through
 * compile_matrix (matrix.c) for the GPU spec, as it does for the CPU, into the printer's sink; the
 * printer's kernel hook receives its kernel IR and records it, group closes the matrices that read
 * one input, and at the end (finish) the module becomes PTX, which goes into the blob:
 *
 *   NVRTC route (default): CUDA C (emit_cuda.c: runtime kernels + matrix kernels) → nvrtc.c →
 *                          one PTX module for compute_XX.
 *   LLVM route (--backend=llvm): the matrix kernels through emit_llvm.c's NVPTX target (sm_86 at
 *                          most with LLVM 14) as module 1; the runtime kernels still need NVRTC
 *                          (module 0) for a loadable model, not for --emit=ptx.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_printer.h"
#include "ir/kir.h"
#include "rsr_gpu_call.h"
#include "rsrc.h"

#define GPU_DESCRIPTOR "rsr_gpu"

typedef struct gpu_record {
    char *symbol; /* NVRTC: the group entry that runs it; LLVM NVPTX: its own entry */
    const char *strategy;
    int32_t block_rows, blocks, cta_warps;
    int32_t group_slot, group_ctas; /* NVRTC: its bit in the call's mask, the entry's thread blocks */
    uint64_t data;
    int32_t planes; /* scales per group: the planes of its sums per unit (the warp form's, tm->planes) */
} gpu_record;

typedef struct gpu_build {
    const rsrc_target *t;
    bool llvm; /* matrix kernels through LLVM NVPTX (printer_nvptx), else NVRTC (printer_cuda) */
    char *cu_path, *ptx_path, *llvm_ptx_path;
    FILE *cu;
    llvm_emitter *nvptx;
    gpu_record *mats;
    int32_t num_mats, cap;
    gpu_member group[RSR_GROUP_MAX]; /* the open group (NVRTC) */
    int32_t group_size;
    uint64_t module[RSR_GPU_MAX_MODULES], module_size[RSR_GPU_MAX_MODULES];
    int32_t num_modules;
} gpu_build;

static gpu_build *gpu_begin(const printer_begin *pb, bool llvm) {
    const rsrc_target *t = pb->t;
    const char *workdir = pb->workdir;
    gpu_build *g = xcalloc(1, sizeof *g);
    g->t = t;
    g->llvm = llvm;
    g->cu_path = xasprintf("%s/model.cu", workdir);
    g->ptx_path = xasprintf("%s/model.ptx", workdir);
    g->llvm_ptx_path = xasprintf("%s/kernels.ptx", workdir);
    register_temp(g->cu_path);
    register_temp(g->ptx_path);
    register_temp(g->llvm_ptx_path);
    if (!(g->cu = fopen(g->cu_path, "w"))) rsrc_fatal("%s: cannot create: %s", g->cu_path, strerror(errno));
    emit_cuda_prologue(g->cu, pb->source, t);
    /* named for the model, not the path it came from, as the CPU module is (compile()) */
    if (g->llvm) g->nvptx = emit_llvm_begin(t, "model", pb->opt_level);
    if (pb->explain && g->llvm && llvm_nvptx_sm(t) != t->sm)
        printf("%s: matrix kernels as PTX through LLVM NVPTX for sm_%d: LLVM 14 stops at sm_%d, so the driver "
               "JIT-compiles this PTX for %s when the model is loaded (NVRTC, the default route, emits %s PTX)\n",
               t->name, llvm_nvptx_sm(t), LLVM_NVPTX_MAX_SM, t->arch, t->arch);
    else if (pb->explain)
        printf("%s: kernels as PTX through %s for %s\n", t->name, g->llvm ? "LLVM NVPTX" : "NVRTC (CUDA C)",
               g->llvm ? t->arch : "compute_XX of the spec's arch");
    return g;
}

static void *begin_nvrtc(const printer_begin *pb) { return gpu_begin(pb, false); }
static void *begin_llvm(const printer_begin *pb) { return gpu_begin(pb, true); }

/* Prints the entry of the open group, named for its first matrix, and points its matrices at it. */
static void gpu_close_group(void *state) {
    gpu_build *g = state;
    if (g->llvm || !g->group_size) return; /* LLVM NVPTX: each matrix is an entry of its own */
    int32_t first = g->num_mats - g->group_size, ctas = 0;
    char *symbol = xasprintf("rsr_group_%d", first);
    emit_cuda_group(g->cu, symbol, g->group, g->group_size);
    for (int32_t j = 0; j < g->group_size; j++) ctas += gpu_member_ctas(&g->group[j]);
    for (int32_t j = 0; j < g->group_size; j++) {
        gpu_record *r = &g->mats[first + j];
        free(r->symbol);
        r->symbol = xstrdup(symbol);
        r->group_slot = j, r->group_ctas = ctas;
    }
    free(symbol);
    g->group_size = 0;
}

/* One matrix's kernel IR: printed (CUDA C, or LLVM NVPTX), recorded for the descriptor and, for
 * NVRTC, added to the open group. */
static void gpu_kernel(const kernel_sink *out, const kir_module *m) {
    gpu_build *g = out->state;
    const kir_info *i = &m->info;
    if (g->llvm)
        emit_llvm_kernel(g->nvptx, m);
    else
        emit_cuda_kernel(g->cu, m);
    if (g->num_mats == g->cap)
        g->mats = xrealloc(g->mats, sizeof *g->mats * (size_t)(g->cap = g->cap ? 2 * g->cap : 64));
    g->mats[g->num_mats++] = (gpu_record){
        xstrdup(i->symbol), i->strategy, i->block_rows, i->num_blocks, i->cta_warps, 0, 0, i->data_offset, i->planes};
    if (g->llvm) return;
    g->group[g->group_size] = gpu_member_of(m);
    g->group[g->group_size].symbol = g->mats[g->num_mats - 1].symbol;
    g->group_size++;
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) rsrc_fatal("%s: cannot read: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = xmalloc((size_t)n + 1);
    if (n < 0 || fread(s, 1, (size_t)n, f) != (size_t)n) rsrc_fatal("%s: read failed", path);
    fclose(f);
    s[n] = 0;
    *size = (size_t)n;
    return s;
}

static void write_file(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text, 1, n, f) != n || fclose(f) != 0) rsrc_fatal("%s: cannot write: %s", path, strerror(errno));
}

static void add_module(gpu_build *g, blob_writer *blob, const char *ptx, size_t n) {
    g->module[g->num_modules] = blob_align(blob, 64);
    blob_write(blob, ptx, n + 1); /* with its NUL: cuModuleLoadDataEx reads a C string */
    g->module_size[g->num_modules++] = n;
}

/* what: the source, nothing more (--emit=cuda); assembly, the PTX file (--emit=ptx); object, PTX
 * into the blob (model.so). */
static void gpu_finish(void *state, blob_writer *blob, enum printer_output what) {
    gpu_build *g = state;
    if (g->group_size) gpu_close_group(g);
    if (fclose(g->cu) != 0) rsrc_fatal("%s: write failed: %s", g->cu_path, strerror(errno));
    g->cu = NULL;
    if (what == PRINT_SOURCE) return;
    double t0 = rsrc_now();
    if (g->llvm) {
        emit_llvm_finish(g->nvptx, LLVM_OUT_ASM, what == PRINT_ASSEMBLY ? g->ptx_path : g->llvm_ptx_path);
        rsrc_note(1, "LLVM NVPTX: matrix kernels as sm_%d PTX in %.2f s", llvm_nvptx_sm(g->t), rsrc_now() - t0);
        if (what == PRINT_ASSEMBLY) return;
    }
    size_t n;
    char *source = read_file(g->cu_path, &n);
    char *ptx = nvrtc_compile(g->t, source, "model.cu", &n);
    rsrc_note(1, "NVRTC: %s PTX (%zu bytes) in %.2f s", g->t->arch, n, rsrc_now() - t0);
    if (what == PRINT_ASSEMBLY)
        write_file(g->ptx_path, ptx, n);
    else
        add_module(g, blob, ptx, n);
    free(ptx);
    free(source);
    if (g->llvm && what == PRINT_OBJECT) {
        char *kernels = read_file(g->llvm_ptx_path, &n);
        add_module(g, blob, kernels, n);
        free(kernels);
    }
}

static const char *gpu_output(const void *state, bool ptx) {
    const gpu_build *g = state;
    return ptx ? g->ptx_path : g->cu_path;
}

/* The rsr_artifact_gpu descriptor, before the artifact that points to it (emit_c_artifact). */
static const char *gpu_emit_descriptor(const void *state, FILE *out) {
    const gpu_build *g = state;
    fputs("static const rsr_artifact_gpu_matrix gpu_matrices[] = {\n", out);
    for (int32_t i = 0; i < g->num_mats; i++) {
        const gpu_record *r = &g->mats[i];
        fputs("    {", out);
        emit_c_string(out, r->symbol);
        fputs(", ", out);
        emit_c_string(out, r->strategy);
        fprintf(out, ", %d, %d, %d, %d, %d, ", r->block_rows, r->blocks, r->cta_warps, r->group_slot, r->group_ctas);
        emit_c_offset(out, r->data);
        fprintf(out, ", %d},\n", r->planes);
    }
    fprintf(out, "};\n\nstatic const rsr_artifact_gpu %s = {\n    .arch = \"%s\",\n", GPU_DESCRIPTOR, g->t->arch);
    if (g->llvm)
        fprintf(out, "    .ptx_arch = \"sm_%d\", .route = \"llvm-nvptx+nvrtc\",\n", llvm_nvptx_sm(g->t));
    else
        fprintf(out, "    .ptx_arch = \"compute_%d\", .route = \"nvrtc\",\n", g->t->sm);
    fprintf(out, "    .num_modules = %d,\n    .module = {", g->num_modules);
    for (int32_t i = 0; i < g->num_modules; i++)
        fprintf(out, "%s%lluu", i ? ", " : "", (unsigned long long)g->module[i]);
    fputs("},\n    .module_size = {", out);
    for (int32_t i = 0; i < g->num_modules; i++)
        fprintf(out, "%s%lluu", i ? ", " : "", (unsigned long long)g->module_size[i]);
    fputs("},\n    .matrix = gpu_matrices,\n};\n\n", out);
    return GPU_DESCRIPTOR;
}

static void gpu_end(void *state) {
    gpu_build *g = state;
    if (!g) return;
    if (g->cu) fclose(g->cu);
    emit_llvm_end(g->nvptx);
    for (int32_t i = 0; i < g->num_mats; i++) free(g->mats[i].symbol);
    free(g->mats);
    free(g->cu_path), free(g->ptx_path), free(g->llvm_ptx_path);
    free(g);
}

/* The printers of CUDA targets (printer.h): NVRTC's, the default, and LLVM NVPTX's (an entry of
 * its own per matrix, no group entries). Both print the GPU's two forms, i2 with dp4a and the RSR
 * warp form (lower_gpu.c). */
const kernel_printer printer_cuda = {.name = "cuda",
                                     .title = "NVRTC",
                                     .backend = "nvrtc",
                                     .kind = TK_CUDA,
                                     .kernel = gpu_kernel,
                                     .begin = begin_nvrtc,
                                     .group = gpu_close_group,
                                     .finish = gpu_finish,
                                     .output = gpu_output,
                                     .descriptor = gpu_emit_descriptor,
                                     .end = gpu_end};
const kernel_printer printer_nvptx = {.name = "llvm-nvptx",
                                      .title = "LLVM NVPTX",
                                      .backend = "llvm",
                                      .kind = TK_CUDA,
                                      .gpu_entries = true,
                                      .kernel = gpu_kernel,
                                      .begin = begin_llvm,
                                      .group = gpu_close_group,
                                      .finish = gpu_finish,
                                      .output = gpu_output,
                                      .descriptor = gpu_emit_descriptor,
                                      .end = gpu_end};
