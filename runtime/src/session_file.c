/*
 * session_file.c — a session's state as a file: rsr_session_save, rsr_session_load and their _fd
 * forms (rsr.h; the format in docs/sessions.md).
 *
 * The file is a header, a table, then the payload, every piece padded to 8 bytes:
 *   header   state_header below (little-endian 64-bit fields)
 *   table    n_ckpt checkpoint positions, then n_parts part sizes (int64 each)
 *   payload  the pos tokens (int32), the device's parts (rt_device.state_parts: keys and values,
 *            auto attention's choices), the recurrent state, then each checkpoint's copy of it
 * The checksum is rsr_checksum_add (Σ w_i·(2i + 1) mod 2^64, i the word's index in the file) over
 * every word of the file with the checksum's own read as zero: a changed word always changes it.
 * A load reads the file twice: once to check all of it (format, checksum, the model, the session's
 * kind), and only then into the session, so that a refused file leaves the session as it was.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_NOFOLLOW, pread */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define STATE_MAGIC "RSRSTATE"
#define STATE_VERSION 1
#define CHUNK ((size_t)1 << 20)

typedef struct state_header {
    char magic[8];
    int64_t version, header_bytes, file_bytes;
    uint64_t checksum; /* the file's, with this word read as zero */
    /* the model: the checksum of its constants (0: none recorded) and its shape */
    uint64_t weights;
    int64_t layers, hidden, vocab, heads, kv_heads, head_dim, state_floats;
    /* the session */
    int64_t kv_type, max_positions, attention, pos, kv_written, louver_from;
    int64_t n_parts, n_ckpt;
} state_header;
#define CHECKSUM_WORD (offsetof(state_header, checksum) / 8)

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

/* ---- writing ---- */

typedef struct writer {
    int fd;
    uint64_t sum, at; /* the checksum so far, the bytes written */
    int err;          /* errno of the first failure */
} writer;

static void put(writer *w, const void *p, size_t n) {
    static const uint8_t zero[8];
    const uint8_t *b = p;
    size_t whole = n & ~(size_t)7;
    w->sum = rsr_checksum_add(w->sum, b, w->at / 8, whole / 8);
    if (n > whole) { /* the last word, padded with zeros */
        uint8_t last[8] = {0};
        memcpy(last, b + whole, n - whole);
        w->sum = rsr_checksum_add(w->sum, last, (w->at + whole) / 8, 1);
    }
    for (size_t done = 0; done < n && !w->err;) {
        ssize_t k = write(w->fd, b + done, n - done > CHUNK ? CHUNK : n - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            w->err = k < 0 ? errno : EIO;
        else
            done += (size_t)k;
    }
    if (n > whole && !w->err) {
        errno = 0;
        if (write(w->fd, zero, pad8(n) - n) != (ssize_t)(pad8(n) - n)) w->err = errno ? errno : EIO;
    }
    w->at += pad8(n);
}

/* The device's parts of s at position pos (malloc'd, *n of them), or NULL with *st and the message set. */
static rt_state_part *parts_of(rsr_session *s, int32_t pos, int32_t kv_written, int32_t *n, int32_t *attention,
                               rsr_status *st) {
    const rt_device *d = s->model->run_on;
    if (!d->state_parts) {
        *st = rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT,
                           "a session on the %s cannot be saved or loaded (CPU sessions can)", d->name);
        return NULL;
    }
    *n = d->state_parts(s, pos, kv_written, NULL, 0, attention);
    rt_state_part *p = malloc(sizeof *p * (size_t)(*n > 0 ? *n : 1));
    if (!p)
        *st = rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory");
    else
        d->state_parts(s, pos, kv_written, p, *n, attention);
    return p;
}

/* The checkpoints that hold a position (indexes into s->dn_ckpt), by position ascending; returns how many. */
static int32_t ckpts_of(const rsr_session *s, int32_t *at) {
    int32_t n = 0;
    for (int32_t i = 0; i < s->dn_ckpt_cap; i++) {
        if (s->dn_ckpt_pos[i] <= 0) continue;
        int32_t k = n++;
        for (; k > 0 && s->dn_ckpt_pos[at[k - 1]] > s->dn_ckpt_pos[i]; k--) at[k] = at[k - 1];
        at[k] = i;
    }
    return n;
}

