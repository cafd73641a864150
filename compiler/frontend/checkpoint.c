/*
 * checkpoint.c — what a checkpoint means: config.json, the architecture, and the format of each
 * linear layer, turned into one internal ternary matrix type with one scale semantics
 * (y = (W_t · x_q) * beta / x_scale). Numerics follow docs/numerics.md.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rsrc.h"

static void model_matrix_dims(const rsrc_model *m, int proj, int32_t *rows, int32_t *cols);

cJSON *parse_json_file(const char *path); /* safetensors.c */

const char *const proj_names[NUM_PROJ] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

static int32_t config_int(const char *path, cJSON *cfg, const char *key, int32_t fallback, int32_t lo, int32_t hi) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) {
        if (fallback == INT32_MIN) rsrc_fatal("%s: missing '%s'", path, key);
        return fallback;
    }
    if (!cJSON_IsNumber(v) || fabs(v->valuedouble) > 9.0e15 || v->valuedouble != (double)(int64_t)v->valuedouble)
        rsrc_fatal("%s: '%s' must be an integer", path, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        rsrc_fatal("%s: '%s' = %.0f is out of range [%d, %d]", path, key, v->valuedouble, lo, hi);
    return (int32_t)v->valuedouble;
}

static double config_num(const char *path, cJSON *cfg, const char *key, double fallback, double lo, double hi) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) return fallback;
    if (!cJSON_IsNumber(v)) rsrc_fatal("%s: '%s' must be a number", path, key);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        rsrc_fatal("%s: '%s' = %g is out of range [%g, %g]", path, key, v->valuedouble, lo, hi);
    return v->valuedouble;
}

static const char *config_str(cJSON *cfg, const char *key) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The token id fields may be an integer, a list (first one wins) or null. */
static int32_t config_token(const char *path, cJSON *cfg, const char *key, int32_t vocab) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    if (!v || cJSON_IsNull(v)) return -1;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < vocab) ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        rsrc_fatal("%s: '%s' is not a token id below vocab_size %d", path, key, vocab);
    return (int32_t)v->valuedouble;
}

static const st_tensor *matrix_tensor(const rsrc_model *m, const char *name, int32_t rows, int32_t cols);
static void free_model(void *m) { model_free(m); }
static void delete_json(void *j) { cJSON_Delete(j); }

/* Whether `rest` (after "model.layers.N.") is the router, one of an expert's matrices, or a shared
 * expert's or its gate. */
static bool expert_tensor(const rsrc_model *m, const char *rest) {
    if (!strcmp(rest, "mlp.gate.weight")) return true;
    int e, used = 0;
    if (m->shared_ff && !strcmp(rest, "mlp.shared_expert_gate.weight")) return true;
    if (m->shared_ff && !strncmp(rest, "mlp.shared_expert.", 18))
        e = 0, used = 18;
    else if (sscanf(rest, "mlp.experts.%d.%n", &e, &used) != 1 || !used || e < 0 || e >= m->num_experts)
        return false;
    for (int p = PROJ_GATE; p <= PROJ_DOWN; p++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s.weight", proj_names[p] + 4); /* without "mlp." */
        if (!strcmp(rest + used, buf)) return true;
        snprintf(buf, sizeof buf, "%s.weight_scale", proj_names[p] + 4);
        if (!strcmp(rest + used, buf)) return true;
        snprintf(buf, sizeof buf, "%s.weight_group_scale", proj_names[p] + 4);
        if (!strcmp(rest + used, buf)) return true;
    }
    return false;
}

/* The tensors of a qwen35 layer after "model.layers.N." besides its norms: the gated DeltaNet's on
 * its DeltaNet layers, q, k, v, o and the q/k head norms on the others, the FFN on both. */
static const char *const deltanet_floats[] = {"linear_attn.in_proj_b.weight",
                                              "linear_attn.in_proj_a.weight",
                                              "linear_attn.conv1d.weight",
                                              "linear_attn.dt_bias",
                                              "linear_attn.ssm_a",
                                              "linear_attn.norm.weight"};
static const char *const deltanet_matrices[] = {"linear_attn.in_proj_qkv", "linear_attn.in_proj_z",
                                                "linear_attn.out_proj"};
static bool qwen35_tensor(const rsrc_model *m, int layer, const char *rest) {
    const bool dn = model_deltanet(m, layer);
    char buf[96];
    if (m->mtp && layer == m->num_layers - 1) { /* the MTP layer's own */
        static const char *const own[] = {
            "mtp.eh_proj.weight", "mtp.eh_proj.weight_scale",    "mtp.enorm.weight",
            "mtp.hnorm.weight",   "mtp.shared_head_norm.weight", "mtp.eh_proj.weight_group_scale"};
        for (size_t i = 0; i < sizeof own / sizeof *own; i++)
            if (!strcmp(rest, own[i])) return true;
    }
    for (int p = 0; p < NUM_PROJ; p++) {
        if (p <= PROJ_O && dn) continue;
        for (int k = 0; k < 3; k++) {
            snprintf(buf, sizeof buf, "%s.%s", proj_names[p],
                     k == 0   ? "weight"
                     : k == 1 ? "weight_scale"
                              : "weight_group_scale");
            if (!strcmp(rest, buf)) return true;
        }
    }
    if (!dn) return !strcmp(rest, "self_attn.q_norm.weight") || !strcmp(rest, "self_attn.k_norm.weight");
    for (size_t i = 0; i < sizeof deltanet_floats / sizeof *deltanet_floats; i++)
        if (!strcmp(rest, deltanet_floats[i])) return true;
    for (size_t i = 0; i < sizeof deltanet_matrices / sizeof *deltanet_matrices; i++)
        for (int k = 0; k < 3; k++) {
            snprintf(buf, sizeof buf, "%s.%s", deltanet_matrices[i],
                     k == 0   ? "weight"
                     : k == 1 ? "weight_scale"
                              : "weight_group_scale");
            if (!strcmp(rest, buf)) return true;
        }
    return false;
}

