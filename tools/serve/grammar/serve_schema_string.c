/*
 * serve_schema_string.c — a JSON schema's strings as GBNF (serve_schema.c says what is served):
 * `pattern` (the ECMAScript subset below serve_schema.c's header names, matched whole), the
 * formats as patterns of that subset, and minLength/maxLength beside them.
 */
#include <stdlib.h>
#include <string.h>

#include "serve_schema_internal.h"

/* ---- strings: patterns ---- */

enum { RX_SET, RX_CAT, RX_ALT, RX_REP };
typedef struct rrange {
    uint32_t lo, hi;
} rrange;
typedef struct rnode {
    int kind;
    long min, max; /* RX_REP's counts (max -1: no most) */
    int kid, next; /* RX_CAT, RX_ALT: the first child, children linked by next; RX_REP: the child */
    int rg, nrg;   /* RX_SET: the ranges */
} rnode;
typedef struct rx {
    conv *c;
    const char *kw, *p; /* the keyword (pattern, format) and its text */
    size_t len, pos;
    rnode *n;
    int nn, capn;
    rrange *rg, *tmp; /* the sets' ranges; the set being read */
    int nrg, caprg, ntmp, captmp;
    int depth;
} rx;

static bool rx_fail(rx *r, const char *what) {
    if (!strcmp(r->kw, "format")) /* the formats' patterns are this file's own */
        return schema_refuse(r->c, r->kw, "cannot be written (%s)", what);
    return schema_refuse(r->c, r->kw, "\"%.60s%s\": %s at offset %zu", r->p, r->len > 60 ? "..." : "", what, r->pos);
}

static int rx_node(rx *r, int kind) {
    if (r->nn == r->capn) {
        int cap = r->capn ? 2 * r->capn : 32;
        rnode *g = realloc(r->n, sizeof *g * (size_t)cap);
        if (!g) return schema_oom(r->c), -1;
        r->n = g, r->capn = cap;
    }
    r->n[r->nn] = (rnode){.kind = kind, .kid = -1, .next = -1};
    return r->nn++;
}

static bool range_push(conv *c, rrange **v, int *n, int *cap, uint32_t lo, uint32_t hi) {
    if (*n == *cap) {
        int k = *cap ? 2 * *cap : 16;
        rrange *g = realloc(*v, sizeof *g * (size_t)k);
        if (!g) return schema_oom(c);
        *v = g, *cap = k;
    }
    (*v)[(*n)++] = (rrange){lo, hi};
    return true;
}
static bool tmp_add(rx *r, uint32_t lo, uint32_t hi) { return range_push(r->c, &r->tmp, &r->ntmp, &r->captmp, lo, hi); }

/* set's complement over the code points added to tmp (set sorted and apart) */
static bool tmp_add_not(rx *r, const rrange *set, int n) {
    uint32_t from = 0;
    for (int i = 0; i < n; i++) {
        if (set[i].lo > from && !tmp_add(r, from, set[i].lo - 1)) return false;
        from = set[i].hi + 1;
    }
    return from > 0x10ffff || tmp_add(r, from, 0x10ffff);
}

static const rrange set_digit[] = {{'0', '9'}};
static const rrange set_word[] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
static const rrange set_space[] = {{0x09, 0x0d},     {0x20, 0x20},     {0xa0, 0xa0},     {0x1680, 0x1680},
                                   {0x2000, 0x200a}, {0x2028, 0x2029}, {0x202f, 0x202f}, {0x205f, 0x205f},
                                   {0x3000, 0x3000}, {0xfeff, 0xfeff}};
static const rrange set_newline[] = {{0x0a, 0x0a}, {0x0d, 0x0d}, {0x2028, 0x2029}}; /* what '.' leaves out */

