/*
 * lm_head.c — the logits, and the greedy token certified equal to the argmax of those logits
 * while reading an int8 copy of the head (half the bytes of bf16) instead of the whole head.
 *
 * Exact logits: logit[v] = x · head[v] in fp32, 16 interleaved partial sums (dot_row below).
 *
 * Certified greedy (rsr_session_eval_greedy): each row is held as q ∈ [-127, 127] with
 * w = scale·q + e, |e| <= err (rsr_artifact.h), made at open from the head's rows
 * at the first pick (rt_head_q8_ready; older artifacts carry it in their constants). Per token x is quantised to int16 with the
 * largest range whose sums cannot overflow int32 (x = xq/xs + d), and for every row
 *
 *     approx[v] = scale[v]/xs · Σ q·xq                (the integer sum is exact: VNNI or scalar)
 *     |x·w − approx[v]| <= scale[v]·127·‖d‖₁ + err[v]·‖x‖₁                (real arithmetic)
 *
 * plus the rounding error of the fp32 logit itself, bounded by n·2⁻²³·max|w|·‖x‖₁ with
 * max|w| <= 127·scale + err. With bound[v] the sum of these (widened by a relative 1e-6 for the
 * double arithmetic here), every row whose approx + bound falls below the best approx − bound
 * cannot be the fp32 argmax; the remaining candidates get their exact fp32 logit from the same
 * dot_row as rsr_session_eval, and the first maximum wins as in rsr_sample_greedy. So the token
 * is the one greedy sampling of the full logits would give, by construction; non-finite
 * activations, and any x whose logits could overflow fp32 (‖x‖₁·max|w| near FLT_MAX), fall back
 * to the full head; every argmax here follows rt_logit_better (NaN never wins, first maximum).
 *
 * The codes head. A head kept in group-scaled blocks (Q1_0, Q2_0, PQ2_0, PTQ1_0: Bonsai 2's) holds
 * each weight exactly as d_b·(c − 1), c a 2-bit code, so on x86 (AVX2 or AVX-512) the pass reads
 * those codes (about 2.3 bits a weight with the f32 scales, against the int8 copy's 8) and nothing in w is
 * approximated: x = xq/xs + d with |xq| <= 16383, and
 *
 *     approx[v] = (1/xs)·Σ_b d_b·Σ_{j∈b} (c_j − 1)·xq_j        (each block's integer sum exact)
 *     |x·w − approx[v]| <= cmax·D[v]·(‖d‖₁ + γ·(‖x‖₁ + ‖d‖₁))
 *
 * with D[v] = max_b |d_b|, cmax = max |c − 1| (2 for Q2_0 and PQ2_0, 1 for Q1_0 and PTQ1_0), and
 * γ = (groups + 5)·2⁻²³ for the fp32 lanes the block sums are scaled and added in (one fma a group
 * of 256 weights per lane, then four levels of lane sums: rt_head_dot_codes_vnni, and
 * rt_head_dot_codes_avx2 with the same bits). max|w| = cmax·D[v] in the fp32 term as above. The
 * copy is made at the first certified pick, as the int8 one; other CPUs (NEON, the portable C)
 * make the int8 copy from the decoded rows.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <omp.h>

#include "family.h"
#include "cpu_device.h"

/*
 * One logit: the dot product of x with a row, in 16 interleaved fp32 partial sums (lane j sums
 * elements j, j+16, ...), combined pairwise at the end. The runtime is built once for every
 * target, so the bf16 case is cloned per ISA and the loader picks the widest the CPU has; each
 * clone computes the same partial sums in the same order, so logits do not depend on the CPU.
 */
#define LOGIT_LANES 16
RT_INLINE_BODY float dot_bf16_body(const uint16_t *restrict w, const float *restrict x, int32_t n) {
    float acc[LOGIT_LANES] = {0};
    int32_t i = 0;
    for (; i + LOGIT_LANES <= n; i += LOGIT_LANES)
        for (int j = 0; j < LOGIT_LANES; j++) {
            uint32_t u = (uint32_t)w[i + j] << 16;
            float f;
            memcpy(&f, &u, 4);
            acc[j] += x[i + j] * f;
        }
    for (int j = 0; i < n; i++, j++) acc[j] += x[i] * rsr_bf16_to_f32(w[i]);
    for (int width = LOGIT_LANES / 2; width > 0; width /= 2)
        for (int j = 0; j < width; j++) acc[j] += acc[j + width];
    return acc[0];
}
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl"))) static float dot_bf16_avx512(const uint16_t *w, const float *x,
                                                                                  int32_t n) {
    return dot_bf16_body(w, x, n);
}
__attribute__((target("avx2"))) static float dot_bf16_avx2(const uint16_t *w, const float *x, int32_t n) {
    return dot_bf16_body(w, x, n);
}
#endif

static float dot_bf16(const uint16_t *w, const float *x, int32_t n) {
#if defined(__x86_64__)
    const rt_isa isa = rt_cpu_isa();
    if (rt_isa_avx512(isa)) return dot_bf16_avx512(w, x, n);
    if (isa == RT_ISA_AVX2) return dot_bf16_avx2(w, x, n);
#endif
    return dot_bf16_body(w, x, n);
}

/* Row v's exact logit. A few rows (`few`: the candidates of a certified pick) are read from the
 * file where the copy left the head out (rt_row), so they never join the process's resident set;
 * every row (full logits) is read through the mapping. */
static float dot_row_of(const rsr_model *m, int32_t v, const float *x, bool few) {
    const rsr_artifact *a = m->a;
    const int32_t dt = a->lm_head_dtype;
    const size_t bytes = rsr_dtype_bytes(dt, (size_t)a->hidden);
    _Alignas(64) uint8_t buf[RT_ROW_MAX];
    const uint8_t *r = few ? rt_row(m, a->lm_head + (size_t)v * bytes, bytes, buf, sizeof buf)
                           : m->rows + a->lm_head + (size_t)v * bytes;
    if (dt == RSR_DTYPE_BF16) return dot_bf16((const uint16_t *)r, x, a->hidden);
    float dot = 0;
    const uint32_t qk = rsr_block_weights(dt);
    if (qk) { /* group-scaled blocks: each decoded, the products in the same order */
        float w[128];
        for (int32_t i = 0; i < a->hidden; i += (int32_t)qk, r += rsr_block_bytes(dt)) {
            rsr_blocks_floats(dt, r, qk, w);
            for (uint32_t j = 0; j < qk; j++) dot += x[i + (int32_t)j] * w[j];
        }
        return dot;
    }
    for (int32_t i = 0; i < a->hidden; i++) dot += x[i] * load_elem(r, dt, i);
    return dot;
}
static float dot_row(const rsr_model *m, int32_t v, const float *x) { return dot_row_of(m, v, x, false); }

