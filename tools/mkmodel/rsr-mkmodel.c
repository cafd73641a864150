/*
 * rsr-mkmodel — writes ternary language models with deterministic seeded weights in the exact
 * Hugging Face checkpoint formats rsrc reads (config.json + safetensors, optionally sharded with a
 * model.safetensors.index.json), so that tests and demos never download anything.
 *
 * Every tensor's values depend only on --seed and the tensor's name (never on sharding or on the
 * order of writing). Packed ternary matrices draw each logical row from its own generator, so a
 * packed row (four logical rows, one per bit pair) is produced with O(in) memory. Data are streamed
 * through a buffered FILE*; output files are written under temporary names and renamed at the end.
 *
 * --format gguf-* writes the same model as one GGUF file instead (mkgguf.c encodes it), for the
 * architectures bitnet-b1.58, bitnet, llama, qwen3 and gemma3 (--gguf-arch; qwen3 adds RMSNorms of
 * each head of q and k, drops the sub-norms and may have heads wider than hidden/heads, --head-dim;
 * gemma3 is qwen3's tensors with norms of the attention's and the FFN's outputs, and sliding windows):
 * the ternary matrices in I2_S, TQ1_0 or TQ2_0 with the matrix's one scale, or in llama.cpp's
 * group-scaled Q2_0 (ternary, optionally some +2: --plus2) or Q1_0 (binary: a zero weight becomes
 * -1 or +1 at random) with a scale per block of 64 or 128 weights, the matrix's scale times a
 * random factor in [0.5, 1.5].
 *
 * --format qwen3-grouped and qwen3-embed write the two Qwen3 checkpoints rsrc reads from safetensors:
 * Qwen3ForCausalLM with dense bf16 or f16 matrices ternary per group of --group columns (every
 * weight -d, 0 or +d for its group's d, as Ternary-Bonsai's "unpacked" checkpoints), and Qwen3Model,
 * the BitNet embedding model (names without "model.", no head, bf16 latent matrices, an RMSNorm with
 * weights before each projection, sentence-transformers' 1_Pooling/config.json).
 * --from DIR converts instead: the weights, sizes and tokenizer of a bitnet-packed checkpoint in DIR
 * (a trained model) written as an I2_S, TQ1_0 or TQ2_0 GGUF file, nothing drawn from a seed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "alloc.h"
#include "bpe_json.h"
#include "parse_num.h"
#include "mkgguf.h"
#include "rsr_numerics.h"
#include "mktokenizer.h"

/* ------------------------------------------------------------------------------------------ */
/* errors and temporary files                                                                  */

static char **tmp_paths; /* temporaries not yet renamed (NULL entries: done) */
static volatile sig_atomic_t n_tmp;

static char *made_dirs[32]; /* the directories this run created (rmdir'd on failure, when left empty) */
static sig_atomic_t n_made;

static void remove_temporaries(void) {
    for (sig_atomic_t i = 0; i < n_tmp; i++)
        if (tmp_paths && tmp_paths[i]) unlink(tmp_paths[i]);
    for (sig_atomic_t i = n_made; i-- > 0;) rmdir(made_dirs[i]); /* fails, harmlessly, where not empty */
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rsr-mkmodel: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    remove_temporaries();
    exit(1);
}

static void on_signal(int sig) {
    remove_temporaries(); /* unlink is async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
    signal(SIGXFSZ, SIG_IGN); /* past a file size limit, write fails (EFBIG) and we clean up */
}

/* common/alloc.h's failure */
void xalloc_failed(size_t n) { die("out of memory (%zu bytes)", n); }

/* ------------------------------------------------------------------------------------------ */
/* random numbers: splitmix64 for seeding, xoshiro256** for the streams                         */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t s[4];
    int have_spare;
    double spare;
} rng_t;

static void rng_seed(rng_t *r, uint64_t key) {
    uint64_t x = key;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
    r->have_spare = 0;
    r->spare = 0;
}

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

/* standard normal, Marsaglia's polar method (no sin/cos; both values of a pair are used) */
static double rng_normal(rng_t *r) {
    if (r->have_spare) {
        r->have_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * rng_unit(r) - 1.0;
        v = 2.0 * rng_unit(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double m = sqrt(-2.0 * log(s) / s);
    r->spare = v * m;
    r->have_spare = 1;
    return u * m;
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

/* key of a tensor's generator: seed and name only */
static uint64_t tensor_key(uint64_t seed, const char *name) {
    uint64_t x = seed ^ 0x5253524D4B4D444Cull; /* "RSRMKMDL" */
    uint64_t a = splitmix64(&x);
    return a ^ fnv1a64(name);
}

static uint64_t row_key(uint64_t tkey, uint64_t row) {
    uint64_t x = tkey + (row + 1) * 0xD1B54A32D192ED03ull;
    return splitmix64(&x);
}

/* ------------------------------------------------------------------------------------------ */
/* float conversions                                                                           */

static uint16_t f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x0040u); /* quiet NaN */
    x += 0x7FFFu + ((x >> 16) & 1u);                                             /* nearest even */
    return (uint16_t)(x >> 16);
}

static uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((ax >> 13) & 0x3FFu)); /* NaN */
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);                        /* >= 65520 (and inf) -> inf */
    if (ax >= 0x38800000u) {                                                         /* normal half: >= 2^-14 */
        uint32_t h = ((ax >> 23) - 112u) << 10 | ((ax >> 13) & 0x3FFu);
        uint32_t rem = ax & 0x1FFFu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* carry may bump the exponent */
        return (uint16_t)(sign | h);
    }
    if (ax <= 0x33000000u) return sign; /* <= 2^-25: rounds to (signed) zero */
    /* subnormal half: value = mant * 2^(e-150), unit 2^-24, so h = mant >> (126 - e) */
    uint32_t e = ax >> 23;
    uint32_t mant = (ax & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126u - e; /* 14..24 */
    uint32_t h = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (h & 1u))) h++; /* 0x400 is the smallest normal: correct */
    return (uint16_t)(sign | h);
}

/* ------------------------------------------------------------------------------------------ */
/* formats, presets, tensors                                                                    */

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

static const char *const format_names[F_COUNT] = {"bitnet-packed", "bitnet-bf16",   "llama-packed", "falcon-e",
                                                  "1bitllm",       "qwen3-grouped", "qwen3-embed"};

static int format_packed(format_t f) { return f == F_BITNET_PACKED || f == F_LLAMA_PACKED || f == F_FALCON_E; }
static int format_bitnet(format_t f) { return f == F_BITNET_PACKED || f == F_BITNET_BF16; }
static int format_qwen3(format_t f) { return f == F_QWEN3_GROUPED || f == F_QWEN3_EMBED; }

typedef struct {
    const char *name;
    long hidden, intermediate, layers, heads, kv_heads, vocab, max_pos, bos, eos;
    long head_dim;            /* 0: hidden / heads */
    long ssm_k, ssm_v, ssm_d; /* qwen35's DeltaNet heads and their width (0: kv_heads, heads, head_dim) */
} preset_t;

static const preset_t presets[] = {
    {"tiny", 64, 160, 2, 4, 2, 288, 256, 1, 2, 0, 0, 0, 0},
    {"small", 256, 704, 4, 8, 2, 1024, 512, 1, 2, 0, 0, 0, 0},
    {"2b4t", 2560, 6912, 30, 20, 5, 128256, 4096, 128000, 128001, 0, 0, 0, 0},
    {"large", 1536, 4096, 24, 16, 16, 32002, 2048, 1, 2, 0, 0, 0, 0},
    {"llama8b", 4096, 14336, 32, 32, 8, 128256, 8192, 128000, 128001, 0, 0, 0, 0},
    {"llama1b", 2048, 8192, 16, 32, 8, 128256, 32768, 128000, 128001, 0, 0, 0,
     0}, /* Llama 3.2 1B's shape, 32K positions */
    /* Qwen3-0.6B's matrices (heads of 128, not hidden/heads) with small's vocabulary and 4K positions */
    {"qwen3-0.6b", 1024, 3072, 28, 16, 8, 1024, 4096, 1, 2, 128, 0, 0, 0},
    /* Qwen3.5-27B's shape (Ternary-Bonsai-27B): 64 layers, attention 24/4 heads of 256, DeltaNet 16/48 of 128 */
    {"qwen35-27b", 5120, 17408, 64, 24, 4, 248320, 4096, 1, 2, 256, 16, 48, 128},
    /* Qwen3.5-35B-A3B's shape for --gguf-arch qwen35moe: 40 layers, attention 16/2 heads of 256, DeltaNet
     * 16/32 of 128, experts and the shared expert of 512 rows (intermediate); the experts' count: flags */
    {"qwen35-35b-a3b", 2048, 512, 40, 16, 2, 248320, 4096, 1, 2, 256, 16, 32, 128},
};

typedef enum { DT_BF16, DT_F16, DT_U8 } dtype_t;
static const char *const dtype_names[] = {"BF16", "F16", "U8"};
static const int dtype_size[] = {2, 2, 1};

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

static tensor_t *tadd(tlist_t *l, const char *name, dtype_t dt, kind_t kind, int ndim, uint64_t d0, uint64_t d1) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->t = realloc(l->t, l->cap * sizeof *l->t);
        if (!l->t) die("out of memory");
    }
    tensor_t *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    if (strlen(name) >= sizeof t->name) die("tensor name too long: %s", name);
    strcpy(t->name, name);
    t->dt = dt;
    t->kind = kind;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 1;
    t->nbytes = d0 * t->shape[1] * (uint64_t)dtype_size[dt];
    return t;
}

static void add_matrix(tlist_t *l, const opts_t *o, const char *base, uint64_t out, uint64_t in) {
    char name[160];
    tensor_t *t;
    snprintf(name, sizeof name, "%s.weight", base);
    if (format_packed(o->format)) {
        t = tadd(l, name, DT_U8, K_PACKED, 2, out / 4, in);
        t->out = out;
        t->in = in;
        snprintf(name, sizeof name, "%s.weight_scale", base);
        t = tadd(l, name, DT_BF16, K_SCALE, 1, 1, 0);
        t->out = out;
        t->in = in;
        t->inverted = o->format == F_LLAMA_PACKED;
    } else {
        t = tadd(l, name, o->dtype, o->format == F_QWEN3_GROUPED ? K_GROUPED : K_LATENT, 2, out, in);
        t->out = out;
        t->in = in;
    }
}

/* --proj-norms: BASE.norm.weight, the RMSNorm of the projection's input (width cols) */
static void proj_norm(tlist_t *l, const opts_t *o, const char *base, uint64_t cols) {
    if (!o->proj_norms) return;
    char name[160];
    snprintf(name, sizeof name, "%s.norm.weight", base);
    tadd(l, name, DT_BF16, K_NORM, 1, cols, 0);
}

/* maple's rows of layer L's experts: --expert-ff's L-th value, or its one value. */
static long layer_ff(const opts_t *o, long L) {
    const char *p = o->expert_ff_list;
    for (long i = 0; p && i < L; i++) p = strchr(p, ',') + 1;
    return p ? strtol(p, NULL, 10) : o->expert_ff;
}

static tensor_t *tfloat(tlist_t *l, const char *name, int ndim, uint64_t d0, uint64_t d1, double mean, double sd,
                        int neg) {
    tensor_t *t = tadd(l, name, DT_BF16, K_FLOAT, ndim, d0, d1);
    t->fmean = mean, t->fsd = sd, t->fneg = neg;
    return t;
}

/* A mixture of experts' FFN of layer L: the router [experts][hidden], then every expert's gate, then
 * every up, then every down (write_gguf stacks each run into one tensor of the experts); qwen35moe's
 * shared expert (gate, up, down of shared_ff rows) and its gate [hidden] before them. */
static void expert_tensors(tlist_t *l, const opts_t *o, long L) {
    const uint64_t H = (uint64_t)o->hidden, F = (uint64_t)layer_ff(o, L), S = (uint64_t)o->shared_ff;
    char name[160], base[128];
    snprintf(name, sizeof name, "model.layers.%ld.mlp.gate.weight", L);
    tadd(l, name, DT_BF16, K_ROUTER, 2, (uint64_t)o->experts, H);
    static const char *const mlp[3] = {"gate", "up", "down"};
    for (int p = 0; p < 3 && S; p++) {
        snprintf(base, sizeof base, "model.layers.%ld.mlp.shared_expert.%s_proj", L, mlp[p]);
        add_matrix(l, o, base, p == 2 ? H : S, p == 2 ? S : H);
    }
    if (S) {
        snprintf(name, sizeof name, "model.layers.%ld.mlp.shared_expert_gate.weight", L);
        tfloat(l, name, 1, H, 0, 0, 1.0 / sqrt((double)H), 0);
    }
    for (int p = 0; p < 3; p++)
        for (long e = 0; e < o->experts; e++) {
            snprintf(base, sizeof base, "model.layers.%ld.mlp.experts.%ld.%s_proj", L, e, mlp[p]);
            add_matrix(l, o, base, p == 2 ? H : F, p == 2 ? F : H);
        }
}

/* qwen35's gated DeltaNet layer L: [q|k|v] (ssm_k K heads, ssm_v V heads, all of ssm_d),
 * the output gate z and the output projection as ternary matrices; beta's and alpha's rows, the
 * convolution (4 taps), dt's bias, A = -exp(.) and the norm of each V head as floats. */
static void deltanet_tensors(tlist_t *l, const opts_t *o, long L) {
    const uint64_t H = (uint64_t)o->hidden, D = (uint64_t)o->ssm_d, Vh = (uint64_t)o->ssm_v;
    const uint64_t conv = 2 * (uint64_t)o->ssm_k * D + Vh * D;
    char name[160], base[128];
    snprintf(base, sizeof base, "model.layers.%ld.linear_attn.in_proj_qkv", L);
    add_matrix(l, o, base, conv, H);
    snprintf(base, sizeof base, "model.layers.%ld.linear_attn.in_proj_z", L);
    add_matrix(l, o, base, Vh * D, H);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.in_proj_b.weight", L);
    tfloat(l, name, 2, Vh, H, 0, 1.0 / sqrt((double)H), 0);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.in_proj_a.weight", L);
    tfloat(l, name, 2, Vh, H, 0, 1.0 / sqrt((double)H), 0);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.conv1d.weight", L);
    tfloat(l, name, 2, conv, 4, 0, 0.5, 0);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.dt_bias", L);
    tfloat(l, name, 1, Vh, 0, 0, 0.5, 0);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.ssm_a", L);
    tfloat(l, name, 1, Vh, 0, -0.5, 0.5, 1);
    snprintf(name, sizeof name, "model.layers.%ld.linear_attn.norm.weight", L);
    tadd(l, name, DT_BF16, K_NORM, 1, D, 0);
    snprintf(base, sizeof base, "model.layers.%ld.linear_attn.out_proj", L);
    add_matrix(l, o, base, H, Vh * D);
}

/* qwen3-embed's tensors are named without "model." (the checkpoint of a Qwen3Model) */
static void drop_model_prefix(tlist_t *l) {
    for (size_t i = 0; i < l->n; i++)
        if (!strncmp(l->t[i].name, "model.", 6)) memmove(l->t[i].name, l->t[i].name + 6, strlen(l->t[i].name + 6) + 1);
}

