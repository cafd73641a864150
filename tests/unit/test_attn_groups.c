/*
 * test_attn_groups — dense attention over the query heads of one KV head together (which the
 * kernels may speed up by sharing each key and value row between the heads: loaded once, widened
 * once) gives every head the bits it gets alone: the running max, the sum of weights and every
 * element of the output, for every element type, head sizes with and without a fast path, 1 to 5
 * heads and any number of keys; with queries of ordinary size and with some heads' queries made so
 * large that many of their weights underflow to exactly 0 while the other heads' do not (and one
 * set where all four of a group's do). A zero weight must leave the output alone: every 7th value
 * row holds an infinity (the 16- and 32-bit types), so a row added with weight 0 would give NaN
 * (0·inf) where the head alone skips it. Run in each kernel family (ctest: default, RSR_CPU=avx2
 * for AVX2, RSR_CPU=portable for the portable C; under qemu-aarch64, NEON and portable).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_kernels.h"
#include "expect.h"

int main(void) {
    unsigned seed = 11;
    enum { SETS = 3 };
    const float big[SETS][5] = {{1, 1, 1, 1, 1}, {1, 60, 1, 200, 1}, {200, 200, 200, 200, 1}}; /* the heads' scales */
    int64_t zero_weights = 0;
    const int32_t dims[] = {128, 64, 40, 96};
    for (int32_t type = 0; type < ATTN_TYPES; type++)
        for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
            const int32_t d = dims[di], n_max = 300, gq_max = 5;
            const size_t row = attn_row_bytes(type, d);
            char *K = malloc(row * n_max), *V = malloc(row * n_max);
            float *q = malloc(sizeof(float) * (size_t)(d * gq_max)), *x = malloc(sizeof(float) * (size_t)d);
            float *scratch = malloc(sizeof(float) * (size_t)(gq_max * n_max));
            float *o_all = calloc((size_t)(gq_max * d), sizeof(float)), *o_one = calloc((size_t)d, sizeof(float));
            for (int32_t j = 0; j < n_max; j++) {
                for (int32_t i = 0; i < d; i++) x[i] = (float)rand_r(&seed) / (float)RAND_MAX * 4.0f - 2.0f;
                attn_narrow_row(type, x, d, K + row * (size_t)j);
                for (int32_t i = 0; i < d; i++) x[i] = (float)rand_r(&seed) / (float)RAND_MAX * 2.0f - 1.0f;
                if (type != ATTN_Q8 && j % 7 == 3) x[j % d] = INFINITY;
                attn_narrow_row(type, x, d, V + row * (size_t)j);
            }
            const attn_rows kr = {.base = K, .bytes = row, .type = type}, vr = {.base = V, .bytes = row, .type = type};
            for (int b = 0; b < SETS; b++) {
                for (int32_t i = 0; i < d * gq_max; i++)
                    q[i] = ((float)rand_r(&seed) / (float)RAND_MAX * 2.0f - 1.0f) * big[b][i / d];
                for (int32_t gq = 1; gq <= gq_max; gq++)
                    for (int32_t n = 1; n <= n_max; n += n < 20 ? 1 : 37) {
                        const int32_t j1 = 3 + n < n_max ? 3 + n : n_max;
                        attn_state all[5], one;
                        for (int32_t g = 0; g < gq; g++) all[g].o = o_all + g * d, attn_state_clear(&all[g], d);
                        attn_dense_range_kv(all, q, gq, kr, vr, d, 3, j1, scratch, NULL, NULL);
                        for (int32_t g = 0; g < gq; g++) {
                            one.o = o_one, attn_state_clear(&one, d);
                            attn_dense_range_kv(&one, q + g * d, 1, kr, vr, d, 3, j1, scratch, NULL, NULL);
                            EXPECT(!memcmp(&one.m, &all[g].m, sizeof one.m) &&
                                       !memcmp(&one.l, &all[g].l, sizeof one.l) &&
                                       !memcmp(one.o, all[g].o, sizeof(float) * (size_t)d),
                                   "type %d, d %d, %d heads, %d keys, scales %d: head %d together differs from alone "
                                   "(l %.9g vs %.9g)",
                                   type, d, gq, n, b, g, (double)all[g].l, (double)one.l);
                            for (int32_t j = 0; j < j1 - 3; j++) zero_weights += scratch[j] == 0.0f; /* its weights */
                        }
                    }
            }
            free(K), free(V), free(q), free(x), free(scratch), free(o_all), free(o_one);
        }
    EXPECT(zero_weights > 0, "no weight underflowed: the kernels' zero-weight path was not tried");
    printf("test_attn_groups (%s kernels): %d passed, %d failed\n", rt_isa_name(rt_cpu_isa()), checks - failures,
           failures);
    return failures != 0;
}
