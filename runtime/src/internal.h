/* internal.h — the runtime's private structures. */
#ifndef RSR_RUNTIME_INTERNAL_H
#define RSR_RUNTIME_INTERNAL_H

#include "rsr.h"
#include "rsr_artifact.h"

#define RSR_ERRMSG_SIZE 256

extern const rsr_artifact RSR_ARTIFACT_SYMBOL; /* defined by the generated code */

struct rsr_model {
    const rsr_artifact *a;
    int32_t num_threads;
    int32_t max_rows;           /* the largest matrix output (scratch sizes) */
    rsr_status status;          /* of the open: a model that failed to open refuses every use */
    char err[RSR_ERRMSG_SIZE];
};

struct rsr_session {
    rsr_model *model;
    int32_t max_positions, pos;
    float *k_cache, *v_cache;   /* [layers][max_positions][kv_heads * head_dim] */
    float *h;                   /* [hidden] residual stream */
    float *xn;                  /* [max(hidden, q_out, intermediate)] normed activation */
    float *tmp;                 /* [same] BitLinear-internal norm (Falcon-E) */
    float *q, *k, *v, *att;     /* [q_out], [kv_out], [kv_out], [q_out] */
    float *gate, *up;           /* [intermediate] */
    float *scores;              /* [heads][max_positions] */
    int8_t *xq;                 /* [max input] quantised activation */
    int32_t *acc;               /* [max_rows] integer products */
    char err[RSR_ERRMSG_SIZE];
};

rsr_status rsr_set_error(char *err, rsr_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* rsr_model_open on a given descriptor (tests and fuzzers hand it damaged ones). */
rsr_status rsr_model_open_artifact(rsr_model **out, const rsr_artifact *a, const rsr_model_params *params);
rsr_status rsr_forward_token(rsr_session *s, int32_t token, float *logits);

#endif
