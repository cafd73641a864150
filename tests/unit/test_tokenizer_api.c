/*
 * test_tokenizer_api.c — the tokenizer's contracts on a vocabulary small enough to work out by
 * hand: BPE merge order, added and special tokens (lstrip, special or not), byte-level
 * handling of invalid UTF-8, decoding, buffer sizes, errors that name what is wrong, and the
 * chat templates as their Jinja originals render them.
 *
 * The vocabulary: ids 0-255 are the 256 bytes (written in the byte-level alphabet), then the
 * merges "Ġ t" → 256 "Ġt", "h e" → 257, "Ġt he" → 258 "Ġthe", "i n" → 259, "Ġ c" → 260 "Ġc",
 * then added tokens from 261.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsr.h"

#include "expect.h"

enum { BOS = 261, START = 262, END = 263, EOT = 264, S = 265, SLASH_S = 266, X = 267, MASK = 268 };

/* The byte-level alphabet as GPT-2 defined it: printable Latin-1 bytes stand for themselves,
 * the others take U+0100, U+0101, ... in byte order. Written out as a JSON string body. */
static void byte_char(int b, char *out) {
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    int cp = b;
    if (!printable) {
        cp = 256;
        for (int c = 0; c < b; c++) cp += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174);
    }
    if (cp == '"' || cp == '\\')
        sprintf(out, "\\%c", cp);
    else
        sprintf(out, "\\u%04x", cp);
}

static char *tokenizer_json(const char *model_type, const char *extra_merge, const char *normalizer) {
    size_t cap = 1 << 16, n = 0;
    char *j = malloc(cap);
    n += (size_t)snprintf(
        j + n, cap - n,
        "{\"version\": \"1.0\", \"added_tokens\": ["
        "{\"id\": %d, \"content\": \"<|begin_of_text|>\", \"special\": true, \"normalized\": false},"
        "{\"id\": %d, \"content\": \"<|start_header_id|>\", \"special\": true},"
        "{\"id\": %d, \"content\": \"<|end_header_id|>\", \"special\": true},"
        "{\"id\": %d, \"content\": \"<|eot_id|>\", \"special\": true},"
        "{\"id\": %d, \"content\": \"<s>\", \"special\": true},"
        "{\"id\": %d, \"content\": \"</s>\", \"special\": true},"
        "{\"id\": %d, \"content\": \"[X]\", \"special\": false, \"normalized\": false},"
        "{\"id\": %d, \"content\": \"<mask>\", \"special\": true, \"lstrip\": true}],"
        "\"normalizer\": %s,"
        "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
        "{\"type\": \"Split\", \"pattern\": {\"Regex\": "
        "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
        "\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
        " \"behavior\": \"Isolated\", \"invert\": false},"
        "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]},"
        "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
        "{\"id\": \"<|begin_of_text|>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
        " \"special_tokens\": {\"<|begin_of_text|>\": {\"id\": \"<|begin_of_text|>\", \"ids\": [%d]}}},"
        "\"decoder\": {\"type\": \"ByteLevel\"},"
        "\"model\": {\"type\": \"%s\", \"ignore_merges\": false, \"vocab\": {",
        BOS, START, END, EOT, S, SLASH_S, X, MASK, normalizer, BOS, model_type);
    for (int b = 0; b < 256; b++) {
        char c[16];
        byte_char(b, c);
        n += (size_t)snprintf(j + n, cap - n, "\"%s\": %d, ", c, b);
    }
    n += (size_t)snprintf(j + n, cap - n,
                          "\"\\u0120t\": 256, \"he\": 257, \"\\u0120the\": 258, \"in\": 259, \"\\u0120c\": 260},"
                          " \"merges\": [\"\\u0120 t\", \"h e\", \"\\u0120t he\", \"i n\", \"\\u0120 c\"%s]}}",
                          extra_merge);
    return j;
}

