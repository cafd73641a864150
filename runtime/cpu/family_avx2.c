/*
 * family_avx2.c — the AVX2 family of cpu.h: x86-64 CPUs with AVX2, FMA and F16C but no AVX-512
 * (Zen 1–3, Intel client cores), the machines most people run on (RSR_CPU=avx2 selects it on a
 * bigger CPU). Every AVX2 intrinsic of the runtime: the attention kernels' vocabulary
 * (attn_generic.h: 8 lanes, one ymm register per vector), the activations' int8 quantisation
 * (forward.c) and the int8 LM head's dot (lm_head.c).
 *
 * vec_reduce's tree: P_lo + P_hi, P = (l0 + l2) + (l1 + l3) over each 128-bit half; vec_total is
 * the same. Tails go through masked loads and stores, but a dot product's is added one by one.
 */
#include <math.h>
#include <string.h>

#include "attn_kernels.h"
#include "b3_pairs.h"
#include "family.h"
#include "rsr_artifact.h"

#ifdef ATTN_FAMILIES_X86
#include <immintrin.h>

typedef __m256 vec;
#define VEC_W 8
#define VEC_ACCS 8
#define VEC_MASKED_TAIL 0
#define VEC_SCORES_BY_BLOCK 1
#define VEC_FN __attribute__((target("avx2,fma,f16c")))
#define VEC_TYPED __attribute__((target("avx2,fma,f16c"), always_inline)) inline
#define VEC static __attribute__((unused)) VEC_TYPED /* the vocabulary: the kernels use what they need */
#define VEC_FAMILY attn_family_avx2

VEC vec vec_zero(void) { return _mm256_setzero_ps(); }
VEC vec vec_set1(float x) { return _mm256_set1_ps(x); }
VEC vec vec_loadu(const float *p) { return _mm256_loadu_ps(p); }
VEC void vec_storeu(float *p, vec a) { _mm256_storeu_ps(p, a); }
VEC vec vec_add(vec a, vec b) { return _mm256_add_ps(a, b); }
VEC vec vec_sub(vec a, vec b) { return _mm256_sub_ps(a, b); }
VEC vec vec_mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
VEC vec vec_fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
VEC vec vec_max(vec a, vec b) { return _mm256_max_ps(a, b); }
VEC vec vec_min(vec a, vec b) { return _mm256_min_ps(a, b); }
VEC int vec_any_zero(vec a) { return _mm256_movemask_ps(_mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_EQ_OQ)) != 0; }
#define VEC_HAS_REDUCE_MAX 1
/* fmaxf over the lanes from −inf, as attn_generic.h's own: NaN lanes count as −inf */
VEC float vec_reduce_max(vec a) {
    const __m256 m = _mm256_blendv_ps(a, _mm256_set1_ps(-INFINITY), _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}

VEC __m256i lanes_below(int32_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
VEC vec vec_load_part(const float *p, int32_t n) { return _mm256_maskload_ps(p, lanes_below(n)); }
VEC void vec_store_part(float *p, int32_t n, vec a) { _mm256_maskstore_ps(p, lanes_below(n), a); }
VEC vec vec_keep(vec a, int32_t n) { return _mm256_and_ps(a, _mm256_castsi256_ps(lanes_below(n))); }

VEC vec vec_row(const void *row, int32_t i, int32_t type, vec sc) {
    switch (type) {
    case ATTN_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i))), 16));
    case ATTN_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
    case ATTN_Q8:
        return _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((const int8_t *)row + i)))), sc);
    default: return _mm256_loadu_ps((const float *)row + i);
    }
}

/* The eight lanes summed as (P_lo) + (P_hi), P = (l0 + l2) + (l1 + l3) over a 128-bit half. */
VEC float vec_reduce(vec a) {
    a = _mm256_add_ps(a, _mm256_permute_ps(a, _MM_SHUFFLE(1, 0, 3, 2)));
    a = _mm256_add_ps(a, _mm256_permute_ps(a, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1)));
}

