/* chat_default.h — the chat template a tool uses when none is named, the same in rsr-run's --chat
 * and --info and in rsr-serve: the one that fits the tokenizer's vocabulary, except that BitNet
 * b1.58 2B-4T, which shares Llama-3's vocabulary, was tuned on its own "Role: text<|eot_id|>"
 * turns. NULL when no template fits. */
#ifndef RSR_CHAT_DEFAULT_H
#define RSR_CHAT_DEFAULT_H
#include <string.h>

#include "rsr_dl.h"

static inline const char *chat_template_for(const rsr_api *a, const rsr_tokenizer *tok, const rsr_model_info *info) {
    rsr_tokenizer_info ti;
    if (a->tokenizer_get_info(tok, &ti) != RSR_OK || !ti.chat_template) return NULL;
    if (!strcmp(ti.chat_template, "llama3") && !strcmp(info->architecture, "BitNetForCausalLM")) return "bitnet";
    return ti.chat_template;
}
#endif
