/*
 * mkggufmodel.c — rsr-mkmodel --format gguf-*: a model's tensors (seeded, or --from's checkpoint)
 * as one GGUF file: llama.cpp's tensor names, the metadata of each architecture (bitnet-b1.58,
 * bitnet, llama, qwen3, gemma3, maple, qwen35, qwen35moe) and the tokenizer, the ternary matrices
 * in I2_S, TQ1_0, TQ2_0 or the group-scaled Q2_0 and Q1_0, the experts stacked, the rest in F32,
 * F16 or BF16. Uses mkmodel.h, mkgguf.h (the file and its encodings), common/alloc.h and
 * rsr_numerics.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alloc.h"
#include "mkgguf.h"
#include "mkmodel.h"
#include "rsr_numerics.h"

/* ---- GGUF (--format gguf-*): bitnet-packed's weights as bitnet.cpp's and llama.cpp's files hold them ---- */

/* A tensor's bytes, in memory: generated, or the checkpoint's (--from). */
static uint8_t *tensor_bytes(const tensor_t *t, const opts_t *o) {
    if (o->from) return source_bytes(t);
    sink_t s = {.buf = xmalloc(t->nbytes ? t->nbytes : 1), .cap = t->nbytes, .path = t->name};
    write_tensor(&s, t, o);
    return s.buf;
}

static float bf16_at(const uint8_t *p) { return rsr_bf16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* the GGUF name of a Hugging Face tensor name */
static char *gguf_name(const char *hf) {
    static const char *const map[][2] = {
        {"input_layernorm", "attn_norm"},
        {"post_attention_layernorm", "ffn_norm"},
        {"self_attn.q_proj", "attn_q"},
        {"self_attn.k_proj", "attn_k"},
        {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"},
        {"mlp.gate_proj", "ffn_gate"},
        {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},
        {"self_attn.attn_sub_norm", "attn_sub_norm"},
        {"mlp.ffn_sub_norm", "ffn_sub_norm"},
        {"self_attn.q_norm", "attn_q_norm"},
        {"self_attn.k_norm", "attn_k_norm"},
        {"self_attn.q_proj.norm", "attn_q_norm_in"},
        {"self_attn.k_proj.norm", "attn_k_norm_in"},
        {"self_attn.v_proj.norm", "attn_v_norm_in"},
        {"self_attn.o_proj.norm", "attn_output_norm_in"},
        {"mlp.gate_proj.norm", "ffn_gate_norm_in"},
        {"mlp.up_proj.norm", "ffn_up_norm_in"},
        {"mlp.down_proj.norm", "ffn_down_norm_in"},
        {"self_attn.post_norm", "post_attention_norm"},
        {"mlp.post_norm", "post_ffw_norm"},
        {"mlp.gate", "ffn_gate_inp"},
        {"mlp.shared_expert.gate_proj", "ffn_gate_shexp"},
        {"mlp.shared_expert.up_proj", "ffn_up_shexp"},
        {"mlp.shared_expert.down_proj", "ffn_down_shexp"},
        {"mlp.shared_expert_gate", "ffn_gate_inp_shexp"},
        {"mtp.eh_proj", "nextn.eh_proj"}, /* qwen35's MTP layer (--nextn) */
        {"mtp.enorm", "nextn.enorm"},
        {"mtp.hnorm", "nextn.hnorm"},
        {"mtp.shared_head_norm", "nextn.shared_head_norm"},
    };
    if (!strcmp(hf, "model.embed_tokens.weight")) return xasprintf("token_embd.weight");
    if (!strcmp(hf, "model.norm.weight")) return xasprintf("output_norm.weight");
    if (!strcmp(hf, "lm_head.weight")) return xasprintf("output.weight");
    static const char *const exact[][2] = {
        /* qwen35's gated DeltaNet (llama.cpp's names) */
        {"linear_attn.in_proj_qkv.weight", "attn_qkv.weight"},
        {"linear_attn.in_proj_z.weight", "attn_gate.weight"},
        {"linear_attn.out_proj.weight", "ssm_out.weight"},
        {"linear_attn.in_proj_b.weight", "ssm_beta.weight"},
        {"linear_attn.in_proj_a.weight", "ssm_alpha.weight"},
        {"linear_attn.conv1d.weight", "ssm_conv1d.weight"},
        {"linear_attn.dt_bias", "ssm_dt.bias"},
        {"linear_attn.ssm_a", "ssm_a"},
        {"linear_attn.norm.weight", "ssm_norm.weight"},
    };
    int layer, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) == 1 && used)
        for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
            if (!strcmp(hf + used, exact[i][0])) return xasprintf("blk.%d.%s", layer, exact[i][1]);
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) == 1 && used)
        for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
            size_t n = strlen(map[i][0]);
            if (!strncmp(hf + used, map[i][0], n) && !strcmp(hf + used + n, ".weight"))
                return xasprintf("blk.%d.%s.weight", layer, map[i][1]);
        }
    die("internal error: no GGUF name for %s", hf);
}