RT_TEST_HOOK int head_bound_weakened_for_tests;

/* ---- the int8 copy, made at open ---- */

/* Row v's n values as floats: f32, bf16, or f16 converted without branches (exact for normal
 * and subnormal values; inf and NaN become NaN, which q8_row refuses), so the loop vectorises. */
RT_INLINE_BODY void row_floats(const uint8_t *restrict r, int32_t dtype, int32_t n, float *restrict w) {
    if (rsr_block_weights(dtype)) { /* group-scaled blocks (their scales checked finite by rsrc) */
        rsr_blocks_floats(dtype, r, (size_t)n, w);
        return;
    }
    if (dtype == RSR_DTYPE_F32) {
        memcpy(w, r, sizeof *w * (size_t)n);
        return;
    }
    const uint16_t *h = (const uint16_t *)r;
    for (int32_t i = 0; i < n; i++) {
        uint32_t u, bits = h[i];
        if (dtype == RSR_DTYPE_BF16) {
            u = bits << 16;
        } else {
            float f;
            uint32_t m = (bits & 0x7fffu) << 13;
            memcpy(&f, &m, 4);
            f *= 0x1p112f;
            memcpy(&u, &f, 4);
            u = ((bits & 0x7c00u) == 0x7c00u ? 0x7fc00000u : u) | (bits & 0x8000u) << 16;
        }
        memcpy(&w[i], &u, 4);
    }
}

/* Row v as the header's rule says: scale = max|w|/127 as a float, q = w/scale rounded and clamped
 * to ±127 (stored q + 128, padding 128), err = max|w − scale·q| computed exactly in double (scale·q
 * has at most 32 significant bits) and rounded up to a float. False when the row holds a value
 * that is not finite. */
RT_INLINE_BODY bool q8_row_body(const float *restrict w, int32_t n, int32_t stride, uint8_t *restrict q, float *scale,
                                float *err) {
    float amax = 0;
    bool finite = true;
    for (int32_t i = 0; i < n; i++) {
        float a = fabsf(w[i]);
        finite &= a <= FLT_MAX;
        amax = a > amax ? a : amax;
    }
    const float s = amax / 127.0f, inv = s > 0 ? 1 / s : 0;
    double e = 0;
    memset(q, 128, (size_t)stride);
    for (int32_t i = 0; i < n; i++) {
        float v = rintf(w[i] * inv);
        v = v < -127 ? -127 : v > 127 ? 127 : v;
        q[i] = (uint8_t)(int32_t)(v + 128);
        double d = fabs((double)w[i] - (double)s * (double)v);
        e = d > e ? d : e;
    }
    float ef = (float)e;
    if ((double)ef < e) ef = nextafterf(ef, INFINITY);
    *scale = s, *err = ef;
    return finite && isfinite(ef);
}

/* Rows [0, nv) of a block: each row's floats into w (n of them), then its int8 row. */
RT_INLINE_BODY bool q8_block_body(const uint8_t *rows, int32_t dtype, size_t row_bytes, size_t nv, int32_t n,
                                  int32_t stride, float *w, uint8_t *q, float *scale, float *err) {
    bool ok = true;
    for (size_t v = 0; v < nv; v++) {
        row_floats(rows + v * row_bytes, dtype, n, w);
        ok &= q8_row_body(w, n, stride, q + v * (size_t)stride, &scale[v], &err[v]);
    }
    return ok;
}
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl"))) static bool q8_block_avx512(const uint8_t *rows, int32_t dtype,
                                                                                 size_t row_bytes, size_t nv, int32_t n,
                                                                                 int32_t stride, float *w, uint8_t *q,
                                                                                 float *scale, float *err) {
    return q8_block_body(rows, dtype, row_bytes, nv, n, stride, w, q, scale, err);
}
__attribute__((target("avx2"))) static bool q8_block_avx2(const uint8_t *rows, int32_t dtype, size_t row_bytes,
                                                          size_t nv, int32_t n, int32_t stride, float *w, uint8_t *q,
                                                          float *scale, float *err) {
    return q8_block_body(rows, dtype, row_bytes, nv, n, stride, w, q, scale, err);
}
#endif
static bool q8_block(const uint8_t *rows, int32_t dtype, size_t row_bytes, size_t nv, int32_t n, int32_t stride,
                     float *w, uint8_t *q, float *scale, float *err) {
#if defined(__x86_64__)
    const rt_isa isa = rt_cpu_isa();
    if (rt_isa_avx512(isa)) return q8_block_avx512(rows, dtype, row_bytes, nv, n, stride, w, q, scale, err);
    if (isa == RT_ISA_AVX2) return q8_block_avx2(rows, dtype, row_bytes, nv, n, stride, w, q, scale, err);
#endif
    return q8_block_body(rows, dtype, row_bytes, nv, n, stride, w, q, scale, err);
}

#define Q8_BLOCK 512                  /* rows read from the file at a time by each thread */
#define Q8_PARALLEL ((size_t)1 << 25) /* a smaller head is made by the calling thread alone (well under 0.1 s) */

/* ---- the codes head (the header comment), made at the first certified pick ---- */

/* The copy's layout (family.h's rt_head_x): blocks a group of 256 weights, and a row's bytes. */
static int32_t hc_blocks_a_group(int32_t dtype) { return 256 / (int32_t)rsr_block_weights(dtype); }
static size_t hc_row_bytes(int32_t dtype, int32_t groups) {
    const size_t b = 64 * (size_t)groups + 4 * ((size_t)groups * (size_t)hc_blocks_a_group(dtype) + 4);
    return (b + 63) / 64 * 64; /* 4 scales past the last group's: the kernel loads 4 at a time */
}
static int32_t hc_cmax(int32_t dtype) { return dtype == RSR_DTYPE_PQ2_0 || dtype == RSR_DTYPE_Q2_0 ? 2 : 1; }

