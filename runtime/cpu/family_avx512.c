/*
 * family_avx512.c — the AVX-512 family of cpu.h (with or without VNNI; the runtime itself is built
 * for the baseline ISA): every AVX-512 intrinsic of the runtime. The attention kernels' vocabulary
 * (attn_generic.h: 16 lanes, one zmm register per vector, masked loads and stores for the tails),
 * the activations' int8 quantisation (forward.c), the int8 LM head's dots (lm_head.c, VNNI) and
 * Louver's passes over its index (louver.c: the code pass with VNNI, the box bounds, the selection).
 *
 * vec_reduce's tree: (P0 + P2) + (P1 + P3) with Pc = (l0 + l2) + (l1 + l3) over the four lanes l
 * of 128-bit chunk c (fp addition is commutative, so x + swap(x) gives each pair's sum in either
 * lane); vec_hsum is its transposing form. vec_total is the compiler's reduction.
 */
#include <math.h>
#include <string.h>

#include "attn_kernels.h"
#include "b3_pairs.h"
#include "family.h"
#include "rsr_artifact.h"
#include "louver_kernels.h"

#ifdef ATTN_FAMILIES_X86
#include <immintrin.h>

typedef __m512 vec;
#define VEC_W 16
#define VEC_ACCS 16
#define VEC_MASKED_TAIL 1
#define VEC_SCORES_BY_BLOCK 0
#define VEC_FN __attribute__((target("avx512f")))
#define VEC_TYPED __attribute__((target("avx512f"), always_inline)) inline
#define VEC static __attribute__((unused)) VEC_TYPED /* the vocabulary: the kernels use what they need */
#define VEC_FAMILY attn_family_avx512

VEC vec vec_zero(void) { return _mm512_setzero_ps(); }
VEC vec vec_set1(float x) { return _mm512_set1_ps(x); }
VEC vec vec_loadu(const float *p) { return _mm512_loadu_ps(p); }
VEC void vec_storeu(float *p, vec a) { _mm512_storeu_ps(p, a); }
VEC vec vec_add(vec a, vec b) { return _mm512_add_ps(a, b); }
VEC vec vec_sub(vec a, vec b) { return _mm512_sub_ps(a, b); }
VEC vec vec_mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
VEC vec vec_fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
VEC vec vec_max(vec a, vec b) { return _mm512_max_ps(a, b); }
VEC vec vec_min(vec a, vec b) { return _mm512_min_ps(a, b); }
VEC int vec_any_zero(vec a) { return _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_EQ_OQ) != 0; }

VEC __mmask16 lanes_below(int32_t n) { return (__mmask16)((1u << n) - 1); }
VEC vec vec_load_part(const float *p, int32_t n) { return _mm512_maskz_loadu_ps(lanes_below(n), p); }
VEC void vec_store_part(float *p, int32_t n, vec a) { _mm512_mask_storeu_ps(p, lanes_below(n), a); }
VEC vec vec_keep(vec a, int32_t n) { return _mm512_maskz_mov_ps(lanes_below(n), a); }

VEC vec vec_row(const void *row, int32_t i, int32_t type, vec sc) {
    switch (type) {
    case ATTN_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i))), 16));
    case ATTN_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i)));
    case ATTN_Q8:
        return _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((const int8_t *)row + i)))), sc);
    default: return _mm512_loadu_ps((const float *)row + i);
    }
}

VEC float vec_reduce(vec a) {
    a = _mm512_add_ps(a, _mm512_permute_ps(a, _MM_SHUFFLE(1, 0, 3, 2)));
    a = _mm512_add_ps(a, _mm512_permute_ps(a, _MM_SHUFFLE(2, 3, 0, 1)));
    a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, _MM_SHUFFLE(1, 0, 3, 2)));
    a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(a);
}

