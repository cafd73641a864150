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
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "rsrc.h"

typedef struct hub {
    const char *spec; /* as given: hf:ORG/NAME[@REV] */
    char *repo, *rev, *endpoint, *dir, *auth;
    CURL *curl;
    arena *a; /* everything below; fatal() releases it too */
} hub;

typedef struct fetched {
    char *data;
    size_t n;
    char etag[160];
    long long size; /* X-Linked-Size or Content-Length; -1: not said */
} fetched;

static size_t to_memory(char *p, size_t size, size_t n, void *arg) {
    fetched *f = arg;
    char *grown = realloc(f->data, f->n + size * n + 1);
    if (!grown) return 0;
    f->data = grown;
    memcpy(f->data + f->n, p, size * n);
    f->n += size * n, f->data[f->n] = 0;
    return size * n;
}

/* header "Name: value" into dst when it is name (X-Linked-Etag wins over ETag) */
static size_t on_header(char *p, size_t size, size_t n, void *arg) {
    fetched *f = arg;
    size_t len = size * n;
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line - 1 ? len : sizeof line - 1), p);
    line[strcspn(line, "\r\n")] = 0;
    char *colon = strchr(line, ':');
    if (!colon) return len;
    *colon = 0;
    const char *v = colon + 1;
    while (*v == ' ') v++;
    bool linked = !strcasecmp(line, "X-Linked-Etag");
    if (linked || (!strcasecmp(line, "ETag") && !f->etag[0])) {
        if (!strncmp(v, "W/", 2)) v += 2;
        snprintf(f->etag, sizeof f->etag, "%s", v + (*v == '"'));
        f->etag[strcspn(f->etag, "\"")] = 0;
    }
    if (!strcasecmp(line, "X-Linked-Size") || (!strcasecmp(line, "Content-Length") && f->size < 0)) f->size = atoll(v);
    return len;
}

static char *url_of(const hub *h, const char *fmt, const char *a, const char *b) {
    return arena_printf(h->a, fmt, h->endpoint, h->repo, a, b);
}

/* A status line while a file comes down, on a terminal only (every half second). */
typedef struct meter {
    const char *file;
    long long base; /* bytes there before (a resumed download) */
    double t0, last;
} meter;

static int on_progress(void *arg, curl_off_t total, curl_off_t now, curl_off_t ut, curl_off_t un) {
    (void)ut, (void)un;
    meter *m = arg;
    double t = now_seconds();
    if (t - m->last < 0.5 || !isatty(2)) return 0;
    m->last = t;
    fprintf(stderr, "\rrsrc: %s: %.1f of %.1f MB, %.1f MB/s   ", m->file, (double)(m->base + now) / 1e6,
            (double)(m->base + total) / 1e6, (double)now / 1e6 / (t - m->t0 > 1e-3 ? t - m->t0 : 1e-3));
    return 0;
}

/* A request: GET into f (body NULL: HEAD, not following redirects); the HTTP status, or -1 with
 * curl's message in err. */
static long request(hub *h, const char *url, fetched *f, bool body, FILE *to, long long from, char *err, meter *m) {
    CURL *c = h->curl;
    curl_easy_reset(c);
    struct curl_slist *hd = h->auth ? curl_slist_append(NULL, h->auth) : NULL;
    char range[64];
    snprintf(range, sizeof range, "%lld-", from);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "rsrc/" RSRC_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(c, CURLOPT_NOBODY, body ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, body ? 1L : 0L);
    if (m) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, m);
    }
    if (to) {
        curl_easy_setopt(c, CURLOPT_WRITEDATA, to);
        if (from > 0) curl_easy_setopt(c, CURLOPT_RANGE, range);
    } else {
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_memory);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    }
    err[0] = 0;
    CURLcode rc = curl_easy_perform(c);
    long status = -1;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else if (!err[0])
        snprintf(err, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
    curl_slist_free_all(hd);
    return status;
}

static void refuse_status(const hub *h, const char *what, long status) {
    if (status == 401 || status == 403)
        fatal("%s: the Hub refused %s (HTTP %ld): a gated or private repository needs HF_TOKEN, and access "
              "granted on its page",
              h->spec, what, status);
    if (status == 404) fatal("%s: the Hub has no %s (HTTP 404): check the name and the revision", h->spec, what);
    fatal("%s: the Hub answered HTTP %ld for %s", h->spec, status, what);
}

