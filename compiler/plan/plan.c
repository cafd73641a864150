/*
 * plan.c — which strategy computes each matrix, chosen by a cost model of the target.
 *
 * Candidates (all exact): RSR unrolled (the index as instructions; only while the code fits the
 * target's icache budget), RSR loop (index as constant data), i2 (packed 2-bit codes with the
 * target's widest int8 dot product) and lut (1.67-bit triplet patterns looked up in tables of x;
 * targets with VBMI and VNNI). The prediction is single-thread time per call with the
 * constant data warm, which is what `rsrc --tune` measures (tune.c):
 *
 *   RSR loop:      per block of k rows, 0.335 ns per kept column (a gathered add) + 2.6·k ns per
 *                  segment (its k-row scatter, and the mispredicted exit of its variable-length
 *                  inner loop), from the segment statistics of a sample of blocks; k is the one
 *                  of least predicted time
 *   RSR unrolled:  per block, 4 ns (an indirect call) + 0.06 ns per kept column + 0.08 ns per
 *                  nonzero digit: straight-line adds, four per cycle
 *   i2:            weights / (weights per ns of the dot ISA); a prefill token of the batched
 *                  kernel: weights / (weights·tokens per ns), the block's fields decoded once
 *   lut:           weights / 215 per ns + 0.1 ns per column (the call's tables)
 *
 * i2's batched kernel is the tiles or RSR with tokens in lanes (kernel.c). A full step
 * (RSR_BATCH_MAX tokens, four passes of lanes) costs, per block, 0.63 of the tiles' time per
 * column plus the tiles' time of 650 columns (its 80 segments: widening, digits, a mispredicted
 * loop exit each), so the tiles take 1/(0.63 + 650/cols) times as long: 1.13× at 2560 columns,
 * 1.38× at 6912. Fitted to bench_gemv's side-by-side rows on an AMD EPYC (Zen 4 class) with
 * AVX-512 VNNI, the mean of 1 and 2 threads, cold weights (docs/history/performance-log.md). On AVX2 the tiles
 * are 4 tokens by 2 rows (one vpmaddubsw per 32 multiply-adds, its 16-bit pair sums widened once
 * a run of groups) while the lanes' 16-bit adds lose nothing to the narrower vectors, so the
 * lanes fit there is 0.48 per column plus 613 columns per block (the same benchmark on a Zen 5
 * running --target avx2, two runs, the 1/gain of the three 2560-column shapes averaged against
 * the down projection's): 1.39× at 2560 columns, 1.76× at 6912. The lanes also cost 0.5 bytes
 * per weight of index (twice the 2-bit codes), so --prefill=auto takes them where the tiles are
 * predicted 1.15× slower or more: on AVX-512 VNNI the widest matrices (the FFN's down
 * projection), on AVX2 every matrix of 1575 columns or more (on a target with the L2 that fit
 * was measured with: plan_prefill).
 * With AVX-VNNI the tiles need one vpdpbusd on ymm where AVX2 spends three instructions, and the
 * fit is 0.61 per column plus 1155 columns per block (bench_gemv --target avx-vnni on a Zen 5, 1
 * and 2 threads, two runs): the tiles win at 2560 columns (0.94×) and the lanes from 4480
 * columns on (1.28× at 6912: the 2B-4T down projection). AVX-512 BW without VNNI has the tiles of
 * pair sums that AVX2 has, at 512 bits: 0.73 per column plus 1468 columns per block (1.06× at
 * 6912), so the tiles everywhere.
 * --explain names the fit used.
 *
 * The constants were fitted to `rsrc --tune` on an AMD Zen 5 class core (docs/history/performance-log.md),
 * where the loop form costs within ±11% of this model on every 2B-4T shape at k = 3..6. A real
 * decode reads i2's weights from memory rather than cache (bench_gemv: 74 instead of 22 µs for
 * 2560×2560), which only widens its lead: RSR's loop is bound by its instructions, not its
 * bytes. So i2 wins every matrix of a real model once the target has AVX2 or AVX-512; on the
 * portable C target (scalar dot products, 5.7 weights per ns) RSR wins the square and narrow
 * shapes and i2 the tall ones. --strategy forces one; --tune measures instead of predicting.
 *
 * CUDA targets (plan_gpu): a GEMV at batch 1 streams its constant data once, so the time is
 * the larger of bytes / mem_bandwidth and warp instructions / issue rate (4 schedulers per SM at
 * about 1.5 GHz). i2 reads 2 bits per weight; the RSR warp form reads 4 bytes per kept column
 * (≈ 4/k·(1−p0^k) bytes per weight), so on these GPUs i2 wins every real matrix and RSR only
 * competes where the index is tiny. These are predictions from the spec, not measurements.
 */
