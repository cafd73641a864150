/*
 * serve.h — rsr-serve's parts: an OpenAI request read and checked (serve_request.c, no model and
 * no network: what the fuzzer drives), generated text made safe to send (serve_text.c), and the
 * engine that advances every admitted request through one batch per step (serve_engine.c). The
 * HTTP side (serve_http.c and the files beside it, libmicrohttpd) owns neither.
 */
#ifndef RSR_SERVE_H
#define RSR_SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "recent_tokens.h"
#include "rsr_dl.h"
#include "serve_json.h"

/* Seconds on the monotonic clock: the engine's step times, the guard's deadlines, the request log. */
static inline double serve_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

extern rsr_api api; /* the model's API, loaded by rsr-serve.c */

/* ---- serve_request.c: a request body, read and checked ---- */

#define SERVE_MAX_STOP 4                  /* OpenAI's limit on stop strings */
#define SERVE_MAX_PROMPTS 256             /* completions: prompts of one request */
#define SERVE_MAX_TOOLS 1024              /* chat: functions one request offers (OpenAI's limit is 128) */
typedef struct gbnf_grammar gbnf_grammar; /* a compiled GBNF grammar (serve_gbnf.c) */
typedef struct serve_params {
    bool chat;    /* /v1/chat/completions: messages; else /v1/completions: prompt */
    bool stream;  /* server-sent events */
    char *prompt; /* completions: the prompt's text, or NULL where token ids were given */
    /* completions: the prompt's token ids as given (each >= 0: the vocabulary is the caller's to
     * check) or NULL, the request's prompts and which this is (the choice's index), and whether
     * prompt was a list of prompts (named prompt[i]) */
    int32_t *prompt_ids, n_prompt_ids;
    int32_t n_prompts, index;
    bool prompt_list;
    bool echo;             /* completions: the reply's text (and logprobs) begin with the prompt's */
    bool return_token_ids; /* vLLM's: the prompt's and the reply's token ids beside the text */
    rsr_chat_message *messages;
    int32_t n_messages;
    int32_t max_tokens;         /* -1: not given */
    rsr_sampler_params sampler; /* min_p and repeat_penalty too (llama.cpp's server's fields) */
    int32_t repeat_last_n;      /* the tokens the penalty looks at (default 64) */
    bool has_seed;
    uint64_t seed;
    char *stop[SERVE_MAX_STOP];
    int32_t n_stop;
    char *model;       /* as given, or NULL */
    bool cache_prompt; /* reuse a slot's cache of an earlier request (llama-server's field; default true) */
    int32_t pin_slot;  /* llama-server's id_slot plus one: the slot the request runs in (0: any) */
    char *cache_salt;  /* vLLM's field: only requests of the same salt (and API key) share cached prefixes */
    float presence_penalty, frequency_penalty; /* OpenAI's, over the penalty's recent tokens */
    /* llama-server's speculative.n_max, speculative.n_min, speculative.p_min (-1, -1, NaN: the
     * server's --draft-max, --draft-min, --draft-p-min); n_max is capped at --draft-max, 0: none */
    int32_t spec_n_max, spec_n_min;
    float spec_p_min;      /* a draft model's (--draft-p-min), NaN: the server's */
    bool logprobs;         /* the generated tokens' log-probabilities */
    json_shape *shape;     /* response_format's JSON: the reply's grammar, or NULL */
    gbnf_grammar *grammar; /* the grammar field's GBNF, or NULL (never with shape) */
    int32_t top_logprobs;  /* and this many alternatives per token (0..20) */
    /* chat: the template's variables as JSON text (the messages as given, tool calls and thoughts
     * included; the tools; chat_template_kwargs; add_generation_prompt), rendered by the model's
     * template (rsr_tokenizer_apply_chat_template_json) */
    char *context;
    struct cJSON *tools;      /* the functions offered (a JSON array), or NULL: none, or tool_choice none */
    int tool_choice;          /* SERVE_TOOLS_* */
    char *tool_name;          /* SERVE_TOOLS_NAMED: the function */
    bool parallel_tool_calls; /* more than one call in a reply (default true) */
    int reasoning_format;     /* SERVE_REASONING_*, or -1: the server's (--reasoning-format) */
    /* tool_choice auto: the calls' grammar, which becomes `grammar` once the reply shows trigger
     * (anywhere; with trigger_at_start, as the reply's first byte past white space: else never) */
    gbnf_grammar *lazy;
    char trigger[16];
    bool trigger_at_start;
    struct serve_reply_shape {
        bool reasoning;  /* split <think>...</think> off as reasoning_content */
        bool think_open; /* the prompt ends inside <think>: the reply begins with thoughts */
        bool tools;      /* tools were offered: parse calls in format */
        int format;      /* serve_tool_format */
        /* the tools offered (serve_params.tools), or NULL: calls are checked against them, and
         * qwen3_coder's values are raw text, read as a string or as JSON by the type their
         * parameter's schema gives */
        const struct cJSON *offered;
    } reply; /* chat: how the reply is split (set where the template renders it) */
} serve_params;
enum { SERVE_TOOLS_AUTO, SERVE_TOOLS_NONE, SERVE_TOOLS_REQUIRED, SERVE_TOOLS_NAMED };
enum { SERVE_REASONING_NONE, SERVE_REASONING_DEEPSEEK };

