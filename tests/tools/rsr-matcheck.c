/*
 * rsr-matcheck — every compiled ternary matrix against the independent reference, bit for bit.
 *
 *   rsr-matcheck MODEL_SO MODEL_PATH
 *   rsr-matcheck --devices MODEL_SO
 *
 * dlopens the artifact (no link against the runtime), and for every compiled matrix checks its
 * name, shape and scale (bitwise) against the reference's, then compares rsr_model_matvec_int
 * (each vector) and rsr_model_matmul_int (batches, the prefill kernels) with the naive int32
 * product for a fixed set of int8 vectors. Every reference matrix must be
 * in the artifact. Exit 0 when all integer sums are identical, 1 otherwise.
 *
 * --devices: the artifact's GPU kernels against its CPU kernels (which the first form and the unit
 * tests check against naive products), for models the reference cannot read (GGUF files): every
 * matrix's sums, per unit where it has scales per group, one vector at a time and all at once.
 */
#include "../../runtime/include/rsr.h"
#include "../reference/ref.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NFIXED 6
#define NRANDOM 8
#define NVEC (NFIXED + NRANDOM)

static rsr_status (*p_open)(rsr_model **, const rsr_model_params *);
static const char *(*p_errmsg)(const rsr_model *);
static rsr_status (*p_info)(const rsr_model *, rsr_model_info *);
static rsr_status (*p_matrix_info)(const rsr_model *, int32_t, rsr_matrix_info *);
static rsr_status (*p_matvec)(const rsr_model *, int32_t, const int8_t *, int32_t *);
static rsr_status (*p_matmul)(const rsr_model *, int32_t, const int8_t *, int32_t, int32_t *);
static void (*p_close)(rsr_model *);

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "rsr-matcheck: the artifact has no symbol %s\n", name);
        exit(1);
    }
    return p;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const char *vector_name(int v) {
    static const char *const fixed[NFIXED] = {
        "all 127", "all -128", "alternating 127/-128", "one-hot first column", "one-hot last column (-128)", "zeros"};
    return v < NFIXED ? fixed[v] : "seeded random";
}

static void make_vector(int v, int8_t *x, int cols) {
    uint64_t seed = 0x5EEDull + (uint64_t)v * 1000003u;
    for (int c = 0; c < cols; c++) {
        switch (v) {
        case 0: x[c] = 127; break;
        case 1: x[c] = -128; break;
        case 2: x[c] = c % 2 ? -128 : 127; break;
        case 3: x[c] = c == 0; break;
        case 4: x[c] = c == cols - 1 ? -128 : 0; break;
        case 5: x[c] = 0; break;
        default: x[c] = (int8_t)(int)(splitmix64(&seed) % 256 - 128); break;
        }
    }
}

static rsr_model *open_on(int32_t device) {
    rsr_model *m = NULL;
    rsr_model_params p = {.device = device};
    if (p_open(&m, &p) != RSR_OK) {
        fprintf(stderr, "rsr-matcheck: rsr_model_open (device %d): %s\n", (int)device, m ? p_errmsg(m) : "(no handle)");
        if (m) p_close(m);
        exit(1);
    }
    return m;
}

/* One matrix's sums on both devices, each vector alone and all at once; the count of mismatches. */
static int compare_devices(rsr_model *cpu, rsr_model *gpu, int32_t i) {
    rsr_matrix_info mi;
    if (p_matrix_info(cpu, i, &mi) != RSR_OK || mi.units < 1) {
        fprintf(stderr, "rsr-matcheck: rsr_model_matrix_info(%d): %s\n", (int)i, p_errmsg(cpu));
        return 1;
    }
    const size_t cols = (size_t)mi.cols, sums = (size_t)mi.rows * (size_t)mi.units;
    int8_t *x = malloc(NVEC * cols);
    int32_t *want = malloc(NVEC * sums * sizeof *want), *got = malloc(NVEC * sums * sizeof *got);
    for (int v = 0; v < NVEC; v++) make_vector(v, x + (size_t)v * cols, (int)cols);
    int bad = 0;
    for (int batched = 0; batched < 2 && !bad; batched++) {
        for (size_t j = 0; j < NVEC * sums; j++) got[j] = want[j] = (int32_t)0x5A5A5A5A;
        rsr_status a = RSR_OK, b = RSR_OK;
        if (batched) {
            a = p_matmul(cpu, i, x, NVEC, want), b = p_matmul(gpu, i, x, NVEC, got);
        } else {
            for (int v = 0; v < NVEC && a == RSR_OK && b == RSR_OK; v++) {
                a = p_matvec(cpu, i, x + (size_t)v * cols, want + (size_t)v * sums);
                b = p_matvec(gpu, i, x + (size_t)v * cols, got + (size_t)v * sums);
            }
        }
        if (a != RSR_OK || b != RSR_OK) {
            fprintf(stderr, "rsr-matcheck: %s: %s\n", mi.name, p_errmsg(a != RSR_OK ? cpu : gpu));
            bad = 1;
        }
        for (size_t j = 0; j < NVEC * sums && !bad; j++)
            if (got[j] != want[j]) {
                fprintf(stderr, "rsr-matcheck: MISMATCH %s vector %d (%s) sum %zu of %zu (%s): cpu %d, gpu %d\n",
                        mi.name, (int)(j / sums), vector_name((int)(j / sums)), j % sums, sums,
                        batched ? "batched" : "one by one", (int)want[j], (int)got[j]);
                bad = 1;
            }
    }
    free(x), free(want), free(got);
    return bad;
}

