/*
 * louver_kernels.h — what Louver's passes (louver.c) share with their AVX-512 versions in the
 * AVX-512 family's file (family_avx512.c): the index, the per-head query scalars, the tile of
 * codes, and those versions' entry points. louver.c calls them when the family is in use (the code
 * pass: rt_louver_fast(), AVX-512 VNNI; the box bounds and the selection: any AVX-512).
 */
#ifndef RSR_RUNTIME_LOUVER_KERNELS_H
#define RSR_RUNTIME_LOUVER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "rsr_louver.h"

#define TILE 16 /* keys per code tile: one AVX-512 vector of int32 dots */

struct rsr_louver_index {
    rsr_louver_config cfg;
    int32_t sub_start[RSR_LOUVER_MAX_SUBSPACES + 1];
    int32_t quads; /* ⌈d/4⌉: code bytes per key are 4·quads (zero-padded) */
    int32_t nblocks, cap;
    float *box;      /* [cap][2][d] */
    float *bnorm;    /* [cap][S] the largest ‖k_s‖ of the block per subspace (rounded up) */
    uint8_t *codes;  /* [cap][B/16][quads][16][4] K + 128 */
    float *kscale;   /* [cap][B] c */
    float *kint;     /* [cap][B] ‖K‖, rounded up */
    float *kerr;     /* [cap][B] ‖e‖ = ‖k − c·K‖, rounded up */
    uint16_t *force; /* [cap][B/16] */
    uint8_t *forced; /* [cap] 1 when any key of the block is forced */
    float *absmax;   /* [d] the largest |component| per dim over the index: the box slack's scale */
    double nmax;     /* the largest ‖k‖ + 2‖e‖ over the index: the key-bound slack's scale */
};

/* Per query head of a call: the quantised query and its scalars. */
typedef struct {
    float s, fnorm, qnorm; /* q = s·Q + f; ‖f‖ and ‖q‖ rounded up */
    int32_t off;           /* 128·ΣQ: the codes carry K + 128 */
    float tau, taub, tauk; /* τ; τ' for the block test; τ' for the key bound */
    double slackk, slackb;
    int32_t bounded;
    float qn[RSR_LOUVER_MAX_SUBSPACES];
    float lmax, lbmax; /* best exact score; best key lower bound (relative policy) */
    int dense;
} head_q;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* Bounds of the 16 keys of one tile for nh query heads: ub[h][t] ≥ q_h·k_t ≥ lb[h][t] up to the
 * slack (docs/louver.md). tile: [quads][16][4] codes; qw: per head, Q packed four per int32. */
void louver_tile_bounds_vnni(const uint8_t *tile, int32_t quads, const int32_t *qw, size_t qstride, const head_q *hq,
                             int32_t nh, const float *kc, const float *ki, const float *ke, float (*ub)[TILE],
                             float (*lb)[TILE]);
/* One block's code pass for nh query heads at once, selecting the keys that reach each head's τ''
 * (family_avx512.c says how). */
void louver_block_select_vnni(const uint8_t *codes, int32_t tiles, int32_t quads, const int32_t *qw,
                              const head_q *const *hp, int32_t nh, const float *kc, const float *ki, const float *ke,
                              const uint16_t *frc, int32_t base, int32_t **out, float **ubo, float *lbmax);
/* bub[b] = the box bound of every step-th block for one query. */
void louver_box_bounds_avx512(const struct rsr_louver_index *ix, const float *q, const float *qn, float *bub,
                              int32_t step);
/* Appends the positions base + t of the tile's keys with ub[t] ≥ tk or forced; returns the count. */
int32_t louver_select_avx512(const float *ub, float tk, uint16_t frc, int32_t base, int32_t *out);
#endif

#endif
