/*
 * fuzz_hub.c — what rsrc reads from a Hugging Face Hub, or a mirror posing as one (hub_parse.c),
 * without the network. The first byte picks: odd, response headers (one line each, as libcurl
 * hands them over) and the name checks on every line; even, a revision's listing (the API's
 * JSON) and the files chosen from it, with and without --hf-file. Whatever comes out must hold
 * what the checks promise: a commit of 40 hexadecimal digits, chosen names that stay inside the
 * repository, an ETag that passes only as one component, sizes and ranges that are counts.
 */
#include "fuzz_common.h"
#include "frontend/hub.h"

/* a path that leaves the directory it is joined to, or is not one name the checks would pass */
static bool escapes(const char *s) {
    size_t n = strlen(s);
    return s[0] == '/' || strstr(s, "//") || !strncmp(s, "../", 3) || strstr(s, "/../") || !strcmp(s, "..") ||
           strchr(s, '\\') || (n >= 3 && !strcmp(s + n - 3, "/..")) || (n && s[n - 1] == '/');
}

static void check_name(const char *s) {
    if ((hub_file_ok(s) || hub_revision_ok(s)) && escapes(s)) __builtin_trap();
    if (hub_etag_ok(s) && (strchr(s, '/') || escapes(s) || strlen(s) > HUB_ETAG_MAX)) __builtin_trap();
    if (hub_commit_ok(s) && strspn(s, "0123456789abcdef") != 40) __builtin_trap();
    if (hub_repo_ok(s) && (strstr(s, "..") || strstr(s, "--") || !strchr(s, '/'))) __builtin_trap();
}

static void headers(const char *text, size_t n) {
    hub_head h;
    hub_head_start(&h);
    rsrc_arena *a = rsrc_arena_open();
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(text + i, '\n', n - i);
        size_t len = nl ? (size_t)(nl - (text + i)) + 1 : n - i;
        hub_head_line(&h, text + i, len);
        char *line = rsrc_arena_printf(a, "%.*s", (int)(len - (nl != NULL)), text + i);
        check_name(line);
        if (strlen(hub_shown(a, line)) > 4 * 200 + 3) __builtin_trap();
        i += len;
    }
    if (strlen(h.etag) > HUB_ETAG_MAX + 1 || h.size < -1 || h.range < -1 || h.status < 0 || h.status > 999)
        __builtin_trap();
    check_name(h.etag);
    rsrc_arena_close(a);
}

static void listing(const char *text, size_t n, bool only) {
    rsrc_arena *a = rsrc_arena_open();
    hub_listing l;
    hub_read_listing(a, "hf:fuzz/x", "main", text, n, &l);
    if (!hub_commit_ok(l.commit)) __builtin_trap();
    char **files = hub_choose(a, "hf:fuzz/x", &l, only && l.n ? l.files[l.n - 1] : NULL);
    for (int i = 0; files[i]; i++)
        if (!hub_file_ok(files[i]) || escapes(files[i])) __builtin_trap();
    rsrc_arena_close(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    rsrc_fatal_quiet = getenv("RSRC_FUZZ_VERBOSE") == NULL;
    const char *text = (const char *)data + 1;
    if (data[0] & 1) {
        headers(text, size - 1);
        return 0;
    }
    FUZZ_GUARDED(listing(text, size - 1, false));
    FUZZ_GUARDED(listing(text, size - 1, true));
    return 0;
}
