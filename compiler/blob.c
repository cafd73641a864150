/* blob.c — the artifact's constant data, streamed to a file that the link step embeds. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rsrc.h"

void blob_open(blob_writer *b, const char *path) {
    b->path = xstrdup(path);
    b->f = fopen(path, "wb");
    if (!b->f) fatal("%s: cannot create: %s", path, strerror(errno));
    b->size = 0;
}

uint64_t blob_write(blob_writer *b, const void *data, size_t n) {
    uint64_t at = b->size;
    if (n && fwrite(data, 1, n, b->f) != n) fatal("%s: write failed: %s", b->path, strerror(errno));
    b->size += n;
    return at;
}

uint64_t blob_align(blob_writer *b, unsigned alignment) {
    static const uint8_t zeros[256];
    while (b->size % alignment) {
        size_t pad = alignment - (size_t)(b->size % alignment);
        blob_write(b, zeros, pad < sizeof zeros ? pad : sizeof zeros);
    }
    return b->size;
}

uint64_t blob_write_f32_of(blob_writer *b, const st_tensor *t) {
    uint64_t at = blob_align(b, 64);
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    for (int64_t i = 0; i < n; i++) {
        float f = st_get_f32(t, i);
        blob_write(b, &f, sizeof f);
    }
    st_release(t);
    return at;
}

/* A tensor copied as stored, a slice at a time, each slice's mapped pages released once
 * written: the embedding (656 MB in 2B-4T) never sits whole in memory. */
void blob_write_tensor(blob_writer *b, const st_tensor *t) {
    const uint64_t slice = 32u << 20;
    for (uint64_t done = 0; done < t->nbytes; done += slice) {
        uint64_t n = t->nbytes - done < slice ? t->nbytes - done : slice;
        blob_write(b, t->data + done, (size_t)n);
        st_release_bytes(t->data + done, n);
    }
}

void blob_close(blob_writer *b) {
    if (b->f && fclose(b->f) != 0) fatal("%s: write failed: %s", b->path, strerror(errno));
    b->f = NULL;
    free(b->path);
    b->path = NULL;
}
