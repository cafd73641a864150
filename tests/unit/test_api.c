/*
 * test_api.c — the contracts of the runtime's public C API, on a compiled model.
 * Usage: test_api MODEL.so
 *
 * Every function validates its arguments and answers with a status; errors leave a message on
 * the handle; a session's context limit is an error, not memory corruption; reset and re-eval
 * reproduce the same logits; two sessions are independent; sampling honours its parameters.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsr_dl.h"

#include "expect.h"

/* The sampler's rules written plainly (a full sort; no filters: index order), to compare rsr_sample with. */
static const float *ref_p;
static int ref_cmp(const void *x, const void *y) {
    float a = ref_p[*(const int32_t *)x], b = ref_p[*(const int32_t *)y];
    if (a != b) return a < b ? 1 : -1;
    return *(const int32_t *)x - *(const int32_t *)y;
}
static int32_t ref_sample(const float *logits, int32_t V, const rsr_sampler_params *sp, uint64_t *rng, float *p,
                          int32_t *ids) {
    float *l = malloc(sizeof(float) * (size_t)V); /* the logits, penalised */
    for (int32_t i = 0; i < V; i++) {
        l[i] = logits[i];
        int seen = 0;
        for (int32_t j = 0; sp->repeat_penalty > 0 && sp->repeat_penalty != 1 && j < sp->n_recent; j++)
            seen |= sp->recent[j] == i;
        if (seen) l[i] = l[i] > 0 ? l[i] / sp->repeat_penalty : l[i] * sp->repeat_penalty;
    }
    int32_t best = 0;
    for (int32_t i = 1; i < V; i++) best = l[i] > l[best] ? i : best;
    if (!(sp->temperature > 0)) return free(l), best;
    float m = l[best];
    double sum = 0;
    int32_t keep = 0; /* the rows of weight at least 2^-24 / V, in index order */
    for (int32_t i = 0; i < V; i++) {
        p[i] = expf((l[i] - m) / sp->temperature);
        if (p[i] >= (float)(0x1p-24 / V * (1 - 0x1p-12))) sum += p[i], ids[keep++] = i;
    }
    for (int32_t i = 0; i < V; i++) p[i] = (float)(p[i] / sum);
    free(l);
    if ((sp->top_k > 0 && sp->top_k < keep) || sp->top_p < 1) { /* a top-k of every row is no filter */
        ref_p = p;
        qsort(ids, (size_t)keep, sizeof *ids, ref_cmp);
        if (sp->top_k > 0 && sp->top_k < keep) keep = sp->top_k;
        double cum = 0;
        for (int32_t i = 0; sp->top_p < 1 && i < keep; i++)
            if ((cum += p[ids[i]]) >= sp->top_p) keep = i + 1;
    }
    if (sp->min_p > 0) {
        int32_t k = 0;
        for (int32_t i = 0; i < keep; i++)
            if (p[ids[i]] >= p[best] * sp->min_p) ids[k++] = ids[i];
        keep = k;
    }
    double total = 0, cum = 0;
    for (int32_t i = 0; i < keep; i++) total += p[ids[i]];
    uint64_t x = *rng ? *rng : 0x9e3779b97f4a7c15u; /* the runtime's xorshift64* */
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27, *rng = x;
    double r = (double)((x * 0x2545f4914f6cdd1du) >> 11) * 0x1.0p-53 * total;
    for (int32_t i = 0; i < keep; i++)
        if (r < (cum += p[ids[i]])) return ids[i];
    return ids[keep - 1];
}

/* rsr_sample against the plain rules, and rsr_session_eval_sample against rsr_sample on the full
 * exact logits (s and s2: two sessions of the model; a, probs, ids: vocabulary-sized scratch). */
