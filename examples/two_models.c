/*
 * two_models.c — two compiled models linked statically into one program, side by side: each
 * continues the same prompt, a token from one and then a token from the other.
 *
 *     rsrc tiny_dir  --emit=obj --name=tiny  -o tiny.o     # kernels, constants, runtime: one object
 *     rsrc tiny_dir  --emit=header --name=tiny  -o tiny.h  # its sizes and entry points
 *     rsrc small_dir --emit=obj --name=small -o small.o
 *     rsrc small_dir --emit=header --name=small -o small.h
 *     cc two_models.c tiny.o small.o -I . -I rsrc/runtime/include -fopenmp -lpcre2-8 -lcjson -lutf8proc -lm -o two_models
 *     ./two_models "The capital of France is" 32
 *
 * The names keep the two models apart (tiny_model_open, small_model_open); everything after
 * opening is the one C API of rsr.h, served by one runtime.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "small.h"
#include "tiny.h"

/* One model generating: its handles, its logits, and the text so far. */
typedef struct generator {
    const char *name;
    rsr_model *model;
    rsr_tokenizer *tok;
    rsr_session *session;
    float *logits;
    int32_t vocab, stop[3];
    int done;
    char *text;
    size_t len;
} generator;

static int fail(const char *name, const char *what, const char *msg) {
    fprintf(stderr, "%s: %s: %s\n", name, what, msg);
    return 1;
}

/* Opens the model's tokenizer and a session, and evaluates the prompt. */
static int start(generator *g, const char *prompt) {
    if (rsr_model_tokenizer(g->model, &g->tok) != RSR_OK || rsr_session_create(g->model, NULL, &g->session) != RSR_OK)
        return fail(g->name, "open", rsr_model_errmsg(g->model));
    rsr_model_info info;
    rsr_tokenizer_info tinfo;
    rsr_model_get_info(g->model, &info);
    rsr_tokenizer_get_info(g->tok, &tinfo);
    g->vocab = info.vocab_size;
    g->stop[0] = info.eos_token_id, g->stop[1] = tinfo.eos_token_id, g->stop[2] = tinfo.eot_token_id;
    int32_t n, *ids = malloc(sizeof *ids * (size_t)info.max_positions);
    if (rsr_tokenizer_encode(g->tok, prompt, -1, RSR_ENCODE_ADD_SPECIAL, ids, info.max_positions, &n) != RSR_OK)
        return fail(g->name, "encode", rsr_tokenizer_errmsg(g->tok));
    rsr_status st = rsr_session_eval(g->session, ids, n, g->logits);
    free(ids);
    return st == RSR_OK ? 0 : fail(g->name, "eval", rsr_session_errmsg(g->session));
}

/* The most likely next token: appended to the text and evaluated, unless it ends the text. */
static int step(generator *g) {
    int32_t next = rsr_sample_greedy(g->logits, g->vocab);
    if (next == g->stop[0] || next == g->stop[1] || next == g->stop[2]) {
        g->done = 1;
        return 0;
    }
    size_t n;
    const char *piece = rsr_tokenizer_token_piece(g->tok, next, &n);
    if (rsr_tokenizer_is_special(g->tok, next)) n = 0;
    g->text = realloc(g->text, g->len + n + 1);
    memcpy(g->text + g->len, piece, n);
    g->len += n;
    if (rsr_session_eval(g->session, &next, 1, g->logits) == RSR_OK) return 0;
    return fail(g->name, "eval", rsr_session_errmsg(g->session)); /* the context is full, ... */
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PROMPT TOKENS\n", argv[0]);
        return 2;
    }
    /* The headers give the sizes at compile time: buffers need no allocation. */
    static float tiny_logits[TINY_VOCAB_SIZE], small_logits[SMALL_VOCAB_SIZE];
    generator g[2] = {{.name = TINY_NAME, .logits = tiny_logits}, {.name = SMALL_NAME, .logits = small_logits}};
    if (tiny_model_open(&g[0].model, NULL) != RSR_OK) return fail("tiny", "open", rsr_model_errmsg(g[0].model));
    if (small_model_open(&g[1].model, NULL) != RSR_OK) return fail("small", "open", rsr_model_errmsg(g[1].model));
    for (int i = 0; i < 2; i++)
        if (start(&g[i], argv[1])) return 1;

    for (int t = 0, budget = atoi(argv[2]); t < budget; t++)
        for (int i = 0; i < 2; i++)
            if (!g[i].done && step(&g[i])) return 1;

    for (int i = 0; i < 2; i++) {
        /* One line per model, as rsr-run prints a reply: the text, then a newline unless it has one. */
        printf("%s: %.*s%s", g[i].name, (int)g[i].len, g[i].len ? g[i].text : "",
               g[i].len && g[i].text[g[i].len - 1] == '\n' ? "" : "\n");
        rsr_session_free(g[i].session);
        rsr_model_close(g[i].model);
        free(g[i].text);
    }
    return 0;
}
