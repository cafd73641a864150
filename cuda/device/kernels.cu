/*
 * kernels.cu — the runtime's own GPU kernels: everything of a token except the ternary
 * matrices, and the pieces of the group entries that run them (rsr_gpu_call.h). rsrc prints
 * this text, after rsr_gpu_entries.h and rsr_gpu_call.h, at the top of every CUDA module it
 * generates (the matrix kernels and group entries follow it), and NVRTC compiles the whole module
 * into the artifact's PTX, so the runtime (cuda/runtime/gpu_forward.c) finds these entries next
 * to rsr_group_N. Each entry is named in rsr_gpu_entries.h, the table the host reads too.
 *
 * Numerics follow docs/numerics.md operation by operation (compiled with --fmad=false, so no
 * multiply-add is contracted); only the order of the long sums differs (tree reductions), which
 * is why GPU logits are compared with the CPU's within a tolerance. Integer sums are exact.
 *
 * No headers: NVRTC compiles this without the CUDA include directory. Sizes travel as kernel
 * arguments; the position and the token live in device memory (rsr_step), so the launches of a
 * token never change and can be captured once in a CUDA graph.
 */
#define RSR_FULL_MASK 0xffffffffu

struct rsr_step {
    int token; /* the token being evaluated */
    int pos;   /* its position: the KV cache holds pos + 1 keys once it is written */
};

__device__ __forceinline__ int rsr_warp_sum_i32(int v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(RSR_FULL_MASK, v, o);
    return v;
}

struct rsr_add {
    __device__ float operator()(float a, float b) const { return a + b; }
};
struct rsr_max {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <class Op> __device__ __forceinline__ float rsr_warp_reduce(float v, Op op) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(RSR_FULL_MASK, v, o));
    return v;
}

/* op over a thread block of whole warps (identity: op's neutral value); every thread gets the
 * result. sh: 32 floats. */
template <class Op> __device__ float rsr_block_reduce(float v, float *sh, float identity, Op op) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = rsr_warp_reduce(v, op);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = rsr_warp_reduce(lane < warps ? sh[lane] : identity, op);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    v = sh[0];
    __syncthreads();
    return v;
}

__device__ float rsr_block_sum(float v, float *sh) { return rsr_block_reduce(v, sh, 0.0f, rsr_add()); }
__device__ float rsr_block_max(float v, float *sh) {
    return rsr_block_reduce(v, sh, -__int_as_float(0x7f800000), rsr_max());
}

/* Element i of a row of the embedding / LM head in its checkpoint dtype (rsr_dtype), exactly. */
__device__ __forceinline__ float rsr_load_elem(const unsigned char *row, int dtype, int i) {
    if (dtype == 2) return __uint_as_float((unsigned)((const unsigned short *)row)[i] << 16); /* bf16 */
    if (dtype == 1) {                                                                         /* f16 */
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(((const unsigned short *)row)[i]));
        return f;
    }
    return ((const float *)row)[i];
}

/* h = embed[token]: one thread per element. Thread 0 also clears the token's greedy key (the
 * first kernel of a token, so rsr_lm_head's atomics start from zero). */
RSR_GPU_ENTRY(embed)(const unsigned char *table, int dtype, int hidden, const rsr_step *step,
                                     float *h, unsigned long long *best) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i == 0) *best = 0;
    if (i >= hidden) return;
    const unsigned char *row = table + (long long)step->token * hidden * (dtype == 0 ? 4 : 2);
    h[i] = rsr_load_elem(row, dtype, i);
}

/* The scalar steps of docs/numerics.md that several kernels share. */
__device__ __forceinline__ float rsr_rms_factor(float ss, int n, float eps) { return 1.0f / sqrtf(ss / (float)n + eps); }
__device__ __forceinline__ float rsr_x_scale(float amax) { return 127.0f / fmaxf(amax, 1e-5f); }
__device__ __forceinline__ signed char rsr_q8(float v, float scale) {
    return (signed char)fminf(fmaxf(rintf(v * scale), -128.0f), 127.0f);
}
__device__ __forceinline__ float rsr_dequant1(int acc, float beta, float xs) { return ((float)acc * beta) / xs; }
/* Element i of a matrix's output: its integer sum · beta / x_scale, or for a matrix with scales per
 * group (f not NULL) the sum of its units that rsr_units made, / x_scale. */