/* Whether the compiler reads tensor `name` of this model (or may skip it knowingly). */
static bool tensor_expected(const rsrc_model *m, const char *name) {
    if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "model.norm.weight")) return true;
    if (!strcmp(name, "lm_head.weight")) return true; /* used, or a tied copy of the embedding */
    static const char prefix[] = "model.layers.";
    if (strncmp(name, prefix, sizeof prefix - 1) != 0) return false;
    const char *digits = name + sizeof prefix - 1, *rest = digits;
    long layer = 0;
    while (*rest >= '0' && *rest <= '9' && layer <= m->num_layers) layer = layer * 10 + (*rest++ - '0');
    if (rest == digits || *rest != '.' || layer >= m->num_layers || (*digits == '0' && rest != digits + 1))
        return false;
    rest++;
    if (!strcmp(rest, "input_layernorm.weight") || !strcmp(rest, "post_attention_layernorm.weight")) return true;
    if (!strcmp(rest, "self_attn.rotary_emb.inv_freq")) return true; /* recomputed from rope_theta */
    char buf[96];
    if (m->sub_norms) {
        snprintf(buf, sizeof buf, "%s.weight", m->attn_sub_norm);
        if (!strcmp(rest, buf)) return true;
        snprintf(buf, sizeof buf, "%s.weight", m->ffn_sub_norm);
        if (!strcmp(rest, buf)) return true;
    }
    for (int p = 0; p < NUM_PROJ; p++) {
        snprintf(buf, sizeof buf, "%s.weight", proj_names[p]);
        if (!strcmp(rest, buf)) return true;
        snprintf(buf, sizeof buf, "%s.weight_scale", proj_names[p]);
        if (m->wformat == WF_PACKED && !strcmp(rest, buf)) return true;
        snprintf(buf, sizeof buf, "%s.weight_group_scale", proj_names[p]);
        if (m->wformat == WF_PACKED && !strcmp(rest, buf)) return true;
        snprintf(buf, sizeof buf, "%s.norm.weight", proj_names[p]);
        if (m->proj_norms && !strcmp(rest, buf)) return true;
    }
    if (m->num_experts && expert_tensor(m, rest)) return true;
    if (m->layer_kind) return qwen35_tensor(m, (int)layer, rest);
    if (m->qk_norm && (!strcmp(rest, "self_attn.q_norm.weight") || !strcmp(rest, "self_attn.k_norm.weight")))
        return true;
    if (m->post_norms && (!strcmp(rest, "self_attn.post_norm.weight") || !strcmp(rest, "mlp.post_norm.weight")))
        return true;
    return false;
}

/* A tensor the compiler would not read means config.json and the weights disagree (more layers
 * than num_hidden_layers, biases this architecture does not have, another model's tensors):
 * compiling anyway would silently drop part of the model. */
static void check_no_extra_tensors(const rsrc_model *m) {
    for (int i = 0; i < m->ar->ntensors; i++) {
        const st_tensor *t = &m->ar->tensors[i];
        if (!tensor_expected(m, t->name))
            rsrc_fatal("%s: tensor '%s' is not read by a %s (%s) with num_hidden_layers %d: config.json and the "
                       "weights disagree",
                       t->file, t->name, m->architecture, m->format_name, m->num_layers);
    }
}

/* sentence-transformers' pooling (1_Pooling/config.json beside the weights) as rsr_pooling; the
 * last token's when there is none. */
static int32_t st_pooling(const char *dir, rsrc_arena *ar) {
    char *path = rsrc_arena_printf(ar, "%s/1_Pooling/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return RSR_POOLING_LAST;
    fclose(f);
    cJSON *cfg = parse_json_file(path);
    rsrc_arena_own(ar, delete_json, cfg);
    static const struct {
        const char *key;
        int32_t pooling; /* 0: not supported */
    } modes[] = {{"pooling_mode_lasttoken", RSR_POOLING_LAST}, {"pooling_mode_mean_tokens", RSR_POOLING_MEAN},
                 {"pooling_mode_cls_token", RSR_POOLING_CLS},  {"pooling_mode_max_tokens", 0},
                 {"pooling_mode_mean_sqrt_len_tokens", 0},     {"pooling_mode_weightedmean_tokens", 0}};
    int32_t pooling = 0;
    const char *chosen = NULL;
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, modes[i].key))) continue;
        if (!modes[i].pooling)
            rsrc_fatal("%s: '%s' is true; rsrc pools embeddings by the last token, the mean or the first token only",
                       path, modes[i].key);
        if (chosen) rsrc_fatal("%s: both '%s' and '%s' are true; rsrc pools one way", path, chosen, modes[i].key);
        chosen = modes[i].key, pooling = modes[i].pooling;
    }
    if (!chosen) rsrc_fatal("%s: no pooling_mode_* is true", path);
    return pooling;
}

/* The BitNet embedding models' tensors are named without "model." (the checkpoint of a
 * Qwen3Model): read as the names the rest of rsrc uses, in this one place. */
static void prefix_model_names(st_archive *a) {
    int renamed = 0;
    for (int i = 0; i < a->ntensors; i++) {
        char *n = a->tensors[i].name;
        if (!strncmp(n, "model.", 6) || !strcmp(n, "lm_head.weight")) continue;
        a->tensors[i].name = xasprintf("model.%s", n);
        free(n);
        renamed++;
    }
    st_sort_and_check(a, a->path);
    if (renamed) rsrc_note(1, "%s: %d tensors named without 'model.', read as model.NAME", a->path, renamed);
}

/* Qwen3: Qwen3ForCausalLM as a dense checkpoint whose matrices are ternary per group of columns
 * (Ternary-Bonsai's "unpacked" ones: -s, 0 or +s in every group, activations per block of 32 as
 * for a qwen3 GGUF), and Qwen3Model as the BitNet embedding models (bf16 latent weights,
 * BitLinear's RMSNorm with weights before every projection, int8 activations per token, no head).
 * Both have RMSNorm of each head of q and k. */
static void config_qwen3(rsrc_model *m, cJSON *cfg, const char *cfg_path, bool quantized, rsrc_arena *ar) {
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "use_sliding_window")))
        rsrc_fatal("%s: 'use_sliding_window' is true: sliding-window attention is not supported", cfg_path);
    m->qk_norm = true;
    if (!strcmp(m->architecture, "Qwen3Model")) {
        m->wformat = WF_LATENT, m->format_name = "bitnet-embedding";
        m->proj_norms = m->sub_norms = true;
        m->attn_sub_norm = "self_attn.o_proj.norm", m->ffn_sub_norm = "mlp.down_proj.norm";
        m->act_block = 0; /* BitNet-trained: one absmax scale per token */
        m->pooling = st_pooling(m->ar->dir, ar);
        prefix_model_names(m->ar);
        return;
    }
    if (quantized)
        rsrc_fatal(
            "%s: Qwen3ForCausalLM with a quantization_config: rsrc reads Qwen3 as dense weights that are ternary "
            "per group of columns, with none",
            cfg_path);
    m->wformat = WF_GROUPED, m->format_name = "qwen3-grouped";
    m->act_block = 32; /* trained in floats: as the qwen3 GGUF files */
}

