/* A background thread with a stop flag and a condition to sleep on, guarded by one mutex that
 * the owner may use for its own state too (libuv's caller-owned handle: the memory is the
 * owner's, passed in). One start/stop shape for every engine thread. */
#ifndef OQ_THREAD_H
#define OQ_THREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct thread {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stopping; /* written under mu (so a waiter cannot miss it), read anywhere */
    pthread_t th;
    atomic_bool started; /* read by other threads (a monitor callback asks whether sync runs) */
};

/* Sets up mu, cv and the flag (the thread does not run yet). */
void thread_init(struct thread *t);

/* Runs fn(arg) on a new thread. Returns 0, or -1 when no thread could be made. */
int thread_start(struct thread *t, void *(*fn)(void *), void *arg);

/* Sets the stop flag, wakes the thread and joins it (nothing when it never started). */
void thread_stop(struct thread *t);

/* Destroys mu and cv (after thread_stop). */
void thread_close(struct thread *t);

/* True once thread_stop was called. Thread-safe, lock-free. */
bool thread_stopping(struct thread *t);

/* Waits on cv for up to ms, or until a broadcast or a stop. Call with mu held. Returns
 * thread_stopping(). */
bool thread_wait_ms(struct thread *t, double ms);

/* Sleeps ms unless a stop comes first (takes mu itself). Returns thread_stopping(). */
bool thread_sleep_ms(struct thread *t, double ms);

#endif
