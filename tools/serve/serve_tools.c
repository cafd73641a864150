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
 *   qwen3_coder  Qwen3.5, Qwen3-Coder: <tool_call>\n<function=NAME>\n<parameter=P>\nVALUE\n</parameter>\n...
 *            </function>\n</tool_call>, repeated; a value is raw text: a string parameter's is the
 *            string as is, any other's is JSON (the parameter's schema says which, as vLLM's and
 *            llama.cpp's qwen3_coder parsers read it)
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
    static const char *const names[] = {"generic", "hermes", "llama3", "mistral", "qwen3_coder"};
    return names[f];
}

serve_tool_format serve_tool_format_of(const char *rendered, const char *probe_name) {
    /* before hermes: Qwen3.5's template shows <tool_call> too, around its <function=...> blocks */
    if (strstr(rendered, "<function=")) return SERVE_TOOL_QWEN3_CODER;
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

/* ---- qwen3_coder's grammar: XML-like blocks whose values are raw text ---- */

/* s as a GBNF string literal: the names come from the request (a schema's keys are any text). */
static void gt_lit(gbnf_text *g, const char *s) {
    gbnf_text_str(g, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\')
            snprintf(esc, sizeof esc, "\\%c", *p);
        else if (*p < 0x20)
            snprintf(esc, sizeof esc, "\\x%02X", *p);
        else
            esc[0] = (char)*p, esc[1] = 0;
        gbnf_text_str(g, esc);
    }
    gbnf_text_str(g, "\"");
}

/* A parameter whose value the template writes as the text itself (`args_value | string`) and the
 * parsers read back as a string: type string (or a list of types with string), or an enum or const
 * of strings only. Any other is JSON. */
static bool text_param(const cJSON *s) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type"), *e;
    if (cJSON_IsString(t)) return !strcmp(t->valuestring, "string");
    if (cJSON_IsArray(t)) {
        cJSON_ArrayForEach(e, t) if (cJSON_IsString(e) && !strcmp(e->valuestring, "string")) return true;
        return false;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(s, "const");
    if (c) return cJSON_IsString(c);
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
    if (!cJSON_IsArray(en) || !cJSON_GetArraySize(en)) return false;
    cJSON_ArrayForEach(e, en) if (!cJSON_IsString(e)) return false;
    return true;
}

/* Rules text-0 .. text-11: any text that never holds "</parameter>" (where a value ends), as the
 * states of matching it: text-K has matched its first K bytes. */
static void text_rules(gbnf_text *g) {
    static const char end[] = "</parameter>";
    char line[128];
    gbnf_text_str(g, "text-0 ::= ([^<] text-0 | \"<\" text-1)?\n");
    for (int k = 1; k < 12; k++) {
        if (k < 11)
            snprintf(line, sizeof line, "text-%d ::= (\"%c\" text-%d | \"<\" text-1 | [^%c<] text-0)?\n", k, end[k],
                     k + 1, end[k]);
        else
            snprintf(line, sizeof line, "text-%d ::= (\"<\" text-1 | [^%c<] text-0)?\n", k, end[k]);
        gbnf_text_str(g, line);
    }
}

/* One rule line of schema_gbnf's text into g: root becomes `name`, rN `name-N`; the JSON rules
 * every schema shares (value, string, ...) are written once, by the first parameter. */
static void rename_rule(gbnf_text *g, const char *line, size_t n, const char *name, bool shared_done) {
    size_t lhs = strcspn(line, " ");
    bool own = (lhs == 4 && !memcmp(line, "root", 4)) || (line[0] == 'r' && strspn(line + 1, "0123456789") == lhs - 1);
    if (!own) {
        if (!shared_done) gbnf_text_put(g, line, n), gbnf_text_str(g, "\n");
        return;
    }
    for (size_t i = 0; i < n;) {
        if (line[i] == '"' || line[i] == '[') { /* a literal or a class: copied as it is */
            char close = line[i] == '"' ? '"' : ']';
            size_t j = i + 1;
            while (j < n && line[j] != close) j += line[j] == '\\' ? 2 : 1;
            j = j < n ? j + 1 : n;
            gbnf_text_put(g, line + i, j - i), i = j;
        } else if ((line[i] >= 'a' && line[i] <= 'z') || (line[i] >= 'A' && line[i] <= 'Z')) {
            size_t j = i + strspn(line + i, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
            bool num = line[i] == 'r' && j > i + 1 && strspn(line + i + 1, "0123456789") == j - i - 1;
            if (num || (j - i == 4 && !memcmp(line + i, "root", 4))) {
                gbnf_text_str(g, name);
                if (num) gbnf_text_str(g, "-"), gbnf_text_put(g, line + i + 1, j - i - 1);
            } else {
                gbnf_text_put(g, line + i, j - i);
            }
            i = j;
        } else {
            gbnf_text_put(g, line + i, 1), i++;
        }
    }
    gbnf_text_str(g, "\n");
}

/* The JSON value of a parameter's schema as rules whose start is `name`; the $defs of the
 * function's parameters go along for the $refs into them. */
static bool json_value_rules(gbnf_text *g, const cJSON *schema, const cJSON *params, const char *name,
                             bool *shared_done, char *err, size_t errlen) {
    cJSON *s = cJSON_Duplicate(schema, 1);
    static const char *const defs[] = {"$defs", "definitions"};
    for (int d = 0; s && d < 2; d++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(params, defs[d]);
        if (x && !cJSON_GetObjectItemCaseSensitive(s, defs[d]))
            cJSON_AddItemToObject(s, defs[d], cJSON_Duplicate(x, 1));
    }
    char keyword[64];
    char *text = s ? schema_gbnf(s, err, errlen, keyword) : NULL;
    cJSON_Delete(s);
    if (!text) return false;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        if (n) rename_rule(g, p, n, name, *shared_done);
        p += n + (p[n] == '\n');
    }
    free(text);
    *shared_done = true;
    return true;
}

/* A string parameter's enum or const as the alternatives of its texts; false where it has none
 * (or one not a string): then any text. */
static bool text_choices(gbnf_text *g, const cJSON *p) {
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(p, "const"),
                *list = cJSON_GetObjectItemCaseSensitive(p, "enum");
    const cJSON *c;
    if (one) return cJSON_IsString(one) && (gt_lit(g, one->valuestring), true);
    if (!cJSON_IsArray(list) || !cJSON_GetArraySize(list)) return false;
    cJSON_ArrayForEach(c, list) if (!cJSON_IsString(c)) return false;
    gbnf_text_str(g, "(");
    cJSON_ArrayForEach(c, list) gbnf_text_str(g, c == list->child ? "" : " | "), gt_lit(g, c->valuestring);
    gbnf_text_str(g, ")");
    return true;
}

/* fn-K-J ::= "<parameter=NAME>\n" VALUE "\n</parameter>\n", VALUE text (a string) or the JSON
 * of the parameter's schema. */
static bool xml_param_rule(gbnf_text *g, const cJSON *p, const cJSON *params, int k, int j, bool *shared_done,
                           char *err, size_t errlen) {
    char name[48];
    snprintf(name, sizeof name, "fn-%d-%d ::= ", k, j);
    gbnf_text_str(g, name), gt_lit(g, "<parameter="), gbnf_text_str(g, " "), gt_lit(g, p->string),
        gbnf_text_str(g, " \">\\n\" ");
    bool text = text_param(p);
    snprintf(name, sizeof name, "val-%d-%d", k, j);
    if (!text)
        gbnf_text_str(g, name);
    else if (!text_choices(g, p))
        gbnf_text_str(g, "text-0");
    gbnf_text_str(g, " \"\\n</parameter>\\n\"\n");
    return text || json_value_rules(g, p, params, name, shared_done, err, errlen);
}

/* fn-K ::= "<function=NAME>\n" (its parameters, in the schema's order: the required ones, the
 * others optional) "</function>". */
static bool xml_function_rules(gbnf_text *g, const cJSON *f, int k, bool *shared_done, char *err, size_t errlen) {
    const char *fname = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(params, "properties"), *req, *p;
    const cJSON *required = cJSON_GetObjectItemCaseSensitive(params, "required");
    char ref[48];
    gbnf_text body = {0};
    int j = 0;
    cJSON_ArrayForEach(p, props) {
        bool needed = false;
        cJSON_ArrayForEach(req, required) needed |= cJSON_IsString(req) && !strcmp(req->valuestring, p->string);
        snprintf(ref, sizeof ref, " fn-%d-%d%s", k, j, needed ? "" : "?");
        gbnf_text_str(&body, ref);
        if (!xml_param_rule(g, p, params, k, j++, shared_done, err, errlen)) {
            free(body.s);
            return false;
        }
    }
    snprintf(ref, sizeof ref, "fn-%d ::= ", k);
    gbnf_text_str(g, ref), gt_lit(g, "<function="), gbnf_text_str(g, " "), gt_lit(g, fname ? fname : "");
    gbnf_text_str(g, " \">\\n\""), gbnf_text_str(g, body.s ? body.s : ""), gbnf_text_str(g, " \"</function>\"\n");
    free(body.s);
    return true;
}

/* The calls' grammar in qwen3_coder's format: the call one of the functions (or the named one),
 * each in its <tool_call> block where the marker is text. */
static char *xml_gbnf(const cJSON *tools, const char *only, bool parallel, bool marker_text, char *err, size_t errlen) {
    gbnf_text g = {0}, alts = {0};
    bool shared_done = false;
    const cJSON *t;
    int k = 0;
    gbnf_text_str(&g, parallel ? "root ::= one (\"\\n\" one)*\n" : "root ::= one\n");
    gbnf_text_str(&g, marker_text ? "one ::= \"<tool_call>\\n\" call \"\\n</tool_call>\"\n" : "one ::= call\n");
    text_rules(&g);
    cJSON_ArrayForEach(t, tools) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
        if (!name || (only && strcmp(only, name))) continue;
        char ref[32];
        snprintf(ref, sizeof ref, "%sfn-%d", alts.n ? " | " : "", k);
        gbnf_text_str(&alts, ref);
        if (!xml_function_rules(&g, f, k++, &shared_done, err, errlen)) goto fail;
    }
    if (!alts.n) {
        snprintf(err, errlen, "no function to call");
        goto fail;
    }
    gbnf_text_str(&g, "call ::= "), gbnf_text_str(&g, alts.s), gbnf_text_str(&g, "\n");
    if (g.oom || alts.oom) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    free(alts.s);
    return g.s;
fail:
    free(g.s), free(alts.s);
    return NULL;
}

