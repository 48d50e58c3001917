/* The counters behind /metrics (service/core/metrics.c): outcomes and attempt durations land in
 * their upstream's column; no upstream, or one not added, is column 0 (upstream=""). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/metrics.h"

static struct metrics *two_upstreams(void)
{
    struct metrics *m = calloc(1, sizeof(*m));
    metrics_init(m);
    metrics_add_type(m, "api_call");
    metrics_add_upstream(m, "crm");
    metrics_add_upstream(m, "billing");
    return m;
}

static void test_columns_and_labels(void **state)
{
    (void)state;
    struct metrics *m = two_upstreams();
    assert_string_equal(metrics_upstream_label(m, 0), "");
    assert_string_equal(metrics_upstream_label(m, 1), "crm");
    assert_string_equal(metrics_upstream_label(m, 2), "billing");
    static const struct {
        const char *upstream;
        int column;
    } cases[] = {{"crm", 1}, {"billing", 2}, {NULL, 0}, {"unknown", 0}, {"", 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        metrics_op_upstream(m, "api_call", cases[i].upstream, OPC_FAILED, 1);
        metrics_exec(m, cases[i].upstream, 0.2);
    }
    assert_int_equal(m->ops[0][1][OPC_FAILED], 1);
    assert_int_equal(m->ops[0][2][OPC_FAILED], 1);
    assert_int_equal(m->ops[0][0][OPC_FAILED], 3);
    assert_int_equal(m->exec_seconds[1].count, 1);
    assert_int_equal(m->exec_seconds[2].count, 1);
    assert_int_equal(m->exec_seconds[0].count, 3);
    /* 0.2 s falls in the 0.25 bucket (index 5) */
    assert_int_equal(m->exec_seconds[1].buckets[5], 1);
    assert_int_equal(m->exec_seconds[1].buckets[4], 0);
    free(m);
}

static void test_unknown_type_and_plain_op(void **state)
{
    (void)state;
    struct metrics *m = two_upstreams();
    metrics_op_upstream(m, "no_such_type", "crm", OPC_COMPLETED, 5); /* not counted */
    metrics_op(m, "api_call", OPC_ENQUEUED, 2);                      /* column 0 */
    assert_int_equal(m->ops[0][1][OPC_COMPLETED], 0);
    assert_int_equal(m->ops[0][0][OPC_ENQUEUED], 2);
    free(m);
}

/* Past METRICS_UPSTREAMS the rest count under column 0 rather than out of bounds. */
static void test_more_upstreams_than_columns(void **state)
{
    (void)state;
    struct metrics *m = calloc(1, sizeof(*m));
    metrics_init(m);
    metrics_add_type(m, "api_call");
    const char *names[METRICS_UPSTREAMS + 1];
    char buf[METRICS_UPSTREAMS + 1][8];
    for (int i = 0; i <= METRICS_UPSTREAMS; i++) {
        snprintf(buf[i], sizeof(buf[i]), "u%d", i);
        names[i] = buf[i];
        metrics_add_upstream(m, names[i]);
    }
    assert_int_equal(m->n_upstreams, METRICS_UPSTREAMS);
    metrics_op_upstream(m, "api_call", names[METRICS_UPSTREAMS], OPC_FAILED, 1);
    metrics_op_upstream(m, "api_call", names[METRICS_UPSTREAMS - 1], OPC_FAILED, 1);
    assert_int_equal(m->ops[0][0][OPC_FAILED], 1);
    assert_int_equal(m->ops[0][METRICS_UPSTREAMS][OPC_FAILED], 1);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_and_labels),
        cmocka_unit_test(test_unknown_type_and_plain_op),
        cmocka_unit_test(test_more_upstreams_than_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
