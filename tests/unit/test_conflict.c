/* Conflict merges (delivery/conflict.c): three-way merge and RFC 7396 merge patch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/conflict.h"

static void assert_json(json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, 0, NULL);
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
    if (!json_equal(got, want))
        fail_msg("got %s, want %s", g, want_text);
    free(g);
    json_decref(want);
    json_decref(got);
}

static void test_merges(void **state)
{
    static const struct {
        const char *base, *local, *remote, *want;
    } three[] = {
        {"{\"a\":1}", "{\"a\":2}", "{\"a\":1}", "{\"a\":2}"},                 /* ours only */
        {"{\"a\":1}", "{\"a\":1}", "{\"a\":3}", "{\"a\":3}"},                 /* theirs only */
        {"{\"a\":1}", "{\"a\":2}", "{\"a\":3}", "{\"a\":2}"},                 /* both: ours */
        {"{\"a\":1,\"b\":1}", "{\"a\":1}", "{\"a\":1,\"b\":1}", "{\"a\":1}"}, /* deleted here */
        {"{\"a\":1,\"b\":1}", "{\"a\":1,\"b\":1}", "{\"a\":1}", "{\"a\":1}"}, /* deleted there */
        {"{}", "{\"n\":1}", "{\"m\":2}", "{\"n\":1,\"m\":2}"},                /* both added */
        {"{\"o\":{\"x\":1,\"y\":1}}", "{\"o\":{\"x\":2,\"y\":1}}",
         "{\"o\":{\"x\":1,\"y\":3,\"z\":0}}", "{\"o\":{\"x\":2,\"y\":3,\"z\":0}}"}, /* nested */
        {"{\"o\":1}", "{\"o\":{\"k\":1}}", "{\"o\":{\"j\":2}}", "{\"o\":{\"k\":1,\"j\":2}}"},
        {"{\"l\":[1]}", "{\"l\":[1,2]}", "{\"l\":[0,1]}", "{\"l\":[1,2]}"}, /* arrays are values */
    };
    for (size_t i = 0; i < sizeof(three) / sizeof(three[0]); i++) {
        json_t *b = json_loads(three[i].base, 0, NULL), *l = json_loads(three[i].local, 0, NULL),
               *r = json_loads(three[i].remote, 0, NULL);
        assert_json(conflict_merge3(b, l, r), three[i].want);
        json_decref(b);
        json_decref(l);
        json_decref(r);
    }
    /* RFC 7396 appendix A examples */
    static const struct {
        const char *target, *patch, *want;
    } patches[] = {
        {"{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
        {"{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}"},
        {"{\"a\":\"b\"}", "{\"a\":null}", "{}"},
        {"{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}"},
        {"{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}"},
        {"[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}"},
        {"{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}"},
    };
    for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
        json_t *t = json_loads(patches[i].target, JSON_DECODE_ANY, NULL),
               *p = json_loads(patches[i].patch, 0, NULL);
        assert_json(conflict_merge_patch(t, p), patches[i].want);
        json_decref(t);
        json_decref(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