char *serve_tool_gbnf(serve_tool_format f, const cJSON *tools, const char *only, bool parallel, bool marker_text,
                      char *err, size_t errlen) {
    if (f == SERVE_TOOL_QWEN3_CODER) return xml_gbnf(tools, only, parallel, marker_text, err, errlen);
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
    *at_start = f != SERVE_TOOL_HERMES && f != SERVE_TOOL_QWEN3_CODER;
    switch (f) {
    case SERVE_TOOL_HERMES:
    case SERVE_TOOL_QWEN3_CODER: return marker_text ? "<tool_call>" : NULL;
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

/* ---- qwen3_coder's calls ---- */

/* The schema of parameter pname of the offered function fname, or NULL. */
static const cJSON *param_schema(const cJSON *offered, const char *fname, const char *pname) {
    const cJSON *t;
    cJSON_ArrayForEach(t, offered) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
        if (!name || strcmp(name, fname)) continue;
        const cJSON *props =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(f, "parameters"), "properties");
        return cJSON_GetObjectItemCaseSensitive(props, pname);
    }
    return NULL;
}

/* s is a number as JSON writes one (cJSON reads more: "007", "1.", "+1"). */
static bool json_number(const char *s) {
    if (*s == '-') s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        s += strspn(s, "0123456789");
    else
        return false;
    if (*s == '.' && !(s[1] >= '0' && s[1] <= '9')) return false;
    if (*s == '.') s += 1 + strspn(s + 1, "0123456789");
    if (*s == 'e' || *s == 'E') {
        s += 1 + (s[1] == '+' || s[1] == '-');
        if (!(*s >= '0' && *s <= '9')) return false;
        s += strspn(s, "0123456789");
    }
    return !*s;
}

