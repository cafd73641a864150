typedef int32_t rsr_vacc;
static inline rsr_vacc rsr_vzero(void) { return 0; }
static inline rsr_vacc rsr_dot4(rsr_vacc acc, const uint8_t *w, const int8_t *x) {
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 16; j++) acc += (int32_t)((w[j] >> (2 * i)) & 3) * x[16 * i + j];
    return acc;
}
static inline rsr_vacc rsr_sum4(rsr_vacc acc, const int8_t *x) {
    for (int j = 0; j < 64; j++) acc += x[j];
    return acc;
}
static inline int32_t rsr_vsum(rsr_vacc a) { return a; }
typedef struct { uint8_t c[16]; } rsr_codes;
static inline rsr_codes rsr_field(const uint8_t *w, int i) {
    rsr_codes k;
    for (int j = 0; j < 16; j++) k.c[j] = (uint8_t)((w[j] >> (2 * i)) & 3);
    return k;
}
typedef int32_t rsr_bacc;
static inline rsr_bacc rsr_bzero(void) { return 0; }
static inline rsr_bacc rsr_bdot(rsr_bacc a, rsr_codes k, const int8_t *x) {
    for (int j = 0; j < 16; j++) a += (int32_t)k.c[j] * x[j];
    return a;
}
static inline int32_t rsr_bsum(rsr_bacc a) { return a; }
typedef int32_t rsr_s4 __attribute__((vector_size(16))); /* four rows' sums (rsr_bsum4) */
typedef int32_t rsr_s4u __attribute__((vector_size(16), aligned(4))); /* rsr_s4 at any int32 */
static inline rsr_s4 rsr_bsum4(rsr_bacc a, rsr_bacc b, rsr_bacc c, rsr_bacc d) { return (rsr_s4){a, b, c, d}; }

