/*
 * hub.h — what rsrc reads from the Hugging Face Hub (compiler/frontend/hub_parse.c), apart from the network
 * so that fuzz_hub can call it: the checks a name from the Hub or the user passes before it
 * becomes a path in the cache, a response's header lines, a revision's listing and the files
 * chosen from it. A Hub, or a mirror posing as one, is hostile input like any file.
 */
#ifndef RSRC_HUB_H
#define RSRC_HUB_H

#include <stdbool.h>
#include <stddef.h>

#include "rsrc.h"

#define HUB_ETAG_MAX 128           /* the Hub's are 40 (git) or 64 (LFS sha256) characters */
#define HUB_NAME_MAX 1024          /* a file's path in the repository */
#define HUB_LISTING_MAX (16 << 20) /* the API's answer about a revision */

/* The names, as huggingface_hub accepts them (true: safe to join to a path in the cache). */
bool hub_repo_ok(const char *repo);    /* ORG/NAME: letters, digits, -_. ; no "--" or ".." */
bool hub_commit_ok(const char *sha);   /* 40 lowercase hexadecimal digits */
bool hub_etag_ok(const char *etag);    /* one printable component: no / or \, not . or .. */
bool hub_file_ok(const char *name);    /* relative; no empty, . or .. component, \ or control */
bool hub_revision_ok(const char *rev); /* a branch, tag or commit: as a file name, '/' allowed */
/* s for a message: bytes outside printable ASCII as \xNN, cut after 200 characters */
const char *hub_shown(rsrc_arena *a, const char *s);

/* A response's headers as libcurl hands them over, one line a call; a status line starts anew
 * (a redirect's headers are not the final answer's). */
typedef struct hub_head {
    int status; /* of the status line; 0: none yet */
    /* X-Linked-Etag, else ETag, without W/ and quotes; a longer one is cut to HUB_ETAG_MAX + 1
     * characters, which no check passes */
    char etag[HUB_ETAG_MAX + 2];
    long long size;  /* X-Linked-Size, else Content-Length; -1: not said, or not a count */
    long long range; /* Content-Range's first byte; -1: none */
    bool linked_etag, linked_size;
} hub_head;
void hub_head_start(hub_head *h);
void hub_head_line(hub_head *h, const char *line, size_t n);

/* GET /api/models/REPO/revision/REV: the commit (checked) and every file's name (not checked). */
typedef struct hub_listing {
    const char *commit;
    const char **files;
    int n;
} hub_listing;
void hub_read_listing(rsrc_arena *a, const char *spec, const char *rev, const char *json, size_t n, hub_listing *out);
/* The files to fetch (NULL-terminated, each passing hub_file_ok): only, else a checkpoint's, else
 * the one GGUF; fatal naming the choices when there is none or several. */
char **hub_choose(rsrc_arena *a, const char *spec, const hub_listing *l, const char *only);
bool hub_is_gguf(const char *name);

#endif
