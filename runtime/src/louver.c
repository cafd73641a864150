/*
 * louver.c — the Louver index (safe per-subspace box enclosures of blocks of keys) and its
 * query: skip blocks whose box bound is below τ', bound every other key by the sum of its
 * groups' per-subspace bounds, score the survivors exactly. rsr_louver.h describes the layout;
 * docs/louver.md the guarantee and the fp32 slack.
 */
#include "rsr_louver.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LOUVER_X86 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))
#endif

#define G RSR_LOUVER_GROUPS
#define FORCE_LIMIT 18446744073709551616.0f /* 2^64: larger key components are scanned, not bounded */
#define DENSE_Q_LIMIT 1e37                  /* beyond this the fp32 bound arithmetic could overflow */

struct rsr_louver_index {
    rsr_louver_config cfg;
    int32_t sub_start[RSR_LOUVER_MAX_SUBSPACES + 1];
    int32_t nblocks, cap;
    float *box;         /* [cap][2][d] */
    uint16_t *bounds;   /* [cap][d][2][G] bf16 */
    uint8_t *group;     /* [cap][S][B] */
    uint16_t *knorm;    /* [cap][S][B] bf16 ≥ ‖k_s‖, the norm of each key's slice */
    float *bnorm;       /* [cap][S] the largest knorm of the block per subspace */
    uint16_t *force;    /* [cap][B/16] */
    uint8_t *forced;    /* [cap] 1 when any key of the block is forced */
    float *absmax;      /* [d] */
    /* clustering scratch */
    float *pts;         /* [B][d] a subspace slice of the block's keys, packed */
    float *cent;        /* [G][d] */
    int32_t *assign, *live; /* [B] */
};

struct rsr_louver_scratch {
    int32_t cap_keys, cap_blocks, cap_d;
    float *x, *dots;    /* [cap_keys] scaled scores, raw dots of the scanned keys */
    int32_t *idx;       /* [cap_keys] scanned positions */
    int32_t nscanned;
    float *bub;         /* [cap_blocks] block box bounds */
    float *o;           /* [cap_d] */
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
    if (c.subspaces < 1 || c.subspaces > c.head_dim || c.subspaces > RSR_LOUVER_MAX_SUBSPACES) return RSR_ERR_INVALID_ARGUMENT;
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
    for (int32_t s = 0; s <= c.subspaces; s++) ix->sub_start[s] = (int32_t)((int64_t)c.head_dim * s / c.subspaces);
    size_t d = (size_t)c.head_dim, B = (size_t)c.block_keys;
    ix->absmax = calloc(d, sizeof(float));
    ix->pts = malloc(sizeof(float) * B * d);
    ix->cent = malloc(sizeof(float) * G * d);
    ix->assign = malloc(sizeof(int32_t) * B);
    ix->live = malloc(sizeof(int32_t) * B);
    if (!ix->absmax || !ix->pts || !ix->cent || !ix->assign || !ix->live) {
        rsr_louver_free(ix);
        return RSR_ERR_OUT_OF_MEMORY;
    }
    *out = ix;
    return RSR_OK;
}

void rsr_louver_free(rsr_louver_index *ix) {
    if (!ix) return;
    free(ix->box), free(ix->bounds), free(ix->group), free(ix->knorm), free(ix->bnorm), free(ix->force), free(ix->forced), free(ix->absmax);
    free(ix->pts), free(ix->cent), free(ix->assign), free(ix->live);
    free(ix);
}

void rsr_louver_clear(rsr_louver_index *ix) {
    if (!ix) return;
    ix->nblocks = 0;
    memset(ix->absmax, 0, sizeof(float) * (size_t)ix->cfg.head_dim);
}

int32_t rsr_louver_size(const rsr_louver_index *ix) { return ix ? ix->nblocks * ix->cfg.block_keys : 0; }

const rsr_louver_config *rsr_louver_get_config(const rsr_louver_index *ix) { return ix ? &ix->cfg : NULL; }

/* ---- building a block ---- */

/* The smallest bf16 ≥ x and the largest bf16 ≤ x, for finite x of magnitude ≤ 2^64. Truncating
 * the low 16 bits rounds toward zero; one step up in magnitude then rounds away from zero. */
