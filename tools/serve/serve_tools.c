/*
 * serve_tools.c — a chat reply's parts: the thoughts a reasoning model writes between <think> and
 * </think> (reasoning_content, llama-server's "deepseek" format), the text, and the tool calls,
 * parsed from the model's own format into OpenAI's tool_calls; and the grammar that makes the
 * calls parse (tool_choice required or a named function constrains the reply from its first
 * token).
 *
 * The formats, each recognised by what the model's template writes when it is given tools
 * (serve_tool_format over a probe rendering):
 *   hermes   Qwen3, Qwen2.5, Hermes: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>, repeated
 *   llama3   Llama 3.1-3.3: a bare {"name": ..., "parameters": {...}} (or after <|python_tag|>)
 *   mistral  Mistral: [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...] (the marker a control token)
 *   generic  a template that shows no tools: rsr-serve adds a system message that asks for
 *            {"tool_calls": [{"name": ..., "arguments": {...}}]} or {"response": "..."}
 * A reply is split on its whole text so far (serve_split_reply), so a stream sends what has become
 * certain and holds back what may still turn into a marker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "serve.h"
#include "serve_gbnf.h"
#include "serve_schema.h"
#include "think.h"

const char *serve_tool_format_name(serve_tool_format f) {
    static const char *const names[] = {"generic", "hermes", "llama3", "mistral"};
    return names[f];
}

serve_tool_format serve_tool_format_of(const char *rendered, const char *probe_name) {
    if (strstr(rendered, "<tool_call>")) return SERVE_TOOL_HERMES;
    if (strstr(rendered, "[AVAILABLE_TOOLS]")) return SERVE_TOOL_MISTRAL;
    if (strstr(rendered, "<|start_header_id|>") && strstr(rendered, probe_name) && strstr(rendered, "\"parameters\""))
        return SERVE_TOOL_LLAMA3;
    return SERVE_TOOL_GENERIC;
}

/* ---- the grammar of a reply that calls tools ---- */

/* The schema of one call: {"name": NAME, KEY: parameters}, NAME one of the offered functions (or
 * the named one). */
static cJSON *call_schema(const cJSON *tools, const char *only, const char *key) {
    cJSON *any = cJSON_CreateObject(), *alts = cJSON_AddArrayToObject(any, "anyOf");
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
        if (only && strcmp(only, name)) continue;
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
        cJSON *o = cJSON_CreateObject(), *props;
        cJSON_AddStringToObject(o, "type", "object");
        props = cJSON_AddObjectToObject(o, "properties");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(props, "name"), "const", name);
        cJSON_AddItemToObject(props, key, params ? cJSON_Duplicate(params, 1) : cJSON_Parse("{\"type\":\"object\"}"));
        cJSON *req = cJSON_AddArrayToObject(o, "required");
        cJSON_AddItemToArray(req, cJSON_CreateString("name"));
        cJSON_AddItemToArray(req, cJSON_CreateString(key));
        cJSON_AddFalseToObject(o, "additionalProperties");
        cJSON_AddItemToArray(alts, o);
    }
    return any;
}