static int check_devices(void) {
    rsr_model *cpu = open_on(RSR_DEVICE_CPU), *gpu = open_on(RSR_DEVICE_GPU);
    rsr_model_info info;
    if (p_info(gpu, &info) != RSR_OK) {
        fprintf(stderr, "rsr-matcheck: rsr_model_get_info: %s\n", p_errmsg(gpu));
        return 1;
    }
    int failures = 0, grouped = 0;
    for (int32_t i = 0; i < info.num_matrices; i++) {
        rsr_matrix_info mi;
        if (p_matrix_info(cpu, i, &mi) == RSR_OK && mi.units > 1) grouped++;
        failures += compare_devices(cpu, gpu, i);
    }
    p_close(cpu), p_close(gpu);
    if (failures) {
        fprintf(stderr, "rsr-matcheck: %d of %d matrices differ between the devices\n", failures,
                (int)info.num_matrices);
        return 1;
    }
    printf("rsr-matcheck: %d matrices (%d summed per unit of columns) x %d vectors: the GPU's integer sums are the "
           "CPU's\n",
           (int)info.num_matrices, grouped, NVEC);
    return 0;
}

int main(int argc, char **argv) {
    const int devices = argc == 3 && !strcmp(argv[1], "--devices");
    if (argc != 3) {
        fprintf(stderr, "usage: rsr-matcheck MODEL_SO MODEL_PATH\n       rsr-matcheck --devices MODEL_SO\n");
        return 1;
    }
    char so[4096];
    const char *path = argv[devices ? 2 : 1];
    snprintf(so, sizeof so, "%s%s", strchr(path, '/') ? "" : "./", path);
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "rsr-matcheck: %s\n", dlerror());
        return 1;
    }
    p_open = (rsr_status(*)(rsr_model **, const rsr_model_params *))sym(lib, "rsr_model_open");
    p_errmsg = (const char *(*)(const rsr_model *))sym(lib, "rsr_model_errmsg");
    p_info = (rsr_status(*)(const rsr_model *, rsr_model_info *))sym(lib, "rsr_model_get_info");
    p_matrix_info = (rsr_status(*)(const rsr_model *, int32_t, rsr_matrix_info *))sym(lib, "rsr_model_matrix_info");
    p_matvec = (rsr_status(*)(const rsr_model *, int32_t, const int8_t *, int32_t *))sym(lib, "rsr_model_matvec_int");
    p_matmul =
        (rsr_status(*)(const rsr_model *, int32_t, const int8_t *, int32_t, int32_t *))sym(lib, "rsr_model_matmul_int");
    p_close = (void (*)(rsr_model *))sym(lib, "rsr_model_close");
    if (devices) return check_devices();

    char err[1024];
    ref_model *ref = ref_load(argv[2], err, sizeof err);
    if (!ref) {
        fprintf(stderr, "rsr-matcheck: reference: %s\n", err);
        return 1;
    }
    rsr_model *m = NULL;
    if (p_open(&m, NULL) != RSR_OK) {
        fprintf(stderr, "rsr-matcheck: rsr_model_open: %s\n", m ? p_errmsg(m) : "(no handle)");
        if (m) p_close(m);
        return 1;
    }
    rsr_model_info info;
    if (p_info(m, &info) != RSR_OK) {
        fprintf(stderr, "rsr-matcheck: rsr_model_get_info: %s\n", p_errmsg(m));
        return 1;
    }

    int nref = ref_num_matrices(ref), failures = 0, checked = 0;
    int *seen = calloc(nref + 1, sizeof *seen);
    for (int32_t i = 0; i < info.num_matrices; i++) {
        rsr_matrix_info mi;
        int rows, cols;
        float beta;
        if (p_matrix_info(m, i, &mi) != RSR_OK) {
            fprintf(stderr, "rsr-matcheck: rsr_model_matrix_info(%d): %s\n", (int)i, p_errmsg(m));
            failures++;
            continue;
        }
        const int8_t *w = ref_ternary(ref, mi.name, &rows, &cols, &beta);
        if (!w) {
            fprintf(stderr, "rsr-matcheck: compiled matrix %d '%s' is not a matrix of the reference\n", (int)i,
                    mi.name);
            failures++;
            continue;
        }
        for (int k = 0; k < nref; k++)
            if (!strcmp(ref_matrix_name(ref, k), mi.name) && seen[k]++)
                fprintf(stderr, "rsr-matcheck: matrix %s appears twice in the artifact\n", mi.name), failures++;
        if (mi.rows != rows || mi.cols != cols) {
            fprintf(stderr, "rsr-matcheck: %s: compiled shape %dx%d, reference %dx%d\n", mi.name, (int)mi.rows,
                    (int)mi.cols, rows, cols);
            failures++;
            continue;
        }
        uint32_t bs, bc;
        memcpy(&bs, &mi.scale, 4), memcpy(&bc, &beta, 4);
        if (bs != bc) {
            fprintf(stderr, "rsr-matcheck: %s: compiled scale %.9g (0x%08x), reference beta %.9g (0x%08x)\n", mi.name,
                    mi.scale, (unsigned)bs, beta, (unsigned)bc);
            failures++;
        }
        /* every vector alone (rsr_model_matvec_int), then all at once and the last 3 at once
         * (rsr_model_matmul_int: the batched kernel's tiles of 4 tokens and its single tokens) */
        /* a matrix with scales per group is summed per unit of columns: sums[u · rows + r] */
        const int units = mi.units, ucols = cols / units, sums = rows * units;
        int8_t *x = malloc((size_t)NVEC * cols + 1);
        int32_t *got = malloc(((size_t)NVEC * sums + 1) * sizeof *got);
        int64_t *want = malloc(((size_t)NVEC * sums + 1) * sizeof *want);
        for (int v = 0; v < NVEC; v++) {
            make_vector(v, x + (size_t)v * cols, cols);
            for (int u = 0; u < units; u++)
                for (int r = 0; r < rows; r++) {
                    int64_t sum = 0;
                    for (int c = u * ucols; c < (u + 1) * ucols; c++)
                        sum += (int64_t)w[(size_t)r * cols + c] * x[(size_t)v * cols + c];
                    want[(size_t)v * sums + (size_t)u * rows + r] = sum;
                }
        }
        static const struct {
            const char *how;
            int first, count;
        } runs[] = {{"matvec", 0, 1}, {"matmul", 0, NVEC}, {"matmul", NVEC - 3, 3}};
        int reported = 0;
        for (int k = 0; k < 3 && !reported; k++) {
            int single = runs[k].count == 1;
            for (int v0 = runs[k].first; v0 < (single ? NVEC : runs[k].first + 1) && !reported; v0++) {
                int n = runs[k].count;
                for (size_t j = 0; j < (size_t)n * sums; j++)
                    got[j] = (int32_t)0x5A5A5A5A; /* catches rows left unwritten */
                rsr_status st =
                    single ? p_matvec(m, i, x + (size_t)v0 * cols, got) : p_matmul(m, i, x + (size_t)v0 * cols, n, got);
                if (st != RSR_OK) {
                    fprintf(stderr, "rsr-matcheck: %s: rsr_model_%s_int failed: %s\n", mi.name, runs[k].how,
                            p_errmsg(m));
                    failures++, reported = 1;
                    break;
                }
                for (int t = 0; t < n && !reported; t++)
                    for (int r = 0; r < sums && !reported; r++) {
                        int v = v0 + t;
                        if (want[(size_t)v * sums + r] != got[(size_t)t * sums + r]) {
                            fprintf(stderr,
                                    "rsr-matcheck: MISMATCH %s vector %d (%s) row %d, unit %d (%s of %d): expected "
                                    "%lld, got %d\n",
                                    mi.name, v, vector_name(v), r % rows, r / rows, runs[k].how, n,
                                    (long long)want[(size_t)v * sums + r], (int)got[(size_t)t * sums + r]);
                            failures++, reported = 1;
                        }
                    }
            }
        }
        free(want);
        free(x), free(got);
        checked++;
    }
    for (int k = 0; k < nref; k++)
        if (!seen[k]) {
            fprintf(stderr, "rsr-matcheck: reference matrix %s is missing from the artifact\n",
                    ref_matrix_name(ref, k));
            failures++;
        }
    free(seen);
    p_close(m);
    ref_free(ref);
    if (failures) {
        fprintf(stderr, "rsr-matcheck: %d failure(s) in %d compiled matrices\n", failures, (int)info.num_matrices);
        return 1;
    }
    printf("rsr-matcheck: %d matrices x %d vectors, one by one and batched: all integer sums identical\n", checked,
           NVEC);
    return 0;
}
