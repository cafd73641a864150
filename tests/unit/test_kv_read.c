/*
 * test_kv_read.c — reading back the KV cache and the last queries (rsr_session_kv_read,
 * rsr_session_last_query) on a compiled model with RoPE.
 * Usage: test_kv_read MODEL.so   (a model of at least 2 layers; the test feeds 40 tokens)
 *
 * What is read back must be what attention used:
 *   - layer 0's value of a token does not depend on its position or context, so the values of
 *     one token at four positions are bitwise equal (and differ from another token's), while at
 *     layer 1, where context enters, they differ;
 *   - layer 0's key and query of a token at two positions differ only by the RoPE rotation: each
 *     rotation pair (i, i + d/2) keeps its norm;
 *   - a Louver session with an absolute τ counts, per step and layer, the keys with q·k ≥ τ
 *     (stats.kept); the count from the read-back queries and keys must agree at every step and
 *     layer (up to keys within rounding of τ);
 *   - the same for a cache of every element type (Louver indexes the keys as stored), and a cache
 *     of each type holds the fp32 keys and values rounded to it;
 *   - arguments are checked and the message names the value at fault.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsr_dl.h"

#include "expect.h"

static rsr_api api;
static rsr_model_info info;

/* the norm of rotation pair i of a vector of head_dim d */
static double pair_norm(const float *x, int32_t d, int32_t i) { return hypot((double)x[i], (double)x[i + d / 2]); }

static int same_pair_norms(const float *a, const float *b, int32_t d) {
    for (int32_t i = 0; i < d / 2; i++) {
        double na = pair_norm(a, d, i), nb = pair_norm(b, d, i);
        if (fabs(na - nb) > 1e-5 * (na + nb) + 1e-30) return 0;
    }
    return 1;
}

static int32_t kv_type = RSR_KV_F32; /* the sessions' cache */

static rsr_session *session(rsr_model *m, int attention, float tau) {
    rsr_session_params p = {.attention = attention,
                            .louver_policy = RSR_LOUVER_ABSOLUTE,
                            .louver_tau = tau,
                            .louver_block = 16,
                            .kv_type = kv_type};
    rsr_session *s = NULL;
    EXPECT(api.session_create(m, &p, &s) == RSR_OK, "session_create: %s", api.model_errmsg(m));
    return s;
}

static void test_arguments(rsr_model *m) {
    const int32_t d = info.head_dim;
    float *buf = malloc(sizeof(float) * (size_t)(info.num_heads * d));
    rsr_session *s = session(m, RSR_ATTENTION_DENSE, 0);
    EXPECT(api.session_kv_read(NULL, 0, 0, 0, 0, buf, buf) == RSR_ERR_INVALID_ARGUMENT, "NULL session");
    EXPECT(api.session_last_query(NULL, 0, buf) == RSR_ERR_INVALID_ARGUMENT, "NULL session");
    EXPECT(api.session_kv_read(s, 0, 0, 0, 1, buf, buf) == RSR_ERR_INVALID_ARGUMENT, "a position of an empty cache");
    EXPECT(strstr(api.session_errmsg(s), "[0, 1)") && strstr(api.session_errmsg(s), "[0, 0)"), "message: '%s'",
           api.session_errmsg(s));
    EXPECT(api.session_kv_read(s, 0, 0, 0, 0, buf, NULL) == RSR_OK, "an empty range of an empty cache");
    EXPECT(api.session_last_query(s, 0, buf) == RSR_ERR_INVALID_ARGUMENT, "a query before any token");
    int32_t tok[3] = {3, 4, 5};
    EXPECT(api.session_eval(s, tok, 3, NULL) == RSR_OK, "eval: %s", api.session_errmsg(s));
    EXPECT(api.session_kv_read(s, -1, 0, 0, 1, buf, buf) == RSR_ERR_INVALID_ARGUMENT, "layer -1");
    EXPECT(strstr(api.session_errmsg(s), "layer -1"), "message names the layer: '%s'", api.session_errmsg(s));
    EXPECT(api.session_kv_read(s, info.num_layers, 0, 0, 1, buf, buf) == RSR_ERR_INVALID_ARGUMENT, "layer = layers");
    EXPECT(api.session_kv_read(s, 0, info.num_kv_heads, 0, 1, buf, buf) == RSR_ERR_INVALID_ARGUMENT,
           "kv_head = kv heads");
    EXPECT(strstr(api.session_errmsg(s), "kv_head"), "message names the head: '%s'", api.session_errmsg(s));
    EXPECT(api.session_kv_read(s, 0, 0, -1, 1, buf, buf) == RSR_ERR_INVALID_ARGUMENT, "first -1");
    EXPECT(api.session_kv_read(s, 0, 0, 0, -1, buf, buf) == RSR_ERR_INVALID_ARGUMENT, "count -1");
    EXPECT(api.session_kv_read(s, 0, 0, 2, 2, buf, buf) == RSR_ERR_INVALID_ARGUMENT, "past the last position");
    EXPECT(api.session_kv_read(s, 0, 0, 2, INT32_MAX, buf, buf) == RSR_ERR_INVALID_ARGUMENT, "first + count overflows");
    EXPECT(api.session_kv_read(s, 0, 0, 0, 1, NULL, NULL) == RSR_ERR_INVALID_ARGUMENT, "nowhere to read into");
    EXPECT(api.session_kv_read(s, 0, 0, 2, 1, buf, NULL) == RSR_OK, "keys only");
    EXPECT(api.session_kv_read(s, 0, 0, 2, 1, NULL, buf) == RSR_OK, "values only");
    EXPECT(api.session_last_query(s, info.num_layers, buf) == RSR_ERR_INVALID_ARGUMENT, "query of layer = layers");
    EXPECT(api.session_last_query(s, 0, NULL) == RSR_ERR_INVALID_ARGUMENT, "query into NULL");
    EXPECT(api.session_last_query(s, info.num_layers - 1, buf) == RSR_OK, "query: %s", api.session_errmsg(s));
    EXPECT(api.session_reset(s) == RSR_OK, "reset");
    EXPECT(api.session_last_query(s, 0, buf) == RSR_ERR_INVALID_ARGUMENT, "a query after a reset");
    EXPECT(api.session_kv_read(s, 0, 0, 0, 1, buf, NULL) == RSR_ERR_INVALID_ARGUMENT, "a key after a reset");
    api.session_free(s);
    free(buf);
}

