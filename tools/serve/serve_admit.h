/*
 * serve_admit.h — the rules that admit a completion request (serve_admit.c), on plain values:
 * the server's (model name, tokenizer or none, room, context) and the request's (its flags, its
 * prompts' count and tokens). A rule that refuses fills a serve_refusal, which the HTTP side
 * (serve_http.c, send_refusal) sends as OpenAI's error object. Needs no tokenizer, engine or
 * HTTP library: the unit test (tests/unit/test_serve_admit.c) drives the rules alone.
 */
#ifndef RSR_SERVE_ADMIT_H
#define RSR_SERVE_ADMIT_H

#include <stdbool.h>
#include <stdint.h>

/* A request refused: {"error": {"message", "type", "param", "code"}} with an HTTP status. */
typedef struct serve_refusal {
    unsigned status;   /* 400 for the request's doing, 503 for the server's (out of memory) */
    const char *type;  /* "invalid_request_error" or "server_error" */
    const char *param; /* the field at fault, or NULL: a static string, or one that outlives the refusal */
    const char *code;  /* "model_not_found", "context_length_exceeded", or NULL */
    char message[600]; /* what the client reads (the HTTP side replaces invalid UTF-8) */
} serve_refusal;

/* *r filled: status, type, param and code as given, the message as printf makes it. */
void serve_refuse(serve_refusal *r, unsigned status, const char *type, const char *param, const char *code,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* A failure said in err: out of memory is the server's (503: try again later), the rest the
 * request's (400, naming param). */
void serve_refuse_failure(serve_refusal *r, const char *param, const char *err);
/* 400: what (an endpoint, or a field) needs the tokenizer the model lacks. */
void serve_refuse_no_tokenizer(serve_refusal *r, const char *param, const char *what);

/* What the rules of a whole request look at, before any prompt is tokenized. */
typedef struct serve_admission {
    const char *model_id;      /* the model served: its name in /v1/models */
    bool strict_model;         /* --strict-model: the request's "model" must name model_id */
    bool tokenizer;            /* the model has one */
    int32_t room;              /* requests the server holds at once (slots and queue) */
    const char *model;         /* the request's "model", or NULL */
    bool chat;                 /* /v1/chat/completions */
    bool stream;               /* "stream": true */
    bool stop, grammar, shape; /* it gives stop strings, a grammar, a JSON response_format */
    bool text_prompt;          /* one of its prompts is text, not token ids */
    int32_t n_prompts;         /* its prompts (one for chat) */
} serve_admission;

/* A request's "model" under --strict-model: false (400 model_not_found, *r filled) when it names
 * another than model_id; the first of serve_admit's rules, and /v1/embeddings' too. */
bool serve_admit_model(const char *model_id, bool strict_model, const char *model, serve_refusal *r);

/* The whole request's rules, in this order: a model other than model_id under strict_model (400
 * model_not_found), text in or out without a tokenizer (400 naming the first field that needs
 * one), a stream of several prompts (400 'stream'), more prompts than room (400 'prompt'). true
 * when it passes them all; else false with *r filled. */
bool serve_admit(const serve_admission *a, serve_refusal *r);

/* A prompt of n_ids tokens in a context of ctx positions: false when it leaves its reply no room
 * (more than ctx tokens, or ctx whole with a max_tokens other than 0); else true, with
 * *max_tokens (-1: not given) cut to the ctx - n_ids positions left (the reply then ends with
 * "length"). */
bool serve_admit_prompt(int32_t n_ids, int32_t ctx, int32_t *max_tokens);

/* 400 context_length_exceeded for prompt k of n_ids tokens ("prompt[k]" when the request gave a
 * list of prompts, else "the prompt"), naming param; note adds to the count (", N of them the
 * definitions of 'tools'", or ""). */
void serve_refuse_context(serve_refusal *r, const char *param, bool list, int32_t k, int32_t n_ids, const char *note,
                          int32_t ctx);

#endif
