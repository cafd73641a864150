/*
 * gpu_forward.c — a token on the GPU: the same operations as runtime/src/forward.c, each a
 * kernel of cuda/rsr_kernels.cu or a matrix entry of the model, enqueued on one stream:
 *
 *   embed → per layer: quantize(norm) → q, k, v → qkv_rope (+ cache) → attention →
 *           quantize(sub-norm) → o → dequant(+= h) → quantize(norm) → gate, up → glu →
 *           quantize(sub-norm) → down → dequant(+= h)
 *   → quantize(final norm; its y is the normed h) → lm_head → argmax
 *
 * The token and position live in device memory (rsr_step), so a token's launches are always
 * the same: they are captured once into a CUDA graph and replayed, one graph launch per token
 * (when the driver cannot capture, they are launched one by one). The host waits once per
 * rsr_session_eval, after the logits are copied back.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

#define ERR(st, ...) gpu_error(err, st, __VA_ARGS__)

struct rsr_gpu_session {
    rsr_gpu *g;
    int32_t max_positions, widest_pad;
    CUdeviceptr step;           /* struct rsr_step {int token, pos;} */
    CUdeviceptr h, y, act, xq, xs, q, att, scores, logits, argmax;
    CUdeviceptr acc[7];         /* integer sums of q, k, v, o, gate, up, down */
    CUdeviceptr k_cache, v_cache; /* [layers][max_positions][kv_heads * head_dim] */
    CUgraphExec graph;
    int graph_state;            /* 0: not tried, 1: in use, -1: unavailable */
    CUresult failed;            /* the first launch error while enqueuing */
    const char *failed_kernel;
};

static int32_t pad_cols(int32_t n) { return (n + RSR_X_PAD - 1) / RSR_X_PAD * RSR_X_PAD; }
static unsigned blocks_of(int32_t n, int32_t per) { return (unsigned)((n + per - 1) / per); }

static void launch(rsr_gpu_session *s, CUfunction f, const char *name, unsigned grid, unsigned block, void **args) {
    if (s->failed) return;
    CUresult r = s->g->cu.LaunchKernel(f, grid, 1, 1, block, 1, 1, 0, s->g->stream, args, NULL);
    if (r) s->failed = r, s->failed_kernel = name;
}

/* x → y (normed), xq, xs: the input of the BitLinear layers that read x (see rsr_quantize). */
static void quantize(rsr_gpu_session *s, CUdeviceptr x, uint64_t norm_weight, int32_t n, int bitlinear) {
    const rsr_artifact *a = s->g->a;
    CUdeviceptr w = norm_weight == RSR_NO_TENSOR ? 0 : s->g->blob + norm_weight;
    int32_t norm = norm_weight != RSR_NO_TENSOR, bl = bitlinear && a->bitlinear_norm, n_pad = pad_cols(n);
    float eps = a->rms_eps, bl_eps = a->bitlinear_eps;
    void *args[] = {&x, &w, &norm, &eps, &bl, &bl_eps, &n, &n_pad, &s->y, &s->xq, &s->xs};
    launch(s, s->g->quantize, "rsr_quantize", 1, 1024, args);
}

static void matvec(rsr_gpu_session *s, int32_t index, CUdeviceptr out) {
    const rsr_artifact_gpu_matrix *gm = &s->g->a->gpu->matrix[index];
    CUdeviceptr data = s->g->blob + (gm->data == RSR_NO_TENSOR ? 0 : gm->data);
    void *args[] = {&data, &s->xq, &out};
    launch(s, s->g->matrix[index], gm->kernel, blocks_of(gm->num_blocks, gm->cta_warps), 32u * (unsigned)gm->cta_warps, args);
}

static void dequant_add(rsr_gpu_session *s, int32_t index, CUdeviceptr acc) {
    const rsr_artifact *a = s->g->a;
    float beta = a->matrix[index].scale;
    int32_t n = a->matrix[index].rows, accumulate = 1;
    void *args[] = {&acc, &beta, &s->xs, &n, &accumulate, &s->h};
    launch(s, s->g->dequant, "rsr_dequant", blocks_of(n, 256), 256, args);
}

