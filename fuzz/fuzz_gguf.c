/* fuzz_gguf.c — the GGUF reader (header, metadata of every type, tensor table, alignment,
 * offsets) and the model read from it (architecture, shapes, names, the I2_S/TQ1_0/TQ2_0
 * decoders, Q8_0), on a file of fuzz bytes; then --print=gguf's listing of what it accepted. */
#include "fuzz_common.h"

static void release_model(void *m) { model_free(m); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[128];
    if (!path[0]) snprintf(path, sizeof path, "%s/model.gguf", fuzz_scratch());
    fuzz_write(path, data, size);
    FUZZ_GUARDED({
        gguf_file *g = gguf_open(path);
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull) gguf_print(g, devnull), fclose(devnull);
        gguf_close(g);
    });
    FUZZ_GUARDED({
        rsrc_model *m = model_load(path);
        rsrc_arena *ar = rsrc_arena_open();
        rsrc_arena_own(ar, release_model, m);
        for (int l = 0; l < m->num_layers; l++)
            for (int j = 0; j < model_layer_matrices(m); j++) {
                int32_t rows, cols;
                int p;
                char *name = model_layer_matrix(m, l, j, &rows, &cols, &p);
                if (!name) continue; /* a DeltaNet layer's empty slot (qwen35) */
                rsrc_arena_own(ar, free, name);
                ternary_matrix t = {0};
                model_load_matrix(m, name, rows, cols, &t);
                if (!(t.beta > 0)) __builtin_trap();
                ternary_matrix_free(&t);
            }
        rsrc_arena_close(ar);
    });
    return 0;
}