/* config.json beside the weights: the architecture, its format and shapes. */
static void config_from_json(rsrc_model *m, const char *path, rsrc_arena *ar) {
    m->ar = st_open(path);
    char *cfg_path = rsrc_arena_printf(ar, "%s/config.json", m->ar->dir);
    cJSON *cfg = parse_json_file(cfg_path);
    rsrc_arena_own(ar, delete_json, cfg);
    if (!cJSON_IsObject(cfg)) rsrc_fatal("%s: not a JSON object", cfg_path);

    cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    cJSON *arch0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(arch0)) rsrc_fatal("%s: missing 'architectures'", cfg_path);
    m->architecture = xstrdup(arch0->valuestring);
    cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    const char *qmethod = q ? config_str(q, "quant_method") : NULL;
    const char *linear_class = q ? config_str(q, "linear_class") : NULL;
    const char *qmode = q ? config_str(q, "quantization_mode") : NULL;
    cJSON *use_rms = q ? cJSON_GetObjectItemCaseSensitive(q, "use_rms_norm") : NULL;
    if (q && (!qmethod || strcmp(qmethod, "bitnet") != 0))
        rsrc_fatal("%s: quantization_config.quant_method '%s' is not supported (only 'bitnet')", cfg_path,
                   qmethod ? qmethod : "(missing)");

    const char *act = config_str(cfg, "hidden_act");
    if (!act) act = "silu";
    if (strcmp(m->architecture, "BitNetForCausalLM") == 0) {
        if (!q) rsrc_fatal("%s: BitNetForCausalLM without a quantization_config", cfg_path);
        m->sub_norms = true;
        m->attn_sub_norm = "self_attn.attn_sub_norm";
        m->ffn_sub_norm = "mlp.ffn_sub_norm";
        m->wformat = qmode && strcmp(qmode, "online") == 0 ? WF_LATENT : WF_PACKED;
        m->format_name = m->wformat == WF_LATENT ? "bitnet-bf16" : "bitnet-packed";
        if (linear_class && strcmp(linear_class, "autobitlinear") != 0)
            rsrc_fatal("%s: BitNetForCausalLM with linear_class '%s' (expected 'autobitlinear')", cfg_path,
                       linear_class);
    } else if (strcmp(m->architecture, "LlamaForCausalLM") == 0) {
        if (!q)
            rsrc_fatal("%s: LlamaForCausalLM without a bitnet quantization_config is not a ternary model", cfg_path);
        m->wformat = WF_PACKED;
        m->bitlinear_norm = cJSON_IsTrue(use_rms);
        m->scale_inverted = !m->bitlinear_norm && !(linear_class && strcmp(linear_class, "autobitlinear") == 0);
        m->format_name = m->bitlinear_norm ? "falcon-e" : "llama-packed";
        if (linear_class && strcmp(linear_class, "bitlinear") != 0 && strcmp(linear_class, "autobitlinear") != 0)
            rsrc_fatal("%s: unknown quantization_config.linear_class '%s'", cfg_path, linear_class);
        m->bitlinear_eps = (float)config_num(cfg_path, q, "rms_norm_eps", 1e-6, 0, 1);
    } else if (strcmp(m->architecture, "BitnetForCausalLM") == 0) {
        m->wformat = WF_LATENT;
        m->sub_norms = true;
        m->attn_sub_norm = "self_attn.inner_attn_ln";
        m->ffn_sub_norm = "mlp.ffn_layernorm";
        m->format_name = "1bitllm";
    } else if (!strcmp(m->architecture, "Qwen3ForCausalLM") || !strcmp(m->architecture, "Qwen3Model")) {
        config_qwen3(m, cfg, cfg_path, q != NULL, ar);
    } else {
        rsrc_fatal("%s: unknown architecture '%s' (supported: BitNetForCausalLM, LlamaForCausalLM, BitnetForCausalLM, "
                   "Qwen3ForCausalLM, Qwen3Model)",
                   cfg_path, m->architecture);
    }
    if (strcmp(act, "relu2") == 0)
        m->activation = RSR_ACT_RELU2;
    else if (strcmp(act, "silu") == 0)
        m->activation = RSR_ACT_SILU;
    else
        rsrc_fatal("%s: hidden_act '%s' is not supported (relu2, silu)", cfg_path, act);

    const int32_t big = 1 << 24;
    m->hidden = config_int(cfg_path, cfg, "hidden_size", INT32_MIN, 1, 65535);
    m->intermediate = config_int(cfg_path, cfg, "intermediate_size", INT32_MIN, 1, 65535);
    m->num_layers = config_int(cfg_path, cfg, "num_hidden_layers", INT32_MIN, 1, 4096);
    m->num_heads = config_int(cfg_path, cfg, "num_attention_heads", INT32_MIN, 1, 4096);
    m->num_kv_heads = config_int(cfg_path, cfg, "num_key_value_heads", m->num_heads, 1, 4096);
    m->vocab = config_int(cfg_path, cfg, "vocab_size", INT32_MIN, 1, big);
    m->max_positions = config_int(cfg_path, cfg, "max_position_embeddings", 2048, 1, big);
    if (m->hidden % m->num_heads)
        rsrc_fatal("%s: hidden_size %d is not divisible by num_attention_heads %d", cfg_path, m->hidden, m->num_heads);
    m->head_dim = config_int(cfg_path, cfg, "head_dim", m->hidden / m->num_heads, 2, 65535);
    if (m->head_dim % 2) rsrc_fatal("%s: head_dim %d is odd; RoPE needs pairs", cfg_path, m->head_dim);
    if (m->num_heads % m->num_kv_heads)
        rsrc_fatal("%s: num_attention_heads %d is not divisible by num_key_value_heads %d", cfg_path, m->num_heads,
                   m->num_kv_heads);
    /* RSR column indices are 16-bit: o_proj reads heads x head_dim columns. */
    if ((int64_t)m->num_heads * m->head_dim > 65535)
        rsrc_fatal("%s: num_attention_heads %d x head_dim %d = %lld is above 65535, the widest matrix input supported",
                   cfg_path, m->num_heads, m->head_dim, (long long)m->num_heads * m->head_dim);
    m->rms_eps = (float)config_num(cfg_path, cfg, "rms_norm_eps", 1e-5, 0, 1);
    m->rope_theta = config_num(cfg_path, cfg, "rope_theta", 10000.0, 1.0, 1e12);
    cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (rs && !cJSON_IsNull(rs))
        rsrc_fatal("%s: 'rope_scaling' is not supported yet (plain RoPE only); remove it to run without scaling",
                   cfg_path);
    m->bos = config_token(cfg_path, cfg, "bos_token_id", m->vocab);
    m->eos = config_token(cfg_path, cfg, "eos_token_id", m->vocab);
    cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    m->tied = tie ? cJSON_IsTrue(tie) : strcmp(m->architecture, "BitNetForCausalLM") == 0;
    if (m->proj_norms) m->tied = true; /* an embedding model: no head */
    if (!m->tied && !st_find(m->ar, "lm_head.weight")) {
        if (tie) rsrc_fatal("%s: tie_word_embeddings is false but there is no tensor 'lm_head.weight'", m->ar->path);
        m->tied = true;
    }
}

