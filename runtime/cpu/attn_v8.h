/*
 * attn_v8.h — the attention kernels of the 8-lane families, written once: AVX2 (attn_avx2.c,
 * one ymm register per vector) and NEON (attn_neon.c, two q registers). The file that includes it
 * defines the vector vocabulary below; the kernels here are the same on both, so a fix or a new
 * fast path lands on both at once.
 *
 * The vocabulary (all inlined):
 *   v8                  eight floats
 *   V8_FN, V8_TYPED     attributes of a kernel, and of one written for every element type (always
 *                       inlined where `type` is a constant: each type gets its own loads)
 *   v8_zero, v8_set1, v8_loadu, v8_storeu, v8_add, v8_sub, v8_mul
 *   v8_fma(a, b, c)     a·b + c, rounded once
 *   v8_max(a, b)        lane-wise maximum (scores are finite or −inf here)
 *   v8_row(row, i, type, sc)   elements i .. i+7 of a KV row as fp32, as attn_elem() gives them
 *                       (exactly, for the 16-bit types; q8: K_i·sc rounded once)
 *   v8_reduce(a)        the sum of the eight lanes in the family's fixed tree
 *   v8_hsum8(a[8])      the eight horizontal sums of eight vectors, each in v8_reduce's tree
 *   v8_exp(x)           exp(x): 2^n · p(r) with the degree-7 Taylor polynomial, 0 below FLT_MIN
 *
 * Bits: a dot product keeps one accumulator over the 8-float blocks in order and sums its lanes
 * with v8_reduce; the 8-key and 2-key × 4-query kernels run each (query, key) accumulator through
 * the same FMAs in the same order and sum it with v8_hsum8 in the same tree, so attn_dot, the
 * dense kernel and Louver's batched scores agree bit for bit within a family (unit.louver and
 * unit.attn_groups check it in each). The two families' trees differ, so their bits may too.
 *
 * Entry points (declared in attn_kernels.h, defined by whichever family this architecture has):
 * attn_v8_dot, attn_v8_scores, attn_v8_accumulate, attn_v8_dense_range.
 */
#ifndef RSR_RUNTIME_ATTN_V8_H
#define RSR_RUNTIME_ATTN_V8_H

#include <math.h>
#include <string.h>

#include "attn_kernels.h"

V8_TYPED static v8 scale8(const void *row, int32_t type, int32_t d) {
    return v8_set1(type == ATTN_Q8 ? attn_q8_scale(row, d) : 0.0f);
}

/* q·k: one accumulator over the 8-float blocks in order (the 8-key kernel's per key), the rest of
 * a d that is not a multiple of 8 added one by one after. */
V8_TYPED static float dot_t(const float *q, const void *k, int32_t d, int32_t type) {
    const float s1 = type == ATTN_Q8 ? attn_q8_scale(k, d) : 0.0f;
    const v8 sc = v8_set1(s1);
    v8 a = v8_zero();
    int32_t i = 0;
    for (; i + 8 <= d; i += 8) a = v8_fma(v8_loadu(q + i), v8_row(k, i, type, sc), a);
    float s = v8_reduce(a);
    for (; i < d; i++) s += q[i] * attn_elem(k, i, type, s1);
    return s;
}

V8_FN float attn_v8_dot(const float *q, const void *k, int32_t d, int32_t type) {
    switch (type) {
    case ATTN_BF16: return dot_t(q, k, d, ATTN_BF16);
    case ATTN_F16: return dot_t(q, k, d, ATTN_F16);
    case ATTN_Q8: return dot_t(q, k, d, ATTN_Q8);
    default: return dot_t(q, k, d, ATTN_F32);
    }
}

/* Rows whose lines are asked for before they are read. The keys of the scores, KEYS_AHEAD rows
 * ahead. The values: in dense_range the scores' pass asks for the value rows of the keys it is
 * scoring, into L2 (a chunk's values are 64 KB at d 128 in 16 bits), so that the values' pass,
 * which goes down the rows a 16-element slice at a time and would otherwise meet each row's lines
 * from memory one by one, finds them there. vacc_t's first slice also asks for its rows
 * VACC_AHEAD ahead (Louver's rows, given by index, are not scored here first). Every line a row
 * touches is asked for, from the one its first byte is in (q8 rows are not line-aligned). */
#define KEYS_AHEAD 16
#define VACC_AHEAD 8
V8_TYPED static void prefetch_row(attn_rows rows, int64_t j, int to_l2) {
    const uintptr_t row = (uintptr_t)attn_row(rows, j), end = row + rows.bytes;
    for (uintptr_t line = row & ~(uintptr_t)63; line < end; line += 64)
        if (to_l2)
            __builtin_prefetch((const void *)line, 0, 2);
        else
            __builtin_prefetch((const void *)line);
}

