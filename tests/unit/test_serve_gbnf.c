/*
 * test_serve_gbnf — the GBNF recognizer behind a request's `grammar` (tools/serve/grammar/serve_gbnf.c):
 * grammars compiled and refused (each refusal names the line and column), whole replies
 * accepted and turned away, the prefix property (every prefix of a sentence feeds, and is done
 * only when it is itself a sentence, checked against a parser written apart for each grammar),
 * feeding in pieces, copies, UTF-8 cut between feeds, random walks along the bytes the
 * recognizer allows (each whole reply must parse with cJSON), garbage grammars, the limits, and
 * the time of one copy and feed. The grammars of /tmp/llsrc/grammars are tried where present.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "expect.h"
#include "serve_gbnf.h"

typedef bool (*oracle_fn)(const char *s, size_t n); /* is s[0..n) a sentence? */

static uint32_t rng = 2463534242u;
static uint32_t next_rand(void) {
    rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
    return rng;
}

static gbnf_grammar *compile(const char *src) {
    char err[512];
    gbnf_grammar *g = gbnf_compile(src, strlen(src), err, sizeof err);
    EXPECT(g, "grammar refused: %s\n%s", err, src);
    return g;
}

/* src refused with a message holding both `where` ("line L, column C") and `what` */
static void refused_n(const char *src, size_t len, const char *where, const char *what) {
    char err[512] = "";
    gbnf_grammar *g = gbnf_compile(src, len, err, sizeof err);
    EXPECT(!g, "grammar taken, want refused (%s): %.80s", what, src);
    EXPECT(!strncmp(err, "line ", 5) && (!where || strstr(err, where)) && strstr(err, what),
           "message '%s', want '%s' and '%s' (grammar %.60s)", err, where ? where : "line", what, src);
    gbnf_free(g);
}
static void refused(const char *src, const char *where, const char *what) { refused_n(src, strlen(src), where, what); }

/* s fed whole: whether every byte is taken and the result is a sentence */
static bool sentence(const gbnf_grammar *g, const char *s, size_t n, bool *taken) {
    gbnf_state *st = gbnf_state_new(g);
    bool ok = gbnf_state_feed(st, s, n), done = gbnf_state_done(st);
    gbnf_state_free(st);
    if (taken) *taken = ok;
    return ok && done;
}

static void accepts(const gbnf_grammar *g, const char *s) {
    bool taken;
    EXPECT(sentence(g, s, strlen(s), &taken), "'%s': taken %d, want a whole sentence", s, taken);
}

static void rejects(const gbnf_grammar *g, const char *s) {
    EXPECT(!sentence(g, s, strlen(s), NULL), "'%s' taken as a sentence", s);
}

/* the index of the first byte refused fed a byte at a time, -1: every byte taken */
static int refused_at(const gbnf_grammar *g, const char *s, size_t n) {
    gbnf_state *st = gbnf_state_new(g);
    int at = -1;
    for (size_t i = 0; i < n && at < 0; i++)
        if (!gbnf_state_feed(st, s + i, 1)) at = (int)i;
    gbnf_state_free(st);
    return at;
}

static void refuses_at(const gbnf_grammar *g, const char *s, int want) {
    int at = refused_at(g, s, strlen(s));
    EXPECT(at == want, "'%s': refused at %d, want %d", s, at, want);
}

/* The prefix property for a sentence s: each prefix feeds, at once or a byte at a time, done only
 * where the oracle says it is a sentence (without one: at the end); a copy fed the rest is whole,
 * and feeding it leaves the original as it was; random pieces feed as the whole does. */
static void prefixes(const gbnf_grammar *g, const char *s, oracle_fn oracle) {
    size_t n = strlen(s);
    gbnf_state *a = gbnf_state_new(g), *c = gbnf_state_new(g);
    for (size_t k = 0; k <= n; k++) {
        bool done = gbnf_state_done(a);
        if (oracle)
            EXPECT(done == oracle(s, k), "'%s' cut at %zu: done %d", s, k, done);
        else if (k == n)
            EXPECT(done, "'%s': not done", s);
        gbnf_state *f = gbnf_state_new(g);
        EXPECT(gbnf_state_feed(f, s, k) && gbnf_state_done(f) == done, "'%s' cut at %zu, fed at once", s, k);
        gbnf_state_free(f);
        EXPECT(gbnf_state_copy(c, a), "copy");
        EXPECT(gbnf_state_feed(c, s + k, n - k) && gbnf_state_done(c), "'%s': a copy at %zu fed the rest", s, k);
        EXPECT(gbnf_state_done(a) == done, "'%s': the copy disturbed the original at %zu", s, k);
        if (k < n) EXPECT(gbnf_state_feed(a, s + k, 1), "'%s': byte %zu refused", s, k);
    }
    for (int t = 0; t < 4; t++) { /* random pieces */
        gbnf_state *p = gbnf_state_new(g);
        size_t i = 0;
        bool ok = true;
        while (i < n && ok) {
            size_t len = 1 + next_rand() % 6;
            if (len > n - i) len = n - i;
            ok = gbnf_state_feed(p, s + i, len), i += len;
        }
        EXPECT(ok && gbnf_state_done(p), "'%s' fed in random pieces", s);
        gbnf_state_free(p);
    }
    gbnf_state_free(a), gbnf_state_free(c);
}

/* ---- oracles: parsers of each test grammar, written apart from the recognizer ---- */

typedef struct text {
    const char *s;
    size_t n, i;
} text;

static int peek(const text *t) { return t->i < t->n ? (unsigned char)t->s[t->i] : -1; }
static bool eat(text *t, int c) { return peek(t) == c ? (t->i++, true) : false; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }

