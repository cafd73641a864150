/*
 * rsr_dl.c — a compiled model loaded at run time, its C API through a table (rsr_dl.h). Part of
 * librsr_dl, with rsr_elf.c: the file's structure checked before dlopen sees it.
 */
#include "rsr_dl.h"

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "rsr_elf.h"

/* The ELF machine this process runs: an artifact for another (an aarch64 one on x86) is named,
 * where dlopen would say only that it cannot open the file. */
#if defined(__aarch64__)
#define RSR_DL_MACHINE EM_AARCH64
#else
#define RSR_DL_MACHINE EM_X86_64
#endif
static const char *rsr_dl_machine_name(unsigned m) {
    return m == EM_X86_64 ? "x86_64" : m == EM_AARCH64 ? "aarch64" : "another architecture";
}

/* The file at path opened and its ELF header read into e: 0, or -1 with a message in err (also
 * for a file of another machine: an aarch64 one on x86 is named, where dlopen would say only that
 * it cannot open it). Close e->f and e after a 0. */
static int rsr_dl_open_elf(const char *path, rsr_elf *e, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (rsr_elf_open(e, f) != 0)
        snprintf(err, errlen, "%s: %s (is it a model compiled by rsrc?)", path, e->why);
    else if (e->eh.e_machine != RSR_DL_MACHINE)
        snprintf(err, errlen,
                 "%s: compiled for %s and this machine is %s: compile the model for it (rsrc MODEL --target host -o "
                 "model.so), or run this file on %s",
                 path, rsr_dl_machine_name(e->eh.e_machine), rsr_dl_machine_name(RSR_DL_MACHINE),
                 rsr_dl_machine_name(e->eh.e_machine));
    else
        return 0;
    fclose(f);
    return -1;
}

/* The message for what rsr_elf_check found. */
static void rsr_dl_elf_damage(const char *path, const rsr_elf *e, char *err, size_t errlen) {
    if (e->truncated)
        snprintf(err, errlen, "%s: %s", path, e->why);
    else
        snprintf(err, errlen, "%s: damaged: %s (copy the file again, or compile the model again)", path, e->why);
}

/* dlopen trusts the file: a segment that the program headers place past the end of a truncated
 * file is mapped anyway, and touching it raises SIGBUS; a damaged program header, dynamic entry
 * or relocation sends the loader outside the object, or into one of its assertions. So the
 * structure of the file is checked first (rsr_elf.h: the headers and the tables the loader
 * reads, not the whole file). Returns 0, or -1 with a message in err. */
int rsr_api_check_elf(const char *path, char *err, size_t errlen) {
    rsr_elf e;
    if (rsr_dl_open_elf(path, &e, err, errlen) != 0) return -1;
    const int rc = rsr_elf_check(&e);
    if (rc != 0) rsr_dl_elf_damage(path, &e, err, errlen);
    fclose(e.f);
    rsr_elf_close(&e);
    return rc;
}

/* Checks the whole file at path without loading it: its structure (rsr_api_check_elf) and, when
 * rsrc recorded one, the digest of all its bytes (rsr_elf.h), so that damage anywhere, code
 * included, is reported instead of run. Returns 1 (the digest matches), 0 (the file records no
 * digest, written by an older rsrc: its structure alone was checked) or -1 with a message in err. */