__device__ __forceinline__ float rsr_value(const int *acc, const float *f, int i, float beta, float xs) {
    return f ? f[i] / xs : rsr_dequant1(acc[i], beta, xs);
}
/* The gated FFN activation of one element of gate (g) and up (u): relu²(g)·u or silu(g)·u. */
__device__ __forceinline__ float rsr_glu1(float g, float u, int silu) {
    if (silu) return (g / (1.0f + expf(-g))) * u;
    const float r = fmaxf(g, 0.0f);
    return r * r * u;
}

/*
 * The int8 input of a BitLinear layer, in one thread block:
 *   y = norm ? rmsnorm(x) * w : x;  if bitlinear_norm: y = rmsnorm(y) (no weight, Falcon-E);
 *   x_scale = 127 / max(max|y|, 1e-5);  xq = clamp(rint(y * x_scale), -128, 127), zero to n_pad.
 * y is written to `y` (the normed activation), x_scale to *xs. Each thread owns the elements
 * i ≡ threadIdx.x (mod blockDim.x), so only the reductions need the whole block.
 */
RSR_GPU_ENTRY(quantize)(const float *x, const float *w, int norm, float eps, int bitlinear_norm,
                                        float bitlinear_eps, int n, int n_pad, float *y, signed char *xq,
                                        float *xs) {
    __shared__ float sh[32];
    const int t = threadIdx.x, T = blockDim.x;
    if (norm) {
        float ss = 0.0f;
        for (int i = t; i < n; i += T) ss += x[i] * x[i];
        const float inv = rsr_rms_factor(rsr_block_sum(ss, sh), n, eps);
        for (int i = t; i < n; i += T) y[i] = (x[i] * inv) * w[i];
    } else {
        for (int i = t; i < n; i += T) y[i] = x[i];
    }
    if (bitlinear_norm) {
        float ss = 0.0f;
        for (int i = t; i < n; i += T) ss += y[i] * y[i];
        const float inv = rsr_rms_factor(rsr_block_sum(ss, sh), n, bitlinear_eps);
        for (int i = t; i < n; i += T) y[i] = y[i] * inv;
    }
    float amax = 0.0f;
    for (int i = t; i < n; i += T) amax = fmaxf(amax, fabsf(y[i]));
    const float scale = rsr_x_scale(rsr_block_max(amax, sh));
    for (int i = t; i < n; i += T) xq[i] = rsr_q8(y[i], scale);
    for (int i = n + t; i < n_pad; i += T) xq[i] = 0; /* i2 kernels read whole groups of columns */
    if (t == 0) *xs = scale;
}

/* y (=, or += when accumulate) = acc · beta / x_scale. */
RSR_GPU_ENTRY(dequant)(const int *acc, float beta, const float *xs, int n, int accumulate, float *y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = rsr_dequant1(acc[i], beta, *xs);
    y[i] = accumulate ? y[i] + v : v;
}

/* The gated FFN activation of n elements (rsr_glu1); f_gate, f_up: rsr_units' sums, or NULL. */
RSR_GPU_ENTRY(glu)(const int *acc_gate, const int *acc_up, const float *f_gate, const float *f_up, float beta_gate,
                   float beta_up, const float *xs, int n, int silu, float *out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = rsr_glu1(rsr_value(acc_gate, f_gate, i, beta_gate, *xs), rsr_value(acc_up, f_up, i, beta_up, *xs),
                          silu);
}

/*
 * A matrix with scales per group of columns (docs/numerics.md, "Group scales"; per-token
 * activations): the sums of its kernel, unit u, plane p and row r at acc[(u·planes + p)·rows + r],
 * to Σ_u (float)(Σ_p sum) · scale[u / per][r] over the units in ascending order, as the CPU
 * computes it (no contraction into fused multiply-adds). add: out[r] += that / x_scale (o and down
 * onto h), else out[r] = that (q, k, v, gate and up, read through rsr_value).
 */
