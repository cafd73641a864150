/*
 * fuzz_gbnf.c — the grammar field's GBNF (tools/serve/grammar/serve_gbnf.c) on arbitrary input: the bytes up to
 * the first NUL are the grammar (a request's, untrusted), the rest a reply fed to it. Compiling
 * either gives a grammar or a message; a reply fed at once, byte by byte and through copies gives
 * the same answers, and a spoilt state stays spoilt; nothing crashes, leaks or hangs.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve_gbnf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t glen = nul ? (size_t)(nul - data) : size;
    const char *reply = nul ? (const char *)nul + 1 : "";
    size_t rlen = nul ? size - glen - 1 : 0;
    char err[256] = "";
    gbnf_grammar *g = gbnf_compile((const char *)data, glen, err, sizeof err);
    if (!g) {
        assert(err[0]); /* a refusal says why */
        return 0;
    }
    gbnf_state *whole = gbnf_state_new(g), *bytes = gbnf_state_new(g), *copy = gbnf_state_new(g);
    assert(whole && bytes && copy);
    /* (feeding nothing says whether the empty reply is alive: a grammar may start past the limits) */
    bool ok_whole = gbnf_state_feed(whole, reply, rlen), ok_bytes = gbnf_state_feed(bytes, reply, 0);
    for (size_t i = 0; i < rlen && ok_bytes; i++) {
        assert(gbnf_state_copy(copy, bytes)); /* a copy fed the next byte answers as the original */
        bool c = gbnf_state_feed(copy, reply + i, 1);
        ok_bytes = gbnf_state_feed(bytes, reply + i, 1);
        assert(c == ok_bytes);
    }
    assert(ok_whole == ok_bytes);
    if (ok_whole) assert(gbnf_state_done(whole) == gbnf_state_done(bytes));
    gbnf_state_free(whole), gbnf_state_free(bytes), gbnf_state_free(copy);
    gbnf_free(g);
    return 0;
}
