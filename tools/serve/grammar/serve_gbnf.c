/*
 * serve_gbnf.c — structured output by a GBNF grammar (a request's `grammar` field): which bytes
 * may come next in a reply that must be a sentence of the grammar. The engine masks every token
 * whose bytes cannot continue the reply (serve_engine.c), as it does for JSON schemas
 * (serve_json.c); this file is the grammar's recognizer and knows nothing of tokens.
 *
 * Accepted: rules `name ::= alternatives` (names of ASCII letters, digits and '-'), whose start
 * rule is `root`, referring to rules defined before or after them; alternatives `a | b`;
 * sequences; groups `( ... )`; string literals "..." and character classes [a-z0-9_], [^"\\] of
 * code points, both with the escapes \n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH and raw UTF-8;
 * `.` (any code point); repetition `*`, `+`, `?`, {m}, {m,}, {m,n} (after a literal: of the whole
 * literal; repetitions stack, `x*?` is `(x*)?`); comments `#` to the end of the line. A rule may
 * span lines: outside parentheses a newline ends it only where the next line (past blank and
 * comment lines) starts a new `name ::=`; inside parentheses newlines are white space. Refused,
 * with the line and column: token references (<...>, <[id]>, !<...>), any other escape, invalid
 * UTF-8, a rule defined twice, an undefined rule, no `root`, left recursion (a rule that can
 * begin with itself, directly or through rules that can be empty, as in `a ::= b? a "x"`), a
 * repetition `*`, `+`, {m,} of what can be empty (it would be left recursion once rewritten),
 * and grammars over the limits below.
 *
 * Compilation: each rule becomes alternatives of elements (a character class, a reference to a
 * rule), each alternative closed by an end marker, all in one flat array of ints (code). A group
 * becomes a helper rule (one of a single alternative, not repeated, is written inline); x* a
 * helper S ::= x S | (empty); x+ is x S; x? a helper O ::= x | (empty); x{m,n} is m copies of x
 * and a chain of n - m nested optional helpers (x (x ...)?)?; identical helpers are shared.
 *
 * Recognition: a pushdown recognizer over code points. One reading of the reply is a stack of
 * positions in code: the top is what the next code point must match; each position below is
 * where an open rule goes on once the rule above it ends. The state is the set of distinct
 * stacks (an empty stack: the reply may end here). A code point replaces each stack whose top
 * holds it by the position after the class it matched, then, until a class is on top, an end
 * marker pops and a rule reference forks one stack per alternative of the rule (a reference
 * that ends its alternative is replaced rather than kept below, so right recursion such as x*
 * runs in constant depth). To spare that work at every code point, each rule reference has a
 * closure computed with the grammar: the tops it expands into (positions down to a class) and
 * whether it can end empty. A stack keeps the reference on top, standing for all of its
 * closure's tops, until a code point picks those it matches; references whose closure would be
 * too big or too deep (CLO_*) are expanded step by step instead. Stacks are flat int arrays in
 * one buffer, so a copy is one memcpy; the successors go to a second buffer, deduplicated by
 * comparison while few, then through a hash table that a generation count empties in O(1).
 * Bytes are read as strict UTF-8 (no overlong forms, no surrogates); a reply that stops inside
 * a character is kept iff some top's class meets the code points that begin with those bytes.
 *
 * Limits, so that neither compiling nor feeding can hang or exhaust memory on a hostile grammar:
 * text up to 64 KiB; 1024 rules after rewriting; repetition counts up to 256; parentheses nested
 * up to 64 deep (the parser recurses); 1M elements once repetitions are expanded. Feed refuses a
 * reply read in more than 4096 ways at once, or with more than 256 positions on one stack, or
 * 65536 on all, or whose next code point takes more than 65536 expansion steps (a very
 * ambiguous grammar): a state stays under 256 KiB and a code point under a millisecond or so,
 * though a grammar that keeps thousands of readings alive makes every feed slow.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "serve_gbnf.h"
#include "utf8.h"

enum { E_END = 0, E_CHAR = 1, E_RULE = 2 }; /* an element: (argument << 2) | kind; E_END is 0 */
#define TAG(e) ((e)&3)
#define ARG(e) ((e) >> 2)
#define ELEM(kind, arg) ((int)((unsigned)(arg) << 2) | (kind))
#define MAX_NEST 64         /* parentheses within parentheses */
#define MAX_ELEMS (1 << 20) /* elements once repetitions are expanded */
#define MAX_STEPS (1 << 16) /* expansion steps for one code point */
#define MAX_STATE (1 << 16) /* ints of all the stacks of a state */
#define MAX_CP 0x10FFFFu    /* the last code point */
#define HELPER_TABLE 4096   /* the table of helpers for sharing: twice the most rules */
#define DEDUPE (2 * GBNF_MAX_STACKS)
#define CLO_UNSET (-1)
#define CLO_DYNAMIC (-2) /* no closure: past the bounds below */
#define CLO_BUSY (-3)
#define CLO_ITEMS 64       /* stacks tops in one closure */
#define CLO_LEN 32         /* positions in one of them */
#define CLO_DEPTH 48       /* closures within closures */
#define CLO_POOL (1 << 21) /* ints of all closures */

typedef struct grange {
    uint32_t lo, hi;
} grange;
typedef struct gclass {
    uint32_t ascii[4]; /* U+0000..U+007F, a bit each */
    int off, n;        /* the ranges from U+0080 on: rg[off .. off + n), sorted and apart */
} gclass;

struct gbnf_grammar {
    int *code;    /* the elements; code[0] refers to root, code[1] ends */
    int *alt_off; /* [nrules + 1]: rule r's alternatives begin at alts[alt_off[r] .. alt_off[r + 1]) */
    int *alts;    /* where each alternative begins in code */
    gclass *cls;
    grange *rg;
    int *clo_off; /* [ncode]: at a rule reference, its closure's offset in clo, or CLO_DYNAMIC */
    int *clo;     /* the closures (closure) */
    int ncode, nrules, ncls;
    _Atomic int extra; /* holders beyond the first (gbnf_ref): a prompt list's requests share one */
};

/* ---- UTF-8 ---- */

/* the character at s (n bytes left): its length, 0 when not valid UTF-8 */
static int utf8_decode(const char *s, int n, uint32_t *cp) {
    const int len = n > 0 ? utf8_scan((const unsigned char *)s, (size_t)n, cp) : 0;
    return len > 0 ? len : 0;
}

/* ---- the compiler's data ---- */

typedef struct ivec {
    int *v;
    int n, cap;
} ivec;

enum { K_NAMED, K_GROUP, K_HELPER, K_STAR };
typedef struct crule {
    ivec body;          /* elements, E_END after each alternative */
    int kind;           /* K_* */
    int name_off, name; /* K_NAMED: the name's offset and length in the text */
    int def_at;         /* where it is defined (a helper: where its text begins); -1: not yet */
    int ref_at;         /* K_NAMED: where it is first referred to */
    int owner;          /* the named rule whose text made it */
    uint32_t hash;      /* a shared helper's */
    bool dead;          /* a group written inline */
} crule;

typedef struct parser {
    const char *s;
    int len, pos;
    char *err;
    size_t errlen;
    bool failed;
    crule *r;
    int nr, capr, live, over_at; /* over_at: where the rules first passed the limit */
    int *names, names_size;      /* named rules by name: index + 1; a power of two */
    int *cls_table;              /* classes by content: index + 1; 2 * names_size */
    int helpers[HELPER_TABLE];   /* shared helpers by hash: index + 1 */
    gclass *cls;
    int ncls, capcls;
    grange *rg;
    int nrg, caprg;
    grange *tmp; /* the class being read */
    int ntmp, captmp;
    ivec operand;
    int ascii_cls[128], any_cls; /* classes of one ASCII character, of any: -1 until made */
    int nest, cur, elems;        /* cur: the named rule being read */
} parser;

