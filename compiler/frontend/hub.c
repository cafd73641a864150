/*
 * hub.c — models from the Hugging Face Hub: `rsrc hf:ORG/NAME[@REVISION]` downloads the files
 * rsrc reads into the Hub's own cache layout (so other tools find them there too) and compiles
 * the local copy; `--hf-file FILE` picks one GGUF of a repository that holds several.
 *
 *   $HF_HUB_CACHE (else $HF_HOME/hub, else ~/.cache/huggingface/hub)/models--ORG--NAME/
 *       refs/REVISION            the commit the revision named when it was last resolved
 *       blobs/ETAG               each file's bytes, named by its ETag (the sha256 of an LFS file)
 *       snapshots/COMMIT/FILE -> ../../blobs/ETAG
 *
 * The Hub's API ($HF_ENDPOINT, default https://huggingface.co): GET /api/models/REPO/revision/REV
 * gives the commit (sha) and the files (siblings[].rfilename); HEAD /REPO/resolve/COMMIT/FILE the
 * ETag (X-Linked-Etag for LFS files, else ETag) and the size without following the redirect; GET
 * the bytes. $HF_TOKEN goes along as a bearer token (gated and private repositories). A download
 * is written to blobs/ETAG.incomplete, resumed with a Range request where one is left over, and
 * renamed once whole, so an interrupted one leaves nothing a reader would take for a file.
 * $HF_HUB_OFFLINE=1, or a Hub that cannot be reached: the snapshot refs/REVISION names, if it
 * holds the files.
 *
 * Which files: with --hf-file, that one; else a checkpoint's config.json, weights (*.safetensors
 * and their index) and tokenizer files; else the repository's one .gguf (several: the message
 * lists them for --hf-file).
 *
 * The server is not trusted (a mirror may pose as the Hub): every name it gives is checked before
 * it becomes a path (hub_parse.c), every write goes through directories opened from the
 * repository's without following a link, a body is never written past the size its HEAD gave,
 * the API's answer is capped at 16 MiB, redirects at 10, and no transfer waits longer than
 * $HF_HUB_ETAG_TIMEOUT (the API and HEADs) or $HF_HUB_DOWNLOAD_TIMEOUT (files) seconds for a
 * byte, 10 each by default as in huggingface_hub; the API and HEADs end within six times theirs.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/hub.h"

#define HUB_REDIRECTS 10L

typedef struct hub {
    const char *spec; /* as given: hf:ORG/NAME[@REV] */
    char *repo, *rev, *endpoint, *root, *dir, *auth;
    long etag_timeout, download_timeout; /* seconds */
    int dirfd;                           /* dir, opened without following a link: every write is under it */
    CURL *curl;
    rsrc_arena *a; /* everything below; rsrc_fatal() releases it too */
} hub;

/* A status line while a file comes down, on a terminal only (every half second). */
typedef struct meter {
    const char *file;
    long long base; /* bytes there before (a resumed download) */
    double t0, last;
} meter;

/* One request: the final answer's headers, and where its body went. */
typedef struct transfer {
    hub_head head;
    int fd;              /* a download's file (appended to), else -1: the body into data */
    long long from, cap; /* the file's bytes before this request (resuming); the most the whole may be */
    long long got;       /* bytes taken from this answer */
    char *data;
    size_t room;
    bool unwanted; /* not 200 or 206: the body (an error page) is not kept */
    bool over;     /* the body went past cap: stopped there */
    int write_errno;
    char refusal[160]; /* why rsrc stopped it otherwise: nothing to resume or fall back from */
    meter *m;
} transfer;

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
    hub_head_line(&((transfer *)arg)->head, p, size * n);
    return size * n;
}

static bool accept_body(transfer *t, size_t len) {
    if (t->head.status != 200 && t->head.status != 206) return t->unwanted = true, false;
    if ((long long)len > t->cap - t->from - t->got) return t->over = true, false;
    return true;
}

static size_t to_memory(char *p, size_t size, size_t n, void *arg) {
    transfer *t = arg;
    size_t len = size * n, have = (size_t)t->got;
    if (!accept_body(t, len)) return 0;
    if (have + len + 1 > t->room) {
        size_t room = t->room ? t->room : 1 << 16;
        while (room < have + len + 1) room *= 2;
        char *grown = realloc(t->data, room);
        if (!grown) return t->write_errno = ENOMEM, 0;
        t->data = grown, t->room = room;
    }
    memcpy(t->data + have, p, len);
    t->got += (long long)len, t->data[t->got] = 0;
    return len;
}

