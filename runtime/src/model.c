/* model.c — opening a compiled model (the default one, or a named one by its descriptor); status strings; matrix access. */
#include <errno.h>
#include <math.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "rsr_gpu_accepts.h"

const char *rsr_status_to_string(rsr_status st) {
    switch (st) {
    case RSR_OK: return "ok";
    case RSR_ERR_INVALID_ARGUMENT: return "invalid argument";
    case RSR_ERR_OUT_OF_MEMORY: return "out of memory";
    case RSR_ERR_ABI: return "artifact ABI mismatch";
    case RSR_ERR_CONTEXT_FULL: return "context full";
    case RSR_ERR_BAD_TOKEN: return "token id out of range";
    case RSR_ERR_INTERNAL: return "internal error";
    case RSR_ERR_NOT_FOUND: return "not found";
    case RSR_ERR_FORMAT: return "unsupported format";
    case RSR_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case RSR_ERR_DEVICE: return "device unavailable";
    case RSR_ERR_IO: return "input/output error";
    }
    return "unknown status";
}

rsr_status rt_set_error(char *err, rsr_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, RSR_ERRMSG_SIZE, fmt, ap);
        va_end(ap);
    }
    return st;
}

uint32_t rsr_api_version(void) { return RSR_API_VERSION; }

rsr_model_params rsr_model_default_params(void) { return (rsr_model_params){.num_threads = 0}; }

/* An offset into the blob where `bytes` bytes must fit, 4-aligned when read as floats. */
static int blob_range_ok(const rsr_artifact *a, uint64_t off, uint64_t bytes, uint64_t align) {
    return off <= a->blob_size && bytes <= a->blob_size - off && off % align == 0;
}

/* Layer l's Gemma3 pieces: its post norms in the blob, a window of 0 (global) or more positions, a
 * RoPE base of 0 (the model's) or its own, of which a model has at most one besides rope_theta
 * (rsr_model.rope_theta2); none of them in a model with GPU code, whose forward pass has none. */
static rsr_status check_gemma_layer(rsr_model *m, int32_t l) {
    const rsr_artifact *a = m->a;
    const rsr_artifact_layer *L = &a->layer[l];
    const uint64_t H = 4 * (uint64_t)a->hidden;
    if ((L->attn_post_norm != RSR_NO_TENSOR && !blob_range_ok(a, L->attn_post_norm, H, 4)) ||
        (L->ffn_post_norm != RSR_NO_TENSOR && !blob_range_ok(a, L->ffn_post_norm, H, 4)))
        return rt_set_error(m->err, RSR_ERR_ABI,
                            "artifact descriptor is inconsistent: layer %d: a post norm leaves the blob", l);
    if (L->sliding_window < 0 || !(L->rope_theta == 0 || (L->rope_theta >= 1 && L->rope_theta <= 1e12)))
        return rt_set_error(m->err, RSR_ERR_ABI,
                            "artifact descriptor is inconsistent: layer %d: sliding window %d, rope_theta %g", l,
                            L->sliding_window, L->rope_theta);
    if (L->rope_theta != 0 && L->rope_theta != a->rope_theta) {
        if (m->rope_theta2 != 0 && m->rope_theta2 != L->rope_theta)
            return rt_set_error(m->err, RSR_ERR_ABI,
                                "artifact descriptor is inconsistent: layer %d: a third RoPE base %g (%g and %g "
                                "before); the runtime takes at most two",
                                l, L->rope_theta, a->rope_theta, m->rope_theta2);
        m->rope_theta2 = L->rope_theta;
    }
    return RSR_OK;
}

/* The matrices the layers say there are: the mixer's (4, a gated DeltaNet's 3), then the FFN's 3,
 * or in a mixture of experts 3 per expert and 3 more for a shared expert; -1 when a layer's count
 * of experts is out of range. */
static int64_t expected_matrices(const rsr_artifact *a) {
    int64_t n = a->mtp_layers; /* the MTP layer's eh_proj */
    for (int32_t l = 0; a->layer && l < rt_layers(a); l++) {
        const rsr_artifact_layer *L = &a->layer[l];
        if (L->num_experts < 0 || L->num_experts > 4096) return -1;
        n += (L->kind == RSR_LAYER_DELTANET ? 3 : 4) + 3 * (int64_t)L->num_experts + (L->shared_ff > 0 ? 3 : 0) +
             (L->num_experts ? 0 : 3);
    }
    return n;
}

/* Layer l's kind and, for a gated DeltaNet layer (Qwen3.5, rsr_artifact_layer), its sizes, its small
 * tensors in the blob and its three matrices of the shapes they imply; none in a model with GPU
 * code. Tracks the widest (rsr_model.dn_*) and the recurrent state a session keeps. */