/* The log-probability of a generated token and of the most likely alternatives (the exact
 * distribution after the penalties, before the temperature and the filters). */
#define SERVE_MAX_TOP_LOGPROBS 20
typedef struct serve_logprob {
    int32_t token, n_top;
    float logprob;
    int32_t top[SERVE_MAX_TOP_LOGPROBS];
    float top_logprob[SERVE_MAX_TOP_LOGPROBS];
} serve_logprob;
/* The log-probabilities of the n_top most likely tokens into lp->top (most likely first; ties:
 * the lower id; masked tokens, -inf, are none): the log-softmax of the logits at temperature 1.
 * Returns the log of the softmax's sum, the logit less which is a token's log-probability. */
double serve_log_softmax(const float *lg, int32_t vocab, int32_t n_top, serve_logprob *lp);
/* The job needs the exact logits of every step (the penalties or logprobs), not the runtime's draw. */
static inline bool serve_needs_logits(const serve_params *p) {
    return p->logprobs || p->shape || p->grammar || p->lazy || p->presence_penalty != 0 || p->frequency_penalty != 0;
}

/* Reads a JSON body into p (completions: its first prompt; p->n_prompts says how many it holds).
 * On failure returns false with the message in err and the offending field's name (or NULL) in
 * *param; p is left empty either way on failure. */
bool serve_parse(const char *body, size_t len, bool chat, serve_params *p, char *err, size_t errlen,
                 const char **param);
/* As serve_parse, one serve_params per prompt (*n of them, in an array to free with each one's
 * serve_params_free), each holding its prompt and its own copy of the other fields. */
bool serve_parse_all(const char *body, size_t len, bool chat, serve_params **ps, int32_t *n, char *err, size_t errlen,
                     const char **param);
void serve_params_free(serve_params *p);
/* Whether JSON text s[0, n) holds a \u0000 escape (a C string of it would end there). */
bool serve_json_has_nul(const char *s, size_t n);

/* /v1/embeddings: "input" is a text, texts, token ids or lists of them (OpenAI's four shapes). */
#define SERVE_MAX_EMBED_INPUTS 256 /* inputs of one request */
typedef struct serve_embed_input {
    char *text;          /* a text, or NULL where ids were given */
    int32_t *ids, n_ids; /* the ids given (each in [0, vocab)), or the text's once it is tokenized */
} serve_embed_input;
typedef struct serve_embed_params {
    serve_embed_input *in;
    int32_t n_in;       /* 1 to SERVE_MAX_EMBED_INPUTS */
    bool list;          /* input was a list of inputs (texts or lists of ids), not a single one */
    char *model;        /* as given, or NULL */
    bool base64;        /* encoding_format "base64": little-endian f32 bytes; else floats */
    int32_t dimensions; /* -1: not given */
} serve_embed_params;
/* Reads an embeddings body into p, token ids checked against vocab; as serve_parse on failure. */
bool serve_embed_parse(const char *body, size_t len, int32_t vocab, serve_embed_params *p, char *err, size_t errlen,
                       const char **param);
void serve_embed_params_free(serve_embed_params *p);

