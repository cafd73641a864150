/*
 * gguf_model.c — a GGUF model as the rest of rsrc reads one: the configuration from the
 * metadata, the tensors under their Hugging Face names, the ternary matrices in the packed form
 * of the Hugging Face checkpoints (gguf.c's header comment has the encodings). After this,
 * checkpoint.c's checks and the whole pipeline run as for a safetensors checkpoint.
 *
 * Architectures (general.architecture): "bitnet-b1.58" (bitnet.cpp's BitNet b1.58 2B-4T:
 * ReLU², sub-norms; also "bitnet-25"), "bitnet" (llama.cpp's, for 1bitLLM's models: SiLU,
 * sub-norms), "llama" (Llama3-8B-1.58, Falcon3-1.58: SiLU), "qwen3" (Bonsai: SiLU, RMSNorm of
 * each head of q and k, a head dimension of its own, activations per block of 32) and "gemma3"
 * (qwen3's pieces with GELU, the embedding scaled, RMSNorm of each block's output and sliding
 * windows: configure_gemma3). Their keys are
 * ARCH.embedding_length, .feed_forward_length, .block_count, .attention.head_count(_kv),
 * .context_length, .attention.layer_norm_rms_epsilon, .rope.freq_base; token ids from
 * tokenizer.ggml.bos_token_id and eos_token_id.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bpe_json.h"
#include "rsr_blocks.h"
#include "rsr_numerics.h"
#include "rsrc.h"

/* When a layer tensor's name is read, and as what: the architectures' own norms name the tensor
 * they hold through the model (sub-norms), the others only when the model has them. */
enum name_need { N_ALWAYS, N_DENSE, N_MOE, N_SUB_ATTN, N_SUB_FFN, N_QK, N_PROJ, N_PROJ_ATTN, N_PROJ_FFN, N_POST };
static const struct {
    const char *gguf, *hf;
    uint8_t need;
    int8_t proj; /* which ternary projection (PROJ_Q ...), or -1 */
} layer_names[] = {
    {"attn_norm", "input_layernorm", N_ALWAYS, -1},
    {"ffn_norm", "post_attention_layernorm", N_ALWAYS, -1},
    {"attn_q", "self_attn.q_proj", N_ALWAYS, PROJ_Q},
    {"attn_k", "self_attn.k_proj", N_ALWAYS, PROJ_K},
    {"attn_v", "self_attn.v_proj", N_ALWAYS, PROJ_V},
    {"attn_output", "self_attn.o_proj", N_ALWAYS, PROJ_O},
    {"ffn_gate", "mlp.gate_proj", N_DENSE, PROJ_GATE},
    {"ffn_up", "mlp.up_proj", N_DENSE, PROJ_UP},
    {"ffn_down", "mlp.down_proj", N_DENSE, PROJ_DOWN},
    {"ffn_gate_inp", "mlp.gate", N_MOE, -1}, /* a mixture of experts' router (the experts: add_experts) */
    {"attn_sub_norm", NULL, N_SUB_ATTN, -1}, /* per architecture */
    {"ffn_sub_norm", NULL, N_SUB_FFN, -1},
    {"attn_q_norm", "self_attn.q_norm", N_QK, -1},
    {"attn_k_norm", "self_attn.k_norm", N_QK, -1},
    {"attn_q_norm_in", "self_attn.q_proj.norm", N_PROJ, -1}, /* BitLinear's own norms (BitNet embedding models) */
    {"attn_k_norm_in", "self_attn.k_proj.norm", N_PROJ, -1},
    {"attn_v_norm_in", "self_attn.v_proj.norm", N_PROJ, -1},
    {"ffn_gate_norm_in", "mlp.gate_proj.norm", N_PROJ, -1},
    {"ffn_up_norm_in", "mlp.up_proj.norm", N_PROJ, -1},
    {"attn_output_norm_in", NULL, N_PROJ_ATTN, -1}, /* the sub-norms of these models */
    {"ffn_down_norm_in", NULL, N_PROJ_FFN, -1},
    {"post_attention_norm", "self_attn.post_norm", N_POST, -1}, /* Gemma3's norms of the attention's and */
    {"post_ffw_norm", "mlp.post_norm", N_POST, -1},             /* the FFN's outputs */
};

/* The Hugging Face suffix layer_names[i] is read as in this model, or NULL (not read). */
static const char *layer_hf(const rsrc_model *m, size_t i) {
    const char *hf = layer_names[i].hf;
    switch (layer_names[i].need) {
    case N_DENSE: return m->num_experts ? NULL : hf;
    case N_MOE: return m->num_experts ? hf : NULL;
    case N_SUB_ATTN: return m->sub_norms ? m->attn_sub_norm : NULL;
    case N_SUB_FFN: return m->sub_norms ? m->ffn_sub_norm : NULL;
    case N_QK: return m->qk_norm ? hf : NULL;
    case N_PROJ: return m->proj_norms ? hf : NULL;
    case N_PROJ_ATTN: return m->proj_norms ? m->attn_sub_norm : NULL;
    case N_PROJ_FFN: return m->proj_norms ? m->ffn_sub_norm : NULL;
    case N_POST: return m->post_norms ? hf : NULL;
    default: return hf;
    }
}

/* qwen35's tensors (llama.cpp's names) of layer `layer` after "blk.N.": the gated DeltaNet's on its
 * DeltaNet layers, q, k, v, o and the head norms on the others, the norms and the FFN on both (its
 * post_attention_norm is the FFN's input norm). NULL: not one of that layer's. */
static char *qwen35_name(const rsrc_model *m, int layer, const char *rest, int *proj) {
    static const struct {
        const char *gguf, *hf;
        int8_t where; /* 0: every layer, 1: DeltaNet layers, 2: attention layers; | 4: dense FFNs
                         (qwen35), | 8: mixtures of experts (qwen35moe; the experts: add_experts) */
        int8_t proj;
    } names[] = {
        {"attn_norm.weight", "input_layernorm.weight", 0, -1},
        {"post_attention_norm.weight", "post_attention_layernorm.weight", 0, -1},
        {"ffn_gate.weight", "mlp.gate_proj.weight", 4, PROJ_GATE},
        {"ffn_up.weight", "mlp.up_proj.weight", 4, PROJ_UP},
        {"ffn_down.weight", "mlp.down_proj.weight", 4, PROJ_DOWN},
        {"ffn_gate_inp.weight", "mlp.gate.weight", 8, -1},
        {"ffn_gate_shexp.weight", "mlp.shared_expert.gate_proj.weight", 8, PROJ_GATE},
        {"ffn_up_shexp.weight", "mlp.shared_expert.up_proj.weight", 8, PROJ_UP},
        {"ffn_down_shexp.weight", "mlp.shared_expert.down_proj.weight", 8, PROJ_DOWN},
        {"ffn_gate_inp_shexp.weight", "mlp.shared_expert_gate.weight", 8, -1},
        {"attn_qkv.weight", "linear_attn.in_proj_qkv.weight", 1, PROJ_Q},
        {"attn_gate.weight", "linear_attn.in_proj_z.weight", 1, PROJ_K},
        {"ssm_out.weight", "linear_attn.out_proj.weight", 1, PROJ_O},
        {"ssm_beta.weight", "linear_attn.in_proj_b.weight", 1, -1},
        {"ssm_alpha.weight", "linear_attn.in_proj_a.weight", 1, -1},
        {"ssm_conv1d.weight", "linear_attn.conv1d.weight", 1, -1},
        {"ssm_dt.bias", "linear_attn.dt_bias", 1, -1},
        {"ssm_a", "linear_attn.ssm_a", 1, -1},
        {"ssm_norm.weight", "linear_attn.norm.weight", 1, -1},
        {"attn_q.weight", "self_attn.q_proj.weight", 2, PROJ_Q},
        {"attn_k.weight", "self_attn.k_proj.weight", 2, PROJ_K},
        {"attn_v.weight", "self_attn.v_proj.weight", 2, PROJ_V},
        {"attn_output.weight", "self_attn.o_proj.weight", 2, PROJ_O},
        {"attn_q_norm.weight", "self_attn.q_norm.weight", 2, -1},
        {"attn_k_norm.weight", "self_attn.k_norm.weight", 2, -1},
    };
    if (layer >= m->num_layers) return NULL;
    if (m->mtp && layer == m->num_layers - 1 && !strncmp(rest, "nextn.", 6)) { /* the MTP layer's own */
        static const char *const own[] = {"eh_proj.weight", "enorm.weight", "hnorm.weight", "shared_head_norm.weight"};
        for (size_t i = 0; i < sizeof own / sizeof *own; i++)
            if (!strcmp(rest + 6, own[i])) {
                *proj = i == 0 ? PROJ_O : -1; /* eh_proj: a matrix read as stored, as o is */
                return xasprintf("model.layers.%d.mtp.%s", layer, own[i]);
            }
        return NULL;
    }
    const int where = m->layer_kind[layer] == RSR_LAYER_DELTANET ? 1 : 2, ffn = m->num_experts ? 8 : 4;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(rest, names[i].gguf) && ((names[i].where & 3) == 0 || (names[i].where & 3) == where) &&
            (names[i].where & 12 & ~ffn) == 0) {
            *proj = names[i].proj;
            return xasprintf("model.layers.%d.%s", layer, names[i].hf);
        }
    return NULL;
}

/* The Hugging Face name of a GGUF tensor ("blk.3.attn_q.weight"), or NULL; *proj: which ternary
 * projection it is (PROJ_Q ...), or -1. */
static char *hf_name(const rsrc_model *m, const char *g, int *proj) {
    *proj = -1;
    if (!strcmp(g, "token_embd.weight")) return xstrdup("model.embed_tokens.weight");
    if (!strcmp(g, "output_norm.weight")) return xstrdup("model.norm.weight");
    if (!strcmp(g, "output.weight")) return xstrdup("lm_head.weight");
    int layer, used = 0;
    if (sscanf(g, "blk.%d.%n", &layer, &used) != 1 || used == 0 || layer < 0) return NULL;
    const char *rest = g + used, *dot = strchr(rest, '.');
    if (m->layer_kind) return qwen35_name(m, layer, rest, proj);
    if (!dot || strcmp(dot, ".weight")) return NULL;
    size_t n = (size_t)(dot - rest);
    for (size_t i = 0; i < sizeof layer_names / sizeof *layer_names; i++) {
        if (strlen(layer_names[i].gguf) != n || strncmp(rest, layer_names[i].gguf, n)) continue;
        const char *hf = layer_hf(m, i);
        if (!hf) return NULL;
        *proj = layer_names[i].proj;
        return xasprintf("model.layers.%d.%s.weight", layer, hf);
    }
    return NULL;
}

