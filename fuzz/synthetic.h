/*
 * synthetic.h — a small model descriptor made from fuzz bytes, without the compiler: shapes,
 * blob (embedding, norms) and one reference kernel per matrix. The runtime fuzzers hand it to
 * rsr_model_open_artifact, damaged or not.
 *
 * The kernels read their weights from memory the harness owns and trust nothing but the
 * descriptor the runtime validated: they read x[0, cols) and write y rows of their matrix, so
 * a runtime that passes buffers too small for what it accepted is caught by AddressSanitizer.
 */
#ifndef RSR_FUZZ_SYNTHETIC_H
#define RSR_FUZZ_SYNTHETIC_H

#include <stddef.h>
#include <stdint.h>

#include "rsr_artifact.h"

#define SYNTH_MAX_LAYERS 2
#define SYNTH_MAX_MATRICES (7 * SYNTH_MAX_LAYERS)

typedef struct synth {
    rsr_artifact a;
    rsr_artifact_layer layer[SYNTH_MAX_LAYERS];
    rsr_artifact_matrix matrix[SYNTH_MAX_MATRICES];
    int32_t rows[SYNTH_MAX_MATRICES], cols[SYNTH_MAX_MATRICES]; /* as built, before any damage */
    int8_t *w[SYNTH_MAX_MATRICES];
    uint8_t *blob;
} synth;

/* Byte reader: past the end every read yields 0. */
typedef struct fuzz_bytes {
    const uint8_t *p;
    size_t n;
} fuzz_bytes;
uint8_t fb_u8(fuzz_bytes *b);
uint32_t fb_u32(fuzz_bytes *b);

/* Builds a valid descriptor from the first bytes of b (and makes it the one the kernels read). */
void synth_build(synth *s, fuzz_bytes *b);
void synth_free(synth *s);

#endif
