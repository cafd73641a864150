/* jinja_internal.h — what jinja.c (lexer, parser), jinja_eval.c (evaluator) and jinja_lib.c (values:
 * strings, numbers, JSON, filters, tests, methods) share. Not part of the interface (jinja.h). */
#ifndef RSR_JINJA_INTERNAL_H
#define RSR_JINJA_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>

#include "jinja.h"

#define JINJA_MAX_DEPTH 200            /* nesting of the tree, of the parser and of values */
#define JINJA_MAX_TEMPLATE (16u << 20) /* bytes of template source */
#define JINJA_MAX_OUTPUT (64u << 20)   /* bytes of rendered text */
#define JINJA_MAX_MEMORY (256u << 20)  /* bytes of values one rendering may make */
#define JINJA_MAX_WORK 400000000LL     /* steps (nodes evaluated, bytes scanned) one rendering may take */
#define JINJA_MAX_RANGE 10000000       /* items of one range() */
/* The evaluator's nesting across macro calls: the depths of the bodies of the macros being called,
 * added up (each is at most JINJA_MAX_DEPTH), so that runaway recursion fails before the stack does
 * (at this bound, about 0.5 MiB of stack at -O2, 2 MiB under AddressSanitizer). */
#define JINJA_MAX_NESTING (4 * JINJA_MAX_DEPTH)

/* ---- memory: a bump allocator freed all at once ---- */
typedef struct jinja_chunk jinja_chunk;
typedef struct {
    jinja_chunk *head;
    size_t used, limit;
} jinja_arena;
void *jinja_arena_alloc(jinja_arena *a, size_t n); /* zeroed; NULL past the limit */
void jinja_arena_free(jinja_arena *a);

