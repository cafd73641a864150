/*
 * louver.c — the Louver index and its query. Every key of a block is stored a second time as
 * int8 codes with its own scale (k = c·K + e, K ∈ [−127, 127]^d), with ‖K‖ and ‖e‖ rounded up;
 * the query is quantised once (q = s·Q + f). The integer dot Q·K is exact, so
 * c·s·(Q·K) ± (c·‖f‖·‖K‖ + ‖q‖·‖e‖) brackets q·k for every key; only keys whose upper bound
 * reaches τ' are scored in fp32. The query heads that share a KV head are bounded together, one
 * pass over the codes for all of them. Blocks whose box bound is below τ' are not read at all.
 * rsr_louver.h describes the layout; docs/louver.md the guarantee and the fp32 slack.
 */
#include "rsr_louver.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "louver_kernels.h" /* the index, head_q, and the AVX-512 passes (family_avx512.c) */
#include "louver_rows.h"
#include "cpu_device.h" /* RT_TEST_HOOK */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LOUVER_X86 1
#endif

#define FORCE_LIMIT 18446744073709551616.0f /* 2^64: larger key components are scanned, not bounded */
#define DENSE_Q_LIMIT 1e37                  /* beyond this the fp32 bound arithmetic could overflow */
#define DENSE_CHUNK 256                     /* keys per call of the dense kernel (dense fallback) */

/* Per-phase cycle counts for bench_louver_phases only (built with -DRSR_LOUVER_PROFILE); the
 * runtime's own build has none of this. */
#if defined(RSR_LOUVER_PROFILE) && defined(LOUVER_X86)
#include <x86intrin.h>
unsigned long long rsr_louver_phase_cycles[8];
static _Thread_local unsigned long long prof_last;
#define PROF_START() (prof_last = __rdtsc())
#define PROF(ph)                                                                                                       \
    do {                                                                                                               \
        unsigned long long t_ = __rdtsc();                                                                             \
        rsr_louver_phase_cycles[ph] += t_ - prof_last;                                                                 \
        prof_last = t_;                                                                                                \
    } while (0)
#else
#define PROF_START() (void)0
#define PROF(ph) (void)0
#endif
enum { PH_PREP, PH_BOX, PH_BOUND, PH_FETCH, PH_DOT, PH_ACC, PH_FINISH };

struct rsr_louver_scratch {
    int32_t cap_keys, cap_heads, cap_d, cap_quads;
    int32_t *idx; /* [cap_heads][cap_keys] scanned positions per head */
    float *cub; /* [cap_heads][cap_keys] the selected keys' upper bounds (relative policy: filtered once τ is final) */
    int32_t *nsc; /* [cap_heads] */
    float *x;     /* [512] scores of a chunk of candidates of one head */
    float *bd;    /* [cap_heads][cap_buf] the exact scores of the recent-key buffer */
    int32_t cap_buf;
    float *qd;  /* [cap_heads][cap_d] the queries of the heads attended densely */
    float *dx;  /* [cap_heads][DENSE_CHUNK] their scores of one chunk */
    float *bub; /* [nblocks] block bounds of one head */
    int32_t cap_blocks;
    int32_t *qw; /* [2][cap_heads][quads] Q packed four int8 per int32; then the live heads' */
    float *o;    /* [cap_heads][cap_d] */
    head_q *hq;  /* [cap_heads] */
};

rsr_louver_config rsr_louver_default_config(int32_t head_dim) {
    return (rsr_louver_config){.head_dim = head_dim, .subspaces = 0, .block_keys = 0};
}

rsr_status rsr_louver_resolve_config(const rsr_louver_config *in, rsr_louver_config *out) {
    if (!in || !out) return RSR_ERR_INVALID_ARGUMENT;
    rsr_louver_config c = *in;
    if (c.head_dim < 1 || c.head_dim > 4096) return RSR_ERR_INVALID_ARGUMENT;
    if (c.subspaces == 0) c.subspaces = c.head_dim / 16 > 0 ? c.head_dim / 16 : 1;
    if (c.subspaces > RSR_LOUVER_MAX_SUBSPACES) c.subspaces = RSR_LOUVER_MAX_SUBSPACES;
    if (c.block_keys == 0) c.block_keys = 256;
    if (c.subspaces < 1 || c.subspaces > c.head_dim || c.subspaces > RSR_LOUVER_MAX_SUBSPACES)
        return RSR_ERR_INVALID_ARGUMENT;
    if (c.block_keys < 16 || c.block_keys > 256 || c.block_keys % 16) return RSR_ERR_INVALID_ARGUMENT;
    *out = c;
    return RSR_OK;
}

rsr_status rsr_louver_create(const rsr_louver_config *cfg, rsr_louver_index **out) {
    if (!out) return RSR_ERR_INVALID_ARGUMENT;
    *out = NULL;
    rsr_louver_config c;
    rsr_status st = rsr_louver_resolve_config(cfg, &c);
    if (st != RSR_OK) return st;
    rsr_louver_index *ix = calloc(1, sizeof *ix);
    if (!ix) return RSR_ERR_OUT_OF_MEMORY;
    ix->cfg = c;
    ix->quads = (c.head_dim + 3) / 4;
    for (int32_t s = 0; s <= c.subspaces; s++) ix->sub_start[s] = (int32_t)((int64_t)c.head_dim * s / c.subspaces);
    ix->absmax = calloc((size_t)c.head_dim, sizeof(float));
    if (!ix->absmax) {
        rsr_louver_free(ix);
        return RSR_ERR_OUT_OF_MEMORY;
    }
    *out = ix;
    return RSR_OK;
}

void rsr_louver_free(rsr_louver_index *ix) {
    if (!ix) return;
    free(ix->box), free(ix->bnorm), free(ix->codes), free(ix->kscale), free(ix->kint), free(ix->kerr);
    free(ix->force), free(ix->forced), free(ix->absmax);
    free(ix);
}

void rsr_louver_clear(rsr_louver_index *ix) {
    if (!ix) return;
    ix->nblocks = 0;
    ix->nmax = 0;
    memset(ix->absmax, 0, sizeof(float) * (size_t)ix->cfg.head_dim);
}

void rsr_louver_truncate(rsr_louver_index *ix, int32_t keys) {
    if (ix && keys >= 0 && keys / ix->cfg.block_keys < ix->nblocks) ix->nblocks = keys / ix->cfg.block_keys;
}

int32_t rsr_louver_size(const rsr_louver_index *ix) { return ix ? ix->nblocks * ix->cfg.block_keys : 0; }

const rsr_louver_config *rsr_louver_get_config(const rsr_louver_index *ix) { return ix ? &ix->cfg : NULL; }

