/*
 * ref.c — the independent naive reference (see ref.h). Deliberately simple: every tensor is
 * read with fread and widened to fp32 (or unpacked to int8 ternary) at load time; the forward
 * pass evaluates one token at a time in the order docs/numerics.md writes down.
 */
#include "ref.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ errors, small helpers */

typedef struct {
    char *err;
    size_t len;
} errbuf;

static int fail(errbuf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(errbuf *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (e->err && e->len) vsnprintf(e->err, e->len, fmt, ap);
    va_end(ap);
    return -1;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *read_text(const char *path, errbuf *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(e, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    for (size_t got; s && (got = fread(s + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) {
                free(s);
                s = NULL;
            } else
                s = t;
        }
    }
    fclose(f);
    if (!s) {
        fail(e, "%s: out of memory", path);
        return NULL;
    }
    s[n] = 0;
    return s;
}

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* ------------------------------------------------------------------ safetensors */

enum { DT_F32, DT_F16, DT_BF16, DT_U8, DT_I8, DT_COUNT };
static const char *const dt_name[DT_COUNT] = {"F32", "F16", "BF16", "U8", "I8"};
static const int dt_size[DT_COUNT] = {4, 2, 2, 1, 1};

typedef struct {
    char *name;
    int dtype, ndim, file;
    uint64_t shape[8], numel, begin, end;
    uint8_t *data;
} tensor;

typedef struct {
    tensor *t;
    int n, cap;
    errbuf *e;
} tensor_set;

static tensor *find_tensor(tensor_set *ts, const char *name) {
    for (int i = 0; i < ts->n; i++)
        if (!strcmp(ts->t[i].name, name)) return &ts->t[i];
    return NULL;
}

static int cmp_begin(const void *a, const void *b) {
    const tensor *x = *(tensor *const *)a, *y = *(tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int read_safetensors(tensor_set *ts, const char *path, int file_id) {
    errbuf *e = ts->e;
    FILE *f = fopen(path, "rb");
    if (!f) return fail(e, "%s: %s", path, strerror(errno));
    int rc = -1, first = ts->n;
    char *text = NULL;
    cJSON *hdr = NULL;
    tensor **order = NULL;
    unsigned char b8[8];
    if (fseeko(f, 0, SEEK_END) != 0) {
        fail(e, "%s: cannot seek", path);
        goto out;
    }
    uint64_t size = (uint64_t)ftello(f), hlen = 0;
    rewind(f);
    if (size < 8 || fread(b8, 1, 8, f) != 8) {
        fail(e, "%s: too short for a safetensors header", path);
        goto out;
    }
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)b8[i] << (8 * i);
    if (hlen > size - 8) {
        fail(e, "%s: header length %llu runs past the end of the file (%llu bytes)", path, (unsigned long long)hlen,
             (unsigned long long)size);
        goto out;
    }
    uint64_t data_start = 8 + hlen, data_len = size - data_start;
    if (!(text = malloc(hlen + 1)) || fread(text, 1, hlen, f) != hlen) {
        fail(e, "%s: cannot read header", path);
        goto out;
    }
    hdr = cJSON_ParseWithLength(text, hlen);
    if (!cJSON_IsObject(hdr)) {
        fail(e, "%s: header is not a JSON object", path);
        goto out;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, hdr) {
        const char *name = it->string;
        if (!strcmp(name, "__metadata__")) continue;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *offs = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) {
            fail(e, "%s: tensor '%s': needs dtype, shape and data_offsets [begin, end]", path, name);
            goto out;
        }
        tensor t = {0};
        t.file = file_id;
        t.dtype = -1;
        for (int d = 0; d < DT_COUNT; d++)
            if (!strcmp(dt->valuestring, dt_name[d])) t.dtype = d;
        if (t.dtype < 0) {
            fail(e, "%s: tensor '%s': unsupported dtype %s (F32, F16, BF16, U8, I8 are accepted)", path, name,
                 dt->valuestring);
            goto out;
        }
        t.ndim = cJSON_GetArraySize(shape);
        if (t.ndim > 8) {
            fail(e, "%s: tensor '%s': %d dimensions", path, name, t.ndim);
            goto out;
        }
        t.numel = 1;
        for (int d = 0; d < t.ndim; d++) {
            if (!json_uint(cJSON_GetArrayItem(shape, d), &t.shape[d])) {
                fail(e, "%s: tensor '%s': shape entries must be non-negative integers", path, name);
                goto out;
            }
            if (t.shape[d] && t.numel > (UINT64_MAX >> 4) / t.shape[d]) {
                fail(e, "%s: tensor '%s': shape too large", path, name);
                goto out;
            }
            t.numel *= t.shape[d];
        }
        if (!json_uint(cJSON_GetArrayItem(offs, 0), &t.begin) || !json_uint(cJSON_GetArrayItem(offs, 1), &t.end) ||
            t.end < t.begin) {
            fail(e, "%s: tensor '%s': bad data_offsets", path, name);
            goto out;
        }
        if (t.end - t.begin != t.numel * dt_size[t.dtype]) {
            fail(e, "%s: tensor '%s': data_offsets span %llu bytes but shape and dtype need %llu", path, name,
                 (unsigned long long)(t.end - t.begin), (unsigned long long)(t.numel * dt_size[t.dtype]));
            goto out;
        }
        if (t.end > data_len) {
            fail(e, "%s: tensor '%s': data [%llu, %llu) leaves the file (data block is %llu bytes)", path, name,
                 (unsigned long long)t.begin, (unsigned long long)t.end, (unsigned long long)data_len);
            goto out;
        }
        if (find_tensor(ts, name)) {
            fail(e, "%s: tensor '%s' appears twice", path, name);
            goto out;
        }
        if (ts->n == ts->cap) {
            int cap = ts->cap ? 2 * ts->cap : 64;
            tensor *nt = realloc(ts->t, cap * sizeof *nt);
            if (!nt) {
                fail(e, "out of memory");
                goto out;
            }
            ts->t = nt, ts->cap = cap;
        }
        if (!(t.name = strdup(name)) || !(t.data = malloc(t.end - t.begin + 1))) {
            free(t.name);
            fail(e, "out of memory");
            goto out;
        }
        ts->t[ts->n++] = t;
    }
    /* No two tensors may share bytes. */
    int cnt = ts->n - first;
    if (!(order = malloc((cnt + 1) * sizeof *order))) {
        fail(e, "out of memory");
        goto out;
    }
    for (int i = 0; i < cnt; i++) order[i] = &ts->t[first + i];
    qsort(order, cnt, sizeof *order, cmp_begin);
    for (int i = 0, last = -1; i < cnt; i++) {
        if (order[i]->end == order[i]->begin) continue; /* empty tensors occupy nothing */
        if (last >= 0 && order[i]->begin < order[last]->end) {
            fail(e, "%s: tensors '%s' and '%s' overlap", path, order[last]->name, order[i]->name);
            goto out;
        }
        if (last < 0 || order[i]->end > order[last]->end) last = i;
    }
    for (int i = first; i < ts->n; i++) {
        tensor *t = &ts->t[i];
        if (fseeko(f, (off_t)(data_start + t->begin), SEEK_SET) != 0 ||
            fread(t->data, 1, t->end - t->begin, f) != t->end - t->begin) {
            fail(e, "%s: cannot read tensor '%s'", path, t->name);
            goto out;
        }
    }
    rc = 0;
out:
    free(order);
    cJSON_Delete(hdr);
    free(text);
    fclose(f);
    return rc;
}

/* A shard index: {"weight_map": {tensor: file}}; every tensor must be in the file it names. */
static int read_index(tensor_set *ts, const char *path, const char *dir) {
    errbuf *e = ts->e;
    char *text = read_text(path, e);
    if (!text) return -1;
    cJSON *j = cJSON_Parse(text), *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    free(text);
    int rc = -1, nfiles = 0;
    const char **files = NULL;
    if (!cJSON_IsObject(wm) || !wm->child) {
        fail(e, "%s: no \"weight_map\" object", path);
        goto out;
    }
    files = calloc(cJSON_GetArraySize(wm), sizeof *files);
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it)) {
            fail(e, "%s: weight_map entry '%s' is not a file name", path, it->string);
            goto out;
        }
        int k = 0;
        while (k < nfiles && strcmp(files[k], it->valuestring)) k++;
        if (k < nfiles) continue;
        files[nfiles++] = it->valuestring;
        char *p = path_join(dir, it->valuestring);
        int r = p ? read_safetensors(ts, p, k) : fail(e, "out of memory");
        free(p);
        if (r) goto out;
    }
    cJSON_ArrayForEach(it, wm) {
        tensor *t = find_tensor(ts, it->string);
        int k = 0;
        while (strcmp(files[k], it->valuestring)) k++;
        if (!t || t->file != k) {
            fail(e, "%s: tensor '%s' is not in %s", path, it->string, it->valuestring);
            goto out;
        }
    }
    rc = 0;
out:
    free(files);
    cJSON_Delete(j);
    return rc;
}

