/*
 * test_session_file.c — rsr_session_save / rsr_session_load (docs/sessions.md): a loaded session
 * goes on exactly as the saved one, and a file that is not this session's kind is refused with
 * the session left as it was.
 * Usage: test_session_file DIR MODEL.so WINDOWED.so HYBRID.so   (tests/CMakeLists.txt: the shapes)
 *
 * For each model and attention (dense; Louver with blocks of 16 keys, whose index grew during the
 * reply's decode steps; a windowed model's rings; a Qwen3.5 hybrid's recurrent state and its
 * checkpoints), a session evaluates a prompt, decodes a reply a token at a time and evaluates more;
 * it is saved, and a second session that held other tokens loads it. Both then evaluate the same
 * suffix and decode: every logit and every layer's attention statistics must be equal bit for bit,
 * and so must the tokens held and the positions truncation reaches. Then the refusals: a byte
 * flipped at 230 places or so, the file cut at several lengths or grown past the state, another
 * model's file, another KV type, context or (windowed) batch, a link; each refused with the expected status and message, and the
 * refused session's position, tokens and next logits unchanged. And the _fd forms at an offset.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rsr_dl.h"

#include "expect.h"

enum {
    PROMPT = 60,
    REPLY = 30,
    JUNK = 21,
    SUFFIX = 12,
    AFTER = 3,
    STEP = 8,
    CTX = 200
}; /* 111 positions: a ring of 11 wraps */

static rsr_api api;
static const char *dir;

static void tokens_of(int32_t *t, int32_t n, uint32_t seed, int32_t vocab) {
    for (int32_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        t[i] = 3 + (int32_t)((seed >> 8) % (uint32_t)(vocab - 3));
    }
}

typedef struct model {
    rsr_model *m;
    int32_t layers, vocab;
    const char *name;
} model;