#include <math.h>
#include <string.h>

#include "print/printer.h"
#include "rsrc.h"

const char *const strategy_names[NUM_STRATEGIES] = {"auto", "rsr-unrolled", "rsr-loop", "i2", "lut"};

enum strategy strategy_parse(const char *name) {
    for (int s = 0; s < NUM_STRATEGIES; s++)
        if (strcmp(name, strategy_names[s]) == 0) return (enum strategy)s;
    return (enum strategy) - 1;
}

/* Fitted to --tune's measurements on the reference machine (1 thread); see the header comment. */
/* AVX-VNNI (bench_gemv --target avx-vnni on a Zen 5, 1 thread): decode as AVX2's (bound by the
 * bytes), the prefill tiles at 150-156 weights·tokens per ns (vpdpbusd where AVX2 spends three). */
/* AArch64 (no machine here to fit on; predictions from instruction counts, docs/arm64.md): per
 * group of 4 rows × 64 columns SDOT spends 16 sdot, 4 x loads, 4 weight loads and 24 shifts and
 * masks (about 0.19 NEON instructions per weight; at 4 per cycle and 3 GHz, 60 per ns); plain
 * NEON twice the multiplies' instructions (smull, smull2, sadalp ×2 per 16 products): 30. */
/* I8MM's tiles: per field of a group, 16 smmla, 12 zips and 6 decoding instructions for 8 tokens
 * (512 products) against SDOT's 16 sdot and 6 decoding for 4 (256): 1.32x fewer NEON instructions
 * per product (bench/arm_paper.py). */
static const double i2_weights_per_ns[DOT_ISA_COUNT] = {
    [DOT_SCALAR] = 5.7,     [DOT_AVX2] = 88, [DOT_AVXVNNI] = 88, [DOT_AVX512BW] = 180,
    [DOT_AVX512VNNI] = 280, [DOT_NEON] = 30, [DOT_SDOT] = 60,    [DOT_I8MM] = 60};
/* Prefill (RSR_BATCH_MAX tokens through the batched i2 kernel): weights·tokens per ns (AVX2: the
 * tiles with pair sums, bench_gemv --target avx2 on a Zen 5, 1 thread: 175-185; --target
 * avx512: 329-346). */
static const double i2_batch_weights_per_ns[DOT_ISA_COUNT] = {
    [DOT_SCALAR] = 10,      [DOT_AVX2] = 180, [DOT_AVXVNNI] = 155, [DOT_AVX512BW] = 340,
    [DOT_AVX512VNNI] = 375, [DOT_NEON] = 45,  [DOT_SDOT] = 110,    [DOT_I8MM] = 145};
/* lut (VBMI + VNNI; no batched form, so a prefill token costs a call): weights per ns of the
 * lookups and ns per column of building the call's tables, fitted to --tune (warm, 1 thread):
 * 197–247 weights per ns on the 2B-4T shapes against i2-vnni's 231–328, the tables too cheap to
 * separate from the noise (docs/history/performance-log.md). */
static const double lut_weights_per_ns = 215, lut_table_ns_per_col = 0.1;
static const double loop_ns_per_kept = 0.335, loop_ns_per_segment_row = 2.6, loop_ns_per_fold = 0.5;
static const double unrolled_ns_per_block = 4, unrolled_ns_per_kept = 0.06, unrolled_ns_per_digit = 0.08;
/* RSR lanes, relative to the tiles (header comment), fitted per instruction set: a full step of
 * lanes costs per_column of the tiles' time per column plus the tiles' time of per_block_columns
 * columns per block. The scalar and AArch64 targets have no fit (not measured), so auto keeps the tiles. */
