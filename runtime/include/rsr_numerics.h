/* rsr_numerics.h — exact widening of the 16-bit float formats checkpoints use, and the RoPE
 * angles (docs/numerics.md) that the CPU and the GPU sessions share. */
#ifndef RSR_NUMERICS_H
#define RSR_NUMERICS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float rsr_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float rsr_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31u, man = h & 1023u, u;
    if (exp == 31)
        u = sign | 0x7f800000u | man << 13; /* inf, nan */
    else if (exp)
        u = sign | (exp + 112) << 23 | man << 13; /* normal */
    else if (!man)
        u = sign; /* zero */
    else {        /* subnormal: normalise */
        uint32_t e = 113;
        while (!(man & 1024)) man <<= 1, e--;
        u = sign | e << 23 | (man & 1023) << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* cs[i] = cos, cs[d/2 + i] = sin of position pos's angle for the pair (i, i + d/2), i < d/2. */
static inline void rsr_rope_angles(float *cs, int32_t d, int32_t pos, double theta) {
    int32_t half = d / 2;
    for (int32_t i = 0; i < half; i++) {
        double inv_freq = pow(theta, -2.0 * i / d), ang = pos * inv_freq;
        cs[i] = (float)cos(ang), cs[half + i] = (float)sin(ang);
    }
}

#endif