char *serve_tool_gbnf(serve_tool_format f, const cJSON *tools, const char *only, bool parallel, bool marker_text,
                      char *err, size_t errlen) {
    cJSON *schema = call_schema(tools, only, f == SERVE_TOOL_LLAMA3 ? "parameters" : "arguments");
    char keyword[64];
    char *calls = schema ? schema_gbnf(schema, err, errlen, keyword) : NULL;
    cJSON_Delete(schema);
    if (!calls) return NULL;
    /* the reply's rule is the format's around `call`, the schema's rule */
    /* with parallel_tool_calls, more calls after the first (each in its own markers for hermes) */
    const char *open = "", *sep = "", *close = "";
    switch (f) {
    case SERVE_TOOL_HERMES:
        open = marker_text ? "\"<tool_call>\\n\" " : "", close = marker_text ? " \"\\n</tool_call>\"" : "";
        break;
    case SERVE_TOOL_LLAMA3: break; /* one call: the template asks for one */
    case SERVE_TOOL_MISTRAL: open = "\"[\" ", sep = "\",\"", close = " \"]\""; break;
    default: open = "\"{\\\"tool_calls\\\":[\" ", sep = "\",\"", close = " \"]}\"";
    }
    char root[512];
    if (f == SERVE_TOOL_HERMES)
        snprintf(root, sizeof root, "root ::= one%s\none ::= %scall%s\n", parallel ? " (\"\\n\" one)*" : "", open,
                 close);
    else if (f == SERVE_TOOL_LLAMA3 || !parallel)
        snprintf(root, sizeof root, "root ::= %scall%s\n", open, close);
    else
        snprintf(root, sizeof root, "root ::= %scall (%s call)*%s\n", open, sep, close);
    size_t n = strlen(root) + strlen(calls) + 8;
    char *text = malloc(n);
    if (!text) {
        free(calls);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(text, n, "%scall%s", root, calls + strlen("root")); /* the schema's start rule is `call` */
    free(calls);
    return text;
}

gbnf_grammar *serve_tool_grammar(serve_tool_format f, const cJSON *tools, const char *only, bool parallel,
                                 bool marker_text, char *err, size_t errlen) {
    char *text = serve_tool_gbnf(f, tools, only, parallel, marker_text, err, errlen);
    gbnf_grammar *g = text ? gbnf_compile(text, strlen(text), err, errlen) : NULL;
    free(text);
    return g;
}

const char *serve_tool_trigger(serve_tool_format f, bool marker_text, bool *at_start) {
    *at_start = f != SERVE_TOOL_HERMES;
    switch (f) {
    case SERVE_TOOL_HERMES: return marker_text ? "<tool_call>" : NULL;
    case SERVE_TOOL_MISTRAL: return "[{\"name\"";
    case SERVE_TOOL_LLAMA3: return "{\"name\"";
    default: return "{\"tool_calls\"";
    }
}

/* ---- a reply's parts ---- */

static const char think_open[] = RSR_THINK_OPEN, think_close[] = RSR_THINK_CLOSE;

static size_t skip_space(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) i++;
    return i;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n), d[n] = 0;
    return d;
}

/* The end of the JSON value that begins at s (s holds valid JSON: cJSON parsed it). */
static const char *skip_value(const char *s) {
    int depth = 0;
    bool str = false;
    for (const char *p = s; *p; p++) {
        if (str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"' && (str = false, depth == 0))
                return p + 1;
        } else if (*p == '"') {
            str = true;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (depth == 0) return p; /* the end of what holds a number or a literal */
            if (--depth == 0) return p + 1;
        } else if (depth == 0 && (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) {
            return p;
        }
    }
    return s + strlen(s);
}

/* The text of the member key of the object whose text begins at s (its first '{'), or NULL. */
static const char *member(const char *s, const char *key, size_t *len) {
    const char *p = s + skip_space(s, 0, strlen(s));
    if (*p != '{') return NULL;
    p++;
    for (;;) {
        p += skip_space(p, 0, strlen(p));
        if (*p != '"') return NULL;
        const char *k = p + 1, *kend = skip_value(p);
        p = kend + skip_space(kend, 0, strlen(kend));
        if (*p != ':') return NULL;
        p++;
        p += skip_space(p, 0, strlen(p));
        const char *v = p, *vend = skip_value(p);
        if ((size_t)(kend - 1 - k) == strlen(key) && !memcmp(k, key, strlen(key))) return *len = (size_t)(vend - v), v;
        p = vend + skip_space(vend, 0, strlen(vend));
        if (*p != ',') return NULL;
        p++;
    }
}

/* One call object {"name": ..., "arguments"|"parameters": ...} into OpenAI's form; false if it
 * is not one. */
static bool add_call(cJSON *calls, const cJSON *o, const char *raw, const char *id_base, int k) {
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "name"));
    const char *key = cJSON_GetObjectItemCaseSensitive(o, "arguments") ? "arguments" : "parameters";
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsObject(o) || !name || !args) return false;
    /* the arguments as the model wrote them (a number keeps its digits), else as cJSON prints them */
    size_t n = 0;
    const char *span = raw && !cJSON_IsString(args) ? member(raw, key, &n) : NULL;
    char *text = span ? dup_n(span, n) : cJSON_IsString(args) ? NULL : cJSON_PrintUnformatted(args);
    cJSON *c = cJSON_CreateObject(), *f;
    const char *given = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
    char id[96];
    snprintf(id, sizeof id, "call_%s_%d", id_base, k);
    cJSON_AddStringToObject(c, "id", given ? given : id);
    cJSON_AddStringToObject(c, "type", "function");
    f = cJSON_AddObjectToObject(c, "function");
    cJSON_AddStringToObject(f, "name", name);
    cJSON_AddStringToObject(f, "arguments", text ? text : args->valuestring);
    free(text);
    cJSON_AddItemToArray(calls, c);
    return true;
}

