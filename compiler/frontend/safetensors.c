/*
 * safetensors.c — a strict reader for safetensors checkpoints.
 *
 * Files are memory-mapped and never copied. Every header field is checked before use: the
 * header length against the file, each dtype, shape and data_offsets pair against the data
 * block, and tensors against each other (no overlap, no duplicate names across shards).
 */
#include <ctype.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rsrc.h"
#include "rsr_blocks.h"
#include "rsr_numerics.h"
#include "utf8.h"

#define MAX_HEADER_BYTES (100u << 20) /* far above any real checkpoint's header */

static const struct {
    const char *name;
    enum st_dtype dtype;
    unsigned size;
} dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"U8", ST_U8, 1}, {"I8", ST_I8, 1},
};

int32_t st_block_dtype(enum st_dtype t) {
    switch (t) {
    case ST_Q1_0: return RSR_DTYPE_Q1_0;
    case ST_Q2_0: return RSR_DTYPE_Q2_0;
    case ST_PQ2_0: return RSR_DTYPE_PQ2_0;
    case ST_PTQ1_0: return RSR_DTYPE_PTQ1_0;
    default: return -1;
    }
}

const char *st_dtype_name(enum st_dtype t) {
    static const char *blocks[] = {"Q1_0", "Q2_0", "PQ2_0", "PTQ1_0"}; /* not safetensors' names: GGUF's */
    if (st_block_dtype(t) >= 0) return blocks[t - ST_Q1_0];
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

/* Reads a small text file whole (config.json, a shard index). */
static char *read_text_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) rsrc_fatal("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            if (cap >= MAX_HEADER_BYTES) {
                free(buf);
                fclose(f);
                rsrc_fatal("%s: file is larger than %u bytes", path, MAX_HEADER_BYTES);
            }
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) free(buf);
            buf = bigger;
        }
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf) rsrc_fatal("%s: out of memory reading it", path);
    if (err) {
        free(buf);
        rsrc_fatal("%s: read error: %s", path, strerror(err));
    }
    *len = n;
    return buf;
}

/* Where text stops being UTF-8 (an overlong form, a surrogate, a stray continuation byte, a
 * code point past U+10FFFF, or a sequence cut short), or len when all of it is. */
static size_t utf8_invalid_at(const char *text, size_t len) {
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        const int n = utf8_scan((const unsigned char *)text + i, len - i, &cp);
        if (n <= 0) return i;
        i += (size_t)n;
    }
    return len;
}

