/*
 * attn_kernels.c — attention kernels: scores, online softmax, value accumulation. An AVX-512 version
 * is chosen at run time when the CPU has it (the runtime itself is built for the baseline ISA);
 * the portable version is the specification and the fallback.
 */
#include "attn_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ATTN_X86 1
#include <immintrin.h>
#endif

static int simd_state = -1; /* -1: not yet probed; written atomically, always to the same value */

/* RSR_DISABLE_AVX512=1 in the environment selects the portable kernels (tests run both). */
int attn_simd_enabled(void) {
    int st = __atomic_load_n(&simd_state, __ATOMIC_RELAXED);
    if (st < 0) {
        st = 0;
#ifdef ATTN_X86
        __builtin_cpu_init();
        const char *off = getenv("RSR_DISABLE_AVX512");
        st = __builtin_cpu_supports("avx512f") && !(off && *off && strcmp(off, "0")) ? 1 : 0;
#endif
        __atomic_store_n(&simd_state, st, __ATOMIC_RELAXED);
    }
    return st;
}

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

/* ---- portable kernels ---- */

static float dot_scalar(const float *q, const float *k, int32_t d) {
    float s = 0;
    for (int32_t i = 0; i < d; i++) s += q[i] * k[i];
    return s;
}

/* A new running maximum: what was summed so far is rescaled to it (online softmax). */
static void raise_max(attn_state *st, float xmax, int32_t d) {
    float c = st->m == -INFINITY ? 0.0f : expf(st->m - xmax);
    for (int32_t i = 0; i < d; i++) st->o[i] *= c;
    st->l *= c;
    st->m = xmax;
}

static void accumulate_scalar(attn_state *st, float *x, const int32_t *idx, int32_t n, const float *values,
                              size_t stride, int32_t d) {
    float xmax = -INFINITY;
    for (int32_t j = 0; j < n; j++) xmax = fmaxf(xmax, x[j]);
    if (xmax == -INFINITY) return;
    if (xmax > st->m) raise_max(st, xmax, d);
    for (int32_t j = 0; j < n; j++) {
        float e = expf(x[j] - st->m);
        x[j] = e;
        st->l += e;
        const float *v = values + (size_t)(idx ? idx[j] : j) * stride;
        for (int32_t i = 0; i < d; i++) st->o[i] += e * v[i];
    }
}

#ifdef ATTN_X86
#define AVX512 __attribute__((target("avx512f")))

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
AVX512 static float dot16_avx512(const float *q, const float *k, int32_t d) {
    __m512 a = _mm512_setzero_ps();
    for (int32_t i = 0; i < d; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(k + i), a);
    a = _mm512_add_ps(a, _mm512_permute_ps(a, _MM_SHUFFLE(1, 0, 3, 2)));
    a = _mm512_add_ps(a, _mm512_permute_ps(a, _MM_SHUFFLE(2, 3, 0, 1)));
    a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, _MM_SHUFFLE(1, 0, 3, 2)));
    a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(a);
}

AVX512 static float dot_avx512(const float *q, const float *k, int32_t d) {
    if (d % 16 == 0) return dot16_avx512(q, k, d);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int32_t i = 0;
    for (; i + 32 <= d; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(k + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), _mm512_loadu_ps(k + i + 16), a1);
    }
    if (i + 16 <= d) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(k + i), a0);
        i += 16;
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_maskz_loadu_ps(m, k + i), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
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

/* Scores of 16 consecutive keys for one query; d a multiple of 16. */
AVX512 static inline __m512 scores16(const float *q, const float *k, size_t stride, int32_t d) {
    __m512 acc[16];
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
    for (int32_t i = 0; i < d; i += 16) {
        __m512 qv = _mm512_loadu_ps(q + i);
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++) acc[t] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k + (size_t)t * stride + i), acc[t]);
    }
    return hsum16(acc);
}