/* ---- building a block ---- */

/* The smallest float ≥ v (v ≥ 0 computed in double with relative error below 2^-40). */
static float float_above(double v) {
    v *= 1 + 0x1p-40;
    float f = (float)v;
    if ((double)f < v) f = nextafterf(f, INFINITY);
    return f;
}

/* Grows every per-block array together, so that no block's data can be lost in a growth. */
static int reserve(rsr_louver_index *ix, int32_t blocks) {
    if (blocks <= ix->cap) return 0;
    int32_t cap = ix->cap ? ix->cap : 16;
    while (cap < blocks) cap *= 2;
    size_t d = (size_t)ix->cfg.head_dim, B = (size_t)ix->cfg.block_keys, S = (size_t)ix->cfg.subspaces;
    size_t c = (size_t)cap;
    void *p;
    if (!(p = realloc(ix->box, sizeof(float) * 2 * d * c))) return -1;
    ix->box = p;
    if (!(p = realloc(ix->bnorm, sizeof(float) * S * c))) return -1;
    ix->bnorm = p;
    if (!(p = realloc(ix->codes, B * 4 * (size_t)ix->quads * c))) return -1;
    ix->codes = p;
    if (!(p = realloc(ix->kscale, sizeof(float) * B * c))) return -1;
    ix->kscale = p;
    if (!(p = realloc(ix->kint, sizeof(float) * B * c))) return -1;
    ix->kint = p;
    if (!(p = realloc(ix->kerr, sizeof(float) * B * c))) return -1;
    ix->kerr = p;
    if (!(p = realloc(ix->force, sizeof(uint16_t) * (B / 16) * c))) return -1;
    ix->force = p;
    if (!(p = realloc(ix->forced, c))) return -1;
    ix->forced = p;
    ix->cap = cap;
    return 0;
}

static int key_forced(const float *k, int32_t d) {
    for (int32_t i = 0; i < d; i++)
        if (!(fabsf(k[i]) <= FORCE_LIMIT)) return 1; /* NaN fails the comparison too */
    return 0;
}

rsr_status rsr_louver_append_block(rsr_louver_index *ix, const float *keys, size_t stride) {
    if (!keys) return RSR_ERR_INVALID_ARGUMENT;
    return louver_append_rows(ix, attn_rows_f32(keys, stride));
}

/* Indexes a block of keys of any element type: each key widened to the fp32 values every kernel
 * reads (attn_kernels.h), so the codes and bounds are those of the keys attention scores. */
rsr_status louver_append_rows(rsr_louver_index *ix, attn_rows keys) {
    if (!ix || !keys.base) return RSR_ERR_INVALID_ARGUMENT;
    if (ix->nblocks == INT32_MAX / ix->cfg.block_keys - 1) return RSR_ERR_INVALID_ARGUMENT;
    if (reserve(ix, ix->nblocks + 1)) return RSR_ERR_OUT_OF_MEMORY;
    const int32_t d = ix->cfg.head_dim, B = ix->cfg.block_keys, S = ix->cfg.subspaces, nq = ix->quads;
    float *wide = NULL;
    if (keys.type != ATTN_F32 && !(wide = malloc(sizeof(float) * (size_t)d))) return RSR_ERR_OUT_OF_MEMORY;
    const size_t b = (size_t)ix->nblocks;
    float *box = ix->box + b * 2 * (size_t)d, *bn = ix->bnorm + b * (size_t)S;
    uint8_t *codes = ix->codes + b * (size_t)B * 4 * (size_t)nq;
    float *kc = ix->kscale + b * (size_t)B, *ki = ix->kint + b * (size_t)B, *ke = ix->kerr + b * (size_t)B;
    uint16_t *frc = ix->force + b * (size_t)(B / 16);
    memset(frc, 0, sizeof(uint16_t) * (size_t)(B / 16));
    memset(codes, 128, (size_t)B * 4 * (size_t)nq);
    ix->forced[b] = 0;
    for (int32_t i = 0; i < d; i++) box[i] = INFINITY, box[d + i] = -INFINITY;
    for (int32_t s = 0; s < S; s++) bn[s] = 0;
    int32_t live = 0;
    for (int32_t t = 0; t < B; t++) {
        const float *k = attn_row(keys, t);
        if (wide) attn_widen_row(keys, t, d, wide), k = wide;
        uint8_t *row = codes + (size_t)(t / TILE) * (size_t)nq * 4 * TILE + (size_t)(t % TILE) * 4;
        if (key_forced(k, d)) { /* scanned always; its codes stay zero and its bounds unused */
            frc[t / 16] |= (uint16_t)(1u << (t % 16));
            ix->forced[b] = 1;
            kc[t] = ki[t] = ke[t] = 0;
            continue;
        }
        live++;
        float m = 0;
        for (int32_t i = 0; i < d; i++) m = fmaxf(m, fabsf(k[i]));
        float c = m / 127.0f;
        double ss_int = 0, ss_err = 0, ss_k = 0;
        for (int32_t i = 0; i < d; i++) {
            int32_t K = 0;
            if (c > 0) {
                float r = rintf(k[i] / c);
                K = r > 127 ? 127 : r < -127 ? -127 : (int32_t)r;
            }
            row[(size_t)(i / 4) * 4 * TILE + (size_t)(i % 4)] = (uint8_t)(K + 128);
            double e = (double)k[i] - (double)c * K; /* exact: c·K has at most 32 significant bits */
            ss_int += (double)K * K, ss_err += e * e, ss_k += (double)k[i] * (double)k[i];
            box[i] = fminf(box[i], k[i]), box[d + i] = fmaxf(box[d + i], k[i]);
            ix->absmax[i] = fmaxf(ix->absmax[i], fabsf(k[i]));
        }
        kc[t] = c;
        ki[t] = float_above(sqrt(ss_int));
        ke[t] = float_above(sqrt(ss_err));
        double nk = (double)float_above(sqrt(ss_k)) + 2.0 * (double)ke[t];
        if (nk > ix->nmax) ix->nmax = nk;
        for (int32_t s = 0; s < S; s++) {
            double ssub = 0;
            for (int32_t i = ix->sub_start[s]; i < ix->sub_start[s + 1]; i++) ssub += (double)k[i] * (double)k[i];
            bn[s] = fmaxf(bn[s], float_above(sqrt(ssub)));
        }
    }
    if (!live)
        for (int32_t i = 0; i < d; i++) box[i] = box[d + i] = 0;
    ix->nblocks++;
    free(wide);
    return RSR_OK;
}

/* ---- the query ---- */

