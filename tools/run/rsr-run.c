/*
 * rsr-run — runs a model compiled by rsrc: continues a prompt as streamed text, chats, turns
 * token ids into token ids, writes logits, measures speed. The model is loaded with dlopen;
 * every call goes through the public C API in rsr.h.
 */
#include <errno.h>
#include <math.h>
#include <getopt.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "parse_num.h"
#include "chat_default.h"
#include "edit_distance.h"
#include "encode_all.h"
#include "near_path.h"
#include "kv_types.h"
#include "artifact_pin.h"
#include "rsr-run.h"

static void usage(FILE *out) {
    fputs("usage: rsr-run MODEL.so [options]   (or rsr-run -m MODEL.so [options])\n"
          "\n"
          "Runs a model compiled by rsrc: continues a prompt as text, chats, or measures speed.\n"
          "\n"
          "  rsr-run model.so -p \"The capital of France is\" -n 64   continue a prompt, streaming text\n"
          "  echo \"Once upon a time\" | rsr-run model.so             the prompt from stdin\n"
          "  rsr-run model.so --chat                                talk, with the model's chat template\n"
          "  rsr-run model.so --tokens 128000,791,1217 -n 16        token ids in, token ids out\n"
          "  rsr-run model.so -p \"...\" --bench                       prefill and decode tokens/s\n"
          "  rsr-run model.so --info                                what the model is, how it was compiled\n"
          "\n"
          "input:\n"
          "  -p, --prompt TEXT     the prompt (\"-\": read stdin; without -p, -f or --tokens, a stdin\n"
          "                        that is not a terminal is read); special tokens such as\n"
          "                        <|eot_id|> written in it are read as such\n"
          "  -f, --file FILE       the prompt from a file\n"
          "  --tokens A,B,C        the prompt as token ids; generated ids are printed on one line;\n"
          "                        @FILE reads the ids from FILE (a prompt longer than a command line)\n"
          "  -i, -cnv, --chat      an interactive conversation: one user turn per line of stdin;\n"
          "                        /reset forgets the conversation, /exit or end of input quits\n"
          "  --chat-template NAME  model (the checkpoint's own Jinja template), llama3, bitnet or\n"
          "                        llama2 (default: the model's own, else the one that fits)\n"
          "  --chat-template-file FILE  a Jinja chat template to use instead (as in a\n"
          "                        tokenizer_config.json's chat_template)\n"
          "  --system TEXT         a system message at the start of the conversation\n"
          "  --chat-template-kwargs JSON  variables for the template, a JSON object (as\n"
          "                        llama-server's): '{\"enable_thinking\": false}'\n"
          "  --no-think            a reasoning model answers without thinking first (the\n"
          "                        template's enable_thinking false: Qwen3's and others')\n"
          "  --hide-thoughts       leave a reply's <think>...</think> out of what is shown (a\n"
          "                        note on stderr says the model is thinking)\n"
          "\n"
          "generation:\n"
          "  -n, --n-predict N     tokens to generate (default: 256 for text, 16 for --tokens; in a\n"
          "                        chat, the most one reply may have)\n"
          "  --temp T              sampling temperature (default 0: greedy)\n"
          "  --top-k K             sample from the K most likely tokens (default 0: all)\n"
          "  --top-p P             sample from the smallest set with probability >= P (default 1)\n"
          "  --min-p P             keep only tokens at least P times as likely as the most likely one\n"
          "                        (default 0: off)\n"
          "  --repeat-penalty R    divide the logits of the last --repeat-last-n tokens (prompt and\n"
          "                        output) by R where positive, multiply where negative (default 1: off;\n"
          "                        also in greedy decoding)\n"
          "  --repeat-last-n N     how many recent tokens the penalty looks at (default 64; 0: none)\n"
          "  --seed S              random seed for sampling (default, or -1: a new one each run, printed\n"
          "                        with -v)\n"
          "  --stop TEXT           stop when the output contains TEXT (which is not printed); repeatable\n"
          "  --ignore-eos          go on past the end-of-text and end-of-turn tokens\n"
          "  --no-echo             print only the continuation, not the prompt\n"
          "  --special             print special tokens (<|eot_id|>, </s>) instead of leaving them out\n"
          "  --spec-type T         speculative decoding (greedy: the same tokens bit for bit; sampled: drawn\n"
          "                        from the same distribution): ngram-simple (what followed the last 3-4\n"
          "                        tokens earlier in the text), draft (-md, --model-draft FILE: a model of\n"
          "                        the same vocabulary) or draft-mtp (a Qwen3.5 model's own MTP layer)\n"
          "  --draft-max N         the most tokens proposed at once (default 16)\n"
          "  --draft-min N         fewer proposed than this: an ordinary step (default 0)\n"
          "  --draft-p-min P       a draft guesses while its softmax gives a guess P (default 0.75; draft-mtp 0)\n"
          "\n"
          "attention:\n"
          "  --kv T                the KV cache's element type: bf16 (default: 2 bytes, K and V rounded\n"
          "                        as the reference's bf16 inference rounds them), f32 (exact), f16, or\n"
          "                        q8 (1 byte + a scale per row; lossy: docs/numerics.md)\n"
          "  --attention A         auto (default): Louver at eps 2^-24 where its index pays, dense\n"
          "                        elsewhere (prefill, short contexts); dense: every key; louver: a\n"
          "                        certified index over the KV cache skips the keys whose scores\n"
          "                        cannot matter, with the policy below (docs/louver.md)\n"
          "  --louver-eps E        relative: keep every key whose weight could exceed E times the best\n"
          "  --louver-tau T        drop keys whose score q.k is certified below T (absolute)\n"
          "  --louver-budget F     tau from a sample of keys, so that about the fraction F is kept (an\n"
          "                        estimate: no guarantee on the dropped mass)\n"
          "  --louver-block N      keys per block of the index, 16 to 256\n"
          "  --stats               with --tokens: attention's figures per step and layer, then summed per\n"
          "                        layer and for the model: keys, bounded, scanned, kept, dense fallbacks,\n"
          "                        the largest certified bound on the dropped mass; then the LM head's:\n"
          "                        tokens picked and the rows whose exact logit they computed (stderr)\n"
          "\n"
          "other:\n"
          "  --logits FILE         with --tokens: write the fp32 logits of the last prompt position\n"
          "  --head H              exact (default) or int8: sampling and --logits read the model's int8\n"
          "                        copy of the LM head (half its bytes; lossy, each logit within a\n"
          "                        certified bound, which --bench measures); greedy decoding without\n"
          "                        --logits stays exact\n"
          "  -t, --threads N       threads (default: every CPU this process may run on, or\n"
          "                        OMP_NUM_THREADS)\n"
          "  --device D            auto (default: the GPU when the model has GPU code and one is\n"
          "                        there, else the CPU), cpu or gpu (fail rather than fall back)\n"
          "  -c, --ctx N           context length of the session (default: the model's; also --ctx-size)\n"
          "  -b, --batch N         prompt tokens evaluated together, 1 to 256 (default 256; the results\n"
          "                        are the same for every N)\n"
          "  --bench               measure prefill (the prompt, or 128 tokens) and decode (-n, or 64\n"
          "                        tokens: greedy, full logits, sampled at --temp or 0.8) speed and the\n"
          "                        memory's read rate, side by side, instead of printing text\n"
          "  --repeat N            with --bench: N rounds of every phase, alternating; the median, min\n"
          "                        and max of each (default 1)\n"
          "  --json                with --bench: the figures as one JSON object on stdout\n"
          "  --bench -p 512 -n 128\n"
          "                        llama-bench's tests: -p and -n lengths (lists: -p 128,512 -n 0,64) of a\n"
          "                        synthetic prompt's prefill (ppN) and a decode from an empty context (tgN),\n"
          "                        -r rounds (default 5) alternating, a table of mean ± sd tok/s; -o md\n"
          "                        (default), csv, json or svg (a bar chart); -pg 512,128: a prompt of 512\n"
          "                        then 128 decoded, as one test (pp512+tg128); -t 1,2: each test at each\n"
          "                        thread count; -d 0,2048: each test after a context of that many\n"
          "                        tokens (llama-bench's depth); --plot FILE.svg: the chart too, beside\n"
          "                        the table\n"
          "  --parallel N          N sequences stepped together, 1 to 256: with -f, one prompt per line\n"
          "                        (continuations printed in order; each as `-p LINE --seed S+i` alone\n"
          "                        gives it, i the line's index from 0); with --tokens, N sequences from\n"
          "                        those ids; with --bench, N sequences' aggregate prefill and decode\n"
          "                        speed beside one sequence's; with --bench -p LENGTHS, a list (1,4,16):\n"
          "                        each test at each count\n"
          "  --max-memory SIZE     cap the memory the runtime may allocate (512M, 4G; 0: no cap): a\n"
          "                        session that does not fit fails cleanly (a cap too small for the\n"
          "                        copy of the model's constants has them read through the mapping)\n"
          "  --mmap                read the model's constants through the file mapping instead of a copy\n"
          "                        in memory made at start: starts sooner and shares the page cache with\n"
          "                        other processes, but the kernel may evict the pages between tokens\n"
          "  --mlock               lock the copy of the constants in memory (needs `ulimit -l` room)\n"
          "  -v, --verbose         say where the constants live, the threads and the CPU code's target\n"
          "  --info                print what the model is and how it was compiled (a summary, the manifest,\n"
          "                        the matrices by kind; with -v every matrix)\n"
          "  --tokenize            print the ids of the prompt (-p or -f) as --tokens takes them, and exit\n"
          "  --embed               print the prompt's embedding (-p, -f or --tokens) as a JSON array, and\n"
          "                        exit: the final-normed hidden states pooled as the model says (a GGUF's\n"
          "                        pooling_type: mean, first or last token; else the last), unit length\n"
          "  --embed-raw           the same, not scaled to unit length\n"
          "  --perplexity FILE     the model's perplexity on the text of FILE, as llama-perplexity computes\n"
          "                        it: chunks of --ctx tokens (default 512), the second half of each scored\n"
          "                        from the exact logits; '[k]PPL,' per chunk, then the final estimate\n"
          "  --chunks N            with --perplexity: at most N chunks (default: as many as the text holds)\n"
          "  --verify              check the whole file against the digest rsrc recorded in it, and its ELF\n"
          "                        structure, before loading it; then the model's constants (weights,\n"
          "                        segment index, tokenizer) against their checksum: catches a damaged\n"
          "                        copy, not a forged one (the digests travel in the same file); alone:\n"
          "                        only that\n"
          "  --digest              print the SHA-256 of MODEL.so (as sha256sum does) without loading it:\n"
          "                        the fingerprint to publish and pin\n"
          "  --expect-digest SHA256  refuse to load MODEL.so unless its SHA-256 is this (checked before\n"
          "                        any of its code runs; rsr-serve --digest, rsr.Model(digest=) the same)\n"
          "  -h, --help            this text; --version: the runtime API version this program speaks\n"
          "\n"
          "llama.cpp's spellings are taken where they mean the same: -m, -c/--ctx-size, -n/--n-predict,\n"
          "-b/--batch-size, -i/-cnv/--conversation, --seed -1.\n"
          "Text goes to stdout; speed and errors to stderr.\n"
          "\n"
          "environment: OMP_NUM_THREADS (threads, when -t is not given).\n"
          "exit status: 0 on success; 1 on any error, with the reason on stderr.\n"
          "See docs/user-guide.md (PREFIX/share/doc/rsrc/docs/user-guide.md when installed).\n",
          out);
}

