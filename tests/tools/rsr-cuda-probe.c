/*
 * rsr-cuda-probe — is there a usable GPU? Loads the CUDA driver the way the runtime does
 * (cuda/runtime/cuda_driver.c) and prints the first device's architecture and name:
 *
 *   sm_90 NVIDIA H100 80GB HBM3
 *
 * Exit 0 with a device, 77 (the test suite's "skipped") without a driver or device.
 */
#include <stdio.h>

#include "cuda_driver.h"

int main(void) {
    rt_cuda cu;
    char err[512];
    if (rt_cuda_load(&cu, err, sizeof err) != 0) {
        fprintf(stderr, "rsr-cuda-probe: %s\n", err);
        return 77;
    }
    int count = 0, major = 0, minor = 0;
    CUdevice dev;
    char name[128] = "?";
    if (cu.DeviceGetCount(&count) != 0 || count == 0 || cu.DeviceGet(&dev, 0) != 0) {
        fprintf(stderr, "rsr-cuda-probe: a CUDA driver but no device\n");
        return 77;
    }
    cu.DeviceGetName(name, sizeof name, dev);
    cu.DeviceGetAttribute(&major, RSR_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    cu.DeviceGetAttribute(&minor, RSR_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    printf("sm_%d%d %s\n", major, minor, name);
    rt_cuda_unload(&cu);
    return 0;
}
