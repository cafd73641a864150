/* jinja.c — a small Jinja interpreter for the chat templates models ship; this file: the lexer, the
 * parser and jinja_parse. jinja_eval.c evaluates the tree, jinja_lib.c holds the values' library.
 *
 * The output is checked, byte for byte, against @huggingface/jinja 0.5.11 (what transformers.js and
 * many servers render chat templates with) on real templates (tests/tokenizer/test_jinja.c), so the
 * semantics are that renderer's where it differs from Python's Jinja: whitespace control and
 * trim_blocks/lstrip_blocks as it applies them (on the source text), `none` renders as nothing, a list
 * renders as JSON, strip/lstrip/rstrip ignore their argument and strip JavaScript's white space, string
 * lengths and indices count UTF-16 code units, numbers are doubles (an integer 2 and a float 2.0 differ
 * only in how they print), `==` is JavaScript's loose equality, `~` and `+` on an undefined value fail,
 * a `{% set %}` inside a loop stays in the loop (and so does a macro defined there), and a macro's body
 * sees the names where the macro is called (its arguments, then the caller's loop variables, sets and
 * macros, then the globals), not those where it was defined.
 *
 * The subset: text, {{ }}, {% %}, {# #} with `-` on either side; if/elif/else, for (tuple targets, an
 * `if` filter, else, loop.index/index0/revindex/revindex0/first/last/length/previtem/nextitem), break,
 * continue, set (a name, names, `ns.attr`, or a block up to endset); macro name(a, b=default) ...
 * endmacro, anywhere, called as an expression, name(x, b=y), that gives the text of its body: arguments
 * by position or keyword, a missing one undefined, defaults evaluated at each call (after every
 * argument is bound), varargs and kwargs for the arguments left over when the body reads them, calls of
 * other macros and recursion (bounded: JINJA_MAX_NESTING); call blocks,
 * {% call(params) name(args) %}...{% endcall %}, with caller(...) in the macro rendering the block;
 * filter blocks, {% filter f %} or {% filter f(args) %}...{% endfilter %}; expressions: literals
 * (strings with escapes, numbers, lists, tuples, dicts), names, a.b, a[i], slices a[i:j:k], calls with
 * keyword arguments, `x if c else y`, unary and binary operators (+ - * / // % ** ~, comparisons, and,
 * or, not, in, not in), filters (jinja_lib.c: safe, tojson, length, trim, upper, lower, title,
 * capitalize, string, join, default, first, last, list, items, replace, indent, int, float, abs,
 * reverse, sort, unique, selectattr, rejectattr, map, dictsort, ...), tests (defined, undefined, none,
 * string, number, integer, mapping, iterable, sequence, boolean, true, false, callable, odd, even,
 * lower, upper, equalto), globals (namespace, raise_exception, range, strftime_now, true, false, none
 * and their capitalized spellings), string methods (strip, lstrip, rstrip, split, startswith, endswith,
 * upper, lower, title, capitalize, replace) and dict methods (get, items, keys, values). Not covered:
 * include/extends/import/block, with, raw, do, autoescape, argument unpacking (*a, **kw), nesting
 * deeper than JINJA_MAX_DEPTH: jinja_parse names them. A call block whose callee is not a macro, a
 * break or continue reaching a macro's end (the reference would end the caller's loop) and macros
 * nested deeper than JINJA_MAX_NESTING fail when reached. A filter, test or method this renderer lacks (reject,
 * tojson(sort_keys=true), a filter's call followed by .x, ...) fails when it is reached (jinja_render
 * returns -1), as in the reference; so do `first` and `last` of an empty list. upper/lower map ASCII,
 * Latin-1, Latin Extended-A, Greek and Cyrillic letters only.
 *
 * Design: the source is preprocessed (the reference's text-level trim_blocks, lstrip_blocks and removal
 * of {% generation %} tags, keeping each byte's line), then lexed into tokens, then parsed by recursive
 * descent into a tree of jnode (jinja_internal.h) allocated in the template's arena; every node keeps
 * its line and its depth, bounded by JINJA_MAX_DEPTH so that neither the parser nor the evaluator can
 * exhaust the stack. The evaluator walks the tree with a chain of scopes (the globals with the
 * variables, then one per for-loop and one per macro call, inside the scope it is called from) and
 * writes the text into one growing buffer; a macro's call, a set block and a filter block take the text
 * their body wrote back out of it. Macro calls re-enter the tree, so the depths of the macros being
 * called add up, bounded by JINJA_MAX_NESTING. Values (jv) are small tagged unions; strings are
 * (pointer, length) views that are never changed; lists, dicts and namespaces are allocated in the
 * rendering's arena, so that nothing is counted or freed one by one: the arena, limited to
 * JINJA_MAX_MEMORY, goes at the end of jinja_render, and so does everything on an error, which longjmps
 * back to jinja_render (or jinja_parse) with its message. A step counter (JINJA_MAX_WORK) and the
 * output limit (JINJA_MAX_OUTPUT) stop templates that would run away. */
#include "jinja_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the arena ---- */