static void build_tensors(tlist_t *l, const opts_t *o) {
    const dtype_t hp = o->dtype; /* high-precision dtype */
    const uint64_t H = (uint64_t)o->hidden, I = (uint64_t)o->intermediate, V = (uint64_t)o->vocab;
    const uint64_t HD = (uint64_t)o->head_dim, Q = (uint64_t)o->heads * HD, KV = (uint64_t)o->kv_heads * HD;
    const int sub_norms = (format_bitnet(o->format) || o->format == F_1BITLLM) && !o->qwen3;
    char name[160], base[128];
    tadd(l, "model.embed_tokens.weight", hp, K_EMBED, 2, V, H);
    for (long L = 0; L < o->layers; L++) {
        snprintf(name, sizeof name, "model.layers.%ld.input_layernorm.weight", L);
        tadd(l, name, hp, K_NORM, 1, H, 0);
        if (o->qwen35 && (L + 1) % 4) { /* a gated DeltaNet layer */
            deltanet_tensors(l, o, L);
            goto ffn;
        }
        static const char *const attn[4] = {"q", "k", "v", "o"};
        for (int p = 0; p < 4; p++) {
            snprintf(base, sizeof base, "model.layers.%ld.self_attn.%s_proj", L, attn[p]);
            add_matrix(l, o, base, p == 0 ? (o->qwen35 ? 2 * Q : Q) : p == 3 ? H : KV, p == 3 ? Q : H);
            proj_norm(l, o, base, p == 3 ? Q : H);
        }
        for (int p = 0; p < 2 && o->gemma3; p++) { /* RMSNorm of the attention's and the FFN's output */
            snprintf(name, sizeof name, "model.layers.%ld.%s.post_norm.weight", L, p ? "mlp" : "self_attn");
            tadd(l, name, hp, K_NORM, 1, H, 0);
        }
        for (int p = 0; p < 2 && o->qwen3; p++) { /* RMSNorm of each head of q and of k */
            snprintf(name, sizeof name, "model.layers.%ld.self_attn.%s_norm.weight", L, p ? "k" : "q");
            tadd(l, name, hp, K_NORM, 1, HD, 0);
        }
        if (sub_norms) {
            snprintf(name, sizeof name, "model.layers.%ld.self_attn.%s.weight", L,
                     o->format == F_1BITLLM ? "inner_attn_ln" : "attn_sub_norm");
            tadd(l, name, hp, K_NORM, 1, H, 0);
        }
    ffn:
        snprintf(name, sizeof name, "model.layers.%ld.post_attention_layernorm.weight", L);
        tadd(l, name, hp, K_NORM, 1, H, 0);
        static const char *const mlp[3] = {"gate", "up", "down"};
        if (o->moe) {
            expert_tensors(l, o, L);
            continue;
        }
        for (int p = 0; p < 3; p++) {
            snprintf(base, sizeof base, "model.layers.%ld.mlp.%s_proj", L, mlp[p]);
            add_matrix(l, o, base, p == 2 ? H : I, p == 2 ? I : H);
            proj_norm(l, o, base, p == 2 ? I : H);
        }
        if (sub_norms) {
            snprintf(name, sizeof name, "model.layers.%ld.mlp.%s.weight", L,
                     o->format == F_1BITLLM ? "ffn_layernorm" : "ffn_sub_norm");
            tadd(l, name, hp, K_NORM, 1, I, 0);
        }
    }
    tadd(l, "model.norm.weight", hp, K_NORM, 1, H, 0);
    /* bitnet-packed (and its GGUF architectures) and qwen3-grouped tie the head unless --untied; an
     * embedding model has none */
    const int head = format_bitnet(o->format) || o->format == F_QWEN3_GROUPED ? o->untied : o->format != F_QWEN3_EMBED;
    if (head) tadd(l, "lm_head.weight", hp, K_EMBED, 2, V, H);
    if (o->format == F_QWEN3_EMBED) drop_model_prefix(l);
}

/* Assign tensors to shards in order, every shard non-empty: each shard takes tensors until it is
 * closest to an equal part of the bytes still to place (so one huge tensor does not unbalance the
 * shards after it). */
static void assign_shards(tlist_t *l, long nshards, uint64_t total) {
    size_t i = 0;
    uint64_t remaining = total;
    for (long s = 0; s < nshards; s++) {
        const long left = nshards - s;
        const uint64_t target = remaining / (uint64_t)left;
        uint64_t acc = 0;
        size_t taken = 0;
        while (i < l->n) {
            if (s < nshards - 1) {
                if (l->n - i <= (size_t)(left - 1)) break; /* one tensor for each later shard */
                uint64_t next = acc + l->t[i].nbytes;
                if (taken && (acc >= target || (next > target && next - target >= target - acc))) break;
            }
            l->t[i].shard = (int)s;
            acc += l->t[i].nbytes;
            taken++;
            i++;
        }
        remaining -= acc;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* writing tensor data                                                                         */

typedef struct {
    FILE *f;
    const char *path; /* for messages */
    unsigned char *buf;
    size_t len, cap;
    uint64_t written;
} sink_t;

static void sink_flush(sink_t *s) {
    if (s->len && fwrite(s->buf, 1, s->len, s->f) != s->len) die("cannot write %s: %s", s->path, strerror(errno));
    s->written += s->len;
    s->len = 0;
}

static inline void sink_u16(sink_t *s, uint16_t v) {
    if (s->cap - s->len < 2) sink_flush(s);
    s->buf[s->len++] = (unsigned char)(v & 0xFF);
    s->buf[s->len++] = (unsigned char)(v >> 8);
}

static inline void put_value(sink_t *s, dtype_t dt, float v) {
    sink_u16(s, dt == DT_F16 ? f32_to_f16(v) : f32_to_bf16(v));
}

static float beta_of(const tensor_t *t, rng_t *r, int binary) {
    float base = binary ? 1.0f / sqrtf((float)t->in) : 1.0f / sqrtf(0.6f * (float)t->in);
    return base * (float)rng_uniform(r, 0.8, 1.2);
}

/* Ternary code (w + 1) of one weight: 32 random bits each, two weights per 64-bit draw. */
static void gen_codes_row(unsigned char *codes, uint64_t n, uint64_t tkey, uint64_t row, int binary) {
    rng_t r;
    rng_seed(&r, row_key(tkey, row));
    const uint32_t t0 = 1288490189u; /* floor(0.3 * 2^32): P(-1) = 0.3 */
    const uint32_t t1 = 3006477107u; /* floor(0.7 * 2^32): P(0) = 0.4, P(+1) = 0.3 */
    for (uint64_t j = 0; j < n; j += 2) {
        uint64_t b = rng_next(&r);
        uint32_t u[2] = {(uint32_t)(b >> 32), (uint32_t)b};
        for (int k = 0; k < 2 && j + (uint64_t)k < n; k++) {
            unsigned char c;
            if (binary)
                c = (u[k] >> 31) ? 2 : 0;
            else
                c = u[k] < t0 ? 0 : (u[k] < t1 ? 1 : 2);
            codes[j + (uint64_t)k] = c;
        }
    }
}

/* v, or the --poison value where this is the poisoned tensor's element k */
static float poisoned(const tensor_t *t, const opts_t *o, uint64_t k, float v) {
    return o->poison && k == o->poison_index && !strcmp(t->name, o->poison) ? o->poison_value : v;
}

static void write_tensor(sink_t *s, const tensor_t *t, const opts_t *o) {
    const uint64_t key = tensor_key(o->seed, t->name);
    const uint64_t before = s->written + s->len;
    rng_t r;
    rng_seed(&r, key);
    switch (t->kind) {
    case K_PACKED: {
        const uint64_t R = t->out / 4, in = t->in;
        unsigned char *codes = xmalloc(4 * in);
        for (uint64_t pr = 0; pr < R; pr++) {
            for (int i = 0; i < 4; i++)
                gen_codes_row(codes + (uint64_t)i * in, in, key, (uint64_t)i * R + pr, o->binary);
            for (uint64_t c = 0; c < in;) {
                if (s->len == s->cap) sink_flush(s);
                uint64_t m = in - c;
                if (m > s->cap - s->len) m = s->cap - s->len;
                unsigned char *dst = s->buf + s->len;
                for (uint64_t j = 0; j < m; j++, c++)
                    dst[j] = (unsigned char)(codes[c] | codes[in + c] << 2 | codes[2 * in + c] << 4 |
                                             codes[3 * in + c] << 6);
                s->len += m;
            }
        }
        free(codes);
        break;
    }
    case K_SCALE: {
        float beta = beta_of(t, &r, o->binary);
        put_value(s, t->dt, poisoned(t, o, 0, t->inverted ? 1.0f / beta : beta));
        break;
    }
    case K_LATENT: {
        const double sd = 1.0 / sqrt((double)t->in);
        const uint64_t n = t->out * t->in;
        for (uint64_t k = 0; k < n; k++) {
            double w;
            if (o->binary) {
                double m = sd * rng_uniform(&r, 0.9, 1.1);
                w = (rng_next(&r) >> 63) ? m : -m;
            } else {
                w = sd * rng_normal(&r);
            }
            put_value(s, t->dt, poisoned(t, o, k, (float)w));
        }
        break;
    }
    case K_GROUPED: { /* the codes of a packed matrix's rows, times a scale per group, U(0.5, 1.5) x beta's base */
        const double base = o->binary ? 1.0 / sqrt((double)t->in) : 1.0 / sqrt(0.6 * (double)t->in);
        unsigned char *codes = xmalloc(t->in);
        for (uint64_t row = 0; row < t->out; row++) {
            gen_codes_row(codes, t->in, key, row, o->binary);
            rng_t g;
            rng_seed(&g, row_key(key ^ 0x47524F5550ull, row)); /* "GROUP" */
            float d = 0;
            for (uint64_t c = 0; c < t->in; c++) {
                if (c % (uint64_t)o->group == 0) d = (float)(base * rng_uniform(&g, 0.5, 1.5));
                put_value(s, t->dt, poisoned(t, o, row * t->in + c, (float)(codes[c] - 1) * d));
            }
        }
        free(codes);
        break;
    }
    case K_FLOAT: {
        const uint64_t n = t->shape[0] * t->shape[1];
        for (uint64_t k = 0; k < n; k++) {
            double v = t->fmean + t->fsd * rng_normal(&r);
            put_value(s, t->dt, poisoned(t, o, k, (float)(t->fneg ? -exp(v) : v)));
        }
        break;
    }
    case K_NORM:
    case K_ROUTER:
    case K_EMBED: {
        const uint64_t n = t->shape[0] * t->shape[1];
        for (uint64_t k = 0; k < n; k++) {
            double v = rng_normal(&r);
            put_value(s, t->dt, poisoned(t, o, k, (float)(t->kind == K_NORM ? 1.0 + 0.1 * v : v * o->embed_std)));
        }
        break;
    }
    }
    if (s->written + s->len - before != t->nbytes) die("internal error: %s wrote the wrong size", t->name);
}

/* ------------------------------------------------------------------------------------------ */
/* files                                                                                       */

typedef struct {
    char *final_path, *tmp_path, *file_name;
} outfile_t;

static outfile_t *outfiles;
static size_t n_out;

static FILE *open_temp(const char *dir, const char *file_name) {
    outfile_t *of = &outfiles[n_out];
    of->file_name = xasprintf("%s", file_name);
    of->final_path = xasprintf("%s/%s", dir, file_name);
    of->tmp_path = xasprintf("%s/.%s.tmp.%ld", dir, file_name, (long)getpid());
    unlink(of->tmp_path); /* a stale temporary of a dead process with our pid */
    int fd = open(of->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) die("cannot create %s: %s", of->tmp_path, strerror(errno));
    tmp_paths[n_out] = of->tmp_path;
    n_out++;
    n_tmp = (sig_atomic_t)n_out;
    FILE *f = fdopen(fd, "wb");
    if (!f) die("cannot open %s: %s", of->tmp_path, strerror(errno));
    return f;
}

static uint64_t close_file(FILE *f, const char *path) {
    if (fflush(f) != 0 || ferror(f)) die("cannot write %s: %s", path, strerror(errno));
    long pos = ftell(f);
    if (fclose(f) != 0) die("cannot write %s: %s", path, strerror(errno));
    return pos < 0 ? 0 : (uint64_t)pos;
}

static cJSON *json_u64(uint64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v); /* exact integers (cJSON numbers are doubles) */
    cJSON *j = cJSON_CreateRaw(b);
    if (!j) die("out of memory");
    return j;
}

static void json_add(cJSON *obj, const char *key, cJSON *item) {
    if (!item || !cJSON_AddItemToObject(obj, key, item)) die("out of memory building JSON");
}

static char *safetensors_header(const tlist_t *l, int shard, size_t *len_out) {
    cJSON *root = cJSON_CreateObject();
    if (!root) die("out of memory");
    for (size_t i = 0; i < l->n; i++) {
        const tensor_t *t = &l->t[i];
        if (t->shard != shard) continue;
        cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        if (!e || !shape || !offs) die("out of memory");
        json_add(e, "dtype", cJSON_CreateString(dtype_names[t->dt]));
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(shape, json_u64(t->shape[d]));
        json_add(e, "shape", shape);
        cJSON_AddItemToArray(offs, json_u64(t->offset));
        cJSON_AddItemToArray(offs, json_u64(t->offset + t->nbytes));
        json_add(e, "data_offsets", offs);
        json_add(root, t->name, e);
    }
    cJSON *meta = cJSON_CreateObject();
    if (!meta) die("out of memory");
    json_add(meta, "format", cJSON_CreateString("pt"));
    json_add(root, "__metadata__", meta);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) die("out of memory printing JSON");
    size_t n = strlen(text), padded = (n + 7) & ~(size_t)7; /* 8 + padded is a multiple of 8 */
    char *h = xmalloc(padded);
    memcpy(h, text, n);
    memset(h + n, ' ', padded - n);
    free(text);
    *len_out = padded;
    return h;
}

static uint64_t write_json_file(const char *dir, const char *file_name, const cJSON *root) {
    char *text = cJSON_Print(root);
    if (!text) die("out of memory printing JSON");
    FILE *f = open_temp(dir, file_name);
    const char *path = outfiles[n_out - 1].final_path;
    size_t n = strlen(text);
    if (fwrite(text, 1, n, f) != n || fputc('\n', f) == EOF) die("cannot write %s: %s", path, strerror(errno));
    free(text);
    return close_file(f, path);
}

/* ---- GGUF (--format gguf-*): bitnet-packed's weights as bitnet.cpp's and llama.cpp's files hold them ---- */

/* ---- --from DIR: a bitnet-packed checkpoint's model.safetensors, config.json and tokenizer.json ---- */

static struct {
    const uint8_t *map; /* model.safetensors, mapped */
    size_t size;
    uint64_t data; /* the offset of its data block */
    cJSON *header;
    char *path;
    cJSON *config; /* config.json while source_config reads it: reachable when a check dies */
} src;

/* A JSON file's contents (NULL when it does not exist and !required). */
static cJSON *read_json(const char *path, int required) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (!required && errno == ENOENT) return NULL;
        die("cannot read %s: %s", path, strerror(errno));
    }
    /* a FIFO or a device would block or never end; a checkpoint's JSON is a file, and not huge */
    if (!S_ISREG(st.st_mode)) die("%s is not a regular file", path);
    if (st.st_size > (off_t)256 << 20)
        die("%s: %lld bytes is more JSON than a checkpoint has (256 MiB)", path, (long long)st.st_size);
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot read %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *text = xmalloc(cap);
    for (size_t got; (got = fread(text + n, 1, cap - n, f)) > 0;)
        if ((n += got) == cap && !(text = realloc(text, cap *= 2))) die("out of memory reading %s", path);
    if (ferror(f)) die("cannot read %s: %s", path, strerror(errno));
    fclose(f);
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    if (!j) die("%s is not valid JSON", path);
    return j;
}

/* config.json's number key (a default where dflt >= 0 and the key is absent) */
static double config_num(const cJSON *c, const char *path, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    if (!v && dflt >= 0) return dflt;
    if (!cJSON_IsNumber(v)) die("--from: %s has no number '%s'", path, key);
    return v->valuedouble;
}

