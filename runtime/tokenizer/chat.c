/*
 * chat.c — chat templates: a conversation rendered as the text a chat model was trained on.
 *
 * Two kinds. The model's own: the Jinja text its checkpoint ships (a GGUF's
 * tokenizer.chat_template, tokenizer_config.json's chat_template), which rsrc compiles into the
 * artifact and jinja.c renders. And three built in, chosen by the vocabulary when a model ships
 * none: each is a family's Jinja template written out in C (the filters they use are `trim`,
 * Python's str.strip, and `capitalize`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jinja.h"
#include "tokenizer.h"

static bool is_python_space(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Appends s with leading and trailing white space removed (Jinja's trim). s is valid UTF-8. */
static bool append_trimmed(bytes *b, const char *s) {
    size_t len = strlen(s), start = 0, end = 0;
    bool seen = false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t at = i;
        i += (size_t)utf8_next(s + i, len - i, &cp);
        if (is_python_space(cp)) continue;
        if (!seen) start = at, seen = true;
        end = i;
    }
    return bytes_append(b, s + start, seen ? end - start : 0);
}

static bool append(bytes *b, const char *s) { return bytes_append(b, s, strlen(s)); }

typedef struct chat_tokens {
    const char *bos, *eos;
} chat_tokens;

/* Llama-3: <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>, BOS before the first. */
static bool render_llama3(bytes *b, const chat_tokens *k, const rsr_chat_message *m, int32_t n, int gen) {
    bool ok = true;
    for (int32_t i = 0; i < n && ok; i++) {
        if (i == 0) ok = append(b, k->bos);
        ok = ok && append(b, "<|start_header_id|>") && append(b, m[i].role) && append(b, "<|end_header_id|>\n\n") &&
             append_trimmed(b, m[i].content) && append(b, "<|eot_id|>");
    }
    return ok && (!gen || append(b, "<|start_header_id|>assistant<|end_header_id|>\n\n"));
}