static bool yes_no(const char *s, size_t n) {
    return (n == 3 && !memcmp(s, "yes", 3)) || (n == 2 && !memcmp(s, "no", 2));
}

static bool ar_expr(text *t, int depth);
static bool ar_factor(text *t, int depth) {
    if (depth > 200) return false;
    if (eat(t, '-')) return ar_factor(t, depth + 1);
    if (eat(t, '(')) return ar_expr(t, depth + 1) && eat(t, ')');
    if (!is_digit(peek(t))) return false;
    while (is_digit(peek(t))) t->i++;
    if (!eat(t, '.')) return true;
    if (!is_digit(peek(t))) return false;
    while (is_digit(peek(t))) t->i++;
    return true;
}
static bool ar_term(text *t, int depth) {
    if (!ar_factor(t, depth)) return false;
    while (peek(t) == '*' || peek(t) == '/')
        if (t->i++, !ar_factor(t, depth)) return false;
    return true;
}
static bool ar_expr(text *t, int depth) {
    if (!ar_term(t, depth)) return false;
    while (peek(t) == '+' || peek(t) == '-')
        if (t->i++, !ar_term(t, depth)) return false;
    return true;
}
static bool arithmetic(const char *s, size_t n) {
    text t = {s, n, 0};
    return ar_expr(&t, 0) && t.i == n;
}

/* strict UTF-8: the length of the character at s, 0 when invalid */
static int utf8_char(const unsigned char *s, size_t n, uint32_t *cp) {
    uint32_t c = s[0], least;
    size_t len;
    if (c < 0x80)
        len = 1, least = 0;
    else if ((c & 0xE0) == 0xC0)
        len = 2, c &= 0x1F, least = 0x80;
    else if ((c & 0xF0) == 0xE0)
        len = 3, c &= 0x0F, least = 0x800;
    else if ((c & 0xF8) == 0xF0)
        len = 4, c &= 0x07, least = 0x10000;
    else
        return 0;
    if (n < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        c = c << 6 | (s[k] & 0x3F);
    }
    if (c < least || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return (int)len;
}

static void js_ws(text *t) {
    while (peek(t) == ' ' || peek(t) == '\t' || peek(t) == '\n' || peek(t) == '\r') t->i++;
}
static bool is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

static bool js_string(text *t) {
    if (!eat(t, '"')) return false;
    for (;;) {
        int c = peek(t);
        if (c < 0x20) return false; /* the end, or a control */
        t->i++;
        if (c == '"') return true;
        if (c == '\\') {
            c = peek(t), t->i++;
            if (c >= 0 && strchr("\"\\/bfnrt", c) && c) continue;
            if (c != 'u') return false;
            for (int k = 0; k < 4; k++, t->i++)
                if (!is_hex(peek(t))) return false;
            const char *h = t->s + t->i - 4; /* no surrogates */
            if ((h[0] == 'd' || h[0] == 'D') && !(h[1] >= '0' && h[1] <= '7')) return false;
        } else if (c >= 0x80) {
            uint32_t cp;
            int len = utf8_char((const unsigned char *)t->s + t->i - 1, t->n - t->i + 1, &cp);
            if (!len) return false;
            t->i += (size_t)len - 1;
        }
    }
}

static bool js_number(text *t) {
    eat(t, '-');
    if (!eat(t, '0')) {
        if (!is_digit(peek(t))) return false;
        while (is_digit(peek(t))) t->i++;
    }
    if (eat(t, '.')) {
        if (!is_digit(peek(t))) return false;
        while (is_digit(peek(t))) t->i++;
    }
    if (eat(t, 'e') || eat(t, 'E')) {
        if (!eat(t, '+')) eat(t, '-');
        if (!is_digit(peek(t))) return false;
        while (is_digit(peek(t))) t->i++;
    }
    return true;
}

static bool js_word(text *t, const char *w) {
    size_t n = strlen(w);
    if (t->n - t->i < n || memcmp(t->s + t->i, w, n)) return false;
    t->i += n;
    return true;
}

static bool js_value(text *t, int depth) {
    if (depth > 40) return false;
    int c = peek(t);
    if (c == '{' || c == '[') {
        int close = c == '{' ? '}' : ']';
        t->i++, js_ws(t);
        if (eat(t, close)) return true;
        for (;;) {
            js_ws(t);
            if (c == '{') {
                if (!js_string(t)) return false;
                js_ws(t);
                if (!eat(t, ':')) return false;
                js_ws(t);
            }
            if (!js_value(t, depth + 1)) return false;
            js_ws(t);
            if (eat(t, close)) return true;
            if (!eat(t, ',')) return false;
        }
    }
    if (c == '"') return js_string(t);
    if (c == '-' || is_digit(c)) return js_number(t);
    return js_word(t, "true") || js_word(t, "false") || js_word(t, "null");
}

static bool json_valid(const char *s, size_t n) {
    text t = {s, n, 0};
    js_ws(&t);
    if (!js_value(&t, 0)) return false;
    js_ws(&t);
    return t.i == n;
}

static bool list_items(const char *s, size_t n) { /* 2..4 lines "- " [a-z]{2,4} "\n" */
    text t = {s, n, 0};
    int items = 0;
    while (t.i < n) {
        if (!eat(&t, '-') || !eat(&t, ' ')) return false;
        int letters = 0;
        while (peek(&t) >= 'a' && peek(&t) <= 'z') t.i++, letters++;
        if (letters < 2 || letters > 4 || !eat(&t, '\n')) return false;
        items++;
    }
    return items >= 2 && items <= 4;
}

static bool greek(const char *s, size_t n) { /* [α-ω]+ */
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int len = utf8_char((const unsigned char *)s + i, n - i, &cp);
        if (!len || cp < 0x3B1 || cp > 0x3C9) return false;
        i += (size_t)len;
    }
    return n > 0;
}