static bool integer_type(uint32_t t) { return t <= GGUF_I32 || t == GGUF_U64 || t == GGUF_I64; }

static uint64_t meta_uint(const gguf_file *g, const char *arch, const char *key, uint64_t fallback, uint64_t hi) {
    char k[160];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    const gguf_value *v = gguf_get(g, k);
    if (!v && fallback == UINT64_MAX) rsrc_fatal("%s: metadata '%s' is missing", g->path, k);
    uint64_t r = fallback;
    if (v) {
        if (!integer_type(v->type)) rsrc_fatal("%s: metadata '%s' is not an integer", g->path, k);
        if (v->i < 1 || v->u > hi)
            rsrc_fatal("%s: metadata '%s' is %" PRId64 ", outside [1, %" PRIu64 "]", g->path, k, v->i, hi);
        r = v->u;
    }
    return r;
}

static double meta_float(const gguf_file *g, const char *key, double fallback, double lo, double hi) {
    const gguf_value *v = gguf_get(g, key);
    if (!v) return fallback;
    if (!integer_type(v->type) && v->type != GGUF_F32 && v->type != GGUF_F64)
        rsrc_fatal("%s: metadata '%s' is not a number", g->path, key);
    if (!(v->f >= lo && v->f <= hi))
        rsrc_fatal("%s: metadata '%s' is %g, outside [%g, %g]", g->path, key, v->f, lo, hi);
    return v->f;
}

static int32_t meta_token(const gguf_file *g, const char *key, int32_t vocab) {
    const gguf_value *v = gguf_get(g, key);
    if (!v) return -1;
    if (!integer_type(v->type) || v->i < 0 || v->i >= vocab)
        rsrc_fatal("%s: metadata '%s' is not a token id below the vocabulary's %d", g->path, key, vocab);
    return (int32_t)v->i;
}

/* Memory the archive owns (unmapped by st_close, as its files are). */
static uint8_t *archive_memory(st_archive *a, size_t n) {
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) rsrc_fatal("out of memory (%zu bytes for a converted tensor)", n);
    a->files = xrealloc(a->files, sizeof *a->files * (size_t)(a->nfiles + 1));
    a->files[a->nfiles++] = (struct st_mapped){xstrdup("(converted)"), p, n ? n : 1};
    return p;
}

static st_tensor *add_tensor(st_archive *a, char *name, enum st_dtype dt, int ndim, int64_t d0, int64_t d1,
                             const uint8_t *data, uint64_t nbytes, const char *file) {
    a->tensors = xrealloc(a->tensors, sizeof *a->tensors * (size_t)(a->ntensors + 1));
    st_tensor *t = &a->tensors[a->ntensors++];
    *t = (st_tensor){name, dt, ndim, {d0, ndim > 1 ? d1 : 0, 0, 0}, data, nbytes, file};
    return t;
}

/* ---- the ternary encodings: code c in {0, 1, 2} of element e (value c - 1) ---- */

static int code_i2s(const uint8_t *d, uint64_t e) { return d[e / 128 * 32 + e % 32] >> (6 - 2 * (e % 128 / 32)) & 3; }
static int code_tq2(const uint8_t *blk, uint64_t e) { /* e within the block of 256 */
    return blk[e / 128 * 32 + e % 32] >> (2 * (e % 128 / 32)) & 3;
}
/* Element e of a block of base-3 digits (TQ1_0's packing, and PTQ1_0's): the block's bytes in runs
 * of w0, w1 and w2 bytes, digit n of byte m of a run holding its element n·w + m (five digits a byte
 * in the first two runs, four in the last), a run's elements after the runs before it; digit n of
 * byte q is ((u8)(q·3^n)·3) >> 8. */
static int code_base3(const uint8_t *blk, uint64_t e, uint64_t w0, uint64_t w1, uint64_t w2) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    uint8_t q;
    int n;
    if (e < 5 * w0)
        q = blk[e % w0], n = (int)(e / w0);
    else if (e < 5 * (w0 + w1))
        q = blk[w0 + (e - 5 * w0) % w1], n = (int)((e - 5 * w0) / w1);
    else
        q = blk[w0 + w1 + (e - 5 * (w0 + w1)) % w2], n = (int)((e - 5 * (w0 + w1)) / w2);
    return ((uint16_t)(uint8_t)(q * pow3[n]) * 3) >> 8;
}
static int code_tq1(const uint8_t *blk, uint64_t e) { return code_base3(blk, e, 32, 16, 4); } /* blocks of 256 */

/* The codes of a rows x cols ternary tensor into out (row-major, value + 1) and its one scale;
 * a TQ matrix whose non-zero blocks disagree on the scale is refused, naming the block. */
static float decode_ternary(const char *path, const gguf_tensor *t, uint8_t *out) {
    const uint64_t n = t->ne[0] * t->ne[1];
    if (t->type == GGML_I2_S) {
        for (uint64_t e = 0; e < n; e++) {
            int c = code_i2s(t->data, e);
            if (c == 3) rsrc_fatal("%s: tensor '%s': code 3 at element %" PRIu64 " is not ternary", path, t->name, e);
            out[e] = (uint8_t)c;
        }
        float s;
        memcpy(&s, t->data + n / 4, 4);
        return s;
    }
    const bool tq1 = t->type == GGML_TQ1_0;
    const uint64_t bytes = tq1 ? 54 : 66, dpos = tq1 ? 52 : 64;
    float beta = 0;
    uint64_t first = 0;
    for (uint64_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = t->data + b * bytes;
        bool nonzero = false;
        for (uint64_t e = 0; e < 256; e++) {
            int c = tq1 ? code_tq1(blk, e) : code_tq2(blk, e);
            if (c == 3) rsrc_fatal("%s: tensor '%s': block %" PRIu64 ": code 3 is not ternary", path, t->name, b);
            out[b * 256 + e] = (uint8_t)c;
            nonzero |= c != 1;
        }
        float d = rsr_f16_to_f32((uint16_t)(blk[dpos] | blk[dpos + 1] << 8));
        if (!nonzero) continue;
        if (beta == 0)
            beta = d, first = b;
        else if (d != beta)
            rsrc_fatal("%s: tensor '%s': block %" PRIu64 " (row %" PRIu64 ") has scale %g, block %" PRIu64
                       " has %g: rsrc takes one scale per ternary matrix, as BitNet models have",
                       path, t->name, b, b * 256 / t->ne[0], d, first, beta);
    }
    return beta != 0 ? beta : 1.0f; /* all zero: any scale */
}

/* The group-scaled types (one f16 scale a block of qk weights, rsr_blocks.h): their enum rsr_dtype,
 * -1 for any other type; and qk, 0 for any other type. */
static int32_t group_dtype(uint32_t type) {
    return type == GGML_Q1_0     ? RSR_DTYPE_Q1_0
           : type == GGML_Q2_0   ? RSR_DTYPE_Q2_0
           : type == GGML_PQ2_0  ? RSR_DTYPE_PQ2_0
           : type == GGML_PTQ1_0 ? RSR_DTYPE_PTQ1_0
                                 : -1;
}
static uint64_t group_qk(uint32_t type) { return rsr_block_weights(group_dtype(type)); }

/* The codes of a Q1_0, Q2_0, PQ2_0 or PTQ1_0 tensor into out (row-major, value + 1: Q1_0 gives 0
 * and 2, Q2_0 and PQ2_0 0..3, PTQ1_0 0..2) and its f16 scales widened into scales [rows][blocks]; a
 * scale that is not finite is refused. */
static void decode_grouped(const char *path, const gguf_tensor *t, uint8_t *out, float *scales) {
    const int32_t dt = group_dtype(t->type);
    const uint64_t qk = group_qk(t->type), n = t->ne[0] * t->ne[1], bytes = rsr_block_bytes(dt);
    for (uint64_t b = 0; b < n / qk; b++) {
        const uint8_t *blk = t->data + b * bytes;
        const float d = rsr_block_scale(dt, blk);
        if (!isfinite(d))
            rsrc_fatal("%s: tensor '%s': block %" PRIu64 " (row %" PRIu64 ") has scale %g", path, t->name, b,
                       b * qk / t->ne[0], d);
        scales[b] = d;
        rsr_block_codes(dt, blk, out + b * qk);
    }
}

/* A ternary projection is converted when its matrix is compiled, not when the file opens: the
 * codes of a 20B model (5 GB at 2 bits) need not all be in memory at once, and each matrix's pages
 * of the file are released after it (docs/moe.md). Opening registers its tensors with their dtype
 * and shape and no data (the checks that need no codes run then); gguf_model_prepare converts one
 * and gguf_model_release frees it. */
typedef struct deferred {
    struct gguf_lazy *lazy;
    char *name;       /* the archive's tensor name (model.layers.N.<proj>.weight) */
    gguf_tensor src;  /* its bytes in the file (src.name owned) */
    float per_tensor; /* llama.cpp's NAME.scale, or 1 */
    int proj;
} deferred;
struct gguf_lazy {
    st_archive *ar; /* its path is the file's */
    int64_t n, cap;
    deferred *d; /* sorted by name once the file is read */
};

/* Q's and K's rows in llama.cpp's order for "llama" (its NORM RoPE: the converter interleaves
 * them): the heads of proj, 0 for any other projection or architecture. */
static int32_t interleaved_heads(const rsrc_model *m, int proj) {
    if (strcmp(m->architecture, "LlamaForCausalLM")) return 0; /* the bitnet architectures and qwen3: as stored */
    return proj == PROJ_Q ? m->num_heads : proj == PROJ_K ? m->num_kv_heads : 0;
}

/* The codes of one deferred projection, Q and K rows put back in Hugging Face order, packed as
 * checkpoint.c reads them (row i*R + r in bits 2i of byte [r][c]), its scale into *beta_out and a
 * group-scaled one's scales into gs ([rows][blocks], rows in the same order). */