static void check_sampling(rsr_api api, rsr_session *s, rsr_session *s2, int32_t V, const int32_t *toks,
                           int32_t bad_tok, float *a, float *probs, int32_t *ids) {
    /* rsr_sample against the plain rules: the same token for the same random state */
    const int32_t recent[] = {3, 17, 3, 1, 250, -5, 1 << 30, 99}; /* repeats and ids outside the vocabulary */
    const rsr_sampler_params rules[] = {
        {.temperature = 0.7f, .top_k = 0, .top_p = 1},
        {.temperature = 2, .top_k = 5, .top_p = 1},
        {.temperature = 1, .top_k = 0, .top_p = 0.9f},
        {.temperature = 4, .top_k = 40, .top_p = 0.5f},
        {.temperature = 1.5f, .top_k = 1, .top_p = 1},
        {.temperature = 0.3f, .top_k = 0, .top_p = 1}, /* most rows weigh below 2^-24 / V: the cut */
        {.temperature = 0.3f, .top_k = 1 << 30, .top_p = 1},
        {.temperature = 0.4f, .top_k = 100, .top_p = 0.999f},
        {.temperature = 3, .top_k = 0, .top_p = 1, .min_p = 0.05f},
        {.temperature = 2, .top_k = 30, .top_p = 0.9f, .min_p = 0.3f},
        {.temperature = 1, .top_k = 0, .top_p = 1, .repeat_penalty = 1.3f, .recent = recent, .n_recent = 8},
        {.temperature = 0, .top_k = 0, .top_p = 1, .repeat_penalty = 5, .recent = recent, .n_recent = 8},
        {.temperature = 0, .top_k = 0, .top_p = 1, .repeat_penalty = 0.5f, .recent = recent, .n_recent = 8},
        {.temperature = 2,
         .top_k = 10,
         .top_p = 0.95f,
         .min_p = 0.1f,
         .repeat_penalty = 1.1f,
         .recent = recent,
         .n_recent = 5},
    };
    float *rp = malloc(sizeof(float) * (size_t)V);
    int32_t *rids = malloc(sizeof(int32_t) * (size_t)V);
    for (size_t k = 0; k < sizeof rules / sizeof *rules; k++) {
        uint64_t r1 = 7 + k, r2 = 7 + k;
        int32_t agree = 0;
        for (int i = 0; i < 200; i++) {
            for (int32_t v = 0; v < V; v++) a[v] = (float)((v * 2654435761u + (uint32_t)i * 40503u) % 1000) / 100.0f;
            agree += api.sample(a, V, &rules[k], &r1, probs, ids) == ref_sample(a, V, &rules[k], &r2, rp, rids);
        }
        EXPECT(agree == 200, "rules %zu: rsr_sample agrees with the plain rules at %d of 200 draws", k, agree);
    }
    free(rp), free(rids);

    /* rsr_session_eval_sample draws what rsr_sample draws from the full exact logits (the rows it
     * leaves out weigh at most 2^-24 together, so a draw could differ only that close to a
     * boundary), and its certified tail is at most 2^-24 */
    int32_t st_tok = -1;
    uint64_t rng0 = 1;
    EXPECT(api.session_reset(s) == RSR_OK && api.session_reset(s2) == RSR_OK, "reset both");
    EXPECT(api.session_eval_sample(s, toks, 1, &rules[0], &rng0, NULL, NULL) == RSR_ERR_INVALID_ARGUMENT,
           "eval_sample(NULL token)");
    EXPECT(api.session_eval_sample(s, &bad_tok, 1, &rules[0], &rng0, &st_tok, NULL) == RSR_ERR_BAD_TOKEN &&
               api.session_position(s) == 0,
           "eval_sample of a bad token must not advance");
    /* the repetition penalty over the tokens so far (the context holds 8: steps below) */
    int32_t seen[8];
    const rsr_sampler_params temps[] = {
        {.temperature = 0.5f, .top_k = 0, .top_p = 1},
        {.temperature = 1, .top_k = 0, .top_p = 1},
        {.temperature = 3, .top_k = 0, .top_p = 1},
        {.temperature = 10, .top_k = 0, .top_p = 1},
        {.temperature = 2, .top_k = 3, .top_p = 1},
        {.temperature = 1, .top_k = 0, .top_p = 0.8f},
        {.temperature = 0, .top_k = 0, .top_p = 1},
        {.temperature = 2, .top_k = 0, .top_p = 1, .min_p = 0.2f},
        {.temperature = 0, .top_k = 0, .top_p = 1, .repeat_penalty = 50, .recent = seen},
        {.temperature = 3, .top_k = 0, .top_p = 1, .repeat_penalty = 4, .recent = seen},
        {.temperature = 1, .top_k = 8, .top_p = 0.9f, .min_p = 0.05f, .repeat_penalty = 1.5f, .recent = seen},
    };
    for (size_t k = 0; k < sizeof temps / sizeof *temps; k++) {
        uint64_t r1 = 11 + k, r2 = 11 + k;
        EXPECT(api.session_reset(s) == RSR_OK && api.session_reset(s2) == RSR_OK, "reset both");
        int32_t t1 = -1, t2 = -1, cur = toks[0], agree = 0, steps = 8; /* the context of the test model */
        double tail = -1, worst = 0;
        rsr_sampler_params sp = temps[k];
        for (int step = 0; step < steps; step++) {
            seen[step] = cur, sp.n_recent = sp.recent ? step + 1 : 0;
            EXPECT(api.session_eval_sample(s, &cur, 1, &sp, &r1, &t1, &tail) == RSR_OK, "eval_sample: %s",
                   api.session_errmsg(s));
            EXPECT(api.session_eval(s2, &cur, 1, a) == RSR_OK, "eval");
            t2 = api.sample(a, V, &sp, &r2, probs, ids);
            agree += t1 == t2, worst = fmax(worst, tail);
            cur = t2;
        }
        EXPECT(agree == steps,
               "temperature %g top-k %d top-p %g min-p %g penalty %g: the sampling head drew the full logits' "
               "token at %d of %d steps",
               temps[k].temperature, temps[k].top_k, temps[k].top_p, temps[k].min_p, temps[k].repeat_penalty, agree,
               steps);
        EXPECT(worst >= 0 && worst <= 0x1p-24, "temperature %g: tail bound %g", temps[k].temperature, worst);
    }
}

