/* The body loader (api_parse_json_body) and the JSON writer (core/jsontext.c): every RFC 8259
 * number is kept and written back with the text PostgreSQL's jsonb renders for it; a body is
 * one JSON value, with no NUL outside strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/jsontext.h"
#include "api/parse.h"

/* jsontext(api_parse_json_body(in)), or NULL with the error code in *code. */
static char *round_trip(const char *in, size_t len, const char **code)
{
    struct err e = {0};
    json_t *j = api_parse_json_body(in, len, &e);
    *code = j ? NULL : err_wire_code(e.code);
    char *out = j ? jsontext(j) : NULL;
    json_decref(j);
    return out;
}

static char *repeat(const char *head, char c, int n, const char *tail)
{
    size_t len = strlen(head) + (size_t)n + strlen(tail) + 1;
    char *s = malloc(len);
    size_t o = (size_t)snprintf(s, len, "%s", head);
    memset(s + o, c, (size_t)n);
    snprintf(s + o + (size_t)n, len - o - (size_t)n, "%s", tail);
    return s;
}

/* Each number, as SELECT '<n>'::jsonb::text renders it (checked against PostgreSQL 15). */
static void test_numbers_render_as_postgresql(void **state)
{
    char *e400 = repeat("1", '0', 400, "");
    char *em400 = repeat("-0.", '0', 399, "1");
    const struct {
        const char *in, *out;
    } cases[] = {
        {"100.0", "100.0"},
        {"1.50", "1.50"},
        {"-0", "0"},
        {"-0.0", "0.0"},
        {"0.1", "0.1"},
        {"12345678901234567890", "12345678901234567890"},
        {"12345678901234567000", "12345678901234567000"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"9223372036854775808", "9223372036854775808"},
        {"1e400", e400},
        {"-1e-400", em400},
        {"1e2", "100"},
        {"1E+2", "100"},
        {"1.5e1", "15"},
        {"1.50e1", "15.0"},
        {"0e5", "0"},
        {"0e-5", "0.00000"},
        {"0.0e-5", "0.000000"},
        {"-1e-3", "-0.001"},
        {"123.456e-1", "12.3456"},
        {"1.0e0", "1.0"},
        {"9007199254740993", "9007199254740993"},
        {"0.30000000000000004", "0.30000000000000004"},
        {"3", "3"},
        {"-17", "-17"},
        {"1e0000000000000000000002", "100"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[256], want[1400];
        snprintf(in, sizeof(in), "{\"n\":%s,\"a\":[%s,{\"b\":%s}]}", cases[i].in, cases[i].in,
                 cases[i].in);
        snprintf(want, sizeof(want), "{\"n\":%s,\"a\":[%s,{\"b\":%s}]}", cases[i].out, cases[i].out,
                 cases[i].out);
        const char *code;
        char *got = round_trip(in, strlen(in), &code);
        if (got == NULL || strcmp(got, want) != 0)
            fail_msg("%s: got %s (%s), want %s", cases[i].in, got ? got : "NULL", code ? code : "-",
                     want);
        free(got);
    }
    free(e400);
    free(em400);
}

/* What PostgreSQL's numeric cannot hold is refused (400), never stored half-way. */
static void test_numbers_postgresql_cannot_store_are_refused(void **state)
{
    static const char *const bad[] = {"1e131072",      "1e-16384",     "0e-16384",
                                      "1.5e-16383",    "0e1073741823", "1e99999999999999999999",
                                      "-0e-1073741823"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char in[96];
        snprintf(in, sizeof(in), "{\"n\":%s}", bad[i]);
        const char *code;
        char *got = round_trip(in, strlen(in), &code);
        if (got != NULL)
            fail_msg("%s accepted as %.40s", bad[i], got);
        assert_string_equal(code, "invalid_json");
    }
    static const char *const edge[] = {"1e-16383", "0e-16383", "0e1073741822"};
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
        char in[64];
        snprintf(in, sizeof(in), "{\"n\":%s}", edge[i]);
        const char *code;
        char *got = round_trip(in, strlen(in), &code);
        if (got == NULL)
            fail_msg("%s refused", edge[i]);
        free(got);
    }
}

