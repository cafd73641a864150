/*
 * generate.c — the smallest program that talks to a compiled model: load model.so, turn a prompt
 * into tokens, generate greedily, print the text as it comes.
 *
 *     rsrc model_dir -o model.so            # tokenizer.json next to the weights is compiled in
 *     cc generate.c -I rsrc/runtime/include -ldl -o generate
 *     ./generate model.so "The capital of France is" 32
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsr_dl.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.so PROMPT TOKENS\n", argv[0]);
        return 2;
    }
    rsr_api api;
    char err[1024];
    if (rsr_api_load(&api, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rsr_model *model;
    rsr_tokenizer *tok;
    rsr_session *session;
    if (api.model_open(&model, NULL) != RSR_OK || api.model_tokenizer(model, &tok) != RSR_OK ||
        api.session_create(model, NULL, &session) != RSR_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], api.model_errmsg(model));
        return 1;
    }
    rsr_model_info info;
    rsr_tokenizer_info tinfo;
    api.model_get_info(model, &info);
    api.tokenizer_get_info(tok, &tinfo);

    /* The prompt: text → ids, with the BOS token the tokenizer adds. */
    int32_t n, cap = info.max_positions;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    float *logits = malloc(sizeof *logits * (size_t)info.vocab_size);
    if (api.tokenizer_encode(tok, argv[2], -1, RSR_ENCODE_ADD_SPECIAL, ids, cap, &n) != RSR_OK) {
        fprintf(stderr, "%s\n", api.tokenizer_errmsg(tok));
        return 1;
    }
    if (api.session_eval(session, ids, n, logits) != RSR_OK) {
        fprintf(stderr, "%s\n", api.session_errmsg(session));
        return 1;
    }

    /* Generation: the most likely token, its text, and on to the next until an end token. */
    int budget = atoi(argv[3]);
    for (int i = 0; i < budget && api.session_position(session) < info.max_positions; i++) {
        int32_t next = api.sample_greedy(logits, info.vocab_size);
        if (next == info.eos_token_id || next == tinfo.eos_token_id || next == tinfo.eot_token_id) break;
        size_t len;
        const char *piece = api.tokenizer_token_piece(tok, next, &len);
        if (!api.tokenizer_is_special(tok, next)) fwrite(piece, 1, len, stdout);
        fflush(stdout);
        if (api.session_eval(session, &next, 1, logits) != RSR_OK) {
            fprintf(stderr, "%s\n", api.session_errmsg(session));
            return 1;
        }
    }
    putchar('\n');
    free(ids);
    free(logits);
    api.session_free(session);
    api.model_close(model);
    return 0;
}