/* The tokenizer as llama.cpp's converters write a byte-level BPE one (tokenizer.ggml.model "gpt2",
 * pre-tokenizer pre: "llama-bpe", or "qwen2" for qwen3): every id's string, its type (1 normal, 3
 * control for the special tokens, 5 unused for an id without a token), the merges, and whether BOS
 * (and, for an embedding model, EOS) is added. */
static void gguf_tokenizer(mkg_file *g, const cJSON *tj, long vocab, const char *pre, int add_eos) {
    const char **tokens = xmalloc(sizeof *tokens * (size_t)vocab);
    int32_t *types = xmalloc(sizeof *types * (size_t)vocab);
    char **pads = xmalloc(sizeof *pads * (size_t)vocab);
    for (long i = 0; i < vocab; i++) tokens[i] = NULL, types[i] = 5, pads[i] = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model"), *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(model, "vocab")) {
        if (!cJSON_IsNumber(e) || !e->string)
            die("--from: tokenizer.json: vocab entry '%s' is not a token id", e->string ? e->string : "?");
        double id = e->valuedouble;
        if (!(id >= 0 && id < (double)vocab) || id != (double)(long)id)
            die("--from: tokenizer.json: vocab entry '%s' has id %g, not one of config.json's vocab_size %ld",
                e->string, id, vocab);
        tokens[(long)id] = e->string, types[(long)id] = 1;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tj, "added_tokens");
    if (added && !cJSON_IsArray(added)) die("--from: tokenizer.json: added_tokens is not a list");
    int k_added = 0;
    cJSON_ArrayForEach(e, added) {
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(e, "id"),
                    *text = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(jid) || !cJSON_IsString(text))
            die("--from: tokenizer.json: added_tokens[%d] has no number 'id' and string 'content'", k_added);
        double id = jid->valuedouble;
        if (!(id >= 0 && id < (double)vocab) || id != (double)(long)id)
            die("--from: tokenizer.json: added_tokens[%d] has id %g, not one of config.json's vocab_size %ld", k_added,
                id, vocab);
        k_added++;
        tokens[(long)id] = text->valuestring;
        types[(long)id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? 3 : 4;
    }
    for (long i = 0; i < vocab; i++)
        if (!tokens[i]) tokens[i] = pads[i] = xasprintf("[PAD%ld]", i);
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int nm = cJSON_GetArraySize(merges), k = 0;
    const char **m = xmalloc(sizeof *m * (size_t)(nm ? nm : 1));
    char **joined = xmalloc(sizeof *joined * (size_t)(nm ? nm : 1)); /* "left right" of a pair */
    cJSON_ArrayForEach(e, merges) {
        const cJSON *l = cJSON_GetArrayItem(e, 0), *r = cJSON_GetArrayItem(e, 1);
        const char *sp = cJSON_IsString(e) ? strchr(e->valuestring, ' ') : NULL;
        if (cJSON_IsString(e) ? !sp || sp == e->valuestring || !sp[1] || strchr(sp + 1, ' ')
                              : !(cJSON_IsString(l) && cJSON_IsString(r) && cJSON_GetArraySize(e) == 2))
            die("--from: tokenizer.json: merges[%d] is neither \"left right\" nor [\"left\", \"right\"]", k);
        joined[k] = cJSON_IsString(e) ? NULL : xasprintf("%s %s", l->valuestring, r->valuestring);
        m[k] = joined[k] ? joined[k] : cJSON_IsString(e) ? e->valuestring : "";
        k++;
    }
    mkg_meta_str(g, "tokenizer.ggml.model", "gpt2");
    mkg_meta_str(g, "tokenizer.ggml.pre", pre);
    mkg_meta_strs(g, "tokenizer.ggml.tokens", tokens, (uint64_t)vocab);
    mkg_meta_i32s(g, "tokenizer.ggml.token_type", types, (uint64_t)vocab);
    mkg_meta_strs(g, "tokenizer.ggml.merges", m, (uint64_t)nm);
    mkg_meta_bool(g, "tokenizer.ggml.add_bos_token", 1);
    if (add_eos) mkg_meta_bool(g, "tokenizer.ggml.add_eos_token", 1); /* an embedding model's last token */
    for (long i = 0; i < vocab; i++) free(pads[i]);
    for (int i = 0; i < nm; i++) free(joined[i]);
    free(pads), free(tokens), free(types), free(m), free(joined);
}

