/*
 * plan.c — which strategy computes each matrix, chosen by a cost model of the target.
 *
 * Candidates (all exact): RSR unrolled (the index as instructions; only while the code fits the
 * target's icache budget), RSR loop (index as constant data), and i2 (packed 2-bit codes with
 * the target's widest int8 dot product). The prediction is single-thread time per call:
 *
 *   RSR:  cost units per row from rsr_choose_k (gathered adds, segments, digits, index bytes)
 *         × ns per unit (unrolled code does no index loads, so its unit is cheaper)
 *   i2:   weights / (weights per ns of the dot ISA) + packed bytes / (bytes per ns of memory)
 *
 * The constants below come from bench_gemv on an AMD Zen 5 class core (docs/performance.md):
 * there a scalar RSR unit costs about 0.5 ns, while vpdpbusd handles ~60 weights per ns, so i2
 * wins every matrix of a real model once the target has AVX-512 or AVX2; RSR remains the
 * choice for the portable C target, where the dot product is scalar. --strategy forces one.
 */
#include <string.h>

#include "rsrc.h"

const char *const strategy_names[NUM_STRATEGIES] = {"auto", "rsr-unrolled", "rsr-loop", "i2"};

enum strategy strategy_parse(const char *name) {
    for (int s = 0; s < NUM_STRATEGIES; s++)
        if (strcmp(name, strategy_names[s]) == 0) return (enum strategy)s;
    return (enum strategy)-1;
}

/* Measured on the reference machine (bench_gemv, 1 thread); see the header comment. */
static const double ns_per_rsr_unit_loop = 0.50, ns_per_rsr_unit_unrolled = 0.35;
static const double i2_weights_per_ns[] = {[DOT_SCALAR] = 1.5, [DOT_AVX2] = 24, [DOT_AVX512BW] = 36,
                                           [DOT_AVX512VNNI] = 60};
static const double bytes_per_ns_one_thread = 30;

static bool allowed(const target *tg, enum strategy s) {
    if (tg->nstrategies == 0) return true;
    for (int i = 0; i < tg->nstrategies; i++) {
        const char *n = tg->strategies[i];
        if (strcmp(n, strategy_names[s]) == 0) return true;
        if (strcmp(n, "rsr") == 0 && (s == STRAT_RSR_LOOP || s == STRAT_RSR_UNROLLED)) return true;
    }
    return false;
}

void plan_matrix(const ternary_matrix *t, const target *tg, enum strategy forced, int forced_k, matrix_plan *out) {
    memset(out, 0, sizeof *out);
    char kwhy[256] = "forced by --rsr-k";
    double units_per_row = 0;
    int k = rsr_choose_k(t, RSR_MAX_K, &units_per_row, kwhy, sizeof kwhy);
    if (forced_k) {
        k = forced_k;
        snprintf(kwhy, sizeof kwhy, "k=%d forced by --rsr-k", k);
    }
    out->k = k;
    double rows = t->rows, weights = (double)t->rows * (double)t->cols;
    double rsr_units = units_per_row * rows;

    /* Unrolled code size needs the real plan; estimate it from the sampled units instead (one
     * unit ≈ one instruction of a few bytes), which is what the budget is about. */
    double unrolled_bytes = 5 * rsr_units;
    if (unrolled_bytes <= tg->unroll_budget && allowed(tg, STRAT_RSR_UNROLLED))
        out->cost[STRAT_RSR_UNROLLED] = rsr_units * ns_per_rsr_unit_unrolled;
    if (allowed(tg, STRAT_RSR_LOOP)) out->cost[STRAT_RSR_LOOP] = rsr_units * ns_per_rsr_unit_loop;
    if (allowed(tg, STRAT_I2))
        out->cost[STRAT_I2] = weights / i2_weights_per_ns[target_dot_isa(tg)] + weights / 4 / bytes_per_ns_one_thread;

    enum strategy best = STRAT_AUTO;
    for (int s = 1; s < NUM_STRATEGIES; s++)
        if (out->cost[s] > 0 && (best == STRAT_AUTO || out->cost[s] < out->cost[best])) best = (enum strategy)s;
    if (best == STRAT_AUTO) best = STRAT_RSR_LOOP; /* a spec that allows nothing usable */
    const char *reason = "least predicted time";
    if (forced != STRAT_AUTO) best = forced, reason = "forced by --strategy";
    out->strategy = best;

    int n = snprintf(out->why, sizeof out->why, "%s (%s); predicted ns:", strategy_names[best], reason);
    for (int s = 1; s < NUM_STRATEGIES && (size_t)n < sizeof out->why; s++) {
        if (out->cost[s] > 0) n += snprintf(out->why + n, sizeof out->why - (size_t)n, " %s=%.0f", strategy_names[s], out->cost[s]);
        else n += snprintf(out->why + n, sizeof out->why - (size_t)n, " %s=n/a", strategy_names[s]);
    }
    if ((size_t)n < sizeof out->why && (best == STRAT_RSR_LOOP || best == STRAT_RSR_UNROLLED))
        snprintf(out->why + n, sizeof out->why - (size_t)n, "; %s", kwhy);
}
