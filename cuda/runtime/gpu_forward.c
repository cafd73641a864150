/*
 * gpu_forward.c — a token on the GPU: the same operations as runtime/cpu/forward.c, enqueued on
 * one stream. With group entries (the NVRTC route, rsr_gpu_call.h) a layer is five launches:
 *
 *   embed → per layer: [norm → quantise → q,k,v] → attend (dequantise, RoPE, cache, attention)
 *           → [sub-norm → quantise → o → h +=] → [norm → quantise → gate,up]
 *           → [gated activation → sub-norm → quantise → down → h +=]
 *   → final norm → lm_head (logits and the greedy token)
 *
 * (a bracket is one group launch: each of its thread blocks makes the int8 input itself). The
 * LLVM NVPTX route has one entry per matrix that reads a ready int8 input, so there each
 * quantisation, dequantisation and the gated activation is a kernel of its own.
 *
 * The token and position live in device memory (rsr_step), so a token's launches are always
 * the same: they are captured once into a CUDA graph and replayed, one graph launch per token
 * (when the driver cannot capture, they are launched one by one). The host waits once per
 * rsr_session_eval, after the logits or the greedy token are copied back.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"
#include "rsr_numerics.h"

#define ERR(st, ...) rt_set_error(err, st, __VA_ARGS__)

enum { CALLS_PER_LAYER = 4 }; /* q,k,v | o | gate,up | down */

struct rt_gpu_session {
    rt_gpu *g;
    int32_t max_positions;
    CUdeviceptr step; /* struct rsr_step {int token, pos;} */
    CUdeviceptr h, y, act, xq, att, scores, logits, best, rope;
    rsr_gpu_call *calls; /* [layers][CALLS_PER_LAYER] group launches' parameters (host memory) */
    CUdeviceptr xs;      /* x_scale of: [0] q,k,v's input, [1] gate,up's, [2] o's or down's */
    CUdeviceptr acc[7];  /* integer sums of q, k, v, o, gate, up, down (per unit with group scales) */
    CUdeviceptr f[7];    /* with scales per group: q, k, v, gate and up's rows from rsr_units (o, down: unused) */
    CUdeviceptr k_cache, v_cache; /* [layers][max_positions][kv_heads * head_dim] */
    CUgraphExec graph;
    int graph_state; /* 0: not tried, 1: in use, -1: unavailable */
    CUresult failed; /* the first launch error while enqueuing */
    const char *failed_kernel;
};

static unsigned blocks_of(int32_t n, int32_t per) { return (unsigned)((n + per - 1) / per); }
static CUdeviceptr blob_or_null(const rt_gpu *g, uint64_t off) { return off == RSR_NO_TENSOR ? 0 : g->blob + off; }

static void launch(rt_gpu_session *s, CUfunction f, const char *name, unsigned grid, unsigned block, void **args) {
    if (s->failed) return;
    CUresult r = s->g->cu.LaunchKernel(f, grid, 1, 1, block, 1, 1, 0, s->g->stream, args, NULL);
    if (r) s->failed = r, s->failed_kernel = name;
}

/* ---- the LLVM NVPTX route: a kernel per quantisation, matrix and dequantisation ---- */

/* x → y (normed), xq and its x_scale (see rsr_quantize). */
static void quantize(rt_gpu_session *s, CUdeviceptr x, uint64_t norm_weight, int32_t n, int bitlinear, CUdeviceptr xs) {
    const rsr_artifact *a = s->g->a;
    CUdeviceptr w = blob_or_null(s->g, norm_weight);
    int32_t norm = norm_weight != RSR_NO_TENSOR, bl = bitlinear && a->bitlinear_norm, n_pad = rt_pad_cols(n);
    float eps = a->rms_eps, bl_eps = a->bitlinear_eps;
    void *args[] = {&x, &w, &norm, &eps, &bl, &bl_eps, &n, &n_pad, &s->y, &s->xq, &xs};
    launch(s, s->g->quantize, "rsr_quantize", 1, 1024, args);
}

static void matvec(rt_gpu_session *s, int32_t index, CUdeviceptr out) {
    const rsr_artifact_gpu_matrix *gm = &s->g->a->gpu->matrix[index];
    CUdeviceptr data = blob_or_null(s->g, gm->data);
    void *args[] = {&data, &s->xq, &out};
    launch(s, s->g->matrix[index], gm->kernel, blocks_of(gm->num_blocks, gm->cta_warps), 32u * (unsigned)gm->cta_warps,
           args);
}