static const char *config_str(const cJSON *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* DIR/config.json: a BitNetForCausalLM with packed weights (quantization_mode offline), ReLU² and
 * a tied head; its sizes into *p, its epsilon and RoPE base into o. */
static void source_config(opts_t *o, preset_t *p) {
    char *path = xasprintf("%s/config.json", o->from);
    cJSON *c = src.config = read_json(path, 1);
    const cJSON *arch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "architectures"), 0);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(c, "quantization_config");
    const cJSON *tied = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    if (!cJSON_IsString(arch) || strcmp(arch->valuestring, "BitNetForCausalLM") ||
        strcmp(config_str(q, "quant_method"), "bitnet") || strcmp(config_str(q, "quantization_mode"), "offline"))
        die("--from: %s is not a bitnet-packed checkpoint (BitNetForCausalLM, quant_method bitnet, "
            "quantization_mode offline)",
            path);
    if (cJSON_IsFalse(tied)) die("--from: %s has a head of its own; the bitnet-b1.58 GGUF ties it", path);
    if (*config_str(c, "hidden_act") && strcmp(config_str(c, "hidden_act"), "relu2"))
        die("--from: %s: hidden_act '%s' is not relu2", path, config_str(c, "hidden_act"));
    static const char *const keys[9] = {
        "hidden_size", "intermediate_size",       "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "vocab_size",  "max_position_embeddings", "bos_token_id",      "eos_token_id"};
    long v[9];
    for (int i = 0; i < 9; i++) {
        double x = config_num(c, path, keys[i], i == 4 ? config_num(c, path, keys[3], -1) : -1);
        if (!(x >= (i >= 7 ? 0 : 1) && x <= (1 << 24) && x == (double)(long)x))
            die("--from: %s: %s %g is not a size rsr-mkmodel writes", path, keys[i], x);
        v[i] = (long)x;
    }
    *p = (preset_t){path, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], 0, 0, 0, 0};
    o->rms_eps = config_num(c, path, "rms_norm_eps", 1e-6);
    o->rope_theta = config_num(c, path, "rope_theta", 10000.0);
    cJSON_Delete(c), src.config = NULL;
}

/* DIR/model.safetensors, mapped, and its header */
static void source_open(const opts_t *o) {
    src.path = xasprintf("%s/model.safetensors", o->from);
    int fd = open(src.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block the open */
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) die("--from: cannot open %s: %s", src.path, strerror(errno));
    if (!S_ISREG(st.st_mode)) die("--from: %s is not a regular file", src.path);
    src.size = (size_t)st.st_size;
    uint64_t n = 0;
    if (src.size >= 8) src.map = mmap(NULL, src.size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (src.size < 8 || src.map == MAP_FAILED) die("--from: %s is not a safetensors file", src.path);
    for (int b = 0; b < 8; b++) n |= (uint64_t)src.map[b] << (8 * b);
    if (n > src.size - 8 || !(src.header = cJSON_ParseWithLength((const char *)src.map + 8, (size_t)n)))
        die("--from: %s: the header is not JSON of the file's length", src.path);
    if (!cJSON_IsObject(src.header)) die("--from: %s: the header is not a JSON object of tensors", src.path);
    src.data = 8 + n;
}

/* The checkpoint's bytes of tensor t, after checking its dtype and shape against what the
 * bitnet-packed layout of the configured sizes says. */
static uint8_t *source_bytes(const tensor_t *t) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(src.header, t->name);
    if (!e) die("--from: %s has no tensor %s", src.path, t->name);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape"),
                *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    int same = !strcmp(config_str(e, "dtype"), dtype_names[t->dt]) && cJSON_GetArraySize(shape) == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = cJSON_GetArrayItem(shape, d)->valuedouble == (double)t->shape[d];
    if (!same)
        die("--from: %s: %s is not %s [%" PRIu64 "%s%.0" PRIu64 "], as config.json's sizes make it", src.path, t->name,
            dtype_names[t->dt], t->shape[0], t->ndim > 1 ? ", " : "", t->ndim > 1 ? t->shape[1] : 0);
    const cJSON *oa = cJSON_GetArrayItem(offs, 0), *ob = cJSON_GetArrayItem(offs, 1);
    const double a = cJSON_IsNumber(oa) ? oa->valuedouble : -1, b = cJSON_IsNumber(ob) ? ob->valuedouble : -1;
    /* in the data block, as doubles first: a conversion of 2^64 or more would be undefined, and a
     * sum near it would wrap past the bounds */
    const double room = (double)(src.size - src.data);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !(a >= 0 && b <= room && a == floor(a)) ||
        b - a != (double)t->nbytes)
        die("--from: %s: the data_offsets of %s do not hold its %" PRIu64 " bytes in the file's %.0f of data", src.path,
            t->name, t->nbytes, room);
    return memcpy(xmalloc(t->nbytes), src.map + src.data + (uint64_t)a, t->nbytes);
}

/* config.json's sizes against model.safetensors before anything is made for them: the bytes the
 * bitnet-packed layout of those sizes needs (the embedding, each layer's norms and packed
 * matrices) cannot be more than the file holds, and the last layer is there, the next not. */
static void source_check_sizes(const preset_t *p) {
    const double h = (double)p->hidden, f = (double)p->intermediate, kv = (double)p->kv_heads / (double)p->heads;
    const double per_layer = 2 * 2 * h + (2 * h * h + 2 * h * h * kv + 3 * h * f) / 4;
    const double need = 2 * (double)p->vocab * h + (double)p->layers * per_layer;
    if (need > (double)src.size)
        die("--from: %s: config.json's sizes (%ld layers, hidden %ld, intermediate %ld, vocab %ld) need %.0f bytes of "
            "weights; the file has %zu",
            src.path, p->layers, p->hidden, p->intermediate, p->vocab, need, src.size);
    char last[96], next[96];
    snprintf(last, sizeof last, "model.layers.%ld.input_layernorm.weight", p->layers - 1);
    snprintf(next, sizeof next, "model.layers.%ld.input_layernorm.weight", p->layers);
    if (!cJSON_GetObjectItemCaseSensitive(src.header, last) || cJSON_GetObjectItemCaseSensitive(src.header, next))
        die("--from: %s does not hold the %ld layers config.json gives (%s %s)", src.path, p->layers,
            cJSON_GetObjectItemCaseSensitive(src.header, last) ? "it has" : "it lacks",
            cJSON_GetObjectItemCaseSensitive(src.header, last) ? next : last);
}

/* Every tensor of the checkpoint is one of the layout's (the layout's are checked as they are read). */
static void source_check_names(const tlist_t *l) {
    const cJSON *e;
    cJSON_ArrayForEach(e, src.header) {
        if (!strcmp(e->string, "__metadata__")) continue;
        size_t i = 0;
        while (i < l->n && strcmp(l->t[i].name, e->string)) i++;
        if (i == l->n) die("--from: %s holds %s, which a bitnet-packed checkpoint has not", src.path, e->string);
    }
}

/* DIR/tokenizer.json (NULL, saying so, when there is none): a byte-level BPE with Llama 3's split,
 * which the GGUF's tokenizer.ggml.pre "llama-bpe" names. */
static cJSON *source_tokenizer(const opts_t *o) {
    char *path = xasprintf("%s/tokenizer.json", o->from);
    cJSON *tj = read_json(path, 0);
    if (!tj) fprintf(stderr, "rsr-mkmodel: no tokenizer: %s does not exist\n", path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    char *pre = tj ? cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer")) : NULL;
    cJSON *split = cJSON_CreateString(bpe_llama3_split);
    char *want = cJSON_PrintUnformatted(split);
    cJSON_Delete(split);
    if (tj && (strcmp(config_str(model, "type"), "BPE") || !pre || !strstr(pre, want) || !strstr(pre, "ByteLevel")))
        die("--from: %s is not a byte-level BPE tokenizer with Llama 3's split, which a GGUF's llama-bpe "
            "pre-tokenizer means",
            path);
    free(pre), free(want), free(path);
    return tj;
}

/* A tensor's bytes, in memory: generated, or the checkpoint's (--from). */
static uint8_t *tensor_bytes(const tensor_t *t, const opts_t *o) {
    if (o->from) return source_bytes(t);
    sink_t s = {.buf = xmalloc(t->nbytes ? t->nbytes : 1), .cap = t->nbytes, .path = t->name};
    write_tensor(&s, t, o);
    return s.buf;
}

static float bf16_at(const uint8_t *p) { return rsr_bf16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* the GGUF name of a Hugging Face tensor name */
static char *gguf_name(const char *hf) {
    static const char *const map[][2] = {
        {"input_layernorm", "attn_norm"},
        {"post_attention_layernorm", "ffn_norm"},
        {"self_attn.q_proj", "attn_q"},
        {"self_attn.k_proj", "attn_k"},
        {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"},
        {"mlp.gate_proj", "ffn_gate"},
        {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},
        {"self_attn.attn_sub_norm", "attn_sub_norm"},
        {"mlp.ffn_sub_norm", "ffn_sub_norm"},
        {"self_attn.q_norm", "attn_q_norm"},
        {"self_attn.k_norm", "attn_k_norm"},
        {"self_attn.q_proj.norm", "attn_q_norm_in"},
        {"self_attn.k_proj.norm", "attn_k_norm_in"},
        {"self_attn.v_proj.norm", "attn_v_norm_in"},
        {"self_attn.o_proj.norm", "attn_output_norm_in"},
        {"mlp.gate_proj.norm", "ffn_gate_norm_in"},
        {"mlp.up_proj.norm", "ffn_up_norm_in"},
        {"mlp.down_proj.norm", "ffn_down_norm_in"},
        {"self_attn.post_norm", "post_attention_norm"},
        {"mlp.post_norm", "post_ffw_norm"},
        {"mlp.gate", "ffn_gate_inp"},
        {"mlp.shared_expert.gate_proj", "ffn_gate_shexp"},
        {"mlp.shared_expert.up_proj", "ffn_up_shexp"},
        {"mlp.shared_expert.down_proj", "ffn_down_shexp"},
        {"mlp.shared_expert_gate", "ffn_gate_inp_shexp"},
    };
    if (!strcmp(hf, "model.embed_tokens.weight")) return xasprintf("token_embd.weight");
    if (!strcmp(hf, "model.norm.weight")) return xasprintf("output_norm.weight");
    if (!strcmp(hf, "lm_head.weight")) return xasprintf("output.weight");
    static const char *const exact[][2] = {
        /* qwen35's gated DeltaNet (llama.cpp's names) */
        {"linear_attn.in_proj_qkv.weight", "attn_qkv.weight"},
        {"linear_attn.in_proj_z.weight", "attn_gate.weight"},
        {"linear_attn.out_proj.weight", "ssm_out.weight"},
        {"linear_attn.in_proj_b.weight", "ssm_beta.weight"},
        {"linear_attn.in_proj_a.weight", "ssm_alpha.weight"},
        {"linear_attn.conv1d.weight", "ssm_conv1d.weight"},
        {"linear_attn.dt_bias", "ssm_dt.bias"},
        {"linear_attn.ssm_a", "ssm_a"},
        {"linear_attn.norm.weight", "ssm_norm.weight"},
    };
    int layer, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) == 1 && used)
        for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
            if (!strcmp(hf + used, exact[i][0])) return xasprintf("blk.%d.%s", layer, exact[i][1]);
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) == 1 && used)
        for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
            size_t n = strlen(map[i][0]);
            if (!strncmp(hf + used, map[i][0], n) && !strcmp(hf + used + n, ".weight"))
                return xasprintf("blk.%d.%s.weight", layer, map[i][1]);
        }
    die("internal error: no GGUF name for %s", hf);
}

/* The tokenizer as llama.cpp's converters write a byte-level BPE one (tokenizer.ggml.model "gpt2",
 * pre-tokenizer pre: "llama-bpe", or "qwen2" for qwen3): every id's string, its type (1 normal, 3
 * control for the special tokens, 5 unused for an id without a token), the merges, and whether BOS
 * (and, for an embedding model, EOS) is added. */
static void gguf_tokenizer(mkg_file *g, const cJSON *tj, long vocab, const char *pre, int add_eos) {
    const char **tokens = xmalloc(sizeof *tokens * (size_t)vocab);
    int32_t *types = xmalloc(sizeof *types * (size_t)vocab);
    char **pads = xmalloc(sizeof *pads * (size_t)vocab);
    for (long i = 0; i < vocab; i++) tokens[i] = NULL, types[i] = 5, pads[i] = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model"), *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(model, "vocab")) {
        if (!cJSON_IsNumber(e) || !e->string)
            die("--from: tokenizer.json: vocab entry '%s' is not a token id", e->string ? e->string : "?");
        double id = e->valuedouble;
        if (!(id >= 0 && id < (double)vocab) || id != (double)(long)id)
            die("--from: tokenizer.json: vocab entry '%s' has id %g, not one of config.json's vocab_size %ld",
                e->string, id, vocab);
        tokens[(long)id] = e->string, types[(long)id] = 1;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tj, "added_tokens");
    if (added && !cJSON_IsArray(added)) die("--from: tokenizer.json: added_tokens is not a list");
    int k_added = 0;
    cJSON_ArrayForEach(e, added) {
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(e, "id"),
                    *text = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(jid) || !cJSON_IsString(text))
            die("--from: tokenizer.json: added_tokens[%d] has no number 'id' and string 'content'", k_added);
        double id = jid->valuedouble;
        if (!(id >= 0 && id < (double)vocab) || id != (double)(long)id)
            die("--from: tokenizer.json: added_tokens[%d] has id %g, not one of config.json's vocab_size %ld", k_added,
                id, vocab);
        k_added++;
        tokens[(long)id] = text->valuestring;
        types[(long)id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? 3 : 4;
    }
    for (long i = 0; i < vocab; i++)
        if (!tokens[i]) tokens[i] = pads[i] = xasprintf("[PAD%ld]", i);
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int nm = cJSON_GetArraySize(merges), k = 0;
    const char **m = xmalloc(sizeof *m * (size_t)(nm ? nm : 1));
    char **joined = xmalloc(sizeof *joined * (size_t)(nm ? nm : 1)); /* "left right" of a pair */
    cJSON_ArrayForEach(e, merges) {
        const cJSON *l = cJSON_GetArrayItem(e, 0), *r = cJSON_GetArrayItem(e, 1);
        const char *sp = cJSON_IsString(e) ? strchr(e->valuestring, ' ') : NULL;
        if (cJSON_IsString(e) ? !sp || sp == e->valuestring || !sp[1] || strchr(sp + 1, ' ')
                              : !(cJSON_IsString(l) && cJSON_IsString(r) && cJSON_GetArraySize(e) == 2))
            die("--from: tokenizer.json: merges[%d] is neither \"left right\" nor [\"left\", \"right\"]", k);
        joined[k] = cJSON_IsString(e) ? NULL : xasprintf("%s %s", l->valuestring, r->valuestring);
        m[k] = joined[k] ? joined[k] : cJSON_IsString(e) ? e->valuestring : "";
        k++;
    }
    mkg_meta_str(g, "tokenizer.ggml.model", "gpt2");
    mkg_meta_str(g, "tokenizer.ggml.pre", pre);
    mkg_meta_strs(g, "tokenizer.ggml.tokens", tokens, (uint64_t)vocab);
    mkg_meta_i32s(g, "tokenizer.ggml.token_type", types, (uint64_t)vocab);
    mkg_meta_strs(g, "tokenizer.ggml.merges", m, (uint64_t)nm);
    mkg_meta_bool(g, "tokenizer.ggml.add_bos_token", 1);
    if (add_eos) mkg_meta_bool(g, "tokenizer.ggml.add_eos_token", 1); /* an embedding model's last token */
    for (long i = 0; i < vocab; i++) free(pads[i]);
    for (int i = 0; i < nm; i++) free(joined[i]);
    free(pads), free(tokens), free(types), free(m), free(joined);
}

