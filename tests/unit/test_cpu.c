/*
 * test_cpu.c — the CPU's features by name (runtime/cpu/cpu.c) and the load-time refusal of an
 * artifact compiled for features this CPU lacks (the host device's check, rt_device_cpu.check, runtime/cpu/forward.c).
 * Usage: test_cpu [FEATURES [MISSING]]
 *
 * Without arguments: each feature name of this architecture is listed by rt_cpu_missing exactly
 * when rt_cpu_has denies it, a name no CPU has is neither, and an artifact needing all of them is
 * refused naming exactly those this CPU lacks (loaded where it has them all). With arguments: an
 * artifact compiled for FEATURES (comma-separated, as rsrc writes them) is refused naming exactly
 * MISSING, or loaded when there is none — the cross build runs this under QEMU's CPU models.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "cpu_device.h"

#include "expect.h"

#if defined(__aarch64__)
static const char *const names[] = {"neon", "asimd", "dotprod", "asimddp", "i8mm", "fp16", "fphp", "bf16", "sve"};
#else
static const char *const names[] = {"sse2", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avxvnni"};
#endif
enum { NAMES = sizeof names / sizeof *names };

/* An artifact compiled for `features` is refused naming exactly `missing`, or loads when it is "". */
static void expect_load(const char *features, const char *missing) {
    rsr_artifact a = {.target = "test", .cpu_features = features};
    char err[RSR_ERRMSG_SIZE] = "", want[512];
    rsr_status st = rt_device_cpu.check(&a, err);
    if (!*missing) {
        EXPECT(st == RSR_OK, "%s: refused: %s", features, err);
        return;
    }
    snprintf(want, sizeof want, "needs CPU features this CPU lacks: %s;", missing);
    EXPECT(st == RSR_ERR_ABI && strstr(err, want), "%s: status %d, \"%s\"; expected a refusal naming %s", features,
           (int)st, err, missing);
}

static void append(char *list, size_t size, const char *sep, const char *name) {
    size_t len = strlen(list);
    snprintf(list + len, size - len, "%s%s", len ? sep : "", name);
}

static void test_names(void) {
    char all[512] = "", missing[512] = "", listed[160];
    for (int i = 0; i < NAMES; i++) {
        int has = rt_cpu_has(names[i]), lacks = rt_cpu_missing(names[i], listed, sizeof listed);
        printf("%-12s %s\n", names[i], has ? "yes" : "no");
        EXPECT(has != lacks, "%s: rt_cpu_has %d, rt_cpu_missing %d", names[i], has, lacks);
        EXPECT(!lacks || !strcmp(listed, names[i]), "%s: listed as \"%s\"", names[i], listed);
        append(all, sizeof all, ",", names[i]);
        if (!has) append(missing, sizeof missing, ", ", names[i]);
    }
    /* a name this runtime does not know cannot be checked, so it refuses nothing */
    EXPECT(!rt_cpu_has("rsr-no-such-feature") && !rt_cpu_missing("rsr-no-such-feature", listed, sizeof listed),
           "a feature no CPU has");
    expect_load(all, missing);
}

/* The kernel family: on AArch64 always NEON (every Armv8-A core has it), capped only by
 * RSR_CPU=portable; on x86 the one its features give. */
static void test_family(void) {
    const char *cap = getenv("RSR_CPU");
    const int portable = cap && !strcmp(cap, "portable");
    const rt_isa have = rt_cpu_isa_uncapped(), isa = rt_cpu_isa();
    printf("kernel family %s (the CPU's: %s)\n", rt_isa_name(isa), rt_isa_name(have));
#if defined(__aarch64__)
    EXPECT(have == RT_ISA_NEON, "an AArch64 CPU's family is %s, not neon", rt_isa_name(have));
#else
    EXPECT(have == (rt_cpu_has("avx512vnni") && rt_cpu_has("avx512bw") ? RT_ISA_AVX512_VNNI
                    : rt_cpu_has("avx512bw")                           ? RT_ISA_AVX512
                    : rt_cpu_has("avx2") && rt_cpu_has("fma")          ? RT_ISA_AVX2
                                                                       : RT_ISA_PORTABLE),
           "family %s for this CPU's features", rt_isa_name(have));
#endif
    EXPECT(isa == (portable ? RT_ISA_PORTABLE
                   : cap    ? isa
                            : have),
           "RSR_CPU=%s gives %s", cap ? cap : "", rt_isa_name(isa));
}

int main(int argc, char **argv) {
    if (argc > 1)
        expect_load(argv[1], argc > 2 ? argv[2] : "");
    else
        test_names(), test_family();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