/* getopt's complaint about argument `arg`, in words: unknown (with the nearest long option when
 * one is close) or lacking its value. */
static void bad_option(const char *arg, int missing, int opt, const struct option *longs) {
    if (missing) {
        if (strncmp(arg, "--", 2) && opt > ' ' && opt < 127) die("option '-%c' needs a value (see --help)", opt);
        die("option '%s' needs a value (see --help)", arg);
    }
    if (strncmp(arg, "--", 2) != 0) {
        if (opt > ' ' && opt < 127) die("unknown option '-%c' (see --help)", opt);
        die("unknown option '%s' (see --help)", arg);
    }
    const char *name = arg + 2, *eq = strchr(name, '=');
    char given[80];
    snprintf(given, sizeof given, "%.*s", (int)(eq ? (size_t)(eq - name) : strlen(name)), name);
    /* other programs' names for what rsr-run spells otherwise (OpenAI's API, llama.cpp, transformers) */
    static const char *const aliases[][2] = {{"max-tokens", "-n"},
                                             {"max-new-tokens", "-n"},
                                             {"max-length", "-n"},
                                             {"temperature", "--temp"},
                                             {"system-prompt", "--system"}};
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
        if (!strcmp(given, aliases[i][0]))
            die("unknown option '--%s': rsr-run calls it %s (see --help)", given, aliases[i][1]);
    const char *near = NULL;
    int best = 3; /* suggest within an edit distance of 2 */
    for (const struct option *l = longs; l->name; l++) {
        int dist = edit_distance(given, strlen(given), l->name);
        if (dist < best) best = dist, near = l->name;
    }
    if (near) die("unknown option '--%s' (did you mean '--%s'?)", given, near);
    die("unknown option '--%s' (see --help)", given);
}

/* llama.cpp's multi-letter options with one dash, which getopt would read as short options. */
static void llama_spellings(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "-cnv"))
            argv[i] = "--chat";
        else if (!strcmp(argv[i], "-pg")) /* llama-bench's prompt-then-generate test */
            argv[i] = "--pg";
        else if (!strcmp(argv[i], "-md")) /* the draft model, as llama.cpp spells it */
            argv[i] = "--model-draft";
        else if (!strcmp(argv[i], "-ngl") || !strncmp(argv[i], "-ngl=", 5))
            die("%s (llama.cpp's GPU layers): rsr-run runs the whole model on one device; --device gpu puts it on "
                "the GPU",
                argv[i]);
    }
}

static uint64_t random_seed(void) {
    uint64_t s = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&s, sizeof s, 1, f) != 1) s = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    if (f) fclose(f);
    return s & (uint64_t)LONG_MAX;
}

static long parse_num(const char *flag, const char *s, long lo, long hi) {
    long v;
    if (!parse_long_in(s, lo, hi, &v)) die("%s: '%s' is not an integer in [%ld, %ld]", flag, s, lo, hi);
    return v;
}

static float parse_float(const char *flag, const char *s, float lo, float hi) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (*end || end == s || !(v >= lo && v <= hi)) die("%s: '%s' is not a number in [%g, %g]", flag, s, lo, hi);
    if (errno == ERANGE) die("%s: '%s' is beyond what a float holds", flag, s);
    return v;
}

static int32_t *parse_tokens(const char *s, int32_t *n) {
    int32_t cap = 16, count = 0;
    int32_t *t = malloc(sizeof *t * (size_t)cap);
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) die("--tokens: '%s' is not a list of token ids", s);
        if (count == cap) t = realloc(t, sizeof *t * (size_t)(cap *= 2));
        t[count++] = (int32_t)v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            die("--tokens: unexpected '%c' in '%s'", *p, s);
    }
    if (!count) die("--tokens: empty list");
    *n = count;
    return t;
}

static char *read_all(FILE *f, const char *name) {
    size_t cap = 4096, len = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0)
        if ((len += got) + 1 == cap) buf = realloc(buf, cap *= 2);
    if (!buf || ferror(f)) die("%s: cannot read: %s", name, strerror(errno));
    buf[len] = 0;
    if (strlen(buf) != len) die("%s: a NUL byte at offset %zu: the prompt must be text", name, strlen(buf));
    return buf;
}

/* --tokens @FILE: the ids in FILE, separated by commas and/or white space, as the list
 * parse_tokens reads (runs of separators as one comma, none at the ends). */
static char *tokens_file(const char *arg) {
    FILE *f = fopen(arg + 1, "r");
    if (!f) die("--tokens %s: cannot open %s: %s", arg, arg + 1, strerror(errno));
    char *text = read_all(f, arg + 1);
    fclose(f);
    size_t w = 0;
    for (const char *c = text; *c; c++)
        if (*c == ',' || *c == ' ' || *c == '\n' || *c == '\r' || *c == '\t') {
            if (w && text[w - 1] != ',') text[w++] = ',';
        } else
            text[w++] = *c;
    while (w && text[w - 1] == ',') w--;
    text[w] = 0;
    return text;
}

/* What the model is, then the manifest: how it was compiled, matrix by matrix. */
/* "512 B", "1.5 KiB", "3.2 GiB"; "384", "86.0 thousand", "2.41 billion" (out: 32 bytes) */
static const char *human(char *out, double v, bool bytes) {
    static const char *const units[2][4] = {{"", " thousand", " million", " billion"}, {" B", " KiB", " MiB", " GiB"}};
    const double step = bytes ? 1024 : 1000;
    int u = 0;
    while (v >= step && u < 3) v /= step, u++;
    snprintf(out, 32, u ? "%.3g%s" : "%.0f%s", v, units[bytes][u]);
    return out;
}

