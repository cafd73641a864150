/*
 * test_rsr.c — RSR analysis and the C kernel printer against the naive product.
 *
 * For random ternary and binary matrices of awkward shapes (rows not a multiple of k, one
 * column, all-zero rows) and every k from 1 to 8: the plan's interpretation equals the naive
 * product, the plan is a permutation of the kept columns, and the C emitted for both kernel
 * forms — compiled with the system C compiler into a kernel set (compiler/kernel_set.h) and
 * loaded — gives bit-identical int32 sums. The
 * same for matrices expanded per unit of columns (group scales, activations per block), against
 * their per-unit sums written out from the weights as loaded.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../runtime/cpu/cpu.h"
#include "ir/kir.h"
#include "kernel_set.h"
#include "print/printer.h"
#include "rsrc.h"

#include "expect.h"

static uint64_t rng = 88172645463325252u;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static ternary_matrix random_matrix(int32_t rows, int32_t cols, bool binary, int zero_percent) {
    ternary_matrix t = {.name = xstrdup("test"), .rows = rows, .cols = cols, .beta = 1, .binary = binary};
    t.w = xmalloc((size_t)rows * (size_t)cols);
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++) {
        if (binary)
            t.w[i] = next() & 1 ? 1 : -1;
        else
            t.w[i] = (int)(next() % 100) < zero_percent ? 0 : (next() & 1 ? 1 : -1);
    }
    return t;
}

/* A matrix expanded per unit of columns (ternary_matrix_expand): weights -1, 0, 1 and, with
 * plus2, some +2 (Q2_0's code 3), in units of `unit` columns. */
static ternary_matrix random_grouped(int32_t rows, int32_t cols, int32_t unit, bool plus2) {
    ternary_matrix t = {.name = xstrdup("grouped"), .rows = rows, .src_rows = rows, .cols = cols, .beta = 1};
    t.w = xmalloc((size_t)rows * (size_t)cols);
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++)
        t.w[i] = plus2 && next() % 16 == 0 ? 2 : (int8_t)((int)(next() % 3) - 1);
    ternary_matrix_expand(&t, unit);
    return t;
}

/* The sums of an expanded matrix from its weights as loaded, written out here apart from
 * ternary_weight: unit u, plane p, row r at (u·planes + p)·src_rows + r, plane 0 counting a +2 as
 * +1 and plane 1 counting it once more. */
static void naive_grouped(const ternary_matrix *t, const int8_t *x, int32_t *y) {
    for (int32_t u = 0; u < t->cols / t->unit_cols; u++)
        for (int p = 0; p < t->planes; p++)
            for (int32_t r = 0; r < t->src_rows; r++) {
                int32_t s = 0;
                for (int32_t c = u * t->unit_cols; c < (u + 1) * t->unit_cols; c++) {
                    int w = t->w[(size_t)r * (size_t)t->cols + (size_t)c];
                    s += (p == 0 ? (w == 2 ? 1 : w) : (w == 2)) * x[c];
                }
                y[(u * t->planes + p) * t->src_rows + r] = s;
            }
}

/* What the i2 form of an expanded matrix writes (lower_i2_units): a sum per unit and row of the
 * weights as loaded (a +2 counts twice), by blocks of B rows (the kernel's unit_stride; the
 * artifact's sums_block): row r of unit u at (r / B)·units·B + u·B + r % B. */
static void naive_units(const ternary_matrix *t, int32_t B, const int8_t *x, int32_t *y) {
    const int32_t units = t->cols / t->unit_cols;
    for (int32_t u = 0; u < units; u++)
        for (int32_t r = 0; r < t->src_rows; r++) {
            int32_t s = 0;
            for (int32_t c = u * t->unit_cols; c < (u + 1) * t->unit_cols; c++)
                s += t->w[(size_t)r * (size_t)t->cols + (size_t)c] * x[c];
            y[r / B * units * B + u * B + r % B] = s;
        }
}
/* The sums of an i2 kernel per unit of k's that a call from block 0 writes per token, and where block
 * b's begin in them. */
