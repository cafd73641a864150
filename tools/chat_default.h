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

/* --chat-template-file PATH: a Jinja template for "model" to name. false with the reason in err. */
static inline bool chat_template_file(const rsr_api *a, rsr_tokenizer *tok, const char *path, char *err, size_t n) {
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    if (!f) return snprintf(err, n, "--chat-template-file %s: cannot read it", path), false;
    do {
        if (len == cap) text = realloc(text, cap = cap ? 2 * cap : 65536);
        got = text ? fread(text + len, 1, cap - len, f) : 0;
        len += got;
    } while (got > 0 && len < (64u << 20));
    bool ok = text && !ferror(f) && a->tokenizer_set_chat_template(tok, text, len) == RSR_OK;
    if (!ok) snprintf(err, n, "--chat-template-file %s: %s", path, text ? a->tokenizer_errmsg(tok) : "out of memory");
    fclose(f);
    free(text);
    return ok;
}
#endif
