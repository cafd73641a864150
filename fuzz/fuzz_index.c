/*
 * fuzz_index.c — the shard index (model.safetensors.index.json) over three fixed shards:
 * file names that leave the directory, tensors mapped to the wrong shard or to none, shards
 * that hold tensors the map does not name, the same tensor in two shards.
 */
#include "fuzz_common.h"

/* A safetensors file of tensors [name, dtype, elements], element size 2 (BF16) or 1 (U8). */
static void write_shard(const char *dir, const char *file, const char *const (*t)[2], int n) {
    char header[512] = "{", path[256];
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = strcmp(t[i][1], "U8") == 0 ? 3 : 4;
        snprintf(header + strlen(header), sizeof header - strlen(header),
                 "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}", i ? "," : "", t[i][0],
                 t[i][1], strcmp(t[i][1], "U8") == 0 ? (size_t)3 : (size_t)2, offset, offset + bytes);
        offset += bytes;
    }
    strcat(header, "}");
    size_t hlen = strlen(header);
    uint8_t buf[1024] = {0};
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    fuzz_write(path, buf, 8 + hlen + offset);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char index[160];
    if (!index[0]) {
        const char *dir = fuzz_scratch();
        static const char *const a[][2] = {{"a.x", "BF16"}, {"a.y", "U8"}};
        static const char *const b[][2] = {{"b.z", "BF16"}};
        static const char *const c[][2] = {{"a.x", "BF16"}, {"c.w", "U8"}};
        write_shard(dir, "model-00001-of-00002.safetensors", a, 2);
        write_shard(dir, "model-00002-of-00002.safetensors", b, 1);
        write_shard(dir, "other.safetensors", c, 2);
        snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    }
    fuzz_write(index, data, size);
    FUZZ_GUARDED({
        st_archive *a = st_open(index);
        for (int i = 1; i < a->ntensors; i++)
            if (strcmp(a->tensors[i - 1].name, a->tensors[i].name) >= 0) __builtin_trap();
        st_close(a);
    });
    return 0;
}
