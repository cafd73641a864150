/*
 * kir.c — building the kernel IR (kir.h) and printing it as text (rsrc --print=kernel).
 *
 * The text is for people and tests of the lowering: one statement a line, expressions in prefix
 * form with the operation's name, types after a colon where a variable is declared:
 *
 *   func rsr_kernel_0 kernel(data, x, y, block_begin, block_end)
 *     decl sx:vacc = vzero
 *     for g:int = 0; lt(g, 1); +1
 *       set sx = sum4(sx, index(x, mul(g, 256)))
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ir/kir.h"
#include "rsrc.h"

const char *const kir_type_names[KT_COUNT] = {
    "void", "int",  "i32",    "u32",   "size",  "pu8",   "pi8",   "pu16",   "pu32",   "pi32", "vacc",   "codes",
    "bacc", "pair", "lut16",  "lutv",  "bytes", "i32x4", "u32x4", "pi32x4", "pu32x4", "bool", "vacc16", "xw",
    "v16",  "v32",  "mask64", "plutv", "b64",   "pb64",  "w16",   "pw16",   "y32",    "py32"};
/* clang-format off */
const char *const kir_op_names[KO_COUNT] = {
    [KO_CONST] = "const", [KO_VAR] = "var", [KO_ADD] = "add", [KO_SUB] = "sub", [KO_MUL] = "mul",
    [KO_SHL] = "shl", [KO_LSHR] = "lshr", [KO_AND] = "and", [KO_LT] = "lt", [KO_LE] = "le", [KO_EQ] = "eq",
    [KO_NE] = "ne", [KO_LAND] = "land", [KO_LOR] = "lor", [KO_NEG] = "neg", [KO_SELECT] = "select",
    [KO_CAST] = "cast", [KO_LOAD] = "load", [KO_INDEX] = "index", [KO_REINTERPRET] = "reinterpret",
    [KO_VZERO] = "vzero", [KO_DOT4] = "dot4", [KO_SUM4] = "sum4", [KO_VSUM] = "vsum", [KO_VSUM4] = "vsum4", [KO_FIELD] = "field",
    [KO_BDOT] = "bdot", [KO_BDOTP] = "bdotp", [KO_DOT4P] = "dot4p", [KO_WIDEN] = "widen", [KO_QDOT] = "qdot", [KO_HALF] = "half", [KO_PAIR] = "pair", [KO_XPAIR] = "xpair",
    [KO_MMLA] = "mmla", [KO_LANE] = "lane",
    [KO_VCONST] = "vconst", [KO_XWORDS] = "xwords", [KO_PERMW] = "permw", [KO_MADDW] = "maddw",
    [KO_MSUBW] = "msubw", [KO_PERM2B] = "perm2b", [KO_VLOADB] = "vloadb", [KO_MASK64] = "mask64",
    [KO_DPBUSD] = "dpbusd", [KO_OR] = "or",
    [KO_ISNULL] = "isnull", [KO_ALLOC] = "alloc", [KO_FREE] = "free",

    [KO_THREAD] = "thread", [KO_CTA] = "cta", [KO_DP4A] = "dp4a", [KO_WARP_SUM] = "warp_sum",
    [KO_SHFL_DOWN] = "shfl_down", [KO_SHFL_UP] = "shfl_up", [KO_LDG] = "ldg", [KO_ELEM] = "elem",
    [KO_XOR] = "xor", [KO_DIV] = "div", [KO_SHUFFLE] = "shuffle", [KO_QUARTER] = "quarter", [KO_SPLAT] = "splat",
    [KO_PIN] = "pin", [KO_OPAQUE] = "opaque", [KO_STOREV] = "storev"};
/* clang-format on */

