/*
 * emit_llvm.c — the LLVM printer: the kernel descriptions of kernel.c built as LLVM IR through
 * the LLVM C API, optimised in-process (new pass manager, default<O3>) and written as textual
 * IR, assembly or a position-independent object for the link step.
 *
 * It walks exactly what emit_c.c walks — the RSR plan for the unrolled and loop forms, the i2
 * layout and dot ISA for i2 — so a kernel is described once and printed twice. Loops keep their
 * counters and accumulators in entry-block allocas; SROA/mem2reg turn them into SSA values, which
 * keeps this file free of hand-built phi nodes.
 *
 * LLVM 14 facts this relies on: LLVMRunPasses lives in
 * llvm-c/Transforms/PassBuilder.h; functions need "prefer-vector-width"="512" to vectorise at 512
 * bits; objects for a shared library must be PIC; the data layout comes from the target machine;
 * pointers are typed, so vector loads go through bitcasts. Integer reductions stay integer
 * (llvm.vector.reduce.add), so no fast-math flags are needed.
 *
 * A CUDA target selects the NVPTX route (triple nvptx64-nvidia-cuda): the same i2 description
 * becomes a kernel entry (nvvm.annotations) where a warp takes a block of rows, dp4a does the
 * dot products (inline PTX: LLVM 14 has no dp4a intrinsic) and shfl.sync.bfly the warp sums;
 * the output is PTX text. LLVM 14 knows PTX up to 7.5 and GPUs up to sm_86, so newer specs get
 * sm_86 PTX, which the driver JIT-compiles for the GPU at load time (rsrc --explain says so).
 */
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/ErrorHandling.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "rsrc.h"

struct llvm_emitter {
    const target *t;
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b, allocas;
    LLVMTargetMachineRef tm;
    char *cpu, *features;
    LLVMTypeRef i1, i8, i16, i32, i64, voidt, i8p, i32p, kernel_type, batch_type, block_type;
    bool gpu;                /* NVPTX: kernels are entries, PTX is the output */
    LLVMValueRef fn;         /* the function being built */
    uint64_t instructions;   /* in the functions finished so far (emit_llvm_size) */
    LLVMBasicBlockRef entry; /* its alloca block */
};

/* ---- setup: the target machine from the spec ---- */

static char *llvm_feature_string(const target *t) {
    size_t cap = 16;
    for (int i = 0; i < t->nfeatures; i++) cap += strlen(t->features[i]) + 2;
    for (int i = 0; i < t->ndisabled; i++) cap += strlen(t->disabled[i]) + 2;
    char *s = xcalloc(cap, 1);
    for (int i = 0; i < t->nfeatures; i++) strcat(strcat(strcat(s, *s ? "," : ""), "+"), t->features[i]);
    for (int i = 0; i < t->ndisabled; i++) strcat(strcat(strcat(s, *s ? "," : ""), "-"), t->disabled[i]);
    return s;
}

int llvm_nvptx_sm(const target *t) { return t->sm < LLVM_NVPTX_MAX_SM ? t->sm : LLVM_NVPTX_MAX_SM; }

/* LLVM's fatal errors (an unknown --cpu makes the x86 backend stop with "64-bit code requested
 * on a subtarget that doesn't support it!") end in fatal(): a message with the CPU and features
 * it was given, and the temporaries removed, instead of an abort. */
static char *llvm_fatal_context;
static void llvm_fatal(const char *reason) {
    fatal("LLVM stopped: %s (%s)", reason, llvm_fatal_context ? llvm_fatal_context : "");
}

llvm_emitter *emit_llvm_begin(const target *t, const char *module_name) {
    llvm_emitter *e = xcalloc(1, sizeof *e);
    e->t = t;
    e->gpu = t->kind == TK_CUDA;
    if (e->gpu) {
        LLVMInitializeNVPTXTargetInfo();
        LLVMInitializeNVPTXTarget();
        LLVMInitializeNVPTXTargetMC();
        LLVMInitializeNVPTXAsmPrinter();
    } else {
        LLVMInitializeX86TargetInfo();
        LLVMInitializeX86Target();
        LLVMInitializeX86TargetMC();
        LLVMInitializeX86AsmPrinter();
    }
    const char *triple = e->gpu ? "nvptx64-nvidia-cuda" : t->triple ? t->triple : "x86_64-pc-linux-gnu";
    LLVMTargetRef target_ref;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(triple, &target_ref, &err))
        fatal("target %s: LLVM does not know triple '%s': %s", t->name, triple, err);
    /* 'native' is the C compiler's word; LLVM's host CPU name is unreliable on new CPUs, so the
     * detected feature list (already in the spec) is what matters. */
    if (e->gpu) {
        e->cpu = xasprintf("sm_%d", llvm_nvptx_sm(t));
    } else if (!t->cpu || !strcmp(t->cpu, "native")) {
        char *host = LLVMGetHostCPUName();
        e->cpu = xstrdup(t->cpu ? host : "x86-64");
        LLVMDisposeMessage(host);
    } else {
        e->cpu = xstrdup(t->cpu);
    }
    e->features = e->gpu ? xstrdup(LLVM_NVPTX_PTX_FEATURE) : llvm_feature_string(t);
    free(llvm_fatal_context);
    llvm_fatal_context = xasprintf("target %s, cpu '%s', features '%s': check --cpu and --features against the "
                                   "warnings above",
                                   t->name, e->cpu, e->features);
    LLVMInstallFatalErrorHandler(llvm_fatal);
    static const LLVMCodeGenOptLevel levels[] = {LLVMCodeGenLevelNone, LLVMCodeGenLevelLess, LLVMCodeGenLevelDefault,
                                                 LLVMCodeGenLevelAggressive};
    e->tm = LLVMCreateTargetMachine(target_ref, triple, e->cpu, e->features,
                                    levels[t->opt_level >= 0 ? t->opt_level : 3], LLVMRelocPIC, LLVMCodeModelDefault);
    if (!e->tm) fatal("target %s: LLVM cannot create a target machine for cpu '%s'", t->name, e->cpu);
    e->ctx = LLVMContextCreate();
    e->mod = LLVMModuleCreateWithNameInContext(module_name, e->ctx);
    LLVMSetTarget(e->mod, triple);
    LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(e->tm);
    char *layout_str = LLVMCopyStringRepOfTargetData(layout);
    LLVMSetDataLayout(e->mod, layout_str);
    LLVMDisposeMessage(layout_str);
    LLVMDisposeTargetData(layout);
    e->b = LLVMCreateBuilderInContext(e->ctx);
    e->allocas = LLVMCreateBuilderInContext(e->ctx);
    e->i1 = LLVMInt1TypeInContext(e->ctx);
    e->i8 = LLVMInt8TypeInContext(e->ctx);
    e->i16 = LLVMInt16TypeInContext(e->ctx);
    e->i32 = LLVMInt32TypeInContext(e->ctx);
    e->i64 = LLVMInt64TypeInContext(e->ctx);
    e->voidt = LLVMVoidTypeInContext(e->ctx);
    e->i8p = LLVMPointerType(e->i8, 0);
    e->i32p = LLVMPointerType(e->i32, 0);
    LLVMTypeRef params[] = {e->i8p, e->i8p, e->i32p, e->i32, e->i32};
    e->kernel_type = LLVMFunctionType(e->voidt, params, e->gpu ? 3 : 5, 0); /* GPU: (data, x, y) */
    LLVMTypeRef tparams[] = {e->i8p, e->i8p, e->i32, e->i32p, e->i32, e->i32, e->i32, e->i32};
    e->batch_type = LLVMFunctionType(e->voidt, tparams, 8, 0); /* rsr_kernel_batch_fn */
    LLVMTypeRef bparams[] = {e->i8p, e->i32p};
    e->block_type = LLVMFunctionType(e->voidt, bparams, 2, 0);
    return e;
}

/* ---- small builders ---- */

static LLVMValueRef c32(llvm_emitter *e, int64_t v) { return LLVMConstInt(e->i32, (unsigned long long)v, 1); }
static LLVMValueRef c64(llvm_emitter *e, int64_t v) { return LLVMConstInt(e->i64, (unsigned long long)v, 1); }

static void add_fn_attr(llvm_emitter *e, LLVMValueRef fn, const char *key, const char *value) {
    LLVMAddAttributeAtIndex(
        fn, LLVMAttributeFunctionIndex,
        LLVMCreateStringAttribute(e->ctx, key, (unsigned)strlen(key), value, (unsigned)strlen(value)));
}

static void add_enum_attr(llvm_emitter *e, LLVMValueRef fn, unsigned index, const char *name) {
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, index, LLVMCreateEnumAttribute(e->ctx, kind, 0));
}

/* A GPU entry point: !nvvm.annotations = !{!{fn, !"kernel", i32 1}}. */
static void mark_kernel(llvm_emitter *e, LLVMValueRef fn) {
    LLVMValueRef md[] = {fn, LLVMMDStringInContext(e->ctx, "kernel", 6), LLVMConstInt(e->i32, 1, 0)};
    LLVMAddNamedMetadataOperand(e->mod, "nvvm.annotations", LLVMMDNodeInContext(e->ctx, md, 3));
}

/* Starts a function: an alloca block, then the body's first block under e->b. */
static LLVMValueRef begin_function(llvm_emitter *e, const char *name, LLVMTypeRef type, bool exported) {
    LLVMValueRef fn = LLVMAddFunction(e->mod, name, type);
    if (exported && e->gpu)
        mark_kernel(e, fn);
    else if (exported)
        LLVMSetVisibility(fn, LLVMHiddenVisibility); /* the artifact descriptor references it */
    else
        LLVMSetLinkage(fn, LLVMInternalLinkage);
    add_fn_attr(e, fn, "target-cpu", e->cpu);
    add_fn_attr(e, fn, "target-features", e->features);
    if (e->t->vector_bits >= 512 && !e->gpu) add_fn_attr(e, fn, "prefer-vector-width", "512");
    add_enum_attr(e, fn, LLVMAttributeFunctionIndex, "nounwind");
    e->fn = fn;
    e->entry = LLVMAppendBasicBlockInContext(e->ctx, fn, "entry");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(e->ctx, fn, "start");
    LLVMPositionBuilderAtEnd(e->allocas, e->entry);
    LLVMPositionBuilderAtEnd(e->b, body);
    return fn;
}

static void end_function(llvm_emitter *e) {
    LLVMBuildRetVoid(e->b);
    LLVMPositionBuilderAtEnd(e->allocas, e->entry);
    LLVMBuildBr(e->allocas, LLVMGetNextBasicBlock(e->entry));
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(e->fn); bb; bb = LLVMGetNextBasicBlock(bb))
        for (LLVMValueRef i = LLVMGetFirstInstruction(bb); i; i = LLVMGetNextInstruction(i)) e->instructions++;
}