/* Only RFC 8259 text: one value, whitespace around it, no NUL outside a string. */
static void test_strict_grammar(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        bool ok;
    } cases[] = {
#define C(s, ok) {s, sizeof(s) - 1, ok}
        C("{\"a\":1}", true),
        C(" \t\r\n{\"a\":1} \n", true),
        C("{\"a\":1\0}", false),
        C("{\"a\":1}\0", false),
        C("\0{\"a\":1}", false),
        C("{\0\"a\":1}", false),
        C("{\"a\"\0:1}", false),
        C("{\"a\":\0 1}", false),
        C("{\"a\":[1,\0 2]}", false),
        C("{\"a\":\"x\0y\"}", false),
        C("{\"a\":\"x\\u0000y\"}", false),
        C("{\"a\":1}{}", false),
        C("{\"a\":1} x", false),
        C("{\"a\":01}", false),
        C("{\"a\":1.}", false),
        C("{\"a\":.5}", false),
        C("{\"a\":+1}", false),
        C("{\"a\":1e}", false),
        C("{\"a\":-}", false),
        C("{\"a\":00.5e3}", false),
        C("{\"a\":NaN}", false),
        C("{\"a\":Infinity}", false),
        C("{\"a\":0x10}", false),
        C("{\"a\":1,}", false),
        C("{\"a\":[1,]}", false),
        C("{\"a\":tru}", false),
        C("{\"a\":true,\"b\":false,\"c\":null}", true),
        C("{\"a\":\"\\ud83d\\ude00\"}", true),
        C("{\"a\":\"\\ud83d\"}", false),
        C("{\"a\":\"\\ude00\"}", false),
        C("{\"a\":\"\\x\"}", false),
        C("{\"a\":\"\x01\"}", false),
        C("{\"a\":\"\xff\"}", false),
        C("{\"a\":\"\xc3\xa9\"}", true),
        C("{\"a\":1,\"a\":2}", false),
        C("[1]", false),
        C("1", false),
        C("", false),
        C("\xef\xbb\xbf{\"a\":1}", false),
        C("{\"a\":1\x0b}", false),
#undef C
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *code;
        char *got = round_trip(cases[i].in, cases[i].len, &code);
        if ((got != NULL) != cases[i].ok)
            fail_msg("case %zu (%.*s): %s", i, (int)cases[i].len, cases[i].in,
                     got ? "accepted" : "refused");
        if (got == NULL)
            assert_string_equal(code, "invalid_json");
        free(got);
    }
}

/* Nesting: 64 levels, not 65; a 60000-deep array is a 400, not a crash. */
static void test_depth_limit(void **state)
{
    for (int depth = 63; depth <= 66; depth++) {
        char *open = repeat("{\"a\":", '[', depth - 1, "");
        char *s = repeat(open, ']', depth - 1, "}");
        const char *code;
        char *got = round_trip(s, strlen(s), &code);
        assert_true((got != NULL) == (depth <= 64));
        free(got);
        free(open);
        free(s);
    }
    char *abyss = repeat("", '[', 60000, "");
    const char *code;
    assert_null(round_trip(abyss, strlen(abyss), &code));
    free(abyss);
}

/* Strings and other values come back as they were; keys keep their order. */
static void test_other_values_round_trip(void **state)
{
    const char *in =
        "{\"z\":\"q\\\"\\\\\\n\\u0001\\u00e9\\/\",\"a\":[true,false,null,{}],\"m\":[]}";
    const char *code;
    char *got = round_trip(in, strlen(in), &code);
    assert_non_null(got);
    assert_string_equal(
        got, "{\"z\":\"q\\\"\\\\\\n\\u0001\xc3\xa9/\",\"a\":[true,false,null,{}],\"m\":[]}");
    free(got);
}

/* Numbers written out in full may not make a document much larger than it was sent. */
static void test_expansion_is_bounded(void **state)
{
    size_t n = 2000;
    char *s = malloc(n * 10 + 16);
    size_t o = (size_t)sprintf(s, "{\"a\":[");
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(s + o, "%s1e131071", i ? "," : "");
    sprintf(s + o, "]}");
    const char *code;
    assert_null(round_trip(s, strlen(s), &code));
    assert_string_equal(code, "invalid_json");
    free(s);
}

static void test_jsontext_numbers(void **state)
{
    json_t *j = json_loads("{\"a\":0.1,\"b\":1e-7,\"c\":3.0,\"d\":-0.30000000000000004,\"e\":12,"
                           "\"s\":\"q\\\"\\\\\\n\\u0001\",\"u\":\"\\u00e9\"}",
                           0, NULL);
    char *s = jsontext(j);
    assert_string_equal(s, "{\"a\":0.1,\"b\":1e-07,\"c\":3.0,\"d\":-0.30000000000000004,\"e\":12,"
                           "\"s\":\"q\\\"\\\\\\n\\u0001\",\"u\":\"\xc3\xa9\"}");
    json_t *back = json_loads(s, 0, NULL);
    assert_true(json_equal(j, back));
    json_decref(back);
    free(s);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_render_as_postgresql),
        cmocka_unit_test(test_numbers_postgresql_cannot_store_are_refused),
        cmocka_unit_test(test_strict_grammar),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_other_values_round_trip),
        cmocka_unit_test(test_expansion_is_bounded),
        cmocka_unit_test(test_jsontext_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