typedef struct lanes_fit {
    const char *name;
    double per_column, per_block_columns;
    uint64_t l2; /* the L2 of the cores it was measured on: a target with less predicts no lanes */
} lanes_fit;
#define FIT_L2 (1u << 20) /* Zen 4 and Zen 5: 1 MiB */
static const lanes_fit lanes_fits[DOT_ISA_COUNT] = {
    /* Zen 5 running AVX2 code: tiles of 4 tokens × 2 rows, pair sums. The AVX2-only cores (Zen 2
     * and 3: 512 KiB of L2; Intel's before Ice Lake: 256 KiB) have less L2 than the lanes' groups
     * of passes take (RSR_LANES_X_BUDGET, half of 1 MiB), and a Zen 3 measured them no faster
     * than the tiles, which have been made 1.34x faster since (docs/history/performance-log.md) */
    [DOT_AVX2] = {"AVX2", 0.48, 613, FIT_L2},
    /* Zen 5 running AVX-VNNI code: tiles/lanes 0.57-1.12 at 2560 columns, 1.13-1.34 at 6912 */
    [DOT_AVXVNNI] = {"AVX-VNNI", 0.61, 1155, FIT_L2},
    /* Zen 5 running AVX-512 BW code (no VNNI): tiles of pair sums, tiles/lanes 0.69-0.86 at 2560
     * columns, 1.05-1.08 at 6912 (one run): the tiles everywhere */
    [DOT_AVX512BW] = {"AVX-512", 0.73, 1468, FIT_L2},
    [DOT_AVX512VNNI] = {"AVX-512 VNNI", 0.63, 650, FIT_L2},
};

static const lanes_fit *lanes_fit_of(const rsrc_target *tg) {
    enum dot_isa isa = tg->isa;
    return dot_isa_x86(isa) ? &lanes_fits[isa] : NULL;
}

double plan_lanes_gain(const ternary_matrix *t, const rsrc_target *tg) {
    const lanes_fit *f = lanes_fit_of(tg);
    if (!f) f = &lanes_fits[DOT_AVX512VNNI]; /* forced lanes on the scalar target: a figure to print */
    return 1 / (f->per_column + f->per_block_columns / t->cols);
}

static int plan_lanes_from(double gain) {
    int n = (int)ceil(RSR_LANES / gain);
    return n < RSR_LANES_EVERY_STEP ? RSR_LANES_EVERY_STEP : n > RSR_LANES ? RSR_LANES : n;
}

/* Whether plan_prefill may choose the lanes on this target (so --target host measures them):
 * asked for, or auto where the cost model has a fit for the target's instruction set. */
bool plan_may_use_lanes(const rsrc_target *tg, enum prefill_form prefill) {
    if (tg->kind == TK_CUDA || prefill == PREFILL_TILES) return false;
    return prefill == PREFILL_LANES || lanes_fit_of(tg) != NULL;
}

