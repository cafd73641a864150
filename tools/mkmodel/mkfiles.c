/*
 * mkfiles.c — rsr-mkmodel's errors and files: die (which removes this run's temporaries and the
 * directories it made), the signal handlers that do the same, the output files written under
 * temporary names (outfiles, renamed by main at the end), JSON files, the output directory and
 * the removal of an earlier run's files in another layout. Uses mkmodel.h and common/alloc.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "alloc.h"
#include "mkmodel.h"

/* ------------------------------------------------------------------------------------------ */
/* errors and temporary files                                                                  */

char **tmp_paths; /* temporaries not yet renamed (NULL entries: done) */
static volatile sig_atomic_t n_tmp;

static char *made_dirs[32]; /* the directories this run created (rmdir'd on failure, when left empty) */
static sig_atomic_t n_made;

static void remove_temporaries(void) {
    for (sig_atomic_t i = 0; i < n_tmp; i++)
        if (tmp_paths && tmp_paths[i]) unlink(tmp_paths[i]);
    for (sig_atomic_t i = n_made; i-- > 0;) rmdir(made_dirs[i]); /* fails, harmlessly, where not empty */
}

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rsr-mkmodel: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    remove_temporaries();
    exit(1);
}

static void on_signal(int sig) {
    remove_temporaries(); /* unlink is async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
    signal(SIGXFSZ, SIG_IGN); /* past a file size limit, write fails (EFBIG) and we clean up */
}

/* common/alloc.h's failure */
void xalloc_failed(size_t n) { die("out of memory (%zu bytes)", n); }

/* ------------------------------------------------------------------------------------------ */
/* files                                                                                       */

outfile_t *outfiles;
size_t n_out;

FILE *open_temp(const char *dir, const char *file_name) {
    outfile_t *of = &outfiles[n_out];
    of->file_name = xasprintf("%s", file_name);
    of->final_path = xasprintf("%s/%s", dir, file_name);
    of->tmp_path = xasprintf("%s/.%s.tmp.%ld", dir, file_name, (long)getpid());
    unlink(of->tmp_path); /* a stale temporary of a dead process with our pid */
    int fd = open(of->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) die("cannot create %s: %s", of->tmp_path, strerror(errno));
    tmp_paths[n_out] = of->tmp_path;
    n_out++;
    n_tmp = (sig_atomic_t)n_out;
    FILE *f = fdopen(fd, "wb");
    if (!f) die("cannot open %s: %s", of->tmp_path, strerror(errno));
    return f;
}

uint64_t close_file(FILE *f, const char *path) {
    if (fflush(f) != 0 || ferror(f)) die("cannot write %s: %s", path, strerror(errno));
    long pos = ftell(f);
    if (fclose(f) != 0) die("cannot write %s: %s", path, strerror(errno));
    return pos < 0 ? 0 : (uint64_t)pos;
}

cJSON *json_u64(uint64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v); /* exact integers (cJSON numbers are doubles) */
    cJSON *j = cJSON_CreateRaw(b);
    if (!j) die("out of memory");
    return j;
}

void json_add(cJSON *obj, const char *key, cJSON *item) {
    if (!item || !cJSON_AddItemToObject(obj, key, item)) die("out of memory building JSON");
}

uint64_t write_json_file(const char *dir, const char *file_name, const cJSON *root) {
    char *text = cJSON_Print(root);
    if (!text) die("out of memory printing JSON");
    FILE *f = open_temp(dir, file_name);
    const char *path = outfiles[n_out - 1].final_path;
    size_t n = strlen(text);
    if (fwrite(text, 1, n, f) != n || fputc('\n', f) == EOF) die("cannot write %s: %s", path, strerror(errno));
    free(text);
    return close_file(f, path);
}

/* Remove files of an earlier run in another layout (single file vs shards) that would make the
 * directory ambiguous. Only names this tool writes are touched. */
void remove_stale(const char *dir, long nshards, int wrote_tokenizer, int wrote_config, int wrote_pooling) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        int ours = 0, stale = 0;
        unsigned a, b;
        char tail[32];
        if (!strcmp(n, "model.safetensors"))
            ours = 1, stale = nshards > 1;
        else if (!strcmp(n, "model.safetensors.index.json"))
            ours = 1, stale = nshards == 1;
        else if (!strcmp(n, "tokenizer.json"))
            ours = 1, stale = !wrote_tokenizer;
        else if (!strcmp(n, "tokenizer_config.json"))
            ours = 1, stale = !wrote_config;
        else if (strlen(n) == 32 && sscanf(n, "model-%5u-of-%5u%31s", &a, &b, tail) == 3 &&
                 !strcmp(tail, ".safetensors"))
            ours = 1, stale = nshards == 1 || (long)b != nshards;
        else if (!strcmp(n, "1_Pooling"))
            ours = 1, stale = !wrote_pooling;
        if (ours && stale) {
            const int pooling = !strcmp(n, "1_Pooling"); /* its config.json, and it where nothing else is in it */
            char *p = xasprintf("%s/%s%s", dir, n, pooling ? "/config.json" : "");
            if (unlink(p) != 0 && errno != ENOENT)
                fprintf(stderr, "rsr-mkmodel: warning: cannot remove stale %s: %s\n", p, strerror(errno));
            if (pooling) p[strlen(p) - strlen("/config.json")] = 0, rmdir(p);
            free(p);
        }
    }
    closedir(d);
}

/* mkdir(p), remembered for removal on failure where this run made it */
void make_dir(const char *p) {
    if (mkdir(p, 0777) == 0) {
        if (n_made < (sig_atomic_t)(sizeof made_dirs / sizeof *made_dirs)) made_dirs[n_made] = xasprintf("%s", p);
        if (n_made < (sig_atomic_t)(sizeof made_dirs / sizeof *made_dirs)) n_made++;
    } else if (errno != EEXIST) {
        die("cannot create directory %s: %s", p, strerror(errno));
    }
}

void mkdir_p(const char *dir) {
    char *p = xasprintf("%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        make_dir(p);
        *s = '/';
    }
    make_dir(p);
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) die("%s is not a directory", p);
    free(p);
}
