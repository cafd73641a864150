/* jinja_lib.c — the values of the Jinja interpreter (jinja.c describes the whole): memory and
 * strings, UTF-8 with JavaScript's view of it (white space, UTF-16 lengths and indices, case), numbers
 * printed as JavaScript prints them, JSON, the comparisons, and the library: attributes and methods,
 * the global functions, filters and tests, each as the reference renderer (@huggingface/jinja)
 * defines it for the value's type. */
#define _POSIX_C_SOURCE 200809L
#include "jinja_internal.h"
#include "tokenizer.h" /* utf8_encode */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- memory and strings ---- */

void *jx_alloc(jctx *c, size_t n, int line) {
    void *p = jinja_arena_alloc(&c->arena, n);
    if (!p) jinja_fail(&c->e, line, "the template needs more than %u MiB of memory", JINJA_MAX_MEMORY >> 20);
    return p;
}

void jx_work(jctx *c, long long n, int line) {
    if ((c->work += n) > JINJA_MAX_WORK)
        jinja_fail(&c->e, line, "the template runs too long (over %lld steps)", JINJA_MAX_WORK);
}

void jx_put(jctx *c, jsb *b, const char *p, size_t n, int line) {
    if (!n) return;
    jx_work(c, (long long)(n >> 4), line);
    if (b->cap - b->n < n) {
        size_t limit = b->heap ? JINJA_MAX_OUTPUT : JINJA_MAX_MEMORY;
        if (n > limit || b->n > limit - n)
            jinja_fail(&c->e, line, "%s longer than %u MiB", b->heap ? "the output is" : "a string is",
                       (unsigned)(limit >> 20));
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n) cap *= 2;
        char *q;
        if (b->heap) {
            if (!(q = realloc(b->p, cap))) jinja_fail(&c->e, line, "out of memory");
        } else {
            q = jx_alloc(c, cap, line);
            if (b->n) memcpy(q, b->p, b->n);
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void jx_puts(jctx *c, jsb *b, const char *p, int line) { jx_put(c, b, p, strlen(p), line); }

static const jv none = {JV_NONE, {0}};

static jv jx_str(jsb *b) { return vstr((jstr){b->p ? b->p : "", b->n}); }

jv jx_cstr(jctx *c, const char *p, size_t n, int line) {
    char *q = jx_alloc(c, n + 1, line);
    if (n) memcpy(q, p, n);
    return vstr((jstr){q, n});
}

jlist *jx_list(jctx *c, int n, int line) {
    jlist *l = jx_alloc(c, sizeof *l, line);
    l->n = n;
    l->v = jx_alloc(c, (size_t)(n ? n : 1) * sizeof *l->v, line);
    return l;
}

static jv vlist(jlist *l) {
    jv v = {JV_LIST, {0}};
    v.u.l = l;
    return v;
}

jdict *jx_dict(jctx *c, int cap, int line) {
    jdict *d = jx_alloc(c, sizeof *d, line);
    d->cap = cap > 0 ? cap : 4;
    d->k = jx_alloc(c, (size_t)d->cap * sizeof *d->k, line);
    d->v = jx_alloc(c, (size_t)d->cap * sizeof *d->v, line);
    return d;
}

static uint32_t key_hash(jstr k) { /* FNV-1a */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < k.n; i++) h = (h ^ (uint8_t)k.p[i]) * 16777619u;
    return h;
}

static bool key_is(jstr a, jstr b) { return a.n == b.n && !memcmp(a.p, b.p, a.n); }

/* The slot of key k: where it is, or the empty one where it would go. */
static int32_t *dict_slot(const jdict *d, jstr k) {
    for (uint32_t i = key_hash(k) & d->mask;; i = (i + 1) & d->mask)
        if (!d->slot[i] || key_is(d->k[d->slot[i] - 1], k)) return &d->slot[i];
}

/* The index for d's capacity, every key in it. */
static void dict_index(jctx *c, jdict *d, int line) {
    uint32_t size = 64;
    while (size < 2 * (uint32_t)d->cap) size *= 2;
    d->slot = jx_alloc(c, size * sizeof *d->slot, line);
    d->mask = size - 1;
    for (int i = 0; i < d->n; i++) *dict_slot(d, d->k[i]) = i + 1;
}

jv *jx_dict_get(const jdict *d, jstr k) {
    if (d->slot) {
        int32_t at = *dict_slot(d, k);
        return at ? &d->v[at - 1] : NULL;
    }
    for (int i = 0; i < d->n; i++)
        if (key_is(d->k[i], k)) return &d->v[i];
    return NULL;
}

void jx_dict_set(jctx *c, jdict *d, jstr k, jv v, int line) {
    jv *have = jx_dict_get(d, k);
    if (have) {
        *have = v;
        return;
    }
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 4;
        jstr *keys = jx_alloc(c, (size_t)cap * sizeof *keys, line);
        jv *vals = jx_alloc(c, (size_t)cap * sizeof *vals, line);
        if (d->n) memcpy(keys, d->k, (size_t)d->n * sizeof *keys), memcpy(vals, d->v, (size_t)d->n * sizeof *vals);
        d->k = keys, d->v = vals, d->cap = cap;
        if (d->slot) dict_index(c, d, line); /* room for the new capacity */
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
    if (d->slot)
        *dict_slot(d, k) = d->n;
    else if (d->n > JDICT_LINEAR)
        dict_index(c, d, line);
}

static jv vdict(jvtype t, jdict *d) {
    jv v = {t, {0}};
    v.u.d = d;
    return v;
}

int jx_streq(jstr a, const char *b) { return a.n == strlen(b) && !memcmp(a.p, b, a.n); }

const char *jx_type_name(jv v) {
    static const char *names[] = {"an undefined value", "none",   "a boolean", "an integer",  "a float",
                                  "a string",           "a list", "a dict",    "a namespace", "a function"};
    return v.t == JV_LIST && v.u.l->tuple ? "a tuple" : names[v.t];
}

/* ---- UTF-8, as JavaScript's UTF-16 strings see it ---- */

/* The code point at s[i] and its length in bytes; a byte that starts no valid sequence is U+FFFD, 1 byte. */
static uint32_t u8(const char *s, size_t n, size_t i, size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned c = u[i];
    *len = 1;
    if (c < 0x80) return c;
    size_t k = c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xF0 && c < 0xF5 ? 4 : 0;
    if (!k || i + k > n) return 0xFFFD;
    uint32_t cp = c & (k == 2 ? 0x1F : k == 3 ? 0x0F : 0x07);
    for (size_t j = 1; j < k; j++) {
        if ((u[i + j] & 0xC0) != 0x80) return 0xFFFD;
        cp = cp << 6 | (u[i + j] & 0x3F);
    }
    if ((k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0xFFFD;
    *len = k;
    return cp;
}

/* What JavaScript's trim and \s take for white space. */
static int js_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

size_t jx_space_at(const char *s, size_t n, size_t i) {
    size_t len;
    return i < n && js_space(u8(s, n, i, &len)) ? len : 0;
}

size_t jx_space_before(const char *s, size_t i) {
    if (!i) return 0;
    size_t j = i - 1;
    while (j > 0 && i - j < 4 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    size_t len;
    uint32_t cp = u8(s, i, j, &len);
    if (j + len != i) return js_space((unsigned char)s[i - 1]) ? 1 : 0;
    return js_space(cp) ? len : 0;
}

jstr jx_trim(jstr s, int left, int right) {
    size_t w;
    while (left && s.n && (w = jx_space_at(s.p, s.n, 0))) s.p += w, s.n -= w;
    while (right && s.n && (w = jx_space_before(s.p, s.n))) s.n -= w;
    return s;
}

static size_t u16_len(jstr s) {
    size_t n = 0, len;
    for (size_t i = 0; i < s.n; i += len) n += u8(s.p, s.n, i, &len) > 0xFFFF ? 2 : 1;
    return n;
}

/* The byte offsets of the code points of s, and its length in bytes at the end (n + 1 entries). */
static size_t *code_points(jctx *c, jstr s, size_t *n, int line) {
    size_t *at = jx_alloc(c, (s.n + 1) * sizeof *at, line), len, k = 0;
    for (size_t i = 0; i < s.n; i += len) {
        at[k++] = i;
        u8(s.p, s.n, i, &len);
    }
    at[k] = s.n;
    *n = k;
    return at;
}

/* s.at(i), counting UTF-16 code units; half of a surrogate pair is U+FFFD in UTF-8. */
static jv str_at(jctx *c, jstr s, double idx, int line) {
    size_t units = u16_len(s), len;
    if (!isfinite(idx)) return undef;
    idx = trunc(idx);
    if (idx < 0) idx += (double)units;
    if (idx < 0 || idx >= (double)units) return undef;
    size_t want = (size_t)idx, u = 0;
    for (size_t i = 0; i < s.n; i += len) {
        uint32_t cp = u8(s.p, s.n, i, &len);
        size_t w = cp > 0xFFFF ? 2 : 1;
        if (want < u + w) return w == 1 ? jx_cstr(c, s.p + i, len, line) : vstr((jstr){"\xEF\xBF\xBD", 3});
        u += w;
    }
    return undef;
}

/* ---- case ---- */

static uint32_t upper_cp(uint32_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 0xE0 && c <= 0xFE && c != 0xF7) || (c >= 0x3B1 && c <= 0x3CB && c != 0x3C2) ||
        (c >= 0x430 && c <= 0x44F) || (c >= 0xFF41 && c <= 0xFF5A))
        return c - 0x20;
    if (c == 0xB5) return 0x39C;
    if (c == 0xFF) return 0x178;
    if (c == 0x131) return 'I';
    if (c == 0x17F) return 'S';
    if ((c > 0x100 && c <= 0x137 && (c & 1) && c != 0x131) || (c > 0x14A && c <= 0x177 && (c & 1)) ||
        (c >= 0x13A && c <= 0x148 && !(c & 1)) || (c >= 0x17A && c <= 0x17E && !(c & 1)))
        return c - 1;
    if (c == 0x3C2) return 0x3A3;
    if (c == 0x3AC) return 0x386;
    if (c >= 0x3AD && c <= 0x3AF) return c - 0x25;
    if (c == 0x3CC) return 0x38C;
    if (c == 0x3CD || c == 0x3CE) return c - 0x3F;
    if (c >= 0x450 && c <= 0x45F) return c - 0x50;
    return c;
}

static uint32_t lower_cp(uint32_t c) {
    if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) ||
        (c >= 0x410 && c <= 0x42F) || (c >= 0xFF21 && c <= 0xFF3A))
        return c + 0x20;
    if (c == 0x178) return 0xFF;
    if ((c >= 0x100 && c <= 0x137 && !(c & 1) && c != 0x130) || (c >= 0x14A && c <= 0x177 && !(c & 1)) ||
        (c >= 0x139 && c <= 0x147 && (c & 1)) || (c >= 0x179 && c <= 0x17D && (c & 1)))
        return c + 1;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 0x25;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 0x3F;
    if (c >= 0x400 && c <= 0x40F) return c + 0x50;
    return c;
}

