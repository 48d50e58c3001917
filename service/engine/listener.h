/* The listener: one thread on a connection of its own LISTENs on offlineq_wakeup,
 * offlineq_settings and offlineq_events; a wake-up (or a settings change) wakes idle workers,
 * a settings change reloads the shared settings, events are pulled into the hub. Even an
 * API-only instance listens: settings and live events reach it that way. Reconnects with a
 * backoff (to whichever host of a multi-host URL takes writes, and LISTENs there again); after
 * a connect the settings are reloaded and the workers woken for whatever came meanwhile. */
#ifndef OQ_LISTENER_H
#define OQ_LISTENER_H

#include "core/thread.h"

struct db_pool;
struct events;
struct settings;
struct workers;

/* All borrowed; they outlive the listener. */
struct listener_deps {
    const char *database_url; /* the LISTEN connection's own conninfo */
    struct db_pool *db;       /* for reloading settings */
    struct settings *settings;
    struct workers *workers;
    struct events *events;
};

struct listener {
    struct listener_deps d;
    struct thread t;
};

/* Starts the thread; deps is copied. */
void listener_start(struct listener *l, const struct listener_deps *deps);
void listener_stop(struct listener *l);

#endif