/* Widen a float tensor to fp32 (exactly). */
static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static float f16_to_f32(uint16_t h) {
    int e = (h >> 10) & 31, fr = h & 1023;
    float v = e == 0 ? ldexpf((float)fr, -24) : e == 31 ? (fr ? NAN : INFINITY) : ldexpf((float)(fr | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}
static float elem_f32(const tensor *t, uint64_t i) {
    const uint8_t *p = t->data + i * dt_size[t->dtype];
    if (t->dtype == DT_F32) {
        uint32_t u = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    return t->dtype == DT_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

/* ------------------------------------------------------------------ the model */

enum { Q, K, V, O, GATE, UP, DOWN, NLIN };
static const char *const lin_name[NLIN] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                           "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                           "mlp.down_proj"};

typedef struct {
    char *name;
    int rows, cols;
    float beta;
    int8_t *w;
} linear;

typedef struct {
    float *in_norm, *post_norm, *attn_sub, *ffn_sub; /* sub-norms NULL when the architecture has none */
    linear lin[NLIN];
    float *kc, *vc; /* [cache_cap][kv_heads * head_dim] */
} layer;

struct ref_model {
    int hidden, inter, nlayers, heads, kv_heads, head_dim, vocab, max_pos;
    float eps;
    double theta;
    int relu2;          /* else SiLU */
    int bitlinear_norm; /* Falcon-E: weightless RMSNorm inside every BitLinear */
    float bitlinear_eps;
    int32_t eos[16];
    int n_eos;
    float *embed, *head, *norm; /* head == embed when tied */
    layer *L;
    int pos, cache_cap;
    int kv; /* REF_KV_*: how the cache rounds keys and values */
    char errmsg[512];
};

typedef struct {
    ref_model *m;
    tensor_set ts;
    errbuf *e;
    int packed, inverted;
} loader;

static float *get_f32(loader *ld, const char *name, uint64_t d0, uint64_t d1 /* 0: a vector */) {
    tensor *t = find_tensor(&ld->ts, name);
    if (!t) {
        fail(ld->e, "missing tensor '%s'", name);
        return NULL;
    }
    if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16) {
        fail(ld->e, "tensor '%s': dtype %s, expected F32, F16 or BF16", name, dt_name[t->dtype]);
        return NULL;
    }
    if (d1 ? (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1) : (t->ndim != 1 || t->shape[0] != d0)) {
        fail(ld->e, "tensor '%s': shape should be [%llu%s%.0llu]", name, (unsigned long long)d0, d1 ? ", " : "",
             (unsigned long long)d1);
        return NULL;
    }
    float *x = malloc((t->numel ? t->numel : 1) * sizeof *x);
    if (!x) {
        fail(ld->e, "out of memory");
        return NULL;
    }
    for (uint64_t i = 0; i < t->numel; i++) x[i] = elem_f32(t, i);
    return x;
}

static int load_linear(loader *ld, linear *l, const char *name, int rows, int cols) {
    errbuf *e = ld->e;
    tensor *t = find_tensor(&ld->ts, name);
    l->rows = rows, l->cols = cols;
    if (!(l->name = strdup(name)) || !(l->w = malloc((size_t)rows * cols + 1))) return fail(e, "out of memory");
    if (!t) return fail(e, "missing tensor '%s'", name);
    if (ld->packed) {
        if (t->dtype != DT_U8)
            return fail(e, "tensor '%s': dtype %s, the packed format needs U8", name, dt_name[t->dtype]);
        if (rows % 4 || t->ndim != 2 || t->shape[0] != (uint64_t)rows / 4 || t->shape[1] != (uint64_t)cols)
            return fail(e, "tensor '%s': packed shape should be [%d, %d] (%d x %d ternary)", name, rows / 4, cols, rows,
                        cols);
        int R = rows / 4;
        for (int r = 0; r < R; r++)
            for (int c = 0; c < cols; c++)
                for (int i = 0; i < 4; i++) {
                    int code = (t->data[(size_t)r * cols + c] >> (2 * i)) & 3;
                    if (code == 3) return fail(e, "tensor '%s': invalid 2-bit code 3 at packed [%d][%d]", name, r, c);
                    l->w[(size_t)(i * R + r) * cols + c] = (int8_t)(code - 1);
                }
        char sname[512];
        snprintf(sname, sizeof sname, "%s_scale", name);
        tensor *s = find_tensor(&ld->ts, sname);
        if (!s) return fail(e, "missing tensor '%s'", sname);
        if ((s->dtype != DT_F32 && s->dtype != DT_F16 && s->dtype != DT_BF16) || s->numel != 1)
            return fail(e, "tensor '%s': expected one F32, F16 or BF16 value", sname);
        float ws = elem_f32(s, 0);
        if (!isfinite(ws) || ws == 0.0f) return fail(e, "tensor '%s': scale %g is not finite and non-zero", sname, ws);
        l->beta = ld->inverted ? 1.0f / ws : ws;
    } else {
        if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16)
            return fail(e, "tensor '%s': dtype %s, latent weights must be F32, F16 or BF16", name, dt_name[t->dtype]);
        if (t->ndim != 2 || t->shape[0] != (uint64_t)rows || t->shape[1] != (uint64_t)cols)
            return fail(e, "tensor '%s': shape should be [%d, %d]", name, rows, cols);
        double sum = 0;
        for (uint64_t i = 0; i < t->numel; i++) {
            float w = elem_f32(t, i);
            if (!isfinite(w)) return fail(e, "tensor '%s': non-finite weight", name);
            sum += fabs((double)w);
        }
        float beta = fmaxf((float)(sum / (double)t->numel), 1e-5f);
        for (uint64_t i = 0; i < t->numel; i++)
            l->w[i] = (int8_t)rintf(fminf(fmaxf(elem_f32(t, i) / beta, -1.0f), 1.0f));
        l->beta = beta;
    }
    return 0;
}

/* config.json helpers: an integer, required when def < 0. */
static int cfg_int(loader *ld, const cJSON *cfg, const char *key, int def, int lo, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, key);
    uint64_t v;
    if (!j || cJSON_IsNull(j)) {
        if (def < 0) return fail(ld->e, "config.json: missing \"%s\"", key);
        *out = def;
        return 0;
    }
    if (!json_uint(j, &v) || v < (uint64_t)lo || v > 0x7fffffff)
        return fail(ld->e, "config.json: \"%s\" must be an integer >= %d", key, lo);
    *out = (int)v;
    return 0;
}
static int cfg_num(loader *ld, const cJSON *obj, const char *key, double def, double *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(j) || !(j->valuedouble > 0))
        return fail(ld->e, "config.json: \"%s\" must be a positive number", key);
    *out = j->valuedouble;
    return 0;
}
static const char *cfg_str(const cJSON *obj, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

enum { ARCH_BITNET, ARCH_LLAMA, ARCH_1BITLLM };

static int interpret(loader *ld, const cJSON *cfg) {
    ref_model *m = ld->m;
    errbuf *e = ld->e;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const char *an = cJSON_IsArray(archs) && cJSON_IsString(archs->child) ? archs->child->valuestring : NULL;
    int arch = !an                                ? -1
               : !strcmp(an, "BitNetForCausalLM") ? ARCH_BITNET
               : !strcmp(an, "LlamaForCausalLM")  ? ARCH_LLAMA
               : !strcmp(an, "BitnetForCausalLM") ? ARCH_1BITLLM
                                                  : -1;
    if (arch < 0) return fail(e, "config.json: unsupported architectures[0] '%s'", an ? an : "(none)");

    /* The ternary format. */
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    if (cJSON_IsObject(qc)) {
        const char *qm = cfg_str(qc, "quant_method"), *mode = cfg_str(qc, "quantization_mode"),
                   *lc = cfg_str(qc, "linear_class");
        if (!qm || strcmp(qm, "bitnet"))
            return fail(e, "config.json: unsupported quant_method '%s'", qm ? qm : "(none)");
        if (mode && strcmp(mode, "online") && strcmp(mode, "offline"))
            return fail(e, "config.json: unsupported quantization_mode '%s'", mode);
        if (lc && strcmp(lc, "autobitlinear") && strcmp(lc, "bitlinear"))
            return fail(e, "config.json: unsupported linear_class '%s'", lc);
        const cJSON *urn = cJSON_GetObjectItemCaseSensitive(qc, "use_rms_norm");
        m->bitlinear_norm = cJSON_IsTrue(urn);
        double beps = 0;
        if (cfg_num(ld, qc, "rms_norm_eps", 1e-6, &beps)) return -1;
        m->bitlinear_eps = (float)beps;
        ld->packed = !(mode && !strcmp(mode, "online")) && arch != ARCH_1BITLLM;
        ld->inverted = ld->packed && !(lc && !strcmp(lc, "autobitlinear")) && !m->bitlinear_norm;
    } else if (arch == ARCH_1BITLLM) {
        ld->packed = 0;
    } else {
        return fail(e, "config.json: no quantization_config with quant_method \"bitnet\": not a ternary checkpoint");
    }

    /* Sizes. */
    if (cfg_int(ld, cfg, "hidden_size", -1, 1, &m->hidden) || cfg_int(ld, cfg, "intermediate_size", -1, 1, &m->inter) ||
        cfg_int(ld, cfg, "num_hidden_layers", -1, 1, &m->nlayers) ||
        cfg_int(ld, cfg, "num_attention_heads", -1, 1, &m->heads) || cfg_int(ld, cfg, "vocab_size", -1, 1, &m->vocab) ||
        cfg_int(ld, cfg, "num_key_value_heads", m->heads, 1, &m->kv_heads) ||
        cfg_int(ld, cfg, "max_position_embeddings", 2048, 1, &m->max_pos))
        return -1;
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(cfg, "head_dim");
    if ((!hd || cJSON_IsNull(hd)) && m->hidden % m->heads)
        return fail(e, "config.json: hidden_size %d is not a multiple of num_attention_heads %d", m->hidden, m->heads);
    if (cfg_int(ld, cfg, "head_dim", m->hidden / m->heads, 1, &m->head_dim)) return -1;
    if (m->head_dim % 2) return fail(e, "config.json: head_dim %d is odd", m->head_dim);
    if (m->heads % m->kv_heads)
        return fail(e, "config.json: %d heads are not a multiple of %d kv heads", m->heads, m->kv_heads);
    double eps = 0;
    if (cfg_num(ld, cfg, "rms_norm_eps", 1e-6, &eps) || cfg_num(ld, cfg, "rope_theta", 10000.0, &m->theta)) return -1;
    m->eps = (float)eps;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) return fail(e, "config.json: rope_scaling is not supported by the reference");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "attention_bias")) ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "mlp_bias")))
        return fail(e, "config.json: biases are not supported");
    const char *act = cfg_str(cfg, "hidden_act");
    if (!act) act = arch == ARCH_BITNET ? "relu2" : "silu";
    if (strcmp(act, "relu2") && strcmp(act, "silu")) return fail(e, "config.json: unsupported hidden_act '%s'", act);
    m->relu2 = !strcmp(act, "relu2");

    /* eos: an id, a list of ids, or none. */
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(cfg, "eos_token_id"), *it;
    uint64_t id;
    if (cJSON_IsNumber(eos)) {
        if (!json_uint(eos, &id)) return fail(e, "config.json: bad eos_token_id");
        m->eos[m->n_eos++] = (int32_t)id;
    } else if (cJSON_IsArray(eos)) {
        cJSON_ArrayForEach(it, eos) {
            if (!json_uint(it, &id) || m->n_eos == 16) return fail(e, "config.json: bad eos_token_id list");
            m->eos[m->n_eos++] = (int32_t)id;
        }
    }
    return arch;
}

