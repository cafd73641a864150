/*
 * units_generic.h — the runtime's kernel for the codes' layouts of i2-units-rows (rsr_artifact.h,
 * enum rsr_units_layout; family.h's rt_units_call), written once over a family's vocabulary and
 * included by family_avx512.c (RSR_UNITS_ROWS16, zmm), family_avx2.c (RSR_UNITS_ROWS8, ymm) and
 * family_neon.c (RSR_UNITS_ROWS4, a q register; no base-3 codes: UV_TILE3 left undefined).
 * Per tile of tokens and block of rows: each unit's 4·G fields decoded once for the tile's tokens,
 * the rows' exact sums in int32 lanes from −Σx (the unit's Σx and scale read from past each
 * token's codes, rsr_x_sums_at and rsr_x_scales_at, through the row's pointer at offsets every
 * token shares, so the general registers hold the tile's rows and a few indices), then at once to
 * fp32, ((float)S · scale) · d added into the tile's rows, units ascending: forward.c's
 * group_dequantize's operations in its order, so the same bits, without the sums going through
 * memory. The fp32 side is written here once, in GNU C vectors of UV_ROWS lanes (compiled to the
 * family's instructions; no contraction: -ffp-contract=off). The including file defines, before it:
 *   UV_ROWS, UV_TILE  rows a block (int32 lanes of a vector), tokens a whole tile (≤ 8)
 *   UV_RESTS          the sizes of the tiles for the tokens left after whole tiles (bit r: r tokens,
 *                     r from 2 to 7; what they leave goes a token a tile)
 *   UV_INLINE         the family's target attributes, always_inline
 *   UV_F16_WIDEN(g)   optional: UV_ROWS f16 at g widened to uv_f by an instruction of the family's
 *                     (the bits of RT_F16_BITS for the zero and normal values scales hold)
 *   uv_i              its integer vector (UV_ROWS int32 lanes)
 *   uv_sums(a, wu, x, xu, NT, G)  adds the unit's products (its G groups of UV_ROWS·4 bytes at wu,
 *                     x[j] + xu the unit's columns of token j) into a[0..NT)
 *   UV_TILE3          tokens a tile of base-3 codes (a run's five units' sums of each in registers)
 *   uv_b3_fields(t, i, k)  pack i of b3_pairs.h's rt_b3_packs from the two vectors t: its two fields
 *   uv_h, uv_h_begin(a), uv_h_add(h, k, v), uv_h_end(a, h)  a unit's running sums in a base-3 run:
 *                     started from a, field k times x's 4 bytes v added, ended into a
 *   UV_PREFETCH, uv_prefetch(p)  optional: a hint for the codes UV_PREFETCH bytes ahead
 * A base-3 block (c->base3: units of 32 columns) sums each run's five units at once, then adds them
 * to the rows one by one as the 2-bit ones: the same sums and the same fp32 steps in the same order.
 */
#ifndef RSR_UNITS_GENERIC_H
#define RSR_UNITS_GENERIC_H

/* a family without base-3 codes (NEON) defines no UV_TILE3 nor uv_b3_fields: no call gives it runs */
#ifdef UV_TILE3
#define UV_BASE3 1
#else
#define UV_BASE3 0
#define UV_TILE3 1
#endif

#include <string.h>

#include "family.h"
#include "rsr_artifact.h"

typedef int32_t uv_i32 __attribute__((vector_size(UV_ROWS * 4)));
typedef uint32_t uv_u32 __attribute__((vector_size(UV_ROWS * 4)));
typedef uint16_t uv_u16 __attribute__((vector_size(UV_ROWS * 2)));
typedef float uv_f __attribute__((vector_size(UV_ROWS * 4)));

UV_INLINE uv_i uv_ints(int32_t v) { return (uv_i)((uv_i32){0} + v); }
UV_INLINE uv_f uv_floadu(const void *p) {
    uv_f f;
    memcpy(&f, p, sizeof f);
    return f;
}

/* UV_ROWS group scales at g widened to f32 as forward.c's scale_f16 (RT_F16_BITS: the same bits) */
UV_INLINE uv_f uv_scales(const void *g, int f16) {
    if (!f16) return uv_floadu(g);
#ifdef UV_F16_WIDEN
    return UV_F16_WIDEN(g); /* the family's conversion of f16, exact: the same bits for zero and normals */
#endif
    uv_u16 h16;
    memcpy(&h16, g, sizeof h16);
    const uv_u32 h = __builtin_convertvector(h16, uv_u32), bits = RT_F16_BITS(h);
    return (uv_f)bits;
}

