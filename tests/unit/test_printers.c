/*
 * test_printers.c — every (printer, form) pair of the CPU printers, run against the naive product
 * bit for bit.
 *
 * For the CPU printers (C and LLVM), every strategy (rsr-unrolled, rsr-loop, i2 with its tiles
 * and with its RSR-lanes prefill, lut) and every target this machine can run (generic, avx2,
 * avx512, avx512-vnni: those whose features the CPU has): ternary and binary matrices of awkward shapes go through compile_matrix,
 * as rsrc compiles them (and one expanded per unit of columns, as group scales make it, through
 * the forms that compute it: RSR, lut and i2 per unit, on AVX-512 targets in AVX-VNNI's or AVX2's
 * 32-byte fields, which the C printer prints as a second ISA in the file), into one shared object per (target, printer), and the decode kernel
 * (called in two halves, as two threads would) and the batched kernel must give the naive int32
 * products for random and extreme vectors (printers_check.h). Every CPU printer prints every CPU
 * form (the LLVM printer's scalar lut included). The GPU printers cannot run here (no GPU):
 * tests/lit/cuda assembles their PTX, tests/gpu runs it where a GPU is.
 *
 * The AArch64 targets are cross-compiled the same way, linked against the aarch64 runtime of
 * scripts/cross.sh, and checked by printers_runner of that build under qemu-user, on the oldest
 * CPU model that has the spec's features (aarch64: Cortex-A72, no dot product). Without a cross
 * build they are skipped, unless RSRC_REQUIRE_CROSS is set (scripts/test.sh sets it).
 *
 * Usage: test_printers [TARGET...]   (default: every target above; ctest runs them in groups)
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel_set.h"
#include "print/printer.h"
#include "rsrc.h"

#include "expect.h"
#include "printers_check.h"

_Static_assert(CHECK_LANES == RSR_LANES, "printers_check.h passes the lanes form's token counts");

static ternary_matrix random_matrix(const char *name, int32_t rows, int32_t cols, bool binary) {
    ternary_matrix t = {.name = xstrdup(name), .rows = rows, .cols = cols, .beta = 1, .binary = binary};
    t.w = xmalloc((size_t)rows * (size_t)cols);
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++)
        t.w[i] = binary ? (next() & 1 ? 1 : -1) : (int8_t)((int)(next() % 3) - 1);
    return t;
}

/* A matrix expanded per unit of columns (group scales: ternary_matrix_expand) with some +2
 * weights, and in *flat the matrix its kernels compute, written out here apart from
 * ternary_weight: row (u·planes + p)·src_rows + r holds row r's weights of plane p (0: a +2 counted
 * as +1; 1: a 1 where the weight is +2) in unit u's columns, zero elsewhere. */
static ternary_matrix grouped_matrix(const char *name, int32_t rows, int32_t cols, int32_t unit, int8_t **flat) {
    ternary_matrix t = {.name = xstrdup(name), .rows = rows, .src_rows = rows, .cols = cols, .beta = 1};
    t.w = xmalloc((size_t)rows * (size_t)cols);
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++)
        t.w[i] = next() % 16 == 0 ? 2 : (int8_t)((int)(next() % 3) - 1);
    if (!strcmp(name, "grouped-rows-256")) /* row 0 all +2 (code 3), row 1 all -1: the 16-bit sums' limit */
        for (int32_t c = 0; c < cols; c++) t.w[c] = 2, t.w[cols + c] = -1;
    ternary_matrix_expand(&t, unit);
    *flat = xcalloc((size_t)t.rows * (size_t)cols, 1);
    for (int32_t u = 0; u < cols / unit; u++)
        for (int p = 0; p < t.planes; p++)
            for (int32_t r = 0; r < rows; r++)
                for (int32_t c = u * unit; c < (u + 1) * unit; c++) {
                    int w = t.w[(size_t)r * (size_t)cols + (size_t)c];
                    (*flat)[((size_t)(u * t.planes + p) * (size_t)rows + (size_t)r) * (size_t)cols + (size_t)c] =
                        (int8_t)(p == 0 ? (w == 2 ? 1 : w) : w == 2);
                }
    return t;
}

/* What the i2 form per unit computes of a grouped matrix (lower_i2_units): row u·src_rows + r
 * holds row r's weights as loaded (a +2 as 2) in unit u's columns, zero elsewhere. */
