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

#include "bandwidth.h"
#include "rsr-run.h"

rsr_api api;

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fputs("rsr-run: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void flush_stdout(void) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int e = errno ? errno : EIO;
        clearerr(stdout);
        die("stdout: %s", strerror(e));
    }
}

double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void check(rsr_status st, rsr_session *s) {
    if (st != RSR_OK) die("%s", api.session_errmsg(s));
}

void eval_logits(const run_options *o, rsr_session *s, const int32_t *tokens, int32_t n, float *logits) {
    if (o->head_int8) check(api.session_eval_int8(s, tokens, n, logits, NULL), s);
    else check(api.session_eval(s, tokens, n, logits), s);
}

static void usage(FILE *out) {
    fputs("usage: rsr-run MODEL.so [options]\n"
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
          "  --tokens A,B,C        the prompt as token ids; generated ids are printed on one line\n"
          "  --chat                an interactive conversation: one user turn per line of stdin;\n"
          "                        /reset forgets the conversation, /exit or end of input quits\n"
          "  --chat-template NAME  llama3, bitnet or llama2 (default: the one that fits the model)\n"
          "  --system TEXT         a system message at the start of the conversation\n"
          "\n"
          "generation:\n"
          "  -n N                  tokens to generate (default: 256 for text, 16 for --tokens; in a\n"
          "                        chat, the most one reply may have)\n"
          "  --temp T              sampling temperature (default 0: greedy)\n"
          "  --top-k K             sample from the K most likely tokens (default 0: all)\n"
          "  --top-p P             sample from the smallest set with probability >= P (default 1)\n"
          "  --seed S              random seed for sampling (default 1)\n"
          "  --stop TEXT           stop when the output contains TEXT (which is not printed); repeatable\n"
          "  --ignore-eos          go on past the end-of-text and end-of-turn tokens\n"
          "  --no-echo             print only the continuation, not the prompt\n"
          "  --special             print special tokens (<|eot_id|>, </s>) instead of leaving them out\n"
          "\n"
          "other:\n"
          "  --logits FILE         with --tokens: write the fp32 logits of the last prompt position\n"
          "  --head H              exact (default) or int8: sampling and --logits read the model's int8\n"
          "                        copy of the LM head (half its bytes; lossy, each logit within a\n"
          "                        certified bound, which --bench measures); greedy decoding without\n"
          "                        --logits stays exact\n"
          "  -t, --threads N       threads (default: OpenMP's default)\n"
          "  --device D            auto (default: the GPU when the model has GPU code and one is\n"
          "                        there, else the CPU), cpu or gpu (fail rather than fall back)\n"
          "  --ctx N               context length of the session (default: the model's)\n"
          "  --batch N             prompt tokens evaluated together, 1 to 64 (default 64; the results\n"
          "                        are the same for every N)\n"
          "  --bench               measure prefill (the prompt, or 128 tokens) and decode (-n, or 64\n"
          "                        tokens) speed instead of printing text\n"
          "  --max-memory SIZE     cap the memory the runtime may allocate (512M, 4G; 0: no cap): a\n"
          "                        session that does not fit fails cleanly (the model's constants are\n"
          "                        mapped, not charged)\n"
          "  --mlock               keep the model's constants in locked memory (a copy, in huge pages):\n"
          "                        steady and faster where the page cache is small or contended\n"
          "  --info                print what the model is and how it was compiled\n"
          "  -h, --help            this text\n"
          "\n"
          "Text goes to stdout; speed and errors to stderr.\n",
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
        if (*p == ',') p++;
        else if (*p) die("--tokens: unexpected '%c' in '%s'", *p, s);
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

rsr_tokenizer *require_tokenizer(rsr_model *m, const char *why) {
    rsr_tokenizer *tok;
    if (api.model_tokenizer(m, &tok) != RSR_OK) die("%s needs text, but %s", why, api.model_errmsg(m));
    return tok;
}

/* What the model is, then the manifest: how it was compiled, matrix by matrix. */
static void print_info(rsr_model *m, const rsr_model_info *info) {
    printf("architecture %s\ndevice %s\n", info->architecture, info->device);
    printf("hidden %d intermediate %d layers %d heads %d kv_heads %d head_dim %d vocab %d max_positions %d\n",
           info->hidden_size, info->intermediate_size, info->num_layers, info->num_heads, info->num_kv_heads,
           info->head_dim, info->vocab_size, info->max_positions);
    rsr_tokenizer *tok;
    rsr_status st = api.model_tokenizer(m, &tok);
    rsr_tokenizer_info ti;
    if (st == RSR_OK && api.tokenizer_get_info(tok, &ti) == RSR_OK)
        printf("tokenizer %s, %d tokens (%d added), bos %d eos %d eot %d, chat template %s\n", ti.kind, ti.vocab_size,
               ti.num_added_tokens, ti.bos_token_id, ti.eos_token_id, ti.eot_token_id,
               ti.chat_template ? ti.chat_template : "none");
    else if (st == RSR_ERR_NOT_FOUND) printf("tokenizer none (token ids only)\n");
    else printf("tokenizer unreadable: %s\n", api.model_errmsg(m));
    fputs(api.model_manifest(m), stdout);
}

/* Bytes the exact model reads per decoded token: every ternary weight at 2 bits and the 16-bit
 * LM head (what the published checkpoints hold); the KV cache and activations are left out. */
static double exact_bytes_per_token(rsr_model *m, const rsr_model_info *info) {
    double bytes = 2.0 * (double)info->vocab_size * (double)info->hidden_size;
    for (int32_t i = 0; i < info->num_matrices; i++) {
        rsr_matrix_info mi;
        if (api.model_matrix_info(m, i, &mi) == RSR_OK) bytes += (double)mi.rows * (double)mi.cols / 4;
    }
    return bytes;
}

/* Prefill of a prompt (given, or 128 synthetic ids) and decode of n tokens, timed apart. */
static void bench(rsr_model *m, const rsr_model_info *info, const run_options *o, const int32_t *prompt, int32_t n_prompt) {
    rsr_session *s;
    rsr_session_params sp = o->session;
    if (api.session_create(m, &sp, &s) != RSR_OK) die("%s", api.model_errmsg(m));
    int32_t limit = o->ctx ? o->ctx : info->max_positions;
    int32_t *synthetic = NULL;
    if (!prompt) {
        n_prompt = 128 < limit / 2 ? 128 : limit / 2;
        prompt = synthetic = malloc(sizeof *synthetic * (size_t)n_prompt);
        for (int32_t i = 0; i < n_prompt; i++) synthetic[i] = (int32_t)((i * 2654435761u) % (uint32_t)info->vocab_size);
    }
    int32_t decode = o->n_gen >= 0 ? (int32_t)o->n_gen : 64;
    if (n_prompt >= limit) die("--bench: the prompt has %d tokens, the context only %d", n_prompt, limit);
    if (n_prompt + decode > limit) decode = limit - n_prompt;
    float *logits = malloc(sizeof *logits * (size_t)info->vocab_size);
    if (!logits) die("out of memory");
    check(api.session_eval(s, prompt, n_prompt < 8 ? n_prompt : 8, logits), s); /* warm-up */
    check(api.session_reset(s), s);
    double t0 = now();
    int32_t first;
    check(api.session_eval_greedy(s, prompt, n_prompt, &first), s);
    double t1 = now();
    /* decode twice from the same position, side by side: the certified greedy head, then the
     * full logits + argmax; both must give the same tokens */
    int32_t pos = api.session_position(s), tok = first, mismatch = -1;
    int32_t *tokens = malloc(sizeof *tokens * (size_t)(decode + 1));
    for (int32_t i = 0; i < decode; i++) {
        tokens[i] = tok;
        check(api.session_eval_greedy(s, &tok, 1, &tok), s);
    }
    double t2 = now();
    tokens[decode] = tok;
    check(api.session_reset(s), s);
    check(api.session_eval(s, prompt, n_prompt, logits), s);
    if (api.session_position(s) != pos) die("--bench: position mismatch");
    const size_t V = (size_t)info->vocab_size;
    const bool on_gpu = !strncmp(info->device, "gpu", 3);
    /* the exact logits of the first steps, kept for the int8 head's comparison below (at most
     * BENCH_COMPARE_STEPS, 0.5 MB each for a 128K vocabulary), written once before the timed loop
     * so that no page is first touched inside it; later steps' logits go to `logits` */
    enum { BENCH_COMPARE_STEPS = 64 };
    const int32_t compared = on_gpu ? 0 : decode < BENCH_COMPARE_STEPS ? decode : BENCH_COMPARE_STEPS;
    const size_t exact_bytes = sizeof(float) * V * (size_t)(compared > 0 ? compared : 1);
    float *exact = malloc(exact_bytes);
    if (!exact) die("out of memory");
    memset(exact, 0, exact_bytes);
    double t3 = now();
    tok = first;
    for (int32_t i = 0; i < decode; i++) {
        if (tok != tokens[i] && mismatch < 0) mismatch = i;
        float *l = i < compared ? exact + (size_t)i * V : logits;
        check(api.session_eval(s, &tokens[i], 1, l), s);
        tok = api.sample_greedy(l, info->vocab_size);
    }
    double t4 = now();
    if (decode && tok != tokens[decode] && mismatch < 0) mismatch = decode;
    /* the same decode with the logits from the int8 head (CPU): speed, and the error measured
     * against the exact logits above beside the certified bound */
    double t_q8 = 0, max_err = 0, max_bound = 0, lo = INFINITY, hi = -INFINITY;
    int32_t agree = 0;
    const bool q8 = decode && !on_gpu;
    if (q8) {
        check(api.session_reset(s), s);
        check(api.session_eval(s, prompt, n_prompt, logits), s);
        for (int32_t i = 0; i < decode; i++) {
            double b, t = now();
            check(api.session_eval_int8(s, &tokens[i], 1, logits, &b), s);
            t_q8 += now() - t;
            max_bound = fmax(max_bound, b);
            if (i >= compared) continue;
            const float *e = exact + (size_t)i * V;
            for (size_t v = 0; v < V; v++) {
                max_err = fmax(max_err, fabs((double)logits[v] - (double)e[v]));
                lo = fmin(lo, e[v]), hi = fmax(hi, e[v]);
            }
            agree += api.sample_greedy(logits, info->vocab_size) == api.sample_greedy(e, info->vocab_size);
        }
    }
    free(exact);
    /* the same prefill one token per step, side by side (the batched kernels' gain) */
    rsr_session *s1;
    sp.batch = 1;
    if (api.session_create(m, &sp, &s1) != RSR_OK) die("%s", api.model_errmsg(m));
    double t5 = now();
    int32_t first1;
    check(api.session_eval_greedy(s1, prompt, n_prompt, &first1), s1);
    double t6 = now();
    api.session_free(s1);
    if (first1 != first) die("--bench: the prefill one token per step gives token %d, batched %d", first1, first);
    printf("prefill %d tokens: %.2f tok/s (%d per step); one per step %.2f tok/s: %.2fx\n", n_prompt, n_prompt / (t1 - t0),
           o->session.batch ? o->session.batch : RSR_BATCH_MAX, n_prompt / (t6 - t5), (t6 - t5) / (t1 - t0));
    if (decode) {
        printf("decode %d tokens, certified greedy head: %.2f tok/s (%.2f ms/token)\n", decode, decode / (t2 - t1),
               1e3 * (t2 - t1) / decode);
        printf("decode %d tokens, full logits:           %.2f tok/s (%.2f ms/token); greedy head %.2fx faster, %s\n",
               decode, decode / (t4 - t3), 1e3 * (t4 - t3) / decode, (t4 - t3) / (t2 - t1),
               mismatch < 0 ? "same tokens" : "TOKENS DIFFER");
        if (q8 && max_bound == 0)
            printf("decode %d tokens, int8 logits:           the exact logits (bound 0: the model has no int8 head copy, "
                   "rsrc --no-greedy-head, or no step had anything to bound)\n", decode);
        else if (q8)
            printf("decode %d tokens, int8 logits (lossy):   %.2f tok/s (%.2f ms/token); largest logit error %.3g "
                   "(certified bound %.3g; the exact logits span %.3g..%.3g), argmax as the exact logits' at %d of %d steps\n",
                   decode, decode / t_q8, 1e3 * t_q8 / decode, max_err, max_bound, lo, hi, agree, compared);
    }
    free(tokens);
    if (mismatch >= 0) die("--bench: the greedy head and the full logits disagree at decode step %d", mismatch);
    if (decode && on_gpu) {
        double bytes = exact_bytes_per_token(m, info), s_per_token = (t2 - t1) / decode;
        printf("roofline: the exact model reads %.3f GB per token: %.0f GB/s at the certified greedy decode's "
               "%.2f ms per token (bench_gpu measures the GPU's read bandwidth to compare)\n",
               bytes / 1e9, bytes / 1e9 / s_per_token, 1e3 * s_per_token);
    } else if (decode) { /* the host's memory: measured now, with the threads the model uses */
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        int threads = o->threads > 0 ? o->threads : online > 0 ? (int)online : 1;
        double bw = read_bandwidth(threads), bytes = exact_bytes_per_token(m, info), ms = 1e3 * (t2 - t1) / decode;
        if (bw > 0)
            printf("roofline: the exact model reads %.3f GB per token (2-bit weights, 16-bit head); streaming read "
                   "measured now %.1f GB/s (%d thread%s): at most %.1f tok/s; the certified greedy decode is %.2f of it\n",
                   bytes / 1e9, bw, threads, threads == 1 ? "" : "s", bw * 1e9 / bytes, (bytes / 1e9) / (ms / 1e3) / bw);
    }
    free(synthetic);
    free(logits);
    api.session_free(s);
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

static void print_stats(rsr_session *s, const rsr_model_info *info, int32_t step) {
    for (int32_t l = 0; l < info->num_layers; l++) {
        rsr_attention_stats st;
        check(api.session_attention_stats(s, l, &st), s);
        fprintf(stderr, "stats step %d layer %d keys %lld bounded %lld scanned %lld kept %lld tau %.6g..%.6g dropped<= %.3g%s\n",
                step, l, (long long)st.keys, (long long)st.bounded, (long long)st.scanned, (long long)st.kept,
                (double)st.tau_min, (double)st.tau_max, st.dropped_bound, st.dense_fallbacks ? " (dense fallback)" : "");
    }
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
    float *logits = malloc(sizeof *logits * (size_t)info->vocab_size);
    float *probs = malloc(sizeof *probs * (size_t)info->vocab_size);
    int32_t *ids = malloc(sizeof *ids * (size_t)info->vocab_size);
    uint64_t rng = o->seed * 0x9e3779b97f4a7c15u + 1;
    long n_gen = o->n_gen >= 0 ? o->n_gen : 16;
    const int32_t ctx = o->ctx ? o->ctx : info->max_positions;
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

    /* greedy without --logits: the certified greedy head, which reads no full logits */
    int greedy = o->sampler.temperature <= 0 && !logits_path;
    int32_t next = 0;
    double t0 = now();
    if (greedy) check(api.session_eval_greedy(s, prompt, n_prompt, &next), s);
    else eval_logits(o, s, prompt, n_prompt, logits);
    double t1 = now();
    if (o->stats) print_stats(s, info, 0);
    if (logits_path) {
        FILE *f = fdopen(logits_fd, "wb");
        if (!f || fwrite(logits, sizeof *logits, (size_t)info->vocab_size, f) != (size_t)info->vocab_size ||
            fclose(f) != 0 || rename(logits_tmp, logits_path) != 0)
            die("%s: cannot write logits: %s", logits_path, strerror(errno));
        free(logits_tmp);
        logits_tmp = NULL;
    }
    int32_t generated = 0;
    for (; generated < n_gen; generated++) {
        int32_t tok = greedy ? next : api.sample(logits, info->vocab_size, &o->sampler, &rng, probs, ids);
        printf(generated ? " %d" : "%d", tok);
        flush_stdout();
        if (tok == info->eos_token_id && !o->ignore_eos) {
            generated++;
            break;
        }
        if (generated + 1 == n_gen) continue; /* the last: nothing to evaluate */
        if (api.session_position(s) >= ctx) {
            generated++, full = true;
            break;
        }
        if (greedy) check(api.session_eval_greedy(s, &tok, 1, &next), s);
        else eval_logits(o, s, &tok, 1, logits);
        if (o->stats) print_stats(s, info, generated + 1);
    }
    putchar('\n');
    flush_stdout();
    if (full) fprintf(stderr, "rsr-run: the context is full (%d tokens); raise --ctx to go on\n", ctx);
    double t2 = now();
    fprintf(stderr, "rsr-run: prompt %d tokens in %.3f s (%.1f tok/s), generated %d tokens in %.3f s (%.1f tok/s)\n",
            n_prompt, t1 - t0, n_prompt / (t1 - t0), generated, t2 - t1, generated ? generated / (t2 - t1) : 0.0);
    free(logits), free(probs), free(ids);
    api.session_free(s);
}

int main(int argc, char **argv) {
    const char *tokens_arg = NULL, *logits_path = NULL, *prompt_file = NULL;
    long threads = 0;
    int do_bench = 0, do_info = 0, do_chat = 0, device = RSR_DEVICE_AUTO, lock_memory = 0;
    run_options o = {.n_gen = -1, .echo = 1, .seed = 1, .sampler = {.temperature = 0, .top_k = 0, .top_p = 1}};
    enum { O_TOKENS = 256, O_LOGITS, O_TEMP, O_TOPK, O_TOPP, O_SEED, O_BENCH, O_INFO, O_CTX, O_NOEOS, O_CHAT,
           O_TEMPLATE, O_SYSTEM, O_STOP, O_NOECHO, O_SPECIAL, O_ATTN, O_LEPS, O_LTAU, O_LBUDGET, O_LBLOCK, O_STATS,
           O_DEVICE, O_MAXMEM, O_MLOCK, O_BATCH, O_HEAD };
    const char *max_memory = NULL;
    static const struct option longs[] = {
        {"prompt", required_argument, 0, 'p'},       {"file", required_argument, 0, 'f'},
        {"tokens", required_argument, 0, O_TOKENS},  {"logits", required_argument, 0, O_LOGITS},
        {"temp", required_argument, 0, O_TEMP},      {"top-k", required_argument, 0, O_TOPK},
        {"top-p", required_argument, 0, O_TOPP},     {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, 't'},     {"ctx", required_argument, 0, O_CTX},
        {"bench", no_argument, 0, O_BENCH},          {"info", no_argument, 0, O_INFO},
        {"ignore-eos", no_argument, 0, O_NOEOS},     {"chat", no_argument, 0, O_CHAT},
        {"chat-template", required_argument, 0, O_TEMPLATE}, {"system", required_argument, 0, O_SYSTEM},
        {"stop", required_argument, 0, O_STOP},      {"no-echo", no_argument, 0, O_NOECHO},
        {"special", no_argument, 0, O_SPECIAL},      {"help", no_argument, 0, 'h'},
        {"attention", required_argument, 0, O_ATTN}, {"louver-eps", required_argument, 0, O_LEPS},
        {"louver-tau", required_argument, 0, O_LTAU}, {"louver-budget", required_argument, 0, O_LBUDGET},
        {"louver-block", required_argument, 0, O_LBLOCK}, {"stats", no_argument, 0, O_STATS},
        {"max-memory", required_argument, 0, O_MAXMEM}, {"mlock", no_argument, 0, O_MLOCK},
        {"device", required_argument, 0, O_DEVICE}, {"batch", required_argument, 0, O_BATCH},
        {"head", required_argument, 0, O_HEAD},
        {0, 0, 0, 0},
    };
    o.stop = calloc((size_t)argc, sizeof *o.stop);
    /* options that only mean something beside others: refused alone rather than ignored */
    const char *louver_opt = NULL, *sampling_opt = NULL, *text_opt = NULL, *chat_opt = NULL, *head_opt = NULL;
    int louver_policies = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "p:f:n:t:h", longs, NULL)) != -1) {
        switch (c) {
        case 'p': o.prompt = optarg; break;
        case 'f': prompt_file = optarg; break;
        case 'n': o.n_gen = parse_num("-n", optarg, 0, 1 << 24); break;
        case 't': threads = parse_num("--threads", optarg, 0, 1024); break;
        case O_TOKENS: tokens_arg = optarg; break;
        case O_LOGITS: logits_path = optarg; break;
        case O_TEMP: o.sampler.temperature = parse_float("--temp", optarg, 0, 100); break;
        case O_TOPK: sampling_opt = "--top-k", o.sampler.top_k = (int32_t)parse_num("--top-k", optarg, 0, INT32_MAX); break;
        case O_TOPP: sampling_opt = "--top-p", o.sampler.top_p = parse_float("--top-p", optarg, 0, 1); break;
        case O_SEED: sampling_opt = "--seed", o.seed = (uint64_t)parse_num("--seed", optarg, 0, LONG_MAX); break;
        case O_CTX: o.ctx = (int32_t)parse_num("--ctx", optarg, 0, INT32_MAX); break;
        case O_BATCH: o.session.batch = (int32_t)parse_num("--batch", optarg, 1, RSR_BATCH_MAX); break;
        case O_HEAD:
            head_opt = "--head";
            if (!strcmp(optarg, "exact")) o.head_int8 = 0;
            else if (!strcmp(optarg, "int8")) o.head_int8 = 1;
            else die("--head: '%s' is neither exact nor int8", optarg);
            break;
        case O_ATTN:
            if (!strcmp(optarg, "dense")) o.session.attention = RSR_ATTENTION_DENSE;
            else if (!strcmp(optarg, "louver")) o.session.attention = RSR_ATTENTION_LOUVER;
            else die("--attention: '%s' is neither dense nor louver", optarg);
            break;
        case O_LEPS:
            louver_opt = "--louver-eps", louver_policies++;
            o.session.louver_policy = RSR_LOUVER_RELATIVE;
            o.session.louver_eps = parse_float("--louver-eps", optarg, 1e-30f, 0.999999f);
            break;
        case O_LTAU:
            louver_opt = "--louver-tau", louver_policies++;
            o.session.louver_policy = RSR_LOUVER_ABSOLUTE;
            o.session.louver_tau = parse_float("--louver-tau", optarg, -3e38f, 3e38f);
            break;
        case O_LBUDGET:
            louver_opt = "--louver-budget", louver_policies++;
            o.session.louver_policy = RSR_LOUVER_BUDGET;
            o.session.louver_budget = parse_float("--louver-budget", optarg, 1e-9f, 1);
            break;
        case O_LBLOCK: louver_opt = "--louver-block", o.session.louver_block = (int32_t)parse_num("--louver-block", optarg, 16, 256); break;
        case O_STATS: o.stats = 1; break;
        case O_MAXMEM: max_memory = optarg; break;
        case O_MLOCK: lock_memory = 1; break;
        case O_DEVICE:
            if (!strcmp(optarg, "auto")) device = RSR_DEVICE_AUTO;
            else if (!strcmp(optarg, "cpu")) device = RSR_DEVICE_CPU;
            else if (!strcmp(optarg, "gpu")) device = RSR_DEVICE_GPU;
            else die("--device: '%s' is not auto, cpu or gpu", optarg);
            break;
        case O_BENCH: do_bench = 1; break;
        case O_INFO: do_info = 1; break;
        case O_NOEOS: o.ignore_eos = 1; break;
        case O_CHAT: do_chat = 1; break;
        case O_TEMPLATE: chat_opt = "--chat-template", o.chat_template = optarg; break;
        case O_SYSTEM: chat_opt = "--system", o.system = optarg; break;
        case O_STOP:
            if (!*optarg) die("--stop: empty text");
            text_opt = "--stop";
            o.stop[o.num_stop++] = optarg;
            break;
        case O_NOECHO: text_opt = "--no-echo", o.echo = 0; break;
        case O_SPECIAL: text_opt = "--special", o.special = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            if (optopt && optopt < 256) die("option '-%c' is unknown or needs a value (see --help)", optopt);
            die("option '%s' is unknown or needs a value (see --help)", argv[optind - 1]);
        }
    }
    o.session.max_positions = o.ctx;
    if (max_memory) limit_memory(max_memory);
    if (optind != argc - 1) {
        usage(stderr);
        die(optind >= argc ? "no MODEL.so given" : "exactly one MODEL.so expected, got '%s' too", argv[optind + 1]);
    }
    int inputs = (o.prompt != NULL) + (prompt_file != NULL) + (tokens_arg != NULL) + do_chat;
    if (inputs > 1) die("give one of -p, -f, --tokens and --chat");
    if (louver_policies > 1) die("give one of --louver-eps, --louver-tau and --louver-budget");
    if (louver_opt && o.session.attention != RSR_ATTENTION_LOUVER) die("%s needs --attention louver", louver_opt);
    if (sampling_opt && !(o.sampler.temperature > 0)) die("%s shapes sampling: it needs --temp above 0", sampling_opt);
    if (chat_opt && !do_chat) die("%s needs --chat", chat_opt);
    if (text_opt && (tokens_arg || do_bench)) die("%s applies to text output, not to --tokens or --bench", text_opt);
    if (logits_path && (!tokens_arg || do_bench)) die("--logits writes the logits of a --tokens prompt (not with --bench)");
    if (o.stats && !tokens_arg) die("--stats prints its figures per step with --tokens");
    if (do_bench && (head_opt || o.sampler.temperature > 0))
        die("--bench decodes greedily and measures both heads: drop %s", head_opt ? "--head" : "--temp");
    o.model_path = argv[optind];
    char err[1024];
    if (rsr_api_load(&api, o.model_path, err, sizeof err) != 0) die("%s", err);

    rsr_model *m;
    o.threads = (int)threads;
    rsr_model_params mp = {.num_threads = (int32_t)threads, .device = device, .lock_memory = lock_memory};
    if (api.model_open(&m, &mp) != RSR_OK) die("%s: %s", o.model_path, api.model_errmsg(m));
    rsr_model_info info;
    api.model_get_info(m, &info);
    if (o.head_int8 && !strncmp(info.device, "gpu", 3))
        die("--head int8: the int8 LM head runs on the CPU, and %s opened on the GPU: add --device cpu", o.model_path);
    if (do_info) {
        print_info(m, &info);
        if (!do_bench && !inputs) {
            api.model_close(m);
            return 0;
        }
    }

    char *owned_prompt = NULL;
    if (prompt_file) {
        FILE *f = fopen(prompt_file, "rb");
        if (!f) die("%s: %s", prompt_file, strerror(errno));
        o.prompt = owned_prompt = read_all(f, prompt_file);
        fclose(f);
    } else if ((o.prompt && strcmp(o.prompt, "-") == 0) || (!inputs && !do_bench && !isatty(0))) {
        o.prompt = owned_prompt = read_all(stdin, "stdin");
    }

    if (do_chat) {
        run_chat(m, require_tokenizer(m, "--chat"), &o);
    } else if (tokens_arg || (!o.prompt && !do_bench && api.model_tokenizer(m, &(rsr_tokenizer *){0}) != RSR_OK)) {
        int32_t n_prompt = 1, *prompt;
        if (tokens_arg) prompt = parse_tokens(tokens_arg, &n_prompt);
        else { /* no text and no tokenizer: ids from BOS */
            prompt = malloc(sizeof *prompt);
            prompt[0] = info.bos_token_id >= 0 ? info.bos_token_id : 0;
        }
        if (do_bench) bench(m, &info, &o, prompt, n_prompt);
        else run_ids(m, &info, &o, prompt, n_prompt, logits_path);
        free(prompt);
    } else if (do_bench && !o.prompt) {
        bench(m, &info, &o, NULL, 0);
    } else if (do_bench) {
        rsr_tokenizer *tok = require_tokenizer(m, "a text prompt");
        int32_t n = 0, cap = (int32_t)strlen(o.prompt) + 16;
        int32_t *ids = malloc(sizeof *ids * (size_t)cap);
        if (api.tokenizer_encode(tok, o.prompt, -1, RSR_ENCODE_ADD_SPECIAL | RSR_ENCODE_PARSE_SPECIAL, ids, cap, &n) != RSR_OK)
            die("%s", api.tokenizer_errmsg(tok));
        if (!n) die("--bench: the prompt has no tokens");
        bench(m, &info, &o, ids, n);
        free(ids);
    } else {
        run_text(m, require_tokenizer(m, "a text prompt"), &o);
    }
    free(owned_prompt);
    free(o.stop);
    api.model_close(m);
    return 0;
}
