/*
 * bench_gemv — every kernel strategy against a naive int8 GEMV, on the matrix shapes of BitNet
 * b1.58 2B-4T and Llama3-8B, with 1 and 2 threads, next to the memory bandwidth measured in the
 * same run.
 *
 * Usage: bench_gemv [--target NAME] [--reps N] [--shapes 2b4t|llama8b|all]  [--strategies a,b] [--no-lanes]
 *        [--backend c|llvm]
 *        (i2 matrices' prefill rows: the tiles and, unless --no-lanes, RSR with tokens in lanes)
 *        (the kernels go through the target's backend: LLVM for host and the x86 specs, C for generic)
 *
 * Matrices are random ternary (40% zeros, like trained BitNet weights). Each kernel is produced
 * by the compiler's own pipeline (plan → analyse → lower → emit → cc → dlopen), so this measures
 * exactly what rsrc ships. The naive reference reads an int8 weight matrix (8 bits per weight);
 * every result is checked bit for bit before it is timed. Each timed run of a kernel reads its
 * own copy of the constant data out of 256 MiB of copies, so weights come from memory as in
 * decode, not from a warm cache (the naive baseline's 8-bit matrix is larger than the caches). Reported: median of N timed runs after
 * a warm-up (each strategy timed interleaved with the naive one); weights per second; bytes the
 * kernel must read (constant data + activations) per second; and that rate as a fraction of the
 * streaming read bandwidth measured with the same thread count.
 */
#include <dlfcn.h>
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel_set.h"
#include "print/printer.h"
#include "rsrc.h"
#include "../runtime/cpu/cpu.h"
#include "bandwidth.h"

typedef void (*kernel_fn)(const uint8_t *, const int8_t *, int32_t *, int32_t, int32_t);
typedef void (*batch_fn)(const uint8_t *, const int8_t *, int32_t, int32_t *, int32_t, int32_t, int32_t, int32_t);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void naive_gemv(const int8_t *w, const int8_t *x, int32_t *y, int32_t rows, int32_t cols, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *wr = w + (size_t)r * (size_t)cols;
        int32_t s = 0;
        for (int32_t c = 0; c < cols; c++) s += wr[c] * x[c];
        y[r] = s;
    }
}

/* The int8 dot-product peak of this machine, measured per instruction set on registers, per thread:
 * what a compute-bound prefill kernel of that set can at best reach. AVX-512 VNNI: independent
 * vpdpbusd chains (64 multiply-adds each). AVX2: vpmaddubsw and vpaddw (32 multiply-adds): the
 * ternary kernels add its 16-bit pair sums for a run of groups and widen them once a run
 * (kernel.c, dot_isa_pair_sums), so the one multiply per 32 multiply-adds is the limit. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int dot_chains_vnni(int seed, long iters) {
    __m512i a = _mm512_set1_epi8((char)seed), b = _mm512_set1_epi8((char)(seed + 1));
    /* distinct starting values, or the compiler folds the identical chains into one */
    __m512i c0 = _mm512_set1_epi32(seed), c1 = _mm512_set1_epi32(seed + 1), c2 = _mm512_set1_epi32(seed + 2);
    __m512i c3 = _mm512_set1_epi32(seed + 3), c4 = _mm512_set1_epi32(seed + 4), c5 = _mm512_set1_epi32(seed + 5);
    __m512i c6 = _mm512_set1_epi32(seed + 6), c7 = _mm512_set1_epi32(seed + 7), c8 = _mm512_set1_epi32(seed + 8);
    __m512i c9 = _mm512_set1_epi32(seed + 9), c10 = _mm512_set1_epi32(seed + 10), c11 = _mm512_set1_epi32(seed + 11);
    for (long it = 0; it < iters; it++) {
        c0 = _mm512_dpbusd_epi32(c0, a, b), c1 = _mm512_dpbusd_epi32(c1, a, b), c2 = _mm512_dpbusd_epi32(c2, a, b);
        c3 = _mm512_dpbusd_epi32(c3, a, b), c4 = _mm512_dpbusd_epi32(c4, a, b), c5 = _mm512_dpbusd_epi32(c5, a, b);
        c6 = _mm512_dpbusd_epi32(c6, a, b), c7 = _mm512_dpbusd_epi32(c7, a, b), c8 = _mm512_dpbusd_epi32(c8, a, b);
        c9 = _mm512_dpbusd_epi32(c9, a, b), c10 = _mm512_dpbusd_epi32(c10, a, b), c11 = _mm512_dpbusd_epi32(c11, a, b);
    }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                                 _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
    return _mm512_reduce_add_epi32(s);
}

