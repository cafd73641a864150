/*
 * serve_kv_events.c — KV events for a KV-aware router (rsr-serve --kv-events; docs/deploy.md, "KV
 * events"): what vLLM publishes and llm-d's kvevents package reads, on a ZeroMQ PUB socket.
 *
 * Each message is three frames: the topic "kv@<pod>@<model>", an 8-byte big-endian sequence
 * number, and a msgpack payload [timestamp, [events...]] with the events
 *   ["BlockStored", [hashes], parent_hash | nil, [token_ids], block_size, nil, medium, nil]
 *   ["BlockRemoved", [hashes], medium]
 *   ["AllBlocksCleared"]
 * A block is --kv-block-size consecutive tokens of a cache's history (prompt and reply), stored
 * once whole. Hashes chain from the first block: h_i = SHA-256(h_{i-1} || the block's tokens)
 * truncated to 63 bits, the first block's seed the digest of the cache's tenant (its API key and
 * cache_salt; zeros without), so one tenant's prefix never matches another's. A hash held by
 * several caches is stored when the first takes it and removed when the last lets it go.
 *
 * The engine calls keep/grow under its lock (serve_cache_events); a turn's events become one
 * message, queued for the publishing thread in a ring of KV_RING messages: when the ring is full
 * the message is dropped and counted (kv_events_dropped), a gap in the sequence numbers, and
 * everything is told again (AllBlocksCleared, then every cache's blocks) once the ring is half
 * empty, not at every turn while it is full. The PUB socket never blocks: a subscriber whose queue
 * is at ZeroMQ's high-water mark (KV_HWM messages) loses the message alone, unseen here (a refusal
 * with ZMQ_XPUB_NODROP would lose it for every subscriber), and sees the gap in the sequence
 * numbers, for which the replay socket is there. A subscriber that cannot keep up never slows
 * decoding nor the other subscribers.
 */
#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <openssl/evp.h>
#include <zmq.h>

#include "serve_kv_events.h"

#define KV_RING 1024
#define KV_REPLAY 4096 /* messages kept for --kv-events-replay */
#define KV_HWM 100000  /* messages queued for a subscriber (vLLM's default high-water mark) */
#define MEDIUM "CPU"   /* where a replica's KV cache is: host memory */

typedef struct kv_msg {
    char *data;
    size_t len;
    uint64_t seq;
} kv_msg;

typedef struct ev_list { /* one event's hashes (and tokens) being gathered */
    uint64_t *h;
    int32_t n, cap;
} ev_list;

struct kv_events {
    void *zctx, *pub;
    char *topic;
    int32_t block, caches, per; /* tokens a block; caches; blocks a cache holds at most */
    uint64_t *held;             /* [caches][per]: the hashes each cache has announced */
    int32_t *n_held;            /* [caches] */
    uint64_t *keys;             /* hash table: hash + 1 (0: empty), with counts */
    int32_t *counts;
    size_t mask;
    msgpack_sbuffer buf; /* this turn's events, packed */
    msgpack_packer pk;
    int32_t n_events;
    uint64_t seq;
    pthread_mutex_t lock; /* the ring */
    pthread_cond_t more;
    kv_msg ring[KV_RING];
    int32_t head, len;
    long dropped;
    bool resync; /* a message was dropped: the engine tells everything again (kv_events_clear, then grow) */
    bool stopping;
    pthread_t thread;
    void *replay; /* --kv-events-replay: a ROUTER socket, or NULL */
    kv_msg sent[KV_REPLAY];
    int32_t sent_head, sent_len;
};

/* ---- the hashes held, with how many caches hold each ---- */

static int32_t *count_of(kv_events *ev, uint64_t h, bool add) {
    for (size_t i = (size_t)(h * 0x9e3779b97f4a7c15u) & ev->mask;; i = (i + 1) & ev->mask) {
        if (ev->keys[i] == h + 1) return &ev->counts[i];
        if (!ev->keys[i]) {
            if (!add) return NULL;
            ev->keys[i] = h + 1, ev->counts[i] = 0;
            return &ev->counts[i];
        }
    }
}

