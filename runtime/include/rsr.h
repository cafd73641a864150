/*
 * rsr.h — the C API of a model compiled by rsrc.
 *
 * A compiled model (model.so, or an object linked into an application) contains the
 * generated kernels, the model's constant data and this runtime. Using it takes four calls
 * (a model compiled with --name=NAME opens with NAME_model_open instead, see rsrc --emit=header):
 *
 *     rsr_model *m;
 *     if (rsr_model_open(&m, NULL) != RSR_OK) { puts(rsr_model_errmsg(m)); ... }
 *     rsr_session *s;
 *     rsr_session_create(m, NULL, &s);            // KV cache for up to max_positions tokens
 *     int32_t prompt[] = {128000, 791, 1217};
 *     rsr_session_eval(s, prompt, 3, logits);      // logits of the last token (vocab floats)
 *     int32_t next = rsr_sample_greedy(logits, vocab);
 *     ...
 *     rsr_session_free(s); rsr_model_close(m);
 *
 * Text in and out goes through the tokenizer compiled into the model (tokenizer.json next to
 * the weights at compile time):
 *
 *     rsr_tokenizer *tok;
 *     rsr_model_tokenizer(m, &tok);                // RSR_ERR_NOT_FOUND: compiled without one
 *     int32_t ids[256], n;
 *     rsr_tokenizer_encode(tok, "The capital of France is", -1, RSR_ENCODE_ADD_SPECIAL, ids, 256, &n);
 *     ... eval, sample ...
 *     size_t len; const char *piece = rsr_tokenizer_token_piece(tok, next, &len);
 *     fwrite(piece, 1, len, stdout);               // bytes; a character may span two tokens
 *
 * Conventions: every function returns an rsr_status; on failure the handle carries a message
 * (rsr_model_errmsg / rsr_session_errmsg). The runtime never exits the process and never
 * prints. The caller owns every input and output buffer. Handles may be used from one thread
 * at a time; distinct sessions of one model are independent.
 */
