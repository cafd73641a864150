/*
 * kernel_set.c — kernels into a loadable shared object (kernel_set.h).
 */
#include "kernel_set.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rsrc.h"

void kernel_set_begin(kernel_set *ks, const kernel_set_params *p) {
    if (p->printer->kind != TK_CPU)
        rsrc_fatal("internal error: a kernel set of the %s printer: CPU printers only", p->printer->name);
    memset(ks, 0, sizeof *ks);
    ks->t = p->t, ks->opt_level = p->opt_level;
    ks->dir =
        xasprintf("%s/%s.XXXXXX", p->dir, p->name); /* a directory of its own: the printer's files keep their names */
    if (!mkdtemp(ks->dir)) rsrc_fatal("cannot create a directory in %s: %s", p->dir, strerror(errno));
    register_temp(ks->dir);
    ks->c_path = xasprintf("%s/kernels.c", ks->dir), ks->blob_path = xasprintf("%s/kernels.bin", ks->dir);
    register_temp(ks->c_path);
    register_temp(ks->blob_path);
    if (!(ks->c = fopen(ks->c_path, "w"))) rsrc_fatal("%s: cannot create: %s", ks->c_path, strerror(errno));
    blob_open(&ks->blob, ks->blob_path);
    emit_c_prologue(ks->c, p->source ? p->source : p->name, ks->t, &ks->file);
    const printer_begin pb = {.t = ks->t,
                              .source = p->source ? p->source : p->name,
                              .module = p->module ? p->module : p->name,
                              .workdir = ks->dir,
                              .explain = p->explain,
                              .opt_level = p->opt_level,
                              .linked = !p->text,
                              .split_c = p->split_c,
                              .c = ks->c,
                              .c_file = &ks->file,
                              .c_path = ks->c_path};
    ks->sink = (kernel_sink){.printer = p->printer, .state = p->printer->begin(&pb)};
    if (!(ks->table = open_memstream(&ks->entries, &ks->entries_size))) rsrc_fatal("out of memory");
}

void kernel_set_open(kernel_set *ks, const rsrc_target *t, const kernel_printer *pr, const char *dir, const char *name,
                     int opt_level) {
    kernel_set_begin(ks, &(kernel_set_params){.t = t, .printer = pr, .dir = dir, .name = name, .opt_level = opt_level});
}

void kernel_set_close_files(kernel_set *ks, uint64_t *c_bytes) {
    if (c_bytes) *c_bytes = (uint64_t)ftell(ks->c);
    if (fclose(ks->c) != 0) rsrc_fatal("%s: write failed: %s", ks->c_path, strerror(errno));
    ks->c = NULL;
    blob_align(&ks->blob, 64);
    blob_close(&ks->blob);
}

void kernel_set_compile(kernel_set *ks, const ternary_matrix *tm, const matrix_request *rq, compiled_matrix *cm) {
    matrix_request r = *rq;
    r.index = ks->n;
    compile_matrix(tm, ks->t, &r, &ks->blob, &ks->sink, cm);
    emit_c_kernel_entry(ks->table, tm->name, &cm->kn);
    ks->n++;
}

void kernel_set_emit(kernel_set *ks, const ternary_matrix *tm, compiled_matrix *cm) {
    matrix_emit(tm, ks->t, ks->n, &ks->blob, &ks->sink, cm);
    emit_c_kernel_entry(ks->table, tm->name, &cm->kn);
    ks->n++;
}

void kernel_set_kernel(kernel_set *ks, const char *name, rsrc_kernel *kn) {
    kernel_write_data(kn, &ks->blob);
    kir_module *m = kir_lower(kn);
    ks->sink.printer->kernel(&ks->sink, m);
    kir_close(m);
    emit_c_kernel_entry(ks->table, name, kn);
    ks->n++;
}

const char *kernel_set_link(kernel_set *ks, const char *so_path) {
    const kernel_printer *pr = ks->sink.printer;
    if (fclose(ks->table) != 0) rsrc_fatal("out of memory");
    ks->table = NULL;
    fprintf(ks->c, "__attribute__((visibility(\"default\"))) const rsr_artifact_matrix %s[] = {\n", KERNEL_SET_TABLE);
    fwrite(ks->entries, 1, ks->entries_size, ks->c);
    fprintf(ks->c, "{0}};\n__attribute__((visibility(\"default\"))) const uint8_t *const %s = rsr_blob;\n",
            KERNEL_SET_BLOB);
    kernel_set_close_files(ks, NULL);
    pr->finish(ks->sink.state, NULL, PRINT_OBJECT);
    free(ks->so_path);
    ks->so_path = so_path ? xstrdup(so_path) : xasprintf("%s/kernels.so", ks->dir);
    register_temp(ks->so_path);
    link_shared_object(ks->c_path, (const char *const *)pr->objects(ks->sink.state), ks->blob_path, ks->t,
                       ks->opt_level, ks->so_path, ks->dir);
    return ks->so_path;
}

void kernel_set_load(kernel_set *ks, const rsr_artifact_matrix **table, const uint8_t **blob) {
    const char *so = kernel_set_link(ks, NULL);
    if (!(ks->handle = dlopen(so, RTLD_NOW | RTLD_LOCAL))) rsrc_fatal("%s: cannot load: %s", so, dlerror());
    *table = dlsym(ks->handle, KERNEL_SET_TABLE);
    const uint8_t *const *b = dlsym(ks->handle, KERNEL_SET_BLOB);
    if (!*table || !b) rsrc_fatal("%s lacks its table of kernels", so);
    *blob = *b;
}

static void remove_file(const char *path) {
    if (!path) return;
    if (!getenv("RSRC_KEEP_KERNEL_SETS")) unlink(path);
    release_temp(path);
}

void kernel_set_close(kernel_set *ks) {
    if (!ks->sink.printer) return; /* never begun */
    if (ks->handle) dlclose(ks->handle);
    if (ks->table) fclose(ks->table);
    if (ks->c) fclose(ks->c);
    if (ks->blob.path) blob_close(&ks->blob); /* left open when nothing was emitted (rsrc --print alone) */
    free(ks->entries);
    char *const *objs = ks->sink.printer->objects(ks->sink.state);
    for (int i = 0; objs && objs[i]; i++) remove_file(objs[i]);
    ks->sink.printer->end(ks->sink.state);
    remove_file(ks->c_path), remove_file(ks->blob_path), remove_file(ks->so_path);
    /* files of its printer or link may still be in it (blob.S, C parts, an LLVM output): removed at
     * exit with every temporary, and the directory then too, as long as it stays registered */
    if (!getenv("RSRC_KEEP_KERNEL_SETS") && rmdir(ks->dir) == 0) release_temp(ks->dir);
    free(ks->c_path), free(ks->blob_path), free(ks->so_path), free(ks->dir);
    memset(ks, 0, sizeof *ks);
}
