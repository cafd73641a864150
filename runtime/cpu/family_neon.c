/*
 * family_neon.c — the NEON family of cpu.h: AArch64 (Advanced SIMD, which every Armv8-A core has;
 * RSR_CPU=portable leaves the C; the tests run both under qemu-aarch64). Its intrinsics are the
 * attention kernels' vocabulary (attn_generic.h: 8 lanes, vectors of two q registers) and, on a
 * CPU with dotprod, the group-scaled kernel of RSR_UNITS_ROWS4 (units_generic.h, at the end). The
 * rest of its kernels are gcc's vectorisation of the portable C.
 *
 * Every operation is one the base architecture has: FCVTL widens f16 (no +fp16 needed), bf16 is
 * a shift, q8 is SXTL then SCVTF and one multiplication. vec_reduce's tree: s = lo + hi lane by
 * lane, then (s0 + s1) + (s2 + s3) by pairwise adds (FADDP); vec_total is the same. Tails go
 * through a copy, but a dot product's is added one by one.
 */
#include <string.h>

#include "attn_kernels.h"

#ifdef ATTN_FAMILIES_NEON
#include <arm_neon.h>
#include <math.h>

typedef struct vec {
    float32x4_t lo, hi;
} vec;
#define VEC_W 8
#define VEC_ACCS 8
#define VEC_MASKED_TAIL 0
#define VEC_SCORES_BY_BLOCK 1
#define VEC_FN
#define VEC_TYPED __attribute__((always_inline)) inline
#define VEC static __attribute__((unused)) VEC_TYPED /* the vocabulary: the kernels use what they need */
#define VEC_FAMILY attn_family_neon

VEC vec vec_of(float32x4_t lo, float32x4_t hi) { return (vec){lo, hi}; }
VEC vec vec_zero(void) { return vec_of(vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)); }
VEC vec vec_set1(float x) { return vec_of(vdupq_n_f32(x), vdupq_n_f32(x)); }
VEC vec vec_loadu(const float *p) { return vec_of(vld1q_f32(p), vld1q_f32(p + 4)); }
VEC void vec_storeu(float *p, vec a) { vst1q_f32(p, a.lo), vst1q_f32(p + 4, a.hi); }
VEC vec vec_add(vec a, vec b) { return vec_of(vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)); }
VEC vec vec_sub(vec a, vec b) { return vec_of(vsubq_f32(a.lo, b.lo), vsubq_f32(a.hi, b.hi)); }
VEC vec vec_mul(vec a, vec b) { return vec_of(vmulq_f32(a.lo, b.lo), vmulq_f32(a.hi, b.hi)); }
VEC vec vec_fma(vec a, vec b, vec c) { return vec_of(vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi)); }
/* FMAXNM: a NaN lane takes the other operand, as fmaxf does */
VEC vec vec_max(vec a, vec b) { return vec_of(vmaxnmq_f32(a.lo, b.lo), vmaxnmq_f32(a.hi, b.hi)); }
VEC vec vec_min(vec a, vec b) { return vec_of(vminnmq_f32(a.lo, b.lo), vminnmq_f32(a.hi, b.hi)); }
VEC int vec_any_zero(vec a) { return vmaxvq_u32(vorrq_u32(vceqzq_f32(a.lo), vceqzq_f32(a.hi))) != 0; }

VEC vec vec_load_part(const float *p, int32_t n) {
    float b[8] = {0};
    memcpy(b, p, sizeof(float) * (size_t)n);
    return vec_loadu(b);
}
VEC void vec_store_part(float *p, int32_t n, vec a) {
    float b[8];
    vec_storeu(b, a);
    memcpy(p, b, sizeof(float) * (size_t)n);
}
VEC vec vec_keep(vec a, int32_t n) {
    float b[8];
    vec_storeu(b, a);
    for (int32_t t = n; t < 8; t++) b[t] = 0.0f;
    return vec_loadu(b);
}

VEC vec vec_row(const void *row, int32_t i, int32_t type, vec sc) {
    switch (type) {
    case ATTN_BF16: {
        const uint16x8_t h = vld1q_u16((const uint16_t *)row + i);
        return vec_of(vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)),
                      vreinterpretq_f32_u32(vshll_high_n_u16(h, 16)));
    }
    case ATTN_F16: {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16((const uint16_t *)row + i));
        return vec_of(vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h));
    }
    case ATTN_Q8: {
        const int16x8_t w = vmovl_s8(vld1_s8((const int8_t *)row + i));
        return vec_mul(vec_of(vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), vcvtq_f32_s32(vmovl_high_s16(w))), sc);
    }
    default: return vec_loadu((const float *)row + i);
    }
}

