/*
 * rsr_louver.h — Louver: sparse attention over a KV cache that never misses a key above τ.
 *
 * One index serves one KV head of one layer (under GQA, all query heads of that KV head). The
 * index does not own keys or values: it describes the prefix [0, size) of a key array that the
 * caller owns (row j at keys + j*stride) and keeps enclosures and int8 codes of those keys. Keys
 * after the prefix form the recent-key buffer, which is always attended densely; when the buffer
 * holds a full block, the caller appends it (rsr_louver_append_block) and the index grows by one
 * block.
 *
 *     rsr_louver_config cfg = rsr_louver_default_config(128);
 *     rsr_louver_index *ix;
 *     rsr_louver_create(&cfg, &ix);
 *     while (n - rsr_louver_size(ix) > cfg.block_keys)          // after writing key n-1
 *         rsr_louver_append_block(ix, keys + rsr_louver_size(ix) * stride, stride);
 *     rsr_louver_policy p = {.kind = RSR_LOUVER_RELATIVE, .eps = 1e-4f};
 *     rsr_louver_attend(ix, q, keys, values, stride, n, &p, scratch, out, &stats);
 *
 * Scores. τ is a threshold on the raw dot product q·k, evaluated in fp32 as the runtime
 * evaluates it (in any summation order, with or without fused multiply-add); the softmax uses
 * x = (q·k) * (1/sqrtf(d)). Guarantee: every key j < n with fl(q·k_j) ≥ τ is among the keys
 * scanned, and attention is computed exactly (softmax over the scanned keys). Keys with a
 * non-finite component or one of magnitude above 2^64 are always scanned; a query whose bound
 * arithmetic could overflow (Σ|q_i|·max|k_i|, ‖q‖·max‖k‖ or the query's scale·127²·d ≥ 1e37, or
 * NaN) makes the call dense.
 *
 * Layout (also the contract for a GPU version, which should mirror it): d = head_dim, S
 * subspaces (contiguous slices of the head dimension, [sub_start[s], sub_start[s+1])), B keys
 * per block (a multiple of 16, at most 256), D4 = ⌈d/4⌉. Per block b:
 *     box[b][2][d]          fp32   exact min (row 0) and max (row 1) of the block's keys per dim
 *     bnorm[b][S]           fp32   the largest ‖k_s‖ of the block per subspace, rounded up
 *     codes[b][B/16][D4][16][4] u8 K + 128: key t of a 16-key tile is k = c·K + e,
 *                                  K ∈ [−127, 127]^d, c = max|k_i|/127 (padding dims: K = 0)
 *     kscale[b][B]          fp32   c
 *     kint[b][B]            fp32   ‖K‖, rounded up
 *     kerr[b][B]            fp32   ‖e‖, rounded up
 *     force[b][B/16]        uint16 bit t of word w: key 16w+t is always scanned
 *     absmax[d], nmax       the slack's scales: max |k_i| per dim; max ‖k‖ + 2‖e‖
 * Query (per query vector q): q = s·Q + f with s = max|q_i|/127, Q ∈ [−127, 127]^d. A block is
 * skipped when Σ_s min(Σ_{i∈s} max(q_i·lo_i, q_i·hi_i), ‖q_s‖·bnorm_s) < τ' (box slack);
 * otherwise key t is scanned when c·(s·(Q·K) + ‖f‖·‖K‖) + ‖q‖·‖e‖ ≥ τ'' (key slack), where the
 * integer dot Q·K is exact (AVX-512 VNNI: one pass over a tile's codes for all query heads).
 * docs/louver.md derives why the slack makes this safe in fp32. A query for which a fifth or
 * more of the indexed keys would be candidates (estimated from a sample of tiles before the
 * pass, counted after it) attends every key with the dense kernel instead (stats.dense).
 */
#ifndef RSR_LOUVER_H
#define RSR_LOUVER_H

#include <stddef.h>
#include <stdint.h>

#include "rsr.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RSR_LOUVER_MAX_SUBSPACES 32

typedef struct rsr_louver_config {
    int32_t head_dim;   /* d */
    int32_t subspaces;  /* S, 1..min(d, 32); 0: d/16 (at least 1) */
    int32_t block_keys; /* B, a multiple of 16 in [16, 256]; 0: 256 */
} rsr_louver_config;
RSR_API rsr_louver_config rsr_louver_default_config(int32_t head_dim);

typedef struct rsr_louver_index rsr_louver_index;
typedef struct rsr_louver_scratch rsr_louver_scratch;

