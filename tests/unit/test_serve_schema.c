/*
 * test_serve_schema — JSON schemas beyond serve_json.c's subset written as GBNF
 * (tools/serve/grammar/serve_schema.c) and fed through serve_gbnf.c's recognizer: for each keyword, JSON
 * documents the grammar must take whole and ones it must turn away; integer ranges and
 * multipleOf checked value by value against arithmetic, dates day by day against the calendar;
 * random walks along the bytes a Pydantic-style schema allows, each whole one checked with cJSON
 * and by hand; schemas refused with the keyword named; and a request whose schema goes this way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "expect.h"
#include "serve.h"
#include "serve_gbnf.h"
#include "serve_schema.h"

static uint32_t rng = 2463534242u;
static uint32_t next_rand(void) {
    rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
    return rng;
}

static gbnf_grammar *grammar_of(const char *schema) {
    char err[512], kw[64];
    cJSON *j = cJSON_Parse(schema);
    EXPECT(j, "test schema does not parse: %s", schema);
    gbnf_grammar *g = j ? schema_grammar(j, err, sizeof err, kw) : NULL;
    cJSON_Delete(j);
    EXPECT(g, "schema %s refused: %s", schema, err);
    return g;
}

static bool whole(const gbnf_grammar *g, const char *s) {
    gbnf_state *st = gbnf_state_new(g);
    bool ok = gbnf_state_feed(st, s, strlen(s)) && gbnf_state_done(st);
    gbnf_state_free(st);
    return ok;
}

/* the schema takes each of yes (NULL-ended) whole and none of no */
static void check(const char *schema, const char *const *yes, const char *const *no) {
    gbnf_grammar *g = grammar_of(schema);
    if (!g) return;
    for (; yes && *yes; yes++) EXPECT(whole(g, *yes), "%s: '%s' refused", schema, *yes);
    for (; no && *no; no++) EXPECT(!whole(g, *no), "%s: '%s' taken", schema, *no);
    gbnf_free(g);
}
#define YES(...) ((const char *const[]){__VA_ARGS__, NULL})

static void refused(const char *schema, const char *keyword, const char *what) {
    char err[512], kw[64];
    cJSON *j = cJSON_Parse(schema);
    gbnf_grammar *g = schema_grammar(j, err, sizeof err, kw);
    cJSON_Delete(j);
    EXPECT(!g && !strcmp(kw, keyword) && strstr(err, what), "%s: refused for '%s' (%s), want '%s' and '%s'", schema,
           g ? "(taken)" : kw, g ? "" : err, keyword, what);
    gbnf_free(g);
}

static void test_alternatives(void) {
    /* Pydantic's Optional: anyOf with null; oneOf read as anyOf; type lists */
    check("{\"anyOf\":[{\"type\":\"string\",\"maxLength\":3},{\"type\":\"null\"}]}", YES("\"abc\"", "\"\"", "null"),
          YES("\"abcd\"", "0", "nul"));
    check("{\"oneOf\":[{\"type\":\"integer\",\"maximum\":5},{\"type\":\"boolean\"}]}", YES("5", "-3", "true"),
          YES("6", "null", "1.5"));
    check("{\"type\":[\"integer\",\"null\"],\"minimum\":1}", YES("1", "null", "90"), YES("0", "\"1\""));
    /* siblings of anyOf apply to every alternative */
    check("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"}},"
          "\"anyOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}",
          YES("{\"a\":1}", "{\"b\":2}", "{\"a\":1,\"b\":2}"), YES("{}", "{\"b\":\"x\"}"));
    /* allOf merged: properties and required united, bounds tightened */
    check("{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"maximum\":9}},"
          "\"required\":[\"a\"]},{\"properties\":{\"a\":{\"minimum\":5},\"b\":{\"type\":\"string\"}},\"required\":["
          "\"b\"]}]}",
          YES("{\"a\":5,\"b\":\"x\"}", "{\"a\":9,\"b\":\"\"}"),
          YES("{\"a\":4,\"b\":\"x\"}", "{\"a\":5}", "{\"b\":\"x\"}"));
    check("{\"allOf\":[{\"type\":[\"number\",\"string\"]},{\"type\":\"integer\"}]}", YES("3"), YES("3.5", "\"3\""));
}

