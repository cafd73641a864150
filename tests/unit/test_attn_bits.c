/*
 * test_attn_bits — the attention kernels of the family in use (RSR_CPU) on fixed inputs: every
 * entry point (attn_dot_kv, attn_scores_kv, attn_accumulate with and without an index,
 * attn_dense_range_kv with τ counts, the state merges) for every element type, head sizes with and
 * without the families' fast paths, 1 to 8 query heads and key counts around the vector widths.
 *
 * Two checks:
 *   - each dense result against a double-precision reference, within the error fp32 scores and
 *     the families' exp allow (a few units in the last place of the scores, scaled by the largest
 *     value);
 *   - a checksum of the bits of every result, against the one this family's kernels gave when the
 *     test was written. Each family keeps its summation order (docs/numerics.md), so a change of
 *     the kernels that is not bit-identical within a family fails here, however small: a new
 *     order must come with a new checksum, on purpose.
 * The checksums are per architecture and family: the portable family's exp is the C library's
 * expf, and NaN and rounding of the scalar code follow the architecture. A family with no stored
 * checksum (a new architecture) prints its checksum and, when the reference check passes, reports
 * itself skipped (exit 77), not passed.
 * Run in each kernel family (ctest: default, RSR_CPU=avx2, RSR_CPU=portable; under qemu-aarch64,
 * NEON and portable).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_kernels.h"
#include "expect.h"

static uint64_t hash = 1469598103934665603ull; /* FNV-1a over the bits of every result */
static void mix(const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) hash = (hash ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
}
static void mix_state(const attn_state *st, int32_t d) {
    mix(&st->m, sizeof st->m), mix(&st->l, sizeof st->l), mix(st->o, sizeof(float) * (size_t)d);
}

static uint32_t rng = 12345;
static float uniform(float lo, float hi) { /* xorshift32: the same inputs on every platform */
    rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
    return lo + (hi - lo) * (float)(rng >> 8) / 16777216.0f;
}

enum { N_MAX = 260, GQ_MAX = 8 };

typedef struct inputs {
    int32_t type, d;
    char *K, *V;
    attn_rows kr, vr;
    float q[GQ_MAX * 128];
} inputs;

/* The reference output of one query head over keys [j0, j1), with its error bound per element. */
static void reference(const inputs *in, const float *q, int32_t j0, int32_t j1, double *out, double *tol) {
    const int32_t d = in->d;
    double *x = malloc(sizeof(double) * (size_t)(j1 - j0)), xmax = -INFINITY, err = 0, vmax = 0, l = 0;
    float *k = malloc(sizeof(float) * (size_t)d), *v = malloc(sizeof(float) * (size_t)d);
    const double scale = 1.0 / sqrt((double)d);
    for (int32_t j = j0; j < j1; j++) {
        attn_widen_row(in->kr, j, d, k);
        double s = 0, a = 0;
        for (int32_t i = 0; i < d; i++) s += (double)q[i] * k[i], a += fabs((double)q[i] * k[i]);
        x[j - j0] = s * scale, xmax = fmax(xmax, s * scale);
        err = fmax(err, (d + 2) * 0x1p-24 * a * scale + 1e-6); /* fp32 sums, the scaling, exp */
    }
    for (int32_t i = 0; i < d; i++) out[i] = 0;
    for (int32_t j = j0; j < j1; j++) {
        const double w = exp(x[j - j0] - xmax);
        attn_widen_row(in->vr, j, d, v);
        l += w;
        for (int32_t i = 0; i < d; i++) out[i] += w * v[i], vmax = fmax(vmax, fabs(v[i]));
    }
    for (int32_t i = 0; i < d; i++) out[i] /= l, tol[i] = (4 * err + 1e-5) * vmax;
    free(x), free(k), free(v);
}

/* Dense attention of gq heads over [3, 3 + n) in chunks of at most 37 keys, merged; with τ counts. */
static void check_dense(const inputs *in, int32_t gq, int32_t n, int ordinary) {
    const int32_t d = in->d, j1 = 3 + n;
    float o[GQ_MAX][128], out[128], scratch[GQ_MAX * 37], tau[GQ_MAX];
    int32_t count[GQ_MAX] = {0};
    attn_state st[GQ_MAX];
    for (int32_t g = 0; g < gq; g++) st[g].o = o[g], attn_state_clear(&st[g], d), tau[g] = uniform(-1, 1);
    for (int32_t j = 3; j < j1; j += 37)
        attn_dense_range_kv(st, in->q, gq, in->kr, in->vr, d, j, j + 37 < j1 ? j + 37 : j1, scratch, tau, count);
    mix(count, sizeof(int32_t) * (size_t)gq);
    for (int32_t g = 0; g < gq; g++) {
        mix_state(&st[g], d);
        attn_state_finish(&st[g], out, d);
        mix(out, sizeof(float) * (size_t)d);
        if (!ordinary) continue;
        double ref[128], tol[128];
        reference(in, in->q + g * d, 3, j1, ref, tol);
        int bad = 0;
        for (int32_t i = 0; i < d; i++) bad += !(fabs(out[i] - ref[i]) <= tol[i]);
        EXPECT(!bad, "type %d, d %d, %d heads, %d keys: head %d off the reference in %d elements", in->type, d, gq, n,
               g, bad);
    }
}

