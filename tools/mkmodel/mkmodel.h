/*
 * mkmodel.h — what the files of rsr-mkmodel share: the formats, presets and options (opts_t), the
 * tensor list of a model (tensor_t, tlist_t), the seeded generators, the output files and the
 * entry points of each part. rsr-mkmodel.c parses the command line and runs the parts:
 * mkfiles.c (errors, temporary files, directories), mkweights.c (random numbers and the tensors'
 * values), mkshapes.c (the tensors of a model), mksafetensors.c (the Hugging Face checkpoints),
 * mkggufmodel.c (a model as one GGUF file, through mkgguf.c) and mkfrom.c (--from's checkpoint).
 */
#ifndef RSR_MKMODEL_H
#define RSR_MKMODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

/* ------------------------------------------------------------------------------------------ */
/* formats, presets, tensors                                                                   */

typedef enum {
    F_BITNET_PACKED,
    F_BITNET_BF16,
    F_LLAMA_PACKED,
    F_FALCON_E,
    F_1BITLLM,
    F_QWEN3_GROUPED,
    F_QWEN3_EMBED,
    F_COUNT
} format_t;

typedef struct {
    const char *name;
    long hidden, intermediate, layers, heads, kv_heads, vocab, max_pos, bos, eos;
    long head_dim;            /* 0: hidden / heads */
    long ssm_k, ssm_v, ssm_d; /* qwen35's DeltaNet heads and their width (0: kv_heads, heads, head_dim) */
} preset_t;

typedef enum { DT_BF16, DT_F16, DT_U8 } dtype_t;

/* K_ROUTER: as K_EMBED, F32 in GGUF; K_GROUPED: dense, ternary per group of --group columns */
/* K_FLOAT: F32 in GGUF, mean + sd · N(0, 1) each (qwen35's small tensors), or -exp of that (fneg) */
typedef enum { K_PACKED, K_SCALE, K_LATENT, K_NORM, K_EMBED, K_ROUTER, K_GROUPED, K_FLOAT } kind_t;

typedef struct {
    char name[128];
    dtype_t dt;
    kind_t kind;
    int ndim;
    uint64_t shape[2];
    uint64_t out, in;  /* logical [out, in] of the ternary matrix (K_PACKED, K_SCALE, K_LATENT, K_GROUPED) */
    int inverted;      /* K_SCALE: store 1/beta */
    double fmean, fsd; /* K_FLOAT */
    int fneg;
    uint64_t nbytes;
    int shard;
    uint64_t offset; /* within its shard's data block */
} tensor_t;

typedef struct {
    format_t format;
    long hidden, intermediate, layers, heads, kv_heads, vocab, max_pos, bos, eos;
    long head_dim; /* the width of an attention head: hidden / heads but where qwen3 says otherwise */
    uint64_t seed;
    int binary;
    double embed_std;         /* the embeddings' (and an untied head's) standard deviation */
    int gguf_type;            /* --format gguf-*: the ternary type of DIR/model.gguf (MKG_*); 0: safetensors */
    const char *gguf_arch;    /* its general.architecture (--gguf-arch) */
    int qwen3;                /* a qwen3-* format, or a gguf-* one of architecture qwen3 or gemma3: q/k head norms,
                              no sub-norms */
    dtype_t dtype;            /* the floats of a safetensors checkpoint: bf16, f16 for 1bitllm or --dtype f16 */
    int dtype_given;          /* --dtype was given */
    long group;               /* qwen3-grouped's columns per group (--group; 0: another format) */
    const char *pooling;      /* qwen3-embed's pooling: mean, last or cls (--pooling) */
    int gemma3;               /* of architecture gemma3: post norms too, and sliding windows */
    long sliding_window;      /* --sliding-window: gemma3's window of its local layers (0: none) */
    int maple;                /* of architecture maple: qwen3's attention, experts for the FFN, windows */
    int moe;                  /* experts for the FFN: maple, or qwen35moe (qwen35's layers, a shared expert) */
    long shared_ff;           /* --shared-ff: qwen35moe's shared expert's rows (default --intermediate) */
    long nextn;               /* --nextn: qwen35's MTP layers after the model's (0 or 1) */
    int qwen35;               /* of architecture qwen35: every 4th layer qwen3's attention (q with a gate, partial
                              RoPE), the others gated DeltaNet layers (ssm_k K heads, ssm_v V heads, of ssm_d) */
    long ssm_k, ssm_v, ssm_d; /* --ssm-heads K,V and --ssm-head D (0: not given; then kv_heads, heads, head_dim) */
    long experts, experts_used, expert_ff; /* --experts, --experts-used, --expert-ff (maple, qwen35moe) */
    const char *expert_ff_list;            /* --expert-ff A,B,...: one per layer (expert_ff: the first) */
    double swiglu_clamp;                   /* --swiglu-clamp (maple; 0: no key) */
    const char *swa_pattern;               /* --swa-pattern: maple's windowed layers, "1" or "0" each */
    int untied;                            /* --untied: qwen3's head is a tensor of its own (output.weight) */
    int proj_norms;                        /* --proj-norms: qwen3 with BitLinear's RMSNorm before each projection */
    double plus2;                          /* --plus2 / 100: gguf-q2's share of weights made +2 */
    int gguf_embed;      /* --gguf-embed: the type of the embeddings and head (0: F16 or BF16, exact) */
    int tokenizer;       /* write tokenizer.json (when the vocabulary has room for one) */
    char *chat_template; /* --chat-template FILE's text: tokenizer_config.json or tokenizer.chat_template */
    long shards;
    const char *out_dir;
    const char *from;           /* --from DIR: the checkpoint to convert (NULL: seeded weights) */
    const char *seeded_opt;     /* the last option that --from leaves no room for (a size, the seed...) */
    double rms_eps, rope_theta; /* the GGUF's epsilon and RoPE base (0: the architecture's default) */
    char *poison;               /* --poison: the tensor given one non-finite value, or NULL */
    uint64_t poison_index;      /* the value's index in the tensor, row-major */
    float poison_value;
} opts_t;