/* v grown to hold need items of size bytes: the new array (v kept on failure: NULL) */
static void *grow(void *v, int *cap, int need, size_t size) {
    if (need <= *cap) return v;
    int c = *cap > 8 ? *cap : 8;
    while (c < need) c *= 2;
    void *n = realloc(v, (size_t)c * size);
    if (n) *cap = c;
    return n;
}

static void where(const parser *p, int at, int *line, int *col) {
    *line = 1, *col = 1;
    for (int i = 0; i < at && i < p->len; i++) {
        if (p->s[i] == '\n')
            ++*line, *col = 1;
        else if (((unsigned char)p->s[i] & 0xC0) != 0x80)
            ++*col;
    }
}

/* The first error wins: "line L, column C: what" (columns count characters). */
static void fail(parser *p, int at, const char *fmt, ...) {
    if (p->failed) return;
    p->failed = true;
    if (!p->err || !p->errlen) return;
    int line, col;
    where(p, at, &line, &col);
    int k = snprintf(p->err, p->errlen, "line %d, column %d: ", line, col);
    if (k < 0 || (size_t)k >= p->errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
    va_end(ap);
}

static bool oom(parser *p) {
    fail(p, p->pos, "out of memory");
    return false;
}

/* a byte for a message: 'c', or its value */
static const char *show(char c, char buf[24]) {
    unsigned char u = (unsigned char)c;
    if (u > 32 && u < 127)
        snprintf(buf, 24, "'%c'", c);
    else
        snprintf(buf, 24, "byte 0x%02X", u);
    return buf;
}

static int short_len(int n) { return n > 64 ? 64 : n; } /* names in messages */

static bool push(parser *p, ivec *v, int x) {
    if (v->n == v->cap) {
        int *n = grow(v->v, &v->cap, v->n + 1, sizeof *n);
        if (!n) return oom(p);
        v->v = n;
    }
    v->v[v->n++] = x;
    return true;
}

static bool add(parser *p, int r, int e) { /* an element at the end of rule r */
    if (++p->elems > MAX_ELEMS) {
        fail(p, p->pos, "grammar too big: more than %d elements once repetitions are expanded", MAX_ELEMS);
        return false;
    }
    return push(p, &p->r[r].body, e);
}

static int new_rule(parser *p, int kind, int at) {
    if (p->live >= GBNF_MAX_RULES + MAX_NEST + 1) {
        fail(p, at, "grammar too big: more than %d rules once groups and repetitions are rewritten", GBNF_MAX_RULES);
        return -1;
    }
    crule *n = grow(p->r, &p->capr, p->nr + 1, sizeof *n);
    if (!n) return oom(p), -1;
    p->r = n;
    crule *c = &p->r[p->nr];
    memset(c, 0, sizeof *c);
    c->kind = kind, c->def_at = at, c->ref_at = at, c->owner = p->cur;
    if (++p->live == GBNF_MAX_RULES + 1 && p->over_at < 0) p->over_at = at;
    return p->nr++;
}

static uint32_t hash_bytes(const char *s, int n) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static uint32_t hash_ints(const int *v, int n, uint32_t h) {
    for (int i = 0; i < n; i++) h = (h ^ (uint32_t)v[i]) * 16777619u;
    return h ^ h >> 15;
}

/* The named rule of that name (create: made undefined if new). -1: none, or failed. */
static int named(parser *p, int off, int n, bool create) {
    int mask = p->names_size - 1;
    for (int i = (int)(hash_bytes(p->s + off, n) & (uint32_t)mask);; i = (i + 1) & mask) {
        int r = p->names[i] - 1;
        if (r >= 0 && p->r[r].name == n && !memcmp(p->s + p->r[r].name_off, p->s + off, (size_t)n)) return r;
        if (r >= 0) continue;
        if (!create) return -1;
        if ((r = new_rule(p, K_NAMED, off)) < 0) return -1;
        p->r[r].name_off = off, p->r[r].name = n, p->r[r].def_at = -1, p->r[r].owner = r;
        p->names[i] = r + 1;
        return r;
    }
}

/* ---- character classes ---- */

static int cmp_range(const void *a, const void *b) {
    uint32_t x = ((const grange *)a)->lo, y = ((const grange *)b)->lo;
    return (x > y) - (x < y);
}

static bool tmp_push(parser *p, uint32_t lo, uint32_t hi) {
    grange *n = grow(p->tmp, &p->captmp, p->ntmp + 1, sizeof *n);
    if (!n) return oom(p);
    p->tmp = n;
    p->tmp[p->ntmp++] = (grange){lo, hi};
    return true;
}

/* p->tmp sorted and merged, then (neg) complemented over U+0000..U+10FFFF */
static bool normalise_ranges(parser *p, bool neg) {
    if (p->ntmp > 1) qsort(p->tmp, (size_t)p->ntmp, sizeof *p->tmp, cmp_range);
    int m = 0;
    for (int i = 0; i < p->ntmp; i++) {
        if (m && p->tmp[i].lo <= p->tmp[m - 1].hi + 1) {
            if (p->tmp[i].hi > p->tmp[m - 1].hi) p->tmp[m - 1].hi = p->tmp[i].hi;
        } else {
            p->tmp[m++] = p->tmp[i];
        }
    }
    p->ntmp = m;
    if (!neg) return true;
    uint32_t next = 0; /* the first code point not yet placed */
    int k = 0;
    for (int i = 0; i < m; i++) {
        grange g = p->tmp[i];
        if (g.lo > next && !tmp_push(p, next, g.lo - 1)) return false;
        next = g.hi + 1, k++;
    }
    if (next <= MAX_CP && !tmp_push(p, next, MAX_CP)) return false;
    memmove(p->tmp, p->tmp + m, sizeof *p->tmp * (size_t)(p->ntmp - m));
    p->ntmp -= m;
    return true;
}

/* the class of the code points in p->tmp (neg: of all others); -1 when failed */
static int add_class(parser *p, bool neg) {
    if (!normalise_ranges(p, neg)) return -1;
    gclass *cn = grow(p->cls, &p->capcls, p->ncls + 1, sizeof *cn);
    if (!cn) return oom(p), -1;
    p->cls = cn;
    gclass c = {{0, 0, 0, 0}, p->nrg, 0};
    for (int i = 0; i < p->ntmp; i++) {
        grange g = p->tmp[i];
        for (uint32_t x = g.lo; x <= g.hi && x < 128; x++) c.ascii[x >> 5] |= 1u << (x & 31);
        if (g.hi < 128) continue;
        grange *rn = grow(p->rg, &p->caprg, p->nrg + 1, sizeof *rn);
        if (!rn) return oom(p), -1;
        p->rg = rn;
        p->rg[p->nrg++] = (grange){g.lo < 128 ? 128 : g.lo, g.hi};
    }
    c.n = p->nrg - c.off;
    uint32_t h = hash_ints((const int *)c.ascii, 4, 2166136261u);
    if (c.n) h = hash_ints((const int *)(p->rg + c.off), 2 * c.n, h);
    int mask = 2 * p->names_size - 1, i = (int)(h & (uint32_t)mask);
    for (; p->cls_table[i]; i = (i + 1) & mask) { /* the same class made before */
        const gclass *o = &p->cls[p->cls_table[i] - 1];
        if (!memcmp(o->ascii, c.ascii, sizeof c.ascii) && o->n == c.n &&
            (!c.n || !memcmp(p->rg + o->off, p->rg + c.off, sizeof *p->rg * (size_t)c.n))) {
            p->nrg = c.off;
            return p->cls_table[i] - 1;
        }
    }
    p->cls_table[i] = p->ncls + 1;
    p->cls[p->ncls] = c;
    return p->ncls++;
}

static int single_class(parser *p, uint32_t cp) {
    if (cp < 128 && p->ascii_cls[cp] >= 0) return p->ascii_cls[cp];
    p->ntmp = 0;
    if (!tmp_push(p, cp, cp)) return -1;
    int k = add_class(p, false);
    if (cp < 128) p->ascii_cls[cp] = k;
    return k;
}

static int any_class(parser *p) {
    if (p->any_cls >= 0) return p->any_cls;
    p->ntmp = 0;
    if (!tmp_push(p, 0, MAX_CP)) return -1;
    return p->any_cls = add_class(p, false);
}

/* ---- reading the text ---- */

static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

static int name_len(const parser *p, int at) {
    int n = 0;
    while (at + n < p->len && is_name_char(p->s[at + n])) n++;
    return n;
}

static bool is_postfix(char c) { return c == '*' || c == '+' || c == '?' || c == '{'; }

static void blanks(parser *p) {
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t')) p->pos++;
}

static int skip_all(const parser *p, int q) { /* past white space, newlines and comments */
    while (q < p->len) {
        char c = p->s[q];
        if (c == '#')
            while (q < p->len && p->s[q] != '\n') q++;
        else if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            q++;
        else
            break;
    }
    return q;
}

static bool starts_rule(const parser *p, int q) { /* `name ::=` at q */
    int n = name_len(p, q);
    if (!n) return false;
    q += n;
    while (q < p->len && (p->s[q] == ' ' || p->s[q] == '\t')) q++;
    return p->len - q >= 3 && !memcmp(p->s + q, "::=", 3);
}

/* White space and comments; newlines too when nested in parentheses, else only where the next
 * line does not begin a new rule (the rule ends at the newline). */
static void space(parser *p, bool nested) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\r') {
            p->pos++;
        } else if (c == '#') {
            while (p->pos < p->len && p->s[p->pos] != '\n') p->pos++;
        } else if (c != '\n') {
            return;
        } else if (nested) {
            p->pos++;
        } else {
            int q = skip_all(p, p->pos);
            if (q >= p->len || starts_rule(p, q)) return;
            p->pos = q;
        }
    }
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool escape(parser *p, uint32_t *cp) { /* at the '\\' */
    int at = p->pos;
    char c = at + 1 < p->len ? p->s[at + 1] : 0, buf[24];
    int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
    if (!digits) {
        static const char from[] = "nrt\\\"[]", to[] = "\n\r\t\\\"[]";
        const char *f = c ? strchr(from, c) : NULL;
        if (!f) {
            if (at + 1 >= p->len)
                fail(p, at, "unterminated escape: '\\' ends the grammar");
            else
                fail(p, at, "bad escape: '\\' then %s (known: \\n \\r \\t \\\\ \\\" \\[ \\] \\x \\u \\U)",
                     show(c, buf));
            return false;
        }
        *cp = (unsigned char)to[f - from];
        p->pos += 2;
        return true;
    }
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        int k = at + 2 + i, d = k < p->len ? hex_value(p->s[k]) : -1;
        if (d < 0) {
            fail(p, at, "bad escape: '\\%c' takes %d hex digits", c, digits);
            return false;
        }
        v = v << 4 | (uint32_t)d;
    }
    if (v > MAX_CP) {
        fail(p, at, "bad escape: U+%X is past U+10FFFF", v);
        return false;
    }
    *cp = v;
    p->pos = at + 2 + digits;
    return true;
}