/* A mutable variable: an entry-block alloca, initialised where the builder stands. */
static LLVMValueRef var(llvm_emitter *e, LLVMTypeRef type, LLVMValueRef init, const char *name) {
    LLVMValueRef v = LLVMBuildAlloca(e->allocas, type, name);
    LLVMBuildStore(e->b, init, v);
    return v;
}
static LLVMValueRef get(llvm_emitter *e, LLVMValueRef v) {
    return LLVMBuildLoad2(e->b, LLVMGetAllocatedType(v), v, "");
}
static void set(llvm_emitter *e, LLVMValueRef v, LLVMValueRef x) { LLVMBuildStore(e->b, x, v); }

/* for (i = from; i < to; i++): loop_begin leaves the builder in the body with L->i the counter. */
typedef struct loop {
    LLVMValueRef counter, i;
    LLVMBasicBlockRef head, exit;
} loop;

static void loop_begin(llvm_emitter *e, loop *L, LLVMValueRef from, LLVMValueRef to, const char *name) {
    L->counter = var(e, LLVMTypeOf(from), from, name);
    L->head = LLVMAppendBasicBlockInContext(e->ctx, e->fn, name);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(e->ctx, e->fn, name);
    L->exit = LLVMAppendBasicBlockInContext(e->ctx, e->fn, name);
    LLVMBuildBr(e->b, L->head);
    LLVMPositionBuilderAtEnd(e->b, L->head);
    L->i = get(e, L->counter);
    LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, L->i, to, ""), body, L->exit);
    LLVMPositionBuilderAtEnd(e->b, body);
}

static void loop_end(llvm_emitter *e, loop *L) {
    set(e, L->counter, LLVMBuildAdd(e->b, L->i, LLVMConstInt(LLVMTypeOf(L->i), 1, 0), ""));
    LLVMBuildBr(e->b, L->head);
    LLVMPositionBuilderAtEnd(e->b, L->exit);
}

/* if (cond) { ... }: returns the join block; the builder stands in the then-block. */
static LLVMBasicBlockRef if_begin(llvm_emitter *e, LLVMValueRef cond) {
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "then");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "join");
    LLVMBuildCondBr(e->b, cond, then, join);
    LLVMPositionBuilderAtEnd(e->b, then);
    return join;
}
static void if_end(llvm_emitter *e, LLVMBasicBlockRef join) {
    LLVMBuildBr(e->b, join);
    LLVMPositionBuilderAtEnd(e->b, join);
}

/* &base[index] for an i8* or i32* base. */
static LLVMValueRef at(llvm_emitter *e, LLVMTypeRef elem, LLVMValueRef base, LLVMValueRef index) {
    return LLVMBuildGEP2(e->b, elem, base, &index, 1, "");
}

static LLVMValueRef load_x(llvm_emitter *e, LLVMValueRef x, LLVMValueRef index) {
    return LLVMBuildSExt(e->b, LLVMBuildLoad2(e->b, e->i8, at(e, e->i8, x, index), ""), e->i32, "");
}

static void store_y(llvm_emitter *e, LLVMValueRef y, LLVMValueRef row, LLVMValueRef v) {
    LLVMBuildStore(e->b, v, at(e, e->i32, y, row));
}

