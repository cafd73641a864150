/*
 * test_serve_json — structured output's recognizer (tools/serve/grammar/serve_json.c): replies that must be
 * accepted whole, prefixes that must be turned away at a given byte, and schemas refused with the
 * keyword named. Each reject case names the byte at which no valid reply continues.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "expect.h"
#include "serve.h"

/* the reply fed a byte at a time: -1 when every byte is taken, else the index of the first refused */
static int feed(const json_shape *sh, const char *text, size_t n, bool *done) {
    json_state st;
    json_state_init(&st, sh);
    for (size_t i = 0; i < n; i++)
        if (!json_state_feed(&st, sh, text + i, 1)) return (int)i;
    *done = json_state_done(&st, sh);
    return -1;
}

static json_shape *shape_of(const char *schema) {
    char err[256];
    char kw[64];
    cJSON *j = schema ? cJSON_Parse(schema) : NULL;
    json_shape *sh = json_shape_compile(j, err, sizeof err, kw);
    cJSON_Delete(j);
    EXPECT(sh, "schema %s: %s", schema, err);
    return sh;
}

static void accepts(const json_shape *sh, const char *text, bool whole) {
    bool done = false;
    int at = feed(sh, text, strlen(text), &done);
    EXPECT(at < 0 && done == whole, "'%s': refused at %d, whole %d (want taken, whole %d)", text, at, done, whole);
}

static void refuses(const json_shape *sh, const char *text, size_t n, int want) {
    bool done;
    int at = feed(sh, text, n, &done);
    EXPECT(at == want, "'%.*s': refused at %d, want %d", (int)n, text, at, want);
}

static void refused_schema(const char *schema, const char *keyword) {
    char err[256];
    char kw[64];
    cJSON *j = cJSON_Parse(schema);
    json_shape *sh = json_shape_compile(j, err, sizeof err, kw);
    cJSON_Delete(j);
    EXPECT(!sh && !strcmp(kw, keyword), "%s: refused for '%s' (%s), want '%s'", schema, kw, err, keyword);
    json_shape_free(sh);
}

/* s is strict UTF-8 (RFC 3629: no overlong form, no surrogate, nothing past U+10FFFF), checked
 * apart from the recognizer. */