int rsr_api_verify_file(const char *path, char *err, size_t errlen) {
    rsr_elf e;
    if (rsr_dl_open_elf(path, &e, err, errlen) != 0) return -1;
    const int sound = rsr_elf_check(&e) == 0;
    char found_damage[sizeof e.why + 32] = "";
    if (!sound) {
        rsr_dl_elf_damage(path, &e, err, errlen);
        snprintf(found_damage, sizeof found_damage, "; damage found: %s", e.why);
    }
    uint64_t note = 0, desc[2] = {0, 0}, sum = 0;
    int rc = rsr_elf_find_digest(&e, &note);
    if (rc < 0)
        snprintf(err, errlen, "%s: damaged: %s (copy the file again, or compile the model again)", path, e.why);
    else if (rc > 0 &&
             (!rsr_elf_read(&e, desc, sizeof desc, note + RSR_DIGEST_DESC) || rsr_elf_checksum(&e, note, &sum) != 0))
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno)), rc = -1;
    else if (rc > 0 && desc[0] != e.size)
        snprintf(err, errlen,
                 "%s: %llu bytes, and rsrc recorded %llu: the file was cut short or extended after rsrc wrote it; copy "
                 "it again, or compile the model again",
                 path, (unsigned long long)e.size, (unsigned long long)desc[0]),
            rc = -1;
    else if (rc > 0 && desc[1] != sum)
        snprintf(err, errlen,
                 "%s: the file fails the digest rsrc recorded in it (%016llx, written as %016llx%s): it was altered "
                 "after rsrc wrote it, or the disk or memory is failing; copy it again, or compile the model again",
                 path, (unsigned long long)sum, (unsigned long long)desc[1], found_damage),
            rc = -1;
    else if (!sound)
        rc = -1; /* err holds the damage */
    fclose(e.f);
    rsr_elf_close(&e);
    return rc;
}

/* Returns 0, or -1 with a message in err. A path without '/' is taken relative to the current
 * directory (dlopen would search the library path instead). */