static void find_group_cols(rsrc_model *m);

rsrc_model *model_load(const char *path) {
    rsrc_arena *ar = rsrc_arena_open();
    rsrc_model *m = xcalloc(1, sizeof *m);
    rsrc_arena_own(ar, free_model, m); /* the result, released if the load fails */
    char *lone = st_lone_gguf(path);   /* a directory holding only model.gguf, say */
    if (lone) {
        rsrc_arena_own(ar, free, lone);
        rsrc_note(1, "%s: no safetensors checkpoint; reading %s", path, lone);
    }
    size_t n = strlen(path); /* a .gguf without the magic: "not a GGUF file", not a safetensors error */
    if (lone || gguf_is(path) || (n > 5 && !strcmp(path + n - 5, ".gguf")))
        gguf_model_load(m, lone ? lone : path);
    else
        config_from_json(m, path, ar);

    /* Every non-matrix tensor the runtime needs, checked now so errors come before any work. */
    model_require(m, "model.embed_tokens.weight", 2, m->vocab, m->hidden);
    if (!m->tied) model_require(m, "lm_head.weight", 2, m->vocab, m->hidden);
    model_require(m, "model.norm.weight", 1, m->hidden, 0);
    for (int l = 0; l < m->num_layers; l++) {
        char n[192];
        snprintf(n, sizeof n, "model.layers.%d.input_layernorm.weight", l);
        model_require(m, n, 1, m->hidden, 0);
        snprintf(n, sizeof n, "model.layers.%d.post_attention_layernorm.weight", l);
        model_require(m, n, 1, m->hidden, 0);
        for (int j = 0; j < 2 && m->post_norms; j++) {
            snprintf(n, sizeof n, "model.layers.%d.%s.post_norm.weight", l, j ? "mlp" : "self_attn");
            model_require(m, n, 1, m->hidden, 0);
        }
        if (m->sub_norms) {
            snprintf(n, sizeof n, "model.layers.%d.%s.weight", l, m->attn_sub_norm);
            model_require(m, n, 1, (int64_t)m->num_heads * m->head_dim, 0);
            snprintf(n, sizeof n, "model.layers.%d.%s.weight", l, m->ffn_sub_norm);
            model_require(m, n, 1, m->intermediate, 0);
        }
        for (int p = 0; p < NUM_PROJ && m->proj_norms; p++) {
            if (p == PROJ_O || p == PROJ_DOWN) continue; /* the sub-norms, above */
            snprintf(n, sizeof n, "model.layers.%d.%s.norm.weight", l, proj_names[p]);
            model_require(m, n, 1, m->hidden, 0);
        }
    }
    for (int l = 0; l < m->num_layers && m->layer_kind; l++) { /* qwen35: each layer's own small tensors */
        char n[192];
        const int64_t H = m->hidden, HD = m->dn_head, Hv = m->dn_v_heads, conv = 2 * m->dn_k_heads * HD + Hv * HD;
        if (!model_deltanet(m, l)) {
            for (int j = 0; j < 2; j++) {
                snprintf(n, sizeof n, "model.layers.%d.self_attn.%s_norm.weight", l, j ? "k" : "q");
                model_require(m, n, 1, m->head_dim, 0);
            }
            continue;
        }
        const int64_t d0[6] = {Hv, Hv, conv, Hv, Hv, HD}, d1[6] = {H, H, m->dn_conv, 0, 0, 0};
        for (int j = 0; j < 6; j++) {
            snprintf(n, sizeof n, "model.layers.%d.%s", l, deltanet_floats[j]);
            model_require(m, n, d1[j] ? 2 : 1, d0[j], d1[j]);
        }
    }
    for (int l = 0; l < m->num_layers && m->num_experts; l++) {
        char n[192];
        snprintf(n, sizeof n, "model.layers.%d.mlp.gate.weight", l);
        model_require(m, n, 2, m->num_experts, m->hidden);
        snprintf(n, sizeof n, "model.layers.%d.mlp.shared_expert_gate.weight", l);
        if (m->shared_ff) model_shared_gate(m, n);
    }
    if (m->mtp) { /* the MTP layer's norms of the embedding and the hidden state, and of its output */
        static const char *const norms[] = {"enorm", "hnorm", "shared_head_norm"};
        for (int j = 0; j < 3; j++) {
            char *n = model_mtp_name(m, norms[j]);
            rsrc_arena_own(ar, free, n);
            if (j < 2 || st_find(m->ar, n)) model_require(m, n, 1, m->hidden, 0);
        }
        char *n = model_mtp_name(m, "eh_proj");
        rsrc_arena_own(ar, free, n);
        matrix_tensor(m, n, m->hidden, 2 * m->hidden);
    }
    /* and every matrix: present, its dtype and shape, a packed one's scale (the codes themselves
     * are read when the matrix is compiled) */
    for (int l = 0; l < m->num_layers; l++)
        for (int j = 0; j < model_layer_matrices(m); j++) {
            int32_t rows, cols;
            int p;
            char *name = model_layer_matrix(m, l, j, &rows, &cols, &p);
            if (!name) continue; /* a DeltaNet layer's empty slot */
            rsrc_arena_own(ar, free, name);
            matrix_tensor(m, name, rows, cols);
        }
    check_no_extra_tensors(m);
    if (m->wformat == WF_GROUPED) find_group_cols(m);
    rsrc_arena_disown(ar, m);
    rsrc_arena_close(ar);
    return m;
}

void model_free(rsrc_model *m) {
    if (!m) return;
    st_close(m->ar);
    gguf_lazy_free(m->lazy);
    free((char *)m->architecture);
    free(m->tokenizer);
    free(m->chat_template);
    free(m->layer_window);
    free(m->expert_ff);
    free(m->swiglu_clamp);
    free(m->layer_kind);
    fold_free(m);
    free(m);
}

