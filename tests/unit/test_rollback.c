/*
 * test_rollback.c — a step that fails part-way leaves the session as it was before the call.
 * Usage: test_rollback MODEL.so   (two layers or more; see tests/CMakeLists.txt for the shape)
 *
 * A session with Louver attention (blocks of 16 keys, the budget policy, so that which keys are
 * scanned depends on every indexed key's codes) evaluates a prompt; then the memory cap
 * (RLIMIT_DATA, what rsr-run --max-memory sets) is put a few pages above what the process holds
 * and a 64-token step is tried. The cap is raised a page at a time until the step succeeds;
 * after every failure the cap is lifted, other tokens are evaluated at the same positions, and
 * the logits and every layer's attention statistics must equal, bit for bit, those of a session
 * that never failed. Among the failures there must be one in a layer after the first: the
 * earlier layers' Louver indexes had grown over keys of the failed step, which the retry
 * writes again.
 *
 * Every allocation of 4 KiB or more is made a mapping of its own (mallopt), so each page of the
 * cap moves the failure to a later allocation. Sanitizers reserve terabytes of shadow memory, so
 * the test skips itself under them.
 */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "rsr_dl.h"

#include "expect.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define SANITIZED 1
#endif
#endif

enum { PROMPT = 230, STEP = 64, AFTER = 3, MAX_PAGES = 16384 };

static rsr_api api;
static int32_t layers, vocab;

static long vm_data_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmData:", 7)) kb = atol(line + 7);
    if (f) fclose(f);
    return kb * 1024;
}

static int set_cap(rlim_t bytes) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_DATA, &rl) != 0) return -1;
    rl.rlim_cur = bytes;
    return setrlimit(RLIMIT_DATA, &rl);
}

static void tokens_of(int32_t *t, int32_t n, uint32_t seed) {
    for (int32_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        t[i] = 3 + (int32_t)((seed >> 8) % (uint32_t)(vocab - 3));
    }
}

/* What a session shows after the prompt, a step of tokens y and AFTER more tokens: the logits
 * after each and every layer's attention statistics at the end. */
typedef struct {
    float *logits;              /* [1 + AFTER][vocab] */
    rsr_attention_stats *stats; /* [layers] */
} outcome;

static int finish(rsr_session *s, const int32_t *y, outcome *o) {
    if (api.session_eval(s, y, STEP, o->logits) != RSR_OK) return -1;
    for (int32_t i = 0; i < AFTER; i++)
        if (api.session_eval(s, y + i, 1, o->logits + (size_t)(i + 1) * (size_t)vocab) != RSR_OK) return -1;
    for (int32_t l = 0; l < layers; l++)
        if (api.session_attention_stats(s, l, &o->stats[l]) != RSR_OK) return -1;
    return 0;
}

static int same_stats(const rsr_attention_stats *a, const rsr_attention_stats *b) {
    return a->keys == b->keys && a->bounded == b->bounded && a->scanned == b->scanned && a->kept == b->kept &&
           a->heads == b->heads && a->dense_fallbacks == b->dense_fallbacks && !memcmp(&a->tau_min, &b->tau_min, 4) &&
           !memcmp(&a->tau_max, &b->tau_max, 4) && !memcmp(&a->dropped_bound, &b->dropped_bound, 8);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_rollback MODEL.so\n");
        return 2;
    }
#ifdef SANITIZED
    printf("skipped: a memory cap cannot apply under sanitizers\n");
    return 77;
