/*
 * gguf.c — llama.cpp's GGUF container (versions 2 and 3), read into what the rest of rsrc reads:
 * an st_archive of tensors under their Hugging Face names, and the model's configuration.
 *
 * The file is memory-mapped and every count, length, offset, type and dimension is checked
 * against it before it is used: the format is hostile input (fuzz/fuzz_gguf.c). Layout (all
 * little-endian): "GGUF", u32 version, u64 tensor count, u64 metadata count; the metadata, each a
 * string key, a u32 value type and the value (strings are u64 length + bytes; arrays a u32
 * element type, a u64 count and the elements); the tensor infos, each a name, u32 dimensions,
 * u64 sizes (innermost first), u32 ggml type and a u64 offset; then, at the next multiple of
 * general.alignment (32 when absent), the data, each tensor at its offset from there.
 *
 * Weights. The ternary matrices come as bitnet.cpp's I2_S (2-bit codes 0/1/2 for -1/0/+1, 128
 * weights in 32 bytes, code j of a group at bits 6-2*(j/32) of byte j%32, then one f32 scale
 * after all the codes), or ggml's TQ2_0 (blocks of 256: 64 bytes of 2-bit codes, element
 * 128*h + 32*n + m at bits 2n of byte 32*h + m, then an f16 scale) or TQ1_0 (blocks of 256: 48
 * bytes of five base-3 digits each, 4 bytes of four, an f16 scale; digit n of byte q is
 * ((uint8)(q*3^n) * 3) >> 8). rsrc's kernels take one scale per matrix: every TQ block with a
 * non-zero weight must carry the same scale (a ternary model's blocks all hold ±beta), else the
 * matrix is refused naming the block. Each becomes the packed U8 form of the Hugging Face
 * checkpoints (four rows per byte) with a "_scale" tensor, so checkpoint.c reads it unchanged.
 * Group-scaled weights (llama.cpp's, 2026): Q1_0 (blocks of 128: an f16 scale d, then 16 bytes,
 * bit j%8 of byte j/8 set for +d, clear for -d) and Q2_0 (blocks of 64: an f16 scale d, then 16
 * bytes, the 2-bit code c of element j at bits 2(j%4) of byte j/4, value (c - 1)·d: -1, 0, +1, +2)
 * keep their scales: packed codes (code 3 is +2) and a "_group_scale" tensor, f32 [rows][blocks].
 * PrismML's (Bonsai 2; PrismML-Eng/llama.cpp's ggml-common.h, restated in ggml-org/llama.cpp #29058):
 * PQ2_0 (type 142, blocks of 128: an f16 scale, then 32 bytes of Q2_0's codes) and PTQ1_0 (type 143,
 * blocks of 128: 24 bytes of five base-3 digits, 2 of four, then an f16 scale; element 16n + m is
 * digit n of byte m, 80 + 8n + m digit n of byte 16 + m, 120 + 2n + h digit n of byte 24 + h, digits
 * decoded as TQ1_0's, value digit - 1) are read the same way. PrismML's legacy files store PQ2_0's
 * blocks under Q2_0's id 42: such a tensor is told by its bytes (gguf_open, legacy_pq2).
 * Embeddings, norms and the head: F32, F16 and BF16 in place; Q8_0 (blocks of 32: an f16 scale,
 * 32 int8) and Q6_K (blocks of 256: 128 bytes of low 4 bits, 64 of high 2 bits, 16 int8 scales
 * of 16 weights each, an f16 scale; weight 128h + 32k + l has its low bits in byte
 * 64h + l + 32(k&1), high nibble when k >= 2, its high bits at bits 2k of byte 32h + l, its scale
 * at 8h + 2k + l/16) widened to f32 as ggml does. For the "llama" architecture, whose RoPE llama.cpp computes on
 * adjacent pairs, its converter stores the Q and K projections with the rows of each head
 * interleaved (row 2i+s of a head was row s*d/2+i); they are put back. The bitnet architectures
 * keep the checkpoint's order (llama.cpp rotates them as NEOX does, as the checkpoints do).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rsr_numerics.h"
#include "rsrc.h"

static const char *const value_names[GGUF_NUM_VALUE_TYPES] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                                              "bool", "string", "array", "u64", "i64", "f64"};
static const int value_size[GGUF_NUM_VALUE_TYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* ggml tensor types: elements per block and bytes per block (I2_S: see gguf_tensor_bytes) */
static const struct {
    int type, block, bytes;
    const char *name;
} types[] = {
    {0, 1, 4, "F32"},       {1, 1, 2, "F16"},        {2, 32, 18, "Q4_0"},      {3, 32, 20, "Q4_1"},
    {6, 32, 22, "Q5_0"},    {7, 32, 24, "Q5_1"},     {8, 32, 34, "Q8_0"},      {9, 32, 36, "Q8_1"},
    {10, 256, 84, "Q2_K"},  {11, 256, 110, "Q3_K"},  {12, 256, 144, "Q4_K"},   {13, 256, 176, "Q5_K"},
    {14, 256, 210, "Q6_K"}, {15, 256, 292, "Q8_K"},  {24, 1, 1, "I8"},         {25, 1, 2, "I16"},
    {26, 1, 4, "I32"},      {27, 1, 8, "I64"},       {28, 1, 8, "F64"},        {30, 1, 2, "BF16"},
    {34, 256, 54, "TQ1_0"}, {35, 256, 66, "TQ2_0"},  {36, 128, 32, "I2_S"},    {41, 128, 18, "Q1_0"},
    {42, 64, 18, "Q2_0"},   {142, 128, 34, "PQ2_0"}, {143, 128, 28, "PTQ1_0"},
};
static int type_index(uint32_t t) {
    for (int i = 0; i < (int)(sizeof types / sizeof *types); i++)
        if ((uint32_t)types[i].type == t) return i;
    return -1;
}
const char *gguf_type_name(uint32_t t) {
    int i = type_index(t);
    return i >= 0 ? types[i].name : "unknown";
}