static rsr_status check_deltanet(rsr_model *m, int32_t l) {
    const rsr_artifact *a = m->a;
    const rsr_artifact_layer *L = &a->layer[l];
    const uint64_t H = (uint64_t)a->hidden;
    if ((L->kind != RSR_LAYER_ATTENTION && L->kind != RSR_LAYER_DELTANET) || (L->attn_gate & ~1) ||
        (L->kind == RSR_LAYER_DELTANET && L->attn_gate))
        return rt_set_error(m->err, RSR_ERR_ABI, "artifact descriptor is inconsistent: layer %d: kind %d, attn_gate %d",
                            l, L->kind, L->attn_gate);
    if (L->kind != RSR_LAYER_DELTANET) return RSR_OK;
    const int64_t Hk = L->dn_k_heads, Hv = L->dn_v_heads, D = L->dn_head, K = L->dn_conv;
    const int64_t vd = Hv * D, conv = 2 * Hk * D + vd;
    if (Hk < 1 || Hv < 1 || Hv % Hk || D < 1 || D > 1024 || K < 1 || K > 64 || vd > 65535 || conv > (1 << 20) ||
        !blob_range_ok(a, L->dn_conv_w, 4 * (uint64_t)(conv * K), 4) ||
        !blob_range_ok(a, L->dn_alpha, 4 * (uint64_t)Hv * H, 4) ||
        !blob_range_ok(a, L->dn_beta, 4 * (uint64_t)Hv * H, 4) ||
        !blob_range_ok(a, L->dn_dt_bias, 4 * (uint64_t)Hv, 4) || !blob_range_ok(a, L->dn_a, 4 * (uint64_t)Hv, 4) ||
        !blob_range_ok(a, L->dn_norm, 4 * (uint64_t)D, 4) || L->v != -1 || L->q_norm != RSR_NO_TENSOR ||
        L->k_norm != RSR_NO_TENSOR)
        return rt_set_error(m->err, RSR_ERR_ABI,
                            "artifact descriptor is inconsistent: layer %d: a gated DeltaNet of %d K heads, %d V heads "
                            "of %d, %d taps",
                            l, L->dn_k_heads, L->dn_v_heads, L->dn_head, L->dn_conv);
    for (int32_t f = 0; f < l; f++) { /* every DeltaNet layer of one shape: the states' layout is one (forward.c) */
        const rsr_artifact_layer *F = &a->layer[f];
        if (F->kind == RSR_LAYER_DELTANET &&
            (F->dn_k_heads != Hk || F->dn_v_heads != Hv || F->dn_head != D || F->dn_conv != K))
            return rt_set_error(m->err, RSR_ERR_ABI,
                                "artifact descriptor is inconsistent: layer %d: a gated DeltaNet of another shape "
                                "than layer %d's",
                                l, f);
    }
    const int32_t idx[3] = {L->q, L->k, L->o};
    const int64_t rows[3] = {conv, vd, (int64_t)H}, cols[3] = {(int64_t)H, (int64_t)H, vd};
    for (int j = 0; j < 3; j++) {
        if (idx[j] < 0 || idx[j] >= a->num_matrices)
            return rt_set_error(m->err, RSR_ERR_ABI, "artifact descriptor is inconsistent: layer %d: matrix index %d",
                                l, idx[j]);
        const rsr_artifact_matrix *x = &a->matrix[idx[j]];
        if (x->rows != rows[j] || x->cols != cols[j])
            return rt_set_error(m->err, RSR_ERR_ABI,
                                "artifact descriptor is inconsistent: layer %d: matrix %d is %dx%d where %lldx%lld "
                                "belongs",
                                l, idx[j], x->rows, x->cols, (long long)rows[j], (long long)cols[j]);
    }
    if (conv > m->dn_conv_dim) m->dn_conv_dim = (int32_t)conv;
    if (vd > m->dn_value_dim) m->dn_value_dim = (int32_t)vd;
    if (Hv > m->dn_v_heads) m->dn_v_heads = (int32_t)Hv;
    m->dn_state_floats += (size_t)((K - 1) * conv + Hv * D * D);
    return RSR_OK;
}

/* Layer l's mixture of experts, if it has one: its counts, router in the blob, gating and clamp,
 * and each expert's three matrices of the shapes expert_ff implies; none in a model with GPU code
 * (its forward pass has no experts); no_rope 0 or 1. Tracks the widest count (rsr_model.max_experts). */
static rsr_status check_experts(rsr_model *m, int32_t l) {
    const rsr_artifact *a = m->a;
    const rsr_artifact_layer *L = &a->layer[l];
    if (L->no_rope & ~1)
        return rt_set_error(m->err, RSR_ERR_ABI, "artifact descriptor is inconsistent: layer %d: no_rope %d", l,
                            L->no_rope);
    if (!L->num_experts)
        return L->shared_ff ? rt_set_error(m->err, RSR_ERR_ABI,
                                           "artifact descriptor is inconsistent: layer %d: a shared "
                                           "expert of %d rows without experts",
                                           l, L->shared_ff)
                            : RSR_OK;
    const uint64_t H = (uint64_t)a->hidden, E = (uint64_t)L->num_experts, F = (uint64_t)L->expert_ff;
    if (L->shared_ff < 0 || L->shared_ff > a->intermediate ||
        (L->shared_ff && L->shared_gate != RSR_NO_TENSOR && !blob_range_ok(a, L->shared_gate, 4 * H, 4)))
        return rt_set_error(
            m->err, RSR_ERR_ABI,
            "artifact descriptor is inconsistent: layer %d: a shared expert of %d rows, its gate at %llu", l,
            L->shared_ff, (unsigned long long)L->shared_gate);
    if (L->experts_used < 1 || L->experts_used > L->num_experts || L->expert_ff < 1 || L->expert_ff > a->intermediate ||
        L->gating != RSR_GATING_SOFTMAX || !(L->swiglu_clamp >= 0) || !isfinite(L->swiglu_clamp) ||
        !blob_range_ok(a, L->router, 4 * E * H, 4) || L->expert_first < 0 ||
        (int64_t)L->expert_first + 3 * (int64_t)E > a->num_matrices)
        return rt_set_error(m->err, RSR_ERR_ABI,
                            "artifact descriptor is inconsistent: layer %d: %d experts (%d used) of %d rows from "
                            "matrix %d, gating %d, clamp %g",
                            l, L->num_experts, L->experts_used, L->expert_ff, L->expert_first, L->gating,
                            (double)L->swiglu_clamp);
    for (uint64_t j = 0; j < 3 * E; j++) {
        const rsr_artifact_matrix *x = &a->matrix[(uint64_t)L->expert_first + j];
        const uint64_t rows = j % 3 == 2 ? H : F, cols = j % 3 == 2 ? F : H;
        if ((uint64_t)x->rows != rows || (uint64_t)x->cols != cols)
            return rt_set_error(m->err, RSR_ERR_ABI,
                                "artifact descriptor is inconsistent: layer %d: expert %llu's matrix is %dx%d where "
                                "%llux%llu belongs",
                                l, (unsigned long long)(j / 3), x->rows, x->cols, (unsigned long long)rows,
                                (unsigned long long)cols);
    }
    if (L->num_experts > m->max_experts) m->max_experts = L->num_experts;
    if (L->experts_used > m->max_experts_used) m->max_experts_used = L->experts_used;
    return RSR_OK;
}

