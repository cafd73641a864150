/*
 * diag.c — diagnostics, and what an error must not leave behind: temporary files (also on
 * SIGINT/SIGTERM and past a file size limit) and, for the loaders, the memory and mappings they
 * hold (their arenas, which lets a fuzzer call a loader many times in one process).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdnoreturn.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rsrc.h"

int rsrc_verbosity;
jmp_buf *rsrc_fatal_jump;
bool rsrc_fatal_quiet;

static char **temps;
static volatile sig_atomic_t ntemps;

static void (*before_message)(void);

void diag_before_message(void (*fn)(void)) { before_message = fn; }

/* The arenas open now, innermost last: rsrc_fatal() closes them all, innermost first. */
static struct rsrc_arena **open_arenas;
static int nopen, open_cap;

typedef struct owned {
    void (*release)(void *);
    void *p;
} owned;
struct rsrc_arena {
    owned *v;
    int n, cap;
};

rsrc_arena *rsrc_arena_open(void) {
    rsrc_arena *a = xcalloc(1, sizeof *a);
    if (nopen == open_cap)
        open_arenas = xrealloc(open_arenas, sizeof *open_arenas * (size_t)(open_cap = open_cap ? 2 * open_cap : 8));
    open_arenas[nopen++] = a;
    return a;
}

void rsrc_arena_own(rsrc_arena *a, void (*release)(void *), void *p) {
    if (!p) return;
    if (a->n == a->cap) {
        owned *v = realloc(a->v, sizeof *v * (size_t)(a->cap ? 2 * a->cap : 16));
        if (!v) {
            release(p);
            rsrc_fatal("out of memory");
        }
        a->v = v, a->cap = a->cap ? 2 * a->cap : 16;
    }
    a->v[a->n++] = (owned){release, p};
}

void *rsrc_arena_disown(rsrc_arena *a, void *p) {
    for (int i = a->n - 1; i >= 0; i--)
        if (a->v[i].p == p) {
            a->v[i].p = NULL;
            break;
        }
    return p;
}

void *rsrc_arena_alloc(rsrc_arena *a, size_t n) {
    void *p = xmalloc(n);
    rsrc_arena_own(a, free, p);
    return p;
}

char *rsrc_arena_printf(rsrc_arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) rsrc_fatal("out of memory");
    rsrc_arena_own(a, free, s);
    return s;
}

static void release_all(rsrc_arena *a) {
    for (int i = a->n - 1; i >= 0; i--)
        if (a->v[i].p) a->v[i].release(a->v[i].p);
    free(a->v);
    free(a);
}

void rsrc_arena_close(rsrc_arena *a) {
    /* a is the innermost open arena: loaders nest, they do not interleave */
    if (nopen > 0 && open_arenas[nopen - 1] == a)
        nopen--;
    else
        rsrc_fatal("internal error: an arena closed out of order");
    release_all(a);
}

static void close_all_arenas(void) {
    while (nopen > 0) release_all(open_arenas[--nopen]);
}

/* ---- the watchdog: temporaries removed even after SIGKILL ----
 * No handler runs on SIGKILL (nor on a crash past the signal handlers, nor when the OOM killer
 * picks the compile), so a second process of its own watches: it learns each temporary as it is
 * registered or released through a pipe, and when the pipe reaches its end — this process is
 * gone, however it went — removes what is left. It is forked lazily, maybe while other threads
 * run, so it does only async-signal-safe things (read, unlink, rmdir, _exit) on static memory. */
enum { WATCH_MAX = 64, WATCH_PATH = 1024 };
static int watch_fd = -1;