static int cased(uint32_t c) { return upper_cp(c) != c || lower_cp(c) != c; }

/* String.prototype.toUpperCase / toLowerCase, for the letters upper_cp and lower_cp know. */
static jv change_case(jctx *c, jstr s, int up, int line) {
    char *o = jx_alloc(c, s.n * 3 + 1, line); /* no mapping here more than triples a letter's bytes */
    size_t k = 0, len, prev_cased = 0;
    jx_work(c, (long long)s.n, line);
    for (size_t i = 0; i < s.n; i += len) {
        uint32_t cp = u8(s.p, s.n, i, &len), m = up ? upper_cp(cp) : lower_cp(cp);
        if (up && cp == 0xDF) {
            o[k++] = 'S', o[k++] = 'S';
        } else if (up && cp == 0x149) {
            k += (size_t)utf8_encode(0x2BC, o + k), o[k++] = 'N';
        } else if (!up && cp == 0x130) {
            o[k++] = 'i', k += (size_t)utf8_encode(0x307, o + k);
        } else if (cp == 0xFFFD || m == cp) {
            memcpy(o + k, s.p + i, len), k += len;
        } else {
            size_t next;
            if (!up && cp == 0x3A3 && prev_cased && !(i + len < s.n && cased(u8(s.p, s.n, i + len, &next))))
                m = 0x3C2; /* a final sigma */
            k += (size_t)utf8_encode(m, o + k);
        }
        prev_cased = cased(cp);
    }
    return vstr((jstr){o, k});
}

static int is_wordc(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* ASCII word characters that start a word, upper-cased. */
static jv title(jctx *c, jstr s, int line) {
    char *o = jx_alloc(c, s.n + 1, line);
    for (size_t i = 0; i < s.n; i++)
        o[i] = s.p[i] >= 'a' && s.p[i] <= 'z' && (i == 0 || !is_wordc(s.p[i - 1])) ? (char)(s.p[i] - 32) : s.p[i];
    return vstr((jstr){o, s.n});
}

/* The first UTF-16 code unit upper-cased, the rest as it is. */
static jv capitalize(jctx *c, jstr s, int line) {
    size_t len;
    if (!s.n) return vstr(s);
    uint32_t cp = u8(s.p, s.n, 0, &len);
    if (cp > 0xFFFF || cp == 0xFFFD) return vstr(s);
    jv first = change_case(c, (jstr){s.p, len}, 1, line);
    jsb b = {0};
    jx_put(c, &b, first.u.s.p, first.u.s.n, line);
    jx_put(c, &b, s.p + len, s.n - len, line);
    return jx_str(&b);
}

/* ---- numbers, as JavaScript prints them ---- */

static void js_number(double x, char out[40]) {
    if (isnan(x)) return (void)strcpy(out, "NaN");
    if (isinf(x)) return (void)strcpy(out, x < 0 ? "-Infinity" : "Infinity");
    if (x == 0) return (void)strcpy(out, "0");
    char e[40], digits[24];
    for (int p = 1; p <= 17; p++) { /* the shortest digits that read back as x */
        snprintf(e, sizeof e, "%.*e", p - 1, x);
        if (strtod(e, NULL) == x) break;
    }
    const char *m = e + (e[0] == '-');
    int k = 0, exp10 = atoi(strchr(e, 'e') + 1) + 1;
    for (; *m != 'e'; m++)
        if (*m != '.') digits[k++] = *m;
    while (k > 1 && digits[k - 1] == '0') k--;
    digits[k] = 0;
    char *o = out;
    if (x < 0) *o++ = '-';
    if (k <= exp10 && exp10 <= 21) {
        o += sprintf(o, "%s", digits);
        for (int i = k; i < exp10; i++) *o++ = '0';
        *o = 0;
    } else if (0 < exp10 && exp10 <= 21) {
        sprintf(o, "%.*s.%s", exp10, digits, digits + exp10);
    } else if (-6 < exp10 && exp10 <= 0) {
        o += sprintf(o, "0.");
        for (int i = exp10; i < 0; i++) *o++ = '0';
        sprintf(o, "%s", digits);
    } else {
        int e1 = exp10 - 1;
        sprintf(o, "%c%s%s%se%c%d", digits[0], k > 1 ? "." : "", digits + 1, "", e1 < 0 ? '-' : '+', e1 < 0 ? -e1 : e1);
    }
}

/* A float: "2.0" for an integral value, "-0.0" for minus zero. */
static void js_float(double x, char out[40]) {
    if (x == 0 && signbit(x))
        strcpy(out, "-0.0");
    else if (isfinite(x) && x == trunc(x) && fabs(x) < 1e21)
        snprintf(out, 40, "%.1f", x);
    else
        js_number(x, out);
}

/* ---- conversions ---- */

int jx_truthy(jv v) {
    switch (v.t) {
    case JV_BOOL: return v.u.b;
    case JV_INT:
    case JV_FLOAT: return v.u.n != 0 && !isnan(v.u.n);
    case JV_STR: return v.u.s.n > 0;
    case JV_LIST: return v.u.l->n > 0;
    case JV_DICT: return v.u.d->n > 0;
    case JV_NS:
    case JV_FUNC: return 1;
    default: return 0;
    }
}

/* The truth of the JavaScript value under v (a list or dict is always true). */
static int raw_truthy(jv v) { return v.t == JV_LIST || v.t == JV_DICT ? 1 : jx_truthy(v); }

typedef struct {
    long indent;
    const char *item_sep, *key_sep;
    size_t item_len, key_len;
    int ascii;
} json_opts;

static void json_string(jctx *c, jsb *b, jstr s, int ascii, int line) {
    char tmp[16];
    size_t start = 0, len;
    jx_put(c, b, "\"", 1, line);
    for (size_t i = 0; i < s.n; i += len) {
        unsigned char ch = (unsigned char)s.p[i];
        uint32_t cp = u8(s.p, s.n, i, &len);
        const char *esc = NULL;
        if (ch == '"')
            esc = "\\\"";
        else if (ch == '\\')
            esc = "\\\\";
        else if (ch == '\n')
            esc = "\\n";
        else if (ch == '\r')
            esc = "\\r";
        else if (ch == '\t')
            esc = "\\t";
        else if (ch == '\b')
            esc = "\\b";
        else if (ch == '\f')
            esc = "\\f";
        else if (ch < 0x20 || (ascii && cp >= 0x7F && cp <= 0xFFFF))
            snprintf(tmp, sizeof tmp, "\\u%04x", cp), esc = tmp;
        else if (ascii && cp > 0xFFFF)
            snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + (cp & 0x3FF)),
                esc = tmp;
        if (!esc) continue;
        jx_put(c, b, s.p + start, i - start, line);
        jx_puts(c, b, esc, line);
        start = i + len;
    }
    jx_put(c, b, s.p + start, s.n - start, line);
    jx_put(c, b, "\"", 1, line);
}

