/*
 * attn_generic.h — the attention kernels, written once for every kernel family.
 *
 * A family (cpu.h) is one file, family_avx512.c, family_avx2.c, family_neon.c or
 * family_portable.c, which holds every intrinsic of the family (its other kernels: family.h). For
 * attention it defines the small vector vocabulary below and then includes this file, which
 * builds the family's kernels from it and defines the family's table (attn_family in
 * attn_kernels.h) under the name VEC_FAMILY. attn_kernels.c picks one table once, from the
 * runtime's kernel family (cpu.h, RSR_CPU), and every entry point goes through it. So the kernels' structure (the blocking of keys
 * and query heads, the prefetching, the value kernels over one, two or four heads, the masked or
 * scalar tails) is the same in every family; a fix or a new fast path here lands on all of them.
 *
 * The vocabulary (static, always inlined where used):
 *   vec                          VEC_W floats: 16 (AVX-512), 8 (AVX2, NEON: two q registers), 1 (C)
 *   VEC_W                        the lanes
 *   VEC_ACCS                     accumulators the value kernels may keep in registers (heads × vectors)
 *   VEC_FN, VEC_TYPED            attributes of a kernel (the family's instruction set), and of one
 *                                written for every element type (always inlined where `type` is a
 *                                constant, so that each type gets its own loads)
 *   vec_zero, vec_set1, vec_loadu, vec_storeu, vec_add, vec_sub, vec_mul, vec_max, vec_min
 *   vec_any_zero(a)              1 when some lane of a is ±0
 *   vec_fma(a, b, c)             a·b + c: rounded once (the C family: twice, as its C always did)
 *   vec_load_part(p, n)          p[0 .. n) for 0 < n < VEC_W, the other lanes 0
 *   vec_store_part(p, n, a)      lanes [0, n) of a to p
 *   vec_keep(a, n)               lanes [0, n) of a, the others 0
 *   vec_row(row, i, type, sc)    elements i .. i+VEC_W−1 of a KV row as fp32, as attn_elem() gives
 *                                them (exactly, for the 16-bit types; q8: K_i·sc rounded once)
 *   vec_reduce(a)                the sum of the lanes in the family's fixed tree
 *   vec_hsum(a[VEC_W])           the VEC_W horizontal sums of VEC_W vectors, lane t the sum of a[t]
 *                                in vec_reduce's tree
 *   vec_total(a)                 the sum of the lanes where no kernel has to agree with
 *                                vec_reduce: the softmax's sum of weights, a masked-tail dot
 *   vec_reduce_max(a)            the largest lane (VEC_HAS_REDUCE_MAX; else this file's, fmaxf in lane order)
 *   vec_exp(x)                   exp(x) lane by lane (the SIMD families: 2^n · p(r) with the
 *                                degree-7 Taylor polynomial; the C family: expf)
 *   VEC_SCORES_BY_BLOCK          1: scores_x4 sums each block of VEC_W / 4 keys × 4 queries at
 *                                once and scatters the sums (8 lanes: the block's accumulators
 *                                stay in AVX2's 16 registers); 0: it keeps the VEC_W keys' sums of
 *                                each query and stores one vector per query (16 lanes)
 *   VEC_MASKED_TAIL              1: a dot product over a d that is not a multiple of VEC_W keeps
 *                                two accumulators over alternate blocks, takes its last partial
 *                                block through vec_load_part into the second and sums with
 *                                vec_total (AVX-512); 0: one accumulator, vec_reduce, then the
 *                                remaining elements one by one
 *
 * Bits. Each family keeps its own summation order, and every kernel of a family agrees with the
 * others: a dot product keeps one accumulator over the VEC_W-float blocks in order and sums its
 * lanes with vec_reduce, and the key-blocked kernels (scores_w, scores_x4) run each (query, key)
 * accumulator through the same FMAs in the same order and sum it with vec_hsum in the same tree,
 * so attn_dot, the dense kernel and Louver's batched scores agree bit for bit within a family
 * (unit.louver, unit.attn_groups). The value kernels add each output element's terms in key order
 * whatever their blocking (one, two or four heads, any slice of the elements), and a vector family
 * skips a row whose weight is 0 (it adds nothing; a 0·inf would make NaN), so a head gets the same
 * bits alone or with others. The families' trees differ, so their bits may too; unit.attn_bits
 * holds each family's bits on fixed inputs, so that a change of order fails there.
 * The C family (VEC_W 1) is the specification: sequential sums, libm's expf, every weight added
 * into l in turn and every row added (the two places below that ask VEC_W == 1 or SKIPS_ZERO).
 *
 * A new instruction set (SVE, AVX10, RISC-V V...): a new family_<name>.c that defines this
 * vocabulary (a width of 1 or a power of two from 4: scores_x4 blocks VEC_W / 4 keys × 4
 * queries) and includes this file, its kernels for the other loops of family.h where it has them,
 * its name in cpu.h's rt_isa, its table in attn_kernels.h's list and its choice in
 * attn_family_choose (attn_kernels.c), and its checksum in unit.attn_bits (which prints it).
 */
