/*
 * kir.h — the kernel IR: what a matrix's kernel does, once, for every printer to translate.
 *
 *   kernel (kernel.c: form, shapes, layout) ──kir_lower──▶ kir_module ──▶ C (emit_c.c)
 *                                                                   ──▶ CUDA C (emit_c.c's CUDA dialect)
 *                                                                   ──▶ LLVM IR, CPU or NVPTX (emit_llvm.c)
 *                                                                   ──▶ text (kir_print_renamed, --print=kernel)
 *
 * The stages: matrix.c lowers each matrix once (kir_lower: lower.c for the CPU forms, the
 * printer's own `lower` for the forms of its target, the GPU's in cuda/compiler/lower_gpu.c) and
 * hands the module to the printer the sink names (printer.h: a printer is a value in a table,
 * compiler/print/printers.c, and compiler/ reaches cuda/ only through it). A printer reads the module
 * and its kir_info, never the kernel description.
 *
 * A module is a list of functions; a function is a tree of statements over variables, and
 * expressions are trees of the operations below. Nothing in it is a printer's: the integer
 * operations, loads, stores and loops mean the same in C and in LLVM IR, and the vector
 * operations are the ones every printer already had under other names (the i2 group product
 * dot4, sum4, vsum, the batched field/bdot/bsum, the GPU's warp operations, the 512-bit byte
 * permutes, masked adds and byte dot products the vector lut is built of; the scalar lut is
 * integer operations whole, and the lanes pass's transpose and block are shared functions of
 * them, below).
 * A printer maps the abstract types (KT_VACC: the dot ISA's accumulator) and the vector
 * operations to its own vocabulary — C helper functions (compiler/print/templates/), CUDA intrinsics,
 * LLVM intrinsics — and decides nothing about the algorithm. A new instruction set is a lowering
 * choice (kernel.c) plus a case per vector operation in each printer; a new printer is a
 * kernel_printer in the table that translates these operations (docs/design.md).
 *
 * Statements carry a few layout hints for the C printer (kir_stmt.layout: a loop's body on its
 * line, the next one, or in braces): the generated C stays readable and stable.
 *
 * Shared functions (kir_func.shared): the lanes pass's helpers — the transpose of x, and the
 * block with its segment sums and their widening — depend on nothing of a matrix (the block only
 * on the target: staged or in registers, one pass or two), so they are the same in every module
 * that calls them, under a fixed name without the matrix's symbol. Each such module lowers its own
 * copy (lower.c, beside the batch entry that calls it with KS_CALLF), so that a module stays whole
 * for kir_print_renamed and for the kernel cache's key, and a printer prints a shared function once per
 * output: the LLVM printer builds its body the first time the name is missing from its LLVM
 * module and otherwise calls the one there (emit_llvm_kir); the C printer prints those of the
 * first module that has them into a C file, before that module's kernels, and skips the later
 * copies (its c_file), renaming what a shared function declares more than once (its
 * segments' values, repeated in LLVM's manner). Their vectors have types of their own (KT_B64,
 * KT_W16, KT_Y32) beside the vector lut's 512-bit ones, and the operations are the same or the
 * lanes' own (KO_XOR, KO_PERM2B of a constant, KO_SHUFFLE, KO_QUARTER, KO_SPLAT, loads and
 * stores through their pointers; KO_PIN and KO_OPAQUE say where LLVM must not move or forward
 * values, and mean nothing to C): LLVM gives both kinds of type the same vector
 * types, while the C printer writes the lut's as AVX-512 intrinsics (__m512i: that form exists on
 * AVX-512 VBMI only) and the lanes' as GNU vector types (rsr_b64: uint8_t vector_size(64);
 * rsr_w16, rsr_y32) with C's operators on them (^, +, >>), __builtin_shufflevector for a constant
 * permute or a quarter, __builtin_convertvector for a widening, and a load or store of less than
 * the type's alignment through a typedef that says so (rsr_b64u, rsr_y32u): the compiler lowers
 * those to whatever the ISA has (two ymm on AVX2, four xmm on NEON or SSE), so one definition
 * serves every target, as the hand-written C of the lanes did. Where LLVM kept a value per
 * segment and C wants a loop, the loop is over constants (LLVM repeats it) and what it carries a
 * kir_var.straight variable (LLVM keeps its values, C a variable).
 */
#ifndef RSRC_KIR_H
#define RSRC_KIR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct rsrc_kernel;
struct rsrc_arena;

