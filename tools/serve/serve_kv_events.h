/*
 * serve_kv_events.h — rsr-serve's KV events publisher (serve_kv_events.c; ZeroMQ and msgpack): the
 * engine's serve_cache_events hooks, and its start and stop.
 */
#ifndef RSR_SERVE_KV_EVENTS_H
#define RSR_SERVE_KV_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kv_events kv_events;

/* Binds a PUB socket at endpoint (tcp://HOST:PORT), and with replay (or NULL) a ROUTER socket that
 * answers vLLM's replay requests, for caches of ctx positions; NULL with why in err. */
kv_events *kv_events_start(const char *endpoint, const char *replay, const char *topic, int32_t block, int32_t caches,
                           int32_t ctx, char *err, size_t errlen);
void kv_events_stop(kv_events *ev);
long kv_events_dropped(kv_events *ev); /* messages dropped because the publishing thread fell behind */
/* serve_cache_events' hooks (ctx: the kv_events) */
void kv_events_keep(void *ctx, int32_t cache, int32_t keep);
void kv_events_grow(void *ctx, int32_t cache, const unsigned char tenant[32], const int32_t *hist, int32_t n);
bool kv_events_flush(void *ctx);
void kv_events_clear(void *ctx);

#endif
