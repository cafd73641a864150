/*
 * test_serve_engine — rsr-serve's scheduler (serve_engine.c) under stress, over a fake model
 * (serve_fake_api.h): every request must end (completed, cancelled or refused) within a bound,
 * with no slot, queue entry, session or job left behind.
 *
 *  1. The stall once seen in production: the one busy slot cancelled while requests wait; the
 *     next request in the queue must start with no other event to wake the engine.
 *  2. max_tokens 0 ends at once with no token; a failing step fails exactly its requests; a
 *     request's prompts are taken all together or not at all, and each reply's token ids are its
 *     text's tokens (with no tokenizer, ids and no text).
 *  3. Many client threads submitting, reading as a stream, waiting, and cancelling before
 *     admission, mid-prompt, mid-decode and after the end, at random, against a queue that is
 *     often full, some asking for a grammar (masked by the engine): then the counts add up, the
 *     engine is idle, and every masked reply is a sentence of its grammar or the start of one.
 *  4. Drain: running requests finish within the deadline, the rest are cancelled, and a request
 *     submitted while draining is refused.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expect.h"
#include "serve_fake_api.h"
#include "serve_gbnf.h"

rsr_api api;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static serve_engine *start(int32_t slots, int32_t queue) {
    fake.fail_next = 0;
    serve_engine_params ep = {.slots = slots, .queue = queue, .ctx = FAKE_CTX, .chunk = 7};
    char err[256];
    serve_engine *e = serve_engine_start((rsr_model *)&fake, (rsr_tokenizer *)&fake, &ep, err, sizeof err);
    if (!e) fprintf(stderr, "serve_engine_start: %s\n", err), exit(1);
    return e;
}

/* Waits (under the engine's lock) until the job has generated at least n tokens or ended; false
 * after `bound` seconds, which only a stalled engine takes. */
static bool wait_for(serve_engine *e, serve_job *j, int32_t n, double bound) {
    double until = now() + bound;
    serve_lock(e);
    while (j->finish == SERVE_RUNNING && j->n_gen < n && now() < until) serve_wait(e, 0.05);
    bool ok = j->finish != SERVE_RUNNING || j->n_gen >= n;
    serve_unlock(e);
    return ok;
}

/* Waits until the job holds a slot (or ended); false after `bound` seconds. */
static bool wait_started(serve_engine *e, serve_job *j, double bound) {
    double until = now() + bound;
    serve_lock(e);
    while (j->finish == SERVE_RUNNING && j->t_start == 0 && now() < until) serve_wait(e, 0.05);
    bool ok = j->finish != SERVE_RUNNING || j->t_start != 0;
    serve_unlock(e);
    return ok;
}

