/*
 * fuzz_json.c — structured output's JSON recognizer (tools/serve/grammar/serve_json.c) on arbitrary
 * replies, read as response_format json_object reads them (an object of anything) and as the schema
 * `true` does (any value). Asserted, for each: a reply fed at once, byte by byte, and through copies
 * (before each byte, and of the state halfway fed the rest at once) gives the same answers;
 * json_object takes exactly what `true` takes that begins with '{'; a whole reply is exactly a
 * compact JSON text (json_check.h's reading, written apart from the recognizer) within the
 * recognizer's documented limits (17 frames deep, numbers of 24 characters, and no \u escape of a
 * surrogate, which cJSON refuses alone), and cJSON parses it to a value of that type; a reply taken
 * so far can still be finished (false means "no valid reply continues": bytes tried in a fixed
 * order close every value open); and whatever cJSON parses from the input, written compact by
 * cJSON, is taken whole where it is within those limits. Nothing crashes, leaks or hangs.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_check.h"
#include "json_feed.h"
#include "serve_json.h"

#define MAX_NUMBER 24 /* serve_json.c: "a number has at most 24 characters" */

typedef struct reading {
    bool ok, done; /* taken so far; a whole value */
} reading;

/* A reply taken so far (st) finished a byte at a time, each the first of `order` taken: it must
 * reach a whole value, and the text then be one (the frames open close in a few bytes each). */
static void finish(const json_shape *sh, const json_state *st, const char *r, size_t n) {
    static const char order[] = "\"}]0:rueals\x80\x90\xa0{";
    enum { MOST = 16 * JSON_MAX_DEPTH };
    char *text = malloc(n + MOST);
    assert(text);
    memcpy(text, r, n);
    json_state cur, next;
    json_state_init(&cur, sh), json_state_init(&next, sh);
    json_state_copy(&cur, st);
    size_t len = n;
    while (!json_state_done(&cur, sh)) {
        assert(len < n + MOST); /* not finished in MOST bytes */
        size_t k = 0;
        for (; k < sizeof order - 1; k++) {
            json_state_copy(&next, &cur);
            if (json_state_feed(&next, sh, order + k, 1)) break;
        }
        assert(k < sizeof order - 1); /* taken so far, yet no byte continues it */
        json_state_copy(&cur, &next);
        text[len++] = order[k];
    }
    jfacts f;
    assert(json_strict(text, len, &f));
    free(text);
}

static reading read_reply(const json_shape *sh, const char *r, size_t n) {
    json_state whole;
    bool ok = feed_agrees(sh, r, n, &whole);
    reading out = {ok, ok && json_state_done(&whole, sh)};
    if (ok) finish(sh, &whole, r, n);
    return out;
}

/* s[0, n) is a compact JSON text the recognizer must take whole: within its limits */
static bool within_limits(const char *s, size_t n) {
    jfacts f;
    return json_strict(s, n, &f) && f.depth <= JSON_MAX_DEPTH && f.longest <= MAX_NUMBER && !f.surrogate;
}

static void check(const json_shape *object, const json_shape *any, const char *r, size_t n) {
    reading o = read_reply(object, r, n), a = read_reply(any, r, n);
    bool brace = n == 0 || r[0] == '{';
    assert(o.ok == (a.ok && brace) && o.done == (a.done && brace));
    assert(a.done == within_limits(r, n));
    if (!a.done) return;
    char *text = malloc(n + 1);
    assert(text);
    memcpy(text, r, n), text[n] = 0;
    cJSON *v = cJSON_ParseWithOpts(text, NULL, true); /* the whole text, nothing after it */
    assert(v && (cJSON_IsObject(v) || !o.done));
    cJSON_Delete(v);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256], kw[64];
    cJSON *yes = cJSON_CreateTrue();
    json_shape *object = json_shape_compile(NULL, err, sizeof err, kw),
               *any = json_shape_compile(yes, err, sizeof err, kw);
    assert(yes && object && any);
    check(object, any, (const char *)data, size);
    /* what cJSON reads (white space, any value), as cJSON writes it: compact */
    cJSON *v = cJSON_ParseWithLength((const char *)data, size);
    char *text = v ? cJSON_PrintUnformatted(v) : NULL;
    if (text) check(object, any, text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(v), cJSON_Delete(yes);
    json_shape_free(object), json_shape_free(any);
    return 0;
}