static LLVMValueRef smin(llvm_emitter *e, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMValueRef intrinsic(llvm_emitter *e, const char *name, LLVMTypeRef ret, LLVMValueRef *args, unsigned n) {
    LLVMTypeRef types[4];
    for (unsigned i = 0; i < n; i++) types[i] = LLVMTypeOf(args[i]);
    LLVMTypeRef type = LLVMFunctionType(ret, types, n, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(e->mod, name);
    if (!fn) fn = LLVMAddFunction(e->mod, name, type);
    return LLVMBuildCall2(e->b, type, fn, args, n, "");
}

/* A shuffle of a (and b, lanes numbered after a's) by constant lane numbers. */
static LLVMValueRef shuffle(llvm_emitter *e, LLVMValueRef a, LLVMValueRef b, const int *idx, int n) {
    LLVMValueRef m[64];
    for (int i = 0; i < n; i++) m[i] = LLVMConstInt(e->i32, (unsigned long long)idx[i], 0);
    return LLVMBuildShuffleVector(e->b, a, b ? b : LLVMGetUndef(LLVMTypeOf(a)), LLVMConstVector(m, (unsigned)n), "");
}

static LLVMValueRef splat(LLVMTypeRef elem, int n, int64_t v) {
    LLVMValueRef lanes[64];
    for (int i = 0; i < n; i++) lanes[i] = LLVMConstInt(elem, (unsigned long long)v, 1);
    return LLVMConstVector(lanes, (unsigned)n);
}

/* ---- i2: the dot products of one ISA (same contract as emit_c_dot_helpers) ---- */

/* int32 lanes of an accumulator: a 256-bit vector on AVX2 and AVX-VNNI, else 16 (512-bit; the scalar form
 * sums 16 bytes into 16 lanes) */
static int acc_lanes(const kernel *kn) { return dot_isa_vector_bytes(kn->isa) == 32 ? 8 : 16; }

static LLVMTypeRef acc_type(llvm_emitter *e, const kernel *kn) {
    return LLVMVectorType(e->i32, (unsigned)acc_lanes(kn));
}

/* acc += codes · x, codes and x being <V x i8> (codes unsigned 0..2, x signed). */
static LLVMValueRef dot(llvm_emitter *e, const kernel *kn, LLVMValueRef acc, LLVMValueRef codes, LLVMValueRef x) {
    int V = kn->vec_bytes;
    switch (kn->isa) {
    case DOT_AVX512VNNI: {
        LLVMTypeRef v16 = LLVMVectorType(e->i32, 16);
        LLVMValueRef args[] = {acc, LLVMBuildBitCast(e->b, codes, v16, ""), LLVMBuildBitCast(e->b, x, v16, "")};
        return intrinsic(e, "llvm.x86.avx512.vpdpbusd.512", v16, args, 3);
    }
    case DOT_AVXVNNI: { /* the same intrinsic on ymm: VEX-encoded where the target has AVX-VNNI only */
        LLVMTypeRef v8 = LLVMVectorType(e->i32, 8);
        LLVMValueRef args[] = {acc, LLVMBuildBitCast(e->b, codes, v8, ""), LLVMBuildBitCast(e->b, x, v8, "")};
        return intrinsic(e, "llvm.x86.avx512.vpdpbusd.256", v8, args, 3);
    }
    case DOT_AVX512BW:
    case DOT_AVX2: {
        bool wide = kn->isa == DOT_AVX512BW;
        LLVMTypeRef pairs = LLVMVectorType(e->i16, (unsigned)V / 2);
        LLVMValueRef a1[] = {codes, x};
        LLVMValueRef s16 =
            intrinsic(e, wide ? "llvm.x86.avx512.pmaddubs.w.512" : "llvm.x86.avx2.pmadd.ub.sw", pairs, a1, 2);
        LLVMValueRef a2[] = {s16, splat(e->i16, V / 2, 1)};
        LLVMValueRef s32 =
            intrinsic(e, wide ? "llvm.x86.avx512.pmaddw.d.512" : "llvm.x86.avx2.pmadd.wd", acc_type(e, kn), a2, 2);
        return LLVMBuildAdd(e->b, acc, s32, "");
    }
    default: {
        LLVMTypeRef wide = LLVMVectorType(e->i32, (unsigned)V);
        LLVMValueRef p = LLVMBuildMul(e->b, LLVMBuildZExt(e->b, codes, wide, ""), LLVMBuildSExt(e->b, x, wide, ""), "");
        return LLVMBuildAdd(e->b, acc, p, "");
    }
    }
}

static LLVMValueRef load_vec(llvm_emitter *e, int V, LLVMValueRef base, LLVMValueRef offset) {
    LLVMTypeRef vt = LLVMVectorType(e->i8, (unsigned)V);
    LLVMValueRef p = LLVMBuildBitCast(e->b, at(e, e->i8, base, offset), LLVMPointerType(vt, 0), "");
    LLVMValueRef v = LLVMBuildLoad2(e->b, vt, p, "");
    LLVMSetAlignment(v, 1);
    return v;
}

static LLVMValueRef vsum(llvm_emitter *e, const kernel *kn, LLVMValueRef acc) {
    char name[48];
    snprintf(name, sizeof name, "llvm.vector.reduce.add.v%di32", acc_lanes(kn));
    return intrinsic(e, name, e->i32, &acc, 1);
}

/* Σ x over the padded columns (zero past cols by contract). */
static LLVMValueRef sum_of_x(llvm_emitter *e, const kernel *kn, LLVMValueRef x) {
    int V = kn->vec_bytes;
    LLVMValueRef sx = var(e, acc_type(e, kn), LLVMConstNull(acc_type(e, kn)), "sx"), ones = splat(e->i8, V, 1);
    loop G;
    loop_begin(e, &G, c32(e, 0), c32(e, kn->groups), "sumx");
    LLVMValueRef xg = LLVMBuildMul(e->b, G.i, c32(e, 4 * V), "");
    LLVMValueRef acc = get(e, sx);
    for (int i = 0; i < 4; i++)
        acc = dot(e, kn, acc, ones, load_vec(e, V, x, LLVMBuildAdd(e->b, xg, c32(e, i * V), "")));
    set(e, sx, acc);
    loop_end(e, &G);
    return vsum(e, kn, get(e, sx));
}

static LLVMValueRef i64_of(llvm_emitter *e, LLVMValueRef v) { return LLVMBuildSExt(e->b, v, e->i64, ""); }

static void emit_i2(llvm_emitter *e, const kernel *kn) {
    int V = kn->vec_bytes, R = kn->block_rows, rb = i2_row_bytes(kn);
    LLVMValueRef data = LLVMGetParam(e->fn, 0), x = LLVMGetParam(e->fn, 1), y = LLVMGetParam(e->fn, 2);
    LLVMTypeRef at_ = acc_type(e, kn);
    LLVMValueRef zero = LLVMConstNull(at_), three = splat(e->i8, V, 3);
    LLVMValueRef sum_x = sum_of_x(e, kn, x), xg;
    loop G, B;
    loop_begin(e, &B, LLVMGetParam(e->fn, 3), LLVMGetParam(e->fn, 4), "block");
    LLVMValueRef w = at(e, e->i8, data, LLVMBuildMul(e->b, i64_of(e, B.i), c64(e, (int64_t)R * rb), ""));
    /* one accumulator per row, or per row and field when fields are masked in place (kernel.c) */
    bool scaled = dot_isa_field_scaled(kn->isa);
    int F = scaled ? 4 : 1;
    LLVMValueRef a[8][4];
    for (int r = 0; r < R; r++)
        for (int f = 0; f < F; f++) a[r][f] = var(e, at_, zero, "a");
    loop_begin(e, &G, c32(e, 0), c32(e, kn->groups), "group");
    xg = LLVMBuildMul(e->b, G.i, c32(e, 4 * V), "");
    LLVMValueRef xv[4];
    for (int i = 0; i < 4; i++) xv[i] = load_vec(e, V, x, LLVMBuildAdd(e->b, xg, c32(e, i * V), ""));
    LLVMValueRef wg = LLVMBuildMul(e->b, G.i, c32(e, R * V), "");
    for (int r = 0; r < R; r++) {
        LLVMValueRef p = load_vec(e, V, w, LLVMBuildAdd(e->b, wg, c32(e, r * V), ""));
        LLVMValueRef ar = get(e, a[r][0]);
        for (int i = 0; i < 4; i++) {
            if (scaled) {
                LLVMValueRef codes = LLVMBuildAnd(e->b, p, splat(e->i8, V, 3 << (2 * i)), "");
                set(e, a[r][i], dot(e, kn, get(e, a[r][i]), codes, xv[i]));
                continue;
            }
            LLVMValueRef shifted = i ? LLVMBuildLShr(e->b, p, splat(e->i8, V, 2 * i), "") : p;
            ar = dot(e, kn, ar, LLVMBuildAnd(e->b, shifted, three, ""), xv[i]);
        }
        if (!scaled) set(e, a[r][0], ar);
    }
    loop_end(e, &G);
    LLVMValueRef row0 = LLVMBuildMul(e->b, B.i, c32(e, R), "");
    for (int r = 0; r < R; r++) {
        LLVMValueRef total = get(e, a[r][0]);
        for (int f = 1; f < F; f++) /* lanes of field f are exact multiples of 4^f */
            total = LLVMBuildAdd(e->b, total,
                                 LLVMBuildAShr(e->b, get(e, a[r][f]), splat(e->i32, acc_lanes(kn), 2 * f), ""), "");
        LLVMValueRef row = LLVMBuildAdd(e->b, row0, c32(e, r), "");
        LLVMBasicBlockRef join = NULL;
        if (kn->rows % R) join = if_begin(e, LLVMBuildICmp(e->b, LLVMIntSLT, row, c32(e, kn->rows), ""));
        store_y(e, y, row, LLVMBuildSub(e->b, vsum(e, kn, total), sum_x, ""));
        if (join) if_end(e, join);
    }
    loop_end(e, &B);
}

/* ---- lut: tables of x's triplet sums, looked up with vpermt2b and added with vpdpbusd
 * (kernel.c, KF_LUT; emit_c.c's rsr_lut_* helpers are the same steps in C) ---- */

static LLVMValueRef mask_const(llvm_emitter *e, uint32_t bits) {
    LLVMValueRef m[32];
    for (int i = 0; i < 32; i++) m[i] = LLVMConstInt(e->i1, (bits >> i) & 1, 0);
    return LLVMConstVector(m, 32);
}

/* Group g's four planes into tab (an array of <64 x i8>): x's columns 12g.. (`left` of them
 * readable when fewer than 12: the tail group, a constant), the same steps as rsr_lut_tables. */
static void lut_group_tables(llvm_emitter *e, LLVMValueRef x, LLVMValueRef tab, LLVMValueRef g, int left) {
    LLVMTypeRef v16i8 = LLVMVectorType(e->i8, 16), v4i32 = LLVMVectorType(e->i32, 4),
                v32i16 = LLVMVectorType(e->i16, 32);
    LLVMTypeRef v64i8 = LLVMVectorType(e->i8, 64);
    LLVMValueRef x0 = LLVMBuildMul(e->b, g, c32(e, LUT_GROUP_COLS), ""), xb;
    if (left >= LUT_GROUP_COLS) { /* three in-bounds words */
        LLVMValueRef w = LLVMConstNull(v4i32);
        for (int i = 0; i < 3; i++) {
            LLVMValueRef p =
                LLVMBuildBitCast(e->b, at(e, e->i8, x, LLVMBuildAdd(e->b, x0, c32(e, 4 * i), "")), e->i32p, "");
            LLVMValueRef v = LLVMBuildLoad2(e->b, e->i32, p, "");
            LLVMSetAlignment(v, 1);
            w = LLVMBuildInsertElement(e->b, w, v, c32(e, i), "");
        }
        xb = LLVMBuildBitCast(e->b, w, v16i8, "");
    } else {
        xb = LLVMConstNull(v16i8);
        for (int i = 0; i < left; i++)
            xb = LLVMBuildInsertElement(
                e->b, xb, LLVMBuildLoad2(e->b, e->i8, at(e, e->i8, x, LLVMBuildAdd(e->b, x0, c32(e, i), "")), ""),
                c32(e, i), "");
    }
    LLVMValueRef xw = LLVMBuildSExt(e->b, xb, LLVMVectorType(e->i16, 16), "");
    int plane[2][64];
    for (int hi = 0; hi < 2; hi++)
        for (int o = 0; o < 64; o++) plane[hi][o] = lut_plane_source(hi, o);
    for (int h = 0; h < 2; h++) {
        LLVMValueRef v = LLVMConstNull(v32i16);
        for (int j = 0; j < 3; j++) {
            int sel[32];
            uint32_t pos, neg;
            for (int l = 0; l < 32; l++) sel[l] = lut_spread(h, j, l);
            lut_digit_masks(j, &pos, &neg);
            LLVMValueRef xj = shuffle(e, xw, NULL, sel, 32);
            v = LLVMBuildSelect(e->b, mask_const(e, pos), LLVMBuildAdd(e->b, v, xj, ""), v, "");
            v = LLVMBuildSelect(e->b, mask_const(e, neg), LLVMBuildSub(e->b, v, xj, ""), v, "");
        }
        LLVMValueRef vb = LLVMBuildBitCast(e->b, v, v64i8, "");
        LLVMValueRef nb = LLVMBuildBitCast(e->b, LLVMBuildNeg(e->b, v, ""), v64i8, "");
        for (int hi = 0; hi < 2; hi++) {
            LLVMValueRef slot = LLVMBuildAdd(e->b, LLVMBuildMul(e->b, g, c32(e, 4), ""), c32(e, 2 * hi + h), "");
            LLVMValueRef st = LLVMBuildStore(e->b, shuffle(e, vb, nb, plane[hi], 64), at(e, v64i8, tab, slot));
            LLVMSetAlignment(st, 64);
        }
    }
}

/* Blocks blk..blk+nb-1 of the matrix against the tables (rsr_lut_blocks in C). */
static void lut_blocks(llvm_emitter *e, const kernel *kn, LLVMValueRef tab, LLVMValueRef blk, int nb) {
    const int32_t G = kn->groups;
    LLVMValueRef data = LLVMGetParam(e->fn, 0), y = LLVMGetParam(e->fn, 2);
    LLVMTypeRef v64i8 = LLVMVectorType(e->i8, 64), v16i32 = LLVMVectorType(e->i32, 16);
    LLVMValueRef w = at(e, e->i8, data, LLVMBuildMul(e->b, i64_of(e, blk), c64(e, (int64_t)G * LUT_GROUP_BYTES), ""));
    LLVMValueRef lo[2 * LUT_NB], hi[2 * LUT_NB];
    for (int j = 0; j < 2 * nb; j++)
        lo[j] = var(e, v16i32, LLVMConstNull(v16i32), "lo"), hi[j] = var(e, v16i32, LLVMConstNull(v16i32), "hi");
    LLVMValueRef low = splat(e->i8, 64, 0x0f), ones = LLVMBuildBitCast(e->b, splat(e->i8, 64, 1), v16i32, "");
    LLVMValueRef quarter[64];
    for (int i = 0; i < 64; i++) quarter[i] = LLVMConstInt(e->i8, (unsigned long long)lut_quarter(i), 0);
    LLVMValueRef qv = LLVMConstVector(quarter, 64);
    loop Gl;
    loop_begin(e, &Gl, c32(e, 0), c32(e, G), "group");
    LLVMValueRef t[4];
    for (int i = 0; i < 4; i++) {
        LLVMValueRef slot = LLVMBuildAdd(e->b, LLVMBuildMul(e->b, Gl.i, c32(e, 4), ""), c32(e, i), "");
        t[i] = LLVMBuildLoad2(e->b, v64i8, at(e, v64i8, tab, slot), "");
        LLVMSetAlignment(t[i], 64);
    }
    for (int j = 0; j < nb; j++) {
        LLVMValueRef wg = LLVMBuildAdd(e->b, LLVMBuildMul(e->b, Gl.i, c32(e, LUT_GROUP_BYTES), ""),
                                       c32(e, j * G * LUT_GROUP_BYTES), "");
        LLVMValueRef p = load_vec(e, 64, w, wg);
        LLVMValueRef idx[2] = {LLVMBuildAnd(e->b, p, low, ""), LLVMBuildLShr(e->b, p, splat(e->i8, 64, 4), "")};
        for (int h = 0; h < 2; h++) {
            LLVMValueRef mp = LLVMBuildBitCast(e->b, at(e, e->i8, w, LLVMBuildAdd(e->b, wg, c32(e, 64 + 8 * h), "")),
                                               LLVMPointerType(e->i64, 0), "");
            LLVMValueRef m = LLVMBuildLoad2(e->b, e->i64, mp, "");
            LLVMSetAlignment(m, 8);
            m = LLVMBuildBitCast(e->b, m, LLVMVectorType(e->i1, 64), "");
            LLVMValueRef i = LLVMBuildOr(e->b, idx[h], qv, "");
            i = LLVMBuildSelect(e->b, m, LLVMBuildOr(e->b, i, splat(e->i8, 64, 16), ""), i, "");
            LLVMValueRef a1[] = {t[0], i, t[1]}, a2[] = {t[2], i, t[3]};
            LLVMValueRef lb =
                LLVMBuildBitCast(e->b, intrinsic(e, "llvm.x86.avx512.vpermi2var.qi.512", v64i8, a1, 3), v16i32, "");
            LLVMValueRef hb =
                LLVMBuildBitCast(e->b, intrinsic(e, "llvm.x86.avx512.vpermi2var.qi.512", v64i8, a2, 3), v16i32, "");
            LLVMValueRef d1[] = {get(e, lo[2 * j + h]), lb, ones}, d2[] = {get(e, hi[2 * j + h]), ones, hb};
            set(e, lo[2 * j + h], intrinsic(e, "llvm.x86.avx512.vpdpbusd.512", v16i32, d1, 3));
            set(e, hi[2 * j + h], intrinsic(e, "llvm.x86.avx512.vpdpbusd.512", v16i32, d2, 3));
        }
    }
    loop_end(e, &Gl);
    LLVMValueRef row0 = LLVMBuildMul(e->b, blk, c32(e, LUT_ROWS), "");
    for (int j = 0; j < 2 * nb; j++) { /* rows 16j + k: 256 · Σ high bytes + Σ low bytes */
        LLVMValueRef s =
            LLVMBuildAdd(e->b, LLVMBuildShl(e->b, get(e, hi[j]), splat(e->i32, 16, 8), ""), get(e, lo[j]), "");
        for (int k = 0; k < 16; k++) {
            LLVMValueRef row = LLVMBuildAdd(e->b, row0, c32(e, 16 * j + k), "");
            LLVMBasicBlockRef join = NULL;
            if (kn->rows % LUT_ROWS) join = if_begin(e, LLVMBuildICmp(e->b, LLVMIntSLT, row, c32(e, kn->rows), ""));
            store_y(e, y, row, LLVMBuildExtractElement(e->b, s, c32(e, k), ""));
            if (join) if_end(e, join);
        }
    }
}

static void emit_lut(llvm_emitter *e, const kernel *kn) {
    if (!kn->lut_vector) fatal("internal error: %s: the LLVM printer has the vector lut form only", kn->symbol);
    const int32_t G = kn->groups;
    LLVMValueRef x = LLVMGetParam(e->fn, 1);
    LLVMTypeRef v64i8 = LLVMVectorType(e->i8, 64);
    LLVMValueRef tab = LLVMBuildArrayAlloca(e->allocas, v64i8, c32(e, 4 * G), "tab");
    LLVMSetAlignment(tab, 64);
    /* the tables: full groups in a loop, the tail group (fewer than 12 columns) after it */
    int32_t full = kn->cols / LUT_GROUP_COLS;
    loop T;
    loop_begin(e, &T, c32(e, 0), c32(e, full), "tables");
    lut_group_tables(e, x, tab, T.i, LUT_GROUP_COLS);
    loop_end(e, &T);
    if (full < G) lut_group_tables(e, x, tab, c32(e, full), kn->cols - LUT_GROUP_COLS * full);

    /* blocks in fours (each load of a group's tables serves all of them: they outgrow L1), then one by one */
    LLVMValueRef b0 = LLVMGetParam(e->fn, 3), b1 = LLVMGetParam(e->fn, 4);
    LLVMValueRef quads = LLVMBuildSDiv(e->b, LLVMBuildSub(e->b, b1, b0, ""), c32(e, LUT_NB), "");
    loop Q, B;
    loop_begin(e, &Q, c32(e, 0), quads, "quad");
    lut_blocks(e, kn, tab, LLVMBuildAdd(e->b, b0, LLVMBuildMul(e->b, Q.i, c32(e, LUT_NB), ""), ""), LUT_NB);
    loop_end(e, &Q);
    loop_begin(e, &B, LLVMBuildAdd(e->b, b0, LLVMBuildMul(e->b, quads, c32(e, LUT_NB), ""), ""), b1, "block");
    lut_blocks(e, kn, tab, B.i, 1);
    loop_end(e, &B);
}

/* One tile of T tokens of block w (batched i2, emit_c.c says how): fields decoded once for T tokens. */
static void emit_i2_tile(llvm_emitter *e, const kernel *kn, int T, LLVMValueRef w, LLVMValueRef b, LLVMValueRef t,
                         LLVMValueRef sum_x) {
    int V = kn->vec_bytes, R = kn->block_rows;
    LLVMValueRef x = LLVMGetParam(e->fn, 1), x_stride = LLVMGetParam(e->fn, 2), y = LLVMGetParam(e->fn, 3);
    LLVMValueRef y_stride = LLVMGetParam(e->fn, 4);
    LLVMTypeRef at_ = acc_type(e, kn);
    LLVMValueRef xt[RSR_BATCH_TILE_MAX], a[4][RSR_BATCH_TILE_MAX];
    for (int j = 0; j < T; j++) {
        LLVMValueRef tj = i64_of(e, LLVMBuildAdd(e->b, t, c32(e, j), ""));
        xt[j] = at(e, e->i8, x, LLVMBuildMul(e->b, tj, i64_of(e, x_stride), ""));
        for (int r = 0; r < R; r++) a[r][j] = var(e, at_, LLVMConstNull(at_), "a");
    }
    loop G;
    loop_begin(e, &G, c32(e, 0), c32(e, kn->groups), "group");
    LLVMValueRef xg = LLVMBuildMul(e->b, G.i, c32(e, 4 * V), ""), wg = LLVMBuildMul(e->b, G.i, c32(e, R * V), "");
    for (int i = 0; i < 4; i++) {
        LLVMValueRef codes[4];
        for (int r = 0; r < R; r++) {
            LLVMValueRef p = load_vec(e, V, w, LLVMBuildAdd(e->b, wg, c32(e, r * V), ""));
            if (i) p = LLVMBuildLShr(e->b, p, splat(e->i8, V, 2 * i), "");
            codes[r] = LLVMBuildAnd(e->b, p, splat(e->i8, V, 3), "");
        }
        for (int j = 0; j < T; j++) {
            LLVMValueRef xv = load_vec(e, V, xt[j], LLVMBuildAdd(e->b, xg, c32(e, i * V), ""));
            for (int r = 0; r < R; r++) set(e, a[r][j], dot(e, kn, get(e, a[r][j]), codes[r], xv));
        }
    }
    loop_end(e, &G);
    for (int j = 0; j < T; j++) {
        LLVMValueRef tj = LLVMBuildAdd(e->b, t, c32(e, j), "");
        LLVMValueRef sx = LLVMBuildLoad2(e->b, e->i32, at(e, e->i32, sum_x, tj), "");
        LLVMValueRef yt = at(e, e->i32, y, LLVMBuildMul(e->b, i64_of(e, tj), i64_of(e, y_stride), ""));
        for (int r = 0; r < R; r++) {
            LLVMValueRef row = LLVMBuildAdd(e->b, LLVMBuildMul(e->b, b, c32(e, R), ""), c32(e, r), "");
            LLVMBasicBlockRef join = NULL;
            if (kn->rows % R) join = if_begin(e, LLVMBuildICmp(e->b, LLVMIntSLT, row, c32(e, kn->rows), ""));
            store_y(e, yt, row, LLVMBuildSub(e->b, vsum(e, kn, get(e, a[r][j])), sx, ""));
            if (join) if_end(e, join);
        }
    }
}

/* Batched i2 (rsr_kernel_batch_fn): Σx per token, then per block tiles of kn->batch_tile tokens, the rest singly. */
static void emit_i2_batch(llvm_emitter *e, const kernel *kn) {
    int R = kn->block_rows, rb = i2_row_bytes(kn);
    LLVMValueRef data = LLVMGetParam(e->fn, 0), x = LLVMGetParam(e->fn, 1), x_stride = LLVMGetParam(e->fn, 2);
    LLVMValueRef ntok = LLVMGetParam(e->fn, 5);
    LLVMValueRef sum_x = LLVMBuildArrayAlloca(e->allocas, e->i32, c32(e, RSR_BATCH_MAX), "sum_x");
    loop T;
    loop_begin(e, &T, c32(e, 0), ntok, "token");
    LLVMValueRef xt = at(e, e->i8, x, LLVMBuildMul(e->b, i64_of(e, T.i), i64_of(e, x_stride), ""));
    LLVMBuildStore(e->b, sum_of_x(e, kn, xt), at(e, e->i32, sum_x, T.i));
    loop_end(e, &T);

    /* tiles outside, blocks inside: a tile's x stays in L1 while the blocks stream past it */
    loop B;
    LLVMValueRef tiles = LLVMBuildSDiv(e->b, ntok, c32(e, kn->batch_tile), "");
    loop_begin(e, &T, c32(e, 0), tiles, "tile");
    loop_begin(e, &B, LLVMGetParam(e->fn, 6), LLVMGetParam(e->fn, 7), "block");
    LLVMValueRef w = at(e, e->i8, data, LLVMBuildMul(e->b, i64_of(e, B.i), c64(e, (int64_t)R * rb), ""));
    emit_i2_tile(e, kn, kn->batch_tile, w, B.i, LLVMBuildMul(e->b, T.i, c32(e, kn->batch_tile), ""), sum_x);
    loop_end(e, &B);
    loop_end(e, &T);
    loop_begin(e, &T, LLVMBuildMul(e->b, tiles, c32(e, kn->batch_tile), ""), ntok, "rest");
    loop_begin(e, &B, LLVMGetParam(e->fn, 6), LLVMGetParam(e->fn, 7), "block");
    w = at(e, e->i8, data, LLVMBuildMul(e->b, i64_of(e, B.i), c64(e, (int64_t)R * rb), ""));
    emit_i2_tile(e, kn, 1, w, B.i, T.i, sum_x);
    loop_end(e, &B);
    loop_end(e, &T);
}

/* ---- batched RSR with tokens in lanes (kernel.c, "RSR lanes"; emit_c.c prints the same) ---- */

static LLVMTypeRef words(llvm_emitter *e) { return LLVMVectorType(e->i16, RSR_LANES / 2); }
static LLVMTypeRef lanes32(llvm_emitter *e) { return LLVMVectorType(e->i32, 16); }

/* Lanes 16q..16q+15 of the 32 words a, zero-extended to int32. */
static LLVMValueRef quarter(llvm_emitter *e, LLVMValueRef a, int half) {
    int idx[16];
    for (int i = 0; i < 16; i++) idx[i] = 16 * half + i;
    return LLVMBuildZExt(e->b, shuffle(e, a, NULL, idx, 16), lanes32(e), "");
}

/* u[0..3] (vars) += the sums of columns p[j..end) of xu, still biased (tokens 0-15, 16-31, 32-47,
 * 48-63): per run of at most RSR_LANE_RUN columns the words and the high bytes in 16-bit lanes. */
static void lanes_segment(llvm_emitter *e, LLVMValueRef xu, LLVMValueRef p, LLVMValueRef j, LLVMValueRef end,
                          LLVMValueRef *u) {
    LLVMTypeRef w16 = words(e), w16p = LLVMPointerType(w16, 0);
    LLVMValueRef runs =
        LLVMBuildSDiv(e->b, LLVMBuildAdd(e->b, LLVMBuildSub(e->b, end, j, ""), c32(e, RSR_LANE_RUN - 1), ""),
                      c32(e, RSR_LANE_RUN), "");
    loop C;
    loop_begin(e, &C, c32(e, 0), runs, "run");
    LLVMValueRef from = LLVMBuildAdd(e->b, j, LLVMBuildMul(e->b, C.i, c32(e, RSR_LANE_RUN), ""), "");
    LLVMValueRef lim = LLVMBuildAdd(e->b, from, c32(e, RSR_LANE_RUN), "");
    LLVMValueRef stop = smin(e, lim, end);
    LLVMValueRef sw = var(e, w16, LLVMConstNull(w16), "sw"), sh = var(e, w16, LLVMConstNull(w16), "sh");
    loop K;
    loop_begin(e, &K, from, stop, "col");
    LLVMValueRef col = LLVMBuildZExt(e->b, LLVMBuildLoad2(e->b, e->i16, at(e, e->i16, p, K.i), ""), e->i64, "");
    LLVMValueRef addr = LLVMBuildBitCast(e->b, at(e, e->i8, xu, LLVMBuildShl(e->b, col, c64(e, 6), "")), w16p, "");
    LLVMValueRef v = LLVMBuildLoad2(e->b, w16, addr, "");
    LLVMSetAlignment(v, 64);
    set(e, sw, LLVMBuildAdd(e->b, get(e, sw), v, ""));
    set(e, sh, LLVMBuildAdd(e->b, get(e, sh), LLVMBuildLShr(e->b, v, splat(e->i16, RSR_LANES / 2, 8), ""), ""));
    loop_end(e, &K);
    LLVMValueRef hi = get(e, sh);
    LLVMValueRef lo = LLVMBuildSub(e->b, get(e, sw), LLVMBuildShl(e->b, hi, splat(e->i16, RSR_LANES / 2, 8), ""), "");
    LLVMValueRef parts[4] = {quarter(e, lo, 0), quarter(e, lo, 1), quarter(e, hi, 0), quarter(e, hi, 1)};
    for (int q = 0; q < 4; q++) set(e, u[q], LLVMBuildAdd(e->b, get(e, u[q]), parts[q], ""));
    loop_end(e, &C);
}

/* v itself, through an empty asm statement with side effects: the segment's additions stay after
 * its loop. Without it LLVM sinks every accumulator's additions to the end of the block, keeping
 * all 80 × 4 segment sums alive (20 KB of spills). */
static LLVMValueRef pin(llvm_emitter *e, LLVMValueRef v) {
    /* one asm operand per register: <16 x i32> is one zmm, two ymm or four xmm */
    int n = e->t->vector_bits >= 512 ? 16 : e->t->vector_bits >= 256 ? 8 : 4, idx[16];
    LLVMTypeRef t = LLVMVectorType(e->i32, (unsigned)n), type = LLVMFunctionType(t, &t, 1, 0);
    const char *constraints = n == 16 ? "=v,0" : "=x,0";
    LLVMValueRef fn =
        LLVMGetInlineAsm(type, "", 0, (char *)constraints, strlen(constraints), 1, 0, LLVMInlineAsmDialectATT, 0);
    LLVMValueRef parts[4];
    for (int k = 0; k < 16 / n; k++) {
        for (int i = 0; i < n; i++) idx[i] = k * n + i;
        LLVMValueRef part = shuffle(e, v, NULL, idx, n);
        parts[k] = LLVMBuildCall2(e->b, type, fn, &part, 1, "");
    }
    if (n == 16) return parts[0];
    for (int i = 0; i < 16; i++) idx[i] = i;
    if (n == 8) return shuffle(e, parts[0], parts[1], idx, 16);
    LLVMValueRef lo = shuffle(e, parts[0], parts[1], idx, 8), hi = shuffle(e, parts[2], parts[3], idx, 8);
    return shuffle(e, lo, hi, idx, 16);
}

/* void rsr_lanes_block(i8 *xu, i16 *hdr, i16 *p, i32 *out): out[4t + r] = row r of the block for
 * token t — the 80 codes' segments, each added to or subtracted from the rows its digits name,
 * less the bias 128·row_sum[r]. Once per module (the same for every matrix). */
static LLVMValueRef lanes_block_fn(llvm_emitter *e) {
    LLVMValueRef fn = LLVMGetNamedFunction(e->mod, "rsr_lanes_block");
    if (fn) return fn;
    LLVMTypeRef i16p = LLVMPointerType(e->i16, 0), v32p = LLVMPointerType(lanes32(e), 0);
    LLVMTypeRef params[] = {e->i8p, i16p, i16p, e->i32p};
    fn = begin_function(e, "rsr_lanes_block", LLVMFunctionType(e->voidt, params, 4, 0), false);
    add_enum_attr(e, fn, LLVMAttributeFunctionIndex, "noinline");
    /* optsize: no runtime unrolling of the 80 column loops, which at O3 grows the function to
     * ~100K instructions and spills the 16 accumulators around every loop */
    add_enum_attr(e, fn, LLVMAttributeFunctionIndex, "optsize");
    LLVMValueRef xu = LLVMGetParam(fn, 0), hdr = LLVMGetParam(fn, 1), p = LLVMGetParam(fn, 2),
                 out = LLVMGetParam(fn, 3);
    LLVMValueRef acc[4][4], u[4];
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++) acc[r][q] = LLVMConstNull(lanes32(e));
    for (int q = 0; q < 4; q++) u[q] = var(e, lanes32(e), LLVMConstNull(lanes32(e)), "u");
    LLVMValueRef begin = c32(e, 0);
    for (int c = 0; c < RSR_LANE_CODES; c++) {
        if (c == RSR_LANE_ZERO) continue; /* its segment is empty: code 41's begins where code 39's ends */
        LLVMValueRef end =
            LLVMBuildZExt(e->b, LLVMBuildLoad2(e->b, e->i16, at(e, e->i16, hdr, c64(e, c)), ""), e->i32, "");
        for (int q = 0; q < 4; q++) set(e, u[q], LLVMConstNull(lanes32(e)));
        lanes_segment(e, xu, p, begin, end, u);
        LLVMValueRef uv[4];
        for (int q = 0; q < 4; q++) uv[q] = get(e, u[q]);
        for (int r = 0; r < 4; r++) {
            int d = lanes_digit(c, r);
            for (int q = 0; q < 4 && d; q++)
                acc[r][q] =
                    pin(e, d > 0 ? LLVMBuildAdd(e->b, acc[r][q], uv[q], "") : LLVMBuildSub(e->b, acc[r][q], uv[q], ""));
        }
        begin = end;
    }
    LLVMValueRef rs = LLVMBuildBitCast(e->b, at(e, e->i16, hdr, c64(e, RSR_LANE_ROW_SUM)), e->i32p, "");
    LLVMValueRef outv = LLVMBuildBitCast(e->b, out, v32p, ""), row[4];
    for (int r = 0; r < 4; r++) {
        LLVMValueRef sum = LLVMBuildLoad2(e->b, e->i32, at(e, e->i32, rs, c64(e, r)), "");
        LLVMValueRef bias = LLVMBuildMul(e->b, sum, c32(e, 128), "");
        LLVMValueRef bv = LLVMBuildInsertElement(e->b, LLVMGetUndef(lanes32(e)), bias, c32(e, 0), "");
        int zeros[16] = {0};
        row[r] = shuffle(e, bv, NULL, zeros, 16); /* the bias of row r in every lane */
    }
    /* out[4t + r]: the four rows of token t side by side (emit_c.c prints the same shuffles) */
    for (int q = 0; q < 4; q++) {
        LLVMValueRef v[4];
        for (int r = 0; r < 4; r++) v[r] = LLVMBuildSub(e->b, acc[r][q], row[r], "");
        for (int h = 0; h < 2; h++) {
            int pair[16], quad[16];
            lanes_pair_mask(h, pair);
            LLVMValueRef lo = shuffle(e, v[0], v[1], pair, 16), hi = shuffle(e, v[2], v[3], pair, 16);
            for (int k = 0; k < 2; k++) {
                lanes_quad_mask(k, quad);
                LLVMValueRef idx = c64(e, 4 * q + 2 * h + k);
                LLVMValueRef st = LLVMBuildStore(e->b, shuffle(e, lo, hi, quad, 16),
                                                 LLVMBuildGEP2(e->b, lanes32(e), outv, &idx, 1, ""));
                LLVMSetAlignment(st, 4);
            }
        }
    }
    end_function(e);
    return fn;
}

static LLVMValueRef libc_fn(llvm_emitter *e, const char *name, LLVMTypeRef type) {
    LLVMValueRef fn = LLVMGetNamedFunction(e->mod, name);
    return fn ? fn : LLVMAddFunction(e->mod, name, type);
}

/* void rsr_lanes_transpose(i8 *xu, i8 *x, i32 x_stride, i32 m, i32 cols): xu[64c + l] = x[t][c] ^ 0x80
 * for the m tokens at x, l = 2t (t < 32) or 2(t - 32) + 1; 0x80 (x = 0) past m. Per 64 columns a
 * 64 × 64 byte transpose in six rounds (emit_c.c says how). Once per module. */
static LLVMValueRef lanes_transpose_fn(llvm_emitter *e) {
    LLVMValueRef fn = LLVMGetNamedFunction(e->mod, "rsr_lanes_transpose");
    if (fn) return fn;
    LLVMTypeRef params[] = {e->i8p, e->i8p, e->i32, e->i32, e->i32};
    fn = begin_function(e, "rsr_lanes_transpose", LLVMFunctionType(e->voidt, params, 5, 0), false);
    add_enum_attr(e, fn, LLVMAttributeFunctionIndex, "noinline");
    LLVMValueRef xu = LLVMGetParam(fn, 0), x = LLVMGetParam(fn, 1), x_stride = LLVMGetParam(fn, 2);
    LLVMValueRef m = LLVMGetParam(fn, 3), cols = LLVMGetParam(fn, 4);
    LLVMTypeRef b64 = LLVMVectorType(e->i8, 64), b64p = LLVMPointerType(b64, 0);
    LLVMValueRef zero = LLVMBuildAlloca(e->allocas, b64, "zero"); /* the x of tokens past m */
    LLVMBuildStore(e->b, LLVMConstNull(b64), zero);
    zero = LLVMBuildBitCast(e->b, zero, e->i8p, "");
    int zip[2][64];
    lanes_zip_mask(0, zip[0]), lanes_zip_mask(1, zip[1]);
    loop G;
    LLVMValueRef groups = LLVMBuildSDiv(e->b, LLVMBuildAdd(e->b, cols, c32(e, 63), ""), c32(e, 64), "");
    loop_begin(e, &G, c32(e, 0), groups, "cols64");
    LLVMValueRef c0 = i64_of(e, LLVMBuildMul(e->b, G.i, c32(e, 64), ""));
    LLVMValueRef r[64], o[64];
    for (int i = 0; i < 64; i++) {
        int t = lanes_token_of_row(i);
        LLVMValueRef row = LLVMBuildMul(e->b, c64(e, t), i64_of(e, x_stride), "");
        LLVMValueRef src = LLVMBuildSelect(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, c32(e, t), m, ""),
                                           at(e, e->i8, x, LLVMBuildAdd(e->b, row, c0, "")), zero, "");
        LLVMValueRef v = LLVMBuildLoad2(e->b, b64, LLVMBuildBitCast(e->b, src, b64p, ""), "");
        LLVMSetAlignment(v, 1);
        r[i] = LLVMBuildXor(e->b, v, splat(e->i8, 64, 0x80), "");
    }
    for (int round = 0; round < 6; round++) {
        for (int k = 0; k < 32; k++)
            o[2 * k] = shuffle(e, r[k], r[k + 32], zip[0], 64), o[2 * k + 1] = shuffle(e, r[k], r[k + 32], zip[1], 64);
        memcpy(r, o, sizeof r);
    }
    for (int i = 0; i < 64; i++) {
        LLVMValueRef dst = at(e, e->i8, xu, LLVMBuildMul(e->b, LLVMBuildAdd(e->b, c0, c64(e, i), ""), c64(e, 64), ""));
        LLVMValueRef st = LLVMBuildStore(e->b, r[i], LLVMBuildBitCast(e->b, dst, b64p, ""));
        LLVMSetAlignment(st, 64);
    }
    loop_end(e, &G);
    end_function(e);
    return fn;
}