void plan_prefill(const ternary_matrix *t, const rsrc_target *tg, enum prefill_form prefill, double measured_gain,
                  matrix_plan *mp) {
    mp->lanes_min = 0;
    if (mp->strategy != STRAT_I2 || !kernel_lanes_possible(t, tg)) return;
    const lanes_fit *fit = lanes_fit_of(tg);
    double gain = plan_lanes_gain(t, tg);
    char why[200];
    if (prefill == PREFILL_TILES) {
        snprintf(why, sizeof why, "tiles (--prefill=i2; RSR lanes predicted %.2fx as fast)", gain);
    } else if (prefill == PREFILL_LANES) {
        mp->lanes_min = RSR_LANES_EVERY_STEP;
        snprintf(why, sizeof why, "RSR lanes (--prefill=rsr; predicted %.2fx as fast as the tiles)", gain);
    } else if (measured_gain >= PLAN_LANES_GAIN) {
        mp->lanes_min = plan_lanes_from(measured_gain);
        snprintf(why, sizeof why, "RSR lanes from %d tokens, tiles below (full steps measured %.2fx as fast here)",
                 mp->lanes_min, measured_gain);
    } else if (measured_gain > 0) {
        snprintf(why, sizeof why,
                 "tiles (RSR lanes measured %.2fx as fast here, under %.2fx: not worth 0.5 bytes per weight; "
                 "predicted %.2fx)",
                 measured_gain, PLAN_LANES_GAIN, gain);
    } else if (!fit) {
        snprintf(why, sizeof why, "tiles (no cost fit of the RSR lanes for %s dot products)", dot_isa_names[tg->isa]);
    } else if (tg->l2 && tg->l2 < fit->l2) {
        snprintf(why, sizeof why,
                 "tiles (RSR lanes not predicted: the %s cost fit, %.2fx, was measured on cores with %llu KiB of "
                 "L2 and this target has %llu KiB)",
                 fit->name, gain, (unsigned long long)(fit->l2 >> 10), (unsigned long long)(tg->l2 >> 10));
    } else if (gain >= PLAN_LANES_GAIN) {
        mp->lanes_min = plan_lanes_from(gain);
        snprintf(why, sizeof why,
                 "RSR lanes from %d tokens, tiles below (full steps predicted %.2fx as fast; %s cost fit)",
                 mp->lanes_min, gain, fit->name);
    } else {
        snprintf(why, sizeof why,
                 "tiles (RSR lanes predicted %.2fx as fast, under %.2fx: not worth 0.5 bytes per weight; %s cost fit)",
                 gain, PLAN_LANES_GAIN, fit->name);
    }
    size_t n = strlen(mp->why);
    snprintf(mp->why + n, sizeof mp->why - n, "; prefill: %s", why);
}

/* Predicted ns of an RSR form at block size k, and (unrolled) its code bytes as kernel.c
 * estimates them from the real plan. */
static double segments_time(const ternary_matrix *t, enum strategy s, int k, double *code_bytes) {
    rsrc_sample_stats st;
    rsrc_sample_blocks(t, k, &st);
    double fold = t->binary ? (double)(1u << k) : 0, block;
    if (s == STRAT_RSR_UNROLLED)
        block = unrolled_ns_per_block + unrolled_ns_per_kept * st.kept + unrolled_ns_per_digit * (st.digits + fold);
    else
        block = loop_ns_per_kept * st.kept + loop_ns_per_segment_row * k * st.segments + loop_ns_per_fold * fold;
    if (code_bytes) *code_bytes = st.blocks * (6 * st.kept + 4 * st.digits + 8 * fold + 16);
    return block * st.blocks;
}

double plan_predict(const ternary_matrix *t, const rsrc_target *tg, enum strategy s, int k, bool prefill) {
    double weights = (double)t->rows * (double)t->cols;
    enum dot_isa isa = tg->isa;
    if (s == STRAT_I2) return weights / (prefill ? i2_batch_weights_per_ns[isa] : i2_weights_per_ns[isa]);
    if (s == STRAT_LUT) return weights / lut_weights_per_ns + t->cols * lut_table_ns_per_col;
    return segments_time(t, s, k, NULL); /* no batched RSR kernel: a prefill token costs a call */
}

bool plan_allowed(const rsrc_target *tg, enum strategy s) {
    if (tg->nstrategies == 0) return true;
    for (int i = 0; i < tg->nstrategies; i++) {
        const char *n = tg->strategies[i];
        if (strcmp(n, strategy_names[s]) == 0) return true;
        if (strcmp(n, "rsr") == 0 && (s == STRAT_RSR_LOOP || s == STRAT_RSR_UNROLLED)) return true;
    }
    return false;
}

/* A candidate of the cost model and --tune: allowed by the spec, and (lut) with the vector form
 * on this target; --strategy=lut still forces the scalar form where the C backend prints it. */
