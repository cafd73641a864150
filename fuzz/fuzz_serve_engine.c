/*
 * fuzz_serve_engine.c — rsr-serve's scheduler (serve_engine.c, turned by hand: ep.manual) over a
 * fake model (tests/unit/serve_fake_api.h), driven by a program of bytes: submit a request of
 * some prompt length and max_tokens, cancel one (at whatever phase it is in: queued, mid-prompt,
 * mid-decode, ended), read one as a stream reads, make the next step fail, turn the engine, and
 * drain. Requests may ask for structured output as the server's do: a grammar (the grammar
 * field), a JSON schema (response_format: the fake vocabulary cannot write JSON, so such a reply
 * gets stuck and must end, failed, without holding its slot) or tool_choice auto's grammar that
 * starts at a trigger. After every turn: no slot or queue entry beyond the limits, and an engine
 * that says it has nothing to do has no request waiting. At the end: every request ended, every
 * reply held to a grammar is a sentence of it or the start of one, the counts add up, and nothing
 * is left (LeakSanitizer sees the jobs, grammars and sessions).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../tests/unit/serve_fake_api.h"
#include "serve_gbnf.h"

rsr_api api;

/* structure 1: the grammar; 2: a JSON schema; 3: tool_choice auto's grammar after " a" */
static void structure(serve_job *j, int kind) {
    if (kind == 1) j->p.grammar = gbnf_compile(fake_grammar, strlen(fake_grammar), NULL, 0);
    if (kind == 2) {
        cJSON *schema = cJSON_Parse("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}");
        char err[128], keyword[64];
        j->p.shape = json_shape_compile(schema, err, sizeof err, keyword);
        cJSON_Delete(schema);
    }
    if (kind == 3) {
        static const char g[] = "root ::= \" a\" \"x\"{2} \"c\"";
        j->p.lazy = gbnf_compile(g, strlen(g), NULL, 0);
        snprintf(j->p.trigger, sizeof j->p.trigger, " a");
    }
}

enum { SLOTS = 3, QUEUE = 4, MAX_JOBS = 64 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool installed;
    if (!installed) fake_api_install(&api), installed = true;
    fake.step_us = 0;
    fake.eos_every = 17;
    fake.fail_next = 0;
    serve_engine_params ep = {.slots = SLOTS, .queue = QUEUE, .ctx = 64, .chunk = 5, .manual = true};
    char err[128];
    serve_engine *e = serve_engine_start((rsr_model *)&fake, (rsr_tokenizer *)&fake, &ep, err, sizeof err);
    assert(e);
    serve_job *held[MAX_JOBS]; /* the connections' references */
    int n_held = 0;
    long accepted = 0, refused = 0;
    for (size_t i = 0; i + 1 < size; i += 2) {
        uint8_t op = data[i] % 6, arg = data[i + 1];
        if (op == 0 && n_held < MAX_JOBS) {                                         /* submit */
            int32_t n_ids = 1 + arg % 40, max_tokens = (int32_t)(arg / 40) * 7 - 1; /* -1, 6, 13, ... */
            if (n_ids + (max_tokens > 0 ? max_tokens : 0) >= ep.ctx) max_tokens = -1;
            serve_job *j = fake_job(n_ids, max_tokens, arg & 1 ? "c" : NULL);
            structure(j, (arg >> 1) % 4 == 0 ? 0 : (arg * 7 >> 3) % 4); /* half of them plain */
            if (serve_submit(e, j)) {
                held[n_held++] = j, accepted++;
            } else {
                serve_params_free(&j->p), free(j->ids), free(j);
                refused++;
            }
        } else if (op == 1 && n_held) { /* the client goes away */
            int k = arg % n_held;
            serve_release(e, held[k]);
            held[k] = held[--n_held];
        } else if (op == 2 && n_held) { /* a stream sends what is ready */
            serve_job *j = held[arg % n_held];
            serve_lock(e);
            assert(j->ready <= j->n_text && j->sent <= j->ready);
            j->sent = j->ready;
            serve_unlock(e);
        } else if (op == 3) {
            fake.fail_next = 1;
        } else if (op == 4) { /* turns */
            for (int t = 0; t < 1 + arg % 8; t++) {
                int32_t stepped = serve_engine_turn(e);
                serve_metrics mt;
                int32_t active, queued;
                serve_get_metrics(e, &mt, &active, &queued);
                assert(active <= stepped && queued <= SLOTS + QUEUE);
                assert(stepped || !queued); /* idle with requests waiting: the stall */
            }
        } else if (op == 5 && arg < 8) {
            break; /* a drain in the middle of everything */
        }
    }
    serve_engine_drain(e, 0);
    for (int k = 0; k < n_held; k++) {
        serve_job *j = held[k];
        assert(j->finish != SERVE_RUNNING);
        const bool held_to = j->finish != SERVE_FAILED && j->finish != SERVE_CANCELLED;
        const bool whole = j->finish == SERVE_STOP && j->p.n_stop == 0; /* a stop string cuts the end */
        if (held_to && j->p.grammar && !j->p.trigger[0]) assert(fake_sentence(j->text, j->n_text, whole));
        const char *at = held_to && j->p.trigger[0] && j->text ? memmem(j->text, j->n_text, " a", 2) : NULL;
        if (at) { /* tool_choice auto: from the trigger on, " axxc" or the start of it */
            const size_t from = (size_t)(at - j->text), n = j->n_text - from;
            assert(n <= 5 && !memcmp(at, " axxc", n) && (!whole || n == 5));
        }
        serve_release(e, j);
    }
    serve_metrics mt;
    int32_t active, queued;
    serve_get_metrics(e, &mt, &active, &queued);
    assert(!active && !queued);
    assert(mt.requests_ok + mt.requests_cancelled + mt.requests_failed == accepted);
    assert(mt.requests_rejected_full == refused);
    serve_engine_free(e);
    assert(fake.sessions == 0);
    return 0;
}