char *model_tensor_name(const rsrc_model *m, int layer, int proj) {
    (void)m;
    return xasprintf("model.layers.%d.%s.weight", layer, proj_names[proj]);
}

int model_layer_matrices(const rsrc_model *m) {
    return m->num_experts ? 4 + 3 * (m->num_experts + (m->shared_ff > 0)) : NUM_PROJ;
}

int32_t model_total_matrices(const rsrc_model *m) {
    int32_t n = m->num_layers * model_layer_matrices(m);
    for (int l = 0; l < m->num_layers; l++) n -= model_deltanet(m, l); /* no v */
    return n + m->mtp;                                                 /* eh_proj */
}

char *model_mtp_name(const rsrc_model *m, const char *what) {
    return xasprintf("model.layers.%d.mtp.%s.weight", m->num_layers - 1, what);
}

char *model_layer_matrix(const rsrc_model *m, int l, int j, int32_t *rows, int32_t *cols, int *proj) {
    if (model_deltanet(m, l) && j <= PROJ_O) { /* [q|k|v], z, none, the output projection */
        const int32_t vd = m->dn_v_heads * m->dn_head, conv = 2 * m->dn_k_heads * m->dn_head + vd;
        *proj = j;
        if (j == PROJ_V) return NULL;
        *rows = j == PROJ_Q ? conv : j == PROJ_K ? vd : m->hidden, *cols = j == PROJ_O ? vd : m->hidden;
        return xasprintf("model.layers.%d.%s.weight", l, deltanet_matrices[j == PROJ_O ? 2 : j]);
    }
    if (!m->num_experts || j < PROJ_GATE) {
        *proj = j;
        model_matrix_dims(m, j, rows, cols);
        if (j == PROJ_Q && m->attn_gate) *rows *= 2; /* [q | gate] per head */
        return model_tensor_name(m, l, j);
    }
    const int shared = m->shared_ff > 0, e = (j - PROJ_GATE) / 3 - shared, p = PROJ_GATE + (j - PROJ_GATE) % 3;
    const int32_t ff = e < 0 ? m->shared_ff : m->expert_ff[l];
    *proj = p;
    *rows = p == PROJ_DOWN ? m->hidden : ff, *cols = p == PROJ_DOWN ? ff : m->hidden;
    if (e < 0) return xasprintf("model.layers.%d.mlp.shared_expert.%s.weight", l, proj_names[p] + 4);
    return xasprintf("model.layers.%d.mlp.experts.%d.%s.weight", l, e, proj_names[p] + 4);
}

static bool is_float(enum st_dtype t) { return t == ST_F32 || t == ST_F16 || t == ST_BF16; }

static void model_matrix_dims(const rsrc_model *m, int proj, int32_t *rows, int32_t *cols) {
    const int32_t q_out = m->num_heads * m->head_dim, kv_out = m->num_kv_heads * m->head_dim;
    const int32_t out_dim[NUM_PROJ] = {q_out, kv_out, kv_out, m->hidden, m->intermediate, m->intermediate, m->hidden};
    const int32_t in_dim[NUM_PROJ] = {m->hidden, m->hidden, m->hidden, q_out, m->hidden, m->hidden, m->intermediate};
    *rows = out_dim[proj], *cols = in_dim[proj];
}

/* A shared expert's gate: [1, hidden] (a Linear to one output) or [hidden] (GGUF's), floats. */
const st_tensor *model_shared_gate(const rsrc_model *m, const char *name) {
    const st_tensor *t = st_find(m->ar, name);
    return t && t->ndim == 1 ? model_require(m, name, 1, m->hidden, 0) : model_require(m, name, 2, 1, m->hidden);
}

/* Finds a tensor and checks its rank and shape (d1 ignored for 1-D); float dtypes only, or a GGUF
 * embedding's or head's group-scaled blocks (st_block_dtype) for a 2-D one. */
const st_tensor *model_require(const rsrc_model *m, const char *name, int ndim, int64_t d0, int64_t d1) {
    const st_tensor *t = st_find(m->ar, name);
    if (!t) rsrc_fatal("%s: missing tensor '%s'", m->ar->path, name);
    if (!is_float(t->dtype) && !(ndim == 2 && st_block_dtype(t->dtype) >= 0))
        rsrc_fatal("%s: tensor '%s': dtype %s where a float tensor was expected", t->file, name,
                   st_dtype_name(t->dtype));
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        char have[96] = "[", want[64];
        for (int i = 0; i < t->ndim; i++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        strcat(have, "]");
        if (ndim == 1)
            snprintf(want, sizeof want, "[%lld]", (long long)d0);
        else
            snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
        rsrc_fatal("%s: tensor '%s': shape %s does not match config.json, which implies %s", t->file, name, have, want);
    }
    return t;
}

static bool finite_positive(float f) { return isfinite(f) && f > 0; }

/* The packed weight tensor of a rows x cols matrix, its dtype and shape checked. */
static const st_tensor *packed_tensor(const rsrc_model *m, const char *name, int32_t rows, int32_t cols) {
    const st_tensor *t = st_find(m->ar, name);
    if (t->dtype != ST_U8)
        rsrc_fatal("%s: tensor '%s': dtype %s, but this %s checkpoint stores packed U8 weights", t->file, name,
                   st_dtype_name(t->dtype), m->format_name);
    if (rows % 4) rsrc_fatal("%s: tensor '%s': %d output rows cannot be packed four to a byte", t->file, name, rows);
    if (t->ndim != 2 || t->shape[0] != rows / 4 || t->shape[1] != cols)
        rsrc_fatal(
            "%s: tensor '%s': shape [%lld, %lld] does not match config.json, which implies packed [%d, %d] for a "
            "%dx%d matrix",
            t->file, name, (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0), rows / 4, cols, rows,
            cols);
    return t;
}

