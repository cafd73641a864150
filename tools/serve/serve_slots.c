/*
 * serve_slots.c — sessions that outlive a request (docs/sessions.md):
 *   - llama-server's slot API: GET /slots (what each slot holds), POST /slots/{id}?action=save,
 *     restore or erase, files under --slot-save-path only;
 *   - --cache-dir: every KV cache written there when a request ends in it (a thread of its own,
 *     never the engine's), and read back when the server starts.
 * A cache being written or read is claimed from the engine (serve_cache_claim): no request takes
 * it meanwhile, the other slots keep decoding, and a request whose prompt it may hold waits.
 *
 * A slot file: "RSRSLOT2", the digest of the tenant whose prefix it is (serve_job.tenant: its API
 * key and cache_salt), the bytes of the state that follows, the checksum of those 48 bytes
 * (rsr_checksum_add), then the runtime's session state (rsr_session_save_fd: the model, KV type and
 * context it came from, and a checksum of every byte, all checked before any of it is used): a file
 * longer or shorter than its header says is refused before any cache is touched. A restored cache
 * is that tenant's again: one tenant never reuses another's prefix, and never writes over another's
 * file. Files are written beside their name and renamed over it (a crash leaves the old file or
 * none), opened without following a link (nor one with other hard links), and named by one path
 * component the client gives (no separator, no "..", no NUL, not hidden).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rsr_artifact.h" /* rsr_checksum_add */
#include "serve_server.h"

#define SLOT_MAGIC "RSRSLOT2"
#define SLOT_OLD_MAGIC "RSRSLOT1" /* before the state's size was in the header */
#define SLOT_WAIT_S 30.0          /* how long a save or restore waits for its slot's request to end */

typedef struct slot_header {
    char magic[8];
    unsigned char tenant[32];
    int64_t state_bytes; /* the session state's, which follows the header */
    uint64_t sum;        /* of the 48 bytes before it */
} slot_header;

static uint64_t header_sum(const slot_header *h) { return rsr_checksum_add(0x5107, (const uint8_t *)h, 0, 6); }
static pthread_mutex_t save_lock = PTHREAD_MUTEX_INITIALIZER; /* a save's check of the name and its rename */

/* ---- the files ---- */

/* Whether name is one plain file name a client may give; else why not in err. */
static bool name_ok(const char *name, size_t n, char *err, size_t errlen) {
    const char *why = !n                                              ? "is empty"
                      : n > 200                                       ? "is over 200 bytes"
                      : memchr(name, 0, n)                            ? "holds a NUL"
                      : memchr(name, '/', n) || memchr(name, '\\', n) ? "holds a path separator"
                      : strstr(name, "..")                            ? "holds '..'"
                      : name[0] == '.'                                ? "begins with '.' (the server's own files do)"
                                                                      : NULL;
    if (why) snprintf(err, errlen, "'filename' %s: it must be a plain file name in the server's --slot-save-path", why);
    return !why;
}

static int slot_open(int dir, const char *name, slot_header *h, char *err, size_t errlen);

/* Whether a save may write dir/name for tenant me: no file of that name, or one of me's (or one no
 * server reads: of an older version, damaged, with other hard links; written over); else why not
 * in err, with the status to answer. */
static int save_refused(int dir, const char *name, const unsigned char me[32], char *err, size_t errlen) {
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return snprintf(err, errlen, "'%s' names something that is not a regular file", name), 400;
    slot_header h;
    int fd = S_ISREG(st.st_mode) ? slot_open(dir, name, &h, err, errlen) : -1;
    if (fd < 0) return 0;
    close(fd);
    if (!memcmp(h.tenant, me, 32)) return 0;
    return snprintf(err, errlen, "'%s' holds another tenant's conversation (another API key or cache_salt)", name), 403;
}

/* Writes cache c's session as dir/name, atomically; 0, -1 with why in err, or (me given: the slot API's
 * save for tenant me) 400 or 403 where save_refused says, checked with the rename under save_lock
 * (the writing before it runs unlocked). */