static rsr_tokenizer *open_tokenizer(void) {
    char *j = tokenizer_json("BPE", "", "null");
    rsr_tokenizer *t;
    rsr_status st = rsr_tokenizer_create(j, strlen(j), &t);
    EXPECT(st == RSR_OK, "create: %s", rsr_tokenizer_errmsg(t));
    free(j);
    return st == RSR_OK ? t : NULL;
}

static int same_ids(const int32_t *got, int32_t n, const int32_t *want, int32_t wn) {
    if (n != wn) return 0;
    for (int32_t i = 0; i < n; i++)
        if (got[i] != want[i]) return 0;
    return 1;
}

#define ENCODE_IS(t, text, flags, ...)                                                                                 \
    do {                                                                                                               \
        const int32_t want_[] = {__VA_ARGS__};                                                                         \
        int32_t got_[64], n_ = -1;                                                                                     \
        rsr_status st_ = rsr_tokenizer_encode(t, text, -1, flags, got_, 64, &n_);                                      \
        EXPECT(st_ == RSR_OK && same_ids(got_, n_, want_, (int32_t)(sizeof want_ / sizeof *want_)),                    \
               "encode(\"%s\", %d): status %d, %d ids starting %d %d %d", text, flags, st_, n_, got_[0], got_[1],      \
               got_[2]);                                                                                               \
    } while (0)

static void test_encode(rsr_tokenizer *t) {
    /* "the" has no merge for (t, h); (h, e) is merged. " cat": (Ġ, c) only. " in": (i, n) only. */
    ENCODE_IS(t, "the cat in", RSR_ENCODE_ADD_SPECIAL, BOS, 't', 257, 260, 'a', 't', ' ', 259);
    ENCODE_IS(t, "the cat in", 0, 't', 257, 260, 'a', 't', ' ', 259);
    /* Lowest rank first: Ġt (0), then he (1), then Ġt + he (2). */
    ENCODE_IS(t, " the", 0, 258);
    /* Special tokens are read in the text only when asked; non-special added tokens always. */
    ENCODE_IS(t, "a<|eot_id|>b", RSR_ENCODE_PARSE_SPECIAL, 'a', EOT, 'b');
    ENCODE_IS(t, "a<|eot_id|>b", 0, 'a', '<', '|', 'e', 'o', 't', '_', 'i', 'd', '|', '>', 'b');
    ENCODE_IS(t, "a[X]b", 0, 'a', X, 'b');
    /* The longest added token wins at a position. */
    ENCODE_IS(t, "<s></s>", RSR_ENCODE_PARSE_SPECIAL, S, SLASH_S);
    /* lstrip: the space before <mask> goes; the one after stays. */
    ENCODE_IS(t, "a <mask> b", RSR_ENCODE_PARSE_SPECIAL, 'a', MASK, ' ', 'b');
    /* Invalid UTF-8 is read as U+FFFD (EF BF BD), one per maximal invalid subsequence. */
    ENCODE_IS(t, "\xff", 0, 0xEF, 0xBF, 0xBD);
    ENCODE_IS(t, "\xe2\x82z", 0, 0xEF, 0xBF, 0xBD, 'z');
    /* U+FFFD is three bytes for one: the sanitized text outgrows the room its length asked for
     * (an overflow by two bytes under AddressSanitizer, before). */
    char grow[256];
    grow[0] = (char)0xFF;
    memset(grow + 1, 'a', 254);
    grow[255] = 0;
    int32_t many[300], nm = -1;
    EXPECT(rsr_tokenizer_encode(t, grow, 255, 0, many, 300, &nm) == RSR_OK && nm == 257 && many[0] == 0xEF &&
               many[2] == 0xBD && many[3] == 'a' && many[256] == 'a',
           "U+FFFD then 254 letters: %d ids", nm);
    /* White space runs: "  \n" is one piece; a trailing run of spaces before a word keeps one. */
    ENCODE_IS(t, "a  \nb", 0, 'a', ' ', ' ', '\n', 'b');
    ENCODE_IS(t, "a   the", 0, 'a', ' ', ' ', 258);
    ENCODE_IS(t, "", RSR_ENCODE_ADD_SPECIAL, BOS);
    /* (?i:'s) folds ASCII only: 'S is a contraction, 'ſ (U+017F) is not. */
    ENCODE_IS(t, "A'S", 0, 'A', '\'', 'S');
    ENCODE_IS(t, "a'\xc5\xbf", 0, 'a', '\'', 0xC5, 0xBF);

    int32_t ids[4], n = 0;
    EXPECT(rsr_tokenizer_encode(t, "the cat in", -1, RSR_ENCODE_ADD_SPECIAL, ids, 2, &n) == RSR_ERR_BUFFER_TOO_SMALL &&
               n == 8 && ids[0] == BOS && ids[1] == 't',
           "a small buffer: status, n = %d, the first ids kept", n);
    EXPECT(strstr(rsr_tokenizer_errmsg(t), "8 tokens"), "the message says how many: '%s'", rsr_tokenizer_errmsg(t));
    EXPECT(rsr_tokenizer_encode(t, "abc", 2, 0, ids, 4, &n) == RSR_OK && n == 2 && ids[1] == 'b', "an explicit length");
    EXPECT(rsr_tokenizer_encode(t, NULL, 3, 0, ids, 4, &n) == RSR_ERR_INVALID_ARGUMENT, "NULL text");
    EXPECT(rsr_tokenizer_encode(t, "a", -1, 0x80, ids, 4, &n) == RSR_ERR_INVALID_ARGUMENT, "unknown flag");
    EXPECT(rsr_tokenizer_encode(NULL, "a", -1, 0, ids, 4, &n) == RSR_ERR_INVALID_ARGUMENT, "NULL tokenizer");
}