/* --info's summary: the file, the weights, and the memory a sequence's KV cache takes. */
static void print_summary(rsr_model *m, const rsr_model_info *info, const char *path) {
    struct stat st;
    double ternary = 0;
    for (int32_t i = 0; i < info->num_matrices; i++) {
        rsr_matrix_info mi;
        if (api.model_matrix_info(m, i, &mi) == RSR_OK) ternary += (double)mi.rows * (double)mi.cols;
    }
    double kv = 2.0 * info->num_kv_layers * info->num_kv_heads * info->head_dim * info->max_positions * 2; /* bf16 */
    char file[32], weights[32], cache[32], state[32], layers[64] = "";
    if (info->num_kv_layers < info->num_layers)
        snprintf(layers, sizeof layers, " (%d of %d layers)", info->num_kv_layers, info->num_layers);
    printf("summary %s file; %s ternary weights in %d matrices, and a %d x %d embedding; a sequence's KV cache %s at "
           "%d positions%s (bf16, the default; f32 twice that, q8 about half)",
           human(file, stat(path, &st) == 0 ? (double)st.st_size : 0, true), human(weights, ternary, false),
           info->num_matrices, info->vocab_size, info->hidden_size, human(cache, kv, true), info->max_positions,
           layers);
    if (info->state_bytes)
        printf(" and a recurrent state of %s (%d gated DeltaNet layers, with one checkpoint)",
               human(state, (double)info->state_bytes, true), info->num_layers - info->num_kv_layers);
    putchar('\n');
}

/* The manifest's matrix lines ("matrix NAME RxC STRATEGY k=K"), as one line per kind: shape,
 * strategy and k, how many, and which of a layer's matrices they are. */
static void print_matrix_kinds(const char *manifest) {
    enum { KINDS = 64 };
    struct {
        char what[96], names[160];
        int count;
    } kinds[KINDS];
    int n = 0;
    for (const char *l = manifest; (l = strstr(l, "matrix ")) != NULL; l++) {
        if (l != manifest && l[-1] != '\n') continue;
        char name[256], what[96];
        size_t len = strcspn(l, "\n");
        if (sscanf(l, "matrix %255s %95[^\n]", name, what) != 2 || len > 400) continue;
        char *leaf = strncmp(name, "model.layers.", 13) ? name
                     : strchr(name + 13, '.')           ? strchr(name + 13, '.') + 1
                                                        : name;
        char *dot = strstr(leaf, ".weight");
        if (dot && !dot[7]) *dot = 0;
        int k = 0;
        while (k < n && strcmp(kinds[k].what, what)) k++;
        if (k == n && n < KINDS)
            snprintf(kinds[n].what, sizeof kinds[n].what, "%s", what), kinds[n].names[0] = 0, kinds[n++].count = 0;
        if (k == n) continue;
        kinds[k].count++;
        if (!strstr(kinds[k].names, leaf) && strlen(kinds[k].names) + strlen(leaf) + 3 < sizeof kinds[k].names)
            strcat(strcat(kinds[k].names, kinds[k].names[0] ? ", " : ""), leaf);
    }
    for (int k = 0; k < n; k++) printf("matrices %d x %s (%s)\n", kinds[k].count, kinds[k].what, kinds[k].names);
}

/* --info: the summary, the model, its tokenizer and the manifest (how it was compiled), the
 * matrices by kind; -v: every matrix of the manifest. */
static void print_info(rsr_model *m, const rsr_model_info *info, const char *path, bool every_matrix) {
    print_summary(m, info, path);
    printf("architecture %s\ndevice %s\n", info->architecture, info->device);
    printf("hidden %d intermediate %d layers %d heads %d kv_heads %d head_dim %d vocab %d max_positions %d\n",
           info->hidden_size, info->intermediate_size, info->num_layers, info->num_heads, info->num_kv_heads,
           info->head_dim, info->vocab_size, info->max_positions);
    printf("embeddings pooled by the %s\n", info->pooling == RSR_POOLING_MEAN  ? "mean of the tokens"
                                            : info->pooling == RSR_POOLING_CLS ? "first token"
                                                                               : "last token");
    const char *manifest = api.model_manifest(m), *from = strstr(manifest, "\ntokenizer ");
    int from_len = from ? (int)strcspn(from + 11, "\n") : 0;
    rsr_tokenizer *tok;
    rsr_status st = api.model_tokenizer(m, &tok);
    rsr_tokenizer_info ti;
    if (st == RSR_OK && api.tokenizer_get_info(tok, &ti) == RSR_OK) { /* the template --chat uses */
        const char *chat = chat_template_for(&api, tok, info);
        printf("tokenizer %s, %d tokens (%d added), bos %d eos %d eot %d, chat template %s; compiled from %.*s\n",
               ti.kind, ti.vocab_size, ti.num_added_tokens, ti.bos_token_id, ti.eos_token_id, ti.eot_token_id,
               rsr_chat_template_described(chat), from_len, from ? from + 11 : "");
    } else if (st == RSR_ERR_NOT_FOUND)
        printf("tokenizer none (token ids only)\n");
    else
        printf("tokenizer unreadable: %s\n", api.model_errmsg(m));
    for (const char *l = manifest; *l;) { /* the manifest, less what is said above or below */
        size_t len = strcspn(l, "\n");
        if (strncmp(l, "tokenizer ", 10) && (every_matrix || strncmp(l, "matrix ", 7))) printf("%.*s\n", (int)len, l);
        l += len + (l[len] == '\n');
    }
    if (!every_matrix) print_matrix_kinds(manifest);
}

/* Token ids in, token ids out (on one line): the form the end-to-end tests compare. */
/* RLIMIT_DATA caps heap and anonymous mappings: the KV cache and scratch, not the model file. */
static void limit_memory(const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = !strcmp(end, "K") ? 10 : !strcmp(end, "M") ? 20 : !strcmp(end, "G") ? 30 : *end ? -1 : 0;
    if (errno || end == s || *s == '-' || shift < 0 || v > (ULLONG_MAX >> shift))
        die("--max-memory: '%s' is not a size such as 512M or 4G", s);
    if (v == 0) return; /* 0: no cap, as for rsrc */
    struct rlimit rl;
    if (getrlimit(RLIMIT_DATA, &rl) != 0) die("--max-memory: %s", strerror(errno));
    rl.rlim_cur = v << shift;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_DATA, &rl) != 0) die("--max-memory: %s", strerror(errno));
}

/* --stats: a layer's figures summed over the steps (totals[num_layers] is the whole model) */
typedef struct stats_total {
    long long keys, bounded, scanned, kept, heads, fallbacks, steps;
    double dropped; /* the largest certified bound on a head's dropped mass */
} stats_total;

static void add_stats(stats_total *t, const rsr_attention_stats *st) {
    t->keys += st->keys, t->bounded += st->bounded, t->scanned += st->scanned, t->kept += st->kept;
    t->heads += st->heads, t->fallbacks += st->dense_fallbacks, t->steps++;
    t->dropped = st->dropped_bound > t->dropped ? st->dropped_bound : t->dropped;
}

static void print_stats(rsr_session *s, const rsr_model_info *info, int32_t step, stats_total *totals) {
    for (int32_t l = 0; l < info->num_layers; l++) {
        rsr_attention_stats st;
        check(api.session_attention_stats(s, l, &st), s);
        add_stats(&totals[l], &st), add_stats(&totals[info->num_layers], &st);
        char why[96] = "";
        if (st.dense_fallbacks)
            snprintf(why, sizeof why, " (dense fallback: %d head%s, %d where the bounds could overflow)",
                     st.dense_fallbacks, st.dense_fallbacks == 1 ? "" : "s", st.dense_overflow);
        fprintf(
            stderr,
            "stats step %d layer %d keys %lld bounded %lld scanned %lld kept %lld tau %.6g..%.6g dropped<= %.3g%s\n",
            step, l, (long long)st.keys, (long long)st.bounded, (long long)st.scanned, (long long)st.kept,
            (double)st.tau_min, (double)st.tau_max, st.dropped_bound, why);
    }
}

