/*
 * tokenizer.c — reading a Hugging Face tokenizer.json into the tables encode.c works on.
 *
 * What is understood is what the supported model families' files use: a BPE model (byte-level
 * or with byte fallback), added tokens, normalizers Prepend / Replace / NFC / NFD / NFKC / NFKD
 * (utf8proc), pre-tokenizers Split / ByteLevel / Metaspace, the TemplateProcessing post-processor,
 * and the decoders ByteLevel / Replace / ByteFallback / Fuse / Strip / Metaspace. Anything else is
 * refused with a message naming it, never silently tokenized differently.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jinja.h"
#include "tokenizer.h"
#include "utf8.h"

/* A failure's message, kept per thread (rsr_tokenizer_errmsg: the calling thread's last failure
 * on that tokenizer): chat templates render in several threads at once over one tokenizer. */
static _Thread_local struct {
    const rsr_tokenizer *t;
    char msg[TOK_ERRMSG_SIZE];
} last_error;

rsr_status tok_error(rsr_tokenizer *t, rsr_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error.msg, sizeof last_error.msg, fmt, ap);
    va_end(ap);
    last_error.t = t;
    return st;
}

/* ---- small containers ---- */

bool bytes_reserve(bytes *b, size_t extra) {
    if (b->len + extra <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

bool bytes_append(bytes *b, const void *data, size_t n) {
    if (!bytes_reserve(b, n + 1)) return false;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

uint32_t str_hash(const char *s, size_t len) { /* FNV-1a */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int32_t strmap_get(const strmap *m, const char *arena, const char *s, size_t len) {
    if (!m->slot) return -1;
    uint32_t h = str_hash(s, len);
    for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const struct strmap_entry *e = &m->slot[i];
        if (e->value < 0) return -1;
        if (e->hash == h && e->len == len && memcmp(arena + e->off, s, len) == 0) return e->value;
    }
}

static bool strmap_grow(strmap *m, const char *arena) {
    uint32_t cap = m->slot ? (m->mask + 1) * 2 : 1024;
    struct strmap_entry *slot = malloc(sizeof *slot * cap);
    if (!slot) return false;
    for (uint32_t i = 0; i < cap; i++) slot[i] = (struct strmap_entry){0, 0, 0, -1};
    for (uint32_t i = 0; m->slot && i <= m->mask; i++) {
        struct strmap_entry e = m->slot[i];
        if (e.value < 0) continue;
        uint32_t j = e.hash & (cap - 1);
        while (slot[j].value >= 0) j = (j + 1) & (cap - 1);
        slot[j] = e;
    }
    (void)arena;
    free(m->slot);
    m->slot = slot;
    m->mask = cap - 1;
    return true;
}

bool strmap_put(strmap *m, const char *arena, span key, int32_t value) {
    if ((!m->slot || (m->count + 1) * 2 > m->mask + 1) && !strmap_grow(m, arena)) return false;
    const char *s = arena + key.off;
    uint32_t h = str_hash(s, key.len);
    uint32_t i = h & m->mask;
    for (; m->slot[i].value >= 0; i = (i + 1) & m->mask) {
        const struct strmap_entry *e = &m->slot[i];
        if (e->hash == h && e->len == key.len && memcmp(arena + e->off, s, key.len) == 0) return true;
    }
    m->slot[i] = (struct strmap_entry){h, key.off, key.len, value};
    m->count++;
    return true;
}

static uint64_t merge_key(int32_t left, int32_t right) {
    return ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
}
static uint32_t merge_hash(uint64_t k) { /* splitmix64's finalizer: every key bit reaches the low bits */
    k = (k ^ (k >> 30)) * 0xbf58476d1ce4e5b9u;
    k = (k ^ (k >> 27)) * 0x94d049bb133111ebu;
    return (uint32_t)(k ^ (k >> 31));
}

bool tok_merges_alloc(rsr_tokenizer *t, size_t n) {
    if (n > UINT32_MAX / 4) return false;
    uint32_t cap = 1024;
    while (cap < 2 * n + 2) cap *= 2;
    t->merges = calloc(cap, sizeof *t->merges);
    t->merge_mask = cap - 1;
    return t->merges != NULL;
}

void tok_merge_insert(rsr_tokenizer *t, int32_t left, int32_t right, int32_t result, int32_t rank) {
    uint64_t k = merge_key(left, right);
    uint32_t i = merge_hash(k) & t->merge_mask;
    while (t->merges[i].key && t->merges[i].key != k) i = (i + 1) & t->merge_mask;
    if (!t->merges[i].key) t->merges[i] = (struct merge_slot){k, rank, result}; /* the first rank of a pair wins */
}

int32_t tok_lookup_merge(const rsr_tokenizer *t, int32_t left, int32_t right, int32_t *result) {
    if (!t->merges || left < 0 || right < 0) return -1;
    uint64_t k = merge_key(left, right);
    for (uint32_t i = merge_hash(k) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        if (t->merges[i].key == 0) return -1;
        if (t->merges[i].key == k) {
            *result = t->merges[i].result;
            return t->merges[i].rank;
        }
    }
}

/* ---- UTF-8 and the byte-level alphabet ---- */

int utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | (cp >> 6 & 63)), out[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18), out[1] = (char)(0x80 | (cp >> 12 & 63));
    out[2] = (char)(0x80 | (cp >> 6 & 63)), out[3] = (char)(0x80 | (cp & 63));
    return 4;
}

int utf8_next(const char *s, size_t n, uint32_t *cp) {
    const int len = utf8_scan((const unsigned char *)s, n, cp);
    if (len > 0) return len;
    *cp = 0xFFFD; /* only on invalid input, which callers sanitize first: what the sanitizer makes of it */
    return -len;
}

/* Printable Latin-1 bytes stand for themselves; the other 68 bytes take code points 256.. in
 * byte order, so that every byte is a visible character in vocabulary files. */
static uint32_t byte_to_codepoint(uint8_t b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    uint32_t n = 0;
    for (uint32_t c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) n++;
    return 256 + n;
}

/* ---- JSON helpers ---- */

static const char *json_type_string(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "(no type)";
}

static bool json_bool(const cJSON *o, const char *key, bool fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : fallback;
}

bool tok_arena_add(rsr_tokenizer *t, const char *s, size_t len, span *out) {
    if (len > UINT32_MAX || t->arena.len + len + 1 > UINT32_MAX) return false;
    out->off = (uint32_t)t->arena.len;
    out->len = (uint32_t)len;
    return bytes_append(&t->arena, s, len) && bytes_append(&t->arena, "", 1); /* keep a NUL after it */
}

#define OOM(t) tok_error((t), RSR_ERR_OUT_OF_MEMORY, "out of memory reading tokenizer.json")

/* ---- the BPE model ---- */

static rsr_status read_model(rsr_tokenizer *t, const cJSON *model, int32_t max_added_id) {
    if (!cJSON_IsObject(model)) return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: no \"model\" object");
    if (strcmp(json_type_string(model), "BPE") != 0)
        return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: model type '%s' is not supported (only BPE)",
                         json_type_string(model));
    const char *unsupported[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, unsupported[i]);
        if (cJSON_IsString(v) && *v->valuestring)
            return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: model.%s '%s' is not supported", unsupported[i],
                             v->valuestring);
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0)
        return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: BPE dropout %g is not supported", dropout->valuedouble);
    t->byte_fallback = json_bool(model, "byte_fallback", false);
    t->ignore_merges = json_bool(model, "ignore_merges", false);
    t->fuse_unk = json_bool(model, "fuse_unk", false);

    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: model.vocab is not an object");
    int32_t max_id = max_added_id;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1 << 24 ||
            e->valuedouble != (int32_t)e->valuedouble)
            return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: model.vocab['%s'] is not a token id in [0, 2^24]",
                             e->string);
        if (e->valueint > max_id) max_id = e->valueint;
    }
    t->vocab_size = max_id + 1;
    t->text = calloc((size_t)t->vocab_size, sizeof *t->text);
    t->piece = calloc((size_t)t->vocab_size, sizeof *t->piece);
    t->flags = calloc((size_t)t->vocab_size, 1);
    if (!t->text || !t->piece || !t->flags) return OOM(t);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        span s;
        if (!tok_arena_add(t, e->string, strlen(e->string), &s) || !strmap_put(&t->vocab, t->arena.p, s, e->valueint))
            return OOM(t);
        if (t->flags[e->valueint] & TF_USED)
            return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: token id %d is given to both '%s' and '%s'",
                             e->valueint, tok_str(t, t->text[e->valueint]), e->string);
        t->text[e->valueint] = s;
        t->flags[e->valueint] |= TF_USED;
    }

    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    t->unk_id = -1;
    if (cJSON_IsString(unk)) {
        t->unk_id = strmap_get(&t->vocab, t->arena.p, unk->valuestring, strlen(unk->valuestring));
        if (t->unk_id < 0)
            return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: unk_token '%s' is not in the vocabulary",
                             unk->valuestring);
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->fallback_id[b] = strmap_get(&t->vocab, t->arena.p, name, 6);
    }

    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: model.merges is not an array");
    if (!tok_merges_alloc(t, (size_t)cJSON_GetArraySize(merges))) return OOM(t);
    int32_t rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        const char *left, *right;
        size_t left_len, right_len;
        if (cJSON_IsString(m)) { /* "left right" */
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return tok_error(t, RSR_ERR_FORMAT,
                                 "tokenizer.json: merge %d '%s' is not two tokens separated by a space", rank,
                                 m->valuestring);
            left = m->valuestring, left_len = (size_t)(sp - left), right = sp + 1, right_len = strlen(right);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) { /* ["left", "right"] */
            left = m->child->valuestring, left_len = strlen(left);
            right = m->child->next->valuestring, right_len = strlen(right);
        } else {
            return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: merge %d is neither \"a b\" nor [\"a\", \"b\"]", rank);
        }
        int32_t a = strmap_get(&t->vocab, t->arena.p, left, left_len);
        int32_t b = strmap_get(&t->vocab, t->arena.p, right, right_len);
        if (a < 0 || b < 0)
            return tok_error(t, RSR_ERR_FORMAT,
                             "tokenizer.json: merge %d ('%.*s' '%.*s') names a token not in the vocabulary", rank,
                             (int)left_len, left, (int)right_len, right);
        if (!bytes_reserve(&t->arena, left_len + right_len + 1)) return OOM(t);
        char *joined = t->arena.p + t->arena.len; /* scratch past the end of the arena */
        memcpy(joined, left, left_len);
        memcpy(joined + left_len, right, right_len);
        int32_t result = strmap_get(&t->vocab, t->arena.p, joined, left_len + right_len);
        if (result < 0)
            return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: merge %d gives '%.*s', which is not in the vocabulary",
                             rank, (int)(left_len + right_len), joined);
        tok_merge_insert(t, a, b, result, rank);
    }
    return RSR_OK;
}