static int32_t units_rows(const rsrc_kernel *k, const ternary_matrix *t) {
    return k->num_blocks * k->unit_stride * (t->cols / t->unit_cols);
}
static int32_t units_from(const rsrc_kernel *k, const ternary_matrix *t, int32_t b) {
    return t->unit_cols && k->form == KF_I2 ? b * k->unit_stride * (t->cols / t->unit_cols) : 0;
}

static void naive(const ternary_matrix *t, const int8_t *x, int32_t *y) {
    if (t->unit_cols) {
        naive_grouped(t, x, y);
        return;
    }
    for (int32_t r = 0; r < t->rows; r++) {
        int32_t s = 0;
        for (int32_t c = 0; c < t->cols; c++) s += t->w[(size_t)r * (size_t)t->cols + (size_t)c] * x[c];
        y[r] = s;
    }
}

static void fill_vector(int8_t *x, int32_t n, int kind) {
    for (int32_t i = 0; i < n; i++)
        x[i] = kind == 0 ? 127 : kind == 1 ? -128 : kind == 2 ? (i & 1 ? 127 : -128) : (int8_t)next();
}

/* The plan interpreted directly, and its structural invariants. */
static void check_plan(const ternary_matrix *t, int k) {
    rsrc_plan p;
    rsrc_analyse(t, k, &p);
    int8_t *x = xmalloc((size_t)t->cols);
    int32_t *want = xmalloc(sizeof(int32_t) * (size_t)t->rows), *got = xmalloc(sizeof(int32_t) * (size_t)t->rows);
    for (int kind = 0; kind < 5; kind++) {
        fill_vector(x, t->cols, kind);
        naive(t, x, want);
        rsrc_reference_matvec(&p, x, got);
        EXPECT(memcmp(want, got, sizeof(int32_t) * (size_t)t->rows) == 0, "plan %dx%d k=%d %s vector %d", t->rows,
               t->cols, k, t->binary ? "binary" : "ternary", kind);
    }
    for (int32_t b = 0; b < p.num_blocks; b++) {
        /* every column appears at most once per block, segments strictly ascending by code */
        uint8_t *seen = xcalloc((size_t)t->cols, 1);
        for (uint32_t j = p.block_col[b]; j < p.block_col[b + 1]; j++) {
            EXPECT(!seen[p.perm[j]], "column %u twice in block %d", p.perm[j], b);
            seen[p.perm[j]] = 1;
        }
        for (uint32_t s = p.block_seg[b] + 1; s < p.block_seg[b + 1]; s++)
            EXPECT(p.seg_code[s - 1] < p.seg_code[s], "segment codes not ascending in block %d", b);
        free(seen);
    }
    free(x), free(want), free(got);
    rsrc_plan_free(&p);
}

typedef void (*kernel_fn)(const uint8_t *, const int8_t *, int32_t *, int32_t, int32_t);
typedef void (*batch_fn)(const uint8_t *, const int8_t *, int32_t, int32_t *, int32_t, int32_t, int32_t, int32_t);

/* ---- the emitted kernels, compiled in batches ----
 * A batch is one C file, one blob and one run of the C compiler (for the RSR forms, and per i2
 * ISA with its flags); each check adds its kernels to the open batch, and they run against the
 * naive product once the batch is compiled and loaded (126 compiler runs were most of this
 * test's time). */
typedef struct check {
    ternary_matrix t; /* the check's own copy: the kernel points at it */
    rsrc_plan plan;   /* RSR forms */
    rsrc_kernel kn;
    enum dot_isa isa; /* i2 */
    int k;            /* RSR forms; 0: i2 */
} check;

typedef struct batch {
    rsrc_target t; /* its features and the C compiler's flags */
    kernel_set set;
    check **checks;
    int n, cap;
} batch;

