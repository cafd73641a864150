/*
 * test_tokenizer.c — the runtime's tokenizer against the reference implementation, on real
 * tokenizer files and a corpus of English, code, CJK, emoji, white space runs and invalid UTF-8.
 *
 * Usage: test_tokenizer REFERENCE.json CORPUS [NAME...]
 *
 * REFERENCE.json comes from reference.mjs (run by fetch.sh): per tokenizer the path of its
 * tokenizer.json and, per corpus text, the reference ids with and without the post-processor's
 * special tokens and the reference decoding of those ids. Every id must be identical. Exits 77
 * (skipped) when the reference could not be fetched.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rsr.h"

static int failures;
static void fail(const char *name, int index, const char *what, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap) buf = realloc(buf, (cap *= 2) + 1);
    fclose(f);
    if (buf) buf[n] = 0;
    *len = n;
    return buf;
}

/* The corpus: texts separated by "\n@@@@\n", then all of them joined by "\n" as one more. */
typedef struct text {
    const char *p;
    size_t len;
} text;

static int split_corpus(char *buf, size_t len, text *out, int max) {
    static const char sep[] = "\n@@@@\n";
    int n = 0;
    size_t at = 0;
    for (size_t i = 0; i + 6 <= len && n < max - 2; i++)
        if (memcmp(buf + i, sep, 6) == 0) {
            out[n++] = (text){buf + at, i - at};
            at = i + 6, i += 5;
        }
    out[n++] = (text){buf + at, len - at};
    size_t total = 0;
    for (int i = 0; i < n; i++) total += out[i].len + 1;
    char *joined = malloc(total), *w = joined;
    for (int i = 0; i < n; i++) {
        if (i) *w++ = '\n';
        memcpy(w, out[i].p, out[i].len);
        w += out[i].len;
    }
    out[n++] = (text){joined, (size_t)(w - joined)};
    return n;
}

/* The reference writes texts as hex of their UTF-8 bytes; this turns them back into bytes. */
static char *unhex(const cJSON *item, size_t *len) {
    const char *h = cJSON_IsString(item) ? item->valuestring : "";
    size_t n = strlen(h) / 2;
    char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    out[n] = 0;
    *len = n;
    return out;
}

/* Whether got[0, n) equals the reference text; reports the first difference if not. */
static int same_text(const char *name, int index, const char *what, const char *got, size_t n, const cJSON *want_hex) {
    size_t wn;
    char *want = unhex(want_hex, &wn);
    size_t i = 0;
    while (i < n && i < wn && got[i] == want[i]) i++;
    int same = i == n && i == wn;
    if (!same) {
        size_t from = i > 20 ? i - 20 : 0;
        fail(name, index, what, "first difference at byte %zu of %zu/%zu; ours '%.*s', reference '%.*s'", i, n, wn,
             (int)((n - from) < 40 ? n - from : 40), got + from, (int)((wn - from) < 40 ? wn - from : 40), want + from);
    }
    free(want);
    return same;
}

