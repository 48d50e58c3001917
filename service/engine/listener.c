#include "engine/listener.h"

#include <libpq-fe.h>

#include "engine/events.h"
#include "engine/workers.h"
#include "store/db.h"
#include "store/notify.h"
#include "store/settings.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define POLL_MS 200 /* how soon a stop is noticed */

static void reload_settings(struct listener *l)
{
    struct err e = {0};
    struct db_conn *c = db_acquire(l->d.db, &e);
    if (c == NULL)
        return;
    settings_reload(l->d.settings, c, &e);
    db_release(l->d.db, c);
}

/* Connects until it succeeds or the listener stops; NULL only when stopping. */
static PGconn *connect_with_backoff(struct listener *l)
{
    int backoff_ms = BACKOFF_MIN_MS;
    while (!thread_stopping(&l->t)) {
        struct err e = {0};
        PGconn *pg = notify_connect(l->d.database_url, l->d.db->schema, &e);
        if (pg != NULL) {
            /* A NOTIFY sent while no one listened is lost (after a failover, also whatever the
             * old primary sent last): catch up on settings and on work. The events hub reads
             * every 100 ms, it needs no nudge. */
            reload_settings(l);
            workers_wake(l->d.workers);
            return pg;
        }
        thread_sleep_ms(&l->t, backoff_ms);
        backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
    }
    return NULL;
}

static void *listener_main(void *arg)
{
    struct listener *l = arg;
    PGconn *pg = NULL;
    while (!thread_stopping(&l->t)) {
        if (pg == NULL && (pg = connect_with_backoff(l)) == NULL)
            break;
        int heard = notify_wait(pg, POLL_MS);
        if (heard < 0) { /* lost: reconnect */
            PQfinish(pg);
            pg = NULL;
            continue;
        }
        if (heard & NOTIFY_SETTINGS)
            reload_settings(l);
        if (heard & NOTIFY_EVENTS) /* many NOTIFYs, one read */
            events_pull(l->d.events);
        if (heard & NOTIFY_SETTINGS)
            workers_wake(l->d.workers);
        else if (heard & NOTIFY_WAKEUP) /* another instance's enqueue: one claim takes it */
            workers_nudge(l->d.workers);
    }
    if (pg != NULL)
        PQfinish(pg);
    return NULL;
}

void listener_start(struct listener *l, const struct listener_deps *deps)
{
    l->d = *deps;
    thread_init(&l->t);
    thread_start(&l->t, listener_main, l);
}

void listener_stop(struct listener *l)
{
    thread_stop(&l->t);
    thread_close(&l->t);
}
