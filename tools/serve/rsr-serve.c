/*
 * rsr-serve — a compiled model behind an OpenAI-compatible HTTP API, with continuous batching.
 *
 *     rsr-serve model.so --port 8080 --parallel 8
 *     curl localhost:8080/v1/chat/completions -d '{"messages":[{"role":"user","content":"Hi"}]}'
 *
 * HTTP is libmicrohttpd's (a thread per connection, so that a streaming response can wait for
 * its next tokens); JSON is cJSON's. The requests go to one engine (serve_engine.c) that steps
 * every admitted request together through rsr_batch_eval. Endpoints: POST /v1/completions and
 * /v1/chat/completions (streamed as server-sent events with "stream": true), POST /v1/embeddings
 * (on a thread of its own beside the engine: "embeddings" below says why), GET /v1/models,
 * /health, /metrics (Prometheus text), /info (the model and its manifest) and / (a chat page).
 * Errors are OpenAI-shaped JSON: 400 for a request that cannot be served as given (named field),
 * 404 for an unknown path, 413 for a body over --max-body, 503 with Retry-After when the queue is
 * full or the server is stopping. SIGINT, SIGTERM and SIGHUP stop taking requests, let the running
 * ones finish for up to --drain seconds, cancel the rest, and exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/stat.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <openssl/evp.h>

#include "parse_num.h"
#include "artifact_pin.h"
#include "chat_default.h"
#include "kv_types.h"
#include "encode_all.h"
#include "serve.h"
#include "think.h"
#include "serve_gbnf.h"

rsr_api api;

extern const unsigned char serve_page_html[]; /* serve_page.html, compiled in (CMake) */
extern const unsigned int serve_page_html_len;

typedef struct embedder embedder;   /* /v1/embeddings' thread, which scores prompts too (below) */
typedef struct embed_job embed_job; /* an embeddings request, or a prompt scored for echo */

typedef struct server {
    rsr_model *m;
    rsr_tokenizer *tok; /* NULL: the model has none (requests give token ids, replies have none but theirs) */
    rsr_model_info info;
    serve_engine *e;
    embedder *emb;
    const char *model_id;          /* what /v1/models lists and responses name */
    bool strict_model;             /* "model" must name model_id (else any name gets this model) */
    bool verbose;                  /* -v: the request log's probes and refusal messages */
    const char *chat_template;     /* NULL: the tokenizer's */
    serve_tool_format tool_format; /* how the template shows tools and the model calls them */
    bool tool_marker_text;         /* the format's opening marker is text the grammar can hold */
    int reasoning_format;          /* --reasoning-format: SERVE_REASONING_* */
    bool literal_content;          /* --literal-content: messages' special-token text stays text */
    size_t max_body;
    long started;
    serve_guard *guard;
    int in_flight; /* requests read and not yet answered in full (atomic) */
    bool ready;    /* the model is loaded, its engine started (atomic): until then, 503 */
} server;

static serve_guard *guard; /* the server's, for the CORS headers of every reply */

/* One HTTP request: its body as it arrives, and what the request log says of it. */
typedef struct request {
    char *body;
    size_t len, cap;
    bool too_large, answered;
    bool closing;    /* the client asked for the connection to close after this reply */
    char line[96];   /* "POST /v1/completions" */
    unsigned status; /* of the reply queued (0: none) */
    double t0;       /* when its headers came */
    char why[200];   /* a refusal's message (the log's -v) */
} request;
/* The request this thread is answering, while route() runs: send_text and send_error note their
 * status and message in it. */
static __thread request *current;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rsr-serve: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int hex_digit(char ch) {
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* ---- responses ---- */

/* A reply to an origin allowed by --cors-origin says so (and that it depends on Origin). */
static void add_cors(struct MHD_Connection *c, struct MHD_Response *r) {
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (guard && serve_guard_origin(guard, origin, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host")) == 1) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Vary", "Origin");
    }
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, const char *body,
                                 size_t len, int retry_after) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    add_cors(c, r);
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    MHD_add_response_header(r, "Content-Type", type);
    if (retry_after) MHD_add_response_header(r, "Retry-After", "1");
    if (current) current->status = status;
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *body, int retry_after) {
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text) return MHD_NO;
    enum MHD_Result ret = send_text(c, status, "application/json", text, strlen(text), retry_after);
    free(text);
    return ret;
}

/* {"error": {"message", "type", "param", "code"}}, as OpenAI's clients read it. */
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *type, const char *param,
                                  const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *type, const char *param,
                                  const char *code, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *clean = serve_utf8_clean(msg, strlen(msg));
    if (current) snprintf(current->why, sizeof current->why, "%s", clean ? clean : msg);
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", clean ? clean : "error");
    cJSON_AddStringToObject(err, "type", type);
    char *clean_param = param ? serve_utf8_clean(param, strlen(param)) : NULL; /* a key the client sent */
    if (param)
        cJSON_AddStringToObject(err, "param", clean_param ? clean_param : "?");
    else
        cJSON_AddNullToObject(err, "param");
    if (code)
        cJSON_AddStringToObject(err, "code", code);
    else
        cJSON_AddNullToObject(err, "code");
    free(clean), free(clean_param);
    return send_json(c, status, root, status == MHD_HTTP_SERVICE_UNAVAILABLE);
}

/* A request's failure as said in err: out of memory is the server's (503: try again later), the
 * rest the request's (400). */
static enum MHD_Result refuse_request(struct MHD_Connection *c, const char *param, const char *err) {
    if (strstr(err, "out of memory")) return send_error(c, 503, "server_error", NULL, NULL, "%s", err);
    return send_error(c, 400, "invalid_request_error", param, NULL, "%s", err);
}

/* 400: what the request asks for needs the tokenizer the model lacks. */
static enum MHD_Result no_tokenizer(struct MHD_Connection *c, const char *param, const char *what) {
    return send_error(c, 400, "invalid_request_error", param, NULL,
                      "%s needs the model's tokenizer, and this model has none (compiled without tokenizer.json): "
                      "give token ids (a /v1/completions 'prompt' or a /v1/embeddings 'input')",
                      what);
}

static const char *finish_reason(serve_finish f) { return f == SERVE_LENGTH ? "length" : "stop"; }

/* The choice of a finished or partial job: text (or a chat message / delta), finish_reason. */
static cJSON *choice(const serve_job *j, const char *text, const char *finish, bool delta, bool role) {
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", j->p.index);
    if (!j->p.chat) {
        cJSON_AddStringToObject(ch, "text", text);
        cJSON_AddNullToObject(ch, "logprobs");
    } else {
        cJSON *msg = cJSON_AddObjectToObject(ch, delta ? "delta" : "message");
        if (role) cJSON_AddStringToObject(msg, "role", "assistant");
        if (text) cJSON_AddStringToObject(msg, "content", text);
    }
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    return ch;
}

/* A chat reply's calls are named after its id: call_<the id's tail>_<k>. */
static const char *call_base(const serve_job *j) {
    const char *dash = strrchr(j->id, '-');
    return dash ? dash + 1 : j->id;
}

static void add_text(cJSON *o, const char *key, const char *s, size_t n) {
    char *t = serve_utf8_clean(s, n);
    cJSON_AddStringToObject(o, key, t ? t : "");
    free(t);
}

/* A whole chat choice split into its parts (p->reply): thoughts as reasoning_content, the text,
 * and the tool calls (finish_reason "tool_calls"). */
static cJSON *chat_choice(const serve_job *j, const char *text) {
    serve_reply_parts parts;
    serve_split_reply((const serve_reply_shape *)&j->p.reply, text, strlen(text), true, call_base(j), &parts);
    const bool calls = parts.tool_calls != NULL;
    cJSON *ch = choice(j, NULL, calls ? "tool_calls" : finish_reason(j->finish), false, true);
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
    if (calls && !parts.n_content)
        cJSON_AddNullToObject(msg, "content");
    else
        add_text(msg, "content", parts.content, parts.n_content);
    if (parts.reasoning) add_text(msg, "reasoning_content", parts.reasoning, parts.n_reasoning);
    if (calls) cJSON_AddItemToObject(msg, "tool_calls", parts.tool_calls), parts.tool_calls = NULL;
    if (parts.call_error) cJSON_AddStringToObject(ch, "tool_call_error", parts.call_error); /* the reply is text */
    serve_reply_parts_free(&parts);
    return ch;
}

/* A token's text as JSON shows it (invalid UTF-8 replaced); *len: its bytes' count, 0 for none.
 * Without a tokenizer, "token_id:ID" (vLLM's way of naming a token by its id), of no bytes. */
static cJSON *token_text(const server *sv, int32_t id, const char **bytes, size_t *len) {
    const char *piece = sv->tok ? api.tokenizer_token_piece(sv->tok, id, len) : NULL;
    if (!piece) piece = "", *len = 0;
    char *clean = sv->tok ? serve_utf8_clean(piece, *len) : NULL, name[32];
    if (!sv->tok) snprintf(name, sizeof name, "token_id:%d", id);
    cJSON *s = cJSON_CreateString(!sv->tok ? name : clean ? clean : "");
    free(clean);
    if (bytes) *bytes = piece;
    return s;
}

/* Whether the token's bytes are in the text (special tokens are left out of it). */
static bool in_text(const server *sv, int32_t id) { return sv->tok && !api.tokenizer_is_special(sv->tok, id); }

/* The text of the prompt's tokens, as a reply's text is made of its tokens (special tokens left
 * out): what echo puts before the reply. *len: its bytes. */
static char *prompt_text(const server *sv, const serve_job *j, size_t *len) {
    size_t n = 0, plen;
    for (int32_t i = 0; i < j->n_ids; i++)
        if (in_text(sv, j->ids[i]) && api.tokenizer_token_piece(sv->tok, j->ids[i], &plen)) n += plen;
    char *text = malloc(n + 1);
    if (!text) return NULL;
    *len = 0;
    for (int32_t i = 0; i < j->n_ids; i++) {
        const char *piece = in_text(sv, j->ids[i]) ? api.tokenizer_token_piece(sv->tok, j->ids[i], &plen) : NULL;
        if (piece) memcpy(text + *len, piece, plen), *len += plen;
    }
    text[*len] = 0;
    return text;
}

/* Whether the replies carry token ids: asked for (return_token_ids), or the model has no tokenizer
 * (they are all there is). */
static bool wants_ids(const server *sv, const serve_job *j) { return j->p.return_token_ids || !sv->tok; }

static void add_ids(cJSON *o, const char *key, const int32_t *ids, int32_t n) {
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (int32_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
}

/* A completions logprobs entry's alternatives: token → logprob (the first of a token named twice). */
static cJSON *top_object(const server *sv, const serve_logprob *x) {
    cJSON *top = cJSON_CreateObject();
    for (int32_t k = 0; k < x->n_top; k++) {
        size_t len;
        cJSON *name = token_text(sv, x->top[k], NULL, &len);
        if (!cJSON_GetObjectItemCaseSensitive(top, name->valuestring))
            cJSON_AddNumberToObject(top, name->valuestring, x->top_logprob[k]);
        cJSON_Delete(name);
    }
    return top;
}

/* A chat logprobs entry: token, logprob, bytes (OpenAI's shape). */
static cJSON *chat_token(const server *sv, int32_t id, float logprob) {
    cJSON *o = cJSON_CreateObject(), *bytes;
    const char *piece;
    size_t len;
    cJSON_AddItemToObject(o, "token", token_text(sv, id, &piece, &len));
    cJSON_AddNumberToObject(o, "logprob", logprob);
    bytes = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; i < len; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)piece[i]));
    return o;
}

/* The logprobs of the job's tokens [from, to) into choice ch, in OpenAI's shape for chat
 * (content: token, logprob, bytes, top_logprobs) or for completions (tokens, token_logprobs,
 * top_logprobs as token → logprob, text_offset; *offset: where token `from`'s text starts, moved
 * past token to - 1's, so that a stream's chunks go on from each other). With echo, plp holds the
 * prompt's tokens' (serve_prompt_score), which come first, the first without one (null), as
 * OpenAI gives it; else NULL. */
static void add_logprobs(const server *sv, cJSON *ch, const serve_job *j, int32_t from, int32_t to, size_t *offset,
                         const serve_logprob *plp) {
    if (!j->p.logprobs) return;
    cJSON_DeleteItemFromObjectCaseSensitive(ch, "logprobs");
    cJSON *lp = cJSON_AddObjectToObject(ch, "logprobs");
    if (j->p.chat) {
        cJSON *content = cJSON_AddArrayToObject(lp, "content");
        for (int32_t i = from; i < to; i++) {
            cJSON *t = chat_token(sv, j->lp[i].token, j->lp[i].logprob);
            cJSON *top = cJSON_AddArrayToObject(t, "top_logprobs");
            for (int32_t k = 0; k < j->lp[i].n_top; k++)
                cJSON_AddItemToArray(top, chat_token(sv, j->lp[i].top[k], j->lp[i].top_logprob[k]));
            cJSON_AddItemToArray(content, t);
        }
        cJSON_AddNullToObject(lp, "refusal");
        return;
    }
    cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens"), *lps = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(lp, "top_logprobs"), *offsets = cJSON_AddArrayToObject(lp, "text_offset");
    for (int32_t i = 0; plp && i < j->n_ids; i++) {
        size_t len;
        cJSON_AddItemToArray(tokens, token_text(sv, j->ids[i], NULL, &len));
        cJSON_AddItemToArray(lps, i ? cJSON_CreateNumber(plp[i].logprob) : cJSON_CreateNull());
        cJSON_AddItemToArray(tops, i ? top_object(sv, &plp[i]) : cJSON_CreateNull());
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)*offset));
        if (in_text(sv, j->ids[i])) *offset += len;
    }
    for (int32_t i = from; i < to; i++) {
        size_t len;
        cJSON_AddItemToArray(tokens, token_text(sv, j->lp[i].token, NULL, &len));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(j->lp[i].logprob));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)*offset));
        if (in_text(sv, j->lp[i].token)) *offset += len;
        cJSON_AddItemToArray(tops, top_object(sv, &j->lp[i]));
    }
}

static cJSON *envelope(const server *sv, const serve_job *j, bool chunk) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", j->id);
    cJSON_AddStringToObject(root, "object",
                            j->p.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion");
    cJSON_AddNumberToObject(root, "created", (double)j->created);
    cJSON_AddStringToObject(root, "model", sv->model_id);
    cJSON_AddStringToObject(root, "system_fingerprint", "rsrc");
    return root;
}

/* The usage of the request's n jobs (one a prompt), summed. */
static void add_usage(cJSON *root, serve_job *const *js, int32_t n) {
    double prompt = 0, gen = 0, cached = 0;
    for (int32_t k = 0; k < n; k++) prompt += js[k]->n_ids, gen += js[k]->n_gen, cached += js[k]->n_cached;
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", gen);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details"); /* OpenAI's: the prompt found cached */
    cJSON_AddNumberToObject(d, "cached_tokens", cached);
    if (n != 1 || js[0]->n_gen < 1) return;
    /* One job's times as the server saw them (llama.cpp's names): the prompt evaluated (its cached
     * tokens left out) up to the first token, then the tokens after the first over the time from the
     * first to the last. A client cannot measure the second itself: a fast model's tokens can reach it
     * in one read. */
    const serve_job *j = js[0];
    double gen_s = j->t_last - j->t_first;
    cJSON *t = cJSON_AddObjectToObject(root, "timings");
    cJSON_AddNumberToObject(t, "prompt_n", j->n_ids - j->n_cached);
    cJSON_AddNumberToObject(t, "prompt_ms", 1e3 * (j->t_first - j->t_start));
    cJSON_AddNumberToObject(t, "predicted_n", j->n_gen);
    cJSON_AddNumberToObject(t, "predicted_ms", 1e3 * gen_s);
    cJSON_AddNumberToObject(t, "predicted_per_second", j->n_gen > 1 && gen_s > 0 ? (j->n_gen - 1) / gen_s : 0);
}

