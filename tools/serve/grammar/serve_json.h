/*
 * serve_json.h — structured output (response_format json_object, json_schema): which bytes may
 * come next in a reply that must be JSON, or JSON of a schema. serve_json.c says what is accepted
 * and how the recognizer works; schemas beyond its subset go through serve_schema.h as GBNF.
 */
#ifndef RSR_SERVE_JSON_H
#define RSR_SERVE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct json_shape json_shape; /* a compiled schema */
struct cJSON;
#define JSON_MAX_DEPTH 17   /* frames: a schema's 16 levels (serve_json.c refuses more), a value inside the deepest */
typedef struct json_frame { /* one value being read (serve_json.c says what each field means) */
    uint8_t kind, phase;
    uint16_t pos;
    int16_t node, cur;
    uint32_t seen, cand, count;
} json_frame;
typedef struct json_state { /* the reply so far */
    int depth;
    json_frame f[JSON_MAX_DEPTH];
} json_state;
/* The schema (NULL: json_object, an object of anything), or NULL with the message and the
 * keyword refused (64 bytes). */
json_shape *json_shape_compile(const struct cJSON *schema, char *err, size_t errlen, char keyword[64]);
void json_shape_free(json_shape *s);       /* drops a holder's reference; the last frees it */
json_shape *json_shape_ref(json_shape *s); /* one more holder of s (any thread); s */
void json_state_init(json_state *st, const json_shape *sh);
/* false: no valid reply continues with these bytes (st is then spoilt: feed a copy) */
bool json_state_feed(json_state *st, const json_shape *sh, const char *bytes, size_t n);
bool json_state_done(const json_state *st, const json_shape *sh); /* a whole value: the reply may end */
void json_state_copy(json_state *dst, const json_state *src);

#endif
