/* The OFFLINEQ_MAX_PENDING count (service/core/pending.c): exact for one instance's own enqueues,
 * whatever the order of its commits and the maintenance folds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/pending.h"

static long long total(struct pending *p)
{
    long long t = 0;
    bool fits = pending_reserve(p, 0, 1LL << 40, &t);
    assert_true(fits);
    return t;
}

/* Stored before the fold's snapshot: the count has it, the note goes. Stored after (xid in
 * progress, or not yet started): the note stays until a fold sees it. */
static void test_fold_takes_over_visible_notes(void **state)
{
    (void)state;
    struct pending p;
    pending_init(&p);
    long long t;
    assert_true(pending_reserve(&p, 2, 5, &t));
    assert_int_equal(t, 0);
    pending_settle(&p, 1, 1, 100); /* committed by xid 100 */
    pending_settle(&p, 1, 1, 105); /* committed by xid 105 */
    assert_int_equal(total(&p), 2);
    /* 100 committed before the snapshot; 105 was still running */
    assert_int_equal(pending_fold(&p, 7, "101:106:105"), 0);
    assert_int_equal(total(&p), 8); /* 7 counted (with 100) + 105 */
    /* committed after that snapshot: stays a note even if it settles late */
    pending_settle(&p, 0, 1, 107);
    assert_int_equal(total(&p), 9);
    /* an xid the last snapshot already saw is not noted twice */
    pending_settle(&p, 0, 1, 99);
    assert_int_equal(total(&p), 9);
    assert_int_equal(pending_fold(&p, 9, "108:108:"), 0);
    assert_int_equal(total(&p), 9);
    pending_close(&p);
}

/* Reservations make the limit hold for requests in flight; refused ones hold nothing. */
static void test_reservations_and_limit(void **state)
{
    (void)state;
    struct pending p;
    pending_init(&p);
    long long t;
    assert_int_equal(pending_fold(&p, 3, "10:10:"), 0);
    assert_true(pending_reserve(&p, 2, 5, &t));
    assert_false(pending_reserve(&p, 1, 5, &t));
    assert_int_equal(t, 5);
    pending_settle(&p, 2, 1, 12); /* one stored, one was a dedup hit */
    assert_int_equal(total(&p), 4);
    assert_true(pending_reserve(&p, 1, 5, &t));
    assert_false(pending_reserve(&p, 1, 5, &t));
    pending_settle(&p, 1, 0, 0); /* refused by the database: room back */
    assert_int_equal(total(&p), 4);
    /* a grouped statement settles many times with one xid: one note */
    pending_settle(&p, 0, 1, 13);
    pending_settle(&p, 0, 1, 13);
    assert_int_equal(total(&p), 6);
    assert_int_equal(pending_fold(&p, 6, "14:14:"), 0);
    assert_int_equal(total(&p), 6);
    pending_close(&p);
}

static void test_malformed_snapshot(void **state)
{
    (void)state;
    struct pending p;
    pending_init(&p);
    assert_int_equal(pending_fold(&p, 1, "garbage"), -1);
    assert_int_equal(pending_fold(&p, 1, "1:2"), -1);
    assert_int_equal(pending_fold(&p, 1, "1:3:x"), -1);
    assert_int_equal(pending_fold(&p, 1, "1:3:1,2"), 0);
    pending_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_takes_over_visible_notes),
        cmocka_unit_test(test_reservations_and_limit),
        cmocka_unit_test(test_malformed_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
