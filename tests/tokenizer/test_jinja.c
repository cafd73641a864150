/* test_jinja — rsrc's Jinja interpreter (runtime/tokenizer/jinja.c) against @huggingface/jinja.
 * Reads the references of jinja.mjs (jinja_templates.sh writes them: every template of
 * jinja_cases.json with every conversation, add_generation_prompt false and true), parses each
 * template, renders each case and compares the text byte for byte. Where the reference failed (null),
 * rendering must fail too: by raise_exception (1) with the same message, or by an evaluation error
 * (-1), which is printed with the reference's message to be judged. The reference's contexts (tools,
 * tool calls, ...) are rendered the same way through jinja_render_context. Then malformed and hostile
 * templates (runaway macro recursion among them): each must fail with a message (or end within the
 * limits), never crash.
 * Usage: test_jinja JINJA_REFERENCE.json. Exits 0 when all pass, 1 on a failure, 77 (skipped) when the
 * reference is missing (after the malformed templates, which need none). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja.h"
#include "read_file.h"

/* A template that must not parse (want_parse 0), or that must parse and then fail to render (1), or
 * render within the limits whatever it gives (2). */
typedef struct {
    const char *why, *src;
    int want;
} bad_case;

static char *repeat(const char *a, int n, const char *mid, const char *b) {
    size_t la = strlen(a), lm = strlen(mid), lb = strlen(b);
    char *s = malloc(la * (size_t)n + lm + lb * (size_t)n + 1), *o = s;
    for (int i = 0; i < n; i++) memcpy(o, a, la), o += la;
    memcpy(o, mid, lm), o += lm;
    for (int i = 0; i < n; i++) memcpy(o, b, lb), o += lb;
    *o = 0;
    return s;
}

static int run_bad(const char *why, const char *src, size_t len, int want) {
    char err[512] = "", *out = NULL;
    size_t out_len = 0;
    jinja_message msg = {"user", "hi"};
    jinja_template *t = jinja_parse(src, len, err, sizeof err);
    int ok;
    if (!t) {
        ok = want == 0 && err[0];
        printf("  %-44s parse fails: %s\n", why, err);
    } else {
        int rc = jinja_render(t, &msg, 1, 1, "<s>", NULL, &out, &out_len, err, sizeof err);
        ok = want == 2 || (want == 1 && rc != 0 && err[0]);
        if (rc == 0)
            printf("  %-44s renders %zu bytes\n", why, out_len);
        else
            printf("  %-44s render fails (%d): %s\n", why, rc, err);
        free(out);
        jinja_free(t);
    }
    if (!ok)
        fprintf(stderr, "FAIL: %s: expected %s\n", why,
                want == 0   ? "a parse error"
                : want == 1 ? "a render error"
                            : "an end");
    return ok;
}

