/* The worker pool: claims due operations, runs their handlers outside any transaction and
 * records outcomes; a listener thread wakes idle workers on NOTIFY, a heartbeat thread keeps
 * the leases of running operations alive. */
#ifndef OQ_WORKERS_H
#define OQ_WORKERS_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/common.h"

struct app;
struct worker;

struct workers {
    struct app *app;
    struct worker *w;
    int n;
    pthread_mutex_t mu;
    pthread_cond_t wake;       /* idle workers wait here */
    unsigned long wake_gen;    /* bumped by every wake-up */
    atomic_bool stopping;
    atomic_int busy;           /* workers running a handler now */
    pthread_t listener, heartbeat;
    bool started;
    bool helpers_started;
};

/* Starts app->cfg.workers workers plus the listener and heartbeat threads. */
void workers_start(struct workers *ws, struct app *app);

/* Wakes idle workers now (an enqueue in this instance, a NOTIFY, the network coming back). */
void workers_wake(struct workers *ws);

/* Stops claiming; running handlers get grace_s to finish, then their transfers are aborted
 * and their operations released (no attempt used) for another instance. Joins every thread. */
void workers_stop(struct workers *ws, int grace_s);

/* The backoff before retry number attempt (1-based): uniform in [0, min(max, base*2^(n-1))]. */
double workers_backoff_s(int attempt, int base_ms, int max_ms);

#endif