static size_t to_file(char *p, size_t size, size_t n, void *arg) {
    transfer *t = arg;
    size_t len = size * n;
    if (t->got == 0 && t->from > 0 && t->head.status == 200) { /* all of it again, not the rest: keep that */
        if (ftruncate(t->fd, 0) != 0) return t->write_errno = errno, 0;
        t->from = 0;
        if (t->m) t->m->base = 0;
    }
    if (t->got == 0 && t->head.status == 206 && t->head.range != t->from) {
        snprintf(t->refusal, sizeof t->refusal, "the Hub resumed it at byte %lld, not %lld", t->head.range, t->from);
        return 0;
    }
    if (!accept_body(t, len)) return 0;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(t->fd, p + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return t->write_errno = w < 0 ? errno : EIO, 0;
        done += (size_t)w;
    }
    t->got += (long long)len;
    return len;
}

static int on_progress(void *arg, curl_off_t total, curl_off_t now, curl_off_t ut, curl_off_t un) {
    (void)ut, (void)un;
    meter *m = arg;
    double t = rsrc_now();
    if (t - m->last < 0.5 || !isatty(2)) return 0;
    m->last = t;
    fprintf(stderr, "\rrsrc: %s: %.1f of %.1f MB, %.1f MB/s   ", m->file, (double)(m->base + now) / 1e6,
            (double)(m->base + total) / 1e6, (double)now / 1e6 / (t - m->t0 > 1e-3 ? t - m->t0 : 1e-3));
    return 0;
}

/* A request: GET, the body into t (a file: from t->from on), or HEAD, which does not follow
 * redirects. The final answer's HTTP status, or -1 with the reason in err (and in t->refusal or
 * t->over where rsrc stopped it). */
static long request(hub *h, const char *url, transfer *t, bool head, char *err) {
    CURL *c = h->curl;
    curl_easy_reset(c);
    hub_head_start(&t->head);
    bool file = t->fd >= 0;
    long timeout = file ? h->download_timeout : h->etag_timeout;
    struct curl_slist *hd = h->auth ? curl_slist_append(NULL, h->auth) : NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd); /* libcurl drops it on a redirect to another host */
    curl_easy_setopt(c, CURLOPT_USERAGENT, "rsrc/" RSRC_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, head ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, HUB_REDIRECTS);
    /* huggingface_hub's timeouts are to connect and between bytes: below 1 byte/s for that long */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, timeout);
    if (!file) curl_easy_setopt(c, CURLOPT_TIMEOUT, 6 * timeout); /* small: not to be dripped for hours */
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(c, CURLOPT_NOBODY, head ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, file ? to_file : to_memory);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    char range[32];
    snprintf(range, sizeof range, "%lld-", t->from);
    if (t->from > 0) curl_easy_setopt(c, CURLOPT_RANGE, range);
    if (t->m) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, t->m);
    }
    err[0] = 0;
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hd);
    long status = -1;
    if (rc == CURLE_OK || t->unwanted)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else if (rc == CURLE_TOO_MANY_REDIRECTS)
        snprintf(t->refusal, sizeof t->refusal, "it redirected more than %ld times", HUB_REDIRECTS);
    else if (rc == CURLE_UNSUPPORTED_PROTOCOL)
        snprintf(t->refusal, sizeof t->refusal, "a redirect to a URL that is not http or https (%s)", err);
    if (status < 0 && !err[0]) snprintf(err, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
    if (t->refusal[0]) snprintf(err, CURL_ERROR_SIZE, "%s", t->refusal);
    return status;
}

static void refuse_status(const hub *h, const char *what, long status) {
    if ((status == 401 || status == 403) && h->auth)
        rsrc_fatal("%s: the Hub refused %s (HTTP %ld) with the HF_TOKEN given: check that the token is valid and "
                   "that access to the repository was granted to its account on the repository's page",
                   h->spec, what, status);
    if (status == 401 || status == 403)
        rsrc_fatal("%s: the Hub refused %s (HTTP %ld): a gated or private repository needs HF_TOKEN, and access "
                   "granted on its page",
                   h->spec, what, status);
    if (status == 404) rsrc_fatal("%s: the Hub has no %s (HTTP 404): check the name and the revision", h->spec, what);
    rsrc_fatal("%s: the Hub answered HTTP %ld for %s", h->spec, status, what);
}

