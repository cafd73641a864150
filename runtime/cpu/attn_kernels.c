/*
 * attn_kernels.c — attention kernels: scores, online softmax, value accumulation. An AVX-512 version
 * (here) or an 8-lane one (attn_v8.h: AVX2, NEON) is chosen at run time by the runtime's kernel
 * family (the runtime itself is built for the baseline ISA); the portable version is the
 * specification and the fallback.
 */
#include "attn_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rsr.h"
#include "rsr_numerics.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ATTN_X86 1
#include <immintrin.h>
#endif

void attn_state_clear(attn_state *st, int32_t d) {
    st->m = -INFINITY;
    st->l = 0;
    memset(st->o, 0, sizeof(float) * (size_t)d);
}

void attn_state_merge(attn_state *a, const attn_state *b, int32_t d) {
    if (b->m == -INFINITY) return;
    if (a->m == -INFINITY) {
        a->m = b->m, a->l = b->l;
        memcpy(a->o, b->o, sizeof(float) * (size_t)d);
        return;
    }
    float m = fmaxf(a->m, b->m), ca = expf(a->m - m), cb = expf(b->m - m);
    for (int32_t i = 0; i < d; i++) a->o[i] = a->o[i] * ca + b->o[i] * cb;
    a->l = a->l * ca + b->l * cb;
    a->m = m;
}

void attn_merge_chunks(float *part_o, const float *part_ml, int32_t chunks, int32_t d, float *out) {
    attn_state acc = {.m = part_ml[0], .l = part_ml[1], .o = part_o};
    for (int32_t c = 1; c < chunks; c++) {
        attn_state b = {.m = part_ml[2 * c], .l = part_ml[2 * c + 1], .o = part_o + (size_t)c * (size_t)d};
        attn_state_merge(&acc, &b, d);
    }
    attn_state_finish(&acc, out, d);
}

void attn_state_finish(const attn_state *a, float *out, int32_t d) {
    float inv = a->l > 0 ? 1.0f / a->l : 0.0f;
    for (int32_t i = 0; i < d; i++) out[i] = a->o[i] * inv;
}

/* ---- rows of every element type ---- */

size_t attn_row_bytes(int32_t type, int32_t d) { return rsr_kv_row_bytes(type, d); }

static inline float row_scale(const void *row, int32_t type, int32_t d) {
    return type == ATTN_Q8 ? attn_q8_scale(row, d) : 0.0f;
}

void attn_widen_row(attn_rows r, int64_t j, int32_t d, float *out) {
    const void *row = attn_row(r, j);
    const float sc = row_scale(row, r.type, d);
    for (int32_t i = 0; i < d; i++) out[i] = attn_elem(row, i, r.type, sc);
}

void attn_narrow_row(int32_t type, const float *x, int32_t d, void *out) {
    switch (type) {
    case ATTN_BF16:
        for (int32_t i = 0; i < d; i++) {
            uint16_t h = rsr_f32_to_bf16(x[i]);
            memcpy((char *)out + 2 * (size_t)i, &h, 2);
        }
        return;
    case ATTN_F16:
        for (int32_t i = 0; i < d; i++) {
            uint16_t h = rsr_f32_to_f16(x[i]);
            memcpy((char *)out + 2 * (size_t)i, &h, 2);
        }
        return;
    case ATTN_Q8: {
        float m = 0;
        for (int32_t i = 0; i < d; i++) m = fabsf(x[i]) > m || isnan(x[i]) ? fabsf(x[i]) : m;
        float s = isfinite(m) ? m / 127.0f : NAN;
        int8_t *K = out;
        for (int32_t i = 0; i < d; i++) {
            float r = s > 0 ? rintf(x[i] / s) : 0.0f;
            K[i] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r == r ? r : 0);
        }
        memcpy((char *)out + d, &s, sizeof s);
        return;
    }
    default: memcpy(out, x, sizeof(float) * (size_t)d);
    }
}

/* ---- portable kernels ---- */

static float dot_scalar(const float *q, const void *k, int32_t type, int32_t d) {
    const float sc = row_scale(k, type, d);
    float s = 0;
    for (int32_t i = 0; i < d; i++) s += q[i] * attn_elem(k, i, type, sc);
    return s;
}