static uint8_t *convert_ternary(const rsrc_model *m, const deferred *d, float *beta_out, float **gs_out) {
    const gguf_tensor *t = &d->src;
    const char *path = d->lazy->ar->path;
    const bool grouped = group_qk(t->type) != 0;
    const uint64_t rows = t->ne[1], cols = t->ne[0];
    rsrc_arena *ar = rsrc_arena_open();
    uint8_t *codes = xmalloc((size_t)(rows * cols));
    rsrc_arena_own(ar, free, codes);
    const uint64_t G = grouped ? cols / group_qk(t->type) : 0;
    float *gs = NULL, *gsrc = NULL;
    if (grouped) {
        gsrc = xmalloc((size_t)(rows * G) * 4);
        rsrc_arena_own(ar, free, gsrc);
        decode_grouped(path, t, codes, gsrc);
    }
    float beta = (grouped ? 1.0f : decode_ternary(path, t, codes)) * d->per_tensor;
    if (!(isfinite(beta) && beta > 0))
        rsrc_fatal("%s: tensor '%s': scale %g is not a finite positive number", path, t->name, beta);
    st_release_bytes(t->data, t->nbytes); /* the file's pages: read once */
    const int32_t heads = interleaved_heads(m, d->proj);
    const uint64_t hd = heads ? rows / (uint64_t)heads : 0, R = rows / 4;
    uint8_t *packed = xcalloc(R * cols > 0 ? (size_t)(R * cols) : 1, 1);
    if (grouped) gs = xmalloc((size_t)(rows * G) * 4 + 4);
    for (uint64_t hr = 0; hr < rows; hr++) { /* hr: the Hugging Face row */
        uint64_t gr = hr;
        if (heads) { /* row s*hd/2 + i of a head is GGUF row 2i + s */
            uint64_t h = hr / hd, w = hr % hd, s = w / (hd / 2), i = w % (hd / 2);
            gr = h * hd + 2 * i + s;
        }
        const uint8_t *src = codes + gr * cols;
        uint8_t *dst = packed + (hr % R) * cols;
        for (uint64_t j = 0; j < G; j++) gs[hr * G + j] = gsrc[gr * G + j] * beta; /* beta: the .scale tensor's */
        int shift = (int)(2 * (hr / R));
        for (uint64_t c = 0; c < cols; c++) dst[c] |= (uint8_t)(src[c] << shift);
    }
    rsrc_arena_close(ar); /* the codes */
    *beta_out = beta;
    *gs_out = gs;
    return packed;
}

/* A ternary projection registered for later conversion: NAME (U8 [rows/4, cols]), NAME_scale and
 * a group-scaled one's NAME_group_scale ([rows][blocks]), all without data until
 * gguf_model_prepare. What can be checked without the codes is checked here. */
static void add_ternary(st_archive *a, const rsrc_model *m, const gguf_file *g, const gguf_tensor *t, char *name,
                        int proj, struct gguf_lazy *lazy) {
    const bool grouped = group_qk(t->type) != 0;
    if (t->type != GGML_TQ1_0 && t->type != GGML_TQ2_0 && t->type != GGML_I2_S && !grouped)
        rsrc_fatal("%s: tensor '%s' is %s; rsrc reads ternary matrices stored as I2_S, TQ1_0, TQ2_0, Q1_0, Q2_0, "
                   "PQ2_0 or PTQ1_0",
                   g->path, t->name, gguf_type_name(t->type));
    if (t->ndim != 2) rsrc_fatal("%s: tensor '%s': %u dimensions, expected 2", g->path, t->name, t->ndim);
    const uint64_t rows = t->ne[1], cols = t->ne[0];
    if (rows % 4)
        rsrc_fatal("%s: tensor '%s': %" PRIu64 " rows cannot be packed four to a byte", g->path, t->name, rows);
    float per_tensor = 1.0f;
    /* llama.cpp's optional per-tensor scale: blk.N.attn_q.scale beside blk.N.attn_q.weight (not
     * for an expert's slice, named "blk.N.ffn_up_exps.weight[expert E]": add_experts refuses those) */
    const size_t tn = strlen(t->name);
    const gguf_tensor *st = NULL;
    if (tn > 7 && !strcmp(t->name + tn - 7, ".weight")) {
        char *sname = xasprintf("%.*s.scale", (int)(tn - 7), t->name);
        st = gguf_find(g, sname);
        free(sname);
    }
    if (st) {
        if (st->type != GGML_F32 || st->ne[0] * st->ne[1] * st->ne[2] * st->ne[3] != 1)
            rsrc_fatal("%s: tensor '%s.scale' is not one F32 value", g->path, t->name);
        memcpy(&per_tensor, st->data, 4);
        if (!(isfinite(per_tensor) && per_tensor > 0))
            rsrc_fatal("%s: tensor '%s': scale %g is not a finite positive number", g->path, t->name, per_tensor);
    }
    const int32_t heads = interleaved_heads(m, proj);
    if (heads && (rows % (uint64_t)heads || rows / (uint64_t)heads % 2))
        rsrc_fatal("%s: tensor '%s': %" PRIu64 " rows do not split into %d heads of even size", g->path, t->name, rows,
                   heads);
    if (lazy->n == lazy->cap) lazy->d = xrealloc(lazy->d, sizeof *lazy->d * (size_t)(lazy->cap = 2 * lazy->cap + 64));
    deferred *d = &lazy->d[lazy->n++];
    *d = (deferred){lazy, xstrdup(name), *t, per_tensor, proj};
    d->src.name = xstrdup(t->name);
    const uint64_t R = rows / 4;
    add_tensor(a, name, ST_U8, 2, (int64_t)R, (int64_t)cols, NULL, R * cols, g->path);
    add_tensor(a, xasprintf("%s_scale", name), ST_F32, 1, 1, 0, NULL, 4, g->path);
    if (grouped) {
        const uint64_t G = cols / group_qk(t->type);
        add_tensor(a, xasprintf("%s_group_scale", name), ST_F32, 2, (int64_t)rows, (int64_t)G, NULL, rows * G * 4,
                   g->path);
    }
}

static int deferred_cmp(const void *a, const void *b) {
    return strcmp(((const deferred *)a)->name, ((const deferred *)b)->name);
}

static deferred *find_deferred(const struct gguf_lazy *lazy, const char *name) {
    deferred key = {.name = (char *)name};
    return bsearch(&key, lazy->d, (size_t)lazy->n, sizeof *lazy->d, deferred_cmp);
}

/* The archive's tensor of that name, writable (the archive belongs to the model). */
static st_tensor *tensor_of(st_archive *a, const char *name) { return (st_tensor *)st_find(a, name); }

void *gguf_model_prepare(const rsrc_model *m, const char *name) {
    deferred *d = m->lazy ? find_deferred(m->lazy, name) : NULL;
    if (!d) return NULL;
    float beta, *gs;
    uint8_t *packed = convert_ternary(m, d, &beta, &gs);
    char *sname = xasprintf("%s_scale", name), *gname = xasprintf("%s_group_scale", name);
    float *scale = xmalloc(sizeof *scale);
    *scale = beta;
    st_archive *a = m->lazy->ar;
    tensor_of(a, name)->data = packed;
    tensor_of(a, sname)->data = (const uint8_t *)scale;
    st_tensor *gt = tensor_of(a, gname);
    if (gt) gt->data = (const uint8_t *)gs;
    free(sname), free(gname);
    return d;
}

bool gguf_model_base3(const rsrc_model *m, const char *name) {
    const deferred *d = m->lazy ? find_deferred(m->lazy, name) : NULL;
    return d && d->src.type == GGML_PTQ1_0;
}

void gguf_model_release(void *converted) {
    const deferred *d = converted;
    char *sname = xasprintf("%s_scale", d->name), *gname = xasprintf("%s_group_scale", d->name);
    const char *names[3] = {d->name, sname, gname};
    for (int i = 0; i < 3; i++) {
        st_tensor *t = tensor_of(d->lazy->ar, names[i]);
        if (t) free((void *)t->data), t->data = NULL;
    }
    free(sname), free(gname);
}

void gguf_lazy_free(struct gguf_lazy *lazy) {
    if (!lazy) return;
    for (int64_t i = 0; i < lazy->n; i++) free(lazy->d[i].name), free(lazy->d[i].src.name);
    free(lazy->d);
    free(lazy);
}

/* A group-scaled tensor (Q1_0, Q2_0, PQ2_0, PTQ1_0) that rsrc computes in fp32 (qwen35's ssm_beta and ssm_alpha, [n_embd, V heads],
 * which a converter may quantise as the matrices): its weights widened to f32. */
static void add_grouped_float(st_archive *a, const gguf_file *g, const gguf_tensor *t, char *name) {
    if (t->ndim != 2) rsrc_fatal("%s: tensor '%s': %u dimensions, expected 2", g->path, t->name, t->ndim);
    const uint64_t n = t->ne[0] * t->ne[1], qk = group_qk(t->type);
    rsrc_arena *ar = rsrc_arena_open(); /* decode_grouped may refuse a scale */
    uint8_t *codes = xmalloc((size_t)n);
    rsrc_arena_own(ar, free, codes);
    float *scales = xmalloc(sizeof *scales * (size_t)(n / qk));
    rsrc_arena_own(ar, free, scales);
    decode_grouped(g->path, t, codes, scales);
    float *f = (float *)archive_memory(a, (size_t)n * 4);
    for (uint64_t e = 0; e < n; e++) f[e] = scales[e / qk] * (float)((int)codes[e] - 1);
    rsrc_arena_close(ar);
    add_tensor(a, name, ST_F32, 2, (int64_t)t->ne[1], (int64_t)t->ne[0], (const uint8_t *)f, n * 4, g->path);
}

/* An embedding or LM head in a group-scaled type stays in its blocks (the artifact keeps them:
 * Bonsai 2's 27B has 1.27 G weights in each, 5 GB apiece as f32). */
static bool kept_in_blocks(const char *name) {
    return !strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "lm_head.weight");
}

