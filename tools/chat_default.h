/* chat_default.h — the chat template a tool uses when none is named, the same in rsr-run's --chat
 * and --info and in rsr-serve: the model's own (Jinja, from its checkpoint) when it has one, else
 * the built-in one that fits the tokenizer's vocabulary, except that BitNet b1.58 2B-4T, which
 * shares Llama-3's vocabulary, was tuned on its own "Role: text<|eot_id|>" turns. NULL when no
 * template fits. And --chat-template-file, the same in both tools. */
#ifndef RSR_CHAT_DEFAULT_H
#define RSR_CHAT_DEFAULT_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsr_dl.h"

static inline const char *chat_template_for(const rsr_api *a, const rsr_tokenizer *tok, const rsr_model_info *info) {
    rsr_tokenizer_info ti;
    if (a->tokenizer_get_info(tok, &ti) != RSR_OK || !ti.chat_template) return NULL;
    if (!strcmp(ti.chat_template, "llama3") && !strcmp(info->architecture, "BitNetForCausalLM")) return "bitnet";
    return ti.chat_template;
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