static bool read_char(parser *p, uint32_t *cp) { /* in a literal or a class */
    if (p->s[p->pos] == '\\') return escape(p, cp);
    int n = utf8_decode(p->s + p->pos, p->len - p->pos, cp);
    if (!n) {
        fail(p, p->pos, "invalid UTF-8");
        return false;
    }
    p->pos += n;
    return true;
}

static bool literal(parser *p, int r) {
    int open = p->pos++;
    for (;;) {
        if (p->pos >= p->len) {
            fail(p, open, "unterminated string");
            return false;
        }
        if (p->s[p->pos] == '"') {
            p->pos++;
            return true;
        }
        uint32_t cp;
        if (!read_char(p, &cp)) return false;
        int k = single_class(p, cp);
        if (k < 0 || !add(p, r, ELEM(E_CHAR, k))) return false;
    }
}

static bool char_class(parser *p, int r) {
    int open = p->pos++;
    bool neg = p->pos < p->len && p->s[p->pos] == '^';
    p->pos += neg;
    p->ntmp = 0;
    for (;;) {
        if (p->pos >= p->len) {
            fail(p, open, "unterminated character class");
            return false;
        }
        if (p->s[p->pos] == ']') {
            p->pos++;
            break;
        }
        int at = p->pos;
        uint32_t lo, hi;
        if (!read_char(p, &lo)) return false;
        hi = lo;
        if (p->pos + 1 < p->len && p->s[p->pos] == '-' && p->s[p->pos + 1] != ']') {
            p->pos++;
            if (!read_char(p, &hi)) return false;
            if (hi < lo) {
                fail(p, at, "character range backwards (U+%04X-U+%04X)", lo, hi);
                return false;
            }
        }
        if (!tmp_push(p, lo, hi)) return false;
    }
    int k = add_class(p, neg);
    if (k >= 0 && !p->ntmp) { /* [] or [^\x00-\U0010FFFF]: every sentence through it is cut short */
        fail(p, open, "empty character class: it matches no character");
        return false;
    }
    return k >= 0 && add(p, r, ELEM(E_CHAR, k));
}

/* ---- repetition ---- */

/* A helper rule of that body (K_STAR: body is x alone, the rule x S | (empty)), shared with an
 * identical one made before. -1: failed. */
static int helper(parser *p, int kind, const int *body, int nb, int at) {
    uint32_t h = hash_ints(body, nb, 2166136261u ^ (uint32_t)kind);
    int mask = HELPER_TABLE - 1, i = (int)(h & (uint32_t)mask);
    for (; p->helpers[i]; i = (i + 1) & mask) {
        const crule *c = &p->r[p->helpers[i] - 1];
        if (c->hash != h || c->kind != kind) continue;
        if (kind == K_STAR ? c->body.v[0] == body[0]
                           : c->body.n == nb && !memcmp(c->body.v, body, sizeof *body * (size_t)nb))
            return p->helpers[i] - 1;
    }
    int r = new_rule(p, kind, at);
    if (r < 0) return -1;
    p->r[r].hash = h;
    if (kind == K_STAR) {
        if (!add(p, r, body[0]) || !add(p, r, ELEM(E_RULE, r)) || !add(p, r, E_END) || !add(p, r, E_END)) return -1;
    } else {
        for (int k = 0; k < nb; k++)
            if (!add(p, r, body[k])) return -1;
    }
    p->helpers[i] = r + 1;
    return r;
}

/* The elements of rule r from a on (the operand) repeated m to n times (n < 0: no most). */
static bool repeat(parser *p, int r, int a, int m, int n, int at) {
    int x, len = p->r[r].body.n - a;
    if (len == 1) {
        x = p->r[r].body.v[a];
    } else { /* a literal of several characters, or none: a helper of one alternative */
        p->operand.n = 0;
        for (int i = a; i < p->r[r].body.n; i++)
            if (!push(p, &p->operand, p->r[r].body.v[i])) return false;
        if (!push(p, &p->operand, E_END)) return false;
        bool opt = m == 0 && n == 1; /* "abc"? : one helper, "abc" | (empty) */
        if (opt && !push(p, &p->operand, E_END)) return false;
        int h = helper(p, K_HELPER, p->operand.v, p->operand.n, at);
        if (h < 0) return false;
        p->r[r].body.n = a;
        if (opt) return add(p, r, ELEM(E_RULE, h));
        x = ELEM(E_RULE, h);
    }
    p->r[r].body.n = a;
    for (int i = 0; i < m; i++)
        if (!add(p, r, x)) return false;
    if (n < 0) {
        int s = helper(p, K_STAR, &x, 1, at);
        return s >= 0 && add(p, r, ELEM(E_RULE, s));
    }
    int prev = -1; /* the chain of optional helpers, innermost first */
    for (int k = 0; k < n - m; k++) {
        int body[4] = {x, E_END, E_END, E_END}, nb = 3;
        if (prev >= 0) body[1] = ELEM(E_RULE, prev), nb = 4;
        if ((prev = helper(p, K_HELPER, body, nb, at)) < 0) return false;
    }
    return prev < 0 || add(p, r, ELEM(E_RULE, prev));
}