/* Types. Pointers point at constant data except KT_PI32 (the output y and local arrays). */
enum kir_type {
    KT_VOID,
    KT_INT,   /* a loop counter of a few values: C int, LLVM i32 */
    KT_I32,   /* int32_t */
    KT_U32,   /* uint32_t: the same bits, unsigned in C only */
    KT_SIZE,  /* an offset in bytes or elements: size_t / i64 */
    KT_PU8,   /* const uint8_t *: the kernel's data (the blob) */
    KT_PI8,   /* const int8_t *: x */
    KT_PU16,  /* const uint16_t * */
    KT_PU32,  /* const uint32_t * */
    KT_PI32,  /* int32_t *: y */
    KT_VACC,  /* the i2 accumulator of the kernel's dot ISA (C rsr_vacc) */
    KT_CODES, /* one decoded field of V packed bytes (C rsr_codes) */
    KT_BACC,  /* a batched accumulator (C rsr_bacc) */
    KT_PAIR,  /* two rows' (or tokens') 16 bytes interleaved by 8-byte halves, for smmla (C rsr_pair) */
    KT_LUT16, /* an entry of the scalar lut's tables (int16_t, signed; local arrays only) */
    KT_LUTV,  /* one 64-byte plane of the vector lut's tables (C __m512i; local arrays only) */
    KT_BYTES, /* uint8_t *: scratch the kernel allocates and writes (the lanes pass's transposed x) */
    /* the GPU forms' 16-byte words (CUDA int4/uint4, LLVM <4 x i32>) and pointers to them; on
     * the CPU KT_I32X4 is four rows' sums (KO_VSUM4; C rsr_s4, a GNU vector) */
    KT_I32X4,
    KT_U32X4,
    KT_PI32X4,
    KT_PU32X4,
    KT_BOOL,   /* a condition kept in a variable (CUDA bool, LLVM i1) */
    KT_VACC16, /* the i2 pair sums of a maddubs ISA, 16-bit lanes (C rsr_vacc16; dot_isa_pair_sums) */
    /* the 512-bit vectors of the vector lut (C __m512i, __mmask64; KT_LUTV: 64 bytes) */
    KT_XW,     /* up to 16 bytes of x sign-extended to 16-bit lanes (LLVM <16 x i16>) */
    KT_V16,    /* 32 16-bit lanes */
    KT_V32,    /* 16 int32 lanes */
    KT_MASK64, /* 64 bits, one per byte lane */
    KT_PLUTV,  /* const pointer to KT_LUTV planes (into a local array of them) */
    /* the lanes pass's vectors: the same operations as the 512-bit ones on types of their own, which
     * the C printer writes as GNU vector types, not AVX-512's (below) */
    KT_B64,  /* 64 bytes (C rsr_b64) */
    KT_PB64, /* pointer to KT_B64 (C rsr_b64 *) */
    KT_W16,  /* 32 unsigned 16-bit lanes: a column's 64 tokens' bytes as words (C rsr_w16) */
    KT_PW16, /* pointer to KT_W16 */
    KT_Y32,  /* 16 int32 lanes: 16 tokens' sums (C rsr_y32) */
    KT_PY32, /* pointer to KT_Y32 */
    KT_COUNT
};
extern const char *const kir_type_names[KT_COUNT];

