/* fuzz_target_spec.c — target specs (YAML): unknown and repeated fields, wrong types, sizes
 * and units, lists, and the --cpu/--features overrides applied on top. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[128];
    if (!path[0]) snprintf(path, sizeof path, "%s/spec.yaml", fuzz_scratch());
    fuzz_write(path, data, size);
    const char *features = size && data[0] & 1 ? "+avx2,-fma" : NULL;
    FUZZ_GUARDED({
        rsrc_target *t = target_load(path, size && data[0] & 2 ? "x86-64-v2" : NULL, features);
        if (!t->name || !t->cflags) __builtin_trap();
        target_free(t);
    });
    return 0;
}