/* A float tensor: F32, F16 and BF16 in place (rows = ne[1]); Q8_0 and Q6_K widened to f32. */
static void add_float(st_archive *a, const gguf_file *g, const gguf_tensor *t, char *name) {
    if (t->ndim < 1 || t->ndim > 2)
        rsrc_fatal("%s: tensor '%s': %u dimensions, expected 1 or 2", g->path, t->name, t->ndim);
    int64_t d0 = t->ndim == 2 ? (int64_t)t->ne[1] : (int64_t)t->ne[0], d1 = t->ndim == 2 ? (int64_t)t->ne[0] : 0;
    switch (t->type) {
    case GGML_F32: add_tensor(a, name, ST_F32, (int)t->ndim, d0, d1, t->data, t->nbytes, g->path); return;
    case GGML_F16: add_tensor(a, name, ST_F16, (int)t->ndim, d0, d1, t->data, t->nbytes, g->path); return;
    case GGML_BF16: add_tensor(a, name, ST_BF16, (int)t->ndim, d0, d1, t->data, t->nbytes, g->path); return;
    case GGML_Q8_0: { /* Q8_0: blocks of 32, an f16 scale then 32 int8; ggml: (float)d * q */
        uint64_t n = t->ne[0] * t->ne[1];
        float *f = (float *)archive_memory(a, (size_t)n * 4);
        for (uint64_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = t->data + b * 34;
            float d = rsr_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
            for (int j = 0; j < 32; j++) f[b * 32 + (uint64_t)j] = d * (float)(int8_t)blk[2 + j];
        }
        add_tensor(a, name, ST_F32, (int)t->ndim, d0, d1, (const uint8_t *)f, n * 4, g->path);
        return;
    }
    case GGML_Q6_K: { /* Q6_K: blocks of 256 (gguf.c's header comment); ggml: d * scale * (q - 32), left to right */
        uint64_t n = t->ne[0] * t->ne[1];
        float *f = (float *)archive_memory(a, (size_t)n * 4);
        for (uint64_t b = 0; b < n / 256; b++) {
            const uint8_t *ql = t->data + b * 210, *qh = ql + 128;
            const int8_t *sc = (const int8_t *)(qh + 64);
            float d = rsr_f16_to_f32((uint16_t)(qh[80] | qh[81] << 8));
            for (int e = 0; e < 256; e++) {
                int h = e / 128, k = e % 128 / 32, l = e % 32;
                int lo = ql[64 * h + l + 32 * (k & 1)] >> (k >= 2 ? 4 : 0) & 15, hi = qh[32 * h + l] >> (2 * k) & 3;
                f[b * 256 + (uint64_t)e] = d * (float)sc[8 * h + 2 * k + l / 16] * (float)((lo | hi << 4) - 32);
            }
        }
        add_tensor(a, name, ST_F32, (int)t->ndim, d0, d1, (const uint8_t *)f, n * 4, g->path);
        return;
    }
    default:
        if (group_qk(t->type) && t->ndim == 2 && kept_in_blocks(name)) { /* Bonsai's files have both so */
            add_tensor(a, name, (enum st_dtype)(ST_Q1_0 + group_dtype(t->type) - RSR_DTYPE_Q1_0), 2, d0, d1, t->data,
                       t->nbytes, g->path);
            return;
        }
        if (group_qk(t->type) && t->ndim == 2) {
            add_grouped_float(a, g, t, name);
            return;
        }
        rsrc_fatal("%s: tensor '%s' is %s; rsrc reads embeddings, norms and the head as F32, F16, BF16, Q8_0 or Q6_K",
                   g->path, t->name, gguf_type_name(t->type));
    }
}

/* Whether layer l of a gemma3 file attends through a sliding window: ARCH.attention.sliding_window_pattern
 * as llama.cpp reads it (a period n: every layer but each n-th, n = 6 when absent, 0: all; or one bool
 * per layer). llama.cpp releases before the key existed took 6 always, as Gemma3's converter implies. */
static bool gemma3_windowed(const gguf_file *g, const char *arch, int32_t l, int32_t layers) {
    char k[160];
    snprintf(k, sizeof k, "%s.attention.sliding_window_pattern", arch);
    const gguf_value *v = gguf_get(g, k);
    if (v && v->type == GGUF_ARR) {
        if (v->atype != GGUF_BOOL || v->n != (uint64_t)layers)
            rsrc_fatal("%s: metadata '%s' is an array of %" PRIu64 " elements; rsrc reads one bool per layer (%d)",
                       g->path, k, v->n, layers);
        return g->map[v->first + (uint64_t)l] != 0;
    }
    if (v && (!integer_type(v->type) || v->i < 0 || v->i > 4096))
        rsrc_fatal("%s: metadata '%s' is not a layer period in [0, 4096]", g->path, k);
    const int64_t n = v ? v->i : 6;
    return n == 0 || l % n < n - 1;
}

/* Gemma3 (llama.cpp's graph): the embedding times sqrtf(hidden), the queries times 1/sqrt(key_length)
 * (1/sqrt(hidden/heads) for its 62-layer 27B, as llama.cpp decides by the layer count: it reads no
 * query_pre_attn_scalar), ARCH.attention.sliding_window positions on the layers gemma3_windowed
 * names (none when the key is absent or 0) with RoPE base ARCH.rope.freq_base_swa (10000 when
 * absent), and no final logit soft-capping or RoPE scaling (refused: rsrc has neither). */
static void configure_gemma3(rsrc_model *m, const gguf_file *g, const char *arch) {
    char k[160];
    m->embed_scale = sqrtf((float)m->hidden);
    m->attn_scale = 1.0f / sqrtf((float)(m->num_layers == 62 ? m->hidden / m->num_heads : m->head_dim));
    snprintf(k, sizeof k, "%s.final_logit_softcapping", arch);
    if (meta_float(g, k, 0, -1e30, 1e30) != 0)
        rsrc_fatal("%s: metadata '%s' is %g: final logit soft-capping is not supported", g->path, k,
                   meta_float(g, k, 0, -1e30, 1e30));
    static const char *const scaling[] = {"rope.scaling.factor", "rope.scale_linear"};
    for (int i = 0; i < 2; i++) {
        snprintf(k, sizeof k, "%s.%s", arch, scaling[i]);
        double f = meta_float(g, k, 0, -1e30, 1e30);
        if (f != 0 && f != 1) rsrc_fatal("%s: metadata '%s' is %g: RoPE scaling is not supported", g->path, k, f);
    }
    snprintf(k, sizeof k, "%s.rope.freq_base_swa", arch);
    m->rope_theta_swa = meta_float(g, k, 10000.0, 1.0, 1e12);
    snprintf(k, sizeof k, "%s.attention.sliding_window", arch);
    const gguf_value *w = gguf_get(g, k);
    if (w && (!integer_type(w->type) || w->i < 0 || w->i > (1 << 24)))
        rsrc_fatal("%s: metadata '%s' is not a number of positions in [0, %d]", g->path, k, 1 << 24);
    if (!w || !w->i) return;
    m->layer_window = xcalloc((size_t)m->num_layers, sizeof *m->layer_window);
    for (int32_t l = 0; l < m->num_layers; l++)
        m->layer_window[l] = gemma3_windowed(g, arch, l, m->num_layers) ? (int32_t)w->i : 0;
}

/* ARCH.KEY for layer l: one integer (or number, real) for every layer, or an array of one per
 * layer (llama.cpp's get_key_or_arr); fallback when absent (NAN: required). Checked in [lo, hi]. */
static double meta_layer(const gguf_file *g, const char *arch, const char *key, int32_t l, int32_t layers,
                         double fallback, double lo, double hi, bool real) {
    char k[160];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    const gguf_value *v = gguf_get(g, k);
    if (!v && isnan(fallback)) rsrc_fatal("%s: metadata '%s' is missing", g->path, k);
    if (!v) return fallback;
    double x;
    if (v->type == GGUF_ARR) {
        if (v->n != (uint64_t)layers ||
            !(v->atype == GGUF_U32 || v->atype == GGUF_I32 || (real && v->atype == GGUF_F32)))
            rsrc_fatal("%s: metadata '%s' is an array of %" PRIu64
                       " elements of type %u; rsrc reads one %s per layer (%d)",
                       g->path, k, v->n, v->atype, real ? "f32, u32 or i32" : "u32 or i32", layers);
        x = v->atype == GGUF_F32   ? (double)gguf_array_f32(g, v, (uint64_t)l)
            : v->atype == GGUF_U32 ? (double)(uint32_t)gguf_array_i32(g, v, (uint64_t)l)
                                   : (double)gguf_array_i32(g, v, (uint64_t)l);
    } else if (integer_type(v->type) || (real && (v->type == GGUF_F32 || v->type == GGUF_F64))) {
        x = v->f;
    } else {
        rsrc_fatal("%s: metadata '%s' is not %s", g->path, k, real ? "a number" : "an integer");
    }
    if (!(x >= lo && x <= hi))
        rsrc_fatal("%s: metadata '%s' (layer %d) is %g, outside [%g, %g]", g->path, k, l, x, lo, hi);
    return x;
}

/* Whether layer l of a maple file is windowed: ARCH.attention.sliding_window_pattern, which maple
 * requires as one bool (or integer) per layer. */
static bool maple_windowed(const gguf_file *g, const char *arch, int32_t l, int32_t layers) {
    char k[160];
    snprintf(k, sizeof k, "%s.attention.sliding_window_pattern", arch);
    const gguf_value *v = gguf_get(g, k);
    if (!v) rsrc_fatal("%s: metadata '%s' is missing (maple names its windowed layers)", g->path, k);
    if (v->type != GGUF_ARR || v->n != (uint64_t)layers ||
        !(v->atype == GGUF_BOOL || v->atype == GGUF_U8 || v->atype == GGUF_I32 || v->atype == GGUF_U32))
        rsrc_fatal("%s: metadata '%s' is not an array of one bool per layer (%d)", g->path, k, layers);
    if (v->atype == GGUF_I32 || v->atype == GGUF_U32) return gguf_array_i32(g, v, (uint64_t)l) != 0;
    return g->map[v->first + (uint64_t)l] != 0;
}

/* A mixture of experts for every layer's FFN (llama.cpp's build_moe_ffn, docs/moe.md):
 * ARCH.expert_count experts, expert_used_count of them per token, softmax gating with the chosen
 * weights renormalised (llama.cpp fixes both for maple and qwen35moe and reads no key for them);
 * expert_feed_forward_length for every layer or per layer (qwen35moe: feed_forward_length /
 * expert_used_count when absent, as llama.cpp). Maple: swiglu_clamp_exp for every layer or per layer,
 * no shared expert (refused when expert_shared_count says so). qwen35moe: no clamp (llama.cpp reads
 * none), a shared expert of expert_shared_feed_forward_length rows (feed_forward_length when absent)
 * gated by sigmoid(ffn_gate_inp_shexp · x). */