static void newline_indent(jctx *c, jsb *b, const json_opts *o, int depth, int line) {
    jx_put(c, b, "\n", 1, line);
    for (long i = 0; i < o->indent * depth; i++) jx_put(c, b, " ", 1, line);
}

static void tojson(jctx *c, jsb *b, jv v, const json_opts *o, int depth, int undef_null, int line) {
    char num[40];
    if (depth > JINJA_MAX_DEPTH) jinja_fail(&c->e, line, "a value nested more than %d levels deep", JINJA_MAX_DEPTH);
    switch (v.t) {
    case JV_NONE: return jx_puts(c, b, "null", line);
    case JV_UNDEF: return jx_puts(c, b, undef_null ? "null" : "undefined", line);
    case JV_BOOL: return jx_puts(c, b, v.u.b ? "true" : "false", line);
    case JV_INT:
    case JV_FLOAT:
        if (!isfinite(v.u.n)) return jx_puts(c, b, "null", line);
        js_number(v.u.n == 0 ? 0 : v.u.n, num);
        return jx_puts(c, b, num, line);
    case JV_STR: return json_string(c, b, v.u.s, o->ascii, line);
    case JV_LIST:
    case JV_DICT:
    case JV_NS: break;
    default: jinja_fail(&c->e, line, "cannot convert %s to JSON", jx_type_name(v));
    }
    if (v.t == JV_LIST && v.u.l->tuple) jinja_fail(&c->e, line, "cannot convert a tuple to JSON");
    int list = v.t == JV_LIST, n = list ? v.u.l->n : v.u.d->n;
    jx_put(c, b, list ? "[" : "{", 1, line);
    for (int i = 0; i < n; i++) {
        if (i) jx_put(c, b, o->item_sep, o->item_len, line);
        if (o->indent) newline_indent(c, b, o, depth + 1, line);
        if (!list) {
            json_string(c, b, v.u.d->k[i], o->ascii, line);
            jx_put(c, b, o->key_sep, o->key_len, line);
        }
        tojson(c, b, list ? v.u.l->v[i] : v.u.d->v[i], o, depth + 1, undef_null, line);
    }
    if (o->indent && n) newline_indent(c, b, o, depth, line);
    jx_put(c, b, list ? "]" : "}", 1, line);
}

static const json_opts plain_json = {0, ", ", ": ", 2, 2, 0};

/* How a value prints into the output: a float 2.0 as "2.0", a list or dict as JSON (undefined as
 * "undefined" there). */
void jx_to_str(jctx *c, jsb *b, jv v, int depth, int line) {
    char num[40];
    switch (v.t) {
    case JV_UNDEF: return jx_puts(c, b, "undefined", line);
    case JV_NONE: return jx_puts(c, b, "null", line);
    case JV_BOOL: return jx_puts(c, b, v.u.b ? "true" : "false", line);
    case JV_INT: js_number(v.u.n, num); return jx_puts(c, b, num, line);
    case JV_FLOAT: js_float(v.u.n, num); return jx_puts(c, b, num, line);
    case JV_STR: return jx_put(c, b, v.u.s.p, v.u.s.n, line);
    case JV_FUNC: jinja_fail(&c->e, line, "cannot print a function");
    default: return tojson(c, b, v, &plain_json, depth, 0, line);
    }
}

/* How JavaScript prints the value under v (String(x), Array.prototype.join): a float 2.0 is "2". */
void jx_raw_str(jctx *c, jsb *b, jv v, int line) {
    char num[40];
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: return;
    case JV_INT:
    case JV_FLOAT: js_number(v.u.n, num); return jx_puts(c, b, num, line);
    case JV_LIST:
        for (int i = 0; i < v.u.l->n; i++) {
            if (i) jx_put(c, b, ",", 1, line);
            jx_to_str(c, b, v.u.l->v[i], 1, line);
        }
        return;
    case JV_DICT:
    case JV_NS: return jx_puts(c, b, "[object Map]", line);
    default: return jx_to_str(c, b, v, 0, line);
    }
}

/* Number(s) of JavaScript: white space around a decimal, Infinity, or 0x/0o/0b digits; else NaN. */
static double js_to_number(jstr s) {
    s = jx_trim(s, 1, 1);
    if (!s.n) return 0;
    char buf[128];
    if (s.n >= sizeof buf) return NAN;
    memcpy(buf, s.p, s.n);
    buf[s.n] = 0;
    int base = s.n > 2 && buf[0] == '0' ? (buf[1] == 'x' || buf[1] == 'X'   ? 16
                                           : buf[1] == 'o' || buf[1] == 'O' ? 8
                                           : buf[1] == 'b' || buf[1] == 'B' ? 2
                                                                            : 0)
                                        : 0;
    if (base) {
        double v = 0;
        for (size_t i = 2; i < s.n; i++) {
            char ch = buf[i];
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : 99;
            if (d >= base) return NAN;
            v = v * base + d;
        }
        return v;
    }
    const char *p = buf + (buf[0] == '+' || buf[0] == '-');
    if (!strcmp(p, "Infinity")) return buf[0] == '-' ? -INFINITY : INFINITY;
    size_t digits = 0, i = 0;
    while (p[i] >= '0' && p[i] <= '9') i++, digits++;
    if (p[i] == '.')
        for (i++; p[i] >= '0' && p[i] <= '9';) i++, digits++;
    if (!digits) return NAN;
    if (p[i] == 'e' || p[i] == 'E') {
        i += (p[i + 1] == '+' || p[i + 1] == '-') + 1;
        if (!(p[i] >= '0' && p[i] <= '9')) return NAN;
        while (p[i] >= '0' && p[i] <= '9') i++;
    }
    return p[i] ? NAN : strtod(buf, NULL);
}

static int is_object(jv v) { return v.t == JV_LIST || v.t == JV_DICT || v.t == JV_NS || v.t == JV_FUNC; }
static const void *identity(jv v) {
    return v.t == JV_LIST ? (const void *)v.u.l : v.t == JV_FUNC ? (const void *)v.u.f : (const void *)v.u.d;
}

/* a == b of JavaScript on the values under a and b. */
int jx_loose_eq(jctx *c, jv a, jv b, int line) {
    int an = a.t == JV_UNDEF || a.t == JV_NONE, bn = b.t == JV_UNDEF || b.t == JV_NONE;
    if (an || bn) return an && bn;
    if (is_object(a) && is_object(b)) return identity(a) == identity(b);
    if (is_object(a) || is_object(b)) { /* the object becomes a string */
        jsb s = {0};
        jx_raw_str(c, &s, is_object(a) ? a : b, line);
        return jx_loose_eq(c, is_object(a) ? jx_str(&s) : a, is_object(a) ? b : jx_str(&s), line);
    }
    if (a.t == JV_BOOL) a = vnum(JV_INT, a.u.b);
    if (b.t == JV_BOOL) b = vnum(JV_INT, b.u.b);
    if (a.t == JV_STR && b.t == JV_STR) return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    double x = a.t == JV_STR ? js_to_number(a.u.s) : a.u.n, y = b.t == JV_STR ? js_to_number(b.u.s) : b.u.n;
    return x == y;
}

/* a === b of JavaScript on the values under a and b. */
int jx_strict_eq(jv a, jv b) {
    int anum = a.t == JV_INT || a.t == JV_FLOAT, bnum = b.t == JV_INT || b.t == JV_FLOAT;
    if (anum || bnum) return anum && bnum && a.u.n == b.u.n;
    if (a.t != b.t) return 0;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return 1;
    case JV_BOOL: return a.u.b == b.u.b;
    case JV_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    default: return identity(a) == identity(b);
    }
}

static int bytes_cmp(jstr a, jstr b) {
    int r = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);
    return r ? (r < 0 ? -1 : 1) : a.n < b.n ? -1 : a.n > b.n;
}

