/*
 * lower.h — what the lowerings share (lower.c for the CPU forms, cuda/compiler/lower_gpu.c for the
 * GPU's): the state of one lowering and shorthands for building expressions.
 */
#ifndef RSRC_LOWER_H
#define RSRC_LOWER_H

#include "ir/kir.h"

struct rsrc_kernel;

typedef struct lower {
    kir_module *m;
    const struct rsrc_kernel *kn;
    kir_func *f;
} lower;

/* ---- expression shorthands ---- */
static inline kir_expr *num(lower *L, int64_t v) { return kir_const(L->m, KT_I32, v); }
static inline kir_expr *size(lower *L, int64_t v) { return kir_const(L->m, KT_SIZE, v); }
/* a constant the C printer writes in hexadecimal (a mask) */
static inline kir_expr *hex(lower *L, enum kir_type t, int64_t v) {
    kir_expr *e = kir_const(L->m, t, v);
    e->hex = true;
    return e;
}
static inline kir_expr *ref(lower *L, kir_var *v) { return kir_ref(L->m, v); }
static inline kir_expr *param(lower *L, const char *name) { return kir_ref(L->m, kir_param(L->f, name)); }
static inline kir_expr *add(lower *L, kir_expr *a, kir_expr *b) { return kir_bin(L->m, KO_ADD, a->type, a, b); }
static inline kir_expr *sub(lower *L, kir_expr *a, kir_expr *b) { return kir_bin(L->m, KO_SUB, a->type, a, b); }
static inline kir_expr *mul(lower *L, kir_expr *a, kir_expr *b) { return kir_bin(L->m, KO_MUL, a->type, a, b); }
static inline kir_expr *lt(lower *L, kir_expr *a, kir_expr *b) { return kir_bin(L->m, KO_LT, KT_INT, a, b); }
static inline kir_expr *wide(lower *L, kir_expr *a) { return kir_cast(L->m, KT_SIZE, a); }
static inline kir_expr *idx(lower *L, kir_expr *p, kir_expr *off) { return kir_index(L->m, p, off); }
static inline kir_var *var(lower *L, const char *name, enum kir_type t) { return kir_var_new(L->m, name, t, 0); }
static inline kir_var *array(lower *L, const char *name, int32_t n) { return kir_var_new(L->m, name, KT_I32, n); }
static inline const char *strf(lower *L, const char *fmt, int a, int b) { return kir_strf(L->m, fmt, a, b); }

/* for (int32_t v = from; v < to; v++), its blocks called `label` in LLVM IR */
static inline kir_stmt *loop(lower *L, kir_list *l, const char *name, const char *label, kir_expr *from, kir_expr *to,
                             kir_list *body) {
    kir_stmt *s = kir_for_range(L->m, l, var(L, name, KT_I32), from, to, body);
    s->label = label;
    return s;
}

#endif
