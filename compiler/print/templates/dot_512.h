typedef __m512i rsr_codes, rsr_bacc;
#define rsr_field(w, i) _mm512_and_si512(_mm512_srli_epi16(_mm512_loadu_si512((const void *)(w)), 2 * (i)), _mm512_set1_epi8(3))
#define rsr_bdot(a, k, x) RSR_DOT(a, k, _mm512_loadu_si512((const void *)(x)))
static inline rsr_bacc rsr_bzero(void) { return _mm512_setzero_si512(); }
static inline int32_t rsr_bsum(rsr_bacc a) { return _mm512_reduce_add_epi32(a); }
typedef int32_t rsr_s4 __attribute__((vector_size(16))); /* four rows' sums (rsr_bsum4) */
typedef int32_t rsr_s4u __attribute__((vector_size(16), aligned(4))); /* rsr_s4 at any int32 */
static inline __m256i rsr_bhalves(__m512i a) {
    return _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
}
static inline rsr_s4 rsr_bsum4(rsr_bacc a, rsr_bacc b, rsr_bacc c, rsr_bacc d) { /* lane r: Σ of the r-th */
    __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(rsr_bhalves(a), rsr_bhalves(b)),
                                  _mm256_hadd_epi32(rsr_bhalves(c), rsr_bhalves(d)));
    return (rsr_s4)_mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}
/* the tiles' pair sums (dot_isa_tile_pair_sums): a field's vpmaddubsw pair sums added in 16 bits
 * for a run of groups, widened into the tile's int32 sums once a run */
typedef __m512i rsr_vacc16;
static inline rsr_vacc16 rsr_vzero16(void) { return _mm512_setzero_si512(); }
static inline rsr_vacc16 rsr_bdotp(rsr_vacc16 h, rsr_codes k, const int8_t *x) {
    return _mm512_add_epi16(h, _mm512_maddubs_epi16(k, _mm512_loadu_si512((const void *)x)));
}
static inline rsr_bacc rsr_widen(rsr_bacc acc, rsr_vacc16 h) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(h, _mm512_set1_epi16(1)));
}
/* i2 per unit with rows in lanes (lower.c, lower_i2_rows): codes of 16 rows × 4 columns against the
 * 4 bytes of x at those columns, in every lane, straight into the rows' int32 lanes; from v in
 * every lane, and all 16 rows stored at once */
static inline rsr_bacc rsr_qdotd(rsr_bacc a, rsr_codes k, const int8_t *x) {
    int32_t q;
    __builtin_memcpy(&q, x, 4);
    return RSR_DOT(a, k, _mm512_set1_epi32(q));
}
#define rsr_lane(a, i) ((__v16si)(a))[i]
static inline rsr_bacc rsr_bsplat(int32_t v) { return _mm512_set1_epi32(v); }
static inline void rsr_bstore(int32_t *p, rsr_bacc a) { _mm512_storeu_si512((void *)p, a); }
typedef struct { __m512i f[4]; } rsr_vacc;
static inline rsr_vacc rsr_vzero(void) {
    rsr_vacc a = {{_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()}};
    return a;
}
static inline rsr_vacc rsr_dot4(rsr_vacc a, const uint8_t *w, const int8_t *x) {
    __m512i p = _mm512_loadu_si512((const void *)w);
    a.f[0] = RSR_DOT(a.f[0], _mm512_and_si512(p, _mm512_set1_epi8(3)), _mm512_loadu_si512((const void *)(x + 0)));
    a.f[1] = RSR_DOT(a.f[1], _mm512_and_si512(p, _mm512_set1_epi8(12)), _mm512_loadu_si512((const void *)(x + 64)));
    a.f[2] = RSR_DOT(a.f[2], _mm512_and_si512(p, _mm512_set1_epi8(48)), _mm512_loadu_si512((const void *)(x + 128)));
    a.f[3] = RSR_DOT(a.f[3], _mm512_and_si512(p, _mm512_set1_epi8((char)0xc0)), _mm512_loadu_si512((const void *)(x + 192)));
    return a;
}
static inline rsr_vacc rsr_sum4(rsr_vacc a, const int8_t *x) {
    __m512i one = _mm512_set1_epi8(1);
    a.f[0] = RSR_DOT(a.f[0], one, _mm512_loadu_si512((const void *)(x + 0)));
    a.f[0] = RSR_DOT(a.f[0], one, _mm512_loadu_si512((const void *)(x + 64)));
    a.f[0] = RSR_DOT(a.f[0], one, _mm512_loadu_si512((const void *)(x + 128)));
    a.f[0] = RSR_DOT(a.f[0], one, _mm512_loadu_si512((const void *)(x + 192)));
    return a;
}
static inline int32_t rsr_vsum(rsr_vacc a) {
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(a.f[0], _mm512_srai_epi32(a.f[1], 2)),
                                 _mm512_add_epi32(_mm512_srai_epi32(a.f[2], 4), _mm512_srai_epi32(a.f[3], 6)));
    return _mm512_reduce_add_epi32(s);
}