static void test_decode(rsr_tokenizer *t) {
    const int32_t ids[] = {BOS, 258, 260, 'a', 't', EOT};
    char text[64];
    size_t len;
    EXPECT(rsr_tokenizer_decode(t, ids, 6, 0, text, sizeof text, &len) == RSR_OK &&
               strcmp(text, "<|begin_of_text|> the cat<|eot_id|>") == 0 && len == strlen(text),
           "decode: '%s'", text);
    EXPECT(rsr_tokenizer_decode(t, ids, 6, RSR_DECODE_SKIP_SPECIAL, text, sizeof text, &len) == RSR_OK &&
               strcmp(text, " the cat") == 0,
           "decode skipping special tokens: '%s'", text);
    EXPECT(rsr_tokenizer_decode(t, ids + 1, 2, 0, text, 4, &len) == RSR_ERR_BUFFER_TOO_SMALL && len == 6 &&
               strcmp(text, " th") == 0,
           "a small buffer gets what fits and a NUL; len %zu '%s'", len, text);
    const int32_t bad[] = {'a', 9999};
    EXPECT(rsr_tokenizer_decode(t, bad, 2, 0, text, sizeof text, &len) == RSR_ERR_BAD_TOKEN &&
               strstr(rsr_tokenizer_errmsg(t), "9999"),
           "an id out of range is named: '%s'", rsr_tokenizer_errmsg(t));
    EXPECT(rsr_tokenizer_decode(t, ids, 0, 0, text, sizeof text, &len) == RSR_OK && len == 0 && !text[0], "no ids");

    size_t plen;
    const char *p = rsr_tokenizer_token_piece(t, 258, &plen);
    EXPECT(p && plen == 4 && memcmp(p, " the", 4) == 0, "piece of 258");
    p = rsr_tokenizer_token_piece(t, 0xC3, &plen); /* one byte of a two-byte character */
    EXPECT(p && plen == 1 && (unsigned char)p[0] == 0xC3, "a byte token's piece is the byte");
    EXPECT(!rsr_tokenizer_token_piece(t, -1, &plen) && plen == 0, "piece of -1");
    EXPECT(rsr_tokenizer_token_id(t, "\xc4\xa0the") == 258, "token_id of 'Ġthe'");
    EXPECT(rsr_tokenizer_token_id(t, "<|eot_id|>") == EOT, "token_id of an added token");
    EXPECT(rsr_tokenizer_token_id(t, "nope") == -1, "token_id of an unknown token");
    EXPECT(rsr_tokenizer_is_special(t, EOT) && !rsr_tokenizer_is_special(t, X) && !rsr_tokenizer_is_special(t, 'a'),
           "is_special");

    rsr_tokenizer_info info;
    EXPECT(rsr_tokenizer_get_info(t, &info) == RSR_OK && info.vocab_size == MASK + 1 && info.num_added_tokens == 8 &&
               info.bos_token_id == BOS && info.eos_token_id == SLASH_S && info.eot_token_id == EOT &&
               strcmp(info.kind, "byte-level BPE") == 0 && info.chat_template &&
               strcmp(info.chat_template, "llama3") == 0,
           "info: vocab %d, added %d, bos %d, eos %d, eot %d, %s", info.vocab_size, info.num_added_tokens,
           info.bos_token_id, info.eos_token_id, info.eot_token_id, info.kind);
}

