/*
 * lower_gpu.c — the GPU forms of kernel.c as kernel IR (kir.h): i2 with dp4a and the RSR warp
 * form. A warp computes a block of rows; its 32 lanes stride over the block's data, and warp sums
 * gather the lanes' partial sums. Two routes call a matrix differently (kernel.gpu_entry):
 *   - LLVM NVPTX: an entry of its own, (data, x, y), one warp per block of rows; lane 0 stores the
 *     block's rows. i2 reads x and the weights a 32-bit word at a time.
 *   - CUDA (NVRTC): a warp-level device function, (data, xq, b, slice, lane, sums), under a group
 *     entry that made x in shared memory (emit_cuda.c); `slice` of gpu_split warps share the
 *     block, and every lane ends with the block's sums. Words are read 16 bytes at a time.
 * i2's arithmetic of a group of 16 columns is one helper (dp4a_rows) for both, and the warp
 * form's sums one lowering (warp_sums).
 */
#include "ir/kir.h"
#include "ir/lower.h"
#include "cuda_printer.h"
#include "rsrc.h"

#define DP4A_CODES 0x03030303 /* the low 2 bits of each byte: a field of 4 columns' codes */
#define DP4A_ONES 0x01010101  /* dp4a with it sums x's four bytes */
#define GPU_BLOCK_ROWS_MAX 8  /* rows of an i2 block (kernel.c: 4) */

static kir_expr *dp4a(lower *L, kir_expr *a, kir_expr *b, kir_expr *c) {
    return kir_vec(L->m, KO_DP4A, KT_I32, a, b, c, 0);
}

static kir_expr *bin(lower *L, enum kir_op op, kir_expr *a, kir_expr *b) { return kir_bin(L->m, op, a->type, a, b); }

static kir_expr *warp_sum(lower *L, kir_expr *a) { return kir_vec(L->m, KO_WARP_SUM, KT_I32, a, NULL, NULL, 0); }

/* One group of 16 columns: x's four words xw[0..4) (word i holds columns 4i..4i+3) into Σx (sx),
 * and row r's word of codes, word(r), into a[r]: field i of the word, (p >> 2i) & 0x03030303,
 * against x's word i. The codes are weight + 1, so Σx comes off at the end. */
static void dp4a_sum_x(lower *L, kir_list *l, kir_expr *xw, kir_var *sx, int i) {
    kir_set(L->m, l, sx, dp4a(L, xw, hex(L, KT_I32, DP4A_ONES), ref(L, sx)))->join = i % 2 == 1;
}

typedef kir_expr *(*row_word_fn)(lower *L, kir_list *l, int r, void *ctx);
static void dp4a_rows(lower *L, kir_list *l, kir_expr *const xw[4], kir_var *const *a, row_word_fn word, void *ctx) {
    for (int r = 0; r < L->kn->block_rows; r++) {
        kir_expr *p = word(L, l, r, ctx);
        for (int i = 0; i < 4; i++) {
            kir_expr *field = bin(L, KO_AND, i ? bin(L, KO_LSHR, p, num(L, 2 * i)) : p, hex(L, KT_I32, DP4A_CODES));
            kir_set(L->m, l, a[r], dp4a(L, field, xw[i], ref(L, a[r])))->join = i % 2 == 1;
        }
    }
}

/* the comment above an i2 kernel */
static const char *i2_comment(lower *L) {
    const rsrc_kernel *kn = L->kn;
    return kir_strf(L->m, "%s: %dx%d, %d blocks of %d rows, %d groups of 16 columns, %d warps per block", kn->strategy,
                    kn->rows, kn->cols, kn->num_blocks, kn->block_rows, i2_row_bytes(kn) / 4, kn->gpu_split);
}

