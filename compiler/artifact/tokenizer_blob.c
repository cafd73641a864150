/*
 * tokenizer_blob.c — the model's tokenizer travels inside the artifact, so that the runtime can
 * turn text into ids with nothing but model.so. It is tokenizer.json when the checkpoint has
 * one, else SentencePiece's tokenizer.model (the ModelProto, as 1bitLLM and other Llama-2-family
 * checkpoints ship it); the file's bytes are embedded as they are and the runtime tells the two
 * apart (rsr_tokenizer_create). It is checked here with the runtime's own tokenizer: a file the
 * runtime could not read fails the compile, not the run.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rsr.h"
#include "chat_name.h"
#include "rsrc.h"

/* The file's bytes, or NULL when it does not exist. */
static char *read_whole(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno != ENOENT) rsrc_fatal("%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    char *data = NULL;
    size_t cap = 0, n;
    *len = 0;
    do {
        if (*len == cap) data = xrealloc(data, cap = cap ? 2 * cap : 1 << 20);
        n = fread(data + *len, 1, cap - *len, f);
        *len += n;
    } while (n > 0);
    if (ferror(f)) rsrc_fatal("%s: cannot read: %s", path, strerror(errno));
    fclose(f);
    return data;
}

uint64_t blob_tokenizer(blob_writer *b, const rsrc_model *m, uint64_t *size, char **what, rsr_tokenizer **tok) {
    *size = 0;
    *what = NULL;
    *tok = NULL;
    const char *name = "tokenizer.json";
    char *path = xasprintf("%s/%s", m->ar->dir, name);
    size_t len;
    char *data = NULL;
    if (m->tokenizer) { /* a GGUF's own, as tokenizer.json text or a tokenizer.model (gguf_model.c) */
        free(path);
        path = xasprintf("%s (tokenizer.ggml.*)", m->ar->path);
        len = m->tokenizer_len, data = xmalloc(len + 1);
        memcpy(data, m->tokenizer, len), data[len] = 0;
    } else {
        data = read_whole(path, &len);
    }
    if (!data) {
        free(path);
        name = "tokenizer.model";
        path = xasprintf("%s/%s", m->ar->dir, name);
        data = read_whole(path, &len);
        if (!data) {
            rsrc_warn("%s: no tokenizer (tokenizer.json or tokenizer.model beside the weights, or a GGUF's "
                      "tokenizer.ggml.*): the model will take token ids only (rsr-run --tokens); put the "
                      "checkpoint's tokenizer there and compile again for text",
                      m->ar->dir);
            free(path);
            return RSR_NO_TENSOR;
        }
        /* The runtime reads JSON when the text begins with '{' and a ModelProto when it begins
         * with its pieces (field 1), as every SentencePiece writer puts them first. */
        size_t i = 0;
        while (i < len && strchr(" \t\r\n", data[i]) && data[i]) i++;
        if (len == 0 || data[0] != 0x0A || (i < len && data[i] == '{'))
            rsrc_fatal("%s: not a SentencePiece model: it does not begin with a piece (field 1, byte 0x0a)%s", path,
                       len ? "" : "; the file is empty");
    }

    rsr_tokenizer *t;
    if (rsr_tokenizer_create(data, len, &t) != RSR_OK) {
        const char *msg = rsr_tokenizer_errmsg(t);
        size_t n = strlen(name);
        if (strncmp(msg, name, n) == 0 && strncmp(msg + n, ": ", 2) == 0) msg += n + 2;
        rsrc_fatal("%s: %s", path, msg);
    }
    rsr_tokenizer_info info;
    rsr_tokenizer_get_info(t, &info);
    if (info.vocab_size > m->vocab)
        rsrc_fatal("%s: the tokenizer has token ids up to %d, but the model's embedding has only %d rows", path,
                   info.vocab_size - 1, m->vocab);
    rsrc_note(1, "tokenizer: %s: %s, %d tokens (%d added)", path, info.kind, info.vocab_size, info.num_added_tokens);
    if (strcmp(name, "tokenizer.json") == 0 && !m->tokenizer) {
        char *spm = xasprintf("%s/tokenizer.model", m->ar->dir);
        FILE *g = fopen(spm, "rb");
        if (g) {
            fclose(g);
            rsrc_note(1, "tokenizer: %s is there too; tokenizer.json is the one used", spm);
        }
        free(spm);
    }
    *what = xasprintf("%s (%s, %d tokens)", m->tokenizer ? "tokenizer.ggml.*" : name, info.kind, info.vocab_size);
    *tok = t;

    uint64_t at = blob_align(b, 64);
    blob_write(b, data, len);
    *size = len;
    free(data);
    free(path);
    return at;
}

