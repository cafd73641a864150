/*
 * test_head.c — the LM head's certificates on heads built to break them (runtime/cpu/lm_head.c).
 * Usage: test_head [--weakened]
 *
 * Each case builds a small head (bf16 rows and the int8 copy rsrc would store beside them, made
 * here from the definition in rsr_artifact.h) and an input x, and checks:
 *   - the certified greedy token equals rsr_sample_greedy of the exact logits (rsr_session_eval's
 *     bits): on heads whose int8 order of the top rows is the reverse of the exact order, on exact
 *     ties (the first row wins), on inputs whose exact logits overflow fp32, on NaN inputs, and on
 *     random heads;
 *   - every int8 logit lies within the bound it reports;
 *   - the sampling head draws what rsr_sample draws from the exact logits, with the same random
 *     state, whether it reads the int8 copy first or computes every row (both forced), alone or
 *     batched, at temperatures that leave most rows out and at ones that keep them all, with
 *     top-k, top-p, min-p and the repetition penalty; and the sampler's cut leaves out exactly
 *     the rows of weight below 2^-24 / vocab (less its margin).
 *   - the same for heads in group-scaled blocks (Q1_0, Q2_0, PQ2_0, PTQ1_0, written here from
 *     their definitions in rsr_blocks.h), which x86 reads as the codes head (lm_head.c) and other
 *     CPUs through the int8 copy; its kernels' (AVX-512 VNNI, AVX2) float sums against a plain
 *     emulation of its lanes, bit for bit, and against the exact sum within the lanes' γ.
 * With --weakened the runtime halves every bound and drops its fp32 terms, and this test must
 * fail (ctest runs it so, expecting failure): the cases are tight enough to notice, the codes
 * head's too (block_adversarial).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu_device.h"
#include "family.h"

#include "expect.h"

enum { MAXV = 64, N = 16, STRIDE = RSR_X_PAD };

typedef struct head {
    rsr_artifact a;
    rsr_model m;
    rsr_session s;
    uint8_t *blob;
    int32_t vocab;
} head;

static uint16_t to_bf16(float f) { /* round to nearest even; finite inputs only */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

/* rows[v][i] (rounded to bf16) as the exact head, and its int8 copy: per row scale = max|w|/127
 * as a float, q = round(w/scale) within ±127, err = max|w − scale·q| rounded up to a float. */
static void head_build(head *h, const float rows[][N], int32_t vocab) {
    memset(h, 0, sizeof *h);
    size_t exact = (size_t)vocab * N * 2, q8 = (exact + 63) / 64 * 64, sc = q8 + (size_t)vocab * STRIDE;
    size_t er = sc + 4 * (size_t)vocab, size = er + 4 * (size_t)vocab;
    h->blob = calloc(1, size);
    for (int32_t v = 0; v < vocab; v++) {
        float w[N], amax = 0;
        for (int i = 0; i < N; i++) {
            uint16_t b = to_bf16(rows[v][i]);
            memcpy(h->blob + 2 * ((size_t)v * N + i), &b, 2);
            w[i] = rsr_bf16_to_f32(b);
            amax = fabsf(w[i]) > amax ? fabsf(w[i]) : amax;
        }
        float s = amax / 127.0f;
        double e = 0;
        uint8_t *row = h->blob + q8 + (size_t)v * STRIDE;
        memset(row, 128, STRIDE);
        for (int i = 0; i < N; i++) {
            double q = s > 0 ? fmin(fmax(nearbyint((double)w[i] / s), -127), 127) : 0;
            row[i] = (uint8_t)(q + 128);
            e = fmax(e, fabs((double)w[i] - (double)s * q));
        }
        float ef = (float)e;
        if ((double)ef < e) ef = nextafterf(ef, INFINITY);
        memcpy(h->blob + sc + 4 * (size_t)v, &s, 4);
        memcpy(h->blob + er + 4 * (size_t)v, &ef, 4);
    }
    h->a = (rsr_artifact){.hidden = N,
                          .vocab = vocab,
                          .blob = h->blob,
                          .blob_size = size,
                          .lm_head = 0,
                          .lm_head_dtype = RSR_DTYPE_BF16,
                          .head_q8 = q8,
                          .head_q8_scale = sc,
                          .head_q8_err = er,
                          .head_q8_stride = STRIDE};
    h->m.a = &h->a, h->m.blob = h->m.rows = h->blob, h->m.num_threads = 1;
    h->s.model = &h->m;
    h->vocab = vocab;
}

