/*
 * test_serve_admit — a completion request's admission rules (tools/serve/serve_admit.c), without
 * HTTP, a model or a tokenizer: the model named under --strict-model, text asked of a model that
 * has no tokenizer (the first field that needs one named), a stream of several prompts, more
 * prompts than the server holds, a prompt against the context with its reply's max_tokens cut to
 * the room left, and the failures split between the server's (503) and the request's (400). Each
 * refusal's status, type, param and code, and the values its message names.
 */
#include <stdio.h>
#include <string.h>

#include "expect.h"
#include "serve_admit.h"

#define CTX 100 /* the context of a sequence in the prompt tests */

/* A request the server takes: one prompt of token ids, a tokenizer, room for 8. */
static serve_admission admissible(void) {
    return (serve_admission){.model_id = "served-model",
                             .strict_model = true,
                             .tokenizer = true,
                             .room = 8,
                             .model = "served-model",
                             .n_prompts = 1};
}

static bool has(const serve_refusal *r, const char *s) { return strstr(r->message, s) != NULL; }
static bool is(const char *a, const char *b) { return a && b ? !strcmp(a, b) : a == b; }

/* A 400 of the request's doing, naming param (NULL: none) with code (NULL: none). */
static void expect_400(const serve_refusal *r, const char *param, const char *code, const char *what) {
    EXPECT(r->status == 400, "%s: status %u", what, r->status);
    EXPECT(is(r->type, "invalid_request_error"), "%s: type %s", what, r->type ? r->type : "(null)");
    EXPECT(is(r->param, param), "%s: param %s", what, r->param ? r->param : "(null)");
    EXPECT(is(r->code, code), "%s: code %s", what, r->code ? r->code : "(null)");
}

static void test_admitted(void) {
    serve_refusal r = {0};
    serve_admission a = admissible();
    EXPECT(serve_admit(&a, &r), "a request naming the model served: %s", r.message);
    a.model = NULL; /* no "model": whatever is served */
    EXPECT(serve_admit(&a, &r), "a request naming no model: %s", r.message);
    a = admissible(), a.strict_model = false, a.model = "gpt-4o"; /* any name gets the one model */
    EXPECT(serve_admit(&a, &r), "another model's name without --strict-model: %s", r.message);
    a = admissible(), a.n_prompts = 8; /* exactly the room */
    EXPECT(serve_admit(&a, &r), "8 prompts with room for 8: %s", r.message);
    a = admissible(), a.stream = true; /* one prompt streamed */
    EXPECT(serve_admit(&a, &r), "a stream of one prompt: %s", r.message);
    a = admissible(), a.tokenizer = false; /* token ids in and out need no tokenizer */
    EXPECT(serve_admit(&a, &r), "token ids to a model without a tokenizer: %s", r.message);
}

static void test_model(void) {
    serve_refusal r = {0};
    serve_admission a = admissible();
    a.model = "other-model";
    EXPECT(!serve_admit(&a, &r), "another model under --strict-model is admitted");
    expect_400(&r, "model", "model_not_found", "strict model");
    EXPECT(has(&r, "'other-model' is not served here"), "the name asked for: %s", r.message);
    EXPECT(has(&r, "this server serves 'served-model'"), "the name served: %s", r.message);

    /* a name of 300 bytes is quoted to its first 200 */
    char name[301], first200[203];
    memset(name, 'x', 300), name[300] = 0;
    snprintf(first200, sizeof first200, "'%.200s'", name);
    a.model = name;
    EXPECT(!serve_admit(&a, &r), "a long name under --strict-model is admitted");
    EXPECT(has(&r, first200), "the long name's first 200 bytes, quoted: %s", r.message);
    EXPECT(strlen(r.message) < 300, "the long name is quoted whole (%zu bytes)", strlen(r.message));

    /* the model is checked before anything else */
    a = admissible(), a.model = "other-model", a.tokenizer = false, a.chat = true, a.stream = true, a.n_prompts = 9;
    EXPECT(!serve_admit(&a, &r) && is(r.param, "model"), "the model first: param %s", r.param ? r.param : "(null)");
}

/* Without a tokenizer, the field named and how the message names it. */
static void no_tokenizer_case(serve_admission a, const char *param, const char *opening) {
    serve_refusal r = {0};
    a.tokenizer = false;
    EXPECT(!serve_admit(&a, &r), "%s without a tokenizer is admitted", param);
    expect_400(&r, param, NULL, param);
    EXPECT(!strncmp(r.message, opening, strlen(opening)), "%s: '%s' opens '%s'", param, opening, r.message);
    EXPECT(has(&r, "this model has none"), "%s: %s", param, r.message);
}

static void test_no_tokenizer(void) {
    serve_admission a = admissible();
    a.chat = true, a.stop = true; /* chat first: it is all text */
    no_tokenizer_case(a, "messages", "/v1/chat/completions needs the model's tokenizer");
    a = admissible(), a.stop = true, a.grammar = true, a.text_prompt = true;
    no_tokenizer_case(a, "stop", "'stop' needs the model's tokenizer");
    a = admissible(), a.grammar = true, a.shape = true;
    no_tokenizer_case(a, "grammar", "'grammar' needs the model's tokenizer");
    a = admissible(), a.shape = true, a.text_prompt = true;
    no_tokenizer_case(a, "response_format", "'response_format' needs the model's tokenizer");
    a = admissible(), a.text_prompt = true;
    no_tokenizer_case(a, "prompt", "'prompt' as text needs the model's tokenizer");

    /* the same fields with a tokenizer are the request's to give */
    serve_refusal r = {0};
    a = admissible(), a.chat = a.stop = a.grammar = a.shape = a.text_prompt = true;
    EXPECT(serve_admit(&a, &r), "text with a tokenizer: %s", r.message);
}