/* ---- added tokens ---- */

static rsr_status scan_added_ids(rsr_tokenizer *t, const cJSON *added, int32_t *max_id) {
    *max_id = -1;
    if (!added || cJSON_IsNull(added)) return RSR_OK;
    if (!cJSON_IsArray(added)) return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: added_tokens is not an array");
    for (const cJSON *a = added->child; a; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 1 << 24 || !cJSON_IsString(content) ||
            !*content->valuestring)
            return tok_error(t, RSR_ERR_FORMAT,
                             "tokenizer.json: an added token lacks a non-empty content or an id in [0, 2^24]");
        if (id->valueint > *max_id) *max_id = id->valueint;
    }
    return RSR_OK;
}

static rsr_status read_added(rsr_tokenizer *t, const cJSON *added) {
    int32_t n = cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
    t->added = calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added) return OOM(t);
    for (const cJSON *a = n ? added->child : NULL; a; a = a->next) {
        added_token *x = &t->added[t->num_added++];
        const char *content = cJSON_GetObjectItemCaseSensitive(a, "content")->valuestring;
        x->id = cJSON_GetObjectItemCaseSensitive(a, "id")->valueint;
        x->special = json_bool(a, "special", false);
        x->normalized = json_bool(a, "normalized", !x->special);
        x->lstrip = json_bool(a, "lstrip", false);
        x->rstrip = json_bool(a, "rstrip", false);
        if (!tok_arena_add(t, content, strlen(content), &x->content)) return OOM(t);
        if ((t->flags[x->id] & TF_USED) && !(t->flags[x->id] & TF_ADDED) &&
            strcmp(tok_str(t, t->text[x->id]), content) != 0)
            return tok_error(t, RSR_ERR_FORMAT,
                             "tokenizer.json: added token '%s' takes id %d, which the vocabulary gives to '%s'",
                             content, x->id, tok_str(t, t->text[x->id]));
        t->text[x->id] = x->content;
        t->flags[x->id] |= TF_USED | TF_ADDED | (x->special ? TF_SPECIAL : 0);
    }
    return RSR_OK;
}