static void dequant_add(rt_gpu_session *s, int32_t index, CUdeviceptr acc, CUdeviceptr xs) {
    const rsr_artifact *a = s->g->a;
    float beta = a->matrix[index].scale;
    int32_t n = a->matrix[index].rows, accumulate = 1;
    void *args[] = {&acc, &beta, &xs, &n, &accumulate, &s->h};
    launch(s, s->g->dequant, "rsr_dequant", blocks_of(n, 256), 256, args);
}

/* Matrix index's sums per unit of columns (rsr_artifact_matrix.unit_cols) to its rows: into out, or
 * (add) divided by x_scale onto out (rsr_units). */
static void units(rt_gpu_session *s, int32_t index, CUdeviceptr acc, CUdeviceptr xs, int32_t add, CUdeviceptr out) {
    const rsr_artifact_matrix *mx = &s->g->a->matrix[index];
    CUdeviceptr scale = s->g->blob + mx->group_scale;
    int32_t rows = mx->rows, U = mx->cols / mx->unit_cols, P = s->g->a->gpu->matrix[index].planes,
            per = mx->scale_cols / mx->unit_cols;
    void *args[] = {&acc, &scale, &rows, &U, &P, &per, &xs, &add, &out};
    launch(s, s->g->units, "rsr_units", blocks_of(rows, 256), 256, args);
}

static bool grouped(const rt_gpu_session *s, int32_t index) { return s->g->a->matrix[index].unit_cols > 0; }

/* Where a matrix's output is read from: its rows from rsr_units with scales per group, else its
 * integer sums (the pointer NULL). */
static CUdeviceptr rows_of(const rt_gpu_session *s, int32_t index, int slot) {
    return grouped(s, index) ? s->f[slot] : 0;
}

/* After q, k and v (or gate and up) summed: the grouped ones' rows. */
static void units_of(rt_gpu_session *s, const int32_t *index, const int *slot, int n, CUdeviceptr xs) {
    for (int j = 0; j < n; j++)
        if (grouped(s, index[j])) units(s, index[j], s->acc[slot[j]], xs, 0, s->f[slot[j]]);
}

/* o or down's output onto h: its integer sums dequantised, or its units' rows. */
static void add_to_h(rt_gpu_session *s, int32_t index, CUdeviceptr acc, CUdeviceptr xs) {
    if (grouped(s, index))
        units(s, index, acc, xs, 1, s->h);
    else
        dequant_add(s, index, acc, xs);
}

/* ---- the NVRTC route: group entries ---- */

static void group(rt_gpu_session *s, int32_t index, int32_t call) {
    const rsr_artifact_gpu_matrix *gm = &s->g->a->gpu->matrix[index];
    void *args[] = {&s->calls[call], &s->g->blob}; /* the call by value: the driver copies it */
    launch(s, s->g->matrix[index], gm->kernel, (unsigned)gm->group_ctas, 32u * (unsigned)gm->cta_warps, args);
}

