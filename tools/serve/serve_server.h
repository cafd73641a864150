/*
 * serve_server.h — what rsr-serve's own files share (an internal header: nothing outside
 * rsr-serve includes it): the server (its model, tokenizer, engine, embedder and options), one
 * HTTP request as it arrives, a job of the embedder's, and what each file gives the others.
 * Uses serve.h (requests, the engine, the guard), serve_admit.h (refusals), libmicrohttpd's
 * types and cJSON's.
 *
 *   rsr-serve.c        main: the options, the model loaded, the server started and stopped
 *   serve_http.c       replies (JSON, errors, refusals, CORS), the checks made before a body is
 *                      read, routing, libmicrohttpd's callbacks, the request log
 *   serve_complete.c   POST /v1/completions and /v1/chat/completions: admission, the engine, the wait
 *   serve_admit.c      the admission rules, on plain values (in rsr_serve_core, for its unit test)
 *   serve_prompt.c     a request's prompt: its conversation through the chat template, its tokens,
 *                      the tenant whose cached prefixes it may reuse
 *   serve_reply.c      OpenAI's JSON of a completion (choices, logprobs, usage) and its stream (SSE)
 *   serve_embed.c      the embedder's thread: POST /v1/embeddings, and the prompts scored for echo
 *   serve_endpoints.c  /tokenize, /detokenize, /apply-template, /v1/models, /info, /metrics
 *   serve_slots.c      GET /slots, POST /slots/{id}?action=save|restore|erase, --cache-dir
 */
#ifndef RSR_SERVE_SERVER_H
#define RSR_SERVE_SERVER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "serve.h"
#include "serve_admit.h"

typedef struct embedder embedder;   /* /v1/embeddings' thread, which scores prompts too (serve_embed.c) */
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
    int in_flight;            /* requests read and not yet answered in full (atomic) */
    int save_dir;             /* --slot-save-path, open (-1: the slot API's actions are off) */
    int kv_block;             /* --kv-block-size: prompt tokens a block of the KV events and vllm:cache_config_info */
    struct kv_events *events; /* --kv-events (serve_kv_events.c), or NULL */
    int cache_dir;            /* --cache-dir, open (-1: none) */
    pthread_t writer;
    bool writer_stop; /* atomic */
    bool ready;       /* the model is loaded, its engine started (atomic): until then, 503 */
} server;

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

/* A job of the embedder's (serve_embed.c), which completions wait on for their prompts' scores. */
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

extern serve_guard *http_guard; /* the server's, for the CORS headers of every reply */
/* The request this thread is answering, while route() runs: send_text and send_error note their
 * status and message in it. */
extern __thread request *http_current;

/* ---- serve_http.c: replies, and libmicrohttpd's callbacks ---- */

enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, const char *body, size_t len,
                          int retry_after);
enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *body, int retry_after);
/* {"error": {"message", "type", "param", "code"}}, as OpenAI's clients read it. */
enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *type, const char *param,
                           const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* A refusal of the admission rules (serve_admit.h), sent as send_error sends it. */
enum MHD_Result send_refusal(struct MHD_Connection *c, const serve_refusal *r);
/* A request's failure as said in err: out of memory is the server's (503: try again later), the
 * rest the request's (400). */
enum MHD_Result refuse_request(struct MHD_Connection *c, const char *param, const char *err);
/* 400: what the request asks for needs the tokenizer the model lacks. */
enum MHD_Result no_tokenizer(struct MHD_Connection *c, const char *param, const char *what);
int connection_fd(struct MHD_Connection *c);
/* libmicrohttpd's callbacks (MHD_start_daemon in rsr-serve.c): a request, its end, a connection
 * opened or closed, a URL's %XX decoded. */
enum MHD_Result http_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                            const char *version, const char *data, size_t *data_size, void **con_cls);
void http_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe);
void http_connection_event(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode what);
size_t http_unescape(void *cls, struct MHD_Connection *c, char *s);

/* ---- serve_complete.c ---- */

enum MHD_Result endpoint_complete(server *sv, struct MHD_Connection *c, bool chat, const char *body, size_t len);

/* ---- serve_prompt.c: a request's prompt ---- */

typedef struct literal_set literal_set; /* --literal-content's contents, kept out of the tokens' special ones */
char *chat_text(server *sv, serve_params *p, char *err, size_t errlen, literal_set *lit);
int32_t *prompt_ids(server *sv, serve_params *p, int32_t *n, char *err, size_t errlen);
bool tools_over(server *sv, serve_params *p, int32_t n, int32_t ctx, char *note, size_t cap);
void tenant_of(const server *sv, struct MHD_Connection *c, serve_params *p, unsigned char out[32]);

/* ---- serve_reply.c: a completion's reply, whole or streamed ---- */

enum MHD_Result complete_reply(server *sv, struct MHD_Connection *c, serve_job *const *js, int32_t n,
                               const serve_logprob *plp);
enum MHD_Result complete_stream(server *sv, struct MHD_Connection *c, serve_job *j, embed_job *score);

/* ---- serve_embed.c: the embedder ---- */

embedder *embedder_start(rsr_model *m, const rsr_session_params *sp, int32_t hidden, int32_t vocab, int32_t max_queue);
int embedder_submit(embedder *em, embed_job *j);
bool embedder_wait(embedder *em, embed_job *j, int fd);
void embedder_release(embedder *em, embed_job *j);
void embedder_drain(embedder *em, double until);
void embedder_free(embedder *em);
void embedder_counts(embedder *em, long *inputs, long *tokens, long *scored, int32_t *waiting);
embed_job *score_job(serve_job *const *js, int32_t n);
enum MHD_Result endpoint_embeddings(server *sv, struct MHD_Connection *c, const char *body, size_t len);

/* ---- serve_slots.c: slots saved and restored, KV caches kept on disk ---- */

enum MHD_Result endpoint_slots(server *sv, struct MHD_Connection *c, const char *url, const char *method,
                               const char *body, size_t len);
int slots_dir_open(const char *path, const char *option, char *err, size_t errlen);
void slots_restore_caches(server *sv);
bool slots_writer_start(server *sv);
void slots_writer_stop(server *sv); /* after the engine drained: the caches its last requests left written too */

/* ---- serve_endpoints.c: the other endpoints ---- */

enum MHD_Result endpoint_tokenize(server *sv, struct MHD_Connection *c, const char *body, size_t len);
enum MHD_Result endpoint_detokenize(server *sv, struct MHD_Connection *c, const char *body, size_t len);
enum MHD_Result endpoint_apply_template(server *sv, struct MHD_Connection *c, const char *body, size_t len);
enum MHD_Result endpoint_models(server *sv, struct MHD_Connection *c);
enum MHD_Result endpoint_info(server *sv, struct MHD_Connection *c);
enum MHD_Result endpoint_metrics(server *sv, struct MHD_Connection *c);

#endif
