/*
 * kernel.c — lowering an RSR plan to a kernel description.
 *
 * A kernel computes the exact int32 products of one matrix for a range of row blocks:
 *
 *   for each block b:                                  acc[0..k) = 0
 *     for each segment s of b:  u = Σ x[perm[j]]       (segmented sum, gathered)
 *       ternary:  acc[r] += digit(code_s, r) · u       (signed scatter, digits in {-1,0,1})
 *       binary:   U[code_s] = u                        (then RSR++ fold: y_r = 2·P_r − T)
 *     y[b·k + r] = acc[r]
 *
 * Five forms lower a matrix (kernel_lower chooses by strategy and target; the printers, by the
 * capability table in matrix.c):
 *   KF_UNROLLED  every segment becomes straight-line code: the column indices are immediate
 *                load offsets and the pattern digits choose add/sub — the index exists only as
 *                instructions. Chosen when the code fits the target's unroll budget.
 *   KF_LOOP      the loop above, with k, rows and the data layout as constants, over the index
 *                data placed in the artifact's blob:
 *                  u32 block_seg[blocks+1], u32 block_col[blocks+1],
 *                  u32 seg[segments] = code | len << 16, u16 perm[kept]
 *   KF_I2        no RSR index: the weights are packed as 2-bit codes c = w + 1 and each row is
 *                Σ c·x − Σ x, computed with the widest integer dot product of the target
 *                (vpdpbusd with AVX-512 VNNI, and on ymm with AVX-VNNI; vpmaddubsw + vpmaddwd
 *                with AVX-512 BW or AVX2; scalar otherwise). A block is 4 rows that share every load of x.
 *                  block b, group g (4V columns, V = vector bytes), row r, byte j: codes of
 *                  columns g*4V + i*V + j in bits 2i..2i+1 (i = 0..3), so one shift and one
 *                  mask give the codes of V consecutive columns; padding columns hold code 0.
 *                  The rows of a block are interleaved group by group, so a block is read as
 *                  one sequential stream (one prefetch stream per thread, not four).
 *                With AVX-512 the fields are not shifted down: field i is masked in place, so its
 *                codes are scaled by 4^i (at most 128, still a u8; maddubs pair sums stay within
 *                int16), into one accumulator per field, and the exact multiple of 4^i is shifted
 *                back once per row at the end — 9 instructions per row and group instead of 12.
 *                AVX2 (16 registers) shifts the fields down, but sums a row's vpmaddubsw pair
 *                sums in 16-bit lanes for runs of up to 16 groups and widens them once a run
 *                (vpmaddwd; dot_isa_pair_sums): one multiply per 32 columns instead of two.
 *                The caller's x is zero past `cols` up to a multiple of RSR_X_PAD (Σ x then
 *                needs no bounds), see rsr_artifact.h.
 *   KF_I2 batched (prefill) forms, rsr_kernel_N_batch for up to RSR_BATCH_MAX (256) tokens:
 *     tiles       per block, tiles of batch_tile tokens share each decoded field (the codes
 *                 above, no data of its own). AVX2 and AVX-512 BW take half a block (tile_rows)
 *                 at a time and add pair sums in 16 bits for runs of groups, as AVX2's one-token
 *                 kernel does. A step's tokens go in tiles of batch_tile, then of 2, then one by one.
 *     RSR lanes   (lanes_min > 0; plan_prefill chooses) RSR with the tokens in vector lanes, for
 *                 steps of at least lanes_min tokens (fewer go through the tiles, which cost in
 *                 proportion to the tokens while a pass of lanes costs the same for 1 or 64; so
 *                 does a rest under lanes_min after whole passes). A pass is 64 tokens; the
 *                 passes go lanes_group at a time, each block's index read once per group
 *                 while their transposed x (RSR_LANES_X_BUDGET) stays in L2. x is transposed
 *                 once per call into 64 bytes per column and pass, one byte per token,
 *                 biased to unsigned (x + 128; 16-bit lane i holds token i in its low byte and
 *                 token 32 + i in its high byte). Per block of 4 rows the columns are sorted by
 *                 their pattern (81 codes, c = Σ_r (w_r + 1)·3^r; the all-zero pattern dropped)
 *                 and each code's segment is summed as whole 64-byte columns: per column one
 *                 16-bit add of the bytes as words (256·hi + lo, wrapping) and one of the high
 *                 bytes shifted down, so Σ hi is exact and Σ lo = words − 256·Σ hi is exact mod
 *                 2^16 — both below 2^16 for runs of at most RSR_LANE_RUN columns, after which
 *                 they are widened to int32. The segment's sums are added to or subtracted from
 *                 the rows its digits name (constants of the code: the 80 segments are unrolled,
 *                 once per artifact in rsr_lanes_block) and the bias comes off at the end as
 *                 128·Σ_c w[r][c], a constant of the row. Per column and block that is 3 vector
 *                 operations for 4 rows × 64 tokens, against 4 vpdpbusd plus decoding for the
 *                 tiles: fewer operations, RSR's gain. Where vector registers are narrower
 *                 than 512 bits the 16 accumulators do not fit: there the block's helper stores
 *                 each segment's sums (L1) and sums the rows from them after the last segment,
 *                 and takes two passes per call (lanes_pairs), so that each column's index entry
 *                 and each segment's loop serve 128 tokens. Data after the i2 codes, per block:
 *                   u16 header[96]: seg_end[81] (end of code c's segment in perm), pad,
 *                                   i32 row_sum[4] at u16 index 88
 *                 then u16 perm[blocks][lane_cols] (zero past the kept columns).
 *   KF_I2 per unit, rows in lanes (rows_in_lanes: x86 and ARM's sdot, rows a multiple of L = V/4):
 *                blocks of L rows (4 in a NEON q register, 8 on ymm, 16 on AVX-512 VNNI's zmm), V
 *                bytes per 16 columns, field f of byte 4·r + c the code of row r at column
 *                16·h + 4·f + c; a field against the 4 bytes of x at its columns, broadcast, is one
 *                vpdpbusd (VNNI), sdot, or vpmaddubsw (then widened) whose int32 lane r is row r's
 *                sum: a unit's L sums are stored as they are. Every i2 form per unit writes its
 *                sums block by block from the call's first block (rsr_artifact_matrix.sums_block;
 *                unit_stride here is the block's rows).
 *   KF_I2 on a GPU (DOT_DP4A): the first KF_I2 layout with V = 4, so one 32-bit word of a row holds
 *                16 columns and `(word >> 2i) & 0x03030303` feeds dp4a with x's word i; a warp
 *                takes a block of 4 rows, its lanes stride over the words (coalesced loads).
 *   KF_LUT       no RSR index and no multiplies by weights: columns go in triplets, and a
 *                triplet of a row (w0, w1, w2) is stored as its pattern n = 9(w0+1) + 3(w1+1) +
 *                (w2+1), 5 bits per 3 weights (1.67 bits per weight). Per call, each triplet of x
 *                gets a table of its 27 pattern sums Σ w_j·x_j (|·| ≤ 384: int16, kept as a
 *                low-byte and a high-byte plane), and a row's sum is lookups:
 *                  group g = triplets 4g..4g+3 (LUT_GROUP_COLS columns); per block of 32 rows:
 *                    64 bytes: byte 4k + L, nibble 0: bits 0-3 of the pattern of row k, triplet
 *                              4g + L; nibble 1: the same for row 16 + k
 *                    2 × u64: bit 4k + L of mask h is bit 4 of the pattern of row 16h + k
 *                  tables of group g, 4 × 64 bytes: low plane of triplets 0-1 (byte 32L + n),
 *                    of triplets 2-3, high plane of 0-1, of 2-3; entries 27..31 are zero
 *                With AVX-512 (VBMI, VNNI) the index byte 4k + L is the pattern | 32·L, so one
 *                vpermt2b looks up 64 (row, triplet) pairs in the group's two registers of a
 *                plane, and vpdpbusd adds each row's four bytes into its int32 lane: one sum of
 *                low bytes (unsigned) and one of high bytes (signed) per row, 256·high + low at
 *                the end. The tables are built from the 14 patterns whose first nonzero digit is
 *                +1 (pattern 26 − n is −n) with one vpermt2b per plane and pair of triplets.
 *                Scalar C reads the same layout.
 *   KF_WARP      RSR for a GPU, as the GPU RSR work tuned it: a warp per block of k rows; its
 *                lanes take 32 consecutive kept columns at a time, a segmented sum across the
 *                lanes (shuffles; a segment is a run of equal codes) leaves each segment's sum
 *                in its first lane, which applies the k digits; the k row sums are warp sums.
 *                  u32 block_col[blocks+1], u32 entry[kept] = column | code << 16
 * The lowering (lower.c; cuda/compiler/lower_gpu.c for the GPU forms) turns this description into
 * kernel IR once per matrix; the printers (emit_c.c, emit_llvm.c, cuda/compiler/emit_cuda.c)
 * translate that IR and decide nothing about the algorithm.
 */