#ifndef RSR_RUNTIME_ATTN_GENERIC_H
#define RSR_RUNTIME_ATTN_GENERIC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attn_kernels.h"

#define SKIPS_ZERO (VEC_W > 1) /* the vector families skip rows of weight 0 */

#ifndef VEC_HAS_REDUCE_MAX
/* vec_reduce_max where the family has no reduction of its own: fmaxf over the lanes in order */
VEC float vec_reduce_max(vec a) {
    float lanes[VEC_W], m = -INFINITY;
    vec_storeu(lanes, a);
#pragma GCC unroll 16
    for (int t = 0; t < VEC_W; t++) m = fmaxf(m, lanes[t]);
    return m;
}
#endif

VEC_TYPED static vec row_scale(const void *row, int32_t type, int32_t d) {
    return vec_set1(type == ATTN_Q8 ? attn_q8_scale(row, d) : 0.0f);
}

/* The first n < VEC_W elements of a row from i, the rest 0. */
VEC_TYPED static vec row_part(const void *row, int32_t i, int32_t n, int32_t type, float sc) {
    if (type == ATTN_F32) return vec_load_part((const float *)row + i, n);
    float b[VEC_W] = {0};
    for (int32_t t = 0; t < n; t++) b[t] = attn_elem(row, i + t, type, sc);
    return vec_loadu(b);
}

/* q·k: one accumulator over the blocks in order, summed with vec_reduce (the key-blocked kernels'
 * bits); a d that is not a multiple of VEC_W as VEC_MASKED_TAIL says. */
VEC_TYPED static float dot_t(const float *q, const void *k, int32_t d, int32_t type) {
    const float s1 = type == ATTN_Q8 ? attn_q8_scale(k, d) : 0.0f;
    const vec sc = vec_set1(s1);
    int32_t i = 0;
    if (d % VEC_W == 0) {
        vec a = vec_zero();
        for (; i < d; i += VEC_W) a = vec_fma(vec_loadu(q + i), vec_row(k, i, type, sc), a);
        return vec_reduce(a);
    }
#if VEC_MASKED_TAIL
    vec a0 = vec_zero(), a1 = vec_zero();
    for (; i + 2 * VEC_W <= d; i += 2 * VEC_W) {
        a0 = vec_fma(vec_loadu(q + i), vec_row(k, i, type, sc), a0);
        a1 = vec_fma(vec_loadu(q + i + VEC_W), vec_row(k, i + VEC_W, type, sc), a1);
    }
    if (i + VEC_W <= d) a0 = vec_fma(vec_loadu(q + i), vec_row(k, i, type, sc), a0), i += VEC_W;
    if (i < d) a1 = vec_fma(vec_load_part(q + i, d - i), row_part(k, i, d - i, type, s1), a1);
    return vec_total(vec_add(a0, a1));
#else
    vec a = vec_zero();
    for (; i + VEC_W <= d; i += VEC_W) a = vec_fma(vec_loadu(q + i), vec_row(k, i, type, sc), a);
    float s = vec_reduce(a);
    for (; i < d; i++) s += q[i] * attn_elem(k, i, type, s1);
    return s;
#endif
}

