/*
 * serve_request.c — an OpenAI completions or chat completions request body, read with cJSON and
 * checked field by field: every type, range and the fields rsr-serve does not do (n > 1,
 * tools, logit_bias) named in the message, so that a client gets a 400 that says what to change.
 * A completions prompt is a text, token ids, or a list of either: one serve_params per prompt.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jinja_builtins.h"
#include "serve.h"
#include "serve_gbnf.h"
#include "serve_schema.h"

void serve_params_free(serve_params *p) {
    free(p->prompt);
    free(p->prompt_ids);
    for (int32_t i = 0; i < p->n_messages; i++) free((char *)p->messages[i].role), free((char *)p->messages[i].content);
    free(p->messages);
    free(p->context);
    cJSON_Delete(p->tools);
    free(p->tool_name);
    for (int32_t i = 0; i < p->n_stop; i++) free(p->stop[i]);
    free(p->model);
    free(p->cache_salt);
    json_shape_free(p->shape);
    gbnf_free(p->grammar);
    gbnf_free(p->lazy);
    memset(p, 0, sizeof *p);
}

typedef struct reader {
    char *err;
    size_t errlen;
    const char **param;
    const serve_params *share; /* a prompt list's first prompt, whose grammar the others share; or NULL */
} reader;

static bool fail(reader *r, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(reader *r, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    *r->param = param;
    return false;
}

/* A number field in [lo, hi]; absent or null leaves *out. */
static bool number(reader *r, const cJSON *root, const char *key, double lo, double hi, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsNumber(v)) return fail(r, key, "'%s' must be a number", key);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return fail(r, key, "'%s' is %g; it must be in [%g, %g]", key, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return true;
}

static bool integer(reader *r, const cJSON *root, const char *key, double lo, double hi, double *out) {
    double v = NAN;
    if (!number(r, root, key, lo, hi, &v)) return false;
    if (isnan(v)) return true;
    if (v != floor(v)) return fail(r, key, "'%s' must be an integer, not %g", key, v);
    *out = v;
    return true;
}

/* A true-or-false field; absent or null leaves *out. */
static bool flag(reader *r, const cJSON *root, const char *key, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsBool(v)) return fail(r, key, "'%s' must be true or false", key);
    *out = cJSON_IsTrue(v);
    return true;
}

static char *dup_string(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static bool read_stop(reader *r, const cJSON *root, serve_params *p) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!v || cJSON_IsNull(v)) return true;
    if (cJSON_IsString(v)) {
        if (!*v->valuestring) return fail(r, "stop", "'stop' must not be empty");
        p->stop[p->n_stop++] = dup_string(v->valuestring);
        return true;
    }
    if (!cJSON_IsArray(v)) return fail(r, "stop", "'stop' must be a string or an array of strings");
    if (cJSON_GetArraySize(v) > SERVE_MAX_STOP)
        return fail(r, "stop", "'stop' holds %d strings; at most %d", cJSON_GetArraySize(v), SERVE_MAX_STOP);
    const cJSON *s;
    cJSON_ArrayForEach(s, v) {
        if (!cJSON_IsString(s) || !*s->valuestring)
            return fail(r, "stop", "every element of 'stop' must be a non-empty string");
        p->stop[p->n_stop++] = dup_string(s->valuestring);
    }
    return true;
}

/* A message's content: a string, or an array of text parts ({"type": "text", "text": ...}) joined
 * with newlines as llama-server joins them; other parts (images, audio) are refused by name. */
static bool read_content(reader *r, const cJSON *content, int i, char **out) {
    if (cJSON_IsString(content)) return (*out = dup_string(content->valuestring)) || fail(r, NULL, "out of memory");
    if (!cJSON_IsArray(content))
        return fail(r, "messages", "messages[%d].content must be a string or an array of text parts", i);
    size_t len = 0;
    const cJSON *part;
    int j = 0;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type))
            return fail(r, "messages", "messages[%d].content[%d] must be an object with a string 'type'", i, j);
        if (strcmp(type->valuestring, "text"))
            return fail(r, "messages", "messages[%d].content[%d] is a '%.40s' part; rsr-serve takes text parts only", i,
                        j, type->valuestring);
        if (!cJSON_IsString(text)) return fail(r, "messages", "messages[%d].content[%d].text must be a string", i, j);
        len += strlen(text->valuestring) + 1, j++;
    }
    char *joined = malloc(len + 1), *at = joined;
    if (!joined) return fail(r, NULL, "out of memory");
    cJSON_ArrayForEach(part, content) {
        const char *text = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        if (at > joined) *at++ = '\n';
        size_t n = strlen(text);
        memcpy(at, text, n), at += n;
    }
    *at = 0;
    *out = joined;
    return true;
}

/* An assistant turn's tool_calls as the context shows them: each {id, type, function: {name,
 * arguments}}, the arguments an object where the string parses as one (what Hugging Face's
 * templates expect: `tool_call.arguments | tojson`), else the string. */
