/*
 * rsr_dl.h — load a compiled model (model.so) at run time and call its C API (rsr.h) through a
 * table of function pointers. Declarations; runtime/dl/rsr_dl.c defines them: link with
 * -lrsr_dl -ldl (pkg-config --libs rsr).
 *
 *     rsr_api api;
 *     char err[1024];
 *     if (rsr_api_load(&api, "model.so", err, sizeof err) != 0) { fputs(err, stderr); ... }
 *     rsr_model *m;
 *     api.model_open(&m, NULL);
 *
 * The messages say what went wrong and what to do: a missing file, a directory or checkpoint
 * given instead of a compiled model, a shared object that is not an rsrc model, a model
 * compiled for another version of this API.
 */
#ifndef RSR_DL_H
#define RSR_DL_H

#include <dlfcn.h>
#include <stddef.h>

#include "rsr.h"

typedef struct rsr_api {
    void *handle;
    uint32_t (*api_version)(void);
    const char *(*status_to_string)(rsr_status);
    rsr_status (*model_open)(rsr_model **, const rsr_model_params *);
    void (*model_close)(rsr_model *);
    const char *(*model_errmsg)(const rsr_model *);
    rsr_status (*model_get_info)(const rsr_model *, rsr_model_info *);
    const char *(*model_manifest)(const rsr_model *);
    rsr_status (*model_matrix_info)(const rsr_model *, int32_t, rsr_matrix_info *);
    rsr_status (*model_matvec_int)(const rsr_model *, int32_t, const int8_t *, int32_t *);
    rsr_status (*model_matmul_int)(const rsr_model *, int32_t, const int8_t *, int32_t, int32_t *);
    rsr_status (*session_create)(rsr_model *, const rsr_session_params *, rsr_session **);
    void (*session_free)(rsr_session *);
    const char *(*session_errmsg)(const rsr_session *);
    rsr_status (*session_reset)(rsr_session *);
    int32_t (*session_position)(const rsr_session *);
    rsr_status (*session_truncate)(rsr_session *, int32_t);
    int32_t (*session_reusable)(const rsr_session *);
    int32_t (*session_reachable)(const rsr_session *, int32_t);
    rsr_status (*session_eval)(rsr_session *, const int32_t *, int32_t, float *);
    rsr_status (*session_eval_greedy)(rsr_session *, const int32_t *, int32_t, int32_t *);
    rsr_status (*session_eval_int8)(rsr_session *, const int32_t *, int32_t, float *, double *);
    rsr_status (*model_verify)(rsr_model *);
    rsr_status (*session_eval_sample)(rsr_session *, const int32_t *, int32_t, const rsr_sampler_params *, uint64_t *,
                                      int32_t *, double *);
    rsr_status (*session_attention_stats)(const rsr_session *, int32_t, rsr_attention_stats *);
    rsr_status (*session_kv_read)(const rsr_session *, int32_t, int32_t, int32_t, int32_t, float *, float *);
    rsr_status (*session_last_query)(const rsr_session *, int32_t, float *);
    int32_t (*sample_greedy)(const float *, int32_t);
    int32_t (*sample)(const float *, int32_t, const rsr_sampler_params *, uint64_t *, float *, int32_t *);
    rsr_status (*model_tokenizer)(rsr_model *, rsr_tokenizer **);
    rsr_status (*tokenizer_create)(const char *, size_t, rsr_tokenizer **);
    void (*tokenizer_free)(rsr_tokenizer *);
    const char *(*tokenizer_errmsg)(const rsr_tokenizer *);
    rsr_status (*tokenizer_get_info)(const rsr_tokenizer *, rsr_tokenizer_info *);
    rsr_status (*tokenizer_encode)(rsr_tokenizer *, const char *, ptrdiff_t, uint32_t, int32_t *, int32_t, int32_t *);
    rsr_status (*tokenizer_decode)(rsr_tokenizer *, const int32_t *, int32_t, uint32_t, char *, size_t, size_t *);
    const char *(*tokenizer_token_piece)(const rsr_tokenizer *, int32_t, size_t *);
    int32_t (*tokenizer_token_id)(const rsr_tokenizer *, const char *);
    int (*tokenizer_is_special)(const rsr_tokenizer *, int32_t);
    rsr_status (*tokenizer_apply_chat_template)(rsr_tokenizer *, const char *, const rsr_chat_message *, int32_t, int,
                                                char *, size_t, size_t *);
    rsr_status (*tokenizer_set_chat_template)(rsr_tokenizer *, const char *, size_t);
    rsr_status (*tokenizer_apply_chat_template_json)(rsr_tokenizer *, const char *, const char *, size_t, char *,
                                                     size_t, size_t *);
    rsr_status (*batch_create)(rsr_model *, int32_t, rsr_batch **);
    void (*batch_free)(rsr_batch *);
    const char *(*batch_errmsg)(const rsr_batch *);
    rsr_status (*batch_eval)(rsr_batch *, const rsr_seq *, int32_t);
    rsr_status (*session_embed)(rsr_session *, const int32_t *, int32_t, int, float *);
    rsr_status (*session_eval_all)(rsr_session *, const int32_t *, int32_t, float *);
    rsr_status (*session_head_stats)(const rsr_session *, rsr_head_stats *);
    rsr_status (*session_eval_draft)(rsr_session *, const int32_t *, int32_t, const rsr_sampler_params *, uint64_t *,
                                     int32_t *, int32_t *);
    rsr_status (*session_draft_mtp)(rsr_session *, int32_t, int32_t, float, int32_t *, int32_t *);
    int32_t (*session_tokens)(const rsr_session *, int32_t *, int32_t);
    rsr_status (*session_save)(rsr_session *, const char *, int64_t *);
    rsr_status (*session_save_fd)(rsr_session *, int, int64_t *);
    rsr_status (*session_load)(rsr_session *, const char *, int64_t *);
    rsr_status (*session_load_fd)(rsr_session *, int, int64_t *);
} rsr_api;

/* dlopen trusts the file: a segment that the program headers place past the end of a truncated
 * file is mapped anyway, and touching it raises SIGBUS; a damaged program header, dynamic entry
 * or relocation sends the loader outside the object, or into one of its assertions. So the
 * structure of the file is checked first (rsr_elf.h: the headers and the tables the loader
 * reads, not the whole file). Returns 0, or -1 with a message in err. */
int rsr_api_check_elf(const char *path, char *err, size_t errlen);

/* Checks the whole file at path without loading it: its structure (rsr_api_check_elf) and, when
 * rsrc recorded one, the digest of all its bytes (rsr_elf.h), so that damage anywhere, code
 * included, is reported instead of run. Returns 1 (the digest matches), 0 (the file records no
 * digest, written by an older rsrc: its structure alone was checked) or -1 with a message in err. */
int rsr_api_verify_file(const char *path, char *err, size_t errlen);

/* Loads the model at path (rsr_api_check_elf first, then dlopen) and fills api with its entry
 * points. Returns 0, or -1 with a message in err. A path without '/' is taken relative to the current
 * directory (dlopen would search the library path instead). */
int rsr_api_load(rsr_api *api, const char *path, char *err, size_t errlen);

#endif