struct jinja_chunk {
    jinja_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

void *jinja_arena_alloc(jinja_arena *a, size_t n) {
    const size_t align = sizeof(max_align_t), chunk = 64 << 10;
    if (n > a->limit || a->used > a->limit - n) return NULL;
    n = n ? (n + align - 1) / align * align : align;
    jinja_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > chunk / 4 ? n : chunk;
        jinja_chunk *fresh = malloc(sizeof *fresh + cap);
        if (!fresh) return NULL;
        fresh->used = 0;
        fresh->cap = cap;
        if (c && cap == n) { /* a large block of its own: keep the room left in the current chunk */
            fresh->next = c->next;
            c->next = fresh;
        } else {
            fresh->next = c;
            a->head = fresh;
        }
        c = fresh;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void jinja_arena_free(jinja_arena *a) {
    for (jinja_chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
    a->used = 0;
}

void jinja_fail(jinja_err *e, int line, const char *fmt, ...) {
    if (e->cap) {
        int k = line > 0 ? snprintf(e->msg, e->cap, "line %d: ", line) : 0;
        if (k < 0 || (size_t)k >= e->cap) k = 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg + k, e->cap - (size_t)k, fmt, ap);
        va_end(ap);
    }
    longjmp(e->jb, 1);
}

/* ---- preprocessing: the reference renderer's text-level steps, each byte keeping its line ---- */

typedef struct {
    char *s;
    int *line;
    size_t n;
} jsrc;

static int starts(const char *s, size_t n, size_t i, const char *lit) {
    size_t k = strlen(lit);
    return i <= n && n - i >= k && memcmp(s + i, lit, k) == 0;
}

/* After a line terminator of JavaScript's (\n, \r, U+2028, U+2029), or at the start. */
static int line_start(const char *s, size_t i) {
    if (i == 0 || s[i - 1] == '\n' || s[i - 1] == '\r') return 1;
    return i >= 3 && (unsigned char)s[i - 3] == 0xE2 && (unsigned char)s[i - 2] == 0x80 &&
           ((unsigned char)s[i - 1] == 0xA8 || (unsigned char)s[i - 1] == 0xA9);
}

static void emit(jsrc *out, const jsrc *in, size_t i) {
    out->s[out->n] = in->s[i];
    out->line[out->n++] = in->line[i];
}

/* lstrip_blocks: spaces and tabs from a line's start up to "{%", "{#" or "{-". */
static void pre_lstrip(const jsrc *in, jsrc *out) {
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        if (line_start(in->s, i)) {
            size_t j = i;
            while (j < in->n && (in->s[j] == ' ' || in->s[j] == '\t')) j++;
            if (j + 1 < in->n && in->s[j] == '{' && (in->s[j + 1] == '%' || in->s[j + 1] == '#' || in->s[j + 1] == '-'))
                i = j;
        }
        emit(out, in, i);
    }
}

/* trim_blocks: the newline right after "%}", "#}" or "-}". */
static void pre_trim(const jsrc *in, jsrc *out) {
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        char c = in->s[i];
        emit(out, in, i);
        if ((c == '#' || c == '%' || c == '-') && i + 2 < in->n && in->s[i + 1] == '}' && in->s[i + 2] == '\n') {
            emit(out, in, i + 1);
            i += 2;
        }
    }
}

static size_t skip_space(const char *s, size_t n, size_t i) {
    size_t w;
    while (i < n && (w = jx_space_at(s, n, i))) i += w;
    return i;
}

/* A {% generation %} or {% endgeneration %} tag at i: its end and its '-' marks. */
static int generation_tag(const char *s, size_t n, size_t i, size_t *end, int *lstrip, int *rstrip) {
    if (!starts(s, n, i, "{%")) return 0;
    size_t j = i + 2;
    *lstrip = j < n && s[j] == '-';
    j = skip_space(s, n, j + (size_t)*lstrip);
    if (starts(s, n, j, "endgeneration"))
        j += 13;
    else if (starts(s, n, j, "generation"))
        j += 10;
    else
        return 0;
    j = skip_space(s, n, j);
    *rstrip = j < n && s[j] == '-';
    j += (size_t)*rstrip;
    if (!starts(s, n, j, "%}")) return 0;
    *end = j + 2;
    return 1;
}

/* {% generation %} tags go, with the white space on a side that has a '-'. */
static void pre_generation(const jsrc *in, jsrc *out) {
    size_t mark = 0, end;
    int lstrip, rstrip;
    out->n = 0;
    for (size_t i = 0; i < in->n;) {
        if (!generation_tag(in->s, in->n, i, &end, &lstrip, &rstrip)) {
            emit(out, in, i++);
            continue;
        }
        size_t w;
        while (lstrip && out->n > mark && (w = jx_space_before(out->s, out->n)) && out->n - w >= mark) out->n -= w;
        i = end;
        size_t after = skip_space(in->s, in->n, i);
        for (; !rstrip && i < after; i++) emit(out, in, i);
        i = after;
        mark = out->n;
    }
}

/* ---- the lexer ---- */

typedef enum {
    T_EOF,
    T_TEXT,
    T_NUM,
    T_STR,
    T_IDENT,
    T_EQUALS,
    T_LPAREN,
    T_RPAREN,
    T_OPEN_STMT,
    T_CLOSE_STMT,
    T_OPEN_EXPR,
    T_CLOSE_EXPR,
    T_LBRACKET,
    T_RBRACKET,
    T_LBRACE,
    T_RBRACE,
    T_COMMA,
    T_DOT,
    T_COLON,
    T_PIPE,
    T_ADD,
    T_MUL,
    T_POW,
    T_CMP,
    T_UNARY,
    T_COMMENT
} jtok_type;

typedef struct {
    jtok_type t;
    int line;
    jstr s;
} jtok;

typedef struct {
    jinja_err e;
    jinja_arena *arena;
    const char *src; /* the preprocessed source, in the arena */
    const int *lines;
    size_t n;
    jtok *tok;
    size_t ntok, cap, cur;
    int depth;
    int specials; /* names varargs and kwargs parsed so far */
} jparser;

static const char *tok_name(jtok_type t) {
    static const char *names[] = {"the end of the template",
                                  "text",
                                  "a number",
                                  "a string",
                                  "a name",
                                  "'='",
                                  "'('",
                                  "')'",
                                  "'{%'",
                                  "'%}'",
                                  "'{{'",
                                  "'}}'",
                                  "'['",
                                  "']'",
                                  "'{'",
                                  "'}'",
                                  "','",
                                  "'.'",
                                  "':'",
                                  "'|'",
                                  "an operator",
                                  "an operator",
                                  "'**'",
                                  "a comparison",
                                  "a sign",
                                  "a comment"};
    return names[t];
}

static int line_at(const jparser *p, size_t i) { return p->n ? p->lines[i < p->n ? i : p->n - 1] : 1; }

static void *palloc(jparser *p, size_t n) {
    void *m = jinja_arena_alloc(p->arena, n);
    if (!m) jinja_fail(&p->e, 0, "out of memory");
    return m;
}

static void push_tok(jparser *p, jtok_type t, size_t at, const char *s, size_t len) {
    if (p->ntok == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        jtok *grown = realloc(p->tok, cap * sizeof *grown);
        if (!grown) jinja_fail(&p->e, 0, "out of memory");
        p->tok = grown;
        p->cap = cap;
    }
    p->tok[p->ntok++] = (jtok){t, line_at(p, at), {s, len}};
}

/* A '-' on the left of a tag: the white space at the end of the text before it goes. */
static void strip_text_before(jparser *p) {
    if (!p->ntok || p->tok[p->ntok - 1].t != T_TEXT) return;
    jtok *t = &p->tok[p->ntok - 1];
    t->s = jx_trim(t->s, 0, 1);
    if (!t->s.n) p->ntok--;
}

static size_t lex_comment(jparser *p, size_t i) {
    const char *s = p->src;
    size_t start = i;
    i += 2;
    int before = i < p->n && s[i] == '-';
    i += (size_t)before;
    size_t body = i;
    while (!(i + 1 < p->n && s[i] == '#' && s[i + 1] == '}')) {
        if (i + 2 >= p->n) jinja_fail(&p->e, line_at(p, start), "a comment is not closed with '#}'");
        i++;
    }
    int after = i > body && s[i - 1] == '-';
    if (before) strip_text_before(p);
    push_tok(p, T_COMMENT, start, s + body, i - body);
    i += 2;
    return after ? skip_space(s, p->n, i) : i;
}