static bool read_count(parser *p, int *v) {
    int at = p->pos, n = 0, digits = 0;
    for (; p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9'; p->pos++, digits++)
        if (n <= GBNF_MAX_REPEAT) n = n * 10 + (p->s[p->pos] - '0');
    if (!digits) {
        fail(p, at, "expected a number in {...}");
        return false;
    }
    if (n > GBNF_MAX_REPEAT) {
        fail(p, at, "repetition count over %d", GBNF_MAX_REPEAT);
        return false;
    }
    *v = n;
    return true;
}

/* the postfix at p->pos applied to the operand (rule r's elements from a on, its text at `at`) */
static bool postfix(parser *p, int r, int a, int at) {
    char c = p->s[p->pos];
    int open = p->pos++, m, n;
    if (c == '*') {
        m = 0, n = -1;
    } else if (c == '+') {
        m = 1, n = -1;
    } else if (c == '?') {
        m = 0, n = 1;
    } else {
        blanks(p);
        if (!read_count(p, &m)) return false;
        blanks(p);
        n = m;
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            blanks(p);
            if (p->pos < p->len && p->s[p->pos] == '}')
                n = -1;
            else if (!read_count(p, &n))
                return false;
            blanks(p);
        }
        if (p->pos >= p->len || p->s[p->pos] != '}') {
            fail(p, open, "unterminated {m,n}: expected '}'");
            return false;
        }
        p->pos++;
        if (n >= 0 && n < m) {
            fail(p, open, "{%d,%d}: the most is fewer than the least", m, n);
            return false;
        }
    }
    return repeat(p, r, a, m, n, at);
}

/* ---- rules ---- */

static void alternatives(parser *p, int r, bool nested);

static bool group(parser *p, int r, int *g) {
    int open = p->pos++;
    if (p->nest >= MAX_NEST) {
        fail(p, open, "parentheses nested more than %d deep", MAX_NEST);
        return false;
    }
    int h = new_rule(p, K_GROUP, open);
    if (h < 0) return false;
    p->nest++;
    alternatives(p, h, true);
    p->nest--;
    if (p->failed) return false;
    if (p->pos >= p->len || p->s[p->pos] != ')') {
        fail(p, open, "unterminated '(': expected ')'");
        return false;
    }
    p->pos++;
    *g = h;
    return add(p, r, ELEM(E_RULE, h));
}

/* a group of one alternative, not repeated (rule r's element at a), written inline */
static bool inline_group(parser *p, int r, int a, int g) {
    int ends = 0;
    for (int i = 0; i < p->r[g].body.n; i++) ends += p->r[g].body.v[i] == E_END;
    if (ends != 1) return true;
    p->r[r].body.n = a;
    for (int i = 0; i + 1 < p->r[g].body.n; i++)
        if (!add(p, r, p->r[g].body.v[i])) return false;
    free(p->r[g].body.v);
    memset(&p->r[g].body, 0, sizeof p->r[g].body);
    p->r[g].dead = true;
    p->live--;
    return true;
}

/* one element at p->pos into rule r; g: the group's rule when it is a group */
static bool symbol(parser *p, int r, int *g) {
    char c = p->s[p->pos], buf[24];
    if (is_name_char(c)) {
        int off = p->pos, n = name_len(p, off);
        p->pos += n;
        int t = named(p, off, n, true);
        return t >= 0 && add(p, r, ELEM(E_RULE, t));
    }
    switch (c) {
    case '"': return literal(p, r);
    case '[': return char_class(p, r);
    case '(': return group(p, r, g);
    case '.': {
        p->pos++;
        int k = any_class(p);
        return k >= 0 && add(p, r, ELEM(E_CHAR, k));
    }
    case '<':
    case '!': fail(p, p->pos, "token references (<...>, <[id]>, !<...>) are not supported"); return false;
    default: break;
    }
    if (is_postfix(c))
        fail(p, p->pos, "'%c' repeats nothing", c);
    else if (c == ':' && p->len - p->pos >= 3 && !memcmp(p->s + p->pos, "::=", 3))
        fail(p, p->pos, "'::=' in the middle of a rule (a new rule begins on a new line)");
    else
        fail(p, p->pos, "unexpected %s", show(c, buf));
    return false;
}

static void sequence(parser *p, int r, bool nested) {
    for (;;) {
        space(p, nested);
        if (p->pos >= p->len) return;
        char c = p->s[p->pos];
        if (c == '|' || c == ')' || c == '\n') return;
        int a = p->r[r].body.n, at = p->pos, g = -1;
        if (!symbol(p, r, &g)) return;
        bool repeated = false;
        for (;;) {
            space(p, nested);
            if (p->pos >= p->len || !is_postfix(p->s[p->pos])) break;
            if (!postfix(p, r, a, at)) return;
            repeated = true;
        }
        if (g >= 0 && !repeated && !inline_group(p, r, a, g)) return;
    }
}

static void alternatives(parser *p, int r, bool nested) {
    for (;;) {
        sequence(p, r, nested);
        if (p->failed || !add(p, r, E_END)) return;
        if (p->pos >= p->len || p->s[p->pos] != '|') return;
        p->pos++;
    }
}

static void rule(parser *p) {
    int at = p->pos, n = name_len(p, at);
    char buf[24];
    if (!n) {
        fail(p, at, "expected a rule name, found %s", show(p->s[at], buf));
        return;
    }
    p->pos += n;
    blanks(p);
    if (p->len - p->pos < 3 || memcmp(p->s + p->pos, "::=", 3)) {
        fail(p, p->pos, "expected '::=' after the rule name '%.*s'", short_len(n), p->s + at);
        return;
    }
    p->pos += 3;
    int r = named(p, at, n, true);
    if (r < 0) return;
    if (p->r[r].def_at >= 0) {
        int line, col;
        where(p, p->r[r].def_at, &line, &col);
        fail(p, at, "rule '%.*s' defined twice (first at line %d, column %d)", short_len(n), p->s + at, line, col);
        return;
    }
    p->r[r].def_at = at, p->cur = r;
    alternatives(p, r, false);
    if (p->failed || p->pos >= p->len || p->s[p->pos] == '\n') return;
    fail(p, p->pos, p->s[p->pos] == ')' ? "unmatched ')'" : "unexpected text after the rule");
}

/* ---- checks ---- */

typedef struct lrcheck {
    parser *p;
    char *mark;     /* 0: not seen, 1: on the path, 2: done */
    bool *nullable; /* the rule can match the empty string */
    int *path, depth;
} lrcheck;

/* s is on the path again: the rules from it on can begin with themselves */
static void left_recursion(lrcheck *c, int s) {
    parser *p = c->p;
    int k = c->depth - 1;
    while (k > 0 && c->path[k] != s) k--;
    for (int j = k; j < c->depth; j++) {
        const crule *r = &p->r[c->path[j]];
        if (r->kind == K_NAMED) {
            fail(p, r->def_at,
                 "rule '%.*s' is left-recursive: it can begin with itself (directly or after rules that can be empty)",
                 short_len(r->name), p->s + r->name_off);
            return;
        }
    }
    const crule *r = &p->r[s], *o = &p->r[r->owner];
    fail(p, r->def_at, "in rule '%.*s': a repetition ('*', '+' or '{m,}') of something that can be empty",
         short_len(o->name), p->s + o->name_off);
}

