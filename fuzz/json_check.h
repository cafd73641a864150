/*
 * json_check.h — what fuzz_json and fuzz_schema hold structured output's replies to, written apart
 * from the recognizers they check (tools/serve/grammar/): RFC 8259's grammar read strictly and
 * compactly (no white space outside strings, JSON's escapes only, no raw control character in a
 * string, strict UTF-8: no overlong form, no surrogate, nothing past U+10FFFF), with the facts the
 * recognizers' documented limits are stated in (how deep a value nests, its longest number, a \u
 * escape of a surrogate); and a parsed value checked against a JSON schema for the keywords the
 * recognizers serve (jv_valid).
 */
#ifndef RSR_FUZZ_JSON_CHECK_H
#define RSR_FUZZ_JSON_CHECK_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#define JCHECK_MAX_DEPTH 64 /* deeper than either recognizer reads: such a text is refused by all */

typedef struct jfacts {
    int depth;      /* the deepest value or key: the root 1, what a container holds one more */
    size_t longest; /* the longest number, in characters */
    bool surrogate; /* a \u escape of U+D800..U+DFFF (RFC 8259 allows it; cJSON refuses one alone) */
} jfacts;

typedef struct jreader {
    const unsigned char *s;
    size_t n, i;
    jfacts *f;
} jreader;

static inline int jc_peek(const jreader *r) { return r->i < r->n ? r->s[r->i] : -1; }
static inline bool jc_digit(const jreader *r) { return jc_peek(r) >= '0' && jc_peek(r) <= '9'; }