/* The beta of a packed matrix from its per-tensor scale tensor NAME_scale, checked. */
static float packed_beta(const rsrc_model *m, const char *name) {
    rsrc_arena *ar = rsrc_arena_open();
    char *sname = rsrc_arena_printf(ar, "%s_scale", name);
    const st_tensor *s = st_find(m->ar, sname);
    if (!s) rsrc_fatal("%s: missing tensor '%s' (the scale of '%s')", m->ar->path, sname, name);
    if (!is_float(s->dtype))
        rsrc_fatal("%s: tensor '%s': dtype %s, expected a float scale", s->file, sname, st_dtype_name(s->dtype));
    uint64_t count = s->nbytes / (s->dtype == ST_F32 ? 4 : 2);
    if (count != 1)
        rsrc_fatal("%s: tensor '%s': %llu elements, expected one per-tensor scale", s->file, sname,
                   (unsigned long long)count);
    float ws = st_get_f32(s, 0);
    if (!finite_positive(ws))
        rsrc_fatal("%s: tensor '%s': scale %g is not a finite positive number", s->file, sname, ws);
    float beta = m->scale_inverted ? 1.0f / ws : ws;
    if (!finite_positive(beta)) rsrc_fatal("%s: tensor '%s': scale %g inverts to %g", s->file, sname, ws, beta);
    rsrc_arena_close(ar);
    return beta;
}

/* A matrix's tensor, present and of the dtype and shape its format and config.json imply; a packed
 * one's scale too. */
static const st_tensor *matrix_tensor(const rsrc_model *m, const char *name, int32_t rows, int32_t cols) {
    if (!st_find(m->ar, name)) rsrc_fatal("%s: missing tensor '%s'", m->ar->path, name);
    if (m->wformat != WF_PACKED) return model_require(m, name, 2, rows, cols);
    const st_tensor *t = packed_tensor(m, name, rows, cols);
    if (t->data) packed_beta(m, name); /* a GGUF's, converted later: checked then (gguf_model_prepare) */
    return t;
}

/* A packed matrix's scales per group of columns, NAME_group_scale f32 [rows][groups] (GGUF's Q1_0
 * and Q2_0), into out->scales; false when there is none. */
static bool load_group_scales(const rsrc_model *m, const char *name, int32_t rows, int32_t cols, ternary_matrix *out) {
    char *sname = xasprintf("%s_group_scale", name);
    const st_tensor *s = st_find(m->ar, sname);
    free(sname);
    if (!s) return false;
    int64_t groups = s->ndim == 2 ? s->shape[1] : 0;
    if (s->dtype != ST_F32 || s->ndim != 2 || s->shape[0] != rows || groups < 1 || cols % groups)
        rsrc_fatal("%s: tensor '%s_group_scale' is not f32 [%d][a divisor of %d]", s->file, name, rows, cols);
    out->scale_cols = (int32_t)(cols / groups);
    out->scales = xmalloc((size_t)s->nbytes);
    memcpy(out->scales, s->data, (size_t)s->nbytes);
    for (uint64_t i = 0; i < (uint64_t)rows * (uint64_t)groups; i++)
        if (!isfinite(out->scales[i]))
            rsrc_fatal("%s: tensor '%s': scale %g of row %llu, columns from %llu, is not finite", s->file, name,
                       out->scales[i], (unsigned long long)(i / (uint64_t)groups),
                       (unsigned long long)(i % (uint64_t)groups * (uint64_t)out->scale_cols));
    return true;
}

/* Unpacks uint8 [rows/4, cols]: the code of row i*R + r sits in bits 2i..2i+1 of P[r][c]; code 3
 * is +2 where the matrix has group scales (Q2_0), else invalid. */
static void load_packed(const rsrc_model *m, const st_tensor *t, const char *name, int32_t rows, int32_t cols,
                        ternary_matrix *out) {
    const bool grouped = load_group_scales(m, name, rows, cols, out);
    int32_t R = rows / 4;
    for (int32_t r = 0; r < R; r++)
        for (int32_t c = 0; c < cols; c++) {
            uint8_t byte = t->data[(size_t)r * (size_t)cols + (size_t)c];
            for (int i = 0; i < 4; i++) {
                int code = (byte >> (2 * i)) & 3;
                if (code == 3 && !grouped)
                    rsrc_fatal("%s: tensor '%s': code 3 at row %d, col %d is not a valid ternary code", t->file, name,
                               i * R + r, c);
                out->w[(size_t)(i * R + r) * (size_t)cols + (size_t)c] = (int8_t)(code - 1);
            }
        }
    out->beta = packed_beta(m, name);
}

/* Absmean ternarisation at compile time: beta = mean|W| (double sum), W_t = round(clamp(W/beta)). */
static void load_latent(const st_tensor *t, const char *name, int32_t rows, int32_t cols, ternary_matrix *out) {
    size_t n = (size_t)rows * (size_t)cols;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        float w = st_get_f32(t, (int64_t)i);
        if (!isfinite(w))
            rsrc_fatal("%s: tensor '%s': %g at row %zu, col %zu is not finite", t->file, name, w, i / (size_t)cols,
                       i % (size_t)cols);
        sum += fabs((double)w);
    }
    float beta = fmaxf((float)(sum / (double)n), 1e-5f);
    for (size_t i = 0; i < n; i++) {
        float v = rintf(fminf(fmaxf(st_get_f32(t, (int64_t)i) / beta, -1.0f), 1.0f));
        out->w[i] = (int8_t)v;
    }
    out->beta = beta;
}

/* ---- WF_GROUPED: a dense matrix ternary per group of columns (docs/numerics.md, "Group scales") ---- */

/* Whether weights [at, at + n) of t are ternary: each -s, 0 or +s for one s >= 0, their common
 * |w| as stored, widened to f32 (0 when all are zero), into *s; their values -1, 0, 1 into codes
 * (unless NULL). Else false, bad[0] the index of a weight of the largest magnitude and bad[1] one's
 * that is neither ±s nor 0 (or not finite). */
static bool group_ternary(const st_tensor *t, int64_t at, int32_t n, float *s, int8_t *codes, int64_t bad[2]) {
    float top = 0;
    bad[0] = at;
    for (int64_t i = at; i < at + n; i++) {
        float a = fabsf(st_get_f32(t, i));
        if (isfinite(a) && a > top) top = a, bad[0] = i;
    }
    *s = top;
    for (int64_t i = at; i < at + n; i++) {
        float w = st_get_f32(t, i);
        int8_t c = w == 0 ? 0 : w == top ? 1 : w == -top ? -1 : 2;
        if (c == 2) {
            bad[1] = i;
            return false;
        }
        if (codes) codes[i - at] = c;
    }
    return true;
}

static noreturn void not_grouped(const st_tensor *t, const char *name, int32_t cols, int64_t at, int32_t G,
                                 const int64_t bad[2], const char *why) {
    rsrc_fatal(
        "%s: tensor '%s': row %lld, columns %lld-%lld hold %g (column %lld) and %g (column %lld), not -s, 0 and +s "
        "for one s: %s",
        t->file, name, (long long)(at / cols), (long long)(at % cols), (long long)(at % cols + G - 1),
        st_get_f32(t, bad[0]), (long long)(bad[0] % cols), st_get_f32(t, bad[1]), (long long)(bad[1] % cols), why);
}