#ifndef RSR_H
#define RSR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a compiled model exports: the runtime is built with hidden visibility, so these functions
 * (and the artifact's entry points) are all that a model.so shows. */
#if defined(__GNUC__) || defined(__clang__)
#define RSR_API __attribute__((visibility("default")))
#else
#define RSR_API
#endif

/* The version of this API; a program built against it refuses a model that reports another
 * (rsr_dl.h does the check). */
#define RSR_API_VERSION 21
RSR_API uint32_t rsr_api_version(void);

typedef enum rsr_status {
    RSR_OK = 0,
    RSR_ERR_INVALID_ARGUMENT = 1, /* a NULL handle, a size out of range, ... */
    RSR_ERR_OUT_OF_MEMORY = 2,
    RSR_ERR_ABI = 3,          /* the artifact was built for another runtime ABI */
    RSR_ERR_CONTEXT_FULL = 4, /* the session has no room for more positions */
    RSR_ERR_BAD_TOKEN = 5,    /* a token id outside [0, vocab) */
    RSR_ERR_INTERNAL = 6,
    RSR_ERR_NOT_FOUND = 7,        /* no tokenizer in the artifact, an unknown chat template, ... */
    RSR_ERR_FORMAT = 8,           /* a tokenizer.json or .model this runtime cannot read (the message says what) */
    RSR_ERR_BUFFER_TOO_SMALL = 9, /* the output did not fit; the size needed is returned */
    RSR_ERR_DEVICE = 10,          /* the GPU asked for is not usable: no driver, no device, a PTX the
                                   * driver refuses (the message says which) */
    RSR_ERR_IO = 11,              /* a file could not be opened, read or written (the message names it and why) */
} rsr_status;

RSR_API const char *rsr_status_to_string(rsr_status status);

typedef struct rsr_model rsr_model;
typedef struct rsr_session rsr_session;

/* What a compiled model is. Strings point into the artifact and live as long as it does. */
typedef struct rsr_model_info {
    const char *architecture; /* "BitNetForCausalLM", "LlamaForCausalLM", ... */
    const char *target;       /* the target the kernels were compiled for */
    const char *compiler;     /* "rsrc <version>" */
    int32_t hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    int32_t vocab_size, max_positions;
    int32_t bos_token_id, eos_token_id; /* -1 when the checkpoint names none */
    int32_t num_matrices;               /* ternary matrices compiled into the artifact */
    const char *device;                 /* where tokens run: "cpu", or "gpu 0: <name> (sm_90, driver 13.0)" */
    const char *gpu_arch;               /* the CUDA architecture compiled for ("sm_90"), NULL: CPU code only */
    int32_t num_threads;                /* threads the CPU code runs on (the open's num_threads, resolved) */
    const char *constants;              /* where the CPU reads the constants from, and how they got there:
                                * "anonymous memory, 2 MiB pages, read from FILE in 0.41 s", ... */
    int32_t pooling;                    /* rsr_pooling: how rsr_session_embed pools the tokens */
    int32_t num_kv_layers;              /* layers with a KV cache: all but gated DeltaNet layers (API 15) */
    int64_t state_bytes;                /* a session's recurrent state whatever its length, with one checkpoint (a
                          * copy: rsr_session_params.checkpoints adds half this each) (gated DeltaNet
                          * layers; 0: none) (API 15) */
    int32_t mtp_layers; /* Qwen3.5's multi-token-prediction layers the artifact holds (0 or 1): a session
                         * with rsr_session_params.mtp drafts with rsr_session_draft_mtp (API 21) */
} rsr_model_info;

/* Where the model runs. A model compiled for a CUDA target (rsrc --target sm_90 or avx512,sm_90)
 * carries PTX and runs on the GPU: every operation of a token on the device, the weights and the
 * KV cache in device memory (docs/cuda.md). AUTO uses the GPU when the model has GPU code and a
 * driver and device are there, the CPU otherwise; GPU fails with RSR_ERR_DEVICE (or
 * RSR_ERR_NOT_FOUND for a model without GPU code) instead of falling back. */
typedef enum rsr_device { RSR_DEVICE_AUTO = 0, RSR_DEVICE_CPU = 1, RSR_DEVICE_GPU = 2 } rsr_device;

/* Where the CPU code reads the model's constants (weights, embedding, head) from.
 * COPY (the default): read from the artifact's file into anonymous memory advised for 2 MiB pages
 * at open, all but the embedding's and the bf16/f16 head's rows: a token reads one embedding row
 * and the few exact head rows the certified head needs from the file (pread), so they never stay
 * resident; the int8 copy of the head is made at the first certified token. The kernel never
 * evicts the copy (on a machine without swap) and never re-reads it, so every token runs at the
 * memory's speed; the process holds the constants once (the file's pages are not mapped). When the machine has too little memory available for the copy, the
 * model reads the file mapping instead and rsr_model_info.constants says so.
 * MMAP: read through the file mapping: nothing copied at open and the page cache shared by every
 * process that opens the same file, at the kernel's mercy between tokens (docs/history/performance-log.md). */
typedef enum rsr_load { RSR_LOAD_COPY = 0, RSR_LOAD_MMAP = 1 } rsr_load;

typedef struct rsr_model_params {
    int32_t num_threads; /* 0: every CPU this process may run on (its affinity mask), or
                                * OMP_NUM_THREADS where it is set */
    int32_t device;      /* rsr_device; 0: auto */
    int32_t lock_memory; /* 1: also lock the copy in memory (mlock; needs `ulimit -l` room),
                                * failing the open when it cannot; implies RSR_LOAD_COPY */
    int32_t load;        /* rsr_load; 0: copy */
} rsr_model_params;
RSR_API rsr_model_params rsr_model_default_params(void);

/* Opens the model compiled into the artifact this runtime is linked into (model.so, or an object
 * compiled without --name). *out is set even on failure (unless out is NULL) so that
 * rsr_model_errmsg can say why; close it either way. RSR_ERR_NOT_FOUND when the program holds
 * only models compiled with --name. */
RSR_API rsr_status rsr_model_open(rsr_model **out, const rsr_model_params *params);

/* A model compiled with --name=NAME (rsrc --emit=obj or a shared object) is opened through its
 * descriptor, NAME_artifact(), declared with NAME_model_open in the header rsrc --emit=header
 * writes; several such models link into one program side by side. */
typedef struct rsr_artifact rsr_artifact;
RSR_API rsr_status rsr_model_open_artifact(rsr_model **out, const rsr_artifact *artifact,
                                           const rsr_model_params *params);

RSR_API void rsr_model_close(rsr_model *model);
RSR_API const char *rsr_model_errmsg(const rsr_model *model);
RSR_API rsr_status rsr_model_get_info(const rsr_model *model, rsr_model_info *info);
/* Checks the model's constants against the checksum rsrc recorded when it compiled them (the
 * bytes the CPU code reads: the copy, or the file mapping): RSR_ERR_ABI with a message naming
 * the artifact when they differ (the file was altered after compilation, or memory is failing),
 * RSR_ERR_NOT_FOUND when the artifact records no checksum. It reads every byte once more: half
 * the open's own time or more, so the open does not do it by default (docs/robustness.md). */
RSR_API rsr_status rsr_model_verify(rsr_model *model);

/* What was compiled and how, as text with one "key value" line each: the compiler, the source
 * model, the target and its features, the flags that shape the code, and per matrix its shape,
 * strategy and k. Lives as long as the artifact; "" for a NULL handle. */
RSR_API const char *rsr_model_manifest(const rsr_model *model);

/* Attention over the KV cache. Dense is exact softmax attention over every cached key. Louver
 * (docs/louver.md) indexes the keys and computes exact softmax attention over a subset C that
 * provably contains every key whose score q·k (fp32, before the 1/sqrt(head_dim) scaling) is at
 * least a threshold τ chosen per step and per query head by a policy:
 *   RSR_LOUVER_RELATIVE  τ = L − sqrt(head_dim)·ln(1/eps), L the best score found so far (a
 *                        lower bound of the maximum): every key whose softmax weight could be
 *                        ≥ eps × the largest weight is kept. Certified; the default.
 *   RSR_LOUVER_ABSOLUTE  τ = louver_tau.
 *   RSR_LOUVER_BUDGET    τ from a sample of the keys so that about louver_budget of them pass;
 *                        the fraction is an estimate without guarantee (recall w.r.t. the τ
 *                        used still holds).
 * Every step records the certified bound on the softmax mass outside C (rsr_attention_stats). */
typedef enum rsr_attention_kind {
    RSR_ATTENTION_DENSE = 0,
    RSR_ATTENTION_LOUVER = 1,
    /* Louver's relative policy at ε = 2^-24 (louver_policy and louver_eps are not read) where it
     * pays, dense elsewhere: prefill steps, decode steps below 1024 keys and layers whose sampled
     * scores say the index would not skip enough keys attend densely. What it keeps differs from
     * dense by at most the certified dropped mass, (n − |C|)·2^-24 of the softmax, the size of
     * the rounding error of dense's own sums (docs/louver.md). rsr_session_default_params();
     * GPU sessions attend densely. */
    RSR_ATTENTION_AUTO = 2,
} rsr_attention_kind;
typedef enum rsr_louver_policy_kind {
    RSR_LOUVER_RELATIVE = 0,
    RSR_LOUVER_ABSOLUTE = 1,
    RSR_LOUVER_BUDGET = 2,
} rsr_louver_policy_kind;

/* The element type of the KV cache. Keys and values are computed in fp32 and rounded to it (to
 * nearest, ties to even) as they are stored; attention is then exact over the stored values, which
 * every kernel widens back to fp32 exactly (q8: K_i·s, rounded once), Louver's bounds included.
 *   RSR_KV_F32   4 bytes per element: no rounding.
 *   RSR_KV_BF16  2 bytes: 8 significant bits (relative error ≤ 2^-8); the rounding the reference
 *                implementations' bf16 inference applies to K and V. rsr_session_default_params().
 *   RSR_KV_F16   2 bytes: 11 significant bits (≤ 2^-11) for magnitudes in [2^-14, 65504]; larger
 *                ones become ±inf, smaller ones lose bits.
 *   RSR_KV_Q8    1 byte + 4 per row of head_dim: K_i = round(x_i/s), s = max|x_i|/127 per row
 *                (absolute error ≤ s/2 per element).
 * GPU sessions keep an fp32 cache whatever kv_type says. docs/numerics.md states what each changes. */
typedef enum rsr_kv_type { RSR_KV_F32 = 0, RSR_KV_BF16 = 1, RSR_KV_F16 = 2, RSR_KV_Q8 = 3 } rsr_kv_type;
#define RSR_KV_DEFAULT RSR_KV_BF16 /* what rsr_session_default_params() and the tools choose */
/* Bytes one cached row of head_dim elements takes (K or V of one KV head at one position). */
static inline size_t rsr_kv_row_bytes(int32_t kv_type, int32_t head_dim) {
    return kv_type == RSR_KV_BF16 || kv_type == RSR_KV_F16 ? 2 * (size_t)head_dim
           : kv_type == RSR_KV_Q8                          ? (size_t)head_dim + sizeof(float)
                                                           : 4 * (size_t)head_dim;
}

/* Start from rsr_session_default_params(): fields added later default to zero, which always
 * means the earlier behaviour (so zero is an fp32 cache; the default params choose bf16). */
#define RSR_BATCH_MAX 256        /* the most tokens one prefill step evaluates together */
#define RSR_CHECKPOINTS_MAX 4096 /* the most checkpoints a session keeps (rsr_session_params.checkpoints) */
typedef struct rsr_session_params {
    int32_t max_positions;    /* KV cache length; 0: the model's max_positions */
    int32_t attention;        /* rsr_attention_kind; 0: dense */
    int32_t louver_policy;    /* rsr_louver_policy_kind; 0: relative */
    float louver_eps;         /* RELATIVE: in (0, 1); 0: 1e-4 */
    float louver_tau;         /* ABSOLUTE: the threshold on q·k */
    float louver_budget;      /* BUDGET: in (0, 1] */
    int32_t louver_block;     /* recent keys attended densely, then indexed as one block: a
                                  multiple of 16 in [16, 256]; 0: 256 */
    int32_t louver_subspaces; /* subspaces of the head dimension; 0: head_dim / 16 */
    int32_t batch;            /* tokens evaluated together by one prefill step, in
                                  [1, RSR_BATCH_MAX] (the results do not depend on it); 0: the most.
                                  A layer with a sliding window of W keeps W - 1 + batch positions */
    int32_t kv_type;          /* rsr_kv_type; 0: fp32 (the default params: bf16) */
    int32_t checkpoints;      /* a model with gated DeltaNet layers: copies of the recurrent state kept
                                  for truncation (rsr_session_truncate), each as much memory as the state
                                  (rsr_model_info.state_bytes / 2), made as they are first needed; 0: 1;
                                  at most RSR_CHECKPOINTS_MAX */
    int32_t mtp;              /* 1: the model's multi-token-prediction layer (rsr_model_info.mtp_layers)
                                  follows every evaluation (its own cache: one more attention layer and
                                  eh_proj a token), so that rsr_session_draft_mtp can draft (API 21);
                                  0: not (nothing drafts) */
} rsr_session_params;
RSR_API rsr_session_params rsr_session_default_params(void);

RSR_API rsr_status rsr_session_create(rsr_model *model, const rsr_session_params *params, rsr_session **out);
RSR_API void rsr_session_free(rsr_session *session);
RSR_API const char *rsr_session_errmsg(const rsr_session *session);
/* Forgets every evaluated token: the next eval starts at position 0. */
RSR_API rsr_status rsr_session_reset(rsr_session *session);
RSR_API int32_t rsr_session_position(const rsr_session *session);
/* Keeps the first pos evaluated positions (0 <= pos <= the position) and forgets the rest: the
 * next eval continues at pos. A server keeps a conversation's cache this way and evaluates only
 * what a new request adds to it (prefix reuse). A model with sliding windows keeps only the last
 * W - 1 + batch positions of its windowed layers: there pos must leave the W - 1 positions before
 * it in the cache (going back at most batch positions, from the furthest position evaluated since
 * the last reset), else RSR_ERR_INVALID_ARGUMENT with a message that names the earliest position
 * allowed; 0 always works. Over the positions rsr_session_reusable counts,
 * what follows gets exactly the bits a session that evaluated only those tokens would give. */
RSR_API rsr_status rsr_session_truncate(rsr_session *session, int32_t pos);
/* A model with gated DeltaNet layers (Qwen3.5, docs/qwen35.md) keeps a recurrent state that cannot
 * be unwound: there pos must be 0, the current position, a checkpoint: the position 8 tokens before
 * the end of an eval (or a batch step) of more than 8 tokens (a prompt's chunk: the session keeps a
 * copy of the state there, as much memory as the state, params.checkpoints of them at most, a new
 * one replacing the one nearest the one below it; the next turn of a chat shares a prompt but for
 * the few tokens that close it), or any position within the tokens the last rsr_session_eval_draft kept (the
 * state at its start is kept, and the tokens are replayed from their recorded inputs; a truncation
 * before them, or a reset, forgets them), else RSR_ERR_INVALID_ARGUMENT naming the positions allowed. A server that reuses
 * a conversation's cache thus evaluates the last reply and the new message, not the conversation.
 * Its sessions refuse RSR_ATTENTION_LOUVER (auto attends densely). */
/* The leading positions whose keys and values are exactly, bit for bit, those an evaluation of
 * the same tokens from an empty session as one prompt gives, whatever steps they came in: every
 * position (dense and Louver attention do not depend on the steps), but from the first decode
 * step that auto (RSR_ATTENTION_AUTO) attended with Louver, where a prompt step attends densely
 * (both exact to the certified bound, not to the bit). */
RSR_API int32_t rsr_session_reusable(const rsr_session *session);
/* The largest position at most pos that rsr_session_truncate can go back to: pos itself but for a
 * model with sliding windows (0 below the earliest position allowed) or gated DeltaNet layers (pos
 * within the last draft's kept tokens, else the nearest checkpoint at or below pos, or 0);
 * the position when pos is past it. */
RSR_API int32_t rsr_session_reachable(const rsr_session *session, int32_t pos);
/* The tokens the session holds, one a position: the first min(cap, position) into out (may be NULL
 * with cap 0); returns the position (-1: no session). */
RSR_API int32_t rsr_session_tokens(const rsr_session *session, int32_t *out, int32_t cap);

/* A session's state as a file (docs/sessions.md): its tokens, the keys and values of every
 * attention layer, a hybrid's recurrent state and checkpoints, auto attention's decisions: what an
 * evaluation after it needs to give the bits the session itself would give. rsr_session_save
 * writes path atomically (a file beside it, synced, then renamed over it: a crash leaves the old
 * file or none) and never follows a link at path; rsr_session_save_fd writes at fd's offset. The
 * draft record of rsr_session_eval_draft is not kept (the loaded session reaches its checkpoints
 * and its position). *bytes (may be NULL): the bytes written or read.
 * rsr_session_load reads a file (no link followed) into the session, rsr_session_load_fd from fd's
 * offset (a file that can be read twice: the whole is checked before any of it is used; what follows
 * the state is left to the caller, where rsr_session_load refuses a file with bytes past it). The file
 * is checked first, whole: its format and version, its checksum (a flipped or missing byte), the
 * model it came from (shape and the checksum of its weights), the KV cache's type, the context and
 * attention of the session that wrote it: any difference is refused with RSR_ERR_INVALID_ARGUMENT
 * naming it, a damaged file or one of another format with RSR_ERR_FORMAT, a file that cannot be
 * opened or read with RSR_ERR_IO, and the session is left as it was. After a load the session holds what the saved one held. CPU sessions only. */
RSR_API rsr_status rsr_session_save(rsr_session *session, const char *path, int64_t *bytes);
RSR_API rsr_status rsr_session_save_fd(rsr_session *session, int fd, int64_t *bytes);
RSR_API rsr_status rsr_session_load(rsr_session *session, const char *path, int64_t *bytes);
RSR_API rsr_status rsr_session_load_fd(rsr_session *session, int fd, int64_t *bytes);
/* Appends n tokens at the current position and writes the logits of the last one
 * (vocab_size floats) to logits, which may be NULL when only the cache is wanted. */
RSR_API rsr_status rsr_session_eval(rsr_session *session, const int32_t *tokens, int32_t n, float *logits);
/* Like rsr_session_eval, but the logits of every one of the n tokens: n x vocab_size floats, row t
 * the distribution of the token after tokens[t], the same bits rsr_session_eval gives for a prefix
 * ending there (what perplexity and a prompt's log-probabilities read). CPU sessions only:
 * RSR_ERR_NOT_FOUND on a GPU. */
RSR_API rsr_status rsr_session_eval_all(rsr_session *session, const int32_t *tokens, int32_t n, float *logits);
/* How rsr_session_embed makes one vector of a text's tokens (rsr_model_info.pooling): a GGUF's
 * ARCH.pooling_type, numbered as llama.cpp numbers it; a model that names none (or none at all, a
 * generative model) gives its last token's, as llama.cpp does. */
typedef enum rsr_pooling { RSR_POOLING_MEAN = 1, RSR_POOLING_CLS = 2, RSR_POOLING_LAST = 3 } rsr_pooling;
/* The embedding of tokens[0..n) into out (hidden_size floats): the session is reset and the tokens
 * evaluated from position 0 (a text's tokens as its tokenizer makes them, BOS and EOS where the
 * model adds them); the final-normed hidden states (what the LM head reads) are pooled as the
 * model says (mean over the tokens, the first, or the last) and, with normalize, scaled to unit
 * Euclidean length (an all-zero vector stays zero). The session then holds the tokens. CPU sessions
 * only: RSR_ERR_NOT_FOUND on a GPU. */
RSR_API rsr_status rsr_session_embed(rsr_session *session, const int32_t *tokens, int32_t n, int normalize, float *out);
/* Like rsr_session_eval, but instead of the logits gives the greedy token: exactly the token
 * rsr_sample_greedy would pick from the logits rsr_session_eval writes, certified while reading
 * an int8 copy of the LM head (when the model was compiled with one) and computing exact logits
 * only for the rows that could still win. Half the LM head's bytes per token. */
RSR_API rsr_status rsr_session_eval_greedy(rsr_session *session, const int32_t *tokens, int32_t n, int32_t *token);
/* Like rsr_session_eval, but the logits come from the int8 copy of the LM head (half the bytes of
 * the exact head per token): lossy. Every logit is within *bound (when bound is not NULL) of the
 * one rsr_session_eval would write — a certified bound, computed per call from the rows' scales
 * and quantisation errors (docs/numerics.md). Without an int8 copy (rsrc --no-greedy-head), and
 * wherever nothing can be certified (a hidden state with a NaN or an infinity, or all zero, or
 * logits that could overflow fp32: the domain in docs/numerics.md), the logits are the exact ones
 * and *bound is 0. CPU sessions only. */
RSR_API rsr_status rsr_session_eval_int8(rsr_session *session, const int32_t *tokens, int32_t n, float *logits,
                                         double *bound);

typedef struct rsr_sampler_params rsr_sampler_params;
/* Evaluates tokens and draws the next token into *token by the sampler's rules (temperature,
 * top-k, top-p, min-p, repetition penalty; greedy at temperature <= 0, exactly as
 * rsr_session_eval_greedy when no penalty applies), reading the int8 copy of the LM head and computing exact logits only for the candidate rows C: every row whose
 * exact probability at this temperature could reach 2^-24 / vocab_size. The token is drawn from
 * the exact logits' distribution restricted to C; C holds every row rsr_sample's cut keeps, so the
 * token is the one rsr_sample draws from the full exact logits with the same random state, bit for
 * bit. *tail (when not NULL) receives a certified bound on the probability the exact distribution
 * puts on the rows left out (C's complement and the cut; at most 2^-24): the total variation
 * between this draw and a draw from every exact logit (penalised), before the filters. Where the
 * last draws kept most rows (flat logits), the int8 pass is skipped and every row computed
 * exactly: the same token, fewer bytes. CPU sessions; on the GPU the full logits are sampled. */
RSR_API rsr_status rsr_session_eval_sample(rsr_session *session, const int32_t *tokens, int32_t n,
                                           const rsr_sampler_params *params, uint64_t *rng, int32_t *token,
                                           double *tail);
/* Speculative decoding's step: tokens[0] (the text's next token) and a draft tokens[1..n) that
 * its proposer chose with certainty (an n-gram lookup, a draft model's greedy guesses), evaluated
 * in one pass (as rsr_session_eval_all); the draft's tokens decoding takes are kept, the cache cut
 * after them, and out[0..*n_out) gets those tokens then the model's own after them (*n_out is one
 * more than the draft tokens taken; the last is not in the cache yet). Greedy (sampler NULL, or a
 * temperature of 0 and no penalty): a draft token is taken when it is the greedy one, so the
 * tokens are greedy decoding's, bit for bit. Sampled: a draft token d is taken with probability
 * p(d), else the token is drawn from p without d, renormalised (speculative sampling), so each
 * token is drawn from the sampler's distribution p exactly (not the draws a plain session makes
 * from the same *rng). A repetition penalty is refused (RSR_ERR_INVALID_ARGUMENT): its recent
 * tokens would change within the draft. out: n tokens of room. CPU sessions only
 * (RSR_ERR_NOT_FOUND otherwise). Gated DeltaNet layers: the state at tokens[0]'s position is copied
 * (as much memory as the state, made once) and each token's inputs to the recurrence recorded; the
 * cut replays the tokens kept (their recurrence only, not the matrices), the bits an evaluation
 * of those tokens alone gives. */
RSR_API rsr_status rsr_session_eval_draft(rsr_session *session, const int32_t *tokens, int32_t n,
                                          const rsr_sampler_params *sampler, uint64_t *rng, int32_t *out,
                                          int32_t *n_out);

/* Qwen3.5's multi-token prediction (docs/qwen35.md; a session made with rsr_session_params.mtp on a
 * model with rsr_model_info.mtp_layers 1): up to max draft tokens to follow the session's text and
 * its next token `token` (the one rsr_session_eval_draft would take first, at rsr_session_position,
 * not yet evaluated) into draft, their number into *n_draft. Each is the MTP layer's greedy token
 * (certified, as rsr_session_eval_greedy's), from the model's final-normed hidden state before it
 * (then the MTP layer's own) and the token before it; with p_min > 0 its exact logits are computed
 * and drafting stops before a token whose probability by their softmax is below p_min. The
 * session's position and the model's cache stay as they were: what the MTP layer wrote past the
 * position is written over when the text gets there. Where the hidden state before the position is
 * not kept (the session was truncated back past its latest 257 positions, or loaded from a file),
 * the drafts start from zeros; a loaded session's MTP layer reads the rows it held before the load
 * (they are not saved). Such drafts are worse, never wrong: verification decides. CPU sessions only
 * (rsr_session_create refuses mtp on another device). */
RSR_API rsr_status rsr_session_draft_mtp(rsr_session *session, int32_t token, int32_t max, float p_min, int32_t *draft,
                                         int32_t *n_draft);

/* ---- Many sequences in one step ----
 *
 * A batch advances several sessions of one model together, as a server's continuous batching
 * does. Each sequence (rsr_seq) appends tokens to its session: a prompt chunk, or the one token
 * just decoded. One forward pass takes them all: the ternary matrices see every row at once
 * (their weights read once per step, not once per sequence), attention runs per session over
 * its own KV cache, and the LM head's rows are read once for every sequence that asks for an
 * output. Each session gets exactly the bits it would get evaluated alone by rsr_session_eval,
 * _eval_greedy or _eval_sample, whatever shares the step with it:
 *
 *     rsr_batch *b;
 *     rsr_batch_create(m, 0, &b);
 *     int32_t next[2];
 *     rsr_seq seq[2] = {
 *         {.session = s0, .tokens = prompt, .n = 12, .output = RSR_OUTPUT_GREEDY, .token = &next[0]},
 *         {.session = s1, .tokens = &last, .n = 1, .output = RSR_OUTPUT_GREEDY, .token = &next[1]},
 *     };
 *     if (rsr_batch_eval(b, seq, 2) != RSR_OK) puts(rsr_batch_errmsg(b));
 *
 * Sessions join and leave between calls: a call advances the sessions it names. A call holding
 * more tokens than the batch has rows runs several steps, filled in the order of seqs (a long
 * prompt split across steps; a step takes at most its session's params.batch tokens of a sequence); to keep other sequences' decode moving, give a prompt a chunk per
 * call. Before any work every sequence is checked (its session of the batch's model and named
 * once, tokens in the vocabulary and room in its context, the output's pointers): a bad one fails
 * the call with nothing evaluated and a message naming it. A step that fails later (out of
 * memory) leaves the sessions of that step as they were before it; steps already done stay done
 * (rsr_session_position tells). CPU sessions only: a GPU session is refused. */
typedef enum rsr_output {
    RSR_OUTPUT_NONE = 0,   /* the tokens go into the cache; nothing comes back */
    RSR_OUTPUT_LOGITS = 1, /* the exact logits of the last token, as rsr_session_eval */
    RSR_OUTPUT_GREEDY = 2, /* the greedy token, as rsr_session_eval_greedy */
    RSR_OUTPUT_SAMPLE = 3, /* a drawn token, as rsr_session_eval_sample */
} rsr_output;
typedef struct rsr_seq {
    rsr_session *session;
    const int32_t *tokens;
    int32_t n;                                /* tokens appended, >= 1 */
    int32_t output;                           /* rsr_output, of the last token */
    float *logits;                            /* LOGITS: vocab_size floats */
    int32_t *token;                           /* GREEDY, SAMPLE */
    const struct rsr_sampler_params *sampler; /* SAMPLE (temperature <= 0: greedy) */
    uint64_t *rng;                            /* SAMPLE */
    double *tail;                             /* SAMPLE, may be NULL */
} rsr_seq;
typedef struct rsr_batch rsr_batch;
/* A batch of up to rows tokens per step (in [1, RSR_BATCH_MAX]; 0: RSR_BATCH_MAX), holding the
 * activations of one step (allocated for the widest step a call has asked for so far). *out is
 * set even on failure (unless out is NULL) so that rsr_batch_errmsg can say why; free it either
 * way. Used from one thread at a time, with sessions no other thread is using. */
RSR_API rsr_status rsr_batch_create(rsr_model *model, int32_t rows, rsr_batch **out);
RSR_API void rsr_batch_free(rsr_batch *batch);
RSR_API const char *rsr_batch_errmsg(const rsr_batch *batch);
RSR_API rsr_status rsr_batch_eval(rsr_batch *batch, const rsr_seq *seqs, int32_t n_seqs);

/* What attention did in one layer for the last evaluated token, summed over the query heads.
 * Dense attention scans and keeps every key and drops nothing. */
typedef struct rsr_attention_stats {
    int64_t keys;    /* keys the heads could attend: heads × (position + 1) */
    int64_t bounded; /* keys whose Louver upper bound was evaluated (not in a skipped block) */
    int64_t scanned; /* keys whose exact score was computed and that were attended */
    int64_t kept;    /* scanned keys with q·k ≥ τ: every key above τ is among them */
    int32_t heads;
    int32_t dense_fallbacks; /* Louver heads that attended every key with the dense kernel: the
                                * bound arithmetic could overflow, or a fifth or more of the
                                * indexed keys would have been candidates */
    int32_t dense_overflow;  /* of those, the heads whose bound arithmetic could overflow (the
                                * query's or the keys' magnitudes beyond docs/louver.md's limits) */
    float tau_min, tau_max;  /* τ (on q·k) over the heads; −inf for dense attention */
    double dropped_bound;    /* the largest certified bound on the dropped softmax mass of a head */
} rsr_attention_stats;
/* Fails with RSR_ERR_INVALID_ARGUMENT for a layer out of range or before any evaluation. */
RSR_API rsr_status rsr_session_attention_stats(const rsr_session *session, int32_t layer, rsr_attention_stats *stats);

/* What the certified LM heads did since the session was created: every token picked by
 * rsr_session_eval_greedy or rsr_session_eval_sample (or a batch's RSR_OUTPUT_GREEDY and
 * RSR_OUTPUT_SAMPLE), and the rows whose exact fp32 logit each pick computed; the int8 copy's
 * bounds left the others out (docs/numerics.md). A pick without the pass (no int8 copy, a hidden
 * state outside its domain, a sampled draw after flat logits) computes every row. CPU sessions
 * (a GPU session samples its full logits and counts nothing). */
typedef struct rsr_head_stats {
    int64_t picks;      /* tokens picked through the certified heads */
    int64_t passes;     /* of those, the picks that read the int8 copy */
    int64_t exact_rows; /* rows whose exact logit was computed, summed over the picks */
    int32_t vocab;      /* rows of the head */
} rsr_head_stats;
RSR_API rsr_status rsr_session_head_stats(const rsr_session *session, rsr_head_stats *stats);

/* Reading back what attention works on (CPU sessions; for analysis and benchmarks): the keys
 * (after RoPE) and values of KV head kv_head at layer `layer` for the cached positions
 * [first, first + count), as fp32 (widened exactly from the cache's kv_type: what attention
 * reads), row j at keys + j*head_dim and values + j*head_dim; either pointer may
 * be NULL, not both. Fails with RSR_ERR_INVALID_ARGUMENT, leaving a message, for a layer, head
 * or range out of bounds (first + count must not exceed rsr_session_position; a layer with a
 * sliding window holds only its last positions, rsr_session_truncate) and on a GPU session. */
RSR_API rsr_status rsr_session_kv_read(const rsr_session *session, int32_t layer, int32_t kv_head, int32_t first,
                                       int32_t count, float *keys, float *values);
/* The queries of the last evaluated position at layer `layer`, after RoPE, as attention used them:
 * num_heads × head_dim floats into q (query head h at q + h*head_dim; it shares KV head
 * h / (num_heads / num_kv_heads)). RSR_ERR_INVALID_ARGUMENT before any evaluation, after a reset
 * or a failed evaluation, for a layer out of range and on a GPU session. */
RSR_API rsr_status rsr_session_last_query(const rsr_session *session, int32_t layer, float *q);

/* Sampling. temperature <= 0 means greedy; top_k <= 0, top_p >= 1 and min_p <= 0 disable those
 * filters. The order: the repetition penalty on the logits, then the probabilities at the
 * temperature, then top-k, top-p and min-p (keep the tokens whose probability is at least min_p
 * times the most likely one's), then the draw. The repetition penalty (llama.cpp's) divides the
 * logit of each distinct token in recent[0..n_recent) by repeat_penalty where it is positive and
 * multiplies it where it is negative; it applies at temperature 0 too (the greedy token of the
 * penalised logits); repeat_penalty 1 or 0, or n_recent 0, disables it. The state of the random
 * generator lives in *rng (seed it with any value). Zero-initialised fields beyond top_p are the
 * defaults. */
struct rsr_sampler_params {
    float temperature;
    int32_t top_k;
    float top_p;
    float min_p;
    float repeat_penalty;
    const int32_t *recent; /* the tokens the penalty applies to (ids outside the vocabulary are ignored) */
    int32_t n_recent;
};
RSR_API rsr_sampler_params rsr_sampler_default_params(void); /* greedy */
RSR_API int32_t rsr_sample_greedy(const float *logits, int32_t vocab_size);
/* The penalty applied, then at a temperature T > 0 every token whose weight exp((logit − max)/T)
 * is below 2^-24 / vocab_size (less 2^-12 of it, a margin for the roundings) is left out (together they weigh below 2^-24: a total variation of
 * at most 2^-24), then top-k, top-p and min-p, then one draw. rsr_session_eval_sample draws the
 * same token from the same random state without computing every logit.
 * scratch: vocab_size floats and vocab_size int32 the caller provides (no allocation here). */
RSR_API int32_t rsr_sample(const float *logits, int32_t vocab_size, const rsr_sampler_params *params, uint64_t *rng,
                           float *scratch_probs, int32_t *scratch_ids);

/* Access to the compiled ternary matrices, for tests and tools: exact integer products. */
typedef struct rsr_matrix_info {
    const char *name; /* the checkpoint tensor name */
    int32_t rows, cols;
    const char *strategy; /* "rsr-unrolled", "rsr-loop", ... */
    int32_t rsr_k;
    float scale; /* beta: y = sum * beta / x_scale */
    /* Sums per row: 1, or with scales per group of columns (Q1_0, Q2_0; activations per block in
     * Qwen3) the units of columns each row is summed over, cols / units columns apiece. */
    int32_t units;
} rsr_matrix_info;
RSR_API rsr_status rsr_model_matrix_info(const rsr_model *model, int32_t index, rsr_matrix_info *info);
/* y[rows] = W_t · x[cols] exactly, x int8 and W ternary (or binary). A matrix with scales per group
 * of columns (rsr_matrix_info.units > 1) is summed per unit: y[u · rows + r] over the columns of
 * unit u, units · rows sums (a +2 weight of Q2_0 counted as 2). */
RSR_API rsr_status rsr_model_matvec_int(const rsr_model *model, int32_t index, const int8_t *x, int32_t *y);
/* Y[t][rows] = W_t · X[t][cols] for ntok tokens (rows of X and Y packed), through the batched
 * kernel that prefill uses where the matrix has one. */
RSR_API rsr_status rsr_model_matmul_int(const rsr_model *model, int32_t index, const int8_t *x, int32_t ntok,
                                        int32_t *y);

/* ---- Tokenizer: text ↔ token ids, as the model's tokenizer.json or tokenizer.model defines them ----
 *
 * Byte-level BPE (GPT-2 / Llama-3 style: a pre-tokenizer regex, byte alphabet, ranked merges) and
 * BPE with byte fallback over a SentencePiece-style vocabulary (Llama-2: "▁" for spaces,
 * <0xXX> tokens for bytes). Added and special tokens ("<|eot_id|>", "<s>") are matched in the
 * text before anything else. Input text is UTF-8; invalid sequences are read as U+FFFD, as a
 * WHATWG decoder would. A tokenizer handle may be used from any number of threads at once:
 * encodings, decodings and chat renderings share no state (each call takes scratch of its own),
 * so a server encodes one client's long prompt while it serves another's. Only
 * rsr_tokenizer_set_chat_template and rsr_tokenizer_free need the handle to themselves.
 * rsr_tokenizer_errmsg tells the calling thread of its own last failure. (API version 17) */
typedef struct rsr_tokenizer rsr_tokenizer;

/* The tokenizer compiled into the model. It is parsed on the first call and owned by the model
 * (do not free it). RSR_ERR_NOT_FOUND when the model was compiled without a tokenizer. */
RSR_API rsr_status rsr_model_tokenizer(rsr_model *model, rsr_tokenizer **out);

/* A tokenizer from the text of a tokenizer.json file or the bytes of a SentencePiece
 * tokenizer.model (a BPE ModelProto; told apart by content: JSON begins with '{', a ModelProto
 * with its pieces), len bytes. *out is set even on failure (unless out is NULL or memory ran
 * out) so that rsr_tokenizer_errmsg can say why; free it either way. */
RSR_API rsr_status rsr_tokenizer_create(const char *data, size_t len, rsr_tokenizer **out);
RSR_API void rsr_tokenizer_free(rsr_tokenizer *tokenizer);
RSR_API const char *rsr_tokenizer_errmsg(const rsr_tokenizer *tokenizer);

typedef struct rsr_tokenizer_info {
    const char *kind;          /* "byte-level BPE" or "BPE with byte fallback" */
    int32_t vocab_size;        /* token ids are in [0, vocab_size) */
    int32_t num_added_tokens;  /* added and special tokens */
    int32_t bos_token_id;      /* <|begin_of_text|>, <s>; -1 when there is none */
    int32_t eos_token_id;      /* <|end_of_text|>, </s>; -1 when there is none */
    int32_t eot_token_id;      /* the end of a chat turn (<|eot_id|>, </s>); -1 when there is none */
    const char *chat_template; /* what a chat renders with by default: "model" (the model's own Jinja
                                * template), else the built-in one that suits this vocabulary, or NULL */
} rsr_tokenizer_info;
RSR_API rsr_status rsr_tokenizer_get_info(const rsr_tokenizer *tokenizer, rsr_tokenizer_info *info);

enum {
    RSR_ENCODE_ADD_SPECIAL = 1,   /* add what the tokenizer's post-processor adds (a BOS token) */
    RSR_ENCODE_PARSE_SPECIAL = 2, /* special tokens written in the text ("<|eot_id|>") become their
                                   * ids; without it they are encoded as plain text */
};
/* Encodes len bytes of text (len < 0: up to the NUL). Writes up to capacity ids and sets *n_ids
 * to the number of ids of the whole text; RSR_ERR_BUFFER_TOO_SMALL when that is more than
 * capacity (call again with a larger buffer). */
RSR_API rsr_status rsr_tokenizer_encode(rsr_tokenizer *tokenizer, const char *text, ptrdiff_t len, uint32_t flags,
                                        int32_t *ids, int32_t capacity, int32_t *n_ids);

enum {
    RSR_DECODE_SKIP_SPECIAL = 1, /* leave special tokens out of the text */
};
/* Decodes n ids into text: the bytes the tokens stand for, then the tokenizer's decoder rules
 * (Llama-2: the leading space is dropped). Writes up to capacity bytes plus a NUL when it fits,
 * sets *len to the length of the whole text; RSR_ERR_BUFFER_TOO_SMALL when it is capacity or more.
 * The text is UTF-8 when the ids came from encoding text; arbitrary ids may give any bytes. */
RSR_API rsr_status rsr_tokenizer_decode(rsr_tokenizer *tokenizer, const int32_t *ids, int32_t n, uint32_t flags,
                                        char *text, size_t capacity, size_t *len);

/* The bytes one token adds to running text (for streaming output; a UTF-8 character may be
 * split across tokens). Points into the tokenizer; NULL for an id out of range. */
RSR_API const char *rsr_tokenizer_token_piece(const rsr_tokenizer *tokenizer, int32_t id, size_t *len);
/* The id of a token written as in tokenizer.json ("<|eot_id|>", "Ġthe"), or -1. */
RSR_API int32_t rsr_tokenizer_token_id(const rsr_tokenizer *tokenizer, const char *token);
/* 1 for a special token (BOS, EOS, chat markers), 0 otherwise. */
RSR_API int rsr_tokenizer_is_special(const rsr_tokenizer *tokenizer, int32_t id);

/* Chat templates. A conversation becomes one text holding the template's special tokens; encode
 * it with RSR_ENCODE_PARSE_SPECIAL and without RSR_ENCODE_ADD_SPECIAL (the template adds BOS).
 * Templates: "model" (the model's own Jinja template: the checkpoint's tokenizer.chat_template or
 * tokenizer_config.json chat_template, compiled into the artifact, or one set with
 * rsr_tokenizer_set_chat_template), and three built in: "llama3"
 * (<|start_header_id|>role<|end_header_id|>), "bitnet" (BitNet b1.58 2B-4T: "User: ...<|eot_id|>"),
 * "llama2" ([INST] ... [/INST]). name NULL: rsr_tokenizer_info.chat_template (the model's own when
 * it has one). With add_generation_prompt the text ends where the assistant's reply begins.
 * Output as for rsr_tokenizer_decode. A template that refuses the conversation (raise_exception,
 * roles out of order) gives RSR_ERR_INVALID_ARGUMENT with its message. */
typedef struct rsr_chat_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} rsr_chat_message;
/* Sets the template "model" names: len bytes of Jinja text, in the subset docs/chat-templates.md
 * describes (NULL: none, and the default is the built-in one again). RSR_ERR_FORMAT, with the
 * line and construct in rsr_tokenizer_errmsg, when the subset cannot read it (the template in
 * use is then unchanged). */
RSR_API rsr_status rsr_tokenizer_set_chat_template(rsr_tokenizer *tokenizer, const char *source, size_t len);
RSR_API rsr_status rsr_tokenizer_apply_chat_template(rsr_tokenizer *tokenizer, const char *name,
                                                     const rsr_chat_message *messages, int32_t n_messages,
                                                     int add_generation_prompt, char *text, size_t capacity,
                                                     size_t *len);
/* As rsr_tokenizer_apply_chat_template, with the template's variables given as a JSON object
 * (context_len bytes): "messages" as an OpenAI chat request gives them (an assistant turn's
 * tool_calls with their arguments, a tool message's tool_call_id, reasoning_content),
 * "tools", "add_generation_prompt", and any keyword the template reads ("enable_thinking",
 * "reasoning_effort": chat_template_kwargs). The built-in templates take the messages' roles and
 * text and refuse tools. RSR_ERR_INVALID_ARGUMENT when the context is not a JSON object.
 * (API version 14) */
RSR_API rsr_status rsr_tokenizer_apply_chat_template_json(rsr_tokenizer *tokenizer, const char *name,
                                                          const char *context, size_t context_len, char *text,
                                                          size_t capacity, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