/* ---- streaming: server-sent events ---- */

typedef struct stream {
    server *sv;
    serve_job *j;
    embed_job *score;         /* echo with logprobs: the prompt's, scored before the stream starts; or NULL */
    const serve_logprob *plp; /* its log-probabilities */
    int fd;                   /* the client's socket: a client gone while its request waits cancels it */
    char *out;                /* an event not yet sent */
    size_t n_out, at;
    int phase;        /* 0: the chat role chunk, or completions' echo; 1: content; 2: [DONE] queued; 3: done */
    int32_t lp_sent;  /* the job's logprobs sent */
    int32_t ids_sent; /* the job's token ids sent (wants_ids) */
    size_t lp_offset; /* completions: where the next one's text starts (text_offset) */
    size_t sent_reasoning, sent_content; /* a split chat reply (p->reply): the parts' bytes sent */
} stream;

/* Queues an event after those not yet sent (json NULL: [DONE]); json is freed. */
static void queue_event(stream *st, cJSON *json) {
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    if (json) cJSON_Delete(json);
    const char *payload = text ? text : "[DONE]";
    size_t n = strlen(payload) + 8, keep = st->out ? st->n_out - st->at : 0;
    char *out = malloc(keep + n + 1);
    if (out) {
        if (keep) memcpy(out, st->out + st->at, keep);
        st->n_out = keep + (size_t)snprintf(out + keep, n + 1, "data: %s\n\n", payload);
    }
    free(st->out);
    st->out = out, st->at = 0;
    if (!out) st->n_out = 0;
    free(text);
}

/* A split chat reply's chunk: the thoughts and text that have become certain since the last
 * (delta.reasoning_content, delta.content); at the end the rest, each tool call as OpenAI streams
 * it (index, id, type and name first, then the arguments), and the final chunk. Under the lock. */
static void split_events(stream *st, size_t to, serve_finish fin) {
    serve_job *j = st->j;
    const bool final = fin != SERVE_RUNNING;
    char *text = serve_utf8_clean(j->text ? j->text : "", to);
    serve_reply_parts parts;
    serve_split_reply((const serve_reply_shape *)&j->p.reply, text ? text : "", text ? strlen(text) : 0, final,
                      call_base(j), &parts);
    cJSON *delta_chunk = NULL;
    if (parts.n_reasoning > st->sent_reasoning || parts.n_content > st->sent_content) {
        delta_chunk = envelope(st->sv, j, true);
        cJSON *ch = choice(j, NULL, NULL, true, false), *d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
        if (parts.n_reasoning > st->sent_reasoning)
            add_text(d, "reasoning_content", parts.reasoning + st->sent_reasoning,
                     parts.n_reasoning - st->sent_reasoning);
        if (parts.n_content > st->sent_content)
            add_text(d, "content", parts.content + st->sent_content, parts.n_content - st->sent_content);
        add_logprobs(st->sv, ch, j, st->lp_sent, j->n_lp, &st->lp_offset, NULL);
        st->lp_sent = j->n_lp;
        cJSON_AddItemToArray(cJSON_AddArrayToObject(delta_chunk, "choices"), ch);
        st->sent_reasoning = parts.n_reasoning, st->sent_content = parts.n_content;
    }
    if (delta_chunk) queue_event(st, delta_chunk);
    if (final) {
        const cJSON *call;
        int k = 0;
        cJSON_ArrayForEach(call, parts.tool_calls) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(call, "function");
            for (int half = 0; half < 2; half++) {
                cJSON *root = envelope(st->sv, j, true), *ch = choice(j, NULL, NULL, true, false);
                cJSON *tc = cJSON_CreateObject(), *fn;
                cJSON_AddNumberToObject(tc, "index", k);
                if (!half) {
                    cJSON_AddStringToObject(tc, "id", cJSON_GetStringValue(cJSON_GetObjectItem(call, "id")));
                    cJSON_AddStringToObject(tc, "type", "function");
                }
                fn = cJSON_AddObjectToObject(tc, "function");
                if (!half) cJSON_AddStringToObject(fn, "name", cJSON_GetStringValue(cJSON_GetObjectItem(f, "name")));
                cJSON_AddStringToObject(fn, "arguments",
                                        half ? cJSON_GetStringValue(cJSON_GetObjectItem(f, "arguments")) : "");
                cJSON *list = cJSON_AddArrayToObject(cJSON_GetObjectItemCaseSensitive(ch, "delta"), "tool_calls");
                cJSON_AddItemToArray(list, tc);
                cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), ch);
                queue_event(st, root);
            }
            k++;
        }
        cJSON *root = envelope(st->sv, j, true),
              *last = choice(j, NULL, k ? "tool_calls" : finish_reason(fin), true, false);
        if (parts.call_error) cJSON_AddStringToObject(last, "tool_call_error", parts.call_error); /* sent as text */
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), last);
        add_usage(root, &st->j, 1);
        queue_event(st, root);
        st->phase = 2;
    }
    serve_reply_parts_free(&parts);
    free(text);
}

/* The next event: new text, the final chunk, or [DONE]; waits for the engine while nothing is new. */
static void next_event(stream *st) {
    serve_job *j = st->j;
    serve_engine *e = st->sv->e;
    const bool ids = wants_ids(st->sv, j);
    if (st->phase == 0) {
        st->phase = 1;
        if (j->p.chat) {
            cJSON *root = envelope(st->sv, j, true);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), choice(j, "", NULL, true, true));
            if (ids) add_ids(root, "prompt_token_ids", j->ids, j->n_ids);
            queue_event(st, root);
            return;
        }
        if (j->p.echo || ids) { /* the prompt's text and log-probabilities, its ids, before the reply's */
            size_t len = 0;
            char *raw = j->p.echo ? prompt_text(st->sv, j, &len) : NULL, *text = serve_utf8_clean(raw ? raw : "", len);
            cJSON *root = envelope(st->sv, j, true), *ch = choice(j, text ? text : "", NULL, true, false);
            if (j->p.echo) add_logprobs(st->sv, ch, j, 0, 0, &st->lp_offset, st->plp);
            if (ids) add_ids(ch, "prompt_token_ids", j->ids, j->n_ids);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), ch);
            free(raw), free(text);
            queue_event(st, root);
            return;
        }
    }
    if (st->phase == 2) {
        queue_event(st, NULL), st->phase = 3;
        return;
    }
    serve_lock(e);
    while (j->finish == SERVE_RUNNING && j->ready <= j->sent && !(ids && j->n_gen > st->ids_sent)) {
        serve_wait(e, 0.25);
        if (j->finish == SERVE_RUNNING && serve_client_gone(st->fd)) {
            j->cancelled = true; /* the engine frees its slot or queue entry at its next turn */
            serve_unlock(e);
            free(st->out), st->out = NULL;
            return;
        }
    }
    size_t from = j->sent, to = j->ready;
    serve_finish fin = j->finish;
    if (j->p.chat && (j->p.reply.reasoning || j->p.reply.tools) && fin != SERVE_FAILED && fin != SERVE_CANCELLED) {
        j->sent = to;
        free(st->out), st->out = NULL, st->n_out = st->at = 0;
        split_events(st, to, fin);
        serve_unlock(e);
        if (!st->out) { /* nothing certain yet (a marker may be beginning): an empty delta */
            cJSON *root = envelope(st->sv, j, true);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), choice(j, NULL, NULL, true, false));
            queue_event(st, root);
        }
        return;
    }
    char *text = to > from ? serve_utf8_clean(j->text + from, to - from) : NULL;
    bool new_ids = ids && j->n_gen > st->ids_sent && fin != SERVE_FAILED && fin != SERVE_CANCELLED;
    j->sent = to;
    cJSON *root = envelope(st->sv, j, true);
    if (text || (new_ids && fin == SERVE_RUNNING)) { /* new text (or ids) first, with the logprobs of the
                                                     * tokens so far; the final chunk comes next */
        cJSON *ch = choice(j, text ? text : j->p.chat ? NULL : "", NULL, true, false);
        add_logprobs(st->sv, ch, j, st->lp_sent, j->n_lp, &st->lp_offset, NULL);
        st->lp_sent = j->n_lp;
        if (ids) add_ids(ch, "token_ids", j->out_ids + st->ids_sent, j->n_gen - st->ids_sent);
        st->ids_sent = j->n_gen;
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), ch);
    } else if (fin == SERVE_FAILED || fin == SERVE_CANCELLED) { /* the runtime failed, or the server stopped */
        cJSON_Delete(root);
        root = cJSON_CreateObject();
        cJSON *err = cJSON_AddObjectToObject(root, "error");
        cJSON_AddStringToObject(err, "message",
                                fin == SERVE_FAILED ? j->err : "the server stopped before the request finished");
        cJSON_AddStringToObject(err, "type",
                                fin != SERVE_FAILED ? "server_overloaded"
                                : j->err_param      ? "invalid_request_error"
                                                    : "server_error");
        if (fin == SERVE_FAILED && j->err_param) cJSON_AddStringToObject(err, "param", j->err_param);
        st->phase = 2;
    } else {
        cJSON *ch = choice(j, j->p.chat ? NULL : "", finish_reason(fin), true, false);
        if (st->lp_sent < j->n_lp) add_logprobs(st->sv, ch, j, st->lp_sent, j->n_lp, &st->lp_offset, NULL);
        st->lp_sent = j->n_lp;
        if (new_ids) add_ids(ch, "token_ids", j->out_ids + st->ids_sent, j->n_gen - st->ids_sent);
        st->ids_sent = j->n_gen;
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), ch);
        add_usage(root, &st->j, 1);
        st->phase = 2;
    }
    serve_unlock(e);
    free(text);
    queue_event(st, root);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *st = cls;
    while (st->at == st->n_out) {
        if (st->phase == 3) return MHD_CONTENT_READER_END_OF_STREAM;
        next_event(st);
        if (!st->out) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->n_out - st->at < max ? st->n_out - st->at : max;
    memcpy(buf, st->out + st->at, n);
    st->at += n;
    return (ssize_t)n;
}

/* The connection is done with the stream, finished or not: a client that went away cancels its
 * request, which leaves its slot at the next step. */
static void embedder_release(embedder *em, embed_job *j);
static void stream_free(void *cls) {
    stream *st = cls;
    serve_release(st->sv->e, st->j);
    if (st->score) embedder_release(st->sv->emb, st->score);
    free(st->out);
    free(st);
}

/* ---- completions ---- */

/* The context a request gives the template: its own, or (tools in the generic format) without
 * the tools and with a system message that says how to call them. NULL: out of memory. */
static char *chat_context(const server *sv, const serve_params *p) {
    if (!p->tools || sv->tool_format != SERVE_TOOL_GENERIC) return strdup(p->context);
    cJSON *ctx = cJSON_Parse(p->context);
    char *ask = serve_generic_tools_prompt(p->tools), *text = NULL;
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(ctx, "messages"), *first = cJSON_GetArrayItem(msgs, 0);
    cJSON_DeleteItemFromObjectCaseSensitive(ctx, "tools");
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "role"));
    const char *said = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "content"));
    if (ctx && ask && role && !strcmp(role, "system") && said) { /* the system message says it after its own */
        size_t n = strlen(said) + strlen(ask) + 3;
        char *both = malloc(n);
        if (both) snprintf(both, n, "%s\n\n%s", said, ask);
        cJSON_ReplaceItemInObjectCaseSensitive(first, "content", cJSON_CreateString(both ? both : ask));
        free(both);
    } else if (ctx && ask) {
        cJSON *sys = cJSON_CreateObject();
        cJSON_AddStringToObject(sys, "role", "system");
        cJSON_AddStringToObject(sys, "content", ask);
        cJSON_InsertItemInArray(msgs, 0, sys);
    }
    if (ctx && ask) text = cJSON_PrintUnformatted(ctx);
    cJSON_Delete(ctx), free(ask);
    return text;
}

/* --literal-content: the messages' contents that hold a special token's text, each replaced in the
 * context by a marker (U+FFF0, its index, U+FFF0) before the template renders it; their original
 * texts in order. The rendering is then tokenized in pieces: the template's own text with its
 * special tokens read, each content as plain text (literal_ids). */
typedef struct literal_set {
    char **text;
    int n;
} literal_set;
#define LITERAL_MARK "\xef\xbf\xb0"

static bool has_special_text(server *sv, const char *s) {
    int32_t n = 0;
    rsr_status st;
    int32_t *ids = encode_all(&api, sv->tok, s, -1, RSR_ENCODE_PARSE_SPECIAL, &n, &st);
    bool special = false;
    for (int32_t i = 0; ids && i < n && !special; i++) special = api.tokenizer_is_special(sv->tok, ids[i]);
    free(ids);
    return special;
}

static char *literal_context(server *sv, const char *context, literal_set *lit) {
    cJSON *ctx = cJSON_Parse(context), *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(ctx, "messages")) {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(c) || !has_special_text(sv, c->valuestring)) continue;
        char **grown = realloc(lit->text, sizeof *grown * (size_t)(lit->n + 1)), mark[32];
        if (!grown) break;
        lit->text = grown, lit->text[lit->n] = strdup(c->valuestring);
        snprintf(mark, sizeof mark, LITERAL_MARK "%d" LITERAL_MARK, lit->n++);
        cJSON_SetValuestring(c, mark);
    }
    char *out = ctx && lit->n ? cJSON_PrintUnformatted(ctx) : strdup(context);
    cJSON_Delete(ctx);
    return out;
}

static void literal_free(literal_set *lit) {
    for (int i = 0; i < lit->n; i++) free(lit->text[i]);
    free(lit->text);
    *lit = (literal_set){0};
}

/* The rendering's ids, its markers' contents as plain text (a marker the template dropped or
 * changed is only missing from the ids, as its text would be). NULL: out of memory. */
static int32_t *literal_ids(server *sv, const char *text, const literal_set *lit, int32_t *n) {
    int32_t *ids = malloc(sizeof *ids), total = 0;
    const size_t ml = strlen(LITERAL_MARK);
    if (!ids) return NULL;
    for (const char *at = text; at;) {
        const char *m = strstr(at, LITERAL_MARK), *close = m ? strstr(m + ml, LITERAL_MARK) : NULL;
        char *end = NULL;
        long k = close ? strtol(m + ml, &end, 10) : -1;
        bool marker = close && end == close && k >= 0 && k < lit->n;
        size_t piece = m && marker ? (size_t)(m - at) : strlen(at);
        char *seg = strndup(at, piece);
        for (int part = 0; part < 1 + marker; part++) {
            const char *s = part ? lit->text[k] : seg;
            int32_t got = 0;
            rsr_status st;
            int32_t *more =
                seg ? encode_all(&api, sv->tok, s, -1, part ? 0 : RSR_ENCODE_PARSE_SPECIAL, &got, &st) : NULL;
            int32_t *all = more ? realloc(ids, sizeof *all * (size_t)(total + got + 1)) : NULL;
            if (!all) return free(more), free(seg), free(ids), NULL;
            memcpy(all + total, more, sizeof *all * (size_t)got), ids = all, total += got;
            free(more);
        }
        free(seg);
        at = marker ? close + ml : NULL; /* no mark, or a lone one: the rest was the template's text */
    }
    *n = total;
    return ids;
}