/* The largest of 128, 64 and 32 columns per group at which every row of tensor `name` is ternary
 * (two groups of 32 agree when their scales do or one is all zero); refused, naming the first
 * group of 32 that is not, when none is. */
static int32_t tensor_group_cols(const rsrc_model *m, const char *name, int32_t rows, int32_t cols) {
    const st_tensor *t = matrix_tensor(m, name, rows, cols);
    if (cols % 32)
        rsrc_fatal("%s: tensor '%s': %d columns do not split into groups of 32, 64 or 128", t->file, name, cols);
    bool ok64 = cols % 64 == 0, ok128 = cols % 128 == 0;
    float s[4] = {0};
    for (int32_t r = 0; r < rows; r++)
        for (int32_t g = 0; g < cols / 32; g++) {
            int64_t at = (int64_t)r * cols + (int64_t)g * 32, bad[2];
            if (!group_ternary(t, at, 32, &s[g % 4], NULL, bad))
                not_grouped(t, name, cols, at, 32, bad,
                            "not ternary per group of 128, 64 or 32 columns (a float model, not a ternary one)");
            float a = s[g % 4], b = s[g % 4 ^ 1];
            if (g % 2 && a != 0 && b != 0 && a != b) ok64 = ok128 = false;
            if (g % 4 == 3)
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) ok128 &= s[i] == 0 || s[j] == 0 || s[i] == s[j];
        }
    st_release(t);
    return ok128 ? 128 : ok64 ? 64 : 32;
}

/* The model's columns per group: the largest at which layer 0's seven matrices are all ternary
 * (the rest are held to it as they are compiled). */
static void find_group_cols(rsrc_model *m) {
    m->group_cols = 128;
    for (int j = 0; j < model_layer_matrices(m); j++) {
        int32_t rows, cols, g;
        int p;
        char *name = model_layer_matrix(m, 0, j, &rows, &cols, &p);
        g = tensor_group_cols(m, name, rows, cols);
        free(name);
        if (g < m->group_cols) m->group_cols = g;
    }
    m->format_name = m->group_cols == 128  ? "qwen3-grouped-g128"
                     : m->group_cols == 64 ? "qwen3-grouped-g64"
                                           : "qwen3-grouped-g32";
    rsrc_note(1, "%s: matrices ternary per group of %d columns (one scale each, from layer 0's matrices)", m->ar->path,
              m->group_cols);
}

/* The codes and group scales of a WF_GROUPED matrix, as load_group_scales and load_packed give a
 * GGUF's Q2_0: scale_cols = group_cols, scales [rows][groups], beta 1. */
static void load_grouped(const rsrc_model *m, const st_tensor *t, const char *name, int32_t rows, int32_t cols,
                         ternary_matrix *out) {
    const int32_t G = m->group_cols, groups = cols / G;
    if (cols % G)
        rsrc_fatal("%s: tensor '%s': %d columns are not a multiple of the model's groups of %d", t->file, name, cols,
                   G);
    out->scale_cols = G;
    out->scales = xmalloc(sizeof *out->scales * (size_t)rows * (size_t)groups);
    for (int32_t r = 0; r < rows; r++)
        for (int32_t g = 0; g < groups; g++) {
            int64_t at = (int64_t)r * cols + (int64_t)g * G, bad[2];
            if (!group_ternary(t, at, G, &out->scales[(size_t)r * (size_t)groups + (size_t)g], out->w + at, bad)) {
                char why[96];
                snprintf(why, sizeof why, "not ternary per group of %d columns, as layer 0's matrices are", G);
                not_grouped(t, name, cols, at, G, bad, why);
            }
        }
    out->beta = 1.0f;
}

static void free_matrix(void *t) { ternary_matrix_free(t); }

/* Shapes are checked against the tensor before anything is allocated: a small file claiming a
 * huge matrix is refused, not obeyed. */
void model_load_matrix(const rsrc_model *m, const char *name, int32_t rows, int32_t cols, ternary_matrix *out) {
    const st_tensor *t = matrix_tensor(m, name, rows, cols);
    rsrc_arena *ar = rsrc_arena_open();
    void *converted = gguf_model_prepare(m, name); /* a GGUF's: converted now, freed with the arena */
    rsrc_arena_own(ar, gguf_model_release, converted);
    out->name = xstrdup(name);
    out->rows = out->src_rows = rows;
    out->cols = cols;
    out->w = xmalloc((size_t)rows * (size_t)cols);
    rsrc_arena_own(ar, free_matrix, out);
    if (m->wformat == WF_PACKED)
        load_packed(m, t, name, rows, cols, out);
    else if (m->wformat == WF_GROUPED)
        load_grouped(m, t, name, rows, cols, out);
    else
        load_latent(t, name, rows, cols, out);
    if (!converted) st_release(t);
    rsrc_arena_disown(ar, out);
    rsrc_arena_close(ar);
    size_t n = (size_t)rows * (size_t)cols, zeros = 0;
    for (size_t i = 0; i < n; i++) zeros += out->w[i] == 0;
    out->binary = zeros == 0;
}

void ternary_matrix_free(ternary_matrix *t) {
    free(t->name);
    free(t->w);
    free(t->scales);
    t->name = NULL;
    t->w = NULL;
    t->scales = NULL;
}

void ternary_matrix_expand(ternary_matrix *t, int32_t act_block) {
    if (!act_block && !t->scales) return;
    int32_t unit = act_block ? act_block : t->scale_cols, R = t->src_rows;
    if (t->scales && t->scale_cols % unit)
        rsrc_fatal("tensor '%s': groups of %d columns do not split into the activation's blocks of %d", t->name,
                   t->scale_cols, unit);
    if (t->cols % unit) rsrc_fatal("tensor '%s': %d columns are not a multiple of %d", t->name, t->cols, unit);
    if (!t->scales) { /* one scale: the same for every row and unit */
        t->scales = xmalloc(sizeof *t->scales * (size_t)R);
        for (int32_t r = 0; r < R; r++) t->scales[r] = t->beta;
        t->scale_cols = t->cols;
    }
    bool plus2 = false;
    for (size_t i = 0; i < (size_t)R * (size_t)t->cols && !plus2; i++) plus2 = t->w[i] == 2;
    t->unit_cols = unit, t->planes = plus2 ? 2 : 1;
    int64_t rows = (int64_t)(t->cols / unit) * t->planes * R;
    if (rows > INT32_MAX / 2)
        rsrc_fatal("tensor '%s': %lld rows of units of %d columns are too many", t->name, (long long)rows, unit);
    t->rows = (int32_t)rows;
    t->binary = false; /* a unit's rows are zero outside its columns */
}

