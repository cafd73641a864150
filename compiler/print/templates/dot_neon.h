typedef uint8x16_t rsr_codes;
typedef int32x4_t rsr_vacc, rsr_bacc;
static inline uint8x16_t rsr_field_of(uint8x16_t p, int i) {
    return i == 3 ? vshrq_n_u8(p, 6) : vandq_u8(vshlq_u8(p, vdupq_n_s8((int8_t)(-2 * i))), vdupq_n_u8(3));
}
#define rsr_field(w, i) rsr_field_of(vld1q_u8(w), i)
#define rsr_bdot(a, k, x) RSR_DOT(a, k, vld1q_s8(x))
static inline rsr_bacc rsr_bzero(void) { return vdupq_n_s32(0); }
static inline int32_t rsr_bsum(rsr_bacc a) { return vaddvq_s32(a); }
typedef int32_t rsr_s4 __attribute__((vector_size(16))); /* four rows' sums (rsr_bsum4) */
typedef int32_t rsr_s4u __attribute__((vector_size(16), aligned(4))); /* rsr_s4 at any int32 */
static inline rsr_s4 rsr_bsum4(rsr_bacc a, rsr_bacc b, rsr_bacc c, rsr_bacc d) { /* lane r: Σ of the r-th */
    return (rsr_s4)vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
}
/* rows in lanes (lower.c, lower_i2_rows; SDOT): codes of 4 rows × 4 columns against the 4 bytes
 * of x at those columns, in every lane, straight into the rows' int32 lanes, stored at once */
static inline rsr_bacc rsr_qdotd(rsr_bacc a, rsr_codes k, const int8_t *x) {
    int32_t q;
    __builtin_memcpy(&q, x, 4);
    return RSR_DOT(a, k, vreinterpretq_s8_s32(vdupq_n_s32(q)));
}
static inline rsr_bacc rsr_bsplat(int32_t v) { return vdupq_n_s32(v); }
static inline void rsr_bstore(int32_t *p, rsr_bacc a) { vst1q_s32(p, a); }
static inline rsr_vacc rsr_vzero(void) { return vdupq_n_s32(0); }
static inline rsr_vacc rsr_dot4(rsr_vacc acc, const uint8_t *w, const int8_t *x) {
    uint8x16_t p = vld1q_u8(w), m = vdupq_n_u8(3);
    acc = RSR_DOT(acc, vandq_u8(p, m), vld1q_s8(x + 0));
    acc = RSR_DOT(acc, vandq_u8(vshrq_n_u8(p, 2), m), vld1q_s8(x + 16));
    acc = RSR_DOT(acc, vandq_u8(vshrq_n_u8(p, 4), m), vld1q_s8(x + 32));
    acc = RSR_DOT(acc, vshrq_n_u8(p, 6), vld1q_s8(x + 48));
    return acc;
}
static inline rsr_vacc rsr_sum4(rsr_vacc acc, const int8_t *x) {
    uint8x16_t one = vdupq_n_u8(1);
    acc = RSR_DOT(acc, one, vld1q_s8(x + 0));
    acc = RSR_DOT(acc, one, vld1q_s8(x + 16));
    acc = RSR_DOT(acc, one, vld1q_s8(x + 32));
    acc = RSR_DOT(acc, one, vld1q_s8(x + 48));
    return acc;
}
static inline int32_t rsr_vsum(rsr_vacc a) { return vaddvq_s32(a); }
#ifdef __ARM_FEATURE_MATMUL_INT8
/* smmla: r (2 × 2 int32, lane 2i + j) += rows i of a × rows j of b, 8 bytes each: a pair holds two
 * rows' (or tokens') 16 bytes as their low halves side by side (lo) and their high halves (hi) */
typedef struct { int8x16_t lo, hi; } rsr_pair;
static inline rsr_pair rsr_pair_of(int8x16_t a, int8x16_t b) {
    int64x2_t p = vreinterpretq_s64_s8(a), q = vreinterpretq_s64_s8(b);
    rsr_pair r = {vreinterpretq_s8_s64(vzip1q_s64(p, q)), vreinterpretq_s8_s64(vzip2q_s64(p, q))};
    return r;
}
#define rsr_pair(a, b) rsr_pair_of(vreinterpretq_s8_u8(a), vreinterpretq_s8_u8(b))
#define rsr_xpair(x0, x1) rsr_pair_of(vld1q_s8(x0), vld1q_s8(x1))
static inline rsr_bacc rsr_mmla(rsr_bacc acc, rsr_pair rows, rsr_pair tokens) {
    return vmmlaq_s32(vmmlaq_s32(acc, rows.lo, tokens.lo), rows.hi, tokens.hi);
}
#define rsr_lane(a, i) vgetq_lane_s32(a, i)
#endif
