/*
 * test_truncate.c — rsr_session_truncate keeps a prefix of the cache and the session goes on
 * exactly as one that evaluated only that prefix (what rsr-serve's prefix reuse relies on).
 * Usage: test_truncate MODEL.so   (see tests/CMakeLists.txt for the shape)
 *
 * For dense attention and for Louver (blocks of 16 keys, the budget policy: which keys are scanned
 * depends on every indexed key), a session evaluates a prompt, decodes a reply a token at a time
 * (the Louver index grows), evaluates more, and is truncated into the reply; it then evaluates a
 * new suffix and decodes. A fresh session evaluates the kept tokens and the suffix as one prompt
 * and decodes the same tokens: the logits after the suffix and after each decoded token, and
 * every layer's attention statistics, must be equal bit for bit. Then the arguments' checks.
 *
 * With a second model whose layers have sliding windows (test_truncate MODEL.so WINDOWED.so): the
 * same with sessions of STEP tokens a step, whose windowed layers keep a ring of W − 1 + STEP
 * positions: truncating back STEP positions gives the bits of the fresh session, one position
 * further is refused, naming the earliest position, and changes nothing; rsr_session_kv_read gives
 * a windowed layer's last positions as a session that keeps every position has them and refuses
 * the older ones; rsr_batch_eval takes at most STEP tokens of such a session per step and gives
 * the bits of the session's own call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsr_dl.h"

#include "expect.h"

enum { PROMPT = 100, REPLY = 40, JUNK = 30, KEEP = PROMPT + 23, SUFFIX = 25, AFTER = 3, STEP = 8 };

static rsr_api api;
static int32_t layers, vocab;

static void tokens_of(int32_t *t, int32_t n, uint32_t seed) {
    for (int32_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        t[i] = 3 + (int32_t)((seed >> 8) % (uint32_t)(vocab - 3));
    }
}

/* logits after the suffix, then after each of AFTER tokens; the statistics at the end */
static int finish(rsr_session *s, const int32_t *suffix, int32_t n, const int32_t *after, float *logits,
                  rsr_attention_stats *stats) {
    if (api.session_eval(s, suffix, n, logits) != RSR_OK) return -1;
    for (int32_t i = 0; i < AFTER; i++)
        if (api.session_eval(s, after + i, 1, logits + (size_t)(i + 1) * (size_t)vocab) != RSR_OK) return -1;
    for (int32_t l = 0; l < layers; l++)
        if (api.session_attention_stats(s, l, &stats[l]) != RSR_OK) return -1;
    return 0;
}

