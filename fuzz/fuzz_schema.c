/*
 * fuzz_schema.c — a response_format JSON schema (a request's, untrusted) up to the first NUL, then a
 * reply. The schema is compiled by both of structured output's recognizers, as the server tries
 * them: serve_json.c's compact subset (json_shape_compile) and serve_schema.c's GBNF
 * (schema_grammar); the reply is fed to each that compiles. Asserted: a refusal says why; a reply
 * fed at once, byte by byte, and through copies (before each byte; halfway, fed the rest at once)
 * gives the same answers; a reply either calls whole is one compact JSON text (json_check.h's
 * reading, written apart from the recognizers; strict UTF-8 where the schema's text is), cJSON
 * parses it, and it holds the schema (json_check.h's jv_valid: type, enum, const, properties,
 * required, additionalProperties, propertyNames, items, prefixItems, the counts, lengths and
 * bounds, allOf, anyOf, oneOf as anyOf, $ref; enum and const as their values of the type, the
 * keywords beside them unchecked, as both recognizers serve them), where the schema says one thing
 * (no name twice in an object; no enum or const where $ref, allOf, anyOf or oneOf merge schemas)
 * and cJSON can represent the reply (no \u0000). Nothing crashes, leaks or hangs.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_check.h"
#include "json_feed.h"
#include "serve_gbnf.h"
#include "serve_json.h"
#include "serve_schema.h"

typedef struct subject {
    const cJSON *schema;
    bool utf8;   /* the schema's text is strict UTF-8 (its names and values reach the reply as written) */
    bool judged; /* jv_valid applies: no name twice in an object, no enum where allOf and the rest merge */
} subject;

/* no object in v holds a name twice (cJSON keeps both; which one a reader takes is unsaid) */
static bool names_once(const cJSON *v) {
    const cJSON *a, *b;
    cJSON_ArrayForEach(a, v) {
        for (b = a->next; a->string && b; b = b->next)
            if (b->string && !strcmp(a->string, b->string)) return false;
        if (!names_once(a)) return false;
    }
    return true;
}

/* A reply the recognizer calls whole, as json_check.h reads it. */
static void check_whole(const subject *sub, const char *r, size_t n) {
    jfacts f;
    if (sub->utf8) assert(json_strict(r, n, &f));
    char *text = malloc(n + 1);
    assert(text);
    memcpy(text, r, n), text[n] = 0;
    cJSON *v = cJSON_ParseWithOpts(text, NULL, true); /* the whole text, nothing after it */
    assert(v);
    if (sub->judged && !strstr(text, "\\u0000")) {
        jschema js = {sub->schema, 0};
        assert(jv_valid(&js, sub->schema, v, 0));
    }
    cJSON_Delete(v);
    free(text);
}

static void shape_reply(const subject *sub, const json_shape *sh, const char *r, size_t n) {
    json_state whole;
    if (feed_agrees(sh, r, n, &whole) && json_state_done(&whole, sh)) check_whole(sub, r, n);
}

static void grammar_reply(const subject *sub, const gbnf_grammar *g, const char *r, size_t n) {
    gbnf_state *whole = gbnf_state_new(g), *bytes = gbnf_state_new(g), *copy = gbnf_state_new(g);
    assert(whole && bytes && copy);
    bool ok_whole = gbnf_state_feed(whole, r, n), ok_bytes = gbnf_state_feed(bytes, r, 0);
    for (size_t i = 0; i < n && ok_bytes; i++) {
        if (i == n / 2) { /* a copy halfway (one that holds no scratch yet), fed the rest at once */
            gbnf_state *half = gbnf_state_dup(bytes);
            assert(half);
            bool ok = gbnf_state_feed(half, r + i, n - i);
            assert(ok == ok_whole);
            if (ok) assert(gbnf_state_done(half) == gbnf_state_done(whole));
            gbnf_state_free(half);
        }
        assert(gbnf_state_copy(copy, bytes)); /* a copy fed the next byte answers as the original */
        bool c = gbnf_state_feed(copy, r + i, 1);
        ok_bytes = gbnf_state_feed(bytes, r + i, 1);
        assert(c == ok_bytes);
    }
    assert(ok_whole == ok_bytes);
    if (ok_whole) {
        assert(gbnf_state_done(whole) == gbnf_state_done(bytes));
        if (gbnf_state_done(whole)) check_whole(sub, r, n);
    }
    gbnf_state_free(whole), gbnf_state_free(bytes), gbnf_state_free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t slen = nul ? (size_t)(nul - data) : size;
    const char *reply = nul ? (const char *)nul + 1 : "";
    size_t rlen = nul ? size - slen - 1 : 0;
    cJSON *schema = cJSON_ParseWithLength((const char *)data, slen);
    if (!schema) return 0;
    bool merged_enum =
        (jv_has(schema, "enum") || jv_has(schema, "const")) &&
        (jv_has(schema, "$ref") || jv_has(schema, "allOf") || jv_has(schema, "anyOf") || jv_has(schema, "oneOf"));
    subject sub = {schema, utf8_strict((const char *)data, slen), names_once(schema) && !merged_enum};

    char err[512], kw[64];
    json_shape *sh = json_shape_compile(schema, err, sizeof err, kw);
    if (sh) {
        shape_reply(&sub, sh, reply, rlen);
        json_shape_free(sh);
    } else {
        assert(err[0] && memchr(kw, 0, 64)); /* a refusal says why */
    }
    gbnf_grammar *g = schema_grammar(schema, err, sizeof err, kw);
    if (g) {
        sub.utf8 = true; /* the grammar reads strict UTF-8 whatever its text */
        grammar_reply(&sub, g, reply, rlen);
        gbnf_free(g);
    } else {
        assert(err[0] && memchr(kw, 0, 64));
    }
    cJSON_Delete(schema);
    return 0;
}
