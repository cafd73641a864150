/*
 * mkgguf.c — a GGUF writer for rsr-mkmodel: version 3, little-endian, alignment 32 (the
 * default, also written as general.alignment). The ternary encoders are the inverses of the
 * decoders in compiler/frontend/gguf.c: I2_S packs 128 weights into 32 bytes (code of weight j at bits
 * 6-2*(j/32) of byte j%32) and puts one f32 scale after the codes, in 32 bytes; TQ2_0 blocks of
 * 256 hold 64 bytes of codes (weight 128h + 32n + m at bits 2n of byte 32h + m) and an f16
 * scale; TQ1_0 blocks hold 48 bytes of five base-3 digits and 4 of four (the value v of the
 * digits, most significant first, stored as ceil(v * 256 / 243)) and an f16 scale. The
 * group-scaled types have a scale per block, first: Q2_0 blocks of 64 weights are an f16 scale d
 * and 16 bytes of 2-bit codes (weight j at bits 2*(j%4) of byte j/4, value (code - 1) * d: -1, 0,
 * +1 or +2); Q1_0 blocks of 128 are an f16 d and 16 bytes of signs (bit j%8 of byte j/8 set: +d,
 * clear: -d). A matrix's blocks follow its rows, each row a whole number of them.
 */
#include "mkgguf.h"

#include "rsr_numerics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct kv {
    char *key;
    uint32_t type; /* 4 u32, 6 f32, 7 bool, 8 string, 9 array (of strings or i32) */
    char *s;
    uint32_t u;
    float f;
    uint32_t atype; /* an array's: 8, 5 or 7 (bools, one byte each) */
    char **strs;
    int32_t *ints;
    uint64_t n;
} kv;
typedef struct tensor {
    char *name;
    uint32_t type;
    uint64_t ne0, ne1, ne2, nbytes, offset;
    uint8_t *data;
} tensor;
struct mkg_file {
    kv *kv;
    size_t nkv;
    tensor *t;
    size_t nt;
};

static void *grow(void *p, size_t n) {
    p = realloc(p, n);
    if (!p) {
        fputs("rsr-mkmodel: out of memory\n", stderr);
        exit(1);
    }
    return p;
}
static char *dup(const char *s) { return strcpy(grow(NULL, strlen(s) + 1), s); }

mkg_file *mkg_new(void) { return grow(calloc(1, sizeof(mkg_file)), sizeof(mkg_file)); }

void mkg_free(mkg_file *f) {
    for (size_t i = 0; i < f->nkv; i++) {
        for (uint64_t j = 0; f->kv[i].strs && j < f->kv[i].n; j++) free(f->kv[i].strs[j]);
        free(f->kv[i].key), free(f->kv[i].s), free(f->kv[i].strs), free(f->kv[i].ints);
    }
    for (size_t i = 0; i < f->nt; i++) free(f->t[i].name), free(f->t[i].data);
    free(f->kv), free(f->t), free(f);
}

static kv *add_kv(mkg_file *f, const char *key, uint32_t type) {
    f->kv = grow(f->kv, sizeof *f->kv * (f->nkv + 1));
    kv *k = &f->kv[f->nkv++];
    *k = (kv){.key = dup(key), .type = type};
    return k;
}
void mkg_meta_str(mkg_file *f, const char *key, const char *value) { add_kv(f, key, 8)->s = dup(value); }
void mkg_meta_u32(mkg_file *f, const char *key, uint32_t value) { add_kv(f, key, 4)->u = value; }
void mkg_meta_f32(mkg_file *f, const char *key, float value) { add_kv(f, key, 6)->f = value; }
void mkg_meta_bool(mkg_file *f, const char *key, int value) { add_kv(f, key, 7)->u = value != 0; }
void mkg_meta_strs(mkg_file *f, const char *key, const char *const *values, uint64_t n) {
    kv *k = add_kv(f, key, 9);
    k->atype = 8, k->n = n, k->strs = grow(NULL, sizeof *k->strs * (n ? n : 1));
    for (uint64_t i = 0; i < n; i++) k->strs[i] = dup(values[i]);
}
void mkg_meta_i32s(mkg_file *f, const char *key, const int32_t *values, uint64_t n) {
    kv *k = add_kv(f, key, 9);
    k->atype = 5, k->n = n, k->ints = grow(NULL, sizeof *k->ints * (n ? n : 1));
    memcpy(k->ints, values, sizeof *k->ints * n);
}
void mkg_meta_bools(mkg_file *f, const char *key, const int32_t *values, uint64_t n) {
    mkg_meta_i32s(f, key, values, n);
    f->kv[f->nkv - 1].atype = 7;
}