/* The ordering of sort and dictsort: numbers (and booleans), or strings. */
static int compare(jctx *c, jv a, jv b, int line) {
    if (a.t == JV_NONE || b.t == JV_NONE || a.t == JV_UNDEF || b.t == JV_UNDEF) {
        if (a.t == b.t) return 0;
        jinja_fail(&c->e, line, "cannot compare %s with %s", jx_type_name(a), jx_type_name(b));
    }
    int an = a.t == JV_INT || a.t == JV_FLOAT || a.t == JV_BOOL,
        bn = b.t == JV_INT || b.t == JV_FLOAT || b.t == JV_BOOL;
    if (an && bn) {
        double x = a.t == JV_BOOL ? a.u.b : a.u.n, y = b.t == JV_BOOL ? b.u.b : b.u.n;
        return x < y ? -1 : x > y;
    }
    if (a.t != JV_STR || b.t != JV_STR)
        jinja_fail(&c->e, line, "cannot compare %s with %s", jx_type_name(a), jx_type_name(b));
    return bytes_cmp(a.u.s, b.u.s); /* sort_by case-folds first where it should */
}

/* A stable merge sort of v by key (which it permutes alongside), as Array.prototype.sort sorts. */
static void sort_by(jctx *c, jv *v, jv *key, int n, int cs, int reverse, int line) {
    size_t size = (size_t)(n ? n : 1) * sizeof(jv);
    jv *tv = jx_alloc(c, size, line), *tk = jx_alloc(c, size, line);
    for (int i = 0; i < n && !cs; i++) /* case-folded once, not at each comparison */
        if (key[i].t == JV_STR) key[i] = change_case(c, key[i].u.s, 0, line);
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            for (int i = lo, j = mid, k = lo; i < mid || j < hi; k++) {
                int right = i >= mid || (j < hi && (reverse ? -1 : 1) * compare(c, key[j], key[i], line) < 0);
                int from = right ? j++ : i++;
                tv[k] = v[from], tk[k] = key[from];
            }
        }
        memcpy(v, tv, (size_t)n * sizeof *v);
        memcpy(key, tk, (size_t)n * sizeof *key);
        jx_work(c, n, line);
    }
}

/* ---- slices, attributes ---- */

static int bound(jctx *c, jv v, double *out, int line) {
    if (v.t == JV_UNDEF) return 0;
    if (v.t != JV_INT || isnan(v.u.n))
        jinja_fail(&c->e, line, "a slice's start, stop and step are integers, not %s", jx_type_name(v));
    *out = v.u.n;
    return 1;
}

jv jx_slice(jctx *c, jv obj, jv start, jv stop, jv step, int line) {
    if (obj.t != JV_LIST && obj.t != JV_STR)
        jinja_fail(&c->e, line, "only a list or a string can be sliced, not %s", jx_type_name(obj));
    size_t ncp = 0, *cps = obj.t == JV_STR ? code_points(c, obj.u.s, &ncp, line) : NULL;
    double len = obj.t == JV_LIST ? obj.u.l->n : (double)ncp, a = 0, b = len, st = 1;
    int has_a = bound(c, start, &a, line), has_b = bound(c, stop, &b, line);
    bound(c, step, &st, line);
    int dir = st > 0 ? 1 : st < 0 ? -1 : 0;
    if (dir >= 0) {
        a = a < 0 ? fmax(len + a, 0) : fmin(a, len);
        b = b < 0 ? fmax(len + b, 0) : fmin(b, len);
    } else {
        a = !has_a ? len - 1 : a < 0 ? fmax(len + a, -1) : fmin(a, len - 1);
        b = !has_b ? -1 : b < -1 ? fmax(len + b, -1) : fmin(b, len - 1);
    }
    double count = dir && dir * (b - a) > 0 ? ceil((b - a) / st) : 0;
    jx_work(c, (long long)count, line);
    if (obj.t == JV_LIST) {
        jlist *l = jx_list(c, (int)count, line);
        for (int k = 0; k < l->n; k++) l->v[k] = obj.u.l->v[(size_t)(a + k * st)];
        return vlist(l);
    }
    jsb out = {0};
    for (double k = 0; k < count; k++) {
        size_t i = (size_t)(a + k * st);
        jx_put(c, &out, obj.u.s.p + cps[i], cps[i + 1] - cps[i], line);
    }
    return jx_str(&out);
}

static const struct {
    const char *name;
    jfunc_id id;
} string_methods[] = {
    {"upper", F_UPPER},           {"lower", F_LOWER},   {"strip", F_STRIP},     {"title", F_TITLE},
    {"capitalize", F_CAPITALIZE}, {"rstrip", F_RSTRIP}, {"lstrip", F_LSTRIP},   {"startswith", F_STARTSWITH},
    {"endswith", F_ENDSWITH},     {"split", F_SPLIT},   {"replace", F_REPLACE}, {"get", F_GET},
    {"items", F_ITEMS},           {"keys", F_KEYS},     {"values", F_VALUES},   {"dictsort", F_DICTSORT}};

static jv bound_method(jctx *c, jv self, jstr name, int line) {
    int dict = self.t == JV_DICT;
    for (size_t k = 0; k < sizeof string_methods / sizeof *string_methods; k++) {
        if ((string_methods[k].id >= F_GET) != dict || !jx_streq(name, string_methods[k].name)) continue;
        jfunc *f = jx_alloc(c, sizeof *f, line);
        f->id = string_methods[k].id;
        f->self = self;
        jv v = {JV_FUNC, {0}};
        v.u.f = f;
        return v;
    }
    return undef;
}

/* obj.prop and obj[prop] */
jv jx_member(jctx *c, jv obj, jv prop, int line) {
    if (obj.t == JV_DICT || obj.t == JV_NS) {
        if (prop.t != JV_STR) jinja_fail(&c->e, line, "a dict's keys are strings, not %s", jx_type_name(prop));
        jv *v = jx_dict_get(obj.u.d, prop.u.s);
        return v ? *v : obj.t == JV_DICT ? bound_method(c, obj, prop.u.s, line) : undef;
    }
    if ((obj.t == JV_LIST || obj.t == JV_STR) && prop.t == JV_INT) {
        if (obj.t == JV_STR) return str_at(c, obj.u.s, prop.u.n, line);
        double i = trunc(prop.u.n), n = obj.u.l->n;
        if (i < 0) i += n;
        return isfinite(i) && i >= 0 && i < n ? obj.u.l->v[(size_t)i] : undef;
    }
    if (prop.t != JV_STR) jinja_fail(&c->e, line, "cannot index %s with %s", jx_type_name(obj), jx_type_name(prop));
    if ((obj.t == JV_LIST || obj.t == JV_STR) && jx_streq(prop.u.s, "length"))
        return vnum(JV_INT, obj.t == JV_LIST ? obj.u.l->n : (double)u16_len(obj.u.s));
    return obj.t == JV_STR ? bound_method(c, obj, prop.u.s, line) : undef;
}

/* An attribute path "a.b.0" of sort(attribute=) and map(attribute=). */
static jv attribute_path(jv v, jstr path) {
    size_t i = 0;
    while (1) {
        size_t j = i;
        while (j < path.n && path.p[j] != '.') j++;
        jstr part = {path.p + i, j - i};
        if (v.t == JV_DICT || v.t == JV_NS) {
            jv *x = jx_dict_get(v.u.d, part);
            v = x ? *x : undef;
        } else if (v.t == JV_LIST) {
            size_t k = 0;
            while (k < part.n && jx_space_at(part.p, part.n, k)) k += jx_space_at(part.p, part.n, k);
            double idx = 0;
            int digits = 0, neg = k < part.n && part.p[k] == '-';
            for (k += (k < part.n && (part.p[k] == '-' || part.p[k] == '+'));
                 k < part.n && part.p[k] >= '0' && part.p[k] <= '9'; k++)
                idx = idx * 10 + (part.p[k] - '0'), digits++;
            if (!digits || neg || idx >= v.u.l->n) return undef;
            v = v.u.l->v[(size_t)idx];
        } else {
            return undef;
        }
        if (j >= path.n) return v;
        i = j + 1;
    }
}

/* ---- functions ---- */

static jv arg(const jargs *a, int i, const char *kw, jv dflt) {
    if (i >= 0 && i < a->npos) return a->pos[i];
    for (int k = 0; kw && k < a->nkw; k++)
        if (jx_streq(a->kwk[k], kw)) return a->kwv[k];
    return dflt;
}

static void no_keywords(jctx *c, const jargs *a, const char *fn, int line) {
    if (a->nkw) jinja_fail(&c->e, line, "%s() takes no keyword arguments", fn);
}

