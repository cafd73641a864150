/*
 * lower.c — a kernel description (kernel.c) as kernel IR (kir.h): the RSR unrolled and loop forms,
 * the lut form and the CPU i2 forms (one token, the tiles of the batched kernel, and the batched
 * RSR lanes pass in front of them; per unit of columns, with the rows across or in the lanes). What each form computes and why is in kernel.c's header; this
 * file says it once in the IR, and the printers translate.
 * The GPU forms are lowered by cuda/compiler/lower_gpu.c, with the shorthands of lower.h.
 */
#include <stdlib.h>
#include <string.h>

#include "ir/kir.h"
#include "ir/lower.h"
#include "print/printer.h"
#include "rsrc.h"

/* ---- RSR: the unrolled and loop forms ---- */

/* What the C printer says above an RSR kernel: its shape and its index. */
static const char *segments_comment(lower *L) {
    const rsrc_plan *p = L->kn->plan;
    return kir_strf(L->m, "%s: %dx%d, %s, k=%d, %d blocks, %llu segments, %llu columns kept", L->kn->strategy, p->rows,
                    p->cols, p->binary ? "binary" : "ternary", p->k, p->num_blocks, (unsigned long long)p->num_segments,
                    (unsigned long long)p->num_cols_kept);
}

/* RSR++ fold of U[2^k] into the k row sums: row r = 2·Σ_{bit r set} U − total, U halved in place. */
static void lower_fold(lower *L, kir_list *l, int k, kir_var *U, kir_var *total, kir_var *acc) {
    kir_module *m = L->m;
    kir_list body, sum, halve;
    kir_var *r = var(L, "r", KT_INT), *half = var(L, "half", KT_I32), *pos = var(L, "pos", KT_I32);
    kir_for_range(m, l, r, num(L, 0), num(L, k), &body)->unroll = true;
    kir_expr *shift = sub(L, sub(L, num(L, k), ref(L, r)), num(L, 1));
    kir_stmt *d = kir_decl(m, &body, half, kir_bin(m, KO_SHL, KT_INT, num(L, 1), shift), false);
    kir_decl_also(m, d, pos, num(L, 0));
    kir_var *j = var(L, "j", KT_INT);
    kir_stmt *f = kir_for_range(m, &body, j, num(L, 0), ref(L, half), &sum);
    f->unroll = true, f->layout = KL_SAME_LINE;
    kir_expr *odd = add(L, mul(L, num(L, 2), ref(L, j)), num(L, 1));
    kir_set(m, &sum, pos, add(L, ref(L, pos), kir_load(m, KT_I32, ref(L, U), odd)));
    kir_store(m, &body, ref(L, acc), ref(L, r), sub(L, mul(L, num(L, 2), ref(L, pos)), ref(L, total)));
    j = var(L, "j", KT_INT);
    f = kir_for_range(m, &body, j, num(L, 0), ref(L, half), &halve);
    f->unroll = true, f->layout = KL_SAME_LINE;
    kir_expr *even = mul(L, num(L, 2), ref(L, j));
    odd = add(L, mul(L, num(L, 2), ref(L, j)), num(L, 1));
    kir_store(m, &halve, ref(L, U), ref(L, j),
              add(L, kir_load(m, KT_I32, ref(L, U), even), kir_load(m, KT_I32, ref(L, U), odd)));
}

/* acc[r] += u or -= u, on the line before */
static void lower_digit(lower *L, kir_list *l, kir_var *acc, int r, int d, kir_var *u) {
    kir_expr *a = kir_load(L->m, KT_I32, ref(L, acc), num(L, r));
    kir_stmt *s = kir_store(L->m, l, ref(L, acc), num(L, r), d > 0 ? add(L, a, ref(L, u)) : sub(L, a, ref(L, u)));
    s->join = true;
}

/* One function per block (many small functions compile far faster than one giant one), the
 * column indices immediate offsets, dispatched through a table; a block writes its rows to y. */
static void lower_unrolled(lower *L) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    const rsrc_plan *p = kn->plan;
    kir_func **blocks = rsrc_arena_alloc(m->arena, sizeof *blocks * (size_t)(p->num_blocks ? p->num_blocks : 1));
    for (int32_t b = 0; b < p->num_blocks; b++) {
        L->f = blocks[b] = kir_func_add(m, kir_strf(m, "%s_b%d", kn->symbol, b), KSIG_BLOCK, false);
        L->f->noinline = true; /* keeps the optimiser linear */
        kir_list l = kir_list_of(&L->f->body);
        kir_var *acc = array(L, "acc", p->k), *u = var(L, "u", KT_I32), *U = NULL, *total = NULL;
        kir_decl_also(m, kir_decl(m, &l, acc, num(L, 0), false), u, NULL);
        if (p->binary) {
            U = array(L, "U", 1 << p->k), total = var(L, "total", KT_I32);
            kir_decl_also(m, kir_decl(m, &l, U, num(L, 0), false), total, num(L, 0));
        }
        const uint16_t *col = p->perm + p->block_col[b];
        for (uint32_t s = p->block_seg[b]; s < p->block_seg[b + 1]; s++) {
            kir_expr *sum = NULL;
            for (uint32_t j = 0; j < p->seg_len[s]; j++) {
                kir_expr *xj = kir_load(m, KT_I32, param(L, "x"), num(L, *col++));
                sum = sum ? add(L, sum, xj) : xj;
            }
            kir_set(m, &l, u, sum);
            if (p->binary) {
                kir_store(m, &l, ref(L, U), num(L, p->seg_code[s]), ref(L, u))->join = true;
                kir_set(m, &l, total, add(L, ref(L, total), ref(L, u)))->join = true;
                continue;
            }
            for (int r = 0; r < p->k; r++) {
                int d = rsrc_code_digit(p, p->seg_code[s], r);
                if (d) lower_digit(L, &l, acc, r, d, u);
            }
        }
        if (p->binary) lower_fold(L, &l, p->k, U, total, acc);
        kir_stmt_add(m, &l, KS_UNUSED)->var = u;
        for (int r = 0; r < p->k && b * p->k + r < p->rows; r++)
            kir_store(m, &l, param(L, "y"), num(L, b * p->k + r), kir_load(m, KT_I32, ref(L, acc), num(L, r)));
    }
    kir_table *t = kir_table_add(m, kir_strf(m, "%s_block", kn->symbol), KSIG_BLOCK, blocks, p->num_blocks);
    L->f = kir_func_add(m, kn->symbol, KSIG_KERNEL, true);
    L->f->comment = segments_comment(L);
    kir_list l = kir_list_of(&L->f->body), body;
    kir_stmt_add(m, &l, KS_UNUSED)->var = kir_param(L->f, "data");
    kir_stmt *fb = loop(L, &l, "b", "block", param(L, "block_begin"), param(L, "block_end"), &body);
    fb->layout = KL_SAME_LINE;
    kir_stmt *call = kir_stmt_add(m, &body, KS_CALL);
    call->callee = t->name;
    call->index = ref(L, fb->var);
    call->args[0] = param(L, "x"), call->args[1] = param(L, "y");
}

/* An expression of row r of a block (ctx: the caller's). */
typedef kir_expr *(*row_fn)(lower *L, int r, void *ctx);

/* y[index(r)] = value(r) for the R rows of block b (index NULL: y[b·R + r]), each under
 * `b·R + r < rows` where the last block is partial. */
static void store_rows(lower *L, kir_list *l, kir_var *b, int R, row_fn index, row_fn value, void *ctx) {
    const bool partial = L->kn->rows % R != 0;
    for (int r = 0; r < R; r++) {
        kir_expr *row = add(L, mul(L, ref(L, b), num(L, R)), num(L, r));
        kir_list at = *l, then;
        if (partial) {
            kir_if(L->m, l, lt(L, row, num(L, L->kn->rows)), &then)->layout = KL_SAME_LINE;
            at = then;
        }
        kir_store(L->m, &at, param(L, "y"), index ? index(L, r, ctx) : row, value(L, r, ctx));
        if (!partial) *l = at;
    }
}

static kir_expr *acc_row(lower *L, int r, void *acc) { return kir_load(L->m, KT_I32, ref(L, acc), num(L, r)); }

/* The loop: k, rows and the data layout are constants; the index is data (kernel.c). */
static void lower_loop(lower *L) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    const rsrc_plan *p = kn->plan;
    int k = p->k;
    L->f = kir_func_add(m, kn->symbol, KSIG_KERNEL, true);
    L->f->comment = segments_comment(L);
    kir_list l = kir_list_of(&L->f->body), blk, seg, col_loop, digits;
    struct {
        const char *name;
        enum kir_type type;
        uint64_t off;
        kir_var *v;
    } tab[] = {{"block_seg", KT_PU32, kn->off_block_seg, NULL},
               {"block_col", KT_PU32, kn->off_block_col, NULL},
               {"seg", KT_PU32, kn->off_seg, NULL},
               {"perm", KT_PU16, kn->off_perm, NULL}};
    for (int i = 0; i < 4; i++) {
        tab[i].v = var(L, tab[i].name, tab[i].type);
        kir_expr *at = kir_reinterpret(m, tab[i].type, idx(L, param(L, "data"), size(L, (int64_t)tab[i].off)));
        kir_decl(m, &l, tab[i].v, at, true);
    }
    kir_var *block_seg = tab[0].v, *block_col = tab[1].v, *segs = tab[2].v, *perm = tab[3].v;
    kir_var *b = loop(L, &l, "b", "block", param(L, "block_begin"), param(L, "block_end"), &blk)->var;
    kir_var *acc = array(L, "acc", k), *U = NULL, *total = NULL;
    kir_decl(m, &blk, acc, num(L, 0), false);
    if (p->binary) {
        U = array(L, "U", 1 << k), total = var(L, "total", KT_I32);
        kir_decl_also(m, kir_decl(m, &blk, U, num(L, 0), false), total, num(L, 0));
    }
    kir_var *col = var(L, "col", KT_PU16);
    kir_decl(m, &blk, col, idx(L, ref(L, perm), kir_load(m, KT_U32, ref(L, block_col), ref(L, b))), false);
    kir_var *s = var(L, "s", KT_U32);
    kir_expr *s1 = kir_load(m, KT_U32, ref(L, block_seg), add(L, ref(L, b), num(L, 1)));
    kir_for_range(m, &blk, s, kir_load(m, KT_U32, ref(L, block_seg), ref(L, b)), s1, &seg)->label = "segment";
    kir_var *code = var(L, "code", KT_U32), *len = var(L, "len", KT_U32), *u = var(L, "u", KT_I32);
    kir_expr *mask = hex(L, KT_U32, 0xffff);
    kir_stmt *d =
        kir_decl(m, &seg, code, kir_bin(m, KO_AND, KT_U32, kir_load(m, KT_U32, ref(L, segs), ref(L, s)), mask), false);
    kir_decl_also(m, d, len,
                  kir_bin(m, KO_LSHR, KT_U32, kir_load(m, KT_U32, ref(L, segs), ref(L, s)), kir_const(m, KT_U32, 16)));
    kir_decl(m, &seg, u, num(L, 0), false);
    kir_var *j = var(L, "j", KT_U32);
    kir_stmt *cl = kir_for_range(m, &seg, j, kir_const(m, KT_U32, 0), ref(L, len), &col_loop);
    cl->layout = KL_SAME_LINE, cl->label = "column";
    kir_expr *xj = kir_load(m, KT_I32, param(L, "x"), kir_load(m, KT_U32, ref(L, col), ref(L, j)));
    kir_set(m, &col_loop, u, add(L, ref(L, u), xj));
    kir_set(m, &seg, col, idx(L, ref(L, col), ref(L, len)));
    if (p->binary) {
        kir_store(m, &seg, ref(L, U), ref(L, code), ref(L, u));
        kir_set(m, &seg, total, add(L, ref(L, total), ref(L, u)));
        lower_fold(L, &blk, k, U, total, acc);
    } else {
        /* acc[r] += digit(code, r) · u, the digit decoded as rsrc_code_digit does */
        kir_var *r = var(L, "r", KT_INT);
        kir_stmt *f = kir_for_range(m, &seg, r, num(L, 0), num(L, k), &digits);
        f->unroll = true, f->layout = KL_NEXT_LINE;
        kir_expr *one = kir_const(m, KT_U32, 1);
        kir_expr *pos =
            kir_bin(m, KO_AND, KT_U32, kir_bin(m, KO_LSHR, KT_U32, ref(L, code), add(L, num(L, k), ref(L, r))), one);
        kir_expr *neg = kir_bin(m, KO_AND, KT_U32, kir_bin(m, KO_LSHR, KT_U32, ref(L, code), ref(L, r)), one);
        kir_expr *digit = sub(L, kir_cast(m, KT_I32, pos), kir_cast(m, KT_I32, neg));
        kir_expr *a = kir_load(m, KT_I32, ref(L, acc), ref(L, r));
        kir_store(m, &digits, ref(L, acc), ref(L, r), add(L, a, mul(L, digit, ref(L, u))));
    }
    store_rows(L, &blk, b, k, NULL, acc_row, acc);
}

/* ---- i2 (kernel.c, KF_I2): dot products of 4 rows per group against x ---- */

static kir_expr *vsum_minus(lower *L, int r, void *ctx) {
    kir_var **v = ctx; /* a[0..R), then sum_x */
    kir_expr *s = kir_vec(L->m, KO_VSUM, KT_I32, ref(L, v[r]), NULL, NULL, 0);
    return sub(L, s, ref(L, v[L->kn->block_rows]));
}

/* Row r's group product: a[r] = dot4(a[r], row r's codes of group g, xg); with pair sums (AVX2)
 * into h[r], the 16-bit sums widened into a[r] by the caller. */