static uint16_t bf16_up(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t h = (uint16_t)(u >> 16);
    if ((u & 0xffffu) && !(u >> 31)) h++;
    return h;
}
static uint16_t bf16_down(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t h = (uint16_t)(u >> 16);
    if ((u & 0xffffu) && (u >> 31)) h++;
    return h;
}
static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Grows every per-block array together, so that no block's data can be lost in a growth. */
static int reserve(rsr_louver_index *ix, int32_t blocks) {
    if (blocks <= ix->cap) return 0;
    int32_t cap = ix->cap ? ix->cap : 16;
    while (cap < blocks) cap *= 2;
    size_t d = (size_t)ix->cfg.head_dim, B = (size_t)ix->cfg.block_keys, S = (size_t)ix->cfg.subspaces;
    void *p;
    if (!(p = realloc(ix->box, sizeof(float) * 2 * d * (size_t)cap))) return -1;
    ix->box = p;
    if (!(p = realloc(ix->bounds, sizeof(uint16_t) * 2 * G * d * (size_t)cap))) return -1;
    ix->bounds = p;
    if (!(p = realloc(ix->group, S * B * (size_t)cap))) return -1;
    ix->group = p;
    if (!(p = realloc(ix->knorm, sizeof(uint16_t) * S * B * (size_t)cap))) return -1;
    ix->knorm = p;
    if (!(p = realloc(ix->bnorm, sizeof(float) * S * (size_t)cap))) return -1;
    ix->bnorm = p;
    if (!(p = realloc(ix->force, sizeof(uint16_t) * (B / 16) * (size_t)cap))) return -1;
    ix->force = p;
    if (!(p = realloc(ix->forced, (size_t)cap))) return -1;
    ix->forced = p;
    ix->cap = cap;
    return 0;
}

/* k-means (Lloyd, a few rounds) of the n packed points pts[n][w] into at most G groups; every
 * group that is used is non-empty. Deterministic. */
static void cluster(float *pts, int32_t n, int32_t w, float *cent, int32_t *assign) {
    if (n <= G) {
        for (int32_t t = 0; t < n; t++) assign[t] = t;
        return;
    }
    for (int32_t g = 0; g < G; g++) memcpy(cent + (size_t)g * w, pts + (size_t)((2 * g + 1) * n / (2 * G)) * w, sizeof(float) * (size_t)w);
    int32_t count[G];
    for (int round = 0; round < 6; round++) {
        float worst = -1;
        int32_t worst_t = 0;
        for (int32_t t = 0; t < n; t++) {
            const float *p = pts + (size_t)t * w;
            float best = INFINITY;
            int32_t bg = 0;
            for (int32_t g = 0; g < G; g++) {
                const float *c = cent + (size_t)g * w;
                float dist = 0;
                for (int32_t i = 0; i < w; i++) dist += (p[i] - c[i]) * (p[i] - c[i]);
                if (dist < best) best = dist, bg = g;
            }
            assign[t] = bg;
            if (best > worst) worst = best, worst_t = t;
        }
        memset(count, 0, sizeof count);
        memset(cent, 0, sizeof(float) * G * (size_t)w);
        for (int32_t t = 0; t < n; t++) {
            count[assign[t]]++;
            for (int32_t i = 0; i < w; i++) cent[(size_t)assign[t] * w + i] += pts[(size_t)t * w + i];
        }
        for (int32_t g = 0; g < G; g++) {
            if (count[g] == 0) { /* an empty group takes the worst-served point */
                if (count[assign[worst_t]] > 1) {
                    count[assign[worst_t]]--;
                    for (int32_t i = 0; i < w; i++) cent[(size_t)assign[worst_t] * w + i] -= pts[(size_t)worst_t * w + i];
                    assign[worst_t] = g;
                    count[g] = 1;
                    memcpy(cent + (size_t)g * w, pts + (size_t)worst_t * w, sizeof(float) * (size_t)w);
                }
                continue;
            }
            for (int32_t i = 0; i < w; i++) cent[(size_t)g * w + i] /= (float)count[g];
        }
    }
    /* the final assignment is the last one computed, matching the final counts */
}

static int key_forced(const float *k, int32_t d) {
    for (int32_t i = 0; i < d; i++)
        if (!(fabsf(k[i]) <= FORCE_LIMIT)) return 1; /* NaN fails the comparison too */
    return 0;
}