static int8_t *units_matrix(const ternary_matrix *t) {
    const int32_t units = t->cols / t->unit_cols;
    int8_t *w = xcalloc((size_t)units * (size_t)t->src_rows * (size_t)t->cols, 1);
    for (int32_t u = 0; u < units; u++)
        for (int32_t r = 0; r < t->src_rows; r++)
            for (int32_t c = u * t->unit_cols; c < (u + 1) * t->unit_cols; c++)
                w[((size_t)u * (size_t)t->src_rows + (size_t)r) * (size_t)t->cols + (size_t)c] =
                    t->w[(size_t)r * (size_t)t->cols + (size_t)c];
    return w;
}

typedef struct variant {
    enum strategy strategy;
    bool lanes; /* i2: the batched kernel as RSR with tokens in lanes (--prefill=rsr) */
    int k;      /* RSR: forced k; 0: the planner's */
} variant;

static const variant variants[] = {
    {STRAT_RSR_UNROLLED, false, 0}, {STRAT_RSR_UNROLLED, false, 3}, {STRAT_RSR_LOOP, false, 0},
    {STRAT_RSR_LOOP, false, 5},     {STRAT_I2, false, 0},           {STRAT_I2, true, 0},
    {STRAT_LUT, false, 0},
};
enum { NV = sizeof variants / sizeof *variants, NM = 14 };

static ternary_matrix mats[NM];
static int8_t *flat[NM];      /* the weights each kernel computes: mats[m].w, or an expanded matrix's */
static int8_t *units[NM];     /* a grouped matrix's for the i2 form per unit (units_matrix) */
static int rows_in_lanes_run; /* kernels of the i2 form per unit with rows in lanes (AVX2) */

/* What the checks hold kernel cm of matrix m to. */
static check_matrix check_of(int m, const compiled_matrix *cm) {
    const ternary_matrix *t = &mats[m];
    if (t->unit_cols && cm->kn.form == KF_I2)
        return (check_matrix){units[m], t->cols / t->unit_cols * t->src_rows, t->cols, t->src_rows, cm->kn.unit_stride};
    return (check_matrix){flat[m], t->rows, t->cols, 0, 0};
}
static int pairs_run;

/* ---- another architecture: the object carries its matrices and is checked under qemu-user ---- */

/* The weights and descriptions of the object's kernels, for printers_runner (its test_matrix). */
static void emit_weights(FILE *c, const char *name, int m, const int8_t *w, size_t n) {
    fprintf(c, "static const int8_t %s%d[] = {", name, m);
    for (size_t i = 0; i < n; i++) fprintf(c, "%s%d", i % 32 ? ", " : i ? ",\n    " : "", w[i]);
    fputs("};\n", c);
}

static void emit_matrices(FILE *c, int n, const int *of, const check_matrix *chk, char (*what)[160]) {
    for (int m = 0; m < NM; m++) {
        emit_weights(c, "test_w", m, flat[m], (size_t)mats[m].rows * (size_t)mats[m].cols);
        if (units[m])
            emit_weights(c, "test_u", m, units[m],
                         (size_t)(mats[m].cols / mats[m].unit_cols * mats[m].src_rows) * (size_t)mats[m].cols);
    }
    fputs("__attribute__((visibility(\"default\"))) const struct { const int8_t *w; int32_t rows, cols, unit_rows, "
          "unit_block; const char *what; } test_matrices[] = {\n",
          c);
    for (int i = 0; i < n; i++) {
        fprintf(c, "    {test_%c%d, %d, %d, %d, %d, ", chk[i].unit_rows ? 'u' : 'w', of[i], chk[i].rows, chk[i].cols,
                chk[i].unit_rows, chk[i].unit_block);
        emit_c_string(c, what[i]);
        fputs("},\n", c);
    }
    fputs("    {0}};\n", c);
}

/* The qemu-user CPU model each foreign target is checked on: the oldest that has its features, so
 * code that used more than the spec names would fault. */
static const char *qemu_cpu(const rsrc_target *t) {
    return target_has_feature(t, "i8mm") ? "max" : target_has_feature(t, "dotprod") ? "neoverse-n1" : "cortex-a72";
}

