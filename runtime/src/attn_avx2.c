/*
 * attn_avx2.c — the attention kernels for x86-64 CPUs with AVX2, FMA and F16C but no AVX-512
 * (Zen 1–3, Intel client cores): the machines most people run on. attn_kernels.c calls them in
 * place of the portable C (whose sequential sums cannot be vectorised) when its AVX-512 kernels
 * are not in use: the AVX2 family of cpu.h (RSR_CPU=avx2 selects it on a bigger CPU, RSR_CPU=portable
 * leaves the C; the tests run every family).
 *
 * The same design as the AVX-512 family, on 8 lanes: a dot product keeps one accumulator over the
 * 8-float blocks in order and sums its lanes in the tree P_lo + P_hi, P = (l0 + l2) + (l1 + l3)
 * over each 128-bit half; the 8-key kernel runs each key's accumulator through the same FMAs and
 * a transposing tree that adds in the same order, so attn_dot, the dense kernel and Louver's
 * batched scores agree bit for bit within this family (unit.louver.avx2 checks it).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
/* Written once for every element type, inlined where `type` is a constant (see attn_kernels.c). */
#define TYPED __attribute__((target("avx2,fma,f16c"), always_inline)) inline

/* Elements i .. i+7 of a row as fp32, as attn_elem() gives them; sc: the q8 scale, broadcast. */
TYPED static __m256 load8(const void *row, int32_t i, int32_t type, __m256 sc) {
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

TYPED static __m256 scale8(const void *row, int32_t type, int32_t d) {
    return _mm256_set1_ps(type == ATTN_Q8 ? attn_q8_scale(row, d) : 0.0f);
}

/* The eight lanes summed as (P_lo) + (P_hi), P = (l0 + l2) + (l1 + l3) over a 128-bit half. */
AVX2 static inline float reduce8(__m256 a) {
    a = _mm256_add_ps(a, _mm256_permute_ps(a, _MM_SHUFFLE(1, 0, 3, 2)));
    a = _mm256_add_ps(a, _mm256_permute_ps(a, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1)));
}

/* Eight vectors in, one vector of their eight horizontal sums out, each added in reduce8's order. */
AVX2 static inline __m256 hsum8(const __m256 a[8]) {
    __m256 s[4], u[2];
    for (int i = 0; i < 4; i++)
        s[i] = _mm256_add_ps(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 2; i++)
        u[i] = _mm256_add_ps(_mm256_shuffle_ps(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm256_add_ps(_mm256_permute2f128_ps(u[0], u[1], 0x20), _mm256_permute2f128_ps(u[0], u[1], 0x31));
}

/* q·k: one accumulator over the 8-float blocks in order (the 8-key kernel's per key), the rest of
 * a d that is not a multiple of 8 added one by one after. */
TYPED static float dot_t(const float *q, const void *k, int32_t d, int32_t type) {
    const __m256 sc = scale8(k, type, d);
    __m256 a = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 8 <= d; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8(k, i, type, sc), a);
    float s = reduce8(a);
    for (; i < d; i++) s += q[i] * attn_elem(k, i, type, _mm256_cvtss_f32(sc));
    return s;
}

AVX2 float attn_avx2_dot(const float *q, const void *k, int32_t d, int32_t type) {
    switch (type) {
    case ATTN_BF16: return dot_t(q, k, d, ATTN_BF16);
    case ATTN_F16: return dot_t(q, k, d, ATTN_F16);
    case ATTN_Q8: return dot_t(q, k, d, ATTN_Q8);
    default: return dot_t(q, k, d, ATTN_F32);
    }
}

/* Scores of 8 consecutive rows of k for one query; d a multiple of 8. */
TYPED static __m256 scores8(const float *q, attn_rows k, int32_t d, int32_t type) {
    __m256 acc[8];
    float sc[8];
    for (int t = 0; t < 8; t++)
        acc[t] = _mm256_setzero_ps(), sc[t] = type == ATTN_Q8 ? attn_q8_scale(attn_row(k, t), d) : 0.0f;
    for (int32_t i = 0; i < d; i += 8) {
        const __m256 qv = _mm256_loadu_ps(q + i);
        for (int t = 0; t < 8; t++)
            acc[t] = _mm256_fmadd_ps(qv, load8(attn_row(k, t), i, type, _mm256_set1_ps(sc[t])), acc[t]);
    }
    return hsum8(acc);
}

/* dots[g·ostride + j] = q_g·k_{j0+j}: 8 keys at a time where d allows, the rest one by one. */
TYPED static void scores_t(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1, float *dots,
                           size_t ostride, int32_t type) {
    const int32_t n = j1 - j0;
    int32_t j = 0;
    if (d % 8 == 0)
        for (; j + 8 <= n; j += 8) {
            const attn_rows k = attn_rows_from(keys, j0 + j);
            for (int32_t g = 0; g < gq; g++)
                _mm256_storeu_ps(dots + (size_t)g * ostride + j, scores8(q + (size_t)g * (size_t)d, k, d, type));
        }
    for (; j < n; j++)
        for (int32_t g = 0; g < gq; g++)
            dots[(size_t)g * ostride + j] = dot_t(q + (size_t)g * (size_t)d, attn_row(keys, j0 + j), d, type);
}

AVX2 void attn_avx2_scores(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1, float *dots,
                           size_t ostride) {
    switch (keys.type) {
    case ATTN_BF16: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_BF16); break;
    case ATTN_F16: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_F16); break;
    case ATTN_Q8: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_Q8); break;
    default: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_F32); break;
    }
}