static int load_weights(loader *ld, int arch, const cJSON *cfg) {
    ref_model *m = ld->m;
    for (int i = 0; i < ld->ts.n; i++) {
        const char *n = ld->ts.t[i].name;
        size_t len = strlen(n);
        if (len > 10 && !strcmp(n + len - 10, "_proj.bias"))
            return fail(ld->e, "tensor '%s': biases are not supported", n);
        /* Falcon-E's BitLinear RMSNorm is taken as weightless (unverified): accept stored weights only if all 1. */
        if (len > 16 && !strcmp(n + len - 16, ".rms_norm.weight")) {
            const tensor *t = &ld->ts.t[i];
            int ones = m->bitlinear_norm && t->dtype != DT_U8 && t->dtype != DT_I8;
            for (uint64_t k = 0; ones && k < t->numel; k++) ones = elem_f32(t, k) == 1.0f;
            if (!ones)
                return fail(ld->e, "tensor '%s': a BitLinear RMSNorm weight other than all ones is not supported", n);
        }
    }
    const int H = m->hidden, I = m->inter, QD = m->heads * m->head_dim, KVD = m->kv_heads * m->head_dim;
    const int shape[NLIN][2] = {{QD, H}, {KVD, H}, {KVD, H}, {H, QD}, {I, H}, {I, H}, {H, I}};
    if (!(m->embed = get_f32(ld, "model.embed_tokens.weight", m->vocab, H)) ||
        !(m->norm = get_f32(ld, "model.norm.weight", H, 0)))
        return -1;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    int tied = tie ? cJSON_IsTrue(tie) : !find_tensor(&ld->ts, "lm_head.weight");
    if (tied)
        m->head = m->embed;
    else if (!(m->head = get_f32(ld, "lm_head.weight", m->vocab, H)))
        return -1;
    if (!(m->L = calloc(m->nlayers, sizeof *m->L))) return fail(ld->e, "out of memory");
    char name[256];
#define P(suffix) (snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix), name)
    for (int l = 0; l < m->nlayers; l++) {
        layer *y = &m->L[l];
        if (!(y->in_norm = get_f32(ld, P("input_layernorm.weight"), H, 0)) ||
            !(y->post_norm = get_f32(ld, P("post_attention_layernorm.weight"), H, 0)))
            return -1;
        if (arch == ARCH_BITNET && (!(y->attn_sub = get_f32(ld, P("self_attn.attn_sub_norm.weight"), QD, 0)) ||
                                    !(y->ffn_sub = get_f32(ld, P("mlp.ffn_sub_norm.weight"), I, 0))))
            return -1;
        if (arch == ARCH_1BITLLM && (!(y->attn_sub = get_f32(ld, P("self_attn.inner_attn_ln.weight"), QD, 0)) ||
                                     !(y->ffn_sub = get_f32(ld, P("mlp.ffn_layernorm.weight"), I, 0))))
            return -1;
        for (int k = 0; k < NLIN; k++) {
            char w[128];
            snprintf(w, sizeof w, "%s.weight", lin_name[k]);
            if (load_linear(ld, &y->lin[k], P(w), shape[k][0], shape[k][1])) return -1;
        }
    }
#undef P
    return 0;
}

