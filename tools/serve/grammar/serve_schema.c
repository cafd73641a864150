/*
 * serve_schema.c — a JSON schema as a grammar. A response_format schema that serve_json.c's
 * compact subset refuses is written here as GBNF text and compiled by serve_gbnf.c, so the engine
 * masks the reply to it exactly as it masks a reply to a `grammar` field: a reply that ends is
 * whole and holds the schema. The grammar allows a subset of what the schema allows (named below
 * where it is smaller); the reply is compact JSON, as serve_json.c's: no whitespace between
 * tokens.
 *
 * Served: `type` (one or a list); `enum` and `const` of any JSON values (those of the `type`, when
 * one is given); `anyOf`, and `oneOf` read as anyOf (that exactly one alternative holds is not
 * enforced); `allOf`, its members merged into one schema (properties and required united, bounds
 * tightened, other keywords equal or refused), distributed over any anyOf beside it; `$ref` by a
 * JSON pointer into the schema (`#/$defs/Name`, `#/definitions/Name`, `#`), recursive ones as
 * recursive rules; objects: `properties` in the declared order, the `required` ones always and any
 * subset of the others, `additionalProperties` (absent beside properties: no other key; false;
 * true or a schema: other keys after the declared ones, none of the declared names: a trie of
 * them, where an escape may come only once the key has left it),
 * `propertyNames` for objects without properties; arrays: `items`, `prefixItems` (and draft 7's
 * items array with additionalItems), `minItems`, `maxItems`, `uniqueItems` false; strings:
 * `minLength`, `maxLength` (characters), `pattern`, `format` (date, date-time, time, uuid, email,
 * uri, ipv4: the format's common form, a subset of what it allows: date-time as
 * 2024-02-29T13:05:59.123+01:00 or ...Z, email and uri of lower-case ASCII names); integers:
 * `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (a digit grammar of the range),
 * `multipleOf` (a whole number up to 1000: the range's digits tracked modulo it); numbers: the
 * same bounds, served to whole-number precision (the whole numbers in range, and n.f where all of
 * (n, n + 1) is in range), `multipleOf` a whole number (then integers only). Annotations are
 * ignored; any other keyword is refused, named.
 *
 * A pattern is matched whole, as if between ^ and $ (JSON Schema searches: what matches whole
 * matches), in this subset of ECMAScript's: literals, escapes (\d \w \s and their negations, \t
 * \n \r \f \v \0 \xHH \uHHHH \u{H...} \cX, escaped punctuation), classes [a-z] [^...], `.`, `*`,
 * `+`, `?`, {m}, {m,}, {m,n} (lazy forms too), groups (...), (?:...), (?<name>...), alternation,
 * `^` at the start and `$` at the end. Refused: lookaround, backreferences, \b \B, \p{...}, and a
 * repetition {m,} of what can match nothing. A pattern's characters are written as JSON writes
 * them (" and \ escaped; of the control characters only \b \t \n \f \r); minLength and maxLength
 * beside a pattern or a format are served where its length is fixed or varies by one repetition.
 *
 * Bounds, so that replies stay finite and the grammar within serve_gbnf.h's limits: integers of up
 * to 18 digits, numbers of up to 18 digits before the point, 16 after, exponents of 2; counts
 * (minLength, minItems, {m,n}) up to 4096, a larger maxLength or maxItems served as 4096; anyOf
 * up to 64 alternatives once allOf is distributed; $ref, allOf and anyOf nested 32 deep, and
 * schemas within schemas; a recursive reply as deep as serve_gbnf.h's stacks allow.
 *
 * How: each schema becomes a rule, memoised by its keywords' identity, so a $ref's target is
 * written once and recursion is a rule that refers to itself. A schema is first normalised into
 * alternatives free of $ref, allOf, anyOf and oneOf (normalize: allOf and siblings merged into
 * each anyOf alternative; a bare $ref kept as its target's rule); each alternative's types then
 * become the rule's alternatives. An optional property is a group (`("," "\"k\":" v)?`) and what
 * may follow the first key written a rule per position; a range of integers is split into runs of
 * equal length and leading digits (a digit class, then free digits), and with multipleOf k the
 * free digits are rules per (digits left, residue mod k); a count past 32 optional items becomes
 * blocks of rules (y ::= x{0,w-1} | x{w} y'), about 2 sqrt(n) of them.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "serve_schema.h"
#include "utf8.h"

#define MAX_ALTS 64                  /* alternatives of one schema once allOf is distributed */
#define MAX_NEST 32                  /* $ref, allOf, anyOf within one another; schemas within schemas */
#define MAX_COUNT 4096               /* the largest least count served, and the most */
#define MAX_MULTIPLE 1000            /* multipleOf */
#define INT_LIM 999999999999999999LL /* integers: 18 digits */
#define FRAC_LIM 999999999999999LL   /* a number's whole part before a fraction in a range */
#define ID_VALUE (-2)                /* emit_rule: the schema allows any value (the rule `value`) */
#define TAIL_EMPTY (-2)              /* tail_rule: no digits reach the residue */
#define TAIL_NONE (-3)               /* tail_rule: nothing follows */

enum { T_OBJECT = 1, T_ARRAY = 2, T_STRING = 4, T_NUMBER = 8, T_INTEGER = 16, T_BOOL = 32, T_NULL = 64, T_ANY = 127 };
static const char *const type_names[] = {"object", "array", "string", "number", "integer", "boolean", "null"};

/* JSON's values, compact: the rules the schemas' rules use */
static const char json_rules[] = "value ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
                                 "object ::= \"{\" (string \":\" value (\",\" string \":\" value)*)? \"}\"\n"
                                 "array ::= \"[\" (value (\",\" value)*)? \"]\"\n"
                                 "string ::= \"\\\"\" char* \"\\\"\"\n"
                                 "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" hex4)\n"
                                 "hex4 ::= [0-9a-cA-CeEfF] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}\n"
                                 "integer ::= \"-\"? (\"0\" | [1-9] [0-9]{0,17})\n"
                                 "number ::= integer (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?\n"
                                 "frac ::= [0-9]{0,15} [1-9]\n";

/* ---- text ---- */

typedef gbnf_text sbuf; /* serve_schema.h */

void gbnf_text_put(gbnf_text *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *g = realloc(b->s, cap);
        if (!g) {
            b->oom = true;
            return;
        }
        b->s = g, b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
void gbnf_text_str(gbnf_text *b, const char *s) { gbnf_text_put(b, s, strlen(s)); }
static void sb_fmt(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(sbuf *b, const char *fmt, ...) { /* short pieces: numbers, names */
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) gbnf_text_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}
static void sb_cat(sbuf *b, const sbuf *o) {
    if (o->oom) b->oom = true;
    if (o->n) gbnf_text_put(b, o->s, o->n);
}

/* one code point in a GBNF literal or class: printable ASCII as itself, the rest escaped */
static void sb_cp(sbuf *b, uint32_t cp) {
    if (cp >= 0x20 && cp < 0x7f && !strchr("\"\\[]^-#", (int)cp)) {
        char ch = (char)cp;
        gbnf_text_put(b, &ch, 1);
    } else if (cp == '"' || cp == '\\' || cp == '[' || cp == ']') {
        char esc[2] = {'\\', (char)cp};
        gbnf_text_put(b, esc, 2);
    } else if (cp < 0x80) {
        sb_fmt(b, "\\x%02X", cp);
    } else if (cp <= 0xffff) {
        sb_fmt(b, "\\u%04X", cp);
    } else {
        sb_fmt(b, "\\U%08X", cp);
    }
}

/* the next code point of NUL-terminated UTF-8 (strict: no overlong form, no surrogate); -1: invalid */
static int32_t utf8_next(const unsigned char **s) {
    uint32_t cp;
    const int len = utf8_scan(*s, SIZE_MAX, &cp); /* stops at the NUL, which continues nothing */
    if (len <= 0) return -1;
    *s += len;
    return (int32_t)cp;
}

/* a GBNF literal of UTF-8 text; false: not UTF-8 */
static bool sb_lit(sbuf *b, const char *text) {
    const unsigned char *u = (const unsigned char *)text;
    gbnf_text_put(b, "\"", 1);
    while (*u) {
        int32_t cp = utf8_next(&u);
        if (cp < 0) return false;
        sb_cp(b, (uint32_t)cp);
    }
    gbnf_text_put(b, "\"", 1);
    return true;
}

/* ---- the conversion ---- */

typedef struct alt {
    const cJSON *s;
    bool ref; /* s is a $ref's target, written as its rule */
} alt;
typedef struct alts {
    alt *v;
    int n, cap;
} alts;

typedef struct memo {
    const void *key;
    int rule;
} memo;

typedef struct conv {
    const cJSON *root;
    sbuf out; /* the rules written */
    int nrules;
    memo *memo;
    int nmemo, capmemo;
    cJSON *owned;         /* the objects merges make (an array that owns them) */
    cJSON *empty;         /* {} */
    int depth;            /* emit_rule within emit_rule */
    const char *rules_kw; /* the keyword named when the rules run out */
    char *err;
    size_t errlen;
    char *keyword;
    bool failed;
} conv;

static bool refuse(conv *c, const char *keyword, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool refuse(conv *c, const char *keyword, const char *fmt, ...) {
    if (c->failed) return false;
    c->failed = true;
    snprintf(c->keyword, 64, "%s", keyword);
    int n = snprintf(c->err, c->errlen, "the schema's '%s' ", keyword);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return false;
}
static bool oom(conv *c) { return refuse(c, "schema", "is too large (out of memory)"); }

static const cJSON *get(const cJSON *s, const char *k) { return cJSON_GetObjectItemCaseSensitive(s, k); }

static bool listed(const char *k, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, names[i])) return true;
    return false;
}
#define LISTED(k, names) listed(k, names, sizeof names / sizeof *names)

