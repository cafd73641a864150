/*
 * rsr_kernels.cu — the runtime's own GPU kernels: everything of a token except the ternary
 * matrices. rsrc prints this text at the top of every CUDA module it generates (the matrix
 * kernels follow it), and NVRTC compiles the whole module into the artifact's PTX, so the
 * runtime (cuda/gpu_forward.c) finds these entries next to rsr_kernel_N.
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

/* h = embed[token]: one thread per element. */
extern "C" __global__ void rsr_embed(const unsigned char *table, int dtype, int hidden, const rsr_step *step,
                                     float *h) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= hidden) return;
    const unsigned char *row = table + (long long)step->token * hidden * (dtype == 0 ? 4 : 2);
    h[i] = rsr_load_elem(row, dtype, i);
}

/*
 * The int8 input of a BitLinear layer, in one thread block:
 *   y = norm ? rmsnorm(x) * w : x;  if bitlinear_norm: y = rmsnorm(y) (no weight, Falcon-E);
 *   x_scale = 127 / max(max|y|, 1e-5);  xq = clamp(rint(y * x_scale), -128, 127), zero to n_pad.
 * y is written to `y` (the normed activation), x_scale to *xs. Each thread owns the elements
 * i ≡ threadIdx.x (mod blockDim.x), so only the reductions need the whole block.
 */
extern "C" __global__ void rsr_quantize(const float *x, const float *w, int norm, float eps, int bitlinear_norm,
                                        float bitlinear_eps, int n, int n_pad, float *y, signed char *xq,
                                        float *xs) {
    __shared__ float sh[32];
    const int t = threadIdx.x, T = blockDim.x;
    if (norm) {
        float ss = 0.0f;
        for (int i = t; i < n; i += T) ss += x[i] * x[i];
        ss = rsr_block_sum(ss, sh);
        float inv = 1.0f / sqrtf(ss / (float)n + eps);
        for (int i = t; i < n; i += T) y[i] = (x[i] * inv) * w[i];
    } else {
        for (int i = t; i < n; i += T) y[i] = x[i];
    }
    if (bitlinear_norm) {
        float ss = 0.0f;
        for (int i = t; i < n; i += T) ss += y[i] * y[i];
        ss = rsr_block_sum(ss, sh);
        float inv = 1.0f / sqrtf(ss / (float)n + bitlinear_eps);
        for (int i = t; i < n; i += T) y[i] = y[i] * inv;
    }
    float amax = 0.0f;
    for (int i = t; i < n; i += T) amax = fmaxf(amax, fabsf(y[i]));
    amax = rsr_block_max(amax, sh);
    float scale = 127.0f / fmaxf(amax, 1e-5f);
    for (int i = t; i < n; i += T) xq[i] = (signed char)fminf(fmaxf(rintf(y[i] * scale), -128.0f), 127.0f);
    for (int i = n + t; i < n_pad; i += T) xq[i] = 0; /* i2 kernels read whole groups of columns */
    if (t == 0) *xs = scale;
}

__device__ __forceinline__ float rsr_dequant1(int acc, float beta, float xs) { return ((float)acc * beta) / xs; }

/*
 * q, k, v from their integer sums, RoPE on q and k (Hugging Face rotate_half: pairs i, i + d/2),
 * k and v written into the cache at the step's position. Thread t rotates pair t of q (when
 * t < q_out/2), pair t of k (t < kv_out/2) and copies v[t] (t < kv_out).
 */
extern "C" __global__ void rsr_qkv_rope(const int *acc_q, const int *acc_k, const int *acc_v, float beta_q,
                                        float beta_k, float beta_v, const float *xs, int q_out, int kv_out,
                                        int head_dim, double theta, const rsr_step *step, float *q,
                                        float *k_cache, float *v_cache) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    const int half = head_dim / 2, pos = step->pos;
    const float s = *xs;
    float *kc = k_cache + (long long)pos * kv_out, *vc = v_cache + (long long)pos * kv_out;
    if (t < kv_out) vc[t] = rsr_dequant1(acc_v[t], beta_v, s);
    for (int which = 0; which < 2; which++) {
        int n = which ? kv_out : q_out;
        if (t >= n / 2) continue;
        int head = t / half, i = t % half, a = head * head_dim + i, b = a + half;
        double inv_freq = pow(theta, -2.0 * i / head_dim), ang = pos * inv_freq;
        float c = (float)cos(ang), sn = (float)sin(ang);
        const int *acc = which ? acc_k : acc_q;
        float beta = which ? beta_k : beta_q, *out = which ? kc : q;
        float x0 = rsr_dequant1(acc[a], beta, s), x1 = rsr_dequant1(acc[b], beta, s);
        out[a] = x0 * c - x1 * sn;
        out[b] = x1 * c + x0 * sn;
    }
}