static void i2_group(lower *L, kir_list *gl, kir_var *w, kir_var *g, kir_var **a, kir_var **h) {
    kir_module *m = L->m;
    int V = L->kn->vec_bytes, R = L->kn->block_rows;
    kir_var *xv = var(L, "xg", KT_PI8);
    kir_decl(m, gl, xv, idx(L, param(L, "x"), mul(L, ref(L, g), num(L, 4 * V))), true);
    for (int r = 0; r < R; r++) {
        kir_expr *wr = idx(L, idx(L, ref(L, w), num(L, r * V)), mul(L, ref(L, g), num(L, R * V)));
        kir_var *acc = h ? h[r] : a[r];
        kir_set(m, gl, acc, kir_vec(m, h ? KO_DOT4P : KO_DOT4, acc->type, ref(L, acc), wr, ref(L, xv), 0));
    }
}

/* ---- runs of groups on a pair-sums ISA (dot_isa_pair_sums): vpmaddubsw's 16-bit pair sums
 * added for at most dot_pair_sums_groups() groups (exact: kernel.c), widened once a run ---- */

/* Groups a run takes: runs of nearly equal length (a short last run would be unrolled whole, its
 * x hoisted and spilled). */
static int run_groups(const rsrc_kernel *kn) {
    const int most = dot_pair_sums_groups(), runs = (kn->groups + most - 1) / most;
    return runs > 0 ? (kn->groups + runs - 1) / runs : 1;
}

/* The loop over the runs: returns its body, *g0 the run's first group. */
static kir_list runs_open(lower *L, kir_list *l, kir_var **g0) {
    const int groups = L->kn->groups, run = run_groups(L->kn);
    kir_list rl;
    *g0 = var(L, "g0", KT_I32);
    kir_stmt *fr = kir_for(L->m, l, *g0, num(L, 0), lt(L, ref(L, *g0), num(L, groups)), run, &rl);
    fr->label = "run";
    return rl;
}

/* The run's groups g0 .. its end (the last run's end the block's): the group loop, its body in *gl. */
static kir_stmt *runs_groups(lower *L, kir_list *rl, kir_var *g0, kir_list *gl) {
    const int groups = L->kn->groups, run = run_groups(L->kn);
    kir_var *end = var(L, "end", KT_I32);
    kir_expr *last = add(L, ref(L, g0), num(L, run));
    if (groups % run) {
        kir_expr *in = lt(L, add(L, ref(L, g0), num(L, run)), num(L, groups));
        last = kir_vec(L->m, KO_SELECT, KT_I32, in, last, num(L, groups), 0);
    }
    kir_decl(L->m, rl, end, last, true);
    return loop(L, rl, "g", "group", ref(L, g0), ref(L, end), gl);
}

static kir_var *pair_sums_zero(lower *L, kir_list *l, const char *name) {
    kir_var *h = var(L, name, KT_VACC16);
    kir_decl(L->m, l, h, kir_vec(L->m, KO_VZERO, KT_VACC16, NULL, NULL, NULL, 0), false);
    return h;
}

static void pair_sums_widen(lower *L, kir_list *l, kir_var *acc, kir_var *h) {
    kir_set(L->m, l, acc, kir_vec(L->m, KO_WIDEN, acc->type, ref(L, acc), ref(L, h), NULL, 0));
}

/* Σx once per call, then per block of 4 rows one pass over the groups, x shared by the rows. On a
 * pair-sums ISA (dot_isa_pair_sums) the groups go in runs of dot_pair_sums_groups(), summed in
 * 16-bit lanes and widened once per run. */
static void lower_i2(lower *L) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    int V = kn->vec_bytes, R = kn->block_rows, rb = i2_row_bytes(kn);
    L->f = kir_func_add(m, kn->symbol, KSIG_KERNEL, true);
    L->f->comment = kir_strf(m, "%s: %dx%d, %d rows per block, %d groups of %d columns, %s", kn->strategy, kn->rows,
                             kn->cols, R, kn->groups, 4 * V, dot_isa_names[kn->isa]);
    kir_list l = kir_list_of(&L->f->body), gl, blk;
    kir_var *sx = var(L, "sx", KT_VACC), *sum_x = var(L, "sum_x", KT_I32);
    kir_decl(m, &l, sx, kir_vec(m, KO_VZERO, KT_VACC, NULL, NULL, NULL, 0), false);
    kir_stmt *f = loop(L, &l, "g", "sumx", num(L, 0), num(L, kn->groups), &gl);
    f->layout = KL_SAME_LINE;
    kir_expr *xg = idx(L, param(L, "x"), mul(L, ref(L, f->var), num(L, 4 * V)));
    kir_set(m, &gl, sx, kir_vec(m, KO_SUM4, KT_VACC, ref(L, sx), xg, NULL, 0));
    kir_decl(m, &l, sum_x, kir_vec(m, KO_VSUM, KT_I32, ref(L, sx), NULL, NULL, 0), true);
    kir_var *b = loop(L, &l, "b", "block", param(L, "block_begin"), param(L, "block_end"), &blk)->var;
    kir_var *w = var(L, "w", KT_PU8), *a[9], *h[8];
    kir_decl(m, &blk, w, idx(L, param(L, "data"), mul(L, wide(L, ref(L, b)), size(L, (int64_t)R * rb))), true);
    for (int r = 0; r < R; r++) {
        a[r] = var(L, strf(L, "a%d", r, 0), KT_VACC);
        kir_decl(m, &blk, a[r], kir_vec(m, KO_VZERO, KT_VACC, NULL, NULL, NULL, 0), false);
    }
    a[R] = sum_x;
    if (!dot_isa_pair_sums(kn->isa)) {
        f = loop(L, &blk, "g", "group", num(L, 0), num(L, kn->groups), &gl);
        i2_group(L, &gl, w, f->var, a, NULL);
    } else {
        kir_var *g0;
        kir_list rl = runs_open(L, &blk, &g0);
        for (int r = 0; r < R; r++) h[r] = pair_sums_zero(L, &rl, strf(L, "h%d", r, 0));
        f = runs_groups(L, &rl, g0, &gl);
        i2_group(L, &gl, w, f->var, a, h);
        for (int r = 0; r < R; r++) pair_sums_widen(L, &rl, a[r], h[r]);
    }
    store_rows(L, &blk, b, R, NULL, vsum_minus, a);
}

/* One tile of T tokens of block b (at w): every field of the 4 rows is decoded once for the T tokens. */
typedef struct tile_ctx {
    kir_var *a[4][RSR_BATCH_TILE_MAX], *sum_x, *t, *b;
    int j;
} tile_ctx;

/* y[(t + j)·y_stride + b·R + r]: row r of the block for token j of the tile */
static kir_expr *tile_index(lower *L, int r, void *ctx) {
    tile_ctx *c = ctx;
    kir_expr *tj = wide(L, add(L, ref(L, c->t), num(L, c->j)));
    return add(
        L, add(L, mul(L, tj, wide(L, param(L, "y_stride"))), mul(L, wide(L, ref(L, c->b)), size(L, L->kn->block_rows))),
        size(L, r));
}

static kir_expr *tile_value(lower *L, int r, void *ctx) {
    tile_ctx *c = ctx;
    kir_expr *s = kir_vec(L->m, KO_VSUM, KT_I32, ref(L, c->a[r][c->j]), NULL, NULL, 0);
    return sub(L, s, kir_load(L->m, KT_I32, ref(L, c->sum_x), add(L, ref(L, c->t), num(L, c->j))));
}

/* The pieces both tile forms share: the tile's x pointers (x[j]: token t + j), a grid of zeroed
 * accumulators, the loop over the groups of the block at w (returns its body; *g the group,
 * *wg its bytes), and a scope per field i with the R rows' codes decoded. */
static void tile_x(lower *L, kir_list *l, int T, kir_var *t, kir_var **x) {
    for (int j = 0; j < T; j++) {
        x[j] = var(L, strf(L, "x%d", j, 0), KT_PI8);
        kir_expr *at = j ? idx(L, ref(L, x[j - 1]), param(L, "x_stride"))
                         : idx(L, param(L, "x"), mul(L, wide(L, ref(L, t)), wide(L, param(L, "x_stride"))));
        kir_decl(L->m, l, x[j], at, true);
    }
}

static void tile_zero(lower *L, kir_list *l, const char *fmt, int rows, int cols, kir_var *acc[][RSR_BATCH_TILE_MAX]) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            acc[r][j] = var(L, strf(L, fmt, r, j), KT_BACC);
            kir_decl(L->m, l, acc[r][j], kir_vec(L->m, KO_VZERO, KT_BACC, NULL, NULL, NULL, 0), false);
        }
}

/* The loop over steps of k groups of 4V columns (k > 1: the units of i2 per unit wider than a group,
 * units_groups): g, and wg[h] the codes of the step's group h (w + (g·k + h)·block_rows·V). */
static kir_list group_steps(lower *L, kir_list *l, kir_var *w, int k, kir_var **g, kir_var **wg) {
    const rsrc_kernel *kn = L->kn;
    kir_list gl;
    *g = loop(L, l, "g", "group", num(L, 0), num(L, kn->groups / k), &gl)->var;
    for (int h = 0; h < k; h++) {
        wg[h] = var(L, k > 1 ? strf(L, "wg%d", h, 0) : "wg", KT_PU8);
        kir_expr *at = k > 1 ? add(L, mul(L, ref(L, *g), num(L, k)), num(L, h)) : ref(L, *g);
        kir_decl(L->m, &gl, wg[h], idx(L, ref(L, w), mul(L, at, num(L, kn->block_rows * kn->vec_bytes))), true);
    }
    return gl;
}
static kir_list tile_groups(lower *L, kir_list *l, kir_var *w, kir_var **g, kir_var **wg) {
    return group_steps(L, l, w, 1, g, wg);
}

static kir_list tile_field_rows(lower *L, kir_list *gl, kir_var *wg, int i, int r0, int nr, kir_var **codes) {
    kir_list sc = kir_list_of(&kir_stmt_add(L->m, gl, KS_SCOPE)->body);
    for (int r = r0; r < r0 + nr; r++) {
        codes[r] = var(L, strf(L, "c%d", r, 0), KT_CODES);
        kir_expr *field =
            kir_vec(L->m, KO_FIELD, KT_CODES, idx(L, ref(L, wg), num(L, r * L->kn->vec_bytes)), NULL, NULL, i);
        kir_decl(L->m, &sc, codes[r], field, false);
    }
    return sc;
}
static kir_list tile_field(lower *L, kir_list *gl, kir_var *wg, int i, kir_var **codes) {
    return tile_field_rows(L, gl, wg, i, 0, L->kn->block_rows, codes);
}

/* xj + g·4V·k + f·V: field f's columns of step g (of k groups, group_steps) for one token */
static kir_expr *step_xp(lower *L, kir_expr *xj, kir_var *g, int k, int f) {
    const int V = L->kn->vec_bytes;
    return idx(L, idx(L, xj, mul(L, ref(L, g), num(L, 4 * V * k))), num(L, f * V));
}
static kir_expr *tile_xp(lower *L, kir_var *xj, kir_var *g, int i) { return step_xp(L, ref(L, xj), g, 1, i); }

/* ---- i2 summed per unit of columns (kernel.c: kn->unit_cols; docs/numerics.md, "Group scales") ----
 * Σx of each unit read from past x's padding (rsr_x_sums_at: the quantiser's, once a token); per block of 4 rows, each group's fields decoded once, the
 * fields of a unit (1, 2 or 4 of them, or the 8 to 16 of 2 to 4 groups: a step of the loop takes
 * units_groups groups) into one accumulator per row, each unit's sum stored less the unit's Σx
 * at units_at: block by block from the call's first (rsr_artifact_matrix.sums_block), so that a
 * call's sums lie together whatever its blocks. A code of 3 is a weight of +2 (Q2_0), as c − 1
 * reads it. */
typedef struct units_ctx {
    kir_var **acc, *su, *g, *b; /* su: the unit sums of x (x_sums) */
    int unit;                   /* of the step's units */
} units_ctx;

/* Groups of 4V columns a step of the units' loop takes: one, or a unit's when a unit is wider. */
static int units_groups(const rsrc_kernel *kn) {
    const int G = 4 * kn->vec_bytes;
    return kn->unit_cols > G ? kn->unit_cols / G : 1;
}
/* Units whose fields a step of the loop (g) decodes. */
static int units_per_step(const rsrc_kernel *kn) { return 4 * kn->vec_bytes * units_groups(kn) / kn->unit_cols; }

/* The int32 Σx of each unit of the row at x, past its padding (rsr_artifact.h, rsr_x_sums_at) */
static kir_var *x_sums(lower *L, kir_list *l, kir_expr *x, int j) {
    kir_var *s = var(L, strf(L, "sx%d", j, 0), KT_PI32);
    kir_decl(L->m, l, s, kir_reinterpret(L->m, KT_PI32, idx(L, x, size(L, rsr_x_sums_at(L->kn->cols)))), true);
    return s;
}

static kir_expr *unit_of(lower *L, const units_ctx *c) {
    return add(L, mul(L, ref(L, c->g), num(L, units_per_step(L->kn))), num(L, c->unit));
}
/* y index of row r of block b's sums of unit u: (b − block_begin)·units·R + u·R + r */
static kir_expr *units_at(lower *L, kir_var *b, kir_expr *u, int r) {
    const rsrc_kernel *kn = L->kn;
    const int R = kn->unit_stride, units = kn->cols / kn->unit_cols;
    kir_expr *blk = mul(L, wide(L, sub(L, ref(L, b), param(L, "block_begin"))), size(L, (int64_t)units * R));
    return add(L, blk, add(L, mul(L, wide(L, u), size(L, R)), size(L, r)));
}
static kir_expr *units_index(lower *L, int r, void *ctx) {
    units_ctx *c = ctx;
    return units_at(L, c->b, unit_of(L, c), r);
}
static kir_expr *units_sx(lower *L, const units_ctx *c) { /* the unit's Σx */
    return kir_load(L->m, KT_I32, ref(L, c->su), unit_of(L, c));
}
static kir_expr *units_value(lower *L, int r, void *ctx) {
    units_ctx *c = ctx;
    return sub(L, kir_vec(L->m, KO_VSUM, KT_I32, ref(L, c->acc[r]), NULL, NULL, 0), units_sx(L, c));
}