/* ggml's names of the types rsrc does not read, so that a refusal can say which one a file holds. */
static const char *other_type_name(uint32_t t) {
    static const char *const names[] = {
        [2] = "Q4_0",     [3] = "Q4_1",    [6] = "Q5_0",     [7] = "Q5_1",   [9] = "Q8_1",
        [10] = "Q2_K",    [11] = "Q3_K",   [12] = "Q4_K",    [13] = "Q5_K",  [15] = "Q8_K",
        [16] = "IQ2_XXS", [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S", [20] = "IQ4_NL",
        [21] = "IQ3_S",   [22] = "IQ2_S",  [23] = "IQ4_XS",  [24] = "I8",    [25] = "I16",
        [26] = "I32",     [27] = "I64",    [28] = "F64",     [29] = "IQ1_M", [39] = "MXFP4"};
    return t < sizeof names / sizeof *names && names[t] ? names[t] : NULL;
}

/* ---- the container ---- */

static int offset_cmp(const void *a, const void *b) {
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* PrismML's legacy files store PQ2_0's blocks of 128 (34 bytes) under id 42, upstream's Q2_0 (blocks
 * of 64, 18 bytes): a tensor of type 42 whose Q2_0 bytes do not fit before the next tensor (or the
 * end of the data) while PQ2_0's do is read as PQ2_0, and said so. */
static void legacy_pq2(gguf_file *g) {
    uint64_t *starts = xmalloc(sizeof *starts * (size_t)g->ntensors), room = g->size - g->data_offset;
    for (uint64_t i = 0; i < g->ntensors; i++) starts[i] = g->tensors[i].offset;
    qsort(starts, (size_t)g->ntensors, sizeof *starts, offset_cmp);
    for (uint64_t i = 0; i < g->ntensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (t->type != GGML_Q2_0 || t->ne[0] % 128 || t->offset > room) continue;
        uint64_t lo = 0, hi = g->ntensors; /* the first start past this tensor's */
        while (lo < hi) {
            uint64_t mid = (lo + hi) / 2;
            if (starts[mid] <= t->offset)
                lo = mid + 1;
            else
                hi = mid;
        }
        const uint64_t span = (lo < g->ntensors ? starts[lo] : room) - t->offset, pq2 = t->nbytes / 18 * 17;
        if (t->nbytes > span && pq2 <= span) {
            rsrc_note(1,
                      "%s: tensor '%s': type 42 holds PQ2_0's blocks of 128 (PrismML's legacy id): its %" PRIu64
                      " bytes are not Q2_0's %" PRIu64,
                      g->path, t->name, pq2, t->nbytes);
            t->type = GGML_PQ2_0, t->nbytes = pq2;
        }
    }
    free(starts);
}

static char *xstrndup(const char *s, size_t n) {
    char *r = xmalloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

bool gguf_is(const char *path) {
    char magic[4];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool yes = read(fd, magic, 4) == 4 && !memcmp(magic, "GGUF", 4);
    close(fd);
    return yes;
}

typedef struct cursor {
    const gguf_file *g;
    uint64_t at;
} cursor;

static void need(cursor *c, uint64_t n, const char *what) {
    if (n > c->g->size || c->at > c->g->size - n)
        rsrc_fatal("%s: truncated: %s at byte %" PRIu64 " needs %" PRIu64 " bytes, the file has %zu", c->g->path, what,
                   c->at, n, c->g->size);
}
static uint64_t rd(cursor *c, int bytes, const char *what) {
    need(c, (uint64_t)bytes, what);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | c->g->map[c->at + (uint64_t)i];
    c->at += (uint64_t)bytes;
    return v;
}
/* a string: its bytes in the map (not terminated) and length */
static const char *rd_str(cursor *c, uint64_t *len, const char *what) {
    *len = rd(c, 8, what);
    need(c, *len, what);
    const char *s = (const char *)c->g->map + c->at;
    c->at += *len;
    return s;
}

/* a value of type t: scalars into v, strings and arrays by place and count */
static void rd_value(cursor *c, uint32_t t, gguf_value *v, const char *key, bool in_array) {
    v->type = t;
    if (t >= GGUF_NUM_VALUE_TYPES)
        rsrc_fatal("%s: metadata '%s': value type %u is not a GGUF type", c->g->path, key, t);
    if (t == GGUF_STR) {
        v->str = rd_str(c, &v->len, key);
        return;
    }
    if (t == GGUF_ARR) {
        if (in_array)
            rsrc_fatal("%s: metadata '%s': an array of arrays, which GGUF readers do not take", c->g->path, key);
        v->atype = (uint32_t)rd(c, 4, key);
        if (v->atype >= GGUF_NUM_VALUE_TYPES)
            rsrc_fatal("%s: metadata '%s': element type %u is not a GGUF type", c->g->path, key, v->atype);
        v->n = rd(c, 8, key);
        v->first = c->at;
        if (v->atype == GGUF_ARR) rsrc_fatal("%s: metadata '%s': an array of arrays is not supported", c->g->path, key);
        if (v->atype == GGUF_STR) { /* walked (each has its length), at least 8 bytes each */
            if (v->n > (c->g->size - c->at) / 8)
                rsrc_fatal("%s: metadata '%s': %" PRIu64 " strings cannot fit in the %" PRIu64 " bytes left",
                           c->g->path, key, v->n, (uint64_t)(c->g->size - c->at));
            for (uint64_t i = 0; i < v->n; i++) {
                uint64_t len;
                rd_str(c, &len, key);
            }
        } else {
            uint64_t sz = (uint64_t)value_size[v->atype];
            if (v->n > (c->g->size - c->at) / sz)
                rsrc_fatal("%s: metadata '%s': %" PRIu64 " elements of %s run past the end of the file", c->g->path,
                           key, v->n, value_names[v->atype]);
            c->at += v->n * sz;
        }
        return;
    }
    uint64_t raw = rd(c, value_size[t], key);
    switch (t) {
    case GGUF_I8: v->i = (int8_t)raw; break;
    case GGUF_I16: v->i = (int16_t)raw; break;
    case GGUF_I32: v->i = (int32_t)raw; break;
    case GGUF_I64: v->i = (int64_t)raw; break;
    case GGUF_F32: {
        float f;
        uint32_t u = (uint32_t)raw;
        memcpy(&f, &u, 4);
        v->f = f;
        break;
    }
    case GGUF_F64: memcpy(&v->f, &raw, 8); break;
    default: v->u = raw; break; /* unsigned and bool */
    }
    if (t == GGUF_I8 || t == GGUF_I16 || t == GGUF_I32 || t == GGUF_I64)
        v->f = (double)v->i, v->u = (uint64_t)v->i;
    else if (t != GGUF_F32 && t != GGUF_F64)
        v->f = (double)v->u, v->i = (int64_t)v->u;
}

static uint64_t tensor_bytes(const gguf_file *g, const gguf_tensor *t) {
    int k = type_index(t->type);
    if (k < 0) {
        const char *name = other_type_name(t->type);
        rsrc_fatal(
            "%s: tensor '%s': ggml type %u%s%s%s is not one rsrc reads (ternary and binary weights: I2_S, TQ1_0, "
            "TQ2_0, Q1_0, Q2_0, PQ2_0, PTQ1_0; beside them F32, F16, BF16, Q8_0, Q6_K)",
            g->path, t->name, t->type, name ? " (" : "", name ? name : "", name ? ")" : "");
    }
    if (t->type == GGML_I2_S) { /* groups of 128 run through the whole tensor, not per row */
        if (t->ndim > 2 || t->ne[0] > UINT64_MAX / t->ne[1] || t->ne[0] * t->ne[1] % 128)
            rsrc_fatal("%s: tensor '%s': I2_S holds whole groups of 128 weights in at most 2 dimensions", g->path,
                       t->name);
        return t->ne[0] * t->ne[1] / 4 + 32; /* the f32 scale after the codes, padded to 32 bytes */
    }
    if (t->ne[0] % (uint64_t)types[k].block)
        rsrc_fatal("%s: tensor '%s': %" PRIu64 " elements per row is not a multiple of the %s block of %d", g->path,
                   t->name, t->ne[0], types[k].name, types[k].block);
    uint64_t n = t->ne[0] / (uint64_t)types[k].block * (uint64_t)types[k].bytes;
    for (uint32_t d = 1; d < t->ndim; d++) {
        if (t->ne[d] && n > UINT64_MAX / t->ne[d]) rsrc_fatal("%s: tensor '%s': its size overflows", g->path, t->name);
        n *= t->ne[d];
    }
    return n;
}

static void close_gguf(void *g) { gguf_close(g); }

gguf_file *gguf_open(const char *path) {
    rsrc_arena *ar = rsrc_arena_open();
    gguf_file *g = xcalloc(1, sizeof *g);
    rsrc_arena_own(ar, close_gguf, g);
    g->path = xstrdup(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) rsrc_fatal("%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 24) {
        close(fd);
        rsrc_fatal("%s: not a GGUF file (%s)", path,
                   S_ISREG(sb.st_mode) ? "shorter than its 24-byte header" : "not a file");
    }
    g->size = (size_t)sb.st_size;
    g->map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (g->map == MAP_FAILED) g->map = NULL, rsrc_fatal("%s: cannot map: %s", path, strerror(e));
    if (memcmp(g->map, "GGUF", 4)) rsrc_fatal("%s: not a GGUF file (no GGUF magic)", path);
    cursor c = {g, 4};
    g->version = (uint32_t)rd(&c, 4, "the version");
    if (g->version != 2 && g->version != 3)
        rsrc_fatal("%s: GGUF version %u; rsrc reads versions 2 and 3", path, g->version);
    g->ntensors = rd(&c, 8, "the tensor count");
    g->nkv = rd(&c, 8, "the metadata count");
    /* each metadata entry takes at least 13 bytes, each tensor info at least 32 */
    if (g->nkv > g->size / 13 || g->ntensors > g->size / 32)
        rsrc_fatal("%s: %" PRIu64 " metadata entries and %" PRIu64 " tensors cannot fit in %zu bytes", path, g->nkv,
                   g->ntensors, g->size);
    g->kv = xcalloc(g->nkv ? g->nkv : 1, sizeof *g->kv);
    g->alignment = 32;
    for (uint64_t i = 0; i < g->nkv; i++) {
        uint64_t len;
        const char *k = rd_str(&c, &len, "a metadata key");
        if (len == 0 || len > 65535)
            rsrc_fatal("%s: metadata entry %" PRIu64 ": a key of %" PRIu64 " bytes", path, i, len);
        g->kv[i].key = xstrndup(k, (size_t)len);
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->kv[j].key, g->kv[i].key)) rsrc_fatal("%s: metadata '%s' appears twice", path, g->kv[i].key);
        rd_value(&c, (uint32_t)rd(&c, 4, g->kv[i].key), &g->kv[i].v, g->kv[i].key, false);
        if (!strcmp(g->kv[i].key, "general.alignment")) {
            const gguf_value *v = &g->kv[i].v;
            if (v->type != GGUF_U32 || v->u == 0 || (v->u & (v->u - 1)) || v->u > 65536)
                rsrc_fatal("%s: general.alignment must be a u32 power of two up to 65536", path);
            g->alignment = v->u;
        }
    }
    g->tensors = xcalloc(g->ntensors ? g->ntensors : 1, sizeof *g->tensors);
    for (uint64_t i = 0; i < g->ntensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        uint64_t len;
        const char *nm = rd_str(&c, &len, "a tensor name");
        if (len == 0 || len > 255) rsrc_fatal("%s: tensor %" PRIu64 ": a name of %" PRIu64 " bytes", path, i, len);
        t->name = xstrndup(nm, (size_t)len);
        t->ndim = (uint32_t)rd(&c, 4, t->name);
        if (t->ndim > 4)
            rsrc_fatal("%s: tensor '%s': %u dimensions (0 to 4)", path, t->name, t->ndim); /* 0: a scalar */
        for (uint32_t d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->ndim; d++) {
            t->ne[d] = rd(&c, 8, t->name);
            if (t->ne[d] == 0 || t->ne[d] > (1ull << 40))
                rsrc_fatal("%s: tensor '%s': dimension %u is %" PRIu64, path, t->name, d, t->ne[d]);
        }
        t->type = (uint32_t)rd(&c, 4, t->name);
        t->offset = rd(&c, 8, t->name);
        t->nbytes = tensor_bytes(g, t);
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->tensors[j].name, t->name)) rsrc_fatal("%s: tensor '%s' appears twice", path, t->name);
    }
    g->data_offset = (c.at + g->alignment - 1) / g->alignment * g->alignment;
    if (g->data_offset > g->size && g->ntensors)
        rsrc_fatal("%s: the data section at byte %" PRIu64 " is past the end of the file", path, g->data_offset);
    if (g->ntensors && g->data_offset <= g->size) legacy_pq2(g);
    for (uint64_t i = 0; i < g->ntensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        uint64_t room = g->size - g->data_offset;
        if (t->offset % g->alignment)
            rsrc_fatal("%s: tensor '%s': offset %" PRIu64 " is not a multiple of the alignment %" PRIu64, path, t->name,
                       t->offset, g->alignment);
        if (t->offset > room || t->nbytes > room - t->offset)
            rsrc_fatal("%s: tensor '%s': %" PRIu64 " bytes at offset %" PRIu64 " run past the end of the data (%" PRIu64
                       " bytes)",
                       path, t->name, t->nbytes, t->offset, room);
        t->data = g->map + g->data_offset + t->offset;
    }
    rsrc_arena_disown(ar, g);
    rsrc_arena_close(ar);
    return g;
}