rsr_status rsr_louver_append_block(rsr_louver_index *ix, const float *keys, size_t stride) {
    if (!ix || !keys) return RSR_ERR_INVALID_ARGUMENT;
    if (ix->nblocks == INT32_MAX / ix->cfg.block_keys - 1) return RSR_ERR_INVALID_ARGUMENT;
    if (reserve(ix, ix->nblocks + 1)) return RSR_ERR_OUT_OF_MEMORY;
    const int32_t d = ix->cfg.head_dim, B = ix->cfg.block_keys, S = ix->cfg.subspaces;
    const int32_t b = ix->nblocks;
    float *box = ix->box + (size_t)b * 2 * (size_t)d;
    uint16_t *bounds = ix->bounds + (size_t)b * 2 * G * (size_t)d;
    uint8_t *group = ix->group + (size_t)b * (size_t)S * (size_t)B;
    uint16_t *force = ix->force + (size_t)b * (size_t)(B / 16);

    int32_t nlive = 0;
    memset(force, 0, sizeof(uint16_t) * (size_t)(B / 16));
    for (int32_t t = 0; t < B; t++) {
        if (key_forced(keys + (size_t)t * stride, d)) force[t / 16] |= (uint16_t)(1u << (t % 16));
        else ix->live[nlive++] = t;
    }
    ix->forced[b] = nlive < B;
    memset(group, 0, (size_t)S * (size_t)B);
    for (int32_t s = 0; s < S; s++) {
        int32_t i0 = ix->sub_start[s], w = ix->sub_start[s + 1] - i0;
        for (int32_t t = 0; t < nlive; t++)
            memcpy(ix->pts + (size_t)t * w, keys + (size_t)ix->live[t] * stride + i0, sizeof(float) * (size_t)w);
        cluster(ix->pts, nlive, w, ix->cent, ix->assign);
        for (int32_t i = 0; i < w; i++) {
            float lo[G], hi[G];
            for (int32_t g = 0; g < G; g++) lo[g] = INFINITY, hi[g] = -INFINITY;
            for (int32_t t = 0; t < nlive; t++) {
                float v = ix->pts[(size_t)t * w + i];
                int32_t g = ix->assign[t];
                lo[g] = fminf(lo[g], v), hi[g] = fmaxf(hi[g], v);
            }
            uint16_t *row = bounds + (size_t)(i0 + i) * 2 * G;
            for (int32_t g = 0; g < G; g++) {
                if (lo[g] > hi[g]) lo[g] = hi[g] = 0; /* an empty group: no key refers to it */
                row[g] = bf16_down(lo[g]);
                row[G + g] = bf16_up(hi[g]);
                ix->absmax[i0 + i] = fmaxf(ix->absmax[i0 + i], fmaxf(fabsf(bf16_to_f32(row[g])), fabsf(bf16_to_f32(row[G + g]))));
            }
        }
        for (int32_t t = 0; t < nlive; t++) group[(size_t)s * B + ix->live[t]] = (uint8_t)ix->assign[t];
        /* slice norms, rounded up: the double sum of float squares is within 1e-15 relative */
        uint16_t *kn = ix->knorm + ((size_t)b * (size_t)S + (size_t)s) * (size_t)B;
        float bn = 0;
        memset(kn, 0, sizeof(uint16_t) * (size_t)B);
        for (int32_t t = 0; t < nlive; t++) {
            const float *p = ix->pts + (size_t)t * w;
            double ss = 0;
            for (int32_t i = 0; i < w; i++) ss += (double)p[i] * (double)p[i];
            double r = sqrt(ss) * (1 + 1e-12);
            float f = (float)r;
            if ((double)f < r) f = nextafterf(f, INFINITY);
            kn[ix->live[t]] = bf16_up(f);
            bn = fmaxf(bn, bf16_to_f32(kn[ix->live[t]]));
        }
        ix->bnorm[(size_t)b * (size_t)S + (size_t)s] = bn;
    }
    /* the block's box: exact min/max over its bounded keys */
    for (int32_t i = 0; i < d; i++) box[i] = INFINITY, box[d + i] = -INFINITY;
    for (int32_t t = 0; t < nlive; t++) {
        const float *k = keys + (size_t)ix->live[t] * stride;
        for (int32_t i = 0; i < d; i++) box[i] = fminf(box[i], k[i]), box[d + i] = fmaxf(box[d + i], k[i]);
    }
    if (!nlive)
        for (int32_t i = 0; i < d; i++) box[i] = box[d + i] = 0;
    ix->nblocks++;
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
    free(sc->x), free(sc->dots), free(sc->idx), free(sc->bub), free(sc->o);
    free(sc);
}