/* Whether a block's four rows of a unit are stored as one vector (store_units4): where the rows
 * are not a whole number of blocks of 4, they go one row at a time (store_rows). */
static bool units_by4(const rsrc_kernel *kn) { return kn->block_rows == 4 && kn->rows % 4 == 0; }

/* Four rows' sums s (KT_I32X4) less the unit's Σx su, stored as one vector at y[at] (any int32). */
static void store_sums4(lower *L, kir_list *l, kir_expr *s, kir_expr *at, kir_expr *su) {
    kir_expr *v = sub(L, s, kir_vec(L->m, KO_SPLAT, KT_I32X4, su, NULL, NULL, 0));
    kir_expr *p = kir_reinterpret(L->m, KT_PI32X4, idx(L, param(L, "y"), at));
    kir_store(L->m, l, p, num(L, 0), v)->align = 4;
}

/* Rows b·4 .. b·4+3 of a unit at once: the four accumulators reduced together (KO_VSUM4, a few
 * shuffles for the four, where each alone takes as many), less the unit's Σx, stored as one
 * vector at y[at]. */
static void store_units4(lower *L, kir_list *l, kir_var **acc, kir_expr *at, kir_expr *su) {
    kir_expr *s = kir_vec4(L->m, KO_VSUM4, ref(L, acc[0]), ref(L, acc[1]), ref(L, acc[2]), ref(L, acc[3]), 0);
    s->type = KT_I32X4;
    store_sums4(L, l, s, at, su);
}

static void lower_i2_units(lower *L) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    const int V = kn->vec_bytes, R = kn->block_rows, rb = i2_row_bytes(kn), U = kn->unit_cols, per = U / V;
    const int fields = 4 * units_groups(kn);
    L->f = kir_func_add(m, kn->symbol, KSIG_KERNEL, true);
    L->f->comment = kir_strf(m, "%s: %dx%d summed per unit of %d columns, %d rows per block, %s", kn->strategy,
                             kn->rows, kn->cols, U, R, dot_isa_names[kn->isa]);
    kir_list l = kir_list_of(&L->f->body), blk;
    kir_var *su = x_sums(L, &l, param(L, "x"), 0);
    kir_var *b = loop(L, &l, "b", "block", param(L, "block_begin"), param(L, "block_end"), &blk)->var;
    kir_var *w = var(L, "w", KT_PU8), *g, *wg[4], *codes[4], *acc[4];
    kir_decl(m, &blk, w, idx(L, param(L, "data"), mul(L, wide(L, ref(L, b)), size(L, (int64_t)R * rb))), true);
    kir_list gl = group_steps(L, &blk, w, units_groups(kn), &g, wg);
    units_ctx uc = {.acc = acc, .su = su, .g = g, .b = b};
    for (int i = 0; i < fields; i++) {
        if (i % per == 0)
            for (int r = 0; r < R; r++) {
                acc[r] = var(L, strf(L, "a%d_%d", r, i / per), KT_BACC);
                kir_decl(m, &gl, acc[r], kir_vec(m, KO_VZERO, KT_BACC, NULL, NULL, NULL, 0), false);
            }
        kir_list sc = tile_field(L, &gl, wg[i / 4], i % 4, codes);
        for (int r = 0; r < R; r++) {
            kir_expr *xp = step_xp(L, param(L, "x"), g, units_groups(kn), i);
            kir_set(m, &sc, acc[r], kir_vec(m, KO_BDOT, KT_BACC, ref(L, acc[r]), ref(L, codes[r]), xp, 0));
        }
        if (i % per != per - 1) continue;
        uc.unit = i / per;
        if (units_by4(kn)) /* row 0's index: the block's four rows from there */
            store_units4(L, &gl, acc, units_index(L, 0, &uc), units_sx(L, &uc));
        else
            store_rows(L, &gl, b, R, units_index, units_value, &uc);
    }
}

/* The same sums for several tokens (rsr_kernel_batch_fn): tiles of kn->batch_tile tokens, then the
 * rest one by one. Per tile, Σx of each unit for its tokens (su[j·units + u]), then every block of
 * the call with each decoded field serving the tile's tokens; token t's sums go to
 * y[t·y_stride + units_at], as the one-token kernel's to y[units_at]. */
typedef struct utile_ctx {
    kir_var *acc[4][RSR_BATCH_TILE_MAX], *su[RSR_BATCH_TILE_MAX], *t, *b, *g; /* su[j]: token j's x_sums */
    int j, unit;                                                              /* token of the tile, unit of the group */
} utile_ctx;

static kir_expr *utile_unit(lower *L, const utile_ctx *c) {
    return add(L, mul(L, ref(L, c->g), num(L, units_per_step(L->kn))), num(L, c->unit));
}
static kir_expr *utile_index(lower *L, int r, void *ctx) {
    utile_ctx *c = ctx;
    kir_expr *tj = wide(L, add(L, ref(L, c->t), num(L, c->j)));
    return add(L, mul(L, tj, wide(L, param(L, "y_stride"))), units_at(L, c->b, utile_unit(L, c), r));
}
static kir_expr *utile_sx(lower *L, const utile_ctx *c) { /* Σx of the unit for token j */
    return kir_load(L->m, KT_I32, ref(L, c->su[c->j]), utile_unit(L, c));
}
static kir_expr *utile_value(lower *L, int r, void *ctx) {
    utile_ctx *c = ctx;
    return sub(L, kir_vec(L->m, KO_VSUM, KT_I32, ref(L, c->acc[r][c->j]), NULL, NULL, 0), utile_sx(L, c));
}

static void lower_units_tile(lower *L, kir_list *l, int T, kir_var *t) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    const int V = kn->vec_bytes, R = kn->block_rows, per = kn->unit_cols / V, fields = 4 * units_groups(kn);
    kir_var *x[RSR_BATCH_TILE_MAX], *g, *wg[4], *codes[4], *w = var(L, "w", KT_PU8);
    tile_x(L, l, T, t, x);
    utile_ctx c = {.t = t};
    for (int j = 0; j < T; j++) c.su[j] = x_sums(L, l, ref(L, x[j]), j);
    kir_list blk;
    kir_var *b = loop(L, l, "b", "block", param(L, "block_begin"), param(L, "block_end"), &blk)->var;
    kir_decl(m, &blk, w, idx(L, param(L, "data"), mul(L, wide(L, ref(L, b)), size(L, (int64_t)R * i2_row_bytes(kn)))),
             true);
    kir_list gl = group_steps(L, &blk, w, units_groups(kn), &g, wg);
    c.b = b, c.g = g;
    for (int i = 0; i < fields; i++) {
        for (int r = 0; i % per == 0 && r < R; r++)
            for (int j = 0; j < T; j++) {
                c.acc[r][j] = var(L, kir_strf(m, "a%d_%d_%d", r, j, i / per), KT_BACC);
                kir_decl(m, &gl, c.acc[r][j], kir_vec(m, KO_VZERO, KT_BACC, NULL, NULL, NULL, 0), false);
            }
        kir_list sc = tile_field(L, &gl, wg[i / 4], i % 4, codes);
        for (int j = 0; j < T; j++)
            for (int r = 0; r < R; r++) {
                kir_expr *dot = kir_vec(m, KO_BDOT, KT_BACC, ref(L, c.acc[r][j]), ref(L, codes[r]),
                                        step_xp(L, ref(L, x[j]), g, units_groups(kn), i), 0);
                kir_set(m, &sc, c.acc[r][j], dot);
            }
        for (c.unit = i / per, c.j = 0; i % per == per - 1 && c.j < T; c.j++) {
            if (!units_by4(kn)) {
                store_rows(L, &gl, b, R, utile_index, utile_value, &c);
                continue;
            }
            kir_var *accj[4] = {c.acc[0][c.j], c.acc[1][c.j], c.acc[2][c.j], c.acc[3][c.j]};
            store_units4(L, &gl, accj, utile_index(L, 0, &c), utile_sx(L, &c));
        }
    }
}

/* The batched kernel of a form per unit: whole tiles of kn->batch_tile tokens, then the rest one by
 * one, each tile lowered by tile (lower_units_tile, or rows_tile for rows in lanes). */
typedef void units_tile_fn(lower *L, kir_list *l, int T, kir_var *t);
static void lower_units_batch(lower *L, units_tile_fn *tile) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    const int T = kn->batch_tile;
    L->f = kir_func_add(m, kn->batch_symbol, KSIG_BATCH, true);
    kir_list l = kir_list_of(&L->f->body), tiles;
    kir_var *t = var(L, "t", KT_I32);
    kir_decl(m, &l, t, num(L, 0), false);
    for (int pass = 0; pass < 2; pass++) { /* whole tiles, then the rest a token at a time */
        int n = pass ? 1 : T;
        kir_expr *cond = pass ? lt(L, ref(L, t), param(L, "ntok"))
                              : kir_bin(m, KO_LE, KT_INT, add(L, ref(L, t), num(L, n)), param(L, "ntok"));
        kir_for(m, &l, t, NULL, cond, n, &tiles)->label = pass ? "rest" : "tile";
        tile(L, &tiles, n, t);
    }
}

/* ---- i2 per unit with rows in lanes (kernel.c, rows_in_lanes) ----
 * Per block of L rows (a row per int32 lane: 4 in a NEON q register, 8 on ymm, 16 on zmm) and
 * unit: each group of 16 columns (V bytes) has its 4 fields decoded once for the tile's tokens; a
 * field (L rows × 4 columns) times the 4 bytes of x at its columns goes into each token's sums
 * (KO_QDOT): with VNNI or sdot straight into the int32 lanes, which start at −Σx of the unit and are stored whole; else into
 * 16-bit pair sums, widened once a run of at most ROWS_RUN groups, the unit's Σx taken off as the
 * rows are stored 4 at a time. */
#define ROWS_RUN 8 /* groups of 16 columns summed in 16 bits: 32 products of at most 2·3·128 each */

typedef struct rows_ctx {
    kir_var **x, **su, *t, *b, *u; /* su[j]: token j's x_sums; t NULL: the one-token kernel */
    int T;
} rows_ctx;

/* y index of rows r .. of the block, unit u, token j of the tile */
static kir_expr *rows_at(lower *L, const rows_ctx *c, int j, int r) {
    kir_expr *at = units_at(L, c->b, ref(L, c->u), r);
    if (!c->t) return at;
    kir_expr *tj = wide(L, add(L, ref(L, c->t), num(L, j)));
    return add(L, mul(L, tj, wide(L, param(L, "y_stride"))), at);
}

static bool rows_vnni(const rsrc_kernel *kn) {
    return kn->isa == DOT_AVXVNNI || kn->isa == DOT_AVX512VNNI || kn->isa == DOT_SDOT || kn->isa == DOT_I8MM; /* sdot */
}

/* Σx of the block's unit for token j of the tile */
static kir_expr *rows_sx(lower *L, const rows_ctx *c, int j) {
    return kir_load(L->m, KT_I32, ref(L, c->su[j]), ref(L, c->u));
}

static void rows_blocks(lower *L, kir_list *l, const rows_ctx *cx) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    const int U = kn->unit_cols, units = kn->cols / U, groups = U / I2_LANE_COLS, T = cx->T;
    const int gbytes = kn->vec_bytes; /* a group's bytes: L rows × 4 columns a field */
    const bool vnni = rows_vnni(kn);
    rows_ctx c = *cx;
    kir_list blk, ul;
    c.b = loop(L, l, "b", "block", param(L, "block_begin"), param(L, "block_end"), &blk)->var;
    kir_var *w = var(L, "w", KT_PU8), *wu = var(L, "wu", KT_PU8), *xu[RSR_BATCH_TILE_MAX];
    kir_var *a[RSR_BATCH_TILE_MAX], *h[RSR_BATCH_TILE_MAX];
    kir_expr *bytes = size(L, (int64_t)kn->block_rows * i2_row_bytes(kn));
    kir_decl(m, &blk, w, idx(L, param(L, "data"), mul(L, wide(L, ref(L, c.b)), bytes)), true);
    c.u = loop(L, &blk, "u", "unit", num(L, 0), num(L, units), &ul)->var;
    kir_decl(m, &ul, wu, idx(L, ref(L, w), mul(L, ref(L, c.u), num(L, groups * gbytes))), true);
    for (int j = 0; j < T; j++) {
        xu[j] = var(L, strf(L, "xu%d", j, 0), KT_PI8);
        kir_decl(m, &ul, xu[j], idx(L, ref(L, c.x[j]), mul(L, ref(L, c.u), num(L, U))), true);
        if (vnni) { /* −Σx of the unit in every lane */
            a[j] = var(L, strf(L, "a%d", j, 0), KT_BACC);
            kir_expr *neg = kir_vec(m, KO_NEG, KT_I32, rows_sx(L, &c, j), NULL, NULL, 0);
            kir_decl(m, &ul, a[j], kir_vec(m, KO_SPLAT, KT_BACC, neg, NULL, NULL, 0), false);
            continue;
        }
        a[j] = var(L, strf(L, "a%d", j, 0), KT_VACC);
        kir_decl(m, &ul, a[j], kir_vec(m, KO_VZERO, KT_VACC, NULL, NULL, NULL, 0), false);
    }
    for (int g0 = 0; g0 < groups; g0 += ROWS_RUN) {
        for (int j = 0; !vnni && j < T; j++) {
            h[j] = var(L, strf(L, "h%d_%d", j, g0 / ROWS_RUN), KT_VACC16);
            kir_decl(m, &ul, h[j], kir_vec(m, KO_VZERO, KT_VACC16, NULL, NULL, NULL, 0), false);
        }
        for (int g = g0; g < groups && g < g0 + ROWS_RUN; g++)
            for (int f = 0; f < 4; f++) {
                kir_var *k = var(L, strf(L, "k%d_%d", g, f), KT_CODES);
                kir_decl(m, &ul, k,
                         kir_vec(m, KO_FIELD, KT_CODES, idx(L, ref(L, wu), num(L, gbytes * g)), NULL, NULL, f), false);
                for (int j = 0; j < T; j++) {
                    kir_expr *xp = idx(L, ref(L, xu[j]), num(L, I2_LANE_COLS * g + 4 * f));
                    kir_var *s = vnni ? a[j] : h[j];
                    kir_set(m, &ul, s, kir_vec(m, KO_QDOT, s->type, ref(L, s), ref(L, k), xp, 0));
                }
            }
        for (int j = 0; !vnni && j < T; j++)
            kir_set(m, &ul, a[j], kir_vec(m, KO_WIDEN, KT_VACC, ref(L, a[j]), ref(L, h[j]), NULL, 0));
    }
    for (int j = 0; j < T; j++) {
        if (vnni) {
            kir_do(m, &ul,
                   kir_vec(m, KO_STOREV, KT_VOID, idx(L, param(L, "y"), rows_at(L, &c, j, 0)), ref(L, a[j]), NULL, 0));
            continue;
        }
        for (int half = 0; half < 2; half++)
            store_sums4(L, &ul, kir_vec(m, KO_HALF, KT_I32X4, ref(L, a[j]), NULL, NULL, half),
                        rows_at(L, &c, j, 4 * half), rows_sx(L, &c, j));
    }
}