static void test_refs(void) {
    /* into $defs and definitions, an enum by reference, Pydantic's allOf of one $ref */
    const char *person =
        "{\"$defs\":{\"Pet\":{\"type\":\"object\",\"properties\":{\"kind\":{\"$ref\":\"#/definitions/Kind\"}},"
        "\"required\":[\"kind\"]}},\"definitions\":{\"Kind\":{\"enum\":[\"cat\",\"dog\"]}},\"type\":\"object\","
        "\"properties\":{\"pet\":{\"allOf\":[{\"$ref\":\"#/$defs/"
        "Pet\"}],\"description\":\"d\"}},\"required\":[\"pet\"]}";
    check(person, YES("{\"pet\":{\"kind\":\"cat\"}}", "{\"pet\":{\"kind\":\"dog\"}}"),
          YES("{\"pet\":{\"kind\":\"cow\"}}", "{\"pet\":{}}"));
    /* recursive: a linked list, and a tree by '#' */
    const char *list =
        "{\"$defs\":{\"Node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
        "\"next\":{\"anyOf\":[{\"$ref\":\"#/$defs/Node\"},{\"type\":\"null\"}]}},\"required\":[\"v\",\"next\"]}},"
        "\"$ref\":\"#/$defs/Node\"}";
    char deep[4096] = "", tail[2048] = "";
    for (int i = 0; i < 60; i++) strcat(deep, "{\"v\":1,\"next\":"), strcat(tail, "}");
    strcat(deep, "null"), strcat(deep, tail);
    check(list, YES("{\"v\":1,\"next\":null}", "{\"v\":1,\"next\":{\"v\":2,\"next\":null}}", deep),
          YES("{\"v\":1}", "{\"v\":1,\"next\":{\"v\":2}}"));
    check("{\"type\":\"array\",\"items\":{\"$ref\":\"#\"},\"maxItems\":2}", YES("[]", "[[],[[]]]", "[[[[]]]]"),
          YES("[[],[],[]]", "[1]"));
    /* a JSON pointer with escapes */
    check("{\"$defs\":{\"a/b~c\":{\"const\":7}},\"$ref\":\"#/$defs/a~1b~0c\"}", YES("7"), YES("8"));
}

static void test_objects(void) {
    /* optional properties: any subset, in the declared order */
    const char *opt =
        "{\"type\":\"object\",\"properties\":{\"a\":{\"const\":1},\"b\":{\"const\":2},\"c\":{\"const\":3},"
        "\"d\":{\"const\":4}},\"required\":[\"c\"],\"additionalProperties\":false}";
    gbnf_grammar *g = grammar_of(opt);
    for (int set = 0; g && set < 16; set++) {
        char doc[64] = "{";
        for (int k = 0; k < 4; k++)
            if (set >> k & 1) sprintf(doc + strlen(doc), "%s\"%c\":%d", strlen(doc) > 1 ? "," : "", 'a' + k, k + 1);
        strcat(doc, "}");
        EXPECT(whole(g, doc) == !!(set & 4), "%s: taken %d", doc, whole(g, doc));
    }
    if (g) EXPECT(!whole(g, "{\"c\":3,\"a\":1}"), "out of the declared order taken");
    gbnf_free(g);
    /* other keys by additionalProperties: spelt apart from the declared names, after them */
    const char *extra =
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"ab\":{\"type\":\"integer\"}},"
        "\"additionalProperties\":{\"type\":\"string\",\"maxLength\":2}}";
    check(extra, YES("{}", "{\"a\":1}", "{\"ab\":1,\"x\":\"y\"}", "{\"a\":1,\"abc\":\"\",\"\":\"zz\"}", "{\"b\":\"\"}"),
          YES("{\"a\":1,\"a\":\"x\"}", "{\"a\":1,\"ab\":\"x\"}", "{\"x\":\"y\",\"a\":1}", "{\"\\u0061\":\"x\"}",
              "{\"x\":\"abc\"}"));
    /* properties beside no additionalProperties: those keys only */
    check("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"],\"title\":\"T\"}",
          YES("{\"a\":0}"), YES("{\"a\":0,\"b\":1}", "{}"));
    /* a map: propertyNames and a value schema */
    check("{\"type\":\"object\",\"propertyNames\":{\"pattern\":\"^[a-z]{1,3}$\"},\"additionalProperties\":{\"type\":"
          "\"integer\"}}",
          YES("{}", "{\"ab\":1}", "{\"ab\":1,\"c\":-2}"), YES("{\"abcd\":1}", "{\"ab\":\"x\"}", "{\"A\":1}"));
    /* false: a property that may not appear */
    check("{\"type\":\"object\",\"properties\":{\"a\":false,\"b\":{\"type\":\"null\"}}}", YES("{}", "{\"b\":null}"),
          YES("{\"a\":null}"));
}

