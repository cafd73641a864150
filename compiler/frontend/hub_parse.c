/*
 * hub_parse.c — the Hub's answers and the names in them, checked before any becomes a path (hub.h).
 * The cache is laid out by names the server chooses (blobs/ETAG, snapshots/COMMIT/FILE) and the
 * user types (refs/REVISION): each is held to what huggingface_hub itself accepts, so a mirror
 * that answers "../../x" is refused instead of writing there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "frontend/hub.h"

static bool word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
}

static bool repo_part_ok(const char *p, size_t len) {
    if (!len || p[0] == '-' || p[0] == '.' || p[len - 1] == '-' || p[len - 1] == '.') return false;
    for (size_t i = 0; i < len; i++)
        if (!word_char(p[i])) return false;
    return true;
}

bool hub_repo_ok(const char *repo) {
    const char *slash = strchr(repo, '/');
    if (!slash || strlen(repo) > 96 || strstr(repo, "--") || strstr(repo, "..")) return false;
    return repo_part_ok(repo, (size_t)(slash - repo)) && repo_part_ok(slash + 1, strlen(slash + 1));
}

bool hub_commit_ok(const char *sha) {
    size_t n = 0;
    for (; sha[n]; n++)
        if (!((sha[n] >= '0' && sha[n] <= '9') || (sha[n] >= 'a' && sha[n] <= 'f'))) return false;
    return n == 40;
}

bool hub_etag_ok(const char *etag) {
    size_t n = strlen(etag);
    if (!n || n > HUB_ETAG_MAX || !strcmp(etag, ".") || !strcmp(etag, "..")) return false;
    for (size_t i = 0; i < n; i++)
        if (etag[i] <= ' ' || etag[i] >= 0x7f || etag[i] == '/' || etag[i] == '\\') return false;
    return true;
}

/* '/'-separated components, none empty, "." or "..", each character passing ok */
static bool path_ok(const char *s, size_t max, bool (*ok)(unsigned char)) {
    size_t n = strlen(s);
    if (!n || n > max) return false;
    for (const char *c = s;; c += strcspn(c, "/") + 1) {
        size_t len = strcspn(c, "/");
        if (!len || (len == 1 && c[0] == '.') || (len == 2 && !strncmp(c, "..", 2))) return false;
        for (size_t i = 0; i < len; i++)
            if (!ok((unsigned char)c[i])) return false;
        if (!c[len]) return true;
    }
}

static bool file_char(unsigned char c) { return c >= ' ' && c != 0x7f && c != '\\'; }
static bool ref_char(unsigned char c) { return word_char((char)c) || c == '+'; }

bool hub_file_ok(const char *name) { return path_ok(name, HUB_NAME_MAX, file_char); }
bool hub_revision_ok(const char *rev) { return path_ok(rev, 255, ref_char); }

const char *hub_shown(rsrc_arena *a, const char *s) {
    size_t n = strlen(s), cut = n > 200 ? 200 : n;
    char *out = rsrc_arena_alloc(a, 4 * cut + 4), *o = out;
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= ' ' && c < 0x7f)
            *o++ = (char)c;
        else
            o += sprintf(o, "\\x%02x", c);
    }
    strcpy(o, n > cut ? "..." : "");
    return out;
}

/* a count of bytes: digits only (no sign, no spaces), below 10^18; else -1 */
static long long count_of(const char *v, size_t n) {
    if (!n || n > 18) return -1;
    long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

void hub_head_start(hub_head *h) { *h = (hub_head){.size = -1, .range = -1}; }

void hub_head_line(hub_head *h, const char *line, size_t n) {
    if (memchr(line, 0, n)) return; /* malformed: not read at all */
    if (n >= 5 && !strncmp(line, "HTTP/", 5)) {
        hub_head_start(h);
        const char *sp = memchr(line, ' ', n);
        size_t at = sp ? (size_t)(sp - line) + 1 : n;
        long long status = at + 3 <= n ? count_of(line + at, 3) : -1;
        h->status = status >= 100 ? (int)status : 0;
        return;
    }
    const char *colon = memchr(line, ':', n), *end = line + n;
    if (!colon) return;
    const char *v = colon + 1;
    size_t name = (size_t)(colon - line);
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && strchr(" \t\r\n", end[-1])) end--;
#define IS(field) (name == sizeof field - 1 && !strncasecmp(line, field, name))
    bool linked = IS("X-Linked-Etag");
    if (linked || (IS("ETag") && !h->linked_etag)) {
        if (end - v >= 2 && !strncmp(v, "W/", 2)) v += 2;
        if (v < end && *v == '"') v++;
        if (end > v && end[-1] == '"') end--;
        size_t len = (size_t)(end - v) < sizeof h->etag - 1 ? (size_t)(end - v) : sizeof h->etag - 1;
        memcpy(h->etag, v, len);
        h->etag[len] = 0;
        h->linked_etag |= linked;
    }
    linked = IS("X-Linked-Size");
    if (linked || (IS("Content-Length") && !h->linked_size)) {
        h->size = count_of(v, (size_t)(end - v));
        h->linked_size |= linked;
    }
    if (IS("Content-Range") && end - v > 6 && !strncasecmp(v, "bytes ", 6)) {
        const char *dash = memchr(v + 6, '-', (size_t)(end - v - 6));
        h->range = dash ? count_of(v + 6, (size_t)(dash - v - 6)) : -1;
    }
#undef IS
}

