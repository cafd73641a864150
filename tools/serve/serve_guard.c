/*
 * serve_guard.c — what stands between rsr-serve and the network: which Host and Origin headers a
 * request may carry, which API keys it needs, and how long a connection may take to send a
 * request.
 *
 * Host: a browser tricked by DNS rebinding sends the attacker's name in Host while connecting to
 * this server's address; IP literals and localhost cannot be rebound, so only they and the names
 * given with --allow-host pass. Origin: a web page on another origin may POST to this server
 * without a preflight (Content-Type text/plain); a request whose Origin is neither the server's
 * own nor one given with --cors-origin is refused before it costs anything. Deadlines: the HTTP
 * library's timeout restarts on every byte, so a client trickling one byte a second holds its
 * connection (and its thread) forever; here every connection has an absolute deadline for its
 * request's headers and one for its body, and a thread shuts down the connections past theirs.
 *
 * Limits: the connections from one address (--max-per-client) and in all (--max-connections) are
 * counted here, not by the HTTP library, which closes a connection over its limits without a word:
 * a client that opens a new connection as soon as its last reply has come (before that connection's
 * thread has gone) was cut so at exactly its limit, its request lost with no status. Over a limit,
 * the connection is told 503 with Retry-After and closed; a connection whose last reply closes it
 * stops counting when that reply is complete, so a client's next connection finds room.
 */
#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

struct serve_conn {
    int fd;                       /* a duplicate of the connection's socket: ours to shut down and close */
    double deadline;              /* monotonic seconds; 0: none */
    bool body;                    /* the deadline is a body's */
    uint64_t bytes;               /* received when its wait for a request's headers began */
    struct sockaddr_storage from; /* the client's address (family and address; the port is not kept) */
    bool counted;                 /* counts against the limits: open, its last reply not closing it */
    bool refused;                 /* over a limit: told 503 and shut down */
    serve_conn *prev, *next;
};

struct serve_guard {
    serve_guard_params p;
    pthread_mutex_t lock;
    pthread_cond_t stop_cond;
    bool stopping;
    pthread_t thread;
    serve_conn head; /* a ring of the open connections */
    long reaped, refused_client, refused_total;
    long counted; /* connections that count against --max-connections */
};

static uint64_t received(int fd) {
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 ? ti.tcpi_bytes_received : 0;
}

/* A connection the library has sent nothing on is told why it ends (a JSON error in OpenAI's shape). */
static void tell(int fd, const char *status, const char *extra, const char *code, const char *message) {
    char body[512], reply[1024];
    int nb = snprintf(body, sizeof body,
                      "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\",\"param\":null,"
                      "\"code\":\"%s\"}}",
                      message, code);
    int n = snprintf(reply, sizeof reply,
                     "HTTP/1.1 %s\r\nConnection: close\r\n%sContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     status, extra, nb, body);
    if (n > 0 && send(fd, reply, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
    } /* a peer that is gone or reads nothing: the shutdown follows either way */
}

/* A request cut at its deadline is told so. */
static void time_out(int fd) {
    tell(fd, "408 Request Timeout", "", "request_timeout", "the request took too long to arrive");
}

static void *reaper(void *arg) {
    serve_guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stopping) {
        double now = serve_now();
        for (serve_conn *c = g->head.next; c != &g->head; c = c->next)
            if (c->deadline > 0 && now > c->deadline) {
                if (c->body || received(c->fd) > c->bytes) time_out(c->fd); /* idle: closed without a word */
                shutdown(c->fd, SHUT_RDWR); /* the connection's thread sees the end and closes it */
                c->deadline = 0, g->reaped++;
            }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&g->stop_cond, &g->lock, &ts);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

serve_guard *serve_guard_start(const serve_guard_params *gp) {
    serve_guard *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->p = *gp;
    g->head.next = g->head.prev = &g->head;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->stop_cond, NULL);
    if (pthread_create(&g->thread, NULL, reaper, g) != 0) {
        free(g);
        return NULL;
    }
    return g;
}

void serve_guard_stop(serve_guard *g) {
    pthread_mutex_lock(&g->lock);
    g->stopping = true;
    pthread_cond_signal(&g->stop_cond);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    while (g->head.next != &g->head) serve_guard_conn_close(g, g->head.next);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->stop_cond);
    free(g);
}

static bool same_client(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                       &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr, sizeof(struct in6_addr));
    return true; /* another family (a local socket): one client */
}

/* Over a limit (under the lock): the connection is told 503 and shut down, and counts no more. */
static bool over_limits(serve_guard *g, serve_conn *c) {
    long same = 0;
    for (serve_conn *o = g->head.next; o != &g->head; o = o->next)
        same += o->counted && same_client(&o->from, &c->from);
    bool client = g->p.per_client > 0 && same >= g->p.per_client, total = g->counted >= g->p.max_connections;
    if (!client && !total) return false;
    if (client)
        g->refused_client++, tell(c->fd, "503 Service Unavailable", "Retry-After: 1\r\n", "too_many_connections",
                                  "this client has as many connections open as it may (rsr-serve --max-per-client)");
    else
        g->refused_total++, tell(c->fd, "503 Service Unavailable", "Retry-After: 1\r\n", "too_many_connections",
                                 "the server has as many connections open as it may (rsr-serve --max-connections)");
    shutdown(c->fd, SHUT_RDWR);
    c->refused = true, c->deadline = 0;
    return true;
}