/* Opening: the refusals, a model of 2 threads, its info and its manifest. */
static rsr_model *check_open(rsr_api api, rsr_model_info *out) {
    /* opening */
    EXPECT(api.model_open(NULL, NULL) == RSR_ERR_INVALID_ARGUMENT, "model_open(NULL)");
    rsr_model *m = NULL;
    rsr_model_params bad = {.num_threads = -3};
    EXPECT(api.model_open(&m, &bad) == RSR_ERR_INVALID_ARGUMENT, "negative thread count accepted");
    EXPECT(m && strstr(api.model_errmsg(m), "num_threads"), "message names the parameter: '%s'", api.model_errmsg(m));
    /* a model that failed to open refuses every later use with the same status */
    rsr_session *refused = NULL;
    rsr_model_info no_info;
    rsr_matrix_info no_mi;
    int8_t x0[1] = {0};
    int32_t y0[1];
    EXPECT(api.session_create(m, NULL, &refused) == RSR_ERR_INVALID_ARGUMENT && !refused, "session of a failed open");
    EXPECT(api.model_get_info(m, &no_info) == RSR_ERR_INVALID_ARGUMENT, "get_info of a failed open");
    EXPECT(api.model_matrix_info(m, 0, &no_mi) == RSR_ERR_INVALID_ARGUMENT, "matrix_info of a failed open");
    EXPECT(api.model_matvec_int(m, 0, x0, y0) == RSR_ERR_INVALID_ARGUMENT, "matvec of a failed open");
    api.model_close(m);
    rsr_model_params too_many = {.num_threads = 1025};
    EXPECT(api.model_open(&m, &too_many) == RSR_ERR_INVALID_ARGUMENT, "1025 threads accepted");
    api.model_close(m);
    api.model_close(NULL);
    EXPECT(strcmp(api.model_errmsg(NULL), "") != 0, "errmsg of a NULL model says so");
    EXPECT(strcmp(api.status_to_string((rsr_status)99), "unknown status") == 0, "unknown status");
    rsr_model_params mp = {.num_threads = 2};
    EXPECT(api.model_open(&m, &mp) == RSR_OK, "model_open: %s", api.model_errmsg(m));
    rsr_model_info info = {0};
    EXPECT(api.model_get_info(m, NULL) == RSR_ERR_INVALID_ARGUMENT, "get_info(NULL)");
    EXPECT(api.model_get_info(m, &info) == RSR_OK, "get_info");
    EXPECT(info.num_matrices == info.num_layers * 7, "7 matrices per layer, got %d", info.num_matrices);
    EXPECT(strcmp(api.status_to_string(RSR_ERR_CONTEXT_FULL), "context full") == 0, "status string");
    /* the manifest: what was compiled, one line per matrix */
    const char *manifest = api.model_manifest(m);
    EXPECT(strncmp(manifest, "compiler rsrc ", 14) == 0, "the manifest starts with the compiler: '%.40s'", manifest);
    int manifest_matrices = 0;
    for (const char *p = strstr(manifest, "\nmatrix "); p; p = strstr(p + 1, "\nmatrix ")) manifest_matrices++;
    EXPECT(manifest_matrices == info.num_matrices, "%d matrix lines in the manifest, %d matrices", manifest_matrices,
           info.num_matrices);
    EXPECT(strcmp(api.model_manifest(NULL), "") == 0, "manifest of NULL");

    *out = info;
    return m;
}

