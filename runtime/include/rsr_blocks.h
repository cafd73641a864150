/* rsr_blocks.h — the group-scaled block formats of GGUF files (a scale per block of qk weights, each
 * weight scale·(code − 1)), read by the compiler (compiler/frontend/gguf_model.c: a matrix's codes)
 * and by the runtime (an embedding or LM head kept in its file's blocks: rsr_artifact.embed_dtype,
 * lm_head_dtype). One decoder of each, here:
 *   Q1_0   (ggml 41)  128 a block, {f16 d; u8 qs[16]}: bit j%8 of qs[j/8] set: +d, clear: −d
 *   Q2_0   (ggml 42)   64 a block, {f16 d; u8 qs[16]}: code (qs[j/4] >> 2(j%4)) & 3
 *   PQ2_0  (ggml 142) 128 a block, {f16 d; u8 qs[32]}: the same codes (PrismML's)
 *   PTQ1_0 (ggml 143) 128 a block, {u8 qs[24]; u8 qh[2]; f16 d}: element 16n + m is base-3 digit n of
 *          qs[m], 80 + 8n + m digit n of qs[16 + m], 120 + 2n + h digit n of qh[h]; digit n of byte
 *          b is ((u8)(b·3ⁿ)·3) >> 8 (PrismML's; docs/qwen35.md)
 * A block's codes are value + 1: Q1_0 gives 0 and 2, Q2_0 and PQ2_0 0..3, PTQ1_0 0..2.
 */
#ifndef RSR_BLOCKS_H
#define RSR_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "rsr_artifact.h"
#include "rsr_numerics.h"

/* Weights a block, 0 for a dtype that has no blocks (f32, f16, bf16: one element each). */
static inline uint32_t rsr_block_weights(int32_t dtype) {
    switch (dtype) {
    case RSR_DTYPE_Q2_0: return 64;
    case RSR_DTYPE_Q1_0:
    case RSR_DTYPE_PQ2_0:
    case RSR_DTYPE_PTQ1_0: return 128;
    default: return 0;
    }
}
static inline uint32_t rsr_block_bytes(int32_t dtype) {
    return dtype == RSR_DTYPE_PQ2_0 ? 34 : dtype == RSR_DTYPE_PTQ1_0 ? 28 : rsr_block_weights(dtype) ? 18 : 0;
}
/* The bytes of n elements (n a multiple of a block's weights) */
static inline size_t rsr_dtype_bytes(int32_t dtype, size_t n) {
    const uint32_t qk = rsr_block_weights(dtype);
    if (qk) return n / qk * rsr_block_bytes(dtype);
    return n * (dtype == RSR_DTYPE_F32 ? 4 : 2);
}

/* A block's scale, widened exactly */
static inline float rsr_block_scale(int32_t dtype, const uint8_t *blk) {
    const uint8_t *d = dtype == RSR_DTYPE_PTQ1_0 ? blk + 26 : blk;
    return rsr_f16_to_f32((uint16_t)(d[0] | d[1] << 8));
}

/* A block's codes (rsr_block_weights of them, each value + 1) */
static inline void rsr_block_codes(int32_t dtype, const uint8_t *blk, uint8_t *codes) {
    if (dtype == RSR_DTYPE_PTQ1_0) { /* byte by byte: its digits n = 0.. go to e = base + n·step */
        static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
        for (int at = 0; at < 26; at++) {
            const int base = at < 16 ? at : at < 24 ? 80 + at - 16 : 120 + at - 24;
            const int step = at < 16 ? 16 : at < 24 ? 8 : 2, digits = at < 24 ? 5 : 4;
            for (int n = 0; n < digits; n++)
                codes[base + n * step] = (uint8_t)(((uint16_t)(uint8_t)(blk[at] * pow3[n]) * 3) >> 8);
        }
        return;
    }
    const uint8_t *qs = blk + 2;
    const uint32_t qk = rsr_block_weights(dtype);
    if (dtype == RSR_DTYPE_Q1_0)
        for (uint32_t j = 0; j < qk; j++) codes[j] = (uint8_t)((qs[j / 8] >> (j % 8) & 1) * 2);
    else
        for (uint32_t j = 0; j < qk; j++) codes[j] = (uint8_t)(qs[j / 4] >> (2 * (j % 4)) & 3);
}

/* n weights (a multiple of a block's) from blocks as floats, scale·(code − 1) (exact in f32) */
static inline void rsr_blocks_floats(int32_t dtype, const uint8_t *blocks, size_t n, float *out) {
    const uint32_t qk = rsr_block_weights(dtype), bytes = rsr_block_bytes(dtype);
    uint8_t codes[128];
    for (size_t b = 0; b < n / qk; b++, blocks += bytes, out += qk) {
        const float d = rsr_block_scale(dtype, blocks);
        rsr_block_codes(dtype, blocks, codes);
        for (uint32_t j = 0; j < qk; j++) out[j] = d * (float)((int)codes[j] - 1);
    }
}

#endif