/* exp(x) as the AVX-512 family computes it (2^n · p(r), the degree-7 Taylor polynomial), with 2^n
 * made from its exponent bits: a result below FLT_MIN (x < −87.33, −∞, NaN) is 0. */
AVX2 static inline __m256 exp256(__m256 x) {
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

/* The softmax half of attn_accumulate: raises st->m to the chunk's maximum, turns x into the
 * weights exp(x − m) and adds them to st->l. Returns 0 when every score is −inf. */
AVX2 static int softmax_weights(attn_state *st, float *x, int32_t n, int32_t d) {
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int32_t j = 0;
    for (; j + 8 <= n; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + j));
    float lanes[8], xmax = -INFINITY;
    _mm256_storeu_ps(lanes, vmax);
    for (int t = 0; t < 8; t++) xmax = fmaxf(xmax, lanes[t]);
    for (; j < n; j++) xmax = fmaxf(xmax, x[j]);
    if (xmax == -INFINITY) return 0;
    if (xmax > st->m) attn_raise_max(st, xmax, d);
    const __m256 m = _mm256_set1_ps(st->m);
    __m256 sum = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), m));
        _mm256_storeu_ps(x + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (j < n) { /* the tail through a padded copy: the padding's weights are exp(−inf) = 0 */
        float b[8];
        for (int t = 0; t < 8; t++) b[t] = j + t < n ? x[j + t] : -INFINITY;
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(b), m));
        _mm256_storeu_ps(b, e);
        memcpy(x + j, b, sizeof(float) * (size_t)(n - j));
        sum = _mm256_add_ps(sum, e);
    }
    st->l += reduce8(sum);
    return 1;
}

/* o[d] += Σ_j x[j] · v_j, each element's terms added in j order: D = 64 (a constant: eight
 * accumulators in registers) for each 64-element slice of a d that is a multiple of 64, D = 0
 * for any d through memory. */
TYPED static void vacc_t(float *o, const float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d,
                         int32_t D, int32_t type) {
    if (D == 0) {
        for (int32_t j = 0; j < n; j++) {
            if (x[j] == 0.0f) continue;
            const __m256 e = _mm256_set1_ps(x[j]);
            const void *v = attn_row(values, idx ? idx[j] : j);
            const __m256 sc = scale8(v, type, d);
            int32_t i = 0;
            for (; i + 8 <= d; i += 8)
                _mm256_storeu_ps(o + i, _mm256_fmadd_ps(e, load8(v, i, type, sc), _mm256_loadu_ps(o + i)));
            for (; i < d; i++) o[i] += x[j] * attn_elem(v, i, type, _mm256_cvtss_f32(sc));
        }
        return;
    }
    for (int32_t at = 0; at < d; at += D) {
        __m256 acc[8];
        for (int i = 0; i < D / 8; i++) acc[i] = _mm256_loadu_ps(o + at + 8 * i);
        for (int32_t j = 0; j < n; j++) {
            if (x[j] == 0.0f) continue;
            const __m256 e = _mm256_set1_ps(x[j]);
            const void *v = attn_row(values, idx ? idx[j] : j);
            const __m256 sc = scale8(v, type, d);
            for (int i = 0; i < D / 8; i++) acc[i] = _mm256_fmadd_ps(e, load8(v, at + 8 * i, type, sc), acc[i]);
        }
        for (int i = 0; i < D / 8; i++) _mm256_storeu_ps(o + at + 8 * i, acc[i]);
    }
}

