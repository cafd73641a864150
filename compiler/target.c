/*
 * target.c — the targets the C backend knows. A target is data: a name, the flags its code is
 * compiled with and the resource limits the planner respects. (YAML target specs in specs/
 * extend this table; see docs/design.md.)
 */
#include <string.h>

#include "rsrc.h"

static const target targets[] = {
    {"generic", "portable C for any x86-64 (or other) CPU the C compiler targets", "-O2", 64 << 10},
    {"host", "this machine: C compiled with -march=native", "-O2 -march=native", 64 << 10},
};

const target *target_lookup(const char *name) {
    if (strcmp(name, "native") == 0) name = "host";
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++)
        if (strcmp(targets[i].name, name) == 0) return &targets[i];
    return NULL;
}

void target_list(FILE *out) {
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++)
        fprintf(out, "%-10s %s\n", targets[i].name, targets[i].description);
}
