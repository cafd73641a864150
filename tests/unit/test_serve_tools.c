/*
 * test_serve_tools — a chat reply's parts (tools/serve/serve_tools.c): tool calls parsed from each
 * model format into OpenAI's tool_calls (the arguments as the model wrote them), the text before
 * them, thoughts split off at </think>; a reply split as it grows holds back a tail that may still
 * become a marker and never takes back what it gave; the tools' grammar takes the format's calls
 * whole and turns away a wrong name, a missing marker or arguments outside the schema; the
 * format read off a template's rendering. Qwen3.5's (qwen3_coder) calls, whose values are raw text
 * read as a string or as JSON by their parameter's schema, have tests of their own.
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

/* Text the model writes after its calls is the reply's text too, after the text before them (a
 * newline between unless that text ends in white space): never dropped. */
static void test_after_calls(void) {
    char calls[512], content[256];
    static const struct {
        int format;
        const char *text, *calls, *content;
    } cases[] = {
        {SERVE_TOOL_HERMES,
         "Let me look.\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>\n"
         "Then I will sum.",
         "add({\"a\": 1, \"b\": 2});", "Let me look.\nThen I will sum."},
        {SERVE_TOOL_HERMES, "<tool_call>{\"name\": \"add\", \"arguments\": {}}</tool_call>  Done.", "add({});",
         "Done."},
        {SERVE_TOOL_HERMES, "Hi.<tool_call>{\"name\": \"add\", \"arguments\": {}}</tool_call>\n\n  ", "add({});",
         "Hi."},
        {SERVE_TOOL_QWEN3_CODER,
         "Sure<tool_call>\n<function=add>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>\nafter",
         "add({\"a\":1});", "Sure\nafter"},
        {SERVE_TOOL_LLAMA3, "{\"name\": \"add\", \"parameters\": {\"a\": 2}} and more", "add({\"a\": 2});", "and more"},
        {SERVE_TOOL_MISTRAL, "[{\"name\": \"add\", \"arguments\": {}}] tail", "add({});", "tail"},
        {SERVE_TOOL_GENERIC, "{\"tool_calls\": [{\"name\": \"add\", \"arguments\": {}}]}\nps", "add({});", "ps"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        serve_reply_shape sh = shape(cases[i].format, false, true);
        split(&sh, cases[i].text, calls, sizeof calls, content, sizeof content);
        EXPECT(!strcmp(calls, cases[i].calls) && !strcmp(content, cases[i].content),
               "case %zu: calls %s, text '%s' (expected %s, '%s')", i, calls, content, cases[i].calls,
               cases[i].content);
    }
    /* streamed: the deltas add up to the same text, the part after the calls sent at the end */
    const char *t = "Sure. <tool_call>\n{\"name\":\"add\",\"arguments\":{}}\n</tool_call> and then?";
    serve_reply_shape sh = shape(SERVE_TOOL_HERMES, false, true);
    size_t n = strlen(t), sent = 0;
    char given[128] = "";
    for (size_t k = 0; k <= n; k++) {
        serve_reply_parts p;
        serve_split_reply(&sh, t, k, k == n, "x", &p);
        EXPECT(p.n_content >= sent && !memcmp(p.content, given, sent), "at %zu the split took back text", k);
        if (p.n_content > sent) strncat(given, p.content + sent, p.n_content - sent), sent = p.n_content;
        serve_reply_parts_free(&p);
    }
    EXPECT(!strcmp(given, "Sure. and then?"), "text streamed: '%s'", given);
}

/* Calls checked against the tools the request offered: a function it did not offer, arguments
 * that are no JSON object or that its schema refuses make the reply text, saying why. */
static void test_offered(void) {
    cJSON *tools = cJSON_Parse(tools_json);
    serve_reply_shape h = shape(SERVE_TOOL_HERMES, false, true);
    h.offered = tools;
    static const struct {
        const char *text, *why; /* why: NULL when the calls stand */
    } cases[] = {
        {"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>", NULL},
        {"<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>",
         "called 'rm_rf', which the request did not offer"},
        {"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": \"one\", \"b\": 2}}\n</tool_call>",
         "call of 'add' gives 'a' a value its schema refuses (its type)"},
        {"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"c\"}}\n</tool_call>",
         "call of 'get_weather' lacks the required argument 'city'"},
        {"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"k\"}}\n</tool_call>",
         "gives 'unit' a value its schema refuses (not among its enum)"},
        {"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"extra\": 1}}\n</tool_call>",
         NULL},
        {"<tool_call>\n{\"name\": \"add\", \"arguments\": \"a=1\"}\n</tool_call>",
         "arguments that are not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        serve_reply_parts p;
        serve_split_reply(&h, cases[i].text, strlen(cases[i].text), true, "x", &p);
        if (!cases[i].why)
            EXPECT(p.tool_calls && !p.call_error, "case %zu: the call stands", i);
        else
            EXPECT(!p.tool_calls && p.call_error && strstr(p.call_error, cases[i].why) &&
                       p.n_content == strlen(cases[i].text),
                   "case %zu: refused as text, saying '%s' (got '%s')", i, cases[i].why,
                   p.call_error ? p.call_error : "nothing");
        serve_reply_parts_free(&p);
    }
    cJSON_Delete(tools);
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
    /* Qwen3.5-4B's published template (llama.cpp's models/templates) over rsr-serve's probe: it shows
     * <tool_call> too, around <function=...> blocks */
    static const char qwen35[] =
        "<|im_start|>system\n# Tools\n\nYou have access to the following functions:\n\n<tools>\n{\"type\": "
        "\"function\", \"function\": {\"name\": \"rsr_probe_tool\", \"description\": \"a probe\", \"parameters\": "
        "{\"type\": \"object\", \"properties\": {}}}}\n</tools>\n\nIf you choose to call a function ONLY reply in "
        "the following format with NO suffix:\n\n<tool_call>\n<function=example_function_name>\n"
        "<parameter=example_parameter_1>\nvalue_1\n</parameter>\n<parameter=example_parameter_2>\nThis is the value "
        "for the second parameter\nthat can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n"
        "<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified format: an inner <function=...></function> "
        "block must be nested within <tool_call></tool_call> XML tags\n- Required parameters MUST be specified\n"
        "</IMPORTANT><|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n";
    EXPECT(serve_tool_format_of(qwen35, "rsr_probe_tool") == SERVE_TOOL_QWEN3_CODER, "qwen3.5");
    EXPECT(!strcmp(serve_tool_format_name(SERVE_TOOL_QWEN3_CODER), "qwen3_coder"), "its name");
}

/* ---- qwen3_coder (Qwen3.5, Qwen3-Coder): <function=...> blocks of raw-text parameters ---- */

static const char qwen_tools_json[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"city\":{\"type\":\"string\"},\"unit\":{\"enum\":[\"c\",\"f\"]},\"days\":{\"type\":"
    "\"integer\",\"minimum\":1,\"maximum\":7}},\"required\":[\"city\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"store\",\"parameters\":{\"type\":\"object\",\"properties\":"
    "{\"key\":{\"type\":\"string\"},\"ratio\":{\"type\":\"number\"},\"on\":{\"type\":\"boolean\"},\"meta\":"
    "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}}}},\"required\":[\"key\",\"on\"]}}}]";

static void test_qwen_parse(void) {
    cJSON *tools = cJSON_Parse(qwen_tools_json);
    serve_reply_shape q = shape(SERVE_TOOL_QWEN3_CODER, false, true);
    q.offered = tools;
    char calls[1024], content[256];
    split(&q,
          "I will look it up.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nNew York\n</parameter>\n"
          "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
          calls, sizeof calls, content, sizeof content);
    EXPECT(!strcmp(calls, "get_weather({\"city\":\"New York\",\"days\":3});"), "one call: %s", calls);
    EXPECT(!strcmp(content, "I will look it up.\n"), "the text before the call: '%s'", content);
    /* two calls: a string that looks like a number stays a string, a multi-line string keeps its
     * inner newlines and indentation, a float, a boolean and an object are JSON */
    split(&q,
          "<tool_call>\n<function=store>\n<parameter=key>\n007\n</parameter>\n<parameter=ratio>\n0.25\n</parameter>\n"
          "<parameter=on>\ntrue\n</parameter>\n<parameter=meta>\n{\"n\": 2}\n</parameter>\n</function>\n</tool_call>\n"
          "<tool_call>\n<function=store>\n<parameter=key>\n  line 1\n\"q\"\n</parameter>\n<parameter=on>\nFalse\n"
          "</parameter>\n</function>\n</tool_call>",
          calls, sizeof calls, content, sizeof content);
    EXPECT(!strcmp(calls, "store({\"key\":\"007\",\"ratio\":0.25,\"on\":true,\"meta\":{\"n\":2}});"
                          "store({\"key\":\"  line 1\\n\\\"q\\\"\",\"on\":false});"),
           "two calls: %s", calls);
    EXPECT(!*content, "no text: '%s'", content);
    /* a parameter the tools do not list: JSON where the text is JSON (its digits kept), else a string */
    split(&q,
          "<tool_call>\n<function=store>\n<parameter=key>\nk\n</parameter>\n<parameter=on>\ntrue\n</parameter>\n"
          "<parameter=x>\n[12, 123456789012345678, true]\n</parameter>\n<parameter=y>\nhi there\n</parameter>\n"
          "</function>\n</tool_call>",
          calls, sizeof calls, content, sizeof content);
    EXPECT(!strcmp(calls, "store({\"key\":\"k\",\"on\":true,\"x\":[12,123456789012345678,true],\"y\":\"hi there\"});"),
           "unlisted parameters: %s", calls);
    /* unfinished or malformed: the reply is text, whole */
    static const char *const bad[] = {
        "<tool_call>\n<function=store>\n<parameter=key>\nabc",
        "<tool_call>\n<function=store>\n<parameter=key>\nabc\n</parameter>\n",
        "<tool_call>\n<function=store\n<parameter=key>\nabc\n</parameter>\n</function>\n</tool_call>",
        "<tool_call>\n{\"name\": \"store\", \"arguments\": {}}\n</tool_call>",
        "Sure <tool_call>\n<function=>\n</function>\n</tool_call>",
        "<tool_call>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        split(&q, bad[i], calls, sizeof calls, content, sizeof content);
        EXPECT(!*calls && !strcmp(content, bad[i]), "malformed %zu is text: %s / '%s'", i, calls, content);
    }
    /* parsed without parameters and without </tool_call>, but get_weather requires city: text */
    split(&q, "<tool_call>\n<function=get_weather>\n</function>", calls, sizeof calls, content, sizeof content);
    EXPECT(!*calls && !strcmp(content, "<tool_call>\n<function=get_weather>\n</function>"),
           "no parameters, no </tool_call> at the end, city required: %s / '%s'", calls, content);
    cJSON_Delete(tools);
}

/* Streamed: the text before the call goes out, a partial <tool_call> is held back, and the end
 * parses the call. */
static void test_qwen_growing(void) {
    cJSON *tools = cJSON_Parse(qwen_tools_json);
    serve_reply_shape sh = shape(SERVE_TOOL_QWEN3_CODER, true, true);
    sh.offered = tools;
    const char *t = "<think>Weather.</think>Checking. <tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n"
                    "</parameter>\n</function>\n</tool_call>";
    size_t n = strlen(t), sent_c = 0;
    char given_c[128] = "";
    for (size_t k = 0; k <= n; k++) {
        serve_reply_parts p;
        serve_split_reply(&sh, t, k, k == n, "x", &p);
        EXPECT(p.n_content >= sent_c, "at %zu the split took back text", k);
        EXPECT(!p.n_content || !memchr(p.content, '<', p.n_content), "at %zu the text shows a marker: '%.*s'", k,
               (int)p.n_content, p.content);
        if (p.n_content > sent_c) strncat(given_c, p.content + sent_c, p.n_content - sent_c), sent_c = p.n_content;
        if (k == n) {
            const cJSON *f = cJSON_GetObjectItem(cJSON_GetArrayItem(p.tool_calls, 0), "function");
            EXPECT(cJSON_GetArraySize(p.tool_calls) == 1 &&
                       !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(f, "arguments")), "{\"city\":\"Oslo\"}"),
                   "the end parses the call");
        } else {
            EXPECT(!p.tool_calls, "calls come at the end");
        }
        serve_reply_parts_free(&p);
    }
    EXPECT(!strcmp(given_c, "Checking. "), "text streamed: '%s'", given_c);
    cJSON_Delete(tools);
}

static void test_qwen_grammar(void) {
    cJSON *tools = cJSON_Parse(qwen_tools_json);
    char err[512];
    bool at_start;
    EXPECT(!strcmp(serve_tool_trigger(SERVE_TOOL_QWEN3_CODER, true, &at_start), "<tool_call>") && !at_start,
           "the trigger is <tool_call>, anywhere");
    gbnf_grammar *g = serve_tool_grammar(SERVE_TOOL_QWEN3_CODER, tools, NULL, true, true, err, sizeof err);
    EXPECT(g, "qwen3_coder grammar: %s", err);
    if (g) {
        EXPECT(takes(g,
                     "<tool_call>\n<function=get_weather>\n<parameter=city>\nSão Paulo <b>\n</parameter>\n"
                     "<parameter=unit>\nc\n</parameter>\n<parameter=days>\n7\n</parameter>\n</function>\n</tool_call>"),
               "one call, every parameter");
        EXPECT(takes(g, "<tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n</parameter>\n</function>\n"
                        "</tool_call>\n<tool_call>\n<function=store>\n<parameter=key>\na\nb\n</parameter>\n"
                        "<parameter=on>\nfalse\n</parameter>\n<parameter=meta>\n{\"n\":1}\n</parameter>\n</function>\n"
                        "</tool_call>"),
               "two calls (parallel)");
        EXPECT(!takes(g, "<tool_call>\n<function=delete_all>\n</function>\n</tool_call>"), "an unknown function");
        EXPECT(!takes(g, "<tool_call>\n<function=get_weather>\n<parameter=town>\nOslo\n</parameter>\n</function>\n"
                         "</tool_call>"),
               "an unknown parameter");
        EXPECT(!takes(g, "<tool_call>\n<function=get_weather>\n<parameter=unit>\nc\n</parameter>\n</function>\n"
                         "</tool_call>"),
               "a required parameter missing");
        EXPECT(!takes(g, "<tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n</parameter>\n<parameter=days>"
                         "\n9\n</parameter>\n</function>\n</tool_call>"),
               "a number out of its range");
        EXPECT(!takes(g, "<tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n</parameter>\n<parameter=unit>"
                         "\nkelvin\n</parameter>\n</function>\n</tool_call>"),
               "a string outside its enum");
        EXPECT(!takes(g, "<tool_call>\n<function=store>\n<parameter=key>\nk\n</parameter>\n<parameter=on>\nyes\n"
                         "</parameter>\n</function>\n</tool_call>"),
               "a boolean that is not JSON");
        EXPECT(!takes(g, "<tool_call>\n<function=get_weather>\n<parameter=city>\nA</parameter>B\n</parameter>\n"
                         "</function>\n</tool_call>"),
               "a string holding </parameter>");
    }
    gbnf_free(g);
    g = serve_tool_grammar(SERVE_TOOL_QWEN3_CODER, tools, "store", false, true, err, sizeof err);
    EXPECT(g, "named: %s", err);
    if (g) {
        EXPECT(takes(g, "<tool_call>\n<function=store>\n<parameter=key>\nk\n</parameter>\n<parameter=on>\ntrue\n"
                        "</parameter>\n</function>\n</tool_call>"),
               "the named function");
        EXPECT(!takes(g, "<tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n</parameter>\n</function>\n"
                         "</tool_call>"),
               "another than the named one");
        EXPECT(!takes(g, "<tool_call>\n<function=store>\n<parameter=key>\nk\n</parameter>\n<parameter=on>\ntrue\n"
                         "</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=store>\n<parameter=key>\nk\n"
                         "</parameter>\n<parameter=on>\ntrue\n</parameter>\n</function>\n</tool_call>"),
               "two calls without parallel_tool_calls");
    }
    gbnf_free(g);
    cJSON_Delete(tools);
}

int main(void) {
    test_after_calls();
    test_formats();
    test_offered();
    test_reasoning();
    test_growing();
    test_grammar();
    test_detection();
    test_qwen_parse();
    test_qwen_growing();
    test_qwen_grammar();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