enum kir_op {
    /* leaves */
    KO_CONST, /* imm */
    KO_VAR,   /* var */
    /* scalar arithmetic on a, b (type of the result: the node's) */
    KO_ADD,
    KO_SUB,
    KO_MUL,
    KO_SHL,
    KO_LSHR,
    KO_AND,
    KO_LT, /* a < b as KT_INT, signed (C compares KT_U32 unsigned: the same below 2^31, as indices are) */
    KO_LE,
    KO_EQ,
    KO_NE,
    KO_LAND,        /* a && b (KT_INT) */
    KO_LOR,         /* a || b (KT_INT) */
    KO_NEG,         /* -a */
    KO_SELECT,      /* a ? b : c */
    KO_CAST,        /* a converted to the node's type: sign-extends to KT_SIZE, (int32_t)(...) between I32/U32,
                       truncates to KT_LUT16 */
    KO_LOAD,        /* a[b]: the element of pointer or array a at index b, widened to the node's type (a u16
                       to KT_SIZE: zero-extended); b NULL: *a; a vector's alignment imm (0: its type's) */
    KO_INDEX,       /* a + b: pointer (or local array) a advanced by b elements */
    KO_REINTERPRET, /* (T)(a): pointer a as another pointer type */
    /* the i2 vector vocabulary (kernel.c, KF_I2): V = the ISA's vector bytes */
    KO_VZERO, /* an accumulator of zeros (KT_VACC, KT_VACC16 or KT_BACC) */
    KO_DOT4,  /* a + the codes of one group (V packed bytes at b) · x[0..4V) at c */
    KO_SUM4,  /* a + Σ x[0..4V) at b */
    KO_VSUM,  /* the int32 sum of accumulator a's lanes (KT_VACC or KT_BACC) */
    KO_VSUM4, /* KT_I32X4: lane r the int32 sum of accumulator r's lanes, of a, b, c, d (KT_BACC) */
    KO_FIELD, /* the codes 0..2 of field imm of V packed bytes at a */
    KO_BDOT,  /* a + codes b · x[0..V) at c */
    KO_BDOTP, /* KO_BDOT into the 16-bit pair sums a (KT_VACC16): vpmaddubsw, no widening */
    KO_DOT4P, /* KO_DOT4 into the 16-bit pair sums a (KT_VACC16): vpmaddubsw, no widening per group */
    KO_WIDEN, /* a (KT_VACC; KT_BACC in tiles) + b's 16-bit lanes (KT_VACC16) summed in pairs (vpmaddwd) */
    KO_QDOT,  /* a + codes b (a row per int32 lane, 4 columns) · the 4 bytes of x at c in every lane (i2 per
                 unit with rows in lanes, kernel.c): a KT_VACC16, vpmaddubsw's pair sums; a KT_BACC, the
                 int32 lanes of the ISA's dot product (vpdpbusd) */
    KO_HALF,  /* lanes 4·imm .. 4·imm + 3 of accumulator a (KT_VACC, 8 lanes) as KT_I32X4 */
    /* the int8 matrix multiply (DOT_I8MM's tiles: 2 rows × 2 tokens per accumulator, kernel.c) */
    KO_PAIR,  /* codes a and b (two rows) as a KT_PAIR */
    KO_XPAIR, /* x[0..V) at a and at b (two tokens) as a KT_PAIR */
    KO_MMLA,  /* a + the 2 × 2 products of pair b (rows) and pair c (tokens): lane 2·row + token */
    KO_LANE,  /* lane imm of accumulator a, as KT_I32 */
    /* 512-bit vector operations (the vector lut form, kernel.c KF_LUT with lut_vector: AVX-512 VBMI's
     * byte permutes, VNNI's byte dot products). KO_CONST, KO_VZERO, KO_ADD, KO_SHL, KO_LSHR, KO_AND,
     * KO_OR, KO_NEG and KO_SELECT (a KT_MASK64 condition) work lane by lane on the node's vector type
     * (a constant: in every lane), KO_LANE reads one lane of a KT_V32. */
    KO_VCONST, /* a vector of the lanes vals[0..nvals) (KT_LUTV, KT_V16) */
    KO_XWORDS, /* x (a) from column b: the imm (<= 16) columns readable there, sign-extended (KT_XW) */
    KO_PERMW,  /* the 16-bit lanes of a (KT_XW) that the constant lanes vals name (KT_V16) */
    KO_MADDW,  /* a + b in the 16-bit lanes whose bit of the mask imm is set, a elsewhere (KT_V16) */
    KO_MSUBW,  /* a - b likewise */
    KO_PERM2B, /* per byte lane, the byte of a (0..63) or of c (64..127) that b's byte names, as the
                  node's type (a constant b: a fixed shuffle) */
    KO_VLOADB, /* the 64 bytes at a + b, or at a where b is NULL (KT_LUTV) */
    KO_MASK64, /* the 64 bits at a + b (KT_MASK64) */
    KO_DPBUSD, /* a (KT_V32) + per int32 lane the four products of b's unsigned bytes and c's signed ones */
    /* scratch memory, and the batched RSR form with tokens in lanes (kernel.c, "RSR lanes") */
    KO_ISNULL, /* a is a null pointer (KT_INT) */
    KO_ALLOC,  /* imm bytes aligned to 64, or null (KT_BYTES) */
    KO_FREE,   /* frees a */
    /* the GPU forms (kernel.c, KF_I2 with DOT_DP4A, and KF_WARP): a warp of 32 lanes */
    KO_THREAD,    /* the thread's index in its block (threadIdx.x) */
    KO_CTA,       /* the block's index in the grid (blockIdx.x) */
    KO_DP4A,      /* c + the dot product of the four signed bytes of a and of b (int32) */
    KO_WARP_SUM,  /* the sum of a over the warp's 32 lanes, in every lane */
    KO_SHFL_DOWN, /* a of lane + b (a lane's own a where lane + b is past the warp) */
    KO_SHFL_UP,   /* a of lane - b (a lane's own a where lane - b is below 0) */
    KO_LDG,       /* a[b] through the read-only data cache */
    KO_ELEM,      /* element imm (0..3) of the 16-byte word a */
    KO_OR,        /* a | b */
    KO_XOR,       /* a ^ b (lane by lane on a vector type, as KO_OR) */
    KO_DIV,       /* a / b, signed, rounded toward zero */
    /* the lanes pass's (kernel.c, "RSR lanes") */
    KO_SHUFFLE, /* lane vals[i] of a (0..n-1) or of b (n..2n-1), as the node's type (KT_Y32) */
    KO_QUARTER, /* lanes 16·imm .. 16·imm + 15 of a (KT_W16), zero-extended (KT_Y32) */
    KO_SPLAT,   /* the scalar a in every lane (KT_Y32) */
    KO_PIN,     /* a, computed where it stands: no later operation moves into it, nor it past them */
    KO_OPAQUE,  /* pointer a, through which the optimiser sees no earlier store */
    KO_STOREV,  /* stores the int32 lanes of b (KT_BACC) at a (KT_PI32, any int32's alignment): i2 per unit
                   with rows in lanes (kir_do) */
    KO_COUNT
};
extern const char *const kir_op_names[KO_COUNT];