/* Rows [0, nv) of the file's blocks into the copy's rows; false when a scale is not finite. */
static bool hc_rows(const uint8_t *blocks, int32_t dtype, int32_t n, int32_t groups, size_t nv, uint8_t *out,
                    float *maxd) {
    const int32_t qk = (int32_t)rsr_block_weights(dtype), q4 = qk / 4, bag = hc_blocks_a_group(dtype);
    const size_t in_row = rsr_dtype_bytes(dtype, (size_t)n), out_row = hc_row_bytes(dtype, groups);
    bool ok = true;
    uint8_t c[128];
    for (size_t v = 0; v < nv; v++) {
        const uint8_t *r = blocks + v * in_row;
        uint8_t *codes = out + v * out_row;
        float *scale = (float *)(codes + 64 * (size_t)groups), md = 0;
        memset(codes, 0, out_row); /* padding blocks: codes 0 and scale 0, against x's zeros */
        for (int32_t b = 0; b < n / qk; b++, r += rsr_block_bytes(dtype)) {
            const float d = rsr_block_scale(dtype, r);
            ok &= isfinite(d);
            md = fabsf(d) > md ? fabsf(d) : md;
            scale[b] = d;
            rsr_block_codes(dtype, r, c);
            uint8_t *g = codes + 64 * (size_t)(b / bag) + (size_t)(b % bag) * (size_t)q4;
            for (int32_t f = 0; f < 4; f++) /* weight f·q4 + i in bits 2f of byte i (no division a weight) */
                for (int32_t i = 0; i < q4; i++) g[i] |= (uint8_t)(c[f * q4 + i] << (2 * f));
        }
        maxd[v] = md;
    }
    return ok;
}

/* The codes head's kernel on this CPU (AVX-512 VNNI, or AVX2: the same bits), or NULL. */
typedef float (*hc_dot_fn)(const uint8_t *, const float *, const rt_head_x *);
static hc_dot_fn hc_dot(void) {
#if defined(__x86_64__)
    const rt_isa isa = rt_cpu_isa();
    if (isa == RT_ISA_AVX512_VNNI) return rt_head_dot_codes_vnni;
    if (isa == RT_ISA_AVX512 || isa == RT_ISA_AVX2) return rt_head_dot_codes_avx2;
#endif
    return NULL;
}

/* The rows [v0, v0 + nv) of the head (rows: the file's bytes) into a copy at mem of V rows of
 * `stride` bytes followed by per-row floats; w: a row's n floats of scratch. False gives it up. */
typedef bool (*copy_fill)(const rsr_model *m, const uint8_t *rows, size_t v0, size_t nv, uint8_t *mem, size_t stride,
                          float *w);

static bool q8_fill(const rsr_model *m, const uint8_t *rows, size_t v0, size_t nv, uint8_t *mem, size_t stride,
                    float *w) {
    const rsr_artifact *a = m->a;
    const size_t V = (size_t)a->vocab;
    float *scale = (float *)(mem + V * stride), *err = scale + V;
    return q8_block(rows, a->lm_head_dtype, rsr_dtype_bytes(a->lm_head_dtype, (size_t)a->hidden), nv, a->hidden,
                    (int32_t)stride, w, mem + v0 * stride, &scale[v0], &err[v0]);
}
static bool hc_fill(const rsr_model *m, const uint8_t *rows, size_t v0, size_t nv, uint8_t *mem, size_t stride,
                    float *w) {
    const rsr_artifact *a = m->a;
    (void)w;
    return hc_rows(rows, a->lm_head_dtype, a->hidden, (a->hidden + 255) / 256, nv, mem + v0 * stride,
                   (float *)(mem + (size_t)a->vocab * stride) + v0);
}

/* A copy of the head made from its rows by the model's threads, Q8_BLOCK rows at a time read from
 * the file (rt_row), `floats` floats a row after the rows, read-only once made: the anonymous
 * memory (*size bytes), or NULL. */
static uint8_t *head_copy(rsr_model *m, size_t stride, size_t floats, copy_fill fill, size_t *size) {
    const rsr_artifact *a = m->a;
    const size_t V = (size_t)a->vocab, n = (size_t)a->hidden, huge = (size_t)2 << 20;
    const size_t row_bytes = rsr_dtype_bytes(a->lm_head_dtype, n);
    *size = (V * stride + floats * 4 * V + huge - 1) / huge * huge;
    uint8_t *mem = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return NULL;
    (void)madvise(mem, *size, MADV_HUGEPAGE);
    int ok = 1;
#pragma omp parallel num_threads(rt_team_of(m)) reduction(&& : ok) if (V * n >= Q8_PARALLEL)
    {
        uint8_t *rows = malloc(Q8_BLOCK * row_bytes);
        float *w = malloc(sizeof *w * n);
        ok = rows && w;
#pragma omp for schedule(dynamic, 1)
        for (size_t b = 0; b < (V + Q8_BLOCK - 1) / Q8_BLOCK; b++) {
            const size_t v0 = b * Q8_BLOCK, nv = V - v0 < Q8_BLOCK ? V - v0 : Q8_BLOCK;
            if (!ok) continue;
            const uint8_t *r = rt_row(m, a->lm_head + v0 * row_bytes, nv * row_bytes, rows, Q8_BLOCK * row_bytes);
            ok &= fill(m, r, v0, nv, mem, stride, w);
        }
        free(rows), free(w);
    }
    if (!ok || mprotect(mem, *size, PROT_READ) != 0) {
        munmap(mem, *size);
        return NULL;
    }
    return mem;
}

/* The int8 copy, or for a head in blocks where this CPU has the codes head's kernel, the codes
 * head (m->hc); neither for an artifact compiled with --no-greedy-head. */
static void q8_make(rsr_model *m) {
    const rsr_artifact *a = m->a;
    const size_t V = (size_t)a->vocab;
    m->q8 = NULL, m->hc = NULL;
    if (a->head_q8 != RSR_NO_TENSOR) { /* stored by an older rsrc */
        m->q8 = m->blob + a->head_q8;
        m->q8_scale = (const float *)(m->blob + a->head_q8_scale),
        m->q8_err = (const float *)(m->blob + a->head_q8_err);
        return;
    }
    if (a->head_q8_stride <= 0) return; /* compiled with --no-greedy-head */
    if (hc_dot() && rsr_block_weights(a->lm_head_dtype)) {
        const int32_t groups = (a->hidden + 255) / 256;
        const size_t stride = hc_row_bytes(a->lm_head_dtype, groups);
        uint8_t *mem = head_copy(m, stride, 1, hc_fill, &m->q8_made_size);
        if (mem) {
            m->hc = m->q8_made = mem, m->hc_maxd = (const float *)(mem + V * stride);
            m->hc_stride = stride, m->hc_groups = groups;
            return;
        }
    }
    const size_t stride = (size_t)a->head_q8_stride;
    uint8_t *mem = head_copy(m, stride, 2, q8_fill, &m->q8_made_size);
    if (!mem) return;
    m->q8 = m->q8_made = mem, m->q8_scale = (const float *)(mem + V * stride), m->q8_err = m->q8_scale + V;
}