void mkg_tensor(mkg_file *f, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1, uint8_t *data,
                uint64_t nbytes) {
    f->t = grow(f->t, sizeof *f->t * (f->nt + 1));
    f->t[f->nt++] = (tensor){dup(name), type, ne0, ne1, 1, nbytes, 0, data};
}

void mkg_tensor3(mkg_file *f, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1, uint64_t ne2, uint8_t *data,
                 uint64_t nbytes) {
    mkg_tensor(f, name, type, ne0, ne1, data, nbytes);
    f->t[f->nt - 1].ne2 = ne2;
}

uint8_t *mkg_encode_ternary(uint32_t type, const uint8_t *codes, uint64_t rows, uint64_t cols, float beta,
                            uint16_t beta_f16, uint64_t *nbytes) {
    const uint64_t n = rows * cols;
    if (type == MKG_I2_S) {
        uint8_t *d = grow(calloc(1, n / 4 + 32), n / 4 + 32);
        for (uint64_t e = 0; e < n; e++) d[e / 128 * 32 + e % 32] |= (uint8_t)(codes[e] << (6 - 2 * (e % 128 / 32)));
        memcpy(d + n / 4, &beta, 4);
        *nbytes = n / 4 + 32;
        return d;
    }
    const int tq1 = type == MKG_TQ1_0;
    const uint64_t bytes = tq1 ? 54 : 66, nb = n / 256;
    uint8_t *d = grow(calloc(1, nb * bytes), nb * bytes);
    const uint16_t h = beta_f16;
    for (uint64_t b = 0; b < nb; b++) {
        uint8_t *blk = d + b * bytes;
        const uint8_t *c = codes + b * 256;
        if (!tq1) {
            for (uint64_t e = 0; e < 256; e++) blk[e / 128 * 32 + e % 32] |= (uint8_t)(c[e] << (2 * (e % 128 / 32)));
        } else {
            /* byte m of the first 32 holds weights m, 32+m, ..., 128+m; of the next 16, 160+m,
             * ..., 224+m; byte j of the last 4 holds 240+j, 244+j, 248+j, 252+j and a zero digit */
            for (int m = 0; m < 48; m++) {
                unsigned v = 0;
                for (int k = 0; k < 5; k++) v = v * 3 + c[m < 32 ? 32 * k + m : 160 + 16 * k + (m - 32)];
                blk[m] = (uint8_t)((v * 256 + 242) / 243);
            }
            for (int j = 0; j < 4; j++) {
                unsigned v = 0;
                for (int k = 0; k < 4; k++) v = v * 3 + c[240 + 4 * k + j];
                blk[48 + j] = (uint8_t)((v * 3 * 256 + 242) / 243);
            }
        }
        blk[bytes - 2] = (uint8_t)h, blk[bytes - 1] = (uint8_t)(h >> 8);
    }
    *nbytes = nb * bytes;
    return d;
}

uint8_t *mkg_encode_grouped(uint32_t type, const uint8_t *codes, const uint16_t *scales, uint64_t n, uint64_t *nbytes) {
    const int q1 = type == MKG_Q1_0;
    const uint64_t qk = q1 ? 128 : 64, nb = n / qk;
    uint8_t *d = grow(calloc(1, nb * 18 + 1), nb * 18 + 1);
    for (uint64_t b = 0; b < nb; b++) {
        uint8_t *blk = d + b * 18, *qs = blk + 2;
        const uint8_t *c = codes + b * qk;
        blk[0] = (uint8_t)scales[b], blk[1] = (uint8_t)(scales[b] >> 8);
        for (uint64_t j = 0; j < qk; j++)
            qs[q1 ? j / 8 : j / 4] |= q1 ? (uint8_t)((c[j] == 2) << (j % 8)) : (uint8_t)((c[j] & 3) << (2 * (j % 4)));
    }
    *nbytes = nb * 18;
    return d;
}

