/*
 * rsr-ref — the independent reference forward pass on a checkpoint.
 *
 *   rsr-ref MODEL --tokens 1,2,3 [-n N] [--logits FILE] [--kv f32|bf16|f16|q8]
 *
 * Evaluates the prompt, writes the fp32 logits of its last position to FILE (raw little-endian
 * floats, vocab of them), then generates N tokens greedily, stopping after an eos token.
 * stdout: one line, the generated ids separated by single spaces. Errors: stderr, exit 1.
 */
#include "parse_num.h"
#include "ref.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rsr-ref: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static long parse_long(const char *s, const char *what) {
    long v;
    if (!parse_long_in(s, 0, 0x7fffffff, &v)) die("bad %s '%s'", what, s);
    return v;
}

int main(int argc, char **argv) {
    const char *tokens_arg = NULL, *logits_path = NULL, *kv_arg = "f32";
    long ngen = 0;
    static const struct option opts[] = {{"tokens", required_argument, 0, 't'},
                                         {"logits", required_argument, 0, 'l'},
                                         {"kv", required_argument, 0, 'k'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1;) {
        switch (c) {
        case 't': tokens_arg = optarg; break;
        case 'l': logits_path = optarg; break;
        case 'k': kv_arg = optarg; break;
        case 'n': ngen = parse_long(optarg, "-n"); break;
        case 'h': puts("usage: rsr-ref MODEL --tokens 1,2,3 [-n N] [--logits FILE] [--kv f32|bf16|f16|q8]"); return 0;
        default: return 1;
        }
    }
    if (optind != argc - 1 || !tokens_arg)
        die("usage: rsr-ref MODEL --tokens 1,2,3 [-n N] [--logits FILE] [--kv f32|bf16|f16|q8]");

    int n = 0, cap = 16;
    int32_t *toks = malloc(cap * sizeof *toks);
    char *list = strdup(tokens_arg);
    if (!toks || !list) die("out of memory");
    for (char *save = NULL, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (n == cap && !(toks = realloc(toks, (cap *= 2) * sizeof *toks))) die("out of memory");
        toks[n++] = (int32_t)parse_long(p, "token");
    }
    free(list);
    if (!n) die("--tokens names no token");

    char err[1024];
    ref_model *m = ref_load(argv[optind], err, sizeof err);
    if (!m) die("%s", err);
    static const char *const kvs[] = {"f32", "bf16", "f16", "q8"};
    int kv = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(kv_arg, kvs[i])) kv = i;
    if (kv < 0) die("--kv: '%s' is not one of f32, bf16, f16, q8", kv_arg);
    ref_set_kv(m, kv);
    int vocab = ref_vocab_size(m);
    float *logits = malloc((size_t)vocab * sizeof *logits);
    if (!logits) die("out of memory");
    if (ref_forward(m, toks, n, logits)) die("%s", ref_errmsg(m));

    if (logits_path) {
        FILE *f = fopen(logits_path, "wb");
        if (!f) die("%s: %s", logits_path, strerror(errno));
        for (int v = 0; v < vocab; v++) {
            uint32_t u;
            memcpy(&u, &logits[v], 4);
            unsigned char b[4] = {u & 0xff, (u >> 8) & 0xff, (u >> 16) & 0xff, u >> 24};
            if (fwrite(b, 1, 4, f) != 4) die("%s: write failed", logits_path);
        }
        if (fclose(f)) die("%s: write failed", logits_path);
    }

    for (long i = 0; i < ngen; i++) {
        int32_t tok = ref_argmax(logits, vocab);
        printf(i ? " %d" : "%d", (int)tok);
        if (ref_is_eos(m, tok) || i == ngen - 1) break;
        if (ref_forward(m, &tok, 1, logits)) {
            putchar('\n');
            die("%s", ref_errmsg(m));
        }
    }
    putchar('\n');
    free(logits), free(toks);
    ref_free(m);
    return 0;
}