/* The tokenizer's absence, and the matrices by index. */
static void check_matrices(rsr_api api, rsr_model *m, rsr_model_info info) {
    /* a model compiled without tokenizer.json: text needs one, and the message says how to get it */
    rsr_tokenizer *tok = (rsr_tokenizer *)&tok;
    EXPECT(api.model_tokenizer(m, &tok) == RSR_ERR_NOT_FOUND && tok == NULL, "no tokenizer in this artifact");
    EXPECT(strstr(api.model_errmsg(m), "tokenizer.json"), "the message names tokenizer.json: '%s'",
           api.model_errmsg(m));
    EXPECT(api.model_tokenizer(NULL, &tok) == RSR_ERR_INVALID_ARGUMENT, "model_tokenizer(NULL)");
    EXPECT(api.api_version() == RSR_API_VERSION, "API version %u", api.api_version());

    /* matrices */
    rsr_matrix_info mi;
    EXPECT(api.model_matrix_info(m, -1, &mi) == RSR_ERR_INVALID_ARGUMENT, "matrix -1");
    EXPECT(api.model_matrix_info(m, info.num_matrices, &mi) == RSR_ERR_INVALID_ARGUMENT, "matrix past the end");
    EXPECT(api.model_matrix_info(m, 0, &mi) == RSR_OK && mi.rows > 0 && mi.scale > 0, "matrix 0");
    EXPECT(api.model_matvec_int(m, 0, NULL, NULL) == RSR_ERR_INVALID_ARGUMENT, "matvec NULL");
    EXPECT(api.model_matrix_info(m, 0, NULL) == RSR_ERR_INVALID_ARGUMENT, "matrix_info NULL");
    EXPECT(api.model_matrix_info(NULL, 0, &mi) == RSR_ERR_INVALID_ARGUMENT, "matrix_info of NULL model");
    {
        int8_t *x = calloc((size_t)mi.cols, 1);
        int32_t *y = calloc((size_t)mi.rows, sizeof *y);
        EXPECT(api.model_matvec_int(m, info.num_matrices, x, y) == RSR_ERR_INVALID_ARGUMENT, "matvec past the end");
        EXPECT(api.model_matvec_int(m, -1, x, y) == RSR_ERR_INVALID_ARGUMENT, "matvec -1");
        EXPECT(api.model_matvec_int(NULL, 0, x, y) == RSR_ERR_INVALID_ARGUMENT, "matvec of NULL model");
        EXPECT(api.model_matvec_int(m, 0, x, y) == RSR_OK, "matvec of zeros");
        int zero = 1;
        for (int32_t r = 0; r < mi.rows; r++) zero &= y[r] == 0;
        EXPECT(zero, "W x 0 = 0");
        free(x), free(y);
    }
}