RSR_GPU_ENTRY(units)(const int *acc, const float *scale, int rows, int units, int planes, int per, const float *xs,
                     int add, float *out) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float sum = 0.0f;
    for (int u = 0; u < units; u++) {
        const int *s = acc + (long long)u * planes * rows + r;
        sum = __fadd_rn(sum, __fmul_rn((float)(planes == 2 ? s[0] + s[rows] : s[0]), scale[(long long)(u / per) * rows + r]));
    }
    out[r] = add ? out[r] + sum / *xs : sum;
}

/* A logit and its row as one 64-bit key whose unsigned order is the greedy order: larger value
 * first, then the lower index (rsr_sample_greedy's rule). */
__device__ __forceinline__ unsigned long long rsr_greedy_key(float v, int row) {
    unsigned u = __float_as_uint(v);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u;
    return (unsigned long long)u << 32 | (0xffffffffu - (unsigned)row);
}

/*
 * logits[v] = Σ_i x[i] · head[v][i], a warp per row, the warps striding over the rows; bf16 rows
 * with hidden % 8 == 0 are read 16 bytes per lane (a warp reads 512 contiguous bytes per step),
 * other rows element by element. The greedy token comes out too: each block's best key, one
 * atomicMax per block into *best (cleared by rsr_embed); the host reads 8 bytes, not the logits.
 */
RSR_GPU_ENTRY(lm_head)(const unsigned char *head, int dtype, const float *x, int hidden, int vocab,
                                       float *logits, unsigned long long *best) {
    __shared__ unsigned long long block_best[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    unsigned long long mine = 0;
    for (int v = blockIdx.x * warps + warp; v < vocab; v += gridDim.x * warps) {
        const unsigned char *row = head + (long long)v * hidden * (dtype == 0 ? 4 : 2);
        float acc = 0.0f;
        if (dtype == 2 && hidden % 8 == 0) {
            const uint4 *r = (const uint4 *)row;
#pragma unroll 4
            for (int c = lane; c < hidden / 8; c += 32) {
                uint4 p = __ldg(r + c);
                unsigned words[4] = {p.x, p.y, p.z, p.w};
                const float *xc = x + 8 * c;
                for (int k = 0; k < 4; k++) {
                    acc += xc[2 * k] * __uint_as_float(words[k] << 16);
                    acc += xc[2 * k + 1] * __uint_as_float(words[k] & 0xffff0000u);
                }
            }
        } else {
            for (int i = lane; i < hidden; i += 32) acc += x[i] * rsr_load_elem(row, dtype, i);
        }
        acc = rsr_warp_reduce(acc, rsr_add());
        if (lane == 0) logits[v] = acc;
        unsigned long long key = rsr_greedy_key(acc, v);
        mine = key > mine ? key : mine;
    }
    if (lane == 0) block_best[warp] = mine;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < warps; w++) mine = block_best[w] > mine ? block_best[w] : mine;
        if (mine) atomicMax(best, mine);
    }
}

/* ---- fused matrix launches (rsr_gpu_call.h): the pieces the generated group entries call ---- */

/* Element i of a fused launch's input before its norms: x[i], or the gated activation of the
 * integer sums of gate and up (rsr_glu1). */
__device__ __forceinline__ float rsr_input_elem(const rsr_gpu_call &c, int i) {
    if (c.in == RSR_IN_FLOAT) return c.x[i];
    const float xs = *c.gate_xs;
    return rsr_glu1(rsr_value(c.gate, c.gate_f, i, c.beta_gate, xs), rsr_value(c.up, c.up_f, i, c.beta_up, xs), c.silu);
}

/* 1 / sqrt(mean square + eps) of a block's n values, PER per thread (the rest zero). */
template <int PER> __device__ __forceinline__ float rsr_rms_inv(const float *v, int n, float eps, float *sh) {
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < PER; k++) ss += v[k] * v[k];
    return rsr_rms_factor(rsr_block_sum(ss, sh), n, eps);
}

