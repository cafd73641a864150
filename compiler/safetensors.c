/*
 * safetensors.c — a strict reader for safetensors checkpoints.
 *
 * Files are memory-mapped and never copied. Every header field is checked before use: the
 * header length against the file, each dtype, shape and data_offsets pair against the data
 * block, and tensors against each other (no overlap, no duplicate names across shards).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rsrc.h"
#include "rsr_numerics.h"

#define MAX_HEADER_BYTES (100u << 20) /* far above any real checkpoint's header */

static const struct { const char *name; enum st_dtype dtype; unsigned size; } dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"U8", ST_U8, 1}, {"I8", ST_I8, 1},
};

const char *st_dtype_name(enum st_dtype t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].dtype == t) return dtypes[i].name;
    return "?";
}

static unsigned dtype_size(enum st_dtype t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].dtype == t) return dtypes[i].size;
    return 0;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static char *read_text_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fatal("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            if (cap >= MAX_HEADER_BYTES) fatal("%s: file is larger than %u bytes", path, MAX_HEADER_BYTES);
            buf = xrealloc(buf, cap *= 2);
        }
    }
    if (ferror(f)) fatal("%s: read error: %s", path, strerror(errno));
    fclose(f);
    *len = n;
    return buf;
}

/* Parses a JSON document and names the file and byte offset of a syntax error. */
cJSON *parse_json_file(const char *path);
cJSON *parse_json_file(const char *path) {
    size_t len;
    char *text = read_text_file(path, &len);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        size_t at = end ? (size_t)(end - text) : 0;
        fatal("%s: invalid JSON near byte %zu", path, at);
    }
    free(text);
    return root;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

typedef struct span { uint64_t begin, end; const char *name; } span;
static int by_begin(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Maps one .safetensors file and appends its tensors to the archive. */
static void load_file(st_archive *a, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) fatal("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) fatal("%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) fatal("%s: not a regular file", path);
    size_t size = (size_t)sb.st_size;
    if (size < 8) fatal("%s: truncated: %zu bytes, not even the 8-byte header length", path, size);
    uint8_t *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) fatal("%s: cannot map: %s", path, strerror(errno));
    close(fd);

    a->files = xrealloc(a->files, sizeof *a->files * (size_t)(a->nfiles + 1));
    a->files[a->nfiles++] = (struct st_mapped){xstrdup(path), map, size};
    const char *fname = a->files[a->nfiles - 1].path;

    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | map[i];
    if (hlen > size - 8)
        fatal("%s: header length %llu runs past the end of the file (%zu bytes)", path,
              (unsigned long long)hlen, size);
    if (hlen > MAX_HEADER_BYTES)
        fatal("%s: header length %llu is absurdly large", path, (unsigned long long)hlen);
    if (hlen < 2) fatal("%s: header of %llu bytes cannot hold a JSON object", path, (unsigned long long)hlen);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)map + 8, hlen, &end, false);
    if (!root) {
        size_t at = end ? (size_t)(end - (const char *)map) : 8;
        fatal("%s: header is not valid JSON (near byte %zu)", path, at);
    }
    if (!cJSON_IsObject(root)) fatal("%s: header is not a JSON object", path);

    const uint8_t *data = map + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;
    int first = a->ntensors;
    cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        const char *name = e->string;
        if (!cJSON_IsObject(e)) fatal("%s: tensor '%s': entry is not an object", path, name);
        cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(jd)) fatal("%s: tensor '%s': missing or non-string 'dtype'", path, name);
        if (!cJSON_IsArray(js)) fatal("%s: tensor '%s': missing or non-array 'shape'", path, name);
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
            fatal("%s: tensor '%s': 'data_offsets' must be [begin, end]", path, name);
        st_tensor t = {0};
        t.name = xstrdup(name);
        t.file = fname;
        bool known = false;
        for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
            if (strcmp(jd->valuestring, dtypes[i].name) == 0) t.dtype = dtypes[i].dtype, known = true;
        if (!known)
            fatal("%s: tensor '%s': unsupported dtype '%s' (expected F32, F16, BF16, U8 or I8)", path, name,
                  jd->valuestring);
        t.ndim = cJSON_GetArraySize(js);
        if (t.ndim > 4) fatal("%s: tensor '%s': %d dimensions, at most 4 supported", path, name, t.ndim);
        unsigned __int128 count = 1;
        for (int i = 0; i < t.ndim; i++) {
            cJSON *d = cJSON_GetArrayItem(js, i);
            if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9.0e15 ||
                d->valuedouble != (double)(int64_t)d->valuedouble)
                fatal("%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
            t.shape[i] = (int64_t)d->valuedouble;
            count *= (uint64_t)t.shape[i];
        }
        double ob = cJSON_GetArrayItem(jo, 0)->valuedouble, oe = cJSON_GetArrayItem(jo, 1)->valuedouble;
        if (!cJSON_IsNumber(cJSON_GetArrayItem(jo, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(jo, 1)) ||
            ob < 0 || oe < 0 || ob != (double)(uint64_t)ob || oe != (double)(uint64_t)oe || ob > 1.8e19 || oe > 1.8e19)
            fatal("%s: tensor '%s': data_offsets are not non-negative integers", path, name);
        uint64_t begin = (uint64_t)ob, stop = (uint64_t)oe;
        if (begin > stop) fatal("%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", path, name,
                                (unsigned long long)begin, (unsigned long long)stop);
        if (stop > data_size)
            fatal("%s: tensor '%s': data_offsets [%llu, %llu] leave the data block (%llu bytes)", path, name,
                  (unsigned long long)begin, (unsigned long long)stop, (unsigned long long)data_size);
        unsigned __int128 want = count * dtype_size(t.dtype);
        if (want != stop - begin)
            fatal("%s: tensor '%s': %llu bytes in data_offsets but shape x %s needs %llu", path, name,
                  (unsigned long long)(stop - begin), jd->valuestring, (unsigned long long)want);
        t.data = data + begin;
        t.nbytes = stop - begin;
        a->tensors = xrealloc(a->tensors, sizeof *a->tensors * (size_t)(a->ntensors + 1));
        a->tensors[a->ntensors++] = t;
    }
    cJSON_Delete(root);

    /* No two tensors of this file may share bytes. */
    int n = a->ntensors - first;
    span *spans = xmalloc(sizeof *spans * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        const st_tensor *t = &a->tensors[first + i];
        spans[i] = (span){(uint64_t)(t->data - data), (uint64_t)(t->data - data) + t->nbytes, t->name};
    }
    qsort(spans, (size_t)n, sizeof *spans, by_begin);
    for (int i = 1; i < n; i++)
        if (spans[i].begin < spans[i - 1].end && spans[i].end > spans[i].begin)
            fatal("%s: tensors '%s' and '%s' overlap in the data block", path, spans[i - 1].name, spans[i].name);
    free(spans);
}