/* ---- serve_tools.c: a chat reply's thoughts, text and tool calls ---- */

typedef enum {
    SERVE_TOOL_GENERIC,
    SERVE_TOOL_HERMES,
    SERVE_TOOL_LLAMA3,
    SERVE_TOOL_MISTRAL,
    SERVE_TOOL_QWEN3_CODER
} serve_tool_format;
const char *serve_tool_format_name(serve_tool_format f);
/* The format a model's template asks for, from its rendering of a conversation offered one tool
 * named probe_name. */
serve_tool_format serve_tool_format_of(const char *rendered, const char *probe_name);
/* GBNF of a reply that is only tool calls in format f: one of the tools (or the function only
 * names), its arguments under the function's schema; one call or, with parallel, several.
 * marker_text: the format's opening marker is text (not a special token) and begins the reply.
 * NULL with a message in err. */
char *serve_tool_gbnf(serve_tool_format f, const struct cJSON *tools, const char *only, bool parallel, bool marker_text,
                      char *err, size_t errlen);
/* serve_tool_gbnf's text compiled (gbnf_compile); NULL with a message in err. */
gbnf_grammar *serve_tool_grammar(serve_tool_format f, const struct cJSON *tools, const char *only, bool parallel,
                                 bool marker_text, char *err, size_t errlen);
/* Where tool_choice auto's grammar starts: the text that opens a call in format f (anywhere; with
 * *at_start, as the reply's first bytes past white space), or NULL where the opening is a special
 * token, not text. Other JSON ({"answer": ...}, {"response": ...}) opens no call. */
const char *serve_tool_trigger(serve_tool_format f, bool marker_text, bool *at_start);
/* What the system message asks of a model whose template shows no tools (malloc'd). */
char *serve_generic_tools_prompt(const struct cJSON *tools);

typedef struct serve_reply_shape serve_reply_shape; /* serve_params.reply */
typedef struct serve_reply_parts {
    const char *reasoning, *content; /* into the text split (or owned) */
    size_t n_reasoning, n_content;
    struct cJSON *tool_calls; /* OpenAI's tool_calls array, or NULL (final only) */
    char *owned;
    char *call_error; /* calls the reply made that the request's tools refuse (the reply is then
                       * text): why, or NULL */
} serve_reply_parts;
/* Splits the reply's text s[0, n). Before the end (final false) the parts are what is certain so
 * far: a tail that may still become a marker is held back, and calls are parsed only at the end
 * (content then stops where they begin). Call ids are call_<id_base>_<k>. */
void serve_split_reply(const serve_reply_shape *sh, const char *s, size_t n, bool final, const char *id_base,
                       serve_reply_parts *out);
void serve_reply_parts_free(serve_reply_parts *p);

/* ---- serve_text.c: UTF-8 for JSON ---- */

/* The length of s[0, n) without a trailing sequence that is a valid UTF-8 prefix but incomplete. */
size_t serve_utf8_complete(const char *s, size_t n);
/* s[0, n) with every invalid sequence (and every NUL byte) replaced by U+FFFD, as a WHATWG
 * decoder reads it, into a new NUL-terminated string. */
char *serve_utf8_clean(const char *s, size_t n);
/* The length of the longest tail of s[0, n) that begins tag without being all of it: text to
 * hold back while a stop string or a marker may still be arriving. */
size_t serve_partial_tail(const char *s, size_t n, const char *tag);

/* ---- serve_engine.c: requests, slots, one batch per step ---- */

typedef enum serve_finish {
    SERVE_RUNNING = 0,
    SERVE_STOP,      /* an end token or a stop string */
    SERVE_LENGTH,    /* max_tokens or the context */
    SERVE_CANCELLED, /* the client went away, or the server is shutting down */
    SERVE_FAILED,    /* the runtime failed (the message in err) */
} serve_finish;