static const struct {
    const char *features[3];
    int n;
    const char *cflags;
} isas[] = {
    [DOT_SCALAR] = {{NULL}, 0, "-O2"},
    [DOT_AVX2] = {{"avx2"}, 1, "-O2 -mavx2"},
    [DOT_AVXVNNI] = {{"avx2", "avxvnni"}, 2, "-O2 -mavx2 -mavxvnni"},
    [DOT_AVX512BW] = {{"avx512f", "avx512bw"}, 2, "-O2 -mavx512f -mavx512bw"},
    [DOT_AVX512VNNI] = {{"avx512f", "avx512bw", "avx512vnni"}, 3, "-O2 -mavx512f -mavx512bw -mavx512vnni"},
};

/* A batch of the C printer's kernels for isa (-1: the RSR forms, with cflags), as kernel_set
 * builds them. */
static void batch_open(batch *b, const char *dir, const char *name, const char *cflags, int isa) {
    memset(b, 0, sizeof *b);
    b->t = (rsrc_target){.name = "test", .kind = TK_CPU, .cflags = (char *)cflags, .unroll_budget = 1 << 20};
    if (isa >= 0) b->t.features = (char **)isas[isa].features, b->t.nfeatures = isas[isa].n;
    b->t.isa = target_isa_of(&b->t);
    EXPECT(isa < 0 || b->t.isa == (enum dot_isa)isa, "target_isa_of %d: %d", isa, b->t.isa);
    kernel_set_open(&b->set, &b->t, printer_named("c"), dir, name, -1);
}

static ternary_matrix copy_matrix(const ternary_matrix *t) {
    ternary_matrix c = *t;
    c.name = xstrdup(t->name);
    const size_t n = (size_t)(t->unit_cols ? t->src_rows : t->rows) * (size_t)t->cols;
    c.w = xmalloc(n ? n : 1);
    memcpy(c.w, t->w, n);
    if (t->scales) {
        const size_t g = (size_t)t->src_rows * (size_t)(t->cols / t->scale_cols);
        c.scales = xmalloc(sizeof *c.scales * g);
        memcpy(c.scales, t->scales, sizeof *c.scales * g);
    }
    return c;
}

/* A new check of t in the batch: its kernel lowered with strategy s for the batch's target, its
 * data in the batch's blob, its code in the batch's file, an entry of its table. */
static void batch_add(batch *b, const ternary_matrix *t, enum strategy s, int k) {
    check *c = xcalloc(1, sizeof *c);
    c->t = copy_matrix(t), c->k = k, c->isa = b->t.isa;
    if (strategy_is_rsr(s)) rsrc_analyse(&c->t, k, &c->plan);
    kernel_lower(&c->kn, &c->t, strategy_is_rsr(s) ? &c->plan : NULL, &b->t, s, b->set.n, 0);
    kernel_set_kernel(&b->set, "test", &c->kn);
    if (b->n == b->cap) b->checks = xrealloc(b->checks, sizeof *b->checks * (size_t)(b->cap = 2 * b->cap + 8));
    b->checks[b->n++] = c;
}

/* Both RSR forms of t at block size k. */
static void check_emitted(batch *b, const ternary_matrix *t, int k) {
    batch_add(b, t, STRAT_RSR_UNROLLED, k);
    batch_add(b, t, STRAT_RSR_LOOP, k);
}

/* The i2 kernel of t for the batch's ISA (its flags). */
static void check_i2(batch *b, const ternary_matrix *t) { batch_add(b, t, STRAT_I2, 0); }

/* The decode kernel of one check: every vector kind, the blocks in two calls as two threads
 * would take them. An expanded matrix's i2 sums per unit of its source rows (naive_units). */