/* Every number in the JSON text s (which cJSON read) is one as JSON writes it: then s can go out
 * as written, its numbers' digits kept (cJSON keeps a double). */
static bool strict_numbers(const char *s) {
    char num[512];
    for (const char *p = s; *p;) {
        if (*p == '"') {
            p = skip_value(p);
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) { /* (the e of true is no number's) */
            size_t n = strspn(p, "-+0123456789.eE");
            if (n >= sizeof num) return false;
            memcpy(num, p, n), num[n] = 0;
            if (!json_number(num)) return false;
            p += n;
        } else {
            p++;
        }
    }
    return true;
}

/* A parameter's value v[0, n) as JSON text (malloc'd): the text as a string where the schema says
 * string; else the JSON it holds (as written, white space out, where its numbers are JSON's; Python's True, False, None as JSON's,
 * which the template's `| string` may write), or the text as a string where it holds none. The
 * newline after <parameter=...> and the one before </parameter> are the format's, not the value's. */
static char *param_json(const cJSON *schema, const char *v, size_t n) {
    if (n && v[0] == '\n') v++, n--;
    if (n && v[n - 1] == '\n') n--;
    char *text = dup_n(v, n), *out = NULL;
    if (!text) return NULL;
    if (!schema || !text_param(schema)) {
        size_t a = skip_space(text, 0, n), b = n;
        while (b > a && strchr(" \n\t\r", text[b - 1])) b--;
        char *t = dup_n(text + a, b - a);
        static const char *const py[][2] = {{"True", "true"}, {"False", "false"}, {"None", "null"}};
        for (int i = 0; t && i < 3; i++)
            if (!strcmp(t, py[i][0])) free(t), t = strdup(py[i][1]);
        const char *end = NULL;
        cJSON *j = t ? cJSON_ParseWithOpts(t, &end, 1) : NULL;
        if (j) out = strict_numbers(t) ? (cJSON_Minify(t), strdup(t)) : cJSON_PrintUnformatted(j);
        cJSON_Delete(j), free(t);
    }
    if (!out) {
        cJSON *str = cJSON_CreateString(text);
        out = str ? cJSON_PrintUnformatted(str) : NULL;
        cJSON_Delete(str);
    }
    free(text);
    return out;
}

