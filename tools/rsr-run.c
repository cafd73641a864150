/*
 * rsr-run — runs a model compiled by rsrc: evaluates a prompt of token ids, generates tokens,
 * writes logits, measures speed. The model is loaded with dlopen; every call goes through the
 * public C API in rsr.h.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "rsr_dl.h"

static rsr_api api;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rsr-run: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void load_api(const char *path) {
    char err[512];
    if (rsr_api_load(&api, path, err, sizeof err) != 0) die("%s", err);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *out) {
    fputs("usage: rsr-run MODEL.so [options]\n"
          "\n"
          "Runs a model compiled by rsrc. Generated token ids go to stdout on one line; speed to stderr.\n"
          "\n"
          "options:\n"
          "  --tokens A,B,C     the prompt as token ids (default: the model's BOS token)\n"
          "  -n N               tokens to generate (default 16); generation stops after EOS\n"
          "  --ignore-eos       do not stop at EOS\n"
          "  --logits FILE      write the fp32 logits of the last prompt position (vocab floats)\n"
          "  --temp T           sampling temperature (default 0: greedy)\n"
          "  --top-k K          keep the K most likely tokens (default 0: all)\n"
          "  --top-p P          keep the smallest set with probability >= P (default 1)\n"
          "  --seed S           random seed for sampling (default 1)\n"
          "  -t, --threads N    threads (default: OpenMP's default)\n"
          "  --ctx N            context length of the session (default: the model's)\n"
          "  --bench            measure prefill (128 tokens) and decode (64 tokens) speed\n"
          "  --max-memory SIZE  cap the memory the runtime may allocate (512M, 4G): a session that\n"
          "                     does not fit fails cleanly (the model's constants are mapped, not charged)\n"
          "  --info             print what the model is and how it was compiled\n"
          "  -h, --help\n",
          out);
}

static long parse_num(const char *flag, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) die("%s: '%s' is not an integer in [%ld, %ld]", flag, s, lo, hi);
    return v;
}

static float parse_float(const char *flag, const char *s, float lo, float hi) {
    char *end;
    float v = strtof(s, &end);
    if (*end || end == s || !(v >= lo && v <= hi)) die("%s: '%s' is not a number in [%g, %g]", flag, s, lo, hi);
    return v;
}

/* RLIMIT_DATA caps heap and anonymous mappings: the KV cache and scratch, not the model file. */
static void limit_memory(const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = !strcmp(end, "K") ? 10 : !strcmp(end, "M") ? 20 : !strcmp(end, "G") ? 30 : *end ? -1 : 0;
    if (errno || end == s || *s == '-' || shift < 0 || v > (ULLONG_MAX >> shift))
        die("--max-memory: '%s' is not a size such as 512M or 4G", s);
    struct rlimit rl;
    if (getrlimit(RLIMIT_DATA, &rl) != 0) die("--max-memory: %s", strerror(errno));
    rl.rlim_cur = v << shift;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_DATA, &rl) != 0) die("--max-memory: %s", strerror(errno));
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
        if (*p == ',') p++;
        else if (*p) die("--tokens: unexpected '%c' in '%s'", *p, s);
    }
    if (!count) die("--tokens: empty list");
    *n = count;
    return t;
}

static void check(rsr_status st, rsr_session *s) {
    if (st != RSR_OK) die("%s", api.session_errmsg(s));
}

static void bench(rsr_model *m, const rsr_model_info *info, int32_t ctx) {
    rsr_session *s;
    rsr_session_params sp = {.max_positions = ctx};
    if (api.session_create(m, &sp, &s) != RSR_OK) die("%s", api.model_errmsg(m));
    int32_t prefill = 128 < info->max_positions / 2 ? 128 : info->max_positions / 2, decode = 64;
    if (prefill + decode > info->max_positions) decode = info->max_positions - prefill;
    int32_t *toks = malloc(sizeof *toks * (size_t)prefill);
    for (int32_t i = 0; i < prefill; i++) toks[i] = (int32_t)((i * 2654435761u) % (uint32_t)info->vocab_size);
    float *logits = malloc(sizeof *logits * (size_t)info->vocab_size);
    check(api.session_eval(s, toks, 8, logits), s); /* warm-up */
    check(api.session_reset(s), s);
    double t0 = now();
    check(api.session_eval(s, toks, prefill, logits), s);
    double t1 = now();
    int32_t tok = 0;
    for (int32_t i = 0; i < decode; i++) check(api.session_eval(s, &tok, 1, logits), s);
    double t2 = now();
    printf("prefill %d tokens: %.2f tok/s\n", prefill, prefill / (t1 - t0));
    printf("decode %d tokens: %.2f tok/s (%.2f ms/token)\n", decode, decode / (t2 - t1), 1e3 * (t2 - t1) / decode);
    free(toks);
    free(logits);
    api.session_free(s);
}

