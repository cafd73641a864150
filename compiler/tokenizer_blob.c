/*
 * tokenizer_blob.c — the model's tokenizer travels inside the artifact, so that the runtime can
 * turn text into ids with nothing but model.so. It is tokenizer.json when the checkpoint has
 * one, else SentencePiece's tokenizer.model (the ModelProto, as 1bitLLM and other Llama-2-family
 * checkpoints ship it); the file's bytes are embedded as they are and the runtime tells the two
 * apart (rsr_tokenizer_create). It is checked here with the runtime's own tokenizer: a file the
 * runtime could not read fails the compile, not the run.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rsr.h"
#include "rsrc.h"

/* The file's bytes, or NULL when it does not exist. */
static char *read_whole(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno != ENOENT) fatal("%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    char *data = NULL;
    size_t cap = 0, n;
    *len = 0;
    do {
        if (*len == cap) data = xrealloc(data, cap = cap ? 2 * cap : 1 << 20);
        n = fread(data + *len, 1, cap - *len, f);
        *len += n;
    } while (n > 0);
    if (ferror(f)) fatal("%s: cannot read: %s", path, strerror(errno));
    fclose(f);
    return data;
}

uint64_t blob_tokenizer(blob_writer *b, const model *m, uint64_t *size, char **what) {
    *size = 0;
    *what = NULL;
    const char *name = "tokenizer.json";
    char *path = xasprintf("%s/%s", m->ar->dir, name);
    size_t len;
    char *data = NULL;
    if (m->tokenizer) { /* a GGUF's own, as tokenizer.json text or a tokenizer.model (gguf_model.c) */
        free(path);
        path = xasprintf("%s (tokenizer.ggml.*)", m->ar->path);
        len = m->tokenizer_len, data = xmalloc(len + 1);
        memcpy(data, m->tokenizer, len), data[len] = 0;
    } else {
        data = read_whole(path, &len);
    }
    if (!data) {
        free(path);
        name = "tokenizer.model";
        path = xasprintf("%s/%s", m->ar->dir, name);
        data = read_whole(path, &len);
        if (!data) {
            warn("%s: no tokenizer (tokenizer.json or tokenizer.model beside the weights, or a GGUF's "
                 "tokenizer.ggml.*): the model will take token ids only (rsr-run --tokens); put the "
                 "checkpoint's tokenizer there and compile again for text",
                 m->ar->dir);
            free(path);
            return RSR_NO_TENSOR;
        }
        /* The runtime reads JSON when the text begins with '{' and a ModelProto when it begins
         * with its pieces (field 1), as every SentencePiece writer puts them first. */
        size_t i = 0;
        while (i < len && strchr(" \t\r\n", data[i]) && data[i]) i++;
        if (len == 0 || data[0] != 0x0A || (i < len && data[i] == '{'))
            fatal("%s: not a SentencePiece model: it does not begin with a piece (field 1, byte 0x0a)%s", path,
                  len ? "" : "; the file is empty");
    }

    rsr_tokenizer *t;
    if (rsr_tokenizer_create(data, len, &t) != RSR_OK) {
        const char *msg = rsr_tokenizer_errmsg(t);
        size_t n = strlen(name);
        if (strncmp(msg, name, n) == 0 && strncmp(msg + n, ": ", 2) == 0) msg += n + 2;
        fatal("%s: %s", path, msg);
    }
    rsr_tokenizer_info info;
    rsr_tokenizer_get_info(t, &info);
    if (info.vocab_size > m->vocab)
        fatal("%s: the tokenizer has token ids up to %d, but the model's embedding has only %d rows", path,
              info.vocab_size - 1, m->vocab);
    note(1, "tokenizer: %s: %s, %d tokens (%d added), chat template %s", path, info.kind, info.vocab_size,
         info.num_added_tokens, info.chat_template ? info.chat_template : "none");
    if (strcmp(name, "tokenizer.json") == 0 && !m->tokenizer) {
        char *spm = xasprintf("%s/tokenizer.model", m->ar->dir);
        FILE *g = fopen(spm, "rb");
        if (g) {
            fclose(g);
            note(1, "tokenizer: %s is there too; tokenizer.json is the one used", spm);
        }
        free(spm);
    }
    *what = xasprintf("%s (%s, %d tokens)", m->tokenizer ? "tokenizer.ggml.*" : name, info.kind, info.vocab_size);
    rsr_tokenizer_free(t);

    uint64_t at = blob_align(b, 64);
    blob_write(b, data, len);
    *size = len;
    free(data);
    free(path);
    return at;
}
