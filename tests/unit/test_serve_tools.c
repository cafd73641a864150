/*
 * test_serve_tools — a chat reply's parts (tools/serve/serve_tools.c): tool calls parsed from each
 * model format into OpenAI's tool_calls (the arguments as the model wrote them), the text before
 * them, thoughts split off at </think>; a reply split as it grows holds back a tail that may still
 * become a marker and never takes back what it gave; the tools' grammar takes the format's calls
 * whole and turns away a wrong name, a missing marker or arguments outside the schema; the
 * format read off a template's rendering.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "expect.h"
#include "serve.h"
#include "serve_gbnf.h"

static const char tools_json[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"city\":{\"type\":\"string\"},\"unit\":{\"enum\":[\"c\",\"f\"]}},\"required\":[\"city\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"add\",\"parameters\":{\"type\":\"object\",\"properties\":"
    "{\"a\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":99},\"b\":{\"type\":\"integer\"}},\"required\":[\"a\","
    "\"b\"]}}}]";

static serve_reply_shape shape(int format, bool reasoning, bool tools) {
    serve_reply_shape s = {.reasoning = reasoning, .tools = tools, .format = format};
    return s;
}

/* The reply's calls as "name(arguments);..." and its text. */
static void split(const serve_reply_shape *sh, const char *text, char *calls, size_t cap, char *content, size_t ccap) {
    serve_reply_parts p;
    serve_split_reply(sh, text, strlen(text), true, "x", &p);
    calls[0] = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, p.tool_calls) {
        const cJSON *f = cJSON_GetObjectItem(c, "function");
        size_t n = strlen(calls);
        snprintf(calls + n, cap - n, "%s(%s);", cJSON_GetStringValue(cJSON_GetObjectItem(f, "name")),
                 cJSON_GetStringValue(cJSON_GetObjectItem(f, "arguments")));
    }
    snprintf(content, ccap, "%.*s", (int)p.n_content, p.content ? p.content : "");
    serve_reply_parts_free(&p);
}

static void test_formats(void) {
    char calls[512], content[256];
    serve_reply_shape h = shape(SERVE_TOOL_HERMES, false, true);
    split(&h,
          "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
          "<tool_call>\n{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":123456789012345678}}\n</tool_call>",
          calls, sizeof calls, content, sizeof content);
    EXPECT(!strcmp(calls, "get_weather({\"city\": \"Paris\"});add({\"a\":1,\"b\":123456789012345678});"), "hermes: %s",
           calls);
    EXPECT(!strcmp(content, "Let me look.\n"), "hermes text: '%s'", content);

    serve_reply_shape l = shape(SERVE_TOOL_LLAMA3, false, true);
    split(&l, " {\"name\": \"add\", \"parameters\": {\"a\": 2, \"b\": 3}}", calls, sizeof calls, content,
          sizeof content);
    EXPECT(!strcmp(calls, "add({\"a\": 2, \"b\": 3});") && !*content, "llama3: %s / '%s'", calls, content);
    split(&l, "The answer is {not json", calls, sizeof calls, content, sizeof content);
    EXPECT(!*calls && !strcmp(content, "The answer is {not json"), "llama3 text: %s / '%s'", calls, content);
    split(&l, "{\"no\": \"call\"}", calls, sizeof calls, content, sizeof content);
    EXPECT(!*calls && !strcmp(content, "{\"no\": \"call\"}"), "llama3 JSON that is no call stays text: '%s'", content);

    serve_reply_shape m = shape(SERVE_TOOL_MISTRAL, false, true);
    split(&m,
          "[{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}, \"id\": \"abcdefghi\"}, {\"name\": "
          "\"get_weather\", \"arguments\": {\"city\": \"Rome\"}}]",
          calls, sizeof calls, content, sizeof content);
    EXPECT(!strcmp(calls, "add({\"a\": 1, \"b\": 2});get_weather({\"city\": \"Rome\"});"), "mistral: %s", calls);

    serve_reply_shape g = shape(SERVE_TOOL_GENERIC, false, true);
    split(&g, "{\"tool_calls\": [{\"name\": \"add\", \"arguments\": {\"a\": 7, \"b\": 8}}]}", calls, sizeof calls,
          content, sizeof content);
    EXPECT(!strcmp(calls, "add({\"a\": 7, \"b\": 8});"), "generic: %s", calls);
    split(&g, "{\"response\": \"It is sunny.\"}", calls, sizeof calls, content, sizeof content);
    EXPECT(!*calls && !strcmp(content, "It is sunny."), "generic response: '%s'", content);

    serve_reply_shape none = shape(SERVE_TOOL_HERMES, false, false); /* no tools offered: all text */
    split(&none, "<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call>", calls, sizeof calls, content,
          sizeof content);
    EXPECT(!*calls && strstr(content, "<tool_call>"), "without tools the markers are text");
}