/* a[j] = −Σx of the unit whose Σx lie at sx past each token's codes */
UV_INLINE void uv_start(uv_i *a, const int8_t *const *x, size_t sx, const int NT) {
#pragma GCC unroll 8
    for (int j = 0; j < NT; j++) {
        int32_t s;
        memcpy(&s, x[j] + sx, 4);
        a[j] = uv_ints(-s);
    }
}
/* o[j] += ((float)a[j] · sc) · d of the unit whose scale lies at dx past token j's codes */
UV_INLINE void uv_add(uv_f *o, const uv_i *a, const int8_t *const *x, size_t dx, uv_f sc, const int NT) {
#pragma GCC unroll 8
    for (int j = 0; j < NT; j++) {
        float d;
        memcpy(&d, x[j] + dx, 4);
        o[j] += __builtin_convertvector((uv_i32)a[j], uv_f) * sc * d;
    }
}

#if UV_BASE3
#include "b3_pairs.h"
/* The products of the five units of a base-3 run (rsr_artifact.h, RSR_UNITS_B3_ROWS16 or
 * B3_ROWS8: 8 vectors at wr) added into a[p][0..NT), the run's first unit's columns of token j at
 * x[j] + xu: each pair of vectors' fields decoded once for the tile's tokens (uv_b3_fields, by
 * b3_pairs.h's packs), then into each unit's sums for each token */
UV_INLINE void uv_run3(uv_i (*a)[UV_TILE3], const uint8_t *wr, const int8_t *const *x, size_t xu, const int NT) {
    const size_t V = sizeof(uv_i);
    uv_h h[RSR_B3_RUN][UV_TILE3];
#pragma GCC unroll 5
    for (int p = 0; p < RSR_B3_RUN; p++)
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) h[p][j] = uv_h_begin(a[p][j]);
#pragma GCC unroll 4
    for (int q = 0; q < 8; q += 2) {
        uv_i t[2];
        memcpy(&t[0], wr + V * (size_t)q, V), memcpy(&t[1], wr + V * (size_t)(q + 1), V);
#ifdef UV_PREFETCH
        uv_prefetch(wr + V * (size_t)q);
#endif
#pragma GCC unroll 5
        for (int i = 0; i < 5; i++) {
            uv_i k[2];
            uv_b3_fields(t, i, k);
#pragma GCC unroll 2
            for (int d = 0; d < 2; d++) {
                const int p = rt_b3_packs[i].p[d], c = q + rt_b3_packs[i].c[d];
#pragma GCC unroll 8
                for (int j = 0; j < NT; j++) {
                    int32_t v;
                    memcpy(&v, x[j] + xu + 32 * (size_t)p + 4 * (size_t)c, 4);
                    h[p][j] = uv_h_add(h[p][j], k[d], v);
                }
            }
        }
    }
#pragma GCC unroll 5
    for (int p = 0; p < RSR_B3_RUN; p++)
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) a[p][j] = uv_h_end(a[p][j], h[p][j]);
}
#endif

/* Tokens [t0, t0 + NT) of the call, NT and G (a unit's groups of 16 columns) constants once inlined;
 * B3: the codes in runs of base-3 words (then G is 2, NT ≤ UV_TILE3) */
UV_INLINE void uv_tile(const rt_units_call *c, int32_t t0, const int NT, const int G, const int B3) {
    const int8_t *x[8];
#pragma GCC unroll 8
    for (int j = 0; j < NT; j++) x[j] = c->x + (size_t)(t0 + j) * (size_t)c->x_stride;
    const size_t bytes = c->f16 ? 2 : 4, gbytes = (size_t)UV_ROWS * 4, U = (size_t)G * 16;
    const size_t block = B3 ? (size_t)rsr_b3_block_bytes(UV_ROWS, c->units) : (size_t)c->units * (size_t)G * gbytes;
    const size_t gstep = (size_t)c->rows * bytes;
    for (int32_t b = c->b0; b < c->b1; b++) {
        const uint8_t *wu = c->data + (size_t)b * block;
        const char *gs = (const char *)c->gs + (size_t)b * UV_ROWS * bytes;
        size_t sx = (size_t)c->sums_at, dx = (size_t)c->scales_at, xu = 0;
        uv_f o[8], sc = uv_scales(gs, c->f16); /* the rows' scales, widened once for the c->per units they cover */
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) o[j] = (uv_f){0};
        int32_t u = 0, left = c->per;
#if UV_BASE3
        const int32_t run_end = B3 ? c->units / RSR_B3_RUN * RSR_B3_RUN : 0; /* the units in base-3 runs */
        /* a run: its five units' sums at once, then each in turn. N3 is NT (uv_tiles gives base-3 codes
           no tile past UV_TILE3, and 2-bit codes have no runs), spelt so that no copy indexes past it */
        for (; u < run_end; wu += 8 * gbytes) {
            const int N3 = B3 && NT <= UV_TILE3 ? NT : 1;
            uv_i a[RSR_B3_RUN][UV_TILE3];
#pragma GCC unroll 5
            for (int p = 0; p < RSR_B3_RUN; p++) uv_start(a[p], x, sx + 4 * (size_t)p, N3);
            uv_run3(a, wu, x, xu, N3);
#pragma GCC unroll 5
            for (int p = 0; p < RSR_B3_RUN; p++, u++, xu += U, sx += 4, dx += 4) {
                uv_add(o, a[p], x, dx, sc, N3);
                if (--left == 0 && u + 1 < c->units) left = c->per, gs += gstep, sc = uv_scales(gs, c->f16);
            }
        }
#endif
        for (; u < c->units; u++, wu += G * gbytes, xu += U, sx += 4, dx += 4) {
            uv_i a[8];
            uv_start(a, x, sx, NT);
            uv_sums(a, wu, x, xu, NT, G);
            uv_add(o, a, x, dx, sc, NT);
            if (--left == 0 && u + 1 < c->units) left = c->per, gs += gstep, sc = uv_scales(gs, c->f16);
        }
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) {
            float *y = c->y + (size_t)(t0 + j) * c->y_stride + (size_t)b * UV_ROWS;
            const uv_f out = c->accumulate ? uv_floadu(y) + o[j] : o[j];
            memcpy(y, &out, sizeof out);
        }
    }
}