/* A new running maximum: what was summed so far is rescaled to it (online softmax). */
void attn_raise_max(attn_state *st, float xmax, int32_t d) {
    float c = st->m == -INFINITY ? 0.0f : expf(st->m - xmax);
    for (int32_t i = 0; i < d; i++) st->o[i] *= c;
    st->l *= c;
    st->m = xmax;
}

static void accumulate_scalar(attn_state *st, float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d) {
    float xmax = -INFINITY;
    for (int32_t j = 0; j < n; j++) xmax = fmaxf(xmax, x[j]);
    if (xmax == -INFINITY) return;
    if (xmax > st->m) attn_raise_max(st, xmax, d);
    for (int32_t j = 0; j < n; j++) {
        float e = expf(x[j] - st->m);
        x[j] = e;
        st->l += e;
        const void *v = attn_row(values, idx ? idx[j] : j);
        const float sc = row_scale(v, values.type, d);
        for (int32_t i = 0; i < d; i++) st->o[i] += e * attn_elem(v, i, values.type, sc);
    }
}

#ifdef ATTN_X86
#define AVX512 __attribute__((target("avx512f")))
/* Kernels written once for every element type: `type` is a constant where they are inlined into
 * the per-type entry points (the switches at the end of each), so each gets its own loads. */
#define TYPED __attribute__((target("avx512f"), always_inline)) inline

/* Elements i .. i+15 of a row as fp32, as attn_elem() gives them; sc: the q8 scale, broadcast. */
TYPED static __m512 load16(const void *row, int32_t i, int32_t type, __m512 sc) {
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

/* The first n < 16 elements from i, the rest zero. */
TYPED static __m512 load_part(const void *row, int32_t i, int32_t n, int32_t type, float sc) {
    if (type == ATTN_F32) return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), (const float *)row + i);
    float b[16] = {0};
    for (int32_t t = 0; t < n; t++) b[t] = attn_elem(row, i + t, type, sc);
    return _mm512_loadu_ps(b);
}

TYPED static __m512 scale16(const void *row, int32_t type, int32_t d) {
    return _mm512_set1_ps(type == ATTN_Q8 ? attn_q8_scale(row, d) : 0.0f);
}

/* exp(x) for x ≤ 0 (and moderately positive x): 2^n · p(r), r = x − n·ln2, |r| ≤ ln2/2, with
 * p the degree-7 Taylor polynomial (relative error below 1e-7). scalef handles underflow. */
AVX512 static inline __m512 exp512(__m512 x) {
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

/* q·k for d a multiple of 16 with the bits the 16-key kernels give this key (scores16,
 * scores16x4 below): one accumulator over the 16-float blocks in order, then the sixteen lanes
 * summed in hsum16's tree for one key, (P0 + P2) + (P1 + P3) with Pc = (l0 + l2) + (l1 + l3) over
 * the four lanes l of 128-bit chunk c (fp addition is commutative, so x + swap(x) gives each
 * pair's sum in either lane). So the dense kernel, Louver's batched buffer scores and attn_dot
 * agree bit for bit. */
TYPED static float dot16_t(const float *q, const void *k, int32_t d, int32_t type) {
    const __m512 sc = scale16(k, type, d);
    __m512 a = _mm512_setzero_ps();
    for (int32_t i = 0; i < d; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load16(k, i, type, sc), a);
    a = _mm512_add_ps(a, _mm512_permute_ps(a, _MM_SHUFFLE(1, 0, 3, 2)));
    a = _mm512_add_ps(a, _mm512_permute_ps(a, _MM_SHUFFLE(2, 3, 0, 1)));
    a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, _MM_SHUFFLE(1, 0, 3, 2)));
    a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(a);
}

TYPED static float dot_t(const float *q, const void *k, int32_t d, int32_t type) {
    if (d % 16 == 0) return dot16_t(q, k, d, type);
    const __m512 sc = scale16(k, type, d);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int32_t i = 0;
    for (; i + 32 <= d; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load16(k, i, type, sc), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), load16(k, i + 16, type, sc), a1);
    }
    if (i + 16 <= d) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load16(k, i, type, sc), a0);
        i += 16;
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), load_part(k, i, d - i, type, _mm512_cvtss_f32(sc)), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

