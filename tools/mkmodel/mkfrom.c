/*
 * mkfrom.c — rsr-mkmodel --from DIR: a bitnet-packed checkpoint's config.json (its sizes, epsilon
 * and RoPE base), model.safetensors (mapped; each tensor checked against the layout of those
 * sizes) and tokenizer.json (a byte-level BPE with Llama 3's split), for the GGUF writer to
 * convert. Uses mkmodel.h, common/alloc.h and bpe_json.h (Llama 3's split).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <fcntl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "alloc.h"
#include "bpe_json.h"
#include "mkmodel.h"

/* ---- --from DIR: a bitnet-packed checkpoint's model.safetensors, config.json and tokenizer.json ---- */

source_t src;

/* A JSON file's contents (NULL when it does not exist and !required). */
static cJSON *read_json(const char *path, int required) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (!required && errno == ENOENT) return NULL;
        die("cannot read %s: %s", path, strerror(errno));
    }
    /* a FIFO or a device would block or never end; a checkpoint's JSON is a file, and not huge */
    if (!S_ISREG(st.st_mode)) die("%s is not a regular file", path);
    if (st.st_size > (off_t)256 << 20)
        die("%s: %lld bytes is more JSON than a checkpoint has (256 MiB)", path, (long long)st.st_size);
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot read %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *text = xmalloc(cap);
    for (size_t got; (got = fread(text + n, 1, cap - n, f)) > 0;)
        if ((n += got) == cap && !(text = realloc(text, cap *= 2))) die("out of memory reading %s", path);
    if (ferror(f)) die("cannot read %s: %s", path, strerror(errno));
    fclose(f);
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    if (!j) die("%s is not valid JSON", path);
    return j;
}

/* config.json's number key (a default where dflt >= 0 and the key is absent) */
static double config_num(const cJSON *c, const char *path, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    if (!v && dflt >= 0) return dflt;
    if (!cJSON_IsNumber(v)) die("--from: %s has no number '%s'", path, key);
    return v->valuedouble;
}

static const char *config_str(const cJSON *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* DIR/config.json: a BitNetForCausalLM with packed weights (quantization_mode offline), ReLU² and
 * a tied head; its sizes into *p, its epsilon and RoPE base into o. */
void source_config(opts_t *o, preset_t *p) {
    char *path = xasprintf("%s/config.json", o->from);
    cJSON *c = src.config = read_json(path, 1);
    const cJSON *arch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "architectures"), 0);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(c, "quantization_config");
    const cJSON *tied = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    if (!cJSON_IsString(arch) || strcmp(arch->valuestring, "BitNetForCausalLM") ||
        strcmp(config_str(q, "quant_method"), "bitnet") || strcmp(config_str(q, "quantization_mode"), "offline"))
        die("--from: %s is not a bitnet-packed checkpoint (BitNetForCausalLM, quant_method bitnet, "
            "quantization_mode offline)",
            path);
    if (cJSON_IsFalse(tied)) die("--from: %s has a head of its own; the bitnet-b1.58 GGUF ties it", path);
    if (*config_str(c, "hidden_act") && strcmp(config_str(c, "hidden_act"), "relu2"))
        die("--from: %s: hidden_act '%s' is not relu2", path, config_str(c, "hidden_act"));
    static const char *const keys[9] = {
        "hidden_size", "intermediate_size",       "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "vocab_size",  "max_position_embeddings", "bos_token_id",      "eos_token_id"};
    long v[9];
    for (int i = 0; i < 9; i++) {
        double x = config_num(c, path, keys[i], i == 4 ? config_num(c, path, keys[3], -1) : -1);
        if (!(x >= (i >= 7 ? 0 : 1) && x <= (1 << 24) && x == (double)(long)x))
            die("--from: %s: %s %g is not a size rsr-mkmodel writes", path, keys[i], x);
        v[i] = (long)x;
    }
    *p = (preset_t){path, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], 0, 0, 0, 0};
    o->rms_eps = config_num(c, path, "rms_norm_eps", 1e-6);
    o->rope_theta = config_num(c, path, "rope_theta", 10000.0);
    cJSON_Delete(c), src.config = NULL;
}

