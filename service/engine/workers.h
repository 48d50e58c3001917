/* The worker pool: claims due operations, runs their handlers outside any transaction and
 * records outcomes; a heartbeat thread keeps the leases of running operations alive. The
 * listener (listener.c) wakes idle workers on NOTIFY. */
#ifndef OQ_WORKERS_H
#define OQ_WORKERS_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/common.h"
#include "core/thread.h"

struct config;
struct db_pool;
struct metrics;
struct monitor;
struct policy;
struct settings;
struct worker;

/* What the workers use, all borrowed (app.c fills it; everything outlives the pool). */
struct workers_deps {
    const struct config *cfg;
    struct db_pool *db;
    struct policy *policy;     /* paused upstreams are not claimed; handlers send through it */
    struct monitor *monitor;   /* nothing is claimed offline */
    struct settings *settings; /* auto_sync, and the conflict strategy at claim time */
    struct metrics *metrics;
    const char *instance_id;     /* lease owners are "<instance_id>/<worker>" */
    atomic_bool *abort_outbound; /* set by workers_stop when the grace is over */
    /* With auto-sync stopped, only the running sync pass's operations are claimed: returns
     * their ids (a new uuid[] literal) or NULL when no pass runs (app.c: sync_pass_ids). */
    char *(*pass_ids)(void *arg);
    void *pass_ids_arg;
};

struct workers {
    struct workers_deps d;
    struct worker *w;
    int n;
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* idle workers wait here, and only they */
    pthread_cond_t stop;    /* workers backing off from the database wait here */
    unsigned long wake_gen; /* bumped by every wake-up */
    atomic_bool stopping;
    atomic_int busy; /* workers running a handler now */
    struct thread heartbeat;
    bool started;
};

/* Starts cfg->workers workers plus the heartbeat thread; deps is copied. */
void workers_start(struct workers *ws, const struct workers_deps *deps);

/* Wakes every idle worker now (a batch, the network coming back, a sync pass, a reload). */
void workers_wake(struct workers *ws);

/* Wakes one idle worker: for a few new operations (a single enqueue here, another instance's
 * NOTIFY), which one claim takes. A worker whose claim came back full wakes the next, so a
 * backlog still brings them all; waking all for each enqueue made every idle worker run a claim
 * for the one that could take it. */
void workers_nudge(struct workers *ws);

/* Stops claiming; running handlers get grace_s to finish, then their transfers are aborted
 * and their operations released (no attempt used) for another instance. Joins every thread. */
void workers_stop(struct workers *ws, int grace_s);

/* The backoff before retry number attempt (1-based): uniform in [0, min(max, base*2^(n-1))]. */
double workers_backoff_s(int attempt, int base_ms, int max_ms);

#endif
