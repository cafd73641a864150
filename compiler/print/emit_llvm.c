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

#include "ir/kir.h"
#include "print/printer.h"
#include "rsrc.h"

struct llvm_emitter {
    const rsrc_target *t;
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b, allocas;
    LLVMTargetMachineRef tm;
    char *cpu, *features;
    LLVMTypeRef i1, i8, i16, i32, i64, voidt, i8p, i32p, kernel_type, batch_type, block_type;
    bool gpu;              /* NVPTX: kernels are entries, PTX is the output */
    int opt_level;         /* -O0..-O3, -1: O3 (compile_options) */
    LLVMValueRef fn;       /* the function being built */
    uint64_t instructions; /* in the functions finished so far */
    uint64_t flushed;      /* of those, in the parts already emitted (emit_llvm_flush) */
    char *module_name, *triple;
    LLVMBasicBlockRef entry; /* its alloca block */
};

/* ---- setup: the target machine from the spec ---- */

static char *llvm_feature_string(const rsrc_target *t) {
    size_t cap = 16;
    for (int i = 0; i < t->nfeatures; i++) cap += strlen(t->features[i]) + 2;
    for (int i = 0; i < t->ndisabled; i++) cap += strlen(t->disabled[i]) + 2;
    char *s = xcalloc(cap, 1);
    for (int i = 0; i < t->nfeatures; i++) strcat(strcat(strcat(s, *s ? "," : ""), "+"), t->features[i]);
    for (int i = 0; i < t->ndisabled; i++) strcat(strcat(strcat(s, *s ? "," : ""), "-"), t->disabled[i]);
    return s;
}

int llvm_nvptx_sm(const rsrc_target *t) { return t->sm < LLVM_NVPTX_MAX_SM ? t->sm : LLVM_NVPTX_MAX_SM; }

/* LLVM's fatal errors (an unknown --cpu makes the x86 backend stop with "64-bit code requested
 * on a subtarget that doesn't support it!") end in rsrc_fatal(): a message with the CPU and features
 * it was given, and the temporaries removed, instead of an abort. */
static char *llvm_fatal_context;
static void llvm_fatal(const char *reason) {
    rsrc_fatal("LLVM stopped: %s (%s)", reason, llvm_fatal_context ? llvm_fatal_context : "");
}

/* An empty module for the target, the kernels' home until emit_llvm_finish or _flush. */
static void new_module(llvm_emitter *e) {
    e->mod = LLVMModuleCreateWithNameInContext(e->module_name, e->ctx);
    LLVMSetTarget(e->mod, e->triple);
    LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(e->tm);
    char *layout_str = LLVMCopyStringRepOfTargetData(layout);
    LLVMSetDataLayout(e->mod, layout_str);
    LLVMDisposeMessage(layout_str);
    LLVMDisposeTargetData(layout);
}