static void put_utf8(jsb *b, uint32_t cp) {
    char *o = b->p + b->n;
    if (cp < 0x80) {
        o[0] = (char)cp, b->n += 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), b->n += 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 0x3F)), o[2] = (char)(0x80 | (cp & 0x3F));
        b->n += 3;
    } else {
        o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        o[2] = (char)(0x80 | (cp >> 6 & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F)), b->n += 4;
    }
}

static int hex_digits(const char *s, size_t n, size_t i, int k, uint32_t *v) {
    *v = 0;
    for (int j = 0; j < k; j++) {
        if (i + (size_t)j >= n) return 0;
        char c = s[i + (size_t)j];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return 0;
        *v = *v * 16 + (uint32_t)d;
    }
    return 1;
}

/* One escape after a backslash at s[i]: appended to b; returns the index after it. */
static size_t lex_escape(jparser *p, jsb *b, size_t i, size_t start) {
    const char *s = p->src;
    if (++i >= p->n) jinja_fail(&p->e, line_at(p, start), "a string is not closed");
    char c = s[i++];
    static const char from[] = "ntrbfv'\"\\", to[] = "\n\t\r\b\f\v'\"\\";
    const char *k = c ? strchr(from, c) : NULL;
    if (k) {
        b->p[b->n++] = to[k - from];
        return i;
    }
    uint32_t v, low;
    if (c != 'x' && c != 'u') jinja_fail(&p->e, line_at(p, i - 1), "unknown escape '\\%c' in a string", c);
    if (!hex_digits(s, p->n, i, c == 'x' ? 2 : 4, &v))
        jinja_fail(&p->e, line_at(p, i - 1), "a '\\%c' escape needs %d hexadecimal digits", c, c == 'x' ? 2 : 4);
    i += c == 'x' ? 2 : 4;
    if (v >= 0xD800 && v < 0xDC00 && starts(s, p->n, i, "\\u") && hex_digits(s, p->n, i + 2, 4, &low) &&
        low >= 0xDC00 && low < 0xE000) { /* a surrogate pair spelled as two escapes */
        v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00);
        i += 6;
    } else if (v >= 0xD800 && v < 0xE000) {
        v = 0xFFFD; /* a lone surrogate: what it becomes in UTF-8 */
    }
    put_utf8(b, v);
    return i;
}

