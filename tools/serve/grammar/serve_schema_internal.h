/*
 * serve_schema_internal.h — what serve_schema.c (the conversion: types, objects, arrays, numbers)
 * and serve_schema_string.c (strings: patterns and formats) share.
 */
#ifndef SERVE_SCHEMA_INTERNAL_H
#define SERVE_SCHEMA_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "serve_schema.h"

#define MAX_COUNT 4096 /* the largest least count served, and the most */

typedef gbnf_text sbuf;   /* serve_schema.h */
typedef struct conv conv; /* one schema's conversion (serve_schema.c) */

/* Refuses the schema naming keyword (the first refusal is kept); returns false. */
bool schema_refuse(conv *c, const char *keyword, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool schema_oom(conv *c);          /* the schema refused as too large */
bool schema_failed(const conv *c); /* refused already */
const cJSON *schema_get(const cJSON *s, const char *k);
/* a whole number from 0 to 1000000 (minLength, maxItems, ...); *out -1: absent */
bool schema_count_kw(conv *c, const cJSON *s, const char *key, long *out);
/* x (one GBNF item) m to n times (n < 0: no most); a most over MAX_COUNT is served as MAX_COUNT */
bool schema_rep(conv *c, sbuf *b, const char *kw, const char *x, long m, long n);
void schema_cat(sbuf *b, const sbuf *o);
void schema_cp(sbuf *b, uint32_t cp); /* one code point in a GBNF literal or class */
/* the next code point of NUL-terminated UTF-8 (strict); -1: invalid */
int32_t schema_utf8_next(const unsigned char **s);

/* serve_schema_string.c: a string schema's rule body into b (minLength, maxLength, pattern,
 * format): 1 written, 0 no string fits, -1 refused */
int schema_emit_string(conv *c, const cJSON *s, sbuf *b);

#endif
