/* fold.c — PrismML's Hadamard fold at run time (fold.h). The transform costs n·log2(B) additions a
 * token against the n·rows multiply-adds of the product it precedes (5120 · 10 against 5120 · 17408
 * for Bonsai 2's widest): the butterflies are written once and cloned per ISA family (RT_ISA_CLONES),
 * each pass a loop over contiguous halves that vectorises for spans of 8 and more. */
#include "fold.h"

#include <math.h>
#include <string.h>

#include "cpu.h"

/* The butterflies of every block of B entries of x [n], then the scale 1/√B. */
RT_INLINE_BODY void fwht_body(float *restrict x, int32_t n, int32_t B) {
    for (int32_t b0 = 0; b0 < n; b0 += B) {
        float *restrict v = x + b0;
        for (int32_t h = 1; h < B; h *= 2)
            for (int32_t i = 0; i < B; i += 2 * h)
                for (int32_t j = i; j < i + h; j++) {
                    const float p = v[j], q = v[j + h];
                    v[j] = p + q, v[j + h] = p - q;
                }
    }
    const float s = 1.0f / sqrtf((float)B);
    for (int32_t i = 0; i < n; i++) x[i] *= s;
}
RT_ISA_CLONES(fwht, (float *restrict x, int32_t n, int32_t B), (x, n, B))

void rt_fold_input(const rsr_artifact *a, const uint8_t *blob, const rsr_artifact_matrix *mx, float *dst,
                   const float *src) {
    const int32_t n = mx->cols;
    const float *s = (const float *)(blob + mx->in_signs);
    if (mx->in_perm_groups > 0) { /* ssm_out: V head t + r·nk (tiled) is grouped head r + t·rep */
        const int32_t hd = mx->in_perm_head, nk = mx->in_perm_groups, rep = n / (hd * nk);
        for (int32_t t = 0; t < nk; t++)
            for (int32_t r = 0; r < rep; r++) {
                float *o = dst + (size_t)(r + t * rep) * (size_t)hd;
                const float *in = src + (size_t)(t + r * nk) * (size_t)hd, *so = s + (size_t)(r + t * rep) * (size_t)hd;
                for (int32_t d = 0; d < hd; d++) o[d] = so[d] * in[d];
            }
    } else
        for (int32_t i = 0; i < n; i++) dst[i] = s[i] * src[i];
    fwht(dst, n, a->fold_block);
}

void rt_fold_head(const rsr_artifact *a, const uint8_t *blob, float *x) {
    if (!a->fold_block || a->lm_head_signs == RSR_NO_TENSOR) return;
    const float *s = (const float *)(blob + a->lm_head_signs);
    for (int32_t i = 0; i < a->hidden; i++) x[i] *= s[i];
    fwht(x, a->hidden, a->fold_block);
}

void rt_fold_embed(const rsr_artifact *a, const uint8_t *blob, float *h) {
    if (!a->fold_block || a->embed_signs == RSR_NO_TENSOR) return;
    const float *s = (const float *)(blob + a->embed_signs);
    fwht(h, a->hidden, a->fold_block);
    for (int32_t i = 0; i < a->hidden; i++) h[i] *= s[i];
}