/* The GGUF row of Hugging Face row r of matrix t: "llama" stores row s*hd/2 + i of each head of Q
 * and K as row 2i + s (its converter interleaves them for llama.cpp's RoPE); the other
 * architectures keep the checkpoint's order (their RoPE takes it so). */
static uint64_t gguf_row(const tensor_t *t, const opts_t *o, uint64_t r) {
    if (strcmp(o->gguf_arch, "llama") || !(strstr(t->name, ".q_proj") || strstr(t->name, ".k_proj"))) return r;
    const uint64_t hd = (uint64_t)o->head_dim, w = r % hd;
    return r - w + 2 * (w % (hd / 2)) + w / (hd / 2);
}

/* gguf-q2 and gguf-q1: the f16 scales of the blocks of matrix t (codes: its ternary codes,
 * row-major in the checkpoint's order, changed in place), each beta times a factor uniform in
 * [0.5, 1.5]; gguf-q2 makes a share o->plus2 of the weights +2 (code 3), gguf-q1 each zero -1 or +1
 * (and scales beta by sqrt(0.6), ternary weights' variance, so that outputs keep their size). The
 * draws come from a generator of the matrix's own, apart from its rows'. */
static uint16_t *group_scales(uint8_t *codes, const tensor_t *t, const opts_t *o, float beta) {
    const int q1 = o->gguf_type == MKG_Q1_0;
    const uint64_t qk = q1 ? 128 : 64, nb = t->out * t->in / qk;
    if (q1 && !o->binary) beta *= sqrtf(0.6f);
    rng_t r;
    rng_seed(&r, tensor_key(o->seed, t->name) ^ 0x47524F5550ull); /* "GROUP" */
    uint16_t *scales = xmalloc(sizeof *scales * nb);
    for (uint64_t b = 0; b < nb; b++) {
        scales[b] = f32_to_f16(beta * (float)rng_uniform(&r, 0.5, 1.5));
        for (uint8_t *c = codes + b * qk; c < codes + (b + 1) * qk; c++)
            if (q1 && *c == 1)
                *c = (rng_next(&r) >> 63) ? 2 : 0;
            else if (!q1 && o->plus2 > 0 && rng_unit(&r) < o->plus2)
                *c = 3;
    }
    return scales;
}

/* Ternary matrix t (bytes: its packed codes; beta: its scale, an f16 value unless llama-packed's
 * 1/scale) as GGUF tensor name of o->gguf_type, rows in gguf_row's order. */