/* Scores, dots and the accumulation of given scores (in two parts, so that the second raises the
 * running maximum of a state that already holds keys), with and without an index of rows. */
static void check_parts(const inputs *in, int32_t gq, int32_t n) {
    const int32_t d = in->d;
    float dots[GQ_MAX * N_MAX], x[N_MAX], o[128];
    int32_t idx[N_MAX];
    attn_scores_kv(in->q, gq, in->kr, d, 1, 1 + n, dots, (size_t)n);
    mix(dots, sizeof(float) * (size_t)(gq * n));
    for (int32_t j = 0; j < n; j++) {
        const float dot = attn_dot_kv(in->q + (j % gq) * d, in->kr, 1 + j, d);
        mix(&dot, sizeof dot);
        idx[j] = (int32_t)((j * 7919u + 13) % N_MAX);
        x[j] = dots[j] * 0.1f + (j % 5 == 0 ? 3.0f : 0.0f);
    }
    for (int use_idx = 0; use_idx < 2; use_idx++) {
        attn_state st = {.o = o};
        attn_state_clear(&st, d);
        float y[N_MAX];
        memcpy(y, x, sizeof(float) * (size_t)n);
        const int32_t half = n / 2;
        attn_accumulate(&st, y, use_idx ? idx : NULL, half, in->vr, d);
        attn_accumulate(&st, y + half, use_idx ? idx + half : NULL, n - half,
                        use_idx ? in->vr : attn_rows_from(in->vr, half), d);
        mix(y, sizeof(float) * (size_t)n);
        mix_state(&st, d);
    }
}

static void fill(inputs *in, int32_t type, int32_t d, float qscale) {
    const size_t row = attn_row_bytes(type, d);
    float x[128];
    in->type = type, in->d = d;
    in->K = malloc(row * N_MAX), in->V = malloc(row * N_MAX);
    for (int32_t j = 0; j < N_MAX; j++) {
        for (int32_t i = 0; i < d; i++) x[i] = uniform(-2, 2);
        attn_narrow_row(type, x, d, in->K + row * (size_t)j);
        for (int32_t i = 0; i < d; i++) x[i] = uniform(-1, 1);
        attn_narrow_row(type, x, d, in->V + row * (size_t)j);
    }
    in->kr = (attn_rows){.base = in->K, .bytes = row, .type = type};
    in->vr = (attn_rows){.base = in->V, .bytes = row, .type = type};
    for (int32_t i = 0; i < GQ_MAX * d; i++) in->q[i] = uniform(-1, 1) * (i / d % 3 == 1 ? qscale : 1.0f);
}

static const char *arch(void) {
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#else
    return "other";
#endif
}

/* The kernels' family, as the checksums are kept: the two AVX-512 families run the same attention. */
static const char *family(void) {
    const rt_isa isa = rt_cpu_isa();
    return rt_isa_avx512(isa) ? "avx512" : rt_isa_name(isa);
}

static const struct {
    const char *arch, *family;
    uint64_t sum;
} expected[] = {
    {"x86_64", "avx512", 0x09dce810a907f48bull},    {"x86_64", "avx2", 0xd293cefab5d3b9f3ull},
    {"x86_64", "portable", 0xc1b56b73d7c5314dull},  {"aarch64", "neon", 0x53193a7440fea969ull},
    {"aarch64", "portable", 0xc1b56b73d7c5314dull},
};

int main(void) {
    static const int32_t dims[] = {128, 64, 96, 80, 40, 72, 24, 20, 13};
    static const int32_t heads[] = {1, 2, 3, 4, 5, 8};
    static const int32_t keys[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257};
    for (int32_t type = 0; type < ATTN_TYPES; type++)
        for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
            for (int set = 0; set < 2; set++) { /* ordinary queries; some heads' large (weights underflow to 0) */
                inputs in;
                fill(&in, type, dims[di], set ? 300.0f : 1.0f);
                for (size_t h = 0; h < sizeof heads / sizeof *heads; h++)
                    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
                        check_dense(&in, heads[h], keys[k], !set);
                        if (keys[k] < N_MAX - 2) check_parts(&in, heads[h], keys[k]);
                    }
                free(in.K), free(in.V);
            }
    int known = 0;
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++)
        if (!strcmp(expected[i].arch, arch()) && !strcmp(expected[i].family, family())) {
            known = 1;
            EXPECT(expected[i].sum == hash,
                   "%s %s kernels: checksum %#018llx, expected %#018llx (the bits of some result changed)", arch(),
                   family(), (unsigned long long)hash, (unsigned long long)expected[i].sum);
        }
    printf("test_attn_bits (%s %s kernels): checksum %#018llx%s; %d passed, %d failed\n", arch(), family(),
           (unsigned long long)hash, known ? "" : " (none stored: the checksum check skipped)", checks - failures,
           failures);
    return failures ? 1 : known ? 0 : 77;
}
