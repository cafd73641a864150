/*
 * test_base3 — the base-3 layouts' arithmetic (runtime/include/rsr_artifact.h, RSR_UNITS_B3_ROWS16
 * and B3_ROWS8): every one of the 3^10 words of 10 digits decodes by ((w·3ⁿ mod 2¹⁶)·3) >> 16 to its
 * digits (the rule the kernels' vpmullw/vpmulhuw compute) and its pairs of digits by
 * ((w·3ⁿ mod 2¹⁶)·9) >> 16 (the kernels' rule), and a block packed as the header's text says (each
 * digit placed by unit, column and byte k = 16·(w/8) + 8h + w%8, by pairs of digits; the
 * units past the last run in the 2-bit form) becomes, through rsr_b3_to_i2, the 2-bit layout holding every code
 * where that layout's text puts it (group c/16, field c%16/4, byte 4r + c%4), for blocks of 16 and 8
 * rows and widths that leave 0 to 4 units past the runs. On x86, the runtime's vector conversion of
 * an 8-row block with AVX2 (rt_b3_to_i2_rows8_avx2) and of a 16-row block with AVX-512 VNNI
 * (rt_b3_to_i2_rows16_vnni), what a prompt's steps run base-3 matrices through, gives
 * rsr_b3_to_i2's bytes, every one of them, and the family's kernel gives the same outputs from the
 * base-3 block as from its 2-bit form, for 1 to 8 tokens.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "rsr_artifact.h"
#if defined(__x86_64__)
#include "family.h"
#endif

static void check_words(void) {
    int bad = 0;
    for (uint32_t v = 0; v < 59049; v++) {
        uint8_t d[RSR_B3_DIGITS];
        for (int n = RSR_B3_DIGITS - 1, r = (int)v; n >= 0; n--, r /= 3) d[n] = (uint8_t)(r % 3);
        const uint16_t w = rsr_b3_word(d);
        for (int n = 0; n < RSR_B3_DIGITS; n++) {
            uint32_t t = w; /* the kernels' arithmetic: w·3ⁿ mod 2¹⁶ by one multiply, then ·3 >> 16 */
            uint32_t p3 = 1;
            for (int i = 0; i < n; i++) p3 *= 3;
            t = (t * p3) & 0xffffu;
            bad += ((t * 3u) >> 16) != d[n] || rsr_b3_digit(w, n) != d[n];
            if (n % 2 == 0) /* digits n and n + 1 together: ((w·3ⁿ mod 2¹⁶)·9) >> 16 = 3·dₙ + dₙ₊₁ */
                bad += ((t * 9u) >> 16) != 3u * d[n] + d[n + 1];
        }
    }
    EXPECT(bad == 0, "%d digits of the 59049 words decode wrong", bad);
}

#if defined(__x86_64__)
/* The family's kernel (L 16: rt_units_rows16_vnni, 8: rt_units_rows8_avx2) on the base-3 block b3
 * against the same kernel on its 2-bit form i2, for 1 to 8 tokens of random codes and scales: the
 * same fp32 outputs, bit for bit (the base-3 runs' decode and their x offsets) */
static void check_kernel(int32_t L, int32_t units, const uint8_t *b3, const uint8_t *i2) {
    const int32_t cols = 32 * units, xrow = rsr_x_row(cols, 32), T = 8, scale_groups = (units + 3) / 4;
    const size_t xbytes = ((size_t)xrow * T + 63) / 64 * 64;
    int8_t *x = aligned_alloc(64, xbytes);
    uint16_t *gs = malloc(sizeof(uint16_t) * (size_t)L * (size_t)scale_groups);
    float *y3 = malloc(sizeof(float) * (size_t)L * T), *y2 = malloc(sizeof(float) * (size_t)L * T);
    unsigned seed = (unsigned)(L * 7 + units);
    memset(x, 0, xbytes);
    for (int32_t t = 0; t < T; t++) {
        int8_t *xt = x + (size_t)t * (size_t)xrow;
        for (int32_t c = 0; c < cols; c++) xt[c] = (int8_t)(rand_r(&seed) % 255 - 127);
        rsr_x_put_sums(xt, cols, 32);
        float *d = (float *)(void *)(xt + rsr_x_scales_at(cols, 32));
        for (int32_t u = 0; u < units; u++) d[u] = 0.001f * (float)(1 + rand_r(&seed) % 97);
    }
    for (int32_t i = 0; i < L * scale_groups; i++) gs[i] = (uint16_t)(0x3000 + rand_r(&seed) % 0x1000); /* f16 */
    void (*kernel)(const rt_units_call *) = L == 16 ? rt_units_rows16_vnni : rt_units_rows8_avx2;
    int differ = 0;
    for (int32_t n = 1; n <= T; n++) {
        rt_units_call c = {.gs = gs,
                           .f16 = 1,
                           .rows = L,
                           .units = units,
                           .groups = 2,
                           .per = 4,
                           .x = x,
                           .x_stride = xrow,
                           .sums_at = rsr_x_sums_at(cols),
                           .scales_at = rsr_x_scales_at(cols, 32),
                           .y_stride = (size_t)L,
                           .ntok = n,
                           .b0 = 0,
                           .b1 = 1};
        c.data = b3, c.base3 = 1, c.y = y3;
        kernel(&c);
        c.data = i2, c.base3 = 0, c.y = y2;
        kernel(&c);
        differ += memcmp(y3, y2, sizeof(float) * (size_t)L * (size_t)n) != 0;
    }
    EXPECT(differ == 0,
           "the kernel of %d rows, %d units: base-3 codes not the 2-bit codes' outputs at %d of %d token counts", L,
           units, differ, T);
    free(x), free(gs), free(y3), free(y2);
}
#endif