/* Takes h out of the table (its count reached 0), rehashing the run after it (linear probing). */
static void forget(kv_events *ev, uint64_t h) {
    size_t i = (size_t)(h * 0x9e3779b97f4a7c15u) & ev->mask;
    while (ev->keys[i] != h + 1) i = (i + 1) & ev->mask;
    ev->keys[i] = 0;
    for (size_t j = (i + 1) & ev->mask; ev->keys[j]; j = (j + 1) & ev->mask) {
        uint64_t k = ev->keys[j] - 1;
        int32_t c = ev->counts[j];
        ev->keys[j] = 0;
        *count_of(ev, k, true) = c;
    }
}

static uint64_t block_hash(uint64_t parent, const unsigned char *seed, const int32_t *tokens, int32_t n) {
    unsigned char out[32];
    unsigned len = 0;
    uint64_t h = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
        EVP_DigestUpdate(ctx, seed ? (const void *)seed : (const void *)&parent, seed ? 32 : sizeof parent) &&
        EVP_DigestUpdate(ctx, tokens, sizeof *tokens * (size_t)n) && EVP_DigestFinal_ex(ctx, out, &len))
        memcpy(&h, out, sizeof h);
    EVP_MD_CTX_free(ctx);
    return h >> 1; /* 63 bits: a msgpack integer any reader takes as signed or unsigned */
}

/* ---- events of this turn ---- */