static const char *const param_names[][KIR_MAX_PARAMS] = {
    [KSIG_KERNEL] = {"data", "x", "y", "block_begin", "block_end"},
    [KSIG_BATCH] = {"data", "x", "x_stride", "y", "y_stride", "ntok", "block_begin", "block_end"},
    [KSIG_BLOCK] = {"x", "y"},
    [KSIG_GPU_ENTRY] = {"data", "x", "y"},
    [KSIG_GPU_ROWS] = {"data", "xq", "b", "slice", "lane", "sums"},
    [KSIG_LANES_TRANSPOSE] = {"xu", "x", "x_stride", "m", "cols"},
    [KSIG_LANES_BLOCK] = {"xu", "hdr", "p", "out"},
    [KSIG_LANES_BLOCK2] = {"xu", "hdr", "p", "out", "slot"},
};
static const enum kir_type param_types[][KIR_MAX_PARAMS] = {
    [KSIG_KERNEL] = {KT_PU8, KT_PI8, KT_PI32, KT_I32, KT_I32},
    [KSIG_BATCH] = {KT_PU8, KT_PI8, KT_I32, KT_PI32, KT_I32, KT_I32, KT_I32, KT_I32},
    [KSIG_BLOCK] = {KT_PI8, KT_PI32},
    [KSIG_GPU_ENTRY] = {KT_PU8, KT_PI8, KT_PI32},
    [KSIG_GPU_ROWS] = {KT_PU8, KT_PI8, KT_I32, KT_I32, KT_I32, KT_PI32},
    [KSIG_LANES_TRANSPOSE] = {KT_BYTES, KT_PI8, KT_I32, KT_I32, KT_I32},
    [KSIG_LANES_BLOCK] = {KT_PU8, KT_PU16, KT_PU16, KT_PI32},
    [KSIG_LANES_BLOCK2] = {KT_PU8, KT_PU16, KT_PU16, KT_PI32, KT_SIZE},
};
static const int param_counts[] = {
    [KSIG_KERNEL] = 5,   [KSIG_BATCH] = 8,           [KSIG_BLOCK] = 2,       [KSIG_GPU_ENTRY] = 3,
    [KSIG_GPU_ROWS] = 6, [KSIG_LANES_TRANSPOSE] = 5, [KSIG_LANES_BLOCK] = 4, [KSIG_LANES_BLOCK2] = 5};
static const char *const sig_names[] = {"kernel",   "batch",           "block",       "gpu_entry",
                                        "gpu_rows", "lanes_transpose", "lanes_block", "lanes_block2"};

static void *alloc(kir_module *m, size_t n) {
    void *p = rsrc_arena_alloc(m->arena, n);
    memset(p, 0, n);
    return p;
}

kir_module *kir_open(void) {
    rsrc_arena *a = rsrc_arena_open();
    kir_module *m = rsrc_arena_alloc(a, sizeof *m);
    memset(m, 0, sizeof *m);
    m->arena = a;
    m->last_func = &m->funcs;
    m->last_table = &m->tables;
    return m;
}

void kir_close(kir_module *m) {
    if (m) rsrc_arena_close(m->arena);
}

static const char *vformat(kir_module *m, const char *fmt, va_list ap) {
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) rsrc_fatal("out of memory");
    char *copy = rsrc_arena_printf(m->arena, "%s", s);
    free(s);
    return copy;
}

const char *kir_strf(kir_module *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const char *s = vformat(m, fmt, ap);
    va_end(ap);
    return s;
}

kir_var *kir_var_new(kir_module *m, const char *name, enum kir_type type, int32_t array) {
    kir_var *v = alloc(m, sizeof *v);
    v->name = rsrc_arena_printf(m->arena, "%s", name);
    v->type = type;
    v->array = array;
    v->id = m->nvars++;
    return v;
}

kir_func *kir_func_add(kir_module *m, const char *name, enum kir_sig sig, bool exported) {
    kir_func *f = alloc(m, sizeof *f);
    f->name = rsrc_arena_printf(m->arena, "%s", name);
    f->sig = sig;
    f->exported = exported;
    f->nparams = param_counts[sig];
    for (int i = 0; i < f->nparams; i++) f->param[i] = kir_var_new(m, param_names[sig][i], param_types[sig][i], 0);
    *m->last_func = f;
    m->last_func = &f->next;
    return f;
}

kir_table *kir_table_add(kir_module *m, const char *name, enum kir_sig sig, kir_func **funcs, int32_t count) {
    kir_table *t = alloc(m, sizeof *t);
    t->name = rsrc_arena_printf(m->arena, "%s", name);
    t->sig = sig;
    t->funcs = funcs;
    t->count = count;
    *m->last_table = t;
    m->last_table = &t->next;
    return t;
}

