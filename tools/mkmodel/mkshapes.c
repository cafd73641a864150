/*
 * mkshapes.c — the tensors of the models rsr-mkmodel writes: their names, dtypes, shapes and kinds
 * for each format and architecture (attention, the FFN or a mixture of experts, qwen35's gated
 * DeltaNet layers, the norms, the embeddings and head), and their assignment to shards. Uses
 * mkmodel.h (the formats, options and tensor list).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkmodel.h"

/* ------------------------------------------------------------------------------------------ */
/* formats and tensors                                                                        */

int format_packed(format_t f) { return f == F_BITNET_PACKED || f == F_LLAMA_PACKED || f == F_FALCON_E; }
int format_bitnet(format_t f) { return f == F_BITNET_PACKED || f == F_BITNET_BF16; }
int format_qwen3(format_t f) { return f == F_QWEN3_GROUPED || f == F_QWEN3_EMBED; }

const char *const dtype_names[] = {"BF16", "F16", "U8"};
static const int dtype_size[] = {2, 2, 1};

static tensor_t *tadd(tlist_t *l, const char *name, dtype_t dt, kind_t kind, int ndim, uint64_t d0, uint64_t d1) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->t = realloc(l->t, l->cap * sizeof *l->t);
        if (!l->t) die("out of memory");
    }
    tensor_t *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    if (strlen(name) >= sizeof t->name) die("tensor name too long: %s", name);
    strcpy(t->name, name);
    t->dt = dt;
    t->kind = kind;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 1;
    t->nbytes = d0 * t->shape[1] * (uint64_t)dtype_size[dt];
    return t;
}

static void add_matrix(tlist_t *l, const opts_t *o, const char *base, uint64_t out, uint64_t in) {
    char name[160];
    tensor_t *t;
    snprintf(name, sizeof name, "%s.weight", base);
    if (format_packed(o->format)) {
        t = tadd(l, name, DT_U8, K_PACKED, 2, out / 4, in);
        t->out = out;
        t->in = in;
        snprintf(name, sizeof name, "%s.weight_scale", base);
        t = tadd(l, name, DT_BF16, K_SCALE, 1, 1, 0);
        t->out = out;
        t->in = in;
        t->inverted = o->format == F_LLAMA_PACKED;
    } else {
        t = tadd(l, name, o->dtype, o->format == F_QWEN3_GROUPED ? K_GROUPED : K_LATENT, 2, out, in);
        t->out = out;
        t->in = in;
    }
}

/* --proj-norms: BASE.norm.weight, the RMSNorm of the projection's input (width cols) */
static void proj_norm(tlist_t *l, const opts_t *o, const char *base, uint64_t cols) {
    if (!o->proj_norms) return;
    char name[160];
    snprintf(name, sizeof name, "%s.norm.weight", base);
    tadd(l, name, DT_BF16, K_NORM, 1, cols, 0);
}

/* maple's rows of layer L's experts: --expert-ff's L-th value (the last one's for an MTP layer after
 * them), or its one value. */
long layer_ff(const opts_t *o, long L) {
    const char *p = o->expert_ff_list;
    for (long i = 0; p && i < L && strchr(p, ','); i++) p = strchr(p, ',') + 1;
    return p ? strtol(p, NULL, 10) : o->expert_ff;
}

static tensor_t *tfloat(tlist_t *l, const char *name, int ndim, uint64_t d0, uint64_t d1, double mean, double sd,
                        int neg) {
    tensor_t *t = tadd(l, name, DT_BF16, K_FLOAT, ndim, d0, d1);
    t->fmean = mean, t->fsd = sd, t->fneg = neg;
    return t;
}

/* A mixture of experts' FFN of layer L: the router [experts][hidden], then every expert's gate, then
 * every up, then every down (write_gguf stacks each run into one tensor of the experts); qwen35moe's
 * shared expert (gate, up, down of shared_ff rows) and its gate [hidden] before them. */