/* The config after defaults are filled in: fails with RSR_ERR_INVALID_ARGUMENT when out of range. */
RSR_API rsr_status rsr_louver_resolve_config(const rsr_louver_config *in, rsr_louver_config *out);
RSR_API rsr_status rsr_louver_create(const rsr_louver_config *cfg, rsr_louver_index **out);
RSR_API void rsr_louver_free(rsr_louver_index *ix);
/* Forgets every key (capacity is kept). */
RSR_API void rsr_louver_clear(rsr_louver_index *ix);
/* Drops the blocks past the first `keys` keys (rounded down to whole blocks): what a failed step
 * appended. The maxima the bounds scale with keep the dropped blocks' share, which only widens
 * the slack. */
RSR_API void rsr_louver_truncate(rsr_louver_index *ix, int32_t keys);
/* Number of indexed keys: a multiple of block_keys. */
RSR_API int32_t rsr_louver_size(const rsr_louver_index *ix);
RSR_API const rsr_louver_config *rsr_louver_get_config(const rsr_louver_index *ix);
/* Indexes the next block_keys keys (keys[t*stride .. +d) for t < block_keys), which must be
 * the keys at positions size .. size+block_keys-1. Earlier blocks are never touched. */
RSR_API rsr_status rsr_louver_append_block(rsr_louver_index *ix, const float *keys, size_t stride);

typedef struct rsr_louver_policy {
    int32_t kind; /* rsr_louver_policy_kind (rsr.h) */
    float eps;    /* RELATIVE: in (0, 1) */
    float tau;    /* ABSOLUTE: on q·k (not on the scaled score) */
    float budget; /* BUDGET: in (0, 1] */
} rsr_louver_policy;

/* Why a query attended every key with the dense kernel; the guarantee then holds trivially. */
typedef enum rsr_louver_dense_reason {
    RSR_LOUVER_DENSE_OVERFLOW = 1, /* the bound arithmetic could overflow (a limit of 1e37, or NaN) */
    RSR_LOUVER_DENSE_QUALIFY = 2,  /* a fifth or more of the indexed keys would be candidates: scattered
                                      reads of that many rows cost more than the dense pass */
} rsr_louver_dense_reason;

typedef struct rsr_louver_stats {
    int32_t keys;         /* n: every key of the query (index + buffer) */
    int32_t bounded;      /* keys whose per-key bound was evaluated (blocks not skipped) */
    int32_t scanned;      /* keys whose exact score was computed: the attended set C (buffer included) */
    int32_t kept;         /* keys of C with q·k ≥ τ: every key of the cache above τ is among them */
    int32_t dense;        /* 0, or why every key was scanned (rsr_louver_dense_reason) */
    float tau;            /* the final τ (on q·k) */
    double dropped_bound; /* certified bound on the softmax mass outside C:
                             (n − |C|)·exp(x_τ − m) / Σ_{i∈C} exp(x_i − m), x_τ = fl(τ/√d) */
} rsr_louver_stats;

RSR_API rsr_status rsr_louver_scratch_create(rsr_louver_scratch **out);
RSR_API void rsr_louver_scratch_free(rsr_louver_scratch *sc);
/* The key positions the last call scanned (the set C) for its first query, in no particular
 * order; _head: for query `head` of the last rsr_louver_attend_group. */
RSR_API const int32_t *rsr_louver_scratch_scanned(const rsr_louver_scratch *sc, int32_t *count);
RSR_API const int32_t *rsr_louver_scratch_scanned_head(const rsr_louver_scratch *sc, int32_t head, int32_t *count);

/* Attention of one query q[d] over keys [0, n) (rows at keys/values + j*stride), of which
 * [0, rsr_louver_size(ix)) are indexed: out[d] = Σ_{j∈C} softmax_j · v_j. stats may be NULL. */
RSR_API rsr_status rsr_louver_attend(const rsr_louver_index *ix, const float *q, const float *keys, const float *values,
                                     size_t stride, int32_t n, const rsr_louver_policy *policy, rsr_louver_scratch *sc,
                                     float *out, rsr_louver_stats *stats);
#define RSR_LOUVER_GROUP_MAX 64 /* the most queries one rsr_louver_attend_group call takes */
/* The same for gq ≤ RSR_LOUVER_GROUP_MAX queries that share this KV head (GQA): q[gq][d], policy[gq], out[gq][d],
 * stats[gq] (may be NULL). One pass over the index serves all of them; each query gets its own τ,
 * its own set C and exactly the result rsr_louver_attend would give it. */
RSR_API rsr_status rsr_louver_attend_group(const rsr_louver_index *ix, const float *q, int32_t gq, const float *keys,
                                           const float *values, size_t stride, int32_t n,
                                           const rsr_louver_policy *policy, rsr_louver_scratch *sc, float *out,
                                           rsr_louver_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