static void head_free(head *h) {
    rt_lm_head_free(&h->s);
    if (h->m.q8_made) munmap(h->m.q8_made, h->m.q8_made_size);
    free(h->blob);
}

/* The sampling head against rsr_sample on the exact logits: the same token from the same random
 * state, with the int8 pass and without it, alone and as two sessions of one batched head
 * (rt_lm_head_many), and a tail of at most 2^-24. */
static void check_sampling(head *h, const float *x, const float *exact, const char *what) {
    static const int32_t recent[] = {0, 2, 1, 2};
    static const rsr_sampler_params rules[] = {
        {.temperature = 0.002f, .top_p = 1},
        {.temperature = 0.05f, .top_p = 1},
        {.temperature = 0.7f, .top_k = 3, .top_p = 1},
        {.temperature = 6, .top_p = 1},
        {.temperature = 1, .top_p = 0.8f, .min_p = 0.05f},
        {.temperature = 0.5f, .top_p = 1, .repeat_penalty = 1.5f, .recent = recent, .n_recent = 4},
        {.temperature = 0, .top_p = 1, .repeat_penalty = 3, .recent = recent, .n_recent = 4},
    };
    enum { NR = sizeof rules / sizeof *rules };
    float probs[MAXV];
    int32_t ids[MAXV];
    rsr_session s2 = {.model = &h->m}; /* a second session of the head, for the batched draws */
    for (int policy = 1; policy <= 2; policy++)
        for (int k = 0; k < NR; k++) {
            const rsr_sampler_params *sp = &rules[k];
            uint64_t r1 = 5 + (uint64_t)k, r2 = r1, b1 = 50 + (uint64_t)k, b2 = b1, w1 = b1 + 1, w2 = w1;
            for (int draw = 0; draw < 4; draw++) {
                head_sample_policy_for_tests = policy;
                int32_t got = -1, bt[2] = {-1, -1};
                double tail = -1, bta[2] = {-1, -1};
                rsr_status st = rt_lm_head_sample(&h->s, x, sp, &r1, &got, &tail);
                const rt_head_request req[2] = {
                    {.kind = RT_HEAD_SAMPLE, .token = &bt[0], .sampler = sp, .rng = &b1, .tail = &bta[0]},
                    {.kind = RT_HEAD_SAMPLE, .token = &bt[1], .sampler = sp, .rng = &w1, .tail = &bta[1]}};
                const rt_head_call calls[2] = {{&h->s, x, &req[0]}, {&s2, x, &req[1]}};
                rsr_status bst = rt_lm_head_many(calls, 2);
                head_sample_policy_for_tests = 0;
                const char *how = policy == 1 ? "int8 pass" : "every row";
                int32_t want = rsr_sample(exact, h->vocab, sp, &r2, probs, ids);
                EXPECT(st == RSR_OK && got == want && tail >= 0 && tail <= 0x1p-24,
                       "%s: %s, rules %d, draw %d: the sampling head drew %d (tail %g), rsr_sample %d", what, how, k,
                       draw, got, tail, want);
                int32_t want_b = rsr_sample(exact, h->vocab, sp, &b2, probs, ids);
                int32_t want_w = rsr_sample(exact, h->vocab, sp, &w2, probs, ids);
                EXPECT(bst == RSR_OK && bt[0] == want_b && bt[1] == want_w && bta[0] <= 0x1p-24 && bta[1] <= 0x1p-24,
                       "%s: %s, rules %d, draw %d: batched draws %d and %d, rsr_sample %d and %d", what, how, k, draw,
                       bt[0], bt[1], want_b, want_w);
            }
        }
    rt_lm_head_free(&s2);
}

