/*
 * family_portable.c — the portable family of cpu.h: the attention kernels' vocabulary in plain C
 * (attn_generic.h; the family's other kernels are its callers' C): one lane, so
 * every sum is sequential and each operation rounds as the C does (-ffp-contract=off: vec_fma is a
 * multiplication and an addition), exp is the C library's expf. The specification of the other
 * families and the family of every other CPU (RSR_CPU=portable selects it anywhere).
 */
#include <math.h>

#include "attn_kernels.h"

typedef float vec;
#define VEC_W 1
#define VEC_ACCS 8
#define VEC_MASKED_TAIL 0
#define VEC_SCORES_BY_BLOCK 0
#define VEC_FN
#if defined(__GNUC__) || defined(__clang__)
#define VEC_TYPED __attribute__((always_inline)) inline
#define VEC static __attribute__((unused)) VEC_TYPED /* the vocabulary: the kernels use what they need */
#else
#define VEC_TYPED inline
#define VEC static inline
#endif
#define VEC_FAMILY attn_family_portable

VEC vec vec_zero(void) { return 0.0f; }
VEC vec vec_set1(float x) { return x; }
VEC vec vec_loadu(const float *p) { return *p; }
VEC void vec_storeu(float *p, vec a) { *p = a; }
VEC vec vec_add(vec a, vec b) { return a + b; }
VEC vec vec_sub(vec a, vec b) { return a - b; }
VEC vec vec_mul(vec a, vec b) { return a * b; }
VEC vec vec_fma(vec a, vec b, vec c) { return a * b + c; }
VEC vec vec_max(vec a, vec b) { return fmaxf(a, b); }
VEC vec vec_min(vec a, vec b) { return fminf(a, b); }
VEC int vec_any_zero(vec a) { return a == 0.0f; }
/* one lane: a block is never partial (n is 0 here) */
VEC vec vec_load_part(const float *p, int32_t n) { return n > 0 ? *p : 0.0f; }
VEC void vec_store_part(float *p, int32_t n, vec a) {
    if (n > 0) *p = a;
}
VEC vec vec_keep(vec a, int32_t n) { return n > 0 ? a : 0.0f; }
VEC vec vec_row(const void *row, int32_t i, int32_t type, vec sc) { return attn_elem(row, i, type, sc); }
VEC float vec_reduce(vec a) { return a; }
VEC vec vec_hsum(const vec a[1]) { return a[0]; }
VEC float vec_total(vec a) { return a; }
#define VEC_HAS_REDUCE_MAX 1
VEC float vec_reduce_max(vec a) { return a; }
VEC vec vec_exp(vec x) { return expf(x); }

#include "attn_generic.h"