/* Token 5 at positions 0, 2, 4 and 6 (other tokens between): layer 0 gives it the same value
 * everywhere and the same key and query up to the rotation; layer 1 does not. */
static void test_positions(rsr_model *m) {
    const int32_t d = info.head_dim, n = 7, kvh = info.num_kv_heads, qn = info.num_heads * d;
    int32_t tok[7] = {5, 9, 5, 7, 5, 11, 5};
    float *K = malloc(sizeof(float) * (size_t)(n * d)), *V = malloc(sizeof(float) * (size_t)(n * d));
    float *q6 = malloc(sizeof(float) * (size_t)qn), *q0 = malloc(sizeof(float) * (size_t)qn);
    rsr_session *s = session(m, RSR_ATTENTION_DENSE, 0), *one = session(m, RSR_ATTENTION_DENSE, 0);
    EXPECT(api.session_eval(s, tok, n, NULL) == RSR_OK, "eval: %s", api.session_errmsg(s));
    EXPECT(api.session_eval(one, tok, 1, NULL) == RSR_OK, "eval: %s", api.session_errmsg(one));
    for (int32_t h = 0; h < kvh; h++) {
        EXPECT(api.session_kv_read(s, 0, h, 0, n, K, V) == RSR_OK, "kv_read: %s", api.session_errmsg(s));
        for (int32_t p = 2; p < n; p += 2) {
            EXPECT(!memcmp(V, V + (size_t)p * (size_t)d, sizeof(float) * (size_t)d),
                   "layer 0 head %d: token 5's value at "
                   "position %d differs from position 0's",
                   h, p);
            EXPECT(memcmp(K, K + (size_t)p * (size_t)d, sizeof(float) * (size_t)d),
                   "layer 0 head %d: token 5's key at "
                   "position %d is not rotated",
                   h, p);
            EXPECT(same_pair_norms(K, K + (size_t)p * (size_t)d, d),
                   "layer 0 head %d: token 5's key at position %d is "
                   "not position 0's rotated",
                   h, p);
        }
        EXPECT(memcmp(V, V + (size_t)d, sizeof(float) * (size_t)d), "layer 0 head %d: tokens 5 and 9 share a value", h);
        EXPECT(!same_pair_norms(K, K + (size_t)d, d),
               "layer 0 head %d: tokens 5 and 9 have keys of the same pair norms", h);
        /* a read of one row is the same row as in the read of all */
        float row[512];
        if (d <= 512) {
            EXPECT(api.session_kv_read(s, 0, h, 4, 1, row, NULL) == RSR_OK, "kv_read of one row");
            EXPECT(!memcmp(row, K + 4 * (size_t)d, sizeof(float) * (size_t)d), "head %d: row 4 read alone differs", h);
        }
        EXPECT(api.session_kv_read(s, 1, h, 0, n, K, V) == RSR_OK, "kv_read layer 1");
        EXPECT(memcmp(V, V + 6 * (size_t)d, sizeof(float) * (size_t)d),
               "layer 1 head %d: token 5's value does not "
               "depend on its context",
               h);
    }
    EXPECT(api.session_last_query(s, 0, q6) == RSR_OK && api.session_last_query(one, 0, q0) == RSR_OK, "last_query");
    for (int32_t h = 0; h < info.num_heads; h++) {
        const float *a = q6 + (size_t)h * (size_t)d, *b = q0 + (size_t)h * (size_t)d;
        EXPECT(memcmp(a, b, sizeof(float) * (size_t)d) && same_pair_norms(a, b, d),
               "layer 0 query head %d: position 6 is "
               "not position 0 rotated",
               h);
    }
    api.session_free(s), api.session_free(one);
    free(K), free(V), free(q6), free(q0);
}

