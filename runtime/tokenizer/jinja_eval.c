/* jinja_eval.c — the evaluator of the Jinja interpreter (jinja.c describes the whole): scopes,
 * expressions, statements, and jinja_render. Statements write into one output buffer; a loop
 * iteration that ends in break or continue loses the text it wrote, as in the reference renderer. */
#include "jinja_builtins.h"
#include "jinja_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static jv jx_eval(jctx *c, jscope *s, const jnode *n);

enum { EXEC_OK, EXEC_BREAK, EXEC_CONTINUE };

struct jscope {
    jscope *parent;
    jdict vars; /* the names set here (a dict: found at once however many) */
};

/* ---- scopes ---- */

static jscope *new_scope(jctx *c, jscope *parent, int line) {
    jscope *s = jx_alloc(c, sizeof *s, line);
    s->parent = parent;
    return s;
}

static jv *lookup(jscope *s, jstr name) {
    for (jv *v; s; s = s->parent)
        if ((v = jx_dict_get(&s->vars, name))) return v;
    return NULL;
}

/* Sets name in this scope (not in the ones around it). */
static void assign(jctx *c, jscope *s, jstr name, jv v, int line) { jx_dict_set(c, &s->vars, name, v, line); }

static void assign_c(jctx *c, jscope *s, const char *name, jv v) { assign(c, s, (jstr){name, strlen(name)}, v, 0); }

/* ---- expressions ---- */

void jx_eval_args(jctx *c, jscope *s, const jnodes *args, jargs *out) {
    int line = args->n ? args->v[0]->line : 0;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < args->n; i++) out->nkw += args->v[i]->kind == N_KWARG;
    jx_work(c, (long long)out->nkw * out->nkw, line); /* the search for a keyword given twice */
    out->pos = jx_alloc(c, (size_t)(args->n - out->nkw + 1) * sizeof *out->pos, line);
    out->kwv = jx_alloc(c, (size_t)(out->nkw + 1) * sizeof *out->kwv, line);
    out->kwk = jx_alloc(c, (size_t)(out->nkw + 1) * sizeof *out->kwk, line);
    for (int i = 0; i < args->n; i++)
        if (args->v[i]->kind != N_KWARG) out->pos[out->npos++] = jx_eval(c, s, args->v[i]);
    for (int i = 0, k = 0; i < args->n; i++) {
        const jnode *kw = args->v[i];
        if (kw->kind != N_KWARG) continue;
        for (int j = 0; j < k; j++)
            if (out->kwk[j].n == kw->s.n && !memcmp(out->kwk[j].p, kw->s.p, kw->s.n))
                jinja_fail(&c->e, kw->line, "the keyword argument '%.*s' is given twice", (int)kw->s.n, kw->s.p);
        out->kwk[k] = kw->s;
        out->kwv[k++] = jx_eval(c, s, kw->a);
    }
}

static jv eval_list(jctx *c, jscope *s, const jnode *n) {
    jlist *l = jx_list(c, n->list.n, n->line);
    l->tuple = n->kind == N_TUPLE;
    for (int i = 0; i < n->list.n; i++) l->v[i] = jx_eval(c, s, n->list.v[i]);
    jv v = {JV_LIST, {0}};
    v.u.l = l;
    return v;
}

static jv eval_dict(jctx *c, jscope *s, const jnode *n) {
    jdict *d = jx_dict(c, n->list.n, n->line);
    for (int i = 0; i < n->list.n; i++) {
        jv k = jx_eval(c, s, n->list.v[i]);
        if (k.t != JV_STR) jinja_fail(&c->e, n->list.v[i]->line, "a dict's keys are strings, not %s", jx_type_name(k));
        jx_dict_set(c, d, k.u.s, jx_eval(c, s, n->list2.v[i]), n->line);
    }
    jv v = {JV_DICT, {0}};
    v.u.d = d;
    return v;
}

static jv call_macro(jctx *c, jscope *s, const jfunc *f, const jargs *a, int line);

