/*
 * serve_prompt.c — a completion request's prompt: its conversation through the chat template
 * (with the tools in the generic format's system message, and --literal-content's contents kept
 * as text), its tokens (given as ids, or encoded), whether the tools offered are what puts it over
 * the context, and the tenant (API key and cache_salt) whose cached prefixes it may reuse. Uses
 * the tokenizer through the model's API (no lock: its calls run in any number of threads), cJSON,
 * OpenSSL's SHA-256 and libmicrohttpd's headers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "encode_all.h"
#include "serve_server.h"
#include "think.h"

/* The context a request gives the template: its own, or (tools in the generic format) without
 * the tools and with a system message that says how to call them. NULL: out of memory. */
static char *chat_context(const server *sv, const serve_params *p) {
    if (!p->tools || sv->tool_format != SERVE_TOOL_GENERIC) return strdup(p->context);
    cJSON *ctx = cJSON_Parse(p->context);
    char *ask = serve_generic_tools_prompt(p->tools), *text = NULL;
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(ctx, "messages"), *first = cJSON_GetArrayItem(msgs, 0);
    cJSON_DeleteItemFromObjectCaseSensitive(ctx, "tools");
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "role"));
    const char *said = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "content"));
    if (ctx && ask && role && !strcmp(role, "system") && said) { /* the system message says it after its own */
        size_t n = strlen(said) + strlen(ask) + 3;
        char *both = malloc(n);
        if (both) snprintf(both, n, "%s\n\n%s", said, ask);
        cJSON_ReplaceItemInObjectCaseSensitive(first, "content", cJSON_CreateString(both ? both : ask));
        free(both);
    } else if (ctx && ask) {
        cJSON *sys = cJSON_CreateObject();
        cJSON_AddStringToObject(sys, "role", "system");
        cJSON_AddStringToObject(sys, "content", ask);
        cJSON_InsertItemInArray(msgs, 0, sys);
    }
    if (ctx && ask) text = cJSON_PrintUnformatted(ctx);
    cJSON_Delete(ctx), free(ask);
    return text;
}

/* --literal-content: the messages' contents that hold a special token's text, each replaced in the
 * context by a marker (U+FFF0, its index, U+FFF0) before the template renders it; their original
 * texts in order. The rendering is then tokenized in pieces: the template's own text with its
 * special tokens read, each content as plain text (literal_ids). */
struct literal_set {
    char **text;
    int n;
};
#define LITERAL_MARK "\xef\xbf\xb0"

static bool has_special_text(server *sv, const char *s) {
    int32_t n = 0;
    rsr_status st;
    int32_t *ids = encode_all(&api, sv->tok, s, -1, RSR_ENCODE_PARSE_SPECIAL, &n, &st);
    bool special = false;
    for (int32_t i = 0; ids && i < n && !special; i++) special = api.tokenizer_is_special(sv->tok, ids[i]);
    free(ids);
    return special;
}

static char *literal_context(server *sv, const char *context, literal_set *lit) {
    cJSON *ctx = cJSON_Parse(context), *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(ctx, "messages")) {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(c) || !has_special_text(sv, c->valuestring)) continue;
        char **grown = realloc(lit->text, sizeof *grown * (size_t)(lit->n + 1)), mark[32];
        if (!grown) break;
        lit->text = grown, lit->text[lit->n] = strdup(c->valuestring);
        snprintf(mark, sizeof mark, LITERAL_MARK "%d" LITERAL_MARK, lit->n++);
        cJSON_SetValuestring(c, mark);
    }
    char *out = ctx && lit->n ? cJSON_PrintUnformatted(ctx) : strdup(context);
    cJSON_Delete(ctx);
    return out;
}

static void literal_free(literal_set *lit) {
    for (int i = 0; i < lit->n; i++) free(lit->text[i]);
    free(lit->text);
    *lit = (literal_set){0};
}

/* The rendering's ids, its markers' contents as plain text (a marker the template dropped or
 * changed is only missing from the ids, as its text would be). NULL: out of memory. */
