/*
 * embed.c — a compiled model as one relocatable object (rsrc --emit=obj) that an application
 * links like any other: `cc app.c tiny.o small.o -fopenmp -lpcre2-8 -lcjson -lutf8proc -lm`.
 *
 * The object holds the model's kernels, its constant data, its descriptor and the runtime, and
 * exports only two kinds of symbol:
 *   - the model's entry points (NAME_model_open, NAME_artifact; rsr_artifact_main for a model
 *     compiled without --name), strong: two models under one name fail to link, loudly;
 *   - the runtime's rsr_* API, weak: every object carries the runtime, the linker keeps the
 *     first copy and all models run on it (the descriptor's ABI version guards against objects
 *     from another rsrc).
 * Everything else becomes local to the object: kernels (rsr_kernel_N) and the blob (rsr_blob)
 * are hidden symbols that objcopy --localize-hidden turns local, and the runtime's internal
 * helpers (utf8_next, attn_dot, ...) are made local too, so that neither two models nor the
 * application's own functions can collide with them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rsrc.h"
#include "rsrc_config.h"

/* what: the tool, as the messages name it; env: the variable that chooses it. */
static void run_or_die(char **argv, const char *what, const char *env, const char *out_path) {
    int rc = run_command(argv);
    if (rc == 127) rsrc_fatal("%s '%s' cannot be run: set %s", what, argv[0], env);
    if (rc != 0) rsrc_fatal("%s failed (exit %d) building %s", what, rc, out_path);
}

void link_relocatable_object(const char *c_path, const char *const *objs, const char *blob_path, const rsrc_target *t,
                             const char *out_path, const char *workdir) {
    const char *cc = rsrc_env_or("RSRC_CC", RSRC_DEFAULT_CC);
    const char *objcopy = rsrc_env_or("RSRC_OBJCOPY", RSRC_OBJCOPY);
    char *asm_path = xasprintf("%s/blob.S", workdir), *model_o = xasprintf("%s/model-part.o", workdir);
    char *runtime_o = xasprintf("%s/runtime-part.o", workdir);
    register_temp(asm_path);
    register_temp(model_o);
    register_temp(runtime_o);
    write_blob_asm(asm_path, blob_path, 0, false);

    /* The model: descriptor and kernels (C, or the LLVM objects) and the blob, its internals local. */
    int nobjs = 0;
    while (objs && objs[nobjs]) nobjs++;
    char **argv = xcalloc((size_t)nobjs + 64, sizeof *argv);
    int n = 0;
    argv[n++] = (char *)cc;
    argv[n++] = "-r";
    argv[n++] = "-nostdlib";
    argv[n++] = "-std=c11";
    argv[n++] = "-fPIC";
    argv[n++] = "-ffp-contract=off";
    char *flags = xstrdup(t->cflags);
    for (char *tok = strtok(flags, " "); tok && n < 40; tok = strtok(NULL, " ")) argv[n++] = tok;
    char *inc = xasprintf("-I%s", resource_path(RES_RUNTIME_INCLUDE));
    argv[n++] = inc;
    argv[n++] = (char *)c_path;
    for (int i = 0; i < nobjs; i++) argv[n++] = (char *)objs[i];
    argv[n++] = asm_path;
    argv[n++] = "-o";
    argv[n++] = model_o;
    argv[n] = NULL;
    run_or_die(argv, "the C compiler", "RSRC_CC to a C compiler", out_path);
    char *localize[] = {(char *)objcopy, "--localize-hidden", model_o, NULL};
    run_or_die(localize, "objcopy", "RSRC_OBJCOPY to binutils' objcopy", out_path);

    /* The runtime: its API weak, the rest local. */
    char *whole[] = {(char *)cc,
                     "-r",
                     "-nostdlib",
                     "-Wl,--whole-archive",
                     (char *)resource_path(RES_RUNTIME_LIB),
                     "-Wl,--no-whole-archive",
                     "-o",
                     runtime_o,
                     NULL};
    run_or_die(whole, "the C compiler", "RSRC_CC to a C compiler", out_path);
    char *api_only[] = {(char *)objcopy,         "--wildcard", "--keep-global-symbol=rsr_*",
                        "--weaken-symbol=rsr_*", runtime_o,    NULL};
    run_or_die(api_only, "objcopy", "RSRC_OBJCOPY to binutils' objcopy", out_path);

    /* Both as one object, written under a temporary name and renamed into place. */
    char *tmp_out = output_temp(out_path, NULL);
    char *join[] = {(char *)cc, "-r", "-nostdlib", model_o, runtime_o, "-o", tmp_out, NULL};
    run_or_die(join, "the C compiler", "RSRC_CC to a C compiler", out_path);
    output_commit(tmp_out, out_path, 0644);
    free(argv);
    free(flags);
    free(inc);
    free(asm_path);
    free(model_o);
    free(runtime_o);
}
