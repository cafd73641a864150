/*
 * rsr-cmpf32 — compares two files of raw little-endian fp32 values (logits).
 *
 *   rsr-cmpf32 A.f32 B.f32 [--atol X] [--rtol Y] [--floor F]   (defaults 1e-3, 1e-3, none)
 *
 * Prints the max abs and rel differences and each file's argmax; exits 1 when the lengths
 * differ or any |a - b| > atol + rtol * |b| (a NaN on either side always fails). --floor F
 * accepts instead differences up to F times B's largest |value| with the same argmax, or with
 * B's two best closer than the largest difference (a near tie): the noise floor of an int8
 * rounding that went the other way where an activation lay within an ulp of its boundary
 * (docs/trained-model.md, "Checked against the code that trained it").
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *read_f32(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "rsr-cmpf32: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    long cap = 1024, len = 0;
    unsigned char *bytes = malloc(cap);
    for (size_t got; bytes && (got = fread(bytes + len, 1, cap - len, f)) > 0;) {
        len += (long)got;
        if (len == cap) bytes = realloc(bytes, cap *= 2);
    }
    fclose(f);
    if (!bytes) {
        fprintf(stderr, "rsr-cmpf32: out of memory\n");
        exit(1);
    }
    if (len % 4) {
        fprintf(stderr, "rsr-cmpf32: %s: %ld bytes is not a whole number of floats\n", path, len);
        exit(1);
    }
    float *x = malloc((len / 4 + 1) * sizeof *x);
    if (!x) {
        fprintf(stderr, "rsr-cmpf32: out of memory\n");
        exit(1);
    }
    for (long i = 0; i < len / 4; i++) {
        const unsigned char *p = bytes + 4 * i;
        uint32_t u = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&x[i], &u, 4);
    }
    free(bytes);
    *n = len / 4;
    return x;
}

static long argmax(const float *x, long n) {
    long best = 0;
    for (long i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static double parse_tol(const char *s, const char *what) {
    char *end;
    double v = s ? strtod(s, &end) : -1;
    if (!s || end == s || *end || !(v >= 0)) {
        fprintf(stderr, "rsr-cmpf32: bad %s '%s'\n", what, s ? s : "");
        exit(1);
    }
    return v;
}

int main(int argc, char **argv) {
    const char *pa = NULL, *pb = NULL;
    double atol = 1e-3, rtol = 1e-3, floor_rel = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--atol"))
            atol = parse_tol(++i < argc ? argv[i] : NULL, "--atol");
        else if (!strcmp(argv[i], "--rtol"))
            rtol = parse_tol(++i < argc ? argv[i] : NULL, "--rtol");
        else if (!strcmp(argv[i], "--floor"))
            floor_rel = parse_tol(++i < argc ? argv[i] : NULL, "--floor");
        else if (!pa)
            pa = argv[i];
        else if (!pb)
            pb = argv[i];
        else
            pa = NULL, i = argc;
    }
    if (!pa || !pb) {
        fprintf(stderr, "usage: rsr-cmpf32 A.f32 B.f32 [--atol X] [--rtol Y] [--floor F]\n");
        return 1;
    }
    long na, nb;
    float *a = read_f32(pa, &na), *b = read_f32(pb, &nb);
    if (na != nb) {
        fprintf(stderr, "rsr-cmpf32: %s has %ld values, %s has %ld\n", pa, na, pb, nb);
        return 1;
    }
    double max_abs = 0, max_rel = 0;
    long bad = 0, first_bad = -1, at_abs = 0, at_rel = 0;
    for (long i = 0; i < na; i++) {
        if (a[i] == b[i]) continue;
        double d = fabs((double)a[i] - (double)b[i]), rel = b[i] != 0 ? d / fabs((double)b[i]) : INFINITY;
        if (isnan(d)) d = rel = INFINITY;
        if (d > max_abs) max_abs = d, at_abs = i;
        if (rel > max_rel) max_rel = rel, at_rel = i;
        if (!(d <= atol + rtol * fabs((double)b[i]))) {
            if (!bad++) first_bad = i;
        }
    }
    printf("rsr-cmpf32: %ld values, max abs diff %.3g (index %ld), max rel diff %.3g (index %ld), argmax %ld / %ld\n",
           na, max_abs, at_abs, max_rel, at_rel, na ? argmax(a, na) : -1, nb ? argmax(b, nb) : -1);
    if (bad && floor_rel >= 0 && max_abs < INFINITY) { /* within the noise floor of a flipped int8 rounding? */
        double top = 0, best = -INFINITY, second = -INFINITY;
        for (long i = 0; i < nb; i++) {
            top = fmax(top, fabs((double)b[i]));
            if (b[i] > best)
                second = best, best = b[i];
            else if (b[i] > second)
                second = b[i];
        }
        bool tie = best - second <= max_abs, same = argmax(a, na) == argmax(b, nb);
        printf("rsr-cmpf32: %ld values beyond the tolerance; the largest difference is %.3g of B's largest |value| "
               "(floor %g), the argmax %s\n",
               bad, max_abs / top, floor_rel,
               same  ? "the same"
               : tie ? "differs at a near tie"
                     : "differs");
        if (max_abs <= floor_rel * top && (same || tie))
            bad = 0;
        else
            return 1;
    }
    if (bad) {
        printf("rsr-cmpf32: %ld values beyond atol %g + rtol %g * |b|; first at index %ld: %.9g vs %.9g\n", bad, atol,
               rtol, first_bad, a[first_bad], b[first_bad]);
        return 1;
    }
    free(a), free(b);
    return 0;
}