/* The cut: rows just above 2^-24 / vocab of the maximum's weight stay, rows just below go. */
static void sampler_cut(void) {
    enum { V = 40 };
    float logits[V], probs[V];
    int32_t ids[V], above = 1;
    const double edge = log(0x1p-24 / V);
    for (int32_t v = 0; v < V; v++) {
        double off = (1 + v % 5) * 1e-3; /* far above expf's and the float rounding's errors */
        logits[v] = v == 7 ? 0.0f : (float)(edge + (v % 2 ? off : -off));
        above += v != 7 && v % 2;
    }
    rsr_sampler_params sp = {.temperature = 1, .top_p = 1};
    uint64_t r = 3;
    rt_sample_info info;
    int32_t t = rt_sample(logits, V, V, &sp, &r, probs, ids, &info);
    EXPECT(t >= 0 && info.kept == above, "the cut kept %d rows, %d are at or above 2^-24/%d", info.kept, above, V);
    EXPECT(info.cut > 0 && info.cut <= 0x1p-24, "the cut's weight %g", info.cut);
    sp.temperature = 2; /* the same logits at a higher temperature: all weigh more than the edge */
    t = rt_sample(logits, V, V, &sp, &r, probs, ids, &info);
    EXPECT(info.kept == V && info.cut == 0, "at T 2 the cut kept %d of %d rows", info.kept, V);
}

/* The certificates for one x: greedy token and int8 bound. Returns the exact argmax. */
static int32_t check(head *h, const float *x, const char *what) {
    float exact[MAXV], q8[MAXV];
    rt_lm_head_logits(&h->s, x, exact);
    int32_t want = rsr_sample_greedy(exact, h->vocab), got = -1;
    EXPECT(rt_lm_head_argmax(&h->s, x, &got) == RSR_OK, "%s: argmax failed", what);
    EXPECT(got == want, "%s: certified greedy token %d, the exact logits' %d (%g against %g)", what, got, want,
           got >= 0 ? (double)exact[got] : 0.0, (double)exact[want]);
    double bound = -1;
    EXPECT(rt_lm_head_logits_q8(&h->s, x, q8, &bound) == RSR_OK, "%s: int8 logits failed", what);
    for (int32_t v = 0; v < h->vocab; v++) {
        bool same = memcmp(&q8[v], &exact[v], 4) == 0;
        EXPECT(same || fabs((double)q8[v] - (double)exact[v]) <= bound, "%s: row %d: int8 logit %g, exact %g, bound %g",
               what, v, (double)q8[v], (double)exact[v], bound);
    }
    check_sampling(h, x, exact, what);
    return want;
}

/* The int8 order of the two top rows is the reverse of the exact order: row 0's small weights
 * round up to one quantum each, row 1's (just below half a quantum of its scale) round to 0. Only
 * the exact recheck of both gives row 1; half the bound would drop it. */
static void adversarial(void) {
    float rows[4][N] = {{0}};
    const float half0 = 0.99609375f / 127 / 2, half1 = 1.0f / 127 / 2;
    float up = half0, down = half1;
    while (rsr_bf16_to_f32(to_bf16(up)) <= half0) up = nextafterf(up, 1);       /* just above: rounds to 1 */
    while (rsr_bf16_to_f32(to_bf16(down)) >= half1) down = nextafterf(down, 0); /* just below: rounds to 0 */
    rows[0][0] = 0.99609375f, rows[1][0] = 1.0f;
    for (int i = 1; i < N; i++) rows[0][i] = up, rows[1][i] = down;
    for (int i = 0; i < N; i++) rows[2][i] = 0.05f * (float)(i % 3) - 0.05f, rows[3][i] = -0.5f;
    head h;
    head_build(&h, rows, 4);
    float x[N];
    for (int i = 0; i < N; i++) x[i] = 1.0f;
    float q8[4];
    double bound;
    rt_lm_head_logits_q8(&h.s, x, q8, &bound);
    int32_t exact_top = check(&h, x, "adversarial");
    EXPECT(exact_top == 1 && rsr_sample_greedy(q8, 4) == 0,
           "the adversarial head is not adversarial: exact top %d, "
           "int8 top %d",
           exact_top, rsr_sample_greedy(q8, 4));
    head_free(&h);
}