/* BitNet b1.58 2B-4T: "Role: content<|eot_id|>" with the role capitalized, BOS before the first. */
static bool render_bitnet(bytes *b, const chat_tokens *k, const rsr_chat_message *m, int32_t n, int gen) {
    bool ok = true;
    for (int32_t i = 0; i < n && ok; i++) {
        if (i == 0) ok = append(b, k->bos);
        for (const char *r = m[i].role; *r && ok; r++) {
            char c = *r;
            if (r == m[i].role && c >= 'a' && c <= 'z')
                c = (char)(c - 32);
            else if (r != m[i].role && c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
            ok = bytes_append(b, &c, 1);
        }
        ok = ok && append(b, ": ") && append_trimmed(b, m[i].content) && append(b, "<|eot_id|>");
    }
    return ok && (!gen || append(b, "Assistant: "));
}

/* Llama-2: <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s><s>[INST] ... */
static rsr_status render_llama2(rsr_tokenizer *t, bytes *b, const chat_tokens *k, const rsr_chat_message *m,
                                int32_t n) {
    const char *system = NULL;
    if (n > 0 && strcmp(m[0].role, "system") == 0) system = m[0].content, m++, n--;
    bytes first = {0};
    bool ok = true;
    for (int32_t i = 0; i < n && ok; i++) {
        bool user = strcmp(m[i].role, "user") == 0;
        if (user != (i % 2 == 0) || (!user && strcmp(m[i].role, "assistant") != 0)) {
            free(first.p);
            return tok_error(t, RSR_ERR_INVALID_ARGUMENT,
                             "chat template 'llama2': message %d has role '%s'; after an optional system message the "
                             "roles must alternate user, assistant, user, ...",
                             i + (system != NULL), m[i].role);
        }
        const char *content = m[i].content;
        if (i == 0 && system) {
            ok = append(&first, "<<SYS>>\n") && append(&first, system) && append(&first, "\n<</SYS>>\n\n") &&
                 append(&first, m[i].content);
            content = first.p;
        }
        if (user)
            ok = ok && append(b, k->bos) && append(b, "[INST] ") && append_trimmed(b, content) && append(b, " [/INST]");
        else
            ok = ok && append(b, " ") && append_trimmed(b, content) && append(b, " ") && append(b, k->eos);
    }
    free(first.p);
    return ok ? RSR_OK : tok_error(t, RSR_ERR_OUT_OF_MEMORY, "out of memory rendering a chat");
}

rsr_status rsr_tokenizer_set_chat_template(rsr_tokenizer *t, const char *source, size_t len) {
    if (!t || !t->text) return RSR_ERR_INVALID_ARGUMENT;
    jinja_template *j = NULL;
    if (source) {
        char why[256];
        if (!(j = jinja_parse(source, len, why, sizeof why)))
            return tok_error(t, RSR_ERR_FORMAT, "chat template: %s", why);
    }
    jinja_free(t->jinja);
    t->jinja = j;
    t->chat_template = j ? "model" : t->builtin_template;
    return RSR_OK;
}

/* The text of a special token for the template's bos_token and eos_token, or NULL. */
static const char *token_text(const rsr_tokenizer *t, int32_t id, char buf[128]) {
    size_t n;
    const char *p = id >= 0 ? rsr_tokenizer_token_piece(t, id, &n) : NULL;
    if (!p || n >= 128) return NULL;
    memcpy(buf, p, n), buf[n] = 0;
    return buf;
}

/* The model's own template (rsr_tokenizer_set_chat_template) over clean messages, into b. */
static rsr_status render_model(rsr_tokenizer *t, bytes *b, const rsr_chat_message *m, int32_t n, int gen) {
    jinja_message *jm = malloc(((size_t)n + 1) * sizeof *jm);
    if (!jm) return tok_error(t, RSR_ERR_OUT_OF_MEMORY, "out of memory rendering a chat");
    for (int32_t i = 0; i < n; i++) jm[i] = (jinja_message){m[i].role, m[i].content};
    char bos[128], eos[128], why[256], *out = NULL;
    size_t out_len = 0;
    int r = jinja_render(t->jinja, jm, n, gen, token_text(t, t->bos_id, bos), token_text(t, t->eos_id, eos), &out,
                         &out_len, why, sizeof why);
    free(jm);
    if (r > 0)
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "chat template (the model's) refuses the conversation: %s", why);
    if (r < 0) return tok_error(t, RSR_ERR_FORMAT, "chat template (the model's): %s", why);
    bool ok = bytes_append(b, out, out_len);
    free(out);
    return ok ? RSR_OK : tok_error(t, RSR_ERR_OUT_OF_MEMORY, "out of memory rendering a chat");
}

static const char *const needs_llama3[] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                           "<|eot_id|>", NULL};
static const char *const needs_bitnet[] = {"<|begin_of_text|>", "<|eot_id|>", NULL};
static const char *const needs_llama2[] = {"<s>", "</s>", NULL};

/* The built-in templates by name, with the tokens each needs. */
static const struct {
    const char *name;
    const char *const *needs;
} builtins[] = {{"llama3", needs_llama3}, {"bitnet", needs_bitnet}, {"llama2", needs_llama2}};

static bool has_all(const rsr_tokenizer *t, const char *const *needs) {
    for (; *needs; needs++)
        if (rsr_tokenizer_token_id(t, *needs) < 0) return false;
    return true;
}

/* What a model without a usable template can do instead: the built-in templates whose tokens its
 * vocabulary has, or a template file, into buf. */
static const char *alternatives(const rsr_tokenizer *t, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
        if (has_all(t, builtins[i].needs))
            n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", n ? ", " : "", builtins[i].name);
    if (!n)
        snprintf(buf, cap,
                 "no built-in template fits this vocabulary (llama3, bitnet and llama2 need tokens it lacks): give a "
                 "Jinja template (--chat-template-file FILE, or chat_template in the checkpoint's "
                 "tokenizer_config.json)");
    else if (n < cap) {
        char names[96];
        snprintf(names, sizeof names, "%s", buf);
        snprintf(buf, cap, "name a built-in one that fits this vocabulary (%s) or give a Jinja template file", names);
    }
    return buf;
}