/* Before rows j, j + 1 of keys (from j0) are scored: their keys KEYS_AHEAD on, and their values
 * (vals.base NULL: none). */
V8_TYPED static void prefetch_pair(attn_rows keys, attn_rows vals, int32_t j0, int32_t j, int32_t n) {
    if (j + KEYS_AHEAD + 2 <= n)
        prefetch_row(keys, j0 + j + KEYS_AHEAD, 0), prefetch_row(keys, j0 + j + KEYS_AHEAD + 1, 0);
    if (vals.base) prefetch_row(vals, j0 + j, 1), prefetch_row(vals, j0 + j + 1, 1);
}

/* Scores of 8 consecutive rows of k for one query; d a multiple of 8. */
V8_TYPED static v8 scores8(const float *q, attn_rows k, int32_t d, int32_t type) {
    v8 acc[8], sc[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) acc[t] = v8_zero(), sc[t] = scale8(attn_row(k, t), type, d);
    for (int32_t i = 0; i < d; i += 8) {
        const v8 qv = v8_loadu(q + i);
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) acc[t] = v8_fma(qv, v8_row(attn_row(k, t), i, type, sc[t]), acc[t]);
    }
    return v8_hsum8(acc);
}

/* Scores of 2 consecutive keys for four queries q, q + d, q + 2d, q + 3d (the query heads of a KV
 * head): each key block is widened once for the four queries. Each (query, key) accumulator takes
 * dot_t's FMAs in dot_t's order and v8_hsum8 sums each in v8_reduce's tree, so every score has
 * attn_dot's bits. out[g], out[4 + g]: query g with key 0, key 1. */
V8_TYPED static v8 scores2x4(const float *q, int32_t d, attn_rows k, int32_t type) {
    const void *k0 = attn_row(k, 0), *k1 = attn_row(k, 1);
    const v8 sc0 = scale8(k0, type, d), sc1 = scale8(k1, type, d);
    v8 acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) acc[t] = v8_zero();
    for (int32_t i = 0; i < d; i += 8) {
        const v8 a = v8_row(k0, i, type, sc0), b = v8_row(k1, i, type, sc1);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            const v8 qv = v8_loadu(q + (size_t)g * (size_t)d + i);
            acc[g] = v8_fma(qv, a, acc[g]), acc[4 + g] = v8_fma(qv, b, acc[4 + g]);
        }
    }
    return v8_hsum8(acc);
}

/* dots[g·ostride + j] = q_g·k_{j0+j}: where d allows, the query heads four at a time over pairs of
 * keys and the rest 8 keys at a time; the remaining keys one by one. vals: rows asked for into L2
 * as their keys are scored (prefetch_pair), or base NULL. */
V8_TYPED static void scores_t(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1,
                              float *dots, size_t ostride, int32_t type, attn_rows vals) {
    const int32_t n = j1 - j0, g4 = d % 8 == 0 ? gq / 4 * 4 : 0;
    for (int32_t g = 0; g < g4; g += 4)
        for (int32_t j = 0; j + 2 <= n; j += 2) {
            if (g == 0) prefetch_pair(keys, vals, j0, j, n);
            float r[8];
            v8_storeu(r, scores2x4(q + (size_t)g * (size_t)d, d, attn_rows_from(keys, j0 + j), type));
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++)
                dots[(size_t)(g + t) * ostride + j] = r[t], dots[(size_t)(g + t) * ostride + j + 1] = r[4 + t];
        }
    if (g4 && n % 2) /* the last key of an odd count */
        for (int32_t g = 0; g < g4; g++)
            dots[(size_t)g * ostride + n - 1] = dot_t(q + (size_t)g * (size_t)d, attn_row(keys, j1 - 1), d, type);
    if (g4) vals.base = NULL; /* asked for above */
    q += (size_t)g4 * (size_t)d, dots += (size_t)g4 * ostride, gq -= g4;
    int32_t j = 0;
    if (d % 8 == 0 && gq > 0)
        for (; j + 8 <= n; j += 8) {
            const attn_rows k = attn_rows_from(keys, j0 + j);
            for (int t = 0; t < 8; t += 2) prefetch_pair(keys, vals, j0, j + t, n);
            for (int32_t g = 0; g < gq; g++)
                v8_storeu(dots + (size_t)g * ostride + j, scores8(q + (size_t)g * (size_t)d, k, d, type));
        }
    for (; j < n; j++)
        for (int32_t g = 0; g < gq; g++)
            dots[(size_t)g * ostride + j] = dot_t(q + (size_t)g * (size_t)d, attn_row(keys, j0 + j), d, type);
}

