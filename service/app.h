/* struct app: the one shared context, built by main() and passed down explicitly. */
#ifndef OQ_APP_H
#define OQ_APP_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/config.h"
#include "store/db.h"
#include "engine/events.h"
#include "core/metrics.h"
#include "engine/monitor.h"
#include "core/pending.h"
#include "delivery/policy.h"
#include "store/settings.h"
#include "engine/sync.h"
#include "engine/workers.h"

struct app {
    struct config cfg;
    struct db_pool db;
    char instance_id[64]; /* host:pid:random, names this instance in leases and logs */
    atomic_bool stopping;
    struct policy policy;
    struct monitor monitor;
    struct settings settings;
    struct sync_engine sync;
    struct events events;
    struct metrics metrics;
    struct workers workers;
    atomic_bool abort_outbound;   /* set when the shutdown grace is over */
    struct pending pending;       /* what OFFLINEQ_MAX_PENDING is checked against */
    pthread_t maintenance;
    bool maintenance_started;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
};

/* Connects, migrates, registers the operation types and settings. Returns -1 with *e set. */
int app_init(struct app *a, struct err *e) OQ_MUSTCHECK;

/* Starts the background maintenance thread (counter compaction). */
void app_start(struct app *a);

/* Stops background threads and frees everything app_init built (not the config). */
void app_close(struct app *a);

/* True when the database answers and holds the schema this binary expects. */
bool app_is_ready(struct app *a, struct err *e);

#endif