static jv fn_namespace(jctx *c, const jargs *a, int line) {
    jdict *d = jx_dict(c, a->nkw + 4, line);
    if (a->npos > 1) jinja_fail(&c->e, line, "namespace() takes at most 1 positional argument");
    jv src = arg(a, 0, NULL, undef);
    if (src.t == JV_DICT) {
        for (int i = 0; i < src.u.d->n; i++) jx_dict_set(c, d, src.u.d->k[i], src.u.d->v[i], line);
    } else if (src.t == JV_LIST) {
        for (int i = 0; i < src.u.l->n; i++) {
            jv pair = src.u.l->v[i];
            size_t ncp = 0, *cp = pair.t == JV_STR ? code_points(c, pair.u.s, &ncp, line) : NULL;
            if (pair.t == JV_LIST && pair.u.l->n == 2 && pair.u.l->v[0].t == JV_STR)
                jx_dict_set(c, d, pair.u.l->v[0].u.s, pair.u.l->v[1], line);
            else if (pair.t == JV_STR && ncp == 2)
                jx_dict_set(c, d, (jstr){pair.u.s.p, cp[1]}, vstr((jstr){pair.u.s.p + cp[1], cp[2] - cp[1]}), line);
            else
                jinja_fail(&c->e, line, "namespace() takes a dict or a list of (key, value) pairs");
        }
    } else if (src.t != JV_UNDEF || a->npos) {
        jinja_fail(&c->e, line, "namespace() takes a dict or a list of (key, value) pairs, not %s", jx_type_name(src));
    }
    for (int k = 0; k < a->nkw; k++) jx_dict_set(c, d, a->kwk[k], a->kwv[k], line);
    return vdict(JV_NS, d);
}

static noreturn void fn_raise(jctx *c, const jargs *a, int line) {
    jsb m = {0};
    jv msg = arg(a, 0, NULL, undef);
    if (msg.t == JV_NONE)
        jx_puts(c, &m, "null", line);
    else
        jx_raw_str(c, &m, msg, line);
    if (c->e.cap && m.n) snprintf(c->e.msg, c->e.cap, "%.*s", (int)(m.n < 65536 ? m.n : 65536), m.p);
    if (c->e.cap && (!m.n || !c->e.msg[0])) /* nothing, or a NUL byte first */
        snprintf(c->e.msg, c->e.cap, "line %d: raise_exception with an empty message", line);
    c->raised = 1;
    longjmp(c->e.jb, 1);
}

static jv fn_range(jctx *c, const jargs *a, int line) {
    double v[3] = {0, 0, 1};
    no_keywords(c, a, "range", line);
    if (a->npos < 1 || a->npos > 3) jinja_fail(&c->e, line, "range() takes 1 to 3 arguments");
    for (int i = 0; i < a->npos; i++) {
        if (a->pos[i].t != JV_INT && a->pos[i].t != JV_FLOAT)
            jinja_fail(&c->e, line, "range() takes numbers, not %s", jx_type_name(a->pos[i]));
        v[a->npos == 1 ? 1 : i] = a->pos[i].u.n;
    }
    if (v[2] == 0) jinja_fail(&c->e, line, "range() step must not be zero");
    double span = v[2] > 0 ? v[1] - v[0] : v[0] - v[1], count = span > 0 ? ceil(span / fabs(v[2])) : 0;
    if (!(count <= JINJA_MAX_RANGE)) jinja_fail(&c->e, line, "range() of more than %d numbers", JINJA_MAX_RANGE);
    jlist *l = jx_list(c, (int)count + 1, line);
    int n = 0;
    for (double x = v[0]; (v[2] > 0 ? x < v[1] : x > v[1]) && n <= (int)count; x += v[2])
        l->v[n++] = vnum(x == trunc(x) ? JV_INT : JV_FLOAT, x);
    l->n = n;
    jx_work(c, n, line);
    return vlist(l);
}

static jv fn_strftime(jctx *c, const jargs *a, int line) {
    static const char *months[] = {"January", "February", "March",     "April",   "May",      "June",
                                   "July",    "August",   "September", "October", "November", "December"};
    jv f = arg(a, 0, NULL, undef);
    if (f.t != JV_STR) jinja_fail(&c->e, line, "strftime_now() takes a format string, not %s", jx_type_name(f));
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    jsb b = {0};
    char tmp[16];
    for (size_t i = 0; i < f.u.s.n; i++) {
        char k = i + 1 < f.u.s.n && f.u.s.p[i] == '%' ? f.u.s.p[i + 1] : 0;
        tmp[0] = 0;
        if (k == 'Y')
            snprintf(tmp, sizeof tmp, "%d", tm.tm_year + 1900);
        else if (k == 'm')
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_mon + 1);
        else if (k == 'd')
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_mday);
        else if (k == 'H')
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_hour);
        else if (k == 'M')
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_min);
        else if (k == 'b')
            snprintf(tmp, sizeof tmp, "%.3s", months[tm.tm_mon]);
        else if (k == 'B')
            snprintf(tmp, sizeof tmp, "%s", months[tm.tm_mon]);
        else if (k == '%')
            strcpy(tmp, "%");
        if (tmp[0]) {
            jx_puts(c, &b, tmp, line);
            i++;
        } else {
            jx_put(c, &b, f.u.s.p + i, 1, line);
        }
    }
    return jx_str(&b);
}

static int has_prefix(jstr s, jstr p, int end) { return p.n <= s.n && !memcmp(s.p + (end ? s.n - p.n : 0), p.p, p.n); }

static jv str_affix(jctx *c, jstr s, const jargs *a, int end, int line) {
    const char *fn = end ? "endswith" : "startswith";
    if (!a->npos) jinja_fail(&c->e, line, "%s() takes a string or a tuple of strings", fn);
    jv p = a->pos[0];
    if (p.t == JV_STR) return vbool(has_prefix(s, p.u.s, end));
    if (p.t != JV_LIST)
        jinja_fail(&c->e, line, "%s() takes a string or a tuple of strings, not %s", fn, jx_type_name(p));
    for (int i = 0; i < p.u.l->n; i++) {
        if (p.u.l->v[i].t != JV_STR) jinja_fail(&c->e, line, "%s() takes a tuple of strings", fn);
        if (has_prefix(s, p.u.l->v[i].u.s, end)) return vbool(1);
    }
    return vbool(0);
}

static const char *find(jstr s, size_t from, jstr needle) {
    if (!needle.n) return from <= s.n ? s.p + from : NULL;
    for (size_t i = from; i + needle.n <= s.n; i++)
        if (s.p[i] == needle.p[0] && !memcmp(s.p + i, needle.p, needle.n)) return s.p + i;
    return NULL;
}

static void list_push(jctx *c, jlist **l, jv v, int line) {
    if ((*l)->n == (*l)->tuple) { /* `tuple` holds the capacity while the list grows */
        jlist *g = jx_list(c, (*l)->n ? (*l)->n * 2 : 8, line);
        memcpy(g->v, (*l)->v, (size_t)(*l)->n * sizeof *g->v);
        g->tuple = g->n;
        g->n = (*l)->n;
        *l = g;
    }
    (*l)->v[(*l)->n++] = v;
}

static jlist *growing_list(jctx *c, int line) {
    jlist *l = jx_list(c, 8, line);
    l->tuple = 8;
    l->n = 0;
    return l;
}

static jv done_list(jlist *l) {
    l->tuple = 0;
    return vlist(l);
}

/* str.split(sep=None, maxsplit=-1) */
static jv str_split(jctx *c, jstr s, const jargs *a, int line) {
    no_keywords(c, a, "split", line);
    jv sep = arg(a, 0, NULL, none), max = arg(a, 1, NULL, vnum(JV_INT, -1));
    if (sep.t != JV_STR && sep.t != JV_NONE) jinja_fail(&c->e, line, "split()'s separator is a string or none");
    if (max.t != JV_INT) jinja_fail(&c->e, line, "split()'s maxsplit is an integer");
    jlist *l = growing_list(c, line);
    jx_work(c, (long long)s.n, line);
    if (sep.t == JV_NONE) {
        jstr t = jx_trim(s, 1, 0);
        for (size_t i = 0; i < t.n;) {
            size_t j = i, w;
            while (j < t.n && !jx_space_at(t.p, t.n, j)) u8(t.p, t.n, j, &w), j += w;
            if (max.u.n != -1 && l->n >= max.u.n) j = t.n;
            list_push(c, &l, vstr((jstr){t.p + i, j - i}), line);
            while (j < t.n && (w = jx_space_at(t.p, t.n, j))) j += w;
            i = j;
        }
        return done_list(l);
    }
    if (!sep.u.s.n) jinja_fail(&c->e, line, "split() with an empty separator");
    size_t i = 0;
    for (const char *at; (at = find(s, i, sep.u.s)); i = (size_t)(at - s.p) + sep.u.s.n)
        list_push(c, &l, vstr((jstr){s.p + i, (size_t)(at - s.p) - i}), line);
    list_push(c, &l, vstr((jstr){s.p + i, s.n - i}), line);
    if (max.u.n != -1 && l->n > max.u.n) { /* the parts from maxsplit on join again */
        int k = max.u.n < 0 ? (l->n + max.u.n > 0 ? l->n + (int)max.u.n : 0) : (int)max.u.n;
        const char *from = l->v[k].u.s.p;
        l->v[k] = vstr((jstr){from, (size_t)(s.p + s.n - from)});
        l->n = k + 1;
    }
    return done_list(l);
}