/* Equal top rows: the first wins, as rsr_sample_greedy decides. */
static void ties(void) {
    float rows[6][N];
    for (int v = 0; v < 6; v++)
        for (int i = 0; i < N; i++)
            rows[v][i] = (v == 2 || v == 4) ? 0.25f * (float)((i * 7) % 5) : 0.01f * (float)(v + i);
    head h;
    head_build(&h, rows, 6);
    float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i % 4) - 1.0f;
    EXPECT(check(&h, x, "ties") == 2, "exact ties: the first of the equal rows must win");
    head_free(&h);
}

/* x so large that the exact logits overflow to inf: the certified head must not prune a row on
 * its approximation (rows of 3 and 4: every exact logit is inf, and row 0 is the first maximum). */
static void overflow(void) {
    float rows[4][N];
    for (int v = 0; v < 4; v++)
        for (int i = 0; i < N; i++) rows[v][i] = v < 2 ? 3.0f : 4.0f;
    head h;
    head_build(&h, rows, 4);
    float x[N];
    for (int i = 0; i < N; i++) x[i] = 1e37f;
    EXPECT(check(&h, x, "overflow") == 0, "overflow: the first infinite logit");
    for (int i = 0; i < N; i++) x[i] = 2e36f; /* 4·16·2e36 = 1.3e38: below FLT_MAX, near it */
    check(&h, x, "near overflow");
    head_free(&h);
}

/* A NaN or infinite activation has no token: greedy decoding and sampling, alone and batched, are
 * refused naming it (an argmax over NaN logits once gave token 0 without a word). */
static void non_finite_x(void) {
    float rows[3][N];
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < N; i++) rows[v][i] = 0.1f * (float)(v - i % 3);
    head h;
    head_build(&h, rows, 3);
    float x[N];
    for (int i = 0; i < N; i++) x[i] = 1;
    const float bad[2] = {NAN, INFINITY};
    for (int b = 0; b < 2; b++) {
        x[5] = bad[b];
        int32_t got = 7, bt = 7;
        rsr_status st = rt_lm_head_argmax(&h.s, x, &got);
        EXPECT(st != RSR_OK && strstr(h.s.err, "not finite") && strstr(h.s.err, "element 5"),
               "%g x: greedy refused (%d: %s)", (double)bad[b], (int)st, h.s.err);
        const rsr_sampler_params sp = {.temperature = 0.7f, .top_p = 1};
        uint64_t r = 5;
        double tail = -1;
        st = rt_lm_head_sample(&h.s, x, &sp, &r, &got, &tail);
        EXPECT(st != RSR_OK && strstr(h.s.err, "not finite"), "%g x: sampling refused (%d)", (double)bad[b], (int)st);
        const rt_head_request req = {.kind = RT_HEAD_GREEDY, .token = &bt};
        const rt_head_call call = {&h.s, x, &req};
        EXPECT(rt_lm_head_many(&call, 1) != RSR_OK && bt == 7, "%g x: batched greedy refused", (double)bad[b]);
    }
    head_free(&h);
}

/* Random heads with near-ties: rows that differ from the first by a few bf16 steps. */
static void random_heads(void) {
    uint64_t r = 0x9e3779b97f4a7c15u;
    for (int trial = 0; trial < 300; trial++) {
        float rows[MAXV][N], x[N];
        int32_t vocab = 8 + trial % (MAXV - 8);
        for (int32_t v = 0; v < vocab; v++)
            for (int i = 0; i < N; i++) {
                r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                float base = (float)((int)(r % 2001) - 1000) / 1000.0f;
                rows[v][i] = v && trial % 2 ? rows[0][i] + (float)((int)(r >> 40) % 5 - 2) * 0.004f : base;
            }
        for (int i = 0; i < N; i++)
            r ^= r << 13, r ^= r >> 7, r ^= r << 17, x[i] = (float)((int)(r % 401) - 200) / 50.0f;
        head h;
        head_build(&h, rows, vocab);
        check(&h, x, "random head");
        head_free(&h);
    }
}