AVX2 static void vacc(float *o, const float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d) {
#define VACC1(T) (d % 64 == 0 ? vacc_t(o, x, idx, n, values, d, 64, T) : vacc_t(o, x, idx, n, values, d, 0, T))
    switch (values.type) {
    case ATTN_BF16: VACC1(ATTN_BF16); break;
    case ATTN_F16: VACC1(ATTN_F16); break;
    case ATTN_Q8: VACC1(ATTN_Q8); break;
    default: VACC1(ATTN_F32); break;
    }
#undef VACC1
}

AVX2 void attn_avx2_accumulate(attn_state *st, float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d) {
    if (softmax_weights(st, x, n, d)) vacc(st->o, x, idx, n, values, d);
}

/* Rows [j0, j0 + n) of r widened to fp32 into out (n × d floats): the values load8 gives, so a
 * kernel over the widened rows has the bits it has over the stored ones. */
TYPED static void widen_t(attn_rows r, int32_t j0, int32_t n, int32_t d, float *out, int32_t type) {
    for (int32_t j = 0; j < n; j++) {
        const void *row = attn_row(r, j0 + j);
        const __m256 sc = scale8(row, type, d);
        for (int32_t i = 0; i < d; i += 8) _mm256_storeu_ps(out + (size_t)j * (size_t)d + i, load8(row, i, type, sc));
    }
}

AVX2 static void widen(attn_rows r, int32_t j0, int32_t n, int32_t d, float *out) {
    switch (r.type) {
    case ATTN_BF16: widen_t(r, j0, n, d, out, ATTN_BF16); break;
    case ATTN_F16: widen_t(r, j0, n, d, out, ATTN_F16); break;
    default: widen_t(r, j0, n, d, out, ATTN_Q8); break;
    }
}

enum { WIDE_FLOATS = 4096 }; /* 16 KB of widened rows at a time: they stay in L1 */

/* The query heads of a KV head share its rows: rows of 16-bit or q8 elements are widened once
 * per block for all the heads instead of once per head (the bits are the same: see widen_t). */
AVX2 static void dense_range_shared(attn_state *st, const float *q, int32_t gq, attn_rows keys, attn_rows values,
                                    int32_t d, int32_t j0, int32_t j1, float *x, const float *tau, int32_t *count) {
    const float scale = 1.0f / sqrtf((float)d);
    const int32_t n = j1 - j0, rows = WIDE_FLOATS / d / 8 * 8; /* a multiple of 8 keys */
    float wide[WIDE_FLOATS] __attribute__((aligned(32)));
    for (int32_t b = 0; b < n; b += rows) {
        const int32_t m = n - b < rows ? n - b : rows;
        widen(keys, j0 + b, m, d, wide);
        scores_t(q, gq, attn_rows_f32(wide, (size_t)d), d, 0, m, x + b, (size_t)n, ATTN_F32);
    }
    int w[ATTN_GROUP_MAX];
    for (int32_t g = 0; g < gq; g++) {
        float *xg = x + (size_t)g * (size_t)n;
        for (int32_t j = 0; j < n; j++) {
            if (count) count[g] += xg[j] >= tau[g];
            xg[j] *= scale;
        }
        w[g] = softmax_weights(&st[g], xg, n, d);
    }
    for (int32_t b = 0; b < n; b += rows) {
        const int32_t m = n - b < rows ? n - b : rows;
        widen(values, j0 + b, m, d, wide);
        for (int32_t g = 0; g < gq; g++)
            if (w[g]) vacc(st[g].o, x + (size_t)g * (size_t)n + b, NULL, m, attn_rows_f32(wide, (size_t)d), d);
    }
}

AVX2 void attn_avx2_dense_range(attn_state *st, const float *q, int32_t gq, attn_rows keys, attn_rows values, int32_t d,
                                int32_t j0, int32_t j1, float *scratch, const float *tau, int32_t *count) {
    if (gq >= 2 && gq <= ATTN_GROUP_MAX && d % 8 == 0 && d <= WIDE_FLOATS / 8 && keys.type != ATTN_F32 &&
        keys.type == values.type) {
        dense_range_shared(st, q, gq, keys, values, d, j0, j1, scratch, tau, count);
        return;
    }
    const float scale = 1.0f / sqrtf((float)d);
    const int32_t n = j1 - j0;
    attn_avx2_scores(q, gq, keys, d, j0, j1, scratch, (size_t)n);
    const attn_rows v0 = attn_rows_from(values, j0);
    for (int32_t g = 0; g < gq; g++) {
        float *x = scratch + (size_t)g * (size_t)n;
        for (int32_t j = 0; j < n; j++) { /* the compiler vectorises this */
            if (count) count[g] += x[j] >= tau[g];
            x[j] *= scale;
        }
        attn_avx2_accumulate(&st[g], x, NULL, n, v0, d);
    }
}
#endif