static const char *const annotations[] = {"title",      "description",   "default", "examples",   "$schema",
                                          "$id",        "$comment",      "strict",  "readOnly",   "writeOnly",
                                          "deprecated", "discriminator", "$defs",   "definitions"};
static const char *const structural[] = {"$ref", "allOf", "anyOf", "oneOf"};
static const char *const served[] = {
    "type",      "enum",        "const",           "properties", "required", "additionalProperties", "propertyNames",
    "items",     "prefixItems", "additionalItems", "minItems",   "maxItems", "uniqueItems",          "minLength",
    "maxLength", "pattern",     "format",          "minimum",    "maximum",  "exclusiveMinimum",     "exclusiveMaximum",
    "multipleOf"};

/* true, or an object of annotations only: any value */
static bool trivial(const cJSON *s) {
    if (cJSON_IsTrue(s)) return true;
    if (!cJSON_IsObject(s)) return false;
    const cJSON *k;
    cJSON_ArrayForEach(k, s) if (!LISTED(k->string, annotations)) return false;
    return true;
}

static cJSON *own(conv *c, cJSON *x) {
    if (!x) return oom(c), NULL;
    cJSON_AddItemToArray(c->owned, x);
    return x;
}

static int new_rule(conv *c) {
    if (c->nrules >= GBNF_MAX_RULES)
        return refuse(c, c->rules_kw ? c->rules_kw : "schema", "needs a grammar of over %d rules", GBNF_MAX_RULES), -1;
    return c->nrules++;
}

static void sb_rule(sbuf *b, int id) {
    if (id == ID_VALUE)
        gbnf_text_str(b, "value");
    else
        sb_fmt(b, "r%d", id);
}

static bool write_rule(conv *c, int id, const sbuf *body) {
    sb_fmt(&c->out, "r%d ::= ", id);
    sb_cat(&c->out, body);
    gbnf_text_str(&c->out, "\n");
    if (c->out.oom) return oom(c);
    if (c->out.n > GBNF_MAX_TEXT)
        return refuse(c, "schema", "needs a grammar of over %d bytes (GBNF text)", GBNF_MAX_TEXT);
    return true;
}

static bool add_alt(conv *c, alts *a, const cJSON *s, bool ref) {
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 8;
        alt *g = realloc(a->v, sizeof *g * (size_t)cap);
        if (!g) return oom(c);
        a->v = g, a->cap = cap;
    }
    a->v[a->n++] = (alt){s, ref};
    return true;
}

/* ---- $ref ---- */

static const cJSON *resolve(conv *c, const cJSON *ref) {
    const char *whole = cJSON_GetStringValue(ref), *p = whole;
    if (!p || p[0] != '#')
        return refuse(c, "$ref", "\"%.80s\" is not served (a '#' JSON pointer into the schema is)",
                      p ? p : "(not a string)"),
               NULL;
    const cJSON *at = c->root;
    for (p++; *p;) {
        if (*p++ != '/') return refuse(c, "$ref", "\"%.80s\" is not a JSON pointer", whole), NULL;
        char tok[256];
        size_t n = 0;
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~') {
                if (*p != '0' && *p != '1')
                    return refuse(c, "$ref", "\"%.80s\" has a '~' not followed by 0 or 1", whole), NULL;
                ch = *p++ == '0' ? '~' : '/';
            }
            if (n + 1 >= sizeof tok) return refuse(c, "$ref", "\"%.80s\" has a name over 255 bytes", whole), NULL;
            tok[n++] = ch;
        }
        tok[n] = 0;
        if (cJSON_IsArray(at)) {
            char *end;
            long i = strtol(tok, &end, 10);
            at = *tok && !*end && i >= 0 ? cJSON_GetArrayItem(at, (int)i) : NULL;
        } else {
            at = cJSON_IsObject(at) ? get(at, tok) : NULL;
        }
        if (!at) return refuse(c, "$ref", "\"%.80s\" points at nothing in the schema", whole), NULL;
    }
    return at;
}

/* ---- allOf: two schemas merged ---- */

static bool type_bits(conv *c, const cJSON *t, int *bits) {
    *bits = t ? 0 : T_ANY;
    if (!t) return true;
    const cJSON *one = t;
    if (cJSON_IsArray(t)) one = t->child;
    for (; one; one = cJSON_IsArray(t) ? one->next : NULL) {
        int b = 0;
        for (int i = 0; i < 7 && cJSON_IsString(one); i++)
            if (!strcmp(one->valuestring, type_names[i])) b = 1 << i;
        if (!b) return refuse(c, "type", "names something that is not a JSON type");
        *bits |= b;
    }
    if (!*bits) return refuse(c, "type", "names no JSON type");
    return true;
}

static int type_meet(int a, int b) { /* integer is a kind of number */
    int m = a & b;
    if ((a & T_NUMBER && b & T_INTEGER) || (b & T_NUMBER && a & T_INTEGER)) m |= T_INTEGER;
    return m;
}

/* {"allOf": [a, b]}, or the one of them that decides */
static cJSON *both(conv *c, const cJSON *a, const cJSON *b) {
    if (cJSON_IsFalse(a) || trivial(b)) return cJSON_Duplicate(a, true);
    if (cJSON_IsFalse(b) || trivial(a)) return cJSON_Duplicate(b, true);
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "allOf");
    if (!arr || !cJSON_AddItemReferenceToArray(arr, (cJSON *)a) || !cJSON_AddItemReferenceToArray(arr, (cJSON *)b)) {
        cJSON_Delete(o);
        return oom(c), NULL;
    }
    return o;
}