serve_conn *serve_guard_conn_open(serve_guard *g, int fd, const struct sockaddr *from) {
    serve_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = dup(fd);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    if (from)
        memcpy(&c->from, from,
               from->sa_family == AF_INET6  ? sizeof(struct sockaddr_in6)
               : from->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                            : sizeof(sa_family_t));
    pthread_mutex_lock(&g->lock);
    c->deadline = serve_now() + g->p.header_timeout;
    c->bytes = 0;
    if (!over_limits(g, c)) c->counted = true, g->counted++;
    c->next = g->head.next, c->prev = &g->head;
    g->head.next->prev = c, g->head.next = c;
    pthread_mutex_unlock(&g->lock);
    return c;
}

bool serve_guard_conn_refused(const serve_conn *c) { return c && c->refused; }

void serve_guard_conn_closing(serve_guard *g, serve_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&g->lock);
    if (c->counted) c->counted = false, g->counted--;
    pthread_mutex_unlock(&g->lock);
}

void serve_guard_conn_close(serve_guard *g, serve_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&g->lock);
    c->prev->next = c->next, c->next->prev = c->prev;
    if (c->counted) g->counted--;
    pthread_mutex_unlock(&g->lock);
    close(c->fd);
    free(c);
}

void serve_guard_conn_wait(serve_guard *g, serve_conn *c, serve_wait_for what) {
    if (!c) return;
    pthread_mutex_lock(&g->lock);
    c->deadline = what == SERVE_WAIT_HEADERS ? serve_now() + g->p.header_timeout
                  : what == SERVE_WAIT_BODY  ? serve_now() + g->p.body_timeout
                                             : 0;
    c->body = what == SERVE_WAIT_BODY;
    if (what == SERVE_WAIT_HEADERS) c->bytes = received(c->fd);
    pthread_mutex_unlock(&g->lock);
}

void serve_guard_counts(serve_guard *g, long *reaped, long *refused_client, long *refused_total) {
    pthread_mutex_lock(&g->lock);
    *reaped = g->reaped, *refused_client = g->refused_client, *refused_total = g->refused_total;
    pthread_mutex_unlock(&g->lock);
}

bool serve_client_gone(int fd) {
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- headers ---- */

static bool listed(const char **list, int n, const char *s, size_t len) {
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], "*") || (strlen(list[i]) == len && !strncasecmp(list[i], s, len))) return true;
    return false;
}

/* The host part of a Host header ("name", "name:port", "1.2.3.4:80", "[::1]:80") into out. */
static bool host_part(const char *h, char *out, size_t cap) {
    const char *end;
    if (*h == '[') {
        h++;
        if (!(end = strchr(h, ']'))) return false;
    } else {
        const char *colon = strchr(h, ':');
        end = colon && !strchr(colon + 1, ':') ? colon : h + strlen(h);
    }
    size_t n = (size_t)(end - h);
    if (n == 0 || n >= cap) return false;
    memcpy(out, h, n), out[n] = 0;
    return true;
}

bool serve_guard_host_ok(const serve_guard *g, const char *host_header) {
    if (!host_header) return true;
    char host[256];
    unsigned char addr[16];
    if (!host_part(host_header, host, sizeof host)) return false;
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) return true;
    if (!strcasecmp(host, "localhost")) return true;
    return listed(g->p.hosts, g->p.n_hosts, host, strlen(host));
}

int serve_guard_origin(const serve_guard *g, const char *origin, const char *host_header) {
    if (!origin) return 0;
    const char *rest = !strncasecmp(origin, "http://", 7)    ? origin + 7
                       : !strncasecmp(origin, "https://", 8) ? origin + 8
                                                             : NULL;
    if (rest && host_header && !strcasecmp(rest, host_header)) return 0; /* the page this server served */
    return listed(g->p.origins, g->p.n_origins, origin, strlen(origin)) ? 1 : -1;
}

bool serve_guard_needs_key(const serve_guard *g, const char *path) {
    if (!g->p.n_keys) return false;
    if (!strcmp(path, "/") || !strcmp(path, "/index.html")) return false; /* the page asks for the key */
    if (!strcmp(path, "/health") || !strcmp(path, "/metrics")) return g->p.auth_probes;
    return true;
}

/* Equal in time that depends only on the lengths. */
static bool same_secret(const char *a, size_t na, const char *b) {
    size_t nb = strlen(b);
    unsigned char diff = na != nb;
    for (size_t i = 0; i < na; i++) diff |= (unsigned char)a[i] ^ (unsigned char)b[i < nb ? i : 0];
    return diff == 0;
}

bool serve_guard_key_ok(const serve_guard *g, const char *authorization) {
    if (!authorization || strncasecmp(authorization, "Bearer ", 7)) return false;
    const char *key = authorization + 7;
    while (*key == ' ') key++;
    size_t n = strlen(key);
    while (n && isspace((unsigned char)key[n - 1])) n--;
    bool ok = false;
    for (int i = 0; i < g->p.n_keys; i++) ok |= same_secret(key, n, g->p.keys[i]);
    return ok;
}