/* A vector of n signs of the Hadamard fold: in the blob, every one +1 or -1, n a multiple of the block. */
static bool fold_signs_ok(const rsr_artifact *a, uint64_t off, int32_t n) {
    if (n <= 0 || n % a->fold_block || !blob_range_ok(a, off, 4 * (uint64_t)n, 4)) return false;
    const float *s = (const float *)(a->blob + off);
    for (int32_t i = 0; i < n; i++)
        if (s[i] != 1.0f && s[i] != -1.0f) return false;
    return true;
}

/* Whether matrices i and j (indices, -1: absent) have the same fold: they read one input, rotated once. */
static bool same_fold(const rsr_artifact *a, int32_t i, int32_t j) {
    if (i < 0 || j < 0) return true;
    const rsr_artifact_matrix *x = &a->matrix[i], *y = &a->matrix[j];
    return x->in_signs == y->in_signs && x->in_perm_groups == y->in_perm_groups && x->in_perm_head == y->in_perm_head;
}

/* PrismML's Hadamard fold (rsr_artifact.fold_block): a power-of-two block, CPU code only, sign vectors
 * in the blob, ssm_out's permutation whole heads, and one fold per shared input. */
static rsr_status check_fold(rsr_model *m) {
    const rsr_artifact *a = m->a;
    if (!a->fold_block) return RSR_OK;
#define BAD(...) rt_set_error(m->err, RSR_ERR_ABI, "artifact descriptor is inconsistent: Hadamard fold: " __VA_ARGS__)
    if (a->fold_block < 2 || a->fold_block > 65536 || (a->fold_block & (a->fold_block - 1)))
        return BAD("block %d", a->fold_block);
    if ((a->embed_signs != RSR_NO_TENSOR && !fold_signs_ok(a, a->embed_signs, a->hidden)) ||
        (a->lm_head_signs != RSR_NO_TENSOR && !fold_signs_ok(a, a->lm_head_signs, a->hidden)))
        return BAD("the embedding's or the head's signs");
    for (int32_t i = 0; i < a->num_matrices; i++) {
        const rsr_artifact_matrix *x = &a->matrix[i];
        const int64_t g = x->in_perm_groups, hd = x->in_perm_head;
        if (x->in_signs == RSR_NO_TENSOR
                ? g || hd
                : !fold_signs_ok(a, x->in_signs, x->cols) || g < 0 || (g && (hd <= 0 || x->cols % (g * hd))))
            return BAD("matrix %d (%s): signs at %llu, %lld groups of heads of %lld", i, x->name ? x->name : "?",
                       (unsigned long long)x->in_signs, (long long)g, (long long)hd);
    }
    for (int32_t l = 0; l < rt_layers(a); l++) {
        const rsr_artifact_layer *L = &a->layer[l];
        bool ok = same_fold(a, L->q, L->k) && same_fold(a, L->q, L->v) && same_fold(a, L->gate, L->up);
        for (int32_t e = 0; e < L->num_experts; e++) {
            const int32_t g = L->expert_first + 3 * e;
            ok &= same_fold(a, L->expert_first, g) && same_fold(a, g, g + 1) && same_fold(a, L->gate, g);
        }
        if (!ok) return BAD("layer %d: matrices that read one input with different folds", l);
    }
#undef BAD
    return RSR_OK;
}

/* The MTP layer (rsr_artifact.mtp_layers): an attention layer without a window, its input eh_proj's
 * [hidden][2·hidden], its norms in the blob (its matrices and norms are checked with every layer's). */
static rsr_status check_mtp(rsr_model *m) {
    const rsr_artifact *a = m->a;
    const uint64_t H = (uint64_t)a->hidden;
    if (!a->mtp_layers) return RSR_OK;
    const rsr_artifact_layer *L = &a->layer[a->num_layers];
    const int32_t e = a->mtp_eh_proj;
    if (L->kind != RSR_LAYER_ATTENTION || L->sliding_window || e < 0 || e >= a->num_matrices ||
        a->matrix[e].rows != a->hidden || a->matrix[e].cols != 2 * a->hidden ||
        !blob_range_ok(a, a->mtp_enorm, 4 * H, 4) || !blob_range_ok(a, a->mtp_hnorm, 4 * H, 4) ||
        !blob_range_ok(a, a->mtp_head_norm, 4 * H, 4))
        return rt_set_error(m->err, RSR_ERR_ABI,
                            "artifact descriptor is inconsistent: the MTP layer (kind %d, window %d, eh_proj %d, "
                            "its norms)",
                            L->kind, L->sliding_window, e);
    return RSR_OK;
}

/* Everything the forward pass will index with, checked once so that a damaged or hostile
 * descriptor is refused here instead of corrupting memory later. The limits are the compiler's
 * (16-bit RSR column indices, config.json ranges), so every product below fits in 64 bits. */
