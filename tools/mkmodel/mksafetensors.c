/*
 * mksafetensors.c — rsr-mkmodel's Hugging Face checkpoints: the safetensors shards (a header of
 * the tensors' dtypes, shapes and offsets, then their data from write_tensor) and their index,
 * config.json (BitNet, Llama, 1bitLLM and Qwen3 architectures), qwen3-embed's
 * 1_Pooling/config.json, tokenizer.json and tokenizer_config.json. Uses mkmodel.h and
 * common/alloc.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alloc.h"
#include "mkmodel.h"

static char *safetensors_header(const tlist_t *l, int shard, size_t *len_out) {
    cJSON *root = cJSON_CreateObject();
    if (!root) die("out of memory");
    for (size_t i = 0; i < l->n; i++) {
        const tensor_t *t = &l->t[i];
        if (t->shard != shard) continue;
        cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        if (!e || !shape || !offs) die("out of memory");
        json_add(e, "dtype", cJSON_CreateString(dtype_names[t->dt]));
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(shape, json_u64(t->shape[d]));
        json_add(e, "shape", shape);
        cJSON_AddItemToArray(offs, json_u64(t->offset));
        cJSON_AddItemToArray(offs, json_u64(t->offset + t->nbytes));
        json_add(e, "data_offsets", offs);
        json_add(root, t->name, e);
    }
    cJSON *meta = cJSON_CreateObject();
    if (!meta) die("out of memory");
    json_add(meta, "format", cJSON_CreateString("pt"));
    json_add(root, "__metadata__", meta);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) die("out of memory printing JSON");
    size_t n = strlen(text), padded = (n + 7) & ~(size_t)7; /* 8 + padded is a multiple of 8 */
    char *h = xmalloc(padded);
    memcpy(h, text, n);
    memset(h + n, ' ', padded - n);
    free(text);
    *len_out = padded;
    return h;
}

static cJSON *build_config(const opts_t *o) {
    cJSON *c = cJSON_CreateObject();
    if (!c) die("out of memory");
    const char *arch = format_bitnet(o->format) ? "BitNetForCausalLM"
                       : o->format == F_1BITLLM ? "BitnetForCausalLM"
                                                : "LlamaForCausalLM";
    cJSON *archs = cJSON_CreateArray();
    if (!archs) die("out of memory");
    cJSON_AddItemToArray(archs, cJSON_CreateString(arch));
    json_add(c, "architectures", archs);
    json_add(c, "model_type", cJSON_CreateString(format_bitnet(o->format) ? "bitnet" : "llama"));
    json_add(c, "hidden_act", cJSON_CreateString(format_bitnet(o->format) ? "relu2" : "silu"));
    json_add(c, "hidden_size", cJSON_CreateNumber((double)o->hidden));
    json_add(c, "intermediate_size", cJSON_CreateNumber((double)o->intermediate));
    json_add(c, "num_hidden_layers", cJSON_CreateNumber((double)o->layers));
    json_add(c, "num_attention_heads", cJSON_CreateNumber((double)o->heads));
    json_add(c, "num_key_value_heads", cJSON_CreateNumber((double)o->kv_heads));
    json_add(c, "vocab_size", cJSON_CreateNumber((double)o->vocab));
    json_add(c, "max_position_embeddings", cJSON_CreateNumber((double)o->max_pos));
    json_add(c, "rms_norm_eps", cJSON_CreateNumber(o->format == F_1BITLLM ? 1e-6 : 1e-5));
    json_add(c, "rope_theta", cJSON_CreateNumber(o->format == F_1BITLLM ? 10000.0 : 500000.0));
    json_add(c, "bos_token_id", cJSON_CreateNumber((double)o->bos));
    json_add(c, "eos_token_id", cJSON_CreateNumber((double)o->eos));
    json_add(c, "tie_word_embeddings", cJSON_CreateBool(format_bitnet(o->format)));
    json_add(c, "torch_dtype", cJSON_CreateString(o->format == F_1BITLLM ? "float16" : "bfloat16"));
    if (o->format != F_1BITLLM) {
        cJSON *q = cJSON_CreateObject();
        if (!q) die("out of memory");
        json_add(q, "quant_method", cJSON_CreateString("bitnet"));
        if (format_bitnet(o->format)) {
            json_add(q, "linear_class", cJSON_CreateString("autobitlinear"));
            json_add(q, "quantization_mode", cJSON_CreateString(o->format == F_BITNET_PACKED ? "offline" : "online"));
        } else if (o->format == F_LLAMA_PACKED) {
            json_add(q, "modules_to_not_convert", cJSON_CreateNull());
        } else { /* falcon-e */
            json_add(q, "linear_class", cJSON_CreateString("bitlinear"));
            json_add(q, "use_rms_norm", cJSON_CreateBool(1));
            json_add(q, "rms_norm_eps", cJSON_CreateNumber(1e-6));
        }
        json_add(c, "quantization_config", q);
    }
    return c;
}

/* A Qwen3 config.json: Qwen3ForCausalLM (qwen3-grouped; no quantization_config, the matrices being
 * ternary as they stand) or Qwen3Model (qwen3-embed), with Qwen3's epsilon and RoPE base and a head
 * dimension of its own. */