static void test_reasoning(void) {
    char calls[256], content[256];
    serve_reply_shape r = shape(SERVE_TOOL_HERMES, true, false);
    serve_reply_parts p;
    const char *t = "<think>\nThe user greets.\n</think>\n\nHello!";
    serve_split_reply(&r, t, strlen(t), true, "x", &p);
    EXPECT(p.n_reasoning == strlen("\nThe user greets.\n") &&
               !memcmp(p.reasoning, "\nThe user greets.\n", p.n_reasoning),
           "reasoning: '%.*s'", (int)p.n_reasoning, p.reasoning);
    EXPECT(p.n_content == 6 && !memcmp(p.content, "Hello!", 6), "content after thoughts: '%.*s'", (int)p.n_content,
           p.content);
    serve_reply_parts_free(&p);
    r.think_open = true; /* the prompt opened <think>: the reply begins inside */
    t = "Thinking.</think>Done.";
    serve_split_reply(&r, t, strlen(t), true, "x", &p);
    EXPECT(p.n_reasoning == 9 && p.n_content == 5, "think_open: %zu %zu", p.n_reasoning, p.n_content);
    serve_reply_parts_free(&p);
    r.think_open = false;
    split(&r, "No thoughts here.", calls, sizeof calls, content, sizeof content);
    EXPECT(!strcmp(content, "No thoughts here."), "a reply without <think> is text: '%s'", content);
    serve_reply_shape rt = shape(SERVE_TOOL_HERMES, true, true); /* thoughts, then a call */
    split(&rt,
          "<think>I should add.</think>\n<tool_call>\n{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}}\n</tool_call>",
          calls, sizeof calls, content, sizeof content);
    EXPECT(!strcmp(calls, "add({\"a\":1,\"b\":2});") && !*content, "thoughts then a call: %s / '%s'", calls, content);
}

/* Split prefix by prefix as a stream would: what is given is never taken back, the held tail never
 * shows a marker's beginning, and the end gives the whole split. */
static void test_growing(void) {
    const char *t = "<think>Plan: call.</think>Sure. <tool_call>\n{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}}\n"
                    "</tool_call>";
    serve_reply_shape sh = shape(SERVE_TOOL_HERMES, true, true);
    size_t n = strlen(t), sent_r = 0, sent_c = 0;
    char given_r[128] = "", given_c[128] = "";
    for (size_t k = 0; k <= n; k++) {
        serve_reply_parts p;
        serve_split_reply(&sh, t, k, k == n, "x", &p);
        EXPECT(p.n_reasoning >= sent_r && p.n_content >= sent_c, "at %zu the split took back text", k);
        EXPECT(!p.n_reasoning || !memchr(p.reasoning, '<', p.n_reasoning), "at %zu thoughts show a tag: '%.*s'", k,
               (int)p.n_reasoning, p.reasoning);
        EXPECT(!p.n_content || !memchr(p.content, '<', p.n_content), "at %zu the text shows a marker: '%.*s'", k,
               (int)p.n_content, p.content);
        if (p.n_reasoning > sent_r)
            strncat(given_r, p.reasoning + sent_r, p.n_reasoning - sent_r), sent_r = p.n_reasoning;
        if (p.n_content > sent_c) strncat(given_c, p.content + sent_c, p.n_content - sent_c), sent_c = p.n_content;
        if (k == n)
            EXPECT(cJSON_GetArraySize(p.tool_calls) == 1, "the end parses the call");
        else
            EXPECT(!p.tool_calls, "calls come at the end");
        serve_reply_parts_free(&p);
    }
    EXPECT(!strcmp(given_r, "Plan: call."), "thoughts streamed: '%s'", given_r);
    EXPECT(!strcmp(given_c, "Sure. "), "text streamed: '%s'", given_c);
}

static bool takes(const gbnf_grammar *g, const char *s) {
    gbnf_state *st = gbnf_state_new(g);
    bool ok = gbnf_state_feed(st, s, strlen(s)) && gbnf_state_done(st);
    gbnf_state_free(st);
    return ok;
}

