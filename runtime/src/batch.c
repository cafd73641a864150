/*
 * batch.c — many sequences in one step: rsr_batch_create, rsr_batch_eval, rsr_batch_free (rsr.h).
 * The handle and its checks; the step itself is the device's (rt_device's batch_init, batch_eval
 * and batch_free: the CPU's in runtime/cpu/batch.c). A device without them refuses batches.
 */
#include <stdlib.h>

#include "internal.h"

rsr_status rsr_batch_create(rsr_model *m, int32_t rows, rsr_batch **out) {
    if (!out) return RSR_ERR_INVALID_ARGUMENT;
    *out = NULL;
    rsr_batch *b = calloc(1, sizeof *b);
    if (!b) return RSR_ERR_OUT_OF_MEMORY;
    *out = b;
    b->model = m;
    if (!m || !m->a) return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT, "no model (a NULL or failed handle)");
    if (m->status != RSR_OK)
        return rt_set_error(b->err, m->status, "the model failed to open: %s", rsr_model_errmsg(m));
    if (!m->run_on->batch_eval)
        return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT,
                            "batches run on the CPU; this model runs on the %s (open it with device = "
                            "RSR_DEVICE_CPU to batch its sessions)",
                            m->run_on->name);
    if (rows < 0 || rows > RSR_BATCH_MAX)
        return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT, "rows %d is out of range [0, %d]", rows, RSR_BATCH_MAX);
    if (!rows) rows = RSR_BATCH_MAX;
    rsr_status st = m->run_on->batch_init(b, rows);
    if (st != RSR_OK) return st;
    b->cap = rows;
    return RSR_OK;
}

void rsr_batch_free(rsr_batch *b) {
    if (!b) return;
    if (b->model && b->model->run_on && b->model->run_on->batch_free) b->model->run_on->batch_free(b);
    free(b);
}

const char *rsr_batch_errmsg(const rsr_batch *b) { return b ? b->err : "no batch (a NULL handle)"; }

rsr_status rsr_batch_eval(rsr_batch *b, const rsr_seq *seqs, int32_t n_seqs) {
    if (!b) return RSR_ERR_INVALID_ARGUMENT;
    if (!b->cap) return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT, "the batch failed to be created");
    if (!seqs || n_seqs <= 0) return rt_set_error(b->err, RSR_ERR_INVALID_ARGUMENT, "no sequences to evaluate");
    for (int32_t i = 0; i < n_seqs; i++) /* the device checks the rest */
        if (seqs[i].session && seqs[i].session->model == b->model)
            rt_note_tokens(seqs[i].session, seqs[i].tokens, seqs[i].n);
    return b->model->run_on->batch_eval(b, seqs, n_seqs);
}