AVX512 static float dot_avx512(const float *q, const void *k, int32_t d, int32_t type) {
    switch (type) {
    case ATTN_BF16: return dot_t(q, k, d, ATTN_BF16);
    case ATTN_F16: return dot_t(q, k, d, ATTN_F16);
    case ATTN_Q8: return dot_t(q, k, d, ATTN_Q8);
    default: return dot_t(q, k, d, ATTN_F32);
    }
}

/* Sixteen vectors in, one vector of their sixteen horizontal sums out (a transposing tree). */
AVX512 static inline __m512 hsum16(__m512 a[16]) {
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

/* Scores of 16 consecutive rows of k for one query; d a multiple of 16. */
TYPED static __m512 scores16(const float *q, attn_rows k, int32_t d, int32_t type) {
    __m512 acc[16], sc[16];
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps(), sc[t] = scale16(attn_row(k, t), type, d);
    for (int32_t i = 0; i < d; i += 16) {
        __m512 qv = _mm512_loadu_ps(q + i);
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++) acc[t] = _mm512_fmadd_ps(qv, load16(attn_row(k, t), i, type, sc[t]), acc[t]);
    }
    return hsum16(acc);
}

/* Scores of 16 consecutive keys for four queries q, q + d, q + 2d, q + 3d (the query heads of a
 * KV head), out[g] for query g; d a multiple of 16. Each (query, key) accumulator takes the same
 * FMAs in the same order as in scores16 and goes through the same hsum16 tree, so every score has
 * scores16's bits; blocks of 4 queries × 4 keys load each key vector once for the four queries
 * (8 loads per 16 FMAs instead of 17: 1.4× faster with the keys in cache). */
TYPED static void scores16x4(const float *q, int32_t d, attn_rows k, __m512 out[4], int32_t type) {
    __m512 r[4][16];
    for (int kb = 0; kb < 4; kb++) { /* keys 4kb .. 4kb + 3 */
        __m512 acc[16], sc[4];
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) sc[j] = scale16(attn_row(k, 4 * kb + j), type, d);
        for (int32_t i = 0; i < d; i += 16) {
            __m512 kv[4], qv[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                kv[j] = load16(attn_row(k, 4 * kb + j), i, type, sc[j]),
                qv[j] = _mm512_loadu_ps(q + (size_t)j * (size_t)d + i);
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++)
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) acc[4 * g + j] = _mm512_fmadd_ps(qv[g], kv[j], acc[4 * g + j]);
        }
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++) r[t / 4][4 * kb + t % 4] = acc[t];
    }
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) out[g] = hsum16(r[g]);
}

/* o[d] += Σ_j x[j] · v_j; D = d as a compile-time constant (64, 128) holds the accumulators in
 * registers, D = 0 takes any d through memory. */
TYPED static void vacc_t(float *o, const float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d,
                         int32_t D, int32_t type) {
    if (D == 0) {
        for (int32_t j = 0; j < n; j++) {
            if (x[j] == 0.0f) continue;
            const __m512 e = _mm512_set1_ps(x[j]);
            const void *v = attn_row(values, idx ? idx[j] : j);
            const __m512 sc = scale16(v, type, d);
            int32_t i = 0;
            for (; i + 16 <= d; i += 16)
                _mm512_storeu_ps(o + i, _mm512_fmadd_ps(e, load16(v, i, type, sc), _mm512_loadu_ps(o + i)));
            for (; i < d; i++) o[i] += x[j] * attn_elem(v, i, type, _mm512_cvtss_f32(sc));
        }
        return;
    }
    __m512 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < D / 16; i++) acc[i] = _mm512_loadu_ps(o + 16 * i);
    for (int32_t j = 0; j < n; j++) {
        if (x[j] == 0.0f) continue;
        __m512 e = _mm512_set1_ps(x[j]);
        const void *v = attn_row(values, idx ? idx[j] : j);
        const __m512 sc = scale16(v, type, D);
#pragma GCC unroll 8
        for (int i = 0; i < D / 16; i++) acc[i] = _mm512_fmadd_ps(e, load16(v, 16 * i, type, sc), acc[i]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < D / 16; i++) _mm512_storeu_ps(o + 16 * i, acc[i]);
}