ref_model *ref_load(const char *path, char *err, size_t errlen) {
    errbuf e = {err, errlen};
    if (err && errlen) err[0] = 0;
    ref_model *m = calloc(1, sizeof *m);
    loader ld = {.m = m, .ts = {.e = &e}, .e = &e};
    char *dir = NULL, *weights = NULL, *cfg_path = NULL, *cfg_text = NULL;
    cJSON *cfg = NULL;
    int ok = 0, is_index = 0;
    struct stat st;
    if (!m) {
        fail(&e, "out of memory");
        goto out;
    }
    if (stat(path, &st) != 0) {
        fail(&e, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        dir = strdup(path);
        weights = path_join(path, "model.safetensors.index.json");
        is_index = 1;
        if (weights && stat(weights, &st) != 0) {
            free(weights);
            weights = path_join(path, "model.safetensors");
            is_index = 0;
            if (weights && stat(weights, &st) != 0) {
                fail(&e, "%s: neither model.safetensors.index.json nor model.safetensors in this directory", path);
                goto out;
            }
        }
    } else {
        weights = strdup(path);
        const char *slash = strrchr(path, '/');
        dir = slash ? strndup(path, slash - path + (slash == path)) : strdup(".");
        size_t n = strlen(path);
        is_index = n >= 5 && !strcmp(path + n - 5, ".json");
    }
    if (!dir || !weights || !(cfg_path = path_join(dir, "config.json"))) {
        fail(&e, "out of memory");
        goto out;
    }
    if (!(cfg_text = read_text(cfg_path, &e))) goto out;
    if (!cJSON_IsObject(cfg = cJSON_Parse(cfg_text))) {
        fail(&e, "%s: not a JSON object", cfg_path);
        goto out;
    }
    int arch = interpret(&ld, cfg);
    if (arch < 0) goto out;
    if ((is_index ? read_index(&ld.ts, weights, dir) : read_safetensors(&ld.ts, weights, 0)) != 0) goto out;
    if (load_weights(&ld, arch, cfg)) goto out;
    ok = 1;
out:
    for (int i = 0; i < ld.ts.n; i++) free(ld.ts.t[i].name), free(ld.ts.t[i].data);
    free(ld.ts.t);
    cJSON_Delete(cfg);
    free(cfg_text), free(cfg_path), free(weights), free(dir);
    if (!ok) {
        ref_free(m);
        return NULL;
    }
    return m;
}

void ref_free(ref_model *m) {
    if (!m) return;
    for (int l = 0; m->L && l < m->nlayers; l++) {
        layer *y = &m->L[l];
        free(y->in_norm), free(y->post_norm), free(y->attn_sub), free(y->ffn_sub), free(y->kc), free(y->vc);
        for (int k = 0; k < NLIN; k++) free(y->lin[k].name), free(y->lin[k].w);
    }
    if (m->head != m->embed) free(m->head);
    free(m->embed), free(m->norm), free(m->L), free(m);
}

int ref_num_matrices(ref_model *m) { return m->nlayers * NLIN; }
const char *ref_matrix_name(ref_model *m, int i) {
    return i >= 0 && i < m->nlayers * NLIN ? m->L[i / NLIN].lin[i % NLIN].name : NULL;
}
const int8_t *ref_ternary(ref_model *m, const char *name, int *rows, int *cols, float *beta) {
    for (int i = 0; i < m->nlayers * NLIN; i++) {
        const linear *l = &m->L[i / NLIN].lin[i % NLIN];
        if (strcmp(l->name, name)) continue;
        if (rows) *rows = l->rows;
        if (cols) *cols = l->cols;
        if (beta) *beta = l->beta;
        return l->w;
    }
    return NULL;
}
int ref_vocab_size(ref_model *m) { return m->vocab; }
int ref_is_eos(ref_model *m, int32_t t) {
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos[i] == t) return 1;
    return 0;
}
const char *ref_errmsg(ref_model *m) { return m->errmsg; }
void ref_reset(ref_model *m) { m->pos = 0; }
void ref_set_kv(ref_model *m, int kv) { m->kv = kv; }