/* Louver with an absolute τ reports how many keys reach τ; the read-back must agree. */
static void test_against_attention(rsr_model *m) {
    const int32_t d = info.head_dim, n = 40, group = info.num_heads / info.num_kv_heads, L = info.num_layers;
    int32_t tok[40];
    for (int32_t i = 0; i < n; i++) tok[i] = (i * 37 + 11) % info.vocab_size;
    float *K = malloc(sizeof(float) * (size_t)(n * d)), *q = malloc(sizeof(float) * (size_t)(info.num_heads * d));
    double *scores = malloc(sizeof(double) * (size_t)(n * info.num_heads));
    /* τ: the median score of the last step at the last layer, from a dense run */
    rsr_session *s = session(m, RSR_ATTENTION_DENSE, 0);
    EXPECT(api.session_eval(s, tok, n, NULL) == RSR_OK, "eval: %s", api.session_errmsg(s));
    EXPECT(api.session_last_query(s, L - 1, q) == RSR_OK, "last_query");
    int32_t ns = 0;
    for (int32_t h = 0; h < info.num_heads; h++) {
        EXPECT(api.session_kv_read(s, L - 1, h / group, 0, n, K, NULL) == RSR_OK, "kv_read");
        for (int32_t j = 0; j < n; j++) {
            double dot = 0;
            for (int32_t i = 0; i < d; i++)
                dot += (double)q[(size_t)h * (size_t)d + (size_t)i] * K[(size_t)j * (size_t)d + (size_t)i];
            scores[ns++] = dot;
        }
    }
    for (int32_t i = 1; i < ns; i++) /* insertion sort: a few hundred scores */
        for (int32_t j = i; j > 0 && scores[j - 1] > scores[j]; j--) {
            double t = scores[j];
            scores[j] = scores[j - 1], scores[j - 1] = t;
        }
    const float tau = (float)scores[ns / 2];
    api.session_free(s);

    s = session(m, RSR_ATTENTION_LOUVER, tau);
    int32_t steps_with_both = 0;
    for (int32_t p = 0; p < n; p++) {
        EXPECT(api.session_eval(s, tok + p, 1, NULL) == RSR_OK, "eval: %s", api.session_errmsg(s));
        for (int32_t l = 0; l < L; l++) {
            rsr_attention_stats st;
            EXPECT(api.session_attention_stats(s, l, &st) == RSR_OK, "stats");
            EXPECT(api.session_last_query(s, l, q) == RSR_OK, "last_query: %s", api.session_errmsg(s));
            int64_t above = 0, near = 0;
            for (int32_t h = 0; h < info.num_heads; h++) {
                EXPECT(api.session_kv_read(s, l, h / group, 0, p + 1, K, NULL) == RSR_OK, "kv_read");
                for (int32_t j = 0; j <= p; j++) {
                    double dot = 0, mag = 0;
                    for (int32_t i = 0; i < d; i++) {
                        double x = (double)q[(size_t)h * (size_t)d + (size_t)i] * K[(size_t)j * (size_t)d + (size_t)i];
                        dot += x, mag += fabs(x);
                    }
                    if (fabs(dot - tau) <= 1e-5 * mag)
                        near++; /* fp32 rounding could put it either side */
                    else
                        above += dot > tau;
                }
            }
            EXPECT(st.kept >= above && st.kept <= above + near,
                   "step %d layer %d: attention kept %lld keys ≥ τ %g, the "
                   "read-back queries and keys give %lld (+%lld within rounding)",
                   p, l, (long long)st.kept, (double)tau, (long long)above, (long long)near);
            steps_with_both += above > 0 && above < (int64_t)info.num_heads * (p + 1);
        }
    }
    EXPECT(steps_with_both > n / 2, "τ splits the keys at only %d steps×layers", steps_with_both);
    api.session_free(s);
    free(K), free(q), free(scores);
}

