/*
 * b3_pairs.h — the x86 families' decode of a base-3 run (family_avx2.c's and family_avx512.c's
 * uv_run3 and block converters): the digits of rsr_artifact.h's base-3 layouts by pairs.
 */
#ifndef RSR_B3_PAIRS_H
#define RSR_B3_PAIRS_H

#include <stdint.h>

/* How they decode a base-3 run (rsr_artifact.h) by pairs of vectors q, q + 1: five
 * packed pairs of digit pairs, each giving two fields (4 columns of a unit, codes 0..2 a byte, the
 * bytes of the 2-bit layout's field). Pair m of a word is ((w·9ᵐ mod 2¹⁶)·9) >> 16 = 3·d₂ₘ + d₂ₘ₊₁
 * (a vpmullw, a vpmulhuw), vpackuswb puts two words' pairs in a byte each, and a vpshufb of each
 * digit's table splits them: 9 multiplies a vector where a multiply a digit took 19. Pack i: the
 * vectors va, vb (of the two) and pairs ma, mb packed, and the unit p[d] and column c[d] (of 4,
 * from 4q) that the first digits (d = 0) and the second (d = 1) fill. */
static const struct rt_b3_pack {
    int8_t va, ma, vb, mb, p[2], c[2];
} rt_b3_packs[5] = {{0, 0, 0, 1, {0, 1}, {0, 0}},
                    {0, 2, 0, 3, {2, 3}, {0, 0}},
                    {1, 0, 1, 1, {0, 1}, {1, 1}},
                    {1, 2, 1, 3, {2, 3}, {1, 1}},
                    {0, 4, 1, 4, {4, 4}, {0, 1}}};
/* each byte's pair 3a + b (a vpshufb index 0..8) to a and to b */
#define RT_B3_FIRST 0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0
#define RT_B3_SECOND 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0

#endif
