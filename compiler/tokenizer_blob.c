/*
 * tokenizer_blob.c — the model's tokenizer.json travels inside the artifact, so that the
 * runtime can turn text into ids with nothing but model.so. It is checked here with the
 * runtime's own tokenizer: a file the runtime could not read fails the compile, not the run.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rsr.h"
#include "rsrc.h"

uint64_t blob_tokenizer(blob_writer *b, const model *m, uint64_t *size) {
    *size = 0;
    char *path = xasprintf("%s/tokenizer.json", m->ar->dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno != ENOENT) fatal("%s: cannot read: %s", path, strerror(errno));
        char *spm = xasprintf("%s/tokenizer.model", m->ar->dir);
        FILE *g = fopen(spm, "rb");
        if (g) {
            fclose(g);
            warn("%s: only tokenizer.json is compiled in; the artifact will take token ids only", spm);
        } else {
            note(1, "no tokenizer.json next to the weights: the artifact will take token ids only");
        }
        free(spm);
        free(path);
        return RSR_NO_TENSOR;
    }
    char *json = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len == cap) json = xrealloc(json, cap = cap ? 2 * cap : 1 << 20);
        n = fread(json + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (ferror(f)) fatal("%s: cannot read: %s", path, strerror(errno));
    fclose(f);

    rsr_tokenizer *t;
    if (rsr_tokenizer_create(json, len, &t) != RSR_OK) {
        const char *msg = rsr_tokenizer_errmsg(t);
        if (strncmp(msg, "tokenizer.json: ", 16) == 0) msg += 16;
        fatal("%s: %s", path, msg);
    }
    rsr_tokenizer_info info;
    rsr_tokenizer_get_info(t, &info);
    if (info.vocab_size > m->vocab)
        fatal("%s: the tokenizer has token ids up to %d, but the model's embedding has only %d rows", path,
              info.vocab_size - 1, m->vocab);
    note(1, "%s: %s, %d tokens (%d added), chat template %s", path, info.kind, info.vocab_size, info.num_added_tokens,
         info.chat_template ? info.chat_template : "none");
    rsr_tokenizer_free(t);

    uint64_t at = blob_align(b, 64);
    blob_write(b, json, len);
    *size = len;
    free(json);
    free(path);
    return at;
}
