#include "core/thread.h"

#include "core/common.h"

void thread_init(struct thread *t)
{
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    atomic_init(&t->stopping, false);
    atomic_init(&t->started, false);
}

int thread_start(struct thread *t, void *(*fn)(void *), void *arg)
{
    bool ok = pthread_create(&t->th, NULL, fn, arg) == 0;
    atomic_store(&t->started, ok);
    return ok ? 0 : -1;
}

void thread_stop(struct thread *t)
{
    pthread_mutex_lock(&t->mu);
    atomic_store(&t->stopping, true);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (atomic_load(&t->started))
        pthread_join(t->th, NULL);
    atomic_store(&t->started, false);
}

void thread_close(struct thread *t)
{
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
}

bool thread_stopping(struct thread *t)
{
    return atomic_load(&t->stopping);
}

bool thread_wait_ms(struct thread *t, double ms)
{
    if (!thread_stopping(t) && ms > 0) {
        struct timespec until;
        oq_deadline_ms(&until, ms);
        pthread_cond_timedwait(&t->cv, &t->mu, &until);
    }
    return thread_stopping(t);
}

bool thread_sleep_ms(struct thread *t, double ms)
{
    double until = oq_now_ms() + ms;
    pthread_mutex_lock(&t->mu);
    while (!thread_stopping(t) && oq_now_ms() < until)
        thread_wait_ms(t, until - oq_now_ms());
    pthread_mutex_unlock(&t->mu);
    return thread_stopping(t);
}
