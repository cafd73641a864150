/*
 * printers_runner.c — the kernels of one shared object test_printers built for another
 * architecture, checked on that architecture (under qemu-user): printers_runner KERNELS.so.
 *
 * The object holds what test_printers would check in-process: rsrc_kernel_set (the compiled
 * kernels, rsr_artifact_matrix entries: compiler/kernel_set.h), rsrc_kernel_set_blob (their
 * constant data) and test_matrices (the
 * weights each was compiled from, with a description); printers_check.h runs the same checks.
 * Prints "N passed, N failed" and exits 1 on any failure, 2 when the object cannot be used.
 */
#include <dlfcn.h>
#include <stdio.h>

#include "rsr_artifact.h"

#include "expect.h"
#include "printers_check.h"

typedef struct test_matrix { /* as test_printers writes it */
    const int8_t *w;
    int32_t rows, cols, unit_rows, unit_block;
    const char *what;
} test_matrix;

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: printers_runner KERNELS.so (written by test_printers)\n");
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "printers_runner: %s\n", dlerror());
        return 2;
    }
    const rsr_artifact_matrix *kernels = dlsym(h, "rsrc_kernel_set");
    const uint8_t *const *blob = dlsym(h, "rsrc_kernel_set_blob");
    const test_matrix *mats = dlsym(h, "test_matrices");
    if (!kernels || !blob || !mats) {
        fprintf(stderr, "printers_runner: %s lacks rsrc_kernel_set, rsrc_kernel_set_blob or test_matrices\n", argv[1]);
        return 2;
    }
    int n = 0;
    for (; mats[n].w; n++) {
        const check_matrix m = {mats[n].w, mats[n].rows, mats[n].cols, mats[n].unit_rows, mats[n].unit_block};
        check_kernel(&kernels[n], *blob, &m, mats[n].what);
    }
    printf("%s: %d kernels; %d passed, %d failed\n", argv[1], n, checks - failures, failures);
    dlclose(h);
    return failures ? 1 : 0;
}