kir_var *kir_param(const kir_func *f, const char *name) {
    for (int i = 0; i < f->nparams; i++)
        if (!strcmp(f->param[i]->name, name)) return f->param[i];
    rsrc_fatal("internal error: %s has no parameter %s", f->name, name);
}

static kir_expr *node(kir_module *m, enum kir_op op, enum kir_type type) {
    kir_expr *e = alloc(m, sizeof *e);
    e->op = op;
    e->type = type;
    return e;
}

kir_expr *kir_const(kir_module *m, enum kir_type type, int64_t v) {
    kir_expr *e = node(m, KO_CONST, type);
    e->imm = v;
    return e;
}

kir_expr *kir_ref(kir_module *m, kir_var *v) {
    kir_expr *e = node(m, KO_VAR, v->array ? KT_PI32 : v->type);
    e->var = v;
    return e;
}

kir_expr *kir_bin(kir_module *m, enum kir_op op, enum kir_type type, kir_expr *a, kir_expr *b) {
    kir_expr *e = node(m, op, type);
    e->a = a, e->b = b;
    return e;
}

kir_expr *kir_cast(kir_module *m, enum kir_type type, kir_expr *a) { return kir_bin(m, KO_CAST, type, a, NULL); }

kir_expr *kir_load(kir_module *m, enum kir_type type, kir_expr *base, kir_expr *index) {
    return kir_bin(m, KO_LOAD, type, base, index);
}

kir_expr *kir_index(kir_module *m, kir_expr *base, kir_expr *offset) {
    return kir_bin(m, KO_INDEX, base->type, base, offset);
}

kir_expr *kir_reinterpret(kir_module *m, enum kir_type type, kir_expr *a) {
    return kir_bin(m, KO_REINTERPRET, type, a, NULL);
}

kir_expr *kir_vec(kir_module *m, enum kir_op op, enum kir_type type, kir_expr *a, kir_expr *b, kir_expr *c,
                  int64_t imm) {
    kir_expr *e = node(m, op, type);
    e->a = a, e->b = b, e->c = c, e->imm = imm;
    return e;
}

kir_expr *kir_lanes(kir_module *m, enum kir_op op, enum kir_type type, kir_expr *a, const int32_t *vals, int32_t n) {
    kir_expr *e = node(m, op, type);
    int32_t *v = alloc(m, (size_t)n * sizeof *v);
    memcpy(v, vals, (size_t)n * sizeof *v);
    e->a = a, e->vals = v, e->nvals = n;
    return e;
}

kir_expr *kir_vec4(kir_module *m, enum kir_op op, kir_expr *a, kir_expr *b, kir_expr *c, kir_expr *d, int64_t imm) {
    kir_expr *e = kir_vec(m, op, KT_VOID, a, b, c, imm);
    e->d = d;
    return e;
}

kir_list kir_list_of(kir_stmt **head) { return (kir_list){head}; }

kir_stmt *kir_stmt_add(kir_module *m, kir_list *l, enum kir_stmt_kind kind) {
    kir_stmt *s = alloc(m, sizeof *s);
    s->kind = kind;
    *l->tail = s;
    l->tail = &s->next;
    return s;
}

kir_stmt *kir_decl(kir_module *m, kir_list *l, kir_var *v, kir_expr *init, bool c_const) {
    kir_stmt *s = kir_stmt_add(m, l, KS_DECL);
    s->var = v, s->init = init, s->c_const = c_const;
    return s;
}

kir_stmt *kir_decl_also(kir_module *m, kir_stmt *decl, kir_var *v, kir_expr *init) {
    kir_stmt *s = alloc(m, sizeof *s);
    s->kind = KS_DECL;
    s->var = v, s->init = init, s->c_const = decl->c_const;
    kir_stmt **at = &decl->more;
    while (*at) at = &(*at)->more;
    *at = s;
    return s;
}

kir_stmt *kir_set(kir_module *m, kir_list *l, kir_var *v, kir_expr *value) {
    kir_stmt *s = kir_stmt_add(m, l, KS_SET);
    s->var = v, s->value = value;
    return s;
}