static void expert_tensors(tlist_t *l, const opts_t *o, long L) {
    const uint64_t H = (uint64_t)o->hidden, F = (uint64_t)layer_ff(o, L), S = (uint64_t)o->shared_ff;
    char name[160], base[128];
    snprintf(name, sizeof name, "model.layers.%ld.mlp.gate.weight", L);
    tadd(l, name, DT_BF16, K_ROUTER, 2, (uint64_t)o->experts, H);
    static const char *const mlp[3] = {"gate", "up", "down"};
    for (int p = 0; p < 3 && S; p++) {
        snprintf(base, sizeof base, "model.layers.%ld.mlp.shared_expert.%s_proj", L, mlp[p]);
        add_matrix(l, o, base, p == 2 ? H : S, p == 2 ? S : H);
    }
    if (S) {
        snprintf(name, sizeof name, "model.layers.%ld.mlp.shared_expert_gate.weight", L);
        tfloat(l, name, 1, H, 0, 0, 1.0 / sqrt((double)H), 0);
    }
    for (int p = 0; p < 3; p++)
        for (long e = 0; e < o->experts; e++) {
            snprintf(base, sizeof base, "model.layers.%ld.mlp.experts.%ld.%s_proj", L, e, mlp[p]);
            add_matrix(l, o, base, p == 2 ? H : F, p == 2 ? F : H);
        }
}

/* qwen35's gated DeltaNet layer L: [q|k|v] (ssm_k K heads, ssm_v V heads, all of ssm_d),
 * the output gate z and the output projection as ternary matrices; beta's and alpha's rows, the
 * convolution (4 taps), dt's bias, A = -exp(.) and the norm of each V head as floats. */
static void deltanet_tensors(tlist_t *l, const opts_t *o, long L) {
    const uint64_t H = (uint64_t)o->hidden, D = (uint64_t)o->ssm_d, Vh = (uint64_t)o->ssm_v;
    const uint64_t conv = 2 * (uint64_t)o->ssm_k * D + Vh * D;
    char name[160], base[128];
    snprintf(base, sizeof base, "model.layers.%ld.linear_attn.in_proj_qkv", L);
    add_matrix(l, o, base, conv, H);
    snprintf(base, sizeof base, "model.layers.%ld.linear_attn.in_proj_z", L);
    add_matrix(l, o, base, Vh * D, H);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.in_proj_b.weight", L);
    tfloat(l, name, 2, Vh, H, 0, 1.0 / sqrt((double)H), 0);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.in_proj_a.weight", L);
    tfloat(l, name, 2, Vh, H, 0, 1.0 / sqrt((double)H), 0);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.conv1d.weight", L);
    tfloat(l, name, 2, conv, 4, 0, 0.5, 0);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.dt_bias", L);
    tfloat(l, name, 1, Vh, 0, 0, 0.5, 0);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.ssm_a", L);
    tfloat(l, name, 1, Vh, 0, -0.5, 0.5, 1);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.norm.weight", L);
    tadd(l, name, DT_BF16, K_NORM, 1, D, 0);
    snprintf(base, sizeof base, "model.layers.%ld.linear_attn.out_proj", L);
    add_matrix(l, o, base, H, Vh * D);
}

/* qwen3-embed's tensors are named without "model." (the checkpoint of a Qwen3Model) */
static void drop_model_prefix(tlist_t *l) {
    for (size_t i = 0; i < l->n; i++)
        if (!strncmp(l->t[i].name, "model.", 6)) memmove(l->t[i].name, l->t[i].name + 6, strlen(l->t[i].name + 6) + 1);
}

