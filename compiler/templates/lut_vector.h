/* tab[4g..4g+3]: group g's planes (kernel.c): low of triplets 0-1, of 2-3, high of 0-1, of 2-3 */
static inline void rsr_lut_tables(const int8_t *x, int32_t cols, int32_t groups, __m512i *tab) {
    const __m512i sel[2][3] = {{RSR_LUT_SEL00, RSR_LUT_SEL01, RSR_LUT_SEL02}, {RSR_LUT_SEL10, RSR_LUT_SEL11, RSR_LUT_SEL12}};
    const __mmask32 pos[3] = {RSR_LUT_POS0, RSR_LUT_POS1, RSR_LUT_POS2}, neg[3] = {RSR_LUT_NEG0, RSR_LUT_NEG1, RSR_LUT_NEG2};
    const __m512i plane[2] = {RSR_LUT_PLANE0, RSR_LUT_PLANE1};
    for (int32_t g = 0; g < groups; g++) {
        int32_t left = cols - RSR_LUT_GROUP_COLS * g;
        __mmask32 m = (1u << (left < RSR_LUT_GROUP_COLS ? left : RSR_LUT_GROUP_COLS)) - 1;
        __m512i xw = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, x + RSR_LUT_GROUP_COLS * g));
        for (int h = 0; h < 2; h++) {
            __m512i v = _mm512_setzero_si512();
            for (int j = 0; j < 3; j++) {
                __m512i xj = _mm512_permutexvar_epi16(sel[h][j], xw);
                v = _mm512_mask_sub_epi16(_mm512_mask_add_epi16(v, pos[j], v, xj), neg[j], v, xj);
            }
            __m512i nv = _mm512_sub_epi16(_mm512_setzero_si512(), v);
            tab[4 * g + h] = _mm512_permutex2var_epi8(v, plane[0], nv);
            tab[4 * g + 2 + h] = _mm512_permutex2var_epi8(v, plane[1], nv);
        }
    }
}
/* nb blocks (1 or RSR_LUT_NB) from w, stride apart: per group the tables are loaded once for all of
 * them (they outgrow L1). Rows 16h + k: Σ low bytes in lo, Σ high bytes in hi, 256·hi + lo. */
static inline __attribute__((always_inline)) void rsr_lut_blocks(const uint8_t *w, size_t stride, const __m512i *tab,
                                                              int32_t groups, int32_t *y, int32_t nrows, const int nb) {
    const __m512i low = _mm512_set1_epi8(0x0f), bit4 = _mm512_set1_epi8(0x10), one = _mm512_set1_epi8(1);
    const __m512i quarter = RSR_LUT_QUARTER;
    __m512i lo[2 * RSR_LUT_NB], hi[2 * RSR_LUT_NB];
#pragma GCC unroll 8
    for (int j = 0; j < 2 * nb; j++) lo[j] = hi[j] = _mm512_setzero_si512();
    for (int32_t g = 0; g < groups; g++) {
        const __m512i *t = tab + 4 * g;
        const __m512i t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3];
#pragma GCC unroll 4
        for (int j = 0; j < nb; j++) {
            const uint8_t *wg = w + j * stride + (size_t)g * RSR_LUT_GROUP_BYTES;
            __m512i p = _mm512_loadu_si512((const void *)wg);
            __m512i idx[2] = {_mm512_ternarylogic_epi32(p, low, quarter, 0xea),
                              _mm512_ternarylogic_epi32(_mm512_srli_epi16(p, 4), low, quarter, 0xea)};
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m512i i = _mm512_mask_add_epi8(idx[h], _load_mask64((__mmask64 *)(wg + RSR_LUT_MASKS + 8 * h)), idx[h], bit4);
                lo[2 * j + h] = _mm512_dpbusd_epi32(lo[2 * j + h], _mm512_permutex2var_epi8(t0, i, t1), one);
                hi[2 * j + h] = _mm512_dpbusd_epi32(hi[2 * j + h], one, _mm512_permutex2var_epi8(t2, i, t3));
            }
        }
    }
    for (int j = 0; j < nb; j++) {
        int32_t out[32];
        for (int h = 0; h < 2; h++)
            _mm512_storeu_si512((void *)(out + 16 * h), _mm512_add_epi32(_mm512_slli_epi32(hi[2 * j + h], 8), lo[2 * j + h]));
        for (int32_t r = 0; r < nrows - 32 * j && r < 32; r++) y[32 * j + r] = out[r];
    }
}