static jv eval_call(jctx *c, jscope *s, const jnode *n) {
    jargs a;
    jx_eval_args(c, s, &n->list, &a);
    jv fn = jx_eval(c, s, n->a);
    if (fn.t != JV_FUNC && n->a->kind == N_NAME)
        jinja_fail(&c->e, n->line,
                   fn.t == JV_UNDEF ? "'%.*s' is undefined (not a function)" : "'%.*s' is not a function",
                   (int)(n->a->s.n > 40 ? 40 : n->a->s.n), n->a->s.p);
    if (fn.t != JV_FUNC && n->a->kind == N_MEMBER)
        jinja_fail(&c->e, n->line, "no method '%.*s' here (it is %s)", (int)(n->a->s.n > 40 ? 40 : n->a->s.n),
                   n->a->s.p, jx_type_name(fn));
    if (fn.t == JV_FUNC && fn.u.f->id == F_MACRO) return call_macro(c, s, fn.u.f, &a, n->line);
    return jx_call(c, fn, &a, n->line);
}

static jv eval_unary(jctx *c, jscope *s, const jnode *n) {
    jv x = jx_eval(c, s, n->a);
    if (n->op == OP_NOT) return vbool(!jx_truthy(x));
    if (x.t != JV_INT && x.t != JV_FLOAT && x.t != JV_BOOL)
        jinja_fail(&c->e, n->line, "unary '%c' on %s", n->op == OP_NEG ? '-' : '+', jx_type_name(x));
    double v = x.t == JV_BOOL ? x.u.b : x.u.n;
    return vnum(x.t == JV_FLOAT ? JV_FLOAT : JV_INT, n->op == OP_NEG ? -v : v);
}

static const char *op_name(int op) {
    static const char *names[] = {"not", "-",  "+",  "and", "or", "+",  "-", "~",  "*",  "/",     "//",
                                  "%",   "**", "==", "!=",  "<",  "<=", ">", ">=", "in", "not in"};
    return names[op];
}

static jv arithmetic(jctx *c, int op, jv l, jv r, int line) {
    double a = l.u.n, b = r.u.n;
    jvtype t = l.t == JV_FLOAT || r.t == JV_FLOAT ? JV_FLOAT : JV_INT;
    switch (op) {
    case OP_ADD: return vnum(t, a + b);
    case OP_SUB: return vnum(t, a - b);
    case OP_MUL: return vnum(t, a * b);
    case OP_DIV: return vnum(JV_FLOAT, a / b);
    case OP_FLOORDIV: return vnum(t, floor(a / b));
    case OP_MOD: return vnum(t, fmod(a, b));
    case OP_LT: return vbool(a < b);
    case OP_LE: return vbool(a <= b);
    case OP_GT: return vbool(a > b);
    case OP_GE: return vbool(a >= b);
    default: jinja_fail(&c->e, line, "cannot apply '%s' to two numbers", op_name(op));
    }
}

static jv power(jctx *c, jv l, jv r, int line) {
    double a = l.t == JV_BOOL ? l.u.b : l.u.n, b = r.t == JV_BOOL ? r.u.b : r.u.n;
    if (a == 0 && b < 0) jinja_fail(&c->e, line, "0 cannot be raised to a negative power");
    double v = pow(a, b);
    if (!isfinite(v)) jinja_fail(&c->e, line, "'**' gives a number that is not finite");
    return vnum(l.t == JV_FLOAT || r.t == JV_FLOAT || b < 0 ? JV_FLOAT : JV_INT, v);
}

static jv concat(jctx *c, jv l, jv r, int line) {
    jsb b = {0};
    jx_raw_str(c, &b, l, line);
    jx_raw_str(c, &b, r, line);
    return vstr((jstr){b.p ? b.p : "", b.n});
}

static int contains(jctx *c, jstr hay, jstr needle, int line) {
    jx_work(c, (long long)(hay.n >> 2), line);
    if (!needle.n) return 1;
    for (size_t i = 0; i + needle.n <= hay.n; i++)
        if (hay.p[i] == needle.p[0] && !memcmp(hay.p + i, needle.p, needle.n)) return 1;
    return 0;
}