/* The int8 pass's blocked dot (rt_head_dot_q8_vnni_rows: RT_HEAD_ROWS rows with k vectors at once)
 * gives each row's and vector's sum Σ w·x exactly, as a plain loop does, for k of 1 to 9 and 17 (the
 * kernel takes vectors four at a time, then the rest) and widths of 64 to 2560, with x at the
 * extremes head_prepare allows (|x| ≤ 2^31 / (255 · width)). */
static void dot_rows(void) {
#if defined(__x86_64__)
    if (!__builtin_cpu_supports("avx512vnni")) {
        printf("dot_rows: skipped (no AVX-512 VNNI here)\n");
        return;
    }
    const int32_t widths[] = {64, 128, 2560}, ks[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17};
    uint32_t seed = 7; /* a plain LCG: rand_r is POSIX, not C11 */
#define NEXT() ((seed = seed * 1103515245u + 12345u) >> 8)
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        const int32_t n = widths[wi], stride = n + 64, xmax = (int32_t)fmin(32767, 2147483647.0 / (255.0 * n));
        uint8_t *w = malloc((size_t)RT_HEAD_ROWS * (size_t)stride);
        int16_t *xs = malloc(sizeof(int16_t) * 17 * (size_t)n);
        const int16_t *x[17];
        EXPECT(w && xs, "out of memory");
        if (!w || !xs) return;
        for (int32_t i = 0; i < RT_HEAD_ROWS * stride; i++) w[i] = (uint8_t)(i % 5 == 0 ? 255 : NEXT());
        for (int32_t i = 0; i < 17 * n; i++)
            xs[i] =
                (int16_t)(i % 7 == 0 ? (i % 2 ? xmax : -xmax) : (int32_t)(NEXT() % (uint32_t)(2 * xmax + 1)) - xmax);
        for (int j = 0; j < 17; j++) x[j] = xs + (size_t)j * (size_t)n;
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
            const int32_t k = ks[ki];
            int32_t sums[RT_HEAD_ROWS * 17];
            rt_head_dot_q8_vnni_rows(w, stride, x, k, n, sums);
            int wrong = 0;
            for (int r = 0; r < RT_HEAD_ROWS; r++)
                for (int32_t j = 0; j < k; j++) {
                    int64_t want = 0;
                    for (int32_t i = 0; i < n; i++) want += (int64_t)w[(size_t)r * stride + i] * x[j][i];
                    wrong += sums[r * k + j] != want || rt_head_dot_q8_vnni(w + (size_t)r * stride, x[j], n) != want;
                }
            EXPECT(!wrong, "dot_rows: width %d, %d vectors: %d sums differ from the plain loop's", n, k, wrong);
        }
        free(w), free(xs);
    }
#undef NEXT
#endif
}

/* ---- heads in group-scaled blocks ---- */

enum { BMAXN = 5120 };

static uint16_t to_f16(float f) { /* normal values exactly representable in f16, and 0 */
    if (f == 0) return 0;
    int e;
    float m = frexpf(fabsf(f), &e); /* f = m·2^e, m in [0.5, 1) */
    uint16_t h = (uint16_t)((f < 0) << 15 | (e + 14) << 10 | ((int)ldexpf(m, 11) - 1024));
    EXPECT(rsr_f16_to_f32(h) == f, "to_f16(%g) is not exact", (double)f);
    return h;
}