/* Two heads' o[D] += Σ_j x[j] · v_j over the same value rows (GQA): each row is loaded once for
 * both, and the two heads' chains of FMAs overlap. Each head adds its terms in the order vacc_t
 * does and skips the same zero weights, so it gets vacc_t's bits. */
TYPED static void vacc2_t(float *o0, float *o1, const float *x0, const float *x1, int32_t n, attn_rows values,
                          int32_t D, int32_t type) {
    __m512 a[8], b[8];
#pragma GCC unroll 8
    for (int i = 0; i < D / 16; i++) a[i] = _mm512_loadu_ps(o0 + 16 * i), b[i] = _mm512_loadu_ps(o1 + 16 * i);
    for (int32_t j = 0; j < n; j++) {
        const void *v = attn_row(values, j);
        if (x0[j] == 0.0f && x1[j] == 0.0f) continue;
        const __m512 sc = scale16(v, type, D);
        if (x0[j] != 0.0f && x1[j] != 0.0f) {
            __m512 e0 = _mm512_set1_ps(x0[j]), e1 = _mm512_set1_ps(x1[j]);
#pragma GCC unroll 8
            for (int i = 0; i < D / 16; i++) {
                __m512 vv = load16(v, 16 * i, type, sc);
                a[i] = _mm512_fmadd_ps(e0, vv, a[i]), b[i] = _mm512_fmadd_ps(e1, vv, b[i]);
            }
        } else if (x0[j] != 0.0f) {
            __m512 e0 = _mm512_set1_ps(x0[j]);
#pragma GCC unroll 8
            for (int i = 0; i < D / 16; i++) a[i] = _mm512_fmadd_ps(e0, load16(v, 16 * i, type, sc), a[i]);
        } else {
            __m512 e1 = _mm512_set1_ps(x1[j]);
#pragma GCC unroll 8
            for (int i = 0; i < D / 16; i++) b[i] = _mm512_fmadd_ps(e1, load16(v, 16 * i, type, sc), b[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < D / 16; i++) _mm512_storeu_ps(o0 + 16 * i, a[i]), _mm512_storeu_ps(o1 + 16 * i, b[i]);
}

/* The per-type entry points of the value kernels: d 128 and 64 held in registers. */
#define VACC_CASES(call)                                                                                               \
    switch (values.type) {                                                                                             \
    case ATTN_BF16: call(ATTN_BF16); break;                                                                            \
    case ATTN_F16: call(ATTN_F16); break;                                                                              \
    case ATTN_Q8: call(ATTN_Q8); break;                                                                                \
    default: call(ATTN_F32); break;                                                                                    \
    }
AVX512 static void vacc_avx512(float *o, const float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d){
#define VACC1(T)                                                                                                       \
    (d == 128  ? vacc_t(o, x, idx, n, values, d, 128, T)                                                               \
     : d == 64 ? vacc_t(o, x, idx, n, values, d, 64, T)                                                                \
               : vacc_t(o, x, idx, n, values, d, 0, T))
    VACC_CASES(VACC1)
#undef VACC1
}

AVX512 static void vacc2_avx512(float *o0, float *o1, const float *x0, const float *x1, int32_t n, attn_rows values,
                                int32_t d){
#define VACC2(T) (d == 128 ? vacc2_t(o0, o1, x0, x1, n, values, 128, T) : vacc2_t(o0, o1, x0, x1, n, values, 64, T))
    VACC_CASES(VACC2)
#undef VACC2
}

/* The softmax half of accumulate_avx512: raises st->m to the chunk's maximum, turns x into the
 * weights exp(x − m) and adds them to st->l. Returns 0 when every score is −inf (nothing to add). */
AVX512 static int softmax_weights_avx512(attn_state *st, float *x, int32_t n, int32_t d) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int32_t j = 0;
    for (; j + 16 <= n; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + j));
    float xmax = _mm512_reduce_max_ps(vmax);
    for (; j < n; j++) xmax = fmaxf(xmax, x[j]);
    if (xmax == -INFINITY) return 0;
    if (xmax > st->m) attn_raise_max(st, xmax, d);
    __m512 m = _mm512_set1_ps(st->m), sum = _mm512_setzero_ps();
    for (j = 0; j + 16 <= n; j += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + j), m));
        _mm512_storeu_ps(x + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (j < n) {
        __mmask16 k = (__mmask16)((1u << (n - j)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), m));
        _mm512_mask_storeu_ps(x + j, k, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, e));
    }
    st->l += _mm512_reduce_add_ps(sum);
    return 1;
}

