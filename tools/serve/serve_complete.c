/*
 * serve_complete.c — POST /v1/completions (each prompt of a list a job of the engine) and
 * /v1/chat/completions: a request's admission (the rules of serve_admit.c applied to its prompts'
 * tokens, and the tools' grammar), its jobs given to the engine, its prompts scored by the
 * embedder when it asks for echo with logprobs, the wait for the jobs, and the reply (whole or
 * streamed, serve_reply.c). Uses the engine (serve_engine.c), the prompts of serve_prompt.c,
 * the embedder (serve_embed.c), the tools' grammars (serve_tools.c) and serve_http.c's replies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "serve_server.h"

/* A job the engine never took: its params, prompt and itself freed. */
static void job_drop(serve_job *j) {
    if (!j) return;
    serve_params_free(&j->p);
    free(j->ids), free(j);
}

static void jobs_drop(serve_job **js, int32_t n) {
    for (int32_t k = 0; js && k < n; k++) job_drop(js[k]);
    free(js);
}

static void jobs_release(server *sv, serve_job **js, int32_t n) {
    for (int32_t k = 0; k < n; k++) serve_release(sv->e, js[k]);
    free(js);
}

/* tool_choice auto: the model may write text or calls; from where a call begins in its format (the
 * text <tool_call> anywhere, or a reply that opens as the call's JSON: {"name", [{"name",
 * {"tool_calls") the calls' grammar holds the rest, so that a call that starts is one that parses
 * and holds its schema. Where the marker is a special token (not text), the reply stays free. */
static bool lazy_tool_grammar(server *sv, serve_params *p) {
    bool at_start;
    const char *trigger = serve_tool_trigger(sv->tool_format, sv->tool_marker_text, &at_start);
    if (!trigger) return true;
    char err[512];
    p->lazy = serve_tool_grammar(sv->tool_format, p->tools, NULL, p->parallel_tool_calls, sv->tool_marker_text, err,
                                 sizeof err);
    snprintf(p->trigger, sizeof p->trigger, "%s", trigger);
    p->trigger_at_start = at_start;
    return true; /* a grammar that cannot be made leaves the reply free, as without it */
}

/* tool_choice required or a named function: the reply is calls in the model's format from its
 * first token, their arguments under the functions' schemas (the structured output's mask). false
 * with a 400 in *r. */
static bool tool_grammar(server *sv, serve_job *j, serve_refusal *r) {
    serve_params *p = &j->p;
    if (p->tools && p->tool_choice == SERVE_TOOLS_AUTO && !p->grammar && !p->shape) return lazy_tool_grammar(sv, p);
    if (!p->tools || (p->tool_choice != SERVE_TOOLS_REQUIRED && p->tool_choice != SERVE_TOOLS_NAMED)) return true;
    if (p->grammar || p->shape)
        return serve_refuse(r, 400, "invalid_request_error", "tool_choice", NULL,
                            "'tool_choice' %s constrains the reply to tool calls: it cannot be given with "
                            "'grammar' or a JSON 'response_format'",
                            p->tool_choice == SERVE_TOOLS_NAMED ? "naming a function" : "required"),
               false;
    char err[512];
    if (!(p->grammar = serve_tool_grammar(sv->tool_format, p->tools, p->tool_name, p->parallel_tool_calls,
                                          sv->tool_marker_text, err, sizeof err)))
        return serve_refuse(r, 400, "invalid_request_error", "tools", NULL, "the tools' calls: %s", err), false;
    return true;
}

/* The request's checks that need the model, each prompt's tokens, and each reply's room in the
 * context: max_tokens is cut to what fits (the reply then ends with "length"), and only a prompt
 * that leaves no room is refused (one that fills the context whole, with max_tokens 0). The rules
 * are serve_admit.c's, given the server's values and the tokenizer's counts. false with the
 * refusal in *r. */
static bool complete_admit(server *sv, serve_job **js, int32_t n, serve_refusal *r) {
    const serve_params *p = &js[0]->p;
    const int32_t ctx = serve_ctx(sv->e);
    const char *prompt_param = p->chat ? "messages" : "prompt";
    char err[512];
    serve_admission a = {.model_id = sv->model_id,
                         .strict_model = sv->strict_model,
                         .tokenizer = sv->tok != NULL,
                         .room = serve_room(sv->e),
                         .model = p->model,
                         .chat = p->chat,
                         .stream = p->stream,
                         .stop = p->n_stop != 0,
                         .grammar = p->grammar != NULL,
                         .shape = p->shape != NULL,
                         .n_prompts = n};
    for (int32_t k = 0; k < n; k++) a.text_prompt = a.text_prompt || js[k]->p.prompt;
    if (!serve_admit(&a, r)) return false;
    for (int32_t k = 0; k < n; k++) {
        serve_job *j = js[k];
        if (!(j->ids = prompt_ids(sv, &j->p, &j->n_ids, err, sizeof err)))
            return serve_refuse_failure(r, prompt_param, err), false;
        if (!serve_admit_prompt(j->n_ids, ctx, &j->p.max_tokens)) {
            char tools[96] = "";
            const char *param = tools_over(sv, &j->p, j->n_ids, ctx, tools, sizeof tools) ? "tools" : prompt_param;
            return serve_refuse_context(r, param, j->p.prompt_list, k, j->n_ids, tools, ctx), false;
        }
    }
    return tool_grammar(sv, js[0], r);
}