/* An artifact with GPU code runs its forward pass there: none of the traits the GPU lacks
 * (rsr_gpu_accepts.h, the list the compiler refuses a CUDA target by, from the same traits). */
static rsr_status check_gpu(rsr_model *m) {
    const rsr_artifact *a = m->a;
    if (!a->gpu) return RSR_OK;
    bool has[RSR_TRAITS] = {
        [RSR_TRAIT_FOLD] = a->fold_block != 0,
        [RSR_TRAIT_ACT_BLOCK] = a->act_block != 0 || a->act_quant != RSR_ACT_Q8_0,
        [RSR_TRAIT_WINDOWS] = m->rope_theta2 != 0,
        [RSR_TRAIT_GELU] = a->activation == RSR_ACT_GELU,
        [RSR_TRAIT_SCALES] = a->embed_scale != 0 || a->attn_scale != 0,
        [RSR_TRAIT_PARTIAL_ROPE] = a->rope_dims != 0,
        [RSR_TRAIT_BLOCK_TABLES] = rsr_block_weights(a->embed_dtype) || rsr_block_weights(a->lm_head_dtype),
    };
    for (int32_t l = 0; l < a->num_layers; l++) {
        const rsr_artifact_layer *L = &a->layer[l];
        has[RSR_TRAIT_DELTANET] |= L->kind == RSR_LAYER_DELTANET;
        has[RSR_TRAIT_EXPERTS] |= L->num_experts != 0;
        has[RSR_TRAIT_PROJ_NORMS] |= L->in_norm[0] != RSR_NO_TENSOR;
        has[RSR_TRAIT_QK_NORM] |= L->q_norm != RSR_NO_TENSOR || L->k_norm != RSR_NO_TENSOR;
        has[RSR_TRAIT_POST_NORMS] |= L->attn_post_norm != RSR_NO_TENSOR || L->ffn_post_norm != RSR_NO_TENSOR;
        has[RSR_TRAIT_WINDOWS] |= L->sliding_window != 0;
        has[RSR_TRAIT_ATTN_GATE] |= L->attn_gate != 0;
    }
    unsigned traits = 0;
    for (int i = 0; i < RSR_TRAITS; i++) traits |= (unsigned)has[i] << i;
    const char *lacks = rsr_gpu_refuses(traits);
    return lacks ? rt_set_error(m->err, RSR_ERR_ABI,
                                "artifact descriptor is inconsistent: a model with GPU code has %s, which the GPU's "
                                "forward pass has not",
                                lacks)
                 : RSR_OK;
}

/* A matrix's codes laid out as its units_layout says, where the runtime's kernel for the layout
 * reads them (rsr_artifact.h): within the blob, the rows a whole number of the layout's blocks,
 * which are the matrix's blocks and its sums' (the kernel reads and writes what num_blocks says) */
static bool layout_ok(const rsr_artifact *a, const rsr_artifact_matrix *x) {
    if (x->units_layout == RSR_UNITS_OTHER) return true;
    const int32_t L = rsr_units_rows(x->units_layout);
    const bool b3 = rsr_units_base3(x->units_layout);
    if (x->units_layout < RSR_UNITS_ROWS16 || x->units_layout > RSR_UNITS_ROWS4 || x->unit_cols <= 0 ||
        x->unit_cols % 16 || (b3 && x->unit_cols != 32) || x->rsr_k != L || x->rows % L || x->planes != 1 ||
        x->data == RSR_NO_TENSOR || x->sums_block != L || x->num_blocks != x->rows / L)
        return false;
    const uint64_t block = b3 ? rsr_b3_block_bytes(L, x->cols / x->unit_cols) : (uint64_t)L / 4 * (uint64_t)x->cols;
    return blob_range_ok(a, x->data, block * (uint64_t)(x->rows / L), 1);
}

