/*
 * test_sentencepiece.c — a SentencePiece tokenizer.model, written here byte by byte, read by the
 * runtime: merge order by score (ties by piece id), the dummy prefix, whitespace escaping and
 * squeezing, unknown characters fused into one <unk>, byte fallback, control pieces as special
 * tokens, decoding, and every malformation refused with the field it concerns.
 *
 * The vocabulary (id: piece, score): 0 <unk>, 1 <s>, 2 </s> (control), then
 * 3 ▁a 0, 4 ab -1, 5 ▁ab -2, 6 bc -3, 7 ▁b -4, 8 ca -5, 9 ▁c -6, 10 abc -7, 11 ▁ -8, 12 a -9,
 * 13 b -10, 14 c -11, 15 cc -12, and with byte fallback the 256 pieces <0x00>..<0xFF> after.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsr.h"

#include "expect.h"

#define SP "\xe2\x96\x81" /* ▁ */

/* ---- a protobuf writer, just enough for a ModelProto ---- */

typedef struct buf {
    uint8_t p[8192];
    size_t n, normalizer_at; /* where normalizer_spec begins */
} buf;

static void put_varint(buf *b, uint64_t v) {
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        b->p[b->n++] = byte | (v ? 0x80 : 0);
    } while (v);
}
static void put_int(buf *b, uint32_t field, int64_t v) { put_varint(b, field << 3 | 0), put_varint(b, (uint64_t)v); }
static void put_bytes(buf *b, uint32_t field, const void *data, size_t n) {
    put_varint(b, field << 3 | 2), put_varint(b, n);
    memcpy(b->p + b->n, data, n);
    b->n += n;
}
static void put_float(buf *b, uint32_t field, float f) {
    put_varint(b, field << 3 | 5);
    memcpy(b->p + b->n, &f, 4); /* little-endian hosts only, as the runtime is built for */
    b->n += 4;
}
static void put_piece(buf *b, const char *text, float score, int type) {
    buf m = {.n = 0};
    put_bytes(&m, 1, text, strlen(text));
    put_float(&m, 2, score);
    put_int(&m, 3, type);
    put_bytes(b, 1, m.p, m.n);
}

typedef struct options {
    int model_type, byte_fallback, add_dummy_prefix, remove_extra_whitespaces, unk_id;
} options;

static buf *model_proto(options o) {
    static const char *const normal[] = {SP "a", "ab", SP "ab", "bc", SP "b", "ca", SP "c",
                                         "abc",  SP,   "a",     "b",  "c",    "cc"};
    buf *b = calloc(1, sizeof *b);
    put_piece(b, "<unk>", 0, 2);
    put_piece(b, "<s>", 0, 3);
    put_piece(b, "</s>", 0, 3);
    for (int i = 0; i < 13; i++) put_piece(b, normal[i], (float)-i, 1);
    for (int i = 0; o.byte_fallback && i < 256; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", i);
        put_piece(b, name, 0, 6);
    }
    buf trainer = {.n = 0}, normalizer = {.n = 0};
    put_int(&trainer, 3, o.model_type);
    put_int(&trainer, 35, o.byte_fallback);
    put_int(&trainer, 40, o.unk_id), put_int(&trainer, 41, 1), put_int(&trainer, 42, 2), put_int(&trainer, 43, -1);
    put_bytes(b, 2, trainer.p, trainer.n);
    b->normalizer_at = b->n;
    put_bytes(&normalizer, 1, "identity", 8);
    put_int(&normalizer, 3, o.add_dummy_prefix);
    put_int(&normalizer, 4, o.remove_extra_whitespaces);
    put_int(&normalizer, 5, 1);
    put_bytes(b, 3, normalizer.p, normalizer.n);
    return b;
}

static const options llama = {2, 0, 1, 0, 0}; /* BPE, dummy prefix, spaces kept as they are */

static rsr_tokenizer *open_model(options o) {
    buf *b = model_proto(o);
    rsr_tokenizer *t;
    rsr_status st = rsr_tokenizer_create((const char *)b->p, b->n, &t);
    EXPECT(st == RSR_OK, "create: %s", rsr_tokenizer_errmsg(t));
    free(b);
    if (st == RSR_OK) return t;
    rsr_tokenizer_free(t);
    return NULL;
}

static int same_ids(const int32_t *a, int32_t n, const int32_t *b, int32_t m) {
    return n == m && (n == 0 || memcmp(a, b, sizeof *a * (size_t)n) == 0);
}