static state_header header_of(const rsr_session *s) {
    const rsr_artifact *a = s->model->a;
    state_header h = {.version = STATE_VERSION,
                      .header_bytes = sizeof h,
                      .weights = a->has_checksum ? a->blob_checksum : 0,
                      .layers = a->num_layers,
                      .hidden = a->hidden,
                      .vocab = a->vocab,
                      .heads = a->num_heads,
                      .kv_heads = a->num_kv_heads,
                      .head_dim = a->head_dim,
                      .state_floats = (int64_t)s->model->dn_state_floats,
                      .kv_type = s->kv_type,
                      .max_positions = s->max_positions};
    memcpy(h.magic, STATE_MAGIC, 8);
    return h;
}

/* The bytes a file of header h with these parts holds: its header's file_bytes when it is whole. */
static int64_t layout_bytes(const rsr_session *s, const state_header *h, const rt_state_part *p, int32_t n) {
    const size_t state = sizeof(float) * s->model->dn_state_floats;
    int64_t b = (int64_t)(sizeof *h + 8 * (size_t)(h->n_ckpt + h->n_parts) + pad8(sizeof(int32_t) * (size_t)h->pos));
    for (int32_t i = 0; i < n; i++) b += (int64_t)pad8(p[i].bytes);
    return b + (state ? (int64_t)pad8(state) * (1 + h->n_ckpt) : 0);
}

/* The whole file through w: the header, the table, the payload (the layout above). */
static void put_all(writer *w, const rsr_session *s, const state_header *h, const int32_t *at, int32_t n_ckpt,
                    const rt_state_part *parts, int32_t n_parts) {
    const size_t state = sizeof(float) * s->model->dn_state_floats;
    put(w, h, sizeof *h);
    for (int32_t i = 0; i < n_ckpt; i++) put(w, &(int64_t){s->dn_ckpt_pos[at[i]]}, 8);
    for (int32_t i = 0; i < n_parts; i++) put(w, &(int64_t){(int64_t)parts[i].bytes}, 8);
    put(w, s->tokens, sizeof(int32_t) * (size_t)s->pos);
    for (int32_t i = 0; i < n_parts; i++) put(w, parts[i].p, parts[i].bytes);
    if (state) put(w, s->dn_state, state);
    for (int32_t i = 0; state && i < n_ckpt; i++) put(w, s->dn_ckpt[at[i]], state);
}

rsr_status rsr_session_save_fd(rsr_session *s, int fd, int64_t *bytes) {
    if (bytes) *bytes = 0;
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    int32_t n_parts, attention, *at = malloc(sizeof *at * (size_t)(s->dn_ckpt_cap + 1));
    rsr_status st = RSR_OK;
    rt_state_part *parts = at ? parts_of(s, s->pos, s->kv_written, &n_parts, &attention, &st) : NULL;
    if (!parts) {
        free(at);
        return at ? st : rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory");
    }
    state_header h = header_of(s);
    const int32_t n_ckpt = s->dn_ckpt ? ckpts_of(s, at) : 0;
    h.attention = attention, h.pos = s->pos, h.kv_written = s->kv_written, h.louver_from = s->louver_from;
    h.n_parts = n_parts, h.n_ckpt = n_ckpt;
    h.file_bytes = layout_bytes(s, &h, parts, n_parts);
    writer sum = {.fd = -1, .err = -1}, w = {.fd = fd}; /* the checksum first: the words put() adds up */
    put_all(&sum, s, &h, at, n_ckpt, parts, n_parts);
    h.checksum = sum.sum;
    put_all(&w, s, &h, at, n_ckpt, parts, n_parts);
    free(parts), free(at);
    if (w.err) return rt_set_error(s->err, RSR_ERR_IO, "cannot write the session's state: %s", strerror(w.err));
    if (bytes) *bytes = (int64_t)w.at;
    return RSR_OK;
}

/* fsync of the directory that holds path (best effort: the file itself is synced). */
static void sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path + 1) : 1, slash ? path : ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) fsync(fd), close(fd);
}