static bool read_tool_calls(reader *r, const cJSON *calls, int i, cJSON *out) {
    if (!cJSON_IsArray(calls)) return fail(r, "messages", "messages[%d].tool_calls must be an array", i);
    const cJSON *c;
    int k = 0;
    cJSON *list = cJSON_AddArrayToObject(out, "tool_calls");
    cJSON_ArrayForEach(c, calls) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(f, "arguments");
        if (!cJSON_IsObject(c) || !name || !(cJSON_IsString(args) || cJSON_IsObject(args)))
            return fail(r, "messages",
                        "messages[%d].tool_calls[%d] must be {\"type\": \"function\", \"function\": {\"name\": ..., "
                        "\"arguments\": \"{...}\"}}",
                        i, k);
        cJSON *call = cJSON_CreateObject(), *fn = cJSON_AddObjectToObject(call, "function");
        cJSON_AddItemToArray(list, call);
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"));
        if (id) cJSON_AddStringToObject(call, "id", id);
        cJSON_AddStringToObject(call, "type", "function");
        cJSON_AddStringToObject(fn, "name", name);
        cJSON *parsed = cJSON_IsString(args) ? cJSON_Parse(args->valuestring) : cJSON_Duplicate(args, 1);
        if (!cJSON_IsObject(parsed)) cJSON_Delete(parsed), parsed = cJSON_CreateString(args->valuestring);
        cJSON_AddItemToObject(fn, "arguments", parsed);
        k++;
    }
    return true;
}

/* The messages, each into p->messages (role and text) and into the template's context (ctx's
 * "messages": what a chat template reads, tool calls and thoughts included). */
static bool read_messages(reader *r, const cJSON *root, serve_params *p, cJSON *ctx) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!v) return fail(r, "messages", "'messages' is required");
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return fail(r, "messages", "'messages' must be a non-empty array of {role, content}");
    int n = cJSON_GetArraySize(v);
    p->messages = calloc((size_t)n, sizeof *p->messages);
    if (!p->messages) return fail(r, NULL, "out of memory");
    cJSON *list = cJSON_AddArrayToObject(ctx, "messages");
    const cJSON *m;
    cJSON_ArrayForEach(m, v) {
        const int i = p->n_messages;
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role))
            return fail(r, "messages", "messages[%d] must be an object with a string 'role'", i);
        /* "developer" is OpenAI's newer name for the system role */
        const bool developer = !strcmp(role->valuestring, "developer");
        const bool assistant = !strcmp(role->valuestring, "assistant"), tool = !strcmp(role->valuestring, "tool");
        if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") && !assistant && !tool &&
            !developer)
            return fail(r, "messages", "messages[%d].role '%.40s' is not system, developer, user, assistant or tool", i,
                        role->valuestring);
        const cJSON *call_id = cJSON_GetObjectItemCaseSensitive(m, "tool_call_id");
        if (tool && !cJSON_IsString(call_id))
            return fail(r, "messages", "messages[%d] (role tool) needs the 'tool_call_id' it answers", i);
        const bool has_calls = assistant && calls && !cJSON_IsNull(calls);
        char *text = NULL;
        if ((!content || cJSON_IsNull(content)) && has_calls)
            text = dup_string("");
        else if (!read_content(r, content, i, &text))
            return false;
        p->messages[i].content = text;
        p->messages[i].role = dup_string(developer ? "system" : role->valuestring);
        p->n_messages++;
        if (!text || !p->messages[i].role) return fail(r, NULL, "out of memory");
        cJSON *out = cJSON_CreateObject();
        cJSON_AddItemToArray(list, out);
        cJSON_AddStringToObject(out, "role", p->messages[i].role);
        /* a null content is "" to the template (Qwen3's asks '</think>' in it, which none refuses) */
        cJSON_AddStringToObject(out, "content", text);
        if (has_calls && !read_tool_calls(r, calls, i, out)) return false;
        if (tool) cJSON_AddStringToObject(out, "tool_call_id", call_id->valuestring);
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "name"));
        if (name) cJSON_AddStringToObject(out, "name", name);
        const char *thoughts = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "reasoning_content"));
        if (assistant && thoughts) cJSON_AddStringToObject(out, "reasoning_content", thoughts);
    }
    return true;
}

/* A function's name as OpenAI allows it: 1 to 64 of [A-Za-z0-9_-]. */
static bool tool_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') return false;
    return true;
}

typedef struct named {
    const char *name;
    int index;
} named;

static int by_name(const void *a, const void *b) {
    const named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->index - y->index;
}

/* No function name twice among the n tools (whose names are checked strings): sorted, so that
 * a long list costs n log n, not n² (22,870 tools took 4 s a request). */
static bool unique_names(reader *r, const cJSON *tools, int n) {
    if (n < 2) return true;
    named *all = malloc(sizeof *all * (size_t)n);
    if (!all) return fail(r, NULL, "out of memory");
    int k = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) all[k] = (named){cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                                                      cJSON_GetObjectItemCaseSensitive(t, "function"), "name")),
                                                  k},
                                 k++;
    qsort(all, (size_t)n, sizeof *all, by_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(all[i].name, all[i - 1].name)) {
            char name[80];
            snprintf(name, sizeof name, "%s", all[i].name);
            int at = all[i].index;
            free(all);
            return fail(r, "tools", "tools[%d].function.name '%s' is given twice", at, name);
        }
    free(all);
    return true;
}

/* tools (functions with JSON-schema parameters, each schema one the structured output serves),
 * tool_choice and parallel_tool_calls; the tools go into the context unless the choice is none. */