llvm_emitter *emit_llvm_begin(const rsrc_target *t, const char *module_name, int opt_level) {
    llvm_emitter *e = xcalloc(1, sizeof *e);
    e->t = t;
    e->opt_level = opt_level;
    e->gpu = t->kind == TK_CUDA;
    if (e->gpu) {
        LLVMInitializeNVPTXTargetInfo();
        LLVMInitializeNVPTXTarget();
        LLVMInitializeNVPTXTargetMC();
        LLVMInitializeNVPTXAsmPrinter();
    } else if (!strcmp(target_arch(t), "aarch64")) {
        LLVMInitializeAArch64TargetInfo();
        LLVMInitializeAArch64Target();
        LLVMInitializeAArch64TargetMC();
        LLVMInitializeAArch64AsmPrinter();
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
        rsrc_fatal("target %s: LLVM does not know triple '%s': %s", t->name, triple, err);
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
    e->tm = LLVMCreateTargetMachine(target_ref, triple, e->cpu, e->features, levels[opt_level >= 0 ? opt_level : 3],
                                    LLVMRelocPIC, LLVMCodeModelDefault);
    if (!e->tm) rsrc_fatal("target %s: LLVM cannot create a target machine for cpu '%s'", t->name, e->cpu);
    e->ctx = LLVMContextCreate();
    e->module_name = xstrdup(module_name), e->triple = xstrdup(triple);
    new_module(e);
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
static LLVMValueRef declare_function(llvm_emitter *e, const char *name, LLVMTypeRef type, bool exported) {
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
    return fn;
}

/* Builds fn's body from here on: an alloca block, then the body's first block under e->b. */
static void start_body(llvm_emitter *e, LLVMValueRef fn) {
    e->fn = fn;
    e->entry = LLVMAppendBasicBlockInContext(e->ctx, fn, "entry");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(e->ctx, fn, "start");
    LLVMPositionBuilderAtEnd(e->allocas, e->entry);
    LLVMPositionBuilderAtEnd(e->b, body);
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

/* The value s in every lane of vector type vt (at most 64 lanes). */
static LLVMValueRef broadcast(llvm_emitter *e, LLVMTypeRef vt, LLVMValueRef s) {
    const int zeros[64] = {0};
    LLVMValueRef v = LLVMBuildInsertElement(e->b, LLVMGetUndef(vt), s, c32(e, 0), "");
    return shuffle(e, v, NULL, zeros, (int)LLVMGetVectorSize(vt));
}

static LLVMValueRef splat(LLVMTypeRef elem, int n, int64_t v) {
    LLVMValueRef lanes[64];
    for (int i = 0; i < n; i++) lanes[i] = LLVMConstInt(elem, (unsigned long long)v, 1);
    return LLVMConstVector(lanes, (unsigned)n);
}

/* ---- i2: the dot products of one ISA (same contract as emit_c_dot_helpers) ---- */

/* int32 lanes of an accumulator: a 256-bit vector on AVX2 and AVX-VNNI, a 128-bit one on NEON, else 16
 * (512-bit; the scalar form sums 16 bytes into 16 lanes) */
static int acc_lanes(const kir_info *mi) {
    return dot_isa_arm(mi->isa) ? 4 : dot_isa_vector_bytes(mi->isa) == 32 ? 8 : 16;
}

static LLVMTypeRef acc_type(llvm_emitter *e, const kir_info *mi) {
    return LLVMVectorType(e->i32, (unsigned)acc_lanes(mi));
}

/* vpmaddubsw: the 16-bit sums of adjacent products of codes (unsigned) and x (signed), <V x i8> each */
static LLVMValueRef pair_sums(llvm_emitter *e, const kir_info *mi, LLVMValueRef codes, LLVMValueRef x) {
    LLVMValueRef args[] = {codes, x};
    return intrinsic(e, mi->isa == DOT_AVX512BW ? "llvm.x86.avx512.pmaddubs.w.512" : "llvm.x86.avx2.pmadd.ub.sw",
                     LLVMVectorType(e->i16, (unsigned)mi->vec_bytes / 2), args, 2);
}

/* acc + the 16-bit lanes of s16 summed in pairs (vpmaddwd by ones) */
static LLVMValueRef widen(llvm_emitter *e, const kir_info *mi, LLVMValueRef acc, LLVMValueRef s16) {
    LLVMValueRef args[] = {s16, splat(e->i16, mi->vec_bytes / 2, 1)};
    LLVMValueRef s32 = intrinsic(e, mi->isa == DOT_AVX512BW ? "llvm.x86.avx512.pmaddw.d.512" : "llvm.x86.avx2.pmadd.wd",
                                 acc_type(e, mi), args, 2);
    return LLVMBuildAdd(e->b, acc, s32, "");
}

/* The codes 0..2 of field i of V packed bytes p: shifted down and masked */
static LLVMValueRef field_codes(llvm_emitter *e, int V, LLVMValueRef p, int i) {
    LLVMValueRef shifted = i ? LLVMBuildLShr(e->b, p, splat(e->i8, V, 2 * i), "") : p;
    return LLVMBuildAnd(e->b, shifted, splat(e->i8, V, 3), "");
}

/* acc += codes · x, codes and x being <V x i8> (codes unsigned 0..2, x signed). */
static LLVMValueRef dot(llvm_emitter *e, const kir_info *mi, LLVMValueRef acc, LLVMValueRef codes, LLVMValueRef x) {
    int V = mi->vec_bytes;
    switch (mi->isa) {
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
    case DOT_AVX2: return widen(e, mi, acc, pair_sums(e, mi, codes, x));
    case DOT_I8MM:   /* its single tokens: sdot (the tiles: KO_MMLA) */
    case DOT_SDOT: { /* codes 0..2 are the same signed: sdot */
        LLVMValueRef args[] = {acc, codes, x};
        return intrinsic(e, "llvm.aarch64.neon.sdot.v4i32.v16i8", acc_type(e, mi), args, 3);
    }
    case DOT_NEON: { /* per half: smull to 8 int16 products, their pairs' sums added (sadalp) */
        static const int lo[] = {0, 1, 2, 3, 4, 5, 6, 7}, hi[] = {8, 9, 10, 11, 12, 13, 14, 15};
        LLVMTypeRef v8i16 = LLVMVectorType(e->i16, 8);
        for (int h = 0; h < 2; h++) {
            const int *idx = h ? hi : lo;
            LLVMValueRef a[] = {shuffle(e, codes, codes, idx, 8), shuffle(e, x, x, idx, 8)};
            LLVMValueRef prod = intrinsic(e, "llvm.aarch64.neon.smull.v8i16", v8i16, a, 2);
            acc = LLVMBuildAdd(e->b, acc,
                               intrinsic(e, "llvm.aarch64.neon.saddlp.v4i32.v8i16", acc_type(e, mi), &prod, 1), "");
        }
        return acc;
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

static LLVMValueRef vsum(llvm_emitter *e, const kir_info *mi, LLVMValueRef acc) {
    char name[48];
    snprintf(name, sizeof name, "llvm.vector.reduce.add.v%di32", acc_lanes(mi));
    return intrinsic(e, name, e->i32, &acc, 1);
}

/* Lane r the sum of v[r]'s lanes (KO_VSUM4), as x86's phaddd and NEON's addp add pairs: within
 * each run of 4 lanes, two vectors' adjacent pairs added (twice: four vectors of n lanes into one
 * whose every run of 4 holds a part of each), then the runs added in halves until one is left. */
static LLVMValueRef vsum4(llvm_emitter *e, LLVMValueRef v[4], int n) {
    int even[64], odd[64];
    for (int i = 0; i < n; i++) /* run i/4: lanes 0, 1 from the first vector, 2, 3 from the second */
        even[i] = (i % 4 < 2 ? 0 : n) + 4 * (i / 4) + 2 * (i % 2), odd[i] = even[i] + 1;
    for (int count = 4; count > 1; count /= 2)
        for (int i = 0; i < count / 2; i++)
            v[i] = LLVMBuildAdd(e->b, shuffle(e, v[2 * i], v[2 * i + 1], even, n),
                                shuffle(e, v[2 * i], v[2 * i + 1], odd, n), "");
    for (int lo[32], hi[32]; n > 4; n /= 2) {
        for (int i = 0; i < n / 2; i++) lo[i] = i, hi[i] = n / 2 + i;
        v[0] = LLVMBuildAdd(e->b, shuffle(e, v[0], NULL, lo, n / 2), shuffle(e, v[0], NULL, hi, n / 2), "");
    }
    return v[0];
}

/* ---- the lanes pass's operations (kir.h; lower.c lowers its transpose and block) ---- */

static LLVMTypeRef lanes32(llvm_emitter *e) { return LLVMVectorType(e->i32, 16); }

/* Lanes 16q..16q+15 of the 32 words a, zero-extended to int32. */
static LLVMValueRef quarter(llvm_emitter *e, LLVMValueRef a, int half) {
    int idx[16];
    for (int i = 0; i < 16; i++) idx[i] = 16 * half + i;
    return LLVMBuildZExt(e->b, shuffle(e, a, NULL, idx, 16), lanes32(e), "");
}

/* Pointer v itself, through an empty asm statement: what it points to is opaque to the optimiser
 * (an alloca's stores are not promoted to values). */
static LLVMValueRef launder(llvm_emitter *e, LLVMValueRef v) {
    LLVMTypeRef t = LLVMTypeOf(v), type = LLVMFunctionType(t, &t, 1, 0);
    LLVMValueRef fn = LLVMGetInlineAsm(type, "", 0, "=r,0", 4, 1, 0, LLVMInlineAsmDialectATT, 0);
    return LLVMBuildCall2(e->b, type, fn, &v, 1, "");
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

static LLVMValueRef libc_fn(llvm_emitter *e, const char *name, LLVMTypeRef type) {
    LLVMValueRef fn = LLVMGetNamedFunction(e->mod, name);
    return fn ? fn : LLVMAddFunction(e->mod, name, type);
}

/* ---- RSR: the digits of a segment, and the RSR++ fold of binary blocks ---- */

/* ---- GPU (NVPTX): what the GPU forms' IR operations are (cuda/compiler/lower_gpu.c) ---- */

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

/* v of lane ± delta: the llvm.nvvm.shfl.sync intrinsics (mask, value, delta, clamp) */
static LLVMValueRef shfl(llvm_emitter *e, bool down, LLVMValueRef v, LLVMValueRef delta) {
    LLVMValueRef a[] = {c32(e, -1), v, delta, c32(e, down ? 31 : 0)};
    return intrinsic(e, down ? "llvm.nvvm.shfl.sync.down.i32" : "llvm.nvvm.shfl.sync.up.i32", e->i32, a, 4);
}

static LLVMValueRef warp_sum(llvm_emitter *e, LLVMValueRef v) {
    for (int offset = 16; offset > 0; offset /= 2) {
        LLVMValueRef a[] = {c32(e, -1), v, c32(e, offset), c32(e, 31)};
        v = LLVMBuildAdd(e->b, v, intrinsic(e, "llvm.nvvm.shfl.sync.bfly.i32", e->i32, a, 4), "");
    }
    return v;
}

/* ---- the kernel IR (kir.h) as LLVM IR ----
 *
 * A variable the IR never assigns after its declaration is an SSA value; the others live in
 * entry-block allocas (SROA makes them SSA again). A loop counter is read once per iteration; an
 * unrolled loop (kir_stmt.unroll) repeats its body with the counter a constant. An accumulator
 * of a field-scaled ISA (dot_isa_field_scaled) is four vectors, one per field. */

typedef struct kval {
    LLVMValueRef f[4]; /* f[0]: the value; KT_VACC of a field-scaled ISA: one per field */
} kval;

typedef struct kbind {
    bool is_value; /* SSA value (val), else allocas (slot) */
    kval val, slot;
    LLVMTypeRef array_type; /* a local array */
} kbind;

typedef struct kir_llvm {
    llvm_emitter *e;
    const kir_module *m;
    const kir_info *mi;
    kbind *bind;                  /* per variable id */
    bool *assigned;               /* per variable id: set or stored after its declaration */
    LLVMValueRef *params;         /* per variable id of a parameter, else NULL */
    LLVMValueRef *tables;         /* globals of the module's tables, in order */
    LLVMBasicBlockRef memo_block; /* x vectors loaded in this block: key f[0..3] of xptr */
    LLVMValueRef memo_ptr, memo_x[4];
    const kir_func **order; /* the module's functions, and their LLVM functions (fns[i] of order[i]) */
    LLVMValueRef *fns;
    int nfns;
} kir_llvm;

static int kfields(const kir_llvm *k, enum kir_type t) {
    return t == KT_VACC && dot_isa_field_scaled(k->mi->isa) ? 4 : t == KT_PAIR ? 2 : 1;
}

static LLVMTypeRef ktype(const kir_llvm *k, enum kir_type t) {
    llvm_emitter *e = k->e;
    switch (t) {
    case KT_SIZE: return e->i64;
    case KT_PU8:
    case KT_PI8: return e->i8p;
    case KT_PU16: return LLVMPointerType(e->i16, 0);
    case KT_PU32:
    case KT_PI32: return e->i32p;
    case KT_VACC:
    case KT_BACC: return acc_type(e, k->mi);
    case KT_VACC16: return LLVMVectorType(e->i16, (unsigned)k->mi->vec_bytes / 2);
    case KT_CODES:
    case KT_PAIR: return LLVMVectorType(e->i8, (unsigned)k->mi->vec_bytes);
    case KT_LUT16: return e->i16;
    case KT_LUTV: return LLVMVectorType(e->i8, 64);
    case KT_XW: return LLVMVectorType(e->i16, 16);
    case KT_V16: return LLVMVectorType(e->i16, 32);
    case KT_V32: return LLVMVectorType(e->i32, 16);
    case KT_MASK64: return LLVMVectorType(e->i1, 64);
    case KT_PLUTV:
    case KT_PB64: return LLVMPointerType(LLVMVectorType(e->i8, 64), 0);
    case KT_B64: return LLVMVectorType(e->i8, 64);
    case KT_W16: return LLVMVectorType(e->i16, 32);
    case KT_PW16: return LLVMPointerType(LLVMVectorType(e->i16, 32), 0);
    case KT_Y32: return LLVMVectorType(e->i32, 16);
    case KT_PY32: return LLVMPointerType(LLVMVectorType(e->i32, 16), 0);
    case KT_BYTES: return e->i8p;
    case KT_I32X4:
    case KT_U32X4: return LLVMVectorType(e->i32, 4);
    case KT_BOOL: return LLVMInt1TypeInContext(e->ctx);
    case KT_PI32X4:
    case KT_PU32X4: return LLVMPointerType(LLVMVectorType(e->i32, 4), 0);
    default: return e->i32;
    }
}

static LLVMTypeRef elem_type(const kir_llvm *k, enum kir_type ptr) {
    if (ptr == KT_PLUTV || ptr == KT_PB64) return LLVMVectorType(k->e->i8, 64);
    if (ptr == KT_PW16) return LLVMVectorType(k->e->i16, 32);
    if (ptr == KT_PY32) return LLVMVectorType(k->e->i32, 16);
    if (ptr == KT_PI32X4 || ptr == KT_PU32X4) return LLVMVectorType(k->e->i32, 4);
    return ptr == KT_PU8 || ptr == KT_PI8 || ptr == KT_BYTES ? k->e->i8 : ptr == KT_PU16 ? k->e->i16 : k->e->i32;
}

static void kir_mark_assigned(kir_llvm *k, const kir_stmt *s) {
    for (; s; s = s->next) {
        if (s->kind == KS_SET) k->assigned[s->var->id] = true;
        /* a store through a pointer assigns no variable; the older forms' pointers stay variables
         * all the same (their IR as it was), the lanes' vector pointers are values */
        if (s->kind == KS_STORE && s->init->op == KO_VAR && (s->init->var->array || s->init->var->type < KT_B64))
            k->assigned[s->init->var->id] = true;
        if (s->kind == KS_FOR) k->assigned[s->var->id] = true;
        kir_mark_assigned(k, s->body);
    }
}

static kval kev(kir_llvm *k, const kir_expr *x);
static LLVMValueRef kev1(kir_llvm *k, const kir_expr *x) { return kev(k, x).f[0]; }

static LLVMValueRef vload(llvm_emitter *e, int V, LLVMValueRef ptr, int offset) {
    return load_vec(e, V, ptr, c32(e, offset));
}

/* &array[i] or &ptr[i] */
static LLVMValueRef kir_element(kir_llvm *k, const kir_expr *base, LLVMValueRef index) {
    llvm_emitter *e = k->e;
    if (base->op == KO_VAR && base->var->array && base->var->type == KT_LUTV) { /* 64-byte planes */
        LLVMTypeRef v = ktype(k, KT_LUTV);
        return at(e, v, LLVMBuildBitCast(e->b, k->bind[base->var->id].slot.f[0], LLVMPointerType(v, 0), ""), index);
    }
    if (base->op == KO_VAR && base->var->array) {
        kbind *bd = &k->bind[base->var->id];
        LLVMValueRef idx[] = {c32(e, 0), index};
        return LLVMBuildGEP2(e->b, bd->array_type, bd->slot.f[0], idx, 2, "");
    }
    return at(e, elem_type(k, base->type), kev1(k, base), index);
}

/* The x vectors of a group product, loaded once per block for all the rows that share them. */
static void x_vectors(kir_llvm *k, LLVMValueRef xptr, LLVMValueRef xv[4]) {
    llvm_emitter *e = k->e;
    if (k->memo_block != LLVMGetInsertBlock(e->b) || k->memo_ptr != xptr) {
        for (int i = 0; i < 4; i++) k->memo_x[i] = vload(e, k->mi->vec_bytes, xptr, i * k->mi->vec_bytes);
        k->memo_block = LLVMGetInsertBlock(e->b), k->memo_ptr = xptr;
    }
    memcpy(xv, k->memo_x, sizeof k->memo_x);
}

/* A KT_PAIR of two 16-byte vectors: their low 8-byte halves side by side (f[0]), their high (f[1]). */
static kval zip_halves(llvm_emitter *e, LLVMValueRef a, LLVMValueRef b) {
    static const int lo[] = {0, 2}, hi[] = {1, 3};
    LLVMTypeRef q = LLVMVectorType(e->i64, 2), v = LLVMTypeOf(a);
    LLVMValueRef p = LLVMBuildBitCast(e->b, a, q, ""), s = LLVMBuildBitCast(e->b, b, q, "");
    kval r = {{LLVMBuildBitCast(e->b, shuffle(e, p, s, lo, 2), v, ""),
               LLVMBuildBitCast(e->b, shuffle(e, p, s, hi, 2), v, "")}};
    return r;
}

/* ---- the 512-bit operations (the vector lut's: vpermt2b, vpdpbusd; kir.h) ---- */

static LLVMValueRef mask_const(llvm_emitter *e, uint32_t bits) {
    LLVMValueRef m[32];
    for (int i = 0; i < 32; i++) m[i] = LLVMConstInt(e->i1, (bits >> i) & 1, 0);
    return LLVMConstVector(m, 32);
}

static LLVMValueRef lanes_const(kir_llvm *k, const kir_expr *x) {
    LLVMTypeRef t = LLVMGetElementType(ktype(k, x->type));
    LLVMValueRef v[64];
    for (int32_t i = 0; i < x->nvals; i++) v[i] = LLVMConstInt(t, (unsigned long long)x->vals[i], 0);
    return LLVMConstVector(v, (unsigned)x->nvals);
}

/* The n bytes of x readable at column c (n <= 16): in whole words where they are 12 or 16, else
 * byte by byte, sign-extended to 16-bit lanes. */
static LLVMValueRef x_words(kir_llvm *k, LLVMValueRef x, LLVMValueRef c, int n) {
    llvm_emitter *e = k->e;
    LLVMTypeRef v16i8 = LLVMVectorType(e->i8, 16), v4i32 = LLVMVectorType(e->i32, 4);
    LLVMValueRef xb;
    if (n >= 12 && n % 4 == 0) {
        LLVMValueRef w = LLVMConstNull(v4i32);
        for (int i = 0; i < n / 4; i++) {
            LLVMValueRef p =
                LLVMBuildBitCast(e->b, at(e, e->i8, x, LLVMBuildAdd(e->b, c, c32(e, 4 * i), "")), e->i32p, "");
            LLVMValueRef v = LLVMBuildLoad2(e->b, e->i32, p, "");
            LLVMSetAlignment(v, 1);
            w = LLVMBuildInsertElement(e->b, w, v, c32(e, i), "");
        }
        xb = LLVMBuildBitCast(e->b, w, v16i8, "");
    } else {
        xb = LLVMConstNull(v16i8);
        for (int i = 0; i < n; i++)
            xb = LLVMBuildInsertElement(
                e->b, xb, LLVMBuildLoad2(e->b, e->i8, at(e, e->i8, x, LLVMBuildAdd(e->b, c, c32(e, i), "")), ""),
                c32(e, i), "");
    }
    return LLVMBuildSExt(e->b, xb, ktype(k, KT_XW), "");
}

static LLVMValueRef kev_512(kir_llvm *k, const kir_expr *x) {
    llvm_emitter *e = k->e;
    LLVMTypeRef v64i8 = LLVMVectorType(e->i8, 64), v16i32 = LLVMVectorType(e->i32, 16);
    switch (x->op) {
    case KO_VCONST: return lanes_const(k, x);
    case KO_XWORDS: {
        LLVMValueRef xp = kev1(k, x->a);
        return x_words(k, xp, kev1(k, x->b), (int)x->imm);
    }
    case KO_PERMW: {
        int sel[32];
        for (int i = 0; i < 32; i++) sel[i] = x->vals[i];
        return shuffle(e, kev1(k, x->a), NULL, sel, 32);
    }
    case KO_MADDW:
    case KO_MSUBW: {
        LLVMValueRef a = kev1(k, x->a), b = kev1(k, x->b);
        LLVMValueRef v = x->op == KO_MADDW ? LLVMBuildAdd(e->b, a, b, "") : LLVMBuildSub(e->b, a, b, "");
        return LLVMBuildSelect(e->b, mask_const(e, (uint32_t)x->imm), v, a, "");
    }
    case KO_PERM2B: { /* a constant index: a shuffle of the two */
        LLVMValueRef a = LLVMBuildBitCast(e->b, kev1(k, x->a), v64i8, ""), v;
        if (x->b->op == KO_VCONST) {
            LLVMValueRef c = LLVMBuildBitCast(e->b, kev1(k, x->c), v64i8, "");
            int idx[64];
            for (int i = 0; i < 64; i++) idx[i] = x->b->vals[i];
            v = shuffle(e, a, c, idx, 64);
        } else {
            LLVMValueRef args[] = {a, kev1(k, x->b), LLVMBuildBitCast(e->b, kev1(k, x->c), v64i8, "")};
            v = intrinsic(e, "llvm.x86.avx512.vpermi2var.qi.512", v64i8, args, 3);
        }
        return LLVMBuildBitCast(e->b, v, ktype(k, x->type), "");
    }
    case KO_VLOADB: {
        LLVMValueRef p = kev1(k, x->a);
        if (x->b) return load_vec(e, 64, p, kev1(k, x->b));
        LLVMValueRef v = LLVMBuildLoad2(e->b, v64i8, LLVMBuildBitCast(e->b, p, LLVMPointerType(v64i8, 0), ""), "");
        LLVMSetAlignment(v, 1);
        return v;
    }
    case KO_MASK64: {
        LLVMValueRef w = kev1(k, x->a);
        LLVMValueRef mp = LLVMBuildBitCast(e->b, at(e, e->i8, w, kev1(k, x->b)), LLVMPointerType(e->i64, 0), "");
        LLVMValueRef m = LLVMBuildLoad2(e->b, e->i64, mp, "");
        LLVMSetAlignment(m, 8);
        return LLVMBuildBitCast(e->b, m, ktype(k, KT_MASK64), "");
    }
    case KO_DPBUSD: {
        LLVMValueRef a = kev1(k, x->a);
        LLVMValueRef b = LLVMBuildBitCast(e->b, kev1(k, x->b), v16i32, "");
        LLVMValueRef args[] = {a, b, LLVMBuildBitCast(e->b, kev1(k, x->c), v16i32, "")};
        return intrinsic(e, "llvm.x86.avx512.vpdpbusd.512", v16i32, args, 3);
    }
    default: rsrc_fatal("internal error: kernel IR operation %s has no LLVM form", kir_op_names[x->op]);
    }
}

static kval kev_vector(kir_llvm *k, const kir_expr *x) {
    llvm_emitter *e = k->e;
    const kir_info *mi = k->mi;
    int V = mi->vec_bytes, F = kfields(k, x->type);
    kval r = {{0}};
    switch (x->op) {
    case KO_VZERO:
        for (int f = 0; f < F; f++) r.f[f] = LLVMConstNull(ktype(k, x->type));
        return r;
    case KO_DOT4: {
        kval a = kev(k, x->a);
        LLVMValueRef xv[4], w = kev1(k, x->b);
        x_vectors(k, kev1(k, x->c), xv);
        LLVMValueRef p = vload(e, V, w, 0);
        if (F == 4) {
            for (int i = 0; i < 4; i++)
                r.f[i] = dot(e, mi, a.f[i], LLVMBuildAnd(e->b, p, splat(e->i8, V, 3 << (2 * i)), ""), xv[i]);
            return r;
        }
        r.f[0] = a.f[0];
        for (int i = 0; i < 4; i++) r.f[0] = dot(e, mi, r.f[0], field_codes(e, V, p, i), xv[i]);
        return r;
    }
    case KO_DOT4P: { /* AVX2 (dot_isa_pair_sums): vpmaddubsw's pair sums added in 16 bits */
        LLVMValueRef xv[4], p = vload(e, V, kev1(k, x->b), 0);
        x_vectors(k, kev1(k, x->c), xv);
        r.f[0] = kev1(k, x->a);
        for (int i = 0; i < 4; i++)
            r.f[0] = LLVMBuildAdd(e->b, r.f[0], pair_sums(e, mi, field_codes(e, V, p, i), xv[i]), "");
        return r;
    }
    case KO_WIDEN: r.f[0] = widen(e, mi, kev1(k, x->a), kev1(k, x->b)); return r;
    case KO_QDOT: { /* the 4 bytes at c in every int32 lane, vpmaddubsw'd (or vpdpbusd'd) with the codes */
        LLVMValueRef q = LLVMBuildLoad2(e->b, e->i32, LLVMBuildBitCast(e->b, kev1(k, x->c), e->i32p, ""), "");
        LLVMSetAlignment(q, 1);
        LLVMValueRef v = broadcast(e, LLVMVectorType(e->i32, (unsigned)V / 4), q);
        LLVMValueRef xb = LLVMBuildBitCast(e->b, v, LLVMVectorType(e->i8, (unsigned)V), "");
        if (x->a->type == KT_BACC)
            r.f[0] = dot(e, mi, kev1(k, x->a), kev1(k, x->b), xb);
        else
            r.f[0] = LLVMBuildAdd(e->b, kev1(k, x->a), pair_sums(e, mi, kev1(k, x->b), xb), "");
        return r;
    }
    case KO_STOREV: {
        LLVMValueRef v = kev1(k, x->b);
        LLVMValueRef p = LLVMBuildBitCast(e->b, kev1(k, x->a), LLVMPointerType(LLVMTypeOf(v), 0), "");
        LLVMSetAlignment(LLVMBuildStore(e->b, v, p), 4);
        return r;
    }
    case KO_HALF: {
        const int idx[4] = {4 * (int)x->imm, 4 * (int)x->imm + 1, 4 * (int)x->imm + 2, 4 * (int)x->imm + 3};
        r.f[0] = shuffle(e, kev1(k, x->a), NULL, idx, 4);
        return r;
    }
    case KO_SUM4: {
        r = kev(k, x->a);
        LLVMValueRef xp = kev1(k, x->b);
        for (int i = 0; i < 4; i++) r.f[0] = dot(e, mi, r.f[0], splat(e->i8, V, 1), vload(e, V, xp, i * V));
        return r;
    }
    case KO_VSUM: {
        kval a = kev(k, x->a);
        LLVMValueRef total = a.f[0];
        for (int f = 1; f < kfields(k, x->a->type); f++) /* lanes of field f are exact multiples of 4^f */
            total = LLVMBuildAdd(e->b, total, LLVMBuildAShr(e->b, a.f[f], splat(e->i32, acc_lanes(mi), 2 * f), ""), "");
        r.f[0] = vsum(e, mi, total);
        return r;
    }
    case KO_VSUM4: {
        LLVMValueRef v[4] = {kev1(k, x->a), kev1(k, x->b), kev1(k, x->c), kev1(k, x->d)};
        r.f[0] = vsum4(e, v, acc_lanes(mi));
        return r;
    }
    case KO_FIELD: r.f[0] = field_codes(e, V, vload(e, V, kev1(k, x->a), 0), (int)x->imm); return r;
    case KO_BDOT: {
        kval a = kev(k, x->a);
        LLVMValueRef codes = kev1(k, x->b);
        r.f[0] = dot(e, mi, a.f[0], codes, vload(e, V, kev1(k, x->c), 0));
        return r;
    }
    case KO_BDOTP:
        r.f[0] = LLVMBuildAdd(e->b, kev1(k, x->a), pair_sums(e, mi, kev1(k, x->b), vload(e, V, kev1(k, x->c), 0)), "");
        return r;
    case KO_PAIR:
    case KO_XPAIR: {
        LLVMValueRef a = kev1(k, x->a), b = kev1(k, x->b);
        if (x->op == KO_XPAIR) a = vload(e, V, a, 0), b = vload(e, V, b, 0);
        return zip_halves(e, a, b);
    }
    case KO_MMLA: {
        kval a = kev(k, x->a), rows = kev(k, x->b), tokens = kev(k, x->c);
        r.f[0] = a.f[0];
        for (int h = 0; h < 2; h++) {
            LLVMValueRef args[] = {r.f[0], rows.f[h], tokens.f[h]};
            r.f[0] = intrinsic(e, "llvm.aarch64.neon.smmla.v4i32.v16i8", acc_type(e, mi), args, 3);
        }
        return r;
    }
    case KO_LANE: r.f[0] = LLVMBuildExtractElement(e->b, kev1(k, x->a), c32(e, x->imm), ""); return r;
    case KO_ISNULL: r.f[0] = LLVMBuildIsNull(e->b, kev1(k, x->a), ""); return r;
    case KO_ALLOC:
    case KO_FREE: {
        LLVMTypeRef alloc_params[] = {e->i64, e->i64}, free_params[] = {e->i8p};
        LLVMTypeRef t = x->op == KO_ALLOC ? LLVMFunctionType(e->i8p, alloc_params, 2, 0)
                                          : LLVMFunctionType(e->voidt, free_params, 1, 0);
        LLVMValueRef args[2] = {c64(e, 64), c64(e, x->imm)};
        if (x->op == KO_FREE) args[0] = kev1(k, x->a);
        r.f[0] = LLVMBuildCall2(e->b, t, libc_fn(e, x->op == KO_ALLOC ? "aligned_alloc" : "free", t), args,
                                x->op == KO_ALLOC ? 2 : 1, "");
        return r;
    }
    case KO_SHUFFLE: {
        int idx[64];
        for (int i = 0; i < x->nvals; i++) idx[i] = x->vals[i];
        r.f[0] = shuffle(e, kev1(k, x->a), x->b ? kev1(k, x->b) : NULL, idx, x->nvals);
        return r;
    }
    case KO_QUARTER: r.f[0] = quarter(e, kev1(k, x->a), (int)x->imm); return r;
    case KO_SPLAT: r.f[0] = broadcast(e, ktype(k, x->type), kev1(k, x->a)); return r; /* KT_Y32, KT_I32X4 */
    case KO_PIN: r.f[0] = pin(e, kev1(k, x->a)); return r;
    case KO_OPAQUE: r.f[0] = launder(e, kev1(k, x->a)); return r;
    case KO_XWORDS:
    case KO_PERMW:
    case KO_MADDW:
    case KO_MSUBW:
    case KO_PERM2B:
    case KO_VLOADB:
    case KO_MASK64:
    case KO_DPBUSD:
    case KO_VCONST: r.f[0] = kev_512(k, x); return r;
    case KO_THREAD: r.f[0] = sreg(e, "llvm.nvvm.read.ptx.sreg.tid.x"); return r;
    case KO_CTA: r.f[0] = sreg(e, "llvm.nvvm.read.ptx.sreg.ctaid.x"); return r;
    case KO_DP4A: r.f[0] = dp4a(e, kev1(k, x->a), kev1(k, x->b), kev1(k, x->c)); return r;
    case KO_WARP_SUM: r.f[0] = warp_sum(e, kev1(k, x->a)); return r;
    case KO_SHFL_DOWN:
    case KO_SHFL_UP: r.f[0] = shfl(e, x->op == KO_SHFL_DOWN, kev1(k, x->a), kev1(k, x->b)); return r;
    case KO_ELEM: r.f[0] = LLVMBuildExtractElement(e->b, kev1(k, x->a), c32(e, x->imm), ""); return r;
    default: rsrc_fatal("internal error: kernel IR operation %s has no LLVM form", kir_op_names[x->op]);
    }
}

static kval kev(kir_llvm *k, const kir_expr *x) {
    llvm_emitter *e = k->e;
    kval r = {{0}};
    switch (x->op) {
    case KO_CONST:
        if (kir_vector(x->type)) { /* in every lane */
            LLVMTypeRef t = ktype(k, x->type);
            r.f[0] = splat(LLVMGetElementType(t), (int)LLVMGetVectorSize(t), x->imm);
            return r;
        }
        r.f[0] = x->type == KT_SIZE ? c64(e, x->imm) : c32(e, x->imm);
        return r;
    case KO_VAR: {
        if (x->var->array) { /* an array as a value: its first element's address, as in C */
            kbind *bd = &k->bind[x->var->id];
            r.f[0] = LLVMBuildBitCast(e->b, bd->slot.f[0], LLVMPointerType(ktype(k, x->var->type), 0), "");
            return r;
        }
        if (k->params[x->var->id]) {
            r.f[0] = k->params[x->var->id];
            return r;
        }
        kbind *bd = &k->bind[x->var->id];
        if (bd->is_value) return bd->val;
        for (int f = 0; f < kfields(k, x->var->type); f++) r.f[f] = get(e, bd->slot.f[f]);
        return r;
    }
    case KO_ADD: r.f[0] = LLVMBuildAdd(e->b, kev1(k, x->a), kev1(k, x->b), ""); return r;
    case KO_SUB: r.f[0] = LLVMBuildSub(e->b, kev1(k, x->a), kev1(k, x->b), ""); return r;
    case KO_MUL: r.f[0] = LLVMBuildMul(e->b, kev1(k, x->a), kev1(k, x->b), ""); return r;
    case KO_SHL: r.f[0] = LLVMBuildShl(e->b, kev1(k, x->a), kev1(k, x->b), ""); return r;
    case KO_LSHR: r.f[0] = LLVMBuildLShr(e->b, kev1(k, x->a), kev1(k, x->b), ""); return r;
    case KO_AND:
    case KO_LAND: r.f[0] = LLVMBuildAnd(e->b, kev1(k, x->a), kev1(k, x->b), ""); return r;
    case KO_LOR:
    case KO_OR: r.f[0] = LLVMBuildOr(e->b, kev1(k, x->a), kev1(k, x->b), ""); return r;
    case KO_XOR: r.f[0] = LLVMBuildXor(e->b, kev1(k, x->a), kev1(k, x->b), ""); return r;
    case KO_DIV: r.f[0] = LLVMBuildSDiv(e->b, kev1(k, x->a), kev1(k, x->b), ""); return r;
    case KO_NEG: r.f[0] = LLVMBuildNeg(e->b, kev1(k, x->a), ""); return r;
    case KO_SELECT: {
        LLVMValueRef c = kev1(k, x->a);
        if (LLVMGetTypeKind(LLVMTypeOf(c)) == LLVMIntegerTypeKind && LLVMGetIntTypeWidth(LLVMTypeOf(c)) != 1)
            c = LLVMBuildICmp(e->b, LLVMIntNE, c, LLVMConstNull(LLVMTypeOf(c)), "");
        r.f[0] = LLVMBuildSelect(e->b, c, kev1(k, x->b), kev1(k, x->c), "");
        return r;
    }
    case KO_LT:
    case KO_LE:
    case KO_EQ:
    case KO_NE: {
        LLVMIntPredicate pred = x->op == KO_LT   ? LLVMIntSLT
                                : x->op == KO_LE ? LLVMIntSLE
                                : x->op == KO_EQ ? LLVMIntEQ
                                                 : LLVMIntNE;
        r.f[0] = LLVMBuildICmp(e->b, pred, kev1(k, x->a), kev1(k, x->b), "");
        return r;
    }
    case KO_CAST:
        r.f[0] = kev1(k, x->a);
        if (x->type == KT_SIZE) r.f[0] = LLVMBuildSExt(e->b, r.f[0], e->i64, "");
        if (x->type == KT_LUT16) r.f[0] = LLVMBuildTrunc(e->b, r.f[0], e->i16, "");
        return r;
    case KO_INDEX:
        if (x->a->op == KO_VAR && x->a->var->array) { /* into a local array */
            r.f[0] = kir_element(k, x->a, kev1(k, x->b));
            return r;
        }
        r.f[0] = at(e, elem_type(k, x->type), kev1(k, x->a), kev1(k, x->b));
        return r;
    case KO_REINTERPRET: { /* a local array: its address */
        bool array = x->a->op == KO_VAR && x->a->var->array;
        LLVMValueRef a = array ? k->bind[x->a->var->id].slot.f[0] : kev1(k, x->a);
        r.f[0] = LLVMBuildBitCast(e->b, a, ktype(k, x->type), "");
        return r;
    }
    case KO_LOAD:
    case KO_LDG: { /* ldg: NVPTX reads constant data through the read-only cache by itself */
        if (x->type == KT_W16 || x->type == KT_Y32) { /* the lanes' vectors, *a or a[b] */
            LLVMValueRef at_ = x->b ? kir_element(k, x->a, kev1(k, x->b)) : kev1(k, x->a);
            r.f[0] = LLVMBuildLoad2(e->b, ktype(k, x->type), at_, "");
            if (x->imm) LLVMSetAlignment(r.f[0], (unsigned)x->imm);
            return r;
        }
        bool array = x->a->op == KO_VAR && x->a->var->array, lut16 = array && x->a->var->type == KT_LUT16;
        if ((array && (x->a->var->type == KT_LUTV || x->a->var->type == KT_B64)) || x->a->type == KT_PLUTV) {
            /* a plane of the vector lut's tables, a row of the lanes' transpose */
            r.f[0] = LLVMBuildLoad2(e->b, ktype(k, KT_LUTV), kir_element(k, x->a, kev1(k, x->b)), "");
            LLVMSetAlignment(r.f[0], 64);
            return r;
        }
        enum kir_type base = array ? KT_PI32 : x->a->type;
        LLVMTypeRef et = lut16 ? e->i16 : elem_type(k, base);
        r.f[0] = LLVMBuildLoad2(e->b, et, kir_element(k, x->a, kev1(k, x->b)), "");
        if (base == KT_PI32X4 || base == KT_PU32X4) LLVMSetAlignment(r.f[0], 16);
        if (et == e->i8)
            r.f[0] = base == KT_PI8 ? LLVMBuildSExt(e->b, r.f[0], e->i32, "") /* x is signed */
                                    : LLVMBuildZExt(e->b, r.f[0], e->i32, "");
        if (et == e->i16 && x->type == KT_SIZE) { /* a u16 index entry as an offset */
            r.f[0] = LLVMBuildZExt(e->b, r.f[0], e->i64, "");
            return r;
        }
        if (et == e->i16) /* a table entry is signed, a u16 index entry not */
            r.f[0] = lut16 ? LLVMBuildSExt(e->b, r.f[0], e->i32, "") : LLVMBuildZExt(e->b, r.f[0], e->i32, "");
        return r;
    }
    default: return kev_vector(k, x);
    }
}

static void kir_llvm_stmts(kir_llvm *k, const kir_stmt *s);

static LLVMTypeRef sig_type(llvm_emitter *e, enum kir_sig sig) {
    if (sig == KSIG_GPU_ROWS) rsrc_fatal("internal error: the LLVM printer has no CUDA device functions");
    if (sig == KSIG_LANES_TRANSPOSE) {
        LLVMTypeRef params[] = {e->i8p, e->i8p, e->i32, e->i32, e->i32};
        return LLVMFunctionType(e->voidt, params, 5, 0);
    }
    if (sig == KSIG_LANES_BLOCK || sig == KSIG_LANES_BLOCK2) {
        LLVMTypeRef i16p = LLVMPointerType(e->i16, 0), params[] = {e->i8p, i16p, i16p, e->i32p, e->i64};
        return LLVMFunctionType(e->voidt, params, sig == KSIG_LANES_BLOCK2 ? 5 : 4, 0);
    }
    return sig == KSIG_KERNEL || sig == KSIG_GPU_ENTRY ? e->kernel_type /* (data, x, y) on NVPTX */
           : sig == KSIG_BATCH                         ? e->batch_type
                                                       : e->block_type;
}

static void kir_llvm_decl(kir_llvm *k, const kir_stmt *d) {
    llvm_emitter *e = k->e;
    kbind *bd = &k->bind[d->var->id];
    memset(bd, 0, sizeof *bd);
    if (d->var->array) {
        /* one 64-byte vector: allocated as the vector (the lanes pass's zeros) */
        bool one = d->var->array == 1 && d->var->type == KT_B64;
        bd->array_type = one ? ktype(k, KT_B64) : LLVMArrayType(ktype(k, d->var->type), (unsigned)d->var->array);
        bd->slot.f[0] = LLVMBuildAlloca(e->allocas, bd->array_type, d->var->name);
        if (d->var->type == KT_LUTV || d->var->type == KT_B64 || d->var->align64) LLVMSetAlignment(bd->slot.f[0], 64);
        if (d->init) set(e, bd->slot.f[0], LLVMConstNull(bd->array_type));
        return;
    }
    if ((!k->assigned[d->var->id] || d->var->straight) && d->init) {
        bd->is_value = true;
        bd->val = kev(k, d->init);
        return;
    }
    kval init = d->init ? kev(k, d->init) : (kval){{0}};
    for (int f = 0; f < kfields(k, d->var->type); f++) {
        bd->slot.f[f] = LLVMBuildAlloca(e->allocas, ktype(k, d->var->type), d->var->name);
        if (d->init) set(e, bd->slot.f[f], init.f[f]);
    }
}

/* for over constants: the body once per value, the counter a constant */
static void kir_llvm_unrolled(kir_llvm *k, const kir_stmt *s) {
    kbind *bd = &k->bind[s->var->id];
    LLVMValueRef from = kev1(k, s->init), to = kev1(k, s->cond->b);
    if (!LLVMIsAConstantInt(from) || !LLVMIsAConstantInt(to) || s->cond->op != KO_LT || s->cond->a->var != s->var)
        rsrc_fatal("internal error: an unrolled loop over %s has bounds that are not constants", s->var->name);
    for (long long i = LLVMConstIntGetSExtValue(from); i < LLVMConstIntGetSExtValue(to); i += s->step) {
        memset(bd, 0, sizeof *bd);
        bd->is_value = true;
        bd->val.f[0] = c32(k->e, i);
        kir_llvm_stmts(k, s->body);
    }
}

static void kir_llvm_for(kir_llvm *k, const kir_stmt *s) {
    llvm_emitter *e = k->e;
    if (s->unroll) {
        kir_llvm_unrolled(k, s);
        return;
    }
    kbind *bd = &k->bind[s->var->id];
    if (s->init) {
        memset(bd, 0, sizeof *bd);
        bd->slot.f[0] = var(e, e->i32, kev1(k, s->init), s->label ? s->label : s->var->name);
    }
    LLVMValueRef counter = bd->slot.f[0];
    const char *name = s->label ? s->label : s->var->name;
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(e->ctx, e->fn, name);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(e->ctx, e->fn, name);
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(e->ctx, e->fn, name);
    LLVMBuildBr(e->b, head);
    LLVMPositionBuilderAtEnd(e->b, head);
    LLVMValueRef i = get(e, counter);
    bd->is_value = true, bd->val.f[0] = i;
    LLVMBuildCondBr(e->b, kev1(k, s->cond), body, exit);
    LLVMPositionBuilderAtEnd(e->b, body);
    kir_llvm_stmts(k, s->body);
    set(e, counter, s->shift ? LLVMBuildShl(e->b, i, c32(e, s->step), "") : LLVMBuildAdd(e->b, i, c32(e, s->step), ""));
    LLVMBuildBr(e->b, head);
    LLVMPositionBuilderAtEnd(e->b, exit);
    bd->is_value = false, bd->slot.f[0] = counter;
}

static void kir_llvm_stmts(kir_llvm *k, const kir_stmt *s) {
    llvm_emitter *e = k->e;
    for (; s; s = s->next) switch (s->kind) {
        case KS_DECL:
            for (const kir_stmt *d = s; d; d = d->more) kir_llvm_decl(k, d);
            break;
        case KS_SET: {
            kval v = kev(k, s->value);
            kbind *bd = &k->bind[s->var->id];
            if (s->var->straight) { /* its new value */
                bd->val = v;
                break;
            }
            for (int f = 0; f < kfields(k, s->var->type); f++) set(e, bd->slot.f[f], v.f[f]);
            break;
        }
        case KS_STORE: {
            LLVMValueRef at_ = kir_element(k, s->init, kev1(k, s->index));
            LLVMValueRef st = LLVMBuildStore(e->b, kev1(k, s->value), at_);
            if ((s->init->op == KO_VAR && s->init->var->type == KT_LUTV) || s->init->type == KT_PB64)
                LLVMSetAlignment(st, 64);
            if (s->align) LLVMSetAlignment(st, (unsigned)s->align);
            break;
        }
        case KS_FOR: kir_llvm_for(k, s); break;
        case KS_IF: {
            LLVMBasicBlockRef join = if_begin(e, kev1(k, s->cond));
            kir_llvm_stmts(k, s->body);
            if_end(e, join);
            break;
        }
        case KS_CALL: {
            const kir_table *t = k->m->tables;
            int n = 0;
            while (t && strcmp(t->name, s->callee)) t = t->next, n++;
            if (!t) rsrc_fatal("internal error: no function table %s", s->callee);
            LLVMTypeRef fp = LLVMPointerType(e->block_type, 0), tt = LLVMArrayType(fp, (unsigned)t->count);
            LLVMValueRef idx[] = {c32(e, 0), kev1(k, s->index)};
            LLVMValueRef f = LLVMBuildLoad2(e->b, fp, LLVMBuildGEP2(e->b, tt, k->tables[n], idx, 2, ""), "");
            LLVMValueRef args[] = {kev1(k, s->args[0]), kev1(k, s->args[1])};
            LLVMBuildCall2(e->b, e->block_type, f, args, 2, "");
            break;
        }
        case KS_SCOPE: kir_llvm_stmts(k, s->body); break;
        case KS_UNUSED: break;
        case KS_DO: kev(k, s->value); break;
        case KS_CALLF: {
            int i = 0;
            while (i < k->nfns && strcmp(k->order[i]->name, s->callee)) i++;
            if (i == k->nfns) rsrc_fatal("internal error: no function %s in the module", s->callee);
            LLVMValueRef args[8];
            for (int j = 0; j < s->nargs; j++) args[j] = kev1(k, s->args[j]);
            LLVMBuildCall2(e->b, sig_type(e, k->order[i]->sig), k->fns[i], args, (unsigned)s->nargs, "");
            break;
        }
        case KS_RETURN: /* what follows in its block is dead: it goes in a block of its own */
            LLVMBuildRetVoid(e->b);
            LLVMPositionBuilderAtEnd(e->b, LLVMAppendBasicBlockInContext(e->ctx, e->fn, "dead"));
            break;
        }
}

static LLVMValueRef kir_llvm_declare(llvm_emitter *e, const kir_func *f) {
    LLVMValueRef fn = declare_function(e, f->name, sig_type(e, f->sig), f->exported);
    if (f->exported) {
        add_enum_attr(e, fn, 2, "noalias");                            /* x */
        add_enum_attr(e, fn, f->sig == KSIG_BATCH ? 4 : 3, "noalias"); /* y */
    }
    if (f->noinline) add_enum_attr(e, fn, LLVMAttributeFunctionIndex, "noinline"); /* keeps the optimiser linear */
    if (f->optsize) add_enum_attr(e, fn, LLVMAttributeFunctionIndex, "optsize");
    return fn;
}

static void kir_llvm_body(kir_llvm *k, const kir_func *f, LLVMValueRef fn) {
    start_body(k->e, fn);
    for (int i = 0; i < f->nparams; i++) k->params[f->param[i]->id] = LLVMGetParam(fn, (unsigned)i);
    k->memo_block = NULL;
    kir_llvm_stmts(k, f->body);
    end_function(k->e);
}

/* The module's functions are declared first (the kernel entry, then where the lanes form has
 * them its helpers and the module's shared functions, then the rest in order), then the tables of
 * them, then every body. A shared function (kir.h) is built by the first module that has it; the
 * later ones call that one. */
static void emit_llvm_kir(llvm_emitter *e, const kir_module *m) {
    kir_llvm k = {.e = e, .m = m, .mi = &m->info};
    k.bind = xcalloc((size_t)m->nvars + 1, sizeof *k.bind);
    k.assigned = xcalloc((size_t)m->nvars + 1, sizeof *k.assigned);
    k.params = xcalloc((size_t)m->nvars + 1, sizeof *k.params);
    int nf = 0, nt = 0;
    for (const kir_func *f = m->funcs; f; f = f->next) nf++, kir_mark_assigned(&k, f->body);
    for (const kir_table *t = m->tables; t; t = t->next) nt++;
    const kir_func **order = xcalloc((size_t)nf, sizeof *order);
    LLVMValueRef *fns = xcalloc((size_t)nf, sizeof *fns);
    bool *build = xcalloc((size_t)nf, sizeof *build);
    int n = 0;
    for (const kir_func *f = m->funcs; f; f = f->next)
        if (f->sig == KSIG_KERNEL || f->sig == KSIG_GPU_ENTRY) order[n++] = f;
    for (const kir_func *f = m->funcs; f; f = f->next)
        if (f->sig != KSIG_KERNEL && f->sig != KSIG_GPU_ENTRY) order[n++] = f;
    fns[0] = kir_llvm_declare(e, order[0]), build[0] = true;
    for (int i = 1; i < n; i++)
        if (order[i]->shared && !(fns[i] = LLVMGetNamedFunction(e->mod, order[i]->name)))
            fns[i] = kir_llvm_declare(e, order[i]), build[i] = true;
    for (int i = 1; i < n; i++)
        if (!order[i]->shared) fns[i] = kir_llvm_declare(e, order[i]), build[i] = true;
    k.order = order, k.fns = fns, k.nfns = n;
    k.tables = xcalloc((size_t)nt + 1, sizeof *k.tables);
    nt = 0;
    for (const kir_table *t = m->tables; t; t = t->next, nt++) {
        LLVMTypeRef fp = LLVMPointerType(sig_type(e, t->sig), 0);
        LLVMValueRef *members = xcalloc((size_t)t->count + 1, sizeof *members);
        for (int32_t j = 0; j < t->count; j++)
            for (int i = 0; i < n; i++)
                if (order[i] == t->funcs[j]) members[j] = fns[i];
        k.tables[nt] = LLVMAddGlobal(e->mod, LLVMArrayType(fp, (unsigned)t->count), t->name);
        LLVMSetInitializer(k.tables[nt], LLVMConstArray(fp, members, (unsigned)t->count));
        LLVMSetGlobalConstant(k.tables[nt], 1);
        LLVMSetLinkage(k.tables[nt], LLVMInternalLinkage);
        free(members);
    }
    for (int i = 0; i < n; i++)
        if (build[i]) kir_llvm_body(&k, order[i], fns[i]);
    free(order), free(fns), free(build), free(k.bind), free(k.assigned), free(k.params), free(k.tables);
}

void emit_llvm_kernel(llvm_emitter *e, const kir_module *m) {
    if (e->gpu != m->info.gpu_entry)
        rsrc_fatal("internal error: %s was lowered for %s, not for the LLVM %s printer", m->info.symbol,
                   m->info.gpu_entry ? "NVPTX" : "another route", e->gpu ? "NVPTX" : "CPU");
    emit_llvm_kir(e, m);
}

/* ---- the LLVM printer (printer.h): one module, optimised and emitted by finish (or in parts) ---- */

typedef struct llvm_printer {
    llvm_emitter *e;
    FILE *c; /* the driver's C file: the kernels' declarations */
    char *workdir;
    bool linked;
    char *out;      /* finish's file */
    char **objects; /* the parts emitted on the way, then finish's object; NULL-terminated */
    int nobjects;
} llvm_printer;

static void *llvm_begin(const printer_begin *b) {
    llvm_printer *p = xcalloc(1, sizeof *p);
    p->e = emit_llvm_begin(b->t, b->module, b->opt_level);
    p->c = b->c, p->workdir = xstrdup(b->workdir), p->linked = b->linked;
    p->objects = xcalloc(1, sizeof *p->objects);
    return p;
}

/* The LLVM printer's hook: the kernel into the module, its declaration into the C. */
static void llvm_kernel(const kernel_sink *out, const kir_module *m) {
    llvm_printer *p = out->state;
    emit_llvm_kernel(p->e, m);
    emit_c_kernel_decl(p->c, m, "the LLVM backend");
}

static void add_object(llvm_printer *p, char *path) {
    p->objects = xrealloc(p->objects, sizeof *p->objects * (size_t)(p->nobjects + 2));
    p->objects[p->nobjects++] = path, p->objects[p->nobjects] = NULL;
}

/* Instructions after which the kernels so far are optimised and emitted as an object of their
 * own (emit_llvm_flush): LLVM's memory grows with its module, and a 20B mixture of experts has
 * 9312 matrices. Small enough to hold LLVM under about 1 GB, large enough that models up to
 * the 2B-4T shape stay one module. */
enum { LLVM_PART_INSTRUCTIONS = 2000000 };

static uint64_t part_instructions(void) { /* RSRC_LLVM_PART_INSTRUCTIONS: another size, for tests */
    long long n = atoll(rsrc_env_or("RSRC_LLVM_PART_INSTRUCTIONS", "0"));
    return n > 0 ? (uint64_t)n : LLVM_PART_INSTRUCTIONS;
}

/* Into objects for a link, the kernels so far as an object of their own once they are many. */
static void llvm_part(void *state) {
    llvm_printer *p = state;
    if (!p->linked || emit_llvm_pending(p->e) < part_instructions()) return;
    stage_enter(STAGE_LLVM);
    double t0 = rsrc_now();
    char *path = xasprintf("%s/kernels.%d.o", p->workdir, p->nobjects);
    register_temp(path);
    uint64_t n = emit_llvm_pending(p->e);
    emit_llvm_flush(p->e, path);
    add_object(p, path);
    rsrc_note(1, "LLVM: optimised and emitted part %d (%llu instructions) in %.2f s", p->nobjects,
              (unsigned long long)n, rsrc_now() - t0);
    stage_enter(STAGE_ANALYSE);
}

static uint64_t llvm_pending(const void *state) { return emit_llvm_pending(((const llvm_printer *)state)->e); }

static void llvm_finish(void *state, blob_writer *blob, enum printer_output what) {
    (void)blob;
    llvm_printer *p = state;
    double t0 = rsrc_now();
    static const enum llvm_output as[] = {
        [PRINT_SOURCE] = LLVM_OUT_IR, [PRINT_ASSEMBLY] = LLVM_OUT_ASM, [PRINT_OBJECT] = LLVM_OUT_OBJ};
    p->out = xasprintf(p->linked ? "%s/kernels.o" : "%s/kernels.out", p->workdir);
    register_temp(p->out);
    emit_llvm_finish(p->e, as[what], p->out);
    if (what == PRINT_OBJECT) add_object(p, xstrdup(p->out));
    emit_llvm_end(p->e);
    p->e = NULL;
    rsrc_note(1, "LLVM: optimised and emitted the kernels in %.2f s", rsrc_now() - t0);
}

static const char *llvm_output(const void *state, bool assembly) {
    (void)assembly;
    return ((const llvm_printer *)state)->out;
}

static char *const *llvm_objects(const void *state) { return ((const llvm_printer *)state)->objects; }

static void llvm_end(void *state) {
    llvm_printer *p = state;
    if (!p) return;
    if (p->e) emit_llvm_end(p->e);
    for (int i = 0; i < p->nobjects; i++) free(p->objects[i]);
    free(p->objects), free(p->out), free(p->workdir);
    free(p);
}

/* LLVM has every CPU form, and i2 in any of the target's dot ISAs. */
const kernel_printer printer_llvm = {.name = "llvm",
                                     .title = "LLVM",
                                     .backend = "llvm",
                                     .kind = TK_CPU,
                                     .begin = llvm_begin,
                                     .kernel = llvm_kernel,
                                     .part = llvm_part,
                                     .pending = llvm_pending,
                                     .finish = llvm_finish,
                                     .output = llvm_output,
                                     .objects = llvm_objects,
                                     .end = llvm_end};

/* ---- output ---- */

uint64_t emit_llvm_pending(const llvm_emitter *e) { return e ? e->instructions - e->flushed : 0; }

void emit_llvm_finish(llvm_emitter *e, enum llvm_output what, const char *path) {
    char *err = NULL;
    if (LLVMVerifyModule(e->mod, LLVMReturnStatusAction, &err)) rsrc_fatal("internal error: invalid LLVM IR: %s", err);
    LLVMDisposeMessage(err);
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    static const char *const pipelines[] = {"default<O0>", "default<O1>", "default<O2>", "default<O3>"};
    LLVMErrorRef perr = LLVMRunPasses(e->mod, pipelines[e->opt_level >= 0 ? e->opt_level : 3], e->tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    if (perr) {
        char *msg = LLVMGetErrorMessage(perr);
        rsrc_fatal("internal error: LLVM optimisation failed: %s", msg);
    }
    if (what == LLVM_OUT_IR) {
        if (LLVMPrintModuleToFile(e->mod, path, &err)) rsrc_fatal("%s: cannot write LLVM IR: %s", path, err);
        return;
    }
    if (e->gpu && what == LLVM_OUT_OBJ) rsrc_fatal("internal error: NVPTX emits PTX text (assembly), not objects");
    if (LLVMTargetMachineEmitToFile(e->tm, e->mod, (char *)path,
                                    what == LLVM_OUT_ASM ? LLVMAssemblyFile : LLVMObjectFile, &err))
        rsrc_fatal("%s: LLVM cannot emit code: %s", path, err);
}

void emit_llvm_flush(llvm_emitter *e, const char *path) {
    emit_llvm_finish(e, LLVM_OUT_OBJ, path);
    LLVMDisposeModule(e->mod);
    new_module(e);
    e->flushed = e->instructions;
}

void emit_llvm_end(llvm_emitter *e) {
    if (!e) return;
    free(e->module_name), free(e->triple);
    LLVMDisposeBuilder(e->b);
    LLVMDisposeBuilder(e->allocas);
    LLVMDisposeModule(e->mod);
    LLVMContextDispose(e->ctx);
    LLVMDisposeTargetMachine(e->tm);
    free(e->cpu);
    free(e->features);
    free(e);
}