bool rt_head_q8_ready(const rsr_model *cm) {
    rsr_model *m = (rsr_model *)cm; /* made once, then only read */
    if (!__atomic_load_n(&m->q8_state, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&m->q8_lock);
        if (!m->q8_state) {
            q8_make(m);
            __atomic_store_n(&m->q8_state, 1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&m->q8_lock);
    }
    return m->q8 != NULL || m->hc != NULL;
}

static int32_t threads_of(const rsr_session *s) { return rt_team_of(s->model); }

void rt_lm_head_logits(rsr_session *s, const float *x, float *logits) {
    const rsr_artifact *a = s->model->a;
#pragma omp parallel for schedule(static) num_threads(threads_of(s))
    for (int32_t v = 0; v < a->vocab; v++) logits[v] = dot_row(s->model, v, x);
}

/* ---- the int8 head ---- */

#define HEAD_ROWS RT_HEAD_ROWS /* the rows of a block of rt_head_dot_q8_vnni_rows */

static int32_t dot_q8_scalar(const uint8_t *w, const int16_t *x, int32_t n) {
    int32_t acc = 0;
    for (int32_t i = 0; i < n; i++) acc += (int32_t)w[i] * x[i];
    return acc;
}

struct rt_head_scratch {
    int16_t *xq;               /* [stride] */
    int8_t *xh, *xl;           /* the codes head's x (family.h's rt_head_x): [groups·256] each */
    int32_t *sl;               /* [groups·16] */
    double *approx, *bound;    /* [vocab] */
    int32_t *cand, *ids;       /* [vocab]: sampling's candidate rows; the sampler's scratch */
    float *cand_logit, *probs; /* [vocab]: their exact logits; the sampler's scratch */
    uint8_t *pen;              /* [vocab]: the rows the repetition penalty applies to (zero between calls) */
    bool skip_pass;            /* the next draw computes every row exactly (sample_skips_pass) */
    int32_t (*dot)(const uint8_t *, const int16_t *, int32_t);
    /* HEAD_ROWS rows with several vectors at once where the family has it (rt_head_dot_q8_vnni_rows), or NULL */
    void (*dot_rows)(const uint8_t *, int32_t, const int16_t *const *, int32_t, int32_t, int32_t *);
};

static void scratch_free(struct rt_head_scratch *h) {
    if (h) free(h->xq), free(h->xh), free(h->xl), free(h->sl), free(h->approx), free(h->bound), free(h);
}

void rt_lm_head_free(rsr_session *s) {
    for (int32_t i = 0; i < s->n_head_rows; i++) scratch_free(s->head_rows[i]);
    free(s->head_rows), s->head_rows = NULL, s->n_head_rows = 0;
    if (!s->head) return;
    free(s->head->cand), free(s->head->ids), free(s->head->cand_logit), free(s->head->probs);
    free(s->head->pen);
    scratch_free(s->head); /* and what a greedy pick reads */
    s->head = NULL;
}

/* A scratch with what a greedy pick reads (xq, approx, bound), or NULL when out of memory. */
static struct rt_head_scratch *scratch_greedy(const rsr_artifact *a) {
    struct rt_head_scratch *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->xq = calloc((size_t)(a->head_q8_stride > 0 ? a->head_q8_stride : 1), sizeof *h->xq);
    h->approx = malloc(sizeof(double) * (size_t)a->vocab);
    h->bound = malloc(sizeof(double) * (size_t)a->vocab);
    const size_t groups = ((size_t)a->hidden + 255) / 256;
    const bool blocks = rsr_block_weights(a->lm_head_dtype) != 0; /* the codes head's x, should the model make it */
    if (blocks)
        h->xh = malloc(256 * groups), h->xl = malloc(256 * groups), h->sl = malloc(sizeof(int32_t) * 16 * groups);
    if (h->xq && h->approx && h->bound && (!blocks || (h->xh && h->xl && h->sl))) return h;
    scratch_free(h);
    return NULL;
}

static rsr_status head_scratch(rsr_session *s) {
    if (s->head) return RSR_OK;
    const rsr_artifact *a = s->model->a;
    struct rt_head_scratch *h = scratch_greedy(a);
    if (h) {
        h->cand = malloc(sizeof(int32_t) * (size_t)a->vocab);
        h->ids = malloc(sizeof(int32_t) * (size_t)a->vocab);
        h->cand_logit = malloc(sizeof(float) * (size_t)a->vocab);
        h->probs = malloc(sizeof(float) * (size_t)a->vocab);
        h->pen = calloc((size_t)a->vocab, 1);
    }
    s->head = h;
    if (!h || !h->cand || !h->ids || !h->cand_logit || !h->probs || !h->pen) {
        rt_lm_head_free(s);
        return rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for the greedy head");
    }
#if defined(__x86_64__)
    const rt_isa isa = rt_cpu_isa();
    h->dot = isa == RT_ISA_AVX512_VNNI ? rt_head_dot_q8_vnni
             : isa != RT_ISA_PORTABLE  ? rt_head_dot_q8_avx2
                                       : dot_q8_scalar;
    if (isa == RT_ISA_AVX512_VNNI) h->dot_rows = rt_head_dot_q8_vnni_rows;
#else
    h->dot = dot_q8_scalar; /* off x86 the portable family is the only one */
#endif
    return RSR_OK;
}

rsr_status rt_lm_head_reserve(rsr_session *s) { return head_scratch(s); }

void rt_lm_head_forget(rsr_session *s) {
    if (s->head) s->head->skip_pass = false; /* a reset session draws as a fresh one, tails included */
}

/* -1 when a logit is NaN (a finite state whose products overflow: +inf and -inf summed). */
static int32_t full_argmax(const rsr_model *m, const float *x) {
    int32_t best = 0;
    float best_logit = dot_row(m, 0, x);
    bool nan = isnan(best_logit);
    for (int32_t v = 1; v < m->a->vocab; v++) {
        float l = dot_row(m, v, x);
        nan |= isnan(l);
        if (rt_logit_better(l, best_logit)) best = v, best_logit = l;
    }
    return nan ? -1 : best;
}

/* One vector's int8 pass: x quantised to int16 (x = xq/xs + d), then approx[v] and bound[v] of
 * every row (the header comment) into its session's scratch, the best approx − bound and the
 * largest partial sum any row's logit could reach. */
typedef struct head_x {
    rsr_session *s;
    const float *x;
    struct rt_head_scratch *h; /* its xq, approx and bound: the session's, or a row's of several (head_rows) */
    int have;                  /* 0: no int8 head, or x all zero or not finite, or logits that could overflow */
    double xs, d_l1, x_l1, best_lo, largest;
    double fp32_dot; /* n·2^-23·‖x‖₁: the fp32 logit's rounding term per unit of max|w| */
    int32_t sum_xq;
    rt_head_x hx; /* the codes head's x (p->s->model->hc) */
} head_x;

/* x's quantisation (xq) laid out as the codes head's planes (family.h's rt_head_x) */
static void hc_prepare(head_x *p, const int16_t *xq, int32_t n) {
    const rsr_model *m = p->s->model;
    const int32_t dt = m->a->lm_head_dtype, q4 = (int32_t)rsr_block_weights(dt) / 4, bag = hc_blocks_a_group(dt);
    struct rt_head_scratch *h = p->h;
    rt_head_x *x = &p->hx;
    *x = (rt_head_x){.hi = h->xh, .lo = h->xl, .sl = h->sl, .groups = m->hc_groups, .blocks_a_group = bag};
    for (int l = 0; l < 16; l++) x->lane_block[l] = 4 * l / q4;
    memset(h->sl, 0, sizeof(int32_t) * 16 * (size_t)x->groups);
    for (int32_t g = 0; g < x->groups; g++)
        for (int32_t t = 0; t < 64; t++)
            for (int32_t pl = 0; pl < 4; pl++) {
                const int32_t j = 256 * g + (t / q4) * 4 * q4 + pl * q4 + t % q4, v = j < n ? xq[j] : 0;
                h->xh[256 * g + 64 * pl + t] = (int8_t)(v >> 7); /* arithmetic: xq = 128·hi + lo */
                h->xl[256 * g + 64 * pl + t] = (int8_t)(v & 127);
                h->sl[16 * g + t / 4] += v;
            }
}

/* Quantises p->x into its scratch; p->have = 0 when there is nothing to bound. */
static rsr_status head_prepare(head_x *p) {
    const rsr_artifact *a = p->s->model->a;
    int32_t n = a->hidden;
    double x_l1 = 0, amax = 0;
    for (int32_t i = 0; i < n; i++) x_l1 += fabs((double)p->x[i]), amax = fmax(amax, fabs((double)p->x[i]));
    p->have = isfinite(x_l1) && amax != 0 && rt_head_q8_ready(p->s->model);
    p->x_l1 = x_l1, p->best_lo = -INFINITY, p->largest = 0;
    if (!p->have) return RSR_OK;
    rsr_status st = head_scratch(p->s);
    if (st != RSR_OK) return st;
    if (!p->h) p->h = p->s->head;
    /* x = xq/xs + d, |xq| <= xmax where 255·xmax·stride stays below 2^31 (the codes head: xq's 15
     * bits split into two int8 halves) */
    int16_t *xq = p->h->xq;
    const bool codes = p->s->model->hc != NULL;
    double xmax = codes ? 16383 : fmin(32767, floor(2147483647.0 / (255.0 * a->head_q8_stride)));
    double xs = xmax / amax, d_l1 = 0;
    int32_t sum_xq = 0;
    for (int32_t i = 0; i < n; i++) {
        double q = fmin(fmax(nearbyint((double)p->x[i] * xs), -xmax), xmax);
        xq[i] = (int16_t)q;
        sum_xq += (int32_t)q;
        d_l1 += fabs((double)p->x[i] - q / xs);
    }
    p->xs = xs, p->d_l1 = d_l1, p->sum_xq = sum_xq;
    if (codes) hc_prepare(p, xq, n);
    return RSR_OK;
}

#define HEAD_PASS_MAX RSR_BATCH_MAX

/* A thread's share of a pass into its vectors: the best approx − bound, the largest partial sum. */
static void pass_merge(head_x *const *px, int32_t k, const double *lo, const double *big) {
#pragma omp critical
    for (int32_t j = 0; j < k; j++) {
        if (lo[j] > px[j]->best_lo) px[j]->best_lo = lo[j];
        px[j]->largest = fmax(px[j]->largest, big[j]);
    }
}

/* head_pass on the codes head: each row read once for the k vectors (from L1 for all but the
 * first), each vector's values those of a pass of its own. */
static void hc_pass(const rsr_model *m, head_x *const *px, int32_t k, double weak) {
    const rsr_artifact *a = m->a;
    const double widen = (1 + 1e-6) * weak, cmax = hc_cmax(a->lm_head_dtype);
    const double lanes = (m->hc_groups + 5) * 0x1p-23; /* γ of the header comment */
    const hc_dot_fn dot = hc_dot();
#pragma omp parallel num_threads(rt_team_of(m))
    {
        double lo[HEAD_PASS_MAX], big[HEAD_PASS_MAX];
        for (int32_t j = 0; j < k; j++) lo[j] = -INFINITY, big[j] = 0;
#pragma omp for schedule(static)
        for (int32_t v = 0; v < a->vocab; v++) {
            const uint8_t *row = m->hc + (size_t)v * m->hc_stride;
            const float *scales = (const float *)(row + 64 * (size_t)m->hc_groups);
            const double wmax = cmax * m->hc_maxd[v];
            for (int32_t j = 0; j < k; j++) {
                const head_x *p = px[j];
                const double approx = (double)dot(row, scales, &p->hx) / p->xs;
                const double bound =
                    wmax * (p->d_l1 + p->fp32_dot + (weak < 1 ? 0 : lanes * (p->x_l1 + p->d_l1))) * widen + 1e-30;
                p->h->approx[v] = approx;
                p->h->bound[v] = bound;
                if (approx - bound > lo[j]) lo[j] = approx - bound;
                big[j] = fmax(big[j], wmax * p->x_l1);
            }
        }
        pass_merge(px, k, lo, big);
    }
}

/* head_pass on the int8 copy */
static void q8_pass(const rsr_model *m, head_x *const *px, int32_t k, double weak) {
    const rsr_artifact *a = m->a;
    const int32_t stride = a->head_q8_stride;
    const double widen = (1 + 1e-6) * weak;
    const float *scale = m->q8_scale, *err = m->q8_err;
    const uint8_t *q8 = m->q8;
    int32_t (*dot)(const uint8_t *, const int16_t *, int32_t) = px[0]->s->head->dot;
    void (*dot_rows)(const uint8_t *, int32_t, const int16_t *const *, int32_t, int32_t, int32_t *) =
        px[0]->s->head->dot_rows;
    const int16_t *xqs[HEAD_PASS_MAX];
    for (int32_t j = 0; j < k; j++) xqs[j] = px[j]->h->xq;
    /* with VNNI and several vectors, rows go in blocks of HEAD_ROWS (rt_head_dot_q8_vnni_rows); the
     * integer sums are the same either way */
    const int blocked = dot_rows && k > 1;
    const int32_t step = blocked ? HEAD_ROWS : 1, blocks = (a->vocab + step - 1) / step;
#pragma omp parallel num_threads(rt_team_of(m))
    {
        double lo[HEAD_PASS_MAX], big[HEAD_PASS_MAX];
        int32_t sums[HEAD_ROWS * HEAD_PASS_MAX];
        for (int32_t j = 0; j < k; j++) lo[j] = -INFINITY, big[j] = 0;
#pragma omp for schedule(static)
        for (int32_t blk = 0; blk < blocks; blk++) {
            const int32_t v0 = blk * step, nr = a->vocab - v0 < step ? a->vocab - v0 : step;
            if (blocked && nr == HEAD_ROWS)
                dot_rows(q8 + (size_t)v0 * (size_t)stride, stride, xqs, k, stride, sums);
            else
                for (int32_t r = 0; r < nr; r++)
                    for (int32_t j = 0; j < k; j++)
                        sums[r * k + j] = dot(q8 + (size_t)(v0 + r) * (size_t)stride, xqs[j], stride);
            for (int32_t r = 0; r < nr; r++) {
                const int32_t v = v0 + r;
                double sc = scale[v], e = err[v];
                for (int32_t j = 0; j < k; j++) {
                    const head_x *p = px[j];
                    struct rt_head_scratch *h = p->h;
                    int32_t isum = sums[r * k + j] - 128 * p->sum_xq;
                    double approx = sc / p->xs * isum;
                    double bound = (sc * 127 * p->d_l1 + e * p->x_l1 + (127 * sc + e) * p->fp32_dot) * widen + 1e-30;
                    h->approx[v] = approx;
                    h->bound[v] = bound;
                    if (approx - bound > lo[j]) lo[j] = approx - bound;
                    big[j] = fmax(big[j], (127 * sc + e) * p->x_l1); /* no partial sum of this row's logit exceeds it */
                }
            }
        }
        pass_merge(px, k, lo, big);
    }
}

/* The pass of k prepared vectors (have set) together, on the codes head or the int8 copy: each
 * row is read once for all of them, and each vector gets exactly the values a pass of its own
 * gives. */
static void head_pass(const rsr_model *m, head_x *const *px, int32_t k) {
    const int32_t n = m->a->hidden;
    /* tests/unit/test_head.c weakens the bound through head_bound_weakened_for_tests (half of
     * it, without the fp32 terms) and must then fail: its cases are tight enough to notice */
    const double weak = head_bound_weakened_for_tests ? 0.5 : 1;
    for (int32_t j = 0; j < k; j++) px[j]->fp32_dot = weak < 1 ? 0 : (double)n * 0x1p-23 * px[j]->x_l1;
    if (m->hc)
        hc_pass(m, px, k, weak);
    else
        q8_pass(m, px, k, weak);
    /* where an fp32 logit could overflow (or its rounding term stop bounding it), nothing is
     * certified: the callers take the exact logits */
    for (int32_t j = 0; j < k; j++)
        if (!(px[j]->largest * (1 + 2 * (double)n * 0x1p-23) < 0x1p126)) px[j]->have = 0;
}

/* approx[v] and bound[v] of every row for x in s->head (head_prepare, head_pass alone). */
static rsr_status approx_rows(rsr_session *s, const float *x, head_x *p) {
    *p = (head_x){.s = s, .x = x};
    rsr_status st = head_prepare(p);
    if (st == RSR_OK && p->have) head_pass(s->model, &p, 1);
    return st;
}

/* The greedy token from a finished pass: only rows that could reach best_lo are computed
 * exactly; the first maximum wins. */
static int32_t pick_greedy(const head_x *p) {
    const rsr_model *m = p->s->model;
    rsr_head_stats *hs = &p->s->head_stats;
    hs->picks++;
    if (!p->have) { /* no int8 head, or nothing it could bound */
        hs->exact_rows += m->a->vocab;
        return full_argmax(m, p->x);
    }
    const struct rt_head_scratch *h = p->h;
    int32_t best = -1;
    float best_logit = 0;
    hs->passes++;
    int32_t n = 0;
    bool nan = false;
    for (int32_t v = 0; v < m->a->vocab; v++) {
        if (h->approx[v] + h->bound[v] < p->best_lo) continue;
        float l = dot_row_of(m, v, p->x, n++ < RT_FEW_ROWS);
        hs->exact_rows++;
        nan |= isnan(l);
        if (best < 0 || rt_logit_better(l, best_logit)) best = v, best_logit = l;
    }
    return nan ? -1 : best;
}

/* pick_greedy's -1 as the session's error */
static rsr_status greedy_or_refuse(rsr_session *s, int32_t pick, int32_t *token) {
    if (pick >= 0) return *token = pick, RSR_OK;
    return rt_set_error(s->err, RSR_ERR_INTERNAL,
                        "a logit is NaN (the head's products overflowed): the model's weights or activations are out "
                        "of range, so no token can be chosen");
}

/* Whether the hidden state x is finite (a NaN or infinity leaves no token to choose). */
static bool finite_state(const rsr_session *s, const float *x) {
    const int32_t n = s->model->a->hidden;
    float probe = 0; /* 0 for finite x; NaN once any is NaN or infinite (inf * 0) */
    for (int32_t i = 0; i < n; i++) probe += x[i] * 0.0f;
    return probe == 0;
}

/* A hidden state holding NaN or infinity has no token to choose: every comparison with a NaN
 * logit is false, so an argmax would give token 0 without a word. Refused instead. */
static rsr_status finite_or_refuse(rsr_session *s, const float *x) {
    if (finite_state(s, x)) return RSR_OK;
    const int32_t n = s->model->a->hidden;
    int32_t i = 0;
    while (i < n && isfinite(x[i])) i++;
    return rt_set_error(s->err, RSR_ERR_INTERNAL,
                        "the model's last hidden state is not finite (%g at element %d): its weights or activations "
                        "overflowed, so no token can be chosen",
                        i < n ? (double)x[i] : 0.0, i);
}

rsr_status rt_lm_head_argmax(rsr_session *s, const float *x, int32_t *token) {
    head_x p;
    rsr_status st = finite_or_refuse(s, x);
    if (st != RSR_OK) return st;
    st = approx_rows(s, x, &p);
    return st == RSR_OK ? greedy_or_refuse(s, pick_greedy(&p), token) : st;
}

/* n rows' scratches beyond the session's (row 0's): xq, approx and bound, all a greedy pick reads. */
static rsr_status head_rows(rsr_session *s, int32_t n) {
    if (n - 1 <= s->n_head_rows) return RSR_OK;
    const rsr_artifact *a = s->model->a;
    struct rt_head_scratch **g = realloc(s->head_rows, sizeof *g * (size_t)(n - 1));
    if (!g) return rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for the greedy head of %d rows", n);
    s->head_rows = g;
    while (s->n_head_rows < n - 1) {
        struct rt_head_scratch *h = scratch_greedy(a);
        if (!h) return rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for the greedy head of %d rows", n);
        s->head_rows[s->n_head_rows++] = h;
    }
    return RSR_OK;
}

/* The certified greedy token of each of n vectors of one session (x[i·stride]), each as its own
 * rt_lm_head_argmax would pick it, from one int8 pass over the head for them all (a draft's
 * verification: the head read once, not once a row). A row whose state is not finite, or whose
 * logits hold a NaN, gets -1: whether that is an error depends on whether its position is reached
 * (rsr_session_eval_draft). */
rsr_status rt_lm_head_argmax_rows(rsr_session *s, const float *x, size_t stride, int32_t n, int32_t *tokens) {
    head_x px[HEAD_PASS_MAX], *pass[HEAD_PASS_MAX];
    rsr_status st = n <= HEAD_PASS_MAX ? head_scratch(s) : RSR_ERR_INVALID_ARGUMENT;
    if (st == RSR_OK) st = head_rows(s, n);
    if (st != RSR_OK) return st;
    int32_t npass = 0;
    for (int32_t i = 0; i < n; i++) {
        px[i] = (head_x){.s = s, .x = x + (size_t)i * stride, .h = i ? s->head_rows[i - 1] : s->head};
        tokens[i] = finite_state(s, px[i].x) ? 0 : -1;
        if (tokens[i] < 0) continue;
        if ((st = head_prepare(&px[i])) != RSR_OK) return st;
        if (px[i].have) pass[npass++] = &px[i];
    }
    if (npass) head_pass(s->model, pass, npass);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] >= 0) tokens[i] = pick_greedy(&px[i]);
    return RSR_OK;
}

