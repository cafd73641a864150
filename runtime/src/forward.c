/*
 * forward.c — the transformer around the compiled matrices: sessions, the KV cache and one
 * token's forward pass. The arithmetic follows docs/numerics.md to the letter (fp32, sums in
 * ascending order) so that an independent reference agrees with it closely.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "internal.h"
#include "gpu.h"
#include "rsr_numerics.h"

rsr_session_params rsr_session_default_params(void) {
    return (rsr_session_params){.max_positions = 0, .attention = RSR_ATTENTION_DENSE};
}

static int32_t max3(int32_t a, int32_t b, int32_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

rsr_status rsr_session_create(rsr_model *m, const rsr_session_params *params, rsr_session **out) {
    if (!out) return RSR_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!m || !m->a) return RSR_ERR_INVALID_ARGUMENT; /* a handle whose open failed */
    if (m->status != RSR_OK) return m->status;
    const rsr_artifact *a = m->a;
    rsr_session_params p = params ? *params : rsr_session_default_params();
    if (p.max_positions < 0 || p.max_positions > a->max_positions)
        return rsr_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "max_positions %d is out of range [0, %d]",
                             p.max_positions, a->max_positions);
    if (m->gpu && p.attention != RSR_ATTENTION_DENSE)
        return rsr_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "Louver attention runs on the CPU only: open the model "
                             "with device cpu (rsr-run --device cpu)");
    rsr_session *s = calloc(1, sizeof *s);
    if (!s) return rsr_set_error(m->err, RSR_ERR_OUT_OF_MEMORY, "out of memory creating a session");
    s->model = m;
    s->max_positions = p.max_positions ? p.max_positions : a->max_positions;
    if (m->gpu) { /* the cache and activations live on the device */
        rsr_status st = rsr_gpu_session_create(m->gpu, s->max_positions, &s->gpu, m->err);
        if (st == RSR_OK) st = rsr_attention_init(s, &p);
        if (st != RSR_OK) {
            rsr_session_free(s);
            return st;
        }
        *out = s;
        return RSR_OK;
    }
    size_t q_out = (size_t)a->num_heads * (size_t)a->head_dim, kv_out = (size_t)a->num_kv_heads * (size_t)a->head_dim;
    size_t cache = (size_t)a->num_layers * (size_t)s->max_positions * kv_out;
    size_t widest = (size_t)max3(a->hidden, (int32_t)q_out, a->intermediate);
    s->k_cache = malloc(sizeof(float) * cache);
    s->v_cache = malloc(sizeof(float) * cache);
    s->h = malloc(sizeof(float) * (size_t)a->hidden);
    s->xn = malloc(sizeof(float) * widest);
    s->tmp = malloc(sizeof(float) * widest);
    s->q = malloc(sizeof(float) * q_out);
    s->k = malloc(sizeof(float) * kv_out);
    s->v = malloc(sizeof(float) * kv_out);
    s->att = malloc(sizeof(float) * q_out);
    s->gate = malloc(sizeof(float) * (size_t)a->intermediate);
    s->up = malloc(sizeof(float) * (size_t)a->intermediate);
    s->xq = calloc(1, (widest + RSR_X_PAD - 1) / RSR_X_PAD * RSR_X_PAD);
    s->acc = malloc(sizeof(int32_t) * (size_t)m->max_rows);
    if (!s->k_cache || !s->v_cache || !s->h || !s->xn || !s->tmp || !s->q || !s->k || !s->v || !s->att || !s->gate || !s->up ||
        !s->xq || !s->acc) {
        int32_t max_positions = s->max_positions;
        rsr_session_free(s);
        return rsr_set_error(m->err, RSR_ERR_OUT_OF_MEMORY,
                             "out of memory creating a session of %d positions (a KV cache of %zu MiB)",
                             max_positions, (2 * sizeof(float) * cache) >> 20);
    }
    rsr_status st = rsr_attention_init(s, &p);
    if (st != RSR_OK) {
        rsr_session_free(s);
        return st;
    }
    *out = s;
    return RSR_OK;
}

void rsr_session_free(rsr_session *s) {
    if (!s) return;
    free(s->k_cache), free(s->v_cache), free(s->h), free(s->xn), free(s->tmp), free(s->q), free(s->k), free(s->v);
    free(s->att), free(s->gate), free(s->up), free(s->xq), free(s->acc);
    rsr_attention_free(s);
    rsr_lm_head_free(s);
    rsr_gpu_session_free(s->gpu);
    free(s);
}

const char *rsr_session_errmsg(const rsr_session *s) { return s ? s->err : "no session (a NULL handle)"; }

