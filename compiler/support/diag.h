/*
 * diag.h — what every stage of the compiler uses: errors that name the file, tensor and value,
 * arenas, temporary files removed on exit, allocation, sizes, the clock.
 */
#ifndef RSRC_DIAG_H
#define RSRC_DIAG_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdnoreturn.h>

#include "rsr_artifact.h"

struct blob_writer;
struct artifact_desc;

#define RSRC_VERSION "0.1.0"

/* ---- diag.c: errors that name the file, tensor and value; temporary files removed on exit ---- */
noreturn void rsrc_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rsrc_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rsrc_note(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3))); /* -v */
/* fn runs before every message (progress.c erases its status line with it); NULL: nothing */
void diag_before_message(void (*fn)(void));
extern int rsrc_verbosity;
void register_temp(const char *path); /* removed by rsrc_fatal() and at exit unless released */
/* qsort and bsearch order of C strings held by pointer */
int rsrc_cmp_names(const void *a, const void *b);
/* Sorts names[0..n) (rsrc_cmp_names); one of them that appears twice, or NULL */
const char *rsrc_sorted_repeat(char **names, size_t n);

/* Arenas: what a loader holds while it may still fail. A loader opens one, allocates its
 * temporaries from it and gives it what else it must release (rsrc_arena_own: a cJSON tree, the result
 * being built); one rsrc_arena_close releases all of it, newest first. rsrc_fatal() closes every open arena,
 * innermost first, so no loader registers a cleanup of its own. A result handed to the caller is
 * taken back with rsrc_arena_disown before the close. Arenas nest and close in reverse order. With
 * rsrc_fatal_jump set, rsrc_fatal() longjmps there instead of exiting (fuzzers); rsrc_fatal_quiet silences it. */
typedef struct rsrc_arena rsrc_arena;
rsrc_arena *rsrc_arena_open(void);
void *rsrc_arena_alloc(rsrc_arena *a, size_t n);
char *rsrc_arena_printf(rsrc_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rsrc_arena_own(rsrc_arena *a, void (*release)(void *), void *p); /* NULL p: nothing */
void *rsrc_arena_disown(rsrc_arena *a, void *p);                      /* returns p, no longer released */
void rsrc_arena_close(rsrc_arena *a);
extern jmp_buf *rsrc_fatal_jump;
extern bool rsrc_fatal_quiet;
void release_temp(const char *path);
/* An output is written under a new temporary name next to it (mode 0600, registered as a
 * temporary; *fd open on it, or closed when fd is NULL) and renamed into place when finished, with
 * `mode` less the umask: a failure or a signal never leaves half of it under the final name. */
char *output_temp(const char *final, int *fd);
void output_commit(char *tmp, const char *final, mode_t mode); /* frees tmp */
uint64_t parse_size(const char *what, const char *s);          /* 512M, 4G, ... */
void limit_memory(uint64_t bytes);                             /* --max-memory */
void unlimit_memory(void);                                     /* in a child, before exec */
const char *format_size(uint64_t bytes, char buf[32]);
#include "alloc.h"         /* common/: xmalloc, xcalloc, xrealloc, xstrdup, xasprintf (failure: diag.c) */
#include "edit_distance.h" /* tools/: the did-you-mean of an unknown option or target */
double rsrc_now(void);

/* The environment variable name when set and not empty, else fallback. */
const char *rsrc_env_or(const char *name, const char *fallback);

#endif