/* After and, or, ==, != and the undefined and none operands: the operators by the operands' types. */
static jv typed_binary(jctx *c, int op, jv l, jv r, int line) {
    int ln = l.t == JV_INT || l.t == JV_FLOAT, rn = r.t == JV_INT || r.t == JV_FLOAT,
        in = op == OP_IN || op == OP_NOTIN;
    if (op == OP_CONCAT) return concat(c, l, r, line);
    if (op == OP_POW && (ln || l.t == JV_BOOL) && (rn || r.t == JV_BOOL)) return power(c, l, r, line);
    if (ln && rn) return arithmetic(c, op, l, r, line);
    if (l.t == JV_LIST && r.t == JV_LIST && op == OP_ADD) {
        jlist *x = jx_list(c, l.u.l->n + r.u.l->n, line);
        memcpy(x->v, l.u.l->v, (size_t)l.u.l->n * sizeof *x->v);
        memcpy(x->v + l.u.l->n, r.u.l->v, (size_t)r.u.l->n * sizeof *x->v);
        jv v = {JV_LIST, {0}};
        v.u.l = x;
        return v;
    }
    if (r.t == JV_LIST && l.t != JV_LIST && in) {
        int found = 0;
        for (int i = 0; i < r.u.l->n && !found; i++) found = jx_strict_eq(r.u.l->v[i], l);
        jx_work(c, r.u.l->n, line);
        return vbool(found == (op == OP_IN));
    }
    if ((l.t == JV_STR || r.t == JV_STR) && op == OP_ADD) return concat(c, l, r, line);
    if (l.t == JV_STR && r.t == JV_STR && in) return vbool(contains(c, r.u.s, l.u.s, line) == (op == OP_IN));
    if (l.t == JV_STR && r.t == JV_DICT && in) return vbool(!!jx_dict_get(r.u.d, l.u.s) == (op == OP_IN));
    jinja_fail(&c->e, line, "cannot apply '%s' to %s and %s", op_name(op), jx_type_name(l), jx_type_name(r));
}

static jv eval_binary(jctx *c, jscope *s, const jnode *n) {
    int op = n->op, line = n->line;
    jv l = jx_eval(c, s, n->a);
    if (op == OP_AND) return jx_truthy(l) ? jx_eval(c, s, n->b) : l;
    if (op == OP_OR) return jx_truthy(l) ? l : jx_eval(c, s, n->b);
    jv r = jx_eval(c, s, n->b);
    if (op == OP_EQ || op == OP_NE) return vbool(jx_loose_eq(c, l, r, line) == (op == OP_EQ));
    if (l.t == JV_UNDEF || r.t == JV_UNDEF) {
        if (r.t == JV_UNDEF && (op == OP_IN || op == OP_NOTIN)) return vbool(op == OP_NOTIN);
        jinja_fail(&c->e, line, "cannot apply '%s' to an undefined value", op_name(op));
    }
    if (l.t == JV_NONE || r.t == JV_NONE) jinja_fail(&c->e, line, "cannot apply '%s' to none", op_name(op));
    return typed_binary(c, op, l, r, line);
}

static jv jx_eval(jctx *c, jscope *s, const jnode *n) {
    jx_work(c, 1, n->line);
    switch (n->kind) {
    case N_TEXT:
    case N_STR: return vstr(n->s);
    case N_INT: return vnum(JV_INT, n->num);
    case N_FLOAT: return vnum(JV_FLOAT, n->num);
    case N_NAME: {
        jv *v = lookup(s, n->s);
        return v ? *v : undef;
    }
    case N_LIST:
    case N_TUPLE: return eval_list(c, s, n);
    case N_DICT: return eval_dict(c, s, n);
    case N_MEMBER: return jx_member(c, jx_eval(c, s, n->a), vstr(n->s), n->line);
    case N_INDEX: {
        jv obj = jx_eval(c, s, n->a);
        return jx_member(c, obj, jx_eval(c, s, n->b), n->line);
    }
    case N_SLICE: {
        jv obj = jx_eval(c, s, n->a), part[3];
        for (int i = 0; i < 3; i++) part[i] = n->list.v[i] ? jx_eval(c, s, n->list.v[i]) : undef;
        return jx_slice(c, obj, part[0], part[1], part[2], n->line);
    }
    case N_CALL: return eval_call(c, s, n);
    case N_UNARY: return eval_unary(c, s, n);
    case N_BINARY: return eval_binary(c, s, n);
    case N_FILTER: return jx_filter(c, s, n, jx_eval(c, s, n->a));
    case N_TEST: return vbool(jx_test(c, n->s, jx_eval(c, s, n->a), NULL, n->line) != n->op);
    case N_SELECT: return jx_truthy(jx_eval(c, s, n->b)) ? jx_eval(c, s, n->a) : undef;
    case N_TERNARY: return jx_eval(c, s, jx_truthy(jx_eval(c, s, n->a)) ? n->b : n->c);
    default: jinja_fail(&c->e, n->line, "a statement where an expression was expected");
    }
}