static int32_t *literal_ids(server *sv, const char *text, const literal_set *lit, int32_t *n) {
    int32_t *ids = malloc(sizeof *ids), total = 0;
    const size_t ml = strlen(LITERAL_MARK);
    if (!ids) return NULL;
    for (const char *at = text; at;) {
        const char *m = strstr(at, LITERAL_MARK), *close = m ? strstr(m + ml, LITERAL_MARK) : NULL;
        char *end = NULL;
        long k = close ? strtol(m + ml, &end, 10) : -1;
        bool marker = close && end == close && k >= 0 && k < lit->n;
        size_t piece = m && marker ? (size_t)(m - at) : strlen(at);
        char *seg = strndup(at, piece);
        for (int part = 0; part < 1 + marker; part++) {
            const char *s = part ? lit->text[k] : seg;
            int32_t got = 0;
            rsr_status st;
            int32_t *more =
                seg ? encode_all(&api, sv->tok, s, -1, part ? 0 : RSR_ENCODE_PARSE_SPECIAL, &got, &st) : NULL;
            int32_t *all = more ? realloc(ids, sizeof *all * (size_t)(total + got + 1)) : NULL;
            if (!all) return free(more), free(seg), free(ids), NULL;
            memcpy(all + total, more, sizeof *all * (size_t)got), ids = all, total += got;
            free(more);
        }
        free(seg);
        at = marker ? close + ml : NULL; /* no mark, or a lone one: the rest was the template's text */
    }
    *n = total;
    return ids;
}

/* The conversation through the chat template, or NULL with a message; notes in p->reply how the
 * reply is to be split. No lock: rsr.h lets the tokenizer's calls run in any number of threads. */
char *chat_text(server *sv, serve_params *p, char *err, size_t errlen, literal_set *lit) {
    size_t len = 0, cap = 4096;
    char *text = malloc(cap), *ctx = chat_context(sv, p);
    if (ctx && lit && sv->literal_content) {
        char *marked = literal_context(sv, ctx, lit);
        free(ctx), ctx = marked;
    }
    size_t n = ctx ? strlen(ctx) : 0;
    rsr_status st = text && ctx
                        ? api.tokenizer_apply_chat_template_json(sv->tok, sv->chat_template, ctx, n, text, cap, &len)
                        : RSR_ERR_OUT_OF_MEMORY;
    if (st == RSR_ERR_BUFFER_TOO_SMALL) {
        char *grown = realloc(text, cap = len + 1);
        st = grown ? api.tokenizer_apply_chat_template_json(sv->tok, sv->chat_template, ctx, n, text = grown, cap, &len)
                   : RSR_ERR_OUT_OF_MEMORY;
    }
    free(ctx);
    if (st != RSR_OK) {
        snprintf(err, errlen, "the chat template: %s",
                 st == RSR_ERR_OUT_OF_MEMORY ? "out of memory" : api.tokenizer_errmsg(sv->tok));
        free(text);
        return NULL;
    }
    int format = p->reasoning_format >= 0 ? p->reasoning_format : sv->reasoning_format;
    /* tool_choice required or named: the calls' grammar holds the reply from its first token, so a
     * prompt that opens <think> (Qwen3.5's) is answered by calls, not thoughts */
    bool calls_first = p->tools && (p->tool_choice == SERVE_TOOLS_REQUIRED || p->tool_choice == SERVE_TOOLS_NAMED);
    p->reply = (serve_reply_shape){.reasoning = format == SERVE_REASONING_DEEPSEEK,
                                   .think_open = format == SERVE_REASONING_DEEPSEEK && !calls_first &&
                                                 rsr_ends_in_think(text, len),
                                   .tools = p->tools != NULL,
                                   .format = sv->tool_format,
                                   .offered = p->tools};
    return text;
}

/* The tokens of a prompt's text (with special tokens read as such and BOS added) or of its
 * conversation's rendering (text; its literal contents lit). NULL with a message on failure. */