/* str.replace(old, new, count=None) */
static jv str_replace(jctx *c, jstr s, const jargs *a, int line) {
    if (a->npos < 2) jinja_fail(&c->e, line, "replace() takes two strings");
    jv from = a->pos[0], to = a->pos[1], count = a->npos > 2 ? a->pos[2] : arg(a, -1, "count", none);
    if (from.t != JV_STR || to.t != JV_STR) jinja_fail(&c->e, line, "replace() takes two strings");
    if (count.t != JV_INT && count.t != JV_NONE) jinja_fail(&c->e, line, "replace()'s count is an integer or none");
    double left = count.t == JV_NONE || count.u.n < 0 ? INFINITY : count.u.n;
    jsb b = {0};
    jx_work(c, (long long)s.n, line);
    size_t i = 0;
    if (!from.u.s.n) { /* before each code point and at the end */
        size_t len;
        for (; i <= s.n && left > 0; i += len, left--) {
            jx_put(c, &b, to.u.s.p, to.u.s.n, line);
            if (i < s.n)
                u8(s.p, s.n, i, &len), jx_put(c, &b, s.p + i, len, line);
            else
                len = 1;
        }
    } else {
        for (const char *at; left > 0 && (at = find(s, i, from.u.s)); left--, i = (size_t)(at - s.p) + from.u.s.n) {
            jx_put(c, &b, s.p + i, (size_t)(at - s.p) - i, line);
            jx_put(c, &b, to.u.s.p, to.u.s.n, line);
        }
    }
    if (i < s.n) jx_put(c, &b, s.p + i, s.n - i, line);
    return jx_str(&b);
}

static jv string_method(jctx *c, jfunc_id id, jstr s, const jargs *a, int line) {
    switch (id) {
    case F_UPPER: return change_case(c, s, 1, line);
    case F_LOWER: return change_case(c, s, 0, line);
    case F_STRIP: return vstr(jx_trim(s, 1, 1));
    case F_LSTRIP: return vstr(jx_trim(s, 1, 0));
    case F_RSTRIP: return vstr(jx_trim(s, 0, 1));
    case F_TITLE: return title(c, s, line);
    case F_CAPITALIZE: return capitalize(c, s, line);
    case F_STARTSWITH: return str_affix(c, s, a, 0, line);
    case F_ENDSWITH: return str_affix(c, s, a, 1, line);
    case F_SPLIT: return str_split(c, s, a, line);
    default: return str_replace(c, s, a, line);
    }
}

static jv items(jctx *c, jdict *d, int line) {
    jlist *l = jx_list(c, d->n, line);
    for (int i = 0; i < d->n; i++) {
        jlist *pair = jx_list(c, 2, line);
        pair->v[0] = vstr(d->k[i]);
        pair->v[1] = d->v[i];
        l->v[i] = vlist(pair);
    }
    return vlist(l);
}

static jv dictsort(jctx *c, jdict *d, const jargs *a, int line) {
    jv cs = arg(a, 0, "case_sensitive", vbool(0)), by = arg(a, 1, "by", vstr((jstr){"key", 3}));
    jv reverse = arg(a, 2, "reverse", vbool(0));
    if (cs.t != JV_BOOL || reverse.t != JV_BOOL)
        jinja_fail(&c->e, line, "dictsort()'s case_sensitive and reverse are booleans");
    if (by.t != JV_STR || (!jx_streq(by.u.s, "key") && !jx_streq(by.u.s, "value")))
        jinja_fail(&c->e, line, "dictsort()'s by is 'key' or 'value'");
    jv all = items(c, d, line);
    jv *key = jx_alloc(c, (size_t)(d->n ? d->n : 1) * sizeof *key, line);
    for (int i = 0; i < d->n; i++) key[i] = all.u.l->v[i].u.l->v[by.u.s.p[0] == 'v'];
    sort_by(c, all.u.l->v, key, d->n, cs.u.b, reverse.u.b, line);
    return all;
}

static jv dict_method(jctx *c, jfunc_id id, jdict *d, const jargs *a, int line) {
    if (id == F_GET) {
        no_keywords(c, a, "get", line);
        jv k = arg(a, 0, NULL, undef);
        if (k.t != JV_STR) jinja_fail(&c->e, line, "get() takes a string key, not %s", jx_type_name(k));
        jv *v = jx_dict_get(d, k.u.s);
        return v ? *v : arg(a, 1, NULL, none);
    }
    if (id == F_ITEMS) return items(c, d, line);
    if (id == F_DICTSORT) return dictsort(c, d, a, line);
    jlist *l = jx_list(c, d->n, line);
    for (int i = 0; i < d->n; i++) l->v[i] = id == F_KEYS ? vstr(d->k[i]) : d->v[i];
    return vlist(l);
}

jv jx_call(jctx *c, jv fn, const jargs *a, int line) {
    if (fn.t != JV_FUNC) jinja_fail(&c->e, line, "cannot call %s", jx_type_name(fn));
    jfunc *f = fn.u.f;
    switch (f->id) {
    case F_NAMESPACE: return fn_namespace(c, a, line);
    case F_RAISE: fn_raise(c, a, line);
    case F_RANGE: return fn_range(c, a, line);
    case F_STRFTIME: return fn_strftime(c, a, line);
    case F_MACRO: jinja_fail(&c->e, line, "a macro is called by its name only"); /* jinja_eval.c calls them */
    default:
        return f->id >= F_GET ? dict_method(c, f->id, f->self.u.d, a, line)
                              : string_method(c, f->id, f->self.u.s, a, line);
    }
}

/* ---- tests ---- */

static const char *const test_names[] = {
    "defined",  "undefined", "none",     "boolean", "false", "true", "string", "number",  "integer", "mapping",
    "iterable", "sequence",  "callable", "lower",   "upper", "odd",  "even",   "equalto", "eq",      NULL};

static int jx_test_known(jstr name) {
    for (const char *const *t = test_names; *t; t++)
        if (jx_streq(name, *t)) return 1;
    return 0;
}

int jx_test(jctx *c, jstr name, jv x, const jv *with, int line) {
    int num = x.t == JV_INT || x.t == JV_FLOAT;
    if (jx_streq(name, "defined")) return x.t != JV_UNDEF;
    if (jx_streq(name, "undefined")) return x.t == JV_UNDEF;
    if (jx_streq(name, "none")) return x.t == JV_NONE;
    if (jx_streq(name, "boolean")) return x.t == JV_BOOL;
    if (jx_streq(name, "false")) return x.t == JV_BOOL && !x.u.b;
    if (jx_streq(name, "true")) return x.t == JV_BOOL && x.u.b;
    if (jx_streq(name, "string")) return x.t == JV_STR;
    if (jx_streq(name, "number")) return num;
    if (jx_streq(name, "integer")) return x.t == JV_INT;
    if (jx_streq(name, "mapping")) return x.t == JV_DICT;
    if (jx_streq(name, "iterable")) return (x.t == JV_LIST && !x.u.l->tuple) || x.t == JV_STR;
    if (jx_streq(name, "sequence")) return x.t == JV_LIST || x.t == JV_DICT || x.t == JV_STR;
    if (jx_streq(name, "callable")) return x.t == JV_FUNC;
    if (jx_streq(name, "lower") || jx_streq(name, "upper")) {
        if (x.t != JV_STR) return 0;
        jv y = change_case(c, x.u.s, name.p[0] == 'u', line);
        return y.u.s.n == x.u.s.n && !memcmp(y.u.s.p, x.u.s.p, x.u.s.n);
    }
    if (jx_streq(name, "odd") || jx_streq(name, "even")) {
        if (x.t != JV_INT)
            jinja_fail(&c->e, line, "the test '%s' takes an integer, not %s", name.p[0] == 'o' ? "odd" : "even",
                       jx_type_name(x));
        return (fmod(x.u.n, 2) != 0) == (name.p[0] == 'o');
    }
    if (jx_streq(name, "equalto") || jx_streq(name, "eq")) {
        if (!with) jinja_fail(&c->e, line, "the test '%.*s' needs a value to compare with", (int)name.n, name.p);
        return jx_strict_eq(x, *with);
    }
    jinja_fail(&c->e, line, "unknown test '%.*s'", (int)(name.n > 40 ? 40 : name.n), name.p);
}

/* ---- filters ---- */

static jv json_value(jctx *c, jv x, const json_opts *o, int line) {
    jsb b = {0};
    tojson(c, &b, x, o, 0, 1, line);
    return jx_str(&b);
}