/*
 * The group's int8 input in shared memory (xq, n_pad bytes, zero past n) and its x_scale, made by
 * every thread block for itself: y = RMSNorm(x)·w when there is a norm, then the weightless
 * BitLinear RMSNorm (Falcon-E), then the per-token int8 quantisation (docs/numerics.md; sums as
 * block tree reductions). Each thread keeps its PER elements (i ≡ thread mod blockDim) in
 * registers, so the input is read once. Every block computes the same bits; block 0 publishes
 * x_scale for the kernels that dequantise these sums later.
 */
template <int PER>
__device__ __forceinline__ float rsr_input(const rsr_gpu_call &c, signed char *xq, int n_pad, float *sh) {
    const int t = threadIdx.x, T = blockDim.x, n = c.n;
    if (c.in == RSR_IN_INT8) {
        for (int i = t; i < n_pad / 16; i += T) ((int4 *)xq)[i] = ((const int4 *)c.xq)[i];
        __syncthreads();
        return 1.0f;
    }
    float v[PER], w[PER]; /* the norm's weights are loaded with x: one trip to memory, not two */
#pragma unroll
    for (int k = 0; k < PER; k++) {
        const int i = t + k * T;
        v[k] = i < n ? rsr_input_elem(c, i) : 0.0f;
        w[k] = i < n && c.norm ? c.norm[i] : 0.0f;
    }
    if (c.norm) {
        const float inv = rsr_rms_inv<PER>(v, n, c.eps, sh);
#pragma unroll
        for (int k = 0; k < PER; k++) v[k] = (v[k] * inv) * w[k];
    }
    if (c.bitlinear) {
        const float inv = rsr_rms_inv<PER>(v, n, c.bitlinear_eps, sh);
#pragma unroll
        for (int k = 0; k < PER; k++) v[k] = v[k] * inv;
    }
    float amax = 0.0f;
#pragma unroll
    for (int k = 0; k < PER; k++) amax = fmaxf(amax, fabsf(v[k]));
    const float scale = rsr_x_scale(rsr_block_max(amax, sh));
#pragma unroll
    for (int k = 0; k < PER; k++) {
        const int i = t + k * T;
        if (i < n) xq[i] = rsr_q8(v[k], scale);
        else if (i < n_pad) xq[i] = 0;
    }
    if (blockIdx.x == 0 && t == 0 && c.xs) *c.xs = scale;
    __syncthreads();
    return scale;
}

/*
 * The end of a group entry's matrix j: warp w of the block computed the sums v[0..R-1] of slice
 * w % S of row block first + w / S (every lane holds them); the S slices of a row block are added
 * (integers: any order is exact) and row r goes out: stored, or dequantised onto h.
 */
template <int R, int S>
__device__ __forceinline__ void rsr_rows_done(const rsr_gpu_call &c, int j, int rows, int first, const int *v,
                                              float scale, int (*part)[8]) {
    const int warp = threadIdx.x >> 5, t = threadIdx.x;
    if ((threadIdx.x & 31) == 0)
        for (int r = 0; r < R; r++) part[warp][r] = v[r];
    __syncthreads();
    if (t < (int)(blockDim.x >> 5) / S * R) {
        const int blk = t / R, r = t % R, row = (first + blk) * R + r;
        if (row < rows) {
            int sum = 0;
            for (int i = 0; i < S; i++) sum += part[blk * S + i][r];
            if (c.out == RSR_OUT_INT) c.y[j][row] = sum;
            else c.h[row] = c.h[row] + rsr_dequant1(sum, c.beta[j], scale);
        }
    }
}

/* Pair (i, i + half) of a head from its integer sums, dequantised and rotated (rope: cos then sin). */
__device__ __forceinline__ void rsr_rope_pair(const int *acc, const float *f, float beta, float xs, const float *cs,
                                              int i, int half, float *out) {
    const float c = cs[i], sn = cs[half + i], x0 = rsr_value(acc, f, i, beta, xs), x1 = rsr_value(acc, f, i + half, beta, xs);
    out[i] = x0 * c - x1 * sn;
    out[i + half] = x1 * c + x0 * sn;
}

