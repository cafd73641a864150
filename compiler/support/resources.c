/*
 * resources.c — where rsrc finds what it ships with: the target specs, the runtime's headers and
 * the runtime archive every model links.
 *
 * In this order: the environment (RSRC_SPECS_DIR, RSRC_RUNTIME_INCLUDE, RSRC_RUNTIME_LIB); then
 * beside the executable as `cmake --install` lays it out (PREFIX/bin/rsrc finds
 * PREFIX/share/rsrc/specs, PREFIX/include/rsr and PREFIX/lib/rsrc/librsr_runtime.a, wherever
 * PREFIX was moved to); then the build tree rsrc was built in (rsrc_config.h).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rsrc.h"
#include "rsrc_config.h"

static const struct {
    const char *env, *installed, *built;
} where[] = {
    [RES_SPECS] = {"RSRC_SPECS_DIR", RSRC_INSTALL_SPECS, RSRC_SPECS_DIR},
    [RES_RUNTIME_INCLUDE] = {"RSRC_RUNTIME_INCLUDE", RSRC_INSTALL_INCLUDE, RSRC_RUNTIME_INCLUDE_DIR},
    [RES_RUNTIME_LIB] = {"RSRC_RUNTIME_LIB", RSRC_INSTALL_RUNTIME_LIB, RSRC_RUNTIME_LIB},
};

/* PREFIX: the directory above the one holding this executable, or NULL */
static const char *install_prefix(void) {
    static char prefix[PATH_MAX];
    static int done;
    if (!done) {
        done = 1;
        ssize_t n = readlink("/proc/self/exe", prefix, sizeof prefix - 1);
        prefix[n > 0 ? n : 0] = 0;
        for (int up = 0; up < 2; up++) { /* PREFIX/bin/rsrc → PREFIX */
            char *slash = strrchr(prefix, '/');
            if (!slash) {
                prefix[0] = 0;
                break;
            }
            *slash = 0;
        }
    }
    return prefix[0] ? prefix : NULL;
}

char *installed_path(char *relative) {
    const char *prefix = install_prefix();
    struct stat st;
    char *p = prefix ? xasprintf("%s/%s", prefix, relative) : NULL;
    free(relative);
    if (p && stat(p, &st) == 0) return p;
    free(p);
    return NULL;
}

const char *resource_path(enum resource r) {
    static char *found[sizeof where / sizeof *where];
    if (found[r]) return found[r];
    const char *env = getenv(where[r].env);
    if (env && *env) return found[r] = xstrdup(env);
    const char *prefix = install_prefix();
    struct stat st;
    if (prefix) {
        char *p = xasprintf("%s/%s", prefix, where[r].installed);
        if (stat(p, &st) == 0) return found[r] = p;
        free(p);
    }
    return found[r] = xstrdup(where[r].built);
}