/* ---- statements ---- */

static int exec_block(jctx *c, jscope *s, const jnodes *body);

/* The names of a for loop or a set bound to v. */
static void bind(jctx *c, jscope *s, const jnode *target, jv v, int line) {
    if (target->kind == N_NAME) return assign(c, s, target->s, v, line);
    if (v.t != JV_LIST) jinja_fail(&c->e, line, "cannot unpack %s into %d names", jx_type_name(v), target->list.n);
    if (v.u.l->n != target->list.n)
        jinja_fail(&c->e, line, "%d values to unpack into %d names", v.u.l->n, target->list.n);
    for (int i = 0; i < target->list.n; i++) assign(c, s, target->list.v[i]->s, v.u.l->v[i], line);
}

static int exec_set(jctx *c, jscope *s, const jnode *n) {
    jv v;
    if (n->b) {
        v = jx_eval(c, s, n->b);
    } else { /* {% set x %}...{% endset %}: the text of the body */
        size_t mark = c->out.n;
        int r = exec_block(c, s, &n->list);
        v = jx_cstr(c, c->out.p ? c->out.p + mark : "", c->out.n - mark, n->line);
        c->out.n = mark;
        if (r) return r;
    }
    const jnode *t = n->a;
    if (t->kind != N_MEMBER) {
        bind(c, s, t, v, n->line);
        return EXEC_OK;
    }
    jv obj = jx_eval(c, s, t->a);
    if (obj.t != JV_NS)
        jinja_fail(&c->e, n->line, "'set' can assign an attribute of a namespace only, not of %s", jx_type_name(obj));
    jx_dict_set(c, obj.u.d, t->s, v, n->line);
    return EXEC_OK;
}

static jstr loop_keys[] = {{"index", 5}, {"index0", 6}, {"revindex", 8}, {"revindex0", 9}, {"first", 5},
                           {"last", 4},  {"length", 6}, {"previtem", 8}, {"nextitem", 8}};

static jv loop_info(jctx *c, const jv *items, int i, int n, int line) {
    jdict *d = jx_alloc(c, sizeof *d, line);
    d->n = d->cap = 9;
    d->k = loop_keys;
    d->v = jx_alloc(c, 9 * sizeof *d->v, line);
    d->v[0] = vnum(JV_INT, i + 1), d->v[1] = vnum(JV_INT, i);
    d->v[2] = vnum(JV_INT, n - i), d->v[3] = vnum(JV_INT, n - i - 1);
    d->v[4] = vbool(i == 0), d->v[5] = vbool(i == n - 1), d->v[6] = vnum(JV_INT, n);
    d->v[7] = i > 0 ? items[i - 1] : undef;
    d->v[8] = i < n - 1 ? items[i + 1] : undef;
    jv v = {JV_DICT, {0}};
    v.u.d = d;
    return v;
}