#include <stdlib.h>
#include <string.h>

#include "print/printer.h"
#include "rsrc.h"

/* Rough bytes of x86 code: a gathered add ~6, a segment's scatter ~4 per nonzero digit. */
uint64_t kernel_unrolled_code_estimate(const rsrc_plan *p) {
    uint64_t digits = 0;
    for (uint64_t s = 0; s < p->num_segments; s++)
        digits += p->binary ? (uint64_t)p->k : (uint64_t)__builtin_popcount(p->seg_code[s]);
    uint64_t fold = p->binary ? (uint64_t)p->num_blocks * (8u << p->k) : 0;
    return 6 * p->num_cols_kept + 4 * digits + fold + 16 * (uint64_t)p->num_blocks;
}

static uint64_t align64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

int dot_isa_vector_bytes(enum dot_isa isa) {
    switch (isa) {
    case DOT_DP4A: return 4;
    case DOT_AVX2:
    case DOT_AVXVNNI: return 32;
    case DOT_AVX512BW:
    case DOT_AVX512VNNI: return 64;
    default: return 16; /* scalar C, and NEON's 128-bit registers */
    }
}

int lut_spread(int h, int j, int l) { return 3 * (2 * h + l / 16) + j; }

void lut_digit_masks(int j, uint32_t *pos, uint32_t *neg) {
    *pos = *neg = 0;
    for (int l = 0; l < 32; l++) {
        int d = l % 16 < 14 ? lut_digit(13 + l % 16, j) : 0;
        if (d > 0) *pos |= 1u << l;
        if (d < 0) *neg |= 1u << l;
    }
}

