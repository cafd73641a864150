/*
 * bench_attention — per-step attention time of one layer: Louver against the runtime's own dense
 * attention (the same kernels and the same work split as runtime/cpu/attention.c: GQA-shared
 * key chunks on all threads), side by side in one run, on the same keys.
 *
 * Usage: bench_attention [--keys N,N,...] [--set structured|uniform|both] [--kv FILE]
 *                        [--heads H] [--kv-heads K] [--policy eps|tau|both] [--eps E]
 *                        [--tau-frac F] [--reps R] [--threads T] [--block B] [--subspaces S]
 *                        [--cache f32|bf16|f16|q8]
 *
 * Key sets (head_dim 128 for the generated ones):
 *   structured  64 cluster centres; the cluster changes in runs of 1..128 positions (topical
 *               locality); within-cluster noise 10% of the centre's scale; norms log-uniform over
 *               10×; two outlier channels (+20, −12); RoPE (theta 500000) at the key's position.
 *               Queries: a cluster centre with noise, rotated at the current position.
 *   uniform     i.i.d. Gaussian keys and queries (the worst case: no structure to prune with).
 *   model       --kv FILE (written by kv_capture): one layer's keys, values and queries from a
 *               model run; its shape replaces --heads/--kv-heads, its lengths --keys.
 * Policies: relative eps (certified, default 1e-4) and absolute τ at the F-th fraction of each
 * head's scores (--tau-frac, default 0.01: 1% of the keys qualify). Every Louver result is checked
 * against brute force (recall). Values are Gaussian (model: the model's). The index is built
 * before timing (its build cost is printed per key). Louver runs one work item per KV head
 * (rsr_louver_attend_group: all its query heads in one pass), as runtime/cpu/attention.c does.
 * --cache: the element type the keys and values are stored in (default bf16, the runtime's
 * default KV cache), for dense attention and Louver alike; the keys are generated in fp32 and
 * rounded once, and recall is checked on the stored keys.
 * Each repetition times one dense step and then one Louver step, so that both see the same load
 * on the machine; times are medians, min-ratio the ratio of the fastest steps.
 *
 * KV layout: head-major, [kv_head][pos][d] — each KV head's keys (and values) are contiguous rows
 * of d floats (stride d), for dense attention and Louver alike. That is the layout of the
 * runtime's KV cache; dense attention streams a head's rows faster there than at the stride
 * kv_heads·d of [pos][kv_head][d]. A --kv file stays [n][kv_heads][d] on disk and is transposed
 * when loaded.
 */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/mman.h>

#include "attn_kernels.h" /* the runtime's internal attention kernels: what this benchmark measures */
#include "kv_types.h"     /* the cache types' names, as rsr-run's --kv takes them */
#include "louver_rows.h"  /* Louver over the cache's element type */

#define CHUNK 256