/* The parameters of the group launches, made once per session (the buffers never move). */
static void fill_calls(rt_gpu_session *s, rsr_gpu_call *calls) {
    const rt_gpu *g = s->g;
    const rsr_artifact *a = g->a;
    int32_t q_out = a->num_heads * a->head_dim;
    CUdeviceptr xs_qkv = s->xs, xs_ffn = s->xs + 4, xs_other = s->xs + 8;
    for (int32_t l = 0; l < a->num_layers; l++) {
        const rsr_artifact_layer *L = &a->layer[l];
        rsr_gpu_call base = {
            .eps = a->rms_eps, .bitlinear_eps = a->bitlinear_eps, .bitlinear = a->bitlinear_norm, .in = RSR_IN_FLOAT};
        rsr_gpu_call *c = calls + (size_t)l * CALLS_PER_LAYER;
        c[0] = base, c[0].x = s->h, c[0].norm = blob_or_null(g, L->attn_norm), c[0].xs = xs_qkv, c[0].n = a->hidden;
        c[0].out = RSR_OUT_INT, c[0].mask = 7, c[0].y[0] = s->acc[0], c[0].y[1] = s->acc[1], c[0].y[2] = s->acc[2];
        c[1] = base, c[1].x = s->att, c[1].norm = blob_or_null(g, L->attn_sub_norm), c[1].n = q_out;
        c[1].out = RSR_OUT_ADD, c[1].mask = 1, c[1].h = s->h, c[1].beta[0] = a->matrix[L->o].scale;
        if (grouped(s, L->o)) /* its sums per unit, then rsr_units onto h */
            c[1].out = RSR_OUT_INT, c[1].y[0] = s->acc[3], c[1].xs = xs_other;
        c[2] = base, c[2].x = s->h, c[2].norm = blob_or_null(g, L->ffn_norm), c[2].xs = xs_ffn, c[2].n = a->hidden;
        c[2].out = RSR_OUT_INT, c[2].mask = 3, c[2].y[0] = s->acc[4], c[2].y[1] = s->acc[5];
        c[3] = base, c[3].in = RSR_IN_GLU, c[3].gate = s->acc[4], c[3].up = s->acc[5], c[3].gate_xs = xs_ffn;
        c[3].gate_f = rows_of(s, L->gate, 4), c[3].up_f = rows_of(s, L->up, 5);
        c[3].beta_gate = a->matrix[L->gate].scale, c[3].beta_up = a->matrix[L->up].scale;
        c[3].silu = a->activation == RSR_ACT_SILU, c[3].norm = blob_or_null(g, L->ffn_sub_norm),
        c[3].n = a->intermediate;
        c[3].out = RSR_OUT_ADD, c[3].mask = 1, c[3].h = s->h, c[3].beta[0] = a->matrix[L->down].scale;
        if (grouped(s, L->down)) c[3].out = RSR_OUT_INT, c[3].y[0] = s->acc[6], c[3].xs = xs_other;
    }
}

static void enqueue_token(rt_gpu_session *s) {
    rt_gpu *g = s->g;
    const rsr_artifact *a = g->a;
    int32_t H = a->hidden, I = a->intermediate, d = a->head_dim, heads = a->num_heads, kv_heads = a->num_kv_heads;
    int32_t q_out = heads * d, kv_out = kv_heads * d, max_pos = s->max_positions;
    CUdeviceptr embed = g->blob + a->embed, head = g->blob + a->lm_head;
    CUdeviceptr xs_qkv = s->xs, xs_ffn = s->xs + 4, xs_other = s->xs + 8;
    int32_t embed_dtype = a->embed_dtype, head_dtype = a->lm_head_dtype, vocab = a->vocab;
    void *e_args[] = {&embed, &embed_dtype, &H, &s->step, &s->h, &s->best};
    launch(s, g->embed, "rsr_embed", blocks_of(H, 256), 256, e_args);
    for (int32_t l = 0; l < a->num_layers; l++) {
        const rsr_artifact_layer *L = &a->layer[l];
        size_t layer_off = sizeof(float) * (size_t)l * (size_t)max_pos * (size_t)kv_out;
        CUdeviceptr kc = s->k_cache + layer_off, vc = s->v_cache + layer_off;
        if (g->fused) {
            group(s, L->q, l * CALLS_PER_LAYER);
        } else {
            quantize(s, s->h, L->attn_norm, H, 1, xs_qkv);
            matvec(s, L->q, s->acc[0]);
            matvec(s, L->k, s->acc[1]);
            matvec(s, L->v, s->acc[2]);
        }
        const int32_t qkv[] = {L->q, L->k, L->v}, ffn[] = {L->gate, L->up};
        units_of(s, qkv, (const int[]){0, 1, 2}, 3, xs_qkv);
        float bq = a->matrix[L->q].scale, bk = a->matrix[L->k].scale, bv = a->matrix[L->v].scale;
        CUdeviceptr fq = rows_of(s, L->q, 0), fk = rows_of(s, L->k, 1), fv = rows_of(s, L->v, 2);
        void *a_args[] = {&s->acc[0], &s->acc[1], &s->acc[2], &fq, &fk,      &fv, &bq, &bk,        &bv,      &xs_qkv,
                          &s->rope,   &heads,     &kv_heads,  &d,  &s->step, &kc, &vc, &s->scores, &max_pos, &s->att};
        launch(s, g->attend, "rsr_attend", (unsigned)heads, 256, a_args);
        if (g->fused) {
            group(s, L->o, l * CALLS_PER_LAYER + 1);
            if (grouped(s, L->o)) add_to_h(s, L->o, s->acc[3], xs_other);
            group(s, L->gate, l * CALLS_PER_LAYER + 2);
            units_of(s, ffn, (const int[]){4, 5}, 2, xs_ffn);
            group(s, L->down, l * CALLS_PER_LAYER + 3);
            if (grouped(s, L->down)) add_to_h(s, L->down, s->acc[6], xs_other);
            continue;
        }
        quantize(s, s->att, L->attn_sub_norm, q_out, 1, xs_other);
        matvec(s, L->o, s->acc[3]);
        add_to_h(s, L->o, s->acc[3], xs_other);
        quantize(s, s->h, L->ffn_norm, H, 1, xs_ffn);
        matvec(s, L->gate, s->acc[4]);
        matvec(s, L->up, s->acc[5]);
        units_of(s, ffn, (const int[]){4, 5}, 2, xs_ffn);
        float bg = a->matrix[L->gate].scale, bu = a->matrix[L->up].scale;
        int32_t silu = a->activation == RSR_ACT_SILU;
        CUdeviceptr fg = rows_of(s, L->gate, 4), fu = rows_of(s, L->up, 5);
        void *g_args[] = {&s->acc[4], &s->acc[5], &fg, &fu, &bg, &bu, &xs_ffn, &I, &silu, &s->act};
        launch(s, g->glu, "rsr_glu", blocks_of(I, 256), 256, g_args);
        quantize(s, s->act, L->ffn_sub_norm, I, 1, xs_other);
        matvec(s, L->down, s->acc[6]);
        add_to_h(s, L->down, s->acc[6], xs_other);
    }
    quantize(s, s->h, a->final_norm, H, 0, xs_other); /* s->y = rmsnorm(h) * norm; its int8 copy is unused */
    void *l_args[] = {&head, &head_dtype, &s->y, &H, &vocab, &s->logits, &s->best};
    unsigned lm_grid = blocks_of(vocab, 8) < 8u * (unsigned)g->sms ? blocks_of(vocab, 8) : 8u * (unsigned)g->sms;
    launch(s, g->lm_head, "rsr_lm_head", lm_grid, 256, l_args);
}