/*
 * Softmax attention of one query head (one thread block) over the pos + 1 cached keys:
 * s_j = (Σ_i q·k_j) · 1/sqrt(d) with i ascending, e_j = exp(s_j − max), o = Σ_j e_j v_j / Σ e_j
 * with j ascending. scores: [heads][max_positions] floats of scratch.
 */
extern "C" __global__ void rsr_attention(const float *q, const float *k_cache, const float *v_cache, int heads,
                                         int kv_heads, int head_dim, const rsr_step *step, float *scores,
                                         int max_positions, float *out) {
    __shared__ float sh[32];
    const int h = blockIdx.x, t = threadIdx.x, T = blockDim.x, n = step->pos + 1;
    const int kv_out = kv_heads * head_dim, kvh = h / (heads / kv_heads);
    const float *qh = q + h * head_dim, *kh = k_cache + kvh * head_dim, *vh = v_cache + kvh * head_dim;
    float *sc = scores + (long long)h * max_positions;
    const float scale = 1.0f / sqrtf((float)head_dim);
    float m = -__int_as_float(0x7f800000);
    for (int j = t; j < n; j += T) {
        const float *kj = kh + (long long)j * kv_out;
        float dot = 0.0f;
        for (int i = 0; i < head_dim; i++) dot += qh[i] * kj[i];
        sc[j] = dot * scale;
        m = fmaxf(m, sc[j]);
    }
    m = rsr_block_max(m, sh);
    float sum = 0.0f;
    for (int j = t; j < n; j += T) {
        float e = expf(sc[j] - m);
        sc[j] = e;
        sum += e;
    }
    sum = rsr_block_sum(sum, sh); /* its barriers also publish sc[] to the whole block */
    for (int i = t; i < head_dim; i += T) {
        float o = 0.0f;
        for (int j = 0; j < n; j++) o += sc[j] * vh[(long long)j * kv_out + i];
        out[h * head_dim + i] = o / sum;
    }
}

/* y (=, or += when accumulate) = acc · beta / x_scale. */
extern "C" __global__ void rsr_dequant(const int *acc, float beta, const float *xs, int n, int accumulate, float *y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = rsr_dequant1(acc[i], beta, *xs);
    y[i] = accumulate ? y[i] + v : v;
}

/* The gated FFN activation from the integer sums of gate and up: relu²(g)·u or silu(g)·u. */
extern "C" __global__ void rsr_glu(const int *acc_gate, const int *acc_up, float beta_gate, float beta_up,
                                   const float *xs, int n, int silu, float *out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float s = *xs, g = rsr_dequant1(acc_gate[i], beta_gate, s), u = rsr_dequant1(acc_up[i], beta_up, s);
    if (silu) {
        out[i] = (g / (1.0f + expf(-g))) * u;
    } else {
        float r = fmaxf(g, 0.0f);
        out[i] = r * r * u;
    }
}

/*
 * logits[v] = Σ_i x[i] · head[v][i]: a warp per row. bf16 rows with hidden % 8 == 0 are read 16
 * bytes per lane (a warp reads 512 contiguous bytes per step); other rows element by element.
 */
extern "C" __global__ void rsr_lm_head(const unsigned char *head, int dtype, const float *x, int hidden, int vocab,
                                       float *logits) {
    const int lane = threadIdx.x & 31, v = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (v >= vocab) return;
    const unsigned char *row = head + (long long)v * hidden * (dtype == 0 ? 4 : 2);
    float acc = 0.0f;
    if (dtype == 2 && hidden % 8 == 0) {
        const uint4 *r = (const uint4 *)row;
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
}

/* The greedy token: the first index of the largest logit (rsr_sample_greedy's rule), one block. */
extern "C" __global__ void rsr_argmax(const float *logits, int vocab, int *out) {
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    const int t = threadIdx.x, lane = t & 31, warp = t >> 5, warps = blockDim.x >> 5;
    float bv = -__int_as_float(0x7f800000);
    int bi = 0x7fffffff;
    for (int i = t; i < vocab; i += blockDim.x)
        if (logits[i] > bv) bv = logits[i], bi = i;
    for (int pass = 0; pass < 2; pass++) {
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(RSR_FULL_MASK, bv, o);
            int oi = __shfl_xor_sync(RSR_FULL_MASK, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
        }
        if (pass) break;
        if (lane == 0) best_v[warp] = bv, best_i[warp] = bi;
        __syncthreads();
        if (warp != 0) return;
        bv = lane < warps ? best_v[lane] : -__int_as_float(0x7f800000);
        bi = lane < warps ? best_i[lane] : 0x7fffffff;
    }
    if (t == 0) *out = bi == 0x7fffffff ? 0 : bi;
}
