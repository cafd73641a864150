/*
 * bench_base3 — whether a PTQ1_0 matrix should keep base-3 codes in the artifact (1.6 bits a weight)
 * or become 2-bit codes at compile time (2 bits), measured on the kernels' inner loops
 * (docs/qwen35.md, "PTQ1_0's codes"). AVX-512 VNNI only; a matrix of --rows × 5120, group scales
 * per unit of 32 columns as the fused kernels apply them, one token (decode) or a tile of 8
 * (prefill), the two forms alternating in every round, medians printed with their ratio.
 *
 *   2-bit (RSR_UNITS_ROWS16, what rsrc ships): blocks of 16 rows, a unit's 2 groups of 64 bytes,
 *     4 codes a byte: a shift and a mask a field, vpdpbusd into the rows' int32 lanes.
 *   base-3 (a candidate): blocks of 80 rows, a unit's 8 groups of 64 bytes, each a zmm of 32 u16
 *     holding 10 trits w = ceil(v·65536/59049) (v the trits' base-3 number, the first most
 *     significant; checked below for every v): trit n is ((w·3ⁿ mod 2¹⁶)·3) >> 16, one vpmulhuw
 *     after w·3ⁿ (vpmullw, or adds from the trit before); trits 2p and 2p+1 packed (vpackuswb)
 *     are the codes of rows 16p..16p+15, 4 columns, for vpdpbusd.
 *
 * Usage: bench_base3 [--rows R] [--rounds N] [--tokens 1|8]   (threads: OMP_NUM_THREADS)
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
enum { COLS = 5120, UNITS = COLS / 32 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Rows of blocks [b0, b1) of the 2-bit layout for NT tokens (x[j]: token j's int8 codes), a token's
 * sums in 4/NT chains below 4 tokens as the product's kernel (runtime/cpu/family_avx512.c) */
VNNI __attribute__((always_inline)) static inline void
two_bit(const uint8_t *w, const int8_t *const *x, const float *xd, float *y, const int NT, int b0, int b1) {
    const int C = NT >= 4 ? 1 : 4 / NT;
    for (int b = b0; b < b1; b++) {
        const uint8_t *wu = w + (size_t)b * 16 * COLS / 4;
        __m512 o[8];
        for (int j = 0; j < NT; j++) o[j] = _mm512_setzero_ps();
        for (int u = 0; u < UNITS; u++, wu += 128) {
            __m512i a[8][4];
            for (int j = 0; j < NT; j++)
                for (int i = 0; i < C; i++) a[j][i] = _mm512_setzero_si512();
            for (int g = 0; g < 2; g++) {
                const __m512i v = _mm512_loadu_si512(wu + 64 * g);
                for (int f = 0; f < 4; f++) {
                    const __m512i k = _mm512_and_si512(_mm512_srli_epi16(v, 2 * f), _mm512_set1_epi8(3));
                    for (int j = 0; j < NT; j++) {
                        int32_t q;
                        memcpy(&q, x[j] + 32 * u + 16 * g + 4 * f, 4);
                        a[j][f % C] = _mm512_dpbusd_epi32(a[j][f % C], k, _mm512_set1_epi32(q));
                    }
                }
            }
            for (int j = 0; j < NT; j++) {
                for (int i = 1; i < C; i++) a[j][0] = _mm512_add_epi32(a[j][0], a[j][i]);
                o[j] = _mm512_add_ps(o[j], _mm512_mul_ps(_mm512_cvtepi32_ps(a[j][0]), _mm512_set1_ps(xd[u])));
            }
        }
        for (int j = 0; j < NT; j++) _mm512_storeu_ps(y + (size_t)j * 65536 * 8 + 16 * (size_t)b, o[j]);
    }
}
VNNI static void two_bit_1(const uint8_t *w, const int8_t *const *x, const float *xd, float *y, int b0, int b1) {
    two_bit(w, x, xd, y, 1, b0, b1);
}
VNNI static void two_bit_8(const uint8_t *w, const int8_t *const *x, const float *xd, float *y, int b0, int b1) {
    two_bit(w, x, xd, y, 8, b0, b1);
}

/* The same for the base-3 layout's blocks of 80 rows, tokens in tiles of 2 (5 accumulators and 5
 * sums a token, the decoded codes and x: 28 of 32 zmm), each tile decoding the codes anew */
