/*
 * test_spec.c — speculative sampling's rule (rt_sample_verify, runtime/src/sample.c) against the
 * distribution it must keep. Usage: test_spec [--weakened]
 *
 * A drafted token d proposed with certainty is taken with probability p(d), else the token is
 * drawn from p without d. Over many random states the tokens returned must then be distributed as
 * p itself: a χ² goodness-of-fit test against p computed here from the logits (the softmax at the
 * temperature, then top-k or top-p, in doubles: a reference of its own, not the runtime's code),
 * for d likely, unlikely, and outside what top-k keeps (never taken). At temperature 0 d is taken
 * exactly when it is the greedy token, which is returned either way. With --weakened the runtime
 * takes every drafted token, and this test must fail (ctest runs it so, expecting failure).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "expect.h"

enum { V = 16, DRAWS = 40000 };

/* The sampler's distribution over V tokens: softmax(l / T), then the top_k most likely (top_k > 0)
 * or the fewest most likely whose mass reaches top_p (top_p < 1), renormalised. */
static void reference(const float *l, float T, int top_k, float top_p, double *p) {
    double m = l[0], sum = 0;
    for (int i = 1; i < V; i++) m = l[i] > m ? l[i] : m;
    for (int i = 0; i < V; i++) sum += p[i] = exp(((double)l[i] - m) / T);
    for (int i = 0; i < V; i++) p[i] /= sum;
    int order[V];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 0; i < V; i++) /* by probability, descending (the logits here are distinct) */
        for (int j = i + 1; j < V; j++)
            if (p[order[j]] > p[order[i]]) {
                int t = order[i];
                order[i] = order[j], order[j] = t;
            }
    int keep = V;
    if (top_k > 0 && top_k < keep) keep = top_k;
    if (top_p < 1) {
        double cum = 0;
        for (int i = 0; i < keep; i++)
            if ((cum += p[order[i]]) >= top_p) {
                keep = i + 1;
                break;
            }
    }
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += p[order[i]];
    double q[V] = {0};
    for (int i = 0; i < keep; i++) q[order[i]] = p[order[i]] / kept;
    memcpy(p, q, sizeof q);
}

/* χ² of counts against p (the cells p gives no mass must be empty), and its degrees of freedom. */
static double chi2(const long *count, const double *p, int *df, long *impossible) {
    double x = 0;
    *df = -1, *impossible = 0;
    for (int i = 0; i < V; i++) {
        if (p[i] <= 0) {
            *impossible += count[i];
            continue;
        }
        const double e = p[i] * DRAWS;
        x += (count[i] - e) * (count[i] - e) / e, (*df)++;
    }
    return x;
}

/* The χ² quantile at 1 − 10^-4 for df degrees of freedom (Wilson–Hilferty). */
static double critical(int df) {
    const double z = 3.719, a = 2.0 / (9.0 * df);
    return df * pow(1 - a + z * sqrt(a), 3);
}

static void check_rule(const char *what, const float *l, float T, int top_k, float top_p, int32_t d) {
    double p[V];
    reference(l, T, top_k, top_p, p);
    const rsr_sampler_params sp = {.temperature = T, .top_k = top_k, .top_p = top_p};
    float probs[V];
    int32_t ids[V];
    long count[V] = {0}, taken = 0;
    for (long k = 0; k < DRAWS; k++) {
        uint64_t rng = (uint64_t)k * 0x9e3779b97f4a7c15u + 1;
        bool accepted;
        int32_t t = rt_sample_verify(l, V, &sp, &rng, probs, ids, d, &accepted);
        EXPECT(t >= 0 && t < V, "%s: token %d", what, t);
        if (t < 0 || t >= V) return;
        count[t]++, taken += accepted;
        EXPECT(!accepted || t == d, "%s: taken, but token %d returned for the draft's %d", what, t, d);
    }
    int df;
    long impossible;
    const double x = chi2(count, p, &df, &impossible);
    printf("%s: p(d) %.4f, taken %.4f, chi2 %.1f (df %d, limit %.1f)\n", what, p[d], (double)taken / DRAWS, x, df,
           critical(df));
    EXPECT(impossible == 0, "%s: %ld tokens the sampler never draws", what, impossible);
    EXPECT(x < critical(df), "%s: chi2 %.1f over %d degrees of freedom: not the sampler's distribution", what, x, df);
    EXPECT(fabs((double)taken / DRAWS - p[d]) < 5 * sqrt(p[d] * (1 - p[d]) / DRAWS) + 1e-9,
           "%s: the draft taken %.4f of the time, p(d) is %.4f", what, (double)taken / DRAWS, p[d]);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--weakened")) spec_accept_weakened_for_tests = 1;
    float l[V];
    uint64_t seed = 12345;
    for (int i = 0; i < V; i++) { /* distinct logits over about 4 units */
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        l[i] = (float)((seed >> 40) % 4000) / 1000.0f + 0.0001f * (float)i;
    }
    int32_t best = rsr_sample_greedy(l, V), worst = 0;
    for (int i = 1; i < V; i++) worst = l[i] < l[worst] ? i : worst;
    check_rule("T 1, d the likeliest", l, 1.0f, 0, 1.0f, best);
    check_rule("T 1, d the least likely", l, 1.0f, 0, 1.0f, worst);
    check_rule("T 0.7, top-p 0.9, d the likeliest", l, 0.7f, 0, 0.9f, best);
    check_rule("T 1.3, top-k 5, d outside the 5", l, 1.3f, 5, 1.0f, worst);
    /* greedy: taken exactly when d is the greedy token, which is returned */
    for (int32_t d = 0; d < V; d++) {
        uint64_t rng = 7;
        bool accepted;
        float probs[V];
        int32_t ids[V];
        int32_t t = rt_sample_verify(l, V, &(rsr_sampler_params){.temperature = 0}, &rng, probs, ids, d, &accepted);
        EXPECT(t == best && accepted == (d == best), "greedy, d %d: token %d, taken %d (greedy %d)", d, t, accepted,
               best);
    }
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
