/*
 * serve_admit.c — the admission rules of a completion request (serve_admit.h), on plain values:
 * the model a request names, what needs the tokenizer a model may lack, a stream of several
 * prompts, more prompts than the server holds, and a prompt against the context (its reply's
 * max_tokens cut to what fits). Each refusal's status, type, param, code and message, as the
 * HTTP side sends them. Uses only libc: serve_complete.c applies the rules with the tokenizer's
 * counts, test_serve_admit without one.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "serve_admit.h"

void serve_refuse(serve_refusal *r, unsigned status, const char *type, const char *param, const char *code,
                  const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    r->status = status, r->type = type, r->param = param, r->code = code;
}

void serve_refuse_failure(serve_refusal *r, const char *param, const char *err) {
    if (strstr(err, "out of memory"))
        serve_refuse(r, 503, "server_error", NULL, NULL, "%s", err);
    else
        serve_refuse(r, 400, "invalid_request_error", param, NULL, "%s", err);
}

void serve_refuse_no_tokenizer(serve_refusal *r, const char *param, const char *what) {
    serve_refuse(r, 400, "invalid_request_error", param, NULL,
                 "%s needs the model's tokenizer, and this model has none (compiled without tokenizer.json): "
                 "give token ids (a /v1/completions 'prompt' or a /v1/embeddings 'input')",
                 what);
}

bool serve_admit_model(const char *model_id, bool strict_model, const char *model, serve_refusal *r) {
    if (strict_model && model && strcmp(model, model_id))
        return serve_refuse(r, 400, "invalid_request_error", "model", "model_not_found",
                            "the model '%.200s' is not served here; this server serves '%s' (GET /v1/models)", model,
                            model_id),
               false;
    return true;
}

bool serve_admit(const serve_admission *a, serve_refusal *r) {
    char where[48];
    if (!serve_admit_model(a->model_id, a->strict_model, a->model, r)) return false;
    if (!a->tokenizer) { /* no text in or out */
        const char *param = a->chat          ? "messages"
                            : a->stop        ? "stop"
                            : a->grammar     ? "grammar"
                            : a->shape       ? "response_format"
                            : a->text_prompt ? "prompt"
                                             : NULL;
        if (param) {
            snprintf(where, sizeof where, "%s%s%s", a->chat ? "" : "'", a->chat ? "/v1/chat/completions" : param,
                     a->chat                    ? ""
                     : !strcmp(param, "prompt") ? "' as text"
                                                : "'");
            return serve_refuse_no_tokenizer(r, param, where), false;
        }
    }
    if (a->stream && a->n_prompts > 1)
        return serve_refuse(r, 400, "invalid_request_error", "stream", NULL,
                            "'stream' with %d prompts is not served: stream one prompt a request, or ask for "
                            "them together without streaming",
                            a->n_prompts),
               false;
    if (a->n_prompts > a->room)
        return serve_refuse(r, 400, "invalid_request_error", "prompt", NULL,
                            "'prompt' holds %d prompts; this server holds at most %d requests at once "
                            "(rsr-serve --parallel and --queue)",
                            a->n_prompts, a->room),
               false;
    return true;
}

bool serve_admit_prompt(int32_t n_ids, int32_t ctx, int32_t *max_tokens) {
    if (n_ids > ctx || (n_ids == ctx && *max_tokens != 0)) return false;
    if (*max_tokens < 0 || *max_tokens > ctx - n_ids) *max_tokens = ctx - n_ids;
    return true;
}

void serve_refuse_context(serve_refusal *r, const char *param, bool list, int32_t k, int32_t n_ids, const char *note,
                          int32_t ctx) {
    char where[48];
    snprintf(where, sizeof where, list ? "prompt[%d] has" : "the prompt has", k);
    serve_refuse(r, 400, "invalid_request_error", param, "context_length_exceeded",
                 "%s %d tokens%s; the context of a sequence here is %d (rsr-serve --ctx)", where, n_ids, note, ctx);
}