int32_t ref_argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* ------------------------------------------------------------------ the forward pass (numerics.md) */

static void rmsnorm(const float *x, const float *w, int n, float eps, float *y) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) y[i] = w ? (x[i] * inv) * w[i] : x[i] * inv;
}

/* One activation quantisation (shared by every BitLinear reading x); returns x_scale. */
static float quantize(const ref_model *m, const float *x, int n, int8_t *xq, float *tmp) {
    if (m->bitlinear_norm) {
        rmsnorm(x, NULL, n, m->bitlinear_eps, tmp);
        x = tmp;
    }
    float amax = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]);
    float xs = 127.0f / fmaxf(amax, 1e-5f);
    for (int j = 0; j < n; j++) {
        float r = rintf(x[j] * xs);
        r = r != r ? 0.0f : r > 127.0f ? 127.0f : r < -128.0f ? -128.0f : r;
        xq[j] = (int8_t)r;
    }
    return xs;
}

static void bitlinear(const linear *l, const int8_t *xq, float xs, float *y) {
    for (int r = 0; r < l->rows; r++) {
        const int8_t *w = l->w + (size_t)r * l->cols;
        int32_t s = 0;
        for (int c = 0; c < l->cols; c++) s += w[c] * xq[c];
        y[r] = ((float)s * l->beta) / xs;
    }
}