/* Eight vectors in, one vector of their eight horizontal sums out, each added in vec_reduce's order. */
VEC vec vec_hsum(const vec a[8]) {
    __m256 s[4], u[2];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        s[i] = _mm256_add_ps(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
        u[i] = _mm256_add_ps(_mm256_shuffle_ps(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm256_add_ps(_mm256_permute2f128_ps(u[0], u[1], 0x20), _mm256_permute2f128_ps(u[0], u[1], 0x31));
}

VEC float vec_total(vec a) { return vec_reduce(a); }

/* exp(x) as the AVX-512 family computes it (2^n · p(r), the degree-7 Taylor polynomial), with 2^n
 * made from its exponent bits: a result below FLT_MIN (x < −87.33, −∞, NaN) is 0. */
VEC vec vec_exp(vec x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-104.0f)); /* NaN → −104, as vmaxps takes the second operand */
    x = _mm256_min_ps(x, _mm256_set1_ps(88.5f));
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33f), _CMP_LT_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.33f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* n in [-126, 128]: 2^n in two factors, so that n = 128 (x near 88.5) does not overflow the bits */
    const __m256i ni = _mm256_cvtps_epi32(n), half = _mm256_srai_epi32(ni, 1);
    const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
    const __m256 f2 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(_mm256_mul_ps(p, f1), f2));
}

#include "attn_generic.h"

/* ---- the activations' int8 quantisation (forward.c) ---- */

/* fmaxf(0, |x_i|) over i < n, n a multiple of 8: max_ps returns its second operand when either is
 * NaN, so max(|x|, amax) skips a NaN, as fmaxf does. */
__attribute__((target("avx2"))) static inline float abs_max(const float *x, int32_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 vmax = _mm256_setzero_ps();
    for (int32_t i = 0; i < n; i += 8) vmax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), vmax);
    float lanes[8], amax = 0;
    _mm256_storeu_ps(lanes, vmax);
    for (int t = 0; t < 8; t++) amax = fmaxf(amax, lanes[t]);
    return amax;
}

/* q[0 .. n) = rint(x · scale) within [lo, 127], 32 values packed to bytes at a time (n a multiple of
 * 32): max_ps returns its second operand when either is NaN, so a NaN product maps to lo, as
 * fmaxf(v, lo) does; the packs interleave 128-bit lanes, the permutation puts them back in order. */
__attribute__((target("avx2"))) static inline void quantize_runs(int8_t *q, const float *x, int32_t n, float scale,
                                                                 float lo) {
    const __m256 vs = _mm256_set1_ps(scale), vlo = _mm256_set1_ps(lo), hi = _mm256_set1_ps(127.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i v[4];
    for (int32_t i = 0; i < n; i += 32) {
        for (int k = 0; k < 4; k++) {
            __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vs),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            v[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, vlo), hi));
        }
        __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        _mm256_storeu_si256((__m256i *)(void *)(q + i), _mm256_permutevar8x32_epi32(bytes, order));
    }
}

/* forward.c's per-token absmax quantisation to int8 (quantize_scalar) on AVX2, bit for bit (abs_max,
 * quantize_runs): rounding to nearest even is rintf's default mode; x·scale is the same single
 * multiplication. */
__attribute__((target("avx2"))) float rt_quantize_avx2(int8_t *q, const float *x, int32_t n) {
    int32_t i = n / 8 * 8;
    float amax = abs_max(x, i);
    for (; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float scale = 127.0f / fmaxf(amax, 1e-5f);
    i = n / 32 * 32;
    quantize_runs(q, x, i, scale, -128.0f);
    for (; i < n; i++) q[i] = (int8_t)fminf(fmaxf(rintf(x[i] * scale), -128.0f), 127.0f);
    return scale;
}

/* One block of forward.c's quantize_blocks (Q8_0, Q8_K; n a multiple of 32), bit for bit: amax as
 * above (a NaN skipped), q = rint(x · (127 / amax)) within ±127 (0 for every x when amax is 0; a
 * NaN product maps to −127, as fmaxf's does). Returns amax. */
__attribute__((target("avx2"))) float rt_quantize_block_avx2(int8_t *q, const float *x, int32_t n) {
    const float amax = abs_max(x, n);
    quantize_runs(q, x, n, amax != 0 ? 127.0f / amax : 0.0f, -127.0f);
    return amax;
}

/* ---- the int8 LM head (lm_head.c) ---- */

/* lm_head.c's int8 head: Σ (q + 128)·xq with AVX2; vpmaddwd adds pairs of products, each pair
 * within int32 (255·32767·2). */
__attribute__((target("avx2"))) int32_t rt_head_dot_q8_avx2(const uint8_t *w, const int16_t *x, int32_t n) {
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    for (int32_t i = 0; i < n; i += 32) {
        __m256i w0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const void *)(w + i)));
        __m256i w1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const void *)(w + i + 16)));
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(w0, _mm256_loadu_si256((const void *)(x + i))));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(w1, _mm256_loadu_si256((const void *)(x + i + 16))));
    }
    __m256i acc = _mm256_add_epi32(acc0, acc1);
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0x4e));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0xb1));
    return _mm_cvtsi128_si32(r);
}
/* lm_head.c's codes head with AVX2 (rt_head_dot_codes_vnni's sums and fp32 steps, the same bits):
 * a group's 64 bytes as two halves, each plane's vpmaddubsw pair sums (codes ≤ 3 times |hi| ≤ 128 or lo
 * ≤ 127: at most 768) added in 16 bits over the 4 planes (3,072 at most), widened into the half's 8
 * int32 lanes by vpmaddwd with ones: lanes 0–7 and 8–15 of the zmm kernel, in two accumulators. */