/* The items a for loop goes over: a list's, a dict's keys; those its `if` keeps. */
static jv *loop_items(jctx *c, jscope *scope, const jnode *n, int *count) {
    jv it = jx_eval(c, scope, n->b);
    if (it.t == JV_DICT) {
        jlist *keys = jx_list(c, it.u.d->n, n->line);
        for (int i = 0; i < it.u.d->n; i++) keys->v[i] = vstr(it.u.d->k[i]);
        it.t = JV_LIST;
        it.u.l = keys;
    }
    if (it.t != JV_LIST) jinja_fail(&c->e, n->line, "cannot loop over %s", jx_type_name(it));
    jv *items = jx_alloc(c, (size_t)(it.u.l->n + 1) * sizeof *items, n->line);
    int k = 0;
    for (int i = 0; i < it.u.l->n; i++) {
        jv x = it.u.l->v[i];
        if (n->a->kind == N_TUPLE && x.t == JV_LIST && x.u.l->tuple)
            jinja_fail(&c->e, n->line, "cannot unpack a tuple in a for loop");
        if (n->c) {
            jscope *test_scope = new_scope(c, scope, n->line);
            bind(c, test_scope, n->a, x, n->line);
            if (!jx_truthy(jx_eval(c, test_scope, n->c))) continue;
        }
        items[k++] = x;
    }
    *count = k;
    return items;
}

static int exec_for(jctx *c, jscope *s, const jnode *n) {
    jscope *scope = new_scope(c, s, n->line);
    int count, ran = 0;
    jv *items = loop_items(c, scope, n, &count);
    for (int i = 0; i < count; i++) {
        assign_c(c, scope, "loop", loop_info(c, items, i, count, n->line));
        bind(c, scope, n->a, items[i], n->line);
        size_t mark = c->out.n;
        int r = exec_block(c, scope, &n->list);
        if (r != EXEC_OK) c->out.n = mark; /* the iteration's text goes */
        if (r == EXEC_BREAK) break;
        if (r == EXEC_OK) ran = 1;
    }
    return ran ? EXEC_OK : exec_block(c, scope, &n->list2);
}

/* ---- macros, call blocks and filter blocks ---- */

static jv macro_value(jctx *c, const jnode *def, jscope *scope, int line) {
    jfunc *f = jx_alloc(c, sizeof *f, line);
    f->id = F_MACRO;
    f->macro = def;
    f->scope = scope;
    jv v = {JV_FUNC, {0}};
    v.u.f = f;
    return v;
}

static int same_name(jstr a, jstr b) { return a.n == b.n && !memcmp(a.p, b.p, a.n); }

/* The arguments that no parameter took (taken[k]: the keyword argument k was): kwargs and varargs
 * when the body reads them (def->op), else an error. */
static void bind_rest(jctx *c, jscope *scope, const jnode *def, const jargs *a, const char *taken, int line) {
    const jnodes *params = &def->list;
    jstr name = def->kind == N_MACRO ? def->s : (jstr){"caller", 6};
    int len = (int)(name.n > 40 ? 40 : name.n), extra = a->npos > params->n ? a->npos - params->n : 0;
    jv kwargs = {JV_DICT, {0}}, varargs = {JV_LIST, {0}};
    kwargs.u.d = jx_dict(c, a->nkw, line);
    for (int k = 0; k < a->nkw; k++) {
        if (taken[k]) continue;
        int twice = 0; /* named, and given by position too */
        for (int i = 0; i < params->n; i++) twice |= same_name(params->v[i]->s, a->kwk[k]);
        if (!(def->op & MACRO_KWARGS))
            jinja_fail(&c->e, line,
                       twice ? "the macro '%.*s' is given '%.*s' twice" : "the macro '%.*s' has no parameter '%.*s'",
                       len, name.p, (int)(a->kwk[k].n > 40 ? 40 : a->kwk[k].n), a->kwk[k].p);
        jx_dict_set(c, kwargs.u.d, a->kwk[k], a->kwv[k], line);
    }
    if (extra && !(def->op & MACRO_VARARGS))
        jinja_fail(&c->e, line, "the macro '%.*s' takes at most %d argument%s", len, name.p, params->n,
                   params->n == 1 ? "" : "s");
    varargs.u.l = jx_list(c, extra, line);
    if (extra) memcpy(varargs.u.l->v, a->pos + params->n, (size_t)extra * sizeof *a->pos);
    if (def->op & MACRO_KWARGS) assign(c, scope, (jstr){"kwargs", 6}, kwargs, line);
    if (def->op & MACRO_VARARGS) assign(c, scope, (jstr){"varargs", 7}, varargs, line);
}