/* Records the token's launches into a graph once; any failure means plain launches instead. */
static void try_graph(rt_gpu_session *s) {
    rt_cuda *cu = &s->g->cu;
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

rsr_status rt_gpu_eval(rt_gpu_session *s, int32_t pos, const int32_t *tokens, int32_t n, float *logits, int32_t *argmax,
                       char *err) {
    rt_gpu *g = s->g;
    rt_cuda *cu = &g->cu;
    CUresult r = cu->CtxSetCurrent(g->ctx);
    if (r) return ERR(RSR_ERR_DEVICE, "%s: %s", g->name, rt_cuda_error(cu, r));
    if (!s->graph_state) try_graph(s);
    for (int32_t i = 0; i < n && !r && !s->failed; i++) {
        int32_t step[2] = {tokens[i], pos + i};
        r = cu->MemcpyHtoDAsync(s->step, step, sizeof step, g->stream);
        if (r) break;
        if (s->graph_state == 1)
            r = cu->GraphLaunch(s->graph, g->stream);
        else
            enqueue_token(s);
    }
    if (!r && !s->failed && logits)
        r = cu->MemcpyDtoHAsync(logits, s->logits, sizeof(float) * (size_t)g->a->vocab, g->stream);
    unsigned long long best = 0;
    if (!r && !s->failed && argmax) r = cu->MemcpyDtoHAsync(&best, s->best, sizeof best, g->stream);
    CUresult sync = cu->StreamSynchronize(g->stream);
    if (argmax) *argmax = best ? (int32_t)(0xffffffffu - (uint32_t)best) : 0; /* rsr_greedy_key */
    if (s->failed)
        return ERR(RSR_ERR_DEVICE, "%s: launching %s: %s", g->name, s->failed_kernel, rt_cuda_error(cu, s->failed));
    if (r || sync)
        return ERR(RSR_ERR_DEVICE, "%s: evaluating tokens at position %d: %s", g->name, pos,
                   rt_cuda_error(cu, r ? r : sync));
    return RSR_OK;
}

/* The int32 sums of projection j (q, k, v, o, gate, up, down) in the layer where they are most: its
 * rows, or units · planes · rows with scales per group (rt_gpu_kernel_rows). */
static size_t sums_of(const rsr_artifact *a, int j) {
    size_t most = 0;
    for (int32_t l = 0; l < a->num_layers; l++) {
        const rsr_artifact_layer *L = &a->layer[l];
        const int32_t index[7] = {L->q, L->k, L->v, L->o, L->gate, L->up, L->down};
        size_t n = (size_t)rt_gpu_kernel_rows(a, index[j]);
        most = n > most ? n : most;
    }
    return most;
}

rsr_status rt_gpu_session_create(rt_gpu *g, int32_t max_positions, rt_gpu_session **out, char *err) {
    *out = NULL;
    const rsr_artifact *a = g->a;
    if (a->head_dim > 256 || a->head_dim % 2)
        return ERR(RSR_ERR_DEVICE, "%s: head_dim %d: the GPU attention kernel takes even head_dim up to 256", g->name,
                   a->head_dim);
    rt_gpu_session *s = calloc(1, sizeof *s);
    if (!s) return ERR(RSR_ERR_OUT_OF_MEMORY, "out of memory");
    s->g = g;
    s->max_positions = max_positions;
    size_t d = (size_t)a->head_dim, q_out = (size_t)a->num_heads * d, kv_out = (size_t)a->num_kv_heads * d;
    size_t widest = (size_t)a->hidden;
    if (q_out > widest) widest = q_out;
    if ((size_t)a->intermediate > widest) widest = (size_t)a->intermediate;
    size_t cache = sizeof(float) * (size_t)a->num_layers * (size_t)max_positions * kv_out;
    size_t rope = sizeof(float) * (size_t)max_positions * d;
    struct {
        CUdeviceptr *p;
        size_t bytes;
    } bufs[] = {
        {&s->step, 8},
        {&s->h, 4 * (size_t)a->hidden},
        {&s->y, 4 * widest},
        {&s->act, 4 * (size_t)a->intermediate},
        {&s->xq, (size_t)rt_pad_cols((int32_t)widest)},
        {&s->xs, 12},
        {&s->att, 4 * q_out},
        {&s->scores, 4 * (size_t)a->num_heads * (size_t)max_positions},
        {&s->logits, 4 * (size_t)a->vocab},
        {&s->best, 8},
        {&s->rope, rope},
        {&s->acc[0], 4 * sums_of(a, 0)},
        {&s->acc[1], 4 * sums_of(a, 1)},
        {&s->acc[2], 4 * sums_of(a, 2)},
        {&s->acc[3], 4 * sums_of(a, 3)},
        {&s->acc[4], 4 * sums_of(a, 4)},
        {&s->acc[5], 4 * sums_of(a, 5)},
        {&s->acc[6], 4 * sums_of(a, 6)},
        {&s->f[0], 4 * q_out},
        {&s->f[1], 4 * kv_out},
        {&s->f[2], 4 * kv_out},
        {&s->f[4], 4 * (size_t)a->intermediate},
        {&s->f[5], 4 * (size_t)a->intermediate},
        {&s->k_cache, cache},
        {&s->v_cache, cache},
    };
    CUresult r = g->cu.CtxSetCurrent(g->ctx);
    for (size_t i = 0; !r && i < sizeof bufs / sizeof *bufs; i++) r = g->cu.MemAlloc(bufs[i].p, bufs[i].bytes);
    if (!r) r = g->cu.MemsetD8(s->xq, 0, (size_t)rt_pad_cols((int32_t)widest));
    /* RoPE angles of every position, computed as the CPU computes them, and the group calls */
    float *host_rope = r ? NULL : malloc(rope);
    s->calls = calloc((size_t)a->num_layers * CALLS_PER_LAYER, sizeof *s->calls);
    if (!r && (!host_rope || !s->calls)) {
        free(host_rope);
        rt_gpu_session_free(s);
        return ERR(RSR_ERR_OUT_OF_MEMORY, "out of memory for the RoPE table of %d positions", max_positions);
    }
    if (!r) {
        for (int32_t p = 0; p < max_positions; p++)
            rsr_rope_angles(host_rope + (size_t)p * d, (int32_t)d, p, a->rope_theta);
        fill_calls(s, s->calls);
        r = g->cu.MemcpyHtoD(s->rope, host_rope, rope);
    }
    free(host_rope);
    if (r) {
        rt_gpu_session_free(s);
        return ERR(RSR_ERR_OUT_OF_MEMORY, "%s: no device memory for a session of %d positions (KV cache %.1f MB): %s",
                   g->name, max_positions, 2.0 * (double)cache / 1e6, rt_cuda_error(&g->cu, r));
    }
    *out = s;
    return RSR_OK;
}

void rt_gpu_session_free(rt_gpu_session *s) {
    if (!s) return;
    rt_cuda *cu = &s->g->cu;
    cu->CtxSetCurrent(s->g->ctx);
    if (s->graph) cu->GraphExecDestroy(s->graph);
    CUdeviceptr *all[] = {&s->step,   &s->h,      &s->y,      &s->act,    &s->xq,      &s->xs,      &s->att,
                          &s->scores, &s->logits, &s->best,   &s->rope,   &s->acc[0],  &s->acc[1],  &s->acc[2],
                          &s->acc[3], &s->acc[4], &s->acc[5], &s->acc[6], &s->k_cache, &s->v_cache, &s->f[0],
                          &s->f[1],   &s->f[2],   &s->f[4],   &s->f[5]};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (*all[i]) cu->MemFree(*all[i]);
    free(s->calls);
    free(s);
}

/* ---- the GPU device: sessions whose tokens run on the device ---- */

static rsr_status gpu_session_init(rsr_session *s, const rsr_session_params *p) {
    rsr_model *m = s->model;
    if (p->attention == RSR_ATTENTION_LOUVER) /* auto: dense here */
        return rt_set_error(m->err, RSR_ERR_INVALID_ARGUMENT,
                            "Louver attention runs on the CPU only: open the model "
                            "with device cpu (rsr-run --device cpu)");
    rt_gpu_session *g = NULL;
    rsr_status st = rt_gpu_session_create(m->dev, s->max_positions, &g, m->err);
    s->dev = g;
    return st;
}

static void gpu_session_free(rsr_session *s) { rt_gpu_session_free(s->dev); }

static rsr_status gpu_eval(rsr_session *s, const int32_t *tokens, int32_t n, const rt_head_request *h) {
    rsr_status st;
    switch (h->kind) {
    case RT_HEAD_INT8:
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT,
                            "the int8 LM head runs on the CPU: open the model on the CPU, or use rsr_session_eval");
    case RT_HEAD_GREEDY: { /* the device computes full logits and their first maximum; only the token comes back */
        int32_t best;
        st = rt_gpu_eval(s->dev, s->pos, tokens, n, NULL, &best, s->err);
        if (st == RSR_OK) *h->token = best;
        break;
    }
    case RT_HEAD_SAMPLE: { /* the full logits come back and are sampled here */
        const int32_t V = s->model->a->vocab;
        float *logits = malloc(sizeof *logits * (size_t)V * 2);
        int32_t *ids = malloc(sizeof *ids * (size_t)V);
        if (!logits || !ids) {
            free(logits), free(ids);
            return rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for the logits");
        }
        st = rt_gpu_eval(s->dev, s->pos, tokens, n, logits, NULL, s->err);
        if (st == RSR_OK) *h->token = rsr_sample(logits, V, h->sampler, h->rng, logits + V, ids);
        free(logits), free(ids);
        break;
    }
    default: st = rt_gpu_eval(s->dev, s->pos, tokens, n, h->logits, NULL, s->err); break;
    }
    if (st == RSR_OK) s->pos += n;
    return st;
}

static bool gpu_has_code(const rsr_artifact *a) { return a->gpu != NULL; }

/* The GPU kernel's planes may differ from the CPU kernel's (rsr_artifact_gpu_matrix.planes). */
static int32_t gpu_planes(const rsr_model *m, int32_t index) { return m->a->gpu->matrix[index].planes; }

/* The runtime's entry for the GPU (rt_devices: CMake's RSR_RUNTIME_DEVICES names it). */
const rt_device rt_device_gpu = {
    .name = "gpu",
    .title = "GPU",
    .device = RSR_DEVICE_GPU,
    .host_memory = false,
    .own_threads = true,
    .last_only = true,
    .has_code = gpu_has_code,
    .planes = gpu_planes,
    .session_init = gpu_session_init,
    .session_free = gpu_session_free,
    .eval = gpu_eval,
    .matmul_int = rt_gpu_matmul_int,
    .model_open = rt_gpu_model_open,
    .model_close = rt_gpu_model_close,
};
