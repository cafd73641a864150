/* fuzz_safetensors.c — the safetensors reader (header length, JSON header, dtypes, shapes,
 * offsets, overlap) on a file of fuzz bytes. Every tensor it accepts is read at both ends. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[128];
    if (!path[0]) snprintf(path, sizeof path, "%s/model.safetensors", fuzz_scratch());
    fuzz_write(path, data, size);
    FUZZ_GUARDED({
        st_archive *a = st_open(path);
        volatile float sink = 0;
        for (int i = 0; i < a->ntensors; i++) {
            const st_tensor *t = &a->tensors[i];
            uint64_t n = t->nbytes / (t->dtype == ST_F32 ? 4 : t->dtype == ST_U8 || t->dtype == ST_I8 ? 1 : 2);
            if (n) sink += st_get_f32(t, 0) + st_get_f32(t, (int64_t)n - 1);
            if (st_find(a, t->name) != t) __builtin_trap();
        }
        (void)sink;
        st_close(a);
    });
    return 0;
}