/* Added tokens grouped by their first byte, longest first, so that matching them in a text
 * costs one table look-up at positions where none can start. */
static _Thread_local const rsr_tokenizer *sort_owner; /* qsort has no context argument in C11 */
static int by_first_byte_then_longest(const void *a, const void *b) {
    const added_token *x = &sort_owner->added[*(const int32_t *)a], *y = &sort_owner->added[*(const int32_t *)b];
    uint8_t fx = (uint8_t)tok_str(sort_owner, x->content)[0], fy = (uint8_t)tok_str(sort_owner, y->content)[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (x->content.len != y->content.len) return x->content.len > y->content.len ? -1 : 1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

static rsr_status index_added(rsr_tokenizer *t) {
    t->added_by_byte = malloc(sizeof(int32_t) * (size_t)(t->num_added + 1));
    if (!t->added_by_byte) return OOM(t);
    for (int32_t i = 0; i < t->num_added; i++) t->added_by_byte[i] = i;
    sort_owner = t;
    qsort(t->added_by_byte, (size_t)t->num_added, sizeof(int32_t), by_first_byte_then_longest);
    int32_t k = 0;
    for (int b = 0; b < 256; b++) {
        t->added_first[b] = k;
        while (k < t->num_added && (uint8_t)tok_str(t, t->added[t->added_by_byte[k]].content)[0] == b) k++;
    }
    t->added_first[256] = k;
    return RSR_OK;
}

/* ---- normalizer ---- */

static rsr_status read_normalizer(rsr_tokenizer *t, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return RSR_OK;
    const char *type = json_type_string(n);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        for (const cJSON *x = cJSON_IsArray(list) ? list->child : NULL; x; x = x->next) {
            rsr_status st = read_normalizer(t, x);
            if (st != RSR_OK) return st;
        }
        return RSR_OK;
    }
    norm_step step = {0};
    static const char *const forms[] = {"NFC", "NFD", "NFKC", "NFKD"}; /* enum norm_kind's order */
    int form = 0;
    while (form < 4 && strcmp(type, forms[form]) != 0) form++;
    if (form < 4) {
        step.kind = (enum norm_kind)(NORM_NFC + form);
    } else if (strcmp(type, "Prepend") == 0) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(n, "prepend");
        if (!cJSON_IsString(p))
            return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: Prepend normalizer without a string");
        step.kind = NORM_PREPEND;
        if (!tok_arena_add(t, p->valuestring, strlen(p->valuestring), &step.a)) return OOM(t);
    } else if (strcmp(type, "Replace") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(n, "content");
        if (!cJSON_IsString(pat) || !*pat->valuestring || !cJSON_IsString(content))
            return tok_error(t, RSR_ERR_FORMAT,
                             "tokenizer.json: Replace normalizer: only a non-empty String pattern is supported");
        step.kind = NORM_REPLACE;
        if (!tok_arena_add(t, pat->valuestring, strlen(pat->valuestring), &step.a) ||
            !tok_arena_add(t, content->valuestring, strlen(content->valuestring), &step.b))
            return OOM(t);
    } else {
        return tok_error(t, RSR_ERR_FORMAT,
                         "tokenizer.json: normalizer '%s' is not supported (Sequence, Prepend, Replace, NFC, NFD, "
                         "NFKC, NFKD)",
                         type);
    }
    norm_step *grown = realloc(t->norm, sizeof *t->norm * (size_t)(t->num_norm + 1));
    if (!grown) return OOM(t);
    t->norm = grown;
    t->norm[t->num_norm++] = step;
    return RSR_OK;
}