/* Output byte o of plane hi (low 0, high 1): entry n = o % 32 of triplet o / 32: n >= 13 is
 * lane n − 13 of the sums, n < 13 lane 13 − n of their negations (pattern 26 − n is −n), n >= 27
 * the zero lane 14. */
int lut_plane_source(int hi, int o) {
    int t = o / 32, n = o % 32;
    if (n >= LUT_PATTERNS) return 2 * 14 + hi;
    return n >= 13 ? 2 * (16 * t + n - 13) + hi : 64 + 2 * (16 * t + 13 - n) + hi;
}

/* Wide registers (32 of them) hold four accumulators per row, so the shifts can go. */
bool dot_isa_field_scaled(enum dot_isa isa) { return isa == DOT_AVX512BW || isa == DOT_AVX512VNNI; }

/* With 16 registers the fields cannot have an accumulator each, so AVX2 shifts them down; but
 * vpmaddwd need not follow every vpmaddubsw. A lane of vpmaddubsw is c0·x0 + c1·x1 with codes
 * 0..2 and x in [-128, 127]: within [-512, 508]. A group adds four of them to a 16-bit lane,
 * [-2048, 2032], so 16 groups stay within [-32768, 32512] and are widened once (vpmaddwd by ones):
 * one multiply per 32 weights instead of two. The runs are of nearly equal length (lower.c): a short last
 * run was unrolled whole by LLVM, its x hoisted and spilled, and made 2560 columns 20% slower. */
bool dot_isa_pair_sums(enum dot_isa isa) { return isa == DOT_AVX2; }
/* The tiles add pair sums on AVX-512 BW too: its one-token kernel masks the fields in place (their
 * codes scaled by 4^i, whose pair sums would not fit 16 bits), the tiles shift them down. */
bool dot_isa_tile_pair_sums(enum dot_isa isa) { return isa == DOT_AVX2 || isa == DOT_AVX512BW; }
int dot_pair_sums_groups(void) { return 16; }

#define I2_BLOCK_ROWS 4
/* i2 per unit with rows in lanes, as AVX2's maddubs form does it (VNNI's: the same layout, vpdpbusd
 * straight into the lanes, 16 rows on zmm): a block of 8 rows, each int32 lane of an accumulator one row's sum, so a unit's sums are stored as they are, with no horizontal adds. A
 * block's 32 bytes for each 16 columns hold, in byte 4·r + c, field f (bits 2f, 2f+1), the code of
 * row r at column 16·h + 4·f + c: field f of a group's bytes is 8 rows × 4 columns, multiplied by
 * the 4 bytes of x at those columns broadcast to every lane (vpmaddubsw), each lane's pair sums
 * added in 16 bits over the unit (at most 32 such products a run: 32·2·3·128 < 2^15) and widened
 * once. Per 32 weights a token: a broadcast load, vpmaddubsw and vpaddw; the fields decoded once
 * for a tile of tokens. */
#define GPU_CTA_WARPS 8    /* LLVM NVPTX entries: 256 threads, a warp per block of rows */
#define GPU_GROUP_WARPS 16 /* NVRTC group entries: 512 threads that share the input they make */

/* Warps sharing a block of rows in a group entry: enough that each lane has a few 16-byte groups
 * (i2) or 32-entry chunks (RSR) to read, at most the whole thread block. A block makes its input
 * itself, so it should also have rows enough to pay for that: the rest of its warps take further
 * row blocks. */
static int32_t gpu_split(int32_t units_per_block) {
    int32_t s = 1;
    while (s < GPU_GROUP_WARPS && units_per_block > 128 * s) s *= 2;
    return s;
}

/* The groups [*g0, *g1) that block b of a lut over an expanded matrix needs. */
static void lut_window_of(const rsrc_kernel *kn, int32_t b, int32_t *g0, int32_t *g1) {
    int32_t c0, c1;
    ternary_block_cols(kn->tm, b * LUT_ROWS, LUT_ROWS, &c0, &c1);
    *g0 = c0 / LUT_GROUP_COLS, *g1 = (c1 + LUT_GROUP_COLS - 1) / LUT_GROUP_COLS;
}

/* Block b's first group under the widest window: its own, moved back where the window would pass
 * the last group (the groups it takes in then are zero in its rows). */
static int32_t lut_window_start(const rsrc_kernel *kn, int32_t b) {
    int32_t g0, g1;
    lut_window_of(kn, b, &g0, &g1);
    return g0 < kn->groups - kn->lut_window ? g0 : kn->groups - kn->lut_window;
}

