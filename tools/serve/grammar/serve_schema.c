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

#include "serve_schema_internal.h"
#include "utf8.h"

#define MAX_ALTS 64                  /* alternatives of one schema once allOf is distributed */
#define MAX_NEST 32                  /* $ref, allOf, anyOf within one another; schemas within schemas */
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
void schema_cat(sbuf *b, const sbuf *o) {
    if (o->oom) b->oom = true;
    if (o->n) gbnf_text_put(b, o->s, o->n);
}

/* one code point in a GBNF literal or class: printable ASCII as itself, the rest escaped */
void schema_cp(sbuf *b, uint32_t cp) {
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
int32_t schema_utf8_next(const unsigned char **s) {
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
        int32_t cp = schema_utf8_next(&u);
        if (cp < 0) return false;
        schema_cp(b, (uint32_t)cp);
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

struct conv {
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
};

bool schema_refuse(conv *c, const char *keyword, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool schema_refuse(conv *c, const char *keyword, const char *fmt, ...) {
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
bool schema_oom(conv *c) { return schema_refuse(c, "schema", "is too large (out of memory)"); }
bool schema_failed(const conv *c) { return c->failed; }

const cJSON *schema_get(const cJSON *s, const char *k) { return cJSON_GetObjectItemCaseSensitive(s, k); }

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
    if (!x) return schema_oom(c), NULL;
    cJSON_AddItemToArray(c->owned, x);
    return x;
}

static int new_rule(conv *c) {
    if (c->nrules >= GBNF_MAX_RULES)
        return schema_refuse(c, c->rules_kw ? c->rules_kw : "schema", "needs a grammar of over %d rules",
                             GBNF_MAX_RULES),
               -1;
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
    schema_cat(&c->out, body);
    gbnf_text_str(&c->out, "\n");
    if (c->out.oom) return schema_oom(c);
    if (c->out.n > GBNF_MAX_TEXT)
        return schema_refuse(c, "schema", "needs a grammar of over %d bytes (GBNF text)", GBNF_MAX_TEXT);
    return true;
}

static bool add_alt(conv *c, alts *a, const cJSON *s, bool ref) {
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 8;
        alt *g = realloc(a->v, sizeof *g * (size_t)cap);
        if (!g) return schema_oom(c);
        a->v = g, a->cap = cap;
    }
    a->v[a->n++] = (alt){s, ref};
    return true;
}

/* ---- $ref ---- */

static const cJSON *resolve(conv *c, const cJSON *ref) {
    const char *whole = cJSON_GetStringValue(ref), *p = whole;
    if (!p || p[0] != '#')
        return schema_refuse(c, "$ref", "\"%.80s\" is not served (a '#' JSON pointer into the schema is)",
                             p ? p : "(not a string)"),
               NULL;
    const cJSON *at = c->root;
    for (p++; *p;) {
        if (*p++ != '/') return schema_refuse(c, "$ref", "\"%.80s\" is not a JSON pointer", whole), NULL;
        char tok[256];
        size_t n = 0;
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~') {
                if (*p != '0' && *p != '1')
                    return schema_refuse(c, "$ref", "\"%.80s\" has a '~' not followed by 0 or 1", whole), NULL;
                ch = *p++ == '0' ? '~' : '/';
            }
            if (n + 1 >= sizeof tok)
                return schema_refuse(c, "$ref", "\"%.80s\" has a name over 255 bytes", whole), NULL;
            tok[n++] = ch;
        }
        tok[n] = 0;
        if (cJSON_IsArray(at)) {
            char *end;
            long i = strtol(tok, &end, 10);
            at = *tok && !*end && i >= 0 ? cJSON_GetArrayItem(at, (int)i) : NULL;
        } else {
            at = cJSON_IsObject(at) ? schema_get(at, tok) : NULL;
        }
        if (!at) return schema_refuse(c, "$ref", "\"%.80s\" points at nothing in the schema", whole), NULL;
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
        if (!b) return schema_refuse(c, "type", "names something that is not a JSON type");
        *bits |= b;
    }
    if (!*bits) return schema_refuse(c, "type", "names no JSON type");
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
        return schema_oom(c), NULL;
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
        if (!cJSON_IsObject(ka) || !cJSON_IsObject(kb)) return schema_refuse(c, key, "must be an object"), NULL;
        cJSON *v = cJSON_CreateObject();
        const cJSON *p;
        cJSON_ArrayForEach(p, ka) {
            const cJSON *q = schema_get(kb, p->string);
            cJSON *m = q ? both(c, p, q) : NULL;
            if (!v || (q ? !m || !cJSON_AddItemToObject(v, p->string, m)
                         : !cJSON_AddItemReferenceToObject(v, p->string, (cJSON *)p)))
                return cJSON_Delete(v), schema_oom(c), NULL;
        }
        cJSON_ArrayForEach(p, kb) if (!schema_get(ka, p->string) &&
                                      !cJSON_AddItemReferenceToObject(v, p->string, (cJSON *)p)) return cJSON_Delete(v),
            schema_oom(c), NULL;
        return v;
    }
    if (!strcmp(key, "required")) {
        if (!cJSON_IsArray(ka) || !cJSON_IsArray(kb))
            return schema_refuse(c, key, "must be an array of property names"), NULL;
        cJSON *v = cJSON_Duplicate(ka, true);
        const cJSON *r, *s;
        cJSON_ArrayForEach(r, kb) {
            bool seen = false;
            cJSON_ArrayForEach(s, v) seen |= cJSON_Compare(r, s, true);
            if (v && !seen) cJSON_AddItemToArray(v, cJSON_Duplicate(r, true));
        }
        return v ? v : (schema_oom(c), NULL);
    }
    if (!strcmp(key, "const")) { /* two different constants: no value */
        *none = !cJSON_Compare(ka, kb, true);
        cJSON *v = cJSON_Duplicate(ka, true);
        return v ? v : (schema_oom(c), NULL);
    }
    if (!strcmp(key, "enum")) { /* the values both list */
        if (!cJSON_IsArray(ka) || !cJSON_IsArray(kb)) return schema_refuse(c, key, "must be a non-empty array"), NULL;
        cJSON *v = cJSON_CreateArray();
        const cJSON *x, *y;
        cJSON_ArrayForEach(x, ka) {
            bool both_list = false;
            cJSON_ArrayForEach(y, kb) both_list |= cJSON_Compare(x, y, true);
            if (v && both_list) cJSON_AddItemToArray(v, cJSON_Duplicate(x, true));
        }
        *none = v && !v->child;
        return v ? v : (schema_oom(c), NULL);
    }
    if (LISTED(key, schemas) && !cJSON_IsArray(ka) && !cJSON_IsArray(kb)) {
        cJSON *v = both(c, ka, kb);
        return v ? v : (schema_oom(c), NULL);
    }
    bool low = LISTED(key, lows), high = LISTED(key, highs);
    if (low || high) {
        if (!cJSON_IsNumber(ka) || !cJSON_IsNumber(kb)) return schema_refuse(c, key, "must be a number"), NULL;
        double a = ka->valuedouble, b = kb->valuedouble;
        cJSON *v = cJSON_CreateNumber(low ? fmax(a, b) : fmin(a, b));
        return v ? v : (schema_oom(c), NULL);
    }
    if (cJSON_Compare(ka, kb, true)) {
        cJSON *v = cJSON_Duplicate(ka, true);
        return v ? v : (schema_oom(c), NULL);
    }
    return schema_refuse(c, "allOf", "merges two different '%s' (merged: type, properties, required, bounds, schemas)",
                         key),
           NULL;
}

