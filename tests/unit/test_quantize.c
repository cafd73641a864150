/*
 * test_quantize — the per-token int8 quantisation of the matrices' inputs gives the same bytes and
 * scale in every kernel family the CPU has (portable, AVX2, AVX-512), and those of the rule
 * docs/numerics.md states (the reference below, with fp32's NaN reading: fmaxf skips a NaN, and a
 * NaN product clamps to -128): the integer products, and so the greedy tokens, do not depend on
 * the machine, and a machine with the portable family alone still checks it against the rule.
 * Vectors of every length up to 300 (every tail), of ordinary, huge, tiny, zero and negative-zero
 * values, ties at .5 (rounded to even), and NaN and ±inf elements.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "cpu_device.h"

static float value(unsigned *seed, int kind, int32_t i) {
    float r = (float)rand_r(seed) / (float)RAND_MAX * 2.0f - 1.0f;
    switch (kind) {
    case 0: return r * 3.0f;
    case 1: return r * 1e30f;
    case 2: return r * 1e-30f;
    case 3: return i % 3 ? 0.0f : -0.0f;
    case 4: return (float)(i % 255 - 127) + 0.5f; /* ties once scaled by 127/127.5 ... and exact halves */
    case 5: return i == 7 ? NAN : r;
    case 6: return i == 3 ? INFINITY : i == 5 ? -INFINITY : r;
    default: return (float)(i - 150) / 2.0f; /* halves: 127/75 scales */
    }
}

/* docs/numerics.md: amax = max |x|, scale = 127 / max(amax, 1e-5), q = clamp(rint(x * scale)). */
static float reference(int8_t *q, const float *x, int32_t n) {
    float amax = 0;
    for (int32_t i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]); /* a NaN compares false: skipped */
    const float scale = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
    for (int32_t i = 0; i < n; i++) {
        float r = rintf(x[i] * scale);
        q[i] = isnan(r) || r < -128.0f ? -128 : r > 127.0f ? 127 : (int8_t)r;
    }
    return scale;
}

int main(void) {
    const int have[3] = {1, rt_cpu_has("avx2"), rt_cpu_has("avx512f")}; /* off x86: the portable family only */
    unsigned seed = 7;
    float x[320];
    int8_t q[3][320], want[320];
    for (int kind = 0; kind < 8; kind++)
        for (int32_t n = 1; n <= 300; n++) {
            for (int32_t i = 0; i < n; i++) x[i] = value(&seed, kind, i);
            const float scale = reference(want, x, n);
            for (int f = 0; f < 3; f++) {
                if (!have[f]) continue;
                const float got = rt_quantize_family(f, q[f], x, n);
                EXPECT(memcmp(&got, &scale, sizeof(float)) == 0, "family %d, kind %d, n %d: scale %g, the rule's %g", f,
                       kind, n, (double)got, (double)scale);
                EXPECT(memcmp(q[f], want, (size_t)n) == 0, "family %d, kind %d, n %d: bytes differ from the rule's", f,
                       kind, n);
            }
        }
    printf("test_quantize: families %s%s%s: %d passed, %d failed\n", "portable", have[1] ? ", avx2" : "",
           have[2] ? ", avx512" : "", checks - failures, failures);
    return failures != 0;
}