/* The name in "<TAG=NAME>" at s into name (cap bytes), and where it ends; NULL if s holds none. */
static const char *tag_name(const char *s, const char *tag, char *name, size_t cap) {
    size_t t = strlen(tag);
    if (strncmp(s, tag, t)) return NULL;
    size_t n = strcspn(s + t, ">\n<");
    if (!n || n >= cap || s[t + n] != '>') return NULL;
    memcpy(name, s + t, n), name[n] = 0;
    return s + t + n + 1;
}

/* A call's <parameter=...> blocks from s into args ({"P":VALUE,...}; a repeated one keeps its
 * first value); where </function> ends them, or NULL if they are not whole. */
static const char *xml_params(const cJSON *offered, const char *fname, const char *s, gbnf_text *args) {
    cJSON *seen = cJSON_CreateObject();
    char pname[256];
    gbnf_text_str(args, "{");
    for (;;) {
        s += skip_space(s, 0, strlen(s));
        if (!strncmp(s, "</function>", 11)) break;
        const char *v = tag_name(s, "<parameter=", pname, sizeof pname), *vend = v ? strstr(v, "</parameter>") : NULL;
        if (!vend) return cJSON_Delete(seen), NULL;
        if (!cJSON_GetObjectItemCaseSensitive(seen, pname)) {
            cJSON *key = cJSON_CreateString(pname);
            char *k = key ? cJSON_PrintUnformatted(key) : NULL;
            char *val = param_json(param_schema(offered, fname, pname), v, (size_t)(vend - v));
            if (!k || !val) args->oom = true;
            if (k && val)
                gbnf_text_str(args, args->n > 1 ? "," : ""), gbnf_text_str(args, k), gbnf_text_str(args, ":"),
                    gbnf_text_str(args, val);
            cJSON_AddTrueToObject(seen, pname);
            cJSON_Delete(key), free(k), free(val);
        }
        s = vend + strlen("</parameter>");
    }
    cJSON_Delete(seen);
    gbnf_text_str(args, "}");
    return args->oom ? NULL : s + strlen("</function>");
}

/* The call at s (just past <tool_call>) into OpenAI's form; where it ends (past </tool_call>,
 * which may be missing), or NULL if it is not a whole call. */