static bool read_tools(reader *r, const cJSON *root, serve_params *p, cJSON *ctx) {
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    p->parallel_tool_calls = true;
    if (!flag(r, root, "parallel_tool_calls", &p->parallel_tool_calls)) return false;
    if (tools && !cJSON_IsNull(tools) && !cJSON_IsArray(tools))
        return fail(r, "tools", "'tools' must be an array of {\"type\": \"function\", \"function\": {...}}");
    int n = cJSON_GetArraySize(tools), k = 0;
    if (n > SERVE_MAX_TOOLS) return fail(r, "tools", "'tools' lists %d functions; at most %d", n, SERVE_MAX_TOOLS);
    const cJSON *t, *listed_tools = n ? tools : NULL;
    cJSON_ArrayForEach(t, listed_tools) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "type"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
        if (!type || strcmp(type, "function") || !cJSON_IsObject(f))
            return fail(r, "tools", "tools[%d] must be {\"type\": \"function\", \"function\": {\"name\": ...}}", k);
        if (!name || !tool_name_ok(name))
            return fail(r, "tools", "tools[%d].function.name must be 1 to 64 letters, digits, '_' or '-'", k);
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
        char why[400], keyword[64];
        if (params && !cJSON_IsObject(params))
            return fail(r, "tools", "tools[%d].function.parameters must be a JSON schema (an object)", k);
        char *g = params ? schema_gbnf(params, why, sizeof why, keyword) : NULL;
        if (params && !g) return fail(r, "tools", "tools[%d].function.parameters: %s", k, why);
        free(g);
        k++;
    }
    if (!unique_names(r, listed_tools, n)) return false;
    p->tool_choice = SERVE_TOOLS_AUTO;
    if (cJSON_IsString(choice)) {
        const char *c = choice->valuestring;
        p->tool_choice = !strcmp(c, "auto")       ? SERVE_TOOLS_AUTO
                         : !strcmp(c, "none")     ? SERVE_TOOLS_NONE
                         : !strcmp(c, "required") ? SERVE_TOOLS_REQUIRED
                                                  : -1;
        if (p->tool_choice < 0)
            return fail(r, "tool_choice", "'tool_choice' '%.40s' is not auto, none, required or a function", c);
    } else if (cJSON_IsObject(choice)) {
        const char *name = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(choice, "function"), "name"));
        if (!name)
            return fail(r, "tool_choice",
                        "'tool_choice' as an object is {\"type\": \"function\", \"function\": {\"name\": ...}}");
        const cJSON *u;
        bool found = false;
        cJSON_ArrayForEach(u, listed_tools) found =
            found || !strcmp(name, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                                       cJSON_GetObjectItemCaseSensitive(u, "function"), "name")));
        if (!found) return fail(r, "tool_choice", "'tool_choice' names '%.64s', which is not among 'tools'", name);
        p->tool_choice = SERVE_TOOLS_NAMED;
        if (!(p->tool_name = dup_string(name))) return fail(r, NULL, "out of memory");
    } else if (choice && !cJSON_IsNull(choice)) {
        return fail(r, "tool_choice", "'tool_choice' must be auto, none, required or {\"type\": \"function\", ...}");
    }
    if (!n && (p->tool_choice == SERVE_TOOLS_REQUIRED))
        return fail(r, "tool_choice", "'tool_choice' required needs 'tools'");
    if (!n || p->tool_choice == SERVE_TOOLS_NONE) return true;
    if (!(p->tools = cJSON_Duplicate(tools, 1))) return fail(r, NULL, "out of memory");
    cJSON_AddItemToObject(ctx, "tools", cJSON_Duplicate(tools, 1));
    return true;
}

/* chat_template_kwargs (the template's own keywords: enable_thinking), reasoning_effort (the
 * template reads it where it knows it) and reasoning_format (none or deepseek), into the context. */
static bool read_reasoning(reader *r, const cJSON *root, serve_params *p, cJSON *ctx) {
    const cJSON *kw = cJSON_GetObjectItemCaseSensitive(root, "chat_template_kwargs"), *e;
    const cJSON *kws = cJSON_IsObject(kw) ? kw : NULL;
    if (kw && !cJSON_IsNull(kw) && !cJSON_IsObject(kw))
        return fail(r, "chat_template_kwargs", "'chat_template_kwargs' must be an object of the template's variables");
    cJSON_ArrayForEach(e, kws) {
        if (!strcmp(e->string, "messages") || !strcmp(e->string, "tools") ||
            !strcmp(e->string, "add_generation_prompt"))
            return fail(r, "chat_template_kwargs",
                        "'chat_template_kwargs' cannot set '%s': the request's own field does", e->string);
        if (jinja_builtin_name(e->string))
            return fail(r, "chat_template_kwargs",
                        "'chat_template_kwargs' cannot set '%s': it is one of the template's built-ins", e->string);
        cJSON_DeleteItemFromObjectCaseSensitive(ctx, e->string);
        cJSON_AddItemToObject(ctx, e->string, cJSON_Duplicate(e, 1));
    }
    const cJSON *effort = cJSON_GetObjectItemCaseSensitive(root, "reasoning_effort");
    if (effort && !cJSON_IsNull(effort)) {
        const char *v = cJSON_GetStringValue(effort);
        if (!v || (strcmp(v, "minimal") && strcmp(v, "low") && strcmp(v, "medium") && strcmp(v, "high")))
            return fail(r, "reasoning_effort", "'reasoning_effort' must be minimal, low, medium or high");
        if (!cJSON_GetObjectItemCaseSensitive(ctx, "reasoning_effort"))
            cJSON_AddStringToObject(ctx, "reasoning_effort", v);
    }
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "reasoning_format");
    p->reasoning_format = -1;
    if (format && !cJSON_IsNull(format)) {
        const char *v = cJSON_GetStringValue(format);
        p->reasoning_format = !v                                             ? -2
                              : !strcmp(v, "none")                           ? SERVE_REASONING_NONE
                              : !strcmp(v, "deepseek") || !strcmp(v, "auto") ? SERVE_REASONING_DEEPSEEK
                                                                             : -2;
        if (p->reasoning_format == -2)
            return fail(r, "reasoning_format", "'reasoning_format' must be none, deepseek or auto");
    }
    return true;
}