VEC_FN static float dot(const float *q, const void *k, int32_t d, int32_t type) {
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
 * which goes down the rows a slice at a time and would otherwise meet each row's lines from
 * memory one by one, finds them there. The one-head value kernel's first slice also asks for its
 * rows VACC_AHEAD ahead (Louver's rows, given by index, are not scored here first). Every line a
 * row touches is asked for, from the one its first byte is in (q8 rows are not line-aligned). */
#define KEYS_AHEAD 16
#define VACC_AHEAD 8
/* Every line of [p, p + bytes). */
VEC_TYPED static void prefetch_range(const void *p, size_t bytes, int to_l2) {
    const uintptr_t end = (uintptr_t)p + bytes;
    for (uintptr_t line = (uintptr_t)p & ~(uintptr_t)63; line < end; line += 64)
        if (to_l2)
            __builtin_prefetch((const void *)line, 0, 2);
        else
            __builtin_prefetch((const void *)line);
}

/* Before keys j .. j + c − 1 (from j0, of n) are scored: the keys KEYS_AHEAD on, and their values
 * into L2 (vals.base NULL: none). Consecutive rows are one range of memory (with the gaps of a
 * stride wider than a row, if any): one loop over its lines costs less than one per row (a
 * tenth of a chunk's time at 4K bf16 keys in L3, AVX-512), and a line two q8 rows share is asked
 * for once. */
VEC_TYPED static void prefetch_keys(attn_rows keys, attn_rows vals, int32_t j0, int32_t j, int32_t c, int32_t n) {
    const int32_t a = j + KEYS_AHEAD, b = a + c < n ? a + c : n;
    if (a < b) prefetch_range(attn_row(keys, j0 + a), (size_t)(b - a) * keys.bytes, 0);
    if (vals.base) prefetch_range(attn_row(vals, j0 + j), (size_t)c * vals.bytes, 1);
}

/* Scores of VEC_W consecutive rows of k for one query; d a multiple of VEC_W. */
VEC_TYPED static vec scores_w(const float *q, attn_rows k, int32_t d, int32_t type) {
    vec acc[VEC_W], sc[VEC_W];
#pragma GCC unroll 16
    for (int t = 0; t < VEC_W; t++) acc[t] = vec_zero(), sc[t] = row_scale(attn_row(k, t), type, d);
    for (int32_t i = 0; i < d; i += VEC_W) {
        const vec qv = vec_loadu(q + i);
#pragma GCC unroll 16
        for (int t = 0; t < VEC_W; t++) acc[t] = vec_fma(qv, vec_row(attn_row(k, t), i, type, sc[t]), acc[t]);
    }
    return vec_hsum(acc);
}

#if VEC_W >= 4
#define KB (VEC_W / 4) /* keys of one block of scores_x4: KB keys × 4 queries fill VEC_W accumulators */

/* One block of scores: keys k, k + 1, .., k + KB − 1 (from row 0 of k) × four queries q, q + d,
 * q + 2d, q + 3d (the query heads of a KV head) into acc[KB·g + c] (query g, key c); each key
 * block is loaded and widened once for the four queries; d a multiple of VEC_W. Each (query, key)
 * accumulator takes the FMAs of scores_w in its order, so after the same vec_hsum tree every
 * score has scores_w's bits. */
VEC_TYPED static void scores_block(vec acc[VEC_W], const float *q, int32_t d, attn_rows k, int32_t type) {
    vec sc[KB];
#pragma GCC unroll 16
    for (int t = 0; t < VEC_W; t++) acc[t] = vec_zero();
#pragma GCC unroll 4
    for (int c = 0; c < KB; c++) sc[c] = row_scale(attn_row(k, c), type, d);
    for (int32_t i = 0; i < d; i += VEC_W) {
        vec kv[KB];
#pragma GCC unroll 4
        for (int c = 0; c < KB; c++) kv[c] = vec_row(attn_row(k, c), i, type, sc[c]);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) { /* one query vector at a time: AVX2 has 16 registers */
            const vec qv = vec_loadu(q + (size_t)g * (size_t)d + i);
#pragma GCC unroll 4
            for (int c = 0; c < KB; c++) acc[KB * g + c] = vec_fma(qv, kv[c], acc[KB * g + c]);
        }
    }
}

/* Scores of keys j0 + j .. for four queries q, q + d, q + 2d, q + 3d into dots[g·ostride + t].
 * VEC_SCORES_BY_BLOCK: one block of KB keys, its sums at once and scattered (lane KB·g + c is
 * query g, key c: the block's accumulators stay in AVX2's registers). Else VEC_W keys in 4 blocks,
 * each query's VEC_W sums at once, one vector a query. fetch: the keys' and values' lines are
 * asked for (prefetch_keys). */
VEC_TYPED static void scores_x4(const float *q, int32_t d, attn_rows keys, attn_rows vals, int32_t j0, int32_t j,
                                int32_t n, int fetch, float *dots, size_t ostride, int32_t type) {
    const attn_rows k = attn_rows_from(keys, j0 + j);
    vec acc[VEC_W];
    if (VEC_SCORES_BY_BLOCK) {
        if (fetch) prefetch_keys(keys, vals, j0, j, KB, n);
        scores_block(acc, q, d, k, type);
        float t[VEC_W];
        vec_storeu(t, vec_hsum(acc));
#pragma GCC unroll 16
        for (int u = 0; u < VEC_W; u++) dots[(size_t)(u / KB) * ostride + (size_t)(u % KB)] = t[u];
        return;
    }
    vec r[4][VEC_W];
    for (int kb = 0; kb < 4; kb++) { /* keys KB·kb .. KB·kb + KB − 1 */
        if (fetch) prefetch_keys(keys, vals, j0, j + KB * kb, KB, n);
        scores_block(acc, q, d, attn_rows_from(k, KB * kb), type);
#pragma GCC unroll 16
        for (int t = 0; t < VEC_W; t++) r[t / KB][KB * kb + t % KB] = acc[t];
    }
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) vec_storeu(dots + (size_t)g * ostride, vec_hsum(r[g]));
}
#endif