#define ENCODE_IS(t, text, flags, ...)                                                                                 \
    do {                                                                                                               \
        const int32_t want_[] = {__VA_ARGS__};                                                                         \
        int32_t got_[64] = {0}, n_ = -1;                                                                               \
        rsr_status st_ = rsr_tokenizer_encode(t, text, -1, flags, got_, 64, &n_);                                      \
        EXPECT(st_ == RSR_OK && same_ids(got_, n_, want_, (int32_t)(sizeof want_ / sizeof *want_)),                    \
               "encode(\"%s\", %d): status %d, %d ids: %d %d %d %d", text, flags, st_, n_, got_[0], got_[1], got_[2],  \
               got_[3]);                                                                                               \
    } while (0)

static void test_encode(void) {
    rsr_tokenizer *t = open_model(llama);
    if (!t) return;
    rsr_tokenizer_info info;
    rsr_tokenizer_get_info(t, &info);
    EXPECT(info.vocab_size == 16 && info.num_added_tokens == 3 && info.bos_token_id == 1 && info.eos_token_id == 2 &&
               !strcmp(info.kind, "BPE") && info.chat_template && !strcmp(info.chat_template, "llama2"),
           "info: %d tokens, %d added, bos %d eos %d, %s, %s", info.vocab_size, info.num_added_tokens,
           info.bos_token_id, info.eos_token_id, info.kind, info.chat_template ? info.chat_template : "no template");
    /* "▁ab▁abc": (▁ a) has the best score, leftmost first; then (▁a b) twice; (▁ab c) is no piece. */
    ENCODE_IS(t, "ab abc", 0, 5, 5, 14);
    ENCODE_IS(t, "ab abc", RSR_ENCODE_ADD_SPECIAL, 1, 5, 5, 14);
    /* "▁cab": (a b) at -1 beats (c a) at -5, which would overlap it; then (▁ c) at -6. */
    ENCODE_IS(t, "cab", 0, 9, 4);
    /* Two splits give "abc": whichever the pairs are, the piece is the same. */
    ENCODE_IS(t, "xabc", 0, 11, 0, 10);
    /* Spaces are kept: "▁▁▁ab" has no (▁ ▁) piece. */
    ENCODE_IS(t, "  ab", 0, 11, 11, 5);
    /* No byte fallback: a run of unknown characters is one <unk>. */
    ENCODE_IS(t,
              "d\xc3\xa9"
              "d",
              0, 11, 0);
    /* Control pieces are special tokens: matched in text only when asked. */
    ENCODE_IS(t, "<s>ab", RSR_ENCODE_PARSE_SPECIAL, 1, 5);
    ENCODE_IS(t, "<s>ab", 0, 11, 0, 4); /* "<", "s", ">" are no pieces: one <unk> between ▁ and ab */
    ENCODE_IS(t, "", RSR_ENCODE_ADD_SPECIAL, 1);

    int32_t ids[] = {1, 5, 5, 14, 0, 2};
    char out[64];
    size_t len;
    EXPECT(rsr_tokenizer_decode(t, ids, 6, 0, out, sizeof out, &len) == RSR_OK && !strcmp(out, "<s> ab abc<unk></s>"),
           "decode: '%s'", out);
    EXPECT(rsr_tokenizer_decode(t, ids + 1, 3, 0, out, sizeof out, &len) == RSR_OK && !strcmp(out, "ab abc"),
           "decode drops the dummy prefix's space: '%s'", out);
    EXPECT(rsr_tokenizer_decode(t, ids, 6, RSR_DECODE_SKIP_SPECIAL, out, sizeof out, &len) == RSR_OK &&
               !strcmp(out, "ab abc"),
           "decode skipping special tokens: '%s'", out);
    rsr_tokenizer_free(t);

    /* remove_extra_whitespaces: no space at either end and none doubled, before the prefix. */
    options squeeze = llama;
    squeeze.remove_extra_whitespaces = 1;
    if ((t = open_model(squeeze))) {
        ENCODE_IS(t, "  ab   abc  ", 0, 5, 5, 14);
        int32_t none[4], n = -1;
        EXPECT(rsr_tokenizer_encode(t, "   ", -1, 0, none, 4, &n) == RSR_OK && n == 0, "spaces alone: %d ids", n);
        rsr_tokenizer_free(t);
    }
    /* Without the dummy prefix, a word at the start has no ▁. */
    options bare = llama;
    bare.add_dummy_prefix = 0;
    if ((t = open_model(bare))) {
        ENCODE_IS(t, "ab abc", 0, 4, 5, 14);
        rsr_tokenizer_free(t);
    }
    /* Byte fallback: an unknown character becomes its UTF-8 bytes, and decodes back. */
    options bytes = llama;
    bytes.byte_fallback = 1;
    if ((t = open_model(bytes))) {
        ENCODE_IS(t, "a\xc3\xa9", 0, 3, 16 + 0xC3, 16 + 0xA9);
        int32_t e[] = {3, 16 + 0xC3, 16 + 0xA9};
        EXPECT(rsr_tokenizer_decode(t, e, 3, 0, out, sizeof out, &len) == RSR_OK && !strcmp(out, "a\xc3\xa9"),
               "byte pieces decode to bytes: '%s'", out);
        rsr_tokenizer_free(t);
    }
}

