/* think.h — a reasoning model's thoughts, <think>...</think>: where rsr-serve splits them off as
 * reasoning_content and rsr-run --hide-thoughts leaves them out. */
#ifndef RSR_THINK_H
#define RSR_THINK_H
#include <stdbool.h>
#include <string.h>

#define RSR_THINK_OPEN "<think>"
#define RSR_THINK_CLOSE "</think>"

/* Whether a rendered prompt of len bytes ends inside <think> (past trailing spaces and newlines):
 * the template opened the thoughts, and the reply begins with them. */
static inline bool rsr_ends_in_think(const char *text, size_t len) {
    const size_t n = sizeof RSR_THINK_OPEN - 1;
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' ')) len--;
    return len >= n && !memcmp(text + len - n, RSR_THINK_OPEN, n);
}

#endif