void build_tensors(tlist_t *l, const opts_t *o) {
    const dtype_t hp = o->dtype; /* high-precision dtype */
    const uint64_t H = (uint64_t)o->hidden, I = (uint64_t)o->intermediate, V = (uint64_t)o->vocab;
    const uint64_t HD = (uint64_t)o->head_dim, Q = (uint64_t)o->heads * HD, KV = (uint64_t)o->kv_heads * HD;
    const int sub_norms = (format_bitnet(o->format) || o->format == F_1BITLLM) && !o->qwen3;
    char name[160], base[128];
    tadd(l, "model.embed_tokens.weight", hp, K_EMBED, 2, V, H);
    for (long L = 0; L < o->layers + o->nextn; L++) { /* the MTP layer (--nextn) last, full attention */
        snprintf(name, sizeof name, "model.layers.%ld.input_layernorm.weight", L);
        tadd(l, name, hp, K_NORM, 1, H, 0);
        if (o->qwen35 && (L + 1) % 4 && L < o->layers) { /* a gated DeltaNet layer */
            deltanet_tensors(l, o, L);
            goto ffn;
        }
        static const char *const attn[4] = {"q", "k", "v", "o"};
        for (int p = 0; p < 4; p++) {
            snprintf(base, sizeof base, "model.layers.%ld.self_attn.%s_proj", L, attn[p]);
            add_matrix(l, o, base, p == 0 ? (o->qwen35 ? 2 * Q : Q) : p == 3 ? H : KV, p == 3 ? Q : H);
            proj_norm(l, o, base, p == 3 ? Q : H);
        }
        for (int p = 0; p < 2 && o->gemma3; p++) { /* RMSNorm of the attention's and the FFN's output */
            snprintf(name, sizeof name, "model.layers.%ld.%s.post_norm.weight", L, p ? "mlp" : "self_attn");
            tadd(l, name, hp, K_NORM, 1, H, 0);
        }
        for (int p = 0; p < 2 && o->qwen3; p++) { /* RMSNorm of each head of q and of k */
            snprintf(name, sizeof name, "model.layers.%ld.self_attn.%s_norm.weight", L, p ? "k" : "q");
            tadd(l, name, hp, K_NORM, 1, HD, 0);
        }
        if (sub_norms) {
            snprintf(name, sizeof name, "model.layers.%ld.self_attn.%s.weight", L,
                     o->format == F_1BITLLM ? "inner_attn_ln" : "attn_sub_norm");
            tadd(l, name, hp, K_NORM, 1, H, 0);
        }
    ffn:
        snprintf(name, sizeof name, "model.layers.%ld.post_attention_layernorm.weight", L);
        tadd(l, name, hp, K_NORM, 1, H, 0);
        static const char *const mlp[3] = {"gate", "up", "down"};
        if (o->moe) expert_tensors(l, o, L);
        for (int p = 0; p < 3 && !o->moe; p++) {
            snprintf(base, sizeof base, "model.layers.%ld.mlp.%s_proj", L, mlp[p]);
            add_matrix(l, o, base, p == 2 ? H : I, p == 2 ? I : H);
            proj_norm(l, o, base, p == 2 ? I : H);
        }
        if (L >= o->layers) { /* the MTP layer's own: [embedding | hidden state] -> hidden, and three norms */
            snprintf(base, sizeof base, "model.layers.%ld.mtp.eh_proj", L);
            add_matrix(l, o, base, H, 2 * H);
            static const char *const mtp_norms[3] = {"enorm", "hnorm", "shared_head_norm"};
            for (int p = 0; p < 3; p++) {
                snprintf(name, sizeof name, "model.layers.%ld.mtp.%s.weight", L, mtp_norms[p]);
                tadd(l, name, hp, K_NORM, 1, H, 0);
            }
        }
        if (sub_norms && !o->moe) {
            snprintf(name, sizeof name, "model.layers.%ld.mlp.%s.weight", L,
                     o->format == F_1BITLLM ? "ffn_layernorm" : "ffn_sub_norm");
            tadd(l, name, hp, K_NORM, 1, I, 0);
        }
    }
    tadd(l, "model.norm.weight", hp, K_NORM, 1, H, 0);
    /* bitnet-packed (and its GGUF architectures) and qwen3-grouped tie the head unless --untied; an
     * embedding model has none */
    const int head = format_bitnet(o->format) || o->format == F_QWEN3_GROUPED ? o->untied : o->format != F_QWEN3_EMBED;
    if (head) tadd(l, "lm_head.weight", hp, K_EMBED, 2, V, H);
    if (o->format == F_QWEN3_EMBED) drop_model_prefix(l);
}

/* Assign tensors to shards in order, every shard non-empty: each shard takes tensors until it is
 * closest to an equal part of the bytes still to place (so one huge tensor does not unbalance the
 * shards after it). */
void assign_shards(tlist_t *l, long nshards, uint64_t total) {
    size_t i = 0;
    uint64_t remaining = total;
    for (long s = 0; s < nshards; s++) {
        const long left = nshards - s;
        const uint64_t target = remaining / (uint64_t)left;
        uint64_t acc = 0;
        size_t taken = 0;
        while (i < l->n) {
            if (s < nshards - 1) {
                if (l->n - i <= (size_t)(left - 1)) break; /* one tensor for each later shard */
                uint64_t next = acc + l->t[i].nbytes;
                if (taken && (acc >= target || (next > target && next - target >= target - acc))) break;
            }
            l->t[i].shard = (int)s;
            acc += l->t[i].nbytes;
            taken++;
            i++;
        }
        remaining -= acc;
    }
}