/* sx and the R row accumulators, zero: int sx = 0, a0 = 0, ... */
static void i2_accumulators(lower *L, kir_list *l, kir_var **sx, kir_var **a) {
    *sx = var(L, "sx", KT_I32);
    kir_stmt *d = kir_decl(L->m, l, *sx, num(L, 0), false);
    for (int r = 0; r < L->kn->block_rows; r++) {
        a[r] = var(L, strf(L, "a%d", r, 0), KT_I32);
        kir_decl_also(L->m, d, a[r], num(L, 0));
    }
}

/* NVPTX: row r's word of group g is w[g·R + r] */
static kir_expr *entry_word(lower *L, kir_list *l, int r, void *ctx) {
    (void)l;
    kir_var **wg = ctx; /* w, g */
    kir_expr *i = add(L, mul(L, ref(L, wg[1]), num(L, L->kn->block_rows)), num(L, r));
    return kir_load(L->m, KT_U32, ref(L, wg[0]), i);
}

/* An LLVM NVPTX entry's warp: block (warp `block` of the grid takes that block of rows) and lane. */
static void entry_warp(lower *L, kir_list *l, kir_var *b, kir_var *lane) {
    kir_module *m = L->m;
    kir_var *tid = var(L, "tid", KT_I32), *cta = var(L, "cta", KT_I32);
    kir_decl(m, l, tid, kir_vec(m, KO_THREAD, KT_I32, NULL, NULL, NULL, 0), true);
    kir_decl(m, l, cta, kir_vec(m, KO_CTA, KT_I32, NULL, NULL, NULL, 0), true);
    kir_decl(m, l, lane, bin(L, KO_AND, ref(L, tid), num(L, 31)), true);
    kir_decl(m, l, b, add(L, mul(L, ref(L, cta), num(L, L->kn->cta_warps)), bin(L, KO_LSHR, ref(L, tid), num(L, 5))),
             true);
}

/* An entry's rows b·R + r (those below the matrix's rows) from v[r]: y[row] = v[r]. */
static void rows_store(lower *L, kir_list *l, kir_var *b, int R, kir_expr *const *v) {
    kir_module *m = L->m;
    kir_var *row0 = var(L, "row0", KT_I32);
    kir_decl(m, l, row0, mul(L, ref(L, b), num(L, R)), true);
    for (int r = 0; r < R; r++) {
        kir_expr *row = add(L, ref(L, row0), num(L, r));
        kir_list *sl = l, then;
        if (L->kn->rows % R) kir_if(m, l, lt(L, row, num(L, L->kn->rows)), &then)->layout = KL_SAME_LINE, sl = &then;
        kir_store(m, sl, param(L, "y"), row, v[r]);
    }
}

