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
 * With --weakened the runtime halves every bound and drops its fp32 term, and this test must
 * fail (ctest runs it so, expecting failure): the cases are tight enough to notice.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv) {
    head_bound_weakened_for_tests = argc > 1 && !strcmp(argv[1], "--weakened");
    sampler_cut();
    adversarial();
    ties();
    overflow();
    non_finite_x();
    random_heads();
    dot_rows();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