#endif
    mallopt(M_MMAP_THRESHOLD, 4096);
    mallopt(M_TOP_PAD, 0);
    mallopt(M_TRIM_THRESHOLD, 0);
    char err[1024];
    if (rsr_api_load(&api, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rsr_model *m = NULL;
    rsr_model_params mp = {.num_threads = 1};
    if (api.model_open(&m, &mp) != RSR_OK) {
        fprintf(stderr, "%s\n", api.model_errmsg(m));
        return 1;
    }
    rsr_model_info info;
    api.model_get_info(m, &info);
    layers = info.num_layers, vocab = info.vocab_size;
    EXPECT(layers >= 2 && info.max_positions >= PROMPT + STEP + AFTER, "the model needs 2 layers and %d positions",
           PROMPT + STEP + AFTER);
    rsr_session_params sp = {0};
    sp.max_positions = PROMPT + STEP + AFTER;
    sp.attention = RSR_ATTENTION_LOUVER;
    sp.louver_policy = RSR_LOUVER_BUDGET;
    sp.louver_budget = 0.05f;
    sp.louver_block = 16;
    sp.batch = STEP;

    int32_t prompt[PROMPT], x[STEP], y[STEP];
    tokens_of(prompt, PROMPT, 1), tokens_of(x, STEP, 2), tokens_of(y, STEP, 3);
    const size_t nlog = (size_t)(1 + AFTER) * (size_t)vocab;
    outcome want = {malloc(sizeof(float) * nlog), malloc(sizeof(rsr_attention_stats) * (size_t)layers)};
    outcome got = {malloc(sizeof(float) * nlog), malloc(sizeof(rsr_attention_stats) * (size_t)layers)};
    float *scratch = malloc(sizeof(float) * (size_t)vocab);
    rsr_session *s = NULL;
    EXPECT(api.session_create(m, &sp, &s) == RSR_OK, "session: %s", api.model_errmsg(m));
    EXPECT(api.session_eval(s, prompt, PROMPT, scratch) == RSR_OK && finish(s, y, &want) == 0, "reference: %s",
           api.session_errmsg(s));
    api.session_free(s);

    struct rlimit original;
    getrlimit(RLIMIT_DATA, &original);
    int failed = 0, failed_late = 0, succeeded = 0;
    for (int32_t pages = 0; pages < MAX_PAGES && !succeeded; pages++) {
        s = NULL;
        if (api.session_create(m, &sp, &s) != RSR_OK || api.session_eval(s, prompt, PROMPT, scratch) != RSR_OK) {
            EXPECT(0, "session without a cap: %s", s ? api.session_errmsg(s) : api.model_errmsg(m));
            break;
        }
        set_cap((rlim_t)vm_data_bytes() + (rlim_t)pages * 4096);
        rsr_status st = api.session_eval(s, x, STEP, scratch);
        setrlimit(RLIMIT_DATA, &original);
        if (st == RSR_OK) {
            succeeded = 1;
        } else {
            const char *msg = api.session_errmsg(s);
            failed++;
            if (getenv("ROLLBACK_VERBOSE")) fprintf(stderr, "+%d pages: %s\n", pages, msg);
            if (strncmp(msg, "layer 0:", 8) && !strncmp(msg, "layer ", 6)) failed_late++;
            EXPECT(st == RSR_ERR_OUT_OF_MEMORY, "cap +%d pages: status %s (%s)", pages, api.status_to_string(st), msg);
            EXPECT(api.session_position(s) == PROMPT, "cap +%d pages: position %d after the failed step", pages,
                   api.session_position(s));
            int ok = finish(s, y, &got) == 0;
            EXPECT(ok, "cap +%d pages: the retry failed: %s", pages, api.session_errmsg(s));
            if (ok) {
                EXPECT(!memcmp(got.logits, want.logits, sizeof(float) * nlog),
                       "cap +%d pages (failed: %s): the logits differ from a session that never failed", pages, msg);
                for (int32_t l = 0; l < layers; l++)
                    EXPECT(same_stats(&got.stats[l], &want.stats[l]),
                           "cap +%d pages (failed: %s): layer %d scanned %lld, kept %lld; never failed: %lld, %lld",
                           pages, msg, l, (long long)got.stats[l].scanned, (long long)got.stats[l].kept,
                           (long long)want.stats[l].scanned, (long long)want.stats[l].kept);
            }
        }
        api.session_free(s);
    }
    EXPECT(succeeded, "the step never succeeded under a cap of up to %d pages", MAX_PAGES);
    EXPECT(failed_late > 0, "no failure in a layer after the first (%d failures)", failed);
    printf("%d capped steps failed (%d in a later layer's Louver growth), then one succeeded\n", failed, failed_late);
    api.model_close(m);
    free(want.logits), free(want.stats), free(got.logits), free(got.stats), free(scratch);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