/* Scores of 16 consecutive keys for four queries q, q + d, q + 2d, q + 3d (the query heads of a
 * KV head), out[g] for query g; d a multiple of 16. Each (query, key) accumulator takes the same
 * FMAs in the same order as in scores16 and goes through the same hsum16 tree, so every score has
 * scores16's bits; blocks of 4 queries × 4 keys load each key vector once for the four queries
 * (8 loads per 16 FMAs instead of 17: 1.4× faster with the keys in cache). */
AVX512 static inline void scores16x4(const float *q, int32_t d, const float *k, size_t stride, __m512 out[4]) {
    __m512 r[4][16];
    for (int kb = 0; kb < 4; kb++) { /* keys 4kb .. 4kb + 3 */
        __m512 acc[16];
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
        for (int32_t i = 0; i < d; i += 16) {
            __m512 kv[4], qv[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                kv[j] = _mm512_loadu_ps(k + (size_t)(4 * kb + j) * stride + i),
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

/* o[D] += Σ_j x[j] · v_j with the accumulators held in registers (D a compile-time constant). */
#define DEFINE_VACC(D)                                                                                                 \
    AVX512 static void vacc_##D(float *o, const float *x, const int32_t *idx, int32_t n, const float *values,          \
                                size_t stride) {                                                                       \
        __m512 acc[D / 16];                                                                                            \
        _Pragma("GCC unroll 8") for (int i = 0; i < D / 16; i++) acc[i] = _mm512_loadu_ps(o + 16 * i);                 \
        for (int32_t j = 0; j < n; j++) {                                                                              \
            if (x[j] == 0.0f) continue;                                                                                \
            __m512 e = _mm512_set1_ps(x[j]);                                                                           \
            const float *v = values + (size_t)(idx ? idx[j] : j) * stride;                                             \
            _Pragma("GCC unroll 8") for (int i = 0; i < D / 16; i++) acc[i] =                                          \
                _mm512_fmadd_ps(e, _mm512_loadu_ps(v + 16 * i), acc[i]);                                               \
        }                                                                                                              \
        _Pragma("GCC unroll 8") for (int i = 0; i < D / 16; i++) _mm512_storeu_ps(o + 16 * i, acc[i]);                 \
    }
DEFINE_VACC(64)
DEFINE_VACC(128)

AVX512 static void vacc_generic(float *o, const float *x, const int32_t *idx, int32_t n, const float *values,
                                size_t stride, int32_t d) {
    for (int32_t j = 0; j < n; j++) {
        if (x[j] == 0.0f) continue;
        __m512 e = _mm512_set1_ps(x[j]);
        const float *v = values + (size_t)(idx ? idx[j] : j) * stride;
        int32_t i = 0;
        for (; i + 16 <= d; i += 16)
            _mm512_storeu_ps(o + i, _mm512_fmadd_ps(e, _mm512_loadu_ps(v + i), _mm512_loadu_ps(o + i)));
        for (; i < d; i++) o[i] += x[j] * v[i];
    }
}

/* Two heads' o[D] += Σ_j x[j] · v_j over the same value rows (GQA): each row is loaded once for
 * both, and the two heads' chains of FMAs overlap. Each head adds its terms in the order vacc_D
 * does and skips the same zero weights, so it gets vacc_D's bits. */
#define DEFINE_VACC2(D)                                                                                                \
    AVX512 static void vacc2_##D(float *o0, float *o1, const float *x0, const float *x1, int32_t n,                    \
                                 const float *values, size_t stride) {                                                 \
        __m512 a[D / 16], b[D / 16];                                                                                   \
        _Pragma("GCC unroll 8") for (int i = 0; i < D / 16; i++) a[i] = _mm512_loadu_ps(o0 + 16 * i),                  \
                                                                 b[i] = _mm512_loadu_ps(o1 + 16 * i);                  \
        for (int32_t j = 0; j < n; j++) {                                                                              \
            const float *v = values + (size_t)j * stride;                                                              \
            if (x0[j] != 0.0f && x1[j] != 0.0f) {                                                                      \
                __m512 e0 = _mm512_set1_ps(x0[j]), e1 = _mm512_set1_ps(x1[j]);                                         \
                _Pragma("GCC unroll 8") for (int i = 0; i < D / 16; i++) {                                             \
                    __m512 vv = _mm512_loadu_ps(v + 16 * i);                                                           \
                    a[i] = _mm512_fmadd_ps(e0, vv, a[i]), b[i] = _mm512_fmadd_ps(e1, vv, b[i]);                        \
                }                                                                                                      \
            } else if (x0[j] != 0.0f) {                                                                                \
                __m512 e0 = _mm512_set1_ps(x0[j]);                                                                     \
                _Pragma("GCC unroll 8") for (int i = 0; i < D / 16; i++) a[i] =                                        \
                    _mm512_fmadd_ps(e0, _mm512_loadu_ps(v + 16 * i), a[i]);                                            \
            } else if (x1[j] != 0.0f) {                                                                                \
                __m512 e1 = _mm512_set1_ps(x1[j]);                                                                     \
                _Pragma("GCC unroll 8") for (int i = 0; i < D / 16; i++) b[i] =                                        \
                    _mm512_fmadd_ps(e1, _mm512_loadu_ps(v + 16 * i), b[i]);                                            \
            }                                                                                                          \
        }                                                                                                              \
        _Pragma("GCC unroll 8") for (int i = 0; i < D / 16; i++) _mm512_storeu_ps(o0 + 16 * i, a[i]),                  \
            _mm512_storeu_ps(o1 + 16 * i, b[i]);                                                                       \
    }
DEFINE_VACC2(64)
DEFINE_VACC2(128)

/* The softmax half of accumulate_avx512: raises st->m to the chunk's maximum, turns x into the
 * weights exp(x − m) and adds them to st->l. Returns 0 when every score is −inf (nothing to add). */
AVX512 static int softmax_weights_avx512(attn_state *st, float *x, int32_t n, int32_t d) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int32_t j = 0;
    for (; j + 16 <= n; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + j));
    float xmax = _mm512_reduce_max_ps(vmax);
    for (; j < n; j++) xmax = fmaxf(xmax, x[j]);
    if (xmax == -INFINITY) return 0;
    if (xmax > st->m) raise_max(st, xmax, d);
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

AVX512 static void accumulate_avx512(attn_state *st, float *x, const int32_t *idx, int32_t n, const float *values,
                                     size_t stride, int32_t d) {
    if (!softmax_weights_avx512(st, x, n, d)) return;
    if (d == 128)
        vacc_128(st->o, x, idx, n, values, stride);
    else if (d == 64)
        vacc_64(st->o, x, idx, n, values, stride);
    else
        vacc_generic(st->o, x, idx, n, values, stride, d);
}

/* dots[g·ostride + j] = q_g·k_{j0+j} for the gq queries q + g·d and keys [j0, j1): 16 keys at a
 * time (four queries together where there are four), the rest one by one. */
AVX512 static void scores_avx512(const float *q, int32_t gq, const float *keys, size_t stride, int32_t d, int32_t j0,
                                 int32_t j1, float *dots, size_t ostride) {
    const int32_t n = j1 - j0, g4 = gq / 4 * 4; /* heads scored four at a time */
    int32_t j = 0;
    if (d % 16 == 0)
        for (; j + 16 <= n; j += 16) {
            const float *k = keys + (size_t)(j0 + j) * stride;
            __m512 four[4];
            for (int32_t g = 0; g < gq; g++) {
                if (g < g4 && g % 4 == 0) scores16x4(q + (size_t)g * (size_t)d, d, k, stride, four);
                _mm512_storeu_ps(dots + (size_t)g * ostride + j,
                                 g < g4 ? four[g % 4] : scores16(q + (size_t)g * (size_t)d, k, stride, d));
            }
        }
    for (; j < n; j++)
        for (int32_t g = 0; g < gq; g++)
            dots[(size_t)g * ostride + j] = dot_avx512(q + (size_t)g * (size_t)d, keys + (size_t)(j0 + j) * stride, d);
}

AVX512 static void dense_range_avx512(attn_state *st, const float *q, int32_t gq, const float *keys,
                                      const float *values, size_t stride, int32_t d, int32_t j0, int32_t j1,
                                      float *scratch, const float *tau, int32_t *count) {
    const float scale = 1.0f / sqrtf((float)d);
    const __m512 vs = _mm512_set1_ps(scale);
    const int32_t n = j1 - j0;
    scores_avx512(q, gq, keys, stride, d, j0, j1, scratch, (size_t)n);
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
    const float *v0 = values + (size_t)j0 * stride;
    int32_t g = 0;
    if (d == 128 || d == 64)
        for (; g + 2 <= gq; g += 2) {
            float *x0 = scratch + (size_t)g * (size_t)n, *x1 = x0 + n;
            int w0 = softmax_weights_avx512(&st[g], x0, n, d), w1 = softmax_weights_avx512(&st[g + 1], x1, n, d);
            if (w0 && w1) {
                if (d == 128)
                    vacc2_128(st[g].o, st[g + 1].o, x0, x1, n, v0, stride);
                else
                    vacc2_64(st[g].o, st[g + 1].o, x0, x1, n, v0, stride);
            } else if (w0 || w1) {
                attn_state *one = w0 ? &st[g] : &st[g + 1];
                if (d == 128)
                    vacc_128(one->o, w0 ? x0 : x1, NULL, n, v0, stride);
                else
                    vacc_64(one->o, w0 ? x0 : x1, NULL, n, v0, stride);
            }
        }
    for (; g < gq; g++) accumulate_avx512(&st[g], scratch + (size_t)g * (size_t)n, NULL, n, v0, stride, d);
}
#endif

void attn_scores(const float *q, int32_t gq, const float *keys, size_t stride, int32_t d, int32_t j0, int32_t j1,
                 float *dots, size_t ostride) {
#ifdef ATTN_X86
    if (attn_simd_enabled()) {
        scores_avx512(q, gq, keys, stride, d, j0, j1, dots, ostride);
        return;
    }
#endif
    for (int32_t g = 0; g < gq; g++)
        for (int32_t j = j0; j < j1; j++)
            dots[(size_t)g * ostride + (size_t)(j - j0)] =
                dot_scalar(q + (size_t)g * (size_t)d, keys + (size_t)j * stride, d);
}

float attn_dot(const float *q, const float *k, int32_t d) {
#ifdef ATTN_X86
    if (attn_simd_enabled()) return dot_avx512(q, k, d);
#endif
    return dot_scalar(q, k, d);
}

void attn_accumulate(attn_state *st, float *x, const int32_t *idx, int32_t n, const float *values, size_t stride,
                     int32_t d) {
    if (n <= 0) return;
#ifdef ATTN_X86
    if (attn_simd_enabled()) {
        accumulate_avx512(st, x, idx, n, values, stride, d);
        return;
    }
#endif
    accumulate_scalar(st, x, idx, n, values, stride, d);
}

void attn_dense_range_count(attn_state *st, const float *q, int32_t gq, const float *keys, const float *values,
                            size_t stride, int32_t d, int32_t j0, int32_t j1, float *scratch, const float *tau,
                            int32_t *count) {
    if (j1 <= j0) return;
#ifdef ATTN_X86
    if (attn_simd_enabled()) {
        dense_range_avx512(st, q, gq, keys, values, stride, d, j0, j1, scratch, tau, count);
        return;
    }
#endif
    const float scale = 1.0f / sqrtf((float)d);
    const int32_t n = j1 - j0;
    attn_scores(q, gq, keys, stride, d, j0, j1, scratch, (size_t)n);
    for (int32_t g = 0; g < gq; g++) {
        float *x = scratch + (size_t)g * (size_t)n;
        for (int32_t j = 0; j < n; j++) {
            if (count) count[g] += x[j] >= tau[g];
            x[j] *= scale;
        }
        accumulate_scalar(&st[g], x, NULL, n, values + (size_t)j0 * stride, stride, d);
    }
}

void attn_dense_range(attn_state *st, const float *q, int32_t gq, const float *keys, const float *values, size_t stride,
                      int32_t d, int32_t j0, int32_t j1, float *scratch) {
    attn_dense_range_count(st, q, gq, keys, values, stride, d, j0, j1, scratch, NULL, NULL);
}
