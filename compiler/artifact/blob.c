/* blob.c — the artifact's constant data, streamed to a file that the link step embeds. */
#include <errno.h>
#include <inttypes.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rsr_blocks.h"
#include "rsrc.h"

void blob_open(blob_writer *b, const char *path) {
    b->path = xstrdup(path);
    b->f = fopen(path, "wb");
    if (!b->f) rsrc_fatal("%s: cannot create: %s", path, strerror(errno));
    b->size = 0;
    b->checksum = 0;
}

uint64_t blob_write(blob_writer *b, const void *data, size_t n) {
    uint64_t at = b->size;
    if (n && fwrite(data, 1, n, b->f) != n) rsrc_fatal("%s: write failed: %s", b->path, strerror(errno));
    const uint8_t *p = data;
    size_t have = (size_t)(b->size % 8), i = 0;
    if (have) { /* complete the pending word */
        for (; i < n && have + i < 8; i++) b->tail[have + i] = p[i];
        if (have + i == 8) b->checksum = rsr_checksum_add(b->checksum, b->tail, b->size / 8, 1);
    }
    uint64_t index = (b->size + i) / 8;
    size_t words = (n - i) / 8;
    b->checksum = rsr_checksum_add(b->checksum, p + i, index, words);
    memcpy(b->tail, p + i + 8 * words, n - i - 8 * words);
    b->size += n;
    return at;
}

uint64_t blob_checksum(const blob_writer *b) {
    uint8_t last[8] = {0};
    memcpy(last, b->tail, (size_t)(b->size % 8));
    return b->size % 8 ? rsr_checksum_add(b->checksum, last, b->size / 8, 1) : b->checksum;
}

uint64_t blob_align(blob_writer *b, unsigned alignment) {
    static const uint8_t zeros[256];
    while (b->size % alignment) {
        size_t pad = alignment - (size_t)(b->size % alignment);
        blob_write(b, zeros, pad < sizeof zeros ? pad : sizeof zeros);
    }
    return b->size;
}

/* Every element of t finite, or an error naming the tensor and the first bad element (fmaxf and
 * comparisons pass NaN silently, so the check is explicit). */
/* Elements [i0, i1) of t finite, else fatal naming the first that is not. */
static void check_finite_range(const st_tensor *t, int64_t i0, int64_t i1) {
    int64_t cols = t->ndim >= 2 ? t->shape[t->ndim - 1] : 0;
    for (int64_t i = i0; i < i1; i++) {
        float f = st_get_f32(t, i);
        if (isfinite(f)) continue;
        if (cols)
            rsrc_fatal("%s: tensor '%s': %g at row %lld, col %lld is not finite", t->file, t->name, (double)f,
                       (long long)(i / cols), (long long)(i % cols));
        rsrc_fatal("%s: tensor '%s': %g at index %lld is not finite", t->file, t->name, (double)f, (long long)i);
    }
}

static int64_t elements(const st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static void blob_check_finite(const st_tensor *t) { check_finite_range(t, 0, elements(t)); }

uint64_t blob_write_f32_of(blob_writer *b, const st_tensor *t) {
    blob_check_finite(t);
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

/* A tensor copied as stored, a slice at a time (each checked finite first when `finite`), each
 * slice's mapped pages released once written: the embedding (656 MB in 2B-4T) never sits whole
 * in memory. */
static void write_slices(blob_writer *b, const st_tensor *t, bool finite) {
    const int64_t count = elements(t);
    const uint64_t slice = 32u << 20, esize = count ? t->nbytes / (uint64_t)count : 0;
    for (uint64_t done = 0; done < t->nbytes; done += slice) {
        uint64_t n = t->nbytes - done < slice ? t->nbytes - done : slice;
        if (finite && esize) check_finite_range(t, (int64_t)(done / esize), (int64_t)((done + n) / esize));
        blob_write(b, t->data + done, (size_t)n);
        st_release_bytes(t->data + done, n);
    }
}

void blob_close(blob_writer *b) {
    if (b->f && fclose(b->f) != 0) rsrc_fatal("%s: write failed: %s", b->path, strerror(errno));
    b->f = NULL;
    free(b->path);
    b->path = NULL;
}

/* A group-scaled tensor's blocks (st_block_dtype): every scale finite, else fatal naming the block;
 * then as stored, or widened to f32 (`widen`) a slice of rows at a time. */
static uint64_t copy_blocks(blob_writer *b, const st_tensor *t, bool widen, int32_t *dtype) {
    const int32_t dt = st_block_dtype(t->dtype);
    const uint64_t qk = rsr_block_weights(dt), bytes = rsr_block_bytes(dt), cols = (uint64_t)t->shape[1];
    const uint64_t n = (uint64_t)elements(t), row = rsr_dtype_bytes(dt, cols);
    for (uint64_t k = 0; k < n / qk; k++) {
        const float d = rsr_block_scale(dt, t->data + k * bytes);
        if (!isfinite(d))
            rsrc_fatal("%s: tensor '%s': block %" PRIu64 " (row %" PRIu64 ") has scale %g", t->file, t->name, k,
                       k * qk / cols, (double)d);
    }
    const uint64_t at = blob_align(b, 64);
    *dtype = widen ? RSR_DTYPE_F32 : dt;
    if (!widen) {
        write_slices(b, t, false);
        return at;
    }
    float *f = xmalloc(sizeof *f * (size_t)cols);
    for (uint64_t r = 0; r < (uint64_t)t->shape[0]; r++) {
        rsr_blocks_floats(dt, t->data + r * row, (size_t)cols, f);
        blob_write(b, f, sizeof *f * (size_t)cols);
    }
    free(f);
    st_release(t);
    return at;
}

/* An embedding or LM head as stored (f32, f16 or bf16; a GGUF file's group-scaled blocks, as stored
 * or widened to f32 when `widen`), checked finite, 64-byte aligned. */
uint64_t blob_copy_tensor(blob_writer *b, const st_tensor *t, bool widen, int32_t *dtype) {
    if (st_block_dtype(t->dtype) >= 0) return copy_blocks(b, t, widen, dtype);
    switch (t->dtype) {
    case ST_F32: *dtype = RSR_DTYPE_F32; break;
    case ST_F16: *dtype = RSR_DTYPE_F16; break;
    case ST_BF16: *dtype = RSR_DTYPE_BF16; break;
    default: rsrc_fatal("%s: tensor '%s': dtype %s cannot be an embedding", t->file, t->name, st_dtype_name(t->dtype));
    }
    uint64_t at = blob_align(b, 64);
    write_slices(b, t, true); /* checked slice by slice: its pages are read once */
    return at;
}

/* Norm `what` of a layer (layer < 0: the name as given) as f32, its size checked. */
uint64_t blob_norm(blob_writer *b, const rsrc_model *m, int layer, const char *what, int64_t size) {
    char *name = layer < 0 ? xasprintf("%s", what) : xasprintf("model.layers.%d.%s.weight", layer, what);
    uint64_t at = blob_write_f32_of(b, model_require(m, name, 1, size, 0));
    free(name);
    return at;
}
