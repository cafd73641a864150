/*
 * test_utf8.c — the one UTF-8 decoder (common/utf8.h) against a reference built from the encoder
 * alone: every Unicode scalar value encoded as RFC 3629 says (the shortest form), and from those
 * encodings the set of complete sequences and of their proper prefixes. A sequence is well formed
 * exactly when it is one of the encodings; its maximal invalid subpart (what one U+FFFD replaces)
 * is its longest proper prefix that begins some encoding, at least one byte; a lead byte's length
 * is that of the encodings it begins. Checked: every
 * scalar value's encoding, every sequence of one and two bytes, and three- and four-byte
 * sequences over every lead byte with the continuation bytes at the ranges' edges.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static int failures, checks;
static uint8_t *complete, *prefix; /* bitmaps over sequences of up to 3 bytes, keyed len<<24 | bytes */

static size_t key(const unsigned char *s, int len) {
    size_t k = (size_t)len << 24;
    for (int i = 0; i < len; i++) k |= (size_t)s[i] << (8 * (2 - i));
    return k;
}
static void set(uint8_t *map, size_t k) { map[k >> 3] |= (uint8_t)(1u << (k & 7)); }
static int has(const uint8_t *map, size_t k) { return map[k >> 3] >> (k & 7) & 1; }

static int encode(uint32_t cp, unsigned char out[4]) {
    if (cp < 0x80) return out[0] = (unsigned char)cp, 1;
    if (cp < 0x800) return out[0] = (unsigned char)(0xC0 | cp >> 6), out[1] = (unsigned char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12), out[1] = (unsigned char)(0x80 | (cp >> 6 & 63));
        out[2] = (unsigned char)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18), out[1] = (unsigned char)(0x80 | (cp >> 12 & 63));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 63)), out[3] = (unsigned char)(0x80 | (cp & 63));
    return 4;
}

/* What utf8_scan must say of s (n bytes): the length of a complete encoding at its start, or
 * minus its maximal subpart. Four-byte encodings are complete where their three-byte prefix is a
 * prefix of some encoding and the fourth is any continuation byte (every such completes one). */
static int expected(const unsigned char *s, int n) {
    for (int len = 1; len <= 3 && len <= n; len++)
        if (has(complete, key(s, len))) return len;
    if (n >= 4 && has(prefix, key(s, 3)) && s[0] >= 0xF0 && (s[3] & 0xC0) == 0x80) return 4;
    int longest = 1;
    for (int len = 1; len <= 3 && len <= n; len++)
        if (has(prefix, key(s, len))) longest = len;
    return -longest;
}

static void check(const unsigned char *s, int n) {
    uint32_t got_cp = 0xFFFFFFFF;
    int want = expected(s, n), got = utf8_scan(s, (size_t)n, &got_cp);
    unsigned char back[4];
    checks++; /* a code point decoded is the one whose encoding was read */
    if (got != want || (want > 0 && (encode(got_cp, back) != want || memcmp(back, s, (size_t)want)))) {
        if (failures++ < 10) {
            fprintf(stderr, "FAIL:");
            for (int i = 0; i < n; i++) fprintf(stderr, " %02X", s[i]);
            fprintf(stderr, ": utf8_scan %d (U+%04X), expected %d\n", got, got_cp, want);
        }
    }
}

int main(void) {
    complete = calloc((size_t)4 << 21, 1), prefix = calloc((size_t)4 << 21, 1);
    if (!complete || !prefix) return 1;
    unsigned char e[4];
    int lead[256] = {0}; /* the length of the encodings that begin with each byte; 0: none */
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        int len = encode(cp, e);
        lead[e[0]] = len;
        if (len <= 3) set(complete, key(e, len));
        for (int k = 1; k < len && k <= 3; k++) set(prefix, key(e, k));
        uint32_t got = 0;
        checks++;
        if (utf8_scan(e, (size_t)len, &got) != len || got != cp)
            if (failures++ < 10) fprintf(stderr, "FAIL: U+%04X not decoded from its encoding\n", cp);
    }
    for (int b = 0; b < 256; b++, checks++)
        if (utf8_lead_length((unsigned char)b) != lead[b] && failures++ < 10)
            fprintf(stderr, "FAIL: utf8_lead_length(%02X) %d, expected %d\n", b, utf8_lead_length((unsigned char)b),
                    lead[b]);
    unsigned char s[4];
    for (int a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        check(s, 1);
        for (int b = 0; b < 256; b++) s[1] = (unsigned char)b, check(s, 2);
    }
    static const unsigned char edge[] = {0x00, 0x41, 0x7F, 0x80, 0x81, 0x8F, 0x90,
                                         0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xF4, 0xFF};
    const int ne = (int)sizeof edge;
    for (int a = 0x80; a < 256; a++)
        for (int b = 0; b < 256; b++)
            for (int c = 0; c < ne; c++) {
                s[0] = (unsigned char)a, s[1] = (unsigned char)b, s[2] = edge[c];
                check(s, 3);
                for (int d = 0; d < ne; d++) s[3] = edge[d], check(s, 4);
            }
    printf("test_utf8: %d checks, %d failed\n", checks, failures);
    free(complete), free(prefix);
    return failures != 0;
}
