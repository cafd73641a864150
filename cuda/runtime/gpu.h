/*
 * gpu.h — the runtime's GPU device (rt_device_gpu, its entry of rt_devices) between its two files: a
 * model opened on the GPU (gpu_model.c) and sessions whose tokens run entirely on the device (gpu_forward.c).
 * Everything returns an rsr_status with the message in err (RSR_ERRMSG_SIZE bytes).
 */
#ifndef RSR_CUDA_GPU_H
#define RSR_CUDA_GPU_H

#include <stdbool.h>

#include "cuda_driver.h"
#include "internal.h"
#include "rsr_gpu_call.h"
#include "rsr_gpu_entries.h"

typedef struct rt_gpu {
    rt_cuda cu;
    const rsr_artifact *a;
    CUdevice dev;
    CUcontext ctx;
    CUstream stream;
    CUmodule module[RSR_GPU_MAX_MODULES];
    int32_t num_modules;
    CUdeviceptr blob;   /* the artifact's constant data, uploaded once */
    CUfunction *matrix; /* [num_matrices]: its group entry (NVRTC) or its own entry (LLVM NVPTX) */
    bool fused;         /* group entries (rsr_gpu_call.h), else one entry per matrix */
#define RSR_GPU_FIELD(n) CUfunction n;
    RSR_GPU_ENTRIES(RSR_GPU_FIELD) /* the runtime's own entries (rsr_gpu_entries.h) */
    CUdeviceptr mv_x, mv_y;        /* rsr_model_matvec_int scratch */
    int32_t max_cols_pad, max_rows, sms;
    char name[192]; /* "gpu 0: NVIDIA H100 80GB HBM3 (sm_90, driver 13.0)" */
} rt_gpu;

typedef struct rt_gpu_session rt_gpu_session;

/* Matrix i's int32 sums on the GPU: its rows, or with scales per group units · planes · rows, the
 * planes those of its GPU kernel (rsr_artifact_gpu_matrix.planes), `rows` apart. */
static inline int64_t rt_gpu_kernel_rows(const rsr_artifact *a, int32_t i) {
    return rt_sums_rows(&a->matrix[i], a->gpu->matrix[i].planes, a->matrix[i].rows);
}

/* The device's entry of rt_devices (gpu_forward.c) and its model's part (gpu_model.c). */
extern const rt_device rt_device_gpu;
rsr_status rt_gpu_model_open(rsr_model *m, char *why);
void rt_gpu_model_close(rsr_model *m);
rsr_status rt_gpu_matmul_int(const rsr_model *m, int32_t index, const int8_t *x, int32_t ntok, int32_t *y);

rsr_status rt_gpu_open(const rsr_artifact *a, rt_gpu **out, char *err);
void rt_gpu_close(rt_gpu *g);
rsr_status rt_gpu_matvec_int(rt_gpu *g, int32_t index, const int8_t *x, int32_t *y, char *err);

rsr_status rt_gpu_session_create(rt_gpu *g, int32_t max_positions, rt_gpu_session **out, char *err);
void rt_gpu_session_free(rt_gpu_session *s);
/* Tokens at positions pos, pos+1, ...; the logits of the last one (vocab floats) when logits is
 * not NULL, its greedy token when argmax is not NULL (8 bytes from the device, not the logits).
 * One synchronisation with the device per call. */
rsr_status rt_gpu_eval(rt_gpu_session *s, int32_t pos, const int32_t *tokens, int32_t n, float *logits, int32_t *argmax,
                       char *err);

#endif
