/*
 * manifest.c — the record of a compile that travels inside the artifact: rsr_model_manifest()
 * returns it and `rsr-run model.so --info` prints it. One "key value" line each, in a fixed
 * order, with nothing that depends on where or when the compile ran (no paths beyond the
 * source's own name, no time), so that identical inputs and flags give identical artifacts.
 */
#include <stdlib.h>
#include <string.h>

#include "rsrc.h"

typedef struct text {
    char *s;
    size_t len, cap;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->s = xrealloc(t->s, t->cap);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

char *manifest_text(const artifact_desc *d, const char *source, const char *backend, const char *flags) {
    const rsrc_model *m = d->m;
    const rsrc_target *tg = d->t;
    text t = {0};
    /* The source as named, less its directories: the same checkpoint gives the same artifact
     * wherever it lies. */
    size_t len = strlen(source);
    while (len > 1 && source[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && source[start - 1] != '/') start--;
    add(&t, "compiler rsrc %s\n", RSRC_VERSION);
    add(&t, "source %.*s (%s, %s)\n", (int)(len - start), source + start, m->architecture, m->format_name);
    add(&t, "target %s%s%s", tg->name, tg->gpu ? "," : "", tg->gpu ? tg->gpu->name : "");
    if (tg->triple) add(&t, ", %s", tg->triple);
    if (tg->cpu) add(&t, ", cpu %s", tg->cpu);
    if (tg->cpu_model) add(&t, " (%s)", tg->cpu_model);
    if (tg->nfeatures || tg->ndisabled) {
        add(&t, ", features");
        for (int i = 0; i < tg->nfeatures; i++) add(&t, "%s+%s", i ? "," : " ", tg->features[i]);
        for (int i = 0; i < tg->ndisabled; i++) add(&t, "%s-%s", i || tg->nfeatures ? "," : " ", tg->disabled[i]);
    }
    add(&t, "\nbackend %s\n", backend);
    add(&t, "flags %s\n", *flags ? flags : "(none)");
    if (d->name) add(&t, "name %s\n", d->name);
    if (d->tokenizer) add(&t, "tokenizer %s\n", d->tokenizer);
    if (m->fold_block) /* PrismML's Hadamard fold: what the runtime rotates */
        add(&t, "fold hadamard blocks of %d, %s signs, %d matrices%s%s\n", m->fold_block,
            m->fold_signs ? "explicit" : "identity", m->nfolded, m->fold_embed ? ", the embedding" : "",
            m->fold_lm_head ? ", the head" : "");
    if (m->mtp) /* qwen35's multi-token prediction (draft-mtp) */
        add(&t, "mtp layer %d (attention, eh_proj, enorm, hnorm)\n", m->num_layers - 1);
    static const char *const tables[] = {"f32",         "f16",          "bf16",         "Q1_0 blocks",
                                         "Q2_0 blocks", "PQ2_0 blocks", "PTQ1_0 blocks"};
    add(&t, "embedding %s%s\n", tables[d->embed_dtype], m->tied ? ", the head tied" : "");
    if (!m->tied) add(&t, "head %s\n", tables[d->lm_head_dtype]);
    for (int32_t i = 0; i < d->num_matrices; i++) {
        const matrix_record *r = &d->mats[i];
        add(&t, "matrix %s %dx%d %s k=%d\n", r->name, r->rows, r->cols, r->strategy, r->block_rows);
    }
    return t.s;
}
