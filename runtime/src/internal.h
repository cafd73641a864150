/* internal.h — the runtime's private structures. */
#ifndef RSR_RUNTIME_INTERNAL_H
#define RSR_RUNTIME_INTERNAL_H

#include "rsr.h"
#include "rsr_artifact.h"

#define RSR_ERRMSG_SIZE 256

/* The default model, defined by the generated code of model.so and of objects compiled without
 * --name; weak, so that a program holding only named models links without it. */
extern const rsr_artifact *const RSR_ARTIFACT_SYMBOL __attribute__((weak));

struct rsr_model {
    const rsr_artifact *a;
    int32_t num_threads;
    int32_t max_rows;           /* the largest matrix output (scratch sizes) */
    rsr_tokenizer *tokenizer;   /* parsed from the artifact's tokenizer.json on first use */
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
    int8_t *xq;                 /* [max input] quantised activation */
    int32_t *acc;               /* [max_rows] integer products */
    struct rsr_attention *attn; /* attention.c: dense partial states or the Louver indexes */
    char err[RSR_ERRMSG_SIZE];
};

rsr_status rsr_set_error(char *err, rsr_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
rsr_status rsr_forward_token(rsr_session *s, int32_t token, float *logits);

/* attention.c: attention of layer `layer` for the token at s->pos (its key and value already in
 * the cache), into s->att. */
rsr_status rsr_attention_init(rsr_session *s, const rsr_session_params *p);
void rsr_attention_free(rsr_session *s);
void rsr_attention_reset(rsr_session *s);
rsr_status rsr_attention(rsr_session *s, int32_t layer);

#endif
