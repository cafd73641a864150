/* fold.h — PrismML's Hadamard fold at run time (rsr_artifact.fold_block; docs/qwen35.md): the
 * rotation of a folded matrix's input before it is quantised, and of an embedding row stored
 * rotated. H_B is the normalised Sylvester Walsh-Hadamard matrix, H[r][c] = ±1/√B by the parity of
 * popcount(r & c), applied to each block of B entries by log2(B) passes of butterflies (a + b, a - b)
 * and one multiply by 1/√B; the same operations in every ISA family. */
#ifndef RSR_RUNTIME_FOLD_H
#define RSR_RUNTIME_FOLD_H

#include <stdint.h>

#include "rsr_artifact.h"

/* blob: the model's constants (rsr_model.blob, which may be a copy of rsr_artifact.blob), where the
 * sign vectors are read. */
/* dst <- H_B (signs ⊙ P src) over mx's cols entries (mx->in_signs and mx->in_perm_*; P the identity
 * without in_perm_groups). dst may be src only when there is no permutation. */
void rt_fold_input(const rsr_artifact *a, const uint8_t *blob, const rsr_artifact_matrix *mx, float *dst,
                   const float *src);
/* x <- H_B (lm_head_signs ⊙ x) over hidden entries: the head's input; nothing without a head fold. */
void rt_fold_head(const rsr_artifact *a, const uint8_t *blob, float *x);
/* h <- embed_signs ⊙ (H_B h) over hidden entries: an embedding row stored rotated; nothing without. */
void rt_fold_embed(const rsr_artifact *a, const uint8_t *blob, float *h);
/* Whether matrix mx's input is rotated. */
static inline int rt_folded(const rsr_artifact *a, const rsr_artifact_matrix *mx) {
    return a->fold_block > 0 && mx->in_signs != RSR_NO_TENSOR;
}

#endif
