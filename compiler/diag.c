/* diag.c — diagnostics and the list of temporary files a failed compile must not leave behind. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rsrc.h"

int verbosity;

static char **temps;
static int ntemps;

void register_temp(const char *path) {
    temps = xrealloc(temps, sizeof *temps * (size_t)(ntemps + 1));
    temps[ntemps++] = xstrdup(path);
}

void release_temp(const char *path) {
    for (int i = 0; i < ntemps; i++)
        if (temps[i] && strcmp(temps[i], path) == 0) {
            free(temps[i]);
            temps[i] = NULL;
        }
}

/* Removes every registered temporary (files first, then the directories that held them). */
static void remove_temps(void) {
    for (int i = ntemps - 1; i >= 0; i--) {
        if (!temps[i]) continue;
        if (unlink(temps[i]) != 0) rmdir(temps[i]); /* a temporary directory */
        free(temps[i]);
        temps[i] = NULL;
    }
}

noreturn void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    progress_clear();
    fputs("rsrc: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    remove_temps();
    exit(1);
}

void warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    progress_clear();
    fputs("rsrc: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void note(int level, const char *fmt, ...) {
    if (verbosity < level) return;
    va_list ap;
    va_start(ap, fmt);
    progress_clear();
    fputs("rsrc: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fatal("out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fatal("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) fatal("out of memory allocating %zu bytes", n);
    return p;
}

char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (!d) fatal("out of memory");
    return d;
}

char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s;
    if (vasprintf(&s, fmt, ap) < 0) fatal("out of memory");
    va_end(ap);
    return s;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Called at normal exit too: a compile that returns early must not leave temporaries. */
__attribute__((constructor)) static void install_cleanup(void) { atexit(remove_temps); }
