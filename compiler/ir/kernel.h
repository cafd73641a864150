/*
 * kernel.h — a matrix's kernel described once (form, shapes, data layout), which kir_lower
 * (kir.h) turns into kernel IR for the printers.
 */
#ifndef RSRC_KERNEL_H
#define RSRC_KERNEL_H

#include "plan/plan.h"

/* ---- kernel.c: a matrix's kernel, described once, printed by each printer ---- */
struct kir_module; /* its kernel IR (kir.h), which the printers print */
enum kernel_form {
    KF_UNROLLED, /* RSR: the index exists only as instructions (immediate offsets) */
    KF_LOOP,     /* RSR: a loop specialised to the matrix over constant index data */
    KF_I2,       /* packed 2-bit weight codes, dot products of R rows against x per group */
    KF_WARP,     /* RSR on a GPU: a warp per block, segmented sums across its lanes */
    KF_LUT,      /* triplet codes (4-bit pattern + sign), sums looked up in tables built from x */
};
int dot_isa_vector_bytes(enum dot_isa isa);
bool dot_isa_field_scaled(enum dot_isa isa);   /* i2 fields masked in place, one accumulator each */
bool dot_isa_tile_pair_sums(enum dot_isa isa); /* the batched kernel's tiles the same (kernel.c) */
bool dot_isa_pair_sums(enum dot_isa isa);      /* i2 rows summed as 16-bit pair sums between widenings */
int dot_pair_sums_groups(void);                /* groups summed in 16 bits before a widening */
#define RSR_BATCH_TILE_MAX 8
#define I2_LANE_COLS 16        /* i2 per unit with rows in lanes: the columns of one group, 4 in each of its 4 fields */
#define RSR_LANES 64           /* batched RSR: tokens per pass, one byte each in 64 bytes */
#define RSR_LANE_CODES 81      /* batched RSR: the 3^4 patterns of a block of 4 ternary rows */
#define RSR_LANE_ZERO 40       /* the all-zero pattern: its columns are dropped */
#define RSR_LANE_SEG_STRIDE 96 /* u16 entries of a block's header: seg_end[81], pad, i32 row_sum[4] */
#define RSR_LANE_ROW_SUM 88    /* u16 index of row_sum in the header (byte 176) */
#define RSR_LANE_RUN 256       /* batched RSR: columns summed in 16-bit lanes before they are widened */
#define RSR_LANES_EVERY_STEP 2 /* a lanes_min that takes every batched step (they have 2 tokens or more) */
typedef struct rsrc_kernel {
    char *symbol;         /* C / LLVM / CUDA function name */
    char *batch_symbol;   /* the batched (prefill) kernel, rsr_kernel_batch_fn; NULL: none */
    const char *strategy; /* shown in stats and the manifest */
    enum kernel_form form;
    int32_t rows, cols;
    int32_t block_rows, num_blocks; /* the unit of work a thread takes */
    const rsrc_plan *plan;          /* RSR forms */
    const ternary_matrix *tm;       /* i2: the weights it packs */
    enum dot_isa isa;               /* i2 */
    int32_t vec_bytes;              /* i2: bytes of one vector register (16, 32, 64) */
    int32_t groups;                 /* i2: column groups of 4 * vec_bytes columns; lut: of LUT_GROUP_COLS */
    int32_t unit_cols;              /* i2: sums per unit of this many columns (scales per group), 0: per row */
    int32_t unit_stride; /* i2 per unit: the rows of a block, whose sums go together (kernel.c, "i2 per unit") */
    int32_t batch_tile;  /* i2 batched: tokens sharing each decoded field (≤ RSR_BATCH_TILE_MAX) */
    int32_t tile_rows;   /* i2 batched on a pair-sums ISA: rows of a block a tile takes at once */
    bool rows_in_lanes; /* i2 per unit on x86 and sdot: vec_bytes / 4 rows a block, one in each int32 lane (kernel.c) */
    int lanes_min;      /* i2 batched: steps of at least this many tokens as RSR lanes (kernel.c), the rest as tiles of
                      tokens; 0: tiles only */
    uint64_t off_lane_seg, off_lane_perm; /* lanes: seg_end and perm, relative to data_offset */
    int32_t lane_cols;                    /* lanes: perm entries per block (cols rounded up to RSR_LANES) */
    uint64_t data_offset;                 /* blob offset of the constant data (loop and i2 forms) */
    uint64_t off_block_seg, off_block_col, off_seg, off_perm; /* loop form, relative to data_offset */
    uint64_t off_entry;    /* warp form: u32 col | code << 16 per kept column (block_col at 0) */
    int32_t cta_warps;     /* GPU forms: warps per thread block */
    int32_t gpu_split;     /* GPU forms: warps sharing one block of rows (1 for LLVM NVPTX entries) */
    bool gpu_entry;        /* GPU forms: an entry of its own (LLVM NVPTX), else a group entry's device function */
    enum target_kind kind; /* its target's: a kind with forms of its own lowers them (printer.h's target_forms) */
    bool lut_vector;       /* lut: vpermt2b + vpdpbusd (target_lut_vector), else scalar */
    int32_t lut_window;    /* lut of a matrix expanded per unit: the groups each block keeps (its window), 0: all */
} rsrc_kernel;
uint64_t kernel_unrolled_code_estimate(const rsrc_plan *p);
/* The printers of kernels are values in a table (printer.h). */
typedef struct kernel_printer kernel_printer;
/* The dot ISA of i2 summed per unit of columns for this matrix on t, or -1 (kernel.c). */
int kernel_units_isa(const rsrc_target *t, const ternary_matrix *tm);
/* Lowers a matrix with its plan for target t (a CUDA target's entries as its backend prints
 * them): p is the RSR analysis (NULL for i2 and lut). */