static jv json_filter(jctx *c, jv x, const jargs *a, int line) {
    json_opts o = {0, ", ", ": ", 2, 2, 0};
    jv indent = arg(a, -1, "indent", none), ascii = arg(a, -1, "ensure_ascii", vbool(0));
    jv sort = arg(a, -1, "sort_keys", vbool(0)), seps = arg(a, -1, "separators", none);
    if (indent.t != JV_INT && indent.t != JV_NONE) jinja_fail(&c->e, line, "tojson()'s indent is an integer");
    if (ascii.t != JV_BOOL || sort.t != JV_BOOL)
        jinja_fail(&c->e, line, "tojson()'s ensure_ascii and sort_keys are booleans");
    if (sort.u.b) jinja_fail(&c->e, line, "tojson(sort_keys=true) is not supported");
    if (indent.t == JV_INT && !(indent.u.n >= 0 && indent.u.n <= 4096))
        jinja_fail(&c->e, line, "tojson()'s indent is out of range");
    o.indent = indent.t == JV_INT ? (long)indent.u.n : 0;
    o.ascii = ascii.u.b;
    if (o.indent) o.item_sep = ",", o.item_len = 1;
    if (seps.t == JV_LIST) {
        if (seps.u.l->n != 2 || seps.u.l->v[0].t != JV_STR || seps.u.l->v[1].t != JV_STR)
            jinja_fail(&c->e, line, "tojson()'s separators are two strings");
        o.item_sep = seps.u.l->v[0].u.s.p, o.item_len = seps.u.l->v[0].u.s.n;
        o.key_sep = seps.u.l->v[1].u.s.p, o.key_len = seps.u.l->v[1].u.s.n;
    } else if (seps.t != JV_NONE) {
        jinja_fail(&c->e, line, "tojson()'s separators are two strings");
    }
    return json_value(c, x, &o, line);
}

/* The values of a list, as JavaScript's join prints them. */
static jv join_list(jctx *c, jlist *l, jstr sep, int line) {
    jsb b = {0};
    for (int i = 0; i < l->n; i++) {
        if (i) jx_put(c, &b, sep.p, sep.n, line);
        jx_raw_str(c, &b, l->v[i], line);
    }
    return jx_str(&b);
}

/* parseInt(s, 10) and parseFloat(s); NaN when no number starts s. */
static double parse_number(jstr s, int integer) {
    s = jx_trim(s, 1, 0);
    char buf[400];
    size_t i = 0, k = 0, digits = 0;
    if (i < s.n && (s.p[i] == '+' || s.p[i] == '-')) buf[k++] = s.p[i++];
    if (!integer && s.n - i >= 8 && !memcmp(s.p + i, "Infinity", 8)) return buf[0] == '-' ? -INFINITY : INFINITY;
    for (; i < s.n && s.p[i] >= '0' && s.p[i] <= '9' && k < 380; i++, digits++) buf[k++] = s.p[i];
    if (!integer && i + 1 < s.n && s.p[i] == '.' && s.p[i + 1] >= '0' && s.p[i + 1] <= '9') {
        for (buf[k++] = s.p[i++]; i < s.n && s.p[i] >= '0' && s.p[i] <= '9' && k < 390; i++, digits++)
            buf[k++] = s.p[i];
    } else if (!integer && digits && i < s.n && s.p[i] == '.') {
        i++;
    }
    if (!digits) return NAN;
    size_t e = i + (i < s.n && (s.p[i] == 'e' || s.p[i] == 'E'));
    if (!integer && e > i && e < s.n && (s.p[e] == '+' || s.p[e] == '-')) e++;
    if (!integer && e > i && e < s.n && s.p[e] >= '0' && s.p[e] <= '9') {
        buf[k++] = 'e';
        for (size_t j = i + 1; j < s.n && k < 398 && (j < e || (s.p[j] >= '0' && s.p[j] <= '9')); j++)
            buf[k++] = s.p[j];
    }
    buf[k] = 0;
    return strtod(buf, NULL);
}

static jv indent_filter(jctx *c, jstr s, long width, int first, int blank, int line) {
    jsb b = {0};
    for (size_t i = 0, ln = 0; i <= s.n; ln++) {
        size_t j = i;
        while (j < s.n && s.p[j] != '\n') j++;
        if ((first || ln) && (blank || j > i))
            for (long k = 0; k < width; k++) jx_put(c, &b, " ", 1, line);
        jx_put(c, &b, s.p + i, j - i, line);
        if (j < s.n) jx_put(c, &b, "\n", 1, line);
        i = j + 1;
    }
    return jx_str(&b);
}

static jv list_filter(jctx *c, jstr name, jv x, int line) {
    jlist *l = x.u.l;
    if (jx_streq(name, "list")) return x;
    if (jx_streq(name, "length")) return vnum(JV_INT, l->n);
    if (jx_streq(name, "first") || jx_streq(name, "last")) {
        if (!l->n) jinja_fail(&c->e, line, "'%.*s' of an empty list", (int)name.n, name.p);
        return l->v[name.p[0] == 'f' ? 0 : l->n - 1];
    }
    if (jx_streq(name, "join")) return join_list(c, l, (jstr){"", 0}, line);
    if (jx_streq(name, "string")) {
        jsb b = {0};
        jx_to_str(c, &b, x, 0, line);
        return jx_str(&b);
    }
    jlist *r = jx_list(c, l->n, line);
    memcpy(r->v, l->v, (size_t)l->n * sizeof *r->v);
    if (jx_streq(name, "reverse")) {
        for (int i = 0; i < l->n; i++) r->v[i] = l->v[l->n - 1 - i];
    } else if (jx_streq(name, "sort")) {
        jv *key = jx_alloc(c, (size_t)(l->n ? l->n : 1) * sizeof *key, line);
        memcpy(key, l->v, (size_t)l->n * sizeof *key);
        sort_by(c, r->v, key, l->n, 0, 0, line);
    } else if (jx_streq(name, "unique")) {
        r->n = 0;
        for (int i = 0; i < l->n; i++) {
            int seen = 0;
            for (int j = 0; j < r->n && !seen; j++)
                seen = jx_strict_eq(r->v[j], l->v[i]) ||
                       (l->v[i].t == JV_FLOAT && isnan(l->v[i].u.n) && r->v[j].t == JV_FLOAT && isnan(r->v[j].u.n));
            if (!seen) r->v[r->n++] = l->v[i];
            jx_work(c, r->n, line);
        }
    } else {
        jinja_fail(&c->e, line, "unknown filter '%.*s' for a list", (int)(name.n > 40 ? 40 : name.n), name.p);
    }
    return vlist(r);
}

static jv string_filter(jctx *c, jstr name, jv x, int line) {
    jstr s = x.u.s;
    if (jx_streq(name, "length")) return vnum(JV_INT, (double)u16_len(s));
    if (jx_streq(name, "upper") || jx_streq(name, "lower")) return change_case(c, s, name.p[0] == 'u', line);
    if (jx_streq(name, "title")) return title(c, s, line);
    if (jx_streq(name, "capitalize")) return capitalize(c, s, line);
    if (jx_streq(name, "trim")) return vstr(jx_trim(s, 1, 1));
    if (jx_streq(name, "indent")) return indent_filter(c, s, 4, 0, 0, line);
    if (jx_streq(name, "join") || jx_streq(name, "string")) return x;
    if (jx_streq(name, "int") || jx_streq(name, "float")) {
        double v = parse_number(s, name.p[0] == 'i');
        return vnum(name.p[0] == 'i' ? JV_INT : JV_FLOAT, isnan(v) ? 0 : v);
    }
    jinja_fail(&c->e, line, "unknown filter '%.*s' for a string", (int)(name.n > 40 ? 40 : name.n), name.p);
}

static jv scalar_filter(jctx *c, jstr name, jv x, int line) {
    int boolean = x.t == JV_BOOL;
    double v = boolean ? x.u.b : x.u.n;
    if (!boolean && jx_streq(name, "abs")) return vnum(x.t, fabs(v));
    if (jx_streq(name, "int")) return vnum(JV_INT, floor(v));
    if (jx_streq(name, "float")) return vnum(JV_FLOAT, v);
    if (boolean && jx_streq(name, "bool")) return x;
    if (jx_streq(name, "string")) {
        jsb b = {0};
        jx_to_str(c, &b, x, 0, line);
        return jx_str(&b);
    }
    jinja_fail(&c->e, line, "unknown filter '%.*s' for %s", (int)(name.n > 40 ? 40 : name.n), name.p, jx_type_name(x));
}

