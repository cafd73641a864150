/* rsr_numerics.h — exact widening of the 16-bit float formats checkpoints use, rounding to them, and the RoPE
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

/* The nearest bfloat16 (ties to even); NaN stays a (quiet) NaN. */
static inline uint16_t rsr_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16 | 0x40u);
    return (uint16_t)((u + 0x7fffu + (u >> 16 & 1u)) >> 16);
}

/* The nearest IEEE half float (ties to even): beyond the largest (65504) ±inf, below the smallest
 * subnormal ±0; NaN stays a (quiet) NaN. */
static inline uint16_t rsr_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint32_t sign = u >> 16 & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* ≥ 65520 (and inf): rounds to inf */
    if (a < 0x38800000u) {                                   /* below 2^-14: a subnormal (or zero) */
        if (a < 0x33000000u) return (uint16_t)sign;          /* < 2^-25: rounds to zero */
        uint32_t e = a >> 23, man = (a & 0x7fffffu) | 0x800000u, shift = 126 - e; /* value = man·2^(e−150) */
        uint32_t h = man >> shift, rest = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        h += rest > half || (rest == half && (h & 1u));
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((a >> 23) - 112) << 10 | (a >> 13 & 0x3ffu), rest = a & 0x1fffu;
    h += rest > 0x1000u || (rest == 0x1000u && (h & 1u)); /* a carry into the exponent is still right */
    return (uint16_t)(sign | h);
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
