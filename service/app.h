/* struct app: the one shared context, built by main() and passed down explicitly. */
#ifndef OQ_APP_H
#define OQ_APP_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/config.h"
#include "store/db.h"
#include "engine/events.h"
#include "engine/janitor.h"
#include "engine/listener.h"
#include "core/metrics.h"
#include "engine/monitor.h"
#include "core/pending.h"
#include "delivery/policy.h"
#include "store/secretbox.h"
#include "store/settings.h"
#include "engine/sync.h"
#include "engine/workers.h"

struct app {
    struct config cfg;
    struct secretbox box; /* the encryption key (main.c sets it before app_init); db lends it */
    struct db_pool db;
    char instance_id[64]; /* host:pid:random, names this instance in leases and logs */
    struct policy policy;
    struct monitor monitor;
    struct settings settings;
    struct sync_engine sync;
    struct events events;
    struct metrics metrics;
    struct workers workers;
    struct listener listener;
    struct janitor janitor;
    atomic_bool abort_outbound; /* set when the shutdown grace is over */
    struct pending pending;     /* what OFFLINEQ_MAX_PENDING is checked against */
};

/* Connects, migrates, registers the operation types and settings. Returns -1 with *e set. */
int app_init(struct app *a, struct err *e) OQ_MUSTCHECK;

/* Starts the engine's threads, wired to each other here: the event hub, the network monitor,
 * the workers, the listener (NOTIFY), the sync engine and the janitor (housekeeping). */
void app_start(struct app *a);

/* SIGHUP: reads OFFLINEQ_API_KEYS_FILE and OFFLINEQ_UPSTREAMS_FILE again and puts them in force
 * at once, or keeps the running ones and logs why (returns -1). */
int app_reload(struct app *a);

/* Stops background threads and frees everything app_init built (not the config). */
void app_close(struct app *a);

/* True when the database answers, takes writes and holds a schema this binary can use (its
 * own, or a newer one compatible with it); false with *e (ERR_DB_UNAVAILABLE, ERR_NOT_READY)
 * otherwise. An unusable schema also refuses the pool to everyone (migrate_guard). */
bool app_is_ready(struct app *a, struct err *e);

#endif