static int malformed(void) {
    static const bad_case cases[] = {
        {"unclosed {{", "a {{ messages", 0},
        {"unclosed {%", "{% if true", 0},
        {"unclosed {#", "{# comment", 0},
        {"unclosed string", "{{ 'abc }}", 0},
        {"unclosed if", "{% if true %}x", 0},
        {"unclosed for", "{% for m in messages %}{{ m.role }}", 0},
        {"endfor without for", "x{% endfor %}", 0},
        {"else without if", "{% else %}", 0},
        {"endif after endfor", "{% for m in messages %}{% endif %}", 0},
        {"unclosed macro", "{% macro f(x) %}{{ x }}", 0},
        {"endmacro without macro", "x{% endmacro %}", 0},
        {"macro without parentheses", "{% macro f %}x{% endmacro %}", 0},
        {"macro parameter named twice", "{% macro f(a, a) %}{% endmacro %}", 0},
        {"macro default before a plain one", "{% macro f(a=1, b) %}{% endmacro %}", 0},
        {"macro parameter not a name", "{% macro f(a.b) %}{% endmacro %}", 0},
        {"macro unpacking", "{% macro f(*a) %}{% endmacro %}", 0},
        {"unclosed call block", "{% macro f() %}{% endmacro %}{% call f() %}x", 0},
        {"unclosed filter block", "{% filter upper %}x", 0},
        {"include", "{% include 'x.j2' %}", 0},
        {"unknown tag", "{% frobnicate %}", 0},
        {"unpacking", "{{ f(*args) }}", 0},
        {"bad escape", "{{ '\\q' }}", 0},
        {"bad character", "{{ a ; b }}", 0},
        {"non-ASCII in a tag", "{{ \xc3\xa9 }}", 0},
        {"empty expression", "{{ }}", 0},
        {"missing operand", "{{ 1 + }}", 0},
        {"slice of four", "{{ x[1:2:3:4] }}", 0},
        {"keyword then positional", "{{ f(a=1, 2) }}", 0},
        {"set to a literal", "{% set 'x' = 1 %}", 0},
        {"for over a literal target", "{% for 1 in x %}{% endfor %}", 0},
        {"sort_keys", "{{ {} | tojson(sort_keys=true) }}", 1},
        {"unknown filter", "{{ messages | frobnicate }}", 1},
        {"unknown filter reject", "{{ [1] | reject('equalto', 1) | list }}", 1},
        {"unknown test", "{{ 1 is frobnicated }}", 1},
        {"unknown method", "{{ 'a'.frob() }}", 1},
        {"undefined function", "{{ frob() }}", 1},
        {"break outside loop", "{% break %}", 1},
        {"int overflow range", "{% for i in range(100000000000) %}x{% endfor %}", 1},
        {"output cap",
         "{% set ns = namespace(s='x') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
         "{% for i in range(100) %}{{ ns.s }}{% endfor %}",
         1},
        {"memory cap by loops", "{% for i in range(10000000) %}{{ '' }}{% endfor %}", 1},
        {"memory cap",
         "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", 1},
        {"self-nesting namespace", "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns | tojson }}", 1},
        {"deep list",
         "{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}", 1},
        {"long work",
         "{% set ns = namespace(s='x') %}{% for i in range(22) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
         "{% for i in range(100000) %}{% if 'y' in ns.s %}{% endif %}{% endfor %}",
         1},
        {"raise", "{{ raise_exception('no') }}", 1},
        {"raise in a macro", "{% macro f() %}{{ raise_exception('no') }}{% endmacro %}{{ f() }}", 1},
        {"recursion without an end", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", 1},
        {"recursion with text", "{% macro f(n) %}x{{ n }}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", 1},
        {"mutual recursion", "{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}",
         1},
        {"recursion in a default", "{% macro f(x=f()) %}{% endmacro %}{{ f() }}", 1},
        {"recursion through a call block", "{% macro f() %}{% call f() %}x{% endcall %}{% endmacro %}{{ f() }}", 1},
        {"caller() calling its macro",
         "{% macro f() %}{{ caller() }}{% endmacro %}{% call f() %}{{ f() }}{% endcall %}", 1},
        {"exponential recursion",
         "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}", 1},
        {"macro given too many arguments", "{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}", 1},
        {"macro given an unknown keyword", "{% macro f(a) %}{% endmacro %}{{ f(b=1) }}", 1},
        {"macro given an argument twice", "{% macro f(a) %}{% endmacro %}{{ f(1, a=2) }}", 1},
        {"break in a macro", "{% macro f() %}{% break %}{% endmacro %}{% for i in [1] %}{{ f() }}{% endfor %}", 1},
        {"call block of no macro", "{% call range(3) %}x{% endcall %}", 1},
        {"unknown filter block", "{% filter frobnicate %}x{% endfilter %}", 1},
        {"trailing text", "{% if true %}x{% endif %}   ", 2},
        {"lone braces", "{ } {{ '{' }} }} %} #}", 2},
    };
    int ok = 1;
    printf("malformed and hostile templates:\n");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ok &= run_bad(cases[i].why, cases[i].src, strlen(cases[i].src), cases[i].want);
    /* nested until the parser refuses (want 0), or a macro recursing inside such a nest until the
     * evaluator refuses (want 1): neither may exhaust the stack */
    static const struct {
        const char *why, *open, *a, *mid, *b, *close;
        int n, want;
    } deep[] = {
        {"100000 nested parentheses", "{{ ", "(", "1", ")", " }}", 100000, 0},
        {"10000 nested lists", "{{ ", "[", "1", "]", " }}", 10000, 0},
        {"10000 nested dicts", "{{ ", "{'k': ", "1", "}", " }}", 10000, 0},
        {"10000 nots", "{{ ", "not ", "1", "", " }}", 10000, 0},
        {"10000 signs", "{{ ", "- ", "1", "", " }}", 10000, 0},
        {"10000 filters", "{{ 'a'", "", "", " | trim", " }}", 10000, 0},
        {"a chain of 10000 ~", "{{ 'a'", "", "", " ~ 'a'", " }}", 10000, 0},
        {"10000 nested ifs", "", "{% if true %}", "x", "{% endif %}", "", 10000, 0},
        {"10000 nested fors", "", "{% for m in messages %}", "x", "{% endfor %}", "", 10000, 0},
        {"20000 elifs", "{% if false %}", "", "", "{% elif false %}", "{% endif %}", 20000, 0},
        {"10000 nested macros", "", "{% macro f() %}", "x", "{% endmacro %}", "", 10000, 0},
        {"10000 nested call blocks", "{% macro f() %}{% endmacro %}", "{% call f() %}", "x", "{% endcall %}", "", 10000,
         0},
        {"10000 nested filter blocks", "", "{% filter trim %}", "x", "{% endfilter %}", "", 10000, 0},
        {"recursion inside 190 ifs", "{% macro f() %}", "{% if true %}", "{{ f() }}", "{% endif %}",
         "{% endmacro %}{{ f() }}", 190, 1},
        {"recursion inside 190 fors", "{% macro f() %}", "{% for i in [1] %}", "{{ f() }}", "{% endfor %}",
         "{% endmacro %}{{ f() }}", 190, 1},
        {"recursion inside 190 set blocks", "{% macro f() %}", "{% set x %}", "{{ f() }}", "{% endset %}",
         "{% endmacro %}{{ f() }}", 190, 1},
        {"recursion inside 190 filter blocks", "{% macro f() %}", "{% filter trim %}", "{{ f() }}", "{% endfilter %}",
         "{% endmacro %}{{ f() }}", 190, 1},
        {"recursion inside 190 call blocks", "{% macro g() %}{{ caller() }}{% endmacro %}{% macro f() %}",
         "{% call g() %}", "{{ f() }}", "{% endcall %}", "{% endmacro %}{{ f() }}", 190, 1},
        {"recursion inside 190 nots", "{% macro f() %}{{ ", "not ", "f()", "", " }}{% endmacro %}{{ f() }}", 190, 1},
        {"recursion inside 190 filters", "{% macro f() %}{{ f()", "", "", " | trim", " }}{% endmacro %}{{ f() }}", 190,
         1},
        {"recursion inside 95 calls", "{% macro g(x) %}{{ x }}{% endmacro %}{% macro f() %}{{ ", "g(", "f()", ")",
         " }}{% endmacro %}{{ f() }}", 95, 1},
        {"recursion inside 95 lists", "{% macro f() %}{{ ", "[", "f()", "]", " }}{% endmacro %}{{ f() }}", 95, 1},
    };
    for (size_t i = 0; i < sizeof deep / sizeof *deep; i++) {
        char *x = repeat(deep[i].a, deep[i].n, deep[i].mid, deep[i].b);
        char *s = malloc(strlen(x) + strlen(deep[i].open) + strlen(deep[i].close) + 1);
        sprintf(s, "%s%s%s", deep[i].open, x, deep[i].close);
        ok &= run_bad(deep[i].why, s, strlen(s), deep[i].want);
        free(x);
        free(s);
    }
    /* every prefix of a real-looking template: none may crash */
    static const char real[] =
        "{%- set ns = namespace(a=[1, {'k': \"v\\n\"}]) -%}\n  {#- c -#}\n{% for m in messages[::-1] "
        "if m.role != 'x' %}{{ loop.index ~ m['content'] | trim | tojson(indent=2) }}{% else %}"
        "{{ raise_exception('e') }}{% endfor %}{{ 1 if ns.a else -2.5 // 3 }}{% macro f(a, b=[1]) -%}\n"
        "{{ a ~ b | length }}{{ caller(a) if caller is defined }}{%- endmacro %}{% call(x) f(ns.a) %}{{ x }}"
        "{% endcall %}{% filter upper %}{{ f(1, b=messages) }}{% endfilter %}";
    int parsed = 0;
    for (size_t n = 0; n <= sizeof real - 1; n++) {
        char err[256], *out = NULL;
        size_t len;
        jinja_message msg = {"user", " hi "};
        jinja_template *t = jinja_parse(real, n, err, sizeof err);
        if (!t) continue;
        parsed++;
        jinja_render(t, &msg, 1, 0, NULL, NULL, &out, &len, err, sizeof err);
        free(out);
        jinja_free(t);
    }
    printf("  every prefix of a template: %d of %zu parse, none crashes\n", parsed, sizeof real);
    return ok;
}

typedef struct {
    int same, raised, errors, cases;
} tally;

/* The case cs rendered with t: a conversation of the reference's (with add_generation_prompt) through
 * jinja_render, or one of its contexts through jinja_render_context; what names it. */
static int render_case(jinja_template *t, const cJSON *ref, const cJSON *cs, const cJSON *tpl, char **out,
                       size_t *out_len, char *err, size_t errlen, char *what, size_t whatlen) {
    const cJSON *bos = cJSON_GetObjectItem(tpl, "bos"), *eos = cJSON_GetObjectItem(tpl, "eos");
    const char *b = cJSON_IsString(bos) ? bos->valuestring : NULL, *e = cJSON_IsString(eos) ? eos->valuestring : NULL;
    const cJSON *context = cJSON_GetObjectItem(cs, "context");
    if (context) {
        snprintf(what, whatlen, "context %d", context->valueint);
        const cJSON *ctx = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "contexts"), context->valueint);
        return jinja_render_context(t, ctx, b, e, out, out_len, err, errlen);
    }
    int which = cJSON_GetObjectItem(cs, "conversation")->valueint;
    int gen = cJSON_IsTrue(cJSON_GetObjectItem(cs, "add_generation_prompt"));
    snprintf(what, whatlen, "conversation %d, add_generation_prompt=%d", which, gen);
    const cJSON *conv = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "conversations"), which);
    int k = cJSON_GetArraySize(conv);
    jinja_message *m = calloc((size_t)k + 1, sizeof *m);
    for (int i = 0; i < k; i++) {
        const cJSON *msg = cJSON_GetArrayItem(conv, i);
        m[i].role = cJSON_GetObjectItem(msg, "role")->valuestring;
        m[i].content = cJSON_GetObjectItem(msg, "content")->valuestring;
    }
    int rc = jinja_render(t, m, k, gen, b, e, out, out_len, err, errlen);
    free(m);
    return rc;
}