/* ---- pre-tokenizer ---- */

/* The patterns in tokenizer.json are Oniguruma's. Two things differ in PCRE2 and are rewritten:
 * \s / \S mean Unicode White_Space there (PCRE2's \s leaves out U+0085), and (?i:...) folds
 * ASCII letters only (PCRE2 with UCP would also fold 'ſ' to 's' and 'K' to 'k'). */
static bool translate_regex(const char *src, bytes *out) {
    int depth = 0, fold_depth = -1; /* paren depth at which a (?i: group opened */
    bool in_class = false;
    out->len = 0;
    for (size_t i = 0; src[i]; i++) {
        char c = src[i];
        bool ok;
        if (c == '\\' && src[i + 1]) {
            char e = src[i + 1];
            if (e == 's')
                ok = bytes_append(out, "\\p{White_Space}", 15);
            else if (e == 'S')
                ok = bytes_append(out, "\\P{White_Space}", 15);
            else if ((e == 'p' || e == 'P') && src[i + 2] == '{' && strchr(src + i, '}')) {
                size_t end = (size_t)(strchr(src + i, '}') - src);
                ok = bytes_append(out, src + i, end - i + 1);
                i = end - 1;
            } else
                ok = bytes_append(out, src + i, 2);
            i++;
        } else if (in_class) {
            if (c == ']') in_class = false;
            if (fold_depth >= 0 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
                if (src[i + 1] == '-' || (i > 0 && src[i - 1] == '-')) return false; /* a folded range */
                char both[2] = {c, (char)(c ^ 0x20)};
                ok = bytes_append(out, both, 2);
            } else
                ok = bytes_append(out, &c, 1);
        } else if (c == '[') {
            in_class = true;
            ok = bytes_append(out, &c, 1);
            if (src[i + 1] == '^') ok = ok && bytes_append(out, "^", 1), i++;
            if (src[i + 1] == ']') ok = ok && bytes_append(out, "]", 1), i++; /* a literal ']' first */
        } else if (c == '(') {
            if (strncmp(src + i, "(?i:", 4) == 0 && fold_depth < 0) {
                fold_depth = depth;
                ok = bytes_append(out, "(?:", 3);
                i += 3;
            } else
                ok = bytes_append(out, &c, 1);
            depth++;
        } else if (c == ')') {
            depth--;
            if (depth == fold_depth) fold_depth = -1;
            ok = bytes_append(out, &c, 1);
        } else if (fold_depth >= 0 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
            char cls[4] = {'[', c, (char)(c ^ 0x20), ']'};
            ok = bytes_append(out, cls, 4);
        } else
            ok = bytes_append(out, &c, 1);
        if (!ok) return false;
    }
    return bytes_append(out, "", 0);
}