typedef struct serve_job {
    /* set before submit, read-only after */
    serve_params p;
    int32_t *ids, n_ids; /* the prompt's tokens */
    char id[40];         /* "cmpl-..." / "chatcmpl-..." */
    long created;
    unsigned char tenant[32]; /* whose prompts it may reuse the cached prefixes of: a digest of its API
                               * key and cache_salt (all zero: no key, no salt) */
    /* written by the engine under its lock */
    char *text;                        /* the generated bytes as text shows them (special tokens left out) */
    size_t n_text;                     /* bytes generated */
    size_t ready;                      /* bytes safe to send: no stop string can begin in them, whole characters */
    int32_t n_gen;                     /* tokens generated */
    int32_t n_cached;                  /* prompt tokens found in a slot's cache, not evaluated again */
    int32_t draft_n, draft_n_accepted; /* speculative decoding: tokens proposed, and taken */
    double t_start, t_first, t_last;   /* serve_now() at its slot, at its first and at its last token */
    serve_logprob *lp;                 /* p.logprobs: one per token of the text */
    int32_t n_lp;
    int32_t *out_ids; /* the n_gen tokens generated (the end token left out) */
    int32_t out_cap;
    serve_finish finish;
    char err[256];
    const char *err_param; /* SERVE_FAILED by the request's own field (a 400 naming it), or NULL: the server's */
    /* written by the connection under the engine's lock */
    bool cancelled;
    size_t sent;      /* bytes of text the connection has sent */
    int refs;         /* the engine and the connection: freed by the last */
    uint64_t request; /* the engine's: jobs submitted together (a list's prompts) share it */
    uint64_t turn;    /* the engine's: when the submission last had a job started (its arrival before) */
    double t_arrive;  /* the engine's: serve_now() at its submission */
    bool waits;       /* the engine's, within one admission: its cache is being saved or restored */
} serve_job;

/* A latency histogram as Prometheus shows one: counts per bucket (not yet cumulative: the last past
 * every bound), their number and sum. Bounds: vLLM's for the same metric (serve_*_bounds). */
#define SERVE_HIST_MAX 24
typedef struct serve_histogram {
    long bucket[SERVE_HIST_MAX], count;
    double sum;
} serve_histogram;
typedef struct serve_bounds {
    const double *le;
    int n;
} serve_bounds;
extern const serve_bounds serve_ttft_bounds, serve_itl_bounds, serve_e2e_bounds;
static inline void serve_observe(serve_histogram *h, const serve_bounds *b, double v) {
    int i = 0;
    while (i < b->n && v > b->le[i]) i++;
    h->bucket[i]++, h->count++, h->sum += v;
}

typedef struct serve_metrics {
    long requests_ok, requests_cancelled, requests_failed, requests_rejected_full, requests_invalid;
    long prompt_tokens, completion_tokens, steps;
    long prompt_tokens_cached;         /* prompt tokens a slot's cache already held (prefix reuse) */
    long draft_tokens, draft_accepted; /* speculative decoding: tokens proposed, and taken */
    double busy_s;                     /* time spent in steps (and masks) */
    double mask_s;                     /* time spent masking structured output's logits */
    double recent_tok_s;               /* generated tokens per second of steps' time, the last 2 s of steps */
    double kv_usage;                   /* the share of the slots' KV cache positions the running requests hold, 0..1 */
    long prefix_queries, prefix_hits;  /* prompt tokens of the requests started, and those a cache held */
    serve_histogram ttft, itl, e2e;    /* seconds from arrival to the first token, between tokens, arrival to the end */
} serve_metrics;

typedef struct serve_engine serve_engine;
/* What the engine tells a KV-aware router of its caches (rsr-serve --kv-events: serve_kv_events.c),
 * under its lock: a cache cut back to keep tokens, a cache whose history (tenant's) is now
 * hist[0, n), the end of a turn's changes (true: something was lost on the way, and the engine
 * tells everything again: clear, then every cache grown from nothing). */
