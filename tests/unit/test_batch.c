/*
 * test_batch.c — sessions stepped together (rsr_batch_eval) get, bit for bit, what each gets alone.
 * Usage: test_batch MODEL.so [louver]
 *
 * Six sequences with prompts of 1 to 150 tokens, each asking for another output (exact logits,
 * the certified greedy token, a sampled token, nothing). Alone, each runs in its own session:
 * its prompt in one call, then DECODE calls of one token each. Together, in a batch of 16 rows:
 * prompts are given in chunks of at most 24 tokens per call beside the others' decode tokens,
 * two sequences join late (their prompts start while the others decode) and one leaves early,
 * and every call mixes prompt chunks with decode tokens; a call also runs with more tokens than
 * the batch's rows (several steps in one call). Every logit, token and tail bound must equal the
 * solo run's, and the sessions' positions must agree. With "louver", the sessions attend through
 * Louver indexes with blocks of 16 keys, so indexes grow in the middle of batched steps.
 * Then the refusals: each leaves every session where it was.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsr_dl.h"

#include "expect.h"

enum { SEQS = 6, DECODE = 12, CHUNK = 24, ROWS = 16, MAX_PROMPT = 160 };

static rsr_api api;
static int32_t vocab;
static rsr_session_params sparams;

typedef struct seq_case {
    int32_t prompt_len, join_at, leave_at; /* join: the call at which its prompt starts; leave: decodes kept */
    int32_t output;
    int32_t prompt[MAX_PROMPT];
    /* what the solo run gave after the prompt and after each decode step */
    int32_t tokens[DECODE + 1];
    float *logits; /* [DECODE + 1][vocab] */
    double tail[DECODE + 1];
} seq_case;

static const rsr_sampler_params sampler = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f};

static rsr_session *new_session(rsr_model *m) {
    rsr_session *s = NULL;
    rsr_status st = api.session_create(m, &sparams, &s);
    if (st != RSR_OK) {
        fprintf(stderr, "session_create: %s\n", api.model_errmsg(m));
        exit(1);
    }
    return s;
}

/* One solo call: the output of the last of the n tokens into slot k of the case. */
static void solo_step(rsr_session *s, seq_case *c, const int32_t *tok, int32_t n, int32_t k, uint64_t *rng) {
    rsr_status st = RSR_OK;
    float *l = c->logits + (size_t)k * (size_t)vocab;
    switch (c->output) {
    case RSR_OUTPUT_LOGITS:
        st = api.session_eval(s, tok, n, l);
        c->tokens[k] = api.sample_greedy(l, vocab);
        break;
    case RSR_OUTPUT_GREEDY: st = api.session_eval_greedy(s, tok, n, &c->tokens[k]); break;
    case RSR_OUTPUT_SAMPLE: st = api.session_eval_sample(s, tok, n, &sampler, rng, &c->tokens[k], &c->tail[k]); break;
    default:
        st = api.session_eval(s, tok, n, NULL);
        c->tokens[k] = (tok[n - 1] * 7 + 3) % vocab; /* the next input, made up: nothing comes back */
    }
    if (st != RSR_OK) {
        fprintf(stderr, "solo eval: %s\n", api.session_errmsg(s));
        exit(1);
    }
}

static void run_solo(rsr_model *m, seq_case *c) {
    rsr_session *s = new_session(m);
    uint64_t rng = 12345;
    solo_step(s, c, c->prompt, c->prompt_len, 0, &rng);
    for (int32_t k = 1; k <= c->leave_at; k++) solo_step(s, c, &c->tokens[k - 1], 1, k, &rng);
    api.session_free(s);
}

/* The batched run: call by call, each sequence contributes its next prompt chunk or its one
 * decode token; outputs are compared with the solo run's as they come. */
