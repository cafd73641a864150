/*
 * serve_json.c — structured output: which bytes may come next in a reply that must be JSON, or
 * JSON of a schema (response_format json_object / json_schema). The engine masks every token
 * whose bytes cannot continue the reply (serve_engine.c, draw), so a reply that ends (the end
 * token is allowed only once the value is whole) always parses and validates.
 *
 * A schema compiles into nodes (json_shape); a reply's progress is a small stack of frames, one
 * per value being read (json_state), advanced a byte at a time. The subset: "type" (one or a
 * list of object, array, string, number, integer, boolean, null), "properties" with "required"
 * (an object with properties takes only those keys, in any order, each once),
 * "additionalProperties": false (beside properties), "items" with "minItems"/"maxItems",
 * "minLength"/"maxLength" (characters), "enum" or "const" (any JSON values; those of the "type",
 * when one is given, and no other keyword applies to them); annotations (title, description,
 * default, examples, $schema, strict) are ignored; any other keyword is refused, named. The
 * reply is compact JSON: no whitespace between tokens; a number has at most 24 characters; no \u
 * escape of a surrogate (U+D800..U+DFFF), which strict readers refuse alone.
 */
#include <math.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "serve_json.h"

enum { T_OBJECT = 1, T_ARRAY = 2, T_STRING = 4, T_NUMBER = 8, T_INTEGER = 16, T_BOOL = 32, T_NULL = 64, T_ANY = 127 };
#define MAX_PROPS 32
#define MAX_ENUM 32
#define MAX_NUMBER 24

typedef struct node {
    int types;         /* T_* */
    int nprops;        /* properties (an object with nprops == 0 takes any keys, values of `any`) */
    char **prop_name;  /* [nprops] */
    int *prop_node;    /* [nprops] */
    uint32_t required; /* bits of the required properties */
    int items;         /* the array's items' node; -1: any */
    int min_items, max_items, min_len, max_len; /* -1: no bound */
    int nenum;                                  /* > 0: the value is one of these texts (compact JSON) */
    char **enum_text;
} node;

struct json_shape {
    node *nodes;
    int n, any, root;  /* any: a node taking any JSON value; root: the reply's */
    _Atomic int extra; /* holders beyond the first (json_shape_ref) */
};

enum frame_kind { F_VALUE, F_OBJECT, F_KEY, F_ARRAY, F_STRING, F_NUMBER, F_LITERAL };
/* F_STRING: pos counts the continuation bytes of a UTF-8 character still due, count the characters.
 * F_KEY: a property's name being matched (cand: the properties it may still be, pos: bytes read);
 * F_STRING with node -1: a key of an object that takes any keys; F_LITERAL: phase 1 for true,
 * false, null (cand bits 0..2), else the node's enum texts. */
/* F_OBJECT phases: 0 after '{' or ',' (a key, or '}' after '{'), 1 after a key (':'), 2 after a
 * value (',' or '}'). F_ARRAY: 0 after '[' or ',', 1 after a value. F_NUMBER: the state of JSON's
 * number grammar (num_step). F_STRING: 0 in the text, 1 after '\', 2..5 in \uXXXX, 6..9 before the first
 * continuation byte after E0, ED, F0, F4 (a narrower range), 10 after \uD (0-7 next: no escape of a
 * surrogate, which cJSON and other strict readers refuse alone; a character past U+FFFF is UTF-8). */

static void shape_free_nodes(json_shape *s) {
    for (int i = 0; i < s->n; i++) {
        for (int k = 0; k < s->nodes[i].nprops; k++) free(s->nodes[i].prop_name[k]);
        for (int k = 0; k < s->nodes[i].nenum; k++) free(s->nodes[i].enum_text[k]);
        free(s->nodes[i].prop_name), free(s->nodes[i].prop_node), free(s->nodes[i].enum_text);
    }
    free(s->nodes);
}

json_shape *json_shape_ref(json_shape *s) {
    if (s) atomic_fetch_add(&s->extra, 1);
    return s;
}

void json_shape_free(json_shape *s) {
    if (!s || atomic_fetch_sub(&s->extra, 1) > 0) return; /* another holder has it still */
    shape_free_nodes(s);
    free(s);
}

typedef struct compiler {
    json_shape *s;
    char *err;
    size_t errlen;
    char *keyword; /* the keyword refused: 64 bytes */
    int depth;
} compiler;