/* one keyword both schemas hold, merged; NULL when failed (or *none: no value holds both) */
static cJSON *merge_keyword(conv *c, const cJSON *ka, const cJSON *kb, bool *none) {
    static const char *const lows[] = {"minimum", "exclusiveMinimum", "minLength", "minItems"};
    static const char *const highs[] = {"maximum", "exclusiveMaximum", "maxLength", "maxItems"};
    static const char *const schemas[] = {"items", "additionalProperties", "propertyNames", "additionalItems"};
    const char *key = ka->string;
    if (!strcmp(key, "type")) {
        int a, b;
        if (!type_bits(c, ka, &a) || !type_bits(c, kb, &b)) return NULL;
        int t = type_meet(a, b);
        cJSON *v = cJSON_CreateArray();
        for (int i = 0; v && i < 7; i++)
            if (t >> i & 1) cJSON_AddItemToArray(v, cJSON_CreateString(type_names[i]));
        *none = !t;
        return v;
    }
    if (!strcmp(key, "properties")) {
        if (!cJSON_IsObject(ka) || !cJSON_IsObject(kb)) return refuse(c, key, "must be an object"), NULL;
        cJSON *v = cJSON_CreateObject();
        const cJSON *p;
        cJSON_ArrayForEach(p, ka) {
            const cJSON *q = get(kb, p->string);
            cJSON *m = q ? both(c, p, q) : NULL;
            if (!v || (q ? !m || !cJSON_AddItemToObject(v, p->string, m)
                         : !cJSON_AddItemReferenceToObject(v, p->string, (cJSON *)p)))
                return cJSON_Delete(v), oom(c), NULL;
        }
        cJSON_ArrayForEach(p, kb) if (!get(ka, p->string) &&
                                      !cJSON_AddItemReferenceToObject(v, p->string, (cJSON *)p)) return cJSON_Delete(v),
            oom(c), NULL;
        return v;
    }
    if (!strcmp(key, "required")) {
        if (!cJSON_IsArray(ka) || !cJSON_IsArray(kb)) return refuse(c, key, "must be an array of property names"), NULL;
        cJSON *v = cJSON_Duplicate(ka, true);
        const cJSON *r, *s;
        cJSON_ArrayForEach(r, kb) {
            bool seen = false;
            cJSON_ArrayForEach(s, v) seen |= cJSON_Compare(r, s, true);
            if (v && !seen) cJSON_AddItemToArray(v, cJSON_Duplicate(r, true));
        }
        return v ? v : (oom(c), NULL);
    }
    if (!strcmp(key, "const")) { /* two different constants: no value */
        *none = !cJSON_Compare(ka, kb, true);
        cJSON *v = cJSON_Duplicate(ka, true);
        return v ? v : (oom(c), NULL);
    }
    if (!strcmp(key, "enum")) { /* the values both list */
        if (!cJSON_IsArray(ka) || !cJSON_IsArray(kb)) return refuse(c, key, "must be a non-empty array"), NULL;
        cJSON *v = cJSON_CreateArray();
        const cJSON *x, *y;
        cJSON_ArrayForEach(x, ka) {
            bool both_list = false;
            cJSON_ArrayForEach(y, kb) both_list |= cJSON_Compare(x, y, true);
            if (v && both_list) cJSON_AddItemToArray(v, cJSON_Duplicate(x, true));
        }
        *none = v && !v->child;
        return v ? v : (oom(c), NULL);
    }
    if (LISTED(key, schemas) && !cJSON_IsArray(ka) && !cJSON_IsArray(kb)) {
        cJSON *v = both(c, ka, kb);
        return v ? v : (oom(c), NULL);
    }
    bool low = LISTED(key, lows), high = LISTED(key, highs);
    if (low || high) {
        if (!cJSON_IsNumber(ka) || !cJSON_IsNumber(kb)) return refuse(c, key, "must be a number"), NULL;
        double a = ka->valuedouble, b = kb->valuedouble;
        cJSON *v = cJSON_CreateNumber(low ? fmax(a, b) : fmin(a, b));
        return v ? v : (oom(c), NULL);
    }
    if (cJSON_Compare(ka, kb, true)) {
        cJSON *v = cJSON_Duplicate(ka, true);
        return v ? v : (oom(c), NULL);
    }
    return refuse(c, "allOf", "merges two different '%s' (merged: type, properties, required, bounds, schemas)", key),
           NULL;
}

/* a and b (neither with $ref, allOf, anyOf, oneOf) as one schema; *out NULL: no value holds both */
static bool merge_plain(conv *c, const cJSON *a, const cJSON *b, const cJSON **out) {
    *out = NULL;
    cJSON *m = own(c, cJSON_CreateObject());
    if (!m) return false;
    const cJSON *k;
    cJSON_ArrayForEach(k, a) {
        const cJSON *o = get(b, k->string);
        if (!o || LISTED(k->string, annotations)) {
            if (!cJSON_AddItemReferenceToObject(m, k->string, (cJSON *)k)) return oom(c);
            continue;
        }
        bool none = false;
        cJSON *v = merge_keyword(c, k, o, &none);
        if (!v) return false;
        cJSON_AddItemToObject(m, k->string, v);
        if (none) return true;
    }
    cJSON_ArrayForEach(k, b) if (!get(a, k->string) &&
                                 !cJSON_AddItemReferenceToObject(m, k->string, (cJSON *)k)) return oom(c);
    *out = m;
    return true;
}

/* ---- a schema as alternatives without $ref (but whole targets), allOf, anyOf, oneOf ---- */

static bool normalize(conv *c, const cJSON *s, alts *out, int depth);

static bool merge(conv *c, alt x, alt y, alts *out, int depth) {
    if (!x.ref && trivial(x.s)) return add_alt(c, out, y.s, y.ref);
    if (!y.ref && trivial(y.s)) return add_alt(c, out, x.s, x.ref);
    if (x.ref || y.ref) { /* a target merged with more: its alternatives, each merged */
        if (!x.ref) {
            alt t = x;
            x = y, y = t;
        }
        alts e = {0};
        bool ok = normalize(c, x.s, &e, depth + 1);
        for (int i = 0; ok && i < e.n; i++) ok = merge(c, e.v[i], y, out, depth + 1);
        free(e.v);
        return ok;
    }
    const cJSON *m;
    if (!merge_plain(c, x.s, y.s, &m)) return false;
    return !m || add_alt(c, out, m, false);
}

static bool product(conv *c, alts *cur, const alts *with, int depth) {
    alts next = {0};
    bool ok = true;
    for (int i = 0; ok && i < cur->n; i++)
        for (int j = 0; ok && j < with->n; j++) {
            ok = merge(c, cur->v[i], with->v[j], &next, depth);
            if (ok && next.n > MAX_ALTS)
                ok = refuse(c, "anyOf", "has over %d alternatives once allOf and $ref are merged into it", MAX_ALTS);
        }
    free(cur->v);
    *cur = next;
    return ok;
}

static bool normalize(conv *c, const cJSON *s, alts *out, int depth) {
    if (depth > MAX_NEST) return refuse(c, "$ref", "nests $ref, allOf, anyOf and oneOf over %d deep", MAX_NEST);
    if (cJSON_IsTrue(s)) return add_alt(c, out, c->empty, false);
    if (cJSON_IsFalse(s)) return true;
    if (!cJSON_IsObject(s)) return refuse(c, "schema", "must be an object or a boolean");
    const cJSON *ref = get(s, "$ref"), *all = get(s, "allOf"), *k;
    if (!ref && !all && !get(s, "anyOf") && !get(s, "oneOf")) return add_alt(c, out, s, false);
    cJSON *rest = NULL; /* the other keywords */
    cJSON_ArrayForEach(k, s) if (!LISTED(k->string, structural) && !LISTED(k->string, annotations)) {
        if (!(rest = own(c, cJSON_CreateObject()))) return false;
        cJSON_ArrayForEach(k, s) if (!LISTED(k->string, structural) &&
                                     !cJSON_AddItemReferenceToObject(rest, k->string, (cJSON *)k)) return oom(c);
        break;
    }
    alts cur = {0}, more = {0};
    bool ok = add_alt(c, &cur, rest ? rest : c->empty, false);
    if (ok && ref) {
        const cJSON *t = resolve(c, ref);
        ok = t && add_alt(c, &more, t, true) && product(c, &cur, &more, depth);
    }
    if (ok && all) {
        if (!cJSON_IsArray(all) || !cJSON_GetArraySize(all))
            ok = refuse(c, "allOf", "must be a non-empty array of schemas");
        const cJSON *m;
        cJSON_ArrayForEach(m, all) {
            more.n = 0;
            ok = ok && normalize(c, m, &more, depth + 1) && product(c, &cur, &more, depth);
        }
    }
    for (int w = 0; ok && w < 2; w++) {
        const char *name = w ? "oneOf" : "anyOf";
        const cJSON *u = get(s, name), *m;
        if (!u) continue;
        if (!cJSON_IsArray(u) || !cJSON_GetArraySize(u)) ok = refuse(c, name, "must be a non-empty array of schemas");
        more.n = 0;
        cJSON_ArrayForEach(m, u) ok = ok && normalize(c, m, &more, depth + 1);
        ok = ok && product(c, &cur, &more, depth);
    }
    for (int i = 0; ok && i < cur.n; i++) ok = add_alt(c, out, cur.v[i].s, cur.v[i].ref);
    free(cur.v), free(more.v);
    return ok;
}