/* The conversation through the chat template, or NULL with a message; notes in p->reply how the
 * reply is to be split. No lock: rsr.h lets the tokenizer's calls run in any number of threads. */
static char *chat_text(server *sv, serve_params *p, char *err, size_t errlen, literal_set *lit) {
    size_t len = 0, cap = 4096;
    char *text = malloc(cap), *ctx = chat_context(sv, p);
    if (ctx && lit && sv->literal_content) {
        char *marked = literal_context(sv, ctx, lit);
        free(ctx), ctx = marked;
    }
    size_t n = ctx ? strlen(ctx) : 0;
    rsr_status st = text && ctx
                        ? api.tokenizer_apply_chat_template_json(sv->tok, sv->chat_template, ctx, n, text, cap, &len)
                        : RSR_ERR_OUT_OF_MEMORY;
    if (st == RSR_ERR_BUFFER_TOO_SMALL) {
        char *grown = realloc(text, cap = len + 1);
        st = grown ? api.tokenizer_apply_chat_template_json(sv->tok, sv->chat_template, ctx, n, text = grown, cap, &len)
                   : RSR_ERR_OUT_OF_MEMORY;
    }
    free(ctx);
    if (st != RSR_OK) {
        snprintf(err, errlen, "the chat template: %s",
                 st == RSR_ERR_OUT_OF_MEMORY ? "out of memory" : api.tokenizer_errmsg(sv->tok));
        free(text);
        return NULL;
    }
    int format = p->reasoning_format >= 0 ? p->reasoning_format : sv->reasoning_format;
    /* tool_choice required or named: the calls' grammar holds the reply from its first token, so a
     * prompt that opens <think> (Qwen3.5's) is answered by calls, not thoughts */
    bool calls_first = p->tools && (p->tool_choice == SERVE_TOOLS_REQUIRED || p->tool_choice == SERVE_TOOLS_NAMED);
    p->reply = (serve_reply_shape){.reasoning = format == SERVE_REASONING_DEEPSEEK,
                                   .think_open = format == SERVE_REASONING_DEEPSEEK && !calls_first &&
                                                 rsr_ends_in_think(text, len),
                                   .tools = p->tools != NULL,
                                   .format = sv->tool_format,
                                   .offered = p->tools};
    return text;
}

/* The tokens of a prompt's text (with special tokens read as such and BOS added) or of its
 * conversation's rendering (text; its literal contents lit). NULL with a message on failure. */
static int32_t *text_ids(server *sv, const serve_params *p, const char *text, const literal_set *lit, int32_t *n,
                         char *err, size_t errlen) {
    const uint32_t flags = RSR_ENCODE_PARSE_SPECIAL | (p->chat ? 0 : RSR_ENCODE_ADD_SPECIAL);
    const char *src = text ? text : p->prompt;
    rsr_status st = RSR_ERR_OUT_OF_MEMORY;
    int32_t *ids = lit->n ? literal_ids(sv, src, lit, n) : encode_all(&api, sv->tok, src, -1, flags, n, &st);
    if (!ids) {
        snprintf(err, errlen, "%s", st == RSR_ERR_OUT_OF_MEMORY ? "out of memory" : api.tokenizer_errmsg(sv->tok));
        return NULL;
    }
    if (*n == 0) { /* an empty prompt starts from BOS */
        rsr_tokenizer_info ti;
        api.tokenizer_get_info(sv->tok, &ti);
        ids[(*n)++] = ti.bos_token_id >= 0 ? ti.bos_token_id : sv->info.bos_token_id >= 0 ? sv->info.bos_token_id : 0;
    }
    return ids;
}

static int32_t *prompt_ids(server *sv, serve_params *p, int32_t *n, char *err, size_t errlen) {
    if (p->prompt_ids) { /* as given, each in the vocabulary */
        char where[32];
        snprintf(where, sizeof where, p->prompt_list ? "prompt[%d]" : "prompt", p->index);
        for (int32_t i = 0; i < p->n_prompt_ids; i++)
            if (p->prompt_ids[i] >= sv->info.vocab_size) {
                snprintf(err, errlen, "%s[%d] is %d, outside this model's vocabulary [0, %d)", where, i,
                         p->prompt_ids[i], sv->info.vocab_size);
                return NULL;
            }
        int32_t *ids = malloc(sizeof *ids * (size_t)p->n_prompt_ids);
        if (!ids) return snprintf(err, errlen, "out of memory"), NULL;
        memcpy(ids, p->prompt_ids, sizeof *ids * (size_t)p->n_prompt_ids);
        *n = p->n_prompt_ids;
        return ids;
    }
    /* no lock: rsr.h lets the tokenizer's calls run in every connection's thread at once, so one
     * client's long template work or prompt holds up no other client's text */
    char *text = NULL;
    literal_set lit = {0};
    if (p->chat && !(text = chat_text(sv, p, err, errlen, &lit))) return literal_free(&lit), NULL;
    int32_t *ids = text_ids(sv, p, text, &lit, n, err, errlen);
    literal_free(&lit), free(text);
    return ids;
}

/* Whether the tools offered are what puts a chat of n tokens over the context (the conversation
 * alone fits): then "of which ..." in note, and the error names 'tools', not 'messages'. */
static bool tools_over(server *sv, serve_params *p, int32_t n, int32_t ctx, char *note, size_t cap) {
    if (!p->chat || !p->tools) return false;
    cJSON *whole = cJSON_Parse(p->context), *tools = p->tools;
    cJSON_DeleteItemFromObjectCaseSensitive(whole, "tools");
    char *without = whole ? cJSON_PrintUnformatted(whole) : NULL, *context = p->context, err[64];
    cJSON_Delete(whole);
    if (!without) return false;
    serve_reply_shape reply = p->reply;
    p->tools = NULL, p->context = without;
    int32_t alone = 0, *ids = prompt_ids(sv, p, &alone, err, sizeof err);
    p->tools = tools, p->context = context, p->reply = reply;
    free(ids), free(without);
    if (!ids || alone >= ctx) return false;
    snprintf(note, cap, ", %d of them the definitions of 'tools'", n - alone);
    return true;
}

static int connection_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* Whose cached prefixes a request may reuse: a digest of the API key it authenticated with (when
 * the server takes keys) and its cache_salt; all zero when it has neither. */
static void tenant_of(const server *sv, struct MHD_Connection *c, serve_params *p, unsigned char out[32]) {
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *key = serve_guard_needs_key(sv->guard, "/v1/completions") && auth ? auth : NULL;
    memset(out, 0, 32);
    if (!key && !p->cache_salt) return;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, "key", 4) &&
              (!key || EVP_DigestUpdate(ctx, key, strlen(key) + 1)) && EVP_DigestUpdate(ctx, "salt", 5) &&
              (!p->cache_salt || EVP_DigestUpdate(ctx, p->cache_salt, strlen(p->cache_salt) + 1)) &&
              EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
    if (!ok) p->cache_prompt = false; /* no digest: no reuse, rather than another tenant's */
}

/* ---- embeddings ---- */

/* POST /v1/embeddings is computed on a thread of its own (the embedder) with a session of its own,
 * made at the first request and kept (a KV cache of --ctx positions), one request at a time in
 * the order they came. So are the prompts of completions with echo and logprobs: their tokens'
 * log-probabilities need the logits of every position, which the engine's steps do not give. Not in the engine: rsr_session_embed evaluates a whole text in one call,
 * which between two of the engine's steps would stall every running completion for as long as
 * the text takes (the engine feeds prompts --chunk tokens a step for that reason). Not on the
 * connections' threads: each would keep an OpenMP thread pool of its own for as long as it lives.
 * Distinct sessions of one model run at once (rsr.h), so the engine and the embedder share the
 * CPUs: completions come slower while embeddings are computed, but never stop, and nothing is
 * held by both (the embedder never takes the engine's lock; the tokenizer has none).
 * Requests share the thread by turns: a turn computes one input of an embeddings request, or
 * SCORE_CHUNK positions of a scored prompt, then the request goes behind the others waiting; so a
 * one-word embedding waits for at most one input of another's embeddings or one chunk of a scored
 * prompt (66 prompts of 4000 tokens once held it for two minutes, then one prompt for seconds).
 * A prompt being scored keeps its place in a second session (the scorer's) between its turns;
 * another scored prompt starts when it is done. Up to --queue requests wait (503 beyond, as for
 * completions); a request whose client goes away leaves the queue at once, or stops after the
 * turn being computed; a drain
 * lets running and waiting requests finish until --drain's deadline and cancels the rest. */
typedef enum { EMBED_QUEUED, EMBED_RUNNING, EMBED_DONE, EMBED_FAILED, EMBED_CANCELLED } embed_state;

struct embed_job {
    serve_embed_params p;   /* every input with its ids */
    int32_t tokens;         /* the inputs' tokens together */
    float *out;             /* p.n_in vectors of hidden_size floats (embeddings) */
    serve_logprob *lp;      /* a prompt scored (echo): each input's tokens' log-probabilities, input after
                             * input (the first token of each has none); NULL for embeddings */
    int32_t top;            /* a prompt scored: the alternatives given with each token */
    int32_t done;           /* inputs computed (the embedder's thread's) */
    int32_t at;             /* a prompt scored: positions of input `done` scored so far */
    int32_t scored_before;  /* a prompt scored: the log-probabilities of the inputs computed */
    embed_state state;      /* state, cancelled, refs and next: under the embedder's lock */
    bool cancelled;         /* the client went away, or the server is stopping */
    int refs;               /* the embedder's and the connection's: freed by the last */
    char err[256];          /* EMBED_FAILED's message (the thread's until the state is final) */
    struct embed_job *next; /* in the queue */
};

struct embedder {
    rsr_model *m;
    rsr_session_params sp;
    int32_t hidden, vocab, max_queue;
    rsr_session *s;       /* the embedder's thread's alone; NULL until the first request */
    rsr_session *score_s; /* the scorer's: input `done` of the job `scoring` is evaluated in it */
    float *score_lg;      /* SCORE_CHUNK rows of logits */
    embed_job *scoring;   /* under the lock: the scored prompt part-way through an input, or NULL */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a job came, finished or was cancelled */
    embed_job *head, *tail; /* waiting, first come first */
    int32_t queued;
    embed_job *busy; /* the job being computed, or NULL */
    bool draining, stopping;
    long inputs, tokens; /* embedded: /metrics */
    long scored;         /* prompt tokens scored */
};

static void embed_unref_n(embed_job *j, int n) { /* under the lock: n references given up at once */
    if ((j->refs -= n) > 0) return;
    serve_embed_params_free(&j->p);
    free(j->out), free(j->lp), free(j);
}
static void embed_unref(embed_job *j) { embed_unref_n(j, 1); }

/* Whether the job goes on to its next input (not cancelled: read under the lock). */
static bool embed_goes_on(embedder *em, embed_job *j) {
    pthread_mutex_lock(&em->lock);
    bool on = !j->cancelled;
    pthread_mutex_unlock(&em->lock);
    return on;
}

/* A prompt scored (echo with logprobs): the log-probability of each of its tokens after the first,
 * and the alternatives', from the exact logits of every position (rsr_session_eval_all), under the
 * definition of a generated token's (serve_log_softmax: temperature 1, no penalty). One turn
 * scores SCORE_CHUNK positions of the input being scored, in the scorer's session, which keeps
 * the positions before them. */
#define SCORE_CHUNK 64
static embed_state score_compute(embedder *em, embed_job *j) {
    if (!em->score_s && api.session_create(em->m, &em->sp, &em->score_s) != RSR_OK) {
        snprintf(j->err, sizeof j->err, "the scorer's session: %s", api.model_errmsg(em->m));
        em->score_s = NULL;
        return EMBED_FAILED;
    }
    if (!em->score_lg && !(em->score_lg = malloc(sizeof *em->score_lg * SCORE_CHUNK * (size_t)em->vocab)))
        return snprintf(j->err, sizeof j->err, "out of memory for the prompt's logits"), EMBED_FAILED;
    const int32_t *ids = j->p.in[j->done].ids, n = j->p.in[j->done].n_ids, at = j->at;
    int32_t m = n - 1 - at < SCORE_CHUNK ? n - 1 - at : SCORE_CHUNK; /* the last token scores none */
    if (!embed_goes_on(em, j)) return EMBED_CANCELLED;
    if (at == 0) { /* a new input: the session is the prompt's from now until its last chunk */
        pthread_mutex_lock(&em->lock);
        em->scoring = j;
        pthread_mutex_unlock(&em->lock);
        if (api.session_reset(em->score_s) != RSR_OK) m = -1;
    }
    if (m < 0 || (m > 0 && api.session_eval_all(em->score_s, ids + at, m, em->score_lg) != RSR_OK)) {
        snprintf(j->err, sizeof j->err, "%s", api.session_errmsg(em->score_s));
        return EMBED_FAILED;
    }
    serve_logprob *lp = j->lp + j->scored_before;
    for (int32_t r = 0; r < m; r++) {
        const float *row = em->score_lg + (size_t)r * (size_t)em->vocab;
        serve_logprob *x = &lp[at + r + 1];
        double lse = serve_log_softmax(row, em->vocab, j->top, x);
        x->token = ids[at + r + 1], x->logprob = (float)(row[x->token] - lse);
    }
    if ((j->at += m) < n - 1) return EMBED_RUNNING;
    pthread_mutex_lock(&em->lock); /* the input is scored: the session is free for another prompt */
    em->scored += n - 1, em->scoring = NULL;
    pthread_mutex_unlock(&em->lock);
    j->scored_before += n, j->at = 0;
    return ++j->done < j->p.n_in ? EMBED_RUNNING : EMBED_DONE;
}

/* Every input of j, outside the lock (j's inputs and vectors are the thread's while it runs). */
static embed_state embed_compute(embedder *em, embed_job *j) {
    if (j->lp) return score_compute(em, j);
    if (!em->s && api.session_create(em->m, &em->sp, &em->s) != RSR_OK) {
        snprintf(j->err, sizeof j->err, "the embeddings' session: %s", api.model_errmsg(em->m));
        em->s = NULL; /* made again at the next request */
        return EMBED_FAILED;
    }
    for (int32_t i = j->done; i < j->done + 1 && i < j->p.n_in; i++) { /* one input a turn (embed_main) */
        if (!embed_goes_on(em, j)) return EMBED_CANCELLED;
        float *v = j->out + (size_t)i * (size_t)em->hidden;
        if (api.session_embed(em->s, j->p.in[i].ids, j->p.in[i].n_ids, 1, v) != RSR_OK) {
            snprintf(j->err, sizeof j->err, "%s", api.session_errmsg(em->s));
            return EMBED_FAILED;
        }
        for (int32_t k = 0; k < em->hidden; k++)
            if (!isfinite(v[k])) {
                snprintf(j->err, sizeof j->err, "the embedding of input %d is not finite (the model overflowed)", i);
                return EMBED_FAILED;
            }
        pthread_mutex_lock(&em->lock);
        em->inputs++, em->tokens += j->p.in[i].n_ids;
        pthread_mutex_unlock(&em->lock);
    }
    return ++j->done < j->p.n_in ? EMBED_RUNNING : EMBED_DONE;
}

/* The next job to take a turn, out of the queue (under the lock): the first one waiting, but a
 * scored prompt only when the scorer's session is free or its own. */