static void run_decode(const check *c, const uint8_t *data, kernel_fn fn) {
    const ternary_matrix *t = &c->t;
    const bool units = t->unit_cols && c->kn.form == KF_I2;
    const int32_t rows = units ? units_rows(&c->kn, t) : t->rows;
    size_t padded = (size_t)rsr_x_row(t->cols, t->unit_cols); /* the codes, then each unit's Σx */
    int8_t *x = xcalloc(padded, 1);
    int32_t *want = xmalloc(sizeof(int32_t) * (size_t)rows), *got = xmalloc(sizeof(int32_t) * (size_t)rows);
    for (int kind = 0; kind < 5; kind++) {
        fill_vector(x, t->cols, kind);
        rsr_x_put_sums(x, t->cols, t->unit_cols);
        memset(want, 0x5a, sizeof(int32_t) * (size_t)rows);
        if (units)
            naive_units(t, c->kn.unit_stride, x, want);
        else
            naive(t, x, want);
        memset(got, 0x5a, sizeof(int32_t) * (size_t)rows);
        fn(data, x, got, 0, c->kn.num_blocks / 2);
        fn(data, x, got + units_from(&c->kn, t, c->kn.num_blocks / 2), c->kn.num_blocks / 2, c->kn.num_blocks);
        EXPECT(memcmp(want, got, sizeof(int32_t) * (size_t)rows) == 0, "%s (%s) %dx%d k=%d %s vector %d",
               c->kn.strategy, c->kn.form == KF_I2 ? dot_isa_names[c->isa] : "C", t->rows, t->cols, c->k,
               t->binary ? "binary" : "ternary", kind);
    }
    free(x), free(want), free(got);
}

/* The batched i2 kernel: two full tiles of tokens and one more (the extreme vectors and random
 * ones), rows of y wider than the matrix (or than its units' sums), the blocks in two calls. */
static void run_batched(const check *c, const uint8_t *data, batch_fn bfn) {
    const ternary_matrix *t = &c->t;
    const bool units = t->unit_cols != 0;
    const int32_t rows = units ? units_rows(&c->kn, t) : t->rows;
    size_t padded = (size_t)rsr_x_row(t->cols, t->unit_cols); /* the codes, then each unit's Σx */
    int32_t ntok = 2 * c->kn.batch_tile + 1, ys = rows + 3;
    int8_t *xb = xcalloc(padded * (size_t)ntok, 1);
    int32_t *wantb = xmalloc(sizeof(int32_t) * (size_t)ys * (size_t)ntok),
            *gotb = xmalloc(sizeof(int32_t) * (size_t)ys * (size_t)ntok);
    memset(wantb, 0x5a, sizeof(int32_t) * (size_t)ys * (size_t)ntok);
    memset(gotb, 0x5a, sizeof(int32_t) * (size_t)ys * (size_t)ntok);
    for (int k = 0; k < ntok; k++) {
        fill_vector(xb + padded * (size_t)k, t->cols, k);
        rsr_x_put_sums(xb + padded * (size_t)k, t->cols, t->unit_cols);
        if (units)
            naive_units(t, c->kn.unit_stride, xb + padded * (size_t)k, wantb + (size_t)ys * (size_t)k);
        else
            naive(t, xb + padded * (size_t)k, wantb + (size_t)ys * (size_t)k);
    }
    bfn(data, xb, (int32_t)padded, gotb, ys, ntok, 0, c->kn.num_blocks / 2);
    bfn(data, xb, (int32_t)padded, gotb + units_from(&c->kn, t, c->kn.num_blocks / 2), ys, ntok, c->kn.num_blocks / 2,
        c->kn.num_blocks);
    EXPECT(memcmp(wantb, gotb, sizeof(int32_t) * (size_t)ys * (size_t)ntok) == 0, "%s batched (%s) %dx%d %s",
           c->kn.strategy, dot_isa_names[c->isa], t->rows, t->cols, t->binary ? "binary" : "ternary");
    free(xb), free(wantb), free(gotb);
}