/* The summary after the steps: per layer, then the whole model, then the LM head's rows. */
static void print_stats_summary(rsr_session *s, const rsr_model_info *info, const stats_total *totals) {
    for (int32_t l = 0; l <= info->num_layers; l++) {
        const stats_total *t = &totals[l];
        char what[32];
        snprintf(what, sizeof what, l < info->num_layers ? "layer %d" : "overall", l);
        fprintf(stderr,
                "stats %s: keys %lld, bounded %lld (%.1f%%), scanned %lld (%.1f%%), kept %lld (%.1f%%), dense "
                "fallback %lld of %lld heads (%.1f%%), largest dropped-mass bound %.3g\n",
                what, t->keys, t->bounded, t->keys ? 100.0 * (double)t->bounded / (double)t->keys : 0.0, t->scanned,
                t->keys ? 100.0 * (double)t->scanned / (double)t->keys : 0.0, t->kept,
                t->keys ? 100.0 * (double)t->kept / (double)t->keys : 0.0, t->fallbacks, t->heads,
                t->heads ? 100.0 * (double)t->fallbacks / (double)t->heads : 0.0, t->dropped);
    }
    rsr_head_stats hs;
    check(api.session_head_stats(s, &hs), s);
    const double all = (double)hs.picks * (double)hs.vocab;
    fprintf(stderr, "stats head: %lld tokens picked, %lld through the int8 copy; exact rows %lld of %.0f (%.2f%%)\n",
            (long long)hs.picks, (long long)hs.passes, (long long)hs.exact_rows, all,
            all > 0 ? 100.0 * (double)hs.exact_rows / all : 0.0);
}

/* The options the open model decides: --ctx within its positions; --spec-type draft-mtp: the model has
 * an MTP layer (else an error), which follows the session's steps where speculation can run. */
static void check_model_opts(run_options *o, const rsr_model_info *info) {
    if (o->ctx > info->max_positions)
        die("--ctx %d: the model holds at most %d positions (its max_position_embeddings)", o->ctx,
            info->max_positions);
    if (o->spec != SPEC_MTP) return;
    if (!info->mtp_layers)
        die("--spec-type draft-mtp: %s has no multi-token-prediction layer (rsrc compiles one from a Qwen3.5 GGUF "
            "that carries blk.N.nextn.* tensors; rsrc's note says why it left one out)",
            o->model_path);
    if (!spec_refusal(o, info)) o->session.mtp = 1;
}

/* Opens the model (-v: how long it took and where it runs); a model that cannot open is an
 * error, after its manifest with --info (how it was compiled, even where it cannot run). */
static rsr_model *open_model(const char *path, const rsr_model_params *mp, int verbose, int show_manifest,
                             rsr_model_info *info, double *t_open) {
    rsr_model *m;
    double t = now();
    if (api.model_open(&m, mp) != RSR_OK) {
        if (show_manifest) fputs(api.model_manifest(m), stdout);
        die("%s: %s", path, api.model_errmsg(m));
    }
    *t_open = now() - t;
    api.model_get_info(m, info);
    if (verbose)
        fprintf(stderr, "rsr-run: %s opened in %.2f s: target %s, device %s, %d thread%s; constants in %s\n", path,
                *t_open, info->target, info->device, info->num_threads, info->num_threads == 1 ? "" : "s",
                info->constants);
    return m;
}

/* --embed: the ids of --tokens, or the prompt's as its tokenizer makes them (BOS and EOS where the
 * model adds them), pooled into one vector, printed as JSON. */
static void run_embed(rsr_model *m, const rsr_model_info *info, const run_options *o, const char *tokens_arg,
                      bool normalize) {
    int32_t n = 0, *ids;
    if (tokens_arg) {
        ids = parse_tokens(tokens_arg, &n);
    } else {
        rsr_tokenizer *tok = require_tokenizer(m, "--embed of a text");
        rsr_status st;
        ids = encode_all(&api, tok, o->prompt, -1, RSR_ENCODE_ADD_SPECIAL | RSR_ENCODE_PARSE_SPECIAL, &n, &st);
        if (!ids) die("%s", st == RSR_ERR_OUT_OF_MEMORY ? "out of memory" : api.tokenizer_errmsg(tok));
        if (!n) die("--embed: the prompt has no tokens");
    }
    rsr_session *s;
    rsr_session_params ssp = o->session;
    if (!ssp.max_positions) ssp.max_positions = n < info->max_positions ? n : info->max_positions;
    if (api.session_create(m, &ssp, &s) != RSR_OK) die("%s", api.model_errmsg(m));
    float *e = malloc(sizeof *e * (size_t)info->hidden_size);
    if (api.session_embed(s, ids, n, normalize, e) != RSR_OK) die("--embed: %s", api.session_errmsg(s));
    for (int32_t i = 0; i < info->hidden_size; i++) printf("%s%.9g", i ? ", " : "[", (double)e[i]);
    puts("]");
    flush_stdout();
    free(e), free(ids);
    api.session_free(s);
}

/* --logits: written under a temporary name next to the file and renamed when whole; removed on
 * any exit before that */
static char *logits_tmp;
static int logits_fd = -1;
static void remove_logits_tmp(void) {
    if (logits_tmp) unlink(logits_tmp);
}

static void run_ids(rsr_model *m, const rsr_model_info *info, const run_options *o, int32_t *prompt, int32_t n_prompt,
                    const char *logits_path) {
    rsr_session *s;
    rsr_session_params ssp = o->session;
    if (api.session_create(m, &ssp, &s) != RSR_OK) die("%s", api.model_errmsg(m));
    sample_state ss;
    sample_state_init(&ss, o, info->vocab_size);
    long n_gen = o->n_gen >= 0 ? o->n_gen : 16;
    const int32_t ctx = o->ctx ? o->ctx : info->max_positions;
    spec_start(&ss, o, m, info, ctx);
    bool full = false; /* generation reached the end of the context */
    if (logits_path) { /* made now, so that a path it cannot be written to fails before the work */
        logits_tmp = malloc(strlen(logits_path) + 16);
        sprintf(logits_tmp, "%s.tmp.XXXXXX", logits_path);
        if ((logits_fd = mkstemp(logits_tmp)) < 0) {
            int e = errno;
            free(logits_tmp);
            logits_tmp = NULL;
            die("%s: cannot write logits: %s", logits_path, strerror(e));
        }
        mode_t mask = umask(0);
        umask(mask);
        fchmod(logits_fd, 0666 & ~mask); /* as fopen would have made it */
        atexit(remove_logits_tmp);
    }

    /* --logits: the prompt's full logits, and the first token drawn from them; else (and after)
     * the certified heads, which read no full logits */
    int32_t next;
    double t0 = now();
    if (logits_path) {
        eval_logits(o, s, prompt, n_prompt, ss.logits);
        next = api.sample(ss.logits, info->vocab_size, &o->sampler, &ss.rng, ss.probs, ss.ids);
    } else {
        next = eval_next(o, s, prompt, n_prompt, &ss);
    }
    double t1 = now();
    stats_total *totals = o->stats ? calloc((size_t)info->num_layers + 1, sizeof *totals) : NULL;
    if (o->stats && !totals) die("out of memory");
    if (o->stats) print_stats(s, info, 0, totals);
    if (logits_path) {
        FILE *f = fdopen(logits_fd, "wb");
        if (!f || fwrite(ss.logits, sizeof *ss.logits, (size_t)info->vocab_size, f) != (size_t)info->vocab_size ||
            fclose(f) != 0 || rename(logits_tmp, logits_path) != 0)
            die("%s: cannot write logits: %s", logits_path, strerror(errno));
        free(logits_tmp);
        logits_tmp = NULL;
    }
    int32_t generated = 0;
    for (; generated < n_gen; generated++) {
        int32_t tok = next;
        printf(generated ? " %d" : "%d", tok);
        flush_stdout();
        if (tok == info->eos_token_id && !o->ignore_eos) {
            generated++;
            break;
        }
        if (generated + 1 == n_gen) continue; /* the last: nothing to evaluate */
        if (run_position(s, &ss) >= ctx) {
            generated++, full = true;
            break;
        }
        next = eval_next(o, s, &tok, 1, &ss);
        if (o->stats) print_stats(s, info, generated + 1, totals);
    }
    putchar('\n');
    flush_stdout();
    spec_settle(s, &ss);
    if (totals) print_stats_summary(s, info, totals), free(totals);
    if (full)
        fprintf(stderr, "rsr-run: the context is full (%d tokens): %s\n", ctx, ctx_advice(ctx, info->max_positions));
    double t2 = now();
    fprintf(stderr, "rsr-run: prompt %d tokens in %.3f s (%.1f tok/s), generated %d tokens in %.3f s (%.1f tok/s)\n",
            n_prompt, t1 - t0, n_prompt / (t1 - t0), generated, t2 - t1, generated ? generated / (t2 - t1) : 0.0);
    spec_report(&ss);
    sample_state_free(&ss);
    api.session_free(s);
}