static model open_model(const char *path, const char *name) {
    char err[1024];
    if (rsr_api_load(&api, path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    model x = {.name = name};
    rsr_model_params mp = {.num_threads = 2};
    if (api.model_open(&x.m, &mp) != RSR_OK) {
        fprintf(stderr, "%s\n", api.model_errmsg(x.m));
        exit(1);
    }
    rsr_model_info info;
    api.model_get_info(x.m, &info);
    x.layers = info.num_layers, x.vocab = info.vocab_size;
    return x;
}

/* the logits after the suffix and after each of AFTER tokens, then every attention layer's statistics */
static int finish(const model *x, rsr_session *s, float *logits, rsr_attention_stats *stats) {
    int32_t suffix[SUFFIX], after[AFTER];
    tokens_of(suffix, SUFFIX, 12, x->vocab), tokens_of(after, AFTER, 13, x->vocab);
    if (api.session_eval(s, suffix, SUFFIX, logits) != RSR_OK) return -1;
    for (int32_t i = 0; i < AFTER; i++)
        if (api.session_eval(s, after + i, 1, logits + (size_t)(i + 1) * (size_t)x->vocab) != RSR_OK) return -1;
    for (int32_t l = 0; l < x->layers; l++) {
        stats[l] = (rsr_attention_stats){0};
        api.session_attention_stats(s, l, &stats[l]); /* a DeltaNet layer has none: zeros */
    }
    return 0;
}

/* s evaluates a prompt (in chunks of more than 8 tokens: a hybrid's checkpoints), a reply a token at
 * a time, more tokens */
static void fill(const model *x, rsr_session *s) {
    int32_t all[PROMPT + REPLY + JUNK];
    tokens_of(all, PROMPT + REPLY + JUNK, 11, x->vocab);
    for (int32_t i = 0; i < PROMPT; i += 20) EXPECT(api.session_eval(s, all + i, 20, NULL) == RSR_OK, "prompt");
    for (int32_t i = PROMPT; i < PROMPT + REPLY; i++) EXPECT(api.session_eval(s, all + i, 1, NULL) == RSR_OK, "decode");
    EXPECT(api.session_eval(s, all + PROMPT + REPLY, JUNK, NULL) == RSR_OK, "%s: more: %s", x->name,
           api.session_errmsg(s));
}

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

/* Saves s's state as name; returns the bytes written. */
static int64_t save(rsr_session *s, const char *name) {
    char path[512];
    int64_t bytes = -1;
    path_of(path, sizeof path, name);
    EXPECT(api.session_save(s, path, &bytes) == RSR_OK, "save %s: %s", name, api.session_errmsg(s));
    struct stat st;
    EXPECT(stat(path, &st) == 0 && st.st_size == bytes, "save %s: %lld bytes said, %lld written", name,
           (long long)bytes, (long long)st.st_size);
    return bytes;
}

/* fp: the loading session's params (sp's but for its checkpoints: fewer keeps the latest) */
static void check_goes_on(const model *x, const char *name, rsr_session_params sp, rsr_session_params fp) {
    const size_t nlog = (size_t)(1 + AFTER) * (size_t)x->vocab;
    float *want = malloc(sizeof(float) * nlog), *got = malloc(sizeof(float) * nlog);
    rsr_attention_stats *ws = calloc((size_t)x->layers, sizeof *ws), *gs = calloc((size_t)x->layers, sizeof *gs);
    rsr_session *s = NULL, *f = NULL;
    EXPECT(api.session_create(x->m, &sp, &s) == RSR_OK && api.session_create(x->m, &fp, &f) == RSR_OK,
           "%s: sessions: %s", name, api.model_errmsg(x->m));
    fill(x, s);
    int32_t other[40];
    tokens_of(other, 40, 99, x->vocab);
    EXPECT(api.session_eval(f, other, 40, NULL) == RSR_OK, "%s: the loading session's own tokens", name);
    char path[512];
    path_of(path, sizeof path, name);
    const int64_t n = save(s, name);
    int64_t read = -1;
    EXPECT(api.session_load(f, path, &read) == RSR_OK && read == n, "%s: load: %s (%lld of %lld bytes)", name,
           api.session_errmsg(f), (long long)read, (long long)n);
    const int32_t pos = api.session_position(s);
    int32_t *ts = malloc(sizeof(int32_t) * 2 * (size_t)pos), *tf = ts + pos;
    EXPECT(api.session_position(f) == pos && api.session_tokens(s, ts, pos) == pos &&
               api.session_tokens(f, tf, pos) == pos && !memcmp(ts, tf, sizeof(int32_t) * (size_t)pos),
           "%s: the loaded session holds %d positions and their tokens", name, pos);
    int32_t reach_differ = 0, reached = 0; /* fewer checkpoints: the latest, and no position the saved one cannot */
    for (int32_t p = 0; p <= pos; p++) {
        const int32_t rs = api.session_reachable(s, p), rf = api.session_reachable(f, p);
        reach_differ += sp.checkpoints == fp.checkpoints ? rs != rf : rf != 0 && rf != rs;
        reached += rf > 0 && rf < pos;
    }
    EXPECT(reach_differ == 0, "%s: %d positions reached differently", name, reach_differ);
    EXPECT(api.session_reachable(s, pos - 1) == api.session_reachable(f, pos - 1), "%s: the latest checkpoint", name);
    if (sp.checkpoints > 1) EXPECT(reached > 0, "%s: no checkpoint to go back to", name);
    EXPECT(finish(x, s, want, ws) == 0 && finish(x, f, got, gs) == 0, "%s: on: %s", name, api.session_errmsg(f));
    int32_t differ = 0;
    for (size_t i = 0; i < nlog; i++) differ += memcmp(&want[i], &got[i], sizeof(float)) != 0;
    EXPECT(differ == 0, "%s: %d of %zu logits differ from the saved session's", name, differ, nlog);
    for (int32_t l = 0; l < x->layers; l++)
        EXPECT(ws[l].keys == gs[l].keys && ws[l].scanned == gs[l].scanned && ws[l].kept == gs[l].kept &&
                   ws[l].bounded == gs[l].bounded,
               "%s: layer %d: %lld keys, %lld scanned, %lld kept against %lld, %lld, %lld", name, l,
               (long long)gs[l].keys, (long long)gs[l].scanned, (long long)gs[l].kept, (long long)ws[l].keys,
               (long long)ws[l].scanned, (long long)ws[l].kept);
    api.session_free(s), api.session_free(f);
    free(want), free(got), free(ws), free(gs), free(ts);
}

/* A session of 4 tokens that refuses path: the status, a message holding `why`, and nothing changed. */
static void refused(const model *x, rsr_session_params sp, const char *path, rsr_status want, const char *why) {
    rsr_session *g = NULL, *ref = NULL;
    int32_t t[4];
    tokens_of(t, 4, 5, x->vocab);
    float *a = malloc(sizeof(float) * 2 * (size_t)x->vocab), *b = a + x->vocab;
    EXPECT(api.session_create(x->m, &sp, &g) == RSR_OK && api.session_create(x->m, &sp, &ref) == RSR_OK, "sessions");
    EXPECT(api.session_eval(g, t, 4, NULL) == RSR_OK && api.session_eval(ref, t, 4, NULL) == RSR_OK, "eval");
    rsr_status st = api.session_load(g, path, NULL);
    EXPECT(st == want && strstr(api.session_errmsg(g), why) && strstr(api.session_errmsg(g), path),
           "%s: status %d (want %d): %s (want '%s')", path, st, want, api.session_errmsg(g), why);
    int32_t held[4] = {0};
    EXPECT(api.session_position(g) == 4 && api.session_tokens(g, held, 4) == 4 && !memcmp(held, t, sizeof t),
           "%s: the refusing session changed", path);
    EXPECT(api.session_eval(g, t, 1, a) == RSR_OK && api.session_eval(ref, t, 1, b) == RSR_OK &&
               !memcmp(a, b, sizeof(float) * (size_t)x->vocab),
           "%s: the refusing session's next logits changed", path);
    api.session_free(g), api.session_free(ref);
    free(a);
}

static void write_file(const char *path, const unsigned char *p, size_t n) {
    FILE *f = fopen(path, "wb");
    EXPECT(f && fwrite(p, 1, n, f) == n && fclose(f) == 0, "write %s", path);
}

static void check_refusals(const model *x, const model *other, rsr_session_params sp) {
    rsr_session *s = NULL;
    EXPECT(api.session_create(x->m, &sp, &s) == RSR_OK, "session");
    fill(x, s);
    const size_t n = (size_t)save(s, "good");
    char good[512], bad[512];
    path_of(good, sizeof good, "good"), path_of(bad, sizeof bad, "bad");
    unsigned char *raw = malloc(n);
    FILE *f = fopen(good, "rb");
    EXPECT(f && fread(raw, 1, n, f) == n, "read back");
    fclose(f);
    /* a flipped byte anywhere: every 7th of the first 512 (the magic, the header, the table), then 160
     * spread over the payload (each load creates a session: the sanitized pass pays for every one) */
    int flipped_ok = 0, flips = 0;
    for (size_t at = 0; at < n; at += at < 512 ? 7 : (n - 512) / 160 + 1, flips++) {
        raw[at] ^= 0x20;
        write_file(bad, raw, n);
        rsr_session *g = NULL;
        EXPECT(api.session_create(x->m, &sp, &g) == RSR_OK, "session");
        rsr_status st = api.session_load(g, bad, NULL);
        flipped_ok += st == RSR_ERR_FORMAT && api.session_position(g) == 0;
        api.session_free(g);
        raw[at] ^= 0x20;
    }
    EXPECT(flipped_ok == flips && flips > 200, "%s: %d of %d flipped files refused as damaged", x->name, flipped_ok,
           flips);
    raw[n / 2] ^= 1;
    write_file(bad, raw, n);
    refused(x, sp, bad, RSR_ERR_FORMAT, "fails its checksum");
    raw[n / 2] ^= 1;
    const size_t cuts[] = {0, 7, 8, 100, n / 2, n - 8, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_file(bad, raw, cuts[i]);
        refused(x, sp, bad, RSR_ERR_FORMAT, cuts[i] < 8 ? "not a session state" : "truncated");
    }
    unsigned char *longer = calloc(n + 8, 1); /* bytes appended to a whole state: a file is one state */
    memcpy(longer, raw, n);
    for (size_t more = 1; more <= 8; more += 7) {
        write_file(bad, longer, n + more);
        refused(x, sp, bad, RSR_ERR_FORMAT, "bytes past its end");
    }
    free(longer);
    rsr_session_params kv = sp, ctx = sp;
    kv.kv_type = sp.kv_type == RSR_KV_F32 ? RSR_KV_Q8 : RSR_KV_F32, ctx.max_positions = sp.max_positions - 1;
    refused(x, kv, good, RSR_ERR_INVALID_ARGUMENT, "KV cache; this session's is");
    refused(x, ctx, good, RSR_ERR_INVALID_ARGUMENT, "this session's is 199");
    rsr_session_params osp = sp;
    rsr_session *o = NULL;
    EXPECT(api.session_create(other->m, &osp, &o) == RSR_OK, "other model's session");
    fill(other, o);
    save(o, "other");
    char path[512];
    path_of(path, sizeof path, "other");
    refused(x, sp, path, RSR_ERR_INVALID_ARGUMENT, "saved from another model");
    path_of(path, sizeof path, "link");
    unlink(path);
    EXPECT(symlink(good, path) == 0, "symlink");
    refused(x, sp, path, RSR_ERR_IO, "symbolic link");
    EXPECT(api.session_save(s, path, NULL) == RSR_ERR_IO && strstr(api.session_errmsg(s), "symbolic link"),
           "save over a link: %s", api.session_errmsg(s));
    path_of(path, sizeof path, "missing");
    refused(x, sp, path, RSR_ERR_IO, "No such file");
    /* the _fd forms at an offset: 5 bytes before the state, the offset after it once loaded */
    path_of(path, sizeof path, "at-offset");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int64_t w = 0, r = 0;
    EXPECT(fd >= 0 && write(fd, "head:", 5) == 5 && api.session_save_fd(s, fd, &w) == RSR_OK && w == (int64_t)n,
           "save_fd: %s", api.session_errmsg(s));
    rsr_session *g = NULL;
    EXPECT(api.session_create(x->m, &sp, &g) == RSR_OK && lseek(fd, 5, SEEK_SET) == 5 &&
               api.session_load_fd(g, fd, &r) == RSR_OK && r == w && lseek(fd, 0, SEEK_CUR) == 5 + w &&
               api.session_position(g) == api.session_position(s),
           "load_fd: %s", api.session_errmsg(g));
    close(fd);
    api.session_free(g), api.session_free(o), api.session_free(s);
    free(raw);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: test_session_file DIR MODEL.so WINDOWED.so HYBRID.so\n");
        return 2;
    }
    dir = argv[1];
    model x = open_model(argv[2], "dense"), w = open_model(argv[3], "windowed"), h = open_model(argv[4], "hybrid");
    rsr_session_params sp = {.max_positions = CTX, .attention = RSR_ATTENTION_DENSE, .kv_type = RSR_KV_BF16};
    check_goes_on(&x, "dense", sp, sp);
    rsr_session_params lv = sp;
    lv.attention = RSR_ATTENTION_LOUVER, lv.louver_policy = RSR_LOUVER_BUDGET, lv.louver_budget = 0.05f;
    lv.louver_block = 16, lv.kv_type = RSR_KV_Q8;
    check_goes_on(&x, "louver", lv, lv);
    rsr_session_params ws = sp;
    ws.batch = STEP;
    check_goes_on(&w, "windowed", ws, ws);
    rsr_session_params hs = sp;
    hs.checkpoints = 3;
    check_goes_on(&h, "hybrid", hs, hs);
    rsr_session_params one = hs;
    one.checkpoints = 1; /* room for fewer checkpoints than the file holds: the latest are kept */
    check_goes_on(&h, "hybrid-1", hs, one);
    check_refusals(&x, &h, sp);
    check_refusals(&h, &x, hs);
    /* a windowed model's ring depends on the batch */
    rsr_session *s = NULL, *g = NULL;
    rsr_session_params wb = ws;
    wb.batch = STEP + 1;
    EXPECT(api.session_create(w.m, &ws, &s) == RSR_OK && api.session_create(w.m, &wb, &g) == RSR_OK, "sessions");
    fill(&w, s);
    save(s, "windowed");
    char path[512];
    path_of(path, sizeof path, "windowed");
    EXPECT(api.session_load(g, path, NULL) == RSR_ERR_INVALID_ARGUMENT &&
               strstr(api.session_errmsg(g), "batch differs"),
           "another batch: %s", api.session_errmsg(g));
    api.session_free(s), api.session_free(g);
    api.model_close(x.m), api.model_close(w.m), api.model_close(h.m);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