/* one chain's step: a new product (the empty asm hides that a is unchanged) into its 16-bit sums */
#define AVX2_DOT_STEP(a, c)                                                                                            \
    __asm__("" : "+x"(a));                                                                                             \
    c = _mm256_add_epi16(c, _mm256_maddubs_epi16(a, b))
__attribute__((target("avx2"))) static int dot_chains_avx2(int seed, long iters) {
    const __m256i b = _mm256_set1_epi8((char)(seed + 7));
    /* 6 chains in named registers (arrays would live in memory): 12 of the 16, b and the products */
    __m256i a0 = _mm256_set1_epi8((char)seed), a1 = _mm256_set1_epi8((char)(seed + 1));
    __m256i a2 = _mm256_set1_epi8((char)(seed + 2)), a3 = _mm256_set1_epi8((char)(seed + 3));
    __m256i a4 = _mm256_set1_epi8((char)(seed + 4)), a5 = _mm256_set1_epi8((char)(seed + 5));
    __m256i c0 = _mm256_set1_epi16((short)seed), c1 = _mm256_set1_epi16((short)(seed + 1));
    __m256i c2 = _mm256_set1_epi16((short)(seed + 2)), c3 = _mm256_set1_epi16((short)(seed + 3));
    __m256i c4 = _mm256_set1_epi16((short)(seed + 4)), c5 = _mm256_set1_epi16((short)(seed + 5));
    for (long it = 0; it < iters; it++) {
        AVX2_DOT_STEP(a0, c0);
        AVX2_DOT_STEP(a1, c1);
        AVX2_DOT_STEP(a2, c2);
        AVX2_DOT_STEP(a3, c3);
        AVX2_DOT_STEP(a4, c4);
        AVX2_DOT_STEP(a5, c5);
    }
    __m256i s = _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(c0, c1), _mm256_add_epi16(c2, c3)),
                                 _mm256_add_epi16(c4, c5));
    return _mm256_extract_epi16(s, 0) + _mm256_extract_epi16(s, 15);
}

/* AVX-VNNI: vpdpbusd on ymm (32 multiply-adds), 12 chains */
#define AVXVNNI_DOT_STEP(c) c = _mm256_dpbusd_avx_epi32(c, a, b)
__attribute__((target("avx2,avxvnni"))) static int dot_chains_avxvnni(int seed, long iters) {
    const __m256i a = _mm256_set1_epi8((char)seed), b = _mm256_set1_epi8((char)(seed + 1));
    __m256i c0 = _mm256_set1_epi32(seed), c1 = _mm256_set1_epi32(seed + 1), c2 = _mm256_set1_epi32(seed + 2);
    __m256i c3 = _mm256_set1_epi32(seed + 3), c4 = _mm256_set1_epi32(seed + 4), c5 = _mm256_set1_epi32(seed + 5);
    __m256i c6 = _mm256_set1_epi32(seed + 6), c7 = _mm256_set1_epi32(seed + 7), c8 = _mm256_set1_epi32(seed + 8);
    __m256i c9 = _mm256_set1_epi32(seed + 9), c10 = _mm256_set1_epi32(seed + 10), c11 = _mm256_set1_epi32(seed + 11);
    for (long it = 0; it < iters; it++) {
        AVXVNNI_DOT_STEP(c0), AVXVNNI_DOT_STEP(c1), AVXVNNI_DOT_STEP(c2), AVXVNNI_DOT_STEP(c3);
        AVXVNNI_DOT_STEP(c4), AVXVNNI_DOT_STEP(c5), AVXVNNI_DOT_STEP(c6), AVXVNNI_DOT_STEP(c7);
        AVXVNNI_DOT_STEP(c8), AVXVNNI_DOT_STEP(c9), AVXVNNI_DOT_STEP(c10), AVXVNNI_DOT_STEP(c11);
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
    s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(c8, c9), _mm256_add_epi32(c10, c11)));
    return _mm256_extract_epi32(s, 0) + _mm256_extract_epi32(s, 7);
}