/* The chat's fields: messages, tools, the template's keywords; the context as JSON text. */
static bool read_chat(reader *r, const cJSON *root, serve_params *p) {
    cJSON *ctx = cJSON_CreateObject();
    if (!ctx) return fail(r, NULL, "out of memory");
    bool ok = read_messages(r, root, p, ctx) && read_tools(r, root, p, ctx) && read_reasoning(r, root, p, ctx);
    if (ok) {
        cJSON_DeleteItemFromObjectCaseSensitive(ctx, "add_generation_prompt");
        cJSON_AddTrueToObject(ctx, "add_generation_prompt");
        if (!(p->context = cJSON_PrintUnformatted(ctx))) ok = fail(r, NULL, "out of memory");
    }
    cJSON_Delete(ctx);
    return ok;
}

/* Whether a field the server does not do asks for something: present and not null, false, 0
 * (1 for best_of), "" or empty. */
static bool asks_for(const cJSON *u, bool one_is_default) {
    if (!u || cJSON_IsNull(u) || cJSON_IsFalse(u)) return false;
    if (cJSON_IsNumber(u)) return u->valuedouble != 0 && !(one_is_default && u->valuedouble == 1);
    if (cJSON_IsString(u)) return *u->valuestring != 0;
    if (cJSON_IsArray(u) || cJSON_IsObject(u)) return cJSON_GetArraySize(u) > 0;
    return true;
}

/* response_format: text (what every reply is), json_object (any JSON object) or json_schema
 * ({"json_schema": {"schema": {...}}}): the reply's grammar, serve_json.c's where its subset
 * holds the schema, else the schema as GBNF (serve_schema.c). */
static bool read_response_format(reader *r, const cJSON *root, serve_params *p) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (!v || cJSON_IsNull(v)) return true;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "type"));
    if (!cJSON_IsObject(v) || !type)
        return fail(r, "response_format", "'response_format' must be an object with a 'type'");
    if (!strcmp(type, "text")) return true;
    const cJSON *schema = NULL;
    if (!strcmp(type, "json_schema")) {
        schema = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v, "json_schema"), "schema");
        if (!cJSON_IsObject(schema) && !cJSON_IsTrue(schema))
            return fail(r, "response_format",
                        "'response_format' json_schema needs {\"json_schema\": {\"schema\": {...}}}");
    } else if (strcmp(type, "json_object")) {
        return fail(r, "response_format", "'response_format' %s is not one of text, json_object, json_schema", type);
    }
    if (r->share && (r->share->shape || r->share->grammar)) { /* a prompt list's: the first prompt's, shared */
        p->shape = json_shape_ref(r->share->shape), p->grammar = gbnf_ref(r->share->grammar);
        return true;
    }
    char why[400], keyword[64], why_grammar[400];
    if ((p->shape = json_shape_compile(schema, why, sizeof why, keyword))) return true;
    if ((p->grammar = schema_grammar(schema, why_grammar, sizeof why_grammar, keyword))) return true;
    /* neither serves it: the recognizer's reason is the more precise one (the bounds that allow
     * nothing, how deep it nests), unless it only met a keyword beyond its subset */
    return fail(r, "response_format", "'response_format' json_schema: %s",
                strstr(why, "is not served") ? why_grammar : why);
}

/* grammar: GBNF text (llama-server's field), whose sentences are the replies allowed. */
static bool read_grammar(reader *r, const cJSON *root, serve_params *p) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, "grammar");
    if (!g || cJSON_IsNull(g) || (cJSON_IsString(g) && !*g->valuestring)) return true;
    if (!cJSON_IsString(g)) return fail(r, "grammar", "'grammar' must be a string of GBNF");
    if (p->shape || p->grammar)
        return fail(r, "grammar", "'grammar' and a JSON 'response_format' cannot be given together");
    char why[256];
    if (r->share && r->share->grammar) return (p->grammar = gbnf_ref(r->share->grammar)), true;
    if (!(p->grammar = gbnf_compile(g->valuestring, strlen(g->valuestring), why, sizeof why)))
        return fail(r, "grammar", "'grammar': %s", why);
    return true;
}

static bool listed(const char *key, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(key, names[i])) return true;
    return false;
}

/* Every field of the body is one this server reads, or one it does not serve with a value that
 * asks for nothing (logprobs: false, presence_penalty: 0, ...): anything else is a 400 naming it,
 * never silently ignored. The name outlives the parsed body in this thread's copy. */