static void test_arrays(void) {
    check("{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":1}],"
          "\"items\":false,\"minItems\":1}",
          YES("[1]", "[1,\"a\"]"), YES("[]", "[1,\"a\",2]", "[\"a\"]", "[1,2]"));
    check("{\"type\":\"array\",\"prefixItems\":[{\"const\":0}],\"items\":{\"type\":\"boolean\"},\"maxItems\":3}",
          YES("[]", "[0]", "[0,true,false]"), YES("[0,true,false,true]", "[true]"));
    check("{\"type\":\"array\",\"items\":[{\"const\":\"x\"}],\"additionalItems\":{\"type\":\"null\"},\"minItems\":2}",
          YES("[\"x\",null]", "[\"x\",null,null]"), YES("[\"x\"]", "[\"x\",1]"));
    check("{\"type\":\"array\",\"items\":{\"type\":\"null\"},\"minItems\":2,\"maxItems\":3,\"uniqueItems\":false}",
          YES("[null,null]", "[null,null,null]"), YES("[null]", "[null,null,null,null]"));
    /* a long most: blocks of rules, every count up to it and none past */
    gbnf_grammar *g = grammar_of("{\"type\":\"array\",\"items\":{\"const\":1},\"minItems\":3,\"maxItems\":150}");
    for (int n = 0; g && n <= 152; n++) {
        char doc[512] = "[";
        for (int i = 0; i < n; i++) strcat(doc, i ? ",1" : "1");
        strcat(doc, "]");
        EXPECT(whole(g, doc) == (n >= 3 && n <= 150), "%d items: taken %d", n, whole(g, doc));
    }
    gbnf_free(g);
}