static const char *add_xml_call(cJSON *calls, const cJSON *offered, const char *s, const char *id_base, int k) {
    char fname[128], id[96];
    s += skip_space(s, 0, strlen(s));
    const char *p = tag_name(s, "<function=", fname, sizeof fname);
    gbnf_text args = {0};
    const char *end = p ? xml_params(offered, fname, p, &args) : NULL;
    if (!end) return free(args.s), NULL;
    const char *after = end + skip_space(end, 0, strlen(end));
    if (!strncmp(after, "</tool_call>", 12)) end = after + 12;
    cJSON *c = cJSON_CreateObject(), *f;
    snprintf(id, sizeof id, "call_%s_%d", id_base, k);
    cJSON_AddStringToObject(c, "id", id);
    cJSON_AddStringToObject(c, "type", "function");
    f = cJSON_AddObjectToObject(c, "function");
    cJSON_AddStringToObject(f, "name", fname);
    cJSON_AddStringToObject(f, "arguments", args.s);
    cJSON_AddItemToArray(calls, c);
    free(args.s);
    return end;
}

/* The calls in s (the reply from where they begin), or NULL when it holds none that parse; *stop
 * where the last of them ends (past its closing marker). */
static cJSON *parse_calls(serve_tool_format f, const cJSON *offered, const char *s, const char *id_base,
                          const char **stop) {
    cJSON *calls = cJSON_CreateArray();
    int k = 0;
    const char *end = NULL;
    *stop = s;
    if (f == SERVE_TOOL_QWEN3_CODER) {
        for (const char *at = s; at && (at = strstr(at, "<tool_call>"));)
            if ((at = add_xml_call(calls, offered, at + strlen("<tool_call>"), id_base, k++))) *stop = at;
    } else if (f == SERVE_TOOL_HERMES) {
        const char *at = s;
        while ((at = strstr(at, "<tool_call>"))) {
            at += strlen("<tool_call>");
            cJSON *o = cJSON_ParseWithOpts(at, &end, 0);
            bool ok = o && add_call(calls, o, at, id_base, k++);
            cJSON_Delete(o);
            if (!ok) break;
            at = *stop = end;
            const char *close = end + skip_space(end, 0, strlen(end));
            if (!strncmp(close, "</tool_call>", 12)) *stop = close + 12;
        }
    } else if (f == SERVE_TOOL_LLAMA3) {
        const char *at = s;
        if (!strncmp(at, "<|python_tag|>", 14)) at += 14;
        for (;;) { /* one call, or several separated by ';' */
            cJSON *o = cJSON_ParseWithOpts(at, &end, 0);
            bool ok = o && add_call(calls, o, at, id_base, k++);
            cJSON_Delete(o);
            if (!ok) break;
            *stop = end;
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
        if (o) *stop = end;
        cJSON_Delete(o);
    }
    if (cJSON_GetArraySize(calls) == 0) cJSON_Delete(calls), calls = NULL;
    return calls;
}

/* Whether v is of JSON Schema type name t ("integer": a number without a fraction). */
static bool of_type(const cJSON *v, const char *t) {
    if (!strcmp(t, "string")) return cJSON_IsString(v);
    if (!strcmp(t, "number")) return cJSON_IsNumber(v);
    if (!strcmp(t, "integer")) return cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble;
    if (!strcmp(t, "boolean")) return cJSON_IsBool(v);
    if (!strcmp(t, "object")) return cJSON_IsObject(v);
    if (!strcmp(t, "array")) return cJSON_IsArray(v);
    if (!strcmp(t, "null")) return cJSON_IsNull(v);
    return true; /* a type this check does not know: not refused */
}

/* The arguments against the parameters' schema, as far as a call's shape goes: every required
 * property given, and each given property that the schema lists of its type ("type", a name or a
 * list of them) and among its "enum" values. Other keywords (bounds, patterns, nested schemas)
 * are the grammar's business when tool_choice holds the reply to it; properties the schema does
 * not list are not refused (JSON Schema allows them unless it says otherwise). */
static bool args_fit(const cJSON *params, const cJSON *args, const char *name, char *why, size_t cap) {
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(params, "required"), *props, *e;
    cJSON_ArrayForEach(
        e,
        req) if (cJSON_IsString(e) &&
                 !cJSON_GetObjectItemCaseSensitive(
                     args,
                     e->valuestring)) return snprintf(why, cap,
                                                      "the model's call of '%.64s' lacks the required argument '%.64s'",
                                                      name, e->valuestring),
        false;
    props = cJSON_GetObjectItemCaseSensitive(params, "properties");
    cJSON_ArrayForEach(e, args) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(props, e->string), *t, *en, *x;
        if (!cJSON_IsObject(p)) continue;
        t = cJSON_GetObjectItemCaseSensitive(p, "type"), en = cJSON_GetObjectItemCaseSensitive(p, "enum");
        const cJSON *types = cJSON_IsArray(t) ? t : NULL, *values = cJSON_IsArray(en) ? en : NULL;
        bool ok = !t || (cJSON_IsString(t) && of_type(e, t->valuestring)) || (types && !cJSON_GetArraySize(types));
        cJSON_ArrayForEach(x, types) ok = ok || (cJSON_IsString(x) && of_type(e, x->valuestring));
        bool listed = !values;
        cJSON_ArrayForEach(x, values) listed = listed || cJSON_Compare(x, e, true);
        if (!ok || !listed)
            return snprintf(why, cap, "the model's call of '%.48s' gives '%.48s' a value its schema refuses (%s)", name,
                            e->string, !ok ? "its type" : "not among its enum"),
                   false;
    }
    return true;
}