/* The arguments of the call bound to def's parameters in scope, as the reference binds them: by
 * position, else by keyword, else undefined, every parameter before the defaults of those not
 * given are evaluated, in order, in scope (so a default sees the arguments, and the names where the
 * macro is called). */
static void bind_params(jctx *c, jscope *scope, const jnode *def, const jargs *a, int line) {
    const jnodes *params = &def->list;
    jx_work(c, (long long)(params->n + 1) * (params->n + a->nkw + 1), line); /* the searches below */
    char *taken = jx_alloc(c, (size_t)a->nkw + 1, line), *pending = jx_alloc(c, (size_t)params->n + 1, line);
    for (int i = 0; i < params->n; i++) {
        const jnode *p = params->v[i];
        int given = i < a->npos;
        jv v = given ? a->pos[i] : undef;
        for (int k = 0; !given && k < a->nkw; k++)
            if (same_name(a->kwk[k], p->s)) v = a->kwv[k], taken[k] = 1, given = 1;
        pending[i] = !given && p->kind == N_KWARG;
        assign(c, scope, p->s, v, line);
    }
    bind_rest(c, scope, def, a, taken, line);
    for (int i = 0; i < params->n; i++)
        if (pending[i]) assign(c, scope, params->v[i]->s, jx_eval(c, scope, params->v[i]->a), line);
}

/* The text written since mark, taken out of the output. */
static jv take_text(jctx *c, size_t mark, int line) {
    jv v = jx_cstr(c, c->out.p ? c->out.p + mark : "", c->out.n - mark, line);
    c->out.n = mark;
    return v;
}

/* A macro's call: the text of its body. The body's scope is inside the one the macro is called from
 * (the reference looks names up there, not where the macro was defined), or, for a call block's
 * caller(), inside the call block's. The depths of the bodies being called add up to at most
 * JINJA_MAX_NESTING, which bounds the stack as JINJA_MAX_DEPTH does without macros. */
static jv call_macro(jctx *c, jscope *s, const jfunc *f, const jargs *a, int line) {
    const jnode *def = f->macro;
    if ((c->nesting += def->depth + 1) > JINJA_MAX_NESTING)
        jinja_fail(&c->e, line, "macros nest too deep (recursion without an end?)");
    jscope *scope = new_scope(c, f->scope ? f->scope : s, line);
    bind_params(c, scope, def, a, line);
    size_t mark = c->out.n;
    if (exec_block(c, scope, &def->list2) != EXEC_OK) /* the reference would break the caller's loop */
        jinja_fail(&c->e, c->jump_line, "'break' or 'continue' in a macro, outside a loop");
    jv v = take_text(c, mark, line);
    c->nesting -= def->depth + 1;
    return v;
}

/* A value into the output; undefined and none print nothing. */
static void print(jctx *c, jv v, int line) {
    if (v.t != JV_UNDEF && v.t != JV_NONE) jx_to_str(c, &c->out, v, 0, line);
}

/* {% call(params) m(args) %}body{% endcall %}: m called from a scope where caller() renders body. */
static int exec_call_block(jctx *c, jscope *s, const jnode *n) {
    const jnode *call = n->a;
    jargs a;
    jx_eval_args(c, s, &call->list, &a);
    jv fn = jx_eval(c, s, call->a);
    if (fn.t != JV_FUNC || fn.u.f->id != F_MACRO)
        jinja_fail(&c->e, n->line, "'call' calls a macro; '%.*s' is %s", (int)(call->a->s.n > 40 ? 40 : call->a->s.n),
                   call->a->s.p, jx_type_name(fn));
    jscope *with_caller = new_scope(c, s, n->line);
    assign(c, with_caller, (jstr){"caller", 6}, macro_value(c, n, s, n->line), n->line);
    print(c, call_macro(c, with_caller, fn.u.f, &a, n->line), n->line);
    return EXEC_OK;
}