rsr_status rsr_louver_scratch_create(rsr_louver_scratch **out) {
    if (!out) return RSR_ERR_INVALID_ARGUMENT;
    *out = calloc(1, sizeof **out);
    return *out ? RSR_OK : RSR_ERR_OUT_OF_MEMORY;
}

void rsr_louver_scratch_free(rsr_louver_scratch *sc) {
    if (!sc) return;
    free(sc->idx), free(sc->nsc), free(sc->x), free(sc->bd), free(sc->qd), free(sc->dx), free(sc->cub), free(sc->bub),
        free(sc->qw);
    free(sc->o), free(sc->hq);
    free(sc);
}

const int32_t *rsr_louver_scratch_scanned_head(const rsr_louver_scratch *sc, int32_t head, int32_t *count) {
    if (!sc || head < 0 || head >= sc->cap_heads || !sc->nsc) {
        if (count) *count = 0;
        return NULL;
    }
    if (count) *count = sc->nsc[head];
    return sc->idx + (size_t)head * (size_t)sc->cap_keys;
}

const int32_t *rsr_louver_scratch_scanned(const rsr_louver_scratch *sc, int32_t *count) {
    return rsr_louver_scratch_scanned_head(sc, 0, count);
}

static int grow(void **p, size_t bytes) {
    void *q = realloc(*p, bytes);
    if (!q) return -1;
    *p = q;
    return 0;
}

static int scratch_reserve(rsr_louver_scratch *sc, int32_t keys, int32_t heads, int32_t d, int32_t quads,
                           int32_t blocks, int32_t buf) {
    /* TILE slots past a head's keys: the selection stores whole vectors of positions */
    if (keys + TILE > sc->cap_keys || heads > sc->cap_heads) {
        int32_t ck = keys + TILE > sc->cap_keys ? keys + keys / 2 + 64 : sc->cap_keys;
        int32_t ch = heads > sc->cap_heads ? heads : sc->cap_heads;
        if (grow((void **)&sc->idx, sizeof(int32_t) * (size_t)ck * (size_t)ch) ||
            grow((void **)&sc->cub, sizeof(float) * (size_t)ck * (size_t)ch))
            return -1;
        sc->cap_keys = ck;
        if (ch > sc->cap_heads) {
            if (grow((void **)&sc->nsc, sizeof(int32_t) * (size_t)ch)) return -1;
            if (grow((void **)&sc->hq, sizeof(head_q) * (size_t)ch)) return -1;
            sc->cap_heads = ch;
            sc->cap_d = 0, sc->cap_quads = 0, sc->cap_buf = 0; /* reallocated below for the new head count */
        }
    }
    if (!sc->x) {
        if (grow((void **)&sc->x, sizeof(float) * 512)) return -1;
    }
    if (d > sc->cap_d) {
        if (grow((void **)&sc->o, sizeof(float) * (size_t)d * (size_t)sc->cap_heads) ||
            grow((void **)&sc->qd, sizeof(float) * (size_t)d * (size_t)sc->cap_heads) ||
            grow((void **)&sc->dx, sizeof(float) * DENSE_CHUNK * (size_t)sc->cap_heads))
            return -1;
        sc->cap_d = d;
    }
    if (quads > sc->cap_quads) {
        if (grow((void **)&sc->qw, sizeof(int32_t) * (size_t)quads * 2 * (size_t)sc->cap_heads)) return -1;
        sc->cap_quads = quads;
    }
    if (blocks > sc->cap_blocks) {
        int32_t cb = blocks + blocks / 2 + 16;
        if (grow((void **)&sc->bub, sizeof(float) * (size_t)cb)) return -1;
        sc->cap_blocks = cb;
    }
    if (buf > sc->cap_buf || !sc->bd) { /* allocated even for an empty buffer: bd + h·cap_buf is formed */
        int32_t cb = buf + buf / 2 + 16;
        if (grow((void **)&sc->bd, sizeof(float) * (size_t)cb * (size_t)sc->cap_heads)) return -1;
        sc->cap_buf = cb;
    }
    return 0;
}

/* The largest float ≤ v, one more step down to absorb the rounding of the double arithmetic
 * that produced v (its relative error, 2^-53, is far below one float step, 2^-24). */
static float float_below(double v) {
    if (v != v) return -INFINITY;
    float f = (float)v;
    if ((double)f > v) f = nextafterf(f, -INFINITY);
    return nextafterf(f, -INFINITY);
}

/* Σ_s min(Σ_{i∈s} max(q_i·lo_i, q_i·hi_i), ‖q_s‖·max‖k_s‖) over block b's box. */
static float box_bound_scalar(const rsr_louver_index *ix, int32_t b, const float *q, const float *qn) {
    const int32_t d = ix->cfg.head_dim, S = ix->cfg.subspaces;
    const float *box = ix->box + (size_t)b * 2 * (size_t)d, *bn = ix->bnorm + (size_t)b * (size_t)S;
    float total = 0;
    for (int32_t s = 0; s < S; s++) {
        float acc = 0;
        for (int32_t i = ix->sub_start[s]; i < ix->sub_start[s + 1]; i++)
            acc += fmaxf(q[i] * box[i], q[i] * box[d + i]);
        total += fminf(acc, qn[s] * bn[s]);
    }
    return total;
}

/*
 * Bounds of the 16 keys of one tile for nh query heads: ub[h][t] ≥ q_h·k_t ≥ lb[h][t] up to the
 * slack (docs/louver.md). tile: [quads][16][4] codes; qw: per head, Q packed four per int32.
 */
static void tile_bounds_scalar(const uint8_t *tile, int32_t quads, const int32_t *qw, size_t qstride, const head_q *hq,
                               int32_t nh, const float *kc, const float *ki, const float *ke, float (*ub)[TILE],
                               float (*lb)[TILE]) {
    for (int32_t h = 0; h < nh; h++) {
        const int8_t *Q = (const int8_t *)(qw + (size_t)h * qstride);
        for (int32_t t = 0; t < TILE; t++) {
            int32_t I = 0;
            for (int32_t c = 0; c < quads; c++)
                for (int32_t j = 0; j < 4; j++)
                    I += (int32_t)Q[4 * c + j] * (int32_t)tile[(size_t)c * 4 * TILE + (size_t)t * 4 + (size_t)j];
            float A = (float)(I - hq[h].off);
            float t1 = hq[h].s * A, t2 = hq[h].fnorm * ki[t], t3 = hq[h].qnorm * ke[t];
            ub[h][t] = kc[t] * (t1 + t2) + t3;
            if (lb) lb[h][t] = kc[t] * (t1 - t2) - t3;
        }
    }
}