/* The LLVM NVPTX entry: warp `block` of the grid takes that block of rows. */
static void lower_i2_entry(lower *L) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    int R = kn->block_rows, words = i2_row_bytes(kn) / 4;
    if (R > GPU_BLOCK_ROWS_MAX) rsrc_fatal("internal error: %s: blocks of %d rows", kn->symbol, R);
    L->f = kir_func_add(m, kn->symbol, KSIG_GPU_ENTRY, true);
    L->f->comment = i2_comment(L);
    kir_list l = kir_list_of(&L->f->body), in, gl, l0;
    kir_var *lane = var(L, "lane", KT_I32), *b = var(L, "block", KT_I32), *w = var(L, "w", KT_PU32),
            *xw = var(L, "xw", KT_PU32), *sx, *a[GPU_BLOCK_ROWS_MAX];
    entry_warp(L, &l, b, lane);
    kir_if(m, &l, lt(L, ref(L, b), num(L, kn->num_blocks)), &in);
    kir_expr *wb = idx(L, param(L, "data"), mul(L, wide(L, ref(L, b)), size(L, (int64_t)R * words * 4)));
    kir_decl(m, &in, w, kir_reinterpret(m, KT_PU32, wb), true);
    kir_decl(m, &in, xw, kir_reinterpret(m, KT_PU32, param(L, "x")), true);
    i2_accumulators(L, &in, &sx, a);
    kir_stmt *f = kir_for(m, &in, var(L, "g", KT_I32), ref(L, lane), lt(L, NULL, num(L, words)), 32, &gl);
    f->cond->a = ref(L, f->var);
    f->label = "group";
    kir_expr *x4[4];
    for (int i = 0; i < 4; i++) {
        kir_var *xi = var(L, strf(L, "x%d", i, 0), KT_U32);
        kir_decl(m, &gl, xi, kir_load(m, KT_U32, ref(L, xw), add(L, mul(L, ref(L, f->var), num(L, 4)), num(L, i))),
                 true);
        x4[i] = ref(L, xi);
        dp4a_sum_x(L, &gl, x4[i], sx, 0);
    }
    kir_var *wg[] = {w, f->var};
    dp4a_rows(L, &gl, x4, a, entry_word, wg);
    kir_var *sum_x = var(L, "sum_x", KT_I32), *s[GPU_BLOCK_ROWS_MAX];
    kir_decl(m, &in, sum_x, warp_sum(L, ref(L, sx)), true);
    for (int r = 0; r < R; r++) {
        s[r] = var(L, strf(L, "s%d", r, 0), KT_I32);
        kir_decl(m, &in, s[r], warp_sum(L, ref(L, a[r])), true);
    }
    kir_if(m, &in, kir_bin(m, KO_EQ, KT_INT, ref(L, lane), num(L, 0)), &l0);
    kir_expr *v[GPU_BLOCK_ROWS_MAX];
    for (int r = 0; r < R; r++) v[r] = sub(L, ref(L, s[r]), ref(L, sum_x));
    rows_store(L, &l0, b, R, v);
}

/* CUDA: row r's word is element r of the group's 16 bytes p4 */
static kir_expr *rows_word(lower *L, kir_list *l, int r, void *ctx) {
    kir_var *p = var(L, strf(L, "p%d", r, 0), KT_I32);
    kir_decl(L->m, l, p, kir_cast(L->m, KT_I32, kir_vec(L->m, KO_ELEM, KT_U32, ref(L, ctx), NULL, NULL, r)), true);
    return ref(L, p);
}

/* the CUDA route's device function: (data, xq, b, slice, lane, sums) */
static kir_func *rows_func(lower *L, const char *comment) {
    L->f = kir_func_add(L->m, L->kn->symbol, KSIG_GPU_ROWS, false);
    L->f->comment = comment;
    return L->f;
}

/* The CUDA route: slice s of S takes groups s·32 + lane, step S·32; group g is 16 bytes of each
 * of the R rows (p4) and x's 16 bytes (xg), one load each. */
