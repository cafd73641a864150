/*
 * louver_rows.h — Louver over a KV cache of any element type (attn_kernels.h): the runtime's
 * entry points. rsr_louver.h's public calls are these with fp32 rows.
 */
#ifndef RSR_RUNTIME_LOUVER_ROWS_H
#define RSR_RUNTIME_LOUVER_ROWS_H

#include "attn_kernels.h"
#include "rsr_louver.h"

/* rsr_louver_append_block: the next block_keys rows of keys, widened to fp32 as attention reads them. */
rsr_status louver_append_rows(rsr_louver_index *ix, attn_rows keys);
/* rsr_louver_attend_group over rows of any type: the guarantee is on the widened keys. */
rsr_status louver_attend_rows(const rsr_louver_index *ix, const float *q, int32_t gq, attn_rows keys, attn_rows values,
                              int32_t n, const rsr_louver_policy *pol, rsr_louver_scratch *sc, float *out,
                              rsr_louver_stats *stats);

#endif