/* The GGUF row of Hugging Face row r of matrix t: "llama" stores row s*hd/2 + i of each head of Q
 * and K as row 2i + s (its converter interleaves them for llama.cpp's RoPE); the other
 * architectures keep the checkpoint's order (their RoPE takes it so). */
static uint64_t gguf_row(const tensor_t *t, const opts_t *o, uint64_t r) {
    if (strcmp(o->gguf_arch, "llama") || !(strstr(t->name, ".q_proj") || strstr(t->name, ".k_proj"))) return r;
    const uint64_t hd = (uint64_t)o->head_dim, w = r % hd;
    return r - w + 2 * (w % (hd / 2)) + w / (hd / 2);
}

/* gguf-q2 and gguf-q1: the f16 scales of the blocks of matrix t (codes: its ternary codes,
 * row-major in the checkpoint's order, changed in place), each beta times a factor uniform in
 * [0.5, 1.5]; gguf-q2 makes a share o->plus2 of the weights +2 (code 3), gguf-q1 each zero -1 or +1
 * (and scales beta by sqrt(0.6), ternary weights' variance, so that outputs keep their size). The
 * draws come from a generator of the matrix's own, apart from its rows'. */
static uint16_t *group_scales(uint8_t *codes, const tensor_t *t, const opts_t *o, float beta) {
    const int q1 = o->gguf_type == MKG_Q1_0;
    const uint64_t qk = q1 ? 128 : 64, nb = t->out * t->in / qk;
    if (q1 && !o->binary) beta *= sqrtf(0.6f);
    rng_t r;
    rng_seed(&r, tensor_key(o->seed, t->name) ^ 0x47524F5550ull); /* "GROUP" */
    uint16_t *scales = xmalloc(sizeof *scales * nb);
    for (uint64_t b = 0; b < nb; b++) {
        scales[b] = f32_to_f16(beta * (float)rng_uniform(&r, 0.5, 1.5));
        for (uint8_t *c = codes + b * qk; c < codes + (b + 1) * qk; c++)
            if (q1 && *c == 1)
                *c = (rng_next(&r) >> 63) ? 2 : 0;
            else if (!q1 && o->plus2 > 0 && rng_unit(&r) < o->plus2)
                *c = 3;
    }
    return scales;
}

/* Ternary matrix t (bytes: its packed codes; beta: its scale, an f16 value unless llama-packed's
 * 1/scale) as GGUF tensor name of o->gguf_type, rows in gguf_row's order. */
static uint8_t *gguf_encode(const tensor_t *t, const opts_t *o, const uint8_t *bytes, float beta, int inverted,
                            uint64_t *nbytes) {
    const uint64_t rows = t->out, cols = t->in, R = rows / 4;
    const int grouped = o->gguf_type == MKG_Q1_0 || o->gguf_type == MKG_Q2_0;
    const uint64_t qk = o->gguf_type == MKG_Q1_0 ? 128 : 64, G = grouped ? cols / qk : 0; /* blocks per row */
    if (!grouped && o->gguf_type != MKG_I2_S && cols % 256)
        die("%s has %" PRIu64 " columns, not a multiple of the 256 of a TQ block: choose sizes that are "
            "(--hidden, --intermediate)",
            t->name, cols);
    if (o->gguf_type == MKG_I2_S && rows * cols % 128)
        die("%s has %" PRIu64 " weights, not a multiple of the 128 of an I2_S group", t->name, rows * cols);
    if (grouped && cols % qk) die("internal error: %s has %" PRIu64 " columns, not whole blocks", t->name, cols);
    /* bitnet-packed's scales are f16 values; llama-packed's 1/scale is rounded to one in TQ */
    const uint16_t h = f32_to_f16(beta);
    if (!grouped && !inverted && rsr_f16_to_f32(h) != beta)
        die("internal error: the scale of %s is not an f16 value", t->name);
    uint8_t *codes = xmalloc(rows * cols), *out = xmalloc(rows * cols);
    for (uint64_t r = 0; r < rows; r++)
        for (uint64_t c = 0; c < cols; c++) codes[r * cols + c] = (bytes[(r % R) * cols + c] >> (2 * (r / R))) & 3;
    uint16_t *scales = grouped ? group_scales(codes, t, o, beta) : NULL;
    uint16_t *gs = grouped ? xmalloc(sizeof *gs * rows * G) : NULL;
    for (uint64_t r = 0; r < rows; r++) {
        const uint64_t gr = gguf_row(t, o, r);
        memcpy(out + gr * cols, codes + r * cols, cols);
        if (grouped) memcpy(gs + gr * G, scales + r * G, sizeof *gs * G);
    }
    uint8_t *enc = grouped ? mkg_encode_grouped((uint32_t)o->gguf_type, out, gs, rows * cols, nbytes)
                           : mkg_encode_ternary((uint32_t)o->gguf_type, out, rows, cols, beta, h, nbytes);
    free(codes), free(out), free(scales), free(gs);
    return enc;
}

static void gguf_matrix(mkg_file *g, const char *name, const tensor_t *t, const opts_t *o, const uint8_t *bytes,
                        float beta, int inverted) {
    uint64_t nb;
    uint8_t *enc = gguf_encode(t, o, bytes, beta, inverted, &nb);
    mkg_tensor(g, name, (uint32_t)o->gguf_type, t->in, t->out, enc, nb);
}

/* maple: the o->experts matrices (each with its scale after it) from l->t[i] on, one projection of
 * one layer's experts, as one tensor [cols, rows, experts] blk.N.ffn_{gate,up,down}_exps.weight
 * (expert e's blocks after expert e-1's); returns the index of the last one's scale. */
static size_t gguf_experts(mkg_file *g, const tlist_t *l, const opts_t *o, size_t i) {
    const tensor_t *t0 = &l->t[i];
    int layer = 0;
    char kind[8] = "";
    if (sscanf(t0->name, "model.layers.%d.mlp.experts.0.%7[a-z]_proj", &layer, kind) != 2)
        die("internal error: %s is not expert 0's", t0->name);
    uint8_t *all = NULL;
    uint64_t total = 0;
    for (long e = 0; e < o->experts; e++, i += 2) {
        const tensor_t *t = &l->t[i], *sc = &l->t[i + 1];
        uint8_t *bytes = tensor_bytes(t, o), *sb = tensor_bytes(sc, o), *enc;
        uint64_t nb;
        enc = gguf_encode(t, o, bytes, bf16_at(sb), 0, &nb);
        uint8_t *grown = realloc(all, total + nb);
        if (!grown) die("out of memory");
        all = grown;
        memcpy(all + total, enc, nb);
        total += nb;
        free(bytes), free(sb), free(enc);
    }
    char name[96];
    snprintf(name, sizeof name, "blk.%d.ffn_%s_exps.weight", layer, kind);
    mkg_tensor3(g, name, (uint32_t)o->gguf_type, t0->in, t0->out, (uint64_t)o->experts, all, total);
    return i - 1;
}

/* The keys of a mixture of experts (ARCH.expert_*): the experts, how many a token takes, their rows
 * (one per layer with --expert-ff A,B,...) and a shared expert's rows (qwen35moe). */
static void experts_metadata(mkg_file *g, const opts_t *o) {
    char key[128];
    snprintf(key, sizeof key, "%s.expert_count", o->gguf_arch);
    mkg_meta_u32(g, key, (uint32_t)o->experts);
    snprintf(key, sizeof key, "%s.expert_used_count", o->gguf_arch);
    mkg_meta_u32(g, key, (uint32_t)o->experts_used);
    snprintf(key, sizeof key, "%s.expert_feed_forward_length", o->gguf_arch);
    if (o->expert_ff_list) { /* one per layer, an i32 array */
        int32_t *ff = xmalloc(sizeof *ff * (size_t)o->layers);
        for (long l = 0; l < o->layers; l++) ff[l] = (int32_t)layer_ff(o, l);
        mkg_meta_i32s(g, key, ff, (uint64_t)o->layers);
        free(ff);
    } else {
        mkg_meta_u32(g, key, (uint32_t)o->expert_ff);
    }
    snprintf(key, sizeof key, "%s.expert_shared_feed_forward_length", o->gguf_arch);
    if (o->shared_ff) mkg_meta_u32(g, key, (uint32_t)o->shared_ff);
}

/* maple's keys: the experts' (experts_metadata), their clamp, the window and which layers have it,
 * and the windowed layers' RoPE base (10000, the global layers having none). */
static void maple_metadata(mkg_file *g, const opts_t *o) {
    experts_metadata(g, o);
    if (o->swiglu_clamp > 0) mkg_meta_f32(g, "maple.swiglu_clamp_exp", (float)o->swiglu_clamp);
    mkg_meta_u32(g, "maple.attention.sliding_window", (uint32_t)o->sliding_window);
    int32_t *swa = xmalloc(sizeof *swa * (size_t)o->layers);
    for (long l = 0; l < o->layers; l++) swa[l] = o->swa_pattern ? o->swa_pattern[l] == '1' : l % 2 == 0;
    mkg_meta_bools(g, "maple.attention.sliding_window_pattern", swa, (uint64_t)o->layers);
    free(swa);
    mkg_meta_f32(g, "maple.rope.freq_base_swa", 10000.0f);
}

/* qwen35's RoPE: a quarter of the head (Qwen3.5's partial_rotary_factor), at least one pair. */
static long qwen35_rope_dims(const opts_t *o) { return o->head_dim / 4 >= 2 ? o->head_dim / 4 / 2 * 2 : 2; }

/* qwen35's keys: the gated DeltaNet's sizes (ssm_k K heads, ssm_v V heads, of ssm_d; 4 taps),
 * every 4th layer full attention, and the three sections of the text's multi-section RoPE. */
static void qwen35_metadata(mkg_file *g, const opts_t *o) {
    char key[128];
#define KEY(k) (snprintf(key, sizeof key, "%s.%s", o->gguf_arch, k), key)
    mkg_meta_u32(g, KEY("ssm.conv_kernel"), 4);
    mkg_meta_u32(g, KEY("ssm.state_size"), (uint32_t)o->ssm_d);
    mkg_meta_u32(g, KEY("ssm.group_count"), (uint32_t)o->ssm_k);
    mkg_meta_u32(g, KEY("ssm.time_step_rank"), (uint32_t)o->ssm_v);
    mkg_meta_u32(g, KEY("ssm.inner_size"), (uint32_t)(o->ssm_v * o->ssm_d));
    mkg_meta_u32(g, KEY("full_attention_interval"), 4);
    const int32_t n = (int32_t)qwen35_rope_dims(o) / 2, sections[4] = {(n + 2) / 3, (n + 1) / 3, n / 3, 0};
    mkg_meta_i32s(g, KEY("rope.dimension_sections"), sections, 4);
#undef KEY
}

/* The metadata of the architecture o->gguf_arch ("bitnet-b1.58", bitnet.cpp's BitNet b1.58 2B-4T,
 * the same model as bitnet-packed's; "bitnet", llama.cpp's, which runs SiLU instead of ReLU²;
 * "llama"; or "qwen3", with its head dimension and Qwen3's epsilon and RoPE base) and the
 * tokenizer (when tj). */
static void gguf_metadata(mkg_file *g, const opts_t *o, const cJSON *tj) {
    const char *A = o->gguf_arch;
    char key[128];
#define META_U32(k, v) (snprintf(key, sizeof key, "%s.%s", A, k), mkg_meta_u32(g, key, (uint32_t)(v)))
    mkg_meta_str(g, "general.architecture", A);
    mkg_meta_str(g, "general.name", "rsr-mkmodel");
    mkg_meta_u32(g, "general.alignment", 32);
    META_U32("context_length", o->max_pos);
    META_U32("embedding_length", o->hidden);
    META_U32("feed_forward_length", o->intermediate);
    META_U32("block_count", o->layers);
    META_U32("attention.head_count", o->heads);
    META_U32("attention.head_count_kv", o->kv_heads);
    META_U32("rope.dimension_count", o->qwen35 ? qwen35_rope_dims(o) : o->head_dim);
    META_U32("vocab_size", o->vocab);
    if (o->qwen3) META_U32("attention.key_length", o->head_dim), META_U32("attention.value_length", o->head_dim);
    if (o->gemma3 && o->sliding_window) META_U32("attention.sliding_window", o->sliding_window);
    if (o->maple) maple_metadata(g, o);
    if (o->moe && !o->maple) experts_metadata(g, o);
    if (o->qwen35) qwen35_metadata(g, o);
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", A);
    mkg_meta_f32(g, key, o->rms_eps ? (float)o->rms_eps : o->qwen3 ? 1e-6f : 1e-5f);
    snprintf(key, sizeof key, "%s.rope.freq_base", A);
    mkg_meta_f32(g, key, o->rope_theta ? (float)o->rope_theta : o->qwen3 ? 1e6f : 500000.0f);
    mkg_meta_u32(g, "tokenizer.ggml.bos_token_id", (uint32_t)o->bos);
    mkg_meta_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)o->eos);
    if (tj) gguf_tokenizer(g, tj, o->vocab, o->qwen3 ? "qwen2" : "llama-bpe", o->proj_norms);
    if (o->chat_template) mkg_meta_str(g, "tokenizer.chat_template", o->chat_template);
#undef META_U32
}

/* DIR/model.gguf: gguf_metadata's keys, the norms as F32, the embeddings (and an untied head) as
 * F16 when each value is one exactly, else BF16 (the checkpoint's values), or as --gguf-embed
 * says, and each ternary matrix as gguf_matrix writes it. */
static uint64_t write_gguf(const tlist_t *l, const opts_t *o, const cJSON *tj) {
    mkg_file *g = mkg_new();
    gguf_metadata(g, o, tj);
    for (size_t i = 0; i < l->n; i++) {
        const tensor_t *t = &l->t[i];
        if (t->kind == K_SCALE) continue; /* with its matrix, just before it */
        if (o->moe && strstr(t->name, ".mlp.experts.")) {
            i = gguf_experts(g, l, o, i);
            continue;
        }
        char *name = gguf_name(t->name);
        if (o->qwen35 && strstr(name, ".ffn_norm.weight")) { /* qwen35 names the FFN's norm so */
            char *q = xasprintf("%.*spost_attention_norm.weight", (int)(strstr(name, "ffn_norm") - name), name);
            free(name), name = q;
        }
        uint8_t *bytes = tensor_bytes(t, o);
        if (t->kind == K_ROUTER || t->kind == K_FLOAT) { /* F32, as llama.cpp's converters write a router */
            const uint64_t n = t->shape[0] * t->shape[1];
            float *f = xmalloc(4 * n);
            for (uint64_t k = 0; k < n; k++) f[k] = bf16_at(bytes + 2 * k);
            free(bytes);
            if (t->ndim == 1)
                mkg_tensor(g, name, MKG_F32, t->shape[0], 1, (uint8_t *)f, 4 * n);
            else
                mkg_tensor(g, name, MKG_F32, t->shape[1], t->shape[0], (uint8_t *)f, 4 * n);
        } else if (t->kind == K_PACKED) {
            const tensor_t *sc = &l->t[i + 1];
            uint8_t *sb = tensor_bytes(sc, o);
            float beta = sc->inverted ? 1.0f / bf16_at(sb) : bf16_at(sb); /* as rsrc reads llama-packed */
            free(sb);
            gguf_matrix(g, name, t, o, bytes, beta, sc->inverted);
            free(bytes);
        } else if (t->kind == K_EMBED && o->gguf_embed) { /* quantised (lossy) */
            const uint64_t n = t->shape[0] * t->shape[1];
            float *f = xmalloc(4 * n);
            for (uint64_t k = 0; k < n; k++) f[k] = bf16_at(bytes + 2 * k);
            uint64_t nb;
            uint8_t *q = mkg_quantize((uint32_t)o->gguf_embed, f, n, f32_to_f16, &nb);
            free(f), free(bytes);
            mkg_tensor(g, name, (uint32_t)o->gguf_embed, t->shape[1], t->shape[0], q, nb);
        } else if (t->kind == K_EMBED) { /* F16 where every value is one exactly, else BF16 */
            const uint64_t n = t->shape[0] * t->shape[1];
            uint8_t *h = xmalloc(2 * n);
            int exact = 1;
            for (uint64_t k = 0; k < n && exact; k++) {
                float f = bf16_at(bytes + 2 * k);
                uint16_t hv = f32_to_f16(f);
                exact = f == 0 || ((hv & 0x7C00u) && rsr_f16_to_f32(hv) == f);
                h[2 * k] = (uint8_t)hv, h[2 * k + 1] = (uint8_t)(hv >> 8);
            }
            if (exact)
                free(bytes), mkg_tensor(g, name, MKG_F16, t->shape[1], t->shape[0], h, 2 * n);
            else
                free(h), mkg_tensor(g, name, MKG_BF16, t->shape[1], t->shape[0], bytes, t->nbytes);
        } else { /* a norm: F32, as llama.cpp needs them */
            const uint64_t n = t->shape[0];
            uint8_t *v = xmalloc(n * 4);
            for (uint64_t k = 0; k < n; k++) {
                float f = bf16_at(bytes + 2 * k);
                memcpy(v + 4 * k, &f, 4);
            }
            free(bytes);
            mkg_tensor(g, name, MKG_F32, n, 1, v, n * 4);
        }
        free(name);
    }
    FILE *f = open_temp(o->out_dir, "model.gguf");
    const char *path = outfiles[n_out - 1].final_path;
    if (mkg_write(g, f) != 0) die("cannot write %s: %s", path, strerror(errno));
    mkg_free(g);
    return close_file(f, path);
}