kir_stmt *kir_store(kir_module *m, kir_list *l, kir_expr *target, kir_expr *index, kir_expr *value) {
    kir_stmt *s = kir_stmt_add(m, l, KS_STORE);
    s->init = target, s->index = index, s->value = value;
    return s;
}

kir_stmt *kir_for(kir_module *m, kir_list *l, kir_var *v, kir_expr *init, kir_expr *cond, int32_t step,
                  kir_list *body) {
    kir_stmt *s = kir_stmt_add(m, l, KS_FOR);
    s->var = v, s->init = init, s->cond = cond, s->step = step;
    *body = kir_list_of(&s->body);
    return s;
}

kir_stmt *kir_for_range(kir_module *m, kir_list *l, kir_var *v, kir_expr *from, kir_expr *to, kir_list *body) {
    return kir_for(m, l, v, from, kir_bin(m, KO_LT, KT_INT, kir_ref(m, v), to), 1, body);
}

kir_stmt *kir_if(kir_module *m, kir_list *l, kir_expr *cond, kir_list *then) {
    kir_stmt *s = kir_stmt_add(m, l, KS_IF);
    s->cond = cond;
    *then = kir_list_of(&s->body);
    return s;
}

kir_stmt *kir_callf(kir_module *m, kir_list *l, const kir_func *f, kir_expr *const *args) {
    kir_stmt *s = kir_stmt_add(m, l, KS_CALLF);
    s->callee = f->name;
    s->nargs = param_counts[f->sig];
    for (int i = 0; i < s->nargs; i++) s->args[i] = args[i];
    return s;
}

kir_stmt *kir_do(kir_module *m, kir_list *l, kir_expr *op) {
    kir_stmt *s = kir_stmt_add(m, l, KS_DO);
    s->value = op;
    return s;
}

bool kir_vector(enum kir_type t) {
    return t == KT_LUTV || t == KT_V16 || t == KT_V32 || t == KT_B64 || t == KT_W16 || t == KT_Y32;
}

/* ---- text ---- */

static void print_expr(FILE *out, const kir_expr *e) {
    switch (e->op) {
    case KO_CONST:
        if (kir_vector(e->type)) break;
        fprintf(out, e->hex ? "0x%llx" : "%lld", (long long)e->imm);
        return;
    case KO_VAR: fputs(e->var->name, out); return;
    case KO_VZERO: fputs("vzero", out); return;
    default: break;
    }
    fprintf(out, "%s", kir_op_names[e->op]);
    bool vector = kir_vector(e->type);
    if (e->op == KO_CAST || e->op == KO_LOAD || e->op == KO_REINTERPRET || e->op == KO_LDG || e->op == KO_VCONST ||
        e->op == KO_PERM2B || e->op == KO_SHUFFLE ||
        (vector && (e->op < KO_VZERO || e->op == KO_OR || e->op == KO_XOR)))
        fprintf(out, ".%s", kir_type_names[e->type]);
    if (e->op == KO_FIELD || e->op == KO_LANE || e->op == KO_XWORDS || e->op == KO_ALLOC || e->op == KO_ELEM ||
        e->op == KO_QUARTER || e->op == KO_HALF)
        fprintf(out, ".%lld", (long long)e->imm);
    if (e->op == KO_MADDW || e->op == KO_MSUBW) fprintf(out, ".0x%llx", (long long)e->imm);
    if (e->vals) {
        fputc('[', out);
        for (int32_t i = 0; i < e->nvals; i++) fprintf(out, "%s%d", i ? " " : "", e->vals[i]);
        fputc(']', out);
    }
    if (e->op == KO_VCONST) return;
    if (e->op == KO_CONST) { /* a vector constant: in every lane */
        fprintf(out, "(%lld)", (long long)e->imm);
        return;
    }
    fputc('(', out);
    const kir_expr *ops[] = {e->a, e->b, e->c, e->d};
    for (int i = 0, n = 0; i < 4; i++)
        if (ops[i]) {
            fputs(n++ ? ", " : "", out);
            print_expr(out, ops[i]);
        }
    fputc(')', out);
}

static void print_var(FILE *out, const kir_var *v) {
    fprintf(out, "%s:%s", v->name, kir_type_names[v->type]);
    if (v->array) fprintf(out, "[%d]%s", v->array, v->align64 ? " align 64" : "");
}