static int cmp_range(const void *a, const void *b) {
    const rrange *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* tmp as a set node: sorted, merged, complemented when neg, without surrogates */
static int set_node(rx *r, bool neg) {
    if (r->ntmp > 1) qsort(r->tmp, (size_t)r->ntmp, sizeof *r->tmp, cmp_range); /* [^] has none: tmp NULL */
    int n = 0;
    for (int i = 0; i < r->ntmp; i++) {
        if (n && r->tmp[i].lo <= r->tmp[n - 1].hi + 1) {
            if (r->tmp[i].hi > r->tmp[n - 1].hi) r->tmp[n - 1].hi = r->tmp[i].hi;
        } else {
            r->tmp[n++] = r->tmp[i];
        }
    }
    r->ntmp = n;
    rrange *set = r->tmp;
    if (neg) {
        set = malloc(sizeof *set * (size_t)(n ? n : 1));
        if (!set) return schema_oom(r->c), -1;
        if (n) memcpy(set, r->tmp, sizeof *set * (size_t)n);
        r->ntmp = 0;
        bool ok = tmp_add_not(r, set, n);
        free(set);
        if (!ok) return -1;
    }
    int id = rx_node(r, RX_SET);
    if (id < 0) return -1;
    r->n[id].rg = r->nrg;
    for (int i = 0; i < r->ntmp; i++) {
        uint32_t lo = r->tmp[i].lo, hi = r->tmp[i].hi;
        if (lo < 0xd800 && !range_push(r->c, &r->rg, &r->nrg, &r->caprg, lo, hi < 0xd800 ? hi : 0xd7ff)) return -1;
        if (hi > 0xdfff && !range_push(r->c, &r->rg, &r->nrg, &r->caprg, lo > 0xe000 ? lo : 0xe000, hi)) return -1;
    }
    r->n[id].nrg = r->nrg - r->n[id].rg;
    if (!r->n[id].nrg) return rx_fail(r, "a class that matches nothing"), -1;
    return id;
}

static int hexval(char ch) {
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

static bool rx_hex(rx *r, int digits, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < digits; i++) {
        int d = r->pos < r->len ? hexval(r->p[r->pos]) : -1;
        if (d < 0) return rx_fail(r, "an escape short of hex digits");
        *v = *v << 4 | (uint32_t)d, r->pos++;
    }
    return true;
}

/* the escape at pos ('\\'): 1 with *cp a character, 2 with its class added to tmp, -1 refused */
static int rx_escape(rx *r, uint32_t *cp, bool in_class) {
    if (++r->pos >= r->len) return rx_fail(r, "'\\' ends the pattern"), -1;
    char e = r->p[r->pos++];
    const rrange *set = NULL;
    int nset = 0;
    switch (e) {
    case 'd':
    case 'D': set = set_digit, nset = 1; break;
    case 'w':
    case 'W': set = set_word, nset = 4; break;
    case 's':
    case 'S': set = set_space, nset = (int)(sizeof set_space / sizeof *set_space); break;
    case 't': *cp = 9; return 1;
    case 'n': *cp = 10; return 1;
    case 'v': *cp = 11; return 1;
    case 'f': *cp = 12; return 1;
    case 'r': *cp = 13; return 1;
    case '0':
        if (r->pos < r->len && r->p[r->pos] >= '0' && r->p[r->pos] <= '9') return rx_fail(r, "an octal escape"), -1;
        *cp = 0;
        return 1;
    case 'b':
        if (in_class) return *cp = 8, 1;
        return rx_fail(r, "a word boundary (\\b, not served)"), -1;
    case 'x': return rx_hex(r, 2, cp) ? 1 : -1;
    case 'u':
        if (r->pos < r->len && r->p[r->pos] == '{') {
            r->pos++;
            uint32_t v = 0;
            int n = 0;
            for (int d; r->pos < r->len && (d = hexval(r->p[r->pos])) >= 0; r->pos++, n++)
                v = v < 0x110000 ? v << 4 | (uint32_t)d : v;
            if (!n || r->pos >= r->len || r->p[r->pos] != '}' || v > 0x10ffff) return rx_fail(r, "a bad \\u{...}"), -1;
            r->pos++;
            return *cp = v, 1;
        }
        if (!rx_hex(r, 4, cp)) return -1;
        if (*cp >= 0xd800 && *cp < 0xdc00 && r->pos + 1 < r->len && r->p[r->pos] == '\\' && r->p[r->pos + 1] == 'u') {
            size_t at = r->pos;
            uint32_t lo;
            r->pos += 2;
            if (rx_hex(r, 4, &lo) && lo >= 0xdc00 && lo <= 0xdfff)
                return *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00), 1;
            if (schema_failed(r->c)) return -1;
            r->pos = at;
        }
        return 1;
    case 'c':
        if (r->pos < r->len && ((r->p[r->pos] | 0x20) >= 'a' && (r->p[r->pos] | 0x20) <= 'z'))
            return *cp = (uint32_t)(r->p[r->pos++] & 31), 1;
        return rx_fail(r, "a \\c without a letter"), -1;
    case '-':
        if (in_class) return *cp = '-', 1;
        return rx_fail(r, "'\\-' outside a class"), -1;
    default:
        if (e >= '1' && e <= '9') return rx_fail(r, "a backreference (not served)"), -1;
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z'))
            return rx_fail(r, e == 'p' || e == 'P' ? "a Unicode property class (not served)"
                              : e == 'B'           ? "a word boundary (\\B, not served)"
                                                   : "an escape not served"),
                   -1;
        if ((unsigned char)e >= 0x80 || (unsigned char)e < 0x20) return rx_fail(r, "an escape not served"), -1;
        return *cp = (unsigned char)e, 1;
    }
    bool ok = true; /* \d \w \s, or (upper case) the complement */
    if (e >= 'a')
        for (int i = 0; ok && i < nset; i++) ok = tmp_add(r, set[i].lo, set[i].hi);
    else
        ok = tmp_add_not(r, set, nset);
    return ok ? 2 : -1;
}