/* a and b (neither with $ref, allOf, anyOf, oneOf) as one schema; *out NULL: no value holds both */
static bool merge_plain(conv *c, const cJSON *a, const cJSON *b, const cJSON **out) {
    *out = NULL;
    cJSON *m = own(c, cJSON_CreateObject());
    if (!m) return false;
    const cJSON *k;
    cJSON_ArrayForEach(k, a) {
        const cJSON *o = schema_get(b, k->string);
        if (!o || LISTED(k->string, annotations)) {
            if (!cJSON_AddItemReferenceToObject(m, k->string, (cJSON *)k)) return schema_oom(c);
            continue;
        }
        bool none = false;
        cJSON *v = merge_keyword(c, k, o, &none);
        if (!v) return false;
        cJSON_AddItemToObject(m, k->string, v);
        if (none) return true;
    }
    cJSON_ArrayForEach(k, b) if (!schema_get(a, k->string) &&
                                 !cJSON_AddItemReferenceToObject(m, k->string, (cJSON *)k)) return schema_oom(c);
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
                ok = schema_refuse(c, "anyOf", "has over %d alternatives once allOf and $ref are merged into it",
                                   MAX_ALTS);
        }
    free(cur->v);
    *cur = next;
    return ok;
}

static bool normalize(conv *c, const cJSON *s, alts *out, int depth) {
    if (depth > MAX_NEST) return schema_refuse(c, "$ref", "nests $ref, allOf, anyOf and oneOf over %d deep", MAX_NEST);
    if (cJSON_IsTrue(s)) return add_alt(c, out, c->empty, false);
    if (cJSON_IsFalse(s)) return true;
    if (!cJSON_IsObject(s)) return schema_refuse(c, "schema", "must be an object or a boolean");
    const cJSON *ref = schema_get(s, "$ref"), *all = schema_get(s, "allOf"), *k;
    if (!ref && !all && !schema_get(s, "anyOf") && !schema_get(s, "oneOf")) return add_alt(c, out, s, false);
    cJSON *rest = NULL; /* the other keywords */
    cJSON_ArrayForEach(k, s) if (!LISTED(k->string, structural) && !LISTED(k->string, annotations)) {
        if (!(rest = own(c, cJSON_CreateObject()))) return false;
        cJSON_ArrayForEach(k, s) if (!LISTED(k->string, structural) &&
                                     !cJSON_AddItemReferenceToObject(rest, k->string, (cJSON *)k)) return schema_oom(c);
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
            ok = schema_refuse(c, "allOf", "must be a non-empty array of schemas");
        const cJSON *m;
        cJSON_ArrayForEach(m, all) {
            more.n = 0;
            ok = ok && normalize(c, m, &more, depth + 1) && product(c, &cur, &more, depth);
        }
    }
    for (int w = 0; ok && w < 2; w++) {
        const char *name = w ? "oneOf" : "anyOf";
        const cJSON *u = schema_get(s, name), *m;
        if (!u) continue;
        if (!cJSON_IsArray(u) || !cJSON_GetArraySize(u))
            ok = schema_refuse(c, name, "must be a non-empty array of schemas");
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
bool schema_rep(conv *c, sbuf *b, const char *kw, const char *x, long m, long n) {
    if (m > MAX_COUNT) return schema_refuse(c, kw, "asks for %ld; at most %d are served", m, MAX_COUNT);
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

/* a whole number from 0 to 1000000 (minLength, maxItems, ...); *out -1: absent */
bool schema_count_kw(conv *c, const cJSON *s, const char *key, long *out) {
    const cJSON *v = schema_get(s, key);
    *out = -1;
    if (!v) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6 || v->valuedouble != floor(v->valuedouble))
        return schema_refuse(c, key, "must be a whole number from 0 to 1000000");
    *out = (long)v->valuedouble;
    return true;
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
        if (!(d.tails = malloc(sizeof *d.tails * 19 * (size_t)k))) return schema_oom(c);
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
    const cJSON *x = schema_get(s, key);
    *has = x != NULL;
    if (!x) return true;
    if (cJSON_IsBool(x)) return schema_refuse(c, key, "must be a number (draft 4's boolean form is not served)");
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return schema_refuse(c, key, "must be a number");
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
        return schema_refuse(c, "multipleOf", "is %g; served: a whole number from 1 to %d", kv, MAX_MULTIPLE), -1;
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
                gbnf_text_str(b, neg ? "\"-\" (" : "("), schema_cat(b, &part), gbnf_text_str(b, ") \".\" frac");
            }
            free(part.s);
            if (!ok) return -1;
        }
        a = clamp_ll(ceil(-hi), FRAC_LIM), z = clamp_ll(floor(-lo) - 1, FRAC_LIM);
    }
    if (!n)
        return schema_refuse(
                   c, hmin ? "minimum" : "exclusiveMinimum",
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
        return schema_refuse(c, "enum", "must be a non-empty array"), -1;
    int n = 0;
    for (const cJSON *v = cn ? cn : en->child; v; v = cn ? NULL : v->next) {
        bool listed_too = !cn || !en;
        const cJSON *e;
        if (!listed_too) cJSON_ArrayForEach(e, en) listed_too |= cJSON_Compare(v, e, true);
        if (!listed_too || !(value_bits(v) & types)) continue;
        char *text = cJSON_PrintUnformatted(v);
        if (!text) return schema_oom(c), -1;
        if (n++) gbnf_text_str(b, " | ");
        bool ok = sb_lit(b, text);
        free(text);
        if (!ok) return schema_refuse(c, cn ? "const" : "enum", "holds text that is not UTF-8"), -1;
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
        if (first) schema_cp(&body, cp);
    }
    gbnf_text_str(&body, "] char*");
    int *sub = malloc(sizeof *sub * (size_t)count);
    if (!sub) return free(body.s), schema_oom(c), -1;
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
        gbnf_text_str(&body, " | \""), schema_cp(&body, cp), sb_fmt(&body, "\" r%d", child);
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
            int32_t cp = schema_utf8_next(&u);
            if (cp < 0) {
                schema_refuse(c, "properties", "has a name that is not UTF-8");
                count++;
                goto done;
            }
            names[count][lens[count]++] = (uint32_t)cp;
        }
        set[count] = count, count++;
    }
    id = trie_rule(c, names, lens, set, count, 0);