/* Whether every call names a function the request offered, with arguments that are a JSON object
 * its parameters' schema takes (args_fit); else why, in why. The grammar holds a reply to this
 * when the calls were required or named; with tool_choice auto a reply may go its own way. */
static bool calls_offered(const cJSON *calls, const cJSON *offered, char *why, size_t cap) {
    const cJSON *c;
    cJSON_ArrayForEach(c, calls) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "name"));
        const char *args = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "arguments"));
        const cJSON *t, *params = NULL;
        bool found = false;
        cJSON_ArrayForEach(t, offered) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
            const char *offered_name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
            if (name && offered_name && !strcmp(name, offered_name)) {
                found = true, params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
                break;
            }
        }
        if (!found)
            return snprintf(why, cap, "the model called '%.64s', which the request did not offer", name ? name : ""),
                   false;
        cJSON *parsed = args ? cJSON_Parse(args) : NULL;
        bool ok = cJSON_IsObject(parsed);
        if (!ok) snprintf(why, cap, "the model's call of '%.64s' has arguments that are not a JSON object", name);
        ok = ok && (!params || args_fit(params, parsed, name, why, cap));
        cJSON_Delete(parsed);
        if (!ok) return false;
    }
    return true;
}

/* Where the calls begin in s[0, n) (n when they do not), and how much of its end to hold back
 * as the beginning of a marker that may still come. */
static size_t calls_start(serve_tool_format f, const char *s, size_t n, size_t *hold) {
    *hold = 0;
    if (f == SERVE_TOOL_HERMES || f == SERVE_TOOL_QWEN3_CODER) {
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
    size_t end = n, hold = 0, after = n; /* after: where text after the calls begins */
    if (sh->tools) {
        size_t at = calls_start(sh->format, s + i, n - i, &hold);
        if (at < n - i) {
            if (final) {
                char *rest = dup_n(s + i + at, n - i - at);
                const char *stop = rest;
                out->tool_calls = rest ? parse_calls(sh->format, sh->offered, rest, id_base, &stop) : NULL;
                if (out->tool_calls) after = skip_space(s, i + at + (size_t)(stop - rest), n);
                free(rest);
                char why[200];
                if (out->tool_calls && sh->offered && !calls_offered(out->tool_calls, sh->offered, why, sizeof why)) {
                    cJSON_Delete(out->tool_calls), out->tool_calls = NULL; /* returned as text, saying why */
                    out->call_error = dup_n(why, strlen(why));
                }
                if (!out->tool_calls) at = n - i; /* not calls after all: the text is the reply */
            }
            end = i + at;
            hold = 0;
        } else if (final) {
            hold = 0;
        }
    }
    out->content = s + i, out->n_content = end - hold - i;
    if (out->tool_calls && after < n) { /* text after the calls: the content goes on with it */
        const size_t before = out->n_content, more = n - after;
        const size_t sep = before && !strchr(" \t\r\n", out->content[before - 1]) ? 1 : 0; /* a newline between */
        if ((out->owned = malloc(before + sep + more + 1))) {
            memcpy(out->owned, out->content, before);
            if (sep) out->owned[before] = '\n';
            memcpy(out->owned + before + sep, s + after, more);
            out->owned[before + sep + more] = 0;
            out->content = out->owned, out->n_content = before + sep + more;
        }
    }
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
    free(p->owned), free(p->call_error);
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
