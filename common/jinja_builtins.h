/* jinja_builtins.h — the names every chat template sees before the request's own variables
 * (runtime/tokenizer/jinja_eval.c's globals): request data may not replace them, so the
 * renderer refuses a context key of these names and rsr-serve refuses it in chat_template_kwargs,
 * naming the key ({"namespace": 1} broke 21 of 38 published templates). */
#ifndef RSR_JINJA_BUILTINS_H
#define RSR_JINJA_BUILTINS_H
#include <stdbool.h>
#include <string.h>

static inline bool jinja_builtin_name(const char *s) {
    static const char *const names[] = {"true",      "false",     "True",  "False",           "none",
                                        "None",      "namespace", "range", "raise_exception", "strftime_now",
                                        "bos_token", "eos_token"};
    for (size_t i = 0; s && i < sizeof names / sizeof *names; i++)
        if (!strcmp(s, names[i])) return true;
    return false;
}
#endif
