typedef __m256i rsr_codes, rsr_bacc;
#define rsr_field(w, i) _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const void *)(w)), 2 * (i)), _mm256_set1_epi8(3))
#define rsr_bdot(a, k, x) RSR_DOT(a, k, _mm256_loadu_si256((const void *)(x)))
static inline rsr_bacc rsr_bzero(void) { return _mm256_setzero_si256(); }
static inline int32_t rsr_bsum(rsr_bacc a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}
typedef int32_t rsr_s4 __attribute__((vector_size(16))); /* four rows' sums (rsr_bsum4) */
typedef int32_t rsr_s4u __attribute__((vector_size(16), aligned(4))); /* rsr_s4 at any int32 */
static inline rsr_s4 rsr_bsum4(rsr_bacc a, rsr_bacc b, rsr_bacc c, rsr_bacc d) { /* lane r: Σ of the r-th */
    __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return (rsr_s4)_mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}
typedef __m256i rsr_vacc;
static inline rsr_vacc rsr_vzero(void) { return _mm256_setzero_si256(); }
static inline rsr_vacc rsr_dot4(rsr_vacc acc, const uint8_t *w, const int8_t *x) {
    __m256i p = _mm256_loadu_si256((const void *)w), m = _mm256_set1_epi8(3);
    acc = RSR_DOT(acc, _mm256_and_si256(p, m), _mm256_loadu_si256((const void *)(x + 0)));
    acc = RSR_DOT(acc, _mm256_and_si256(_mm256_srli_epi16(p, 2), m), _mm256_loadu_si256((const void *)(x + 32)));
    acc = RSR_DOT(acc, _mm256_and_si256(_mm256_srli_epi16(p, 4), m), _mm256_loadu_si256((const void *)(x + 64)));
    acc = RSR_DOT(acc, _mm256_and_si256(_mm256_srli_epi16(p, 6), m), _mm256_loadu_si256((const void *)(x + 96)));
    return acc;
}
static inline rsr_vacc rsr_sum4(rsr_vacc acc, const int8_t *x) {
    __m256i one = _mm256_set1_epi8(1);
    acc = RSR_DOT(acc, one, _mm256_loadu_si256((const void *)(x + 0)));
    acc = RSR_DOT(acc, one, _mm256_loadu_si256((const void *)(x + 32)));
    acc = RSR_DOT(acc, one, _mm256_loadu_si256((const void *)(x + 64)));
    acc = RSR_DOT(acc, one, _mm256_loadu_si256((const void *)(x + 96)));
    return acc;
}
static inline int32_t rsr_vsum(rsr_vacc a) { return rsr_bsum(a); }

/* AVX2's pair sums (dot_isa_pair_sums): a group's four fields added as vpmaddubsw's 16-bit pair
 * sums, widened to int32 once per run of groups (kernel.c: at most 16 groups, within int16) */
typedef __m256i rsr_vacc16;
static inline rsr_vacc16 rsr_vzero16(void) { return _mm256_setzero_si256(); }
static inline rsr_vacc16 rsr_dot4p(rsr_vacc16 h, const uint8_t *w, const int8_t *x) {
    for (int i = 0; i < 4; i++)
        h = _mm256_add_epi16(h, _mm256_maddubs_epi16(rsr_field(w, i), _mm256_loadu_si256((const void *)(x + 32 * i))));
    return h;
}
static inline rsr_vacc16 rsr_bdotp(rsr_vacc16 h, rsr_codes k, const int8_t *x) {
    return _mm256_add_epi16(h, _mm256_maddubs_epi16(k, _mm256_loadu_si256((const void *)x)));
}
static inline rsr_vacc rsr_widen(rsr_vacc acc, rsr_vacc16 h) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(h, _mm256_set1_epi16(1)));
}
/* rows in lanes (lower.c, lower_i2_rows): codes of 8 rows × 4 columns against the 4 bytes of x
 * at those columns, in every lane; a row's sum is then one int32 lane, stored 4 rows a half */
static inline rsr_vacc16 rsr_qdot(rsr_vacc16 h, rsr_codes k, const int8_t *x) {
    int32_t q;
    __builtin_memcpy(&q, x, 4);
    return _mm256_add_epi16(h, _mm256_maddubs_epi16(k, _mm256_set1_epi32(q)));
}
#define rsr_half(a, i) ((rsr_s4)((i) ? _mm256_extracti128_si256((a), 1) : _mm256_castsi256_si128(a)))
/* the same with the ISA's dot product straight into the int32 lanes (VNNI), from v in every lane,
 * all the lanes stored at once */
static inline rsr_bacc rsr_qdotd(rsr_bacc a, rsr_codes k, const int8_t *x) {
    int32_t q;
    __builtin_memcpy(&q, x, 4);
    return RSR_DOT(a, k, _mm256_set1_epi32(q));
}
#define rsr_lane(a, i) ((__v8si)(a))[i]
static inline rsr_bacc rsr_bsplat(int32_t v) { return _mm256_set1_epi32(v); }
static inline void rsr_bstore(int32_t *p, rsr_bacc a) { _mm256_storeu_si256((void *)p, a); }