static bool strict_utf8(const unsigned char *s) {
    while (*s) {
        unsigned char b = *s++;
        int more = b < 0x80                 ? 0
                   : b >= 0xc2 && b <= 0xdf ? 1
                   : b >= 0xe0 && b <= 0xef ? 2
                   : b >= 0xf0 && b <= 0xf4 ? 3
                                            : -1;
        if (more < 0) return false;
        uint32_t cp = more ? b & (0x3f >> more) : b;
        for (int k = 0; k < more; k++, s++) {
            if ((*s & 0xc0) != 0x80) return false;
            cp = cp << 6 | (*s & 0x3f);
        }
        if ((more == 2 && cp < 0x800) || (more == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

/* Random replies, a byte at a time from an alphabet of JSON's pieces and some bytes that are not,
 * each byte kept where the recognizer takes it: every reply it calls whole must parse (cJSON,
 * apart from the recognizer), match `root` (an object, or an array) and be strict UTF-8 (a server
 * would send a byte that is not as U+FFFD: more characters than the schema allows). Returns the
 * whole ones. */
static int random_walks(const json_shape *sh, bool object, int walks) {
    static const char alpha[] =
        "{}[]\",:0123456789-+.eEtrufalsn\\ubx\xc3\xa9\x80\xff \xe0\xed\xf0\xf4\x8f\x90\x9f\xa0\xbf";
    uint32_t seed = 12345;
    int whole = 0;
    for (int w = 0; w < walks; w++) {
        json_state st, tmp;
        json_state_init(&st, sh);
        char buf[65];
        int n = 0;
        for (int i = 0; i < 64 && !json_state_done(&st, sh); i++) {
            seed = seed * 1664525u + 1013904223u;
            char c = alpha[(seed >> 8) % (sizeof alpha - 1)];
            json_state_copy(&tmp, &st);
            if (json_state_feed(&tmp, sh, &c, 1)) json_state_copy(&st, &tmp), buf[n++] = c;
        }
        if (!json_state_done(&st, sh)) continue;
        buf[n] = 0, whole++;
        cJSON *v = cJSON_ParseWithOpts(buf, NULL, true); /* the whole text, nothing after it */
        EXPECT(v && (object ? cJSON_IsObject(v) : cJSON_IsArray(v)), "a whole reply that is no JSON %s: '%s'",
               object ? "object" : "array", buf);
        EXPECT(strict_utf8((const unsigned char *)buf), "a whole reply that is not strict UTF-8: '%s'", buf);
        cJSON_Delete(v);
    }
    return whole;
}

int main(void) {
    json_shape *obj = shape_of(NULL); /* json_object */
    accepts(obj, "{}", true);
    accepts(obj, "{\"a\":[1,-2.5e+3,{\"b\":null}],\"c\":\"\\u00e9\\n\",\"d\":true}", true);
    accepts(obj, "{\"a\":1", false);
    refuses(obj, "[1]", 3, 0);                           /* the root is an object */
    refuses(obj, "{} ", 3, 2);                           /* nothing after the value */
    refuses(obj, "{\"a\" :1}", 8, 4);                    /* compact: no whitespace */
    refuses(obj, "{\"a\":01}", 8, 6);                    /* no leading zero */
    refuses(obj, "{\"a\":1,}", 8, 7);                    /* no trailing comma */
    refuses(obj, "{\"a\":tru}", 9, 8);                   /* literals whole */
    refuses(obj, "{\"a\":\"\x01\"}", 9, 6);              /* controls escaped */
    refuses(obj, "{\"a\":\"\\x\"}", 10, 7);              /* escapes JSON's */
    refuses(obj, "{\"a\":\"\xbf\"}", 9, 6);              /* a continuation byte alone */
    refuses(obj, "{\"a\":\"\xe0\x9f\xbf\"}", 11, 7);     /* overlong (U+07FF in three bytes) */
    refuses(obj, "{\"a\":\"\xed\xa0\x80\"}", 11, 7);     /* a surrogate (U+D800) */
    refuses(obj, "{\"a\":\"\xf0\x8f\xbf\xbf\"}", 12, 7); /* overlong (U+FFFF in four bytes) */
    refuses(obj, "{\"a\":\"\xf4\x90\x80\x80\"}", 12, 7); /* past U+10FFFF */
    accepts(obj, "{\"a\":\"\xe0\xa0\x80\xed\x9f\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"}", true); /* the edges */
    refuses(obj, "{\"\0", 3, 2);                                                                /* NUL */
    int whole = random_walks(obj, true, 200000);
    EXPECT(whole > 1000, "only %d random replies were whole", whole);
    json_shape_free(obj);
    json_shape *arrays = shape_of("{\"type\":\"array\",\"items\":{\"type\":\"array\",\"maxItems\":2}}");
    whole = random_walks(arrays, false, 200000);
    EXPECT(whole > 1000, "only %d random replies were whole", whole);
    json_shape_free(arrays);

    json_shape *p = shape_of("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":3},"
                             "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\","
                             "\"ab\",3,null]},\"minItems\":1,\"maxItems\":2}},\"required\":[\"name\",\"age\"]}");
    accepts(p, "{\"age\":3,\"name\":\"é€x\"}", true);
    accepts(p, "{\"name\":\"\",\"tags\":[\"ab\",null],\"age\":-12}", true);
    refuses(p, "{\"nam\"", 6, 5);                         /* a property's whole name */
    refuses(p, "{\"name\0", 7, 6);                        /* NUL does not end a name */
    refuses(p, "{\"x\"", 4, 2);                           /* only the properties */
    refuses(p, "{\"age\":3}", 9, 8);                      /* required: name */
    refuses(p, "{\"age\":3,\"age\"", 14, 10);             /* each key once */
    refuses(p, "{\"age\":3.5", 10, 8);                    /* integer */
    refuses(p, "{\"name\":\"abcd\"", 14, 12);             /* maxLength 3 characters */
    refuses(p, "{\"name\":\"ab\xe2\x82\xac\xe2", 15, 14); /* ... of UTF-8 */
    refuses(p, "{\"tags\":[]", 10, 9);                    /* minItems 1 */
    refuses(p, "{\"tags\":[3,3,", 13, 12);                /* maxItems 2 */
    refuses(p, "{\"tags\":[\"b\"", 12, 10);               /* enum */
    refuses(p, "{\"tags\":[\"a\"x", 13, 12);
    refuses(p, "{\"tags\":[33", 11, 10);
    accepts(p, "{\"tags\":[\"a\",3],\"name\":\"x\",\"age\":0}", true);
    json_shape_free(p);

    json_shape *n = shape_of("{\"type\":[\"number\",\"null\"]}");
    accepts(n, "12", true); /* a number may go on, and may end: whole */
    accepts(n, "1.5e", false);
    accepts(n, "null", true);
    refuses(n, "12345678901234567890123456", 26, 24); /* at most 24 characters */
    json_shape_free(n);

    refused_schema("{\"type\":\"string\",\"pattern\":\"a+\"}", "pattern");
    refused_schema("{\"anyOf\":[{\"type\":\"string\"}]}", "anyOf");
    refused_schema("{\"type\":\"object\",\"properties\":{},\"additionalProperties\":true}", "additionalProperties");
    refused_schema("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"format\":\"date\"}}}", "format");
    refused_schema("{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "required");
    refused_schema("{\"type\":\"thing\"}", "type");
    /* bounds no value meets: the schema would allow nothing */
    refused_schema("{\"type\":\"object\",\"properties\":{\"a\":{\"maxLength\":2,\"minLength\":3}}}", "minLength");
    refused_schema("{\"type\":\"array\",\"minItems\":4,\"maxItems\":3}", "minItems");
    /* 16 levels are served, with something inside the deepest (whole replies read at that depth),
     * 17 refused, named by the keyword that nests */
    char deep[2][2048] = {"{\"type\":\"array\",\"minItems\":1}", "{\"type\":\"object\"}"}, tmp[2200];
    for (int i = 1; i < 17; i++) {
        snprintf(tmp, sizeof tmp, "{\"type\":\"array\",\"minItems\":1,\"items\":%s}", deep[0]), strcpy(deep[0], tmp);
        snprintf(tmp, sizeof tmp, "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":%s}}", deep[1]);
        strcpy(deep[1], tmp);
        if (i != 15) continue;
        char ra[64] = "", ro[128] = "";
        for (int k = 0; k < 16; k++) strcat(ra, "["), strcat(ro, k < 15 ? "{\"a\":" : "{\"k\":");
        strcat(ra, "0"), strcat(ro, "0");
        for (int k = 0; k < 16; k++) strcat(ra, "]"), strcat(ro, "}");
        json_shape *a = shape_of(deep[0]), *o = shape_of(deep[1]);
        accepts(a, ra, true), accepts(o, ro, true);
        json_shape_free(a), json_shape_free(o);
    }
    refused_schema(deep[0], "items");
    refused_schema(deep[1], "properties");
    printf("test_serve_json: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