static int by_key(const void *a, const void *b) {
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* JSON leaves the meaning of a repeated key to the reader; cJSON would take the first one
 * silently. A checkpoint whose header or config says two things is refused instead. */
static void json_check_unique_keys(const char *path, const cJSON *node) {
    int n = 0;
    for (const cJSON *c = node->child; c; c = c->next) {
        n++;
        if (cJSON_IsObject(c) || cJSON_IsArray(c)) json_check_unique_keys(path, c);
    }
    if (!cJSON_IsObject(node) || n < 2) return;
    cJSON **keys = malloc(sizeof *keys * (size_t)n);
    if (!keys) rsrc_fatal("%s: out of memory checking keys", path);
    int i = 0;
    for (cJSON *c = node->child; c; c = c->next) keys[i++] = c;
    qsort(keys, (size_t)n, sizeof *keys, by_key);
    for (i = 1; i < n; i++)
        if (strcmp(keys[i]->string, keys[i - 1]->string) == 0) {
            char key[128];
            snprintf(key, sizeof key, "%s", keys[i]->string);
            free(keys);
            rsrc_fatal("%s: duplicate key '%s'", path, key);
        }
    free(keys);
}

static void delete_json(void *root) { cJSON_Delete(root); }

/* Parses a JSON document; names the file and byte offset of a syntax error. UTF-8 only, and
 * no key twice in one object. */
cJSON *parse_json_file(const char *path);
cJSON *parse_json_file(const char *path) {
    size_t len;
    char *text = read_text_file(path, &len);
    size_t bad = utf8_invalid_at(text, len);
    if (bad < len) {
        free(text);
        rsrc_fatal("%s: not valid UTF-8 at byte %zu", path, bad);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    size_t at = end ? (size_t)(end - text) : 0;
    free(text);
    if (!root) rsrc_fatal("%s: invalid JSON near byte %zu", path, at);
    rsrc_arena *ar = rsrc_arena_open();
    rsrc_arena_own(ar, delete_json, root);
    json_check_unique_keys(path, root);
    rsrc_arena_disown(ar, root);
    rsrc_arena_close(ar);
    return root;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

typedef struct span {
    uint64_t begin, end;
    const char *name;
} span;
static int by_begin(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* An integer in [0, max] stored as a JSON number (cJSON keeps numbers as doubles, exact up
 * to 2^53: far beyond any real size or offset). */
static bool json_uint(const cJSON *v, double max, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= max) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

/* Checks one header entry and appends it; `data` is the file's data block. */
static void add_tensor(st_archive *a, const char *path, const cJSON *e, const uint8_t *data, uint64_t data_size) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) rsrc_fatal("%s: tensor '%s': entry is not an object", path, name);
    cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd)) rsrc_fatal("%s: tensor '%s': missing or non-string 'dtype'", path, name);
    if (!cJSON_IsArray(js)) rsrc_fatal("%s: tensor '%s': missing or non-array 'shape'", path, name);
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        rsrc_fatal("%s: tensor '%s': 'data_offsets' must be [begin, end]", path, name);
    for (const cJSON *f = e->child; f; f = f->next)
        if (strcmp(f->string, "dtype") && strcmp(f->string, "shape") && strcmp(f->string, "data_offsets"))
            rsrc_fatal("%s: tensor '%s': unknown field '%s' (dtype, shape, data_offsets)", path, name, f->string);
    st_tensor t = {0};
    bool known = false;
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (strcmp(jd->valuestring, dtypes[i].name) == 0) t.dtype = dtypes[i].dtype, known = true;
    if (!known)
        rsrc_fatal("%s: tensor '%s': unsupported dtype '%s' (expected F32, F16, BF16, U8 or I8)", path, name,
                   jd->valuestring);
    unsigned esize = dtype_size(t.dtype);
    t.ndim = cJSON_GetArraySize(js);
    if (t.ndim > 4) rsrc_fatal("%s: tensor '%s': %d dimensions, at most 4 supported", path, name, t.ndim);
    /* The element count is bounded by the bytes the file holds, so no product can overflow. */
    uint64_t count = 1;
    for (int i = 0; i < t.ndim; i++) {
        uint64_t dim;
        if (!json_uint(cJSON_GetArrayItem(js, i), 9.0e15, &dim))
            rsrc_fatal("%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
        t.shape[i] = (int64_t)dim;
        if (dim && count > data_size / esize / dim)
            count = UINT64_MAX;
        else
            count *= dim;
    }
    uint64_t begin, stop;
    if (!json_uint(cJSON_GetArrayItem(jo, 0), 1.8e19, &begin) || !json_uint(cJSON_GetArrayItem(jo, 1), 1.8e19, &stop))
        rsrc_fatal("%s: tensor '%s': data_offsets are not non-negative integers", path, name);
    if (begin > stop)
        rsrc_fatal("%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", path, name,
                   (unsigned long long)begin, (unsigned long long)stop);
    if (stop > data_size)
        rsrc_fatal("%s: tensor '%s': data_offsets [%llu, %llu] leave the data block (%llu bytes)", path, name,
                   (unsigned long long)begin, (unsigned long long)stop, (unsigned long long)data_size);
    if (count == UINT64_MAX)
        rsrc_fatal("%s: tensor '%s': its shape has more elements than the file's %llu data bytes hold", path, name,
                   (unsigned long long)data_size);
    if (count * esize != stop - begin)
        rsrc_fatal("%s: tensor '%s': %llu bytes in data_offsets but shape x %s needs %llu", path, name,
                   (unsigned long long)(stop - begin), jd->valuestring, (unsigned long long)(count * esize));
    /* Writers place each tensor at a multiple of its element size; anything else is damage. */
    if (begin % esize)
        rsrc_fatal("%s: tensor '%s': data_offsets begin %llu is not a multiple of the %s element size (%u bytes)", path,
                   name, (unsigned long long)begin, jd->valuestring, esize);
    t.data = data + begin;
    t.nbytes = stop - begin;
    t.file = a->files[a->nfiles - 1].path;
    t.name = xstrdup(name);
    a->tensors = xrealloc(a->tensors, sizeof *a->tensors * (size_t)(a->ntensors + 1));
    a->tensors[a->ntensors++] = t;
}

/* Maps one .safetensors file and appends its tensors to the archive. */
static void load_file(st_archive *a, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) rsrc_fatal("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    const char *why = NULL;
    if (fstat(fd, &sb) != 0)
        why = strerror(errno);
    else if (!S_ISREG(sb.st_mode))
        why = "not a regular file";
    else if (sb.st_size < 8)
        why = "truncated";
    if (why) {
        close(fd);
        if (strcmp(why, "truncated") == 0)
            rsrc_fatal("%s: truncated: %lld bytes, not even the 8-byte header length", path, (long long)sb.st_size);
        rsrc_fatal("%s: %s", path, why);
    }
    size_t size = (size_t)sb.st_size;
    uint8_t *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) rsrc_fatal("%s: cannot map: %s", path, strerror(map_errno));

    a->files = xrealloc(a->files, sizeof *a->files * (size_t)(a->nfiles + 1));
    a->files[a->nfiles++] = (struct st_mapped){NULL, map, size}; /* owned by the archive from here */
    a->files[a->nfiles - 1].path = xstrdup(path);

    if (!memcmp(map, "GGUF", 4))
        rsrc_fatal(
            "%s: a GGUF file (llama.cpp's format) where a safetensors shard was expected: give rsrc the GGUF file "
            "itself",
            path);
    if (!memcmp(map, "PK\x03\x04", 4) || (map[0] == 0x80 && map[1] >= 2 && map[1] <= 5))
        rsrc_fatal(
            "%s: PyTorch's pickle format (%s), not safetensors: rsrc does not read it (loading it would run Python "
            "code from the file): save the model as safetensors (in transformers, "
            "model.save_pretrained(DIR, safe_serialization=True))",
            path, map[0] == 'P' ? "a zip archive, as torch.save writes" : "a bare pickle");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | map[i];
    if (hlen > size - 8)
        rsrc_fatal("%s: header length %llu runs past the end of the file (%zu bytes)", path, (unsigned long long)hlen,
                   size);
    if (hlen > MAX_HEADER_BYTES)
        rsrc_fatal("%s: header length %llu is absurdly large (the limit is %u bytes)", path, (unsigned long long)hlen,
                   MAX_HEADER_BYTES);
    if (hlen < 2) rsrc_fatal("%s: header of %llu bytes cannot hold a JSON object", path, (unsigned long long)hlen);
    size_t bad = utf8_invalid_at((const char *)map + 8, hlen);
    if (bad < hlen) rsrc_fatal("%s: header is not valid UTF-8 at byte %zu", path, (size_t)8 + bad);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)map + 8, hlen, &end, false);
    if (!root) {
        size_t at = end ? (size_t)(end - (const char *)map) : 8;
        rsrc_fatal("%s: header is not valid JSON (near byte %zu)", path, at);
    }
    rsrc_arena *ar = rsrc_arena_open();
    rsrc_arena_own(ar, delete_json, root);
    if (!cJSON_IsObject(root)) rsrc_fatal("%s: header is not a JSON object", path);
    json_check_unique_keys(path, root);

    const uint8_t *data = map + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;
    int first = a->ntensors;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) add_tensor(a, path, e, data, data_size);

    /* No two tensors of this file may share bytes: each must begin at or after the furthest end
     * of those before it (empty tensors occupy nothing). */
    int n = a->ntensors - first;
    span *spans = rsrc_arena_alloc(ar, sizeof *spans * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        const st_tensor *t = &a->tensors[first + i];
        spans[i] = (span){(uint64_t)(t->data - data), (uint64_t)(t->data - data) + t->nbytes, t->name};
    }
    qsort(spans, (size_t)n, sizeof *spans, by_begin);
    const span *reach = NULL;
    for (int i = 0; i < n; i++) {
        if (spans[i].end == spans[i].begin) continue;
        if (reach && spans[i].begin < reach->end)
            rsrc_fatal("%s: tensors '%s' and '%s' overlap in the data block", path, reach->name, spans[i].name);
        if (!reach || spans[i].end > reach->end) reach = &spans[i];
    }
    rsrc_arena_close(ar);
}

