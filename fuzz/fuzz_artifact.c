/*
 * fuzz_artifact.c — the runtime's artifact loader against damaged descriptors: a valid
 * synthetic model (synthetic.h), then fields overwritten with fuzz values (a tampered constant
 * section, another ABI version, offsets past the blob, shapes that disagree). Whatever
 * rsr_model_open accepts must evaluate tokens without touching memory it does not own.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu_device.h"
#include "synthetic.h"

/* Overwrites one field of the descriptor. The blob may only shrink: the harness owns its bytes. */
static void damage(synth *s, uint8_t field, uint32_t v) {
    rsr_artifact *a = &s->a;
    int32_t i = (int32_t)v;
    uint64_t u = v;
    int m = (v >> 8) % SYNTH_MAX_MATRICES, l = (v >> 8) % SYNTH_MAX_LAYERS;
    switch (field % 40) {
    case 0: a->abi_version = v; break;
    case 1: a->hidden = i; break;
    case 2: a->intermediate = i; break;
    case 3: a->num_layers = i; break;
    case 4: a->num_heads = i; break;
    case 5: a->num_kv_heads = i; break;
    case 6: a->head_dim = i; break;
    case 7: a->vocab = i; break;
    case 8: a->max_positions = i; break;
    case 9: a->bos = i; break;
    case 10: a->eos = i; break;
    case 11: a->activation = i; break;
    case 12: a->bitlinear_norm = i; break;
    case 13: memcpy(&a->rms_eps, &v, 4); break;
    case 14: a->rope_theta = (double)i; break;
    case 15:
        if (u < a->blob_size) a->blob_size = u;
        break;
    case 16: a->embed = u; break;
    case 17: a->lm_head = u; break;
    case 18: a->embed_dtype = i; break;
    case 19: a->lm_head_dtype = i; break;
    case 20: a->final_norm = u; break;
    case 21: a->num_matrices = i; break;
    case 22: s->matrix[m].rows = (int8_t)v; break;
    case 23: s->matrix[m].cols = (int8_t)v; break;
    case 24: s->matrix[m].rsr_k = (int8_t)v; break;
    case 25: s->matrix[m].num_blocks = (int8_t)v; break;
    case 26: s->matrix[m].data = u & 0xff; break;
    case 27: memcpy(&s->matrix[m].scale, &v, 4); break;
    case 28: s->matrix[m].kernel = NULL; break;
    case 29: s->layer[l].attn_norm = u & 0xfff; break;
    case 30: s->layer[l].ffn_norm = u & 0xfff; break;
    case 31: s->layer[l].attn_sub_norm = v & 1 ? RSR_NO_TENSOR : u & 0xfff; break;
    case 32: s->layer[l].ffn_sub_norm = v & 1 ? RSR_NO_TENSOR : u & 0xfff; break;
    case 33: s->layer[l].q = (int8_t)v; break;
    case 34: s->layer[l].o = (int8_t)v; break;
    case 35: s->layer[l].down = (int8_t)v; break;
    case 36: s->layer[l].k = (int8_t)v; break;
    case 37: a->architecture = NULL; break;
    case 38: a->bitlinear_eps = (float)i; break;
    default: a->layer = NULL; break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_bytes b = {data, size};
    uint8_t ndamage = fb_u8(&b) % 4;
    synth s;
    synth_build(&s, &b);
    for (uint8_t d = 0; d < ndamage; d++) {
        uint8_t field = fb_u8(&b);
        damage(&s, field, fb_u32(&b));
    }
    rsr_model *m = NULL;
    rsr_status st = rsr_model_open_artifact(&m, &s.a, &(rsr_model_params){.num_threads = 1});
    if (st == RSR_OK) {
        rsr_session *sess = NULL;
        if (rsr_session_create(m, NULL, &sess) == RSR_OK) {
            float *logits = malloc(sizeof(float) * (size_t)s.a.vocab);
            int32_t toks[2] = {0, s.a.vocab - 1};
            int32_t n = s.a.max_positions < 2 ? 1 : 2;
            if (rsr_session_eval(sess, toks, n, logits) == RSR_OK) rsr_sample_greedy(logits, s.a.vocab);
            free(logits);
            rsr_session_free(sess);
        }
    } else if (m && !strlen(rsr_model_errmsg(m))) {
        __builtin_trap(); /* a refusal always says why */
    }
    rsr_model_close(m);
    synth_free(&s);
    return 0;
}