/* {% filter f %}body{% endfilter %}: the body's text (rendered in this scope) through f. */
static int exec_filter_block(jctx *c, jscope *s, const jnode *n) {
    size_t mark = c->out.n;
    int r = exec_block(c, s, &n->list2);
    jv text = take_text(c, mark, n->line);
    if (r != EXEC_OK) return r;
    print(c, jx_filter(c, s, n->a, text), n->line);
    return EXEC_OK;
}

static int exec_node(jctx *c, jscope *s, const jnode *n) {
    jx_work(c, 1, n->line);
    switch (n->kind) {
    case N_TEXT: jx_put(c, &c->out, n->s.p, n->s.n, n->line); return EXEC_OK;
    case N_SET: return exec_set(c, s, n);
    case N_IF: return exec_block(c, s, jx_truthy(jx_eval(c, s, n->a)) ? &n->list : &n->list2);
    case N_FOR: return exec_for(c, s, n);
    case N_BREAK:
    case N_CONTINUE: c->jump_line = n->line; return n->kind == N_BREAK ? EXEC_BREAK : EXEC_CONTINUE;
    case N_MACRO: assign(c, s, n->s, macro_value(c, n, NULL, n->line), n->line); return EXEC_OK;
    case N_CALL_BLOCK: return exec_call_block(c, s, n);
    case N_FILTER_BLOCK: return exec_filter_block(c, s, n);
    default: print(c, jx_eval(c, s, n), n->line); return EXEC_OK;
    }
}

static int exec_block(jctx *c, jscope *s, const jnodes *body) {
    for (int i = 0; i < body->n; i++) {
        int r = exec_node(c, s, body->v[i]);
        if (r != EXEC_OK) return r;
    }
    return EXEC_OK;
}

static jv builtin(jctx *c, jfunc_id id) {
    jfunc *f = jx_alloc(c, sizeof *f, 0);
    f->id = id;
    jv v = {JV_FUNC, {0}};
    v.u.f = f;
    return v;
}

/* A JSON value as a template value: strings point into the JSON, which outlives the render. */
static jv from_json(jctx *c, const cJSON *j, int depth) {
    if (depth > JINJA_MAX_JSON_DEPTH)
        jinja_fail(&c->e, 0, "the context nests deeper than %d levels", JINJA_MAX_JSON_DEPTH);
    if (cJSON_IsNull(j)) return (jv){JV_NONE, {0}};
    if (cJSON_IsBool(j)) return vbool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double x = j->valuedouble;
        return vnum(x == floor(x) && fabs(x) < 9007199254740992.0 ? JV_INT : JV_FLOAT, x);
    }
    if (cJSON_IsString(j)) return vstr((jstr){j->valuestring, strlen(j->valuestring)});
    int n = cJSON_GetArraySize(j), i = 0;
    const cJSON *e;
    jv v = {cJSON_IsArray(j) ? JV_LIST : JV_DICT, {0}};
    if (cJSON_IsArray(j)) {
        v.u.l = jx_list(c, n, 0);
        cJSON_ArrayForEach(e, j) v.u.l->v[i++] = from_json(c, e, depth + 1);
    } else if (cJSON_IsObject(j)) {
        v.u.d = jx_dict(c, n ? n : 1, 0);
        cJSON_ArrayForEach(e, j)
            jx_dict_set(c, v.u.d, (jstr){e->string, strlen(e->string)}, from_json(c, e, depth + 1), 0);
    } else {
        return undef;
    }
    return v;
}

/* The names every template sees (true, none, range, raise_exception, ...), then either the
 * messages as {role, content} dicts and add_generation_prompt, or every key of the JSON context. */