static void test_strings(void) {
    check("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", YES("\"ab\"", "\"a\\u00e9c\"", "\"\\n\\\"x\""),
          YES("\"a\"", "\"abcd\""));
    /* patterns, matched whole */
    check("{\"type\":\"string\",\"pattern\":\"^(\\\\d{3}-)?[a-z.]+\\\\.(com|org)$\"}",
          YES("\"123-ab.com\"", "\"x.org\""), YES("\"ab.net\"", "\"12-ab.com\"", "\"x.com \""));
    check("{\"type\":\"string\",\"pattern\":\"[^a-z]\\\\w?\\\\s*\"}",
          YES("\"A\"", "\"1_ \"", "\"\\\"\\t\\n\"", "\"\\\\\""), YES("\"a\"", "\"\""));
    check("{\"type\":\"string\",\"pattern\":\"(?:x|y){2}(?<n>z)?\\\\x41\\\\u00e9\\\\u{1F600}.\"}",
          YES("\"xyAé😀!\"", "\"yyzAé😀é\""), YES("\"xAé😀!\"", "\"xyAé😀\\n\""));
    check("{\"type\":\"string\",\"pattern\":\"a+?b*c{2,}d{1,2}?\"}", YES("\"accd\"", "\"aabbccccdd\""),
          YES("\"acc\"", "\"abcd\"", "\"accddd\""));
    check("{\"type\":\"string\",\"pattern\":\"^\\\\d*$\",\"minLength\":1,\"maxLength\":3}", YES("\"1\"", "\"123\""),
          YES("\"\"", "\"1234\""));
    /* lengths beside a pattern: taken by its one repetition */
    check("{\"type\":\"string\",\"pattern\":\"^[A-Z][a-z]*$\",\"minLength\":2,\"maxLength\":4}",
          YES("\"Ab\"", "\"Abcd\""), YES("\"A\"", "\"Abcde\""));
    /* formats */
    check("{\"type\":\"string\",\"format\":\"date-time\"}",
          YES("\"2024-02-29T23:59:59.123456Z\"", "\"1999-12-31T00:00:00+05:30\""),
          YES("\"2023-02-29T00:00:00Z\"", "\"2024-01-01T24:00:00Z\"", "\"2024-01-01T00:00:00\""));
    check("{\"type\":\"string\",\"format\":\"time\"}", YES("\"13:05:59Z\"", "\"00:00:00.5-11:00\""),
          YES("\"13:60:00Z\""));
    check("{\"type\":\"string\",\"format\":\"uuid\"}", YES("\"123e4567-e89b-12d3-a456-426614174000\""),
          YES("\"123e4567e89b12d3a456426614174000\""));
    check("{\"type\":\"string\",\"format\":\"email\"}", YES("\"ab.c@ex-ample.com\"", "\"a+b@x.io\""),
          YES("\"ab@-x.com\"", "\"a@b\"", "\".a@b.cd\""));
    check("{\"type\":\"string\",\"format\":\"uri\"}", YES("\"https://a.example.org/x/y.html\"", "\"http://a\""),
          YES("\"ftp://a\"", "\"https://\""));
    check("{\"type\":\"string\",\"format\":\"ipv4\"}", YES("\"0.0.0.0\"", "\"255.249.10.1\""),
          YES("\"256.1.1.1\"", "\"01.1.1.1\"", "\"1.1.1\""));
}

/* every day from year y's day 0 to day 32 of each month, against the calendar */
static void test_dates(void) {
    gbnf_grammar *g = grammar_of("{\"type\":\"string\",\"format\":\"date\"}");
    static const int years[] = {0, 4, 100, 1900, 1996, 2000, 2023, 2024, 2100, 2400, 9999};
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (size_t i = 0; g && i < sizeof years / sizeof *years; i++)
        for (int m = 0; m <= 13; m++)
            for (int d = 0; d <= 32; d++) {
                int y = years[i];
                bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
                bool valid = m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1] + (m == 2 && leap);
                char doc[32];
                snprintf(doc, sizeof doc, "\"%04d-%02d-%02d\"", y, m, d);
                EXPECT(whole(g, doc) == valid, "%s: taken %d", doc, !valid);
            }
    gbnf_free(g);
}

/* every integer near the bounds of [lo, hi], multiples of k, against arithmetic */
static void int_range(long long lo, long long hi, int k, const char *bounds) {
    char schema[256];
    snprintf(schema, sizeof schema, "{\"type\":\"integer\",%s%s\"multipleOf\":%d}", bounds, *bounds ? "," : "", k);
    gbnf_grammar *g = grammar_of(schema);
    long long probes[] = {lo, hi, 0, 1, -1, 9, 10, 99, 100, 999, 1000};
    for (size_t p = 0; g && p < sizeof probes / sizeof *probes; p++)
        for (long long v = probes[p] - 40; v <= probes[p] + 40; v++) {
            char doc[32];
            snprintf(doc, sizeof doc, "%lld", v);
            bool want = v >= lo && v <= hi && v % k == 0;
            EXPECT(whole(g, doc) == want, "%s: %s taken %d", schema, doc, !want);
        }
    for (int i = 0; g && i < 300; i++) { /* and anywhere in between */
        long long v = lo + (long long)(((uint64_t)next_rand() << 32 | next_rand()) % (uint64_t)(hi - lo + 1));
        char doc[32];
        snprintf(doc, sizeof doc, "%lld", v);
        EXPECT(whole(g, doc) == (v % k == 0), "%s: %s taken %d", schema, doc, v % k != 0);
    }
    if (g)
        EXPECT(!whole(g, "-0") && !whole(g, "01") && !whole(g, "1.0") && !whole(g, "1e2"),
               "%s: a non-canonical integer taken", schema);
    gbnf_free(g);
}