/* Depth first along the rules each rule can begin with (its alternatives' elements up to the
 * first that cannot be empty): nullable, and false at a cycle (left recursion). The recursion is
 * bounded by the number of rules. */
static bool visit(lrcheck *c, int r) {
    c->mark[r] = 1;
    c->path[c->depth++] = r;
    const ivec *b = &c->p->r[r].body;
    bool nullable = false, all = true;
    for (int i = 0; i < b->n; i++) {
        int e = b->v[i];
        if (e == E_END) {
            nullable |= all, all = true;
        } else if (!all) {
            continue;
        } else if (TAG(e) == E_CHAR) {
            all = false;
        } else {
            int s = ARG(e);
            if (c->mark[s] == 1) return left_recursion(c, s), false;
            if (!c->mark[s] && !visit(c, s)) return false;
            all = c->nullable[s];
        }
    }
    c->nullable[r] = nullable, c->mark[r] = 2, c->depth--;
    return true;
}

static void check_left_recursion(parser *p) {
    lrcheck c = {p, calloc((size_t)p->nr, 1), calloc((size_t)p->nr, sizeof(bool)), malloc(sizeof(int) * (size_t)p->nr),
                 0};
    if (!c.mark || !c.nullable || !c.path)
        oom(p);
    else
        for (int r = 0; r < p->nr && !p->failed; r++)
            if (!p->r[r].dead && !c.mark[r]) visit(&c, r);
    free(c.mark), free(c.nullable), free(c.path);
}

/* Which rules can match some text, by a worklist: a rule can once one of its alternatives refers
 * only to rules that can (classes are never empty). A named rule that cannot recurses without
 * end, and every sentence through it would be cut short: it is refused (the first defined). */
static void check_productive(parser *p) {
    int nalt = 0, nref = 0;
    for (int r = 0; r < p->nr; r++)
        for (int i = 0; i < p->r[r].body.n; i++)
            nalt += p->r[r].body.v[i] == E_END, nref += TAG(p->r[r].body.v[i]) == E_RULE;
    int *need = calloc((size_t)nalt + 1, sizeof(int)), *alt_rule = malloc(sizeof(int) * ((size_t)nalt + 1));
    int *ref_off = calloc((size_t)p->nr + 1, sizeof(int)), *refs = malloc(sizeof(int) * ((size_t)nref + 1));
    int *queue = malloc(sizeof(int) * (size_t)p->nr);
    bool *can = calloc((size_t)p->nr, sizeof(bool));
    if (!need || !alt_rule || !ref_off || !refs || !queue || !can) {
        oom(p);
        goto done;
    }
    for (int r = 0, a = 0; r < p->nr; r++) /* need: each alternative's rule references; per rule, how many */
        for (int i = 0; i < p->r[r].body.n; i++) {
            int e = p->r[r].body.v[i];
            if (e == E_END) alt_rule[a++] = r;
            if (TAG(e) == E_RULE) need[a]++, ref_off[ARG(e) + 1]++;
        }
    for (int r = 0; r < p->nr; r++) ref_off[r + 1] += ref_off[r];
    for (int r = 0, a = 0; r < p->nr; r++) /* refs: the alternatives that refer to each rule, once a reference */
        for (int i = 0; i < p->r[r].body.n; i++) {
            int e = p->r[r].body.v[i];
            if (e == E_END) a++;
            if (TAG(e) == E_RULE) refs[ref_off[ARG(e)]++] = a;
        }
    for (int r = p->nr; r > 0; r--) ref_off[r] = ref_off[r - 1];
    ref_off[0] = 0;
    int nq = 0;
    for (int a = 0; a < nalt; a++)
        if (!need[a] && !can[alt_rule[a]]) can[alt_rule[a]] = true, queue[nq++] = alt_rule[a];
    while (nq > 0) {
        int r = queue[--nq];
        for (int k = ref_off[r]; k < ref_off[r + 1]; k++)
            if (--need[refs[k]] == 0 && !can[alt_rule[refs[k]]])
                can[alt_rule[refs[k]]] = true, queue[nq++] = alt_rule[refs[k]];
    }
    int r = -1;
    for (int k = 0; k < p->nr; k++)
        if (!p->r[k].dead && !can[k] && (r < 0 || p->r[k].def_at < p->r[r].def_at)) r = k;
    if (r < 0) goto done;
    /* r needs a rule that cannot, which needs another...: along them to a cycle, the rules that recurse
     * without end, and the first defined named rule of it (a cycle of groups and repetitions alone
     * has none: each of those can match something or refers to a named rule) */
    int *seen = queue, step = 0; /* seen[rule]: 1 + the step it was reached at */
    memset(seen, 0, sizeof(int) * (size_t)p->nr);
    while (!seen[r]) {
        seen[r] = ++step;
        const ivec *b = &p->r[r].body;
        int i = 0;
        while (TAG(b->v[i]) != E_RULE || can[ARG(b->v[i])]) i++; /* its first alternative has one */
        r = ARG(b->v[i]);
    }
    int first = seen[r], worst = -1;
    for (int k = 0; k < p->nr; k++)
        if (seen[k] >= first && p->r[k].kind == K_NAMED && (worst < 0 || p->r[k].def_at < p->r[worst].def_at))
            worst = k;
    if (worst >= 0)
        fail(p, p->r[worst].def_at, "rule '%.*s' can match no text: each of its alternatives recurses without end",
             short_len(p->r[worst].name), p->s + p->r[worst].name_off);
done:
    free(need), free(alt_rule), free(ref_off), free(refs), free(queue), free(can);
}

/* after reading: every rule defined, a root, the limits, no left recursion; root's index or -1 */
static int check(parser *p) {
    if (!p->nr) {
        fail(p, 0, "empty grammar: no rules (the start rule is 'root')");
        return -1;
    }
    for (int r = 0; r < p->nr; r++)
        if (p->r[r].kind == K_NAMED && p->r[r].def_at < 0) {
            fail(p, p->r[r].ref_at, "undefined rule '%.*s'", short_len(p->r[r].name), p->s + p->r[r].name_off);
            return -1;
        }
    int root = -1;
    for (int r = 0; r < p->nr && root < 0; r++)
        if (p->r[r].kind == K_NAMED && p->r[r].name == 4 && !memcmp(p->s + p->r[r].name_off, "root", 4)) root = r;
    if (root < 0) {
        fail(p, p->len, "no rule 'root' (the start rule)");
        return -1;
    }
    if (p->live > GBNF_MAX_RULES) {
        fail(p, p->over_at, "grammar too big: %d rules once groups and repetitions are rewritten (at most %d)", p->live,
             GBNF_MAX_RULES);
        return -1;
    }
    check_left_recursion(p);
    if (!p->failed) check_productive(p);
    return p->failed ? -1 : root;
}

/* ---- the compiled grammar ---- */

gbnf_grammar *gbnf_ref(gbnf_grammar *g) {
    if (g) atomic_fetch_add(&g->extra, 1);
    return g;
}

void gbnf_free(gbnf_grammar *g) {
    if (!g || atomic_fetch_sub(&g->extra, 1) > 0) return; /* another holder has it still */
    free(g->code), free(g->alt_off), free(g->alts), free(g->cls), free(g->rg), free(g->clo_off), free(g->clo);
    free(g);
}