void kernel_lower(rsrc_kernel *kn, const ternary_matrix *tm, const rsrc_plan *p, const rsrc_target *t, enum strategy s,
                  int index, int lanes_min) {
    memset(kn, 0, sizeof *kn);
    kn->symbol = xasprintf("rsr_kernel_%d", index);
    kn->rows = tm->rows;
    kn->cols = tm->cols;
    kn->tm = tm;
    kn->data_offset = RSR_NO_TENSOR;
    kn->kind = t->kind;
    bool nvptx = t->kind == TK_CUDA && t->backend->gpu_entries;
    if (t->kind == TK_CUDA) kn->cta_warps = nvptx ? GPU_CTA_WARPS : GPU_GROUP_WARPS, kn->gpu_split = 1;
    kn->gpu_entry = t->kind == TK_CUDA && nvptx;
    if (s == STRAT_I2) {
        /* a matrix summed per unit (scales per group): its source rows, one sum per unit each
         * (lower_i2_units; lower_units_batch for several tokens) */
        int isa = tm->unit_cols ? kernel_units_isa(t, tm) : (int)t->isa;
        if (isa < 0)
            rsrc_fatal("internal error: %s: no i2 form per unit of %d columns on %s", tm->name, tm->unit_cols, t->name);
        kn->form = KF_I2;
        kn->isa = (enum dot_isa)isa;
        kn->vec_bytes = dot_isa_vector_bytes(kn->isa);
        kn->rows = tm->unit_cols ? tm->src_rows : tm->rows;
        kn->unit_cols = tm->unit_cols;
        kn->groups = (tm->cols + 4 * kn->vec_bytes - 1) / (4 * kn->vec_bytes);
        kn->block_rows = I2_BLOCK_ROWS;
        kn->num_blocks = (kn->rows + I2_BLOCK_ROWS - 1) / I2_BLOCK_ROWS;
        if (t->kind != TK_CUDA) kn->batch_symbol = xasprintf("rsr_kernel_%d_batch", index);
        if (tm->unit_cols) { /* tiles as below; per unit, the accumulators live for a unit's fields only */
            kn->strategy = "i2-units";
            kn->batch_tile = kn->vec_bytes == 32 ? 2 : 4;
            /* rows in lanes wherever they fit: AVX-512 VNNI's 16 rows a zmm (vpdpbusd into each row's
             * lane, 64 products an instruction), else 8 rows a ymm on AVX2 and AVX-VNNI (a unit's 8 sums
             * stored as they are also beats vpdpbusd over rows across the lanes and their reductions) */
            const int zmm = dot_isa_vector_bytes(DOT_AVX512VNNI);
            if (t->isa == DOT_AVX512VNNI && kn->rows % (zmm / 4) == 0 && kn->cols % (4 * zmm) == 0 &&
                tm->unit_cols % I2_LANE_COLS == 0) {
                kn->isa = DOT_AVX512VNNI, kn->vec_bytes = zmm;
                kn->groups = kn->cols / (4 * zmm);
            }
            const int lane_rows = kn->vec_bytes / 4; /* a row per int32 lane */
            /* and 4 rows a q register with sdot (SDOT, and I8MM, whose smmla tiles have no form per
             * unit): sdot straight into each row's lane, the runtime's NEON kernel fusing the scales */
            bool lanes = kn->isa == DOT_AVX2 || kn->isa == DOT_AVXVNNI || kn->isa == DOT_AVX512VNNI ||
                         kn->isa == DOT_SDOT || kn->isa == DOT_I8MM;
            if (lanes && kn->rows % lane_rows == 0 && tm->unit_cols % I2_LANE_COLS == 0) {
                kn->rows_in_lanes = true, kn->strategy = "i2-units-rows";
                kn->block_rows = lane_rows, kn->num_blocks = kn->rows / lane_rows;
                /* ymm: 4 tokens' 16-bit and int32 sums, a field and x: 10 of 16 registers; zmm: 8
                 * tokens' sums, a group's 4 fields and its bytes: 13 of 32 */
                kn->batch_tile = kn->vec_bytes == 64 ? 8 : 4;
                if (kn->block_rows * i2_row_bytes(kn) != lane_rows * kn->cols / 4) /* V bytes per 16 columns */
                    rsrc_fatal("internal error: %s: rows in lanes over %d columns", tm->name, kn->cols);
            }
            kn->unit_stride = kn->block_rows; /* the sums go by blocks (rsr_artifact_matrix.sums_block) */
            if (rsr_units_base3(kernel_units_layout(kn))) kn->strategy = "i2-units-base3"; /* its codes' layout */
            return;
        }
        /* tokens per tile of the batched kernel: block_rows × tile accumulators, the decoded
         * fields and an x vector must fit the vector registers (32 zmm: 16 + 4 + 1; AVX-VNNI's 16
         * ymm: 8 + 4 + 1). Tiles are the outer loop and blocks the inner one, so a tile's x (4 tokens,
         * 10–28 KB) stays in L1 while the weights stream past: 84–88% of the vpdpbusd peak on
         * the 2B-4T shapes, against 67–75% with blocks outside (x re-read from L2 per block) and
         * no better with 5 or 6 tokens (the wider tiles spill). */
        kn->batch_tile = kn->vec_bytes == 32 ? 2 : 4;
        kn->tile_rows = kn->block_rows;
        /* AVX2 and AVX-512 BW add 16-bit pair sums (dot_isa_tile_pair_sums), widened once a run
         * into int32 sums that wait in memory meanwhile, and are bound by their vector ALUs (the
         * decode's shifts and masks beside one vpmaddubsw and one vpaddw per field, row and token):
         * half a block at a time for 4 tokens decodes each field for twice the tokens of 2 × 4.
         * bench_gemv --target avx2, Zen 5, G weight·tokens/s a thread: 4 tokens × 2 rows 177-185,
         * 2 × 4 157-171, 3 × 2 174-181, 4 × 1 160-185, 8 × 1 164-200 (x of 8 tokens leaves L1 at
         * 6912 columns, and a row at a time reads each block's lines four times); --target
         * avx512: 4 × 2 341-351, 8 × 2 282-372, vpmaddwd per field (before) 236-241. */
        if (dot_isa_tile_pair_sums(kn->isa)) kn->batch_tile = 4, kn->tile_rows = 2;
        /* smmla: 2 row pairs × 4 token pairs of 4-lane accumulators (8 of NEON's 32 registers), so
         * a decoded field serves 8 tokens (lower.c, lower_tile_mmla) */
        if (kn->isa == DOT_I8MM) kn->batch_tile = 8;
        if (lanes_min > 0 && kernel_lanes_possible(tm, t)) {
            uint64_t i2 = (uint64_t)kn->num_blocks * I2_BLOCK_ROWS * (uint64_t)i2_row_bytes(kn);
            kn->lanes_min = lanes_min;
            kn->lane_cols = (tm->cols + RSR_LANES - 1) / RSR_LANES * RSR_LANES;
            kn->off_lane_seg = align64(i2);
            kn->off_lane_perm = kn->off_lane_seg + 2 * RSR_LANE_SEG_STRIDE * (uint64_t)kn->num_blocks;
        }
        if (t->kind == TK_CUDA && !nvptx) kn->gpu_split = gpu_split(i2_row_bytes(kn) / 4); /* 16-byte groups */
        kn->strategy = kn->isa == DOT_DP4A         ? "i2-dp4a"
                       : kn->isa == DOT_AVX512VNNI ? "i2-vnni"
                       : kn->isa == DOT_AVXVNNI    ? "i2-avxvnni"
                       : kn->isa == DOT_SCALAR     ? "i2-scalar"
                       : kn->isa == DOT_NEON       ? "i2-neon"
                       : kn->isa == DOT_SDOT       ? "i2-sdot"
                       : kn->isa == DOT_I8MM       ? "i2-i8mm"
                                                   : "i2-maddubs";
        return;
    }
    if (s == STRAT_LUT) {
        kn->form = KF_LUT;
        kn->isa = t->isa;
        kn->lut_vector = target_lut_vector(t);
        kn->groups = (tm->cols + LUT_GROUP_COLS - 1) / LUT_GROUP_COLS;
        kn->block_rows = LUT_ROWS;
        kn->num_blocks = (tm->rows + LUT_ROWS - 1) / LUT_ROWS;
        kn->strategy = kn->lut_vector ? "lut-vpermb" : "lut-scalar";
        if (tm->unit_cols) { /* expanded per unit: a block keeps the groups its units' columns lie in */
            for (int32_t b = 0; b < kn->num_blocks; b++) {
                int32_t g0, g1;
                lut_window_of(kn, b, &g0, &g1);
                if (g1 - g0 > kn->lut_window) kn->lut_window = g1 - g0;
            }
            kn->strategy = kn->lut_vector ? "lut-units-vpermb" : "lut-units-scalar";
        }
        return;
    }
    if (!p) rsrc_fatal("internal error: %s lowered as RSR without a plan", tm->name);
    kn->plan = p;
    kn->block_rows = p->k;
    kn->num_blocks = p->num_blocks;
    if (t->kind == TK_CUDA) { /* the GPU has one RSR form, whatever RSR strategy was asked for */
        kn->form = KF_WARP;
        kn->strategy = p->binary ? "rsr-binary-warp" : "rsr-warp";
        kn->off_block_col = 0;
        kn->off_entry = align64(4 * ((uint64_t)p->num_blocks + 1));
        if (!nvptx) /* an LLVM NVPTX entry's block is one warp's */
            kn->gpu_split = gpu_split((int32_t)(p->num_cols_kept / (uint64_t)(p->num_blocks ? p->num_blocks : 1)));
        return;
    }
    if (s == STRAT_RSR_UNROLLED) {
        kn->form = KF_UNROLLED;
        kn->strategy = p->binary ? "rsr-binary-unrolled" : "rsr-unrolled";
        return;
    }
    kn->form = KF_LOOP;
    kn->strategy = p->binary ? "rsr-binary-loop" : "rsr-loop";
    uint64_t nb = (uint64_t)p->num_blocks + 1;
    kn->off_block_seg = 0;
    kn->off_block_col = align64(4 * nb);
    kn->off_seg = kn->off_block_col + align64(4 * nb);
    kn->off_perm = kn->off_seg + align64(4 * p->num_segments);
}

