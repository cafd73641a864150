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
 *
 * This file holds the command line (the format names, the presets, usage, the options and their
 * checks against each other and the sizes) and main, which runs the parts declared in mkmodel.h:
 * mkshapes.c (the tensors), mkweights.c (their seeded values), mksafetensors.c or mkggufmodel.c
 * (the files), mkfrom.c (--from's checkpoint), mkfiles.c (errors, temporaries, directories) and
 * mktokenizer.c (the synthetic tokenizer).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cjson/cJSON.h>

#include "alloc.h"
#include "parse_num.h"
#include "mkgguf.h"
#include "mkmodel.h"
#include "mktokenizer.h"

/* the names of the checkpoint formats (format_t, mkmodel.h) and the presets (preset_t) */
static const char *const format_names[F_COUNT] = {"bitnet-packed", "bitnet-bf16",   "llama-packed", "falcon-e",
                                                  "1bitllm",       "qwen3-grouped", "qwen3-embed"};

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
    /* Qwen3.5-9B's shape (Bonsai 2's 9B sibling, folded by blocks of 4096): 32 layers, attention 16/4
     * heads of 256, DeltaNet 16/32 of 128 */
    {"qwen35-9b", 4096, 12288, 32, 16, 4, 248320, 4096, 1, 2, 256, 16, 32, 128},
    /* Qwen3.5-35B-A3B's shape for --gguf-arch qwen35moe: 40 layers, attention 16/2 heads of 256, DeltaNet
     * 16/32 of 128, experts and the shared expert of 512 rows (intermediate); the experts' count: flags */
    {"qwen35-35b-a3b", 2048, 512, 40, 16, 2, 248320, 4096, 1, 2, 256, 16, 32, 128},
};

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
          "                     qwen35-27b, qwen35-9b, qwen35-35b-a3b; explicit size flags override it\n"
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
          "  --nextn N          with --gguf-arch qwen35 or qwen35moe, N (0 or 1) MTP layers after the model's\n"
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
          "  qwen35-9b   4096/12288/32/16/4/248320/4096, 1/2, head-dim 256, DeltaNet 16,32 heads of 128: the\n"
          "              shape of Qwen3.5-9B for --gguf-arch qwen35\n"
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
    O_NEXTN,
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
                                          {"nextn", required_argument, 0, O_NEXTN},
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
                    "qwen3-0.6b, qwen35-27b, qwen35-9b or qwen35-35b-a3b)",
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
        case O_NEXTN: o->nextn = parse_long("--nextn", optarg, 0, 1); break;
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
    if (o->nextn && !o->qwen35)
        die("--nextn: only --gguf-arch qwen35 and qwen35moe (with a gguf-* format) have multi-token-prediction layers");
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