/* dots[g·ostride + j] = q_g·k_{j0+j} for the gq queries q + g·d and keys [j0, j1): VEC_W keys at a
 * time (four queries together where there are four), the rest one by one. vals: rows asked for
 * into L2 as their keys are scored, or base NULL. */
VEC_TYPED static void scores_t(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1,
                               float *dots, size_t ostride, int32_t type, attn_rows vals) {
    const int32_t n = j1 - j0, g4 = VEC_W >= 4 ? gq / 4 * 4 : 0; /* heads scored four at a time */
    int32_t j = 0;
#if VEC_W >= 4
    if (d % VEC_W == 0 && g4 == gq) { /* every query in fours: blocks of x4's keys */
        const int32_t step = VEC_SCORES_BY_BLOCK ? KB : VEC_W;
        for (; j + step <= n; j += step)
            for (int32_t g = 0; g < g4; g += 4)
                scores_x4(q + (size_t)g * (size_t)d, d, keys, vals, j0, j, n, g == 0, dots + (size_t)g * ostride + j,
                          ostride, type);
    }
#endif
    if (d % VEC_W == 0)
        for (; j + VEC_W <= n; j += VEC_W) {
            if (!g4) prefetch_keys(keys, vals, j0, j, VEC_W, n);
            int32_t g = 0;
#if VEC_W >= 4
            for (; g < g4; g += 4)
                for (int32_t b = 0; b < VEC_W; b += VEC_SCORES_BY_BLOCK ? KB : VEC_W)
                    scores_x4(q + (size_t)g * (size_t)d, d, keys, vals, j0, j + b, n, g == 0,
                              dots + (size_t)g * ostride + j + b, ostride, type);
#endif
            for (; g < gq; g++)
                vec_storeu(dots + (size_t)g * ostride + j,
                           scores_w(q + (size_t)g * (size_t)d, attn_rows_from(keys, j0 + j), d, type));
        }
    for (; j < n; j++)
        for (int32_t g = 0; g < gq; g++)
            dots[(size_t)g * ostride + j] = dot_t(q + (size_t)g * (size_t)d, attn_row(keys, j0 + j), d, type);
}

