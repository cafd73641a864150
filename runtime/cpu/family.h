/*
 * family.h — the kernels of a family (cpu.h) other than attention's, each written with its
 * family's intrinsics in the family's file, beside the family's attention vocabulary
 * (attn_generic.h): family_avx512.c, family_avx2.c, family_neon.c (the group-scaled kernel only;
 * family_portable.c has none of these: there the callers' C is the kernel). forward.c, lm_head.c and louver.c
 * (louver_kernels.h) call them when rt_cpu_isa() is their family; each gives the bits of the C it
 * stands for.
 */
#ifndef RSR_RUNTIME_FAMILY_H
#define RSR_RUNTIME_FAMILY_H

#include <stddef.h>
#include <stdint.h>

#define RT_HEAD_ROWS 4 /* the rows of a block of rt_head_dot_q8_vnni_rows (lm_head.c blocks by it) */

/* rsrc's f16 group scales (each zero or a normal f16 value) widened to f32 bits exactly by integer
 * operations, on a vector h of u32 lanes each holding one f16: forward.c's scales16 and the
 * families' group-scaled kernels (units_generic.h) share it; forward.c's scale_f16 is the same on
 * one scalar. */
#define RT_F16_BITS(h)                                                                                                 \
    ((((h)&0x8000u) << 16) | (((((h)&0x7fffu) << 13) + 0x38000000u) & (__typeof__(h))(((h)&0x7fffu) != 0)))

/* lm_head.c's codes head (lm_head.c, "the codes head"): a vector x as rt_head_dot_codes_vnni reads
 * it, for rows of `groups` groups of 256 weights, each group 64 bytes of 2-bit codes (value + 1)
 * whose byte t holds in bits 2p, 2p + 1 the weight p·(qk/4) + t mod (qk/4) of the group's block
 * t / (qk/4). hi and lo: x's int16 quantisation xq = 128·hi + lo (|xq| <= 16383, 0 <= lo < 128)
 * laid out as the codes' planes, 256 bytes a group (plane p: 64 bytes); sl: per group, each of the
 * 16 int32 lanes' Σ xq over the 16 weights it covers; lane_block: the block (of the group's
 * blocks_a_group) each lane's 4 bytes fall in. */
typedef struct rt_head_x {
    const int8_t *hi, *lo;
    const int32_t *sl;
    int32_t lane_block[16];
    int32_t groups, blocks_a_group;
} rt_head_x;

/* the families with a kernel of their own for the group-scaled layouts (units_generic.h): x86's,
 * and NEON's where its sdot intrinsics compile in a function of its own (gcc's target attribute;
 * clang declares them only for a file built with dotprod) */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RT_UNITS_KERNELS 1
#elif defined(__aarch64__) && ((defined(__GNUC__) && !defined(__clang__)) || defined(__ARM_FEATURE_DOTPROD))
#define RT_UNITS_KERNELS 1
#define RT_UNITS_NEON 1
#else
#define RT_UNITS_KERNELS 0
#endif

/* forward.c, a group-scaled step: a matrix whose codes lie as RSR_UNITS_ROWS16 says
 * (rsr_artifact.h; or ROWS8, ROWS4 and the base-3 ones), the blocks [b0, b1) of 16 (8, 4) rows
 * for ntok tokens with the conversion to fp32 fused: y[t·y_stride + r] (=, or += when accumulate) Σ_u ((float)S_u · scale_u[r]) · xd[t][u],
 * units ascending, S_u the unit's exact int32 sum — the bits of the kernel's sums converted by
 * forward.c's group_dequantize, without the sums going through memory. */
typedef struct rt_units_call {
    const uint8_t *data;              /* the matrix's codes */
    const void *gs;                   /* its group scales, [cols / scale_cols][rows] */
    int f16;                          /* gs in f16 (else f32) */
    int32_t rows, units, groups, per; /* groups: of 16 columns a unit; per: units a group scale covers */
    const int8_t *x; /* token t's codes at x + t·x_stride, then each unit's Σx and scale (xd[t][u]) */
    int32_t x_stride, sums_at, scales_at; /* rsr_x_sums_at, rsr_x_scales_at */
    float *y;
    size_t y_stride;
    int32_t ntok, b0, b1, accumulate;
    int base3; /* the codes in a base-3 layout (RSR_UNITS_B3_ROWS16, RSR_UNITS_B3_ROWS8; groups 2) */
} rt_units_call;
#ifdef RT_UNITS_NEON
void rt_units_rows4_sdot(const rt_units_call *c); /* RSR_UNITS_ROWS4, with dotprod: the same bits */
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* forward.c: the per-token absmax quantisation to int8 (quantize_scalar's bits); returns x_scale. */
float rt_quantize_avx512(int8_t *q, const float *x, int32_t n);
float rt_quantize_avx2(int8_t *q, const float *x, int32_t n);
float rt_quantize_block_avx2(int8_t *q, const float *x, int32_t n); /* one block of 32·k, returns amax */

/* lm_head.c, the int8 head: Σ (w + 128)·x over n entries (a multiple of 64; the caller removes
 * 128·Σ x), and the same for RT_HEAD_ROWS rows (row r at w + r·stride) with each of k vectors at
 * once: sums[r·k + j] (the vectors four at a time, each block of rows read once for those four). */
int32_t rt_head_dot_q8_vnni(const uint8_t *w, const int16_t *x, int32_t n);
void rt_head_dot_q8_vnni_rows(const uint8_t *w, int32_t stride, const int16_t *const *x, int32_t k, int32_t n,
                              int32_t *sums);
int32_t rt_head_dot_q8_avx2(const uint8_t *w, const int16_t *x, int32_t n);

float rt_head_dot_codes_vnni(const uint8_t *codes, const float *scales, const rt_head_x *x);
float rt_head_dot_codes_avx2(const uint8_t *codes, const float *scales, const rt_head_x *x); /* the same bits */

void rt_units_rows16_vnni(const rt_units_call *c); /* and RSR_UNITS_B3_ROWS16 */
void rt_units_rows8_avx2(const rt_units_call *c);  /* RSR_UNITS_ROWS8 and B3_ROWS8, the same bits */
/* rsr_b3_to_i2 of one block of RSR_UNITS_B3_ROWS16 (16 rows; the AVX-512 VNNI family) or B3_ROWS8 (8 rows; AVX2),
 * units of 32 columns: the same bytes */
void rt_b3_to_i2_rows16_vnni(const uint8_t *b3, int32_t units, uint8_t *i2);
void rt_b3_to_i2_rows8_avx2(const uint8_t *b3, int32_t units, uint8_t *i2);

#endif

#endif
