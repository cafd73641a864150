/*
 * bench_gpu — the GPU GEMV kernels (i2-dp4a and the RSR warp form) on the matrix shapes of
 * BitNet b1.58 2B-4T and Llama3-8B, next to the device's streaming read bandwidth measured in
 * the same run. Needs a GPU; without one it says so and exits 77.
 *
 * Usage: bench_gpu [--target sm_90] [--reps N] [--shapes 2b4t|llama8b|all]
 *
 * Every kernel comes from the compiler's own pipeline (plan → analyse → lower → emit_cuda →
 * NVRTC → PTX), is loaded through the runtime's driver loader, and is checked bit for bit
 * against a naive int32 product on the CPU before it is timed. Reported per matrix and strategy:
 * the median time of N launches (after a warm-up) of the matrix as a group entry of one (as
 * rsr_model_matvec_int runs it: every thread block copies x into shared memory first), the bytes
 * the kernel must read (its constant data; x stays in cache), that rate in GB/s, and the fraction of the read bandwidth measured by
 * a plain streaming-read kernel in the same process.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_driver.h"
#include "rsr_gpu_call.h"
#include "../cuda/compiler/cuda_printer.h"
#include "ir/kir.h"
#include "rsrc.h"

static const struct {
    const char *set, *name;
    int32_t rows, cols;
} shapes[] = {
    {"2b4t", "2B-4T q/o 2560x2560", 2560, 2560},       {"2b4t", "2B-4T k/v 640x2560", 640, 2560},
    {"2b4t", "2B-4T gate/up 6912x2560", 6912, 2560},   {"2b4t", "2B-4T down 2560x6912", 2560, 6912},
    {"llama8b", "8B q/o 4096x4096", 4096, 4096},       {"llama8b", "8B k/v 1024x4096", 1024, 4096},
    {"llama8b", "8B gate/up 14336x4096", 14336, 4096}, {"llama8b", "8B down 4096x14336", 4096, 14336},
};

static const char read_kernel[] = "extern \"C\" __global__ void bench_read(const int4 *p, long long n, int *out) {\n"
                                  "    int acc = 0;\n"
                                  "    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i "
                                  "+= (long long)gridDim.x * blockDim.x) {\n"
                                  "        int4 v = __ldg(p + i); acc ^= v.x ^ v.y ^ v.z ^ v.w;\n"
                                  "    }\n"
                                  "    if (acc == 0x12345678) *out = acc; /* keeps the loads */\n"
                                  "}\n";

static rt_cuda cu;
static CUstream stream;