char *st_dir_of(const char *path) {
    char *copy = xstrdup(path);
    char *d = xstrdup(dirname(copy));
    free(copy);
    return d;
}

typedef struct name_list {
    char **v;
    int n;
} name_list;
static void free_name_list(void *p) {
    name_list *l = p;
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

void st_sort_and_check(st_archive *a, const char *path) {
    if (a->ntensors > 1) qsort(a->tensors, (size_t)a->ntensors, sizeof *a->tensors, by_name);
    for (int i = 1; i < a->ntensors; i++)
        if (strcmp(a->tensors[i].name, a->tensors[i - 1].name) == 0)
            rsrc_fatal("%s: tensor '%s' appears twice (in %s and %s)", path, a->tensors[i].name, a->tensors[i - 1].file,
                       a->tensors[i].file);
}

/* A shard index names the files; every tensor it maps must be in the file it names, and every
 * tensor of those files must be in the map. */
static void load_index(st_archive *a, const char *index_path) {
    rsrc_arena *ar = rsrc_arena_open();
    cJSON *root = parse_json_file(index_path);
    rsrc_arena_own(ar, delete_json, root);
    cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) rsrc_fatal("%s: no 'weight_map' object", index_path);
    name_list loaded = {0};
    rsrc_arena_own(ar, free_name_list, &loaded);
    cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e)) rsrc_fatal("%s: weight_map['%s'] is not a file name", index_path, e->string);
        const char *file = e->valuestring;
        if (strchr(file, '/') || strcmp(file, "..") == 0 || strcmp(file, ".") == 0 || !*file)
            rsrc_fatal("%s: weight_map['%s'] = '%s' is not a file name in this directory", index_path, e->string, file);
        bool seen = false;
        for (int i = 0; i < loaded.n; i++) seen |= strcmp(loaded.v[i], file) == 0;
        if (!seen) {
            loaded.v = xrealloc(loaded.v, sizeof *loaded.v * (size_t)(loaded.n + 1));
            loaded.v[loaded.n] = xstrdup(file);
            loaded.n++;
            load_file(a, rsrc_arena_printf(ar, "%s/%s", a->dir, file));
        }
    }
    if (loaded.n == 0) rsrc_fatal("%s: 'weight_map' is empty", index_path);
    st_sort_and_check(a, index_path);
    cJSON_ArrayForEach(e, map) {
        const st_tensor *t = st_find(a, e->string);
        if (!t)
            rsrc_fatal("%s: tensor '%s' is mapped to '%s' but that file does not contain it", index_path, e->string,
                       e->valuestring);
        const char *base = strrchr(t->file, '/');
        if (strcmp(base ? base + 1 : t->file, e->valuestring) != 0)
            rsrc_fatal("%s: tensor '%s' is mapped to '%s' but found in '%s'", index_path, e->string, e->valuestring,
                       t->file);
    }
    for (int i = 0; i < a->ntensors; i++)
        if (!cJSON_GetObjectItemCaseSensitive(map, a->tensors[i].name))
            rsrc_fatal("%s: tensor '%s' of %s is not in the weight_map", index_path, a->tensors[i].name,
                       a->tensors[i].file);
    rsrc_arena_close(ar);
}