static cJSON *build_qwen3_config(const opts_t *o) {
    cJSON *c = cJSON_CreateObject(), *archs = cJSON_CreateArray();
    if (!c || !archs) die("out of memory");
    cJSON_AddItemToArray(archs, cJSON_CreateString(o->format == F_QWEN3_EMBED ? "Qwen3Model" : "Qwen3ForCausalLM"));
    json_add(c, "architectures", archs);
    json_add(c, "model_type", cJSON_CreateString("qwen3"));
    json_add(c, "hidden_act", cJSON_CreateString("silu"));
    const struct {
        const char *key;
        long v;
    } sizes[] = {
        {"hidden_size", o->hidden},        {"intermediate_size", o->intermediate},  {"num_hidden_layers", o->layers},
        {"num_attention_heads", o->heads}, {"num_key_value_heads", o->kv_heads},    {"head_dim", o->head_dim},
        {"vocab_size", o->vocab},          {"max_position_embeddings", o->max_pos}, {"bos_token_id", o->bos},
        {"eos_token_id", o->eos}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        json_add(c, sizes[i].key, cJSON_CreateNumber((double)sizes[i].v));
    json_add(c, "rms_norm_eps", cJSON_CreateNumber(1e-6));
    json_add(c, "rope_theta", cJSON_CreateNumber(1000000.0));
    json_add(c, "rope_scaling", cJSON_CreateNull());
    json_add(c, "attention_bias", cJSON_CreateBool(0));
    json_add(c, "use_sliding_window", cJSON_CreateBool(0));
    json_add(c, "tie_word_embeddings", cJSON_CreateBool(!o->untied));
    json_add(c, "torch_dtype", cJSON_CreateString(o->dtype == DT_F16 ? "float16" : "bfloat16"));
    return c;
}

/* qwen3-embed's DIR/1_Pooling/config.json, as sentence-transformers writes it: the mode of
 * o->pooling true, the others false. */
static uint64_t write_pooling(const opts_t *o) {
    static const char *const modes[] = {"pooling_mode_cls_token",           "pooling_mode_mean_tokens",
                                        "pooling_mode_max_tokens",          "pooling_mode_mean_sqrt_len_tokens",
                                        "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"};
    const char *mode = !strcmp(o->pooling, "mean") ? modes[1] : !strcmp(o->pooling, "cls") ? modes[0] : modes[5];
    char *dir = xasprintf("%s/1_Pooling", o->out_dir);
    make_dir(dir);
    cJSON *p = cJSON_CreateObject();
    if (!p) die("out of memory");
    json_add(p, "word_embedding_dimension", cJSON_CreateNumber((double)o->hidden));
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) json_add(p, modes[i], cJSON_CreateBool(modes[i] == mode));
    json_add(p, "include_prompt", cJSON_CreateBool(1));
    uint64_t n = write_json_file(dir, "config.json", p);
    cJSON_Delete(p);
    free(dir);
    return n;
}

/* The Hugging Face checkpoint: the safetensors shards (and their index when there are several),
 * config.json and tokenizer.json (when tj); the bytes written. */
uint64_t write_checkpoint(tlist_t *tl, const opts_t *o, uint64_t total, const cJSON *tj) {
    uint64_t bytes_written = 0;
    sink_t s = {0};
    s.cap = 1u << 20;
    s.buf = xmalloc(s.cap);
    cJSON *index = NULL, *wmap = NULL;
    if (o->shards > 1) {
        index = cJSON_CreateObject();
        cJSON *meta = cJSON_CreateObject();
        wmap = cJSON_CreateObject();
        if (!index || !meta || !wmap) die("out of memory");
        json_add(meta, "total_size", json_u64(total));
        json_add(index, "metadata", meta);
        json_add(index, "weight_map", wmap);
    }
    size_t next = 0;
    for (long sh = 0; sh < o->shards; sh++) {
        char fname[64];
        if (o->shards == 1)
            snprintf(fname, sizeof fname, "model.safetensors");
        else
            snprintf(fname, sizeof fname, "model-%05ld-of-%05ld.safetensors", sh + 1, o->shards);
        uint64_t off = 0;
        for (size_t i = next; i < tl->n && tl->t[i].shard == sh; i++) {
            tl->t[i].offset = off;
            off += tl->t[i].nbytes;
            if (wmap) json_add(wmap, tl->t[i].name, cJSON_CreateString(fname));
        }
        size_t hlen;
        char *hdr = safetensors_header(tl, (int)sh, &hlen);
        s.f = open_temp(o->out_dir, fname);
        s.path = outfiles[n_out - 1].final_path; /* messages name the file the user asked for */
        s.len = 0;
        s.written = 0;
        unsigned char lenbuf[8];
        for (int b = 0; b < 8; b++) lenbuf[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
        if (setvbuf(s.f, NULL, _IOFBF, 1u << 20) != 0) die("setvbuf failed");
        if (fwrite(lenbuf, 1, 8, s.f) != 8 || fwrite(hdr, 1, hlen, s.f) != hlen)
            die("cannot write %s: %s", s.path, strerror(errno));
        free(hdr);
        for (; next < tl->n && tl->t[next].shard == sh; next++) write_tensor(&s, &tl->t[next], o);
        sink_flush(&s);
        if (s.written != off) die("internal error: shard %ld data size", sh + 1);
        bytes_written += close_file(s.f, s.path);
    }
    if (next != tl->n) die("internal error: tensors left unassigned");
    if (index) {
        bytes_written += write_json_file(o->out_dir, "model.safetensors.index.json", index);
        cJSON_Delete(index);
    }
    cJSON *config = format_qwen3(o->format) ? build_qwen3_config(o) : build_config(o);
    bytes_written += write_json_file(o->out_dir, "config.json", config);
    cJSON_Delete(config);
    if (o->format == F_QWEN3_EMBED) bytes_written += write_pooling(o);
    if (tj) bytes_written += write_json_file(o->out_dir, "tokenizer.json", tj);
    if (o->chat_template) {
        cJSON *tc = cJSON_CreateObject();
        cJSON_AddStringToObject(tc, "chat_template", o->chat_template);
        bytes_written += write_json_file(o->out_dir, "tokenizer_config.json", tc);
        cJSON_Delete(tc);
    }
    free(s.buf);
    return bytes_written;
}