/* if (cond) { tiles_fn(the caller's arguments); return; } */
static void tiles_instead_if(llvm_emitter *e, LLVMValueRef cond, LLVMValueRef tiles_fn, LLVMValueRef *params) {
    LLVMBasicBlockRef join = if_begin(e, cond);
    LLVMBuildCall2(e->b, e->batch_type, tiles_fn, params, 8, "");
    LLVMBuildRetVoid(e->b);
    LLVMPositionBuilderAtEnd(e->b, join);
}

/* Pass `slot` of the group whose first pass is `first`, of the nl tokens taken as lanes: its
 * first token (*t0), its tokens (*m, at most 64) and its transposed x in xu (returned). */
static LLVMValueRef lanes_pass(llvm_emitter *e, const kernel *kn, LLVMValueRef xu, LLVMValueRef first,
                               LLVMValueRef slot, LLVMValueRef nl, LLVMValueRef *t0, LLVMValueRef *m) {
    *t0 = LLVMBuildMul(e->b, LLVMBuildAdd(e->b, first, slot, ""), c32(e, RSR_LANES), "");
    *m = smin(e, LLVMBuildSub(e->b, nl, *t0, ""), c32(e, RSR_LANES));
    return at(e, e->i8, xu, LLVMBuildMul(e->b, i64_of(e, slot), c64(e, (int64_t)lanes_scratch_bytes(kn)), ""));
}