static int slot_write(int dir, const char *name, serve_cache *c, const unsigned char *me, int64_t *bytes, char *err,
                      size_t errlen) {
    static unsigned serial;
    char tmp[256];
    snprintf(tmp, sizeof tmp, ".%.200s.%ld.%u.tmp", name, (long)getpid(),
             __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED));
    int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno)), -1;
    slot_header h = {.magic = SLOT_MAGIC};
    serve_cache_tenant(c, h.tenant);
    int64_t n = 0;
    bool ok = lseek(fd, (off_t)sizeof h, SEEK_SET) == (off_t)sizeof h;
    if (!ok) snprintf(err, errlen, "cannot write %s: %s", name, strerror(errno));
    rsr_session *s = serve_cache_session(c);
    if (ok && !(ok = api.session_save_fd(s, fd, &n) == RSR_OK)) snprintf(err, errlen, "%s", api.session_errmsg(s));
    h.state_bytes = n, h.sum = header_sum(&h);
    if (ok && !(ok = pwrite(fd, &h, sizeof h, 0) == (ssize_t)sizeof h))
        snprintf(err, errlen, "cannot write %s: %s", name, strerror(errno));
    if (ok && !(ok = fsync(fd) == 0)) snprintf(err, errlen, "cannot write %s: %s", name, strerror(errno));
    if (close(fd) != 0 && ok) ok = false, snprintf(err, errlen, "cannot write %s: %s", name, strerror(errno));
    int status = 0;
    const bool locked = ok && me;
    if (locked) pthread_mutex_lock(&save_lock);
    if (locked && (status = save_refused(dir, name, me, err, errlen)) != 0) ok = false;
    if (ok && !(ok = renameat(dir, tmp, dir, name) == 0))
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, name, strerror(errno));
    if (locked) pthread_mutex_unlock(&save_lock);
    if (!ok) return unlinkat(dir, tmp, 0), status ? status : -1;
    fsync(dir); /* the rename itself */
    *bytes = (int64_t)sizeof h + n;
    return 0;
}

/* Opens dir/name, a regular file with a slot's header (into h), before any cache is claimed (a FIFO
 * or a device never blocks: O_NONBLOCK, and only a regular file is read): its descriptor, -1 with
 * why in err (the file's fault), or -2 (no such file). */
static int slot_open(int dir, const char *name, slot_header *h, char *err, size_t errlen) {
    int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return snprintf(err, errlen, "no saved slot named '%s'", name), -2;
    if (fd < 0)
        return snprintf(err, errlen, "cannot open '%s': %s", name,
                        errno == ELOOP ? "it is a symbolic link, which is not followed" : strerror(errno)),
               -1;
    struct stat st;
    const char *why = NULL;
    char more[96] = "";
    ssize_t got = 0;
    const bool stat_ok = fstat(fd, &st) == 0;
    const int64_t after = stat_ok ? (int64_t)st.st_size - (int64_t)sizeof *h : 0; /* the bytes past the header */
    if (!stat_ok || !S_ISREG(st.st_mode))
        why = "is not a regular file";
    else if (st.st_nlink > 1)
        why = "has other hard links (a name that may stand for a file outside the directory), so it is not read";
    else if ((got = read(fd, h, sizeof *h)) < 0)
        why = strerror(errno);
    else if (got >= 8 && !memcmp(h->magic, SLOT_OLD_MAGIC, 8))
        why = "was saved by an older rsr-serve (" SLOT_OLD_MAGIC "), whose files this one does not read";
    else if (!got || memcmp(h->magic, SLOT_MAGIC, got < 8 ? (size_t)got : 8))
        why = "is not a slot saved by rsr-serve (no " SLOT_MAGIC " header)";
    else if (got != (ssize_t)sizeof *h)
        snprintf(more, sizeof more, "is truncated within its header (%zd bytes)", got), why = more;
    else if (h->sum != header_sum(h))
        why = "fails its header's checksum: it was damaged or altered after it was saved";
    else if (h->state_bytes != after)
        snprintf(more, sizeof more, "%s: %lld bytes after its header where it says %lld",
                 h->state_bytes < 0 || h->state_bytes > after ? "is truncated" : "holds bytes past its end",
                 (long long)after, (long long)h->state_bytes),
            why = more;
    if (!why) return fd;
    close(fd);
    snprintf(err, errlen, "'%s' %s", name, why);
    return -1;
}

/* The session state after the header of an opened slot file into cache c: 0, or -1 with why in err
 * (the session left as it was: a refusal), or -3 (it could not be read after it was checked). */
static int slot_load(int fd, const char *name, serve_cache *c, int64_t *bytes, char *err, size_t errlen) {
    rsr_session *s = serve_cache_session(c);
    rsr_status st = api.session_load_fd(s, fd, bytes);
    close(fd);
    if (st == RSR_OK) return *bytes += (int64_t)sizeof(slot_header), 0;
    snprintf(err, errlen, "'%s': %s", name, api.session_errmsg(s));
    return st == RSR_ERR_IO || st == RSR_ERR_OUT_OF_MEMORY ? -3 : -1;
}