enum { PEAK_VNNI = 0, PEAK_AVX2 = 1, PEAK_AVXVNNI = 2 };
static const char *const peak_names[] = {"AVX-512 VNNI (vpdpbusd on zmm)", "AVX2 (vpmaddubsw + vpaddw)",
                                         "AVX-VNNI (vpdpbusd on ymm)"};
static double dot_peak(int isa, int threads) {
    double best = 0;
    const double macs = isa == PEAK_VNNI ? 12 * 64 : isa == PEAK_AVX2 ? 6 * 32 : 12 * 32; /* per iteration */
    for (int pass = 0; pass < 3; pass++) {
        const long iters = 1L << 22;
        double t0 = rsrc_now();
        int sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += isa == PEAK_VNNI   ? dot_chains_vnni(omp_get_thread_num() + 1, iters)
                : isa == PEAK_AVX2 ? dot_chains_avx2(omp_get_thread_num() + 1, iters)
                                   : dot_chains_avxvnni(omp_get_thread_num() + 1, iters);
        double dt = rsrc_now() - t0, rate = (double)threads * (double)iters * macs / dt;
        if (rate > best && sink != 1) best = rate;
    }
    return best;
}

static void rsr_gemm(batch_fn fn, const uint8_t *data, const int8_t *x, int32_t xs, int32_t *y, int32_t ys,
                     int32_t ntok, int32_t blocks, int threads) {
    int32_t chunks = threads;
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int32_t c = 0; c < chunks; c++)
        fn(data, x, xs, y, ys, ntok, (int32_t)((int64_t)blocks * c / chunks),
           (int32_t)((int64_t)blocks * (c + 1) / chunks));
}

static void rsr_gemv(kernel_fn fn, const uint8_t *data, const int8_t *x, int32_t *y, int32_t blocks, int threads) {
    int32_t chunks = threads; /* one contiguous range per thread: no shared counter, no imbalance for equal rows */
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int32_t c = 0; c < chunks; c++)
        fn(data, x, y, (int32_t)((int64_t)blocks * c / chunks), (int32_t)((int64_t)blocks * (c + 1) / chunks));
}

/* One strategy's kernel for tm, compiled as rsrc compiles it (compile_matrix, the target's printer,
 * kernel_set) and loaded. */
typedef struct built {
    kernel_set *set; /* NULL: not built */
    kernel_fn fn;
    batch_fn batch; /* NULL: the strategy has no batched (prefill) kernel */
    uint8_t *data;
    uint64_t data_size;
    int32_t blocks, k;
    const char *strategy;
} built;

static built build(const ternary_matrix *tm, enum strategy st, const rsrc_target *t, const char *dir, int serial,
                   bool lanes) {
    built b = {0};
    int k = 0;
    if (strategy_is_rsr(st)) {
        char why[256];
        k = rsrc_choose_k(tm, RSR_MAX_K, NULL, why, sizeof why);
    }
    char name[32];
    snprintf(name, sizeof name, "bench%d", serial);
    b.set = xcalloc(1, sizeof *b.set);
    kernel_set_open(b.set, t, t->backend, dir, name, -1); /* the printer rsrc uses for this target */
    compiled_matrix cm;
    kernel_set_compile(
        b.set, tm,
        &(matrix_request){.strategy = st, .k = k, .user_strategy = st, .lanes_min = lanes ? RSR_LANES_EVERY_STEP : -1},
        &cm);
    const rsrc_kernel *kn = &cm.kn;
    const rsr_artifact_matrix *table;
    const uint8_t *blob;
    kernel_set_load(b.set, &table, &blob);
    b.fn = table[0].kernel;
    b.batch = table[0].kernel_batch;
    b.data_size = kernel_data_size(kn);
    b.data = aligned_alloc(64, (b.data_size + 64) / 64 * 64);
    memcpy(b.data, blob + (kn->data_offset == RSR_NO_TENSOR ? 0 : kn->data_offset), b.data_size);
    b.blocks = kn->num_blocks;
    b.strategy = kn->strategy;
    b.k = kn->block_rows;
    compiled_matrix_free(&cm);
    return b;
}

static void unbuild(built *b) {
    if (!b->set) return;
    kernel_set_close(b->set);
    free(b->set), free(b->data);
    b->set = NULL;
}

/* Copies of b's constant data that together exceed the caches, so that a run reading one of
 * them (in turn) gets it from memory as decode does; *n of them. */