static void test_grammar(void) {
    cJSON *tools = cJSON_Parse(tools_json);
    char err[512];
    char *text = serve_tool_gbnf(SERVE_TOOL_HERMES, tools, NULL, true, true, err, sizeof err);
    EXPECT(text, "hermes grammar: %s", err);
    gbnf_grammar *g = text ? gbnf_compile(text, strlen(text), err, sizeof err) : NULL;
    EXPECT(g, "hermes grammar compiles: %s", err);
    if (g) {
        EXPECT(takes(g, "<tool_call>\n{\"name\":\"add\",\"arguments\":{\"a\":5,\"b\":-3}}\n</tool_call>"), "one call");
        EXPECT(takes(g, "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\",\"unit\":\"c\"}}\n"
                        "</tool_call>\n<tool_call>\n{\"name\":\"add\",\"arguments\":{\"a\":0,\"b\":1}}\n</tool_call>"),
               "two calls (parallel)");
        EXPECT(!takes(g, "<tool_call>\n{\"name\":\"sub\",\"arguments\":{\"a\":5,\"b\":3}}\n</tool_call>"),
               "an unknown function");
        EXPECT(!takes(g, "<tool_call>\n{\"name\":\"add\",\"arguments\":{\"a\":100,\"b\":3}}\n</tool_call>"),
               "an argument out of its range");
        EXPECT(!takes(g, "{\"name\":\"add\",\"arguments\":{\"a\":5,\"b\":3}}"), "without the marker");
        EXPECT(!takes(g, "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"unit\":\"c\"}}\n</tool_call>"),
               "a required argument missing");
    }
    gbnf_free(g), free(text);
    text = serve_tool_gbnf(SERVE_TOOL_LLAMA3, tools, "get_weather", false, false, err, sizeof err);
    g = text ? gbnf_compile(text, strlen(text), err, sizeof err) : NULL;
    EXPECT(g, "llama3 grammar: %s", err);
    if (g) {
        EXPECT(takes(g, "{\"name\":\"get_weather\",\"parameters\":{\"city\":\"Lima\"}}"), "the named function");
        EXPECT(!takes(g, "{\"name\":\"add\",\"parameters\":{\"a\":1,\"b\":2}}"), "another than the named one");
        EXPECT(!takes(g, "{\"name\":\"get_weather\",\"parameters\":{\"city\":\"Lima\"}};{\"name\":\"get_weather\","
                         "\"parameters\":{\"city\":\"Lima\"}}"),
               "two calls without parallel_tool_calls");
    }
    gbnf_free(g), free(text);
    text = serve_tool_gbnf(SERVE_TOOL_MISTRAL, tools, NULL, true, false, err, sizeof err);
    g = text ? gbnf_compile(text, strlen(text), err, sizeof err) : NULL;
    EXPECT(g && takes(g, "[{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}},{\"name\":\"add\",\"arguments\":{\"a\":3,"
                         "\"b\":4}}]"),
           "mistral's list: %s", err);
    gbnf_free(g), free(text);
    text = serve_tool_gbnf(SERVE_TOOL_GENERIC, tools, NULL, false, false, err, sizeof err);
    g = text ? gbnf_compile(text, strlen(text), err, sizeof err) : NULL;
    EXPECT(g && takes(g, "{\"tool_calls\":[{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}}]}"), "generic: %s", err);
    gbnf_free(g), free(text);
    cJSON_Delete(tools);
}

static void test_detection(void) {
    EXPECT(serve_tool_format_of("<|im_start|>system\n# Tools\n<tools>{...}</tools> within <tool_call></tool_call>",
                                "probe") == SERVE_TOOL_HERMES,
           "qwen");
    EXPECT(serve_tool_format_of("<|start_header_id|>user<|end_header_id|>\n{\"name\": \"probe\", \"parameters\": {}}",
                                "probe") == SERVE_TOOL_LLAMA3,
           "llama 3.1");
    EXPECT(serve_tool_format_of("[AVAILABLE_TOOLS][{\"name\": \"probe\"}][/AVAILABLE_TOOLS]", "probe") ==
               SERVE_TOOL_MISTRAL,
           "mistral");
    EXPECT(serve_tool_format_of("<|start_header_id|>user<|end_header_id|>\nhi<|eot_id|>", "probe") ==
               SERVE_TOOL_GENERIC,
           "a template that shows no tools");
}

int main(void) {
    test_formats();
    test_reasoning();
    test_growing();
    test_grammar();
    test_detection();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