static int rx_alt(rx *r);

static int rx_class(rx *r) {
    r->pos++; /* '[' */
    bool neg = r->pos < r->len && r->p[r->pos] == '^';
    r->pos += neg;
    r->ntmp = 0;
    for (;;) {
        if (r->pos >= r->len) return rx_fail(r, "an unclosed '['"), -1;
        if (r->p[r->pos] == ']') break;
        uint32_t lo, hi;
        int kind = 1;
        if (r->p[r->pos] == '\\') {
            kind = rx_escape(r, &lo, true);
        } else {
            const unsigned char *u = (const unsigned char *)r->p + r->pos, *at = u;
            int32_t cp = schema_utf8_next(&u);
            if (cp < 0) return rx_fail(r, "text that is not UTF-8"), -1;
            lo = (uint32_t)cp, r->pos += (size_t)(u - at);
        }
        if (kind < 0) return -1;
        if (kind == 2) continue;
        hi = lo;
        if (r->pos + 1 < r->len && r->p[r->pos] == '-' && r->p[r->pos + 1] != ']') {
            r->pos++;
            if (r->p[r->pos] == '\\') {
                if ((kind = rx_escape(r, &hi, true)) < 0) return -1;
                if (kind == 2) return rx_fail(r, "a range ending in a class escape"), -1;
            } else {
                const unsigned char *u = (const unsigned char *)r->p + r->pos, *at = u;
                int32_t cp = schema_utf8_next(&u);
                if (cp < 0) return rx_fail(r, "text that is not UTF-8"), -1;
                hi = (uint32_t)cp, r->pos += (size_t)(u - at);
            }
            if (hi < lo) return rx_fail(r, "a range out of order"), -1;
        }
        if (!tmp_add(r, lo, hi)) return -1;
    }
    r->pos++;
    if (!neg && !r->ntmp) return rx_fail(r, "an empty class"), -1;
    return set_node(r, neg);
}