/* One block of qk values (-1..2) and scale d in dtype's bytes, written from rsr_blocks.h's text. */
static void block_write(int32_t dtype, const int8_t *val, float d, uint8_t *out) {
    const uint16_t h = to_f16(d);
    if (dtype == RSR_DTYPE_PTQ1_0) {
        memset(out, 0, 28);
        int digits[26][5] = {{0}};
        for (int e = 0; e < 128; e++) {
            const int t = val[e] + 1, at = e < 80 ? e % 16 : e < 120 ? 16 + (e - 80) % 8 : 24 + (e - 120) % 2;
            const int n = e < 80 ? e / 16 : e < 120 ? (e - 80) / 8 : (e - 120) / 2;
            digits[at][n] = t;
        }
        for (int b = 0; b < 26; b++) { /* the first digit most significant; a qh byte's value times 3 */
            int v = 0;
            for (int n = 0; n < 5; n++) v = 3 * v + (b < 24 || n < 4 ? digits[b][n] : 0);
            out[b] = (uint8_t)((v * 256 + 242) / 243);
        }
        out[26] = (uint8_t)h, out[27] = (uint8_t)(h >> 8);
        return;
    }
    const uint32_t qk = rsr_block_weights(dtype);
    memset(out, 0, rsr_block_bytes(dtype));
    out[0] = (uint8_t)h, out[1] = (uint8_t)(h >> 8);
    for (uint32_t j = 0; j < qk; j++)
        if (dtype == RSR_DTYPE_Q1_0)
            out[2 + j / 8] |= (uint8_t)((val[j] > 0) << (j % 8));
        else
            out[2 + j / 4] |= (uint8_t)((val[j] + 1) << (2 * (j % 4)));
}

/* A head of vocab rows of n values (val, -1..2) with a scale per block (d), in dtype's blocks. */
static void head_build_blocks(head *h, int32_t dtype, int32_t n, int32_t vocab, const int8_t *val, const float *d) {
    memset(h, 0, sizeof *h);
    const uint32_t qk = rsr_block_weights(dtype);
    const size_t row = rsr_dtype_bytes(dtype, (size_t)n);
    h->blob = calloc((size_t)vocab, row);
    for (int32_t v = 0; v < vocab; v++)
        for (int32_t b = 0; b < n / (int32_t)qk; b++)
            block_write(dtype, val + (size_t)v * (size_t)n + (size_t)b * qk,
                        d[(size_t)v * (size_t)(n / (int32_t)qk) + b],
                        h->blob + (size_t)v * row + (size_t)b * rsr_block_bytes(dtype));
    h->a = (rsr_artifact){.hidden = n,
                          .vocab = vocab,
                          .blob = h->blob,
                          .blob_size = (size_t)vocab * row,
                          .lm_head = 0,
                          .lm_head_dtype = dtype,
                          .head_q8 = RSR_NO_TENSOR,
                          .head_q8_stride = (n + RSR_X_PAD - 1) / RSR_X_PAD * RSR_X_PAD};
    h->m.a = &h->a, h->m.blob = h->m.rows = h->blob, h->m.num_threads = 1;
    h->s.model = &h->m;
    h->vocab = vocab;
}

static const int32_t block_dtypes[] = {RSR_DTYPE_Q1_0, RSR_DTYPE_Q2_0, RSR_DTYPE_PQ2_0, RSR_DTYPE_PTQ1_0};
static const char *const block_names[] = {"Q1_0", "Q2_0", "PQ2_0", "PTQ1_0"};
static int8_t val_of(int32_t dtype, uint64_t r) {
    if (dtype == RSR_DTYPE_Q1_0) return r % 2 ? 1 : -1;
    return (int8_t)((int)(r % (dtype == RSR_DTYPE_PTQ1_0 ? 3 : 4)) - 1);
}

/* The codes head where the CPU has its kernel (else the int8 copy), after a first pick. */
static void expect_codes_head(head *h, const char *what) {
#if defined(__x86_64__)
    EXPECT((h->m.hc != NULL) == (rt_cpu_isa() != RT_ISA_PORTABLE), "%s: the codes head %s made", what,
           h->m.hc ? "was" : "was not");
#else
    EXPECT(h->m.hc == NULL, "%s: a codes head off x86", what);
#endif
}

static uint64_t xorshift(uint64_t *r) {
    *r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
    return *r;
}

/* Random block heads with near ties (rows a few codes from row 0, scales a few f16 steps apart),
 * x with an outlier, widths with and without a padded group. */