#define CHAT_IS(t, name, msgs, gen, want)                                                                              \
    do {                                                                                                               \
        char out_[1024];                                                                                               \
        size_t len_;                                                                                                   \
        rsr_status st_ = rsr_tokenizer_apply_chat_template(t, name, msgs, (int32_t)(sizeof msgs / sizeof *msgs), gen,  \
                                                           out_, sizeof out_, &len_);                                  \
        EXPECT(st_ == RSR_OK && strcmp(out_, want) == 0 && len_ == strlen(want), "chat %s: %d %s\n got: '%s'",         \
               name ? name : "(default)", st_, rsr_tokenizer_errmsg(t), out_);                                         \
    } while (0)

static void test_chat(rsr_tokenizer *t) {
    const rsr_chat_message two[] = {{"system", "You are terse."}, {"user", "  Hi!\n"}};
    CHAT_IS(
        t, "llama3", two, 1,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    CHAT_IS(t, NULL, two, 0,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>");
    CHAT_IS(t, "bitnet", two, 1, "<|begin_of_text|>System: You are terse.<|eot_id|>User: Hi!<|eot_id|>Assistant: ");
    const rsr_chat_message four[] = {
        {"system", "Be brief."}, {"user", "Hi"}, {"assistant", " Hello! "}, {"user", "Bye"}};
    CHAT_IS(t, "llama2", four, 1,
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]");

    char out[256];
    size_t len;
    const rsr_chat_message twice[] = {{"user", "a"}, {"user", "b"}};
    EXPECT(rsr_tokenizer_apply_chat_template(t, "llama2", twice, 2, 1, out, sizeof out, &len) ==
                   RSR_ERR_INVALID_ARGUMENT &&
               strstr(rsr_tokenizer_errmsg(t), "alternate"),
           "llama2 wants alternating roles: '%s'", rsr_tokenizer_errmsg(t));
    EXPECT(rsr_tokenizer_apply_chat_template(t, "chatml", two, 2, 1, out, sizeof out, &len) == RSR_ERR_NOT_FOUND &&
               strstr(rsr_tokenizer_errmsg(t), "chatml"),
           "an unknown template is named: '%s'", rsr_tokenizer_errmsg(t));
    EXPECT(rsr_tokenizer_apply_chat_template(t, "llama3", two, 2, 1, out, 10, &len) == RSR_ERR_BUFFER_TOO_SMALL &&
               len > 10,
           "a small buffer");
    /* Text made from a chat encodes its markers as special tokens. */
    ENCODE_IS(t, "<|start_header_id|>user<|end_header_id|>", RSR_ENCODE_PARSE_SPECIAL, START, 'u', 's', 'e', 'r', END);
}

/* The Unicode normalizers on a vocabulary of characters (no pre-tokenizer, no byte-level
 * alphabet): "é" (U+00E9) is one token, as are "e" and U+0301 (combining acute), "ﬁ" (U+FB01)
 * and "fi" (the merge "f i"); the non-special added token "é!" is matched after normalization. */
static rsr_tokenizer *unicode_tokenizer(const char *normalizer) {
    char j[1024];
    snprintf(j, sizeof j,
             "{\"added_tokens\": [{\"id\": 9, \"content\": \"<unk>\", \"special\": true},"
             " {\"id\": 10, \"content\": \"\\u00e9!\", \"special\": false, \"normalized\": true}],"
             " \"normalizer\": %s, \"pre_tokenizer\": null, \"decoder\": null,"
             " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"e\": 0, \"\\u0301\": 1,"
             " \"\\u00e9\": 2, \"f\": 3, \"i\": 4, \"\\ufb01\": 5, \"fi\": 6, \" \": 7, \"x\": 8, \"<unk>\": 9},"
             " \"merges\": [\"f i\"]}}",
             normalizer);
    rsr_tokenizer *t;
    rsr_status st = rsr_tokenizer_create(j, strlen(j), &t);
    EXPECT(st == RSR_OK, "create with normalizer %s: %s", normalizer, rsr_tokenizer_errmsg(t));
    if (st == RSR_OK) return t;
    rsr_tokenizer_free(t);
    return NULL;
}

static void test_unicode_normalizers(void) {
    enum { E = 0, ACUTE = 1, E_ACUTE = 2, F = 3, FI_LIGATURE = 5, FI = 6, UNK = 9, E_ACUTE_BANG = 10 };
    const char *decomposed = "e\xcc\x81", *composed = "\xc3\xa9", *ligature = "\xef\xac\x81";
    rsr_tokenizer *t = unicode_tokenizer("null");
    if (t) { /* without a normalizer the text is taken as it is */
        ENCODE_IS(t, decomposed, 0, E, ACUTE);
        ENCODE_IS(t, composed, 0, E_ACUTE);
        ENCODE_IS(t, ligature, 0, FI_LIGATURE);
        ENCODE_IS(t, "e\xcc\x81!", 0, E, ACUTE, UNK); /* "é!" is not in the text as written */
        rsr_tokenizer_free(t);
    }
    if ((t = unicode_tokenizer("{\"type\": \"NFC\"}"))) { /* Qwen2 / Qwen3 */
        ENCODE_IS(t, decomposed, 0, E_ACUTE);
        ENCODE_IS(t, composed, 0, E_ACUTE);
        ENCODE_IS(t, ligature, 0, FI_LIGATURE); /* a compatibility character: NFC keeps it */
        ENCODE_IS(t, "\xcc\x81", 0, ACUTE);     /* a combining mark with nothing to combine with */
        ENCODE_IS(t, "e\xcc\x81!", 0, E_ACUTE_BANG);
        /* invalid UTF-8 is U+FFFD (not in this vocabulary) as without a normalizer; the broken
         * prefix of U+0301 combines with nothing */
        ENCODE_IS(t, "e\xcc\x81\xff", 0, E_ACUTE, UNK);
        ENCODE_IS(t, "e\xcc", 0, E, UNK);
        /* a NUL inside the text (an explicit length) is a character like any other */
        int32_t ids[8], n = -1;
        EXPECT(rsr_tokenizer_encode(t, "e\xcc\x81\0e\xcc\x81", 7, 0, ids, 8, &n) == RSR_OK && n == 3 &&
                   ids[0] == E_ACUTE && ids[1] == UNK && ids[2] == E_ACUTE,
               "NFC across a NUL: %d ids", n);
        rsr_tokenizer_free(t);
    }
    if ((t = unicode_tokenizer("{\"type\": \"NFD\"}"))) {
        ENCODE_IS(t, composed, 0, E, ACUTE);
        ENCODE_IS(t, decomposed, 0, E, ACUTE);
        ENCODE_IS(t, ligature, 0, FI_LIGATURE);
        rsr_tokenizer_free(t);
    }
    if ((t = unicode_tokenizer("{\"type\": \"NFKC\"}"))) {
        ENCODE_IS(t, ligature, 0, FI);
        ENCODE_IS(t, decomposed, 0, E_ACUTE);
        rsr_tokenizer_free(t);
    }
    if ((t = unicode_tokenizer("{\"type\": \"NFKD\"}"))) {
        ENCODE_IS(t, ligature, 0, FI);
        ENCODE_IS(t, composed, 0, E, ACUTE);
        rsr_tokenizer_free(t);
    }
    /* A Sequence applies its normalizers in order: "x" → U+0301 before NFC composes "é"; after, not. */
    static const char replace_x[] =
        "{\"type\": \"Replace\", \"pattern\": {\"String\": \"x\"}, \"content\": \"\\u0301\"}";
    char seq[256];
    snprintf(seq, sizeof seq, "{\"type\": \"Sequence\", \"normalizers\": [%s, {\"type\": \"NFC\"}]}", replace_x);
    if ((t = unicode_tokenizer(seq))) {
        ENCODE_IS(t, "ex", 0, E_ACUTE);
        rsr_tokenizer_free(t);
    }
    snprintf(seq, sizeof seq, "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, %s]}", replace_x);
    if ((t = unicode_tokenizer(seq))) {
        ENCODE_IS(t, "ex", 0, E, ACUTE);
        rsr_tokenizer_free(t);
    }
    /* A Replace whose content is not UTF-8 (a raw byte in tokenizer.json) feeds NFC invalid UTF-8:
     * read as U+FFFD, as the input's invalid bytes are. */
    if ((t = unicode_tokenizer("{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Replace\", \"pattern\": "
                               "{\"String\": \"x\"}, \"content\": \"\xff\"}, {\"type\": \"NFC\"}]}"))) {
        ENCODE_IS(t, "e\xcc\x81x", 0, E_ACUTE, UNK);
        rsr_tokenizer_free(t);
    }
}

static void test_errors(void) {
    static const struct {
        const char *model, *merge, *normalizer, *message;
    } cases[] = {
        {"WordPiece", "", "null", "model type 'WordPiece' is not supported"},
        {"BPE", ", \"q \\u20ac\"", "null", "merge 5 ('q' '\xe2\x82\xac') names a token not in the vocabulary"},
        {"BPE", ", \"q\"", "null", "merge 5 'q' is not two tokens"},
        {"BPE", "", "{\"type\": \"Lowercase\"}", "normalizer 'Lowercase' is not supported"},
    };
    rsr_tokenizer *t;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *j = tokenizer_json(cases[i].model, cases[i].merge, cases[i].normalizer);
        rsr_status st = rsr_tokenizer_create(j, strlen(j), &t);
        EXPECT(st == RSR_ERR_FORMAT && strstr(rsr_tokenizer_errmsg(t), cases[i].message),
               "case %zu: status %d, '%s' lacks '%s'", i, st, rsr_tokenizer_errmsg(t), cases[i].message);
        rsr_tokenizer_free(t);
        free(j);
    }
    EXPECT(rsr_tokenizer_create("{\"model\": ", 10, &t) == RSR_ERR_FORMAT &&
               strstr(rsr_tokenizer_errmsg(t), "not valid JSON"),
           "broken JSON: '%s'", rsr_tokenizer_errmsg(t));
    rsr_tokenizer_free(t);
    EXPECT(rsr_tokenizer_create("{}", 2, &t) == RSR_ERR_FORMAT && strstr(rsr_tokenizer_errmsg(t), "no \"model\""),
           "no model: '%s'", rsr_tokenizer_errmsg(t));
    rsr_tokenizer_free(t);
    EXPECT(rsr_tokenizer_create(NULL, 0, NULL) == RSR_ERR_INVALID_ARGUMENT, "NULL out");
    rsr_tokenizer_free(NULL);
}

int main(void) {
    rsr_tokenizer *t = open_tokenizer();
    if (t) {
        test_encode(t);
        test_decode(t);
        test_chat(t);
        rsr_tokenizer_free(t);
    }
    test_unicode_normalizers();
    test_errors();
    printf("%d/%d tokenizer API checks passed\n", checks - failures, checks);
    return failures ? 1 : 0;
}
