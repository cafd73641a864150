/*
 * test_attn_groups — dense attention over the query heads of one KV head together (which the
 * kernels may speed up by sharing each key and value row between the heads: loaded once, widened
 * once) gives every head the bits it gets alone: the running max, the sum of weights and every
 * element of the output, for every element type, head sizes with and without a fast path, 1 to 5
 * heads and any number of keys. Run in each kernel family (ctest: default, RSR_CPU=avx2
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
                attn_narrow_row(type, x, d, V + row * (size_t)j);
            }
            for (int32_t i = 0; i < d * gq_max; i++) q[i] = (float)rand_r(&seed) / (float)RAND_MAX * 2.0f - 1.0f;
            const attn_rows kr = {.base = K, .bytes = row, .type = type}, vr = {.base = V, .bytes = row, .type = type};
            for (int32_t gq = 1; gq <= gq_max; gq++)
                for (int32_t n = 1; n <= n_max; n += n < 20 ? 1 : 37) {
                    attn_state all[5], one;
                    for (int32_t g = 0; g < gq; g++) all[g].o = o_all + g * d, attn_state_clear(&all[g], d);
                    attn_dense_range_kv(all, q, gq, kr, vr, d, 3, 3 + n < n_max ? 3 + n : n_max, scratch, NULL, NULL);
                    for (int32_t g = 0; g < gq; g++) {
                        one.o = o_one, attn_state_clear(&one, d);
                        attn_dense_range_kv(&one, q + g * d, 1, kr, vr, d, 3, 3 + n < n_max ? 3 + n : n_max, scratch,
                                            NULL, NULL);
                        EXPECT(!memcmp(&one.m, &all[g].m, sizeof one.m) && !memcmp(&one.l, &all[g].l, sizeof one.l) &&
                                   !memcmp(one.o, all[g].o, sizeof(float) * (size_t)d),
                               "type %d, d %d, %d heads, %d keys: head %d together differs from alone (l %.9g vs %.9g)",
                               type, d, gq, n, g, (double)all[g].l, (double)one.l);
                    }
                }
            free(K), free(V), free(q), free(x), free(scratch), free(o_all), free(o_one);
        }
    printf("test_attn_groups (%s kernels): %d passed, %d failed\n", rt_isa_name(rt_cpu_isa()), checks - failures,
           failures);
    return failures != 0;
}