static rsr_status check_artifact(rsr_model *m) {
    const rsr_artifact *a = m->a;
    char *err = m->err;
    if (a->abi_version != RSR_ABI_VERSION)
        return rt_set_error(err, RSR_ERR_ABI,
                            "artifact built for runtime ABI %u, this runtime speaks ABI %u: "
                            "recompile the model with a matching rsrc",
                            a->abi_version, RSR_ABI_VERSION);
#define BAD(...) rt_set_error(err, RSR_ERR_ABI, "artifact descriptor is inconsistent: " __VA_ARGS__)
    if (!a->architecture || !a->target || !a->compiler) return BAD("missing name strings");
    if (a->hidden <= 0 || a->hidden > 65535 || a->intermediate <= 0 || a->intermediate > 65535)
        return BAD("hidden %d, intermediate %d", a->hidden, a->intermediate);
    if (a->num_layers <= 0 || a->num_layers > 4096 || a->num_heads <= 0 || a->num_heads > 4096 ||
        a->num_kv_heads <= 0 || a->num_heads % a->num_kv_heads || a->head_dim <= 0 || a->head_dim % 2 ||
        (int64_t)a->num_heads * a->head_dim > 65535)
        return BAD("%d layers, %d heads, %d kv heads, head_dim %d", a->num_layers, a->num_heads, a->num_kv_heads,
                   a->head_dim);
    if (a->vocab <= 0 || a->vocab > (1 << 24) || a->max_positions <= 0 || a->max_positions > (1 << 24))
        return BAD("vocab %d, max_positions %d", a->vocab, a->max_positions);
    if (a->bos < -1 || a->bos >= a->vocab || a->eos < -1 || a->eos >= a->vocab)
        return BAD("bos %d, eos %d for vocab %d", a->bos, a->eos, a->vocab);
    if ((a->activation != RSR_ACT_RELU2 && a->activation != RSR_ACT_SILU && a->activation != RSR_ACT_GELU) ||
        (a->bitlinear_norm & ~1) || a->act_block < 0 || a->act_block > 4096 || a->act_block % 16 ||
        a->pooling < RSR_POOLING_MEAN || a->pooling > RSR_POOLING_LAST ||
        (a->act_quant != RSR_ACT_Q8_0 && (a->act_quant != RSR_ACT_Q8_K || !a->act_block)))
        return BAD("activation %d, bitlinear_norm %d, act_block %d (rounding %d), pooling %d", a->activation,
                   a->bitlinear_norm, a->act_block, a->act_quant, a->pooling);
    if (!(a->rms_eps >= 0 && a->rms_eps <= 1) || !(a->bitlinear_eps >= 0 && a->bitlinear_eps <= 1) ||
        !(a->rope_theta >= 1 && a->rope_theta <= 1e12))
        return BAD("rms_eps %g, bitlinear_eps %g, rope_theta %g", (double)a->rms_eps, (double)a->bitlinear_eps,
                   a->rope_theta);
    if (!(a->embed_scale >= 0 && a->embed_scale <= 65536) || !(a->attn_scale >= 0 && a->attn_scale <= 65536))
        return BAD("embed_scale %g, attn_scale %g", (double)a->embed_scale, (double)a->attn_scale);
    if (a->rope_dims < 0 || a->rope_dims > a->head_dim || a->rope_dims % 2)
        return BAD("rope_dims %d for head_dim %d", a->rope_dims, a->head_dim);
    if ((a->mtp_layers & ~1) || (a->mtp_layers && a->gpu)) return BAD("%d MTP layers", a->mtp_layers);
    if (!a->blob || !a->layer || !a->matrix || a->num_matrices != expected_matrices(a))
        return BAD("%d matrices for %d layers", a->num_matrices, a->num_layers);
    const uint64_t H = (uint64_t)a->hidden, I = (uint64_t)a->intermediate, V = (uint64_t)a->vocab;
    const uint64_t q_out = (uint64_t)a->num_heads * (uint64_t)a->head_dim;
    const uint64_t kv_out = (uint64_t)a->num_kv_heads * (uint64_t)a->head_dim;
    for (int which = 0; which < 2; which++) {
        int32_t dt = which ? a->lm_head_dtype : a->embed_dtype;
        uint64_t off = which ? a->lm_head : a->embed;
        if (dt < RSR_DTYPE_F32 || dt > RSR_DTYPE_PTQ1_0 || (rsr_block_weights(dt) && H % rsr_block_weights(dt)))
            return BAD("%s dtype %d for %llu columns", which ? "lm_head" : "embedding", dt, (unsigned long long)H);
        const uint64_t size = dt == RSR_DTYPE_F32 ? 4 : rsr_block_weights(dt) ? 1 : 2; /* the alignment */
        if (!blob_range_ok(a, off, V * rsr_dtype_bytes(dt, H), size))
            return BAD("%s at %llu leaves the %llu-byte blob", which ? "lm_head" : "embedding", (unsigned long long)off,
                       (unsigned long long)a->blob_size);
    }
    if (!blob_range_ok(a, a->final_norm, 4 * H, 4)) return BAD("final norm at %llu", (unsigned long long)a->final_norm);

    int64_t max_rows = 0;
    for (int32_t i = 0; i < a->num_matrices; i++) {
        const rsr_artifact_matrix *x = &a->matrix[i];
        const uint64_t gs = x->group_scale_dtype == RSR_DTYPE_F16 ? 2 : 4; /* bytes of a group scale */
        if (x->unit_cols != a->act_block && (a->act_block || x->unit_cols < 0))
            return BAD("matrix %d: units of %d columns, activations per block of %d", i, x->unit_cols, a->act_block);
        if (x->unit_cols > 0 &&
            (x->cols <= 0 || x->cols % x->unit_cols || x->planes < 1 || x->planes > 2 || x->scale_cols <= 0 ||
             x->scale_cols % x->unit_cols || x->cols % x->scale_cols || x->rows <= 0 ||
             (x->sums_block ? x->sums_block != x->rsr_k || x->unit_stride != x->sums_block
                            : x->unit_stride < x->rows || (int64_t)x->unit_stride > (int64_t)x->rows + 4096) ||
             (x->group_scale_dtype != RSR_DTYPE_F32 && x->group_scale_dtype != RSR_DTYPE_F16) ||
             !blob_range_ok(a, x->group_scale, gs * (uint64_t)x->rows * (uint64_t)(x->cols / x->scale_cols), gs)))
            return BAD("matrix %d: %d columns, units of %d, %d planes, scales per %d columns, %d rows %d apart, "
                       "sums by blocks of %d",
                       i, x->cols, x->unit_cols, x->planes, x->scale_cols, x->rows, x->unit_stride, x->sums_block);
        if (x->unit_cols <= 0 && x->sums_block != 0) return BAD("matrix %d: sums by blocks without units", i);
        if (!layout_ok(a, x))
            return BAD("matrix %d: codes laid out as %d (rows %d by %d, units of %d, %d planes)", i, x->units_layout,
                       x->rows, x->rsr_k, x->unit_cols, x->planes);
        /* blocks cover the kernel's rows (RSR forms of a grouped matrix: units · planes · rows) or the
         * matrix's (i2, which writes every unit of its rows) */
        int64_t kr = x->rows > 0 && x->cols > 0 ? rt_kernel_rows(x) : 0;
        int64_t span = x->unit_cols && (int64_t)x->num_blocks * x->rsr_k < kr ? x->rows : kr;
        if (!x->kernel || x->rows <= 0 || x->cols <= 0 || x->cols > 65535 || x->rsr_k <= 0 || x->rsr_k > 64 ||
            kr > (1 << 28) || x->num_blocks <= 0 || (int64_t)x->num_blocks * x->rsr_k < span ||
            (int64_t)(x->num_blocks - 1) * x->rsr_k >= span || !isfinite(x->scale) ||
            (x->data != RSR_NO_TENSOR && x->data >= a->blob_size))
            return BAD("matrix %d (%s): %dx%d, k %d, %d blocks", i, x->name ? x->name : "?", x->rows, x->cols, x->rsr_k,
                       x->num_blocks);
        if (kr > max_rows) max_rows = kr;
        if (x->sums_block && rt_block_sums(x) > m->max_block_sums) m->max_block_sums = (int32_t)rt_block_sums(x);
        m->grouped |= x->unit_cols > 0;
    }
    if (a->tokenizer_json != RSR_NO_TENSOR &&
        (a->tokenizer_json > a->blob_size || a->tokenizer_json_size > a->blob_size - a->tokenizer_json))
        return rt_set_error(m->err, RSR_ERR_ABI, "artifact tokenizer [%llu, +%llu) lies outside the %llu-byte blob",
                            (unsigned long long)a->tokenizer_json, (unsigned long long)a->tokenizer_json_size,
                            (unsigned long long)a->blob_size);
    if (a->chat_template != RSR_NO_TENSOR &&
        (a->chat_template > a->blob_size || a->chat_template_size > a->blob_size - a->chat_template))
        return rt_set_error(m->err, RSR_ERR_ABI, "artifact chat template [%llu, +%llu) lies outside the %llu-byte blob",
                            (unsigned long long)a->chat_template, (unsigned long long)a->chat_template_size,
                            (unsigned long long)a->blob_size);
    if (a->head_q8 != RSR_NO_TENSOR || a->head_q8_stride) { /* in the blob, or made at open (stride alone) */
        uint64_t v = (uint64_t)a->vocab,
                 end_q = a->head_q8 == RSR_NO_TENSOR ? 0 : a->head_q8 + v * (uint64_t)a->head_q8_stride;
        if (a->head_q8_stride < a->hidden || a->head_q8_stride % RSR_X_PAD || end_q > a->blob_size ||
            (a->head_q8 != RSR_NO_TENSOR &&
             (a->head_q8_scale > a->blob_size - 4 * v || a->head_q8_err > a->blob_size - 4 * v)))
            return rt_set_error(m->err, RSR_ERR_ABI, "artifact int8 LM head lies outside the blob or is inconsistent");
    }
    rsr_status mst = check_mtp(m);
    if (mst != RSR_OK) return mst;
    for (int32_t l = 0; l < rt_layers(a); l++) {
        const rsr_artifact_layer *L = &a->layer[l];
        if (!blob_range_ok(a, L->attn_norm, 4 * H, 4) || !blob_range_ok(a, L->ffn_norm, 4 * H, 4) ||
            (L->attn_sub_norm != RSR_NO_TENSOR && !blob_range_ok(a, L->attn_sub_norm, 4 * q_out, 4)) ||
            (L->ffn_sub_norm != RSR_NO_TENSOR && !blob_range_ok(a, L->ffn_sub_norm, 4 * I, 4)) ||
            (L->q_norm != RSR_NO_TENSOR && !blob_range_ok(a, L->q_norm, 4 * (uint64_t)a->head_dim, 4)) ||
            (L->k_norm != RSR_NO_TENSOR && !blob_range_ok(a, L->k_norm, 4 * (uint64_t)a->head_dim, 4)))
            return BAD("layer %d: a norm leaves the blob", l);
        rsr_status gst = check_gemma_layer(m, l);
        if (gst != RSR_OK) return gst;
        rsr_status dst = check_deltanet(m, l);
        if (dst != RSR_OK) return dst;
        for (int j = 0; j < RSR_IN_NORMS; j++)
            if ((L->in_norm[j] == RSR_NO_TENSOR) != (L->in_norm[0] == RSR_NO_TENSOR) ||
                (L->in_norm[j] != RSR_NO_TENSOR && !blob_range_ok(a, L->in_norm[j], 4 * H, 4)))
                return BAD("layer %d: the norm of projection input %d is missing or leaves the blob", l, j);
        /* the FFN's (a shared expert's rows shared_ff), and the attention's (a DeltaNet's: check_deltanet) */
        const uint64_t F = L->num_experts ? (uint64_t)(L->shared_ff > 0 ? L->shared_ff : 0) : I;
        const int32_t idx[7] = {L->gate, L->up, L->down, L->q, L->k, L->v, L->o};
        const uint64_t rows[7] = {F, F, H, L->attn_gate ? 2 * q_out : q_out, kv_out, kv_out, H},
                       cols[7] = {H, H, F, H, H, H, q_out};
        const int ffn = F ? 3 : 0, n = L->kind == RSR_LAYER_DELTANET ? 3 : 7;
        if (!ffn && (L->gate != -1 || L->up != -1 || L->down != -1))
            return BAD("layer %d: matrices %d, %d, %d for an FFN it does not have", l, L->gate, L->up, L->down);
        for (int j = 3 - ffn; j < n; j++) {
            if (idx[j] < 0 || idx[j] >= a->num_matrices) return BAD("layer %d: matrix index %d", l, idx[j]);
            const rsr_artifact_matrix *x = &a->matrix[idx[j]];
            if ((uint64_t)x->rows != rows[j] || (uint64_t)x->cols != cols[j])
                return BAD("layer %d: matrix %d is %dx%d where %llux%llu belongs", l, idx[j], x->rows, x->cols,
                           (unsigned long long)rows[j], (unsigned long long)cols[j]);
        }
        rsr_status est = check_experts(m, l);
        if (est != RSR_OK) return est;
    }
#undef BAD
    m->max_rows = (int32_t)max_rows;
    rsr_status fst = check_fold(m);
    return fst != RSR_OK ? fst : check_gpu(m);
}

