/*
 * rsr_gpu_entries.h — the runtime's own GPU entry points, one table for both sides: the device
 * code defines each as RSR_GPU_ENTRY(name) (kernels.cu) and the host finds each by the same name
 * (cuda/runtime/gpu_model.c, one CUfunction per entry in rt_gpu). rsrc prints this text first,
 * then rsr_gpu_call.h and kernels.cu, at the top of every CUDA module it generates.
 */
#ifndef RSR_GPU_ENTRIES_H
#define RSR_GPU_ENTRIES_H

#define RSR_GPU_ENTRIES(X) X(embed) X(quantize) X(attend) X(dequant) X(glu) X(units) X(lm_head)

#ifdef __CUDACC__
#define RSR_GPU_ENTRY(name) extern "C" __global__ void rsr_##name
#endif

#endif