static void mkdirs(const char *path) {
    char p[4096];
    if (strlen(path) >= sizeof p) fatal("a path too long for the cache: %s", path);
    strcpy(p, path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) fatal("cannot create %s: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) fatal("cannot create %s: %s", p, strerror(errno));
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* a file of a checkpoint that rsrc reads (at the top of the repository) */
static bool wanted(const char *name) {
    if (strchr(name, '/')) return false;
    static const char *const exact[] = {
        "config.json",     "model.safetensors.index.json", "tokenizer.json",        "tokenizer_config.json",
        "tokenizer.model", "special_tokens_map.json",      "generation_config.json"};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (!strcmp(name, exact[i])) return true;
    size_t n = strlen(name);
    return n > 12 && !strcmp(name + n - 12, ".safetensors");
}

static bool is_gguf(const char *name) {
    size_t n = name ? strlen(name) : 0;
    return n > 5 && !strcmp(name + n - 5, ".gguf");
}

/* The files to fetch, from the revision's listing (NULL-terminated, in the listing's order). */
static char **choose_files(const hub *h, const cJSON *siblings, const char *only) {
    int n = cJSON_GetArraySize(siblings), k = 0, ggufs = 0, weights = 0;
    char **files = arena_alloc(h->a, sizeof *files * ((size_t)n + 1));
    memset(files, 0, sizeof *files * ((size_t)n + 1));
    bool config = false;
    const cJSON *s;
    cJSON_ArrayForEach(s, siblings) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "rfilename"));
        if (!name) continue;
        ggufs += is_gguf(name), config |= !strcmp(name, "config.json");
        weights += wanted(name) && strstr(name, ".safetensors") != NULL;
    }
    bool checkpoint = !only && config && weights > 0;
    char *list = "";
    cJSON_ArrayForEach(s, siblings) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "rfilename"));
        if (!name) continue;
        if (only ? !strcmp(name, only) : checkpoint ? wanted(name) : is_gguf(name) && ggufs == 1)
            files[k++] = arena_printf(h->a, "%s", name);
        if (is_gguf(name)) list = arena_printf(h->a, "%s\n  %s", list, name);
    }
    if (only && !k) fatal("%s: the repository has no file '%s' (--hf-file)", h->spec, only);
    if (!k && !ggufs)
        fatal("%s: the repository holds neither a checkpoint (config.json and .safetensors) nor a GGUF file", h->spec);
    if (!k) fatal("%s: the repository holds %d GGUF files; choose one with --hf-file:%s", h->spec, ggufs, list);
    return files;
}

