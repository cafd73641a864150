/*
 * kv_capture — runs a compiled model for N tokens and saves one layer's KV cache and the queries
 * of chosen positions, for bench_attention --kv (the key set "model": keys and queries from a
 * real run rather than a generator).
 *
 * Usage: kv_capture MODEL.so OUT.kv [--tokens N] [--at N1,N2,...] [--layer L] [--temp T]
 *                   [--seed S] [--threads T]
 *
 * From token 1 (BOS in rsr-mkmodel's models) the model samples its own continuation (temperature
 * T, default 1; the session attends densely); after n tokens for each n in --at (default: N) the
 * queries of position n − 1 at layer L (default: the last) are kept; at the end the keys and
 * values of positions [0, N) of every KV head of layer L. The file (native byte order):
 *     char magic[8] = "RSRKV01\n"
 *     int32 n, kv_heads, heads, head_dim, layer, count
 *     int32 at[count]
 *     float K[n][kv_heads][head_dim], V[n][kv_heads][head_dim]   (keys after RoPE)
 *     float q[count][heads][head_dim]                            (after RoPE)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rsr_dl.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what, const char *msg) {
    fprintf(stderr, "kv_capture: %s: %s\n", what, msg);
    return 1;
}

int main(int argc, char **argv) {
    int32_t n = 4096, layer = -1, threads = 1, at[64], nat = 0;
    double temp = 1.0;
    uint64_t seed = 1;
    static const struct option opts[] = {{"tokens", 1, 0, 'n'}, {"at", 1, 0, 'a'},   {"layer", 1, 0, 'l'},
                                         {"temp", 1, 0, 'T'},   {"seed", 1, 0, 's'}, {"threads", 1, 0, 't'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': n = atoi(optarg); break;
        case 'a':
            for (const char *p = optarg; *p && nat < 64;) {
                at[nat++] = (int32_t)strtol(p, (char **)&p, 10);
                if (*p == ',') p++;
            }
            break;
        case 'l': layer = atoi(optarg); break;
        case 'T': temp = atof(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 't': threads = atoi(optarg); break;
        default: fprintf(stderr, "see the comment at the top of bench/kv_capture.c\n"); return 2;
        }
    }
    if (argc - optind != 2 || n < 1 || threads < 1) {
        fprintf(stderr, "usage: kv_capture MODEL.so OUT.kv [--tokens N] [--at N1,N2,...] [--layer L] [--temp T] "
                        "[--seed S] [--threads T]\n");
        return 2;
    }
    if (!nat) at[nat++] = n;
    for (int32_t i = 0; i < nat; i++)
        if (at[i] < 1 || at[i] > n || (i && at[i] <= at[i - 1])) {
            fprintf(stderr, "kv_capture: --at must list increasing lengths in [1, %d]\n", n);
            return 2;
        }
    rsr_api api;
    char err[512];
    if (rsr_api_load(&api, argv[optind], err, sizeof err) != 0) return fail(argv[optind], err);
    rsr_model *m = NULL;
    rsr_model_params mp = {.num_threads = threads, .device = RSR_DEVICE_CPU};
    if (api.model_open(&m, &mp) != RSR_OK) return fail(argv[optind], api.model_errmsg(m));
    rsr_model_info info;
    api.model_get_info(m, &info);
    if (layer < 0) layer = info.num_layers - 1;
    if (layer >= info.num_layers || n > info.max_positions) {
        fprintf(stderr, "kv_capture: layer %d or %d tokens out of range (the model has %d layers, %d positions)\n",
                layer, n, info.num_layers, info.max_positions);
        return 2;
    }
    rsr_session_params sp = {.max_positions = n, .attention = RSR_ATTENTION_DENSE};
    rsr_session *s = NULL;
    if (api.session_create(m, &sp, &s) != RSR_OK) return fail("session", api.model_errmsg(m));
    const size_t d = (size_t)info.head_dim, kvh = (size_t)info.num_kv_heads, qn = (size_t)info.num_heads * d;
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size),
          *probs = malloc(sizeof(float) * (size_t)info.vocab_size);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)info.vocab_size);
    float *q = malloc(sizeof(float) * qn * (size_t)nat), *row = malloc(sizeof(float) * (size_t)n * d);
    float *K = malloc(sizeof(float) * (size_t)n * kvh * d), *V = malloc(sizeof(float) * (size_t)n * kvh * d);
    if (!logits || !probs || !ids || !q || !row || !K || !V) return fail("memory", "out of memory");
    rsr_sampler_params smp = {.temperature = (float)temp, .top_k = 0, .top_p = 1};
    uint64_t rng = seed;
    int32_t tok = 1, next_at = 0;
    double t0 = now();
    for (int32_t p = 0; p < n; p++) {
        if (api.session_eval(s, &tok, 1, logits) != RSR_OK) return fail("eval", api.session_errmsg(s));
        if (p + 1 == at[next_at]) {
            if (api.session_last_query(s, layer, q + (size_t)next_at * qn) != RSR_OK)
                return fail("query", api.session_errmsg(s));
            fprintf(stderr, "kv_capture: %d tokens, %.1f s\n", p + 1, now() - t0);
            next_at++;
        }
        tok = api.sample(logits, info.vocab_size, &smp, &rng, probs, ids);
    }
    for (size_t h = 0; h < kvh; h++) {
        for (int pass = 0; pass < 2; pass++) {
            if (api.session_kv_read(s, layer, (int32_t)h, 0, n, pass ? NULL : row, pass ? row : NULL) != RSR_OK)
                return fail("kv_read", api.session_errmsg(s));
            float *dst = pass ? V : K;
            for (int32_t j = 0; j < n; j++)
                memcpy(dst + ((size_t)j * kvh + h) * d, row + (size_t)j * d, sizeof(float) * d);
        }
    }
    FILE *f = fopen(argv[optind + 1], "wb");
    if (!f) return fail(argv[optind + 1], "cannot create");
    int32_t hdr[6] = {n, (int32_t)kvh, info.num_heads, info.head_dim, layer, nat};
    int ok = fwrite("RSRKV01\n", 1, 8, f) == 8 && fwrite(hdr, sizeof hdr, 1, f) == 1 &&
             fwrite(at, sizeof(int32_t), (size_t)nat, f) == (size_t)nat &&
             fwrite(K, sizeof(float) * kvh * d, (size_t)n, f) == (size_t)n &&
             fwrite(V, sizeof(float) * kvh * d, (size_t)n, f) == (size_t)n &&
             fwrite(q, sizeof(float) * qn, (size_t)nat, f) == (size_t)nat;
    if (fclose(f) != 0 || !ok) return fail(argv[optind + 1], "write failed");
    fprintf(stderr, "kv_capture: wrote layer %d of %d tokens (%d KV heads, %d query heads, head_dim %d) in %.1f s\n",
            layer, n, (int)kvh, info.num_heads, info.head_dim, now() - t0);
    api.session_free(s);
    api.model_close(m);
    free(logits), free(probs), free(ids), free(q), free(row), free(K), free(V);
    return 0;
}