done:
    if (id < 0 && !c->failed) schema_oom(c);
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
    bool ok = q && !kv.oom ? sb_lit(b, kv.s) || schema_refuse(c, "properties", "has a name that is not UTF-8")
                           : schema_oom(c);
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
        if (!str) return schema_oom(c), -1;
        cJSON_AddItemToArray(all, str);
        if (!cJSON_AddStringToObject(str, "type", "string") || !cJSON_AddItemReferenceToArray(all, (cJSON *)names))
            return schema_oom(c), -1;
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
    const cJSON *props = schema_get(s, "properties"), *req = schema_get(s, "required"),
                *addl = schema_get(s, "additionalProperties"), *names = schema_get(s, "propertyNames"), *p, *r;
    if (props && !cJSON_IsObject(props)) return schema_refuse(c, "properties", "must be an object"), -1;
    if (req && !cJSON_IsArray(req)) return schema_refuse(c, "required", "must be an array of property names"), -1;
    if (names && props && props->child)
        return schema_refuse(c, "propertyNames", "beside 'properties' is not served"), -1;
    int n = cJSON_GetArraySize(props), ret = -1, first_req;
    objspec o = {.ps = calloc((size_t)n + 1, sizeof *o.ps),
                 .need = calloc((size_t)n + 1, sizeof *o.need),
                 .val = calloc((size_t)n + 1, sizeof *o.val),
                 .brule = calloc((size_t)n + 2, sizeof *o.brule),
                 .extra = -1};
    sbuf alt = {0}, body = {0};
    if (!o.ps || !o.need || !o.val || !o.brule) {
        schema_oom(c);
        goto done;
    }
    cJSON_ArrayForEach(p, props) if (!cJSON_IsFalse(p)) o.ps[o.live++] = p; /* false: the key may not appear */
    cJSON_ArrayForEach(r, req) {
        int k = 0;
        while (cJSON_IsString(r) && k < o.live && strcmp(o.ps[k]->string, r->valuestring)) k++;
        if (cJSON_IsString(r) && k == o.live && cJSON_IsFalse(schema_get(props, r->valuestring))) {
            ret = 0; /* required and barred: no object */
            goto done;
        }
        if (!cJSON_IsString(r) || k == o.live) {
            schema_refuse(c, "required", "names %s%.40s%s, not in 'properties'", cJSON_IsString(r) ? "\"" : "",
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
    gbnf_text_str(b, "\"{\" ("), schema_cat(b, &alt), gbnf_text_str(b, ") \"}\"");
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
        bool ok = !x.oom ? (gbnf_text_str(b, " "),
                            schema_rep(c, b, "minItems", x.s, m > j ? m - j : 0, most < 0 ? -1 : most - j))
                         : schema_oom(c);
        free(x.s);
        return ok;
    }
    gbnf_text_str(b, j >= m ? " (\",\" " : " \",\" "), sb_rule(b, e[j]);
    if (!items_after(c, b, e, k, rest, m, most, j + 1)) return false;
    if (j >= m) gbnf_text_str(b, ")?");
    return true;
}

static int emit_array(conv *c, const cJSON *s, sbuf *b) {
    const cJSON *items = schema_get(s, "items"), *prefix = schema_get(s, "prefixItems"), *more = items, *p;
    if (cJSON_IsArray(items)) { /* draft 7's tuple */
        if (prefix) return schema_refuse(c, "items", "as an array beside 'prefixItems' is not served"), -1;
        prefix = items, more = schema_get(s, "additionalItems");
    }
    if (prefix && !cJSON_IsArray(prefix)) return schema_refuse(c, "prefixItems", "must be an array of schemas"), -1;
    long m, most;
    if (!schema_count_kw(c, s, "minItems", &m) || !schema_count_kw(c, s, "maxItems", &most)) return -1;
    if (m < 0) m = 0;
    int k = 0, e[48], rest = cJSON_IsFalse(more) ? -1 : more ? emit_rule(c, more) : ID_VALUE;
    if (rest == -1 && c->failed) return -1;
    cJSON_ArrayForEach(p, prefix) {
        if (cJSON_IsFalse(p)) break; /* no item here: the array ends before */
        if (k == 48) return schema_refuse(c, "prefixItems", "has over 48 schemas"), -1;
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
    cJSON_ArrayForEach(k, s) if (!LISTED(k->string, annotations) && !LISTED(k->string, served)) return schema_refuse(
        c, k->string, "is not served (docs/deploy.md lists what is, under structured output)"),
        -1;
    const cJSON *u = schema_get(s, "uniqueItems");
    if (u && !cJSON_IsFalse(u)) {
        long most;
        if (!schema_count_kw(c, s, "maxItems", &most)) return -1;
        if (!cJSON_IsTrue(u) || most < 0 || most > 1)
            return schema_refuse(c, "uniqueItems", "is served as false only (or beside maxItems 0 or 1)"), -1;
    }
    int types;
    if (!type_bits(c, schema_get(s, "type"), &types)) return -1;
    const cJSON *en = schema_get(s, "enum"), *cn = schema_get(s, "const");
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
            r = schema_emit_string(c, s, &part);
        else if (t == T_NUMBER || t == T_INTEGER)
            r = emit_number(c, s, t == T_INTEGER, &part);
        else
            gbnf_text_str(&part, t == T_BOOL ? "\"true\" | \"false\"" : "\"null\"");
        if (r > 0 && n++) gbnf_text_str(b, " | ");
        if (r > 0) schema_cat(b, &part);
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
        if (schema_get(s, kws[i])) return kws[i];
    return cJSON_IsFalse(s) ? "false" : "schema";
}

/* a rule for schema s (memoised: a $ref's target is written once); ID_VALUE: any value, -1: failed */
static int emit_rule(conv *c, const cJSON *s) {
    if (trivial(s)) return ID_VALUE;
    const cJSON *ref = schema_get(s, "$ref"), *k;
    bool alias = ref != NULL; /* a $ref and annotations: the target's rule */
    cJSON_ArrayForEach(k, s) alias = alias && (k == ref || LISTED(k->string, annotations));
    if (alias) {
        const cJSON *t = resolve(c, ref);
        if (!t) return -1;
        if (++c->depth > MAX_NEST) return schema_refuse(c, "$ref", "nests $ref over %d deep", MAX_NEST), -1;
        int id = emit_rule(c, t);
        c->depth--;
        return id;
    }
    const void *key = cJSON_IsObject(s) && s->child ? (const void *)s->child : (const void *)s;
    for (int i = 0; i < c->nmemo; i++)
        if (c->memo[i].key == key) return c->memo[i].rule;
    if (c->depth >= MAX_NEST) return schema_refuse(c, "properties", "nests schemas over %d deep", MAX_NEST), -1;
    int id = new_rule(c);
    if (id < 0) return -1;
    if (c->nmemo == c->capmemo) {
        int cap = c->capmemo ? 2 * c->capmemo : 32;
        memo *g = realloc(c->memo, sizeof *g * (size_t)cap);
        if (!g) return schema_oom(c), -1;
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
        if (r > 0) schema_cat(&body, &part);
        free(part.s);
        ok = r >= 0;
    }
    if (ok && !n) ok = schema_refuse(c, nothing_keyword(s), "allows no value");
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
    int root = c.empty ? emit_rule(&c, schema) : (schema_oom(&c), -1);
    sbuf text = {0};
    if (!c.failed) {
        gbnf_text_str(&text, "root ::= "), sb_rule(&text, root), gbnf_text_str(&text, "\n");
        gbnf_text_str(&text, json_rules), schema_cat(&text, &c.out);
        if (text.oom) schema_oom(&c);
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