static void test_numbers(void) {
    int_range(-12, 345, 1, "\"minimum\":-12,\"maximum\":345");
    int_range(0, 120, 1, "\"minimum\":0,\"maximum\":120");
    int_range(1, 99, 1, "\"exclusiveMinimum\":0,\"exclusiveMaximum\":100");
    int_range(-30, 100, 7, "\"minimum\":-30.5,\"maximum\":100");
    int_range(100, 100000, 25, "\"minimum\":100,\"maximum\":100000");
    int_range(-999999999999999999, 999999999999999999, 3, "");
    int_range(5, 999999999999999999, 1, "\"minimum\":4.5");
    for (int i = 0; i < 12; i++) { /* random bounds */
        long long lo = (long long)(next_rand() % 200000) - 100000, hi = lo + (long long)(next_rand() % 50000);
        char b[96];
        snprintf(b, sizeof b, "\"minimum\":%lld,\"maximum\":%lld", lo, hi);
        int_range(lo, hi, i % 3 ? 1 : 1 + (int)(next_rand() % 40), b);
    }
    /* numbers: whole numbers in range and n.f inside it; an exponent only where unbounded */
    check("{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":2}", YES("0.5", "1", "1.25", "2", "0.001"),
          YES("0", "0.0", "2.5", "-0.5", "1e0", "1.50"));
    check("{\"type\":\"number\",\"minimum\":-3,\"exclusiveMaximum\":0}", YES("-3", "-2.5", "-0.1", "-1"),
          YES("0", "-3.5", "-0"));
    check("{\"type\":\"number\"}", YES("0", "-1.5e-3", "12E+2", "3.25"), YES("01", "1.", ".5", "1e999"));
    check("{\"type\":\"number\",\"multipleOf\":5,\"maximum\":20}", YES("20", "-5", "0"), YES("21", "2.5", "25"));
}

static void test_enums(void) {
    check("{\"enum\":[\"a\",1,2.5,null,true,{\"x\":[1,2]},\"q\\\"uo\\\\te\",\"é\"]}",
          YES("\"a\"", "1", "2.5", "null", "true", "{\"x\":[1,2]}", "\"q\\\"uo\\\\te\"", "\"é\""),
          YES("2", "{\"x\": [1,2]}", "\"b\"", "false"));
    check("{\"type\":\"string\",\"enum\":[\"a\",1]}", YES("\"a\""), YES("1"));
    check("{\"type\":\"integer\",\"enum\":[1,2.5]}", YES("1"), YES("2.5"));
    check("{\"const\":{\"k\":[true,null]},\"title\":\"c\"}", YES("{\"k\":[true,null]}"), YES("{\"k\":[true]}"));
}

