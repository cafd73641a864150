/* rsr-run.h — what the parts of rsr-run share: the loaded API, the options, error exits and the
 * next-token step (run_common.c); the modes (run_text.c, run_bench.c) called by main (rsr-run.c). */
#ifndef RSR_RUN_H
#define RSR_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "draft_model.h"
#include "recent_tokens.h"
#include "spec_gate.h"
#include "rsr_dl.h"

extern rsr_api api;

typedef struct run_options {
    const char *model_path;
    const char *prompt; /* -p, -f or stdin */
    long n_gen;         /* tokens to generate; < 0: the mode's default */
    int ignore_eos, echo, special;
    rsr_sampler_params sampler; /* its recent tokens come from each sequence (sample_state) */
    int32_t repeat_last_n;      /* the tokens the repetition penalty looks at */
    uint64_t seed;
    int32_t ctx;
    rsr_session_params session; /* attention kind and Louver policy; max_positions = ctx */
    int stats;                  /* --stats: per step and layer attention figures */
    const char **stop;          /* --stop strings */
    int num_stop;
    const char *chat_template, *chat_template_file, *system;
    const char *template_kwargs;  /* --chat-template-kwargs (a JSON object), or NULL; --no-think sets it */
    bool hide_thoughts;           /* --hide-thoughts: a reply's <think>...</think> is not shown */
    int threads;                  /* the threads the model runs on (-t, or the runtime's default) */
    int head_int8;                /* --head int8: logits from the int8 copy of the LM head (lossy) */
    int repeat, json;             /* --bench: rounds, and JSON output */
    const char *bench_format;     /* --bench with -p lengths: -o md, csv, json or svg (NULL: md, or json with --json) */
    const char *plot_path;        /* --plot FILE.svg: the same tests as a chart, beside the table */
    int parallel;                 /* --parallel: sequences stepped together (0: one) */
    int spec;                     /* --spec-type: speculative decoding (enum spec_type) */
    const char *draft_path;       /* -md/--model-draft: the draft model (--spec-type draft) */
    int32_t draft_max, draft_min; /* --draft-max (0: 16), --draft-min */
    float draft_p_min;            /* --draft-p-min, as given plus 1 (0: not given, the default 0.75) */
} run_options;

void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* fflush(stdout), and an error (exit 1) when stdout cannot take the output (a full disk, a closed pipe) */
void flush_stdout(void);
double now(void);
/* What to do when ctx tokens ran out: raise --ctx, or (ctx being the model's maximum) shorten. */
const char *ctx_advice(int32_t ctx, int32_t model_max);
void check(rsr_status st, rsr_session *s);
/* Evaluates n tokens and writes the logits of the last one: exact, or from the int8 head (--head int8). */
void eval_logits(const run_options *o, rsr_session *s, const int32_t *tokens, int32_t n, float *logits);
/* Appends evaluated tokens to r (recent_tokens.h: o->repeat_last_n of them); the sampler to use
 * after them. */
rsr_sampler_params run_recent_push(recent_tokens *r, const run_options *o, const int32_t *tokens, int32_t n);
/* Speculative decoding (--spec-type, run_common.c): tokens proposed from the text so far (an
 * n-gram found earlier in it, a draft model's greedy continuation, or the model's own MTP layer's)
 * are checked in one
 * evaluation, and the ones the model would have chosen are kept. */
enum spec_type { SPEC_NONE, SPEC_NGRAM, SPEC_DRAFT, SPEC_MTP };
typedef struct spec_draft { /* --spec-type draft: the draft model and its session (draft_model.h) */
    draft_model dm;
    draft_seq q;
    float p_min; /* --draft-p-min */
} spec_draft;
typedef struct spec_state {
    bool on;           /* asked for, greedy, and the model's cache goes back by positions */
    int32_t ctx;       /* the session's positions */
    int32_t draft_max; /* --draft-max, 16 when not given */
    int32_t *hist;     /* the tokens evaluated, as generation without speculation would have them */
    int32_t n_hist, cap_hist;
    int32_t *queue; /* tokens already chosen (all but the last already in the cache) */
    int32_t q_at, q_n;
    int32_t k_next; /* the most the next draft may hold (below --draft-max after misses) */
    bool dense;     /* every step attends densely (a Qwen3.5 hybrid): no Louver limit on a draft's keys */
    long steps, drafted, accepted;
    spec_draft *draft; /* SPEC_DRAFT's, or NULL */
    bool mtp;          /* SPEC_MTP: the session's MTP layer drafts (rsr_session_draft_mtp) */
    float mtp_p_min;   /* --draft-p-min for it (0 when not given) */
    spec_gate gate;    /* ngram-simple: whether a draft pays (spec_gate.h) */
} spec_state;
/* The random state, scratch and recent tokens of the next-token choice. */
typedef struct sample_state {
    uint64_t rng;
    int32_t vocab;
    float *logits, *probs;
    int32_t *ids;
    recent_tokens recent;
    spec_state spec;
} sample_state;
void sample_state_init(sample_state *st, const run_options *o, int32_t vocab);
/* Speculation for a session of model m's of ctx positions when o asks for it and it can be exact
 * (greedy, no penalty, the exact head, a CPU session whose cache goes back by positions); a note
 * on stderr when it cannot. A draft model is opened here and checked against m's vocabulary. */