static int rx_atom(rx *r) {
    char ch = r->p[r->pos];
    if (ch == '(') {
        if (++r->depth > 16) return rx_fail(r, "groups nested over 16 deep"), -1;
        r->pos++;
        if (r->pos < r->len && r->p[r->pos] == '?') {
            const char *q = r->p + r->pos + 1;
            if (r->pos + 1 < r->len && *q == ':') {
                r->pos += 2;
            } else if (r->pos + 2 < r->len && *q == '<' && q[1] != '=' && q[1] != '!') {
                const char *close = memchr(q, '>', r->len - r->pos - 1);
                if (!close) return rx_fail(r, "an unclosed group name"), -1;
                r->pos = (size_t)(close - r->p) + 1;
            } else {
                return rx_fail(r, "a lookaround (not served)"), -1;
            }
        }
        int g = rx_alt(r);
        if (g < 0) return -1;
        if (r->pos >= r->len || r->p[r->pos] != ')') return rx_fail(r, "an unclosed '('"), -1;
        r->pos++, r->depth--;
        return g;
    }
    r->ntmp = 0;
    if (ch == '[') return rx_class(r);
    if (ch == '.') {
        r->pos++;
        return tmp_add_not(r, set_newline, 3) ? set_node(r, false) : -1;
    }
    if (ch == '*' || ch == '+' || ch == '?' || ch == '{') return rx_fail(r, "a quantifier with nothing to repeat"), -1;
    if (ch == ']' || ch == '}') return rx_fail(r, "a lone ']' or '}'"), -1;
    uint32_t cp;
    if (ch == '\\') {
        int kind = rx_escape(r, &cp, false);
        if (kind < 0) return -1;
        if (kind == 2) return set_node(r, false);
    } else {
        const unsigned char *u = (const unsigned char *)r->p + r->pos, *at = u;
        int32_t v = schema_utf8_next(&u);
        if (v < 0) return rx_fail(r, "text that is not UTF-8"), -1;
        cp = (uint32_t)v, r->pos += (size_t)(u - at);
    }
    return tmp_add(r, cp, cp) ? set_node(r, false) : -1;
}

static bool rx_count(rx *r, long *v) {
    size_t at = r->pos;
    for (*v = 0; r->pos < r->len && r->p[r->pos] >= '0' && r->p[r->pos] <= '9'; r->pos++)
        if (*v <= MAX_COUNT) *v = *v * 10 + (r->p[r->pos] - '0');
    return r->pos > at;
}

static int rx_quant(rx *r, int a) {
    if (r->pos >= r->len) return a;
    char ch = r->p[r->pos];
    long m, n;
    if (ch == '*' || ch == '+' || ch == '?') {
        m = ch == '+', n = ch == '?' ? 1 : -1;
        r->pos++;
    } else if (ch == '{') {
        r->pos++;
        if (!rx_count(r, &m)) return rx_fail(r, "a '{' that is no quantifier"), -1;
        n = m;
        if (r->pos < r->len && r->p[r->pos] == ',') {
            r->pos++;
            if (!rx_count(r, &n)) n = -1;
        }
        if (r->pos >= r->len || r->p[r->pos] != '}') return rx_fail(r, "a '{' that is no quantifier"), -1;
        r->pos++;
        if (n >= 0 && n < m) return rx_fail(r, "a quantifier {m,n} with n under m"), -1;
        if (m > MAX_COUNT) return rx_fail(r, "a count over 4096"), -1;
    } else {
        return a;
    }
    if (r->pos < r->len && r->p[r->pos] == '?') r->pos++; /* lazy: the same strings */
    if (r->pos < r->len && strchr("*+?{", r->p[r->pos])) return rx_fail(r, "a quantifier with nothing to repeat"), -1;
    int q = rx_node(r, RX_REP);
    if (q < 0) return -1;
    r->n[q].kid = a, r->n[q].min = m, r->n[q].max = n;
    return q;
}