static void idle_within(serve_engine *e, double bound, const char *what) {
    serve_metrics mt;
    int32_t active = -1, queued = -1;
    for (double until = now() + bound; now() < until;) {
        serve_get_metrics(e, &mt, &active, &queued);
        if (!active && !queued) return;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    EXPECT(0, "%s: the engine is not idle after %.0f s (active %d, queued %d)", what, bound, active, queued);
}

static void stall_after_cancel(void) {
    fake.step_us = 200;
    fake.eos_every = 0;
    serve_engine *e = start(1, 4);
    serve_job *a = fake_job(3, -1, NULL), *b = fake_job(3, 5, NULL), *c = fake_job(3, 5, NULL);
    EXPECT(serve_submit(e, a), "a refused");
    EXPECT(wait_for(e, a, 2, 5), "a never started");
    EXPECT(serve_submit(e, b) && serve_submit(e, c), "b or c refused");
    serve_release(e, a); /* the only busy slot cancelled while b and c wait; nothing else happens */
    EXPECT(wait_for(e, b, 1, 5), "the engine slept with requests queued: b never started after a was cancelled");
    EXPECT(wait_for(e, c, 99, 5), "c never ended");
    serve_release(e, b), serve_release(e, c);
    idle_within(e, 5, "stall");
    serve_engine_drain(e, 0);
    serve_engine_free(e);
}

static void zero_tokens_and_failure(void) {
    fake.step_us = 0;
    serve_engine *e = start(2, 4);
    serve_job *z = fake_job(4, 0, NULL);
    EXPECT(serve_submit(e, z), "z refused");
    EXPECT(wait_for(e, z, 1, 5), "max_tokens 0 never ended");
    EXPECT(z->finish == SERVE_LENGTH && z->n_gen == 0 && z->n_text == 0, "max_tokens 0: finish %d, %d tokens",
           z->finish, z->n_gen);
    serve_release(e, z);
    long before = fake.seqs;
    serve_job *f = fake_job(4, 50, NULL);
    fake.fail_next = 1;
    EXPECT(serve_submit(e, f), "f refused");
    EXPECT(wait_for(e, f, 999, 5), "f never ended");
    EXPECT(f->finish == SERVE_FAILED && !strcmp(f->err, "the fake step failed"), "a failed step: finish %d, '%s'",
           f->finish, f->err);
    EXPECT(fake.seqs == before + 1, "a failed request stepped again (%ld)", fake.seqs - before);
    serve_release(e, f);
    serve_engine_drain(e, 0);
    serve_engine_free(e);
}

/* A list of many prompts takes turns with a request that arrives behind it, round robin: the
 * request starts after at most one more of the list's prompts than there are slots (with one
 * slot, before the list's third: its second's turn is older than the request's arrival; with two,
 * before its fourth). First come, first served would start it last. */
static void lists_take_turns(void) {
    fake.step_us = 200;
    fake.eos_every = 0;
    for (int32_t slots = 1; slots <= 2; slots++) {
        serve_engine *e = start(slots, 8);
        serve_job *list[4], *b = fake_job(3, 4, NULL);
        for (int k = 0; k < 4; k++) list[k] = fake_job(3 + k, 4, NULL);
        fake.hold = 1; /* b arrives while the list's first prompts hold their slots, however slow this thread */
        EXPECT(serve_submit_all(e, list, 4), "the list refused");
        EXPECT(wait_started(e, list[slots - 1], 5), "the list never started");
        EXPECT(serve_submit(e, b), "b refused");
        fake.hold = 0;
        for (int k = 0; k < 4; k++) EXPECT(wait_for(e, list[k], 99, 5), "the list's prompt %d never ended", k);
        EXPECT(wait_for(e, b, 99, 5), "b never ended");
        serve_job *after = list[slots + 1]; /* the first of the list that must start after b */
        EXPECT(b->t_start <= after->t_start, "%d slots: b started %.1f ms after the list's prompt %d", slots,
               (b->t_start - after->t_start) * 1e3, slots + 1);
        for (int k = 0; k < 4; k++) serve_release(e, list[k]);
        serve_release(e, b);
        idle_within(e, 5, "lists");
        serve_engine_drain(e, 0);
        serve_engine_free(e);
    }
    /* and a stream of single requests does not starve it: with one slot, a request always waiting
     * (the next sent as soon as one starts), the list's last prompt starts before the eighth */
    serve_engine *e = start(1, 16);
    serve_job *list[3], *one[8];
    for (int k = 0; k < 3; k++) list[k] = fake_job(3, 4, NULL);
    EXPECT(serve_submit_all(e, list, 3), "the list refused");
    EXPECT(wait_for(e, list[0], 1, 5), "the list never started");
    for (int k = 0; k < 8; k++) {
        EXPECT(serve_submit(e, one[k] = fake_job(3, 4, NULL)), "request %d refused", k);
        EXPECT(wait_for(e, one[k], 1, 5), "request %d never started", k);
    }
    for (int k = 0; k < 8; k++) EXPECT(wait_for(e, one[k], 99, 5), "request %d never ended", k);
    EXPECT(wait_for(e, list[2], 99, 5), "the list's last prompt never ended");
    EXPECT(list[2]->t_start <= one[7]->t_start, "the list's last prompt waited while requests kept coming");
    for (int k = 0; k < 3; k++) serve_release(e, list[k]);
    for (int k = 0; k < 8; k++) serve_release(e, one[k]);
    idle_within(e, 5, "starve");
    serve_engine_drain(e, 0);
    serve_engine_free(e);
}

/* A request's prompts submitted together: all of them or none (more than the slots and the queue
 * hold is refused, nothing left queued); each reply's token ids are its text's tokens, and an
 * engine without a tokenizer gives the ids with no text. */
static void groups_and_ids(void) {
    fake.step_us = 0;
    fake.eos_every = 0;
    for (int with_tok = 1; with_tok >= 0; with_tok--) {
        serve_engine_params ep = {.slots = 1, .queue = 2, .ctx = FAKE_CTX, .chunk = 7};
        char err[256];
        serve_engine *e =
            serve_engine_start((rsr_model *)&fake, with_tok ? (rsr_tokenizer *)&fake : NULL, &ep, err, sizeof err);
        EXPECT(e && serve_room(e) == 3, "room %d", e ? serve_room(e) : -1);
        serve_job *js[4];
        for (int k = 0; k < 4; k++) js[k] = fake_job(3 + k, 6, NULL);
        EXPECT(!serve_submit_all(e, js, 4), "4 jobs taken where 3 fit");
        serve_metrics mt;
        int32_t active, queued;
        serve_get_metrics(e, &mt, &active, &queued);
        EXPECT(active == 0 && queued == 0, "a refused group left %d active, %d queued", active, queued);
        EXPECT(serve_submit_all(e, js, 3), "3 jobs refused where 3 fit");
        for (int k = 0; k < 3; k++) {
            EXPECT(wait_for(e, js[k], 99, 5), "job %d of the group never ended", k);
            char text[64] = "";
            size_t n = 0, len;
            for (int32_t i = 0; i < js[k]->n_gen && n + 4 < sizeof text; i++) {
                const char *piece = fake_piece(NULL, js[k]->out_ids[i], &len);
                if (!fake_is_special(NULL, js[k]->out_ids[i])) memcpy(text + n, piece, len), n += len;
            }
            EXPECT(js[k]->finish == SERVE_LENGTH && js[k]->n_gen == 6, "job %d: finish %d, %d tokens", k, js[k]->finish,
                   js[k]->n_gen);
            EXPECT(with_tok ? js[k]->n_text == n && !memcmp(js[k]->text, text, n) : js[k]->n_text == 0,
                   "job %d's text is not its ids' (%zu bytes, the ids' %zu)", k, js[k]->n_text, n);
            serve_release(e, js[k]);
        }
        serve_params_free(&js[3]->p), free(js[3]->ids), free(js[3]); /* never taken */
        serve_engine_drain(e, 0);
        serve_engine_free(e);
    }
}

typedef struct client {
    serve_engine *e;
    int id, requests;
    long accepted, refused;
    unsigned seed;
} client;

static atomic_int stalled;

static void *client_main(void *arg) {
    client *cl = arg;
    for (int r = 0; r < cl->requests && !stalled; r++) {
        int kind = rand_r(&cl->seed) % 7, max_tokens = (int)(rand_r(&cl->seed) % 40) - 1;
        serve_job *j = fake_job(1 + (int32_t)(rand_r(&cl->seed) % 30), max_tokens, kind == 5 ? " b" : NULL);
        if (kind == 6) j->p.grammar = gbnf_compile(fake_grammar, strlen(fake_grammar), NULL, 0);
        if (!serve_submit(cl->e, j)) {
            cl->refused++;
            serve_params_free(&j->p), free(j->ids), free(j);
            continue;
        }
        cl->accepted++;
        if (kind == 0) {        /* gone at once: before admission, usually */
        } else if (kind == 1) { /* gone mid-decode */
            if (!wait_for(cl->e, j, 1 + (int32_t)(rand_r(&cl->seed) % 5), 10)) stalled = 1;
        } else if (kind == 2) { /* gone after a moment: mid-prompt or waiting in the queue */
            struct timespec ts = {0, 1000L * (rand_r(&cl->seed) % 300)};
            nanosleep(&ts, NULL);
        } else { /* a stream read to its end, or a reply waited for */
            serve_lock(cl->e);
            double until = now() + 10;
            while (j->finish == SERVE_RUNNING && now() < until) {
                if (j->ready > j->sent) j->sent = j->ready;
                serve_wait(cl->e, 0.05);
            }
            bool ended = j->finish != SERVE_RUNNING;
            if (ended && j->finish != SERVE_FAILED) {
                if (max_tokens >= 0 && j->n_gen > max_tokens) stalled = 2;
                if (j->ready != j->n_text || j->sent > j->ready) stalled = 3;
                if (j->p.grammar && !fake_sentence(j->text, j->n_text, j->finish == SERVE_STOP)) stalled = 4;
            }
            serve_unlock(cl->e);
            if (!ended) stalled = 1;
        }
        serve_release(cl->e, j);
    }
    return NULL;
}

static void many_clients(void) {
    enum { CLIENTS = 12 };
    fake.step_us = 100;
    fake.eos_every = 23;
    serve_engine *e = start(3, 5);
    client cl[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (client){.e = e, .id = i, .requests = 400, .seed = 1234u + (unsigned)i};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    for (int k = 0; k < 50 && !stalled; k++) { /* now and then a step fails */
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
        fake.fail_next = 1;
    }
    long accepted = 0, refused = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        accepted += cl[i].accepted, refused += cl[i].refused;
    }
    EXPECT(!stalled, "clients: %s",
           stalled == 1   ? "a request never ended (the engine stalled)"
           : stalled == 2 ? "a request got more than max_tokens"
           : stalled == 3 ? "a finished request's text was not all ready"
                          : "a masked reply broke its grammar");
    idle_within(e, 5, "clients");
    serve_metrics mt;
    int32_t active, queued;
    serve_get_metrics(e, &mt, &active, &queued);
    EXPECT(mt.requests_ok + mt.requests_cancelled + mt.requests_failed == accepted,
           "ok %ld + cancelled %ld + failed %ld != accepted %ld", mt.requests_ok, mt.requests_cancelled,
           mt.requests_failed, accepted);
    EXPECT(mt.requests_rejected_full == refused, "rejected %ld != refused %ld", mt.requests_rejected_full, refused);
    EXPECT(refused > 0 && mt.requests_cancelled > 0 && mt.requests_failed > 0 && mt.requests_ok > 0,
           "the mix did not happen: ok %ld, cancelled %ld, failed %ld, refused %ld", mt.requests_ok,
           mt.requests_cancelled, mt.requests_failed, refused);
    printf("clients: %ld requests (ok %ld, cancelled %ld, failed %ld), %ld refused, %ld steps\n", accepted,
           mt.requests_ok, mt.requests_cancelled, mt.requests_failed, refused, mt.steps);
    serve_engine_drain(e, 0);
    serve_engine_free(e);
}

static void drain(void) {
    fake.step_us = 100;
    fake.eos_every = 0;
    serve_engine *e = start(2, 4);
    serve_job *shortj = fake_job(3, 4, NULL), *longj = fake_job(3, -1, NULL), *queued = fake_job(3, -1, NULL);
    queued->ids[0] = 2, queued->n_ids = 1;
    EXPECT(serve_submit(e, shortj) && serve_submit(e, longj) && serve_submit(e, queued), "refused before draining");
    EXPECT(wait_for(e, longj, 1, 5), "never started");
    serve_engine_drain(e, 0.2); /* the short one finishes; the long ones would outlast the deadline */
    EXPECT(shortj->finish == SERVE_LENGTH && shortj->n_gen == 4, "drain: the short request ended %d after %d tokens",
           shortj->finish, shortj->n_gen);
    EXPECT(longj->finish == SERVE_CANCELLED || longj->finish == SERVE_STOP || longj->finish == SERVE_LENGTH,
           "drain: the long request is still running");
    EXPECT(queued->finish != SERVE_RUNNING, "drain: a queued request is still running");
    serve_job *late = fake_job(3, 2, NULL);
    EXPECT(!serve_submit(e, late), "a request submitted while draining was taken");
    serve_params_free(&late->p), free(late->ids), free(late);
    serve_release(e, shortj), serve_release(e, longj), serve_release(e, queued);
    serve_engine_free(e);
}

/* tool_choice auto's grammar: free until the trigger (" a") appears, then the grammar's from there
 * on: each reply is free text, then (once " a" comes) a sentence of the grammar or the start of one. */
static void lazy_grammar(void) {
    static const char g[] = "root ::= \" a\" \"x\"{2} \"c\"";
    fake.step_us = 0;
    fake.eos_every = 0;
    serve_engine *e = start(2, 40);
    serve_job *js[40];
    int fired = 0;
    for (int k = 0; k < 40; k++) {
        js[k] = fake_job(2 + k % 5, 24, NULL);
        js[k]->p.lazy = gbnf_compile(g, strlen(g), NULL, 0);
        js[k]->p.has_seed = true, js[k]->p.seed = (uint64_t)k;
        snprintf(js[k]->p.trigger, sizeof js[k]->p.trigger, " a");
        EXPECT(serve_submit(e, js[k]), "lazy %d refused", k);
    }
    for (int k = 0; k < 40; k++) {
        serve_job *j = js[k];
        EXPECT(wait_for(e, j, 999, 10), "lazy %d never ended", k);
        serve_lock(e);
        const char *at = j->text ? memmem(j->text, j->n_text, " a", 2) : NULL;
        if (at) {
            size_t from = (size_t)(at - j->text), n = j->n_text - from;
            bool whole = n == 5 && !memcmp(at, " axxc", 5), start = n < 5 && !memcmp(at, " axxc", n);
            EXPECT(whole || (start && j->finish == SERVE_LENGTH), "lazy %d: after the trigger '%.*s' (finish %d)", k,
                   (int)n, at, j->finish);
            EXPECT(!whole || j->finish == SERVE_STOP, "lazy %d: the grammar whole, the reply went on", k);
            fired++;
        }
        serve_unlock(e);
        serve_release(e, j);
    }
    EXPECT(fired >= 10, "only %d of 40 replies met the trigger", fired);
    idle_within(e, 5, "lazy");
    serve_engine_drain(e, 0);
    serve_engine_free(e);
}

int main(void) {
    fake_api_install(&api);
    stall_after_cancel();
    zero_tokens_and_failure();
    groups_and_ids();
    lists_take_turns();
    many_clients();
    lazy_grammar();
    drain();
    EXPECT(fake.sessions == 0, "%d sessions left", (int)fake.sessions);
    printf("test_serve_engine: %d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
