/*
 * test_threads.c — sessions of one model are independent: two threads, each with its own
 * session, evaluate the same prompts (in opposite orders) and must get bit-identical logits to
 * one session evaluating them one at a time. And the model's tokenizer is used by six threads at
 * once, as rsr.h allows: three render chat templates (its own Jinja template, a built-in one, and
 * a failing context whose message each thread must read back as its own), two encode different
 * texts and one decodes, each getting what it got alone. Built also with ThreadSanitizer, which
 * then checks that no session touches another's memory or unsynchronised model state, and that
 * the tokenizer's calls share none.
 * Usage: test_threads MODEL.so [TOKENIZER.json: the renderings' tokenizer, else the model's]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- chat templates rendered, texts encoded and decoded, in threads at once ---- */

static rsr_tokenizer *tok;
static const char *builtin = "llama2"; /* the first built-in template this vocabulary has the tokens of */
static const char jinja[] = "{% for m in messages %}<{{ m.role }}>{{ m.content | upper }}{% endfor %}"
                            "{% if add_generation_prompt %}<assistant>{% endif %}";
static const char context[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"hello there\"}, {\"role\": "
                              "\"assistant\", \"content\": \"hi\"}], \"add_generation_prompt\": true}";

enum { JOBS = 6 };
static const char *const texts[2] = {"hello there, hello again",
                                     "Some longer text: numbers 12345, punctuation (yes!) and\nnew lines."};

typedef struct render_job {
    int kind;        /* 0: the model's template, 1: a built-in, 2: a context that fails, 3 and 4: encode
                        texts[kind - 3], 5: decodes the ids of texts[1] */
    char want[256];  /* what rendering or decoding alone gave */
    int32_t ids[64]; /* what encoding alone gave */
    int32_t n_ids;
    int failed;
} render_job;

static int render_once(int kind, char *out, size_t cap);

/* Job j's call once: 0 and its output in out / ids when it succeeded. */
static int tok_call(const render_job *j, char *out, size_t cap, int32_t *ids, int32_t *n_ids, const int32_t *in,
                    int32_t n_in) {
    if (j->kind <= 2) return render_once(j->kind, out, cap);
    size_t len = 0;
    if (j->kind == 5) return api.tokenizer_decode(tok, in, n_in, 0, out, cap, &len) == RSR_OK ? 0 : -1;
    return api.tokenizer_encode(tok, texts[j->kind - 3], -1, 0, ids, 64, n_ids) == RSR_OK && *n_ids > 0 ? 0 : -1;
}

static int render_once(int kind, char *out, size_t cap) {
    size_t len = 0;
    const char *ctx = kind == 2 ? "[1, 2]" : context;
    rsr_status st =
        api.tokenizer_apply_chat_template_json(tok, kind == 1 ? builtin : "model", ctx, strlen(ctx), out, cap, &len);
    if (kind == 2) { /* its own failure's message, not another thread's */
        snprintf(out, cap, "%s", api.tokenizer_errmsg(tok));
        return st == RSR_ERR_INVALID_ARGUMENT && strstr(out, "not a JSON object") ? 0 : -1;
    }
    return st == RSR_OK ? 0 : -1;
}

static const render_job *decoded; /* the job whose ids job 5 decodes */

static void *render_worker(void *arg) {
    render_job *j = arg;
    char out[256];
    int32_t ids[64], n = 0;
    for (int k = 0; k < 200 && !j->failed; k++) {
        j->failed = tok_call(j, out, sizeof out, ids, &n, decoded->ids, decoded->n_ids) != 0;
        if (j->kind == 3 || j->kind == 4)
            j->failed |= n != j->n_ids || memcmp(ids, j->ids, sizeof *ids * (size_t)n) != 0;
        else
            j->failed |= strcmp(out, j->want) != 0;
    }
    return NULL;
}

/* The tokenizer at path (a tokenizer.json), or the model's own when path is NULL. */
static int open_tokenizer(const char *path) {
    if (!path) return api.model_tokenizer(model, &tok) == RSR_OK ? 0 : -1;
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (data = malloc((size_t)n)))
        n = (long)fread(data, 1, (size_t)n, f);
    if (f) fclose(f);
    rsr_status st = data && n > 0 ? api.tokenizer_create(data, (size_t)n, &tok) : RSR_ERR_NOT_FOUND;
    free(data);
    if (st != RSR_OK) fprintf(stderr, "FAIL: %s: %s\n", path, tok ? api.tokenizer_errmsg(tok) : "not read");
    return st == RSR_OK ? 0 : -1;
}

static int renders_in_threads(const char *path) {
    if (open_tokenizer(path) != 0) return path ? 1 : (printf("no tokenizer: renderings not tried\n"), 0);
    if (api.tokenizer_set_chat_template(tok, jinja, strlen(jinja)) != RSR_OK) {
        fprintf(stderr, "FAIL: the template: %s\n", api.tokenizer_errmsg(tok));
        return 1;
    }
    render_job jobs[JOBS];
    for (int k = 0; k < JOBS; k++) jobs[k] = (render_job){.kind = k};
    decoded = &jobs[4];
    int failures = 0;
    static const char *const builtins[] = {"llama3", "bitnet", "llama2"};
    for (int k = 2; k >= 0; k--) {
        builtin = builtins[k];
        if (render_once(1, jobs[1].want, sizeof jobs[1].want) == 0) break;
    }
    for (int k = 0; k < JOBS; k++) /* in order: job 5 decodes what job 4 encoded */
        if (tok_call(&jobs[k], jobs[k].want, sizeof jobs[k].want, jobs[k].ids, &jobs[k].n_ids, jobs[4].ids,
                     jobs[4].n_ids) != 0) {
            fprintf(stderr, "FAIL: tokenizer call %d alone: %s\n", k, jobs[k].want);
            failures++;
        }
    if (strcmp(jobs[5].want, texts[1]) != 0) fprintf(stderr, "FAIL: decoding gave '%s'\n", jobs[5].want), failures++;
    if (strcmp(jobs[0].want, "<user>HELLO THERE<assistant>HI<assistant>") != 0)
        fprintf(stderr, "FAIL: the model's template gave '%s'\n", jobs[0].want), failures++;
    pthread_t threads[JOBS];
    for (int t = 0; t < JOBS; t++) pthread_create(&threads[t], NULL, render_worker, &jobs[t]);
    for (int t = 0; t < JOBS; t++) pthread_join(threads[t], NULL);
    for (int t = 0; t < JOBS; t++)
        if (jobs[t].failed) fprintf(stderr, "FAIL: tokenizer call %d in threads differs or failed\n", t), failures++;
    printf("chat templates rendered, texts encoded and decoded, in %d threads at once (%s): %s\n", JOBS, builtin,
           failures ? "DIFFERENT" : "identical");
    if (path) api.tokenizer_free(tok);
    return failures;
}

int main(int argc, char **argv) {
    char err[512];
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: test_threads MODEL.so [TOKENIZER.json]\n");
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
    failures += renders_in_threads(argc > 2 ? argv[2] : NULL);
    free(serial), free(jobs[0].logits), free(jobs[1].logits);
    api.model_close(model);
    return failures != 0;
}
