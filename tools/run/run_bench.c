/*
 * run_bench.c — rsr-run --bench: prefill and decode speed as a user gets it, measured so that a
 * noisy machine cannot fool it. Every round runs every phase once, side by side: prefill of the
 * prompt, decode through the certified greedy head, decode with the full logits, sampled decode
 * (--temp, default 0.8) and the streaming read bandwidth the roofline is taken against.
 * --repeat N alternates the rounds N times and reports the median, min and max of each phase;
 * --json prints the same as one JSON object. The first round also checks what must agree (the
 * full logits' argmax gives the greedy head's tokens; one token per step gives the batched
 * prefill's token) and measures the int8 head's error against its certified bound.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bandwidth.h"
#include "rsr-run.h"

/* What is being measured, on one line of the terminal that the next overwrites (minutes pass on a
 * large model); nothing when stderr is not a terminal, so the figures alone reach a pipe or a log.
 * NULL: erase the line. */
void bench_progress(const char *fmt, ...) {
    static int tty = -1;
    if (tty < 0) tty = isatty(2);
    if (!tty) return;
    fputs("\r\033[K", stderr);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs("rsr-run: --bench: ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fflush(stderr);
}

/* Bytes the exact model reads per decoded token: every ternary weight at 2 bits and the 16-bit
 * LM head (what the published checkpoints hold); the KV cache and activations are left out. */
double exact_bytes_per_token(rsr_model *m, const rsr_model_info *info) {
    double bytes = 2.0 * (double)info->vocab_size * (double)info->hidden_size;
    for (int32_t i = 0; i < info->num_matrices; i++) {
        rsr_matrix_info mi;
        if (api.model_matrix_info(m, i, &mi) == RSR_OK) bytes += (double)mi.rows * (double)mi.cols / 4;
    }
    return bytes;
}

enum { PH_PREFILL, PH_GREEDY, PH_FULL, PH_SAMPLED, PH_BW, PH_PAR_PREFILL, PH_PAR_DECODE, NUM_PHASES };
static const char *const phase_key[NUM_PHASES] = {
    "prefill_tok_s", "decode_greedy_tok_s",    "decode_full_logits_tok_s", "decode_sampled_tok_s",
    "read_bw_gb_s",  "parallel_prefill_tok_s", "parallel_decode_tok_s"};

typedef struct stat3 {
    double median, min, max;
} stat3;
static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static stat3 stats_of(const double *v, int n) {
    double *c = malloc(sizeof *c * (size_t)n);
    memcpy(c, v, sizeof *c * (size_t)n);
    qsort(c, (size_t)n, sizeof *c, by_value);
    stat3 s = {n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2, c[0], c[n - 1]};
    free(c);
    return s;
}

/* What the first round checks and measures once. */
typedef struct once {
    double warmup_s; /* the warm-up's greedy step, with the head's copy a model makes at its first greedy token */
    double one_per_step_tok_s, q8_tok_s, q8_max_err, q8_bound, lo, hi, sampled_tail;
    int32_t q8_agree, q8_compared;
    bool q8;
} once;

/* Decodes `decode` tokens after the prompt by one of the heads; returns seconds. The greedy phase
 * of the first round records the tokens (record); every other greedy and full-logit step must
 * give tokens[i + 1]. The full logits of the first `keep` steps go to exact. */
static double decode_phase(int phase, bool record, rsr_session *s, const rsr_model_info *info, const run_options *o,
                           const int32_t *prompt, int32_t n_prompt, int32_t *tokens, int32_t decode, float *logits,
                           float *exact, int32_t keep, once *w) {
    check(api.session_reset(s), s);
    int32_t first;
    check(api.session_eval_greedy(s, prompt, n_prompt, &first), s);
    if (record) tokens[0] = first;
    const size_t V = (size_t)info->vocab_size;
    rsr_sampler_params sp = o->sampler;
    if (!(sp.temperature > 0)) sp.temperature = 0.8f;
    uint64_t rng = o->seed * 0x9e3779b97f4a7c15u + 1;
    double t = now();
    for (int32_t i = 0; i < decode; i++) {
        int32_t tok = tokens[i], next;
        if (phase == PH_GREEDY) {
            check(api.session_eval_greedy(s, &tok, 1, &next), s);
            if (record) tokens[i + 1] = next;
        } else if (phase == PH_FULL) {
            float *l = i < keep ? exact + (size_t)i * V : logits;
            check(api.session_eval(s, &tok, 1, l), s);
            next = api.sample_greedy(l, info->vocab_size);
        } else {
            double tail;
            check(api.session_eval_sample(s, &tok, 1, &sp, &rng, &next, &tail), s);
            w->sampled_tail = fmax(w->sampled_tail, tail);
            continue; /* sampled tokens differ; the position advances the same */
        }
        if (next != tokens[i + 1])
            die("--bench: decode step %d: the %s gives token %d, the greedy head %d", i,
                phase == PH_FULL ? "full logits' argmax" : "greedy head again", next, tokens[i + 1]);
    }
    return now() - t;
}

/* --parallel N: N sessions from the same prompt stepped together through one batch (rsr_batch_eval):
 * their prompts in steps of RSR_BATCH_MAX rows, then one decode token of each per step through the
 * certified greedy head. Every sequence must give the solo run's greedy tokens. Aggregate tok/s
 * of the prefill and of the decode into *prefill, *decode. */
typedef struct parallel_set {
    int n;
    rsr_batch *b;
    rsr_session **s;
    int32_t *cur, *next;
    rsr_seq *q;
} parallel_set;

static void parallel_open(parallel_set *p, rsr_model *m, const run_options *o, int32_t positions) {
    p->n = o->parallel;
    p->s = calloc((size_t)p->n, sizeof *p->s);
    p->cur = calloc((size_t)p->n, sizeof *p->cur), p->next = calloc((size_t)p->n, sizeof *p->next);
    p->q = calloc((size_t)p->n, sizeof *p->q);
    if (!p->s || !p->cur || !p->next || !p->q) die("out of memory");
    if (api.batch_create(m, 0, &p->b) != RSR_OK) die("--parallel: %s", api.batch_errmsg(p->b));
    rsr_session_params sp = o->session;
    sp.max_positions = positions, sp.batch = 1; /* the batch holds the step's activations */
    for (int j = 0; j < p->n; j++)
        if (api.session_create(m, &sp, &p->s[j]) != RSR_OK)
            die("--parallel %d: session %d: %s", p->n, j + 1, api.model_errmsg(m));
}

static void parallel_close(parallel_set *p) {
    for (int j = 0; j < p->n; j++) api.session_free(p->s[j]);
    api.batch_free(p->b);
    free(p->s), free(p->cur), free(p->next), free(p->q);
}

static void parallel_phase(parallel_set *p, const int32_t *prompt, int32_t n_prompt, const int32_t *tokens,
                           int32_t decode, double *prefill, double *decode_tok_s) {
    for (int j = 0; j < p->n; j++) {
        check(api.session_reset(p->s[j]), p->s[j]);
        p->q[j] = (rsr_seq){
            .session = p->s[j], .tokens = prompt, .n = n_prompt, .output = RSR_OUTPUT_GREEDY, .token = &p->next[j]};
    }
    double t = now();
    if (api.batch_eval(p->b, p->q, p->n) != RSR_OK) die("--parallel: %s", api.batch_errmsg(p->b));
    *prefill = (double)p->n * n_prompt / (now() - t);
    t = now();
    for (int32_t i = 0; i <= decode; i++) {
        for (int j = 0; j < p->n; j++)
            if (p->next[j] != tokens[i])
                die("--bench --parallel: sequence %d's token %d is %d, the solo run's %d", j + 1, i, p->next[j],
                    tokens[i]);
        if (i == decode) break;
        for (int j = 0; j < p->n; j++) {
            p->cur[j] = p->next[j];
            p->q[j].tokens = &p->cur[j], p->q[j].n = 1;
        }
        if (api.batch_eval(p->b, p->q, p->n) != RSR_OK) die("--parallel: %s", api.batch_errmsg(p->b));
    }
    *decode_tok_s = decode ? (double)p->n * decode / (now() - t) : 0;
}

/* The int8 head's decode: speed, and its error against the exact logits beside its bound. */
static void int8_phase(rsr_session *s, const rsr_model_info *info, const int32_t *prompt, int32_t n_prompt,
                       const int32_t *tokens, int32_t decode, float *logits, const float *exact, int32_t keep,
                       once *w) {
    const size_t V = (size_t)info->vocab_size;
    check(api.session_reset(s), s);
    check(api.session_eval(s, prompt, n_prompt, logits), s);
    w->lo = INFINITY, w->hi = -INFINITY, w->q8 = true, w->q8_compared = keep;
    double spent = 0;
    for (int32_t i = 0; i < decode; i++) {
        double b, t = now();
        check(api.session_eval_int8(s, &tokens[i], 1, logits, &b), s);
        spent += now() - t;
        w->q8_bound = fmax(w->q8_bound, b);
        if (i >= keep) continue;
        const float *e = exact + (size_t)i * V;
        for (size_t v = 0; v < V; v++) {
            w->q8_max_err = fmax(w->q8_max_err, fabs((double)logits[v] - (double)e[v]));
            w->lo = fmin(w->lo, e[v]), w->hi = fmax(w->hi, e[v]);
        }
        w->q8_agree += api.sample_greedy(logits, info->vocab_size) == api.sample_greedy(e, info->vocab_size);
    }
    w->q8_tok_s = decode / spent;
}

static void print_text(const rsr_model_info *info, const run_options *o, int32_t n_prompt, int32_t decode, int rounds,
                       double open_s, const stat3 *st, const once *w, double bytes, bool on_gpu) {
    printf("model: %s, %d thread%s, opened in %.2f s; constants in %s\n", info->device, info->num_threads,
           info->num_threads == 1 ? "" : "s", open_s, info->constants);
    printf("warm-up: %d tokens to a greedy token in %.2f s, with the head's copy made at a model's first one\n",
           n_prompt < 8 ? n_prompt : 8, w->warmup_s);
    const char *span = rounds > 1 ? " (median of %d rounds; min %.2f, max %.2f)" : "";
    printf("prefill %d tokens: %.2f tok/s (%d per step)", n_prompt, st[PH_PREFILL].median,
           o->session.batch ? o->session.batch : RSR_BATCH_MAX);
    printf(span, rounds, st[PH_PREFILL].min, st[PH_PREFILL].max);
    printf("; one per step %.2f tok/s\n", w->one_per_step_tok_s);
    if (!decode) return;
    static const char *const what[NUM_PHASES] = {"", "certified greedy head", "full logits", "sampled (--temp)"};
    for (int p = PH_GREEDY; p <= PH_SAMPLED; p++) {
        printf("decode %d tokens, %-22s %.2f tok/s (%.2f ms/token)", decode, what[p], st[p].median, 1e3 / st[p].median);
        printf(span, rounds, st[p].min, st[p].max);
        if (p == PH_SAMPLED)
            printf("; temperature %g, exact mass left out <= %.3g",
                   o->sampler.temperature > 0 ? o->sampler.temperature : 0.8, w->sampled_tail);
        putchar('\n');
    }
    if (o->parallel > 1) {
        printf("parallel %d: prefill %d tokens each, %.2f tok/s together", o->parallel, n_prompt,
               st[PH_PAR_PREFILL].median);
        printf(span, rounds, st[PH_PAR_PREFILL].min, st[PH_PAR_PREFILL].max);
        printf("; decode %d tokens each, %.2f tok/s together", decode, st[PH_PAR_DECODE].median);
        printf(span, rounds, st[PH_PAR_DECODE].min, st[PH_PAR_DECODE].max);
        printf("; every sequence's tokens the solo run's\n");
        printf("parallel %d: aggregate decode %.2f tok/s, one sequence %.2f tok/s (%.2fx)\n", o->parallel,
               st[PH_PAR_DECODE].median, st[PH_GREEDY].median, st[PH_PAR_DECODE].median / st[PH_GREEDY].median);
    }
    if (w->q8 && w->q8_bound == 0)
        printf("decode %d tokens, int8 logits: the exact logits (bound 0: the model has no int8 head copy, rsrc "
               "--no-greedy-head, or no step had anything to bound)\n",
               decode);
    else if (w->q8)
        printf(
            "decode %d tokens, int8 logits (lossy):   %.2f tok/s; largest logit error %.3g (certified bound %.3g; the "
            "exact logits span %.3g..%.3g), argmax as the exact logits' at %d of %d steps\n",
            decode, w->q8_tok_s, w->q8_max_err, w->q8_bound, w->lo, w->hi, w->q8_agree, w->q8_compared);
    if (on_gpu) {
        printf(
            "roofline: the exact model reads %.3f GB per token: %.0f GB/s at the certified greedy decode's %.2f ms per "
            "token (bench_gpu measures the GPU's read bandwidth to compare)\n",
            bytes / 1e9, bytes / 1e9 * st[PH_GREEDY].median, 1e3 / st[PH_GREEDY].median);
    } else if (st[PH_BW].median > 0) {
        double roof = st[PH_BW].median * 1e9 / bytes;
        printf(
            "roofline: the exact model reads %.3f GB per token (2-bit weights, 16-bit head); streaming read measured "
            "now %.1f GB/s (%d thread%s): at most %.1f tok/s; of it: greedy %.2f, full logits %.2f, sampled %.2f\n",
            bytes / 1e9, st[PH_BW].median, info->num_threads, info->num_threads == 1 ? "" : "s", roof,
            st[PH_GREEDY].median / roof, st[PH_FULL].median / roof, st[PH_SAMPLED].median / roof);
    }
}

static void json_string(const char *key, const char *v) {
    printf("\"%s\": \"", key);
    for (; *v; v++)
        if (*v == '"' || *v == '\\')
            printf("\\%c", *v);
        else if ((unsigned char)*v < 0x20)
            printf("\\u%04x", *v);
        else
            putchar(*v);
    printf("\", ");
}

static void print_json(const rsr_model_info *info, const run_options *o, int32_t n_prompt, int32_t decode, int rounds,
                       double open_s, double runs[][NUM_PHASES], const stat3 *st, const once *w, double bytes) {
    fputs("{", stdout);
    json_string("model", o->model_path);
    json_string("target", info->target);
    json_string("device", info->device);
    json_string("constants", info->constants);
    printf("\"threads\": %d, \"open_s\": %.4f, \"warmup_s\": %.4f,\n", info->num_threads, open_s, w->warmup_s);
    printf(" \"prompt_tokens\": %d, \"decode_tokens\": %d, \"rounds\": %d, \"parallel\": %d,\n", n_prompt, decode,
           rounds, o->parallel > 1 ? o->parallel : 1);
    printf(" \"temperature\": %g, \"sampled_tail_bound\": %.6g, \"one_per_step_prefill_tok_s\": %.4f,\n",
           o->sampler.temperature > 0 ? o->sampler.temperature : 0.8, w->sampled_tail, w->one_per_step_tok_s);
    printf(" \"exact_gb_per_token\": %.6f,\n", bytes / 1e9);
    for (int p = 0; p < NUM_PHASES; p++) {
        printf(" \"%s\": {\"median\": %.4f, \"min\": %.4f, \"max\": %.4f, \"runs\": [", phase_key[p], st[p].median,
               st[p].min, st[p].max);
        for (int r = 0; r < rounds; r++) printf("%s%.4f", r ? ", " : "", runs[r][p]);
        printf("]}%s\n", p + 1 < NUM_PHASES ? "," : "");
    }
    puts("}");
}

void run_bench(rsr_model *m, const rsr_model_info *info, const run_options *o, const int32_t *prompt, int32_t n_prompt,
               double open_s) {
    rsr_session *s;
    rsr_session_params sp = o->session;
    if (api.session_create(m, &sp, &s) != RSR_OK) die("%s", api.model_errmsg(m));
    int32_t limit = o->ctx ? o->ctx : info->max_positions;
    int32_t *synthetic = NULL;
    if (!prompt) {
        n_prompt = 128 < limit / 2 ? 128 : limit / 2;
        prompt = synthetic = malloc(sizeof *synthetic * (size_t)n_prompt);
        for (int32_t i = 0; i < n_prompt; i++) synthetic[i] = (int32_t)((i * 2654435761u) % (uint32_t)info->vocab_size);
    }
    int32_t decode = o->n_gen >= 0 ? (int32_t)o->n_gen : 64;
    if (n_prompt >= limit) die("--bench: the prompt has %d tokens, the context only %d", n_prompt, limit);
    if (n_prompt + decode > limit) decode = limit - n_prompt;
    const size_t V = (size_t)info->vocab_size;
    const bool on_gpu = !strncmp(info->device, "gpu", 3);
    /* the exact logits of the first steps, kept for the int8 head's comparison (at most 64, 0.5 MB
     * each for a 128K vocabulary), written once before any timed loop so that no page is first
     * touched inside one */
    const int32_t keep = on_gpu ? 0 : decode < 64 ? decode : 64;
    float *logits = malloc(sizeof *logits * V), *exact = malloc(sizeof *exact * V * (size_t)(keep > 0 ? keep : 1));
    int32_t *tokens = malloc(sizeof *tokens * (size_t)(decode + 1));
    if (!logits || !exact || !tokens) die("out of memory");
    memset(exact, 0, sizeof *exact * V * (size_t)(keep > 0 ? keep : 1));
    once w = {0};
    /* warm-up, greedy: a model's first greedy token makes its certified head's copy (seconds for a
       large vocabulary), timed here apart from the rounds */
    double t0 = now();
    int32_t warm;
    check(api.session_eval_greedy(s, prompt, n_prompt < 8 ? n_prompt : 8, &warm), s);
    w.warmup_s = now() - t0;

    const int rounds = o->repeat > 0 ? o->repeat : 1;
    double(*runs)[NUM_PHASES] = calloc((size_t)rounds, sizeof *runs);
    const double bytes = exact_bytes_per_token(m, info);
    parallel_set par = {0};
    if (o->parallel > 1) {
        if (on_gpu)
            die("--parallel: batches run on the CPU, and %s opened on the GPU: add --device cpu", o->model_path);
        parallel_open(&par, m, o, n_prompt + decode + 1);
    }
    static const char *const phase_name[NUM_PHASES] = {"prefill", "decode (greedy head)", "decode (full logits)",
                                                       "decode (sampled)", "read bandwidth"};
    for (int r = 0; r < rounds; r++) {
        bench_progress("round %d of %d: %s of %d tokens", r + 1, rounds, phase_name[PH_PREFILL], n_prompt);
        check(api.session_reset(s), s);
        double t = now();
        int32_t first;
        check(api.session_eval_greedy(s, prompt, n_prompt, &first), s);
        runs[r][PH_PREFILL] = n_prompt / (now() - t);
        if (r == 0)
            tokens[0] = first;
        else if (first != tokens[0])
            die("--bench: round %d's prefill gives token %d, the first round's %d", r + 1, first, tokens[0]);
        for (int p = PH_GREEDY; decode && p <= PH_SAMPLED; p++) { /* the first greedy phase records the tokens */
            bench_progress("round %d of %d: %s of %d tokens (prefill %.1f tok/s)", r + 1, rounds, phase_name[p], decode,
                           runs[r][PH_PREFILL]);
            runs[r][p] = decode / decode_phase(p, r == 0 && p == PH_GREEDY, s, info, o, prompt, n_prompt, tokens,
                                               decode, logits, exact, r == 0 ? keep : 0, &w);
        }
        bench_progress("round %d of %d: %s", r + 1, rounds, phase_name[PH_BW]);
        runs[r][PH_BW] = on_gpu ? 0 : read_bandwidth(info->num_threads);
        if (o->parallel > 1) {
            bench_progress("round %d of %d: %d sequences together", r + 1, rounds, o->parallel);
            parallel_phase(&par, prompt, n_prompt, tokens, decode, &runs[r][PH_PAR_PREFILL], &runs[r][PH_PAR_DECODE]);
        }
    }
    bench_progress("the int8 head's error, and the prefill one token per step");
    if (o->parallel > 1) parallel_close(&par);
    if (decode && !on_gpu) int8_phase(s, info, prompt, n_prompt, tokens, decode, logits, exact, keep, &w);
    /* the same prefill one token per step (the batched kernels' gain), which must agree */
    rsr_session *s1;
    sp.batch = 1;
    if (api.session_create(m, &sp, &s1) != RSR_OK) die("%s", api.model_errmsg(m));
    double t = now();
    int32_t first1;
    check(api.session_eval_greedy(s1, prompt, n_prompt, &first1), s1);
    w.one_per_step_tok_s = n_prompt / (now() - t);
    api.session_free(s1);
    if (first1 != tokens[0])
        die("--bench: the prefill one token per step gives token %d, batched %d", first1, tokens[0]);

    bench_progress(NULL);
    stat3 st[NUM_PHASES];
    for (int p = 0; p < NUM_PHASES; p++) {
        double v[rounds];
        for (int r = 0; r < rounds; r++) v[r] = runs[r][p];
        st[p] = stats_of(v, rounds);
    }
    if (o->json)
        print_json(info, o, n_prompt, decode, rounds, open_s, runs, st, &w, bytes);
    else
        print_text(info, o, n_prompt, decode, rounds, open_s, st, &w, bytes, on_gpu);
    free(runs), free(tokens), free(exact), free(logits), free(synthetic);
    api.session_free(s);
}