static rsr_status compile_regex(rsr_tokenizer *t, const char *pattern, bool literal, pcre2_code **out) {
    bytes rx = {0};
    bool ok;
    if (literal) { /* a String pattern: every character stands for itself */
        ok = bytes_append(&rx, "", 0);
        for (const char *p = pattern; *p && ok; p++) {
            if (strchr("\\^$.|?*+()[]{}", *p)) ok = bytes_append(&rx, "\\", 1);
            ok = ok && bytes_append(&rx, p, 1);
        }
    } else {
        ok = translate_regex(pattern, &rx);
        if (!ok && rx.p) {
            free(rx.p);
            return tok_error(t, RSR_ERR_FORMAT,
                             "tokenizer.json: pattern '%s': a letter range inside (?i:...) is not supported", pattern);
        }
    }
    if (!ok) {
        free(rx.p);
        return OOM(t);
    }
    int code;
    PCRE2_SIZE at;
    *out = pcre2_compile((PCRE2_SPTR)rx.p, rx.len, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    free(rx.p);
    if (!*out) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: pattern '%s': %s at offset %zu", pattern,
                         (const char *)msg, (size_t)at);
    }
    pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); /* best effort: the interpreter gives the same matches */
    return RSR_OK;
}

static rsr_status add_pre(rsr_tokenizer *t, pre_step step) {
    if (t->byte_level) {
        if (step.re) pcre2_code_free(step.re);
        return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: a pre-tokenizer after ByteLevel is not supported");
    }
    pre_step *grown = realloc(t->pre, sizeof *t->pre * (size_t)(t->num_pre + 1));
    if (!grown) {
        if (step.re) pcre2_code_free(step.re);
        return OOM(t);
    }
    t->pre = grown;
    t->pre[t->num_pre++] = step;
    return RSR_OK;
}

static rsr_status read_pre_tokenizer(rsr_tokenizer *t, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return RSR_OK;
    const char *type = json_type_string(p);
    pre_step step = {0};
    rsr_status st;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        for (const cJSON *x = cJSON_IsArray(list) ? list->child : NULL; x; x = x->next)
            if ((st = read_pre_tokenizer(t, x)) != RSR_OK) return st;
        return RSR_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pattern, "Regex");
        const cJSON *str = cJSON_GetObjectItemCaseSensitive(pattern, "String");
        const cJSON *behavior = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                            "Contiguous"};
        step.kind = PRE_SPLIT;
        step.behavior = (enum split_behavior) - 1;
        for (int i = 0; i < 5; i++)
            if (cJSON_IsString(behavior) && strcmp(behavior->valuestring, names[i]) == 0)
                step.behavior = (enum split_behavior)i;
        if ((int)step.behavior < 0)
            return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: Split behavior '%s' is unknown",
                             cJSON_IsString(behavior) ? behavior->valuestring : "(none)");
        step.invert = json_bool(p, "invert", false);
        if (cJSON_IsString(rx))
            st = compile_regex(t, rx->valuestring, false, &step.re);
        else if (cJSON_IsString(str) && *str->valuestring)
            st = compile_regex(t, str->valuestring, true, &step.re);
        else
            return tok_error(t, RSR_ERR_FORMAT,
                             "tokenizer.json: Split pre-tokenizer without a Regex or String pattern");
        if (st != RSR_OK) return st;
        return add_pre(t, step);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        step.kind = PRE_BYTE_LEVEL;
        step.add_prefix_space = json_bool(p, "add_prefix_space", false);
        if (json_bool(p, "use_regex", true) &&
            (st = compile_regex(t, "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
                                false, &step.re)) != RSR_OK)
            return st;
        step.behavior = SPLIT_ISOLATED;
        st = add_pre(t, step);
        t->byte_level = true;
        return st;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(p, "replacement");
        const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(p, "prepend_scheme");
        step.kind = PRE_METASPACE;
        const char *r = cJSON_IsString(rep) ? rep->valuestring : "\xe2\x96\x81";
        if (!tok_arena_add(t, r, strlen(r), &step.replacement)) return OOM(t);
        step.prepend = json_bool(p, "add_prefix_space", true) ? 2 : 0;
        if (cJSON_IsString(scheme))
            step.prepend = strcmp(scheme->valuestring, "never") == 0   ? 0
                           : strcmp(scheme->valuestring, "first") == 0 ? 1
                                                                       : 2;
        step.split = json_bool(p, "split", true);
        return add_pre(t, step);
    }
    return tok_error(t, RSR_ERR_FORMAT,
                     "tokenizer.json: pre-tokenizer '%s' is not supported (Sequence, Split, ByteLevel, Metaspace)",
                     type);
}

/* ---- post-processor ---- */