static cJSON *build_config(const opts_t *o) {
    cJSON *c = cJSON_CreateObject();
    if (!c) die("out of memory");
    const char *arch = format_bitnet(o->format) ? "BitNetForCausalLM"
                       : o->format == F_1BITLLM ? "BitnetForCausalLM"
                                                : "LlamaForCausalLM";
    cJSON *archs = cJSON_CreateArray();
    if (!archs) die("out of memory");
    cJSON_AddItemToArray(archs, cJSON_CreateString(arch));
    json_add(c, "architectures", archs);
    json_add(c, "model_type", cJSON_CreateString(format_bitnet(o->format) ? "bitnet" : "llama"));
    json_add(c, "hidden_act", cJSON_CreateString(format_bitnet(o->format) ? "relu2" : "silu"));
    json_add(c, "hidden_size", cJSON_CreateNumber((double)o->hidden));
    json_add(c, "intermediate_size", cJSON_CreateNumber((double)o->intermediate));
    json_add(c, "num_hidden_layers", cJSON_CreateNumber((double)o->layers));
    json_add(c, "num_attention_heads", cJSON_CreateNumber((double)o->heads));
    json_add(c, "num_key_value_heads", cJSON_CreateNumber((double)o->kv_heads));
    json_add(c, "vocab_size", cJSON_CreateNumber((double)o->vocab));
    json_add(c, "max_position_embeddings", cJSON_CreateNumber((double)o->max_pos));
    json_add(c, "rms_norm_eps", cJSON_CreateNumber(o->format == F_1BITLLM ? 1e-6 : 1e-5));
    json_add(c, "rope_theta", cJSON_CreateNumber(o->format == F_1BITLLM ? 10000.0 : 500000.0));
    json_add(c, "bos_token_id", cJSON_CreateNumber((double)o->bos));
    json_add(c, "eos_token_id", cJSON_CreateNumber((double)o->eos));
    json_add(c, "tie_word_embeddings", cJSON_CreateBool(format_bitnet(o->format)));
    json_add(c, "torch_dtype", cJSON_CreateString(o->format == F_1BITLLM ? "float16" : "bfloat16"));
    if (o->format != F_1BITLLM) {
        cJSON *q = cJSON_CreateObject();
        if (!q) die("out of memory");
        json_add(q, "quant_method", cJSON_CreateString("bitnet"));
        if (format_bitnet(o->format)) {
            json_add(q, "linear_class", cJSON_CreateString("autobitlinear"));
            json_add(q, "quantization_mode", cJSON_CreateString(o->format == F_BITNET_PACKED ? "offline" : "online"));
        } else if (o->format == F_LLAMA_PACKED) {
            json_add(q, "modules_to_not_convert", cJSON_CreateNull());
        } else { /* falcon-e */
            json_add(q, "linear_class", cJSON_CreateString("bitlinear"));
            json_add(q, "use_rms_norm", cJSON_CreateBool(1));
            json_add(q, "rms_norm_eps", cJSON_CreateNumber(1e-6));
        }
        json_add(c, "quantization_config", q);
    }
    return c;
}

/* A Qwen3 config.json: Qwen3ForCausalLM (qwen3-grouped; no quantization_config, the matrices being
 * ternary as they stand) or Qwen3Model (qwen3-embed), with Qwen3's epsilon and RoPE base and a head
 * dimension of its own. */
static cJSON *build_qwen3_config(const opts_t *o) {
    cJSON *c = cJSON_CreateObject(), *archs = cJSON_CreateArray();
    if (!c || !archs) die("out of memory");
    cJSON_AddItemToArray(archs, cJSON_CreateString(o->format == F_QWEN3_EMBED ? "Qwen3Model" : "Qwen3ForCausalLM"));
    json_add(c, "architectures", archs);
    json_add(c, "model_type", cJSON_CreateString("qwen3"));
    json_add(c, "hidden_act", cJSON_CreateString("silu"));
    const struct {
        const char *key;
        long v;
    } sizes[] = {
        {"hidden_size", o->hidden},        {"intermediate_size", o->intermediate},  {"num_hidden_layers", o->layers},
        {"num_attention_heads", o->heads}, {"num_key_value_heads", o->kv_heads},    {"head_dim", o->head_dim},
        {"vocab_size", o->vocab},          {"max_position_embeddings", o->max_pos}, {"bos_token_id", o->bos},
        {"eos_token_id", o->eos}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        json_add(c, sizes[i].key, cJSON_CreateNumber((double)sizes[i].v));
    json_add(c, "rms_norm_eps", cJSON_CreateNumber(1e-6));
    json_add(c, "rope_theta", cJSON_CreateNumber(1000000.0));
    json_add(c, "rope_scaling", cJSON_CreateNull());
    json_add(c, "attention_bias", cJSON_CreateBool(0));
    json_add(c, "use_sliding_window", cJSON_CreateBool(0));
    json_add(c, "tie_word_embeddings", cJSON_CreateBool(!o->untied));
    json_add(c, "torch_dtype", cJSON_CreateString(o->dtype == DT_F16 ? "float16" : "bfloat16"));
    return c;
}

/* Remove files of an earlier run in another layout (single file vs shards) that would make the
 * directory ambiguous. Only names this tool writes are touched. */
static void remove_stale(const char *dir, long nshards, int wrote_tokenizer, int wrote_config, int wrote_pooling) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        int ours = 0, stale = 0;
        unsigned a, b;
        char tail[32];
        if (!strcmp(n, "model.safetensors"))
            ours = 1, stale = nshards > 1;
        else if (!strcmp(n, "model.safetensors.index.json"))
            ours = 1, stale = nshards == 1;
        else if (!strcmp(n, "tokenizer.json"))
            ours = 1, stale = !wrote_tokenizer;
        else if (!strcmp(n, "tokenizer_config.json"))
            ours = 1, stale = !wrote_config;
        else if (strlen(n) == 32 && sscanf(n, "model-%5u-of-%5u%31s", &a, &b, tail) == 3 &&
                 !strcmp(tail, ".safetensors"))
            ours = 1, stale = nshards == 1 || (long)b != nshards;
        else if (!strcmp(n, "1_Pooling"))
            ours = 1, stale = !wrote_pooling;
        if (ours && stale) {
            const int pooling = !strcmp(n, "1_Pooling"); /* its config.json, and it where nothing else is in it */
            char *p = xasprintf("%s/%s%s", dir, n, pooling ? "/config.json" : "");
            if (unlink(p) != 0 && errno != ENOENT)
                fprintf(stderr, "rsr-mkmodel: warning: cannot remove stale %s: %s\n", p, strerror(errno));
            if (pooling) p[strlen(p) - strlen("/config.json")] = 0, rmdir(p);
            free(p);
        }
    }
    closedir(d);
}

/* mkdir(p), remembered for removal on failure where this run made it */
static void make_dir(const char *p) {
    if (mkdir(p, 0777) == 0) {
        if (n_made < (sig_atomic_t)(sizeof made_dirs / sizeof *made_dirs)) made_dirs[n_made] = xasprintf("%s", p);
        if (n_made < (sig_atomic_t)(sizeof made_dirs / sizeof *made_dirs)) n_made++;
    } else if (errno != EEXIST) {
        die("cannot create directory %s: %s", p, strerror(errno));
    }
}

static void mkdir_p(const char *dir) {
    char *p = xasprintf("%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        make_dir(p);
        *s = '/';
    }
    make_dir(p);
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) die("%s is not a directory", p);
    free(p);
}

/* qwen3-embed's DIR/1_Pooling/config.json, as sentence-transformers writes it: the mode of
 * o->pooling true, the others false. */
static uint64_t write_pooling(const opts_t *o) {
    static const char *const modes[] = {"pooling_mode_cls_token",           "pooling_mode_mean_tokens",
                                        "pooling_mode_max_tokens",          "pooling_mode_mean_sqrt_len_tokens",
                                        "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"};
    const char *mode = !strcmp(o->pooling, "mean") ? modes[1] : !strcmp(o->pooling, "cls") ? modes[0] : modes[5];
    char *dir = xasprintf("%s/1_Pooling", o->out_dir);
    make_dir(dir);
    cJSON *p = cJSON_CreateObject();
    if (!p) die("out of memory");
    json_add(p, "word_embedding_dimension", cJSON_CreateNumber((double)o->hidden));
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) json_add(p, modes[i], cJSON_CreateBool(modes[i] == mode));
    json_add(p, "include_prompt", cJSON_CreateBool(1));
    uint64_t n = write_json_file(dir, "config.json", p);
    cJSON_Delete(p);
    free(dir);
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* command line                                                                                */

