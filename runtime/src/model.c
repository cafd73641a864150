/* model.c — opening a compiled model (the default one, or a named one by its descriptor); status strings; matrix access. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char *rsr_status_to_string(rsr_status st) {
    switch (st) {
    case RSR_OK: return "ok";
    case RSR_ERR_INVALID_ARGUMENT: return "invalid argument";
    case RSR_ERR_OUT_OF_MEMORY: return "out of memory";
    case RSR_ERR_ABI: return "artifact ABI mismatch";
    case RSR_ERR_CONTEXT_FULL: return "context full";
    case RSR_ERR_BAD_TOKEN: return "token id out of range";
    case RSR_ERR_INTERNAL: return "internal error";
    case RSR_ERR_NOT_FOUND: return "not found";
    case RSR_ERR_FORMAT: return "unsupported format";
    case RSR_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    }
    return "unknown status";
}

rsr_status rsr_set_error(char *err, rsr_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, RSR_ERRMSG_SIZE, fmt, ap);
        va_end(ap);
    }
    return st;
}

uint32_t rsr_api_version(void) { return RSR_API_VERSION; }

rsr_model_params rsr_model_default_params(void) { return (rsr_model_params){.num_threads = 0}; }

static rsr_status check_artifact(rsr_model *m) {
    const rsr_artifact *a = m->a;
    if (a->abi_version != RSR_ABI_VERSION)
        return rsr_set_error(m->err, RSR_ERR_ABI, "artifact built for runtime ABI %u, this runtime speaks ABI %u: "
                             "recompile the model with a matching rsrc", a->abi_version, RSR_ABI_VERSION);
    if (a->hidden <= 0 || a->num_layers <= 0 || a->num_heads <= 0 || a->num_kv_heads <= 0 ||
        a->num_heads % a->num_kv_heads || a->head_dim <= 0 || a->head_dim % 2 || a->vocab <= 0 ||
        a->num_matrices != a->num_layers * 7)
        return rsr_set_error(m->err, RSR_ERR_ABI, "artifact descriptor is inconsistent");
    int32_t max_rows = a->hidden;
    for (int32_t i = 0; i < a->num_matrices; i++) {
        const rsr_artifact_matrix *x = &a->matrix[i];
        if (!x->kernel || x->rsr_k <= 0 || x->num_blocks * x->rsr_k < x->rows)
            return rsr_set_error(m->err, RSR_ERR_ABI, "artifact matrix %d (%s) is inconsistent", i, x->name);
        if (x->rows > max_rows) max_rows = x->rows;
    }
    if (a->tokenizer_json != RSR_NO_TENSOR &&
        (a->tokenizer_json > a->blob_size || a->tokenizer_json_size > a->blob_size - a->tokenizer_json))
        return rsr_set_error(m->err, RSR_ERR_ABI, "artifact tokenizer [%llu, +%llu) lies outside the %llu-byte blob",
                             (unsigned long long)a->tokenizer_json, (unsigned long long)a->tokenizer_json_size,
                             (unsigned long long)a->blob_size);
    m->max_rows = max_rows;
    return RSR_OK;
}

rsr_status rsr_model_open_artifact(rsr_model **out, const rsr_artifact *artifact, const rsr_model_params *params) {
    if (!out) return RSR_ERR_INVALID_ARGUMENT;
    rsr_model *m = calloc(1, sizeof *m);
    *out = m;
    if (!m) return RSR_ERR_OUT_OF_MEMORY;
    m->a = artifact;
    if (!artifact)
        return rsr_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "no artifact given (NAME_artifact() of a model "
                             "compiled with --name=NAME)");
    rsr_model_params p = params ? *params : rsr_model_default_params();
    if (p.num_threads < 0 || p.num_threads > 1024)
        return rsr_set_error(m->err, RSR_ERR_INVALID_ARGUMENT, "num_threads %d is out of range [0, 1024]",
                             p.num_threads);
    m->num_threads = p.num_threads;
    return check_artifact(m);
}

rsr_status rsr_model_open(rsr_model **out, const rsr_model_params *params) {
    if (!&RSR_ARTIFACT_SYMBOL) {
        rsr_status st = rsr_model_open_artifact(out, NULL, params);
        if (out && *out)
            rsr_set_error((*out)->err, RSR_ERR_NOT_FOUND, "no default model is linked into this program: the models "
                          "in it were compiled with --name=NAME; open one with NAME_model_open");
        return out && *out ? RSR_ERR_NOT_FOUND : st;
    }
    return rsr_model_open_artifact(out, RSR_ARTIFACT_SYMBOL, params);
}

void rsr_model_close(rsr_model *m) {
    if (!m) return;
    rsr_tokenizer_free(m->tokenizer);
    free(m);
}

rsr_status rsr_model_tokenizer(rsr_model *m, rsr_tokenizer **out) {
    if (out) *out = NULL;
    if (!m || !m->a || !out) return RSR_ERR_INVALID_ARGUMENT;
    const rsr_artifact *a = m->a;
    if (a->tokenizer_json == RSR_NO_TENSOR)
        return rsr_set_error(m->err, RSR_ERR_NOT_FOUND, "the model was compiled without a tokenizer: put tokenizer.json "
                             "next to the weights and compile it again (or pass token ids)");
    if (!m->tokenizer) {
        rsr_tokenizer *t;
        rsr_status st = rsr_tokenizer_create((const char *)a->blob + a->tokenizer_json, a->tokenizer_json_size, &t);
        if (st != RSR_OK) {
            rsr_set_error(m->err, st, "%s", rsr_tokenizer_errmsg(t));
            rsr_tokenizer_free(t);
            return st;
        }
        m->tokenizer = t;
    }
    *out = m->tokenizer;
    return RSR_OK;
}

const char *rsr_model_manifest(const rsr_model *m) {
    return m && m->a && m->a->manifest ? m->a->manifest : "";
}

const char *rsr_model_errmsg(const rsr_model *m) {
    if (!m) return "no model (out of memory or a NULL handle)";
    return m->err;
}

rsr_status rsr_model_get_info(const rsr_model *m, rsr_model_info *info) {
    if (!m || !m->a || !info) return RSR_ERR_INVALID_ARGUMENT;
    const rsr_artifact *a = m->a;
    *info = (rsr_model_info){
        .architecture = a->architecture, .target = a->target, .compiler = a->compiler,
        .hidden_size = a->hidden, .intermediate_size = a->intermediate, .num_layers = a->num_layers,
        .num_heads = a->num_heads, .num_kv_heads = a->num_kv_heads, .head_dim = a->head_dim,
        .vocab_size = a->vocab, .max_positions = a->max_positions, .bos_token_id = a->bos,
        .eos_token_id = a->eos, .num_matrices = a->num_matrices,
    };
    return RSR_OK;
}

rsr_status rsr_model_matrix_info(const rsr_model *m, int32_t index, rsr_matrix_info *info) {
    if (!m || !m->a || !info) return RSR_ERR_INVALID_ARGUMENT;
    if (index < 0 || index >= m->a->num_matrices) return RSR_ERR_INVALID_ARGUMENT;
    const rsr_artifact_matrix *x = &m->a->matrix[index];
    *info = (rsr_matrix_info){x->name, x->rows, x->cols, x->strategy, x->rsr_k, x->scale};
    return RSR_OK;
}

rsr_status rsr_model_matvec_int(const rsr_model *m, int32_t index, const int8_t *x, int32_t *y) {
    if (!m || !m->a || !x || !y || index < 0 || index >= m->a->num_matrices) return RSR_ERR_INVALID_ARGUMENT;
    const rsr_artifact_matrix *mx = &m->a->matrix[index];
    const uint8_t *data = mx->data == RSR_NO_TENSOR ? NULL : m->a->blob + mx->data;
    size_t padded = ((size_t)mx->cols + RSR_X_PAD - 1) / RSR_X_PAD * RSR_X_PAD;
    int8_t *xp = calloc(1, padded); /* the kernel contract: zero up to a multiple of RSR_X_PAD */
    if (!xp) return RSR_ERR_OUT_OF_MEMORY;
    memcpy(xp, x, (size_t)mx->cols);
    mx->kernel(data, xp, y, 0, mx->num_blocks);
    free(xp);
    return RSR_OK;
}