/* One file of the commit into blobs/ and its snapshot link. */
static void fetch_file(hub *h, const char *commit, const char *file, char *err) {
    char *link = arena_printf(h->a, "%s/snapshots/%s/%s", h->dir, commit, file);
    if (access(link, R_OK) == 0) return; /* already there (a link to a whole blob) */
    char *url = url_of(h, "%s/%s/resolve/%s/%s", commit, file);
    fetched head = {.size = -1};
    long status = request(h, url, &head, false, NULL, 0, err, NULL);
    if (status < 0) fatal("%s: cannot reach the Hub for %s: %s", h->spec, file, err);
    if (status >= 400) refuse_status(h, file, status);
    if (!head.etag[0]) fatal("%s: the Hub gave no ETag for %s", h->spec, file);
    arena_own(h->a, free, head.data);
    char *blob = arena_printf(h->a, "%s/blobs/%s", h->dir, head.etag),
         *part = arena_printf(h->a, "%s.incomplete", blob);
    if (head.size < 0 || file_size(blob) != head.size) {
        long long have = file_size(part);
        FILE *out = fopen(part, have > 0 ? "ab" : "wb");
        if (!out) fatal("cannot write %s: %s", part, strerror(errno));
        double mb = head.size >= 0 ? (double)head.size / 1e6 : 0.0;
        note(0, "%s: downloading %s (%.*f MB)%s", h->spec, file, mb < 10 ? 2 : 0, mb, have > 0 ? ", resuming" : "");
        fetched got = {.size = -1};
        meter m = {file, have > 0 ? have : 0, now_seconds(), 0};
        status = request(h, url, &got, true, out, have > 0 ? have : 0, err, &m);
        if (m.last > 0) fputc('\n', stderr);
        if (fclose(out) != 0 && status >= 0) fatal("cannot write %s: %s", part, strerror(errno));
        if (status < 0) fatal("%s: downloading %s failed: %s (run it again to resume)", h->spec, file, err);
        if (status >= 400) refuse_status(h, file, status);
        if (status == 200 && have > 0) { /* the server sent it all again: keep only that */
            fatal("%s: the Hub did not resume %s; remove %s and run again", h->spec, file, part);
        }
        if (head.size >= 0 && file_size(part) != head.size)
            fatal("%s: %s came to %lld bytes of %lld (run it again to resume)", h->spec, file, file_size(part),
                  head.size);
        if (rename(part, blob) != 0) fatal("cannot rename %s: %s", part, strerror(errno));
    }
    char *dir = arena_printf(h->a, "%s", link);
    *strrchr(dir, '/') = 0;
    mkdirs(dir);
    int depth = 2; /* snapshots/COMMIT/, and one more per directory in the file's name */
    for (const char *c = file; *c; c++) depth += *c == '/';
    size_t cap = 3 * (size_t)depth + strlen(head.etag) + 8;
    char *target = arena_alloc(h->a, cap);
    target[0] = 0;
    for (int i = 0; i < depth; i++) strcat(target, "../");
    strcat(strcat(target, "blobs/"), head.etag);
    unlink(link);
    if (symlink(target, link) != 0) fatal("cannot link %s: %s", link, strerror(errno));
}

static char *read_ref(const hub *h) {
    FILE *f = fopen(arena_printf(h->a, "%s/refs/%s", h->dir, h->rev), "r");
    if (!f) return NULL;
    char line[128] = "";
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    return ok && *line ? arena_printf(h->a, "%s", line) : NULL;
}

/* What to compile in the snapshot: its directory, or the one file. */
static char *snapshot_input(const hub *h, const char *commit, char **files) {
    char *snap = arena_printf(h->a, "%s/snapshots/%s", h->dir, commit);
    bool gguf = files[0] && !files[1] && is_gguf(files[0]);
    for (int i = 0; files[i]; i++) {
        char *p = arena_printf(h->a, "%s/%s", snap, files[i]);
        if (access(p, R_OK) != 0) fatal("%s: %s is missing from the cache (%s)", h->spec, files[i], p);
        if (gguf) return p;
    }
    return snap;
}

/* Offline: the files of the cached snapshot (a directory: all; one GGUF: --hf-file or the one). */
static char *offline(const hub *h, const char *only, const char *why) {
    char *commit = read_ref(h);
    if (!commit) fatal("%s: %s, and the cache (%s) holds no snapshot of revision '%s'", h->spec, why, h->dir, h->rev);
    note(0, "%s: %s; using the cached snapshot %.12s", h->spec, why, commit);
    char *snap = arena_printf(h->a, "%s/snapshots/%s", h->dir, commit);
    char *path = only ? arena_printf(h->a, "%s/%s", snap, only) : NULL;
    if (path && access(path, R_OK) != 0) fatal("%s: %s is not in the cached snapshot", h->spec, only);
    if (!path) {
        if (access(arena_printf(h->a, "%s/config.json", snap), R_OK) == 0) path = snap;
    }
    DIR *d = path ? NULL : opendir(snap);
    int ggufs = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (is_gguf(e->d_name) && ggufs++ == 0) path = arena_printf(h->a, "%s/%s", snap, e->d_name);
    if (d) closedir(d);
    if (ggufs > 1)
        fatal("%s: the cached snapshot %s holds %d GGUF files; choose one with --hf-file", h->spec, snap, ggufs);
    if (!path) fatal("%s: the cached snapshot %s holds neither a checkpoint nor a GGUF file", h->spec, snap);
    return path;
}