typedef struct kir_var {
    const char *name;
    enum kir_type type;
    int32_t array; /* > 0: a local array of that many elements (of the type) */
    bool align64;  /* the array aligned to 64 bytes */
    bool straight; /* set only in straight-line code (no loop or if between its declaration and a set but
                      loops over constants): a printer may keep each value it takes, as LLVM does */
    int id;
} kir_var;

typedef struct kir_expr {
    enum kir_op op;
    enum kir_type type;
    bool hex; /* KO_CONST: printed in hexadecimal */
    int64_t imm;
    kir_var *var;
    struct kir_expr *a, *b, *c, *d; /* operands; d: of the lanes pass's four-operand operations only */
    const int32_t *vals;            /* KO_VCONST, KO_PERMW: constant lanes */
    int32_t nvals;
} kir_expr;

enum kir_stmt_kind {
    KS_DECL,   /* var (= init), more declarators of the same type in `more` */
    KS_SET,    /* var = value (C prints var += x, var -= x where value is var + x, var - x) */
    KS_STORE,  /* target[index] = value: target a pointer or array expression */
    KS_FOR,    /* for (var = init; cond; var += step) body; init NULL: var declared before */
    KS_IF,     /* if (cond) body */
    KS_CALL,   /* the function table `callee`[index](args): the unrolled form's blocks */
    KS_SCOPE,  /* { body } */
    KS_UNUSED, /* (void)var: a C variable that may go unused */
    KS_DO,     /* value, an operation done for its effect (the lut's tables and blocks) */
    KS_CALLF,  /* the module's function `callee`(args[0..nargs)) */
    KS_RETURN  /* return from the function */
};
/* The C printer's layout of a loop or if whose body is one statement: in braces, on the same
 * line, or on the next line without braces. */
enum kir_layout { KL_BRACES, KL_SAME_LINE, KL_NEXT_LINE };

typedef struct kir_stmt {
    enum kir_stmt_kind kind;
    enum kir_layout layout;
    bool c_const;        /* KS_DECL: C const (the variable is never set again) */
    bool unroll;         /* KS_FOR: over constants; LLVM repeats the body with the counter a constant */
    bool shift;          /* KS_FOR: the counter steps by var <<= step, not var += step */
    int32_t unroll_hint; /* KS_FOR, CUDA: #pragma unroll (-1) or #pragma unroll N; others ignore it */
    bool join;           /* C: printed on the line of the statement before */
    int32_t align;       /* KS_STORE of a vector: its alignment in bytes (0: the type's) */
    kir_var *var;
    kir_expr *init, *value, *cond, *index;
    int32_t step;
    const char *text;   /* KS_DECL: a trailing comment */
    const char *callee; /* KS_CALL: the table's name; KS_CALLF: the function's */
    const char *label;  /* KS_FOR: names the loop's blocks in LLVM IR (else the counter's name) */
    kir_expr *args[8];  /* KS_CALL: 2; KS_CALLF: nargs */
    int nargs;
    struct kir_stmt *more; /* KS_DECL: further declarators on the same line */
    struct kir_stmt *body; /* KS_FOR, KS_IF, KS_SCOPE */
    struct kir_stmt *next;
} kir_stmt;

