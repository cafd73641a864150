/*
 * test_chat.c — rsrc's chat templates (written in C, runtime/tokenizer/chat.c) against the models' Jinja
 * templates rendered by @huggingface/jinja: the same text, byte for byte, for every conversation
 * of chat_templates.json with and without a generation prompt; and an error wherever the Jinja
 * template raises one.
 *
 * Usage: test_chat CHAT_REFERENCE.json (written by chat.mjs, run by fetch.sh). Exits 77 (skipped)
 * when the reference could not be fetched.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rsr.h"
#include "read_file.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_chat CHAT_REFERENCE.json\n");
        return 2;
    }
    size_t len;
    char *text = read_file(argv[1], &len);
    if (!text) {
        printf("%s is missing (the reference could not be fetched): skipped\n", argv[1]);
        return 77;
    }
    cJSON *ref = cJSON_ParseWithLength(text, len);
    if (!ref) {
        fprintf(stderr, "%s: not JSON\n", argv[1]);
        return 1;
    }
    const cJSON *conversations = cJSON_GetObjectItem(ref, "conversations");
    int failures = 0, total = 0;
    for (const cJSON *tp = cJSON_GetObjectItem(ref, "templates")->child; tp; tp = tp->next) {
        const char *name = cJSON_GetObjectItem(tp, "name")->valuestring;
        const char *c_name = cJSON_GetObjectItem(tp, "c_template")->valuestring;
        const char *path = cJSON_GetObjectItem(tp, "tokenizer")->valuestring;
        size_t tlen;
        char *data = read_file(path, &tlen);
        rsr_tokenizer *t;
        if (!data || rsr_tokenizer_create(data, tlen, &t) != RSR_OK) {
            fprintf(stderr, "FAIL %s: cannot load the tokenizer %s\n", name, path);
            free(data);
            failures++;
            continue;
        }
        free(data);
        int same = 0, cases = 0;
        for (const cJSON *c = cJSON_GetObjectItem(tp, "cases")->child; c; c = c->next, cases++, total++) {
            int index = cJSON_GetObjectItem(c, "conversation")->valueint;
            int gen = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
            const cJSON *conv = cJSON_GetArrayItem(conversations, index), *want_hex = cJSON_GetObjectItem(c, "text");
            rsr_chat_message msgs[16];
            int32_t n = 0;
            for (const cJSON *m = conv->child; m && n < 16; m = m->next, n++)
                msgs[n] = (rsr_chat_message){cJSON_GetObjectItem(m, "role")->valuestring,
                                             cJSON_GetObjectItem(m, "content")->valuestring};
            char out[4096];
            size_t olen = 0;
            rsr_status st = rsr_tokenizer_apply_chat_template(t, c_name, msgs, n, gen, out, sizeof out, &olen);
            if (!cJSON_IsString(want_hex)) { /* the Jinja template raised an error */
                if (st == RSR_ERR_INVALID_ARGUMENT)
                    same++;
                else
                    fprintf(stderr, "FAIL %s conversation %d%s: the template refuses it, rsrc gives status %d\n", name,
                            index, gen ? " +prompt" : "", st),
                        failures++;
                continue;
            }
            size_t wlen;
            char *want = unhex(want_hex->valuestring, &wlen);
            if (st == RSR_OK && olen == wlen && memcmp(out, want, wlen) == 0) {
                same++;
            } else {
                fprintf(stderr, "FAIL %s conversation %d%s: status %d (%s)\n  rsrc:  '", name, index,
                        gen ? " +prompt" : "", st, st == RSR_OK ? "ok" : rsr_tokenizer_errmsg(t));
                show(out, st == RSR_OK ? olen : 0);
                fputs("'\n  jinja: '", stderr);
                show(want, wlen);
                fputs("'\n", stderr);
                failures++;
            }
            free(want);
        }
        printf("%s (rsrc's '%s'): %d/%d renderings identical to the Jinja template\n", name, c_name, same, cases);
        rsr_tokenizer_free(t);
    }
    printf("%d passed, %d failed\n", total - failures, failures);
    cJSON_Delete(ref);
    free(text);
    return failures ? 1 : 0;
}