/* Reads dir/name into cache c and its tenant into tenant: 0, or slot_open's and slot_load's codes. */
static int slot_read(int dir, const char *name, serve_cache *c, unsigned char tenant[32], int64_t *bytes, char *err,
                     size_t errlen) {
    slot_header h;
    int fd = slot_open(dir, name, &h, err, errlen);
    if (fd < 0) return fd;
    int rc = slot_load(fd, name, c, bytes, err, errlen);
    if (rc == 0) memcpy(tenant, h.tenant, 32);
    return rc;
}

static double ms_since(double t0) { return 1e3 * (serve_now() - t0); }

/* ---- the slot API ---- */

/* The tenant of a slot API request: its API key, and the body's cache_salt when it gives one. */
static void caller_of(server *sv, struct MHD_Connection *c, const char *body, size_t len, unsigned char out[32]) {
    serve_params p = {0};
    cJSON *root = len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *salt = root ? cJSON_GetObjectItemCaseSensitive(root, "cache_salt") : NULL;
    if (cJSON_IsString(salt) && *salt->valuestring) p.cache_salt = salt->valuestring;
    tenant_of(sv, c, &p, out);
    cJSON_Delete(root);
}

static enum MHD_Result slots_list(server *sv, struct MHD_Connection *c) {
    const int32_t n = serve_slots_count(sv->e);
    serve_slot_info *info = calloc((size_t)n, sizeof *info);
    if (!info) return send_error(c, 503, "server_error", NULL, NULL, "out of memory");
    serve_slot_list(sv->e, info);
    unsigned char me[32];
    caller_of(sv, c, "", 0, me);
    cJSON *root = cJSON_CreateArray();
    for (int32_t k = 0; k < n; k++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddNumberToObject(s, "id", k);
        cJSON_AddNumberToObject(s, "n_ctx", serve_ctx(sv->e));
        cJSON_AddBoolToObject(s, "is_processing", info[k].processing);
        if (!memcmp(info[k].tenant, me, 32) || !info[k].n_tokens) /* another tenant's: not even its length */
            cJSON_AddNumberToObject(s, "n_tokens", info[k].n_tokens);
        cJSON_AddItemToArray(root, s);
    }
    free(info);
    return send_json(c, MHD_HTTP_OK, root, 0);
}

/* The body's "filename", checked; NULL after a reply was sent (*ret). */
static char *filename_of(struct MHD_Connection *c, const char *body, size_t len, enum MHD_Result *ret) {
    char err[200];
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *f = root ? cJSON_GetObjectItemCaseSensitive(root, "filename") : NULL;
    char *name = NULL;
    if (!f || !cJSON_IsString(f))
        *ret = send_error(c, 400, "invalid_request_error", "filename", NULL,
                          "the body must be {\"filename\": \"NAME\"}: a file name in the server's --slot-save-path");
    else if (serve_json_has_nul(body, len) || !name_ok(f->valuestring, strlen(f->valuestring), err, sizeof err))
        *ret = send_error(c, 400, "invalid_request_error", "filename", NULL, "%s",
                          serve_json_has_nul(body, len) ? "'filename' holds a NUL" : err);
    else if (!(name = strdup(f->valuestring)))
        *ret = send_error(c, 503, "server_error", NULL, NULL, "out of memory");
    cJSON_Delete(root);
    return name;
}

/* Why the caller may not act on cache cc (NULL: it may): another tenant's conversation is neither
 * saved, erased nor written over by this one. */
static const char *not_yours(serve_cache *cc, const unsigned char me[32]) {
    unsigned char owner[32];
    serve_cache_tenant(cc, owner);
    return api.session_position(serve_cache_session(cc)) > 0 && memcmp(owner, me, 32)
               ? "holds another tenant's conversation (another API key or cache_salt)"
               : NULL;
}

/* A save refused by save_refused's status (400 or 403) */
static enum MHD_Result save_refusal(struct MHD_Connection *c, int status, const char *err) {
    return send_error(c, status, status == 403 ? "permission_error" : "invalid_request_error", "filename", NULL, "%s",
                      err);
}

