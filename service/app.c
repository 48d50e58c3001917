#include "app.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handlers/handlers.h"
#include "core/log.h"
#include "store/secretbox.h"
#include "store/migrate.h"
#include "store/leases.h"
#include "core/pgarray.h"

static int migrate(struct app *a, struct err *e)
{
    PGconn *pg = db_connect(a->cfg.database_url, e);
    if (pg == NULL)
        return -1;
    int rc = migrate_up(pg, e);
    PQfinish(pg);
    return rc;
}

static const struct db_stmt register_types = {
    "register_types",
    "INSERT INTO offlineq_operation_types (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING"};

static const struct db_stmt save_setting = {
    "save_setting",
    "INSERT INTO offlineq_settings (key, value) VALUES ($1, $2::jsonb) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()"};

/* "{api_call,file_upload,...}" from the registry; a new string. */
static char *types_array(void)
{
    struct pgarray a;
    pgarray_init(&a);
    for (const struct handler *h = handlers_table(); h->name; h++)
        pgarray_add(&a, h->name);
    return pgarray_finish(&a);
}

static int register_registry(struct app *a, struct err *e)
{
    struct db_conn *c = db_acquire(&a->db, e);
    if (c == NULL)
        return -1;
    char *types = types_array(), attempts[16];
    snprintf(attempts, sizeof(attempts), "%d", a->cfg.max_attempts);
    const char *p1[] = {types};
    const char *p2[] = {"default_max_attempts", attempts};
    PGresult *r = db_exec(c, &register_types, 1, p1, e);
    int rc = r ? 0 : -1;
    PQclear(r);
    if (rc == 0) {
        r = db_exec(c, &save_setting, 2, p2, e);
        rc = r ? 0 : -1;
        PQclear(r);
    }
    db_release(&a->db, c);
    free(types);
    return rc;
}

/* The pending count and the snapshot it was counted in come from one statement: the
 * pending module tells by the snapshot which of this instance's own enqueues it holds. */
static const struct db_stmt compact_counts = {
    "compact_counts",
    "SELECT offlineq_compact_counts(), "
    "  (SELECT coalesce(sum(n), 0) FROM offlineq_op_counts WHERE status = 'pending'), "
    "  pg_current_snapshot()::text"};

/* Folds the counter deltas and refreshes the pending count OFFLINEQ_MAX_PENDING is checked
 * against. */
static void fold_counts(struct app *a, struct db_conn *c)
{
    struct err e = {0};
    PGresult *r = db_exec(c, &compact_counts, 0, NULL, &e);
    if (r == NULL)
        return;
    if (pending_fold(&a->pending, atoll(PQgetvalue(r, 0, 1)), PQgetvalue(r, 0, 2)) != 0)
        log_warn("unexpected snapshot text \"%s\"", PQgetvalue(r, 0, 2));
    PQclear(r);
}

int app_init(struct app *a, struct err *e)
{
    char host[32] = "host";
    gethostname(host, sizeof(host) - 1);
    char id[37];
    oq_uuid(id);
    snprintf(a->instance_id, sizeof(a->instance_id), "%s:%d:%.8s", host, (int)getpid(), id);
    atomic_init(&a->inflight, 0);
    atomic_init(&a->stopping, false);
    pthread_mutex_init(&a->stop_mu, NULL);
    pthread_cond_init(&a->stop_cv, NULL);
    atomic_init(&a->abort_outbound, false);
    pending_init(&a->pending);
    policy_init(&a->policy, &a->cfg);
    settings_init(&a->settings);
    metrics_init(&a->metrics);
    db_pool_init(&a->db, a->cfg.database_url, a->cfg.db_pool_size);
    if (migrate(a, e) != 0 || register_registry(a, e) != 0)
        return -1;
    struct db_conn *c = db_acquire(&a->db, e);
    if (c == NULL)
        return -1;
    int rc = secretbox_check_database(c, e);
    if (rc == 0)
        rc = settings_seed(c, a->cfg.auto_sync, a->cfg.sync_interval_s, e);
    if (rc == 0)
        rc = settings_reload(&a->settings, c, e);
    if (rc == 0)
        fold_counts(a, c); /* OFFLINEQ_MAX_PENDING holds from the first request on */
    db_release(&a->db, c);
    return rc;
}