static gbnf_grammar *layout(parser *p, int root) {
    gbnf_grammar *g = calloc(1, sizeof *g);
    int ncode = 2, nalts = 0;
    for (int r = 0; r < p->nr; r++) {
        ncode += p->r[r].body.n;
        for (int i = 0; i < p->r[r].body.n; i++) nalts += p->r[r].body.v[i] == E_END;
    }
    if (g) {
        g->code = malloc(sizeof(int) * (size_t)ncode);
        g->alt_off = malloc(sizeof(int) * (size_t)(p->nr + 1));
        g->alts = malloc(sizeof(int) * (size_t)(nalts + 1));
    }
    if (!g || !g->code || !g->alt_off || !g->alts) return gbnf_free(g), oom(p), NULL;
    g->code[0] = ELEM(E_RULE, root), g->code[1] = E_END;
    int pc = 2, na = 0;
    for (int r = 0; r < p->nr; r++) {
        const ivec *b = &p->r[r].body;
        g->alt_off[r] = na;
        for (int i = 0; i < b->n; i++) {
            if (i == 0 || b->v[i - 1] == E_END) g->alts[na++] = pc;
            g->code[pc++] = b->v[i];
        }
    }
    g->alt_off[p->nr] = na;
    g->ncode = pc, g->nrules = p->nr, g->ncls = p->ncls;
    g->cls = p->cls, g->rg = p->rg;
    p->cls = NULL, p->rg = NULL;
    return g;
}

/* ---- closures ---- */

typedef struct cbuild {
    gbnf_grammar *g;
    int *pool, n, cap;
} cbuild;

static bool pool_put(cbuild *b, int x) {
    if (b->n >= CLO_POOL) return false;
    if (b->n == b->cap) {
        int *n = grow(b->pool, &b->cap, b->n + 1, sizeof *n);
        if (!n) return false;
        b->pool = n;
    }
    b->pool[b->n++] = x;
    return true;
}

/* the items of the closure at `from`, each under base (>= 0), at the end of the pool */
static bool copy_items(cbuild *b, int from, int base, int *nitems) {
    int at = from + 2, extra = base >= 0;
    for (int k = b->pool[from]; k > 0; k--) {
        int n = b->pool[at];
        if (++*nitems > CLO_ITEMS || n + extra > CLO_LEN || !pool_put(b, n + extra)) return false;
        if (extra && !pool_put(b, base)) return false;
        for (int i = 0; i < n; i++)
            if (!pool_put(b, b->pool[at + 1 + i])) return false;
        at += n + 1;
    }
    return true;
}

static bool put_item(cbuild *b, int base, int x, int *nitems) { /* [base,] x */
    if (++*nitems > CLO_ITEMS) return false;
    return base >= 0 ? pool_put(b, 2) && pool_put(b, base) && pool_put(b, x) : pool_put(b, 1) && pool_put(b, x);
}

/* The closure of position q, a rule reference on top of a stack: the tops that replace it once
 * expanded until a class is on top (items of positions, bottom first, the class last), and
 * whether it can end empty instead (pops: the stack below goes on). In the pool: the number of
 * items, pops, then each item's length and positions. Returns its offset, or CLO_DYNAMIC past
 * the bounds: the recognizer then expands such a stack step by step (expand). */
static int closure(cbuild *b, int q, int depth) {
    gbnf_grammar *g = b->g;
    int *memo = g->clo_off;
    if (memo[q] != CLO_UNSET) return memo[q] == CLO_BUSY ? CLO_DYNAMIC : memo[q];
    if (depth > CLO_DEPTH) return CLO_DYNAMIC;
    memo[q] = CLO_BUSY;
    int r = ARG(g->code[q]), cont = q + 1, a0 = g->alt_off[r], a1 = g->alt_off[r + 1], cc = -1;
    bool tail = g->code[cont] == E_END, popped = false;
    for (int a = a0; a < a1; a++) { /* the closures this one is made of, first */
        int x = g->alts[a], c = TAG(g->code[x]) == E_RULE ? closure(b, x, depth + 1) : 0;
        if (c < 0) return memo[q] = CLO_DYNAMIC;
        popped |= g->code[x] == E_END || (TAG(g->code[x]) == E_RULE && b->pool[c + 1]);
    }
    if (popped && !tail && TAG(g->code[cont]) == E_RULE && (cc = closure(b, cont, depth + 1)) < 0)
        return memo[q] = CLO_DYNAMIC;
    int at = b->n, nitems = 0, base = tail ? -1 : cont;
    bool ok = pool_put(b, 0) && pool_put(b, 0);
    for (int a = a0; a < a1 && ok; a++) {
        int x = g->alts[a];
        if (TAG(g->code[x]) == E_CHAR) ok = put_item(b, base, x, &nitems);
        if (TAG(g->code[x]) == E_RULE) ok = copy_items(b, memo[x], base, &nitems);
    }
    int pops = popped && tail; /* else an alternative that ends empty goes on at cont */
    if (ok && popped && !tail) ok = cc < 0 ? put_item(b, -1, cont, &nitems) : copy_items(b, cc, -1, &nitems);
    if (ok && cc >= 0) pops = b->pool[cc + 1];
    if (!ok) {
        b->n = at;
        return memo[q] = CLO_DYNAMIC;
    }
    b->pool[at] = nitems, b->pool[at + 1] = pops;
    return memo[q] = at;
}

static bool build_closures(gbnf_grammar *g) {
    cbuild b = {g, NULL, 0, 0};
    g->clo_off = malloc(sizeof(int) * (size_t)g->ncode);
    if (!g->clo_off) return false;
    for (int q = 0; q < g->ncode; q++) g->clo_off[q] = CLO_UNSET;
    for (int q = 0; q < g->ncode; q++)
        if (TAG(g->code[q]) == E_RULE) closure(&b, q, 0);
    g->clo = b.pool ? b.pool : malloc(sizeof(int));
    return g->clo != NULL;
}

static void parser_free(parser *p) {
    for (int r = 0; r < p->nr; r++) free(p->r[r].body.v);
    free(p->r), free(p->names), free(p->cls_table), free(p->cls), free(p->rg), free(p->tmp), free(p->operand.v);
    free(p);
}

/* g, unless its empty reply is already past the recognizer's limits (then every feed would fail:
 * the grammar allows nothing it can read), or memory runs out. */
static gbnf_grammar *try_start(parser *p, gbnf_grammar *g, int root) {
    gbnf_state *st = gbnf_state_new(g);
    if (!st || gbnf_state_over(st)) {
        if (st)
            fail(p, p->r[root].def_at,
                 "rule 'root' is too ambiguous: before its first character it takes more than the recognizer's "
                 "limits (%d readings at once, %d rules deep, %d steps a character)",
                 GBNF_MAX_STACKS, GBNF_MAX_DEPTH, MAX_STEPS);
        else
            oom(p);
        gbnf_free(g), g = NULL;
    }
    gbnf_state_free(st);
    return g;
}

gbnf_grammar *gbnf_compile(const char *src, size_t len, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    parser *p = calloc(1, sizeof *p);
    if (!p) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->s = src ? src : "";
    p->len = src ? (int)(len > GBNF_MAX_TEXT ? GBNF_MAX_TEXT : len) : 0;
    p->err = err, p->errlen = errlen, p->over_at = -1, p->any_cls = -1, p->cur = 0;
    for (int c = 0; c < 128; c++) p->ascii_cls[c] = -1;
    for (p->names_size = 64; p->names_size < p->len + 16; p->names_size *= 2) continue;
    p->names = calloc((size_t)p->names_size, sizeof *p->names);
    p->cls_table = calloc(2 * (size_t)p->names_size, sizeof *p->cls_table);
    gbnf_grammar *g = NULL;
    if (!p->names || !p->cls_table) {
        oom(p);
    } else if (src && len > GBNF_MAX_TEXT) {
        fail(p, p->len, "grammar too big: %zu bytes (at most %d)", len, GBNF_MAX_TEXT);
    } else {
        while (!p->failed && (p->pos = skip_all(p, p->pos)) < p->len) rule(p);
        int root = p->failed ? -1 : check(p);
        if (root >= 0) g = layout(p, root);
        if (g && !build_closures(g)) gbnf_free(g), g = NULL, oom(p);
        if (g) g = try_start(p, g, root);
    }
    parser_free(p);
    return g;
}

/* ---- the recognizer ---- */