static enum MHD_Result slot_action(server *sv, struct MHD_Connection *c, int32_t id, const char *action,
                                   const char *body, size_t len) {
    enum MHD_Result ret = MHD_NO;
    char err[512];
    const bool save = !strcmp(action, "save"), restore = !strcmp(action, "restore"), erase = !strcmp(action, "erase");
    if (!save && !restore && !erase)
        return send_error(c, 400, "invalid_request_error", "action", NULL,
                          "action '%.40s' is not save, restore or erase", action);
    char *name = erase ? NULL : filename_of(c, body, len, &ret);
    if (!erase && !name) return ret;
    unsigned char me[32];
    caller_of(sv, c, body, len, me);
    slot_header h;
    const int early = save ? save_refused(sv->save_dir, name, me, err, sizeof err) : 0; /* again at the rename */
    if (early) return free(name), save_refusal(c, early, err);
    int fd = restore ? slot_open(sv->save_dir, name, &h, err, sizeof err) : 0;
    if (fd >= 0 && restore && memcmp(h.tenant, me, 32)) close(fd), fd = -4;
    if (fd < 0) {
        free(name);
        return fd == -4 ? send_error(c, 403, "permission_error", "filename", NULL,
                                     "the file holds another tenant's "
                                     "conversation (another API key or cache_salt)")
                        : send_error(c, fd == -2 ? MHD_HTTP_NOT_FOUND : 400, "invalid_request_error", "filename", NULL,
                                     "%s", err);
    }
    const double t0 = serve_now();
    serve_cache *cc = serve_cache_claim(sv->e, id, 0, SLOT_WAIT_S, err, sizeof err);
    const char *refuse = cc ? not_yours(cc, me) : NULL;
    if (!cc || refuse) {
        if (cc) serve_cache_release(sv->e, cc, SERVE_CACHE_KEPT, NULL);
        if (restore) close(fd);
        free(name);
        return refuse ? send_error(c, 403, "permission_error", NULL, NULL, "slot %d %s", id, refuse)
                      : send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable_error", NULL, NULL, "%s", err);
    }
    rsr_session *s = serve_cache_session(cc);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "id_slot", id);
    int64_t bytes = 0;
    if (erase) {
        cJSON_AddNumberToObject(root, "n_erased", api.session_position(s));
        serve_cache_release(sv->e, cc, SERVE_CACHE_ERASED, NULL);
        return send_json(c, MHD_HTTP_OK, root, 0);
    }
    cJSON_AddStringToObject(root, "filename", name);
    int rc;
    if (save) {
        const int32_t n = api.session_position(s);
        rc = slot_write(sv->save_dir, name, cc, me, &bytes, err, sizeof err);
        serve_cache_release(sv->e, cc, SERVE_CACHE_KEPT, NULL);
        if (rc > 0) return cJSON_Delete(root), free(name), save_refusal(c, rc, err);
        cJSON_AddNumberToObject(root, "n_saved", n);
        cJSON_AddNumberToObject(root, "n_written", (double)bytes);
    } else {
        unsigned char owner[32];
        serve_cache_tenant(cc, owner);
        rc = slot_load(fd, name, cc, &bytes, err, sizeof err); /* a refusal leaves the session as it was */
        serve_cache_release(sv->e, cc, SERVE_CACHE_RESTORED, rc == 0 ? h.tenant : owner);
        cJSON_AddNumberToObject(root, "n_restored", api.session_position(s));
        cJSON_AddNumberToObject(root, "n_read", (double)bytes);
    }
    cJSON *timings = cJSON_AddObjectToObject(root, "timings");
    cJSON_AddNumberToObject(timings, save ? "save_ms" : "restore_ms", ms_since(t0));
    free(name);
    if (rc == 0) return send_json(c, MHD_HTTP_OK, root, 0);
    cJSON_Delete(root);
    if (save || rc == -3) return send_error(c, 500, "server_error", NULL, NULL, "%s", err);
    return send_error(c, 400, "invalid_request_error", "filename", NULL, "%s", err);
}