static void rope(float *x, int d, int pos, double theta) {
    for (int i = 0; i < d / 2; i++) {
        double inv_freq = pow(theta, -2.0 * i / d), a = (double)pos * inv_freq;
        float c = (float)cos(a), s = (float)sin(a), x0 = x[i], x1 = x[i + d / 2];
        x[i] = x0 * c - x1 * s;
        x[i + d / 2] = x1 * c + x0 * s;
    }
}

static int grow_cache(ref_model *m, int need) {
    if (need <= m->cache_cap) return 0;
    int cap = m->cache_cap ? m->cache_cap : 64;
    while (cap < need) cap *= 2;
    if (cap > m->max_pos) cap = m->max_pos;
    size_t kvd = (size_t)m->kv_heads * m->head_dim;
    for (int l = 0; l < m->nlayers; l++) {
        float *k = realloc(m->L[l].kc, cap * kvd * sizeof *k);
        if (k) m->L[l].kc = k;
        float *v = realloc(m->L[l].vc, cap * kvd * sizeof *v);
        if (v) m->L[l].vc = v;
        if (!k || !v) return -1;
    }
    m->cache_cap = cap;
    return 0;
}

/* Evaluates one token at position m->pos; logits (vocab floats) when not NULL. */
/* The value a cache of element type kv (ref.h) stores for x: the nearest number with `bits`
 * significant bits (ties to even, the default rounding of nearbyint), computed through frexp. */