rsr_status rsr_session_reset(rsr_session *s) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    s->pos = 0;
    rsr_attention_reset(s);
    return RSR_OK;
}

int32_t rsr_session_position(const rsr_session *s) { return s ? s->pos : -1; }

rsr_status rsr_session_eval(rsr_session *s, const int32_t *tokens, int32_t n, float *logits) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    if (!tokens || n <= 0) return rsr_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no tokens to evaluate");
    const rsr_artifact *a = s->model->a;
    if (n > s->max_positions - s->pos)
        return rsr_set_error(s->err, RSR_ERR_CONTEXT_FULL, "%d tokens at position %d exceed the context of %d", n,
                             s->pos, s->max_positions);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= a->vocab)
            return rsr_set_error(s->err, RSR_ERR_BAD_TOKEN, "token %d (at index %d) is outside [0, %d)", tokens[i], i,
                                 a->vocab);
    if (s->gpu) {
        rsr_status st = rsr_gpu_eval(s->gpu, s->pos, tokens, n, logits, s->err);
        if (st == RSR_OK) s->pos += n;
        return st;
    }
    for (int32_t i = 0; i < n; i++) {
        rsr_status st = rsr_forward_token(s, tokens[i], i == n - 1 ? logits : NULL, NULL);
        if (st != RSR_OK) return st;
    }
    return RSR_OK;
}

rsr_status rsr_session_eval_greedy(rsr_session *s, const int32_t *tokens, int32_t n, int32_t *token) {
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    if (!token) return rsr_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no place for the greedy token (NULL)");
    if (!tokens || n <= 0) return rsr_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no tokens to evaluate");
    int32_t last = tokens[n - 1]; /* token may alias tokens: read before anything is written */
    const rsr_artifact *a = s->model->a;
    if (n > s->max_positions - s->pos)
        return rsr_set_error(s->err, RSR_ERR_CONTEXT_FULL, "%d tokens at position %d exceed the context of %d", n,
                             s->pos, s->max_positions);
    if (last < 0 || last >= a->vocab)
        return rsr_set_error(s->err, RSR_ERR_BAD_TOKEN, "token %d (at index %d) is outside [0, %d)", last, n - 1,
                             a->vocab);
    if (n > 1) {
        rsr_status st = rsr_session_eval(s, tokens, n - 1, NULL);
        if (st != RSR_OK) return st;
    }
    return rsr_forward_token(s, last, NULL, token);
}

/* ---- the operations of a token ---- */

static const float *blob_f32(const rsr_artifact *a, uint64_t off) { return (const float *)(a->blob + off); }


static void rmsnorm(float *y, const float *x, const float *w, int32_t n, float eps) {
    float ss = 0;
    for (int32_t i = 0; i < n; i++) ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (int32_t i = 0; i < n; i++) y[i] = w ? (x[i] * inv) * w[i] : x[i] * inv;
}