typedef struct {
    tensor_t *t;
    size_t n, cap;
} tlist_t;

/* the formats with packed ternary matrices, the BitNet ones, the Qwen3 ones */
int format_packed(format_t f);
int format_bitnet(format_t f);
int format_qwen3(format_t f);

extern const char *const dtype_names[];

/* maple's rows of layer L's experts: --expert-ff's L-th value, or its one value. */
long layer_ff(const opts_t *o, long L);
/* the tensors of the model o describes, in the order of the files */
void build_tensors(tlist_t *l, const opts_t *o);
/* each tensor's shard, in order, every shard non-empty and near an equal part of total bytes */
void assign_shards(tlist_t *l, long nshards, uint64_t total);

/* ------------------------------------------------------------------------------------------ */
/* random numbers: splitmix64 for seeding, xoshiro256** for the streams (mkweights.c)          */

typedef struct {
    uint64_t s[4];
    int have_spare;
    double spare;
} rng_t;

void rng_seed(rng_t *r, uint64_t key);

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng_t *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* uniform in [0, 1) with 53 random bits */
static inline double rng_unit(rng_t *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static inline double rng_uniform(rng_t *r, double lo, double hi) { return lo + (hi - lo) * rng_unit(r); }

/* key of a tensor's generator: seed and name only */
uint64_t tensor_key(uint64_t seed, const char *name);

/* f32 to f16 bits, rounded to nearest even */
uint16_t f32_to_f16(float f);

/* ------------------------------------------------------------------------------------------ */
/* writing tensor data (mkweights.c)                                                           */

typedef struct {
    FILE *f;
    const char *path; /* for messages */
    unsigned char *buf;
    size_t len, cap;
    uint64_t written;
} sink_t;

void sink_flush(sink_t *s);
/* tensor t's values, generated from o->seed and its name, into s */
void write_tensor(sink_t *s, const tensor_t *t, const opts_t *o);

/* ------------------------------------------------------------------------------------------ */
/* errors, temporary files, directories (mkfiles.c)                                            */

/* "rsr-mkmodel: " and the message on stderr; this run's temporaries removed; exit 1 */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void install_signal_handlers(void);

extern char **tmp_paths; /* temporaries not yet renamed (NULL entries: done) */

typedef struct {
    char *final_path, *tmp_path, *file_name;
} outfile_t;

extern outfile_t *outfiles; /* the files of this run, n_out of them, in order of opening */
extern size_t n_out;

/* DIR/.FILE.tmp.PID, created and remembered as the next of outfiles */
FILE *open_temp(const char *dir, const char *file_name);
/* the bytes written */
uint64_t close_file(FILE *f, const char *path);
cJSON *json_u64(uint64_t v);
void json_add(cJSON *obj, const char *key, cJSON *item);
uint64_t write_json_file(const char *dir, const char *file_name, const cJSON *root);
void remove_stale(const char *dir, long nshards, int wrote_tokenizer, int wrote_config, int wrote_pooling);
void make_dir(const char *p);
void mkdir_p(const char *dir);

/* ------------------------------------------------------------------------------------------ */
/* the writers                                                                                 */

/* mksafetensors.c: the safetensors shards, config.json, tokenizer files; the bytes written */
uint64_t write_checkpoint(tlist_t *tl, const opts_t *o, uint64_t total, const cJSON *tj);
/* mkggufmodel.c: DIR/model.gguf; the bytes written */
uint64_t write_gguf(const tlist_t *l, const opts_t *o, const cJSON *tj);

/* ------------------------------------------------------------------------------------------ */
/* --from DIR (mkfrom.c)                                                                       */

typedef struct {
    const uint8_t *map; /* model.safetensors, mapped */
    size_t size;
    uint64_t data; /* the offset of its data block */
    cJSON *header;
    char *path;
    cJSON *config; /* config.json while source_config reads it: reachable when a check dies */
} source_t;

extern source_t src;

void source_config(opts_t *o, preset_t *p);
void source_open(const opts_t *o);
uint8_t *source_bytes(const tensor_t *t);
void source_check_sizes(const preset_t *p);
void source_check_names(const tlist_t *l);
cJSON *source_tokenizer(const opts_t *o);

#endif