/*
 * Sampling at a temperature T from the rows that could matter. With L = max(approx − bound) (no
 * exact logit maximum is below it) and u[v] = approx[v] + bound[v] (no exact logit of row v is
 * above it), the exact probability of row v is at most exp((u[v] − L)/T): the softmax's
 * denominator is at least 1 relative to its maximum. Rows with (u[v] − L)/T >= ln(2^-24 / V) are
 * the candidates and get their exact fp32 logit (dot_row, as rsr_session_eval); each other row
 * has probability below 2^-24 / V, and their sum, computed here, bounds the exact mass outside
 * the candidates. The sampler then draws from the candidates' exact logits. At T = 0 (greedy
 * under a repetition penalty) the candidates are the rows that could reach L, and nothing else
 * has any mass.
 *
 * The sampler's own cut (rt_sample) leaves out rows of weight below 2^-24 / V relative to the
 * largest exact logit M >= L. The candidates' test is one factor e looser, (u − L)/T >= ln(2^-24
 * / V) − 1, so every row the cut keeps (l >= M + T·ln(2^-24 / V), and u >= l) is a candidate with
 * a margin far above the roundings of either test: the sampler sees the same rows, in the same
 * order, with the same sums as on the full logits, and draws the same token.
 *
 * The repetition penalty maps each penalised row's logit by a non-decreasing function, so it
 * maps the row's interval [approx − bound, approx + bound] to one holding the penalised logit
 * (widened by 2^-23 relative for the rounding of the map in fp32 and in double); L is then taken
 * over the mapped intervals.
 */