static void box_bounds(const rsr_louver_index *ix, const float *q, const float *qn, float *bub, int32_t step) {
#ifdef LOUVER_X86
    if (attn_simd_enabled()) {
        louver_box_bounds_avx512(ix, q, qn, bub, step);
        return;
    }
#endif
    for (int32_t b = 0; b < ix->nblocks; b += step) bub[b] = box_bound_scalar(ix, b, q, qn);
}

/*
 * The block test, where it pays. On keys with RoPE no box of consecutive keys is tight (the fast
 * rotation pairs cover their circle within a few positions) and the test skips no block, yet it
 * costs about 7% of the pass over the codes. So it is first run on BOX_SAMPLE_BLOCKS blocks at a
 * stride; when fewer than a tenth of those would be skipped, every block is taken as passing
 * (bub = +∞): a block test is a filter, and passing a block only costs its key bounds. The
 * decision depends on the head alone (its query and τ), so a group call still gives each head
 * its single-call bits.
 */
#define BOX_SAMPLE_BLOCKS 32
static void block_bounds(const rsr_louver_index *ix, const float *q, const head_q *p, float *bub) {
    const int32_t nb = ix->nblocks, step = nb > BOX_SAMPLE_BLOCKS ? nb / BOX_SAMPLE_BLOCKS : 1;
    box_bounds(ix, q, p->qn, bub, step);
    if (step == 1) return; /* the sample was every block */
    int32_t sampled = 0, skipped = 0;
    for (int32_t b = 0; b < nb; b += step) sampled++, skipped += !ix->forced[b] && !(bub[b] >= p->taub);
    if (10 * skipped >= sampled)
        box_bounds(ix, q, p->qn, bub, 1);
    else
        for (int32_t b = 0; b < nb; b++) bub[b] = INFINITY;
}

static int32_t select_keys(const float *ub, float tk, uint16_t frc, int32_t base, int32_t *out) {
#ifdef LOUVER_X86
    if (attn_simd_enabled()) return louver_select_avx512(ub, tk, frc, base, out);
#endif
    int32_t n = 0;
    for (int32_t t = 0; t < TILE; t++)
        if (ub[t] >= tk || (frc >> t & 1)) out[n++] = base + t;
    return n;
}

/* select_keys for the relative policy: also appends the selected keys' upper bounds (+∞ for a
 * forced key) at outub and raises *lbmax to the best lower bound of a key that is not forced. */
static int32_t select_keys_ub(const float *ub, const float *lb, float tk, uint16_t frc, int32_t base, int32_t *out,
                              float *outub, float *lbmax) {
    int32_t n = 0;
    for (int32_t t = 0; t < TILE; t++) {
        const int f = frc >> t & 1;
        if (ub[t] >= tk || f) out[n] = base + t, outub[n++] = f ? INFINITY : ub[t];
        if (!f && lb[t] > *lbmax) *lbmax = lb[t];
    }
    return n;
}

static void tile_bounds(const uint8_t *tile, int32_t quads, const int32_t *qw, size_t qstride, const head_q *hq,
                        int32_t nh, const float *kc, const float *ki, const float *ke, float (*ub)[TILE],
                        float (*lb)[TILE]) {
#ifdef LOUVER_X86
    if (rt_louver_fast()) { /* the VNNI integer dots */
        louver_tile_bounds_vnni(tile, quads, qw, qstride, hq, nh, kc, ki, ke, ub, lb);
        return;
    }
#endif
    tile_bounds_scalar(tile, quads, qw, qstride, hq, nh, kc, ki, ke, ub, lb);
}

