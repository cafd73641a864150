/* sample.c — greedy, temperature, top-k, top-p and min-p sampling over a logits vector, with
 * llama.cpp's repetition penalty. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

rsr_sampler_params rsr_sampler_default_params(void) {
    return (rsr_sampler_params){.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .repeat_penalty = 1.0f};
}

/* NaN logits never win (and never make the answer depend on where they are). */
int32_t rsr_sample_greedy(const float *logits, int32_t vocab) {
    if (!logits || vocab <= 0) return -1;
    int32_t best = 0;
    for (int32_t i = 1; i < vocab; i++)
        if (rt_logit_better(logits[i], logits[best])) best = i;
    return best;
}

/* xorshift64*: small, fast, and good enough to draw one token. */
static double next_uniform(uint64_t *state) {
    uint64_t x = *state ? *state : 0x9e3779b97f4a7c15u;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * 0x2545f4914f6cdd1du) >> 11) * 0x1.0p-53;
}

static _Thread_local const float *sort_probs; /* qsort has no context argument in C11 */
static int by_prob_desc(const void *a, const void *b) {
    float pa = sort_probs[*(const int32_t *)a], pb = sort_probs[*(const int32_t *)b];
    if (pa != pb) return pa < pb ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

/*
 * The sampler's cut: at a temperature T, a row whose weight exp((l − max)/T) is below 2^-24 / V
 * (V the vocabulary; less 2^-12 of it, for the roundings) has probability below that (the softmax's denominator is at least 1 relative
 * to its maximum), so the rows cut weigh below 2^-24 together, and nothing else is left out. The
 * cut is what lets a caller that computed only some rows draw exactly what a caller that
 * computed every row draws: lm_head.c keeps every row the cut could keep (with a margin), and
 * both then draw from the same rows with the same sums.
 */
/* The distribution a draw is made from: its tokens ids[0..*keep) with weights probs[id] (their
 * sum in *total), or the greedy token (returned, *keep 0) at temperature 0 or without a finite
 * logit. Returns -1 with *keep > 0 otherwise. */
static int32_t sample_filter(const float *logits, int32_t n, int32_t vocab, const rsr_sampler_params *params,
                             float *probs, int32_t *ids, rt_sample_info *info, int32_t *keep_out, double *total_out) {
    *keep_out = 0;
    rsr_sampler_params p = params ? *params : rsr_sampler_default_params();
    if (rt_sampler_penalises(&p)) { /* the penalised logits, in probs (each distinct token once) */
        for (int32_t i = 0; i < n; i++) probs[i] = logits[i], ids[i] = 0;
        for (int32_t j = 0; j < p.n_recent; j++) {
            int32_t t = p.recent[j];
            if (t >= 0 && t < n && !ids[t]) ids[t] = 1, probs[t] = rt_penalise(probs[t], p.repeat_penalty);
        }
        logits = probs; /* read before written below, index by index */
    }
    if (!(p.temperature > 0)) return rsr_sample_greedy(logits, n);
    float m = logits[rsr_sample_greedy(logits, n)];
    if (!isfinite(m)) return rsr_sample_greedy(logits, n); /* +inf, or nothing finite to weigh */
    /* 2^-12 under the edge: a weight's roundings ((l − m)/T, expf) stay within 2^-17 of it, so a
     * row cut here truly weighs below 2^-24/vocab, and the cut's reported weight bounds theirs */
    const float floor_w = (float)(0x1p-24 / vocab * (1 - 0x1p-12));
    double sum = 0, cut = 0;
    int32_t live = 0; /* ids[0..live): the rows kept, in index order */
    for (int32_t i = 0; i < n; i++) {
        float e = expf((logits[i] - m) / p.temperature);
        e = e >= 0 ? e : 0; /* NaN logits weigh nothing; the maximum weighs 1, so sum >= 1 */
        if (e < floor_w) {
            cut += e;
            continue;
        }
        probs[i] = e, sum += e, ids[live++] = i;
    }
    if (info) *info = (rt_sample_info){.kept = live, .cut = cut * (1 + 0x1p-12)}; /* the roundings above */
    for (int32_t j = 0; j < live; j++) probs[ids[j]] = (float)(probs[ids[j]] / sum);
    int32_t keep = live, need_k = p.top_k > 0 && p.top_k < live ? p.top_k : 0;
    if (need_k || p.top_p < 1.0f) {
        /* Only the most likely tokens need their order: those with a probability of at least t,
         * with t lowered until they hold top_k tokens and a mass of top_p (every other token comes
         * after them in the full order, and the filters drop it). Each round moves them to the
         * front of ids[0..live), which keeps every live row. */
        int32_t head = 0;
        float best = 0;
        for (int32_t j = 0; j < live; j++) best = probs[ids[j]] > best ? probs[ids[j]] : best;
        for (float t = best * 0x1p-12f;; t = t > 0x1p-100f ? t * 0x1p-12f : 0) {
            double mass = 0;
            head = 0;
            for (int32_t j = 0; j < live; j++)
                if (probs[ids[j]] >= t) {
                    int32_t id = ids[j];
                    ids[j] = ids[head], ids[head++] = id, mass += probs[id];
                }
            if (t == 0 || ((!need_k || head >= need_k) && (p.top_p >= 1.0f || mass >= p.top_p))) break;
        }
        sort_probs = probs;
        qsort(ids, (size_t)head, sizeof *ids, by_prob_desc);
        keep = head;
        if (need_k && need_k < keep) keep = need_k;
        if (p.top_p < 1.0f) {
            double cum = 0;
            for (int32_t i = 0; i < keep; i++) {
                cum += probs[ids[i]];
                if (cum >= p.top_p) {
                    keep = i + 1;
                    break;
                }
            }
        }
    }
    if (p.min_p > 0) { /* the most likely token has probability 1/sum: exp(0) over the sum */
        float floor = (float)(1.0 / sum) * (p.min_p < 1 ? p.min_p : 1); /* the best always stays */
        int32_t k = 0;
        for (int32_t i = 0; i < keep; i++)
            if (probs[ids[i]] >= floor) ids[k++] = ids[i];
        keep = k;
    }
    /* without top-k and top-p the ids are in index order: the draw walks them so */
    double total = 0;
    for (int32_t i = 0; i < keep; i++) total += probs[ids[i]];
    *keep_out = keep, *total_out = total;
    return -1;
}

/* One draw from ids[0..keep) weighed by probs, leaving out `skip` (-1: none) whose weight is
 * taken from total already. */
static int32_t draw(const float *probs, const int32_t *ids, int32_t keep, double total, int32_t skip, uint64_t *rng) {
    double r = next_uniform(rng) * total, cum = 0;
    int32_t last = -1;
    for (int32_t i = 0; i < keep; i++) {
        if (ids[i] == skip) continue;
        cum += probs[ids[i]], last = ids[i];
        if (r < cum) return ids[i];
    }
    return last;
}

int32_t rt_sample(const float *logits, int32_t n, int32_t vocab, const rsr_sampler_params *params, uint64_t *rng,
                  float *probs, int32_t *ids, rt_sample_info *info) {
    if (info) *info = (rt_sample_info){.kept = 1};
    if (!logits || n <= 0 || vocab < n || !rng || !probs || !ids) return -1;
    int32_t keep;
    double total;
    int32_t greedy = sample_filter(logits, n, vocab, params, probs, ids, info, &keep, &total);
    return keep ? draw(probs, ids, keep, total, -1, rng) : greedy;
}

/*
 * Speculative sampling's rule for a drafted token d that its proposer chose with certainty (an
 * n-gram lookup, a draft model's greedy token): accept d with probability p(d), else draw from p
 * without d, renormalised (the (p − q)+ of a q that is all on d). Either way the token returned is
 * drawn from p exactly: P(t) = p(d)·[t = d] + (1 − p(d))·p(t)/(1 − p(d))·[t ≠ d] = p(t). At
 * temperature 0 p is all on the greedy token, which is returned (d accepted when it is that one).
 * The first uniform decides the acceptance, the second (after a refusal) the draw.
 */
RT_TEST_HOOK int spec_accept_weakened_for_tests;

int32_t rt_sample_verify(const float *logits, int32_t vocab, const rsr_sampler_params *params, uint64_t *rng,
                         float *probs, int32_t *ids, int32_t d, bool *accepted) {
    *accepted = false;
    if (!logits || vocab <= 0 || !rng || !probs || !ids) return -1;
    int32_t keep;
    double total;
    int32_t greedy = sample_filter(logits, vocab, vocab, params, probs, ids, NULL, &keep, &total);
    if (!keep) return *accepted = greedy == d, greedy;
    double pd = 0;
    for (int32_t i = 0; i < keep; i++)
        if (ids[i] == d) pd = probs[d];
    if (spec_accept_weakened_for_tests || next_uniform(rng) * total < pd) return *accepted = true, d;
    if (!(total - pd > 0)) return d; /* nothing but d weighs (a rounding): d is p's draw */
    return draw(probs, ids, keep, total - pd, d, rng);
}

int32_t rsr_sample(const float *logits, int32_t vocab, const rsr_sampler_params *params, uint64_t *rng, float *probs,
                   int32_t *ids) {
    return rt_sample(logits, vocab, vocab, params, rng, probs, ids, NULL);
}
