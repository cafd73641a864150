/*
 * printers.c — the table of kernel printers (printer.h): the one place that names them all, and
 * the forms each target kind lowers itself. A new printer is a kernel_printer value in its own
 * file, added here.
 */
#include <string.h>

#include "print/printer.h"

extern const kernel_printer printer_c;                    /* print/emit_c.c */
extern const kernel_printer printer_llvm;                 /* print/emit_llvm.c */
extern const kernel_printer printer_cuda, printer_nvptx;  /* cuda/compiler/gpu.c */
void kir_lower_gpu(kir_module *m, const rsrc_kernel *kn); /* cuda/compiler/lower_gpu.c */

const kernel_printer *const kernel_printers[] = {&printer_c, &printer_llvm, &printer_cuda, &printer_nvptx, NULL};

void (*const target_forms[])(kir_module *m, const rsrc_kernel *kn) = {[TK_CPU] = NULL, [TK_CUDA] = kir_lower_gpu};

const kernel_printer *printer_for(enum target_kind kind, const char *backend) {
    const kernel_printer *first = NULL;
    for (const kernel_printer *const *p = kernel_printers; *p; p++) {
        if ((*p)->kind != kind) continue;
        if (backend && !strcmp((*p)->backend, backend)) return *p;
        if (!first) first = *p;
    }
    return first;
}

const kernel_printer *printer_backend(enum target_kind kind, const char *backend) {
    for (const kernel_printer *const *p = kernel_printers; *p; p++)
        if ((*p)->kind == kind && !strcmp((*p)->backend, backend)) return *p;
    return NULL;
}

const kernel_printer *printer_named(const char *name) {
    for (const kernel_printer *const *p = kernel_printers; *p; p++)
        if (!strcmp((*p)->name, name)) return *p;
    return NULL;
}