/* Descending order, for the budget policy's sample. */
static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Quantises query q: s = max|q_i|/127, Q_i = round(q_i/s); ‖f‖ = ‖q − s·Q‖ and ‖q‖ in double,
 * rounded up. Returns Σ|q_i|·absmax_i (the box slack's scale) in *Qbox. */
RT_TEST_HOOK int louver_bound_weakened_for_tests;

static void quantise_query(const rsr_louver_index *ix, const float *q, head_q *p, int32_t *qw, double *Qbox) {
    const int32_t d = ix->cfg.head_dim, S = ix->cfg.subspaces;
    float m = 0;
    for (int32_t i = 0; i < d; i++) m = fmaxf(m, fabsf(q[i]));
    float s = m / 127.0f;
    if (!(s > 0) || !isfinite(s)) s = 0;
    int8_t *Q = (int8_t *)qw;
    memset(Q, 0, sizeof(int32_t) * (size_t)ix->quads);
    double ssf = 0, ssq = 0, qb = 0;
    int32_t sumQ = 0;
    for (int32_t i = 0; i < d; i++) {
        int32_t v = 0;
        if (s > 0) {
            float r = rintf(q[i] / s);
            v = r > 127 ? 127 : r < -127 ? -127 : r == r ? (int32_t)r : 0;
        }
        Q[i] = (int8_t)v;
        sumQ += v;
        double f = (double)q[i] - (double)s * v;
        ssf += f * f, ssq += (double)q[i] * (double)q[i];
        qb += fabs((double)q[i]) * (double)ix->absmax[i];
    }
    p->s = s;
    p->off = 128 * sumQ;
    /* tests/unit/test_louver.c halves every error term through louver_bound_weakened_for_tests
     * (and drops the fp32 slack) and must then fail: its key sets are tight enough to notice */
    const double weak = louver_bound_weakened_for_tests ? 0.5 : 1;
    p->fnorm = float_above(weak * sqrt(ssf));
    p->qnorm = float_above(weak * sqrt(ssq));
    /* ‖q_s‖ rounded up so that fl(‖q_s‖·bnorm) ≥ ‖q_s‖·‖k_s‖ (Cauchy–Schwarz) */
    for (int32_t t = 0; t < S; t++) {
        double ss = 0;
        for (int32_t i = ix->sub_start[t]; i < ix->sub_start[t + 1]; i++) ss += (double)q[i] * (double)q[i];
        p->qn[t] = float_above(weak * sqrt(ss) * (1 + 0x1p-21));
    }
    *Qbox = qb;
}

/* Adds positions idx[0..c) with their exact scores dots[0..c) to a head's state; counts those ≥ τ. */
static void add_scores(attn_state *st, rsr_louver_scratch *sc, const int32_t *idx, const float *dots, int32_t c,
                       attn_rows values, int32_t d, float scale, float tau, int32_t *kept) {
    for (int32_t at = 0; at < c; at += 512) {
        int32_t m = c - at < 512 ? c - at : 512;
        for (int32_t j = 0; j < m; j++) {
            sc->x[j] = dots[at + j] * scale;
            *kept += dots[at + j] >= tau;
        }
        attn_accumulate(st, sc->x, idx + at, m, values, d);
    }
}

/* Requests the cache line at p. On x86 an asm statement: gcc 12 at -O2 (the RelWithDebInfo
 * build) deleted the loops of __builtin_prefetch in fetch_row as code without effect, and the
 * candidates' value rows then arrived late (softmax·V 1.3–1.5 ms instead of 0.3 at 128K). */
#ifdef LOUVER_X86
#define PREFETCH(p) __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)(p)))
#else
#define PREFETCH(p) __builtin_prefetch(p)
#endif

/* Requests key and value row j ahead of its use. */
static inline void fetch_row(attn_rows keys, attn_rows values, int32_t j, int32_t rb) {
    const char *kr = attn_row(keys, j), *vr = attn_row(values, j);
    for (int32_t o = 0; o < rb; o += 64) {
        PREFETCH(kr + o);
        PREFETCH(vr + o);
    }
    PREFETCH(kr + rb - 1);
    PREFETCH(vr + rb - 1);
}

/* Scores positions idx[0..c) for one head exactly, adds them to its state, counts those ≥ τ.
 * The candidates are scattered over the cache: rows are requested FETCH_AHEAD positions before
 * they are used, which keeps enough reads in flight to hide the memory latency. */
#ifndef FETCH_AHEAD
#define FETCH_AHEAD 16
#endif
#define SCORE_CHUNK 128
static void score(attn_state *st, rsr_louver_scratch *sc, const int32_t *idx, int32_t c, const float *q, attn_rows keys,
                  attn_rows values, int32_t d, float scale, head_q *p, int32_t *kept) {
    const int32_t rb = (int32_t)attn_row_bytes(keys.type, d);
    for (int32_t j = 0; j < c && j < FETCH_AHEAD; j++) fetch_row(keys, values, idx[j], rb);
    PROF(PH_FETCH);
    for (int32_t at = 0; at < c; at += SCORE_CHUNK) {
        int32_t m = c - at < SCORE_CHUNK ? c - at : SCORE_CHUNK;
        for (int32_t j = 0; j < m; j++) {
            if (at + j + FETCH_AHEAD < c) fetch_row(keys, values, idx[at + j + FETCH_AHEAD], rb);
            float dot = attn_dot_kv(q, keys, idx[at + j], d);
            sc->x[j] = dot * scale;
            *kept += dot >= p->tau;
        }
        PROF(PH_DOT);
        attn_accumulate(st, sc->x, idx + at, m, values, d);
        PROF(PH_ACC);
    }
}

/* The heads live[0..nl) packed for the kernels that take consecutive heads: their head_q into
 * hp, their Q into the second half of sc->qw (returned). */
static const int32_t *pack_heads(rsr_louver_scratch *sc, const head_q *hq, int32_t gq, int32_t nq, const int32_t *live,
                                 int32_t nl, head_q *hp) {
    int32_t *qw = sc->qw + (size_t)gq * (size_t)nq;
    for (int32_t g = 0; g < nl; g++) {
        hp[g] = hq[live[g]];
        memcpy(qw + (size_t)g * (size_t)nq, sc->qw + (size_t)live[g] * (size_t)nq, sizeof(int32_t) * (size_t)nq);
    }
    return qw;
}

/* Bounds of the keys of tile `tile` (counted over the whole index) for the packed heads. */
static void index_tile_bounds(const rsr_louver_index *ix, int32_t tile, const int32_t *qw, const head_q *hp, int32_t nl,
                              float (*ub)[TILE], float (*lb)[TILE], uint16_t *frc) {
    const int32_t nq = ix->quads;
    const size_t kb = (size_t)tile * TILE;
    tile_bounds(ix->codes + kb * 4 * (size_t)nq, nq, qw, (size_t)nq, hp, nl, ix->kscale + kb, ix->kint + kb,
                ix->kerr + kb, ub, lb);
    *frc = ix->force[tile];
}

/* The relative policy's τ from the best known lower bound of the largest score. */
static float relative_tau(const head_q *p, float eps, int32_t d) {
    double L = p->lmax;
    if (p->lbmax > -INFINITY) {
        double Lk = (double)p->lbmax - p->slackk; /* fl(q·k) ≥ lb − slack for that key */
        if (Lk > L) L = Lk;
    }
    /* The weights come from the scaled scores x = fl(fl(q·k)·fl(1/√d)), whose roundings (2^-24
     * relative each, and the scale's) can shrink a gap of √d·g in q·k below g in x by at most
     * 2^-22·g + 2^-23·|x_max|; τ sits η lower than √d·g below L to cover it with room to spare
     * (L is the top score once the pass is done, so |L|/√d is |x_max| to within rounding). */
    const double sd = sqrt((double)d), g = log(1.0 / (double)eps), eta = 0x1p-21 * (g + fabs(L) / sd);
    return float_below(L - sd * (g + eta));
}

static void set_tau(head_q *p, float tau) {
    p->tau = tau;
    p->taub = float_below((double)tau - p->slackb);
    p->tauk = float_below((double)tau - p->slackk);
}

/*
 * The dense fallback. A head for which a fifth or more of the indexed keys would be candidates
 * attends every key with the dense kernel instead (dense = RSR_LOUVER_DENSE_QUALIFY): the
 * guarantee then holds trivially, and the scattered reads of that many candidate rows, dearer
 * per key and head than dense attention's streamed rows that the query heads of a KV head share,
 * are not paid. The decision depends on the head alone, so a group call gives each head what a
 * single call gives it.
 *
 * A probe decides first: the key bounds of a strided sample of at most PROBE_TILES tiles (512
 * keys) estimate the fraction. Under the relative policy τ is final only after the pass over
 * the codes, since the best score may lie anywhere; the probe's τ, from the buffer and the
 * sample's lower bounds, is no higher than the final one (a valid τ: every key within ε of the
 * top still reaches it) but can sit far lower, which would send selective heads to the dense
 * kernel. So a relative head falls back on the probe only when nearly every sampled key
 * qualifies (PROBE_RELATIVE_FRACTION). Wherever the probe does not decide, the exact count after
 * the pass does.
 */
#define PROBE_TILES 32
#ifndef FALLBACK_FRACTION
#define FALLBACK_FRACTION 0.2
#endif
#define PROBE_RELATIVE_FRACTION 0.9
static void probe(const rsr_louver_index *ix, rsr_louver_scratch *sc, head_q *hq, int32_t gq,
                  const rsr_louver_policy *pol) {
    const int32_t tiles = rsr_louver_size(ix) / TILE, step = tiles > PROBE_TILES ? tiles / PROBE_TILES : 1;
    int32_t live[RSR_LOUVER_GROUP_MAX], nl = 0, any_rel = 0;
    for (int32_t h = 0; h < gq; h++)
        if (!hq[h].dense) live[nl++] = h, any_rel |= pol[h].kind == RSR_LOUVER_RELATIVE;
    if (!nl) return;
    head_q hp[RSR_LOUVER_GROUP_MAX];
    const int32_t *qw = pack_heads(sc, hq, gq, ix->quads, live, nl, hp);
    float ub[RSR_LOUVER_GROUP_MAX][TILE], lb[RSR_LOUVER_GROUP_MAX][TILE];
    uint16_t frc;
    int32_t count[RSR_LOUVER_GROUP_MAX] = {0}, sampled = 0;
    if (any_rel) { /* the relative heads' τ from the buffer and the sample's lower bounds */
        for (int32_t t = 0; t < tiles; t += step) {
            index_tile_bounds(ix, t, qw, hp, nl, ub, lb, &frc);
            for (int32_t g = 0; g < nl; g++)
                for (int32_t k = 0; k < TILE; k++)
                    if (!(frc >> k & 1) && lb[g][k] > hp[g].lbmax) hp[g].lbmax = lb[g][k];
        }
        for (int32_t g = 0; g < nl; g++)
            if (pol[live[g]].kind == RSR_LOUVER_RELATIVE) {
                set_tau(&hp[g], relative_tau(&hp[g], pol[live[g]].eps, ix->cfg.head_dim));
                hq[live[g]].lbmax = hp[g].lbmax; /* the pass starts from the sample's L */
            }
    }
    for (int32_t t = 0; t < tiles; t += step) {
        index_tile_bounds(ix, t, qw, hp, nl, ub, NULL, &frc);
        for (int32_t g = 0; g < nl; g++)
            for (int32_t k = 0; k < TILE; k++) count[g] += ub[g][k] >= hp[g].tauk || (frc >> k & 1);
        sampled += TILE;
    }
    for (int32_t g = 0; g < nl; g++) {
        const double need = pol[live[g]].kind == RSR_LOUVER_RELATIVE ? PROBE_RELATIVE_FRACTION : FALLBACK_FRACTION;
        if (count[g] >= need * sampled) {
            head_q *p = &hq[live[g]];
            p->dense = RSR_LOUVER_DENSE_QUALIFY;
            set_tau(p, hp[g].tau);
        }
    }
}

/* The pass over block b's codes for the heads bl[0..nbl) whose block test passes: each appends
 * the positions of its keys with ub ≥ τ'' (or forced) to its selection; with relative (the
 * relative policy, whose τ may still rise) also their upper bounds, and lbm[g] is raised to the
 * best lower bound of the block's keys that are not forced. */
static void select_block(const rsr_louver_index *ix, rsr_louver_scratch *sc, head_q *hq, int32_t gq, const int32_t *bl,
                         int32_t nbl, int32_t b, int relative, float *lbm) {
    if (nbl < 1) return; /* (the callers pass at least one head; this tells the compiler too) */
    const int32_t B = ix->cfg.block_keys, nq = ix->quads;
    const size_t ck = (size_t)sc->cap_keys;
    const size_t kb = (size_t)b * (size_t)B;
    const uint16_t *frc = ix->force + (size_t)b * (size_t)(B / TILE);
    const uint8_t *codes = ix->codes + kb * 4 * (size_t)nq;
#ifdef LOUVER_X86
    if (rt_louver_fast()) { /* the VNNI integer dots */
        const head_q *hp[RSR_LOUVER_GROUP_MAX];
        int32_t *at[RSR_LOUVER_GROUP_MAX];
        float *uo[RSR_LOUVER_GROUP_MAX];
        const int32_t *qw = sc->qw;
        if (nbl < gq) {
            head_q unused[RSR_LOUVER_GROUP_MAX];
            qw = pack_heads(sc, hq, gq, nq, bl, nbl, unused);
        }
        for (int32_t g = 0; g < nbl; g++) {
            const size_t o = (size_t)bl[g] * ck + (size_t)sc->nsc[bl[g]];
            hp[g] = &hq[bl[g]], at[g] = sc->idx + o, uo[g] = sc->cub + o;
        }
        louver_block_select_vnni(codes, B / TILE, nq, qw, hp, nbl, ix->kscale + kb, ix->kint + kb, ix->kerr + kb, frc,
                                 b * B, at, relative ? uo : NULL, lbm);
        for (int32_t g = 0; g < nbl; g++) sc->nsc[bl[g]] = (int32_t)(at[g] - (sc->idx + (size_t)bl[g] * ck));
    } else
#endif
    {
        float ub[RSR_LOUVER_GROUP_MAX][TILE], lb[RSR_LOUVER_GROUP_MAX][TILE];
        head_q hp[RSR_LOUVER_GROUP_MAX];
        const int32_t *qw = pack_heads(sc, hq, gq, nq, bl, nbl, hp);
        for (int32_t t = 0; t < B / TILE; t++) {
            tile_bounds(codes + (size_t)t * TILE * 4 * (size_t)nq, nq, qw, (size_t)nq, hp, nbl,
                        ix->kscale + kb + (size_t)t * TILE, ix->kint + kb + (size_t)t * TILE,
                        ix->kerr + kb + (size_t)t * TILE, ub, relative ? lb : NULL);
            for (int32_t g = 0; g < nbl; g++) {
                const int32_t h = bl[g];
                const size_t o = (size_t)h * ck + (size_t)sc->nsc[h];
                sc->nsc[h] += relative ? select_keys_ub(ub[g], lb[g], hq[h].tauk, frc[t], b * B + t * TILE, sc->idx + o,
                                                        sc->cub + o, &lbm[g])
                                       : select_keys(ub[g], hq[h].tauk, frc[t], b * B + t * TILE, sc->idx + o);
            }
        }
    }
}

rsr_status rsr_louver_attend_group(const rsr_louver_index *ix, const float *q, int32_t gq, const float *keys,
                                   const float *values, size_t stride, int32_t n, const rsr_louver_policy *pol,
                                   rsr_louver_scratch *sc, float *out, rsr_louver_stats *stats) {
    if (!ix || !keys || !values || stride < (size_t)ix->cfg.head_dim) return RSR_ERR_INVALID_ARGUMENT;
    return louver_attend_rows(ix, q, gq, attn_rows_f32(keys, stride), attn_rows_f32(values, stride), n, pol, sc, out,
                              stats);
}

/* Appends the positions from..to-1 to head h's list (through a local pointer: the list may alias
 * sc->nsc, which the compiler would otherwise reload and store at every position; 5 ms at 128K). */
static void append_positions(rsr_louver_scratch *sc, int32_t h, int32_t from, int32_t to) {
    int32_t *idx = sc->idx + (size_t)h * (size_t)sc->cap_keys + sc->nsc[h];
    for (int32_t j = from; j < to; j++) idx[j - from] = j;
    sc->nsc[h] += to - from;
}

/* The heads that attend every key (dense set): the dense kernel over the size indexed keys, all
 * of them together (each key and value row read once for the group; its scores have attn_dot's
 * bits), their positions listed for the statistics. */
static void attend_dense_heads(rsr_louver_scratch *sc, const head_q *hq, int32_t gq, const float *q, attn_rows keys,
                               attn_rows values, int32_t d, int32_t size, attn_state *st, int32_t *kept) {
    int32_t dl[RSR_LOUVER_GROUP_MAX], nd = 0;
    float *qd = sc->qd, tau[RSR_LOUVER_GROUP_MAX];
    for (int32_t h = 0; h < gq; h++) {
        if (!hq[h].dense) continue;
        append_positions(sc, h, 0, size);
        memcpy(qd + (size_t)nd * (size_t)d, q + (size_t)h * (size_t)d, sizeof(float) * (size_t)d);
        tau[nd] = hq[h].tau;
        dl[nd++] = h;
    }
    if (!nd) return;
    attn_state sd[RSR_LOUVER_GROUP_MAX];
    int32_t cnt[RSR_LOUVER_GROUP_MAX] = {0};
    for (int32_t g = 0; g < nd; g++) sd[g] = st[dl[g]];
    for (int32_t j0 = 0; j0 < size; j0 += DENSE_CHUNK)
        attn_dense_range_kv(sd, qd, nd, keys, values, d, j0, j0 + DENSE_CHUNK < size ? j0 + DENSE_CHUNK : size, sc->dx,
                            tau, cnt);
    for (int32_t g = 0; g < nd; g++) st[dl[g]] = sd[g], kept[dl[g]] += cnt[g];
}

/* The policies' arguments checked: 1 where any head's is relative, 0 where none, -1 where one is
 * out of its range. */
static int policies_relative(const rsr_louver_policy *pol, int32_t gq) {
    int relative = 0;
    for (int32_t h = 0; h < gq; h++) {
        switch (pol[h].kind) {
        case RSR_LOUVER_RELATIVE:
            if (!(pol[h].eps > 0 && pol[h].eps < 1)) return -1;
            relative = 1;
            break;
        case RSR_LOUVER_ABSOLUTE:
            if (isnan(pol[h].tau)) return -1;
            break;
        case RSR_LOUVER_BUDGET:
            if (!(pol[h].budget > 0 && pol[h].budget <= 1)) return -1;
            break;
        default: return -1;
        }
    }
    return relative;
}

/* Head h before the pass over the index: its state cleared, the recent-key buffer listed (its
 * best score, already in sc->bd, is the first lower bound L), the quantised query, the bounds'
 * slack, whether it must go dense, and τ where the policy gives it now. */
static void prepare_head(const rsr_louver_index *ix, const float *q, int32_t h, attn_rows keys, int32_t n,
                         const rsr_louver_policy *pp, rsr_louver_scratch *sc, attn_state *st) {
    const int32_t d = ix->cfg.head_dim, S = ix->cfg.subspaces, size = rsr_louver_size(ix), nq = ix->quads;
    head_q *p = &sc->hq[h];
    const float *qh = q + (size_t)h * (size_t)d;
    *st = (attn_state){.o = sc->o + (size_t)h * (size_t)sc->cap_d};
    attn_state_clear(st, d);
    sc->nsc[h] = 0;
    append_positions(sc, h, size, n);
    p->lmax = -INFINITY, p->lbmax = -INFINITY, p->tau = -INFINITY; /* kept is counted once τ is final */
    double Qbox;
    quantise_query(ix, qh, p, sc->qw + (size_t)h * (size_t)nq, &Qbox);
    const double R = ((double)p->qnorm + 2.0 * (double)p->fnorm) * ix->nmax;
    /* the key bound computes t1 = s·A before it scales by the key's c: |A| <= 127²·4·quads */
    const double T1 = (double)p->s * 16129.0 * 4.0 * (double)nq;
    p->dense =
        size > 0 && !(Qbox < DENSE_Q_LIMIT && R < DENSE_Q_LIMIT && T1 < DENSE_Q_LIMIT) ? RSR_LOUVER_DENSE_OVERFLOW : 0;
    p->slackk = (1.03 * d + 32) * 0x1p-24 * R + 0x1p-100;
    p->slackb = 1.03 * (2.0 * d + S + 1) * 0x1p-24 * Qbox + 0x1p-100;
    if (louver_bound_weakened_for_tests) p->slackk = p->slackb = 0;
    p->bounded = 0;
    const float *bd = sc->bd + (size_t)h * (size_t)sc->cap_buf;
    for (int32_t j = 0; j < n - size; j++)
        if (bd[j] > p->lmax) p->lmax = bd[j];
    float tau = -INFINITY;
    if (pp->kind == RSR_LOUVER_ABSOLUTE)
        tau = pp->tau;
    else if (pp->kind == RSR_LOUVER_BUDGET && size > 0 && pp->budget < 1) {
        int32_t m = size < 256 ? size : 256;
        float *smp = sc->x; /* 512 floats */
        for (int32_t i = 0; i < m; i++) smp[i] = attn_dot_kv(qh, keys, (int64_t)i * size / m, d);
        qsort(smp, (size_t)m, sizeof(float), cmp_desc);
        int32_t k = (int32_t)ceil((double)pp->budget * m);
        tau = smp[(k < 1 ? 1 : k) - 1];
        if (isnan(tau)) tau = -INFINITY;
    }
    set_tau(p, p->dense ? -INFINITY : tau);
}

rsr_status louver_attend_rows(const rsr_louver_index *ix, const float *q, int32_t gq, attn_rows keys, attn_rows values,
                              int32_t n, const rsr_louver_policy *pol, rsr_louver_scratch *sc, float *out,
                              rsr_louver_stats *stats) {
    if (!ix || !q || gq < 1 || gq > RSR_LOUVER_GROUP_MAX || !keys.base || !values.base || !pol || !sc || !out)
        return RSR_ERR_INVALID_ARGUMENT;
    const int32_t d = ix->cfg.head_dim, B = ix->cfg.block_keys, size = rsr_louver_size(ix);
    const int32_t nq = ix->quads, nb = ix->nblocks;
    if (n < size) return RSR_ERR_INVALID_ARGUMENT;
    int relative = policies_relative(pol, gq);
    if (relative < 0) return RSR_ERR_INVALID_ARGUMENT;
    if (scratch_reserve(sc, n > 256 ? n : 256, gq, d, nq, nb * gq, n - size)) return RSR_ERR_OUT_OF_MEMORY;
    const float scale = 1.0f / sqrtf((float)d);
    head_q *hq = sc->hq;
    attn_state st[RSR_LOUVER_GROUP_MAX];
    int32_t kept[RSR_LOUVER_GROUP_MAX] = {0};
    const size_t ck = (size_t)sc->cap_keys;

    /* per head: the recent-key buffer (always attended; its best score is the first lower bound
     * L), the quantised query and τ. The buffer's exact scores for all heads at once (added to
     * the states below, once τ is known: kept needs τ). */
    PROF_START();
    attn_scores_kv(q, gq, keys, d, size, n, sc->bd, (size_t)sc->cap_buf);
    for (int32_t h = 0; h < gq; h++) prepare_head(ix, q, h, keys, n, &pol[h], sc, &st[h]);
    if (size > 0) probe(ix, sc, hq, gq, pol);

    /* relative policy: τ = L − √d·ln(1/ε) from the best known lower bound L of the largest score
     * (the buffer's best, the probe's sample). The pass over the codes raises L as it goes, so τ
     * only rises: a key is selected under the τ of its block, which is no higher than the final
     * one, and the selection is filtered by the final τ after the pass (its upper bounds are kept
     * for that). One pass over the codes, as for the other policies. */
    int32_t live[RSR_LOUVER_GROUP_MAX], nl = 0;
    for (int32_t h = 0; h < gq; h++) {
        if (pol[h].kind == RSR_LOUVER_RELATIVE && !hq[h].dense) set_tau(&hq[h], relative_tau(&hq[h], pol[h].eps, d));
        if (!hq[h].dense && size > 0) live[nl++] = h;
    }
    PROF(PH_PREP);

    /* the index: block test per head, key bounds for the heads whose block test passes */
    int32_t first[RSR_LOUVER_GROUP_MAX];
    for (int32_t h = 0; h < gq; h++) first[h] = sc->nsc[h];
    if (nl) {
        for (int32_t g = 0; g < nl; g++)
            block_bounds(ix, q + (size_t)live[g] * (size_t)d, &hq[live[g]], sc->bub + (size_t)live[g] * (size_t)nb);
        PROF(PH_BOX);
        for (int32_t b = 0; b < nb; b++) {
            int32_t bl[RSR_LOUVER_GROUP_MAX], nbl = 0; /* the heads whose block test passes */
            for (int32_t g = 0; g < nl; g++)
                if (ix->forced[b] || sc->bub[(size_t)live[g] * (size_t)nb + (size_t)b] >= hq[live[g]].taub)
                    bl[nbl++] = live[g];
            if (!nbl) continue;
            float lbm[RSR_LOUVER_GROUP_MAX];
            for (int32_t g = 0; g < nbl; g++) lbm[g] = hq[bl[g]].lbmax;
            select_block(ix, sc, hq, gq, bl, nbl, b, relative, lbm);
            for (int32_t g = 0; g < nbl; g++) {
                head_q *p = &hq[bl[g]];
                p->bounded += B;
                if (pol[bl[g]].kind == RSR_LOUVER_RELATIVE && lbm[g] > p->lbmax) {
                    p->lbmax = lbm[g];
                    set_tau(p, relative_tau(p, pol[bl[g]].eps, d));
                }
            }
        }
        /* the relative heads' selection filtered by their final τ */
        for (int32_t g = 0; g < nl; g++) {
            const int32_t h = live[g];
            if (pol[h].kind != RSR_LOUVER_RELATIVE) continue;
            int32_t *idx = sc->idx + (size_t)h * ck;
            const float *u = sc->cub + (size_t)h * ck, tk = hq[h].tauk;
            int32_t w = first[h];
            for (int32_t j = first[h]; j < sc->nsc[h]; j++)
                if (u[j] >= tk) idx[w++] = idx[j];
            sc->nsc[h] = w;
        }
        PROF(PH_BOUND);
    }

    /* the buffer, now that τ is final */
    for (int32_t h = 0; h < gq; h++)
        add_scores(&st[h], sc, sc->idx + (size_t)h * ck, sc->bd + (size_t)h * (size_t)sc->cap_buf, n - size, values, d,
                   scale, hq[h].tau, &kept[h]);

    /* the exact scores of the candidates, their rows fetched ahead (score) */
    for (int32_t g = 0; g < nl; g++) {
        const int32_t h = live[g], c = sc->nsc[h] - first[h];
        if (c >= FALLBACK_FRACTION * size) { /* the probe missed it: dense after all (see probe) */
            hq[h].dense = RSR_LOUVER_DENSE_QUALIFY;
            sc->nsc[h] = first[h];
        } else if (c > 0) {
            score(&st[h], sc, sc->idx + (size_t)h * ck + first[h], c, q + (size_t)h * (size_t)d, keys, values, d, scale,
                  &hq[h], &kept[h]);
        }
    }

    if (size > 0) attend_dense_heads(sc, hq, gq, q, keys, values, d, size, st, kept);

    PROF(PH_BOUND);
    for (int32_t h = 0; h < gq; h++) {
        attn_state_finish(&st[h], out + (size_t)h * (size_t)d, d);
        if (!stats) continue;
        const int32_t nsc = sc->nsc[h];
        rsr_louver_stats s = {.keys = n,
                              .bounded = hq[h].bounded,
                              .scanned = nsc,
                              .kept = kept[h],
                              .dense = hq[h].dense,
                              .tau = hq[h].tau};
        if (nsc < n && st[h].l > 0) {
            /* dropped keys have fl(q·k) < τ, hence scaled scores ≤ fl(τ·scale); l carries the
             * rounding of |C| positive terms and of exp, relative at most (|C| + 4)·2^-22 */
            double l = (double)st[h].l * (1.0 - (double)(nsc + 4) * 0x1p-22);
            double xt = (double)(hq[h].tau * scale);
            s.dropped_bound = l > 0 ? (double)(n - nsc) * exp(xt - (double)st[h].m) / l : INFINITY;
        } else if (nsc < n) {
            s.dropped_bound = INFINITY;
        }
        stats[h] = s;
    }
    PROF(PH_FINISH);
    return RSR_OK;
}

rsr_status rsr_louver_attend(const rsr_louver_index *ix, const float *q, const float *keys, const float *values,
                             size_t stride, int32_t n, const rsr_louver_policy *p, rsr_louver_scratch *sc, float *out,
                             rsr_louver_stats *stats) {
    return rsr_louver_attend_group(ix, q, 1, keys, values, stride, n, p, sc, out, stats);
}