/* printers_runner of the cross build (scripts/cross.sh) for t's architecture, or NULL */
static char *foreign_runner(const rsrc_target *t) {
    char *runner = xasprintf(RSR_CROSS_BUILD_DIR "/tests/printers_runner", target_arch(t));
    if (access(runner, X_OK) == 0) return runner;
    free(runner);
    return NULL;
}

static void run_foreign(const rsrc_target *t, const char *so_path) {
    char *runner = foreign_runner(t), *qemu = xasprintf("qemu-%s", target_arch(t));
    char *argv[] = {qemu, "-L", "/", "-cpu", (char *)qemu_cpu(t), runner, (char *)so_path, NULL};
    printf("%s: qemu-%s -cpu %s\n", t->name, target_arch(t), qemu_cpu(t));
    fflush(stdout);
    int rc = run_command(argv);
    EXPECT(rc == 0, "%s: printers_runner under %s -cpu %s exited %d", so_path, qemu, qemu_cpu(t), rc);
    free(runner), free(qemu);
}

/* Every variant the printer has on target t, each matrix through compile_matrix, into one shared
 * object (kernel_set, as --tune builds its candidates); then each kernel against the naive
 * product. */
static void check_printer(rsrc_target *t, const kernel_printer *pr, const char *dir) {
    kernel_set ks;
    /* The sets are compiled for their integer results, not their speed: the C printer's at -O1 (gcc
     * -O2 takes 3x as long on their 60 kernels, 50-80 s a target), LLVM's at -O0 (-O1 and the
     * default -O3 take 4x as long: 20 s a target against 5). Whole models compiled at the default
     * level through both printers are checked end to end (e2e.*, e2e.aarch64-i8mm.c, lit). */
    kernel_set_open(&ks, t, pr, dir, pr->name, strcmp(pr->name, "c") ? 0 : 1);
    compiled_matrix cm[NV * NM];
    char what[NV * NM][160];
    int of[NV * NM];
    check_matrix chk[NV * NM];
    int n = 0;
    for (int v = 0; v < NV; v++) {
        if (variants[v].lanes && variants[v].strategy != STRAT_I2) continue;
        for (int m = 0; m < NM; m++) {
            /* compile time: the unrolled form's code grows with the matrix, and gcc takes 6–9 s on
             * each scalar lanes kernel, so those two run on the small shapes only */
            if ((variants[v].strategy == STRAT_RSR_UNROLLED && mats[m].cols > 100) || (variants[v].lanes && m % 2))
                continue;
            /* i2 per unit: the grouped matrices whose columns are whole groups of 4 fields */
            if (m == 5 && variants[v].strategy == STRAT_I2) continue;
            /* the pair sums' rows: the i2 form's decode kernel only */
            if ((m == 6 || m == 7) && (variants[v].strategy != STRAT_I2 || variants[v].lanes)) continue;
            const matrix_request rq = {.strategy = variants[v].strategy,
                                       .k = variants[v].k,
                                       .user_strategy = variants[v].strategy,
                                       .lanes_min = variants[v].lanes ? LANES_MIN : -1};
            kernel_set_compile(&ks, &mats[m], &rq, &cm[n]);
            rows_in_lanes_run += cm[n].kn.rows_in_lanes;
            snprintf(what[n], sizeof what[n], "%s, %s printer, %s%s k=%d, %dx%d %s", t->name, pr->name,
                     cm[n].kn.strategy, variants[v].lanes ? " (lanes)" : "", cm[n].kn.block_rows, mats[m].rows,
                     mats[m].cols, mats[m].binary ? "binary" : "ternary");
            chk[n] = check_of(m, &cm[n]);
            of[n++] = m;
        }
        pairs_run++;
    }
    if (target_is_foreign(t)) {
        emit_matrices(ks.c, n, of, chk, what);
        char *so_path = xasprintf("%s/k-%s-%s.so", dir, t->name, pr->name);
        run_foreign(t, kernel_set_link(&ks, so_path));
        free(so_path);
    } else {
        const rsr_artifact_matrix *table;
        const uint8_t *blob;
        kernel_set_load(&ks, &table, &blob);
        for (int i = 0; i < n; i++) check_kernel(&table[i], blob, &chk[i], what[i]);
    }
    for (int i = 0; i < n; i++) compiled_matrix_free(&cm[i]);
    kernel_set_close(&ks);
}

