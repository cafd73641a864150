/*
 * progress.h — the status line of a long compile and the per-stage timings of -v.
 */
#ifndef RSRC_PROGRESS_H
#define RSRC_PROGRESS_H

#include "support/diag.h"

/* ---- progress.c: the status line of a long compile, and per-stage timings for -v ---- */
enum stage { STAGE_LOAD, STAGE_ANALYSE, STAGE_TUNE, STAGE_EMIT, STAGE_LLVM, STAGE_LINK, NUM_STAGES };
/* The time since the last call goes to the stage entered then; from now on it goes to s. */
void stage_enter(enum stage s);
void stage_hold(bool on);        /* while on, stage_enter does nothing: nested work counts as the current stage */
void stage_report(double total); /* -v */
/* hub.c: hf:ORG/NAME[@REVISION] downloaded into the Hugging Face cache; what to compile there
 * (the snapshot's directory, or its GGUF file: only, or the repository's one) */
char *hub_fetch(const char *spec, const char *only);

enum progress_mode { PROGRESS_OFF, PROGRESS_TERMINAL, PROGRESS_LINES };
void progress_open(enum progress_mode mode); /* the clock starts */
void progress_phase(const char *what);       /* before the matrices: a named line, no ETA */
void progress_begin(enum progress_mode mode, int layers, uint64_t total_work);
void progress_update(int layer, uint64_t done, const char *what);
/* The predicted seconds of the stages after the per-matrix work, counted into the ETA. */
void progress_expect_after(double seconds);
/* A stage after the per-matrix work: its line ticks while it runs; expect_s is its part of the
 * prediction. */
void progress_stage(const char *what, double expect_s);
void progress_end(void);

#endif
