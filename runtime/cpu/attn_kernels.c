/*
 * attn_kernels.c — what the attention kernels share (partial states, rows of every element type)
 * and the entry points, which run the kernel family chosen once (attn_family_choose): AVX-512, AVX2,
 * NEON or the portable C, each the kernels of attn_generic.h on its own vectors.
 */
#include "attn_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rsr.h"
#include "rsr_numerics.h"

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

/* A new running maximum: what was summed so far is rescaled to it (online softmax). */
void attn_raise_max(attn_state *st, float xmax, int32_t d) {
    float c = st->m == -INFINITY ? 0.0f : expf(st->m - xmax);
    for (int32_t i = 0; i < d; i++) st->o[i] *= c;
    st->l *= c;
    st->m = xmax;
}

/* ---- the family, chosen once ---- */

static const attn_family *chosen;

const attn_family *attn_family_choose(void) {
    const attn_family *f = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (f) return f;
    const rt_isa isa = rt_cpu_isa();
    f = &attn_family_portable;
#ifdef ATTN_FAMILIES_X86
    if (rt_isa_avx512(isa))
        f = &attn_family_avx512;
    else if (isa == RT_ISA_AVX2)
        f = &attn_family_avx2;
#endif
#ifdef ATTN_FAMILIES_NEON
    if (isa == RT_ISA_NEON) f = &attn_family_neon;
#endif
    __atomic_store_n(&chosen, f, __ATOMIC_RELEASE);
    return f;
}

static inline const attn_family *family(void) {
    const attn_family *f = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    return f ? f : attn_family_choose();
}

/* ---- the entry points ---- */

void attn_scores_kv(const float *q, int32_t gq, attn_rows keys, int32_t d, int32_t j0, int32_t j1, float *dots,
                    size_t ostride) {
    family()->scores(q, gq, keys, d, j0, j1, dots, ostride);
}

void attn_scores(const float *q, int32_t gq, const float *keys, size_t stride, int32_t d, int32_t j0, int32_t j1,
                 float *dots, size_t ostride) {
    attn_scores_kv(q, gq, attn_rows_f32(keys, stride), d, j0, j1, dots, ostride);
}

float attn_dot_kv(const float *q, attn_rows k, int64_t j, int32_t d) {
    return family()->dot(q, attn_row(k, j), d, k.type);
}

float attn_dot(const float *q, const float *k, int32_t d) { return attn_dot_kv(q, attn_rows_f32(k, 0), 0, d); }

void attn_accumulate(attn_state *st, float *x, const int32_t *idx, int32_t n, attn_rows values, int32_t d) {
    if (n > 0) family()->accumulate(st, x, idx, n, values, d);
}

void attn_dense_range_kv(attn_state *st, const float *q, int32_t gq, attn_rows keys, attn_rows values, int32_t d,
                         int32_t j0, int32_t j1, float *scratch, const float *tau, int32_t *count) {
    if (j1 > j0) family()->dense_range(st, q, gq, keys, values, d, j0, j1, scratch, tau, count);
}