/* The table (printer.h): names unique, every printer the whole lifecycle (a CPU one its objects,
 * a CUDA one its groups and descriptor), only CUDA targets with forms of their own, each kind's
 * default its first, a backend word of the other kind falling back to it, and the specs'
 * backends found in it. */
static void check_table(void) {
    int n = 0;
    for (const kernel_printer *const *p = kernel_printers; *p; p++, n++) {
        const kernel_printer *q = *p;
        EXPECT(printer_named(q->name) == q, "printer %s is not found by its name", q->name);
        bool life = q->begin && q->kernel && q->finish && q->output && q->end;
        EXPECT(life && (q->kind == TK_CUDA ? q->group && q->descriptor && !q->objects : q->objects && !q->descriptor),
               "printer %s: the hooks of its kind are not all there", q->name);
        EXPECT(printer_for(q->kind, q->backend) == q, "backend %s does not select printer %s", q->backend, q->name);
    }
    EXPECT(n == 4, "%d printers in the table", n);
    EXPECT(!target_forms[TK_CPU] && target_forms[TK_CUDA], "the GPU's forms are not its kind's own");
    const kernel_printer *c = printer_named("c"), *llvm = printer_named("llvm");
    EXPECT(c && llvm && c->kind == TK_CPU && llvm->kind == TK_CPU, "no C and LLVM printers for CPU targets");
    EXPECT(printer_for(TK_CPU, NULL) == c && printer_for(TK_CPU, "nvrtc") == c,
           "the CPU targets' default printer is not C");
    EXPECT(printer_for(TK_CUDA, NULL) == printer_named("cuda") && printer_for(TK_CUDA, "c") == printer_named("cuda"),
           "the CUDA targets' default printer is not CUDA C through NVRTC");
    rsrc_target *t = target_load("avx2,sm_90", NULL, NULL);
    EXPECT(t->backend == llvm && t->gpu->backend == printer_named("cuda"), "avx2,sm_90: backends %s and %s",
           t->backend->name, t->gpu->backend->name);
    target_free(t);
}

/* the targets given on the command line (none: every one) */
static int n_wanted;
static char **wanted_names;
static bool wanted(const char *name) {
    for (int i = 0; i < n_wanted; i++)
        if (!strcmp(name, wanted_names[i])) return true;
    return n_wanted == 0;
}

