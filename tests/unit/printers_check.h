/*
 * printers_check.h — one compiled kernel against the naive product, bit for bit: the decode
 * kernel (called in two halves, as two threads would) and the batched kernel for token counts
 * that reach every path of the tiles and of the RSR lanes. Shared by test_printers (this machine's
 * targets) and printers_runner (another architecture's, run under qemu-user), so both check
 * exactly the same things. Needs expect.h and rsr_artifact.h.
 */
#ifndef RSR_PRINTERS_CHECK_H
#define RSR_PRINTERS_CHECK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the lanes variant's batched kernel takes steps of this many tokens and more as RSR lanes */
#define LANES_MIN 40
/* tokens per pass of the lanes form (the compiler's RSR_LANES: test_printers asserts they agree) */
#define CHECK_LANES 64

/* A matrix as the checks see it: row-major weights in {-1, 0, 1} (and 2: i2 per unit). With
 * unit_rows > 0, the i2 form per unit of columns, whose sums go by blocks of unit_block rows
 * (rsr_artifact_matrix.sums_block): row u·unit_rows + r (row r's weights in unit u's columns) is
 * written at y[(r / B)·units·B + u·B + r % B] (B = unit_block) from the call's first block. */
typedef struct check_matrix {
    const int8_t *w;
    int32_t rows, cols;
    int32_t unit_rows, unit_block;
} check_matrix;

/* The int32 sums a kernel of tm writes per token (a last block's rows past the matrix included). */
static int32_t out_rows(const check_matrix *tm) {
    if (!tm->unit_rows) return tm->rows;
    const int32_t B = tm->unit_block, units = tm->rows / tm->unit_rows;
    return (tm->unit_rows + B - 1) / B * units * B;
}
/* The columns of a unit (0: the form has none), whose Σx the kernel reads past x's padding */
static int32_t unit_cols(const check_matrix *tm) { return tm->unit_rows ? tm->cols / (tm->rows / tm->unit_rows) : 0; }
/* Where the sums of block b begin in what a call from block 0 writes. */
static int32_t sums_from(const check_matrix *tm, int32_t b) {
    return tm->unit_rows ? b * (tm->rows / tm->unit_rows) * tm->unit_block : 0;
}

static uint64_t rng = 0x2545f4914f6cdd1du;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* kind 0: all 127, 1: all −128, else random; then each unit's Σx past the padding (rsr_x_put_sums) */
static void fill(int8_t *x, int32_t cols, int32_t xs, int kind, int32_t unit_cols) {
    memset(x, 0, (size_t)xs);
    for (int32_t c = 0; c < cols; c++) x[c] = kind == 0 ? 127 : kind == 1 ? -128 : (int8_t)next();
    rsr_x_put_sums(x, cols, unit_cols);
}

/* y as the kernel writes it; what it leaves alone stays 0x5a5a5a5a, as the checks fill got */
static void naive(const check_matrix *t, const int8_t *x, int32_t *y) {
    memset(y, 0x5a, sizeof(int32_t) * (size_t)out_rows(t));
    for (int32_t r = 0; r < t->rows; r++) {
        int32_t s = 0;
        for (int32_t c = 0; c < t->cols; c++) s += t->w[(size_t)r * (size_t)t->cols + (size_t)c] * x[c];
        const int32_t B = t->unit_block, u = t->unit_rows ? r / t->unit_rows : 0,
                      rr = t->unit_rows ? r % t->unit_rows : r;
        y[t->unit_rows ? rr / B * (t->rows / t->unit_rows) * B + u * B + rr % B : r] = s;
    }
}

static void *check_alloc(size_t n) {
    void *p = malloc(n);
    if (!p) abort();
    return p;
}

static void check_kernel(const rsr_artifact_matrix *am, const uint8_t *blob, const check_matrix *tm, const char *what) {
    const int32_t xs = rsr_x_row(tm->cols, unit_cols(tm));
    int8_t *x = check_alloc((size_t)xs * RSR_BATCH_MAX);
    const int32_t rows = out_rows(tm);
    int32_t *want = check_alloc(sizeof(int32_t) * (size_t)rows * RSR_BATCH_MAX);
    int32_t *got = check_alloc(sizeof(int32_t) * (size_t)rows * RSR_BATCH_MAX);
    const uint8_t *data = blob + am->data;
    for (int kind = 0; kind < 4; kind++) {
        fill(x, tm->cols, xs, kind, unit_cols(tm));
        naive(tm, x, want);
        memset(got, 0x5a, sizeof(int32_t) * (size_t)rows);
        am->kernel(data, x, got, 0, am->num_blocks / 2);
        am->kernel(data, x, got + sums_from(tm, am->num_blocks / 2), am->num_blocks / 2, am->num_blocks);
        EXPECT(!memcmp(want, got, sizeof(int32_t) * (size_t)rows), "%s: decode, vector %d", what, kind);
    }
    if (!am->kernel_batch) goto out;
    /* 1 and 3: the tiles (below LANES_MIN); 47 and 64: the lanes form's partial and full pass;
     * 130: two passes and 2 tokens left to the tiles; 169: three passes in one group, the last of
     * 41 tokens; RSR_BATCH_MAX: every pass of a step (two groups on the 2900-column matrix) */
    static const int32_t ntoks[] = {
        1, 3, LANES_MIN + 7, CHECK_LANES, 2 * CHECK_LANES + 2, 2 * CHECK_LANES + LANES_MIN + 1, RSR_BATCH_MAX};
    for (size_t n = 0; n < sizeof ntoks / sizeof *ntoks; n++) {
        int32_t ntok = ntoks[n];
        for (int32_t t = 0; t < ntok; t++) {
            fill(x + (size_t)t * (size_t)xs, tm->cols, xs, t % 4, unit_cols(tm));
            naive(tm, x + (size_t)t * (size_t)xs, want + (size_t)t * (size_t)rows);
        }
        memset(got, 0x5a, sizeof(int32_t) * (size_t)rows * (size_t)ntok);
        am->kernel_batch(data, x, xs, got, rows, ntok, 0, am->num_blocks / 2);
        am->kernel_batch(data, x, xs, got + sums_from(tm, am->num_blocks / 2), rows, ntok, am->num_blocks / 2,
                         am->num_blocks);
        EXPECT(!memcmp(want, got, sizeof(int32_t) * (size_t)rows * (size_t)ntok), "%s: batched, %d tokens", what, ntok);
    }
out:
    free(x), free(want), free(got);
}

#endif
