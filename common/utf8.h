/*
 * utf8.h — the one UTF-8 decoder (header-only, like the rest of common/): RFC 3629's well-formed
 * sequences only (no overlong form, no surrogate, nothing past U+10FFFF), for the tokenizer (its
 * sanitizer and its walks over text), the compiler's readers (safetensors' header) and the
 * server's grammars (GBNF literals and classes, JSON schemas' strings).
 */
#ifndef RSR_COMMON_UTF8_H
#define RSR_COMMON_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The bytes of a character whose first byte is b (1 to 4), 0 when b begins none (a continuation
 * byte, C0, C1, F5 to FF). */
static inline int utf8_lead_length(unsigned char b) {
    return b < 0x80 ? 1 : b < 0xC2 ? 0 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF5 ? 4 : 0;
}

/* The character at s (n > 0 bytes left): its length (1 to 4), with *cp its code point, when it is
 * well formed; else minus the length of its maximal invalid subpart (1 to 3: the bytes that the
 * WHATWG decoder replaces with one U+FFFD), *cp untouched. Reads no byte past the first that
 * cannot continue the character, so a NUL-terminated string may pass a large n. */
static inline int utf8_scan(const unsigned char *s, size_t n, uint32_t *cp) {
    const unsigned char b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    int need;
    unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range, narrower after E0, ED, F0, F4 */
    if (b >= 0xC2 && b <= 0xDF)
        need = 1;
    else if (b >= 0xE0 && b <= 0xEF)
        need = 2, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    else if (b >= 0xF0 && b <= 0xF4)
        need = 3, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    else
        return -1;
    uint32_t v = b & (0x3Fu >> need);
    int got = 0;
    while (got < need && (size_t)got + 1 < n && s[got + 1] >= lo && s[got + 1] <= hi) {
        v = v << 6 | (s[got + 1] & 0x3Fu);
        got++, lo = 0x80, hi = 0xBF;
    }
    if (got < need) return -(got + 1);
    *cp = v;
    return need + 1;
}

#endif