#ifdef RSR_LOUVER_PROFILE
/* bench_louver_phases: louver.c built with per-phase cycle counters (one thread only) */
#include <x86intrin.h>
extern unsigned long long rsr_louver_phase_cycles[8];
static const char *phase_names[] = {"prep", "box", "bound", "fetch", "dot", "softmax-V", "finish"};
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252u;
static double uniform(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1p-53;
}
static float gauss(void) {
    double u = uniform() + 1e-300, v = uniform();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static double rope_freq[4096];
static void rope(float *x, int32_t d, int64_t pos) {
    for (int32_t i = 0; i < d / 2; i++) {
        double a = (double)pos * rope_freq[i];
        float c = (float)cos(a), s = (float)sin(a), x0 = x[i], x1 = x[i + d / 2];
        x[i] = x0 * c - x1 * s, x[i + d / 2] = x1 * c + x0 * s;
    }
}

/* The stored cache: KV head h's row j at base + (h·maxn + j)·row bytes (head-major). */
static int32_t cache_type = ATTN_BF16, cache_maxn;
static size_t cache_row;
static attn_rows head_rows(const uint8_t *base, int32_t kvh) {
    return (attn_rows){
        .base = base + (size_t)kvh * (size_t)cache_maxn * cache_row, .bytes = cache_row, .type = cache_type};
}

typedef struct {
    int32_t d, heads, kv_heads, group, threads, mc;
    float *part_o, *part_ml, *scratch;
} dense_ctx;

/* The runtime's dense attention (runtime/cpu/attention.c) for one layer. */
static void dense(dense_ctx *c, const float *q, const uint8_t *K, const uint8_t *V, int32_t n, float *out) {
    const int32_t d = c->d, group = c->group, chunks = (n + CHUNK - 1) / CHUNK, mc = c->mc;
#pragma omp parallel num_threads(c->threads)
    {
        float *scratch = c->scratch + (size_t)omp_get_thread_num() * (size_t)group * CHUNK;
#pragma omp for schedule(dynamic, 1)
        for (int32_t item = 0; item < c->kv_heads * chunks; item++) {
            int32_t kvh = item / chunks, ch = item % chunks, h0 = kvh * group;
            attn_state st[64];
            for (int32_t g = 0; g < group; g++) {
                st[g].o = c->part_o + ((size_t)(h0 + g) * (size_t)mc + (size_t)ch) * (size_t)d;
                attn_state_clear(&st[g], d);
            }
            int32_t j1 = (ch + 1) * CHUNK < n ? (ch + 1) * CHUNK : n;
            attn_dense_range_kv(st, q + (size_t)h0 * (size_t)d, group, head_rows(K, kvh), head_rows(V, kvh), d,
                                ch * CHUNK, j1, scratch, NULL, NULL);
            for (int32_t g = 0; g < group; g++) {
                float *ml = c->part_ml + ((size_t)(h0 + g) * (size_t)mc + (size_t)ch) * 2;
                ml[0] = st[g].m, ml[1] = st[g].l;
            }
        }
#pragma omp for schedule(static)
        for (int32_t h = 0; h < c->heads; h++) {
            attn_merge_chunks(c->part_o + (size_t)h * (size_t)mc * (size_t)d, c->part_ml + (size_t)h * (size_t)mc * 2,
                              chunks, d, out + (size_t)h * (size_t)d);
        }
    }
}

typedef struct {
    int64_t scanned, kept, bounded;
    double bound;
} louver_sum;

static void louver(rsr_louver_index **ix, rsr_louver_scratch **sc, int32_t threads, const rsr_louver_policy *pol,
                   const float *q, const uint8_t *K, const uint8_t *V, int32_t n, int32_t d, int32_t heads,
                   int32_t kv_heads, float *out, rsr_louver_stats *hs) {
    int32_t group = heads / kv_heads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int32_t kvh = 0; kvh < kv_heads; kvh++) {
        int32_t h0 = kvh * group;
        louver_attend_rows(ix[kvh], q + (size_t)h0 * (size_t)d, group, head_rows(K, kvh), head_rows(V, kvh), n,
                           &pol[h0], sc[omp_get_thread_num()], out + (size_t)h0 * (size_t)d, &hs[h0]);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}
static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

typedef struct {
    int32_t n, kv_heads, heads, d, layer, count, at[64];
    float *K, *V, *q; /* [n][kv_heads][d] twice, [count][heads][d] */
} kv_capture_file;

/* Reads a file written by kv_capture (bench/kv_capture.c describes the format). */
static int read_kv(const char *path, kv_capture_file *f) {
    FILE *in = fopen(path, "rb");
    char magic[8];
    int32_t hdr[6];
    if (!in || fread(magic, 1, 8, in) != 8 || memcmp(magic, "RSRKV01\n", 8) || fread(hdr, sizeof hdr, 1, in) != 1) {
        fprintf(stderr, "bench_attention: %s is not a file written by kv_capture\n", path);
        if (in) fclose(in);
        return -1;
    }
    f->n = hdr[0], f->kv_heads = hdr[1], f->heads = hdr[2], f->d = hdr[3], f->layer = hdr[4], f->count = hdr[5];
    if (f->n < 1 || f->kv_heads < 1 || f->heads < 1 || f->heads % f->kv_heads || f->d < 1 || f->d > 4096 ||
        f->count < 1 || f->count > 64 || fread(f->at, sizeof(int32_t), (size_t)f->count, in) != (size_t)f->count) {
        fprintf(stderr, "bench_attention: %s: a header out of range\n", path);
        fclose(in);
        return -1;
    }
    size_t kv = (size_t)f->n * (size_t)f->kv_heads * (size_t)f->d,
           qn = (size_t)f->count * (size_t)f->heads * (size_t)f->d;
    f->K = malloc(sizeof(float) * kv), f->V = malloc(sizeof(float) * kv), f->q = malloc(sizeof(float) * qn);
    int ok = f->K && f->V && f->q && fread(f->K, sizeof(float), kv, in) == kv &&
             fread(f->V, sizeof(float), kv, in) == kv && fread(f->q, sizeof(float), qn, in) == qn;
    fclose(in);
    if (!ok) fprintf(stderr, "bench_attention: %s is truncated\n", path);
    return ok ? 0 : -1;
}

/* Key set `set` (0 structured, 1 uniform, 2 the kv_capture file kf) for maxn positions: fp32
 * keys and values K, V (head-major, KV head h's row j at (h·maxn + j)·d), then stored in the
 * cache's type as Kc, Vc (head_rows). Smaller sizes use a prefix (a shorter context). */
static void make_set(int set, const kv_capture_file *kf, int32_t maxn, int32_t kv_heads, int32_t d, const float *cent,
                     int32_t ncent, float *K, float *V, uint8_t *Kc, uint8_t *Vc) {
    const size_t hstr = (size_t)maxn * (size_t)d;
    int32_t run = 0, cl[8] = {0};
    if (set == 2) /* the file's [n][kv_heads][d] transposed to head-major */
        for (int32_t j = 0; j < maxn; j++)
            for (int32_t h = 0; h < kv_heads; h++) {
                size_t from = ((size_t)j * (size_t)kv_heads + (size_t)h) * (size_t)d,
                       to = (size_t)h * hstr + (size_t)j * (size_t)d;
                memcpy(K + to, kf->K + from, sizeof(float) * (size_t)d);
                memcpy(V + to, kf->V + from, sizeof(float) * (size_t)d);
            }
    for (int32_t j = 0; j < maxn && set < 2; j++) {
        if (run-- <= 0) {
            run = 1 + (int32_t)(uniform() * 128);
            for (int32_t h = 0; h < kv_heads; h++) cl[h % 8] = (int32_t)(uniform() * ncent);
        }
        for (int32_t h = 0; h < kv_heads; h++) {
            float *k = K + (size_t)h * hstr + (size_t)j * (size_t)d, *v = V + (size_t)h * hstr + (size_t)j * (size_t)d;
            for (int32_t i = 0; i < d; i++) v[i] = gauss();
            if (set == 1) {
                for (int32_t i = 0; i < d; i++) k[i] = gauss();
                continue;
            }
            const float *cc = cent + ((size_t)h * (size_t)ncent + (size_t)cl[h % 8]) * (size_t)d;
            float norm = (float)exp(log(10.0) * uniform());
            for (int32_t i = 0; i < d; i++) k[i] = norm * (cc[i] + 0.1f * gauss());
            k[3] += 20, k[70] -= 12;
            rope(k, d, j);
        }
    }
    for (int32_t h = 0; h < kv_heads; h++) /* stored as the cache stores them */
        for (int32_t j = 0; j < maxn; j++) {
            size_t from = (size_t)h * hstr + (size_t)j * (size_t)d,
                   to = ((size_t)h * (size_t)maxn + (size_t)j) * cache_row;
            attn_narrow_row(cache_type, K + from, d, Kc + to);
            attn_narrow_row(cache_type, V + from, d, Vc + to);
        }
}

/* A KV cache as the runtime allocates one (forward.c, alloc_cache): 2 MB aligned, huge pages
 * advised, so that Louver's scattered candidate rows cost what they cost in a session. */
static uint8_t *cache_alloc(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    void *p = NULL;
    bytes = (bytes + huge - 1) / huge * huge;
    if (posix_memalign(&p, huge, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

int main(int argc, char **argv) {
    int32_t heads = 20, kv_heads = 5, d = 128, reps = 15, threads = 2, block = 0, subspaces = 0;
    double eps = 1e-4, tau_frac = 0.01;
    const char *keys_arg = "4096,16384,32768,65536,131072", *set_arg = "both", *policy_arg = "both", *kv_file = NULL;
    static const struct option opts[] = {
        {"keys", 1, 0, 'k'},      {"set", 1, 0, 's'},    {"heads", 1, 0, 'h'},    {"kv-heads", 1, 0, 'v'},
        {"eps", 1, 0, 'e'},       {"reps", 1, 0, 'r'},   {"threads", 1, 0, 't'},  {"block", 1, 0, 'b'},
        {"subspaces", 1, 0, 'S'}, {"policy", 1, 0, 'p'}, {"tau-frac", 1, 0, 'f'}, {"kv", 1, 0, 'K'},
        {"cache", 1, 0, 'C'},     {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k': keys_arg = optarg; break;
        case 's': set_arg = optarg; break;
        case 'h': heads = atoi(optarg); break;
        case 'v': kv_heads = atoi(optarg); break;
        case 'e': eps = atof(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'b': block = atoi(optarg); break;
        case 'S': subspaces = atoi(optarg); break;
        case 'p': policy_arg = optarg; break;
        case 'f': tau_frac = atof(optarg); break;
        case 'K': kv_file = optarg; break;
        case 'C':
            if ((cache_type = kv_type_parse(optarg)) < 0) {
                fprintf(stderr, "bench_attention: --cache %s is not f32, bf16, f16 or q8\n", optarg);
                return 2;
            }
            break;
        default: fprintf(stderr, "see the comment at the top of bench/bench_attention.c\n"); return 2;
        }
    }
#ifdef RSR_LOUVER_PROFILE
    threads = 1; /* the phase counters are global */
#endif
    int32_t sizes[64], nsizes = 0;
    for (const char *p = keys_arg; *p && nsizes < 16;) {
        sizes[nsizes++] = (int32_t)strtol(p, (char **)&p, 10);
        if (*p == ',') p++;
    }
    /* the model set: its shape and lengths from the file */
    kv_capture_file kf = {0};
    if (kv_file) {
        if (read_kv(kv_file, &kf)) return 1;
        heads = kf.heads, kv_heads = kf.kv_heads, d = kf.d, nsizes = kf.count, set_arg = "model";
        memcpy(sizes, kf.at, sizeof(int32_t) * (size_t)kf.count);
    }
    if (heads <= 0 || kv_heads <= 0 || heads % kv_heads || heads / kv_heads > 64 || reps <= 0 || threads <= 0) {
        fprintf(stderr, "bench_attention: bad --heads/--kv-heads/--reps/--threads\n");
        return 2;
    }
    if (!(tau_frac >= 0 && tau_frac < 1)) {
        fprintf(stderr, "bench_attention: --tau-frac must be in [0, 1)\n");
        return 2;
    }
    int32_t maxn = 0;
    for (int32_t i = 0; i < nsizes; i++) maxn = sizes[i] > maxn ? sizes[i] : maxn;
    const int32_t group = heads / kv_heads;
    const size_t hstr = (size_t)maxn * (size_t)d; /* head-major: KV head h's row j at h·hstr + j·d */
    for (int32_t i = 0; i < d / 2; i++) rope_freq[i] = pow(500000.0, -2.0 * i / d);
    printf("bench_attention: one layer, %d query heads, %d KV heads (GQA %d), head_dim %d, %s cache, %d threads, "
           "%s kernels, median of %d steps\n",
           heads, kv_heads, group, d, kv_type_name(cache_type), threads, rt_isa_name(rt_cpu_isa()), reps);
    cache_maxn = maxn, cache_row = attn_row_bytes(cache_type, d);
    uint8_t *Kc = cache_alloc(cache_row * (size_t)maxn * (size_t)kv_heads),
            *Vc = cache_alloc(cache_row * (size_t)maxn * (size_t)kv_heads);
    printf("%-10s %7s %-9s %7s %8s %8s %9s %9s %8s %9s %7s %9s %6s\n", "keys", "n", "policy", "kept%", "bounded%",
           "scanned%", "dense ms", "louver ms", "speedup", "bound", "recall", "min-ratio", "dense");

    float *K = malloc(sizeof(float) * hstr * (size_t)kv_heads), *V = malloc(sizeof(float) * hstr * (size_t)kv_heads);
    float *q = malloc(sizeof(float) * (size_t)heads * (size_t)d),
          *out = malloc(sizeof(float) * (size_t)heads * (size_t)d);
    float *sorted = malloc(sizeof(float) * (size_t)maxn);
    unsigned char *mark = malloc((size_t)maxn);
    dense_ctx dc = {.d = d,
                    .heads = heads,
                    .kv_heads = kv_heads,
                    .group = group,
                    .threads = threads,
                    .mc = (maxn + CHUNK - 1) / CHUNK};
    dc.part_o = malloc(sizeof(float) * (size_t)heads * (size_t)dc.mc * (size_t)d);
    dc.part_ml = malloc(sizeof(float) * (size_t)heads * (size_t)dc.mc * 2);
    dc.scratch = malloc(sizeof(float) * (size_t)threads * (size_t)group * CHUNK);
    rsr_louver_scratch **sc = calloc((size_t)threads, sizeof *sc);
    for (int32_t t = 0; t < threads; t++) rsr_louver_scratch_create(&sc[t]);
    rsr_louver_stats *hs = calloc((size_t)heads, sizeof *hs);
    rsr_louver_policy *pol = calloc((size_t)heads, sizeof *pol);
    const int32_t ncent = 64;
    float *cent = malloc(sizeof(float) * (size_t)kv_heads * ncent * (size_t)d);
    for (size_t i = 0; i < (size_t)kv_heads * ncent * (size_t)d; i++) cent[i] = gauss();
    double *t = malloc(sizeof(double) * (size_t)reps), *td = malloc(sizeof(double) * (size_t)reps);

    static const char *set_names[] = {"structured", "uniform", "model"};
    for (int set = 0; set < 3; set++) {
        const char *setname = set_names[set];
        if (strcmp(set_arg, setname) && !(set < 2 && !strcmp(set_arg, "both"))) continue;
        make_set(set, &kf, maxn, kv_heads, d, cent, ncent, K, V, Kc, Vc);
        rsr_louver_config cfg = {.head_dim = d, .subspaces = subspaces, .block_keys = block};
        rsr_louver_index **ix = calloc((size_t)kv_heads, sizeof *ix);
        for (int32_t h = 0; h < kv_heads; h++)
            if (rsr_louver_create(&cfg, &ix[h]) != RSR_OK) {
                fprintf(stderr, "bench_attention: bad --block/--subspaces\n");
                return 2;
            }
        const int32_t B = rsr_louver_get_config(ix[0])->block_keys;
        for (int32_t si = 0; si < nsizes; si++) {
            int32_t n = sizes[si];
            if (n < 1) continue;
            /* grow the index to hold every full block below n, keeping the last 1..B keys as the buffer */
            double tb = now();
            int32_t added = 0;
            for (int32_t h = 0; h < kv_heads; h++)
                while (n - rsr_louver_size(ix[h]) > B) {
                    louver_append_rows(ix[h], attn_rows_from(head_rows(Kc, h), rsr_louver_size(ix[h])));
                    added += B;
                }
            tb = now() - tb;
            /* queries at position n − 1 */
            if (set == 2)
                memcpy(q, kf.q + (size_t)si * (size_t)heads * (size_t)d, sizeof(float) * (size_t)heads * (size_t)d);
            for (int32_t h = 0; h < heads && set < 2; h++) {
                float *qh = q + (size_t)h * (size_t)d;
                if (set == 1) {
                    for (int32_t i = 0; i < d; i++) qh[i] = gauss();
                    continue;
                }
                const float *cc = cent + ((size_t)(h / group) * ncent + (size_t)(uniform() * ncent)) * (size_t)d;
                for (int32_t i = 0; i < d; i++) qh[i] = cc[i] + 0.1f * gauss();
                qh[3] += 1, qh[70] += 1;
                rope(qh, d, n - 1);
            }
            for (int p = 0; p < 2; p++) {
                if ((p == 0 && !strcmp(policy_arg, "tau")) || (p == 1 && !strcmp(policy_arg, "eps"))) continue;
                /* policy 0: relative eps; policy 1: τ at the 1st percentile of each head's scores */
                for (int32_t h = 0; h < heads; h++) {
                    pol[h] = (rsr_louver_policy){.kind = RSR_LOUVER_RELATIVE, .eps = (float)eps};
                    if (p == 1) {
                        for (int32_t j = 0; j < n; j++)
                            sorted[j] = attn_dot_kv(q + (size_t)h * (size_t)d, head_rows(Kc, h / group), j, d);
                        qsort(sorted, (size_t)n, sizeof(float), cmp_desc);
                        pol[h] =
                            (rsr_louver_policy){.kind = RSR_LOUVER_ABSOLUTE, .tau = sorted[(int64_t)(tau_frac * n)]};
                    }
                }
                louver(ix, sc, threads, pol, q, Kc, Vc, n, d, heads, kv_heads, out, hs); /* warm-up */
#ifdef RSR_LOUVER_PROFILE
                /* the phases of the fastest step (the one other load disturbed least) */
                double prof_s = now(), best = INFINITY;
                unsigned long long prof_c = __rdtsc(), best_ph[8] = {0};
#endif
                dense(&dc, q, Kc, Vc, n, out);
                for (int r = 0; r < reps; r++) {
                    double t0 = now();
                    dense(&dc, q, Kc, Vc, n, out);
                    td[r] = now() - t0;
#ifdef RSR_LOUVER_PROFILE
                    memset(rsr_louver_phase_cycles, 0, sizeof rsr_louver_phase_cycles);
#endif
                    t0 = now();
                    louver(ix, sc, threads, pol, q, Kc, Vc, n, d, heads, kv_heads, out, hs);
                    t[r] = now() - t0;
#ifdef RSR_LOUVER_PROFILE
                    if (t[r] < best) best = t[r], memcpy(best_ph, rsr_louver_phase_cycles, sizeof best_ph);
#endif
                }
#ifdef RSR_LOUVER_PROFILE
                double hz = (double)(__rdtsc() - prof_c) / (now() - prof_s);
                printf("phases of the fastest step (%.3f ms):", 1e3 * best);
                for (int ph = 0; ph < 7; ph++) printf(" %s %.3f", phase_names[ph], 1e3 * (double)best_ph[ph] / hz);
                printf("\n");
#endif
                double tl = median(t, reps), tl_min = t[0], tdense = median(td, reps), tdense_min = td[0];
                /* recall against brute force, head by head (one scratch per head: rerun serially) */
                int64_t scanned = 0, kept = 0, bounded = 0, above = 0, found = 0, fallback = 0;
                double bound = 0;
                for (int32_t kvh = 0; kvh < kv_heads; kvh++) {
                    rsr_louver_stats st[64];
                    int32_t h0 = kvh * group;
                    louver_attend_rows(ix[kvh], q + (size_t)h0 * (size_t)d, group, head_rows(Kc, kvh),
                                       head_rows(Vc, kvh), n, &pol[h0], sc[0], out, st);
                    for (int32_t g = 0; g < group; g++) {
                        int32_t h = h0 + g, cnt;
                        const int32_t *idx = rsr_louver_scratch_scanned_head(sc[0], g, &cnt);
                        memset(mark, 0, (size_t)n);
                        for (int32_t i = 0; i < cnt; i++) mark[idx[i]] = 1;
                        for (int32_t j = 0; j < n; j++) {
                            float dot = attn_dot_kv(q + (size_t)h * (size_t)d, head_rows(Kc, kvh), j, d);
                            if (dot >= st[g].tau) above++, found += mark[j];
                        }
                        scanned += st[g].scanned, kept += st[g].kept, bounded += st[g].bounded,
                            fallback += st[g].dense != 0;
                        bound = fmax(bound, st[g].dropped_bound);
                    }
                }
                double all = (double)heads * n;
                char keys[16], pname[32];
                snprintf(keys, sizeof keys, "%dK", n / 1024);
                snprintf(pname, sizeof pname, "tau@%g%%", 100 * tau_frac);
                printf("%-10s %7s %-9s %7.2f %8.1f %8.1f %9.3f %9.3f %7.2fx %9.2g %7.4f %8.2fx %3lld/%d\n", setname,
                       keys, p ? pname : "eps", 100.0 * kept / all, 100.0 * bounded / all, 100.0 * scanned / all,
                       1e3 * tdense, 1e3 * tl, tdense / tl, bound, above ? (double)found / above : 1.0,
                       tdense_min / tl_min, (long long)fallback, heads);
                fflush(stdout);
            }
            if (added) printf("%-10s %7s index build: %.2f us per key per KV head\n", "", "", 1e6 * tb / added);
        }
        for (int32_t h = 0; h < kv_heads; h++) rsr_louver_free(ix[h]);
        free(ix);
    }
    return 0;
}
