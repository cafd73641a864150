/*
 * batch.c — many sequences in one step (rsr_batch_eval, rsr.h).
 *
 * A call's tokens are cut into steps of at most b->cap rows, filled in the order of the
 * sequences: a step holds runs (rt_run), each a consecutive piece of one sequence's tokens, at
 * most its session's batch (a windowed layer's ring has room for that many, rt_kv_layer).
 * rt_forward takes a step's runs through the model with the products of all rows together; the
 * sequences whose last token falls in the step get their outputs from one pass over the LM
 * head's rows (rt_lm_head_many). Everything but the products and the head pass is done row by
 * row or session by session exactly as a session's own step does it, so each session gets the
 * bits it would get alone: the integer products do not depend on which rows share a kernel call,
 * and the head computes each row's sums for each vector in the order of a single call.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu_device.h"

/* The CPU's part of a batch (rsr_batch.dev). */
typedef struct cpu_batch {
    rt_work work;          /* the activations, grown to the widest step asked for (up to cap rows) */
    rt_run *runs;          /* [cap] one step's runs */
    int32_t *tokens;       /* [cap] one step's tokens */
    rt_head_call *heads;   /* [cap] the outputs a step owes */
    rt_head_request *reqs; /* [cap] */
} cpu_batch;

rsr_status rt_cpu_batch_init(rsr_batch *b, int32_t rows) {
    cpu_batch *c = b->dev = calloc(1, sizeof *c);
    if (!c) return rt_set_error(b->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for a batch of %d rows", rows);
    c->runs = malloc(sizeof *c->runs * (size_t)rows);
    c->tokens = malloc(sizeof *c->tokens * (size_t)rows);
    c->heads = malloc(sizeof *c->heads * (size_t)rows);
    c->reqs = malloc(sizeof *c->reqs * (size_t)rows);
    if (!c->runs || !c->tokens || !c->heads || !c->reqs || rt_work_init(&c->work, b->model, 1) != RSR_OK)
        return rt_set_error(b->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for a batch of %d rows", rows);
    return RSR_OK;
}

void rt_cpu_batch_free(rsr_batch *b) {
    cpu_batch *c = b->dev;
    if (!c) return;
    rt_work_free(&c->work);
    free(c->runs), free(c->tokens), free(c->heads), free(c->reqs);
    free(c);
}

/* Sequence i, checked as the session calls check theirs, and against the others. */
static rsr_status check_seq(rsr_batch *b, const rsr_seq *seqs, int32_t i) {
    const rsr_seq *q = &seqs[i];
    const rsr_artifact *a = b->model->a;
    rsr_session *s = q->session;
    if (!s) return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT, "seq %d: no session (NULL)", i);
    if (s->model != b->model)
        return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT, "seq %d: its session belongs to another model", i);
    for (int32_t j = 0; j < i; j++)
        if (seqs[j].session == s)
            return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT,
                                "seq %d: its session is also seq %d's (give a session's tokens as one sequence)", i, j);
    if (!q->tokens || q->n <= 0)
        return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT, "seq %d: no tokens to evaluate", i);
    if (q->n > s->max_positions - s->pos)
        return rt_set_error(b->err, RSR_ERR_CONTEXT_FULL, "seq %d: %d tokens at position %d exceed the context of %d",
                            i, q->n, s->pos, s->max_positions);
    for (int32_t t = 0; t < q->n; t++)
        if (q->tokens[t] < 0 || q->tokens[t] >= a->vocab)
            return rt_set_error(b->err, RSR_ERR_BAD_TOKEN, "seq %d: token %d (at index %d) is outside [0, %d)", i,
                                q->tokens[t], t, a->vocab);
    switch (q->output) {
    case RSR_OUTPUT_NONE: return RSR_OK;
    case RSR_OUTPUT_LOGITS:
        if (!q->logits)
            return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT, "seq %d: no place for the logits (NULL)", i);
        return RSR_OK;
    case RSR_OUTPUT_GREEDY:
    case RSR_OUTPUT_SAMPLE:
        if (!q->token || (q->output == RSR_OUTPUT_SAMPLE && !q->rng))
            return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT, "seq %d: no place for the token or the random state",
                                i);
        if (rt_lm_head_reserve(s) != RSR_OK) /* before any work: a failure here moves nothing */
            return rt_set_error(b->err, RSR_ERR_OUT_OF_MEMORY, "seq %d: out of memory for the greedy head", i);
        return RSR_OK;
    default:
        return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT, "seq %d: output %d is not an rsr_output", i, q->output);
    }
}

/* The head request of sequence q: what its session call would ask for. */
static rt_head_request request_of(const rsr_seq *q) {
    bool sampled = q->output == RSR_OUTPUT_SAMPLE && !rt_sampler_plain_greedy(q->sampler);
    if (q->output == RSR_OUTPUT_SAMPLE && q->tail) *q->tail = 0;
    if (q->output == RSR_OUTPUT_LOGITS) return (rt_head_request){.kind = RT_HEAD_LOGITS, .logits = q->logits};
    if (sampled)
        return (rt_head_request){
            .kind = RT_HEAD_SAMPLE, .token = q->token, .sampler = q->sampler, .rng = q->rng, .tail = q->tail};
    return (rt_head_request){.kind = RT_HEAD_GREEDY, .token = q->token};
}

rsr_status rt_cpu_batch_eval(rsr_batch *b, const rsr_seq *seqs, int32_t n_seqs) {
    cpu_batch *c = b->dev;
    for (int32_t i = 0; i < n_seqs; i++) {
        rsr_status st = check_seq(b, seqs, i);
        if (st != RSR_OK) return st;
    }
    const int32_t cap = b->cap;
    int64_t total = 0;
    for (int32_t j = 0; j < n_seqs; j++) total += seqs[j].n;
    const int32_t need = total < cap ? (int32_t)total : cap;
    if (rt_work_reserve(&c->work, b->model, need) != RSR_OK)
        return rt_set_error(b->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for the activations of %d rows", need);
    int32_t i = 0, done = 0; /* the next token: seqs[i].tokens[done] */
    while (i < n_seqs) {
        int32_t rows = 0, nruns = 0, nheads = 0;
        while (i < n_seqs && rows < cap) {
            const rsr_seq *q = &seqs[i];
            int32_t take = q->n - done < cap - rows ? q->n - done : cap - rows;
            if (take > q->session->batch) take = q->session->batch; /* a step's tokens, as its session's own */
            memcpy(c->tokens + rows, q->tokens + done, sizeof(int32_t) * (size_t)take);
            c->runs[nruns] = (rt_run){q->session, rows, take};
            rows += take, done += take;
            if (done == q->n) {
                if (q->output != RSR_OUTPUT_NONE) {
                    c->reqs[nheads] = request_of(q);
                    c->heads[nheads] = (rt_head_call){q->session, c->work.xn + (size_t)nruns * (size_t)c->work.widest,
                                                      &c->reqs[nheads]};
                    nheads++;
                }
                i++, done = 0;
            } else if (rows < cap) { /* the rest of this sequence waits for the next step */
                nruns++;
                break;
            }
            nruns++;
        }
        rsr_status st = rt_forward(b->model, &c->work, c->tokens, c->runs, nruns, rows, nheads > 0);
        if (st == RSR_OK) st = rt_lm_head_many(c->heads, nheads);
        if (st != RSR_OK)
            return rt_set_error(b->err, st, "a step of %d rows from %d sequences failed: %s", rows, nruns,
                                c->runs[0].s->err[0] ? c->runs[0].s->err : rsr_status_to_string(st));
    }
    return RSR_OK;
}