/* 12 random bytes (the kernel's generator) as hexadecimal into out (25 bytes); where it fails, the
 * clock and a counter (ids then unique within this process only). */
static void random_hex(char *out, size_t n) {
    unsigned char b[12];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        static unsigned long counter;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long v[3] = {(unsigned long)ts.tv_sec, (unsigned long)ts.tv_nsec,
                              __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED)};
        for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)(v[i / 4] >> (8 * (i % 4)));
    }
    for (size_t i = 0; i < sizeof b && 2 * i + 2 < n; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* POST /v1/completions (each prompt of a list a job of the engine, their choices gathered into one
 * reply) and /v1/chat/completions. With echo and logprobs the embedder scores the prompts while
 * the engine generates; a stream starts once they are scored. */
enum MHD_Result endpoint_complete(server *sv, struct MHD_Connection *c, bool chat, const char *body, size_t len) {
    serve_params *ps;
    int32_t n;
    char err[512];
    const char *param;
    if (!serve_parse_all(body, len, chat, &ps, &n, err, sizeof err, &param)) {
        serve_count_invalid(sv->e);
        return send_error(c, 400, "invalid_request_error", param, NULL, "%s", err);
    }
    if (ps[0].pin_slot > serve_slots_count(sv->e)) {
        const int32_t id = ps[0].pin_slot - 1;
        for (int32_t k = 0; k < n; k++) serve_params_free(&ps[k]);
        free(ps);
        serve_count_invalid(sv->e);
        return send_error(c, 400, "invalid_request_error", "id_slot", NULL,
                          "'id_slot' is %d: the server has %d slots (0 to %d)", id, serve_slots_count(sv->e),
                          serve_slots_count(sv->e) - 1);
    }
    serve_job **js = calloc((size_t)n, sizeof *js);
    bool ok = js != NULL;
    for (int32_t k = 0; k < n; k++) {
        if (ok && (ok = (js[k] = calloc(1, sizeof **js)) != NULL)) js[k]->p = ps[k], memset(&ps[k], 0, sizeof ps[k]);
        serve_params_free(&ps[k]);
    }
    free(ps);
    if (!ok) return jobs_drop(js, n), send_error(c, 503, "server_error", NULL, NULL, "out of memory");
    enum MHD_Result ret = MHD_NO;
    serve_refusal refusal;
    if (!complete_admit(sv, js, n, &refusal)) {
        ret = send_refusal(c, &refusal);
        serve_count_invalid(sv->e);
        jobs_drop(js, n);
        return ret;
    }
    char rnd[25]; /* OpenAI's ids are random: two replicas never give the same one */
    random_hex(rnd, sizeof rnd);
    long created = (long)time(NULL);
    for (int32_t k = 0; k < n; k++) {
        js[k]->created = created;
        snprintf(js[k]->id, sizeof js[k]->id, "%s-%s", chat ? "chatcmpl" : "cmpl", rnd);
        tenant_of(sv, c, &js[k]->p, js[k]->tenant);
    }
    const bool stream_it = js[0]->p.stream, scored = js[0]->p.echo && js[0]->p.logprobs;
    embed_job *score = scored ? score_job(js, n) : NULL;
    if (scored && !score)
        return jobs_drop(js, n),
               send_error(c, 503, "server_error", NULL, NULL, "out of memory for the prompt's scores");
    if (!serve_submit_all(sv->e, js, n)) {
        jobs_drop(js, n);
        if (score) serve_embed_params_free(&score->p), free(score->lp), free(score);
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_overloaded", NULL, NULL,
                          serve_draining(sv->e) ? "the server is shutting down"
                                                : "every slot is busy and the queue is full; retry shortly");
    }
    int refused = score ? embedder_submit(sv->emb, score) : 0;
    if (refused) {
        serve_embed_params_free(&score->p), free(score->lp), free(score);
        jobs_release(sv, js, n);
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_overloaded", NULL, NULL,
                          refused == 1 ? "the server is shutting down"
                                       : "the queue of prompts to score is full (rsr-serve --queue); retry shortly");
    }
    int fd = connection_fd(c);
    if (score && embedder_wait(sv->emb, score, fd)) { /* no one to answer: the work stops */
        embedder_release(sv->emb, score);
        jobs_release(sv, js, n);
        return MHD_NO;
    }
    if (score && score->state != EMBED_DONE) {
        ret = score->state == EMBED_FAILED ? send_error(c, 500, "server_error", NULL, NULL, "%s", score->err)
                                           : send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_overloaded", NULL,
                                                        NULL, "the server stopped before the request finished");
        embedder_release(sv->emb, score);
        jobs_release(sv, js, n);
        return ret;
    }
    if (stream_it) { /* one job (complete_check) */
        serve_job *j = js[0];
        free(js);
        return complete_stream(sv, c, j, score);
    }
    bool gone = false;
    serve_lock(sv->e);
    for (int32_t k = 0; k < n && !gone; k++)
        while (js[k]->finish == SERVE_RUNNING && !gone) {
            serve_wait(sv->e, 0.25);
            gone = js[k]->finish == SERVE_RUNNING && serve_client_gone(fd); /* no one to answer: stop the work */
        }
    serve_unlock(sv->e); /* a finished job is no longer written by the engine */
    ret = gone ? MHD_NO : complete_reply(sv, c, js, n, score ? score->lp : NULL);
    if (score) embedder_release(sv->emb, score);
    jobs_release(sv, js, n);
    return ret;
}