static void lower_i2_rows(lower *L) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    L->f = kir_func_add(m, kn->symbol, KSIG_KERNEL, true);
    L->f->comment = kir_strf(m, "%s: %dx%d summed per unit of %d columns, %d rows per block in the lanes, %s",
                             kn->strategy, kn->rows, kn->cols, kn->unit_cols, kn->block_rows, dot_isa_names[kn->isa]);
    kir_list l = kir_list_of(&L->f->body);
    kir_var *x = var(L, "x0", KT_PI8);
    kir_decl(m, &l, x, param(L, "x"), true);
    kir_var *su = x_sums(L, &l, ref(L, x), 0);
    rows_blocks(L, &l, &(rows_ctx){.x = &x, .su = &su, .T = 1});
}

/* One tile of T tokens from t (lower_units_batch): their x, each unit's Σx, the blocks. */
static void rows_tile(lower *L, kir_list *l, int T, kir_var *t) {
    kir_var *x[RSR_BATCH_TILE_MAX], *su[RSR_BATCH_TILE_MAX];
    tile_x(L, l, T, t, x);
    for (int j = 0; j < T; j++) su[j] = x_sums(L, l, ref(L, x[j]), j);
    rows_blocks(L, l, &(rows_ctx){.x = x, .su = su, .t = t, .T = T});
}

/* A group's 4 fields (its codes at wg) for the tile's T tokens and rows r0 .. r0 + nr, each field
 * decoded once: acc[r][j] (row r0 + r, token j) = op(acc[r][j], the field's codes, x[j] there). */
static void tile_fields(lower *L, kir_list *gl, kir_var *wg, kir_var *g, int T, kir_var **x, int r0, int nr,
                        enum kir_op op, kir_var *acc[][RSR_BATCH_TILE_MAX]) {
    kir_var *codes[4];
    for (int i = 0; i < 4; i++) {
        kir_list sc = tile_field_rows(L, gl, wg, i, r0, nr, codes);
        for (int j = 0; j < T; j++)
            for (int r = 0; r < nr; r++) {
                kir_expr *xp = tile_xp(L, x[j], g, i);
                kir_var *a = acc[r][j];
                kir_set(L->m, &sc, a, kir_vec(L->m, op, a->type, ref(L, a), ref(L, codes[r0 + r]), xp, 0));
            }
    }
}

/* A tile on a pair-sums ISA (dot_isa_tile_pair_sums), rows r0 .. r0 + tile_rows of the block at w: each
 * field's vpmaddubsw pair sums added in 16 bits for a run of groups (one multiply per field and
 * token), widened into a[r][j] once a run. */
static void tile_pair_sums(lower *L, kir_list *l, int T, kir_var **x, kir_var *w, int r0,
                           kir_var *a[][RSR_BATCH_TILE_MAX]) {
    const int nr = L->kn->tile_rows;
    kir_var *h[4][RSR_BATCH_TILE_MAX], *g0, *wg = var(L, "wg", KT_PU8);
    kir_list rl = runs_open(L, l, &g0), gl;
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < T; j++) h[r][j] = pair_sums_zero(L, &rl, strf(L, "h%d_%d", r0 + r, j));
    kir_var *g = runs_groups(L, &rl, g0, &gl)->var;
    kir_decl(L->m, &gl, wg, idx(L, ref(L, w), mul(L, ref(L, g), num(L, L->kn->block_rows * L->kn->vec_bytes))), true);
    tile_fields(L, &gl, wg, g, T, x, r0, nr, KO_BDOTP, h);
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < T; j++) pair_sums_widen(L, &rl, a[r0 + r][j], h[r][j]);
}

static void lower_tile(lower *L, kir_list *l, int T, kir_var *t, kir_var *b, kir_var *w, kir_var *sum_x) {
    int R = L->kn->block_rows;
    tile_ctx c = {.sum_x = sum_x, .t = t, .b = b};
    kir_var *x[RSR_BATCH_TILE_MAX], *g, *wg;
    tile_x(L, l, T, t, x);
    tile_zero(L, l, "a%d_%d", R, T, c.a);
    if (dot_isa_tile_pair_sums(L->kn->isa)) {
        if (L->kn->tile_rows <= 0 || R % L->kn->tile_rows)
            rsrc_fatal("internal error: %s: tiles of %d rows in blocks of %d", L->kn->symbol, L->kn->tile_rows, R);
        for (int r0 = 0; r0 < R; r0 += L->kn->tile_rows) tile_pair_sums(L, l, T, x, w, r0, c.a);
    } else {
        kir_list gl = tile_groups(L, l, w, &g, &wg);
        tile_fields(L, &gl, wg, g, T, x, 0, R, KO_BDOT, c.a);
    }
    for (c.j = 0; c.j < T; c.j++) store_rows(L, l, b, R, tile_index, tile_value, &c);
}

/* The tile with the int8 matrix multiply (DOT_I8MM): accumulator (p, q) holds rows 2p, 2p+1 of the
 * block for tokens 2q, 2q+1 (lane 2·row + token), and each decoded field, paired once per row pair,
 * feeds T/2 smmla pairs; the tokens' x are paired as they are loaded. */
typedef struct mmla_ctx {
    tile_ctx c; /* first: tile_index reads it */
    kir_var *acc[2][RSR_BATCH_TILE_MAX];
} mmla_ctx;

static kir_expr *mmla_value(lower *L, int r, void *ctx) {
    mmla_ctx *mc = ctx;
    int j = mc->c.j;
    kir_expr *s = kir_vec(L->m, KO_LANE, KT_I32, ref(L, mc->acc[r / 2][j / 2]), NULL, NULL, 2 * (r % 2) + j % 2);
    return sub(L, s, kir_load(L->m, KT_I32, ref(L, mc->c.sum_x), add(L, ref(L, mc->c.t), num(L, j))));
}

static void lower_tile_mmla(lower *L, kir_list *l, int T, kir_var *t, kir_var *b, kir_var *w, kir_var *sum_x) {
    kir_module *m = L->m;
    int R = L->kn->block_rows;
    if (R != 4 || T % 2)
        rsrc_fatal("internal error: %s: smmla tiles pair 4 rows and an even number of tokens", L->kn->symbol);
    mmla_ctx mc = {.c = {.sum_x = sum_x, .t = t, .b = b}};
    kir_var *x[RSR_BATCH_TILE_MAX], *g, *wg, *codes[4];
    tile_x(L, l, T, t, x);
    tile_zero(L, l, "m%d_%d", 2, T / 2, mc.acc);
    kir_list gl = tile_groups(L, l, w, &g, &wg);
    for (int i = 0; i < 4; i++) {
        kir_list sc = tile_field(L, &gl, wg, i, codes);
        kir_var *rows[2];
        for (int p = 0; p < 2; p++) {
            rows[p] = var(L, strf(L, "r%d", p, 0), KT_PAIR);
            kir_expr *pair = kir_vec(m, KO_PAIR, KT_PAIR, ref(L, codes[2 * p]), ref(L, codes[2 * p + 1]), NULL, 0);
            kir_decl(m, &sc, rows[p], pair, false);
        }
        for (int q = 0; q < T / 2; q++) {
            kir_var *toks = var(L, strf(L, "t%d", q, 0), KT_PAIR);
            int V = L->kn->vec_bytes;
            kir_expr *off = add(L, mul(L, ref(L, g), num(L, 4 * V)), num(L, i * V));
            kir_expr *pair = kir_vec(m, KO_XPAIR, KT_PAIR, idx(L, ref(L, x[2 * q]), off),
                                     idx(L, ref(L, x[2 * q + 1]), off), NULL, 0);
            kir_decl(m, &sc, toks, pair, false);
            for (int p = 0; p < 2; p++)
                kir_set(m, &sc, mc.acc[p][q],
                        kir_vec(m, KO_MMLA, KT_BACC, ref(L, mc.acc[p][q]), ref(L, rows[p]), ref(L, toks), 0));
        }
    }
    for (mc.c.j = 0; mc.c.j < T; mc.c.j++) store_rows(L, l, b, R, tile_index, mmla_value, &mc);
}

/* i2 for several tokens (rsr_kernel_batch_fn): Σx per token, then tiles of kn->batch_tile tokens
 * (block_rows × tile accumulators, the decoded fields and an x vector fit the registers; on a
 * pair-sums ISA tile_rows × tile 16-bit sums), then pairs, the rest one by one; per tile every
 * block of the call, so the tile's x stays in L1 while the packed rows stream past it (kernel.c
 * says why). */
static void lower_i2_batch(lower *L, const char *name, bool exported) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    int V = kn->vec_bytes, R = kn->block_rows, rb = i2_row_bytes(kn), T = kn->batch_tile;
    L->f = kir_func_add(m, name, KSIG_BATCH, exported);
    kir_list l = kir_list_of(&L->f->body), tl, gl, tiles, blk;
    kir_var *sum_x = array(L, "sum_x", RSR_BATCH_MAX);
    kir_decl(m, &l, sum_x, NULL, false)->text = "RSR_BATCH_MAX";
    kir_var *t = loop(L, &l, "t", "token", num(L, 0), param(L, "ntok"), &tl)->var, *sx = var(L, "sx", KT_VACC);
    kir_decl(m, &tl, sx, kir_vec(m, KO_VZERO, KT_VACC, NULL, NULL, NULL, 0), false);
    kir_stmt *f = loop(L, &tl, "g", "sumx", num(L, 0), num(L, kn->groups), &gl);
    f->layout = KL_SAME_LINE;
    kir_expr *xt = idx(L, idx(L, param(L, "x"), mul(L, wide(L, ref(L, t)), wide(L, param(L, "x_stride")))),
                       mul(L, ref(L, f->var), num(L, 4 * V)));
    kir_set(m, &gl, sx, kir_vec(m, KO_SUM4, KT_VACC, ref(L, sx), xt, NULL, 0));
    kir_store(m, &tl, ref(L, sum_x), ref(L, t), kir_vec(m, KO_VSUM, KT_I32, ref(L, sx), NULL, NULL, 0));
    t = var(L, "t", KT_I32);
    kir_decl(m, &l, t, num(L, 0), false);
    /* whole tiles, then (where tiles are wider) pairs, so that a step of 2 or 3 tokens (a batch of
     * sequences' decode) reads the weights once or twice rather than per token, then the rest a
     * token at a time */
    const int widths[] = {T, 2, 1};
    for (int pass = 0; pass < 3; pass++) {
        int n = widths[pass];
        if (pass == 1 && T <= 2) continue;
        kir_expr *cond = n == 1 ? lt(L, ref(L, t), param(L, "ntok"))
                                : kir_bin(m, KO_LE, KT_INT, add(L, ref(L, t), num(L, n)), param(L, "ntok"));
        kir_stmt *f = kir_for(m, &l, t, NULL, cond, n, &tiles);
        f->layout = KL_NEXT_LINE, f->label = n == 1 ? "rest" : n == T ? "tile" : "pair";
        kir_var *b = loop(L, &tiles, "b", "block", param(L, "block_begin"), param(L, "block_end"), &blk)->var;
        kir_var *w = var(L, "w", KT_PU8);
        kir_decl(m, &blk, w, idx(L, param(L, "data"), mul(L, wide(L, ref(L, b)), size(L, (int64_t)R * rb))), true);
        if (n > 1 && kn->isa == DOT_I8MM)
            lower_tile_mmla(L, &blk, n, t, b, w, sum_x);
        else
            lower_tile(L, &blk, n, t, b, w, sum_x);
    }
}

/* ---- the batched RSR form with tokens in lanes (kernel.c, "RSR lanes") ----
 *
 * Steps of fewer than lanes_min tokens, or without scratch, go to the tiles (<batch>_tiles, the
 * same arguments); larger ones in passes of 64 tokens, groups of G passes sharing each block's
 * index while it is in L1: x transposed once per pass (lanes_transpose), each block through
 * lanes_block into out[4t + r], copied to y. A last pass of fewer than lanes_min tokens is left to
 * the tiles after the passes. */

/* an if whose one statement goes on its line */
static void same_line(kir_stmt *s) { s->layout = KL_SAME_LINE; }

/* the tiles on `ntok` tokens from token `from` (NULL: 0) */
static void call_tiles(lower *L, kir_list *l, const kir_func *tiles, kir_expr *from, kir_expr *ntok) {
    kir_expr *x = param(L, "x"), *y = param(L, "y");
    if (from) {
        x = idx(L, x, mul(L, wide(L, from), wide(L, param(L, "x_stride"))));
        y = idx(L, y, mul(L, wide(L, from), wide(L, param(L, "y_stride"))));
    }
    kir_expr *args[] = {param(L, "data"),     x,    param(L, "x_stride"),    y,
                        param(L, "y_stride"), ntok, param(L, "block_begin"), param(L, "block_end")};
    kir_callf(L->m, l, tiles, args);
}