/* --parallel N outside --bench: the lines of FILE (blank ones skipped) as prompts, or the --tokens
 * ids as N prompts, continued together (run_parallel.c). */
static void run_many(rsr_model *m, const rsr_model_info *info, const run_options *o, const char *file,
                     const char *tokens_arg) {
    int count = 0;
    int32_t **ids, *lens;
    const char **texts = NULL;
    char *all = NULL;
    rsr_tokenizer *tok = NULL;
    if (tokens_arg) {
        count = o->parallel;
        ids = malloc(sizeof *ids * (size_t)count), lens = malloc(sizeof *lens * (size_t)count);
        for (int i = 0; i < count; i++) ids[i] = parse_tokens(tokens_arg, &lens[i]);
        if (api.model_tokenizer(m, &tok) != RSR_OK) tok = NULL;
    } else {
        FILE *f = fopen(file, "rb");
        if (!f) die("%s: %s", file, strerror(errno));
        all = read_all(f, file);
        fclose(f);
        tok = require_tokenizer(m, "-f with --parallel");
        size_t lines = 1;
        for (const char *c = all; *c; c++) lines += *c == '\n';
        ids = malloc(sizeof *ids * lines), lens = malloc(sizeof *lens * lines), texts = malloc(sizeof *texts * lines);
        for (char *line = all, *end; line; line = end) {
            end = strchr(line, '\n');
            if (end) *end++ = 0;
            size_t len = strlen(line);
            if (len && line[len - 1] == '\r') line[--len] = 0;
            if (!len) continue;
            int32_t n = 0;
            rsr_status st;
            ids[count] = encode_all(&api, tok, line, -1, RSR_ENCODE_ADD_SPECIAL | RSR_ENCODE_PARSE_SPECIAL, &n, &st);
            if (!ids[count])
                die("%s: %s", file, st == RSR_ERR_OUT_OF_MEMORY ? "out of memory" : api.tokenizer_errmsg(tok));
            if (!n) continue;
            lens[count] = n, texts[count] = line, count++;
        }
        if (!count) die("%s: no prompts (one per line; blank lines are skipped)", file);
    }
    run_parallel(m, info, tok, o, ids, lens, texts, count);
    for (int i = 0; i < count; i++) free(ids[i]);
    free(ids), free(lens), free(texts), free(all);
}

/* What the command line says, as parse_args reads it and check_args checks it. */
typedef struct cli_args {
    run_options o;
    const char *tokens_arg, *logits_path, *prompt_file, *model_opt, *max_memory;
    bool spec_given;             /* --spec-type */
    const char *perplexity_path; /* --perplexity FILE */
    long chunks;                 /* --chunks N (0: every chunk)*/
    const char *n_arg;           /* -n as given: a list of lengths with --bench -p LENGTHS */
    const char *pg_arg;          /* -pg P,G: a prompt of P then G decoded, as one test */
    const char *t_arg;           /* -t as given: a list of thread counts with --bench -p LENGTHS */
    const char *parallel_arg;    /* --parallel as given: with --bench -p LENGTHS, a count or a list of them */
    const char *depth_arg;       /* -d: with --bench -p LENGTHS, context lengths each test runs after */
    long threads, seed;          /* seed -1: a new one each run */
    int do_bench, do_info, do_tokenize, do_chat, device, lock_memory, use_mmap, verbose, do_verify, do_digest;
    int do_embed; /* 1: --embed, 2: --embed-raw */
    const char *expect_digest;
    /* options that only mean something beside others: refused alone rather than ignored */
    const char *louver_opt, *sampling_opt, *bench_opt, *text_opt, *chat_opt, *head_opt;
    int louver_policies;
    int inputs; /* how many of -p, -f, --tokens and --chat (check_args) */
} cli_args;

enum {
    O_TOKENS = 256,
    O_LOGITS,
    O_TEMP,
    O_TOPK,
    O_TOPP,
    O_MINP,
    O_REPPEN,
    O_REPLAST,
    O_SEED,
    O_BENCH,
    O_INFO,
    O_TOKENIZE,
    O_EMBED,
    O_EMBED_RAW,
    O_CTX,
    O_NOEOS,
    O_CHAT,
    O_TEMPLATE,
    O_TEMPLATE_FILE,
    O_SYSTEM,
    O_KWARGS,
    O_NO_THINK,
    O_HIDE_THOUGHTS,
    O_STOP,
    O_NOECHO,
    O_SPECIAL,
    O_ATTN,
    O_LEPS,
    O_LTAU,
    O_LBUDGET,
    O_LBLOCK,
    O_STATS,
    O_DEVICE,
    O_MAXMEM,
    O_MLOCK,
    O_MMAP,
    O_BATCH,
    O_HEAD,
    O_SPEC_TYPE,
    O_MODEL_DRAFT,
    O_DRAFT_MAX,
    O_DRAFT_MIN,
    O_DRAFT_P_MIN,
    O_REPEAT,
    O_JSON,
    O_PG,
    O_VERIFY,
    O_PERPLEXITY,
    O_CHUNKS,
    O_DIGEST,
    O_EXPECT_DIGEST,
    O_VERSION,
    O_PARALLEL,
    O_KV,
    O_PLOT
};
static const struct option longs[] = {
    {"prompt", required_argument, 0, 'p'},
    {"file", required_argument, 0, 'f'},
    {"tokens", required_argument, 0, O_TOKENS},
    {"logits", required_argument, 0, O_LOGITS},
    {"temp", required_argument, 0, O_TEMP},
    {"top-k", required_argument, 0, O_TOPK},
    {"top-p", required_argument, 0, O_TOPP},
    {"min-p", required_argument, 0, O_MINP},
    {"repeat-penalty", required_argument, 0, O_REPPEN},
    {"repeat-last-n", required_argument, 0, O_REPLAST},
    {"seed", required_argument, 0, O_SEED},
    {"threads", required_argument, 0, 't'},
    {"ctx", required_argument, 0, O_CTX},
    {"bench", no_argument, 0, O_BENCH},
    {"info", no_argument, 0, O_INFO},
    {"tokenize", no_argument, 0, O_TOKENIZE},
    {"embed", no_argument, 0, O_EMBED},
    {"embed-raw", no_argument, 0, O_EMBED_RAW},
    {"ignore-eos", no_argument, 0, O_NOEOS},
    {"chat", no_argument, 0, O_CHAT},
    {"chat-template", required_argument, 0, O_TEMPLATE},
    {"chat-template-file", required_argument, 0, O_TEMPLATE_FILE},
    {"system", required_argument, 0, O_SYSTEM},
    {"chat-template-kwargs", required_argument, 0, O_KWARGS},
    {"no-think", no_argument, 0, O_NO_THINK},
    {"hide-thoughts", no_argument, 0, O_HIDE_THOUGHTS},
    {"stop", required_argument, 0, O_STOP},
    {"no-echo", no_argument, 0, O_NOECHO},
    {"special", no_argument, 0, O_SPECIAL},
    {"help", no_argument, 0, 'h'},
    {"attention", required_argument, 0, O_ATTN},
    {"louver-eps", required_argument, 0, O_LEPS},
    {"louver-tau", required_argument, 0, O_LTAU},
    {"louver-budget", required_argument, 0, O_LBUDGET},
    {"louver-block", required_argument, 0, O_LBLOCK},
    {"stats", no_argument, 0, O_STATS},
    {"max-memory", required_argument, 0, O_MAXMEM},
    {"mlock", no_argument, 0, O_MLOCK},
    {"mmap", no_argument, 0, O_MMAP},
    {"verbose", no_argument, 0, 'v'},
    {"device", required_argument, 0, O_DEVICE},
    {"batch", required_argument, 0, O_BATCH},
    {"head", required_argument, 0, O_HEAD},
    {"spec-type", required_argument, 0, O_SPEC_TYPE},
    {"draft-max", required_argument, 0, O_DRAFT_MAX},
    {"draft", required_argument, 0, O_DRAFT_MAX},
    {"draft-min", required_argument, 0, O_DRAFT_MIN},
    {"draft-p-min", required_argument, 0, O_DRAFT_P_MIN},
    {"model-draft", required_argument, 0, O_MODEL_DRAFT},
    {"repeat", required_argument, 0, O_REPEAT},
    {"json", no_argument, 0, O_JSON},
    {"plot", required_argument, 0, O_PLOT},
    {"pg", required_argument, 0, O_PG},
    {"depth", required_argument, 0, 'd'},
    {"n-depth", required_argument, 0, 'd'},
    {"verify", no_argument, 0, O_VERIFY},
    {"perplexity", required_argument, 0, O_PERPLEXITY},
    {"chunks", required_argument, 0, O_CHUNKS},
    {"digest", no_argument, 0, O_DIGEST},
    {"expect-digest", required_argument, 0, O_EXPECT_DIGEST},
    {"version", no_argument, 0, O_VERSION},
    {"parallel", required_argument, 0, O_PARALLEL},
    {"kv", required_argument, 0, O_KV},
    /* llama.cpp's spellings of the same things */
    {"model", required_argument, 0, 'm'},
    {"ctx-size", required_argument, 0, O_CTX},
    {"n-predict", required_argument, 0, 'n'},
    {"batch-size", required_argument, 0, O_BATCH},
    {"conversation", no_argument, 0, O_CHAT},
    {"interactive", no_argument, 0, O_CHAT},
    {0, 0, 0, 0},
};

