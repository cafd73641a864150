/*
 * matrix.c — the life of one matrix, for every caller (the compile loop, the GPU half, --tune's
 * candidates, bench_gemv):
 *
 *   decide   the strategy and k: the cost model (plan.c), or --tune's measurement (tune.c), or
 *            what the caller forces; then, for the RSR forms, the analysis (rsr.c), --verify and
 *            --print=plan; the planner's last word, where the real index is needed to know it:
 *            an unrolled form whose code outgrows the target's icache budget is the loop form at
 *            the same k, unless --strategy=rsr-unrolled asked for it; for i2, the batched kernel's
 *            form (plan_prefill: tiles, or RSR lanes from some number of tokens)
 *   lower    the kernel description (kernel.c) and its constant data into the blob
 *   print    the kernel through the printer the caller chose (C, LLVM, LLVM NVPTX, CUDA C), once
 *            per distinct code for i2 and lut (kernel_cache: a mixture of experts has hundreds of
 *            matrices of one shape, whose i2 or lut kernels differ only in the data they are given)
 *
 * Every printer prints every form its target's kind has (a CPU printer the CPU forms, a GPU
 * printer i2 with dp4a and the RSR warp form), so the plan never depends on which printer was
 * chosen.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/kir.h"
#include "print/printer.h"
#include "rsrc.h"

/* Checks a plan against the naive product on a few deterministic vectors. */
static void verify_plan(const ternary_matrix *t, const rsrc_plan *p) {
    int8_t *x = xmalloc((size_t)t->cols);
    int32_t *y = xmalloc(sizeof *y * (size_t)t->rows);
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (int trial = 0; trial < 3; trial++) {
        for (int32_t c = 0; c < t->cols; c++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            x[c] = trial == 0 ? 127 : trial == 1 ? -128 : (int8_t)(s >> 56);
        }
        rsrc_reference_matvec(p, x, y);
        for (int32_t r = 0; r < t->rows; r++) {
            int32_t want = 0;
            for (int32_t c = 0; c < t->cols; c++) want += ternary_weight(t, r, c) * x[c];
            if (want != y[r])
                rsrc_fatal("internal error: RSR plan of '%s' gives %d at row %d, expected %d", t->name, y[r], r, want);
        }
    }
    free(x);
    free(y);
}

void matrix_decide(const ternary_matrix *tm, const rsrc_target *t, const matrix_request *rq, compiled_matrix *cm) {
    memset(cm, 0, sizeof *cm);
    if (rq->decided)
        cm->mp = *rq->decided;
    else
        plan_matrix(tm, t, rq->strategy, rq->k, &cm->mp);
    cm->measured = rq->measured;
    if (rq->lanes_min || tm->unit_cols)
        cm->mp.lanes_min = rq->lanes_min > 0 && cm->mp.strategy == STRAT_I2 && !tm->unit_cols ? rq->lanes_min : 0;
    else
        plan_prefill(tm, t, rq->prefill, rq->measured_lanes_gain, &cm->mp);
    stage_enter(STAGE_ANALYSE);
    if (!strategy_is_rsr(cm->mp.strategy)) return;
    rsrc_analyse(tm, cm->mp.k, &cm->plan);
    if (rq->verify) verify_plan(tm, &cm->plan);
    if (rq->print_plan) rsrc_plan_print(&cm->plan, tm->name, stdout);
    if (cm->mp.strategy == STRAT_RSR_UNROLLED && rq->user_strategy != STRAT_RSR_UNROLLED && t->kind != TK_CUDA &&
        kernel_unrolled_code_estimate(&cm->plan) > t->unroll_budget)
        cm->mp.strategy = STRAT_RSR_LOOP;
}

struct kernel_cache {
    int64_t n, cap, shared;
    struct cached_kernel {
        uint64_t hash;
        char *key, *symbol, *batch_symbol;
    } * k;
};

kernel_cache *kernel_cache_open(void) { return xcalloc(1, sizeof(kernel_cache)); }

void kernel_cache_close(kernel_cache *kc) {
    if (!kc) return;
    if (kc->shared)
        rsrc_note(1, "%" PRId64 " matrices share the kernels of others (%" PRId64 " i2 and lut kernels)", kc->shared,
                  kc->n);
    for (int64_t i = 0; i < kc->n; i++) free(kc->k[i].key), free(kc->k[i].symbol), free(kc->k[i].batch_symbol);
    free(kc->k);
    free(kc);
}

