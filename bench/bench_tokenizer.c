/*
 * bench_tokenizer.c — how fast the runtime's tokenizer reads its tokenizer.json and encodes text.
 * Usage: bench_tokenizer TOKENIZER.json TEXT_FILE [REPEAT]
 * Prints the load time, then encode and decode throughput over the file (repeated REPEAT
 * times, default 20, as one text per repetition). bench/tokenizer.sh runs it beside the
 * reference implementation and prints the ratio.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rsr.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) buf = NULL;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER.json TEXT_FILE [REPEAT]\n");
        return 2;
    }
    int repeat = argc > 3 ? atoi(argv[3]) : 20;
    size_t jlen, tlen;
    char *json = slurp(argv[1], &jlen), *text = slurp(argv[2], &tlen);
    if (!json || !text) {
        fprintf(stderr, "cannot read %s or %s\n", argv[1], argv[2]);
        return 1;
    }
    double t0 = now();
    rsr_tokenizer *t;
    if (rsr_tokenizer_create(json, jlen, &t) != RSR_OK) {
        fprintf(stderr, "%s\n", rsr_tokenizer_errmsg(t));
        return 1;
    }
    double t1 = now();
    int32_t cap = (int32_t)tlen + 16, n = 0;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    char *out = malloc(4 * tlen + 16);
    long tokens = 0;
    double t2 = now();
    for (int r = 0; r < repeat; r++) {
        if (rsr_tokenizer_encode(t, text, (ptrdiff_t)tlen, RSR_ENCODE_PARSE_SPECIAL, ids, cap, &n) != RSR_OK) {
            fprintf(stderr, "%s\n", rsr_tokenizer_errmsg(t));
            return 1;
        }
        tokens += n;
    }
    double t3 = now();
    size_t len;
    for (int r = 0; r < repeat; r++) rsr_tokenizer_decode(t, ids, n, 0, out, 4 * tlen + 16, &len);
    double t4 = now();
    printf("load %.1f ms\n", 1e3 * (t1 - t0));
    printf("encode %.2f MB/s %.0f tokens/s (%d tokens per text)\n", (double)tlen * repeat / (t3 - t2) / 1e6,
           (double)tokens / (t3 - t2), n);
    printf("decode %.2f MB/s\n", (double)tlen * repeat / (t4 - t3) / 1e6);
    rsr_tokenizer_free(t);
    free(ids), free(out), free(json), free(text);
    return 0;
}
