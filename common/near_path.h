/* near_path.h — the did-you-mean of a path that does not exist: the entry of its directory whose
 * name is fewest edits from its last component (at most a quarter of its length, at least one;
 * or that begins with it), written beside the directory as the user wrote it. rsrc and rsr-run
 * say it before any other hint. */
#ifndef RSR_NEAR_PATH_H
#define RSR_NEAR_PATH_H
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "edit_distance.h"

static inline bool near_path(const char *path, char *out, size_t cap) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--; /* "models/kjv-tin/" */
    const char *slash = NULL;
    for (size_t i = 0; i < len; i++)
        if (path[i] == '/') slash = path + i;
    const char *base = slash ? slash + 1 : path;
    size_t dir_len = slash ? (size_t)(slash - path) : 0, nb = len - (size_t)(base - path);
    if (!nb || nb > 64) return false;
    char dir[4096];
    if (dir_len >= sizeof dir) return false;
    snprintf(dir, sizeof dir, "%.*s", (int)(slash ? (dir_len ? dir_len : 1) : 1), slash ? path : ".");
    DIR *d = opendir(dir);
    if (!d) return false;
    int best = nb / 4 > 1 ? (int)(nb / 4) : 1;
    bool found = false;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' && base[0] != '.') continue;
        int k = edit_distance(base, nb, e->d_name);
        if (k > best && !(strncmp(e->d_name, base, nb) == 0 && strlen(e->d_name) - nb <= 16)) continue;
        if (k > best) k = best; /* a prefix counts as the worst allowed, so a closer name wins */
        if (found && k >= best) continue;
        best = k, found = true;
        snprintf(out, cap, "%.*s%s", (int)(slash ? base - path : 0), path, e->d_name);
    }
    closedir(d);
    return found;
}
#endif