/* The body of rsr_kernel_N_batch in the lanes form (its function is begun by the caller): steps
 * of fewer than lanes_min tokens, or without scratch, through tiles_fn (the same arguments);
 * larger ones in passes of up to 64 tokens, x transposed once per pass. */
static void emit_lanes_batch(llvm_emitter *e, const kernel *kn, LLVMValueRef block_fn, LLVMValueRef transpose_fn,
                             LLVMValueRef tiles_fn) {
    const int R = kn->block_rows;
    LLVMValueRef params[8];
    for (unsigned i = 0; i < 8; i++) params[i] = LLVMGetParam(e->fn, i);
    LLVMValueRef data = params[0], x = params[1], x_stride = params[2], y = params[3], y_stride = params[4];
    LLVMValueRef ntok = params[5], b0 = params[6], b1 = params[7];
    LLVMTypeRef i16p = LLVMPointerType(e->i16, 0);
    LLVMTypeRef alloc_params[] = {e->i64, e->i64}, free_params[] = {e->i8p};
    LLVMTypeRef alloc_t = LLVMFunctionType(e->i8p, alloc_params, 2, 0),
                free_t = LLVMFunctionType(e->voidt, free_params, 1, 0);
    const int G = lanes_group(kn);
    tiles_instead_if(e, LLVMBuildICmp(e->b, LLVMIntSLT, ntok, c32(e, kn->lanes_min), ""), tiles_fn, params);
    LLVMValueRef args[2] = {c64(e, 64), c64(e, G * (int64_t)lanes_scratch_bytes(kn))};
    LLVMValueRef xu = LLVMBuildCall2(e->b, alloc_t, libc_fn(e, "aligned_alloc", alloc_t), args, 2, "xu");
    tiles_instead_if(e, LLVMBuildIsNull(e->b, xu, ""), tiles_fn, params);
    /* the whole passes as lanes, and a last one only if it has lanes_min tokens; the tiles take
     * a shorter rest after them */
    LLVMValueRef in_passes = LLVMBuildAnd(e->b, ntok, c32(e, -RSR_LANES), "");
    LLVMValueRef nl = LLVMBuildSelect(
        e->b, LLVMBuildICmp(e->b, LLVMIntSGE, LLVMBuildSub(e->b, ntok, in_passes, ""), c32(e, kn->lanes_min), ""), ntok,
        in_passes, "nl");
    LLVMValueRef hdr = LLVMBuildBitCast(e->b, at(e, e->i8, data, c64(e, (int64_t)kn->off_lane_seg)), i16p, "");
    LLVMValueRef perm = LLVMBuildBitCast(e->b, at(e, e->i8, data, c64(e, (int64_t)kn->off_lane_perm)), i16p, "");
    LLVMValueRef out = LLVMBuildArrayAlloca(e->allocas, e->i32, c32(e, 4 * RSR_LANES), "out");
    LLVMSetAlignment(out, 64);

    /* Passes of 64 tokens in groups of G sharing each block's index while it is in L1 */
    LLVMValueRef passes = LLVMBuildSDiv(e->b, LLVMBuildAdd(e->b, nl, c32(e, RSR_LANES - 1), ""), c32(e, RSR_LANES), "");
    LLVMValueRef groups = LLVMBuildSDiv(e->b, LLVMBuildAdd(e->b, passes, c32(e, G - 1), ""), c32(e, G), "");
    loop P;
    loop_begin(e, &P, c32(e, 0), groups, "group");
    LLVMValueRef first = LLVMBuildMul(e->b, P.i, c32(e, G), ""); /* the group's first pass */
    LLVMValueRef gleft = LLVMBuildSub(e->b, passes, first, "");
    LLVMValueRef gn = smin(e, gleft, c32(e, G)), t0, m;
    loop T;
    loop_begin(e, &T, c32(e, 0), gn, "slot");
    LLVMValueRef xp = lanes_pass(e, kn, xu, first, T.i, nl, &t0, &m);
    LLVMValueRef targs[] = {xp, at(e, e->i8, x, LLVMBuildMul(e->b, i64_of(e, t0), i64_of(e, x_stride), "")), x_stride,
                            m, c32(e, kn->cols)};
    LLVMBuildCall2(e->b, LLVMGlobalGetValueType(transpose_fn), transpose_fn, targs, 5, "");
    loop_end(e, &T);

    loop B;
    loop_begin(e, &B, b0, b1, "block");
    LLVMValueRef hb = at(e, e->i16, hdr, LLVMBuildMul(e->b, i64_of(e, B.i), c64(e, RSR_LANE_SEG_STRIDE), ""));
    LLVMValueRef pb = at(e, e->i16, perm, LLVMBuildMul(e->b, i64_of(e, B.i), c64(e, kn->lane_cols), ""));
    LLVMValueRef full =
        LLVMBuildICmp(e->b, LLVMIntSLE, LLVMBuildMul(e->b, LLVMBuildAdd(e->b, B.i, c32(e, 1), ""), c32(e, R), ""),
                      c32(e, kn->rows), "");
    loop_begin(e, &T, c32(e, 0), gn, "slot");
    LLVMValueRef bargs[] = {lanes_pass(e, kn, xu, first, T.i, nl, &t0, &m), hb, pb, out};
    LLVMBuildCall2(e->b, LLVMGlobalGetValueType(block_fn), block_fn, bargs, 4, "");
    /* y[t0 + t][4b + r] = out[4t + r]: 16 bytes per token where the block has all its rows */
    LLVMTypeRef v4 = LLVMVectorType(e->i32, 4), v4p = LLVMPointerType(v4, 0);
    LLVMValueRef yb = at(e, e->i32, y,
                         LLVMBuildAdd(e->b, LLVMBuildMul(e->b, i64_of(e, t0), i64_of(e, y_stride), ""),
                                      i64_of(e, LLVMBuildMul(e->b, B.i, c32(e, R), "")), ""));
    for (int whole = 1; whole >= 0; whole--) {
        LLVMBasicBlockRef wjoin = if_begin(e, whole ? full : LLVMBuildNot(e->b, full, ""));
        loop L;
        loop_begin(e, &L, c32(e, 0), m, "token");
        LLVMValueRef yt = at(e, e->i32, yb, LLVMBuildMul(e->b, i64_of(e, L.i), i64_of(e, y_stride), ""));
        LLVMValueRef o = at(e, e->i32, out, i64_of(e, LLVMBuildMul(e->b, L.i, c32(e, R), "")));
        if (whole) {
            LLVMValueRef v = LLVMBuildLoad2(e->b, v4, LLVMBuildBitCast(e->b, o, v4p, ""), "");
            LLVMSetAlignment(v, 4);
            LLVMValueRef st = LLVMBuildStore(e->b, v, LLVMBuildBitCast(e->b, yt, v4p, ""));
            LLVMSetAlignment(st, 4);
        } else {
            for (int r = 0; r < R; r++) {
                LLVMValueRef rowi = LLVMBuildAdd(e->b, LLVMBuildMul(e->b, B.i, c32(e, R), ""), c32(e, r), "");
                LLVMBasicBlockRef rjoin = if_begin(e, LLVMBuildICmp(e->b, LLVMIntSLT, rowi, c32(e, kn->rows), ""));
                store_y(e, yt, c32(e, r), LLVMBuildLoad2(e->b, e->i32, at(e, e->i32, o, c64(e, r)), ""));
                if_end(e, rjoin);
            }
        }
        loop_end(e, &L);
        if_end(e, wjoin);
    }
    loop_end(e, &T);
    loop_end(e, &B);
    loop_end(e, &P);
    LLVMValueRef fargs[] = {xu};
    LLVMBuildCall2(e->b, free_t, libc_fn(e, "free", free_t), fargs, 1, "");
    LLVMBasicBlockRef rjoin = if_begin(e, LLVMBuildICmp(e->b, LLVMIntSLT, nl, ntok, ""));
    LLVMValueRef rest[8] = {data,     at(e, e->i8, x, LLVMBuildMul(e->b, i64_of(e, nl), i64_of(e, x_stride), "")),
                            x_stride, at(e, e->i32, y, LLVMBuildMul(e->b, i64_of(e, nl), i64_of(e, y_stride), "")),
                            y_stride, LLVMBuildSub(e->b, ntok, nl, ""),
                            b0,       b1};
    LLVMBuildCall2(e->b, e->batch_type, tiles_fn, rest, 8, "");
    if_end(e, rjoin);
}