/* The dot ISA of the i2 form of a matrix summed per unit of columns (ternary_matrix.unit_cols), or
 * -1: a field of V columns may not straddle a unit, and a unit lies in a group of 4V or spans 2 to
 * 4 whole ones (unit % V == 0, 4V % unit == 0 or unit % 4V == 0, cols a multiple of both).
 * AVX-512's 64-byte fields are too wide for units of 32, so its targets take 32-byte ones
 * (AVX-VNNI's form of vpdpbusd with VNNI and VL, else AVX2's), in either printer (the C printer
 * prints a second ISA's helpers under its name: emit_c_dot_helpers). */
int kernel_units_isa(const rsrc_target *t, const ternary_matrix *tm) {
    if (t->kind == TK_CUDA || !tm->unit_cols) return -1;
    enum dot_isa isa = t->isa;
    /* VNNI's vpdpbusd on ymm where AVX512VL allows it (EVEX): one instruction for AVX2's three */
    if (isa == DOT_AVX512VNNI && target_has_feature(t, "avx512vl")) isa = DOT_AVXVNNI;
    if (isa == DOT_AVX512BW || isa == DOT_AVX512VNNI) isa = DOT_AVX2;
    int V = dot_isa_vector_bytes(isa), U = tm->unit_cols, G = 4 * V;
    /* a group of 4V columns holds whole units, or a unit 2 to 4 whole groups (lower.c units_groups) */
    bool fits = U % V == 0 && (G % U == 0 || (U % G == 0 && U / G <= 4));
    return fits && tm->cols % (U > G ? U : G) == 0 ? (int)isa : -1;
}