/* Links the batch, loads it and runs every check; frees it all. */
static void batch_run(batch *b) {
    const rsr_artifact_matrix *table;
    const uint8_t *blob;
    kernel_set_load(&b->set, &table, &blob);
    for (int i = 0; i < b->n; i++) {
        check *c = b->checks[i];
        const uint8_t *data = blob + (c->kn.data_offset == RSR_NO_TENSOR ? 0 : c->kn.data_offset);
        run_decode(c, data, table[i].kernel);
        if (c->kn.batch_symbol) run_batched(c, data, table[i].kernel_batch);
    }
    kernel_set_close(&b->set);
    for (int i = 0; i < b->n; i++) {
        check *c = b->checks[i];
        kernel_free(&c->kn);
        if (c->k) rsrc_plan_free(&c->plan);
        ternary_matrix_free(&c->t);
        free(c);
    }
    free(b->checks);
}

static bool cpu_has(enum dot_isa isa) {
    __builtin_cpu_init();
    switch (isa) {
    case DOT_AVX2: return __builtin_cpu_supports("avx2");
    case DOT_AVXVNNI: return __builtin_cpu_supports("avx2") && rt_cpu_has_avxvnni();
    case DOT_AVX512BW: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    case DOT_AVX512VNNI: return cpu_has(DOT_AVX512BW) && __builtin_cpu_supports("avx512vnni");
    default: return true;
    }
}