static void mkdirs(const char *path) {
    char p[4096];
    if (strlen(path) >= sizeof p) rsrc_fatal("a path too long for the cache: %s", path);
    strcpy(p, path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) rsrc_fatal("cannot create %s: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) rsrc_fatal("cannot create %s: %s", p, strerror(errno));
}

static void fd_release(void *p) { close(*(int *)p); }

static int own_fd(hub *h, int fd) {
    int *p = rsrc_arena_alloc(h->a, sizeof *p);
    *p = fd;
    rsrc_arena_own(h->a, fd_release, p);
    return fd;
}

/* The directories of rel (checked names) under base, whose path is where, each created when
 * missing and opened without following a link: a link planted in the cache (blobs -> elsewhere)
 * cannot take a write out of it. The descriptor is the arena's. */
static int open_under(hub *h, int base, const char *where, const char *rel) {
    char *names = rsrc_arena_printf(h->a, "%s", rel), *save = NULL;
    int fd = base;
    for (char *c = strtok_r(names, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        where = rsrc_arena_printf(h->a, "%s/%s", where, c);
        if (mkdirat(fd, c, 0755) != 0 && errno != EEXIST) rsrc_fatal("cannot create %s: %s", where, strerror(errno));
        int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), why = errno;
        struct stat st;
        if (next < 0 && fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
            rsrc_fatal("%s is a symbolic link; rsrc writes only inside the cache and follows no link there", where);
        if (next < 0) rsrc_fatal("cannot open %s: %s", where, strerror(why));
        if (fd != base) close(fd);
        fd = next;
    }
    return own_fd(h, fd);
}

static void open_repo(hub *h) {
    mkdirs(h->root); /* the cache's root as the user set it: a link there is theirs to make */
    int root = open(h->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) rsrc_fatal("cannot open %s: %s", h->root, strerror(errno));
    own_fd(h, root);
    h->dirfd = open_under(h, root, h->root, strrchr(h->dir, '/') + 1);
}

/* name's size if it is a regular file in dir (not through a link), else -1 */
static long long regular_size(int dir, const char *name) {
    struct stat st;
    return fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) ? (long long)st.st_size : -1;
}

/* HF_ENDPOINT/REPO/resolve/COMMIT/FILE, each component of FILE escaped */
static char *resolve_url(hub *h, const char *commit, const char *file) {
    char *url = rsrc_arena_printf(h->a, "%s/%s/resolve/%s", h->endpoint, h->repo, commit);
    for (const char *c = file;; c += strcspn(c, "/") + 1) {
        char *part = curl_easy_escape(h->curl, c, (int)strcspn(c, "/"));
        if (!part) rsrc_fatal("%s: out of memory", h->spec);
        url = rsrc_arena_printf(h->a, "%s/%s", url, part);
        curl_free(part);
        if (!c[strcspn(c, "/")]) return url;
    }
}

/* The file's bytes into blobs/ETAG, through ETAG.incomplete: resumed where one is left, never
 * written past the size the HEAD gave. A part cut by the network is kept to resume; one the
 * server overfilled or misplaced is removed. */
static void download(hub *h, int blobs, const char *url, const char *file, const char *etag, long long size,
                     char *err) {
    char *part = rsrc_arena_printf(h->a, "%s.incomplete", etag),
         *shown = rsrc_arena_printf(h->a, "%s/blobs/%s", h->dir, part);
    long long have = regular_size(blobs, part);
    if (have > size) unlinkat(blobs, part, 0), have = -1; /* not the start of this file */
    if (have < size) {
        int fd = openat(blobs, part, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) rsrc_fatal("cannot write %s: %s", shown, strerror(errno));
        double mb = (double)size / 1e6;
        rsrc_note(0, "%s: downloading %s (%.*f MB)%s", h->spec, file, mb < 10 ? 2 : 0, mb,
                  have > 0 ? ", resuming" : "");
        meter m = {file, have > 0 ? have : 0, rsrc_now(), 0};
        transfer t = {.fd = fd, .from = have > 0 ? have : 0, .cap = size, .m = &m};
        long status = request(h, url, &t, false, err);
        if (m.last > 0) fputc('\n', stderr);
        int closed = close(fd);
        if (t.over || t.refusal[0]) {
            unlinkat(blobs, part, 0);
            if (t.over)
                rsrc_fatal("%s: the Hub sent more of %s than the %lld bytes its HEAD gave; refusing it (%s removed)",
                           h->spec, file, size, shown);
            rsrc_fatal("%s: downloading %s: %s; refusing it (%s removed)", h->spec, file, t.refusal, shown);
        }
        if (t.write_errno || closed != 0)
            rsrc_fatal("cannot write %s: %s", shown, strerror(t.write_errno ? t.write_errno : errno));
        long long now = regular_size(blobs, part);
        if (status < 0 || (status != 200 && status != 206) || now != size) {
            if (now == 0) unlinkat(blobs, part, 0); /* nothing to resume */
            if (status < 0) rsrc_fatal("%s: downloading %s failed: %s (run it again to resume)", h->spec, file, err);
            if (status != 200 && status != 206) refuse_status(h, file, status);
            rsrc_fatal("%s: %s came to %lld bytes of %lld (run it again to resume)", h->spec, file, now, size);
        }
    }
    if (renameat(blobs, part, blobs, etag) != 0) rsrc_fatal("cannot rename %s: %s", shown, strerror(errno));
}

/* snapshots/COMMIT/FILE -> ../../blobs/ETAG, one ../ more for each directory in FILE */
static void link_snapshot(hub *h, const char *commit, const char *file, const char *etag) {
    char *rel = rsrc_arena_printf(h->a, "snapshots/%s/%s", commit, file), *name = strrchr(rel, '/');
    *name++ = 0;
    int dir = open_under(h, h->dirfd, h->dir, rel);
    char *target = rsrc_arena_printf(h->a, "../blobs/%s", etag),
         *where = rsrc_arena_printf(h->a, "%s/%s/%s", h->dir, rel, name);
    for (const char *c = rel; (c = strchr(c, '/')); c++) target = rsrc_arena_printf(h->a, "../%s", target);
    if (unlinkat(dir, name, 0) != 0 && errno != ENOENT) rsrc_fatal("cannot replace %s: %s", where, strerror(errno));
    if (symlinkat(target, dir, name) != 0) rsrc_fatal("cannot link %s: %s", where, strerror(errno));
}

/* One file of the commit into blobs/ and its snapshot link. */
static void fetch_file(hub *h, const char *commit, const char *file, char *err) {
    char *link = rsrc_arena_printf(h->a, "%s/snapshots/%s/%s", h->dir, commit, file);
    if (access(link, R_OK) == 0) return; /* already there (a link to a whole blob) */
    char *url = resolve_url(h, commit, file);
    transfer head = {.fd = -1};
    long status = request(h, url, &head, true, err);
    if (status < 0) rsrc_fatal("%s: cannot reach the Hub for %s: %s", h->spec, file, err);
    if (status >= 400) refuse_status(h, file, status);
    const char *etag = head.head.etag;
    if (!etag[0]) rsrc_fatal("%s: the Hub gave no ETag for %s", h->spec, file);
    if (!hub_etag_ok(etag))
        rsrc_fatal("%s: the Hub's ETag for %s ('%s') is not a file name; refusing it", h->spec, file,
                   hub_shown(h->a, etag));
    if (head.head.size < 0)
        rsrc_fatal("%s: the Hub gave no size for %s (X-Linked-Size or Content-Length)", h->spec, file);
    int blobs = open_under(h, h->dirfd, h->dir, "blobs");
    if (regular_size(blobs, etag) != head.head.size) download(h, blobs, url, file, etag, head.head.size, err);
    link_snapshot(h, commit, file, etag);
}

/* refs/REVISION: the commit a branch or tag names now (one like refs/pr/1 in directories) */
static void write_ref(hub *h, const char *commit) {
    char *rel = rsrc_arena_printf(h->a, "refs/%s", h->rev), *name = strrchr(rel, '/');
    *name++ = 0;
    int dir = open_under(h, h->dirfd, h->dir, rel);
    char *where = rsrc_arena_printf(h->a, "%s/%s/%s", h->dir, rel, name);
    int fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    size_t n = strlen(commit);
    if (fd < 0 || write(fd, commit, n) != (ssize_t)n || close(fd) != 0)
        rsrc_fatal("cannot write %s: %s", where, strerror(errno));
}

static char *read_ref(const hub *h) {
    char *path = rsrc_arena_printf(h->a, "%s/refs/%s", h->dir, h->rev);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char line[128] = "";
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    if (!ok || !*line) return NULL;
    if (!hub_commit_ok(line)) rsrc_fatal("%s: %s holds no commit ('%s')", h->spec, path, hub_shown(h->a, line));
    return rsrc_arena_printf(h->a, "%s", line);
}

/* What to compile in the snapshot: its directory, or the one file. */
static char *snapshot_input(const hub *h, const char *commit, char **files) {
    char *snap = rsrc_arena_printf(h->a, "%s/snapshots/%s", h->dir, commit);
    bool gguf = files[0] && !files[1] && hub_is_gguf(files[0]);
    for (int i = 0; files[i]; i++) {
        char *p = rsrc_arena_printf(h->a, "%s/%s", snap, files[i]);
        if (access(p, R_OK) != 0) rsrc_fatal("%s: %s is missing from the cache (%s)", h->spec, files[i], p);
        if (gguf) return p;
    }
    return snap;
}

/* Offline: the files of the cached snapshot (a directory: all; one GGUF: --hf-file or the one). */
static char *offline(const hub *h, const char *only, const char *why) {
    char *commit = read_ref(h);
    if (!commit)
        rsrc_fatal("%s: %s, and the cache (%s) holds no snapshot of revision '%s'", h->spec, why, h->dir, h->rev);
    rsrc_note(0, "%s: %s; using the cached snapshot %.12s", h->spec, why, commit);
    char *snap = rsrc_arena_printf(h->a, "%s/snapshots/%s", h->dir, commit);
    char *path = only ? rsrc_arena_printf(h->a, "%s/%s", snap, only) : NULL;
    if (path && access(path, R_OK) != 0) rsrc_fatal("%s: %s is not in the cached snapshot", h->spec, only);
    if (!path) {
        if (access(rsrc_arena_printf(h->a, "%s/config.json", snap), R_OK) == 0) path = snap;
    }
    DIR *d = path ? NULL : opendir(snap);
    int ggufs = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (hub_is_gguf(e->d_name) && ggufs++ == 0) path = rsrc_arena_printf(h->a, "%s/%s", snap, e->d_name);
    if (d) closedir(d);
    if (ggufs > 1)
        rsrc_fatal("%s: the cached snapshot %s holds %d GGUF files; choose one with --hf-file", h->spec, snap, ggufs);
    if (!path) rsrc_fatal("%s: the cached snapshot %s holds neither a checkpoint nor a GGUF file", h->spec, snap);
    return path;
}

/* $var in whole seconds (huggingface_hub's default 10) */
static long seconds_of(const hub *h, const char *var) {
    const char *v = getenv(var);
    if (!v || !*v) return 10;
    char *end;
    errno = 0;
    long s = strtol(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || errno || s < 1 || s > 86400)
        rsrc_fatal("%s ('%s') is not a number of seconds (a whole number from 1 to 86400)", var, hub_shown(h->a, v));
    return s;
}

static void parse_spec(hub *h, const char *spec, const char *only) {
    h->spec = spec;
    const char *name = spec + 3, *at = strchr(name, '@');
    h->repo = at ? rsrc_arena_printf(h->a, "%.*s", (int)(at - name), name) : rsrc_arena_printf(h->a, "%s", name);
    h->rev = rsrc_arena_printf(h->a, "%s", at && at[1] ? at + 1 : "main");
    if (!hub_repo_ok(h->repo)) rsrc_fatal("%s: a model on the Hub is hf:ORG/NAME or hf:ORG/NAME@REVISION", spec);
    if (!hub_revision_ok(h->rev))
        rsrc_fatal("%s: the revision '%s' is not a branch, tag or commit (letters, digits and -_.+/, no empty, '.' or "
                   "'..' component); refusing it",
                   spec, hub_shown(h->a, h->rev));
    if (only && !hub_file_ok(only))
        rsrc_fatal("--hf-file ('%s') is not a path inside the repository (relative, no empty, '.' or '..' component)",
                   hub_shown(h->a, only));
    const char *ep = getenv("HF_ENDPOINT");
    h->endpoint = rsrc_arena_printf(h->a, "%s", ep && *ep ? ep : "https://huggingface.co");
    if (strncasecmp(h->endpoint, "http://", 7) && strncasecmp(h->endpoint, "https://", 8))
        rsrc_fatal("HF_ENDPOINT ('%s') is not an http:// or https:// URL", hub_shown(h->a, h->endpoint));
    size_t n = strlen(h->endpoint);
    while (n > 0 && h->endpoint[n - 1] == '/') h->endpoint[--n] = 0;
    h->etag_timeout = seconds_of(h, "HF_HUB_ETAG_TIMEOUT");
    h->download_timeout = seconds_of(h, "HF_HUB_DOWNLOAD_TIMEOUT");
    const char *cache = getenv("HF_HUB_CACHE"), *home = getenv("HF_HOME"), *user = getenv("HOME");
    h->root = cache && *cache ? rsrc_arena_printf(h->a, "%s", cache)
              : home && *home ? rsrc_arena_printf(h->a, "%s/hub", home)
              : user && *user ? rsrc_arena_printf(h->a, "%s/.cache/huggingface/hub", user)
                              : ".cache/huggingface/hub";
    char *flat = rsrc_arena_printf(h->a, "%s", h->repo);
    *strchr(flat, '/') = 0;
    h->dir = rsrc_arena_printf(h->a, "%s/models--%s--%s", h->root, flat, strchr(h->repo, '/') + 1);
    const char *token = getenv("HF_TOKEN");
    if (token && *token) h->auth = rsrc_arena_printf(h->a, "Authorization: Bearer %s", token);
}

static void curl_release(void *c) { curl_easy_cleanup(c); }

/* The path to compile, in the cache: the caller frees it. */
static char *fetch(hub *h, const char *only) {
    const char *off = getenv("HF_HUB_OFFLINE");
    if (off && *off && strcmp(off, "0")) return offline(h, only, "HF_HUB_OFFLINE is set");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(h->curl = curl_easy_init()))
        rsrc_fatal("%s: cannot start libcurl", h->spec);
    rsrc_arena_own(h->a, curl_release, h->curl);
    char err[CURL_ERROR_SIZE] = "";
    char *rev = curl_easy_escape(h->curl, h->rev, 0);
    rsrc_arena_own(h->a, curl_free, rev);
    char *url = rsrc_arena_printf(h->a, "%s/api/models/%s/revision/%s", h->endpoint, h->repo, rev);
    transfer api = {.fd = -1, .cap = HUB_LISTING_MAX};
    long status = request(h, url, &api, false, err);
    rsrc_arena_own(h->a, free, api.data);
    if (api.over)
        rsrc_fatal("%s: the Hub's answer about revision '%s' is over %d MiB; refusing it", h->spec, h->rev,
                   HUB_LISTING_MAX >> 20);
    if (api.refusal[0]) rsrc_fatal("%s: the Hub's answer about revision '%s': %s; refusing it", h->spec, h->rev, err);
    if (status < 0)
        return offline(h, only, rsrc_arena_printf(h->a, "the Hub (%s) cannot be reached: %s", h->endpoint, err));
    if (status >= 400) refuse_status(h, "such repository or revision", status);
    hub_listing l;
    hub_read_listing(h->a, h->spec, h->rev, api.data ? api.data : "", (size_t)api.got, &l);
    char **files = hub_choose(h->a, h->spec, &l, only);
    open_repo(h);
    for (int i = 0; files[i]; i++) fetch_file(h, l.commit, files[i], err);
    if (strcmp(h->rev, l.commit)) write_ref(h, l.commit); /* a branch or tag: where it points now */
    rsrc_note(1, "%s: commit %.12s in %s", h->spec, l.commit, h->dir);
    return snapshot_input(h, l.commit, files);
}

char *hub_fetch(const char *spec, const char *only) {
    hub h = {.a = rsrc_arena_open(), .dirfd = -1};
    parse_spec(&h, spec, only);
    char *input = xstrdup(fetch(&h, only));
    rsrc_arena_close(h.a);
    return input;
}
