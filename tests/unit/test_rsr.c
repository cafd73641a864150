/*
 * test_rsr.c — RSR analysis and the C kernel printer against the naive product.
 *
 * For random ternary and binary matrices of awkward shapes (rows not a multiple of k, one
 * column, all-zero rows) and every k from 1 to 8: the plan's interpretation equals the naive
 * product, the plan is a permutation of the kept columns, and the C emitted for both kernel
 * forms — compiled with the system C compiler and loaded — gives bit-identical int32 sums. The
 * same for matrices expanded per unit of columns (group scales, activations per block), against
 * their per-unit sums written out from the weights as loaded.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../runtime/cpu/cpu.h"
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
 * weights as loaded (a +2 counts twice), at u·src_rows + r. */
static void naive_units(const ternary_matrix *t, const int8_t *x, int32_t *y) {
    for (int32_t u = 0; u < t->cols / t->unit_cols; u++)
        for (int32_t r = 0; r < t->src_rows; r++) {
            int32_t s = 0;
            for (int32_t c = u * t->unit_cols; c < (u + 1) * t->unit_cols; c++)
                s += t->w[(size_t)r * (size_t)t->cols + (size_t)c] * x[c];
            y[u * t->src_rows + r] = s;
        }
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
    rsr_plan p;
    rsr_analyse(t, k, &p);
    int8_t *x = xmalloc((size_t)t->cols);
    int32_t *want = xmalloc(sizeof(int32_t) * (size_t)t->rows), *got = xmalloc(sizeof(int32_t) * (size_t)t->rows);
    for (int kind = 0; kind < 5; kind++) {
        fill_vector(x, t->cols, kind);
        naive(t, x, want);
        rsr_reference_matvec(&p, x, got);
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
    rsr_plan_free(&p);
}

typedef void (*kernel_fn)(const uint8_t *, const int8_t *, int32_t *, int32_t, int32_t);
typedef void (*batch_fn)(const uint8_t *, const int8_t *, int32_t, int32_t *, int32_t, int32_t, int32_t, int32_t);

/* Emits both kernel forms for t into one C file, compiles it as a shared object, loads it. */
static void check_emitted(const ternary_matrix *t, int k, const char *dir, int serial) {
    static const target tgt = {.name = "test", .cflags = "-O1", .unroll_budget = 1 << 20};
    rsr_plan p;
    rsr_analyse(t, k, &p);
    char *c_path = xasprintf("%s/k%d.c", dir, serial), *so_path = xasprintf("%s/k%d.so", dir, serial);
    char *blob_path = xasprintf("%s/k%d.bin", dir, serial);
    blob_writer blob;
    blob_open(&blob, blob_path);
    kernel forms[2];
    kernel_lower(&forms[0], t, &p, &tgt, PRINTER_C, STRAT_RSR_UNROLLED, 0, 0);
    kernel_lower(&forms[1], t, &p, &tgt, PRINTER_C, STRAT_RSR_LOOP, 1, 0);
    kernel_write_data(&forms[1], &blob);
    blob_close(&blob);
    FILE *f = fopen(c_path, "w");
    fputs("#include <stdint.h>\n", f);
    for (int i = 0; i < 2; i++) {
        emit_c_kernel(f, &forms[i]);
        fprintf(f, "void *get_%d(void) { return (void *)%s; }\n", i, forms[i].symbol);
    }
    fclose(f);
    const char *cc = getenv("RSRC_CC") ? getenv("RSRC_CC") : "cc";
    char *cmd = xasprintf("%s -std=c11 -O1 -shared -fPIC -o %s %s", cc, so_path, c_path);
    EXPECT(system(cmd) == 0, "compiling %s", c_path);
    void *h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    EXPECT(h != NULL, "dlopen %s: %s", so_path, dlerror());
    if (h) {
        FILE *bf = fopen(blob_path, "rb");
        size_t size = (size_t)kernel_data_size(&forms[1]);
        uint8_t *data = xmalloc(size + 64);
        EXPECT(fread(data, 1, size, bf) == size, "reading %s", blob_path);
        fclose(bf);
        int8_t *x = xmalloc((size_t)t->cols);
        int32_t *want = xmalloc(sizeof(int32_t) * (size_t)t->rows), *got = xmalloc(sizeof(int32_t) * (size_t)t->rows);
        for (int i = 0; i < 2; i++) {
            void *(*get)(void) = (void *(*)(void))dlsym(h, i ? "get_1" : "get_0");
            kernel_fn fn = (kernel_fn)get();
            for (int kind = 0; kind < 5; kind++) {
                fill_vector(x, t->cols, kind);
                naive(t, x, want);
                memset(got, 0x5a, sizeof(int32_t) * (size_t)t->rows);
                /* in two halves, as threads would call it */
                fn(data, x, got, 0, p.num_blocks / 2);
                fn(data, x, got, p.num_blocks / 2, p.num_blocks);
                EXPECT(memcmp(want, got, sizeof(int32_t) * (size_t)t->rows) == 0, "%s %dx%d k=%d %s vector %d",
                       forms[i].strategy, t->rows, t->cols, k, t->binary ? "binary" : "ternary", kind);
            }
        }
        free(data), free(x), free(want), free(got);
        dlclose(h);
    }
    for (int i = 0; i < 2; i++) kernel_free(&forms[i]);
    unlink(c_path), unlink(so_path), unlink(blob_path);
    free(c_path), free(so_path), free(blob_path), free(cmd);
    rsr_plan_free(&p);
}

/* An i2 kernel for the given ISA, compiled with that ISA's flags, against the naive product. */
static void check_i2(const ternary_matrix *t, enum dot_isa isa, const char *dir, int serial) {
    static char *avx2[] = {"avx2"}, *avxvnni[] = {"avx2", "avxvnni"}, *bw[] = {"avx512f", "avx512bw"},
                *vnni[] = {"avx512f", "avx512bw", "avx512vnni"};
    static const struct {
        char **features;
        int n;
        const char *cflags;
    } isas[] = {
        [DOT_SCALAR] = {NULL, 0, "-O2"},
        [DOT_AVX2] = {avx2, 1, "-O2 -mavx2"},
        [DOT_AVXVNNI] = {avxvnni, 2, "-O2 -mavx2 -mavxvnni"},
        [DOT_AVX512BW] = {bw, 2, "-O2 -mavx512f -mavx512bw"},
        [DOT_AVX512VNNI] = {vnni, 3, "-O2 -mavx512f -mavx512bw -mavx512vnni"},
    };
    target tgt = {.name = "test", .kind = TK_CPU, .features = isas[isa].features, .nfeatures = isas[isa].n};
    EXPECT(target_dot_isa(&tgt) == isa, "target_dot_isa %d", isa);
    char *c_path = xasprintf("%s/i%d.c", dir, serial), *so_path = xasprintf("%s/i%d.so", dir, serial);
    char *blob_path = xasprintf("%s/i%d.bin", dir, serial);
    blob_writer blob;
    blob_open(&blob, blob_path);
    kernel kn;
    kernel_lower(&kn, t, NULL, &tgt, PRINTER_C, STRAT_I2, 0, 0);
    /* an expanded matrix's i2 sums per unit of its source rows */
    const int32_t rows = t->unit_cols ? t->src_rows * (t->cols / t->unit_cols) : t->rows;
    void (*expect)(const ternary_matrix *, const int8_t *, int32_t *) = t->unit_cols ? naive_units : naive;
    kernel_write_data(&kn, &blob);
    blob_close(&blob);
    FILE *f = fopen(c_path, "w");
    fputs("#include <stddef.h>\n#include <stdint.h>\n", f);
    emit_c_dot_helpers(f, isa);
    emit_c_kernel(f, &kn);
    fprintf(f, "void *get_0(void) { return (void *)%s; }\n", kn.symbol);
    if (kn.batch_symbol) fprintf(f, "void *get_b(void) { return (void *)%s; }\n", kn.batch_symbol);
    fclose(f);
    const char *cc = getenv("RSRC_CC") ? getenv("RSRC_CC") : "cc";
    char *cmd = xasprintf("%s -std=c11 %s -shared -fPIC -o %s %s", cc, isas[isa].cflags, so_path, c_path);
    EXPECT(system(cmd) == 0, "compiling %s", c_path);
    void *h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    EXPECT(h != NULL, "dlopen %s: %s", so_path, dlerror());
    if (h) {
        size_t size = (size_t)kernel_data_size(&kn);
        uint8_t *data = xmalloc(size);
        FILE *bf = fopen(blob_path, "rb");
        EXPECT(fread(data, 1, size, bf) == size, "reading %s", blob_path);
        fclose(bf);
        size_t padded = ((size_t)t->cols + RSR_X_PAD - 1) / RSR_X_PAD * RSR_X_PAD;
        int8_t *x = xcalloc(padded, 1);
        int32_t *want = xmalloc(sizeof(int32_t) * (size_t)rows), *got = xmalloc(sizeof(int32_t) * (size_t)rows);
        kernel_fn fn = (kernel_fn)((void *(*)(void))dlsym(h, "get_0"))();
        for (int kind = 0; kind < 5; kind++) {
            fill_vector(x, t->cols, kind);
            expect(t, x, want);
            memset(got, 0x5a, sizeof(int32_t) * (size_t)rows);
            fn(data, x, got, 0, kn.num_blocks / 2);
            fn(data, x, got, kn.num_blocks / 2, kn.num_blocks);
            EXPECT(memcmp(want, got, sizeof(int32_t) * (size_t)rows) == 0, "%s (%s) %dx%d %s vector %d", kn.strategy,
                   dot_isa_names[isa], t->rows, t->cols, t->binary ? "binary" : "ternary", kind);
        }
        if (!kn.batch_symbol) goto done;
        /* the batched kernel: two full tiles of tokens and one more (the extreme vectors and
         * random ones), rows of y wider than the matrix (or than its units' sums), the blocks in
         * two calls as two threads would take them */
        batch_fn bf_ = (batch_fn)((void *(*)(void))dlsym(h, "get_b"))();
        int32_t ntok = 2 * kn.batch_tile + 1, ys = rows + 3;
        int8_t *xb = xcalloc(padded * (size_t)ntok, 1);
        int32_t *wantb = xmalloc(sizeof(int32_t) * (size_t)ys * (size_t)ntok),
                *gotb = xmalloc(sizeof(int32_t) * (size_t)ys * (size_t)ntok);
        memset(wantb, 0x5a, sizeof(int32_t) * (size_t)ys * (size_t)ntok);
        memset(gotb, 0x5a, sizeof(int32_t) * (size_t)ys * (size_t)ntok);
        for (int k = 0; k < ntok; k++) {
            fill_vector(xb + padded * (size_t)k, t->cols, k);
            expect(t, xb + padded * (size_t)k, wantb + (size_t)ys * (size_t)k);
        }
        bf_(data, xb, (int32_t)padded, gotb, ys, ntok, 0, kn.num_blocks / 2);
        bf_(data, xb, (int32_t)padded, gotb, ys, ntok, kn.num_blocks / 2, kn.num_blocks);
        EXPECT(memcmp(wantb, gotb, sizeof(int32_t) * (size_t)ys * (size_t)ntok) == 0, "%s batched (%s) %dx%d %s",
               kn.strategy, dot_isa_names[isa], t->rows, t->cols, t->binary ? "binary" : "ternary");
        free(xb), free(wantb), free(gotb);
    done:
        free(data), free(x), free(want), free(got);
        dlclose(h);
    }
    kernel_free(&kn);
    unlink(c_path), unlink(so_path), unlink(blob_path);
    free(c_path), free(so_path), free(blob_path), free(cmd);
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

    char dir[] = "/tmp/rsrc-unit.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    int serial = 0;
    for (size_t s = 0; s < sizeof grouped / sizeof *grouped; s++)
        for (int k = 1; k <= RSR_MAX_K; k += 3) { /* k = 1, 4, 7 */
            ternary_matrix t = random_grouped(grouped[s][0], grouped[s][1], grouped[s][2], true);
            check_emitted(&t, k, dir, serial++);
            ternary_matrix_free(&t);
        }
    static const int32_t emit_shapes[][2] = {{4, 8}, {7, 5}, {13, 33}, {64, 100}};
    for (size_t s = 0; s < sizeof emit_shapes / sizeof *emit_shapes; s++)
        for (int k = 1; k <= RSR_MAX_K; k += (k < 4 ? 1 : 4)) /* k = 1, 2, 3, 4, 8 */
            for (int binary = 0; binary < 2; binary++) {
                ternary_matrix t = random_matrix(emit_shapes[s][0], emit_shapes[s][1], binary, 30);
                check_emitted(&t, k, dir, serial++);
                ternary_matrix_free(&t);
            }
    /* i2 on every dot-product ISA this CPU runs; shapes cross the group and block boundaries */
    static const int32_t i2_shapes[][2] = {{1, 1}, {4, 8}, {7, 5}, {13, 300}, {64, 256}, {9, 1000}};
    for (int isa = DOT_SCALAR; isa <= DOT_AVX512VNNI; isa++) {
        if (!cpu_has((enum dot_isa)isa)) {
            printf("skipping i2 %s: this CPU lacks it\n", dot_isa_names[isa]);
            continue;
        }
        for (size_t s = 0; s < sizeof i2_shapes / sizeof *i2_shapes; s++)
            for (int binary = 0; binary < 2; binary++) {
                ternary_matrix t = random_matrix(i2_shapes[s][0], i2_shapes[s][1], binary, 40);
                check_i2(&t, (enum dot_isa)isa, dir, serial++);
                ternary_matrix_free(&t);
            }
        /* summed per unit of 32 or 64 columns, with +2 weights, where the ISA's fields fit a unit */
        static const int32_t unit_shapes[][3] = {{4, 128, 32}, {7, 256, 32}, {13, 128, 64}, {8, 256, 64}};
        for (size_t s = 0; s < sizeof unit_shapes / sizeof *unit_shapes; s++) {
            ternary_matrix t = random_grouped(unit_shapes[s][0], unit_shapes[s][1], unit_shapes[s][2], true);
            int V = dot_isa_vector_bytes((enum dot_isa)isa);
            if (t.unit_cols % V == 0 && 4 * V % t.unit_cols == 0 && t.cols % (4 * V) == 0)
                check_i2(&t, (enum dot_isa)isa, dir, serial++);
            ternary_matrix_free(&t);
        }
    }
    rmdir(dir);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