int main(void) {
    static const int32_t shapes[][2] = {{1, 1}, {4, 8}, {7, 5}, {13, 33}, {64, 64}, {37, 200}, {256, 96}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int k = 1; k <= RSR_MAX_K; k++)
            for (int binary = 0; binary < 2; binary++)
                for (int zeros = 0; zeros <= 90; zeros += 45) {
                    if (binary && zeros) continue;
                    ternary_matrix t = random_matrix(shapes[s][0], shapes[s][1], binary, zeros);
                    check_plan(&t, k);
                    ternary_matrix_free(&t);
                }
    /* an all-zero matrix keeps no column and still writes zeros */
    ternary_matrix z = random_matrix(9, 17, false, 100);
    check_plan(&z, 4);
    ternary_matrix_free(&z);

    /* matrices expanded per unit of columns (scales per group, activations per block): blocks
     * of k rows that straddle two units or planes, rows not a multiple of k */
    static const int32_t grouped[][3] = {{4, 64, 32}, {7, 96, 32}, {13, 64, 16}, {33, 128, 64}};
    for (size_t s = 0; s < sizeof grouped / sizeof *grouped; s++)
        for (int plus2 = 0; plus2 < 2; plus2++)
            for (int k = 1; k <= RSR_MAX_K; k++) {
                ternary_matrix t = random_grouped(grouped[s][0], grouped[s][1], grouped[s][2], plus2);
                EXPECT(t.planes == 1 + plus2, "%dx%d: %d planes", grouped[s][0], grouped[s][1], t.planes);
                check_plan(&t, k);
                ternary_matrix_free(&t);
            }

    /* the choice between the forms of a grouped matrix weighs their bytes: lut per unit (3 bits a
     * weight) only where predicted PLAN_BYTES_GAIN times as fast as i2 per unit (2 bits) */
    rsrc_target *vbmi = target_load("avx512-vnni", NULL, NULL);
    for (int plus2 = 0; plus2 < 2; plus2++) {
        ternary_matrix t = random_grouped(64, 1024, 32, plus2);
        matrix_plan mp;
        plan_matrix(&t, vbmi, STRAT_AUTO, 0, &mp);
        EXPECT(mp.cost[STRAT_LUT] > 0 && mp.cost[STRAT_I2] > 0, "both forms predicted for a grouped matrix");
        enum strategy want = mp.cost[STRAT_I2] >= PLAN_BYTES_GAIN * mp.cost[STRAT_LUT] ? STRAT_LUT : STRAT_I2;
        EXPECT(mp.strategy == want, "%d planes: %s chosen, predicted i2 %.0f ns, lut %.0f ns", t.planes,
               strategy_names[mp.strategy], mp.cost[STRAT_I2], mp.cost[STRAT_LUT]);
        /* the rule, not only the least predicted time: where lut is predicted faster by less than the
         * gain, i2 is still chosen */
        if (mp.cost[STRAT_LUT] < mp.cost[STRAT_I2] && mp.cost[STRAT_I2] < PLAN_BYTES_GAIN * mp.cost[STRAT_LUT])
            EXPECT(strstr(mp.why, "not worth 1 more bit a weight") != NULL, "why: %s", mp.why);
        ternary_matrix_free(&t);
    }
    target_free(vbmi);

    char dir[] = "/tmp/rsrc-unit.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    batch rsr;
    batch_open(&rsr, dir, "rsr", "-O1", -1);
    for (size_t s = 0; s < sizeof grouped / sizeof *grouped; s++)
        for (int k = 1; k <= RSR_MAX_K; k += 3) { /* k = 1, 4, 7 */
            ternary_matrix t = random_grouped(grouped[s][0], grouped[s][1], grouped[s][2], true);
            check_emitted(&rsr, &t, k);
            ternary_matrix_free(&t);
        }
    static const int32_t emit_shapes[][2] = {{4, 8}, {7, 5}, {13, 33}, {64, 100}};
    for (size_t s = 0; s < sizeof emit_shapes / sizeof *emit_shapes; s++)
        for (int k = 1; k <= RSR_MAX_K; k += (k < 4 ? 1 : 4)) /* k = 1, 2, 3, 4, 8 */
            for (int binary = 0; binary < 2; binary++) {
                ternary_matrix t = random_matrix(emit_shapes[s][0], emit_shapes[s][1], binary, 30);
                check_emitted(&rsr, &t, k);
                ternary_matrix_free(&t);
            }
    batch_run(&rsr);
    /* i2 on every dot-product ISA this CPU runs; shapes cross the group and block boundaries */
    static const int32_t i2_shapes[][2] = {{1, 1}, {4, 8}, {7, 5}, {13, 300}, {64, 256}, {9, 1000}};
    for (int isa = DOT_SCALAR; isa <= DOT_AVX512VNNI; isa++) {
        if (!cpu_has((enum dot_isa)isa)) {
            printf("skipping i2 %s: this CPU lacks it\n", dot_isa_names[isa]);
            continue;
        }
        batch b;
        char name[16];
        snprintf(name, sizeof name, "i2-%d", isa);
        batch_open(&b, dir, name, isas[isa].cflags, isa);
        for (size_t s = 0; s < sizeof i2_shapes / sizeof *i2_shapes; s++)
            for (int binary = 0; binary < 2; binary++) {
                ternary_matrix t = random_matrix(i2_shapes[s][0], i2_shapes[s][1], binary, 40);
                check_i2(&b, &t);
                ternary_matrix_free(&t);
            }
        /* summed per unit of 32 or 64 columns, with +2 weights, where the ISA's fields fit a unit */
        static const int32_t unit_shapes[][3] = {{4, 128, 32}, {7, 256, 32}, {13, 128, 64}, {8, 256, 64}};
        for (size_t s = 0; s < sizeof unit_shapes / sizeof *unit_shapes; s++) {
            ternary_matrix t = random_grouped(unit_shapes[s][0], unit_shapes[s][1], unit_shapes[s][2], true);
            int V = dot_isa_vector_bytes((enum dot_isa)isa);
            if (t.unit_cols % V == 0 && 4 * V % t.unit_cols == 0 && t.cols % (4 * V) == 0) check_i2(&b, &t);
            ternary_matrix_free(&t);
        }
        batch_run(&b);
    }
    rmdir(dir);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