/* Going online wakes the workers and, with auto-sync on, starts a sync pass. */
static void on_network_change(void *arg, bool online)
{
    struct app *a = arg;
    if (a->events.started)
        events_emit(a, "network.changed",
                    json_pack("{s:s, s:s}", "status", online ? "online" : "offline", "instance", a->instance_id));
    if (!online || !a->sync.started)
        return;
    workers_wake(&a->workers);
    unsigned long pass;
    struct err e = {0};
    if (settings_auto_sync(&a->settings) && sync_request(&a->sync, &pass, &e) != 0)
        log_debug("no sync pass on reconnect: %s", e.message);
}

/* Ids grow with time: everything below the first event of the last 15 minutes goes (found by
 * walking the primary key from the oldest, so the walk costs what is deleted). */
static const struct db_stmt trim_events = {
    "trim_events",
    "DELETE FROM offlineq_events WHERE id < coalesce("
    "  (SELECT min(id) FROM offlineq_events WHERE created_at >= now() - interval '15 minutes'),"
    "  (SELECT max(id) + 1 FROM offlineq_events))"};

/* One housekeeping round: fold counter deltas (stats stay a scan of a few rows), refresh the
 * pending count that OFFLINEQ_MAX_PENDING is checked against, and every other round sweep
 * expired leases, expired operations and failed dependencies. */
static void maintain(struct app *a, unsigned round)
{
    struct err e = {0};
    struct db_conn *c = db_acquire(&a->db, &e);
    if (c == NULL)
        return;
    fold_counts(a, c);
    if (round % 2 == 0 && leases_sweep(c, &e) > 0)
        workers_wake(&a->workers); /* reaped operations are due again */
    settings_reload(&a->settings, c, &e);
    if (round % 20 == 1 && secretbox_sweep(c, 500, &e) < 0) /* every 10 s: listed rows sealed */
        log_json(LOG_WARN, "sealing plaintext rows failed", json_pack("{s:s}", "error", e.message));
    if (round % 20 == 0) /* every 10 s: the event log keeps 15 minutes */
        PQclear(db_exec(c, &trim_events, 0, NULL, &e));
    db_release(&a->db, c);
    if (round % 20 == 10) /* give freed heap back to the system: RSS follows the load down */
        malloc_trim(0);
}

/* Runs maintain() every 500 ms. */
static void *maintenance_main(void *arg)
{
    struct app *a = arg;
    unsigned round = 0;
    pthread_mutex_lock(&a->stop_mu);
    while (!atomic_load(&a->stopping)) {
        struct timespec t;
        oq_deadline_ms(&t, 500);
        pthread_cond_timedwait(&a->stop_cv, &a->stop_mu, &t);
        if (atomic_load(&a->stopping))
            break;
        pthread_mutex_unlock(&a->stop_mu);
        maintain(a, round++);
        pthread_mutex_lock(&a->stop_mu);
    }
    pthread_mutex_unlock(&a->stop_mu);
    return NULL;
}

void app_start(struct app *a)
{
    events_start(&a->events, a);
    monitor_listen(&a->monitor, on_network_change, a);
    monitor_start(&a->monitor, &a->cfg);
    workers_start(&a->workers, a);
    sync_start(&a->sync, a);
    a->maintenance_started = pthread_create(&a->maintenance, NULL, maintenance_main, a) == 0;
}

void app_close(struct app *a)
{
    sync_stop(&a->sync);
    workers_stop(&a->workers, a->cfg.shutdown_grace_s);
    monitor_stop(&a->monitor);
    events_stop(&a->events);
    pthread_mutex_lock(&a->stop_mu);
    atomic_store(&a->stopping, true);
    pthread_cond_broadcast(&a->stop_cv);
    pthread_mutex_unlock(&a->stop_mu);
    if (a->maintenance_started)
        pthread_join(a->maintenance, NULL);
    db_pool_close(&a->db);
    policy_close(&a->policy);
    settings_close(&a->settings);
    pending_close(&a->pending);
    pthread_cond_destroy(&a->stop_cv);
    pthread_mutex_destroy(&a->stop_mu);
}

static const struct db_stmt schema_version = {
    "schema_version", "SELECT coalesce(max(version), 0) FROM schema_migrations"};

bool app_is_ready(struct app *a, struct err *e)
{
    struct db_conn *c = db_acquire(&a->db, e);
    if (c == NULL)
        return false;
    PGresult *r = db_exec(c, &schema_version, 0, NULL, e);
    bool ok = false;
    if (r != NULL) {
        int v = atoi(PQgetvalue(r, 0, 0));
        ok = v == migrate_latest_version();
        if (!ok)
            err_set(e, ERR_NOT_READY, "database schema version %d, this binary expects %d", v,
                    migrate_latest_version());
        PQclear(r);
    }
    db_release(&a->db, c);
    return ok;
}