static embed_job *embed_next(embedder *em) {
    for (embed_job **at = &em->head, *prev = NULL; *at; prev = *at, at = &(*at)->next) {
        embed_job *j = *at;
        if (j->lp && em->scoring && em->scoring != j) continue;
        *at = j->next, em->queued--;
        if (em->tail == j) em->tail = prev;
        return j;
    }
    return NULL;
}

static void *embed_main(void *arg) {
    embedder *em = arg;
    pthread_mutex_lock(&em->lock);
    for (;;) {
        while (!em->head && !em->stopping) pthread_cond_wait(&em->changed, &em->lock);
        if (em->stopping) break; /* the connections are gone: embedder_free drops what waits */
        embed_job *j = embed_next(em);
        if (!j) { /* cannot be: the scoring job is queued or was unlinked (which frees the scorer) */
            em->scoring = NULL;
            continue;
        }
        em->busy = j;
        j->state = EMBED_RUNNING;
        pthread_mutex_unlock(&em->lock);
        embed_state st = embed_compute(em, j);
        pthread_mutex_lock(&em->lock);
        em->busy = NULL;
        if (st == EMBED_RUNNING && !j->cancelled && !em->stopping) { /* more to do: behind the others */
            j->state = EMBED_QUEUED, j->next = NULL;
            if (em->tail)
                em->tail->next = j;
            else
                em->head = j;
            em->tail = j, em->queued++;
            continue;
        }
        if (em->scoring == j) em->scoring = NULL;
        j->state = st == EMBED_RUNNING ? EMBED_CANCELLED : st;
        embed_unref(j);
        pthread_cond_broadcast(&em->changed);
    }
    pthread_mutex_unlock(&em->lock);
    return NULL;
}

static embedder *embedder_start(rsr_model *m, const rsr_session_params *sp, int32_t hidden, int32_t vocab,
                                int32_t max_queue) {
    embedder *em = calloc(1, sizeof *em);
    if (!em) return NULL;
    em->m = m, em->sp = *sp, em->hidden = hidden, em->vocab = vocab, em->max_queue = max_queue;
    pthread_mutex_init(&em->lock, NULL);
    pthread_cond_init(&em->changed, NULL);
    if (pthread_create(&em->thread, NULL, embed_main, em) != 0) {
        pthread_mutex_destroy(&em->lock), pthread_cond_destroy(&em->changed), free(em);
        return NULL;
    }
    return em;
}

/* Takes the job (refs 2: the embedder's and the caller's): 0, or 1 when the server is draining,
 * 2 when the queue is full. */
static int embedder_submit(embedder *em, embed_job *j) {
    pthread_mutex_lock(&em->lock);
    int refused = em->draining ? 1 : em->queued + (em->busy != NULL) > em->max_queue ? 2 : 0;
    if (!refused) {
        j->refs = 2, j->state = EMBED_QUEUED, j->next = NULL;
        if (em->tail)
            em->tail->next = j;
        else
            em->head = j;
        em->tail = j, em->queued++;
        pthread_cond_broadcast(&em->changed);
    }
    pthread_mutex_unlock(&em->lock);
    return refused;
}

/* Out of the queue, cancelled (under the lock); false when it was not queued. The embedder's
 * reference is the caller's to give up. */
static bool embed_unlink(embedder *em, embed_job *j) {
    embed_job **at = &em->head, *prev = NULL;
    while (*at && *at != j) prev = *at, at = &(*at)->next;
    if (!*at) return false;
    *at = j->next, em->queued--;
    if (em->tail == j) em->tail = prev;
    if (em->scoring == j) em->scoring = NULL;
    j->state = EMBED_CANCELLED;
    return true;
}

static void embed_dequeue(embedder *em, embed_job *j) {
    if (embed_unlink(em, j)) embed_unref(j);
}

/* Waits for the job to end, looking at the client's socket four times a second; true when the
 * client has gone (the caller then gives the job up). */
static bool embedder_wait(embedder *em, embed_job *j, int fd) {
    bool gone = false;
    pthread_mutex_lock(&em->lock);
    while ((j->state == EMBED_QUEUED || j->state == EMBED_RUNNING) && !gone) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&em->changed, &em->lock, &ts);
        gone = (j->state == EMBED_QUEUED || j->state == EMBED_RUNNING) && serve_client_gone(fd);
    }
    pthread_mutex_unlock(&em->lock);
    return gone;
}

/* The connection's reference given up: a job still waiting leaves the queue, a running one stops
 * after its input. */
static void embedder_release(embedder *em, embed_job *j) {
    pthread_mutex_lock(&em->lock);
    int refs = 1; /* the connection's, and the embedder's with a job taken out of the queue */
    if (j->state == EMBED_QUEUED && embed_unlink(em, j))
        refs = 2;
    else if (j->state == EMBED_RUNNING)
        j->cancelled = true;
    embed_unref_n(j, refs);
    pthread_mutex_unlock(&em->lock);
}

/* SIGINT/SIGTERM: no new request; the running and waiting ones finish until `until` (serve_now's
 * clock), then the rest are cancelled (their connections answer 503). */
static void embedder_drain(embedder *em, double until) {
    pthread_mutex_lock(&em->lock);
    em->draining = true;
    while ((em->head || em->busy) && serve_now() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&em->changed, &em->lock, &ts);
    }
    while (em->head) embed_dequeue(em, em->head);
    if (em->busy) em->busy->cancelled = true; /* it stops after its input */
    pthread_cond_broadcast(&em->changed);
    pthread_mutex_unlock(&em->lock);
}

/* After the connections are gone: the thread stopped, the session freed. */
static void embedder_free(embedder *em) {
    pthread_mutex_lock(&em->lock);
    em->stopping = true;
    pthread_cond_broadcast(&em->changed);
    pthread_mutex_unlock(&em->lock);
    pthread_join(em->thread, NULL);
    while (em->head) embed_dequeue(em, em->head);
    api.session_free(em->s), api.session_free(em->score_s), free(em->score_lg);
    pthread_mutex_destroy(&em->lock), pthread_cond_destroy(&em->changed);
    free(em);
}

/* For /metrics: inputs and tokens embedded, prompt tokens scored, requests waiting. */
static void embedder_counts(embedder *em, long *inputs, long *tokens, long *scored, int32_t *waiting) {
    pthread_mutex_lock(&em->lock);
    *inputs = em->inputs, *tokens = em->tokens, *scored = em->scored, *waiting = em->queued;
    pthread_mutex_unlock(&em->lock);
}

/* How a message names input i: "input" alone, or "input[i]" of a list. */
static const char *embed_where(const serve_embed_params *p, int32_t i, char where[32]) {
    if (!p->list) return "input";
    snprintf(where, 32, "input[%d]", i);
    return where;
}

/* The request's checks that need the model, and its texts' tokens (as rsr-run --embed makes
 * them: BOS and EOS where the model adds them, special tokens read as such). false with a 400
 * queued in *ret. */
static bool embed_inputs(server *sv, struct MHD_Connection *c, embed_job *j, enum MHD_Result *ret) {
    const int32_t ctx = serve_ctx(sv->e);
    serve_embed_params *p = &j->p;
    char err[512] = "", where[32];
    if (sv->strict_model && p->model && strcmp(p->model, sv->model_id))
        return *ret = send_error(c, 400, "invalid_request_error", "model", "model_not_found",
                                 "the model '%.200s' is not served here; this server serves '%s' (GET /v1/models)",
                                 p->model, sv->model_id),
               false;
    if (p->dimensions >= 0 && p->dimensions != sv->info.hidden_size)
        return *ret = send_error(c, 400, "invalid_request_error", "dimensions", NULL,
                                 "'dimensions' is %d; this model's embeddings have %d (its hidden size), and are not "
                                 "shortened",
                                 p->dimensions, sv->info.hidden_size),
               false;
    for (int32_t i = 0; i < p->n_in && !sv->tok; i++)
        if (p->in[i].text) {
            snprintf(err, sizeof err, "%s, a text,", embed_where(p, i, where));
            return *ret = no_tokenizer(c, "input", err), false;
        }
    for (int32_t i = 0; i < p->n_in && !*err; i++) {
        serve_embed_input *in = &p->in[i];
        if (!in->text) continue;
        rsr_status st;
        in->ids =
            encode_all(&api, sv->tok, in->text, -1, RSR_ENCODE_ADD_SPECIAL | RSR_ENCODE_PARSE_SPECIAL, &in->n_ids, &st);
        if (st != RSR_OK)
            snprintf(err, sizeof err, "%s: %s", embed_where(p, i, where),
                     st == RSR_ERR_OUT_OF_MEMORY ? "out of memory" : api.tokenizer_errmsg(sv->tok));
        else if (!in->n_ids)
            snprintf(err, sizeof err, "%s has no tokens", embed_where(p, i, where));
    }
    if (*err) return *ret = refuse_request(c, "input", err), false;
    for (int32_t i = 0; i < p->n_in; i++) {
        if (p->in[i].n_ids > ctx)
            return *ret = send_error(c, 400, "invalid_request_error", "input", "context_length_exceeded",
                                     "%s has %d tokens; the context here is %d (rsr-serve --ctx)",
                                     embed_where(p, i, where), p->in[i].n_ids, ctx),
                   false;
        j->tokens += p->in[i].n_ids;
    }
    if (!(j->out = malloc(sizeof(float) * (size_t)p->n_in * (size_t)sv->info.hidden_size)))
        return *ret = send_error(c, 503, "server_error", NULL, NULL, "out of memory for the embeddings"), false;
    return true;
}

/* n floats as their little-endian bytes in base64 (OpenAI's encoding_format "base64"). */
static char *base64_f32(const float *v, int32_t n) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = 4 * (size_t)n;
    unsigned char *b = malloc(len);
    char *out = malloc(4 * ((len + 2) / 3) + 1), *w = out;
    if (!b || !out) return free(b), free(out), NULL;
    for (int32_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++) b[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
    for (size_t i = 0; i < len; i += 3) {
        uint32_t x = (uint32_t)b[i] << 16 | (i + 1 < len ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < len ? b[i + 2] : 0);
        *w++ = digits[x >> 18], *w++ = digits[(x >> 12) & 63];
        *w++ = i + 1 < len ? digits[(x >> 6) & 63] : '=';
        *w++ = i + 2 < len ? digits[x & 63] : '=';
    }
    *w = 0;
    free(b);
    return out;
}

/* n floats as a JSON array, each with the 9 significant digits that give its float back. */
static char *json_f32(const float *v, int32_t n) {
    size_t cap = 24 * (size_t)n + 3, at = 1;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[0] = '[';
    for (int32_t i = 0; i < n; i++) at += (size_t)snprintf(out + at, cap - at, "%s%.9g", i ? "," : "", (double)v[i]);
    snprintf(out + at, cap - at, "]");
    return out;
}

/* {"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage"} */
static enum MHD_Result embed_reply(server *sv, struct MHD_Connection *c, const embed_job *j) {
    const int32_t h = sv->info.hidden_size;
    cJSON *root = cJSON_CreateObject(), *data;
    cJSON_AddStringToObject(root, "object", "list");
    data = cJSON_AddArrayToObject(root, "data");
    bool ok = data != NULL;
    for (int32_t i = 0; ok && i < j->p.n_in; i++) {
        char *v =
            j->p.base64 ? base64_f32(j->out + (size_t)i * (size_t)h, h) : json_f32(j->out + (size_t)i * (size_t)h, h);
        cJSON *e = v ? cJSON_CreateObject() : NULL;
        ok = e != NULL;
        if (ok) {
            cJSON_AddStringToObject(e, "object", "embedding");
            cJSON_AddNumberToObject(e, "index", i);
            cJSON_AddItemToObject(e, "embedding", j->p.base64 ? cJSON_CreateString(v) : cJSON_CreateRaw(v));
            cJSON_AddItemToArray(data, e);
        }
        free(v);
    }
    if (!ok) {
        cJSON_Delete(root);
        return send_error(c, 503, "server_error", NULL, NULL, "out of memory for the reply");
    }
    cJSON_AddStringToObject(root, "model", sv->model_id);
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", j->tokens);
    cJSON_AddNumberToObject(u, "total_tokens", j->tokens);
    return send_json(c, MHD_HTTP_OK, root, 0);
}

/* POST /v1/embeddings: OpenAI's, every vector of unit length. */
static enum MHD_Result embeddings(server *sv, struct MHD_Connection *c, const char *body, size_t len) {
    embed_job *j = calloc(1, sizeof *j);
    char err[512];
    const char *param;
    enum MHD_Result ret = MHD_NO;
    if (!j) return send_error(c, 503, "server_error", NULL, NULL, "out of memory");
    if (!serve_embed_parse(body, len, sv->info.vocab_size, &j->p, err, sizeof err, &param)) {
        free(j);
        return send_error(c, 400, "invalid_request_error", param, NULL, "%s", err);
    }
    int refused = -1; /* -1: refused by embed_inputs (ret); 1: draining; 2: the queue is full */
    if (embed_inputs(sv, c, j, &ret)) refused = serve_draining(sv->e) ? 1 : embedder_submit(sv->emb, j);
    if (refused) {
        serve_embed_params_free(&j->p), free(j->out), free(j);
        return refused < 0
                   ? ret
                   : send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_overloaded", NULL, NULL,
                                refused == 1 ? "the server is shutting down"
                                             : "the embeddings' queue is full (rsr-serve --queue); retry shortly");
    }
    if (embedder_wait(sv->emb, j, connection_fd(c))) { /* no one to answer: the work stops */
        embedder_release(sv->emb, j);
        return MHD_NO;
    }
    if (j->state == EMBED_FAILED)
        ret = send_error(c, 500, "server_error", NULL, NULL, "%s", j->err);
    else if (j->state == EMBED_CANCELLED)
        ret = send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_overloaded", NULL, NULL,
                         "the server stopped before the request finished");
    else
        ret = embed_reply(sv, c, j);
    embedder_release(sv->emb, j);
    return ret;
}

/* ---- completions ---- */

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
 * with a 400 queued in *ret. */
static bool tool_grammar(server *sv, struct MHD_Connection *c, serve_job *j, enum MHD_Result *ret) {
    serve_params *p = &j->p;
    if (p->tools && p->tool_choice == SERVE_TOOLS_AUTO && !p->grammar && !p->shape) return lazy_tool_grammar(sv, p);
    if (!p->tools || (p->tool_choice != SERVE_TOOLS_REQUIRED && p->tool_choice != SERVE_TOOLS_NAMED)) return true;
    if (p->grammar || p->shape)
        return *ret = send_error(c, 400, "invalid_request_error", "tool_choice", NULL,
                                 "'tool_choice' %s constrains the reply to tool calls: it cannot be given with "
                                 "'grammar' or a JSON 'response_format'",
                                 p->tool_choice == SERVE_TOOLS_NAMED ? "naming a function" : "required"),
               false;
    char err[512];
    if (!(p->grammar = serve_tool_grammar(sv->tool_format, p->tools, p->tool_name, p->parallel_tool_calls,
                                          sv->tool_marker_text, err, sizeof err)))
        return *ret = send_error(c, 400, "invalid_request_error", "tools", NULL, "the tools' calls: %s", err), false;
    return true;
}

/* The request's checks that need the model, each prompt's tokens, and each reply's room in the
 * context: max_tokens is cut to what fits (the reply then ends with "length"), and only a prompt
 * that leaves no room is refused (one that fills the context whole, with max_tokens 0). false
 * with a 400 queued in *ret. */
