/*
 * spec_gate.h — whether an n-gram draft pays, shared by rsr-run and rsr-serve. A verification of
 * a draft of k tokens costs a step and k rows more (row_s each); it gives one token more for each
 * drafted token taken. With α the chance that a drafted token is taken (the one before it taken),
 * a draft of one token gives 1 + α tokens for 1 + c steps (c = row_s / step_s), and longer ones
 * pay only where that one does: the gate lets a draft through while α > c.
 *
 * Both are measured as decoding goes: step_s from plain steps of one token, row_s from
 * verifications ((seconds − step_s) / k), each a moving average; α from the drafted tokens taken
 * and refused, and, while the gate holds drafts back, from the draft's first token against the
 * token the plain step chose (a guess that costs nothing to check), counts that fade by
 * SPEC_GATE_FADE an outcome so that a text that starts repeating opens the gate again; every
 * SPEC_GATE_PROBE-th draft held back goes through anyway, its timing taking the average's place,
 * so that a drafted row's cost is measured again (one slow verification cannot shut the gate for
 * good). Until a verification and a
 * plain step have been timed the gate is open.
 *
 * Greedy decoding only: there a draft changes how many steps the same tokens take, never the
 * tokens. A sampled step draws otherwise with a draft than without one (from the same
 * distribution), and the gate's choice rests on timings, so a seeded sampled run would no longer
 * repeat its text: the callers draft every time there, as before. A gate made off (spec_gate_init's
 * `on`: a sampled run, or drafts from a draft model, whose guesses cost its own steps) lets every
 * draft through and measures nothing.
 */
#ifndef RSR_SPEC_GATE_H
#define RSR_SPEC_GATE_H

#include <stdbool.h>
#include <stdint.h>

#define SPEC_GATE_FADE 0.95 /* an outcome's weight after the next one */
#define SPEC_GATE_EMA 0.2   /* a new timing's share of the moving averages */
#define SPEC_GATE_PROBE 32  /* a held-back draft in this many goes through to time a verification again */

typedef struct spec_gate {
    bool on;               /* greedy n-gram drafts: the gate decides; off: every draft goes through */
    double taken, refused; /* faded counts of drafted (and guessed) tokens */
    double step_s, row_s;  /* a plain step's seconds, a drafted row's beyond it; 0: not measured yet */
    int32_t guess;         /* the first token of a draft held back, checked against the step's; -1 none */
    long held;             /* drafts held back */
    int32_t since_probe;   /* drafts held back since the last probe */
    bool probing;          /* the verification under way is a probe: its timing replaces row_s */
} spec_gate;

static inline void spec_gate_init(spec_gate *g, bool on) { *g = (spec_gate){.on = on, .guess = -1}; }

static inline double spec_gate_alpha(const spec_gate *g) { return (g->taken + 1) / (g->taken + g->refused + 2); }

/* Whether the draft found goes to a verification; when not, its first token (guess) is kept to
 * check against the plain step's token (spec_gate_plain). */
static inline bool spec_gate_open(spec_gate *g, int32_t guess) {
    if (!g->on || g->step_s <= 0 || g->row_s <= 0 || spec_gate_alpha(g) > g->row_s / g->step_s) return true;
    if (++g->since_probe == SPEC_GATE_PROBE) return g->since_probe = 0, g->probing = true, true;
    g->guess = guess, g->held++;
    return false;
}

static inline void spec_gate_average(double *avg, double v) {
    *avg = *avg > 0 ? (1 - SPEC_GATE_EMA) * *avg + SPEC_GATE_EMA * v : v;
}

/* A plain step of one token took seconds and chose token. */
static inline void spec_gate_plain(spec_gate *g, double seconds, int32_t token) {
    if (!g->on) return;
    spec_gate_average(&g->step_s, seconds);
    if (g->guess < 0) return;
    g->taken *= SPEC_GATE_FADE, g->refused *= SPEC_GATE_FADE;
    if (token == g->guess)
        g->taken += 1;
    else
        g->refused += 1;
    g->guess = -1;
}

/* A verification of k drafted tokens took seconds and took `taken` of them. */
static inline void spec_gate_verified(spec_gate *g, double seconds, int32_t k, int32_t taken) {
    if (!g->on) return;
    if (g->step_s > 0 && k > 0) {
        const double row = (seconds - g->step_s) / k;
        if (g->probing) g->row_s = 0; /* the gate was shut on the average: a fresh measurement decides */
        spec_gate_average(&g->row_s, row > 1e-9 ? row : 1e-9);
    }
    g->probing = false;
    for (int32_t i = 0; i <= taken && i < k; i++) g->taken *= SPEC_GATE_FADE, g->refused *= SPEC_GATE_FADE;
    g->taken += taken, g->refused += taken < k;
}

#endif