rsr_status rsr_session_save(rsr_session *s, const char *path, int64_t *bytes) {
    if (bytes) *bytes = 0;
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    if (!path || !*path) return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no path to save the session to");
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return rt_set_error(s->err, RSR_ERR_IO, "cannot save the session to %s: it is %s, not a regular file", path,
                            S_ISLNK(st.st_mode)   ? "a symbolic link"
                            : S_ISDIR(st.st_mode) ? "a directory"
                                                  : "not a file");
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory");
    static unsigned serial;
    snprintf(tmp, n, "%s.tmp.%ld.%u", path, (long)getpid(), __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rsr_status r = rt_set_error(s->err, RSR_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return r;
    }
    rsr_status r = rsr_session_save_fd(s, fd, bytes);
    if (r == RSR_OK && fsync(fd) != 0) r = rt_set_error(s->err, RSR_ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && r == RSR_OK)
        r = rt_set_error(s->err, RSR_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    if (r == RSR_OK && rename(tmp, path) != 0)
        r = rt_set_error(s->err, RSR_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (r == RSR_OK) sync_dir(path); /* the rename itself */
    if (r != RSR_OK && bytes) *bytes = 0;
    if (r != RSR_OK) unlink(tmp);
    free(tmp);
    return r;
}

/* ---- reading ---- */

/* n bytes at off of fd into p: 0, or errno (EIO: the file ends first). */
static int get(int fd, int64_t off, void *p, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t k = pread(fd, (char *)p + done, n - done > CHUNK ? CHUNK : n - done, (off_t)(off + (int64_t)done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return k < 0 ? errno : EIO;
        done += (size_t)k;
    }
    return 0;
}

/* The file's header, format and checksum (whole: the file ends where the state does): RSR_OK, or the
 * refusal with the message in s->err. */
static rsr_status check_file(rsr_session *s, int fd, int64_t base, state_header *h, bool whole) {
    int e = get(fd, base, h->magic, 8);
    if (e == EIO || (e == 0 && memcmp(h->magic, STATE_MAGIC, 8) != 0))
        return rt_set_error(s->err, RSR_ERR_FORMAT, "not a session state saved by rsr_session_save (no %s header)",
                            STATE_MAGIC);
    if (!e) e = get(fd, base, h, sizeof *h);
    if (e == EIO) return rt_set_error(s->err, RSR_ERR_FORMAT, "the session state is truncated within its header");
    if (e) return rt_set_error(s->err, RSR_ERR_IO, "cannot read the session's state: %s", strerror(e));
    if (h->version != STATE_VERSION)
        return rt_set_error(s->err, RSR_ERR_FORMAT,
                            "the session state is of format version %lld; this runtime reads version %d",
                            (long long)h->version, STATE_VERSION);
    if (h->header_bytes != (int64_t)sizeof *h)
        return rt_set_error(s->err, RSR_ERR_FORMAT, "the session state's header is %lld bytes; version %d's is %zu",
                            (long long)h->header_bytes, STATE_VERSION, sizeof *h);
    struct stat st;
    if (fstat(fd, &st) != 0)
        return rt_set_error(s->err, RSR_ERR_IO, "cannot read the session's state: %s", strerror(errno));
    if (h->file_bytes < (int64_t)sizeof *h || h->file_bytes % 8 ||
        (S_ISREG(st.st_mode) && st.st_size - base < h->file_bytes))
        return rt_set_error(s->err, RSR_ERR_FORMAT,
                            "the session state is truncated: %lld bytes where its header says %lld",
                            (long long)(st.st_size - base), (long long)h->file_bytes);
    if (whole && S_ISREG(st.st_mode) && st.st_size - base > h->file_bytes)
        return rt_set_error(s->err, RSR_ERR_FORMAT,
                            "the session state holds bytes past its end: %lld bytes where its header says %lld",
                            (long long)(st.st_size - base), (long long)h->file_bytes);
    uint8_t *buf = malloc(CHUNK);
    if (!buf) return rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory");
    uint64_t sum = 0;
    for (int64_t at = 0; at < h->file_bytes && !e; at += (int64_t)CHUNK) {
        size_t n = h->file_bytes - at < (int64_t)CHUNK ? (size_t)(h->file_bytes - at) : CHUNK;
        if ((e = get(fd, base + at, buf, n)) != 0) break;
        if (at == 0) memset(buf + 8 * CHECKSUM_WORD, 0, 8);
        sum = rsr_checksum_add(sum, buf, (uint64_t)at / 8, n / 8);
    }
    free(buf);
    if (e == EIO) return rt_set_error(s->err, RSR_ERR_FORMAT, "the session state is truncated");
    if (e) return rt_set_error(s->err, RSR_ERR_IO, "cannot read the session's state: %s", strerror(e));
    if (sum != h->checksum)
        return rt_set_error(s->err, RSR_ERR_FORMAT,
                            "the session state fails its checksum (%016llx, written as %016llx): it was damaged or "
                            "altered after it was saved",
                            (unsigned long long)sum, (unsigned long long)h->checksum);
    return RSR_OK;
}

static const char *kv_name(int64_t t) {
    static const char *names[] = {"f32", "bf16", "f16", "q8"};
    return t >= 0 && t < 4 ? names[t] : "unknown";
}
static const char *attention_name(int64_t t) {
    static const char *names[] = {"dense", "louver", "auto"};
    return t >= 0 && t < 3 ? names[t] : "unknown";
}

/* The saved session's model and kind against this one's: RSR_OK, or the first difference named. */
static rsr_status check_match(rsr_session *s, const state_header *h, int32_t attention) {
    const state_header me = header_of(s);
    static const struct {
        size_t off;
        const char *what;
    } shape[] = {{offsetof(state_header, layers), "layers"},
                 {offsetof(state_header, hidden), "hidden size"},
                 {offsetof(state_header, vocab), "vocabulary"},
                 {offsetof(state_header, heads), "attention heads"},
                 {offsetof(state_header, kv_heads), "KV heads"},
                 {offsetof(state_header, head_dim), "head dimension"},
                 {offsetof(state_header, state_floats), "recurrent state's floats"}};
    for (size_t i = 0; i < sizeof shape / sizeof *shape; i++) {
        int64_t theirs, mine;
        memcpy(&theirs, (const char *)h + shape[i].off, 8), memcpy(&mine, (const char *)&me + shape[i].off, 8);
        if (theirs != mine)
            return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT,
                                "the session state was saved from another model: its %s is %lld, this model's %lld",
                                shape[i].what, (long long)theirs, (long long)mine);
    }
    if (h->weights != me.weights)
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT,
                            "the session state was saved from another model: the checksum of its weights is %016llx, "
                            "this model's %016llx",
                            (unsigned long long)h->weights, (unsigned long long)me.weights);
    if (h->kv_type != me.kv_type)
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT,
                            "the session state holds a %s KV cache; this session's is %s", kv_name(h->kv_type),
                            kv_name(me.kv_type));
    if (h->max_positions != me.max_positions)
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT,
                            "the session state is of a context of %lld positions; this session's is %d",
                            (long long)h->max_positions, s->max_positions);
    if (h->attention != attention)
        return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT,
                            "the session state was saved by a session attending %s; this one attends %s",
                            attention_name(h->attention), attention_name(attention));
    if (h->pos < 0 || h->pos > s->max_positions || h->kv_written < h->pos || h->kv_written > s->max_positions ||
        h->n_ckpt < 0 || h->n_ckpt > h->pos || h->n_ckpt > RSR_CHECKPOINTS_MAX || h->n_parts < 0 ||
        h->n_parts > 1 << 24 || h->louver_from < 0 || (h->state_floats == 0 && h->n_ckpt > 0))
        return rt_set_error(s->err, RSR_ERR_FORMAT, "the session state's header is inconsistent (position %lld)",
                            (long long)h->pos);
    return RSR_OK;
}