static void configure_experts(rsrc_model *m, const gguf_file *g, const char *arch, bool maple) {
    char k[160];
    const int32_t L = m->num_layers, dense_ff = m->intermediate;
    m->num_experts = (int32_t)meta_uint(g, arch, "expert_count", UINT64_MAX, 4096);
    m->experts_used = (int32_t)meta_uint(g, arch, "expert_used_count", UINT64_MAX, (uint64_t)m->num_experts);
    snprintf(k, sizeof k, "%s.expert_shared_count", arch);
    const gguf_value *sh = gguf_get(g, k);
    if (maple && sh && (!integer_type(sh->type) || sh->i != 0))
        rsrc_fatal("%s: metadata '%s' is %" PRId64 ": maple has no shared experts (llama.cpp's graph reads none)",
                   g->path, k, sh->i);
    if (!maple)
        m->shared_ff = (int32_t)meta_uint(g, arch, "expert_shared_feed_forward_length",
                                          dense_ff ? (uint64_t)dense_ff : UINT64_MAX, 65535);
    m->expert_ff = xcalloc((size_t)L, sizeof *m->expert_ff);
    m->swiglu_clamp = xcalloc((size_t)L, sizeof *m->swiglu_clamp);
    m->intermediate = m->shared_ff;
    const double ff_fallback = !maple && dense_ff >= m->experts_used ? (double)(dense_ff / m->experts_used) : NAN;
    for (int32_t l = 0; l < L; l++) {
        m->expert_ff[l] =
            (int32_t)meta_layer(g, arch, "expert_feed_forward_length", l, L, ff_fallback, 1, 65535, false);
        double c = maple ? meta_layer(g, arch, "swiglu_clamp_exp", l, L, 0, 0, 1e30, true) : 0;
        m->swiglu_clamp[l] = c > 1e-6 ? (float)c : 0.0f; /* llama.cpp clamps above 1e-6 only */
        if (m->expert_ff[l] > m->intermediate) m->intermediate = m->expert_ff[l];
    }
}

/* Maple (llama.cpp's graph, docs/moe.md): configure_experts' mixture for every FFN;
 * ARCH.attention.sliding_window positions on the layers sliding_window_pattern names, RoPE only
 * there, with base rope.freq_base_swa (rope.freq_base when absent); the other layers take no
 * positional rotation. */
static void configure_maple(rsrc_model *m, const gguf_file *g, const char *arch) {
    char k[160];
    const int32_t L = m->num_layers;
    configure_experts(m, g, arch, true);
    static const char *const scaling[] = {"rope.scaling.factor", "rope.scale_linear"};
    for (int i = 0; i < 2; i++) {
        snprintf(k, sizeof k, "%s.%s", arch, scaling[i]);
        double f = meta_float(g, k, 0, -1e30, 1e30);
        if (f != 0 && f != 1) rsrc_fatal("%s: metadata '%s' is %g: RoPE scaling is not supported", g->path, k, f);
    }
    snprintf(k, sizeof k, "%s.rope.freq_base_swa", arch);
    m->rope_theta_swa = meta_float(g, k, m->rope_theta, 1.0, 1e12);
    snprintf(k, sizeof k, "%s.attention.sliding_window", arch);
    const gguf_value *w = gguf_get(g, k);
    if (!w || !integer_type(w->type) || w->i < 1 || w->i > (1 << 24))
        rsrc_fatal("%s: metadata '%s' is %s; maple needs a window of [1, %d] positions", g->path, k,
                   w ? "out of range or not an integer" : "missing", 1 << 24);
    m->layer_window = xcalloc((size_t)L, sizeof *m->layer_window);
    for (int32_t l = 0; l < L; l++) m->layer_window[l] = maple_windowed(g, arch, l, L) ? (int32_t)w->i : 0;
    m->nope_global = true;
}

/* qwen35's ARCH.rope.dimension_sections [t, h, w, e] as llama.cpp's interleaved multi-section RoPE
 * reads them: pair i's sector i % (t + h + w + e) rotates by the position of t, h or w (for text, all
 * the token's) when sector % 3 is 0, 1 or 2 and below 3t, 3h or 3w, else by e's (0 for text). rsrc
 * rotates every pair by the token's position, so a pair that falls to e is refused. */
static void qwen35_sections(const rsrc_model *m, const gguf_file *g, const char *arch) {
    char k[160];
    snprintf(k, sizeof k, "%s.rope.dimension_sections", arch);
    const gguf_value *v = gguf_get(g, k);
    if (!v) return;
    if (v->type != GGUF_ARR || v->n < 3 || v->n > 4 || (v->atype != GGUF_I32 && v->atype != GGUF_U32))
        rsrc_fatal("%s: metadata '%s' is not an array of 3 or 4 integers", g->path, k);
    int64_t sec[4] = {0, 0, 0, 0}, width = 0;
    for (uint64_t i = 0; i < v->n; i++) {
        sec[i] = gguf_array_i32(g, v, i);
        if (sec[i] < 0 || sec[i] > 65535)
            rsrc_fatal("%s: metadata '%s': section %d is %" PRId64, g->path, k, (int)i, sec[i]);
        width += sec[i];
    }
    if (width == 0) rsrc_fatal("%s: metadata '%s': every section is empty", g->path, k);
    const int32_t pairs = (m->rope_dims ? m->rope_dims : m->head_dim) / 2;
    for (int32_t i = 0; i < pairs; i++) {
        const int64_t sector = i % width, r = sector % 3;
        if (!((r == 0 && sector < 3 * sec[0]) || (r == 1 && sector < 3 * sec[1]) || (r == 2 && sector < 3 * sec[2])))
            rsrc_fatal(
                "%s: metadata '%s' = [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "]: RoPE pair %d falls in "
                "the fourth section, which text does not rotate; rsrc rotates every pair by the token's position",
                g->path, k, sec[0], sec[1], sec[2], sec[3], i);
    }
}

/* Qwen3.5 (llama.cpp's qwen35 graph, docs/qwen35.md): the gated DeltaNet's sizes (ARCH.ssm.group_count
 * K heads, ssm.time_step_rank V heads, ssm.state_size the width of both, ssm.inner_size V heads x
 * that width, ssm.conv_kernel), which layers are DeltaNet layers (ARCH.attention.recurrent_layers, one
 * bool per layer, else every layer but each full_attention_interval-th, 4 when absent), and the
 * text-only multi-section RoPE: every section rotates by the token's position, which is the NeoX
 * rotation of the first rope.dimension_count dims. */
static void configure_qwen35(rsrc_model *m, const gguf_file *g, const char *arch) {
    char k[160];
    snprintf(k, sizeof k, "%s.nextn_predict_layers", arch); /* the MTP layers, after the model's (configure) */
    const gguf_value *nx = gguf_get(g, k);
    if (nx && (!integer_type(nx->type) || nx->i < 0 || nx->i >= m->num_layers))
        rsrc_fatal("%s: metadata '%s' is not a count of layers below block_count %d", g->path, k, m->num_layers);
    const int32_t all = m->num_layers;
    m->mtp_layers = nx ? (int32_t)nx->i : 0;
    m->num_layers -= m->mtp_layers;
    const int32_t L = m->num_layers;
    m->dn_k_heads = (int32_t)meta_uint(g, arch, "ssm.group_count", UINT64_MAX, 4096);
    m->dn_v_heads = (int32_t)meta_uint(g, arch, "ssm.time_step_rank", UINT64_MAX, 4096);
    m->dn_head = (int32_t)meta_uint(g, arch, "ssm.state_size", UINT64_MAX, 1024);
    m->dn_conv = (int32_t)meta_uint(g, arch, "ssm.conv_kernel", UINT64_MAX, 64);
    const uint64_t inner = meta_uint(g, arch, "ssm.inner_size", UINT64_MAX, 1 << 24);
    if (inner != (uint64_t)m->dn_v_heads * (uint64_t)m->dn_head)
        rsrc_fatal("%s: %s.ssm.inner_size %" PRIu64
                   " is not ssm.time_step_rank %d x ssm.state_size %d (heads of keys and "
                   "values of one width, as llama.cpp's qwen35 requires)",
                   g->path, arch, inner, m->dn_v_heads, m->dn_head);
    if (m->dn_v_heads % m->dn_k_heads)
        rsrc_fatal("%s: %s.ssm.time_step_rank %d is not a multiple of ssm.group_count %d", g->path, arch, m->dn_v_heads,
                   m->dn_k_heads);
    if ((int64_t)m->dn_v_heads * m->dn_head > 65535 || 2 * (int64_t)m->dn_k_heads * m->dn_head + inner > (1 << 20))
        rsrc_fatal("%s: a gated DeltaNet of %d V heads of %d is wider than the 65535 columns of a matrix input",
                   g->path, m->dn_v_heads, m->dn_head);
    static const char *const scaling[] = {"rope.scaling.factor", "rope.scale_linear"};
    for (int i = 0; i < 2; i++) {
        snprintf(k, sizeof k, "%s.%s", arch, scaling[i]);
        double f = meta_float(g, k, 0, -1e30, 1e30);
        if (f != 0 && f != 1) rsrc_fatal("%s: metadata '%s' is %g: RoPE scaling is not supported", g->path, k, f);
    }
    qwen35_sections(m, g, arch);
    m->layer_kind = xcalloc((size_t)L, sizeof *m->layer_kind);
    snprintf(k, sizeof k, "%s.attention.recurrent_layers", arch);
    const gguf_value *rl = gguf_get(g, k);
    if (rl && (rl->type != GGUF_ARR || (rl->n != (uint64_t)L && rl->n != (uint64_t)all) ||
               !(rl->atype == GGUF_BOOL || rl->atype == GGUF_U8 || rl->atype == GGUF_I32 || rl->atype == GGUF_U32)))
        rsrc_fatal("%s: metadata '%s' is not an array of one bool per layer (%d)", g->path, k, all);
    const uint64_t interval = rl ? 0 : meta_uint(g, arch, "full_attention_interval", 4, 4096);
    for (int32_t l = 0; l < L; l++) {
        bool recurrent = !rl                                              ? (l + 1) % (int64_t)interval != 0
                         : rl->atype == GGUF_I32 || rl->atype == GGUF_U32 ? gguf_array_i32(g, rl, (uint64_t)l) != 0
                                                                          : g->map[rl->first + (uint64_t)l] != 0;
        m->layer_kind[l] = recurrent ? RSR_LAYER_DELTANET : RSR_LAYER_ATTENTION;
    }
}

/* Whether qwen35's multi-token-prediction layer blk.L (L the model's layers) can be read: one MTP
 * layer, every tensor of a full-attention layer (its FFN the model's kind: dense, or a mixture with
 * the router, the experts of the model's rows and count, and the shared expert) and nextn.eh_proj
 * [2·hidden -> hidden] in a type rsrc reads as a matrix, enorm and hnorm (and shared_head_norm, when
 * there); no embedding or head of its own (it shares the model's). NULL, or why not. */