static bool complete_check(server *sv, struct MHD_Connection *c, serve_job **js, int32_t n, enum MHD_Result *ret) {
    const serve_params *p = &js[0]->p;
    const int32_t ctx = serve_ctx(sv->e);
    const char *prompt_param = p->chat ? "messages" : "prompt";
    char err[512], where[48];
    if (sv->strict_model && p->model && strcmp(p->model, sv->model_id))
        return *ret = send_error(c, 400, "invalid_request_error", "model", "model_not_found",
                                 "the model '%.200s' is not served here; this server serves '%s' (GET /v1/models)",
                                 p->model, sv->model_id),
               false;
    if (!sv->tok) { /* no text in or out */
        const char *param = p->chat      ? "messages"
                            : p->n_stop  ? "stop"
                            : p->grammar ? "grammar"
                            : p->shape   ? "response_format"
                                         : NULL;
        for (int32_t k = 0; k < n && !param; k++)
            if (js[k]->p.prompt) param = "prompt";
        if (param) {
            snprintf(where, sizeof where, "%s%s%s", p->chat ? "" : "'", p->chat ? "/v1/chat/completions" : param,
                     p->chat                    ? ""
                     : !strcmp(param, "prompt") ? "' as text"
                                                : "'");
            return *ret = no_tokenizer(c, param, where), false;
        }
    }
    if (p->stream && n > 1)
        return *ret = send_error(c, 400, "invalid_request_error", "stream", NULL,
                                 "'stream' with %d prompts is not served: stream one prompt a request, or ask for "
                                 "them together without streaming",
                                 n),
               false;
    if (n > serve_room(sv->e))
        return *ret = send_error(c, 400, "invalid_request_error", "prompt", NULL,
                                 "'prompt' holds %d prompts; this server holds at most %d requests at once "
                                 "(rsr-serve --parallel and --queue)",
                                 n, serve_room(sv->e)),
               false;
    for (int32_t k = 0; k < n; k++) {
        serve_job *j = js[k];
        if (!(j->ids = prompt_ids(sv, &j->p, &j->n_ids, err, sizeof err)))
            return *ret = refuse_request(c, prompt_param, err), false;
        if (j->n_ids > ctx || (j->n_ids == ctx && j->p.max_tokens != 0)) {
            char tools[96] = "";
            const char *param = tools_over(sv, &j->p, j->n_ids, ctx, tools, sizeof tools) ? "tools" : prompt_param;
            snprintf(where, sizeof where, j->p.prompt_list ? "prompt[%d] has" : "the prompt has", k);
            return *ret = send_error(c, 400, "invalid_request_error", param, "context_length_exceeded",
                                     "%s %d tokens%s; the context of a sequence here is %d (rsr-serve --ctx)", where,
                                     j->n_ids, tools, ctx),
                   false;
        }
        if (j->p.max_tokens < 0 || j->p.max_tokens > ctx - j->n_ids) j->p.max_tokens = ctx - j->n_ids;
    }
    return tool_grammar(sv, c, js[0], ret);
}

/* The embedder's job that scores every prompt of the request (echo with logprobs), or NULL when
 * out of memory. */
static embed_job *score_job(serve_job *const *js, int32_t n) {
    embed_job *s = calloc(1, sizeof *s);
    if (!s || !(s->p.in = calloc((size_t)n, sizeof *s->p.in))) return free(s), NULL;
    s->p.n_in = n, s->top = js[0]->p.top_logprobs;
    bool ok = true;
    for (int32_t k = 0; k < n && ok; k++) {
        serve_embed_input *in = &s->p.in[k];
        if ((ok = (in->ids = malloc(sizeof *in->ids * (size_t)js[k]->n_ids)) != NULL))
            memcpy(in->ids, js[k]->ids, sizeof *in->ids * (size_t)js[k]->n_ids), in->n_ids = js[k]->n_ids;
        s->tokens += js[k]->n_ids;
    }
    if (!ok || !(s->lp = calloc((size_t)s->tokens, sizeof *s->lp))) {
        serve_embed_params_free(&s->p), free(s);
        return NULL;
    }
    return s;
}

/* The text of a choice: the prompt's first with echo, then the reply's (invalid UTF-8 replaced). */
static char *choice_text(const server *sv, const serve_job *j) {
    size_t plen = 0;
    char *raw = j->p.echo ? prompt_text(sv, j, &plen) : NULL;
    if (j->p.echo && !raw) return NULL;
    char *all = realloc(raw, plen + j->n_text + 1);
    if (!all) return free(raw), NULL;
    if (j->n_text) memcpy(all + plen, j->text, j->n_text);
    char *text = serve_utf8_clean(all, plen + j->n_text);
    free(all);
    return text;
}

/* The reply to a request whose jobs have all finished: a choice for each, in the prompts' order
 * (plp: the prompts' scores, one after another, or NULL); an error when one of them failed. */
static enum MHD_Result complete_reply(server *sv, struct MHD_Connection *c, serve_job *const *js, int32_t n,
                                      const serve_logprob *plp) {
    for (int32_t k = 0; k < n; k++) {
        const serve_job *j = js[k];
        if (j->finish == SERVE_FAILED && j->err_param) /* the request's own doing: its grammar or schema */
            return send_error(c, 400, "invalid_request_error", j->err_param, NULL, "%s", j->err);
        if (j->finish == SERVE_FAILED) return send_error(c, 500, "server_error", NULL, NULL, "%s", j->err);
        if (j->finish == SERVE_CANCELLED)
            return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_overloaded", NULL, NULL,
                              "the server stopped before the request finished");
    }
    cJSON *root = envelope(sv, js[0], false), *choices = cJSON_AddArrayToObject(root, "choices");
    for (int32_t k = 0; k < n; k++) {
        const serve_job *j = js[k];
        char *text = choice_text(sv, j);
        if (!text) {
            cJSON_Delete(root);
            return send_error(c, 503, "server_error", NULL, NULL, "out of memory for the reply");
        }
        cJSON *ch = j->p.chat ? chat_choice(j, text) : choice(j, text, finish_reason(j->finish), false, true);
        size_t offset = 0;
        add_logprobs(sv, ch, j, 0, j->n_lp, &offset, plp);
        if (wants_ids(sv, j)) {
            if (!j->p.chat) add_ids(ch, "prompt_token_ids", j->ids, j->n_ids);
            add_ids(ch, "token_ids", j->out_ids, j->n_gen);
        }
        cJSON_AddItemToArray(choices, ch);
        free(text);
        if (plp) plp += j->n_ids;
    }
    if (js[0]->p.chat && wants_ids(sv, js[0])) add_ids(root, "prompt_token_ids", js[0]->ids, js[0]->n_ids);
    add_usage(root, js, n);
    return send_json(c, MHD_HTTP_OK, root, 0);
}

/* A stream of the request's one job (and its prompt's score, already computed, or NULL). */
static enum MHD_Result complete_stream(server *sv, struct MHD_Connection *c, serve_job *j, embed_job *score) {
    stream *st = calloc(1, sizeof *st);
    struct MHD_Response *r =
        st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free) : NULL;
    if (!r) {
        free(st);
        serve_release(sv->e, j);
        if (score) embedder_release(sv->emb, score);
        return MHD_NO;
    }
    st->sv = sv, st->j = j, st->fd = connection_fd(c);
    st->score = score, st->plp = score ? score->lp : NULL;
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    if (current) current->status = MHD_HTTP_OK;
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* POST /v1/completions (each prompt of a list a job of the engine, their choices gathered into one
 * reply) and /v1/chat/completions. With echo and logprobs the embedder scores the prompts while
 * the engine generates; a stream starts once they are scored. */
static enum MHD_Result complete(server *sv, struct MHD_Connection *c, bool chat, const char *body, size_t len) {
    serve_params *ps;
    int32_t n;
    char err[512];
    const char *param;
    if (!serve_parse_all(body, len, chat, &ps, &n, err, sizeof err, &param)) {
        serve_count_invalid(sv->e);
        return send_error(c, 400, "invalid_request_error", param, NULL, "%s", err);
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
    if (!complete_check(sv, c, js, n, &ret)) {
        serve_count_invalid(sv->e);
        jobs_drop(js, n);
        return ret;
    }
    static unsigned long counter;
    long created = (long)time(NULL);
    unsigned long serial = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) & 0xffff;
    for (int32_t k = 0; k < n; k++) {
        js[k]->created = created;
        snprintf(js[k]->id, sizeof js[k]->id, "%s-%lx%04lx", chat ? "chatcmpl" : "cmpl", (unsigned long)created,
                 serial);
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

/* ---- the other endpoints ---- */

/* A boolean field of a tokenize request: absent or null gives def. */
static bool flag_of(const cJSON *root, const char *key, bool def, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return *out = def, true;
    return cJSON_IsBool(v) && (*out = cJSON_IsTrue(v), true);
}

/* A piece as llama-server gives it: a string where its bytes are UTF-8, else their values. */
static void add_piece(cJSON *token, const char *piece, size_t len) {
    char *clean = serve_utf8_clean(piece, len);
    if (clean && strlen(clean) == len && !memcmp(clean, piece, len)) {
        cJSON_AddStringToObject(token, "piece", clean);
    } else {
        cJSON *bytes = cJSON_AddArrayToObject(token, "piece");
        for (size_t i = 0; i < len; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)piece[i]));
    }
    free(clean);
}

/* POST /tokenize, as llama-server's: {"content": TEXT, "add_special": false, "parse_special": true,
 * "with_pieces": false} → {"tokens": [ids]} or, with pieces, [{"id", "piece"}]. */
static enum MHD_Result tokenize(server *sv, struct MHD_Connection *c, const char *body, size_t len) {
    if (!sv->tok) return no_tokenizer(c, NULL, "/tokenize");
    cJSON *root = cJSON_ParseWithLength(body, len), *out = NULL;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
    bool add = false, parse = true, pieces = false;
    const char *bad = !cJSON_IsObject(root)                           ? NULL
                      : !cJSON_IsString(content)                      ? "content"
                      : !flag_of(root, "add_special", false, &add)    ? "add_special"
                      : !flag_of(root, "parse_special", true, &parse) ? "parse_special"
                      : !flag_of(root, "with_pieces", false, &pieces) ? "with_pieces"
                                                                      : "";
    if (!bad || *bad) {
        cJSON_Delete(root);
        return send_error(c, 400, "invalid_request_error", bad, NULL, "%s",
                          !bad ? "the body must be a JSON object: {\"content\": TEXT}"
                          : !strcmp(bad, "content")
                              ? "'content' must be a string"
                              : "'add_special', 'parse_special' and 'with_pieces' are true or false");
    }
    size_t n_text = strlen(content->valuestring);
    int32_t n = 0;
    rsr_status st;
    int32_t *ids = encode_all(&api, sv->tok, content->valuestring, (ptrdiff_t)n_text,
                              (add ? RSR_ENCODE_ADD_SPECIAL : 0) | (parse ? RSR_ENCODE_PARSE_SPECIAL : 0), &n, &st);
    if (ids && (out = cJSON_CreateObject())) {
        cJSON *list = cJSON_AddArrayToObject(out, "tokens");
        for (int32_t i = 0; i < n; i++) {
            if (!pieces) {
                cJSON_AddItemToArray(list, cJSON_CreateNumber(ids[i]));
                continue;
            }
            cJSON *t = cJSON_CreateObject();
            size_t plen = 0;
            const char *piece = api.tokenizer_token_piece(sv->tok, ids[i], &plen);
            cJSON_AddNumberToObject(t, "id", ids[i]);
            add_piece(t, piece ? piece : "", piece ? plen : 0);
            cJSON_AddItemToArray(list, t);
        }
    }
    if (!ids && st != RSR_ERR_OUT_OF_MEMORY) { /* the tokenizer's refusal is the request's fault */
        char why[512];
        snprintf(why, sizeof why, "%s", api.tokenizer_errmsg(sv->tok));
        cJSON_Delete(root);
        return send_error(c, 400, "invalid_request_error", "content", NULL, "%s", why);
    }
    free(ids);
    cJSON_Delete(root);
    if (!out) return send_error(c, 503, "server_error", NULL, NULL, "out of memory tokenizing");
    return send_json(c, MHD_HTTP_OK, out, 0);
}

/* POST /apply-template, as llama-server's: a chat request's messages → {"prompt": the text the
 * chat template makes of them, ending where the assistant's reply begins}. */
static enum MHD_Result apply_template(server *sv, struct MHD_Connection *c, const char *body, size_t len) {
    if (!sv->tok) return no_tokenizer(c, NULL, "/apply-template");
    serve_params p;
    char err[512];
    const char *param;
    if (!serve_parse(body, len, true, &p, err, sizeof err, &param))
        return send_error(c, 400, "invalid_request_error", param, NULL, "%s", err);
    char *text = chat_text(sv, &p, err, sizeof err, NULL);
    serve_params_free(&p);
    if (!text) return send_error(c, 400, "invalid_request_error", "messages", NULL, "%s", err);
    char *clean = serve_utf8_clean(text, strlen(text));
    free(text);
    cJSON *out = clean ? cJSON_CreateObject() : NULL;
    if (!out) return free(clean), send_error(c, 503, "server_error", NULL, NULL, "out of memory");
    cJSON_AddStringToObject(out, "prompt", clean);
    free(clean);
    return send_json(c, MHD_HTTP_OK, out, 0);
}

/* POST /detokenize, as llama-server's: {"tokens": [ids]} → {"content": TEXT} (special tokens
 * written out; bytes that are not UTF-8 as U+FFFD). */
static enum MHD_Result detokenize(server *sv, struct MHD_Connection *c, const char *body, size_t len) {
    if (!sv->tok) return no_tokenizer(c, NULL, "/detokenize");
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens"), *t;
    int32_t n = cJSON_IsArray(tokens) ? cJSON_GetArraySize(tokens) : -1, k = 0;
    int32_t *ids = n >= 0 ? malloc(sizeof *ids * (size_t)(n + 1)) : NULL;
    const char *why = !cJSON_IsObject(root) || n < 0 ? "'tokens' must be an array of token ids" : !ids ? "" : NULL;
    cJSON_ArrayForEach(t, tokens) {
        if (why) break;
        /* the range first: converting a double at or past 2^31 to int32_t is undefined */
        if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0 && t->valuedouble < sv->info.vocab_size) ||
            t->valuedouble != floor(t->valuedouble))
            why = "every element of 'tokens' must be a token id of this model, in [0, vocab_size)";
        else
            ids[k++] = (int32_t)t->valuedouble;
    }
    char *text = NULL, *clean = NULL;
    size_t tlen = 0;
    if (!why) {
        rsr_status st = api.tokenizer_decode(sv->tok, ids, k, 0, NULL, 0, &tlen);
        if ((st == RSR_OK || st == RSR_ERR_BUFFER_TOO_SMALL) && (text = malloc(tlen + 1)))
            st = api.tokenizer_decode(sv->tok, ids, k, 0, text, tlen + 1, &tlen);
        if (!text || st != RSR_OK || !(clean = serve_utf8_clean(text, tlen))) why = "";
    }
    free(ids), free(text);
    cJSON_Delete(root);
    if (why && *why) return send_error(c, 400, "invalid_request_error", "tokens", NULL, "%s", why);
    cJSON *out = why ? NULL : cJSON_CreateObject();
    if (!out) return free(clean), send_error(c, 503, "server_error", NULL, NULL, "out of memory detokenizing");
    cJSON_AddStringToObject(out, "content", clean);
    free(clean);
    return send_json(c, MHD_HTTP_OK, out, 0);
}