/* The template a name stands for: *needs the tokens of the built-in one, NULL for the model's own. */
static rsr_status resolve(rsr_tokenizer *t, const char **name, const char *const **needs) {
    char alt[320];
    if (!*name) *name = t->chat_template;
    if (!*name)
        return tok_error(t, RSR_ERR_NOT_FOUND, "chat: the model has no chat template of its own; %s",
                         alternatives(t, alt, sizeof alt));
    if (strcmp(*name, "model") == 0 && !t->jinja)
        return tok_error(t, RSR_ERR_NOT_FOUND,
                         "chat: the model has no chat template of its own (its checkpoint shipped none); %s",
                         alternatives(t, alt, sizeof alt));
    *needs = NULL;
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
        if (strcmp(*name, builtins[i].name) == 0) *needs = builtins[i].needs;
    if (!*needs && strcmp(*name, "model") != 0)
        return tok_error(t, RSR_ERR_NOT_FOUND, "chat: unknown template '%s' (model, llama3, bitnet, llama2)", *name);
    for (const char *const *k = *needs; k && *k; k++)
        if (rsr_tokenizer_token_id(t, *k) < 0)
            return tok_error(t, RSR_ERR_NOT_FOUND,
                             "chat: template '%s' needs the token '%s', which this vocabulary lacks", *name, *k);
    return RSR_OK;
}

rsr_status rsr_tokenizer_apply_chat_template(rsr_tokenizer *t, const char *name, const rsr_chat_message *messages,
                                             int32_t n, int add_generation_prompt, char *text, size_t capacity,
                                             size_t *len) {
    if (len) *len = 0;
    if (!t || !t->text) return RSR_ERR_INVALID_ARGUMENT;
    if (!len || n < 0 || (n > 0 && !messages) || (capacity && !text))
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "chat: messages, text and len must not be NULL, n >= 0");
    for (int32_t i = 0; i < n; i++)
        if (!messages[i].role || !messages[i].content)
            return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "chat: message %d has a NULL role or content", i);
    const char *const *needs;
    rsr_status st = resolve(t, &name, &needs);
    if (st != RSR_OK) return st;
    chat_tokens k = {needs ? needs[0] : NULL, needs == needs_llama2 ? "</s>" : NULL};

    /* Contents are text people typed or a model sampled: invalid UTF-8 is read as U+FFFD. */
    rsr_chat_message *clean = calloc((size_t)n + 1, sizeof *clean);
    bool ok = clean != NULL;
    for (int32_t i = 0; i < n && ok; i++) {
        bytes c = {0};
        ok = utf8_sanitize(&c, messages[i].content, strlen(messages[i].content));
        clean[i] = (rsr_chat_message){messages[i].role, c.p};
    }
    bytes out = {0}, *b = &out; /* the call's own: renderings run in several threads at once (rsr.h) */
    ok = ok && bytes_append(b, "", 0);
    if (ok && !needs)
        st = render_model(t, b, clean, n, add_generation_prompt);
    else if (ok && needs == needs_llama3)
        ok = render_llama3(b, &k, clean, n, add_generation_prompt);
    else if (ok && needs == needs_bitnet)
        ok = render_bitnet(b, &k, clean, n, add_generation_prompt);
    else if (ok)
        st = render_llama2(t, b, &k, clean, n);
    for (int32_t i = 0; clean && i < n; i++) free((char *)clean[i].content);
    free(clean);
    if (ok && st == RSR_OK) st = tok_copy_out(t, b->p, b->len, text, capacity, len);
    free(out.p);
    return !ok ? tok_error(t, RSR_ERR_OUT_OF_MEMORY, "out of memory rendering a chat") : st;
}