static double penalise_bounds(const rsr_sampler_params *sp, struct rt_head_scratch *h, int32_t V) {
    const double rp = sp->repeat_penalty;
    for (int32_t j = 0; j < sp->n_recent; j++) {
        int32_t v = sp->recent[j];
        if (v < 0 || v >= V || h->pen[v]) continue;
        h->pen[v] = 1;
        double lo = h->approx[v] - h->bound[v], hi = h->approx[v] + h->bound[v];
        lo = lo > 0 ? lo / rp : lo * rp, hi = hi > 0 ? hi / rp : hi * rp;
        lo -= fabs(lo) * 0x1p-23, hi += fabs(hi) * 0x1p-23;
        h->approx[v] = 0.5 * (lo + hi), h->bound[v] = 0.5 * (hi - lo);
    }
    double best_lo = -INFINITY;
    for (int32_t v = 0; v < V; v++) best_lo = fmax(best_lo, h->approx[v] - h->bound[v]);
    return best_lo;
}

/*
 * Whether a draw reads the int8 copy first. Its pass reads half the bf16 head's bytes, so it pays
 * only where it leaves out more than half the rows: with flat logits (every row likely at this
 * temperature) nothing can be left out, and the pass and the candidates' rows together read
 * more than every exact row. So a draw that kept more than half the rows (candidates, or rows
 * the cut kept) makes the next draw skip the pass. Either way the token is the same (the cut,
 * above): the choice changes only the bytes read. tests/unit/test_head.c forces each way through
 * head_sample_policy_for_tests (1: always the pass, 2: never).
 */