/* Opens m on dev, a device other than the host: RSR_OK with m->run_on = dev; where it cannot, the
 * failure when the caller asked for dev, else RSR_OK with m on the host and m->device saying why. */
static rsr_status open_on(rsr_model *m, const rt_device *dev, bool asked) {
    char why[RSR_ERRMSG_SIZE];
    rsr_status st = dev->model_open(m, why);
    if (st == RSR_OK) { /* the device holds its own copy; the host keeps the mapping */
        m->run_on = dev;
        return RSR_OK;
    }
    dev->model_close(m);
    if (asked) return m->status = rt_set_error(m->err, st, "the %s was asked for, but %s", dev->title, why);
    snprintf(m->device, sizeof m->device, "%s (the %s is unavailable: %.160s)", m->run_on->name, dev->title, why);
    return RSR_OK;
}

rsr_status rsr_model_open_artifact(rsr_model **out, const rsr_artifact *a, const rsr_model_params *params) {
    if (!out) return RSR_ERR_INVALID_ARGUMENT;
    rsr_model *m = calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->q8_lock, NULL);
    *out = m;
    if (!m) return RSR_ERR_OUT_OF_MEMORY;
    m->a = a;
    m->run_on = rt_devices[0];
    rsr_model_params p = params ? *params : rsr_model_default_params();
    if (p.num_threads < 0 || p.num_threads > 1024)
        m->status =
            rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "num_threads %d is out of range [0, 1024]", p.num_threads);
    else if (!a)
        m->status = rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT,
                                 "no artifact given (NAME_artifact() of a model "
                                 "compiled with --name=NAME)");
    else if (p.load != RSR_LOAD_COPY && p.load != RSR_LOAD_MMAP)
        m->status = rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "load %d is not copy (0) or mmap (1)", p.load);
    else if (p.device < RSR_DEVICE_AUTO || p.device > RSR_DEVICE_GPU)
        m->status =
            rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "device %d is not auto (0), cpu (1) or gpu (2)", p.device);
    else
        m->status = check_artifact(m);
    m->num_threads = p.num_threads > 0 ? p.num_threads : rt_default_threads();
    const char *omp = getenv("OMP_NUM_THREADS");
    rt_adapt_init(m, p.num_threads > 0 || (omp && *omp)); /* a count the user gave stays */
    if (a) m->blob = m->rows = a->blob;
    rt_devices[0]->describe(m->device, sizeof m->device); /* the host's, until another device takes the model */
    snprintf(m->constants, sizeof m->constants, "the file mapping");
    if (m->status != RSR_OK) return m->status;
    bool built = p.device == RSR_DEVICE_AUTO || p.device == RSR_DEVICE_CPU; /* the host: always */
    for (const rt_device *const *d = rt_devices + 1; *d; d++) {
        const bool asked = p.device == (*d)->device;
        built |= asked;
        if (!asked && !(p.device == RSR_DEVICE_AUTO && (*d)->has_code(a))) continue;
        rsr_status st = open_on(m, *d, asked);
        if (st != RSR_OK || m->run_on != rt_devices[0]) return st;
    }
    if (!built)
        return m->status =
                   rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "device %d is not built into this runtime", p.device);
    if ((m->status = rt_devices[0]->check(a, m->err)) != RSR_OK) return m->status;
    const char *trace = m->max_experts ? getenv("RSR_TRACE_ROUTING") : NULL; /* docs/moe.md */
    if (trace && *trace && !(m->route_trace = fopen(trace, "w")))
        return m->status = rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "RSR_TRACE_ROUTING: cannot create %s: %s",
                                        trace, strerror(errno));
    if ((m->status = rt_load_constants(m, &p)) != RSR_OK) return m->status;
    return m->status = rt_cpu_codes(m);
}