static int rx_cat(rx *r) {
    int cat = rx_node(r, RX_CAT), last = -1;
    if (cat < 0) return -1;
    while (r->pos < r->len && r->p[r->pos] != '|' && r->p[r->pos] != ')') {
        if (r->p[r->pos] == '^') {
            if (r->depth || last >= 0) return rx_fail(r, "a '^' not at the start (served: at the start)"), -1;
            r->pos++;
            continue;
        }
        if (r->p[r->pos] == '$') {
            r->pos++;
            if (r->depth || (r->pos < r->len && r->p[r->pos] != '|'))
                return r->pos--, rx_fail(r, "a '$' not at the end (served: at the end)"), -1;
            continue;
        }
        int a = rx_atom(r);
        if (a >= 0) a = rx_quant(r, a);
        if (a < 0) return -1;
        if (last < 0)
            r->n[cat].kid = a;
        else
            r->n[last].next = a;
        last = a;
    }
    return cat;
}

static int rx_alt(rx *r) {
    int first = rx_cat(r);
    if (first < 0 || r->pos >= r->len || r->p[r->pos] != '|') return first;
    int alt = rx_node(r, RX_ALT), last = first;
    if (alt < 0) return -1;
    r->n[alt].kid = first;
    while (r->pos < r->len && r->p[r->pos] == '|') {
        r->pos++;
        int k = rx_cat(r);
        if (k < 0) return -1;
        r->n[last].next = k, last = k;
    }
    return alt;
}

static int rx_parse(rx *r) {
    int root = rx_alt(r);
    if (root >= 0 && r->pos < r->len) return rx_fail(r, "an unmatched ')'"), -1;
    return root;
}

static void rx_free(rx *r) { free(r->n), free(r->rg), free(r->tmp); }

#define LEN_CAP 1000000000L
static long sat(long v) { return v > LEN_CAP ? LEN_CAP : v; }

/* the least and most characters node i matches (*mx -1: no most) */
static void rx_len(const rx *r, int i, long *mn, long *mx) {
    const rnode *n = &r->n[i];
    long a, b;
    switch (n->kind) {
    case RX_SET: *mn = *mx = 1; return;
    case RX_REP:
        rx_len(r, n->kid, &a, &b);
        *mn = sat(a * n->min);
        *mx = n->max == 0 || b == 0 ? 0 : n->max < 0 || b < 0 ? -1 : sat(b * n->max);
        return;
    case RX_CAT:
        *mn = *mx = 0;
        for (int k = n->kid; k >= 0; k = r->n[k].next) {
            rx_len(r, k, &a, &b);
            *mn = sat(*mn + a);
            *mx = *mx < 0 || b < 0 ? -1 : sat(*mx + b);
        }
        return;
    default:
        *mn = LEN_CAP, *mx = 0;
        for (int k = n->kid; k >= 0; k = r->n[k].next) {
            rx_len(r, k, &a, &b);
            *mn = a < *mn ? a : *mn;
            *mx = *mx < 0 || b < 0 ? -1 : b > *mx ? b : *mx;
        }
    }
}

/* minLength lo, maxLength hi (-1: none) beside the pattern: 1 served, 0 no string holds both, -1 refused */
static int rx_lengths(rx *r, int root, long lo, long hi) {
    long mn, mx;
    rx_len(r, root, &mn, &mx);
    if (mn >= lo && (hi < 0 || (mx >= 0 && mx <= hi))) return 1;
    if ((hi >= 0 && mn > hi) || (mx >= 0 && mx < lo)) return 0;
    /* the one item of variable length, a repetition of a fixed width, takes the bounds */
    int flex = -1, nflex = 0;
    long fixed = 0, a, b;
    for (int k = r->n[root].kind == RX_CAT ? r->n[root].kid : root; k >= 0;
         k = r->n[root].kind == RX_CAT ? r->n[k].next : -1) {
        rx_len(r, k, &a, &b);
        if (a == b)
            fixed += a;
        else
            flex = k, nflex++;
    }
    if (nflex == 1 && r->n[flex].kind == RX_REP) {
        rnode *q = &r->n[flex];
        rx_len(r, q->kid, &a, &b);
        if (a == b && a > 0) {
            long least = lo - fixed > 0 ? (lo - fixed + a - 1) / a : 0;
            if (least > q->min) q->min = least;
            if (hi >= 0) {
                if (hi < fixed) return 0;
                long most = (hi - fixed) / a;
                if (q->max < 0 || most < q->max) q->max = most;
            }
            return q->max < 0 || q->max >= q->min;
        }
    }
    schema_refuse(r->c, hi >= 0 && (mx < 0 || mx > hi) ? "maxLength" : "minLength",
                  "beside '%s' is served where its length is fixed or varies by one repetition", r->kw);
    return -1;
}