/* A mixture of experts' line of --print=model: experts, their rows and clamp per layer. */
static void print_experts(const rsrc_model *m, FILE *out) {
    if (!m->num_experts) return;
    fprintf(out, "  experts=%d used=%d gating=softmax norm_weights=yes rope_global=%s expert_ff=", m->num_experts,
            m->experts_used, m->nope_global ? "none" : "yes");
    for (int32_t l = 0; l < model_layers_proper(m); l++) fprintf(out, "%s%d", l ? "," : "", m->expert_ff[l]);
    fputs(" swiglu_clamp=", out);
    for (int32_t l = 0; l < model_layers_proper(m); l++) fprintf(out, "%s%g", l ? "," : "", (double)m->swiglu_clamp[l]);
    if (m->shared_ff) fprintf(out, " shared_ff=%d shared_gate=sigmoid", m->shared_ff);
    fputc('\n', out);
}

void model_print(const rsrc_model *m, FILE *out) {
    fprintf(out, "model %s format=%s\n", m->architecture, m->format_name);
    fprintf(out, "  hidden=%d intermediate=%d layers=%d heads=%d kv_heads=%d head_dim=%d vocab=%d max_pos=%d\n",
            m->hidden, m->intermediate, model_layers_proper(m), m->num_heads, m->num_kv_heads, m->head_dim, m->vocab,
            m->max_positions);
    fprintf(out, "  act=%s sub_norms=%s tied=%s scale=%s bitlinear_norm=%s rms_eps=%g rope_theta=%g\n",
            m->activation == RSR_ACT_RELU2  ? "relu2"
            : m->activation == RSR_ACT_GELU ? "gelu"
                                            : "silu",
            m->sub_norms ? "yes" : "no", m->tied ? "yes" : "no", m->scale_inverted ? "inverted" : "direct",
            m->bitlinear_norm ? "yes" : "no", m->rms_eps, m->rope_theta);
    fprintf(out, "  qk_norm=%s proj_norms=%s act_block=%d%s pooling=%s\n", m->qk_norm ? "yes" : "no",
            m->proj_norms ? "yes" : "no", m->act_block, m->act_quant == RSR_ACT_Q8_K ? " (q8_k)" : "",
            m->pooling == RSR_POOLING_MEAN  ? "mean"
            : m->pooling == RSR_POOLING_CLS ? "first"
                                            : "last");
    print_experts(m, out);
    if (m->layer_kind) { /* qwen35 */
        fputs("  deltanet layers=", out);
        for (int32_t l = 0, n = 0; l < m->num_layers; l++)
            if (model_deltanet(m, l)) fprintf(out, "%s%d", n++ ? "," : "", l);
        fprintf(out, " k_heads=%d v_heads=%d head=%d conv=%d rope_dims=%d attn_gate=%s mtp_layers=%d", m->dn_k_heads,
                m->dn_v_heads, m->dn_head, m->dn_conv, m->rope_dims, m->attn_gate ? "yes" : "no", m->mtp_layers);
        if (m->mtp) {
            char *shn = model_mtp_name(m, "shared_head_norm");
            fprintf(out, " (read: layer %d, its head norm %s)\n", m->num_layers - 1,
                    st_find(m->ar, shn) ? "its own" : "the model's");
            free(shn);
        } else
            fputs(" (not read)\n", out);
    }
    if (!m->post_norms && !m->layer_window && !m->embed_scale && !m->attn_scale) return;
    fprintf(out,
            "  post_norms=%s embed_scale=%g attn_scale=%g rope_theta_swa=%g windows=", m->post_norms ? "yes" : "no",
            m->embed_scale, m->attn_scale, m->rope_theta_swa);
    for (int32_t l = 0; l < m->num_layers; l++)
        fprintf(out, "%s%d", l ? "," : "", m->layer_window ? m->layer_window[l] : 0);
    fputc('\n', out);
}

/* What one matrix costs while it is compiled (rsr.c and kernel.c): its unpacked weights, one
 * byte each, and the RSR index at block size k — a permutation of 2 bytes per column per block,
 * segment codes and lengths, and the loop kernel's packed segment words. The largest matrix
 * decides: matrices are compiled one at a time and freed. Without --rsr-k, k = 1 bounds them all. */
static uint64_t matrix_compile_bytes(int64_t rows, int64_t cols, int k) {
    uint64_t blocks = (uint64_t)((rows + k - 1) / k), codes = 1ull << (2 * k);
    uint64_t segments = blocks * ((uint64_t)cols < codes ? (uint64_t)cols : codes);
    return (uint64_t)rows * (uint64_t)cols + 2 * blocks * (uint64_t)cols + 8 * segments + 8 * (blocks + 1);
}

void model_check_memory(const rsrc_model *m, int rsr_k, uint64_t max_bytes) {
    int k = rsr_k ? rsr_k : 1, worst = 0;
    int32_t rows[NUM_PROJ], cols[NUM_PROJ];
    const char *what[NUM_PROJ];
    uint64_t need = 0;
    for (int p = 0; p < NUM_PROJ; p++) {
        model_matrix_dims(m, p, &rows[p], &cols[p]);
        what[p] = p == PROJ_V && m->layer_kind ? "linear_attn.in_proj_qkv" : proj_names[p];
        if (p == PROJ_Q && m->attn_gate) rows[p] *= 2; /* qwen35: [q | gate] */
        if (p == PROJ_V && m->layer_kind)              /* qwen35: the widest of a DeltaNet layer, [q|k|v] */
            rows[p] = 2 * m->dn_k_heads * m->dn_head + m->dn_v_heads * m->dn_head, cols[p] = m->hidden;
        uint64_t b = matrix_compile_bytes(rows[p], cols[p], k);
        if (b > need) need = b, worst = p;
    }
    char have[32], cap[32];
    if (need > max_bytes)
        rsrc_fatal("%s: compiling one %s matrix (%lldx%lld) needs about %s (its ternary weights and RSR index "
                   "at k=%d), above --max-memory %s",
                   m->ar->path, what[worst], (long long)rows[worst], (long long)cols[worst], format_size(need, have), k,
                   format_size(max_bytes, cap));
}
