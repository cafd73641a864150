/* cpu.c — the runtime's one CPU-feature module (cpu.h): the features of this CPU by name
 * (x86: cpuid, and the OS's register state; AArch64 Linux: the kernel's hwcaps), the load-time
 * check of an artifact's features, and the kernel family, probed once. */
#include "cpu.h"

#include "family.h" /* RT_UNITS_NEON */

#include "rsr_artifact.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the features of the CPU, by name ---- */

#if defined(__aarch64__) && defined(__linux__)
/* A feature as the kernel reports it: bits of getauxval(AT_HWCAP) or AT_HWCAP2, all of which it
 * needs. The hwcaps, not the ID registers: user space cannot read those without the kernel, and
 * the kernel reports only what it lets user space use (as XCR0 does on x86). */
static const struct cpu_feature {
    const char *name; /* as the specs (LLVM's names) and /proc/cpuinfo spell it */
    unsigned long type, bits;
} cpu_features[] = {
    {"neon", AT_HWCAP, HWCAP_ASIMD},
    {"asimd", AT_HWCAP, HWCAP_ASIMD},
    {"dotprod", AT_HWCAP, HWCAP_ASIMDDP},
    {"asimddp", AT_HWCAP, HWCAP_ASIMDDP},
    {"i8mm", AT_HWCAP2, HWCAP2_I8MM},
    /* +fp16 lets the compiler use half-precision arithmetic on scalars and vectors alike */
    {"fp16", AT_HWCAP, HWCAP_FPHP | HWCAP_ASIMDHP},
    {"fullfp16", AT_HWCAP, HWCAP_FPHP | HWCAP_ASIMDHP},
    {"fphp", AT_HWCAP, HWCAP_FPHP},
    {"asimdhp", AT_HWCAP, HWCAP_ASIMDHP},
    {"bf16", AT_HWCAP2, HWCAP2_BF16},
    {"sve", AT_HWCAP, HWCAP_SVE},
    {"sve2", AT_HWCAP2, HWCAP2_SVE2},
};

static bool cpu_has(const struct cpu_feature *f) { return (getauxval(f->type) & f->bits) == f->bits; }
#else
/* A feature as cpuid reports it: leaf, subleaf, register (0 eax .. 3 edx), bit; and the OS state
 * it needs in XCR0 (AVX: xmm+ymm; AVX-512: also opmask and zmm). */
enum { XS_NONE = 0, XS_AVX = 0x6, XS_AVX512 = 0xe6 };
static const struct cpu_feature {
    const char *name; /* as the specs and /proc/cpuinfo spell it, without '_' and '.' */
    unsigned leaf, sub, reg, bit, xstate;
} cpu_features[] = {
    {"sse3", 1, 0, 2, 0, XS_NONE},
    {"pni", 1, 0, 2, 0, XS_NONE},
    {"pclmulqdq", 1, 0, 2, 1, XS_NONE},
    {"ssse3", 1, 0, 2, 9, XS_NONE},
    {"fma", 1, 0, 2, 12, XS_AVX},
    {"cx16", 1, 0, 2, 13, XS_NONE},
    {"sse41", 1, 0, 2, 19, XS_NONE},
    {"sse42", 1, 0, 2, 20, XS_NONE},
    {"movbe", 1, 0, 2, 22, XS_NONE},
    {"popcnt", 1, 0, 2, 23, XS_NONE},
    {"aes", 1, 0, 2, 25, XS_NONE},
    {"xsave", 1, 0, 2, 26, XS_NONE},
    {"avx", 1, 0, 2, 28, XS_AVX},
    {"f16c", 1, 0, 2, 29, XS_AVX},
    {"rdrnd", 1, 0, 2, 30, XS_NONE},
    {"sse", 1, 0, 3, 25, XS_NONE},
    {"sse2", 1, 0, 3, 26, XS_NONE},
    {"bmi", 7, 0, 1, 3, XS_NONE},
    {"bmi1", 7, 0, 1, 3, XS_NONE},
    {"avx2", 7, 0, 1, 5, XS_AVX},
    {"bmi2", 7, 0, 1, 8, XS_NONE},
    {"avx512f", 7, 0, 1, 16, XS_AVX512},
    {"avx512dq", 7, 0, 1, 17, XS_AVX512},
    {"rdseed", 7, 0, 1, 18, XS_NONE},
    {"adx", 7, 0, 1, 19, XS_NONE},
    {"avx512ifma", 7, 0, 1, 21, XS_AVX512},
    {"avx512cd", 7, 0, 1, 28, XS_AVX512},
    {"sha", 7, 0, 1, 29, XS_NONE},
    {"avx512bw", 7, 0, 1, 30, XS_AVX512},
    {"avx512vl", 7, 0, 1, 31, XS_AVX512},
    {"avx512vbmi", 7, 0, 2, 1, XS_AVX512},
    {"avx512vbmi2", 7, 0, 2, 6, XS_AVX512},
    {"gfni", 7, 0, 2, 8, XS_NONE},
    {"vaes", 7, 0, 2, 9, XS_AVX},
    {"vpclmulqdq", 7, 0, 2, 10, XS_AVX},
    {"avx512vnni", 7, 0, 2, 11, XS_AVX512},
    {"avx512bitalg", 7, 0, 2, 12, XS_AVX512},
    {"avx512vpopcntdq", 7, 0, 2, 14, XS_AVX512},
    {"avx512vp2intersect", 7, 0, 3, 8, XS_AVX512},
    {"avx512fp16", 7, 0, 3, 23, XS_AVX512},
    {"amxbf16", 7, 0, 3, 22, XS_NONE},
    {"amxtile", 7, 0, 3, 24, XS_NONE},
    {"amxint8", 7, 0, 3, 25, XS_NONE},
    {"avxvnni", 7, 1, 0, 4, XS_AVX},
    {"avx512bf16", 7, 1, 0, 5, XS_AVX512},
    {"lzcnt", 0x80000001, 0, 2, 5, XS_NONE},
    {"abm", 0x80000001, 0, 2, 5, XS_NONE},
};