static int32_t *text_ids(server *sv, const serve_params *p, const char *text, const literal_set *lit, int32_t *n,
                         char *err, size_t errlen) {
    const uint32_t flags = RSR_ENCODE_PARSE_SPECIAL | (p->chat ? 0 : RSR_ENCODE_ADD_SPECIAL);
    const char *src = text ? text : p->prompt;
    rsr_status st = RSR_ERR_OUT_OF_MEMORY;
    int32_t *ids = lit->n ? literal_ids(sv, src, lit, n) : encode_all(&api, sv->tok, src, -1, flags, n, &st);
    if (!ids) {
        snprintf(err, errlen, "%s", st == RSR_ERR_OUT_OF_MEMORY ? "out of memory" : api.tokenizer_errmsg(sv->tok));
        return NULL;
    }
    if (*n == 0) { /* an empty prompt starts from BOS */
        rsr_tokenizer_info ti;
        api.tokenizer_get_info(sv->tok, &ti);
        ids[(*n)++] = ti.bos_token_id >= 0 ? ti.bos_token_id : sv->info.bos_token_id >= 0 ? sv->info.bos_token_id : 0;
    }
    return ids;
}

int32_t *prompt_ids(server *sv, serve_params *p, int32_t *n, char *err, size_t errlen) {
    if (p->prompt_ids) { /* as given, each in the vocabulary */
        char where[32];
        snprintf(where, sizeof where, p->prompt_list ? "prompt[%d]" : "prompt", p->index);
        for (int32_t i = 0; i < p->n_prompt_ids; i++)
            if (p->prompt_ids[i] >= sv->info.vocab_size) {
                snprintf(err, errlen, "%s[%d] is %d, outside this model's vocabulary [0, %d)", where, i,
                         p->prompt_ids[i], sv->info.vocab_size);
                return NULL;
            }
        int32_t *ids = malloc(sizeof *ids * (size_t)p->n_prompt_ids);
        if (!ids) return snprintf(err, errlen, "out of memory"), NULL;
        memcpy(ids, p->prompt_ids, sizeof *ids * (size_t)p->n_prompt_ids);
        *n = p->n_prompt_ids;
        return ids;
    }
    /* no lock: rsr.h lets the tokenizer's calls run in every connection's thread at once, so one
     * client's long template work or prompt holds up no other client's text */
    char *text = NULL;
    literal_set lit = {0};
    if (p->chat && !(text = chat_text(sv, p, err, errlen, &lit))) return literal_free(&lit), NULL;
    int32_t *ids = text_ids(sv, p, text, &lit, n, err, errlen);
    literal_free(&lit), free(text);
    return ids;
}

/* Whether the tools offered are what puts a chat of n tokens over the context (the conversation
 * alone fits): then "of which ..." in note, and the error names 'tools', not 'messages'. */
bool tools_over(server *sv, serve_params *p, int32_t n, int32_t ctx, char *note, size_t cap) {
    if (!p->chat || !p->tools) return false;
    cJSON *whole = cJSON_Parse(p->context), *tools = p->tools;
    cJSON_DeleteItemFromObjectCaseSensitive(whole, "tools");
    char *without = whole ? cJSON_PrintUnformatted(whole) : NULL, *context = p->context, err[64];
    cJSON_Delete(whole);
    if (!without) return false;
    serve_reply_shape reply = p->reply;
    p->tools = NULL, p->context = without;
    int32_t alone = 0, *ids = prompt_ids(sv, p, &alone, err, sizeof err);
    p->tools = tools, p->context = context, p->reply = reply;
    free(ids), free(without);
    if (!ids || alone >= ctx) return false;
    snprintf(note, cap, ", %d of them the definitions of 'tools'", n - alone);
    return true;
}

/* Whose cached prefixes a request may reuse: a digest of the API key it authenticated with (when
 * the server takes keys) and its cache_salt; all zero when it has neither. */
void tenant_of(const server *sv, struct MHD_Connection *c, serve_params *p, unsigned char out[32]) {
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *key = serve_guard_needs_key(sv->guard, "/v1/completions") && auth ? auth : NULL;
    memset(out, 0, 32);
    if (!key && !p->cache_salt) return;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, "key", 4) &&
              (!key || EVP_DigestUpdate(ctx, key, strlen(key) + 1)) && EVP_DigestUpdate(ctx, "salt", 5) &&
              (!p->cache_salt || EVP_DigestUpdate(ctx, p->cache_salt, strlen(p->cache_salt) + 1)) &&
              EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
    if (!ok) p->cache_prompt = false; /* no digest: no reuse, rather than another tenant's */
}