/* ---- the grammars ---- */

static const char *json_gbnf = "# JSON, any white space between tokens; \\u escapes of no surrogate\n"
                               "root     ::= ws value ws\n"
                               "value    ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
                               "object   ::= \"{\" ws \"}\" | \"{\" members \"}\"\n"
                               "members  ::= member (\",\" member)*\n"
                               "member   ::= ws string ws \":\" ws value ws\n"
                               "array    ::= \"[\" ws \"]\" | \"[\" elements \"]\"\n"
                               "elements ::= element (\",\" element)*\n"
                               "element  ::= ws value ws\n"
                               "string   ::= \"\\\"\" char* \"\\\"\"\n"
                               "char     ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" hex4)\n"
                               "hex4     ::= [0-9a-cA-Ce-fE-F] hex hex hex | [dD] [0-7] hex hex\n"
                               "hex      ::= [0-9a-fA-F]\n"
                               "number   ::= \"-\"? int frac? exp?\n"
                               "int      ::= \"0\" | [1-9] [0-9]*\n"
                               "frac     ::= \".\" [0-9]+\n"
                               "exp      ::= [eE] [-+]? [0-9]+\n"
                               "ws       ::= [ \\t\\n\\r]*\n";

static const char *json_good[] = {"{}",
                                  "[]",
                                  "0",
                                  "-0",
                                  "1.5e10",
                                  "-12.25E-3",
                                  "1e+2",
                                  "\"\"",
                                  "true",
                                  "false",
                                  "null",
                                  " {} ",
                                  "\n[ ]\t",
                                  "{\"a\":1}",
                                  "{\"a\" : [1, 2, {\"b\": null}], \"c\": \"\\u00e9\\n\", \"d\": true}",
                                  "[[[[]]]]",
                                  "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\uABCD\"",
                                  "\"é€😀\x7f\"",
                                  "{\"k\":{\"k\":{\"k\":[1,[2,[3]]]}}}",
                                  "[ 1 , 2 ]",
                                  "\"\\uD7FF\\uE000\"",
                                  "123",
                                  "[\"a\",\"b\"]"};

static const char *json_bad[] = {"",           "{",
                                 "}",          "[1,]",
                                 "{\"a\":1,}", "01",
                                 "1.",         ".5",
                                 "1e",         "+1",
                                 "--1",        "tru",
                                 "nul",        "True",
                                 "\"abc",      "\"\\x\"",
                                 "\"\\u12\"",  "\"\\uD800\"",
                                 "\"\x01\"",   "{a:1}",
                                 "[1 2]",      "{\"a\" 1}",
                                 "1 2",        "\"\xc3\"",
                                 "\"\xff\"",   "\"\xed\xa0\x80\"",
                                 "nullnull",   "{\"a\":}",
                                 "[,]",        "\"\xc0\xaf\""};

/* JSON with `value` of 80 alternatives (70 the same "true"): past the size of a closure, so the
 * recognizer expands it step by step; the language is the same */
static gbnf_grammar *compile_wide_json(void) {
    static char src[4096];
    const char *v = strstr(json_gbnf, "\"true\"");
    size_t n = (size_t)(v - json_gbnf);
    memcpy(src, json_gbnf, n);
    for (int i = 0; i < 70; i++) n += (size_t)sprintf(src + n, "\"true\" | ");
    strcpy(src + n, v);
    return compile(src);
}

static void test_yes_no(void) {
    gbnf_grammar *g = compile("root ::= \"yes\" | \"no\"");
    accepts(g, "yes"), accepts(g, "no");
    rejects(g, ""), rejects(g, "ye"), rejects(g, "n"), rejects(g, "yess"), rejects(g, "YES"), rejects(g, "nope");
    refuses_at(g, "yess", 3), refuses_at(g, "maybe", 0), refuses_at(g, "nah", 1);
    prefixes(g, "yes", yes_no), prefixes(g, "no", yes_no);
    gbnf_state *a = gbnf_state_new(g);
    EXPECT(!gbnf_state_done(a) && gbnf_state_feed(a, "", 0), "the empty reply");
    EXPECT(!gbnf_state_feed(a, "x", 1) && !gbnf_state_feed(a, "y", 1), "a spoilt state stays spoilt");
    gbnf_grammar *h = compile("root ::= \"yes\"");
    gbnf_state *b = gbnf_state_new(h);
    EXPECT(!gbnf_state_copy(b, a), "a copy across grammars");
    gbnf_state_free(a), gbnf_state_free(b), gbnf_free(h), gbnf_free(g);
}

static void test_arithmetic(void) {
    gbnf_grammar *g = compile("root   ::= expr\n"
                              "expr   ::= term ((\"+\" | \"-\") term)*\n"
                              "term   ::= factor ((\"*\" | \"/\") factor)*\n"
                              "factor ::= number | \"(\" expr \")\" | \"-\" factor\n"
                              "number ::= [0-9]+ (\".\" [0-9]+)?\n");
    const char *good[] = {"1", "1+2", "(1+2)*3", "-(4.5/2)-7", "((((1))))", "12.50*-3/--4", "1-2-3*4/5+6"};
    const char *bad[] = {"", "1+", "(1", "1)", "+1", "1..2", "1.", "()", "1 + 2", "(1+2))", "*3"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) accepts(g, good[i]), prefixes(g, good[i], arithmetic);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) rejects(g, bad[i]);
    refuses_at(g, "1+*", 2), refuses_at(g, "(1))", 3);
    /* random strings of the alphabet: sentences exactly where the oracle says */
    static const char alpha[] = "0123456789.+-*/()";
    char buf[16];
    int agree = 0;
    for (int w = 0; w < 20000; w++) {
        size_t n = 1 + next_rand() % 10;
        for (size_t i = 0; i < n; i++) buf[i] = alpha[next_rand() % (sizeof alpha - 1)];
        bool want = arithmetic(buf, n), got = sentence(g, buf, n, NULL);
        EXPECT(got == want, "'%.*s': recognizer %d, oracle %d", (int)n, buf, got, want);
        agree += got;
    }
    EXPECT(agree > 100, "only %d random sentences", agree);
    gbnf_free(g);
}