void spec_start(sample_state *st, const run_options *o, rsr_model *m, const rsr_model_info *info, int32_t ctx);
/* Why speculation cannot be exact with these options on this model (spec_start's note), or NULL. */
const char *spec_refusal(const run_options *o, const rsr_model_info *info);
/* The session's position as generation without speculation would have it. */
int32_t run_position(rsr_session *s, const sample_state *st);
/* Generation stopped: the cache cut back to run_position (tokens chosen ahead are dropped). */
void spec_settle(rsr_session *s, sample_state *st);
/* rsr-run's line about speculation (stderr), when it ran. */
void spec_report(const sample_state *st);
void sample_state_free(sample_state *st);
/* Evaluates n tokens and returns the next one as the options say: greedy through the certified
 * head, sampled through rsr_session_eval_sample, or (--head int8) sampled from the int8 logits. */
int32_t eval_next(const run_options *o, rsr_session *s, const int32_t *tokens, int32_t n, sample_state *st);
/* The model's tokenizer, or an exit that says what (why) needed it. */
rsr_tokenizer *require_tokenizer(rsr_model *m, const char *why);
/* --bench's line on the terminal: what is being measured (NULL: erase it); nothing off a terminal */
/* Bytes the exact model reads per decoded token (run_bench.c): the roofline's numerator */
double exact_bytes_per_token(rsr_model *m, const rsr_model_info *info);
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* --bench -p 512[,...] -n 128[,...]: llama-bench's tests and table (run_bench_grid.c) */
bool bench_is_list(const char *s); /* "512" or "128,512": lengths, not a prompt */
/* one bar of a --bench -p chart (run_plot.c): a test at a thread count, mean and sd of tok/s */
typedef struct plot_bar {
    const char *test;
    int32_t prompt, decode, threads, seqs;
    double mean, sd;
} plot_bar;
void bench_svg(FILE *f, const plot_bar *bars, int n, const char *model, const char *target, int rounds);
typedef struct bench_lists {
    const char *p, *n, *pg, *t, *parallel,
        *depth; /* -p, -n, -pg, -t, --parallel, -d as given (all but p may be NULL) */
} bench_lists;
void run_bench_grid(rsr_model *m, const rsr_model_info *info, const run_options *o, const rsr_model_params *mp,
                    bench_lists l);

/* run_perplexity.c: --perplexity FILE, at most chunks chunks of --ctx tokens (0: all) */
void run_perplexity(rsr_model *m, const rsr_model_info *info, const run_options *o, const char *path, long chunks);

/* run_bench.c: --bench (open_s: how long the model took to open) */
void run_bench(rsr_model *m, const rsr_model_info *info, const run_options *o, const int32_t *prompt, int32_t n_prompt,
               double open_s);

/* run_parallel.c: prompts (ids, and their text or NULL for --tokens) continued o->parallel at a time */
void run_parallel(rsr_model *m, const rsr_model_info *info, rsr_tokenizer *tok, const run_options *o, int32_t **prompts,
                  int32_t *lens, const char **texts, int count);
/* run_text.c: a prompt's continuation as text, and the chat loop */
void run_text(rsr_model *m, rsr_tokenizer *tok, const run_options *o);
void run_chat(rsr_model *m, rsr_tokenizer *tok, const run_options *o);
/* A finished continuation written as run_text streams one: the prompt (with echo), the bytes
 * through the UTF-8 repair and cut at the first stop string, a final newline. */
void print_continuation(const run_options *o, const char *prompt, const char *bytes, size_t n);

#endif