VNNI __attribute__((always_inline)) static inline void base3(const uint8_t *w, const int8_t *const *x, const float *xd,
                                                             float *y, const int NT, int b0, int b1) {
    const __m512i three = _mm512_set1_epi16(3);
    for (int b = b0; b < b1; b++)
        for (int j0 = 0; j0 < NT; j0 += 2) {
            const int T = NT - j0 < 2 ? NT - j0 : 2;
            const uint8_t *wu = w + (size_t)b * 80 * COLS / 5;
            __m512 o[2][5];
            for (int j = 0; j < T; j++)
                for (int p = 0; p < 5; p++) o[j][p] = _mm512_setzero_ps();
            for (int u = 0; u < UNITS; u++, wu += 512) {
                __m512i a[2][5];
                for (int j = 0; j < T; j++)
                    for (int p = 0; p < 5; p++) a[j][p] = _mm512_setzero_si512();
                for (int g = 0; g < 8; g++) {
                    __m512i t = _mm512_loadu_si512(wu + 64 * g), xq[2];
                    for (int j = 0; j < T; j++) {
                        int32_t q;
                        memcpy(&q, x[j0 + j] + 32 * u + 4 * g, 4);
                        xq[j] = _mm512_set1_epi32(q);
                    }
                    for (int p = 0; p < 5; p++) {
                        const __m512i d0 = _mm512_mulhi_epu16(t, three);
                        t = _mm512_add_epi16(t, _mm512_add_epi16(t, t));
                        const __m512i d1 = _mm512_mulhi_epu16(t, three);
                        t = _mm512_add_epi16(t, _mm512_add_epi16(t, t));
                        const __m512i k = _mm512_packus_epi16(d0, d1);
                        for (int j = 0; j < T; j++) a[j][p] = _mm512_dpbusd_epi32(a[j][p], k, xq[j]);
                    }
                }
                for (int j = 0; j < T; j++)
                    for (int p = 0; p < 5; p++)
                        o[j][p] =
                            _mm512_add_ps(o[j][p], _mm512_mul_ps(_mm512_cvtepi32_ps(a[j][p]), _mm512_set1_ps(xd[u])));
            }
            for (int j = 0; j < T; j++)
                for (int p = 0; p < 5; p++)
                    _mm512_storeu_ps(y + (size_t)(j0 + j) * 65536 * 8 + 80 * (size_t)b + 16 * p, o[j][p]);
        }
}

VNNI static void base3_1(const uint8_t *w, const int8_t *const *x, const float *xd, float *y, int b0, int b1) {
    base3(w, x, xd, y, 1, b0, b1);
}
VNNI static void base3_8(const uint8_t *w, const int8_t *const *x, const float *xd, float *y, int b0, int b1) {
    base3(w, x, xd, y, 8, b0, b1);
}

/* Every 10-trit number's encoding decodes to its trits by the rule above (the kernel's arithmetic) */
static int check_rule(void) {
    for (uint32_t v = 0; v < 59049; v++) {
        uint32_t w = (uint32_t)(((uint64_t)v * 65536 + 59048) / 59049), t = w, p = 59049;
        for (int n = 0; n < 10; n++) {
            p /= 3;
            if ((t * 3 & 0x3ffffu) >> 16 != v / p % 3) return 0;
            t = t * 3 & 0xffffu;
        }
    }
    return 1;
}

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int rows = 80 * 1024, rounds = 7, NT = 1;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--rows"))
            rows = atoi(argv[i + 1]) / 80 * 80;
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens"))
            NT = atoi(argv[i + 1]) == 8 ? 8 : 1;
    if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512bw")) {
        fprintf(stderr, "bench_base3: this CPU has no AVX-512 VNNI\n");
        return 77;
    }
    if (rows < 80 || rounds < 1 || rows > 65536 * 8 || !check_rule()) return 1;
    const size_t n2 = (size_t)rows * COLS / 4, n3 = (size_t)rows * COLS / 5;
    uint8_t *w2 = aligned_alloc(64, n2), *w3 = aligned_alloc(64, n3);
    int8_t *xs = aligned_alloc(64, (size_t)8 * COLS);
    float *y = aligned_alloc(64, sizeof(float) * 65536 * 8 * 8), xd[UNITS];
    if (!w2 || !w3 || !xs || !y) return 1;
    srand(1);
    for (size_t i = 0; i < n2; i++) w2[i] = (uint8_t)(rand() % 3 * 0x55u);
    for (size_t i = 0; i < n3; i++) w3[i] = (uint8_t)rand();
    for (int i = 0; i < 8 * COLS; i++) xs[i] = (int8_t)(rand() % 255 - 127);
    for (int u = 0; u < UNITS; u++) xd[u] = 1.0f / 127;
    const int8_t *x[8];
    for (int j = 0; j < 8; j++) x[j] = xs + (size_t)j * COLS;
    double *t2 = calloc((size_t)rounds, sizeof *t2), *t3 = calloc((size_t)rounds, sizeof *t3);
    for (int r = 0; r < rounds; r++)
        for (int form = 0; form < 2; form++) {
            const double t = now();
#pragma omp parallel
            {
                const int n = omp_get_num_threads(), i = omp_get_thread_num(), nb = rows / (form ? 80 : 16);
                void (*k)(const uint8_t *, const int8_t *const *, const float *, float *, int, int) =
                    form ? (NT == 8 ? base3_8 : base3_1) : (NT == 8 ? two_bit_8 : two_bit_1);
                k(form ? w3 : w2, x, xd, y, nb * i / n, nb * (i + 1) / n);
            }
            (form ? t3 : t2)[r] = now() - t;
        }
    qsort(t2, (size_t)rounds, sizeof *t2, cmp), qsort(t3, (size_t)rounds, sizeof *t3, cmp);
    const double a = t2[rounds / 2], b = t3[rounds / 2], wts = (double)rows * COLS * NT;
    printf("%d x %d, %d token%s, %d threads, medians of %d rounds: 2-bit %.2f ms (%.1f MB, %.1f G weight-tokens/s), "
           "base-3 %.2f ms (%.1f MB, %.1f G/s): base-3 / 2-bit speed %.2fx\n",
           rows, COLS, NT, NT > 1 ? "s" : "", omp_get_max_threads(), rounds, a * 1e3, (double)n2 / 1e6, wts / a / 1e9,
           b * 1e3, (double)n3 / 1e6, wts / b / 1e9, a / b);
    return 0;
}
#else
int main(void) { return 77; }
#endif