static void lower_i2_rows(lower *L) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    int R = kn->block_rows, words = i2_row_bytes(kn) / 4, S = kn->gpu_split;
    if (R != 4) rsrc_fatal("internal error: %s: the dp4a kernel reads blocks of 4 rows", kn->symbol);
    kir_list l = kir_list_of(&rows_func(L, i2_comment(L))->body), in, gl;
    kir_var *sx, *a[GPU_BLOCK_ROWS_MAX], *w = var(L, "w", KT_PU32X4), *xv = var(L, "xv", KT_PI32X4);
    i2_accumulators(L, &l, &sx, a);
    kir_if(m, &l, lt(L, param(L, "b"), num(L, kn->num_blocks)), &in);
    kir_expr *wb = idx(L, param(L, "data"), mul(L, wide(L, param(L, "b")), size(L, (int64_t)R * words * 4)));
    kir_decl(m, &in, w, kir_reinterpret(m, KT_PU32X4, wb), true);
    kir_decl(m, &in, xv, kir_reinterpret(m, KT_PI32X4, param(L, "xq")), true);
    kir_expr *first = add(L, mul(L, param(L, "slice"), num(L, 32)), param(L, "lane"));
    kir_stmt *f = kir_for(m, &in, var(L, "g", KT_I32), first, lt(L, NULL, num(L, words)), 32 * S, &gl);
    f->cond->a = ref(L, f->var);
    f->unroll_hint = 4;
    kir_var *xg = var(L, "xg", KT_I32X4), *p4 = var(L, "p4", KT_U32X4);
    kir_decl(m, &gl, xg, kir_load(m, KT_I32X4, ref(L, xv), ref(L, f->var)), true);
    kir_decl(m, &gl, p4, kir_vec(m, KO_LDG, KT_U32X4, ref(L, w), ref(L, f->var), NULL, 0), true);
    kir_expr *x4[4];
    for (int i = 0; i < 4; i++) {
        x4[i] = kir_vec(m, KO_ELEM, KT_I32, ref(L, xg), NULL, NULL, i);
        dp4a_sum_x(L, &gl, x4[i], sx, i);
    }
    dp4a_rows(L, &gl, x4, a, rows_word, p4);
    kir_set(m, &l, sx, warp_sum(L, ref(L, sx)));
    for (int r = 0; r < R; r++)
        kir_store(m, &l, param(L, "sums"), num(L, r), sub(L, warp_sum(L, ref(L, a[r])), ref(L, sx)));
}

/* Where the RSR warp form reads its block, lane and input: the CUDA device function's
 * parameters, or (LLVM NVPTX) the entry's variables, one warp per block and x the entry's. */
typedef struct warp_io {
    kir_var *b, *lane; /* NULL: the parameters b and lane */
    int split;         /* warps sharing a block (an entry's: 1) */
} warp_io;

static kir_expr *io_b(lower *L, const warp_io *io) { return io->b ? ref(L, io->b) : param(L, "b"); }
static kir_expr *io_lane(lower *L, const warp_io *io) { return io->lane ? ref(L, io->lane) : param(L, "lane"); }

/* The warp's first kept column of the block: its slice's (slice s of S starts at s·32; an entry's
 * warp has the block alone). */
static kir_expr *warp_first(lower *L, const warp_io *io, kir_expr *start) {
    return io->b ? start : add(L, start, mul(L, param(L, "slice"), num(L, 32)));
}

/* The RSR warp form's sums: 32 kept columns of the block at a time (step S·32); a segment is a
 * run of lanes with equal codes. A segmented suffix sum (shuffles down) leaves each run's sum in
 * its first lane, which adds it to the k rows by the run's digits: acc[r], per lane. */