/* ---- rules ---- */

static int emit_rule(conv *c, const cJSON *s);
static int emit_plain(conv *c, const cJSON *s, sbuf *b);

/* x repeated: a rule's name bare (its repetitions' helpers are then shared), else in parentheses */
static void group(sbuf *b, const char *x, const char *suffix) {
    bool name = strspn(x, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(x);
    gbnf_text_str(b, name ? "" : "("), gbnf_text_str(b, x), gbnf_text_str(b, name ? "" : ")"), gbnf_text_str(b, suffix);
}

/* x (one GBNF item) m to n times (n < 0: no most); a most over MAX_COUNT is served as MAX_COUNT */
static bool rep(conv *c, sbuf *b, const char *kw, const char *x, long m, long n) {
    if (m > MAX_COUNT) return refuse(c, kw, "asks for %ld; at most %d are served", m, MAX_COUNT);
    if (n > MAX_COUNT) n = MAX_COUNT;
    if (n == 0) return gbnf_text_str(b, "\"\""), true;
    char suffix[48] = "";
    for (; m > 256; m -= 256, n -= n >= 0 ? 256 : 0) group(b, x, "{256} ");
    if (n < 0 || n - m <= 32) {
        if (n < 0 && m <= 1)
            strcpy(suffix, m ? "+" : "*");
        else if (n < 0)
            snprintf(suffix, sizeof suffix, "{%ld,}", m);
        else if (m == 0 && n == 1)
            strcpy(suffix, "?");
        else if (m == n && m > 1)
            snprintf(suffix, sizeof suffix, "{%ld}", m);
        else if (m != n)
            snprintf(suffix, sizeof suffix, "{%ld,%ld}", m, n);
        return group(b, x, suffix), true;
    }
    /* many optional ones, in blocks of w: y_j ::= x{0,w-1} | x{w} y_(j-1), y_0 ::= x{0,r} (w*j + r at most) */
    long extra = n - m, w = (long)ceil(sqrt((double)extra)), q = extra / w, r = extra % w;
    sbuf name = {0}, body = {0};
    bool ok = true;
    if (strspn(x, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(x)) {
        gbnf_text_str(&name, x);
    } else { /* x as a rule of its own */
        int xr = new_rule(c);
        gbnf_text_str(&body, x);
        ok = xr >= 0 && write_rule(c, xr, &body);
        sb_fmt(&name, "r%d", xr);
    }
    int prev = new_rule(c);
    body.n = 0;
    if (r)
        sb_fmt(&body, "%s{0,%ld}", name.s, r);
    else
        gbnf_text_str(&body, "\"\"");
    ok = ok && !name.oom && prev >= 0 && write_rule(c, prev, &body);
    for (long j = 1; ok && j <= q; j++) {
        int y = new_rule(c);
        body.n = 0;
        sb_fmt(&body, "%s{0,%ld} | %s{%ld} r%d", name.s, w - 1, name.s, w, prev);
        ok = y >= 0 && write_rule(c, y, &body);
        prev = y;
    }
    if (ok && m) sb_fmt(b, "%s{%ld} ", name.s, m);
    if (ok) sb_fmt(b, "r%d", prev);
    free(body.s), free(name.s);
    return ok;
}

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
        return refuse(r->c, r->kw, "cannot be written (%s)", what);
    return refuse(r->c, r->kw, "\"%.60s%s\": %s at offset %zu", r->p, r->len > 60 ? "..." : "", what, r->pos);
}

static int rx_node(rx *r, int kind) {
    if (r->nn == r->capn) {
        int cap = r->capn ? 2 * r->capn : 32;
        rnode *g = realloc(r->n, sizeof *g * (size_t)cap);
        if (!g) return oom(r->c), -1;
        r->n = g, r->capn = cap;
    }
    r->n[r->nn] = (rnode){.kind = kind, .kid = -1, .next = -1};
    return r->nn++;
}

static bool range_push(conv *c, rrange **v, int *n, int *cap, uint32_t lo, uint32_t hi) {
    if (*n == *cap) {
        int k = *cap ? 2 * *cap : 16;
        rrange *g = realloc(*v, sizeof *g * (size_t)k);
        if (!g) return oom(c);
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
        if (!set) return oom(r->c), -1;
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
            if (r->c->failed) return -1;
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
            int32_t cp = utf8_next(&u);
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
                int32_t cp = utf8_next(&u);
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
        int32_t v = utf8_next(&u);
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
    refuse(r->c, hi >= 0 && (mx < 0 || mx > hi) ? "maxLength" : "minLength",
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
                sb_cp(&cls, from);
                if (to > from) gbnf_text_str(&cls, "-"), sb_cp(&cls, to);
                plain += to > from ? 2 : 1, only = from;
            }
            from = to + 1;
        }
    }
    sbuf parts_text = {0};
    if (plain == 1) {
        gbnf_text_str(&parts_text, "\""), sb_cp(&parts_text, only), gbnf_text_str(&parts_text, "\""), parts++;
    } else if (plain) {
        gbnf_text_str(&parts_text, "["), sb_cat(&parts_text, &cls), gbnf_text_str(&parts_text, "]"), parts++;
    }
    for (size_t e = 0; e < sizeof escaped / sizeof *escaped; e++)
        for (int i = 0; i < n->nrg; i++)
            if (r->rg[n->rg + i].lo <= escaped[e].cp && escaped[e].cp <= r->rg[n->rg + i].hi) {
                if (parts++) gbnf_text_str(&parts_text, " | ");
                gbnf_text_str(&parts_text, escaped[e].gbnf);
            }
    if (parts > 1) gbnf_text_str(b, "(");
    sb_cat(b, &parts_text);
    if (parts > 1) gbnf_text_str(b, ")");
    free(cls.s), free(parts_text.s);
    if (!parts)
        return refuse(r->c, r->kw,
                      "\"%.60s\": a control character JSON writes as \\u00XX (served: \\b \\t \\n \\f \\r)", r->p);
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
            return refuse(r->c, r->kw, "\"%.60s\": a repetition {m,} of what can match nothing (not served)", r->p);
        }
        sbuf x = {0};
        bool ok = rx_emit(r, n->kid, &x) && (x.oom ? oom(r->c) : rep(r->c, b, r->kw, x.s, n->min, n->max));
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

/* a whole number from 0 to 1000000 (minLength, maxItems, ...); *out -1: absent */
static bool count_kw(conv *c, const cJSON *s, const char *key, long *out) {
    const cJSON *v = get(s, key);
    *out = -1;
    if (!v) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6 || v->valuedouble != floor(v->valuedouble))
        return refuse(c, key, "must be a whole number from 0 to 1000000");
    *out = (long)v->valuedouble;
    return true;
}