/* The scores of dense_range, or alone (vals.base NULL). */
V8_FN static void scores_vals(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1,
                              float *dots, size_t ostride, attn_rows vals) {
    switch (keys.type) {
    case ATTN_BF16: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_BF16, vals); break;
    case ATTN_F16: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_F16, vals); break;
    case ATTN_Q8: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_Q8, vals); break;
    default: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_F32, vals); break;
    }
}

V8_FN void attn_v8_scores(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1, float *dots,
                          size_t ostride) {
    scores_vals(q, gq, keys, d, j0, j1, dots, ostride, (attn_rows){.base = NULL});
}

/* The softmax half of attn_accumulate: raises st->m to the chunk's maximum, turns x into the
 * weights exp(x − m) and adds them to st->l. Returns 0 when every score is −inf. */
V8_FN static int softmax_weights(attn_state *st, float *x, int32_t n, int32_t d) {
    v8 vmax = v8_set1(-INFINITY);
    int32_t j = 0;
    for (; j + 8 <= n; j += 8) vmax = v8_max(vmax, v8_loadu(x + j));
    float lanes[8], xmax = -INFINITY;
    v8_storeu(lanes, vmax);
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) xmax = fmaxf(xmax, lanes[t]);
    for (; j < n; j++) xmax = fmaxf(xmax, x[j]);
    if (xmax == -INFINITY) return 0;
    if (xmax > st->m) attn_raise_max(st, xmax, d);
    const v8 m = v8_set1(st->m);
    v8 sum = v8_zero();
    for (j = 0; j + 8 <= n; j += 8) {
        const v8 e = v8_exp(v8_sub(v8_loadu(x + j), m));
        v8_storeu(x + j, e);
        sum = v8_add(sum, e);
    }
    if (j < n) { /* the tail through a padded copy: the padding's weights are exp(−inf) = 0 */
        float b[8];
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) b[t] = j + t < n ? x[j + t] : -INFINITY;
        const v8 e = v8_exp(v8_sub(v8_loadu(b), m));
        v8_storeu(b, e);
        memcpy(x + j, b, sizeof(float) * (size_t)(n - j));
        sum = v8_add(sum, e);
    }
    st->l += v8_reduce(sum);
    return 1;
}

/* o[d] += Σ_j x[j] · v_j, each element's terms added in j order: D = 64 (a constant: eight
 * accumulators in registers) for each 64-element slice of a d that is a multiple of 64, D = 0
 * for any d through memory. */
V8_TYPED static void vacc_t(float *o, const float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d,
                            int32_t D, int32_t type) {
    if (D == 0) {
        for (int32_t j = 0; j < n; j++) {
            if (x[j] == 0.0f) continue;
            const v8 e = v8_set1(x[j]);
            const void *v = attn_row(values, idx ? idx[j] : j);
            const float s1 = type == ATTN_Q8 ? attn_q8_scale(v, d) : 0.0f;
            const v8 sc = v8_set1(s1);
            int32_t i = 0;
            for (; i + 8 <= d; i += 8) v8_storeu(o + i, v8_fma(e, v8_row(v, i, type, sc), v8_loadu(o + i)));
            for (; i < d; i++) o[i] += x[j] * attn_elem(v, i, type, s1);
        }
        return;
    }
    for (int32_t at = 0; at < d; at += D) {
        v8 acc[8];
#pragma GCC unroll 8
        for (int i = 0; i < D / 8; i++) acc[i] = v8_loadu(o + at + 8 * i);
        for (int32_t j = 0; j < n; j++) {
            if (at == 0 && j + VACC_AHEAD < n) prefetch_row(values, idx ? idx[j + VACC_AHEAD] : j + VACC_AHEAD, 0);
            if (x[j] == 0.0f) continue;
            const v8 e = v8_set1(x[j]);
            const void *v = attn_row(values, idx ? idx[j] : j);
            const v8 sc = scale8(v, type, d);
#pragma GCC unroll 8
            for (int i = 0; i < D / 8; i++) acc[i] = v8_fma(e, v8_row(v, at + 8 * i, type, sc), acc[i]);
        }
#pragma GCC unroll 8
        for (int i = 0; i < D / 8; i++) v8_storeu(o + at + 8 * i, acc[i]);
    }
}

V8_FN static void vacc(float *o, const float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d) {
#define VACC1(T) (d % 64 == 0 ? vacc_t(o, x, idx, n, values, d, 64, T) : vacc_t(o, x, idx, n, values, d, 0, T))
    switch (values.type) {
    case ATTN_BF16: VACC1(ATTN_BF16); break;
    case ATTN_F16: VACC1(ATTN_F16); break;
    case ATTN_Q8: VACC1(ATTN_Q8); break;
    default: VACC1(ATTN_F32); break;
    }
#undef VACC1
}