static noreturn void watchdog(int in) {
    static char paths[WATCH_MAX][WATCH_PATH], line[WATCH_PATH + 2];
    static bool live[WATCH_MAX];
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &ign, NULL);
    setsid(); /* out of the terminal's process group: a ^C is for the compile, which cleans up itself */
    for (int fd = 0; fd < 1024; fd++)
        if (fd != in) close(fd);
    size_t n = 0;
    char c;
    while (read(in, &c, 1) == 1) { /* lines "+PATH" and "-PATH" */
        if (c != '\n') {
            if (n < sizeof line - 1) line[n++] = c;
            continue;
        }
        line[n] = 0;
        int slot = -1;
        for (int i = 0; i < WATCH_MAX && slot < 0; i++)
            if (line[0] == '+' ? !live[i] : live[i] && !strcmp(paths[i], line + 1)) slot = i;
        if (slot >= 0 && line[0] == '+') memcpy(paths[slot], line + 1, n), live[slot] = true;
        if (slot >= 0 && line[0] == '-') live[slot] = false;
        n = 0;
    }
    for (int i = WATCH_MAX - 1; i >= 0; i--) /* files first: they were registered after their directory */
        if (live[i] && unlink(paths[i]) != 0) rmdir(paths[i]);
    _exit(0);
}

static void watch(char sign, const char *path) {
    if (watch_fd < 0 && sign == '+') {
        int p[2];
        if (pipe(p) != 0) return;
        pid_t pid = fork();
        if (pid == 0) {
            close(p[1]);
            watchdog(p[0]);
        }
        close(p[0]);
        if (pid < 0) {
            close(p[1]);
            return;
        }
        watch_fd = p[1];
        fcntl(watch_fd, F_SETFD, FD_CLOEXEC); /* the compilers and linkers it runs do not hold it open */
    }
    size_t len = strlen(path);
    if (watch_fd < 0 || len >= WATCH_PATH) return;
    char buf[WATCH_PATH + 2];
    buf[0] = sign;
    memcpy(buf + 1, path, len);
    buf[len + 1] = '\n';
    if (write(watch_fd, buf, len + 2) < 0) { /* the watchdog is gone: the handlers still clean up */
    }
}

void register_temp(const char *path) {
    temps = xrealloc(temps, sizeof *temps * (size_t)(ntemps + 1));
    temps[ntemps++] = xstrdup(path);
    watch('+', path);
}

void release_temp(const char *path) {
    for (int i = 0; i < ntemps; i++)
        if (temps[i] && strcmp(temps[i], path) == 0) {
            free(temps[i]);
            temps[i] = NULL;
            watch('-', path);
        }
}

/* An output that exists and is not a regular file (/dev/null, a FIFO, a terminal) is written
 * into, not replaced: renaming over it would put a regular file in its place. */