/* A built-in template over a JSON context: its messages' roles and text contents (a list of text
 * parts joined by newlines; null: empty); tools and tool calls are the model's own template's. */
static rsr_status builtin_from_context(rsr_tokenizer *t, const char *name, const cJSON *ctx, char *text,
                                       size_t capacity, size_t *len) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(ctx, "messages"), *m;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(ctx, "tools");
    if (cJSON_GetArraySize(tools) > 0)
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT,
                         "chat template '%s' (built in) cannot show tools: the model's own template can", name);
    if (!cJSON_IsArray(msgs)) return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "chat: the context has no messages list");
    int n = cJSON_GetArraySize(msgs), i = 0;
    rsr_chat_message *mm = calloc((size_t)n + 1, sizeof *mm);
    char **owned = calloc((size_t)n + 1, sizeof *owned);
    rsr_status st = mm && owned ? RSR_OK : tok_error(t, RSR_ERR_OUT_OF_MEMORY, "out of memory rendering a chat");
    cJSON_ArrayForEach(m, msgs) {
        if (st != RSR_OK) break;
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content"), *part;
        const cJSON *parts = cJSON_IsArray(c) ? c : NULL;
        if (!role) {
            st = tok_error(t, RSR_ERR_INVALID_ARGUMENT, "chat: message %d has no role", i);
            break;
        }
        bytes b = {0};
        bool ok = bytes_append(&b, "", 0);
        if (cJSON_IsString(c)) ok = append(&b, c->valuestring);
        cJSON_ArrayForEach(part, parts) {
            const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "text"));
            if (s && ok) ok = (b.len == 0 || bytes_append(&b, "\n", 1)) && append(&b, s);
        }
        if (!ok) st = tok_error(t, RSR_ERR_OUT_OF_MEMORY, "out of memory rendering a chat");
        owned[i] = b.p, mm[i] = (rsr_chat_message){role, b.p ? b.p : ""}, i++;
    }
    const cJSON *gen = cJSON_GetObjectItemCaseSensitive(ctx, "add_generation_prompt");
    if (st == RSR_OK)
        st = rsr_tokenizer_apply_chat_template(t, name, mm, n, gen ? cJSON_IsTrue(gen) : 1, text, capacity, len);
    for (int k = 0; owned && k < n; k++) free(owned[k]);
    free(owned), free(mm);
    return st;
}

rsr_status rsr_tokenizer_apply_chat_template_json(rsr_tokenizer *t, const char *name, const char *context,
                                                  size_t context_len, char *text, size_t capacity, size_t *len) {
    if (len) *len = 0;
    if (!t || !t->text) return RSR_ERR_INVALID_ARGUMENT;
    if (!len || !context || (capacity && !text))
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "chat: context, text and len must not be NULL");
    const char *const *needs;
    rsr_status st = resolve(t, &name, &needs);
    if (st != RSR_OK) return st;
    cJSON *ctx = cJSON_ParseWithLength(context, context_len);
    if (!cJSON_IsObject(ctx)) {
        cJSON_Delete(ctx);
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "chat: the context is not a JSON object");
    }
    if (needs) {
        st = builtin_from_context(t, name, ctx, text, capacity, len);
        cJSON_Delete(ctx);
        return st;
    }
    char bos[128], eos[128], why[256], *out = NULL;
    size_t out_len = 0;
    int r = jinja_render_context(t->jinja, ctx, token_text(t, t->bos_id, bos), token_text(t, t->eos_id, eos), &out,
                                 &out_len, why, sizeof why);
    cJSON_Delete(ctx);
    if (r > 0)
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "chat template (the model's) refuses the conversation: %s", why);
    if (r < 0) return tok_error(t, RSR_ERR_FORMAT, "chat template (the model's): %s", why);
    st = tok_copy_out(t, out, out_len, text, capacity, len);
    free(out);
    return st;
}