static uint8_t *gguf_encode(const tensor_t *t, const opts_t *o, const uint8_t *bytes, float beta, int inverted,
                            uint64_t *nbytes) {
    const uint64_t rows = t->out, cols = t->in, R = rows / 4;
    const int grouped = o->gguf_type == MKG_Q1_0 || o->gguf_type == MKG_Q2_0;
    const uint64_t qk = o->gguf_type == MKG_Q1_0 ? 128 : 64, G = grouped ? cols / qk : 0; /* blocks per row */
    if (!grouped && o->gguf_type != MKG_I2_S && cols % 256)
        die("%s has %" PRIu64 " columns, not a multiple of the 256 of a TQ block: choose sizes that are "
            "(--hidden, --intermediate)",
            t->name, cols);
    if (o->gguf_type == MKG_I2_S && rows * cols % 128)
        die("%s has %" PRIu64 " weights, not a multiple of the 128 of an I2_S group", t->name, rows * cols);
    if (grouped && cols % qk) die("internal error: %s has %" PRIu64 " columns, not whole blocks", t->name, cols);
    /* bitnet-packed's scales are f16 values; llama-packed's 1/scale is rounded to one in TQ */
    const uint16_t h = f32_to_f16(beta);
    if (!grouped && !inverted && rsr_f16_to_f32(h) != beta)
        die("internal error: the scale of %s is not an f16 value", t->name);
    uint8_t *codes = xmalloc(rows * cols), *out = xmalloc(rows * cols);
    for (uint64_t r = 0; r < rows; r++)
        for (uint64_t c = 0; c < cols; c++) codes[r * cols + c] = (bytes[(r % R) * cols + c] >> (2 * (r / R))) & 3;
    uint16_t *scales = grouped ? group_scales(codes, t, o, beta) : NULL;
    uint16_t *gs = grouped ? xmalloc(sizeof *gs * rows * G) : NULL;
    for (uint64_t r = 0; r < rows; r++) {
        const uint64_t gr = gguf_row(t, o, r);
        memcpy(out + gr * cols, codes + r * cols, cols);
        if (grouped) memcpy(gs + gr * G, scales + r * G, sizeof *gs * G);
    }
    uint8_t *enc = grouped ? mkg_encode_grouped((uint32_t)o->gguf_type, out, gs, rows * cols, nbytes)
                           : mkg_encode_ternary((uint32_t)o->gguf_type, out, rows, cols, beta, h, nbytes);
    free(codes), free(out), free(scales), free(gs);
    return enc;
}

static void gguf_matrix(mkg_file *g, const char *name, const tensor_t *t, const opts_t *o, const uint8_t *bytes,
                        float beta, int inverted) {
    uint64_t nb;
    uint8_t *enc = gguf_encode(t, o, bytes, beta, inverted, &nb);
    mkg_tensor(g, name, (uint32_t)o->gguf_type, t->in, t->out, enc, nb);
}

/* maple: the o->experts matrices (each with its scale after it) from l->t[i] on, one projection of
 * one layer's experts, as one tensor [cols, rows, experts] blk.N.ffn_{gate,up,down}_exps.weight
 * (expert e's blocks after expert e-1's); returns the index of the last one's scale. */