/* Reads the options into *a; returns 1 where the command is done (--help, --version). */
/* --device's word */
static int device_of(const char *s) {
    if (!strcmp(s, "auto")) return RSR_DEVICE_AUTO;
    if (!strcmp(s, "cpu")) return RSR_DEVICE_CPU;
    if (!strcmp(s, "gpu")) return RSR_DEVICE_GPU;
    die("--device: '%s' is not auto, cpu or gpu", s);
}

/* A model path that does not exist but nearly does: the did-you-mean, before anything else. */
static void check_model_path(const char *path) {
    struct stat st;
    char near[4096];
    if (stat(path, &st) != 0 && near_path(path, near, sizeof near))
        die("%s: no such file; did you mean %s?", path, near);
}

/* --spec-type NAME: enum spec_type. */
static int spec_type(const char *name) {
    if (!strcmp(name, "none")) return SPEC_NONE;
    if (!strcmp(name, "ngram-simple")) return SPEC_NGRAM;
    if (!strcmp(name, "draft")) return SPEC_DRAFT;
    if (!strcmp(name, "draft-mtp")) return SPEC_MTP;
    die("--spec-type: '%s' is not one rsr-run has (ngram-simple, draft, draft-mtp, none)", name);
}

static int parse_args(int argc, char **argv, cli_args *a) {
    a->o.stop = calloc((size_t)argc, sizeof *a->o.stop);
    opterr = 0;
    llama_spellings(argc, argv);
    int c;
    while ((c = getopt_long(argc, argv, ":p:f:n:t:m:c:b:r:o:d:ihv", longs, NULL)) != -1) {
        switch (c) {
        case 'm': a->model_opt = optarg; break;
        case 'c': a->o.ctx = (int32_t)parse_num("-c", optarg, 0, INT32_MAX); break;
        case 'b': a->o.session.batch = (int32_t)parse_num("-b", optarg, 1, RSR_BATCH_MAX); break;
        case 'i': a->do_chat = 1; break;
        case O_VERSION: printf("rsr-run %s, rsr API version %d\n", RSR_PROJECT_VERSION, RSR_API_VERSION); return 1;
        case 'p': a->o.prompt = optarg; break;
        case 'f': a->prompt_file = optarg; break;
        case 'n':
            a->n_arg = optarg;
            if (!strchr(optarg, ',')) a->o.n_gen = parse_num("-n", optarg, 0, 1 << 24);
            break;
        case 'r': a->bench_opt = "-r", a->o.repeat = (int)parse_num("-r", optarg, 1, 1000); break;
        case 'o':
            if (strcmp(optarg, "md") && strcmp(optarg, "csv") && strcmp(optarg, "json") && strcmp(optarg, "svg"))
                die("-o: '%s' is not a table format (md, csv, json, svg)", optarg);
            a->bench_opt = "-o", a->o.bench_format = optarg;
            break;
        case 't':
            if (strchr(optarg, ',')) { /* a list: one table row per count (--bench -p; read there) */
                a->t_arg = optarg;
                break;
            }
            a->threads = parse_num("--threads", optarg, 0, 1024);
            break;
        case O_TOKENS: a->tokens_arg = optarg[0] == '@' ? tokens_file(optarg) : optarg; break;
        case O_LOGITS: a->logits_path = optarg; break;
        case O_TEMP: a->o.sampler.temperature = parse_float("--temp", optarg, 0, 100); break;
        case O_TOPK:
            a->sampling_opt = "--top-k", a->o.sampler.top_k = (int32_t)parse_num("--top-k", optarg, 0, INT32_MAX);
            break;
        case O_TOPP: a->sampling_opt = "--top-p", a->o.sampler.top_p = parse_float("--top-p", optarg, 0, 1); break;
        case O_MINP: a->sampling_opt = "--min-p", a->o.sampler.min_p = parse_float("--min-p", optarg, 0, 1); break;
        case O_REPPEN: a->o.sampler.repeat_penalty = parse_float("--repeat-penalty", optarg, 0.01, 100); break;
        case O_REPLAST: a->o.repeat_last_n = (int32_t)parse_num("--repeat-last-n", optarg, 0, 1 << 20); break;
        case O_SEED: a->sampling_opt = "--seed", a->seed = parse_num("--seed", optarg, -1, LONG_MAX); break;
        case O_CTX: a->o.ctx = (int32_t)parse_num("--ctx", optarg, 0, INT32_MAX); break;
        case O_BATCH: a->o.session.batch = (int32_t)parse_num("--batch", optarg, 1, RSR_BATCH_MAX); break;
        case O_SPEC_TYPE: a->o.spec = spec_type(optarg), a->spec_given = true; break;
        case O_MODEL_DRAFT: a->o.draft_path = optarg; break;
        case O_DRAFT_MAX: a->o.draft_max = (int32_t)parse_num("--draft-max", optarg, 1, 256); break;
        case O_DRAFT_MIN: a->o.draft_min = (int32_t)parse_num("--draft-min", optarg, 0, 256); break;
        case O_DRAFT_P_MIN: a->o.draft_p_min = 1 + parse_float("--draft-p-min", optarg, 0, 1); break;
        case O_HEAD:
            a->head_opt = "--head";
            if (!strcmp(optarg, "exact"))
                a->o.head_int8 = 0;
            else if (!strcmp(optarg, "int8"))
                a->o.head_int8 = 1;
            else
                die("--head: '%s' is neither exact nor int8", optarg);
            break;
        case O_ATTN:
            if (!strcmp(optarg, "dense"))
                a->o.session.attention = RSR_ATTENTION_DENSE;
            else if (!strcmp(optarg, "louver"))
                a->o.session.attention = RSR_ATTENTION_LOUVER;
            else if (!strcmp(optarg, "auto"))
                a->o.session.attention = RSR_ATTENTION_AUTO;
            else
                die("--attention: '%s' is not one of auto, dense, louver", optarg);
            break;
        case O_LEPS:
            a->louver_opt = "--louver-eps", a->louver_policies++;
            a->o.session.louver_policy = RSR_LOUVER_RELATIVE;
            a->o.session.louver_eps = parse_float("--louver-eps", optarg, 1e-30f, 0.999999f);
            break;
        case O_LTAU:
            a->louver_opt = "--louver-tau", a->louver_policies++;
            a->o.session.louver_policy = RSR_LOUVER_ABSOLUTE;
            a->o.session.louver_tau = parse_float("--louver-tau", optarg, -3e38f, 3e38f);
            break;
        case O_LBUDGET:
            a->louver_opt = "--louver-budget", a->louver_policies++;
            a->o.session.louver_policy = RSR_LOUVER_BUDGET;
            a->o.session.louver_budget = parse_float("--louver-budget", optarg, 1e-9f, 1);
            break;
        case O_LBLOCK:
            a->louver_opt = "--louver-block",
            a->o.session.louver_block = (int32_t)parse_num("--louver-block", optarg, 16, 256);
            break;
        case O_STATS: a->o.stats = 1; break;
        case O_MAXMEM: a->max_memory = optarg; break;
        case O_MLOCK: a->lock_memory = 1; break;
        case O_MMAP: a->use_mmap = 1; break;
        case 'v': a->verbose = 1; break;
        case O_DEVICE: a->device = device_of(optarg); break;
        case O_BENCH: a->do_bench = 1; break;
        case O_REPEAT: a->bench_opt = "--repeat", a->o.repeat = (int)parse_num("--repeat", optarg, 1, 1000); break;
        case O_JSON: a->bench_opt = "--json", a->o.json = 1; break;
        case O_PLOT: a->bench_opt = "--plot", a->o.plot_path = optarg; break;
        case O_PG: a->bench_opt = "-pg", a->pg_arg = optarg; break;
        case 'd': a->bench_opt = "-d", a->depth_arg = optarg; break;
        case O_PARALLEL: /* a list (--bench -p, read there) or a count */
            a->parallel_arg = optarg;
            if (!strchr(optarg, ',')) a->o.parallel = (int)parse_num("--parallel", optarg, 1, RSR_BATCH_MAX);
            break;
        case O_KV:
            if ((a->o.session.kv_type = kv_type_parse(optarg)) < 0)
                die("--kv: '%s' is not one of f32, bf16, f16, q8", optarg);
            break;
        case O_INFO: a->do_info = 1; break;
        case O_TOKENIZE: a->do_tokenize = 1; break;
        case O_EMBED: a->do_embed = 1; break;
        case O_EMBED_RAW: a->do_embed = 2; break;
        case O_VERIFY: a->do_verify = 1; break;
        case O_PERPLEXITY: a->perplexity_path = optarg; break;
        case O_CHUNKS: a->chunks = parse_num("--chunks", optarg, 1, 1L << 30); break;
        case O_DIGEST: a->do_digest = 1; break;
        case O_EXPECT_DIGEST:
            if (!artifact_digest_valid(optarg))
                die("--expect-digest: '%s' is not a SHA-256 (64 hexadecimal digits)", optarg);
            a->expect_digest = optarg;
            break;
        case O_NOEOS: a->o.ignore_eos = 1; break;
        case O_CHAT: a->do_chat = 1; break;
        case O_TEMPLATE: a->chat_opt = "--chat-template", a->o.chat_template = optarg; break;
        case O_TEMPLATE_FILE: a->chat_opt = "--chat-template-file", a->o.chat_template_file = optarg; break;
        case O_SYSTEM: a->chat_opt = "--system", a->o.system = optarg; break;
        case O_KWARGS:
            if (a->o.template_kwargs) die("give --chat-template-kwargs or --no-think, once");
            a->chat_opt = "--chat-template-kwargs", a->o.template_kwargs = optarg;
            break;
        case O_NO_THINK:
            if (a->o.template_kwargs) die("give --chat-template-kwargs or --no-think, once");
            a->chat_opt = "--no-think", a->o.template_kwargs = "{\"enable_thinking\": false}";
            break;
        case O_HIDE_THOUGHTS: a->chat_opt = "--hide-thoughts", a->o.hide_thoughts = true; break;
        case O_STOP:
            if (!*optarg) die("--stop: empty text");
            a->text_opt = "--stop";
            a->o.stop[a->o.num_stop++] = optarg;
            break;
        case O_NOECHO: a->text_opt = "--no-echo", a->o.echo = 0; break;
        case O_SPECIAL: a->text_opt = "--special", a->o.special = 1; break;
        case 'h': usage(stdout); return 1;
        default: bad_option(argv[optind - 1], c == ':', optopt, longs);
        }
    }
    return 0;
}

