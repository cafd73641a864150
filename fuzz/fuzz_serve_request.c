/*
 * fuzz_serve_request.c — rsr-serve's request reading (serve_parse, serve_parse_all,
 * serve_embed_parse) and text making (serve_utf8_complete, serve_utf8_clean) on arbitrary bytes.
 * The first byte picks the endpoint (bit 1: embeddings, else bit 0: chat or completions); the rest
 * is the body. A request read must hold what the reader promises (a prompt, text or ids, or
 * messages; every prompt of a list read in its place; at most SERVE_MAX_STOP non-empty stop
 * strings, sampling in range; for embeddings 1 to SERVE_MAX_EMBED_INPUTS inputs, each a text or
 * ids below the vocabulary); the cleaned text must be valid UTF-8, and the complete prefix must
 * end where no character is cut.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

rsr_api api; /* serve.h declares it for the engine; unused here */

/* A strict UTF-8 check (no surrogates, no overlong forms, nothing above U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char b = s[i];
        size_t need = b < 0x80                 ? 1
                      : b >= 0xC2 && b <= 0xDF ? 2
                      : b >= 0xE0 && b <= 0xEF ? 3
                      : b >= 0xF0 && b <= 0xF4 ? 4
                                               : 0;
        if (!need || i + need > n) return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
        for (size_t k = 1; k < need; k++, lo = 0x80, hi = 0xBF)
            if (s[i + k] < lo || s[i + k] > hi) return 0;
        i += need;
    }
    return 1;
}

/* /v1/embeddings' reader, the vocabulary 1000 ids */
static void check_embed_parse(const char *body, size_t len) {
    serve_embed_params p;
    char err[512];
    const char *param;
    if (serve_embed_parse(body, len, 1000, &p, err, sizeof err, &param)) {
        assert(p.n_in >= 1 && p.n_in <= SERVE_MAX_EMBED_INPUTS && (p.list || p.n_in == 1));
        for (int32_t i = 0; i < p.n_in; i++) {
            const serve_embed_input *x = &p.in[i];
            assert(x->text ? !x->ids : x->ids && x->n_ids > 0);
            for (int32_t k = 0; !x->text && k < x->n_ids; k++) assert(x->ids[k] >= 0 && x->ids[k] < 1000);
        }
        assert(p.dimensions == -1 || p.dimensions > 0);
        serve_embed_params_free(&p);
    } else {
        assert(memchr(err, 0, sizeof err) && *err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    bool chat = data[0] & 1;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 2) {
        check_embed_parse(body, len);
        return 0;
    }
    serve_params p;
    char err[512];
    const char *param;
    if (serve_parse(body, len, chat, &p, err, sizeof err, &param)) {
        assert(p.chat == chat);
        assert(chat ? p.messages && p.n_messages > 0 && !p.prompt && !p.prompt_ids
                    : !p.messages && (p.prompt ? !p.prompt_ids : p.prompt_ids && p.n_prompt_ids > 0));
        assert(p.n_prompts >= 1 && p.n_prompts <= SERVE_MAX_PROMPTS && p.index == 0 &&
               (p.prompt_list || p.n_prompts == 1));
        for (int32_t i = 0; i < p.n_prompt_ids; i++) assert(p.prompt_ids[i] >= 0);
        for (int32_t i = 0; i < p.n_messages; i++) assert(p.messages[i].role && p.messages[i].content);
        assert(p.n_stop >= 0 && p.n_stop <= SERVE_MAX_STOP);
        for (int32_t i = 0; i < p.n_stop; i++) assert(p.stop[i] && *p.stop[i]);
        assert(p.max_tokens >= -1);
        assert(p.sampler.temperature >= 0 && p.sampler.temperature <= 100);
        assert(p.sampler.top_p > 0 && p.sampler.top_p <= 1 && p.sampler.top_k >= 0);
        /* every prompt read apart, each in its place with the same fields */
        serve_params *ps;
        int32_t n;
        assert(serve_parse_all(body, len, chat, &ps, &n, err, sizeof err, &param) && n == p.n_prompts);
        for (int32_t k = 0; k < n; k++) {
            assert(ps[k].index == k && ps[k].n_prompts == n && ps[k].max_tokens == p.max_tokens);
            assert(chat || (ps[k].prompt ? !ps[k].prompt_ids : ps[k].prompt_ids && ps[k].n_prompt_ids > 0));
            serve_params_free(&ps[k]);
        }
        free(ps);
        serve_params_free(&p);
    } else {
        assert(memchr(err, 0, sizeof err) && *err);
        assert(!p.prompt && !p.prompt_ids && !p.messages && !p.n_stop);
    }
    size_t whole = serve_utf8_complete(body, len);
    assert(whole <= len && len - whole <= 3);
    char *clean = serve_utf8_clean(body, whole);
    assert(clean && valid_utf8((const unsigned char *)clean, strlen(clean)));
    /* valid text without NUL bytes comes through the cleaning as it is */
    if (valid_utf8((const unsigned char *)body, whole) && !memchr(body, 0, whole))
        assert(strlen(clean) == whole && !memcmp(clean, body, whole));
    free(clean);
    return 0;
}