static void test_json(gbnf_grammar *g) {
    for (size_t i = 0; i < sizeof json_good / sizeof *json_good; i++) {
        EXPECT(json_valid(json_good[i], strlen(json_good[i])), "oracle refuses '%s'", json_good[i]);
        accepts(g, json_good[i]);
        prefixes(g, json_good[i], json_valid);
    }
    for (size_t i = 0; i < sizeof json_bad / sizeof *json_bad; i++) {
        EXPECT(!json_valid(json_bad[i], strlen(json_bad[i])), "oracle takes '%s'", json_bad[i]);
        rejects(g, json_bad[i]);
    }
    refuses_at(g, "{\"a\":1,}", 7), refuses_at(g, "[01", 2), refuses_at(g, "\"\\q", 2), refuses_at(g, "\"\xed\xa0", 2);
    refuses_at(g, "\"\xc3(", 2), refuses_at(g, "\"\x80", 1), refuses_at(g, "\"\xf5", 1), refuses_at(g, "{1", 1);
    /* random texts of JSON's pieces: whole exactly where the oracle says */
    static const char *pieces[] = {"{", "}",    "[",    "]", ",",  ":",  "\"", "\"a\"", "1",    "0", "-",   ".",
                                   "e", "true", "null", " ", "\n", "\\", "u",  "é",     "\xff", "x", "2.5", "\"k\":"};
    char buf[128];
    int whole = 0;
    for (int w = 0; w < 20000; w++) {
        size_t n = 0;
        for (int k = 1 + (int)(next_rand() % 12); k > 0; k--) {
            const char *p = pieces[next_rand() % (sizeof pieces / sizeof *pieces)];
            memcpy(buf + n, p, strlen(p)), n += strlen(p);
        }
        bool want = json_valid(buf, n), got = sentence(g, buf, n, NULL);
        EXPECT(got == want, "'%.*s': recognizer %d, oracle %d", (int)n, buf, got, want);
        whole += got;
    }
    EXPECT(whole > 50, "only %d random texts were JSON", whole);
}

/* Random replies, each byte drawn among those the recognizer takes: the reply is done exactly
 * where the oracle says, some byte is always allowed while it is not done, and every whole one
 * parses with cJSON. Returns the whole ones. */
static int json_walks(const gbnf_grammar *g, int walks) {
    gbnf_state *st = gbnf_state_new(g), *tmp = gbnf_state_new(g);
    int whole = 0;
    for (int w = 0; w < walks; w++) {
        gbnf_state *fresh = gbnf_state_new(g);
        gbnf_state_copy(st, fresh);
        gbnf_state_free(fresh);
        char buf[100];
        size_t n = 0;
        bool done = false;
        while (n < 96) {
            done = gbnf_state_done(st);
            EXPECT(done == json_valid(buf, n), "walk '%.*s': done %d", (int)n, buf, done);
            if (done && next_rand() % 4 == 0) break;
            unsigned char allowed[256];
            int na = 0;
            for (int b = 1; b < 256; b++) {
                char c = (char)b;
                gbnf_state_copy(tmp, st);
                if (gbnf_state_feed(tmp, &c, 1)) allowed[na++] = (unsigned char)b;
            }
            EXPECT(na || done, "walk '%.*s': a dead end", (int)n, buf);
            if (!na) break;
            /* mostly ASCII where some is allowed, or the walk would mostly read multi-byte characters */
            int nascii = 0;
            while (nascii < na && allowed[nascii] < 0x80) nascii++;
            unsigned char c = allowed[next_rand() % (unsigned)na];
            if (nascii && next_rand() % 4) c = allowed[next_rand() % (unsigned)nascii];
            buf[n++] = (char)c;
            EXPECT(gbnf_state_feed(st, buf + n - 1, 1), "walk: an allowed byte refused");
        }
        if (!done || n >= 96 || !gbnf_state_done(st)) continue;
        buf[n] = 0, whole++;
        cJSON *v = cJSON_ParseWithOpts(buf, NULL, true);
        EXPECT(v, "a whole reply that cJSON refuses: '%s'", buf);
        cJSON_Delete(v);
    }
    gbnf_state_free(st), gbnf_state_free(tmp);
    return whole;
}