/* The scores of dense_range, or alone (vals.base NULL). */
VEC_FN static void scores_vals(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1,
                               float *dots, size_t ostride, attn_rows vals) {
    switch (keys.type) {
    case ATTN_BF16: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_BF16, vals); break;
    case ATTN_F16: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_F16, vals); break;
    case ATTN_Q8: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_Q8, vals); break;
    default: scores_t(q, gq, keys, d, j0, j1, dots, ostride, ATTN_F32, vals); break;
    }
}

VEC_FN static void scores(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1, float *dots,
                          size_t ostride) {
    scores_vals(q, gq, keys, d, j0, j1, dots, ostride, (attn_rows){.base = NULL});
}

/* What softmax_weights found: no weights (every score −inf), weights none of which is 0 (the
 * usual case), or weights some of which are 0 (exp underflowed, or a score was −inf), whose rows
 * a vector family then skips. */
enum { W_NONE = 0, W_ALL = 1, W_SOME_ZERO = 2 };

/* The softmax half of attn_accumulate: raises st->m to the chunk's maximum, turns x into the
 * weights exp(x − m) and adds them to st->l. Also notes whether a weight is 0 (the smallest e is
 * 0), so that the value kernels test each row's weights only then; a NaN counts as a possible 0
 * (the tested path is exact in every case). */
VEC_FN static int softmax_weights(attn_state *st, float *x, int32_t n, int32_t d) {
    vec vmax = vec_set1(-INFINITY);
    int32_t j = 0;
    for (; j + VEC_W <= n; j += VEC_W) vmax = vec_max(vmax, vec_loadu(x + j));
    float xmax = vec_reduce_max(vmax);
    for (; j < n; j++) xmax = fmaxf(xmax, x[j]);
    if (xmax == -INFINITY) return W_NONE;
    if (xmax > st->m) attn_raise_max(st, xmax, d);
    const vec m = vec_set1(st->m);
    vec sum = vec_zero(), least = vec_set1(INFINITY); /* the smallest e (a NaN's lane may lose it) */
    for (j = 0; j + VEC_W <= n; j += VEC_W) {
        const vec e = vec_exp(vec_sub(vec_loadu(x + j), m));
        vec_storeu(x + j, e);
        least = vec_min(least, e);
#if VEC_W == 1 /* the specification's order: each weight into l in turn */
        st->l += e;
#else
        sum = vec_add(sum, e);
#endif
    }
    int zero = vec_any_zero(least);
    if (j < n) { /* the tail: the lanes past it are left out of the sum */
        const vec e = vec_exp(vec_sub(vec_load_part(x + j, n - j), m));
        vec_store_part(x + j, n - j, e);
        sum = vec_add(sum, vec_keep(e, n - j));
        for (; j < n; j++) zero |= x[j] == 0.0f;
    }
    if (VEC_W > 1) {
        const float total = vec_total(sum);
        st->l += total;
        zero |= total != total; /* a NaN weight: the max may have lost a 0 beside it */
    }
    return SKIPS_ZERO && zero ? W_SOME_ZERO : W_ALL;
}