static void close_archive(void *a) { st_close(a); }

/* What a directory without model.safetensors or its index holds instead: a GGUF file, PyTorch's
 * pickled weights, or safetensors shards (model-00001-of-00003.safetensors, ...) whose index is
 * missing. */
typedef struct dir_contents {
    char *gguf, *pickle; /* a file of each kind, or NULL */
    int nggufs;
    char **shards; /* the shards' names, sorted */
    int nshards;
} dir_contents;

static bool shard_name(const char *name, long *k, long *of) {
    size_t n = strlen(name);
    if (n < 12 || strcmp(name + n - 12, ".safetensors")) return false;
    const char *dash = NULL;
    for (const char *p = name; (p = strstr(p, "-of-")); p++) dash = p; /* the last "-of-" */
    if (!dash) return false;
    const char *start = dash;
    while (start > name && isdigit((unsigned char)start[-1])) start--;
    char *end;
    *k = strtol(start, NULL, 10), *of = strtol(dash + 4, &end, 10);
    return start < dash && end != dash + 4 && !strcmp(end, ".safetensors") && *k >= 1 && *k <= *of;
}

static dir_contents scan_dir(rsrc_arena *ar, const char *dir) {
    dir_contents c = {0};
    DIR *d = opendir(dir);
    long k, of;
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *nm = e->d_name;
        size_t n = strlen(nm);
        if (n > 5 && !strcmp(nm + n - 5, ".gguf") && c.nggufs++ == 0) c.gguf = rsrc_arena_printf(ar, "%s", nm);
        if (((n > 4 && !strcmp(nm + n - 4, ".bin")) || (n > 3 && !strcmp(nm + n - 3, ".pt")) ||
             (n > 4 && !strcmp(nm + n - 4, ".pth"))) &&
            !c.pickle)
            c.pickle = rsrc_arena_printf(ar, "%s", nm);
        if (shard_name(nm, &k, &of)) {
            c.shards = xrealloc(c.shards, sizeof *c.shards * (size_t)(c.nshards + 1));
            c.shards[c.nshards++] = rsrc_arena_printf(ar, "%s", nm);
        }
    }
    if (d) closedir(d);
    if (c.shards) rsrc_arena_own(ar, free, c.shards);
    if (c.nshards) qsort(c.shards, (size_t)c.nshards, sizeof *c.shards, rsrc_cmp_names);
    return c;
}

