/*
 * fuzz_model.c — config.json and the checkpoint together: architecture and format detection,
 * config ranges, the tensors a model needs, and the unpacking of every ternary matrix.
 * Input: a 2-byte little-endian length, that many bytes of config.json, then model.safetensors.
 */
#include "fuzz_common.h"

static void release_model(void *m) { model_free(m); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[128], cfg[160], st[160];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", fuzz_scratch());
        snprintf(cfg, sizeof cfg, "%s/config.json", dir);
        snprintf(st, sizeof st, "%s/model.safetensors", dir);
    }
    if (size < 2) return 0;
    size_t clen = (size_t)data[0] | (size_t)data[1] << 8;
    if (clen > size - 2) clen = size - 2;
    fuzz_write(cfg, data + 2, clen);
    fuzz_write(st, data + 2 + clen, size - 2 - clen);
    FUZZ_GUARDED({
        rsrc_model *m = model_load(dir);
        rsrc_arena *ar = rsrc_arena_open();
        rsrc_arena_own(ar, release_model, m);
        const int32_t q_out = m->num_heads * m->head_dim, kv_out = m->num_kv_heads * m->head_dim;
        const int32_t out_dim[NUM_PROJ] = {q_out,           kv_out,          kv_out,   m->hidden,
                                           m->intermediate, m->intermediate, m->hidden};
        const int32_t in_dim[NUM_PROJ] = {m->hidden, m->hidden, m->hidden,      q_out,
                                          m->hidden, m->hidden, m->intermediate};
        for (int l = 0; l < m->num_layers; l++)
            for (int p = 0; p < NUM_PROJ; p++) {
                char *name = model_tensor_name(m, l, p);
                rsrc_arena_own(ar, free, name);
                ternary_matrix t = {0};
                model_load_matrix(m, name, out_dim[p], in_dim[p], &t);
                if (!(t.beta > 0)) __builtin_trap();
                ternary_matrix_free(&t);
            }
        rsrc_arena_close(ar);
    });
    return 0;
}
