/*
 * rsr_gpu_call.h — what a fused matrix launch reads: one struct per call site, in device memory,
 * written once when a session is made. The host (cuda/runtime/gpu_forward.c, C) and the device (this
 * text is printed before cuda/device/kernels.cu into every CUDA module) share it: pointers first,
 * then 4-byte scalars, so C and CUDA C++ lay it out alike.
 *
 * A fused launch runs the matrices of one group (q,k,v / o / gate,up / down of a layer: the
 * matrices that read the same input). Every thread block first makes the group's int8 input
 * itself, in shared memory (in: copied, or RMSNorm + quantisation of a float vector, or the gated
 * activation of gate and up first), then computes the exact int32 sums of its rows and hands
 * them on (out: stored, or dequantised and added to the residual h).
 */
#ifndef RSR_GPU_CALL_H
#define RSR_GPU_CALL_H

#ifdef __CUDACC__
#define RSR_DEV(T) T *
#else
#define RSR_DEV(T) unsigned long long /* CUdeviceptr */
#endif

enum { RSR_IN_INT8 = 0, RSR_IN_FLOAT = 1, RSR_IN_GLU = 2 };
enum { RSR_OUT_INT = 0, RSR_OUT_ADD = 1 };
#define RSR_GROUP_MAX 4 /* matrices in one group */

typedef struct rsr_gpu_call {
    RSR_DEV(const signed char) xq;         /* RSR_IN_INT8: int8 input, zero past n to the group's width */
    RSR_DEV(const float) x;                /* RSR_IN_FLOAT: the float input */
    RSR_DEV(const int) gate;               /* RSR_IN_GLU: the integer sums of gate and up ... */
    RSR_DEV(const int) up;
    RSR_DEV(const float) gate_xs;          /* ... and the x_scale of their input */
    RSR_DEV(const float) gate_f;           /* ... or, with scales per group, rsr_units' sums (else NULL) */
    RSR_DEV(const float) up_f;
    RSR_DEV(const float) norm;             /* RMSNorm weight; NULL: no RMSNorm */
    RSR_DEV(float) xs;                     /* where block 0 writes the input's x_scale; NULL: nowhere */
    RSR_DEV(int) y[RSR_GROUP_MAX];         /* RSR_OUT_INT: each matrix's int32 sums */
    RSR_DEV(float) h;                      /* RSR_OUT_ADD: h[row] += (sum * beta) / x_scale */
    float beta[RSR_GROUP_MAX];
    float eps, bitlinear_eps, beta_gate, beta_up;
    int in, out, n, bitlinear, silu, mask; /* mask: bit j runs matrix j of the group */
} rsr_gpu_call;

#endif
