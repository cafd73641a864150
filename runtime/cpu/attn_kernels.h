/*
 * attn_kernels.h — the attention kernels (partial softmax states, dot products) that dense
 * attention (attention.c) and Louver (louver.c) are built from.
 *
 * Both paths compute softmax attention as a merge of partial states: a partial state over a
 * set of keys C is (m, l, o) with m ≥ every scaled score in C, l = Σ_C exp(x_j − m) and
 * o = Σ_C exp(x_j − m)·v_j (not yet divided by l). Partial states over disjoint key sets merge
 * exactly (up to rounding), so keys can be split over threads and over the Louver index and its
 * recent-key buffer, and the result does not depend on the thread count.
 *
 * Scores: dot = q·k in fp32 (any summation order: see docs/louver.md for why the order does not
 * matter to Louver's guarantee), x = dot * (1/sqrtf(d)).
 */
#ifndef RSR_RUNTIME_ATTN_KERNELS_H
#define RSR_RUNTIME_ATTN_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu.h"
#include "rsr_numerics.h"

#define ATTN_GROUP_MAX 64 /* query heads of one KV head attended together (dense); more go in slices */

typedef struct attn_state {
    float m, l; /* running max of the scaled scores (−inf: empty), Σ exp(x − m) */
    float *o;   /* [d] Σ exp(x − m)·v */
} attn_state;

void attn_state_clear(attn_state *st, int32_t d);
/* a ← merge(a, b); b is left unchanged. */
void attn_state_merge(attn_state *a, const attn_state *b, int32_t d);
/* out[d] = a.o / a.l (zeros when a is empty). */
void attn_state_finish(const attn_state *a, float *out, int32_t d);
/* One head's partial states of `chunks` key chunks (o: [chunks][d], used as scratch; ml:
 * [chunks][m, l]) merged in chunk order into its attention output. */
void attn_merge_chunks(float *part_o, const float *part_ml, int32_t chunks, int32_t d, float *out);

/* The rows of a KV cache (row j at base + j·bytes), of element type `type`:
 *   ATTN_F32   d floats
 *   ATTN_BF16  d bfloat16 (the top half of an fp32)
 *   ATTN_F16   d IEEE half floats
 *   ATTN_Q8    d int8 K then its fp32 scale s (memcpy'd: rows need no alignment); element i is
 *              the fp32 product K_i·s, rounded once
 * Every kernel reads element i of a row as the float attn_widen_row gives (exactly, for the 16-bit
 * types), so scores and sums over a cache of any type are those of its widened fp32 rows: the bit
 * identities below (attn_dot = the 16-key kernels, Louver's bounds) hold for every type. */
enum { ATTN_F32, ATTN_BF16, ATTN_F16, ATTN_Q8, ATTN_TYPES };
typedef struct attn_rows {
    const void *base;
    size_t bytes;
    int32_t type;
} attn_rows;
/* Bytes of one row of d elements. */
size_t attn_row_bytes(int32_t type, int32_t d);
static inline attn_rows attn_rows_f32(const float *base, size_t stride) {
    return (attn_rows){.base = base, .bytes = stride * sizeof(float), .type = ATTN_F32};
}
static inline const void *attn_row(attn_rows r, int64_t j) { return (const char *)r.base + (size_t)j * r.bytes; }
static inline attn_rows attn_rows_from(attn_rows r, int64_t j) {
    r.base = attn_row(r, j);
    return r;
}
/* out[d] = row j widened to fp32. */
void attn_widen_row(attn_rows r, int64_t j, int32_t d, float *out);
/* Stores x[d] as one row of `type` at out (attn_row_bytes bytes), rounding to nearest, ties to
 * even (bf16, f16: magnitudes past the format's largest become ±inf; q8: s = max|x_i|/127, K_i =
 * x_i/s rounded, NaN and ±inf rows keep s = NaN so that every element reads as NaN). */
void attn_narrow_row(int32_t type, const float *x, int32_t d, void *out);

/* q·k over d elements, vectorised when the machine allows; the bits attn_scores and
 * attn_dense_range_kv give the same pair. _kv: key row j of k. */