static int new_node(compiler *c) {
    json_shape *s = c->s;
    node *grown = realloc(s->nodes, sizeof *grown * (size_t)(s->n + 1));
    if (!grown) return -1;
    s->nodes = grown;
    s->nodes[s->n] =
        (node){.types = T_ANY, .items = -1, .min_items = -1, .max_items = -1, .min_len = -1, .max_len = -1};
    return s->n++;
}

static int refuse(compiler *c, const char *keyword, const char *why) {
    snprintf(c->keyword, 64, "%s", keyword);
    snprintf(c->err, c->errlen, "the schema's '%s' %s", keyword, why);
    return -1;
}

static int type_bits(const char *t) {
    static const char *const names[] = {"object", "array", "string", "number", "integer", "boolean", "null"};
    for (int i = 0; i < 7; i++)
        if (!strcmp(t, names[i])) return 1 << i;
    return 0;
}

static int bound(compiler *c, const cJSON *v, const char *key, int *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6 || v->valuedouble != (int)v->valuedouble)
        return refuse(c, key, "must be a whole number from 0 to 1000000");
    *out = (int)v->valuedouble;
    return 0;
}

static int compile_node(compiler *c, const cJSON *sch, const char *via);

static int compile_props(compiler *c, int id, const cJSON *props, const cJSON *req) {
    if (!cJSON_IsObject(props)) return refuse(c, "properties", "must be an object");
    if (c->s->nodes[id].prop_name) return refuse(c, "properties", "is given twice");
    int n = cJSON_GetArraySize(props);
    if (n > MAX_PROPS) return refuse(c, "properties", "has more than 32 properties");
    char **names = calloc((size_t)n + 1, sizeof *names);
    int *nodes = calloc((size_t)n + 1, sizeof *nodes);
    if (!names || !nodes) return free(names), free(nodes), refuse(c, "properties", "is too large (out of memory)");
    c->s->nodes[id].prop_name = names, c->s->nodes[id].prop_node = nodes;
    const cJSON *p;
    cJSON_ArrayForEach(p, props) {
        bool plain = *p->string; /* the reply holds the name as written: no '"', '\\' or control character */
        for (const char *q = p->string; *q; q++) plain &= *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20;
        if (!plain) return refuse(c, "properties", "has a name rsr-serve cannot match");
        int k = c->s->nodes[id].nprops;
        if (!(names[k] = strdup(p->string))) return refuse(c, "properties", "is too large (out of memory)");
        c->s->nodes[id].nprops++;
        int child = compile_node(c, p, "properties");
        if (child < 0) return -1;
        c->s->nodes[id].prop_node[k] = child;
    }
    if (!req) return 0;
    if (!cJSON_IsArray(req)) return refuse(c, "required", "must be an array of property names");
    const cJSON *r;
    cJSON_ArrayForEach(r, req) {
        int k = 0;
        while (cJSON_IsString(r) && k < c->s->nodes[id].nprops && strcmp(c->s->nodes[id].prop_name[k], r->valuestring))
            k++;
        if (!cJSON_IsString(r) || k == c->s->nodes[id].nprops)
            return refuse(c, "required", "names a property not in 'properties'");
        c->s->nodes[id].required |= 1u << k;
    }
    return 0;
}

static int compile_enum(compiler *c, int id, const cJSON *values, bool is_const) {
    int n = is_const ? 1 : cJSON_GetArraySize(values);
    if (!is_const && (!cJSON_IsArray(values) || n < 1 || n > MAX_ENUM))
        return refuse(c, "enum", "must be an array of 1 to 32 values");
    node *nd = &c->s->nodes[id];
    if (nd->enum_text) return refuse(c, is_const ? "const" : "enum", "is not served beside another 'enum' or 'const'");
    if (!(nd->enum_text = calloc((size_t)n, sizeof *nd->enum_text))) return refuse(c, "enum", "is too large");
    for (int i = 0; i < n; i++) {
        const cJSON *v = is_const ? values : cJSON_GetArrayItem(values, i);
        if (!(nd->enum_text[i] = cJSON_PrintUnformatted(v)))
            return refuse(c, is_const ? "const" : "enum", "is too large");
        nd->nenum++;
    }
    return 0;
}