const int32_t *rsr_louver_scratch_scanned(const rsr_louver_scratch *sc, int32_t *count) {
    if (count) *count = sc ? sc->nscanned : 0;
    return sc ? sc->idx : NULL;
}

static int scratch_reserve(rsr_louver_scratch *sc, int32_t keys, int32_t blocks, int32_t d) {
    void *p;
    if (keys > sc->cap_keys) {
        int32_t cap = keys + keys / 2 + 64;
        if (!(p = realloc(sc->x, sizeof(float) * (size_t)cap))) return -1;
        sc->x = p;
        if (!(p = realloc(sc->dots, sizeof(float) * (size_t)cap))) return -1;
        sc->dots = p;
        if (!(p = realloc(sc->idx, sizeof(int32_t) * (size_t)cap))) return -1;
        sc->idx = p;
        sc->cap_keys = cap;
    }
    if (blocks > sc->cap_blocks) {
        int32_t cap = blocks + blocks / 2 + 16;
        if (!(p = realloc(sc->bub, sizeof(float) * (size_t)cap))) return -1;
        sc->bub = p;
        sc->cap_blocks = cap;
    }
    if (d > sc->cap_d) {
        if (!(p = realloc(sc->o, sizeof(float) * (size_t)d))) return -1;
        sc->o = p;
        sc->cap_d = d;
    }
    return 0;
}

/* Σ_s min(Σ_{i∈s} max(q_i·lo_i, q_i·hi_i), ‖q_s‖·max‖k_s‖) over the block's box [2][d]. */
static float box_bound_scalar(const rsr_louver_index *ix, int32_t b, const float *q, const float *qn) {
    const int32_t d = ix->cfg.head_dim, S = ix->cfg.subspaces;
    const float *box = ix->box + (size_t)b * 2 * (size_t)d, *bn = ix->bnorm + (size_t)b * (size_t)S;
    float total = 0;
    for (int32_t s = 0; s < S; s++) {
        float acc = 0;
        for (int32_t i = ix->sub_start[s]; i < ix->sub_start[s + 1]; i++) acc += fmaxf(q[i] * box[i], q[i] * box[d + i]);
        total += fminf(acc, qn[s] * bn[s]);
    }
    return total;
}

/* The keys of block b (positions b*B + t) whose bound is ≥ taup, or that are forced. */
static int32_t block_candidates_scalar(const rsr_louver_index *ix, int32_t b, const float *q, const float *qn,
                                       float taup, int32_t *out) {
    const int32_t d = ix->cfg.head_dim, B = ix->cfg.block_keys, S = ix->cfg.subspaces;
    const uint16_t *bd = ix->bounds + (size_t)b * 2 * G * (size_t)d;
    const uint8_t *grp = ix->group + (size_t)b * (size_t)S * (size_t)B;
    const uint16_t *frc = ix->force + (size_t)b * (size_t)(B / 16);
    float U[RSR_LOUVER_MAX_SUBSPACES][G];
    for (int32_t s = 0; s < S; s++)
        for (int32_t g = 0; g < G; g++) {
            float acc = 0;
            for (int32_t i = ix->sub_start[s]; i < ix->sub_start[s + 1]; i++)
                acc += fmaxf(q[i] * bf16_to_f32(bd[(size_t)i * 2 * G + g]), q[i] * bf16_to_f32(bd[(size_t)i * 2 * G + G + g]));
            U[s][g] = acc;
        }
    const uint16_t *kn = ix->knorm + (size_t)b * (size_t)S * (size_t)B;
    int32_t n = 0;
    for (int32_t t = 0; t < B; t++) {
        float ub = 0;
        for (int32_t s = 0; s < S; s++) {
            float u = fminf(U[s][grp[(size_t)s * B + t]], qn[s] * bf16_to_f32(kn[(size_t)s * B + t]));
            ub = s ? ub + u : u;
        }
        if (ub >= taup || (frc[t / 16] >> (t % 16) & 1)) out[n++] = b * B + t;
    }
    return n;
}