static int emit_string(conv *c, const cJSON *s, sbuf *b) {
    long lo, hi;
    if (!count_kw(c, s, "minLength", &lo) || !count_kw(c, s, "maxLength", &hi)) return -1;
    if (lo < 0) lo = 0;
    if (hi >= 0 && hi < lo) return 0;
    const cJSON *fmt = get(s, "format"), *pat = get(s, "pattern");
    rx r = {.c = c};
    if (fmt) {
        if (!cJSON_IsString(fmt)) return refuse(c, "format", "must be a string"), -1;
        for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
            if (!strcmp(fmt->valuestring, formats[i].name)) r.kw = "format", r.p = formats[i].pattern;
        if (!r.p)
            return refuse(c, "format",
                          "\"%.40s\" is not served (served: date, date-time, time, uuid, email, uri, ipv4)",
                          fmt->valuestring),
                   -1;
    }
    if (pat) {
        if (fmt) return refuse(c, "pattern", "beside 'format' is not served"), -1;
        if (!cJSON_IsString(pat)) return refuse(c, "pattern", "must be a string"), -1;
        r.kw = "pattern", r.p = pat->valuestring;
    }
    gbnf_text_str(b, "\"\\\"\" ");
    if (!r.p) {
        if (!rep(c, b, "minLength", "char", lo, hi)) return -1;
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

/* ---- numbers ---- */

static long long clamp_ll(double v, long long lim) {
    if (!(v > (double)-lim)) return -lim;
    if (!(v < (double)lim)) return lim;
    return (long long)v;
}

static long long pow10_mod(int e, long long k) {
    long long v = 1 % k;
    while (e-- > 0) v = v * 10 % k;
    return v;
}

typedef struct digits {
    conv *c;
    sbuf *b;
    const char *sign; /* "" or "-" */
    long long k;      /* multipleOf */
    int *tails;       /* [19 * k]: tail_rule's rules (-1: not yet) */
    int n;            /* alternatives written */
} digits;

static void digit_class(sbuf *b, const bool set[10]) {
    int n = 0, lo = -1;
    for (int d = 0; d < 10; d++) n += set[d];
    if (n == 1) {
        for (int d = 0; d < 10; d++)
            if (set[d]) sb_fmt(b, "\"%d\"", d);
        return;
    }
    gbnf_text_str(b, "[");
    for (int d = 0; d <= 10; d++) {
        bool in = d < 10 && set[d];
        if (in && lo < 0) lo = d;
        if (!in && lo >= 0) {
            sb_fmt(b, d - 1 > lo ? "%d-%d" : "%d", lo, d - 1);
            lo = -1;
        }
    }
    gbnf_text_str(b, "]");
}

/* the r digits after a prefix whose value so far leaves residue t to make up (mod k): a rule,
 * TAIL_EMPTY when no digits do, -1 when failed */
static int tail_rule(digits *d, int r, long long t) {
    int *m = &d->tails[r * d->k + t];
    if (*m != -1) return *m;
    sbuf body = {0};
    bool done[10] = {0};
    int n = 0;
    long long p = pow10_mod(r - 1, d->k);
    for (int d0 = 0; d0 < 10; d0++) {
        if (done[d0]) continue;
        long long t2 = ((t - d0 * p) % d->k + d->k) % d->k;
        int sub = r == 1 ? (t2 == 0 ? TAIL_NONE : TAIL_EMPTY) : tail_rule(d, r - 1, t2);
        if (sub == -1) return free(body.s), -1;
        bool set[10] = {0};
        for (int d1 = d0; d1 < 10; d1++)
            if (((t - d1 * p) % d->k + d->k) % d->k == t2) set[d1] = done[d1] = true;
        if (sub == TAIL_EMPTY) continue;
        if (n++) gbnf_text_str(&body, " | ");
        digit_class(&body, set);
        if (sub >= 0) sb_fmt(&body, " r%d", sub);
    }
    if (!n) return free(body.s), *m = TAIL_EMPTY;
    int id = new_rule(d->c);
    bool ok = id >= 0 && write_rule(d->c, id, &body);
    free(body.s);
    return ok ? (*m = id) : -1;
}

/* numbers: the prefix's digits, one digit from dlo to dhi, then r digits, multiples of k */
static bool piece(digits *d, const char *prefix, int plen, int dlo, int dhi, int r) {
    long long pm = 0;
    for (int i = 0; i < plen; i++) pm = (pm * 10 + (prefix[i] - '0')) % d->k;
    bool done[10] = {0};
    for (int d0 = dlo; d0 <= dhi; d0++) {
        if (done[d0]) continue;
        long long need = (d->k - (pm * 10 + d0) % d->k * pow10_mod(r, d->k) % d->k) % d->k;
        bool set[10] = {0};
        for (int d1 = d0; d1 <= dhi; d1++)
            if ((d->k - (pm * 10 + d1) % d->k * pow10_mod(r, d->k) % d->k) % d->k == need) set[d1] = done[d1] = true;
        int tail = d->k == 1 ? TAIL_NONE : r == 0 ? (need == 0 ? TAIL_NONE : TAIL_EMPTY) : tail_rule(d, r, need);
        if (tail == -1) return false;
        if (tail == TAIL_EMPTY) continue;
        if (d->n++) gbnf_text_str(d->b, " | ");
        if (*d->sign || plen) sb_fmt(d->b, "\"%s%.*s\" ", d->sign, plen, prefix);
        digit_class(d->b, set);
        if (d->k == 1 && r) sb_fmt(d->b, r == 1 ? " [0-9]" : " [0-9]{%d}", r);
        if (tail >= 0) sb_fmt(d->b, " r%d", tail);
    }
    return true;
}

/* the L-digit numbers from x to y (digit strings) after the prefix */
static bool seg(digits *d, char *prefix, int plen, const char *x, const char *y, int L) {
    static const char zeros[] = "000000000000000000", nines[] = "999999999999999999";
    bool x0 = !strncmp(x + 1, zeros, (size_t)L - 1), y9 = !strncmp(y + 1, nines, (size_t)L - 1);
    if (L == 1 || (x0 && y9)) return piece(d, prefix, plen, x[0] - '0', y[0] - '0', L - 1);
    if (x[0] == y[0]) return prefix[plen] = x[0], seg(d, prefix, plen + 1, x + 1, y + 1, L - 1);
    int lo = x[0] - '0', hi = y[0] - '0';
    if (!x0) {
        prefix[plen] = x[0];
        if (!seg(d, prefix, plen + 1, x + 1, nines, L - 1)) return false;
        lo++;
    }
    if (!y9) hi--;
    if (lo <= hi && !piece(d, prefix, plen, lo, hi, L - 1)) return false;
    return y9 || (prefix[plen] = y[0], seg(d, prefix, plen + 1, zeros, y + 1, L - 1));
}

static int ndigits(long long v) {
    int n = 1;
    for (; v >= 10; v /= 10) n++;
    return n;
}

/* the numbers from a to z (0 <= a <= z < 10^18) as alternatives after the sign */
static bool segs(digits *d, long long a, long long z) {
    long long p = 1;
    for (int L = 1; L <= ndigits(z); L++, p *= 10) {
        long long x = a > (L == 1 ? 0 : p) ? a : (L == 1 ? 0 : p), y = z < p * 10 - 1 ? z : p * 10 - 1;
        if (L < ndigits(a) || x > y) continue;
        char xs[24], ys[24], prefix[24];
        snprintf(xs, sizeof xs, "%lld", x); /* L digits: x >= 10^(L-1) */
        snprintf(ys, sizeof ys, "%lld", y);
        if (!seg(d, prefix, 0, xs, ys, L)) return false;
    }
    return true;
}

/* the integers from lo to hi that are multiples of k, as alternatives; *n: how many */
static bool int_range(conv *c, sbuf *b, long long lo, long long hi, long long k, int *n) {
    digits d = {c, b, "-", k, NULL, 0};
    if (k > 1) {
        if (!(d.tails = malloc(sizeof *d.tails * 19 * (size_t)k))) return oom(c);
        for (long long i = 0; i < 19 * k; i++) d.tails[i] = -1;
    }
    bool ok = true;
    c->rules_kw = "multipleOf";
    if (lo < 0 && lo <= hi) ok = segs(&d, hi < 0 ? -hi : 1, -lo);
    d.sign = "";
    if (ok && hi >= 0 && lo <= hi) ok = segs(&d, lo > 0 ? lo : 0, hi);
    c->rules_kw = NULL;
    free(d.tails);
    *n = d.n;
    return ok;
}

/* a bound keyword: false when refused; *has false when absent */
static bool bound_kw(conv *c, const cJSON *s, const char *key, bool *has, double *v) {
    const cJSON *x = get(s, key);
    *has = x != NULL;
    if (!x) return true;
    if (cJSON_IsBool(x)) return refuse(c, key, "must be a number (draft 4's boolean form is not served)");
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return refuse(c, key, "must be a number");
    *v = x->valuedouble;
    return true;
}

static int emit_number(conv *c, const cJSON *s, bool integer, sbuf *b) {
    bool hmin, hmax, hxmin, hxmax, hk;
    double min = 0, max = 0, xmin = 0, xmax = 0, kv = 1;
    if (!bound_kw(c, s, "minimum", &hmin, &min) || !bound_kw(c, s, "maximum", &hmax, &max) ||
        !bound_kw(c, s, "exclusiveMinimum", &hxmin, &xmin) || !bound_kw(c, s, "exclusiveMaximum", &hxmax, &xmax) ||
        !bound_kw(c, s, "multipleOf", &hk, &kv))
        return -1;
    if (hk && (kv <= 0 || kv != floor(kv) || kv > MAX_MULTIPLE))
        return refuse(c, "multipleOf", "is %g; served: a whole number from 1 to %d", kv, MAX_MULTIPLE), -1;
    long long k = (long long)kv;
    bool ranged = hmin || hmax || hxmin || hxmax;
    /* the whole numbers in range */
    long long ilo = -INT_LIM, ihi = INT_LIM;
    if (hmin && clamp_ll(ceil(min), INT_LIM) > ilo) ilo = clamp_ll(ceil(min), INT_LIM);
    if (hxmin && clamp_ll(floor(xmin) + 1, INT_LIM) > ilo) ilo = clamp_ll(floor(xmin) + 1, INT_LIM);
    if (hmax && clamp_ll(floor(max), INT_LIM) < ihi) ihi = clamp_ll(floor(max), INT_LIM);
    if (hxmax && clamp_ll(ceil(xmax) - 1, INT_LIM) < ihi) ihi = clamp_ll(ceil(xmax) - 1, INT_LIM);
    if (!ranged && k == 1) return gbnf_text_str(b, integer ? "integer" : "number"), 1;
    int n = 0;
    if (ilo <= ihi && !int_range(c, b, ilo, ihi, k, &n)) return -1;
    if (integer || k > 1) return n > 0;
    /* n.f and -n.f where all of (n, n + 1) is in range */
    double lo = hmin && hxmin ? fmax(min, xmin) : hmin ? min : hxmin ? xmin : -INFINITY;
    double hi = hmax && hxmax ? fmin(max, xmax) : hmax ? max : hxmax ? xmax : INFINITY;
    long long a = clamp_ll(ceil(lo), FRAC_LIM), z = clamp_ll(floor(hi) - 1, FRAC_LIM);
    for (int neg = 0; neg < 2; neg++) {
        if (a < 0) a = 0;
        if (a <= z) {
            sbuf part = {0};
            int m = 0;
            bool ok = int_range(c, &part, a, z, 1, &m);
            if (ok && m) {
                if (n++) gbnf_text_str(b, " | ");
                gbnf_text_str(b, neg ? "\"-\" (" : "("), sb_cat(b, &part), gbnf_text_str(b, ") \".\" frac");
            }
            free(part.s);
            if (!ok) return -1;
        }
        a = clamp_ll(ceil(-hi), FRAC_LIM), z = clamp_ll(floor(-lo) - 1, FRAC_LIM);
    }
    if (!n)
        return refuse(c, hmin ? "minimum" : "exclusiveMinimum",
                      "leaves no number rsr-serve writes (a range of a number is served to whole-number precision)"),
               -1;
    return 1;
}

/* ---- enum, const ---- */

static int value_bits(const cJSON *v) {
    if (cJSON_IsObject(v)) return T_OBJECT;
    if (cJSON_IsArray(v)) return T_ARRAY;
    if (cJSON_IsString(v)) return T_STRING;
    if (cJSON_IsNumber(v)) return v->valuedouble == floor(v->valuedouble) ? T_NUMBER | T_INTEGER : T_NUMBER;
    return cJSON_IsBool(v) ? T_BOOL : T_NULL;
}

static int emit_enum(conv *c, const cJSON *en, const cJSON *cn, int types, sbuf *b) {
    if (en && (!cJSON_IsArray(en) || !cJSON_GetArraySize(en)))
        return refuse(c, "enum", "must be a non-empty array"), -1;
    int n = 0;
    for (const cJSON *v = cn ? cn : en->child; v; v = cn ? NULL : v->next) {
        bool listed_too = !cn || !en;
        const cJSON *e;
        if (!listed_too) cJSON_ArrayForEach(e, en) listed_too |= cJSON_Compare(v, e, true);
        if (!listed_too || !(value_bits(v) & types)) continue;
        char *text = cJSON_PrintUnformatted(v);
        if (!text) return oom(c), -1;
        if (n++) gbnf_text_str(b, " | ");
        bool ok = sb_lit(b, text);
        free(text);
        if (!ok) return refuse(c, cn ? "const" : "enum", "holds text that is not UTF-8"), -1;
    }
    return n > 0;
}

/* ---- objects ---- */

/* a key that is none of the names (code points; escapes and control characters only once it
 * differs from them all): a trie of the names, a rule per node */
static int trie_rule(conv *c, uint32_t **names, const int *lens, const int *set, int count, int d) {
    sbuf body = {0};
    bool terminal = false;
    gbnf_text_str(&body, "[^\"\\\\\\x00-\\x1F");
    for (int i = 0; i < count; i++) {
        int k = set[i];
        terminal |= lens[k] == d;
        uint32_t cp = lens[k] > d ? names[k][d] : 0;
        bool first = cp >= 0x20 && cp != '"' && cp != '\\';
        for (int j = 0; first && j < i; j++) first = !(lens[set[j]] > d && names[set[j]][d] == cp);
        if (first) sb_cp(&body, cp);
    }
    gbnf_text_str(&body, "] char*");
    int *sub = malloc(sizeof *sub * (size_t)count);
    if (!sub) return free(body.s), oom(c), -1;
    for (int i = 0; i < count; i++) {
        int k = set[i], n = 0;
        uint32_t cp = lens[k] > d ? names[k][d] : 0;
        bool first = cp >= 0x20 && cp != '"' && cp != '\\';
        for (int j = 0; first && j < i; j++) first = !(lens[set[j]] > d && names[set[j]][d] == cp);
        if (!first) continue;
        for (int j = i; j < count; j++)
            if (lens[set[j]] > d && names[set[j]][d] == cp) sub[n++] = set[j];
        int child = trie_rule(c, names, lens, sub, n, d + 1);
        if (child < 0) return free(sub), free(body.s), -1;
        gbnf_text_str(&body, " | \""), sb_cp(&body, cp), sb_fmt(&body, "\" r%d", child);
    }
    free(sub);
    if (!terminal) gbnf_text_str(&body, " | \"\"");
    int id = new_rule(c);
    bool ok = id >= 0 && write_rule(c, id, &body);
    free(body.s);
    return ok ? id : -1;
}

/* the rule of a key not among the object's property names */
static int other_key(conv *c, const cJSON *props) {
    int n = cJSON_GetArraySize(props), id = -1, count = 0;
    uint32_t **names = calloc((size_t)n, sizeof *names);
    int *lens = calloc((size_t)n, sizeof *lens), *set = calloc((size_t)n, sizeof *set);
    const cJSON *p;
    if (!names || !lens || !set) goto done;
    cJSON_ArrayForEach(p, props) {
        const unsigned char *u = (const unsigned char *)p->string;
        if (!(names[count] = malloc(sizeof **names * (strlen(p->string) + 1)))) goto done;
        while (*u) {
            int32_t cp = utf8_next(&u);
            if (cp < 0) {
                refuse(c, "properties", "has a name that is not UTF-8");
                count++;
                goto done;
            }
            names[count][lens[count]++] = (uint32_t)cp;
        }
        set[count] = count, count++;
    }
    id = trie_rule(c, names, lens, set, count, 0);
done:
    if (id < 0 && !c->failed) oom(c);
    for (int i = 0; names && i < count; i++) free(names[i]);
    free(names), free(lens), free(set);
    return id;
}

/* the GBNF literal "name": (the name as JSON writes it) */
static bool key_lit(conv *c, sbuf *b, const char *name) {
    cJSON *t = cJSON_CreateStringReference(name);
    char *q = t ? cJSON_PrintUnformatted(t) : NULL;
    cJSON_Delete(t);
    sbuf kv = {0};
    if (q) gbnf_text_str(&kv, q), gbnf_text_str(&kv, ":");
    free(q);
    bool ok = q && !kv.oom ? sb_lit(b, kv.s) || refuse(c, "properties", "has a name that is not UTF-8") : oom(c);
    free(kv.s);
    return ok;
}

typedef struct objspec {
    const cJSON **ps; /* the properties that may appear, in order */
    bool *need;       /* required */
    int *val;         /* their values' rules */
    int live;
    int *brule; /* [live + 1]: the rule of what follows property i - 1, or -1 where written inline */
    int extra;  /* the rule of another key and its value, or -1: none */
} objspec;

/* what follows property i - 1: the rest in order (each optional one or not), then other keys, up
 * to a rule past i */
static bool follow(conv *c, const objspec *o, int i, sbuf *out) {
    for (int j = i;; j++) {
        if (j > i && o->brule[j] >= 0) return sb_fmt(out, " r%d", o->brule[j]), true;
        if (j == o->live) {
            if (o->extra >= 0) sb_fmt(out, " (\",\" r%d)*", o->extra);
            return true;
        }
        gbnf_text_str(out, o->need[j] ? " \",\" " : " (\",\" ");
        if (!key_lit(c, out, o->ps[j]->string)) return false;
        gbnf_text_str(out, " "), sb_rule(out, o->val[j]);
        if (!o->need[j]) gbnf_text_str(out, ")?");
    }
}

/* the rule of another key and its value: a key none of the declared names (or of propertyNames, or any) */
static int other_pair(conv *c, const cJSON *props, const cJSON *addl, const cJSON *names) {
    int v = addl ? emit_rule(c, addl) : ID_VALUE, key = -1;
    if (v == -1) return -1;
    sbuf e = {0};
    if (props && props->child) {
        if ((key = other_key(c, props)) < 0) return -1;
        sb_fmt(&e, "\"\\\"\" r%d \"\\\"\"", key);
    } else if (names) { /* propertyNames: a schema of the key, a string */
        cJSON *o = own(c, cJSON_CreateObject()), *all = o ? cJSON_AddArrayToObject(o, "allOf") : NULL,
              *str = all ? cJSON_CreateObject() : NULL;
        if (!str) return oom(c), -1;
        cJSON_AddItemToArray(all, str);
        if (!cJSON_AddStringToObject(str, "type", "string") || !cJSON_AddItemReferenceToArray(all, (cJSON *)names))
            return oom(c), -1;
        if ((key = emit_rule(c, o)) == -1) return -1;
        sb_rule(&e, key);
    } else {
        gbnf_text_str(&e, "string");
    }
    gbnf_text_str(&e, " \":\" "), sb_rule(&e, v);
    int id = new_rule(c);
    bool ok = id >= 0 && write_rule(c, id, &e);
    free(e.s);
    return ok ? id : -1;
}

static int emit_object(conv *c, const cJSON *s, sbuf *b) {
    const cJSON *props = get(s, "properties"), *req = get(s, "required"), *addl = get(s, "additionalProperties"),
                *names = get(s, "propertyNames"), *p, *r;
    if (props && !cJSON_IsObject(props)) return refuse(c, "properties", "must be an object"), -1;
    if (req && !cJSON_IsArray(req)) return refuse(c, "required", "must be an array of property names"), -1;
    if (names && props && props->child) return refuse(c, "propertyNames", "beside 'properties' is not served"), -1;
    int n = cJSON_GetArraySize(props), ret = -1, first_req;
    objspec o = {.ps = calloc((size_t)n + 1, sizeof *o.ps),
                 .need = calloc((size_t)n + 1, sizeof *o.need),
                 .val = calloc((size_t)n + 1, sizeof *o.val),
                 .brule = calloc((size_t)n + 2, sizeof *o.brule),
                 .extra = -1};
    sbuf alt = {0}, body = {0};
    if (!o.ps || !o.need || !o.val || !o.brule) {
        oom(c);
        goto done;
    }
    cJSON_ArrayForEach(p, props) if (!cJSON_IsFalse(p)) o.ps[o.live++] = p; /* false: the key may not appear */
    cJSON_ArrayForEach(r, req) {
        int k = 0;
        while (cJSON_IsString(r) && k < o.live && strcmp(o.ps[k]->string, r->valuestring)) k++;
        if (cJSON_IsString(r) && k == o.live && cJSON_IsFalse(get(props, r->valuestring))) {
            ret = 0; /* required and barred: no object */
            goto done;
        }
        if (!cJSON_IsString(r) || k == o.live) {
            refuse(c, "required", "names %s%.40s%s, not in 'properties'", cJSON_IsString(r) ? "\"" : "",
                   cJSON_IsString(r) ? r->valuestring : "a non-string", cJSON_IsString(r) ? "\"" : "");
            goto done;
        }
        o.need[k] = true;
    }
    for (int k = 0; k < o.live; k++)
        if ((o.val[k] = emit_rule(c, o.ps[k])) == -1) goto done;
    if ((addl ? !cJSON_IsFalse(addl) : !n) && (o.extra = other_pair(c, props, addl, names)) < 0) goto done;
    for (first_req = 0; first_req < o.live && !o.need[first_req];) first_req++;
    /* the first key written is one of those up to the first required; b_i, what follows property
     * i - 1, is a rule where two places refer to it (2 <= i <= first_req + 1) */
    for (int i = 0; i <= o.live; i++) o.brule[i] = i >= 2 && i <= first_req + 1 ? new_rule(c) : -1;
    if (c->failed) goto done;
    for (int i = 2; i <= first_req + 1 && i <= o.live; i++) {
        body.n = 0;
        if (!follow(c, &o, i, &body)) goto done;
        if (!body.n) gbnf_text_str(&body, "\"\"");
        if (!write_rule(c, o.brule[i], &body)) goto done;
    }
    for (int k = 0; k <= first_req && k < o.live; k++) {
        if (k) gbnf_text_str(&alt, " | ");
        if (!key_lit(c, &alt, o.ps[k]->string)) goto done;
        gbnf_text_str(&alt, " "), sb_rule(&alt, o.val[k]);
        if (o.brule[k + 1] >= 0)
            sb_fmt(&alt, " r%d", o.brule[k + 1]);
        else if (!follow(c, &o, k + 1, &alt))
            goto done;
    }
    if (first_req == o.live) { /* none required: maybe none of them */
        if (o.live) gbnf_text_str(&alt, " | ");
        if (o.extra >= 0)
            sb_fmt(&alt, "(r%d (\",\" r%d)*)?", o.extra, o.extra);
        else
            gbnf_text_str(&alt, "\"\"");
    }
    gbnf_text_str(b, "\"{\" ("), sb_cat(b, &alt), gbnf_text_str(b, ") \"}\"");
    ret = 1;
done:
    free(o.ps), free(o.need), free(o.val), free(o.brule), free(alt.s), free(body.s);
    return ret;
}

/* ---- arrays ---- */

/* the items after the j-th: the rest of prefixItems (each optional once minItems is met), then
 * the others */
static bool items_after(conv *c, sbuf *b, const int *e, int k, int rest, long m, long most, int j) {
    if (most >= 0 && j >= most) return true;
    if (j >= k) {
        if (rest == -1) return true;
        sbuf x = {0};
        gbnf_text_str(&x, "\",\" "), sb_rule(&x, rest);
        bool ok = !x.oom
                      ? (gbnf_text_str(b, " "), rep(c, b, "minItems", x.s, m > j ? m - j : 0, most < 0 ? -1 : most - j))
                      : oom(c);
        free(x.s);
        return ok;
    }
    gbnf_text_str(b, j >= m ? " (\",\" " : " \",\" "), sb_rule(b, e[j]);
    if (!items_after(c, b, e, k, rest, m, most, j + 1)) return false;
    if (j >= m) gbnf_text_str(b, ")?");
    return true;
}

static int emit_array(conv *c, const cJSON *s, sbuf *b) {
    const cJSON *items = get(s, "items"), *prefix = get(s, "prefixItems"), *more = items, *p;
    if (cJSON_IsArray(items)) { /* draft 7's tuple */
        if (prefix) return refuse(c, "items", "as an array beside 'prefixItems' is not served"), -1;
        prefix = items, more = get(s, "additionalItems");
    }
    if (prefix && !cJSON_IsArray(prefix)) return refuse(c, "prefixItems", "must be an array of schemas"), -1;
    long m, most;
    if (!count_kw(c, s, "minItems", &m) || !count_kw(c, s, "maxItems", &most)) return -1;
    if (m < 0) m = 0;
    int k = 0, e[48], rest = cJSON_IsFalse(more) ? -1 : more ? emit_rule(c, more) : ID_VALUE;
    if (rest == -1 && c->failed) return -1;
    cJSON_ArrayForEach(p, prefix) {
        if (cJSON_IsFalse(p)) break; /* no item here: the array ends before */
        if (k == 48) return refuse(c, "prefixItems", "has over 48 schemas"), -1;
        if ((e[k++] = emit_rule(c, p)) == -1) return -1;
    }
    if ((rest == -1 || k < cJSON_GetArraySize(prefix)) && (most < 0 || most > k)) most = k;
    if (most >= 0 && m > most) return 0;
    if (most == 0) return gbnf_text_str(b, "\"[]\""), 1;
    gbnf_text_str(b, m ? "\"[\" " : "\"[\" (");
    sb_rule(b, k ? e[0] : rest);
    if (!items_after(c, b, e, k, rest, m, most, 1)) return -1;
    gbnf_text_str(b, m ? " \"]\"" : ")? \"]\"");
    return 1;
}

/* ---- schemas ---- */

static int emit_plain(conv *c, const cJSON *s, sbuf *b) {
    const cJSON *k;
    cJSON_ArrayForEach(k, s) if (!LISTED(k->string, annotations) && !LISTED(k->string, served)) return refuse(
        c, k->string, "is not served (docs/deploy.md lists what is, under structured output)"),
        -1;
    const cJSON *u = get(s, "uniqueItems");
    if (u && !cJSON_IsFalse(u)) {
        long most;
        if (!count_kw(c, s, "maxItems", &most)) return -1;
        if (!cJSON_IsTrue(u) || most < 0 || most > 1)
            return refuse(c, "uniqueItems", "is served as false only (or beside maxItems 0 or 1)"), -1;
    }
    int types;
    if (!type_bits(c, get(s, "type"), &types)) return -1;
    const cJSON *en = get(s, "enum"), *cn = get(s, "const");
    if (en || cn) return emit_enum(c, en, cn, types, b);
    int n = 0;
    for (int i = 0; i < 7; i++) {
        int t = 1 << i, r = 1;
        if (!(types & t) || (t == T_INTEGER && types & T_NUMBER)) continue;
        sbuf part = {0};
        if (t == T_OBJECT)
            r = emit_object(c, s, &part);
        else if (t == T_ARRAY)
            r = emit_array(c, s, &part);
        else if (t == T_STRING)
            r = emit_string(c, s, &part);
        else if (t == T_NUMBER || t == T_INTEGER)
            r = emit_number(c, s, t == T_INTEGER, &part);
        else
            gbnf_text_str(&part, t == T_BOOL ? "\"true\" | \"false\"" : "\"null\"");
        if (r > 0 && n++) gbnf_text_str(b, " | ");
        if (r > 0) sb_cat(b, &part);
        free(part.s);
        if (r < 0) return -1;
    }
    return n > 0;
}

/* the keyword to name when a schema allows no value */
static const char *nothing_keyword(const cJSON *s) {
    static const char *const kws[] = {
        "allOf",     "anyOf",    "oneOf",    "enum", "const", "minimum", "exclusiveMinimum",
        "minLength", "minItems", "required", "type"};
    for (size_t i = 0; cJSON_IsObject(s) && i < sizeof kws / sizeof *kws; i++)
        if (get(s, kws[i])) return kws[i];
    return cJSON_IsFalse(s) ? "false" : "schema";
}

/* a rule for schema s (memoised: a $ref's target is written once); ID_VALUE: any value, -1: failed */
static int emit_rule(conv *c, const cJSON *s) {
    if (trivial(s)) return ID_VALUE;
    const cJSON *ref = get(s, "$ref"), *k;
    bool alias = ref != NULL; /* a $ref and annotations: the target's rule */
    cJSON_ArrayForEach(k, s) alias = alias && (k == ref || LISTED(k->string, annotations));
    if (alias) {
        const cJSON *t = resolve(c, ref);
        if (!t) return -1;
        if (++c->depth > MAX_NEST) return refuse(c, "$ref", "nests $ref over %d deep", MAX_NEST), -1;
        int id = emit_rule(c, t);
        c->depth--;
        return id;
    }
    const void *key = cJSON_IsObject(s) && s->child ? (const void *)s->child : (const void *)s;
    for (int i = 0; i < c->nmemo; i++)
        if (c->memo[i].key == key) return c->memo[i].rule;
    if (c->depth >= MAX_NEST) return refuse(c, "properties", "nests schemas over %d deep", MAX_NEST), -1;
    int id = new_rule(c);
    if (id < 0) return -1;
    if (c->nmemo == c->capmemo) {
        int cap = c->capmemo ? 2 * c->capmemo : 32;
        memo *g = realloc(c->memo, sizeof *g * (size_t)cap);
        if (!g) return oom(c), -1;
        c->memo = g, c->capmemo = cap;
    }
    c->memo[c->nmemo++] = (memo){key, id};
    c->depth++;
    alts a = {0};
    sbuf body = {0};
    bool ok = normalize(c, s, &a, 0);
    int n = 0;
    for (int i = 0; ok && i < a.n; i++) {
        sbuf part = {0};
        int r = 1;
        if (a.v[i].ref) {
            int t = emit_rule(c, a.v[i].s);
            if (t == -1) r = -1;
            sb_rule(&part, t);
        } else {
            r = emit_plain(c, a.v[i].s, &part);
        }
        if (r > 0 && n++) gbnf_text_str(&body, " | ");
        if (r > 0) sb_cat(&body, &part);
        free(part.s);
        ok = r >= 0;
    }
    if (ok && !n) ok = refuse(c, nothing_keyword(s), "allows no value");
    ok = ok && write_rule(c, id, &body);
    c->depth--;
    free(a.v), free(body.s);
    return ok ? id : -1;
}

char *schema_gbnf(const cJSON *schema, char *err, size_t errlen, char keyword[64]) {
    conv c = {.root = schema, .err = err, .errlen = errlen, .keyword = keyword};
    keyword[0] = 0;
    if (errlen) err[0] = 0;
    c.owned = cJSON_CreateArray();
    c.empty = c.owned ? own(&c, cJSON_CreateObject()) : NULL;
    int root = c.empty ? emit_rule(&c, schema) : (oom(&c), -1);
    sbuf text = {0};
    if (!c.failed) {
        gbnf_text_str(&text, "root ::= "), sb_rule(&text, root), gbnf_text_str(&text, "\n");
        gbnf_text_str(&text, json_rules), sb_cat(&text, &c.out);
        if (text.oom) oom(&c);
    }
    cJSON_Delete(c.owned);
    free(c.memo), free(c.out.s);
    if (!c.failed) return text.s;
    free(text.s);
    return NULL;
}

gbnf_grammar *schema_grammar(const cJSON *schema, char *err, size_t errlen, char keyword[64]) {
    char *text = schema_gbnf(schema, err, errlen, keyword);
    if (!text) return NULL;
    char why[256];
    gbnf_grammar *g = gbnf_compile(text, strlen(text), why, sizeof why);
    free(text);
    if (!g) {
        bool left = strstr(why, "left-recursive") != NULL;
        snprintf(keyword, 64, "%s", left ? "$ref" : "schema");
        snprintf(err, errlen,
                 left ? "the schema's '$ref' refers back to itself before any text (%s)"
                      : "the schema's grammar is over rsr-serve's limits (%s)",
                 why);
    }
    return g;
}