/* ---- the model's own chat template ---- */

/* What chats will use, named as rsr-run --info names it; from: where the model's own came from
 * (freed here), or NULL. */
static void chat_template_note(const rsrc_model *m, rsr_tokenizer *tok, char *from) {
    rsr_tokenizer_info info;
    if (tok && rsr_tokenizer_get_info(tok, &info) == RSR_OK) {
        const char *name = rsr_chat_template_name(info.chat_template, m->architecture);
        rsrc_note(1, "chat template: %s%s%s%s", rsr_chat_template_described(name), from ? " (" : "", from ? from : "",
                  from ? ")" : "");
    }
    free(from);
}

/* tokenizer_config.json's chat_template: a string, or a list of {name, template} whose "default"
 * entry is the chat one. NULL when absent; *from says where it was found. */
static char *config_template(const char *dir, char **from) {
    char *path = xasprintf("%s/tokenizer_config.json", dir);
    size_t len;
    char *text = read_whole(path, &len), *found = NULL;
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsString(t)) found = xstrdup(t->valuestring);
    for (const cJSON *e = cJSON_IsArray(t) ? t->child : NULL; e && !found; e = e->next) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name"),
                    *body = cJSON_GetObjectItemCaseSensitive(e, "template");
        if (cJSON_IsString(name) && !strcmp(name->valuestring, "default") && cJSON_IsString(body))
            found = xstrdup(body->valuestring);
    }
    if (text && !root) rsrc_warn("%s: not valid JSON; its chat_template is not read", path);
    cJSON_Delete(root);
    free(text);
    *from = found ? xasprintf("%s (chat_template)", path) : NULL;
    free(path);
    return found;
}

uint64_t blob_chat_template(blob_writer *b, const rsrc_model *m, rsr_tokenizer *tok, uint64_t *size) {
    *size = 0;
    char *from = NULL, *src = NULL;
    size_t len = 0;
    if (m->chat_template) {
        src = xstrdup(m->chat_template), from = xasprintf("%s (tokenizer.chat_template)", m->ar->path);
    } else if (!m->tokenizer) { /* a checkpoint directory: chat_template.jinja, else tokenizer_config.json */
        from = xasprintf("%s/chat_template.jinja", m->ar->dir);
        if (!(src = read_whole(from, &len))) free(from), src = config_template(m->ar->dir, &from);
    }
    if (!src) {
        chat_template_note(m, tok, NULL);
        return RSR_NO_TENSOR;
    }
    len = strlen(src);
    uint64_t at = RSR_NO_TENSOR;
    if (!tok) {
        rsrc_warn("%s: a chat template but no tokenizer: the template is not kept", from);
    } else if (rsr_tokenizer_set_chat_template(tok, src, len) != RSR_OK) {
        rsr_tokenizer_info info;
        rsr_tokenizer_get_info(tok, &info);
        const char *name = rsr_chat_template_name(info.chat_template, m->architecture);
        rsrc_warn("%s: %s; chats will use %s", from, rsr_tokenizer_errmsg(tok),
                  name ? name : "no template (the model answers raw prompts only)");
        chat_template_note(m, tok, NULL);
    } else {
        /* one render, so that a template that fails on every conversation is found now */
        static const rsr_chat_message hello[] = {{"user", "Hello"}};
        char out[1];
        size_t n;
        rsr_status st = rsr_tokenizer_apply_chat_template(tok, "model", hello, 1, 1, out, 0, &n);
        if (st == RSR_ERR_FORMAT) {
            rsrc_warn("%s: %s; it is not kept", from, rsr_tokenizer_errmsg(tok));
            chat_template_note(m, tok, NULL);
        } else {
            chat_template_note(m, tok, xasprintf("%s, %zu bytes", from, len));
            at = blob_align(b, 64);
            blob_write(b, src, len);
            *size = len;
        }
    }
    free(src);
    free(from);
    return at;
}