static bool matrix_type(uint32_t t) { return t == GGML_TQ1_0 || t == GGML_TQ2_0 || t == GGML_I2_S || group_qk(t); }
static const char *mtp_unreadable(const rsrc_model *m, const gguf_file *g, char *why, size_t n) {
    if (m->mtp_layers != 1) return snprintf(why, n, "%d MTP layers; rsrc reads one", m->mtp_layers), why;
    static const char *const attn[] = {"attn_q", "attn_k", "attn_v", "attn_output", "nextn.eh_proj"};
    static const char *const dense[] = {"ffn_gate", "ffn_up", "ffn_down"};
    static const char *const shexp[] = {"ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp"};
    static const char *const rows[] = {"attn_norm",   "post_attention_norm", "attn_q_norm",
                                       "attn_k_norm", "nextn.enorm",         "nextn.hnorm"};
    static const char *const own[] = {"nextn.embed_tokens", "nextn.shared_head_head"};
    char name[96];
    const int32_t L = m->num_layers;
    for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", L, own[i]);
        if (gguf_find(g, name)) return snprintf(why, n, "it has its own %s (rsrc shares the model's)", name), why;
    }
    const char *mats[8];
    size_t nm = 0;
    for (size_t i = 0; i < 5; i++) mats[nm++] = attn[i];
    for (size_t i = 0; i < 3 && (!m->num_experts || m->shared_ff); i++)
        mats[nm++] = m->num_experts ? shexp[i] : dense[i];
    for (size_t i = 0; i < nm; i++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", L, mats[i]);
        const gguf_tensor *t = gguf_find(g, name);
        if (!t) return snprintf(why, n, "no %s", name), why;
        if (!matrix_type(t->type))
            return snprintf(why, n, "%s is %s, not a type of rsrc's matrices", name, gguf_type_name(t->type)), why;
    }
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", L, rows[i]);
        if (!gguf_find(g, name)) return snprintf(why, n, "no %s", name), why;
    }
    if (!m->num_experts) return NULL;
    snprintf(name, sizeof name, "blk.%d.ffn_gate_inp.weight", L); /* a mixture's: its router and its experts */
    if (!gguf_find(g, name)) return snprintf(why, n, "no %s", name), why;
    snprintf(name, sizeof name, "blk.%d.ffn_down_exps.weight", L);
    const gguf_tensor *d = gguf_find(g, name);
    if (!d || d->ndim != 3 || d->ne[2] != (uint64_t)m->num_experts || !matrix_type(d->type))
        return snprintf(why, n, "no %s of %d experts in a type of rsrc's matrices", name, m->num_experts), why;
    return NULL;
}

/* The MTP layer read (mtp_unreadable said it can be): layer num_layers of the model, an attention
 * layer; a mixture's experts of its ffn_down_exps' rows. */
static void mtp_read(rsrc_model *m, const gguf_file *g) {
    const int32_t L = m->num_layers;
    m->layer_kind = xrealloc(m->layer_kind, sizeof *m->layer_kind * (size_t)(L + 1));
    m->layer_kind[L] = RSR_LAYER_ATTENTION;
    if (m->num_experts) {
        char name[96];
        snprintf(name, sizeof name, "blk.%d.ffn_down_exps.weight", L);
        const int32_t ff = (int32_t)gguf_find(g, name)->ne[0];
        m->expert_ff = xrealloc(m->expert_ff, sizeof *m->expert_ff * (size_t)(L + 1));
        m->swiglu_clamp = xrealloc(m->swiglu_clamp, sizeof *m->swiglu_clamp * (size_t)(L + 1));
        m->expert_ff[L] = ff, m->swiglu_clamp[L] = 0;
        if (ff > m->intermediate) m->intermediate = ff;
    }
    m->num_layers = L + 1, m->mtp = 1;
}

static void configure(rsrc_model *m, const gguf_file *g, const char *arch) {
    if (!strcmp(arch, "bitnet-b1.58") || !strcmp(arch, "bitnet-25")) {
        m->architecture = xstrdup("BitNetForCausalLM");
        m->activation = RSR_ACT_RELU2;
        m->sub_norms = true, m->attn_sub_norm = "self_attn.attn_sub_norm", m->ffn_sub_norm = "mlp.ffn_sub_norm";
    } else if (!strcmp(arch, "bitnet")) {
        m->architecture = xstrdup("BitnetForCausalLM");
        m->activation = RSR_ACT_SILU;
        m->sub_norms = true, m->attn_sub_norm = "self_attn.inner_attn_ln", m->ffn_sub_norm = "mlp.ffn_layernorm";
    } else if (!strcmp(arch, "llama")) {
        m->architecture = xstrdup("LlamaForCausalLM");
        m->activation = RSR_ACT_SILU;
    } else if (!strcmp(arch, "qwen3")) { /* trained in floats: activations per block of 32, as llama.cpp's Q8_0 */
        m->architecture = xstrdup("Qwen3ForCausalLM");
        m->activation = RSR_ACT_SILU;
        m->qk_norm = true, m->act_block = 32;
        if (gguf_find(g, "blk.0.attn_q_norm_in.weight")) { /* BitLinear layers, trained so: per-token activations */
            m->proj_norms = true, m->act_block = 0;
            m->sub_norms = true, m->attn_sub_norm = "self_attn.o_proj.norm", m->ffn_sub_norm = "mlp.down_proj.norm";
        }
    } else if (!strcmp(arch, "gemma3")) { /* also trained in floats; configure_gemma3 reads the rest */
        m->architecture = xstrdup("Gemma3ForCausalLM");
        m->activation = RSR_ACT_GELU;
        m->qk_norm = m->post_norms = true, m->act_block = 32;
        if (gguf_find(g, "blk.0.attn_q_norm_in.weight")) { /* BitLinear layers, as qwen3's */
            m->proj_norms = true, m->act_block = 0;
            m->sub_norms = true, m->attn_sub_norm = "self_attn.o_proj.norm", m->ffn_sub_norm = "mlp.down_proj.norm";
        }
    } else if (!strcmp(arch, "maple")) { /* qwen3's attention, experts in place of the FFN: configure_maple */
        m->architecture = xstrdup("MapleForCausalLM");
        m->activation = RSR_ACT_SILU;
        m->qk_norm = true, m->act_block = 32;
        m->num_experts = 1;                                             /* for now: the FFN's length is optional */
    } else if (!strcmp(arch, "qwen35") || !strcmp(arch, "qwen35moe")) { /* qwen3's attention with gated DeltaNet
                                                                           layers: configure_qwen35 */
        const bool moe = !strcmp(arch, "qwen35moe");
        m->architecture = xstrdup(moe ? "Qwen3_5MoeForCausalLM" : "Qwen3_5ForCausalLM");
        m->activation = RSR_ACT_SILU;
        m->qk_norm = true, m->act_block = 32, m->attn_gate = true;
        m->num_experts = moe; /* for now: the FFN's length is optional (configure_experts) */
    } else {
        rsrc_fatal("%s: general.architecture '%s' is not supported (bitnet-b1.58, bitnet, llama, qwen3, gemma3, maple, "
                   "qwen35, qwen35moe)",
                   g->path, arch);
    }
    m->wformat = WF_PACKED;
    m->hidden = (int32_t)meta_uint(g, arch, "embedding_length", UINT64_MAX, 65535);
    m->intermediate = (int32_t)meta_uint(g, arch, "feed_forward_length", m->num_experts ? 0 : UINT64_MAX, 65535);
    m->num_layers = (int32_t)meta_uint(g, arch, "block_count", UINT64_MAX, 4096);
    m->num_heads = (int32_t)meta_uint(g, arch, "attention.head_count", UINT64_MAX, 4096);
    m->num_kv_heads = (int32_t)meta_uint(g, arch, "attention.head_count_kv", (uint64_t)m->num_heads, 4096);
    m->max_positions = (int32_t)meta_uint(g, arch, "context_length", 2048, 1 << 24);
    if (m->num_heads % m->num_kv_heads)
        rsrc_fatal("%s: head_count %d is not a multiple of head_count_kv %d", g->path, m->num_heads, m->num_kv_heads);
    uint64_t key_len = meta_uint(g, arch, "attention.key_length", 0, 65535);
    if (!key_len && m->hidden % m->num_heads)
        rsrc_fatal("%s: embedding_length %d is not a multiple of head_count %d, and %s.attention.key_length is absent",
                   g->path, m->hidden, m->num_heads, arch);
    m->head_dim = key_len ? (int32_t)key_len : m->hidden / m->num_heads;
    if (meta_uint(g, arch, "attention.value_length", (uint64_t)m->head_dim, 65535) != (uint64_t)m->head_dim)
        rsrc_fatal("%s: %s.attention.value_length differs from key_length %d (not supported)", g->path, arch,
                   m->head_dim);
    if ((int64_t)m->num_heads * m->head_dim > 65535)
        rsrc_fatal("%s: %d heads of %d is above 65535, the widest matrix input supported", g->path, m->num_heads,
                   m->head_dim);
    if (m->head_dim % 2) rsrc_fatal("%s: head dimension %d is odd; RoPE needs pairs", g->path, m->head_dim);
    uint64_t rope_dim = meta_uint(g, arch, "rope.dimension_count", (uint64_t)m->head_dim, 65535);
    if (m->attn_gate && (rope_dim > (uint64_t)m->head_dim || rope_dim % 2))
        rsrc_fatal("%s: %s.rope.dimension_count %" PRIu64 " is odd or above the head dimension %d", g->path, arch,
                   rope_dim, m->head_dim);
    if (m->attn_gate) /* qwen35: partial RoPE */
        m->rope_dims = rope_dim == (uint64_t)m->head_dim ? 0 : (int32_t)rope_dim;
    else if (rope_dim != (uint64_t)m->head_dim)
        rsrc_fatal("%s: %s.rope.dimension_count %" PRIu64
                   " is not the head dimension %d (partial RoPE is not supported)",
                   g->path, arch, rope_dim, m->head_dim);
    char k[160];
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
    m->rms_eps = (float)meta_float(g, k, 1e-5, 0, 1);
    snprintf(k, sizeof k, "%s.rope.freq_base", arch);
    m->rope_theta = meta_float(g, k, 10000.0, 1.0, 1e12);
    snprintf(k, sizeof k, "%s.pooling_type", arch); /* llama.cpp's numbers: 0 none, 1 mean, 2 cls, 3 last, 4 rank */
    const gguf_value *pool = gguf_get(g, k);
    if (pool && (!integer_type(pool->type) || pool->i < 0 || pool->i > 3))
        rsrc_fatal("%s: metadata '%s' is %" PRId64
                   "; rsrc pools embeddings by mean (1), first (2) or last token (3), not a "
                   "reranker's rank (4)",
                   g->path, k, pool->i);
    m->pooling = pool && pool->i ? (int32_t)pool->i : RSR_POOLING_LAST; /* none: the last token's, as llama.cpp */
    const gguf_tensor *emb = gguf_find(g, "token_embd.weight");
    if (!emb || emb->ndim != 2) rsrc_fatal("%s: no two-dimensional tensor 'token_embd.weight'", g->path);
    if (emb->ne[1] > (1u << 24)) rsrc_fatal("%s: a vocabulary of %" PRIu64 " tokens", g->path, emb->ne[1]);
    m->vocab = (int32_t)emb->ne[1];
    m->bos = meta_token(g, "tokenizer.ggml.bos_token_id", m->vocab);
    m->eos = meta_token(g, "tokenizer.ggml.eos_token_id", m->vocab);
    m->tied = !gguf_find(g, "output.weight");
    if (m->attn_gate) configure_qwen35(m, g, arch);
    if (m->post_norms) configure_gemma3(m, g, arch);
    if (m->num_experts && m->attn_gate) /* qwen35moe: the experts alone */
        configure_experts(m, g, arch, false);
    else if (m->num_experts) /* maple: its experts and its windows */
        configure_maple(m, g, arch);
    if (m->mtp_layers) { /* qwen35's multi-token prediction: one more attention layer, read when it can be */
        char why[256];
        const char *no = mtp_unreadable(m, g, why, sizeof why);
        if (no)
            rsrc_note(0, "%s: its multi-token-prediction layer is not read (%s): no draft-mtp", g->path, no);
        else
            mtp_read(m, g);
    }
    fold_read(m, g); /* PrismML's Hadamard fold (Bonsai 2), when its keys are there */
    if (m->tied && m->fold_embed) m->fold_lm_head = true; /* the head is the rotated embedding */
}