static void test_refusals(void) {
    refused("{\"not\":{\"type\":\"null\"}}", "not", "is not served");
    refused("{\"type\":\"object\",\"minProperties\":1}", "minProperties", "is not served");
    refused("{\"type\":\"string\",\"format\":\"hostname\"}", "format", "\"hostname\" is not served");
    refused("{\"type\":\"string\",\"pattern\":\"a(?=b)\"}", "pattern", "lookaround");
    refused("{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}", "pattern", "backreference");
    refused("{\"type\":\"string\",\"pattern\":\"\\\\bx\"}", "pattern", "word boundary");
    refused("{\"type\":\"string\",\"pattern\":\"\\\\p{L}\"}", "pattern", "Unicode property");
    refused("{\"type\":\"string\",\"pattern\":\"(a*)*\"}", "pattern", "what can match nothing");
    refused("{\"type\":\"string\",\"pattern\":\"x$y\"}", "pattern", "'$' not at the end");
    refused("{\"type\":\"string\",\"pattern\":\"(a\"}", "pattern", "unclosed '('");
    refused("{\"type\":\"string\",\"pattern\":\"a\",\"format\":\"date\"}", "pattern", "beside 'format'");
    refused("{\"type\":\"string\",\"pattern\":\"^(ab|c)*$\",\"minLength\":1}", "minLength", "beside 'pattern'");
    refused("{\"type\":\"number\",\"multipleOf\":0.01}", "multipleOf", "0.01");
    refused("{\"type\":\"number\",\"exclusiveMinimum\":true}", "exclusiveMinimum", "draft 4");
    refused("{\"type\":\"number\",\"minimum\":0.2,\"maximum\":0.8}", "minimum", "whole-number precision");
    refused("{\"type\":\"integer\",\"minimum\":5,\"maximum\":3}", "minimum", "allows no value");
    refused("{\"$ref\":\"http://example.com/s.json\"}", "$ref", "'#' JSON pointer");
    refused("{\"$ref\":\"#/$defs/Nope\"}", "$ref", "points at nothing");
    refused("{\"$defs\":{\"A\":{\"anyOf\":[{\"$ref\":\"#/$defs/A\"},{\"type\":\"null\"}]}},\"$ref\":\"#/$defs/A\"}",
            "$ref", "refers back to itself");
    refused("{\"allOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "allOf", "allows no value");
    refused("{\"allOf\":[{\"pattern\":\"a\"},{\"pattern\":\"b\"}]}", "allOf", "two different 'pattern'");
    refused("{\"type\":\"array\",\"uniqueItems\":true}", "uniqueItems", "false only");
    refused("{\"type\":\"string\",\"minLength\":5000}", "minLength", "5000");
    refused("{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "required", "\"b\"");
    refused("{\"type\":\"object\",\"properties\":{\"a\":{}},\"propertyNames\":{\"maxLength\":3}}", "propertyNames",
            "beside 'properties'");
    refused("{\"type\":\"string\",\"pattern\":\"\\\\x01\"}", "pattern", "control character");
}

/* Pydantic's shape of a model with a nested model, an Optional field, a pattern, a range and an
 * enum: random walks along the bytes the grammar allows; each whole document parses and holds it */
static const char pydantic[] =
    "{\"$defs\":{\"Address\":{\"properties\":{\"city\":{\"maxLength\":12,\"title\":\"City\",\"type\":\"string\"},"
    "\"zip\":{\"pattern\":\"^[0-9]{5}$\",\"title\":\"Zip\",\"type\":\"string\"}},\"required\":[\"city\",\"zip\"],"
    "\"title\":\"Address\",\"type\":\"object\"},\"Color\":{\"enum\":[\"red\",\"green\",\"blue\"],\"title\":\"Color\","
    "\"type\":\"string\"}},\"properties\":{\"name\":{\"maxLength\":10,\"title\":\"Name\",\"type\":\"string\"},"
    "\"age\":{\"maximum\":120,\"minimum\":0,\"title\":\"Age\",\"type\":\"integer\"},\"nickname\":{\"anyOf\":"
    "[{\"maxLength\":8,\"type\":\"string\"},{\"type\":\"null\"}],\"default\":null,\"title\":\"Nickname\"},"
    "\"address\":{\"$ref\":\"#/$defs/Address\"},\"color\":{\"$ref\":\"#/$defs/Color\"},\"code\":{\"pattern\":"
    "\"^[A-Z]{2}-[0-9]{2,4}$\",\"title\":\"Code\",\"type\":\"string\"}},\"required\":[\"name\",\"age\",\"address\","
    "\"color\",\"code\"],\"title\":\"Person\",\"type\":\"object\"}";

static bool holds_pydantic(const cJSON *v) {
    const cJSON *name = cJSON_GetObjectItem(v, "name"), *age = cJSON_GetObjectItem(v, "age"),
                *nick = cJSON_GetObjectItem(v, "nickname"), *addr = cJSON_GetObjectItem(v, "address"),
                *color = cJSON_GetObjectItem(v, "color"), *code = cJSON_GetObjectItem(v, "code");
    const cJSON *zip = cJSON_GetObjectItem(addr, "zip");
    const char *c = cJSON_GetStringValue(code), *z = cJSON_GetStringValue(zip), *col = cJSON_GetStringValue(color);
    bool ok = cJSON_IsString(name) && cJSON_IsNumber(age) && age->valuedouble >= 0 && age->valuedouble <= 120 &&
              age->valuedouble == (int)age->valuedouble && (!nick || cJSON_IsNull(nick) || cJSON_IsString(nick)) &&
              cJSON_IsString(cJSON_GetObjectItem(addr, "city")) && z && strlen(z) == 5 &&
              strspn(z, "0123456789") == 5 && col &&
              (!strcmp(col, "red") || !strcmp(col, "green") || !strcmp(col, "blue")) && c && strlen(c) >= 5 &&
              strlen(c) <= 7 && strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 2 && c[2] == '-' &&
              strspn(c + 3, "0123456789") == strlen(c + 3);
    return ok && cJSON_GetArraySize(v) == 5 + (nick != NULL) && cJSON_GetArraySize(addr) == 2;
}

static void test_walks(void) {
    gbnf_grammar *g = grammar_of(pydantic);
    if (!g) return;
    gbnf_state *st = gbnf_state_new(g), *tmp = gbnf_state_new(g), *fresh = gbnf_state_new(g);
    int whole_ones = 0;
    for (int w = 0; w < 40; w++) {
        gbnf_state_copy(st, fresh);
        char buf[400];
        size_t n = 0;
        while (n < sizeof buf - 1 && !gbnf_state_done(st)) {
            unsigned char allowed[128];
            int na = 0;
            for (int b = 1; b < 128; b++) { /* ASCII: the walk reads one byte a character */
                char ch = (char)b;
                gbnf_state_copy(tmp, st);
                if (gbnf_state_feed(tmp, &ch, 1)) allowed[na++] = (unsigned char)b;
            }
            EXPECT(na, "walk '%.*s': a dead end", (int)n, buf);
            if (!na) break;
            buf[n++] = (char)allowed[next_rand() % (unsigned)na];
            gbnf_state_feed(st, buf + n - 1, 1);
        }
        if (!gbnf_state_done(st)) continue;
        buf[n] = 0, whole_ones++;
        cJSON *v = cJSON_ParseWithOpts(buf, NULL, true);
        EXPECT(v && holds_pydantic(v), "a whole document that does not hold the schema: '%s'", buf);
        cJSON_Delete(v);
    }
    EXPECT(whole_ones >= 30, "only %d of 40 walks whole", whole_ones);
    gbnf_state_free(st), gbnf_state_free(tmp), gbnf_state_free(fresh);
    gbnf_free(g);
}

/* a request: serve_json.c's subset keeps its recognizer; beyond it, the grammar; neither, a 400 */
static void test_request(void) {
    char err[512];
    const char *param = NULL;
    serve_params p;
    const char *plain =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\","
        "\"json_schema\":{\"schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}}}}";
    EXPECT(serve_parse(plain, strlen(plain), true, &p, err, sizeof err, &param) && p.shape && !p.grammar, "subset: %s",
           err);
    serve_params_free(&p);
    char body[2048];
    snprintf(body, sizeof body,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\","
             "\"json_schema\":{\"name\":\"p\",\"strict\":true,\"schema\":%s}}}",
             pydantic);
    EXPECT(serve_parse(body, strlen(body), true, &p, err, sizeof err, &param) && !p.shape && p.grammar, "beyond: %s",
           err);
    serve_params_free(&p);
    snprintf(
        body, sizeof body,
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"grammar\":\"root ::= \\\"a\\\"\",\"response_format\":"
        "{\"type\":\"json_schema\",\"json_schema\":{\"schema\":%s}}}",
        pydantic);
    EXPECT(!serve_parse(body, strlen(body), true, &p, err, sizeof err, &param) && !strcmp(param, "grammar") &&
               strstr(err, "cannot be given together"),
           "grammar beside a schema: %s", err);
    const char *bad =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\","
        "\"json_schema\":{\"schema\":{\"type\":\"object\",\"not\":{}}}}}";
    EXPECT(!serve_parse(bad, strlen(bad), true, &p, err, sizeof err, &param) && !strcmp(param, "response_format") &&
               strstr(err, "'response_format' json_schema: the schema's 'not' is not served"),
           "not: %s", err);
}

int main(void) {
    test_alternatives();
    test_refs();
    test_objects();
    test_arrays();
    test_strings();
    test_dates();
    test_numbers();
    test_enums();
    test_refusals();
    test_walks();
    test_request();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