/* The type bits of a compact JSON value, by its first byte (a number's by its value). */
static int text_types(const char *t) {
    static const char first[] = "{[\"tfn";
    static const int bits[] = {T_OBJECT, T_ARRAY, T_STRING, T_BOOL, T_BOOL, T_NULL};
    const char *p = strchr(first, *t);
    if (p && *t) return bits[p - first];
    double v = strtod(t, NULL);
    return T_NUMBER | (v == floor(v) ? T_INTEGER : 0);
}

/* enum and const: the values of the schema's type (as serve_schema.c serves them); -1 with the
 * message when none is */
static int enum_of_type(compiler *c, node *nd, const char *keyword) {
    if (!nd->nenum || nd->types == T_ANY) return 0;
    int kept = 0;
    for (int i = 0; i < nd->nenum; i++) {
        if (text_types(nd->enum_text[i]) & nd->types)
            nd->enum_text[kept++] = nd->enum_text[i];
        else
            free(nd->enum_text[i]);
    }
    nd->nenum = kept;
    return kept ? 0 : refuse(c, keyword, "holds no value of the schema's 'type'");
}

/* Bounds that no value can meet both of (the schema would allow nothing where they apply): -1 with
 * the message. */
static int check_bounds(compiler *c, const node *nd) {
    char why[96];
    if (nd->min_len >= 0 && nd->max_len >= 0 && nd->min_len > nd->max_len) {
        snprintf(why, sizeof why, "%d is more than 'maxLength' %d: no string has both", nd->min_len, nd->max_len);
        return refuse(c, "minLength", why);
    }
    if (nd->min_items >= 0 && nd->max_items >= 0 && nd->min_items > nd->max_items) {
        snprintf(why, sizeof why, "%d is more than 'maxItems' %d: no array has both", nd->min_items, nd->max_items);
        return refuse(c, "minItems", why);
    }
    return 0;
}

/* One schema object into a node (via: the keyword that holds it); its id, or -1 with the message. */
static int compile_node(compiler *c, const cJSON *sch, const char *via) {
    if (++c->depth > 16) return refuse(c, via, "nests more than 16 levels");
    if (cJSON_IsTrue(sch)) return c->depth--, c->s->any;
    if (!cJSON_IsObject(sch)) return refuse(c, "schema", "must be an object");
    int id = new_node(c);
    if (id < 0) return refuse(c, "schema", "is too large (out of memory)");
    static const char *const ignored[] = {"title", "description", "default", "examples", "$schema", "$id", "strict"};
    const cJSON *k;
    cJSON_ArrayForEach(k, sch) {
        const char *key = k->string;
        bool known = false;
        for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++) known |= !strcmp(key, ignored[i]);
        if (known) continue;
        if (!strcmp(key, "type")) {
            int bits = 0;
            if (cJSON_IsString(k)) bits = type_bits(k->valuestring);
            const cJSON *t;
            if (cJSON_IsArray(k)) cJSON_ArrayForEach(t, k) bits |= cJSON_IsString(t) ? type_bits(t->valuestring) : 0;
            if (!bits) return refuse(c, "type", "names no JSON type");
            c->s->nodes[id].types = bits;
        } else if (!strcmp(key, "properties")) {
            if (compile_props(c, id, k, cJSON_GetObjectItemCaseSensitive(sch, "required")) < 0) return -1;
        } else if (!strcmp(key, "required")) {
            if (!cJSON_GetObjectItemCaseSensitive(sch, "properties") && cJSON_GetArraySize(k) > 0)
                return refuse(c, "required", "needs 'properties'");
        } else if (!strcmp(key, "additionalProperties")) {
            if (!cJSON_IsFalse(k)) return refuse(c, key, "is served as false only");
        } else if (!strcmp(key, "items")) {
            int child = compile_node(c, k, "items");
            if (child < 0) return -1;
            c->s->nodes[id].items = child;
        } else if (!strcmp(key, "minItems") || !strcmp(key, "maxItems") || !strcmp(key, "minLength") ||
                   !strcmp(key, "maxLength")) {
            node *nd = &c->s->nodes[id];
            int *out = key[1] == 'i' ? (key[3] == 'I' ? &nd->min_items : &nd->min_len)
                                     : (key[3] == 'I' ? &nd->max_items : &nd->max_len);
            if (bound(c, k, key, out) < 0) return -1;
        } else if (!strcmp(key, "enum") || !strcmp(key, "const")) {
            if (compile_enum(c, id, k, !strcmp(key, "const")) < 0) return -1;
        } else {
            return refuse(c, key,
                          "is not served (the subset: type, properties, required, additionalProperties: "
                          "false, items, minItems, maxItems, minLength, maxLength, enum, const)");
        }
    }
    node *nd = &c->s->nodes[id];
    if (!nd->nprops && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(sch, "additionalProperties")))
        return refuse(c, "additionalProperties",
                      "is not served without 'properties' (the subset: an object of any keys)");
    if (enum_of_type(c, nd, cJSON_GetObjectItemCaseSensitive(sch, "const") ? "const" : "enum") < 0) return -1;
    if (check_bounds(c, nd) < 0) return -1;
    c->depth--;
    return id;
}

