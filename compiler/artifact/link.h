/*
 * link.h — the outputs linked: a shared object with the runtime, or one relocatable object; where
 * the specs and the runtime are.
 */
#ifndef RSRC_LINK_H
#define RSRC_LINK_H

#include "artifact/emit.h"

/* ---- resources.c: the specs, runtime headers and runtime archive rsrc ships with: from the
 * environment, beside an installed rsrc, or in the build tree ---- */
enum resource { RES_SPECS, RES_RUNTIME_INCLUDE, RES_RUNTIME_LIB };
const char *resource_path(enum resource r);
char *installed_path(char *relative); /* PREFIX/relative if it exists (relative freed), else NULL */

/* ---- link.c: C + blob + runtime → shared object ---- */
/* objs: the kernels as objects (LLVM backend: one per part, NULL-terminated), or NULL when they
 * are in the C file. */
void link_shared_object(const char *c_path, const char *const *objs, const char *blob_path, const rsrc_target *t,
                        int opt_level, const char *out_path, const char *workdir);
/* The C compiler and runtime archive that link an artifact for t (a cross compiler and the runtime
 * scripts/cross.sh built, for another architecture); link_check refuses, naming what is missing. */
const char *link_runtime(const rsrc_target *t);
void link_use_runtime(const char *path); /* --runtime: this archive whatever the target */
void link_check(const rsrc_target *t);
int run_command(char **argv); /* waits; its diagnostics go straight to stderr */
/* .incbin of the blob (its first head bytes, 0: all), as hidden rsr_blob in .lrodata.rsr_blob;
 * with digest_note, the note that stamp_digest fills (a shared object's, not an object's) */
void write_blob_asm(const char *asm_path, const char *blob_path, uint64_t head, bool digest_note);
/* splice.c: the rest of the blob (after its first head bytes, which the link placed) copied into
 * the linked shared object `linked`, written to out_path; NULL, or why its layout does not allow
 * it (out_path then untouched). */
const char *splice_blob(const char *linked, const char *blob_path, uint64_t head, const char *out_path);
/* splice.c: the linked shared object at path checked as the loader's checks will (rsr_elf.h) and
 * the digest of the whole file written into its note */
void stamp_digest(const char *path);

/* ---- embed.c: C + blob + runtime → one relocatable object to link into an application ---- */
/* Exports only the model's entry points and the runtime's rsr_* API (weak: two models linked
 * together share one runtime); kernels, blob and runtime internals are local to the object. */
void link_relocatable_object(const char *c_path, const char *const *objs, const char *blob_path, const rsrc_target *t,
                             const char *out_path, const char *workdir);

#endif