static bool only_served(reader *r, const cJSON *root, bool chat) {
    static const char *const served[] = {"model",
                                         "stream",
                                         "stream_options",
                                         "max_tokens",
                                         "max_completion_tokens",
                                         "temperature",
                                         "top_p",
                                         "top_k",
                                         "min_p",
                                         "repeat_penalty",
                                         "repeat_last_n",
                                         "seed",
                                         "n",
                                         "stop",
                                         "user",
                                         "response_format",
                                         "grammar",
                                         "cache_prompt",
                                         "id_slot",
                                         "cache_salt",
                                         "logprobs",
                                         "top_logprobs",
                                         "presence_penalty",
                                         "frequency_penalty",
                                         "return_token_ids",
                                         "speculative.n_max",
                                         "speculative.n_min",
                                         "speculative.p_min"};
    static const char *const chat_only[] = {
        "tools", "tool_choice", "parallel_tool_calls", "chat_template_kwargs", "reasoning_effort", "reasoning_format"};
    static const char *const unserved[] = {"functions", "function_call", "best_of", "suffix",
                                           "echo",      "logit_bias",    "store",   "metadata"};
    static __thread char name[64];
    const cJSON *f;
    cJSON_ArrayForEach(f, root) {
        if (!strcmp(f->string, chat ? "messages" : "prompt") || (!chat && !strcmp(f->string, "echo")) ||
            listed(f->string, served, sizeof served / sizeof *served) ||
            (chat && listed(f->string, chat_only, sizeof chat_only / sizeof *chat_only)))
            continue;
        snprintf(name, sizeof name, "%s", f->string);
        if (!listed(f->string, unserved, sizeof unserved / sizeof *unserved))
            return fail(r, name, "'%s' is not a field rsr-serve serves for %s", name,
                        chat ? "/v1/chat/completions" : "/v1/completions");
        if (asks_for(f, !strcmp(f->string, "best_of"))) return fail(r, name, "'%s' is not served by rsr-serve", name);
    }
    return true;
}

/* logprobs: chat's a boolean with top_logprobs (0..20) beside it; completions' the number of
 * alternatives (0..5), as OpenAI has them. */
static bool read_logprobs(reader *r, const cJSON *root, serve_params *p) {
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    double v = NAN;
    if (p->chat) {
        if (lp && !cJSON_IsNull(lp) && !cJSON_IsBool(lp))
            return fail(r, "logprobs", "'logprobs' must be true or false");
        if (!integer(r, root, "top_logprobs", 0, SERVE_MAX_TOP_LOGPROBS, &v)) return false;
        if (!isnan(v) && !cJSON_IsTrue(lp)) return fail(r, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
        p->logprobs = cJSON_IsTrue(lp), p->top_logprobs = isnan(v) ? 0 : (int32_t)v;
        return true;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "top_logprobs"))
        return fail(r, "top_logprobs", "'top_logprobs' is a chat field; completions take 'logprobs': N");
    if (!integer(r, root, "logprobs", 0, 5, &v)) return false;
    if (!isnan(v)) p->logprobs = true, p->top_logprobs = (int32_t)v;
    return true;
}

/* Token ids: a non-empty array of integers in [0, 2^31) (the vocabulary is the caller's to check);
 * where names it in a message ("prompt", "prompt[2]"). ids NULL: checked only. */
static bool read_prompt_ids(reader *r, const cJSON *v, const char *where, int32_t **ids, int32_t *n) {
    int count = cJSON_GetArraySize(v), k = 0;
    if (count == 0) return fail(r, "prompt", "%s is an empty list of token ids", where);
    if (ids && !(*ids = malloc(sizeof **ids * (size_t)count))) return fail(r, NULL, "out of memory");
    const cJSON *t;
    cJSON_ArrayForEach(t, v) {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || !(t->valuedouble >= 0) ||
            t->valuedouble > INT32_MAX)
            return fail(r, "prompt", "%s[%d] is not a token id (an integer from 0)", where, k);
        if (ids) (*ids)[k] = (int32_t)t->valuedouble;
        k++;
    }
    if (n) *n = count;
    return true;
}

/* One prompt: a text, or token ids. */
static bool read_one_prompt(reader *r, const cJSON *v, const char *where, serve_params *p, bool keep) {
    if (cJSON_IsString(v)) return !keep || (p->prompt = dup_string(v->valuestring)) || fail(r, NULL, "out of memory");
    if (cJSON_IsArray(v))
        return read_prompt_ids(r, v, where, keep ? &p->prompt_ids : NULL, keep ? &p->n_prompt_ids : NULL);
    return fail(r, "prompt", "%s must be a string or a list of token ids", where);
}

/* prompt: "text", [id, ...], or a list of up to SERVE_MAX_PROMPTS of those ("text" or [id, ...]).
 * Keeps prompt `which`; the first call (which 0) checks them all and counts them. */
static bool read_prompt(reader *r, const cJSON *root, int32_t which, serve_params *p) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!v || cJSON_IsNull(v)) return fail(r, "prompt", "'prompt' is required");
    const cJSON *first = cJSON_IsArray(v) ? v->child : NULL;
    if (cJSON_IsArray(v) && !first) return fail(r, "prompt", "'prompt' is an empty list");
    p->prompt_list = first && !cJSON_IsNumber(first); /* a list of prompts, not one prompt's ids */
    p->n_prompts = p->prompt_list ? cJSON_GetArraySize(v) : 1, p->index = which;
    if (!p->prompt_list) return read_one_prompt(r, v, "prompt", p, true);
    if (p->n_prompts > SERVE_MAX_PROMPTS)
        return fail(r, "prompt", "'prompt' holds %d prompts; at most %d a request", p->n_prompts, SERVE_MAX_PROMPTS);
    const cJSON *e;
    int32_t k = 0;
    cJSON_ArrayForEach(e, v) {
        char where[32];
        snprintf(where, sizeof where, "prompt[%d]", k);
        if ((which == 0 || k == which) && !read_one_prompt(r, e, where, p, k == which)) return false;
        k++;
    }
    return true;
}