uint8_t *mkg_quantize(uint32_t type, const float *x, uint64_t n, uint16_t (*to_f16)(float), uint64_t *nbytes) {
    if (type == MKG_Q8_0) { /* blocks of 32: f16 d, then 32 int8 */
        uint8_t *d = grow(calloc(1, n / 32 * 34), n / 32 * 34 + 1);
        for (uint64_t b = 0; b < n / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + (uint64_t)j]));
            uint16_t h = to_f16(amax / 127);
            float s = rsr_f16_to_f32(h);
            uint8_t *blk = d + b * 34;
            blk[0] = (uint8_t)h, blk[1] = (uint8_t)(h >> 8);
            for (int j = 0; j < 32; j++)
                blk[2 + j] = (uint8_t)(int8_t)(s ? lrintf(fminf(fmaxf(x[b * 32 + (uint64_t)j] / s, -127), 127)) : 0);
        }
        *nbytes = n / 32 * 34;
        return d;
    }
    /* Q6_K, blocks of 256: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16] (one per 16
     * weights), f16 d; weight e = 128h + 32k + l takes its low bits from ql[64h + l + 32(k&1)]
     * (the high nibble when k >= 2), its high bits from bits 2k of qh[32h + l], its scale from
     * scales[8h + 2k + l/16]; value d * scale * (q - 32) */
    uint8_t *d = grow(calloc(1, n / 256 * 210), n / 256 * 210 + 1);
    for (uint64_t b = 0; b < n / 256; b++) {
        const float *xb = x + b * 256;
        uint8_t *ql = d + b * 210, *qh = ql + 128, *sc = qh + 64, *dd = sc + 16;
        float sub[16], smax = 0;
        for (int j = 0; j < 16; j++) {
            float amax = 0;
            for (int i = 0; i < 16; i++) amax = fmaxf(amax, fabsf(xb[16 * j + i]));
            sub[j] = amax / 31, smax = fmaxf(smax, sub[j]);
        }
        uint16_t h = to_f16(smax / 127);
        float db = rsr_f16_to_f32(h);
        dd[0] = (uint8_t)h, dd[1] = (uint8_t)(h >> 8);
        for (int e = 0; e < 256; e++) {
            int hh = e / 128, k = e % 128 / 32, l = e % 32, si = 8 * hh + 2 * k + l / 16;
            int scale = db ? (int)lrintf(fminf(sub[e / 16] / db, 127)) : 0;
            sc[si] = (uint8_t)(int8_t)scale;
            float step = db * (float)scale;
            int q = step ? (int)lrintf(fminf(fmaxf(xb[e] / step, -32), 31)) : 0;
            unsigned u = (unsigned)(q + 32);
            ql[64 * hh + l + 32 * (k & 1)] |= (uint8_t)((u & 15) << (k >= 2 ? 4 : 0));
            qh[32 * hh + l] |= (uint8_t)((u >> 4) << (2 * k));
        }
    }
    *nbytes = n / 256 * 210;
    return d;
}

static int put(FILE *o, const void *p, size_t n) { return fwrite(p, 1, n, o) == n ? 0 : -1; }
static int put_u32(FILE *o, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return put(o, b, 4);
}
static int put_u64(FILE *o, uint64_t v) { return put_u32(o, (uint32_t)v) | put_u32(o, (uint32_t)(v >> 32)); }
static int put_str(FILE *o, const char *s) { return put_u64(o, strlen(s)) | put(o, s, strlen(s)); }

int mkg_write(const mkg_file *f, FILE *o) {
    int err = put(o, "GGUF", 4) | put_u32(o, 3) | put_u64(o, f->nt) | put_u64(o, f->nkv);
    for (size_t i = 0; i < f->nkv; i++) {
        const kv *k = &f->kv[i];
        err |= put_str(o, k->key) | put_u32(o, k->type);
        if (k->type == 8) err |= put_str(o, k->s);
        if (k->type == 4) err |= put_u32(o, k->u);
        if (k->type == 6) err |= put(o, &k->f, 4);
        if (k->type == 7) err |= put(o, &(uint8_t){(uint8_t)k->u}, 1);
        if (k->type == 9) {
            err |= put_u32(o, k->atype) | put_u64(o, k->n);
            for (uint64_t j = 0; j < k->n; j++)
                err |= k->atype == 8   ? put_str(o, k->strs[j])
                       : k->atype == 7 ? put(o, &(uint8_t){(uint8_t)(k->ints[j] != 0)}, 1)
                                       : put_u32(o, (uint32_t)k->ints[j]);
        }
    }
    uint64_t off = 0;
    for (size_t i = 0; i < f->nt; i++) {
        tensor *t = &f->t[i];
        t->offset = off;
        off = (off + t->nbytes + 31) / 32 * 32;
        const uint32_t ndim = t->ne2 > 1 ? 3 : t->ne1 > 1 ? 2 : 1;
        err |= put_str(o, t->name) | put_u32(o, ndim) | put_u64(o, t->ne0);
        if (ndim > 1) err |= put_u64(o, t->ne1);
        if (ndim > 2) err |= put_u64(o, t->ne2);
        err |= put_u32(o, t->type) | put_u64(o, t->offset);
    }
    static const uint8_t zeros[32];
    long at = ftell(o);
    if (at < 0) return -1;
    err |= put(o, zeros, (size_t)((32 - at % 32) % 32));
    for (size_t i = 0; i < f->nt; i++) {
        const tensor *t = &f->t[i];
        err |= put(o, t->data, t->nbytes) | put(o, zeros, (size_t)((32 - t->nbytes % 32) % 32));
    }
    return err ? -1 : 0;
}