/* The combinations refused before the model is opened; sets the seed and the model's path. */
static void check_args(int argc, char **argv, cli_args *a) {
    a->o.session.max_positions = a->o.ctx;
    /* -md alone asks for the draft model's speculation; --spec-type draft needs one */
    if (!a->spec_given && a->o.draft_path) a->o.spec = SPEC_DRAFT;
    if (a->o.spec == SPEC_DRAFT && !a->o.draft_path) die("--spec-type draft: name the draft model with -md FILE");
    if (a->o.draft_path && a->o.spec != SPEC_DRAFT)
        die("-md %s: a draft model is for --spec-type draft, not %s", a->o.draft_path,
            a->o.spec == SPEC_NGRAM ? "ngram-simple"
            : a->o.spec == SPEC_MTP ? "draft-mtp"
                                    : "none");
    if (a->max_memory) limit_memory(a->max_memory);
    if (a->model_opt && optind < argc) die("the model is given twice: -m %s and %s", a->model_opt, argv[optind]);
    if (!a->model_opt && optind >= argc)
        die("no MODEL.so given (rsr-run MODEL.so [-p PROMPT | --chat | --bench] [options]; --help for the options)");
    if (!a->model_opt && optind != argc - 1) die("exactly one MODEL.so expected, got '%s' too", argv[optind + 1]);
    a->inputs = (a->o.prompt != NULL) + (a->prompt_file != NULL) + (a->tokens_arg != NULL) + a->do_chat +
                (a->perplexity_path != NULL);
    if (a->inputs > 1) die("give one of -p, -f, --tokens, --chat or --perplexity");
    if (a->perplexity_path && (a->do_bench || a->do_embed || a->do_tokenize || a->logits_path))
        die("--perplexity FILE takes the text alone (with --ctx and --chunks)");
    if (a->chunks && !a->perplexity_path) die("--chunks %ld needs --perplexity FILE", a->chunks);
    if (a->do_tokenize && (a->tokens_arg || a->do_chat || a->do_bench))
        die("--tokenize takes a text prompt (-p or -f) alone");
    if (a->do_embed && (a->do_chat || a->do_bench || a->do_tokenize || a->logits_path || !a->inputs))
        die("--embed takes a prompt (-p, -f or --tokens) alone");
    if (a->louver_policies > 1) die("give one of --louver-eps, --louver-tau or --louver-budget");
    if (a->louver_opt && a->o.session.attention != RSR_ATTENTION_LOUVER)
        die("%s needs --attention louver", a->louver_opt);
    if (a->sampling_opt && !(a->o.sampler.temperature > 0))
        fprintf(stderr,
                "rsr-run: note: %s shapes sampling, which --temp above 0 turns on; without it decoding is "
                "greedy and %s has no effect\n",
                a->sampling_opt, a->sampling_opt);
    a->o.seed = a->seed >= 0 ? (uint64_t)a->seed : random_seed();
    if (a->chat_opt && !a->do_chat) die("%s needs --chat", a->chat_opt);
    if (a->text_opt && (a->tokens_arg || a->do_bench))
        die("%s applies to text output, not to --tokens or --bench", a->text_opt);
    if (a->logits_path && (!a->tokens_arg || a->do_bench))
        die("--logits writes the logits of a --tokens prompt (not with --bench)");
    if (a->o.stats && !a->tokens_arg) die("--stats prints its figures per step with --tokens");
    if (a->do_bench && a->head_opt) die("--bench measures every head: drop --head");
    if (a->bench_opt && !a->do_bench) die("%s needs --bench", a->bench_opt);
    const bool grid = a->do_bench && !a->prompt_file && bench_is_list(a->o.prompt);
    if (a->n_arg && strchr(a->n_arg, ',') && !grid)
        die("-n %s: one count; a list of lengths goes with --bench -p LENGTHS (e.g. --bench -p 512 -n 0,128)",
            a->n_arg);
    if (a->depth_arg && !grid)
        die("-d %s: context lengths for --bench -p LENGTHS (e.g. --bench -p 512 -n 128 -d 0,2048)", a->depth_arg);
    if ((a->pg_arg || a->t_arg) && !grid)
        die("%s %s: a test of --bench -p LENGTHS (e.g. --bench -p 512 -n 128 %s %s)", a->pg_arg ? "-pg" : "-t",
            a->pg_arg ? a->pg_arg : a->t_arg, a->pg_arg ? "-pg" : "-t", a->pg_arg ? a->pg_arg : a->t_arg);
    if (a->o.bench_format && !grid)
        die("-o %s: the table of --bench -p LENGTHS (e.g. --bench -p 512 -n 128)", a->o.bench_format);
    if (a->o.plot_path && !grid)
        die("--plot %s: a chart of --bench -p LENGTHS (e.g. --bench -p 128,512 -t 1,2 --plot %s)", a->o.plot_path,
            a->o.plot_path);
    if (grid && a->tokens_arg) die("--bench -p %s: lengths of synthetic prompts; drop --tokens", a->o.prompt);
    if (a->parallel_arg && strchr(a->parallel_arg, ',') && !grid)
        die("--parallel %s: one count; a list goes with --bench -p LENGTHS (e.g. --bench -p 128 -n 64 --parallel "
            "1,4,16)",
            a->parallel_arg);
    if (a->o.parallel > 1 && !a->do_bench && !a->tokens_arg && !a->prompt_file)
        die("--parallel %d needs -f FILE (one prompt per line), --tokens or --bench", a->o.parallel);
    if (a->o.parallel > 1 && (a->logits_path || a->o.stats || a->head_opt || a->do_chat))
        die("--parallel steps sequences together through the exact heads: drop %s", a->logits_path ? "--logits"
                                                                                    : a->o.stats   ? "--stats"
                                                                                    : a->head_opt  ? "--head"
                                                                                                   : "--chat");
    a->o.model_path = a->model_opt ? a->model_opt : argv[optind];
}