static inline bool class_has(const gbnf_grammar *g, int k, uint32_t c) {
    const gclass *cl = &g->cls[k];
    if (c < 128) return cl->ascii[c >> 5] >> (c & 31) & 1;
    if (cl->n == 0) return false; /* no ranges above ASCII (then g->rg may be NULL) */
    const grange *r = g->rg + cl->off;
    int lo = 0, hi = cl->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (r[mid].hi < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < cl->n && r[lo].lo <= c;
}

static bool class_meets(const gbnf_grammar *g, int k, uint32_t lo, uint32_t hi) { /* lo >= 0x80 */
    const gclass *cl = &g->cls[k];
    if (cl->n == 0) return false; /* an empty class (then g->rg may be NULL) */
    const grange *r = g->rg + cl->off;
    for (int i = 0; i < cl->n; i++)
        if (r[i].hi >= lo) return r[i].lo <= hi;
    return false;
}

typedef struct slot {
    uint32_t gen, key;
    int off;
} slot;
#define SMALL 16 /* next stacks deduplicated by comparing each; past that, through the hash table */

struct gbnf_state {
    const gbnf_grammar *g;
    int n, used, cap; /* stacks; ints of buf in use, held: each stack is its length, then its positions, top last */
    int *buf;
    bool accept, bad, over; /* accept: an empty stack (the reply may end); bad: spoilt; over: by a limit */
    int npend;              /* bytes of an unfinished UTF-8 character */
    unsigned char pend[4];
    /* scratch, never copied, made by the first feed (a state only copied to and from has none): the
     * next stacks, the stacks still to expand, the one expanding */
    int *obuf, ocap, on, oused;
    bool oaccept;
    int *work, wcap, wn;
    long steps;
    uint32_t gen; /* ht's slots of this generation are taken */
    slot *ht;
    int *ooff; /* [GBNF_MAX_STACKS]: the next stacks' offsets in obuf */
    int cur[GBNF_MAX_DEPTH + 2];
};

static bool scratch(gbnf_state *st) {
    if (st->ht) return true;
    st->obuf = grow(NULL, &st->ocap, 1024, sizeof(int));
    st->work = grow(NULL, &st->wcap, 1024, sizeof(int));
    st->ooff = malloc(sizeof(int) * GBNF_MAX_STACKS);
    st->ht = calloc(DEDUPE, sizeof *st->ht);
    if (st->obuf && st->work && st->ooff && st->ht) return true;
    free(st->obuf), free(st->work), free(st->ooff), free(st->ht);
    st->obuf = st->work = st->ooff = NULL, st->ht = NULL, st->ocap = st->wcap = 0;
    return false;
}

static void round_begin(gbnf_state *st) {
    if (++st->gen == 0) { /* wrapped: every slot empty again */
        memset(st->ht, 0, sizeof *st->ht * DEDUPE);
        st->gen = 1;
    }
    st->on = 0, st->oused = 0, st->oaccept = false, st->steps = 0, st->wn = 0;
}

static void round_end(gbnf_state *st) {
    int *b = st->buf, c = st->cap;
    st->buf = st->obuf, st->cap = st->ocap, st->obuf = b, st->ocap = c;
    st->n = st->on, st->used = st->oused, st->accept = st->oaccept;
}

static bool same_stack(const int *a, const int *b, int len) { /* from the top, where stacks mostly differ */
    for (int i = len - 1; i >= 0; i--)
        if (a[i] != b[i]) return false;
    return true;
}

static uint32_t stack_key(const int *s, int len) {
    uint32_t key = (uint32_t)len * 0x9E3779B1u;
    for (int i = 0; i < len; i++) key = (key ^ (uint32_t)s[i]) * 0x85EBCA77u;
    return key ^ key >> 15;
}

static void table_put(gbnf_state *st, uint32_t key, int off) {
    unsigned h = key & (DEDUPE - 1);
    while (st->ht[h].gen == st->gen) h = (h + 1) & (DEDUPE - 1);
    st->ht[h].gen = st->gen, st->ht[h].key = key, st->ht[h].off = off;
}

/* The stack s (len positions) among the next stacks, unless there already; false: too many. The
 * first few are compared directly, the rest found through the hash table. */
static bool emit(gbnf_state *st, const int *s, int len) {
    uint32_t key = 0;
    if (st->on < SMALL) {
        for (int k = 0; k < st->on; k++) {
            const int *o = st->obuf + st->ooff[k];
            if (o[0] == len && same_stack(o + 1, s, len)) return true;
        }
    } else {
        key = stack_key(s, len);
        for (unsigned h = key & (DEDUPE - 1); st->ht[h].gen == st->gen; h = (h + 1) & (DEDUPE - 1)) {
            const int *o = st->obuf + st->ht[h].off;
            if (st->ht[h].key == key && o[0] == len && same_stack(o + 1, s, len)) return true;
        }
    }
    if (st->on == GBNF_MAX_STACKS || st->oused + len + 1 > MAX_STATE) return false;
    if (st->oused + len + 1 > st->ocap) {
        int *n = grow(st->obuf, &st->ocap, st->oused + len + 1, sizeof *n);
        if (!n) return false;
        st->obuf = n;
    }
    if (st->on == SMALL) /* the table from now on: the stacks so far into it */
        for (int k = 0; k < SMALL; k++) {
            const int *o = st->obuf + st->ooff[k];
            table_put(st, stack_key(o + 1, o[0]), st->ooff[k]);
        }
    if (st->on >= SMALL) table_put(st, key, st->oused);
    st->ooff[st->on] = st->oused;
    st->obuf[st->oused] = len;
    memcpy(st->obuf + st->oused + 1, s, sizeof *s * (size_t)len);
    st->oused += len + 1, st->on++;
    st->oaccept |= len == 0;
    return true;
}

/* a stack still to expand: cur's first len positions, then alternative start `alt` */
static bool defer(gbnf_state *st, int len, int alt) {
    if (st->wn + len + 2 > st->wcap) {
        int *n = grow(st->work, &st->wcap, st->wn + len + 2, sizeof *n);
        if (!n) return false;
        st->work = n;
    }
    memcpy(st->work + st->wn, st->cur, sizeof(int) * (size_t)len);
    st->work[st->wn + len] = alt, st->work[st->wn + len + 1] = len + 1;
    st->wn += len + 2;
    return true;
}

/* cur (len positions) expanded step by step until a class is on top of every stack it becomes,
 * each emitted; false: past a limit */
static bool expand(gbnf_state *st, int len) {
    const gbnf_grammar *g = st->g;
    int *cur = st->cur;
    for (;;) {
        if (++st->steps > MAX_STEPS) return false;
        int e = len ? g->code[cur[len - 1]] : E_END;
        if (len && e == E_END) {
            len--;
            continue;
        }
        if (TAG(e) == E_RULE) {
            int at = cur[len - 1], r = ARG(e), a0 = g->alt_off[r], a1 = g->alt_off[r + 1];
            if (g->code[at + 1] == E_END) /* the rule ends the alternative: nothing to come back to */
                len--;
            else
                cur[len - 1] = at + 1;
            if (len >= GBNF_MAX_DEPTH) return false;
            for (int a = a0 + 1; a < a1; a++)
                if (!defer(st, len, g->alts[a])) return false;
            cur[len++] = g->alts[a0];
            continue;
        }
        if (!emit(st, cur, len)) return false; /* a class on top, or the empty stack */
        if (!st->wn) return true;
        len = st->work[st->wn - 1];
        st->wn -= len + 1;
        memcpy(cur, st->work + st->wn, sizeof(int) * (size_t)len);
    }
}

/* cur (len positions) expanded until a class, or a rule reference with a closure, is on top of
 * every stack it becomes, each emitted; false: past a limit. A closure's items are not written
 * out here: the stack keeps the reference on top until a code point picks the items it matches
 * (advance), so a rule of many alternatives costs one stack, not one per alternative. */
static bool settle(gbnf_state *st, int len) {
    const gbnf_grammar *g = st->g;
    int *cur = st->cur;
    for (;;) {
        if (++st->steps > MAX_STEPS) return false;
        if (!len) return emit(st, cur, 0);
        int q = cur[len - 1], e = g->code[q];
        if (e == E_END) {
            len--;
            continue;
        }
        if (TAG(e) == E_CHAR) return emit(st, cur, len);
        int c = g->clo_off[q];
        if (c < 0) return expand(st, len);
        if (g->clo[c] && !emit(st, cur, len)) return false;
        if (!g->clo[c + 1]) return true;
        len--; /* q's rule can end empty: on below */
    }
}

/* the stack s (len positions) with top replaced by `item` (n positions, its class on top) goes
 * on past that class */
static bool step_into(gbnf_state *st, const int *s, int len, const int *item, int n) {
    if (len - 1 + n > GBNF_MAX_DEPTH) return false;
    memcpy(st->cur, s, sizeof(int) * (size_t)(len - 1));
    memcpy(st->cur + len - 1, item, sizeof(int) * (size_t)n);
    st->cur[len - 2 + n]++;
    return settle(st, len - 1 + n);
}

/* the reply goes on with code point c: false when no stack takes it, or past a limit (st->over) */
static bool advance(gbnf_state *st, uint32_t c) {
    const gbnf_grammar *g = st->g;
    round_begin(st);
    const int *b = st->buf;
    for (int k = 0, i = 0; k < st->n; k++, i += b[i] + 1) {
        int len = b[i];
        if (!len) continue;
        int top = b[i + len], e = g->code[top];
        if (TAG(e) == E_CHAR) {
            if (class_has(g, ARG(e), c) && !step_into(st, b + i + 1, len, &top, 1)) return st->over = true, false;
            continue;
        }
        const int *it = g->clo + g->clo_off[top] + 2; /* a rule reference: its closure's items */
        for (int m = g->clo[g->clo_off[top]]; m > 0; m--, it += it[0] + 1)
            if (class_has(g, ARG(g->code[it[it[0]]]), c) && !step_into(st, b + i + 1, len, it + 1, it[0]))
                return st->over = true, false;
    }
    round_end(st);
    return st->n > 0;
}

gbnf_state *gbnf_state_new(const gbnf_grammar *g) {
    gbnf_state *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->g = g;
    st->buf = grow(NULL, &st->cap, 1024, sizeof(int));
    if (!st->buf || !scratch(st)) return gbnf_state_free(st), NULL;
    round_begin(st);
    st->cur[0] = 0;                                /* the reference to root */
    if (!settle(st, 1)) st->bad = st->over = true; /* past a limit, or out of memory: every feed fails */
    round_end(st);
    return st;
}

gbnf_state *gbnf_state_dup(const gbnf_state *src) {
    gbnf_state *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->g = src->g;
    st->buf = grow(NULL, &st->cap, src->used > 16 ? src->used : 16, sizeof(int));
    if (!st->buf || !gbnf_state_copy(st, src)) return gbnf_state_free(st), NULL;
    return st;
}

void gbnf_state_free(gbnf_state *st) {
    if (!st) return;
    free(st->buf), free(st->obuf), free(st->work), free(st->ooff), free(st->ht);
    free(st);
}

bool gbnf_state_copy(gbnf_state *dst, const gbnf_state *src) {
    if (dst == src) return true;
    if (dst->g != src->g) return false;
    if (src->used > dst->cap) {
        int *n = grow(dst->buf, &dst->cap, src->used, sizeof *n);
        if (!n) return dst->bad = dst->over = true, false;
        dst->buf = n;
    }
    memcpy(dst->buf, src->buf, sizeof(int) * (size_t)src->used);
    dst->n = src->n, dst->used = src->used, dst->accept = src->accept, dst->bad = src->bad, dst->over = src->over;
    dst->npend = src->npend;
    memcpy(dst->pend, src->pend, sizeof dst->pend);
    return true;
}

/* the code points that begin with the pending bytes meet some stack's class */
static bool pending_possible(const gbnf_state *st) {
    const unsigned char *u = st->pend;
    int len = utf8_lead_length(u[0]), rest = len - st->npend;
    uint32_t v = u[0] & (0x7Fu >> len);
    for (int k = 1; k < st->npend; k++) v = v << 6 | (u[k] & 0x3Fu);
    uint32_t lo = v << (6 * rest), hi = lo | ((1u << (6 * rest)) - 1);
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000}, most[5] = {0, 0, 0x7FF, 0xFFFF, MAX_CP};
    if (lo < least[len]) lo = least[len];
    if (hi > most[len]) hi = most[len];
    if (st->npend == 1 && u[0] == 0xED) hi = 0xD7FF; /* no surrogates */
    const gbnf_grammar *g = st->g;
    const int *b = st->buf;
    for (int k = 0, i = 0; k < st->n; k++, i += b[i] + 1) {
        if (!b[i]) continue;
        int top = b[i + b[i]];
        if (TAG(g->code[top]) == E_CHAR) {
            if (class_meets(g, ARG(g->code[top]), lo, hi)) return true;
            continue;
        }
        const int *it = g->clo + g->clo_off[top] + 2;
        for (int m = g->clo[g->clo_off[top]]; m > 0; m--, it += it[0] + 1)
            if (class_meets(g, ARG(g->code[it[it[0]]]), lo, hi)) return true;
    }
    return false;
}