json_shape *json_shape_compile(const cJSON *schema, char *err, size_t errlen, char keyword[64]) {
    json_shape *s = calloc(1, sizeof *s);
    compiler c = {s, err, errlen, keyword, 0};
    keyword[0] = 0;
    if (!s) return snprintf(err, errlen, "out of memory"), NULL;
    s->any = new_node(&c);
    s->root = schema ? compile_node(&c, schema, "schema") : new_node(&c);
    if (s->any < 0 || s->root < 0) {
        json_shape_free(s);
        return NULL;
    }
    if (!schema) s->nodes[s->root].types = T_OBJECT; /* json_object: an object of anything */
    return s;
}

/* ---- the reply so far ---- */

static const char *const builtin[] = {"true", "false", "null"};

/* JSON's number grammar: 0 start, 1 '-', 2 a leading 0, 3 integer digits, 4 '.', 5 fraction
 * digits, 6 'e', 7 the exponent's sign, 8 exponent digits; -1: no. */
static int num_step(int q, unsigned char b, bool integer) {
    bool digit = b >= '0' && b <= '9';
    switch (q) {
    case 0: return b == '-' ? 1 : b == '0' ? 2 : digit ? 3 : -1;
    case 1: return b == '0' ? 2 : digit ? 3 : -1;
    case 2:
    case 3:
        if (q == 3 && digit) return 3;
        return integer ? -1 : b == '.' ? 4 : (b == 'e' || b == 'E') ? 6 : -1;
    case 4: return digit ? 5 : -1;
    case 5: return digit ? 5 : (b == 'e' || b == 'E') ? 6 : -1;
    case 6: return b == '+' || b == '-' ? 7 : digit ? 8 : -1;
    case 7:
    case 8: return digit ? 8 : -1;
    default: return -1;
    }
}
static bool num_whole(int q) { return q == 2 || q == 3 || q == 5 || q == 8; }
/* the digit a number in state q still needs to be whole (after '-', '.', 'e' or its sign), so that
 * no number taken runs out of its MAX_NUMBER characters before it is whole */
static int num_owed(int q) { return q == 1 || q == 4 || q == 6 || q == 7; }

static const char *literal_text(const json_shape *sh, const json_frame *f, int i) {
    return f->phase ? builtin[i] : sh->nodes[f->node].enum_text[i];
}

/* some candidate of a literal frame is whole at its position */
static bool literal_whole(const json_shape *sh, const json_frame *f) {
    for (int i = 0; i < 32; i++)
        if (f->cand >> i & 1 && literal_text(sh, f, i)[f->pos] == 0) return true;
    return false;
}

static bool push(json_state *st, json_frame f) {
    if (st->depth == JSON_MAX_DEPTH) return false;
    st->f[st->depth++] = f;
    return true;
}

