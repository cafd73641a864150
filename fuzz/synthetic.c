/* synthetic.c — see synthetic.h. */
#include "synthetic.h"

#include <stdlib.h>
#include <string.h>

uint8_t fb_u8(fuzz_bytes *b) {
    if (!b->n) return 0;
    b->n--;
    return *b->p++;
}

uint32_t fb_u32(fuzz_bytes *b) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fb_u8(b) << (8 * i);
    return v;
}

static const synth *current;

/* y[b*k + r] = sum_c W[row][c] x[c] over the descriptor's shape; weights outside the shape the
 * harness built read as zero. */
static void reference_kernel(int index, const int8_t *x, int32_t *y, int32_t b0, int32_t b1) {
    const rsr_artifact_matrix *mx = &current->a.matrix[index];
    const int8_t *w = current->w[index];
    for (int32_t b = b0; b < b1; b++)
        for (int32_t r = 0; r < mx->rsr_k; r++) {
            int32_t row = b * mx->rsr_k + r;
            if (row >= mx->rows) break;
            int32_t sum = 0;
            for (int32_t c = 0; c < mx->cols; c++) {
                int32_t xc = x[c]; /* read even where the weight is zero: the runtime promised cols of them */
                if (row < current->rows[index] && c < current->cols[index])
                    sum += w[(size_t)row * (size_t)current->cols[index] + (size_t)c] * xc;
            }
            y[row] = sum;
        }
}

#define KERNEL(i)                                                                                                      \
    static void kernel_##i(const uint8_t *data, const int8_t *x, int32_t *y, int32_t b0, int32_t b1) {                 \
        (void)data;                                                                                                    \
        reference_kernel(i, x, y, b0, b1);                                                                             \
    }
/* the definitions in rows (clang-format cannot parse a macro used as a definition) */
/* clang-format off */
KERNEL(0) KERNEL(1) KERNEL(2) KERNEL(3) KERNEL(4) KERNEL(5) KERNEL(6)
KERNEL(7) KERNEL(8) KERNEL(9) KERNEL(10) KERNEL(11) KERNEL(12) KERNEL(13)
static const rsr_kernel_fn kernels[SYNTH_MAX_MATRICES] = {
    kernel_0, kernel_1, kernel_2, kernel_3, kernel_4, kernel_5, kernel_6,
    kernel_7, kernel_8, kernel_9, kernel_10, kernel_11, kernel_12, kernel_13,
};
/* clang-format on */

static size_t dtype_size(int32_t dt) { return dt == RSR_DTYPE_F32 ? 4 : 2; }

static void put_value(uint8_t *p, int32_t dtype, float v) {
    if (dtype == RSR_DTYPE_F32)
        memcpy(p, &v, 4);
    else {
        uint32_t bits;
        memcpy(&bits, &v, 4);
        uint16_t h = dtype == RSR_DTYPE_BF16 ? (uint16_t)(bits >> 16) : (uint16_t)0x3c00; /* f16: 1.0 */
        memcpy(p, &h, 2);
    }
}