static size_t lex_string(jparser *p, size_t i) {
    const char *s = p->src;
    char q = s[i];
    size_t start = i++, end = i;
    while (end < p->n && s[end] != q) end += s[end] == '\\' ? 2 : 1;
    jsb b = {palloc(p, end - i + 1), 0, 0, 0}; /* escapes never make a string longer */
    while (1) {
        if (i >= p->n) jinja_fail(&p->e, line_at(p, start), "a string is not closed");
        if (s[i] == q) break;
        if (s[i] == '\\')
            i = lex_escape(p, &b, i, start);
        else
            b.p[b.n++] = s[i++];
    }
    push_tok(p, T_STR, start, b.p, b.n);
    return i + 1;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_word(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

/* A '-' or '+' where an operand is expected: a signed number, or a unary sign. */
static size_t lex_sign(jparser *p, size_t i) {
    const char *s = p->src;
    size_t start = i++;
    while (i < p->n && is_digit(s[i])) i++;
    if (i == start + 1) {
        push_tok(p, T_UNARY, start, s + start, 1);
        return i;
    }
    if (i + 1 < p->n && s[i] == '.' && is_digit(s[i + 1]))
        for (i++; i < p->n && is_digit(s[i]);) i++;
    push_tok(p, T_NUM, start, s + start, i - start);
    return i;
}

static const struct {
    const char *seq;
    jtok_type t;
} punctuation[] = {
    {"{%", T_OPEN_STMT}, {"%}", T_CLOSE_STMT}, {"{{", T_OPEN_EXPR}, {"}}", T_CLOSE_EXPR}, {"(", T_LPAREN},
    {")", T_RPAREN},     {"{", T_LBRACE},      {"}", T_RBRACE},     {"[", T_LBRACKET},    {"]", T_RBRACKET},
    {",", T_COMMA},      {".", T_DOT},         {":", T_COLON},      {"|", T_PIPE},        {"<=", T_CMP},
    {">=", T_CMP},       {"==", T_CMP},        {"!=", T_CMP},       {"<", T_CMP},         {">", T_CMP},
    {"+", T_ADD},        {"-", T_ADD},         {"~", T_ADD},        {"**", T_POW},        {"*", T_MUL},
    {"//", T_MUL},       {"/", T_MUL},         {"%", T_MUL},        {"=", T_EQUALS}};

/* Inside a tag: one token (or the white space before it) at i. */
static size_t lex_tag_token(jparser *p, size_t i, int *curly) {
    const char *s = p->src;
    jtok_type last = p->ntok ? p->tok[p->ntok - 1].t : T_EOF;
    char c = s[i];
    if ((c == '-' || c == '+') && last != T_IDENT && last != T_NUM && last != T_STR && last != T_RPAREN &&
        last != T_RBRACKET)
        return lex_sign(p, i);
    for (size_t k = 0; k < sizeof punctuation / sizeof *punctuation; k++) {
        const char *seq = punctuation[k].seq;
        if ((punctuation[k].t == T_CLOSE_EXPR && *curly > 0) || !starts(s, p->n, i, seq)) continue;
        push_tok(p, punctuation[k].t, i, s + i, strlen(seq));
        if (punctuation[k].t == T_OPEN_EXPR) *curly = 0;
        *curly += punctuation[k].t == T_LBRACE ? 1 : punctuation[k].t == T_RBRACE ? -1 : 0;
        return i + strlen(seq);
    }
    if (c == '\'' || c == '"') return lex_string(p, i);
    size_t start = i;
    if (is_digit(c)) {
        while (i < p->n && is_digit(s[i])) i++;
        if (last != T_DOT && i + 1 < p->n && s[i] == '.' && is_digit(s[i + 1]))
            for (i++; i < p->n && is_digit(s[i]);) i++;
        push_tok(p, T_NUM, start, s + start, i - start);
        return i;
    }
    if (is_word(c)) {
        while (i < p->n && is_word(s[i])) i++;
        push_tok(p, T_IDENT, start, s + start, i - start);
        return i;
    }
    if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7F)
        jinja_fail(&p->e, line_at(p, i), "unexpected byte 0x%02x in a tag", (unsigned char)c);
    jinja_fail(&p->e, line_at(p, i), "unexpected character '%c' in a tag", c);
}

static void lex(jparser *p) {
    const char *s = p->src;
    size_t i = 0, n = p->n;
    int curly = 0;
    while (i < n) {
        jtok_type last = p->ntok ? p->tok[p->ntok - 1].t : T_EOF;
        if (last == T_EOF || last == T_CLOSE_STMT || last == T_CLOSE_EXPR || last == T_COMMENT) {
            size_t start = i;
            while (i < n && !(s[i] == '{' && i + 1 < n && (s[i + 1] == '%' || s[i + 1] == '{' || s[i + 1] == '#'))) i++;
            if (i > start) {
                push_tok(p, T_TEXT, start, s + start, i - start);
                continue;
            }
        }
        if (starts(s, n, i, "{#")) {
            i = lex_comment(p, i);
        } else if (starts(s, n, i, "{%-") || starts(s, n, i, "{{-")) {
            strip_text_before(p);
            push_tok(p, s[i + 1] == '%' ? T_OPEN_STMT : T_OPEN_EXPR, i, s + i, 2);
            if (s[i + 1] == '{') curly = 0;
            i += 3;
        } else if ((i = skip_space(s, n, i)) >= n) {
            jinja_fail(&p->e, line_at(p, n), "the template ends inside a tag");
        } else if (starts(s, n, i, "-%}") || starts(s, n, i, "-}}")) {
            push_tok(p, s[i + 1] == '%' ? T_CLOSE_STMT : T_CLOSE_EXPR, i, s + i + 1, 2);
            i = skip_space(s, n, i + 3);
        } else if ((s[i] == '-' || s[i] == '+') && (last == T_TEXT || last == T_EOF)) {
            jinja_fail(&p->e, line_at(p, i), "unexpected '%c'", s[i]);
        } else {
            i = lex_tag_token(p, i, &curly);
        }
    }
    push_tok(p, T_EOF, n, s + n, 0);
}

/* ---- the parser: recursive descent, with the reference renderer's precedences ---- */

static jtok *peek(jparser *p, size_t k) { return &p->tok[p->cur + k < p->ntok ? p->cur + k : p->ntok - 1]; }
static int is_tok(jparser *p, jtok_type t) { return peek(p, 0)->t == t; }
static int is_word_at(jparser *p, size_t k, const char *w) {
    jtok *t = peek(p, k);
    return t->t == T_IDENT && jx_streq(t->s, w);
}
static int is_op(jparser *p, jtok_type t, const char *v) {
    jtok *k = peek(p, 0);
    return k->t == t && jx_streq(k->s, v);
}
static int is_tag(jparser *p, const char *name) { return is_tok(p, T_OPEN_STMT) && is_word_at(p, 1, name); }

static jtok *expect(jparser *p, jtok_type t, const char *where) {
    jtok *k = peek(p, 0);
    if (k->t != t) jinja_fail(&p->e, k->line, "expected %s %s, found %s", tok_name(t), where, tok_name(k->t));
    p->cur++;
    return k;
}

static void expect_word(jparser *p, const char *w, const char *where) {
    if (!is_word_at(p, 0, w)) jinja_fail(&p->e, peek(p, 0)->line, "expected '%s' %s", w, where);
    p->cur++;
}

static void enter(jparser *p) {
    if (++p->depth > JINJA_MAX_DEPTH)
        jinja_fail(&p->e, peek(p, 0)->line, "nested more than %d levels deep", JINJA_MAX_DEPTH);
}

static jnode *mk(jparser *p, jnode_kind kind, int line) {
    jnode *n = palloc(p, sizeof *n);
    n->kind = kind;
    n->line = line;
    return n;
}

/* child, once its parent's depth accounts for it */
static jnode *kid(jparser *p, jnode *parent, jnode *child) {
    if (child && child->depth + 1 > parent->depth) parent->depth = child->depth + 1;
    if (parent->depth > JINJA_MAX_DEPTH)
        jinja_fail(&p->e, parent->line, "nested more than %d levels deep", JINJA_MAX_DEPTH);
    return child;
}

static void push(jparser *p, jnode *parent, jnodes *l, jnode *x) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        jnode **v = palloc(p, (size_t)cap * sizeof *v);
        if (l->n) memcpy(v, l->v, (size_t)l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = parent ? kid(p, parent, x) : x;
}

static jnode *binary(jparser *p, int op, jnode *a, jnode *b, int line) {
    jnode *n = mk(p, N_BINARY, line);
    n->op = op;
    n->a = kid(p, n, a);
    n->b = kid(p, n, b);
    return n;
}

static jnode *parse_expr(jparser *p);
static jnode *parse_primary(jparser *p);
static jnode *parse_or(jparser *p);

static jnode *parse_sequence(jparser *p, int primary) {
    jnode *first = primary ? parse_primary(p) : parse_expr(p);
    if (!is_tok(p, T_COMMA)) return first;
    jnode *t = mk(p, N_TUPLE, first->line);
    push(p, t, &t->list, first);
    while (is_tok(p, T_COMMA)) {
        p->cur++;
        push(p, t, &t->list, primary ? parse_primary(p) : parse_expr(p));
    }
    return t;
}

static jnode *parse_number(jparser *p, jtok *t) {
    char buf[64];
    if (t->s.n >= sizeof buf) jinja_fail(&p->e, t->line, "a number too long");
    memcpy(buf, t->s.p, t->s.n);
    buf[t->s.n] = 0;
    jnode *n = mk(p, memchr(buf, '.', t->s.n) ? N_FLOAT : N_INT, t->line);
    n->num = strtod(buf, NULL);
    return n;
}

static jnode *parse_collection(jparser *p, jtok *t) {
    int dict = t->t == T_LBRACE;
    jnode *n = mk(p, dict ? N_DICT : N_LIST, t->line);
    enter(p);
    while (!is_tok(p, dict ? T_RBRACE : T_RBRACKET)) {
        push(p, n, &n->list, parse_expr(p));
        if (dict) {
            expect(p, T_COLON, "between a key and its value");
            push(p, n, &n->list2, parse_expr(p));
        }
        if (is_tok(p, T_COMMA)) p->cur++;
    }
    p->cur++;
    p->depth--;
    return n;
}

static jnode *parse_primary(jparser *p) {
    jtok *t = peek(p, 0);
    p->cur++;
    switch (t->t) {
    case T_NUM: return parse_number(p, t);
    case T_STR: {
        jnode *n = mk(p, N_STR, t->line);
        n->s = t->s;
        if (is_tok(p, T_STR)) { /* adjacent literals join */
            size_t len = 0, k = p->cur - 1;
            for (size_t j = k; j < p->ntok && p->tok[j].t == T_STR; j++) len += p->tok[j].s.n;
            char *s = palloc(p, len + 1);
            for (len = 0; p->tok[k].t == T_STR; k++)
                memcpy(s + len, p->tok[k].s.p, p->tok[k].s.n), len += p->tok[k].s.n;
            n->s = (jstr){s, len};
            p->cur = k;
        }
        return n;
    }
    case T_IDENT: {
        jnode *n = mk(p, N_NAME, t->line);
        n->s = t->s;
        p->specials += jx_streq(t->s, "varargs") || jx_streq(t->s, "kwargs");
        return n;
    }
    case T_LPAREN: {
        enter(p);
        jnode *n = parse_sequence(p, 0);
        expect(p, T_RPAREN, "to close '('");
        p->depth--;
        return n;
    }
    case T_LBRACKET:
    case T_LBRACE: return parse_collection(p, t);
    default: jinja_fail(&p->e, t->line, "expected an expression, found %s", tok_name(t->t));
    }
}

/* (a, b=x, ...) into call->list: a call's arguments, or (params) a macro's parameters. */
static void parse_args(jparser *p, jnode *call, int params) {
    int keyword = 0;
    expect(p, T_LPAREN, "before arguments");
    enter(p);
    while (!is_tok(p, T_RPAREN)) {
        if (is_tok(p, T_POW) || is_op(p, T_MUL, "*"))
            jinja_fail(&p->e, peek(p, 0)->line, "argument unpacking (*args, **kwargs) is not supported");
        jnode *arg = parse_expr(p);
        if (is_tok(p, T_EQUALS)) {
            p->cur++;
            if (arg->kind != N_NAME) jinja_fail(&p->e, arg->line, "a keyword argument needs a name before '='");
            jnode *kw = mk(p, N_KWARG, arg->line);
            kw->s = arg->s;
            kw->a = kid(p, kw, parse_expr(p));
            arg = kw;
            keyword = 1;
        } else if (keyword) {
            jinja_fail(&p->e, arg->line,
                       params ? "a parameter without a default follows one with a default"
                              : "a positional argument follows a keyword argument");
        }
        push(p, call, &call->list, arg);
        if (is_tok(p, T_COMMA)) p->cur++;
    }
    p->cur++;
    p->depth--;
}

/* [i], [i:j], [i:j:k], [::k] ... */
static jnode *parse_subscript(jparser *p, jnode *obj, int line) {
    jnode *part[4] = {0};
    int n = 0, slice = 0;
    enter(p);
    while (!is_tok(p, T_RBRACKET)) {
        if (n == 3) jinja_fail(&p->e, line, "a slice has at most 3 parts");
        if (is_tok(p, T_COLON)) {
            n++;
            p->cur++;
            slice = 1;
        } else {
            part[n++] = parse_expr(p);
            if (is_tok(p, T_COLON)) p->cur++, slice = 1;
        }
    }
    p->cur++;
    p->depth--;
    if (!n) jinja_fail(&p->e, line, "'[]' needs an index");
    if (!slice && n > 1) jinja_fail(&p->e, line, "expected ']' after an index");
    jnode *x = mk(p, slice ? N_SLICE : N_INDEX, line);
    x->a = kid(p, x, obj);
    if (!slice) {
        x->b = kid(p, x, part[0]);
        return x;
    }
    for (int k = 0; k < 3; k++) push(p, x, &x->list, part[k]);
    return x;
}

/* x followed by .name, .0, [...] and (...) */
static jnode *parse_postfix_of(jparser *p, jnode *x) {
    while (1) {
        jtok *t = peek(p, 0);
        if (t->t == T_DOT) {
            p->cur++;
            jtok *k = peek(p, 0);
            p->cur++;
            jnode *m = mk(p, k->t == T_IDENT ? N_MEMBER : N_INDEX, t->line);
            if (k->t == T_IDENT)
                m->s = k->s;
            else if (k->t == T_NUM && !memchr(k->s.p, '.', k->s.n))
                m->b = kid(p, m, parse_number(p, k));
            else
                jinja_fail(&p->e, k->line, "expected a name or an integer after '.'");
            m->a = kid(p, m, x);
            x = m;
        } else if (t->t == T_LBRACKET) {
            p->cur++;
            x = parse_subscript(p, x, t->line);
        } else if (t->t == T_LPAREN) {
            jnode *call = mk(p, N_CALL, t->line);
            call->a = kid(p, call, x);
            parse_args(p, call, 0);
            x = call;
        } else {
            return x;
        }
    }
}

static jnode *parse_postfix(jparser *p) { return parse_postfix_of(p, parse_primary(p)); }

static jnode *parse_unary(jparser *p) {
    jtok *t = peek(p, 0);
    if ((t->t == T_UNARY || t->t == T_ADD) && (jx_streq(t->s, "-") || jx_streq(t->s, "+"))) {
        p->cur++;
        enter(p);
        jnode *n = mk(p, N_UNARY, t->line);
        n->op = t->s.p[0] == '-' ? OP_NEG : OP_POS;
        n->a = kid(p, n, parse_unary(p));
        p->depth--;
        return n;
    }
    return parse_postfix(p);
}

static jnode *parse_filter(jparser *p) {
    jnode *x = parse_unary(p);
    while (is_tok(p, T_PIPE)) {
        p->cur++;
        jtok *name = expect(p, T_IDENT, "(a filter's name) after '|'");
        jnode *f = mk(p, N_FILTER, name->line);
        f->s = name->s;
        f->a = kid(p, f, x);
        if (is_tok(p, T_LPAREN)) {
            f->op = 1;
            parse_args(p, f, 0);
            if (is_tok(p, T_DOT) || is_tok(p, T_LBRACKET) || is_tok(p, T_LPAREN)) {
                f->op = 2; /* x | f(a).b: parsed, and an error if it is evaluated, as in the reference renderer */
                f->b = kid(p, f, parse_postfix_of(p, mk(p, N_NAME, f->line)));
            }
        }
        x = f;
    }
    return x;
}

static jnode *parse_test(jparser *p) {
    jnode *x = parse_filter(p);
    while (is_word_at(p, 0, "is")) {
        jnode *t = mk(p, N_TEST, peek(p, 0)->line);
        p->cur++;
        if (is_word_at(p, 0, "not")) t->op = 1, p->cur++;
        t->s = expect(p, T_IDENT, "(a test's name) after 'is'")->s;
        t->a = kid(p, t, x);
        x = t;
    }
    return x;
}

static jnode *parse_power(jparser *p) {
    jnode *x = parse_test(p);
    while (is_tok(p, T_POW)) {
        int line = peek(p, 0)->line;
        p->cur++;
        x = binary(p, OP_POW, x, parse_test(p), line);
    }
    return x;
}

static jnode *parse_mul(jparser *p) {
    jnode *x = parse_power(p);
    while (is_tok(p, T_MUL)) {
        jtok *t = peek(p, 0);
        p->cur++;
        int op = jx_streq(t->s, "*")    ? OP_MUL
                 : jx_streq(t->s, "/")  ? OP_DIV
                 : jx_streq(t->s, "//") ? OP_FLOORDIV
                                        : OP_MOD;
        x = binary(p, op, x, parse_power(p), t->line);
    }
    return x;
}

static jnode *parse_add(jparser *p) {
    jnode *x = parse_mul(p);
    while (is_tok(p, T_ADD)) {
        jtok *t = peek(p, 0);
        p->cur++;
        int op = t->s.p[0] == '+' ? OP_ADD : t->s.p[0] == '-' ? OP_SUB : OP_CONCAT;
        x = binary(p, op, x, parse_mul(p), t->line);
    }
    return x;
}

static jnode *parse_compare(jparser *p) {
    static const char *ops[] = {"==", "!=", "<", "<=", ">", ">="};
    jnode *x = parse_add(p);
    while (1) {
        jtok *t = peek(p, 0);
        int op = -1;
        if (is_word_at(p, 0, "not") && is_word_at(p, 1, "in"))
            op = OP_NOTIN, p->cur += 2;
        else if (is_word_at(p, 0, "in"))
            op = OP_IN, p->cur++;
        else if (t->t == T_CMP)
            for (int k = 0; k < 6; k++)
                if (jx_streq(t->s, ops[k])) op = OP_EQ + k, p->cur++;
        if (op < 0) return x;
        x = binary(p, op, x, parse_add(p), t->line);
    }
}

static jnode *parse_not(jparser *p) {
    if (!is_word_at(p, 0, "not")) return parse_compare(p);
    jnode *n = mk(p, N_UNARY, peek(p, 0)->line);
    p->cur++;
    enter(p);
    n->op = OP_NOT;
    n->a = kid(p, n, parse_not(p));
    p->depth--;
    return n;
}

static jnode *parse_and(jparser *p) {
    jnode *x = parse_not(p);
    while (is_word_at(p, 0, "and")) {
        int line = peek(p, 0)->line;
        p->cur++;
        x = binary(p, OP_AND, x, parse_not(p), line);
    }
    return x;
}

static jnode *parse_or(jparser *p) {
    jnode *x = parse_and(p);
    while (is_word_at(p, 0, "or")) {
        int line = peek(p, 0)->line;
        p->cur++;
        x = binary(p, OP_OR, x, parse_and(p), line);
    }
    return x;
}

/* x if c else y; x if c (undefined when c is false; a for loop's filter) */
static jnode *parse_expr(jparser *p) {
    enter(p);
    jnode *x = parse_or(p);
    if (is_word_at(p, 0, "if")) {
        int line = peek(p, 0)->line;
        p->cur++;
        jnode *c = parse_or(p);
        jnode *n = mk(p, N_SELECT, line);
        if (is_word_at(p, 0, "else")) {
            p->cur++;
            n->kind = N_TERNARY;
            n->b = kid(p, n, x);
            n->a = kid(p, n, c);
            n->c = kid(p, n, parse_expr(p));
        } else {
            n->a = kid(p, n, x);
            n->b = kid(p, n, c);
        }
        x = n;
    }
    p->depth--;
    return x;
}

/* ---- statements ---- */

static jnode *parse_node(jparser *p);

/* The body of a tag opened on line `line`, up to one of the tags in `ends`. */
static void parse_body(jparser *p, jnode *parent, jnodes *body, const char *tag, int line, const char *const *ends) {
    while (1) {
        for (const char *const *e = ends; *e; e++)
            if (is_tag(p, *e)) return;
        if (is_tok(p, T_EOF)) jinja_fail(&p->e, line, "the '%s' tag is not closed (no {%% %s %%})", tag, ends[0]);
        jnode *x = parse_node(p);
        if (x) push(p, parent, body, x);
    }
}

/* {% name %}, which parse_body found */
static void end_tag(jparser *p, const char *name) {
    char where[32];
    snprintf(where, sizeof where, "after %s", name);
    expect(p, T_OPEN_STMT, "");
    p->cur++;
    expect(p, T_CLOSE_STMT, where);
}

static jnode *parse_if(jparser *p, int line) {
    static const char *const ends[] = {"endif", "elif", "else", NULL}, *const endif[] = {"endif", NULL};
    jnode *n = mk(p, N_IF, line);
    n->a = kid(p, n, parse_expr(p));
    expect(p, T_CLOSE_STMT, "after the condition of 'if'");
    parse_body(p, n, &n->list, "if", line, ends);
    if (is_tag(p, "elif")) {
        int at = peek(p, 0)->line;
        p->cur += 2;
        enter(p);
        push(p, n, &n->list2, parse_if(p, at));
        p->depth--;
    } else if (is_tag(p, "else")) {
        p->cur += 2;
        expect(p, T_CLOSE_STMT, "after else");
        parse_body(p, n, &n->list2, "if", line, endif);
    }
    return n;
}

static jnode *parse_for(jparser *p, int line) {
    static const char *const ends[] = {"endfor", "else", NULL}, *const endfor[] = {"endfor", NULL};
    jnode *n = mk(p, N_FOR, line);
    jnode *target = parse_sequence(p, 1);
    for (int k = 0; k < (target->kind == N_TUPLE ? target->list.n : 1); k++)
        if ((target->kind == N_TUPLE ? target->list.v[k] : target)->kind != N_NAME)
            jinja_fail(&p->e, line, "expected a name, or names, after 'for'");
    n->a = kid(p, n, target);
    expect_word(p, "in", "after the loop's names");
    jnode *iter = parse_expr(p);
    if (iter->kind == N_SELECT) { /* for x in xs if test */
        n->c = kid(p, n, iter->b);
        iter = iter->a;
    }
    n->b = kid(p, n, iter);
    expect(p, T_CLOSE_STMT, "after the head of 'for'");
    parse_body(p, n, &n->list, "for", line, ends);
    if (is_tag(p, "else")) {
        p->cur += 2;
        expect(p, T_CLOSE_STMT, "after else");
        parse_body(p, n, &n->list2, "for", line, endfor);
    }
    return n;
}

static jnode *parse_set(jparser *p, int line) {
    static const char *const ends[] = {"endset", NULL};
    jnode *n = mk(p, N_SET, line);
    jnode *target = parse_sequence(p, 0);
    int ok = target->kind == N_NAME || target->kind == N_MEMBER;
    if (target->kind == N_TUPLE) {
        ok = 1;
        for (int k = 0; k < target->list.n; k++) ok &= target->list.v[k]->kind == N_NAME;
    }
    if (!ok) jinja_fail(&p->e, line, "'set' assigns to a name, names, or a namespace's attribute (ns.name)");
    n->a = kid(p, n, target);
    if (is_tok(p, T_EQUALS)) {
        p->cur++;
        n->b = kid(p, n, parse_sequence(p, 0));
        expect(p, T_CLOSE_STMT, "after 'set'");
        return n;
    }
    expect(p, T_CLOSE_STMT, "after 'set' (or '=')");
    parse_body(p, n, &n->list, "set", line, ends);
    end_tag(p, "endset");
    return n;
}

/* ---- macros, call blocks and filter blocks ---- */

static int special_name(jstr s) {
    return jx_streq(s, "varargs") ? MACRO_VARARGS : jx_streq(s, "kwargs") ? MACRO_KWARGS : 0;
}

/* A name (a parameter, or a target of set or for) that hides varargs or kwargs. */
static void declare(const jnode *target, int *declared) {
    if (target->kind == N_NAME || target->kind == N_KWARG) *declared |= special_name(target->s);
    if (target->kind == N_TUPLE)
        for (int i = 0; i < target->list.n; i++) declare(target->list.v[i], declared);
}

static void find_special(const jnode *n, int *declared, int *used);

static void find_special_in(const jnodes *l, int *declared, int *used) {
    for (int i = 0; i < l->n; i++) find_special(l->v[i], declared, used);
}

/* The reference renderer binds varargs and kwargs only for a macro whose body reads them before any
 * set, for or parameter (of a macro inside it too) names them; it walks the tree as this does. */
static void find_special(const jnode *n, int *declared, int *used) {
    if (!n) return;
    switch (n->kind) {
    case N_NAME: *used |= special_name(n->s) & ~*declared; return;
    case N_SET: /* an ns.attr target is not read */
        declare(n->a, declared);
        find_special(n->b, declared, used);
        return find_special_in(&n->list, declared, used);
    case N_FOR:
        declare(n->a, declared);
        find_special(n->b, declared, used);
        find_special_in(&n->list, declared, used);
        find_special_in(&n->list2, declared, used);
        return find_special(n->c, declared, used);
    case N_MACRO:
    case N_CALL_BLOCK:
        if (n->kind == N_CALL_BLOCK) find_special(n->a, declared, used);
        for (int i = 0; i < n->list.n; i++) declare(n->list.v[i], declared);
        for (int i = 0; i < n->list.n; i++) find_special(n->list.v[i]->a, declared, used);
        return find_special_in(&n->list2, declared, used);
    case N_FILTER_BLOCK:
        find_special_in(&n->list2, declared, used);
        return find_special_in(&n->a->list, declared, used);
    case N_FILTER: /* the filter's name is no variable */
        find_special(n->a, declared, used);
        return find_special_in(&n->list, declared, used);
    case N_KWARG: return find_special(n->a, declared, used);
    default:
        find_special(n->a, declared, used);
        find_special(n->b, declared, used);
        find_special(n->c, declared, used);
        find_special_in(&n->list, declared, used);
        return find_special_in(&n->list2, declared, used);
    }
}

/* What of varargs and kwargs the body of a macro or call block reads (MACRO_VARARGS, MACRO_KWARGS);
 * the tree is walked only when the body names them (specials: p->specials before it was parsed). */
static int special_args(jparser *p, const jnode *n, int specials) {
    int declared = 0, used = 0;
    if (p->specials == specials) return 0;
    for (int i = 0; i < n->list.n; i++) declare(n->list.v[i], &declared);
    find_special_in(&n->list2, &declared, &used);
    return used;
}

static int by_name(const void *a, const void *b) {
    const jnode *x = *(const jnode *const *)a, *y = *(const jnode *const *)b;
    int d = memcmp(x->s.p, y->s.p, x->s.n < y->s.n ? x->s.n : y->s.n);
    return d ? d : (x->s.n > y->s.n) - (x->s.n < y->s.n);
}

/* (a, b=default, ...): names, distinct (sorted to find one named twice: a template may have many),
 * those with a default last. */
static void parse_params(jparser *p, jnode *n) {
    parse_args(p, n, 1);
    for (int i = 0; i < n->list.n; i++)
        if (n->list.v[i]->kind != N_NAME && n->list.v[i]->kind != N_KWARG)
            jinja_fail(&p->e, n->list.v[i]->line, "a parameter is a name");
    jnode **sorted = palloc(p, (size_t)(n->list.n + 1) * sizeof *sorted);
    if (n->list.n) memcpy(sorted, n->list.v, (size_t)n->list.n * sizeof *sorted);
    qsort(sorted, (size_t)n->list.n, sizeof *sorted, by_name);
    for (int i = 1; i < n->list.n; i++)
        if (!by_name(&sorted[i - 1], &sorted[i]))
            jinja_fail(&p->e, n->line, "the parameter '%.*s' is named twice",
                       (int)(sorted[i]->s.n > 40 ? 40 : sorted[i]->s.n), sorted[i]->s.p);
}

/* The body of a macro or a call block (what, up to end), and which special names it reads. */
static void parse_callable_body(jparser *p, jnode *n, const char *what, int line, const char *end) {
    const char *const ends[] = {end, NULL};
    int specials = p->specials;
    parse_body(p, n, &n->list2, what, line, ends);
    end_tag(p, end);
    n->op = special_args(p, n, specials);
}

static jnode *parse_macro(jparser *p, int line) {
    jnode *n = mk(p, N_MACRO, line);
    n->s = expect(p, T_IDENT, "(the macro's name) after 'macro'")->s;
    parse_params(p, n);
    expect(p, T_CLOSE_STMT, "after the macro's parameters");
    parse_callable_body(p, n, "macro", line, "endmacro");
    return n;
}

/* {% call(params) name(args) %}body{% endcall %} */
static jnode *parse_call_block(jparser *p, int line) {
    jnode *n = mk(p, N_CALL_BLOCK, line);
    if (is_tok(p, T_LPAREN)) parse_params(p, n);
    jtok *name = expect(p, T_IDENT, "(a macro's name) after 'call'");
    jnode *call = mk(p, N_CALL, name->line), *callee = mk(p, N_NAME, name->line);
    callee->s = name->s;
    call->a = kid(p, call, callee);
    parse_args(p, call, 0);
    n->a = kid(p, n, call);
    expect(p, T_CLOSE_STMT, "after the call of 'call'");
    parse_callable_body(p, n, "call", line, "endcall");
    return n;
}

/* {% filter name %} or {% filter name(args) %}, then the body up to endfilter */
static jnode *parse_filter_block(jparser *p, int line) {
    static const char *const ends[] = {"endfilter", NULL};
    jnode *n = mk(p, N_FILTER_BLOCK, line);
    jtok *name = expect(p, T_IDENT, "(a filter's name) after 'filter'");
    jnode *f = mk(p, N_FILTER, name->line);
    f->s = name->s;
    if (is_tok(p, T_LPAREN)) {
        f->op = 1;
        parse_args(p, f, 0);
    }
    n->a = kid(p, n, f);
    expect(p, T_CLOSE_STMT, "after the filter of 'filter'");
    parse_body(p, n, &n->list2, "filter", line, ends);
    end_tag(p, "endfilter");
    return n;
}

static jnode *parse_statement(jparser *p) {
    int line = expect(p, T_OPEN_STMT, "")->line;
    jtok *name = peek(p, 0);
    if (name->t != T_IDENT) jinja_fail(&p->e, line, "expected a tag's name after '{%%', found %s", tok_name(name->t));
    p->cur++;
    enter(p);
    jnode *n;
    if (jx_streq(name->s, "if")) {
        n = parse_if(p, line);
        end_tag(p, "endif");
    } else if (jx_streq(name->s, "for")) {
        n = parse_for(p, line);
        end_tag(p, "endfor");
    } else if (jx_streq(name->s, "set")) {
        n = parse_set(p, line);
    } else if (jx_streq(name->s, "macro")) {
        n = parse_macro(p, line);
    } else if (jx_streq(name->s, "call")) {
        n = parse_call_block(p, line);
    } else if (jx_streq(name->s, "filter")) {
        n = parse_filter_block(p, line);
    } else if (jx_streq(name->s, "break") || jx_streq(name->s, "continue")) {
        n = mk(p, name->s.p[0] == 'b' ? N_BREAK : N_CONTINUE, line);
        expect(p, T_CLOSE_STMT, name->s.p[0] == 'b' ? "after break" : "after continue");
    } else {
        static const char *unsupported[] = {"include", "import", "from", "extends",   "block",
                                            "with",    "raw",    "do",   "autoescape"};
        int len = name->s.n > 40 ? 40 : (int)name->s.n;
        for (size_t k = 0; k < sizeof unsupported / sizeof *unsupported; k++)
            if (jx_streq(name->s, unsupported[k]))
                jinja_fail(&p->e, line, "the '%.*s' tag is not supported", len, name->s.p);
        if (jx_streq(name->s, "elif") || jx_streq(name->s, "else") || (name->s.n > 3 && !memcmp(name->s.p, "end", 3)))
            jinja_fail(&p->e, line, "'{%% %.*s %%}' without the tag it would close", len, name->s.p);
        jinja_fail(&p->e, line, "unknown tag '%.*s'", len, name->s.p);
    }
    p->depth--;
    return n;
}

/* One piece of the template; NULL for a comment. */
static jnode *parse_node(jparser *p) {
    jtok *t = peek(p, 0);
    if (t->t == T_COMMENT) {
        p->cur++;
        return NULL;
    }
    if (t->t == T_TEXT) {
        p->cur++;
        jnode *n = mk(p, N_TEXT, t->line);
        n->s = t->s;
        return n;
    }
    if (t->t == T_OPEN_STMT) return parse_statement(p);
    if (t->t != T_OPEN_EXPR) jinja_fail(&p->e, t->line, "found %s where text or a tag belongs", tok_name(t->t));
    p->cur++;
    jnode *x = parse_expr(p);
    expect(p, T_CLOSE_EXPR, "to close '{{'");
    return x;
}

/* The source preprocessed into the arena (p->src, p->lines). */
static void preprocess(jparser *p, const char *src, size_t len, jsrc *a, jsrc *b) {
    a->s = malloc(len + 1), a->line = malloc((len + 1) * sizeof *a->line);
    b->s = malloc(len + 1), b->line = malloc((len + 1) * sizeof *b->line);
    if (!a->s || !a->line || !b->s || !b->line) jinja_fail(&p->e, 0, "out of memory");
    int line = 1;
    for (size_t i = 0; i < len; i++) {
        a->s[i] = src[i];
        a->line[i] = line;
        line += src[i] == '\n';
    }
    a->n = len && src[len - 1] == '\n' ? len - 1 : len; /* one final newline goes */
    pre_lstrip(a, b);
    pre_trim(b, a);
    pre_generation(a, b);
    char *s = palloc(p, b->n + 1);
    int *lines = palloc(p, (b->n + 1) * sizeof *lines);
    memcpy(s, b->s, b->n);
    memcpy(lines, b->line, b->n * sizeof *lines);
    p->src = s;
    p->lines = lines;
    p->n = b->n;
}

/* The template into t; 0, or 1 with the message written. */
static int parse_all(jparser *p, jinja_template *t, const char *src, size_t len, jsrc *bufs) {
    if (setjmp(p->e.jb)) return 1;
    if (len > JINJA_MAX_TEMPLATE) jinja_fail(&p->e, 0, "the template is longer than %u bytes", JINJA_MAX_TEMPLATE);
    preprocess(p, src, len, &bufs[0], &bufs[1]);
    lex(p);
    while (!is_tok(p, T_EOF)) {
        jnode *x = parse_node(p);
        if (x) push(p, NULL, &t->body, x);
    }
    return 0;
}

jinja_template *jinja_parse(const char *src, size_t len, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    jinja_template *t = calloc(1, sizeof *t);
    jparser *p = calloc(1, sizeof *p);
    jsrc *bufs = calloc(2, sizeof *bufs);
    if (!t || !p || !bufs) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        free(t), free(p), free(bufs);
        return NULL;
    }
    t->arena.limit = JINJA_MAX_MEMORY;
    p->arena = &t->arena;
    p->e.msg = err;
    p->e.cap = err ? errlen : 0;
    int failed = parse_all(p, t, src ? src : "", src ? len : 0, bufs);
    for (int k = 0; k < 2; k++) free(bufs[k].s), free(bufs[k].line);
    free(bufs);
    free(p->tok);
    free(p);
    if (failed) {
        jinja_free(t);
        return NULL;
    }
    return t;
}

void jinja_free(jinja_template *t) {
    if (!t) return;
    jinja_arena_free(&t->arena);
    free(t);
}