static size_t gguf_experts(mkg_file *g, const tlist_t *l, const opts_t *o, size_t i) {
    const tensor_t *t0 = &l->t[i];
    int layer = 0;
    char kind[8] = "";
    if (sscanf(t0->name, "model.layers.%d.mlp.experts.0.%7[a-z]_proj", &layer, kind) != 2)
        die("internal error: %s is not expert 0's", t0->name);
    uint8_t *all = NULL;
    uint64_t total = 0;
    for (long e = 0; e < o->experts; e++, i += 2) {
        const tensor_t *t = &l->t[i], *sc = &l->t[i + 1];
        uint8_t *bytes = tensor_bytes(t, o), *sb = tensor_bytes(sc, o), *enc;
        uint64_t nb;
        enc = gguf_encode(t, o, bytes, bf16_at(sb), 0, &nb);
        uint8_t *grown = realloc(all, total + nb);
        if (!grown) die("out of memory");
        all = grown;
        memcpy(all + total, enc, nb);
        total += nb;
        free(bytes), free(sb), free(enc);
    }
    char name[96];
    snprintf(name, sizeof name, "blk.%d.ffn_%s_exps.weight", layer, kind);
    mkg_tensor3(g, name, (uint32_t)o->gguf_type, t0->in, t0->out, (uint64_t)o->experts, all, total);
    return i - 1;
}

/* The keys of a mixture of experts (ARCH.expert_*): the experts, how many a token takes, their rows
 * (one per layer with --expert-ff A,B,...) and a shared expert's rows (qwen35moe). */
static void experts_metadata(mkg_file *g, const opts_t *o) {
    char key[128];
    snprintf(key, sizeof key, "%s.expert_count", o->gguf_arch);
    mkg_meta_u32(g, key, (uint32_t)o->experts);
    snprintf(key, sizeof key, "%s.expert_used_count", o->gguf_arch);
    mkg_meta_u32(g, key, (uint32_t)o->experts_used);
    snprintf(key, sizeof key, "%s.expert_feed_forward_length", o->gguf_arch);
    if (o->expert_ff_list) { /* one per layer, an i32 array */
        int32_t *ff = xmalloc(sizeof *ff * (size_t)o->layers);
        for (long l = 0; l < o->layers; l++) ff[l] = (int32_t)layer_ff(o, l);
        mkg_meta_i32s(g, key, ff, (uint64_t)o->layers);
        free(ff);
    } else {
        mkg_meta_u32(g, key, (uint32_t)o->expert_ff);
    }
    snprintf(key, sizeof key, "%s.expert_shared_feed_forward_length", o->gguf_arch);
    if (o->shared_ff) mkg_meta_u32(g, key, (uint32_t)o->shared_ff);
}

/* maple's keys: the experts' (experts_metadata), their clamp, the window and which layers have it,
 * and the windowed layers' RoPE base (10000, the global layers having none). */
static void maple_metadata(mkg_file *g, const opts_t *o) {
    experts_metadata(g, o);
    if (o->swiglu_clamp > 0) mkg_meta_f32(g, "maple.swiglu_clamp_exp", (float)o->swiglu_clamp);
    mkg_meta_u32(g, "maple.attention.sliding_window", (uint32_t)o->sliding_window);
    int32_t *swa = xmalloc(sizeof *swa * (size_t)o->layers);
    for (long l = 0; l < o->layers; l++) swa[l] = o->swa_pattern ? o->swa_pattern[l] == '1' : l % 2 == 0;
    mkg_meta_bools(g, "maple.attention.sliding_window_pattern", swa, (uint64_t)o->layers);
    free(swa);
    mkg_meta_f32(g, "maple.rope.freq_base_swa", 10000.0f);
}

/* qwen35's RoPE: a quarter of the head (Qwen3.5's partial_rotary_factor), at least one pair. */
static long qwen35_rope_dims(const opts_t *o) { return o->head_dim / 4 >= 2 ? o->head_dim / 4 / 2 * 2 : 2; }

/* qwen35's keys: the gated DeltaNet's sizes (ssm_k K heads, ssm_v V heads, of ssm_d; 4 taps),
 * every 4th layer full attention, and the three sections of the text's multi-section RoPE. */