/* The sampler on the logits a: greedy, top-k 1, a hot draw, the seed, and odd inputs. */
static void check_sampler(rsr_api api, const float *a, int32_t V, int32_t *toks, float *probs, int32_t *ids) {
    /* sampling */
    int32_t greedy = api.sample_greedy(a, V);
    for (int32_t i = 0; i < V; i++) EXPECT(a[i] <= a[greedy], "greedy is not the argmax");
    uint64_t rng = 7;
    rsr_sampler_params top1 = {.temperature = 1.0f, .top_k = 1, .top_p = 1.0f};
    for (int i = 0; i < 20; i++) EXPECT(api.sample(a, V, &top1, &rng, probs, ids) == greedy, "top_k=1 is greedy");
    rsr_sampler_params hot = {.temperature = 100.0f, .top_k = 0, .top_p = 1.0f};
    int distinct = 0;
    int32_t first = api.sample(a, V, &hot, &rng, probs, ids);
    for (int i = 0; i < 50; i++) distinct |= api.sample(a, V, &hot, &rng, probs, ids) != first;
    EXPECT(distinct, "a hot sampler always drew the same token");
    uint64_t r1 = 42, r2 = 42;
    int same = 1;
    for (int i = 0; i < 20; i++)
        same &= api.sample(a, V, &hot, &r1, probs, ids) == api.sample(a, V, &hot, &r2, probs, ids);
    EXPECT(same, "the same seed must draw the same tokens");
    EXPECT(api.sample(NULL, V, &hot, &rng, probs, ids) == -1, "sample(NULL logits)");
    EXPECT(api.sample(a, V, &hot, NULL, probs, ids) == -1, "sample(NULL rng)");
    EXPECT(api.sample(a, V, &hot, &rng, NULL, ids) == -1, "sample(NULL scratch)");
    EXPECT(api.sample(a, 0, &hot, &rng, probs, ids) == -1, "sample of an empty vocabulary");
    EXPECT(api.sample_greedy(NULL, V) == -1 && api.sample_greedy(a, -1) == -1, "greedy of nothing");
    /* NaN and infinite logits and parameters still draw a token of the vocabulary */
    float *odd = malloc(sizeof(float) * (size_t)V);
    for (int32_t i = 0; i < V; i++) odd[i] = i % 3 == 0 ? NAN : (float)i;
    EXPECT(api.sample_greedy(odd, V) == (V - 1) - ((V - 1) % 3 == 0), "greedy skips NaN");
    odd[0] = NAN;
    rsr_sampler_params weird[] = {
        {.temperature = NAN, .top_p = 1.0f},
        {.temperature = INFINITY, .top_p = 1.0f},
        {.temperature = 1e-30f, .top_p = 1.0f},
        {.temperature = 1.0f, .top_k = -7, .top_p = NAN},
        {.temperature = 1.0f, .top_k = V + 10, .top_p = -1.0f},
        {.temperature = 1.0f, .top_p = 1.0f, .min_p = NAN, .repeat_penalty = NAN, .recent = toks, .n_recent = 9},
        {.temperature = 1.0f, .top_p = 1.0f, .min_p = 7, .repeat_penalty = INFINITY, .recent = toks, .n_recent = 9},
        {.temperature = 0, .top_p = 1.0f, .min_p = -1, .repeat_penalty = 1e-30f, .recent = toks, .n_recent = 9}};
    for (size_t w = 0; w < sizeof weird / sizeof *weird; w++) {
        int32_t t = api.sample(odd, V, &weird[w], &rng, probs, ids);
        EXPECT(t >= 0 && t < V && !isnan(odd[t]), "parameters %zu drew %d", w, t);
    }
    for (int32_t i = 0; i < V; i++) odd[i] = NAN;
    EXPECT(api.sample(odd, V, &hot, &rng, probs, ids) == 0, "all-NaN logits: the first token");
    free(odd);
}