static void test_repetition(void) {
    gbnf_grammar *g = compile("root ::= item{2,4}\nitem ::= \"- \" [a-z]{2,4} \"\\n\"\n");
    const char *good[] = {"- ab\n- cd\n", "- abcd\n- xyz\n- qq\n", "- ab\n- ab\n- ab\n- ab\n"};
    for (size_t i = 0; i < 3; i++) accepts(g, good[i]), prefixes(g, good[i], list_items);
    rejects(g, "- ab\n"), rejects(g, "- a\n- bc\n"), rejects(g, "- abcde\n- ab\n");
    refuses_at(g, "- ab\n- ab\n- ab\n- ab\n- ", 20), refuses_at(g, "- abcde", 6);
    gbnf_free(g);
    g = compile("root ::= \"ab\"{2} \"c\"{0,2} \"d\"{2,} \"e\"? \"f\"* \"g\"+ (\"h\" \"i\")*?");
    accepts(g, "ababddg"), accepts(g, "ababccdddddeffgghihi"), accepts(g, "ababcddegg");
    rejects(g, "abddg"), rejects(g, "ababcccddg"), rejects(g, "ababdg"), rejects(g, "ababddeeg"),
        rejects(g, "ababddgh");
    gbnf_free(g);
    g = compile("root ::= [a-c]{0} \"x\" (\"y\"{0,3}){2}");
    accepts(g, "x"), accepts(g, "xyyyyyy"), rejects(g, "xyyyyyyy"), rejects(g, "ax");
    gbnf_free(g);
    g = compile("root ::= \"a\"*"); /* the empty reply is a sentence */
    gbnf_state *st = gbnf_state_new(g);
    EXPECT(gbnf_state_done(st), "the empty sentence");
    for (int i = 0; i < 5000; i++) gbnf_state_feed(st, "a", 1);
    EXPECT(gbnf_state_done(st), "5000 repetitions run in constant depth");
    gbnf_state_free(st), gbnf_free(g);
}

static void test_unicode(void) {
    gbnf_grammar *g = compile("root ::= [α-ω]+");
    accepts(g, "αβγ"), accepts(g, "ω"), rejects(g, "a"), rejects(g, "Ω"), rejects(g, ""), rejects(g, "αa");
    prefixes(g, "αβγδω", greek);
    gbnf_state *st = gbnf_state_new(g);
    EXPECT(gbnf_state_feed(st, "\xce", 1) && !gbnf_state_done(st), "the first byte of α alone");
    EXPECT(gbnf_state_feed(st, "\xb1", 1) && gbnf_state_done(st), "... then its second");
    EXPECT(gbnf_state_feed(st, "\xcf", 1), "the first byte of ω");
    EXPECT(!gbnf_state_feed(st, "\x8a", 1), "U+03CA is past ω");
    gbnf_state_free(st);
    refuses_at(g, "\xd0", 0);         /* U+0400.. : none is Greek small */
    refuses_at(g, "\xce\xb1\xc0", 2); /* no lead byte */
    refuses_at(g, "\xe0\x80", 0);     /* U+0800.. has nothing of [α-ω] */
    gbnf_free(g);
    g = compile("root ::= [^\\x00-\\x7F]+");
    accepts(g, "é€😀"), rejects(g, "a"), rejects(g, "éa");
    refuses_at(g, "\xc3\xa9\xc0", 2), refuses_at(g, "\xed\xa0\x80", 1), refuses_at(g, "\xf4\x90", 1);
    refuses_at(g, "\xe0\x9f", 1); /* overlong */
    st = gbnf_state_new(g);
    EXPECT(gbnf_state_feed(st, "\xf0\x9f", 2) && gbnf_state_feed(st, "\x98", 1) && gbnf_state_feed(st, "\x80", 1) &&
               gbnf_state_done(st),
           "😀 in three feeds");
    gbnf_state_free(st), gbnf_free(g);
    g = compile("root ::= [ぁ-ゟ]+ \"。\"");
    accepts(g, "ひらがな。"), rejects(g, "カタカナ。");
    gbnf_free(g);
    g = compile("root ::= [\\u0100-\\U0001F000]"); /* U+0800..U+FFFF: an E0 lead meets it, ED too, not C2 */
    refuses_at(g, "\xc2", 0);
    st = gbnf_state_new(g);
    EXPECT(gbnf_state_feed(st, "\xed", 1), "ED: U+D000..U+D7FF");
    gbnf_state_free(st), gbnf_free(g);
    g = compile("root ::= a\na ::= \"é\" | \"x\" | [ぁ-ゟ]"); /* a top standing for three: C3, E3 may begin one */
    refuses_at(g, "\xce", 0), refuses_at(g, "\xe4", 0), accepts(g, "é"), accepts(g, "ゟ");
    gbnf_free(g);
    g = compile("root ::= [\\uD800-\\uDFFF] | \"x\""); /* surrogates: no UTF-8 reaches them */
    refuses_at(g, "\xed", 0);
    gbnf_free(g);
}

static void test_any_and_escapes(void) {
    gbnf_grammar *g = compile("root ::= \"<\" .{3} \">\"");
    accepts(g, "<abc>"), accepts(g, "<é😀\n>"), accepts(g, "<>>>>"), rejects(g, "<ab>"), rejects(g, "<abcd>");
    gbnf_free(g);
    g = compile("root ::= \"\\x41\\u00e9\\U0001F600\\n\\t\\r\\\\\\\"\\[\\]\" [\\]\\[\\\\^-] [\\x30-\\x39]");
    accepts(g, "Aé😀\n\t\r\\\"[]]0"), accepts(g, "Aé😀\n\t\r\\\"[][5"), accepts(g, "Aé😀\n\t\r\\\"[]\\9");
    accepts(g, "Aé😀\n\t\r\\\"[]^1"), accepts(g, "Aé😀\n\t\r\\\"[]-2"), rejects(g, "Aé😀\n\t\r\\\"[]a1");
    gbnf_free(g);
    g = compile("root ::= [^\"\\\\] \"\\\"\" [^]");
    accepts(g, "a\"b"), accepts(g, "é\"\""), rejects(g, "\"\"a"), rejects(g, "\\\"a");
    gbnf_free(g);
}

