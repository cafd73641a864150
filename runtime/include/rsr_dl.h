/*
 * rsr_dl.h — load a compiled model (model.so) at run time and call its C API (rsr.h) through a
 * table of function pointers. Header-only; link with -ldl.
 *
 *     rsr_api api;
 *     char err[512];
 *     if (rsr_api_load(&api, "model.so", err, sizeof err) != 0) { fputs(err, stderr); ... }
 *     rsr_model *m;
 *     api.model_open(&m, NULL);
 */
#ifndef RSR_DL_H
#define RSR_DL_H

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "rsr.h"

typedef struct rsr_api {
    void *handle;
    const char *(*status_to_string)(rsr_status);
    rsr_status (*model_open)(rsr_model **, const rsr_model_params *);
    void (*model_close)(rsr_model *);
    const char *(*model_errmsg)(const rsr_model *);
    rsr_status (*model_get_info)(const rsr_model *, rsr_model_info *);
    rsr_status (*model_matrix_info)(const rsr_model *, int32_t, rsr_matrix_info *);
    rsr_status (*model_matvec_int)(const rsr_model *, int32_t, const int8_t *, int32_t *);
    rsr_status (*session_create)(rsr_model *, const rsr_session_params *, rsr_session **);
    void (*session_free)(rsr_session *);
    const char *(*session_errmsg)(const rsr_session *);
    rsr_status (*session_reset)(rsr_session *);
    int32_t (*session_position)(const rsr_session *);
    rsr_status (*session_eval)(rsr_session *, const int32_t *, int32_t, float *);
    int32_t (*sample_greedy)(const float *, int32_t);
    int32_t (*sample)(const float *, int32_t, const rsr_sampler_params *, uint64_t *, float *, int32_t *);
} rsr_api;

/* dlopen trusts the file: a segment that the program headers place past the end of a truncated
 * file is mapped anyway, and touching it raises SIGBUS. So check first that the file holds
 * every loadable segment it declares. Returns 0, or -1 with a message in err. */
static inline int rsr_api_check_elf(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    Elf64_Ehdr eh;
    const char *why = NULL;
    unsigned long long need = 0;
    long size = -1;
    if (fread(&eh, sizeof eh, 1, f) != 1 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
        why = "not a 64-bit ELF shared object";
    else if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0)
        why = "cannot determine its size";
    for (int i = 0; !why && i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        long at = (long)(eh.e_phoff + (unsigned long long)i * sizeof ph);
        if (fseek(f, at, SEEK_SET) != 0 || fread(&ph, sizeof ph, 1, f) != 1)
            why = "truncated program headers";
        else if (ph.p_type == PT_LOAD && ph.p_offset + ph.p_filesz > need)
            need = ph.p_offset + ph.p_filesz;
    }
    fclose(f);
    if (!why && need > (unsigned long long)size) {
        snprintf(err, errlen, "%s: truncated: %ld bytes, its segments need %llu", path, size, need);
        return -1;
    }
    if (why) snprintf(err, errlen, "%s: %s (is it a model compiled by rsrc?)", path, why);
    return why ? -1 : 0;
}

/* Returns 0, or -1 with a message in err. A path without '/' is taken relative to the current
 * directory (dlopen would search the library path instead). */
static inline int rsr_api_load(rsr_api *api, const char *path, char *err, size_t errlen) {
    char buf[4096];
    memset(api, 0, sizeof *api);
    if (rsr_api_check_elf(path, err, errlen) != 0) return -1;
    snprintf(buf, sizeof buf, "%s%s", strchr(path, '/') ? "" : "./", path);
    api->handle = dlopen(buf, RTLD_NOW | RTLD_LOCAL);
    if (!api->handle) {
        snprintf(err, errlen, "%s: cannot load: %s (is it a model compiled by rsrc?)", path, dlerror());
        return -1;
    }
    static const struct { const char *name; size_t offset; } symbols[] = {
#define RSR_DL_SYMBOL(field) {"rsr_" #field, offsetof(rsr_api, field)}
        RSR_DL_SYMBOL(status_to_string), RSR_DL_SYMBOL(model_open), RSR_DL_SYMBOL(model_close),
        RSR_DL_SYMBOL(model_errmsg), RSR_DL_SYMBOL(model_get_info), RSR_DL_SYMBOL(model_matrix_info),
        RSR_DL_SYMBOL(model_matvec_int), RSR_DL_SYMBOL(session_create), RSR_DL_SYMBOL(session_free),
        RSR_DL_SYMBOL(session_errmsg), RSR_DL_SYMBOL(session_reset), RSR_DL_SYMBOL(session_position),
        RSR_DL_SYMBOL(session_eval), RSR_DL_SYMBOL(sample_greedy), RSR_DL_SYMBOL(sample),
#undef RSR_DL_SYMBOL
    };
    for (size_t i = 0; i < sizeof symbols / sizeof *symbols; i++) {
        void *f = dlsym(api->handle, symbols[i].name);
        if (!f) {
            snprintf(err, errlen, "%s: not an rsrc model: no symbol '%s'", path, symbols[i].name);
            dlclose(api->handle);
            api->handle = NULL;
            return -1;
        }
        memcpy((char *)api + symbols[i].offset, &f, sizeof f);
    }
    return 0;
}

#endif
