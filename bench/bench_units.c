/*
 * bench_units — the runtime's own kernels for group-scaled codes (runtime/cpu/units_generic.h: AVX2's
 * rt_units_rows8_avx2, or with --avx512 AVX-512 VNNI's rt_units_rows16_vnni on blocks of 16 rows)
 * by the number of tokens a call: what a unit of 8 (16) rows × 32 columns
 * costs a token when the codes are in cache (a matrix of --rows × --cols, 128 KiB of 2-bit codes by
 * default) and when they stream from memory (--rows 131072: 64 MiB). A mixture of experts' prompt
 * gives each expert a few tokens (docs/moe.md), a decode one, a dense prompt hundreds: the rows show
 * where the kernel's time goes for each. One thread; nanoseconds a unit and token, the median of --rounds.
 *
 * --groups G: units of 16·G columns (2: Q8_0's blocks of 32, the default; 16: Q8_K's 256, TQ2_0's).
 *
 * --base3: the codes in the base-3 layout (rsr_artifact.h), decoded by the kernel; with --convert,
 * converted a block at a time to the 2-bit layout first (the family's rt_b3_to_i2_rows*, as
 * forward.c's fused_rows does for a step of RT_B3_CONVERT_TOKENS tokens or more).
 *
 * Usage: bench_units [--rows R] [--cols C] [--groups G] [--rounds N] [--base3 [--convert]] [--avx512]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "family.h"
#include "rsr_artifact.h"

#if defined(__x86_64__)
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int32_t rows = 256, cols = 2048, rounds = 7, base3 = 0, groups = 2, wide = 0, convert = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cols") && i + 1 < argc)
            cols = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--groups") && i + 1 < argc)
            groups = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--base3"))
            base3 = 1;
        else if (!strcmp(argv[i], "--convert"))
            convert = 1;
        else if (!strcmp(argv[i], "--avx512"))
            wide = 1;
        else {
            fprintf(stderr, "usage: bench_units [--rows R] [--cols C] [--groups G] [--rounds N] [--base3 [--convert]] "
                            "[--avx512]\n");
            return 2;
        }
    }
    const int32_t L = wide ? 16 : 8;
    if (rows < L || rows % L || cols < 32 * RSR_B3_RUN || cols % 32 || groups < 1 || groups > 64 ||
        cols % (16 * groups) || rounds < 1 || (base3 && groups != 2) || (convert && !base3)) {
        fprintf(stderr, "bench_units: --rows a multiple of 8 (16 with --avx512), --cols of 32 and of 16·G (at least "
                        "160), G to 64; base-3 for G = 2, --convert with --base3\n");
        return 2;
    }
    const int32_t U = 16 * groups, units = cols / U, blocks = rows / L, T = 8;
    const size_t i2_block = (size_t)units * (size_t)groups * 4 * (size_t)L;
    const size_t block = base3 ? (size_t)rsr_b3_block_bytes(L, units) : i2_block;
    const int32_t xrow = rsr_x_row(cols, U);
    if (wide ? !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vnni")
             : !__builtin_cpu_supports("avx2")) {
        fprintf(stderr, "bench_units: this CPU has no %s\n", wide ? "AVX-512 VNNI" : "AVX2");
        return 77;
    }
    void (*kernel)(const rt_units_call *) = wide ? rt_units_rows16_vnni : rt_units_rows8_avx2;
    void (*to_i2)(const uint8_t *, int32_t, uint8_t *) = wide ? rt_b3_to_i2_rows16_vnni : rt_b3_to_i2_rows8_avx2;
    uint8_t *i2 = malloc(i2_block);
    uint8_t *data = malloc(block * (size_t)blocks);
    float *gs = malloc(sizeof(float) * (size_t)rows * (size_t)units), *y = malloc(sizeof(float) * (size_t)rows * T);
    int8_t *x = aligned_alloc(64, (size_t)xrow * T);
    if (!data || !gs || !y || !x || !i2) {
        fprintf(stderr, "bench_units: out of memory\n");
        return 1;
    }
    srand(1);
    for (size_t i = 0; i < block * (size_t)blocks; i++) data[i] = (uint8_t)(base3 ? rand() % 256 : rand());
    memset(gs, 0x3c, sizeof(float) * (size_t)rows * (size_t)units); /* f16 scales near 1 (0x3c3c) */
    memset(x, 0, (size_t)xrow * T);
    for (int t = 0; t < T; t++) {
        int8_t *xt = x + (size_t)t * (size_t)xrow;
        for (int32_t c = 0; c < cols; c++) xt[c] = (int8_t)(rand() % 255 - 127);
        rsr_x_put_sums(xt, cols, U);
        float *d = (float *)(void *)(xt + rsr_x_scales_at(cols, U));
        for (int32_t u = 0; u < units; u++) d[u] = 0.01f;
    }
    printf("%s, %s codes, %d x %d in units of %d columns (%.0f KiB), one thread, median of %d\n",
           wide ? "rt_units_rows16_vnni" : "rt_units_rows8_avx2",
           base3 ? convert ? "base-3 (converted a block at a time)" : "base-3" : "2-bit", rows, cols, U,
           (double)(block * (size_t)blocks) / 1024, rounds);
    printf("tokens  ns/32 columns/token  ns/32 columns (all tokens)\n");
    const double work = 4e6; /* unit-tokens a round */
    for (int n = 1; n <= T; n++) {
        rt_units_call c = {.data = data,
                           .gs = gs,
                           .rows = rows,
                           .units = units,
                           .groups = groups,
                           .per = groups == 2 ? 4 : 1,
                           .f16 = 1,
                           /* f16 scales a 128 columns, or a unit */ .x = x,
                           .x_stride = xrow,
                           .sums_at = rsr_x_sums_at(cols),
                           .scales_at = rsr_x_scales_at(cols, U),
                           .y = y,
                           .y_stride = (size_t)rows,
                           .ntok = n,
                           .b0 = 0,
                           .b1 = blocks,
                           .base3 = base3};
        const int reps = (int)(work / ((double)(cols / 32) * blocks * n)) + 1;
        double t[64];
        for (int r = 0; r < rounds && r < 64; r++) {
            const double t0 = now();
            for (int i = 0; i < reps; i++)
                if (!convert)
                    kernel(&c);
                else /* forward.c's fused_rows, a block at a time */
                    for (int32_t b = 0; b < blocks; b++) {
                        rt_units_call cb = c;
                        to_i2(data + (size_t)b * block, units, i2);
                        cb.data = i2, cb.base3 = 0, cb.b0 = 0, cb.b1 = 1;
                        cb.gs = (const uint16_t *)gs + (size_t)b * L, cb.y = y + (size_t)b * L;
                        kernel(&cb);
                    }
            t[r] = (now() - t0) / ((double)reps * (cols / 32) * blocks * n) * 1e9;
        }
        qsort(t, (size_t)(rounds < 64 ? rounds : 64), sizeof t[0], cmp_double);
        const double med = t[(rounds < 64 ? rounds : 64) / 2];
        printf("%6d  %13.3f  %10.3f\n", n, med, med * n);
    }
    free(data), free(gs), free(y), free(x), free(i2);
    return 0;
}
#else
int main(void) {
    fprintf(stderr, "bench_units: x86-64 only\n");
    return 77;
}
#endif