int main(int argc, char **argv) {
    const char *tokens_arg = NULL, *logits_path = NULL;
    long n_gen = 16, seed = 1, ctx = 0, threads = 0;
    rsr_sampler_params sp = {.temperature = 0, .top_k = 0, .top_p = 1};
    int do_bench = 0, do_info = 0, ignore_eos = 0;
    enum { O_TOKENS = 256, O_LOGITS, O_TEMP, O_TOPK, O_TOPP, O_SEED, O_BENCH, O_INFO, O_CTX, O_NOEOS, O_MAXMEM };
    const char *max_memory = NULL;
    static const struct option longs[] = {
        {"tokens", required_argument, 0, O_TOKENS}, {"logits", required_argument, 0, O_LOGITS},
        {"temp", required_argument, 0, O_TEMP},     {"top-k", required_argument, 0, O_TOPK},
        {"top-p", required_argument, 0, O_TOPP},    {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, 't'},    {"ctx", required_argument, 0, O_CTX},
        {"bench", no_argument, 0, O_BENCH},         {"info", no_argument, 0, O_INFO},
        {"ignore-eos", no_argument, 0, O_NOEOS},    {"help", no_argument, 0, 'h'},
        {"max-memory", required_argument, 0, O_MAXMEM},
        {0, 0, 0, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "n:t:h", longs, NULL)) != -1) {
        switch (c) {
        case 'n': n_gen = parse_num("-n", optarg, 0, 1 << 24); break;
        case 't': threads = parse_num("--threads", optarg, 0, 1024); break;
        case O_TOKENS: tokens_arg = optarg; break;
        case O_LOGITS: logits_path = optarg; break;
        case O_TEMP: sp.temperature = parse_float("--temp", optarg, 0, 100); break;
        case O_TOPK: sp.top_k = (int32_t)parse_num("--top-k", optarg, 0, INT32_MAX); break;
        case O_TOPP: sp.top_p = parse_float("--top-p", optarg, 0, 1); break;
        case O_SEED: seed = parse_num("--seed", optarg, 0, LONG_MAX); break;
        case O_CTX: ctx = parse_num("--ctx", optarg, 0, INT32_MAX); break;
        case O_BENCH: do_bench = 1; break;
        case O_INFO: do_info = 1; break;
        case O_NOEOS: ignore_eos = 1; break;
        case O_MAXMEM: max_memory = optarg; break;
        case 'h': usage(stdout); return 0;
        default: die("option '%s' is unknown or needs a value (see --help)", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        die(optind >= argc ? "no MODEL.so given" : "exactly one MODEL.so expected");
    }
    if (max_memory) limit_memory(max_memory);
    load_api(argv[optind]);

    rsr_model *m;
    rsr_model_params mp = {.num_threads = (int32_t)threads};
    if (api.model_open(&m, &mp) != RSR_OK) die("%s: %s", argv[optind], api.model_errmsg(m));
    rsr_model_info info;
    api.model_get_info(m, &info);
    if (do_info) {
        printf("architecture %s\ncompiler %s\ntarget %s\n", info.architecture, info.compiler, info.target);
        printf("hidden %d intermediate %d layers %d heads %d kv_heads %d head_dim %d vocab %d max_positions %d\n",
               info.hidden_size, info.intermediate_size, info.num_layers, info.num_heads, info.num_kv_heads,
               info.head_dim, info.vocab_size, info.max_positions);
        for (int32_t i = 0; i < info.num_matrices; i++) {
            rsr_matrix_info mi;
            api.model_matrix_info(m, i, &mi);
            printf("matrix %s %dx%d %s k=%d\n", mi.name, mi.rows, mi.cols, mi.strategy, mi.rsr_k);
        }
    }
    if (do_bench) bench(m, &info, (int32_t)ctx);
    if (do_info || (do_bench && !tokens_arg)) {
        api.model_close(m);
        return 0;
    }

    int32_t n_prompt = 1, *prompt;
    if (tokens_arg) prompt = parse_tokens(tokens_arg, &n_prompt);
    else {
        prompt = malloc(sizeof *prompt);
        prompt[0] = info.bos_token_id >= 0 ? info.bos_token_id : 0;
    }
    rsr_session *s;
    rsr_session_params ssp = {.max_positions = (int32_t)ctx};
    if (api.session_create(m, &ssp, &s) != RSR_OK) die("%s", api.model_errmsg(m));
    float *logits = malloc(sizeof *logits * (size_t)info.vocab_size);
    float *probs = malloc(sizeof *probs * (size_t)info.vocab_size);
    int32_t *ids = malloc(sizeof *ids * (size_t)info.vocab_size);
    uint64_t rng = (uint64_t)seed * 0x9e3779b97f4a7c15u + 1;

    double t0 = now();
    check(api.session_eval(s, prompt, n_prompt, logits), s);
    double t1 = now();
    if (logits_path) {
        FILE *f = fopen(logits_path, "wb");
        if (!f || fwrite(logits, sizeof *logits, (size_t)info.vocab_size, f) != (size_t)info.vocab_size ||
            fclose(f) != 0)
            die("%s: cannot write logits: %s", logits_path, strerror(errno));
    }
    int32_t generated = 0;
    for (; generated < n_gen; generated++) {
        int32_t tok = api.sample(logits, info.vocab_size, &sp, &rng, probs, ids);
        printf(generated ? " %d" : "%d", tok);
        fflush(stdout);
        if (tok == info.eos_token_id && !ignore_eos) {
            generated++;
            break;
        }
        if (generated + 1 < n_gen) check(api.session_eval(s, &tok, 1, logits), s);
    }
    putchar('\n');
    fflush(stdout);
    double t2 = now();
    fprintf(stderr, "rsr-run: prompt %d tokens in %.3f s (%.1f tok/s), generated %d tokens in %.3f s (%.1f tok/s)\n",
            n_prompt, t1 - t0, n_prompt / (t1 - t0), generated, t2 - t1, generated ? generated / (t2 - t1) : 0.0);
    free(prompt), free(logits), free(probs), free(ids);
    api.session_free(s);
    api.model_close(m);
    return 0;
}