/* if (cond) { the tiles take the whole step; return } */
static void tiles_instead_if(lower *L, kir_list *l, const kir_func *tiles, kir_expr *cond) {
    kir_list then;
    kir_if(L->m, l, cond, &then);
    call_tiles(L, &then, tiles, NULL, param(L, "ntok"));
    kir_stmt_add(L->m, &then, KS_RETURN);
}

/* the rows of one block for the pass's m tokens: out[R·t + r] to yb[t·y_stride + r], every row
 * where the block has them all, else those below the matrix's last */
static void lanes_rows_out(lower *L, kir_list *l, kir_var *b, kir_var *yb, kir_var *out, int out_at,
                           kir_expr *m_tokens) {
    kir_module *m = L->m;
    const int R = L->kn->block_rows;
    kir_expr *end = mul(L, add(L, ref(L, b), num(L, 1)), num(L, R));
    for (int whole = 1; whole >= 0; whole--) {
        kir_list then, toks, rows;
        kir_expr *cond = whole ? kir_bin(m, KO_LE, KT_INT, end, num(L, L->kn->rows)) : lt(L, num(L, L->kn->rows), end);
        kir_if(m, l, cond, &then);
        kir_var *t = loop(L, &then, "t", "token", num(L, 0), m_tokens, &toks)->var, *r = var(L, "r", KT_INT);
        kir_expr *in = whole ? lt(L, ref(L, r), num(L, R))
                             : lt(L, add(L, mul(L, ref(L, b), num(L, R)), ref(L, r)), num(L, L->kn->rows));
        kir_stmt *f = kir_for(m, &toks, r, num(L, 0), in, 1, &rows);
        f->unroll = whole;
        kir_expr *at = add(L, mul(L, wide(L, ref(L, t)), wide(L, param(L, "y_stride"))), wide(L, ref(L, r)));
        kir_store(
            m, &rows, ref(L, yb), at,
            kir_load(m, KT_I32, ref(L, out),
                     add(L, mul(L, ref(L, t), num(L, R)), out_at ? add(L, ref(L, r), num(L, out_at)) : ref(L, r))));
    }
}

/* One block against passes p (and p + 1 with pair: the helper's two-pass form, its x slot bytes
 * further, its rows at out + R·64), then each pass's rows to y. */
static void lanes_block_passes(lower *L, kir_list *l, kir_var *b, kir_var *xu, kir_var *hb, kir_var *pb, kir_var *out,
                               kir_var *q, kir_var *mt, kir_expr *p, const kir_func *block) {
    kir_module *m = L->m;
    const int R = L->kn->block_rows;
    const int64_t slot = (int64_t)lanes_scratch_bytes(L->kn);
    const bool pair = block->sig == KSIG_LANES_BLOCK2;
    kir_expr *args[] = {idx(L, ref(L, xu), mul(L, wide(L, p), size(L, slot))), ref(L, hb), ref(L, pb), ref(L, out),
                        size(L, slot)};
    kir_callf(m, l, block, args);
    for (int h = 0; h < (pair ? 2 : 1); h++) {
        kir_expr *ph = h ? add(L, p, num(L, 1)) : p;
        kir_var *yb = var(L, h ? "yb1" : "yb", KT_PI32);
        kir_expr *tok = mul(L, add(L, ref(L, q), ph), num(L, RSR_LANES));
        kir_decl(
            m, l, yb,
            idx(L, param(L, "y"),
                add(L, mul(L, wide(L, tok), wide(L, param(L, "y_stride"))), wide(L, mul(L, ref(L, b), num(L, R))))),
            true);
        lanes_rows_out(L, l, b, yb, out, h * R * RSR_LANES, kir_load(m, KT_I32, ref(L, mt), ph));
    }
}

/* The transpose of a pass's x, rsr_lanes_transpose(xu, x, x_stride, m, cols): xu[64c + l] = x[t][c]
 * ^ 0x80 (biased to unsigned) for the m tokens at x, l = 2t (t < 32) or 2(t - 32) + 1; 0x80 (x = 0)
 * past m; cols rounded up to 64. Per 64 columns a 64 x 64 byte transpose in six rounds: row i holds
 * token (i >> 1) + 32 (i & 1), and a round zips rows k and k + 32 into rows 2k
 * and 2k + 1, which moves the top bit of the column into the row number and the top bit of the row
 * into the position. The loops are over constants: LLVM repeats them (the rows become values), C
 * keeps them loops. The function is shared (kir.h): every module with the lanes pass has it, the
 * same in each. */
static kir_func *lower_lanes_transpose(lower *L) {
    kir_module *m = L->m;
    kir_func *outer = L->f, *f = kir_func_add(m, "rsr_lanes_transpose", KSIG_LANES_TRANSPOSE, false);
    f->shared = f->noinline = true;
    f->comment = "xu[64c + l]: token t of column c biased to unsigned (x ^ 0x80), l = 2t (t < 32) or 2(t - 32) + 1; "
                 "0x80 (x = 0) past m tokens; per 64 columns a 64 x 64 byte transpose in six rounds of zips (lower.c)";
    L->f = f;
    kir_list l = kir_list_of(&f->body), body, rows, round, zips, copy, out;
    kir_var *zero = kir_var_new(m, "zero", KT_B64, 1), *r = kir_var_new(m, "r", KT_B64, 64);
    kir_var *o = kir_var_new(m, "o", KT_B64, 64), *groups = var(L, "groups", KT_I32), *c0 = var(L, "c0", KT_SIZE);
    kir_decl(m, &l, zero, kir_vec(m, KO_VZERO, KT_B64, NULL, NULL, NULL, 0), false)->text = "the x of tokens past m";
    kir_decl_also(m, kir_decl(m, &l, r, NULL, false), o, NULL);
    kir_decl(m, &l, groups, kir_bin(m, KO_DIV, KT_I32, add(L, param(L, "cols"), num(L, 63)), num(L, 64)), true);
    kir_var *g = loop(L, &l, "g", "cols64", num(L, 0), ref(L, groups), &body)->var;
    kir_decl(m, &body, c0, wide(L, mul(L, ref(L, g), num(L, 64))), true);
    /* row i: its token's 64 columns, or zeros */
    kir_var *i = var(L, "i", KT_INT), *t = var(L, "t", KT_I32), *xt = var(L, "xt", KT_PI8);
    kir_for_range(m, &body, i, num(L, 0), num(L, 64), &rows)->unroll = true;
    kir_expr *half = kir_bin(m, KO_LSHR, KT_I32, ref(L, i), num(L, 1));
    kir_decl(m, &rows, t, add(L, half, mul(L, kir_bin(m, KO_AND, KT_I32, ref(L, i), num(L, 1)), num(L, 32))), true);
    kir_decl(m, &rows, xt,
             idx(L, param(L, "x"), add(L, mul(L, wide(L, ref(L, t)), wide(L, param(L, "x_stride"))), ref(L, c0))),
             true);
    kir_expr *src = kir_vec(m, KO_SELECT, KT_PI8, lt(L, ref(L, t), param(L, "m")), ref(L, xt),
                            kir_reinterpret(m, KT_PI8, ref(L, zero)), 0);
    kir_store(m, &rows, ref(L, r), ref(L, i),
              kir_bin(m, KO_XOR, KT_B64, kir_vec(m, KO_VLOADB, KT_B64, src, NULL, NULL, 0), hex(L, KT_B64, 0x80)));
    /* the rounds: o[2k + h] from rows k and k + 32, then o back into r */
    kir_var *n = var(L, "round", KT_INT), *k = var(L, "k", KT_INT);
    kir_for_range(m, &body, n, num(L, 0), num(L, 6), &round)->unroll = true;
    kir_for_range(m, &round, k, num(L, 0), num(L, 32), &zips)->unroll = true;
    for (int h = 0; h < 2; h++) {
        int z[64];
        int32_t zip[64];
        lanes_zip_mask(h, z);
        for (int j = 0; j < 64; j++) zip[j] = z[j];
        kir_expr *a = kir_load(m, KT_B64, ref(L, r), ref(L, k));
        kir_expr *b = kir_load(m, KT_B64, ref(L, r), add(L, ref(L, k), num(L, 32)));
        kir_expr *at = mul(L, num(L, 2), ref(L, k));
        kir_store(m, &zips, ref(L, o), h ? add(L, at, num(L, 1)) : at,
                  kir_vec(m, KO_PERM2B, KT_B64, a, kir_lanes(m, KO_VCONST, KT_B64, NULL, zip, 64), b, 0));
    }
    i = var(L, "i", KT_INT);
    kir_stmt *s = kir_for_range(m, &round, i, num(L, 0), num(L, 64), &copy);
    s->unroll = true, s->layout = KL_SAME_LINE;
    kir_store(m, &copy, ref(L, r), ref(L, i), kir_load(m, KT_B64, ref(L, o), ref(L, i)));
    i = var(L, "i", KT_INT);
    s = kir_for_range(m, &body, i, num(L, 0), num(L, 64), &out);
    s->unroll = true, s->layout = KL_SAME_LINE;
    kir_expr *row = idx(L, param(L, "xu"), mul(L, add(L, ref(L, c0), wide(L, ref(L, i))), size(L, 64)));
    kir_store(m, &out, kir_reinterpret(m, KT_PB64, row), num(L, 0), kir_load(m, KT_B64, ref(L, r), ref(L, i)));
    L->f = outer;
    return f;
}

/* ---- the lanes block, rsr_lanes_block(xu, hdr, p, out) and rsr_lanes_block2(..., slot): out[4t + r]
 * = row r of the block for token t, the 80 codes' segments (each a run of columns of perm p, its
 * end in the header) added to or subtracted from the rows their digits name, less the bias
 * 128·row_sum[r]; block2 the same against the pass at xu + slot too, its rows at out + 256
 * (kernel.c lanes_pairs). Shared (kir.h): the same in every module of a target.
 *
 * Registers of 512 bits hold the 16 accumulators (4 rows x 64 tokens of int32) through the
 * block, and each segment's sums are added to its rows as they come, pinned there (KO_PIN: else
 * the optimiser sinks every addition to the end and keeps all 80 x 4 sums alive). Narrower
 * registers cannot hold them, nor can any hold two passes': there each segment's sums go to U
 * (20 KB a pass, L1), stored straight from its loop, and the rows are summed from U after the
 * last segment (staged; U opaque, so that no sum is kept in a register past the loops). optsize:
 * the column loops are not unrolled (docs/history/performance-log.md has the measurements). ---- */

typedef struct lanes_fn {
    lower *L;
    int np;                 /* passes */
    kir_var *xu[2], *p;     /* each pass's x; the permutation */
    kir_var *u[2][4];       /* in registers: a segment's sums, tokens 16q.. */
    kir_expr *acc[2][4][4]; /* row r of tokens 16q..: its latest value (a new one per code: SSA) */
} lanes_fn;

static kir_var *lanes_value(lower *L, kir_list *l, const char *name, enum kir_type t, kir_expr *init) {
    kir_var *v = var(L, name, t);
    kir_decl(L->m, l, v, init, true);
    return v;
}

/* U[slot + q] (slot an int expression) */
static kir_expr *lanes_slot(lower *L, kir_expr *slot, int q) { return wide(L, add(L, slot, num(L, q))); }

static kir_expr *lanes_y32_load(lower *L, kir_var *U, kir_expr *at) {
    kir_expr *e = kir_load(L->m, KT_Y32, ref(L, U), at);
    e->imm = 64;
    return e;
}

/* The sums of columns p[from..stop) (at most RSR_LANE_RUN) of each pass, still biased, widened:
 * parts[h][q] tokens 16q..16q+15. In the loop the words and the high bytes add in 16-bit lanes. */
static void lanes_run(lanes_fn *F, kir_list *l, kir_var *from, kir_var *stop, kir_var *(*parts)[4]) {
    lower *L = F->L;
    kir_module *m = L->m;
    kir_var *sw[2], *sh[2];
    for (int h = 0; h < F->np; h++) {
        kir_decl(m, l, sw[h] = var(L, "sw", KT_W16), kir_vec(m, KO_VZERO, KT_W16, NULL, NULL, NULL, 0), false);
        kir_decl(m, l, sh[h] = var(L, "sh", KT_W16), kir_vec(m, KO_VZERO, KT_W16, NULL, NULL, NULL, 0), false);
    }
    kir_list cols;
    kir_var *j = loop(L, l, "j", "col", ref(L, from), ref(L, stop), &cols)->var;
    kir_var *col = lanes_value(L, &cols, "col", KT_SIZE, kir_load(m, KT_SIZE, ref(L, F->p), ref(L, j)));
    kir_var *off = lanes_value(L, &cols, "off", KT_SIZE, kir_bin(m, KO_SHL, KT_SIZE, ref(L, col), size(L, 6)));
    for (int h = 0; h < F->np; h++) {
        kir_expr *at = kir_reinterpret(m, KT_PW16, idx(L, ref(L, F->xu[h]), ref(L, off)));
        kir_expr *ld = kir_load(m, KT_W16, at, NULL);
        ld->imm = 64;
        kir_var *v = lanes_value(L, &cols, "v", KT_W16, ld);
        kir_set(m, &cols, sw[h], kir_bin(m, KO_ADD, KT_W16, ref(L, sw[h]), ref(L, v)));
        kir_expr *high = kir_bin(m, KO_LSHR, KT_W16, ref(L, v), kir_const(m, KT_W16, 8));
        kir_set(m, &cols, sh[h], kir_bin(m, KO_ADD, KT_W16, ref(L, sh[h]), high));
    }
    for (int h = 0; h < F->np; h++) {
        kir_var *hi = lanes_value(L, l, "hi", KT_W16, ref(L, sh[h]));
        kir_expr *lo_e =
            kir_bin(m, KO_SUB, KT_W16, ref(L, sw[h]), kir_bin(m, KO_SHL, KT_W16, ref(L, hi), kir_const(m, KT_W16, 8)));
        kir_var *lo = lanes_value(L, l, "lo", KT_W16, lo_e);
        for (int q = 0; q < 4; q++)
            parts[h][q] = lanes_value(L, l, strf(L, "s%d", q, 0), KT_Y32,
                                      kir_vec(m, KO_QUARTER, KT_Y32, ref(L, q < 2 ? lo : hi), NULL, NULL, q & 1));
    }
}