/* Prompt `which` of the body (the first also checks every other and counts them). */
static bool read_all(reader *r, const cJSON *root, bool chat, int32_t which, serve_params *p) {
    if (!cJSON_IsObject(root)) return fail(r, NULL, "the body must be a JSON object");
    p->chat = chat;
    p->n_prompts = 1;
    p->max_tokens = -1;
    p->sampler = (rsr_sampler_params){.temperature = 1.0f, .top_k = 0, .top_p = 1.0f}; /* OpenAI's defaults */
    p->repeat_last_n = 64;
    p->spec_n_max = p->spec_n_min = -1, p->spec_p_min = NAN;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) return fail(r, "model", "'model' must be a string");
        p->model = dup_string(model->valuestring);
    }
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (stream && !cJSON_IsNull(stream)) {
        if (!cJSON_IsBool(stream)) return fail(r, "stream", "'stream' must be true or false");
        p->stream = cJSON_IsTrue(stream);
    }
    p->cache_prompt = true; /* the results are the same either way (serve_engine.c, admit) */
    const cJSON *cache = cJSON_GetObjectItemCaseSensitive(root, "cache_prompt");
    if (cache && !cJSON_IsNull(cache)) {
        if (!cJSON_IsBool(cache)) return fail(r, "cache_prompt", "'cache_prompt' must be true or false");
        p->cache_prompt = cJSON_IsTrue(cache);
    }
    const cJSON *salt = cJSON_GetObjectItemCaseSensitive(root, "cache_salt");
    if (salt && !cJSON_IsNull(salt)) {
        if (!cJSON_IsString(salt) || !*salt->valuestring)
            return fail(r, "cache_salt", "'cache_salt' must be a non-empty string");
        p->cache_salt = dup_string(salt->valuestring);
    }
    if (chat) {
        if (!read_chat(r, root, p)) return false;
    } else if (!read_prompt(r, root, which, p)) {
        return false;
    }
    double v = NAN;
    const char *max_key =
        cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (!integer(r, root, max_key, 0, 1 << 30, &v)) return false;
    if (!isnan(v)) p->max_tokens = (int32_t)v;
    v = NAN;
    if (!number(r, root, "temperature", 0, 100, &v)) return false; /* OpenAI: 0..2; rsr-run takes up to 100 */
    if (!isnan(v)) p->sampler.temperature = (float)v;
    v = NAN;
    if (!number(r, root, "top_p", 0, 1, &v)) return false;
    if (!isnan(v)) p->sampler.top_p = v > 0 ? (float)v : 1e-9f;
    v = NAN;
    if (!integer(r, root, "top_k", -1, 1 << 30, &v)) return false;
    if (!isnan(v)) p->sampler.top_k = v > 0 ? (int32_t)v : 0;
    v = NAN;
    if (!number(r, root, "min_p", 0, 1, &v)) return false;
    if (!isnan(v)) p->sampler.min_p = (float)v;
    v = NAN;
    if (!number(r, root, "repeat_penalty", 0, 100, &v)) return false; /* 0 or 1: off */
    if (!isnan(v)) p->sampler.repeat_penalty = (float)v;
    v = NAN;
    if (!integer(r, root, "id_slot", -1, RSR_BATCH_MAX - 1, &v)) return false; /* the server checks its slots */
    p->pin_slot = isnan(v) ? 0 : (int32_t)v + 1;
    v = NAN;
    if (!integer(r, root, "repeat_last_n", -1, 1 << 30, &v)) return false; /* -1: the whole context */
    if (!isnan(v)) p->repeat_last_n = v < 0 ? 1 << 30 : (int32_t)v;
    v = NAN;
    if (!integer(r, root, "seed", -9.2e18, 9.2e18, &v)) return false;
    if (!isnan(v)) p->has_seed = true, p->seed = (uint64_t)(int64_t)v;
    v = NAN;
    if (!integer(r, root, "n", 1, 1 << 30, &v)) return false;
    if (!isnan(v) && v != 1) return fail(r, "n", "'n' is %g; this server gives one choice per request (n = 1)", v);
    if (!read_response_format(r, root, p) || !read_grammar(r, root, p) || !read_logprobs(r, root, p)) return false;
    v = NAN;
    if (!number(r, root, "presence_penalty", -2, 2, &v)) return false;
    if (!isnan(v)) p->presence_penalty = (float)v;
    v = NAN;
    if (!number(r, root, "frequency_penalty", -2, 2, &v)) return false;
    if (!isnan(v)) p->frequency_penalty = (float)v;
    v = NAN;
    if (!integer(r, root, "speculative.n_max", 0, 1 << 30, &v)) return false;
    if (!isnan(v)) p->spec_n_max = (int32_t)v;
    v = NAN;
    if (!integer(r, root, "speculative.n_min", 0, 1 << 30, &v)) return false;
    if (!isnan(v)) p->spec_n_min = (int32_t)v;
    v = NAN;
    if (!number(r, root, "speculative.p_min", 0, 1, &v)) return false; /* a draft model's: none with ngram-simple */
    p->spec_p_min = (float)v;
    if (!flag(r, root, "return_token_ids", &p->return_token_ids) || (!chat && !flag(r, root, "echo", &p->echo)))
        return false;
    return read_stop(r, root, p) && only_served(r, root, chat);
}

/* A \u0000 escape anywhere (escapes only occur inside strings): a backslash that is not itself
 * escaped, followed by u0000. */
bool serve_json_has_nul(const char *s, size_t n) {
    for (size_t i = 0; i + 5 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4)) return true;
        i++; /* the escaped character, a backslash included */
    }
    return false;
}

/* What one request's JSON may hold, checked before any work reads it: the renderer's dictionaries
 * and the template's scopes look names up one by one, so an object of 80,000 keys would cost
 * seconds of CPU (and every client's encoding once waited on the renderer under one lock). */
