/* chat_default.h — the chat template a tool uses when none is named, the same in rsr-run's --chat
 * and --info, in rsr-serve and in rsrc -v (common/chat_name.h says which). NULL when no template
 * fits. And --chat-template-file, the same in both tools. */
#ifndef RSR_CHAT_DEFAULT_H
#define RSR_CHAT_DEFAULT_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_name.h"
#include "rsr_dl.h"

static inline const char *chat_template_for(const rsr_api *a, const rsr_tokenizer *tok, const rsr_model_info *info) {
    rsr_tokenizer_info ti;
    if (a->tokenizer_get_info(tok, &ti) != RSR_OK) return NULL;
    return rsr_chat_template_name(ti.chat_template, info->architecture);
}

/* --chat-template-file PATH: a Jinja template for "model" to name. false with the reason in err. The
 * template is text: a NUL byte in it would end the prompt it renders wherever that is read as a C
 * string, so it is refused, and so is a file longer than is read of it. */
static inline bool chat_template_file(const rsr_api *a, rsr_tokenizer *tok, const char *path, char *err, size_t n) {
    const size_t limit = 64u << 20;
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, n, "--chat-template-file %s: cannot read it", path), false;
    char *text = NULL;
    size_t len = 0, cap = 0, got = 1;
    while (got > 0 && len <= limit) {
        if (len == cap) {
            const size_t more = cap ? (2 * cap < limit + 1 ? 2 * cap : limit + 1) : 65536;
            char *grown = realloc(text, more);
            if (!grown) break;
            text = grown, cap = more;
        }
        got = fread(text + len, 1, cap - len, f);
        len += got;
    }
    const char *nul = text ? memchr(text, 0, len) : NULL;
    bool ok = false;
    if (got > 0 && len <= limit)
        snprintf(err, n, "--chat-template-file %s: out of memory", path);
    else if (ferror(f))
        snprintf(err, n, "--chat-template-file %s: cannot read it", path);
    else if (len > limit)
        snprintf(err, n, "--chat-template-file %s: larger than %zu MiB: not a chat template", path, limit >> 20);
    else if (nul)
        snprintf(err, n, "--chat-template-file %s: a NUL byte at offset %zu: a chat template is text", path,
                 (size_t)(nul - text));
    else if (!(ok = a->tokenizer_set_chat_template(tok, text ? text : "", len) == RSR_OK))
        snprintf(err, n, "--chat-template-file %s: %s", path, a->tokenizer_errmsg(tok));
    fclose(f);
    free(text);
    return ok;
}
#endif