/* Row j of vacc_t's slice at: each live head's acc[g·V + c] += x_g[j] · v_j[at + c·VEC_W ..].
 * checked: some weight may be zero, so the row's are tested (a head with a zero weight adds
 * nothing). */
VEC_TYPED static void vacc_row(vec acc[], const float *const x[], const int32_t *idx, int32_t j, attn_rows values,
                               int32_t at, int32_t d, int H, int V, int32_t type, int checked) {
    int live = H;
    if (checked) {
        live = 0;
#pragma GCC unroll 4
        for (int g = 0; g < H; g++) live += x[g][j] != 0.0f;
        if (!live) return;
    }
    const void *v = attn_row(values, idx ? idx[j] : j);
    const vec sc = row_scale(v, type, d);
    /* the slice's first element: the vectors of the slice then sit at constant offsets */
    const char *p = (const char *)v + (size_t)at * (type == ATTN_F32 ? 4 : type == ATTN_Q8 ? 1 : 2);
    if (live < H) { /* some heads skip the row (H > 1: then V ≤ 4, the row's vectors fit beside) */
        vec r[8];
#pragma GCC unroll 8
        for (int c = 0; c < V; c++) r[c] = vec_row(p, c * VEC_W, type, sc);
#pragma GCC unroll 4
        for (int g = 0; g < H; g++) {
            if (x[g][j] == 0.0f) continue;
            const vec e = vec_set1(x[g][j]);
#pragma GCC unroll 8
            for (int c = 0; c < V; c++) acc[g * V + c] = vec_fma(e, r[c], acc[g * V + c]);
        }
        return;
    }
    /* one vector of the row at a time, for every head: H·V accumulators, H weights and the vector
     * in registers (AVX2 has 16) */
    vec e[4];
#pragma GCC unroll 4
    for (int g = 0; g < H; g++) e[g] = vec_set1(x[g][j]);
#pragma GCC unroll 8
    for (int c = 0; c < V; c++) {
        const vec r = vec_row(p, c * VEC_W, type, sc);
#pragma GCC unroll 4
        for (int g = 0; g < H; g++) acc[g * V + c] = vec_fma(e[g], r, acc[g * V + c]);
    }
}

/* Asks for value row idx[j] (or j) into L1. */
VEC_TYPED static void vacc_fetch(attn_rows values, const int32_t *idx, int32_t j) {
    prefetch_range(attn_row(values, idx ? idx[j] : j), values.bytes, 0);
}

/* H heads' o_g[d] += Σ_j x_g[j] · v_j over the same value rows (row idx[j], or j), each row widened
 * once for the H heads, V vectors of each at a time (H·V accumulators in registers; d a multiple
 * of V·VEC_W). Each head adds its terms in key order and skips the same zero weights, so it gets
 * the bits it gets alone. checked: some weight of the H heads is 0 (softmax_weights), so each
 * row's are tested; per row and slice the tests would cost as much as the row's FMAs, and are
 * rarely needed. One head asks for its rows VACC_AHEAD ahead in its first slice. */
VEC_TYPED static void vacc_t(float *const o[], const float *const x[], const int32_t *idx, int32_t n, attn_rows values,
                             int32_t d, int H, int V, int32_t type, int checked) {
    for (int32_t at = 0; at < d; at += V * VEC_W) {
        vec acc[16];
#pragma GCC unroll 4
        for (int g = 0; g < H; g++)
#pragma GCC unroll 8
            for (int c = 0; c < V; c++) acc[g * V + c] = vec_loadu(o[g] + at + c * VEC_W);
        if (checked) /* two loops, so that the usual one has no tests in it */
            for (int32_t j = 0; j < n; j++) {
                if (H == 1 && at == 0 && j + VACC_AHEAD < n) vacc_fetch(values, idx, j + VACC_AHEAD);
                vacc_row(acc, x, idx, j, values, at, d, H, V, type, 1);
            }
        else
            for (int32_t j = 0; j < n; j++) {
                if (H == 1 && at == 0 && j + VACC_AHEAD < n) vacc_fetch(values, idx, j + VACC_AHEAD);
                vacc_row(acc, x, idx, j, values, at, d, H, V, type, 0);
            }
#pragma GCC unroll 4
        for (int g = 0; g < H; g++)
#pragma GCC unroll 8
            for (int c = 0; c < V; c++) vec_storeu(o[g] + at + c * VEC_W, acc[g * V + c]);
    }
}

