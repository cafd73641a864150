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

#include "cpu.h"
#include "internal.h"

/* The target whose code runs on every CPU of this architecture (specs/generic.yaml, specs/aarch64.yaml) */
#if defined(__aarch64__)
#define BASELINE_TARGET "aarch64 (any AArch64 CPU)"
#else
#define BASELINE_TARGET "generic (any x86-64)"
#endif

rsr_status rt_check_cpu(const rsr_artifact *a, char *err) {
    char missing[160];
    if (!a->cpu_features || !rt_cpu_missing(a->cpu_features, missing, sizeof missing)) return RSR_OK;
    return rt_set_error(err, RSR_ERR_ABI,
                        "the model's code was compiled for target %s and needs CPU features this "
                        "CPU lacks: %s; compile it again with --target host (this machine) or "
                        "--target " BASELINE_TARGET,
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