/*
 * Attention of one query head (a thread block), fused with what precedes it: q, and k and v of
 * this position, from their integer sums (dequantised with the x_scale of their input), RoPE from
 * the session's table (rope: [max_positions][head_dim], cos then sin, as the CPU computes them);
 * the first query head of each KV head writes k and v into the cache. Then softmax attention over
 * the pos + 1 keys: a thread per key for the scores (dims ascending), then the value sums split
 * over the block (a thread per dimension and share of the keys).
 * head_dim ≤ 256 (checked when the session is made).
 */
RSR_GPU_ENTRY(attend)(const int *acc_q, const int *acc_k, const int *acc_v, const float *f_q, const float *f_k,
                                      const float *f_v, float beta_q, float beta_k, float beta_v, const float *xs,
                                      const float *rope, int heads,
                                      int kv_heads, int head_dim, const rsr_step *step, float *k_cache,
                                      float *v_cache, float *scores, int max_positions, float *out) {
    __shared__ float sh[32], qs[256], kn[256], vn[256], part[1024];
    const int h = blockIdx.x, t = threadIdx.x, T = blockDim.x;
    const int d = head_dim, half = d / 2, pos = step->pos, n = pos + 1, group = heads / kv_heads, kvh = h / group;
    const int kv_out = kv_heads * d;
    const float s = *xs, *cs = rope + (long long)pos * d;
    for (int i = t; i < half; i += T) {
        rsr_rope_pair(acc_q + h * d, f_q ? f_q + h * d : f_q, beta_q, s, cs, i, half, qs);
        rsr_rope_pair(acc_k + kvh * d, f_k ? f_k + kvh * d : f_k, beta_k, s, cs, i, half, kn);
    }
    for (int i = t; i < d; i += T) vn[i] = rsr_value(acc_v, f_v, kvh * d + i, beta_v, s);
    __syncthreads();
    const float *kh = k_cache + kvh * d, *vh = v_cache + kvh * d;
    if (h % group == 0)
        for (int i = t; i < d; i += T) {
            k_cache[(long long)pos * kv_out + kvh * d + i] = kn[i];
            v_cache[(long long)pos * kv_out + kvh * d + i] = vn[i];
        }
    float *sc = scores + (long long)h * max_positions;
    const float scale = 1.0f / sqrtf((float)d);
    for (int j = t; j < n; j += T) { /* a thread per key: its row read whole, q from shared memory */
        const float *kj = j == pos ? kn : kh + (long long)j * kv_out;
        float dot = 0.0f;
#pragma unroll 8
        for (int i = 0; i < d; i++) dot += qs[i] * kj[i];
        sc[j] = dot * scale;
    }
    __syncthreads();
    float m = -__int_as_float(0x7f800000);
    for (int j = t; j < n; j += T) m = fmaxf(m, sc[j]);
    m = rsr_block_max(m, sh);
    float sum = 0.0f;
    for (int j = t; j < n; j += T) {
        const float e = expf(sc[j] - m);
        sc[j] = e;
        sum += e;
    }
    sum = rsr_block_sum(sum, sh); /* its barriers also publish sc[] to the whole block */
    const int parts = T / d, p = t / d, i = t % d;
    if (p < parts) { /* keys p, p + parts, ... of the cache in ascending order, this position's last */
        float o = 0.0f;
#pragma unroll 8
        for (int j = p; j < pos; j += parts) o += sc[j] * vh[(long long)j * kv_out + i];
        if (pos % parts == p) o += sc[pos] * vn[i];
        part[p * d + i] = o;
    }
    __syncthreads();
    for (int k = t; k < d; k += T) {
        float o = 0.0f;
        for (int q = 0; q < parts; q++) o += part[q * d + k];
        out[h * d + k] = o / sum;
    }
}