static void test_layout(void) { /* rules over several lines, comments, forward references */
    gbnf_grammar *g = compile("# a comment first\n\n"
                              "root ::= greeting # the start\n"
                              "   \" \" name\n"
                              "      | \"bye\"   # a newline before | goes on\n"
                              "greeting ::=\n"
                              "  \"hi\" |\n"
                              "  \"hello\"\n"
                              "name ::= (\n"
                              "   # inside parentheses newlines are space\n"
                              "   [A-Z]\n"
                              "   [a-z]*\n"
                              ")\r\n"
                              "empty ::=\n"
                              "unused ::= empty \"z\"\n");
    accepts(g, "hi Ann"), accepts(g, "hello Bo"), accepts(g, "bye"), rejects(g, "hi"), rejects(g, "hey Ann");
    gbnf_free(g);
    g = compile("root::=a a\na::=\"x\"|\"y\"");
    accepts(g, "xy"), rejects(g, "x");
    gbnf_free(g);
}

static void test_limits(void) {
    gbnf_grammar *g = compile("root ::= \"(\" root \")\" | \"x\"");
    char buf[1024];
    memset(buf, '(', 200), buf[200] = 'x', memset(buf + 201, ')', 200);
    EXPECT(sentence(g, buf, 401, NULL), "200 parentheses deep");
    memset(buf, '(', 300);
    EXPECT(refused_at(g, buf, 300) > 200, "300 parentheses deep: refused past the depth limit");
    gbnf_free(g);
    /* 2^n readings after n x's: past 4096 the feed fails, quickly */
    g = compile("root ::= a \"b\"\na ::= \"x\" a \"y\" | \"x\" a \"z\" | \"\"");
    memset(buf, 'x', 40);
    int at = refused_at(g, buf, 40);
    EXPECT(at >= 10 && at <= 13, "too many readings refused at %d", at);
    EXPECT(sentence(g, "xxxyzyb", 7, NULL), "a reading in few ways");
    gbnf_state *many = gbnf_state_new(g), *copy = gbnf_state_new(g), *spoilt = gbnf_state_new(g);
    EXPECT(gbnf_state_feed(many, buf, 9), "512 readings");
    EXPECT(!gbnf_state_feed(spoilt, "q", 1) && gbnf_state_copy(spoilt, many), "a spoilt state copied over");
    EXPECT(gbnf_state_copy(copy, many) && gbnf_state_feed(copy, "zzyyzzyzyb", 10) && gbnf_state_done(copy),
           "a copy that grew its memory");
    EXPECT(gbnf_state_feed(spoilt, "yyyyyyyyyb", 10) && gbnf_state_done(spoilt), "... and another");
    gbnf_state *dup = gbnf_state_dup(many), *dup2 = dup ? gbnf_state_dup(dup) : NULL;
    EXPECT(dup2 && gbnf_state_copy(copy, dup2) && gbnf_state_feed(copy, "zyzyzyzyzb", 10) && gbnf_state_done(copy),
           "a duplicate's duplicate, copied from");
    EXPECT(dup && gbnf_state_feed(dup, "zzzzzzzzzb", 10) && gbnf_state_done(dup), "a duplicate fed (its scratch made)");
    EXPECT(dup2 && gbnf_state_copy(dup2, dup) && gbnf_state_done(dup2), "a duplicate copied to");
    gbnf_state_free(many), gbnf_state_free(copy), gbnf_state_free(spoilt), gbnf_state_free(dup), gbnf_state_free(dup2);
    gbnf_free(g);
    /* 2^40 ways to read nothing before "a": the grammar's closures read it in one */
    char src[2048] = "root ::= ";
    for (int i = 0; i < 40; i++) strcat(src, "(\"\" | \"\") ");
    strcat(src, "\"a\"");
    g = compile(src);
    EXPECT(g && sentence(g, "a", 1, NULL), "forty empty choices");
    gbnf_free(g);
    /* 2^100, too deep for closures: read step by step, past the step limit before its first
     * character, so no reply could ever be read: refused when compiled, not hung */
    strcpy(src, "root ::= ");
    for (int i = 0; i < 100; i++) strcat(src, "(\"\" | \"\") ");
    strcat(src, "\"a\"");
    refused(src, "line 1, column 1", "rule 'root' is too ambiguous: before its first character");
    /* ... and past it only after a character: the feed says it was the limit, not the grammar */
    strcpy(src, "root ::= \"b\" ");
    for (int i = 0; i < 100; i++) strcat(src, "(\"\" | \"\") ");
    strcat(src, "\"a\"");
    g = compile(src);
    gbnf_state *st = g ? gbnf_state_new(g) : NULL;
    EXPECT(st && !gbnf_state_over(st), "the empty reply, within the limits");
    EXPECT(st && !gbnf_state_feed(st, "b", 1) && gbnf_state_over(st), "an exponential expansion, over the limit");
    gbnf_state_free(st), gbnf_free(g);
}