static bool output_is_special(const char *final) {
    struct stat st;
    return stat(final, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

char *output_temp(const char *final, int *fd) {
    const char *tmpdir = getenv("TMPDIR");
    char *tmp = output_is_special(final) ? xasprintf("%s/rsrc-out.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp")
                                         : xasprintf("%s.tmp.XXXXXX", final);
    int f = mkstemp(tmp); /* a new file of its own: no name to guess, no link followed */
    if (f < 0) rsrc_fatal("%s: cannot write the output: %s", final, strerror(errno));
    register_temp(tmp);
    if (fd)
        *fd = f;
    else
        close(f);
    return tmp;
}

/* Copies the finished temporary into a special output (see output_is_special). */
static void copy_into(const char *tmp, const char *final) {
    FILE *in = fopen(tmp, "rb"), *out = fopen(final, "wb");
    char buf[1 << 16];
    size_t n;
    bool ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = false;
    if (!ok) rsrc_fatal("%s: cannot write the output: %s", final, strerror(errno));
    unlink(tmp);
}

void output_commit(char *tmp, const char *final, mode_t mode) {
    if (output_is_special(final)) {
        copy_into(tmp, final);
    } else {
        mode_t mask = umask(0);
        umask(mask);
        if (chmod(tmp, mode & ~mask) != 0 || rename(tmp, final) != 0)
            rsrc_fatal("%s: cannot rename the finished output into place: %s", final, strerror(errno));
    }
    release_temp(tmp);
    free(tmp);
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

noreturn void rsrc_fatal(const char *fmt, ...) {
    if (!rsrc_fatal_quiet) {
        va_list ap;
        va_start(ap, fmt);
        if (before_message) before_message();
        fputs("rsrc: error: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    close_all_arenas();
    remove_temps();
    if (rsrc_fatal_jump) longjmp(*rsrc_fatal_jump, 1);
    exit(1);
}

void rsrc_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (before_message) before_message();
    fputs("rsrc: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void rsrc_note(int level, const char *fmt, ...) {
    if (rsrc_verbosity < level) return;
    va_list ap;
    va_start(ap, fmt);
    if (before_message) before_message();
    fputs("rsrc: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static uint64_t memory_cap;
static struct rlimit memory_limit_before;
static bool memory_limited;

/* "512 KiB", "1.5 MiB", "2.0 GiB" */
const char *format_size(uint64_t bytes, char buf[32]) {
    if (bytes < (1u << 20))
        snprintf(buf, 32, "%llu KiB", (unsigned long long)((bytes + 1023) >> 10));
    else if (bytes < (1ull << 30))
        snprintf(buf, 32, "%.1f MiB", (double)bytes / (1 << 20));
    else
        snprintf(buf, 32, "%.1f GiB", (double)bytes / (1 << 30));
    return buf;
}

/* Sizes as people write them: 4096, 64K, 512MiB, 2G (powers of two). */
uint64_t parse_size(const char *what, const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {
        {"", 0}, {"K", 10}, {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}, {"T", 40}, {"TiB", 40},
    };
    if (!errno && end != s && *s != '-')
        for (size_t i = 0; i < sizeof units / sizeof *units; i++)
            if (strcmp(end, units[i].suffix) == 0 && v <= (UINT64_MAX >> units[i].shift)) return v << units[i].shift;
    rsrc_fatal("%s: '%s' is not a size such as 512M or 4G", what, s);
}

/* The heap and anonymous mappings of this process stay under `bytes` (RLIMIT_DATA: the
 * memory-mapped checkpoint is not charged, it is page cache; the C compiler that links the
 * model runs under the limits rsrc was started with). Sanitizers
 * reserve terabytes of shadow memory up front, so there only the up-front estimate applies. */
void limit_memory(uint64_t bytes) {
    memory_cap = bytes;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
    return;
#endif
#endif
    struct rlimit rl;
    if (getrlimit(RLIMIT_DATA, &rl) != 0) return;
    memory_limit_before = rl;
    memory_limited = true;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < bytes ? rl.rlim_max : bytes;
    if (setrlimit(RLIMIT_DATA, &rl) != 0)
        rsrc_warn("cannot limit memory to %llu bytes: %s", (unsigned long long)bytes, strerror(errno));
}

/* For the C compiler rsrc runs: the cap is on the model-dependent memory of rsrc itself. */
void unlimit_memory(void) {
    if (memory_limited) setrlimit(RLIMIT_DATA, &memory_limit_before);
}

static noreturn void out_of_memory(size_t n) {
    char cap[32];
    if (memory_cap) rsrc_fatal("out of memory allocating %zu bytes (--max-memory %s)", n, format_size(memory_cap, cap));
    rsrc_fatal("out of memory allocating %zu bytes", n);
}

/* common/alloc.h's failure: the compiler's message, naming the cap when there is one */
void xalloc_failed(size_t n) { out_of_memory(n); }

double rsrc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Only unlink, rmdir and write here: they are async-signal-safe, free() is not. Under a memory
 * cap an abort is most likely a library (LLVM's C++ allocator) out of memory: say so. */
static void on_signal(int sig) {
    static const char capped[] =
        "rsrc: error: a library aborted while the memory cap (--max-memory) was in force, most "
        "likely out of memory: raise the cap\n";
    if (sig == SIGABRT && memory_limited && write(2, capped, sizeof capped - 1) < 0) sig = SIGABRT;
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
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGABRT}; /* SIGABRT: a library's abort() */
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
    signal(SIGXFSZ, SIG_IGN);
}

const char *rsrc_env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

int rsrc_cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
const char *rsrc_sorted_repeat(char **names, size_t n) {
    if (n) qsort(names, n, sizeof *names, rsrc_cmp_names);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i])) return names[i];
    return NULL;
}