/* dots[g·ostride + j] = q_g·k_{j0+j} for the gq queries q + g·d and keys [j0, j1): 16 keys at a
 * time (four queries together where there are four), the rest one by one. */
TYPED static void scores_t(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1, float *dots,
                           size_t ostride, int32_t type) {
    const int32_t n = j1 - j0, g4 = gq / 4 * 4; /* heads scored four at a time */
    int32_t j = 0;
    if (d % 16 == 0)
        for (; j + 16 <= n; j += 16) {
            const attn_rows k = attn_rows_from(keys, j0 + j);
            __m512 four[4];
            for (int32_t g = 0; g < gq; g++) {
                if (g < g4 && g % 4 == 0) scores16x4(q + (size_t)g * (size_t)d, d, k, four, type);
                _mm512_storeu_ps(dots + (size_t)g * ostride + j,
                                 g < g4 ? four[g % 4] : scores16(q + (size_t)g * (size_t)d, k, d, type));
            }
        }
    for (; j < n; j++)
        for (int32_t g = 0; g < gq; g++)
            dots[(size_t)g * ostride + j] = dot_t(q + (size_t)g * (size_t)d, attn_row(keys, j0 + j), d, type);
}

AVX512 static void scores_avx512(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1,
                                 float *dots, size_t ostride) {
    switch (keys.type) {
    case ATTN_BF16: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_BF16); break;
    case ATTN_F16: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_F16); break;
    case ATTN_Q8: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_Q8); break;
    default: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_F32); break;
    }
}

AVX512 static void accumulate_avx512(attn_state *st, float *x, const int32_t *idx, int32_t n, attn_rows values,
                                     int32_t d) {
    if (softmax_weights_avx512(st, x, n, d)) vacc_avx512(st->o, x, idx, n, values, d);
}

AVX512 static void dense_range_avx512(attn_state *st, const float *q, int32_t gq, attn_rows keys, attn_rows values,
                                      int32_t d, int32_t j0, int32_t j1, float *scratch, const float *tau,
                                      int32_t *count) {
    const float scale = 1.0f / sqrtf((float)d);
    const __m512 vs = _mm512_set1_ps(scale);
    const int32_t n = j1 - j0;
    scores_avx512(q, gq, keys, d, j0, j1, scratch, (size_t)n);
    for (int32_t g = 0; g < gq; g++) {
        float *x = scratch + (size_t)g * (size_t)n;
        const __m512 t = _mm512_set1_ps(count ? tau[g] : 0);
        for (int32_t j = 0; j < n; j += 16) {
            const __mmask16 in = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
            const __m512 dots = _mm512_maskz_loadu_ps(in, x + j);
            if (count) count[g] += __builtin_popcount(_mm512_mask_cmp_ps_mask(in, dots, t, _CMP_GE_OQ));
            _mm512_mask_storeu_ps(x + j, in, _mm512_mul_ps(dots, vs));
        }
    }
    /* the values: heads in pairs over the same rows where the head size has a paired kernel */
    const attn_rows v0 = attn_rows_from(values, j0);
    int32_t g = 0;
    if (d == 128 || d == 64)
        for (; g + 2 <= gq; g += 2) {
            float *x0 = scratch + (size_t)g * (size_t)n, *x1 = x0 + n;
            int w0 = softmax_weights_avx512(&st[g], x0, n, d), w1 = softmax_weights_avx512(&st[g + 1], x1, n, d);
            if (w0 && w1)
                vacc2_avx512(st[g].o, st[g + 1].o, x0, x1, n, v0, d);
            else if (w0 || w1)
                vacc_avx512(w0 ? st[g].o : st[g + 1].o, w0 ? x0 : x1, NULL, n, v0, d);
        }
    for (; g < gq; g++) accumulate_avx512(&st[g], scratch + (size_t)g * (size_t)n, NULL, n, v0, d);
}
#endif