static void usage(FILE *out) {
    fputs("usage: rsr-mkmodel --format FORMAT --out DIR [--preset NAME] [--seed N]\n"
          "                   [--shards N] [--binary] [--hidden N] [--intermediate N] [--layers N]\n"
          "                   [--heads N] [--kv-heads N] [--head-dim N] [--vocab N] [--max-pos N]\n"
          "                   [--no-tokenizer] [--embed-std S] [--chat-template FILE]\n"
          "                   [--gguf-arch A] [--gguf-embed T] [--plus2 P] [--untied] [--sliding-window N]\n"
          "                   [--group N] [--dtype T] [--pooling P] [--ssm-heads K,V] [--ssm-head D]\n"
          "                   [--poison TENSOR@INDEX=nan|inf|-inf]\n"
          "       rsr-mkmodel --format gguf-i2s|gguf-tq1|gguf-tq2 --from CHECKPOINT_DIR --out DIR\n"
          "       rsr-mkmodel --help\n"
          "\n"
          "Writes a ternary language model with deterministic seeded weights in a Hugging Face\n"
          "checkpoint format: DIR/config.json and DIR/model.safetensors (or, with --shards N > 1,\n"
          "DIR/model-0000K-of-0000N.safetensors and DIR/model.safetensors.index.json), and a small\n"
          "byte-level BPE DIR/tokenizer.json when the vocabulary has room for one (vocab >= 277).\n"
          "\n"
          "formats:\n"
          "  bitnet-packed   BitNetForCausalLM, uint8 packed ternary + bf16 weight_scale (beta), tied embeddings\n"
          "                  (microsoft/bitnet-b1.58-2B-4T)\n"
          "  bitnet-bf16     BitNetForCausalLM, bf16 latent weights, quantization_mode online (-bf16 master)\n"
          "  llama-packed    LlamaForCausalLM, uint8 packed ternary + bf16 weight_scale storing 1/beta\n"
          "                  (HF1BitLLM/Llama3-8B-1.58, Falcon3-1.58bit)\n"
          "  falcon-e        LlamaForCausalLM, packed, bitlinear with use_rms_norm, weight_scale = beta\n"
          "  1bitllm         BitnetForCausalLM (1bitLLM/bitnet_b1_58), fp16 latent weights, sub-norms\n"
          "  qwen3-grouped   Qwen3ForCausalLM, dense bf16 (--dtype f16) matrices whose weights are -d, 0 or +d\n"
          "                  for a random d of each group of --group columns (Ternary-Bonsai's \"unpacked\"\n"
          "                  checkpoints); an RMSNorm of each head of q and k, heads --head-dim wide, epsilon\n"
          "                  1e-6, RoPE base 1e6, a head tied unless --untied\n"
          "  qwen3-embed     Qwen3Model, the BitNet embedding model (microsoft/bitnet-embedding-0.6b): qwen3's\n"
          "                  layers with tensors named without \"model.\", no head, bf16 latent weights, an\n"
          "                  RMSNorm with weights before each of the 7 projections, DIR/1_Pooling/config.json\n"
          "                  (--pooling) and a tokenizer that ends every text with EOS\n"
          "  gguf-i2s, gguf-tq1, gguf-tq2\n"
          "                  bitnet-packed's weights as DIR/model.gguf (architecture bitnet-b1.58), the ternary\n"
          "                  matrices in bitnet.cpp's I2_S or llama.cpp's TQ1_0 or TQ2_0 (--gguf-arch bitnet:\n"
          "                  llama.cpp's architecture of that name, which runs SiLU instead of ReLU²)\n"
          "  gguf-q2, gguf-q1\n"
          "                  the same in llama.cpp's group-scaled Q2_0 (ternary, codes of +2 with --plus2;\n"
          "                  blocks of 64) or Q1_0 (binary: each zero weight made -1 or +1 at random; blocks of\n"
          "                  128), a random f16 scale per block (the matrix's scale times U(0.5, 1.5)); every\n"
          "                  matrix input (--hidden, --heads x --head-dim, --intermediate) a multiple of the\n"
          "                  block. Mainly for --gguf-arch qwen3\n"
          "\n"
          "options:\n"
          "  --format FORMAT    one of the formats above (required)\n"
          "  --out DIR          output directory, created if missing (required)\n"
          "  --from DIR         convert DIR's bitnet-packed checkpoint (config.json, model.safetensors and\n"
          "                     tokenizer.json, as a trained BitNetForCausalLM has them) to --format gguf-i2s,\n"
          "                     gguf-tq1 or gguf-tq2: its weights, sizes, epsilon, RoPE base and tokenizer\n"
          "                     instead of seeded ones (no --preset, size flags, --seed or --gguf-arch)\n"
          "  --preset NAME      tiny (default), small, 2b4t, large, llama8b, llama1b, qwen3-0.6b,\n"
          "                     qwen35-27b, qwen35-35b-a3b; explicit size flags override it\n"
          "  --seed N           weight seed, an unsigned 64-bit integer (default 1)\n"
          "  --shards N         number of safetensors files (default 1)\n"
          "  --binary           binary weights: every ternary weight is -1 or +1\n"
          "  --no-tokenizer     do not write tokenizer.json\n"
          "  --chat-template FILE\n"
          "                     the model's chat template (Jinja): written as tokenizer_config.json's\n"
          "                     chat_template, or a gguf-* format's tokenizer.chat_template\n"
          "  --gguf-arch A      general.architecture of a gguf-* format: bitnet-b1.58 (default), bitnet,\n"
          "                     llama (llama-packed's weights, Q and K rows interleaved as llama.cpp's\n"
          "                     converter stores them, 1/weight_scale rounded to f16 in TQ blocks), or qwen3\n"
          "                     (no sub-norms; an RMSNorm of each head of q and k; heads --head-dim wide;\n"
          "                     epsilon 1e-6, RoPE base 1e6; pre-tokenizer qwen2; a head tied unless --untied),\n"
          "                     or gemma3 (qwen3's tensors and keys, an RMSNorm of the attention's and the FFN's\n"
          "                     output, gemma3.attention.sliding_window: llama.cpp's local layers, all but every\n"
          "                     6th, attend to that many positions with RoPE base 10000; GELU, the embedding\n"
          "                     times sqrt(hidden), as llama.cpp runs the architecture), or maple (qwen3's\n"
          "                     attention and a head of its own; a mixture of experts for each FFN: a router\n"
          "                     blk.N.ffn_gate_inp (F32) and the experts stacked in blk.N.ffn_{gate,up,down}_exps;\n"
          "                     windowed layers with RoPE base 10000, the others without RoPE), or qwen35\n"
          "                     (Qwen3.5: every 4th layer qwen3's attention with a gate per head in q and RoPE\n"
          "                     on a quarter of the head, the others gated DeltaNet layers: --ssm-heads K,V\n"
          "                     heads of --ssm-head (default --kv-heads, --heads, --head-dim); F32 beta, alpha,\n"
          "                     4-tap convolution, dt, A), or qwen35moe (qwen35's layers, each FFN a mixture of\n"
          "                     experts as maple's, unclamped, with a shared expert of --shared-ff rows on every\n"
          "                     token scaled by sigmoid(blk.N.ffn_gate_inp_shexp . x))\n"
          "  --ssm-heads K,V    with --gguf-arch qwen35, the DeltaNet layers' K and V heads (V a multiple of K)\n"
          "  --ssm-head D       with --gguf-arch qwen35, the width of a DeltaNet head (the state is D x D)\n"
          "  --sliding-window N\n"
          "                     with --gguf-arch gemma3 or maple, the local layers' window (default 4;\n"
          "                     gemma3: 0 for no key, all global)\n"
          "  --experts N, --experts-used K, --expert-ff F\n"
          "                     --gguf-arch maple or qwen35moe: N experts (default 8), K of them per token\n"
          "                     (default 2), F\n"
          "                     rows of each gate and up (default --intermediate; or one per layer, F1,F2,...)\n"
          "  --shared-ff F      with --gguf-arch qwen35moe, the shared expert's rows (default --intermediate)\n"
          "  --swiglu-clamp C   with --gguf-arch maple, maple.swiglu_clamp_exp (silu(min(gate, C)) *\n"
          "                     clamp(up, -C, C); default 0: no key)\n"
          "  --swa-pattern P    with --gguf-arch maple, one 0 or 1 per layer, 1 windowed (default 1010...)\n"
          "  --head-dim N       the width of an attention head, --gguf-arch qwen3, gemma3 and the qwen3-*\n"
          "                     formats (default hidden/heads; the other formats cannot hold another): q has\n"
          "                     heads x N rows, k and v kv-heads x N, o heads x N columns\n"
          "  --group N          qwen3-grouped: the columns of a group, 32, 64 or 128 (default 128); --hidden,\n"
          "                     --intermediate and --heads x --head-dim multiples of it (a preset's rounded up)\n"
          "  --dtype T          qwen3-grouped: the checkpoint's floats, bf16 (default) or f16\n"
          "  --pooling P        qwen3-embed: what 1_Pooling/config.json says to pool, mean, last (the last\n"
          "                     token's state; default) or cls (the first token's)\n"
          "  --plus2 P          gguf-q2: make P percent of the weights +2 (code 3; default 0)\n"
          "  --untied           with --gguf-arch qwen3 or gemma3 or --format qwen3-grouped, a head of its own\n"
          "                     (output.weight, lm_head.weight) instead of the embeddings\n"
          "  --proj-norms       with --gguf-arch qwen3 or gemma3, an RMSNorm with weights before each of\n"
          "                     the 7 projections, as the BitNet embedding models have\n"
          "                     (blk.N.attn_q_norm_in, ...; qwen3-embed always has them)\n"
          "  --gguf-embed T     store the embeddings and head of a gguf-* format as q8_0 or q6_k (lossy;\n"
          "                     default: F16 where exact, else BF16)\n"
          "  --embed-std S      standard deviation of the embeddings (default 1/sqrt(hidden), as in trained\n"
          "                     models: each row's norm is about 1, and the untrained model writes varied\n"
          "                     noise; at 1 a row's norm is sqrt(hidden) and the tied head makes it\n"
          "                     repeat its input)\n"
          "  --poison TENSOR@INDEX=VALUE\n"
          "                     write VALUE (nan, inf or -inf) as element INDEX (row-major) of TENSOR, a\n"
          "                     tensor of floats (not packed ternary): a checkpoint rsrc must refuse\n"
          "  --hidden N, --intermediate N, --layers N, --heads N, --kv-heads N, --vocab N, --max-pos N\n"
          "                     model shape (a block format rounds a preset's hidden and intermediate sizes\n"
          "                     up to its block, and refuses explicit sizes that are not multiples)\n"
          "  -h, --help         this text\n"
          "      --version      the version of rsr-mkmodel\n"
          "\n"
          "presets (hidden/intermediate/layers/heads/kv-heads/vocab/max-pos, bos/eos):\n"
          "  tiny     64/160/2/4/2/288/256, 1/2          small  256/704/4/8/2/1024/512, 1/2\n"
          "  2b4t     2560/6912/30/20/5/128256/4096, 128000/128001\n"
          "  large    1536/4096/24/16/16/32002/2048, 1/2\n"
          "  llama8b  4096/14336/32/32/8/128256/8192, 128000/128001\n"
          "  llama1b  2048/8192/16/32/8/128256/32768, 128000/128001 (a long-context shape)\n"
          "  qwen35-27b  5120/17408/64/24/4/248320/4096, 1/2, head-dim 256, DeltaNet 16,48 heads of 128: the\n"
          "              shape of Qwen3.5-27B (Ternary-Bonsai-27B) for --gguf-arch qwen35 (cut it with --layers)\n"
          "  qwen35-35b-a3b  2048/512/40/16/2/248320/4096, 1/2, head-dim 256, DeltaNet 16,32 heads of 128: the\n"
          "              shape of Qwen3.5-35B-A3B for --gguf-arch qwen35moe (its experts: --experts 256\n"
          "              --experts-used 8; their rows and the shared expert's: the intermediate size)\n"
          "  qwen3-0.6b  1024/3072/28/16/8/1024/4096, 1/2, head-dim 128: Qwen3-0.6B's matrices with small's\n"
          "           synthetic vocabulary (not Qwen's 151936; --vocab to change) and 4096 positions (not\n"
          "           40960); --gguf-arch qwen3 and the qwen3-* formats only (its heads are not hidden/heads\n"
          "           wide)\n"
          "Every preset has room for the tokenizer (the random weights make its text noise).\n"
          "\n"
          "examples:\n"
          "  rsr-mkmodel --format bitnet-packed --preset small --out m && rsrc m -o m.so\n"
          "  rsr-mkmodel --format llama-packed --preset 2b4t --shards 3 --out big\n"
          "  rsr-mkmodel --format gguf-q2 --gguf-arch qwen3 --preset qwen3-0.6b --out q && rsrc q -o q.so\n"
          "  rsr-mkmodel --format qwen3-grouped --group 64 --preset qwen3-0.6b --out b && rsrc b -o b.so\n"
          "  rsr-mkmodel --format qwen3-embed --pooling mean --out e && rsrc e -o e.so\n"
          "  rsr-mkmodel --format gguf-i2s --from ckpt --out ckpt-i2s && rsrc ckpt-i2s -o ckpt.so\n"
          "\n"
          "exit status: 0 when DIR is written; 1 on any error (files of a run that failed are removed).\n",
          out);
}

static long parse_long(const char *flag, const char *s, long lo, long hi) {
    long v;
    if (*s == '-' || !parse_long_in(s, LONG_MIN, LONG_MAX, &v))
        die("%s: invalid value '%s' (expected an integer %ld..%ld)", flag, s, lo, hi);
    if (v < lo || v > hi) die("%s: value %s out of range (%ld..%ld)", flag, s, lo, hi);
    return v;
}

static uint64_t parse_u64(const char *flag, const char *s) {
    unsigned long long v;
    if (!parse_u64_in(s, &v)) die("%s: invalid value '%s' (expected an unsigned 64-bit integer)", flag, s);
    return (uint64_t)v;
}

/* --poison TENSOR@INDEX=VALUE; the tensor and index are checked once the tensors are known. */
static void parse_poison(opts_t *o, const char *arg) {
    const char *at = strrchr(arg, '@'), *eq = strrchr(arg, '=');
    if (!at || !eq || eq < at || at == arg)
        die("--poison: '%s' is not TENSOR@INDEX=VALUE (for example model.norm.weight@3=nan)", arg);
    if (!strcmp(eq + 1, "nan"))
        o->poison_value = NAN;
    else if (!strcmp(eq + 1, "inf"))
        o->poison_value = INFINITY;
    else if (!strcmp(eq + 1, "-inf"))
        o->poison_value = -INFINITY;
    else
        die("--poison: value '%s' is not nan, inf or -inf", eq + 1);
    char *index = xasprintf("%.*s", (int)(eq - at - 1), at + 1);
    o->poison_index = parse_u64("--poison", index);
    free(index);
    o->poison = xasprintf("%.*s", (int)(at - arg), arg);
}

enum {
    O_FORMAT = 256,
    O_OUT,
    O_PRESET,
    O_SEED,
    O_SHARDS,
    O_BINARY,
    O_HIDDEN,
    O_INTER,
    O_LAYERS,
    O_HEADS,
    O_KVHEADS,
    O_HEADDIM,
    O_VOCAB,
    O_MAXPOS,
    O_NOTOKENIZER,
    O_CHAT_TEMPLATE,
    O_POISON,
    O_EMBEDSTD,
    O_GGUFARCH,
    O_GGUFEMBED,
    O_PLUS2,
    O_UNTIED,
    O_PROJNORMS,
    O_SWA,
    O_EXPERTS,
    O_SHARED_FF,
    O_EXPERTS_USED,
    O_EXPERT_FF,
    O_SWIGLU_CLAMP,
    O_SWA_PATTERN,
    O_SSM_HEADS,
    O_SSM_HEAD,
    O_GROUP,
    O_DTYPE,
    O_POOLING,
    O_FROM,
    O_VERSION
};

/* The Hugging Face checkpoint: the safetensors shards (and their index when there are several),
 * config.json and tokenizer.json (when tj); the bytes written. */
