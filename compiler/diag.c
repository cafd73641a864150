/*
 * diag.c — diagnostics, and what an error must not leave behind: temporary files (also on
 * SIGINT/SIGTERM and past a file size limit) and, for the loaders, the memory and mappings they
 * hold (the cleanup stack, which lets a fuzzer call a loader many times in one process).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rsrc.h"

int verbosity;
jmp_buf *fatal_jump;
bool fatal_quiet;

static char **temps;
static volatile sig_atomic_t ntemps;

static struct cleanup { void (*fn)(void *); void *arg; } *cleanups;
static int ncleanups, cleanup_cap;

int on_fatal_push(void (*fn)(void *), void *arg) {
    if (ncleanups == cleanup_cap) {
        cleanup_cap = cleanup_cap ? 2 * cleanup_cap : 16;
        struct cleanup *c = realloc(cleanups, sizeof *c * (size_t)cleanup_cap);
        if (!c) {
            fn(arg);
            fatal("out of memory");
        }
        cleanups = c;
    }
    cleanups[ncleanups] = (struct cleanup){fn, arg};
    return ncleanups++;
}

void on_fatal_pop(int token) {
    if (token >= 0 && token < ncleanups) ncleanups = token;
}

void on_fatal_update(int token, void *arg) {
    if (token >= 0 && token < ncleanups) cleanups[token].arg = arg;
}

static void run_cleanups(void) {
    while (ncleanups > 0) {
        struct cleanup c = cleanups[--ncleanups];
        c.fn(c.arg);
    }
}

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
    if (!fatal_quiet) {
        va_list ap;
        va_start(ap, fmt);
        fputs("rsrc: error: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    run_cleanups();
    remove_temps();
    if (fatal_jump) longjmp(*fatal_jump, 1);
    exit(1);
}

void warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rsrc: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void note(int level, const char *fmt, ...) {
    if (verbosity < level) return;
    va_list ap;
    va_start(ap, fmt);
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

/* Only unlink and rmdir here: they are async-signal-safe, free() is not. */
static void on_signal(int sig) {
    for (sig_atomic_t i = ntemps - 1; i >= 0; i--)
        if (temps && temps[i] && unlink(temps[i]) != 0) rmdir(temps[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Called at normal exit too: a compile that returns early must not leave temporaries. Past a
 * file size limit (ulimit -f) a write fails with EFBIG, reported and cleaned up like a full disk,
 * instead of SIGXFSZ killing the process with its temporaries in place. */
__attribute__((constructor)) static void install_cleanup(void) {
    atexit(remove_temps);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
    signal(SIGXFSZ, SIG_IGN);
}