static void enqueue_token(rsr_gpu_session *s) {
    rsr_gpu *g = s->g;
    const rsr_artifact *a = g->a;
    int32_t H = a->hidden, I = a->intermediate, d = a->head_dim, heads = a->num_heads, kv_heads = a->num_kv_heads;
    int32_t q_out = heads * d, kv_out = kv_heads * d, max_pos = s->max_positions;
    CUdeviceptr embed = g->blob + a->embed, head = g->blob + a->lm_head;
    int32_t embed_dtype = a->embed_dtype, head_dtype = a->lm_head_dtype, vocab = a->vocab;
    void *e_args[] = {&embed, &embed_dtype, &H, &s->step, &s->h};
    launch(s, g->embed, "rsr_embed", blocks_of(H, 256), 256, e_args);
    for (int32_t l = 0; l < a->num_layers; l++) {
        const rsr_artifact_layer *L = &a->layer[l];
        size_t layer_off = sizeof(float) * (size_t)l * (size_t)max_pos * (size_t)kv_out;
        CUdeviceptr kc = s->k_cache + layer_off, vc = s->v_cache + layer_off;

        quantize(s, s->h, L->attn_norm, H, 1);
        matvec(s, L->q, s->acc[0]);
        matvec(s, L->k, s->acc[1]);
        matvec(s, L->v, s->acc[2]);
        float bq = a->matrix[L->q].scale, bk = a->matrix[L->k].scale, bv = a->matrix[L->v].scale;
        double theta = a->rope_theta;
        void *r_args[] = {&s->acc[0], &s->acc[1], &s->acc[2], &bq, &bk, &bv, &s->xs, &q_out, &kv_out, &d, &theta,
                          &s->step, &s->q, &kc, &vc};
        launch(s, g->qkv_rope, "rsr_qkv_rope", blocks_of(q_out / 2 > kv_out ? q_out / 2 : kv_out, 256), 256, r_args);
        void *a_args[] = {&s->q, &kc, &vc, &heads, &kv_heads, &d, &s->step, &s->scores, &max_pos, &s->att};
        launch(s, g->attention, "rsr_attention", (unsigned)heads, 256, a_args);

        quantize(s, s->att, L->attn_sub_norm, q_out, 1);
        matvec(s, L->o, s->acc[3]);
        dequant_add(s, L->o, s->acc[3]);

        quantize(s, s->h, L->ffn_norm, H, 1);
        matvec(s, L->gate, s->acc[4]);
        matvec(s, L->up, s->acc[5]);
        float bg = a->matrix[L->gate].scale, bu = a->matrix[L->up].scale;
        int32_t silu = a->activation == RSR_ACT_SILU;
        void *g_args[] = {&s->acc[4], &s->acc[5], &bg, &bu, &s->xs, &I, &silu, &s->act};
        launch(s, g->glu, "rsr_glu", blocks_of(I, 256), 256, g_args);

        quantize(s, s->act, L->ffn_sub_norm, I, 1);
        matvec(s, L->down, s->acc[6]);
        dequant_add(s, L->down, s->acc[6]);
    }
    quantize(s, s->h, a->final_norm, H, 0); /* s->y = rmsnorm(h) * norm; its int8 copy is unused */
    void *l_args[] = {&head, &head_dtype, &s->y, &H, &vocab, &s->logits};
    launch(s, g->lm_head, "rsr_lm_head", blocks_of(vocab, 8), 256, l_args);
    void *m_args[] = {&s->logits, &vocab, &s->argmax};
    launch(s, g->argmax, "rsr_argmax", 1, 1024, m_args);
}

/* Records the token's launches into a graph once; any failure means plain launches instead. */
static void try_graph(rsr_gpu_session *s) {
    rsr_cuda *cu = &s->g->cu;
    s->graph_state = -1;
    const char *off = getenv("RSR_CUDA_GRAPHS");
    if (!cu->StreamBeginCapture || (off && !strcmp(off, "0"))) return;
    if (cu->StreamBeginCapture(s->g->stream, RSR_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL) != 0) return;
    enqueue_token(s);
    CUgraph graph = NULL;
    CUresult r = cu->StreamEndCapture(s->g->stream, &graph);
    if (r == 0 && !s->failed && cu->GraphInstantiate(&s->graph, graph, 0) == 0) s->graph_state = 1;
    if (graph) cu->GraphDestroy(graph);
    s->failed = 0; /* a launch refused during capture is retried outside it */
}