static void qwen35_metadata(mkg_file *g, const opts_t *o) {
    char key[128];
#define KEY(k) (snprintf(key, sizeof key, "%s.%s", o->gguf_arch, k), key)
    mkg_meta_u32(g, KEY("ssm.conv_kernel"), 4);
    mkg_meta_u32(g, KEY("ssm.state_size"), (uint32_t)o->ssm_d);
    mkg_meta_u32(g, KEY("ssm.group_count"), (uint32_t)o->ssm_k);
    mkg_meta_u32(g, KEY("ssm.time_step_rank"), (uint32_t)o->ssm_v);
    mkg_meta_u32(g, KEY("ssm.inner_size"), (uint32_t)(o->ssm_v * o->ssm_d));
    mkg_meta_u32(g, KEY("full_attention_interval"), 4);
    const int32_t n = (int32_t)qwen35_rope_dims(o) / 2, sections[4] = {(n + 2) / 3, (n + 1) / 3, n / 3, 0};
    mkg_meta_i32s(g, KEY("rope.dimension_sections"), sections, 4);
#undef KEY
}

/* The metadata of the architecture o->gguf_arch ("bitnet-b1.58", bitnet.cpp's BitNet b1.58 2B-4T,
 * the same model as bitnet-packed's; "bitnet", llama.cpp's, which runs SiLU instead of ReLU²;
 * "llama"; or "qwen3", with its head dimension and Qwen3's epsilon and RoPE base) and the
 * tokenizer (when tj). */
static void gguf_metadata(mkg_file *g, const opts_t *o, const cJSON *tj) {
    const char *A = o->gguf_arch;
    char key[128];
#define META_U32(k, v) (snprintf(key, sizeof key, "%s.%s", A, k), mkg_meta_u32(g, key, (uint32_t)(v)))
    mkg_meta_str(g, "general.architecture", A);
    mkg_meta_str(g, "general.name", "rsr-mkmodel");
    mkg_meta_u32(g, "general.alignment", 32);
    META_U32("context_length", o->max_pos);
    META_U32("embedding_length", o->hidden);
    META_U32("feed_forward_length", o->intermediate);
    META_U32("block_count", o->layers + o->nextn);
    if (o->nextn) META_U32("nextn_predict_layers", o->nextn);
    META_U32("attention.head_count", o->heads);
    META_U32("attention.head_count_kv", o->kv_heads);
    META_U32("rope.dimension_count", o->qwen35 ? qwen35_rope_dims(o) : o->head_dim);
    META_U32("vocab_size", o->vocab);
    if (o->qwen3) META_U32("attention.key_length", o->head_dim), META_U32("attention.value_length", o->head_dim);
    if (o->gemma3 && o->sliding_window) META_U32("attention.sliding_window", o->sliding_window);
    if (o->maple) maple_metadata(g, o);
    if (o->moe && !o->maple) experts_metadata(g, o);
    if (o->qwen35) qwen35_metadata(g, o);
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", A);
    mkg_meta_f32(g, key, o->rms_eps ? (float)o->rms_eps : o->qwen3 ? 1e-6f : 1e-5f);
    snprintf(key, sizeof key, "%s.rope.freq_base", A);
    mkg_meta_f32(g, key, o->rope_theta ? (float)o->rope_theta : o->qwen3 ? 1e6f : 500000.0f);
    mkg_meta_u32(g, "tokenizer.ggml.bos_token_id", (uint32_t)o->bos);
    mkg_meta_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)o->eos);
    if (tj) gguf_tokenizer(g, tj, o->vocab, o->qwen3 ? "qwen2" : "llama-bpe", o->proj_norms);
    if (o->chat_template) mkg_meta_str(g, "tokenizer.chat_template", o->chat_template);
#undef META_U32
}

/* DIR/model.gguf: gguf_metadata's keys, the norms as F32, the embeddings (and an untied head) as
 * F16 when each value is one exactly, else BF16 (the checkpoint's values), or as --gguf-embed
 * says, and each ternary matrix as gguf_matrix writes it. */
