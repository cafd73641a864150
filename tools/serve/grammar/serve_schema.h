/*
 * serve_schema.h — a response_format JSON schema as a GBNF grammar (serve_schema.c), for the
 * schemas serve_json.c's compact subset refuses: anyOf, $ref, pattern, format, ranges and the rest
 * that serve_schema.c lists. The engine masks the reply to the grammar as to a `grammar` field.
 */
#ifndef RSR_SERVE_SCHEMA_H
#define RSR_SERVE_SCHEMA_H

#include <stddef.h>

#include "serve_gbnf.h"

struct cJSON;

/* A growing text (GBNF being written): once memory runs out, oom is set and nothing more is added. */
typedef struct gbnf_text {
    char *s;
    size_t n, cap;
    bool oom;
} gbnf_text;
void gbnf_text_put(gbnf_text *b, const char *s, size_t n);
void gbnf_text_str(gbnf_text *b, const char *s);

/* The schema as GBNF text whose start rule is `root` (malloc'd), or NULL with the message in err
 * and the keyword refused in keyword (64 bytes). */
char *schema_gbnf(const struct cJSON *schema, char *err, size_t errlen, char keyword[64]);
/* schema_gbnf's text compiled (gbnf_compile); NULL as schema_gbnf, or when the grammar is over
 * serve_gbnf.h's limits or left-recursive (a $ref back to itself before any text). */
gbnf_grammar *schema_grammar(const struct cJSON *schema, char *err, size_t errlen, char keyword[64]);

#endif