/* The call's tokens in whole tiles (of T: UV_TILE, or UV_TILE3 for base-3 codes), then what is
 * left in tiles of the sizes the family lists in UV_RESTS (bit r: a tile of r tokens), largest
 * first, and the last ones a token a tile. Each tile decodes a block's codes once more: AVX2 lists
 * every size below its tile (a mixture of experts gives an expert 3 or 5 tokens of a prompt as
 * often as 2 or 4); AVX-512 the halves, each size another copy of the kernel (the sanitized
 * build's compile time). */
UV_INLINE void uv_tiles(const rt_units_call *c, const int G, const int B3) {
    const int T = B3 ? UV_TILE3 : UV_TILE;
    int32_t t = 0;
    for (; t + T <= c->ntok; t += T) uv_tile(c, t, T, G, B3);
#define UV_REST(r)                                                                                                     \
    if ((UV_RESTS >> r & 1) && r < T && c->ntok - t >= r) uv_tile(c, t, r < T ? r : 1, G, B3), t += r
    UV_REST(7);
    UV_REST(6);
    UV_REST(5);
    UV_REST(4);
    UV_REST(3);
    UV_REST(2);
#undef UV_REST
    for (; t < c->ntok; t++) uv_tile(c, t, 1, G, B3);
}

#if UV_BASE3
typedef uint16_t uv_w16 __attribute__((vector_size(sizeof(uv_i))));
/* rsr_b3_to_i2 for one block of UV_ROWS rows (family.h's rt_b3_to_i2_rows*): each pair of vectors'
 * fields (uv_b3_fields) put in place by shifts (codes ≤ 2: a field stays in its 2 bits of each
 * byte), a group of 4 fields at a time; the units past the runs are 2-bit already */
UV_INLINE void uv_b3_to_i2(const uint8_t *b3, int32_t units, uint8_t *i2) {
    const size_t V = sizeof(uv_i); /* a vector: UV_ROWS rows' 4 bytes */
    const int32_t runs = units / RSR_B3_RUN;
    for (int32_t s = 0; s < runs; s++, b3 += 8 * V)
#pragma GCC unroll 2
        for (int g = 0; g < 2; g++) {
            uv_i o[RSR_B3_RUN];
#pragma GCC unroll 5
            for (int p = 0; p < RSR_B3_RUN; p++) o[p] = (uv_i){0};
#pragma GCC unroll 2
            for (int f = 0; f < 4; f += 2) {
                uv_i t[2];
                memcpy(&t[0], b3 + V * (size_t)(4 * g + f), V), memcpy(&t[1], b3 + V * (size_t)(4 * g + f + 1), V);
#pragma GCC unroll 5
                for (int i = 0; i < 5; i++) {
                    uv_i k[2];
                    uv_b3_fields(t, i, k);
#pragma GCC unroll 2
                    for (int d = 0; d < 2; d++) {
                        const int p = rt_b3_packs[i].p[d], c = f + rt_b3_packs[i].c[d];
                        o[p] |= (uv_i)((uv_w16)k[d] << (uint16_t)(2 * c));
                    }
                }
            }
#pragma GCC unroll 5
            for (int p = 0; p < RSR_B3_RUN; p++)
                memcpy(i2 + ((size_t)(s * RSR_B3_RUN + p) * 2 + (size_t)g) * V, &o[p], V);
        }
    memcpy(i2 + (size_t)runs * RSR_B3_RUN * 2 * V, b3, (size_t)(units - runs * RSR_B3_RUN) * 2 * V);
}
#endif

/* units of 32 columns (Q8_0's blocks) with G a constant, base-3 or not; other widths with G read */
UV_INLINE void uv_units(const rt_units_call *c) {
    if (UV_BASE3 && c->groups == 2 && c->base3)
        uv_tiles(c, 2, UV_BASE3);
    else if (c->groups == 2)
        uv_tiles(c, 2, 0);
    else
        uv_tiles(c, c->groups, 0);
}

#endif
