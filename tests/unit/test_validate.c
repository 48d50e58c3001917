/* Field rules (core/validate.c): types, bounds, required, nullable, one_of, unknown fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/validate.h"

static const struct field_rule rules[] = {
    {.name = "name", .type = V_STRING, .required = true, .min = 1, .max = 5},
    {.name = "n", .type = V_INT, .min = -3, .max = 3},
    {.name = "f", .type = V_NUMBER, .min = 0, .max = 1},
    {.name = "id", .type = V_UUID},
    {.name = "o", .type = V_OBJECT, .nullable = true},
    {.name = "c", .type = V_STRING, .one_of = (const char *const[]){"a", "b", NULL}},
    {.name = NULL},
};

static void test_validate_object(void **state)
{
    static const struct {
        const char *json;
        const char *field; /* NULL: valid */
    } cases[] = {
        {"{\"name\":\"abc\"}", NULL},
        {"{\"name\":\"abc\",\"n\":3,\"f\":0.5,\"o\":null,\"c\":\"b\","
         "\"id\":\"6f1c1f57-3c3c-4d1e-9a43-54c2f1a0a9d5\"}",
         NULL},
        {"{\"name\":\"abc\",\"n\":2.0}", NULL},
        {"{}", "name"},
        {"{\"name\":\"\"}", "name"},
        {"{\"name\":\"abcdef\"}", "name"},
        {"{\"name\":1}", "name"},
        {"{\"name\":\"a\",\"n\":4}", "n"},
        {"{\"name\":\"a\",\"n\":1.5}", "n"},
        {"{\"name\":\"a\",\"n\":\"1\"}", "n"},
        {"{\"name\":\"a\",\"f\":1.01}", "f"},
        {"{\"name\":\"a\",\"id\":\"nope\"}", "id"},
        {"{\"name\":\"a\",\"o\":[]}", "o"},
        {"{\"name\":\"a\",\"c\":\"z\"}", "c"},
        {"{\"name\":\"a\",\"extra\":1}", "extra"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = json_loads(cases[i].json, 0, NULL);
        struct err e = {0};
        int rc = validate_object(j, rules, false, &e);
        if (cases[i].field == NULL) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, -1);
            assert_int_equal(e.code, ERR_INVALID_REQUEST);
            assert_string_equal(e.field, cases[i].field);
        }
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