static void fail(const char *name, int index, const char *what, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail(const char *name, int index, const char *what, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s text %d: %s: ", name, index, what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures++;
}

/* Compares ids with a JSON array; on a difference shows the neighbourhood of the first one. */
static int compare_ids(const char *name, int index, const char *what, const int32_t *got, int32_t n, const cJSON *want) {
    int32_t wn = cJSON_GetArraySize(want), i = 0;
    const cJSON *w = want->child;
    for (; i < n && w; i++, w = w->next)
        if (got[i] != w->valueint) break;
    if (i == n && i == wn) return 1;
    char buf[512];
    int k = 0;
    int32_t from = i > 3 ? i - 3 : 0;
    k += snprintf(buf + k, sizeof buf - (size_t)k, "first difference at %d of %d/%d; ours:", i, n, wn);
    for (int32_t j = from; j < n && j < i + 5; j++) k += snprintf(buf + k, sizeof buf - (size_t)k, " %d", got[j]);
    k += snprintf(buf + k, sizeof buf - (size_t)k, "; reference:");
    for (int32_t j = from; j < wn && j < i + 5; j++)
        k += snprintf(buf + k, sizeof buf - (size_t)k, " %d", cJSON_GetArrayItem(want, j)->valueint);
    fail(name, index, what, "%s", buf);
    return 0;
}

static void check_tokenizer(const cJSON *ref, const cJSON *texts, const text *corpus, int ncorpus) {
    const char *name = cJSON_GetObjectItem(ref, "name")->valuestring;
    const char *path = cJSON_GetObjectItem(ref, "path")->valuestring;
    const cJSON *cases = cJSON_GetObjectItem(ref, "cases");
    size_t len;
    char *json = read_file(path, &len);
    if (!json) {
        fail(name, -1, "setup", "cannot read %s", path);
        return;
    }
    rsr_tokenizer *t;
    if (rsr_tokenizer_create(json, len, &t) != RSR_OK) {
        fail(name, -1, "load", "%s", rsr_tokenizer_errmsg(t));
        rsr_tokenizer_free(t);
        free(json);
        return;
    }
    free(json);
    rsr_tokenizer_info info;
    rsr_tokenizer_get_info(t, &info);
    if (cJSON_GetArraySize(cases) != ncorpus) fail(name, -1, "setup", "the reference has %d texts, the corpus %d",
                                                   cJSON_GetArraySize(cases), ncorpus);
    int32_t cap = 1 << 16, n;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    size_t tcap = 1 << 20, tlen;
    char *out = malloc(tcap), *pieces = malloc(tcap);
    long tokens = 0, identical = 0;
    int index = 0;
    for (const cJSON *c = cases->child; c && index < ncorpus; c = c->next, index++) {
        const text *x = &corpus[index];
        int ok = 1;
        /* Reference tokenizers read special tokens written in the text, hence PARSE_SPECIAL. */
        if (rsr_tokenizer_encode(t, x->p, (ptrdiff_t)x->len, RSR_ENCODE_ADD_SPECIAL | RSR_ENCODE_PARSE_SPECIAL, ids, cap,
                                 &n) != RSR_OK) {
            fail(name, index, "encode", "%s", rsr_tokenizer_errmsg(t));
            continue;
        }
        ok &= compare_ids(name, index, "ids", ids, n, cJSON_GetObjectItem(c, "ids"));
        tokens += n;
        if (rsr_tokenizer_decode(t, ids, n, 0, out, tcap, &tlen) != RSR_OK)
            fail(name, index, "decode", "%s", rsr_tokenizer_errmsg(t)), ok = 0;
        else ok &= same_text(name, index, "decode", out, tlen, cJSON_GetObjectItem(c, "text"));
        if (rsr_tokenizer_decode(t, ids, n, RSR_DECODE_SKIP_SPECIAL, out, tcap, &tlen) != RSR_OK)
            fail(name, index, "decode skipping special tokens", "%s", rsr_tokenizer_errmsg(t)), ok = 0;
        else ok &= same_text(name, index, "decode skipping special tokens", out, tlen, cJSON_GetObjectItem(c, "text_skip_special"));

        if (rsr_tokenizer_encode(t, x->p, (ptrdiff_t)x->len, RSR_ENCODE_PARSE_SPECIAL, ids, cap, &n) != RSR_OK)
            fail(name, index, "encode without added special tokens", "%s", rsr_tokenizer_errmsg(t)), ok = 0;
        else ok &= compare_ids(name, index, "ids without added special tokens", ids, n, cJSON_GetObjectItem(c, "ids_plain"));

        /* Byte-level BPE loses nothing: the pieces of the ids spell the text as a UTF-8 decoder
         * reads the corpus bytes. */
        if (strcmp(info.kind, "byte-level BPE") == 0) {
            size_t plen = 0;
            for (int32_t i = 0; i < n; i++) {
                size_t l;
                const char *p = rsr_tokenizer_token_piece(t, ids[i], &l);
                memcpy(pieces + plen, p, l);
                plen += l;
            }
            ok &= same_text(name, index, "token pieces spell the text", pieces, plen, cJSON_GetArrayItem(texts, index));
        }
        identical += ok;
    }
    printf("%s (%s, %d tokens): %ld/%d texts identical to the reference, %ld tokens\n", name, info.kind, info.vocab_size,
           identical, ncorpus, tokens);
    free(ids), free(out), free(pieces);
    rsr_tokenizer_free(t);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_tokenizer REFERENCE.json CORPUS [NAME...]\n");
        return 2;
    }
    size_t len, clen;
    char *ref_text = read_file(argv[1], &len);
    if (!ref_text) {
        printf("%s is missing (the reference could not be fetched): skipped\n", argv[1]);
        return 77;
    }
    char *corpus_bytes = read_file(argv[2], &clen);
    if (!corpus_bytes) {
        fprintf(stderr, "%s: cannot read\n", argv[2]);
        return 1;
    }
    cJSON *ref = cJSON_ParseWithLength(ref_text, len);
    if (!ref) {
        fprintf(stderr, "%s: not JSON\n", argv[1]);
        return 1;
    }
    text corpus[256];
    int ncorpus = split_corpus(corpus_bytes, clen, corpus, 256);
    const cJSON *texts = cJSON_GetObjectItem(ref, "texts");
    int checked = 0;
    for (const cJSON *t = cJSON_GetObjectItem(ref, "tokenizers")->child; t; t = t->next) {
        const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
        int wanted = argc == 3;
        for (int i = 3; i < argc; i++) wanted |= strcmp(argv[i], name) == 0;
        if (!wanted) continue;
        check_tokenizer(t, texts, corpus, ncorpus);
        checked++;
    }
    if (!checked) {
        fprintf(stderr, "no tokenizer of that name in %s\n", argv[1]);
        return 1;
    }
    cJSON_Delete(ref);
    free(ref_text);
    free(corpus_bytes);
    free((void *)corpus[ncorpus - 1].p);
    return failures ? 1 : 0;
}