RT_TEST_HOOK int head_sample_policy_for_tests;
static bool sample_skips_pass(const rsr_session *s) {
    if (head_sample_policy_for_tests) return head_sample_policy_for_tests == 2;
    return s->head && s->head->skip_pass;
}

/* p->have = 0: every row's exact logit, in h->cand_logit when `ready`, computed here otherwise. */
static rsr_status pick_sample(const head_x *p, const rsr_sampler_params *sp, uint64_t *rng, int32_t *token,
                              double *tail, bool ready) {
    rsr_session *s = p->s;
    const int32_t V = s->model->a->vocab;
    rsr_status st = head_scratch(s);
    if (st != RSR_OK) return st;
    struct rt_head_scratch *h = p->h ? p->h : s->head;
    rt_sample_info info;
    s->head_stats.picks++, s->head_stats.passes += p->have;
    if (!p->have || !isfinite(p->best_lo)) { /* every exact logit: only the sampler's cut leaves rows out */
        s->head_stats.exact_rows += V;
        if (!ready) rt_lm_head_logits(s, p->x, h->cand_logit);
        *token = rt_sample(h->cand_logit, V, V, sp, rng, h->probs, h->ids, &info);
        h->skip_pass = info.kept > V / 2;
        if (tail) *tail = info.cut;
        return RSR_OK;
    }
    const bool penal = rt_sampler_penalises(sp);
    const double T = sp->temperature > 0 ? sp->temperature : 0;
    const double best_lo = penal ? penalise_bounds(sp, h, V) : p->best_lo;
    const double cut = T > 0 ? best_lo + T * (log(0x1p-24) - log((double)V) - 1) : best_lo;
    double mass = 0;
    int32_t n = 0;
    for (int32_t v = 0; v < V; v++) {
        double u = h->approx[v] + h->bound[v];
        if (u >= cut)
            h->cand[n++] = v;
        else if (T > 0)
            mass += exp((u - best_lo) / T);
    }
#pragma omp parallel for schedule(static) num_threads(threads_of(s)) if (n > 256)
    for (int32_t i = 0; i < n; i++) h->cand_logit[i] = dot_row_of(s->model, h->cand[i], p->x, n <= RT_FEW_ROWS);
    s->head_stats.exact_rows += n;
    rsr_sampler_params plain = *sp;
    if (penal) {
        for (int32_t i = 0; i < n; i++)
            if (h->pen[h->cand[i]]) h->cand_logit[i] = rt_penalise(h->cand_logit[i], sp->repeat_penalty);
        for (int32_t j = 0; j < sp->n_recent; j++)
            if (sp->recent[j] >= 0 && sp->recent[j] < V) h->pen[sp->recent[j]] = 0;
        plain.n_recent = 0; /* applied above, in the candidates' order */
    }
    int32_t pick = rt_sample(h->cand_logit, n, V, &plain, rng, h->probs, h->ids, &info);
    *token = h->cand[pick];
    h->skip_pass = n > V / 2;
    if (tail) *tail = (mass + info.cut) * (1 + 1e-12);
    return RSR_OK;
}

