/*
 * gpu_model.c — a compiled model opened on the GPU: the driver (dlopen), device 0's primary
 * context, the artifact's PTX modules (JIT-compiled by the driver, its error log in the
 * message), the blob in device memory and the entry of every kernel.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

#define ERR(st, ...) rt_set_error(err, st, __VA_ARGS__)

static rsr_status load_modules(rt_gpu *g, char *err) {
    const rsr_artifact_gpu *ag = g->a->gpu;
    for (int32_t i = 0; i < ag->num_modules; i++) {
        if (ag->module[i] > g->a->blob_size || ag->module_size[i] >= g->a->blob_size - ag->module[i])
            return ERR(RSR_ERR_ABI, "artifact PTX module %d lies outside the blob", i);
        char error_log[4096] = "", info_log[1024] = "";
        int options[] = {RSR_CU_JIT_ERROR_LOG_BUFFER, RSR_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                         RSR_CU_JIT_INFO_LOG_BUFFER, RSR_CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES};
        void *values[] = {error_log, (void *)(uintptr_t)sizeof error_log, info_log, (void *)(uintptr_t)sizeof info_log};
        CUresult r = g->cu.ModuleLoadDataEx(&g->module[i], g->a->blob + ag->module[i], 4, options, values);
        if (r != 0)
            return ERR(RSR_ERR_DEVICE, "%s: the driver cannot load the model's PTX (module %d, %s for %s): %s%s%s",
                       g->name, i, ag->ptx_arch, ag->arch, rt_cuda_error(&g->cu, r), *error_log ? ": " : "", error_log);
        g->num_modules = i + 1;
    }
    return RSR_OK;
}

static rsr_status find(rt_gpu *g, const char *name, CUfunction *f, char *err) {
    for (int32_t i = 0; i < g->num_modules; i++)
        if (g->cu.ModuleGetFunction(f, g->module[i], name) == 0) return RSR_OK;
    return ERR(RSR_ERR_ABI, "the model's PTX has no kernel '%s'", name);
}

static rsr_status open_device(rt_gpu *g, char *err) {
    int count = 0, major = 0, minor = 0;
    CUresult r = g->cu.DeviceGetCount(&count);
    if (r != 0 || count == 0)
        return ERR(RSR_ERR_DEVICE, "no CUDA device%s%s", r ? ": " : "", r ? rt_cuda_error(&g->cu, r) : "");
    const char *want = getenv("RSR_CUDA_DEVICE");
    int ordinal = want && *want ? atoi(want) : 0;
    if (ordinal < 0 || ordinal >= count)
        return ERR(RSR_ERR_DEVICE, "RSR_CUDA_DEVICE=%d: there are %d CUDA devices", ordinal, count);
    if ((r = g->cu.DeviceGet(&g->dev, ordinal)) != 0)
        return ERR(RSR_ERR_DEVICE, "cuDeviceGet(%d): %s", ordinal, rt_cuda_error(&g->cu, r));
    char name[128] = "?";
    g->cu.DeviceGetName(name, sizeof name, g->dev);
    g->cu.DeviceGetAttribute(&major, RSR_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, g->dev);
    g->cu.DeviceGetAttribute(&minor, RSR_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, g->dev);
    g->cu.DeviceGetAttribute(&g->sms, RSR_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, g->dev);
    if (g->sms <= 0) g->sms = 1;
    snprintf(g->name, sizeof g->name, "gpu %d: %s (sm_%d%d, driver %d.%d)", ordinal, name, major, minor,
             g->cu.driver_version / 1000, g->cu.driver_version % 1000 / 10);
    int have = major * 10 + minor, need = atoi(g->a->gpu->arch + 3);
    if (have < need)
        return ERR(RSR_ERR_DEVICE, "%s: the model was compiled for %s; compile it for this GPU (rsrc --target sm_%d%d)",
                   g->name, g->a->gpu->arch, major, minor);
    if ((r = g->cu.DevicePrimaryCtxRetain(&g->ctx, g->dev)) != 0 || (r = g->cu.CtxSetCurrent(g->ctx)) != 0)
        return ERR(RSR_ERR_DEVICE, "%s: no context: %s", g->name, rt_cuda_error(&g->cu, r));
    return RSR_OK;
}

rsr_status rt_gpu_open(const rsr_artifact *a, rt_gpu **out, char *err) {
    *out = NULL;
    if (!a->gpu)
        return ERR(RSR_ERR_NOT_FOUND, "the model was compiled without GPU code: compile it for a CUDA target "
                                      "(rsrc MODEL --target sm_90 or --target avx512,sm_90)");
    rt_gpu *g = calloc(1, sizeof *g);
    if (!g) return ERR(RSR_ERR_OUT_OF_MEMORY, "out of memory");
    g->a = a;
    char why[256];
    if (rt_cuda_load(&g->cu, why, sizeof why) != 0) {
        free(g);
        return ERR(RSR_ERR_DEVICE, "%s", why);
    }
    *out = g;
    rsr_status st = open_device(g, err);
    if (st != RSR_OK) return st;
    if ((st = load_modules(g, err)) != RSR_OK) return st;
#define RSR_GPU_NAME(n) "rsr_" #n,
#define RSR_GPU_SLOT(n) &g->n,
    static const char *const names[] = {RSR_GPU_ENTRIES(RSR_GPU_NAME)};
    CUfunction *slots[] = {RSR_GPU_ENTRIES(RSR_GPU_SLOT)};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if ((st = find(g, names[i], slots[i], err)) != RSR_OK) return st;
    g->matrix = calloc((size_t)a->num_matrices, sizeof *g->matrix);
    if (!g->matrix) return ERR(RSR_ERR_OUT_OF_MEMORY, "out of memory");
    g->fused = a->num_matrices > 0 && a->gpu->matrix[0].group_ctas > 0;
    for (int32_t i = 0; i < a->num_matrices; i++) {
        const rsr_artifact_gpu_matrix *gm = &a->gpu->matrix[i];
        const int64_t sums = rt_gpu_kernel_rows(a, i);
        if ((a->matrix[i].unit_cols > 0 &&
             ((gm->planes != 1 && gm->planes != 2) || a->matrix[i].group_scale_dtype != RSR_DTYPE_F32)) ||
            gm->cta_warps <= 0 || gm->rows_per_warp <= 0 || (int64_t)gm->num_blocks * gm->rows_per_warp < sums ||
            (gm->group_ctas > 0) != g->fused || gm->group_slot < 0 || gm->group_slot >= RSR_GROUP_MAX)
            return ERR(RSR_ERR_ABI, "artifact GPU matrix %d (%s) is inconsistent (its kernels read f32 group scales)",
                       i, a->matrix[i].name);
        if ((st = find(g, gm->kernel, &g->matrix[i], err)) != RSR_OK) return st;
        if (sums > g->max_rows) g->max_rows = (int32_t)sums;
        if (rt_pad_cols(a->matrix[i].cols) > g->max_cols_pad) g->max_cols_pad = rt_pad_cols(a->matrix[i].cols);
    }
    CUresult r;
    if ((r = g->cu.MemAlloc(&g->blob, a->blob_size)) != 0 ||
        (r = g->cu.MemcpyHtoD(g->blob, a->blob, a->blob_size)) != 0)
        return ERR(RSR_ERR_OUT_OF_MEMORY, "%s: cannot put the model's %.1f MB of constants in device memory: %s",
                   g->name, (double)a->blob_size / 1e6, rt_cuda_error(&g->cu, r));
    if ((r = g->cu.MemAlloc(&g->mv_x, (size_t)g->max_cols_pad)) != 0 ||
        (r = g->cu.MemAlloc(&g->mv_y, 4 * (size_t)g->max_rows)) != 0 || (r = g->cu.StreamCreate(&g->stream, 0)) != 0)
        return ERR(RSR_ERR_OUT_OF_MEMORY, "%s: %s", g->name, rt_cuda_error(&g->cu, r));
    return RSR_OK;
}

void rt_gpu_close(rt_gpu *g) {
    if (!g) return;
    if (g->ctx) {
        g->cu.CtxSetCurrent(g->ctx);
        if (g->stream) g->cu.StreamDestroy(g->stream);
        if (g->mv_x) g->cu.MemFree(g->mv_x);
        if (g->mv_y) g->cu.MemFree(g->mv_y);
        if (g->blob) g->cu.MemFree(g->blob);
        for (int32_t i = 0; i < g->num_modules; i++) g->cu.ModuleUnload(g->module[i]);
        g->cu.DevicePrimaryCtxRelease(g->dev);
    }
    rt_cuda_unload(&g->cu);
    free(g->matrix);
    free(g);
}

rsr_status rt_gpu_matvec_int(rt_gpu *g, int32_t index, const int8_t *x, int32_t *y, char *err) {
    const rsr_artifact_matrix *mx = &g->a->matrix[index];
    const rsr_artifact_gpu_matrix *gm = &g->a->gpu->matrix[index];
    CUdeviceptr data = g->blob + (gm->data == RSR_NO_TENSOR ? 0 : gm->data);
    /* a group entry runs only this matrix (mask), its int8 input copied, its sums stored */
    rsr_gpu_call call = {
        .xq = g->mv_x, .in = RSR_IN_INT8, .out = RSR_OUT_INT, .n = mx->cols, .mask = 1 << gm->group_slot};
    call.y[gm->group_slot] = g->mv_y;
    void *plain_args[] = {&data, &g->mv_x, &g->mv_y}, *group_args[] = {&call, &g->blob};
    unsigned grid =
        g->fused ? (unsigned)gm->group_ctas : (unsigned)((gm->num_blocks + gm->cta_warps - 1) / gm->cta_warps);
    CUresult r;
    if ((r = g->cu.CtxSetCurrent(g->ctx)) != 0 || (r = g->cu.MemsetD8(g->mv_x, 0, (size_t)g->max_cols_pad)) != 0 ||
        (r = g->cu.MemcpyHtoD(g->mv_x, x, (size_t)mx->cols)) != 0 ||
        (r = g->cu.LaunchKernel(g->matrix[index], grid, 1, 1, 32u * (unsigned)gm->cta_warps, 1, 1, 0, g->stream,
                                g->fused ? group_args : plain_args, NULL)) != 0 ||
        (r = g->cu.StreamSynchronize(g->stream)) != 0 ||
        (r = g->cu.MemcpyDtoH(y, g->mv_y, 4 * (size_t)rt_gpu_kernel_rows(g->a, index))) != 0)
        return ERR(RSR_ERR_DEVICE, "%s: matrix %d (%s, kernel %s): %s", g->name, index, mx->name, gm->kernel,
                   rt_cuda_error(&g->cu, r));
    return RSR_OK;
}

rsr_status rt_gpu_matmul_int(const rsr_model *m, int32_t index, const int8_t *x, int32_t ntok, int32_t *y) {
    const rsr_artifact_matrix *mx = &m->a->matrix[index];
    for (int32_t t = 0; t < ntok; t++) {
        rsr_status st =
            rt_gpu_matvec_int(m->dev, index, x + (size_t)t * (size_t)mx->cols,
                              y + (size_t)t * (size_t)rt_gpu_kernel_rows(m->a, index), ((rsr_model *)m)->err);
        if (st != RSR_OK) return st;
    }
    return RSR_OK;
}

rsr_status rt_gpu_model_open(rsr_model *m, char *why) {
    rt_gpu *g = NULL;
    rsr_status st = rt_gpu_open(m->a, &g, why);
    m->dev = g;
    if (st == RSR_OK) snprintf(m->device, sizeof m->device, "%s", g->name);
    return st;
}

void rt_gpu_model_close(rsr_model *m) {
    rt_gpu_close(m->dev);
    m->dev = NULL;
}