void gguf_close(gguf_file *g) {
    if (!g) return;
    if (g->map) munmap(g->map, g->size);
    for (uint64_t i = 0; g->kv && i < g->nkv; i++) free(g->kv[i].key);
    for (uint64_t i = 0; g->tensors && i < g->ntensors; i++) free(g->tensors[i].name);
    free(g->kv), free(g->tensors), free(g->path), free(g);
}

const gguf_value *gguf_get(const gguf_file *g, const char *key) {
    for (uint64_t i = 0; i < g->nkv; i++)
        if (!strcmp(g->kv[i].key, key)) return &g->kv[i].v;
    return NULL;
}

const gguf_tensor *gguf_find(const gguf_file *g, const char *name) {
    for (uint64_t i = 0; i < g->ntensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

const char *gguf_next_str(const gguf_file *g, uint64_t *at, uint64_t *len) {
    cursor c = {g, *at};
    const char *s = rd_str(&c, len, "a string");
    *at = c.at;
    return s;
}

int32_t gguf_array_i32(const gguf_file *g, const gguf_value *v, uint64_t i) {
    int32_t x;
    memcpy(&x, g->map + v->first + 4 * i, 4);
    return x;
}

float gguf_array_f32(const gguf_file *g, const gguf_value *v, uint64_t i) {
    float x;
    memcpy(&x, g->map + v->first + 4 * i, 4);
    return x;
}

static void print_value(FILE *out, const gguf_file *g, const gguf_value *v) {
    switch (v->type) {
    case GGUF_STR:
        fprintf(out, "\"%.*s%s\"", (int)(v->len > 120 ? 120 : v->len), v->str, v->len > 120 ? "..." : "");
        break;
    case GGUF_ARR:
        fprintf(out, "[%s × %" PRIu64 "]", value_names[v->atype], v->n);
        if (v->atype == GGUF_STR && v->n) {
            uint64_t len, at = v->first;
            const char *s = gguf_next_str(g, &at, &len);
            fprintf(out, " \"%.*s\", ...", (int)(len > 40 ? 40 : len), s);
        }
        break;
    case GGUF_F32:
    case GGUF_F64: fprintf(out, "%g", v->f); break;
    case GGUF_BOOL: fputs(v->u ? "true" : "false", out); break;
    case GGUF_I8:
    case GGUF_I16:
    case GGUF_I32:
    case GGUF_I64: fprintf(out, "%" PRId64, v->i); break;
    default: fprintf(out, "%" PRIu64, v->u); break;
    }
}

void gguf_print(const gguf_file *g, FILE *out) {
    fprintf(out,
            "gguf %s: version %u, %" PRIu64 " metadata entries, %" PRIu64 " tensors, alignment %" PRIu64
            ", data at byte %" PRIu64 "\n",
            g->path, g->version, g->nkv, g->ntensors, g->alignment, g->data_offset);
    for (uint64_t i = 0; i < g->nkv; i++) {
        fprintf(out, "  %-44s %-6s ", g->kv[i].key, value_names[g->kv[i].v.type]);
        print_value(out, g, &g->kv[i].v);
        fputc('\n', out);
    }
    for (uint64_t i = 0; i < g->ntensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        fprintf(out, "  tensor %-40s %-6s [", t->name, gguf_type_name(t->type));
        for (uint32_t d = 0; d < t->ndim; d++) fprintf(out, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
        fprintf(out, "] %" PRIu64 " bytes at %" PRIu64 "\n", t->nbytes, t->offset);
    }
}