/* Sixteen vectors in, one vector of their sixteen horizontal sums out (a transposing tree). */
VEC vec vec_hsum(const vec a[16]) {
    __m512 s[8], u[4];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        s[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        u[i] = _mm512_add_ps(_mm512_shuffle_ps(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 w01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(1, 0, 1, 0)),
                               _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 w23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(1, 0, 1, 0)),
                               _mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(w01, w23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(w01, w23, _MM_SHUFFLE(3, 1, 3, 1)));
}

VEC float vec_total(vec a) { return _mm512_reduce_add_ps(a); }
#define VEC_HAS_REDUCE_MAX 1
VEC float vec_reduce_max(vec a) { return _mm512_reduce_max_ps(a); }

/* exp(x) for x ≤ 0 (and moderately positive x): 2^n · p(r), r = x − n·ln2, |r| ≤ ln2/2, with
 * p the degree-7 Taylor polynomial (relative error below 1e-7). scalef handles underflow. */
VEC vec vec_exp(vec x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(88.5f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

#include "attn_generic.h"

/* ---- the activations' int8 quantisation (forward.c) ---- */

/* forward.c's per-token absmax quantisation to int8 (quantize_scalar), 16 lanes at a time and
 * bit for bit: max_ps returns its second operand when either is NaN, so max(|x|, amax) skips a
 * NaN and max(v, -128) maps one to -128, as fmaxf does; rounding to nearest even is rintf's
 * default mode; x·scale is the same single multiplication. */
__attribute__((target("avx512f"))) float rt_quantize_avx512(int8_t *q, const float *x, int32_t n) {
    __m512 vmax = _mm512_setzero_ps();
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), vmax);
    float amax = _mm512_reduce_max_ps(vmax);
    for (; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float scale = 127.0f / fmaxf(amax, 1e-5f);
    __m512 vs = _mm512_set1_ps(scale), lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        _mm_storeu_si128((__m128i *)(void *)(q + i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
    }
    for (; i < n; i++) q[i] = (int8_t)fminf(fmaxf(rintf(x[i] * scale), -128.0f), 127.0f);
    return scale;
}

/* ---- the int8 LM head (lm_head.c) ---- */

/* lm_head.c's int8 head: Σ (q + 128)·xq over n entries (a multiple of 64); the caller removes
 * 128·Σ xq. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) int32_t rt_head_dot_q8_vnni(const uint8_t *w, const int16_t *x,
                                                                                   int32_t n) {
    __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
    for (int32_t i = 0; i < n; i += 64) {
        __m512i w0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const void *)(w + i)));
        __m512i w1 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const void *)(w + i + 32)));
        acc0 = _mm512_dpwssd_epi32(acc0, w0, _mm512_loadu_si512((const void *)(x + i)));
        acc1 = _mm512_dpwssd_epi32(acc1, w1, _mm512_loadu_si512((const void *)(x + i + 32)));
    }
    return _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}

/* NJ (constant once inlined) of the vectors x[0..NJ) against the block's RT_HEAD_ROWS rows:
 * RT_HEAD_ROWS · NJ independent vpdpwssd chains, each row's 32 entries loaded and widened once for
 * the NJ vectors and each vector's loaded once for the rows */
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
head_rows_nj(const uint8_t *w, int32_t stride, const int16_t *const *x, int32_t n, int32_t k, int32_t *sums,
             const int NJ) {
    __m512i a[RT_HEAD_ROWS][4];
#pragma GCC unroll 4
    for (int r = 0; r < RT_HEAD_ROWS; r++)
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++) a[r][j] = _mm512_setzero_si512();
    for (int32_t i = 0; i < n; i += 64) { /* a cache line of each row at a time */
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512i xv[4];
#pragma GCC unroll 4
            for (int j = 0; j < NJ; j++) xv[j] = _mm512_loadu_si512((const void *)(x[j] + i + 32 * h));
#pragma GCC unroll 4
            for (int r = 0; r < RT_HEAD_ROWS; r++) {
                const __m512i wr =
                    _mm512_cvtepu8_epi16(_mm256_loadu_si256((const void *)(w + (size_t)r * stride + i + 32 * h)));
#pragma GCC unroll 4
                for (int j = 0; j < NJ; j++) a[r][j] = _mm512_dpwssd_epi32(a[r][j], wr, xv[j]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RT_HEAD_ROWS; r++)
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++) sums[r * k + j] = _mm512_reduce_add_epi32(a[r][j]);
}

/* rt_head_dot_q8_vnni of RT_HEAD_ROWS rows with each of k vectors: sums[r·k + j] is exactly
 * rt_head_dot_q8_vnni(row r, x[j]) (integer sums in another order). Reading a block of rows once for
 * four vectors, instead of once per vector, is what lets many vectors share one pass over the head. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void rt_head_dot_q8_vnni_rows(const uint8_t *w, int32_t stride,
                                                                                     const int16_t *const *x, int32_t k,
                                                                                     int32_t n, int32_t *sums) {
    for (int32_t j = 0; j < k; j += 4) { /* the vectors four at a time: 16 chains */
        const int32_t nj = k - j < 4 ? k - j : 4;
        if (nj == 4)
            head_rows_nj(w, stride, x + j, n, k, sums + j, 4);
        else if (nj == 3)
            head_rows_nj(w, stride, x + j, n, k, sums + j, 3);
        else if (nj == 2)
            head_rows_nj(w, stride, x + j, n, k, sums + j, 2);
        else
            head_rows_nj(w, stride, x + j, n, k, sums + j, 1);
    }
}

/* lm_head.c's codes head (a group-scaled head held as 2-bit codes; family.h): one row's
 * Σ_b d_b·Σ_j (c_j − 1)·xq_j in 16 fp32 lanes, reduced in the order below (which
 * rt_head_dot_codes_avx2 and unit.head's emulation follow). Each group
 * of 256 weights is 64 bytes of codes, plane p (bits 2p, 2p + 1 of every byte) against x's plane
 * p, split as xq = 128·hi + lo into two vpdpbusd chains; lane l's sum less its Σ xq (sl) is exact,
 * then scaled by its block's d (vpermps of the group's scales by `lane_block`) and added by one
 * fma a group. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) float
rt_head_dot_codes_vnni(const uint8_t *codes, const float *scales, const rt_head_x *x) {
    const __m512i three = _mm512_set1_epi8(3);
    const __m512i lane_block = _mm512_loadu_si512((const void *)x->lane_block);
    __m512 acc = _mm512_setzero_ps();
    for (int32_t g = 0; g < x->groups; g++) {
        const __m512i c = _mm512_loadu_si512((const void *)(codes + 64 * (size_t)g));
        const int8_t *xh = x->hi + 256 * (size_t)g, *xl = x->lo + 256 * (size_t)g;
        __m512i hi = _mm512_setzero_si512(), lo = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            const __m512i cp = _mm512_and_si512(_mm512_srli_epi16(c, 2 * p), three);
            hi = _mm512_dpbusd_epi32(hi, cp, _mm512_loadu_si512((const void *)(xh + 64 * p)));
            lo = _mm512_dpbusd_epi32(lo, cp, _mm512_loadu_si512((const void *)(xl + 64 * p)));
        }
        __m512i sum = _mm512_add_epi32(_mm512_slli_epi32(hi, 7), lo);
        sum = _mm512_sub_epi32(sum, _mm512_loadu_si512((const void *)(x->sl + 16 * (size_t)g)));
        const __m512 d = _mm512_permutexvar_ps(
            lane_block, _mm512_castps128_ps512(_mm_loadu_ps(scales + (size_t)g * (size_t)x->blocks_a_group)));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), d, acc);
    }
    /* lanes i and i + 8, then i and i + 4, i and i + 2, 0 and 1 */
    const __m256 a8 =
        _mm256_add_ps(_mm512_castps512_ps256(acc), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
    const __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1));
    const __m128 a2 = _mm_add_ps(a4, _mm_movehl_ps(a4, a4));
    return _mm_cvtss_f32(_mm_add_ss(a2, _mm_movehdup_ps(a2)));
}