/* a set of code points as JSON writes them in a string: a class of the plain ones, and escapes */
static bool rx_emit_set(rx *r, const rnode *n, sbuf *b) {
    static const struct {
        uint32_t cp;
        const char *gbnf;
    } escaped[] = {{'"', "\"\\\\\\\"\""}, {'\\', "\"\\\\\\\\\""}, {8, "\"\\\\b\""}, {9, "\"\\\\t\""},
                   {10, "\"\\\\n\""},     {12, "\"\\\\f\""},      {13, "\"\\\\r\""}};
    sbuf cls = {0};
    int plain = 0, parts = 0;
    uint32_t only = 0;
    for (int i = 0; i < n->nrg; i++) {
        uint32_t lo = r->rg[n->rg + i].lo, hi = r->rg[n->rg + i].hi;
        if (lo < 0x20) lo = 0x20;
        for (uint32_t from = lo; from <= hi;) { /* the range without " and \ */
            uint32_t to = hi;
            if (from <= '"' && to >= '"') to = from == '"' ? '"' : '"' - 1;
            if (from <= '\\' && to >= '\\') to = from == '\\' ? '\\' : '\\' - 1;
            if (from != '"' && from != '\\') {
                schema_cp(&cls, from);
                if (to > from) gbnf_text_str(&cls, "-"), schema_cp(&cls, to);
                plain += to > from ? 2 : 1, only = from;
            }
            from = to + 1;
        }
    }
    sbuf parts_text = {0};
    if (plain == 1) {
        gbnf_text_str(&parts_text, "\""), schema_cp(&parts_text, only), gbnf_text_str(&parts_text, "\""), parts++;
    } else if (plain) {
        gbnf_text_str(&parts_text, "["), schema_cat(&parts_text, &cls), gbnf_text_str(&parts_text, "]"), parts++;
    }
    for (size_t e = 0; e < sizeof escaped / sizeof *escaped; e++)
        for (int i = 0; i < n->nrg; i++)
            if (r->rg[n->rg + i].lo <= escaped[e].cp && escaped[e].cp <= r->rg[n->rg + i].hi) {
                if (parts++) gbnf_text_str(&parts_text, " | ");
                gbnf_text_str(&parts_text, escaped[e].gbnf);
            }
    if (parts > 1) gbnf_text_str(b, "(");
    schema_cat(b, &parts_text);
    if (parts > 1) gbnf_text_str(b, ")");
    free(cls.s), free(parts_text.s);
    if (!parts)
        return schema_refuse(
            r->c, r->kw, "\"%.60s\": a control character JSON writes as \\u00XX (served: \\b \\t \\n \\f \\r)", r->p);
    return true;
}