/* A cache of each element type holds the fp32 keys and values rounded to it: at layer 0 (where a
 * token's key and value depend only on the token and its position) every element read back is
 * within the type's rounding of the fp32 session's, the 16-bit types' are representable in them,
 * and some differ (the rounding happened). An unknown type is refused by name. */
static void test_kv_types(rsr_model *m) {
    const int32_t d = info.head_dim, n = 40;
    int32_t tok[40];
    for (int32_t i = 0; i < n; i++) tok[i] = (i * 53 + 7) % info.vocab_size;
    float *want = malloc(sizeof(float) * (size_t)(2 * n * d)), *got = malloc(sizeof(float) * (size_t)(2 * n * d));
    kv_type = RSR_KV_F32;
    rsr_session *ref = session(m, RSR_ATTENTION_DENSE, 0);
    EXPECT(api.session_eval(ref, tok, n, NULL) == RSR_OK, "eval: %s", api.session_errmsg(ref));
    static const char *const names[] = {"f32", "bf16", "f16", "q8"};
    for (int32_t t = RSR_KV_BF16; t <= RSR_KV_Q8; t++) {
        kv_type = t;
        rsr_session *s = session(m, RSR_ATTENTION_DENSE, 0);
        EXPECT(api.session_eval(s, tok, n, NULL) == RSR_OK, "eval: %s", api.session_errmsg(s));
        int64_t differ = 0, bad = 0;
        for (int32_t kvh = 0; kvh < info.num_kv_heads; kvh++) {
            EXPECT(api.session_kv_read(ref, 0, kvh, 0, n, want, want + n * d) == RSR_OK, "kv_read");
            EXPECT(api.session_kv_read(s, 0, kvh, 0, n, got, got + n * d) == RSR_OK, "kv_read");
            for (int32_t r = 0; r < 2 * n; r++) { /* n key rows, then n value rows */
                const float *x = want + (size_t)r * (size_t)d, *y = got + (size_t)r * (size_t)d;
                float amax = 0;
                for (int32_t i = 0; i < d; i++) amax = fmaxf(amax, fabsf(x[i]));
                for (int32_t i = 0; i < d; i++) {
                    double err = fabs((double)y[i] - x[i]), ax = fabs((double)x[i]);
                    uint32_t u;
                    memcpy(&u, &y[i], 4);
                    int ok = t == RSR_KV_BF16  ? err <= 0x1p-8 * ax && (u & 0xffffu) == 0
                             : t == RSR_KV_F16 ? err <= 0x1p-11 * ax + 0x1p-25 && ax < 65504
                                               : err <= 0.5 * amax / 127 * (1 + 0x1p-20) +
                                                            0x1p-23 * ax; /* K = x/s rounded, in fp32 */
                    bad += !ok, differ += y[i] != x[i];
                    if (!ok && bad <= 3)
                        fprintf(stderr, "kv %s: row %d element %d: %.9g read back for %.9g (row max %.9g)\n", names[t],
                                r, i, (double)y[i], (double)x[i], (double)amax);
                }
            }
        }
        EXPECT(bad == 0, "kv %s: %lld elements outside the type's rounding", names[t], (long long)bad);
        EXPECT(differ > 0, "kv %s: every element equals the fp32 one: nothing was rounded", names[t]);
        api.session_free(s);
    }
    api.session_free(ref);
    rsr_session_params p = {.kv_type = 4};
    rsr_session *s = NULL;
    EXPECT(api.session_create(m, &p, &s) == RSR_ERR_INVALID_ARGUMENT && !s, "kv_type 4 is refused");
    EXPECT(strstr(api.model_errmsg(m), "kv_type 4"), "message names it: '%s'", api.model_errmsg(m));
    kv_type = RSR_KV_F32;
    free(want), free(got);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_kv_read MODEL.so\n");
        return 2;
    }
    char err[512];
    if (rsr_api_load(&api, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rsr_model *m = NULL;
    rsr_model_params mp = {.num_threads = 2, .device = RSR_DEVICE_CPU};
    EXPECT(api.model_open(&m, &mp) == RSR_OK, "model_open: %s", api.model_errmsg(m));
    EXPECT(api.model_get_info(m, &info) == RSR_OK && info.num_layers >= 2, "a model of 2 layers or more");
    if (failures) return 1;
    test_arguments(m);
    test_positions(m);
    test_kv_types(m);
    for (kv_type = RSR_KV_F32; kv_type <= RSR_KV_Q8; kv_type++) test_against_attention(m); /* Louver per type */
    api.model_close(m);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