/* ---- the group-scaled kernels (forward.c, family.h's rt_units_call): units_generic.h on zmm ---- */

#define UV_ROWS 16
#define UV_TILE 8
#define UV_RESTS 0x14 /* 4, 2 (and 1) */
#define UV_INLINE __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline
typedef __m512i uv_i;

/* a unit's fields straight into the 16 rows' int32 lanes: vpdpbusd with x's 4 bytes broadcast. With
 * fewer than 4 tokens (decode) each token's sum runs in 4/NT chains added at the end (int32: the
 * same sums), so that vpdpbusd's latency does not set the pace of one chain. */
UV_INLINE void uv_sums(uv_i *a, const uint8_t *wu, const int8_t *const *x, size_t xu, const int NT, const int G) {
    const int C = NT >= 4 ? 1 : 4 / NT; /* chains a token */
    __m512i b[8][4];
#pragma GCC unroll 8
    for (int j = 0; j < NT; j++) {
        b[j][0] = a[j];
#pragma GCC unroll 4
        for (int i = 1; i < C; i++) b[j][i] = _mm512_setzero_si512();
    }
#pragma GCC unroll 16
    for (int g = 0; g < G; g++) {
        __m512i v = _mm512_loadu_si512(wu + 64 * g);
        /* a register, read by the four fields' shifts: GCC otherwise loads the codes again for each
           (a memory operand of vpsrlw), and a unit of one token then took 4.5 ns instead of 3.3 on a
           Zen 5, whose loads of 64 bytes are what a decode's kernel waits on (docs/performance.md);
           a whole tile of 8 tokens is 3% faster with the loads */
        if (NT < UV_TILE) __asm__("" : "+v"(v));
#pragma GCC unroll 4
        for (int f = 0; f < 4; f++) {
            const __m512i k = _mm512_and_si512(_mm512_srli_epi16(v, 2 * f), _mm512_set1_epi8(3));
#pragma GCC unroll 8
            for (int j = 0; j < NT; j++) {
                int32_t q;
                memcpy(&q, x[j] + xu + 16 * (size_t)g + 4 * (size_t)f, 4);
                b[j][f % C] = _mm512_dpbusd_epi32(b[j][f % C], k, _mm512_set1_epi32(q));
            }
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NT; j++) {
        a[j] = b[j][0];
#pragma GCC unroll 4
        for (int i = 1; i < C; i++) a[j] = _mm512_add_epi32(a[j], b[j][i]);
    }
}

#define UV_TILE3 4 /* 5 units' sums of 4 tokens: 20 zmm */

/* A base-3 run (rsr_artifact.h, RSR_UNITS_B3_ROWS16) by pairs of vectors q, q + 1 as b3_pairs.h's
 * rt_b3_packs says, on zmm (vpackuswb and vpshufb work in each 16-byte lane as on ymm) */
UV_INLINE __m512i uv_b3_pair(__m512i t, int m) {
    /* w·9ᵐ by a multiply (from w·9ᵐ⁻¹ by a shift and an add measured slower on a Zen 5) */
    const __m512i tm = m ? _mm512_mullo_epi16(t, _mm512_set1_epi16((short)rsr_b3_pow3[2 * m])) : t;
    return _mm512_mulhi_epu16(tm, _mm512_set1_epi16(9));
}
UV_INLINE void uv_b3_fields(const __m512i t[2], int i, __m512i k[2]) {
    const __m512i first = _mm512_broadcast_i32x4(_mm_setr_epi8(RT_B3_FIRST));
    const __m512i second = _mm512_broadcast_i32x4(_mm_setr_epi8(RT_B3_SECOND));
    const __m512i e = _mm512_packus_epi16(uv_b3_pair(t[rt_b3_packs[i].va], rt_b3_packs[i].ma),
                                          uv_b3_pair(t[rt_b3_packs[i].vb], rt_b3_packs[i].mb));
    k[0] = _mm512_shuffle_epi8(first, e), k[1] = _mm512_shuffle_epi8(second, e);
}

/* a base-3 run's sums (units_generic.h's uv_run3): vpdpbusd straight into the unit's int32 sums, 5
 * chains a token (a tile of 8 tokens in passes of 3 and 2 units measured no faster, and took clang
 * with the sanitizers 20 minutes) */
typedef __m512i uv_h;
UV_INLINE uv_h uv_h_begin(uv_i a) { return a; }
UV_INLINE uv_h uv_h_add(uv_h h, uv_i k, int32_t v) { return _mm512_dpbusd_epi32(h, k, _mm512_set1_epi32(v)); }
UV_INLINE uv_i uv_h_end(uv_i a, uv_h h) {
    (void)a;
    return h;
}

#include "units_generic.h"

__attribute__((target("avx512f,avx512bw,avx512vnni"))) void rt_units_rows16_vnni(const rt_units_call *c) {
    uv_units(c);
}
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void rt_b3_to_i2_rows16_vnni(const uint8_t *b3, int32_t units,
                                                                                    uint8_t *i2) {
    uv_b3_to_i2(b3, units, i2);
}

/* ---- Louver's passes (louver.c, louver_kernels.h) ---- */

#define AVX512 __attribute__((target("avx512f")))
#define AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* Integer dots of the 16 keys of a tile with NH quantised queries, two accumulators per head so
 * that the dependency chains overlap. */
#define DEFINE_TILE_DOTS(NH)                                                                                           \
    AVX512VNNI static inline void tile_dots_##NH(const uint8_t *tile, int32_t quads, const int32_t *qw,                \
                                                 size_t qstride, __m512i *out) {                                       \
        __m512i a0[NH], a1[NH];                                                                                        \
        _Pragma("GCC unroll 8") for (int h = 0; h < NH; h++) a0[h] = a1[h] = _mm512_setzero_si512();                   \
        int32_t c = 0;                                                                                                 \
        for (; c + 2 <= quads; c += 2) {                                                                               \
            __m512i k0 = _mm512_loadu_si512(tile + (size_t)c * 64),                                                    \
                    k1 = _mm512_loadu_si512(tile + (size_t)c * 64 + 64);                                               \
            _Pragma("GCC unroll 8") for (int h = 0; h < NH; h++) {                                                     \
                a0[h] = _mm512_dpbusd_epi32(a0[h], k0, _mm512_set1_epi32(qw[(size_t)h * qstride + (size_t)c]));        \
                a1[h] = _mm512_dpbusd_epi32(a1[h], k1, _mm512_set1_epi32(qw[(size_t)h * qstride + (size_t)c + 1]));    \
            }                                                                                                          \
        }                                                                                                              \
        if (c < quads) {                                                                                               \
            __m512i k0 = _mm512_loadu_si512(tile + (size_t)c * 64);                                                    \
            _Pragma("GCC unroll 8") for (int h = 0; h < NH; h++) a0[h] =                                               \
                _mm512_dpbusd_epi32(a0[h], k0, _mm512_set1_epi32(qw[(size_t)h * qstride + (size_t)c]));                \
        }                                                                                                              \
        _Pragma("GCC unroll 8") for (int h = 0; h < NH; h++) out[h] = _mm512_add_epi32(a0[h], a1[h]);                  \
    }
