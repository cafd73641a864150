/* cpu.c — the runtime's kernel family, probed once (cpu.h). */
#include "cpu.h"

#include <stdlib.h>
#include <string.h>

static const char *const isa_names[] = {"portable", "avx2", "avx512", "avx512vnni"};

const char *rt_isa_name(rt_isa isa) {
    return isa >= RT_ISA_PORTABLE && isa <= RT_ISA_AVX512_VNNI ? isa_names[isa] : "unknown";
}

rt_isa rt_cpu_isa_uncapped(void) {
    rt_isa isa = RT_ISA_PORTABLE;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init(); /* the checks below include the OS's support for the registers (XCR0) */
    unsigned a, b, c, d;  /* F16C: CPUID leaf 1, ECX bit 29 (every AVX2 CPU has it; checked all the same) */
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && (c >> 29 & 1)) isa = RT_ISA_AVX2;
    if (isa == RT_ISA_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        isa = RT_ISA_AVX512;
    if (isa == RT_ISA_AVX512 && __builtin_cpu_supports("avx512vnni")) isa = RT_ISA_AVX512_VNNI;
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
        for (int i = RT_ISA_PORTABLE; i <= RT_ISA_AVX512_VNNI; i++)
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
        st = (int)(have < cap ? have : cap);
        __atomic_store_n(&isa_state, st, __ATOMIC_RELAXED);
    }
    return (rt_isa)st;
}