static jscope *globals(jctx *c, const jinja_message *m, int n, int add_generation_prompt, const cJSON *context,
                       const char *bos, const char *eos) {
    static const char *names[] = {"false", "true", "False", "True"};
    jscope *g = new_scope(c, NULL, 0);
    for (int i = 0; i < 4; i++) assign_c(c, g, names[i], vbool(i & 1));
    assign_c(c, g, "none", (jv){JV_NONE, {0}});
    assign_c(c, g, "None", (jv){JV_NONE, {0}});
    assign_c(c, g, "namespace", builtin(c, F_NAMESPACE));
    assign_c(c, g, "raise_exception", builtin(c, F_RAISE));
    assign_c(c, g, "range", builtin(c, F_RANGE));
    assign_c(c, g, "strftime_now", builtin(c, F_STRFTIME));
    if (bos) assign_c(c, g, "bos_token", vstr((jstr){bos, strlen(bos)}));
    if (eos) assign_c(c, g, "eos_token", vstr((jstr){eos, strlen(eos)}));
    if (context) {
        const cJSON *e;
        cJSON_ArrayForEach(e, context) {
            if (jinja_builtin_name(e->string)) /* request data may not replace what the template relies on */
                jinja_fail(&c->e, 0, "the conversation's '%s' would replace the template's built-in of that name",
                           e->string);
            assign_c(c, g, e->string, from_json(c, e, 1));
        }
        return g;
    }
    jlist *l = jx_list(c, n, 0);
    for (int i = 0; i < n; i++) {
        jdict *d = jx_dict(c, 2, 0);
        const char *role = m[i].role, *content = m[i].content;
        jx_dict_set(c, d, (jstr){"role", 4}, role ? vstr((jstr){role, strlen(role)}) : (jv){JV_NONE, {0}}, 0);
        jx_dict_set(c, d, (jstr){"content", 7}, content ? vstr((jstr){content, strlen(content)}) : (jv){JV_NONE, {0}},
                    0);
        l->v[i] = (jv){JV_DICT, {0}};
        l->v[i].u.d = d;
    }
    jv msgs = {JV_LIST, {0}};
    msgs.u.l = l;
    assign_c(c, g, "messages", msgs);
    assign_c(c, g, "add_generation_prompt", vbool(add_generation_prompt));
    return g;
}

static int render(const jinja_template *t, const jinja_message *messages, int n, int add_generation_prompt,
                  const cJSON *context, const char *bos_token, const char *eos_token, char **out, size_t *out_len,
                  char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    jctx *c = t && out && out_len && n >= 0 && (messages || !n) ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        if (err && errlen) snprintf(err, errlen, t && out && out_len && n >= 0 ? "out of memory" : "invalid arguments");
        return -1;
    }
    c->arena.limit = JINJA_MAX_MEMORY;
    c->out.heap = 1;
    c->e.msg = err;
    c->e.cap = err ? errlen : 0;
    int rc = -1;
    if (setjmp(c->e.jb)) {
        rc = c->raised ? 1 : -1;
        free(c->out.p);
    } else {
        jscope *g = globals(c, messages, n, add_generation_prompt, context, bos_token, eos_token);
        int r = exec_block(c, g, &t->body);
        if (r != EXEC_OK)
            jinja_fail(&c->e, c->jump_line, "'%s' outside a loop", r == EXEC_BREAK ? "break" : "continue");
        jx_put(c, &c->out, "", 1, 0); /* the NUL */
        *out = c->out.p;
        *out_len = c->out.n - 1;
        rc = 0;
    }
    jinja_arena_free(&c->arena);
    free(c);
    return rc;
}

int jinja_render(const jinja_template *t, const jinja_message *messages, int n, int add_generation_prompt,
                 const char *bos_token, const char *eos_token, char **out, size_t *out_len, char *err, size_t errlen) {
    return render(t, messages, n, add_generation_prompt, NULL, bos_token, eos_token, out, out_len, err, errlen);
}

int jinja_render_context(const jinja_template *t, const cJSON *context, const char *bos_token, const char *eos_token,
                         char **out, size_t *out_len, char *err, size_t errlen) {
    if (!cJSON_IsObject(context)) {
        if (err && errlen) snprintf(err, errlen, "the context is not a JSON object");
        return -1;
    }
    return render(t, NULL, 0, 0, context, bos_token, eos_token, out, out_len, err, errlen);
}