void attn_scores_kv(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1, float *dots,
                    size_t ostride) {
#ifdef ATTN_X86
    if (attn_simd_enabled()) {
        scores_avx512(q, gq, keys, d, j0, j1, dots, ostride);
        return;
    }
#endif
#ifdef ATTN_HAVE_V8
    if (attn_v8_enabled()) {
        attn_v8_scores(q, gq, keys, d, j0, j1, dots, ostride);
        return;
    }
#endif
    for (int32_t g = 0; g < gq; g++)
        for (int32_t j = j0; j < j1; j++)
            dots[(size_t)g * ostride + (size_t)(j - j0)] =
                dot_scalar(q + (size_t)g * (size_t)d, attn_row(keys, j), keys.type, d);
}

void attn_scores(const float *q, int32_t gq, const float *keys, size_t stride, int32_t d, int32_t j0, int32_t j1,
                 float *dots, size_t ostride) {
    attn_scores_kv(q, gq, attn_rows_f32(keys, stride), d, j0, j1, dots, ostride);
}

float attn_dot_kv(const float *q, attn_rows k, int64_t j, int32_t d) {
#ifdef ATTN_X86
    if (attn_simd_enabled()) return dot_avx512(q, attn_row(k, j), d, k.type);
#endif
#ifdef ATTN_HAVE_V8
    if (attn_v8_enabled()) return attn_v8_dot(q, attn_row(k, j), d, k.type);
#endif
    return dot_scalar(q, attn_row(k, j), k.type, d);
}

float attn_dot(const float *q, const float *k, int32_t d) { return attn_dot_kv(q, attn_rows_f32(k, 0), 0, d); }

void attn_accumulate(attn_state *st, float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d) {
    if (n <= 0) return;
#ifdef ATTN_X86
    if (attn_simd_enabled()) {
        accumulate_avx512(st, x, idx, n, values, d);
        return;
    }
#endif
#ifdef ATTN_HAVE_V8
    if (attn_v8_enabled()) {
        attn_v8_accumulate(st, x, idx, n, values, d);
        return;
    }
#endif
    accumulate_scalar(st, x, idx, n, values, d);
}

void attn_dense_range_kv(attn_state *st, const float *q, int32_t gq, attn_rows keys, attn_rows values, int32_t d,
                         int32_t j0, int32_t j1, float *scratch, const float *tau, int32_t *count) {
    if (j1 <= j0) return;
#ifdef ATTN_X86
    if (attn_simd_enabled()) {
        dense_range_avx512(st, q, gq, keys, values, d, j0, j1, scratch, tau, count);
        return;
    }
#endif
#ifdef ATTN_HAVE_V8
    if (attn_v8_enabled()) {
        attn_v8_dense_range(st, q, gq, keys, values, d, j0, j1, scratch, tau, count);
        return;
    }
#endif
    const float scale = 1.0f / sqrtf((float)d);
    const int32_t n = j1 - j0;
    attn_scores_kv(q, gq, keys, d, j0, j1, scratch, (size_t)n);
    for (int32_t g = 0; g < gq; g++) {
        float *x = scratch + (size_t)g * (size_t)n;
        for (int32_t j = 0; j < n; j++) {
            if (count) count[g] += x[j] >= tau[g];
            x[j] *= scale;
        }
        accumulate_scalar(&st[g], x, NULL, n, attn_rows_from(values, j0), d);
    }
}

void attn_dense_range(attn_state *st, const float *q, int32_t gq, const float *keys, const float *values, size_t stride,
                      int32_t d, int32_t j0, int32_t j1, float *scratch) {
    attn_dense_range_kv(st, q, gq, attn_rows_f32(keys, stride), attn_rows_f32(values, stride), d, j0, j1, scratch, NULL,
                        NULL);
}