float attn_dot(const float *q, const float *k, int32_t d);
float attn_dot_kv(const float *q, attn_rows k, int64_t j, int32_t d);

/* The fp32 dots of gq queries (q + g*d) with keys [j0, j1) (row j at keys + j*stride):
 * dots[g*ostride + (j - j0)], 16 keys at a time where the machine allows, each with attn_dot's
 * bits (attn_dot sums in the 16-key kernels' order). */
void attn_scores(const float *q, int32_t gq, const float *keys, size_t stride, int32_t d, int32_t j0, int32_t j1,
                 float *dots, size_t ostride);
void attn_scores_kv(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1, float *dots,
                    size_t ostride);

/* Adds keys to a state: x[i] are the scaled scores of the keys whose values are row idx[i] of
 * values (idx NULL: row i). x is overwritten with exp(x − m). */
void attn_accumulate(attn_state *st, float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d);

/* The same over rows of any type, also counting per query g the keys with fl(q·k) ≥ tau[g] into
 * count[g] when count is not NULL (Louver's dense fallback reports how many keys reach τ); the
 * scores have attn_dot's bits. */
void attn_dense_range_kv(attn_state *st, const float *q, int32_t gq, attn_rows keys, attn_rows values, int32_t d,
                         int32_t j0, int32_t j1, float *scratch, const float *tau, int32_t *count);

/* 1 when the AVX-512 family is in use (Louver's AVX-512 passes, louver.c, follow it). */
static inline int attn_simd_enabled(void) { return rt_isa_avx512(rt_cpu_isa()); }
/* 1 when Louver's pass over the codes runs on the AVX-512 VNNI kernels (louver.c). Elsewhere its
 * portable pass loses to dense attention at every length (bench_attention on AVX2: 0.2x at 4K and
 * 32K structured keys), so --attention auto attends densely there. */
static inline int rt_louver_fast(void) { return rt_cpu_isa() == RT_ISA_AVX512_VNNI; }

/* ---- the kernel families (attn_generic.h, one file each: family_avx512.c, family_avx2.c,
 * family_neon.c, family_portable.c) ---- */

/* What a family gives the entry points above (rows of `type`; the entry points take attn_rows). */
typedef struct attn_family {
    float (*dot)(const float *q, const void *k, int32_t d, int32_t type);
    void (*scores)(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1, float *dots,
                   size_t ostride);
    void (*accumulate)(attn_state *st, float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d);
    void (*dense_range)(attn_state *st, const float *q, int32_t gq, attn_rows keys, attn_rows values, int32_t d,
                        int32_t j0, int32_t j1, float *scratch, const float *tau, int32_t *count);
} attn_family;

extern const attn_family attn_family_portable;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ATTN_FAMILIES_X86 1
extern const attn_family attn_family_avx512, attn_family_avx2;
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#define ATTN_FAMILIES_NEON 1
extern const attn_family attn_family_neon;
#endif

/* The family of the runtime's kernel family (rt_cpu_isa()), chosen on the first call and kept:
 * the CPU device asks when it makes a session, the entry points when they are called before. */
const attn_family *attn_family_choose(void);

static inline float attn_q8_scale(const void *row, int32_t d) {
    float s;
    memcpy(&s, (const char *)row + d, sizeof s);
    return s;
}

/* Element i of a row; sc: the row's q8 scale (unused by the other types). */
static inline float attn_elem(const void *row, int32_t i, int32_t type, float sc) {
    switch (type) {
    case ATTN_BF16: {
        uint16_t h;
        memcpy(&h, (const char *)row + 2 * (size_t)i, 2);
        return rsr_bf16_to_f32(h);
    }
    case ATTN_F16: {
        uint16_t h;
        memcpy(&h, (const char *)row + 2 * (size_t)i, 2);
        return rsr_f16_to_f32(h);
    }
    case ATTN_Q8: return (float)((const int8_t *)row)[i] * sc;
    default: return ((const float *)row)[i];
    }
}

/* A new running maximum: what was summed so far is rescaled to it (online softmax). */
void attn_raise_max(attn_state *st, float xmax, int32_t d);

#endif
