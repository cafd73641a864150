/*
 * rsrc.h — the compiler's internal headers, one per stage, in the pipeline's order; each is
 * sectioned by the file that owns each part. The kernel IR (kir.h, lower.h) and the printers as
 * values (printer.h) have headers of their own.
 *
 * Pipeline (see compile() in main.c), by room (docs/design.md draws the rooms and their arrows):
 *
 *   checkpoint ──load──▶ model ──analyse──▶ rsrc_plan ──lower──▶ kernel ──print──▶ C ──link──▶ model.so
 *   frontend/            frontend/          plan/rsr.c          ir/kernel.c     print/    artifact/link.c
 *                                                                                    └─embed──▶ NAME.o
 *   model ──artifact/emit_header.c──▶ NAME.h (sizes as macros, entry points)         artifact/embed.c
 *
 * Matrices are processed one at a time (load, analyse, emit, free), so the compiler's memory
 * does not grow with the model: the checkpoint is memory-mapped and the constant data is
 * streamed into the artifact's blob file as it is produced.
 */
#ifndef RSRC_H
#define RSRC_H

#include "support/diag.h"     /* errors, arenas, temporaries, allocation */
#include "frontend/model.h"   /* the inputs: checkpoint, GGUF, ternary matrices */
#include "plan/plan.h"        /* RSR analysis, target, plan, --tune */
#include "ir/kernel.h"        /* the kernel description */
#include "matrix.h"           /* one matrix: decide, lower, print */
#include "artifact/emit.h"    /* blob, C and LLVM printers, manifest, header */
#include "artifact/link.h"    /* resources, link, embed */
#include "support/progress.h" /* status line and stage timings */

#endif
