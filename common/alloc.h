/*
 * alloc.h — allocation that never comes back empty, for the compiler and the tools (header-only,
 * like the rest of common/). On failure it calls xalloc_failed(bytes), which each program that
 * includes this defines once, to say so in its own voice and exit: the compiler names its
 * --max-memory cap (compiler/support/diag.c), rsr-mkmodel removes what it had half written.
 */
#ifndef RSR_COMMON_ALLOC_H
#define RSR_COMMON_ALLOC_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reports that `bytes` could not be had (0: a size not known) and ends the program. */
void xalloc_failed(size_t bytes) __attribute__((__noreturn__));

static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) xalloc_failed(n);
    return p;
}

static inline void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) xalloc_failed(n * size);
    return p;
}

static inline void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) xalloc_failed(n);
    return p;
}

static inline char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static inline char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *xasprintf(const char *fmt, ...) {
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) xalloc_failed(0);
    char *s = xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, again);
    va_end(again);
    return s;
}

#endif
