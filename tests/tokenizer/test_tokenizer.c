/*
 * test_tokenizer.c — the runtime's tokenizer against the reference implementation, on real
 * tokenizer files and a corpus of English, code, CJK, emoji, white space runs and invalid UTF-8.
 *
 * Usage: test_tokenizer REFERENCE.json CORPUS [NAME...]
 *
 * REFERENCE.json comes from reference.mjs (run by fetch.sh): per tokenizer the path of its
 * tokenizer.json or tokenizer.model and, per corpus text, the reference ids with and without the
 * post-processor's special tokens, the reference decoding of those ids, and for the Llama-2
 * vocabulary the ids SentencePiece itself gives. Every id must be identical. A tokenizer with an
 * "error" is a real file that must be refused with that message. Exits 77 (skipped) when the
 * reference could not be fetched.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rsr.h"
#include "read_file.h"

static int failures;
static void fail(const char *name, int index, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

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

static char *unhex_item(const cJSON *item, size_t *len) {
    return unhex(cJSON_IsString(item) ? item->valuestring : "", len);
}

/* Whether got[0, n) equals the reference text; reports the first difference if not. */
static int same_text(const char *name, int index, const char *what, const char *got, size_t n, const cJSON *want_hex) {
    size_t wn;
    char *want = unhex_item(want_hex, &wn);
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

static void fail(const char *name, int index, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
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
static int compare_ids(const char *name, int index, const char *what, const int32_t *got, int32_t n,
                       const cJSON *want) {
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

/* Two files of one vocabulary (a tokenizer.model and the tokenizer.json converted from it): every
 * token has the same piece and the same specialness, and the text of every piece, encoded with
 * each combination of flags, gives the same ids. */
static void compare_files(const char *name, rsr_tokenizer *t, const char *other_path) {
    size_t len;
    char *data = read_file(other_path, &len);
    rsr_tokenizer *u;
    if (!data || rsr_tokenizer_create(data, len, &u) != RSR_OK) {
        fail(name, -1, "same vocabulary", "cannot load %s", other_path);
        free(data);
        return;
    }
    free(data);
    rsr_tokenizer_info a, b;
    rsr_tokenizer_get_info(t, &a), rsr_tokenizer_get_info(u, &b);
    if (a.vocab_size != b.vocab_size || a.bos_token_id != b.bos_token_id || a.eos_token_id != b.eos_token_id)
        fail(name, -1, "same vocabulary", "%d/%d tokens, bos %d/%d, eos %d/%d", a.vocab_size, b.vocab_size,
             a.bos_token_id, b.bos_token_id, a.eos_token_id, b.eos_token_id);
    int32_t x[1024], y[1024], nx, ny;
    long encodings = 0;
    for (int32_t id = 0; id < a.vocab_size && id < b.vocab_size; id++) {
        size_t lx, ly;
        const char *px = rsr_tokenizer_token_piece(t, id, &lx), *py = rsr_tokenizer_token_piece(u, id, &ly);
        if (lx != ly || memcmp(px, py, lx) != 0 || rsr_tokenizer_is_special(t, id) != rsr_tokenizer_is_special(u, id)) {
            fail(name, id, "same piece", "'%.*s' vs '%.*s'", (int)lx, px, (int)ly, py);
            continue;
        }
        for (uint32_t flags = 0; flags < 4; flags++, encodings++)
            if (rsr_tokenizer_encode(t, px, (ptrdiff_t)lx, flags, x, 1024, &nx) != RSR_OK ||
                rsr_tokenizer_encode(u, px, (ptrdiff_t)lx, flags, y, 1024, &ny) != RSR_OK || nx != ny ||
                memcmp(x, y, sizeof *x * (size_t)nx) != 0)
                fail(name, id, "same ids for the piece's text", "flags %u: %d ids vs %d", flags, nx, ny);
    }
    printf("%s: %d tokens and %ld encodings of their texts identical to %s\n", name, a.vocab_size, encodings,
           other_path);
    rsr_tokenizer_free(u);
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
    rsr_status st = rsr_tokenizer_create(json, len, &t);
    free(json);
    const cJSON *error = cJSON_GetObjectItem(ref, "error");
    if (cJSON_IsString(error)) { /* a file to refuse, with a message that says why */
        if (st != RSR_ERR_FORMAT || !strstr(rsr_tokenizer_errmsg(t), error->valuestring))
            fail(name, -1, "load", "status %d, '%s'; want a refusal saying '%s'", st, rsr_tokenizer_errmsg(t),
                 error->valuestring);
        else
            printf("%s: refused: %s\n", name, rsr_tokenizer_errmsg(t));
        rsr_tokenizer_free(t);
        return;
    }
    if (st != RSR_OK) {
        fail(name, -1, "load", "%s", rsr_tokenizer_errmsg(t));
        rsr_tokenizer_free(t);
        return;
    }
    rsr_tokenizer_info info;
    rsr_tokenizer_get_info(t, &info);
    const cJSON *vocab_size = cJSON_GetObjectItem(ref, "vocab_size");
    if (cJSON_IsNumber(vocab_size) && info.vocab_size != vocab_size->valueint)
        fail(name, -1, "vocabulary", "%d tokens, the reference %d", info.vocab_size, vocab_size->valueint);
    const cJSON *same_as = cJSON_GetObjectItem(ref, "same_as");
    if (cJSON_IsString(same_as)) compare_files(name, t, same_as->valuestring);
    if (cJSON_GetArraySize(cases) != ncorpus)
        fail(name, -1, "setup", "the reference has %d texts, the corpus %d", cJSON_GetArraySize(cases), ncorpus);
    int32_t cap = 1 << 16, n;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    size_t tcap = 1 << 20, tlen;
    char *out = malloc(tcap), *pieces = malloc(tcap);
    long tokens = 0, identical = 0;
    int index = 0, raw_checked = 0;
    for (const cJSON *c = cases->child; c && index < ncorpus; c = c->next, index++) {
        const text *x = &corpus[index];
        int ok = 1;
        /* Reference tokenizers read special tokens written in the text, hence PARSE_SPECIAL. */
        if (rsr_tokenizer_encode(t, x->p, (ptrdiff_t)x->len, RSR_ENCODE_ADD_SPECIAL | RSR_ENCODE_PARSE_SPECIAL, ids,
                                 cap, &n) != RSR_OK) {
            fail(name, index, "encode", "%s", rsr_tokenizer_errmsg(t));
            continue;
        }
        ok &= compare_ids(name, index, "ids", ids, n, cJSON_GetObjectItem(c, "ids"));
        tokens += n;
        if (rsr_tokenizer_decode(t, ids, n, 0, out, tcap, &tlen) != RSR_OK)
            fail(name, index, "decode", "%s", rsr_tokenizer_errmsg(t)), ok = 0;
        else
            ok &= same_text(name, index, "decode", out, tlen, cJSON_GetObjectItem(c, "text"));
        if (rsr_tokenizer_decode(t, ids, n, RSR_DECODE_SKIP_SPECIAL, out, tcap, &tlen) != RSR_OK)
            fail(name, index, "decode skipping special tokens", "%s", rsr_tokenizer_errmsg(t)), ok = 0;
        else
            ok &= same_text(name, index, "decode skipping special tokens", out, tlen,
                            cJSON_GetObjectItem(c, "text_skip_special"));

        if (rsr_tokenizer_encode(t, x->p, (ptrdiff_t)x->len, RSR_ENCODE_PARSE_SPECIAL, ids, cap, &n) != RSR_OK)
            fail(name, index, "encode without added special tokens", "%s", rsr_tokenizer_errmsg(t)), ok = 0;
        else
            ok &= compare_ids(name, index, "ids without added special tokens", ids, n,
                              cJSON_GetObjectItem(c, "ids_plain"));

        /* SentencePiece's own ids: no special tokens read in the text, none added. */
        const cJSON *raw = cJSON_GetObjectItem(c, "ids_raw");
        if (raw && rsr_tokenizer_encode(t, x->p, (ptrdiff_t)x->len, 0, ids, cap, &n) != RSR_OK)
            fail(name, index, "encode as SentencePiece does", "%s", rsr_tokenizer_errmsg(t)), ok = 0;
        else if (raw)
            ok &= compare_ids(name, index, "ids as SentencePiece gives them", ids, n, raw), raw_checked++;

        /* Byte-level BPE loses nothing: the pieces of the ids spell the text as a UTF-8 decoder
         * reads the corpus bytes (or, after a Unicode normalizer, the normalized text: "spelled"). */
        if (strcmp(info.kind, "byte-level BPE") == 0) {
            size_t plen = 0;
            for (int32_t i = 0; i < n; i++) {
                size_t l;
                const char *p = rsr_tokenizer_token_piece(t, ids[i], &l);
                memcpy(pieces + plen, p, l);
                plen += l;
            }
            const cJSON *spelled = cJSON_GetObjectItem(c, "spelled");
            ok &= same_text(name, index, "token pieces spell the text", pieces, plen,
                            spelled ? spelled : cJSON_GetArrayItem(texts, index));
        }
        identical += ok;
    }
    printf("%s (%s, %d tokens): %ld/%d texts identical to the reference%s, %ld tokens\n", name, info.kind,
           info.vocab_size, identical, ncorpus, raw_checked ? " and to SentencePiece" : "", tokens);
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