/* One head's o[d] += Σ_j x[j] · v_j for any d, through memory: the VEC_W-element blocks with
 * vec_fma, the rest one by one. */
VEC_TYPED static void vacc_any_t(float *o, const float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d,
                                 int32_t type) {
    for (int32_t j = 0; j < n; j++) {
        if (SKIPS_ZERO && x[j] == 0.0f) continue;
        const vec e = vec_set1(x[j]);
        const void *v = attn_row(values, idx ? idx[j] : j);
        const float s1 = type == ATTN_Q8 ? attn_q8_scale(v, d) : 0.0f;
        const vec sc = vec_set1(s1);
        int32_t i = 0;
        for (; i + VEC_W <= d; i += VEC_W) vec_storeu(o + i, vec_fma(e, vec_row(v, i, type, sc), vec_loadu(o + i)));
        for (; i < d; i++) o[i] += x[j] * attn_elem(v, i, type, s1);
    }
}

/* The value kernels' vectors per head: four heads share VEC_ACCS accumulators, two heads too (at
 * most 8 each), one head 8 or else 4. */
#define V4 (VEC_ACCS / 4)
#define V2 (VEC_ACCS / 2 < 8 ? VEC_ACCS / 2 : 8)

/* One head's value kernel: 8 vectors a slice where d allows, else 4, else through memory. */
VEC_TYPED static void vacc1_t(float *o, const float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d,
                              int32_t type, int checked) {
    float *const os[1] = {o};
    const float *const xs[1] = {x};
    if (d % (8 * VEC_W) == 0)
        vacc_t(os, xs, idx, n, values, d, 1, 8, type, checked);
    else if (d % (4 * VEC_W) == 0)
        vacc_t(os, xs, idx, n, values, d, 1, 4, type, checked);
    else
        vacc_any_t(o, x, idx, n, values, d, type);
}

VEC_FN static void vacc1(float *o, const float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d,
                         int checked) {
    switch (values.type) {
    case ATTN_BF16: vacc1_t(o, x, idx, n, values, d, ATTN_BF16, checked); break;
    case ATTN_F16: vacc1_t(o, x, idx, n, values, d, ATTN_F16, checked); break;
    case ATTN_Q8: vacc1_t(o, x, idx, n, values, d, ATTN_Q8, checked); break;
    default: vacc1_t(o, x, idx, n, values, d, ATTN_F32, checked); break;
    }
}

/* H (2 or 4) heads over rows 0 .. n − 1 of values, V vectors each a slice: d a multiple of V·VEC_W. */
VEC_FN static void vacc_heads(float *const o[], const float *const x[], int32_t n, attn_rows values, int32_t d, int H,
                              int checked) {
#define VACC_HEADS(T)                                                                                                  \
    (H == 4 ? vacc_t(o, x, NULL, n, values, d, 4, V4, T, checked) : vacc_t(o, x, NULL, n, values, d, 2, V2, T, checked))
    switch (values.type) {
    case ATTN_BF16: VACC_HEADS(ATTN_BF16); break;
    case ATTN_F16: VACC_HEADS(ATTN_F16); break;
    case ATTN_Q8: VACC_HEADS(ATTN_Q8); break;
    default: VACC_HEADS(ATTN_F32); break;
    }
#undef VACC_HEADS
}

VEC_FN static void accumulate(attn_state *st, float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d) {
    const int w = softmax_weights(st, x, n, d);
    if (w != W_NONE) vacc1(st->o, x, idx, n, values, d, w == W_SOME_ZERO);
}

