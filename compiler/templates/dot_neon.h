typedef uint8x16_t rsr_codes;
typedef int32x4_t rsr_vacc, rsr_bacc;
static inline uint8x16_t rsr_field_of(uint8x16_t p, int i) {
    return i == 3 ? vshrq_n_u8(p, 6) : vandq_u8(vshlq_u8(p, vdupq_n_s8((int8_t)(-2 * i))), vdupq_n_u8(3));
}
#define rsr_field(w, i) rsr_field_of(vld1q_u8(w), i)
#define rsr_bdot(a, k, x) RSR_DOT(a, k, vld1q_s8(x))
static inline rsr_bacc rsr_bzero(void) { return vdupq_n_s32(0); }
static inline int32_t rsr_bsum(rsr_bacc a) { return vaddvq_s32(a); }
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