static void test_stream_and_room(void) {
    serve_refusal r = {0};
    serve_admission a = admissible();
    a.stream = true, a.n_prompts = 2; /* several: more than one */
    EXPECT(!serve_admit(&a, &r), "a stream of 2 prompts is admitted");
    expect_400(&r, "stream", NULL, "stream");
    EXPECT(has(&r, "'stream' with 2 prompts"), "the prompts' count: %s", r.message);

    a = admissible(), a.n_prompts = 9;
    EXPECT(!serve_admit(&a, &r), "9 prompts with room for 8 are admitted");
    expect_400(&r, "prompt", NULL, "room");
    EXPECT(has(&r, "holds 9 prompts") && has(&r, "at most 8 requests"), "the count and the room: %s", r.message);

    /* a stream of more prompts than room: the stream is named first */
    a = admissible(), a.stream = true, a.n_prompts = 9;
    EXPECT(!serve_admit(&a, &r) && is(r.param, "stream"), "the stream first: param %s", r.param ? r.param : "(null)");
}

/* serve_admit_prompt for a prompt of n tokens in CTX asking for max_tokens: admitted, and its
 * reply's max_tokens after. */
static void prompt_case(int32_t n, int32_t max_tokens, bool admit, int32_t after) {
    int32_t m = max_tokens;
    bool got = serve_admit_prompt(n, CTX, &m);
    EXPECT(got == admit, "%d tokens in %d, max_tokens %d: %s", n, CTX, max_tokens, got ? "admitted" : "refused");
    if (admit) EXPECT(m == after, "%d tokens in %d, max_tokens %d: cut to %d, not %d", n, CTX, max_tokens, m, after);
}

static void test_prompt(void) {
    /* the reply may take every position the prompt leaves: CTX - n */
    prompt_case(40, -1, true, 60);   /* not given: the room left */
    prompt_case(40, 1000, true, 60); /* over the room: cut to it */
    prompt_case(40, 61, true, 60);
    prompt_case(40, 60, true, 60); /* exactly the room: as asked */
    prompt_case(40, 10, true, 10); /* within it: as asked */
    prompt_case(40, 0, true, 0);
    prompt_case(99, -1, true, 1); /* one position left */
    prompt_case(1, -1, true, 99);
    /* the context whole: only a reply of no tokens */
    prompt_case(CTX, 0, true, 0);
    prompt_case(CTX, 1, false, 0);
    prompt_case(CTX, -1, false, 0);
    /* over the context: never */
    prompt_case(CTX + 1, 0, false, 0);
    prompt_case(CTX + 1, -1, false, 0);
}

static void test_context_refusal(void) {
    serve_refusal r = {0};
    char count[128], ctx[64];
    snprintf(count, sizeof count, "the prompt has %d tokens;", CTX + 50);
    snprintf(ctx, sizeof ctx, "the context of a sequence here is %d", CTX);
    serve_refuse_context(&r, "messages", false, 0, CTX + 50, "", CTX);
    expect_400(&r, "messages", "context_length_exceeded", "context");
    EXPECT(has(&r, count), "the prompt's tokens ('%s'): %s", count, r.message);
    EXPECT(has(&r, ctx), "the context ('%s'): %s", ctx, r.message);

    serve_refuse_context(&r, "prompt", true, 3, CTX + 7, "", CTX); /* prompt 3 of a list */
    snprintf(count, sizeof count, "prompt[3] has %d tokens;", CTX + 7);
    expect_400(&r, "prompt", "context_length_exceeded", "context of a list's prompt");
    EXPECT(has(&r, count), "the prompt named by its index ('%s'): %s", count, r.message);

    const char *note = ", 30 of them the definitions of 'tools'"; /* the tools are what does not fit */
    serve_refuse_context(&r, "tools", false, 0, CTX + 1, note, CTX);
    snprintf(count, sizeof count, "the prompt has %d tokens%s;", CTX + 1, note);
    expect_400(&r, "tools", "context_length_exceeded", "context of the tools");
    EXPECT(has(&r, count), "the tools' share ('%s'): %s", count, r.message);
}

static void test_failures(void) {
    serve_refusal r = {0};
    serve_refuse_failure(&r, "messages", "the chat template: out of memory");
    EXPECT(r.status == 503 && is(r.type, "server_error"), "out of memory: %u %s", r.status, r.type);
    EXPECT(r.param == NULL && r.code == NULL, "out of memory names no field");
    EXPECT(is(r.message, "the chat template: out of memory"), "the message as said: %s", r.message);

    serve_refuse_failure(&r, "prompt", "prompt[2] is 70000, outside this model's vocabulary [0, 32000)");
    expect_400(&r, "prompt", NULL, "the request's failure");
    EXPECT(is(r.message, "prompt[2] is 70000, outside this model's vocabulary [0, 32000)"), "the message as said: %s",
           r.message);

    serve_refuse_no_tokenizer(&r, NULL, "/tokenize");
    expect_400(&r, NULL, NULL, "no tokenizer for an endpoint");
    EXPECT(!strncmp(r.message, "/tokenize needs", 15), "the endpoint named: %s", r.message);
}

int main(void) {
    test_admitted();
    test_model();
    test_no_tokenizer();
    test_stream_and_room();
    test_prompt();
    test_context_refusal();
    test_failures();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
