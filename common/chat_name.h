/* chat_name.h — the one name of the chat template a model's chats use when none is named, as
 * rsrc -v, rsr-run --info and --chat, and rsr-serve say it: "model" for the checkpoint's own Jinja
 * template, else the built-in one the tokenizer's vocabulary fits, except that BitNet b1.58
 * 2B-4T, which shares Llama-3's vocabulary, was tuned on its own "Role: text<|eot_id|>" turns. */
#ifndef RSR_CHAT_NAME_H
#define RSR_CHAT_NAME_H
#include <string.h>

/* tokenizer_template: rsr_tokenizer_info.chat_template (NULL: none fits); architecture: the
 * checkpoint's class name. NULL when no template fits. */
static inline const char *rsr_chat_template_name(const char *tokenizer_template, const char *architecture) {
    if (!tokenizer_template) return NULL;
    if (!strcmp(tokenizer_template, "llama3") && architecture && !strcmp(architecture, "BitNetForCausalLM"))
        return "bitnet";
    return tokenizer_template;
}

/* The name as the tools print it. */
static inline const char *rsr_chat_template_described(const char *name) {
    return !name ? "none" : strcmp(name, "model") ? name : "model (the checkpoint's own Jinja template)";
}
#endif
