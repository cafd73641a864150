/*
 * load.c — what rsr_model_open does before the first token: checks that this CPU has the
 * features the artifact's code was compiled for, and puts the model's constants where the CPU
 * code reads them (rsr_model_params.load, docs/performance.md "Where the constants live").
 *
 * The default copies the constants into anonymous memory advised for 2 MiB pages, reading them
 * with pread from the artifact's file (found through the loaded object that holds them), so the
 * file's pages are never mapped into the process and it holds the constants once. Anonymous
 * memory is not reclaimed on a machine without swap; a file mapping is, and its pages are
 * re-read from disk when the page cache is small or contended (2 tok/s instead of 40 measured
 * here). Where the file cannot be found or read the copy comes from the mapping; where the
 * machine has too little memory available for a copy the mapping is used as it is.
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

#include "internal.h"

/* ---- CPU features ---- */

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
    unsigned r[4] = {0}, max = __get_cpuid_max(f->leaf & 0x80000000u, NULL);
    if (max < f->leaf || !__get_cpuid_count(f->leaf, f->sub, &r[0], &r[1], &r[2], &r[3])) return false;
    if (!(r[f->reg] >> f->bit & 1)) return false;
    if (f->xstate == XS_NONE) return true;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c >> 27 & 1)) return false; /* OSXSAVE */
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & f->xstate) == f->xstate;
}

rsr_status rt_check_cpu(const rsr_artifact *a, char *err) {
    if (!a->cpu_features || !*a->cpu_features) return RSR_OK;
    char missing[160] = "";
    size_t len = 0;
    for (const char *p = a->cpu_features; *p && len < sizeof missing;) {
        size_t n = strcspn(p, ",");
        char key[48];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (p[i] != '_' && p[i] != '.' && p[i] != '-' && p[i] != '+' && k + 1 < sizeof key) key[k++] = p[i];
        key[k] = 0;
        for (size_t i = 0; i < sizeof cpu_features / sizeof *cpu_features; i++) {
            if (strcmp(key, cpu_features[i].name) || cpu_has(&cpu_features[i])) continue;
            const char *name = *p == '+' ? p + 1 : p;
            int shown = (int)(n - (size_t)(name - p));
            len += (size_t)snprintf(missing + len, len < sizeof missing ? sizeof missing - len : 0, "%s%.*s",
                                    len ? ", " : "", shown, name);
            break;
        }
        p += n + (p[n] == ',');
    }
    if (!len) return RSR_OK;
    return rt_set_error(err, RSR_ERR_ABI,
                        "the model's code was compiled for target %s and needs CPU features this "
                        "CPU lacks: %s; compile it again with --target host (this machine) or --target generic "
                        "(any x86-64)",
                        a->target, missing);
}

/* ---- threads ---- */

int32_t rt_default_threads(void) {
    const char *env = getenv("OMP_NUM_THREADS"); /* the user's word for OpenMP programs wins */
    if (env && *env) return omp_get_max_threads();
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    int n = omp_get_num_procs();
    return n > 0 ? n : 1;
}

/* ---- the constants ---- */

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The file and offset the bytes at addr were mapped from: the loaded object (the model's shared
 * object, or the program an object was linked into) whose loadable segment holds them. */
struct where {
    const void *addr;
    char path[4096];
    off_t offset;
    bool found;
};
static int find_segment(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct where *w = data;
    uintptr_t at = (uintptr_t)w->addr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type != PT_LOAD || at < start || at - start >= ph->p_filesz) continue;
        const char *name = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "/proc/self/exe";
        snprintf(w->path, sizeof w->path, "%s", name);
        w->offset = (off_t)(ph->p_offset + (at - start));
        w->found = true;
        return 1;
    }
    return 0;
}

/* Reads size bytes at offset of path into dst with the model's threads, each its share of
 * 64 MiB pieces; false when the file cannot be read whole or does not hold what is mapped. */
static bool read_file(const char *path, off_t offset, uint8_t *dst, const uint8_t *mapped, size_t size, int threads) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const size_t piece = (size_t)64 << 20;
    const int64_t pieces = (int64_t)((size + piece - 1) / piece);
    int ok = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(&& : ok)
    for (int64_t i = 0; i < pieces; i++) {
        size_t at = (size_t)i * piece, want = size - at < piece ? size - at : piece;
        while (ok && want > 0) {
            ssize_t got = pread(fd, dst + at, want, offset + (off_t)at);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0)
                ok = 0;
            else
                at += (size_t)got, want -= (size_t)got;
        }
    }
    close(fd);
    /* the file on disk must be the one mapped (not replaced since): its first and last pages */
    size_t tail = size < 4096 ? size : 4096;
    return ok && !memcmp(dst, mapped, tail) && !memcmp(dst + size - tail, mapped + size - tail, tail);
}