static void warp_sums(lower *L, kir_list *lp, const warp_io *io, kir_var **acc) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    const rsrc_plan *p = kn->plan;
    int k = p->k;
    kir_list l = *lp, body, hit, sh, run;
    kir_var *block_col = var(L, "block_col", KT_PU32), *entry = var(L, "entry", KT_PU32);
    kir_stmt *d = NULL;
    for (int r = 0; r < k; r++) {
        acc[r] = var(L, strf(L, "acc%d", r, 0), KT_I32);
        if (r)
            kir_decl_also(m, d, acc[r], num(L, 0));
        else
            d = kir_decl(m, &l, acc[r], num(L, 0), false);
    }
    kir_decl(m, &l, block_col, kir_reinterpret(m, KT_PU32, param(L, "data")), true);
    kir_decl(m, &l, entry, kir_reinterpret(m, KT_PU32, idx(L, param(L, "data"), size(L, (int64_t)kn->off_entry))),
             true);
    kir_var *in = var(L, "in", KT_BOOL), *e1 = var(L, "e1", KT_U32), *base = var(L, "base", KT_U32);
    kir_decl(m, &l, in, lt(L, io_b(L, io), num(L, p->num_blocks)), true)->text = "past the last block: no entries";
    kir_expr *zero = kir_const(m, KT_U32, 0);
    kir_expr *next = kir_load(m, KT_U32, ref(L, block_col), add(L, io_b(L, io), num(L, 1)));
    kir_decl(m, &l, e1, kir_vec(m, KO_SELECT, KT_U32, ref(L, in), next, zero, 0), true);
    kir_expr *start =
        kir_vec(m, KO_SELECT, KT_U32, ref(L, in), kir_load(m, KT_U32, ref(L, block_col), io_b(L, io)), zero, 0);
    kir_for(m, &l, base, warp_first(L, io, start), lt(L, ref(L, base), ref(L, e1)), 32 * io->split, &body);
    kir_var *j = var(L, "j", KT_U32), *code = var(L, "code", KT_U32), *v = var(L, "v", KT_I32),
            *e = var(L, "e", KT_U32);
    kir_decl(m, &body, j, add(L, ref(L, base), io_lane(L, io)), true);
    kir_decl(m, &body, code, hex(L, KT_U32, 0xffffffff), false)->text = "past the end: a code no column has";
    kir_decl(m, &body, v, num(L, 0), false);
    kir_if(m, &body, lt(L, ref(L, j), ref(L, e1)), &hit);
    kir_decl(m, &hit, e, kir_vec(m, KO_LDG, KT_U32, ref(L, entry), ref(L, j), NULL, 0), true);
    kir_set(m, &hit, code, bin(L, KO_LSHR, ref(L, e), num(L, 16)));
    kir_expr *xq = param(L, io->b ? "x" : "xq");
    kir_set(m, &hit, v, kir_load(m, KT_I32, xq, bin(L, KO_AND, ref(L, e), hex(L, KT_I32, 0xffff))));
    /* segmented suffix sums: each lane ends with the sum of its run from itself on */
    kir_var *dd = var(L, "d", KT_INT), *ov = var(L, "ov", KT_I32), *oc = var(L, "oc", KT_U32);
    kir_stmt *sf = kir_for(m, &body, dd, kir_const(m, KT_INT, 1), lt(L, ref(L, dd), kir_const(m, KT_INT, 32)), 1, &sh);
    sf->shift = true, sf->unroll_hint = -1;
    kir_decl(m, &sh, ov, kir_vec(m, KO_SHFL_DOWN, KT_I32, ref(L, v), ref(L, dd), NULL, 0), true);
    kir_decl(m, &sh, oc, kir_vec(m, KO_SHFL_DOWN, KT_U32, ref(L, code), ref(L, dd), NULL, 0), true);
    kir_list then;
    kir_expr *same = kir_bin(m, KO_LAND, KT_INT, lt(L, add(L, io_lane(L, io), ref(L, dd)), num(L, 32)),
                             kir_bin(m, KO_EQ, KT_INT, ref(L, oc), ref(L, code)));
    kir_if(m, &sh, same, &then)->layout = KL_SAME_LINE;
    kir_set(m, &then, v, add(L, ref(L, v), ref(L, ov)));
    kir_var *prev = var(L, "prev", KT_U32);
    kir_decl(m, &body, prev, kir_vec(m, KO_SHFL_UP, KT_U32, ref(L, code), num(L, 1), NULL, 0), true);
    kir_expr *first = kir_bin(m, KO_LOR, KT_INT, kir_bin(m, KO_EQ, KT_INT, io_lane(L, io), num(L, 0)),
                              kir_bin(m, KO_NE, KT_INT, ref(L, prev), ref(L, code)));
    kir_if(m, &body, kir_bin(m, KO_LAND, KT_INT, lt(L, ref(L, j), ref(L, e1)), first), &run); /* a run's first lane */
    for (int r = 0; r < k; r++) {
        kir_expr *bit = bin(L, KO_AND, bin(L, KO_LSHR, ref(L, code), num(L, r)), kir_const(m, KT_U32, 1));
        kir_expr *term;
        if (p->binary) {
            term =
                kir_vec(m, KO_SELECT, KT_I32, bit, ref(L, v), kir_vec(m, KO_NEG, KT_I32, ref(L, v), NULL, NULL, 0), 0);
        } else {
            kir_expr *plus = bin(L, KO_AND, bin(L, KO_LSHR, ref(L, code), num(L, k + r)), kir_const(m, KT_U32, 1));
            term = sub(L, mul(L, kir_cast(m, KT_I32, plus), ref(L, v)), mul(L, kir_cast(m, KT_I32, bit), ref(L, v)));
        }
        kir_set(m, &run, acc[r], add(L, ref(L, acc[r]), term));
    }
    *lp = l;
}

