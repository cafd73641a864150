/*
 * rsr.c — Redundant Segment Reduction: the analysis of one fixed ternary (or binary) matrix.
 *
 * The matrix is cut into blocks of k rows. In a block, column c has a pattern: its k weights.
 * Columns are counting-sorted by pattern code, so that columns sharing a pattern form one
 * segment; at inference a segment's inputs are summed once and the sum is applied to the k
 * rows by the pattern (RSR), instead of one multiply-add per weight.
 *
 *   ternary code: (pos_bits << k) | neg_bits   — bit r is row r of the block; the all-zero
 *                 pattern is dropped (those columns contribute nothing to the block).
 *   binary code:  bit r set when W = +1 (±1 matrices); every column is kept, and the k row
 *                 sums are recovered with RSR++ folding: y_r = 2·P_r − T (see kernel.c).
 *
 * A plan is pure data; kernel.c turns it into code.
 */
#include <stdlib.h>
#include <string.h>

#include "rsrc.h"

/* The code of column c in the block starting at row r0 (rows past the end read as zero). */
static uint32_t column_code(const ternary_matrix *t, int k, int32_t r0, int32_t c, bool binary) {
    uint32_t pos = 0, neg = 0;
    for (int r = 0; r < k && r0 + r < t->rows; r++) {
        int w = ternary_weight(t, r0 + r, c);
        pos |= (uint32_t)(w > 0) << r;
        neg |= (uint32_t)(w < 0) << r;
    }
    return binary ? pos : pos << k | neg;
}

void rsrc_analyse(const ternary_matrix *t, int k, rsrc_plan *p) {
    if (k < 1 || k > RSR_MAX_K) rsrc_fatal("RSR block size k=%d is out of range [1, %d]", k, RSR_MAX_K);
    if (t->cols > 65535)
        rsrc_fatal("tensor '%s': %d columns; RSR indices are 16-bit (at most 65535)", t->name, t->cols);
    memset(p, 0, sizeof *p);
    p->rows = t->rows;
    p->cols = t->cols;
    p->k = k;
    p->binary = t->binary;
    p->num_blocks = (t->rows + k - 1) / k;
    uint32_t ncodes = p->binary ? 1u << k : 1u << (2 * k);
    size_t cols = (size_t)t->cols, blocks = (size_t)p->num_blocks, max_segs = 0, max_kept = 0;
    for (size_t b = 0; b < blocks; b++) { /* a block's columns: all, or its units' (ternary_block_cols) */
        int32_t c0, c1;
        ternary_block_cols(t, (int32_t)(b * (size_t)k), k, &c0, &c1);
        max_kept += (size_t)(c1 - c0), max_segs += (size_t)(c1 - c0) < ncodes ? (size_t)(c1 - c0) : ncodes;
    }

    p->block_seg = xmalloc(sizeof *p->block_seg * (blocks + 1));
    p->block_col = xmalloc(sizeof *p->block_col * (blocks + 1));
    p->seg_code = xmalloc(sizeof *p->seg_code * (max_segs ? max_segs : 1));
    p->seg_len = xmalloc(sizeof *p->seg_len * (max_segs ? max_segs : 1));
    p->perm = xmalloc(sizeof *p->perm * (max_kept ? max_kept : 1));
    uint32_t *code = xmalloc(sizeof *code * cols);
    uint32_t *count = xcalloc(ncodes, sizeof *count);
    uint32_t *start = xmalloc(sizeof *start * ncodes);

    uint64_t nseg = 0, nkept = 0;
    for (size_t b = 0; b < blocks; b++) {
        p->block_seg[b] = (uint32_t)nseg;
        p->block_col[b] = (uint32_t)nkept;
        int32_t c0, c1;
        ternary_block_cols(t, (int32_t)(b * (size_t)k), k, &c0, &c1);
        for (size_t c = (size_t)c0; c < (size_t)c1; c++) {
            code[c] = column_code(t, k, (int32_t)(b * (size_t)k), (int32_t)c, p->binary);
            count[code[c]]++;
        }
        /* Counting sort: segments in ascending code order, columns ascending inside each. */
        uint32_t first_code = p->binary ? 0 : 1, at = (uint32_t)nkept;
        for (uint32_t cd = first_code; cd < ncodes; cd++) {
            if (!count[cd]) continue;
            start[cd] = at;
            at += count[cd];
            p->seg_code[nseg] = (uint16_t)cd;
            p->seg_len[nseg] = (uint16_t)count[cd];
            nseg++;
        }
        for (size_t c = (size_t)c0; c < (size_t)c1; c++)
            if (code[c] >= first_code) p->perm[start[code[c]]++] = (uint16_t)c;
        nkept = at;
        for (size_t c = (size_t)c0; c < (size_t)c1; c++) count[code[c]] = 0;
    }
    p->block_seg[blocks] = (uint32_t)nseg;
    p->block_col[blocks] = (uint32_t)nkept;
    p->num_segments = nseg;
    p->num_cols_kept = nkept;
    free(code);
    free(count);
    free(start);
}

