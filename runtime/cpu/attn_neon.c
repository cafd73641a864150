/*
 * attn_neon.c — the attention kernels for AArch64 (Advanced SIMD, which every Armv8-A core has):
 * attn_v8.h's kernels, shared with the AVX2 family, on vectors of two q registers. attn_kernels.c
 * calls them in place of the portable C when the NEON family of cpu.h is in use (RSR_CPU=portable
 * leaves the C; the tests run both under qemu-aarch64).
 *
 * Every operation is one the base architecture has: FCVTL widens f16 (no +fp16 needed), bf16 is
 * a shift, q8 is SXTL then SCVTF and one multiplication. v8_reduce's tree: s = lo + hi lane by
 * lane, then (s0 + s1) + (s2 + s3) by pairwise adds (FADDP).
 */
#include "attn_kernels.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

typedef struct v8 {
    float32x4_t lo, hi;
} v8;
#define V8_FN
#define V8_TYPED __attribute__((always_inline)) inline
#define V8 static __attribute__((unused)) V8_TYPED /* the vocabulary: each family uses its own part */

V8 v8 v8_of(float32x4_t lo, float32x4_t hi) { return (v8){lo, hi}; }
V8 v8 v8_zero(void) { return v8_of(vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)); }
V8 v8 v8_set1(float x) { return v8_of(vdupq_n_f32(x), vdupq_n_f32(x)); }
V8 v8 v8_loadu(const float *p) { return v8_of(vld1q_f32(p), vld1q_f32(p + 4)); }
V8 void v8_storeu(float *p, v8 a) { vst1q_f32(p, a.lo), vst1q_f32(p + 4, a.hi); }
V8 v8 v8_add(v8 a, v8 b) { return v8_of(vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)); }
V8 v8 v8_sub(v8 a, v8 b) { return v8_of(vsubq_f32(a.lo, b.lo), vsubq_f32(a.hi, b.hi)); }
V8 v8 v8_mul(v8 a, v8 b) { return v8_of(vmulq_f32(a.lo, b.lo), vmulq_f32(a.hi, b.hi)); }
V8 v8 v8_fma(v8 a, v8 b, v8 c) { return v8_of(vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi)); }
/* FMAXNM: a NaN lane takes the other operand, as fmaxf does */
V8 v8 v8_max(v8 a, v8 b) { return v8_of(vmaxnmq_f32(a.lo, b.lo), vmaxnmq_f32(a.hi, b.hi)); }

V8 v8 v8_row(const void *row, int32_t i, int32_t type, v8 sc) {
    switch (type) {
    case ATTN_BF16: {
        const uint16x8_t h = vld1q_u16((const uint16_t *)row + i);
        return v8_of(vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)),
                     vreinterpretq_f32_u32(vshll_high_n_u16(h, 16)));
    }
    case ATTN_F16: {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16((const uint16_t *)row + i));
        return v8_of(vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h));
    }
    case ATTN_Q8: {
        const int16x8_t w = vmovl_s8(vld1_s8((const int8_t *)row + i));
        return v8_mul(v8_of(vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), vcvtq_f32_s32(vmovl_high_s16(w))), sc);
    }
    default: return v8_loadu((const float *)row + i);
    }
}

/* s = lo + hi, then (s0 + s1) + (s2 + s3). */
V8 float v8_reduce(v8 a) {
    const float32x4_t s = vaddq_f32(a.lo, a.hi), p = vpaddq_f32(s, s);
    return vgetq_lane_f32(vpaddq_f32(p, p), 0);
}

/* Eight vectors in, one vector of their eight horizontal sums out, each added in v8_reduce's order:
 * FADDP of FADDPs gives lane t = (s_t0 + s_t1) + (s_t2 + s_t3). */
V8 v8 v8_hsum8(const v8 a[8]) {
    float32x4_t s[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) s[t] = vaddq_f32(a[t].lo, a[t].hi);
    return v8_of(vpaddq_f32(vpaddq_f32(s[0], s[1]), vpaddq_f32(s[2], s[3])),
                 vpaddq_f32(vpaddq_f32(s[4], s[5]), vpaddq_f32(s[6], s[7])));
}

/* exp of four lanes as the x86 families compute it (2^n · p(r), the degree-7 Taylor polynomial),
 * 2^n made from exponent bits in two factors; below FLT_MIN (x < −87.33, −∞, NaN) it is 0. */
static inline __attribute__((always_inline)) float32x4_t exp4(float32x4_t x) {
    x = vmaxnmq_f32(x, vdupq_n_f32(-104.0f)); /* NaN → −104 */
    x = vminq_f32(x, vdupq_n_f32(88.5f));
    const uint32x4_t tiny = vcltq_f32(x, vdupq_n_f32(-87.33f));
    x = vmaxq_f32(x, vdupq_n_f32(-87.33f));
    const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.0f / 5040);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 720), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    const int32x4_t ni = vcvtnq_s32_f32(n), half = vshrq_n_s32(ni, 1);
    const float32x4_t f1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(half, vdupq_n_s32(127)), 23));
    const float32x4_t f2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vsubq_s32(ni, half), vdupq_n_s32(127)), 23));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(vmulq_f32(vmulq_f32(p, f1), f2)), tiny));
}
V8 v8 v8_exp(v8 x) { return v8_of(exp4(x.lo), exp4(x.hi)); }

#include "attn_v8.h"
#endif