/* ---- RSR: the digits of a segment, and the RSR++ fold of binary blocks ---- */

/* row r = 2·Σ_{bit r set} U − total, folding U in place (values known at compile time). */
static void fold(llvm_emitter *e, int k, LLVMValueRef *U, LLVMValueRef total, LLVMValueRef *acc) {
    for (int r = 0; r < k; r++) {
        int half = 1 << (k - r - 1);
        LLVMValueRef pos = c32(e, 0);
        for (int j = 0; j < half; j++) pos = LLVMBuildAdd(e->b, pos, U[2 * j + 1], "");
        acc[r] = LLVMBuildSub(e->b, LLVMBuildShl(e->b, pos, c32(e, 1), ""), total, "");
        for (int j = 0; j < half; j++) U[j] = LLVMBuildAdd(e->b, U[2 * j], U[2 * j + 1], "");
    }
}

/* Unrolled: one function per block, every column index an immediate offset. */
static void emit_unrolled(llvm_emitter *e, const kernel *kn) {
    const rsr_plan *p = kn->plan;
    LLVMValueRef *blocks = xmalloc(sizeof *blocks * (size_t)(p->num_blocks ? p->num_blocks : 1));
    LLVMValueRef main_fn = e->fn;
    LLVMBasicBlockRef main_bb = LLVMGetInsertBlock(e->b), main_entry = e->entry;
    LLVMValueRef U[1 << RSR_MAX_K];
    for (int32_t b = 0; b < p->num_blocks; b++) {
        char name[160];
        snprintf(name, sizeof name, "%s_b%d", kn->symbol, b);
        blocks[b] = begin_function(e, name, e->block_type, false);
        add_enum_attr(e, blocks[b], LLVMAttributeFunctionIndex, "noinline"); /* keeps the optimiser linear */
        LLVMValueRef x = LLVMGetParam(blocks[b], 0), y = LLVMGetParam(blocks[b], 1);
        LLVMValueRef acc[RSR_MAX_K], total = c32(e, 0);
        for (int r = 0; r < p->k; r++) acc[r] = c32(e, 0);
        for (int i = 0; i < (1 << p->k); i++) U[i] = c32(e, 0);
        const uint16_t *col = p->perm + p->block_col[b];
        for (uint32_t s = p->block_seg[b]; s < p->block_seg[b + 1]; s++) {
            LLVMValueRef u = c32(e, 0);
            for (uint32_t j = 0; j < p->seg_len[s]; j++) u = LLVMBuildAdd(e->b, u, load_x(e, x, c32(e, *col++)), "");
            if (p->binary) {
                U[p->seg_code[s]] = u;
                total = LLVMBuildAdd(e->b, total, u, "");
                continue;
            }
            for (int r = 0; r < p->k; r++) {
                int d = rsr_code_digit(p, p->seg_code[s], r);
                if (d > 0) acc[r] = LLVMBuildAdd(e->b, acc[r], u, "");
                if (d < 0) acc[r] = LLVMBuildSub(e->b, acc[r], u, "");
            }
        }
        if (p->binary) fold(e, p->k, U, total, acc);
        for (int r = 0; r < p->k && b * p->k + r < p->rows; r++) store_y(e, y, c32(e, b * p->k + r), acc[r]);
        end_function(e);
    }
    /* the kernel: a loop over a constant table of the block functions */
    e->fn = main_fn;
    e->entry = main_entry;
    LLVMPositionBuilderAtEnd(e->b, main_bb);
    LLVMPositionBuilderAtEnd(e->allocas, main_entry);
    LLVMTypeRef fp = LLVMPointerType(e->block_type, 0);
    LLVMTypeRef table_type = LLVMArrayType(fp, (unsigned)p->num_blocks);
    char name[160];
    snprintf(name, sizeof name, "%s_block", kn->symbol);
    LLVMValueRef table = LLVMAddGlobal(e->mod, table_type, name);
    LLVMSetInitializer(table, LLVMConstArray(fp, blocks, (unsigned)p->num_blocks));
    LLVMSetGlobalConstant(table, 1);
    LLVMSetLinkage(table, LLVMInternalLinkage);
    loop B;
    loop_begin(e, &B, LLVMGetParam(e->fn, 3), LLVMGetParam(e->fn, 4), "block");
    LLVMValueRef idx[] = {c32(e, 0), B.i};
    LLVMValueRef slot = LLVMBuildGEP2(e->b, table_type, table, idx, 2, "");
    LLVMValueRef f = LLVMBuildLoad2(e->b, fp, slot, "");
    LLVMValueRef args[] = {LLVMGetParam(e->fn, 1), LLVMGetParam(e->fn, 2)};
    LLVMBuildCall2(e->b, e->block_type, f, args, 2, "");
    loop_end(e, &B);
    free(blocks);
}