/* ---- errors: a longjmp back to jinja_parse or jinja_render with the message written ---- */
typedef struct {
    jmp_buf jb;
    char *msg;
    size_t cap;
} jinja_err;
noreturn void jinja_fail(jinja_err *e, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

typedef struct {
    const char *p;
    size_t n;
} jstr;

/* ---- the tree ---- */
typedef enum {
    N_TEXT,
    N_STR,
    N_INT,
    N_FLOAT,
    N_NAME,
    N_LIST,
    N_TUPLE,
    N_DICT,
    N_MEMBER,
    N_INDEX,
    N_SLICE,
    N_CALL,
    N_KWARG,
    N_UNARY,
    N_BINARY,
    N_FILTER,
    N_TEST,
    N_SELECT,
    N_TERNARY,
    N_SET,
    N_IF,
    N_FOR,
    N_BREAK,
    N_CONTINUE,
    N_MACRO,
    N_CALL_BLOCK,
    N_FILTER_BLOCK
} jnode_kind;
typedef enum {
    OP_NOT,
    OP_NEG,
    OP_POS,
    OP_AND,
    OP_OR,
    OP_ADD,
    OP_SUB,
    OP_CONCAT,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_IN,
    OP_NOTIN
} jop;
typedef struct jnode jnode;
enum { MACRO_VARARGS = 1, MACRO_KWARGS = 2 };
typedef struct {
    jnode **v;
    int n, cap;
} jnodes;
/* What each kind uses: TEXT, STR, NAME: s; INT, FLOAT: num; LIST, TUPLE: list; DICT: list (keys), list2
 * (values); MEMBER: a.s; INDEX: a[b]; SLICE: a[list.v[0]:list.v[1]:list.v[2]] (NULL: left out); CALL:
 * a(list), with KWARG s=a among them; UNARY: op a; BINARY: a op b; FILTER: a|s, op 1 with (list);
 * (op 2: with a call, member or index after the arguments, b, an error when evaluated);
 * TEST: a is [not: op] s; SELECT: a if b; TERNARY: b if a else c; SET: a = b, or a = the text of
 * list when b is NULL; IF: if a: list else list2; FOR: for a in b [if c]: list else list2;
 * MACRO: macro s(list: NAME or KWARG s=a, its default): list2, op: the special names the body reads
 * (MACRO_VARARGS, MACRO_KWARGS); CALL_BLOCK: call(list) a (a CALL): list2, op as MACRO's;
 * FILTER_BLOCK: filter a (a FILTER without its operand): list2. */
struct jnode {
    jnode_kind kind;
    int line, op, depth;
    double num;
    jstr s;
    jnode *a, *b, *c;
    jnodes list, list2;
};

struct jinja_template {
    jinja_arena arena;
    jnodes body;
};

/* ---- values ---- */
typedef enum { JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_FUNC } jvtype;
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;
typedef struct {
    jvtype t;
    union {
        int b;
        double n; /* INT (an integral number, as JavaScript keeps it) and FLOAT */
        jstr s;
        jlist *l;
        jdict *d; /* DICT and NS (a namespace: the one mutable kind) */
        jfunc *f;
    } u;
} jv;

/* Values made from a string, a number (JV_INT or JV_FLOAT) and a truth value; the undefined one. */
static const jv undef = {JV_UNDEF, {0}};
static inline jv vstr(jstr s) {
    jv v = {JV_STR, {0}};
    v.u.s = s;
    return v;
}
static inline jv vnum(jvtype t, double n) {
    jv v = {t, {0}};
    v.u.n = n;
    return v;
}
static inline jv vbool(int b) {
    jv v = {JV_BOOL, {0}};
    v.u.b = !!b;
    return v;
}
struct jlist {
    int n, tuple;
    jv *v;
};
/* Keys in insertion order (what iteration, tojson and dictsort see); past JDICT_LINEAR keys an
 * open-addressed index of positions finds one at once, so a context of many keys renders in time
 * linear in its size (a call's arguments of 55,000 keys once took 22 s, each insert a scan). */
enum { JDICT_LINEAR = 16 };
struct jdict {
    int n, cap;
    jstr *k;
    jv *v;
    int32_t *slot; /* position + 1 of the key hashed there, 0 for none; NULL while n <= JDICT_LINEAR */
    uint32_t mask; /* slots - 1 (a power of two, at least twice cap) */
};
typedef enum {
    F_NAMESPACE,
    F_RAISE,
    F_RANGE,
    F_STRFTIME,
    F_UPPER,
    F_LOWER,
    F_STRIP,
    F_TITLE,
    F_CAPITALIZE,
    F_RSTRIP,
    F_LSTRIP,
    F_STARTSWITH,
    F_ENDSWITH,
    F_SPLIT,
    F_REPLACE,
    F_GET,
    F_ITEMS,
    F_KEYS,
    F_VALUES,
    F_DICTSORT,
    F_MACRO
} jfunc_id;
typedef struct jscope jscope;
struct jfunc {
    jfunc_id id;
    jv self;            /* the string or dict of a method */
    const jnode *macro; /* MACRO: a MACRO node, or the CALL_BLOCK whose body caller() renders */
    jscope *scope;      /* caller()'s: the call block's scope (a macro's is the one it is called from) */
};

/* Arguments of a call: positional ones, then keyword ones. */
typedef struct {
    int npos, nkw;
    jv *pos, *kwv;
    jstr *kwk;
} jargs;

/* A growing string: in the arena, or (heap) malloc'd, for the output. */
typedef struct {
    char *p;
    size_t n, cap;
    int heap;
} jsb;

typedef struct {
    jinja_err e;
    jinja_arena arena;
    jsb out;
    long long work;
    int raised, jump_line;
    int nesting; /* the depths of the macros being called, added up (JINJA_MAX_NESTING) */
} jctx;

/* jinja_eval.c */
void jx_eval_args(jctx *c, jscope *s, const jnodes *args, jargs *out);

/* jinja_lib.c: memory and strings */
void *jx_alloc(jctx *c, size_t n, int line);
void jx_work(jctx *c, long long n, int line);
void jx_put(jctx *c, jsb *b, const char *p, size_t n, int line);
jv jx_cstr(jctx *c, const char *p, size_t n, int line);
jlist *jx_list(jctx *c, int n, int line);
jdict *jx_dict(jctx *c, int cap, int line);
void jx_dict_set(jctx *c, jdict *d, jstr k, jv v, int line);
jv *jx_dict_get(const jdict *d, jstr k);
int jx_streq(jstr a, const char *b);
const char *jx_type_name(jv v);

/* jinja_lib.c: UTF-8 and JavaScript's white space */
size_t jx_space_at(const char *s, size_t n, size_t i);
size_t jx_space_before(const char *s, size_t i);
jstr jx_trim(jstr s, int left, int right);

/* jinja_lib.c: conversions and comparisons as the reference renderer makes them */
int jx_truthy(jv v);
void jx_to_str(jctx *c, jsb *b, jv v, int depth, int line);
void jx_raw_str(jctx *c, jsb *b, jv v, int line);
int jx_loose_eq(jctx *c, jv a, jv b, int line);
int jx_strict_eq(jv a, jv b);

/* jinja_lib.c: the library */
jv jx_member(jctx *c, jv obj, jv prop, int line);
jv jx_call(jctx *c, jv fn, const jargs *a, int line);
jv jx_filter(jctx *c, jscope *s, const jnode *f, jv x);
int jx_test(jctx *c, jstr name, jv x, const jv *arg, int line);
jv jx_slice(jctx *c, jv obj, jv start, jv stop, jv step, int line);

#endif