uint64_t write_gguf(const tlist_t *l, const opts_t *o, const cJSON *tj) {
    mkg_file *g = mkg_new();
    gguf_metadata(g, o, tj);
    for (size_t i = 0; i < l->n; i++) {
        const tensor_t *t = &l->t[i];
        if (t->kind == K_SCALE) continue; /* with its matrix, just before it */
        if (o->moe && strstr(t->name, ".mlp.experts.")) {
            i = gguf_experts(g, l, o, i);
            continue;
        }
        char *name = gguf_name(t->name);
        if (o->qwen35 && strstr(name, ".ffn_norm.weight")) { /* qwen35 names the FFN's norm so */
            char *q = xasprintf("%.*spost_attention_norm.weight", (int)(strstr(name, "ffn_norm") - name), name);
            free(name), name = q;
        }
        uint8_t *bytes = tensor_bytes(t, o);
        if (t->kind == K_ROUTER || t->kind == K_FLOAT) { /* F32, as llama.cpp's converters write a router */
            const uint64_t n = t->shape[0] * t->shape[1];
            float *f = xmalloc(4 * n);
            for (uint64_t k = 0; k < n; k++) f[k] = bf16_at(bytes + 2 * k);
            free(bytes);
            if (t->ndim == 1)
                mkg_tensor(g, name, MKG_F32, t->shape[0], 1, (uint8_t *)f, 4 * n);
            else
                mkg_tensor(g, name, MKG_F32, t->shape[1], t->shape[0], (uint8_t *)f, 4 * n);
        } else if (t->kind == K_PACKED) {
            const tensor_t *sc = &l->t[i + 1];
            uint8_t *sb = tensor_bytes(sc, o);
            float beta = sc->inverted ? 1.0f / bf16_at(sb) : bf16_at(sb); /* as rsrc reads llama-packed */
            free(sb);
            gguf_matrix(g, name, t, o, bytes, beta, sc->inverted);
            free(bytes);
        } else if (t->kind == K_EMBED && o->gguf_embed) { /* quantised (lossy) */
            const uint64_t n = t->shape[0] * t->shape[1];
            float *f = xmalloc(4 * n);
            for (uint64_t k = 0; k < n; k++) f[k] = bf16_at(bytes + 2 * k);
            uint64_t nb;
            uint8_t *q = mkg_quantize((uint32_t)o->gguf_embed, f, n, f32_to_f16, &nb);
            free(f), free(bytes);
            mkg_tensor(g, name, (uint32_t)o->gguf_embed, t->shape[1], t->shape[0], q, nb);
        } else if (t->kind == K_EMBED) { /* F16 where every value is one exactly, else BF16 */
            const uint64_t n = t->shape[0] * t->shape[1];
            uint8_t *h = xmalloc(2 * n);
            int exact = 1;
            for (uint64_t k = 0; k < n && exact; k++) {
                float f = bf16_at(bytes + 2 * k);
                uint16_t hv = f32_to_f16(f);
                exact = f == 0 || ((hv & 0x7C00u) && rsr_f16_to_f32(hv) == f);
                h[2 * k] = (uint8_t)hv, h[2 * k + 1] = (uint8_t)(hv >> 8);
            }
            if (exact)
                free(bytes), mkg_tensor(g, name, MKG_F16, t->shape[1], t->shape[0], h, 2 * n);
            else
                free(h), mkg_tensor(g, name, MKG_BF16, t->shape[1], t->shape[0], bytes, t->nbytes);
        } else { /* a norm: F32, as llama.cpp needs them */
            const uint64_t n = t->shape[0];
            uint8_t *v = xmalloc(n * 4);
            for (uint64_t k = 0; k < n; k++) {
                float f = bf16_at(bytes + 2 * k);
                memcpy(v + 4 * k, &f, 4);
            }
            free(bytes);
            mkg_tensor(g, name, MKG_F32, n, 1, v, n * 4);
        }
        free(name);
    }
    FILE *f = open_temp(o->out_dir, "model.gguf");
    const char *path = outfiles[n_out - 1].final_path;
    if (mkg_write(g, f) != 0) die("cannot write %s: %s", path, strerror(errno));
    mkg_free(g);
    return close_file(f, path);
}