/* The elements' texts of the array whose text begins at s, each in turn to add_call. */
static int add_calls(cJSON *calls, const cJSON *list, const char *raw, const char *id_base, int k) {
    const char *p = raw ? raw + skip_space(raw, 0, strlen(raw)) : NULL;
    if (p && *p == '[') p++;
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        if (p) p += skip_space(p, 0, strlen(p));
        add_call(calls, e, p, id_base, k++);
        if (p) {
            p = skip_value(p);
            p += skip_space(p, 0, strlen(p));
            if (*p == ',') p++;
        }
    }
    return k;
}

/* The calls in s (the reply from where they begin), or NULL when it holds none that parse. */
static cJSON *parse_calls(serve_tool_format f, const char *s, const char *id_base) {
    cJSON *calls = cJSON_CreateArray();
    int k = 0;
    const char *end = NULL;
    if (f == SERVE_TOOL_HERMES) {
        const char *at = s;
        while ((at = strstr(at, "<tool_call>"))) {
            at += strlen("<tool_call>");
            cJSON *o = cJSON_ParseWithOpts(at, &end, 0);
            bool ok = o && add_call(calls, o, at, id_base, k++);
            cJSON_Delete(o);
            if (!ok) break;
            at = end;
        }
    } else if (f == SERVE_TOOL_LLAMA3) {
        const char *at = s;
        if (!strncmp(at, "<|python_tag|>", 14)) at += 14;
        for (;;) { /* one call, or several separated by ';' */
            cJSON *o = cJSON_ParseWithOpts(at, &end, 0);
            bool ok = o && add_call(calls, o, at, id_base, k++);
            cJSON_Delete(o);
            if (!ok) break;
            at = end + skip_space(end, 0, strlen(end));
            if (*at != ';') break;
            at++;
        }
    } else {
        cJSON *o = cJSON_ParseWithOpts(s, &end, 0);
        const cJSON *one = f == SERVE_TOOL_GENERIC ? cJSON_GetObjectItemCaseSensitive(o, "tool_call") : NULL;
        size_t n = 0;
        if (one) add_call(calls, one, member(s, "tool_call", &n), id_base, k++);
        if (f == SERVE_TOOL_MISTRAL && cJSON_IsArray(o)) add_calls(calls, o, s, id_base, k);
        const cJSON *list = f == SERVE_TOOL_GENERIC ? cJSON_GetObjectItemCaseSensitive(o, "tool_calls") : NULL;
        if (cJSON_IsArray(list)) add_calls(calls, list, member(s, "tool_calls", &n), id_base, k);
        cJSON_Delete(o);
    }
    if (cJSON_GetArraySize(calls) == 0) cJSON_Delete(calls), calls = NULL;
    return calls;
}

/* Where the calls begin in s[0, n) (n when they do not), and how much of its end to hold back
 * as the beginning of a marker that may still come. */