__attribute__((target("avx2,fma"))) float rt_head_dot_codes_avx2(const uint8_t *codes, const float *scales,
                                                                 const rt_head_x *x) {
    const __m256i three = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i lane_block[2];
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int h = 0; h < 2; h++) lane_block[h] = _mm256_loadu_si256((const void *)(x->lane_block + 8 * h));
    for (int32_t g = 0; g < x->groups; g++) {
        const __m256 d4 = _mm256_castps128_ps256(_mm_loadu_ps(scales + (size_t)g * (size_t)x->blocks_a_group));
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i c = _mm256_loadu_si256((const void *)(codes + 64 * (size_t)g + 32 * h));
            const int8_t *xh = x->hi + 256 * (size_t)g + 32 * h, *xl = x->lo + 256 * (size_t)g + 32 * h;
            __m256i hi = _mm256_setzero_si256(), lo = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++) {
                const __m256i cp = _mm256_and_si256(_mm256_srli_epi16(c, 2 * p), three);
                hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(cp, _mm256_loadu_si256((const void *)(xh + 64 * p))));
                lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(cp, _mm256_loadu_si256((const void *)(xl + 64 * p))));
            }
            __m256i sum =
                _mm256_add_epi32(_mm256_slli_epi32(_mm256_madd_epi16(hi, ones), 7), _mm256_madd_epi16(lo, ones));
            sum = _mm256_sub_epi32(sum, _mm256_loadu_si256((const void *)(x->sl + 16 * (size_t)g + 8 * h)));
            const __m256 d = _mm256_permutevar8x32_ps(d4, lane_block[h]);
            acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), d, acc[h]);
        }
    }
    const __m256 a8 = _mm256_add_ps(acc[0], acc[1]);
    const __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1));
    const __m128 a2 = _mm_add_ps(a4, _mm_movehl_ps(a4, a4));
    return _mm_cvtss_f32(_mm_add_ss(a2, _mm_movehdup_ps(a2)));
}

/* ---- the group-scaled kernels (forward.c, family.h's rt_units_call): units_generic.h on ymm ---- */

#define UV_ROWS 8
#define UV_TILE 6 /* 6 tokens: their 16-bit chains and fp32 rows, with the field, in the 16 ymm (docs/performance.md) */
#define UV_RESTS 0x3c /* 5, 4, 3, 2 (and 1): the rest in one tile */
#define UV_INLINE __attribute__((target("avx2"), always_inline)) static inline
/* bytes of codes ahead that a kernel asks into L1 as it reads a cache line (0: none): a decode's
   token one thread, codes from memory: 1.2x faster per unit with 2048 (bench/bench_units --rows
   131072, docs/performance.md), the same from L2 */
#define UV_PREFETCH 2048
/* a hint for the line UV_PREFETCH bytes past p, its address made as an integer: past a matrix's
   end it names no object (no pointer is formed there), and a prefetch never faults */
UV_INLINE void uv_prefetch(const void *p) { _mm_prefetch((const char *)((uintptr_t)p + UV_PREFETCH), _MM_HINT_T0); }
typedef __m256i uv_i;

/* a unit's fields without VNNI: vpmaddubsw pair sums (codes ≤ 3 times |x| ≤ 127: at most 762)
 * added in 16 bits for two groups (8 fields: 6,096 at most; below 3 tokens two chains of 4 fields,
 * 3,048 each), widened into the rows' int32 lanes
 * by vpmaddwd with ones */