/* The lanes form exists for i2 on CPU targets, with column numbers that fit its u16 permutation. */
bool kernel_lanes_possible(const ternary_matrix *t, const rsrc_target *tg) {
    return tg->kind != TK_CUDA && t->cols <= 65535;
}

uint64_t lanes_scratch_bytes(const rsrc_kernel *kn) { return (uint64_t)(kn->cols + 63) / 64 * 64 * RSR_LANES; }

/* Passes of lanes that share each block's index: as many as keep their x in half of L2. */
int lanes_group(const rsrc_kernel *kn) {
    uint64_t g = RSR_LANES_X_BUDGET / lanes_scratch_bytes(kn), most = RSR_BATCH_MAX / RSR_LANES;
    if (kn->vec_bytes < 64 && g > 2) g &= ~(uint64_t)1; /* whole pairs (lanes_pairs) */
    return g < 1 ? 1 : g > most ? (int)most : (int)g;
}

/* Whether a block takes two passes at once (the helpers' two-pass form): where the block is
 * staged and two passes' x fit the budget. Each column's index entry then serves 128 tokens, and
 * each segment's loop (its setup, its mispredicted exit) too. */
bool lanes_pairs(const rsrc_kernel *kn) { return kn->vec_bytes < 64 && lanes_group(kn) >= 2; }

int lanes_digit(int code, int r) {
    for (; r > 0; r--) code /= 3;
    return code % 3 - 1;
}

/* zip_lo(a, b) = a0 b0 a1 b1 ... a31 b31, zip_hi the same from a32, b32: a round that moves the
 * column's top bit into the row number and the row's top bit into the byte position. */
void lanes_zip_mask(int half, int idx[64]) {
    for (int i = 0; i < 32; i++) idx[2 * i] = 32 * half + i, idx[2 * i + 1] = 64 + 32 * half + i;
}

/* Of two rows' 16 tokens (a, b): a_j b_j for the tokens j = 8·half .. 8·half + 7. */
void lanes_pair_mask(int half, int idx[16]) {
    for (int i = 0; i < 8; i++) idx[2 * i] = 8 * half + i, idx[2 * i + 1] = 16 + 8 * half + i;
}

/* Of two pair masks' results (rows 0-1, rows 2-3): rows 0..3 of tokens 4k .. 4k + 3 in turn. */
void lanes_quad_mask(int k, int idx[16]) {
    for (int i = 0; i < 4; i++)
        idx[4 * i] = 8 * k + 2 * i, idx[4 * i + 1] = 8 * k + 2 * i + 1, idx[4 * i + 2] = 16 + 8 * k + 2 * i,
                idx[4 * i + 3] = 17 + 8 * k + 2 * i;
}

int32_t kernel_units_layout(const rsrc_kernel *kn) {
    if (!kn->unit_cols || kn->form != KF_I2 || !kn->rows_in_lanes || kn->unit_cols % I2_LANE_COLS)
        return RSR_UNITS_OTHER;
    /* base-3: weights -1, 0, +1 (one plane) in units of 32 columns, a run of five at least */
    const bool b3 = kn->tm && kn->tm->base3 && kn->tm->planes == 1 && kn->unit_cols == 2 * I2_LANE_COLS &&
                    kn->cols / kn->unit_cols >= RSR_B3_RUN;
    if (kn->vec_bytes == 64 && kn->block_rows == 16) return b3 ? RSR_UNITS_B3_ROWS16 : RSR_UNITS_ROWS16;
    if (kn->vec_bytes == 32 && kn->block_rows == 8) return b3 ? RSR_UNITS_B3_ROWS8 : RSR_UNITS_ROWS8;
    if (kn->vec_bytes == 16 && kn->block_rows == 4) return RSR_UNITS_ROWS4; /* NEON: 2-bit codes only */
    return RSR_UNITS_OTHER;
}

uint64_t kernel_data_size(const rsrc_kernel *kn) {
    if (kn->form == KF_LUT) return (uint64_t)kn->num_blocks * (uint64_t)lut_block_bytes(kn);
    if (kn->form == KF_I2 && kn->lanes_min)
        return kn->off_lane_perm + 2 * (uint64_t)kn->num_blocks * (uint64_t)kn->lane_cols;
    if (kn->form == KF_I2 && rsr_units_base3(kernel_units_layout(kn)))
        return (uint64_t)kn->num_blocks * rsr_b3_block_bytes(kn->block_rows, kn->cols / kn->unit_cols);
    if (kn->form == KF_I2) return (uint64_t)kn->num_blocks * (uint64_t)kn->block_rows * (uint64_t)i2_row_bytes(kn);
    if (kn->form == KF_WARP) return kn->off_entry + 4 * kn->plan->num_cols_kept;
    if (kn->form != KF_LOOP) return 0;
    return kn->off_perm + 2 * kn->plan->num_cols_kept;
}