typedef struct serve_cache_events {
    void *ctx;
    void (*keep)(void *ctx, int32_t cache, int32_t keep);
    void (*grow)(void *ctx, int32_t cache, const unsigned char tenant[32], const int32_t *hist, int32_t n);
    bool (*flush)(void *ctx);
    void (*clear)(void *ctx); /* AllBlocksCleared: nothing held */
} serve_cache_events;
typedef struct serve_engine_params {
    int32_t slots; /* sequences stepped together */
    int32_t queue; /* requests waiting for a slot, beyond which submit refuses */
    int32_t ctx;   /* positions of each slot's session */
    int32_t chunk; /* prompt tokens one sequence gives a step */
    int32_t spare; /* KV caches beyond one per slot, kept for prefix reuse (--cache-mem) */
    rsr_session_params session;
    bool manual;                  /* no thread: the caller turns the engine (serve_engine_turn; the fuzzer does) */
    double mask_budget;           /* seconds of mask work (structured output) one request may spend in all (0: 10) */
    bool spec;                    /* --spec-type: a lone decoding slot verifies drafts (n-gram, or draft_path's) */
    int32_t draft_max, draft_min; /* --draft-max (0: 16), --draft-min */
    const char *draft_path;       /* -md: the draft model (--spec-type draft), or NULL: n-gram drafts */
    bool mtp;                     /* --spec-type draft-mtp: the model's MTP layer drafts (session.mtp set) */
    float draft_p_min;            /* --draft-p-min (a request's speculative.p_min overrides it) */
    int32_t draft_threads;        /* the draft model's threads (the model's) */
    const serve_cache_events *events; /* --kv-events, or NULL */
} serve_engine_params;

/* Starts the engine's thread over an opened CPU model (tok NULL: a model without a tokenizer, whose
 * replies have no text, only their token ids); NULL with a message in err on failure. */
serve_engine *serve_engine_start(rsr_model *m, rsr_tokenizer *tok, const serve_engine_params *ep, char *err,
                                 size_t errlen);
/* One turn of an engine started with ep->manual: admission, one step and time for the masks; the
 * slots served, stepped or masking (0: nothing to do, and then no request waits in the queue). */
int32_t serve_engine_turn(serve_engine *e);
/* Stops taking requests, waits up to drain_s for the running and queued ones, and cancels the
 * rest: every job is finished when it returns (the connections can still read theirs). */
void serve_engine_drain(serve_engine *e, double drain_s);
/* After the connections are gone: stops the engine's thread and frees everything. */
void serve_engine_free(serve_engine *e);
bool serve_draining(serve_engine *e);
/* Takes a job (refs 2: the engine's and the caller's); false when the queue is full. */
bool serve_submit(serve_engine *e, serve_job *j);
/* Takes n jobs at once (a request of several prompts), or none when they do not all fit. */
bool serve_submit_all(serve_engine *e, serve_job **js, int32_t n);
/* The most jobs the engine holds at once: one a slot, and the queue's. */
int32_t serve_room(const serve_engine *e);
/* Waits for the engine's next change (a step, a job come or gone) or timeout_s, under the
 * engine's lock, which the caller holds (serve_lock) while it reads its job: callers loop on
 * the condition they wait for. */
void serve_wait(serve_engine *e, double timeout_s);
void serve_lock(serve_engine *e);
void serve_unlock(serve_engine *e);
/* The caller's reference given up (and the job cancelled if it is still running). */
void serve_release(serve_engine *e, serve_job *j);
void serve_get_metrics(serve_engine *e, serve_metrics *out, int32_t *active, int32_t *queued);
void serve_count_invalid(serve_engine *e);
int32_t serve_ctx(const serve_engine *e);
/* The router is told again, whole, what every cache holds (--kv-events: when it may have missed it). */
void serve_events_resync(serve_engine *e);
int32_t serve_slots_count(const serve_engine *e);
int32_t serve_cache_count(const serve_engine *e);

/* The KV caches as the slot API (POST /slots/{id}?action=save|restore|erase) and --cache-dir see
 * them (serve_slots.c). A claimed cache is the caller's until it releases it: no job takes it
 * (a job whose prompt it may hold waits), so its session can be written or read outside the
 * engine's lock while the other slots keep decoding. */
typedef struct kv_cache serve_cache;
typedef enum { SERVE_CACHE_KEPT, SERVE_CACHE_RESTORED, SERVE_CACHE_ERASED, SERVE_CACHE_FAILED } serve_cache_change;
/* Slot id's cache (the one its last job used; its own before any), or with id < 0 cache index,
 * once it is idle (waiting up to wait_s); NULL with the reason in err. */