bool plan_candidate(const rsrc_target *tg, enum strategy s) {
    if (s == STRAT_LUT && !target_lut_vector(tg)) return false;
    return plan_allowed(tg, s);
}

static double gpu_time(const rsrc_target *g, double bytes, double warp_instructions) {
    double mem = bytes / g->bytes_per_ns, issue = warp_instructions / ((double)g->sms * 4 * 1.5);
    return mem > issue ? mem : issue;
}

/* The RSR warp form for block size k: its bytes and time (see kernel.c for the loop). */
static double gpu_rsr_time(const ternary_matrix *t, const rsrc_target *g, int k, double *bytes) {
    rsrc_sample_stats st;
    rsrc_sample_blocks(t, k, &st);
    double chunks = (st.kept + 31) / 32;
    *bytes = 4 * st.kept * st.blocks + 4.0 * (st.blocks + 1);
    return gpu_time(g, *bytes, st.blocks * (chunks * (26 + 3.0 * k) + 10.0 * k + 10));
}

static void plan_gpu(const ternary_matrix *t, const rsrc_target *g, enum strategy forced, int forced_k,
                     matrix_plan *out) {
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
    if (plan_allowed(g, STRAT_I2) && !t->unit_cols) out->cost[STRAT_I2] = i2_ns; /* dp4a sums whole rows */
    enum strategy best_s =
        out->cost[STRAT_I2] > 0 && (!out->cost[STRAT_RSR_LOOP] || i2_ns <= rsr_ns) ? STRAT_I2 : STRAT_RSR_LOOP;
    const char *reason = "least predicted time";
    if (forced != STRAT_AUTO)
        best_s = strategy_is_rsr(forced) ? STRAT_RSR_LOOP : STRAT_I2, reason = "forced by --strategy";
    out->strategy = best_s;
    char i2why[64] = "n/a (scales per group: dp4a sums whole rows)";
    if (!t->unit_cols) snprintf(i2why, sizeof i2why, "%.0f (%.2f MB)", i2_ns, i2_bytes / 1e6);
    snprintf(out->why, sizeof out->why, "%s (%s); predicted ns on %s: rsr-warp=%.0f (%.2f MB, k=%d) i2-dp4a=%s; %s",
             best_s == STRAT_I2 ? "i2" : "rsr-warp", reason, g->name, rsr_ns, rsr_bytes / 1e6, k, i2why, kwhy);
}