static void block_random_heads(void) {
    uint64_t r = 0x2545f4914f6cdd1du;
#define RNG() xorshift(&r)
    static int8_t val[MAXV * 640];
    static float d[MAXV * 10], x[640];
    for (int di = 0; di < 4; di++)
        for (int trial = 0; trial < 60; trial++) {
            const int32_t dt = block_dtypes[di], n = trial % 2 ? 640 : 256, vocab = 8 + trial % (MAXV - 8);
            const int32_t nb = n / (int32_t)rsr_block_weights(dt);
            for (int32_t v = 0; v < vocab; v++) {
                for (int32_t i = 0; i < n; i++)
                    val[v * n + i] = v && trial % 3 && RNG() % 16 ? val[i] : val_of(dt, RNG() >> 20);
                for (int32_t b = 0; b < nb; b++)
                    d[v * nb + b] = v && trial % 3 ? rsr_f16_to_f32((uint16_t)(to_f16(d[b]) + RNG() % 3))
                                                   : (float)(1 + RNG() % 1023) / 1024.0f * (RNG() % 2 ? 1 : -1);
            }
            for (int32_t i = 0; i < n; i++) x[i] = (float)((int)(RNG() % 401) - 200) / 50.0f;
            x[RNG() % (uint64_t)n] = 40;
            head h;
            head_build_blocks(&h, dt, n, vocab, val, d);
            char what[64];
            snprintf(what, sizeof what, "%s head, width %d, %d rows", block_names[di], n, vocab);
            check(&h, x, what);
            expect_codes_head(&h, what);
            head_free(&h);
        }
#undef RNG
}

/* A head whose certificate needs every bit of the codes head's bound: row 0 (scale 1) is cmax (+1
 * for PTQ1_0, +2 for PQ2_0) where x is 0.49 quanta (xq rounds it to 0: its approx is 0, its exact
 * logit 1.96·cmax), row 1 (a small scale) is +1 at x's largest entry (approx and exact logit
 * 16383·scale, just below row 0's). Row 1's bound is tiny, row 0's cmax times the whole 1.96 of
 * ‖d‖₁: half of it, or cmax taken as 1 for PQ2_0, drops row 0, whose exact logit is the largest. */
static void block_adversarial(void) {
    for (int di = 2; di < 4; di++) { /* PQ2_0 (cmax 2), PTQ1_0 (cmax 1) */
        const int32_t dt = block_dtypes[di], n = 256, nb = n / 128;
        static int8_t val[3 * 256];
        float d[3 * 2], x[256] = {0};
        memset(val, 0, sizeof val);
        const int8_t cmax = dt == RSR_DTYPE_PQ2_0 ? 2 : 1;
        for (int i = 0; i < 4; i++) val[10 + 7 * i] = cmax, x[10 + 7 * i] = 0.49f;
        val[256 + 200] = 1, x[200] = 16383;
        val[512 + 1] = 1; /* row 2: 0 */
        for (int b = 0; b < nb; b++) d[b] = 1, d[nb + b] = cmax == 2 ? 0x1.ep-13f : 0x1p-14f, d[2 * nb + b] = 0x1p-10f;
        head h;
        head_build_blocks(&h, dt, n, 3, val, d);
        const int32_t top = check(&h, x, block_names[di]);
        expect_codes_head(&h, "adversarial");
        float q8[3];
        double bound;
        rt_lm_head_logits_q8(&h.s, x, q8, &bound);
        EXPECT(top == 0 && (!h.m.hc || rsr_sample_greedy(q8, 3) == 1),
               "%s: the adversarial block head is not adversarial: exact top %d, codes top %d", block_names[di], top,
               rsr_sample_greedy(q8, 3));
        head_free(&h);
    }
}

/* rt_head_dot_codes_vnni against a plain emulation of its lanes (each lane's exact integer sum,
 * one fmaf a group, the lanes reduced in its order), bit for bit, and against the exact sum
 * within (groups + 5)·2^-23 of Σ|terms| (the γ lm_head.c's bound takes), for qk 64 and 128,
 * widths of 1, 2 and 20 groups and x at ±16383. */