/* The signatures every printer knows (rsr_artifact.h): params named as in C. */
enum kir_sig {
    KSIG_KERNEL,          /* rsr_kernel_fn: data, x, y, block_begin, block_end */
    KSIG_BATCH,           /* rsr_kernel_batch_fn: data, x, x_stride, y, y_stride, ntok, block_begin, block_end */
    KSIG_BLOCK,           /* an unrolled block: x, y */
    KSIG_GPU_ENTRY,       /* a GPU entry of its own (LLVM NVPTX): data, x, y; one warp per block of rows */
    KSIG_GPU_ROWS,        /* a warp's share of a block of rows (CUDA, under a group entry):
                       data, xq, b, slice, lane, sums */
    KSIG_LANES_TRANSPOSE, /* the lanes pass's transpose (shared): xu, x, x_stride, m, cols */
    KSIG_LANES_BLOCK,     /* its block against one pass (shared): xu, hdr, p, out */
    KSIG_LANES_BLOCK2     /* against two passes, the second's x slot bytes on (shared): xu, hdr, p, out, slot */
};
#define KIR_MAX_PARAMS 8

typedef struct kir_func {
    const char *name;
    enum kir_sig sig;
    bool exported; /* the artifact names it (else internal) */
    bool noinline;
    bool optsize;        /* LLVM: smaller over faster (no unrolling) */
    bool shared;         /* the same in every module of an artifact: printed once per output (below) */
    const char *comment; /* printed before it */
    kir_var *param[KIR_MAX_PARAMS];
    int nparams;
    kir_stmt *body;
    struct kir_func *next;
} kir_func;

/* A constant table of functions of one signature (the unrolled form's blocks). */
typedef struct kir_table {
    const char *name;
    enum kir_sig sig;
    kir_func **funcs;
    int32_t count;
    struct kir_table *next;
} kir_table;

/* What a module says of itself beside its code, for the printers (which never see the kernel
 * description it was lowered from): the names of its entries, the instruction set its vector
 * operations are of, whether the lanes pass occurs, and what a GPU printer records of the matrix.
 * The lowering fills it (kir_lower). */
typedef struct kir_info {
    const char *symbol, *batch_symbol; /* the entries the artifact calls; batch_symbol NULL: none */
    const char *strategy;              /* for the comments and records */
    int32_t rows, cols;
    int isa;                 /* enum dot_isa: KT_VACC's instructions */
    int32_t vec_bytes;       /* bytes of one vector of that ISA */
    bool gpu_entry;          /* GPU: entries of their own (LLVM NVPTX), else a group entry's device functions */
    bool lanes, lanes_pairs; /* the lanes pass occurs; against two passes at once */
    /* a GPU matrix: what the group entries and the artifact's GPU descriptor need */
    int32_t block_rows, num_blocks, cta_warps, gpu_split;
    int32_t block_bytes;  /* the data of each block of rows where all have one size (i2); 0: they differ */
    int32_t planes;       /* sums per unit of columns: the planes of them (0: per row) */
    uint64_t data_offset; /* the blob offset of the constant data */
} kir_info;

typedef struct kir_module {
    struct rsrc_arena *arena;
    kir_info info;
    kir_func *funcs, **last_func;
    kir_table *tables, **last_table;
    int nvars;
} kir_module;

/* ---- building (kir.c) ---- */
kir_module *kir_open(void);
void kir_close(kir_module *m);
kir_func *kir_func_add(kir_module *m, const char *name, enum kir_sig sig, bool exported);
kir_table *kir_table_add(kir_module *m, const char *name, enum kir_sig sig, kir_func **funcs, int32_t count);
kir_var *kir_var_new(kir_module *m, const char *name, enum kir_type type, int32_t array);
kir_var *kir_param(const kir_func *f, const char *name);

kir_expr *kir_const(kir_module *m, enum kir_type type, int64_t v);
kir_expr *kir_ref(kir_module *m, kir_var *v);
kir_expr *kir_bin(kir_module *m, enum kir_op op, enum kir_type type, kir_expr *a, kir_expr *b);
kir_expr *kir_cast(kir_module *m, enum kir_type type, kir_expr *a);
kir_expr *kir_load(kir_module *m, enum kir_type type, kir_expr *base, kir_expr *index);
kir_expr *kir_index(kir_module *m, kir_expr *base, kir_expr *offset);
kir_expr *kir_reinterpret(kir_module *m, enum kir_type type, kir_expr *a);
kir_expr *kir_vec(kir_module *m, enum kir_op op, enum kir_type type, kir_expr *a, kir_expr *b, kir_expr *c,
                  int64_t imm);
