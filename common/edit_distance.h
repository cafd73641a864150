/* edit_distance.h — the number of single-character edits between a[0, na) and b (a large number
 * past 64 characters): the did-you-mean of an unknown option or target, in rsrc and rsr-run. */
#ifndef RSR_EDIT_DISTANCE_H
#define RSR_EDIT_DISTANCE_H
#include <string.h>

static inline int edit_distance(const char *a, size_t n, const char *b) {
    size_t m = strlen(b);
    if (n > 64 || m > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}
#endif