/* A name as printed: `from` and what follows it as `to` and the same (kir_print_renamed). */
typedef struct renaming {
    const char *from, *to;
} renaming;

static void print_name(FILE *out, const char *name, const renaming *rn) {
    size_t n = rn->from ? strlen(rn->from) : 0;
    if (n && !strncmp(name, rn->from, n) && (name[n] == 0 || name[n] == '_'))
        fprintf(out, "%s%s", rn->to, name + n);
    else
        fputs(name, out);
}

static void print_stmts(FILE *out, const kir_stmt *s, int depth, const renaming *rn) {
    for (; s; s = s->next) {
        fprintf(out, "%*s", 2 * depth, "");
        switch (s->kind) {
        case KS_DECL:
            fputs("decl ", out);
            for (const kir_stmt *d = s; d; d = d->more) {
                print_var(out, d->var);
                if (d->init) fputs(" = ", out), print_expr(out, d->init);
                if (d->more) fputs(", ", out);
            }
            break;
        case KS_SET:
            fprintf(out, "set %s = ", s->var->name);
            print_expr(out, s->value);
            break;
        case KS_STORE:
            fputs("store ", out);
            print_expr(out, s->init);
            fputc('[', out);
            print_expr(out, s->index);
            fputs("] = ", out);
            print_expr(out, s->value);
            break;
        case KS_FOR:
            fprintf(out, "for%s ", s->unroll ? ".unroll" : "");
            print_var(out, s->var);
            if (s->init) fputs(" = ", out), print_expr(out, s->init);
            fputs("; ", out);
            print_expr(out, s->cond);
            fprintf(out, s->shift ? "; <<%d\n" : "; %+d\n", s->step);
            print_stmts(out, s->body, depth + 1, rn);
            continue;
        case KS_IF:
            fputs("if ", out);
            print_expr(out, s->cond);
            fputc('\n', out);
            print_stmts(out, s->body, depth + 1, rn);
            continue;
        case KS_CALL:
            fputs("call ", out);
            print_name(out, s->callee, rn);
            fputc('[', out);
            print_expr(out, s->index);
            fputs("](", out);
            print_expr(out, s->args[0]);
            fputs(", ", out);
            print_expr(out, s->args[1]);
            fputc(')', out);
            break;
        case KS_SCOPE:
            fputs("scope\n", out);
            print_stmts(out, s->body, depth + 1, rn);
            continue;
        case KS_UNUSED: fprintf(out, "unused %s", s->var->name); break;
        case KS_DO:
            fputs("do ", out);
            print_expr(out, s->value);
            break;
        case KS_CALLF:
            fputs("call ", out);
            print_name(out, s->callee, rn);
            fputc('(', out);
            for (int i = 0; i < s->nargs; i++) fputs(i ? ", " : "", out), print_expr(out, s->args[i]);
            fputc(')', out);
            break;
        case KS_RETURN: fputs("return", out); break;
        }
        fputc('\n', out);
    }
}

void kir_print_renamed(FILE *out, const kir_module *m, const char *from, const char *to) {
    const renaming rn = {from, to};
    for (const kir_func *f = m->funcs; f; f = f->next) {
        fputs("func ", out);
        print_name(out, f->name, &rn);
        fprintf(out, " %s%s%s%s%s(", sig_names[f->sig], f->exported ? " exported" : "", f->shared ? " shared" : "",
                f->noinline ? " noinline" : "", f->optsize ? " optsize" : "");
        for (int i = 0; i < f->nparams; i++) fprintf(out, "%s%s", i ? ", " : "", f->param[i]->name);
        fputs(")\n", out);
        print_stmts(out, f->body, 1, &rn);
    }
    for (const kir_table *t = m->tables; t; t = t->next) {
        fputs("table ", out);
        print_name(out, t->name, &rn);
        fprintf(out, " %s[%d] = ", sig_names[t->sig], t->count);
        if (t->count) print_name(out, t->funcs[0]->name, &rn);
        fputs(" .. ", out);
        if (t->count) print_name(out, t->funcs[t->count - 1]->name, &rn);
        fputc('\n', out);
    }
}