/* Packs block blk of a base-3 layout (rsr_artifact.h, RSR_UNITS_B3_ROWS16 or ROWS8) through out (a block's
 * bytes): its runs of five units as words of 10 digits, then its units left in the 2-bit form (i2,
 * that block's bytes packed as below). */
static void write_b3_data(rsrc_kernel *kn, const uint8_t *i2, int32_t blk, uint8_t *out, blob_writer *b) {
    const ternary_matrix *t = kn->tm;
    const int32_t L = kn->block_rows, V = 4 * L, units = t->cols / kn->unit_cols, runs = units / RSR_B3_RUN;
    uint8_t *o = out;
    for (int32_t s = 0; s < runs; s++)
        for (int32_t q = 0; q < 8; q++)
            for (int32_t w = 0; w < 2 * L; w++, o += 2) {
                uint8_t d[RSR_B3_DIGITS];
                for (int32_t n = 0; n < RSR_B3_DIGITS; n++) {
                    int32_t p, cg, k;
                    rsr_b3_place(q, w, n, &p, &cg, &k);
                    const int32_t row = blk * L + k / 4, c = (s * RSR_B3_RUN + p) * kn->unit_cols + 4 * cg + k % 4;
                    d[n] = (uint8_t)(t->w[(size_t)row * (size_t)t->cols + (size_t)c] + 1);
                }
                const uint16_t word = rsr_b3_word(d);
                o[0] = (uint8_t)word, o[1] = (uint8_t)(word >> 8);
            }
    const size_t tail = (size_t)(units - runs * RSR_B3_RUN) * 2 * (size_t)V;
    memcpy(o, i2 + (size_t)runs * RSR_B3_RUN * 2 * (size_t)V, tail);
    blob_write(b, out, (size_t)(o - out) + tail);
}

/* Packs the rows as 2-bit codes in the layout described above; rows past the end are zero. */
static void write_i2_data(rsrc_kernel *kn, blob_writer *b) {
    const ternary_matrix *t = kn->tm;
    const bool b3 = rsr_units_base3(kernel_units_layout(kn));
    int32_t V = kn->vec_bytes, R = kn->block_rows, rb = i2_row_bytes(kn);
    uint8_t *block = xmalloc((size_t)R * (size_t)rb), *b3_block = b3 ? xmalloc((size_t)R * (size_t)rb) : NULL;
    for (int32_t blk = 0; blk < kn->num_blocks; blk++) {
        memset(block, 0, (size_t)R * (size_t)rb);
        for (int32_t r = 0; r < R; r++) {
            int32_t row = blk * R + r;
            for (int32_t c = 0; row < kn->rows && c < t->cols; c++) {
                uint8_t code = (uint8_t)(t->w[(size_t)row * (size_t)t->cols + (size_t)c] + 1);
                if (kn->rows_in_lanes) { /* group c / 16, field c % 16 / 4, byte 4·r + c % 4 */
                    block[c / I2_LANE_COLS * (4 * R) + 4 * r + c % 4] |=
                        (uint8_t)(code << (2 * (c % I2_LANE_COLS / 4)));
                    continue;
                }
                int32_t g = c / (4 * V), i = c % (4 * V) / V, j = c % V;
                block[g * R * V + r * V + j] |= (uint8_t)(code << (2 * i));
            }
        }
        if (b3)
            write_b3_data(kn, block, blk, b3_block, b); /* fewer bytes than the 2-bit block */
        else
            blob_write(b, block, (size_t)R * (size_t)rb);
    }
    free(block), free(b3_block);
}

/* The triplet patterns in the layout described above; rows and columns past the end are weight 0.
 * An expanded matrix's blocks keep their window of groups after a header (its first group). */
static void write_lut_data(rsrc_kernel *kn, blob_writer *b) {
    const ternary_matrix *t = kn->tm;
    const int32_t groups = lut_block_groups(kn), head = kn->lut_window ? LUT_WINDOW_HEADER : 0;
    uint8_t *block = xmalloc((size_t)lut_block_bytes(kn));
    for (int32_t blk = 0; blk < kn->num_blocks; blk++) {
        memset(block, 0, (size_t)lut_block_bytes(kn));
        const int32_t g0 = kn->lut_window ? lut_window_start(kn, blk) : 0;
        if (head) memcpy(block, &(uint32_t){(uint32_t)g0}, 4); /* little-endian u32 */
        for (int32_t r = 0; r < LUT_ROWS; r++) {
            int32_t row = blk * LUT_ROWS + r;
            for (int32_t tr = 0; tr < 4 * groups; tr++) {
                int n = 0;
                for (int j = 0; j < 3; j++) {
                    int32_t c = 3 * (4 * g0 + tr) + j;
                    n = 3 * n + 1 + (row < t->rows && c < t->cols ? ternary_weight(t, row, c) : 0);
                }
                int L = tr % 4, k = r % 16, bit = 4 * k + L;
                uint8_t *gb = block + head + (size_t)(tr / 4) * LUT_GROUP_BYTES;
                gb[bit] |= (uint8_t)((n & 15) << (r < 16 ? 0 : 4));
                if (n & 16) gb[64 + 8 * (r / 16) + bit / 8] |= (uint8_t)(1u << (bit % 8)); /* little-endian u64 */
            }
        }
        blob_write(b, block, (size_t)lut_block_bytes(kn));
    }
    free(block);
}