void kernel_lower(rsrc_kernel *kn, const ternary_matrix *tm, const rsrc_plan *p, const rsrc_target *t, enum strategy s,
                  int index, int lanes_min);
uint64_t kernel_data_size(const rsrc_kernel *kn);
/* rsr_artifact_matrix.units_layout of the kernel: the layout of its codes where the runtime has
 * kernels of its own for it (enum rsr_units_layout) */
int32_t kernel_units_layout(const rsrc_kernel *kn);
/* The lanes form's description, which every printer prints (kernel.c, "RSR lanes"): */
uint64_t lanes_scratch_bytes(const rsrc_kernel *kn); /* the transposed x: 64 bytes per column, cols rounded up to 64 */
#define RSR_LANES_X_BUDGET (512u << 10)              /* the transposed x of one group of passes (half of L2) */
int lanes_group(const rsrc_kernel *kn);              /* passes of 64 tokens that share each block's index */
bool lanes_pairs(const rsrc_kernel *kn);             /* a block against two passes at once */
int lanes_digit(int code, int r);                    /* row r's weight (-1, 0, 1) in pattern code */
void lanes_zip_mask(int half, int idx[64]);          /* a transpose round's byte shuffle of rows k, k + 32: half 0
                                                   gives row 2k, half 1 row 2k + 1 */
void lanes_pair_mask(int half, int idx[16]);         /* rows r, r + 1 of tokens 8·half.. interleaved */
void lanes_quad_mask(int k, int idx[16]);            /* two pairs' tokens 4k..4k+3, four rows each */
void kernel_write_data(rsrc_kernel *kn, struct blob_writer *b);
void kernel_free(rsrc_kernel *kn);
/* lut layout (kernel.c): per block of LUT_ROWS rows and group of 4 column triplets, 64 bytes of
 * pattern nibbles and two u64 masks of the patterns' fifth bits. A matrix expanded per unit of
 * columns keeps per block only the lut_window groups from the one its columns start in (a block's
 * rows are zero outside their units): a 64-byte header whose first u32 is that first group, then
 * the window's groups. */
#define LUT_ROWS 32
#define LUT_GROUP_COLS 12
#define LUT_GROUP_BYTES 80
#define LUT_PATTERNS 27 /* a triplet's table: entries 0..26, zero up to LUT_ENTRIES */
#define LUT_ENTRIES 32
#define LUT_NB 4 /* blocks sharing each load of a group's tables (they outgrow L1) */
/* Pattern n of a triplet (w0, w1, w2) is 9(w0 + 1) + 3(w1 + 1) + (w2 + 1); lut_digit(n, j) = w_j. */
static inline int lut_digit(int n, int j) { return (j == 0 ? n / 9 : j == 1 ? n / 3 % 3 : n % 3) - 1; }
/* How the vector form builds a group's tables (kernel.c), for every printer: half h (triplets
 * 2h, 2h + 1) holds the 14 sums of patterns 13..26 in 16-lane halves; lane l adds or subtracts
 * x's column lut_spread(h, j, l) of the group where lut_digit_masks(j) set bit l; the planes are
 * byte lut_plane_source(hi, o) of (those sums, their negations); index byte i carries 32·(i % 4). */
int lut_spread(int h, int j, int l);
void lut_digit_masks(int j, uint32_t *pos, uint32_t *neg);
int lut_plane_source(int hi, int o);
static inline int lut_quarter(int i) { return 32 * (i % 4); }
/* i2 layout: block b, group g, row r, byte j holds the codes (w + 1) of columns g*4V + i*V + j at bits 2i. */
static inline int32_t i2_row_bytes(const rsrc_kernel *kn) { return kn->groups * kn->vec_bytes; }
/* lut: the bytes of one block, and the groups it sums */
#define LUT_WINDOW_HEADER 64
static inline int32_t lut_block_groups(const rsrc_kernel *kn) { return kn->lut_window ? kn->lut_window : kn->groups; }
static inline int32_t lut_block_bytes(const rsrc_kernel *kn) {
    return (kn->lut_window ? LUT_WINDOW_HEADER : 0) + lut_block_groups(kn) * LUT_GROUP_BYTES;
}
/* lut: the AVX-512 form (VBMI's two-table byte permute, VNNI's dot products), else scalar code
 * over the same layout */
bool target_lut_vector(const rsrc_target *t);

#endif