enum { JSON_MAX_KEYS = 4096, JSON_MAX_ITEMS = 1 << 20, JSON_MAX_NODES = 1 << 22 };

/* The first place v breaks those limits, as a message naming the top-level field it is under
 * (copied: the tree is freed before the reply names it). */
static bool json_shape_ok(reader *r, const cJSON *v, const char *field, long *nodes) {
    static _Thread_local char named[80];
    int count = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        const bool over_nodes = ++*nodes > JSON_MAX_NODES,
                   over = ++count > (cJSON_IsObject(v) ? JSON_MAX_KEYS : JSON_MAX_ITEMS);
        if (over_nodes || over) {
            snprintf(named, sizeof named, "%s", field ? field : "");
            if (over_nodes)
                return fail(r, field ? named : NULL, "the body has more than %d JSON values: more than a request needs",
                            JSON_MAX_NODES);
            return fail(r, field ? named : NULL, "%s '%s' has more than %d %s",
                        cJSON_IsObject(v) ? "an object under" : "an array under", field ? named : "the body",
                        cJSON_IsObject(v) ? JSON_MAX_KEYS : JSON_MAX_ITEMS, cJSON_IsObject(v) ? "keys" : "elements");
        }
        if (e->child && !json_shape_ok(r, e, field ? field : e->string, nodes)) return false;
    }
    return true;
}

/* Where the body's text nests deeper than the reader takes (CJSON_NESTING_LIMIT arrays and
 * objects): the byte offset and, in field, the top-level key it is under ("" at the top); -1 if
 * nowhere. A scan of the text, strings skipped, that a parse failure asks for. */
static long too_deep_at(const char *s, size_t n, char *field, size_t cap) {
    int depth = 0;
    size_t key = 0, key_len = 0;
    field[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            const size_t open = i;
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
            if (depth == 1) key = open + 1, key_len = i - open - 1; /* a top-level key (or a value: harmless) */
        } else if (s[i] == '{' || s[i] == '[') {
            if (depth == 1 && key_len) { /* named only as a request's fields are: letters, digits, '_' */
                snprintf(field, cap, "%.*s", (int)(key_len < cap - 1 ? key_len : cap - 1), s + key);
                for (char *c = field; *c; c++)
                    if (!isalnum((unsigned char)*c) && *c != '_') field[0] = 0;
            }
            if (++depth > CJSON_NESTING_LIMIT) return (long)i;
        } else if (s[i] == '}' || s[i] == ']') {
            depth--;
        }
    }
    return -1;
}

/* The body's one JSON value, with nothing after it and no \u0000 in it; NULL with the message. */
static cJSON *read_root(reader *r, const char *body, size_t len) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root) {
        static _Thread_local char field[64];
        const long at = too_deep_at(body, len, field, sizeof field);
        if (at >= 0)
            fail(r, field[0] ? field : NULL, "%s%s%s nests arrays and objects over %d deep (at byte %ld)",
                 field[0] ? "'" : "the body", field, field[0] ? "'" : "", CJSON_NESTING_LIMIT, at);
        else
            fail(r, NULL, "the body is not valid JSON");
        return NULL;
    }
    size_t at = (size_t)(end - body);
    while (at < len && strchr(" \t\r\n", body[at]) && body[at]) at++;
    if (at < len) { /* cJSON stops after the first value */
        cJSON_Delete(root);
        fail(r, NULL, "the body is not valid JSON: more follows the object, at byte %zu", at);
        return NULL;
    }
    if (serve_json_has_nul(body, len)) { /* a C string would end there: the text would be cut short */
        cJSON_Delete(root);
        fail(r, NULL, "the body holds \\u0000 (a NUL character), which no prompt or message may contain");
        return NULL;
    }
    long nodes = 0;
    if (!json_shape_ok(r, root, NULL, &nodes)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

bool serve_parse(const char *body, size_t len, bool chat, serve_params *p, char *err, size_t errlen,
                 const char **param) {
    memset(p, 0, sizeof *p);
    *param = NULL;
    reader r = {err, errlen, param, NULL};
    cJSON *root = read_root(&r, body, len);
    if (!root) return false;
    bool ok = read_all(&r, root, chat, 0, p);
    cJSON_Delete(root);
    if (!ok) serve_params_free(p);
    return ok;
}

bool serve_parse_all(const char *body, size_t len, bool chat, serve_params **ps, int32_t *n, char *err, size_t errlen,
                     const char **param) {
    *ps = NULL, *n = 0, *param = NULL;
    reader r = {err, errlen, param, NULL};
    cJSON *root = read_root(&r, body, len);
    if (!root) return false;
    serve_params first;
    memset(&first, 0, sizeof first);
    bool ok = read_all(&r, root, chat, 0, &first);
    serve_params *all = ok ? calloc((size_t)first.n_prompts, sizeof *all) : NULL;
    if (ok && !all) ok = fail(&r, NULL, "out of memory");
    if (ok) {
        all[0] = first;
        r.share = &all[0];                                  /* the grammar or schema compiled once, for every prompt */
        for (int32_t k = 1; k < first.n_prompts && ok; k++) /* checked with the first: only memory may fail */
            if (!(ok = read_all(&r, root, chat, k, &all[k]))) serve_params_free(&all[k]);
        *n = first.n_prompts;
        if (!ok) {
            for (int32_t k = 0; k < *n; k++) serve_params_free(&all[k]);
            free(all), all = NULL, *n = 0;
        }
    } else {
        serve_params_free(&first);
    }
    cJSON_Delete(root);
    *ps = all;
    return ok;
}

/* ---- /v1/embeddings ---- */

void serve_embed_params_free(serve_embed_params *p) {
    for (int32_t i = 0; p->in && i < p->n_in; i++) free(p->in[i].text), free(p->in[i].ids);
    free(p->in);
    free(p->model);
    memset(p, 0, sizeof *p);
}

/* Token ids (a non-empty array of integers in [0, vocab)) into in; where names the input in the
 * message ("input", "input[3]"). */
static bool read_embed_ids(reader *r, const cJSON *v, int32_t vocab, const char *where, serve_embed_input *in) {
    int n = cJSON_GetArraySize(v), k = 0;
    if (n == 0) return fail(r, "input", "%s is an empty list of token ids", where);
    if (!(in->ids = malloc(sizeof *in->ids * (size_t)n))) return fail(r, NULL, "out of memory");
    const cJSON *t;
    cJSON_ArrayForEach(t, v) {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble))
            return fail(r, "input", "%s[%d] is not a token id (an integer)", where, k);
        if (!(t->valuedouble >= 0 && t->valuedouble < vocab))
            return fail(r, "input", "%s[%d] is %.0f, outside this model's vocabulary [0, %d)", where, k, t->valuedouble,
                        vocab);
        in->ids[k++] = (int32_t)t->valuedouble;
    }
    in->n_ids = n;
    return true;
}