rsr_status rsr_model_open(rsr_model **out, const rsr_model_params *params) {
    if (!&RSR_ARTIFACT_SYMBOL) {
        rsr_status st = rsr_model_open_artifact(out, NULL, params);
        if (out && *out)
            (*out)->status = rt_set_error((*out)->err, RSR_ERR_NOT_FOUND,
                                          "no default model is linked into this program: the models "
                                          "in it were compiled with --name=NAME; open one with NAME_model_open");
        return out && *out ? RSR_ERR_NOT_FOUND : st;
    }
    return rsr_model_open_artifact(out, RSR_ARTIFACT_SYMBOL, params);
}

void rsr_model_close(rsr_model *m) {
    if (!m) return;
    if (m->copy) munmap(m->copy, m->copy_size);
    for (int32_t i = 0; m->codes && i < m->a->num_matrices; i++) free(m->codes[i]);
    free(m->codes);
    rt_rows_close(m);
    if (m->q8_made) munmap(m->q8_made, m->q8_made_size);
    pthread_mutex_destroy(&m->q8_lock);
    if (m->route_trace) fclose(m->route_trace);
    rt_adapt_free(m);
    if (m->run_on && m->run_on->model_close) m->run_on->model_close(m);
    rsr_tokenizer_free(m->tokenizer);
    free(m);
}