static void test_errors(void) {
    /* grammars that allow nothing, or less than they say */
    refused("root ::= [] | \"a\"", "line 1, column 10", "empty character class: it matches no character");
    refused("root ::= \"a\" [^\\x00-\\U0010FFFF]", "line 1, column 14", "empty character class");
    refused("root ::= \"a\" x\nx ::= \"b\" x", "line 2, column 1",
            "rule 'x' can match no text: each of its alternatives recurses without end");
    refused("root ::= x | \"a\"\nx ::= (\"b\" y)+\ny ::= x \"c\" | \"(\" y \")\"", "line 2, column 1",
            "rule 'x' can match no text");
    refused("root ::= \"a\"\nunused ::= unused \"b\" | \"c\" unused", "line 2", "left-recursive");
    refused("root ::= \"a\"\nunused ::= \"c\" unused", "line 2, column 1", "rule 'unused' can match no text");
    refused("root ::= foo", "line 1, column 10", "undefined rule 'foo'");
    refused("root ::= \"a\"\n\nx ::= \"b\" bar-baz", "line 3, column 11", "undefined rule 'bar-baz'");
    refused("a ::= \"x\"", "line 1, column 10", "no rule 'root'");
    refused("root ::= root \"x\"", "line 1, column 1", "rule 'root' is left-recursive");
    refused("root ::= a\na ::= b? c \"x\"\nb ::= \"y\"\nc ::= a \"z\"", "line 2, column 1", "'a' is left-recursive");
    refused("root ::= e* \"x\"\ne ::= \"\" | f\nf ::= root", "line 1", "'root' is left-recursive");
    refused("root ::= (\"a\"?)*", "line 1, column 10", "in rule 'root': a repetition");
    refused("root ::= \"abc", "line 1, column 10", "unterminated string");
    refused("root ::= [abc", "line 1, column 10", "unterminated character class");
    refused("root ::= (\"a\"\n  \"b\"", "line 1, column 10", "unterminated '('");
    refused("root ::= \"a\")", "line 1, column 13", "unmatched ')'");
    refused("root ::= \"\\q\"", "line 1, column 11", "bad escape");
    refused("root ::= [\\d]", "line 1, column 11", "bad escape");
    refused("root ::= \"\\x4\"", "line 1, column 11", "hex digits");
    refused("root ::= \"\\U00110000\"", "line 1, column 11", "past U+10FFFF");
    refused("root ::= \"a\"{5,2}", "line 1, column 13", "{5,2}");
    refused("root ::= \"a\"{300}", "line 1, column 14", "over 256");
    refused("root ::= \"a\"{2", "line 1, column 13", "unterminated {m,n}");
    refused("root ::= \"a\"{x}", "line 1, column 14", "expected a number");
    refused("root ::= [z-a]", "line 1, column 11", "backwards");
    refused("root ::= \"\xff\"", "line 1, column 11", "invalid UTF-8");
    refused("root ::= <think> \"x\"", "line 1, column 10", "token references");
    refused("root ::= !<[1000]>", "line 1, column 10", "token references");
    refused("root ::= * \"a\"", "line 1, column 10", "repeats nothing");
    refused("root = \"a\"", "line 1, column 6", "expected '::='");
    refused("root ::= \"a\" b ::= \"c\"", "line 1, column 16", "'::=' in the middle");
    refused("root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1", "rule 'root' defined twice");
    refused("\"a\" ::= x", "line 1, column 1", "expected a rule name");
    refused("", "line 1, column 1", "empty grammar");
    refused("  # only a comment\n\n", "line 1, column 1", "empty grammar");
    refused("root ::= \"a\\", "line 1, column 12", "unterminated escape");
    refused("root ::= \"a\" \x01", "line 1, column 14", "unexpected byte 0x01");
    refused_n("root ::= \"a\"\0", 13, "line 1, column 13", "unexpected byte 0x00");

    static char deep[20100];
    strcpy(deep, "root ::= ");
    for (int i = 0; i < 10000; i++) strcat(deep + 9 + i, "(");
    refused(deep, "line 1, column 74", "nested more than 64");
    strcat(deep, "\"a\"");
    for (int i = 0; i < 10000; i++) strcat(deep + 10012 + i, ")");
    refused(deep, "line 1", "nested more than 64");

    static char big[80000];
    size_t n = (size_t)sprintf(big, "root ::= r0\n");
    for (int i = 0; i < 1100; i++) n += (size_t)sprintf(big + n, "r%d ::= \"a\" r%d\n", i, i + 1);
    sprintf(big + n, "r1100 ::= \"b\"\n");
    refused(big, "line 1", "grammar too big");
    n = (size_t)sprintf(big, "root ::=");
    for (int i = 0; i < 5; i++) n += (size_t)sprintf(big + n, " [a-%c]{0,256}", 'v' + i); /* 5 chains, not shared */
    refused_n(big, n, "line 1, column ", "rules once groups and repetitions are rewritten");
    n = (size_t)sprintf(big, "root ::=");
    for (int i = 0; i < 1000; i++) n += (size_t)sprintf(big + n, " [a-z]{0,9}"); /* one chain, shared */
    gbnf_grammar *g = compile(big);
    gbnf_free(g);
    n = (size_t)sprintf(big, "root ::=");
    while (n < 70000) n += (size_t)sprintf(big + n, " \"a\"");
    refused_n(big, n, "line 1", "grammar too big: 700");
    n = (size_t)sprintf(big, "root ::=");
    for (int i = 0; i < 5000; i++) n += (size_t)sprintf(big + n, " \"ab\"{256}");
    refused_n(big, n, "line 1", "elements once repetitions are expanded");

    char err[8];
    EXPECT(!gbnf_compile("x", 1, err, sizeof err) && strlen(err) == 7, "a short message buffer: '%s'", err);
    EXPECT(!gbnf_compile("x", 1, NULL, 0), "no message buffer");
    EXPECT(!gbnf_compile(NULL, 0, err, sizeof err), "no text");
}

/* garbage and truncated grammars: compiled or refused with a message, never a crash */
static void fuzz_one(const char *src, size_t n, int *compiled) {
    char err[256] = "";
    gbnf_grammar *g = gbnf_compile(src, n, err, sizeof err);
    EXPECT(g || !strncmp(err, "line ", 5), "refused without a message: %.*s", (int)n, src);
    if (!g) return;
    ++*compiled;
    gbnf_state *st = gbnf_state_new(g), *cp = gbnf_state_new(g);
    for (int i = 0; i < 20 && st; i++) {
        char c = (char)(next_rand() % 128);
        gbnf_state_copy(cp, st);
        if (gbnf_state_feed(cp, &c, 1)) gbnf_state_copy(st, cp);
        gbnf_state_done(st);
    }
    gbnf_state_free(st), gbnf_state_free(cp), gbnf_free(g);
}