/* The table's part sizes against the parts of this session at the saved position. */
static rsr_status check_parts(rsr_session *s, const state_header *h, const int64_t *size, const rt_state_part *p,
                              int32_t n) {
    bool windows = false;
    for (int32_t i = 0; i < n; i++) windows |= strstr(p[i].what, "window") != NULL;
    if (h->n_parts != n)
        return rt_set_error(
            s->err, RSR_ERR_INVALID_ARGUMENT, "the session state holds %lld parts; a session of this model holds %d%s",
            (long long)h->n_parts, n,
            windows ? " (its batch differs: a window keeps batch - 1 positions more than the window)" : "");
    for (int32_t i = 0; i < n; i++) {
        if (size[i] == (int64_t)p[i].bytes) continue;
        char layer[32] = "";
        if (p[i].layer >= 0) snprintf(layer, sizeof layer, " of layer %d", p[i].layer);
        return rt_set_error(
            s->err, RSR_ERR_INVALID_ARGUMENT, "the session state's %s%s is %lld bytes; this session's is %zu%s",
            p[i].what, layer, (long long)size[i], p[i].bytes,
            strstr(p[i].what, "window") ? " (its batch differs: a window keeps batch - 1 positions more "
                                          "than the window)"
                                        : "");
    }
    return RSR_OK;
}

