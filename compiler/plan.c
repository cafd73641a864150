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
 *
 * CUDA targets (plan_gpu): a GEMV at batch 1 streams its constant data once, so the time is
 * the larger of bytes / mem_bandwidth and warp instructions / issue rate (4 schedulers per SM at
 * about 1.5 GHz). i2 reads 2 bits per weight; the RSR warp form reads 4 bytes per kept column
 * (≈ 4/k·(1−p0^k) bytes per weight), so on these GPUs i2 wins every real matrix and RSR only
 * competes where the index is tiny. These are predictions from the spec, not measurements.
 */
#include <math.h>
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
/* Prefill (RSR_BATCH_MAX tokens through the batched i2 kernel): weights·tokens per ns; the
 * weights are read once for all the tokens, so the dot product alone sets the pace. */
static const double i2_batch_weights_per_ns[] = {[DOT_SCALAR] = 1.5, [DOT_AVX2] = 150, [DOT_AVX512BW] = 220,
                                                 [DOT_AVX512VNNI] = 330};

double plan_predict(const ternary_matrix *t, const target *tg, enum strategy s, int k, bool prefill) {
    double weights = (double)t->rows * (double)t->cols;
    enum dot_isa isa = target_dot_isa(tg);
    if (s == STRAT_I2) {
        double bytes_ns = weights / 4 / bytes_per_ns_one_thread;
        if (prefill) return weights / i2_batch_weights_per_ns[isa] + bytes_ns / RSR_BATCH_MAX;
        return weights / i2_weights_per_ns[isa] + bytes_ns;
    }
    /* RSR has no batched kernel: a prefill token costs what a decode call does. */
    double units = rsr_units_per_row(t, k) * t->rows;
    return units * (s == STRAT_RSR_UNROLLED ? ns_per_rsr_unit_unrolled : ns_per_rsr_unit_loop);
}

bool plan_allowed(const target *tg, enum strategy s) {
    if (tg->nstrategies == 0) return true;
    for (int i = 0; i < tg->nstrategies; i++) {
        const char *n = tg->strategies[i];
        if (strcmp(n, strategy_names[s]) == 0) return true;
        if (strcmp(n, "rsr") == 0 && (s == STRAT_RSR_LOOP || s == STRAT_RSR_UNROLLED)) return true;
    }
    return false;
}

static double gpu_time(const target *g, double bytes, double warp_instructions) {
    double mem = bytes / g->bytes_per_ns, issue = warp_instructions / ((double)g->sms * 4 * 1.5);
    return mem > issue ? mem : issue;
}

/* The RSR warp form for block size k: its bytes and time (see kernel.c for the loop). */
static double gpu_rsr_time(const ternary_matrix *t, const target *g, int k, double *bytes) {
    rsr_sample_stats st;
    rsr_sample_blocks(t, k, &st);
    double chunks = (st.kept + 31) / 32;
    *bytes = 4 * st.kept * st.blocks + 4.0 * (st.blocks + 1);
    return gpu_time(g, *bytes, st.blocks * (chunks * (26 + 3.0 * k) + 10.0 * k + 10));
}

static void plan_gpu(const ternary_matrix *t, const target *g, enum strategy forced, int forced_k, matrix_plan *out) {
    double rsr_bytes = 0, best = 0;
    int k = forced_k;
    char kwhy[160];
    int n = snprintf(kwhy, sizeof kwhy, "warp k:");
    for (int kk = 1; kk <= RSR_MAX_K && !forced_k; kk++) {
        double bytes, ns = gpu_rsr_time(t, g, kk, &bytes);
        if ((size_t)n < sizeof kwhy) n += snprintf(kwhy + n, sizeof kwhy - (size_t)n, " k%d=%.0f", kk, ns);
        if (kk == 1 || ns < best) best = ns, k = kk;
    }
    if (forced_k) snprintf(kwhy, sizeof kwhy, "k=%d forced by --rsr-k", k);
    out->k = k;
    double rsr_ns = gpu_rsr_time(t, g, k, &rsr_bytes);
    double groups = (t->cols + 15) / 16, blocks = (t->rows + 3) / 4;
    double i2_bytes = blocks * 4 * groups * 4;
    double i2_ns = gpu_time(g, i2_bytes, blocks * (ceil(groups / 32) * 60 + 50));
    if (plan_allowed(g, STRAT_RSR_LOOP) || plan_allowed(g, STRAT_RSR_UNROLLED)) out->cost[STRAT_RSR_LOOP] = rsr_ns;
    if (plan_allowed(g, STRAT_I2)) out->cost[STRAT_I2] = i2_ns;
    enum strategy best_s = out->cost[STRAT_I2] > 0 && (!out->cost[STRAT_RSR_LOOP] || i2_ns <= rsr_ns) ? STRAT_I2 : STRAT_RSR_LOOP;
    const char *reason = "least predicted time";
    if (forced != STRAT_AUTO) best_s = forced == STRAT_I2 ? STRAT_I2 : STRAT_RSR_LOOP, reason = "forced by --strategy";
    out->strategy = best_s;
    snprintf(out->why, sizeof out->why,
             "%s (%s); predicted ns on %s: rsr-warp=%.0f (%.2f MB, k=%d) i2-dp4a=%.0f (%.2f MB); %s",
             best_s == STRAT_I2 ? "i2" : "rsr-warp", reason, g->name, rsr_ns, rsr_bytes / 1e6, k, i2_ns, i2_bytes / 1e6,
             kwhy);
}

void plan_matrix(const ternary_matrix *t, const target *tg, enum strategy forced, int forced_k, matrix_plan *out) {
    memset(out, 0, sizeof *out);
    if (tg->kind == TK_CUDA) {
        plan_gpu(t, tg, forced, forced_k, out);
        return;
    }
    char kwhy[256] = "forced by --rsr-k";
    double units_per_row = 0;
    int k = rsr_choose_k(t, RSR_MAX_K, &units_per_row, kwhy, sizeof kwhy);
    if (forced_k) {
        k = forced_k;
        snprintf(kwhy, sizeof kwhy, "k=%d forced by --rsr-k", k);
    }
    out->k = k;
    if (forced_k) units_per_row = rsr_units_per_row(t, k);
    double rsr_units = units_per_row * t->rows;

    /* Unrolled code size needs the real plan; estimate it from the sampled units instead (one
     * unit ≈ one instruction of a few bytes), which is what the budget is about. */
    double unrolled_bytes = 5 * rsr_units;
    if (unrolled_bytes <= tg->unroll_budget && plan_allowed(tg, STRAT_RSR_UNROLLED))
        out->cost[STRAT_RSR_UNROLLED] = rsr_units * ns_per_rsr_unit_unrolled;
    if (plan_allowed(tg, STRAT_RSR_LOOP)) out->cost[STRAT_RSR_LOOP] = rsr_units * ns_per_rsr_unit_loop;
    if (plan_allowed(tg, STRAT_I2)) out->cost[STRAT_I2] = plan_predict(t, tg, STRAT_I2, 0, false);

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