static void close_file(void *g) { gguf_close(g); }

/* Which of an expert's matrices "blk.N.ffn_{gate,up,down}_exps.weight" (or .scale) names:
 * PROJ_GATE, PROJ_UP, PROJ_DOWN, or NUM_PROJ for gate and up in one (ffn_gate_up_exps, each
 * expert's gate rows before its up rows); -1 for any other name. */
static int expert_of(const char *name) {
    static const char *const kinds[4] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps", "ffn_gate_up_exps"};
    static const int proj[4] = {PROJ_GATE, PROJ_UP, PROJ_DOWN, NUM_PROJ};
    int layer, used = 0;
    if (sscanf(name, "blk.%d.%n", &layer, &used) != 1 || !used) return -1;
    for (int p = 0; p < 4; p++) {
        size_t n = strlen(kinds[p]);
        if (!strncmp(name + used, kinds[p], n) &&
            (!strcmp(name + used + n, ".weight") || !strcmp(name + used + n, ".scale")))
            return proj[p];
    }
    return -1;
}

/* A stacked expert tensor [cols, rows, num_experts] (ggml's order: expert e's rows follow
 * expert e-1's, rows e·rows ... of the tensor seen as a matrix) as num_experts ternary matrices
 * model.layers.N.mlp.experts.E.{gate,up,down}_proj, each with its own scale; a stack of gate and
 * up (ffn_gate_up_exps) as two halves of each expert's rows. */
static void add_experts(st_archive *a, rsrc_model *m, const gguf_file *g, const gguf_tensor *t,
                        struct gguf_lazy *lazy) {
    int layer = -1;
    sscanf(t->name, "blk.%d.", &layer);
    const int p = expert_of(t->name), halves = p == NUM_PROJ ? 2 : 1;
    if (strcmp(t->name + strlen(t->name) - 7, ".weight"))
        rsrc_fatal("%s: tensor '%s': per-tensor scales of stacked expert matrices are not supported", g->path, t->name);
    if (layer < 0 || layer >= m->num_layers)
        rsrc_fatal("%s: tensor '%s' names a layer the model has not", g->path, t->name);
    if (t->ndim != 3 || t->ne[2] != (uint64_t)m->num_experts || t->ne[1] % (uint64_t)halves)
        rsrc_fatal("%s: tensor '%s': %u dimensions [%" PRIu64 ", %" PRIu64 ", %" PRIu64
                   "], expected 3 with %d experts%s",
                   g->path, t->name, t->ndim, t->ne[0], t->ne[1], t->ne[2], m->num_experts,
                   halves > 1 ? " and an even count of rows (gate, then up)" : "");
    const uint64_t per = t->nbytes / t->ne[2] / (uint64_t)halves;
    for (int32_t e = 0; e < m->num_experts; e++)
        for (int h = 0; h < halves; h++) {
            const int proj = halves > 1 ? PROJ_GATE + h : p;
            gguf_tensor sl = *t;
            sl.ndim = 2, sl.ne[1] /= (uint64_t)halves, sl.ne[2] = 1, sl.nbytes = per;
            sl.data = t->data + ((uint64_t)e * (uint64_t)halves + (uint64_t)h) * per;
            sl.name = xasprintf("%s[expert %d%s]", t->name, e, halves == 1 ? "" : h ? ", up" : ", gate");
            char *name = xasprintf("model.layers.%d.mlp.experts.%d.%s.weight", layer, e, proj_names[proj] + 4);
            add_ternary(a, m, g, &sl, name, proj, lazy);
            if (model_fold_lists(m, t->name)) model_fold_add(m, name);
            free(sl.name);
        }
}

/* ---- the tokenizer: tokenizer.ggml.* as the tokenizer.json or tokenizer.model the runtime reads ---- */

static bool meta_is(const gguf_file *g, const char *key, const char *want) {
    const gguf_value *v = gguf_get(g, key);
    return v && v->type == GGUF_STR && v->len == strlen(want) && !memcmp(v->str, want, v->len);
}

/* Refuses a vocabulary with a token twice, found by sorting (a 248K vocabulary asked of cJSON's
 * object one token at a time took minutes) */
static void vocab_unique(rsrc_arena *ar, const gguf_file *g, const cJSON *vocab) {
    char **k = xmalloc(sizeof *k * (size_t)(cJSON_GetArraySize(vocab) + 1));
    rsrc_arena_own(ar, free, k);
    size_t n = 0;
    for (const cJSON *e = vocab->child; e; e = e->next) k[n++] = e->string;
    const char *twice = rsrc_sorted_repeat(k, n);
    if (twice) rsrc_fatal("%s: token '%s' appears twice", g->path, twice);
}

/* a string array's elements as C strings, in one block the arena releases */
static char **string_array(rsrc_arena *ar, const gguf_file *g, const gguf_value *v) {
    uint64_t at = v->first, bytes = 0, len;
    for (uint64_t i = 0; i < v->n; i++) gguf_next_str(g, &at, &len), bytes += len + 1;
    char **out = xmalloc(sizeof *out * (size_t)(v->n ? v->n : 1) + (size_t)bytes);
    rsrc_arena_own(ar, free, out);
    char *text = (char *)(out + (v->n ? v->n : 1));
    at = v->first;
    for (uint64_t i = 0; i < v->n; i++) {
        const char *str = gguf_next_str(g, &at, &len);
        out[i] = text;
        memcpy(text, str, (size_t)len), text[len] = 0;
        text += len + 1;
    }
    return out;
}

/* ---- a SentencePiece vocabulary (tokenizer.ggml.model "llama") as the tokenizer.model the
 * runtime reads: the pieces with their scores and types (GGUF's token types number SentencePiece's
 * piece types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), a BPE trainer
 * spec with the unknown/BOS/EOS ids and byte fallback when byte pieces are there, and a normalizer
 * that escapes whitespace and adds the dummy prefix unless tokenizer.ggml.add_space_prefix is
 * false. The protobuf is written here, field numbers as sentencepiece_model.proto has them. ---- */

typedef struct pbuf {
    uint8_t *b;
    size_t n, cap;
} pbuf;
static void pb_bytes(pbuf *p, const void *d, size_t n) {
    if (p->n + n > p->cap) p->b = xrealloc(p->b, p->cap = (p->n + n) * 2 + 64);
    memcpy(p->b + p->n, d, n), p->n += n;
}
static void pb_varint(pbuf *p, uint64_t v) {
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        c |= v ? 0x80 : 0;
        pb_bytes(p, &c, 1);
    } while (v);
}
static void pb_int(pbuf *p, uint32_t field, int64_t v) { pb_varint(p, field << 3), pb_varint(p, (uint64_t)v); }
static void pb_string(pbuf *p, uint32_t field, const void *d, size_t n) {
    pb_varint(p, field << 3 | 2), pb_varint(p, n), pb_bytes(p, d, n);
}

static char *spm_model(const gguf_file *g, const gguf_value *toks, const gguf_value *types, int32_t bos, int32_t eos,
                       size_t *len) {
    const gguf_value *scores = gguf_get(g, "tokenizer.ggml.scores"),
                     *unk = gguf_get(g, "tokenizer.ggml.unknown_token_id"),
                     *prefix = gguf_get(g, "tokenizer.ggml.add_space_prefix");
    if (!scores || scores->type != GGUF_ARR || scores->atype != GGUF_F32 || scores->n != toks->n)
        rsrc_fatal("%s: tokenizer.ggml.scores must be an f32 array as long as tokenizer.ggml.tokens", g->path);
    pbuf model = {0}, piece = {0}, spec = {0};
    uint64_t at = toks->first;
    bool bytes = false;
    for (uint64_t i = 0; i < toks->n; i++) {
        uint64_t n;
        const char *text = gguf_next_str(g, &at, &n);
        int32_t type = types ? gguf_array_i32(g, types, i) : 1;
        float score = gguf_array_f32(g, scores, i);
        bytes |= type == 6;
        piece.n = 0;
        pb_string(&piece, 1, text, (size_t)n);
        pb_varint(&piece, 2 << 3 | 5), pb_bytes(&piece, &score, 4); /* fixed32, little-endian like the file */
        pb_int(&piece, 3, type);
        pb_string(&model, 1, piece.b, piece.n);
    }
    pb_int(&spec, 3, 2); /* BPE */
    pb_int(&spec, 35, bytes);
    pb_int(&spec, 40, unk && integer_type(unk->type) ? unk->i : 0);
    pb_int(&spec, 41, bos), pb_int(&spec, 42, eos);
    pb_string(&model, 2, spec.b, spec.n);
    spec.n = 0;
    pb_string(&spec, 1, "identity", 8);
    pb_int(&spec, 3, !(prefix && prefix->type == GGUF_BOOL && !prefix->u)), pb_int(&spec, 4, 0), pb_int(&spec, 5, 1);
    pb_string(&model, 3, spec.b, spec.n);
    free(piece.b), free(spec.b);
    *len = model.n;
    return (char *)model.b;
}