static inline int jc_hex(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The code point of the UTF-8 character at s[0, n) by its value (not by byte ranges, as the
 * recognizers test it), its length in *len; -1: not strict UTF-8. */
static inline int32_t jc_utf8(const unsigned char *s, size_t n, size_t *len) {
    unsigned char b = s[0];
    size_t more = b < 0x80 ? 0 : b >= 0xc0 && b < 0xe0 ? 1 : b >= 0xe0 && b < 0xf0 ? 2 : b >= 0xf0 && b < 0xf8 ? 3 : 4;
    if (more > 3 || more >= n) return -1;
    static const uint32_t least[] = {0, 0x80, 0x800, 0x10000};
    uint32_t cp = more ? b & (0x3fu >> more) : b;
    for (size_t k = 1; k <= more; k++) {
        if ((s[k] & 0xc0) != 0x80) return -1;
        cp = cp << 6 | (s[k] & 0x3fu);
    }
    if (cp < least[more] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    *len = more + 1;
    return (int32_t)cp;
}

static inline bool jc_string(jreader *r) {
    r->i++; /* the opening quote */
    while (r->i < r->n) {
        unsigned char b = r->s[r->i];
        if (b == '"') return r->i++, true;
        if (b < 0x20) return false;
        if (b == '\\') {
            int e = r->i + 1 < r->n ? r->s[r->i + 1] : -1;
            if (e == 'u') {
                int v = 0;
                for (size_t k = 2; k < 6; k++) {
                    int d = r->i + k < r->n ? jc_hex(r->s[r->i + k]) : -1;
                    if (d < 0) return false;
                    v = v * 16 + d;
                }
                r->f->surrogate |= v >= 0xd800 && v <= 0xdfff;
                r->i += 6;
            } else if (e > 0 && strchr("\"\\/bfnrt", e)) {
                r->i += 2;
            } else {
                return false;
            }
            continue;
        }
        size_t len;
        if (jc_utf8(r->s + r->i, r->n - r->i, &len) < 0) return false;
        r->i += len;
    }
    return false;
}

static inline bool jc_number(jreader *r) {
    size_t start = r->i;
    if (jc_peek(r) == '-') r->i++;
    if (jc_peek(r) == '0') {
        r->i++;
    } else {
        if (!jc_digit(r)) return false;
        while (jc_digit(r)) r->i++;
    }
    if (jc_peek(r) == '.') {
        r->i++;
        if (!jc_digit(r)) return false;
        while (jc_digit(r)) r->i++;
    }
    if (jc_peek(r) == 'e' || jc_peek(r) == 'E') {
        r->i++;
        if (jc_peek(r) == '+' || jc_peek(r) == '-') r->i++;
        if (!jc_digit(r)) return false;
        while (jc_digit(r)) r->i++;
    }
    if (r->i - start > r->f->longest) r->f->longest = r->i - start;
    return true;
}

static inline bool jc_value(jreader *r, int depth);

/* an object or array after its opening byte: members (a key, ':', a value) or items, ','-separated */
static inline bool jc_container(jreader *r, int depth, bool object) {
    int close = object ? '}' : ']';
    r->i++;
    if (jc_peek(r) == close) return r->i++, true;
    for (;;) {
        if (object) {
            if (depth + 1 > r->f->depth) r->f->depth = depth + 1;
            if (jc_peek(r) != '"' || !jc_string(r) || jc_peek(r) != ':') return false;
            r->i++;
        }
        if (!jc_value(r, depth + 1)) return false;
        int c = jc_peek(r);
        r->i++;
        if (c == close) return true;
        if (c != ',') return false;
    }
}

static inline bool jc_value(jreader *r, int depth) {
    if (depth > JCHECK_MAX_DEPTH) return false;
    if (depth > r->f->depth) r->f->depth = depth;
    static const char *const literals[] = {"true", "false", "null"};
    switch (jc_peek(r)) {
    case '{': return jc_container(r, depth, true);
    case '[': return jc_container(r, depth, false);
    case '"': return jc_string(r);
    case 't':
    case 'f':
    case 'n': {
        const char *lit = literals[jc_peek(r) == 't' ? 0 : jc_peek(r) == 'f' ? 1 : 2];
        size_t len = strlen(lit);
        if (r->n - r->i < len || memcmp(r->s + r->i, lit, len)) return false;
        r->i += len;
        return true;
    }
    default: return jc_number(r);
    }
}

/* s[0, n) is one compact JSON value and nothing else; the facts of what was read in *f */
static inline bool json_strict(const char *s, size_t n, jfacts *f) {
    *f = (jfacts){0};
    jreader r = {(const unsigned char *)s, n, 0, f};
    return jc_value(&r, 1) && r.i == n;
}

static inline bool utf8_strict(const char *s, size_t n) {
    size_t len;
    for (size_t i = 0; i < n; i += len)
        if (jc_utf8((const unsigned char *)s + i, n - i, &len) < 0) return false;
    return true;
}

/* ---- a value against a schema ---- */

/* Whether v holds schema s for the keywords below; any other keyword (pattern, format, ...) is not
 * checked, so the answer may be yes where a full validator says no, never the reverse. The
 * recognizers serve `enum` and `const` as their values of the `type` beside them, no other keyword
 * applied (serve_schema.c: "those of the type"). root: the whole schema, for "#..." references. The
 * caller leaves out what cJSON cannot represent: a reply with \u0000 (cJSON ends the string there). */
typedef struct jschema {
    const cJSON *root;
    long steps; /* past a million (a schema whose anyOf and $ref branch at every level): not judged */
} jschema;

static inline bool jv_valid(jschema *js, const cJSON *s, const cJSON *v, int depth);

static inline bool jv_type_is(const char *t, const cJSON *v) {
    if (!strcmp(t, "object")) return cJSON_IsObject(v);
    if (!strcmp(t, "array")) return cJSON_IsArray(v);
    if (!strcmp(t, "string")) return cJSON_IsString(v);
    if (!strcmp(t, "number")) return cJSON_IsNumber(v);
    if (!strcmp(t, "integer")) return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    if (!strcmp(t, "boolean")) return cJSON_IsBool(v);
    if (!strcmp(t, "null")) return cJSON_IsNull(v);
    return false;
}

static inline bool jv_type(const cJSON *type, const cJSON *v) {
    if (!type) return true;
    if (cJSON_IsString(type)) return jv_type_is(type->valuestring, v);
    const cJSON *t;
    if (cJSON_IsArray(type))
        cJSON_ArrayForEach(t, type) if (cJSON_IsString(t) && jv_type_is(t->valuestring, v)) return true;
    return !cJSON_IsArray(type); /* a malformed type: not judged */
}

/* code points of a NUL-terminated string */
static inline long jv_length(const char *s) {
    long n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* a JSON pointer of the schema ("#", "#/$defs/a~1b"); NULL where it names nothing (not judged) */
static inline const cJSON *jv_resolve(const cJSON *root, const char *ref) {
    if (!ref || ref[0] != '#') return NULL;
    const cJSON *at = root;
    for (const char *p = ref + 1; *p;) {
        if (*p++ != '/') return NULL;
        char name[256];
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            char c = *p;
            if (c == '~' && (p[1] == '0' || p[1] == '1')) c = *++p == '0' ? '~' : '/';
            if (c == '%' || n + 1 == sizeof name) return NULL; /* percent-encoding: not judged */
            name[n++] = c;
        }
        name[n] = 0;
        at = cJSON_IsArray(at) ? NULL : cJSON_GetObjectItemCaseSensitive(at, name);
        if (!at) return NULL;
    }
    return at;
}

static inline bool jv_number(const cJSON *s, const cJSON *v) {
    static const char *const kws[] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    double x = v->valuedouble;
    /* the recognizers' numbers are decimal text, cJSON's a double: an exact comparison only of whole
     * numbers an integer type asks for, within a millionth elsewhere */
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    bool integer = cJSON_IsString(type) && !strcmp(type->valuestring, "integer") && fabs(x) < 0x1p53;
    for (int i = 0; i < 4; i++) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, kws[i]);
        if (!cJSON_IsNumber(b) || !isfinite(b->valuedouble)) continue;
        double lim = b->valuedouble;
        bool exact = integer && fabs(lim) < 0x1p53;
        double slack = exact ? 0 : 1e-6 * fmax(1, fabs(lim));
        bool low = i < 2, strict = exact && (i & 1);
        if (low ? (strict ? x <= lim : x < lim - slack) : (strict ? x >= lim : x > lim + slack)) return false;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(s, "multipleOf");
    if (cJSON_IsNumber(m) && m->valuedouble >= 1 && m->valuedouble == floor(m->valuedouble) && fabs(x) < 1e15)
        return x == floor(x) && fmod(x, m->valuedouble) == 0;
    return true;
}

static inline bool jv_object(jschema *js, const cJSON *s, const cJSON *v, int depth) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(s, "propertyNames");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required"), *m;
    cJSON_ArrayForEach(m, v) {
        const cJSON *p = cJSON_IsObject(props) ? cJSON_GetObjectItemCaseSensitive(props, m->string) : NULL;
        if (p ? !jv_valid(js, p, m, depth + 1) : extra && !jv_valid(js, extra, m, depth + 1)) return false;
        if (names) {
            cJSON *name = cJSON_CreateString(m->string);
            bool ok = !name || jv_valid(js, names, name, depth + 1);
            cJSON_Delete(name);
            if (!ok) return false;
        }
    }
    if (cJSON_IsArray(req)) cJSON_ArrayForEach(m, req) {
            if (cJSON_IsString(m) && !cJSON_GetObjectItemCaseSensitive(v, m->valuestring)) return false;
        }
    return true;
}

