/*
 * test_fold — PrismML's Hadamard fold at run time (runtime/cpu/fold.c) against its definition:
 * H_B[r][c] = ±1/√B by the parity of popcount(r & c) on each block of B entries, in double. The
 * head's input is rotated after its signs (x <- H_B (s ⊙ x)), an embedding row before them
 * (h <- s ⊙ (H_B h)). Blocks of 2 to 4096 (Bonsai 2's 27B: 1024; its 9B sibling: 4096), widths of
 * one to three blocks; run under every family (ctest runs it with RSR_CPU=portable and avx2 too).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "fold.h"

/* x [n] by the definition, per block of B, in double */
static void reference(const double *x, int32_t n, int32_t B, double *out) {
    for (int32_t b0 = 0; b0 < n; b0 += B)
        for (int32_t r = 0; r < B; r++) {
            double s = 0;
            for (int32_t c = 0; c < B; c++) s += (__builtin_popcount((unsigned)(r & c)) & 1 ? -1 : 1) * x[b0 + c];
            out[b0 + r] = s / sqrt((double)B);
        }
}

static void check(int32_t B, int32_t blocks, unsigned seed) {
    const int32_t n = B * blocks;
    float *blob = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)n);
    double *in = malloc(sizeof(double) * (size_t)n), *want = malloc(sizeof(double) * (size_t)n);
    srand(seed);
    for (int32_t i = 0; i < n; i++) blob[i] = rand() & 1 ? 1.0f : -1.0f, x[i] = (float)(rand() % 2001 - 1000) / 1000;
    rsr_artifact a = {.hidden = n, .fold_block = B, .lm_head_signs = 0, .embed_signs = 0};
    for (int which = 0; which < 2; which++) {
        float y[n];
        memcpy(y, x, sizeof y);
        if (which == 0) { /* the head: signs, then the rotation */
            for (int32_t i = 0; i < n; i++) in[i] = (double)blob[i] * x[i];
            reference(in, n, B, want);
            rt_fold_head(&a, (const uint8_t *)blob, y);
        } else { /* an embedding row: the rotation, then the signs */
            for (int32_t i = 0; i < n; i++) in[i] = x[i];
            reference(in, n, B, want);
            for (int32_t i = 0; i < n; i++) want[i] *= blob[i];
            rt_fold_embed(&a, (const uint8_t *)blob, y);
        }
        double worst = 0; /* fp32 butterflies: log2(B) roundings of sums of |x| ≤ 1 a term */
        for (int32_t i = 0; i < n; i++) worst = fmax(worst, fabs(y[i] - want[i]));
        EXPECT(worst <= 1e-5 * log2((double)B) * sqrt((double)B) + 1e-6, "%s, blocks of %d, %d of them: max |error| %g",
               which ? "embedding" : "head", B, blocks, worst);
    }
    /* a sign flipped changes the head's input (the signs are read) */
    float y[n], z[n];
    memcpy(y, x, sizeof y), memcpy(z, x, sizeof z);
    rt_fold_head(&a, (const uint8_t *)blob, y);
    blob[n - 1] = -blob[n - 1];
    rt_fold_head(&a, (const uint8_t *)blob, z);
    EXPECT(memcmp(y, z, sizeof y) != 0, "blocks of %d: a flipped sign changed nothing", B);
    free(blob), free(x), free(in), free(want);
}

int main(void) {
    const int32_t sizes[] = {2, 8, 128, 1024, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (int32_t blocks = 1; blocks <= (sizes[i] > 1024 ? 2 : 3); blocks++)
            check(sizes[i], blocks, 7u * (unsigned)i + (unsigned)blocks);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