static void check_mode(rsr_model *m, const char *name, rsr_session_params sp, int32_t keep) {
    int32_t all[PROMPT + REPLY + JUNK], suffix[SUFFIX], after[AFTER], fresh[PROMPT + REPLY + JUNK + SUFFIX];
    tokens_of(all, PROMPT + REPLY + JUNK, 11), tokens_of(suffix, SUFFIX, 12), tokens_of(after, AFTER, 13);
    const size_t nlog = (size_t)(1 + AFTER) * (size_t)vocab;
    float *want = malloc(sizeof(float) * nlog), *got = malloc(sizeof(float) * nlog);
    rsr_attention_stats *ws = malloc(sizeof *ws * (size_t)layers), *gs = malloc(sizeof *gs * (size_t)layers);
    rsr_session *s = NULL, *f = NULL;
    EXPECT(api.session_create(m, &sp, &s) == RSR_OK && api.session_create(m, &sp, &f) == RSR_OK, "%s: sessions: %s",
           name, api.model_errmsg(m));
    /* the reference: the kept tokens and the suffix as one prompt */
    memcpy(fresh, all, sizeof(int32_t) * (size_t)keep), memcpy(fresh + keep, suffix, sizeof suffix);
    EXPECT(finish(f, fresh, keep + SUFFIX, after, want, ws) == 0, "%s: reference: %s", name, api.session_errmsg(f));
    /* a prompt, a reply decoded a token at a time, more tokens; then back into the reply */
    EXPECT(api.session_eval(s, all, PROMPT, NULL) == RSR_OK, "%s: prompt: %s", name, api.session_errmsg(s));
    for (int32_t i = PROMPT; i < PROMPT + REPLY; i++) EXPECT(api.session_eval(s, all + i, 1, NULL) == RSR_OK, "decode");
    EXPECT(api.session_eval(s, all + PROMPT + REPLY, JUNK, NULL) == RSR_OK, "%s: more", name);
    EXPECT(api.session_reusable(s) == api.session_position(s), "%s: %d of %d positions reusable", name,
           api.session_reusable(s), api.session_position(s));
    EXPECT(api.session_truncate(s, keep) == RSR_OK && api.session_position(s) == keep, "%s: truncate: %s", name,
           api.session_errmsg(s));
    EXPECT(finish(s, suffix, SUFFIX, after, got, gs) == 0, "%s: after truncating: %s", name, api.session_errmsg(s));
    int32_t differ = 0;
    for (size_t i = 0; i < nlog; i++) differ += memcmp(&want[i], &got[i], sizeof(float)) != 0;
    EXPECT(differ == 0, "%s: %d of %zu logits differ from a session that evaluated only the kept tokens", name, differ,
           nlog);
    for (int32_t l = 0; l < layers; l++)
        EXPECT(ws[l].keys == gs[l].keys && ws[l].scanned == gs[l].scanned && ws[l].kept == gs[l].kept &&
                   ws[l].bounded == gs[l].bounded,
               "%s: layer %d: %lld keys, %lld scanned, %lld kept against %lld, %lld, %lld", name, l,
               (long long)gs[l].keys, (long long)gs[l].scanned, (long long)gs[l].kept, (long long)ws[l].keys,
               (long long)ws[l].scanned, (long long)ws[l].kept);
    /* truncating to the end changes nothing; to 0 is a reset */
    int32_t pos = api.session_position(s);
    EXPECT(api.session_truncate(s, pos) == RSR_OK && api.session_position(s) == pos, "%s: truncate to the end", name);
    EXPECT(api.session_truncate(s, 0) == RSR_OK && api.session_position(s) == 0, "%s: truncate to 0", name);
    api.session_free(s), api.session_free(f);
    free(want), free(got), free(ws), free(gs);
}

/* Keys and values of layer l, KV head 0, positions [first, first + n) of s, widened */
static int kv_of(rsr_session *s, int32_t l, int32_t first, int32_t n, int32_t d, float *kv) {
    return api.session_kv_read(s, l, 0, first, n, kv, kv + (size_t)n * (size_t)d) == RSR_OK ? 0 : -1;
}

static void check_windowed(rsr_model *m) {
    enum { N = PROMPT + REPLY + JUNK };
    rsr_model_info info;
    api.model_get_info(m, &info);
    layers = info.num_layers, vocab = info.vocab_size;
    rsr_session_params sp = {.max_positions = N + SUFFIX + AFTER, .attention = RSR_ATTENTION_DENSE, .batch = STEP};
    check_mode(m, "windowed", sp, N - STEP); /* back STEP positions: the most a ring keeps */

    int32_t all[N];
    tokens_of(all, N, 11);
    rsr_session *s = NULL, *full = NULL;
    rsr_session_params fp = sp;
    fp.batch = 0; /* W − 1 + 256 positions or more: every position kept */
    EXPECT(api.session_create(m, &sp, &s) == RSR_OK && api.session_create(m, &fp, &full) == RSR_OK, "sessions: %s",
           api.model_errmsg(m));
    EXPECT(api.session_eval(s, all, N, NULL) == RSR_OK && api.session_eval(full, all, N, NULL) == RSR_OK, "eval: %s",
           api.session_errmsg(s));
    char want[64];
    snprintf(want, sizeof want, "position %d is the earliest", N - STEP);
    EXPECT(api.session_truncate(s, N - STEP - 1) == RSR_ERR_INVALID_ARGUMENT && strstr(api.session_errmsg(s), want),
           "one position past the ring: %s", api.session_errmsg(s));
    EXPECT(api.session_position(s) == N, "a refused truncation changes nothing");
    EXPECT(api.session_reachable(s, N - STEP) == N - STEP && api.session_reachable(s, N - STEP - 1) == 0 &&
               api.session_reachable(s, N + 5) == N,
           "reachable: %d %d %d", api.session_reachable(s, N - STEP), api.session_reachable(s, N - STEP - 1),
           api.session_reachable(s, N + 5));
    /* the last STEP positions of every layer as the full session has them; a windowed layer refuses position 0 */
    const int32_t d = info.head_dim;
    float *a = malloc(sizeof(float) * 4 * STEP * (size_t)d), *b = a + 2 * STEP * (size_t)d;
    int32_t windowed = 0;
    for (int32_t l = 0; l < layers; l++) {
        EXPECT(kv_of(s, l, N - STEP, STEP, d, a) == 0 && kv_of(full, l, N - STEP, STEP, d, b) == 0 &&
                   memcmp(a, b, sizeof(float) * 2 * STEP * (size_t)d) == 0,
               "layer %d: the last %d keys and values differ from a full cache's", l, STEP);
        if (kv_of(s, l, 0, 1, d, a) != 0) {
            windowed++;
            EXPECT(strstr(api.session_errmsg(s), "windowed layer"), "layer %d: %s", l, api.session_errmsg(s));
        }
    }
    EXPECT(windowed > 0 && windowed < layers, "%d of %d layers keep a ring: the model should have both kinds", windowed,
           layers);
    /* a batch takes STEP tokens of s per step: the logits of its own call */
    rsr_batch *bt = NULL;
    float *lb = malloc(sizeof(float) * 2 * (size_t)vocab), *ls = lb + vocab;
    EXPECT(api.batch_create(m, 0, &bt) == RSR_OK, "batch");
    api.session_reset(s), api.session_reset(full);
    rsr_seq seq = {.session = s, .tokens = all, .n = 5 * STEP + 3, .output = RSR_OUTPUT_LOGITS, .logits = lb};
    EXPECT(api.batch_eval(bt, &seq, 1) == RSR_OK && api.session_eval(full, all, 5 * STEP + 3, ls) == RSR_OK,
           "batch: %s", api.batch_errmsg(bt));
    EXPECT(memcmp(lb, ls, sizeof(float) * (size_t)vocab) == 0, "a batch's logits differ from the session's own");
    api.batch_free(bt);
    free(a), free(lb);
    api.session_free(s), api.session_free(full);
}

