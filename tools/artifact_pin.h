/*
 * artifact_pin.h — a compiled model pinned by the SHA-256 of its whole file. A model.so is native
 * code: loading it runs its constructors, so a deployment that wants to be sure which file it
 * runs checks the digest before loading, and loads the very bytes it checked (the descriptor it
 * hashed, through /proc/self/fd, so that a file swapped at the path in between is not the one
 * loaded). Used by rsr-run (--digest, --expect-digest) and rsr-serve (--digest).
 */
#ifndef RSR_ARTIFACT_PIN_H
#define RSR_ARTIFACT_PIN_H

#include <stdbool.h>
#include <stddef.h>

/* 64 hexadecimal digits, optionally after "sha256:". */
bool artifact_digest_valid(const char *digest);
/* The SHA-256 of the file at path as 64 lowercase hex digits into hex[65]; 0, or -1 with a message. */
int artifact_digest(const char *path, char hex[65], char *err, size_t errlen);
/* Opens path, checks that its SHA-256 is `digest` and leaves it open: load_path gets
 * "/proc/self/fd/N" to load it from. 0, or -1 with a message naming both digests. */
int artifact_pin(const char *path, const char *digest, char *load_path, size_t load_len, char *err, size_t errlen);

#endif