static void parse_spec(hub *h, const char *spec) {
    h->spec = spec;
    const char *name = spec + 3, *at = strchr(name, '@');
    h->repo = at ? arena_printf(h->a, "%.*s", (int)(at - name), name) : arena_printf(h->a, "%s", name);
    h->rev = arena_printf(h->a, "%s", at && at[1] ? at + 1 : "main");
    const char *slash = strchr(h->repo, '/');
    if (!slash || slash == h->repo || !slash[1] || strchr(slash + 1, '/') || strstr(h->repo, ".."))
        fatal("%s: a model on the Hub is hf:ORG/NAME or hf:ORG/NAME@REVISION", spec);
    const char *ep = getenv("HF_ENDPOINT");
    h->endpoint = arena_printf(h->a, "%s", ep && *ep ? ep : "https://huggingface.co");
    size_t n = strlen(h->endpoint);
    while (n > 0 && h->endpoint[n - 1] == '/') h->endpoint[--n] = 0;
    const char *cache = getenv("HF_HUB_CACHE"), *home = getenv("HF_HOME"), *user = getenv("HOME");
    char *root = cache && *cache ? arena_printf(h->a, "%s", cache)
                 : home && *home ? arena_printf(h->a, "%s/hub", home)
                 : user && *user ? arena_printf(h->a, "%s/.cache/huggingface/hub", user)
                                 : ".cache/huggingface/hub";
    char *flat = arena_printf(h->a, "%s", h->repo);
    *strchr(flat, '/') = 0;
    h->dir = arena_printf(h->a, "%s/models--%s--%s", root, flat, strchr(h->repo, '/') + 1);
    const char *token = getenv("HF_TOKEN");
    if (token && *token) h->auth = arena_printf(h->a, "Authorization: Bearer %s", token);
}

static void curl_release(void *c) { curl_easy_cleanup(c); }
static void json_release(void *j) { cJSON_Delete(j); }

/* The path to compile, in the cache: the caller frees it. */
static char *fetch(hub *h, const char *only) {
    const char *off = getenv("HF_HUB_OFFLINE");
    if (off && *off && strcmp(off, "0")) return offline(h, only, "HF_HUB_OFFLINE is set");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(h->curl = curl_easy_init()))
        fatal("%s: cannot start libcurl", h->spec);
    arena_own(h->a, curl_release, h->curl);
    char err[CURL_ERROR_SIZE] = "";
    char *rev = curl_easy_escape(h->curl, h->rev, 0);
    arena_own(h->a, curl_free, rev);
    fetched api = {.size = -1};
    long status = request(h, url_of(h, "%s/api/models/%s/revision/%s%s", rev, ""), &api, true, NULL, 0, err, NULL);
    arena_own(h->a, free, api.data);
    if (status < 0) return offline(h, only, arena_printf(h->a, "the Hub (%s) cannot be reached: %s", h->endpoint, err));
    if (status >= 400) refuse_status(h, "such repository or revision", status);
    cJSON *info = cJSON_Parse(api.data ? api.data : "");
    arena_own(h->a, json_release, info);
    const char *commit = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(info, "sha"));
    const cJSON *siblings = cJSON_GetObjectItemCaseSensitive(info, "siblings");
    if (!commit || !cJSON_IsArray(siblings) || strlen(commit) > 64 || strchr(commit, '/'))
        fatal("%s: the Hub's answer about the revision is not what rsrc expects", h->spec);
    char **files = choose_files(h, siblings, only);
    mkdirs(arena_printf(h->a, "%s/blobs", h->dir));
    for (int i = 0; files[i]; i++) fetch_file(h, commit, files[i], err);
    if (strcmp(h->rev, commit)) { /* a branch or tag: where it points now */
        char *ref = arena_printf(h->a, "%s/refs/%s", h->dir, h->rev);
        *strrchr(ref, '/') = 0;
        mkdirs(ref);
        ref[strlen(ref)] = '/';
        FILE *f = fopen(ref, "w");
        if (!f || fputs(commit, f) < 0 || fclose(f) != 0) fatal("cannot write %s", ref);
    }
    note(1, "%s: commit %.12s in %s", h->spec, commit, h->dir);
    return snapshot_input(h, commit, files);
}

char *hub_fetch(const char *spec, const char *only) {
    hub h = {.a = arena_open()};
    parse_spec(&h, spec);
    char *input = xstrdup(fetch(&h, only));
    arena_close(h.a);
    return input;
}