/* DIR/model.safetensors, mapped, and its header */
void source_open(const opts_t *o) {
    src.path = xasprintf("%s/model.safetensors", o->from);
    int fd = open(src.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block the open */
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) die("--from: cannot open %s: %s", src.path, strerror(errno));
    if (!S_ISREG(st.st_mode)) die("--from: %s is not a regular file", src.path);
    src.size = (size_t)st.st_size;
    uint64_t n = 0;
    if (src.size >= 8) src.map = mmap(NULL, src.size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (src.size < 8 || src.map == MAP_FAILED) die("--from: %s is not a safetensors file", src.path);
    for (int b = 0; b < 8; b++) n |= (uint64_t)src.map[b] << (8 * b);
    if (n > src.size - 8 || !(src.header = cJSON_ParseWithLength((const char *)src.map + 8, (size_t)n)))
        die("--from: %s: the header is not JSON of the file's length", src.path);
    if (!cJSON_IsObject(src.header)) die("--from: %s: the header is not a JSON object of tensors", src.path);
    src.data = 8 + n;
}

/* The checkpoint's bytes of tensor t, after checking its dtype and shape against what the
 * bitnet-packed layout of the configured sizes says. */
uint8_t *source_bytes(const tensor_t *t) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(src.header, t->name);
    if (!e) die("--from: %s has no tensor %s", src.path, t->name);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape"),
                *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    int same = !strcmp(config_str(e, "dtype"), dtype_names[t->dt]) && cJSON_GetArraySize(shape) == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = cJSON_GetArrayItem(shape, d)->valuedouble == (double)t->shape[d];
    if (!same)
        die("--from: %s: %s is not %s [%" PRIu64 "%s%.0" PRIu64 "], as config.json's sizes make it", src.path, t->name,
            dtype_names[t->dt], t->shape[0], t->ndim > 1 ? ", " : "", t->ndim > 1 ? t->shape[1] : 0);
    const cJSON *oa = cJSON_GetArrayItem(offs, 0), *ob = cJSON_GetArrayItem(offs, 1);
    const double a = cJSON_IsNumber(oa) ? oa->valuedouble : -1, b = cJSON_IsNumber(ob) ? ob->valuedouble : -1;
    /* in the data block, as doubles first: a conversion of 2^64 or more would be undefined, and a
     * sum near it would wrap past the bounds */
    const double room = (double)(src.size - src.data);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !(a >= 0 && b <= room && a == floor(a)) ||
        b - a != (double)t->nbytes)
        die("--from: %s: the data_offsets of %s do not hold its %" PRIu64 " bytes in the file's %.0f of data", src.path,
            t->name, t->nbytes, room);
    return memcpy(xmalloc(t->nbytes), src.map + src.data + (uint64_t)a, t->nbytes);
}

/* config.json's sizes against model.safetensors before anything is made for them: the bytes the
 * bitnet-packed layout of those sizes needs (the embedding, each layer's norms and packed
 * matrices) cannot be more than the file holds, and the last layer is there, the next not. */
void source_check_sizes(const preset_t *p) {
    const double h = (double)p->hidden, f = (double)p->intermediate, kv = (double)p->kv_heads / (double)p->heads;
    const double per_layer = 2 * 2 * h + (2 * h * h + 2 * h * h * kv + 3 * h * f) / 4;
    const double need = 2 * (double)p->vocab * h + (double)p->layers * per_layer;
    if (need > (double)src.size)
        die("--from: %s: config.json's sizes (%ld layers, hidden %ld, intermediate %ld, vocab %ld) need %.0f bytes of "
            "weights; the file has %zu",
            src.path, p->layers, p->hidden, p->intermediate, p->vocab, need, src.size);
    char last[96], next[96];
    snprintf(last, sizeof last, "model.layers.%ld.input_layernorm.weight", p->layers - 1);
    snprintf(next, sizeof next, "model.layers.%ld.input_layernorm.weight", p->layers);
    if (!cJSON_GetObjectItemCaseSensitive(src.header, last) || cJSON_GetObjectItemCaseSensitive(src.header, next))
        die("--from: %s does not hold the %ld layers config.json gives (%s %s)", src.path, p->layers,
            cJSON_GetObjectItemCaseSensitive(src.header, last) ? "it has" : "it lacks",
            cJSON_GetObjectItemCaseSensitive(src.header, last) ? next : last);
}

/* Every tensor of the checkpoint is one of the layout's (the layout's are checked as they are read). */
void source_check_names(const tlist_t *l) {
    const cJSON *e;
    cJSON_ArrayForEach(e, src.header) {
        if (!strcmp(e->string, "__metadata__")) continue;
        size_t i = 0;
        while (i < l->n && strcmp(l->t[i].name, e->string)) i++;
        if (i == l->n) die("--from: %s holds %s, which a bitnet-packed checkpoint has not", src.path, e->string);
    }
}

/* DIR/tokenizer.json (NULL, saying so, when there is none): a byte-level BPE with Llama 3's split,
 * which the GGUF's tokenizer.ggml.pre "llama-bpe" names. */
cJSON *source_tokenizer(const opts_t *o) {
    char *path = xasprintf("%s/tokenizer.json", o->from);
    cJSON *tj = read_json(path, 0);
    if (!tj) fprintf(stderr, "rsr-mkmodel: no tokenizer: %s does not exist\n", path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    char *pre = tj ? cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer")) : NULL;
    cJSON *split = cJSON_CreateString(bpe_llama3_split);
    char *want = cJSON_PrintUnformatted(split);
    cJSON_Delete(split);
    if (tj && (strcmp(config_str(model, "type"), "BPE") || !pre || !strstr(pre, want) || !strstr(pre, "ByteLevel")))
        die("--from: %s is not a byte-level BPE tokenizer with Llama 3's split, which a GGUF's llama-bpe "
            "pre-tokenizer means",
            path);
    free(pre), free(want), free(path);
    return tj;
}