/* Shards without an index: all of them, 1 to N of N, one set; then read like an index would. */
static void load_shards(st_archive *a, rsrc_arena *ar, const char *dir, const dir_contents *c) {
    long k0, of0;
    shard_name(c->shards[0], &k0, &of0);
    for (int i = 0; i < c->nshards; i++) {
        long k, of;
        shard_name(c->shards[i], &k, &of);
        if (of != of0 || k != i + 1)
            rsrc_fatal("%s: no model.safetensors.index.json, and the shards do not make one set of %ld: %s is %s "
                       "(expected shard %d of %ld)",
                       dir, of0, c->shards[i], k != i + 1 ? "out of place or a shard is missing" : "of another set",
                       i + 1, of0);
    }
    if (c->nshards != of0)
        rsrc_fatal("%s: no model.safetensors.index.json, and only %d of the %ld shards are here (%s is the last)", dir,
                   c->nshards, of0, c->shards[c->nshards - 1]);
    rsrc_note(1, "%s: no model.safetensors.index.json: reading its %d shards (%s ...)", dir, c->nshards, c->shards[0]);
    for (int i = 0; i < c->nshards; i++) load_file(a, rsrc_arena_printf(ar, "%s/%s", dir, c->shards[i]));
}

static noreturn void no_checkpoint(const char *dir, const dir_contents *c) {
    if (c->gguf) /* several (one is read: st_lone_gguf) */
        rsrc_fatal("%s: no model.safetensors or model.safetensors.index.json in this directory, and %d GGUF files (%s, "
                   "...): give rsrc the one to compile",
                   dir, c->nggufs, c->gguf);
    if (c->pickle)
        rsrc_fatal("%s: no model.safetensors or model.safetensors.index.json in this directory; it holds %s, PyTorch's "
                   "pickle format, which rsrc does not read (loading it would run Python code from the file): save the "
                   "model as safetensors (in transformers, model.save_pretrained(DIR, safe_serialization=True))",
                   dir, c->pickle);
    rsrc_fatal("%s: no model.safetensors or model.safetensors.index.json in this directory", dir);
}