/* The first byte of a value of node n: the frame that reads it (replacing the F_VALUE frame). */
static bool start_value(const json_shape *sh, json_state *st, unsigned char b) {
    json_frame *f = &st->f[st->depth - 1];
    const node *n = &sh->nodes[f->node];
    json_frame g = {.node = f->node};
    if (n->nenum) {
        g.kind = F_LITERAL, g.pos = 1;
        for (int i = 0; i < n->nenum; i++) g.cand |= (uint32_t)(n->enum_text[i][0] == (char)b) << i;
    } else if (b == '{' && n->types & T_OBJECT) {
        g.kind = F_OBJECT;
    } else if (b == '[' && n->types & T_ARRAY) {
        g.kind = F_ARRAY;
    } else if (b == '"' && n->types & T_STRING) {
        g.kind = F_STRING;
    } else if ((b == '-' || (b >= '0' && b <= '9')) && n->types & (T_NUMBER | T_INTEGER)) {
        g.kind = F_NUMBER, g.pos = 1, g.phase = (uint8_t)num_step(0, b, false);
    } else if ((b == 't' || b == 'f') && n->types & T_BOOL) {
        g.kind = F_LITERAL, g.phase = 1, g.pos = 1, g.cand = b == 't' ? 1 : 2;
    } else if (b == 'n' && n->types & T_NULL) {
        g.kind = F_LITERAL, g.phase = 1, g.pos = 1, g.cand = 4;
    } else {
        return false;
    }
    if (g.kind == F_LITERAL && !g.cand) return false;
    *f = g;
    return true;
}

static bool in_string(json_frame *f, const node *n, unsigned char b, json_state *st, int *done) {
    if (f->pos) { /* the continuation bytes of a UTF-8 character (pos: how many are still due); after
                   * E0, ED, F0 and F4 the first is narrower (phase 6..9): no overlong form, no
                   * surrogate, nothing past U+10FFFF, as a strict decoder reads UTF-8 */
        unsigned char lo = f->phase == 6   ? 0xa0
                           : f->phase == 8 ? 0x90
                                           : 0x80,
                      hi = f->phase == 7   ? 0x9f
                           : f->phase == 9 ? 0x8f
                                           : 0xbf;
        if (b < lo || b > hi) return false;
        f->phase = 0;
        return f->pos--, true;
    }
    if (f->phase == 1) { /* after a backslash */
        if (b == 'u') return f->phase = 2, true;
        return strchr("\"\\/bfnrt", b) && b ? (f->phase = 0, true) : false;
    }
    if (f->phase >= 2) { /* \uXXXX; after \uD (10) a digit 0-7: no surrogate */
        if (f->phase == 10) return b >= '0' && b <= '7' ? (f->phase = 4, true) : false;
        bool hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
        if (!hex) return false;
        f->phase = f->phase == 5 ? 0 : f->phase == 2 && (b == 'd' || b == 'D') ? 10 : f->phase + 1;
        return true;
    }
    if (b == '"') {
        if (n && n->min_len > 0 && (int)f->count < n->min_len) return false;
        st->depth--, *done = 1;
        return true;
    }
    if (b < 0x20 || (b >= 0x80 && b < 0xc2) || b > 0xf4) return false; /* controls; no UTF-8 lead byte */
    if (n && n->max_len >= 0 && (int)f->count >= n->max_len) return false;
    f->count++; /* a character starts */
    f->pos = b >= 0xf0 ? 3 : b >= 0xe0 ? 2 : b >= 0xc2 ? 1 : 0;
    f->phase = b == 0xe0 ? 6 : b == 0xed ? 7 : b == 0xf0 ? 8 : b == 0xf4 ? 9 : b == '\\' ? 1 : 0;
    return true;
}

static bool object_byte(const json_shape *sh, json_state *st, json_frame *f, unsigned char b) {
    const node *n = &sh->nodes[f->node];
    uint32_t all = n->nprops >= 32 ? 0xffffffffu : (1u << n->nprops) - 1;
    bool closes = (n->required & ~f->seen) == 0;
    if (f->phase == 0) {
        if (b == '}' && f->count == 0 && closes) return st->depth--, true;
        if (b != '"') return false;
        json_frame key = {.kind = n->nprops ? F_KEY : F_STRING, .node = -1, .cand = all & ~f->seen};
        if (n->nprops && !key.cand) return false;
        return push(st, key);
    }
    if (f->phase == 1) {
        if (b != ':') return false;
        f->phase = 2;
        return push(st, (json_frame){.kind = F_VALUE, .node = n->nprops ? n->prop_node[f->cur] : sh->any});
    }
    if (b == ',' && (!n->nprops || (all & ~f->seen))) return f->phase = 0, f->count++, true;
    if (b == '}' && closes) return st->depth--, true;
    return false;
}