static enum MHD_Result models(server *sv, struct MHD_Connection *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", sv->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)sv->started);
    cJSON_AddStringToObject(m, "owned_by", "rsrc");
    /* one model is served: a request naming any other gets it, unless --strict-model */
    cJSON_AddBoolToObject(m, "any_name", !sv->strict_model);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "data"), m);
    return send_json(c, MHD_HTTP_OK, root, 0);
}

static enum MHD_Result info(server *sv, struct MHD_Connection *c) {
    const rsr_model_info *i = &sv->info;
    int32_t active, queued;
    serve_metrics mt;
    serve_get_metrics(sv->e, &mt, &active, &queued);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", sv->model_id);
    cJSON_AddStringToObject(root, "architecture", i->architecture);
    cJSON_AddStringToObject(root, "target", i->target);
    cJSON_AddStringToObject(root, "compiler", i->compiler);
    cJSON_AddStringToObject(root, "device", i->device);
    cJSON_AddNumberToObject(root, "threads", i->num_threads);
    cJSON_AddNumberToObject(root, "layers", i->num_layers);
    cJSON_AddNumberToObject(root, "hidden_size", i->hidden_size);
    static const char *const pooling[] = {"none", "mean", "cls", "last"}; /* how /v1/embeddings pools */
    cJSON_AddStringToObject(root, "pooling", i->pooling >= 1 && i->pooling <= 3 ? pooling[i->pooling] : "none");
    cJSON_AddNumberToObject(root, "vocab_size", i->vocab_size);
    cJSON_AddBoolToObject(root, "tokenizer", sv->tok != NULL); /* false: requests give token ids */
    cJSON_AddNumberToObject(root, "context", serve_ctx(sv->e));
    cJSON_AddNumberToObject(root, "active", active);
    cJSON_AddNumberToObject(root, "queued", queued);
    cJSON_AddNumberToObject(root, "tokens_per_second", mt.recent_tok_s);
    cJSON_AddNumberToObject(root, "completion_tokens", (double)mt.completion_tokens);
    cJSON_AddStringToObject(root, "manifest", api.model_manifest(sv->m));
    return send_json(c, MHD_HTTP_OK, root, 0);
}

static enum MHD_Result metrics(server *sv, struct MHD_Connection *c) {
    serve_metrics mt;
    int32_t active, queued;
    serve_get_metrics(sv->e, &mt, &active, &queued);
    long reaped, refused_client, refused_total;
    serve_guard_counts(sv->guard, &reaped, &refused_client, &refused_total);
    char buf[8192];
    int n = snprintf(
        buf, sizeof buf,
        "# HELP rsr_requests_total Completion requests by outcome.\n# TYPE rsr_requests_total counter\n"
        "rsr_requests_total{outcome=\"ok\"} %ld\nrsr_requests_total{outcome=\"cancelled\"} %ld\n"
        "rsr_requests_total{outcome=\"failed\"} %ld\nrsr_requests_total{outcome=\"rejected_queue_full\"} %ld\n"
        "rsr_requests_total{outcome=\"invalid\"} %ld\n"
        "# HELP rsr_prompt_tokens_total Prompt tokens evaluated.\n# TYPE rsr_prompt_tokens_total counter\n"
        "rsr_prompt_tokens_total %ld\n"
        "# HELP rsr_prompt_tokens_cached_total Prompt tokens a slot's cache held (prefix reuse): not evaluated.\n"
        "# TYPE rsr_prompt_tokens_cached_total counter\nrsr_prompt_tokens_cached_total %ld\n"
        "# HELP rsr_completion_tokens_total Tokens generated.\n# TYPE rsr_completion_tokens_total counter\n"
        "rsr_completion_tokens_total %ld\n"
        "# HELP rsr_steps_total Batched forward steps.\n# TYPE rsr_steps_total counter\nrsr_steps_total %ld\n"
        "# HELP rsr_busy_seconds_total Time spent in steps.\n# TYPE rsr_busy_seconds_total counter\n"
        "rsr_busy_seconds_total %.3f\n"
        "# HELP rsr_mask_seconds_total Time spent masking logits to a grammar or JSON schema (part of busy).\n"
        "# TYPE rsr_mask_seconds_total counter\nrsr_mask_seconds_total %.3f\n"
        "# HELP rsr_queue_depth Requests waiting for a slot.\n# TYPE rsr_queue_depth gauge\nrsr_queue_depth %d\n"
        "# HELP rsr_active_sequences Requests in a slot.\n# TYPE rsr_active_sequences gauge\n"
        "rsr_active_sequences %d\n"
        "# HELP rsr_tokens_per_second Generation speed: generated tokens per second of the engine's steps, over "
        "its last 2 s of steps.\n"
        "# TYPE rsr_tokens_per_second gauge\nrsr_tokens_per_second %.2f\n"
        "# HELP rsr_connections_timed_out_total Connections closed for taking too long over a request.\n"
        "# TYPE rsr_connections_timed_out_total counter\nrsr_connections_timed_out_total %ld\n"
        "# HELP rsr_connections_refused_total Connections told 503 at once (over --max-per-client or "
        "--max-connections).\n# TYPE rsr_connections_refused_total counter\n"
        "rsr_connections_refused_total{limit=\"per_client\"} %ld\n"
        "rsr_connections_refused_total{limit=\"total\"} %ld\n"
        /* what inference gateways route on (the Gateway API Inference Extension), also under vLLM's names */
        "# HELP rsr_num_requests_running Requests in a slot.\n# TYPE rsr_num_requests_running gauge\n"
        "rsr_num_requests_running %d\n"
        "# HELP rsr_num_requests_waiting Requests waiting for a slot.\n# TYPE rsr_num_requests_waiting gauge\n"
        "rsr_num_requests_waiting %d\n"
        "# HELP rsr_kv_cache_usage_perc The KV cache the running requests hold, 0 to 1.\n"
        "# TYPE rsr_kv_cache_usage_perc gauge\nrsr_kv_cache_usage_perc %.6g\n"
        "# HELP vllm:num_requests_running rsr_num_requests_running under vLLM's name.\n"
        "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running %d\n"
        "# HELP vllm:num_requests_waiting rsr_num_requests_waiting under vLLM's name.\n"
        "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting %d\n"
        "# HELP vllm:kv_cache_usage_perc rsr_kv_cache_usage_perc under vLLM's name.\n"
        "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc %.6g\n"
        "# HELP vllm:gpu_cache_usage_perc rsr_kv_cache_usage_perc under vLLM's older name.\n"
        "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc %.6g\n",
        mt.requests_ok, mt.requests_cancelled, mt.requests_failed, mt.requests_rejected_full, mt.requests_invalid,
        mt.prompt_tokens, mt.prompt_tokens_cached, mt.completion_tokens, mt.steps, mt.busy_s, mt.mask_s, queued, active,
        mt.recent_tok_s, reaped, refused_client, refused_total, active, queued, mt.kv_usage, active, queued,
        mt.kv_usage, mt.kv_usage);
    long inputs, tokens, scored;
    int32_t waiting;
    embedder_counts(sv->emb, &inputs, &tokens, &scored, &waiting);
    if (n > 0 && (size_t)n < sizeof buf)
        n += snprintf(buf + n, sizeof buf - (size_t)n,
                      "# HELP rsr_embedding_inputs_total Inputs embedded (/v1/embeddings).\n"
                      "# TYPE rsr_embedding_inputs_total counter\nrsr_embedding_inputs_total %ld\n"
                      "# HELP rsr_embedding_tokens_total Tokens of the inputs embedded.\n"
                      "# TYPE rsr_embedding_tokens_total counter\nrsr_embedding_tokens_total %ld\n"
                      "# HELP rsr_embedding_requests_waiting Embedding requests (and prompts to score) waiting "
                      "for the one being computed.\n"
                      "# TYPE rsr_embedding_requests_waiting gauge\nrsr_embedding_requests_waiting %d\n"
                      "# HELP rsr_prompt_tokens_scored_total Prompt tokens given log-probabilities (echo).\n"
                      "# TYPE rsr_prompt_tokens_scored_total counter\nrsr_prompt_tokens_scored_total %ld\n",
                      inputs, tokens, waiting, scored);
    if (n < 0 || (size_t)n >= sizeof buf) n = (int)strlen(buf);
    return send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4", buf, (size_t)n, 0);
}

/* ---- requests ---- */

static serve_conn *conn_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* What a request must pass before anything is done for it: its Host, its Origin, its key and
 * the size it announces. Answers a refusal (or a CORS preflight) and returns true when it is
 * not to go further. */
static bool refuse(server *sv, struct MHD_Connection *c, const char *url, const char *method, enum MHD_Result *ret) {
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    int cors = serve_guard_origin(sv->guard, origin, host);
    if (!serve_guard_host_ok(sv->guard, host)) {
        *ret =
            send_error(c, MHD_HTTP_FORBIDDEN, "invalid_request_error", NULL, "host_not_allowed",
                       "the Host header '%.200s' names no host this server answers to (rsr-serve --allow-host)", host);
    } else if (cors < 0) {
        *ret = send_error(c, MHD_HTTP_FORBIDDEN, "invalid_request_error", NULL, "origin_not_allowed",
                          "requests from the origin '%.200s' are not allowed (rsr-serve --cors-origin)", origin);
    } else if (!strcmp(method, "OPTIONS")) { /* a preflight, or a client asking what is allowed */
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!r) return *ret = MHD_NO, true;
        add_cors(c, r);
        MHD_add_response_header(r, "Allow", "GET, HEAD, POST, OPTIONS");
        if (cors > 0) {
            MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS");
            MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
            MHD_add_response_header(r, "Access-Control-Max-Age", "600");
        }
        *ret = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, r);
        MHD_destroy_response(r);
    } else if (serve_guard_needs_key(sv->guard, url) &&
               !serve_guard_key_ok(sv->guard, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"))) {
        bool given = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization") != NULL;
        *ret = send_error(c, MHD_HTTP_UNAUTHORIZED, "invalid_request_error", NULL, "invalid_api_key",
                          given ? "Incorrect API key provided (Authorization: Bearer KEY, a key rsr-serve was given "
                                  "with --api-key or --api-key-file)"
                                : "You didn't provide an API key: send it as Authorization: Bearer KEY");
    } else {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        char *end;
        unsigned long long announced = cl ? strtoull(cl, &end, 10) : 0;
        if (!cl || announced <= sv->max_body) return false;
        *ret = send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "invalid_request_error", NULL, NULL,
                          "the body is over %zu bytes (rsr-serve --max-body)", sv->max_body);
    }
    return true;
}

static enum MHD_Result route(server *sv, struct MHD_Connection *c, const char *url, const char *method, request *rq) {
    if (!__atomic_load_n(&sv->ready, __ATOMIC_ACQUIRE) && strcmp(url, "/") && strcmp(url, "/index.html")) {
        if (!strcmp(url, "/health")) { /* as llama-server: 503 while the model loads */
            cJSON *root = cJSON_CreateObject();
            cJSON_AddStringToObject(root, "status", "loading");
            return send_json(c, MHD_HTTP_SERVICE_UNAVAILABLE, root, 1);
        }
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable_error", NULL, "model_loading",
                          "the model is loading: try again in a moment (GET /health says when it is ready)");
    }
    bool post = !strcmp(method, "POST");
    bool completions = !strcmp(url, "/v1/completions"), chat = !strcmp(url, "/v1/chat/completions");
    bool tok = !strcmp(url, "/tokenize"), detok = !strcmp(url, "/detokenize"), tmpl = !strcmp(url, "/apply-template");
    bool embed = !strcmp(url, "/v1/embeddings");
    if (completions || chat || tok || detok || tmpl || embed) {
        if (!post)
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error", NULL, NULL,
                              "%s takes POST, not %s", url, method);
        if (rq->too_large)
            return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "invalid_request_error", NULL, NULL,
                              "the body is over %zu bytes (rsr-serve --max-body)", sv->max_body);
        const char *body = rq->body ? rq->body : "";
        return tok     ? tokenize(sv, c, body, rq->len)
               : detok ? detokenize(sv, c, body, rq->len)
               : tmpl  ? apply_template(sv, c, body, rq->len)
               : embed ? embeddings(sv, c, body, rq->len)
                       : complete(sv, c, chat, body, rq->len);
    }
    static const char *const gets[] = {"/", "/index.html", "/health", "/v1/models", "/metrics", "/info"};
    int which = -1;
    for (int i = 0; i < 6; i++)
        if (!strcmp(url, gets[i])) which = i;
    if (which < 0)
        return send_error(c, MHD_HTTP_NOT_FOUND, "invalid_request_error", NULL, "not_found",
                          "no endpoint %.200s (POST /v1/completions, /v1/chat/completions, /v1/embeddings, /tokenize, "
                          "/detokenize, /apply-template; GET "
                          "/v1/models, /health, /metrics, /info, /)",
                          url);
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error", NULL, NULL, "%s takes GET, not %s",
                          url, method);
    switch (which) {
    case 0:
    case 1:
        return send_text(c, MHD_HTTP_OK, "text/html; charset=utf-8", (const char *)serve_page_html, serve_page_html_len,
                         0);
    case 2: {
        bool draining = serve_draining(sv->e);
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "status", draining ? "shutting down" : "ok");
        return send_json(c, draining ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, root, draining);
    }
    case 3: return models(sv, c);
    case 4: return metrics(sv, c);
    default: return info(sv, c);
    }
}

/* A connection's thread reads, renders and encodes its request at a lower priority than the
 * engine's and the embedder's threads (a nice of CONN_NICE): decoding the requests already running
 * comes first, and a client's costly body (a megabyte of JSON, a template's work, half a million
 * tokens to encode) uses the CPU time they leave, instead of halving every running stream's speed
 * on a machine with few cores (the engine's threads wait for each other at every layer). */
#define CONN_NICE 10
static void lower_priority(void) {
    static __thread bool lowered;
    if (!lowered) (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), CONN_NICE), lowered = true;
}

/* libmicrohttpd calls this when a request's headers are in (*con_cls NULL), for every piece of
 * its body, and once more when the body is complete. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *data_size, void **con_cls) {
    server *sv = cls;
    request *rq = *con_cls;
    lower_priority();
    if (!rq) { /* the headers: checked before a byte of the body is read */
        if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
        *con_cls = rq;
        if (serve_guard_conn_refused(conn_of(c))) return MHD_NO; /* told 503 when it opened */
        snprintf(rq->line, sizeof rq->line, "%.7s %.80s", method, url);
        rq->t0 = serve_now();
        const char *conn = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection");
        rq->closing = conn ? strcasestr(conn, "close") != NULL : !strcmp(version, MHD_HTTP_VERSION_1_0);
        __atomic_add_fetch(&sv->in_flight, 1, __ATOMIC_SEQ_CST);
        enum MHD_Result ret;
        current = rq;
        bool refused = refuse(sv, c, url, method, &ret);
        current = NULL;
        if (refused) {
            rq->answered = true;
            return ret;
        }
        bool body = !strcmp(method, "POST");
        serve_guard_conn_wait(sv->guard, conn_of(c), body ? SERVE_WAIT_BODY : SERVE_WAIT_NONE);
        if (body) return MHD_YES;
    } else if (rq->answered) { /* a refusal sent before its body: the body is dropped */
        *data_size = 0;
        return MHD_YES;
    } else if (*data_size) {
        if (!rq->too_large && rq->len + *data_size > sv->max_body) rq->too_large = true;
        if (!rq->too_large) {
            if (rq->len + *data_size + 1 > rq->cap) {
                size_t cap = (rq->len + *data_size + 1) * 2;
                char *grown = realloc(rq->body, cap);
                if (!grown) return MHD_NO;
                rq->body = grown, rq->cap = cap;
            }
            memcpy(rq->body + rq->len, data, *data_size);
            rq->len += *data_size;
        }
        *data_size = 0;
        return MHD_YES;
    } else {
        serve_guard_conn_wait(sv->guard, conn_of(c), SERVE_WAIT_NONE); /* the body is in */
    }
    rq->answered = true;
    current = rq;
    enum MHD_Result ret = route(sv, c, url, method, rq);
    current = NULL;
    return ret;
}

