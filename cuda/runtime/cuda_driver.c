/*
 * cuda_driver.c — dlopen of the CUDA driver and the symbols the runtime uses, by their
 * versioned names. Nothing here needs a GPU to build or to fail cleanly.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_driver.h"

static void *bind(void *lib, const char *name, int required, const char **missing) {
    void *p = dlsym(lib, name);
    if (!p && required && !*missing) *missing = name;
    return p;
}

int rt_cuda_load(rt_cuda *cu, char *err, size_t errlen) {
    memset(cu, 0, sizeof *cu);
    const char *path = getenv("RSR_LIBCUDA");
    if (!path || !*path) path = "libcuda.so.1";
    cu->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!cu->lib) {
        const char *why = dlerror();
        snprintf(err, errlen, "no CUDA driver: cannot load %s (%s); this machine has no NVIDIA driver installed", path,
                 why ? why : "not found");
        return -1;
    }
    const char *missing = NULL;
    void *lib = cu->lib;
#define REQ(field, name) memcpy(&cu->field, &(void *){bind(lib, name, 1, &missing)}, sizeof(void *))
#define OPT(field, name) memcpy(&cu->field, &(void *){bind(lib, name, 0, &missing)}, sizeof(void *))
    REQ(Init, "cuInit");
    REQ(DriverGetVersion, "cuDriverGetVersion");
    REQ(GetErrorString, "cuGetErrorString");
    REQ(DeviceGetCount, "cuDeviceGetCount");
    REQ(DeviceGet, "cuDeviceGet");
    REQ(DeviceGetName, "cuDeviceGetName");
    REQ(DeviceGetAttribute, "cuDeviceGetAttribute");
    REQ(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    REQ(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
    REQ(CtxSetCurrent, "cuCtxSetCurrent");
    REQ(ModuleLoadDataEx, "cuModuleLoadDataEx");
    REQ(ModuleGetFunction, "cuModuleGetFunction");
    REQ(ModuleUnload, "cuModuleUnload");
    REQ(MemAlloc, "cuMemAlloc_v2");
    REQ(MemFree, "cuMemFree_v2");
    REQ(MemcpyHtoD, "cuMemcpyHtoD_v2");
    REQ(MemcpyDtoH, "cuMemcpyDtoH_v2");
    REQ(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    REQ(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
    REQ(MemsetD8, "cuMemsetD8_v2");
    REQ(LaunchKernel, "cuLaunchKernel");
    REQ(StreamCreate, "cuStreamCreate");
    REQ(StreamDestroy, "cuStreamDestroy_v2");
    REQ(StreamSynchronize, "cuStreamSynchronize");
    OPT(StreamBeginCapture, "cuStreamBeginCapture_v2");
    OPT(StreamEndCapture, "cuStreamEndCapture");
    OPT(GraphInstantiate, "cuGraphInstantiateWithFlags");
    OPT(GraphLaunch, "cuGraphLaunch");
    OPT(GraphExecDestroy, "cuGraphExecDestroy");
    OPT(GraphDestroy, "cuGraphDestroy");
#undef REQ
#undef OPT
    if (missing) {
        snprintf(err, errlen, "%s: the CUDA driver lacks %s (too old a driver for this runtime)", path, missing);
        rt_cuda_unload(cu);
        return -1;
    }
    if (!cu->StreamBeginCapture || !cu->StreamEndCapture || !cu->GraphInstantiate || !cu->GraphLaunch ||
        !cu->GraphExecDestroy || !cu->GraphDestroy)
        cu->StreamBeginCapture = NULL; /* graphs need all six */
    CUresult r = cu->Init(0);
    if (r != 0) {
        snprintf(err, errlen, "the CUDA driver (%s) did not initialise: %s", path, rt_cuda_error(cu, r));
        rt_cuda_unload(cu);
        return -1;
    }
    cu->DriverGetVersion(&cu->driver_version);
    return 0;
}

void rt_cuda_unload(rt_cuda *cu) {
    if (cu->lib) dlclose(cu->lib);
    memset(cu, 0, sizeof *cu);
}

const char *rt_cuda_error(const rt_cuda *cu, CUresult r) {
    static __thread char buf[160];
    const char *s = NULL;
    if (cu->GetErrorString) cu->GetErrorString(r, &s);
    snprintf(buf, sizeof buf, "CUDA error %d%s%s", r, s ? ": " : "", s ? s : "");
    return buf;
}
