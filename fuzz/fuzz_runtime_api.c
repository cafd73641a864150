/*
 * fuzz_runtime_api.c — random sequences of public runtime calls with random arguments (NULL
 * handles and buffers, negative and huge sizes, tokens outside the vocabulary, more positions
 * than the context) on a synthetic model. Every call must answer with a status; a session must
 * never advance past its context; a refused eval must not move the position.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_device.h"
#include "synthetic.h"

#define MAX_SESSIONS 3

static int32_t pick_int(fuzz_bytes *b, int32_t typical) {
    uint8_t how = fb_u8(b);
    switch (how % 8) {
    case 0: return -1 - (int32_t)fb_u8(b);
    case 1: return (int32_t)fb_u32(b);
    case 2: return 0;
    case 3: return typical;
    case 4: return typical + 1;
    default: return (int32_t)(fb_u8(b) % (uint32_t)(typical + 2));
    }
}

static float pick_float(fuzz_bytes *b) {
    static const float special[8] = {0.0f, -1.0f, 0.5f, 1.0f, 2.0f, 100.0f, INFINITY, NAN};
    uint8_t how = fb_u8(b);
    if (how < 128) return special[how % 8];
    uint32_t bits = fb_u32(b);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_bytes b = {data, size};
    synth s;
    synth_build(&s, &b);
    const int32_t V = s.a.vocab;
    rsr_model *m = NULL;
    rsr_model_params mp = {.num_threads = fb_u8(&b) % 3 == 0 ? -1 : 1};
    /* The artifact linked into this program is from another ABI (synthetic.c): refused, and so is
     * every later use of the handle. */
    rsr_status st = rsr_model_open(&m, &mp);
    rsr_session *refused = NULL;
    if (st == RSR_OK || rsr_session_create(m, NULL, &refused) == RSR_OK || refused) __builtin_trap();
    rsr_model_close(m);
    m = NULL;
    if (rsr_model_open_artifact(&m, &s.a, &mp) != RSR_OK) {
        if (mp.num_threads >= 0) __builtin_trap(); /* a valid synthetic model must open */
        rsr_model_close(m);
        synth_free(&s);
        return 0;
    }
    rsr_session *sess[MAX_SESSIONS] = {0};
    float *logits = malloc(sizeof(float) * (size_t)V), *probs = malloc(sizeof(float) * (size_t)V);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)V), tokens[24];
    int8_t x[65536 / 256];
    int32_t y[65536 / 256];
    uint64_t rng = 1;
    for (int step = 0; step < 64 && b.n; step++) {
        uint8_t op = fb_u8(&b);
        rsr_session **sp = &sess[(op >> 4) % MAX_SESSIONS];
        switch (op % 12) {
        case 0: {
            if (*sp) break;
            rsr_session_params p = {.max_positions = pick_int(&b, s.a.max_positions)};
            st = rsr_session_create(fb_u8(&b) == 7 ? NULL : m, fb_u8(&b) == 7 ? NULL : &p, sp);
            if (st != RSR_OK && *sp) __builtin_trap(); /* a failed create hands out no session */
            break;
        }
        case 1:
            rsr_session_free(*sp);
            *sp = NULL;
            break;
        case 2:
        case 3:
        case 4: {
            int32_t n = pick_int(&b, 3);
            int32_t count = n > 0 && n < 24 ? n : 24;
            for (int32_t i = 0; i < count; i++) tokens[i] = pick_int(&b, V - 1);
            int32_t before = rsr_session_position(*sp);
            st = rsr_session_eval(*sp, fb_u8(&b) == 7 ? NULL : tokens, n > 24 ? 24 : n, fb_u8(&b) & 1 ? logits : NULL);
            int32_t after = rsr_session_position(*sp);
            if (*sp && st != RSR_OK && after != before) __builtin_trap();
            if (*sp && after > (*sp)->max_positions) __builtin_trap();
            if (!*sp && st == RSR_OK) __builtin_trap();
            break;
        }
        case 5: rsr_session_reset(*sp); break;
        case 6: {
            rsr_model_info info;
            st = rsr_model_get_info(fb_u8(&b) == 7 ? NULL : m, fb_u8(&b) == 7 ? NULL : &info);
            break;
        }
        case 7: {
            rsr_matrix_info mi;
            rsr_model_matrix_info(m, pick_int(&b, s.a.num_matrices), fb_u8(&b) == 7 ? NULL : &mi);
            break;
        }
        case 8: {
            int32_t idx = pick_int(&b, s.a.num_matrices);
            if (idx >= 0 && idx < s.a.num_matrices) memset(x, 1, sizeof x); /* buffers big enough */
            rsr_model_matvec_int(m, idx, fb_u8(&b) == 7 ? NULL : x, fb_u8(&b) == 7 ? NULL : y);
            break;
        }
        case 9: {
            rsr_sampler_params p = {.temperature = pick_float(&b), .top_k = pick_int(&b, V), .top_p = pick_float(&b)};
            for (int32_t i = 0; i < V; i++) logits[i] = fb_u8(&b) < 250 ? (float)fb_u8(&b) : pick_float(&b);
            int32_t t = rsr_sample(logits, V, fb_u8(&b) == 7 ? NULL : &p, &rng, probs, ids);
            if (t < 0 || t >= V) __builtin_trap();
            t = rsr_sample_greedy(logits, V);
            if (t < 0 || t >= V) __builtin_trap();
            break;
        }
        case 10:
            rsr_session_errmsg(*sp);
            rsr_model_errmsg(m);
            rsr_status_to_string((rsr_status)pick_int(&b, 6));
            break;
        default: {
            rsr_session *other = NULL;
            rsr_session_create(m, &(rsr_session_params){.max_positions = 1}, &other);
            rsr_session_eval(other, tokens, 1, logits);
            rsr_session_free(other);
            break;
        }
        }
    }
    for (int i = 0; i < MAX_SESSIONS; i++) rsr_session_free(sess[i]);
    rsr_model_close(m);
    free(logits), free(probs), free(ids);
    synth_free(&s);
    return 0;
}