rsr_status rsr_gpu_eval(rsr_gpu_session *s, int32_t pos, const int32_t *tokens, int32_t n, float *logits, char *err) {
    rsr_gpu *g = s->g;
    rsr_cuda *cu = &g->cu;
    CUresult r = cu->CtxSetCurrent(g->ctx);
    if (r) return ERR(RSR_ERR_DEVICE, "%s: %s", g->name, rsr_cuda_error(cu, r));
    if (!s->graph_state) try_graph(s);
    for (int32_t i = 0; i < n && !r && !s->failed; i++) {
        int32_t step[2] = {tokens[i], pos + i};
        r = cu->MemcpyHtoDAsync(s->step, step, sizeof step, g->stream);
        if (r) break;
        if (s->graph_state == 1) r = cu->GraphLaunch(s->graph, g->stream);
        else enqueue_token(s);
    }
    if (!r && !s->failed && logits) r = cu->MemcpyDtoHAsync(logits, s->logits, sizeof(float) * (size_t)g->a->vocab, g->stream);
    CUresult sync = cu->StreamSynchronize(g->stream);
    if (s->failed)
        return ERR(RSR_ERR_DEVICE, "%s: launching %s: %s", g->name, s->failed_kernel, rsr_cuda_error(cu, s->failed));
    if (r || sync)
        return ERR(RSR_ERR_DEVICE, "%s: evaluating tokens at position %d: %s", g->name, pos, rsr_cuda_error(cu, r ? r : sync));
    return RSR_OK;
}

rsr_status rsr_gpu_session_create(rsr_gpu *g, int32_t max_positions, rsr_gpu_session **out, char *err) {
    *out = NULL;
    const rsr_artifact *a = g->a;
    rsr_gpu_session *s = calloc(1, sizeof *s);
    if (!s) return ERR(RSR_ERR_OUT_OF_MEMORY, "out of memory");
    s->g = g;
    s->max_positions = max_positions;
    size_t d = (size_t)a->head_dim, q_out = (size_t)a->num_heads * d, kv_out = (size_t)a->num_kv_heads * d;
    size_t widest = (size_t)a->hidden;
    if (q_out > widest) widest = q_out;
    if ((size_t)a->intermediate > widest) widest = (size_t)a->intermediate;
    size_t cache = sizeof(float) * (size_t)a->num_layers * (size_t)max_positions * kv_out;
    struct { CUdeviceptr *p; size_t bytes; } bufs[] = {
        {&s->step, 8}, {&s->h, 4 * (size_t)a->hidden}, {&s->y, 4 * widest}, {&s->act, 4 * (size_t)a->intermediate},
        {&s->xq, (size_t)pad_cols((int32_t)widest)}, {&s->xs, 4}, {&s->q, 4 * q_out}, {&s->att, 4 * q_out},
        {&s->scores, 4 * (size_t)a->num_heads * (size_t)max_positions}, {&s->logits, 4 * (size_t)a->vocab},
        {&s->argmax, 4}, {&s->acc[0], 4 * q_out}, {&s->acc[1], 4 * kv_out}, {&s->acc[2], 4 * kv_out},
        {&s->acc[3], 4 * (size_t)a->hidden}, {&s->acc[4], 4 * (size_t)a->intermediate},
        {&s->acc[5], 4 * (size_t)a->intermediate}, {&s->acc[6], 4 * (size_t)a->hidden}, {&s->k_cache, cache},
        {&s->v_cache, cache},
    };
    CUresult r = g->cu.CtxSetCurrent(g->ctx);
    for (size_t i = 0; !r && i < sizeof bufs / sizeof *bufs; i++) r = g->cu.MemAlloc(bufs[i].p, bufs[i].bytes);
    if (!r) r = g->cu.MemsetD8(s->xq, 0, (size_t)pad_cols((int32_t)widest));
    if (r) {
        rsr_gpu_session_free(s);
        return ERR(RSR_ERR_OUT_OF_MEMORY, "%s: no device memory for a session of %d positions (KV cache %.1f MB): %s",
                   g->name, max_positions, 2.0 * (double)cache / 1e6, rsr_cuda_error(&g->cu, r));
    }
    *out = s;
    return RSR_OK;
}

void rsr_gpu_session_free(rsr_gpu_session *s) {
    if (!s) return;
    rsr_cuda *cu = &s->g->cu;
    cu->CtxSetCurrent(s->g->ctx);
    if (s->graph) cu->GraphExecDestroy(s->graph);
    CUdeviceptr *all[] = {&s->step, &s->h, &s->y, &s->act, &s->xq, &s->xs, &s->q, &s->att, &s->scores, &s->logits,
                          &s->argmax, &s->acc[0], &s->acc[1], &s->acc[2], &s->acc[3], &s->acc[4], &s->acc[5],
                          &s->acc[6], &s->k_cache, &s->v_cache};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (*all[i]) cu->MemFree(*all[i]);
    free(s);
}