/* Loop: k, rows and the data layout are constants; the index is data (see kernel.c). */
static void emit_loop(llvm_emitter *e, const kernel *kn) {
    const rsr_plan *p = kn->plan;
    LLVMValueRef data = LLVMGetParam(e->fn, 0), x = LLVMGetParam(e->fn, 1), y = LLVMGetParam(e->fn, 2);
    LLVMTypeRef i16p = LLVMPointerType(e->i16, 0);
    LLVMValueRef block_seg =
        LLVMBuildBitCast(e->b, at(e, e->i8, data, c64(e, (int64_t)kn->off_block_seg)), e->i32p, "");
    LLVMValueRef block_col =
        LLVMBuildBitCast(e->b, at(e, e->i8, data, c64(e, (int64_t)kn->off_block_col)), e->i32p, "");
    LLVMValueRef seg = LLVMBuildBitCast(e->b, at(e, e->i8, data, c64(e, (int64_t)kn->off_seg)), e->i32p, "");
    LLVMValueRef perm = LLVMBuildBitCast(e->b, at(e, e->i8, data, c64(e, (int64_t)kn->off_perm)), i16p, "");
    int k = p->k, ncodes = 1 << k;
    LLVMValueRef acc[RSR_MAX_K], U = NULL, total = NULL;
    for (int r = 0; r < k; r++) acc[r] = LLVMBuildAlloca(e->allocas, e->i32, "acc");
    LLVMTypeRef u_type = LLVMArrayType(e->i32, (unsigned)ncodes);
    if (p->binary) {
        U = LLVMBuildAlloca(e->allocas, u_type, "U");
        total = LLVMBuildAlloca(e->allocas, e->i32, "total");
    }

    loop B;
    loop_begin(e, &B, LLVMGetParam(e->fn, 3), LLVMGetParam(e->fn, 4), "block");
    for (int r = 0; r < k; r++) set(e, acc[r], c32(e, 0));
    if (p->binary) {
        set(e, U, LLVMConstNull(u_type));
        set(e, total, c32(e, 0));
    }
    LLVMValueRef col = var(e, e->i32, LLVMBuildLoad2(e->b, e->i32, at(e, e->i32, block_col, B.i), ""), "col");
    LLVMValueRef s0 = LLVMBuildLoad2(e->b, e->i32, at(e, e->i32, block_seg, B.i), "");
    LLVMValueRef s1 =
        LLVMBuildLoad2(e->b, e->i32, at(e, e->i32, block_seg, LLVMBuildAdd(e->b, B.i, c32(e, 1), "")), "");
    loop S;
    loop_begin(e, &S, s0, s1, "segment");
    LLVMValueRef sv = LLVMBuildLoad2(e->b, e->i32, at(e, e->i32, seg, S.i), "");
    LLVMValueRef code = LLVMBuildAnd(e->b, sv, c32(e, 0xffff), "");
    LLVMValueRef len = LLVMBuildLShr(e->b, sv, c32(e, 16), "");
    LLVMValueRef u = var(e, e->i32, c32(e, 0), "u");
    LLVMValueRef c0 = get(e, col);
    loop J;
    loop_begin(e, &J, c32(e, 0), len, "column");
    LLVMValueRef pi = LLVMBuildLoad2(e->b, e->i16, at(e, e->i16, perm, LLVMBuildAdd(e->b, c0, J.i, "")), "");
    set(e, u, LLVMBuildAdd(e->b, get(e, u), load_x(e, x, LLVMBuildZExt(e->b, pi, e->i32, "")), ""));
    loop_end(e, &J);
    set(e, col, LLVMBuildAdd(e->b, c0, len, ""));
    LLVMValueRef uv = get(e, u);
    if (p->binary) {
        LLVMValueRef idx[] = {c32(e, 0), code};
        set(e, LLVMBuildGEP2(e->b, u_type, U, idx, 2, ""), uv);
        set(e, total, LLVMBuildAdd(e->b, get(e, total), uv, ""));
    } else {
        for (int r = 0; r < k; r++) {
            LLVMValueRef pos = LLVMBuildAnd(e->b, LLVMBuildLShr(e->b, code, c32(e, k + r), ""), c32(e, 1), "");
            LLVMValueRef neg = LLVMBuildAnd(e->b, LLVMBuildLShr(e->b, code, c32(e, r), ""), c32(e, 1), "");
            LLVMValueRef d = LLVMBuildSub(e->b, pos, neg, "");
            set(e, acc[r], LLVMBuildAdd(e->b, get(e, acc[r]), LLVMBuildMul(e->b, d, uv, ""), ""));
        }
    }
    loop_end(e, &S);
    LLVMValueRef out[RSR_MAX_K];
    if (p->binary) {
        LLVMValueRef Uv[1 << RSR_MAX_K], Ua = get(e, U);
        for (int i = 0; i < ncodes; i++) Uv[i] = LLVMBuildExtractValue(e->b, Ua, (unsigned)i, "");
        fold(e, k, Uv, get(e, total), out);
    } else {
        for (int r = 0; r < k; r++) out[r] = get(e, acc[r]);
    }
    LLVMValueRef row0 = LLVMBuildMul(e->b, B.i, c32(e, k), "");
    for (int r = 0; r < k; r++) {
        LLVMValueRef row = LLVMBuildAdd(e->b, row0, c32(e, r), "");
        LLVMBasicBlockRef join = NULL;
        if (p->rows % k) join = if_begin(e, LLVMBuildICmp(e->b, LLVMIntSLT, row, c32(e, p->rows), ""));
        store_y(e, y, row, out[r]);
        if (join) if_end(e, join);
    }
    loop_end(e, &B);
}