static uint8_t **cold_copies(const built *b, int *n) {
    *n = (int)((256u << 20) / (b->data_size + 64) + 1);
    uint8_t **copies = xmalloc(sizeof *copies * (size_t)*n);
    for (int c = 0; c < *n; c++) {
        copies[c] = aligned_alloc(64, (b->data_size + 64) / 64 * 64);
        memcpy(copies[c], b->data, b->data_size);
    }
    return copies;
}

static void free_copies(uint8_t **copies, int n) {
    for (int c = 0; c < n; c++) free(copies[c]);
    free(copies);
}

#define PREFILL RSR_BATCH_MAX
static void check_batch(const built *b, const char *form, const ternary_matrix *tm, const int8_t *x, int32_t xs,
                        int32_t *got, int32_t *want) {
    rsr_gemm(b->batch, b->data, x, xs, got, tm->rows, PREFILL, b->blocks, 2);
    for (int t = 0; t < PREFILL; t++) {
        naive_gemv(tm->w, x + (size_t)t * (size_t)xs, want, tm->rows, tm->cols, 2);
        if (memcmp(want, got + (size_t)t * (size_t)tm->rows, sizeof *want * (size_t)tm->rows) != 0)
            rsrc_fatal("%s: batched %s kernel (%s) disagrees with naive (token %d)", tm->name, b->strategy, form, t);
    }
}

/* Prefill: PREFILL tokens through the batched kernel (the block's weights read once for all of
 * them) against the decode kernel called once per token, both on cold copies of the weights
 * (a prefill step passes every matrix of the model before it comes back to this one). With lanes
 * (the i2 matrix's batched kernel as RSR with tokens in lanes), that kernel is timed in the same
 * rounds, alternating with the others, on its own cold copies. */
static void prefill_rows(const built *b, const built *lanes, const ternary_matrix *tm, uint8_t **copies, int ncopies,
                         int reps, const double *peak) {
    int32_t rows = tm->rows, cols = tm->cols, xs = (cols + RSR_X_PAD - 1) / RSR_X_PAD * RSR_X_PAD;
    int8_t *x = xcalloc((size_t)PREFILL * (size_t)xs, 1);
    int32_t *got = xmalloc(sizeof *got * (size_t)PREFILL * (size_t)rows), *want = xmalloc(sizeof *want * (size_t)rows);
    uint64_t rng = 0x9e3779b97f4a7c15u;
    for (int t = 0; t < PREFILL; t++)
        for (int32_t c = 0; c < cols; c++) {
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            x[(size_t)t * (size_t)xs + (size_t)c] = (int8_t)(rng >> 56);
        }
    check_batch(b, "tiles", tm, x, xs, got, want);
    int nl = 0;
    uint8_t **lcopies = NULL;
    if (lanes) {
        check_batch(lanes, "lanes", tm, x, xs, got, want);
        lcopies = cold_copies(lanes, &nl);
    }
    printf("  prefill of %d tokens: %-16s %3s %14s %14s %7s %10s %8s\n", PREFILL, "strategy", "thr", "per-token us/tok",
           "batched us/tok", "speedup", "Gw*tok/s", "of peak");
    int next = 0, lnext = 0;
    for (int threads = 1; threads <= 2; threads++) {
        double *tv = xmalloc(sizeof *tv * (size_t)reps), *tb = xmalloc(sizeof *tb * (size_t)reps);
        double *tl = xmalloc(sizeof *tl * (size_t)reps);
        for (int r = 0; r < reps; r++) {
            double t0 = rsrc_now();
            for (int t = 0; t < PREFILL; t++)
                rsr_gemv(b->fn, copies[next++ % ncopies], x + (size_t)t * (size_t)xs, got + (size_t)t * (size_t)rows,
                         b->blocks, threads);
            double t1 = rsrc_now();
            rsr_gemm(b->batch, copies[next++ % ncopies], x, xs, got, rows, PREFILL, b->blocks, threads);
            double t2 = rsrc_now();
            if (lanes) rsr_gemm(lanes->batch, lcopies[lnext++ % nl], x, xs, got, rows, PREFILL, lanes->blocks, threads);
            tv[r] = t1 - t0, tb[r] = t2 - t1, tl[r] = rsrc_now() - t2;
        }
        double mv = median(tv, reps) / PREFILL;
        for (int form = 0; form < (lanes ? 2 : 1); form++) {
            double mb = median(form ? tl : tb, reps) / PREFILL, rate = (double)rows * cols / mb;
            char shape[32], of_peak[16] = "n/a", name[48];
            snprintf(shape, sizeof shape, "%dx%d", rows, cols);
            snprintf(name, sizeof name, "%s %s", b->strategy, form ? "lanes" : "tiles");
            if (peak[threads] > 0) snprintf(of_peak, sizeof of_peak, "%5.1f%%", 100 * rate / peak[threads]);
            printf("  prefill %-12s %11s %-16s %3d %16.1f %14.1f %6.2fx %10.1f %8s\n", tm->name, shape, name, threads,
                   mv * 1e6, mb * 1e6, mv / mb, rate / 1e9, of_peak);
        }
        free(tv), free(tb), free(tl);
    }
    if (lcopies) free_copies(lcopies, nl);
    free(x), free(got), free(want);
}