kir_expr *kir_vec4(kir_module *m, enum kir_op op, kir_expr *a, kir_expr *b, kir_expr *c, kir_expr *d, int64_t imm);
/* op (KO_VCONST, KO_PERMW of a) with the constant lanes vals[0..n), copied */
kir_expr *kir_lanes(kir_module *m, enum kir_op op, enum kir_type type, kir_expr *a, const int32_t *vals, int32_t n);

/* Statements are appended to a list through a cursor (a pointer to the list's last link). */
typedef struct kir_list {
    kir_stmt **tail;
} kir_list;
kir_list kir_list_of(kir_stmt **head);
kir_stmt *kir_stmt_add(kir_module *m, kir_list *l, enum kir_stmt_kind kind);
kir_stmt *kir_decl(kir_module *m, kir_list *l, kir_var *v, kir_expr *init, bool c_const);
/* another declarator of decl's type on its line: T a = 1, b = 2; */
kir_stmt *kir_decl_also(kir_module *m, kir_stmt *decl, kir_var *v, kir_expr *init);
kir_stmt *kir_set(kir_module *m, kir_list *l, kir_var *v, kir_expr *value);
kir_stmt *kir_store(kir_module *m, kir_list *l, kir_expr *target, kir_expr *index, kir_expr *value);
/* for (v = init; cond; v += step): returns the loop, whose body list *body is opened */
kir_stmt *kir_for(kir_module *m, kir_list *l, kir_var *v, kir_expr *init, kir_expr *cond, int32_t step, kir_list *body);
/* for (v = from; v < to; v++), the common case */
kir_stmt *kir_for_range(kir_module *m, kir_list *l, kir_var *v, kir_expr *from, kir_expr *to, kir_list *body);
kir_stmt *kir_if(kir_module *m, kir_list *l, kir_expr *cond, kir_list *then);
kir_stmt *kir_do(kir_module *m, kir_list *l, kir_expr *op);
/* the module's function f called with its signature's arguments */
kir_stmt *kir_callf(kir_module *m, kir_list *l, const kir_func *f, kir_expr *const *args);
const char *kir_strf(kir_module *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool kir_vector(enum kir_type t); /* a 512-bit type whose operations work lane by lane (a constant: in every lane) */

/* ---- lowering (lower.c; the GPU forms through their printer's lower, cuda/compiler/lower_gpu.c) ---- */
kir_module *kir_lower(const struct rsrc_kernel *kn); /* every form of kernel.c, once per matrix (matrix.c) */

/* ---- printing ---- */
/* the same with the names of functions and tables that begin with `from` (then '_' or their end)
 * beginning with `to` instead: a shared kernel under the first one's names, or placeholders */
void kir_print_renamed(FILE *out, const kir_module *m, const char *from, const char *to);
/* The C printer (emit_c.c) in a dialect: C for the CPU, or CUDA C (emit_cuda.c) with its own names
 * for the types and its own signatures. */
typedef struct c_dialect {
    const char *const *types; /* per kir_type */
    void (*signature)(FILE *out, const kir_func *f);
} c_dialect;
void emit_c_kir(FILE *out, const kir_module *m, const c_dialect *d); /* d NULL: C; without the shared functions */
/* What a C file of kernels holds beyond its prologue, so that the C printer prints each thing
 * once (emit_c_prologue fills it): the i2 dot products of the file's own instruction set (before
 * its first kernel in C: a file whose kernels are all LLVM's includes no intrinsics' header, a
 * third of a small model's compile) and of others, and the shared functions, by name. */
#define C_FILE_MAX_SHARED 8
typedef struct c_file {
    int isa;       /* enum dot_isa: the file's own, whose vocabulary is unprefixed (rsr_dot4) */
    bool vex;      /* the target has AVX-VNNI's VEX encoding (else AVX-512 VL's EVEX form on ymm) */
    unsigned isas; /* bit i: ISA i's vocabulary printed: the file's own as it is, others prefixed with
                    * their name (rsr_avx2_dot4) */
    char shared[C_FILE_MAX_SHARED][48];
    int nshared;
} c_file;

#endif