int main(int argc, char **argv) {
    n_wanted = argc - 1, wanted_names = argv + 1;
    check_table();
    char dir[] = "/tmp/test_printers.XXXXXX";
    if (!mkdtemp(dir)) return 2;
    /* shapes that are multiples of no block or vector width; one wide enough for two i2 groups */
    mats[0] = random_matrix("odd", 37, 77, false);
    mats[1] = random_matrix("wide", 21, 300, false);
    mats[2] = random_matrix("binary", 30, 50, true);
    mats[3] = random_matrix("one-column", 9, 1, false);
    /* the lanes form sums at most RSR_LANE_RUN columns in 16-bit lanes: here one pattern (all +1)
     * holds 600 columns of the first block, so its segment is widened in three runs; and with
     * 2900 columns the transposed x of a pass is 184 KB, so lanes_group puts two passes in a
     * group and RSR_BATCH_MAX tokens take two groups */
    mats[4] = random_matrix("long-runs", 7, 2900, false);
    for (int32_t r = 0; r < 4; r++) memset(mats[4].w + (size_t)r * 2900, 1, 600);
    for (int m = 0; m < 5; m++) flat[m] = mats[m].w;
    /* scales per group of 32 columns with +2 weights: blocks straddle units and planes (37 rows),
     * the last unit ends in the middle of a lut group */
    mats[5] = grouped_matrix("grouped", 37, 160, 32, &flat[5]);
    /* the i2 form per unit (columns a whole number of 4-field groups): rows in whole blocks of 4,
     * whose sums the kernel stores as one vector per unit, and rows that end in a partial block */
    mats[8] = grouped_matrix("grouped-i2", 36, 256, 32, &flat[8]);
    mats[9] = grouped_matrix("grouped-i2-partial", 38, 256, 32, &flat[9]);
    /* units of 256 columns (activations per block of 256: TQ1_0, TQ2_0 as llama.cpp's Q8_K): a unit
     * spans 2 groups of 4 fields on AVX2, 4 on NEON, 1 on AVX-512 */
    mats[10] = grouped_matrix("grouped-i2-256", 36, 512, 256, &flat[10]);
    mats[11] = grouped_matrix("grouped-i2-256-partial", 38, 768, 256, &flat[11]);
    /* AVX2's i2 per unit with rows in lanes (kernel.c, I2_LANE_ROWS): rows in whole blocks of 8; a
     * unit of 256 columns is 16 groups of 16, summed in 16-bit lanes in two runs of 8 (lower.c,
     * ROWS_RUN): a row of +2 against x = -128 brings a lane to 8·4·2·3·(-128) = -24576, which runs
     * of 11 would take past -32768 */
    mats[12] = grouped_matrix("grouped-rows", 40, 256, 32, &flat[12]);
    mats[13] = grouped_matrix("grouped-rows-256", 16, 1024, 256, &flat[13]);
    for (int m = 8; m < NM; m++) units[m] = units_matrix(&mats[m]);
    /* AVX2's i2 rows (one token, and the tiles of the batched kernel) add their vpmaddubsw pair
     * sums in 16-bit lanes for runs of at most 16 groups of 128 columns (kernel.c,
     * dot_isa_pair_sums), split evenly. A row of +1 against x = -128:
     * over 2048 columns (one run of 16) each lane reaches exactly -32768; over 2176 (17 groups:
     * runs of 9 and 8) a limit of 17 would make one run, and wrap. Row 1: -1, row 2: random. */
    for (int m = 6; m < 8; m++) {
        mats[m] = random_matrix(m == 6 ? "pair-sums-16" : "pair-sums-17", 3, m == 6 ? 2048 : 2176, false);
        memset(mats[m].w, 1, (size_t)mats[m].cols);
        memset(mats[m].w + mats[m].cols, -1, (size_t)mats[m].cols);
        flat[m] = mats[m].w;
    }
    static const char *const targets[] = {"generic",     "avx2",    "avx-vnni",        "avx512",
                                          "avx512-vnni", "aarch64", "aarch64-dotprod", "aarch64-i8mm"};
    int runnable = 0;
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        if (!wanted(targets[i])) continue;
        rsrc_target *t = target_load(targets[i], NULL, NULL);
        char *lacks = target_host_lacks(t), *runner = NULL;
        if (target_is_foreign(t) && (runner = foreign_runner(t))) { /* run under qemu-user */
            free(lacks);
            free(runner);
            lacks = NULL;
        } else if (target_is_foreign(t)) {
            /* CI builds the cross runtime first (scripts/test.sh) and asks for these to run */
            EXPECT(!getenv("RSRC_REQUIRE_CROSS"), "%s: no %s build to run it (scripts/cross.sh %s)", targets[i],
                   target_arch(t), target_arch(t));
        }
        if (lacks) {
            printf("%s: not run here (this CPU lacks %s)\n", targets[i], lacks);
            free(lacks);
        } else {
            runnable++;
            for (const kernel_printer *const *p = kernel_printers; *p; p++)
                if ((*p)->kind == TK_CPU) check_printer(t, *p, dir);
        }
        target_free(t);
    }
    if (n_wanted && runnable == 0 && !failures) { /* AArch64's without a cross build: reported skipped */
        printf("none of the targets given runs here\n");
        return 77;
    }
    EXPECT(runnable >= 1, "no target runs here");
    rsrc_target *avx2 = target_load("avx2", NULL, NULL);
    char *avx2_lacks = target_host_lacks(avx2);
    EXPECT(avx2_lacks || !wanted("avx2") || rows_in_lanes_run >= 4, "only %d kernels with rows in lanes ran on AVX2",
           rows_in_lanes_run);
    free(avx2_lacks);
    target_free(avx2);
    if (!getenv("RSRC_KEEP_KERNEL_SETS")) rmdir(dir);
    free(flat[5]);
    for (int m = 8; m < NM; m++) free(flat[m]), free(units[m]);
    for (int m = 0; m < NM; m++) ternary_matrix_free(&mats[m]);
    printf("%d (printer, form, target) triples run\n", pairs_run);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
