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
 * Two forms print this same description:
 *   KF_UNROLLED  every segment becomes straight-line code: the column indices are immediate
 *                load offsets and the pattern digits choose add/sub — the index exists only as
 *                instructions. Chosen when the code fits the target's unroll budget.
 *   KF_LOOP      the loop above, with k, rows and the data layout as constants, over the index
 *                data placed in the artifact's blob:
 *                  u32 block_seg[blocks+1], u32 block_col[blocks+1],
 *                  u32 seg[segments] = code | len << 16, u16 perm[kept]
 * Backends (emit_c.c, and the LLVM and CUDA printers) walk this description; none of them
 * decides anything about the algorithm.
 */
#include <stdlib.h>
#include <string.h>

#include "rsrc.h"

/* Rough bytes of x86 code: a gathered add ~6, a segment's scatter ~4 per nonzero digit. */
uint64_t kernel_unrolled_code_estimate(const rsr_plan *p) {
    uint64_t digits = 0;
    for (uint64_t s = 0; s < p->num_segments; s++)
        digits += p->binary ? (uint64_t)p->k : (uint64_t)__builtin_popcount(p->seg_code[s]);
    uint64_t fold = p->binary ? (uint64_t)p->num_blocks * (8u << p->k) : 0;
    return 6 * p->num_cols_kept + 4 * digits + fold + 16 * (uint64_t)p->num_blocks;
}

static uint64_t align64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

void kernel_lower(kernel *kn, const rsr_plan *p, const target *t, enum kernel_choice choice, int index) {
    memset(kn, 0, sizeof *kn);
    kn->plan = p;
    kn->symbol = xasprintf("rsr_kernel_%d", index);
    if (choice == KC_AUTO)
        choice = kernel_unrolled_code_estimate(p) <= t->unroll_budget ? KC_UNROLLED : KC_LOOP;
    kn->form = choice == KC_UNROLLED ? KF_UNROLLED : KF_LOOP;
    if (kn->form == KF_UNROLLED) {
        kn->strategy = p->binary ? "rsr-binary-unrolled" : "rsr-unrolled";
        kn->data_offset = RSR_NO_TENSOR;
        return;
    }
    kn->strategy = p->binary ? "rsr-binary-loop" : "rsr-loop";
    uint64_t nb = (uint64_t)p->num_blocks + 1;
    kn->off_block_seg = 0;
    kn->off_block_col = align64(4 * nb);
    kn->off_seg = kn->off_block_col + align64(4 * nb);
    kn->off_perm = kn->off_seg + align64(4 * p->num_segments);
}

uint64_t kernel_data_size(const kernel *kn) {
    if (kn->form != KF_LOOP) return 0;
    return kn->off_perm + 2 * kn->plan->num_cols_kept;
}

/* Appends the index data to the blob (loop form) and records where it starts. */
void kernel_write_data(kernel *kn, blob_writer *b) {
    if (kn->form != KF_LOOP) return;
    const rsr_plan *p = kn->plan;
    uint64_t nb = (uint64_t)p->num_blocks + 1;
    kn->data_offset = blob_align(b, 64);
    blob_write(b, p->block_seg, 4 * nb);
    blob_align(b, 64);
    blob_write(b, p->block_col, 4 * nb);
    blob_align(b, 64);
    uint32_t *seg = xmalloc(4 * (p->num_segments ? p->num_segments : 1));
    for (uint64_t s = 0; s < p->num_segments; s++) seg[s] = (uint32_t)p->seg_code[s] | (uint32_t)p->seg_len[s] << 16;
    blob_write(b, seg, 4 * p->num_segments);
    free(seg);
    blob_align(b, 64);
    blob_write(b, p->perm, 2 * p->num_cols_kept);
    if (b->size != kn->data_offset + kernel_data_size(kn)) fatal("internal error: kernel data layout of %s", kn->symbol);
}

void kernel_free(kernel *kn) {
    free(kn->symbol);
    kn->symbol = NULL;
}
