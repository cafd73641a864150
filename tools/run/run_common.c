/*
 * run_common.c — what the parts of rsr-run share (rsr-run.h): the loaded API, error exits, and
 * the next-token step every mode uses (exact or int8 logits, greedy or sampled).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rsr-run.h"

rsr_api api;

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fputs("rsr-run: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void flush_stdout(void) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int e = errno ? errno : EIO;
        clearerr(stdout);
        die("stdout: %s", strerror(e));
    }
}

double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void check(rsr_status st, rsr_session *s) {
    if (st != RSR_OK) die("%s", api.session_errmsg(s));
}

void eval_logits(const run_options *o, rsr_session *s, const int32_t *tokens, int32_t n, float *logits) {
    if (o->head_int8)
        check(api.session_eval_int8(s, tokens, n, logits, NULL), s);
    else
        check(api.session_eval(s, tokens, n, logits), s);
}

int32_t eval_next(const run_options *o, rsr_session *s, const int32_t *tokens, int32_t n, sample_state *st) {
    int32_t next;
    rsr_sampler_params sp = run_recent_push(&st->recent, o, tokens, n);
    if (o->head_int8) { /* every logit from the int8 head, then the sampler */
        eval_logits(o, s, tokens, n, st->logits);
        return api.sample(st->logits, st->vocab, &sp, &st->rng, st->probs, st->ids);
    }
    /* greedy: the certified head; sampling: exact logits of the rows that could matter */
    check(api.session_eval_sample(s, tokens, n, &sp, &st->rng, &next, NULL), s);
    return next;
}

rsr_sampler_params run_recent_push(recent_tokens *r, const run_options *o, const int32_t *tokens, int32_t n) {
    recent_push(r, tokens, n);
    return recent_sampler(r, o->sampler);
}

void sample_state_init(sample_state *st, const run_options *o, int32_t vocab) {
    st->vocab = vocab;
    st->rng = o->seed * 0x9e3779b97f4a7c15u + 1;
    st->logits = malloc(sizeof(float) * (size_t)vocab), st->probs = malloc(sizeof(float) * (size_t)vocab);
    st->ids = malloc(sizeof(int32_t) * (size_t)vocab);
    if (!st->logits || !st->probs || !st->ids || !recent_init(&st->recent, o->repeat_last_n)) die("out of memory");
}

void sample_state_free(sample_state *st) { free(st->logits), free(st->probs), free(st->ids), free(st->recent.ids); }

rsr_tokenizer *require_tokenizer(rsr_model *m, const char *why) {
    rsr_tokenizer *tok;
    if (api.model_tokenizer(m, &tok) != RSR_OK) die("%s needs text, but %s", why, api.model_errmsg(m));
    return tok;
}

const char *ctx_advice(int32_t ctx, int32_t model_max) {
    static __thread char buf[96];
    if (ctx < model_max)
        snprintf(buf, sizeof buf, "raise --ctx (the model allows %d)", model_max);
    else
        snprintf(buf, sizeof buf, "%d is the model's whole context", model_max);
    return buf;
}