/* The request log: a line per request answered (probes of /health and /metrics and CORS
 * preflights only with -v), with -v the message of a refusal. */
static void log_request(const server *sv, struct MHD_Connection *c, const request *rq) {
    const char *path = strchr(rq->line, ' ');
    bool probe =
        path && (!strcmp(path + 1, "/health") || !strcmp(path + 1, "/metrics") || !strncmp(rq->line, "OPTIONS", 7));
    if (!rq->status || (probe && !sv->verbose)) return;
    char who[64] = "?";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, who, sizeof who);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, who, sizeof who);
    fprintf(stderr, "rsr-serve: %s %s %u %.3f s%s%s\n", who, rq->line, rq->status, serve_now() - rq->t0,
            sv->verbose && *rq->why ? ": " : "", sv->verbose ? rq->why : "");
}

/* A request is over (answered in full, or its connection gone): a kept-alive connection has
 * --header-timeout for its next request; one the client asked to close counts no more against
 * the connection limits (its client may already be opening the next). */
static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    server *sv = cls;
    request *rq = *con_cls;
    if (rq && (rq->closing || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK))
        serve_guard_conn_closing(sv->guard, conn_of(c));
    if (rq) {
        log_request(sv, c, rq);
        free(rq->body), free(rq);
        __atomic_sub_fetch(&sv->in_flight, 1, __ATOMIC_SEQ_CST);
    }
    *con_cls = NULL;
    serve_guard_conn_wait(sv->guard, conn_of(c), SERVE_WAIT_HEADERS);
}

/* Every accepted connection is watched for its deadlines from its first byte to its close. */
static void connection_event(void *cls, struct MHD_Connection *c, void **socket_context,
                             enum MHD_ConnectionNotificationCode what) {
    server *sv = cls;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        *socket_context = serve_guard_conn_open(sv->guard, connection_fd(c), ci ? ci->client_addr : NULL);
    } else if (what == MHD_CONNECTION_NOTIFY_CLOSED)
        serve_guard_conn_close(sv->guard, *socket_context), *socket_context = NULL;
}

/* %XX decoded in place, except %00: a NUL would cut the path short ("/health%00x" is not
 * "/health"), so it stays as it is written. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls, (void)c;
    char *w = s;
    for (const char *r = s; *r; r++) {
        int hi, lo;
        if (r[0] == '%' && (hi = hex_digit(r[1])) >= 0 && (lo = hex_digit(r[2])) >= 0 && (hi | lo)) {
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

/* ---- main ---- */

static void usage(FILE *out) {
    fputs("usage: rsr-serve MODEL.so [options]\n"
          "\n"
          "Serves a model compiled by rsrc over HTTP with OpenAI's API: POST /v1/completions and\n"
          "/v1/chat/completions (\"stream\": true for server-sent events), /v1/embeddings, GET /v1/models,\n"
          "/health, /metrics (Prometheus), /info, and a chat page at /. Requests are stepped together\n"
          "through one batch (continuous batching): each gets the tokens it would get alone.\n"
          "\n"
          "options:\n"
          "  --host ADDR        address to listen on, IPv4 or IPv6 (default 127.0.0.1; 0.0.0.0 or :: for\n"
          "                     every interface)\n"
          "  --port N           TCP port (default 8080; 0: any free port, printed at start)\n"
          "  --parallel N       requests stepped together, 1 to 256 (default 4)\n"
          "  --cache-mem MIB    memory for KV caches beyond one per slot, in MiB (default 0): each keeps\n"
          "                     an ended conversation for prefix reuse, least recently used first out\n"
          "  --queue N          requests waiting for a slot beyond which a request gets 503 (default 64);\n"
          "                     as many embedding requests may wait for the one being computed\n"
          "  -c, --ctx N        positions of each sequence (default: the model's, at most 4096); the\n"
          "                     KV cache of every slot is allocated at start\n"
          "  --chunk N          prompt tokens one sequence gives a step, 1 to 256 (default 32)\n"
          "  --mask-budget S    seconds of work the masks of one request's grammar or JSON schema may take\n"
          "                     in all (default 10; one token's at most 2): past it the request gets 400\n"
          "  --kv T             the KV cache's element type: bf16 (default), f32, f16 or q8 (see rsr-run --help)\n"
          "  -t, --threads N    threads (default: every CPU this process may run on)\n"
          "  --model-id NAME    the model's name in /v1/models and responses (default: the file's name)\n"
          "  -v, --verbose      the request log (a line per request on stderr) also shows probes of /health\n"
          "                     and /metrics and the message of every refusal\n"
          "  --strict-model     refuse a request whose \"model\" names another (default: as llama-server,\n"
          "                     any name gets the one model served)\n"
          "  --chat-template T  model (the checkpoint's own Jinja template), llama3, bitnet or llama2\n"
          "                     (default: the model's own, else the built-in one that fits)\n"
          "  --chat-template-file FILE\n"
          "                     a Jinja chat template to use instead\n"
          "  --reasoning-format F  deepseek (default): a reply's <think>...</think> goes to\n"
          "                     message.reasoning_content (delta.reasoning_content streamed); none: it\n"
          "                     stays in the content. A request's \"reasoning_format\" overrides it\n"
          "  --literal-content  a chat message's text that spells a special token (<|eot_id|> in a tool's\n"
          "                     output) is tokenized as text, not as the control token; the template's\n"
          "                     own markers stay tokens (default: as llama-server and transformers, the\n"
          "                     whole rendering is read with its special tokens)\n"
          "  --max-body SIZE    the largest request body, in bytes (default 1048576)\n"
          "  --drain S          on SIGINT, SIGTERM or SIGHUP, seconds running requests may take to finish\n"
          "                     (default 10)\n"
          "  --digest SHA256    refuse to load MODEL.so unless its SHA-256 is this (rsr-run --digest\n"
          "                     prints it); checked before any of its code runs\n"
          "\n"
          "facing a network (docs/deploy.md):\n"
          "  --api-key KEY      require 'Authorization: Bearer KEY' (401 otherwise); may be repeated\n"
          "  --api-key-file F   the keys, one per line ('#' starts a comment): kept out of `ps`\n"
          "  --auth-probes      /health and /metrics need the key too (default: open, for load balancers\n"
          "                     and Prometheus; the chat page at / is always served and asks for the key)\n"
          "  --allow-host NAME  a name the Host header may carry besides IP addresses and localhost (a\n"
          "                     request naming another host is refused: DNS rebinding); may be repeated;\n"
          "                     '*': any\n"
          "  --cors-origin O    a web origin (https://app.example) whose pages may call the API from a\n"
          "                     browser; may be repeated; '*': any. Other origins are refused (403)\n"
          "  --max-connections N  open connections at most (default 512)\n"
          "  --max-per-client N   open connections from one address at most (default 64; 0: no limit;\n"
          "                     behind a proxy every client has the proxy's address)\n"
          "  --header-timeout S   seconds a connection has to send a request's headers, from connecting\n"
          "                     or from its last reply (default 10)\n"
          "  --body-timeout S     seconds a request has to send its body after its headers (default 30)\n"
          "  -h, --help         this text; --version: the runtime API version this program speaks\n"
          "\n"
          "examples:\n"
          "  rsr-serve model.so --port 8080 --parallel 8\n"
          "  curl -s localhost:8080/v1/chat/completions -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}'\n"
          "  rsr-serve model.so --host 0.0.0.0 --api-key-file keys.txt --allow-host llm.example.org\n"
          "\n"
          "signals: SIGINT, SIGTERM or SIGHUP stop taking requests (503 from then on) and let running\n"
          "ones finish (--drain), their replies sent in full, then exit.\n"
          "exit status: 0 after a clean stop; 1 when the model cannot be served (the reason on stderr).\n"
          "See docs/deploy.md (PREFIX/share/doc/rsrc/docs/deploy.md when installed).\n",
          out);
}

static long number_arg(const char *opt, const char *v, long lo, long hi) {
    long n;
    if (!parse_long_in(v, lo, hi, &n)) die("%s: '%s' is not an integer in [%ld, %ld]", opt, v, lo, hi);
    return n;
}

/* A growing list of option values (keys, hosts, origins). */
typedef struct strlist {
    const char **v;
    int n;
} strlist;

static void strlist_add(strlist *l, const char *s) {
    const char **grown = realloc(l->v, sizeof *l->v * (size_t)(l->n + 1));
    if (!grown) die("out of memory");
    l->v = grown, l->v[l->n++] = s;
}

/* --api-key-file: one key a line; blank lines and '#' comments skipped. */
static void read_keys(const char *path, strlist *keys) {
    FILE *f = fopen(path, "r");
    if (!f) die("--api-key-file %s: %s", path, strerror(errno));
    char line[1024];
    int before = keys->n;
    while (fgets(line, sizeof line, f)) {
        char *k = line, *end;
        while (*k == ' ' || *k == '\t') k++;
        for (end = k + strlen(k); end > k && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '); end--) {}
        *end = 0;
        if (!*k || *k == '#') continue;
        char *copy = strdup(k);
        if (!copy) die("out of memory");
        strlist_add(keys, copy);
    }
    fclose(f);
    if (keys->n == before) die("--api-key-file %s: no key in it (one a line)", path);
}

/* --host: an IPv4 or IPv6 address (or a name that resolves to one) into addr; whether it is a
 * loopback address. */
static socklen_t listen_address(const char *host, long port, struct sockaddr_storage *addr, bool *v6) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    char service[16];
    snprintf(service, sizeof service, "%ld", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) die("--host: '%s' is not an address to listen on: %s", host, gai_strerror(rc));
    socklen_t len = res->ai_addrlen;
    memcpy(addr, res->ai_addr, len);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return len;
}

/* Room for the connections' sockets and the guard's duplicates of them. */
/* The connections the HTTP library takes beyond --max-connections: the guard counts the limits and
 * tells a connection over them 503 (serve_guard.c), which it can only do to one the library took;
 * past this margin too the library closes new connections without a word. */
#define REFUSAL_ROOM 256

static void raise_file_limit(long connections) {
    struct rlimit rl;
    rlim_t need = (rlim_t)(2 * connections + 256);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        die("--max-connections %ld needs %lu open files; this process may have %lu (ulimit -n)", connections,
            (unsigned long)need, (unsigned long)rl.rlim_cur);
}

typedef struct serve_args {
    const char *host, *model_path, *digest, *model_id, *chat_template, *chat_template_file;
    bool strict_model, verbose;
    long port, slots, queue, ctx, chunk, threads, drain, max_conn, per_client, cache_mib, mask_budget;
    int kv, reasoning_format, literal_content;
    size_t max_body;
    strlist keys, hosts, origins;
    serve_guard_params gp;
} serve_args;