#ifdef LOUVER_X86
AVX512 static inline __m512 load_bf16x16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

AVX512 static void box_bounds_avx512(const rsr_louver_index *ix, const float *q, const float *qn, float *bub) {
    const int32_t d = ix->cfg.head_dim, S = ix->cfg.subspaces;
    float t[4096 + 16];
    for (int32_t b = 0; b < ix->nblocks; b++) {
        const float *lo = ix->box + (size_t)b * 2 * (size_t)d, *hi = lo + d, *bn = ix->bnorm + (size_t)b * (size_t)S;
        int32_t i = 0;
        for (; i + 16 <= d; i += 16) {
            __m512 qv = _mm512_loadu_ps(q + i);
            _mm512_storeu_ps(t + i, _mm512_max_ps(_mm512_mul_ps(qv, _mm512_loadu_ps(lo + i)), _mm512_mul_ps(qv, _mm512_loadu_ps(hi + i))));
        }
        for (; i < d; i++) t[i] = fmaxf(q[i] * lo[i], q[i] * hi[i]);
        float total = 0;
        for (int32_t s = 0; s < S; s++) {
            float acc = 0;
            int32_t i0 = ix->sub_start[s], i1 = ix->sub_start[s + 1];
            if (i1 - i0 == 16) acc = _mm512_reduce_add_ps(_mm512_loadu_ps(t + i0));
            else
                for (int32_t k = i0; k < i1; k++) acc += t[k];
            total += fminf(acc, qn[s] * bn[s]);
        }
        bub[b] = total;
    }
}

AVX512 static int32_t block_candidates_avx512(const rsr_louver_index *ix, int32_t b, const float *q, const float *qn,
                                              float taup, int32_t *out) {
    const int32_t d = ix->cfg.head_dim, B = ix->cfg.block_keys, S = ix->cfg.subspaces;
    const uint16_t *bd = ix->bounds + (size_t)b * 2 * G * (size_t)d;
    const uint8_t *grp = ix->group + (size_t)b * (size_t)S * (size_t)B;
    const uint16_t *frc = ix->force + (size_t)b * (size_t)(B / 16);
    __m512 U[RSR_LOUVER_MAX_SUBSPACES][G / 16]; /* bounds of groups 0..15 (and 16..31) */
    for (int32_t s = 0; s < S; s++) {
        __m512 acc[G / 16];
        for (int v = 0; v < G / 16; v++) acc[v] = _mm512_setzero_ps();
        for (int32_t i = ix->sub_start[s]; i < ix->sub_start[s + 1]; i++) {
            __m512 qv = _mm512_set1_ps(q[i]);
            const uint16_t *row = bd + (size_t)i * 2 * G;
            for (int v = 0; v < G / 16; v++)
                acc[v] = _mm512_add_ps(acc[v], _mm512_max_ps(_mm512_mul_ps(qv, load_bf16x16(row + 16 * v)),
                                                             _mm512_mul_ps(qv, load_bf16x16(row + G + 16 * v))));
        }
        for (int v = 0; v < G / 16; v++) U[s][v] = acc[v];
    }
    const __m512 vt = _mm512_set1_ps(taup);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const uint16_t *kn = ix->knorm + (size_t)b * (size_t)S * (size_t)B;
    int32_t n = 0;
    for (int32_t t = 0; t < B; t += 16) {
        __m512 ub = _mm512_setzero_ps();
        for (int32_t s = 0; s < S; s++) {
            __m512i gi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(grp + (size_t)s * B + t)));
#if G == 32
            __m512 u = _mm512_permutex2var_ps(U[s][0], gi, U[s][1]);
#else
            __m512 u = _mm512_permutexvar_ps(gi, U[s][0]);
#endif
            u = _mm512_min_ps(u, _mm512_mul_ps(_mm512_set1_ps(qn[s]), load_bf16x16(kn + (size_t)s * B + t)));
            ub = s ? _mm512_add_ps(ub, u) : u;
        }
        __mmask16 m = (__mmask16)(_mm512_cmp_ps_mask(ub, vt, _CMP_GE_OQ) | frc[t / 16]);
        if (!m) continue;
        _mm512_mask_compressstoreu_epi32(out + n, m, _mm512_add_epi32(iota, _mm512_set1_epi32(b * B + t)));
        n += __builtin_popcount(m);
    }
    return n;
}
#endif