static void check(CUresult r, const char *what) {
    if (r) rsrc_fatal("%s: %s", what, rt_cuda_error(&cu, r));
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds of one launch, over reps runs of `batch` back-to-back launches. */
static double time_launches(CUfunction f, unsigned grid, unsigned block, void **args, int reps) {
    enum { batch = 20 };
    double *t = xmalloc(sizeof *t * (size_t)reps);
    for (int w = 0; w < 3; w++) check(cu.LaunchKernel(f, grid, 1, 1, block, 1, 1, 0, stream, args, NULL), "warm-up");
    check(cu.StreamSynchronize(stream), "warm-up");
    for (int r = 0; r < reps; r++) {
        double t0 = rsrc_now();
        for (int i = 0; i < batch; i++)
            check(cu.LaunchKernel(f, grid, 1, 1, block, 1, 1, 0, stream, args, NULL), "launch");
        check(cu.StreamSynchronize(stream), "sync");
        t[r] = (rsrc_now() - t0) / batch;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double m = t[reps / 2];
    free(t);
    return m;
}

int main(int argc, char **argv) {
    const char *target_name = "sm_90", *set = "all";
    int reps = 21;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--target") && i + 1 < argc)
            target_name = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc)
            set = argv[++i];
        else
            rsrc_fatal("usage: bench_gpu [--target sm_90] [--reps N] [--shapes 2b4t|llama8b|all]");
    }
    char err[512];
    if (rt_cuda_load(&cu, err, sizeof err) != 0) {
        fprintf(stderr, "bench_gpu: %s\n", err);
        return 77;
    }
    rsrc_target *cpu = target_load(target_name, NULL, NULL), *t = cpu->gpu;
    if (!t) rsrc_fatal("--target %s is not a CUDA target", target_name);
    CUdevice dev;
    CUcontext ctx;
    char name[128] = "?";
    check(cu.DeviceGet(&dev, 0), "cuDeviceGet");
    cu.DeviceGetName(name, sizeof name, dev);
    check(cu.DevicePrimaryCtxRetain(&ctx, dev), "context");
    check(cu.CtxSetCurrent(ctx), "context");
    check(cu.StreamCreate(&stream, 0), "stream");

    /* every kernel of the run in one module: the read kernel, then (shape × strategy) entries */
    char dir[] = "/tmp/rsrc-bench-gpu.XXXXXX";
    if (!mkdtemp(dir)) rsrc_fatal("mkdtemp failed");
    char *cu_path = xasprintf("%s/bench.cu", dir), *blob_path = xasprintf("%s/blob.bin", dir);
    FILE *src = fopen(cu_path, "w");
    emit_cuda_prologue(src, "bench_gpu", t);
    fputs(read_kernel, src);
    blob_writer blob;
    blob_open(&blob, blob_path);
    enum { MAXK = 2 * (int)(sizeof shapes / sizeof *shapes) };
    struct {
        int shape;
        const char *strategy;
        char symbol[32];
        int32_t ctas, warps, k;
        uint64_t bytes;
    } ks[MAXK];
    int nk = 0;
    ternary_matrix tms[sizeof shapes / sizeof *shapes] = {{0}};
    uint64_t rng = 0x243f6a8885a308d3u;
    for (int s = 0; s < (int)(sizeof shapes / sizeof *shapes); s++) {
        if (strcmp(set, "all") && strcmp(set, shapes[s].set)) continue;
        ternary_matrix *tm = &tms[s];
        *tm =
            (ternary_matrix){.name = (char *)shapes[s].name, .rows = shapes[s].rows, .cols = shapes[s].cols, .beta = 1};
        tm->w = xmalloc((size_t)tm->rows * (size_t)tm->cols);
        for (size_t i = 0; i < (size_t)tm->rows * (size_t)tm->cols; i++) {
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            uint32_t r = (uint32_t)(rng >> 33) % 10;
            tm->w[i] = r < 4 ? 0 : r < 7 ? 1 : -1; /* 40% zeros, like trained BitNet weights */
        }
        for (int which = 0; which < 2; which++) {
            matrix_plan mp;
            plan_matrix(tm, t, which ? STRAT_RSR_LOOP : STRAT_I2, 0, &mp);
            rsrc_plan p = {0};
            if (which) rsrc_analyse(tm, mp.k, &p);
            rsrc_kernel kn;
            kernel_lower(&kn, tm, which ? &p : NULL, t, mp.strategy, nk, 0);
            kernel_write_data(&kn, &blob);
            kir_module *km = kir_lower(&kn);
            emit_cuda_kernel(src, km);
            gpu_member member = gpu_member_of(km); /* a group of one, as the runtime's matvec_int runs it */
            snprintf(ks[nk].symbol, sizeof ks[nk].symbol, "bench_group_%d", nk);
            emit_cuda_group(src, ks[nk].symbol, &member, 1);
            ks[nk].shape = s, ks[nk].strategy = kn.strategy, ks[nk].ctas = gpu_member_ctas(&member),
            ks[nk].warps = kn.cta_warps;
            ks[nk].k = kn.block_rows, ks[nk].bytes = kernel_data_size(&kn);
            nk++;
            kir_close(km);
            kernel_free(&kn);
            rsrc_plan_free(&p);
        }
    }
    fclose(src);
    uint64_t blob_size = blob_align(&blob, 64);
    blob_close(&blob);
    size_t n;
    FILE *f = fopen(cu_path, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = xcalloc((size_t)len + 1, 1);
    if (fread(text, 1, (size_t)len, f) != (size_t)len) rsrc_fatal("short read");
    fclose(f);
    char *ptx = nvrtc_compile(t, text, "bench.cu", &n);
    uint8_t *host_blob = xmalloc(blob_size + 1);
    f = fopen(blob_path, "rb");
    if (fread(host_blob, 1, blob_size, f) != blob_size) rsrc_fatal("short read of the blob");
    fclose(f);
    unlink(cu_path), unlink(blob_path), rmdir(dir);

    CUmodule mod;
    char log[4096] = "";
    int opt[] = {RSR_CU_JIT_ERROR_LOG_BUFFER, RSR_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *val[] = {log, (void *)(uintptr_t)sizeof log};
    if (cu.ModuleLoadDataEx(&mod, ptx, 2, opt, val)) rsrc_fatal("loading the PTX: %s", log);
    CUdeviceptr d_blob, d_x, d_y, d_read, d_out;
    const size_t read_bytes = (size_t)1 << 30;
    check(cu.MemAlloc(&d_blob, blob_size), "alloc");
    check(cu.MemcpyHtoD(d_blob, host_blob, blob_size), "upload");
    check(cu.MemAlloc(&d_x, 16384), "alloc");
    check(cu.MemAlloc(&d_y, 4 * 16384), "alloc");
    check(cu.MemAlloc(&d_read, read_bytes), "alloc");
    check(cu.MemAlloc(&d_out, 4), "alloc");
    check(cu.MemsetD8(d_read, 1, read_bytes), "memset");

    CUfunction rk;
    check(cu.ModuleGetFunction(&rk, mod, "bench_read"), "bench_read");
    long long n16 = (long long)(read_bytes / 16);
    void *rargs[] = {&d_read, &n16, &d_out};
    double read_s = time_launches(rk, (unsigned)t->sms * 8, 512, rargs, reps);
    double hbm = (double)read_bytes / read_s / 1e9;
    printf("device %s (%s), spec %s: %.0f GB/s; measured streaming read %.0f GB/s (%.0f%% of the spec)\n", name,
           t->arch, t->name, t->bytes_per_ns, hbm, 100 * hbm / t->bytes_per_ns);
    printf("%-26s %-14s %3s %10s %10s %9s %8s %s\n", "matrix", "strategy", "k", "MB read", "us", "GB/s", "of read",
           "exact");

    int8_t x[16384] = {0};
    for (int c = 0; c < 16384; c++) x[c] = (int8_t)((c * 37 + 11) % 256 - 128);
    check(cu.MemcpyHtoD(d_x, x, sizeof x), "x");
    int32_t *want = xmalloc(4 * 16384), *got = xmalloc(4 * 16384);
    for (int i = 0; i < nk; i++) {
        const ternary_matrix *tm = &tms[ks[i].shape];
        for (int32_t r = 0; r < tm->rows; r++) {
            int32_t acc = 0;
            for (int32_t c = 0; c < tm->cols; c++) acc += tm->w[(size_t)r * (size_t)tm->cols + (size_t)c] * x[c];
            want[r] = acc;
        }
        /* x past cols must be zero (the kernel contract): zero it for this shape */
        int8_t xs[16384] = {0};
        memcpy(xs, x, (size_t)tm->cols);
        check(cu.MemcpyHtoD(d_x, xs, sizeof xs), "x");
        CUfunction fn;
        check(cu.ModuleGetFunction(&fn, mod, ks[i].symbol), ks[i].symbol);
        rsr_gpu_call call = {.xq = d_x, .in = RSR_IN_INT8, .out = RSR_OUT_INT, .n = tm->cols, .mask = 1};
        call.y[0] = d_y;
        void *args[] = {&call, &d_blob};
        unsigned grid = (unsigned)ks[i].ctas, block = 32u * (unsigned)ks[i].warps;
        check(cu.LaunchKernel(fn, grid, 1, 1, block, 1, 1, 0, stream, args, NULL), "launch");
        check(cu.StreamSynchronize(stream), "sync");
        check(cu.MemcpyDtoH(got, d_y, 4 * (size_t)tm->rows), "y");
        int exact = !memcmp(got, want, 4 * (size_t)tm->rows);
        double s = time_launches(fn, grid, block, args, reps), gbs = (double)ks[i].bytes / s / 1e9;
        printf("%-26s %-14s %3d %10.2f %10.1f %9.0f %7.0f%% %s\n", tm->name, ks[i].strategy, ks[i].k,
               (double)ks[i].bytes / 1e6, s * 1e6, gbs, 100 * gbs / hbm, exact ? "yes" : "NO");
        if (!exact) return 1;
    }
    return 0;
}