static bool rx_emit(rx *r, int i, sbuf *b) {
    const rnode *n = &r->n[i];
    switch (n->kind) {
    case RX_SET: return rx_emit_set(r, n, b);
    case RX_CAT:
        if (n->kid < 0) gbnf_text_str(b, "\"\"");
        for (int k = n->kid; k >= 0; k = r->n[k].next) {
            if (k != n->kid) gbnf_text_str(b, " ");
            if (!rx_emit(r, k, b)) return false;
        }
        return true;
    case RX_ALT:
        gbnf_text_str(b, "(");
        for (int k = n->kid; k >= 0; k = r->n[k].next) {
            if (k != n->kid) gbnf_text_str(b, " | ");
            if (!rx_emit(r, k, b)) return false;
        }
        gbnf_text_str(b, ")");
        return true;
    default: {
        long mn, mx;
        rx_len(r, n->kid, &mn, &mx);
        if (n->max < 0 && mn == 0) {
            r->pos = 0;
            return schema_refuse(r->c, r->kw, "\"%.60s\": a repetition {m,} of what can match nothing (not served)",
                                 r->p);
        }
        sbuf x = {0};
        bool ok =
            rx_emit(r, n->kid, &x) && (x.oom ? schema_oom(r->c) : schema_rep(r->c, b, r->kw, x.s, n->min, n->max));
        free(x.s);
        return ok;
    }
    }
}

/* ---- strings ---- */

/* the formats served, as patterns of this file's subset: a common form of each, within what
 * RFC 3339 (date, time, date-time), RFC 4122 (uuid) and the usual checks of email, uri and ipv4
 * take */
#define FMT_DATE                                                                                                       \
    "([0-9]{4}-(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|[0-9]{4}-(0[469]|11)-(0[1-9]|[12][0-9]|30)|"                  \
    "[0-9]{4}-02-(0[1-9]|1[0-9]|2[0-8])|([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)-02-29)"
#define FMT_TIME "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
#define FMT_LABEL "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
static const struct {
    const char *name, *pattern;
} formats[] = {
    {"date", FMT_DATE},
    {"time", FMT_TIME},
    {"date-time", FMT_DATE "T" FMT_TIME},
    {"uuid", "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"},
    {"email", "[a-z0-9_+-]{1,24}(\\.[a-z0-9_+-]{1,24}){0,2}@(" FMT_LABEL "\\.){1,3}[a-z]{2,10}"},
    {"uri", "https?://" FMT_LABEL "(\\." FMT_LABEL "){0,3}(/[a-zA-Z0-9._~-]{1,20}){0,4}"},
    {"ipv4", "((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"},
};

int schema_emit_string(conv *c, const cJSON *s, sbuf *b) {
    long lo, hi;
    if (!schema_count_kw(c, s, "minLength", &lo) || !schema_count_kw(c, s, "maxLength", &hi)) return -1;
    if (lo < 0) lo = 0;
    if (hi >= 0 && hi < lo) return 0;
    const cJSON *fmt = schema_get(s, "format"), *pat = schema_get(s, "pattern");
    rx r = {.c = c};
    if (fmt) {
        if (!cJSON_IsString(fmt)) return schema_refuse(c, "format", "must be a string"), -1;
        for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
            if (!strcmp(fmt->valuestring, formats[i].name)) r.kw = "format", r.p = formats[i].pattern;
        if (!r.p)
            return schema_refuse(c, "format",
                                 "\"%.40s\" is not served (served: date, date-time, time, uuid, email, uri, ipv4)",
                                 fmt->valuestring),
                   -1;
    }
    if (pat) {
        if (fmt) return schema_refuse(c, "pattern", "beside 'format' is not served"), -1;
        if (!cJSON_IsString(pat)) return schema_refuse(c, "pattern", "must be a string"), -1;
        r.kw = "pattern", r.p = pat->valuestring;
    }
    gbnf_text_str(b, "\"\\\"\" ");
    if (!r.p) {
        if (!schema_rep(c, b, "minLength", "char", lo, hi)) return -1;
    } else {
        r.len = strlen(r.p);
        int root = rx_parse(&r), fits = root < 0 ? -1 : rx_lengths(&r, root, lo, hi);
        if (fits > 0 && !rx_emit(&r, root, b)) fits = -1;
        rx_free(&r);
        if (fits <= 0) return fits;
    }
    gbnf_text_str(b, " \"\\\"\"");
    return 1;
}