static void box_bounds(const rsr_louver_index *ix, const float *q, const float *qn, float *bub) {
#ifdef LOUVER_X86
    if (attn_simd_enabled()) {
        box_bounds_avx512(ix, q, qn, bub);
        return;
    }
#endif
    for (int32_t b = 0; b < ix->nblocks; b++) bub[b] = box_bound_scalar(ix, b, q, qn);
}

static int32_t block_candidates(const rsr_louver_index *ix, int32_t b, const float *q, const float *qn, float taup,
                                int32_t *out) {
#ifdef LOUVER_X86
    if (attn_simd_enabled()) return block_candidates_avx512(ix, b, q, qn, taup, out);
#endif
    return block_candidates_scalar(ix, b, q, qn, taup, out);
}

/* The largest float ≤ v, one more step down to absorb the rounding of the double arithmetic
 * that produced v (its relative error, 2^-53, is far below one float step, 2^-24). */
static float float_below(double v) {
    if (v != v) return -INFINITY;
    float f = (float)v;
    if ((double)f > v) f = nextafterf(f, -INFINITY);
    return nextafterf(f, -INFINITY);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Scores the keys idx[0..n) exactly and adds them to the state. */
static void score(attn_state *st, rsr_louver_scratch *sc, int32_t at, int32_t n, const float *q, const float *keys,
                  const float *values, size_t stride, int32_t d, float scale, float *lmax) {
    for (int32_t c = at; c < at + n; c++) {
        float dot = attn_dot(q, keys + (size_t)sc->idx[c] * stride, d);
        sc->dots[c] = dot;
        sc->x[c] = dot * scale;
        if (dot > *lmax) *lmax = dot;
    }
    attn_accumulate(st, sc->x + at, sc->idx + at, n, values, stride, d);
}

rsr_status rsr_louver_attend(const rsr_louver_index *ix, const float *q, const float *keys, const float *values,
                             size_t stride, int32_t n, const rsr_louver_policy *p, rsr_louver_scratch *sc, float *out,
                             rsr_louver_stats *stats) {
    if (!ix || !q || !keys || !values || !p || !sc || !out) return RSR_ERR_INVALID_ARGUMENT;
    const int32_t d = ix->cfg.head_dim, B = ix->cfg.block_keys, S = ix->cfg.subspaces, size = rsr_louver_size(ix);
    if (n < size || stride < (size_t)d) return RSR_ERR_INVALID_ARGUMENT;
    switch (p->kind) {
    case RSR_LOUVER_RELATIVE: if (!(p->eps > 0 && p->eps < 1)) return RSR_ERR_INVALID_ARGUMENT; break;
    case RSR_LOUVER_ABSOLUTE: if (isnan(p->tau)) return RSR_ERR_INVALID_ARGUMENT; break;
    case RSR_LOUVER_BUDGET: if (!(p->budget > 0 && p->budget <= 1)) return RSR_ERR_INVALID_ARGUMENT; break;
    default: return RSR_ERR_INVALID_ARGUMENT;
    }
    if (scratch_reserve(sc, n > 256 ? n : 256, ix->nblocks, d)) return RSR_ERR_OUT_OF_MEMORY;
    const float scale = 1.0f / sqrtf((float)d);
    attn_state st = {.o = sc->o};
    attn_state_clear(&st, d);
    rsr_louver_stats s = {.keys = n, .bounded = 0};

    /* the recent-key buffer: always attended; its best score is the first lower bound L */
    float lmax = -INFINITY;
    int32_t nsc = 0;
    for (int32_t j = size; j < n; j++) sc->idx[nsc++] = j;
    score(&st, sc, 0, nsc, q, keys, values, stride, d, scale, &lmax);

    double rel_gap = p->kind == RSR_LOUVER_RELATIVE ? sqrt((double)d) * log(1.0 / (double)p->eps) : 0;
    float tau = -INFINITY;
    if (p->kind == RSR_LOUVER_ABSOLUTE) tau = p->tau;
    else if (p->kind == RSR_LOUVER_RELATIVE) tau = float_below((double)lmax - rel_gap);
    else if (size > 0 && p->budget < 1) {
        /* a strided sample of the indexed keys: the budget-quantile of their scores */
        int32_t m = size < 256 ? size : 256;
        for (int32_t i = 0; i < m; i++)
            sc->x[nsc + i] = attn_dot(q, keys + (size_t)((int64_t)i * size / m) * stride, d);
        qsort(sc->x + nsc, (size_t)m, sizeof(float), cmp_desc);
        int32_t k = (int32_t)ceil((double)p->budget * m);
        tau = sc->x[nsc + (k < 1 ? 1 : k) - 1];
        if (isnan(tau)) tau = -INFINITY;
    }

    double Q = 0;
    for (int32_t i = 0; i < d; i++) Q += fabs((double)q[i]) * (double)ix->absmax[i];
    const double slack = 1.03 * (2.0 * d + S + 1) * 0x1p-24 * Q + 0x1p-100;
    if (size > 0 && !(Q < DENSE_Q_LIMIT)) {
        /* the bound arithmetic could overflow: scan everything */
        s.dense = 1;
        tau = -INFINITY;
        for (int32_t j = 0; j < size; j++) sc->idx[nsc + j] = j;
        score(&st, sc, nsc, size, q, keys, values, stride, d, scale, &lmax);
        nsc += size;
        s.bounded = 0;
    } else if (size > 0) {
        float taup = float_below((double)tau - slack);
        /* ‖q_s‖ rounded up with a margin so that fl(‖q_s‖·knorm) ≥ ‖q_s‖·‖k_s‖ (Cauchy–Schwarz) */
        float qn[RSR_LOUVER_MAX_SUBSPACES];
        for (int32_t s = 0; s < S; s++) {
            double ss = 0;
            for (int32_t i = ix->sub_start[s]; i < ix->sub_start[s + 1]; i++) ss += (double)q[i] * (double)q[i];
            double r = sqrt(ss) * (1 + 0x1p-21);
            qn[s] = (float)r;
            if ((double)qn[s] < r) qn[s] = nextafterf(qn[s], INFINITY);
        }
        box_bounds(ix, q, qn, sc->bub);
        int32_t first = 0;
        if (p->kind == RSR_LOUVER_RELATIVE) /* visit the most promising block first: L rises early */
            for (int32_t b = 1; b < ix->nblocks; b++)
                if (sc->bub[b] > sc->bub[first]) first = b;
        for (int32_t k = 0; k < ix->nblocks; k++) {
            int32_t b = k == 0 ? first : (k <= first ? k - 1 : k);
            if (!(sc->bub[b] >= taup) && !ix->forced[b]) continue;
            s.bounded += B;
            int32_t c = block_candidates(ix, b, q, qn, taup, sc->idx + nsc);
            if (!c) continue;
            score(&st, sc, nsc, c, q, keys, values, stride, d, scale, &lmax);
            nsc += c;
            if (p->kind == RSR_LOUVER_RELATIVE) {
                float t = float_below((double)lmax - rel_gap);
                if (t > tau) {
                    tau = t;
                    taup = float_below((double)tau - slack);
                }
            }
        }
    }
    attn_state_finish(&st, out, d);
    sc->nscanned = nsc;

    s.scanned = nsc;
    for (int32_t c = 0; c < nsc; c++) s.kept += sc->dots[c] >= tau;
    s.tau = tau;
    if (nsc < n && st.l > 0) {
        /* dropped keys have fl(q·k) < τ, hence scaled scores ≤ fl(τ·scale); l carries the
         * rounding of |C| positive terms and of exp, relative at most (|C| + 4)·2^-22 */
        double l = (double)st.l * (1.0 - (double)(nsc + 4) * 0x1p-22);
        double xt = (double)(tau * scale);
        s.dropped_bound = l > 0 ? (double)(n - nsc) * exp(xt - (double)st.m) / l : INFINITY;
    } else if (nsc < n) {
        s.dropped_bound = INFINITY;
    }
    if (stats) *stats = s;
    return RSR_OK;
}