static void codes_kernel(void) {
#if defined(__x86_64__)
    const bool vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
    if (!__builtin_cpu_supports("avx2")) {
        printf("codes_kernel: skipped (no AVX2 here)\n");
        return;
    }
    uint32_t seed = 11;
#define NEXT() ((seed = seed * 1103515245u + 12345u) >> 8)
    static uint8_t codes[20 * 64];
    static int8_t hi[20 * 256], lo[20 * 256];
    static int32_t sl[20 * 16], xq[20 * 256];
    static float scales[20 * 4 + 4];
    const int32_t qks[] = {64, 128}, widths[] = {1, 2, 20};
    for (int qi = 0; qi < 2; qi++)
        for (int wi = 0; wi < 3; wi++)
            for (int trial = 0; trial < 20; trial++) {
                const int32_t qk = qks[qi], q4 = qk / 4, groups = widths[wi], bag = 256 / qk;
                rt_head_x x = {.hi = hi, .lo = lo, .sl = sl, .groups = groups, .blocks_a_group = bag};
                for (int l = 0; l < 16; l++) x.lane_block[l] = 4 * l / q4;
                for (int32_t i = 0; i < groups * 64; i++) codes[i] = (uint8_t)NEXT();
                for (int32_t i = 0; i < groups * bag + 4; i++)
                    scales[i] = (float)((int)(NEXT() % 2001) - 1000) / 997.0f * (trial % 4 ? 1 : 1e-3f);
                memset(sl, 0, sizeof sl);
                for (int32_t i = 0; i < groups * 256; i++) { /* plane layout: xq[i] is the x of code byte i%64, plane */
                    int32_t v = i % 5 == 0 ? (i % 2 ? 16383 : -16383) : (int32_t)(NEXT() % 32767) - 16383;
                    xq[i] = v, hi[i] = (int8_t)(v >> 7), lo[i] = (int8_t)(v & 127);
                }
                float acc[16] = {0};
                double exact = 0, abs_terms = 0;
                for (int32_t g = 0; g < groups; g++) {
                    int64_t lane[16] = {0};
                    for (int pl = 0; pl < 4; pl++)
                        for (int t = 0; t < 64; t++) {
                            const int c = codes[64 * g + t] >> (2 * pl) & 3;
                            lane[t / 4] += (int64_t)(c - 1) * xq[256 * g + 64 * pl + t];
                            sl[16 * g + t / 4] += xq[256 * g + 64 * pl + t];
                        }
                    for (int l = 0; l < 16; l++) {
                        const float dl = scales[g * bag + x.lane_block[l]];
                        acc[l] = fmaf((float)lane[l], dl, acc[l]);
                        exact += (double)lane[l] * dl, abs_terms += fabs((double)lane[l] * dl);
                    }
                }
                float a8[8], a4[4];
                for (int i = 0; i < 8; i++) a8[i] = acc[i] + acc[i + 8];
                for (int i = 0; i < 4; i++) a4[i] = a8[i] + a8[i + 4];
                const float want = (a4[0] + a4[2]) + (a4[1] + a4[3]);
                const float got = vnni ? rt_head_dot_codes_vnni(codes, scales, &x) : want;
                const float got2 = rt_head_dot_codes_avx2(codes, scales, &x);
                EXPECT(memcmp(&got, &want, 4) == 0 && memcmp(&got2, &want, 4) == 0,
                       "codes kernel: qk %d, %d groups: %.9g (VNNI), %.9g (AVX2), the lanes' emulation %.9g", qk,
                       groups, (double)got, (double)got2, (double)want);
                EXPECT(fabs((double)got - exact) <= (groups + 5) * 0x1p-23 * abs_terms,
                       "codes kernel: qk %d, %d groups: %.9g is %g from the exact sum (γ·Σ|terms| %g)", qk, groups,
                       (double)got, fabs((double)got - exact), (groups + 5) * 0x1p-23 * abs_terms);
            }
#undef NEXT
#endif
}

int main(int argc, char **argv) {
    head_bound_weakened_for_tests = argc > 1 && !strcmp(argv[1], "--weakened");
    sampler_cut();
    adversarial();
    ties();
    overflow();
    non_finite_x();
    random_heads();
    dot_rows();
    block_random_heads();
    block_adversarial();
    codes_kernel();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
