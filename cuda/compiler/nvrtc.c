/*
 * nvrtc.c — CUDA C to PTX through NVRTC, loaded with dlopen: rsrc builds and compiles CPU
 * targets on machines without the CUDA toolkit, and says what to install when a CUDA target
 * needs it. RSRC_NVRTC names the library explicitly (tests use it to simulate its absence).
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_printer.h"
#include "rsrc.h"

typedef struct nvrtc_program *nvrtc_program;
typedef struct nvrtc_api {
    void *lib;
    const char *(*error_string)(int);
    int (*create)(nvrtc_program *, const char *, const char *, int, const char *const *, const char *const *);
    int (*compile)(nvrtc_program, int, const char *const *);
    int (*ptx_size)(nvrtc_program, size_t *);
    int (*ptx)(nvrtc_program, char *);
    int (*log_size)(nvrtc_program, size_t *);
    int (*log)(nvrtc_program, char *);
    int (*destroy)(nvrtc_program *);
} nvrtc_api;

static void *need(void *lib, const char *path, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) rsrc_fatal("%s: no symbol %s: not a usable NVRTC library", path, name);
    return p;
}

#define BIND(field, name) memcpy(&api->field, &(void *){need(api->lib, path, name)}, sizeof(void *))

static void nvrtc_load(nvrtc_api *api) {
    static const char *const candidates[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so",
                                             "/usr/local/cuda/lib64/libnvrtc.so"};
    const char *forced = getenv("RSRC_NVRTC"), *path = NULL;
    char tried[512] = "";
    memset(api, 0, sizeof *api);
    for (size_t i = 0; !api->lib && i < (forced && *forced ? 1 : sizeof candidates / sizeof *candidates); i++) {
        path = forced && *forced ? forced : candidates[i];
        api->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!api->lib && strlen(tried) + strlen(path) + 3 < sizeof tried)
            strcat(strcat(tried, *tried ? ", " : ""), path);
    }
    if (!api->lib)
        rsrc_fatal(
            "CUDA targets compile through NVRTC, and no NVRTC library could be loaded (tried %s): install the CUDA "
            "toolkit (libnvrtc), or set RSRC_NVRTC to the library; --emit=cuda prints the CUDA C without it",
            tried);
    BIND(error_string, "nvrtcGetErrorString");
    BIND(create, "nvrtcCreateProgram");
    BIND(compile, "nvrtcCompileProgram");
    BIND(ptx_size, "nvrtcGetPTXSize");
    BIND(ptx, "nvrtcGetPTX");
    BIND(log_size, "nvrtcGetProgramLogSize");
    BIND(log, "nvrtcGetProgramLog");
    BIND(destroy, "nvrtcDestroyProgram");
}

/*
 * Compiles the CUDA C in `source` (named `name` in messages) for the spec's architecture into
 * PTX text (NUL-terminated, *size bytes without the NUL). compute_XX is the virtual architecture
 * of sm_XX: the PTX then runs on that GPU and newer ones (the driver JIT-compiles it).
 * --fmad=false keeps every multiply and add separately rounded, as in the CPU runtime.
 */
char *nvrtc_compile(const rsrc_target *t, const char *source, const char *name, size_t *size) {
    nvrtc_api api;
    nvrtc_load(&api);
    nvrtc_program prog;
    int rc = api.create(&prog, source, name, 0, NULL, NULL);
    if (rc) rsrc_fatal("NVRTC: cannot create a program for %s: %s", name, api.error_string(rc));
    char *arch = xasprintf("--gpu-architecture=compute_%d", t->sm);
    const char *opts[] = {arch, "--fmad=false", "--std=c++17", "-default-device"};
    rc = api.compile(prog, 4, opts);
    size_t log_size = 0;
    api.log_size(prog, &log_size);
    char *log = xcalloc(log_size + 1, 1);
    if (log_size) api.log(prog, log);
    if (rc)
        rsrc_fatal("NVRTC failed to compile %s for %s (%s): %s\n%s", name, t->arch, arch, api.error_string(rc), log);
    if (*log && rsrc_verbosity) rsrc_note(1, "NVRTC: %s", log);
    size_t n = 0;
    if ((rc = api.ptx_size(prog, &n)) != 0) rsrc_fatal("NVRTC: no PTX for %s: %s", name, api.error_string(rc));
    char *ptx = xcalloc(n + 1, 1);
    if ((rc = api.ptx(prog, ptx)) != 0) rsrc_fatal("NVRTC: no PTX for %s: %s", name, api.error_string(rc));
    api.destroy(&prog);
    /* NVRTC stays loaded for the rest of the compile: unloading a C++ library strands its
     * runtime's allocations (LeakSanitizer reports them), and the next load would cost again. */
    free(log);
    free(arch);
    *size = strlen(ptx);
    return ptx;
}