static jv filter_plain(jctx *c, jstr name, jv x, int line) {
    jargs none_given = {0};
    if (jx_streq(name, "safe")) return x;
    if (jx_streq(name, "tojson")) return json_value(c, x, &plain_json, line);
    switch (x.t) {
    case JV_LIST: return list_filter(c, name, x, line);
    case JV_STR: return string_filter(c, name, x, line);
    case JV_INT:
    case JV_FLOAT:
    case JV_BOOL: return scalar_filter(c, name, x, line);
    case JV_DICT: {
        if (jx_streq(name, "items")) return items(c, x.u.d, line);
        if (jx_streq(name, "length")) return vnum(JV_INT, x.u.d->n);
        jv m = bound_method(c, x, name, line);
        if (m.t == JV_FUNC) return jx_call(c, m, &none_given, line);
        jinja_fail(&c->e, line, "unknown filter '%.*s' for a dict", (int)(name.n > 40 ? 40 : name.n), name.p);
    }
    default:
        jinja_fail(&c->e, line, "cannot apply the filter '%.*s' to %s", (int)(name.n > 40 ? 40 : name.n), name.p,
                   jx_type_name(x));
    }
}

/* sort(reverse=false, case_sensitive=false, attribute=none) */
static jv sort_filter(jctx *c, jlist *l, const jargs *a, int line) {
    jv reverse = arg(a, 0, "reverse", vbool(0)), cs = arg(a, 1, "case_sensitive", vbool(0));
    jv attr = arg(a, 2, "attribute", none);
    if (reverse.t != JV_BOOL || cs.t != JV_BOOL)
        jinja_fail(&c->e, line, "sort()'s reverse and case_sensitive are booleans");
    if (attr.t != JV_STR && attr.t != JV_INT && attr.t != JV_NONE)
        jinja_fail(&c->e, line, "sort()'s attribute is a string, an integer or none");
    jsb path = {0};
    if (attr.t != JV_NONE) jx_raw_str(c, &path, attr, line);
    jlist *r = jx_list(c, l->n, line);
    jv *key = jx_alloc(c, (size_t)(l->n ? l->n : 1) * sizeof *key, line);
    for (int i = 0; i < l->n; i++) {
        r->v[i] = l->v[i];
        key[i] = attr.t == JV_NONE ? l->v[i] : attribute_path(l->v[i], jx_str(&path).u.s);
    }
    sort_by(c, r->v, key, l->n, cs.u.b, reverse.u.b, line);
    return vlist(r);
}

/* selectattr(attr[, test[, value]]) and rejectattr */
static jv select_filter(jctx *c, const jnode *f, jlist *l, const jargs *a, int select) {
    int line = f->line;
    for (int i = 0; i < l->n; i++)
        if (l->v[i].t != JV_DICT && l->v[i].t != JV_NS)
            jinja_fail(&c->e, line, "'%s' takes a list of dicts", select ? "selectattr" : "rejectattr");
    for (int i = 0; i < f->list.n; i++)
        if (f->list.v[i]->kind != N_STR)
            jinja_fail(&c->e, line, "the arguments of '%s' are strings", select ? "selectattr" : "rejectattr");
    if (a->npos < 1) jinja_fail(&c->e, line, "'%s' needs an attribute's name", select ? "selectattr" : "rejectattr");
    jv attr = a->pos[0], test = arg(a, 1, NULL, undef), with = arg(a, 2, NULL, undef);
    if (test.t != JV_UNDEF && !jx_test_known(test.u.s)) /* fails even on an empty list */
        jinja_fail(&c->e, line, "unknown test '%.*s'", (int)(test.u.s.n > 40 ? 40 : test.u.s.n), test.u.s.p);
    jlist *r = jx_list(c, l->n, line);
    r->n = 0;
    for (int i = 0; i < l->n; i++) {
        jv *x = jx_dict_get(l->v[i].u.d, attr.u.s);
        int ok = x && (test.t == JV_UNDEF ? jx_truthy(*x) : jx_test(c, test.u.s, *x, &with, line));
        if (ok == select) r->v[r->n++] = l->v[i];
    }
    return vlist(r);
}

/* map(attribute=name, default=value) */
static jv map_filter(jctx *c, jlist *l, const jargs *a, int line) {
    jv attr = arg(a, -1, "attribute", undef), dflt = arg(a, -1, "default", undef);
    if (attr.t == JV_UNDEF) jinja_fail(&c->e, line, "'map' is supported with attribute= only");
    if (attr.t != JV_STR) jinja_fail(&c->e, line, "map()'s attribute is a string");
    jlist *r = jx_list(c, l->n, line);
    for (int i = 0; i < l->n; i++) {
        if (l->v[i].t != JV_DICT && l->v[i].t != JV_NS) jinja_fail(&c->e, line, "'map' takes a list of dicts");
        jv v = attribute_path(l->v[i], attr.u.s);
        r->v[i] = v.t == JV_UNDEF ? dflt : v;
    }
    return vlist(r);
}

static jv number_or_default(jctx *c, jstr name, jv x, const jargs *a, int line) {
    int integer = name.p[0] == 'i';
    jv dflt = arg(a, 0, "default", vnum(integer ? JV_INT : JV_FLOAT, 0));
    if (x.t == JV_STR) {
        double v = parse_number(x.u.s, integer);
        return isnan(v) ? dflt : vnum(integer ? JV_INT : JV_FLOAT, v);
    }
    if (x.t == JV_INT || x.t == JV_FLOAT) return x;
    if (x.t == JV_BOOL) return vnum(integer ? JV_INT : JV_FLOAT, x.u.b);
    jinja_fail(&c->e, line, "cannot apply the filter '%s' to %s", integer ? "int" : "float", jx_type_name(x));
}

static jv filter_call(jctx *c, const jnode *f, jv x, const jargs *a) {
    jstr name = f->s;
    int line = f->line;
    if (jx_streq(name, "tojson")) return json_filter(c, x, a, line);
    if (jx_streq(name, "join")) {
        jv sep = arg(a, 0, "separator", vstr((jstr){"", 0}));
        if (sep.t != JV_STR) jinja_fail(&c->e, line, "join()'s separator is a string");
        if (x.t == JV_LIST) return join_list(c, x.u.l, sep.u.s, line);
        if (x.t != JV_STR) jinja_fail(&c->e, line, "cannot apply the filter 'join' to %s", jx_type_name(x));
        size_t n, *cp = code_points(c, x.u.s, &n, line);
        jsb b = {0};
        for (size_t i = 0; i < n; i++) {
            if (i) jx_put(c, &b, sep.u.s.p, sep.u.s.n, line);
            jx_put(c, &b, x.u.s.p + cp[i], cp[i + 1] - cp[i], line);
        }
        return jx_str(&b);
    }
    if (jx_streq(name, "int") || jx_streq(name, "float")) return number_or_default(c, name, x, a, line);
    if (jx_streq(name, "default")) {
        jv dflt = arg(a, 0, NULL, vstr((jstr){"", 0})), boolean = arg(a, 1, "boolean", vbool(0));
        if (boolean.t != JV_BOOL) jinja_fail(&c->e, line, "default()'s second argument is a boolean");
        return x.t == JV_UNDEF || (boolean.u.b && !jx_truthy(x)) ? dflt : x;
    }
    if (x.t == JV_LIST && jx_streq(name, "sort")) return sort_filter(c, x.u.l, a, line);
    if (x.t == JV_LIST && (jx_streq(name, "selectattr") || jx_streq(name, "rejectattr")))
        return select_filter(c, f, x.u.l, a, name.p[0] == 's');
    if (x.t == JV_LIST && jx_streq(name, "map")) return map_filter(c, x.u.l, a, line);
    if (x.t == JV_STR && jx_streq(name, "indent")) {
        jv width = arg(a, 0, "width", vnum(JV_INT, 4)), first = arg(a, 1, "first", vbool(0)),
           blank = arg(a, 2, "blank", vbool(0));
        if (width.t != JV_INT || !(width.u.n >= 0 && width.u.n <= 4096))
            jinja_fail(&c->e, line, "indent()'s width is an integer");
        return indent_filter(c, x.u.s, (long)width.u.n, raw_truthy(first), raw_truthy(blank), line);
    }
    if (x.t == JV_STR && jx_streq(name, "replace")) return str_replace(c, x.u.s, a, line);
    jv m = x.t == JV_DICT ? bound_method(c, x, name, line) : undef;
    if (m.t == JV_FUNC) return jx_call(c, m, a, line);
    jinja_fail(&c->e, line, "unknown filter '%.*s' for %s", (int)(name.n > 40 ? 40 : name.n), name.p, jx_type_name(x));
}

jv jx_filter(jctx *c, jscope *s, const jnode *f, jv x) {
    if (!f->op) return filter_plain(c, f->s, x, f->line);
    if (f->op == 2)
        jinja_fail(&c->e, f->line, "a filter's call followed by '.', '[' or '(' ('%.*s')", (int)f->s.n, f->s.p);
    jargs a;
    jx_eval_args(c, s, &f->list, &a);
    return filter_call(c, f, x, &a);
}