/* ---- GPU (NVPTX): the i2 form with dp4a, a warp per block of rows (see kernel.c) ---- */

static LLVMValueRef sreg(llvm_emitter *e, const char *name) { return intrinsic(e, name, e->i32, NULL, 0); }

static LLVMValueRef dp4a(llvm_emitter *e, LLVMValueRef a, LLVMValueRef b, LLVMValueRef acc) {
    LLVMTypeRef args[] = {e->i32, e->i32, e->i32};
    LLVMTypeRef type = LLVMFunctionType(e->i32, args, 3, 0);
    static char text[] = "dp4a.s32.s32 $0, $1, $2, $3;", constraints[] = "=r,r,r,r";
    LLVMValueRef fn = LLVMGetInlineAsm(type, text, sizeof text - 1, constraints, sizeof constraints - 1, 0, 0,
                                       LLVMInlineAsmDialectATT, 0);
    LLVMValueRef v[] = {a, b, acc};
    return LLVMBuildCall2(e->b, type, fn, v, 3, "");
}

static LLVMValueRef warp_sum(llvm_emitter *e, LLVMValueRef v) {
    for (int offset = 16; offset > 0; offset /= 2) {
        LLVMValueRef a[] = {c32(e, -1), v, c32(e, offset), c32(e, 31)};
        v = LLVMBuildAdd(e->b, v, intrinsic(e, "llvm.nvvm.shfl.sync.bfly.i32", e->i32, a, 4), "");
    }
    return v;
}

static void emit_gpu_i2(llvm_emitter *e, const kernel *kn) {
    int R = kn->block_rows, words = i2_row_bytes(kn) / 4; /* group g: the R rows' words g*R .. g*R+R-1 */
    LLVMValueRef data = LLVMGetParam(e->fn, 0), x = LLVMGetParam(e->fn, 1), y = LLVMGetParam(e->fn, 2);
    LLVMValueRef tid = sreg(e, "llvm.nvvm.read.ptx.sreg.tid.x"), cta = sreg(e, "llvm.nvvm.read.ptx.sreg.ctaid.x");
    LLVMValueRef lane = LLVMBuildAnd(e->b, tid, c32(e, 31), "lane");
    LLVMValueRef b = LLVMBuildAdd(e->b, LLVMBuildMul(e->b, cta, c32(e, kn->cta_warps), ""),
                                  LLVMBuildLShr(e->b, tid, c32(e, 5), ""), "block");
    LLVMBasicBlockRef join = if_begin(e, LLVMBuildICmp(e->b, LLVMIntSLT, b, c32(e, kn->num_blocks), ""));
    LLVMValueRef w = LLVMBuildBitCast(
        e->b,
        at(e, e->i8, data, LLVMBuildMul(e->b, LLVMBuildSExt(e->b, b, e->i64, ""), c64(e, (int64_t)R * words * 4), "")),
        e->i32p, "");
    LLVMValueRef xw = LLVMBuildBitCast(e->b, x, e->i32p, "");
    LLVMValueRef a[8], sx = var(e, e->i32, c32(e, 0), "sx");
    for (int r = 0; r < R; r++) a[r] = var(e, e->i32, c32(e, 0), "a");
    LLVMValueRef g = var(e, e->i32, lane, "g");
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "group");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "group");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "group");
    LLVMBuildBr(e->b, head);
    LLVMPositionBuilderAtEnd(e->b, head);
    LLVMValueRef gi = get(e, g);
    LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, gi, c32(e, words), ""), body, done);
    LLVMPositionBuilderAtEnd(e->b, body);
    LLVMValueRef xv[4];
    for (int i = 0; i < 4; i++) {
        xv[i] = LLVMBuildLoad2(
            e->b, e->i32, at(e, e->i32, xw, LLVMBuildAdd(e->b, LLVMBuildMul(e->b, gi, c32(e, 4), ""), c32(e, i), "")),
            "");
        set(e, sx, dp4a(e, c32(e, 0x01010101), xv[i], get(e, sx)));
    }
    for (int r = 0; r < R; r++) {
        LLVMValueRef p = LLVMBuildLoad2(
            e->b, e->i32, at(e, e->i32, w, LLVMBuildAdd(e->b, LLVMBuildMul(e->b, gi, c32(e, R), ""), c32(e, r), "")),
            "");
        LLVMValueRef acc = get(e, a[r]);
        for (int i = 0; i < 4; i++) {
            LLVMValueRef codes =
                LLVMBuildAnd(e->b, i ? LLVMBuildLShr(e->b, p, c32(e, 2 * i), "") : p, c32(e, 0x03030303), "");
            acc = dp4a(e, codes, xv[i], acc);
        }
        set(e, a[r], acc);
    }
    set(e, g, LLVMBuildAdd(e->b, gi, c32(e, 32), ""));
    LLVMBuildBr(e->b, head);
    LLVMPositionBuilderAtEnd(e->b, done);
    LLVMValueRef sum_x = warp_sum(e, get(e, sx)), sums[8];
    for (int r = 0; r < R; r++) sums[r] = warp_sum(e, get(e, a[r]));
    LLVMBasicBlockRef lane0 = if_begin(e, LLVMBuildICmp(e->b, LLVMIntEQ, lane, c32(e, 0), ""));
    LLVMValueRef row0 = LLVMBuildMul(e->b, b, c32(e, R), "");
    for (int r = 0; r < R; r++) {
        LLVMValueRef row = LLVMBuildAdd(e->b, row0, c32(e, r), "");
        LLVMBasicBlockRef in = NULL;
        if (kn->rows % R) in = if_begin(e, LLVMBuildICmp(e->b, LLVMIntSLT, row, c32(e, kn->rows), ""));
        store_y(e, y, row, LLVMBuildSub(e->b, sums[r], sum_x, ""));
        if (in) if_end(e, in);
    }
    if_end(e, lane0);
    if_end(e, join);
}

void emit_llvm_kernel(llvm_emitter *e, const kernel *kn) {
    LLVMValueRef fn = begin_function(e, kn->symbol, e->kernel_type, true);
    add_enum_attr(e, fn, 2, "noalias"); /* x */
    add_enum_attr(e, fn, 3, "noalias"); /* y */
    if (e->gpu != (kn->form == KF_WARP || kn->isa == DOT_DP4A) || (e->gpu && kn->form != KF_I2))
        fatal("internal error: %s: form %d has no %s kernel in the LLVM backend", kn->symbol, kn->form,
              e->gpu ? "NVPTX" : "CPU");
    switch (kn->form) {
    case KF_I2:
        if (e->gpu)
            emit_gpu_i2(e, kn);
        else
            emit_i2(e, kn);
        break;
    case KF_UNROLLED: emit_unrolled(e, kn); break;
    case KF_LOOP: emit_loop(e, kn); break;
    case KF_LUT: emit_lut(e, kn); break;
    case KF_WARP: break;
    }
    end_function(e);
    if (kn->batch_symbol) {
        /* the lanes form's helpers first: begin_function moves the builder */
        LLVMValueRef block_fn = kn->lanes_min ? lanes_block_fn(e) : NULL, tiles_fn = NULL;
        LLVMValueRef transpose_fn = kn->lanes_min ? lanes_transpose_fn(e) : NULL;
        if (kn->lanes_min) {
            char *name = xasprintf("%s_tiles", kn->batch_symbol);
            tiles_fn = begin_function(e, name, e->batch_type, false);
            free(name);
            emit_i2_batch(e, kn);
            end_function(e);
        }
        fn = begin_function(e, kn->batch_symbol, e->batch_type, true);
        add_enum_attr(e, fn, 2, "noalias"); /* x */
        add_enum_attr(e, fn, 4, "noalias"); /* y */
        if (kn->lanes_min)
            emit_lanes_batch(e, kn, block_fn, transpose_fn, tiles_fn);
        else
            emit_i2_batch(e, kn);
        end_function(e);
    }
}

/* ---- output ---- */

uint64_t emit_llvm_size(const llvm_emitter *e) { return e ? e->instructions : 0; }

void emit_llvm_finish(llvm_emitter *e, enum llvm_output what, const char *path) {
    char *err = NULL;
    if (LLVMVerifyModule(e->mod, LLVMReturnStatusAction, &err)) fatal("internal error: invalid LLVM IR: %s", err);
    LLVMDisposeMessage(err);
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    static const char *const pipelines[] = {"default<O0>", "default<O1>", "default<O2>", "default<O3>"};
    LLVMErrorRef perr = LLVMRunPasses(e->mod, pipelines[e->t->opt_level >= 0 ? e->t->opt_level : 3], e->tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    if (perr) {
        char *msg = LLVMGetErrorMessage(perr);
        fatal("internal error: LLVM optimisation failed: %s", msg);
    }
    if (what == LLVM_OUT_IR) {
        if (LLVMPrintModuleToFile(e->mod, path, &err)) fatal("%s: cannot write LLVM IR: %s", path, err);
        return;
    }
    if (e->gpu && what == LLVM_OUT_OBJ) fatal("internal error: NVPTX emits PTX text (assembly), not objects");
    if (LLVMTargetMachineEmitToFile(e->tm, e->mod, (char *)path,
                                    what == LLVM_OUT_ASM ? LLVMAssemblyFile : LLVMObjectFile, &err))
        fatal("%s: LLVM cannot emit code: %s", path, err);
}

void emit_llvm_end(llvm_emitter *e) {
    if (!e) return;
    LLVMDisposeBuilder(e->b);
    LLVMDisposeBuilder(e->allocas);
    LLVMDisposeModule(e->mod);
    LLVMContextDispose(e->ctx);
    LLVMDisposeTargetMachine(e->tm);
    free(e->cpu);
    free(e->features);
    free(e);
}