/* Block blk of the RSR lanes index: the columns sorted by pattern code (counting sort, columns
 * ascending within a code), the all-zero pattern dropped; rows past the end are zero. hdr: the
 * block's header (seg_end, row_sum); perm: lane_cols entries, zero past the kept columns. */
static void lanes_sort(const rsrc_kernel *kn, int32_t blk, uint16_t *hdr, uint16_t *perm, uint8_t *code) {
    const ternary_matrix *t = kn->tm;
    int32_t count[RSR_LANE_CODES] = {0}, at[RSR_LANE_CODES], end = 0, row_sum[I2_BLOCK_ROWS] = {0};
    for (int32_t c = 0; c < t->cols; c++) {
        int32_t v = 0;
        for (int32_t r = I2_BLOCK_ROWS - 1; r >= 0; r--) {
            int32_t row = blk * I2_BLOCK_ROWS + r,
                    w = row < t->rows ? t->w[(size_t)row * (size_t)t->cols + (size_t)c] : 0;
            v = 3 * v + 1 + w;
            row_sum[r] += w;
        }
        code[c] = (uint8_t)v;
        count[v]++;
    }
    count[RSR_LANE_ZERO] = 0;
    for (int32_t v = 0; v < RSR_LANE_CODES; v++) at[v] = end, end += count[v], hdr[v] = (uint16_t)end;
    memcpy(hdr + RSR_LANE_ROW_SUM, row_sum, sizeof row_sum); /* little-endian i32, 4-byte aligned */
    memset(perm, 0, 2 * (size_t)kn->lane_cols);
    for (int32_t c = 0; c < t->cols; c++)
        if (code[c] != RSR_LANE_ZERO) perm[at[code[c]]++] = (uint16_t)c;
}

/* The header of every block, then perm of every block (the layout in the header comment); each
 * block is sorted once, its permutation kept until the headers are out. */
static void write_lanes_data(rsrc_kernel *kn, blob_writer *b) {
    size_t nb = (size_t)kn->num_blocks, lc = (size_t)kn->lane_cols;
    uint16_t *hdr = xcalloc(nb * RSR_LANE_SEG_STRIDE, sizeof *hdr), *perm = xmalloc(2 * nb * lc);
    uint8_t *code = xmalloc((size_t)kn->tm->cols);
    for (size_t blk = 0; blk < nb; blk++)
        lanes_sort(kn, (int32_t)blk, hdr + blk * RSR_LANE_SEG_STRIDE, perm + blk * lc, code);
    blob_write(b, hdr, 2 * nb * RSR_LANE_SEG_STRIDE);
    blob_write(b, perm, 2 * nb * lc);
    free(hdr), free(perm), free(code);
}

static void write_warp_data(rsrc_kernel *kn, blob_writer *b) {
    const rsrc_plan *p = kn->plan;
    blob_write(b, p->block_col, 4 * ((uint64_t)p->num_blocks + 1));
    blob_align(b, 64);
    uint32_t *entry = xmalloc(4 * (p->num_cols_kept ? p->num_cols_kept : 1));
    for (int32_t blk = 0; blk < p->num_blocks; blk++) {
        uint32_t j = p->block_col[blk];
        for (uint32_t s = p->block_seg[blk]; s < p->block_seg[blk + 1]; s++)
            for (uint32_t n = 0; n < p->seg_len[s]; n++, j++)
                entry[j] = (uint32_t)p->perm[j] | (uint32_t)p->seg_code[s] << 16;
    }
    blob_write(b, entry, 4 * p->num_cols_kept);
    free(entry);
}

/* Appends the constant data to the blob (loop and i2 forms) and records where it starts. */
void kernel_write_data(rsrc_kernel *kn, blob_writer *b) {
    if (kn->form == KF_UNROLLED) return;
    kn->data_offset = blob_align(b, 64);
    if (kn->form == KF_I2) {
        write_i2_data(kn, b);
        if (kn->lanes_min) {
            blob_align(b, 64);
            write_lanes_data(kn, b);
        }
    } else if (kn->form == KF_LUT) {
        write_lut_data(kn, b);
    } else if (kn->form == KF_WARP) {
        write_warp_data(kn, b);
    } else {
        const rsrc_plan *p = kn->plan;
        uint64_t nb = (uint64_t)p->num_blocks + 1;
        blob_write(b, p->block_seg, 4 * nb);
        blob_align(b, 64);
        blob_write(b, p->block_col, 4 * nb);
        blob_align(b, 64);
        uint32_t *seg = xmalloc(4 * (p->num_segments ? p->num_segments : 1));
        for (uint64_t s = 0; s < p->num_segments; s++)
            seg[s] = (uint32_t)p->seg_code[s] | (uint32_t)p->seg_len[s] << 16;
        blob_write(b, seg, 4 * p->num_segments);
        free(seg);
        blob_align(b, 64);
        blob_write(b, p->perm, 2 * p->num_cols_kept);
    }
    if (b->size != kn->data_offset + kernel_data_size(kn))
        rsrc_fatal("internal error: kernel data layout of %s", kn->symbol);
}

void kernel_free(rsrc_kernel *kn) {
    free(kn->symbol);
    free(kn->batch_symbol);
    kn->symbol = kn->batch_symbol = NULL;
}