uint64_t rsrc_index_bytes(const rsrc_plan *p) {
    return 2 * p->num_cols_kept + 4 * p->num_segments + 8 * ((uint64_t)p->num_blocks + 1);
}

void rsrc_plan_free(rsrc_plan *p) {
    free(p->block_seg);
    free(p->block_col);
    free(p->seg_code);
    free(p->seg_len);
    free(p->perm);
    memset(p, 0, sizeof *p);
}

/*
 * Predicted cost of one row for block size k, from a sample of blocks. Units: one gathered
 * add costs 1, one segment costs 2 plus 1 per nonzero digit applied, a binary block's RSR++
 * fold costs 2^k, and every index byte read costs 1/4 (decode is partly bound by memory).
 * The weights come from the shape of the loop kernel, not from measurements; --rsr-k overrides.
 */
void rsrc_sample_blocks(const ternary_matrix *t, int k, rsrc_sample_stats *out) {
    int32_t nblocks = (t->rows + k - 1) / k;
    int32_t sample = nblocks < 32 ? nblocks : 32;
    double kept = 0, segs = 0, digits = 0;
    uint32_t ncodes = t->binary ? 1u << k : 1u << (2 * k);
    uint8_t *seen = xcalloc(ncodes, 1);
    for (int32_t s = 0; s < sample; s++) {
        int32_t b = (int32_t)((int64_t)s * nblocks / sample);
        memset(seen, 0, ncodes);
        int32_t c0, c1;
        ternary_block_cols(t, b * k, k, &c0, &c1);
        for (int32_t c = c0; c < c1; c++) {
            uint32_t cd = column_code(t, k, b * k, c, t->binary);
            if (!t->binary && cd == 0) continue;
            kept++;
            if (!seen[cd]) {
                seen[cd] = 1;
                segs++;
                digits += t->binary ? k : __builtin_popcount(cd);
            }
        }
    }
    free(seen);
    *out = (rsrc_sample_stats){
        .blocks = nblocks, .kept = kept / sample, .segments = segs / sample, .digits = digits / sample};
}

static double units_per_row(const ternary_matrix *t, int k) {
    rsrc_sample_stats st;
    rsrc_sample_blocks(t, k, &st);
    double ops = st.kept + 2 * st.segments + st.digits + (t->binary ? (double)(1u << k) : 0);
    double bytes = 2 * st.kept + 4 * st.segments + 8.0;
    return (ops + bytes / 4) / k;
}

int rsrc_choose_k(const ternary_matrix *t, int max_k, double *cost_per_row, char *why, size_t whylen) {
    double best = 0;
    int best_k = 1;
    char detail[256] = "";
    size_t used = 0;
    for (int k = 1; k <= max_k; k++) {
        double cost = units_per_row(t, k);
        if (used < sizeof detail)
            used += (size_t)snprintf(detail + used, sizeof detail - used, "%sk%d=%.0f", k > 1 ? " " : "", k, cost);
        if (k == 1 || cost < best) best = cost, best_k = k;
    }
    snprintf(why, whylen, "cost/row %s", detail);
    if (cost_per_row) *cost_per_row = best;
    return best_k;
}

void rsrc_reference_matvec(const rsrc_plan *p, const int8_t *x, int32_t *y) {
    for (int32_t b = 0; b < p->num_blocks; b++) {
        int32_t acc[RSR_MAX_K] = {0};
        const uint16_t *col = p->perm + p->block_col[b];
        for (uint32_t s = p->block_seg[b]; s < p->block_seg[b + 1]; s++) {
            int32_t u = 0;
            for (uint32_t j = 0; j < p->seg_len[s]; j++) u += x[*col++];
            for (int r = 0; r < p->k; r++) acc[r] += rsrc_code_digit(p, p->seg_code[s], r) * u;
        }
        for (int r = 0; r < p->k && b * p->k + r < p->rows; r++) y[b * p->k + r] = acc[r];
    }
}

void rsrc_plan_print(const rsrc_plan *p, const char *name, FILE *out) {
    fprintf(out, "plan %s rows=%d cols=%d k=%d blocks=%d %s segments=%llu kept=%llu index_bytes=%llu\n", name, p->rows,
            p->cols, p->k, p->num_blocks, p->binary ? "binary" : "ternary", (unsigned long long)p->num_segments,
            (unsigned long long)p->num_cols_kept, (unsigned long long)rsrc_index_bytes(p));
    for (int32_t b = 0; b < p->num_blocks; b++) {
        fprintf(out, "  block %d rows %d..%d\n", b, b * p->k, b * p->k + p->k - 1);
        const uint16_t *col = p->perm + p->block_col[b];
        for (uint32_t s = p->block_seg[b]; s < p->block_seg[b + 1]; s++) {
            fputs("    segment ", out);
            for (int r = 0; r < p->k; r++) {
                int d = rsrc_code_digit(p, p->seg_code[s], r);
                fputc(d > 0 ? '+' : d < 0 ? '-' : '0', out);
            }
            fputs(" cols", out);
            for (uint32_t j = 0; j < p->seg_len[s]; j++) fprintf(out, " %u", *col++);
            fputc('\n', out);
        }
    }
}