/* s = lo + hi, then (s0 + s1) + (s2 + s3). */
VEC float vec_reduce(vec a) {
    const float32x4_t s = vaddq_f32(a.lo, a.hi), p = vpaddq_f32(s, s);
    return vgetq_lane_f32(vpaddq_f32(p, p), 0);
}

/* Eight vectors in, one vector of their eight horizontal sums out, each added in vec_reduce's order:
 * FADDP of FADDPs gives lane t = (s_t0 + s_t1) + (s_t2 + s_t3). */
VEC vec vec_hsum(const vec a[8]) {
    float32x4_t s[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) s[t] = vaddq_f32(a[t].lo, a[t].hi);
    return vec_of(vpaddq_f32(vpaddq_f32(s[0], s[1]), vpaddq_f32(s[2], s[3])),
                  vpaddq_f32(vpaddq_f32(s[4], s[5]), vpaddq_f32(s[6], s[7])));
}

VEC float vec_total(vec a) { return vec_reduce(a); }

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
VEC vec vec_exp(vec x) { return vec_of(exp4(x.lo), exp4(x.hi)); }

#include "attn_generic.h"
#endif

/* ---- the group-scaled kernel (forward.c, family.h's rt_units_call): units_generic.h on q registers ---- */

#include "family.h"

#ifdef RT_UNITS_NEON
#include <arm_neon.h>

#ifdef __clang__
#define RT_DOTPROD /* the whole file is built with dotprod (family.h) */
#else
#define RT_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod"))) /* arm_neon.h's own spelling of it */
#endif

/* RSR_UNITS_ROWS4 (rsr_artifact.h): 4 rows a block, one in each int32 lane of a q register; a group
 * of 16 columns is 16 bytes, byte 4r + i holding in bits 2f, 2f + 1 the code of row r at column
 * 4f + i. sdot by lane puts a field's 4 codes of each row against the 4 bytes of x at its columns
 * straight into the row's lane: exact int32 sums, as vpdpbusd's. */
#define UV_ROWS 4
#define UV_TILE 8     /* 8 tokens: their sums and fp32 rows (16 q), a group's 4 fields and x: 22 of 32 */
#define UV_RESTS 0xfc /* 7 down to 2 (and 1): the rest in one tile */
#define UV_INLINE RT_DOTPROD __attribute__((always_inline)) static inline
typedef int32x4_t uv_i;
/* FCVTL (base Armv8-A): the 4 rows' f16 scales in one instruction, where the generic integer
   widening costs gcc 19 of a lane at a time */
#define UV_F16_WIDEN(g) ((uv_f)vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(g)))))

/* a unit's fields: each group's 16 bytes loaded once and split into its 4 fields for the tile's
 * tokens; token j's 16 bytes of x at the group's columns, lane f of them against field f */
UV_INLINE void uv_sums(uv_i *a, const uint8_t *wu, const int8_t *const *x, size_t xu, const int NT, const int G) {
    const uint8x16_t three = vdupq_n_u8(3);
    for (int g = 0; g < G; g++) {
        const uint8x16_t v = vld1q_u8(wu + 16 * g);
        const int8x16_t k0 = vreinterpretq_s8_u8(vandq_u8(v, three));
        const int8x16_t k1 = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 2), three));
        const int8x16_t k2 = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 4), three));
        const int8x16_t k3 = vreinterpretq_s8_u8(vshrq_n_u8(v, 6));
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) {
            const int8x16_t xv = vld1q_s8(x[j] + xu + 16 * (size_t)g);
            a[j] = vdotq_laneq_s32(a[j], k0, xv, 0);
            a[j] = vdotq_laneq_s32(a[j], k1, xv, 1);
            a[j] = vdotq_laneq_s32(a[j], k2, xv, 2);
            a[j] = vdotq_laneq_s32(a[j], k3, xv, 3);
        }
    }
}

#include "units_generic.h"

RT_DOTPROD void rt_units_rows4_sdot(const rt_units_call *c) { uv_units(c); }
#endif