static rsr_status read_post_processor(rsr_tokenizer *t, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return RSR_OK;
    const char *type = json_type_string(p);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors");
        for (const cJSON *x = cJSON_IsArray(list) ? list->child : NULL; x; x = x->next) {
            rsr_status st = read_post_processor(t, x);
            if (st != RSR_OK) return st;
        }
        return RSR_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) return RSR_OK; /* offsets only */
    if (strcmp(type, "TemplateProcessing") != 0)
        return tok_error(
            t, RSR_ERR_FORMAT,
            "tokenizer.json: post-processor '%s' is not supported (TemplateProcessing, ByteLevel, Sequence)", type);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    int32_t n = cJSON_IsArray(single) ? cJSON_GetArraySize(single) : 0;
    free(t->prefix_ids), free(t->suffix_ids);
    t->prefix_ids = malloc(sizeof(int32_t) * (size_t)(n + 1));
    t->suffix_ids = malloc(sizeof(int32_t) * (size_t)(n + 1));
    t->num_prefix = t->num_suffix = 0;
    if (!t->prefix_ids || !t->suffix_ids) return OOM(t);
    bool seen_sequence = false;
    for (const cJSON *item = n ? single->child : NULL; item; item = item->next) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(item, "Sequence")) {
            seen_sequence = true;
            continue;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
        if (!cJSON_IsString(name))
            return tok_error(t, RSR_ERR_FORMAT,
                             "tokenizer.json: TemplateProcessing item is neither SpecialToken nor Sequence");
        const cJSON *ids =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name->valuestring), "ids");
        if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != 1 || !cJSON_IsNumber(ids->child) ||
            ids->child->valueint < 0 || ids->child->valueint >= t->vocab_size)
            return tok_error(t, RSR_ERR_FORMAT,
                             "tokenizer.json: TemplateProcessing special token '%s' needs one id in the vocabulary",
                             name->valuestring);
        if (seen_sequence)
            t->suffix_ids[t->num_suffix++] = ids->child->valueint;
        else
            t->prefix_ids[t->num_prefix++] = ids->child->valueint;
    }
    return RSR_OK;
}

/* ---- decoder: the bytes each token stands for, and what happens to the whole text ---- */

static rsr_status read_decoder(rsr_tokenizer *t, const cJSON *d, dec_step *steps, int *n) {
    if (!d || cJSON_IsNull(d)) return RSR_OK;
    const char *type = json_type_string(d);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        for (const cJSON *x = cJSON_IsArray(list) ? list->child : NULL; x; x = x->next) {
            rsr_status st = read_decoder(t, x, steps, n);
            if (st != RSR_OK) return st;
        }
        return RSR_OK;
    }
    if (*n == 16) return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: more than 16 decoders");
    dec_step s = {0};
    if (strcmp(type, "ByteLevel") == 0)
        s.kind = DEC_BYTE_LEVEL;
    else if (strcmp(type, "ByteFallback") == 0)
        s.kind = DEC_BYTE_FALLBACK;
    else if (strcmp(type, "Fuse") == 0)
        s.kind = DEC_FUSE;
    else if (strcmp(type, "Replace") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "pattern"), "String");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(d, "content");
        if (!cJSON_IsString(pat) || !*pat->valuestring || !cJSON_IsString(content))
            return tok_error(t, RSR_ERR_FORMAT,
                             "tokenizer.json: Replace decoder: only a non-empty String pattern is supported");
        s.kind = DEC_REPLACE, s.a = pat->valuestring, s.b = content->valuestring;
    } else if (strcmp(type, "Strip") == 0) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(d, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start"),
                    *stop = cJSON_GetObjectItemCaseSensitive(d, "stop");
        s.kind = DEC_STRIP, s.a = cJSON_IsString(content) ? content->valuestring : " ";
        s.start = cJSON_IsNumber(start) ? start->valueint : 0;
        s.stop = cJSON_IsNumber(stop) ? stop->valueint : 0;
    } else if (strcmp(type, "Metaspace") == 0) {
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(d, "replacement");
        const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(d, "prepend_scheme");
        s.kind = DEC_METASPACE, s.a = cJSON_IsString(rep) ? rep->valuestring : "\xe2\x96\x81";
        s.start = json_bool(d, "add_prefix_space", true);
        if (cJSON_IsString(scheme)) s.start = strcmp(scheme->valuestring, "never") != 0;
    } else {
        return tok_error(
            t, RSR_ERR_FORMAT,
            "tokenizer.json: decoder '%s' is not supported (ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace)",
            type);
    }
    steps[(*n)++] = s;
    return RSR_OK;
}

bool replace_all(bytes *out, const char *s, size_t len, const char *from, size_t flen, const char *to, size_t tlen) {
    out->len = 0;
    for (size_t i = 0; i < len;) {
        if (i + flen <= len && memcmp(s + i, from, flen) == 0) {
            if (!bytes_append(out, to, tlen)) return false;
            i += flen;
        } else {
            if (!bytes_append(out, s + i, 1)) return false;
            i++;
        }
    }
    return bytes_append(out, "", 0);
}