static bool cpu_has(const struct cpu_feature *f) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    unsigned r[4] = {0}, max = __get_cpuid_max(f->leaf & 0x80000000u, NULL);
    if (max < f->leaf || !__get_cpuid_count(f->leaf, f->sub, &r[0], &r[1], &r[2], &r[3])) return false;
    if (!(r[f->reg] >> f->bit & 1)) return false;
    if (f->xstate == XS_NONE) return true;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c >> 27 & 1)) return false; /* OSXSAVE */
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & f->xstate) == f->xstate;
#else
    (void)f;
    return false;
#endif
}
#endif

/* A feature's name as the specs and /proc/cpuinfo spell it, less '_', '.', '-' and a leading '+'. */
static const struct cpu_feature *feature_named(const char *p, size_t n) {
    char key[48];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] != '_' && p[i] != '.' && p[i] != '-' && p[i] != '+' && k + 1 < sizeof key) key[k++] = p[i];
    key[k] = 0;
    for (size_t i = 0; i < sizeof cpu_features / sizeof *cpu_features; i++)
        if (!strcmp(key, cpu_features[i].name)) return &cpu_features[i];
    return NULL;
}

int rt_cpu_has(const char *name) {
    const struct cpu_feature *f = feature_named(name, strlen(name));
    return f && cpu_has(f);
}

int rt_cpu_missing(const char *features, char *out, size_t size) {
    size_t len = 0;
    out[0] = 0;
    for (const char *p = features; *p && len < size;) {
        size_t n = strcspn(p, ",");
        const struct cpu_feature *f = feature_named(p, n);
        if (f && !cpu_has(f)) {
            const char *name = *p == '+' ? p + 1 : p;
            int shown = (int)(n - (size_t)(name - p));
            len += (size_t)snprintf(out + len, len < size ? size - len : 0, "%s%.*s", len ? ", " : "", shown, name);
        }
        p += n + (p[n] == ',');
    }
    return len > 0;
}

static const char *const isa_names[] = {"portable", "avx2", "avx512", "avx512vnni", "neon"};

int rt_units_native(int layout) {
    const rt_isa isa = rt_cpu_isa();
    switch (layout) {
    case RSR_UNITS_ROWS16:
    case RSR_UNITS_B3_ROWS16: return isa == RT_ISA_AVX512_VNNI;
    case RSR_UNITS_ROWS8: return isa == RT_ISA_AVX2;
    case RSR_UNITS_B3_ROWS8: return isa == RT_ISA_AVX2 || rt_isa_avx512(isa);
#ifdef RT_UNITS_NEON
    case RSR_UNITS_ROWS4: return isa == RT_ISA_NEON; /* sdot: the layout's targets have dotprod, checked at load */
#endif
    default: return 0;
    }
}

const char *rt_isa_name(rt_isa isa) {
    return isa >= RT_ISA_PORTABLE && isa <= RT_ISA_NEON ? isa_names[isa] : "unknown";
}

/* A family's rank among those of its architecture: what a cap compares. */
static int isa_rank(rt_isa isa) { return isa == RT_ISA_NEON ? 1 : (int)isa; }

rt_isa rt_cpu_isa_uncapped(void) {
    rt_isa isa = RT_ISA_PORTABLE;
#if defined(__aarch64__) && defined(__ARM_NEON)
    if (rt_cpu_has("neon")) isa = RT_ISA_NEON;
#else /* F16C: every AVX2 CPU has it; checked all the same */
    if (rt_cpu_has("avx2") && rt_cpu_has("fma") && rt_cpu_has("f16c")) isa = RT_ISA_AVX2;
    if (isa == RT_ISA_AVX2 && rt_cpu_has("avx512f") && rt_cpu_has("avx512bw") && rt_cpu_has("avx512vl"))
        isa = RT_ISA_AVX512;
    if (isa == RT_ISA_AVX512 && rt_cpu_has("avx512vnni")) isa = RT_ISA_AVX512_VNNI;
#endif
    return isa;
}

static int set(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* The cap the environment asks for; an unknown RSR_CPU caps nothing. */
static rt_isa env_cap(void) {
    rt_isa cap = RT_ISA_AVX512_VNNI;
    const char *want = getenv("RSR_CPU");
    if (want && *want)
        for (int i = RT_ISA_PORTABLE; i <= RT_ISA_NEON; i++)
            if (!strcmp(want, isa_names[i])) cap = (rt_isa)i;
    if (set("RSR_DISABLE_AVX512") && cap > RT_ISA_AVX2) cap = RT_ISA_AVX2;
    if (set("RSR_DISABLE_AVX512") && set("RSR_DISABLE_AVX2")) cap = RT_ISA_PORTABLE;
    return cap;
}

static int isa_state = -1; /* -1: not yet probed; written atomically, always to the same value */

rt_isa rt_cpu_isa(void) {
    int st = __atomic_load_n(&isa_state, __ATOMIC_RELAXED);
    if (st < 0) {
        rt_isa have = rt_cpu_isa_uncapped(), cap = env_cap();
        /* the best family of this architecture within the cap's rank (x86 ranks are the x86 values) */
        st = isa_rank(have) <= isa_rank(cap) ? (int)have : isa_rank(cap);
        __atomic_store_n(&isa_state, st, __ATOMIC_RELAXED);
    }
    return (rt_isa)st;
}