/* x[j] ×= scale for j < n, counting into *count the x[j] ≥ tau before (count NULL: none). */
VEC_FN static void scale_scores(float *x, int32_t n, float scale, const float *tau, int32_t *count) {
    if (count)
        for (int32_t j = 0; j < n; j++) *count += x[j] >= *tau;
    const vec vs = vec_set1(scale);
    int32_t j = 0;
    for (; j + VEC_W <= n; j += VEC_W) vec_storeu(x + j, vec_mul(vec_loadu(x + j), vs));
    if (j < n) vec_store_part(x + j, n - j, vec_mul(vec_load_part(x + j, n - j), vs));
}

/* The values of heads [g0, g1) (at most ATTN_GROUP_MAX) whose weights w[g − g0] are in x:
 * four heads at a time over the same rows where all four have weights and d allows, else two,
 * else one. The C family takes each head alone, as the specification does: it adds every row, and
 * where a value is NaN or inf the NaN it makes then has the same bits in a head attended alone
 * or with others (which operand's NaN an addition keeps is the compiler's choice per kernel). */
VEC_FN static void values_of(attn_state *st, const float *x, const int *w, int32_t g0, int32_t g1, attn_rows v0,
                             int32_t d, int32_t n) {
    for (int32_t g = g0; g < g1;) {
        const int *wg = w + (g - g0);
        const int four = g + 4 <= g1 && wg[0] && wg[1] && wg[2] && wg[3] && d % (V4 * VEC_W) == 0;
        const int two = !four && g + 2 <= g1 && wg[0] && wg[1] && d % (V2 * VEC_W) == 0;
        if (SKIPS_ZERO && (four || two)) {
            const int h = four ? 4 : 2;
            float *const o[4] = {st[g].o, st[g + 1].o, four ? st[g + 2].o : NULL, four ? st[g + 3].o : NULL};
            const float *const xs[4] = {x + (size_t)g * (size_t)n, x + (size_t)(g + 1) * (size_t)n,
                                        four ? x + (size_t)(g + 2) * (size_t)n : NULL,
                                        four ? x + (size_t)(g + 3) * (size_t)n : NULL};
            int checked = 0;
            for (int t = 0; t < h; t++) checked |= wg[t] == W_SOME_ZERO;
            vacc_heads(o, xs, n, v0, d, h, checked);
            g += h;
        } else {
            if (wg[0] != W_NONE) vacc1(st[g].o, x + (size_t)g * (size_t)n, NULL, n, v0, d, wg[0] == W_SOME_ZERO);
            g++;
        }
    }
}

VEC_FN static void dense_range(attn_state *st, const float *q, int32_t gq, attn_rows keys, attn_rows values, int32_t d,
                               int32_t j0, int32_t j1, float *scratch, const float *tau, int32_t *count) {
    const float scale = 1.0f / sqrtf((float)d);
    const int32_t n = j1 - j0;
    scores_vals(q, gq, keys, d, j0, j1, scratch, (size_t)n, values);
    const attn_rows v0 = attn_rows_from(values, j0);
    for (int32_t g0 = 0; g0 < gq; g0 += ATTN_GROUP_MAX) {
        const int32_t g1 = gq - g0 < ATTN_GROUP_MAX ? gq : g0 + ATTN_GROUP_MAX;
        int w[ATTN_GROUP_MAX];
        for (int32_t g = g0; g < g1; g++) {
            float *x = scratch + (size_t)g * (size_t)n;
            scale_scores(x, n, scale, count ? tau + g : NULL, count ? count + g : NULL);
            w[g - g0] = softmax_weights(&st[g], x, n, d);
        }
        values_of(st, scratch, w, g0, g1, v0, d, n);
    }
}

const attn_family VEC_FAMILY = {
    .dot = dot,
    .scores = scores,
    .accumulate = accumulate,
    .dense_range = dense_range,
};

#undef KB
#undef V4
#undef V2
#undef SKIPS_ZERO
#endif
