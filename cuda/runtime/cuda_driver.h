/*
 * cuda_driver.h — the CUDA driver API, loaded at run time with dlopen (cuda_driver.c), so the
 * runtime builds and runs its CPU path on machines without a GPU, a driver or CUDA headers.
 * Only what the runtime calls is declared, with the driver's own types reduced to their ABI.
 */
#ifndef RSR_CUDA_DRIVER_H
#define RSR_CUDA_DRIVER_H

#include <stddef.h>
#include <stdint.h>

typedef int CUresult; /* 0: CUDA_SUCCESS */
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef unsigned long long CUdeviceptr;

enum {
    RSR_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    RSR_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    RSR_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
    RSR_CU_JIT_INFO_LOG_BUFFER = 3,
    RSR_CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4,
    RSR_CU_JIT_ERROR_LOG_BUFFER = 5,
    RSR_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
    RSR_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
};

/* The entry points, by the names the driver exports (CUDA 12/13 headers map cuMemAlloc to
 * cuMemAlloc_v2 and so on; those versioned names are what dlsym must be asked for). */
typedef struct rt_cuda {
    void *lib;
    int driver_version;
    CUresult (*Init)(unsigned);
    CUresult (*DriverGetVersion)(int *);
    CUresult (*GetErrorString)(CUresult, const char **);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*DevicePrimaryCtxRelease)(CUdevice);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*ModuleLoadDataEx)(CUmodule *, const void *, unsigned, int *, void **);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*ModuleUnload)(CUmodule);
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
    CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
    CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
    CUresult (*MemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
    CUresult (*MemsetD8)(CUdeviceptr, unsigned char, size_t);
    CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                             void **, void **);
    CUresult (*StreamCreate)(CUstream *, unsigned);
    CUresult (*StreamDestroy)(CUstream);
    CUresult (*StreamSynchronize)(CUstream);
    /* CUDA graphs: optional (NULL when the driver lacks them; launches then go one by one) */
    CUresult (*StreamBeginCapture)(CUstream, int);
    CUresult (*StreamEndCapture)(CUstream, CUgraph *);
    CUresult (*GraphInstantiate)(CUgraphExec *, CUgraph, unsigned long long);
    CUresult (*GraphLaunch)(CUgraphExec, CUstream);
    CUresult (*GraphExecDestroy)(CUgraphExec);
    CUresult (*GraphDestroy)(CUgraph);
} rt_cuda;

/* Loads the driver (RSR_LIBCUDA names the library; default libcuda.so.1) and calls cuInit.
 * Returns 0, or -1 with a message in err (errlen bytes) that says what is missing. */
int rt_cuda_load(rt_cuda *cu, char *err, size_t errlen);
void rt_cuda_unload(rt_cuda *cu);
/* "CUDA_ERROR_...: text" for a result, for messages. */
const char *rt_cuda_error(const rt_cuda *cu, CUresult r);

#endif