/* Runs the per-token decoders (those before Fuse) over every token once, at load. */
rsr_status tok_build_pieces(rsr_tokenizer *t, const dec_step *steps, int n) {
    int per_token = n;
    for (int i = 0; i < n; i++)
        if (steps[i].kind == DEC_FUSE) per_token = i;
    for (int i = per_token + 1; i < n; i++)
        if (steps[i].kind != DEC_STRIP)
            return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: only Strip may follow the Fuse decoder");
    for (int i = per_token + 1; i < n; i++) {
        if (!tok_arena_add(t, steps[i].a, strlen(steps[i].a), &t->strip_content)) return OOM(t);
        t->strip_start = steps[i].start, t->strip_stop = steps[i].stop;
    }
    bytes cur = {0}, next = {0};
    uint8_t unbyte[324]; /* byte-level code point → byte */
    memset(unbyte, 0, sizeof unbyte);
    for (int b = 0; b < 256; b++) unbyte[byte_to_codepoint((uint8_t)b)] = (uint8_t)b;
    rsr_status st = RSR_OK;
    for (int32_t id = 0; id < t->vocab_size && st == RSR_OK; id++) {
        if (!(t->flags[id] & TF_USED)) continue;
        cur.len = 0;
        if (!bytes_append(&cur, tok_str(t, t->text[id]), t->text[id].len)) goto oom;
        for (int i = 0; i < per_token; i++) {
            const dec_step *s = &steps[i];
            next.len = 0;
            if (s->kind == DEC_BYTE_LEVEL) {
                if (t->flags[id] & TF_ADDED) continue; /* added tokens are written as they are */
                for (size_t k = 0; k < cur.len;) {
                    uint32_t cp;
                    k += (size_t)utf8_next(cur.p + k, cur.len - k, &cp);
                    char byte = (char)(cp < 324 ? unbyte[cp] : 0);
                    if (!bytes_append(&next, &byte, 1)) goto oom;
                }
            } else if (s->kind == DEC_REPLACE || s->kind == DEC_METASPACE) {
                const char *to = s->kind == DEC_REPLACE ? s->b : " ";
                if (!replace_all(&next, cur.p, cur.len, s->a, strlen(s->a), to, strlen(to))) goto oom;
            } else if (s->kind == DEC_BYTE_FALLBACK) {
                unsigned v;
                char tail;
                if (cur.len == 6 && memcmp(cur.p, "<0x", 3) == 0 && cur.p[5] == '>' &&
                    sscanf(cur.p + 3, "%2x%c", &v, &tail) == 2) {
                    char byte = (char)v;
                    if (!bytes_append(&next, &byte, 1)) goto oom;
                } else if (!bytes_append(&next, cur.p, cur.len))
                    goto oom;
            } else { /* DEC_STRIP per token */
                size_t clen = strlen(s->a), b = 0, e = cur.len;
                for (int32_t k = 0; k < s->start && b + clen <= e && memcmp(cur.p + b, s->a, clen) == 0; k++) b += clen;
                for (int32_t k = 0; k < s->stop && e >= b + clen && memcmp(cur.p + e - clen, s->a, clen) == 0; k++)
                    e -= clen;
                if (!bytes_append(&next, cur.p + b, e - b)) goto oom;
            }
            bytes swap = cur;
            cur = next, next = swap;
        }
        if (!tok_arena_add(t, cur.p, cur.len, &t->piece[id])) goto oom;
    }
    /* Metaspace drops the space it put before the first word. */
    for (int i = 0; i < per_token; i++)
        if (steps[i].kind == DEC_METASPACE && steps[i].start && !t->strip_content.len) {
            if (!tok_arena_add(t, " ", 1, &t->strip_content)) goto oom;
            t->strip_start = 1;
        }
    free(cur.p), free(next.p);
    return st;
oom:
    free(cur.p), free(next.p);
    return OOM(t);
}

/* ---- what the vocabulary says about itself ---- */

static int32_t first_token(const rsr_tokenizer *t, const char *const *names) {
    for (; *names; names++) {
        int32_t id = rsr_tokenizer_token_id(t, *names);
        if (id >= 0) return id;
    }
    return -1;
}

