/* cpu.h — which family of the runtime's hand-written kernels runs on this CPU (cpu.c).
 *
 * Every CPU-dependent choice of the runtime (attention, Louver, the LM head, quantisation, the
 * element-wise loops of a step) asks rt_cpu_isa(), so one process runs one family throughout and
 * one knob caps it: RSR_CPU=portable|avx2|avx512|avx512vnni (|neon on AArch64) runs a lesser machine's path on a
 * bigger one (to test every family, or to measure an AVX2 CPU's path on an AVX-512 one).
 * The matrices' inputs, the head's integer sums and the element-wise loops have the same bits in
 * every family; attention's sums are ordered per family (docs/numerics.md). */
#ifndef RSR_RUNTIME_CPU_H
#define RSR_RUNTIME_CPU_H

typedef enum rt_isa {
    RT_ISA_PORTABLE = 0,    /* C only */
    RT_ISA_AVX2 = 1,        /* AVX2, FMA, F16C (Haswell, Zen 1-3) */
    RT_ISA_AVX512 = 2,      /* AVX-512 F, BW, VL */
    RT_ISA_AVX512_VNNI = 3, /* and AVX-512 VNNI (Ice Lake, Zen 4, Zen 5) */
    RT_ISA_NEON = 4,        /* AArch64 Advanced SIMD (every Armv8-A core): the 8-lane attention */
} rt_isa;

/* The AVX-512 families (the values are names, not an order across architectures). */
static inline int rt_isa_avx512(rt_isa isa) { return isa == RT_ISA_AVX512 || isa == RT_ISA_AVX512_VNNI; }

/* The family: what the CPU has, capped by RSR_CPU (and by the older spellings RSR_DISABLE_AVX512=1,
 * which caps at avx2, and RSR_DISABLE_AVX2=1 with it, which caps at portable). On AArch64 the
 * families are portable and neon, and any cap but portable leaves neon. Probed once. */
rt_isa rt_cpu_isa(void);
/* Whether this family runs the runtime's own kernel for a matrix's codes laid out as `layout`
 * (enum rsr_units_layout, family.h's rt_units_call): AVX-512 VNNI for zmm's layouts; the AVX2
 * family for ymm's 2-bit one (an AVX-512 CPU keeps that one's compiled AVX-VNNI kernel), and any
 * AVX2 or AVX-512 family for ymm's base-3 one, which no compiled kernel reads; the NEON family with
 * dotprod for a q register's (RSR_UNITS_ROWS4). */
int rt_units_native(int layout);
/* Its name as RSR_CPU spells it. */
const char *rt_isa_name(rt_isa isa);
/* What this CPU has, ignoring the cap (for messages and benchmarks). */
rt_isa rt_cpu_isa_uncapped(void);

/*
 * A loop written once in C (NAME_body, static inline and always inlined) compiled for each family
 * and picked by rt_cpu_isa(): RT_ISA_CLONES(NAME, (PARAMS), (ARGS)) defines `static void NAME
 * PARAMS`. The clones differ only in vector width: with -ffp-contract=off every clone rounds each
 * operation as the C does, so results do not depend on the family.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(RT_SANITIZED)
#define RT_ISA_CLONES(name, params, args)                                                                              \
    __attribute__((target("avx512f,avx512bw,avx512vl"))) static void name##_avx512 params { name##_body args; }        \
    __attribute__((target("avx2"))) static void name##_avx2 params { name##_body args; }                               \
    static void name params {                                                                                          \
        const rt_isa isa_ = rt_cpu_isa();                                                                              \
        if (rt_isa_avx512(isa_))                                                                                       \
            name##_avx512 args;                                                                                        \
        else if (isa_ == RT_ISA_AVX2)                                                                                  \
            name##_avx2 args;                                                                                          \
        else                                                                                                           \
            name##_body args;                                                                                          \
    }
#else
#define RT_ISA_CLONES(name, params, args)                                                                              \
    static void name params { name##_body args; }
#endif
#ifdef RT_SANITIZED
/* A sanitized build (RSRC_SANITIZE) checks memory and undefined behaviour, not speed: one clone, and
 * the compiler decides what to inline (the instrumented always-inlined clones took clang 14 minutes a file). */
#define RT_INLINE_BODY static inline
#else
#define RT_INLINE_BODY static inline __attribute__((always_inline))
#endif

/* Whether this CPU (and the OS's register state) has a feature, by the name the specs and
 * /proc/cpuinfo use ("avx2", "avx512_vnni", "avxvnni"; on AArch64 Linux "neon", "dotprod", "i8mm",
 * "fp16", "bf16" and the kernel's names for them; '_', '.' and '-' ignored); 0 for a name not known,
 * or on other CPUs. */
int rt_cpu_has(const char *name);
/* The features of a comma-separated list (an artifact's cpu_features) this CPU lacks, listed in
 * out; 1 if there are any. */
#include <stddef.h>
int rt_cpu_missing(const char *features, char *out, size_t size);
/* AVX-VNNI, which the runtime's kernels do not use but its tests and benchmarks ask about */
static inline int rt_cpu_has_avxvnni(void) { return rt_cpu_has("avxvnni"); }

#endif
