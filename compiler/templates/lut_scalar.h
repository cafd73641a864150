/* tab[32·t + n]: pattern n's sum over triplet t of x (zero past cols) */
static inline void rsr_lut_tables(const int8_t *x, int32_t cols, int32_t triplets, int16_t *tab) {
    for (int32_t t = 0; t < triplets; t++)
        for (int n = 0; n < 32; n++) {
            int32_t v = 0;
            for (int j = 0; j < 3; j++) v += 3 * t + j < cols ? rsr_lut_digits[n][j] * x[3 * t + j] : 0;
            tab[32 * t + n] = (int16_t)v;
        }
}
/* row r (0..31) of a block over groups [0, groups) */
static inline int32_t rsr_lut_row(const uint8_t *w, const int16_t *tab, int32_t groups, int r) {
    int32_t sum = 0;
    for (int32_t g = 0; g < groups; g++) {
        const uint8_t *wg = w + (size_t)g * RSR_LUT_GROUP_BYTES;
        for (int L = 0; L < 4; L++) {
            int bit = 4 * (r % 16) + L, nib = wg[bit], n = r < 16 ? nib & 15 : nib >> 4;
            n |= ((wg[RSR_LUT_MASKS + 8 * (r / 16) + bit / 8] >> (bit % 8)) & 1) << 4;
            sum += tab[32 * (4 * g + L) + n];
        }
    }
    return sum;
}