/* The certified greedy head and the int8 logits against the exact logits of a second session. */
static void check_heads(rsr_api api, rsr_session *s, rsr_session *s2, int32_t V, const int32_t *toks, int32_t bad_tok,
                        float *a, float *b) {
    /* the certified greedy head gives argmax of the full logits, step after step */
    int32_t gt = -1;
    EXPECT(api.session_eval_greedy(s, toks, 1, NULL) == RSR_ERR_INVALID_ARGUMENT, "eval_greedy(NULL token)");
    EXPECT(api.session_eval_greedy(s, toks, 0, &gt) == RSR_ERR_INVALID_ARGUMENT, "eval_greedy of 0 tokens");
    EXPECT(api.session_eval_greedy(s, toks, 1, &gt) == RSR_ERR_CONTEXT_FULL, "eval_greedy past the context");
    EXPECT(api.session_reset(s) == RSR_OK && api.session_reset(s2) == RSR_OK, "reset both");
    EXPECT(api.session_eval_greedy(s, &bad_tok, 1, &gt) == RSR_ERR_BAD_TOKEN, "eval_greedy of a bad token");
    EXPECT(api.session_position(s) == 0, "a refused eval_greedy must not advance the position");
    rsr_head_stats h0, h1, e0, e1;
    EXPECT(api.session_head_stats(s, NULL) == RSR_ERR_INVALID_ARGUMENT, "head_stats(NULL)");
    EXPECT(api.session_head_stats(s, &h0) == RSR_OK && api.session_head_stats(s2, &e0) == RSR_OK, "head_stats");
    EXPECT(api.session_eval_greedy(s, toks, 3, &gt) == RSR_OK, "eval_greedy: %s", api.session_errmsg(s));
    EXPECT(api.session_eval(s2, toks, 3, a) == RSR_OK, "eval");
    for (int step = 0; step < 5; step++) {
        int32_t want = api.sample_greedy(a, V);
        EXPECT(gt == want, "step %d: greedy head %d, argmax of the logits %d", step, gt, want);
        EXPECT(api.session_eval_greedy(s, &want, 1, &gt) == RSR_OK, "eval_greedy step %d", step);
        EXPECT(api.session_eval(s2, &want, 1, a) == RSR_OK, "eval step %d", step);
    }
    /* six picks (a refused call counts none), each through the int8 copy (the test model has one)
     * computing the winner's row at least; the session of full logits picked nothing */
    EXPECT(api.session_head_stats(s, &h1) == RSR_OK && api.session_head_stats(s2, &e1) == RSR_OK, "head_stats");
    EXPECT(h1.vocab == V && h1.picks - h0.picks == 6 && h1.passes - h0.passes == 6,
           "head stats: %lld picks, %lld passes", (long long)(h1.picks - h0.picks), (long long)(h1.passes - h0.passes));
    EXPECT(h1.exact_rows - h0.exact_rows >= 6 && h1.exact_rows - h0.exact_rows < 6 * (int64_t)V,
           "head stats: %lld exact rows for 6 greedy picks of %d rows", (long long)(h1.exact_rows - h0.exact_rows), V);
    EXPECT(e1.picks == e0.picks && e1.exact_rows == e0.exact_rows, "head stats: full logits counted as picks");

    /* logits from the int8 head: each within the certified bound of the exact logit, step after
     * step, and not the exact logits themselves (the copy is read) */
    double bound = -1;
    EXPECT(api.session_eval_int8(s, toks, 1, NULL, &bound) == RSR_ERR_INVALID_ARGUMENT, "eval_int8(NULL logits)");
    EXPECT(api.session_reset(s) == RSR_OK && api.session_reset(s2) == RSR_OK, "reset both");
    EXPECT(api.session_eval_int8(s, &bad_tok, 1, b, &bound) == RSR_ERR_BAD_TOKEN, "eval_int8 of a bad token");
    EXPECT(api.session_position(s) == 0 && bound == -1, "a refused eval_int8 must not advance or write the bound");
    EXPECT(api.session_eval_int8(s, toks, 3, b, NULL) == RSR_OK, "eval_int8 without a bound: %s",
           api.session_errmsg(s));
    EXPECT(api.session_reset(s) == RSR_OK, "reset");
    EXPECT(api.session_eval_int8(s, toks, 3, b, &bound) == RSR_OK, "eval_int8: %s", api.session_errmsg(s));
    EXPECT(api.session_eval(s2, toks, 3, a) == RSR_OK, "eval");
    for (int step = 0; step < 5; step++) {
        double worst = 0;
        int32_t differ = 0;
        for (int32_t v = 0; v < V; v++) worst = fmax(worst, fabs((double)b[v] - (double)a[v])), differ += b[v] != a[v];
        EXPECT(bound > 0 && worst <= bound, "step %d: int8 logits off by %g, certified bound %g", step, worst, bound);
        EXPECT(differ > 0, "step %d: the int8 logits are the exact ones", step);
        int32_t next = api.sample_greedy(a, V);
        EXPECT(api.session_eval_int8(s, &next, 1, b, &bound) == RSR_OK, "eval_int8 step %d", step);
        EXPECT(api.session_eval(s2, &next, 1, a) == RSR_OK, "eval step %d", step);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_api MODEL.so\n");
        return 2;
    }
    rsr_api api;
    char err[512];
    if (rsr_api_load(&api, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    EXPECT(rsr_api_load(&(rsr_api){0}, "/nonexistent/model.so", err, sizeof err) == -1, "loading a missing file");

    rsr_model_info info;
    rsr_model *m = check_open(api, &info);
    check_matrices(api, m, info);

    /* sessions */
    rsr_session *s = NULL, *s2 = NULL;
    rsr_session_params sp = {.max_positions = 8};
    EXPECT(api.session_create(NULL, &sp, &s) == RSR_ERR_INVALID_ARGUMENT, "session of NULL model");
    rsr_session_params too_long = {.max_positions = info.max_positions + 1};
    EXPECT(api.session_create(m, &too_long, &s) == RSR_ERR_INVALID_ARGUMENT, "context beyond max_positions");
    EXPECT(api.session_create(m, &sp, NULL) == RSR_ERR_INVALID_ARGUMENT, "session_create(out NULL)");
    rsr_session_params negative = {.max_positions = -1};
    EXPECT(api.session_create(m, &negative, &s) == RSR_ERR_INVALID_ARGUMENT && !s, "negative context");
    rsr_session_params no_such = {.max_positions = 8, .attention = 7};
    EXPECT(api.session_create(m, &no_such, &s) == RSR_ERR_INVALID_ARGUMENT && !s &&
               strstr(api.model_errmsg(m), "attention 7 is not dense (0), louver (1) or auto (2)"),
           "attention 7: %s", api.model_errmsg(m));
    EXPECT(api.session_eval(NULL, (int32_t[]){1}, 1, NULL) == RSR_ERR_INVALID_ARGUMENT, "eval of NULL session");
    EXPECT(api.session_reset(NULL) == RSR_ERR_INVALID_ARGUMENT, "reset of NULL session");
    EXPECT(api.session_position(NULL) == -1, "position of NULL session");
    EXPECT(strcmp(api.session_errmsg(NULL), "") != 0, "errmsg of a NULL session says so");
    EXPECT(api.session_create(m, &sp, &s) == RSR_OK, "session_create: %s", api.model_errmsg(m));
    EXPECT(api.session_create(m, &sp, &s2) == RSR_OK, "second session");
    int32_t V = info.vocab_size;
    float *a = malloc(sizeof(float) * (size_t)V), *b = malloc(sizeof(float) * (size_t)V);
    int32_t toks[9] = {1, 5, 9, 3, 7, 2, 4, 6, 8};
    EXPECT(api.session_eval(s, toks, 0, a) == RSR_ERR_INVALID_ARGUMENT, "eval of 0 tokens");
    EXPECT(api.session_eval(s, toks, -5, a) == RSR_ERR_INVALID_ARGUMENT, "eval of -5 tokens");
    EXPECT(api.session_eval(s, NULL, 1, a) == RSR_ERR_INVALID_ARGUMENT, "eval of NULL tokens");
    int32_t negative_tok = -1;
    EXPECT(api.session_eval(s, &negative_tok, 1, a) == RSR_ERR_BAD_TOKEN, "token -1 accepted");
    int32_t bad_tok = V;
    EXPECT(api.session_eval(s, &bad_tok, 1, a) == RSR_ERR_BAD_TOKEN, "token == vocab accepted");
    EXPECT(strstr(api.session_errmsg(s), "outside") != NULL, "bad token message: '%s'", api.session_errmsg(s));
    EXPECT(api.session_position(s) == 0, "a failed eval must not advance the position");
    EXPECT(api.session_eval(s, toks, 9, a) == RSR_ERR_CONTEXT_FULL, "9 tokens in a context of 8");
    EXPECT(api.session_position(s) == 0, "a refused eval must not advance the position");
    EXPECT(api.session_eval(s, toks, 8, a) == RSR_OK, "8 tokens: %s", api.session_errmsg(s));
    EXPECT(api.session_position(s) == 8, "position after 8 tokens");
    EXPECT(api.session_eval(s, toks, 1, b) == RSR_ERR_CONTEXT_FULL, "the 9th token must not fit");

    /* the same tokens give the same logits: token by token, after reset, in another session */
    for (int i = 0; i < 8; i++) EXPECT(api.session_eval(s2, &toks[i], 1, b) == RSR_OK, "token %d", i);
    EXPECT(memcmp(a, b, sizeof(float) * (size_t)V) == 0, "one eval of 8 tokens vs 8 evals of one");
    EXPECT(api.session_reset(s) == RSR_OK && api.session_position(s) == 0, "reset");
    EXPECT(api.session_eval(s, toks, 8, b) == RSR_OK, "eval after reset");
    EXPECT(memcmp(a, b, sizeof(float) * (size_t)V) == 0, "logits after reset");
    int finite = 1;
    for (int32_t i = 0; i < V; i++) finite &= isfinite(a[i]);
    EXPECT(finite, "logits are finite");

    float *probs = malloc(sizeof(float) * (size_t)V);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)V);
    check_sampler(api, a, V, toks, probs, ids);
    check_heads(api, s, s2, V, toks, bad_tok, a, b);
    check_sampling(api, s, s2, V, toks, bad_tok, a, probs, ids);

    api.session_free(s);
    api.session_free(s2);
    api.session_free(NULL);
    api.model_close(m);
    free(a), free(b), free(probs), free(ids);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