int rsr_api_load(rsr_api *api, const char *path, char *err, size_t errlen) {
    char buf[4096];
    struct stat st;
    memset(api, 0, sizeof *api);
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s (compile a model first: rsrc MODEL_DIR -o %s)", path, strerror(errno), path);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen,
                 "%s is a directory; run the model compiled from it: rsrc %s -o model.so, then use model.so", path,
                 path);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    unsigned char magic[4] = {0};
    size_t got = f ? fread(magic, 1, 4, f) : 0;
    if (f) fclose(f);
    if (got != 4 || memcmp(magic, "\177ELF", 4) != 0) {
        const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
        if (got == 4 && memcmp(magic, "GGUF", 4) == 0)
            snprintf(err, errlen, "%s is a GGUF model, not a compiled one: compile it first: rsrc %s -o model.so", path,
                     path);
        else if (strcmp(base, "config.json") == 0) /* the checkpoint is its directory */
            snprintf(err, errlen,
                     "%s is a checkpoint's configuration, not a compiled model: compile the checkpoint first: "
                     "rsrc %.*s -o model.so",
                     path, slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
        else if (dot && (strcmp(dot, ".safetensors") == 0 || strcmp(dot, ".json") == 0))
            snprintf(err, errlen, "%s is a checkpoint, not a compiled model: compile it first (rsrc %s -o model.so)",
                     path, path);
        else
            snprintf(err, errlen,
                     "%s is not a shared object: expected a model compiled by rsrc (rsrc MODEL -o model.so)", path);
        return -1;
    }
    if (rsr_api_check_elf(path, err, errlen) != 0) return -1;
    snprintf(buf, sizeof buf, "%s%s", strchr(path, '/') ? "" : "./", path);
    api->handle = dlopen(buf, RTLD_NOW | RTLD_LOCAL);
    if (!api->handle) {
        snprintf(err, errlen, "%s: cannot load: %s", path, dlerror());
        return -1;
    }
    static const struct {
        const char *name;
        size_t offset;
    } symbols[] = {
#define RSR_DL_SYMBOL(field) {"rsr_" #field, offsetof(rsr_api, field)}
        RSR_DL_SYMBOL(api_version),
        RSR_DL_SYMBOL(status_to_string),
        RSR_DL_SYMBOL(model_open),
        RSR_DL_SYMBOL(model_close),
        RSR_DL_SYMBOL(model_errmsg),
        RSR_DL_SYMBOL(model_get_info),
        RSR_DL_SYMBOL(model_manifest),
        RSR_DL_SYMBOL(model_matrix_info),
        RSR_DL_SYMBOL(model_matvec_int),
        RSR_DL_SYMBOL(model_matmul_int),
        RSR_DL_SYMBOL(session_create),
        RSR_DL_SYMBOL(session_free),
        RSR_DL_SYMBOL(session_errmsg),
        RSR_DL_SYMBOL(session_reset),
        RSR_DL_SYMBOL(session_position),
        RSR_DL_SYMBOL(session_truncate),
        RSR_DL_SYMBOL(session_reusable),
        RSR_DL_SYMBOL(session_reachable),
        RSR_DL_SYMBOL(session_eval),
        RSR_DL_SYMBOL(session_eval_greedy),
        RSR_DL_SYMBOL(session_eval_int8),
        RSR_DL_SYMBOL(session_eval_sample),
        RSR_DL_SYMBOL(model_verify),
        RSR_DL_SYMBOL(session_attention_stats),
        RSR_DL_SYMBOL(session_kv_read),
        RSR_DL_SYMBOL(session_last_query),
        RSR_DL_SYMBOL(sample_greedy),
        RSR_DL_SYMBOL(sample),
        RSR_DL_SYMBOL(model_tokenizer),
        RSR_DL_SYMBOL(tokenizer_create),
        RSR_DL_SYMBOL(tokenizer_free),
        RSR_DL_SYMBOL(tokenizer_errmsg),
        RSR_DL_SYMBOL(tokenizer_get_info),
        RSR_DL_SYMBOL(tokenizer_encode),
        RSR_DL_SYMBOL(tokenizer_decode),
        RSR_DL_SYMBOL(tokenizer_token_piece),
        RSR_DL_SYMBOL(tokenizer_token_id),
        RSR_DL_SYMBOL(tokenizer_is_special),
        RSR_DL_SYMBOL(tokenizer_apply_chat_template),
        RSR_DL_SYMBOL(tokenizer_set_chat_template),
        RSR_DL_SYMBOL(tokenizer_apply_chat_template_json),
        RSR_DL_SYMBOL(batch_create),
        RSR_DL_SYMBOL(batch_free),
        RSR_DL_SYMBOL(batch_errmsg),
        RSR_DL_SYMBOL(batch_eval),
        RSR_DL_SYMBOL(session_embed),
        RSR_DL_SYMBOL(session_eval_all),
        RSR_DL_SYMBOL(session_head_stats),
        RSR_DL_SYMBOL(session_eval_draft),
        RSR_DL_SYMBOL(session_draft_mtp),
        RSR_DL_SYMBOL(session_tokens),
        RSR_DL_SYMBOL(session_save),
        RSR_DL_SYMBOL(session_save_fd),
        RSR_DL_SYMBOL(session_load),
        RSR_DL_SYMBOL(session_load_fd),
#undef RSR_DL_SYMBOL
    };
    if (!dlsym(api->handle, "rsr_api_version")) {
        int older = dlsym(api->handle, "rsr_model_open") != NULL;
        snprintf(err, errlen,
                 older ? "%s was compiled by an older rsrc (API version 1; this program speaks %d): "
                         "compile the model again with the current rsrc"
                       : "%s is a shared object but not a model compiled by rsrc (no rsr_api_version)",
                 path, RSR_API_VERSION);
        dlclose(api->handle);
        api->handle = NULL;
        return -1;
    }
    uint32_t (*version)(void);
    void *version_fn = dlsym(api->handle, "rsr_api_version");
    memcpy(&version, &version_fn, sizeof version);
    if (version() != RSR_API_VERSION) {
        snprintf(err, errlen,
                 "%s was compiled for rsr API version %u, this program speaks version %d: compile the "
                 "model again with the rsrc that matches this program",
                 path, version(), RSR_API_VERSION);
        dlclose(api->handle);
        api->handle = NULL;
        return -1;
    }
    for (size_t i = 0; i < sizeof symbols / sizeof *symbols; i++) {
        void *fn = dlsym(api->handle, symbols[i].name);
        if (!fn) {
            snprintf(err, errlen,
                     "%s: not a complete rsrc model: no symbol '%s' (compile it again with the current rsrc)", path,
                     symbols[i].name);
            dlclose(api->handle);
            api->handle = NULL;
            return -1;
        }
        memcpy((char *)api + symbols[i].offset, &fn, sizeof fn);
    }
    return 0;
}