/* MemAvailable of /proc/meminfo in bytes; 0 when unknown. */
static uint64_t memory_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb << 10;
}

rsr_status rsr_model_verify(rsr_model *m) {
    if (!m || !m->a) return RSR_ERR_INVALID_ARGUMENT;
    if (m->status != RSR_OK) return m->status;
    const rsr_artifact *a = m->a;
    const char *name = *m->path ? m->path : "the artifact";
    if (!a->has_checksum)
        return rt_set_error(m->err, RSR_ERR_NOT_FOUND,
                            "%s records no checksum of its constants (compiled by an older "
                            "rsrc)",
                            name);
    const uint64_t words = a->blob_size / 8, piece = (uint64_t)1 << 17;
    const int64_t pieces = (int64_t)((words + piece - 1) / piece);
    uint64_t sum = 0;
#pragma omp parallel for schedule(static) num_threads(m->num_threads) reduction(+ : sum)
    for (int64_t i = 0; i < pieces; i++) {
        uint64_t at = (uint64_t)i * piece, n = words - at < piece ? words - at : piece;
        sum += rsr_checksum_add(0, m->blob + 8 * at, at, (size_t)n);
    }
    if (a->blob_size % 8) {
        uint8_t last[8] = {0};
        memcpy(last, m->blob + 8 * words, (size_t)(a->blob_size % 8));
        sum = rsr_checksum_add(sum, last, words, 1);
    }
    if (sum != a->blob_checksum)
        return rt_set_error(m->err, RSR_ERR_ABI,
                            "%s: the model's constants fail their checksum (%016llx, compiled as "
                            "%016llx): the file was altered after rsrc wrote it, or memory is failing; compile the "
                            "model again",
                            name, (unsigned long long)sum, (unsigned long long)a->blob_checksum);
    return RSR_OK;
}

rsr_status rt_load_constants(rsr_model *m, const rsr_model_params *p) {
    const rsr_artifact *a = m->a;
    const double t0 = seconds();
    m->blob = a->blob;
    struct where w = {.addr = a->blob};
    dl_iterate_phdr(find_segment, &w);
    if (w.found) snprintf(m->path, sizeof m->path, "%.250s", w.path);
    const size_t mib = (size_t)(a->blob_size >> 20);
    if (p->load == RSR_LOAD_MMAP && !p->lock_memory) {
        snprintf(m->constants, sizeof m->constants, "the file mapping (%zu MiB, shared page cache)", mib);
        return RSR_OK;
    }
    /* room for the copy and a margin for the KV cache and scratch; locking asks for it anyway */
    const uint64_t margin = (uint64_t)512 << 20, avail = memory_available();
    if (!p->lock_memory && avail && a->blob_size + margin > avail) {
        snprintf(m->constants, sizeof m->constants,
                 "the file mapping (%zu MiB; only %llu MiB of memory available "
                 "for a copy)",
                 mib, (unsigned long long)(avail >> 20));
        return RSR_OK;
    }
    size_t huge = (size_t)2 << 20, size = (a->blob_size + huge - 1) / huge * huge;
    uint8_t *dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dst == MAP_FAILED) {
        if (p->lock_memory)
            return rt_set_error(m->err, RSR_ERR_OUT_OF_MEMORY, "cannot map %zu MiB for the model's constants: %s",
                                size >> 20, strerror(errno));
        snprintf(m->constants, sizeof m->constants, "the file mapping (%zu MiB; no memory for a copy: %s)", mib,
                 strerror(errno));
        return RSR_OK;
    }
    (void)madvise(dst, size, MADV_HUGEPAGE); /* a hint: without huge pages the copy still works */
    const char *how = "read from";
    if (!w.found || !read_file(w.path, w.offset, dst, a->blob, a->blob_size, m->num_threads)) {
        memcpy(dst, a->blob, a->blob_size);
        how = "copied from the mapping of";
        if (!w.found) snprintf(w.path, sizeof w.path, "the artifact");
    }
    if (mprotect(dst, size, PROT_READ) != 0 || (p->lock_memory && mlock(dst, size) != 0)) {
        int e = errno;
        munmap(dst, size);
        return rt_set_error(m->err, RSR_ERR_OUT_OF_MEMORY,
                            "cannot lock the model's %zu MiB of constants in memory: "
                            "%s (raise `ulimit -l`, or open it without lock_memory)",
                            mib, strerror(e));
    }
    m->copy = dst, m->copy_size = size, m->blob = dst;
    snprintf(m->constants, sizeof m->constants,
             "%sanonymous memory (%zu MiB, 2 MiB pages advised), %s %.160s in %.2f s", p->lock_memory ? "locked " : "",
             mib, how, w.path, seconds() - t0);
    return RSR_OK;
}
