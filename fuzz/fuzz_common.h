/*
 * fuzz_common.h — what the compiler-side fuzzers share: fuzz bytes written to files the
 * loaders open by path, and a rsrc_fatal() that returns to the harness (the loaders release what
 * they hold through the cleanup stack, so a long campaign neither leaks nor runs out of maps).
 * The helpers are inline so that a fuzzer without files (fuzz_hub) may include this for
 * FUZZ_GUARDED alone.
 */
#ifndef RSR_FUZZ_COMMON_H
#define RSR_FUZZ_COMMON_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rsrc.h"

/* A scratch directory for the run, removed at exit. */
static char fuzz_dir[64];
static inline void fuzz_remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0) return;
}
static inline const char *fuzz_scratch(void) {
    if (!fuzz_dir[0]) {
        /* Memory-backed when possible: every input is written to a file and read back. */
        const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/rsrc-fuzz.XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
        if (!mkdtemp(fuzz_dir)) abort();
        atexit(fuzz_remove_dir);
        rsrc_fatal_quiet = getenv("RSRC_FUZZ_VERBOSE") == NULL;
    }
    return fuzz_dir;
}

static inline void fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
}

/* Runs body; a rsrc_fatal() inside it comes back here. */
#define FUZZ_GUARDED(...)                                                                                              \
    do {                                                                                                               \
        jmp_buf fuzz_jb;                                                                                               \
        rsrc_fatal_jump = &fuzz_jb;                                                                                    \
        if (setjmp(fuzz_jb) == 0) {                                                                                    \
            __VA_ARGS__;                                                                                               \
        }                                                                                                              \
        rsrc_fatal_jump = NULL;                                                                                        \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
