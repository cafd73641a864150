/* rsr_numerics.h — exact widening of the 16-bit float formats checkpoints use. */
#ifndef RSR_NUMERICS_H
#define RSR_NUMERICS_H

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
    if (exp == 31) u = sign | 0x7f800000u | man << 13;          /* inf, nan */
    else if (exp) u = sign | (exp + 112) << 23 | man << 13;     /* normal */
    else if (!man) u = sign;                                    /* zero */
    else {                                                      /* subnormal: normalise */
        uint32_t e = 113;
        while (!(man & 1024)) man <<= 1, e--;
        u = sign | e << 23 | (man & 1023) << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