/* A byte-level BPE tokenizer (tokenizer.ggml.model "gpt2" with the "llama-bpe" or "qwen2" pre-tokenizer) as
 * tokenizer.json text: normal and byte tokens (types 1, 6) in the model's vocabulary, control and
 * user-defined ones (3, 4) as added tokens (special when control), unused ones (5) left out;
 * BOS added when tokenizer.ggml.add_bos_token is not false, EOS when add_eos_token is true (the
 * embedding models that pool the last token). NULL, with a note, for the others. */
static const char *added_name(const cJSON *added, int32_t id, const char *fallback) {
    const cJSON *a;
    cJSON_ArrayForEach(a, added) if (cJSON_GetObjectItemCaseSensitive(a, "id")->valuedouble ==
                                     id) return cJSON_GetObjectItemCaseSensitive(a, "content")
        ->valuestring;
    return fallback;
}

static char *tokenizer_json(const gguf_file *g, int32_t bos, int32_t eos, size_t *len) {
    const gguf_value *toks = gguf_get(g, "tokenizer.ggml.tokens"), *types = gguf_get(g, "tokenizer.ggml.token_type"),
                     *merges = gguf_get(g, "tokenizer.ggml.merges"),
                     *addbos = gguf_get(g, "tokenizer.ggml.add_bos_token"),
                     *addeos = gguf_get(g, "tokenizer.ggml.add_eos_token");
    if (!gguf_get(g, "tokenizer.ggml.model")) return NULL;
    const bool spm = meta_is(g, "tokenizer.ggml.model", "llama");
    /* the names llama.cpp gives Llama 3's split (Falcon 3 uses it too) */
    const bool llama3 = meta_is(g, "tokenizer.ggml.pre", "llama-bpe") || meta_is(g, "tokenizer.ggml.pre", "llama3") ||
                        meta_is(g, "tokenizer.ggml.pre", "llama-v3") || meta_is(g, "tokenizer.ggml.pre", "falcon3") ||
                        meta_is(g, "tokenizer.ggml.pre", "falcon-h1");
    const bool qwen2 = meta_is(g, "tokenizer.ggml.pre", "qwen2");
    if (!spm && (!meta_is(g, "tokenizer.ggml.model", "gpt2") || !(llama3 || qwen2))) {
        rsrc_note(
            0,
            "%s: its tokenizer (tokenizer.ggml.model and .pre) is neither SentencePiece nor the byte-level BPE of "
            "Llama 3 or Qwen2, the ones rsrc reads from GGUF: the artifact takes token ids only",
            g->path);
        return NULL;
    }
    if (!toks || toks->type != GGUF_ARR || toks->atype != GGUF_STR)
        rsrc_fatal("%s: tokenizer.ggml.tokens must be an array of strings", g->path);
    if (types && (types->type != GGUF_ARR || types->atype != GGUF_I32 || types->n != toks->n))
        rsrc_fatal("%s: tokenizer.ggml.token_type must be an i32 array as long as tokenizer.ggml.tokens", g->path);
    if (spm) return spm_model(g, toks, types, bos, eos, len);
    if (!merges || merges->type != GGUF_ARR || merges->atype != GGUF_STR)
        rsrc_fatal("%s: tokenizer.ggml.merges must be an array of strings", g->path);
    rsrc_arena *ar = rsrc_arena_open();
    cJSON *root = cJSON_CreateObject();
    rsrc_arena_own(ar, (void (*)(void *))cJSON_Delete, root); /* everything below hangs from it */
    cJSON *model = cJSON_AddObjectToObject(root, "model"), *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    char **t = string_array(ar, g, toks), **mg = string_array(ar, g, merges);
    for (uint64_t i = 0; i < toks->n; i++) {
        int32_t type = types ? gguf_array_i32(g, types, i) : 1;
        if (type == 3 || type == 4) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", t[i]);
            cJSON_AddBoolToObject(a, "special", type == 3);
            cJSON_AddItemToArray(added, a);
        } else if (type != 5)
            cJSON_AddNumberToObject(vocab, t[i], (double)i);
    }
    vocab_unique(ar, g, vocab);
    cJSON *ml = cJSON_CreateArray(); /* no refusal from here until it is attached */
    for (uint64_t i = 0; i < merges->n; i++) cJSON_AddItemToArray(ml, cJSON_CreateString(mg[i]));
    bpe_json_pipeline(root, qwen2 ? bpe_qwen2_split : bpe_llama3_split);
    const bool with_bos = bos >= 0 && !(addbos && addbos->type == GGUF_BOOL && !addbos->u),
               with_eos = eos >= 0 && addeos && addeos->type == GGUF_BOOL && addeos->u;
    if (with_bos || with_eos) /* BOS, the text, EOS */
        bpe_json_specials(root, added_name(added, bos, "<bos>"), with_bos ? bos : -1, added_name(added, eos, "<eos>"),
                          with_eos ? eos : -1);
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON_AddBoolToObject(model, "ignore_merges", llama3); /* llama.cpp's llama-bpe does so, its qwen2 not */
    cJSON_AddItemToObject(model, "merges", ml);
    char *text = cJSON_PrintUnformatted(root);
    if (!text) rsrc_fatal("out of memory");
    rsrc_arena_close(ar);
    char *r = xstrdup(text);
    cJSON_free(text);
    *len = strlen(r);
    return r;
}

/* Whether a ternary tensor takes activations as llama.cpp's Q8_K (blocks of 256): TQ1_0 and TQ2_0, whose
 * dot products llama.cpp takes against Q8_K, and I2_S (bitnet.cpp's; upstream has none) of whole
 * blocks of 256 columns, so that the same weights give the same logits in either type. */
static bool act_q8k_type(const gguf_tensor *t) {
    return t->type == GGML_TQ1_0 || t->type == GGML_TQ2_0 || (t->type == GGML_I2_S && t->ne[0] % 256 == 0);
}

void gguf_model_load(rsrc_model *m, const char *path) {
    rsrc_arena *ar = rsrc_arena_open(); /* what a refusal releases */
    gguf_file *g = gguf_open(path);
    rsrc_arena_own(ar, close_file, g);
    const gguf_value *av = gguf_get(g, "general.architecture");
    if (!av || av->type != GGUF_STR) rsrc_fatal("%s: no string general.architecture", path);
    char *arch = xasprintf("%.*s", (int)(av->len > 64 ? 64 : av->len), av->str);
    rsrc_arena_own(ar, free, arch);
    configure(m, g, arch);
    m->tokenizer = tokenizer_json(g, m->bos, m->eos, &m->tokenizer_len);
    const gguf_value *tmpl = gguf_get(g, "tokenizer.chat_template");
    if (tmpl && tmpl->type == GGUF_STR) m->chat_template = xasprintf("%.*s", (int)tmpl->len, tmpl->str);
    st_archive *a = xcalloc(1, sizeof *a);
    a->path = xstrdup(path), a->dir = st_dir_of(path);
    a->files = xcalloc(1, sizeof *a->files);
    a->files[0] = (struct st_mapped){xstrdup(path), g->map, g->size}; /* the archive owns the mapping now */
    a->nfiles = 1;
    g->map = NULL;
    m->ar = a;
    m->lazy = xcalloc(1, sizeof *m->lazy);
    m->lazy->ar = a;
    uint32_t ternary_type = 0;
    bool all_tq = true; /* every ternary matrix TQ1_0, TQ2_0 or I2_S of whole blocks of 256 columns */
    for (uint64_t i = 0; i < g->ntensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        size_t n = strlen(t->name);
        int proj, layer = -1;
        if (m->mtp_layers && sscanf(t->name, "blk.%d.", &layer) == 1 && layer >= m->num_layers &&
            layer < m->num_layers + m->mtp_layers)
            continue; /* a multi-token-prediction layer's (qwen35): not read */
        if (m->num_experts && expert_of(t->name) >= 0) {
            add_experts(a, m, g, t, m->lazy);
            ternary_type = t->type, all_tq &= act_q8k_type(t);
            continue;
        }
        if (n > 6 && !strcmp(t->name + n - 6, ".scale")) { /* a projection's: read with it */
            char *w = xasprintf("%.*s.weight", (int)(n - 6), t->name), *hn = hf_name(m, w, &proj);
            free(w), free(hn);
            if (proj < 0) rsrc_fatal("%s: tensor '%s' is not one of a %s model's", path, t->name, arch);
            continue;
        }
        char *name = hf_name(m, t->name, &proj);
        if (!name) rsrc_fatal("%s: tensor '%s' is not one of a %s model's", path, t->name, arch);
        rsrc_arena_own(ar, free, name); /* the archive's once added */
        if (proj >= 0) {
            add_ternary(a, m, g, t, name, proj, m->lazy), ternary_type = t->type, all_tq &= act_q8k_type(t);
            if (model_fold_lists(m, t->name)) model_fold_add(m, name);
        } else if (m->layer_kind && group_qk(t->type) && !kept_in_blocks(name))
            add_grouped_float(a, g, t, name); /* qwen35's beta and alpha rows, quantised as its matrices */
        else
            add_float(a, g, t, name);
        rsrc_arena_disown(ar, name);
    }
    fold_finish(m);
    for (int i = 0; i < a->ntensors; i++) a->tensors[i].file = a->path; /* g->path goes with the file's tables */
    st_sort_and_check(a, path);
    if (m->lazy->n) /* none in a file without ternary tensors (refused later, naming what it lacks) */
        qsort(m->lazy->d, (size_t)m->lazy->n, sizeof *m->lazy->d, deferred_cmp);
    if (m->act_block == 32 && ternary_type && all_tq)    /* activations as llama.cpp rounds them for TQ1_0, TQ2_0 */
        m->act_block = 256, m->act_quant = RSR_ACT_Q8_K; /* (and I2_S: the same weights, the same logits) */
    m->format_name = ternary_type == GGML_I2_S     ? "gguf-i2_s"
                     : ternary_type == GGML_TQ1_0  ? "gguf-tq1_0"
                     : ternary_type == GGML_Q1_0   ? "gguf-q1_0"
                     : ternary_type == GGML_Q2_0   ? "gguf-q2_0"
                     : ternary_type == GGML_PQ2_0  ? "gguf-pq2_0"
                     : ternary_type == GGML_PTQ1_0 ? "gguf-ptq1_0"
                                                   : "gguf-tq2_0";
    rsrc_note(1, "%s: GGUF v%u, %s (%s), %" PRIu64 " tensors", path, g->version, arch, m->format_name, g->ntensors);
    rsrc_arena_close(ar); /* the file's tables; its tensors' data lives on in the archive's mapping */
}