serve_cache *serve_cache_claim(serve_engine *e, int32_t id, int32_t index, double wait_s, char *err, size_t errlen);
/* An idle cache a job ended in since it was last written (waiting up to wait_s), or NULL. */
serve_cache *serve_cache_claim_dirty(serve_engine *e, double wait_s);
rsr_session *serve_cache_session(serve_cache *c);
int32_t serve_cache_index(const serve_cache *c);
void serve_cache_tenant(const serve_cache *c, unsigned char out[32]);
/* Gives the cache back: RESTORED (its session was loaded, or a load failed: its tokens read back,
 * the tenant given its owner's now), ERASED (emptied here), KEPT (read only), FAILED (a write that
 * failed: written again after the next request that ends in it). */
void serve_cache_release(serve_engine *e, serve_cache *c, serve_cache_change how, const unsigned char tenant[32]);
typedef struct serve_slot_info {
    bool processing;
    int32_t n_tokens, cache;
    unsigned char tenant[32]; /* whose conversation its cache holds */
} serve_slot_info;
void serve_slot_list(serve_engine *e, serve_slot_info *out); /* serve_slots_count of them */

/* ---- serve_guard.c: who may use the server, and for how long a connection may take ---- */

typedef struct serve_guard_params {
    const char **keys; /* API keys (Bearer); none: no authentication */
    int n_keys;
    bool auth_probes;   /* /health and /metrics need the key too */
    const char **hosts; /* names the Host header may carry besides IP literals and localhost ("*": any) */
    int n_hosts;
    const char **origins; /* cross-origin browser origins allowed (CORS; "*": any) */
    int n_origins;
    double header_timeout; /* from connecting (or the end of the last response) to a request's headers */
    double body_timeout;   /* from a request's headers to the end of its body */
    long max_connections;  /* open connections at most (counted here: over it, 503) */
    long per_client;       /* open connections from one address at most (0: no limit) */
} serve_guard_params;

typedef struct serve_guard serve_guard;
struct sockaddr;
typedef struct serve_conn serve_conn;

/* Starts the thread that ends connections past their deadline; NULL when it cannot. */
serve_guard *serve_guard_start(const serve_guard_params *gp);
void serve_guard_stop(serve_guard *g);
/* The Host header's host is one this server answers to: an IP literal, localhost, or a listed
 * name (DNS rebinding sends a name of the attacker's). A missing header (HTTP/1.0) passes. */
bool serve_guard_host_ok(const serve_guard *g, const char *host_header);
/* An Origin header against the Host: 0 none or the server's own origin, 1 a cross-origin origin
 * allowed by --cors-origin (the reply carries the CORS headers), -1 refused. */
int serve_guard_origin(const serve_guard *g, const char *origin, const char *host_header);
/* Whether the path needs the key, and whether the Authorization header carries one (compared in
 * constant time). */
bool serve_guard_needs_key(const serve_guard *g, const char *path);
bool serve_guard_key_ok(const serve_guard *g, const char *authorization);
/* A connection accepted on socket fd (watched through a duplicate of its own, so that the socket
 * number cannot be reused under the guard), waiting for its first request's headers. */
serve_conn *serve_guard_conn_open(serve_guard *g, int fd, const struct sockaddr *from);
void serve_guard_conn_close(serve_guard *g, serve_conn *c);
/* Whether the connection was over a limit when it opened (told 503 and shut down: nothing it
 * sends is served). */
bool serve_guard_conn_refused(const serve_conn *c);
/* The reply now complete closes the connection: it counts against the limits no more. */
void serve_guard_conn_closing(serve_guard *g, serve_conn *c);
/* The connection's next deadline: SERVE_WAIT_HEADERS (a new request), SERVE_WAIT_BODY (a body
 * being read) or SERVE_WAIT_NONE (the request is being served). A connection past its deadline is
 * shut down, however many bytes it trickles in: with a 408 when part of a request had come, with
 * no word when it was idle between requests. */
typedef enum { SERVE_WAIT_NONE, SERVE_WAIT_HEADERS, SERVE_WAIT_BODY } serve_wait_for;
void serve_guard_conn_wait(serve_guard *g, serve_conn *c, serve_wait_for what);
void serve_guard_counts(serve_guard *g, long *reaped, long *refused_client, long *refused_total);
/* The client on socket fd has closed its end (or the socket failed): no one will read a reply. */
bool serve_client_gone(int fd);

#endif