int main(int argc, char **argv) {
    cli_args a = {.o = {.n_gen = -1,
                        .echo = 1,
                        .sampler = {.temperature = 0, .top_k = 0, .top_p = 1},
                        .repeat_last_n = 64,
                        .session = {.kv_type = RSR_KV_DEFAULT, .attention = RSR_ATTENTION_AUTO}},
                  .device = RSR_DEVICE_AUTO,
                  .seed = -1};
    if (parse_args(argc, argv, &a)) return 0;
    check_args(argc, argv, &a);
    char err[1024], pinned[64];
    if (a.do_digest) { /* the file's bytes only: nothing of it runs */
        char hex[65];
        if (artifact_digest(a.o.model_path, hex, err, sizeof err) != 0) die("%s", err);
        printf("%s  %s\n", hex, a.o.model_path);
        return 0;
    }
    if (a.do_verify) { /* before any of it is loaded: damage is reported, not run */
        double t = now();
        int digested = rsr_api_verify_file(a.o.model_path, err, sizeof err);
        if (digested < 0) die("%s", err);
        if (digested)
            fprintf(stderr, "rsr-run: %s: the file matches the digest rsrc recorded in it (%.2f s)\n", a.o.model_path,
                    now() - t);
        else
            fprintf(stderr,
                    "rsr-run: %s: the file records no digest (compiled by an older rsrc): its ELF structure alone was "
                    "checked\n",
                    a.o.model_path);
    }
    check_model_path(a.o.model_path);
    if (a.expect_digest && artifact_pin(a.o.model_path, a.expect_digest, pinned, sizeof pinned, err, sizeof err) != 0)
        die("%s", err);
    if (rsr_api_load(&api, a.expect_digest ? pinned : a.o.model_path, err, sizeof err) != 0) die("%s", err);

    if (a.use_mmap && a.lock_memory) die("--mmap reads the file mapping and --mlock locks a copy: give one of them");
    rsr_model_params mp = {.num_threads = (int32_t)a.threads,
                           .device = a.device,
                           .lock_memory = a.lock_memory,
                           /* --info or --verify alone reads a few of the constants (or reads them
                            * once): from the file's pages, not a copy of them all */
                           .load =
                               a.use_mmap || ((a.do_info || a.do_verify) && !a.do_bench && !a.inputs && !a.lock_memory)
                                   ? RSR_LOAD_MMAP
                                   : RSR_LOAD_COPY};
    rsr_model_info info;
    double t_open;
    rsr_model *m = open_model(a.o.model_path, &mp, a.verbose, a.do_info, &info, &t_open);
    a.o.threads = info.num_threads;
    check_model_opts(&a.o, &info);
    if (a.verbose) { /* what each sequence's cache holds: K and V per layer, KV head and position */
        const int32_t pos = a.o.ctx ? a.o.ctx : info.max_positions;
        const double row = (double)rsr_kv_row_bytes(a.o.session.kv_type, info.head_dim);
        static const char *const attn[] = {"dense", "louver", "auto"};
        fprintf(stderr, "rsr-run: KV cache %s, %.1f MiB per sequence of %d positions; attention %s\n",
                kv_type_name(a.o.session.kv_type),
                (2.0 * row * info.num_kv_layers * info.num_kv_heads * pos + (double)info.state_bytes) / 1048576.0, pos,
                attn[a.o.session.attention]);
    }
    if (a.verbose && a.o.sampler.temperature > 0)
        fprintf(stderr, "rsr-run: sampling with seed %llu (--seed %llu repeats this run)\n",
                (unsigned long long)a.o.seed, (unsigned long long)a.o.seed);
    if (a.o.head_int8 && !strncmp(info.device, "gpu", 3))
        die("--head int8: the int8 LM head runs on the CPU, and %s opened on the GPU: add --device cpu",
            a.o.model_path);
    if (a.do_verify) {
        double t = now();
        if (api.model_verify(m) != RSR_OK) die("%s", api.model_errmsg(m));
        fprintf(stderr, "rsr-run: %s: the constants match their checksum (%.2f s)\n", a.o.model_path, now() - t);
    }
    if (a.do_info) print_info(m, &info, a.o.model_path, a.verbose);
    if ((a.do_verify || a.do_info) && !a.do_bench && !a.inputs) { /* they alone: nothing more to do */
        api.model_close(m);
        return 0;
    }

    if (a.do_bench && !a.prompt_file && bench_is_list(a.o.prompt)) { /* llama-bench's tests and table */
        run_bench_grid(m, &info, &a.o, &mp,
                       (bench_lists){a.o.prompt, a.n_arg, a.pg_arg, a.t_arg, a.parallel_arg, a.depth_arg});
        api.model_close(m);
        flush_stdout();
        return 0;
    }
    if (a.o.parallel > 1 && !a.do_bench && strncmp(info.device, "cpu", 3))
        die("--parallel: batches run on the CPU, and %s opened on the GPU: add --device cpu", a.o.model_path);
    if (a.o.parallel > 1 && !a.do_bench) {
        run_many(m, &info, &a.o, a.prompt_file, a.tokens_arg);
        api.model_close(m);
        return 0;
    }
    if (!a.inputs && !a.do_bench && isatty(0)) /* nothing to continue, and a person at the terminal */
        die("give a prompt (-p TEXT, -f FILE or --tokens IDS), or --chat for a conversation (rsr-run --help)");
    char *owned_prompt = NULL;
    if (a.prompt_file) {
        FILE *f = fopen(a.prompt_file, "rb");
        if (!f) die("%s: %s", a.prompt_file, strerror(errno));
        a.o.prompt = owned_prompt = read_all(f, a.prompt_file);
        fclose(f);
    } else if ((a.o.prompt && strcmp(a.o.prompt, "-") == 0) || (!a.inputs && !a.do_bench && !isatty(0))) {
        a.o.prompt = owned_prompt = read_all(stdin, "stdin");
    }

    if (a.perplexity_path) {
        run_perplexity(m, &info, &a.o, a.perplexity_path, a.chunks);
    } else if (a.do_embed) {
        run_embed(m, &info, &a.o, a.tokens_arg, a.do_embed == 1);
    } else if (a.do_chat) {
        run_chat(m, require_tokenizer(m, "--chat"), &a.o);
    } else if (a.tokens_arg ||
               (!a.o.prompt && !a.do_bench && api.model_tokenizer(m, &(rsr_tokenizer *){0}) != RSR_OK)) {
        int32_t n_prompt = 1, *prompt;
        if (a.tokens_arg)
            prompt = parse_tokens(a.tokens_arg, &n_prompt);
        else { /* no text and no tokenizer: ids from BOS */
            prompt = malloc(sizeof *prompt);
            prompt[0] = info.bos_token_id >= 0 ? info.bos_token_id : 0;
        }
        if (a.do_bench)
            run_bench(m, &info, &a.o, prompt, n_prompt, t_open);
        else
            run_ids(m, &info, &a.o, prompt, n_prompt, a.logits_path);
        free(prompt);
    } else if (a.do_bench && !a.o.prompt) {
        run_bench(m, &info, &a.o, NULL, 0, t_open);
    } else if (a.do_bench || a.do_tokenize) {
        rsr_tokenizer *tok = require_tokenizer(m, a.do_tokenize ? "--tokenize" : "a text prompt");
        int32_t n = 0;
        rsr_status st;
        int32_t *ids =
            encode_all(&api, tok, a.o.prompt, -1, RSR_ENCODE_ADD_SPECIAL | RSR_ENCODE_PARSE_SPECIAL, &n, &st);
        if (!ids) die("%s", st == RSR_ERR_OUT_OF_MEMORY ? "out of memory" : api.tokenizer_errmsg(tok));
        if (a.do_tokenize) { /* the ids a generation would start from, as --tokens takes them */
            for (int32_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
            putchar('\n');
            flush_stdout();
        } else {
            if (!n) die("--bench: the prompt has no tokens");
            run_bench(m, &info, &a.o, ids, n, t_open);
        }
        free(ids);
    } else {
        run_text(m, require_tokenizer(m, "a text prompt"), &a.o);
    }
    free(owned_prompt);
    free(a.o.stop);
    api.model_close(m);
    return 0;
}