/* ---- malformed files: refused, with the field named ---- */

static void expect_refused(const char *what, const void *data, size_t n, const char *message) {
    rsr_tokenizer *t;
    rsr_status st = rsr_tokenizer_create(data, n, &t);
    EXPECT(st == RSR_ERR_FORMAT && strstr(rsr_tokenizer_errmsg(t), message), "%s: status %d, '%s' lacks '%s'", what, st,
           rsr_tokenizer_errmsg(t), message);
    rsr_tokenizer_free(t);
}

static void test_malformed(void) {
    buf *b = model_proto(llama);
    /* Every prefix of the file is refused, but the one that ends where normalizer_spec would
     * begin: a model without one is whole (its fields take their defaults). */
    int refused = 0;
    for (size_t n = 1; n < b->n; n++) {
        rsr_tokenizer *t;
        rsr_status st = rsr_tokenizer_create((const char *)b->p, n, &t);
        if (st == RSR_ERR_FORMAT && *rsr_tokenizer_errmsg(t))
            refused++;
        else
            EXPECT(st == RSR_OK && n == b->normalizer_at, "the first %zu bytes: status %d, '%s'", n, st,
                   rsr_tokenizer_errmsg(t));
        rsr_tokenizer_free(t);
    }
    EXPECT(refused == (int)b->n - 2, "%d of %zu truncations refused", refused, b->n - 1);
    free(b);

    options o = llama;
    o.model_type = 1;
    b = model_proto(o);
    expect_refused("unigram", b->p, b->n, "tokenizer.model: trainer_spec.model_type is UNIGRAM (1); only BPE (2)");
    free(b);
    o = llama, o.unk_id = 3;
    b = model_proto(o);
    expect_refused("unk_id", b->p, b->n, "trainer_spec.unk_id 3 names '" SP "a', a NORMAL piece, not UNKNOWN");
    free(b);

    static const uint8_t absurd[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x0A};
    expect_refused("absurd length", absurd, sizeof absurd, "pieces (field 1): length 4294967295 runs past the end");
    static const uint8_t group[] = {0x0A, 0x03, 0x0A, 0x01, 'a', 0x13};
    expect_refused("group", group, sizeof group, "ModelProto.trainer_spec (field 2) has wire type 3");
    static const uint8_t score_varint[] = {0x0A, 0x05, 0x0A, 0x01, 'a', 0x10, 0x00};
    expect_refused("score as varint", score_varint, sizeof score_varint, "pieces[0].score (field 2) has wire type 0");
    static const uint8_t long_varint[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    expect_refused("11-byte varint", long_varint, sizeof long_varint, "the length overflows 64 bits");
    static const uint8_t empty_piece[] = {0x0A, 0x02, 0x0A, 0x00};
    expect_refused("empty piece", empty_piece, sizeof empty_piece, "pieces[0] has an empty piece");
    static const uint8_t bad_utf8[] = {0x0A, 0x03, 0x0A, 0x01, 0xC3};
    expect_refused("invalid UTF-8", bad_utf8, sizeof bad_utf8, "pieces[0]: the piece is not valid UTF-8");
    static const uint8_t nan_score[] = {0x0A, 0x08, 0x0A, 0x01, 'a', 0x15, 0x00, 0x00, 0xC0, 0x7F};
    expect_refused("NaN score", nan_score, sizeof nan_score, "pieces[0] ('a'): score nan is not finite");
    static const uint8_t bad_type[] = {0x0A, 0x05, 0x0A, 0x01, 'a', 0x18, 0x07};
    expect_refused("piece type", bad_type, sizeof bad_type, "pieces[0].type is 7, not a piece type (1-6)");
    static const uint8_t stranger[] = {0x0A, 0x03, 0x0A, 0x01, 'a', 0x48, 0x01};
    expect_refused("unknown field", stranger, sizeof stranger, "field 9 is not a field of a SentencePiece ModelProto");
}

int main(void) {
    test_encode();
    test_malformed();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
