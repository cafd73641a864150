/*
 * serve_http.c — rsr-serve's HTTP side: replies (text, JSON, OpenAI's error object, a refusal of
 * the admission rules) with their CORS headers, what a request must pass before its body is read
 * (Host, Origin, API key, size), the routing of a path to its endpoint, libmicrohttpd's callbacks
 * (a request's headers and body, its end, a connection's opening and closing, %XX in a URL) and
 * the request log. Uses libmicrohttpd, cJSON, the guard (serve_guard.c) and the endpoints of
 * serve_complete.c, serve_embed.c and serve_endpoints.c (serve_server.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "serve_server.h"

extern const unsigned char serve_page_html[]; /* serve_page.html, compiled in (CMake) */
extern const unsigned int serve_page_html_len;

serve_guard *http_guard;
__thread request *http_current;

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
    if (http_guard &&
        serve_guard_origin(http_guard, origin, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host")) == 1) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Vary", "Origin");
    }
}

enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, const char *body, size_t len,
                          int retry_after) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    add_cors(c, r);
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    MHD_add_response_header(r, "Content-Type", type);
    if (retry_after) MHD_add_response_header(r, "Retry-After", "1");
    if (http_current) http_current->status = status;
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *body, int retry_after) {
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text) return MHD_NO;
    enum MHD_Result ret = send_text(c, status, "application/json", text, strlen(text), retry_after);
    free(text);
    return ret;
}

/* {"error": {"message", "type", "param", "code"}}, as OpenAI's clients read it. */
enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *type, const char *param,
                           const char *code, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *clean = serve_utf8_clean(msg, strlen(msg));
    if (http_current) snprintf(http_current->why, sizeof http_current->why, "%s", clean ? clean : msg);
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

/* A refusal of the admission rules (serve_admit.h), sent as send_error sends it. */
enum MHD_Result send_refusal(struct MHD_Connection *c, const serve_refusal *r) {
    return send_error(c, r->status, r->type, r->param, r->code, "%s", r->message);
}

/* A request's failure as said in err: out of memory is the server's (503: try again later), the
 * rest the request's (400). */
enum MHD_Result refuse_request(struct MHD_Connection *c, const char *param, const char *err) {
    serve_refusal r;
    serve_refuse_failure(&r, param, err);
    return send_refusal(c, &r);
}

/* 400: what the request asks for needs the tokenizer the model lacks. */
enum MHD_Result no_tokenizer(struct MHD_Connection *c, const char *param, const char *what) {
    serve_refusal r;
    serve_refuse_no_tokenizer(&r, param, what);
    return send_refusal(c, &r);
}

int connection_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
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
        return tok     ? endpoint_tokenize(sv, c, body, rq->len)
               : detok ? endpoint_detokenize(sv, c, body, rq->len)
               : tmpl  ? endpoint_apply_template(sv, c, body, rq->len)
               : embed ? endpoint_embeddings(sv, c, body, rq->len)
                       : endpoint_complete(sv, c, chat, body, rq->len);
    }
    if (!strcmp(url, "/slots") || !strncmp(url, "/slots/", 7)) {
        if (rq->too_large)
            return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "invalid_request_error", NULL, NULL,
                              "the body is over %zu bytes (rsr-serve --max-body)", sv->max_body);
        return endpoint_slots(sv, c, url, method, rq->body ? rq->body : "", rq->len);
    }
    static const char *const gets[] = {"/", "/index.html", "/health", "/v1/models", "/metrics", "/info"};
    int which = -1;
    for (int i = 0; i < 6; i++)
        if (!strcmp(url, gets[i])) which = i;
    if (which < 0)
        return send_error(c, MHD_HTTP_NOT_FOUND, "invalid_request_error", NULL, "not_found",
                          "no endpoint %.200s (POST /v1/completions, /v1/chat/completions, /v1/embeddings, /tokenize, "
                          "/detokenize, /apply-template, /slots/ID?action=...; GET "
                          "/v1/models, /health, /metrics, /info, /slots, /)",
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
    case 3: return endpoint_models(sv, c);
    case 4: return endpoint_metrics(sv, c);
    default: return endpoint_info(sv, c);
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
enum MHD_Result http_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
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
        http_current = rq;
        bool refused = refuse(sv, c, url, method, &ret);
        http_current = NULL;
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
    http_current = rq;
    enum MHD_Result ret = route(sv, c, url, method, rq);
    http_current = NULL;
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
void http_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
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
void http_connection_event(void *cls, struct MHD_Connection *c, void **socket_context,
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
size_t http_unescape(void *cls, struct MHD_Connection *c, char *s) {
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