static inline bool jv_array(jschema *js, const cJSON *s, const cJSON *v, int depth) {
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(s, "prefixItems");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *rest = items; /* what the items past the tuple hold */
    if (cJSON_IsArray(items))
        prefix = items, rest = cJSON_GetObjectItemCaseSensitive(s, "additionalItems");
    else if (prefix && !cJSON_IsArray(prefix))
        return true; /* malformed: not judged */
    int n = cJSON_GetArraySize(v), i = 0;
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(s, "minItems"),
                *hi = cJSON_GetObjectItemCaseSensitive(s, "maxItems");
    if ((cJSON_IsNumber(lo) && n < lo->valuedouble) || (cJSON_IsNumber(hi) && n > hi->valuedouble)) return false;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        const cJSON *sub = i < cJSON_GetArraySize(prefix) ? cJSON_GetArrayItem(prefix, i) : rest;
        if (sub && !jv_valid(js, sub, e, depth + 1)) return false;
        i++;
    }
    return true;
}

/* s names key somewhere (a keyword, or a property so named: enough for what it is used for) */
static inline bool jv_has(const cJSON *s, const char *key) {
    const cJSON *e;
    cJSON_ArrayForEach(e, s) if ((e->string && !strcmp(e->string, key)) || jv_has(e, key)) return true;
    return false;
}