static float round_bits(float x, int bits, int min_exp, float max) {
    if (!isfinite(x) || x == 0) return x;
    int e;
    frexpf(x, &e); /* x = f·2^e, 0.5 ≤ |f| < 1 */
    if (e - bits < min_exp) e = min_exp + bits;
    float step = ldexpf(1.0f, e - bits), r = nearbyintf(x / step) * step;
    return fabsf(r) > max ? copysignf(INFINITY, x) : r;
}

static void store_rounded(int kv, float *row, int d) {
    if (kv == REF_KV_BF16)
        for (int i = 0; i < d; i++) row[i] = round_bits(row[i], 8, -133, 3.3895314e38f);
    else if (kv == REF_KV_F16)
        for (int i = 0; i < d; i++) row[i] = round_bits(row[i], 11, -24, 65504.0f);
    else if (kv == REF_KV_Q8) { /* per row: K = round(x / s), s = max|x| / 127; the value K·s */
        float amax = 0;
        for (int i = 0; i < d; i++) amax = fmaxf(amax, fabsf(row[i]));
        float s = amax / 127.0f;
        for (int i = 0; i < d; i++) row[i] = s > 0 ? nearbyintf(row[i] / s) * s : 0.0f;
    }
}

static void forward_one(ref_model *m, int32_t token, float *logits, float *buf) {
    const int H = m->hidden, I = m->inter, d = m->head_dim, QD = m->heads * d, KVD = m->kv_heads * d, pos = m->pos;
    const int big = (H > I ? H : I) > QD ? (H > I ? H : I) : QD;
    float *x = buf, *a = x + big, *q = a + big, *att = q + big, *t1 = att + big, *t2 = t1 + big, *s = t2 + big;
    int8_t *xq = (int8_t *)(s + m->max_pos);
    memcpy(x, m->embed + (size_t)token * H, H * sizeof *x);
    for (int l = 0; l < m->nlayers; l++) {
        layer *y = &m->L[l];
        float *kc = y->kc + (size_t)pos * KVD, *vc = y->vc + (size_t)pos * KVD, xs;
        /* attention */
        rmsnorm(x, y->in_norm, H, m->eps, a);
        xs = quantize(m, a, H, xq, t1);
        bitlinear(&y->lin[Q], xq, xs, q);
        bitlinear(&y->lin[K], xq, xs, kc);
        bitlinear(&y->lin[V], xq, xs, vc);
        for (int h = 0; h < m->heads; h++) rope(q + h * d, d, pos, m->theta);
        for (int h = 0; h < m->kv_heads; h++) rope(kc + h * d, d, pos, m->theta);
        for (int h = 0; h < m->kv_heads; h++) store_rounded(m->kv, kc + h * d, d), store_rounded(m->kv, vc + h * d, d);
        const float scale = 1.0f / sqrtf((float)d);
        for (int h = 0; h < m->heads; h++) {
            const int kvh = h / (m->heads / m->kv_heads);
            const float *qh = q + h * d;
            float mx = 0.0f, sum = 0.0f;
            for (int j = 0; j <= pos; j++) {
                const float *k = y->kc + (size_t)j * KVD + kvh * d;
                float dot = 0.0f;
                for (int i = 0; i < d; i++) dot += qh[i] * k[i];
                s[j] = dot * scale;
                if (j == 0 || s[j] > mx) mx = s[j];
            }
            for (int j = 0; j <= pos; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            for (int i = 0; i < d; i++) {
                float acc = 0.0f;
                for (int j = 0; j <= pos; j++) acc += s[j] * y->vc[(size_t)j * KVD + kvh * d + i];
                att[h * d + i] = acc / sum;
            }
        }
        if (y->attn_sub) rmsnorm(att, y->attn_sub, QD, m->eps, att);
        xs = quantize(m, att, QD, xq, t1);
        bitlinear(&y->lin[O], xq, xs, t1);
        for (int i = 0; i < H; i++) x[i] = x[i] + t1[i];
        /* feed-forward */
        rmsnorm(x, y->post_norm, H, m->eps, a);
        xs = quantize(m, a, H, xq, t1);
        bitlinear(&y->lin[GATE], xq, xs, t1);
        bitlinear(&y->lin[UP], xq, xs, t2);
        for (int i = 0; i < I; i++) {
            float g = t1[i], u = t2[i];
            if (m->relu2) {
                float r = fmaxf(g, 0.0f);
                t1[i] = r * r * u;
            } else {
                t1[i] = (g / (1.0f + expf(-g))) * u;
            }
        }
        if (y->ffn_sub) rmsnorm(t1, y->ffn_sub, I, m->eps, t1);
        xs = quantize(m, t1, I, xq, t2);
        bitlinear(&y->lin[DOWN], xq, xs, t2);
        for (int i = 0; i < H; i++) x[i] = x[i] + t2[i];
    }
    m->pos++;
    if (!logits) return;
    rmsnorm(x, m->norm, H, m->eps, a);
    for (int v = 0; v < m->vocab; v++) {
        const float *w = m->head + (size_t)v * H;
        float acc = 0.0f;
        for (int i = 0; i < H; i++) acc += a[i] * w[i];
        logits[v] = acc;
    }
}

int ref_forward(ref_model *m, const int32_t *tokens, int n, float *logits_last) {
    if (n <= 0) return snprintf(m->errmsg, sizeof m->errmsg, "no tokens to evaluate"), -1;
    if (n > m->max_pos - m->pos)
        return snprintf(m->errmsg, sizeof m->errmsg, "context full: %d + %d tokens exceed max_position_embeddings %d",
                        m->pos, n, m->max_pos),
               -1;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->vocab)
            return snprintf(m->errmsg, sizeof m->errmsg, "token %d is outside [0, %d)", (int)tokens[i], m->vocab), -1;
    int H = m->hidden, I = m->inter, QD = m->heads * m->head_dim;
    size_t big = (size_t)(H > I ? H : I) > (size_t)QD ? (size_t)(H > I ? H : I) : (size_t)QD;
    float *buf = malloc((6 * big + m->max_pos) * sizeof *buf + big);
    if (!buf || grow_cache(m, m->pos + n)) {
        free(buf);
        return snprintf(m->errmsg, sizeof m->errmsg, "out of memory"), -1;
    }
    for (int i = 0; i < n; i++) forward_one(m, tokens[i], i == n - 1 ? logits_last : NULL, buf);
    free(buf);
    return 0;
}