static char *dir_of(const char *path) {
    char *copy = xstrdup(path);
    char *d = xstrdup(dirname(copy));
    free(copy);
    return d;
}

/* A shard index names the files; every tensor it maps must be in the file it names. */
static void load_index(st_archive *a, const char *index_path) {
    cJSON *root = parse_json_file(index_path);
    cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) fatal("%s: no 'weight_map' object", index_path);
    char **loaded = NULL;
    int nloaded = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e)) fatal("%s: weight_map['%s'] is not a file name", index_path, e->string);
        const char *file = e->valuestring;
        if (strchr(file, '/') || strcmp(file, "..") == 0 || !*file)
            fatal("%s: weight_map['%s'] = '%s' is not a file name in this directory", index_path, e->string, file);
        bool seen = false;
        for (int i = 0; i < nloaded; i++) seen |= strcmp(loaded[i], file) == 0;
        if (!seen) {
            loaded = xrealloc(loaded, sizeof *loaded * (size_t)(nloaded + 1));
            loaded[nloaded++] = xstrdup(file);
            char *p = xasprintf("%s/%s", a->dir, file);
            load_file(a, p);
            free(p);
        }
    }
    if (nloaded == 0) fatal("%s: 'weight_map' is empty", index_path);
    qsort(a->tensors, (size_t)a->ntensors, sizeof *a->tensors, by_name);
    cJSON_ArrayForEach(e, map) {
        const st_tensor *t = st_find(a, e->string);
        if (!t) fatal("%s: tensor '%s' is mapped to '%s' but that file does not contain it", index_path, e->string,
                      e->valuestring);
        const char *base = strrchr(t->file, '/');
        if (strcmp(base ? base + 1 : t->file, e->valuestring) != 0)
            fatal("%s: tensor '%s' is mapped to '%s' but found in '%s'", index_path, e->string, e->valuestring,
                  t->file);
    }
    for (int i = 0; i < nloaded; i++) free(loaded[i]);
    free(loaded);
    cJSON_Delete(root);
}

st_archive *st_open(const char *path) {
    st_archive *a = xcalloc(1, sizeof *a);
    a->path = xstrdup(path);
    struct stat sb;
    if (stat(path, &sb) != 0) fatal("%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        a->dir = xstrdup(path);
        char *index = xasprintf("%s/model.safetensors.index.json", path);
        char *single = xasprintf("%s/model.safetensors", path);
        if (access(index, R_OK) == 0) load_index(a, index);
        else if (access(single, R_OK) == 0) load_file(a, single);
        else fatal("%s: no model.safetensors or model.safetensors.index.json in this directory", path);
        free(index);
        free(single);
    } else {
        a->dir = dir_of(path);
        if (ends_with(path, ".index.json")) load_index(a, path);
        else load_file(a, path);
    }
    qsort(a->tensors, (size_t)a->ntensors, sizeof *a->tensors, by_name);
    for (int i = 1; i < a->ntensors; i++)
        if (strcmp(a->tensors[i].name, a->tensors[i - 1].name) == 0)
            fatal("%s: tensor '%s' appears twice (in %s and %s)", path, a->tensors[i].name, a->tensors[i - 1].file,
                  a->tensors[i].file);
    return a;
}

const st_tensor *st_find(const st_archive *a, const char *name) {
    st_tensor key = {.name = (char *)name};
    return bsearch(&key, a->tensors, (size_t)a->ntensors, sizeof *a->tensors, by_name);
}

void st_close(st_archive *a) {
    if (!a) return;
    for (int i = 0; i < a->nfiles; i++) {
        munmap(a->files[i].map, a->files[i].size);
        free(a->files[i].path);
    }
    for (int i = 0; i < a->ntensors; i++) free(a->tensors[i].name);
    free(a->files);
    free(a->tensors);
    free(a->dir);
    free(a->path);
    free(a);
}

float st_get_f32(const st_tensor *t, int64_t i) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case ST_F32: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case ST_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return rsr_f16_to_f32(h); }
    case ST_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return rsr_bf16_to_f32(h); }
    case ST_U8: return (float)p[i];
    case ST_I8: return (float)(int8_t)p[i];
    }
    return 0;
}