static bool array_byte(const json_shape *sh, json_state *st, json_frame *f, unsigned char b, bool *again) {
    const node *n = &sh->nodes[f->node];
    int items = n->items >= 0 ? n->items : sh->any;
    if (f->phase == 1) {
        if (b == ',' && (n->max_items < 0 || (int)f->count < n->max_items)) return f->phase = 0, true;
        if (b == ']' && (int)f->count >= (n->min_items > 0 ? n->min_items : 0)) return st->depth--, true;
        return false;
    }
    if (b == ']' && f->count == 0 && n->min_items <= 0) return st->depth--, true;
    if (n->max_items >= 0 && (int)f->count >= n->max_items) return false;
    f->phase = 1, f->count++;
    *again = true; /* the byte starts the item */
    return push(st, (json_frame){.kind = F_VALUE, .node = items});
}

/* One byte of the reply; false when no valid reply continues with it (st is then spoilt). */
static bool step(const json_shape *sh, json_state *st, unsigned char b) {
    if (b == 0) return false; /* no JSON text holds a NUL byte (and names and literals end at one) */
    for (;;) {
        if (st->depth == 0) return false; /* the value is whole: nothing may follow */
        json_frame *f = &st->f[st->depth - 1];
        const node *n = f->node >= 0 ? &sh->nodes[f->node] : NULL;
        bool again = false;
        int done = 0;
        switch (f->kind) {
        case F_VALUE: return start_value(sh, st, b);
        case F_LITERAL: {
            uint32_t next = 0;
            for (int i = 0; i < 32; i++)
                if (f->cand >> i & 1 && literal_text(sh, f, i)[f->pos] == (char)b && b) next |= 1u << i;
            if (next) return f->cand = next, f->pos++, true;
            if (!literal_whole(sh, f)) return false;
            st->depth--; /* the literal ended before this byte, which its parent reads */
            continue;
        }
        case F_NUMBER: {
            int q = num_step(f->phase, b, n && !(n->types & T_NUMBER));
            if (q >= 0 && f->pos + 1 + num_owed(q) <= MAX_NUMBER) return f->phase = (uint8_t)q, f->pos++, true;
            if (!num_whole(f->phase)) return false;
            st->depth--;
            continue;
        }
        case F_STRING: {
            bool key = f->node < 0;
            if (!in_string(f, n, b, st, &done)) return false;
            if (done && key) st->f[st->depth - 1].phase = 1; /* the object's key is read */
            return true;
        }
        case F_KEY: {
            json_frame *obj = &st->f[st->depth - 2];
            const node *o = &sh->nodes[obj->node];
            if (b == '"') {
                for (int k = 0; k < o->nprops; k++)
                    if (f->cand >> k & 1 && o->prop_name[k][f->pos] == 0) {
                        st->depth--;
                        obj->cur = (int16_t)k, obj->seen |= 1u << k, obj->phase = 1;
                        return true;
                    }
                return false;
            }
            uint32_t next = 0;
            for (int k = 0; k < o->nprops; k++)
                if (f->cand >> k & 1 && o->prop_name[k][f->pos] && o->prop_name[k][f->pos] == (char)b) next |= 1u << k;
            if (!next) return false;
            return f->cand = next, f->pos++, true;
        }
        case F_OBJECT: return object_byte(sh, st, f, b);
        case F_ARRAY:
            if (!array_byte(sh, st, f, b, &again)) return false;
            if (again) continue;
            return true;
        }
        return false;
    }
}

void json_state_init(json_state *st, const json_shape *sh) {
    memset(st, 0, sizeof *st);
    st->depth = 1;
    st->f[0] = (json_frame){.kind = F_VALUE, .node = (int16_t)sh->root};
}

bool json_state_feed(json_state *st, const json_shape *sh, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!step(sh, st, (unsigned char)bytes[i])) return false;
    return true;
}

bool json_state_done(const json_state *st, const json_shape *sh) {
    if (st->depth == 0) return true;
    if (st->depth > 1) return false;
    const json_frame *f = &st->f[0];
    return (f->kind == F_NUMBER && num_whole(f->phase)) || (f->kind == F_LITERAL && literal_whole(sh, f));
}

void json_state_copy(json_state *dst, const json_state *src) {
    dst->depth = src->depth;
    memcpy(dst->f, src->f, sizeof *src->f * (size_t)src->depth);
}