static void check_block(int32_t L, int32_t units) {
    const int32_t cols = 32 * units, V = 4 * L, runs = units / RSR_B3_RUN;
    uint8_t *code = malloc((size_t)L * (size_t)cols), *b3 = calloc(1, (size_t)rsr_b3_block_bytes(L, units));
    uint8_t *i2 = malloc((size_t)L * (size_t)cols / 4);
    unsigned seed = (unsigned)(L * 131 + units);
    for (int32_t i = 0; i < L * cols; i++) code[i] = (uint8_t)(rand_r(&seed) % 3);
    for (int32_t s = 0; s < runs; s++) /* the header's text: word w of vector q of run s */
        for (int32_t q = 0; q < 8; q++)
            for (int32_t w = 0; w < 2 * L; w++) {
                uint8_t d[RSR_B3_DIGITS];
                for (int32_t n = 0; n < RSR_B3_DIGITS; n++) {
                    /* by pairs m (digit d of the pair): m < 4 unit 2(m / 2) + d, columns from 4q,
                       half m % 2; m = 4 unit 4, columns from 4(2(q / 2) + d), half q % 2 */
                    const int32_t m = n / 2, dd = n % 2;
                    const int32_t p = m < 4 ? 2 * (m / 2) + dd : 4;
                    const int32_t c = m < 4 ? q : 2 * (q / 2) + dd;
                    const int32_t h = m < 4 ? m % 2 : q % 2, k = 16 * (w / 8) + 8 * h + w % 8;
                    d[n] = code[(k / 4) * cols + (s * RSR_B3_RUN + p) * 32 + 4 * c + k % 4];
                }
                const uint16_t word = rsr_b3_word(d);
                uint8_t *at = b3 + ((size_t)s * 8 + (size_t)q) * (size_t)V + 2 * (size_t)w;
                at[0] = (uint8_t)word, at[1] = (uint8_t)(word >> 8);
            }
    uint8_t *tail = b3 + (size_t)runs * 8 * (size_t)V; /* the units past the runs, 2-bit */
    for (int32_t u = runs * RSR_B3_RUN; u < units; u++)
        for (int32_t r = 0; r < L; r++)
            for (int32_t c = 0; c < 32; c++)
                tail[(size_t)(u - runs * RSR_B3_RUN) * 2 * (size_t)V + (size_t)(c / 16) * (size_t)V + 4 * (size_t)r +
                     (size_t)(c % 4)] |= (uint8_t)(code[r * cols + u * 32 + c] << (2 * (c % 16 / 4)));
    memset(i2, 0xff, (size_t)L * (size_t)cols / 4);
    rsr_b3_to_i2(b3, L, units, i2);
    int bad = 0;
    for (int32_t r = 0; r < L; r++)
        for (int32_t c = 0; c < cols; c++) {
            const uint8_t byte = i2[(size_t)(c / 16) * (size_t)V + 4 * (size_t)r + (size_t)(c % 4)];
            bad += (byte >> (2 * (c % 16 / 4)) & 3) != code[r * cols + c];
        }
    EXPECT(bad == 0, "blocks of %d rows, %d units: %d codes misplaced", L, units, bad);
#if defined(__x86_64__)
    const int vec = L == 8 ? __builtin_cpu_supports("avx2")
                           : __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
    if (vec) {
        uint8_t *v = malloc((size_t)L * (size_t)cols / 4);
        memset(v, 0xff, (size_t)L * (size_t)cols / 4);
        (L == 8 ? rt_b3_to_i2_rows8_avx2 : rt_b3_to_i2_rows16_vnni)(b3, units, v);
        int differ = 0;
        for (int32_t i = 0; i < L * cols / 4; i++) differ += v[i] != i2[i];
        EXPECT(differ == 0, "the vector conversion of %d rows, %d units: %d bytes not rsr_b3_to_i2's", L, units,
               differ);
        free(v);
        check_kernel(L, units, b3, i2);
    }
#endif
    free(code), free(b3), free(i2);
}

int main(void) {
    check_words();
    for (int32_t units = 1; units <= 16; units++) check_block(16, units), check_block(8, units);
    printf("test_base3: %d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