UV_INLINE void uv_sums(uv_i *a, const uint8_t *wu, const int8_t *const *x, size_t xu, const int NT, const int G) {
#pragma GCC unroll 8
    for (int g0 = 0; g0 < G; g0 += 2) {
        /* below 3 tokens two chains a token (the odd fields' apart): the chains' adds, not the
           units' products, would set the pace of a decode's token */
        const int C = NT < 3 ? 2 : 1;
        __m256i h[UV_TILE][2];
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) h[j][0] = h[j][1] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int i = 0; i < 2; i++) {
            const int g = g0 + i;
            if (g >= G) break;
            const __m256i v = _mm256_loadu_si256((const void *)(wu + 32 * g));
            if (UV_PREFETCH && i == 0) uv_prefetch(wu + 32 * g);
#pragma GCC unroll 4
            for (int f = 0; f < 4; f++) {
                const __m256i k = _mm256_and_si256(_mm256_srli_epi16(v, 2 * f), _mm256_set1_epi8(3));
#pragma GCC unroll 8
                for (int j = 0; j < NT; j++) {
                    int32_t q;
                    memcpy(&q, x[j] + xu + 16 * (size_t)g + 4 * (size_t)f, 4);
                    /* each token's chain in its register, in order: GCC would otherwise reassociate
                       the adds and spill the products (24 stores and loads a unit of 4 tokens) */
                    __m256i *hc = &h[j][C == 2 ? f & 1 : 0];
                    *hc = _mm256_add_epi16(*hc, _mm256_maddubs_epi16(k, _mm256_set1_epi32(q)));
                    __asm__("" : "+x"(*hc));
                }
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) {
            const __m256i hj = C == 2 ? _mm256_add_epi16(h[j][0], h[j][1]) : h[j][0];
            a[j] = _mm256_add_epi32(a[j], _mm256_madd_epi16(hj, _mm256_set1_epi16(1)));
        }
    }
}

#define UV_TILE3 2 /* 5 units' 16-bit sums of 2 tokens: 10 ymm */

/* A base-3 run (rsr_artifact.h, RSR_UNITS_B3_ROWS8) by pairs of vectors q, q + 1 as b3_pairs.h's
 * rt_b3_packs says (a unit of one token 1.5× the 2-bit codes' time by a multiply a digit, 1.3× by
 * pairs; docs/performance.md) */
UV_INLINE __m256i uv_b3_pair(__m256i t, int m) {
    const __m256i tm = m ? _mm256_mullo_epi16(t, _mm256_set1_epi16((short)rsr_b3_pow3[2 * m])) : t;
    return _mm256_mulhi_epu16(tm, _mm256_set1_epi16(9));
}
UV_INLINE void uv_b3_fields(const __m256i t[2], int i, __m256i k[2]) {
    const __m256i first = _mm256_setr_epi8(RT_B3_FIRST, RT_B3_FIRST),
                  second = _mm256_setr_epi8(RT_B3_SECOND, RT_B3_SECOND);
    const __m256i e = _mm256_packus_epi16(uv_b3_pair(t[rt_b3_packs[i].va], rt_b3_packs[i].ma),
                                          uv_b3_pair(t[rt_b3_packs[i].vb], rt_b3_packs[i].mb));
    k[0] = _mm256_shuffle_epi8(first, e), k[1] = _mm256_shuffle_epi8(second, e);
}

/* a base-3 run's sums (units_generic.h's uv_run3): vpmaddubsw pair sums (codes ≤ 2: the run's 8
 * vectors at most 4,064) in 16 bits for each unit and token, widened into the rows' int32 lanes by
 * vpmaddwd with ones at the end */
typedef __m256i uv_h;
UV_INLINE uv_h uv_h_begin(uv_i a) {
    (void)a;
    return _mm256_setzero_si256();
}
UV_INLINE uv_h uv_h_add(uv_h h, uv_i k, int32_t v) {
    h = _mm256_add_epi16(h, _mm256_maddubs_epi16(k, _mm256_set1_epi32(v)));
    __asm__("" : "+x"(h)); /* as in uv_sums */
    return h;
}
UV_INLINE uv_i uv_h_end(uv_i a, uv_h h) { return _mm256_add_epi32(a, _mm256_madd_epi16(h, _mm256_set1_epi16(1))); }

#include "units_generic.h"

__attribute__((target("avx2"))) void rt_units_rows8_avx2(const rt_units_call *c) { uv_units(c); }
__attribute__((target("avx2"))) void rt_b3_to_i2_rows8_avx2(const uint8_t *b3, int32_t units, uint8_t *i2) {
    uv_b3_to_i2(b3, units, i2);
}

#endif
