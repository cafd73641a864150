/* bandwidth.h — the streaming read bandwidth of this machine with a given number of threads,
 * measured the same way wherever a benchmark compares itself with it (rsr-run --bench, bench_gemv). */
#ifndef RSR_TOOLS_BANDWIDTH_H
#define RSR_TOOLS_BANDWIDTH_H

#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <time.h>

static double bw_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Streaming read bandwidth with `threads` threads, each summing its own slice of 1 GiB; best of
 * 3 passes. The roofline of decode is this rate over the bytes a token must read. */
typedef struct bw_slice {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} bw_slice;

static void *bw_read(void *arg) {
    bw_slice *s = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= s->n; i += 4) a += s->p[i], b ^= s->p[i + 1], c += s->p[i + 2], d ^= s->p[i + 3];
    s->sum = a + b + c + d;
    return NULL;
}

static double read_bandwidth(int threads) {
    size_t n = (size_t)1 << 27; /* 1 GiB of uint64 */
    /* in 2 MiB pages where the kernel allows: filling 1 GiB of 4 KiB pages costs 262144 faults
     * (seconds of system time), more than the passes themselves */
    uint64_t *buf = aligned_alloc((size_t)2 << 20, n * sizeof *buf);
    if (!buf) return 0;
#ifdef MADV_HUGEPAGE
    madvise(buf, n * sizeof *buf, MADV_HUGEPAGE);
#endif
    for (size_t i = 0; i < n; i++) buf[i] = i;
    pthread_t tid[64];
    bw_slice sl[64];
    if (threads > 64) threads = 64;
    if (threads < 1) threads = 1;
    double best = 0;
    for (int pass = 0; pass < 3; pass++) {
        double t0 = bw_now();
        for (int t = 0; t < threads; t++) {
            sl[t] = (bw_slice){buf + n / (size_t)threads * (size_t)t, n / (size_t)threads, 0};
            if (pthread_create(&tid[t], NULL, bw_read, &sl[t]) != 0) threads = t;
        }
        for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
        double bytes = (double)(n / (size_t)threads * (size_t)threads * sizeof *buf);
        double gbs = bytes / (bw_now() - t0) / 1e9;
        if (gbs > best && sl[0].sum != 1) best = gbs;
    }
    free(buf);
    return best;
}

#endif
