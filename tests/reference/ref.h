/*
 * ref.h — the independent, deliberately naive reference of rsrc's test suite.
 *
 * Written straight from the checkpoint formats (safetensors + config.json) and docs/numerics.md,
 * sharing no code with compiler/ or runtime/, so that it can catch bugs in the compiled path:
 * its own safetensors reader, its own config interpretation, its own fp32 forward pass.
 */
#ifndef RSR_REF_H
#define RSR_REF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ref_model ref_model;

/* path: a .safetensors file, a model.safetensors.index.json shard index, or a model directory;
 * config.json sits next to the weights. NULL on failure, with the reason in err. */
ref_model *ref_load(const char *path, char *err, size_t errlen);
void ref_free(ref_model *m);

/* The ternary matrices, in layer order q, k, v, o, gate, up, down. */
int ref_num_matrices(ref_model *m);
const char *ref_matrix_name(ref_model *m, int index);
/* The matrix of a linear layer by its checkpoint weight name: values -1/0/1, row-major
 * [rows][cols], with its scale beta (y = isum * beta / x_scale). NULL when there is none. */
const int8_t *ref_ternary(ref_model *m, const char *tensor_name, int *rows, int *cols, float *beta);

int ref_vocab_size(ref_model *m);
int ref_is_eos(ref_model *m, int32_t token); /* 1 when config.json names token as an eos */

/* Appends n tokens at the current position (naive KV cache) and writes the fp32 logits of the
 * last one (vocab floats) to logits_last, which may be NULL. 0 on success, -1 on error
 * (see ref_errmsg). ref_reset starts over at position 0. */
int ref_forward(ref_model *m, const int32_t *tokens, int n, float *logits_last);
void ref_reset(ref_model *m);
/* The KV cache's element type (docs/numerics.md): keys and values are rounded to it as they are
 * stored; fp32 (no rounding) until set. */
enum { REF_KV_F32, REF_KV_BF16, REF_KV_F16, REF_KV_Q8 };
void ref_set_kv(ref_model *m, int kv);
const char *ref_errmsg(ref_model *m);

/* The first index of the maximum. */
int32_t ref_argmax(const float *x, int n);

#endif