void synth_build(synth *s, fuzz_bytes *b) {
    memset(s, 0, sizeof *s);
    rsr_artifact *a = &s->a;
    a->abi_version = RSR_ABI_VERSION;
    a->architecture = "SyntheticForCausalLM";
    a->target = "synthetic";
    a->compiler = "synthetic";
    a->hidden = 2 * (1 + fb_u8(b) % 8);
    a->head_dim = 2 * (1 + fb_u8(b) % 4);
    a->num_heads = 1 + fb_u8(b) % 4;
    static const int kv_choice[5][3] = {{0}, {1, 1, 1}, {1, 2, 2}, {1, 3, 3}, {1, 2, 4}};
    a->num_kv_heads = kv_choice[a->num_heads][fb_u8(b) % 3];
    a->intermediate = 1 + fb_u8(b) % 16;
    a->num_layers = 1 + fb_u8(b) % SYNTH_MAX_LAYERS;
    a->vocab = 1 + fb_u8(b) % 32;
    a->max_positions = 1 + fb_u8(b) % 16;
    a->bos = a->vocab > 1 ? 1 : -1;
    a->eos = a->vocab - 1;
    uint8_t flags = fb_u8(b);
    a->activation = flags & 1 ? RSR_ACT_SILU : RSR_ACT_RELU2;
    a->bitlinear_norm = flags >> 1 & 1;
    int sub_norms = flags >> 2 & 1, tied = flags >> 3 & 1;
    a->embed_dtype = (flags >> 4) % 3;
    a->lm_head_dtype = tied ? a->embed_dtype : (flags >> 6) % 3;
    a->rms_eps = 1e-5f;
    a->bitlinear_eps = 1e-6f;
    a->rope_theta = 10000.0;
    a->pooling = RSR_POOLING_MEAN + fb_u8(b) % 3;
    uint8_t gemma = fb_u8(b); /* Gemma3's pieces: GELU, scales, post norms, windows with their own RoPE base */
    if (gemma & 1) a->activation = RSR_ACT_GELU, a->embed_scale = 4.0f, a->attn_scale = 0.5f;

    const int32_t H = a->hidden, I = a->intermediate, q_out = a->num_heads * a->head_dim;
    const int32_t kv_out = a->num_kv_heads * a->head_dim;
    /* Blob layout: embedding, lm_head (unless tied), final norm, then each layer's norms. */
    size_t es = dtype_size(a->embed_dtype), ls = dtype_size(a->lm_head_dtype);
    size_t size = 0, embed = size;
    size += (size_t)a->vocab * (size_t)H * es;
    size = (size + 63) & ~(size_t)63;
    size_t lm_head = tied ? embed : size;
    if (!tied) size = (size + (size_t)a->vocab * (size_t)H * ls + 63) & ~(size_t)63;
    size_t final_norm = size;
    size += 4 * (size_t)H;
    size_t layer_at = size;
    size_t per_layer = 4 * (size_t)(2 * H + q_out + I);
    size += per_layer * (size_t)a->num_layers;
    s->blob = calloc(1, size);
    for (size_t i = 0; i < (size_t)a->vocab * (size_t)H; i++) {
        float v = (float)((int)fb_u8(b) - 128) / 64.0f;
        put_value(s->blob + embed + i * es, a->embed_dtype, v);
        if (!tied) put_value(s->blob + lm_head + i * ls, a->lm_head_dtype, -v);
    }
    float one = 1.0f;
    for (size_t i = final_norm; i < size; i += 4) memcpy(s->blob + i, &one, 4);
    a->blob = s->blob;
    a->blob_size = size;
    a->embed = embed;
    a->lm_head = lm_head;
    a->final_norm = final_norm;
    a->tokenizer_json = a->chat_template = a->head_q8 = a->head_q8_scale = a->head_q8_err = RSR_NO_TENSOR;

    for (int32_t l = 0; l < a->num_layers; l++) {
        rsr_artifact_layer *L = &s->layer[l];
        size_t at = layer_at + per_layer * (size_t)l;
        L->attn_norm = at;
        L->ffn_norm = at + 4 * (size_t)H;
        L->attn_sub_norm = sub_norms ? at + 8 * (size_t)H : RSR_NO_TENSOR;
        L->ffn_sub_norm = sub_norms ? at + 4 * (size_t)(2 * H + q_out) : RSR_NO_TENSOR;
        L->q_norm = L->k_norm = RSR_NO_TENSOR;
        for (int j = 0; j < RSR_IN_NORMS; j++) L->in_norm[j] = RSR_NO_TENSOR;
        L->attn_post_norm = gemma & 2 ? L->attn_norm : RSR_NO_TENSOR;
        L->ffn_post_norm = gemma & 2 ? L->ffn_norm : RSR_NO_TENSOR;
        L->sliding_window = l % 2 ? gemma >> 2 & 3 : 0;
        L->rope_theta = L->sliding_window ? 1000.0 : 0;
        const int32_t rows[7] = {q_out, kv_out, kv_out, H, I, I, H}, cols[7] = {H, H, H, q_out, H, H, I};
        int32_t *slot[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int j = 0; j < 7; j++) {
            int idx = l * 7 + j;
            *slot[j] = idx;
            rsr_artifact_matrix *mx = &s->matrix[idx];
            mx->name = "synthetic";
            mx->strategy = "reference";
            mx->rows = s->rows[idx] = rows[j];
            mx->cols = s->cols[idx] = cols[j];
            mx->rsr_k = 1 + fb_u8(b) % 8;
            mx->num_blocks = (mx->rows + mx->rsr_k - 1) / mx->rsr_k;
            mx->scale = 0.25f + (float)(fb_u8(b) % 8) / 8.0f;
            mx->data = mx->group_scale = RSR_NO_TENSOR;
            mx->unit_cols = mx->planes = mx->scale_cols = 0;
            mx->kernel = kernels[idx];
            s->w[idx] = malloc((size_t)rows[j] * (size_t)cols[j]);
            for (int32_t i = 0; i < rows[j] * cols[j]; i++) s->w[idx][i] = (int8_t)(fb_u8(b) % 3) - 1;
        }
    }
    a->layer = s->layer;
    a->matrix = s->matrix;
    a->num_matrices = 7 * a->num_layers;
    current = s;
}

void synth_free(synth *s) {
    for (int i = 0; i < SYNTH_MAX_MATRICES; i++) free(s->w[i]);
    free(s->blob);
    memset(s, 0, sizeof *s);
}

/* The descriptor a model.so would carry (through the RSR_ARTIFACT_SYMBOL pointer), here from
 * another ABI: rsr_model_open must refuse it. */
static const rsr_artifact other_abi = {.abi_version = RSR_ABI_VERSION + 1};
const rsr_artifact *const RSR_ARTIFACT_SYMBOL = &other_abi;
