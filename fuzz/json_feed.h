/*
 * json_feed.h — what both fuzzers of the JSON recognizer (fuzz_json.c, fuzz_schema.c) assert of
 * one reply: fed to a state of shape sh at once, a byte at a time, through a copy before each
 * byte, and through a copy of the state halfway fed the rest at once, the recognizer gives the
 * same answers (taken so far, whole).
 */
#ifndef RSRC_FUZZ_JSON_FEED_H
#define RSRC_FUZZ_JSON_FEED_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>

#include "serve_json.h"

/* whole: the state fed r[0, n) at once; returns whether the reply is taken so far */
static bool feed_agrees(const json_shape *sh, const char *r, size_t n, json_state *whole) {
    json_state bytes, copy;
    json_state_init(whole, sh), json_state_init(&bytes, sh), json_state_init(&copy, sh);
    bool ok_whole = json_state_feed(whole, sh, r, n), ok_bytes = true;
    for (size_t i = 0; i < n && ok_bytes; i++) {
        if (i == n / 2) { /* a copy halfway, fed the rest at once, ends as the whole */
            json_state half;
            json_state_init(&half, sh);
            json_state_copy(&half, &bytes);
            bool ok = json_state_feed(&half, sh, r + i, n - i);
            assert(ok == ok_whole);
            if (ok) assert(json_state_done(&half, sh) == json_state_done(whole, sh));
        }
        json_state_copy(&copy, &bytes); /* a copy fed the next byte answers as the original */
        bool c = json_state_feed(&copy, sh, r + i, 1);
        ok_bytes = json_state_feed(&bytes, sh, r + i, 1);
        assert(c == ok_bytes);
        if (c) assert(json_state_done(&copy, sh) == json_state_done(&bytes, sh));
    }
    assert(ok_whole == ok_bytes);
    if (ok_whole) assert(json_state_done(whole, sh) == json_state_done(&bytes, sh));
    return ok_whole;
}

#endif