DEFINE_TILE_DOTS(1)
DEFINE_TILE_DOTS(2)
DEFINE_TILE_DOTS(4)

AVX512VNNI void louver_tile_bounds_vnni(const uint8_t *tile, int32_t quads, const int32_t *qw, size_t qstride,
                                        const head_q *hq, int32_t nh, const float *kc, const float *ki, const float *ke,
                                        float (*ub)[TILE], float (*lb)[TILE]) {
    const __m512 vc = _mm512_loadu_ps(kc), vi = _mm512_loadu_ps(ki), ve = _mm512_loadu_ps(ke);
    for (int32_t h0 = 0; h0 < nh;) {
        __m512i I[4];
        int32_t m = nh - h0 >= 4 ? 4 : nh - h0 >= 2 ? 2 : 1;
        if (m == 4)
            tile_dots_4(tile, quads, qw + (size_t)h0 * qstride, qstride, I);
        else if (m == 2)
            tile_dots_2(tile, quads, qw + (size_t)h0 * qstride, qstride, I);
        else
            tile_dots_1(tile, quads, qw + (size_t)h0 * qstride, qstride, I);
        for (int32_t g = 0; g < m; g++) {
            const head_q *p = &hq[h0 + g];
            __m512 A = _mm512_cvtepi32_ps(_mm512_sub_epi32(I[g], _mm512_set1_epi32(p->off)));
            __m512 t1 = _mm512_mul_ps(_mm512_set1_ps(p->s), A), t2 = _mm512_mul_ps(_mm512_set1_ps(p->fnorm), vi);
            __m512 t3 = _mm512_mul_ps(_mm512_set1_ps(p->qnorm), ve);
            _mm512_storeu_ps(ub[h0 + g], _mm512_add_ps(_mm512_mul_ps(vc, _mm512_add_ps(t1, t2)), t3));
            if (lb) _mm512_storeu_ps(lb[h0 + g], _mm512_sub_ps(_mm512_mul_ps(vc, _mm512_sub_ps(t1, t2)), t3));
        }
        h0 += m;
    }
}

