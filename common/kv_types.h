/* kv_types.h — the names of the KV cache's element types (rsr_kv_type), as the tools take them
 * (--kv) and print them. */
#ifndef RSR_TOOLS_KV_TYPES_H
#define RSR_TOOLS_KV_TYPES_H

#include <string.h>

#include "rsr.h"

static const char *const kv_type_names[] = {"f32", "bf16", "f16", "q8"};

/* The rsr_kv_type named s, or -1. */
static inline int kv_type_parse(const char *s) {
    for (int i = 0; i < (int)(sizeof kv_type_names / sizeof *kv_type_names); i++)
        if (!strcmp(s, kv_type_names[i])) return i;
    return -1;
}

static inline const char *kv_type_name(int t) {
    return t >= 0 && t < (int)(sizeof kv_type_names / sizeof *kv_type_names) ? kv_type_names[t] : "?";
}

#endif