/* stop = min(from + RSR_LANE_RUN, end) */
static kir_var *lanes_stop(lower *L, kir_list *l, kir_var *from, kir_var *end) {
    kir_var *top = lanes_value(L, l, "top", KT_I32, add(L, ref(L, from), num(L, RSR_LANE_RUN)));
    kir_expr *min = kir_vec(L->m, KO_SELECT, KT_I32, lt(L, ref(L, top), ref(L, end)), ref(L, top), ref(L, end), 0);
    return lanes_value(L, l, "stop", KT_I32, min);
}

/* The columns p[j..end) in runs of RSR_LANE_RUN: each run's sums added to F->u or, with U, to
 * the slots U[slot[h] + q]. */
static void lanes_more_runs(lanes_fn *F, kir_list *l, kir_var *j, kir_var *end, kir_var *U, kir_expr *const *slot) {
    lower *L = F->L;
    kir_module *m = L->m;
    kir_expr *n = add(L, sub(L, ref(L, end), ref(L, j)), num(L, RSR_LANE_RUN - 1));
    kir_var *runs = lanes_value(L, l, "runs", KT_I32, kir_bin(m, KO_DIV, KT_I32, n, num(L, RSR_LANE_RUN)));
    kir_list body;
    kir_var *c = loop(L, l, "c", "run", num(L, 0), ref(L, runs), &body)->var, *parts[2][4];
    kir_var *from = lanes_value(L, &body, "from", KT_I32, add(L, ref(L, j), mul(L, ref(L, c), num(L, RSR_LANE_RUN))));
    lanes_run(F, &body, from, lanes_stop(L, &body, from, end), parts);
    for (int h = 0; h < F->np; h++)
        for (int q = 0; q < 4; q++) {
            if (!U) {
                kir_set(m, &body, F->u[h][q], kir_bin(m, KO_ADD, KT_Y32, ref(L, F->u[h][q]), ref(L, parts[h][q])));
                continue;
            }
            kir_var *old = lanes_value(L, &body, "old", KT_Y32, lanes_y32_load(L, U, lanes_slot(L, slot[h], q)));
            kir_expr *sum = kir_bin(m, KO_ADD, KT_Y32, ref(L, old), ref(L, parts[h][q]));
            kir_store(m, &body, ref(L, U), lanes_slot(L, slot[h], q), sum)->align = 64;
        }
}

/* A segment, columns p[j..end), into U's slots slot[h] + q: the first run's sums stored, later
 * runs (a segment of more than RSR_LANE_RUN columns) added through U made opaque again, so that
 * the first run's sums are not kept in registers past them. */
static void lanes_segment_staged(lanes_fn *F, kir_list *l, kir_var *j, kir_var *end, kir_var *U,
                                 kir_expr *const *slot) {
    lower *L = F->L;
    kir_var *stop = lanes_stop(L, l, j, end), *parts[2][4];
    lanes_run(F, l, j, stop, parts);
    for (int h = 0; h < F->np; h++)
        for (int q = 0; q < 4; q++)
            kir_store(L->m, l, ref(L, U), lanes_slot(L, slot[h], q), ref(L, parts[h][q]))->align = 64;
    kir_list more;
    kir_if(L->m, l, lt(L, ref(L, stop), ref(L, end)), &more);
    kir_var *U2 = lanes_value(L, &more, "U2", KT_PY32, kir_vec(L->m, KO_OPAQUE, KT_PY32, ref(L, U), NULL, NULL, 0));
    lanes_more_runs(F, &more, stop, end, U2, slot);
}

/* rows ± u for the rows whose digit of code c is not 0 (pinned where they stay in registers) */
static void lanes_add_code(lanes_fn *F, kir_list *l, kir_expr **rows, int c, kir_var *u, bool pinned) {
    kir_module *m = F->L->m;
    for (int r = 0; r < 4; r++) {
        int d = lanes_digit(c, r);
        if (!d) continue;
        kir_expr *v = kir_bin(m, d > 0 ? KO_ADD : KO_SUB, KT_Y32, rows[r], ref(F->L, u));
        rows[r] = ref(F->L, lanes_value(F->L, l, kir_strf(m, "row%d_%d", r, c), KT_Y32,
                                        pinned ? kir_vec(m, KO_PIN, KT_Y32, v, NULL, NULL, 0) : v));
    }
}

/* out[4t + r]: the four rows of token t side by side, 16 tokens at a time, less their biases */
static void lanes_block_out(lanes_fn *F, kir_list *l) {
    lower *L = F->L;
    kir_module *m = L->m;
    kir_var *rs = lanes_value(L, l, "rs", KT_PI32,
                              kir_reinterpret(m, KT_PI32, idx(L, param(L, "hdr"), size(L, RSR_LANE_ROW_SUM))));
    kir_var *outv = lanes_value(L, l, "outv", KT_PY32, kir_reinterpret(m, KT_PY32, param(L, "out")));
    kir_var *bias[4];
    for (int r = 0; r < 4; r++) {
        kir_expr *b = mul(L, kir_load(m, KT_I32, ref(L, rs), size(L, r)), num(L, 128));
        bias[r] = lanes_value(L, l, strf(L, "bias%d", r, 0), KT_Y32, kir_vec(m, KO_SPLAT, KT_Y32, b, NULL, NULL, 0));
    }
    for (int h = 0; h < F->np; h++)
        for (int q = 0; q < 4; q++) {
            kir_var *v[4];
            for (int r = 0; r < 4; r++)
                v[r] = lanes_value(L, l, strf(L, "v%d", r, 0), KT_Y32,
                                   kir_bin(m, KO_SUB, KT_Y32, F->acc[h][q][r], ref(L, bias[r])));
            for (int half = 0; half < 2; half++) {
                int pair[16], quad[16];
                int32_t mask[16];
                lanes_pair_mask(half, pair);
                for (int i = 0; i < 16; i++) mask[i] = pair[i];
                kir_var *lh[2];
                for (int i = 0; i < 2; i++) {
                    kir_expr *s = kir_lanes(m, KO_SHUFFLE, KT_Y32, ref(L, v[2 * i]), mask, 16);
                    s->b = ref(L, v[2 * i + 1]);
                    lh[i] = lanes_value(L, l, i ? "hi" : "lo", KT_Y32, s);
                }
                for (int k = 0; k < 2; k++) {
                    lanes_quad_mask(k, quad);
                    for (int i = 0; i < 16; i++) mask[i] = quad[i];
                    kir_expr *s = kir_lanes(m, KO_SHUFFLE, KT_Y32, ref(L, lh[0]), mask, 16);
                    s->b = ref(L, lh[1]);
                    kir_store(m, l, ref(L, outv), size(L, 16 * h + 4 * q + 2 * half + k), s)->align = 4;
                }
            }
        }
}

static kir_func *lower_lanes_block(lower *L, int np, bool staged) {
    kir_module *m = L->m;
    kir_func *outer = L->f;
    kir_func *f = kir_func_add(m, np == 2 ? "rsr_lanes_block2" : "rsr_lanes_block",
                               np == 2 ? KSIG_LANES_BLOCK2 : KSIG_LANES_BLOCK, false);
    f->shared = f->noinline = f->optsize = true;
    L->f = f;
    kir_list l = kir_list_of(&f->body);
    lanes_fn F = {.L = L, .np = np, .xu = {kir_param(f, "xu")}, .p = kir_param(f, "p")};
    if (np == 2) F.xu[1] = lanes_value(L, &l, "xb", KT_PU8, idx(L, param(L, "xu"), param(L, "slot")));
    for (int h = 0; h < np; h++)
        for (int q = 0; q < 4; q++) {
            if (!staged)
                kir_decl(m, &l, F.u[h][q] = var(L, "u", KT_Y32), kir_vec(m, KO_VZERO, KT_Y32, NULL, NULL, NULL, 0),
                         false);
            for (int r = 0; r < 4; r++) F.acc[h][q][r] = kir_vec(m, KO_VZERO, KT_Y32, NULL, NULL, NULL, 0);
        }
    kir_var *U = NULL;
    if (staged) {
        kir_var *slots = kir_var_new(m, "U", KT_Y32, np * 4 * (RSR_LANE_CODES - 1));
        slots->align64 = true;
        kir_decl(m, &l, slots, NULL, false);
        U = lanes_value(L, &l, "Up", KT_PY32,
                        kir_vec(m, KO_OPAQUE, KT_PY32, kir_reinterpret(m, KT_PY32, ref(L, slots)), NULL, NULL, 0));
    }
    if (staged) { /* the segments in loops over the codes but the zero pattern's (LLVM repeats them, C keeps
                     them loops: one copy of the segment compiles in a second where 80 took gcc 10-20) */
        kir_var *begin = var(L, "begin", KT_I32);
        begin->straight = true;
        kir_decl(m, &l, begin, num(L, 0), false);
        for (int half = 0; half < 2; half++) {
            kir_list seg;
            kir_var *c = var(L, "code", KT_INT);
            kir_for_range(m, &l, c, num(L, half ? RSR_LANE_ZERO + 1 : 0), num(L, half ? RSR_LANE_CODES : RSR_LANE_ZERO),
                          &seg)
                ->unroll = true;
            kir_expr *k = half ? sub(L, ref(L, c), num(L, 1)) : ref(L, c); /* its slot */
            kir_var *end =
                lanes_value(L, &seg, "end", KT_I32, kir_load(m, KT_I32, param(L, "hdr"), wide(L, ref(L, c))));
            kir_var *j = lanes_value(L, &seg, "first", KT_I32, ref(L, begin));
            kir_expr *slot[2] = {mul(L, k, num(L, 4)), mul(L, add(L, k, num(L, RSR_LANE_CODES - 1)), num(L, 4))};
            lanes_segment_staged(&F, &seg, j, end, U, slot);
            kir_set(m, &seg, begin, ref(L, end));
        }
    }
    kir_var *begin = lanes_value(L, &l, "begin", KT_I32, num(L, 0));
    for (int c = 0, k = 0; c < RSR_LANE_CODES && !staged; c++) {
        if (c == RSR_LANE_ZERO) continue; /* its segment is empty: code 41's begins where code 39's ends */
        kir_var *end = lanes_value(L, &l, "end", KT_I32, kir_load(m, KT_I32, param(L, "hdr"), size(L, c)));
        {
            for (int h = 0; h < np; h++)
                for (int q = 0; q < 4; q++)
                    kir_set(m, &l, F.u[h][q], kir_vec(m, KO_VZERO, KT_Y32, NULL, NULL, NULL, 0));
            lanes_more_runs(&F, &l, begin, end, NULL, NULL);
            for (int h = 0; h < np; h++)
                for (int q = 0; q < 4; q++) {
                    kir_var *u = lanes_value(L, &l, "uq", KT_Y32, ref(L, F.u[h][q]));
                    lanes_add_code(&F, &l, F.acc[h][q], c, u, true);
                }
        }
        k++, begin = end;
    }
    for (int h = 0; staged && h < np; h++)
        for (int q = 0; q < 4; q++) /* the rows of tokens 16q.. from the stored sums */
            for (int c = 0, k = 0; c < RSR_LANE_CODES; c++) {
                if (c == RSR_LANE_ZERO) continue;
                kir_var *u = lanes_value(L, &l, "u", KT_Y32,
                                         lanes_y32_load(L, U, size(L, (h * (RSR_LANE_CODES - 1) + k++) * 4 + q)));
                lanes_add_code(&F, &l, F.acc[h][q], c, u, false);
            }
    lanes_block_out(&F, &l);
    L->f = outer;
    return f;
}