static size_t calls_start(serve_tool_format f, const char *s, size_t n, size_t *hold) {
    *hold = 0;
    if (f == SERVE_TOOL_HERMES) {
        const char *at = memmem(s, n, "<tool_call>", 11);
        if (at) return (size_t)(at - s);
        *hold = serve_partial_tail(s, n, "<tool_call>");
        return n;
    }
    /* the others: a reply that begins with the call's JSON (after the marker token, which is not text) */
    size_t i = skip_space(s, 0, n);
    if (i == n) return *hold = n, n;
    if (f == SERVE_TOOL_MISTRAL ? s[i] == '[' : s[i] == '{') return 0; /* the white space before is no text */
    if (f == SERVE_TOOL_LLAMA3 && !strncmp(s + i, "<|python_tag|>", n - i < 14 ? n - i : 14)) return 0;
    return n;
}

void serve_split_reply(const serve_reply_shape *sh, const char *s, size_t n, bool final, const char *id_base,
                       serve_reply_parts *out) {
    memset(out, 0, sizeof *out);
    size_t i = 0, content_from = 0;
    if (sh->reasoning) {
        size_t k = skip_space(s, 0, n);
        bool open = sh->think_open;
        if (!open && n - k >= strlen(think_open) && !memcmp(s + k, think_open, strlen(think_open)))
            open = true, k += strlen(think_open);
        else if (!open && !final && n - k < strlen(think_open) && !memcmp(s + k, think_open, n - k))
            return; /* it may still become <think> */
        if (open) {
            size_t from = open && !sh->think_open ? k : 0;
            const char *close = memmem(s + from, n - from, think_close, strlen(think_close));
            size_t to = close ? (size_t)(close - s) : final ? n : n - serve_partial_tail(s, n, think_close);
            out->reasoning = s + from, out->n_reasoning = to - from;
            if (!close) return;
            content_from = skip_space(s, to + strlen(think_close), n);
        }
    }
    i = content_from;
    size_t end = n, hold = 0;
    if (sh->tools) {
        size_t at = calls_start(sh->format, s + i, n - i, &hold);
        if (at < n - i) {
            if (final) {
                char *rest = dup_n(s + i + at, n - i - at);
                out->tool_calls = rest ? parse_calls(sh->format, rest, id_base) : NULL;
                free(rest);
                if (!out->tool_calls) at = n - i; /* not calls after all: the text is the reply */
            }
            end = i + at;
            hold = 0;
        } else if (final) {
            hold = 0;
        }
    }
    out->content = s + i, out->n_content = end - hold - i;
    /* the generic format's {"response": "..."} is the text */
    if (final && sh->tools && sh->format == SERVE_TOOL_GENERIC && !out->tool_calls) {
        char *rest = dup_n(s + i, n - i);
        cJSON *o = rest ? cJSON_Parse(rest) : NULL;
        const char *r = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "response"));
        if (r && (out->owned = dup_n(r, strlen(r)))) out->content = out->owned, out->n_content = strlen(r);
        cJSON_Delete(o), free(rest);
    }
}

void serve_reply_parts_free(serve_reply_parts *p) {
    cJSON_Delete(p->tool_calls);
    free(p->owned);
    memset(p, 0, sizeof *p);
}

char *serve_generic_tools_prompt(const cJSON *tools) {
    char *list = cJSON_PrintUnformatted(tools);
    if (!list) return NULL;
    static const char intro[] =
        "You can call these tools (JSON schemas of their arguments):\n%s\n"
        "To call tools, reply with only a JSON object: {\"tool_calls\": [{\"name\": \"<the tool>\", \"arguments\": "
        "{...}}]}. Otherwise reply with {\"response\": \"<your answer>\"}.";
    size_t n = strlen(intro) + strlen(list) + 1;
    char *text = malloc(n);
    if (text) snprintf(text, n, intro, list);
    free(list);
    return text;
}