/* One case: 1 if rsrc's rendering matches the reference. */
static int check_case(const char *name, jinja_template *t, const cJSON *ref, const cJSON *cs, const cJSON *tpl,
                      tally *n) {
    const cJSON *text = cJSON_GetObjectItem(cs, "text"), *error = cJSON_GetObjectItem(cs, "error");
    char err[1024] = "", *out = NULL, what[96];
    size_t out_len = 0;
    int rc = render_case(t, ref, cs, tpl, &out, &out_len, err, sizeof err, what, sizeof what);
    int ok;
    n->cases++;
    if (cJSON_IsString(text)) {
        size_t wlen;
        char *want = unhex(text->valuestring, &wlen);
        ok = rc == 0 && out_len == wlen && !memcmp(out, want, wlen);
        if (!ok) {
            fprintf(stderr, "FAIL %s, %s: ", name, what);
            if (rc)
                fprintf(stderr, "rsrc failed (%d): %s\n  jinja: '", rc, err);
            else
                fputs("\n  rsrc:  '", stderr), show(out, out_len), fputs("'\n  jinja: '", stderr);
            show(want, wlen);
            fputs("'\n", stderr);
        }
        free(want);
    } else {
        const char *want = cJSON_IsString(error) ? error->valuestring : "";
        ok = rc == -1 || (rc == 1 && !strcmp(err, want));
        if (rc == 1) n->raised += ok;
        if (rc == -1 && !n->errors++) /* the first of a template's, to be judged */
            printf("  %s, %s: both fail; jinja: %s; rsrc: %s\n", name, what, want, err);
        if (!ok) {
            fprintf(stderr, "FAIL %s, %s: jinja failed (%s) but rsrc ", name, what, want);
            if (rc == 0)
                fputs("rendered '", stderr), show(out, out_len), fputs("'\n", stderr);
            else
                fprintf(stderr, "raised '%s'\n", err);
        }
    }
    n->same += ok;
    free(out);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_jinja JINJA_REFERENCE.json\n");
        return 2;
    }
    int failures = !malformed();
    size_t len;
    char *text = read_file(argv[1], &len);
    if (!text) {
        printf("%s is missing (jinja_templates.sh could not make it): skipped\n", argv[1]);
        return failures ? 1 : 77;
    }
    cJSON *ref = cJSON_Parse(text);
    const cJSON *convs = cJSON_GetObjectItem(ref, "conversations"), *tpl;
    if (!ref || !convs) {
        fprintf(stderr, "%s: not a reference of jinja.mjs\n", argv[1]);
        return 1;
    }
    /* strftime_now renders today's date: a reference made on another day cannot be compared there */
    char today[16];
    time_t now = time(NULL);
    strftime(today, sizeof today, "%Y-%m-%d", localtime(&now));
    const cJSON *date = cJSON_GetObjectItem(ref, "date");
    int same_day = cJSON_IsString(date) && !strcmp(date->valuestring, today);
    int templates = 0, whole = 0;
    cJSON_ArrayForEach(tpl, cJSON_GetObjectItem(ref, "templates")) {
        const char *name = cJSON_GetObjectItem(tpl, "name")->valuestring;
        const char *src = cJSON_GetObjectItem(tpl, "source")->valuestring;
        char err[512];
        if (!same_day && strstr(src, "strftime_now")) {
            printf("%s: skipped (it prints the date, and the reference is of another day: rerun jinja_templates.sh)\n",
                   name);
            continue;
        }
        jinja_template *t = jinja_parse(src, strlen(src), err, sizeof err);
        templates++;
        if (!t) {
            int ref_parses = cJSON_IsTrue(cJSON_GetObjectItem(tpl, "parses"));
            printf("%s: does not parse: %s%s\n", name, err, ref_parses ? "" : " (nor with @huggingface/jinja)");
            if (ref_parses) failures++;
            continue;
        }
        tally n = {0};
        const cJSON *cs;
        cJSON_ArrayForEach(cs, cJSON_GetObjectItem(tpl, "cases")) {
            if (!check_case(name, t, ref, cs, tpl, &n)) failures++;
        }
        printf(
            "%s: %d of %d renderings match (%d raise_exception with the same message, %d other errors on both sides)\n",
            name, n.same, n.cases, n.raised, n.errors);
        whole += n.same == n.cases;
        jinja_free(t);
    }
    printf("%d of %d templates match fully; %d failures\n", whole, templates, failures);
    cJSON_Delete(ref);
    free(text);
    return failures ? 1 : 0;
}