char *st_lone_gguf(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return NULL;
    rsrc_arena *ar = rsrc_arena_open();
    char *r = NULL;
    if (access(rsrc_arena_printf(ar, "%s/model.safetensors.index.json", path), F_OK) != 0 &&
        access(rsrc_arena_printf(ar, "%s/model.safetensors", path), F_OK) != 0) {
        dir_contents c = scan_dir(ar, path);
        if (c.nggufs == 1 && !c.nshards) r = xasprintf("%s/%s", path, c.gguf);
    }
    rsrc_arena_close(ar);
    return r;
}

st_archive *st_open(const char *path) {
    rsrc_arena *ar = rsrc_arena_open();
    st_archive *a = xcalloc(1, sizeof *a);
    rsrc_arena_own(ar, close_archive, a); /* the result, released if the load fails */
    a->path = xstrdup(path);
    struct stat sb;
    if (stat(path, &sb) != 0) rsrc_fatal("%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        a->dir = xstrdup(path);
        char *index = rsrc_arena_printf(ar, "%s/model.safetensors.index.json", path);
        char *single = rsrc_arena_printf(ar, "%s/model.safetensors", path);
        if (access(index, R_OK) == 0)
            load_index(a, index);
        else if (access(single, R_OK) == 0)
            load_file(a, single);
        else {
            dir_contents c = scan_dir(ar, path);
            if (!c.nshards) no_checkpoint(path, &c);
            load_shards(a, ar, path, &c);
        }
    } else {
        a->dir = st_dir_of(path);
        if (ends_with(path, ".index.json"))
            load_index(a, path);
        else
            load_file(a, path);
    }
    st_sort_and_check(a, path);
    rsrc_arena_disown(ar, a);
    rsrc_arena_close(ar);
    return a;
}

const st_tensor *st_find(const st_archive *a, const char *name) {
    st_tensor key = {.name = (char *)name};
    if (!a->ntensors) return NULL; /* bsearch of a NULL array is undefined even for 0 elements */
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
    case ST_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    case ST_F16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        return rsr_f16_to_f32(h);
    }
    case ST_BF16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        return rsr_bf16_to_f32(h);
    }
    case ST_U8: return (float)p[i];
    case ST_I8: return (float)(int8_t)p[i];
    default: { /* a group-scaled block's element: its block decoded */
        const int32_t dt = st_block_dtype(t->dtype);
        const uint32_t qk = rsr_block_weights(dt);
        const uint8_t *blk = p + (uint64_t)i / qk * rsr_block_bytes(dt);
        uint8_t codes[128];
        rsr_block_codes(dt, blk, codes);
        return rsr_block_scale(dt, blk) * (float)((int)codes[i % qk] - 1);
    }
    }
}

/* Drops the mapped pages of a tensor that has been consumed: the compiler streams the model
 * one tensor at a time, and without this every page it has read would stay in its resident
 * set until exit (the mapping is private and read-only, so the pages come back from the page
 * cache if the tensor is read again). */
void st_release_bytes(const uint8_t *data, uint64_t n) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !n) return;
    uintptr_t begin = ((uintptr_t)data + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t end = ((uintptr_t)data + n) & ~((uintptr_t)page - 1);
    if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

void st_release(const st_tensor *t) { st_release_bytes(t->data, t->nbytes); }
