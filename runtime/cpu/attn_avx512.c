/*
 * attn_avx512.c — the attention kernels' vocabulary on AVX-512 (attn_generic.h): 16 lanes, one
 * zmm register per vector, masked loads and stores for the tails. The family of cpu.h's AVX-512
 * kernel families (with or without VNNI; the runtime itself is built for the baseline ISA).
 *
 * vec_reduce's tree: (P0 + P2) + (P1 + P3) with Pc = (l0 + l2) + (l1 + l3) over the four lanes l
 * of 128-bit chunk c (fp addition is commutative, so x + swap(x) gives each pair's sum in either
 * lane); vec_hsum is its transposing form. vec_total is the compiler's reduction.
 */
#include "attn_kernels.h"

#ifdef ATTN_FAMILIES_X86
#include <immintrin.h>

typedef __m512 vec;
#define VEC_W 16
#define VEC_ACCS 16
#define VEC_MASKED_TAIL 1
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
#endif