/* One input: a non-empty text, or token ids. */
static bool read_embed_input(reader *r, const cJSON *v, int32_t vocab, const char *where, serve_embed_input *in) {
    if (cJSON_IsString(v)) {
        if (!*v->valuestring) return fail(r, "input", "%s is an empty string", where);
        return (in->text = dup_string(v->valuestring)) || fail(r, NULL, "out of memory");
    }
    if (cJSON_IsArray(v)) return read_embed_ids(r, v, vocab, where, in);
    return fail(r, "input", "%s must be a string or a list of token ids", where);
}

/* input: "text", ["text", ...], [id, ...] or [[id, ...], ...]; at most SERVE_MAX_EMBED_INPUTS. */
static bool read_embed_inputs(reader *r, const cJSON *root, int32_t vocab, serve_embed_params *p) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!v || cJSON_IsNull(v)) return fail(r, "input", "'input' is required");
    const cJSON *first = cJSON_IsArray(v) ? v->child : NULL;
    p->list = first && !cJSON_IsNumber(first); /* a list of texts or of lists of ids (else one input) */
    int n = p->list ? cJSON_GetArraySize(v) : 1;
    if (cJSON_IsArray(v) && !first) return fail(r, "input", "'input' is an empty list");
    if (n > SERVE_MAX_EMBED_INPUTS)
        return fail(r, "input", "'input' holds %d inputs; at most %d a request", n, SERVE_MAX_EMBED_INPUTS);
    if (!(p->in = calloc((size_t)n, sizeof *p->in))) return fail(r, NULL, "out of memory");
    if (!p->list) return p->n_in = 1, read_embed_input(r, v, vocab, "input", &p->in[0]);
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        char where[32];
        snprintf(where, sizeof where, "input[%d]", p->n_in);
        if (!cJSON_IsString(e) && !cJSON_IsArray(e))
            return fail(r, "input", "%s must be a string or a list of token ids", where);
        if (!read_embed_input(r, e, vocab, where, &p->in[p->n_in++])) return false;
    }
    return true;
}

/* model, encoding_format, dimensions (checked against the model by the caller), user; any other
 * field is a 400 naming it. */
static bool read_embed_fields(reader *r, const cJSON *root, serve_embed_params *p) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) return fail(r, "model", "'model' must be a string");
        if (!(p->model = dup_string(model->valuestring))) return fail(r, NULL, "out of memory");
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
    if (fmt && !cJSON_IsNull(fmt)) {
        const char *f = cJSON_GetStringValue(fmt);
        if (!f || (strcmp(f, "float") && strcmp(f, "base64")))
            return fail(r, "encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
        p->base64 = !strcmp(f, "base64");
    }
    double v = NAN;
    if (!integer(r, root, "dimensions", 1, 1 << 30, &v)) return false;
    p->dimensions = isnan(v) ? -1 : (int32_t)v;
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
    if (user && !cJSON_IsNull(user) && !cJSON_IsString(user)) return fail(r, "user", "'user' must be a string");
    static const char *const served[] = {"input", "model", "encoding_format", "dimensions", "user"};
    static __thread char name[64];
    const cJSON *f;
    cJSON_ArrayForEach(f, root) {
        if (listed(f->string, served, sizeof served / sizeof *served)) continue;
        snprintf(name, sizeof name, "%s", f->string);
        return fail(r, name, "'%s' is not a field rsr-serve serves for /v1/embeddings", name);
    }
    return true;
}

bool serve_embed_parse(const char *body, size_t len, int32_t vocab, serve_embed_params *p, char *err, size_t errlen,
                       const char **param) {
    memset(p, 0, sizeof *p);
    *param = NULL;
    reader r = {err, errlen, param, NULL};
    cJSON *root = read_root(&r, body, len);
    if (!root) return false;
    bool ok = cJSON_IsObject(root) ? read_embed_fields(&r, root, p) && read_embed_inputs(&r, root, vocab, p)
                                   : fail(&r, NULL, "the body must be a JSON object");
    cJSON_Delete(root);
    if (!ok) serve_embed_params_free(p);
    return ok;
}