rsr_status rsr_model_tokenizer(rsr_model *m, rsr_tokenizer **out) {
    if (out) *out = NULL;
    if (!m || !m->a || !out) return RSR_ERR_INVALID_ARGUMENT;
    const rsr_artifact *a = m->a;
    if (a->tokenizer_json == RSR_NO_TENSOR)
        return rt_set_error(m->err, RSR_ERR_NOT_FOUND,
                            "the model was compiled without a tokenizer: put tokenizer.json (or tokenizer.model) "
                            "next to the weights and compile it again (or pass token ids)");
    if (!m->tokenizer) {
        rsr_tokenizer *t;
        rsr_status st = rsr_tokenizer_create((const char *)a->blob + a->tokenizer_json, a->tokenizer_json_size, &t);
        if (st == RSR_OK && a->chat_template != RSR_NO_TENSOR)
            st = rsr_tokenizer_set_chat_template(t, (const char *)a->blob + a->chat_template, a->chat_template_size);
        if (st != RSR_OK) {
            rt_set_error(m->err, st, "%s", rsr_tokenizer_errmsg(t));
            rsr_tokenizer_free(t);
            return st;
        }
        m->tokenizer = t;
    }
    *out = m->tokenizer;
    return RSR_OK;
}

const char *rsr_model_manifest(const rsr_model *m) { return m && m->a && m->a->manifest ? m->a->manifest : ""; }

const char *rsr_model_errmsg(const rsr_model *m) {
    if (!m) return "no model (out of memory or a NULL handle)";
    return m->err;
}

/* A model whose open failed answers every later call with the same failure. */
rsr_status rsr_model_get_info(const rsr_model *m, rsr_model_info *info) {
    if (!m || !m->a || !info) return RSR_ERR_INVALID_ARGUMENT;
    if (m->status != RSR_OK) return m->status;
    const rsr_artifact *a = m->a;
    *info = (rsr_model_info){
        .architecture = a->architecture,
        .target = a->target,
        .compiler = a->compiler,
        .hidden_size = a->hidden,
        .intermediate_size = a->intermediate,
        .num_layers = a->num_layers,
        .num_heads = a->num_heads,
        .num_kv_heads = a->num_kv_heads,
        .head_dim = a->head_dim,
        .vocab_size = a->vocab,
        .max_positions = a->max_positions,
        .bos_token_id = a->bos,
        .eos_token_id = a->eos,
        .num_matrices = a->num_matrices,
        .device = m->device,
        .gpu_arch = a->gpu ? a->gpu->arch : NULL,
        .num_threads = m->num_threads,
        .constants = m->constants,
        .pooling = a->pooling,
        .state_bytes = (int64_t)(2 * m->dn_state_floats * sizeof(float)),
        .mtp_layers = a->mtp_layers,
    };
    for (int32_t l = 0; l < a->num_layers; l++) info->num_kv_layers += a->layer[l].kind != RSR_LAYER_DELTANET;
    return RSR_OK;
}

rsr_status rsr_model_matrix_info(const rsr_model *m, int32_t index, rsr_matrix_info *info) {
    if (!m || !m->a || !info) return RSR_ERR_INVALID_ARGUMENT;
    if (m->status != RSR_OK) return m->status;
    if (index < 0 || index >= m->a->num_matrices) return RSR_ERR_INVALID_ARGUMENT;
    const rsr_artifact_matrix *x = &m->a->matrix[index];
    *info = (rsr_matrix_info){
        x->name, x->rows, x->cols, x->strategy, x->rsr_k, x->scale, x->unit_cols > 0 ? x->cols / x->unit_cols : 1};
    return RSR_OK;
}

rsr_status rsr_model_matvec_int(const rsr_model *m, int32_t index, const int8_t *x, int32_t *y) {
    return rsr_model_matmul_int(m, index, x, 1, y);
}

rsr_status rsr_model_matmul_int(const rsr_model *m, int32_t index, const int8_t *x, int32_t ntok, int32_t *y) {
    if (!m || !m->a || !x || !y || ntok <= 0) return RSR_ERR_INVALID_ARGUMENT;
    if (m->status != RSR_OK) return m->status;
    if (index < 0 || index >= m->a->num_matrices) return RSR_ERR_INVALID_ARGUMENT;
    const rsr_artifact_matrix *mx = &m->a->matrix[index];
    if (!mx->unit_cols) return m->run_on->matmul_int(m, index, x, ntok, y);
    /* scales per group: the kernel's sums per unit and plane, the planes added (a device's kernel
     * may have other planes than the CPU's: rt_device.planes) */
    const int32_t P = m->run_on->planes ? m->run_on->planes(m, index) : mx->planes;
    const int32_t stride = m->run_on->planes ? mx->rows : mx->unit_stride;
    const size_t B = m->run_on->planes ? 0 : (size_t)mx->sums_block; /* the CPU's sums by blocks */
    const size_t R = (size_t)mx->rows, U = (size_t)(mx->cols / mx->unit_cols);
    const size_t K = (size_t)(B ? rt_kernel_rows(mx) : rt_sums_rows(mx, P, stride));
    int32_t *k = malloc(sizeof *k * K * (size_t)ntok);
    if (!k) return RSR_ERR_OUT_OF_MEMORY;
    rsr_status st = m->run_on->matmul_int(m, index, x, ntok, k);
    for (size_t t = 0; st == RSR_OK && t < (size_t)ntok; t++)
        for (size_t u = 0; u < U; u++)
            for (size_t r = 0; r < R; r++) {
                const int32_t *s = B ? k + t * K + (r / B) * U * (size_t)P * B + u * (size_t)P * B + r % B
                                     : k + t * K + u * (size_t)P * (size_t)stride + r;
                const size_t next = B ? B : (size_t)stride; /* plane 1 */
                y[t * U * R + u * R + r] = P == 2 ? s[0] + s[next] : s[0];
            }
    free(k);
    return st;
}
