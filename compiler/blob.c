/* blob.c — the artifact's constant data, streamed to a file that the link step embeds. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rsrc.h"

void blob_open(blob_writer *b, const char *path) {
    b->path = xstrdup(path);
    b->f = fopen(path, "wb");
    if (!b->f) fatal("%s: cannot create: %s", path, strerror(errno));
    b->size = 0;
    b->checksum = 0;
}

uint64_t blob_write(blob_writer *b, const void *data, size_t n) {
    uint64_t at = b->size;
    if (n && fwrite(data, 1, n, b->f) != n) fatal("%s: write failed: %s", b->path, strerror(errno));
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
            fatal("%s: tensor '%s': %g at row %lld, col %lld is not finite", t->file, t->name, (double)f,
                  (long long)(i / cols), (long long)(i % cols));
        fatal("%s: tensor '%s': %g at index %lld is not finite", t->file, t->name, (double)f, (long long)i);
    }
}

static int64_t elements(const st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

void blob_check_finite(const st_tensor *t) { check_finite_range(t, 0, elements(t)); }

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

/*
 * Row v: scale = max|w|/127 (as the float that is stored), q = round(w/scale) clamped to ±127,
 * err = max|w − scale·q| computed in double (exact for these operands) and rounded up to a
 * float, so the runtime's bound |w − scale·q| <= err holds for every element.
 */
void blob_write_head_q8(blob_writer *b, const st_tensor *head, artifact_desc *d) {
    int32_t vocab = (int32_t)head->shape[0], hidden = (int32_t)head->shape[1];
    int32_t stride = (hidden + RSR_X_PAD - 1) / RSR_X_PAD * RSR_X_PAD;
    float *scale = xmalloc(sizeof *scale * (size_t)vocab), *err = xmalloc(sizeof *err * (size_t)vocab);
    uint8_t *row = xmalloc((size_t)stride);
    d->head_q8_stride = stride;
    d->head_q8 = blob_align(b, 64);
    for (int32_t v = 0; v < vocab; v++) {
        int64_t base = (int64_t)v * hidden;
        float amax = 0;
        for (int32_t i = 0; i < hidden; i++) {
            float w = fabsf(st_get_f32(head, base + i));
            if (!(w <= FLT_MAX)) /* NaN or inf, which fmaxf would pass over */
                fatal("%s: tensor '%s': %g at row %d, col %d is not finite", head->file, head->name,
                      (double)st_get_f32(head, base + i), v, i);
            amax = w > amax ? w : amax;
        }
        float s = amax / 127.0f;
        double e = 0;
        memset(row, 128, (size_t)stride);
        for (int32_t i = 0; i < hidden; i++) {
            float w = st_get_f32(head, base + i);
            double q = s > 0 ? fmin(fmax(nearbyint((double)w / s), -127), 127) : 0;
            row[i] = (uint8_t)(q + 128);
            e = fmax(e, fabs((double)w - (double)s * q));
        }
        float ef = (float)e;
        if ((double)ef < e) ef = nextafterf(ef, INFINITY);
        if (!isfinite(s) || !isfinite(ef))
            fatal("%s: tensor '%s': row %d holds a non-finite value (max |w| = %g)", head->file, head->name, v,
                  (double)amax);
        scale[v] = s, err[v] = ef;
        blob_write(b, row, (size_t)stride);
        if (v % 4096 == 4095 || v == vocab - 1) { /* the rows read so far leave the resident set */
            const uint64_t row_bytes = head->nbytes / (uint64_t)vocab, first = (uint64_t)(v / 4096) * 4096;
            st_release_bytes(head->data + first * row_bytes, ((uint64_t)v + 1 - first) * row_bytes);
        }
    }
    d->head_q8_scale = blob_align(b, 64);
    blob_write(b, scale, sizeof *scale * (size_t)vocab);
    d->head_q8_err = blob_align(b, 64);
    blob_write(b, err, sizeof *err * (size_t)vocab);
    free(scale), free(err), free(row);
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

void blob_write_tensor(blob_writer *b, const st_tensor *t) { write_slices(b, t, false); }

void blob_close(blob_writer *b) {
    if (b->f && fclose(b->f) != 0) fatal("%s: write failed: %s", b->path, strerror(errno));
    b->f = NULL;
    free(b->path);
    b->path = NULL;
}

/* An embedding or LM head as stored (f32, f16 or bf16), checked finite, 64-byte aligned. */
uint64_t blob_copy_tensor(blob_writer *b, const st_tensor *t, int32_t *dtype) {
    switch (t->dtype) {
    case ST_F32: *dtype = RSR_DTYPE_F32; break;
    case ST_F16: *dtype = RSR_DTYPE_F16; break;
    case ST_BF16: *dtype = RSR_DTYPE_BF16; break;
    default: fatal("%s: tensor '%s': dtype %s cannot be an embedding", t->file, t->name, st_dtype_name(t->dtype));
    }
    uint64_t at = blob_align(b, 64);
    write_slices(b, t, true); /* checked slice by slice: its pages are read once */
    return at;
}

/* Norm `what` of a layer (layer < 0: the name as given) as f32, its size checked. */
uint64_t blob_norm(blob_writer *b, const model *m, int layer, const char *what, int64_t size) {
    char *name = layer < 0 ? xasprintf("%s", what) : xasprintf("model.layers.%d.%s.weight", layer, what);
    uint64_t at = blob_write_f32_of(b, model_require(m, name, 1, size, 0));
    free(name);
    return at;
}