int main(int argc, char **argv) {
    const char *target_name = "host", *set = "2b4t", *strategies = "rsr-loop,i2";
    int reps = 15;
    bool lanes_off = false;
    const char *backend = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--target") && i + 1 < argc)
            target_name = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc)
            set = argv[++i];
        else if (!strcmp(argv[i], "--strategies") && i + 1 < argc)
            strategies = argv[++i];
        else if (!strcmp(argv[i], "--no-lanes"))
            lanes_off = true;
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc)
            backend = argv[++i];
        else {
            fprintf(stderr, "usage: bench_gemv [--target NAME] [--reps N] [--shapes 2b4t|llama8b|all]"
                            " [--strategies rsr-loop,rsr-unrolled,i2,lut] [--no-lanes] [--backend c|llvm]\n");
            return 2;
        }
    }
    if (reps < 3) reps = 3;
    rsrc_target *t = target_load(target_name, NULL, NULL);
    if (backend && !(t->backend = printer_backend(TK_CPU, backend)))
        rsrc_fatal("--backend %s: not a CPU printer's (c, llvm)", backend);
    enum strategy list[NUM_STRATEGIES];
    int nlist = 0;
    char *names = xstrdup(strategies);
    for (char *w = strtok(names, ","); w && nlist < NUM_STRATEGIES; w = strtok(NULL, ",")) {
        if ((int)(list[nlist] = strategy_parse(w)) <= 0) rsrc_fatal("unknown strategy '%s'", w);
        nlist++;
    }
    static const struct {
        const char *set, *name;
        int32_t rows, cols;
    } shapes[] = {
        {"2b4t", "2b4t q/o", 2560, 2560},        {"2b4t", "2b4t k/v", 640, 2560},
        {"2b4t", "2b4t gate/up", 6912, 2560},    {"2b4t", "2b4t down", 2560, 6912},
        {"llama8b", "l8b q/o", 4096, 4096},      {"llama8b", "l8b k/v", 1024, 4096},
        {"llama8b", "l8b gate/up", 14336, 4096}, {"llama8b", "l8b down", 4096, 14336},
    };
    double bw[3] = {0, read_bandwidth(1), read_bandwidth(2)}, peaks[3][3] = {{0}};
    const bool have[3] = {__builtin_cpu_supports("avx512vnni"), __builtin_cpu_supports("avx2"),
                          __builtin_cpu_supports("avx2") && rt_cpu_has_avxvnni()};
    printf("machine: streaming read bandwidth %.1f GB/s (1 thread), %.1f GB/s (2 threads); target %s, %s backend\n",
           bw[1], bw[2], t->name, t->backend->title);
    for (int p = 0; p < 3; p++) {
        if (!have[p]) continue;
        peaks[p][1] = dot_peak(p, 1), peaks[p][2] = dot_peak(p, 2);
        printf("machine: int8 dot peak, %s on registers: %.0f G multiply-adds/s (1 thread), %.0f (2 threads)\n",
               peak_names[p], peaks[p][1] / 1e9, peaks[p][2] / 1e9);
    }
    /* "of peak": the peak of the instruction set the target's kernels use */
    const enum dot_isa isa = t->isa;
    const int own = isa == DOT_AVX512VNNI ? PEAK_VNNI : isa == DOT_AVXVNNI ? PEAK_AVXVNNI : PEAK_AVX2;
    const double *peak = peaks[own];
    printf("machine: \"of peak\" below is against the %s peak (the target's dot products)\n", peak_names[own]);
    printf("%-12s %11s %-16s %2s %6s %3s %10s %10s %7s %8s %9s %7s\n", "matrix", "shape", "strategy", "k", "bits/w",
           "thr", "naive us", "kernel us", "speedup", "Gw/s", "GB/s read", "of bw");

    char dir[] = "/tmp/rsrc-bench.XXXXXX";
    if (!mkdtemp(dir)) rsrc_fatal("mkdtemp failed");
    uint64_t rng = 0x243f6a8885a308d3u;
    int serial = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        if (strcmp(set, "all") && strcmp(set, shapes[s].set)) continue;
        int32_t rows = shapes[s].rows, cols = shapes[s].cols;
        ternary_matrix tm = {.name = (char *)shapes[s].name, .rows = rows, .cols = cols, .beta = 1};
        tm.w = xmalloc((size_t)rows * (size_t)cols);
        for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++) {
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            uint32_t r = (uint32_t)(rng >> 33) % 10;
            tm.w[i] = r < 4 ? 0 : r < 7 ? 1 : -1;
        }
        int8_t *x = xcalloc(((size_t)cols + RSR_X_PAD) / RSR_X_PAD * RSR_X_PAD, 1);
        for (int32_t c = 0; c < cols; c++) x[c] = (int8_t)(rng >> (c % 56));
        int32_t *want = xmalloc(sizeof *want * (size_t)rows), *got = xmalloc(sizeof *got * (size_t)rows);
        for (int li = 0; li < nlist; li++) {
            built b = build(&tm, list[li], t, dir, serial++, false);
            naive_gemv(tm.w, x, want, rows, cols, 1);
            rsr_gemv(b.fn, b.data, x, got, b.blocks, 1);
            if (memcmp(want, got, sizeof *want * (size_t)rows) != 0)
                rsrc_fatal("%s: %s kernel disagrees with naive", tm.name, b.strategy);
            double bits = 8.0 * (double)b.data_size / ((double)rows * (double)cols);
            /* Decode streams every weight from memory once per token: time the kernel on copies of
             * its data that together exceed the caches, one copy per run, so nothing stays hot. */
            int ncopies;
            uint8_t **copies = cold_copies(&b, &ncopies);
            int next_copy = 0;
            for (int threads = 1; threads <= 2; threads++) {
                double *tn = xmalloc(sizeof *tn * (size_t)reps), *tr = xmalloc(sizeof *tr * (size_t)reps);
                naive_gemv(tm.w, x, want, rows, cols, threads);
                rsr_gemv(b.fn, b.data, x, got, b.blocks, threads);
                for (int r = 0; r < reps; r++) {
                    double t0 = rsrc_now();
                    naive_gemv(tm.w, x, want, rows, cols, threads);
                    double t1 = rsrc_now();
                    rsr_gemv(b.fn, copies[next_copy++ % ncopies], x, got, b.blocks, threads);
                    double t2 = rsrc_now();
                    tn[r] = t1 - t0, tr[r] = t2 - t1;
                }
                double mn = median(tn, reps), mr = median(tr, reps);
                double gbs = (double)(b.data_size + (uint64_t)cols) / mr / 1e9;
                char shape[32];
                snprintf(shape, sizeof shape, "%dx%d", rows, cols);
                printf("%-12s %11s %-16s %2d %6.2f %3d %10.1f %10.1f %6.2fx %8.2f %9.1f %6.1f%%\n", tm.name, shape,
                       b.strategy, b.k, bits, threads, mn * 1e6, mr * 1e6, mn / mr, (double)rows * cols / mr / 1e9, gbs,
                       100 * gbs / bw[threads]);
                free(tn), free(tr);
            }
            if (b.batch) {
                built lanes = {0};
                if (list[li] == STRAT_I2 && !lanes_off) lanes = build(&tm, list[li], t, dir, serial++, true);
                prefill_rows(&b, lanes.batch ? &lanes : NULL, &tm, copies, ncopies, reps, peak);
                unbuild(&lanes);
            }
            fflush(stdout);
            unbuild(&b);
            free_copies(copies, ncopies);
        }
        free(x), free(want), free(got), free(tm.w);
    }
    rmdir(dir);
    free(names);
    return 0;
}