enum MHD_Result endpoint_slots(server *sv, struct MHD_Connection *c, const char *url, const char *method,
                               const char *body, size_t len) {
    if (!strcmp(url, "/slots")) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error", NULL, NULL,
                              "/slots takes GET, not %s", method);
        return slots_list(sv, c);
    }
    if (strcmp(method, "POST"))
        return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error", NULL, NULL,
                          "%.40s takes POST, not %s", url, method);
    if (sv->save_dir < 0)
        return send_error(c, 501, "not_supported_error", NULL, NULL,
                          "saving and restoring slots is off: start rsr-serve with --slot-save-path DIR");
    const char *digits = url + strlen("/slots/");
    char *end;
    long id = strtol(digits, &end, 10);
    if (!*digits || *end || id < 0 || id >= serve_slots_count(sv->e) || digits[0] == '-' || digits[0] == '+')
        return send_error(c, 400, "invalid_request_error", "id_slot", NULL,
                          "no slot '%.40s': the server has %d (0 to %d)", digits, serve_slots_count(sv->e),
                          serve_slots_count(sv->e) - 1);
    const char *action = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "action");
    if (!action)
        return send_error(c, 400, "invalid_request_error", "action", NULL,
                          "no ?action= (save, restore or erase) in %.60s", url);
    return slot_action(sv, c, (int32_t)id, action, body, len);
}

/* ---- --slot-save-path and --cache-dir ---- */

/* The directory path (made when missing), open for the files' *at calls; -1 with why in err. */
int slots_dir_open(const char *path, const char *option, char *err, size_t errlen) {
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s %s: cannot make it: %s", option, path, strerror(errno));
        return -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s %s: %s", option, path, strerror(errno));
        return -1;
    }
    int scan = dup(fd);
    DIR *d = scan >= 0 ? fdopendir(scan) : NULL;
    for (struct dirent *de; d && (de = readdir(d));) { /* what a crash mid-write left: the old file stands */
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.' && n > 4 && !strcmp(de->d_name + n - 4, ".tmp")) unlinkat(fd, de->d_name, 0);
    }
    if (d)
        closedir(d);
    else if (scan >= 0)
        close(scan);
    return fd;
}

static void cache_name(char *out, size_t n, int32_t index) { snprintf(out, n, "cache-%d.rsrslot", index); }

void slots_restore_caches(server *sv) {
    int32_t restored = 0, refused = 0;
    for (int32_t k = 0; k < serve_cache_count(sv->e); k++) {
        char name[64], err[600];
        unsigned char tenant[32];
        int64_t bytes = 0;
        cache_name(name, sizeof name, k);
        serve_cache *cc = serve_cache_claim(sv->e, -1, k, 0, err, sizeof err);
        if (!cc) continue;
        serve_cache_tenant(cc, tenant);
        int rc = slot_read(sv->cache_dir, name, cc, tenant, &bytes, err, sizeof err);
        serve_cache_release(sv->e, cc, rc == 0 ? SERVE_CACHE_RESTORED : SERVE_CACHE_KEPT, tenant);
        if (rc == -1) fprintf(stderr, "rsr-serve: --cache-dir: %s: left out\n", err), refused++;
        restored += rc == 0;
    }
    fprintf(stderr, "rsr-serve: --cache-dir: %d KV cache%s read back%s\n", restored, restored == 1 ? "" : "s",
            refused ? " (some refused: above)" : "");
}

/* Writes one cache a request ended in since it was last written (an empty one: its file removed);
 * false when none came in wait_s. */
static bool write_one(server *sv, double wait_s) {
    serve_cache *cc = serve_cache_claim_dirty(sv->e, wait_s);
    if (!cc) return false;
    char name[64], err[600];
    int64_t bytes;
    cache_name(name, sizeof name, serve_cache_index(cc));
    bool ok = api.session_position(serve_cache_session(cc)) > 0
                  ? slot_write(sv->cache_dir, name, cc, NULL, &bytes, err, sizeof err) == 0
                  : unlinkat(sv->cache_dir, name, 0) == 0 || errno == ENOENT ||
                        (snprintf(err, sizeof err, "cannot remove %s: %s", name, strerror(errno)), false);
    serve_cache_release(sv->e, cc, ok ? SERVE_CACHE_KEPT : SERVE_CACHE_FAILED, NULL);
    if (!ok) {
        fprintf(stderr, "rsr-serve: --cache-dir: %s (written again after the next request that ends in it)\n", err);
        return false;
    }
    return true;
}

static void *writer_main(void *arg) {
    server *sv = arg;
    while (!__atomic_load_n(&sv->writer_stop, __ATOMIC_ACQUIRE)) write_one(sv, 0.5);
    return NULL;
}

bool slots_writer_start(server *sv) { return pthread_create(&sv->writer, NULL, writer_main, sv) == 0; }

void slots_writer_stop(server *sv) {
    __atomic_store_n(&sv->writer_stop, true, __ATOMIC_RELEASE);
    pthread_join(sv->writer, NULL);
    while (write_one(sv, 0)) {} /* what the last requests left (the engine takes no more) */
}