static const char *warp_comment(lower *L) {
    const rsrc_kernel *kn = L->kn;
    const rsrc_plan *p = kn->plan;
    return kir_strf(L->m, "%s: %dx%d, %s, k=%d, %d blocks, %llu segments, %llu columns kept, %d warps per block",
                    kn->strategy, p->rows, p->cols, p->binary ? "binary" : "ternary", p->k, p->num_blocks,
                    (unsigned long long)p->num_segments, (unsigned long long)p->num_cols_kept, kn->gpu_split);
}

/* The CUDA route: slice s of S of block b; every lane returns the block's k sums. */
static void lower_warp_rows(lower *L) {
    kir_list l = kir_list_of(&rows_func(L, warp_comment(L))->body);
    kir_var *acc[RSR_MAX_K];
    warp_io io = {.split = L->kn->gpu_split};
    warp_sums(L, &l, &io, acc);
    for (int r = 0; r < L->kn->plan->k; r++)
        kir_store(L->m, &l, param(L, "sums"), num(L, r), warp_sum(L, ref(L, acc[r])));
}

/* The LLVM NVPTX entry: warp `block` of the grid takes that block of k rows (past the last, none);
 * lane 0 stores them. */
static void lower_warp_entry(lower *L) {
    kir_module *m = L->m;
    const rsrc_kernel *kn = L->kn;
    int k = kn->plan->k;
    L->f = kir_func_add(m, kn->symbol, KSIG_GPU_ENTRY, true);
    L->f->comment = warp_comment(L);
    kir_list l = kir_list_of(&L->f->body), in, l0;
    warp_io io = {.b = var(L, "block", KT_I32), .lane = var(L, "lane", KT_I32), .split = kn->gpu_split};
    entry_warp(L, &l, io.b, io.lane);
    /* the whole warp or none: a warp past the last block reads nothing (LLVM loads both sides of
     * a select) */
    kir_if(m, &l, lt(L, ref(L, io.b), num(L, kn->num_blocks)), &in);
    kir_var *acc[RSR_MAX_K], *s[RSR_MAX_K];
    warp_sums(L, &in, &io, acc);
    for (int r = 0; r < k; r++) {
        s[r] = var(L, strf(L, "s%d", r, 0), KT_I32);
        kir_decl(m, &in, s[r], warp_sum(L, ref(L, acc[r])), true);
    }
    kir_if(m, &in, kir_bin(m, KO_EQ, KT_INT, ref(L, io.lane), num(L, 0)), &l0);
    kir_expr *v[RSR_MAX_K];
    for (int r = 0; r < k; r++) v[r] = ref(L, s[r]);
    rows_store(L, &l0, io.b, k, v);
}

void kir_lower_gpu(kir_module *m, const rsrc_kernel *kn) {
    lower L = {.m = m, .kn = kn};
    if (kn->form == KF_WARP)
        kn->gpu_entry ? lower_warp_entry(&L) : lower_warp_rows(&L);
    else if (kn->form == KF_I2 && kn->isa == DOT_DP4A)
        kn->gpu_entry ? lower_i2_entry(&L) : lower_i2_rows(&L);
    else
        rsrc_fatal("internal error: %s: form %d has no GPU lowering", kn->symbol, kn->form);
}
