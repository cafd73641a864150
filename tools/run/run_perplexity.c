/*
 * run_perplexity.c — rsr-run --perplexity FILE: the model's perplexity on a text, by the method of
 * llama.cpp's llama-perplexity, so that the two can be read side by side. The text is tokenized
 * once (with BOS); it is cut into chunks of --ctx tokens (default 512, the model's context when
 * smaller), at most --chunks of them; each chunk is evaluated from an empty context with its first
 * token replaced by BOS, and the second half of its positions is scored: the negative log of the
 * probability each gives the token that follows, from the exact logits (rsr_session_eval_all),
 * summed in double. After each chunk the perplexity so far, "[k]PPL,"; at the end the estimate and
 * its uncertainty (the standard error of the mean negative log-likelihood, carried through exp).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode_all.h"
#include "rsr-run.h"

enum { PERPLEXITY_MAX_BYTES = 256 << 20 }; /* about 64 M tokens: hours of scoring on a CPU */

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die("--perplexity %s: %s", path, strerror(errno));
    char *text = NULL;
    size_t cap = 0, got;
    *len = 0;
    do { /* checked as it comes: /dev/zero or a device that never ends is refused at once, not read into memory */
        if (*len + 1 >= cap && !(text = realloc(text, cap = cap ? 2 * cap : 1 << 16))) die("out of memory");
        got = fread(text + *len, 1, cap - *len - 1, f);
        if (memchr(text + *len, 0, got)) die("--perplexity %s: the file holds a NUL byte: it is not text", path);
        *len += got;
        if (*len > PERPLEXITY_MAX_BYTES)
            die("--perplexity %s: more than %d MiB of text (wiki.test.raw is 1.3 MB); give a part of it", path,
                PERPLEXITY_MAX_BYTES >> 20);
    } while (got > 0);
    if (ferror(f)) die("--perplexity %s: cannot read it", path);
    fclose(f);
    text[*len] = 0;
    return text;
}

/* -log p(next) under logits (vocab floats), in double: log-sum-exp about the largest. */
static double nll_of(const float *logits, int32_t vocab, int32_t next) {
    float top = logits[0];
    for (int32_t v = 1; v < vocab; v++) top = logits[v] > top ? logits[v] : top;
    double sum = 0;
    for (int32_t v = 0; v < vocab; v++) sum += exp((double)logits[v] - top);
    return log(sum) + top - (double)logits[next];
}

void run_perplexity(rsr_model *m, const rsr_model_info *info, const run_options *o, const char *path, long chunks) {
    rsr_tokenizer *tok = require_tokenizer(m, "--perplexity");
    size_t len;
    char *text = read_text(path, &len);
    int32_t n = 0;
    rsr_status st;
    int32_t *ids = encode_all(&api, tok, text, (ptrdiff_t)len, RSR_ENCODE_ADD_SPECIAL, &n, &st);
    if (!ids)
        die("--perplexity %s: %s", path,
            st == RSR_ERR_OUT_OF_MEMORY ? "out of memory for its tokens" : api.tokenizer_errmsg(tok));
    free(text);
    const int32_t ctx = o->ctx ? o->ctx : info->max_positions < 512 ? info->max_positions : 512;
    if (ctx < 4) die("--perplexity: --ctx %d leaves nothing to score (at least 4)", ctx);
    long count = n / ctx;
    if (chunks > 0 && chunks < count) count = chunks;
    if (count < 1)
        die("--perplexity %s: %d tokens, fewer than one chunk of %d (--ctx): give a longer text or a smaller --ctx",
            path, n, ctx);
    fprintf(stderr,
            "rsr-run: perplexity over %ld chunk%s of %d tokens (%d tokens in %s), the second half of each scored\n",
            count, count == 1 ? "" : "s", ctx, n, path);
    rsr_session_params sp = o->session;
    sp.max_positions = ctx;
    rsr_session *s;
    if (api.session_create(m, &sp, &s) != RSR_OK) die("%s", api.model_errmsg(m));
    float *logits = malloc(sizeof *logits * (size_t)ctx * (size_t)info->vocab_size);
    int32_t *chunk = malloc(sizeof *chunk * (size_t)ctx);
    if (!logits || !chunk) die("out of memory for the logits of a chunk of %d tokens", ctx);
    double sum = 0, sum_sq = 0, t0 = now();
    long scored = 0;
    for (long c = 0; c < count; c++) {
        memcpy(chunk, ids + c * ctx, sizeof *chunk * (size_t)ctx);
        if (info->bos_token_id >= 0) chunk[0] = info->bos_token_id;
        check(api.session_reset(s), s);
        check(api.session_eval_all(s, chunk, ctx, logits), s);
        for (int32_t j = ctx / 2; j < ctx - 1; j++) {
            double nll = nll_of(logits + (size_t)j * (size_t)info->vocab_size, info->vocab_size, chunk[j + 1]);
            sum += nll, sum_sq += nll * nll, scored++;
        }
        printf("[%ld]%.4f,", c + 1, exp(sum / (double)scored));
        flush_stdout();
    }
    double mean = sum / (double)scored, var = sum_sq / (double)scored - mean * mean;
    double err = scored > 1 && var > 0 ? sqrt(var / (double)(scored - 1)) : 0;
    printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", exp(mean), exp(mean) * err);
    flush_stdout();
    fprintf(stderr, "rsr-run: %ld tokens scored in %.2f s\n", scored, now() - t0);
    api.session_free(s);
    free(logits), free(chunk), free(ids);
}