static void run_batched(rsr_model *m, seq_case *cs) {
    rsr_batch *b = NULL;
    if (api.batch_create(m, ROWS, &b) != RSR_OK) {
        fprintf(stderr, "batch_create: %s\n", api.batch_errmsg(b));
        exit(1);
    }
    rsr_session *s[SEQS];
    int32_t fed[SEQS] = {0}, decoded[SEQS] = {0}, out_tok[SEQS];
    uint64_t rng[SEQS];
    double tail[SEQS];
    float *logits = malloc(sizeof(float) * (size_t)vocab * SEQS);
    for (int i = 0; i < SEQS; i++) s[i] = new_session(m), rng[i] = 12345;
    int32_t mismatches = 0, steps_with_both = 0;
    for (int call = 0; call < 200; call++) {
        rsr_seq q[SEQS];
        int nq = 0, map[SEQS], prompt_rows = 0, decode_rows = 0;
        for (int i = 0; i < SEQS; i++) {
            seq_case *c = &cs[i];
            if (call < c->join_at || decoded[i] >= c->leave_at) continue;
            rsr_seq *x = &q[nq];
            *x = (rsr_seq){.session = s[i],
                           .output = c->output,
                           .token = &out_tok[nq],
                           .rng = &rng[i],
                           .sampler = &sampler,
                           .tail = &tail[nq],
                           .logits = logits + (size_t)nq * (size_t)vocab};
            if (fed[i] < c->prompt_len) { /* a chunk of the prompt; the last chunk asks for the output */
                int32_t n = c->prompt_len - fed[i];
                /* the first call of the longest prompt goes whole: more tokens than the rows */
                if (n > CHUNK && !(call == c->join_at && c->prompt_len > 100)) n = CHUNK;
                x->tokens = c->prompt + fed[i], x->n = n;
                if (fed[i] + n < c->prompt_len) x->output = RSR_OUTPUT_NONE;
                prompt_rows += n;
            } else {
                x->tokens = &c->tokens[decoded[i]], x->n = 1;
                decode_rows++;
            }
            map[nq++] = i;
        }
        if (!nq) break;
        if (prompt_rows && decode_rows) steps_with_both++;
        if (api.batch_eval(b, q, nq) != RSR_OK) {
            fprintf(stderr, "batch_eval: %s\n", api.batch_errmsg(b));
            exit(1);
        }
        for (int j = 0; j < nq; j++) {
            int i = map[j];
            seq_case *c = &cs[i];
            int prompt_done_now = fed[i] < c->prompt_len;
            if (prompt_done_now) fed[i] += q[j].n;
            if (prompt_done_now && fed[i] < c->prompt_len) continue; /* no output yet */
            int32_t k = prompt_done_now ? 0 : ++decoded[i];
            if (c->output == RSR_OUTPUT_NONE) continue;
            if (c->output == RSR_OUTPUT_LOGITS) {
                const float *want = c->logits + (size_t)k * (size_t)vocab;
                if (memcmp(q[j].logits, want, sizeof(float) * (size_t)vocab)) mismatches++;
                EXPECT(!memcmp(q[j].logits, want, sizeof(float) * (size_t)vocab),
                       "seq %d step %d: logits differ from the solo run's", i, k);
            } else {
                EXPECT(out_tok[j] == c->tokens[k], "seq %d step %d: token %d, solo %d", i, k, out_tok[j], c->tokens[k]);
                if (c->output == RSR_OUTPUT_SAMPLE)
                    EXPECT(tail[j] == c->tail[k], "seq %d step %d: tail %g, solo %g", i, k, tail[j], c->tail[k]);
            }
        }
    }
    EXPECT(steps_with_both > 3, "only %d calls mixed prompt chunks with decode tokens", steps_with_both);
    for (int i = 0; i < SEQS; i++) {
        EXPECT(api.session_position(s[i]) == cs[i].prompt_len + cs[i].leave_at, "seq %d: position %d, want %d", i,
               api.session_position(s[i]), cs[i].prompt_len + cs[i].leave_at);
        EXPECT(decoded[i] == cs[i].leave_at, "seq %d: %d decode steps, want %d", i, decoded[i], cs[i].leave_at);
    }

    /* refusals: nothing moves */
    int32_t pos[SEQS], tok = 1, bad = vocab, t;
    for (int i = 0; i < SEQS; i++) pos[i] = api.session_position(s[i]);
    rsr_seq dup[2] = {{.session = s[0], .tokens = &tok, .n = 1}, {.session = s[0], .tokens = &tok, .n = 1}};
    EXPECT(api.batch_eval(b, dup, 2) == RSR_ERR_INVALID_ARGUMENT, "the same session twice was accepted");
    EXPECT(strstr(api.batch_errmsg(b), "seq 1") != NULL, "message: %s", api.batch_errmsg(b));
    rsr_seq badtok[2] = {{.session = s[1], .tokens = &tok, .n = 1}, {.session = s[2], .tokens = &bad, .n = 1}};
    EXPECT(api.batch_eval(b, badtok, 2) == RSR_ERR_BAD_TOKEN, "a token outside the vocabulary was accepted");
    EXPECT(strstr(api.batch_errmsg(b), "seq 1: token") != NULL, "message: %s", api.batch_errmsg(b));
    rsr_seq noplace = {.session = s[3], .tokens = &tok, .n = 1, .output = RSR_OUTPUT_GREEDY};
    EXPECT(api.batch_eval(b, &noplace, 1) == RSR_ERR_INVALID_ARGUMENT, "no place for the token was accepted");
    int32_t room = sparams.max_positions - pos[4] + 1, *many = calloc((size_t)room, sizeof *many);
    rsr_seq full[2] = {{.session = s[5], .tokens = &tok, .n = 1, .output = RSR_OUTPUT_GREEDY, .token = &t},
                       {.session = s[4], .tokens = many, .n = room}};
    EXPECT(api.batch_eval(b, full, 2) == RSR_ERR_CONTEXT_FULL, "a sequence past its context was accepted");
    free(many);
    for (int i = 0; i < SEQS; i++) EXPECT(api.session_position(s[i]) == pos[i], "seq %d moved on a refused call", i);
    EXPECT(api.batch_eval(b, NULL, 0) == RSR_ERR_INVALID_ARGUMENT, "an empty call was accepted");
    rsr_batch *wide = NULL;
    EXPECT(api.batch_create(m, RSR_BATCH_MAX + 1, &wide) == RSR_ERR_INVALID_ARGUMENT, "rows past the most accepted");
    EXPECT(strstr(api.batch_errmsg(wide), "rows") != NULL, "message: %s", api.batch_errmsg(wide));
    api.batch_free(wide);

    for (int i = 0; i < SEQS; i++) api.session_free(s[i]);
    api.batch_free(b);
    free(logits);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_batch MODEL.so [louver]\n");
        return 2;
    }
    char err[512];
    if (rsr_api_load(&api, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rsr_model *m = NULL;
    rsr_model_params mp = {0}; /* the defaults */
    mp.device = RSR_DEVICE_CPU;
    if (api.model_open(&m, &mp) != RSR_OK) {
        fprintf(stderr, "open: %s\n", api.model_errmsg(m));
        return 1;
    }
    rsr_model_info info;
    api.model_get_info(m, &info);
    vocab = info.vocab_size;
    sparams = (rsr_session_params){0};
    sparams.max_positions = 256 < info.max_positions ? 256 : info.max_positions;
    sparams.batch = 8; /* the sessions' own steps: prompts of more tokens go in several */
    if (argc > 2 && !strcmp(argv[2], "louver")) {
        sparams.attention = RSR_ATTENTION_LOUVER;
        sparams.louver_block = 16;
    }

    static const int32_t lens[SEQS] = {1, 7, 150, 40, 3, 70}, joins[SEQS] = {0, 0, 0, 2, 5, 3},
                         leaves[SEQS] = {DECODE, DECODE, DECODE, DECODE, 4, DECODE};
    static const int32_t outputs[SEQS] = {RSR_OUTPUT_GREEDY, RSR_OUTPUT_LOGITS, RSR_OUTPUT_SAMPLE,
                                          RSR_OUTPUT_GREEDY, RSR_OUTPUT_NONE,   RSR_OUTPUT_SAMPLE};
    seq_case *cs = calloc(SEQS, sizeof *cs);
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < SEQS; i++) {
        cs[i].prompt_len = lens[i], cs[i].join_at = joins[i], cs[i].leave_at = leaves[i], cs[i].output = outputs[i];
        for (int32_t t = 0; t < lens[i]; t++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            cs[i].prompt[t] = (int32_t)(x % (uint64_t)vocab);
        }
        cs[i].logits = calloc((size_t)(DECODE + 1) * (size_t)vocab, sizeof(float));
        run_solo(m, &cs[i]);
    }
    run_batched(m, cs);
    for (int i = 0; i < SEQS; i++) free(cs[i].logits);
    free(cs);
    api.model_close(m);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