/* The file's table and tokens, checked against the session and the header (nothing changed yet);
 * the checkpoints the session has room for made ready (their buffers). */
static rsr_status check_rest(rsr_session *s, int fd, int64_t base, const state_header *h, const int64_t *table,
                             const rt_state_part *p, int32_t n, int32_t *tokens) {
    rsr_status r = check_parts(s, h, table + h->n_ckpt, p, n);
    for (int64_t i = 0; r == RSR_OK && i < h->n_ckpt; i++)
        if (table[i] <= 0 || table[i] > h->pos || (i > 0 && table[i] <= table[i - 1]))
            r = rt_set_error(s->err, RSR_ERR_FORMAT,
                             "the session state's checkpoints are not positions in (0, %lld] in ascending order",
                             (long long)h->pos);
    if (r == RSR_OK && layout_bytes(s, h, p, n) != h->file_bytes)
        r = rt_set_error(s->err, RSR_ERR_FORMAT, "the session state's header says %lld bytes; its parts make %lld",
                         (long long)h->file_bytes, (long long)layout_bytes(s, h, p, n));
    const int64_t at = base + (int64_t)sizeof *h + 8 * (h->n_ckpt + h->n_parts);
    int e = r == RSR_OK ? get(fd, at, tokens, sizeof(int32_t) * (size_t)h->pos) : 0;
    if (e) r = rt_set_error(s->err, RSR_ERR_IO, "cannot read the session's state: %s", strerror(e));
    for (int64_t i = 0; r == RSR_OK && i < h->pos; i++)
        if (tokens[i] < 0 || tokens[i] >= s->model->a->vocab)
            r = rt_set_error(s->err, RSR_ERR_FORMAT, "the session state's token at %lld is %d, outside the vocabulary",
                             (long long)i, tokens[i]);
    const int64_t keep = h->n_ckpt < s->dn_ckpt_cap ? h->n_ckpt : s->dn_ckpt_cap;
    for (int64_t k = 0; r == RSR_OK && h->state_floats && k < keep; k++)
        if (!s->dn_ckpt[k] && !(s->dn_ckpt[k] = malloc(sizeof(float) * s->model->dn_state_floats)))
            r = rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory for the session state's checkpoints");
    return r;
}

/* The checked file's payload after its tokens into the session (already reset): 0 or errno. The
 * checkpoints the session has room for are the latest (the table is ascending). */
static int read_payload(rsr_session *s, int fd, int64_t off, const state_header *h, const int64_t *ckpt,
                        const rt_state_part *p, int32_t n) {
    const size_t state = sizeof(float) * s->model->dn_state_floats;
    int e = 0;
    for (int32_t i = 0; i < n && !e; off += (int64_t)pad8(p[i].bytes), i++) e = get(fd, off, p[i].p, p[i].bytes);
    if (state && !e) e = get(fd, off, s->dn_state, state), off += (int64_t)pad8(state);
    const int64_t skip = h->n_ckpt > s->dn_ckpt_cap ? h->n_ckpt - s->dn_ckpt_cap : 0;
    for (int64_t i = skip; state && i < h->n_ckpt && !e; i++) {
        const int32_t k = (int32_t)(i - skip);
        if (!(e = get(fd, off + (int64_t)pad8(state) * i, s->dn_ckpt[k], state))) s->dn_ckpt_pos[k] = (int32_t)ckpt[i];
    }
    return e;
}