bool gbnf_state_feed(gbnf_state *st, const char *bytes, size_t n) {
    if (st->bad) return false;
    if (n && !scratch(st)) return st->bad = st->over = true, false;
    const unsigned char *u = (const unsigned char *)bytes;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = u[i];
        bool ok = true;
        if (!st->npend) {
            if (b < 0x80)
                ok = advance(st, b);
            else if (utf8_lead_length(b))
                st->pend[0] = b, st->npend = 1;
            else
                ok = false;
        } else {
            st->pend[st->npend++] = b;
            uint32_t cp;
            const int len = utf8_scan(st->pend, (size_t)st->npend, &cp);
            if (len > 0) { /* the character is whole */
                st->npend = 0;
                ok = advance(st, cp);
            } else {
                ok = -len == st->npend; /* every byte so far begins some character: wait for the rest */
                if (!ok) st->npend--;   /* the state as it was, marked bad below */
            }
        }
        if (!ok) return st->bad = true, false;
    }
    if (st->npend && !pending_possible(st)) return st->bad = true, false;
    return true;
}

bool gbnf_state_done(const gbnf_state *st) { return !st->bad && !st->npend && st->accept; }

bool gbnf_state_over(const gbnf_state *st) { return st->over; }

uint64_t gbnf_state_hash(const gbnf_state *st) {
    uint64_t h = 1469598103934665603u ^ (uint64_t)st->n ^ (uint64_t)st->npend << 16 ^
                 (uint64_t)(st->accept | st->bad << 1 | st->over << 2) << 20;
    for (int i = 0; i < st->npend; i++) h = (h ^ st->pend[i]) * 1099511628211u;
    for (int i = 0; i < st->used; i++) h = (h ^ (uint32_t)st->buf[i]) * 1099511628211u;
    return h ^ h >> 29;
}

bool gbnf_state_same(const gbnf_state *a, const gbnf_state *b) {
    return a->g == b->g && a->n == b->n && a->used == b->used && a->accept == b->accept && a->bad == b->bad &&
           a->over == b->over && a->npend == b->npend && !memcmp(a->pend, b->pend, (size_t)a->npend) &&
           !memcmp(a->buf, b->buf, sizeof(int) * (size_t)a->used);
}

size_t gbnf_state_bytes(const gbnf_state *st) { return sizeof *st + sizeof(int) * (size_t)st->cap; }
