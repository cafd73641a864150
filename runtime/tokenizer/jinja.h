/* jinja.h — a small Jinja interpreter for the chat templates that models ship (the chat_template of a
 * Hugging Face tokenizer_config.json, a GGUF's tokenizer.chat_template). It renders them as
 * @huggingface/jinja 0.5.11 does (trim_blocks and lstrip_blocks on), byte for byte; see jinja.c for
 * the subset of the language it covers. */
#ifndef RSR_JINJA_H
#define RSR_JINJA_H

#include <stddef.h>

typedef struct jinja_template jinja_template;
/* One chat message; a NULL role or content is none. */
typedef struct jinja_message {
    const char *role, *content;
} jinja_message;

/* Parses a template. NULL on a syntax error or a construct this subset lacks, with a message
 * naming it and its line (e.g. "line 12: the 'include' tag is not supported") in err. */
jinja_template *jinja_parse(const char *src, size_t len, char *err, size_t errlen);
void jinja_free(jinja_template *t);

/* Renders with the variables messages (a list of {role, content} dicts), add_generation_prompt,
 * bos_token and eos_token (strings; NULL: undefined); every other name is undefined.
 * Returns 0 with malloc'd text (NUL-terminated) in *out and its length in *out_len;
 * 1 when the template called raise_exception (its message in err);
 * -1 on an evaluation error (a message naming the line and what failed in err). */
int jinja_render(const jinja_template *t, const jinja_message *messages, int n, int add_generation_prompt,
                 const char *bos_token, const char *eos_token, char **out, size_t *out_len, char *err, size_t errlen);

/* Renders with every key of context (a JSON object) as a variable: messages as OpenAI's chat
 * requests give them (tool_calls, tool_call_id, ...), tools, add_generation_prompt and the
 * template's own keywords (enable_thinking, reasoning_effort). bos_token and eos_token as above,
 * unless the context names them. Returns as jinja_render. */
struct cJSON;
#define JINJA_MAX_JSON_DEPTH 128 /* the context's nesting */
int jinja_render_context(const jinja_template *t, const struct cJSON *context, const char *bos_token,
                         const char *eos_token, char **out, size_t *out_len, char *err, size_t errlen);

#endif