static void parse_args(int argc, char **argv, serve_args *a) {
    *a = (serve_args){.host = "127.0.0.1",
                      .port = 8080,
                      .slots = 4,
                      .queue = 64,
                      .chunk = 32,
                      .drain = 10,
                      .mask_budget = 10,
                      .max_conn = 512,
                      .per_client = 64,
                      .kv = RSR_KV_DEFAULT,
                      .reasoning_format = SERVE_REASONING_DEEPSEEK,
                      .max_body = 1 << 20,
                      .gp = {.header_timeout = 10, .body_timeout = 30}};
    enum {
        O_HOST = 256,
        O_PORT,
        O_PARALLEL,
        O_CACHE_MEM,
        O_QUEUE,
        O_CHUNK,
        O_MASK_BUDGET,
        O_MODEL_ID,
        O_STRICT_MODEL,
        O_TEMPLATE,
        O_TEMPLATE_FILE,
        O_REASONING,
        O_LITERAL,
        O_MAX_BODY,
        O_DRAIN,
        O_KV,
        O_KEY,
        O_KEY_FILE,
        O_AUTH_PROBES,
        O_ALLOW_HOST,
        O_CORS,
        O_MAX_CONN,
        O_PER_CLIENT,
        O_HEADER_TO,
        O_BODY_TO,
        O_DIGEST,
        O_VERSION
    };
    static const struct option longs[] = {
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"parallel", required_argument, 0, O_PARALLEL},
        {"cache-mem", required_argument, 0, O_CACHE_MEM},
        {"queue", required_argument, 0, O_QUEUE},
        {"ctx", required_argument, 0, 'c'},
        {"ctx-size", required_argument, 0, 'c'},
        {"chunk", required_argument, 0, O_CHUNK},
        {"mask-budget", required_argument, 0, O_MASK_BUDGET},
        {"kv", required_argument, 0, O_KV},
        {"threads", required_argument, 0, 't'},
        {"model-id", required_argument, 0, O_MODEL_ID},
        {"strict-model", no_argument, 0, O_STRICT_MODEL},
        {"chat-template", required_argument, 0, O_TEMPLATE},
        {"chat-template-file", required_argument, 0, O_TEMPLATE_FILE},
        {"reasoning-format", required_argument, 0, O_REASONING},
        {"literal-content", no_argument, 0, O_LITERAL},
        {"max-body", required_argument, 0, O_MAX_BODY},
        {"drain", required_argument, 0, O_DRAIN},
        {"api-key", required_argument, 0, O_KEY},
        {"api-key-file", required_argument, 0, O_KEY_FILE},
        {"auth-probes", no_argument, 0, O_AUTH_PROBES},
        {"allow-host", required_argument, 0, O_ALLOW_HOST},
        {"cors-origin", required_argument, 0, O_CORS},
        {"max-connections", required_argument, 0, O_MAX_CONN},
        {"max-per-client", required_argument, 0, O_PER_CLIENT},
        {"header-timeout", required_argument, 0, O_HEADER_TO},
        {"body-timeout", required_argument, 0, O_BODY_TO},
        {"digest", required_argument, 0, O_DIGEST},
        {"version", no_argument, 0, O_VERSION},
        {"help", no_argument, 0, 'h'},
        {"verbose", no_argument, 0, 'v'},
        {"model", required_argument, 0, 'm'},
        {0, 0, 0, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:t:m:hv", longs, NULL)) != -1) {
        switch (c) {
        case O_HOST: a->host = optarg; break;
        case O_PORT: a->port = number_arg("--port", optarg, 0, 65535); break;
        case O_PARALLEL: a->slots = number_arg("--parallel", optarg, 1, RSR_BATCH_MAX); break;
        case O_CACHE_MEM: a->cache_mib = number_arg("--cache-mem", optarg, 0, 1L << 24); break;
        case O_QUEUE: a->queue = number_arg("--queue", optarg, 0, 1 << 20); break;
        case 'c': a->ctx = number_arg("--ctx", optarg, 2, INT32_MAX); break;
        case O_CHUNK: a->chunk = number_arg("--chunk", optarg, 1, RSR_BATCH_MAX); break;
        case O_MASK_BUDGET: a->mask_budget = number_arg("--mask-budget", optarg, 1, 3600); break;
        case O_KV:
            if ((a->kv = kv_type_parse(optarg)) < 0) die("--kv: '%s' is not one of f32, bf16, f16, q8", optarg);
            break;
        case 't': a->threads = number_arg("--threads", optarg, 0, 1024); break;
        case 'm': a->model_path = optarg; break;
        case O_MODEL_ID: a->model_id = optarg; break;
        case O_STRICT_MODEL: a->strict_model = true; break;
        case O_TEMPLATE: a->chat_template = optarg; break;
        case O_TEMPLATE_FILE: a->chat_template_file = optarg; break;
        case O_LITERAL: a->literal_content = 1; break;
        case O_REASONING:
            if (!strcmp(optarg, "none"))
                a->reasoning_format = SERVE_REASONING_NONE;
            else if (!strcmp(optarg, "deepseek") || !strcmp(optarg, "auto"))
                a->reasoning_format = SERVE_REASONING_DEEPSEEK;
            else
                die("--reasoning-format: '%s' is not one of deepseek, none", optarg);
            break;
        case O_MAX_BODY: a->max_body = (size_t)number_arg("--max-body", optarg, 16, 1L << 30); break;
        case O_DRAIN: a->drain = number_arg("--drain", optarg, 0, 3600); break;
        case O_KEY:
            if (!*optarg) die("--api-key: an empty key");
            strlist_add(&a->keys, optarg);
            break;
        case O_KEY_FILE: read_keys(optarg, &a->keys); break;
        case O_AUTH_PROBES: a->gp.auth_probes = true; break;
        case O_ALLOW_HOST: strlist_add(&a->hosts, optarg); break;
        case O_CORS: strlist_add(&a->origins, optarg); break;
        case O_MAX_CONN: a->max_conn = number_arg("--max-connections", optarg, 1, 1 << 16); break;
        case O_PER_CLIENT: a->per_client = number_arg("--max-per-client", optarg, 0, 1 << 16); break;
        case O_HEADER_TO: a->gp.header_timeout = (double)number_arg("--header-timeout", optarg, 1, 3600); break;
        case O_BODY_TO: a->gp.body_timeout = (double)number_arg("--body-timeout", optarg, 1, 3600); break;
        case O_DIGEST:
            if (!artifact_digest_valid(optarg)) die("--digest: '%s' is not a SHA-256 (64 hexadecimal digits)", optarg);
            a->digest = optarg;
            break;
        case O_VERSION: printf("rsr-serve %s, rsr API version %d\n", RSR_PROJECT_VERSION, RSR_API_VERSION); exit(0);
        case 'h': usage(stdout); exit(0);
        case 'v': a->verbose = true; break;
        case ':': die("option '%s' needs a value (see --help)", argv[optind - 1]);
        default: die("unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (!a->model_path && optind == argc - 1)
        a->model_path = argv[optind];
    else if (optind != argc)
        die("exactly one MODEL.so expected (see --help)");
    if (!a->model_path) die("no MODEL.so given (rsr-serve MODEL.so [options]; --help for the options)");
    if (a->max_conn < a->slots + 8)
        die("--max-connections %ld leaves no room beside --parallel %ld (at least %ld)", a->max_conn, a->slots,
            a->slots + 8);
    a->gp.keys = a->keys.v, a->gp.n_keys = a->keys.n;
    a->gp.hosts = a->hosts.v, a->gp.n_hosts = a->hosts.n;
    a->gp.origins = a->origins.v, a->gp.n_origins = a->origins.n;
    a->gp.max_connections = a->max_conn, a->gp.per_client = a->per_client;
}

/* Opens the model (its digest checked first when one is given) into sv; dies with the reason. */
static void open_model(server *sv, const serve_args *a) {
    char err[1024], path[64];
    const char *load = a->model_path;
    if (a->digest) {
        if (artifact_pin(a->model_path, a->digest, path, sizeof path, err, sizeof err) != 0) die("%s", err);
        load = path; /* the descriptor whose bytes were hashed */
    }
    struct stat st;
    double t0 = serve_now();
    if (stat(a->model_path, &st) == 0 && S_ISREG(st.st_mode)) /* else loading says what it is */
        fprintf(stderr, "rsr-serve: loading %s (%.0f MiB)\n", a->model_path, (double)st.st_size / (1 << 20));
    if (rsr_api_load(&api, load, err, sizeof err) != 0) die("%s", err);
    rsr_model_params mp = {.num_threads = (int32_t)a->threads, .device = RSR_DEVICE_CPU};
    if (api.model_open(&sv->m, &mp) != RSR_OK) die("%s", api.model_errmsg(sv->m));
    api.model_get_info(sv->m, &sv->info);
    fprintf(stderr, "rsr-serve: loaded in %.1f s\n", serve_now() - t0);
    if (api.model_tokenizer(sv->m, &sv->tok) != RSR_OK) {
        sv->tok = NULL;
        fprintf(stderr,
                "rsr-serve: note: %s has no tokenizer: requests must give token ids (/v1/completions' prompt, "
                "/v1/embeddings' input), and replies give theirs; chat, /tokenize, /detokenize and /apply-template "
                "are refused\n",
                a->model_path);
    }
}

/* SIGINT/SIGTERM/SIGHUP: new requests get 503 while the running ones finish (up to --drain
 * seconds) and their replies go out in full (a few seconds more at most); then the connections
 * close. SIGHUP (a closed terminal, or a supervisor's reload) drains too: there is nothing to
 * reload in place, and its default action would cut every stream without an end. */
static void drain_and_stop(server *sv, struct MHD_Daemon *d, int sig, long drain) {
    fprintf(stderr, "rsr-serve: %s: finishing running requests (up to %ld s), taking no new ones\n",
            sig == SIGINT   ? "SIGINT"
            : sig == SIGHUP ? "SIGHUP"
                            : "SIGTERM",
            drain);
    double until = serve_now() + (double)drain;
    serve_engine_drain(sv->e, (double)drain);
    embedder_drain(sv->emb, until); /* the embeddings' the same deadline */
    for (int i = 0; i < 50 && __atomic_load_n(&sv->in_flight, __ATOMIC_SEQ_CST) > 0; i++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(d);
    serve_guard_stop(sv->guard);
    guard = NULL;
    embedder_free(sv->emb);
    serve_engine_free(sv->e);
    api.model_close(sv->m);
    fprintf(stderr, "rsr-serve: stopped\n");
}

/* How the template shows tools, from its rendering of a conversation offered one probe tool (a
 * template that refuses it, or a built-in one, shows none: the generic format). */
static void detect_tool_format(server *sv) {
    static const char probe[] =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"rsr_probe_tool\",\"description\":\"a probe\",\"parameters\":{\"type\":"
        "\"object\",\"properties\":{}}}}],\"add_generation_prompt\":true}";
    static const char plain[] =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"add_generation_prompt\":true}";
    char text[16384];
    size_t len = 0;
    sv->tool_format = SERVE_TOOL_GENERIC;
    int32_t marker = api.tokenizer_token_id(sv->tok, "<tool_call>");
    sv->tool_marker_text = marker < 0 || !api.tokenizer_is_special(sv->tok, marker);
    rsr_status st = api.tokenizer_apply_chat_template_json(sv->tok, sv->chat_template, plain, strlen(plain), text,
                                                           sizeof text, &len);
    if (st != RSR_OK && st != RSR_ERR_BUFFER_TOO_SMALL) {
        /* said at start, not first on a client's screen: chat requests will get this 400 */
        fprintf(stderr,
                "rsr-serve: warning: chat is off (/v1/chat/completions and the chat page answer 400): %s; "
                "give one with --chat-template-file FILE (completions, embeddings and the rest work)\n",
                api.tokenizer_errmsg(sv->tok));
        return;
    }
    if (api.tokenizer_apply_chat_template_json(sv->tok, sv->chat_template, probe, strlen(probe), text, sizeof text,
                                               &len) == RSR_OK)
        sv->tool_format = serve_tool_format_of(text, "rsr_probe_tool");
    if (sv->tool_format == SERVE_TOOL_GENERIC)
        fprintf(stderr, "rsr-serve: tool calls in the generic format: the chat template shows no tools, so a "
                        "request's tools are described in a system message and a call is read as JSON\n");
    else
        fprintf(stderr, "rsr-serve: tool calls in the %s format (the chat template's)\n",
                serve_tool_format_name(sv->tool_format));
}

/* What the loading thread needs, and what main needs back from it. */
typedef struct loader {
    server *sv;
    serve_args *a;
    pthread_t main;
    long ctx, spare;
} loader;

/* The model, its engine and the embeddings' thread, made while the port already answers (503,
 * /health "loading"); main is told by SIGUSR1. A failure ends the process with its message. */
static void *load(void *arg) {
    loader *L = arg;
    server *sv = L->sv;
    serve_args *a = L->a;
    open_model(sv, a);
    if (a->ctx > sv->info.max_positions)
        die("--ctx %ld: the model holds at most %d positions", a->ctx, sv->info.max_positions);
    long ctx = L->ctx = a->ctx ? a->ctx : sv->info.max_positions < 4096 ? sv->info.max_positions : 4096;
    char why[512];
    if (!sv->tok && (a->chat_template || a->chat_template_file))
        die("%s: the model has no tokenizer to chat with",
            a->chat_template ? "--chat-template" : "--chat-template-file");
    if (a->chat_template_file && !chat_template_file(&api, sv->tok, a->chat_template_file, why, sizeof why))
        die("%s", why);
    if (a->chat_template_file) sv->chat_template = "model";
    if (!sv->chat_template && sv->tok)
        sv->chat_template = chat_template_for(&api, sv->tok, &sv->info); /* as rsr-run --chat */
    sv->reasoning_format = a->reasoning_format;
    sv->literal_content = a->literal_content;
    if (sv->tok) detect_tool_format(sv);
    /* --cache-mem: whole sessions' KV caches (K and V of every layer that has them, KV head and
     * position) and recurrent states */
    double per_cache = 2.0 * sv->info.num_kv_layers * sv->info.num_kv_heads * (double)ctx *
                           (double)rsr_kv_row_bytes(a->kv, sv->info.head_dim) +
                       (double)sv->info.state_bytes;
    long spare = (long)((double)a->cache_mib * 1048576.0 / per_cache);
    if (spare > 4096) spare = 4096;
    if (a->cache_mib && !spare)
        fprintf(stderr, "rsr-serve: warning: --cache-mem %ld MiB holds no KV cache of %.0f MiB (%ld positions)\n",
                a->cache_mib, per_cache / 1048576.0, ctx);
    L->spare = spare;
    serve_engine_params ep = {
        .slots = (int32_t)a->slots,
        .spare = (int32_t)spare,
        .queue = (int32_t)a->queue,
        .ctx = (int32_t)ctx,
        .chunk = (int32_t)a->chunk,
        .session = {.kv_type = a->kv, .attention = RSR_ATTENTION_AUTO},
        .mask_budget = (double)a->mask_budget,
    };
    char err[1024];
    if (!(sv->e = serve_engine_start(sv->m, sv->tok, &ep, err, sizeof err))) die("%s", err);
    rsr_session_params esp = ep.session; /* the slots' cache type: the vectors rsr-run --embed gives */
    esp.max_positions = (int32_t)ctx;
    if (!(sv->emb = embedder_start(sv->m, &esp, sv->info.hidden_size, sv->info.vocab_size, (int32_t)a->queue)))
        die("cannot start the embeddings' thread");
    sv->started = (long)time(NULL);
    __atomic_store_n(&sv->ready, true, __ATOMIC_RELEASE);
    pthread_kill(L->main, SIGUSR1);
    return NULL;
}

/* The listening socket, bound before the model loads: a port in use fails at once, with one message. */
static int bind_listener(const serve_args *a, const struct sockaddr_storage *addr, socklen_t len, bool v6) {
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) die("cannot open a socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (v6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)addr, len) != 0)
        die("cannot listen on %s port %ld: %s%s", a->host, a->port, strerror(errno),
            errno == EADDRINUSE ? " (another server holds it: stop it, or give --port)" : "");
    if (listen(fd, 128) != 0) die("cannot listen on %s port %ld: %s", a->host, a->port, strerror(errno));
    return fd;
}

int main(int argc, char **argv) {
    serve_args a;
    parse_args(argc, argv, &a);
    struct sockaddr_storage addr;
    bool v6;
    socklen_t addr_len = listen_address(a.host, a.port, &addr, &v6);
    raise_file_limit(a.max_conn + REFUSAL_ROOM);
    server sv = {.max_body = a.max_body,
                 .model_id = a.model_id,
                 .strict_model = a.strict_model,
                 .verbose = a.verbose,
                 .chat_template = a.chat_template};
    if (!sv.model_id) {
        const char *slash = strrchr(a.model_path, '/');
        sv.model_id = slash ? slash + 1 : a.model_path;
    }
    strlist_add(&a.hosts, a.host); /* --host may be a name */
    a.gp.hosts = a.hosts.v, a.gp.n_hosts = a.hosts.n;

    /* the signals go to sigwait below, not to a thread of the server's (they inherit the mask);
     * SIGUSR1: the model is loaded */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT), sigaddset(&stop, SIGTERM), sigaddset(&stop, SIGHUP), sigaddset(&stop, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = bind_listener(&a, &addr, addr_len, v6);
    if (!(guard = sv.guard = serve_guard_start(&a.gp))) die("cannot start the connections' guard");
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     (v6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, &sv, MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_NOTIFY_COMPLETED, completed, &sv,
        MHD_OPTION_NOTIFY_CONNECTION, connection_event, &sv, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(a.max_conn + REFUSAL_ROOM), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)a.gp.body_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_STRICT_FOR_CLIENT, 1,
        MHD_OPTION_END);
    if (!d) die("cannot serve on %s port %ld: %s", a.host, a.port, strerror(errno));
    const union MHD_DaemonInfo *bound = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = bound ? bound->port : (unsigned)a.port;

    fprintf(stderr, "rsr-serve: http://%s%s%s:%u/ answers 503 until the model is loaded (GET /health)\n", v6 ? "[" : "",
            a.host, v6 ? "]" : "", port);
    fflush(stderr);
    loader L = {.sv = &sv, .a = &a, .main = pthread_self()};
    pthread_t loading;
    if (pthread_create(&loading, NULL, load, &L) != 0) die("cannot start loading the model");
    int sig = 0;
    while (sigwait(&stop, &sig) == 0 && sig == SIGUSR1 && !__atomic_load_n(&sv.ready, __ATOMIC_ACQUIRE)) {}
    if (sig != SIGUSR1) { /* stopped while the model loads: nothing runs yet to finish */
        fprintf(stderr, "rsr-serve: %s while loading the model: stopped\n", strsignal(sig));
        _exit(0);
    }
    pthread_join(loading, NULL);
    fprintf(stderr,
            "rsr-serve: listening on http://%s%s%s:%u/ (model %s, %ld slot%s of %ld positions, %ld spare KV cache%s, "
            "queue %ld, %d thread%s, %s, pid %ld)\n",
            v6 ? "[" : "", a.host, v6 ? "]" : "", port, sv.model_id, a.slots, a.slots == 1 ? "" : "s", L.ctx, L.spare,
            L.spare == 1 ? "" : "s", a.queue, sv.info.num_threads, sv.info.num_threads == 1 ? "" : "s",
            a.keys.n ? "API key required" : "no API key", (long)getpid());
    fflush(stderr);
    do sigwait(&stop, &sig);
    while (sig == SIGUSR1);
    drain_and_stop(&sv, d, sig, a.drain);
    return 0;
}
