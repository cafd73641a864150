/* read_file.h — a whole file into a NUL-terminated buffer (NULL when it cannot be opened), for
 * the tokenizer tests. */
#ifndef RSR_TESTS_READ_FILE_H
#define RSR_TESTS_READ_FILE_H

#include <stdio.h>
#include <stdlib.h>

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap) buf = realloc(buf, (cap *= 2) + 1);
    fclose(f);
    if (buf) buf[n] = 0;
    *len = n;
    return buf;
}

#endif
