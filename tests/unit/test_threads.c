/*
 * test_threads.c — sessions of one model are independent: two threads, each with its own
 * session, evaluate the same prompts (in opposite orders) and must get bit-identical logits to
 * one session evaluating them one at a time. Built also with ThreadSanitizer, which then checks
 * that no session touches another's memory or unsynchronised model state.
 * Usage: test_threads MODEL.so
 */
#include <pthread.h>
#include <stdlib.h>

#include "rsr_dl.h"

enum { PROMPTS = 6, PROMPT_LEN = 6, GENERATED = 4, STEPS = 1 + GENERATED };

static rsr_api api;
static rsr_model *model;
static int32_t vocab;

/* Logits after the prompt and after each greedily generated token: STEPS x vocab floats. */
static int run_prompt(rsr_session *s, int p, float *out) {
    int32_t prompt[PROMPT_LEN];
    for (int i = 0; i < PROMPT_LEN; i++) prompt[i] = (int32_t)((p * 7 + i * 3 + 1) % vocab);
    if (api.session_reset(s) != RSR_OK || api.session_eval(s, prompt, PROMPT_LEN, out) != RSR_OK) return -1;
    for (int g = 1; g < STEPS; g++) {
        int32_t next = api.sample_greedy(out + (size_t)(g - 1) * (size_t)vocab, vocab);
        if (api.session_eval(s, &next, 1, out + (size_t)g * (size_t)vocab) != RSR_OK) return -1;
    }
    return 0;
}

typedef struct job {
    int reverse;
    float *logits;
    int failed;
} job;

static void *worker(void *arg) {
    job *j = arg;
    rsr_session *s;
    rsr_session_params sp = {.max_positions = PROMPT_LEN + GENERATED};
    if (api.session_create(model, &sp, &s) != RSR_OK) {
        j->failed = 1;
        return NULL;
    }
    for (int k = 0; k < PROMPTS; k++) {
        int p = j->reverse ? PROMPTS - 1 - k : k;
        if (run_prompt(s, p, j->logits + (size_t)p * STEPS * (size_t)vocab) != 0) j->failed = 1;
    }
    api.session_free(s);
    return NULL;
}

int main(int argc, char **argv) {
    char err[512];
    if (argc != 2) {
        fprintf(stderr, "usage: test_threads MODEL.so\n");
        return 2;
    }
    if (rsr_api_load(&api, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* One OpenMP thread per session: the threads under test are the application's. */
    rsr_model_params mp = {.num_threads = 1};
    if (api.model_open(&model, &mp) != RSR_OK) {
        fprintf(stderr, "%s\n", api.model_errmsg(model));
        return 1;
    }
    rsr_model_info info;
    api.model_get_info(model, &info);
    vocab = info.vocab_size;
    size_t n = (size_t)PROMPTS * STEPS * (size_t)vocab;
    float *serial = malloc(sizeof(float) * n);
    job jobs[2] = {{0, malloc(sizeof(float) * n), 0}, {1, malloc(sizeof(float) * n), 0}};

    job one = {0, serial, 0};
    worker(&one);
    pthread_t threads[2];
    for (int t = 0; t < 2; t++) pthread_create(&threads[t], NULL, worker, &jobs[t]);
    for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);

    int failures = one.failed + jobs[0].failed + jobs[1].failed;
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; i < n; i++)
            if (memcmp(&serial[i], &jobs[t].logits[i], sizeof(float)) != 0) {
                fprintf(stderr, "FAIL: thread %d, prompt %zu, step %zu, logit %zu: %g, one at a time %g\n", t,
                        i / ((size_t)STEPS * (size_t)vocab), i / (size_t)vocab % STEPS, i % (size_t)vocab,
                        (double)jobs[t].logits[i], (double)serial[i]);
                failures++;
                break;
            }
    printf("%d prompts x %d steps in two threads: %s\n", PROMPTS, STEPS, failures ? "DIFFERENT" : "identical");
    free(serial), free(jobs[0].logits), free(jobs[1].logits);
    api.model_close(model);
    return failures != 0;
}