/* What makes an i2 or lut kernel's code (their index is all data): the fields the printers read
 * and its KIR, printed with placeholder names. */
static char *kernel_key(const rsrc_kernel *kn, const kir_module *m) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) rsrc_fatal("out of memory");
    fprintf(f, "%d %d %d %d %d %d %d %d %d %d %d %d %d\n", kn->form, kn->rows, kn->cols, kn->block_rows, kn->num_blocks,
            kn->isa, kn->vec_bytes, kn->groups, kn->unit_cols, kn->batch_tile, kn->lanes_min, kn->lut_vector,
            kn->lut_window);
    kir_print_renamed(f, m, kn->symbol, "K");
    if (fclose(f) != 0) rsrc_fatal("out of memory");
    return text;
}

/* True when an earlier matrix's kernel is the same code: kn then names that one's symbols. */
static bool reuse_kernel(kernel_cache *kc, rsrc_kernel *kn, const kir_module *m) {
    char *key = kernel_key(kn, m);
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *c = key; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ull;
    for (int64_t i = 0; i < kc->n; i++)
        if (kc->k[i].hash == h && !strcmp(kc->k[i].key, key)) {
            free(key);
            free(kn->symbol), free(kn->batch_symbol);
            kn->symbol = xstrdup(kc->k[i].symbol);
            kn->batch_symbol = kc->k[i].batch_symbol ? xstrdup(kc->k[i].batch_symbol) : NULL;
            kc->shared++;
            return true;
        }
    if (kc->n == kc->cap) kc->k = xrealloc(kc->k, sizeof *kc->k * (size_t)(kc->cap = 2 * kc->cap + 16));
    kc->k[kc->n++] =
        (struct cached_kernel){h, key, xstrdup(kn->symbol), kn->batch_symbol ? xstrdup(kn->batch_symbol) : NULL};
    return false;
}

/* lower (the kernel description and its data, then its kernel IR, once) → print; with print_ir,
 * the IR as text too (--print=kernel), a shared kernel's under the first one's names, which the
 * artifact calls. The module lives in an arena of its own, closed here: arenas nest. */
static void emit(const ternary_matrix *tm, const rsrc_target *t, int index, blob_writer *blob, const kernel_sink *out,
                 compiled_matrix *cm, bool print_ir) {
    stage_enter(STAGE_EMIT);
    bool rsr = strategy_is_rsr(cm->mp.strategy);
    rsrc_kernel *kn = &cm->kn;
    kernel_lower(kn, tm, rsr ? &cm->plan : NULL, t, cm->mp.strategy, index, cm->mp.lanes_min);
    kernel_write_data(kn, blob);
    cm->index_bytes = rsr && kn->form == KF_UNROLLED ? rsrc_index_bytes(&cm->plan) : kernel_data_size(kn);
    cm->lowered = true;
    kir_module *m = kir_lower(kn);
    if (!(out->cache && (kn->form == KF_I2 || kn->form == KF_LUT) && reuse_kernel(out->cache, kn, m)))
        out->printer->kernel(out, m);
    if (print_ir) {
        printf("kernel %s: %s, %dx%d%s%s\n", tm->name, kn->strategy, kn->rows, tm->cols,
               t->kind == TK_CUDA ? " on " : "", t->kind == TK_CUDA ? t->name : "");
        kir_print_renamed(stdout, m, m->info.symbol, kn->symbol);
    }
    kir_close(m);
}

void matrix_emit(const ternary_matrix *tm, const rsrc_target *t, int index, blob_writer *blob, const kernel_sink *out,
                 compiled_matrix *cm) {
    emit(tm, t, index, blob, out, cm, false);
}

void compile_matrix(const ternary_matrix *tm, const rsrc_target *t, const matrix_request *rq, blob_writer *blob,
                    const kernel_sink *out, compiled_matrix *cm) {
    matrix_decide(tm, t, rq, cm);
    emit(tm, t, rq->index, blob, out, cm, rq->print_kernel);
}

void compiled_matrix_free(compiled_matrix *cm) {
    if (cm->lowered) kernel_free(&cm->kn);
    rsrc_plan_free(&cm->plan);
    cm->lowered = false;
}
