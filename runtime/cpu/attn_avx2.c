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
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        s[i] = _mm256_add_ps(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
#pragma GCC unroll 2
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
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++)
        acc[t] = _mm256_setzero_ps(), sc[t] = type == ATTN_Q8 ? attn_q8_scale(attn_row(k, t), d) : 0.0f;
    for (int32_t i = 0; i < d; i += 8) {
        const __m256 qv = _mm256_loadu_ps(q + i);
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++)
            acc[t] = _mm256_fmadd_ps(qv, load8(attn_row(k, t), i, type, _mm256_set1_ps(sc[t])), acc[t]);
    }
    return hsum8(acc);
}

/* Scores of 2 consecutive keys for four queries q, q + d, q + 2d, q + 3d (the query heads of a KV
 * head): each key block is widened once for the four queries (ten registers in use). Each (query,
 * key) accumulator takes dot_t's FMAs in dot_t's order, and hsum8 sums each in reduce8's order,
 * so every score has attn_dot's bits. out[g], out[4 + g]: query g with key 0, key 1. */
TYPED static __m256 scores2x4(const float *q, int32_t d, attn_rows k, int32_t type) {
    const void *k0 = attn_row(k, 0), *k1 = attn_row(k, 1);
    const __m256 sc0 = scale8(k0, type, d), sc1 = scale8(k1, type, d);
    __m256 acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) acc[t] = _mm256_setzero_ps();
    for (int32_t i = 0; i < d; i += 8) {
        const __m256 a = load8(k0, i, type, sc0), b = load8(k1, i, type, sc1);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            const __m256 qv = _mm256_loadu_ps(q + (size_t)g * (size_t)d + i);
            acc[g] = _mm256_fmadd_ps(qv, a, acc[g]), acc[4 + g] = _mm256_fmadd_ps(qv, b, acc[4 + g]);
        }
    }
    return hsum8(acc);
}

/* dots[g·ostride + j] = q_g·k_{j0+j}: where d allows, the query heads four at a time over pairs of
 * keys and the rest 8 keys at a time; the remaining keys one by one. */
TYPED static void scores_t(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1, float *dots,
                           size_t ostride, int32_t type) {
    const int32_t n = j1 - j0, g4 = d % 8 == 0 ? gq / 4 * 4 : 0;
    for (int32_t g = 0; g < g4; g += 4)
        for (int32_t j = 0; j + 2 <= n; j += 2) {
            float r[8];
            _mm256_storeu_ps(r, scores2x4(q + (size_t)g * (size_t)d, d, attn_rows_from(keys, j0 + j), type));
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++)
                dots[(size_t)(g + t) * ostride + j] = r[t], dots[(size_t)(g + t) * ostride + j + 1] = r[4 + t];
        }
    if (g4 && n % 2) /* the last key of an odd count */
        for (int32_t g = 0; g < g4; g++)
            dots[(size_t)g * ostride + n - 1] = dot_t(q + (size_t)g * (size_t)d, attn_row(keys, j1 - 1), d, type);
    q += (size_t)g4 * (size_t)d, dots += (size_t)g4 * ostride, gq -= g4;
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
#pragma GCC unroll 8
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
#pragma GCC unroll 8
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
#pragma GCC unroll 8
        for (int i = 0; i < D / 8; i++) acc[i] = _mm256_loadu_ps(o + at + 8 * i);
        for (int32_t j = 0; j < n; j++) {
            if (x[j] == 0.0f) continue;
            const __m256 e = _mm256_set1_ps(x[j]);
            const void *v = attn_row(values, idx ? idx[j] : j);
            const __m256 sc = scale8(v, type, d);
#pragma GCC unroll 8
            for (int i = 0; i < D / 8; i++) acc[i] = _mm256_fmadd_ps(e, load8(v, at + 8 * i, type, sc), acc[i]);
        }
#pragma GCC unroll 8
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