static void test_garbage(void) {
    int compiled = 0;
    size_t n = strlen(json_gbnf);
    for (size_t k = 0; k <= n; k++) fuzz_one(json_gbnf, k, &compiled);
    static const char *bits[] = {"root", " ::= ", "::=",  "a", "b", " ", "\n",   "|",         "(",     ")",  "\"x\"",
                                 "\"",   "[a-z]", "[^",   "]", "*", "+", "?",    "{2}",       "{1,3}", "{,", "}",
                                 "\\",   "\\x4",  "#c\n", ".", "<", "é", "\xff", "root ::= ", "-",     "\t", "\r"};
    char buf[256];
    for (int w = 0; w < 30000; w++) {
        size_t len = next_rand() % 2 ? (size_t)sprintf(buf, "root ::= ") : 0;
        for (int k = 1 + (int)(next_rand() % 16); k > 0; k--) {
            const char *b = bits[next_rand() % (sizeof bits / sizeof *bits)];
            memcpy(buf + len, b, strlen(b)), len += strlen(b);
        }
        fuzz_one(buf, len, &compiled);
    }
    for (int w = 0; w < 3000; w++) { /* bytes */
        size_t len = next_rand() % 64;
        for (size_t i = 0; i < len; i++) buf[i] = (char)next_rand();
        fuzz_one(buf, len, &compiled);
    }
    EXPECT(compiled > 300, "only %d garbage grammars compiled", compiled);
    printf("garbage: %d of %d grammars compiled, the rest refused with a message\n", compiled,
           30000 + 3000 + (int)n + 1);
}

/* the example grammars where present: each compiles or is refused with a message (printed) */
static void test_examples(void) {
    const char *dir = "/tmp/llsrc/grammars";
    DIR *d = opendir(dir);
    if (!d) {
        printf("examples: %s absent, skipped\n", dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl < 5 || strcmp(e->d_name + nl - 5, ".gbnf")) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        static char src[GBNF_MAX_TEXT + 2];
        size_t n = fread(src, 1, sizeof src, f);
        fclose(f);
        char err[512] = "";
        gbnf_grammar *g = gbnf_compile(src, n, err, sizeof err);
        EXPECT(g || !strncmp(err, "line ", 5), "%s: refused without a message", e->d_name);
        printf("example %-16s %s%s\n", e->d_name, g ? "compiles" : "refused: ", g ? "" : err);
        if (g && !strcmp(e->d_name, "json.gbnf")) accepts(g, "{\"a\": [1, 2.5, \"x\"], \"b\": {}}");
        if (g && !strcmp(e->d_name, "arithmetic.gbnf")) accepts(g, "a+b*3= x\n");
        if (g && !strcmp(e->d_name, "chess.gbnf")) accepts(g, "1. e4 e5\n2. Nf3 Nc6\n");
        if (g && !strcmp(e->d_name, "c.gbnf")) accepts(g, "int main(){return 0;}");
        gbnf_free(g);
    }
    closedir(d);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* one copy and one feed of a piece, as the mask does for each token, mid-object */
static void timing(const gbnf_grammar *g) {
    static const char mid[] = "{\"name\": \"Ann\", \"tags\": [\"x\", \"y\"], \"n\": {\"k\": 12, \"v\": ";
    static const char *pieces[] = {"\"hello\"", " 12", "true", "{", "\"a", "\n  ", "[1,", "\"é\"", "x", "}", "\"k\":"};
    gbnf_state *st = gbnf_state_new(g), *tmp = gbnf_state_new(g);
    EXPECT(gbnf_state_feed(st, mid, sizeof mid - 1), "the timing's prefix");
    int reps = 100000, n = (int)(sizeof pieces / sizeof *pieces), taken = 0;
    size_t len[16];
    for (int k = 0; k < n; k++) len[k] = strlen(pieces[k]);
    double t0 = now();
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < n; k++) {
            gbnf_state_copy(tmp, st);
            taken += gbnf_state_feed(tmp, pieces[k], len[k]);
        }
    double ns = (now() - t0) * 1e9 / ((double)reps * n);
    double t1 = now();
    for (int r = 0; r < reps * n; r++) gbnf_state_copy(tmp, st);
    double ns_copy = (now() - t1) * 1e9 / ((double)reps * n);
    EXPECT(taken == reps * 8, "pieces taken: %d", taken / reps);
    printf("timing: copy + feed of a 1-7 byte piece mid-object: %.0f ns (the copy alone %.0f ns)\n", ns, ns_copy);
    gbnf_state_free(st), gbnf_state_free(tmp);
}

int main(void) {
    test_yes_no();
    test_arithmetic();
    gbnf_grammar *json = compile(json_gbnf);
    gbnf_grammar *wide = compile_wide_json();
    if (wide) {
        test_json(wide);
        int whole = json_walks(wide, 300);
        EXPECT(whole > 100, "only %d random walks were whole", whole);
    }
    gbnf_free(wide);
    if (json) {
        test_json(json);
        int whole = json_walks(json, 3000);
        EXPECT(whole > 1000, "only %d random walks were whole", whole);
        printf("random walks: %d of 3000 whole, each parsed by cJSON\n", whole);
        timing(json);
    }
    gbnf_free(json);
    test_repetition();
    test_unicode();
    test_any_and_escapes();
    test_layout();
    test_limits();
    test_errors();
    test_garbage();
    test_examples();
    printf("test_serve_gbnf: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