/* every number in v finite (cJSON reads 1e400 as infinity and writes it as null: not judged) */
static inline bool jv_finite(const cJSON *v) {
    if (cJSON_IsNumber(v)) return isfinite(v->valuedouble);
    const cJSON *e;
    cJSON_ArrayForEach(e, v) if (!jv_finite(e)) return false;
    return true;
}

static inline bool jv_enum(const cJSON *s, const cJSON *v) {
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum"), *cn = cJSON_GetObjectItemCaseSensitive(s, "const");
    if ((en && !jv_finite(en)) || (cn && !jv_finite(cn))) return true;
    if (cn && !cJSON_Compare(cn, v, true)) return false;
    bool listed = !cJSON_IsArray(en);
    const cJSON *e;
    if (!listed) cJSON_ArrayForEach(e, en) listed |= cJSON_Compare(e, v, true);
    return listed && jv_type(cJSON_GetObjectItemCaseSensitive(s, "type"), v);
}

static inline bool jv_valid(jschema *js, const cJSON *s, const cJSON *v, int depth) {
    if (depth > 64 || ++js->steps > 1000000 || cJSON_IsTrue(s)) return true;
    if (cJSON_IsFalse(s)) return false;
    if (!cJSON_IsObject(s)) return true;
    if (cJSON_GetObjectItemCaseSensitive(s, "enum") || cJSON_GetObjectItemCaseSensitive(s, "const"))
        return jv_enum(s, v);
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref"), *e;
    const cJSON *target = ref ? jv_resolve(js->root, cJSON_GetStringValue(ref)) : NULL;
    if (target && !jv_valid(js, target, v, depth + 1)) return false;
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
    if (cJSON_IsArray(all)) cJSON_ArrayForEach(e, all) if (!jv_valid(js, e, v, depth + 1)) return false;
    for (int w = 0; w < 2; w++) { /* oneOf read as anyOf, as the recognizers read it */
        const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, w ? "oneOf" : "anyOf");
        bool one = !cJSON_IsArray(any) || !cJSON_GetArraySize(any);
        if (!one) cJSON_ArrayForEach(e, any) one = one || jv_valid(js, e, v, depth + 1);
        if (!one) return false;
    }
    if (!jv_type(cJSON_GetObjectItemCaseSensitive(s, "type"), v)) return false;
    if (cJSON_IsObject(v)) return jv_object(js, s, v, depth);
    if (cJSON_IsArray(v)) return jv_array(js, s, v, depth);
    if (cJSON_IsNumber(v)) return jv_number(s, v);
    if (cJSON_IsString(v)) {
        const cJSON *lo = cJSON_GetObjectItemCaseSensitive(s, "minLength");
        const cJSON *hi = cJSON_GetObjectItemCaseSensitive(s, "maxLength");
        long n = jv_length(v->valuestring);
        if (cJSON_IsNumber(hi) && n > hi->valuedouble) return false;
        return !cJSON_IsNumber(lo) || n >= lo->valuedouble;
    }
    return true;
}

#endif