static void describe(rsr_tokenizer *t) {
    static const char *const bos[] = {"<|begin_of_text|>", "<s>", "<|endoftext|>", NULL};
    static const char *const eos[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", NULL};
    static const char *const eot[] = {"<|eot_id|>", "<|im_end|>", "</s>", NULL};
    t->kind = t->byte_level ? "byte-level BPE" : t->byte_fallback ? "BPE with byte fallback" : "BPE";
    t->bos_id = t->num_prefix ? t->prefix_ids[0] : first_token(t, bos);
    t->eos_id = first_token(t, eos);
    t->eot_id = first_token(t, eot);
    t->chat_template = NULL;
    if (rsr_tokenizer_token_id(t, "<|start_header_id|>") >= 0 && rsr_tokenizer_token_id(t, "<|end_header_id|>") >= 0 &&
        rsr_tokenizer_token_id(t, "<|eot_id|>") >= 0 && rsr_tokenizer_token_id(t, "<|begin_of_text|>") >= 0)
        t->chat_template = "llama3";
    else if (!t->byte_level && rsr_tokenizer_token_id(t, "<s>") >= 0 && rsr_tokenizer_token_id(t, "</s>") >= 0)
        t->chat_template = "llama2";
    t->builtin_template = t->chat_template;
}

/* ---- the public entry points ---- */

static rsr_status load(rsr_tokenizer *t, const char *json, size_t len) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : 0;
        return tok_error(t, RSR_ERR_FORMAT, "tokenizer.json: not valid JSON (near byte %zu)", off);
    }
    rsr_status st;
    int32_t max_added;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    dec_step steps[16];
    int nsteps = 0;
    if ((st = scan_added_ids(t, added, &max_added)) == RSR_OK &&
        (st = read_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"), max_added)) == RSR_OK &&
        (st = read_added(t, added)) == RSR_OK &&
        (st = read_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"))) == RSR_OK &&
        (st = read_pre_tokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"))) == RSR_OK &&
        (st = read_post_processor(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"))) == RSR_OK &&
        (st = read_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), steps, &nsteps)) == RSR_OK)
        st = tok_build_pieces(t, steps, nsteps); /* the decoder steps point into the JSON: before it goes */
    cJSON_Delete(root);
    return st != RSR_OK ? st : tok_finish(t);
}

rsr_status tok_finish(rsr_tokenizer *t) {
    rsr_status st;
    for (int32_t i = 0; i < t->num_added; i++)
        if (t->added[i].normalized && t->num_norm) t->any_normalized_added = true;
    if (t->byte_level)
        for (int b = 0; b < 256; b++) {
            char s[4];
            int n = utf8_encode(byte_to_codepoint((uint8_t)b), s);
            t->byte_id[b] = strmap_get(&t->vocab, t->arena.p, s, (size_t)n);
            memcpy(t->byte_text[b], s, (size_t)n);
            t->byte_text_len[b] = (uint8_t)n;
        }
    if ((st = index_added(t)) != RSR_OK) return st;
    describe(t);
    tok_work *w = tok_work_take(t); /* the spare, made now so that a lone caller never allocates one */
    if (!w) return OOM(t);
    tok_work_give(t, w);
    return RSR_OK;
}

rsr_status rsr_tokenizer_create(const char *data, size_t len, rsr_tokenizer **out) {
    if (!out) return RSR_ERR_INVALID_ARGUMENT;
    rsr_tokenizer *t = calloc(1, sizeof *t);
    *out = t;
    if (!t) return RSR_ERR_OUT_OF_MEMORY;
    if (!data) return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "no tokenizer.json text or tokenizer.model bytes given");
    if (tok_is_sentencepiece(data, len)) return tok_load_sentencepiece(t, (const uint8_t *)data, len);
    return load(t, data, len);
}

void rsr_tokenizer_free(rsr_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->num_pre; i++) pcre2_code_free(t->pre[i].re);
    tok_work_free(t->spare);
    free(t->arena.p), free(t->text), free(t->piece), free(t->flags), free(t->vocab.slot), free(t->merges);
    free(t->added), free(t->added_by_byte), free(t->norm), free(t->pre), free(t->prefix_ids), free(t->suffix_ids);
    free(t->load_scratch.p);
    jinja_free(t->jinja);
    free(t);
}

const char *rsr_tokenizer_errmsg(const rsr_tokenizer *t) {
    return !t ? "no tokenizer (out of memory or a NULL handle)" : last_error.t == t ? last_error.msg : "";
}

rsr_status rsr_tokenizer_get_info(const rsr_tokenizer *t, rsr_tokenizer_info *info) {
    if (!t || !info || !t->text) return RSR_ERR_INVALID_ARGUMENT;
    *info = (rsr_tokenizer_info){
        .kind = t->kind,
        .vocab_size = t->vocab_size,
        .num_added_tokens = t->num_added,
        .bos_token_id = t->bos_id,
        .eos_token_id = t->eos_id,
        .eot_token_id = t->eot_id,
        .chat_template = t->chat_template,
    };
    return RSR_OK;
}

const char *rsr_tokenizer_token_piece(const rsr_tokenizer *t, int32_t id, size_t *len) {
    if (!t || !t->piece || id < 0 || id >= t->vocab_size) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->piece[id].len;
    return tok_str(t, t->piece[id]);
}

int32_t rsr_tokenizer_token_id(const rsr_tokenizer *t, const char *token) {
    if (!t || !token || !t->text) return -1;
    size_t len = strlen(token);
    for (int32_t i = 0; i < t->num_added; i++)
        if (t->added[i].content.len == len && memcmp(tok_str(t, t->added[i].content), token, len) == 0)
            return t->added[i].id;
    return strmap_get(&t->vocab, t->arena.p, token, len);
}

int rsr_tokenizer_is_special(const rsr_tokenizer *t, int32_t id) {
    return t && t->flags && id >= 0 && id < t->vocab_size && (t->flags[id] & TF_SPECIAL) != 0;
}
