/*
 * load.c — what rsr_model_open does before the first token: checks that this CPU has the
 * features the artifact's code was compiled for, and puts the model's constants where the CPU
 * code reads them (rsr_model_params.load, docs/history/performance-log.md "Where the constants live").
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

#include "internal.h"

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

/* The parts of the constants the copy holds: all but the embedding's and the f16/bf16 head's rows
 * (whole pages of them), which a token reads a row or a few of through the file's pages
 * (rsr_model.rows). Up to three ranges [from, to), in order; returns how many, with the ranges
 * left out in rows (up to two, *nrows). */
typedef struct span {
    size_t from, to;
} span;
static int copied_spans(const rsr_artifact *a, bool all, span out[3], span rows[2], int *nrows) {
    const size_t page = 4096, H = (size_t)a->hidden, V = (size_t)a->vocab;
    span cold[2] = {{(size_t)a->embed, (size_t)a->embed + V * rsr_dtype_bytes(a->embed_dtype, H)},
                    {(size_t)a->lm_head, (size_t)a->lm_head + V * rsr_dtype_bytes(a->lm_head_dtype, H)}};
    int nc = all ? 0 : a->lm_head == a->embed ? 1 : 2;
    if (nc == 2 && cold[1].from < cold[0].from) {
        span t = cold[0];
        cold[0] = cold[1], cold[1] = t;
    }
    if (nc == 2 && cold[1].from < cold[0].to) cold[0].to = cold[1].to > cold[0].to ? cold[1].to : cold[0].to, nc = 1;
    size_t at = 0;
    int n = 0;
    *nrows = 0;
    for (int i = 0; i < nc; i++) {
        size_t from = (cold[i].from + page - 1) / page * page, to = cold[i].to / page * page;
        if (to <= from) continue;
        if (from > at) out[n++] = (span){at, from};
        rows[(*nrows)++] = (span){from, to};
        at = to;
    }
    if (at < a->blob_size || n == 0) out[n++] = (span){at, a->blob_size};
    return n;
}

/* Reads the spans of the constants at offset of path into dst with the model's threads, each its
 * share of 64 MiB pieces; false when the file cannot be read whole or does not hold what is
 * mapped. */
static bool read_file(const char *path, off_t offset, uint8_t *dst, const uint8_t *mapped, const span *sp, int nsp,
                      int threads) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const size_t piece = (size_t)64 << 20;
    int64_t first[4] = {0};
    for (int i = 0; i < nsp; i++) first[i + 1] = first[i] + (int64_t)((sp[i].to - sp[i].from + piece - 1) / piece);
    int ok = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(&& : ok)
    for (int64_t p = 0; p < first[nsp]; p++) {
        int i = 0;
        while (p >= first[i + 1]) i++;
        size_t at = sp[i].from + (size_t)(p - first[i]) * piece, end = at + piece < sp[i].to ? at + piece : sp[i].to;
        while (ok && at < end) {
            ssize_t got = pread(fd, dst + at, end - at, offset + (off_t)at);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0)
                ok = 0;
            else
                at += (size_t)got;
        }
    }
    close(fd);
    /* the file on disk must be the one mapped (not replaced since): the first and last pages read */
    size_t head = sp[0].to - sp[0].from < 4096 ? sp[0].to - sp[0].from : 4096;
    size_t tail = sp[nsp - 1].to - sp[nsp - 1].from < 4096 ? sp[nsp - 1].to - sp[nsp - 1].from : 4096;
    const size_t last = sp[nsp - 1].to - tail;
    return ok && !memcmp(dst + sp[0].from, mapped + sp[0].from, head) && !memcmp(dst + last, mapped + last, tail);
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
    /* the words of the rows the copy left out from the file mapping (then out of the resident set
     * again: madvise), every other word where the CPU reads it */
    const uint64_t words = a->blob_size / 8, piece = (uint64_t)1 << 17;
    const int64_t pieces = (int64_t)((words + piece - 1) / piece);
    uint64_t sum = 0;