static rsr_model *open_model(const char *path) {
    char err[1024];
    if (rsr_api_load(&api, path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    rsr_model *m = NULL;
    rsr_model_params mp = {.num_threads = 2};
    if (api.model_open(&m, &mp) != RSR_OK) {
        fprintf(stderr, "%s\n", api.model_errmsg(m));
        exit(1);
    }
    return m;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: test_truncate MODEL.so [WINDOWED.so]\n");
        return 2;
    }
    rsr_model *m = open_model(argv[1]);
    rsr_model_info info;
    api.model_get_info(m, &info);
    layers = info.num_layers, vocab = info.vocab_size;
    rsr_session_params sp = {0};
    sp.max_positions = PROMPT + REPLY + JUNK + SUFFIX + AFTER;
    sp.attention = RSR_ATTENTION_DENSE;
    check_mode(m, "dense", sp, KEEP);
    sp.attention = RSR_ATTENTION_LOUVER;
    sp.louver_policy = RSR_LOUVER_BUDGET;
    sp.louver_budget = 0.05f;
    sp.louver_block = 16;
    check_mode(m, "louver", sp, KEEP);

    rsr_session *s = NULL;
    int32_t t[4];
    tokens_of(t, 4, 5);
    EXPECT(api.session_create(m, &sp, &s) == RSR_OK && api.session_eval(s, t, 4, NULL) == RSR_OK, "session");
    EXPECT(api.session_truncate(s, 5) == RSR_ERR_INVALID_ARGUMENT && strstr(api.session_errmsg(s), "holds 4"),
           "past the end: %s", api.session_errmsg(s));
    EXPECT(api.session_truncate(s, -1) == RSR_ERR_INVALID_ARGUMENT, "a negative position");
    EXPECT(api.session_position(s) == 4, "a refused truncation changes nothing");
    EXPECT(api.session_reachable(s, 3) == 3 && api.session_reachable(s, 9) == 4 && api.session_reachable(s, -2) == 0,
           "reachable without windows: every position");
    EXPECT(api.session_truncate(NULL, 0) == RSR_ERR_INVALID_ARGUMENT && api.session_reusable(NULL) == 0, "NULL");
    api.session_free(s);
    api.model_close(m);
    if (argc == 3) {
        rsr_model *w = open_model(argv[2]);
        check_windowed(w);
        api.model_close(w);
    }
    printf("test_truncate: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