static rsr_status load_fd(rsr_session *s, int fd, int64_t *bytes, bool whole) {
    if (bytes) *bytes = 0;
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    const off_t base = lseek(fd, 0, SEEK_CUR);
    if (base < 0)
        return rt_set_error(s->err, RSR_ERR_IO, "cannot load a session from this descriptor: %s (a file is read twice)",
                            strerror(errno));
    state_header h;
    int32_t n = 0, attention = 0, *tokens = NULL;
    rsr_status r = check_file(s, fd, base, &h, whole);
    const bool in = h.pos >= 0 && h.kv_written >= h.pos && h.kv_written <= s->max_positions; /* else check_match says */
    rt_state_part *p =
        r == RSR_OK ? parts_of(s, in ? (int32_t)h.pos : 0, in ? (int32_t)h.kv_written : 0, &n, &attention, &r) : NULL;
    if (r == RSR_OK) r = check_match(s, &h, attention);
    int64_t *table = r == RSR_OK ? malloc(8 * (size_t)(h.n_ckpt + h.n_parts + 1)) : NULL;
    tokens = r == RSR_OK ? malloc(sizeof(int32_t) * (size_t)(h.pos + 1)) : NULL;
    if (r == RSR_OK && (!table || !tokens)) r = rt_set_error(s->err, RSR_ERR_OUT_OF_MEMORY, "out of memory");
    int e = r == RSR_OK ? get(fd, base + (int64_t)sizeof h, table, 8 * (size_t)(h.n_ckpt + h.n_parts)) : 0;
    if (e) r = rt_set_error(s->err, RSR_ERR_IO, "cannot read the session's state: %s", strerror(e));
    if (r == RSR_OK) r = check_rest(s, fd, base, &h, table, p, n, tokens);
    if (r == RSR_OK) {        /* checked: now the session changes */
        rsr_session_reset(s); /* what the device derives (Louver's indexes) cleared: it grows again from the keys */
        s->pos = (int32_t)h.pos, s->kv_written = (int32_t)h.kv_written,
        s->mtp_h_n = 0; /* the MTP layer's cache is not saved */
        s->louver_from = h.louver_from < h.pos ? (int32_t)h.louver_from : INT32_MAX;
        memcpy(s->tokens, tokens, sizeof(int32_t) * (size_t)h.pos);
        const int64_t at =
            base + (int64_t)(sizeof h + 8 * (size_t)(h.n_ckpt + h.n_parts) + pad8(sizeof(int32_t) * (size_t)h.pos));
        if ((e = read_payload(s, fd, at, &h, table, p, n)) == 0 && s->model->run_on->state_loaded)
            s->model->run_on->state_loaded(s);
        if (e) {
            rsr_session_reset(s);
            r = rt_set_error(s->err, RSR_ERR_IO,
                             "cannot read the session's state after checking it: %s (the session is now empty)",
                             strerror(e));
        }
    }
    free(p), free(table), free(tokens);
    if (r == RSR_OK && bytes) *bytes = h.file_bytes;
    if (r == RSR_OK) lseek(fd, base + h.file_bytes, SEEK_SET);
    return r;
}

rsr_status rsr_session_load_fd(rsr_session *s, int fd, int64_t *bytes) { return load_fd(s, fd, bytes, false); }

rsr_status rsr_session_load(rsr_session *s, const char *path, int64_t *bytes) {
    if (bytes) *bytes = 0;
    if (!s) return RSR_ERR_INVALID_ARGUMENT;
    if (!path || !*path) return rt_set_error(s->err, RSR_ERR_INVALID_ARGUMENT, "no path to load the session from");
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return rt_set_error(s->err, RSR_ERR_IO, "cannot open %s: %s", path,
                            errno == ELOOP ? "it is a symbolic link, which is not followed" : strerror(errno));
    rsr_status r = load_fd(s, fd, bytes, true); /* a file is one state: nothing after it */
    close(fd);
    if (r != RSR_OK) { /* the message names the file */
        char msg[RSR_ERRMSG_SIZE];
        memcpy(msg, s->err, sizeof msg);
        rt_set_error(s->err, r, "%s: %s", path, msg);
    }
    return r;
}