static void lower_lanes_batch(lower *L, const kir_func *tiles) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    const int R = kn->block_rows, G = lanes_group(kn);
    const int64_t slot = (int64_t)lanes_scratch_bytes(kn);
    L->f = kir_func_add(m, kn->batch_symbol, KSIG_BATCH, true);
    L->f->comment = kir_strf(m, "%s: RSR with up to %d tokens in lanes, 81 patterns per block of %d rows",
                             kn->batch_symbol, RSR_LANES, R);
    const bool staged = kn->vec_bytes < 64; /* the block's sums through L1 (narrow registers) */
    const kir_func *block = lower_lanes_block(L, 1, staged), *transpose = lower_lanes_transpose(L);
    const kir_func *block2 = lanes_pairs(kn) ? lower_lanes_block(L, 2, true) : NULL;
    kir_list l = kir_list_of(&L->f->body), then, groups, passes, blocks, pblk;
    tiles_instead_if(L, &l, tiles, lt(L, param(L, "ntok"), num(L, kn->lanes_min)));
    kir_var *xu = var(L, "xu", KT_BYTES);
    kir_decl(m, &l, xu, kir_vec(m, KO_ALLOC, KT_BYTES, NULL, NULL, NULL, G * slot), true);
    tiles_instead_if(L, &l, tiles, kir_vec(m, KO_ISNULL, KT_INT, ref(L, xu), NULL, NULL, 0));
    kir_var *hdr = var(L, "hdr", KT_PU16), *perm = var(L, "perm", KT_PU16);
    kir_stmt *d =
        kir_decl(m, &l, hdr, kir_reinterpret(m, KT_PU16, idx(L, param(L, "data"), size(L, kn->off_lane_seg))), true);
    kir_decl_also(m, d, perm, kir_reinterpret(m, KT_PU16, idx(L, param(L, "data"), size(L, kn->off_lane_perm))));
    const bool pairs = lanes_pairs(kn);
    kir_var *out = kir_var_new(m, "out", KT_I32, (pairs ? 2 : 1) * R * RSR_LANES), *mt = kir_var_new(m, "m", KT_I32, G);
    out->align64 = true;
    kir_decl(m, &l, out, NULL, false)->text = "block rows by token: out[4t + r]";
    /* the whole passes as lanes, and a last one only if it has lanes_min tokens */
    kir_var *nl = var(L, "nl", KT_I32), *np = var(L, "passes", KT_I32);
    kir_decl(m, &l, nl, kir_bin(m, KO_AND, KT_I32, param(L, "ntok"), num(L, -RSR_LANES)), false);
    same_line(
        kir_if(m, &l, kir_bin(m, KO_LE, KT_INT, num(L, kn->lanes_min), sub(L, param(L, "ntok"), ref(L, nl))), &then));
    kir_set(m, &then, nl, param(L, "ntok"));
    kir_decl(m, &l, np, kir_bin(m, KO_LSHR, KT_I32, add(L, ref(L, nl), num(L, RSR_LANES - 1)), num(L, 6)), true);
    /* groups of G passes: x transposed once per pass, then every block against each */
    kir_var *q = var(L, "q", KT_I32), *gn = var(L, "gn", KT_I32);
    kir_for(m, &l, q, num(L, 0), lt(L, ref(L, q), ref(L, np)), G, &groups)->label = "group";
    kir_decl(m, &groups, mt, NULL, false);
    kir_decl(m, &groups, gn, sub(L, ref(L, np), ref(L, q)), false);
    same_line(kir_if(m, &groups, lt(L, num(L, G), ref(L, gn)), &then));
    kir_set(m, &then, gn, num(L, G));
    kir_var *p = loop(L, &groups, "p", "pass", num(L, 0), ref(L, gn), &passes)->var, *t0 = var(L, "t0", KT_I32);
    kir_decl(m, &passes, t0, mul(L, add(L, ref(L, q), ref(L, p)), num(L, RSR_LANES)), true);
    kir_store(m, &passes, ref(L, mt), ref(L, p), sub(L, ref(L, nl), ref(L, t0)));
    same_line(kir_if(m, &passes, lt(L, num(L, RSR_LANES), kir_load(m, KT_I32, ref(L, mt), ref(L, p))), &then));
    kir_store(m, &then, ref(L, mt), ref(L, p), num(L, RSR_LANES));
    kir_expr *xp = idx(L, ref(L, xu), mul(L, wide(L, ref(L, p)), size(L, slot)));
    kir_expr *xt = idx(L, param(L, "x"), mul(L, wide(L, ref(L, t0)), wide(L, param(L, "x_stride"))));
    kir_expr *targs[] = {xp, xt, param(L, "x_stride"), kir_load(m, KT_I32, ref(L, mt), ref(L, p)), num(L, kn->cols)};
    kir_callf(m, &passes, transpose, targs);
    kir_var *b = loop(L, &groups, "b", "block", param(L, "block_begin"), param(L, "block_end"), &blocks)->var;
    kir_var *hb = var(L, "hb", KT_PU16), *pb = var(L, "pb", KT_PU16);
    d = kir_decl(m, &blocks, hb, idx(L, ref(L, hdr), mul(L, wide(L, ref(L, b)), size(L, RSR_LANE_SEG_STRIDE))), true);
    kir_decl_also(m, d, pb, idx(L, ref(L, perm), mul(L, wide(L, ref(L, b)), size(L, kn->lane_cols))));
    kir_expr *first = num(L, 0); /* the first pass taken alone */
    if (pairs) {
        kir_var *pp = loop(L, &blocks, "pp", "pair of passes", num(L, 0),
                           kir_bin(m, KO_LSHR, KT_I32, ref(L, gn), num(L, 1)), &pblk)
                          ->var;
        lanes_block_passes(L, &pblk, b, xu, hb, pb, out, q, mt, mul(L, ref(L, pp), num(L, 2)), block2);
        first = kir_bin(m, KO_AND, KT_I32, ref(L, gn), num(L, -2));
    }
    p = loop(L, &blocks, "p", "pass", first, ref(L, gn), &pblk)->var;
    lanes_block_passes(L, &pblk, b, xu, hb, pb, out, q, mt, ref(L, p), block);
    kir_do(m, &l, kir_vec(m, KO_FREE, KT_VOID, ref(L, xu), NULL, NULL, 0));
    /* the tiles take a shorter rest after the passes */
    kir_if(m, &l, lt(L, ref(L, nl), param(L, "ntok")), &then);
    call_tiles(L, &then, tiles, ref(L, nl), sub(L, param(L, "ntok"), ref(L, nl)));
}

/* ---- lut: the tables of this call's x, then per block of 32 rows its groups (kernel.c) ---- */

/* ---- lut (kernel.c, KF_LUT): scalar, every table entry and lookup an IR operation ---- */

/* tab[32t + n] for the 32 patterns n of triplet t (an expression, or the constant tt where t is
 * NULL) whose columns `cols` (0..3) lie inside x: pattern n's sum over them, constant digits
 * (lut_digit), and 0 for n >= 27. */
static void lut_triplet(lower *L, kir_list *l, kir_var *tab, kir_expr *t, int32_t tt, int cols) {
    kir_module *m = L->m;
    kir_var *xv[3] = {0};
    kir_stmt *d = NULL;
    for (int j = 0; j < cols && j < 3; j++) {
        xv[j] = var(L, strf(L, "x%d", j, 0), KT_I32);
        kir_expr *col = t ? add(L, mul(L, num(L, 3), t), num(L, j)) : num(L, 3 * tt + j);
        kir_expr *xj = kir_load(m, KT_I32, param(L, "x"), col);
        if (d)
            kir_decl_also(m, d, xv[j], xj);
        else
            d = kir_decl(m, l, xv[j], xj, true);
    }
    for (int n = 0; n < LUT_ENTRIES; n++) {
        kir_expr *sum = NULL;
        for (int j = 0; j < 3 && n < LUT_PATTERNS; j++) {
            int w = lut_digit(n, j);
            if (!w || !xv[j]) continue;
            kir_expr *xj = ref(L, xv[j]);
            sum =
                sum ? (w > 0 ? add(L, sum, xj) : sub(L, sum, xj)) : (w > 0 ? xj : kir_bin(m, KO_NEG, KT_I32, xj, NULL));
        }
        kir_expr *at = t ? add(L, mul(L, num(L, LUT_ENTRIES), t), num(L, n)) : num(L, LUT_ENTRIES * tt + n);
        kir_store(m, l, ref(L, tab), at, kir_cast(m, KT_LUT16, sum ? sum : num(L, 0)));
    }
}

/* The call's tables: the triplets wholly inside x in a loop, the one the last columns fall in (in
 * a scope of its own), then zeros up to the last group's end. */
static void lut_scalar_tables(lower *L, kir_list *l, kir_var *tab) {
    const rsrc_kernel *kn = L->kn;
    const int32_t full = kn->cols / 3, part = kn->cols % 3 != 0, triplets = 4 * kn->groups;
    kir_list body;
    kir_stmt *f = loop(L, l, "t", "tables", num(L, 0), num(L, full), &body);
    lut_triplet(L, &body, tab, ref(L, f->var), 0, 3);
    if (part) lut_triplet(L, &(kir_list){&kir_stmt_add(L->m, l, KS_SCOPE)->body}, tab, NULL, full, kn->cols % 3);
    if (full + part == triplets) return;
    kir_list zl;
    kir_stmt *z = loop(L, l, "i", "zeros", num(L, LUT_ENTRIES * (full + part)), num(L, LUT_ENTRIES * triplets), &zl);
    z->layout = KL_NEXT_LINE;
    kir_store(L->m, &zl, ref(L, tab), ref(L, z->var), kir_cast(L->m, KT_LUT16, num(L, 0)));
}

/* Row r (0..31) of the block whose packed rows are at w (its window's first group g0, or
 * NULL): per group of 80 bytes, the pattern of each of its 4 triplets is the row's nibble of byte
 * 4(r % 16) + L (the low one for r < 16) and a fifth bit from the masks at byte 64 + 8(r / 16),
 * bit 4(r % 16) + L; the row's sum adds the tables' entries. */
static kir_expr *lut_scalar_row(lower *L, kir_list *l, kir_var *w, kir_var *tab, kir_var *r, kir_var *g0) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    kir_expr *rr = ref(L, r), *low = kir_bin(m, KO_AND, KT_I32, rr, num(L, 15));
    kir_expr *half = kir_bin(m, KO_LSHR, KT_I32, rr, num(L, 4));
    kir_var *q = var(L, "q", KT_I32), *ns = var(L, "ns", KT_I32), *mb = var(L, "mb", KT_I32),
            *ms = var(L, "ms", KT_I32);
    kir_stmt *d = kir_decl(m, l, q, mul(L, num(L, 4), low), true);
    kir_decl_also(m, d, ns, mul(L, num(L, 4), half));
    kir_decl_also(m, d, mb,
                  add(L, add(L, num(L, LUT_GROUP_BYTES - 16), mul(L, num(L, 8), half)),
                      kir_bin(m, KO_LSHR, KT_I32, low, num(L, 1))));
    kir_decl_also(m, d, ms, mul(L, num(L, 4), kir_bin(m, KO_AND, KT_I32, rr, num(L, 1))));
    kir_var *sum = var(L, "sum", KT_I32);
    kir_decl(m, l, sum, num(L, 0), false);
    kir_list gl;
    kir_stmt *f = loop(L, l, "g", "group", num(L, 0), num(L, lut_block_groups(kn)), &gl);
    kir_var *g = f->var, *wg = var(L, "wg", KT_PU8);
    kir_decl(m, &gl, wg, idx(L, ref(L, w), mul(L, wide(L, ref(L, g)), size(L, LUT_GROUP_BYTES))), true);
    kir_expr *group = g0 ? add(L, ref(L, g0), ref(L, g)) : ref(L, g);
    for (int t = 0; t < 4; t++) {
        kir_expr *nib = kir_load(m, KT_I32, ref(L, wg), add(L, ref(L, q), num(L, t)));
        kir_expr *n = kir_bin(m, KO_AND, KT_I32, kir_bin(m, KO_LSHR, KT_I32, nib, ref(L, ns)), num(L, 15));
        kir_expr *mask = kir_load(m, KT_I32, ref(L, wg), ref(L, mb));
        kir_expr *bit =
            kir_bin(m, KO_AND, KT_I32, kir_bin(m, KO_LSHR, KT_I32, mask, add(L, ref(L, ms), num(L, t))), num(L, 1));
        n = add(L, n, kir_bin(m, KO_SHL, KT_I32, bit, num(L, 4)));
        kir_expr *at = add(L, add(L, mul(L, group, num(L, 4 * LUT_ENTRIES)), num(L, LUT_ENTRIES * t)), n);
        kir_set(m, &gl, sum, add(L, ref(L, sum), kir_load(m, KT_I32, ref(L, tab), at)));
    }
    return ref(L, sum);
}

/* ---- lut, vector (AVX-512 VBMI and VNNI): the tables as 64-byte planes looked up with the
 * two-table byte permute, the lookups summed with the byte dot product ---- */

static kir_expr *vec(lower *L, enum kir_op op, enum kir_type t, kir_expr *a, kir_expr *b, kir_expr *c, int64_t imm) {
    return kir_vec(L->m, op, t, a, b, c, imm);
}
static kir_expr *splat(lower *L, enum kir_type t, int64_t v) { return kir_const(L->m, t, v); }
static kir_var *value(lower *L, kir_list *l, const char *name, enum kir_type t, kir_expr *init) {
    kir_var *v = var(L, name, t);
    kir_decl(L->m, l, v, init, true);
    return v;
}

/* Group g's four planes into tab[4g..4g+3] (low of triplets 0-1, of 2-3, high of 0-1, of 2-3):
 * x's columns 12g.. (`left` of them readable), spread so that 16-bit lane l of half h holds the
 * sum of pattern l of its triplet (lut_spread, lut_digit_masks), then each sum's low and high
 * bytes (or its negation's: lut_plane_source) picked into the planes. */
static void lut_vector_group(lower *L, kir_list *l, kir_var *tab, kir_expr *g, int left) {
    kir_module *m = L->m;
    kir_var *xw = value(L, l, "xw", KT_XW,
                        vec(L, KO_XWORDS, KT_XW, param(L, "x"), mul(L, g, num(L, LUT_GROUP_COLS)), NULL, left));
    int32_t plane[2][64], sel[32];
    for (int hi = 0; hi < 2; hi++)
        for (int o = 0; o < 64; o++) plane[hi][o] = lut_plane_source(hi, o);
    for (int h = 0; h < 2; h++) {
        kir_expr *v = vec(L, KO_VZERO, KT_V16, NULL, NULL, NULL, 0);
        for (int j = 0; j < 3; j++) {
            uint32_t pos, neg;
            for (int i = 0; i < 32; i++) sel[i] = lut_spread(h, j, i);
            lut_digit_masks(j, &pos, &neg);
            kir_var *xj =
                value(L, l, strf(L, "x%d%d", h, j), KT_V16, kir_lanes(m, KO_PERMW, KT_V16, ref(L, xw), sel, 32));
            kir_var *va =
                value(L, l, strf(L, "a%d%d", h, j), KT_V16, vec(L, KO_MADDW, KT_V16, v, ref(L, xj), NULL, pos));
            kir_var *vs = value(L, l, strf(L, "s%d%d", h, j), KT_V16,
                                vec(L, KO_MSUBW, KT_V16, ref(L, va), ref(L, xj), NULL, neg));
            v = ref(L, vs);
        }
        kir_var *vb = value(L, l, strf(L, "v%d", h, 0), KT_LUTV, kir_reinterpret(m, KT_LUTV, v));
        kir_var *nb = value(L, l, strf(L, "n%d", h, 0), KT_LUTV,
                            kir_reinterpret(m, KT_LUTV, kir_bin(m, KO_NEG, KT_V16, v, NULL)));
        for (int hi = 0; hi < 2; hi++) {
            kir_expr *planes = kir_lanes(m, KO_VCONST, KT_LUTV, NULL, plane[hi], 64);
            kir_store(m, l, ref(L, tab), add(L, mul(L, g, num(L, 4)), num(L, 2 * hi + h)),
                      vec(L, KO_PERM2B, KT_LUTV, ref(L, vb), planes, ref(L, nb), 0));
        }
    }
}