rsr_status rt_lm_head_sample(rsr_session *s, const float *x, const rsr_sampler_params *sp, uint64_t *rng,
                             int32_t *token, double *tail) {
    head_x p = {.s = s, .x = x};
    rsr_status st = finite_or_refuse(s, x);
    if (st == RSR_OK && !sample_skips_pass(s)) st = approx_rows(s, x, &p);
    return st == RSR_OK ? pick_sample(&p, sp, rng, token, tail, false) : st;
}

/* Several sessions' heads at once (rsr_batch_eval): the exact logits' rows and the int8 copy's
 * rows each read once for every request that needs them, every request answered with the bits
 * its own call gives. */
rsr_status rt_lm_head_many(const rt_head_call *calls, int32_t k) {
    if (k <= 0) return RSR_OK;
    const rsr_model *m = calls[0].s->model;
    const rsr_artifact *a = m->a;
    head_x px[HEAD_PASS_MAX], *pass[HEAD_PASS_MAX];
    int32_t nlog = 0, npass = 0, logit_of[HEAD_PASS_MAX];
    float *logit_to[HEAD_PASS_MAX];
    bool ready[HEAD_PASS_MAX] = {0};
    for (int32_t j = 0; j < k; j++) {
        px[j] = (head_x){.s = calls[j].s, .x = calls[j].x};
        const rt_head_request *r = calls[j].req;
        if (r->kind == RT_HEAD_LOGITS) {
            logit_to[nlog] = r->logits, logit_of[nlog++] = j;
            continue;
        }
        rsr_status fin = finite_or_refuse(calls[j].s, calls[j].x);
        if (fin != RSR_OK) return fin;
        if (r->kind == RT_HEAD_SAMPLE && sample_skips_pass(calls[j].s)) { /* every row exactly, as its own call */
            rsr_status st = head_scratch(calls[j].s);
            if (st != RSR_OK) return st;
            ready[j] = true, logit_to[nlog] = calls[j].s->head->cand_logit, logit_of[nlog++] = j;
            continue;
        }
        rsr_status st = head_prepare(&px[j]);
        if (st != RSR_OK) return st;
        if (px[j].have) pass[npass++] = &px[j];
    }
    if (nlog) {
#pragma omp parallel for schedule(static) num_threads(threads_of(calls[0].s))
        for (int32_t v = 0; v < a->vocab; v++)
            for (int32_t i = 0; i < nlog; i++) logit_to[i][v] = dot_row(m, v, calls[logit_of[i]].x);
    }
    if (npass) head_pass(m, pass, npass);
    for (int32_t j = 0; j < k; j++) {
        const rt_head_request *r = calls[j].req;
        if (r->kind == RT_HEAD_GREEDY) {
            rsr_status st = greedy_or_refuse(calls[j].s, pick_greedy(&px[j]), r->token);
            if (st != RSR_OK) return st;
        }
        if (r->kind == RT_HEAD_SAMPLE) {
            rsr_status st = pick_sample(&px[j], r->sampler, r->rng, r->token, r->tail, ready[j]);
            if (st != RSR_OK) return st;
        }
    }
    return RSR_OK;
}

rsr_status rsr_session_head_stats(const rsr_session *s, rsr_head_stats *out) {
    if (!s || !out) return RSR_ERR_INVALID_ARGUMENT;
    *out = s->head_stats;
    out->vocab = s->model->a->vocab;
    return RSR_OK;
}

rsr_status rt_lm_head_logits_q8(rsr_session *s, const float *x, float *logits, double *bound) {
    const rsr_artifact *a = s->model->a;
    head_x p;
    double worst = 0;
    rsr_status st = approx_rows(s, x, &p);
    if (st != RSR_OK) return st;
    if (!p.have) { /* the exact logits: nothing lost */
        rt_lm_head_logits(s, x, logits);
        if (bound) *bound = 0;
        return RSR_OK;
    }
    const struct rt_head_scratch *h = s->head;
    for (int32_t v = 0; v < a->vocab; v++) {
        logits[v] = (float)h->approx[v];
        /* the rounding to float adds at most half an ulp of |approx| (2^-24 relative) */
        double b = h->bound[v] + fabs(h->approx[v]) * 0x1p-24;
        if (b > worst) worst = b;
    }
    if (bound) *bound = worst * (1 + 1e-12);
    return RSR_OK;
}
