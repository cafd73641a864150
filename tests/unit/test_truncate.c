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
 */
#include <stdlib.h>
#include <string.h>

#include "rsr_dl.h"

#include "expect.h"

enum { PROMPT = 100, REPLY = 40, JUNK = 30, KEEP = PROMPT + 23, SUFFIX = 25, AFTER = 3 };

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

static void check_mode(rsr_model *m, const char *name, rsr_session_params sp) {
    int32_t all[PROMPT + REPLY + JUNK], suffix[SUFFIX], after[AFTER], fresh[KEEP + SUFFIX];
    tokens_of(all, PROMPT + REPLY + JUNK, 11), tokens_of(suffix, SUFFIX, 12), tokens_of(after, AFTER, 13);
    const size_t nlog = (size_t)(1 + AFTER) * (size_t)vocab;
    float *want = malloc(sizeof(float) * nlog), *got = malloc(sizeof(float) * nlog);
    rsr_attention_stats *ws = malloc(sizeof *ws * (size_t)layers), *gs = malloc(sizeof *gs * (size_t)layers);
    rsr_session *s = NULL, *f = NULL;
    EXPECT(api.session_create(m, &sp, &s) == RSR_OK && api.session_create(m, &sp, &f) == RSR_OK, "%s: sessions: %s",
           name, api.model_errmsg(m));
    /* the reference: the kept tokens and the suffix as one prompt */
    memcpy(fresh, all, sizeof(int32_t) * KEEP), memcpy(fresh + KEEP, suffix, sizeof suffix);
    EXPECT(finish(f, fresh, KEEP + SUFFIX, after, want, ws) == 0, "%s: reference: %s", name, api.session_errmsg(f));
    /* a prompt, a reply decoded a token at a time, more tokens; then back into the reply */
    EXPECT(api.session_eval(s, all, PROMPT, NULL) == RSR_OK, "%s: prompt: %s", name, api.session_errmsg(s));
    for (int32_t i = PROMPT; i < PROMPT + REPLY; i++) EXPECT(api.session_eval(s, all + i, 1, NULL) == RSR_OK, "decode");
    EXPECT(api.session_eval(s, all + PROMPT + REPLY, JUNK, NULL) == RSR_OK, "%s: more", name);
    EXPECT(api.session_reusable(s) == api.session_position(s), "%s: %d of %d positions reusable", name,
           api.session_reusable(s), api.session_position(s));
    EXPECT(api.session_truncate(s, KEEP) == RSR_OK && api.session_position(s) == KEEP, "%s: truncate: %s", name,
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

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_truncate MODEL.so\n");
        return 2;
    }
    char err[1024];
    if (rsr_api_load(&api, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rsr_model *m = NULL;
    rsr_model_params mp = {.num_threads = 2};
    if (api.model_open(&m, &mp) != RSR_OK) {
        fprintf(stderr, "%s\n", api.model_errmsg(m));
        return 1;
    }
    rsr_model_info info;
    api.model_get_info(m, &info);
    layers = info.num_layers, vocab = info.vocab_size;
    rsr_session_params sp = {0};
    sp.max_positions = PROMPT + REPLY + JUNK + SUFFIX + AFTER;
    sp.attention = RSR_ATTENTION_DENSE;
    check_mode(m, "dense", sp);
    sp.attention = RSR_ATTENTION_LOUVER;
    sp.louver_policy = RSR_LOUVER_BUDGET;
    sp.louver_budget = 0.05f;
    sp.louver_block = 16;
    check_mode(m, "louver", sp);

    rsr_session *s = NULL;
    int32_t t[4];
    tokens_of(t, 4, 5);
    EXPECT(api.session_create(m, &sp, &s) == RSR_OK && api.session_eval(s, t, 4, NULL) == RSR_OK, "session");
    EXPECT(api.session_truncate(s, 5) == RSR_ERR_INVALID_ARGUMENT && strstr(api.session_errmsg(s), "holds 4"),
           "past the end: %s", api.session_errmsg(s));
    EXPECT(api.session_truncate(s, -1) == RSR_ERR_INVALID_ARGUMENT, "a negative position");
    EXPECT(api.session_position(s) == 4, "a refused truncation changes nothing");
    EXPECT(api.session_truncate(NULL, 0) == RSR_ERR_INVALID_ARGUMENT && api.session_reusable(NULL) == 0, "NULL");
    api.session_free(s);
    api.model_close(m);
    printf("test_truncate: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