static uint64_t write_checkpoint(tlist_t *tl, const opts_t *o, uint64_t total, const cJSON *tj) {
    uint64_t bytes_written = 0;
    sink_t s = {0};
    s.cap = 1u << 20;
    s.buf = xmalloc(s.cap);
    cJSON *index = NULL, *wmap = NULL;
    if (o->shards > 1) {
        index = cJSON_CreateObject();
        cJSON *meta = cJSON_CreateObject();
        wmap = cJSON_CreateObject();
        if (!index || !meta || !wmap) die("out of memory");
        json_add(meta, "total_size", json_u64(total));
        json_add(index, "metadata", meta);
        json_add(index, "weight_map", wmap);
    }
    size_t next = 0;
    for (long sh = 0; sh < o->shards; sh++) {
        char fname[64];
        if (o->shards == 1)
            snprintf(fname, sizeof fname, "model.safetensors");
        else
            snprintf(fname, sizeof fname, "model-%05ld-of-%05ld.safetensors", sh + 1, o->shards);
        uint64_t off = 0;
        for (size_t i = next; i < tl->n && tl->t[i].shard == sh; i++) {
            tl->t[i].offset = off;
            off += tl->t[i].nbytes;
            if (wmap) json_add(wmap, tl->t[i].name, cJSON_CreateString(fname));
        }
        size_t hlen;
        char *hdr = safetensors_header(tl, (int)sh, &hlen);
        s.f = open_temp(o->out_dir, fname);
        s.path = outfiles[n_out - 1].final_path; /* messages name the file the user asked for */
        s.len = 0;
        s.written = 0;
        unsigned char lenbuf[8];
        for (int b = 0; b < 8; b++) lenbuf[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
        if (setvbuf(s.f, NULL, _IOFBF, 1u << 20) != 0) die("setvbuf failed");
        if (fwrite(lenbuf, 1, 8, s.f) != 8 || fwrite(hdr, 1, hlen, s.f) != hlen)
            die("cannot write %s: %s", s.path, strerror(errno));
        free(hdr);
        for (; next < tl->n && tl->t[next].shard == sh; next++) write_tensor(&s, &tl->t[next], o);
        sink_flush(&s);
        if (s.written != off) die("internal error: shard %ld data size", sh + 1);
        bytes_written += close_file(s.f, s.path);
    }
    if (next != tl->n) die("internal error: tensors left unassigned");
    if (index) {
        bytes_written += write_json_file(o->out_dir, "model.safetensors.index.json", index);
        cJSON_Delete(index);
    }
    cJSON *config = format_qwen3(o->format) ? build_qwen3_config(o) : build_config(o);
    bytes_written += write_json_file(o->out_dir, "config.json", config);
    cJSON_Delete(config);
    if (o->format == F_QWEN3_EMBED) bytes_written += write_pooling(o);
    if (tj) bytes_written += write_json_file(o->out_dir, "tokenizer.json", tj);
    if (o->chat_template) {
        cJSON *tc = cJSON_CreateObject();
        cJSON_AddStringToObject(tc, "chat_template", o->chat_template);
        bytes_written += write_json_file(o->out_dir, "tokenizer_config.json", tc);
        cJSON_Delete(tc);
    }
    free(s.buf);
    return bytes_written;
}

/* A text file's contents (NUL-terminated; at most 1 MiB), or die naming the option. */
static char *read_text_file(const char *path, const char *opt) {
    FILE *f = fopen(path, "rb");
    if (!f) die("%s: cannot read %s: %s", opt, path, strerror(errno));
    char *text = xmalloc((1 << 20) + 1);
    size_t n = fread(text, 1, 1 << 20, f);
    int more = fgetc(f) != EOF, bad = ferror(f);
    fclose(f);
    if (bad || more) die("%s: %s: %s", opt, path, bad ? "cannot read it" : "larger than 1 MiB");
    if (memchr(text, 0, n)) die("%s: %s holds a NUL byte: not a template", opt, path);
    text[n] = 0;
    return text;
}

/* the gguf-* formats: bitnet-packed's weights (llama-packed's for --gguf-arch llama) in one GGUF
 * file, the ternary matrices in the type */
static const struct {
    const char *name;
    int type;
} gguf_formats[] = {{"gguf-i2s", MKG_I2_S},
                    {"gguf-tq1", MKG_TQ1_0},
                    {"gguf-tq2", MKG_TQ2_0},
                    {"gguf-q2", MKG_Q2_0},
                    {"gguf-q1", MKG_Q1_0}};

static const char *gguf_format_name(int type) {
    for (size_t f = 0; f < sizeof gguf_formats / sizeof *gguf_formats; f++)
        if (gguf_formats[f].type == type) return gguf_formats[f].name;
    return "gguf";
}

/* --format: a checkpoint format, or a gguf-* one */
static void parse_format(opts_t *o, const char *arg) {
    int found = 0;
    for (int f = 0; f < F_COUNT; f++)
        if (!strcmp(arg, format_names[f])) o->format = (format_t)f, found = 1;
    for (size_t f = 0; f < sizeof gguf_formats / sizeof *gguf_formats; f++)
        if (!strcmp(arg, gguf_formats[f].name))
            o->format = F_BITNET_PACKED, o->gguf_type = gguf_formats[f].type, found = 1;
    if (!found)
        die("--format: unknown format '%s' (expected bitnet-packed, bitnet-bf16, llama-packed, falcon-e, "
            "1bitllm, qwen3-grouped, qwen3-embed, gguf-i2s, gguf-tq1, gguf-tq2, gguf-q2 or gguf-q1)",
            arg);
}

/* --group, --dtype and --pooling (the qwen3-* formats') into o */
static void parse_qwen3_option(opts_t *o, int c, const char *arg) {
    switch (c) {
    case O_GROUP:
        if (strcmp(arg, "32") && strcmp(arg, "64") && strcmp(arg, "128"))
            die("--group: '%s' is not 32, 64 or 128 (the groups rsrc finds)", arg);
        o->group = strtol(arg, NULL, 10);
        break;
    case O_DTYPE:
        if (strcmp(arg, "bf16") && strcmp(arg, "f16")) die("--dtype: '%s' is not bf16 or f16", arg);
        o->dtype = strcmp(arg, "f16") ? DT_BF16 : DT_F16, o->dtype_given = 1;
        break;
    case O_POOLING:
        if (strcmp(arg, "mean") && strcmp(arg, "last") && strcmp(arg, "cls"))
            die("--pooling: '%s' is not mean, last or cls", arg);
        o->pooling = arg;
        break;
    }
}

/* The columns of one row that a block of o->gguf_type, or a group of qwen3-grouped, holds (0: no
 * blocks of rows). */
static long block_cols(const opts_t *o) {
    return o->format == F_QWEN3_GROUPED                             ? o->group
           : o->gguf_type == MKG_TQ1_0 || o->gguf_type == MKG_TQ2_0 ? 256
           : o->gguf_type == MKG_Q1_0                               ? 128
           : o->gguf_type == MKG_Q2_0                               ? 64
                                                                    : 0;
}

/* The name of o's format in messages. */
static const char *format_name(const opts_t *o) {
    return o->gguf_type ? gguf_format_name(o->gguf_type) : format_names[o->format];
}

/* The head dimension: --head-dim (ov7, 0: not given) or the preset's, which only qwen3 files can
 * hold unless it is hidden/heads, else hidden/heads. */
static void finish_head_dim(opts_t *o, const preset_t *preset, long ov7) {
    const long given = ov7 ? ov7 : preset->head_dim;
    if (ov7 && !o->qwen3)
        die("--head-dim: only --gguf-arch qwen3 (with a gguf-* format) can say how wide a head is (and the "
            "qwen3-* formats); the other formats' heads are hidden/heads wide (set --hidden and --heads)");
    if (given && !o->qwen3 && given * o->heads != o->hidden)
        die("the %s preset's heads are %ld wide, not hidden/heads (%ld/%ld): only --gguf-arch qwen3 (with a gguf-* "
            "format) can hold them (and the qwen3-* formats)",
            preset->name, given, o->hidden, o->heads);
    if (!given && o->hidden % o->heads) die("hidden size %ld is not divisible by heads %ld", o->hidden, o->heads);
    o->head_dim = given ? given : o->hidden / o->heads;
    if (o->head_dim % 2) {
        if (given) die("--head-dim %ld is odd; rope needs it even", o->head_dim);
        die("head_dim %ld (hidden %ld / heads %ld) is odd; rope needs it even", o->head_dim, o->hidden, o->heads);
    }
}

/* The sizes: the explicit flags (ov, 0: not given) over the preset's, checked against each other. */
static void finish_sizes(opts_t *o, const preset_t *preset, const long ov[8]) {
    o->hidden = ov[0] ? ov[0] : preset->hidden;
    o->intermediate = ov[1] ? ov[1] : preset->intermediate;
    o->layers = ov[2] ? ov[2] : preset->layers;
    o->heads = ov[3] ? ov[3] : preset->heads;
    o->kv_heads = ov[4] ? ov[4] : preset->kv_heads;
    o->vocab = ov[5] ? ov[5] : preset->vocab;
    o->max_pos = ov[6] ? ov[6] : preset->max_pos;
    const long block = block_cols(o);
    const char *kind = o->format == F_QWEN3_GROUPED ? "group"
                       : block == 256               ? "TQ block"
                       : block == 128               ? "Q1_0 block"
                                                    : "Q2_0 block";
    if (block) {
        /* a block is weights of one row: a preset's widths are rounded up to it */
        if (!ov[0]) o->hidden = (o->hidden + block - 1) / block * block;
        if (!ov[1]) o->intermediate = (o->intermediate + block - 1) / block * block;
        if (o->hidden % block || o->intermediate % block)
            die("--format %s: %s %ld and %s %ld must be multiples of %ld (the weights of a %s block are %ld columns "
                "of one row)",
                format_name(o), o->from ? "hidden_size" : "--hidden", o->hidden,
                o->from ? "intermediate_size" : "--intermediate", o->intermediate, block, kind, block);
    }
    o->bos = preset->bos;
    o->eos = preset->eos;

    finish_head_dim(o, preset, ov[7]);
    if (o->heads % o->kv_heads) die("heads %ld is not divisible by kv-heads %ld", o->heads, o->kv_heads);
    if (block && o->heads * o->head_dim % block)
        die("--format %s: --heads %ld x --head-dim %ld = %ld (the columns of attn_output) must be a multiple of %ld "
            "(the weights of a %s are %ld columns of one row)",
            format_name(o), o->heads, o->head_dim, o->heads * o->head_dim, block, kind, block);
    if (format_packed(o->format)) {
        const long rows[4] = {o->hidden, o->kv_heads * o->head_dim, o->intermediate, o->heads * o->head_dim};
        const char *what[4] = {"hidden size (rows of o, down)", "kv-heads * head_dim (rows of k, v)",
                               "intermediate size (rows of gate, up)", "heads * head_dim (rows of q)"};
        for (int i = 0; i < 4; i++)
            if (rows[i] % 4)
                die("%s %ld is not divisible by 4, as the packed format %s needs", what[i], rows[i],
                    format_names[o->format]);
    }
    if (o->bos >= o->vocab || o->eos >= o->vocab)
        die("the %s preset's bos/eos token ids %ld/%ld do not fit vocab %ld; use a preset with small ids (tiny, small, "
            "large, qwen3-0.6b)",
            preset->name, o->bos, o->eos, o->vocab);
}

/* --poison names a tensor of this model that can hold a non-finite value, and an index inside it. */
static void check_poison(const tlist_t *tl, const opts_t *o) {
    const tensor_t *t = NULL;
    for (size_t i = 0; i < tl->n; i++)
        if (!strcmp(tl->t[i].name, o->poison)) t = &tl->t[i];
    if (!t) die("--poison: this %s model has no tensor '%s'", format_names[o->format], o->poison);
    if (t->kind == K_PACKED) die("--poison: '%s' is packed ternary and cannot hold a non-finite value", o->poison);
    const uint64_t n = t->kind == K_SCALE ? 1 : t->shape[0] * t->shape[1]; /* a dense matrix's out x in */
    if (o->poison_index >= n)
        die("--poison: index %" PRIu64 " is beyond the %" PRIu64 " values of '%s'", o->poison_index, n, o->poison);
}

/* The summary line on stderr, and what main allocated. */
static void report_and_free(opts_t *o, tlist_t *tl, uint64_t params, uint64_t bytes_written) {
    char detail[64] = ""; /* the qwen3-* formats' choices */
    if (o->format == F_QWEN3_GROUPED)
        snprintf(detail, sizeof detail, " (%s, groups of %ld)", o->dtype == DT_F16 ? "f16" : "bf16", o->group);
    else if (o->format == F_QWEN3_EMBED)
        snprintf(detail, sizeof detail, " (pooling %s)", o->pooling);
    char *origin = o->from ? xasprintf("from %s", o->from) : xasprintf("seed=%" PRIu64, o->seed);
    fprintf(stderr,
            "rsr-mkmodel: wrote %s%s%s hidden=%ld intermediate=%ld layers=%ld heads=%ld kv_heads=%ld head_dim=%ld "
            "vocab=%ld max_pos=%ld %s: %" PRIu64 " parameters, %zu files, %" PRIu64 " bytes in %s\n",
            format_name(o), detail, o->binary ? " (binary)" : "", o->hidden, o->intermediate, o->layers, o->heads,
            o->kv_heads, o->head_dim, o->vocab, o->max_pos, origin, params, n_out, bytes_written, o->out_dir);
    for (size_t i = 0; i < n_out; i++) {
        free(outfiles[i].final_path);
        free(outfiles[i].tmp_path);
        free(outfiles[i].file_name);
    }
    free(outfiles);
    free(tmp_paths);
    free(tl->t);
    free(o->poison);
    free(origin);
}

/* --gguf-arch, --gguf-embed, --embed-std, --plus2 and the architectures' own options into o */
static void parse_gguf_option(opts_t *o, int c, const char *arg) {
    char *end;
    switch (c) {
    case O_GGUFEMBED:
        if (!strcmp(arg, "q8_0"))
            o->gguf_embed = MKG_Q8_0;
        else if (!strcmp(arg, "q6_k"))
            o->gguf_embed = MKG_Q6_K;
        else
            die("--gguf-embed: '%s' is not q8_0 or q6_k", arg);
        break;
    case O_GGUFARCH:
        if (strcmp(arg, "bitnet-b1.58") && strcmp(arg, "bitnet") && strcmp(arg, "llama") && strcmp(arg, "qwen3") &&
            strcmp(arg, "gemma3") && strcmp(arg, "maple") && strcmp(arg, "qwen35") && strcmp(arg, "qwen35moe"))
            die("--gguf-arch: '%s' is not bitnet-b1.58, bitnet, llama, qwen3, gemma3, maple, qwen35 or qwen35moe", arg);
        o->gguf_arch = arg;
        break;
    case O_SWIGLU_CLAMP:
        o->swiglu_clamp = strtod(arg, &end);
        if (end == arg || *end || !(o->swiglu_clamp >= 0 && o->swiglu_clamp <= 1e6))
            die("--swiglu-clamp: '%s' is not a number in [0, 1e6]", arg);
        break;
    case O_SWA_PATTERN:
        if (strspn(arg, "01") != strlen(arg) || !*arg) die("--swa-pattern: '%s' is not a string of 0 and 1", arg);
        o->swa_pattern = arg;
        break;
    case O_EMBEDSTD:
        o->embed_std = strtod(arg, &end);
        if (end == arg || *end || !(o->embed_std > 0 && o->embed_std <= 100))
            die("--embed-std: '%s' is not a number in (0, 100]", arg);
        break;
    case O_SSM_HEADS:
        o->ssm_k = strtol(arg, &end, 10);
        o->ssm_v = *end == ',' ? strtol(end + 1, &end, 10) : 0;
        if (*end || o->ssm_k < 1 || o->ssm_v < 1 || o->ssm_k > 4096 || o->ssm_v > 4096)
            die("--ssm-heads: '%s' is not K,V (two counts of heads in [1, 4096])", arg);
        break;
    case O_SSM_HEAD: o->ssm_d = parse_long("--ssm-head", arg, 1, 1024); break;
    case O_PLUS2:
        o->plus2 = strtod(arg, &end) / 100;
        if (end == arg || *end || !(o->plus2 >= 0 && o->plus2 <= 1))
            die("--plus2: '%s' is not a percentage in [0, 100]", arg);
        break;
    }
}

/* The command line into o, *preset and the explicit sizes ov (0: not given); whether --format was
 * given. --help and --version print and exit. */
static int parse_args(int argc, char **argv, opts_t *o, const preset_t **preset, long ov[8]) {
    static const struct option lopts[] = {{"format", required_argument, 0, O_FORMAT},
                                          {"out", required_argument, 0, O_OUT},
                                          {"preset", required_argument, 0, O_PRESET},
                                          {"seed", required_argument, 0, O_SEED},
                                          {"shards", required_argument, 0, O_SHARDS},
                                          {"binary", no_argument, 0, O_BINARY},
                                          {"hidden", required_argument, 0, O_HIDDEN},
                                          {"intermediate", required_argument, 0, O_INTER},
                                          {"layers", required_argument, 0, O_LAYERS},
                                          {"heads", required_argument, 0, O_HEADS},
                                          {"kv-heads", required_argument, 0, O_KVHEADS},
                                          {"head-dim", required_argument, 0, O_HEADDIM},
                                          {"vocab", required_argument, 0, O_VOCAB},
                                          {"max-pos", required_argument, 0, O_MAXPOS},
                                          {"no-tokenizer", no_argument, 0, O_NOTOKENIZER},
                                          {"chat-template", required_argument, 0, O_CHAT_TEMPLATE},
                                          {"poison", required_argument, 0, O_POISON},
                                          {"embed-std", required_argument, 0, O_EMBEDSTD},
                                          {"gguf-arch", required_argument, 0, O_GGUFARCH},
                                          {"gguf-embed", required_argument, 0, O_GGUFEMBED},
                                          {"plus2", required_argument, 0, O_PLUS2},
                                          {"untied", no_argument, 0, O_UNTIED},
                                          {"proj-norms", no_argument, 0, O_PROJNORMS},
                                          {"help", no_argument, 0, 'h'},
                                          {"sliding-window", required_argument, 0, O_SWA},
                                          {"experts", required_argument, 0, O_EXPERTS},
                                          {"shared-ff", required_argument, 0, O_SHARED_FF},
                                          {"experts-used", required_argument, 0, O_EXPERTS_USED},
                                          {"expert-ff", required_argument, 0, O_EXPERT_FF},
                                          {"swiglu-clamp", required_argument, 0, O_SWIGLU_CLAMP},
                                          {"swa-pattern", required_argument, 0, O_SWA_PATTERN},
                                          {"ssm-heads", required_argument, 0, O_SSM_HEADS},
                                          {"ssm-head", required_argument, 0, O_SSM_HEAD},
                                          {"group", required_argument, 0, O_GROUP},
                                          {"dtype", required_argument, 0, O_DTYPE},
                                          {"pooling", required_argument, 0, O_POOLING},
                                          {"from", required_argument, 0, O_FROM},
                                          {"version", no_argument, 0, O_VERSION},
                                          {0, 0, 0, 0}};
    const long DMAX = 1L << 24; /* per-dimension limit */
    int have_format = 0, c, li = -1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", lopts, &li)) != -1) {
        static const int seeded[] = {O_PRESET,   O_SEED,    O_BINARY,  O_HIDDEN, O_INTER,  O_LAYERS,
                                     O_HEADS,    O_KVHEADS, O_HEADDIM, O_VOCAB,  O_MAXPOS, O_EMBEDSTD,
                                     O_GGUFARCH, O_POISON,  O_SHARDS,  O_PLUS2,  O_UNTIED, O_PROJNORMS};
        for (size_t k = 0; k < sizeof seeded / sizeof *seeded; k++)
            if (c == seeded[k] && li >= 0) o->seeded_opt = lopts[li].name;
        li = -1;
        switch (c) {
        case 'h': usage(stdout); exit(0);
        case O_VERSION: printf("rsr-mkmodel %s\n", RSR_PROJECT_VERSION); exit(0);
        case O_FORMAT:
            parse_format(o, optarg);
            have_format = 1;
            break;
        case O_OUT:
            if (!*optarg) die("--out: empty directory name");
            o->out_dir = optarg;
            break;
        case O_FROM:
            if (!*optarg) die("--from: empty directory name");
            o->from = optarg;
            break;
        case O_PRESET: {
            *preset = NULL;
            for (size_t p = 0; p < sizeof presets / sizeof presets[0]; p++)
                if (!strcmp(optarg, presets[p].name)) *preset = &presets[p];
            if (!*preset)
                die("--preset: unknown preset '%s' (expected tiny, small, 2b4t, large, llama8b, llama1b, "
                    "qwen3-0.6b, qwen35-27b or qwen35-35b-a3b)",
                    optarg);
            break;
        }
        case O_SEED: o->seed = parse_u64("--seed", optarg); break;
        case O_SHARDS: o->shards = parse_long("--shards", optarg, 1, 99999); break;
        case O_BINARY: o->binary = 1; break;
        case O_NOTOKENIZER: o->tokenizer = 0; break;
        case O_UNTIED: o->untied = 1; break;
        case O_PROJNORMS: o->proj_norms = 1; break;
        case O_SWA: o->sliding_window = parse_long("--sliding-window", optarg, 0, 1L << 24); break;
        case O_EXPERTS: o->experts = parse_long("--experts", optarg, 1, 4096); break;
        case O_SHARED_FF: o->shared_ff = parse_long("--shared-ff", optarg, 1, 65535); break;
        case O_EXPERTS_USED: o->experts_used = parse_long("--experts-used", optarg, 1, 4096); break;
        case O_EXPERT_FF: { /* N, or one per layer: N,M,... */
            char first[32];
            snprintf(first, sizeof first, "%.*s", (int)strcspn(optarg, ","), optarg);
            o->expert_ff_list = strchr(optarg, ',') ? optarg : NULL;
            o->expert_ff = parse_long("--expert-ff", first, 1, 65535);
            break;
        }
        case O_SWIGLU_CLAMP:
        case O_SWA_PATTERN: parse_gguf_option(o, c, optarg); break;
        case O_SSM_HEADS:
        case O_SSM_HEAD: parse_gguf_option(o, c, optarg); break;
        case O_GROUP:
        case O_DTYPE:
        case O_POOLING: parse_qwen3_option(o, c, optarg); break;
        case O_CHAT_TEMPLATE: o->chat_template = read_text_file(optarg, "--chat-template"); break;
        case O_GGUFEMBED:
        case O_GGUFARCH:
        case O_EMBEDSTD:
        case O_PLUS2: parse_gguf_option(o, c, optarg); break;
        case O_POISON: parse_poison(o, optarg); break;
        case O_HIDDEN: ov[0] = parse_long("--hidden", optarg, 1, DMAX); break;
        case O_INTER: ov[1] = parse_long("--intermediate", optarg, 1, DMAX); break;
        case O_LAYERS: ov[2] = parse_long("--layers", optarg, 1, 100000); break;
        case O_HEADS: ov[3] = parse_long("--heads", optarg, 1, DMAX); break;
        case O_KVHEADS: ov[4] = parse_long("--kv-heads", optarg, 1, DMAX); break;
        case O_VOCAB: ov[5] = parse_long("--vocab", optarg, 1, DMAX); break;
        case O_MAXPOS: ov[6] = parse_long("--max-pos", optarg, 1, DMAX); break;
        case O_HEADDIM: ov[7] = parse_long("--head-dim", optarg, 1, 65535); break;
        case ':': die("%s needs a value", argv[optind - 1]);
        default:
            if (optopt) die("unknown option '-%c' (see --help)", optopt);
            die("unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) die("unexpected argument '%s' (see --help)", argv[optind]);
    return have_format;
}

/* The options that only some formats take, against the format and architecture. */
static void check_format_options(const opts_t *o) {
    if (o->plus2 > 0 && o->gguf_type != MKG_Q2_0)
        die("--plus2: only --format gguf-q2 has a code for +2 (Q2_0's code 3)");
    if (o->group && o->format != F_QWEN3_GROUPED) die("--group: only --format qwen3-grouped has groups of columns");
    if (o->dtype_given && o->format != F_QWEN3_GROUPED)
        die("--dtype: only --format qwen3-grouped has the choice (bf16 or f16)");
    if (o->pooling && o->format != F_QWEN3_EMBED) die("--pooling: only --format qwen3-embed is an embedding model");
    if (o->untied && o->format == F_QWEN3_EMBED)
        die("--untied: --format qwen3-embed is an embedding model, with no head");
    if (o->proj_norms && o->format == F_QWEN3_GROUPED)
        die("--proj-norms: rsrc reads a Qwen3ForCausalLM (qwen3-grouped) without norms before the projections; "
            "--format qwen3-embed has them");
    if (o->untied && !o->qwen3)
        die("--untied: only --gguf-arch qwen3 (with a gguf-* format) has the choice (and --format qwen3-grouped); "
            "bitnet-packed and its GGUF architectures tie the head to the embeddings, llama-packed and --gguf-arch "
            "llama never do");
    if (o->proj_norms && !o->qwen3)
        die("--proj-norms: only --gguf-arch qwen3 or gemma3 (with a gguf-* format) has a norm before each projection "
            "(the BitNet embedding models: GGUF's blk.N.*_norm_in)");
    if (o->sliding_window >= 0 && !o->gemma3 && !o->maple)
        die("--sliding-window: only --gguf-arch gemma3 or maple (with a gguf-* format) has sliding windows");
    if ((o->experts || o->experts_used || o->expert_ff) && !o->moe)
        die("--experts, --experts-used, --expert-ff: only --gguf-arch maple or qwen35moe (with a gguf-* format) has "
            "experts");
    if ((o->swiglu_clamp > 0 || o->swa_pattern) && !o->maple)
        die("--swiglu-clamp, --swa-pattern: only --gguf-arch maple (with a gguf-* format) has them");
    if (o->shared_ff && !(o->moe && !o->maple))
        die("--shared-ff: only --gguf-arch qwen35moe (with a gguf-* format) has a shared expert");
    if (o->moe && o->gguf_type == MKG_I2_S)
        die("--gguf-arch %s: I2_S holds at most two dimensions; the experts are stacked in three", o->gguf_arch);
}

/* --from: a gguf-* format of one scale per matrix, and none of the options that describe a seeded model */
static void check_from_options(const opts_t *o) {
    if (!o->gguf_type || o->gguf_type == MKG_Q2_0 || o->gguf_type == MKG_Q1_0)
        die("--from: only --format gguf-i2s, gguf-tq1 or gguf-tq2 convert a checkpoint (one scale per matrix, as "
            "a bitnet-packed checkpoint has)");
    if (o->seeded_opt)
        die("--from: --%s describes a seeded model; the checkpoint's config.json gives the sizes and the "
            "architecture is bitnet-b1.58",
            o->seeded_opt);
}

/* qwen35's DeltaNet sizes: the flags, the preset's, or the attention's (K heads kv_heads, V heads
 * heads, of head_dim), checked as rsrc and llama.cpp read them. */
static void finish_qwen35(opts_t *o, const preset_t *preset) {
    if (!o->qwen35) {
        if (o->ssm_k || o->ssm_d) die("--ssm-heads and --ssm-head: only --gguf-arch qwen35 has DeltaNet layers");
        return;
    }
    if (!o->ssm_k) o->ssm_k = preset->ssm_k ? preset->ssm_k : o->kv_heads;
    if (!o->ssm_v) o->ssm_v = preset->ssm_v ? preset->ssm_v : o->heads;
    if (!o->ssm_d) o->ssm_d = preset->ssm_d ? preset->ssm_d : o->head_dim;
    if (o->ssm_v % o->ssm_k) die("--ssm-heads %ld,%ld: V heads must be a multiple of K heads", o->ssm_k, o->ssm_v);
    const long block = block_cols(o);
    if (block && o->ssm_v * o->ssm_d % block)
        die("--ssm-heads and --ssm-head: V heads %ld x %ld = %ld (the columns of ssm_out) must be a multiple of %ld",
            o->ssm_v, o->ssm_d, o->ssm_v * o->ssm_d, block);
}

/* The experts' defaults (maple and qwen35moe: 8 experts, 2 used, the intermediate size each; qwen35moe's
 * shared expert that size too; maple's window of 4 on every other layer), checked against the sizes. */
static void finish_experts(opts_t *o) {
    if (!o->moe) return;
    if (!o->maple && !o->shared_ff) o->shared_ff = o->intermediate;
    if (!o->experts) o->experts = 8;
    if (!o->experts_used) o->experts_used = o->experts < 2 ? o->experts : 2;
    if (!o->expert_ff) o->expert_ff = o->intermediate;
    if (o->experts_used > o->experts) die("--experts-used %ld is more than --experts %ld", o->experts_used, o->experts);
    const long block = block_cols(o);
    long n = 1;
    for (const char *p = o->expert_ff_list; p && (p = strchr(p, ',')); p++) n++;
    if (o->expert_ff_list && n != o->layers)
        die("--expert-ff '%s' has %ld values, the model %ld layers", o->expert_ff_list, n, o->layers);
    for (long l = 0; l < o->layers; l++) {
        const long ff = layer_ff(o, l);
        if (ff < 4 || ff > 65535 || (block && ff % block) || ff % 4)
            die("--expert-ff %ld must be in [4, 65535], a multiple of %ld (a block of the format) and of 4", ff,
                block > 4 ? block : 4);
    }
    if (o->swa_pattern && (long)strlen(o->swa_pattern) != o->layers)
        die("--swa-pattern '%s' has %zu layers, the model %ld", o->swa_pattern, strlen(o->swa_pattern), o->layers);
    if (o->shared_ff &&
        (o->shared_ff < 4 || o->shared_ff > 65535 || (block && o->shared_ff % block) || o->shared_ff % 4))
        die("--shared-ff %ld must be in [4, 65535], a multiple of %ld (a block of the format) and of 4", o->shared_ff,
            block > 4 ? block : 4);
    if (o->maple && o->sliding_window < 1) die("--gguf-arch maple needs a sliding window of 1 position or more");
}

/* The defaults that follow from the format: 1bitllm's f16; qwen3-grouped's groups of 128;
 * qwen3-embed's norms before each projection and last-token pooling. */
static void finish_format(opts_t *o) {
    if (o->format == F_QWEN3_GROUPED && !o->group) o->group = 128;
    if (o->format == F_QWEN3_EMBED) {
        o->proj_norms = 1;
        if (!o->pooling) o->pooling = "last";
    }
    if (o->format == F_1BITLLM) o->dtype = DT_F16;
}

int main(int argc, char **argv) {
    opts_t o;
    memset(&o, 0, sizeof o);
    o.seed = 1;
    o.embed_std = 0; /* 0: 1/sqrt(hidden), once the sizes are known */
    o.gguf_arch = "bitnet-b1.58";
    o.dtype = DT_BF16;
    o.shards = 1;
    o.tokenizer = 1;
    o.sliding_window = -1; /* not given: 4 for gemma3 */
    const preset_t *preset = &presets[0];
    long ov[8] = {0, 0, 0, 0, 0, 0, 0, 0}; /* explicit size flags; 0: from the preset */

    if (argc < 2)
        die("--format and --out are required (rsr-mkmodel --format FORMAT --out DIR [options]; --help for the "
            "options)");
    int have_format = parse_args(argc, argv, &o, &preset, ov);
    if (o.gguf_type && !strcmp(o.gguf_arch, "llama")) o.format = F_LLAMA_PACKED; /* its weights, then */
    o.gemma3 = o.gguf_type && !strcmp(o.gguf_arch, "gemma3");
    o.maple = o.gguf_type && !strcmp(o.gguf_arch, "maple");
    o.qwen35 = o.gguf_type && (!strcmp(o.gguf_arch, "qwen35") || !strcmp(o.gguf_arch, "qwen35moe"));
    o.moe = o.maple || (o.qwen35 && !strcmp(o.gguf_arch, "qwen35moe"));
    o.qwen3 =
        (o.gguf_type && !strcmp(o.gguf_arch, "qwen3")) || o.gemma3 || o.maple || o.qwen35 || format_qwen3(o.format);
    if (o.maple) o.untied = 1; /* llama.cpp's maple requires output.weight */
    if (!have_format) die("--format is required (see --help)");
    if (!o.out_dir) die("--out is required (see --help)");
    check_format_options(&o);
    if (o.sliding_window < 0) o.sliding_window = o.gemma3 || o.maple ? 4 : 0;
    finish_format(&o);

    preset_t from_sizes;
    if (o.from) { /* the checkpoint's sizes, as if given: finish_sizes refuses what a block cannot hold */
        check_from_options(&o);
        source_config(&o, &from_sizes);
        source_open(&o);
        source_check_sizes(&from_sizes);
        preset = &from_sizes;
        const long sz[7] = {preset->hidden,   preset->intermediate, preset->layers, preset->heads,
                            preset->kv_heads, preset->vocab,        preset->max_pos};
        memcpy(ov, sz, sizeof sz);
    }
    finish_sizes(&o, preset, ov);
    finish_experts(&o);
    finish_qwen35(&o, preset);
    if (o.embed_std == 0) o.embed_std = 1.0 / sqrt((double)o.hidden);

    tlist_t tl = {0};
    build_tensors(&tl, &o);
    if (o.poison) check_poison(&tl, &o);
    if (o.from) source_check_names(&tl);
    if (o.gguf_type && o.shards > 1) die("--shards applies to safetensors checkpoints, not to one GGUF file");
    if ((size_t)o.shards > tl.n) die("--shards %ld is more than the %zu tensors of this model", o.shards, tl.n);
    uint64_t total = 0, params = 0;
    for (size_t i = 0; i < tl.n; i++) {
        const tensor_t *t = &tl.t[i];
        if (total + t->nbytes < total) die("model too large");
        total += t->nbytes;
        params += t->kind == K_PACKED ? t->out * t->in : t->shape[0] * t->shape[1];
    }
    assign_shards(&tl, o.shards, total);

    mkdir_p(o.out_dir);
    install_signal_handlers();
    size_t nfiles = (size_t)o.shards + (o.shards > 1) + 4;
    outfiles = xmalloc(nfiles * sizeof *outfiles);
    tmp_paths = xmalloc(nfiles * sizeof *tmp_paths);
    memset(tmp_paths, 0, nfiles * sizeof *tmp_paths);

    char why[256] = "--no-tokenizer";
    cJSON *tokenizer = !o.tokenizer ? NULL
                       : o.from     ? source_tokenizer(&o)
                                    : synthetic_tokenizer(o.vocab, o.bos, o.eos, o.proj_norms, why, sizeof why);
    if (!tokenizer && !(o.from && o.tokenizer)) fprintf(stderr, "rsr-mkmodel: no tokenizer: %s\n", why);
    uint64_t bytes_written = o.gguf_type ? write_gguf(&tl, &o, tokenizer) : write_checkpoint(&tl, &o, total, tokenizer);

    for (size_t i = 0; i < n_out; i++) {
        if (rename(outfiles[i].tmp_path, outfiles[i].final_path) != 0)
            die("cannot rename %s to %s: %s", outfiles[i].tmp_path, outfiles[i].final_path, strerror(errno));
        tmp_paths[i] = NULL;
    }
    remove_stale(o.out_dir, o.shards, tokenizer != NULL && !o.gguf_type, o.chat_template && !o.gguf_type,
                 o.format == F_QWEN3_EMBED);
    free(o.chat_template);
    cJSON_Delete(tokenizer);
    if (o.from) munmap((void *)src.map, src.size), cJSON_Delete(src.header), free(src.path);
    if (o.from) free((char *)from_sizes.name); /* source_config's path of config.json */

    report_and_free(&o, &tl, params, bytes_written);
    return 0;
}