/* One block's code pass for nh query heads at once: per 16-key tile the integer dots of every
 * head (one read of the tile's codes), the upper bounds in registers, and the positions of the
 * keys with ub ≥ τ'' (or forced) appended at out[h], which advances. qw: the heads' Q, packed,
 * quads int32 per head in the order of hp. With ubo (the relative policy, whose τ may still rise):
 * the selected keys' upper bounds appended at ubo[h] too (+∞ for a forced key), and lbmax[h]
 * raised to the best lower bound of a key that is not forced. */
AVX512VNNI void louver_block_select_vnni(const uint8_t *codes, int32_t tiles, int32_t quads, const int32_t *qw,
                                         const head_q *const *hp, int32_t nh, const float *kc, const float *ki,
                                         const float *ke, const uint16_t *frc, int32_t base, int32_t **out, float **ubo,
                                         float *lbmax) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 lbm[RSR_LOUVER_GROUP_MAX];
    for (int32_t h = 0; ubo && h < nh; h++) lbm[h] = _mm512_set1_ps(-INFINITY);
    for (int32_t t = 0; t < tiles; t++) {
        const uint8_t *tile = codes + (size_t)t * 64 * (size_t)quads;
        const __m512 vc = _mm512_loadu_ps(kc + TILE * t), vi = _mm512_loadu_ps(ki + TILE * t);
        const __m512 ve = _mm512_loadu_ps(ke + TILE * t);
        const __m512i pos = _mm512_add_epi32(iota, _mm512_set1_epi32(base + TILE * t));
        for (int32_t h0 = 0; h0 < nh;) {
            __m512i I[4];
            int32_t m = nh - h0 >= 4 ? 4 : nh - h0 >= 2 ? 2 : 1;
            if (m == 4)
                tile_dots_4(tile, quads, qw + (size_t)h0 * (size_t)quads, (size_t)quads, I);
            else if (m == 2)
                tile_dots_2(tile, quads, qw + (size_t)h0 * (size_t)quads, (size_t)quads, I);
            else
                tile_dots_1(tile, quads, qw + (size_t)h0 * (size_t)quads, (size_t)quads, I);
            for (int32_t g = 0; g < m; g++) {
                const head_q *p = hp[h0 + g];
                __m512 A = _mm512_cvtepi32_ps(_mm512_sub_epi32(I[g], _mm512_set1_epi32(p->off)));
                __m512 t1 = _mm512_mul_ps(_mm512_set1_ps(p->s), A), t2 = _mm512_mul_ps(_mm512_set1_ps(p->fnorm), vi);
                __m512 t3 = _mm512_mul_ps(_mm512_set1_ps(p->qnorm), ve);
                __m512 ub = _mm512_add_ps(_mm512_mul_ps(vc, _mm512_add_ps(t1, t2)), t3);
                __mmask16 k = (__mmask16)(_mm512_cmp_ps_mask(ub, _mm512_set1_ps(p->tauk), _CMP_GE_OQ) | frc[t]);
                /* compressed in a register and stored whole (TILE slots of slack: scratch_reserve):
                 * the memory form of vpcompressd is microcoded on AMD Zen 4, and with it this pass
                 * took 7.2 ms instead of 3.7 at 128K keys (docs/louver.md) */
                _mm512_storeu_si512(out[h0 + g], _mm512_maskz_compress_epi32(k, pos));
                out[h0 + g] += __builtin_popcount(k);
                if (ubo) {
                    _mm512_storeu_ps(ubo[h0 + g], _mm512_maskz_compress_ps(
                                                      k, _mm512_mask_mov_ps(ub, frc[t], _mm512_set1_ps(INFINITY))));
                    ubo[h0 + g] += __builtin_popcount(k);
                    __m512 lb = _mm512_sub_ps(_mm512_mul_ps(vc, _mm512_sub_ps(t1, t2)), t3);
                    /* max(lb, m) gives m where lb is NaN */
                    lbm[h0 + g] = _mm512_mask_max_ps(lbm[h0 + g], (__mmask16)~frc[t], lb, lbm[h0 + g]);
                }
            }
            h0 += m;
        }
    }
    for (int32_t h = 0; ubo && h < nh; h++) {
        float v = _mm512_reduce_max_ps(lbm[h]);
        if (v > lbmax[h]) lbmax[h] = v;
    }
}