void plan_matrix(const ternary_matrix *t, const rsrc_target *tg, enum strategy forced, int forced_k, matrix_plan *out) {
    memset(out, 0, sizeof *out);
    const bool units_i2 = kernel_units_isa(tg, t) >= 0;
    if (t->unit_cols && forced == STRAT_I2 && (tg->kind == TK_CUDA || !units_i2))
        rsrc_fatal(
            "tensor '%s': its scales per group of columns (or the activations' per block) have kernels of the RSR "
            "forms, lut on a CPU and, where a unit of %d columns fits a CPU target's vectors, i2; not "
            "--strategy=i2 on %s",
            t->name, t->unit_cols, tg->name);
    if (tg->kind == TK_CUDA) {
        plan_gpu(t, tg, forced, forced_k, out);
        return;
    }
    /* Each RSR form at the k of least predicted time (or --rsr-k's); the unrolled form only
     * while its code fits the target's icache budget. */
    char kwhy[256];
    int kn = snprintf(kwhy, sizeof kwhy, "loop ns/row");
    int k_of[NUM_STRATEGIES] = {0};
    for (int s = STRAT_RSR_UNROLLED; s <= STRAT_RSR_LOOP; s++) {
        if (!plan_allowed(tg, (enum strategy)s)) continue;
        double best_ns = 0;
        for (int k = forced_k ? forced_k : 1; k <= (forced_k ? forced_k : RSR_MAX_K); k++) {
            double code, ns = segments_time(t, (enum strategy)s, k, &code);
            if (s == STRAT_RSR_LOOP && (size_t)kn < sizeof kwhy)
                kn += snprintf(kwhy + kn, sizeof kwhy - (size_t)kn, " k%d=%.0f", k, ns / t->rows);
            if (s == STRAT_RSR_UNROLLED && code > tg->unroll_budget) continue;
            if (!k_of[s] || ns < best_ns) best_ns = ns, k_of[s] = k;
        }
        if (k_of[s]) out->cost[s] = best_ns;
    }
    if (forced_k) snprintf(kwhy, sizeof kwhy, "k=%d forced by --rsr-k", forced_k);
    for (int s = STRAT_I2; s < NUM_STRATEGIES && !t->unit_cols; s++)
        if (plan_candidate(tg, (enum strategy)s)) out->cost[s] = plan_predict(t, tg, (enum strategy)s, 0, false);
    if (units_i2 && plan_allowed(tg, STRAT_I2)) { /* the source rows' i2, a sum per unit: as 2 rows' work */
        ternary_matrix src = *t;
        src.rows = 2 * t->src_rows, src.unit_cols = 0;
        out->cost[STRAT_I2] = plan_predict(&src, tg, STRAT_I2, 0, false);
    }
    if (t->unit_cols && plan_candidate(tg, STRAT_LUT)) { /* a block sums the groups of its unit (kernel.c) */
        double window = LUT_GROUP_COLS * ((t->unit_cols + LUT_GROUP_COLS - 1) / LUT_GROUP_COLS + 1);
        out->cost[STRAT_LUT] = (double)t->rows * (window < t->cols ? window : t->cols) / lut_weights_per_ns +
                               t->cols * lut_table_ns_per_col;
    }

    enum strategy best = STRAT_AUTO;
    for (int s = 1; s < NUM_STRATEGIES; s++)
        if (out->cost[s] > 0 && (best == STRAT_AUTO || out->cost[s] < out->cost[best])) best = (enum strategy)s;
    if (best == STRAT_AUTO) best = STRAT_RSR_LOOP; /* a spec that allows nothing usable */
    const char *reason = "least predicted time";
    char bytes_why[96];
    if (best == STRAT_LUT && t->unit_cols && out->cost[STRAT_I2] > 0 &&
        out->cost[STRAT_I2] < PLAN_BYTES_GAIN * out->cost[STRAT_LUT]) {
        snprintf(bytes_why, sizeof bytes_why, "lut predicted %.2fx as fast, under %.2fx: not worth 1 more bit a weight",
                 out->cost[STRAT_I2] / out->cost[STRAT_LUT], PLAN_BYTES_GAIN);
        best = STRAT_I2, reason = bytes_why;
    }
    if (forced != STRAT_AUTO) best = forced, reason = "forced by --strategy";
    out->strategy = best;
    /* the k of the chosen form; a forced unrolled form over the budget takes the loop's k */
    out->k = k_of[best] ? k_of[best] : k_of[STRAT_RSR_LOOP] ? k_of[STRAT_RSR_LOOP] : forced_k ? forced_k : 4;
    if (best == STRAT_RSR_UNROLLED && !k_of[best] && !forced_k) {
        double b = 0;
        for (int k = 1; k <= RSR_MAX_K; k++) {
            double ns = segments_time(t, best, k, NULL);
            if (k == 1 || ns < b) b = ns, out->k = k;
        }
    }

    int n = snprintf(out->why, sizeof out->why, "%s (%s); predicted ns:", strategy_names[best], reason);
    for (int s = 1; s < NUM_STRATEGIES && (size_t)n < sizeof out->why; s++) {
        if (out->cost[s] > 0)
            n += snprintf(out->why + n, sizeof out->why - (size_t)n, " %s=%.0f", strategy_names[s], out->cost[s]);
        else
            n += snprintf(out->why + n, sizeof out->why - (size_t)n, " %s=n/a", strategy_names[s]);
    }
    if ((size_t)n < sizeof out->why && (best == STRAT_RSR_LOOP || best == STRAT_RSR_UNROLLED))
        snprintf(out->why + n, sizeof out->why - (size_t)n, "; %s", kwhy);
}