/* Per-token absmax quantisation to int8; returns x_scale. */
static float quantize(int8_t *q, const float *x, int32_t n) {
    float amax = 0;
    for (int32_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float scale = 127.0f / fmaxf(amax, 1e-5f);
    for (int32_t i = 0; i < n; i++) q[i] = (int8_t)fminf(fmaxf(rintf(x[i] * scale), -128.0f), 127.0f);
    memset(q + n, 0, (size_t)((n + RSR_X_PAD - 1) / RSR_X_PAD * RSR_X_PAD - n)); /* kernels read whole groups */
    return scale;
}

/* Prepares the int8 input of the BitLinear layers that read x (Falcon-E normalises first). */
static float bitlinear_input(rsr_session *s, const float *x, int32_t n) {
    const rsr_artifact *a = s->model->a;
    if (!a->bitlinear_norm) return quantize(s->xq, x, n);
    rmsnorm(s->tmp, x, NULL, n, a->bitlinear_eps);
    return quantize(s->xq, s->tmp, n);
}

/* y (=, or += when accumulate) = W_t·x_q * beta / x_scale, the kernel split over threads. */
static void bitlinear(rsr_session *s, int32_t index, float x_scale, float *y, int accumulate) {
    const rsr_artifact *a = s->model->a;
    const rsr_artifact_matrix *mx = &a->matrix[index];
    const uint8_t *data = mx->data == RSR_NO_TENSOR ? NULL : a->blob + mx->data;
    const int8_t *xq = s->xq;
    int32_t *acc = s->acc;
    int32_t nb = mx->num_blocks, nthreads = s->model->num_threads;
    /* One contiguous range of blocks per thread: blocks cost the same (i2) or nearly (RSR), and a
     * shared work counter costs more than the imbalance it removes (bench_gemv, docs/performance.md). */
    int32_t team = nthreads > 0 ? nthreads : omp_get_max_threads(), chunks = nb < team ? nb : team;
#pragma omp parallel for schedule(static, 1) num_threads(team)
    for (int32_t c = 0; c < chunks; c++) {
        int32_t b0 = (int32_t)((int64_t)nb * c / chunks), b1 = (int32_t)((int64_t)nb * (c + 1) / chunks);
        mx->kernel(data, xq, acc, b0, b1);
    }
    for (int32_t i = 0; i < mx->rows; i++) {
        float v = ((float)acc[i] * mx->scale) / x_scale;
        y[i] = accumulate ? y[i] + v : v;
    }
}

static void rope(float *x, int32_t heads, int32_t d, int32_t pos, double theta) {
    int32_t half = d / 2;
    for (int32_t i = 0; i < half; i++) {
        double inv_freq = pow(theta, -2.0 * i / d), ang = pos * inv_freq;
        float c = (float)cos(ang), sn = (float)sin(ang);
        for (int32_t h = 0; h < heads; h++) {
            float *v = x + (size_t)h * (size_t)d;
            float x0 = v[i], x1 = v[i + half];
            v[i] = x0 * c - x1 * sn;
            v[i + half] = x1 * c + x0 * sn;
        }
    }
}

rsr_status rsr_forward_token(rsr_session *s, int32_t token, float *logits, int32_t *argmax) {
    const rsr_artifact *a = s->model->a;
    int32_t H = a->hidden, I = a->intermediate, d = a->head_dim;
    int32_t q_out = a->num_heads * d, kv_out = a->num_kv_heads * d;
    const uint8_t *erow = a->blob + a->embed + (size_t)token * (size_t)H * dtype_size(a->embed_dtype);
    for (int32_t i = 0; i < H; i++) s->h[i] = load_elem(erow, a->embed_dtype, i);

    for (int32_t l = 0; l < a->num_layers; l++) {
        const rsr_artifact_layer *L = &a->layer[l];
        size_t cache_at = ((size_t)l * (size_t)s->max_positions + (size_t)s->pos) * (size_t)kv_out;

        rmsnorm(s->xn, s->h, blob_f32(a, L->attn_norm), H, a->rms_eps);
        float xs = bitlinear_input(s, s->xn, H);
        bitlinear(s, L->q, xs, s->q, 0);
        bitlinear(s, L->k, xs, s->k, 0);
        bitlinear(s, L->v, xs, s->v, 0);
        rope(s->q, a->num_heads, d, s->pos, a->rope_theta);
        rope(s->k, a->num_kv_heads, d, s->pos, a->rope_theta);
        memcpy(s->k_cache + cache_at, s->k, sizeof(float) * (size_t)kv_out);
        memcpy(s->v_cache + cache_at, s->v, sizeof(float) * (size_t)kv_out);
        rsr_status st = rsr_attention(s, l);
        if (st != RSR_OK) return st;
        const float *o_in = s->att;
        if (L->attn_sub_norm != RSR_NO_TENSOR) {
            rmsnorm(s->xn, s->att, blob_f32(a, L->attn_sub_norm), q_out, a->rms_eps);
            o_in = s->xn;
        }
        xs = bitlinear_input(s, o_in, q_out);
        bitlinear(s, L->o, xs, s->h, 1);

        rmsnorm(s->xn, s->h, blob_f32(a, L->ffn_norm), H, a->rms_eps);
        xs = bitlinear_input(s, s->xn, H);
        bitlinear(s, L->gate, xs, s->gate, 0);
        bitlinear(s, L->up, xs, s->up, 0);
        for (int32_t i = 0; i < I; i++) {
            float g = s->gate[i];
            if (a->activation == RSR_ACT_RELU2) {
                float r = fmaxf(g, 0.0f);
                s->gate[i] = r * r * s->up[i];
            } else {
                s->gate[i] = (g / (1.0f + expf(-g))) * s->up[i];
            }
        }
        const float *d_in = s->gate;
        if (L->ffn_sub_norm != RSR_NO_TENSOR) {
            rmsnorm(s->xn, s->gate, blob_f32(a, L->ffn_sub_norm), I, a->rms_eps);
            d_in = s->xn;
        }
        xs = bitlinear_input(s, d_in, I);
        bitlinear(s, L->down, xs, s->h, 1);
    }
    s->pos++;
    if (logits || argmax) rmsnorm(s->xn, s->h, blob_f32(a, a->final_norm), H, a->rms_eps);
    if (logits) rsr_lm_head_logits(s, s->xn, logits);
    if (argmax) return rsr_lm_head_argmax(s, s->xn, argmax);
    return RSR_OK;
}