/* The box bound of one block when d = 128 is cut into 8 subspaces of 16: the eight horizontal
 * sums in one transposed reduction instead of eight separate ones. The sums come out in another
 * order than louver_box_bounds_avx512's; the slack covers any order (docs/louver.md). */
AVX512 static float box_bound_128x8(const float *q, const float *lo, const float *hi, const float *qn,
                                    const float *bn) {
    __m512 m[8], u[4], v[2];
    for (int32_t s = 0; s < 8; s++) {
        __m512 qv = _mm512_loadu_ps(q + 16 * s);
        m[s] = _mm512_max_ps(_mm512_mul_ps(qv, _mm512_loadu_ps(lo + 16 * s)),
                             _mm512_mul_ps(qv, _mm512_loadu_ps(hi + 16 * s)));
    }
    /* u[p]: the halves of m[2p] and of m[2p+1] added (four 4-lane partial sums) */
    for (int32_t p = 0; p < 4; p++)
        u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(m[2 * p], m[2 * p + 1], 0x44),
                             _mm512_shuffle_f32x4(m[2 * p], m[2 * p + 1], 0xEE));
    /* v[r]: 128-bit lane c holds four partial sums of m[4r + c] */
    for (int32_t r = 0; r < 2; r++)
        v[r] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * r], u[2 * r + 1], 0x88),
                             _mm512_shuffle_f32x4(u[2 * r], u[2 * r + 1], 0xDD));
    float acc[32];
    for (int32_t r = 0; r < 2; r++) {
        __m512 w = _mm512_add_ps(v[r], _mm512_permute_ps(v[r], 0x4E));
        _mm512_storeu_ps(acc + 16 * r, _mm512_add_ps(w, _mm512_permute_ps(w, 0xB1)));
    }
    float total = 0;
    for (int32_t s = 0; s < 8; s++) {
        float nb = qn[s] * bn[s];
        total += acc[4 * s] < nb ? acc[4 * s] : nb;
    }
    return total;
}

