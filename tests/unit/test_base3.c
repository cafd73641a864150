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
 * rsr_b3_to_i2's bytes, every one of them.
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