#pragma omp parallel for schedule(static) num_threads(m->num_threads) reduction(+ : sum)
    for (int64_t i = 0; i < pieces; i++) {
        uint64_t at = (uint64_t)i * piece, end = words - at < piece ? words : at + piece;
        while (at < end) { /* the rows' bounds are whole pages, so whole words */
            const uint8_t *src = m->blob;
            uint64_t stop = end;
            for (int j = 0; j < m->num_rows_spans; j++) {
                const uint64_t from = m->rows_from[j] / 8, to = m->rows_to[j] / 8;
                if (at >= from && at < to) src = m->rows, stop = to < end ? to : end;
                if (at < from && from < stop) stop = from;
            }
            sum += rsr_checksum_add(0, src + 8 * at, at, (size_t)(stop - at));
            at = stop;
        }
    }
    for (int j = 0; j < m->num_rows_spans; j++) {
        uintptr_t from = ((uintptr_t)(m->rows + m->rows_from[j]) + 4095) & ~(uintptr_t)4095;
        uintptr_t to = (uintptr_t)(m->rows + m->rows_to[j]) & ~(uintptr_t)4095;
        if (to > from) (void)madvise((void *)from, to - from, MADV_DONTNEED);
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

void rt_rows_close(rsr_model *m) {
    if (m->num_rows_spans) close(m->rows_fd);
    m->num_rows_spans = 0;
}

/* Whether [off, off + n) of the constants touches a part the copy left out. */
static bool left_out(const rsr_model *m, uint64_t off, size_t n) {
    bool out = false;
    for (int i = 0; i < m->num_rows_spans; i++) out |= off < m->rows_to[i] && off + n > m->rows_from[i];
    return out;
}

const uint8_t *rt_row(const rsr_model *m, uint64_t off, size_t n, uint8_t *buf, size_t cap) {
    if (!left_out(m, off, n)) return m->blob + off;
    size_t got = 0;
    while (n <= cap && got < n) {
        ssize_t r = pread(m->rows_fd, buf + got, n - got, (off_t)(m->rows_file_at + (int64_t)(off + got)));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got == n ? buf : m->rows + off; /* too long for buf, or a file that cannot be read now: the mapping */
}

/* The whole pages of the copy (size bytes) that hold span s. */
static span span_pages(span s, size_t size) {
    const size_t to = (s.to + 4095) / 4096 * 4096;
    return (span){s.from / 4096 * 4096, to < size ? to : size};
}

/* Address space for the copy, with memory behind the spans only (the rest stays PROT_NONE and is
 * never charged): NULL when the system refuses it. */
static uint8_t *reserve_copy(size_t size, const span *sp, int nsp) {
    uint8_t *dst = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (dst == MAP_FAILED) return NULL;
    for (int i = 0; i < nsp; i++) {
        const span pg = span_pages(sp[i], size);
        if (mprotect(dst + pg.from, pg.to - pg.from, PROT_READ | PROT_WRITE) != 0) {
            int e = errno;
            munmap(dst, size);
            errno = e;
            return NULL;
        }
    }
    (void)madvise(dst, size, MADV_HUGEPAGE); /* a hint: without huge pages the copy still works */
    return dst;
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
    /* what the copy holds: all but the rows, which are read from the file as used (rt_row); it
     * stays open while the model is; without it, or locked, the copy holds the rows too */
    span sp[3], rows[2];
    int nrows;
    int nsp = copied_spans(a, p->lock_memory, sp, rows, &nrows);
    if (nrows && (!w.found || (m->rows_fd = open(w.path, O_RDONLY | O_CLOEXEC)) < 0))
        nsp = copied_spans(a, true, sp, rows, &nrows);
    size_t copied = 0;
    for (int i = 0; i < nsp; i++) copied += sp[i].to - sp[i].from;
    /* room for the copy and a margin for the KV cache and scratch; locking asks for it anyway */
    const uint64_t margin = (uint64_t)512 << 20, avail = memory_available();
    const size_t huge = (size_t)2 << 20, size = (a->blob_size + huge - 1) / huge * huge;
    uint8_t *dst = NULL;
    if (!p->lock_memory && avail && copied + margin > avail) {
        snprintf(m->constants, sizeof m->constants,
                 "the file mapping (%zu MiB; only %llu MiB of memory available for a copy)", mib,
                 (unsigned long long)(avail >> 20));
    } else if (!(dst = reserve_copy(size, sp, nsp))) {
        if (p->lock_memory)
            return rt_set_error(m->err, RSR_ERR_OUT_OF_MEMORY, "cannot map %zu MiB for the model's constants: %s",
                                copied >> 20, strerror(errno));
        snprintf(m->constants, sizeof m->constants, "the file mapping (%zu MiB; no memory for a copy: %s)", mib,
                 strerror(errno));
    }
    if (!dst) {
        if (nrows) close(m->rows_fd);
        return RSR_OK;
    }
    m->rows_file_at = (int64_t)w.offset;
    for (int i = 0; i < nrows; i++) m->rows_from[i] = rows[i].from, m->rows_to[i] = rows[i].to;
    m->num_rows_spans = nrows;
    const char *how = "read from";
    if (!w.found || !read_file(w.path, w.offset, dst, a->blob, sp, nsp, m->num_threads)) {
        for (int i = 0; i < nsp; i++) memcpy(dst + sp[i].from, a->blob + sp[i].from, sp[i].to - sp[i].from);
        how = "copied from the mapping of";
        if (!w.found) snprintf(w.path, sizeof w.path, "the artifact");
    }
    int failed = 0;
    for (int i = 0; i < nsp && !failed; i++) {
        const span pg = span_pages(sp[i], size);
        failed = mprotect(dst + pg.from, pg.to - pg.from, PROT_READ) != 0 ||
                 (p->lock_memory && mlock(dst + pg.from, pg.to - pg.from) != 0);
    }
    if (failed) {
        int e = errno;
        munmap(dst, size);
        rt_rows_close(m);
        return rt_set_error(m->err, RSR_ERR_OUT_OF_MEMORY,
                            "cannot lock the model's %zu MiB of constants in memory: "
                            "%s (raise `ulimit -l`, or open it without lock_memory)",
                            mib, strerror(e));
    }
    m->copy = dst, m->copy_size = size, m->blob = dst;
    if (!nrows) m->rows = dst;
    char said[96] = "";
    if (nrows)
        snprintf(said, sizeof said, "; the embedding's and head's rows (%zu MiB) read from the file as used",
                 (size_t)((a->blob_size - copied) >> 20));
    snprintf(m->constants, sizeof m->constants,
             "%sanonymous memory (%zu MiB, 2 MiB pages advised), %s %.120s in %.2f s%s",
             p->lock_memory ? "locked " : "", copied >> 20, how, w.path, seconds() - t0, said);
    return RSR_OK;
}