static void json_release(void *j) { cJSON_Delete(j); }

void hub_read_listing(rsrc_arena *a, const char *spec, const char *rev, const char *json, size_t n, hub_listing *out) {
    cJSON *info = cJSON_ParseWithLength(json, n);
    rsrc_arena_own(a, json_release, info);
    const char *commit = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(info, "sha"));
    const cJSON *siblings = cJSON_GetObjectItemCaseSensitive(info, "siblings");
    if (!cJSON_IsObject(info) || !commit || !cJSON_IsArray(siblings))
        rsrc_fatal(
            "%s: the Hub's answer about revision '%s' is not what rsrc expects (an object with sha and siblings)", spec,
            rev);
    if (!hub_commit_ok(commit))
        rsrc_fatal("%s: the Hub's commit for revision '%s' ('%s') is not 40 hexadecimal digits; refusing it", spec, rev,
                   hub_shown(a, commit));
    int count = cJSON_GetArraySize(siblings), k = 0;
    const char **files = rsrc_arena_alloc(a, sizeof *files * ((size_t)count + 1));
    const cJSON *s;
    cJSON_ArrayForEach(s, siblings) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "rfilename"));
        if (name) files[k++] = name;
    }
    files[k] = NULL;
    *out = (hub_listing){commit, files, k};
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

bool hub_is_gguf(const char *name) {
    size_t n = name ? strlen(name) : 0;
    return n > 5 && !strcmp(name + n - 5, ".gguf");
}

char **hub_choose(rsrc_arena *a, const char *spec, const hub_listing *l, const char *only) {
    int k = 0, ggufs = 0, weights = 0;
    char **files = rsrc_arena_alloc(a, sizeof *files * ((size_t)l->n + 1));
    bool config = false;
    for (int i = 0; i < l->n; i++) {
        const char *name = l->files[i];
        ggufs += hub_is_gguf(name), config |= !strcmp(name, "config.json");
        weights += wanted(name) && strstr(name, ".safetensors") != NULL;
    }
    bool checkpoint = !only && config && weights > 0;
    for (int i = 0; i < l->n; i++) {
        const char *name = l->files[i];
        if (!(only ? !strcmp(name, only) : checkpoint ? wanted(name) : hub_is_gguf(name) && ggufs == 1)) continue;
        if (!hub_file_ok(name))
            rsrc_fatal("%s: the Hub's file name '%s' is not a path inside the repository; refusing it", spec,
                       hub_shown(a, name));
        files[k++] = rsrc_arena_printf(a, "%s", name);
    }
    files[k] = NULL;
    if (only && !k) rsrc_fatal("%s: the repository has no file '%s' (--hf-file)", spec, hub_shown(a, only));
    if (!k && !ggufs)
        rsrc_fatal("%s: the repository holds neither a checkpoint (config.json and .safetensors) nor a GGUF file",
                   spec);
    if (!k) { /* the choices, a bounded few of them: a listing may name thousands */
        char list[4096];
        size_t used = 0;
        int shown = 0;
        for (int i = 0; i < l->n && shown < 32; i++)
            if (hub_is_gguf(l->files[i])) {
                int w = snprintf(list + used, sizeof list - used, "\n  %s", hub_shown(a, l->files[i]));
                if (w < 0 || (size_t)w >= sizeof list - used) break;
                used += (size_t)w, shown++;
            }
        rsrc_fatal("%s: the repository holds %d GGUF files; choose one with --hf-file:%.*s%s", spec, ggufs, (int)used,
                   list, shown < ggufs ? "\n  ..." : "");
    }
    return files;
}