/* 1 when none of the four heads' n weights is zero: the usual case (a weight is 0 only where
 * exp underflows or the score is −inf), where vacc4_t's rows skip nothing and need no test. */
static inline int none_zero4(const float *const x[4], int32_t n) {
    int zero = 0;
    for (int g = 0; g < 4; g++)
        for (int32_t j = 0; j < n; j++) zero |= x[g][j] == 0.0f;
    return !zero;
}

/* Row j of vacc4_t's slice at: each live head's acc[g] += x_g[j] · v_j[at .. at+16). checked: some
 * weight may be zero, so the row's are tested (a head with a zero weight adds nothing). */
V8_TYPED static void vacc4_row(v8 acc[4][2], const float *const x[4], int32_t j, attn_rows values, int32_t at,
                               int32_t d, int32_t type, int checked) {
    const int live = checked ? (x[0][j] != 0.0f) + (x[1][j] != 0.0f) + (x[2][j] != 0.0f) + (x[3][j] != 0.0f) : 4;
    if (!live) return;
    const void *v = attn_row(values, j);
    const v8 sc = scale8(v, type, d), a = v8_row(v, at, type, sc), b = v8_row(v, at + 8, type, sc);
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        if (live < 4 && x[g][j] == 0.0f) continue;
        const v8 e = v8_set1(x[g][j]);
        acc[g][0] = v8_fma(e, a, acc[g][0]), acc[g][1] = v8_fma(e, b, acc[g][1]);
    }
}

/* Four heads' o_g[d] += Σ_j x_g[j] · v_j over the same value rows (the query heads of a KV head):
 * each row widened once for the four, 16 elements at a time (eight accumulators). Each head adds
 * its terms in vacc_t's order and skips the same zero weights, so it gets vacc_t's bits. The
 * weights are tested once for the whole range: per row and slice the tests cost as much as the
 * row's FMAs (perf of a decode step at 4K positions), and are rarely needed. */
V8_TYPED static void vacc4_t(float *const o[4], const float *const x[4], int32_t n, attn_rows values, int32_t d,
                             int32_t type) {
    const int checked = !none_zero4(x, n);
    for (int32_t at = 0; at < d; at += 16) {
        v8 acc[4][2];
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) acc[g][0] = v8_loadu(o[g] + at), acc[g][1] = v8_loadu(o[g] + at + 8);
        if (checked) /* two loops, so that the usual one has no tests in it */
            for (int32_t j = 0; j < n; j++) vacc4_row(acc, x, j, values, at, d, type, 1);
        else
            for (int32_t j = 0; j < n; j++) vacc4_row(acc, x, j, values, at, d, type, 0);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) v8_storeu(o[g] + at, acc[g][0]), v8_storeu(o[g] + at + 8, acc[g][1]);
    }
}

V8_FN static void vacc4(float *const o[4], const float *const x[4], int32_t n, attn_rows values, int32_t d) {
    switch (values.type) {
    case ATTN_BF16: vacc4_t(o, x, n, values, d, ATTN_BF16); break;
    case ATTN_F16: vacc4_t(o, x, n, values, d, ATTN_F16); break;
    case ATTN_Q8: vacc4_t(o, x, n, values, d, ATTN_Q8); break;
    default: vacc4_t(o, x, n, values, d, ATTN_F32); break;
    }
}

V8_FN void attn_v8_accumulate(attn_state *st, float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d) {
    if (softmax_weights(st, x, n, d)) vacc(st->o, x, idx, n, values, d);
}

V8_FN void attn_v8_dense_range(attn_state *st, const float *q, int32_t gq, attn_rows keys, attn_rows values, int32_t d,
                               int32_t j0, int32_t j1, float *scratch, const float *tau, int32_t *count) {
    const float scale = 1.0f / sqrtf((float)d);
    const int32_t n = j1 - j0;
    scores_vals(q, gq, keys, d, j0, j1, scratch, (size_t)n, values);
    const attn_rows v0 = attn_rows_from(values, j0);
    int w[ATTN_GROUP_MAX];
    for (int32_t g = 0; g < gq; g++) {
        float *x = scratch + (size_t)g * (size_t)n;
        if (count) /* apart from the scaling, which gcc then vectorises */
            for (int32_t j = 0; j < n; j++) count[g] += x[j] >= tau[g];
        for (int32_t j = 0; j < n; j++) x[j] *= scale;
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