/* The call's tables: the full groups in a loop, the tail group (fewer than 12 columns) after it. */
static void lut_vector_tables(lower *L, kir_list *l, kir_var *tab) {
    const rsrc_kernel *kn = L->kn;
    const int32_t full = kn->cols / LUT_GROUP_COLS;
    kir_list body;
    kir_stmt *f = loop(L, l, "g", "tables", num(L, 0), num(L, full), &body);
    lut_vector_group(L, &body, tab, ref(L, f->var), LUT_GROUP_COLS);
    if (full < kn->groups)
        lut_vector_group(L, &(kir_list){&kir_stmt_add(L->m, l, KS_SCOPE)->body}, tab, num(L, full),
                         kn->cols - LUT_GROUP_COLS * full);
}

/* Group g of block j of nb (packed rows at w + j·block bytes) into the accumulators lo, hi: each
 * of the 64 index bytes is a row's nibble with 32·(byte % 4) for its triplet's table and the
 * mask's bit as 16, looked up in the low and the high planes; vpdpbusd adds four lookups a lane. */
static void lut_vector_group_rows(lower *L, kir_list *l, kir_var *w, kir_var *const t[4], kir_var *g, int j,
                                  kir_var **lo, kir_var **hi) {
    kir_module *m = L->m;
    int32_t quarter[64];
    for (int i = 0; i < 64; i++) quarter[i] = lut_quarter(i);
    kir_var *wg = value(L, l, strf(L, "wg%d", j, 0), KT_I32,
                        add(L, mul(L, ref(L, g), num(L, LUT_GROUP_BYTES)), num(L, j * lut_block_bytes(L->kn))));
    kir_var *p = value(L, l, strf(L, "p%d", j, 0), KT_LUTV, vec(L, KO_VLOADB, KT_LUTV, ref(L, w), ref(L, wg), NULL, 0));
    kir_var *nib[2] = {
        value(L, l, strf(L, "lo%d_n", j, 0), KT_LUTV, kir_bin(m, KO_AND, KT_LUTV, ref(L, p), splat(L, KT_LUTV, 15))),
        value(L, l, strf(L, "hi%d_n", j, 0), KT_LUTV, kir_bin(m, KO_LSHR, KT_LUTV, ref(L, p), splat(L, KT_LUTV, 4)))};
    for (int h = 0; h < 2; h++) {
        kir_expr *bits =
            vec(L, KO_MASK64, KT_MASK64, ref(L, w), add(L, ref(L, wg), num(L, LUT_GROUP_BYTES - 16 + 8 * h)), NULL, 0);
        kir_var *mk = value(L, l, strf(L, "m%d%d", j, h), KT_MASK64, bits);
        kir_var *q =
            value(L, l, strf(L, "q%d%d", j, h), KT_LUTV,
                  kir_bin(m, KO_OR, KT_LUTV, ref(L, nib[h]), kir_lanes(m, KO_VCONST, KT_LUTV, NULL, quarter, 64)));
        kir_expr *sel =
            kir_bin(m, KO_SELECT, KT_LUTV, ref(L, mk), kir_bin(m, KO_OR, KT_LUTV, ref(L, q), splat(L, KT_LUTV, 16)));
        sel->c = ref(L, q);
        kir_var *i = value(L, l, strf(L, "i%d%d", j, h), KT_LUTV, sel);
        kir_var *lb = value(L, l, strf(L, "l%d%d", j, h), KT_V32,
                            vec(L, KO_PERM2B, KT_V32, ref(L, t[0]), ref(L, i), ref(L, t[1]), 0));
        kir_var *hb = value(L, l, strf(L, "h%d%d", j, h), KT_V32,
                            vec(L, KO_PERM2B, KT_V32, ref(L, t[2]), ref(L, i), ref(L, t[3]), 0));
        kir_var *a = lo[2 * j + h], *b = hi[2 * j + h];
        kir_set(m, l, a, vec(L, KO_DPBUSD, KT_V32, ref(L, a), ref(L, lb), splat(L, KT_LUTV, 1), 0));
        kir_set(m, l, b, vec(L, KO_DPBUSD, KT_V32, ref(L, b), splat(L, KT_LUTV, 1), ref(L, hb), 0));
    }
}

/* nb blocks from block b (their packed rows at w, block bytes apart) against the tables (from the
 * window's first group g0, or NULL): per group the tables are loaded once for all of them. Rows
 * 16h + k of block j: 256 · Σ high bytes + Σ low bytes, lane k of lo, hi[2j + h]. */
static void lut_vector_blocks(lower *L, kir_list *l, kir_var *tab, kir_var *w, kir_expr *b, kir_var *g0, int nb) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    kir_var *lo[2 * LUT_NB], *hi[2 * LUT_NB], *t[4];
    if (g0) /* the window's tables, from its first group's */
        tab = value(L, l, "tw", KT_PLUTV, kir_bin(m, KO_INDEX, KT_PLUTV, ref(L, tab), mul(L, ref(L, g0), num(L, 4))));
    for (int j = 0; j < 2 * nb; j++) {
        kir_decl(m, l, lo[j] = var(L, strf(L, "lo%d", j, 0), KT_V32), vec(L, KO_VZERO, KT_V32, NULL, NULL, NULL, 0),
                 false);
        kir_decl(m, l, hi[j] = var(L, strf(L, "hi%d", j, 0), KT_V32), vec(L, KO_VZERO, KT_V32, NULL, NULL, NULL, 0),
                 false);
    }
    kir_list gl;
    kir_stmt *f = loop(L, l, "g", "group", num(L, 0), num(L, lut_block_groups(kn)), &gl);
    for (int i = 0; i < 4; i++)
        t[i] = value(L, &gl, strf(L, "t%d", i, 0), KT_LUTV,
                     kir_load(m, KT_LUTV, ref(L, tab), add(L, mul(L, ref(L, f->var), num(L, 4)), num(L, i))));
    for (int j = 0; j < nb; j++) lut_vector_group_rows(L, &gl, w, t, f->var, j, lo, hi);
    kir_var *row0 = value(L, l, "row0", KT_I32, mul(L, b, num(L, LUT_ROWS)));
    for (int j = 0; j < 2 * nb; j++) {
        kir_expr *sum = add(L, kir_bin(m, KO_SHL, KT_V32, ref(L, hi[j]), splat(L, KT_V32, 8)), ref(L, lo[j]));
        kir_var *s = value(L, l, strf(L, "sum%d", j, 0), KT_V32, sum);
        for (int k = 0; k < 16; k++) {
            kir_var *row = value(L, l, strf(L, "row%d_%d", j, k), KT_I32, add(L, ref(L, row0), num(L, 16 * j + k)));
            kir_list then, *at = l;
            if (kn->rows % LUT_ROWS) kir_if(m, l, lt(L, ref(L, row), num(L, kn->rows)), at = &then);
            kir_var *out =
                value(L, at, strf(L, "out%d_%d", j, k), KT_I32, vec(L, KO_LANE, KT_I32, ref(L, s), NULL, NULL, k));
            kir_store(m, at, param(L, "y"), ref(L, row), ref(L, out));
        }
    }
}

static void lower_lut(lower *L) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    const int32_t G = kn->groups, GB = lut_block_bytes(kn);
    L->f = kir_func_add(m, kn->symbol, KSIG_KERNEL, true);
    L->f->comment = kir_strf(m, "%s: %dx%d, %d rows per block, %d groups of %d columns, %d bytes per block",
                             kn->strategy, kn->rows, kn->cols, LUT_ROWS, G, LUT_GROUP_COLS, GB);
    if (kn->lut_window)
        L->f->comment =
            kir_strf(m, "%s (a window of %d groups from the block's header)", L->f->comment, kn->lut_window);
    kir_list l = kir_list_of(&L->f->body), blk, rows;
    kir_var *tab =
        kir_var_new(m, "tab", kn->lut_vector ? KT_LUTV : KT_LUT16, kn->lut_vector ? 4 * G : 4 * LUT_ENTRIES * G);
    kir_stmt *d = kir_decl(m, &l, tab, NULL, false);
    if (!kn->lut_vector) d->text = "256 bytes per group: 306 KB at 14336 columns";
    if (kn->lut_vector)
        lut_vector_tables(L, &l, tab);
    else
        lut_scalar_tables(L, &l, tab);
    if (!kn->lut_vector || kn->lut_window) { /* blocks one by one */
        kir_stmt *f = loop(L, &l, "b", "block", param(L, "block_begin"), param(L, "block_end"), &blk);
        kir_var *b = f->var, *w = var(L, "w", KT_PU8), *g0 = NULL;
        kir_expr *at = idx(L, param(L, "data"), mul(L, wide(L, ref(L, b)), size(L, GB)));
        if (kn->lut_window) { /* the window's first group from the header, then its groups */
            kir_var *hdr = var(L, "hdr", KT_PU8);
            g0 = var(L, "g0", KT_I32);
            kir_decl(m, &blk, hdr, at, true);
            kir_decl(m, &blk, g0, kir_load(m, KT_I32, kir_reinterpret(m, KT_PU32, ref(L, hdr)), num(L, 0)), true);
            at = idx(L, ref(L, hdr), size(L, LUT_WINDOW_HEADER));
        }
        kir_decl(m, &blk, w, at, true);
        if (kn->lut_vector) {
            lut_vector_blocks(L, &blk, tab, w, ref(L, b), g0, 1);
            return;
        }
        /* a block's rows one by one, the last block's only as far as the matrix goes */
        kir_var *r = var(L, "r", KT_INT);
        kir_expr *row = add(L, mul(L, ref(L, b), num(L, LUT_ROWS)), ref(L, r));
        kir_expr *cond = kir_bin(m, KO_LAND, KT_INT, lt(L, ref(L, r), num(L, LUT_ROWS)), lt(L, row, num(L, kn->rows)));
        kir_for(m, &blk, r, num(L, 0), cond, 1, &rows)->label = "row";
        kir_expr *sum = lut_scalar_row(L, &rows, w, tab, r, g0);
        kir_store(m, &rows, param(L, "y"), add(L, mul(L, ref(L, b), num(L, LUT_ROWS)), ref(L, r)), sum);
        return;
    }
    /* blocks in fours (each load of a group's tables serves all of them: they outgrow L1), then one by one */
    kir_var *b = var(L, "b", KT_I32);
    kir_decl(m, &l, b, param(L, "block_begin"), false);
    for (int nb = LUT_NB; nb >= 1; nb /= LUT_NB) {
        kir_expr *cond = kir_bin(m, KO_LE, KT_INT, add(L, ref(L, b), num(L, nb)), param(L, "block_end"));
        kir_stmt *f = kir_for(m, &l, b, NULL, cond, nb, &blk);
        f->label = nb > 1 ? "quad" : "block";
        kir_var *w = value(L, &blk, "w", KT_PU8, idx(L, param(L, "data"), mul(L, wide(L, ref(L, b)), size(L, GB))));
        lut_vector_blocks(L, &blk, tab, w, ref(L, b), NULL, nb);
    }
}

static void kir_info_fill(kir_module *m, const rsrc_kernel *kn) {
    kir_info *i = &m->info;
    i->symbol = kir_strf(m, "%s", kn->symbol);
    i->batch_symbol = kn->batch_symbol ? kir_strf(m, "%s", kn->batch_symbol) : NULL;
    i->strategy = kn->strategy;
    i->rows = kn->rows, i->cols = kn->cols;
    i->isa = kn->isa, i->vec_bytes = kn->vec_bytes;
    i->gpu_entry = kn->gpu_entry;
    i->lanes = kn->lanes_min != 0;
    i->lanes_pairs = i->lanes && lanes_pairs(kn);
    i->block_rows = kn->block_rows, i->num_blocks = kn->num_blocks;
    i->cta_warps = kn->cta_warps, i->gpu_split = kn->gpu_split;
    i->block_bytes = kn->form == KF_I2 ? kn->block_rows * i2_row_bytes(kn) : 0;
    i->planes = kn->tm && kn->tm->unit_cols ? kn->tm->planes : 0;
    i->data_offset = kn->data_offset;
}

kir_module *kir_lower(const rsrc_kernel *kn) {
    kir_module *m = kir_open();
    kir_info_fill(m, kn);
    if (target_forms[kn->kind]) { /* the forms its target's kind has of its own */
        target_forms[kn->kind](m, kn);
        return m;
    }
    lower L = {.m = m, .kn = kn};
    switch (kn->form) {
    case KF_UNROLLED: lower_unrolled(&L); break;
    case KF_LOOP: lower_loop(&L); break;
    case KF_LUT: lower_lut(&L); break;
    default:
        if (kn->rows_in_lanes) {
            lower_i2_rows(&L);
            if (kn->batch_symbol) lower_units_batch(&L, rows_tile);
            break;
        }
        if (kn->unit_cols) {
            lower_i2_units(&L);
            if (kn->batch_symbol) lower_units_batch(&L, lower_units_tile);
            break;
        }
        lower_i2(&L);
        if (kn->batch_symbol) {
            char *name = kn->lanes_min ? xasprintf("%s_tiles", kn->batch_symbol) : xstrdup(kn->batch_symbol);
            lower_i2_batch(&L, kir_strf(L.m, "%s", name), !kn->lanes_min);
            free(name);
            if (kn->lanes_min) lower_lanes_batch(&L, L.f);
        }
        break;
    }
    return L.m;
}
