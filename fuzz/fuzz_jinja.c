/*
 * fuzz_jinja.c — the chat templates' Jinja subset (runtime/tokenizer/jinja*.c) on arbitrary
 * templates: a model's tokenizer_config.json or GGUF is untrusted input, and rsr-run and rsr-serve
 * take --chat-template-file. The first byte picks the conversation (how many of four messages,
 * and the generation prompt; bit 3: instead, a JSON context with tools, tool calls and a tool
 * answer, as rsr-serve renders a chat with tools); the rest is the template. Parsing either gives a template or a
 * message; rendering gives text within the output limit, a raise_exception message, or an error
 * message; nothing crashes, leaks or runs away (the step and memory limits).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jinja.h"

static const char context_json[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Add 2 and 3\"},"
    "{\"role\":\"assistant\",\"content\":\"\",\"reasoning_content\":\"sum\",\"tool_calls\":[{\"id\":\"c1\","
    "\"type\":\"function\",\"function\":{\"name\":\"add\",\"arguments\":{\"a\":2,\"b\":3.5,\"l\":[null,true]}}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"5\"}],\"tools\":[{\"type\":\"function\",\"function\":"
    "{\"name\":\"add\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}}}],"
    "\"add_generation_prompt\":true,\"enable_thinking\":false}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const jinja_message conv[] = {{"system", "Be brief."},
                                         {"user", " Hi <b>\xc3\xa9\xf0\x9f\x98\x80 "},
                                         {"assistant", "<think>x</think>Hello"},
                                         {"user", ""}};
    int n = data[0] % 5, gen = data[0] >> 7;
    char err[256] = "";
    jinja_template *t = jinja_parse((const char *)data + 1, size - 1, err, sizeof err);
    if (!t) {
        assert(err[0]); /* a refusal says why */
        return 0;
    }
    char *out = NULL;
    size_t len = 0;
    err[0] = 0;
    int r;
    if (data[0] & 8) {
        static cJSON *context;
        if (!context) context = cJSON_Parse(context_json);
        r = jinja_render_context(t, context, "<s>", "</s>", &out, &len, err, sizeof err);
    } else {
        r = jinja_render(t, conv, n, gen, "<s>", "</s>", &out, &len, err, sizeof err);
    }
    assert(r == 0 || r == 1 || r == -1);
    if (r == 0) {
        assert(out && out[len] == 0 && len <= ((size_t)64 << 20));
        free(out);
    } else {
        assert(!out && err[0]);
    }
    jinja_free(t);
    return 0;
}
