/* The engine's thread shape (service/core/thread.c): a stop wakes a sleeping thread at once,
 * the stop flag is seen by the thread, stopping a thread that never started is harmless. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/common.h"
#include "core/thread.h"

struct sleeper {
    struct thread t;
    int rounds;
    double woke_ms; /* when the last sleep ended */
};

/* Sleeps a minute at a time until stopped. */
static void *sleeper_main(void *arg)
{
    struct sleeper *s = arg;
    while (!thread_sleep_ms(&s->t, 60000))
        s->rounds++;
    s->woke_ms = oq_now_ms();
    return NULL;
}

static void test_stop_wakes_a_sleeper(void **state)
{
    (void)state;
    struct sleeper s = {0};
    thread_init(&s.t);
    assert_int_equal(thread_start(&s.t, sleeper_main, &s), 0);
    assert_false(thread_stopping(&s.t));
    double t0 = oq_now_ms();
    thread_stop(&s.t); /* joins: sleeper_main has returned */
    assert_true(thread_stopping(&s.t));
    assert_false(s.t.started);
    assert_int_equal(s.rounds, 0);
    assert_true(s.woke_ms - t0 < 5000); /* not the minute it was sleeping */
    thread_close(&s.t);
}

static void test_wait_times_out(void **state)
{
    (void)state;
    struct thread t;
    thread_init(&t);
    double t0 = oq_now_ms();
    pthread_mutex_lock(&t.mu);
    bool stopping = thread_wait_ms(&t, 50);
    pthread_mutex_unlock(&t.mu);
    assert_false(stopping);
    assert_true(oq_now_ms() - t0 >= 40);
    assert_true(thread_sleep_ms(&t, 0) == false);
    thread_close(&t);
}

static void test_stop_without_start(void **state)
{
    (void)state;
    struct thread t;
    thread_init(&t);
    thread_stop(&t);
    assert_true(thread_stopping(&t));
    assert_true(thread_sleep_ms(&t, 60000)); /* returns at once once stopped */
    thread_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_wakes_a_sleeper),
        cmocka_unit_test(test_wait_times_out),
        cmocka_unit_test(test_stop_without_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