static void pack_str(msgpack_packer *pk, const char *s) {
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void stored(kv_events *ev, const ev_list *hs, uint64_t parent, bool has_parent, const int32_t *tokens) {
    msgpack_packer *pk = &ev->pk;
    msgpack_pack_array(pk, 8);
    pack_str(pk, "BlockStored");
    msgpack_pack_array(pk, (size_t)hs->n);
    for (int32_t i = 0; i < hs->n; i++) msgpack_pack_uint64(pk, hs->h[i]);
    if (has_parent)
        msgpack_pack_uint64(pk, parent);
    else
        msgpack_pack_nil(pk);
    msgpack_pack_array(pk, (size_t)hs->n * (size_t)ev->block);
    for (int32_t i = 0; i < hs->n * ev->block; i++) msgpack_pack_int32(pk, tokens[i]);
    msgpack_pack_int32(pk, ev->block);
    msgpack_pack_nil(pk); /* lora_id */
    pack_str(pk, MEDIUM);
    msgpack_pack_nil(pk); /* lora_name */
    ev->n_events++;
}

static void removed(kv_events *ev, const uint64_t *h, int32_t n) {
    msgpack_packer *pk = &ev->pk;
    msgpack_pack_array(pk, 3);
    pack_str(pk, "BlockRemoved");
    msgpack_pack_array(pk, (size_t)n);
    for (int32_t i = 0; i < n; i++) msgpack_pack_uint64(pk, h[i]);
    pack_str(pk, MEDIUM);
    ev->n_events++;
}

void kv_events_keep(void *ctx, int32_t cache, int32_t keep) {
    kv_events *ev = ctx;
    uint64_t *held = ev->held + (size_t)cache * (size_t)ev->per;
    int32_t from = keep / ev->block, n = 0;
    if (from >= ev->n_held[cache]) return;
    uint64_t *gone = malloc(sizeof *gone * (size_t)(ev->n_held[cache] - from));
    for (int32_t i = from; i < ev->n_held[cache]; i++) {
        int32_t *c = count_of(ev, held[i], false);
        if (c && --*c == 0) {
            forget(ev, held[i]);
            if (gone)
                gone[n++] = held[i];
            else
                removed(ev, &held[i], 1); /* no room to gather them: one event each */
        }
    }
    ev->n_held[cache] = from;
    if (n) removed(ev, gone, n);
    free(gone);
}

void kv_events_grow(void *ctx, int32_t cache, const unsigned char tenant[32], const int32_t *hist, int32_t n_hist) {
    kv_events *ev = ctx;
    uint64_t *held = ev->held + (size_t)cache * (size_t)ev->per;
    static const unsigned char zero[32];
    const bool salted = memcmp(tenant, zero, 32) != 0;
    int32_t whole = n_hist / ev->block;
    if (whole > ev->per) whole = ev->per;
    ev_list run = {0}; /* consecutive blocks newly stored: one event */
    int32_t run_from = 0;
    for (int32_t i = ev->n_held[cache]; i < whole; i++) {
        const uint64_t parent = i ? held[i - 1] : 0;
        const uint64_t h = block_hash(parent,
                                      i        ? NULL
                                      : salted ? tenant
                                               : zero,
                                      hist + (size_t)i * (size_t)ev->block, ev->block);
        held[i] = h;
        int32_t *c = count_of(ev, h, true);
        if ((*c)++ == 0) { /* stored here first */
            if (!run.n) run_from = i;
            if (run.n == run.cap) {
                uint64_t *grown = realloc(run.h, sizeof *run.h * (size_t)(run.cap ? 2 * run.cap : 16));
                if (!grown) { /* no room to gather them: what is gathered goes out now */
                    stored(ev, &run, run_from ? held[run_from - 1] : 0, run_from > 0,
                           hist + (size_t)run_from * (size_t)ev->block);
                    run.n = 0, run_from = i;
                } else {
                    run.h = grown, run.cap = run.cap ? 2 * run.cap : 16;
                }
            }
            if (run.n < run.cap) run.h[run.n++] = h;
        } else if (run.n) {
            stored(ev, &run, run_from ? held[run_from - 1] : 0, run_from > 0,
                   hist + (size_t)run_from * (size_t)ev->block);
            run.n = 0;
        }
    }
    if (run.n)
        stored(ev, &run, run_from ? held[run_from - 1] : 0, run_from > 0, hist + (size_t)run_from * (size_t)ev->block);
    free(run.h);
    ev->n_held[cache] = whole > ev->n_held[cache] ? whole : ev->n_held[cache];
}

/* AllBlocksCleared, and nothing held: the engine then grows every cache again (a full announcement,
 * each block once, with its count). */
void kv_events_clear(void *ctx) {
    kv_events *ev = ctx;
    msgpack_pack_array(&ev->pk, 1);
    pack_str(&ev->pk, "AllBlocksCleared");
    ev->n_events++;
    memset(ev->n_held, 0, sizeof *ev->n_held * (size_t)ev->caches);
    memset(ev->keys, 0, sizeof *ev->keys * (ev->mask + 1));
    pthread_mutex_lock(&ev->lock);
    ev->resync = false;
    pthread_mutex_unlock(&ev->lock);
}

static void begin_batch(kv_events *ev) {
    msgpack_sbuffer_clear(&ev->buf);
    ev->n_events = 0;
}

/* Whether to tell everything again (under ev->lock): a message was dropped since the last
 * kv_events_clear, and the ring has room for what that takes. */
static bool resync_due(const kv_events *ev) { return ev->resync && ev->len < KV_RING / 2; }

/* This turn's events as one message for the publishing thread (dropped and counted when its ring is
 * full); true when everything is to be told again (resync_due). */
bool kv_events_flush(void *ctx) {
    kv_events *ev = ctx;
    if (!ev->n_events) {
        pthread_mutex_lock(&ev->lock);
        const bool due = resync_due(ev);
        pthread_mutex_unlock(&ev->lock);
        return due;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_double(&pk, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
    msgpack_pack_array(&pk, (size_t)ev->n_events);
    msgpack_sbuffer_write(&out, ev->buf.data, ev->buf.size);
    begin_batch(ev);
    pthread_mutex_lock(&ev->lock);
    if (ev->len == KV_RING) { /* dropped: a gap in the sequence, and everything told again */
        ev->dropped++, ev->seq++, ev->resync = true;
        msgpack_sbuffer_destroy(&out);
    } else {
        ev->ring[(ev->head + ev->len++) % KV_RING] = (kv_msg){out.data, out.size, ev->seq++};
        pthread_cond_signal(&ev->more);
    }
    const bool again = resync_due(ev);
    pthread_mutex_unlock(&ev->lock);
    return again;
}

/* A message published, kept for replay (the publishing thread's own: no lock). */
static void keep_sent(kv_events *ev, kv_msg m) {
    kv_msg *old = &ev->sent[(ev->sent_head + ev->sent_len) % KV_REPLAY];
    if (ev->sent_len == KV_REPLAY)
        free(old->data), ev->sent_head = (ev->sent_head + 1) % KV_REPLAY;
    else
        ev->sent_len++;
    *old = m;
}

/* One replay request on the ROUTER socket, if one waits: [identity, (empty), start sequence] gets
 * [identity, (empty), sequence, payload] for each kept message from that sequence on, then an
 * empty payload under sequence -1 (vLLM's end marker). */
static void serve_replay(kv_events *ev) {
    zmq_msg_t part[3];
    int n = 0, more = 1;
    while (more && n < 3) {
        zmq_msg_init(&part[n]);
        if (zmq_msg_recv(&part[n], ev->replay, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part[n]);
            more = 0; /* nothing (more) waits */
            break;
        }
        more = zmq_msg_more(&part[n++]);
    }
    if (more) { /* a longer request: read to its end, answer nothing */
        for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
        n = 0;
        while (more) {
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            more = zmq_msg_recv(&extra, ev->replay, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&extra);
            zmq_msg_close(&extra);
        }
    }
    const bool delim = n == 3 && zmq_msg_size(&part[1]) == 0;
    if ((n == 2 || delim) && zmq_msg_size(&part[n - 1]) == 8) {
        uint64_t be, from;
        memcpy(&be, zmq_msg_data(&part[n - 1]), 8);
        from = be64toh(be);
        const void *id = zmq_msg_data(&part[0]);
        const size_t id_len = zmq_msg_size(&part[0]);
        for (int32_t k = 0; k <= ev->sent_len; k++) {
            const bool end = k == ev->sent_len;
            const kv_msg *m = end ? NULL : &ev->sent[(ev->sent_head + k) % KV_REPLAY];
            if (m && m->seq < from) continue;
            be = htobe64(end ? UINT64_MAX : m->seq); /* -1 as a signed 64-bit number */
            zmq_send(ev->replay, id, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            if (delim) zmq_send(ev->replay, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(ev->replay, &be, sizeof be, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(ev->replay, end ? "" : m->data, end ? 0 : m->len, ZMQ_DONTWAIT);
        }
    }
    for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
}

static void *publisher(void *arg) {
    kv_events *ev = arg;
    pthread_mutex_lock(&ev->lock);
    for (;;) {
        if (!ev->len && !ev->stopping) { /* a message, or every 50 ms a look at the replay socket */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50000000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&ev->more, &ev->lock, &ts);
        }
        if (!ev->len && ev->stopping) break;
        bool have = ev->len > 0;
        kv_msg m = {0};
        if (have) m = ev->ring[ev->head], ev->head = (ev->head + 1) % KV_RING, ev->len--;
        pthread_mutex_unlock(&ev->lock);
        if (have) {
            uint64_t be = htobe64(m.seq);
            zmq_send(ev->pub, ev->topic, strlen(ev->topic), ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(ev->pub, &be, sizeof be, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(ev->pub, m.data, m.len, ZMQ_DONTWAIT);
            if (ev->replay)
                keep_sent(ev, m);
            else
                free(m.data);
        }
        if (ev->replay) serve_replay(ev);
        pthread_mutex_lock(&ev->lock);
    }
    pthread_mutex_unlock(&ev->lock);
    return NULL;
}

/* As vLLM decides: an endpoint with a wildcard (or ipc, inproc) is bound, one that names a host is
 * connected to (a router that binds and gathers the pods' events). */
static bool binds(const char *endpoint) {
    return strchr(endpoint, '*') || strstr(endpoint, "::") || !strncmp(endpoint, "ipc://", 6) ||
           !strncmp(endpoint, "inproc://", 9);
}

kv_events *kv_events_start(const char *endpoint, const char *replay, const char *topic, int32_t block, int32_t caches,
                           int32_t ctx, char *err, size_t errlen) {
    kv_events *ev = calloc(1, sizeof *ev);
    if (!ev) return snprintf(err, errlen, "out of memory"), NULL;
    ev->block = block, ev->caches = caches, ev->per = ctx / block;
    size_t slots = 64;
    while (slots < 2 * (size_t)caches * (size_t)(ev->per + 1)) slots *= 2;
    ev->mask = slots - 1;
    ev->held = calloc((size_t)caches * (size_t)(ev->per + 1), sizeof *ev->held);
    ev->n_held = calloc((size_t)caches, sizeof *ev->n_held);
    ev->keys = calloc(slots, sizeof *ev->keys);
    ev->counts = calloc(slots, sizeof *ev->counts);
    ev->topic = strdup(topic);
    msgpack_sbuffer_init(&ev->buf);
    msgpack_packer_init(&ev->pk, &ev->buf, msgpack_sbuffer_write);
    pthread_mutex_init(&ev->lock, NULL);
    pthread_cond_init(&ev->more, NULL);
    if (!ev->held || !ev->n_held || !ev->keys || !ev->counts || !ev->topic) {
        snprintf(err, errlen, "out of memory");
    } else if (!(ev->zctx = zmq_ctx_new()) || !(ev->pub = zmq_socket(ev->zctx, ZMQ_PUB))) {
        snprintf(err, errlen, "--kv-events: cannot make a ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
    } else if (zmq_setsockopt(ev->pub, ZMQ_LINGER, &(int){0}, sizeof(int)) != 0 ||
               zmq_setsockopt(ev->pub, ZMQ_IPV6, &(int){1}, sizeof(int)) != 0 ||
               zmq_setsockopt(ev->pub, ZMQ_SNDHWM, &(int){KV_HWM}, sizeof(int)) != 0 ||
               (binds(endpoint) ? zmq_bind(ev->pub, endpoint) : zmq_connect(ev->pub, endpoint)) != 0) {
        snprintf(err, errlen, "--kv-events %s: cannot %s: %s", endpoint, binds(endpoint) ? "bind" : "connect",
                 zmq_strerror(zmq_errno()));
    } else if (replay && (!(ev->replay = zmq_socket(ev->zctx, ZMQ_ROUTER)) ||
                          zmq_setsockopt(ev->replay, ZMQ_LINGER, &(int){0}, sizeof(int)) != 0 ||
                          zmq_setsockopt(ev->replay, ZMQ_IPV6, &(int){1}, sizeof(int)) != 0 ||
                          zmq_setsockopt(ev->replay, ZMQ_SNDHWM, &(int){4 * KV_REPLAY + 16}, sizeof(int)) != 0 ||
                          zmq_bind(ev->replay, replay) != 0)) {
        snprintf(err, errlen, "--kv-events-replay %s: cannot bind: %s", replay, zmq_strerror(zmq_errno()));
    } else if (pthread_create(&ev->thread, NULL, publisher, ev) != 0) {
        snprintf(err, errlen, "--kv-events: cannot start the publishing thread");
    } else {
        msgpack_pack_array(&ev->pk, 1); /* a replica that starts holds nothing */
        pack_str(&ev->pk, "AllBlocksCleared");
        ev->n_events = 1;
        kv_events_flush(ev);
        return ev;
    }
    if (ev->pub) zmq_close(ev->pub);
    if (ev->replay) zmq_close(ev->replay);
    if (ev->zctx) zmq_ctx_term(ev->zctx);
    free(ev->held), free(ev->n_held), free(ev->keys), free(ev->counts), free(ev->topic);
    msgpack_sbuffer_destroy(&ev->buf);
    free(ev);
    return NULL;
}

long kv_events_dropped(kv_events *ev) {
    pthread_mutex_lock(&ev->lock);
    long d = ev->dropped;
    pthread_mutex_unlock(&ev->lock);
    return d;
}

void kv_events_stop(kv_events *ev) {
    if (!ev) return;
    pthread_mutex_lock(&ev->lock);
    ev->stopping = true;
    pthread_cond_signal(&ev->more);
    pthread_mutex_unlock(&ev->lock);
    pthread_join(ev->thread, NULL);
    zmq_close(ev->pub);
    if (ev->replay) zmq_close(ev->replay);
    for (int32_t k = 0; k < ev->sent_len; k++) free(ev->sent[(ev->sent_head + k) % KV_REPLAY].data);
    zmq_ctx_term(ev->zctx);
    free(ev->held), free(ev->n_held), free(ev->keys), free(ev->counts), free(ev->topic);
    msgpack_sbuffer_destroy(&ev->buf);
    free(ev);
}