/* Four heads' o_g[d] += Σ_j x_g[j] · v_j over the same value rows (the query heads of a KV head):
 * each row widened once for the four, 16 elements at a time (eight accumulators). Each head adds
 * its terms in vacc_t's order and skips the same zero weights, so it gets vacc_t's bits. */
TYPED static void vacc4_t(float *const o[4], const float *const x[4], int32_t n, attn_rows values, int32_t d,
                          int32_t type) {
    for (int32_t at = 0; at < d; at += 16) {
        __m256 acc[4][2];
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) acc[g][0] = _mm256_loadu_ps(o[g] + at), acc[g][1] = _mm256_loadu_ps(o[g] + at + 8);
        for (int32_t j = 0; j < n; j++) {
            const int live = (x[0][j] != 0.0f) + (x[1][j] != 0.0f) + (x[2][j] != 0.0f) + (x[3][j] != 0.0f);
            if (!live) continue;
            const void *v = attn_row(values, j);
            const __m256 sc = scale8(v, type, d), a = load8(v, at, type, sc), b = load8(v, at + 8, type, sc);
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                if (live < 4 && x[g][j] == 0.0f) continue;
                const __m256 e = _mm256_set1_ps(x[g][j]);
                acc[g][0] = _mm256_fmadd_ps(e, a, acc[g][0]), acc[g][1] = _mm256_fmadd_ps(e, b, acc[g][1]);
            }
        }
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) _mm256_storeu_ps(o[g] + at, acc[g][0]), _mm256_storeu_ps(o[g] + at + 8, acc[g][1]);
    }
}

AVX2 static void vacc4(float *const o[4], const float *const x[4], int32_t n, attn_rows values, int32_t d) {
    switch (values.type) {
    case ATTN_BF16: vacc4_t(o, x, n, values, d, ATTN_BF16); break;
    case ATTN_F16: vacc4_t(o, x, n, values, d, ATTN_F16); break;
    case ATTN_Q8: vacc4_t(o, x, n, values, d, ATTN_Q8); break;
    default: vacc4_t(o, x, n, values, d, ATTN_F32); break;
    }
}

AVX2 void attn_avx2_accumulate(attn_state *st, float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d) {
    if (softmax_weights(st, x, n, d)) vacc(st->o, x, idx, n, values, d);
}

AVX2 void attn_avx2_dense_range(attn_state *st, const float *q, int32_t gq, attn_rows keys, attn_rows values, int32_t d,
                                int32_t j0, int32_t j1, float *scratch, const float *tau, int32_t *count) {
    const float scale = 1.0f / sqrtf((float)d);
    const int32_t n = j1 - j0;
    attn_avx2_scores(q, gq, keys, d, j0, j1, scratch, (size_t)n);
    const attn_rows v0 = attn_rows_from(values, j0);
    int w[ATTN_GROUP_MAX];
    for (int32_t g = 0; g < gq; g++) {
        float *x = scratch + (size_t)g * (size_t)n;
        for (int32_t j = 0; j < n; j++) { /* the compiler vectorises this */
            if (count) count[g] += x[j] >= tau[g];
            x[j] *= scale;
        }
        w[g] = softmax_weights(&st[g], x, n, d);
    }
    /* the values: heads four at a time over the same rows where every one of them has weights */
    int32_t g = 0;
    if (d % 16 == 0 && gq <= ATTN_GROUP_MAX)
        for (; g + 4 <= gq && w[g] && w[g + 1] && w[g + 2] && w[g + 3]; g += 4) {
            float *const o[4] = {st[g].o, st[g + 1].o, st[g + 2].o, st[g + 3].o};
            const float *const x[4] = {scratch + (size_t)g * (size_t)n, scratch + (size_t)(g + 1) * (size_t)n,
                                       scratch + (size_t)(g + 2) * (size_t)n, scratch + (size_t)(g + 3) * (size_t)n};
            vacc4(o, x, n, v0, d);
        }
    for (; g < gq; g++)
        if (w[g]) vacc(st[g].o, scratch + (size_t)g * (size_t)n, NULL, n, v0, d);
}
#endif
