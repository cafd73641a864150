/* parse_num.h — an integer option value, one rule for every program (rsrc, rsr-run, rsr-serve,
 * rsr-mkmodel, the reference): decimal digits with an optional '-', nothing before or after them,
 * within [lo, hi]. Each program words its own message (the flag, the range) on false. */
#ifndef RSR_PARSE_NUM_H
#define RSR_PARSE_NUM_H
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

static inline bool parse_long_in(const char *s, long lo, long hi, long *out) {
    if (!s || !((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9'))) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* the same for an unsigned 64-bit value (digits only) */
static inline bool parse_u64_in(const char *s, unsigned long long *out) {
    if (!s || !(*s >= '0' && *s <= '9')) return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

/* a decimal number within [lo, hi] (strtod's syntax, nothing after it) */
static inline bool parse_double_in(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}
#endif