/* bub[b] = the box bound of every step-th block for one query (AVX-512F). */
AVX512 void louver_box_bounds_avx512(const rsr_louver_index *ix, const float *q, const float *qn, float *bub,
                                     int32_t step) {
    const int32_t d = ix->cfg.head_dim, S = ix->cfg.subspaces;
    float t[4096 + 16];
    if (d == 128 && S == 8) { /* subspaces of 16 (sub_start[s] = 16·s) */
        for (int32_t b = 0; b < ix->nblocks; b += step) {
            const float *lo = ix->box + (size_t)b * 2 * (size_t)d;
            bub[b] = box_bound_128x8(q, lo, lo + d, qn, ix->bnorm + (size_t)b * (size_t)S);
        }
        return;
    }
    for (int32_t b = 0; b < ix->nblocks; b += step) {
        const float *lo = ix->box + (size_t)b * 2 * (size_t)d, *hi = lo + d, *bn = ix->bnorm + (size_t)b * (size_t)S;
        int32_t i = 0;
        for (; i + 16 <= d; i += 16) {
            __m512 qv = _mm512_loadu_ps(q + i);
            _mm512_storeu_ps(t + i, _mm512_max_ps(_mm512_mul_ps(qv, _mm512_loadu_ps(lo + i)),
                                                  _mm512_mul_ps(qv, _mm512_loadu_ps(hi + i))));
        }
        for (; i < d; i++) t[i] = fmaxf(q[i] * lo[i], q[i] * hi[i]);
        float total = 0;
        for (int32_t s = 0; s < S; s++) {
            float acc = 0;
            int32_t i0 = ix->sub_start[s], i1 = ix->sub_start[s + 1];
            if (i1 - i0 == 16)
                acc = _mm512_reduce_add_ps(_mm512_loadu_ps(t + i0));
            else
                for (int32_t k = i0; k < i1; k++) acc += t[k];
            float nb = qn[s] * bn[s];
            total += acc < nb ? acc : nb;
        }
        bub[b] = total;
    }
}

/* Appends the positions base + t of the tile's keys with ub[t] ≥ tk or forced; returns the count. */
AVX512 int32_t louver_select_avx512(const float *ub, float tk, uint16_t frc, int32_t base, int32_t *out) {
    __mmask16 m = (__mmask16)(_mm512_cmp_ps_mask(_mm512_loadu_ps(ub), _mm512_set1_ps(tk), _CMP_GE_OQ) | frc);
    if (!m) return 0;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    /* compressed in a register, then stored whole (TILE slots of slack: scratch_reserve) */
    _mm512_storeu_si512(out, _mm512_maskz_compress_epi32(m, _mm512_add_epi32(iota, _mm512_set1_epi32(base))));
    return __builtin_popcount(m);
}
#endif
